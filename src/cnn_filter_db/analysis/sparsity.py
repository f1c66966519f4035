"""Sparsity S of a layer (SPEC.md section 5).

``t = eps * max|W|`` (``t = 1`` when the layer is all zeros); a filter is sparse when every
``|w_j| < t``, strictly, as the authors' torchconvquality does; ``S = sparse / n``.

Choice left open by the spec: the threshold is rounded to float32 before the comparison,
because the weights are float32 and torchconvquality compares a float32 tensor with a
Python float (which PyTorch casts to the tensor's dtype).
"""
from __future__ import annotations

import numpy as np

from ..params import AnalyzeParams


def row_absmax(weights: np.ndarray) -> np.ndarray:
    """max |w| of each filter of an (n, 9) array, in the array's dtype."""
    return np.abs(weights).max(axis=1) if len(weights) else np.zeros(0, weights.dtype)


def threshold(layer_absmax: float, eps: float) -> np.float32:
    """The sparsity threshold t of a layer whose largest |w| is ``layer_absmax``."""
    t = float(layer_absmax) * eps
    return np.float32(t if t > 0 else 1.0)


def sparse_mask(absmax: np.ndarray, eps: float) -> np.ndarray:
    """True for the sparse filters, given each filter's max |w| (``row_absmax``)."""
    if len(absmax) == 0:
        return np.zeros(0, bool)
    return absmax < threshold(absmax.max(), eps)


def sparsity(weights: np.ndarray, eps: float = AnalyzeParams.sparsity_eps) -> float:
    """S of an (n, 9) float32 layer."""
    mask = sparse_mask(row_absmax(weights), eps)
    return float(mask.mean()) if len(mask) else float("nan")
