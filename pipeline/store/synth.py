"""Synthetic embedding tables with the C^3 geometry and a known answer (design section 7).

Row i of every modality m comes from one shared latent z_i (class mean + spread):

    u_i^m = sqrt(1 - gap^2) * B z_i + gap * g_m            (B: d x k orthonormal span, g_m unit, g_m ⟂ span(B))
    x_i^m = normalize(R_m (u_i^m + noise * eps / sqrt(d)))  (R_m: d x d rotation, identity for the anchor)

so, before rotation and noise, e_a - e_b = gap * (g_a - g_b) is a constant vector orthogonal to the
shared span (C^3, Zhang et al. 2024, eq. 1), and R_m^T is what Procrustes should recover.
Deterministic: each chunk of CHUNK rows draws from its own seeded generator.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import polars as pl
from embridge.config.modalities import DEFAULT_ANCHOR, DEFAULT_MODALITIES, check_modality_name
from embridge.errors import ConfigError
from embridge.files import atomic_path, check_output_dir
from embridge.store import EmbeddingTable, Manifest, TableWriter
from embridge.store.manifest import replaceable

CHUNK = 65_536  # rows per generator chunk (fixed, so output does not depend on memory settings)
TRUTH = "truth.safetensors"


@dataclass
class SynthConfig:
    modalities: list[str] = field(default_factory=lambda: list(DEFAULT_MODALITIES))
    anchor: str = DEFAULT_ANCHOR  # modality left unrotated (R = I)
    n: int = 2000  # rows per modality (instances; row i of every modality is one instance)
    dim: int = 64  # embedding dimension d
    latent_dim: int = 16  # k, dimension of the shared span (k + #modalities <= d)
    n_classes: int = 10  # class labels 0..n_classes-1
    spread: float = 0.6  # within-class spread of the latent, relative to unit class means
    gap: float = 0.5  # norm of each modality's gap vector, in [0, 1)
    noise: float = 0.1  # alignment noise (expected norm of the noise vector)
    rotate: bool = True  # give every non-anchor modality a random rotation R_m
    test_fraction: float = 0.2  # share of instances in the test split
    val_fraction: float = 0.0  # share of instances in the val split (for choosing a method's settings)
    pair_fraction: float = 1.0  # share of instances whose rows carry a pair_id
    dtype: str = "float32"  # float32 | float16
    seed: int = 0

    def check(self) -> None:
        for m in self.modalities:  # each names a folder under --out: no path may leave it
            check_modality_name(m, "synth modalities")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"synth {f.name} = {value}: expected a finite number")
        if len(set(self.modalities)) != len(self.modalities) or not self.modalities:
            raise ConfigError(f"synth modalities {self.modalities}: expected distinct names")
        if self.anchor not in self.modalities:
            raise ConfigError(f"synth anchor {self.anchor!r} is not one of the modalities {self.modalities}")
        if self.n < 1 or self.n_classes < 1:
            raise ConfigError(f"synth n = {self.n}, n_classes = {self.n_classes}: expected positive integers")
        if self.latent_dim < 1 or self.latent_dim + len(self.modalities) > self.dim:
            raise ConfigError(
                f"synth latent_dim = {self.latent_dim}, dim = {self.dim}: need 1 <= latent_dim and "
                f"latent_dim + number of modalities ({len(self.modalities)}) <= dim"
            )
        if not 0 <= self.gap < 1:
            raise ConfigError(f"synth gap = {self.gap}: expected 0 <= gap < 1")
        if self.noise < 0 or self.spread < 0:
            raise ConfigError(f"synth noise = {self.noise}, spread = {self.spread}: expected >= 0")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"synth test_fraction = {self.test_fraction}: expected 0 < f < 1")
        if not 0 <= self.val_fraction < 1 - self.test_fraction:
            raise ConfigError(f"synth val_fraction = {self.val_fraction}: expected 0 <= f < 1 - test_fraction")
        if not 0 <= self.pair_fraction <= 1:
            raise ConfigError(f"synth pair_fraction = {self.pair_fraction}: expected 0 <= f <= 1")
        if self.dtype not in ("float32", "float16"):
            raise ConfigError(f"synth dtype = {self.dtype!r}: expected float32 or float16")


@dataclass
class SynthTruth:
    """The planted answer. basis: (d, k); gaps: (M, d) in the common frame; rotations: (M, d, d)."""

    config: SynthConfig
    basis: np.ndarray
    gaps: np.ndarray
    rotations: np.ndarray
    class_means: np.ndarray

    def rotation(self, modality: str) -> np.ndarray:
        return self.rotations[self.config.modalities.index(modality)]

    def gap_vector(self, modality: str) -> np.ndarray:
        return self.gaps[self.config.modalities.index(modality)]

    def save(self, path: str | Path) -> None:
        from safetensors.numpy import save_file

        tensors = {"basis": self.basis, "gaps": self.gaps, "rotations": self.rotations, "class_means": self.class_means}
        with atomic_path(path) as tmp:
            save_file({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in tensors.items()}, str(tmp),
                      metadata={"config": json.dumps(asdict(self.config))})

    @classmethod
    def load(cls, path: str | Path) -> SynthTruth:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            config = SynthConfig(**json.loads(f.metadata()["config"]))
            t = {k: f.get_tensor(k) for k in f.keys()}
        return cls(config, t["basis"], t["gaps"], t["rotations"], t["class_means"])


def _orthonormal(rng: np.random.Generator, d: int, k: int) -> np.ndarray:
    Q, R = np.linalg.qr(rng.standard_normal((d, k)))
    return Q * np.sign(np.diag(R))  # Haar-distributed columns


def plant(cfg: SynthConfig) -> SynthTruth:
    """Draw the span, gap directions, rotations and class means."""
    cfg.check()
    rng = np.random.default_rng([cfg.seed, 7919])
    M, d, k = len(cfg.modalities), cfg.dim, cfg.latent_dim
    Q = _orthonormal(rng, d, k + M)
    basis, gap_dirs = Q[:, :k], Q[:, k:].T  # gap directions: unit, orthogonal to the span and to each other
    rotations = np.stack(
        [np.eye(d) if (m == cfg.anchor or not cfg.rotate) else _orthonormal(rng, d, d) for m in cfg.modalities]
    )
    class_means = rng.standard_normal((cfg.n_classes, k))
    class_means /= np.linalg.norm(class_means, axis=1, keepdims=True)
    return SynthTruth(cfg, basis, cfg.gap * gap_dirs, rotations, class_means)


def generate_chunks(truth: SynthTruth):
    """Yield (start, labels, split, pair_ids, {modality: X}) per chunk of CHUNK instances."""
    cfg = truth.config
    k = cfg.latent_dim
    scale = np.sqrt(1.0 - cfg.gap**2)
    for c, start in enumerate(range(0, cfg.n, CHUNK)):
        n = min(CHUNK, cfg.n - start)
        rng = np.random.default_rng([cfg.seed, 0, c])
        labels = rng.integers(0, cfg.n_classes, size=n)
        z = truth.class_means[labels] + cfg.spread / np.sqrt(k) * rng.standard_normal((n, k))
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        u = rng.random(n)
        test = u < cfg.test_fraction
        val = ~test & (u < cfg.test_fraction + cfg.val_fraction)
        paired = rng.random(n) < cfg.pair_fraction
        shared = scale * (z @ truth.basis.T)  # (n, d)
        split = np.where(test, "test", np.where(val, "val", "train"))
        idx = np.arange(start, start + n)
        pair_ids = [f"p{i:08d}" if p else None for i, p in zip(idx, paired, strict=True)]
        Xs = {}
        for m_i, m in enumerate(cfg.modalities):
            rng_m = np.random.default_rng([cfg.seed, 1 + m_i, c])
            x = shared + truth.gaps[m_i] + cfg.noise / np.sqrt(cfg.dim) * rng_m.standard_normal((n, cfg.dim))
            x = x @ truth.rotations[m_i].T
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            Xs[m] = x.astype(np.float32)
        yield start, labels, split, pair_ids, Xs


def class_names(cfg: SynthConfig) -> list[str]:
    return [f"class{c}" for c in range(cfg.n_classes)]


def write_synthetic(out_root: str | Path, cfg: SynthConfig) -> SynthTruth:
    """Write one embedding table per modality under out_root/<modality>/ and out_root/truth.safetensors."""
    out_root = Path(out_root)
    truth = plant(cfg)  # checks cfg before anything is written
    check_output_dir(out_root, lambda name: name == TRUTH or name in cfg.modalities or name.startswith(f".{TRUTH}."),
                     flag="--out")
    for m in cfg.modalities:
        check_output_dir(out_root / m, replaceable(out_root / m),
                         flag=f"--out {out_root}: {m}/")
    out_root.mkdir(parents=True, exist_ok=True)
    writers = {
        m: TableWriter(out_root / m, m, cfg.dim, cfg.dtype, encoder="synthetic", class_names=class_names(cfg),
                       extra={"synth": asdict(cfg)})
        for m in cfg.modalities
    }
    for start, labels, split, pair_ids, Xs in generate_chunks(truth):
        for m, X in Xs.items():
            ids = [f"{m}-{i:08d}" for i in range(start, start + len(X))]
            writers[m].write(ids, split, X, label=labels, pair_id=pair_ids)
    for w in writers.values():
        w.close()
    truth.save(out_root / TRUTH)
    return truth


def make_synthetic(cfg: SynthConfig) -> tuple[dict[str, EmbeddingTable], SynthTruth]:
    """The same data as write_synthetic, in memory (float32): {modality: EmbeddingTable}, truth."""
    truth = plant(cfg)
    parts: dict[str, list] = {m: [] for m in cfg.modalities}
    for start, labels, split, pair_ids, Xs in generate_chunks(truth):
        for m, X in Xs.items():
            meta = pl.DataFrame(
                {"id": [f"{m}-{i:08d}" for i in range(start, start + len(X))], "split": split,
                 "label": labels.astype(np.int32), "pair_id": pair_ids},
                schema={"id": pl.String, "split": pl.String, "label": pl.Int32, "pair_id": pl.String},
            )
            parts[m].append((X, meta))
    tables = {}
    for m, chunks in parts.items():
        X = np.concatenate([x for x, _ in chunks])
        if cfg.dtype == "float16":
            X = X.astype(np.float16).astype(np.float32)
        manifest = Manifest(modality=m, dim=cfg.dim, dtype=cfg.dtype, num_rows=len(X), shards=[],
                            encoder="synthetic", class_names=class_names(cfg))
        tables[m] = EmbeddingTable(m, X, pl.concat([meta for _, meta in chunks]), manifest)
    return tables, truth
