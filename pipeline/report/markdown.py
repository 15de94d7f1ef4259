"""The report as Markdown tables (summary.md) and its machine-readable summary (summary.json)."""

from __future__ import annotations

from embridge.report.tables import (
    GAP_COLUMNS,
    ReportConfig,
    headline_means,
    mean_or_none,
    method_order,
    metric_keys,
    pair_order,
    sweep_order,
    value,
)


def table(rows: list[str], columns: list[str], cells: dict[tuple[str, str], float | None],
          base: dict[str, float | None] | None, decimals: int, base_name: str | None = None,
          bold: bool = True, ci: dict | None = None, change: dict | None = None) -> str:
    """Markdown table; each cell 'value [lo, hi] (+delta vs base)' (not on the base row).

    ci: {(row, col): [lo, hi]} 95% intervals; change: {(row, col): {"delta", "ci", "real"}} the paired
    bootstrap against the base: a change is marked * only when its interval excludes 0. The highest
    value of a column is bold only when its interval does not overlap the runner-up's (metrics without
    any interval, as older files: the highest value is bold)."""
    lines = ["| method | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    ci = {k: v for k, v in (ci or {}).items() if v is not None}
    change = change or {}
    with_ci = {c for _, c in ci}
    best = {}
    for c in columns:
        ranked = sorted(((cells.get((r, c)), r) for r in rows if cells.get((r, c)) is not None), reverse=True)
        best[c] = None
        if not bold or not ranked or len(rows) < 2:
            continue
        top = ranked[0][1]
        if ci and c not in with_ci:
            continue  # a column without intervals beside columns with them (a mean over pairs): no bold
        if len(ranked) > 1 and ci:
            a, b = ci.get((top, c)), ci.get((ranked[1][1], c))
            if a is None or b is None or a[0] <= b[1] or round(ranked[0][0], decimals) == round(ranked[1][0], decimals):
                continue  # overlapping (or unknown) intervals: nothing is bold
        best[c] = round(ranked[0][0], decimals)
    for r in rows:
        out = []
        for c in columns:
            v = cells.get((r, c))
            if v is None:
                out.append("–")
                continue
            s = str(v) if isinstance(v, int) else f"{v:.{decimals}f}"
            if best[c] is not None and round(v, decimals) == best[c]:
                s = f"**{s}**"
            if (r, c) in ci and ci[(r, c)] is not None:
                lo, hi = ci[(r, c)]
                s += f" [{lo:.{decimals}f}, {hi:.{decimals}f}]"
            b = None if base is None else base.get(c)
            ch = change.get((r, c))
            if r != base_name and ch is not None:
                s += f" ({ch['delta']:+.{decimals}f}{'*' if ch.get('real') else ''})"
            elif b is not None and r != base_name:
                s += f" ({v - b:+.{decimals}f})"
            out.append(s)
        lines.append(f"| {r} | " + " | ".join(out) + " |")
    return "\n".join(lines) + "\n"


def _interval(m: dict, key: str, metric: str):
    r = m.get("retrieval", {}).get(key, {})
    return (r.get("ci") or {}).get(metric)


def _change(m: dict, key: str, metric: str):
    r = m.get("retrieval", {}).get(key, {})
    return (r.get("vs_raw") or {}).get(metric)


def provenance(metrics: dict[str, dict], names: list[str], pairs) -> list[str]:
    """The seeds, the settings chosen on val, and the test queries per direction (too small marked)."""
    parts = []
    seeds = sorted({tuple(m.get("seeds") or [m.get("config", {}).get("seed")]) for m in metrics.values()})
    boot = next((m["bootstrap"] for m in metrics.values() if "bootstrap" in m), None)
    parts.append("Seeds: " + "; ".join(", ".join(str(s) for s in t) for t in seeds)
                 + (f". Intervals: 95% bootstrap over test queries ({boot['resamples']} resamples, seed {boot['seed']}; "
                    f"whole groups resampled for {', '.join(m for m, g in sorted(boot['groups'].items()) if g) or 'none'}); "
                    "a change against raw marked * has a paired-bootstrap interval that excludes 0.\n" if boot else ".\n"))
    rows = ["| method | chosen on | candidates | chosen | val score |", "|---|---|---:|---|---:|"]
    for n in names:
        sel = metrics[n].get("selection")
        if sel:
            chosen = ", ".join(f"{k}={v}" for k, v in sel.get("chosen", {}).items()) or "(fit block as given)"
            vs = sel.get("val_score")
            rows.append(f"| {n} | {sel.get('split') or '–'} | {sel.get('candidates')} | {chosen} | "
                        + ("–" if vs is None else f"{vs:.4f}") + " |")
    if len(rows) > 2:
        parts += ["## Settings chosen on val (mean unpaired headline metric over seeds; ties to the first listed)\n",
                  "\n".join(rows) + "\n"]
    first = metrics[names[0]]
    q = ["| direction | test queries | groups | readable |", "|---|---:|---:|---|"]
    for k, _ in pairs:
        r = first["retrieval"].get(k, {})
        q.append(f"| {k} | {r.get('queries', '–')} | {r.get('groups', '–')} | "
                 + ("too small (< min_queries)" if r.get("too_small") else "yes") + " |")
    parts += ["## Test queries per direction\n", "\n".join(q) + "\n"]
    return parts


def render_markdown(metrics: dict[str, dict], cfg: ReportConfig) -> str:
    names = method_order(metrics, cfg.baseline)
    base = metrics.get(cfg.baseline)
    pairs = pair_order(metrics)
    keys = metric_keys(metrics)
    d, h = cfg.decimals, cfg.headline
    tag = {True: "paired", False: "unpaired"}
    parts = ["# embridge summary\n",
             f"Methods: {', '.join(names)}. Cells: value on the test split "
             + (f"(change against `{cfg.baseline}`); " if base else f"(no `{cfg.baseline}` metrics: no changes shown); ")
             + "mean over seeds [95% interval] where the metrics have intervals; "
             "best per column in **bold** only where its interval does not overlap the runner-up's "
             "(the means over pairs have no interval and no bold). "
             "Unpaired pairs (never used in fitting) come first.\n"]

    cols = [f"{k} ({tag[p]})" for k, p in pairs] + ["mean unpaired", "mean paired"]
    cells = {}
    for n in names:
        for k, p in pairs:
            cells[(n, f"{k} ({tag[p]})")] = value(metrics[n], "retrieval", k, h)
        means = headline_means(metrics[n], pairs, h)
        cells[(n, "mean unpaired")], cells[(n, "mean paired")] = means["unpaired"], means["paired"]
    base_row = {c: cells.get((cfg.baseline, c)) for c in cols} if base else None
    ci = {(n, f"{k} ({tag[p]})"): _interval(metrics[n], k, h) for n in names for k, p in pairs}
    change = {(n, f"{k} ({tag[p]})"): _change(metrics[n], k, h) for n in names for k, p in pairs}
    parts += provenance(metrics, names, pairs)
    parts += [f"## Retrieval {h}, every pair\n",
              table(names, cols, cells, base_row, d, cfg.baseline, ci=ci, change=change)]

    parts.append("## Retrieval by pair\n")
    for k, p in pairs:
        cells = {(n, c): value(metrics[n], "retrieval", k, c) for n in names for c in keys}
        base_row = {c: value(base, "retrieval", k, c) for c in keys} if base else None
        ci = {(n, c): _interval(metrics[n], k, c) for n in names for c in keys}
        change = {(n, c): _change(metrics[n], k, c) for n in names for c in keys}
        small = any(metrics[n]["retrieval"].get(k, {}).get("too_small") for n in names)
        parts += [f"### {k.replace('->', ' → ')} ({tag[p]})" + (" — too few test queries to read" if small else "") + "\n",
                  table(names, keys, cells, base_row, d, cfg.baseline, ci=ci, change=change)]

    zs = sorted({(m, o) for x in metrics.values() for m, inner in x["zeroshot"].items() for o in (inner or {})},
                key=lambda mo: (dict(pairs).get(f"{mo[0]}->{mo[1]}", True), mo))
    top_keys = sorted({t for x in metrics.values() for inner in x["zeroshot"].values() for acc in (inner or {}).values()
                       for t in (acc or {})}, key=lambda t: int(t[3:]))
    for t in top_keys:
        cols = [f"{m} vs {o}" + ("" if dict(pairs).get(f"{m}->{o}", True) else " (unpaired)") for m, o in zs]
        cells = {(n, c): value(metrics[n], "zeroshot", m, o, t) for n in names for c, (m, o) in zip(cols, zs, strict=True)}
        base_row = {c: value(base, "zeroshot", m, o, t) for c, (m, o) in zip(cols, zs, strict=True)} if base else None
        parts += [f"## Zero-shot classification {t} (test rows of the first modality against class prototypes of the second)\n",
                  table(names, cols, cells, base_row, d, cfg.baseline)]

    parts.append("## Gap diagnostics (test split; no best marked, no changes shown)\n")
    gcols = [c for c in GAP_COLUMNS if any(value(x, "gap", k, c) is not None for x in metrics.values() for k in x["gap"])]
    for k, p in pair_order(metrics, "gap"):
        kinds = {x["gap"].get(k, {}).get("pairs") for x in metrics.values()} - {None}
        cells = {(n, c): value(metrics[n], "gap", k, c) for n in names for c in gcols}
        lines = table(names, gcols, cells, None, d, bold=False)
        parts += [f"### {k} ({tag[p]}; {'/'.join(sorted(kinds)) or '?'} pairs)\n", lines]
    return "\n".join(parts)


def summary(metrics: dict[str, dict], sweep: dict[int, dict[str, dict]], cfg: ReportConfig) -> dict:
    """Machine-readable summary (for `dvc metrics`): per method, mean retrieval over unpaired / paired pairs."""
    pairs = pair_order(metrics)
    keys = metric_keys(metrics)
    out: dict = {"baseline": cfg.baseline, "headline": cfg.headline, "methods": {}, "sweep": {}}
    for n in method_order(metrics, cfg.baseline):
        entry = {}
        for group, flag in (("unpaired", False), ("paired", True)):
            entry[group] = {k: mean_or_none(value(metrics[n], "retrieval", pk, k) for pk, p in pairs if p == flag) for k in keys}
        out["methods"][n] = entry
    for ppc in sweep_order(sweep):
        ms = sweep[ppc]
        sp = pair_order(ms)
        out["sweep"][str(ppc)] = {n: headline_means(ms[n], sp, cfg.headline)["unpaired"] for n in method_order(ms, cfg.baseline)}
    return out


def sweep_table(sweep: dict[int, dict[str, dict]], cfg: ReportConfig) -> str:
    names = method_order({n for ms in sweep.values() for n in ms}, cfg.baseline)
    order = sweep_order(sweep)
    cols = [("all" if p == 0 else str(p)) for p in order]
    cells = {}
    for p, c in zip(order, cols, strict=True):
        for n in names:
            if n in sweep[p]:
                cells[(n, c)] = headline_means(sweep[p][n], pair_order(sweep[p]), cfg.headline)["unpaired"]
    return table(names, cols, cells, None, cfg.decimals)
