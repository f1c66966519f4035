"""One Parquet shard, opened with its page checksums verified: the lowest layer of the
readers (the public ones in :mod:`.reader` also check the manifest's sha256)."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import FormatError


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
