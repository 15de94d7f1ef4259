"""The low-data sweep: bind, fit and evaluate at one `pairs_per_class` value (one DVC stage per value).

Each sweep point re-binds the frozen features, once per seed, on the label budget of that point
(pairs/<pairs_per_class>/seed-<s>.json: the same rows for bind and every method, so the x axis is
exactly the labelled rows per class), fits the sweep's methods on that unified space, and writes
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


def run_point(features: dict[str, EmbeddingTable], pairs_per_class: int, params, out_dir: str | Path,
              budgets: dict | None = None) -> list[Path]:
    """Bind + fit + evaluate every sweep method at one cap, once per seed; returns the metrics files written
    (means over seeds with intervals, as `embridge evaluate` writes them).

    params: a loaded `embridge.config.params.Params` (global seeds/device/anchor/pairs and the bind,
    evaluate and sweep sections). budgets: {seed: LabelBudget} from the `pairs` stage (pairs/<n>/);
    None chooses them here with `pairs_per_class` (the same choice the `pairs` stage makes).
    """
    from embridge.bind import bind_tables
    from embridge.config.device import resolve_device
    from embridge.data.groups import row_groups
    from embridge.evaluation.runner import evaluate_seeds, write_metrics
    from embridge.methods import get_method, method_params
    from embridge.pairing import choose_budget

    cfg = params.section("sweep")
    ecfg = params.section("evaluate")
    pairs = params.train_pairs
    train = {m: t.select_split("train") for m, t in features.items()}
    if budgets is None:
        budgets = {s: choose_budget(train, pairs, pairs_per_class, s, params.pairs.cap_instances) for s in params.run_seeds}
    for s, b in budgets.items():
        if b.pairs_per_class != pairs_per_class:
            raise ConfigError(f"sweep at {pairs_per_class} pairs per class was given a budget of {b.pairs_per_class} (seed {s})")
    unified = {}
    for s, b in budgets.items():
        Z = bind_tables(features, params.anchor, pairs, params.section("bind"), pairs_per_class=pairs_per_class,
                        seed=s, device=params.device, budget=b)
        unified[s] = {m: EmbeddingTable(m, Z[m], t.meta, t.manifest) for m, t in features.items()}
    device = str(resolve_device(params.device))
    groups = {m: row_groups(t.select_split(ecfg.split).ids) for m, t in features.items()}
    written = []
    for name in cfg.methods:
        runs = []
        for s, b in budgets.items():
            kwargs = method_params(params, name, block=cfg.fit.get(name) or {}, where=f"{params.path}: sweep.fit.{name}",
                                   pairs_per_class=pairs_per_class, seed=s)
            est = get_method(name, **kwargs).fit(unified[s], params.anchor, pairs, budget=b)
            runs.append((s, unified[s], est, get_method("raw").fit(unified[s], params.anchor, pairs)))
        metrics = evaluate_seeds(runs, pairs, ecfg, name=name, groups=groups, device=device)
        metrics["pairs_per_class"] = pairs_per_class
        written.append(write_metrics(metrics, Path(out_dir) / f"{name}.json"))
    return written
