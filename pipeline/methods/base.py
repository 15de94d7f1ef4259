"""The contract every bridging method follows (scikit-learn style) and its save/load format.

A method's constructor stores hyperparameters only. ``fit(tables, anchor, train_pairs)`` reads the
``train`` split of the modality pairs allowed in ``train_pairs`` and sets learned state (names end
in ``_``); ``transform(X, modality)`` maps rows of one modality into the evaluation space (the
anchor's space) as float32, L2-normalized. ``save(dir)`` writes ``config.json`` (method name,
params, dims, modalities, anchor, package versions) and ``state.safetensors`` (never pickle).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import platform
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from embridge import rows as rows_c
from embridge.errors import ConfigError, InputError, NotFittedError
from embridge.files import atomic_dir, check_output_dir, read_json
from embridge.pairing import LabelBudget, choose_budget, pair_rows
from embridge.store import EmbeddingTable
from embridge.store.checks import check_matrix

CONFIG = "config.json"
STATE = "state.safetensors"
FORMAT_VERSION = 1


ROW_BLOCK = 256  # rows per block of the row-wise float64 passes (the temporaries stay in cache)
ROW_THREADS = min(os.cpu_count() or 1, 8)  # threads for the row-wise passes (numpy's ufuncs release the GIL)
_row_pool: tuple = (0, 0, None)  # (process id, threads, the ThreadPoolExecutor), made on first use


def unit64(U: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """A block of rows in float64 divided by their norm (at least eps): (b, d) -> (b, d) float64, a copy."""
    U = U.astype(np.float64)
    np.divide(U, np.maximum(np.linalg.norm(U, axis=1, keepdims=True), eps), out=U)
    return U


def unit_rows64(Z: np.ndarray, eps: float = 1e-12):
    """Yields (rows, U): U = the rows Z[rows] in float64 divided by their norm, block by block, in order.
    Row-wise arithmetic, so the values equal those of one pass over the whole of Z, without its
    (n, d) float64 temporaries (their page faults cost 10x the arithmetic at 20k x 1024)."""
    for i in range(0, len(Z), ROW_BLOCK):
        yield slice(i, min(i + ROW_BLOCK, len(Z))), unit64(Z[i : i + ROW_BLOCK], eps)


def for_row_blocks(n: int, fn) -> None:
    """fn(rows: slice) for every ROW_BLOCK-row block of 0..n-1, on ROW_THREADS threads, each taking
    every ROW_THREADS-th block. For passes whose blocks are independent and write disjoint rows: the
    result is that of one serial pass, bit for bit (2 threads: 1.7x on 20k x 1024 here)."""
    global _row_pool
    starts = range(0, n, ROW_BLOCK)
    k = min(ROW_THREADS, len(starts))
    if k <= 1:
        for i in starts:
            fn(slice(i, min(i + ROW_BLOCK, n)))
        return
    from concurrent.futures import ThreadPoolExecutor, wait

    if _row_pool[0] != os.getpid() or _row_pool[1] < k:  # a forked child has no pool threads: a new pool
        _row_pool = (os.getpid(), k, ThreadPoolExecutor(k, thread_name_prefix="embridge-rows"))

    def run(j: int) -> None:
        for i in starts[j::k]:
            fn(slice(i, min(i + ROW_BLOCK, n)))

    futures = [_row_pool[2].submit(run, j) for j in range(k)]
    wait(futures)  # every thread done before returning or raising
    for f in futures:
        f.result()  # re-raises a block's error here


def unit_rows(X: np.ndarray, mean: np.ndarray | None = None, renormalize: bool = True, eps: float = 1e-12) -> np.ndarray:
    """Rows of X divided by their norm (at least eps) in float64, as float32; with mean (d,), that
    float32 row minus mean, re-normalized when asked (C^3's collapse). Block by block on the row
    threads, each block in C where `embridge.rows` can run it, else numpy: the same bits.
    X: (n, d) -> (n, d)."""
    X = np.asarray(X)
    out = np.empty(X.shape, dtype=np.float32)

    def block(rows: slice) -> None:
        if rows_c.unit_rows_c(X[rows], out[rows], mean, renormalize, eps):
            return
        U = unit64(X[rows], eps)
        if mean is not None:
            U = U.astype(np.float32).astype(np.float64) - mean[None, :]  # from the float32 unit rows
            if renormalize:
                U = unit64(U, eps)
        out[rows] = U

    for_row_blocks(len(X), block)
    return out


def l2_normalize(Z: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of Z divided by their norm (computed in float64), as float32. Z: (n, d) -> (n, d)."""
    return unit_rows(Z, eps=eps)


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
    tables: dict[str, EmbeddingTable], anchor: str, train_pairs: Iterable[tuple[str, str]], need_train: bool = True
) -> list[tuple[str, str]]:
    """Validate fit's arguments; return the pairs as sorted tuples. Raises ConfigError / InputError.
    need_train=False (a method that learns nothing from rows) accepts tables without train rows."""
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
        if need_train and not (t.split == "train").any():
            raise InputError(f"fit: modality {m!r} has no rows in split 'train' (without train rows only "
                             f"training-free methods run: raw, or collapse with precomputed means)")
        check_matrix(t.X, f"{m} embeddings")
    return pairs


