"""`embridge validate DIR...`: every check of embridge.store.validate on one or more tables."""

import click
from embridge.stages.options import echo, emit_json, json_option


@click.command("validate")
@click.argument("table_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--require-splits", default="train,test", show_default=True,
              help="Comma-separated splits that must have rows ('' for none).")
@json_option
def cli(table_dirs, require_splits, as_json):
    """Check embedding tables: manifest, shards, schema, dimension, NaN/Inf, zero rows, duplicate ids, splits.

    TABLE_DIRS are table folders (with _manifest.json) or a folder of them (one per modality).
    """
    from pathlib import Path

    from embridge.store import has_manifest, list_tables
    from embridge.store.validate import validate_table

    splits = tuple(s for s in require_splits.split(",") if s)
    report = []
    for d in table_dirs:
        targets = [Path(d)] if has_manifest(d) or not Path(d).is_dir() else list(list_tables(d).values())
        for t in targets:
            m = validate_table(t, require_splits=splits)
            report.append({"table": str(t), "ok": True, "modality": m.modality, "rows": m.num_rows, "dim": m.dim,
                           "dtype": m.dtype, "shards": len(m.shards)})
            if not as_json:
                echo(f"ok  {t}: {m.modality}, {m.num_rows} rows x {m.dim} ({m.dtype}), {len(m.shards)} shard(s)")
    if as_json:
        emit_json({"ok": True, "tables": report})
