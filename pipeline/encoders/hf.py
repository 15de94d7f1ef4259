"""What the transformers encoders share: loading a checkpoint the way a user does, device, autocast.

`from_pretrained(model, revision=...)` with `model` a hub name (downloaded or taken from the local
cache, as the user's environment decides: HF_HUB_OFFLINE is never set here) or a local folder
written by `save_pretrained`. The fingerprint records the model, the revision asked for, the commit
the hub resolved (when it reports one), and for a local folder the name, size and modification
time of every file in it, so a changed checkpoint is never mistaken for the one a shard was made with.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import ClassVar

from embridge.encoders.base import Encoder, import_torch
from embridge.errors import ConfigError, InputError

PRECISIONS = {"fp32": None, "fp16": "float16", "bf16": "bfloat16"}


def folder_digest(folder: Path) -> str:
    """sha256 over (relative path, size, mtime) of every file under a local checkpoint folder."""
    h = hashlib.sha256()
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        st = p.stat()
        h.update(f"{p.relative_to(folder).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


class HFEncoder(Encoder):
    """A tower of a transformers contrastive model (CLIP, CLAP): subclasses set the classes and `_forward`."""

    default_model: ClassVar[str]  # the authors' hub checkpoint
    packages = ("transformers", "tokenizers", "torch")

    def __init__(self, threads: int = 0, model: str | None = None, revision: str | None = None,
                 device: str = "cpu", precision: str = "fp32", normalize: bool = True):
        super().__init__(threads)
        if precision not in PRECISIONS:
            raise ConfigError(f"{self.name}: precision = {precision!r}; expected one of {list(PRECISIONS)}")
        self.model = str(model or self.default_model)  # hub name or local folder
        self.revision = revision  # hub branch, tag or commit (None: the default branch)
        self.device = device  # cpu | cuda | cuda:N | auto
        self.precision = precision  # autocast dtype of the forward pass (fp32: no autocast)
        self.normalize = normalize  # L2-normalize the output, as the model's contrastive logits do

    def config(self) -> dict:
        out = {"model": self.model, "revision": self.revision, "precision": self.precision,
               "device": self.device_, "normalize": self.normalize, "kind": self.kind}
        local = Path(self.model)
        if local.is_dir():
            out["local_files"] = folder_digest(local)
        if self._loaded:
            out["commit"] = getattr(self.net_.config, "_commit_hash", None)
            out["dim"] = self.dim
        return out

    @property
    def device_(self) -> str:
        if self.device != "auto":
            return self.device
        torch = import_torch(self.threads)
        return "cuda" if torch.cuda.is_available() else "cpu"

    def from_pretrained(self, cls):
        """cls.from_pretrained(model, revision) with a one-line error when the checkpoint cannot be had."""
        local = Path(self.model)
        if local.exists() and not local.is_dir():
            raise ConfigError(f"{self.name}: model {self.model!r} is a file; expected a hub name or a folder from save_pretrained")
        try:
            return cls.from_pretrained(self.model, revision=self.revision)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"{self.name}: cannot load {self.model!r} (revision {self.revision}): {first}") from None

    def _load(self) -> None:
        torch = import_torch(self.threads)
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        self.processor_ = self.load_processor()
        self.net_ = self.load_model().eval().to(self.device_)
        self.dim = int(self.net_.config.projection_dim)
        self.torch_ = torch

    def autocast(self):
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        device_type = "cuda" if self.device_.startswith("cuda") else "cpu"
        return self.torch_.autocast(device_type=device_type, dtype=getattr(self.torch_, dtype))

    # the model's method giving each tower's embeddings, per kind (subclasses name theirs)
    FEATURES: ClassVar[dict[str, str]] = {}

    def preprocess(self, batch) -> dict:
        raise NotImplementedError

    def _encode(self, batch):
        """preprocess, then the kind's feature method (FEATURES) under `run` -> (n, projection_dim)."""
        return self.run(getattr(self.net_, self.FEATURES[self.kind]), self.preprocess(batch))

    def tokenize(self, batch, max_len: int) -> dict:
        """n strings -> {"input_ids", "attention_mask"} (padded, truncated to max_len tokens)."""
        texts = list(batch)
        if not all(isinstance(t, str) for t in texts):
            raise InputError(f"{self.name}: expected a list of strings")
        enc = self.processor_.tokenizer(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def run(self, fn, inputs: dict):
        """fn(**inputs on the device) under inference mode and autocast -> float32 numpy (n, dim)."""
        torch = self.torch_
        inputs = {k: v.to(self.device_) for k, v in inputs.items()}
        with torch.inference_mode(), self.autocast():
            out = fn(**inputs)
            Z = out if isinstance(out, torch.Tensor) else out.pooler_output  # transformers 4 / 5
            Z = Z.float()
            if self.normalize:
                Z = torch.nn.functional.normalize(Z, p=2, dim=1)
        return Z.cpu().numpy()
