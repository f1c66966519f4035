"""The release writer (dataset/writer.py) read back with plain pyarrow: filter rows and their
order, shard and row-group boundaries, the writer thread's errors and its end, the small
tables, a model's shards and metadata committed together, and the build folder's metadata.
Expected values come from numpy on the input weights, from pyarrow reading the files back, or
are literals counted by hand in the comments (issue 16, mutation testing of writer.py)."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cnn_filter_db.dataset import writer
from cnn_filter_db.dataset.layout import ReleaseError


def _weight(out_c: int, in_c: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((out_c, in_c, 3, 3)).astype(np.float32)


def _layer(layer_id: int, out_c: int, in_c: int, seed: int) -> writer.Layer:
    return writer.Layer({"layer_id": layer_id, "n_filters": out_c * in_c}, _weight(out_c, in_c, seed))


def _rows(paths) -> pa.Table:
    """Every row of the shards, in shard order, read by pyarrow alone."""
    return pa.concat_tables([pq.read_table(p) for p in paths])


def _weights(table: pa.Table) -> np.ndarray:
    return table["weights"].combine_chunks().flatten().to_numpy().reshape(-1, 9)


def _groups(path) -> list[int]:
    md = pq.ParquetFile(path).metadata
    return [md.row_group(i).num_rows for i in range(md.num_row_groups)]


def _batches(weight: np.ndarray, size: int, layer_id: int = 0, model_id: str = "m"):
    return list(writer.filter_batches(model_id, layer_id, weight, size))


# ------------------------------------------------------------------ string_column


@pytest.mark.parametrize("value, n", [("abc", 3), ("é-x", 4), ("m", 1), ("abc", 0), ("", 3)])
def test_a_string_column_repeats_its_value_with_arrow_offsets(value, n):
    col = writer.string_column(value, n)
    col.validate(full=True)
    assert col.type == pa.string() and len(col) == n and col.null_count == 0
    assert col.to_pylist() == [value] * n
    size = len(value.encode())  # "é-x" is 4 bytes: é takes two in UTF-8
    offsets = np.frombuffer(col.buffers()[1], dtype=np.int32)
    assert offsets.tolist() == [k * size for k in range(n + 1)]  # Arrow: n + 1 int32 offsets
    assert col.buffers()[2].size == n * size


def test_a_string_column_beyond_int32_offsets_is_refused_not_wrapped():
    # 2**31 bytes of text do not fit Arrow's int32 string offsets (largest 2**31 - 1)
    with pytest.raises(ValueError, match="more than 2 GiB of text"):
        writer.string_column("ab", 2**30)
    assert len(writer.string_column("a", 2**20)) == 2**20


# ------------------------------------------------------------------ filter_batches


def test_filter_batches_cut_a_layer_in_out_then_in_channel_order():
    w = _weight(5, 3, 0)  # 15 filters
    batches = _batches(w, 4, layer_id=7, model_id="net")
    assert [b.num_rows for b in batches] == [4, 4, 4, 3]
    table = pa.Table.from_batches(batches)
    assert table["model_id"].to_pylist() == ["net"] * 15
    assert table["layer_id"].to_pylist() == [7] * 15
    assert table["out_channel"].to_pylist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert table["in_channel"].to_pylist() == [0, 1, 2] * 5
    assert [table.schema.field(c).type for c in ("layer_id", "out_channel", "in_channel")] == [pa.int32()] * 3
    assert np.array_equal(_weights(table), w.reshape(15, 9))  # k[0,0], k[0,1], ..., k[2,2]
    assert np.array_equal(_weights(table)[4], w[1, 1].ravel())


def test_filter_batches_of_a_strided_float64_weight_are_its_float32_values():
    base = np.random.default_rng(1).standard_normal((3, 2, 3, 3))
    w = base.transpose(1, 0, 3, 2)  # (2, 3, 3, 3), not C-contiguous, float64
    table = pa.Table.from_batches(_batches(w, 100))
    assert table.num_rows == 6 and table.schema.field("weights").type.value_type == pa.float32()
    assert np.array_equal(_weights(table), np.array(w, dtype=np.float32).reshape(6, 9))


def test_a_batch_as_large_as_the_layer_is_one_batch_and_an_empty_layer_none():
    w = _weight(2, 2, 2)
    assert [b.num_rows for b in _batches(w, 4)] == [4]
    assert [b.num_rows for b in _batches(w, 5)] == [4]
    assert _batches(np.zeros((0, 3, 3, 3), np.float32), 4) == []


# ------------------------------------------------------------------ FilterShardWriter


def _write(folder: Path, n_rows: int, max_rows: int, group: int, batch: int, seed: int = 3, rows: int | None = None):
    """Write ``rows`` (default n_rows) filters of one layer (n x 1) in batches of ``batch``."""
    w = _weight(n_rows if rows is None else rows, 1, seed)
    sw = writer.FilterShardWriter(folder, "m", n_rows, max_rows, group)
    for b in _batches(w, batch):
        sw.write(b)
    return sw, w


def test_row_groups_stop_at_shard_boundaries_whatever_the_batch_size(tmp_path):
    # 300 rows, shards of 120, row groups of 50: shards 120/120/60; each shard's groups are
    # 50, 50 and the 20 rows up to the boundary (the last shard: 50, 10)
    for batch in (7, 300):
        folder = tmp_path / str(batch)
        folder.mkdir()
        sw, w = _write(folder, 300, 120, 50, batch)
        paths = sw.close()
        assert [p.name for p in paths] == ["m-00000-of-00003.parquet", "m-00001-of-00003.parquet",
                                           "m-00002-of-00003.parquet"]
        assert all(p.parent == folder for p in paths)
        assert [_groups(p) for p in paths] == [[50, 50, 20], [50, 50, 20], [50, 10]]
        table = _rows(paths)
        assert table["out_channel"].to_pylist() == list(range(300))
        assert np.array_equal(_weights(table), w.reshape(300, 9))
        assert not sw._thread.is_alive()


def test_a_row_group_larger_than_a_shard_is_cut_to_the_shard(tmp_path):
    sw, _ = _write(tmp_path, 25, 10, 1000, 25)  # shards 10/10/5, one row group each
    paths = sw.close()
    assert [_groups(p) for p in paths] == [[10], [10], [5]]
    assert [p.name for p in paths] == [f"m-0000{k}-of-00003.parquet" for k in range(3)]


def test_rows_filling_their_shards_exactly_make_no_extra_shard(tmp_path):
    sw, _ = _write(tmp_path, 20, 10, 4, 3)  # 20 / 10 = 2 shards; groups 4, 4, 2 in each
    paths = sw.close()
    assert [p.name for p in paths] == ["m-00000-of-00002.parquet", "m-00001-of-00002.parquet"]
    assert [_groups(p) for p in paths] == [[4, 4, 2], [4, 4, 2]]


def test_a_model_without_filters_gets_one_empty_shard(tmp_path):
    sw = writer.FilterShardWriter(tmp_path, "m", 0, 10, 4)
    (path,) = sw.close()
    assert path == tmp_path / "m-00000-of-00001.parquet"
    table = pq.read_table(path)
    assert table.num_rows == 0 and table.column_names == ["model_id", "layer_id", "out_channel",
                                                           "in_channel", "weights"]


@pytest.mark.parametrize("declared, written, message", [
    (10, 8, "m: wrote 8 filter rows, expected 10"),
    (10, 12, "m: wrote 12 filter rows, expected 10"),
])
def test_more_or_fewer_rows_than_declared_is_an_error_naming_both_counts(tmp_path, declared, written, message):
    sw, _ = _write(tmp_path, declared, 100, 4, 3, rows=written)
    with pytest.raises(ValueError) as err:
        sw.close()
    assert str(err.value) == message
    assert not sw._thread.is_alive()


def test_an_error_of_the_writer_thread_is_the_one_raised_at_close(tmp_path):
    folder = tmp_path / "gone"
    folder.mkdir()
    sw = writer.FilterShardWriter(folder, "m", 3, 100, 50)
    folder.rmdir()  # the thread's first shard cannot be created
    for b in _batches(_weight(3, 1, 4), 3):  # 3 rows < one row group: handed over at close
        sw.write(b)
    with pytest.raises(OSError) as err:
        sw.close()
    assert "m-00000-of-00001.parquet" in str(err.value)  # the thread's shard, not a second try
    assert not sw._thread.is_alive()


def test_an_error_of_the_writer_thread_reaches_the_next_write(tmp_path):
    folder = tmp_path / "gone"
    folder.mkdir()
    sw = writer.FilterShardWriter(folder, "m", 400, 1000, 10)
    folder.rmdir()
    w = _weight(400, 1, 5)
    with pytest.raises(OSError) as err:
        for b in _batches(w, 10):  # 40 row groups: the failure is seen long before the end
            sw.write(b)
    assert "m-00000-of-00001.parquet" in str(err.value)
    sw.abort()
    assert not sw._thread.is_alive()


def test_a_batch_of_another_schema_is_refused_before_any_shard_is_opened(tmp_path):
    (batch,) = _batches(_weight(4, 1, 21), 4)
    nullable = pa.schema([f.with_nullable(True) for f in batch.schema])  # same columns, nullable
    sw = writer.FilterShardWriter(tmp_path, "m", 4, 100, 4)
    with pytest.raises(pa.ArrowInvalid, match="^Schema at index 0 was different"):
        sw.write(pa.RecordBatch.from_arrays(batch.columns, schema=nullable))  # 4 rows: a full group
    sw.abort()
    assert not sw._thread.is_alive() and list(tmp_path.iterdir()) == []


def test_writing_after_close_is_an_error_naming_the_model(tmp_path):
    sw, w = _write(tmp_path, 4, 100, 2, 2)
    sw.close()
    extra = _batches(_weight(4, 1, 6), 2)
    # the first full row group fits the (empty) queue of one; the next finds no thread to take it
    with pytest.raises(RuntimeError, match="^m: the shard writer thread stopped$"):
        for b in extra:
            sw.write(b)


def test_full_row_groups_are_handed_over_as_they_fill_and_abort_closes_the_shard(tmp_path):
    # 35 rows in batches of 7, row groups of 10: a group is handed over each time 10 rows are
    # buffered (after rows 10, 20, 30), 5 rows wait for the next group when the caller aborts
    sw, _ = _write(tmp_path, 100, 1000, 10, 7, rows=35)
    sw.abort()
    assert not sw._thread.is_alive()
    (path,) = tmp_path.iterdir()
    # the shard was closed (its footer written): the groups handed before the abort, no more
    assert _groups(path) == [10, 10, 10]
    sw.abort()  # a second abort finds nothing left to do
    assert _groups(path) == [10, 10, 10]


def test_a_row_group_above_pyarrows_default_size_stays_one_group(tmp_path):
    n = (1 << 20) + 3  # pyarrow cuts at 1024 * 1024 rows unless told the row-group size
    layer = writer.Layer({"layer_id": 0, "n_filters": n}, np.zeros((n, 1, 3, 3), np.float32))
    (path,) = writer.write_filters(tmp_path / "f", "m", [layer], params={"row_group_rows": n})
    assert _groups(path) == [n]


def test_abort_before_any_row_leaves_no_shard(tmp_path):
    sw = writer.FilterShardWriter(tmp_path, "m", 10, 100, 10)
    sw.abort()
    assert not sw._thread.is_alive() and list(tmp_path.iterdir()) == []


def test_the_writer_thread_is_a_named_daemon(tmp_path):
    sw = writer.FilterShardWriter(tmp_path, "net-1", 0, 10, 4)
    assert sw._thread.daemon and sw._thread.name == "write net-1"
    sw.close()


# ------------------------------------------------------------------ write_filters, _write_shards


class _Progress:
    def __init__(self):
        self.steps = []

    def update(self, n):
        self.steps.append(n)


def test_write_filters_counts_rows_reports_progress_and_returns_the_final_paths(tmp_path):
    layers = [_layer(0, 4, 3, 7), _layer(3, 2, 5, 8)]  # 12 + 10 = 22 filters
    progress = _Progress()
    paths = writer.write_filters(tmp_path / "f", "m", layers, progress=progress,
                                 params={"max_rows_per_shard": 8, "row_group_rows": 5})
    assert progress.steps == [12, 10]
    assert paths == [tmp_path / "f" / f"m-0000{k}-of-00003.parquet" for k in range(3)]
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == [p.name for p in paths]
    assert [_groups(p) for p in paths] == [[5, 3], [5, 3], [5, 1]]
    table = _rows(paths)
    assert table["layer_id"].to_pylist() == [0] * 12 + [3] * 10
    assert table["out_channel"].to_pylist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3 + [0] * 5 + [1] * 5
    assert table["in_channel"].to_pylist() == [0, 1, 2] * 4 + [0, 1, 2, 3, 4] * 2
    want = np.concatenate([layers[0].weight.reshape(12, 9), layers[1].weight.reshape(10, 9)])
    assert np.array_equal(_weights(table), want)
    assert list(tmp_path.iterdir()) == [tmp_path / "f"]  # no temporary folder left


def test_write_filters_of_a_generator_with_its_row_count(tmp_path):
    layers = [_layer(0, 3, 3, 9), _layer(1, 1, 2, 10)]
    paths = writer.write_filters(tmp_path / "f", "m", iter(layers), n_rows=11)
    assert [p.name for p in paths] == ["m-00000-of-00001.parquet"]
    assert pq.read_table(paths[0])["layer_id"].to_pylist() == [0] * 9 + [1] * 2


def test_a_wrong_row_count_keeps_the_previous_shards(tmp_path):
    folder = tmp_path / "f"
    (old,) = writer.write_filters(folder, "m", [_layer(0, 2, 2, 11)])
    before = old.read_bytes()
    with pytest.raises(ValueError, match="^m: wrote 4 filter rows, expected 5$"):
        writer.write_filters(folder, "m", iter([_layer(0, 2, 2, 12)]), n_rows=5)
    assert sorted(folder.iterdir()) == [old] and old.read_bytes() == before
    assert list(tmp_path.iterdir()) == [folder]


def test_a_layer_source_failing_midway_ends_the_writer_and_keeps_the_previous_shards(tmp_path):
    folder = tmp_path / "f"
    (old,) = writer.write_filters(folder, "m", [_layer(0, 2, 2, 13)])
    before = old.read_bytes()
    progress = _Progress()

    def source():
        yield _layer(0, 40, 10, 14)
        raise KeyError("layer 1 cannot be read")

    threads = threading.active_count()
    with pytest.raises(KeyError, match="layer 1"):
        writer.write_filters(folder, "m", source(), progress=progress, n_rows=800,
                             params={"row_group_rows": 100})
    assert progress.steps == [400]
    assert threading.active_count() == threads
    assert sorted(folder.iterdir()) == [old] and old.read_bytes() == before
    assert list(tmp_path.iterdir()) == [folder]


# ------------------------------------------------------------------ write_table


def test_write_table_replaces_the_config_folder_with_one_named_shard(tmp_path):
    rows = pa.table({"model_id": ["a", "b"], "n_filters": pa.array([3, 4], pa.int64())})
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "stale-00000-of-00001.parquet").write_bytes(b"old")
    path = writer.write_table(rows, tmp_path, "models")
    assert path == tmp_path / "models" / "train-00000-of-00001.parquet"
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["train-00000-of-00001.parquet"]
    assert pq.read_table(path).equals(rows)
    other = writer.write_table(rows, tmp_path, "layers", prefix="part")
    assert other == tmp_path / "layers" / "part-00000-of-00001.parquet" and other.exists()


# ------------------------------------------------------------------ write_model, read_meta, meta_models


def _model(model_id: str, n_filters: int, name: str) -> dict:
    return {"model_id": model_id, "name": name, "n_layers": 1, "n_filters": n_filters, "trained": False}


def _layer_row(model_id: str, out_c: int, in_c: int) -> dict:
    return {"model_id": model_id, "layer_id": 0, "layer_name": "conv1", "out_channels": out_c,
            "in_channels_per_group": in_c, "n_filters": out_c * in_c}


def test_write_model_commits_the_shards_and_both_metadata_files(tmp_path):
    release, meta = tmp_path / "rel", tmp_path / "meta"
    w = _weight(3, 2, 15)
    progress = _Progress()
    row = _layer_row("net", 3, 2)
    out = writer.write_model(release, meta, _model("net", 6, "Net"), [row], [writer.Layer(row, w)],
                             progress=progress, params={"max_rows_per_shard": 4, "row_group_rows": 2})
    assert out == release / "filters" / "net"
    assert sorted(p.name for p in out.iterdir()) == ["net-00000-of-00002.parquet", "net-00001-of-00002.parquet"]
    assert [_groups(p) for p in sorted(out.iterdir())] == [[2, 2], [2]]
    assert np.array_equal(_weights(_rows(sorted(out.iterdir()))), w.reshape(6, 9))
    assert progress.steps == [6]
    assert sorted(p.name for p in (meta / "net").iterdir()) == ["layers.parquet", "model.parquet"]
    model = pq.read_table(meta / "net" / "model.parquet").to_pylist()
    assert len(model) == 1 and model[0]["name"] == "Net" and model[0]["n_filters"] == 6
    assert model[0]["trained"] is False and model[0]["architecture"] is None
    layers = pq.read_table(meta / "net" / "layers.parquet")
    assert layers.schema.field("n_filters").type == pa.int64()
    assert layers.to_pylist()[0]["layer_name"] == "conv1" and layers["n_filters"].to_pylist() == [6]
    assert sorted(p.name for p in meta.iterdir()) == ["net"]
    assert sorted(p.name for p in (release / "filters").iterdir()) == ["net"]
    for name in ("model.parquet", "layers.parquet"):  # the package's options, not pyarrow's snappy
        column = pq.ParquetFile(meta / "net" / name).metadata.row_group(0).column(0)
        assert column.compression == "ZSTD"


def test_a_failing_model_write_keeps_both_previous_folders(tmp_path):
    release, meta = tmp_path / "rel", tmp_path / "meta"
    row = _layer_row("net", 2, 1)
    writer.write_model(release, meta, _model("net", 2, "old"), [row], [writer.Layer(row, _weight(2, 1, 16))])
    shard = release / "filters" / "net" / "net-00000-of-00001.parquet"
    before = shard.read_bytes(), (meta / "net" / "model.parquet").read_bytes()
    with pytest.raises(ValueError, match="^net: wrote 2 filter rows, expected 3$"):
        writer.write_model(release, meta, _model("net", 3, "new"), [row], [writer.Layer(row, _weight(2, 1, 17))])
    assert (shard.read_bytes(), (meta / "net" / "model.parquet").read_bytes()) == before
    assert sorted(p.name for p in meta.iterdir()) == ["net"]
    assert sorted(p.name for p in (release / "filters").iterdir()) == ["net"]


def test_read_meta_concatenates_the_models_in_sorted_order(tmp_path):
    release, meta = tmp_path / "rel", tmp_path / "meta"
    for model_id, out_c in (("b", 1), ("a", 2)):
        row = _layer_row(model_id, out_c, 1)
        writer.write_model(release, meta, _model(model_id, out_c, model_id.upper()), [row],
                           [writer.Layer(row, _weight(out_c, 1, out_c))])
    models, layers = writer.read_meta(meta, ["b", "a"])
    assert models["model_id"].to_pylist() == ["a", "b"] and models["name"].to_pylist() == ["A", "B"]
    assert layers["model_id"].to_pylist() == ["a", "b"] and layers["n_filters"].to_pylist() == [2, 1]
    assert models.schema.field("n_filters").type == pa.int64() and len(models.schema) == 28
    assert layers.schema.names[:3] == ["model_id", "layer_id", "layer_name"]
    with pytest.raises(ReleaseError):
        writer.read_meta(meta, ["../a"])


def test_meta_models_lists_complete_visible_model_folders(tmp_path):
    meta = tmp_path / "meta"
    assert writer.meta_models(meta) == []
    release = tmp_path / "rel"
    for model_id in ("zeta", "alpha"):
        row = _layer_row(model_id, 1, 1)
        writer.write_model(release, meta, _model(model_id, 1, model_id), [row],
                           [writer.Layer(row, _weight(1, 1, 18))])
    (meta / "half").mkdir()  # a model folder without model.parquet
    (meta / "half" / "layers.parquet").write_bytes(b"")
    (meta / ".alpha.x1.tmp").mkdir()  # a crashed write's temporary folder
    (meta / ".alpha.x1.tmp" / "model.parquet").write_bytes(b"")
    (meta / "beta.tmp").mkdir()
    (meta / "beta.tmp" / "model.parquet").write_bytes(b"")
    (meta / "model.parquet").write_bytes(b"")  # a file, not a folder
    assert writer.meta_models(meta) == ["alpha", "zeta"]
    assert writer.meta_models(meta / "model.parquet") == []  # not a folder


# ------------------------------------------------------------------ remove_model


def test_remove_model_removes_its_shards_alone(tmp_path):
    for model_id in ("a", "b"):
        writer.write_filters(tmp_path / "filters" / model_id, model_id, [_layer(0, 1, 1, 19)])
    assert writer.remove_model(tmp_path, "a") is True
    assert sorted(p.name for p in (tmp_path / "filters").iterdir()) == ["b"]
    assert writer.remove_model(tmp_path, "a") is False
    assert sorted(p.name for p in (tmp_path / "filters" / "b").iterdir()) == ["b-00000-of-00001.parquet"]


def test_remove_model_clears_a_crashed_removal_of_a_model_already_gone(tmp_path):
    # a removal killed after its rename: the folder is gone, its hidden copy half-deleted
    trash = tmp_path / "filters" / ".a.removed"
    trash.mkdir(parents=True)
    (trash / "a-00000-of-00001.parquet").write_bytes(b"half-deleted")
    assert writer.remove_model(tmp_path, "a") is False
    assert list((tmp_path / "filters").iterdir()) == []


def test_remove_model_removes_the_metadata_folder_too_when_given(tmp_path):
    release, meta = tmp_path / "rel", tmp_path / "meta"
    rows = [{"model_id": m, "layer_id": 0, "out_channels": 1, "in_channels_per_group": 1, "n_filters": 1}
            for m in ("a", "b")]
    for row in rows:
        writer.write_model(release, meta, {"model_id": row["model_id"], "n_layers": 1, "n_filters": 1}, [row],
                           [writer.Layer(row, _weight(1, 1, 21))])
    (meta / ".a.removed").mkdir()  # an earlier removal of a's metadata, killed half-way
    assert writer.remove_model(release, "a", meta) is True
    assert sorted(p.name for p in (release / "filters").iterdir()) == ["b"]
    assert sorted(p.name for p in meta.iterdir()) == ["b"]
    assert writer.remove_model(release, "a", meta) is False
    assert sorted(p.name for p in (meta / "b").iterdir()) == ["layers.parquet", "model.parquet"]


def test_remove_model_clears_what_a_crashed_removal_left(tmp_path):
    writer.write_filters(tmp_path / "filters" / "a", "a", [_layer(0, 1, 1, 20)])
    trash = tmp_path / "filters" / ".a.removed"
    trash.mkdir()
    (trash / "a-00000-of-00001.parquet").write_bytes(b"half-deleted")
    assert writer.remove_model(tmp_path, "a") is True
    assert list((tmp_path / "filters").iterdir()) == []
    with pytest.raises(ReleaseError):
        writer.remove_model(tmp_path, "..")
