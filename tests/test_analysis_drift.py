"""D(P, Q) and its ingredients: smoothing, symmetric KL, bootstrap weights, subsampling hash."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from cnn_filter_db.analysis import drift

EPS = 1.1920929e-07


def random_hists(rng, groups=4, bins=70, n=5000):
    out = []
    for g in range(groups):
        c = rng.normal(loc=0.1 * g, scale=1 + 0.2 * g, size=(9, n))
        out.append(np.stack([np.histogram(row, bins=bins, range=(-6, 6))[0] for row in c]))
    return out


def test_probabilities_follow_the_spec():
    counts = np.zeros((9, 4))
    counts[:, 1] = 2
    counts[:, 2] = 6
    width = 0.5
    p = drift.probabilities(counts, width, EPS)
    dens = np.array([0, 2, 6, 0]) / 8 / width      # density normalised
    dens = np.where(dens == 0, EPS, dens)          # empty bins
    expected = dens / dens.sum()                   # renormalised to 1
    np.testing.assert_allclose(p[0], expected, rtol=1e-15)
    assert np.all(p.sum(axis=-1) == pytest.approx(1.0))


def test_divergence_is_weighted_symmetric_kl():
    rng = np.random.default_rng(0)
    hp, hq = random_hists(rng, 2)
    w = rng.dirichlet(np.ones(9))
    p = drift.probabilities(hp, 12 / 70, EPS)
    q = drift.probabilities(hq, 12 / 70, EPS)
    expected = sum(w[i] * (scipy.stats.entropy(p[i], q[i]) + scipy.stats.entropy(q[i], p[i])) for i in range(9))
    assert drift.divergence(p, q, w) == pytest.approx(expected, rel=1e-12)


def test_d_of_p_and_p_is_zero_and_d_is_symmetric():
    rng = np.random.default_rng(1)
    hists = random_hists(rng, 5)
    w = rng.dirichlet(np.ones(9))
    d = drift.drift_pairs(hists, 12 / 70, w, EPS)
    assert np.all(np.diag(d) == 0)
    np.testing.assert_allclose(d, d.T, rtol=1e-12)
    off = d[~np.eye(5, dtype=bool)]
    assert np.all(off > 0)
    # a further-shifted group drifts further from group 0
    assert d[0, 1] < d[0, 4]


def test_bootstrap_replicates():
    rng = np.random.default_rng(2)
    hists = random_hists(rng, 3, n=2000)
    # 6 models: two a group, each model holding half of its group's histogram
    unit_hists = [np.stack([h // 2, h - h // 2]) for h in hists]
    unit_index = [np.array([0, 1]), np.array([2, 3]), np.array([4, 5])]
    w = drift.poisson_weights(6, 300, seed=7)
    np.testing.assert_array_equal(w, drift.poisson_weights(6, 300, seed=7))
    assert w.mean() == pytest.approx(1.0, abs=0.1)
    weights = np.full(9, 1 / 9)
    reps = drift.bootstrap_drift(unit_hists, unit_index, w, 12 / 70, weights, EPS)
    assert reps.shape == (300, 3, 3)
    finite = np.isfinite(reps[:, 0, 1])
    # a replicate is lost only when one of the two groups drew weight 0 for both its models
    lost = (w[:, [0, 1]].sum(1) == 0) | (w[:, [2, 3]].sum(1) == 0)
    np.testing.assert_array_equal(~finite, lost)
    np.testing.assert_allclose(reps[finite][:, 0, 1], reps[finite][:, 1, 0], rtol=1e-12)
    assert np.all(reps[finite][:, 0, 0] == 0)
    lo, hi, n_valid = drift.interval(reps, 0.95)
    point = drift.drift_pairs(hists, 12 / 70, weights, EPS)
    assert n_valid[0, 1] == finite.sum()
    assert lo[0, 1] <= hi[0, 1]
    assert lo[0, 1] <= point[0, 1] * 1.5 and hi[0, 1] >= point[0, 1] * 0.5


def test_uniforms_are_deterministic_uniform_and_depend_on_the_layer():
    out_c = np.repeat(np.arange(300, dtype=np.int32), 200)
    in_c = np.tile(np.arange(200, dtype=np.int32), 300)
    key = drift.layer_key(0, "some-model", 3)
    u = drift.uniforms(key, out_c, in_c)
    assert np.all((u >= 0) & (u < 1))
    np.testing.assert_array_equal(u, drift.uniforms(drift.layer_key(0, "some-model", 3), out_c, in_c))
    assert scipy.stats.kstest(u, "uniform").pvalue > 1e-3
    other = drift.uniforms(drift.layer_key(0, "some-model", 4), out_c, in_c)
    assert abs(np.corrcoef(u, other)[0, 1]) < 0.02
    assert drift.layer_key(1, "some-model", 3) != key
    # a slice gives the same numbers for the same filters: independent of batch boundaries
    np.testing.assert_array_equal(u[1234:5678], drift.uniforms(key, out_c[1234:5678], in_c[1234:5678]))


def test_keep_probabilities():
    p, m = drift.keep_probabilities(np.array([100, 400, 0, 1000]))
    assert m == 100
    np.testing.assert_allclose(p, [1.0, 0.25, 1.0, 0.1])
    p, m = drift.keep_probabilities(np.array([100, 400]), size_n=200)
    assert m == 200
    np.testing.assert_allclose(p, [1.0, 0.5])
