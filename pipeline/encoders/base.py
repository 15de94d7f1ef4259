"""The frozen-encoder contract and the registry that maps encoder names to classes.

An encoder is one small class: `name`, `modality`, `dim`, the packages whose versions the
manifest records, and `encode(batch) -> float32 array of shape (n, dim)`. Heavy imports (torch,
ctranslate2, transformers) happen inside `load`, never at module import, so the registry is cheap
to import and the audio process never imports torch.
"""

from __future__ import annotations

import importlib.metadata
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from embridge.errors import ConfigError, InputError

ENCODERS: dict[str, type[Encoder]] = {}
DEFAULT_ENCODERS: dict[str, str] = {}  # modality -> name of its default encoder


class Encoder(ABC):
    """A frozen encoder for one modality.

    Batches by modality (what `embridge.encoders.runner` hands to `encode`):
      image: uint8 array of shape (n, 28, 28) (grayscale, 0..255)
      audio: list of n int16 arrays of shape (t_i,), PCM at 16 kHz
      text:  list of n strings
    """

    name: ClassVar[str]  # registry key, recorded in the manifest
    modality: ClassVar[str]  # image | audio | text
    dim: ClassVar[int]  # output dimension d
    packages: ClassVar[tuple[str, ...]] = ()  # distributions whose versions go into the manifest

    def __init__(self, threads: int = 0):
        self.threads = threads  # CPU threads for inference (0: the library's default)
        self._loaded = False

    def load(self) -> Encoder:
        """Load weights (idempotent). Subclasses implement `_load`."""
        if not self._loaded:
            self._load()
            self._loaded = True
        return self

    @abstractmethod
    def _load(self) -> None: ...

    @abstractmethod
    def _encode(self, batch: Any) -> np.ndarray: ...

    def encode(self, batch: Any) -> np.ndarray:
        """Encode one batch. Returns float32 array of shape (n, dim), finite."""
        self.load()
        Z = np.ascontiguousarray(self._encode(batch), dtype=np.float32)
        if Z.ndim != 2 or Z.shape[1] != self.dim:
            raise InputError(f"encoder {self.name!r}: returned shape {Z.shape}, expected (n, {self.dim})")
        return Z

    def config(self) -> dict:
        """Settings that change the output (recorded in the manifest and checked on resume)."""
        return {}

    @classmethod
    def versions(cls) -> dict[str, str]:
        out = {}
        for p in cls.packages:
            try:
                out[p] = importlib.metadata.version(p)
            except importlib.metadata.PackageNotFoundError:
                raise ConfigError(f"encoder {cls.name!r} needs the package {p!r} (pip install {p})") from None
        return out


def passive_openmp() -> None:
    """Let OpenMP worker threads sleep when idle (OMP_WAIT_POLICY=PASSIVE, unless the user set it).

    Must run before torch or ctranslate2 loads its OpenMP runtime. On a CPU shared with other
    jobs, spinning threads made extraction much slower here: EfficientNet-Lite0 387 s vs 39 s and
    Whisper 80 s vs 30 s of CPU for the full data set; on an idle machine it costs little.
    """
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def import_torch(threads: int = 0):
    """Import torch for a torch encoder (after `passive_openmp`), using `threads` threads (0: default)."""
    passive_openmp()
    import torch

    if threads:
        torch.set_num_threads(threads)
    return torch


def register(cls: type[Encoder], default: bool = False) -> type[Encoder]:
    """Add an encoder class to the registry (usable as a decorator)."""
    for attr in ("name", "modality", "dim"):
        if not hasattr(cls, attr):
            raise TypeError(f"encoder class {cls.__name__} lacks the class attribute {attr!r}")
    if cls.name in ENCODERS and ENCODERS[cls.name] is not cls:
        raise ValueError(f"encoder name {cls.name!r} is already registered by {ENCODERS[cls.name].__name__}")
    ENCODERS[cls.name] = cls
    if default:
        DEFAULT_ENCODERS[cls.modality] = cls.name
    return cls


def register_default(cls: type[Encoder]) -> type[Encoder]:
    return register(cls, default=True)


def get_encoder(name: str | None, modality: str) -> type[Encoder]:
    """The class registered as `name` (None: the modality's default); it must encode `modality`."""
    if name is None:
        if modality not in DEFAULT_ENCODERS:
            raise ConfigError(f"modality {modality!r} has no default encoder; defaults: {DEFAULT_ENCODERS}")
        name = DEFAULT_ENCODERS[modality]
    if name not in ENCODERS:
        raise ConfigError(f"encoder {name!r} is not registered; known encoders: {sorted(ENCODERS)}")
    cls = ENCODERS[name]
    if cls.modality != modality:
        raise ConfigError(f"encoder {name!r} encodes {cls.modality!r}, not {modality!r}")
    return cls
