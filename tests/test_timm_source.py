"""timm pretrained weights are pinned: the file timm's config names is fetched through the
content-addressed cache, checked against the entry's sha256 on every build, and read without
unpickling. Offline: the "Hub" is a Hugging Face cache folder the test writes."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from huggingface_hub import constants
from safetensors.torch import save

from cnn_filter_db import sources
from cnn_filter_db.errors import SourceError
from cnn_filter_db.sources.timm import TimmSource

COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
ARCH, TAG = "resnet18", "a1_in1k"


@pytest.fixture(scope="module")
def weights() -> tuple[bytes, dict]:
    """A real resnet18 state dict (seeded, not timm's release) as the Hub's model.safetensors."""
    import timm

    torch.manual_seed(1)
    state = {k: v.contiguous() for k, v in timm.create_model(ARCH, pretrained=False).state_dict().items()}
    return save(state), state


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, weights):
    """huggingface_hub's cache layout: models--timm--<name>/{refs/main, snapshots/<commit>/<file>}."""
    cache = tmp_path / "hf"
    repo = cache / f"models--timm--{ARCH}.{TAG}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    (repo / "snapshots" / COMMIT).mkdir(parents=True)
    (repo / "snapshots" / COMMIT / "model.safetensors").write_bytes(weights[0])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return repo / "snapshots" / COMMIT / "model.safetensors"


class Entry:
    """What sources.load reads of a catalog entry."""

    def __init__(self, sha256: str | None, tag: str | None = TAG):
        self.model_id, self.format = "timm-test", "pytorch"
        self.source = TimmSource(kind="timm", architecture=ARCH, pretrained_tag=tag, sha256=sha256)


def test_pinned_weights_are_checked_and_loaded(hub_cache, weights, tmp_path):
    data, state = weights
    sha = hashlib.sha256(data).hexdigest()
    loaded = sources.load(Entry(sha), cache_dir=tmp_path / "cache")
    assert loaded.weights_sha256 == sha and loaded.uri == f"timm://{ARCH}.{TAG}"
    assert len(loaded.convs.convs) == 20  # resnet18: stem, 16 block convs, 3 downsample 1x1
    for conv in loaded.convs.convs:
        assert np.array_equal(conv.weight, state[f"{conv.name}.weight"].numpy())
    assert (tmp_path / "cache" / "sha256" / sha[:2] / sha).read_bytes() == data


def test_a_wrong_pin_is_refused_before_use(hub_cache, tmp_path):
    with pytest.raises(SourceError, match="timm-test: .*sha256 mismatch .*expected 0{64}"):
        sources.load(Entry("0" * 64), cache_dir=tmp_path / "cache")
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]  # nothing kept


def test_every_build_checks_the_pin(hub_cache, weights, tmp_path):
    """A cached copy changed after it was verified is dropped; a changed Hub file is refused."""
    sha = hashlib.sha256(weights[0]).hexdigest()
    sources.load(Entry(sha), cache_dir=tmp_path / "cache")
    cached = tmp_path / "cache" / "sha256" / sha[:2] / sha
    cached.write_bytes(b"tampered" + weights[0][8:])
    hub_cache.write_bytes(b"tampered" + weights[0][8:])
    with pytest.raises(SourceError, match="sha256 mismatch"):
        sources.load(Entry(sha), cache_dir=tmp_path / "cache")


def test_offline_without_a_copy_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SourceError, match="HF_HUB_OFFLINE"):
        sources.load(Entry("1" * 64), cache_dir=tmp_path / "cache")


def test_without_a_sha256_in_the_entry_the_lock_pins_it():
    """An entry that names pretrained weights without their sha256 is pinned through
    catalog/lock.yaml on its first build (sources.pinned); one with a sha256 is not."""
    from cnn_filter_db.sources.pinned import needs_lock

    assert needs_lock(Entry(None)) and not needs_lock(Entry("0" * 64))
    with pytest.raises(ValueError, match="an initialisation baseline"):
        TimmSource(kind="timm", architecture=ARCH, sha256="0" * 64)


def test_catalog_add_records_the_pin(hub_cache, weights, tmp_path, root):
    import shutil

    import yaml

    from cnn_filter_db import catalog
    from cnn_filter_db.scaffold import add_entry

    r = tmp_path / "proj"
    (r / "catalog" / "models").mkdir(parents=True)
    shutil.copy(root / "catalog" / "vocabulary.yaml", r / "catalog")
    path, found = add_entry(f"timm:{ARCH}.{TAG}", "resnet18-a1", root=r, cache_dir=tmp_path / "cache")
    sha = hashlib.sha256(weights[0]).hexdigest()
    source = yaml.safe_load(path.read_text())["source"]
    assert source == {"kind": "timm", "architecture": ARCH, "pretrained_tag": TAG, "sha256": sha}
    assert (found.n_layers, found.sha256) == (16, sha) and catalog.index_models(r) == ["resnet18-a1"]
