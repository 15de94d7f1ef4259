"""`collapse` (C^3): subtract each modality's mean of normalized embeddings (train split, or
precomputed means from a file), then re-normalize. Needs no pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from embridge.errors import InputError
from embridge.methods.base import BridgeMethod
from embridge.methods.c3 import collapse_rows, modality_mean
from embridge.store import EmbeddingTable


def read_means(path: str | Path, modalities: list[str], dims: dict[str, int]) -> dict[str, np.ndarray]:
    """{modality: (d,) float64} from a .npz / .safetensors file with one array per modality, or from
    a fitted collapse map folder (its state.safetensors holds mean/<modality>)."""
    path = Path(path)
    if path.is_dir():
        path = path / "state.safetensors"
    if not path.is_file():
        raise InputError(f"collapse.means = {str(path)!r}: file does not exist (expected .npz or .safetensors "
                         f"with one (d,) array per modality, or a fitted collapse map folder)")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    elif path.suffix == ".safetensors":
        from safetensors.numpy import load

        arrays = {k.split("/", 1)[-1]: v for k, v in load(path.read_bytes()).items()}
    else:
        raise InputError(f"collapse.means = {str(path)!r}: unsupported format {path.suffix!r}; expected .npz or .safetensors")
    out = {}
    for m in modalities:
        if m not in arrays:
            raise InputError(f"{path}: no mean for modality {m!r}; arrays: {sorted(arrays)}")
        v = np.asarray(arrays[m], dtype=np.float64).reshape(-1)
        if v.shape != (dims[m],) or not np.all(np.isfinite(v)):
            raise InputError(f"{path}: mean of {m!r} has shape {arrays[m].shape}, expected ({dims[m]},) finite values")
        out[m] = v
    return out


class Collapse(BridgeMethod):
    """C^3 collapse (Zhang et al., ICLR 2024, section 4): e_m -> normalize(normalize(e_m) - mu_m).

    means: null = mu_m from each modality's train split; or a path (.npz / .safetensors with one
    (d,) array per modality, or a fitted collapse map folder): precomputed means, so no train rows
    are needed (training-free evaluation of an all-test table). The output is always re-normalized:
    the evaluation is cosine, so a `renormalize: false` option (removed) could not change it.
    Learned state: mean_ = {modality: (d,) float64}.
    """

    name = "collapse"

    def __init__(self, means: str | None = None) -> None:
        self.means = means

    @property
    def needs_train(self) -> bool:  # type: ignore[override]
        return self.means is None

    def _fit(self, train: dict[str, EmbeddingTable], anchor: str, pairs: list[tuple[str, str]]) -> None:
        for m in train:
            self.passthrough_ok(m)
        if self.means is not None:
            self.mean_ = read_means(self.means, sorted(train), self.dims_)
        else:
            self.mean_ = {m: modality_mean(t.X) for m, t in train.items()}

    def _transform(self, X: np.ndarray, modality: str) -> np.ndarray:
        return collapse_rows(X, self.mean_[modality], renormalize=True)

    def _get_state(self) -> dict[str, np.ndarray]:
        return {f"mean/{m}": v for m, v in self.mean_.items()}

    def _set_state(self, state: dict[str, np.ndarray], info: dict) -> None:
        self.mean_ = {k.split("/", 1)[1]: v for k, v in state.items() if k.startswith("mean/")}
