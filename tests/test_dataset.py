"""The release folder package: one rule for what is a shard, readers and writers, the
(model, layer) run iterator, the manifest, and crash safety of the writes."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cnn_filter_db import atomic, load_layer
from cnn_filter_db.dataset import integrity, layout, manifest, reader, writer
from cnn_filter_db.dataset.runs import iter_runs
from cnn_filter_db.dataset.schema import LAYERS_SCHEMA
from cnn_filter_db.errors import FormatError, IntegrityError, ReleaseError


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
    paths = writer.write_filters(tmp_path / "filters" / "m", "m", layers,
                                 params={"max_rows_per_shard": 16, "row_group_rows": 8})
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

    def fail_between(src, dst):  # the swap sets 2 folders aside, then moves 2 in: fail at the 2nd move in
        if Path(src).name.endswith(".tmp") and Path(src).is_dir():
            calls.append((src, dst))
            if len(calls) == 2:
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


# --------------------------------------------------------------------------- integrity

MODEL = "efficientnet-lite0"


def _with_manifest(release: Path) -> dict:
    m = manifest.build_manifest(release, "0.0.0-test", "0" * 64, {"cnn-filter-db": "test"})
    manifest.write_manifest(release, m)
    return m


def _weights_chunk(path: Path) -> tuple[int, int]:
    """(offset, length) of the weights column chunk of the shard's first row group."""
    md = pq.ParquetFile(path).metadata.row_group(0)
    col = next(md.column(i) for i in range(md.num_columns) if md.column(i).path_in_schema.startswith("weights"))
    start = min(o for o in (col.dictionary_page_offset, col.data_page_offset) if o is not None)
    return start, col.total_compressed_size


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x5A
    path.write_bytes(bytes(data))


def _expected_layer(path: Path, layer_id: int, out_c: int, in_c: int) -> np.ndarray:
    t = pq.read_table(path, filters=[("layer_id", "==", layer_id)])
    w = np.stack(t["weights"].to_numpy(zero_copy_only=False)).astype(np.float32)
    out = np.zeros((out_c, in_c, 3, 3), np.float32)
    out[t["out_channel"].to_numpy(), t["in_channel"].to_numpy()] = w.reshape(-1, 3, 3)
    return out


@pytest.mark.parametrize("with_manifest", [True, False])
def test_a_flipped_byte_in_the_weights_is_an_error_naming_the_shard(copy_release, with_manifest):
    release = copy_release()
    (path,) = layout.model_shards(release, MODEL)
    layers = pq.read_table(release / "layers").to_pandas().query("model_id == @MODEL").set_index("layer_id")
    lid = int(layers.index[len(layers) // 2])
    shape = int(layers.loc[lid, "out_channels"]), int(layers.loc[lid, "in_channels_per_group"])
    np.testing.assert_array_equal(load_layer(MODEL, lid, source=release), _expected_layer(path, lid, *shape))
    if with_manifest:
        _with_manifest(release)
    start, length = _weights_chunk(path)
    _flip(path, start + length // 2)
    error = IntegrityError if with_manifest else FormatError  # sha256, or the page checksum
    for layer_id in layers.index:  # not one layer comes back with other numbers
        with pytest.raises(error, match=re.escape(str(path))):
            load_layer(MODEL, int(layer_id), source=release)
    with pytest.raises(error, match=re.escape(str(path))):  # the streaming reader, too
        for _ in iter_runs(path, ["weights"]):
            pass
    with pytest.raises(FormatError, match=re.escape(str(path))):  # unverified (the DVC stages): page checksums
        for _ in iter_runs(path, ["weights"], verify=False):
            pass


def test_twenty_random_flips_are_all_errors(copy_release):
    release = copy_release()
    _with_manifest(release)
    (path,) = layout.model_shards(release, MODEL)
    original = path.read_bytes()
    rng = np.random.default_rng(20)
    for at in rng.choice(len(original), size=20, replace=False):
        _flip(path, int(at))
        with pytest.raises(IntegrityError, match=re.escape(str(path))):
            load_layer(MODEL, 0, source=release)
        path.write_bytes(original)
    assert load_layer(MODEL, 0, source=release).dtype == np.float32  # restored: reads again


def test_a_verified_shard_is_not_hashed_again(copy_release, monkeypatch):
    release = copy_release()
    _with_manifest(release)
    hashed = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda p: hashed.append(Path(p).name) or real(p))
    load_layer(MODEL, 0, source=release)
    first = sorted(hashed)
    assert f"{MODEL}-00000-of-00001.parquet" in first and "train-00000-of-00001.parquet" in first
    load_layer(MODEL, 1, source=release)
    assert sorted(hashed) == first  # same size and mtime: remembered
    (path,) = layout.model_shards(release, MODEL)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    load_layer(MODEL, 1, source=release)
    assert sorted(hashed) == sorted(first + [path.name])


def test_a_shard_missing_from_the_manifest_is_refused(copy_release):
    release = copy_release()
    _with_manifest(release)
    (path,) = layout.model_shards(release, MODEL)
    shutil.copy(path, path.with_name(f"{MODEL}-00001-of-00001.parquet"))
    with pytest.raises(IntegrityError, match="not listed in"):
        load_layer(MODEL, 0, source=release)


@pytest.mark.parametrize("bad", ["/dev/zero", "../x", "filters/../../x", ".hidden/a.parquet"])
def test_a_path_outside_the_release_is_refused_unopened(copy_release, bad):
    release = copy_release()
    m = _with_manifest(release)
    m["shards"][0]["path"] = bad
    (release / "manifest.json").write_text(json.dumps(m))  # as a tampered file would be
    with pytest.raises(ReleaseError, match=r"manifest.json: malformed manifest: shards\.0\.path: .*not a path inside"):
        manifest.read_manifest(release)
    (problem,) = manifest.check_manifest(release)  # one line, no hashing of /dev/zero
    assert "not a path inside the release folder" in problem
    with pytest.raises(ReleaseError, match="malformed manifest"):
        load_layer(MODEL, 0, source=release)


def test_a_malformed_manifest_is_one_clear_error(copy_release):
    release = copy_release()
    m = _with_manifest(release)
    del m["fingerprint"]
    m["shards"][1]["rows"] = "many"
    (release / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ReleaseError) as info:
        manifest.read_manifest(release)
    assert str(info.value).count("\n") == 0
    assert "fingerprint: Field required" in str(info.value) and "shards.1.rows" in str(info.value)
    (release / "manifest.json").write_text("{not json")
    assert manifest.check_manifest(release) == [f"{release / 'manifest.json'}: not valid JSON "
                                                 "(Expecting property name enclosed in double quotes: "
                                                 "line 1 column 2 (char 1))"]
