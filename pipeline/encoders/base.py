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


# the input kinds an encoder tower can read; a modality named like one of them must use that tower
INPUT_KINDS = ("image", "audio", "text", "video", "depth", "thermal")


class Encoder(ABC):
    """A frozen encoder for one input kind (one tower of a multi-tower model).

    Batches by kind (what `embridge.encoders.runner` hands to `encode`; a list of n items, or the
    stacked array of the built-in digits):
      image: uint8 arrays (h, w) grayscale or (h, w, 3) RGB, any size (the built-in digits: 28 x 28)
      audio: 1-D arrays at `sample_rate`: int16 PCM (scale 1/32768) or float32 in [-1, 1]
      text:  strings
      video: uint8 arrays (frames, h, w, 3);  depth / thermal: see the encoder's `decode_kinds`
    """

    name: ClassVar[str]  # registry key, recorded in the manifest
    modality: ClassVar[str]  # the kind of a single-tower encoder (image | audio | text)
    kinds: ClassVar[tuple[str, ...]] = ()  # the towers of a multi-tower model (empty: (modality,))
    dim: int  # output dimension d (class attribute, or set by `_load` when the checkpoint decides it)
    sample_rate: ClassVar[int] = 16_000  # Hz the audio tower reads
    packages: ClassVar[tuple[str, ...]] = ()  # distributions whose versions go into the manifest
    # how each kind's files are decoded (embridge.data.decode.KINDS); missing: the kind itself
    decode_kinds: ClassVar[dict[str, str]] = {}

    def __init__(self, threads: int = 0):
        self.threads = threads  # CPU threads for inference (0: the library's default)
        self.kind = self.modality if hasattr(self, "modality") else self.towers()[0]  # set by the runner
        self._loaded = False

    @classmethod
    def towers(cls) -> tuple[str, ...]:
        return cls.kinds or (cls.modality,)

    def decode_kind(self) -> str:
        return self.decode_kinds.get(self.kind, self.kind)

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
    if not hasattr(cls, "name") or not (hasattr(cls, "modality") or cls.kinds):
        raise TypeError(f"encoder class {cls.__name__} lacks the class attribute 'name', or 'modality' / 'kinds'")
    if cls.name in ENCODERS and ENCODERS[cls.name] is not cls:
        raise ValueError(f"encoder name {cls.name!r} is already registered by {ENCODERS[cls.name].__name__}")
    ENCODERS[cls.name] = cls
    if default:
        DEFAULT_ENCODERS[cls.modality] = cls.name
    return cls


def register_default(cls: type[Encoder]) -> type[Encoder]:
    return register(cls, default=True)


def get_encoder(name: str | None, modality: str, kind: str | None = None) -> type[Encoder]:
    """The class registered as `name` (None: the modality's default); it must be able to encode `modality`."""
    if name is None:
        if modality not in DEFAULT_ENCODERS:
            raise ConfigError(f"modality {modality!r} has no default encoder (name one with --encoder); defaults: {DEFAULT_ENCODERS}")
        name = DEFAULT_ENCODERS[modality]
    if name not in ENCODERS:
        raise ConfigError(f"encoder {name!r} is not registered; known encoders: {sorted(ENCODERS)}")
    cls = ENCODERS[name]
    resolve_kind(cls, modality, kind)
    return cls


def resolve_kind(cls: type[Encoder], modality: str, kind: str | None = None) -> str:
    """Which tower of `cls` encodes `modality`: `kind` when given, the modality itself when it names
    a tower, the only tower of a single-tower encoder for a free modality name (e.g. `photo`)."""
    towers = cls.towers()
    if kind is not None:
        if kind not in towers:
            raise ConfigError(f"encoder {cls.name!r} has no {kind!r} tower; its towers: {list(towers)}")
        return kind
    if modality in towers:
        return modality
    if modality in INPUT_KINDS or len(towers) > 1:
        shown = towers[0] if len(towers) == 1 else list(towers)
        raise ConfigError(f"encoder {cls.name!r} encodes {shown!r}, not {modality!r}"
                          + ("" if modality in INPUT_KINDS else "; name the tower with `kind`"))
    return towers[0]
