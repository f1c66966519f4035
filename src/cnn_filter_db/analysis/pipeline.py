"""``analyze``: the three passes over a release, the merges between them, and the outputs.

Pass 1 measures every layer and accumulates the moments of shape-normalised filters (the
global and group eigen-image bases come from them); pass 2 finds each grouping's
coefficient range in the global basis; pass 3 counts the coefficient histograms per
(model, group), for all filters and for the size-controlled subsample. Drift and its
bootstrap intervals are computed from those counts without reading the data again.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AnalysisError
from . import drift, report
from .basis import Basis, BasisReducer
from .engine import Context, make_engine, measure, pass_hist, pass_layers, pass_range, shard_items
from .labels import Grouping, Labels, load_labels
from .layer import MOMENTS_LEN
from .params import AnalyzeParams


@dataclass
class GroupingResult:
    """Everything the reports need about one grouping."""

    grouping: Grouping
    bases: dict[str, Basis | None]
    filters: np.ndarray            # per group
    models: np.ndarray             # per group: distinct models
    value_range: tuple[float, float]
    hist: np.ndarray               # (G, 9, bins) counts, all filters
    hist_sub: np.ndarray           # (G, 9, bins) counts, size-controlled subsample
    sub_target: int
    drift: list[dict]              # one row a (group_a, group_b)


def analyze(release_dir: Path, reports_dir: Path, params: dict | AnalyzeParams | None = None) -> dict:
    """Analyse a release folder; write ``layer_stats`` into it and the reports.

    Parameters
    ----------
    release_dir : the release (``filters/``, ``layers/``, ``models/``).
    reports_dir : where ``basis/``, ``drift/``, ``plots/``, ``metrics.json``,
        ``model_summary.csv`` and ``README.md`` go.
    params : the ``analyze`` group of ``params.yaml`` (see :class:`AnalyzeParams`).

    Returns
    -------
    dict : the headline numbers (also in ``metrics.json``) and the time of each pass.
    """
    p = params if isinstance(params, AnalyzeParams) else AnalyzeParams.from_dict(params)
    release_dir, reports_dir = Path(release_dir), Path(reports_dir)
    timings = {}
    t = time.perf_counter()
    labels = load_labels(release_dir)
    items = shard_items(release_dir)
    groupings = [labels.grouping(g) for g in p.groupings]
    ctx = Context(labels.index, labels.n_filters, labels.out_channels, p)
    engine = make_engine(p)
    try:
        t = _tick(timings, "load", t)
        metrics, moments, n_rows = _pass1(engine, items, ctx, labels)
        t = _tick(timings, "pass1_layers", t)
        global_basis = BasisReducer.from_moments(moments).basis()
        ctx.mean, ctx.components = global_basis.mean, global_basis.components
        if groupings:  # passes 2 and 3 serve drift only
            lo, hi = _pass2(engine, items, ctx, labels.n_layers)
            t = _tick(timings, "pass2_range", t)
            ranges, range_of, keep, sub_targets = _prepare_hist(groupings, lo, hi, labels, p)
            ctx.ranges, ctx.range_of_grouping, ctx.keep = ranges, range_of, keep
            acc, acc_sub, pairs = _pass3(engine, items, ctx, labels, groupings)
            t = _tick(timings, "pass3_hist", t)
    finally:
        engine.close()
    boot_w = drift.poisson_weights(len(labels.model_ids), p.bootstrap, p.seed) if p.bootstrap else None
    results = []
    for g, grouping in enumerate(groupings):
        lo_g, hi_g = ranges[range_of[g]]
        results.append(_grouping_result(grouping, labels, moments, global_basis, (lo_g, hi_g),
                                        acc[g], acc_sub[g], pairs[g], sub_targets[g], boot_w, p))
    t = _tick(timings, "drift", t)
    summary = report.write_all(release_dir, reports_dir, labels, metrics, global_basis, results, p, n_rows)
    _tick(timings, "outputs", t)
    summary["timings_s"] = timings
    return summary


def _tick(timings: dict, name: str, t: float) -> float:
    now = time.perf_counter()
    timings[name] = round(now - t, 3)
    return now


# --------------------------------------------------------------------------- pass 1

def _pass1(engine, items, ctx: Context, labels: Labels):
    n_layers = labels.n_layers
    metrics: list[dict | None] = [None] * n_layers
    moments = np.zeros((n_layers, MOMENTS_LEN))
    fragments: dict[int, list] = defaultdict(list)
    n_rows = 0

    def store(row: int, m: dict, mom: np.ndarray) -> None:
        if metrics[row] is not None:
            model, layer = labels.key(row)
            raise AnalysisError(f"filters of ({model}, layer_id {layer}) appear in more than one shard")
        metrics[row] = m
        moments[row] = mom

    for res in engine.map(pass_layers, items, ctx):
        n_rows += res["filters"]
        for row, m, mom in zip(res["rows"].tolist(), res["metrics"], res["moments"]):
            store(row, m, mom)
        for row, shard, w in res["fragments"]:
            fragments[row].append((shard, w))
            got = sum(len(x) for _, x in fragments[row])
            if got > labels.n_filters[row]:
                model, layer = labels.key(row)
                raise AnalysisError(f"({model}, layer_id {layer}): {got} filter rows across shards, "
                                    f"the layers table says {labels.n_filters[row]}")
            if got == labels.n_filters[row]:
                parts = [x for _, x in sorted(fragments.pop(row), key=lambda s: s[0])]
                store(row, *measure(np.concatenate(parts), row, ctx))
    missing = [r for r in range(n_layers) if metrics[r] is None]
    if missing:
        shown = ", ".join(f"({m}, layer_id {lid})" for m, lid in map(labels.key, missing[:5]))
        raise AnalysisError(f"{len(missing)} layers of the layers table have no (or too few) filter rows "
                            f"in filters/: {shown}; re-run their extract stage")
    return metrics, moments, n_rows


# --------------------------------------------------------------------------- pass 2

def _pass2(engine, items, ctx: Context, n_layers: int):
    lo = np.full(n_layers, np.inf)
    hi = np.full(n_layers, -np.inf)
    for res in engine.map(pass_range, items, ctx):
        for row, v in res["lo"].items():
            lo[row] = min(lo[row], v)
        for row, v in res["hi"].items():
            hi[row] = max(hi[row], v)
    return lo, hi


def _prepare_hist(groupings: list[Grouping], lo, hi, labels: Labels, p: AnalyzeParams):
    """Each grouping's range (shared when equal), and per layer the keep probabilities."""
    ranges: list[tuple[float, float]] = []
    range_of = np.zeros(len(groupings), dtype=np.int64)
    keep = np.ones((labels.n_layers, len(groupings)))
    targets = []
    for g, grouping in enumerate(groupings):
        inside = grouping.codes >= 0
        r = (float(lo[inside].min()), float(hi[inside].max())) if inside.any() else (0.0, 0.0)
        if r not in ranges:
            ranges.append(r)
        range_of[g] = ranges.index(r)
        counts = np.bincount(grouping.codes[inside], weights=labels.n_filters[inside],
                             minlength=len(grouping.names))
        probs, m = drift.keep_probabilities(counts, p.size_control_n)
        keep[inside, g] = probs[grouping.codes[inside]]
        targets.append(m)
    return ranges, range_of, keep, targets


