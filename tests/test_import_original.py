"""Importer of the CVPR 2022 release, on small files written in exactly its layout
(``original_writer``): every value and every label checked, the layout variants the
original's README and notebook allow, the sha256 gate on the pickled /meta, the catalog set
``original-v1`` (entries only, /meta parsed once per file), and bad input."""
from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from cnn_filter_db import catalog, formats
from cnn_filter_db.catalog import parse_entry
from cnn_filter_db.config import TRUSTED_PICKLE_ENV
from cnn_filter_db.errors import CatalogError, FormatError
from cnn_filter_db.extract import extract_model
from cnn_filter_db.formats import hdf5_original
from cnn_filter_db.import_original import import_original
from cnn_filter_db.sources.cache import sha256_file
from original_writer import Model, write_original

MODELS = [
    Model("resnet18_imagenet1k_opset11", "ResNet-18", "Classification", "natural", "ImageNet1k", np.nan,
          [(1, 12), (2, 16), (4, 32)], max_depth=5, paper="https://arxiv.org/abs/1512.03385"),
    # v1.0.0 labels some segmentation models oddly; the notebook's cleaning makes them segmentation
    Model("unet_lits_11", "U-Net", "Semantic Segmentation", "medical ct", "CIFAR-10", "ImageNet1k",
          [(0, 2), (3, 4)], max_depth=3),
    Model("fractal resnet/50", "ResNet-50", "Classification", "fractals", "FractalDB-1k", np.nan, [(0, 6)],
          max_depth=2),
    Model("vgg_mnist_11", "VGG-11", "Image Classification, Segmentation", "handwritten", "MNIST", "ImageNet1k",
          [(0, 3), (1, 9)], max_depth=1),
]
#: Our labels, derived by hand from the table above: (task, visual_category, training, pretraining, family)
LABELS = {
    "resnet18_imagenet1k_opset11": ("classification", "natural", "imagenet-1k", "none", "resnet"),
    "unet_lits_11": ("segmentation", "medical-ct", "cifar10", "imagenet-1k", "other"),
    "fractal resnet/50": ("classification", "fractals", "fractaldb-1k", "none", "resnet"),
    "vgg_mnist_11": ("segmentation", "handwritten", "mnist", "imagenet-1k", "vgg"),
}
IDS = {"resnet18_imagenet1k_opset11": "cvpr22-resnet18-imagenet1k-opset11", "unet_lits_11": "cvpr22-unet-lits-11",
       "fractal resnet/50": "cvpr22-fractal-resnet-50", "vgg_mnist_11": "cvpr22-vgg-mnist-11"}
LAYOUTS = {  # (meta format, filter dataset, dtype, N x 3 x 3, category column)
    "readme": ("fixed", "filter", np.float32, False, "Datatype"),
    "notebook": ("table", "filters", np.float64, True, "Visual Category"),
    "fixed-f64": ("fixed", "filters", np.float64, False, "Visual Category"),
    "table-f32": ("table", "filter", np.float32, True, "Datatype"),
}


@pytest.fixture
def project(tmp_path, root):
    proj = tmp_path / "proj"
    (proj / "catalog" / "models").mkdir(parents=True)
    shutil.copy(root / "catalog" / "vocabulary.yaml", proj / "catalog" / "vocabulary.yaml")
    return proj


@pytest.fixture(autouse=True)
def fresh_meta_memo(monkeypatch):
    # each test (like each DVC stage, a process of its own) starts without a parsed /meta
    monkeypatch.setattr(hdf5_original, "_parsed", {})


def write(tmp_path, layout="readme", models=MODELS, name="dataset.h5"):
    fmt, dataset, dtype, square, column = LAYOUTS[layout]
    path = tmp_path / name
    filters, meta = write_original(path, models, meta_format=fmt, dataset=dataset, dtype=dtype, square=square,
                                   category_column=column)
    return path, sha256_file(path), filters, meta


