"""`embridge evaluate`: retrieval, zero-shot and gap metrics of one method -> metrics/<method>.json."""

import click


@click.command("evaluate")
@click.option("--tables", "tables_dir", required=True, type=click.Path(),
              help="Folder of embedding tables, one subfolder per modality (e.g. unified/).")
@click.option("--map", "map_dir", default=None, type=click.Path(),
              help="Fitted method folder (config.json + state.safetensors), e.g. maps/procrustes.")
@click.option("--out", "out_path", required=True, type=click.Path(), help="Metrics JSON to write.")
@click.option("--method", "method_name", default=None,
              help="Name in the output; without --map, the method fitted on the tables' train split (e.g. raw).")
@click.option("--params", "params_path", default=None, type=click.Path(),
              help="params.yaml: sections evaluate, pairs.train, seed, device, anchor, fit.<method>.")
@click.option("--pairs", default=None, help="Pairs used in fitting, e.g. image-text,audio-text (overrides pairs.train).")
@click.option("--anchor", default=None, help="Anchor modality when fitting without --map (default: params' anchor, else text).")
def cli(tables_dir, map_dir, out_path, method_name, params_path, pairs, anchor):
    """Evaluate a method on every ordered modality pair of TABLES (test split) and write OUT.

    With --map the fitted method is loaded; without it, --method names a method that is fitted
    here on the tables' train split (meant for training-free methods such as raw).
    """
    import warnings

    from embridge.config.device import resolve_device
    from embridge.config.modalities import parse_pairs
    from embridge.errors import ConfigError
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
            click.echo("note: no --pairs and no --params: every modality pair is marked unpaired", err=True)
        train_pairs = parse_pairs(pairs if pairs is not None else (p.pairs.train if params_path else []), modalities=tables)
    if method is None:
        if method_name is None:
            raise ConfigError("evaluate: give --map MAPDIR (a fitted method) or --method NAME (fitted here, e.g. raw)")
        anchor = anchor or p.anchor
        if anchor not in tables:
            raise ConfigError(f"anchor {anchor!r} has no table in {tables_dir} (found {sorted(tables)}); pass --anchor")
        method = get_method(method_name, **(method_params(p, method_name) if params_path else {}))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # printed below from fit_info
            method.fit(tables, anchor, train_pairs)
    for _, info in sorted(getattr(method, "fit_info_", {}).items()):
        if info.get("warning"):
            click.echo(f"warning: {info['warning']}", err=True)
    metrics = evaluate(tables, method, train_pairs, cfg, name=method_name, seed=p.seed,
                       device=str(resolve_device(p.device)))
    write_metrics(metrics, out_path)
    for note in metrics.get("notes", []):
        click.echo(f"note: {note}", err=True)
    unpaired = [f"{k} R@1={v['R@1']}" for k, v in metrics["retrieval"].items() if not v["paired"]]
    click.echo(f"{metrics['method']}: wrote {out_path}" + (f" (unpaired: {', '.join(unpaired)})" if unpaired else ""))
