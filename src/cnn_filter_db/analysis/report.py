"""The outputs of the analysis: the ``layer_stats`` config of the release, and ``reports/``.

``reports/`` holds ``metrics.json`` (headline numbers, DVC metrics), ``model_summary.csv``
(one row a model), ``degeneration_sensitivity.csv``, ``basis/`` (``global.json``,
``controls.json``, one JSON a grouping with each group's basis, ``explained_variance.csv``),
``drift/<grouping>.csv`` (one row an ordered pair of compared groups, with intervals, nulls
and the size-controlled D), ``drift/group-list.csv`` (every group, its size and null),
``plots/`` (PNG) and a ``README.md`` that says what each file shows and which population
each number is over. Every file is written to a temporary name and renamed; the
``basis/``, ``drift/`` and ``plots/`` folders are replaced whole.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

from ..dataset import writer
from ..dataset.schema import LAYER_STATS_SCHEMA, LAYERS_SCHEMA
from ..atomic import atomic_dir, atomic_write_text
from . import degeneration, plots
from .layer import METRIC_COLUMNS
from .drift import NULL_PAIRS_GROUPING
from .population import CONTROL_GROUPING, TRAINED_GROUP
from .render import Renderer

#: Columns of ``drift/<grouping>.csv`` (one row an ordered pair of compared groups).
DRIFT_COLUMNS = ["grouping", "group_a", "group_b", "d", "d_lo", "d_hi", "d_replicates", "null_a", "null_b",
                 "no_evidence", "d_sc", "d_sc_lo", "d_sc_hi", "filters_a", "filters_b", "models_a", "models_b",
                 "sc_target"]

#: Columns of ``drift/group-list.csv`` (one row a group of a grouping).
GROUP_COLUMNS = ["grouping", "group", "filters", "models", "compared", "null", "null_split"]

SUMMARY_LABELS = ("name", "family", "architecture", "task", "visual_category", "training_dataset",
                  "trained", "training", "training_steps", "random_like_share", "near_initialisation", "format")

#: The margins and rules of ``degeneration_sensitivity.csv``.
SENSITIVITY_MARGINS = (0.0, 0.02, 0.05)
SENSITIVITY_RULES = ("and", "or")


def layer_stats_table(labels, metrics: list[dict]) -> pa.Table:
    """``layers`` (in (model_id, layer_id) order) plus the metric columns."""
    cols = {name: labels.layers.column(name) for name in LAYERS_SCHEMA.names}
    for name in METRIC_COLUMNS:
        cols[name] = pa.array([m[name] for m in metrics], type=LAYER_STATS_SCHEMA.field(name).type)
    return pa.table(cols, schema=LAYER_STATS_SCHEMA)


def model_summary(stats: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    """One row a model: its labels, and shares and means over its layers."""
    g = stats.groupby("model_id", sort=True)
    out = pd.DataFrame({
        "n_layers": g.size(),
        "n_filters": g["n_filters"].sum(),
        "share_degenerate": g["is_degenerate"].mean(),
        "share_random_like": g["is_random_like"].mean(),
        "share_low_diversity_sparse": g["is_low_diversity_sparse"].mean(),
        "mean_variance_entropy": g["variance_entropy"].mean(),
        "mean_variance_entropy_norm": g["variance_entropy_norm"].mean(),
        "mean_sparsity": g["sparsity"].mean(),
        "sparse_filter_share": (stats["sparsity"] * stats["n_filters"]).groupby(stats["model_id"]).sum()
        / g["n_filters"].sum(),
        "mean_orthogonality": g["orthogonality"].mean(),
    }).reset_index()
    labels = models[["model_id", *[c for c in SUMMARY_LABELS if c in models.columns]]]
    return labels.merge(out, on="model_id", how="right")


def _json(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False, default=_default) + "\n"


def _default(x):
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(type(x))


def _clean(x):
    """NaN -> None, recursively (JSON has no NaN)."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return None if math.isnan(float(x)) else float(x)
    return x


def _mean(series: pd.Series) -> float | None:
    s = series.dropna().astype(float)
    return float(s.mean()) if len(s) else None


