"""`catalog generate`: labels read from the registries' own metadata, counts of the
architecture built on the meta device, and regeneration that never loses a hand edit."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import timm
import torch
import yaml

from cnn_filter_db import catalog
from cnn_filter_db.zoo import labels
from cnn_filter_db.zoo.generate import generate

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("tag, expected", [
    ("a1_in1k", ("imagenet-1k", "none")),
    ("fb_in22k_ft_in1k", ("imagenet-1k", "imagenet-21k")),
    ("sw_in12k_ft_in1k", ("imagenet-1k", "imagenet-12k")),
    ("clip_laion2b_augreg_ft_in12k_in1k", ("imagenet-1k", "laion-2b")),
    ("in12k", ("imagenet-12k", "none")),
    ("fb_swsl_ig1b_ft_in1k", ("imagenet-1k", "instagram-1b")),
    ("openai", ("openai-wit-400m", "none")),
    ("tv2", ("unknown", "unknown")),
])
def test_timm_tags_name_training_and_pretraining_data(tag, expected):
    assert labels.timm_tag_datasets(tag) == expected


def test_licences_and_papers_map_to_the_vocabulary():
    vocab = catalog.load_vocabulary(ROOT)
    assert labels.license_id("apache-2.0") == "Apache-2.0" and labels.license_id("cc-by-nc-4.0") == "CC-BY-NC-4.0"
    assert labels.license_id("fair-noncommercial-research-license") == "other" and labels.license_id(None) == "unknown"
    assert labels.license_id("unknown") == "unknown"
    assert labels.license_id("https://github.com/facebookresearch/SWAG/blob/main/LICENSE") == "CC-BY-NC-4.0"
    assert set(labels.LICENSES.values()) <= set(vocab["license"])
    assert {v for v in labels.TAG_DATASETS.values() if v} <= set(vocab["dataset"])
    assert {f for _, f in labels.FAMILIES} <= set(vocab["family"])
    assert labels.arxiv_url("arXiv:2110.00476,arXiv:1512.03385") == "https://arxiv.org/abs/2110.00476"


def test_generate_writes_valid_entries_idempotently(tmp_path):
    root = tmp_path / "proj"
    (root / "catalog" / "models").mkdir(parents=True)
    shutil.copy(ROOT / "catalog" / "vocabulary.yaml", root / "catalog")
    shutil.copy(ROOT / "params.yaml", root)
    r = generate("timm", root, pattern="resnet18.*")
    assert r.outcomes["written"] == len(timm.list_pretrained("resnet18.*")) and not r.refused
    entry = catalog.load_entry("timm-resnet18.a1_in1k", root)
    assert entry.set == "timm" and entry.source.pretrained_tag == "a1_in1k" and entry.license == "Apache-2.0"
    assert entry.paper == "https://arxiv.org/abs/2110.00476" and entry.training_dataset == "imagenet-1k"
    # ResNet-18 by hand: a 7x7 stem, then 8 basic blocks of two 3x3 convs (out x in per conv)
    widths = [64] * 4 + [128] * 4 + [256] * 4 + [512] * 4
    ins = [64, 64, 64, 64, 64, 128, 128, 128, 128, 256, 256, 256, 256, 512, 512, 512]
    assert (entry.expected_3x3.layers, entry.expected_3x3.filters) == (16, sum(w * i for w, i in zip(widths, ins)))
    first = {p.name: p.read_bytes() for p in (root / "catalog" / "models").iterdir()}
    again = generate("timm", root, pattern="resnet18.*")
    assert again.outcomes == {"unchanged": len(first)}
    assert first == {p.name: p.read_bytes() for p in (root / "catalog" / "models").iterdir()}


def test_meta_device_count_needs_no_memory_for_weights():
    from cnn_filter_db.zoo.registries import count_3x3

    # a 2-conv module whose weights would take 4 GB if materialised
    def build():
        return torch.nn.Sequential(torch.nn.Conv2d(16384, 8192, 3), torch.nn.Conv2d(8192, 8, 3, groups=8))
    assert count_3x3(build) == (2, 16384 * 8192 + 8 * 1024)
