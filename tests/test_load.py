"""Reading a release as a user does: arrays of a layer, a model or any selection; the name
`load_dataset("cnn-filter-db")` from the repository root; a light import; and one-line
answers, with the closest matches, to a wrong source, id, name or type."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest

from cnn_filter_db import config, load_filters, load_layer, load_model
from cnn_filter_db.errors import CnnFilterDbError, ReleaseError
from cnn_filter_db.release import build_release

HEAVY = ("pandas", "torch", "timm", "datasets", "great_expectations", "dvc", "scipy", "matplotlib", "dask",
         "onnx", "h5py", "sklearn")


@pytest.fixture(scope="module")
def project(small_release, tmp_path_factory, root):
    """A folder laid out as a built checkout: dist/cnn-filter-db with its card, and the
    repository's committed link beside it."""
    proj = tmp_path_factory.mktemp("project")
    rel = proj / config.RELEASE_DIR
    shutil.copytree(small_release, rel)
    build_release(rel, "0.1.0", {"redistributable_licenses": ["MIT", "Apache-2.0", "AGPL-3.0"],
                                 "allow_unknown_license": True, "hub_repo_id": "test-org/cnn-filter-db"}, root=root)
    os.symlink(os.readlink(root / "cnn-filter-db"), proj / "cnn-filter-db")
    return proj


def test_the_link_names_the_release_folder(root):
    link = root / "cnn-filter-db"
    assert link.is_symlink() and os.readlink(link) == str(config.RELEASE_DIR)
    assert "/cnn-filter-db" in (root / ".dvcignore").read_text().split()


def test_load_dataset_by_name_from_the_root(project, monkeypatch):
    rel = project / config.RELEASE_DIR
    n_filters = sum(pq.ParquetFile(p).metadata.num_rows for p in rel.glob("filters/*/*.parquet"))
    n_layers = sum(pq.ParquetFile(p).metadata.num_rows for p in rel.glob("layers/*.parquet"))
    monkeypatch.chdir(project)
    filters = datasets.load_dataset("cnn-filter-db", split="train")
    layers = datasets.load_dataset("cnn-filter-db", "layers", split="train")
    assert filters.num_rows == n_filters and layers.num_rows == n_layers
    assert filters.column_names == ["model_id", "layer_id", "out_channel", "in_channel", "weights"]