def files_under(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_import_value_by_value_and_label_by_label(layout, tmp_path, project):
    path, sha, filters, meta = write(tmp_path, layout)
    dtype = LAYOUTS[layout][2]
    report = import_original(path, sha, project, cache_dir=tmp_path / "cache")
    assert not report.failed
    assert {r["original"]: r["model_id"] for r in report.imported} == IDS
    offset = 0
    for m in MODELS:
        mid = IDS[m.model]
        e = parse_entry(project / "catalog" / "models" / f"{mid}.yaml", project)
        assert (e.task, e.visual_category, e.training_dataset, e.pretraining_dataset, e.family) == LABELS[m.model]
        assert (e.format, e.license, e.name, e.trained) == ("hdf5-original", "CC-BY-SA-4.0", m.name, True)
        assert e.source.url == f"{path.as_uri()}#model={m.model.replace(' ', '%20').replace('/', '%2F')}"
        assert e.source.sha256 == sha
        assert e.paper == (m.paper if isinstance(m.paper, str) else None)
        assert f"Task={m.task}" in e.notes and f"{LAYOUTS[layout][4]}={m.category}" in e.notes
        assert e.set == "original-v1"

        table = pq.read_table(project / "dist" / "cnn-filter-db" / "filters" / mid).to_pydict()
        layers = pq.read_table(project / "build" / "meta" / mid / "layers.parquet").to_pydict()
        assert layers["conv_depth"] == [d for d, _ in m.layers]
        np.testing.assert_allclose(layers["conv_depth_norm"], [d / m.max_depth for d, _ in m.layers], rtol=1e-6)
        assert layers["n_filters"] == [c for _, c in m.layers]
        assert layers["out_channels"] == [1] * len(m.layers)  # the release records no channel counts
        i = 0
        for layer_id, (_, count) in enumerate(m.layers):
            for k in range(count):
                assert (table["layer_id"][i], table["out_channel"][i], table["in_channel"][i]) == (layer_id, 0, k)
                want = filters[offset + i].astype(dtype).astype(np.float32)
                np.testing.assert_array_equal(np.array(table["weights"][i], np.float32), want)
                i += 1
        assert i == len(table["layer_id"])
        offset += i
        model = pq.read_table(project / "build" / "meta" / mid / "model.parquet").to_pylist()[0]
        assert (model["n_filters"], model["weights_sha256"]) == (sum(c for _, c in m.layers), sha)
    assert offset == len(filters)
    assert catalog.check_index(project) == []


def test_reader_follows_the_index_levels(tmp_path):
    path, sha, filters, _ = write(tmp_path, "notebook")
    m = formats.read(path, "hdf5-original", member="unet_lits_11", sha256=sha)
    real = [c for c in m.convs if c.weight.size]
    assert [(c.weight.shape, c.level) for c in real] == [((1, 2, 3, 3), 0), ((1, 4, 3, 3), 3)]
    assert sorted(c.level for c in m.convs) == [0, 1, 2, 3]  # placeholders at depths 1 and 2
    start = 12 + 16 + 32
    np.testing.assert_array_equal(real[1].weight.reshape(4, 9), filters[start + 2:start + 6])  # float64 as stored
    assert isinstance(real[1].weight.base, np.memmap)  # the contiguous array is mapped, not loaded
    with pytest.raises(FormatError, match="holds many models: name one"):
        formats.read(path, "hdf5-original", sha256=sha)
    with pytest.raises(FormatError, match="model 'nope': no rows in /meta"):
        formats.read(path, "hdf5-original", member="nope", sha256=sha)


# --------------------------------------------------------------------------- safety

def test_wrong_sha256_is_refused_before_any_unpickling(tmp_path, project, monkeypatch):
    path, _, _, _ = write(tmp_path)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("pandas.read_hdf called on an unpinned file")

    monkeypatch.setattr(pd, "read_hdf", no_unpickling)
    with pytest.raises(FormatError, match=r"dataset\.h5: refused: sha256 is [0-9a-f]{64}, not the pinned 0{64}; "
                                          r"its /meta table is stored pickled"):
        import_original(path, "0" * 64, project, cache_dir=tmp_path / "cache")
    with pytest.raises(FormatError, match=r"refused: .*sha256 you trust"):
        formats.read(path, "hdf5-original", member="unet_lits_11")  # no sha256 given at all
    assert files_under(project) == [Path("catalog/vocabulary.yaml")]


def test_external_storage_in_the_release_is_refused(tmp_path, project):
    path, _, filters, _ = write(tmp_path)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"PRIVATE-KEY-" * 4000)
    with h5py.File(path, "a") as f:
        del f["filter"]
        f.create_dataset("filter", shape=filters.shape, dtype="<f4", external=[(str(secret), 0, filters.size * 4)])
    with pytest.raises(FormatError, match=r"dataset\.h5: refused: /filter stores its data in another file"):
        import_original(path, sha256_file(path), project, cache_dir=tmp_path / "cache")
    assert files_under(project) == [Path("catalog/vocabulary.yaml")]


# --------------------------------------------------------------------------- the catalog set

