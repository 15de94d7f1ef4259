"""The low-data sweep: bind, fit and evaluate at one `pairs_per_class` value (one DVC stage per value).

Each sweep point re-binds the frozen features with at most `pairs_per_class` paired train rows per
class, fits the sweep's methods on that unified space with the same cap, and writes
`metrics/sweep/<pairs_per_class>/<method>.json` (the layout `embridge report` plots).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from embridge.errors import ConfigError
from embridge.store import EmbeddingTable


@dataclass
class SweepConfig:
    """The `sweep:` section of params.yaml."""

    pairs_per_class: list[int] = field(default_factory=lambda: [1, 2, 5, 10, 50, 0])  # one stage per value; 0 = all pairs
    methods: list[str] = field(default_factory=lambda: ["raw", "procrustes", "emergentbridge"])  # fitted at every point
    fit: dict[str, dict] = field(default_factory=dict)  # method -> keyword arguments for the sweep (default: the method's defaults)

    def check(self) -> None:
        if any(n < 0 for n in self.pairs_per_class) or len(set(self.pairs_per_class)) != len(self.pairs_per_class):
            raise ConfigError(f"pairs_per_class = {self.pairs_per_class}: expected distinct integers >= 0 (0 = all)")
        if not self.methods:
            raise ConfigError("methods = []: expected at least one method (names are checked against the registry on loading)")


def run_point(features: dict[str, EmbeddingTable], pairs_per_class: int, params, out_dir: str | Path) -> list[Path]:
    """Bind + fit + evaluate every sweep method at one cap; returns the metrics files written.

    params: a loaded `embridge.config.params.Params` (global seed/device/anchor/pairs and the bind,
    evaluate and sweep sections).
    """
    from embridge.bind import bind_tables
    from embridge.config.device import resolve_device
    from embridge.evaluation.runner import evaluate, write_metrics
    from embridge.methods import get_method, method_params

    cfg = params.section("sweep")
    pairs = params.train_pairs
    Z = bind_tables(features, params.anchor, pairs, params.section("bind"), pairs_per_class=pairs_per_class,
                    seed=params.seed, device=params.device)
    unified = {m: EmbeddingTable(m, Z[m], t.meta, t.manifest) for m, t in features.items()}
    device = str(resolve_device(params.device))
    written = []
    for name in cfg.methods:
        kwargs = method_params(params, name, block=cfg.fit.get(name) or {}, where=f"{params.path}: sweep.fit.{name}",
                                      pairs_per_class=pairs_per_class)
        est = get_method(name, **kwargs).fit(unified, params.anchor, pairs)
        metrics = evaluate(unified, est, pairs, params.section("evaluate"), name=name, seed=params.seed, device=device)
        metrics["pairs_per_class"] = pairs_per_class
        written.append(write_metrics(metrics, Path(out_dir) / f"{name}.json"))
    return written
