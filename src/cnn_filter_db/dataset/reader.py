"""Read the tables of a release folder: whole small tables, one model's filters, one shard.

Every read verifies the Parquet page checksums the writer put on each page, so a flipped
byte in a data page is an error naming the shard, never different numbers. Column and row
filters are pushed down to the Parquet reader (only the row groups and columns asked for
are decoded).

Examples
--------
>>> layers = read_table("dist/cnn-filter-db", "layers", columns=["model_id", "n_filters"])  # doctest: +SKIP
>>> t = read_filters("dist/cnn-filter-db", "efficientnet-lite0", layer_id=3)                # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import FormatError, ReleaseError
from . import layout

#: Rows a batch when a model's filters are streamed.
BATCH_ROWS = 1 << 18


def open_shard(path: Path) -> pq.ParquetFile:
    """A shard opened for reading with page checksums verified (``model_id`` as a dictionary)."""
    try:
        return pq.ParquetFile(path, read_dictionary=["model_id"], page_checksum_verification=True)
    except (OSError, pa.ArrowException) as exc:
        raise FormatError(f"{path}: not a readable Parquet file: {exc}") from None


def read_shard(path: Path, columns: list[str] | None = None, filter: pc.Expression | None = None) -> pa.Table:
    """One shard (or the rows of it that match ``filter``), page checksums verified."""
    try:
        return pq.read_table(path, columns=columns, filters=filter, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as exc:
        raise FormatError(f"{path}: cannot be read: {exc}") from None


def shard_schema(path: Path) -> pa.Schema:
    """A shard's Arrow schema as written (read from its footer only)."""
    try:
        return pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise FormatError(f"{path}: not a readable Parquet file: {exc}") from None


def _read(paths: list[Path], columns, filter, schema: pa.Schema | None) -> pa.Table:
    tables = []
    for path in paths:
        if schema is not None:
            wanted = columns if columns is not None else schema.names
            missing = [c for c in wanted if c not in shard_schema(path).names]
            if missing:
                raise FormatError(f"{path}: missing columns {missing}")
            t = read_shard(path, list(wanted), filter)
            tables.append(t.cast(pa.schema([schema.field(c) for c in wanted])))
        else:
            tables.append(read_shard(path, columns, filter))
    return pa.concat_tables(tables, promote_options="permissive")


def read_table(release_dir: Path, name: str, columns: list[str] | None = None,
               filter: pc.Expression | None = None, *, schema: pa.Schema | None = None,
               missing_ok: bool = False) -> pa.Table | None:
    """Every shard of one config (``layers``, ``models``, ``layer_stats``, ``filters``) as one table.

    Parameters
    ----------
    columns, filter : column selection and a row filter (``pyarrow.compute`` expression),
        both pushed down to the Parquet reader.
    schema : when given, each shard must have its columns; they are cast to its types and
        put in its order. Without it the shards are concatenated as written (a shard with
        other columns is reported by validation, not here).
    missing_ok : return None instead of raising when the table has no shard.
    """
    paths = layout.list_shards(release_dir, name)
    if not paths:
        if missing_ok:
            return None
        raise ReleaseError(f"{layout.table_dir(release_dir, name)}: no Parquet shard of the {name} table; "
                           "run the extract and gather stages first")
    return _read(paths, columns, filter, schema)


def read_filters(release_dir: Path, model_id: str, columns: list[str] | None = None,
                 layer_id: int | None = None) -> pa.Table:
    """One model's filter rows (of one layer when ``layer_id`` is given), in stored order."""
    paths = layout.model_shards(release_dir, model_id)
    if not paths:
        raise ReleaseError(f"{layout.model_dir(release_dir, model_id)}: no filter shards for {model_id!r}")
    where = pc.field("layer_id") == int(layer_id) if layer_id is not None else None
    return _read(paths, columns, where, None)


def iter_filters(release_dir: Path, model_id: str, columns: list[str] | None = None,
                 batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """One model's filter rows as record batches, shard after shard (memory: one batch)."""
    paths = layout.model_shards(release_dir, model_id)
    if not paths:
        raise ReleaseError(f"{layout.model_dir(release_dir, model_id)}: no filter shards for {model_id!r}")
    for path in paths:
        pf = open_shard(path)
        batches = pf.iter_batches(batch_size=batch_rows, columns=columns)
        while True:
            try:
                batch = next(batches, None)
            except (OSError, pa.ArrowException) as exc:
                raise FormatError(f"{path}: cannot be read: {exc}") from None
            if batch is None:
                break
            yield batch
