"""Behaviours of the per-layer measures that mutation testing found undefended (issue 16):
each expectation comes from numpy in float64, a hand count or an explained literal, never
from the module under test. ``docs/mutation-analysis.md`` lists the mutants left standing."""
from __future__ import annotations

import math
import warnings

import numpy as np

from cnn_filter_db.analysis import degeneration
from cnn_filter_db.analysis.entropy import entropy_of_scatter, random_entropy, variance_entropy
from cnn_filter_db.analysis.layer import layer_stats
from cnn_filter_db.analysis.orthogonality import orthogonality
from cnn_filter_db.analysis.sparsity import threshold


def float64_orthogonality(w: np.ndarray, c_out: int) -> float:
    """SPEC's O written out in float64 numpy: unit rows (zero rows stay zero), G = U U^T."""
    rows = np.asarray(w, dtype=np.float64).reshape(c_out, -1)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit = np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)
    return float(1 - np.abs(unit @ unit.T - np.eye(c_out)).sum() / (c_out * (c_out - 1)))


def svd_entropy(w: np.ndarray) -> float:
    """SPEC's H from numpy's SVD of the centred float64 layer (no noise floor)."""
    x = np.asarray(w, dtype=np.float64)
    s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    p = s ** 2 / (s ** 2).sum()
    p = p[p > 0]
    return float(-(p * np.log10(p)).sum())


# --------------------------------------------------------------------------- orthogonality

def test_orthogonality_of_subnormal_weights_equals_that_of_their_integer_multiples():
    """Weights k * 2**-149 (float32's smallest subnormal, so exact): 1 / norm is above
    float32's range (~1e44), so the rows must be scaled in float64; O is scale free, so it is
    O of the integers k, from numpy in float64."""
    k = np.random.default_rng(0).integers(-20, 21, size=(3 * 2, 9)).astype(np.float32)
    tiny = k * np.float32(2.0 ** -149)
    assert np.array_equal(tiny / np.float32(2.0 ** -149), k)          # exact, no rounding
    assert 1 / np.linalg.norm(tiny.astype(np.float64).reshape(3, -1), axis=1).max() > 3.5e38
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                 # no overflow, no NaN
        got = orthogonality(tiny, 3)
    assert abs(got - float64_orthogonality(k, 3)) < 1e-6


def test_zero_channel_adds_exactly_one_and_reads_no_uninitialised_memory():
    """Channel 0 all zero, channels 1-3 orthogonal: sum|G - I| = 1 (G_00 = 0), so
    O = 1 - 1 / (4 * 3) = 11/12. Numpy reuses freed buffers of the same size, so NaN-filled
    buffers of the norms' size are freed first: a 1 / norm left unset for the zero channel
    would read one of them."""
    w = np.zeros((4, 9), np.float32)
    w[1, 0], w[2, 4], w[3, 8] = 0.5, -2.0, 3.0
    for _ in range(3):
        junk = [np.full(4, np.nan) for _ in range(16)]
        del junk
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert orthogonality(w, 4) == 11 / 12


def test_orthogonality_of_wide_near_parallel_layers_is_summed_in_float64():
    """2,048 one-filter channels sharing a mean (pairwise cosines near 0.9, so sum|G| is
    about 3.8e6): float32 products summed in float64 stay within 4e-9 of O from numpy in
    float64 (measured: below 1e-9); a float32 sum of |G| is off by up to 7e-8."""
    for seed in range(4):
        w = (np.random.default_rng(seed).standard_normal((2048, 9)) + 3.0).astype(np.float32)
        assert abs(orthogonality(w, 2048) - float64_orthogonality(w, 2048)) < 4e-9, seed


# --------------------------------------------------------------------------- sparsity

def test_threshold_of_an_all_zero_layer_is_one():
    """SPEC section 5: t = 0.01 * max|W|, and t = 1 when the layer is all zeros (so every
    filter of it, |w| = 0 < 1, is sparse); float32 like the weights."""
    assert threshold(0.0, 0.01) == np.float32(1.0) and threshold(0.0, 0.01).dtype == np.float32
    assert threshold(0.0, 0.5) == 1.0                                  # whatever eps
    assert threshold(2.0, 0.01) == np.float32(0.02)


# --------------------------------------------------------------------------- degeneration

def test_flags_called_without_thresholds_use_spec_defaults():
    """SPEC section 5: low diversity and sparse is H < 0.5 and S >= 0.14. Called without
    thresholds, H = 0.7 (>= 0.5) at S = 0.9 is not low-diversity-sparse, H = 0.49 at
    S = 0.14 is; n = 10**6 puts TH(n) near 0.95, so neither H is random-like."""
    high = degeneration.flags(0.7, 0.9, 10 ** 6)
    assert high == {"is_random_like": False, "is_low_diversity_sparse": False, "is_degenerate": False}
    low = degeneration.flags(0.49, 0.14, 10 ** 6)
    assert low == {"is_random_like": False, "is_low_diversity_sparse": True, "is_degenerate": True}
    assert degeneration.flags(0.49, 0.139, 10 ** 6)["is_low_diversity_sparse"] is False


# --------------------------------------------------------------------------- entropy

