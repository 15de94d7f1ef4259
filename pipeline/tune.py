"""Choosing a method's settings on the val split: a small grid from params.yaml (`tune.<method>`),
every candidate fitted on train and scored on val (mean unpaired headline metric over seeds), ties
broken toward the simpler setting (the earlier candidate: a grid lists its simplest value first)."""

from __future__ import annotations

from itertools import permutations, product

import numpy as np
from embridge.config.modalities import is_paired
from embridge.errors import ConfigError, InputError
from embridge.store import EmbeddingTable

TIE = 1e-9  # val scores closer than this are a tie (the earlier candidate wins)


def candidates(grid: dict[str, list] | None) -> list[dict]:
    """Every setting of the grid, in order: the product of the lists, the first listed value of each
    key varying slowest. {} or None -> [{}] (one candidate, the fit block as it is)."""
    if not grid:
        return [{}]
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in product(*(grid[k] for k in keys))]


def val_score(method, tables: dict[str, EmbeddingTable], train_pairs, metric: str = "R@1", kmax: int = 10,
              split: str = "val") -> float:
    """Mean of `metric` over the unpaired ordered modality pairs, on `split` rows (queries and gallery).
    Raises InputError when a modality has no rows in the split."""
    from embridge.evaluation.metrics import retrieval_metrics
    from embridge.evaluation.relevance import row_keys

    rows = {}
    for m, t in tables.items():
        v = t.select_split(split)
        if len(v) == 0:
            raise InputError(f"tune: modality {m!r} has no rows in split {split!r}; a grid (tune.<method>) is chosen on "
                             f"val rows (prepare.val_fraction, import/synth --val-fraction)")
        rows[m] = (v, method.transform(v.X, m))
    scores = []
    for a, b in permutations(sorted(tables), 2):
        if is_paired(a, b, train_pairs):
            continue
        qk, bk = row_keys(rows[a][0], rows[b][0])
        r = retrieval_metrics(rows[a][1], rows[b][1], qk, bk, kmax=max(kmax, _k(metric)), where=f"val {a}->{b}")
        if r.get(metric) is not None:
            scores.append(r[metric])
    if not scores:
        raise ConfigError(f"tune: no unpaired modality pair with a {metric} score on {split}; every pair is in pairs.train")
    return float(np.mean(scores))


def _k(metric: str) -> int:
    return int(metric[2:]) if metric.startswith("R@") else 1


def choose(scores: list[list[float]]) -> int:
    """Index of the best candidate by mean score over seeds (scores[c][s]); ties toward the earliest."""
    means = [float(np.mean(s)) for s in scores]
    best = 0
    for i, v in enumerate(means):
        if v > means[best] + TIE:
            best = i
    return best


def fit_selected(name: str, params, runs: dict, anchor: str, train_pairs, metric: str = "R@1", **overrides) -> tuple[dict, dict]:
    """Fit method `name` once per seed for every candidate of `params.tune[name]` and keep the one with
    the best mean val score. runs: {seed: (tables, label budget or None)}; overrides: constructor
    keywords that win over params.yaml (device, pairs_per_class). Returns ({seed: fitted method},
    selection {"split", "candidates", "chosen", "val_score", "scores"})."""
    from embridge.methods import get_method, method_params

    cands = candidates(params.tune.get(name))
    has_val = all((t.split == "val").any() for tables, _ in runs.values() for t in tables.values())
    if len(cands) > 1 and not has_val:
        raise InputError(f"tune.{name}: {len(cands)} candidates, but the tables have no 'val' rows to choose on "
                         f"(prepare.val_fraction, import/synth --val-fraction)")
    best, best_score, all_scores = None, None, []
    for i, cand in enumerate(cands):
        block = {**(params.fit.get(name) or {}), **cand}
        ests, scores = {}, []
        for s, (tables, budget) in runs.items():
            kw = method_params(params, name, block=block, where=f"{params.path}: tune.{name}", **{**overrides, "seed": s})
            ests[s] = get_method(name, **kw).fit(tables, anchor, train_pairs, budget=budget)
            if has_val:
                scores.append(val_score(ests[s], tables, train_pairs, metric))
        all_scores.append(scores)
        score = float(np.mean(scores)) if scores else None
        if best is None or (score is not None and score > best_score + TIE):
            best, best_score, chosen = ests, score, (i, cand)
    selection = {"split": "val" if has_val else None, "candidates": len(cands), "chosen": chosen[1],
                 "val_score": best_score, "metric": metric,
                 "scores": [float(np.mean(s)) if s else None for s in all_scores]}
    return best, selection
