"""Importer of the CVPR 2022 release: a small file in its layout (pandas ``to_hdf`` /meta with a
MultiIndex and pickled object columns, h5py /filters float64), imported, checked value for
value, and extracted again through the normal pipeline from the entries it wrote."""
from __future__ import annotations

import shutil

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from cnn_filter_db import catalog, formats
from cnn_filter_db.catalog import parse_entry
from cnn_filter_db.errors import CatalogError, FormatError
from cnn_filter_db.import_original import import_original
from cnn_filter_db.sources.cache import sha256_file

# (model, Name, Task, Datatype, Training-Dataset, Pretraining-Dataset, layers as (conv_depth, out, in))
MODELS = [
    ("resnet18_imagenet1k_opset11", "ResNet-18", "Classification", "natural", "ImageNet1k", np.nan,
     [(1, 4, 3), (2, 4, 4), (4, 8, 4)]),
    ("unet_lits_ct", "U-Net", "Segmentation", "medical (CT)", "LiTS", "ImageNet1k", [(0, 2, 1), (3, 2, 2)]),
    ("mnist cnn/no-channels", "Simple CNN", "Classification", "handwritten", "MNIST", np.nan, [(0, None, 6)]),
    ("broken_nan", "VGG-11", "Classification", "natural", "CIFAR-10", np.nan, [(0, 2, 3)]),
]
MAX_DEPTH = {"resnet18_imagenet1k_opset11": 5, "unet_lits_ct": 3, "mnist cnn/no-channels": 2, "broken_nan": 1}


def write_original(path, csv_meta=False):
    rng = np.random.default_rng(0)
    rows, chunks, n = [], [], 0
    for model_id, (model, name, task, datatype, train, pre, layers) in enumerate(MODELS):
        for depth, out_c, in_c in layers:
            count = (out_c or 1) * in_c
            block = rng.normal(size=(count, 3, 3))
            if model == "broken_nan":
                block[1, 2, 2] = np.nan
            chunks.append(block)
            rows.append({"model_id": model_id, "conv_depth": depth,
                         "conv_depth_norm": depth / MAX_DEPTH[model], "filter_ids": f"{n}:{n + count - 1}",
                         "model": model, "Name": name, "Task": task, "Datatype": datatype,
                         "Training-Dataset": train, "Pretraining-Dataset": pre,
                         "Paper": "https://arxiv.org/abs/1512.03385" if name == "ResNet-18" else np.nan,
                         "Accessible": "https://github.com/pytorch/vision", "producer": "pytorch", "op_set": 11,
                         "out_channels": out_c if out_c else np.nan, "in_channels": in_c if out_c else np.nan,
                         "(3, 3) filters": count})
            n += count
    meta = pd.DataFrame(rows)
    filters = np.concatenate(chunks)
    if csv_meta:
        with h5py.File(path, "w") as f:
            f.create_dataset("filters", data=filters)
            f.create_dataset("meta", data=np.frombuffer(meta.to_csv(index=False).encode(), np.uint8))
    else:
        # the original's MultiIndex repeats columns; object columns are pickled by pytables
        meta.set_index(["model_id", "conv_depth"], drop=False).to_hdf(path, key="meta", mode="w")
        with h5py.File(path, "a") as f:
            f.create_dataset("filters", data=filters)
    return filters, meta


@pytest.fixture
def project(tmp_path, root):
    proj = tmp_path / "proj"
    (proj / "catalog" / "models").mkdir(parents=True)
    shutil.copy(root / "catalog" / "vocabulary.yaml", proj / "catalog" / "vocabulary.yaml")
    return proj


@pytest.fixture
def original(tmp_path):
    path = tmp_path / "dataset.h5"
    filters, meta = write_original(path)
    return path, sha256_file(path), filters, meta


