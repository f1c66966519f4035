"""``analyze``: the three passes over a release, the merges between them, and the outputs.

Pass 1 measures every layer and accumulates the moments of shape-normalised filters (the
global basis of the population, the controls' bases and the group bases come from them);
pass 2 finds each grouping's coefficient range in the global basis; pass 3 counts the
coefficient histograms per (model, group), and for the layers of one-model groups also
those of the null's half A. Drift, its nulls, its bootstrap intervals and the
size-controlled D are computed from those counts without reading the data again.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..dataset import integrity
from ..errors import AnalysisError
from ..params import AnalyzeParams, RunOptions
from ..progress import bar as progress_bar
from . import drift, report
from .basis import Basis, BasisReducer
from .engine import Context, make_engine, measure, pass_hist, pass_layers, pass_range, shard_items
from .labels import Grouping, Labels, load_labels
from .layer import MOMENTS_LEN
from .drift import NULL_PAIRS_GROUPING
from .population import CONTROL_GROUPING, TRAINED_GROUP
from .render import Renderer


@dataclass
class Plan:
    """One matrix to compute: a grouping restricted to its compared groups, and its listing.

    ``range_mask`` marks the layers whose coefficients set the histogram range (the compared
    layers, except for the seed-pair null, whose range also covers the population so that
    its bins are those of the population's matrices).
    """

    grouping: Grouping
    listing: list[dict]          # every group with filters in the population: sizes, compared
    range_mask: np.ndarray


@dataclass
class GroupingResult:
    """Everything the reports need about one grouping."""

    grouping: Grouping
    listing: list[dict]
    bases: dict[str, Basis | None]
    filters: np.ndarray            # per compared group
    models: np.ndarray             # per compared group: distinct models
    nulls: np.ndarray              # per compared group: D between its two halves
    null_split: list[str]          # per compared group: "models" or "filters"
    value_range: tuple[float, float]
    hist: np.ndarray               # (G, 9, bins) counts, all filters
    sub_target: int
    drift: list[dict]              # one row an ordered pair of compared groups


def analyze(release_dir: Path, reports_dir: Path, params: dict | AnalyzeParams | None = None,
            run: dict | RunOptions | None = None, *, verify: bool = True) -> dict:
    """Analyse a release folder; write ``layer_stats`` into it and the reports.

    Every layer gets its ``layer_stats`` row; every other statistic is computed over the
    models of ``params.population`` (see :mod:`.population`), and with the default
    ``trained`` the controls (initialisations, near-initialisation runs) get their own basis
    and their D against the trained population.

    Parameters
    ----------
    release_dir : the release (``filters/``, ``layers/``, ``models/``).
    reports_dir : where ``basis/``, ``drift/``, ``plots/``, ``metrics.json``,
        ``model_summary.csv``, ``degeneration_sensitivity.csv`` and ``README.md`` go.
    params : the ``analyze`` group of ``params.yaml`` (see :class:`AnalyzeParams`).
    run : how to run (engine, workers, batch size; see :class:`RunOptions`): the numbers
        do not depend on it.
    verify : check every shard's sha256 against the folder's manifest.json, when it has
        one, before the first pass (the DVC analyze stage opts out: until the release stage
        rewrites it, the folder's manifest is the previous build's).

    Returns
    -------
    dict : the headline numbers (also in ``metrics.json``) and the time of each pass.
    """
    p = AnalyzeParams.of(params)
    run = RunOptions.of(run)
    release_dir, reports_dir = Path(release_dir), Path(reports_dir)
    timings = {}
    t = time.perf_counter()
    renderer = Renderer(run.workers)  # first: its workers fork before any other thread starts
    try:
        return _analyze(release_dir, reports_dir, p, run, renderer, timings, t, verify)
    finally:
        renderer.close()


def _analyze(release_dir: Path, reports_dir: Path, p: AnalyzeParams, run: RunOptions, renderer: Renderer,
             timings: dict, t: float, verify: bool) -> dict:
    labels = load_labels(release_dir, verify=verify)
    items = shard_items(release_dir)
    if verify:  # here, once: the passes' workers read the shards unverified
        integrity.verify(release_dir, [Path(path) for _, path in items])
    pop = labels.population(p.population)
    ctx = Context(labels.index, labels.n_filters, labels.out_channels, p, run.batch_rows)
    engine = make_engine(run)
    acc = acc_half = pairs = ranges = range_of = None
    try:
        t = _tick(timings, "load", t)
        metrics, moments, n_rows = _pass1(engine, items, ctx, labels)
        t = _tick(timings, "pass1_layers", t)
        if not moments[pop.layer_in, 0].sum() >= 2:
            raise AnalysisError(f"{release_dir}: the {p.population!r} population (params.yaml analyze.population) "
                                f"holds fewer than 2 filters; choose another population")
        global_basis = BasisReducer.from_moments(moments[pop.layer_in]).basis()
        control_bases = {kind: BasisReducer.from_moments(moments[mask]).basis()
                         for kind, mask in pop.control_layers.items() if moments[mask, 0].sum() >= 2}
        ctx.mean, ctx.components = global_basis.mean, global_basis.components
        plans = _plans(labels, pop, moments, p)
        if plans:  # passes 2 and 3 serve drift only
            lo, hi = _pass2(engine, items, ctx, labels.n_layers)
            t = _tick(timings, "pass2_range", t)
            ranges, range_of = _ranges(plans, lo, hi)
            ctx.ranges, ctx.half = ranges, _half_layers(plans, labels)
            acc, acc_half, pairs = _pass3(engine, items, ctx, labels, [pl.grouping for pl in plans], range_of)
            t = _tick(timings, "pass3_hist", t)
    finally:
        engine.close()
    boot_w = drift.poisson_weights(len(labels.model_ids), p.bootstrap, p.seed) if p.bootstrap else None
    draw_w = drift.poisson_weights(len(labels.model_ids), p.size_control_draws, p.seed, stream=1)
    # one task a grouping, side by side in the output workers (each task's numbers depend on
    # its inputs only: its random draws are seeded inside)
    results = renderer.map(_grouping_result, [
        (plan, labels.model_ids, moments, global_basis, ranges[range_of[g]], acc[g], acc_half[g], pairs[g],
         boot_w, draw_w, p) for g, plan in enumerate(plans)])
    t = _tick(timings, "drift", t)
    summary = report.write_all(release_dir, reports_dir, labels, pop, metrics, global_basis, control_bases,
                               results, p, n_rows, renderer)
    _tick(timings, "outputs", t)
    summary["timings_s"] = timings
    return summary


def _tick(timings: dict, name: str, t: float) -> float:
    now = time.perf_counter()
    timings[name] = round(now - t, 3)
    return now


# --------------------------------------------------------------------------- groupings


def _listing(grouping: Grouping, labels: Labels, p: AnalyzeParams) -> tuple[Grouping, list[dict]]:
    """The grouping restricted to groups of at least the minimum size, and every group's sizes."""
    inside = grouping.codes >= 0
    n = len(grouping.names)
    filters = np.bincount(grouping.codes[inside], weights=labels.n_filters[inside], minlength=n).astype(np.int64)
    models = np.array([len(np.unique(labels.model_of_layer[grouping.codes == c])) for c in range(n)], dtype=np.int64)
    compared = (filters >= p.min_group_filters) & (models >= p.min_group_models)
    listing = [{"grouping": grouping.name, "group": name, "filters": int(filters[c]), "models": int(models[c]),
                "compared": bool(compared[c])} for c, name in enumerate(grouping.names) if filters[c] > 0]
    keep = np.flatnonzero(compared)
    remap = np.full(n + 1, -1, dtype=np.int32)
    remap[keep] = np.arange(len(keep), dtype=np.int32)
    codes = remap[np.where(inside, grouping.codes, n)]
    return Grouping(grouping.name, [grouping.names[c] for c in keep], codes), listing


def _plans(labels: Labels, pop, moments, p: AnalyzeParams) -> list[Plan]:
    """The configured groupings over the population, then the controls against the trained
    population, then the seed-pair nulls (each when there is something to compare)."""
    plans = []
    for name in p.groupings:
        g = labels.grouping(name)
        g = Grouping(g.name, g.names, np.where(pop.layer_in, g.codes, -1).astype(np.int32))
        g, listing = _listing(g, labels, p)
        plans.append(Plan(g, listing, g.codes >= 0))
    if pop.control_models:
        names = [TRAINED_GROUP] + pop.control_models
        code_of = {m: i + 1 for i, m in enumerate(pop.control_models)}
        per_model = np.array([code_of.get(m, -1) for m in labels.model_ids], dtype=np.int32)
        codes = np.where(pop.layer_in, 0, per_model[labels.model_of_layer]).astype(np.int32)
        g, listing = _listing(Grouping(CONTROL_GROUPING, names, codes), labels, p)
        if len(g.names) > 1 and g.names[0] == TRAINED_GROUP:
            plans.append(Plan(g, listing, g.codes >= 0))
    present = set(labels.model_ids)
    pair_models = sorted({m for pair in p.null_pairs if set(pair) <= present for m in pair})
    if pair_models:
        code_of = {m: i for i, m in enumerate(pair_models)}
        per_model = np.array([code_of.get(m, -1) for m in labels.model_ids], dtype=np.int32)
        g, listing = _listing(Grouping(NULL_PAIRS_GROUPING, pair_models, per_model[labels.model_of_layer]), labels, p)
        if len(g.names) > 1:
            plans.append(Plan(g, listing, (g.codes >= 0) | pop.layer_in))
    return plans


def _ranges(plans: list[Plan], lo, hi):
    """Each plan's coefficient range (one entry a distinct range) and its index."""
    ranges: list[tuple[float, float]] = []
    range_of = np.zeros(len(plans), dtype=np.int64)
    for g, plan in enumerate(plans):
        m = plan.range_mask & np.isfinite(lo)
        r = (float(lo[m].min()), float(hi[m].max())) if m.any() else (0.0, 0.0)
        if r not in ranges:
            ranges.append(r)
        range_of[g] = ranges.index(r)
    return ranges, range_of


def _half_layers(plans: list[Plan], labels: Labels) -> np.ndarray:
    """Layers of compared one-model groups: their null splits filters, so pass 3 counts half A."""
    half = np.zeros(labels.n_layers, dtype=bool)
    for plan in plans:
        codes = plan.grouping.codes
        for c in range(len(plan.grouping.names)):
            mask = codes == c
            if len(np.unique(labels.model_of_layer[mask])) == 1:
                half |= mask
    return half


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

    for res in progress_bar(engine.map(pass_layers, items, ctx), total=len(items), unit="shard",
                            desc="analyze 1/3: per-layer measures"):
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
    for res in progress_bar(engine.map(pass_range, items, ctx), total=len(items), unit="shard",
                            desc="analyze 2/3: coefficient ranges"):
        for row, v in res["lo"].items():
            lo[row] = min(lo[row], v)
        for row, v in res["hi"].items():
            hi[row] = max(hi[row], v)
    return lo, hi


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


def _pass3(engine, items, ctx: Context, labels: Labels, groupings: list[Grouping], range_of):
    k = 9 * ctx.params.bins
    pairs = [_pairs(g, labels) for g in groupings]
    acc = [np.zeros((len(units), k), np.int64) for _, units, _ in pairs]
    acc_half = [np.zeros((len(units), k), np.int64) for _, units, _ in pairs]
    for res in progress_bar(engine.map(pass_hist, items, ctx), total=len(items), unit="shard",
                            desc="analyze 3/3: histograms"):
        for row, h in res["full"].items():
            half = res["half"].get(row)
            for g, (pair, _, _) in enumerate(pairs):
                if pair[row] >= 0:
                    acc[g][pair[row]] += h[range_of[g]]
                    if half is not None:
                        acc_half[g][pair[row]] += half[range_of[g]]
    return acc, acc_half, pairs


# --------------------------------------------------------------------------- drift

def _grouping_result(plan: Plan, model_ids: list[str], moments, global_basis: Basis, value_range, acc, acc_half,
                     pairs, boot_w, draw_w, p: AnalyzeParams) -> GroupingResult:
    grouping = plan.grouping
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
    np.add.at(hist, unit_group, acc)
    lo, hi = value_range
    width = (hi - lo) / bins if hi > lo else 1.0
    w = global_basis.explained_variance_ratio
    shape = (n_groups, 9, bins)
    d = drift.drift_pairs(list(hist.reshape(shape)), width, w, p.empty_bin) if n_groups else np.zeros((0, 0))
    units = [np.flatnonzero(unit_group == c) for c in range(n_groups)]
    nulls, splits = np.full(n_groups, np.nan), []
    for c, u in enumerate(units):
        if models[c] >= 2:
            halves = drift.model_halves([model_ids[m] for m in unit_model[u]], p.seed)
            a, b = acc[u][halves == 0].sum(axis=0), acc[u][halves == 1].sum(axis=0)
            splits.append("models")
        else:
            a = acc_half[u].sum(axis=0)
            b = acc[u].sum(axis=0) - a
            splits.append("filters")
        if a.sum() and b.sum():
            nulls[c] = drift.drift_pairs([a.reshape(9, bins), b.reshape(9, bins)], width, w, p.empty_bin)[0, 1]
    ci = None
    idx = [unit_model[u] for u in units]
    if boot_w is not None and n_groups:
        few = (models[:, None] < 2) | (models[None, :] < 2)  # no interval: see drift.py
        reps = drift.bootstrap_drift([acc[u].reshape(-1, 9, bins) for u in units], idx, boot_w, width, w,
                                     p.empty_bin)
        lo_ci, hi_ci, n_valid = drift.interval(reps, p.ci_level)
        ci = (np.where(few, np.nan, lo_ci), np.where(few, np.nan, hi_ci), n_valid)
    m = int(p.size_control_n or (filters.min() if n_groups else 0))
    sc = None
    if p.size_controlled and n_groups:
        draws = drift.subsample_drift([acc[u].reshape(-1, 9, bins) for u in units], idx, draw_w, m, width, w,
                                      p.empty_bin, p.seed)
        sc_lo, sc_hi, _ = drift.interval(draws, p.ci_level)
        sc = (drift.median_of(draws), sc_lo, sc_hi)
    rows = []
    for a in range(n_groups):
        for b in range(n_groups):
            d_lo = _f(ci[0][a, b]) if ci else None
            rows.append({
                "grouping": grouping.name, "group_a": grouping.names[a], "group_b": grouping.names[b],
                "d": float(d[a, b]),
                "d_lo": d_lo, "d_hi": _f(ci[1][a, b]) if ci else None,
                "d_replicates": int(ci[2][a, b]) if ci else 0,
                "null_a": _f(nulls[a]), "null_b": _f(nulls[b]),
                "no_evidence": a != b and drift.no_evidence(float(d[a, b]), d_lo, _f(nulls[a]), _f(nulls[b])),
                "d_sc": _f(sc[0][a, b]) if sc else None,
                "d_sc_lo": _f(sc[1][a, b]) if sc else None,
                "d_sc_hi": _f(sc[2][a, b]) if sc else None,
                "filters_a": int(filters[a]), "filters_b": int(filters[b]),
                "models_a": int(models[a]), "models_b": int(models[b]),
                "sc_target": m if sc else None,
            })
    return GroupingResult(grouping, plan.listing, bases, filters, models, nulls, splits, value_range,
                          hist.reshape(shape), m, rows)


def _f(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x
