"""The release folder's readers and writers (``dataset.shard``, ``reader``, ``runs``,
``writer``, ``schema``) on small files written here: mutants that survived the other tests.
Expected values are hand counts, numpy, or pyarrow's own reading of the file."""
from __future__ import annotations

import hashlib
import json
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from cnn_filter_db.dataset import reader, shard, writer
from cnn_filter_db.dataset.runs import RunBatch, iter_runs
from cnn_filter_db.errors import FormatError, IntegrityError


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
    """SPEC section 4: zstd; byte-stream-split and no dictionary on the weights; a dictionary on
    model_id only (the integer columns are plain: as small after zstd, and faster to write);
    an offset index on every column, and statistics with a column index on every column but
    the weights (their min/max serve no query)."""
    (path,) = writer.write_filters(tmp_path / "m", "m", [_layer(0, 4, 3, 1)])
    chunks = _chunks(path)
    assert set(chunks) == {"model_id", "layer_id", "out_channel", "in_channel", "weights.list.element"}
    for name, c in chunks.items():
        weights = name == "weights.list.element"
        assert c.compression == "ZSTD", name
        assert c.has_offset_index, name
        assert c.has_column_index == c.is_stats_set == (not weights), name
        assert c.has_dictionary_page == (name == "model_id"), name
    assert "BYTE_STREAM_SPLIT" in chunks["weights.list.element"].encodings
    assert all("BYTE_STREAM_SPLIT" not in c.encodings for n, c in chunks.items() if n != "weights.list.element")


def test_small_tables_keep_dictionaries_and_no_byte_stream_split(tmp_path):
    table = pa.table({"model_id": ["a", "a", "b"], "n_filters": pa.array([1, 2, 3], pa.int64())})
    path = writer.write_table(table, tmp_path, "layers")
    assert path == tmp_path / "layers" / "train-00000-of-00001.parquet"
    for name, c in _chunks(path).items():
        assert c.compression == "ZSTD" and c.has_dictionary_page and "BYTE_STREAM_SPLIT" not in c.encodings, name


def test_every_page_carries_a_checksum(tmp_path):
    """The shard is byte for byte the same rows written with page checksums on, and larger
    than them written with checksums off (a CRC32 in each page header: a thrift field of
    2 to 6 bytes, 6 pages here: a dictionary page and a data page for model_id, one data
    page for each other column)."""
    from cnn_filter_db.dataset.schema import FILTERS_SCHEMA, parquet_options

    (path,) = writer.write_filters(tmp_path / "m", "m", [_layer(0, 4, 3, 2)])
    table = pq.read_table(path).cast(FILTERS_SCHEMA)
    sizes = {}
    for crc in (True, False):
        out = tmp_path / f"crc-{crc}.parquet"
        pq.write_table(table, out, **{**parquet_options(FILTERS_SCHEMA), "write_page_checksum": crc})
        sizes[crc] = out.stat().st_size
    assert path.read_bytes() == (tmp_path / "crc-True.parquet").read_bytes()
    assert sizes[True] - sizes[False] >= 2 * 6


# --------------------------------------------------------------------------- runs

def _batch(model_id, layer_id) -> pa.RecordBatch:
    n = len(layer_id)
    w = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(9 * n, dtype=np.float32)), 9)
    return pa.RecordBatch.from_arrays([model_id, pa.array(layer_id, pa.int32()), w],
                                      names=["model_id", "layer_id", "weights"])


def test_runs_of_a_plain_string_model_id_column():
    rb = RunBatch.of(_batch(pa.array(["a", "a", "b", "b", "b"]), [0, 0, 0, 0, 1]))
    assert rb.keys() == [("a", 0), ("b", 0), ("b", 1)]
    assert rb.starts.tolist() == [0, 2, 4] and rb.stops.tolist() == [2, 4, 5]
    assert rb.starts.dtype == np.int64 and rb.stops.dtype == np.int64
    assert rb.weights().shape == (5, 9) and rb.weights()[4, 8] == 44.0   # 9 * 5 values counted from 0
    assert len(rb) == 5


def test_runs_of_a_dictionary_that_repeats_a_value_and_holds_nulls():
    """Dictionary ["a", "b", "a"]: codes 0 and 2 are one model; a null model_id and a null
    layer_id are -1 (and the run's model is None)."""
    mid = pa.DictionaryArray.from_arrays(pa.array([0, 2, 1, None], pa.int32()), pa.array(["a", "b", "a"]))
    rb = RunBatch.of(_batch(mid, [3, 3, 3, None]))
    assert rb.model.tolist() == [0, 0, 1, -1] and rb.layer.tolist() == [3, 3, 3, -1]
    assert rb.keys() == [("a", 3), ("b", 3), (None, -1)]
    assert rb.starts.tolist() == [0, 2, 3] and rb.stops.tolist() == [2, 3, 4]