def test_import_writes_entries_and_shards(original, project):
    path, sha, filters, meta = original
    report = import_original(path, sha, project, unknown_labels="fallback")
    ids = {r["original"]: r["model_id"] for r in report.imported}
    assert set(ids) == {"resnet18_imagenet1k_opset11", "unet_lits_ct", "mnist cnn/no-channels"}
    assert ids["mnist cnn/no-channels"] == "cvpr22-mnist-cnn-no-channels"
    assert [f[0] for f in report.failed] == ["broken_nan"] and "NaN" in report.failed[0][1]
    # nothing at all for the failed model
    assert not (project / "catalog" / "models" / "cvpr22-broken-nan.yaml").exists()
    assert not list(project.rglob("*broken*"))

    e = parse_entry(project / "catalog" / "models" / f"{ids['resnet18_imagenet1k_opset11']}.yaml", project)
    assert (e.format, e.family, e.task, e.visual_category, e.training_dataset, e.pretraining_dataset) == (
        "hdf5-original", "resnet", "classification", "natural", "imagenet-1k", "none")
    assert e.source.kind == "url" and e.source.sha256 == sha
    assert e.source.url == f"{path.as_uri()}#model=resnet18_imagenet1k_opset11"
    assert e.paper == "https://arxiv.org/abs/1512.03385" and e.license == "CC-BY-SA-4.0"
    assert "Datatype=natural" in e.notes and "Training-Dataset=ImageNet1k" in e.notes
    unet = parse_entry(project / "catalog" / "models" / f"{ids['unet_lits_ct']}.yaml", project)
    assert (unet.task, unet.visual_category, unet.training_dataset, unet.pretraining_dataset) == (
        "segmentation", "medical", "unknown", "imagenet-1k")  # LiTS is not in the vocabulary: fallback
    assert "Training-Dataset=LiTS" in unet.notes  # the original label is kept
    assert catalog.check_index(project) == []  # the index was regenerated

    # filters: the original float64 rows as float32, in C order (out * c_in + in)
    mid = ids["resnet18_imagenet1k_opset11"]
    table = pq.read_table(project / "dist" / "cnn-filter-db" / "filters" / mid).to_pydict()
    rows = meta[meta["model"] == "resnet18_imagenet1k_opset11"]
    offset = 0
    for layer_id, (_, r) in enumerate(rows.iterrows()):
        start = int(r["filter_ids"].split(":")[0])
        for k in range(int(r["out_channels"] * r["in_channels"])):
            i = offset + k
            assert table["layer_id"][i] == layer_id
            assert (table["out_channel"][i], table["in_channel"][i]) == divmod(k, int(r["in_channels"]))
            np.testing.assert_array_equal(np.array(table["weights"][i], np.float32),
                                          filters[start + k].ravel().astype(np.float32))
        offset += k + 1
    assert offset == len(table["layer_id"]) == 4 * 3 + 4 * 4 + 8 * 4

    layers = pq.read_table(project / "build" / "meta" / mid / "layers.parquet").to_pydict()
    assert layers["conv_depth"] == [1, 2, 4]  # the original depths, kept through placeholder levels
    np.testing.assert_allclose(layers["conv_depth_norm"], [0.2, 0.4, 0.8], rtol=1e-6)
    assert layers["out_channels"] == [4, 4, 8] and layers["in_channels_per_group"] == [3, 4, 4]
    model = pq.read_table(project / "build" / "meta" / mid / "model.parquet").to_pylist()[0]
    assert (model["n_filters"], model["weights_sha256"], model["format"]) == (60, sha, "hdf5-original")

    nochan = pq.read_table(project / "build" / "meta" / ids["mnist cnn/no-channels"] / "layers.parquet").to_pylist()
    assert [(r["out_channels"], r["in_channels_per_group"], r["n_filters"]) for r in nochan] == [(1, 6, 6)]


def test_imported_entries_extract_again_through_the_pipeline(original, project, tmp_path, monkeypatch):
    from cnn_filter_db.config import TRUSTED_PICKLE_ENV
    from cnn_filter_db.extract import extract_model

    path, sha, _, _ = original
    report = import_original(path, sha, project, unknown_labels="fallback")
    # an entry's own sha256 does not unlock unpickling (its author chose file and hash)
    monkeypatch.delenv(TRUSTED_PICKLE_ENV, raising=False)
    first = catalog.load_entry(report.imported[0]["model_id"], project)
    with pytest.raises(FormatError, match=f"sha256 you trust.*{TRUSTED_PICKLE_ENV}"):
        extract_model(first, tmp_path / "rel0", tmp_path / "meta0", root=project,
                      cache_dir=tmp_path / "cache", progress=False)
    monkeypatch.setenv(TRUSTED_PICKLE_ENV, sha)  # the user checked the file
    for r in report.imported:
        entry = catalog.load_entry(r["model_id"], project)
        again = extract_model(entry, tmp_path / "rel2", tmp_path / "meta2", root=project,
                              cache_dir=tmp_path / "cache", progress=False)
        a = pq.read_table(project / "dist" / "cnn-filter-db" / "filters" / r["model_id"])
        b = pq.read_table(tmp_path / "rel2" / "filters" / r["model_id"])
        assert a.equals(b) and again["n_filters"] == r["n_filters"]
        la = pq.read_table(project / "build" / "meta" / r["model_id"] / "layers.parquet")
        lb = pq.read_table(tmp_path / "meta2" / r["model_id"] / "layers.parquet")
        assert la.equals(lb)


