"""The release folder's readers and writers (``dataset.shard``, ``reader``, ``runs``,
``writer``, ``schema``) on small files written here: mutants that survived the other tests.
Expected values are hand counts, numpy, or pyarrow's own reading of the file."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cnn_filter_db.dataset import shard, writer
from cnn_filter_db.errors import FormatError


def _layer(layer_id: int, out_c: int, in_c: int, seed: int) -> writer.Layer:
    w = np.random.default_rng(seed).standard_normal((out_c, in_c, 3, 3)).astype(np.float32)
    return writer.Layer({"layer_id": layer_id, "n_filters": out_c * in_c}, w)


def test_a_shard_is_opened_with_model_id_as_a_dictionary(tmp_path):
    (path,) = writer.write_filters(tmp_path / "m", "m", [_layer(0, 2, 3, 0)])
    assert shard.open_shard(path).schema_arrow.field("model_id").type == pa.dictionary(pa.int32(), pa.string())


@pytest.mark.parametrize("read", [shard.open_shard, shard.shard_schema])
def test_a_file_that_is_not_parquet_is_one_error_naming_it(tmp_path, read):
    path = tmp_path / "x.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(FormatError) as info:
        read(path)
    assert str(info.value).startswith(f"{path}: not a readable Parquet file: ")


def _chunks(path):
    md = pq.ParquetFile(path).metadata.row_group(0)
    return {md.column(i).path_in_schema: md.column(i) for i in range(md.num_columns)}


def test_filter_shards_are_written_with_the_spec_options(tmp_path):
    """SPEC section 4: zstd; byte-stream-split and no dictionary on the weights (dictionaries on
    the other columns); a page index on every column."""
    (path,) = writer.write_filters(tmp_path / "m", "m", [_layer(0, 4, 3, 1)])
    chunks = _chunks(path)
    assert set(chunks) == {"model_id", "layer_id", "out_channel", "in_channel", "weights.list.element"}
    for name, c in chunks.items():
        assert c.compression == "ZSTD", name
        assert c.has_column_index and c.has_offset_index, name
        assert c.has_dictionary_page == (name != "weights.list.element"), name
    assert "BYTE_STREAM_SPLIT" in chunks["weights.list.element"].encodings


def test_small_tables_keep_dictionaries_and_no_byte_stream_split(tmp_path):
    table = pa.table({"model_id": ["a", "a", "b"], "n_filters": pa.array([1, 2, 3], pa.int64())})
    path = writer.write_table(table, tmp_path, "layers")
    assert path == tmp_path / "layers" / "train-00000-of-00001.parquet"
    for name, c in _chunks(path).items():
        assert c.compression == "ZSTD" and c.has_dictionary_page and "BYTE_STREAM_SPLIT" not in c.encodings, name


def test_every_page_carries_a_checksum(tmp_path):
    """The same rows written without page checksums are smaller (4 bytes of CRC32 a page)."""
    from cnn_filter_db.dataset.schema import FILTERS_SCHEMA, parquet_options

    (path,) = writer.write_filters(tmp_path / "m", "m", [_layer(0, 4, 3, 2)])
    table = pq.read_table(path).cast(FILTERS_SCHEMA)
    plain = tmp_path / "plain.parquet"
    pq.write_table(table, plain, **{**parquet_options(FILTERS_SCHEMA), "write_page_checksum": False})
    assert path.stat().st_size > plain.stat().st_size
    assert (path.stat().st_size - plain.stat().st_size) % 4 == 0
