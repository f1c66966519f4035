"""The eigen-image basis: principal axes of shape-normalised 3x3 filters (SPEC.md section 5).

Each filter is divided by its max |w| (all-zero filters stay zero). A streaming reducer
accumulates, in float64, the count, the sum and the 9x9 sum of outer products; reducers
merge by adding them, so shards can be reduced anywhere in any order. The covariance is
``(sum f f^T - n mu mu^T) / (n - 1)`` (ddof 1, as ``numpy.cov``); its eigenvectors are sorted
by descending variance and each one's sign is fixed so that its entry of largest |x| is
positive (the first such entry on ties).

Example
-------
>>> r = BasisReducer().partial_fit(np.random.default_rng(0).normal(size=(1000, 9)))
>>> b = r.basis()
>>> b.components.shape, round(float(b.explained_variance_ratio.sum()), 6)
((9, 9), 1.0)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layer import MOMENTS_LEN, moments, shape_normalise


class BasisReducer:
    """Streaming accumulator of shape-normalised filters (scikit-learn ``partial_fit`` style).

    Attributes
    ----------
    count_ : int, sum_ : (9,) float64, outer_ : (9, 9) float64 (sum of f f^T).
    """

    def __init__(self):
        self.count_ = 0
        self.sum_ = np.zeros(9)
        self.outer_ = np.zeros((9, 9))

    def partial_fit(self, weights: np.ndarray) -> "BasisReducer":
        """Add raw (n, 9) filters (they are shape-normalised here)."""
        return self.add_moments(moments(shape_normalise(weights)))

    def add_moments(self, row: np.ndarray) -> "BasisReducer":
        """Add a moments row ``[n, sum f, sum f f^T]`` (see :func:`.layer.moments`)."""
        row = np.asarray(row, dtype=np.float64)
        if row.shape != (MOMENTS_LEN,):
            raise ValueError(f"a moments row has {MOMENTS_LEN} values, got shape {row.shape}")
        self.count_ += int(round(row[0]))
        self.sum_ += row[1:10]
        self.outer_ += row[10:].reshape(9, 9)
        return self

    @classmethod
    def from_moments(cls, rows: np.ndarray) -> "BasisReducer":
        """One reducer from a stack of moments rows, summed in a fixed order (deterministic)."""
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, MOMENTS_LEN)
        return cls().add_moments(rows.sum(axis=0)) if len(rows) else cls()

    def merge(self, other: "BasisReducer") -> "BasisReducer":
        """Add another reducer's sums into this one."""
        self.count_ += other.count_
        self.sum_ += other.sum_
        self.outer_ += other.outer_
        return self

    def basis(self) -> "Basis":
        """Mean, eigenvectors and variances of what was added (needs at least 2 filters)."""
        n = self.count_
        if n < 2:
            raise ValueError(f"a basis needs at least 2 filters, got {n}")
        mean = self.sum_ / n
        cov = (self.outer_ - n * np.outer(mean, mean)) / (n - 1)
        cov = (cov + cov.T) / 2
        lam, vec = np.linalg.eigh(cov)
        order = np.argsort(lam)[::-1]
        lam = np.clip(lam[order], 0.0, None)
        comps = fix_signs(vec[:, order].T)
        total = lam.sum()
        ratio = lam / total if total > 0 else np.zeros(9)
        return Basis(n, mean, comps, lam, ratio)


def fix_signs(components: np.ndarray) -> np.ndarray:
    """Flip each row so that its entry of largest |x| is positive."""
    comps = np.array(components, dtype=np.float64)
    idx = np.abs(comps).argmax(axis=1)
    signs = np.sign(comps[np.arange(len(comps)), idx])
    return comps * np.where(signs == 0, 1.0, signs)[:, None]


@dataclass
class Basis:
    """An eigen-image basis: ``components[k]`` is the k-th eigen-image (row-major 3x3)."""

    count: int
    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray

    def coefficients(self, filters: np.ndarray) -> np.ndarray:
        """``(f - mean) V^T`` of shape-normalised (n, 9) filters."""
        return (np.asarray(filters, dtype=np.float64) - self.mean) @ self.components.T

    def to_dict(self) -> dict:
        return {
            "count": int(self.count),
            "mean": self.mean.tolist(),
            "components": self.components.tolist(),
            "explained_variance": self.explained_variance.tolist(),
            "explained_variance_ratio": self.explained_variance_ratio.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Basis":
        return cls(int(d["count"]), np.asarray(d["mean"], float), np.asarray(d["components"], float),
                   np.asarray(d["explained_variance"], float), np.asarray(d["explained_variance_ratio"], float))
