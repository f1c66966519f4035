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


def test_size_controlled_draws_contain_their_median_and_shrink_with_m():
    rng = np.random.default_rng(3)
    # 5 models in 2 groups; group 1 is a shifted copy of group 0's distribution
    unit_hists = [rng.poisson(50, size=(3, 9, 20)).astype(np.int64), rng.poisson(50, size=(2, 9, 20)).astype(np.int64)]
    unit_hists[1][:, :, :5] += 40
    idx = [np.array([0, 1, 2]), np.array([3, 4])]
    w = drift.poisson_weights(5, 400, seed=1, stream=1)
    weights = np.full(9, 1 / 9)
    draws = drift.subsample_drift(unit_hists, idx, w, 300, 0.1, weights, EPS, seed=0)
    assert draws.shape == (400, 2, 2)
    med = drift.median_of(draws)
    lo, hi, _ = drift.interval(draws, 0.95)
    assert lo[0, 1] <= med[0, 1] <= hi[0, 1] and lo[0, 1] < hi[0, 1]
    np.testing.assert_array_equal(draws, drift.subsample_drift(unit_hists, idx, w, 300, 0.1, weights, EPS, seed=0))
    # each draw holds exactly m filters a coefficient: D of a group with itself is 0 only in
    # expectation of the noise; between groups, fewer filters give a larger D (noisier histograms)
    small = drift.median_of(drift.subsample_drift(unit_hists, idx, w, 30, 0.1, weights, EPS, seed=0))
    assert small[0, 1] > med[0, 1]
    # a replicate where a group drew weight 0 for all its models is NaN, and skipped
    lost = (w[:, :3].sum(1) == 0) | (w[:, 3:].sum(1) == 0)
    assert np.array_equal(~np.isfinite(draws[:, 0, 1]), lost)


def test_model_halves_are_balanced_and_seeded():
    ids = [f"m{i}" for i in range(7)]
    h = drift.model_halves(ids, 0)
    assert sorted(np.bincount(h)) == [3, 4]
    np.testing.assert_array_equal(h, drift.model_halves(ids, 0))
    assert not all(np.array_equal(h, drift.model_halves(ids, s)) for s in range(1, 6))
    assert list(drift.model_halves(["a", "b"], 0)) in ([0, 1], [1, 0])


def test_half_split_of_filters_is_about_half_and_stable():
    out_c = np.repeat(np.arange(100, dtype=np.int32), 100)
    in_c = np.tile(np.arange(100, dtype=np.int32), 100)
    key = drift.layer_key(0, "m", 0)
    a = drift.half_a(key, out_c, in_c)
    assert abs(a.mean() - 0.5) < 0.02
    np.testing.assert_array_equal(a[500:900], drift.half_a(key, out_c[500:900], in_c[500:900]))


def test_no_evidence_rule():
    assert drift.no_evidence(0.10, None, 0.2, 0.05)          # below the larger null
    assert not drift.no_evidence(0.30, None, 0.2, 0.05)
    assert drift.no_evidence(0.30, 0.15, 0.2, 0.05)          # its interval reaches the null
    assert not drift.no_evidence(0.30, 0.25, 0.2, 0.05)
    assert drift.no_evidence(0.2, None, 0.2, None)           # not exceeding = equal counts
    assert not drift.no_evidence(0.3, None, None, None)      # no null: nothing to compare with
