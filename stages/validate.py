"""`embridge validate DIR...`: every check of embridge.store.validate on one or more tables."""

import click
from embridge.stages.options import echo, emit_json, json_option


@click.command("validate")
@click.argument("table_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--require-splits", default="test", show_default=True,
              help="Comma-separated splits that must have rows ('' for none; train,test before fitting).")
@json_option
def cli(table_dirs, require_splits, as_json):
    """Check embedding tables: manifest, shards, schema, dimension, NaN/Inf, zero rows, duplicate ids, splits.

    TABLE_DIRS are table folders (with _manifest.parquet) or a folder of them (one per modality).
    """
    from pathlib import Path

    from embridge.config.modalities import SPLITS
    from embridge.errors import ConfigError, EmbridgeError
    from embridge.store import has_manifest, list_tables
    from embridge.store.manifest import looks_like_table
    from embridge.store.validate import validate_table

    splits = tuple(s.strip() for s in require_splits.split(",") if s.strip())
    for s in splits:
        if s not in SPLITS:
            raise ConfigError(f"--require-splits {require_splits[:80]!r}: split {s[:40]!r} is not one of {list(SPLITS)}")
    report = []
    for d in table_dirs:
        try:
            one = has_manifest(d) or not Path(d).is_dir() or looks_like_table(Path(d))
            targets = [Path(d)] if one else list(list_tables(d).values())
        except EmbridgeError as exc:
            if not as_json:
                raise
            targets = []
            report.append({"table": str(d), "ok": False, "error": str(exc)})
        for t in targets:
            try:
                m = validate_table(t, require_splits=splits)
            except EmbridgeError as exc:  # --json: every table's verdict, then exit 1
                if not as_json:
                    raise
                report.append({"table": str(t), "ok": False, "error": str(exc)})
                continue
            report.append({"table": str(t), "ok": True, "modality": m.modality, "rows": m.num_rows, "dim": m.dim,
                           "dtype": m.dtype, "shards": len(m.shards)})
            if not as_json:
                echo(f"ok  {t}: {m.modality}, {m.num_rows} rows x {m.dim} ({m.dtype}), {len(m.shards)} shard(s)")
    if as_json:
        ok = all(r["ok"] for r in report)
        emit_json({"ok": ok, "tables": report})
        if not ok:
            raise SystemExit(1)
