"""Torch device selection and seeding: `device: auto|cpu|cuda` from params.yaml."""

from __future__ import annotations

from embridge.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str = "auto"):
    """'auto' -> cuda when a GPU is visible, else cpu; 'cuda' without a GPU is a ConfigError."""
    import torch

    if device not in DEVICES and not str(device).startswith("cuda:"):
        raise ConfigError(f"device = {device!r}: expected one of {list(DEVICES)}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device = {device!r}, but torch sees no CUDA GPU here; use 'auto' or 'cpu'")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; make torch deterministic on the CPU."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def torch_generator(seed: int, device) -> torch.Generator:  # noqa: F821
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g
