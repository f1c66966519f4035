"""Sparsity's strict threshold in the path the pipeline uses (``analysis/layer.py``'s
``layer_stats``), on a hand-made layer with one filter sitting exactly at eps x max|W|."""
from __future__ import annotations

import math
import warnings

import numpy as np

from cnn_filter_db.analysis.layer import layer_stats
from cnn_filter_db.analysis.sparsity import row_absmax, sparse_mask, sparsity


def _layer() -> np.ndarray:
    """Four filters of a layer with two output channels; max |W| = 1.0, so the threshold
    at eps = 0.01 is float32(0.01) = float32(1.0 * 0.01)."""
    at = np.float32(0.01)                         # exactly at the threshold: NOT sparse (strict <)
    below = np.nextafter(at, np.float32(0))       # one float32 step below: sparse
    w = np.zeros((4, 9), np.float32)
    w[0, 4] = 1.0                                 # the layer's max |w|
    w[1, :] = [at, -at / 2, 0, 0, at / 3, 0, 0, 0, -at]   # its max |w| is exactly the threshold
    w[2, :] = below                               # every |w| just below
    # w[3] stays all zero: sparse
    return w


def test_filter_exactly_at_threshold_is_not_sparse_in_layer_stats():
    w = _layer()
    assert np.abs(w[1]).max() == np.float32(np.float32(1.0) * np.float32(0.01))
    metrics, _ = layer_stats(w, out_channels=2, sparsity_eps=0.01)
    # hand count: filters 2 and 3 are sparse, filters 0 and 1 are not -> 2 / 4
    assert metrics["sparsity"] == 0.5


def test_clean_entropy_leaves_out_exactly_the_sparse_filters():
    """variance_entropy_clean is the entropy of filters 0 and 1 only: with two filters the
    scatter matrix has rank 1, so H = 0 (one non-zero eigenvalue, normalised to 1)."""
    w = _layer()
    metrics, _ = layer_stats(w, out_channels=2, sparsity_eps=0.01)
    kept = w[:2].astype(np.float64)
    centred = kept - kept.mean(axis=0)
    eig = np.linalg.eigvalsh(centred.T @ centred)
    assert np.count_nonzero(eig > 1e-12) == 1     # so the clean entropy of the two kept is 0
    assert metrics["variance_entropy_clean"] is not None and abs(metrics["variance_entropy_clean"]) < 1e-9


def test_threshold_scales_with_the_layer_max():
    """The same layer scaled by 2.5: the filter at 0.025 = 0.01 x 2.5 stays not sparse."""
    w = np.zeros((2, 9), np.float32)
    w[0, 0] = 2.5
    w[1, 3] = np.float32(2.5 * 0.01)
    metrics, _ = layer_stats(w, out_channels=1, sparsity_eps=0.01)
    assert metrics["sparsity"] == 0.0
    w[1, 3] = np.nextafter(np.float32(2.5 * 0.01), np.float32(0))
    metrics, _ = layer_stats(w, out_channels=1, sparsity_eps=0.01)
    assert metrics["sparsity"] == 0.5


def test_empty_layer_has_no_sparsity():
    """No filters: no max, an empty mask and S undefined (NaN), without an exception."""
    empty = np.zeros((0, 9), np.float32)
    absmax = row_absmax(empty)
    assert absmax.shape == (0,) and absmax.dtype == np.float32
    mask = sparse_mask(absmax, 0.01)
    assert mask.shape == (0,) and mask.dtype == bool
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice"
        assert math.isnan(sparsity(empty))


def test_single_filter_layer_is_never_sparse_unless_zero():
    one = np.array([[0.0, 0.0, 0.0, 0.0, 1e-30, 0.0, 0.0, 0.0, 0.0]], np.float32)
    assert sparse_mask(row_absmax(one), 0.01).tolist() == [False]   # its own max: |w| = t / eps > t
    assert sparsity(one) == 0.0
    zero = np.zeros((1, 9), np.float32)                             # all zero: t = 1, 0 < 1
    assert sparse_mask(row_absmax(zero), 0.01).tolist() == [True]
    assert sparsity(zero) == 1.0


def test_row_absmax_is_per_filter_max_of_absolute_values():
    w = np.array([[-3, 1, 0, 0, 0, 0, 0, 0, 2], [0.5, -0.25, 0, 0, 0, 0, 0, 0, 0]], np.float32)
    got = row_absmax(w)
    assert got.tolist() == [3.0, 0.5] and got.dtype == np.float32


def test_sparsity_function_counts_strictly_below_threshold():
    """The module function (not only layer_stats): S = 2 / 4 on the hand-made layer."""
    assert sparsity(_layer(), eps=0.01) == 0.5
    assert sparse_mask(row_absmax(_layer()), 0.01).tolist() == [False, False, True, True]
    # eps is a parameter: at eps = 0.02 the filter at 0.01 is sparse too
    assert sparsity(_layer(), eps=0.02) == 0.75
