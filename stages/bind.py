"""`embridge bind`: features/<modality> -> unified/<modality> (projection heads onto the anchor, or passthrough)."""

import click
from embridge.stages.options import (
    device_option,
    dvclive_option,
    echo,
    progress_option,
    seed_option,
    training_logs,
)


@click.command("bind")
@click.option("--features", "features", default="features", show_default=True, type=click.Path(), help="Folder of embedding tables (one subfolder per modality).")
@click.option("--out", "out_root", default="unified", show_default=True, type=click.Path(), help="Folder to write unified/<modality>/ tables into (unified/seed-<s>/<modality>/ with a budget folder).")
@click.option("--params", "params_file", default=None, type=click.Path(), help="params.yaml: reads seeds, device, anchor, pairs and the bind: section.")
@click.option("--budget", "budget_path", default=None, type=click.Path(), help="Label budget: a seed-<s>.json file or a folder of them (pairs/<n>); one bind per seed.")
@click.option("--method", type=click.Choice(["projection", "passthrough"]), default=None, help="Override bind.method.")
@seed_option
@device_option
@progress_option
@dvclive_option
def cli(features, out_root, params_file, budget_path, method, seed, device, progress, dvclive_dir):
    """Project every non-anchor modality onto the anchor's space with a head trained on sparse train pairs."""
    import dataclasses
    from pathlib import Path

    from embridge.bind import bind_tables, write_unified
    from embridge.config.modalities import parse_pairs
    from embridge.files import check_no_input_inside, check_output_dir
    from embridge.methods import train_log
    from embridge.runs import budgets, seed_name
    from embridge.stages.params import load_params
    from embridge.store import load_tables
    from embridge.store.manifest import replaceable

    p = load_params(params_file)
    cfg = p.section("bind")
    if method:
        cfg = dataclasses.replace(cfg, method=method)
    check_no_input_inside(out_root, [features], nested=True)  # an input is never an output
    tables = load_tables(features)
    pairs = parse_pairs(p.pairs.train, modalities=tables)
    runs = ({s: (b, Path(out_root) / seed_name(s)) for s, b in budgets(budget_path).items()} if budget_path
            else {p.seed if seed is None else seed: (None, Path(out_root))})
    for _, out in runs.values():  # before any work: each <out>/<m> (per seed) is absent, empty or a table
        for m in tables:
            check_output_dir(out / m, replaceable(out / m))
    with training_logs(progress, dvclive_dir):  # one log for every seed: each seed's loops under "seed-<s>/"
        for s, (budget, out) in runs.items():
            with train_log.scope(seed_name(s)):
                Z = bind_tables(tables, p.anchor, pairs, cfg, pairs_per_class=p.pairs.pairs_per_class, seed=s,
                                device=p.device if device is None else device, budget=budget)
            write_unified(tables, Z, out, cfg)
            echo(f"bind ({cfg.method}, seed {s}): wrote {', '.join(f'{m} {z.shape}' for m, z in sorted(Z.items()))} to {out}")