def test_entropy_of_a_layer_varying_along_one_direction_is_positive_zero():
    """One direction of variance: one share p = 1, H = -1 * log10(1) = 0, written +0.0 (a -0.0
    would print as "-0.0" in layer_stats and the reports)."""
    two = np.array([[1, 2, 3, 0, 0, 0, 0, 0, 0], [0, 0, 0, 4, 5, 6, 0, 0, 1]], np.float32)
    line = np.outer(np.arange(10), np.arange(1, 10)).astype(np.float32)   # 10 filters on a line
    for w in (two, line):
        h = variance_entropy(w)
        assert h == 0.0 and math.copysign(1.0, h) == 1.0, w.shape
        m, _ = layer_stats(w, 1)
        assert math.copysign(1.0, m["variance_entropy"]) == 1.0
    same = np.tile(np.float32([0.3, -0.1, 0.2, 0.05, 0.9, -0.4, 0.1, 0.1, -0.7]), (8, 1))  # no variance
    assert math.copysign(1.0, variance_entropy(same)) == 1.0


def _two_direction_layer(a: float) -> np.ndarray:
    """1,000 filters: coordinate 0 is 1, coordinate 1 is +-1, coordinate 2 is +-a (exact in
    float32 and float64, so X^T X holds no rounding)."""
    rng = np.random.default_rng(0)
    x = np.zeros((1000, 9), np.float32)
    x[:, 0] = 1.0
    x[:, 1] = rng.choice([-1.0, 1.0], 1000)
    x[:, 2] = rng.choice([-1.0, 1.0], 1000) * a
    return x


def test_variance_below_the_rounding_floor_of_the_scatter_is_not_counted():
    """The module's floor: eigenvalues below 64 eps trace(X^T X) are float64 rounding noise.
    At a = 2**-23 the third direction's variance is half the floor (numpy's eigvalsh of the
    centred scatter), so H is that of one direction, exactly 0; at a = 2**-21 it is 8 times
    the floor and counts: H is the SVD entropy."""
    for a, ratio_range in ((2.0 ** -23, (0.4, 0.6)), (2.0 ** -21, (6.0, 10.0))):
        x = _two_direction_layer(a).astype(np.float64)
        c = x - x.mean(axis=0)
        floor = 64 * np.finfo(np.float64).eps * np.trace(x.T @ x)
        ratio = np.linalg.eigvalsh(c.T @ c)[-2] / floor
        assert ratio_range[0] < ratio < ratio_range[1], ratio
    assert variance_entropy(_two_direction_layer(2.0 ** -23)) == 0.0
    above = _two_direction_layer(2.0 ** -21)
    h = variance_entropy(above)
    assert 1e-12 < h and abs(h - svd_entropy(above)) < 1e-20


def test_entropy_of_a_layer_longer_than_one_chunk_counts_every_chunk():
    """2 * 65,536 + 5,000 filters in three differently spread parts (so every chunk of 65,536
    changes the scatter): H equals the SVD entropy of the whole layer."""
    rng = np.random.default_rng(1)
    parts = [rng.standard_normal((65536, 9)) * np.linspace(1, 3, 9),
             rng.standard_normal((65536, 9)) * np.linspace(3, 1, 9) + 2.0,
             rng.standard_normal((5000, 9)) * 0.5 - 4.0]
    w = np.concatenate(parts).astype(np.float32)
    assert abs(variance_entropy(w) - svd_entropy(w)) < 1e-9
    assert abs(svd_entropy(w[-5000:]) - svd_entropy(w)) > 1e-3    # the last chunk alone differs


def test_scatter_of_float32_moments_is_centred_in_float64():
    """100 filters of 100s and 101s: X^T X (<= 1,020,100) and X.sum(0) are whole numbers below
    2**24, so their float32 copies are exact; centring them in float32 would not be
    (n mu mu^T is about 1e6, rounded to 0.06 against variances of 25)."""
    x = np.random.default_rng(2).integers(100, 102, size=(100, 9)).astype(np.float64)
    gram, total = x.T @ x, x.sum(axis=0)
    assert gram.max() < 2 ** 24 and np.array_equal(gram.astype(np.float32), gram)
    h = entropy_of_scatter(gram.astype(np.float32), total.astype(np.float32), 100)
    assert abs(h - svd_entropy(x)) < 1e-12


def test_random_threshold_is_computed_in_float64_whatever_the_dtype_of_n():
    """TH(n) from SPEC's logistic fit in Python floats, for n given as float32."""
    n = np.array([9, 64, 4096], np.float32)
    expected = [1.2618047 / (1 + math.exp(-0.88767525 * (math.log2(k) - 2.30436435))) - 0.31050834
                for k in (9, 64, 4096)]
    np.testing.assert_allclose(random_entropy(n), expected, rtol=0, atol=1e-13)
    assert abs(random_entropy(np.float32(64)) - expected[1]) < 1e-13


# --------------------------------------------------------------------------- layer

def test_layer_stats_without_thresholds_uses_spec_low_diversity_entropy():
    """64 Gaussian filters, 16 of them scaled by 1e-4 (so below 0.01 max|W|, sparse):
    S = 16 / 64 by hand, H from numpy's SVD is above 0.5, so with SPEC's defaults (H < 0.5
    and S >= 0.14) the layer is not low-diversity-sparse."""
    w = np.random.default_rng(4).standard_normal((64, 9)).astype(np.float32)
    w[:16] *= np.float32(1e-4)
    assert np.abs(w[:16]).max() < 0.01 * np.abs(w).max() <= np.abs(w[16:]).max(axis=1).min()
    assert svd_entropy(w) > 0.5
    m, _ = layer_stats(w, 8)
    assert m["sparsity"] == 0.25 and m["is_low_diversity_sparse"] is False
