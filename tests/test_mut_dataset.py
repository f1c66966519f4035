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
