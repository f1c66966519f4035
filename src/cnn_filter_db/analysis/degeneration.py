"""Degeneration flags of a layer (SPEC.md section 5); the thresholds are parameters.

- ``is_random_like``: ``H >= TH(n) - margin`` (the layer's filters are as diverse as noise);
- ``is_low_diversity_sparse``: ``H < entropy_max`` and ``S >= sparsity_min``;
- ``is_degenerate``: either.

A flag is null where H is null (a layer of one filter): nothing can be said of it.
"""
from __future__ import annotations

import math

from .entropy import random_entropy


def flags(h: float, s: float, n: int, margin: float = 0.02, entropy_max: float = 0.5,
          sparsity_min: float = 0.14) -> dict:
    """The three flags of a layer with entropy h, sparsity s and n filters."""
    if h is None or math.isnan(h):
        return {"is_random_like": None, "is_low_diversity_sparse": None, "is_degenerate": None}
    random_like = bool(h >= random_entropy(n) - margin)
    low = bool(h < entropy_max and s >= sparsity_min)
    return {"is_random_like": random_like, "is_low_diversity_sparse": low,
            "is_degenerate": random_like or low}
