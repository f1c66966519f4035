"""Variance entropy H of a layer and its random baseline TH(n) (SPEC.md section 5).

H is the entropy (log10) of the shares of variance along the principal axes of the layer's
filters: ``lambda = s^2 / (n - 1)`` for the singular values s of the column-centred (n, 9)
matrix, ``p = lambda / sum(lambda)``, ``H = -sum p log10 p`` over ``p > 0``.

Choices left open by the spec:

- ``s^2`` are computed as the eigenvalues of the centred scatter matrix ``X^T X - n mu mu^T``
  accumulated in float64 (9x9, so a layer costs one matrix product, not an SVD of n x 9).
- Eigenvalues below ``NOISE * trace(X^T X)`` are set to 0: that is the float64 rounding
  floor of the scatter, so a layer of identical filters has H = 0 exactly (an SVD of the
  centred float32 matrix would see rounding noise as variance). Real variances that small
  would change H by less than 1e-12.
- H is null (NaN) for fewer than two filters, and 0 when every variance is 0.
"""
from __future__ import annotations

import numpy as np

LOG2 = np.log(2.0)

#: TH(n), the authors' threshold of random layers (torchconvquality's logistic fit against n).
#: It is their "minimum distribution" threshold: simulated i.i.d. Gaussian layers put it near
#: the 1st-8th percentile of their H (mean H is about 0.921 at n = 64, 0.9537 at n = 4096).
TH_L, TH_X0, TH_K, TH_B = 1.2618047, 2.30436435, 0.88767525, -0.31050834

#: Relative rounding floor of a float64 scatter matrix (see the module docstring).
NOISE = 64 * np.finfo(np.float64).eps


def random_entropy(n) -> np.ndarray | float:
    """TH(n): the authors' threshold below which a layer of n filters is less diverse than
    nearly all layers of n i.i.d. random filters (see :data:`TH_L`)."""
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore"):
        out = TH_L / (1.0 + np.exp(-TH_K * (np.log2(n) - TH_X0))) + TH_B
    return float(out) if out.ndim == 0 else out


def entropy_of_scatter(gram: np.ndarray, total: np.ndarray, n: int) -> float:
    """H from the raw second moments of n filters: ``gram = X^T X`` and ``total = X.sum(0)``."""
    if n < 2:
        return float("nan")
    gram, total = np.asarray(gram, dtype=np.float64), np.asarray(total, dtype=np.float64)
    scatter = gram - np.outer(total, total) / n
    lam = np.linalg.eigvalsh((scatter + scatter.T) * 0.5)
    floor = NOISE * max(float(np.trace(gram)), 0.0)
    lam = np.where(lam > floor, lam, 0.0)
    s = lam.sum()
    if s <= 0:
        return 0.0
    p = lam[lam > 0] / s
    # 0 - sum, not -sum: a single share (p = 1) sums to 0.0, and -0.0 would print as "-0.0"
    return 0.0 - float((p * np.log10(p)).sum())


def variance_entropy(weights: np.ndarray, chunk: int = 65536) -> float:
    """H of an (n, 9) layer (a convenience over :func:`entropy_of_scatter`), converted to
    float64 a chunk at a time so a large layer costs no float64 copy."""
    w = np.asarray(weights).reshape(-1, 9)
    gram, total = np.zeros((9, 9)), np.zeros(9)
    for s in range(0, len(w), chunk):
        x = w[s:s + chunk].astype(np.float64)
        gram += x.T @ x
        total += x.sum(axis=0)
    return entropy_of_scatter(gram, total, len(w))
