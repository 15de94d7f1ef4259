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
              help="params.yaml: sections evaluate, pairs.train, seed, device, anchor, fit.<method>.")
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

    from embridge.config.device import resolve_device
    from embridge.config.modalities import parse_pairs
    from embridge.errors import ConfigError
    from embridge.evaluation.dvc_metrics import headline, write_dvc_metrics, write_pair_plot
    from embridge.evaluation.runner import evaluate, write_metrics
    from embridge.files import check_no_input_inside, check_output_file
    from embridge.methods import get_method, load_method, method_params
    from embridge.stages.params import load_params
    from embridge.store import load_tables

    p = load_params(params_path)
    cfg = p.section("evaluate")
    check_output_file(out_path)  # before any work
    check_no_input_inside(out_path, [tables_dir] + ([map_dir] if map_dir else []))
    method = load_method(map_dir) if map_dir else None
    tables = load_tables(tables_dir)
    if method is not None:  # the map's training pairs decide what is paired
        train_pairs = [tuple(sorted(q)) for q in method.train_pairs_]
        if pairs is not None and set(parse_pairs(pairs, modalities=tables)) != set(train_pairs):
            raise ConfigError(
                f"--pairs {pairs}: the map {map_dir} was fitted on {['-'.join(q) for q in train_pairs]}, and its "
                f"training pairs decide what is paired; drop --pairs or give the same pairs"
            )
    else:
        if pairs is None and params_path is None:
            echo("note: no --pairs and no --params: every modality pair is marked unpaired", err=True)
        train_pairs = parse_pairs(pairs if pairs is not None else (p.pairs.train if params_path else []), modalities=tables)
    if method is None:
        if method_name is None:
            raise ConfigError("evaluate: give --map MAPDIR (a fitted method) or --method NAME (fitted here, e.g. raw)")
        anchor = anchor or p.anchor
        if anchor not in tables:
            raise ConfigError(f"anchor {anchor!r} has no table in {tables_dir} (found {sorted(tables)}); pass --anchor")
        method = get_method(method_name, **method_params(p, method_name, block=None if params_path else {},
                                                         seed=seed, device=device))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # printed below from fit_info
            method.fit(tables, anchor, train_pairs)
    for _, info in sorted(getattr(method, "fit_info_", {}).items()):
        if info.get("warning"):
            click.echo(f"warning: {info['warning']}", err=True)
    metrics = evaluate(tables, method, train_pairs, cfg, name=method_name, seed=p.seed if seed is None else seed,
                       device=str(resolve_device(p.device if device is None else device)))
    write_metrics(metrics, out_path)
    for note in metrics.get("notes", []):
        echo(f"note: {note}", err=True)
    head = headline(metrics)
    for k, v in metrics["retrieval"].items():  # -v: every pair's retrieval metrics
        detail(f"  {k} ({'paired' if v['paired'] else 'unpaired'}): "
               + ", ".join(f"{m}={v[m]}" for m in v if m not in ("paired", "queries", "gallery")))
    if dvc_path:
        write_dvc_metrics(metrics, dvc_path)
    if plot_path:
        write_pair_plot(metrics, plot_path)
    unpaired = {k: v.get("R@1") for k, v in metrics["retrieval"].items() if not v["paired"]}
    if as_json:
        emit_json({"method": metrics["method"], "out": str(out_path), "dvc_metrics": dvc_path,
                   "headline": head, "unpaired": unpaired})
    else:
        pairs_txt = ", ".join(f"{k} R@1={v}" for k, v in unpaired.items())
        echo(f"{metrics['method']}: wrote {out_path}" + (f" (unpaired: {pairs_txt})" if unpaired else ""))
