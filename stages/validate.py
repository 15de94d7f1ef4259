"""`embridge validate DIR...`: every check of embridge.store.validate on one or more tables."""

import click


@click.command("validate")
@click.argument("table_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--require-splits", default="test", show_default=True,
              help="Comma-separated splits that must have rows ('' for none; train,test before fitting).")
def cli(table_dirs, require_splits):
    """Check embedding tables: manifest, shards, schema, dimension, NaN/Inf, zero rows, duplicate ids, splits.

    TABLE_DIRS are table folders (with manifest.json) or a folder of them (one per modality).
    """
    from pathlib import Path

    from embridge.config.modalities import SPLITS
    from embridge.errors import ConfigError
    from embridge.store import MANIFEST, list_tables
    from embridge.store.manifest import looks_like_table
    from embridge.store.validate import validate_table

    splits = tuple(s.strip() for s in require_splits.split(",") if s.strip())
    for s in splits:
        if s not in SPLITS:
            raise ConfigError(f"--require-splits {require_splits[:80]!r}: split {s[:40]!r} is not one of {list(SPLITS)}")
    for d in table_dirs:
        one = (Path(d) / MANIFEST).exists() or not Path(d).is_dir() or looks_like_table(Path(d))
        targets = [Path(d)] if one else list(list_tables(d).values())
        for t in targets:
            m = validate_table(t, require_splits=splits)
            click.echo(f"ok  {t}: {m.modality}, {m.num_rows} rows x {m.dim} ({m.dtype}), {len(m.shards)} shard(s)")