class BridgeMethod:
    """Base class. Subclasses set ``name`` and implement ``_fit``, ``_transform``, ``_get_state``,
    ``_set_state`` (and ``_state_info`` when the state needs more than arrays to rebuild)."""

    name: str = ""
    needs_train: bool = True  # False: fit reads no rows (training-free), so tables may be all test rows

    # ------------------------------------------------------------------ parameters
    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        """The constructor's keyword arguments as stored (JSON-serializable). `deep` is scikit-learn's
        flag for nested estimators; a method holds none, so both values give the same dict."""
        return {k: getattr(self, k) for k in self.param_names()}

    def set_params(self, **params) -> BridgeMethod:
        """Set constructor arguments (scikit-learn protocol), checked like the constructor's: an unknown
        or mistyped key raises ConfigError. Learned state is left as it is until the next fit. Returns self."""
        from embridge.config.schema import check_kwargs

        if not params:
            return self
        checked = check_kwargs(type(self), {**self.get_params(), **params}, f"{type(self).__name__}.set_params")
        for key in params:
            setattr(self, key, checked[key])
        return self

    def __sklearn_is_fitted__(self) -> bool:
        """True after fit or load (the hook scikit-learn's fitted checks call)."""
        return bool(getattr(self, "fitted_", False))

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
        pairs = check_fit_inputs(tables, anchor, train_pairs, self.needs_train)
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

    def save(self, out_dir: str | Path, extra: dict[str, bytes] | None = None) -> Path:
        """Write ``out_dir/config.json`` and ``out_dir/state.safetensors`` (and the files of `extra`,
        {name: bytes}) as one unit: all go into a temp folder that replaces ``out_dir`` whole
        (concurrent writers leave one run's map, never a mix). config.json records the SHA-256 and the
        tensor shapes of the state, which `load` checks. A folder holding other files is refused
        (OutputError). Returns out_dir."""
        from safetensors.numpy import save

        self.check_fitted()
        out_dir = check_output_dir(out_dir, is_map_file if (Path(out_dir) / CONFIG).is_file() else (lambda n: False))
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
            "fit_info": getattr(self, "fit_info_", {}),  # per modality: pairs, rank, under-determined warning
            "versions": package_versions(),
            "format_version": FORMAT_VERSION,
        }
        blob = save(state)
        config["state_sha256"] = hashlib.sha256(blob).hexdigest()
        config["state_shapes"] = {k: list(v.shape) for k, v in sorted(state.items())}
        files = {STATE: blob, CONFIG: (json.dumps(config, indent=2, sort_keys=True) + "\n").encode(), **(extra or {})}
        with atomic_dir(out_dir) as tmp:
            for name, data in files.items():
                (tmp / name).write_bytes(data)
                with open(tmp / name, "rb+") as f:
                    os.fsync(f.fileno())
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
        obj.fit_info_ = dict(config.get("fit_info", {}))
        obj.fitted_ = True
        return obj


def is_map_file(name: str) -> bool:
    """The names `save` writes into a map folder."""
    return name in (CONFIG, STATE, "selection.json")  # selection.json: what `embridge fit` chose on val


def check_state(state: dict[str, np.ndarray], shapes: dict, state_path: Path, cfg_path: Path) -> None:
    """The state holds exactly the tensors config.json records, each with its recorded shape."""
    if not isinstance(shapes, dict):
        raise InputError(f"{cfg_path}: state_shapes = {str(shapes)[:80]}, expected a mapping tensor -> shape")
    missing = sorted(set(shapes) - set(state))
    extra = sorted(set(state) - set(shapes))
    if missing:
        raise InputError(f"{state_path}: lacks tensor(s) {missing[:5]} that {cfg_path} records "
                         f"({len(missing)} missing); re-run fit")
    if extra:
        raise InputError(f"{state_path}: holds tensor(s) {extra[:5]} that {cfg_path} does not record; "
                         f"the state would change what the config describes; re-run fit")
    for name, shape in shapes.items():
        if list(state[name].shape) != list(shape):
            raise InputError(f"{state_path}: tensor {name!r} has shape {tuple(state[name].shape)}, but {cfg_path} "
                             f"records {tuple(shape)}; re-run fit")


def read_saved(map_dir: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Read config.json and state.safetensors from a map folder, with errors naming the file.

    config.json must record the state's SHA-256 (`state_sha256`) and tensor shapes (`state_shapes`):
    a state from another run, or changed after fit, is refused. Maps saved before the hash existed
    (no `state_sha256`) are refused with a message to re-run fit.
    """
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
    blob = state_path.read_bytes()
    try:
        state = load(blob)
    except Exception as exc:  # safetensors raises its own SafetensorError / ValueError on bad bytes
        raise InputError(f"{state_path}: corrupt or truncated safetensors file ({exc})") from None
    if "state_sha256" not in config or "state_shapes" not in config:
        raise InputError(f"{cfg_path}: records no state_sha256/state_shapes (saved by an older embridge, or not by "
                         f"embridge), so {state_path.name} cannot be checked against it; re-run `embridge fit`")
    digest = hashlib.sha256(blob).hexdigest()
    if digest != config["state_sha256"]:
        raise InputError(
            f"{state_path}: SHA-256 {digest[:16]}... differs from the state_sha256 {str(config['state_sha256'])[:16]}... "
            f"that {cfg_path} records: the two files come from different runs (two writers to one folder?) "
            f"or the state was changed; re-run `embridge fit`"
        )
    check_state(state, config["state_shapes"], state_path, cfg_path)
    return config, state
