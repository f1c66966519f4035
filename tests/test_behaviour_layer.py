"""The per-layer helpers of ``analysis/layer.py`` that the eigen-image basis uses:
shape normalisation (each filter over its own max |w|, in float64) and the moments row."""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import yaml

from cnn_filter_db.analysis import degeneration
from cnn_filter_db.analysis.layer import MOMENTS_LEN, layer_stats, moments, shape_normalise
from cnn_filter_db.params import AnalyzeParams


def test_shape_normalise_divides_each_filter_by_its_max_abs_in_float64():
    w = np.array([[0.5, -0.25, 0, 0, 0, 0, 0, 0, 0.1],     # max |w| 0.5 (< 1: still divided)
                  [-3, 1.5, 0, 0, 0, 0, 0, 0, 0],          # max |w| 3 from a negative weight
                  [0] * 9], np.float32)                     # all zero: stays zero
    out = shape_normalise(w)
    assert out.dtype == np.float64 and out.shape == (3, 9)
    w64 = w.astype(np.float64)
    np.testing.assert_array_equal(out[0], w64[0] / w64[0, 0])
    np.testing.assert_array_equal(out[1], w64[1] / 3.0)
    np.testing.assert_array_equal(out[2], np.zeros(9))
    assert np.abs(out[:2]).max(axis=1).tolist() == [1.0, 1.0]


def test_shape_normalise_takes_given_maxima_and_empty_layers():
    w = np.array([[2, -4, 0, 0, 0, 0, 0, 0, 0]], np.float32)
    np.testing.assert_array_equal(shape_normalise(w, np.array([8.0])), w.astype(np.float64) / 8.0)
    empty = shape_normalise(np.zeros((0, 9), np.float32))
    assert empty.shape == (0, 9) and empty.dtype == np.float64


def test_moments_row_by_hand():
    f = np.array([[1, 0, 0, 0, 0, 0, 0, 0, 0], [1, 2, 0, 0, 0, 0, 0, 0, 0]], np.float64)
    m = moments(f)
    assert m.shape == (MOMENTS_LEN,) == (91,)
    assert m[0] == 2
    assert m[1:10].tolist() == [2, 2, 0, 0, 0, 0, 0, 0, 0]
    gram = m[10:].reshape(9, 9)
    assert gram[0, 0] == 2 and gram[0, 1] == gram[1, 0] == 2 and gram[1, 1] == 4
    assert np.count_nonzero(gram) == 4


def test_layer_stats_refuses_a_filter_count_not_matching_the_channels():
    with pytest.raises(ValueError) as info:
        layer_stats(np.ones((5, 9), np.float32), 2)
    assert str(info.value) == "a layer of 5 filters cannot have 2 output channels"
    with pytest.raises(ValueError, match="a layer of 0 filters cannot have 1 output channels"):
        layer_stats(np.zeros((0, 9), np.float32), 1)


def test_layer_stats_defaults_are_the_params_of_params_yaml(root):
    """Called without thresholds, layer_stats uses the values params.yaml gives the pipeline
    (its analyze group over the typed defaults)."""
    analyze = AnalyzeParams.of(yaml.safe_load((root / "params.yaml").read_text())["analyze"]).to_dict()
    defaults = {k: p.default for k, p in inspect.signature(layer_stats).parameters.items()
                if p.default is not inspect.Parameter.empty}
    assert defaults == {"sparsity_eps": analyze["sparsity_eps"], "margin": analyze["random_like_margin"],
                        "entropy_max": analyze["low_diversity_entropy"],
                        "sparsity_min": analyze["low_diversity_sparsity"]}


def test_two_filter_layer_has_no_normalised_entropy():
    """TH(2) = 1.2618047 / (1 + exp(-0.88767525 (log2 2 - 2.30436435))) - 0.31050834 = -0.0088 < 0
    (SPEC's logistic fit), so H / TH is left null; H of two filters is 0."""
    th2 = 1.2618047 / (1 + math.exp(-0.88767525 * (1 - 2.30436435))) - 0.31050834
    assert th2 < 0
    w = np.array([[1, 2, 3, 0, 0, 0, 0, 0, 0], [0, 0, 0, 4, 5, 6, 0, 0, 1]], np.float32)
    m, _ = layer_stats(w, 1)
    assert m["variance_entropy_norm"] is None
    assert abs(m["variance_entropy"]) < 1e-12


def test_degeneration_defaults_are_the_params_of_params_yaml(root):
    analyze = AnalyzeParams.of(yaml.safe_load((root / "params.yaml").read_text())["analyze"]).to_dict()
    defaults = {k: p.default for k, p in inspect.signature(degeneration.flags).parameters.items()
                if p.default is not inspect.Parameter.empty}
    assert defaults == {"margin": analyze["random_like_margin"], "entropy_max": analyze["low_diversity_entropy"],
                        "sparsity_min": analyze["low_diversity_sparsity"]}


def test_layer_stats_passes_each_threshold_to_the_flags():
    """Gaussian noise, 64 filters: H is near TH(64) (about 0.92); flags by hand from H, S and
    the literal logistic fit, for thresholds that put each flag on either side."""
    w = np.random.default_rng(7).standard_normal((64, 9)).astype(np.float32)
    th64 = 1.2618047 / (1 + math.exp(-0.88767525 * (6 - 2.30436435))) - 0.31050834
    base, _ = layer_stats(w, 8)
    h, s = base["variance_entropy"], base["sparsity"]
    assert 0.5 < h < 1.0 and s == 0.0
    cases = [
        (dict(margin=1.0), True, False),                             # h >= th - 1: random-like
        (dict(margin=-1.0), False, False),                           # h >= th + 1: impossible
        (dict(margin=-1.0, entropy_max=2.0, sparsity_min=0.0), False, True),   # low diversity now
        (dict(margin=-1.0, entropy_max=2.0, sparsity_min=0.5), False, False),  # S = 0 < 0.5
        (dict(margin=-1.0, entropy_max=0.1, sparsity_min=0.0), False, False),  # H >= 0.1
    ]
    for kwargs, random_like, low in cases:
        m, _ = layer_stats(w, 8, **kwargs)
        assert (m["is_random_like"], m["is_low_diversity_sparse"], m["is_degenerate"]) == \
            (random_like, low, random_like or low), kwargs
        assert m["is_random_like"] == (h >= th64 - kwargs["margin"])
