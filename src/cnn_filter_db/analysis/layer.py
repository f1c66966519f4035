"""All per-layer numbers in one sweep: the ``layer_stats`` metrics and the layer's moments of
shape-normalised filters (for the eigen-image basis).

The measures live in their own modules (:mod:`.sparsity`, :mod:`.entropy`,
:mod:`.orthogonality`, :mod:`.degeneration`); this one shares their intermediate arrays
(the float64 copy, each filter's max |w|) so a layer is converted and scanned once.

Weight statistics (choices the spec leaves open): ``weight_mean`` and ``weight_std`` are
over all 9n weights of the layer, ``weight_std`` with ddof 0; ``variance_entropy_clean``
equals ``variance_entropy`` when no filter is sparse and is null when fewer than two
filters are left; ``variance_entropy_norm`` is null where TH(n) <= 0 (n <= 2, where the
logistic fit goes negative; H of two filters is always 0).
"""
from __future__ import annotations

import math

import numpy as np

from ..dataset.schema import LAYER_STATS_SCHEMA, LAYERS_SCHEMA
from ..params import AnalyzeParams
from . import degeneration
from .entropy import entropy_of_scatter, random_entropy
from .orthogonality import orthogonality
from .sparsity import threshold

#: The metric columns this module adds to a ``layers`` row, in ``layer_stats`` order.
METRIC_COLUMNS = tuple(n for n in LAYER_STATS_SCHEMA.names if n not in LAYERS_SCHEMA.names)

#: Rows a chunk: (9, CHUNK_ROWS) float64 stays in a core's L2 cache.
CHUNK_ROWS = 16384

#: Length of a moments row: count, sum of the 9 coordinates, the 81 sums of products.
MOMENTS_LEN = 1 + 9 + 81


def shape_normalise(weights: np.ndarray, absmax: np.ndarray | None = None) -> np.ndarray:
    """Each filter divided by its max |w|, in float64; all-zero filters stay zero."""
    x = np.asarray(weights, dtype=np.float64)
    if absmax is None:
        absmax = np.abs(x).max(axis=1) if len(x) else np.zeros(0)
    return x / np.where(absmax > 0, absmax, 1.0).astype(np.float64)[:, None]


def moments(f: np.ndarray) -> np.ndarray:
    """The moments row of (n, 9) float64 filters: [n, sum f, sum f f^T]."""
    out = np.empty(MOMENTS_LEN)
    out[0] = len(f)
    out[1:10] = f.sum(axis=0)
    out[10:] = (f.T @ f).ravel()
    return out


def _nan(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def layer_stats(weights: np.ndarray, out_channels: int, sparsity_eps: float = AnalyzeParams.sparsity_eps,
                margin: float = AnalyzeParams.random_like_margin,
                entropy_max: float = AnalyzeParams.low_diversity_entropy,
                sparsity_min: float = AnalyzeParams.low_diversity_sparsity) -> tuple[dict, np.ndarray]:
    """The metrics of one whole layer and its moments of shape-normalised filters.

    Parameters
    ----------
    weights : (n, 9) float32, rows in (out_channel, in_channel) order.
    out_channels : c_out (n must be a multiple of it).

    Returns
    -------
    (metrics, moments) : a dict with the :data:`METRIC_COLUMNS` (None for null) and a
        float64 vector of length :data:`MOMENTS_LEN`.
    """
    n = len(weights)
    if n == 0 or n % out_channels:
        raise ValueError(f"a layer of {n} filters cannot have {out_channels} output channels")
    absmax = np.empty(n)
    sq_norms = np.empty(n)
    total, gram = np.zeros(9), np.zeros((9, 9))
    mom = np.zeros(MOMENTS_LEN)
    # Cache-sized chunks, transposed to (9, m): reductions over a filter's 9 weights become
    # element-wise operations on 9 contiguous rows, several times faster than axis=1 ones.
    for s in range(0, n, CHUNK_ROWS):
        xt = weights[s:s + CHUNK_ROWS].T.astype(np.float64, order="C")
        a = np.abs(xt).max(axis=0)
        absmax[s:s + CHUNK_ROWS] = a
        sq_norms[s:s + CHUNK_ROWS] = np.einsum("ij,ij->j", xt, xt)
        total += xt.sum(axis=1)
        gram += xt @ xt.T
        xt /= np.where(a > 0, a, 1.0)  # shape-normalised, zero filters stay zero
        mom[1:10] += xt.sum(axis=1)
        mom[10:] += (xt @ xt.T).ravel()
    mom[0] = n

    layer_max = float(absmax.max())
    # absmax holds float32 values exactly, so this is the float32 comparison of sparsity.py
    sparse = absmax < float(threshold(layer_max, sparsity_eps))
    n_sparse = int(np.count_nonzero(sparse))
    h = entropy_of_scatter(gram, total, n)
    if n_sparse:
        xs = weights[sparse].astype(np.float64)
        h_clean = entropy_of_scatter(gram - xs.T @ xs, total - xs.sum(axis=0), n - n_sparse)
    else:
        h_clean = h

    mean = float(total.sum()) / (9 * n)
    var = max(float(np.trace(gram)) / (9 * n) - mean * mean, 0.0)
    s = n_sparse / n
    th = random_entropy(n)
    metrics = {
        "sparsity": s,
        "variance_entropy": _nan(h),
        "variance_entropy_norm": _nan(h / th) if th > 0 else None,
        "variance_entropy_clean": _nan(h_clean),
        "orthogonality": _nan(orthogonality(weights, out_channels, sq_norms)),
        "weight_mean": mean,
        "weight_std": math.sqrt(var),
        "weight_absmax": layer_max,
    }
    metrics.update(degeneration.flags(h, s, n, margin, entropy_max, sparsity_min))
    return metrics, mom
