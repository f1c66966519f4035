"""Degeneration flags of a layer (SPEC.md section 5); the thresholds are parameters.

- ``is_random_like``: ``H >= TH(n) - margin`` (``AnalyzeParams.random_like_margin``, 0 by default). TH(n) is the authors'
  threshold of random layers (:func:`.entropy.random_entropy`): a logistic fit that sits
  near the 1st-8th percentile of the H of i.i.d. Gaussian layers of n filters, i.e. their
  "minimum" distribution, not their mean. So at margin 0, 91-100 % of Gaussian layers are
  flagged (91 % near n = 144, 100 % for n <= 16 and n >= 1,152; measured for n from 9 to
  65,536 in ``tests/test_analysis_degeneration.py``), layers drawn with the covariance of
  trained filters 0 %: a layer is flagged when its filters are as diverse as noise. A positive margin
  flags more layers; ``reports/degeneration_sensitivity.csv`` shows how many.
- ``is_low_diversity_sparse``: ``H < entropy_max`` and ``S >= sparsity_min``
  (``AnalyzeParams.low_diversity_entropy`` and ``.low_diversity_sparsity``). This rule and its thresholds are this project's choice: neither the
  authors' code nor their release defines it. The sensitivity report also gives the OR
  form (``H < entropy_max`` or ``S >= sparsity_min``).
- ``is_degenerate``: either.

A flag is null where H is null (a layer of one filter): nothing can be said of it.
"""
from __future__ import annotations

import math

from ..params import AnalyzeParams
from .entropy import random_entropy


def random_like(h: float, n: int, margin: float = AnalyzeParams.random_like_margin) -> bool:
    """``H >= TH(n) - margin``: the layer's filters are as diverse as random ones."""
    return bool(h >= random_entropy(n) - margin)


def low_diversity_sparse(h: float, s: float, entropy_max: float = AnalyzeParams.low_diversity_entropy,
                         sparsity_min: float = AnalyzeParams.low_diversity_sparsity, rule: str = "and") -> bool:
    """``H < entropy_max`` and (``rule="or"``: or) ``S >= sparsity_min``."""
    low, sparse = h < entropy_max, s >= sparsity_min
    return bool(low and sparse) if rule == "and" else bool(low or sparse)


def flags(h: float, s: float, n: int, margin: float = AnalyzeParams.random_like_margin,
          entropy_max: float = AnalyzeParams.low_diversity_entropy,
          sparsity_min: float = AnalyzeParams.low_diversity_sparsity) -> dict:
    """The three flags of a layer with entropy h, sparsity s and n filters."""
    if h is None or math.isnan(h):
        return {"is_random_like": None, "is_low_diversity_sparse": None, "is_degenerate": None}
    rnd = random_like(h, n, margin)
    low = low_diversity_sparse(h, s, entropy_max, sparsity_min)
    return {"is_random_like": rnd, "is_low_diversity_sparse": low, "is_degenerate": rnd or low}
