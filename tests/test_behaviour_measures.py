"""Boundaries of the layer measures (SPEC.md section 5), on hand-made inputs with expected
values worked out by hand: orthogonality of two channels, the degeneration flags exactly at
their thresholds, and the null flags of a layer whose entropy is undefined."""
from __future__ import annotations

import math
import warnings

import numpy as np

from cnn_filter_db.analysis import degeneration
from cnn_filter_db.analysis.entropy import random_entropy, variance_entropy
from cnn_filter_db.analysis.orthogonality import orthogonality


def test_orthogonality_of_two_output_channels():
    # c_out = 2, c_in = 1: each channel is one filter; O = 1 - sum|G - I| / (2 * 1)
    ortho = np.array([[1, 0, 0, 0, 0, 0, 0, 0, 0], [0, 3, 0, 0, 0, 0, 0, 0, 0]], np.float32)
    assert orthogonality(ortho, 2) == 1.0                       # G = I
    same = np.array([[1, 1, 0, 0, 0, 0, 0, 0, 0], [2, 2, 0, 0, 0, 0, 0, 0, 0]], np.float32)
    assert abs(orthogonality(same, 2) - 0.0) < 1e-7              # G = [[1,1],[1,1]]: sum|G-I| = 2
    # 45 degrees: G_01 = cos 45 = 0.7071...; O = 1 - 2 * 0.7071 / 2
    diag = np.array([[1, 0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0, 0, 0]], np.float32)
    assert abs(orthogonality(diag, 2) - (1 - math.sqrt(0.5))) < 1e-6
    assert math.isnan(orthogonality(ortho[:1], 1))               # one channel: null


def test_random_like_flag_is_inclusive_at_its_threshold():
    n, margin = 64, 0.02
    at = random_entropy(n) - margin                 # exactly on the line: H >= TH(n) - margin
    assert degeneration.flags(at, 0.0, n, margin=margin)["is_random_like"] is True
    below = math.nextafter(at, 0.0)
    assert degeneration.flags(below, 0.0, n, margin=margin)["is_random_like"] is False


def test_low_diversity_flag_is_strict_in_entropy_inclusive_in_sparsity():
    f = degeneration.flags(0.5, 0.14, 64, entropy_max=0.5, sparsity_min=0.14)
    assert f["is_low_diversity_sparse"] is False                # H = 0.5 is not < 0.5
    f = degeneration.flags(math.nextafter(0.5, 0.0), 0.14, 64, entropy_max=0.5, sparsity_min=0.14)
    assert f["is_low_diversity_sparse"] is True and f["is_degenerate"] is True   # S = 0.14 >= 0.14


def test_flags_are_null_when_entropy_is_undefined():
    nulls = {"is_random_like": None, "is_low_diversity_sparse": None, "is_degenerate": None}
    assert degeneration.flags(None, 0.0, 1) == nulls
    assert degeneration.flags(float("nan"), 0.5, 1) == nulls


def _th(n: float) -> float:
    """SPEC's logistic fit, written out: 1.2618047 / (1 + exp(-0.88767525 (log2 n - 2.30436435))) - 0.31050834."""
    return 1.2618047 / (1 + math.exp(-0.88767525 * (math.log2(n) - 2.30436435))) - 0.31050834


def test_random_entropy_of_one_n_is_a_float_and_of_many_an_array():
    got = random_entropy(64)
    assert type(got) is float and abs(got - _th(64)) < 1e-12
    many = random_entropy(np.array([2, 9, 64, 4096]))
    assert isinstance(many, np.ndarray) and many.shape == (4,)
    np.testing.assert_allclose(many, [_th(2), _th(9), _th(64), _th(4096)], rtol=0, atol=1e-12)
    one = random_entropy(np.array([64]))
    assert isinstance(one, np.ndarray) and one.shape == (1,)


def test_random_entropy_of_zero_filters_is_the_fit_floor_without_warnings():
    """log2 0 = -inf, so the logistic term is 0 and TH(0) = -0.31050834, quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert random_entropy(0) == -0.31050834


def test_entropy_and_orthogonality_do_not_depend_on_the_weights_scale():
    """H (shares of variance) and O (cosines) are scale invariant: a layer scaled by 1e-30 or
    by 1e3 has the values of the layer itself, including weights near float32's floor."""
    w = np.random.default_rng(3).standard_normal((32, 9)).astype(np.float32)
    h, o = variance_entropy(w), orthogonality(w, 8)
    assert 0.5 < h < 1.0 and 0.0 < o < 1.0
    for scale in (1e-30, 1e-3, 1e3):
        ws = (w.astype(np.float64) * scale).astype(np.float32)
        assert abs(variance_entropy(ws) - h) < 1e-6, scale
        assert abs(orthogonality(ws, 8) - o) < 1e-5, scale
    tiny = (w.astype(np.float64) * 1e-39).astype(np.float32)   # subnormal float32: 1 / norm > 1e37
    assert abs(orthogonality(tiny, 8) - o) < 1e-4


def test_identical_large_filters_have_zero_entropy_exactly():
    f = np.random.default_rng(4).standard_normal(9).astype(np.float32) * 1000
    assert variance_entropy(np.tile(f, (500, 1))) == 0.0


def test_orthogonality_of_a_wide_layer_matches_a_float64_reference():
    """256 output channels of 16 filters: O from numpy in float64, written out from the formula
    (rows L2-normalised, G = W W^T, O = 1 - sum|G - I| / (c (c - 1))); float32 products
    summed in float64 stay within 1e-8 of it (1.1e-9 measured)."""
    c_out, c_in = 256, 16
    w = np.random.default_rng(9).standard_normal((c_out * c_in, 9)).astype(np.float32)
    rows = w.astype(np.float64).reshape(c_out, -1)
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    expected = 1 - np.abs(unit @ unit.T - np.eye(c_out)).sum() / (c_out * (c_out - 1))
    assert abs(orthogonality(w, c_out) - expected) < 1e-8