# --------------------------------------------------------------------------- pass 3

def _pairs(grouping: Grouping, labels: Labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each layer's (model, group) unit index (-1 outside), and each unit's model and group."""
    inside = grouping.codes >= 0
    key = labels.model_of_layer * max(len(grouping.names), 1) + grouping.codes
    uniq, inverse = np.unique(key[inside], return_inverse=True)
    pair = np.full(labels.n_layers, -1, dtype=np.int64)
    pair[inside] = inverse
    n_groups = max(len(grouping.names), 1)
    return pair, uniq // n_groups, uniq % n_groups


def _pass3(engine, items, ctx: Context, labels: Labels, groupings: list[Grouping]):
    k = 9 * ctx.params.bins
    pairs = [_pairs(g, labels) for g in groupings]
    acc = [np.zeros((len(units), k), np.int64) for _, units, _ in pairs]
    acc_sub = [np.zeros((len(units), k), np.int64) for _, units, _ in pairs]
    range_of = ctx.range_of_grouping
    for res in engine.map(pass_hist, items, ctx):
        for row, h in res["full"].items():
            sub = res["sub"].get(row)
            for g, (pair, _, _) in enumerate(pairs):
                if pair[row] >= 0:
                    acc[g][pair[row]] += h[range_of[g]]
                    acc_sub[g][pair[row]] += h[range_of[g]] if sub is None else sub[g]
    return acc, acc_sub, pairs


# --------------------------------------------------------------------------- drift

def _grouping_result(grouping: Grouping, labels: Labels, moments, global_basis: Basis, value_range,
                     acc, acc_sub, pairs, sub_target: int, boot_w, p: AnalyzeParams) -> GroupingResult:
    _, unit_model, unit_group = pairs
    n_groups = len(grouping.names)
    bins = p.bins
    bases = {}
    for code, name in enumerate(grouping.names):
        red = BasisReducer.from_moments(moments[grouping.codes == code])
        bases[name] = red.basis() if red.count_ >= 2 else None
    filters = np.array([moments[grouping.codes == c, 0].sum() for c in range(n_groups)], dtype=np.int64)
    models = np.bincount(unit_group, minlength=n_groups)
    hist = np.zeros((n_groups, 9 * bins), np.int64)
    hist_sub = np.zeros((n_groups, 9 * bins), np.int64)
    np.add.at(hist, unit_group, acc)
    np.add.at(hist_sub, unit_group, acc_sub)
    lo, hi = value_range
    width = (hi - lo) / bins if hi > lo else 1.0
    w = global_basis.explained_variance_ratio
    shape = (n_groups, 9, bins)
    d = drift.drift_pairs(list(hist.reshape(shape)), width, w, p.empty_bin) if n_groups else np.zeros((0, 0))
    d_sub = drift.drift_pairs(list(hist_sub.reshape(shape)), width, w, p.empty_bin) if n_groups else d
    ci = ci_sub = None
    if boot_w is not None and n_groups:
        units = [np.flatnonzero(unit_group == c) for c in range(n_groups)]
        idx = [unit_model[u] for u in units]
        few = (models[:, None] < 2) | (models[None, :] < 2)  # no interval: see drift.py

        def interval(a: np.ndarray):
            reps = drift.bootstrap_drift([a[u].reshape(-1, 9, bins) for u in units], idx, boot_w, width, w,
                                         p.empty_bin)
            lo_ci, hi_ci, n_valid = drift.interval(reps, p.ci_level)
            return np.where(few, np.nan, lo_ci), np.where(few, np.nan, hi_ci), n_valid

        ci = interval(acc)
        ci_sub = interval(acc_sub) if p.size_controlled else None
    kept = hist_sub.sum(axis=1) // 9
    rows = []
    for a in range(n_groups):
        for b in range(n_groups):
            rows.append({
                "grouping": grouping.name, "group_a": grouping.names[a], "group_b": grouping.names[b],
                "d": float(d[a, b]),
                "d_lo": _f(ci[0][a, b]) if ci else None, "d_hi": _f(ci[1][a, b]) if ci else None,
                "d_replicates": int(ci[2][a, b]) if ci else 0,
                "d_sc": float(d_sub[a, b]) if p.size_controlled else None,
                "d_sc_lo": _f(ci_sub[0][a, b]) if ci_sub and p.size_controlled else None,
                "d_sc_hi": _f(ci_sub[1][a, b]) if ci_sub and p.size_controlled else None,
                "filters_a": int(filters[a]), "filters_b": int(filters[b]),
                "models_a": int(models[a]), "models_b": int(models[b]),
                "sc_filters_a": int(kept[a]) if p.size_controlled else None,
                "sc_filters_b": int(kept[b]) if p.size_controlled else None,
                "sc_target": sub_target if p.size_controlled else None,
            })
    return GroupingResult(grouping, bases, filters, models, value_range, hist.reshape(shape),
                          hist_sub.reshape(shape), sub_target, rows)


def _f(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x
