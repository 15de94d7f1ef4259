"""The contract every bridging method follows (scikit-learn style) and its save/load format.

A method's constructor stores hyperparameters only. ``fit(tables, anchor, train_pairs)`` reads the
``train`` split of the modality pairs allowed in ``train_pairs`` and sets learned state (names end
in ``_``); ``transform(X, modality)`` maps rows of one modality into the evaluation space (the
anchor's space) as float32, L2-normalized. ``save(dir)`` writes ``config.json`` (method name,
params, dims, modalities, anchor, package versions) and ``state.safetensors`` (never pickle).
"""

from __future__ import annotations

import inspect
import json
import platform
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from embridge.errors import ConfigError, InputError, NotFittedError
from embridge.files import atomic_write_bytes, read_json
from embridge.pairing import LabelBudget, choose_budget, pair_rows
from embridge.store import EmbeddingTable
from embridge.store.checks import check_matrix

CONFIG = "config.json"
STATE = "state.safetensors"
FORMAT_VERSION = 1


def l2_normalize(Z: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of Z divided by their norm, as float32. Z: (n, d) -> (n, d)."""
    Z = np.asarray(Z, dtype=np.float64)
    return (Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), eps)).astype(np.float32)


def package_versions() -> dict[str, str]:
    """Versions of the packages a fitted state depends on (recorded in config.json)."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("embridge", "numpy", "scipy", "torch", "safetensors"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def check_fit_inputs(
    tables: dict[str, EmbeddingTable], anchor: str, train_pairs: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Validate fit's arguments; return the pairs as sorted tuples. Raises ConfigError / InputError."""
    if not isinstance(tables, dict) or not tables:
        raise InputError("fit: expected a non-empty dict {modality: EmbeddingTable}")
    if anchor not in tables:
        raise ConfigError(f"anchor {anchor!r} is not one of the modalities {sorted(tables)}")
    pairs = []
    for p in train_pairs:
        if isinstance(p, str):
            p = tuple(p.split("-"))
        if len(p) != 2 or p[0] == p[1]:
            raise ConfigError(f"pair {p!r}: expected two different modality names")
        for m in p:
            if m not in tables:
                raise ConfigError(
                    f"pair {'-'.join(p)!r} names modality {m!r}, which does not exist; "
                    f"available modalities: {sorted(tables)}"
                )
        key = tuple(sorted(p))
        if key not in pairs:
            pairs.append(key)
    for m, t in tables.items():
        if not isinstance(t, EmbeddingTable):
            raise InputError(f"fit: tables[{m!r}] is a {type(t).__name__}, expected an EmbeddingTable")
        if not (t.split == "train").any():
            raise InputError(f"fit: modality {m!r} has no rows in split 'train'")
        check_matrix(t.X, f"{m} embeddings")
    return pairs


class BridgeMethod:
    """Base class. Subclasses set ``name`` and implement ``_fit``, ``_transform``, ``_get_state``,
    ``_set_state`` (and ``_state_info`` when the state needs more than arrays to rebuild)."""

    name: str = ""

    # ------------------------------------------------------------------ parameters
    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict:
        """The constructor's keyword arguments as stored (JSON-serializable)."""
        return {k: getattr(self, k) for k in self.param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ fit / transform
    def fit(
        self, tables: dict[str, EmbeddingTable], anchor: str, train_pairs: Iterable[tuple[str, str]],
        budget: LabelBudget | None = None,
    ) -> BridgeMethod:
        """Learn the map of every modality in ``tables`` into ``anchor``'s space from their
        ``train`` rows, using only the modality pairs in ``train_pairs`` and, of their labels and
        pair_ids, only the rows of ``budget`` (the `pairs` stage's label budget; None: one chosen
        here from the method's ``pairs_per_class`` and ``seed``). Returns self."""
        pairs = check_fit_inputs(tables, anchor, train_pairs)
        train = {m: t.select_split("train") for m, t in tables.items()}
        self.anchor_ = anchor
        self.modalities_ = sorted(train)
        self.dims_ = {m: int(t.dim) for m, t in train.items()}
        self.train_pairs_ = [list(p) for p in pairs]
        self._budget, self._train_tables, self._pairs = budget, train, pairs
        self._fit(train, anchor, pairs)
        used = self._budget.used if self._budget is not None else {}
        self.label_rows_ = {m: len(v) for m, v in sorted(used.items())}  # labelled train rows read, per modality
        del self._train_tables
        self.fitted_ = True
        return self

    def pair(self, src: EmbeddingTable, tgt: EmbeddingTable):
        """The training pairs of (src, tgt) train tables inside this fit's label budget (chosen on first
        use when fit was given none, once for every pair of the fit)."""
        if self._budget is None:
            self._budget = choose_budget(self._train_tables, self._pairs, getattr(self, "pairs_per_class", 0),
                                         getattr(self, "seed", 0))
        return pair_rows(src, tgt, budget=self._budget)

    def _fit(self, train: dict[str, EmbeddingTable], anchor: str, pairs: list[tuple[str, str]]) -> None:
        raise NotImplementedError

    def check_fitted(self) -> None:
        if not getattr(self, "fitted_", False):
            raise NotFittedError(f"{self.name}: call fit() (or load()) before transform() or save()")

    def transform(self, X: np.ndarray, modality: str) -> np.ndarray:
        """Map rows of ``modality`` into the evaluation space. X: (n, d_modality) -> (n, d_out) float32, unit rows."""
        self.check_fitted()
        if modality not in self.dims_:
            raise InputError(f"{self.name}: modality {modality!r} was not seen in fit; known: {self.modalities_}")
        X = check_matrix(X, f"{self.name}.transform({modality!r}) input", dim=self.dims_[modality])
        Z = self._transform(np.asarray(X, dtype=np.float32), modality)
        return l2_normalize(Z)

    def fit_transform_tables(self, tables: dict[str, EmbeddingTable]) -> dict[str, np.ndarray]:
        """Convenience: transform every table's rows. Returns {modality: (n, d_out)}."""
        return {m: self.transform(t.X, m) for m, t in tables.items()}

    def _transform(self, X: np.ndarray, modality: str) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers for subclasses
    def passthrough_ok(self, modality: str) -> None:
        """A modality the method learns nothing for passes through unchanged; only in the anchor's dimension."""
        if self.dims_[modality] != self.dims_[self.anchor_]:
            raise ConfigError(
                f"{self.name}: modality {modality!r} has no training signal (no pair with the anchor "
                f"{self.anchor_!r} in train_pairs {['-'.join(p) for p in self.train_pairs_]}) and its "
                f"dimension {self.dims_[modality]} differs from the anchor's {self.dims_[self.anchor_]}; "
                f"add a pair or run bind first"
            )

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        return {}

    def _set_state(self, state: dict[str, np.ndarray], info: dict) -> None:
        pass

    def _state_info(self) -> dict:
        return {}

    def save(self, out_dir: str | Path) -> Path:
        """Write ``out_dir/config.json`` and ``out_dir/state.safetensors``. Returns out_dir."""
        from safetensors.numpy import save

        self.check_fitted()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        state = {k: np.ascontiguousarray(v) for k, v in self._get_state().items()}
        if not state:  # safetensors needs at least one tensor
            state = {"_empty": np.zeros(1, dtype=np.float32)}
        config = {
            "method": self.name,
            "params": self.get_params(),
            "anchor": self.anchor_,
            "modalities": self.modalities_,
            "dims": self.dims_,
            "train_pairs": self.train_pairs_,
            "label_rows": getattr(self, "label_rows_", {}),
            "state_info": self._state_info(),
            "versions": package_versions(),
            "format_version": FORMAT_VERSION,
        }
        atomic_write_bytes(out_dir / STATE, save(state))
        atomic_write_bytes(out_dir / CONFIG, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())
        return out_dir

    @classmethod
    def from_config(cls, config: dict, state: dict[str, np.ndarray]) -> BridgeMethod:
        obj = cls(**config["params"])
        obj.anchor_ = config["anchor"]
        obj.modalities_ = list(config["modalities"])
        obj.dims_ = {m: int(d) for m, d in config["dims"].items()}
        obj.train_pairs_ = [list(p) for p in config["train_pairs"]]
        state.pop("_empty", None)
        obj._set_state(state, config.get("state_info", {}))
        obj.fitted_ = True
        return obj


def read_saved(map_dir: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Read config.json and state.safetensors from a map folder, with errors naming the file."""
    from safetensors.numpy import load

    map_dir = Path(map_dir)
    cfg_path, state_path = map_dir / CONFIG, map_dir / STATE
    not_a_map = f"{map_dir} is not a fitted method folder (config.json + state.safetensors)"
    if not state_path.is_file():
        raise InputError(f"{state_path}: missing; {not_a_map}")
    config = read_json(cfg_path, not_a_map)
    required = ("method", "params", "anchor", "modalities", "dims", "train_pairs")
    missing = [k for k in required if k not in config]
    if missing:
        raise InputError(f"{cfg_path}: missing key(s) {missing}; expected {list(required)}")
    try:
        state = load(state_path.read_bytes())
    except Exception as exc:  # safetensors raises its own SafetensorError / ValueError on bad bytes
        raise InputError(f"{state_path}: corrupt or truncated safetensors file ({exc})") from None
    return config, state