def test_original_set_entries_extract_through_the_pipeline_reading_meta_once(tmp_path, project, monkeypatch):
    path, sha, filters, _ = write(tmp_path, "table-f32")
    cache = tmp_path / "cache"
    calls = []
    real_read_hdf = pd.read_hdf
    monkeypatch.setattr(pd, "read_hdf", lambda *a, **k: calls.append(a) or real_read_hdf(*a, **k))
    report = import_original(path, sha, project, entries_only=True, cache_dir=cache)
    assert len(report.imported) == 4 and calls == [(path.resolve(), "meta")]
    assert not (project / "dist").exists()  # entries only: the pipeline extracts them
    assert hdf5_original.meta_sidecar(sha, cache).is_file()
    # every entry is in the set original-v1, which the index lists apart from the default models
    assert {catalog.load_entry(i, project).set for i in IDS.values()} == {"original-v1"}
    index = yaml.safe_load((project / "catalog" / "index.yaml").read_text())
    assert index["models"] == [] and index["sets"] == {"original-v1": sorted(IDS.values())}

    # an entry's own sha256 does not unlock the pickled /meta (its author chose file and hash)
    monkeypatch.delenv(TRUSTED_PICKLE_ENV, raising=False)
    first = catalog.load_entry(IDS["unet_lits_11"], project)
    with pytest.raises(FormatError, match=f"sha256 you trust.*{TRUSTED_PICKLE_ENV}"):
        extract_model(first, tmp_path / "rel", tmp_path / "meta", root=project, cache_dir=cache, progress=False)
    monkeypatch.setenv(TRUSTED_PICKLE_ENV, sha)  # the user checked the file
    monkeypatch.setenv("CNN_FILTER_DB_CACHE", str(cache))
    offset = 0
    for m in MODELS:
        monkeypatch.setattr(hdf5_original, "_parsed", {})  # one process a stage
        entry = catalog.load_entry(IDS[m.model], project)
        row = extract_model(entry, tmp_path / "rel", tmp_path / "meta", root=project, cache_dir=cache,
                            progress=False)
        n = sum(c for _, c in m.layers)
        assert row["n_filters"] == n
        table = pq.read_table(tmp_path / "rel" / "filters" / IDS[m.model]).to_pydict()
        np.testing.assert_array_equal(np.array(table["weights"], np.float32),
                                      filters[offset:offset + n].astype(np.float32))
        layers = pq.read_table(tmp_path / "meta" / IDS[m.model] / "layers.parquet").to_pydict()
        assert layers["conv_depth"] == [d for d, _ in m.layers]
        offset += n
    assert len(calls) == 1  # /meta parsed once for the whole run


# --------------------------------------------------------------------------- bad input

def test_truncated_file_is_refused(tmp_path, project):
    path, _, _, _ = write(tmp_path)
    cut = tmp_path / "cut.h5"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(FormatError, match=r"cut\.h5: not a readable HDF5 file"):
        import_original(cut, sha256_file(cut), project, cache_dir=tmp_path / "cache")
    assert not list((project / "catalog" / "models").iterdir())


def test_range_out_of_bounds_names_model_and_column(tmp_path, project):
    bad = MODELS[:1] + [Model("too_far", "X", "Classification", "natural", "MNIST", np.nan, [(0, 5)], 1)]
    path, sha, _, _ = write(tmp_path, models=bad)
    with h5py.File(path, "a") as f:  # cut the filter array short: the last model's range points past it
        data = f["filter"][:-2]
        del f["filter"]
        f.create_dataset("filter", data=data)
    sha = sha256_file(path)
    with pytest.raises(FormatError, match=r"model 'too_far': column 'filter_ids': '60:64' reaches filter 64, "
                                          r"but the filter array has 63 rows"):
        import_original(path, sha, project, cache_dir=tmp_path / "cache")
    assert not list((project / "catalog" / "models").iterdir())  # checked before anything is written


def test_model_without_rows_names_model_and_column(tmp_path, project):
    path, sha, _, _ = write(tmp_path)
    with pytest.raises(FormatError, match=r"model 'missing_model': no rows in /meta \(column 'model'\)"):
        import_original(path, sha, project, models=["missing_model"], cache_dir=tmp_path / "cache")
    # a model whose layer has an empty range
    meta = pd.read_hdf(path, "meta")
    meta.loc[meta["model"] == "unet_lits_11", "filter_ids"] = ""
    meta.to_hdf(path, key="meta", mode="a", format="fixed")
    with pytest.raises(FormatError, match=r"model 'unet_lits_11': column 'filter_ids' is empty"):
        import_original(path, sha256_file(path), project, cache_dir=tmp_path / "cache2")
    assert not list((project / "catalog" / "models").iterdir())


