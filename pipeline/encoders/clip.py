"""CLIP (Radford et al., 2021) through transformers: image and text towers, the authors' preprocessing.

Images go through the checkpoint's own CLIPImageProcessor (resize shortest side, center crop,
CLIP mean/std), texts through its tokenizer (padded, truncated to the text tower's positions).
Outputs are the projected embeddings, L2-normalized as in CLIP's logits.
"""

from __future__ import annotations

import numpy as np
from embridge.encoders.base import register
from embridge.encoders.hf import HFEncoder
from embridge.errors import InputError


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (h, w) grayscale or (h, w, 3) RGB -> uint8 (h, w, 3)."""
    image = np.asarray(image)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise InputError(f"expected an image of shape (h, w) or (h, w, 3), got {image.shape}")


@register
class CLIP(HFEncoder):
    name = "clip"
    kinds = ("image", "text")
    FEATURES = {"image": "get_image_features", "text": "get_text_features"}
    default_model = "openai/clip-vit-base-patch32"

    def load_processor(self):
        from transformers import CLIPProcessor

        return self.from_pretrained(CLIPProcessor)

    def load_model(self):
        from transformers import CLIPModel

        return self.from_pretrained(CLIPModel)

    def preprocess(self, batch) -> dict:
        """image: n uint8 images -> {"pixel_values": (n, 3, S, S)}; text: n strings -> input_ids, attention_mask."""
        if self.kind == "image":
            images = [to_rgb(x) for x in batch]
            return {"pixel_values": self.processor_.image_processor(images=images, return_tensors="pt")["pixel_values"]}
        return self.tokenize(batch, self.net_.config.text_config.max_position_embeddings)
