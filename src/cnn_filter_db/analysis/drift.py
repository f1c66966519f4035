"""Drift D(P, Q) between the filter distributions of two groups (SPEC.md section 5).

Coefficients ``c = (f - mu) V^T`` of the shape-normalised filters f in the global basis
(mean mu, eigen-images V). For each of the 9 coefficients a histogram of ``bins`` bins over
one shared range: the min and max over all 9 coefficients of all filters of the grouping
(so one range serves a whole matrix); histograms are density-normalised, empty bins set to
``empty_bin`` (a parameter: float32 eps), renormalised to sum 1;
``D = sum_i w_i (KL(p_i || q_i) + KL(q_i || p_i))`` in nats, ``w`` the global
explained-variance ratio. D(P, P) = 0 and D is symmetric by construction.

Choices left open by the spec, and what this module adds:

- Bins follow ``numpy.histogram``: ``[lo, hi]`` cut in equal parts, the last bin closed.
  The coefficients are computed in float32 in the histogram passes (relative error about
  1e-7, far below a bin width); a value that rounding puts a hair outside the range goes
  to the edge bin.
- **Bootstrap interval.** The sampling unit is the *model*: the dataset is a sample of
  published models, and filters (and layers) of one model are strongly dependent, so
  resampling filters would give intervals that are far too narrow. The histogram pass keeps
  each (model, group) histogram; replicate b weights every model by an independent
  Poisson(1) draw (the Poisson bootstrap, which needs no second look at the data), sums the
  weighted histograms of each group, and recomputes D. The interval is the percentile
  interval of the replicates at ``ci_level``. Replicates where a group gets weight 0 are
  dropped; the interval is null when either group holds fewer than 2 models (a single
  model's resample only rescales its histogram and cannot show between-model variation).
  The replicates' weights come from ``numpy.random.default_rng([seed, ...])`` over models in
  model_id order, so the same seed gives the same intervals on any engine.
- **Size-controlled D.** D grows as histograms get noisier, i.e. when a group is small, so
  D between groups of very different sizes mixes distribution shift with sample size. The
  size-controlled D reduces every compared group of a grouping to the same number of filters
  m (``size_control_n``, or the smallest compared group's size). Draw r weights every model by
  a Poisson(1) draw (as the bootstrap), then draws m filters from each group's weighted
  histogram: a multinomial of m per coefficient, which is exactly how the 9 marginal
  histograms of m filters drawn with replacement are distributed, and D only reads those
  marginals. ``d_sc`` is the median of D over ``size_control_draws`` draws and its interval
  the percentile interval of the same draws, so the interval contains its estimate and both
  measure one statistic (D at m filters a group). The draws come from
  ``numpy.random.default_rng([seed, ...])``.
- **Null reference.** Beside each D, each group's null: D between two random halves of the
  group, in the same range and weights. A group of at least two models is split by model
  (models ordered by a hash of the seed and model id, then dealt alternately, so the halves
  differ in models as two groups do); a group of one model is split by filter (a filter is
  in half A when a hash (splitmix64) of the seed, model, layer and (out, in) channel is below
  1/2). A pair of groups shows **no evidence of a shift** when its D does not exceed the
  larger of the two groups' nulls, or when its bootstrap interval reaches down to it. Halves
  hold half the filters, so the null is, if anything, larger than the noise in D between
  whole groups: the rule errs towards "no evidence".
- **Minimum size.** Groups with fewer than ``min_group_filters`` filters or
  ``min_group_models`` models are listed with their sizes but not compared.
"""
from __future__ import annotations

import warnings
import zlib

import numpy as np

#: The grouping of the models of ``analyze.null_pairs`` (runs of one recipe with two seeds).
NULL_PAIRS_GROUPING = "null_pairs"

_M64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)


def _mix_int(z: int) -> int:
    """splitmix64 of one Python int (mod 2**64)."""
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def layer_key(seed: int, model_id: str, layer_id: int) -> int:
    """A 64-bit key of (seed, model, layer), stable across processes and machines."""
    return _mix_int(_mix_int((seed & 0xFFFFFFFF) << 32 | zlib.crc32(model_id.encode())) ^ (layer_id & _M64))


def uniforms(key: int, out_channel: np.ndarray, in_channel: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) numbers, one a filter, from the layer key and the filter's channels."""
    z = (out_channel.astype(np.uint64) << np.uint64(32)) | in_channel.astype(np.uint64)
    z ^= np.uint64(key)
    z += _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _C1
    z = (z ^ (z >> np.uint64(27))) * _C2
    z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def half_a(key: int, out_channel: np.ndarray, in_channel: np.ndarray) -> np.ndarray:
    """True for the filters of a layer that the null's hash split puts in half A."""
    return uniforms(key, out_channel, in_channel) < 0.5


def model_halves(model_ids: list[str], seed: int) -> np.ndarray:
    """0/1 half of each of a group's models: ordered by a hash of (seed, model id), dealt
    alternately, so each half holds half the models (one more in A when odd)."""
    keys = [layer_key(seed, m, -1) for m in model_ids]
    order = sorted(range(len(model_ids)), key=lambda i: (keys[i], model_ids[i]))
    half = np.zeros(len(model_ids), dtype=np.int64)
    half[order[1::2]] = 1
    return half


