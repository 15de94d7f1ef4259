"""`embridge bind`: features/<modality> -> unified/<modality> (projection heads onto the anchor, or passthrough)."""

import click


@click.command("bind")
@click.option("--features", "features", default="features", show_default=True, type=click.Path(), help="Folder of embedding tables (one subfolder per modality).")
@click.option("--out", "out_root", default="unified", show_default=True, type=click.Path(), help="Folder to write unified/<modality>/ tables into (unified/seed-<s>/<modality>/ with a budget folder).")
@click.option("--params", "params_file", default=None, type=click.Path(), help="params.yaml: reads seeds, device, anchor, pairs and the bind: section.")
@click.option("--budget", "budget_path", default=None, type=click.Path(), help="Label budget: a seed-<s>.json file or a folder of them (pairs/<n>); one bind per seed.")
@click.option("--method", type=click.Choice(["projection", "passthrough"]), default=None, help="Override bind.method.")
def cli(features, out_root, params_file, budget_path, method):
    """Project every non-anchor modality onto the anchor's space with a head trained on sparse train pairs."""
    import dataclasses
    from pathlib import Path

    from embridge.bind import bind_tables, write_unified
    from embridge.config.modalities import parse_pairs
    from embridge.runs import budgets, seed_name
    from embridge.stages.params import load_params
    from embridge.store import load_tables

    p = load_params(params_file)
    cfg = p.section("bind")
    if method:
        cfg = dataclasses.replace(cfg, method=method)
    tables = load_tables(features)
    pairs = parse_pairs(p.pairs.train, modalities=tables)
    runs = {s: (b, Path(out_root) / seed_name(s)) for s, b in budgets(budget_path).items()} if budget_path else {p.seed: (None, Path(out_root))}
    for s, (budget, out) in runs.items():
        Z = bind_tables(tables, p.anchor, pairs, cfg, pairs_per_class=p.pairs.pairs_per_class, seed=s, device=p.device,
                        budget=budget)
        write_unified(tables, Z, out, cfg)
        click.echo(f"bind ({cfg.method}, seed {s}): wrote {', '.join(f'{m} {z.shape}' for m, z in sorted(Z.items()))} to {out}")
