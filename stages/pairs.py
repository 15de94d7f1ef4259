"""`embridge pairs`: the label budget, chosen once per seed: pairs/<pairs_per_class>/seed-<s>.json."""

import click


@click.command("pairs")
@click.option("--features", default="features", show_default=True, type=click.Path(), help="Folder of embedding tables (one subfolder per modality).")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(), help="params.yaml: seeds, pairs and sweep.pairs_per_class.")
@click.option("--out", "out_dir", default="pairs", show_default=True, type=click.Path(), help="Folder for <pairs_per_class>/seed-<s>.json.")
def cli(features, params_path, out_dir):
    """Choose, per seed and per budget (pairs.pairs_per_class and every sweep point), the paired train
    rows that bind, every method and the sweep may read; write their ids per modality and pair."""
    import json
    from pathlib import Path

    from embridge.files import atomic_write_bytes
    from embridge.pairing import choose_budget
    from embridge.runs import seed_name
    from embridge.stages.params import load_params
    from embridge.store import load_tables

    p = load_params(params_path)
    tables = load_tables(features)
    train = {m: t.select_split("train") for m, t in tables.items()}
    caps = [p.pairs.pairs_per_class]
    sweep = p.sections.get("sweep")
    caps += [n for n in (sweep.pairs_per_class if sweep else []) if n not in caps]
    for n in caps:
        for s in p.run_seeds:
            b = choose_budget(train, p.train_pairs, n, s, p.pairs.cap_instances)
            path = Path(out_dir) / str(n) / f"{seed_name(s)}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, (json.dumps(b.to_json(), indent=1, sort_keys=True) + "\n").encode())
        counts = ", ".join(f"{k}: " + "/".join(f"{m} {c}" for m, c in v.items()) for k, v in b.counts().items())
        click.echo(f"pairs {n} per class, seeds {p.run_seeds}: {counts} rows (last seed) -> {Path(out_dir) / str(n)}")