def sensitivity(stats: pd.DataFrame, p) -> pd.DataFrame:
    """Flagged layers for each margin of ``is_random_like`` and each form of the
    low-diversity-sparse rule (``and``, ``or``), over the layers of ``stats`` where H is defined."""
    rows = []
    layers = stats[stats["variance_entropy"].notna()]
    h, s, n = (layers[c].to_numpy(float) for c in ("variance_entropy", "sparsity", "n_filters"))
    for margin in SENSITIVITY_MARGINS:
        rnd = np.array([degeneration.random_like(a, int(b), margin) for a, b in zip(h, n)], dtype=bool)
        for rule in SENSITIVITY_RULES:
            low = np.array([degeneration.low_diversity_sparse(a, b, p.low_diversity_entropy, p.low_diversity_sparsity,
                                                              rule) for a, b in zip(h, s)], dtype=bool)
            rows.append({"margin": margin, "low_diversity_rule": rule, "layers": len(layers),
                         "random_like": int(rnd.sum()), "low_diversity_sparse": int(low.sum()),
                         "degenerate": int((rnd | low).sum()),
                         "share_degenerate": float((rnd | low).mean()) if len(layers) else None})
    return pd.DataFrame(rows)


def _shares(stats: pd.DataFrame) -> dict:
    return {"layers": int(len(stats)), "models": int(stats["model_id"].nunique()),
            "filters": int(stats["n_filters"].sum()),
            "share_degenerate_layers": _mean(stats["is_degenerate"]),
            "share_random_like_layers": _mean(stats["is_random_like"]),
            "share_low_diversity_sparse_layers": _mean(stats["is_low_diversity_sparse"])}


def headline(stats: pd.DataFrame, in_pop: np.ndarray, pop, basis, control_bases: dict, results, n_rows: int,
             n_models: int, p) -> dict:
    """The numbers of ``metrics.json``; every share and mean is over the population's layers,
    the controls' beside."""
    ratio = basis.explained_variance_ratio
    part = stats[in_pop]
    out = {
        "population": p.population,
        "release": {"filters": int(n_rows), "layers": int(len(stats)), "models": int(n_models)},
        **_shares(part),
        "mean_variance_entropy_norm": _mean(part["variance_entropy_norm"]),
        "mean_sparsity": _mean(part["sparsity"]),
        "mean_orthogonality": _mean(part["orthogonality"]),
        "explained_variance_ratio_top1": float(ratio[0]),
        "explained_variance_ratio_top3": float(ratio[:3].sum()),
        "controls": {},
        "drift": {},
    }
    for kind, mask in pop.control_layers.items():
        c = _shares(stats[mask])
        b = control_bases.get(kind)
        if b is not None:
            c["explained_variance_ratio_top1"] = float(b.explained_variance_ratio[0])
            c["explained_variance_ratio_top3"] = float(b.explained_variance_ratio[:3].sum())
        out["controls"][kind] = c
    for r in results:
        d = pd.DataFrame(r.drift, columns=DRIFT_COLUMNS)
        off = d[d.group_a < d.group_b]
        entry = {"groups": len(r.listing), "compared": len(r.grouping.names),
                 "nulls": {n: _f(v) for n, v in zip(r.grouping.names, r.nulls)}}
        if r.grouping.name == CONTROL_GROUPING:
            vs = d[(d.group_a == TRAINED_GROUP) & (d.group_b != TRAINED_GROUP)]
            entry["d_vs_trained"] = {row.group_b: {"d": row.d, "null": row.null_b, "no_evidence": bool(row.no_evidence)}
                                     for row in vs.itertuples()}
        elif r.grouping.name == NULL_PAIRS_GROUPING:
            by_pair = d.set_index(["group_a", "group_b"])
            entry["seed_pairs"] = [{"pair": [a, b], "d": _f(by_pair.loc[(a, b), "d"]),
                                    "d_sc": _f(by_pair.loc[(a, b), "d_sc"])}
                                   for a, b in p.null_pairs if a in r.grouping.names and b in r.grouping.names]
        if len(off):
            top = off.loc[off["d"].idxmax()]
            shifted = off[~off["no_evidence"].astype(bool)]
            entry.update({"max_d": float(top["d"]), "max_pair": f"{top.group_a} vs {top.group_b}",
                          "mean_d": float(off["d"].mean()), "pairs": int(len(off)),
                          "pairs_with_evidence": int(len(shifted))})
        out["drift"][r.grouping.name] = entry
    return _clean(out)