def test_import_is_light(root):
    code = ("import sys, cnn_filter_db\n"
            "from cnn_filter_db import load_layer, load_model, load_filters\n"
            "import cnn_filter_db.cli\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(root / "src")))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


@pytest.mark.parametrize("source, kind, words", [
    ("dist/cnn-filter-dbx", FileNotFoundError, "dist/cnn-filter-dbx: no such release folder (a Hub dataset is hf://"),
    ("org/name", FileNotFoundError, "org/name: no such release folder"),  # no Hub request without hf://
    ("hf://just-a-name", ValueError, "expected hf://ORG/NAME"),
    ("hf://datasets/a/b/c", ValueError, "expected hf://ORG/NAME"),
    (3, TypeError, "source: expected a release folder (str or Path) or hf://ORG/NAME"),
])
def test_wrong_source_is_one_line(source, kind, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(kind) as info:
        load_layer("efficientnet-lite0", 0, source)
    message = str(info.value)
    assert words in message and "\n" not in message


@pytest.mark.parametrize("call", [
    lambda cache: load_layer("a/b", 0, "hf://org/name", cache_dir=cache),
    lambda cache: load_model("..", "hf://org/name", cache_dir=cache),
    lambda cache: load_model(".m.old", "hf://org/name", cache_dir=cache),
    lambda cache: load_filters("hf://datasets/org/name", models=["efficientnet-lite0", "*"], cache_dir=cache),
])
def test_a_bad_model_id_is_refused_before_any_download(call, tmp_path):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # a download attempt would fail otherwise, not with ReleaseError
    with pytest.raises(ReleaseError, match="not a model id") as info:
        call(tmp_path)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing fetched, nothing cached
    # the same call with a good id goes on to the (offline) download, and fails there
    with pytest.raises(Exception) as good:
        load_layer("efficientnet-lite0", 0, "hf://org/name", cache_dir=tmp_path)
    assert not isinstance(good.value, ReleaseError)


# --------------------------------------------------------------------------- arrays
# expected values: the shards read with pyarrow and cut with numpy here, relying only on
# the stored order (layer_id, out_channel, in_channel) and the layers table's shapes


def raw(rel, model_id):
    t = pq.read_table(sorted((rel / "filters" / model_id).glob("*.parquet")))
    w = np.asarray(t["weights"].combine_chunks().flatten(), dtype=np.float32).reshape(-1, 3, 3)
    return {c: np.asarray(t[c]) for c in ("layer_id", "out_channel", "in_channel")}, w


def shapes(rel, model_id):
    t = pq.read_table(sorted(rel.glob("layers/*.parquet"))).to_pylist()
    return {r["layer_id"]: (r["layer_name"], r["out_channels"], r["in_channels_per_group"])
            for r in t if r["model_id"] == model_id}


@pytest.mark.parametrize("model_id", ["efficientnet-lite0", "facenet-mtcnn-onet", "rapidocr-ppocrv4-det"])
def test_load_model_equals_the_shards(small_release, model_id):
    keys, w = raw(small_release, model_id)
    layers = shapes(small_release, model_id)
    got = load_model(model_id, small_release)
    assert list(got) == sorted(layers)
    for lid, (_, out_c, in_c) in layers.items():
        mask = keys["layer_id"] == lid
        assert got[lid].dtype == np.float32 and got[lid].shape == (out_c, in_c, 3, 3)
        np.testing.assert_array_equal(got[lid], w[mask].reshape(out_c, in_c, 3, 3))


def test_load_layer_by_name_or_id(small_release):
    layers = shapes(small_release, "efficientnet-lite0")
    lid = sorted(layers)[3]
    by_id = load_layer("efficientnet-lite0", lid, small_release)
    np.testing.assert_array_equal(load_layer("efficientnet-lite0", layers[lid][0], small_release), by_id)
    np.testing.assert_array_equal(load_model("efficientnet-lite0", small_release, layers=[layers[lid][0]])[lid], by_id)


def test_load_filters_any_selection(small_release):
    models = ["nudenet-320n", "facenet-mtcnn-onet"]
    weights, keys = load_filters(small_release, models=models, layers=[0, 2])
    expected_w, expected_keys = [], []
    for mid in models:
        k, w = raw(small_release, mid)
        mask = np.isin(k["layer_id"], [0, 2])
        expected_w.append(w[mask])
        expected_keys += [(mid, int(a), int(b), int(c)) for a, b, c in
                          zip(k["layer_id"][mask], k["out_channel"][mask], k["in_channel"][mask])]
    np.testing.assert_array_equal(weights, np.concatenate(expected_w))
    assert weights.dtype == np.float32 and weights.shape[1:] == (3, 3)
    got_keys = list(zip(*(keys[c].to_pylist() for c in ("model_id", "layer_id", "out_channel", "in_channel"))))
    assert got_keys == expected_keys


def test_load_filters_whole_release(small_release):
    weights, keys = load_filters(small_release)
    n = sum(pq.ParquetFile(p).metadata.num_rows for p in small_release.glob("filters/*/*.parquet"))
    assert weights.shape == (n, 3, 3) and keys.num_rows == n
    assert set(keys["model_id"].to_pylist()) == {p.name for p in (small_release / "filters").iterdir()}


@pytest.mark.parametrize("call, kind, words", [
    (lambda r: load_layer("efficientnet-lite1", 0, r), LookupError,
     "no model 'efficientnet-lite1'; did you mean 'efficientnet-lite0'"),
    (lambda r: load_layer("efficientnet-lite0", 99, r), LookupError, "has layers 0..7, not 99"),
    (lambda r: load_layer("efficientnet-lite0", "_blocks.1._depthwise_cnv", r), LookupError,
     "no layer named '_blocks.1._depthwise_cnv'; did you mean '_blocks.1._depthwise_conv'"),
    (lambda r: load_layer("efficientnet-lite0", 1.5, r), TypeError, "layer: expected a layer id (int) or a layer name"),
    (lambda r: load_layer("efficientnet-lite0", [0, 1], r), TypeError, "load_model takes several"),
    (lambda r: load_model(7, r), TypeError, "model_id: expected a model id (str)"),
    (lambda r: load_filters(r, models=[7]), TypeError, "models: expected model ids (str)"),
    (lambda r: load_filters(r, models="nope"), LookupError, "no model 'nope'"),
    (lambda r: load_model("efficientnet-lite0", r, revision=3), TypeError, "revision: expected a tag"),
    (lambda r: load_model("efficientnet-lite0", r, revision="v0.1.0"), ValueError, "has no revisions"),
    (lambda r: load_filters(r / "layers"), CnnFilterDbError, "no Parquet shard of the layers table"),
])
def test_wrong_input_is_one_line(small_release, call, kind, words):
    with pytest.raises(kind) as info:
        call(small_release)
    assert words in str(info.value) and "\n" not in str(info.value)
