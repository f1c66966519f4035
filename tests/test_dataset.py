"""The release folder package: one rule for what is a shard, readers and writers, the
(model, layer) run iterator, the manifest, and crash safety of the writes."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cnn_filter_db import atomic
from cnn_filter_db.dataset import layout, reader, writer
from cnn_filter_db.dataset.runs import iter_runs
from cnn_filter_db.dataset.schema import FILTERS_SCHEMA, LAYERS_SCHEMA, MODELS_SCHEMA
from cnn_filter_db.errors import ReleaseError


def layer(layer_id: int, out_c: int, in_c: int, rng) -> writer.Layer:
    w = rng.standard_normal((out_c, in_c, 3, 3)).astype(np.float32)
    return writer.Layer({"layer_id": layer_id, "n_filters": out_c * in_c}, w)


def test_hidden_and_temporary_entries_are_never_shards(tmp_path):
    rng = np.random.default_rng(0)
    rel = tmp_path / "rel"
    writer.write_filters(rel / "filters" / "m1", "m1", [layer(0, 4, 3, rng)])
    # what crashed writes and editors leave behind, at every depth
    junk = [rel / "filters" / ".m1.abc123.tmp" / "m1-00000-of-00001.parquet",
            rel / "filters" / "m1" / ".m1-00000-of-00001.parquet.x.tmp",
            rel / "filters" / "m2.tmp" / "m2-00000-of-00001.parquet",
            rel / ".layers.old" / "train-00000-of-00001.parquet",
            rel / "filters" / "m1" / ".DS_Store"]
    for j in junk:
        j.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(rel / "filters" / "m1" / "m1-00000-of-00001.parquet", j)
    assert [p.relative_to(rel).as_posix() for p in layout.list_shards(rel)] == ["filters/m1/m1-00000-of-00001.parquet"]
    assert layout.release_files(rel) == ["filters/m1/m1-00000-of-00001.parquet"]
    assert layout.filter_models(rel) == ["m1"]
    assert reader.read_filters(rel, "m1").num_rows == 12


def test_readers_push_down_columns_and_rows(tmp_path):
    rng = np.random.default_rng(1)
    layers = [layer(0, 4, 3, rng), layer(1, 5, 4, rng), layer(2, 2, 2, rng)]
    paths = writer.write_filters(tmp_path / "filters" / "m", "m", layers, max_rows_per_shard=16, row_group_rows=8)
    assert len(paths) == 3  # 12 + 20 + 4 = 36 rows in shards of at most 16
    t = reader.read_filters(tmp_path, "m", ["out_channel", "in_channel", "weights"], layer_id=1)
    assert t.column_names == ["out_channel", "in_channel", "weights"] and t.num_rows == 20
    got = t["weights"].combine_chunks().flatten().to_numpy().reshape(5, 4, 3, 3)
    np.testing.assert_array_equal(got, layers[1].weight)
    batches = list(reader.iter_filters(tmp_path, "m", ["layer_id"], batch_rows=5))
    assert sum(b.num_rows for b in batches) == 36 and max(b.num_rows for b in batches) <= 5
    with pytest.raises(ReleaseError, match="no filter shards for 'x1'"):
        reader.read_filters(tmp_path, "x1")
    with pytest.raises(ReleaseError, match="model_id '../m'"):
        reader.read_filters(tmp_path, "../m")


def test_runs_cut_batches_at_model_and_layer_changes(tmp_path):
    rng = np.random.default_rng(2)
    layers = [layer(0, 3, 3, rng), layer(1, 2, 5, rng), layer(2, 1, 7, rng)]
    (path,) = writer.write_filters(tmp_path / "m", "m", layers)
    keys, lengths = [], []
    for runs in iter_runs(path, ["weights"], batch_rows=8):
        assert runs.weights().shape == (len(runs), 9)
        keys += runs.keys()
        lengths += (runs.stops - runs.starts).tolist()
    # batches of 8 rows over runs of 9, 10 and 7 rows: cut at every batch and layer boundary
    assert keys == [("m", 0), ("m", 0), ("m", 1), ("m", 1), ("m", 2), ("m", 2)]
    assert lengths == [8, 1, 7, 3, 5, 2]


def test_small_table_round_trip_and_schema_check(tmp_path):
    rows = [{"model_id": "m", "layer_id": 0, "out_channels": 4, "in_channels_per_group": 3, "n_filters": 12}]
    writer.write_table(pa.Table.from_pylist(rows, schema=LAYERS_SCHEMA), tmp_path, "layers")
    assert (tmp_path / "layers" / "train-00000-of-00001.parquet").exists()
    t = reader.read_table(tmp_path, "layers", schema=LAYERS_SCHEMA)
    assert t.schema.equals(LAYERS_SCHEMA) and t.to_pylist()[0]["n_filters"] == 12
    with pytest.raises(ReleaseError, match="no Parquet shard of the models table"):
        reader.read_table(tmp_path, "models")
    assert reader.read_table(tmp_path, "models", missing_ok=True) is None
    pq.write_table(pa.table({"model_id": ["m"]}), tmp_path / "layers" / "train-00000-of-00001.parquet")
    with pytest.raises(Exception, match=r"train-00000-of-00001.parquet: missing columns \['layer_id'"):
        reader.read_table(tmp_path, "layers", schema=LAYERS_SCHEMA)


def _model_pair(release: Path, meta: Path, value: float) -> None:
    w = np.full((2, 1, 3, 3), value, np.float32)
    rows = [{"model_id": "m", "layer_id": 0, "out_channels": 2, "in_channels_per_group": 1, "n_filters": 2}]
    model = {"model_id": "m", "n_layers": 1, "n_filters": 2, "name": f"v{value}"}
    writer.write_model(release, meta, model, rows, [writer.Layer(rows[0], w)])


def _state(release: Path, meta: Path) -> tuple[float, str]:
    w = reader.read_filters(release, "m")["weights"].combine_chunks().flatten().to_numpy()
    models, _ = writer.read_meta(meta, ["m"])
    return float(w[0]), models["name"][0].as_py()


def test_model_shards_and_metadata_are_committed_together(tmp_path, monkeypatch):
    release, meta = tmp_path / "rel", tmp_path / "meta"
    _model_pair(release, meta, 1.0)
    assert _state(release, meta) == (1.0, "v1.0")
    real = atomic._replace
    calls = []

    def fail_between(src, dst):  # the swap's renames: 2 set aside, then 2 moved in; fail before the 4th
        calls.append((src, dst))
        if len(calls) == 4:
            raise OSError("injected failure between the two commits")
        real(src, dst)

    monkeypatch.setattr(atomic, "_replace", fail_between)
    with pytest.raises(OSError, match="injected"):
        _model_pair(release, meta, 2.0)
    monkeypatch.setattr(atomic, "_replace", real)
    assert _state(release, meta) == (1.0, "v1.0")  # the old pair, intact
    assert sorted(p.name for p in release.joinpath("filters").iterdir()) == ["m"]
    assert sorted(p.name for p in meta.iterdir()) == ["m"]  # no temporary or .old folder left
    _model_pair(release, meta, 3.0)
    assert _state(release, meta) == (3.0, "v3.0")


def test_next_write_cleans_up_after_a_crashed_one(tmp_path):
    release, meta = tmp_path / "rel", tmp_path / "meta"
    _model_pair(release, meta, 1.0)
    # a kill -9 mid-write leaves temporary folders; one killed mid-swap also a .old
    (release / "filters" / ".m.k1l1ed.tmp").mkdir()
    (meta / ".m.x.tmp").mkdir()
    (release / "filters" / "m").rename(release / "filters" / ".m.old")
    assert layout.filter_models(release) == []
    _model_pair(release, meta, 2.0)
    assert sorted(p.name for p in (release / "filters").iterdir()) == ["m"]
    assert sorted(p.name for p in meta.iterdir()) == ["m"]
    assert _state(release, meta) == (2.0, "v2.0")
