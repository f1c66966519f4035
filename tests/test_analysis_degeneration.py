"""Degeneration flags: how often simulated layers are flagged, and real models (timm
initialisation baselines look random, trained models do not). SPEC.md section 5:
``is_random_like = H >= TH(n) - margin``, margin 0 by default.

Measured rates (seeded; the assertions below hold them within a few points):

- i.i.d. Gaussian layers, margin 0: flagged 100 % at n = 9, 16, 1,152 and above; 99.5 % at
  n = 32; 97.8 % at n = 64 and 576; 91 % at n = 144 (TH sits at the 0-9th percentile of
  their H, lowest relative to the mean near n = 144). Margin 0.02: 100 % everywhere.
- Layers like trained ones (Gaussian filters with the covariance of trained filters, an
  eigen-spectrum of 28, 16, 14, 12, 9, 8, 5, 5, 4 %), n = 64 to 65,536: 0 % flagged at
  margin 0 and 0.02 (H about 0.90 against TH about 0.95).
- Layers of a few shared patterns plus 10 % noise: 0 %; the same with 30 % of filters
  dead (weights 1e-4 of the rest): low-diversity-sparse under AND and OR; a layer of
  dense random filters with 20 % dead filters: random-like, and low-diversity-sparse only
  under the OR rule (S >= 0.14 alone).
"""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from cnn_filter_db.analysis import degeneration
from cnn_filter_db.analysis.pipeline import analyze
from cnn_filter_db.analysis.entropy import random_entropy, variance_entropy
from cnn_filter_db.analysis.sparsity import sparsity
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


def gaussian_flag_rate(n: int, reps: int, margin: float, seed: int, cov=None) -> float:
    rng = np.random.default_rng(seed)
    flags = []
    for _ in range(reps):
        x = rng.standard_normal((n, 9)).astype(np.float32)
        if cov is not None:
            x = (x @ np.linalg.cholesky(cov).T).astype(np.float32)
        flags.append(degeneration.random_like(variance_entropy(x), n, margin))
    return float(np.mean(flags))


# (n, replicates, measured rate at margin 0)
GAUSSIAN = [(9, 400, 1.0), (16, 400, 1.0), (32, 400, 0.995), (64, 400, 0.978), (144, 400, 0.91),
            (576, 400, 0.978), (1152, 200, 1.0), (4096, 100, 1.0), (16384, 30, 1.0), (65536, 10, 1.0)]


@pytest.mark.parametrize("n,reps,rate", GAUSSIAN)
def test_gaussian_layers_are_flagged_random_like(n, reps, rate):
    got = gaussian_flag_rate(n, reps, 0.0, seed=n)
    # binomial noise of the replicates, 4 sigma, and the measured figure of the docstring
    tol = 4 * np.sqrt(max(rate * (1 - rate), 0.01) / reps)
    assert abs(got - rate) <= tol, (n, got)
    assert got >= 0.88
    assert gaussian_flag_rate(n, min(reps, 100), 0.02, seed=n + 1) == 1.0


def test_th_is_a_low_percentile_of_gaussian_entropy_not_its_mean():
    rng = np.random.default_rng(7)
    for n in (64, 144, 4096):
        hs = np.array([variance_entropy(rng.standard_normal((n, 9)).astype(np.float32)) for _ in range(300)])
        pct = (hs < random_entropy(n)).mean()
        assert pct < 0.12, (n, pct)
        assert random_entropy(n) < hs.mean() - 0.002


#: The eigen-spectrum of trained filters (the small release's trained population, rounded).
TRAINED_SPECTRUM = np.array([0.277, 0.157, 0.142, 0.118, 0.086, 0.078, 0.052, 0.049, 0.041])


@pytest.mark.parametrize("n", [64, 576, 4096, 65536])
def test_layers_with_trained_filters_covariance_are_not_random_like(n):
    q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((9, 9)))
    cov = q @ np.diag(TRAINED_SPECTRUM / TRAINED_SPECTRUM.sum()) @ q.T
    reps = 40 if n < 65536 else 5
    assert gaussian_flag_rate(n, reps, 0.0, seed=n, cov=cov) == 0.0
    assert gaussian_flag_rate(n, reps, 0.02, seed=n, cov=cov) == 0.0


def _patterned(n: int, dead: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    protos = rng.standard_normal((3, 9))
    x = rng.standard_normal((n, 3)) @ protos + 0.1 * rng.standard_normal((n, 9))
    x[rng.random(n) < dead] *= 1e-4
    return x.astype(np.float32)


def test_real_layer_like_cases_and_the_and_or_forms():
    # a few shared patterns plus noise: neither flag
    x = _patterned(2048, 0.0, 0)
    h, s = variance_entropy(x), sparsity(x)
    assert h < 0.5 and s == 0
    f = degeneration.flags(h, s, len(x))
    assert not f["is_random_like"] and not f["is_low_diversity_sparse"]
    # the same with 30 % dead filters: low diversity and sparse, under both forms
    x = _patterned(2048, 0.3, 1)
    h, s = variance_entropy(x), sparsity(x)
    assert s >= 0.14 and h < 0.5
    assert degeneration.low_diversity_sparse(h, s, rule="and") and degeneration.low_diversity_sparse(h, s, rule="or")
    # dense random filters with 20 % dead ones: random-like; low-diversity-sparse only under OR
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2048, 9)).astype(np.float32)
    x[rng.random(2048) < 0.2] *= np.float32(1e-4)
    h, s = variance_entropy(x), sparsity(x)
    assert degeneration.random_like(h, len(x)) and s >= 0.14 and h > 0.5
    assert not degeneration.low_diversity_sparse(h, s, rule="and")
    assert degeneration.low_diversity_sparse(h, s, rule="or")