def _f(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def write_all(release_dir: Path, reports_dir: Path, labels, pop, metrics: list[dict], basis, control_bases: dict,
              results, p, n_rows: int, renderer: Renderer | None = None) -> dict:
    """Write every output; return the headline numbers.

    The figures go to ``renderer`` first (worker processes draw them while this one writes
    the tables and reports, see :mod:`.render`); without one they are drawn here.
    """
    renderer = renderer or Renderer(1)
    table = layer_stats_table(labels, metrics)
    stats = table.to_pandas()
    for flag in ("is_random_like", "is_low_diversity_sparse", "is_degenerate"):
        stats[flag] = stats[flag].astype("float64")  # nullable bool -> 1/0/NaN, so means are shares
    models = labels.models.to_pandas()
    models["population"] = pop.member
    member = stats["model_id"].map(dict(zip(models["model_id"], models["population"])))
    in_pop = pop.layer_in  # stats is in the labels' (model_id, layer_id) order
    reports_dir.mkdir(parents=True, exist_ok=True)
    with atomic_dir(reports_dir / "plots") as plots_tmp:
        _draw_plots(renderer, plots_tmp, stats, member, basis, control_bases, results, p)
        writer.write_table(table, release_dir, "layer_stats")
        _write_tables(reports_dir, stats, models, in_pop, basis, control_bases, results, p)
        renderer.wait()

    head = headline(stats, in_pop, pop, basis, control_bases, results, n_rows, labels.models.num_rows, p)
    atomic_write_text(reports_dir / "metrics.json", _json(head))
    atomic_write_text(reports_dir / "README.md", readme(head, results, p, sensitivity(stats[in_pop], p)))
    return head


def _draw_plots(renderer: Renderer, tmp: Path, stats, member, basis, control_bases: dict, results, p) -> None:
    """Ask for every figure (the costly ones first, so the workers finish together)."""
    for r in results:
        if r.grouping.names:  # nothing compared: nothing to draw
            renderer.draw(plots.coefficient_distributions, r, basis, tmp / f"coefficients_{r.grouping.name}.png")
    for r in results:
        if r.grouping.names:
            renderer.draw(plots.drift_heatmap, r, tmp / f"drift_{r.grouping.name}.png", p.ci_level)
    renderer.draw(plots.eigen_images, basis, tmp / "eigen_images.png", f"{p.population} population")
    for kind, b in control_bases.items():
        renderer.draw(plots.eigen_images, b, tmp / f"eigen_images_{kind}.png", f"controls: {kind}")
    renderer.draw(plots.entropy_overview, stats, member, tmp / "entropy_sparsity_vs_depth.png")
    if p.model_plots:
        (tmp / "layers").mkdir()
        for model_id, part in stats.groupby("model_id", sort=True):
            renderer.draw(plots.model_layers, model_id, part, tmp / "layers" / f"{model_id}.png")


def _write_tables(reports_dir: Path, stats, models, in_pop, basis, control_bases: dict, results, p) -> None:
    """model_summary.csv, degeneration_sensitivity.csv, basis/ and drift/."""
    summary = model_summary(stats, models)
    summary.insert(1, "population", summary["model_id"].map(dict(zip(models["model_id"], models["population"]))))
    atomic_write_text(reports_dir / "model_summary.csv", summary.to_csv(index=False))
    atomic_write_text(reports_dir / "degeneration_sensitivity.csv", sensitivity(stats[in_pop], p).to_csv(index=False))

    with atomic_dir(reports_dir / "basis") as tmp:
        (tmp / "global.json").write_text(_json(_clean({"population": p.population, **basis.to_dict()})))
        (tmp / "controls.json").write_text(_json(_clean({k: b.to_dict() for k, b in control_bases.items()})))
        ev = pd.DataFrame({"component": np.arange(1, 10), "explained_variance_ratio": basis.explained_variance_ratio,
                           "cumulative": np.cumsum(basis.explained_variance_ratio)})
        ev.to_csv(tmp / "explained_variance.csv", index=False)
        for r in results:
            doc = {"grouping": r.grouping.name,
                   "groups": {name: (b.to_dict() if b is not None else None) for name, b in r.bases.items()}}
            (tmp / f"{r.grouping.name}.json").write_text(_json(_clean(doc)))

    with atomic_dir(reports_dir / "drift") as tmp:
        groups = []
        for r in results:
            pd.DataFrame(r.drift, columns=DRIFT_COLUMNS).to_csv(tmp / f"{r.grouping.name}.csv", index=False)
            null_of = {n: (_f(v), sp) for n, v, sp in zip(r.grouping.names, r.nulls, r.null_split)}
            for row in r.listing:
                null, split = null_of.get(row["group"], (None, None))
                groups.append({**row, "null": null, "null_split": split})
        pd.DataFrame(groups, columns=GROUP_COLUMNS).to_csv(tmp / "group-list.csv", index=False)


def readme(head: dict, results, p, sens: pd.DataFrame) -> str:
    """What each file of ``reports/`` shows, with the headline numbers and their population."""
    ev = head["explained_variance_ratio_top3"]
    rel = head["release"]
    lines = [
        "# Analysis of the filter database",
        "",
        f"The release holds {rel['filters']:,} filters of shape 3x3 in {rel['layers']:,} layers of {rel['models']} models.",
        f"Every number below is over the **{head['population']} population** ({head['models']} models, "
        f"{head['layers']:,} layers, {head['filters']:,} filters) unless it says otherwise; the controls "
        "(initialisations and trained-here runs still near their initialisation) are reported beside, never pooled.",
        "Definitions: SPEC.md section 5, and the docstrings of `cnn_filter_db.analysis`; parameters: the "
        "`analyze` group of params.yaml.",
        "",
        "## Headline numbers",
        "",
        f"- Degenerated layers: {_pct(head['share_degenerate_layers'])} "
        f"(random-like {_pct(head['share_random_like_layers'])}, "
        f"low-diversity and sparse {_pct(head['share_low_diversity_sparse_layers'])}).",
        f"- Mean normalised variance entropy {_num(head['mean_variance_entropy_norm'])}, "
        f"mean sparsity {_num(head['mean_sparsity'])}, mean orthogonality {_num(head['mean_orthogonality'])}.",
        f"- The first eigen-image explains {_pct(head['explained_variance_ratio_top1'])} and the first three "
        f"{_pct(ev)} of the variance of shape-normalised filters.",
    ]
    for kind, c in head["controls"].items():
        lines.append(f"- Controls, {kind} ({c['models']} models, {c['layers']:,} layers): random-like "
                     f"{_pct(c['share_random_like_layers'])}; first three eigen-images "
                     f"{_pct(c.get('explained_variance_ratio_top3'))} of their own variance.")
    lines += [
        "",
        "## Degeneration thresholds and their sensitivity",
        "",
        f"`is_random_like` is H >= TH(n) - margin with margin {p.random_like_margin} here; TH(n) is the authors' "
        "threshold of random layers, near the 1st-8th percentile of the H of Gaussian layers. "
        f"`is_low_diversity_sparse` (H < {p.low_diversity_entropy} and S >= {p.low_diversity_sparsity}) is this "
        "project's choice. Layers of the population flagged under other settings "
        "(`degeneration_sensitivity.csv`):",
        "",
        "| margin | low-diversity rule | random-like | low-diversity-sparse | degenerate |",
        "|---|---|---|---|---|",
    ]
    for row in sens.itertuples():
        lines.append(f"| {row.margin} | {row.low_diversity_rule} | {row.random_like} | {row.low_diversity_sparse} | "
                     f"{row.degenerate} of {row.layers} |")
    lines += [
        "",
        "## Files",
        "",
        "- `metrics.json`: these numbers (DVC metrics).",
        "- `model_summary.csv`: one row a model (every model, with its `population`: trained or control, and its "
        "`training` label): share of degenerated layers, mean normalised entropy, sparsity, orthogonality.",
        "- `degeneration_sensitivity.csv`: flagged layers of the population for margins 0, 0.02, 0.05 and the AND "
        "and OR forms of the low-diversity rule.",
        "- `basis/global.json`: the population's mean filter, 9 eigen-images (rows of `components`, row-major 3x3) "
        "and their `explained_variance_ratio`; `basis/controls.json`: the same for each kind of control; "
        "`basis/<grouping>.json`: per group; `basis/explained_variance.csv`: the population's ratios (DVC plot).",
        "- `drift/<grouping>.csv`: D between every ordered pair of compared groups (symmetric, 0 on the diagonal), "
        f"its {int(p.ci_level * 100)}% bootstrap interval (`d_lo`, `d_hi`; models resampled with Poisson(1) "
        f"weights, {p.bootstrap} replicates; null when a group has fewer than 2 models), each group's null "
        "(`null_a`, `null_b`: D between two random halves of the group), `no_evidence` (D does not exceed the larger "
        "null, or its interval reaches it), and `d_sc`: the median D over "
        f"{p.size_control_draws} draws with every group reduced to `sc_target` filters, with the interval of the "
        "same draws.",
        f"- `drift/group-list.csv`: every group, its filters and models; groups under {p.min_group_filters} filters or "
        f"{p.min_group_models} models are listed, not compared (`compared` false).",
        f"- `drift/{CONTROL_GROUPING}.csv`: each control model against the trained population, in the population's "
        f"basis; `drift/{NULL_PAIRS_GROUPING}.csv`: D between two runs of one recipe with two seeds (a second null).",
        "- `plots/eigen_images*.png`: eigen-images of the population and of each kind of control, with variance shares.",
        "- `plots/drift_<grouping>.png`: D heatmaps (all filters, size-controlled); pairs without evidence greyed.",
        "- `plots/coefficients_<grouping>.png`: distribution of each eigen-image coefficient per group.",
        "- `plots/entropy_sparsity_vs_depth.png`: every layer's normalised entropy and sparsity against "
        "relative depth, the trained population against the controls.",
        "- `plots/layers/<model_id>.png`: the same per model, degenerated layers marked.",
        "",
        "## Drift, per grouping",
        "",
        "| grouping | groups (compared) | pairs with evidence of a shift | max D | between | nulls (min-max) |",
        "|---|---|---|---|---|---|",
    ]
    for name, d in head["drift"].items():
        nulls = [v for v in d["nulls"].values() if v is not None]
        span = f"{min(nulls):.4f}-{max(nulls):.4f}" if nulls else "-"
        if "max_d" in d:
            lines.append(f"| {name} | {d['groups']} ({d['compared']}) | {d['pairs_with_evidence']} of {d['pairs']} | "
                         f"{d['max_d']:.4f} | {d['max_pair']} | {span} |")
        else:
            lines.append(f"| {name} | {d['groups']} ({d['compared']}) | - | - | - | {span} |")
    ctrl = head["drift"].get(CONTROL_GROUPING, {}).get("d_vs_trained")
    if ctrl:
        lines += ["", "## Controls against the trained population", "", "| control | D | its null | evidence |",
                  "|---|---|---|---|"]
        for model, v in ctrl.items():
            lines.append(f"| {model} | {_num4(v['d'])} | {_num4(v['null'])} | {'no' if v['no_evidence'] else 'yes'} |")
    seeds = head["drift"].get(NULL_PAIRS_GROUPING, {}).get("seed_pairs")
    if seeds:
        lines += ["", "## Second null: two seeds of one recipe", ""]
        for s_ in seeds:
            lines.append(f"- D({s_['pair'][0]}, {s_['pair'][1]}) = {_num4(s_['d'])} (size-controlled "
                         f"{_num4(s_['d_sc'])}): a D between groups that is not well above this is within what "
                         "retraining with another seed changes.")
    lines += ["", "## Parameters of this run", "", "```yaml",
              yaml.safe_dump({"analyze": p.to_dict()}, sort_keys=False).rstrip(), "```"]
    return "\n".join(lines) + "\n"


def _num4(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"
