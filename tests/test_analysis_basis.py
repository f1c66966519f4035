"""The streaming eigen-image basis equals the eigen-decomposition of the full covariance."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from cnn_filter_db.analysis.basis import Basis, BasisReducer, fix_signs
from cnn_filter_db.analysis.layer import shape_normalise


@pytest.fixture(scope="module")
def filters(small_release) -> np.ndarray:
    parts = []
    for path in sorted((small_release / "filters").rglob("*.parquet")):
        t = pq.read_table(path, columns=["weights"])
        if t.num_rows:
            parts.append(t.column("weights").combine_chunks().flatten().to_numpy().reshape(-1, 9))
    return np.concatenate(parts)


def reference(filters: np.ndarray):
    f = shape_normalise(filters)
    cov = np.cov(f, rowvar=False)
    lam, vec = np.linalg.eigh(cov)
    order = np.argsort(lam)[::-1]
    return f.mean(axis=0), lam[order], vec[:, order].T


def test_streaming_basis_equals_eigh_of_full_covariance(filters):
    assert len(filters) > 100_000
    mean, lam, vec = reference(filters)
    # stream in uneven chunks into two reducers, then merge them
    a, b = BasisReducer(), BasisReducer()
    cuts = [0, 7, 1000, 50_000, 123_457, len(filters)]
    for i, (s, e) in enumerate(zip(cuts[:-1], cuts[1:])):
        (a if i % 2 else b).partial_fit(filters[s:e])
    basis = a.merge(b).basis()
    assert basis.count == len(filters)
    np.testing.assert_allclose(basis.mean, mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(basis.explained_variance, lam, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(basis.explained_variance_ratio, lam / lam.sum(), rtol=1e-9, atol=1e-14)
    # eigenvectors equal up to sign; the sign rule then makes them equal
    for k in range(9):
        assert abs(abs(basis.components[k] @ vec[k]) - 1) < 1e-8
    np.testing.assert_allclose(basis.components, fix_signs(vec), atol=1e-7)


def test_sign_rule_and_order(filters):
    basis = BasisReducer().partial_fit(filters).basis()
    comps = basis.components
    for row in comps:
        assert row[np.abs(row).argmax()] > 0
    assert np.all(np.diff(basis.explained_variance) <= 0)
    assert basis.explained_variance_ratio.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(comps @ comps.T, np.eye(9), atol=1e-10)


def test_shape_normalisation_keeps_zero_filters_zero():
    w = np.zeros((3, 9), np.float32)
    w[1] = np.linspace(-2, 1, 9)
    f = shape_normalise(w)
    assert not f[0].any() and not f[2].any()
    assert np.abs(f[1]).max() == 1.0 and f[1][0] == -1.0


def test_basis_round_trips_through_json(filters):
    basis = BasisReducer().partial_fit(filters[:5000]).basis()
    again = Basis.from_dict(basis.to_dict())
    np.testing.assert_array_equal(again.components, basis.components)
    coef = again.coefficients(shape_normalise(filters[:10]))
    assert coef.shape == (10, 9)


def test_too_few_filters_is_an_error():
    with pytest.raises(ValueError, match="at least 2 filters"):
        BasisReducer().partial_fit(np.ones((1, 9), np.float32)).basis()
