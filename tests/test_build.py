"""Building the release: shards, determinism, sources' checks, and failures that keep the
last good output."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from cnn_filter_db import catalog, extract
from cnn_filter_db.dataset import schema, writer
from cnn_filter_db.errors import FormatError, SourceError
from cnn_filter_db.formats.base import Conv


def test_small_release_tables(small_release):
    models = pq.read_table(small_release / "models").to_pylist()
    layers = pq.read_table(small_release / "layers")
    assert [m["model_id"] for m in models] == sorted(m["model_id"] for m in models)
    assert layers.schema.equals(schema.LAYERS_SCHEMA, check_metadata=False)
    for m in models:
        files = sorted((small_release / "filters" / m["model_id"]).glob("*.parquet"))
        assert [f.name for f in files] == [f"{m['model_id']}-00000-of-00001.parquet"]
        pf = pq.ParquetFile(files[0])
        assert pf.schema_arrow.equals(schema.FILTERS_SCHEMA, check_metadata=False)
        assert pf.metadata.num_rows == m["n_filters"]
        col = pf.metadata.row_group(0).column(4)
        assert col.path_in_schema == "weights.list.element"
        assert "BYTE_STREAM_SPLIT" in col.encodings and col.compression == "ZSTD"
        assert not col.has_dictionary_page
        lay = layers.filter(pc.equal(layers["model_id"], m["model_id"]))
        assert sum(lay["n_filters"].to_pylist()) == m["n_filters"] and len(lay) == m["n_layers"]
    size = sum(f.stat().st_size for f in (small_release / "filters").rglob("*.parquet"))
    rows = sum(m["n_filters"] for m in models)
    assert size / rows <= 31.5, "storage target: about 31 bytes a filter, keys included"


def test_shards_split_sorted_and_complete(tmp_path):
    rng = np.random.default_rng(1)
    convs = [Conv(f"c{i}", rng.standard_normal((o, c, 3, 3), dtype=np.float32), 1, i)
             for i, (o, c) in enumerate([(8, 3), (16, 8), (32, 16), (5, 32)])]
    layers = extract.layers_of("m", convs)
    n = sum(layer.row["n_filters"] for layer in layers)
    paths = writer.write_filters(tmp_path / "m", "m", layers, params={"max_rows_per_shard": 300, "row_group_rows": 64})
    assert [p.name for p in paths] == [f"m-0000{i}-of-00003.parquet" for i in range(3)]
    t = pq.read_table(paths)  # shards concatenate to every row, sorted by key
    assert t.num_rows == n == 24 + 128 + 512 + 160
    keys = list(zip(t["layer_id"].to_pylist(), t["out_channel"].to_pylist(), t["in_channel"].to_pylist()))
    assert keys == sorted(keys) and len(set(keys)) == n
    for p in paths:
        md = pq.ParquetFile(p).metadata
        assert md.num_rows <= 300
        assert all(md.row_group(i).num_rows <= 64 for i in range(md.num_row_groups))
    w = t["weights"].combine_chunks().values.to_numpy().reshape(-1, 9)
    np.testing.assert_array_equal(w[24:152], convs[1].weight.reshape(-1, 9))


def test_zero_filter_model_gets_an_empty_shard(tmp_path):
    convs = [Conv("seven", np.zeros((4, 4, 7, 7), np.float32), 1, 0)]
    layers = extract.layers_of("m", convs)
    assert layers == []
    paths = writer.write_filters(tmp_path / "m", "m", layers)
    assert pq.ParquetFile(paths[0]).metadata.num_rows == 0


BUILD_SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from conftest import build_release
build_release(Path(sys.argv[1]), {ids!r}, Path(sys.argv[2]))
"""


def test_two_builds_in_separate_processes_are_byte_identical(tmp_path, cache_dir):
    ids = ["rapidocr-ppocrv4-rec", "facenet-mtcnn-rnet", "timm-resnet18-init"]
    script = BUILD_SCRIPT.format(tests=str(Path(__file__).parent), ids=ids)
    digests = []
    for run in ("a", "b"):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / run), str(cache_dir)], check=True)
        rel = tmp_path / run / "dist" / "cnn-filter-db"
        digests.append({p.relative_to(rel).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in sorted(rel.rglob("*.parquet"))})
    assert len(digests[0]) == 5 and digests[0] == digests[1]


