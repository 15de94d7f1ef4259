"""The embedding store: one folder of Parquet shards plus _manifest.parquet per modality (design section 3).

manifest (schema, _manifest.parquet) -> writer (atomic shards) -> reader (streaming, zero-copy) -> checks ->
table (EmbeddingTable in memory); validate, importer (your own arrays, with labels and shards) and synth (C^3 data)
build on them.
"""

from embridge.store.checks import TableChecker, bad_rows, check_matrix
from embridge.store.manifest import (
    DTYPES,
    FORMAT_VERSION,
    JSON_MANIFEST,
    LEGACY_MANIFEST,
    MANIFEST,
    MANIFEST_KEY,
    META_COLUMNS,
    OLD_MANIFESTS,
    ROW_GROUP_ROWS,
    ROWS_PER_SHARD,
    SHARD_RE,
    Manifest,
    ShardInfo,
    has_manifest,
    manifest_path,
    read_manifest,
    read_manifest_dict,
    remove_manifest,
    schema,
    shard_name,
    write_manifest,
    write_manifest_dict,
)
from embridge.store.reader import (
    check_shard_schema,
    embeddings_view,
    iter_batches,
    open_shard,
    shard_paths,
)
from embridge.store.table import EmbeddingTable, list_tables, load_tables, read_table
from embridge.store.writer import TableWriter, remove_stale_shards, to_arrow, write_shard

__all__ = [
    "DTYPES", "FORMAT_VERSION", "JSON_MANIFEST", "LEGACY_MANIFEST", "MANIFEST", "MANIFEST_KEY", "META_COLUMNS", "OLD_MANIFESTS", "ROW_GROUP_ROWS", "ROWS_PER_SHARD", "SHARD_RE",
    "EmbeddingTable", "Manifest", "ShardInfo", "TableChecker", "TableWriter", "bad_rows", "check_matrix",
    "check_shard_schema", "embeddings_view", "iter_batches", "list_tables", "load_tables", "open_shard",
    "read_manifest", "read_table", "remove_stale_shards", "schema", "shard_name", "shard_paths", "to_arrow",
    "write_manifest", "write_shard", "has_manifest", "manifest_path", "remove_manifest", "read_manifest_dict",
    "write_manifest_dict",
]
