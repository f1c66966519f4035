"""Sparsity's strict threshold in the path the pipeline uses (``analysis/layer.py``'s
``layer_stats``), on a hand-made layer with one filter sitting exactly at eps x max|W|."""
from __future__ import annotations

import numpy as np

from cnn_filter_db.analysis.layer import layer_stats


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