def bin_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    return np.linspace(lo, hi, bins + 1)


def probabilities(counts: np.ndarray, width: float, empty_bin: float) -> np.ndarray:
    """Histograms (..., 9, bins) -> smoothed probabilities (density, empty bins, renormalise).

    A histogram with no counts at all gives NaN (the group is absent in that replicate).
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        dens = counts / (total * width)
        dens = np.where(counts == 0, empty_bin, dens)
        dens = np.where(total > 0, dens, np.nan)
        return dens / dens.sum(axis=-1, keepdims=True)


def divergence(p: np.ndarray, q: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """D between smoothed histograms p, q of shape (..., 9, bins); weights of shape (9,)."""
    sym_kl = ((p - q) * (np.log(p) - np.log(q))).sum(axis=-1)
    return (sym_kl * np.asarray(weights)).sum(axis=-1)


def drift_pairs(hists: list[np.ndarray], width: float, weights: np.ndarray,
                empty_bin: float) -> np.ndarray:
    """The D matrix of a list of (9, bins) histograms (one a group)."""
    p = probabilities(np.stack(hists), width, empty_bin)
    return np.stack([divergence(p[a], p, weights) for a in range(len(p))])


def poisson_weights(n_units: int, replicates: int, seed: int, stream: int = 0) -> np.ndarray:
    """(replicates, n_units) Poisson(1) bootstrap weights; ``stream`` gives independent sets."""
    rng = np.random.default_rng([seed, 0x5EED_B007] + ([stream] if stream else []))
    return rng.poisson(1.0, size=(replicates, n_units)).astype(np.float64)


def bootstrap_drift(unit_hists: list[np.ndarray], unit_index: list[np.ndarray], boot_w: np.ndarray,
                    width: float, weights: np.ndarray, empty_bin: float) -> np.ndarray:
    """Replicates of the D matrix: (B, G, G), NaN where a group got no weight.

    ``unit_hists[k]`` is (m_k, 9, bins): the histograms of group k's units (models), and
    ``unit_index[k]`` their columns in ``boot_w`` (B, n_units).
    """
    reps = []
    for hist, idx in zip(unit_hists, unit_index):
        flat = hist.reshape(len(hist), int(np.prod(hist.shape[1:]))).astype(np.float64)  # a group may have no units
        reps.append((boot_w[:, idx] @ flat).reshape(len(boot_w), *hist.shape[1:]))
    p = probabilities(np.stack(reps, axis=1), width, empty_bin)  # (B, G, 9, bins)
    # one row of the matrix at a time: (B, G, G, 9, bins) at once would not fit for many groups
    return np.stack([divergence(p[:, a:a + 1], p, weights) for a in range(p.shape[1])], axis=1)


def subsample_drift(unit_hists: list[np.ndarray], unit_index: list[np.ndarray], boot_w: np.ndarray,
                    m: int, width: float, weights: np.ndarray, empty_bin: float, seed: int) -> np.ndarray:
    """Draws of the size-controlled D matrix: (R, G, G), NaN where a group got no weight.

    Draw r sums group k's unit histograms with the model weights ``boot_w[r]`` and draws m
    filters from the result: one multinomial of m per coefficient (see the module docstring).
    """
    rng = np.random.default_rng([seed, 0x5B5A_3B1E])
    drawn = []
    for hist, idx in zip(unit_hists, unit_index):
        flat = hist.reshape(len(hist), -1).astype(np.float64)
        summed = (boot_w[:, idx] @ flat).reshape(len(boot_w), 9, -1)  # (R, 9, bins)
        total = summed.sum(axis=-1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            pv = np.where(total > 0, summed / total, 0.0)
        counts = np.zeros_like(summed)
        ok = total[:, 0, 0] > 0
        if ok.any():
            counts[ok] = rng.multinomial(m, pv[ok])
        drawn.append(counts)
    p = probabilities(np.stack(drawn, axis=1), width, empty_bin)  # (R, G, 9, bins)
    return np.stack([divergence(p[:, a:a + 1], p, weights) for a in range(p.shape[1])], axis=1)


def median_of(draws: np.ndarray) -> np.ndarray:
    """Median over the finite draws (axis 0); NaN where none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(draws, axis=0)


def no_evidence(d: float, lo: float | None, null_a: float | None, null_b: float | None) -> bool:
    """True when D does not exceed the larger null, or its interval reaches down to it."""
    nulls = [x for x in (null_a, null_b) if x is not None and np.isfinite(x)]
    if not nulls:
        return False
    ref = max(nulls)
    return bool(d <= ref or (lo is not None and np.isfinite(lo) and lo <= ref))


def interval(replicates: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile interval over the finite replicates (axis 0): (lo, hi, n_valid)."""
    valid = np.isfinite(replicates)
    n_valid = valid.sum(axis=0)
    a = (1 - level) / 2
    with warnings.catch_warnings():  # an all-NaN column is expected (too few models)
        warnings.simplefilter("ignore", RuntimeWarning)
        lo = np.nanquantile(replicates, a, axis=0)
        hi = np.nanquantile(replicates, 1 - a, axis=0)
    return lo, hi, n_valid
