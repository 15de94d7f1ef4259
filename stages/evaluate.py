"""`embridge evaluate`: retrieval, zero-shot and gap metrics of one method -> metrics/<method>.json."""

import click
from embridge.stages.options import (
    detail,
    device_option,
    echo,
    emit_json,
    json_option,
    seed_option,
    tables_option,
)


@click.command("evaluate")
@tables_option
@click.option("--map", "map_dir", default=None, type=click.Path(),
              help="Fitted method folder (config.json + state.safetensors), e.g. maps/procrustes.")
@click.option("--out", "out_path", required=True, type=click.Path(), help="Metrics JSON to write.")
@click.option("--method", "method_name", default=None,
              help="Name in the output; without --map, the method fitted on the tables' train split (e.g. raw).")
@click.option("--params", "params_path", default=None, type=click.Path(),
              help="params.yaml: sections evaluate, pairs, seeds, device, anchor, fit.<method> (default: every default, as `embridge fit`).")
@click.option("--pairs", default=None, help="Pairs used in fitting, e.g. image-text,audio-text (overrides pairs.train).")
@click.option("--anchor", default=None, help="Anchor modality when fitting without --map (default: params' anchor, else text).")
@click.option("--dvc-metrics", "dvc_path", default=None, type=click.Path(),
              help="Also write the headline (mean unpaired R@1) here, the short file DVC reads as metrics "
                   "(e.g. metrics/dvc/<method>.json).")
@click.option("--dvc-plot", "plot_path", default=None, type=click.Path(),
              help="Also write the per-pair R@1 as CSV for a DVC bar plot (e.g. metrics/dvc/<method>.pairs.csv).")
@seed_option
@device_option
@json_option
def cli(tables_dir, map_dir, out_path, method_name, params_path, pairs, anchor, dvc_path, plot_path, seed, device,
        as_json):
    """Evaluate a method on every ordered modality pair of TABLES (test split) and write OUT.

    With --map the fitted method is loaded; without it, --method names a method that is fitted
    here on the tables' train split (meant for training-free methods such as raw).
    """
    import warnings
    from pathlib import Path

    from embridge.config.device import resolve_device
    from embridge.config.modalities import default_pairs, parse_pairs
    from embridge.data.groups import row_groups
    from embridge.errors import ConfigError, InputError
    from embridge.evaluation.dvc_metrics import headline, write_dvc_metrics, write_pair_plot
    from embridge.evaluation.runner import evaluate_seeds, write_metrics
    from embridge.files import check_no_input_inside, check_output_file, read_json
    from embridge.methods import get_method, load_method, method_params
    from embridge.runs import seed_entries
    from embridge.stages.params import load_params
    from embridge.store import load_tables

    p = load_params(params_path)
    cfg = p.section("evaluate")
    check_output_file(out_path)  # before any work
    check_no_input_inside(out_path, [tables_dir] + ([map_dir] if map_dir else []))
    from embridge.evaluation import counting

    counting.warm_up()  # the counting kernel loads while the tables are read (class relevance needs it)
    seeded = seed_entries(tables_dir)
    table_runs = {s: load_tables(d) for s, d in seeded.items()} or {p.seed if seed is None else seed: load_tables(tables_dir)}
    tables = next(iter(table_runs.values()))
    # the pairs a fit here uses are `embridge fit`'s (--pairs, else params.yaml, else the default pairs.train
    # among the tables' modalities)
    train_pairs = parse_pairs(pairs if pairs is not None else default_pairs(p, tables, params_path), modalities=tables)
    anchor = anchor or p.anchor
    selection = None
    if map_dir:
        maps = seed_entries(map_dir)
        if seeded and set(maps) != set(seeded):
            raise InputError(f"{map_dir}: fitted seeds {sorted(maps)} differ from the tables' seeds {sorted(seeded)} in {tables_dir}")
        methods = {s: load_method(maps[s] if seeded else map_dir) for s in table_runs}
        # the map's training pairs decide what is paired
        fitted = [tuple(sorted(q)) for q in next(iter(methods.values())).train_pairs_]
        if pairs is not None and set(train_pairs) != set(fitted):
            raise ConfigError(
                f"--pairs {pairs}: the map {map_dir} was fitted on {['-'.join(q) for q in fitted]}, and its "
                f"training pairs decide what is paired; drop --pairs or give the same pairs"
            )
        train_pairs = fitted
        if (Path(map_dir) / "selection.json").is_file():
            selection = read_json(Path(map_dir) / "selection.json", "")
    else:
        if not train_pairs and pairs is None and params_path is None:
            echo("note: no --pairs and no --params: every modality pair is marked unpaired", err=True)
        if method_name is None:
            raise ConfigError("evaluate: give --map MAPDIR (a fitted method) or --method NAME (fitted here, e.g. raw)")
        if anchor not in tables:
            raise ConfigError(f"anchor {anchor!r} has no table in {tables_dir} (found {sorted(tables)}); pass --anchor")
        # the same constructor arguments as `embridge fit` (params.yaml, else its defaults: one budget default)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # printed below from fit_info
            methods = {s: get_method(method_name, **method_params(p, method_name, seed=s, device=device)).fit(
                t, anchor, train_pairs) for s, t in table_runs.items()}
    for _, info in sorted(getattr(next(iter(methods.values())), "fit_info_", {}).items()):
        if info.get("warning"):
            click.echo(f"warning: {info['warning']}", err=True)
    runs = []
    for s, t in table_runs.items():
        # the baseline of the paired bootstrap: raw (the identity; it reads no pairs and no anchor)
        base = get_method("raw").fit(t, anchor if anchor in t else sorted(t)[0], train_pairs) if all(
            (x.split == "train").any() for x in t.values()) else None
        runs.append((s, t, methods[s], base))
    groups = {m: row_groups(x.select_split(cfg.split).ids) for m, x in tables.items()}
    metrics = evaluate_seeds(runs, train_pairs, cfg, name=method_name, groups=groups,
                             device=str(resolve_device(p.device if device is None else device)))
    if selection is not None:
        metrics["selection"] = selection
    write_metrics(metrics, out_path)
    for note in metrics.get("notes", []):
        echo(f"note: {note}", err=True)
    head = headline(metrics)
    for k, v in metrics["retrieval"].items():  # -v: every pair's retrieval metrics
        detail(f"  {k} ({'paired' if v['paired'] else 'unpaired'}): "
               + ", ".join(f"{m}={v[m]}" for m in ("R@1", "R@5", "R@10", "MRR", "mAP") if m in v))
    if dvc_path:
        write_dvc_metrics(metrics, dvc_path)
    if plot_path:
        write_pair_plot(metrics, plot_path)
    unpaired = {k: v.get("R@1") for k, v in metrics["retrieval"].items() if not v["paired"]}
    if as_json:
        emit_json({"method": metrics["method"], "out": str(out_path), "dvc_metrics": dvc_path,
                   "headline": head, "unpaired": unpaired, "seeds": metrics.get("seeds")})
    else:
        pairs_txt = ", ".join(f"{k} R@1={v}" for k, v in unpaired.items())
        echo(f"{metrics['method']}: wrote {out_path}, seeds {metrics.get('seeds')}"
             + (f" (unpaired: {pairs_txt})" if unpaired else ""))
