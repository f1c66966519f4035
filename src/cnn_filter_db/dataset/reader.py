"""Read the tables of a release folder: whole small tables, one model's filters, one shard.

Every read verifies the Parquet page checksums the writer put on each page, and, when the
folder has a ``manifest.json``, each shard's sha256 against it (:mod:`.integrity`): a
flipped byte anywhere in a shard is an error naming the shard, never different numbers. Column and row
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
from ..params import RunOptions
from . import integrity, layout
from .shard import open_shard, read_shard, shard_schema


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
               missing_ok: bool = False, verify: bool = True) -> pa.Table | None:
    """Every shard of one config (``layers``, ``models``, ``layer_stats``, ``filters``) as one table.

    Parameters
    ----------
    columns, filter : column selection and a row filter (``pyarrow.compute`` expression),
        both pushed down to the Parquet reader.
    schema : when given, each shard must have its columns; they are cast to its types and
        put in its order. Without it the shards are concatenated as written (a shard with
        other columns is reported by validation, not here).
    missing_ok : return None instead of raising when the table has no shard.
    verify : check each shard's sha256 against the folder's manifest.json, when it has one
        (see :mod:`.integrity`). The pipeline's own stages pass False: until the release
        stage rewrites it, the manifest in the folder is the previous build's.
    """
    paths = layout.list_shards(release_dir, name)
    if not paths:
        if missing_ok:
            return None
        raise ReleaseError(f"{layout.table_dir(release_dir, name)}: no Parquet shard of the {name} table; "
                           "run the extract and gather stages first")
    if verify:
        integrity.verify(release_dir, paths)
    return _read(paths, columns, filter, schema)


def _model_shards(release_dir: Path, model_id: str, verify: bool) -> list[Path]:
    paths = layout.model_shards(release_dir, model_id)
    if not paths:
        raise ReleaseError(f"{layout.model_dir(release_dir, model_id)}: no filter shards for {model_id!r}")
    if verify:
        integrity.verify(release_dir, paths)
    return paths


def read_filters(release_dir: Path, model_id: str, columns: list[str] | None = None,
                 layer_id: int | None = None, *, verify: bool = True) -> pa.Table:
    """One model's filter rows (of one layer when ``layer_id`` is given), in stored order;
    ``verify`` as in :func:`read_table`."""
    paths = _model_shards(release_dir, model_id, verify)
    where = pc.field("layer_id") == int(layer_id) if layer_id is not None else None
    return _read(paths, columns, where, None)


def iter_filters(release_dir: Path, model_id: str, columns: list[str] | None = None,
                 batch_rows: int = RunOptions.batch_rows, *, verify: bool = True) -> Iterator[pa.RecordBatch]:
    """One model's filter rows as record batches, shard after shard (memory: one batch);
    ``verify`` as in :func:`read_table` (all of the model's shards, before the first batch)."""
    for path in _model_shards(release_dir, model_id, verify):
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