def test_runs_of_an_empty_batch():
    rb = RunBatch.of(_batch(pa.array([], pa.string()), []))
    assert rb.keys() == [] and len(rb) == 0
    assert rb.starts.dtype == np.int64 and rb.starts.size == 0 and rb.stops.dtype == np.int64 and rb.stops.size == 0


def _within(seconds: float, fn):
    """Run ``fn`` in a thread; fail if it has not returned in ``seconds`` (a hang is a failure)."""
    out = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"did not finish within {seconds} s"
    return out[0]


def test_iter_runs_reads_the_asked_columns_in_batches(tmp_path):
    (path,) = writer.write_filters(tmp_path / "m", "m", [_layer(0, 3, 4, 3), _layer(1, 2, 2, 4)])
    runs = _within(60, lambda: list(iter_runs(path, ["layer_id", "out_channel"], batch_rows=5)))
    assert [len(r) for r in runs] == [5, 5, 5, 1]                 # 12 + 4 rows
    assert all(r.batch.schema.names == ["model_id", "layer_id", "out_channel"] for r in runs)
    assert [k for r in runs for k in r.keys()] == [("m", 0)] * 3 + [("m", 1), ("m", 1)]
    # out_channel of layer 0 (3 x 4): row i is out i // 4
    assert np.concatenate([r.ints("out_channel") for r in runs]).tolist() == [i // 4 for i in range(12)] + [0, 0, 1, 1]


def test_iter_runs_of_a_one_row_shard_and_of_an_empty_one(tmp_path):
    (one,) = writer.write_filters(tmp_path / "one", "m", [_layer(0, 1, 1, 5)])
    runs = _within(60, lambda: list(iter_runs(one, ["weights"])))
    assert [r.keys() for r in runs] == [[("m", 0)]]
    (empty,) = writer.write_filters(tmp_path / "empty", "m", [])
    assert _within(60, lambda: list(iter_runs(empty, ["weights"]))) == []


def test_iter_runs_names_the_missing_columns(tmp_path):
    (path,) = writer.write_filters(tmp_path / "m", "m", [_layer(0, 1, 1, 6)])
    with pytest.raises(FormatError) as info:
        next(iter_runs(path, ["weights", "nope"]))
    assert str(info.value) == f"{path}: filter shard without the columns ['nope']"


def test_leaving_iter_runs_early_stops_its_reader_thread(tmp_path):
    (path,) = writer.write_filters(tmp_path / "m", "m", [_layer(0, 8, 8, 7)])

    def first_then_close():
        gen = iter_runs(path, ["weights"], batch_rows=4)
        first = next(gen)
        time.sleep(0.5)                              # the reader fills the queue and waits to put more
        gen.close()
        return len(first)

    assert _within(30, first_then_close) == 4


def test_a_slow_consumer_still_gets_every_batch_from_a_named_daemon_reader(tmp_path):
    (path,) = writer.write_filters(tmp_path / "m", "m", [_layer(0, 4, 4, 9)])

    def slowly():
        seen, readers = 0, set()
        for runs in iter_runs(path, ["weights"], batch_rows=4):
            readers |= {(t.name, t.daemon) for t in threading.enumerate() if t.name.startswith("read ")}
            time.sleep(0.25)                         # longer than the reader's wait on a full queue
            seen += len(runs)
        return seen, readers

    seen, readers = _within(60, slowly)
    assert seen == 16
    assert ("read m-00000-of-00001.parquet", True) in readers


def test_the_reader_thread_is_a_daemon_whoever_iterates(tmp_path):
    """A daemon even when the consumer is not one (here the test's main thread): a reader left
    behind never keeps the interpreter from exiting."""
    (path,) = writer.write_filters(tmp_path / "m", "m", [_layer(0, 2, 2, 10)])
    assert not threading.current_thread().daemon
    flags = set()
    for _ in iter_runs(path, ["weights"], batch_rows=2):
        flags |= {t.daemon for t in threading.enumerate() if t.name == "read m-00000-of-00001.parquet"}
    assert flags == {True}


def test_an_error_of_the_batch_source_reaches_the_consumer(tmp_path):
    from cnn_filter_db.dataset.runs import _ahead

    def source():
        yield pa.record_batch([pa.array([1])], names=["x"])
        raise ValueError("boom")

    def consume():
        got = []
        try:
            for b in _ahead(source(), 1, tmp_path / "x.parquet"):
                got.append(b.num_rows)
        except ValueError as exc:
            return got, str(exc)
        return got, None

    assert _within(30, consume) == ([1], "boom")


# --------------------------------------------------------------------------- reader

def _release_with_manifest(root):
    (path,) = writer.write_filters(root / "filters" / "m", "m", [_layer(0, 4, 4, 8)])
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    doc = {"name": "cnn-filter-db", "version": "0", "fingerprint": hashlib.sha256(sha.encode()).hexdigest(),
           "catalog_sha256": "c" * 64, "versions": {},
           "shards": [{"path": "filters/m/m-00000-of-00001.parquet", "sha256": sha, "rows": 16, "bytes": 1}]}
    (root / "manifest.json").write_text(json.dumps(doc))
    return path


def _flip_in_weights(path):
    md = pq.ParquetFile(path).metadata.row_group(0)
    col = next(md.column(i) for i in range(md.num_columns) if md.column(i).path_in_schema.startswith("weights"))
    at = col.data_page_offset + col.total_compressed_size // 2
    data = bytearray(path.read_bytes())
    data[at] ^= 0x5A
    path.write_bytes(bytes(data))


def test_iter_filters_checks_the_manifest_by_default_and_reads_the_asked_columns(tmp_path):
    path = _release_with_manifest(tmp_path)
    batches = list(reader.iter_filters(tmp_path, "m", ["layer_id"], batch_rows=5))
    assert [b.num_rows for b in batches] == [5, 5, 5, 1] and all(b.schema.names == ["layer_id"] for b in batches)
    _flip_in_weights(path)
    with pytest.raises(IntegrityError, match="differs from"):
        next(reader.iter_filters(tmp_path, "m", ["layer_id"]))
    with pytest.raises(FormatError) as info:                 # unverified: the page checksum catches it
        list(reader.iter_filters(tmp_path, "m", verify=False))
    assert str(info.value).startswith(f"{path}: cannot be read: ")


def test_read_table_returns_the_asked_columns_with_or_without_a_schema(tmp_path):
    from cnn_filter_db.dataset.schema import LAYERS_SCHEMA

    rows = [{"model_id": "m", "layer_id": 0, "layer_name": "c", "conv_depth": 1, "conv_depth_norm": 1.0,
             "out_channels": 2, "in_channels_per_group": 3, "groups": 1, "conv_kind": "dense", "n_filters": 6}]
    writer.write_table(pa.Table.from_pylist(rows, schema=LAYERS_SCHEMA), tmp_path, "layers")
    t = reader.read_table(tmp_path, "layers", columns=["n_filters", "model_id"], schema=LAYERS_SCHEMA)
    assert t.column_names == ["n_filters", "model_id"] and t.column("n_filters").to_pylist() == [6]
    assert reader.read_table(tmp_path, "layers", columns=["layer_name"]).column_names == ["layer_name"]
    assert reader.read_table(tmp_path, "layers", schema=LAYERS_SCHEMA).schema == LAYERS_SCHEMA
    none = pc.field("layer_id") == 5                       # the one row has layer_id 0
    assert reader.read_table(tmp_path, "layers", ["model_id"], none, schema=LAYERS_SCHEMA).num_rows == 0
    assert reader.read_table(tmp_path, "layers", ["model_id"], none).num_rows == 0


def test_read_table_widens_shards_written_with_narrower_types(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    pq.write_table(pa.table({"n": pa.array([1], pa.int32())}), folder / "a-00000-of-00002.parquet")
    pq.write_table(pa.table({"n": pa.array([2], pa.int64())}), folder / "a-00001-of-00002.parquet")
    t = reader.read_table(tmp_path, "models", verify=False)
    assert t.column("n").type == pa.int64() and t.column("n").to_pylist() == [1, 2]


def test_read_table_of_a_table_without_shards(tmp_path):
    from cnn_filter_db.errors import ReleaseError

    with pytest.raises(ReleaseError) as info:
        reader.read_table(tmp_path, "layers")
    assert str(info.value) == (f"{tmp_path / 'layers'}: no Parquet shard of the layers table; "
                               "run the extract and gather stages first")
    assert reader.read_table(tmp_path, "layers", missing_ok=True) is None
