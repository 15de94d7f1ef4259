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
          bold: bool = True) -> str:
    """Markdown table; each cell 'value (+delta vs base)' (not on the base row), the highest per column in bold."""
    lines = ["| method | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    best = {}
    for c in columns:
        vals = [cells.get((r, c)) for r in rows]
        vals = [round(v, decimals) for v in vals if v is not None]
        best[c] = max(vals) if vals and bold else None
    for r in rows:
        out = []
        for c in columns:
            v = cells.get((r, c))
            if v is None:
                out.append("–")
                continue
            s = str(v) if isinstance(v, int) else f"{v:.{decimals}f}"
            if best[c] is not None and round(v, decimals) == best[c] and len(rows) > 1:
                s = f"**{s}**"
            b = None if base is None else base.get(c)
            if b is not None and r != base_name:
                s += f" ({v - b:+.{decimals}f})"
            out.append(s)
        lines.append(f"| {r} | " + " | ".join(out) + " |")
    return "\n".join(lines) + "\n"


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
             + "best per column in **bold**. Unpaired pairs (never used in fitting) come first.\n"]

    cols = [f"{k} ({tag[p]})" for k, p in pairs] + ["mean unpaired", "mean paired"]
    cells = {}
    for n in names:
        for k, p in pairs:
            cells[(n, f"{k} ({tag[p]})")] = value(metrics[n], "retrieval", k, h)
        means = headline_means(metrics[n], pairs, h)
        cells[(n, "mean unpaired")], cells[(n, "mean paired")] = means["unpaired"], means["paired"]
    base_row = {c: cells.get((cfg.baseline, c)) for c in cols} if base else None
    parts += [f"## Retrieval {h}, every pair\n", table(names, cols, cells, base_row, d, cfg.baseline)]

    parts.append("## Retrieval by pair\n")
    for k, p in pairs:
        cells = {(n, c): value(metrics[n], "retrieval", k, c) for n in names for c in keys}
        base_row = {c: value(base, "retrieval", k, c) for c in keys} if base else None
        parts += [f"### {k.replace('->', ' → ')} ({tag[p]})\n", table(names, keys, cells, base_row, d, cfg.baseline)]

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