def entry_with(tmp_path: Path, root: Path, mid: str, **source_changes) -> catalog.Entry:
    data = yaml.safe_load((root / "catalog" / "models" / f"{mid}.yaml").read_text())
    data["source"].update(source_changes)
    return catalog.Entry.model_validate(data)


def test_wrong_sha256_names_entry_and_leaves_nothing(tmp_path, root, cache_dir):
    from cnn_filter_db import sources

    entry = entry_with(tmp_path, root, "facenet-mtcnn-pnet", sha256="0" * 64)
    own_cache = tmp_path / "cache"
    with pytest.raises(SourceError, match=r"facenet-mtcnn-pnet: sha256 mismatch .* expected 0{64}, got a2a71925"):
        sources.load(entry, cache_dir=own_cache)
    assert not [p for p in own_cache.rglob("*") if p.is_file()]


def test_missing_file_in_wheel_and_missing_package(tmp_path, root):
    from cnn_filter_db import sources

    entry = entry_with(tmp_path, root, "facenet-mtcnn-pnet", path="facenet_pytorch/data/pnet.pth")
    with pytest.raises(SourceError, match=r"source.path: .*pnet.pth' is not in the wheel .*did you mean"):
        sources.load(entry, cache_dir=tmp_path / "c")
    entry = entry_with(tmp_path, root, "facenet-mtcnn-pnet", version="0.0.0.999")
    with pytest.raises(SourceError, match="pip could not download the wheel facenet-pytorch==0.0.0.999"):
        sources.load(entry, cache_dir=tmp_path / "c")


def test_url_source_and_declared_format_mismatch(tmp_path, root, cache_dir):
    from cnn_filter_db import sources

    pnet = sources.fetch_file(catalog.load_entry("facenet-mtcnn-pnet", root), cache_dir)
    local = tmp_path / "pnet.pt"
    shutil.copy(pnet, local)
    data = yaml.safe_load((root / "catalog" / "models" / "facenet-mtcnn-pnet.yaml").read_text())
    data["source"] = {"kind": "url", "url": local.as_uri(), "sha256": data["source"]["sha256"]}
    loaded = sources.load(catalog.Entry.model_validate(data), cache_dir=tmp_path / "c")
    assert len(loaded.convs.convs) == 5 and loaded.uri == local.as_uri()
    data["format"] = "onnx"
    with pytest.raises(FormatError, match=r"facenet-mtcnn-pnet: .*pnet.* not a readable ONNX model"):
        sources.load(catalog.Entry.model_validate(data), cache_dir=tmp_path / "c")


def test_failed_extraction_keeps_last_good_output(tmp_path, root, cache_dir):
    release, meta = tmp_path / "dist", tmp_path / "meta"
    good = catalog.load_entry("facenet-mtcnn-rnet", root)
    extract.extract_model(good, release, meta, root=root, cache_dir=cache_dir, progress=False)
    before = {p: p.read_bytes() for p in (release / "filters").rglob("*") if p.is_file()}
    # the same id, now pointing at a truncated copy of the file
    src = sources_file(good, cache_dir)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(src.read_bytes()[:5000])
    data = good.model_dump()
    data["source"] = {"kind": "url", "url": cut.as_uri(), "sha256": hashlib.sha256(cut.read_bytes()).hexdigest()}
    with pytest.raises(FormatError, match="facenet-mtcnn-rnet"):
        extract.extract_model(catalog.Entry.model_validate(data), release, meta, root=root,
                              cache_dir=tmp_path / "c", progress=False)
    after = {p: p.read_bytes() for p in (release / "filters").rglob("*") if p.is_file()}
    assert after == before
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".") or p.name.endswith((".tmp", ".part"))]
    assert leftovers == []


def sources_file(entry, cache_dir):
    from cnn_filter_db import sources

    return sources.fetch_file(entry, cache_dir)


def test_cache_rehashes_only_changed_files(tmp_path):
    import io

    from cnn_filter_db.sources.cache import Cache

    cache = Cache(tmp_path)
    data = b"weights" * 1000
    sha = hashlib.sha256(data).hexdigest()
    p = cache.put_stream(io.BytesIO(data), sha, "test")
    assert cache.get(sha) == p
    # same size, new content and a new mtime: the sidecar no longer matches, so it is re-hashed and dropped
    p.write_bytes(b"x" * len(data))
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    assert cache.get(sha) is None and not p.exists()
