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
              help="params.yaml: sections evaluate, pairs, seeds, device, anchor, fit.<method> (default: every default, as `embridge fit`).")
@click.option("--pairs", default=None, help="Pairs used in fitting, e.g. image-text,audio-text (overrides pairs.train).")
@click.option("--anchor", default=None, help="Anchor modality when fitting without --map (default: params' anchor, else text).")
def cli(tables_dir, map_dir, out_path, method_name, params_path, pairs, anchor):
    """Evaluate a method on every ordered modality pair of TABLES (test split) and write OUT.

    With --map the fitted method is loaded; without it, --method names a method that is fitted
    here on the tables' train split (meant for training-free methods such as raw).
    """
    from pathlib import Path

    from embridge.config.device import resolve_device
    from embridge.config.modalities import default_pairs, parse_pairs
    from embridge.data.groups import row_groups
    from embridge.errors import ConfigError, InputError
    from embridge.evaluation.runner import evaluate_seeds, write_metrics
    from embridge.files import read_json
    from embridge.methods import get_method, load_method, method_params
    from embridge.runs import seed_entries
    from embridge.stages.params import load_params
    from embridge.store import load_tables

    p = load_params(params_path)
    cfg = p.section("evaluate")
    seeded = seed_entries(tables_dir)
    table_runs = {s: load_tables(d) for s, d in seeded.items()} or {p.seed: load_tables(tables_dir)}
    tables = next(iter(table_runs.values()))
    # the pairs a fit here uses are `embridge fit`'s (--pairs, else params.yaml, else the default pairs.train
    # among the tables' modalities)
    train_pairs = parse_pairs(pairs if pairs is not None else default_pairs(p, tables, params_path), modalities=tables)
    if not train_pairs and pairs is None and params_path is None:
        click.echo("note: no --pairs and no --params: every modality pair is marked unpaired", err=True)
    anchor = anchor or p.anchor
    selection = None
    if map_dir:
        maps = seed_entries(map_dir)
        if seeded and set(maps) != set(seeded):
            raise InputError(f"{map_dir}: fitted seeds {sorted(maps)} differ from the tables' seeds {sorted(seeded)} in {tables_dir}")
        methods = {s: load_method(maps[s] if seeded else map_dir) for s in table_runs}
        if pairs is None and params_path is None:  # mark pairs as the fitted method was fitted
            train_pairs = [tuple(q) for q in next(iter(methods.values())).train_pairs_]
        if (Path(map_dir) / "selection.json").is_file():
            selection = read_json(Path(map_dir) / "selection.json", "")
    else:
        if method_name is None:
            raise ConfigError("evaluate: give --map MAPDIR (a fitted method) or --method NAME (fitted here, e.g. raw)")
        if anchor not in tables:
            raise ConfigError(f"anchor {anchor!r} has no table in {tables_dir} (found {sorted(tables)}); pass --anchor")
        # the same constructor arguments as `embridge fit` (params.yaml, else its defaults: one budget default)
        methods = {s: get_method(method_name, **method_params(p, method_name, seed=s)).fit(t, anchor, train_pairs)
                   for s, t in table_runs.items()}
    runs = []
    for s, t in table_runs.items():
        # the baseline of the paired bootstrap: raw (the identity; it reads no pairs and no anchor)
        base = get_method("raw").fit(t, anchor if anchor in t else sorted(t)[0], train_pairs) if all(
            (x.split == "train").any() for x in t.values()) else None
        runs.append((s, t, methods[s], base))
    groups = {m: row_groups(x.select_split(cfg.split).ids) for m, x in tables.items()}
    metrics = evaluate_seeds(runs, train_pairs, cfg, name=method_name, groups=groups, device=str(resolve_device(p.device)))
    if selection is not None:
        metrics["selection"] = selection
    write_metrics(metrics, out_path)
    unpaired = [f"{k} R@1={v['R@1']}" for k, v in metrics["retrieval"].items() if not v["paired"]]
    click.echo(f"{metrics['method']}: wrote {out_path}, seeds {metrics['seeds']}"
               + (f" (unpaired: {', '.join(unpaired)})" if unpaired else ""))
