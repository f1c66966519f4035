"""Degeneration flags on real models: timm initialisation baselines look random, trained
models do not (SPEC.md section 5: ``is_random_like = H >= TH(n) - 0.02``)."""
from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from cnn_filter_db.analysis import analyze
from cnn_filter_db.catalog import load_catalog
from conftest import ROOT, build_release

INIT_BASELINES = ["timm-resnet18-init", "timm-vgg16_bn-init", "timm-regnety_016-init"]


@pytest.mark.slow
def test_random_like_flags_separate_initialisations_from_trained_models(tmp_path, cache_dir):
    # the real pre-trained models (those this pipeline trains with the quick profile stay
    # close to their initialisation, and are random-like: see README, "Trained models")
    trained = sorted(e.model_id for e in load_catalog(ROOT) if e.trained and e.source.kind != "train" and e.set == "default")
    assert len(trained) >= 12
    release = build_release(tmp_path, INIT_BASELINES + trained, cache_dir)
    analyze(release, tmp_path / "reports", {"bootstrap": 20, "model_plots": False})
    stats = pq.read_table(release / "layer_stats").to_pandas()
    models = pq.read_table(release / "models").to_pandas()[["model_id", "trained"]]
    stats = stats.merge(models, on="model_id")
    init = stats[~stats.trained & stats.is_random_like.notna()]
    real = stats[stats.trained & stats.is_random_like.notna()]
    assert set(init.model_id) == set(INIT_BASELINES) and len(init) > 50
    assert len(set(real.model_id)) == len(trained) and len(real) > 100
    init_share = init.is_random_like.astype(bool).mean()
    real_share = real.is_random_like.astype(bool).mean()
    assert init_share >= 0.95, init.groupby("model_id").is_random_like.mean()
    assert real_share <= 0.10, real.groupby("model_id").is_random_like.mean()
