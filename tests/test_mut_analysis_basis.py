"""Behaviours of the eigen-image basis that mutation testing found undefended (issue 16);
expectations from numpy (cov, eigvalsh), orthonormality or hand-made filters."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cnn_filter_db.analysis.basis import Basis, BasisReducer


def shape_normalised(w: np.ndarray) -> np.ndarray:
    """Each filter over its max |w| in float64, zero filters kept zero (SPEC section 5)."""
    x = np.asarray(w, dtype=np.float64)
    m = np.abs(x).max(axis=1, keepdims=True)
    return np.divide(x, m, out=np.zeros_like(x), where=m > 0)


def moments_row(f: np.ndarray) -> np.ndarray:
    """[n, sum f, sum f f^T] of shape-normalised filters, written out with numpy."""
    return np.concatenate([[len(f)], f.sum(axis=0), (f.T @ f).ravel()])


def test_reducer_from_a_stack_of_moments_rows_equals_numpy_on_all_filters():
    """Three chunks' moments rows summed: count, mean and covariance of all filters (np.cov,
    ddof 1); one row alone, and no row (an empty reducer, count 0)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((300, 9)).astype(np.float32)
    f = shape_normalised(w)
    rows = np.stack([moments_row(f[:100]), moments_row(f[100:250]), moments_row(f[250:])])
    basis = BasisReducer.from_moments(rows).basis()
    assert basis.count == 300
    np.testing.assert_allclose(basis.mean, f.mean(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.sort(basis.explained_variance), np.linalg.eigvalsh(np.cov(f, rowvar=False)),
                               rtol=1e-9, atol=1e-14)
    one = BasisReducer.from_moments(rows[0])
    assert one.count_ == 100
    np.testing.assert_allclose(one.sum_, f[:100].sum(axis=0), rtol=1e-12, atol=1e-12)
    empty = BasisReducer.from_moments(np.zeros((0, 91)))
    assert empty.count_ == 0 and not empty.sum_.any() and not empty.outer_.any()


def test_a_moments_row_of_the_wrong_length_is_refused_with_its_shape():
    with pytest.raises(ValueError) as info:
        BasisReducer().add_moments(np.zeros(90))
    assert str(info.value) == "a moments row has 91 values, got shape (90,)"


def test_two_filters_are_enough_for_a_basis():
    """Filters e0 and e0 + e1 (max |w| 1, so shape normalisation keeps them): np.cov gives one direction of
    variance 0.5 (along e1); ratios 1, 0, ..."""
    w = np.zeros((2, 9), np.float32)
    w[0, 0], w[1, 0], w[1, 1] = 1.0, 1.0, 1.0
    basis = BasisReducer().partial_fit(w).basis()
    assert basis.count == 2
    assert basis.explained_variance[0] == pytest.approx(np.cov(w.astype(np.float64), rowvar=False)[1, 1])
    assert basis.explained_variance[0] == pytest.approx(0.5)
    assert basis.explained_variance_ratio[0] == pytest.approx(1.0) and abs(basis.components[0, 1]) == pytest.approx(1.0)


def test_rounding_never_makes_a_variance_negative():
    """Filters in a 2-D subspace: 7 eigenvalues are 0 up to rounding, and numpy's eigvalsh
    of the same covariance finds one of them below 0; the basis reports them as 0."""
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((500, 2)) @ rng.standard_normal((2, 9))).astype(np.float32)
    f = shape_normalised(w)
    n, mean = len(f), f.mean(axis=0)
    cov = (f.T @ f - n * np.outer(mean, mean)) / (n - 1)
    assert np.linalg.eigvalsh((cov + cov.T) / 2).min() < 0
    basis = BasisReducer().partial_fit(w).basis()
    assert (basis.explained_variance >= 0).all()
    assert (basis.explained_variance_ratio >= 0).all() and basis.explained_variance_ratio.sum() == pytest.approx(1)


def test_identical_filters_have_zero_variance_ratios_not_nan():
    """Four copies of e0: the covariance is exactly 0, so is every variance and ratio."""
    w = np.zeros((4, 9), np.float32)
    w[:, 0] = 2.0
    basis = BasisReducer().partial_fit(w).basis()
    assert basis.explained_variance.tolist() == [0.0] * 9
    assert basis.explained_variance_ratio.shape == (9,) and basis.explained_variance_ratio.tolist() == [0.0] * 9


def test_small_total_variance_still_gives_ratios_summing_to_one():
    """Filters close to one shape (total variance about 1e-4, far below 1): ratios are the
    variances over their sum, from numpy."""
    rng = np.random.default_rng(1)
    w = (np.linspace(0.2, 1.0, 9) + 0.01 * rng.standard_normal((200, 9))).astype(np.float32)
    lam = np.linalg.eigvalsh(np.cov(shape_normalised(w), rowvar=False))[::-1]
    assert 0 < lam.sum() < 0.01
    basis = BasisReducer().partial_fit(w).basis()
    np.testing.assert_allclose(basis.explained_variance_ratio, lam / lam.sum(), rtol=1e-6, atol=1e-12)


def test_coefficients_of_the_mean_plus_an_eigen_image_are_a_unit_vector():
    """c = (f - mu) V^T with V orthonormal: the mean has coefficients 0, the mean plus the
    k-th eigen-image has 1 in place k."""
    w = np.random.default_rng(2).standard_normal((400, 9)).astype(np.float32) + 0.5
    basis = BasisReducer().partial_fit(w).basis()
    assert np.abs(basis.mean).max() > 0.1                     # a mean far from 0
    probes = np.vstack([basis.mean, basis.mean + basis.components])
    np.testing.assert_allclose(basis.coefficients(probes), np.vstack([np.zeros(9), np.eye(9)]), atol=1e-12)


def test_basis_round_trips_through_json_with_every_field():
    w = np.random.default_rng(3).standard_normal((100, 9)).astype(np.float32)
    basis = BasisReducer().partial_fit(w).basis()
    again = Basis.from_dict(json.loads(json.dumps(basis.to_dict())))
    assert again.count == 100 and type(again.count) is int
    for field in ("mean", "components", "explained_variance", "explained_variance_ratio"):
        np.testing.assert_array_equal(getattr(again, field), getattr(basis, field), err_msg=field)


def test_basis_json_with_integral_numbers_loads_as_float_arrays():
    """JSON writers may print 0.0 as 0: the arrays still load as float64."""
    d = {"count": 2, "mean": [0] * 9, "components": np.eye(9, dtype=int).tolist(),
         "explained_variance": [1] + [0] * 8, "explained_variance_ratio": [1] + [0] * 8}
    basis = Basis.from_dict(d)
    for field in ("mean", "components", "explained_variance", "explained_variance_ratio"):
        assert getattr(basis, field).dtype == np.float64, field