def test_unknown_label_names_model_and_column_and_keeps_earlier_imports(tmp_path, project):
    path, sha, _, _ = write(tmp_path)
    import_original(path, sha, project, models=["vgg_mnist_11"], cache_dir=tmp_path / "cache")
    before = {p: (project / p).read_bytes() for p in files_under(project)}
    odd = [Model("odd", "Odd", "Classification", "underwater sonar", "MNIST", np.nan, [(0, 2)], 1)]
    path2, sha2, _, _ = write(tmp_path, models=MODELS + odd, name="other.h5")
    with pytest.raises(CatalogError) as err:
        import_original(path2, sha2, project, cache_dir=tmp_path / "cache")
    assert str(err.value) == (f"{path2}: model 'odd': column 'Datatype': 'underwater sonar' maps to "
                              f"'underwater-sonar' (visual_category), which is not in vocabulary 'visual_category' "
                              f"of catalog/vocabulary.yaml: add it there, or import with --fallback-labels")
    assert {p: (project / p).read_bytes() for p in files_under(project)} == before  # nothing changed
    report = import_original(path2, sha2, project, unknown_labels="fallback", models=["odd"],
                             cache_dir=tmp_path / "cache")
    assert parse_entry(project / "catalog" / "models" / "cvpr22-odd.yaml", project).visual_category == "other"


def test_nan_filters_fail_that_model_only(tmp_path, project):
    models = MODELS[:2] + [Model("broken", "VGG-11", "Classification", "natural", "CIFAR-10", np.nan,
                                 [(0, 3)], 1, nan_at=[1])] + MODELS[2:]
    path, sha, _, _ = write(tmp_path, models=models)
    report = import_original(path, sha, project, cache_dir=tmp_path / "cache")
    assert [f[0] for f in report.failed] == ["broken"]
    assert "model 'broken': column 'filter_ids': layer 'conv0' (cvpr22-broken) holds 1 NaN" in report.failed[0][1]
    assert not list(project.rglob("*broken*"))
    assert len(report.imported) == 4
    for r in report.imported:  # the others, before and after it, are complete and valid
        parse_entry(project / "catalog" / "models" / f"{r['model_id']}.yaml", project)
        assert pq.read_table(project / "dist" / "cnn-filter-db" / "filters" / r["model_id"]).num_rows == r["n_filters"]


def test_existing_entries_are_kept_unless_forced(tmp_path, project):
    path, sha, _, _ = write(tmp_path)
    import_original(path, sha, project, models=["unet_lits_11"], cache_dir=tmp_path / "cache")
    again = import_original(path, sha, project, models=["unet_lits_11"], cache_dir=tmp_path / "cache")
    assert again.skipped == ["cvpr22-unet-lits-11"] and not again.imported
    forced = import_original(path, sha, project, models=["unet_lits_11"], force=True, cache_dir=tmp_path / "cache")
    assert [r["model_id"] for r in forced.imported] == ["cvpr22-unet-lits-11"]


def test_chunked_compressed_filter_array_is_read_through_h5py(tmp_path):
    path, _, filters, _ = write(tmp_path, "readme")
    with h5py.File(path, "a") as f:
        del f["filter"]
        f.create_dataset("filter", data=filters.astype(np.float32), chunks=(7, 9), compression="gzip", shuffle=True)
    m = formats.read(path, "hdf5-original", member="vgg_mnist_11", sha256=sha256_file(path))
    real = [c for c in m.convs if c.weight.size]
    start = 60 + 6 + 6
    np.testing.assert_array_equal(real[1].weight.reshape(9, 9), filters[start + 3:start + 12].astype(np.float32))


def test_bad_filter_arrays_are_refused(tmp_path):
    path, sha, filters, _ = write(tmp_path)
    with h5py.File(path, "a") as f:
        f.create_dataset("filters", data=filters)  # both names at once
    with pytest.raises(FormatError, match="both /filter and /filters exist"):
        formats.read(path, "hdf5-original", member="unet_lits_11", sha256=sha256_file(path))
    with h5py.File(path, "a") as f:
        del f["filters"], f["filter"]
        f.create_dataset("filter", data=(filters * 100).astype(np.int16))
    with pytest.raises(FormatError, match=r"/filter has dtype int16, expected float32 or float64"):
        formats.read(path, "hdf5-original", member="unet_lits_11", sha256=sha256_file(path))


def test_cli_reports_bad_input_in_one_line(tmp_path, project, capsys, monkeypatch):
    from cnn_filter_db.cli import main

    monkeypatch.setenv("CNN_FILTER_DB_CACHE", str(tmp_path / "cache"))
    path, sha, _, _ = write(tmp_path)
    assert main(["--root", str(project), "import-original", str(path), "--sha256", sha, "--model", "ghost"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {path}: model 'ghost': no rows in /meta (column 'model')\n"
    assert main(["--root", str(project), "import-original", str(path), "--sha256", sha, "--entries-only",
                 "--url", "https://zenodo.org/records/6371680/files/dataset.h5"]) == 0
    e = parse_entry(project / "catalog" / "models" / "cvpr22-unet-lits-11.yaml", project)
    assert e.source.url == "https://zenodo.org/records/6371680/files/dataset.h5#model=unet_lits_11"
    assert not (project / "dist").exists()
