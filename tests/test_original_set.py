"""The catalog set ``original-v1`` end to end: a small file in the layout of the CVPR 2022
release (``original_writer``), its entries written by ``import-original --entries-only``,
and real git and DVC building it with the repository's own stages once the user pins the
file's sha256 (README, "Rebuild the original release")."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from catalog_project import git_dvc_init, make_project, run, tiny_entry
from original_writer import Model, write_original

from cnn_filter_db.config import TRUSTED_PICKLE_ENV
from cnn_filter_db.formats.hdf5_original import meta_sidecar

MODELS = [
    Model("resnet18_imagenet1k_opset11", "ResNet-18", "Classification", "natural", "ImageNet1k", np.nan,
          [(1, 12), (2, 16), (4, 32)], max_depth=5),
    Model("unet_lits_11", "U-Net", "Semantic Segmentation", "medical ct", "CIFAR-10", "ImageNet1k",
          [(0, 2), (3, 4)], max_depth=3),
    Model("fractal resnet/50", "ResNet-50", "Classification", "fractals", "FractalDB-1k", np.nan, [(0, 6)],
          max_depth=2),
]
#: The ids import-original gives them, written out by hand (same order as MODELS)
IDS = ["cvpr22-resnet18-imagenet1k-opset11", "cvpr22-unet-lits-11", "cvpr22-fractal-resnet-50"]
SETS = "catalog.sets=[default,original-v1]"


def release(proj):
    return proj / "dist" / "cnn-filter-db"


def models_table(proj) -> list[str]:
    return sorted(pq.read_table(release(proj) / "models").column("model_id").to_pylist())


@pytest.mark.slow
def test_dvc_rebuilds_the_original_set_only_under_the_users_trust_pin(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("CNN_FILTER_DB_CACHE", str(cache))
    monkeypatch.delenv(TRUSTED_PICKLE_ENV, raising=False)
    h5 = tmp_path / "download" / "dataset.h5"
    h5.parent.mkdir()
    filters, _ = write_original(h5, MODELS, meta_format="table", dataset="filter")
    sha = hashlib.sha256(h5.read_bytes()).hexdigest()

    proj = make_project(tmp_path, [tiny_entry(tmp_path, "d-one", None, 4, 0)])
    run(proj, "cnn-filter-db", "import-original", str(h5), "--sha256", sha, "--entries-only")
    run(proj, "cnn-filter-db", "catalog", "index")
    index = yaml.safe_load((proj / "catalog" / "index.yaml").read_text())
    assert index["models"] == ["d-one"] and index["sets"] == {"original-v1": sorted(IDS)}
    assert not release(proj).exists()  # entries only
    sidecar = meta_sidecar(sha, cache)
    sidecar.unlink()  # written by the import; removed so that the pipeline's own parse shows below

    git_dvc_init(proj)
    run(proj, "dvc", "repro", "-q")
    # the default selection builds the default set as before and never opens the release
    assert models_table(proj) == ["d-one"]
    assert not any((release(proj) / "filters").glob("cvpr22-*"))
    assert not sidecar.exists()
    d_one = pq.read_table(release(proj) / "filters" / "d-one")
    assert d_one.num_rows == 4 * 3 + 4 * 4  # two convs: 4x3 and 4x4 filters
    run(proj, "git", "add", "-A")
    run(proj, "git", "commit", "-qm", "built")

    # without the user's pin, an entry's own sha256 does not unlock the pickled /meta
    failed = run(proj, "dvc", "exp", "run", "-S", SETS, check=False)
    assert failed.returncode != 0
    out = failed.stdout + failed.stderr
    assert "set original-v1: 3 of 3 models failed" in out and f"${TRUSTED_PICKLE_ENV}" in out
    assert not sidecar.exists()  # nothing was unpickled
    assert models_table(proj) == ["d-one"]
    assert pq.read_table(release(proj) / "filters" / "d-one").equals(d_one)
    assert not any((release(proj) / "filters").glob("cvpr22-*"))
    summary = json.loads((proj / "build" / "sets" / "original-v1.json").read_text())
    assert sorted(summary["failed"]) == sorted(IDS) and summary["models"] == {}

    monkeypatch.setenv(TRUSTED_PICKLE_ENV, sha)  # the user checked the file
    run(proj, "dvc", "exp", "run", "-S", SETS)
    assert models_table(proj) == sorted(["d-one", *IDS])
    offset = 0
    for model_id, m in zip(IDS, MODELS):
        n = sum(count for _, count in m.layers)
        weights = np.array(pq.read_table(release(proj) / "filters" / model_id).column("weights").to_pylist(),
                           np.float32)
        np.testing.assert_array_equal(weights, filters[offset:offset + n].astype(np.float32))
        offset += n
    assert offset == len(filters)
    assert pq.read_table(release(proj) / "filters" / "d-one").equals(d_one)
    # /meta was parsed once for the run: the sidecar was written before any model's outputs
    # (a second parse would have rewritten it after the first model)
    first_output = min((proj / "build" / "meta" / i / "model.parquet").stat().st_mtime_ns for i in IDS)
    assert sidecar.stat().st_mtime_ns < first_output
    status = run(proj, "dvc", "status", "--json")
    assert json.loads(status.stdout or "{}") == {}
