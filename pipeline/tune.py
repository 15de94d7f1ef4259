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


def unpaired(modalities, train_pairs) -> list[tuple[str, str]]:
    """The ordered modality pairs a val score averages over: those no fit saw a pair of, or every
    ordered pair when all of them are paired (e.g. image and text alone)."""
    every = list(permutations(sorted(modalities), 2))
    return [(a, b) for a, b in every if not is_paired(a, b, train_pairs)] or every


def val_score(method, tables: dict[str, EmbeddingTable], train_pairs, metric: str = "R@1", kmax: int = 10,
              split: str = "val") -> float:
    """Mean of `metric` over the unpaired ordered modality pairs (all pairs when every one is paired),
    on `split` rows (queries and gallery).
    Raises InputError when a modality of an unpaired pair has no rows in the split."""
    from embridge.evaluation.metrics import retrieval_metrics
    from embridge.evaluation.relevance import row_keys

    directions = unpaired(tables, train_pairs)
    if not directions:
        raise ConfigError(f"tune: one modality ({sorted(tables)}); a val score needs two")
    rows = {}
    for m in sorted({m for d in directions for m in d}):
        v = tables[m].select_split(split)
        if len(v) == 0:
            raise InputError(f"tune: modality {m!r} has no rows in split {split!r}; a grid (tune.<method>) is chosen on "
                             f"val rows (prepare.val_fraction, import/synth --val-fraction)")
        rows[m] = (v, method.transform(v.X, m))
    scores = []
    for a, b in directions:
        qk, bk = row_keys(rows[a][0], rows[b][0])
        r = retrieval_metrics(rows[a][1], rows[b][1], qk, bk, kmax=max(kmax, _k(metric)), where=f"val {a}->{b}")
        if r.get(metric) is not None:
            scores.append(r[metric])
    if not scores:
        raise ConfigError(f"tune: no modality pair with a {metric} score on {split}")
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
    from embridge.methods import get_method, method_params, train_log
    from embridge.pairing import choose_budget
    from embridge.runs import seed_name

    cands = candidates(params.tune.get(name))
    has_val = all((tables[m].split == "val").any() for tables, _ in runs.values()
                  for m in {m for d in unpaired(tables, train_pairs) for m in d})
    if len(cands) > 1 and not has_val:
        raise InputError(f"tune.{name}: {len(cands)} candidates, but the tables have no 'val' rows to choose on "
                         f"(prepare.val_fraction, import/synth --val-fraction)")
    best, best_score, all_scores, own_budgets = None, None, [], {}
    for i, cand in enumerate(cands):
        block = {**(params.fit.get(name) or {}), **cand}
        ests, scores = {}, []
        for s, (tables, budget) in runs.items():
            kw = method_params(params, name, block=block, where=f"{params.path}: tune.{name}", **{**overrides, "seed": s})
            if budget is None:  # no pairs stage: one budget per seed, the same for every candidate
                n = overrides.get("pairs_per_class")
                n = kw.get("pairs_per_class", params.pairs.pairs_per_class if n is None else n)
                budget = own_budgets.setdefault(s, choose_budget({m: t.select_split("train") for m, t in tables.items()},
                                                         train_pairs, n, s, params.pairs.cap_instances))
            with train_log.scope(seed_name(s), *([f"candidate-{i}"] if len(cands) > 1 else [])):
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