def test_wrong_sha256_is_refused_before_any_unpickling(original, project, monkeypatch):
    path, _, _, _ = original

    def no_unpickling(*args, **kwargs):
        raise AssertionError("pandas.read_hdf called on an unpinned file")

    monkeypatch.setattr(pd, "read_hdf", no_unpickling)
    with pytest.raises(FormatError, match=r"dataset\.h5: refused: sha256 is [0-9a-f]{64}, not the pinned 0{64}; "
                                          r"its /meta table is stored pickled"):
        import_original(path, "0" * 64, project)
    with pytest.raises(FormatError, match=r"refused: .*sha256 you trust"):
        formats.read(path, "hdf5-original", member="unet_lits_ct")  # no sha256 given at all
    assert not [p for p in project.rglob("*") if p.is_file() and p.name != "vocabulary.yaml"]


def test_unmapped_labels_stop_the_import_and_say_what_to_add(original, project):
    path, sha, _, _ = original
    with pytest.raises(CatalogError) as err:
        import_original(path, sha, project)
    text = str(err.value)
    assert "unet_lits_ct (cvpr22-unet-lits-ct): training_dataset: original label maps to 'lits'" in text
    assert "vocabulary 'dataset'" in text
    assert not list((project / "catalog" / "models").iterdir())  # nothing written


def test_existing_entries_are_kept_unless_forced(original, project):
    path, sha, _, _ = original
    import_original(path, sha, project, unknown_labels="fallback", models=["unet_lits_ct"])
    again = import_original(path, sha, project, unknown_labels="fallback", models=["unet_lits_ct"])
    assert again.skipped == ["cvpr22-unet-lits-ct"] and not again.imported
    forced = import_original(path, sha, project, unknown_labels="fallback", models=["unet_lits_ct"], force=True)
    assert [r["model_id"] for r in forced.imported] == ["cvpr22-unet-lits-ct"]


def test_reader_selects_one_model(original):
    path, sha, filters, _ = original
    m = formats.read(path, "hdf5-original", member="unet_lits_ct", sha256=sha)
    real = [c for c in m.convs if c.weight.size]
    assert [(c.weight.shape, c.level) for c in real] == [((2, 1, 3, 3), 0), ((2, 2, 3, 3), 3)]
    assert sorted(c.level for c in m.convs) == [0, 1, 2, 3]  # placeholders at depths 1 and 2
    start = 4 * 3 + 4 * 4 + 8 * 4
    np.testing.assert_array_equal(real[0].weight.reshape(2, 9), filters[start:start + 2].reshape(2, 9).astype(np.float32))
    with pytest.raises(FormatError, match="holds many models: name one"):
        formats.read(path, "hdf5-original", sha256=sha)
    with pytest.raises(FormatError, match="no model 'nope' in /meta"):
        formats.read(path, "hdf5-original", member="nope", sha256=sha)
    with pytest.raises(FormatError, match="format 'onnx' holds one model"):
        formats.read(path, "onnx", member="unet_lits_ct")


def test_csv_meta_layout_is_read_as_text(tmp_path):
    path = tmp_path / "dataset-csv.h5"
    filters, _ = write_original(path, csv_meta=True)
    m = formats.read(path, "hdf5-original", member="resnet18_imagenet1k_opset11", sha256=sha256_file(path))
    real = [c for c in m.convs if c.weight.size]
    np.testing.assert_array_equal(real[0].weight.reshape(12, 9), filters[:12].reshape(12, 9).astype(np.float32))


def test_corrupt_release_files_are_refused(original, tmp_path):
    path, sha, _, _ = original
    data = path.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(FormatError, match=r"cut\.h5: not a readable HDF5 file"):
        formats.read(cut, "hdf5-original", member="unet_lits_ct", sha256=sha256_file(cut))
    with h5py.File(tmp_path / "bad-range.h5", "w") as f:
        f.create_dataset("filters", data=np.zeros((3, 3, 3)))
        f.create_dataset("meta", data=np.frombuffer(b"model,conv_depth,filter_ids\nm,0,0:9\n", np.uint8))
    bad = tmp_path / "bad-range.h5"
    with pytest.raises(FormatError, match=r"layer 'conv0' needs filters up to 9, /filters has 3 rows"):
        formats.read(bad, "hdf5-original", member="m", sha256=sha256_file(bad))
