"""The outputs of the analysis: the ``layer_stats`` config of the release, and ``reports/``.

``reports/`` holds ``metrics.json`` (headline numbers, DVC metrics), ``model_summary.csv``
(one row a model), ``basis/`` (``global.json``, one JSON a grouping with each group's basis,
``explained_variance.csv``), ``drift/<grouping>.csv`` (one row an ordered pair of groups,
with intervals and the size-controlled D), ``plots/`` (PNG) and a ``README.md`` that says
what each file shows. Every file is written to a temporary name and renamed; the
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
from . import plots
from .layer import METRIC_COLUMNS

#: Columns of ``drift/<grouping>.csv`` (one row an ordered pair of groups).
DRIFT_COLUMNS = ["grouping", "group_a", "group_b", "d", "d_lo", "d_hi", "d_replicates", "d_sc", "d_sc_lo",
                 "d_sc_hi", "filters_a", "filters_b", "models_a", "models_b", "sc_filters_a", "sc_filters_b",
                 "sc_target"]

SUMMARY_LABELS = ("name", "family", "architecture", "task", "visual_category", "training_dataset",
                  "trained", "format")


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


def headline(stats: pd.DataFrame, basis, results, n_rows: int, n_models: int, trained: pd.Series) -> dict:
    """The numbers of ``metrics.json``."""
    ratio = basis.explained_variance_ratio
    out = {
        "filters": int(n_rows),
        "layers": int(len(stats)),
        "models": int(n_models),
        "share_degenerate_layers": _mean(stats["is_degenerate"]),
        "share_random_like_layers": _mean(stats["is_random_like"]),
        "share_low_diversity_sparse_layers": _mean(stats["is_low_diversity_sparse"]),
        "mean_variance_entropy_norm": _mean(stats["variance_entropy_norm"]),
        "mean_sparsity": _mean(stats["sparsity"]),
        "mean_orthogonality": _mean(stats["orthogonality"]),
        "explained_variance_ratio_top1": float(ratio[0]),
        "explained_variance_ratio_top3": float(ratio[:3].sum()),
        "random_like_share_by_trained": {
            str(k).lower(): _mean(v["is_random_like"]) for k, v in stats.groupby(trained, sort=True)},
        "drift": {},
    }
    for r in results:
        d = pd.DataFrame(r.drift)
        off = d[d.group_a < d.group_b] if len(d) else d
        if len(off):
            top = off.loc[off["d"].idxmax()]
            out["drift"][r.grouping.name] = {"groups": len(r.grouping.names), "max_d": float(top["d"]),
                                             "max_pair": f"{top.group_a} vs {top.group_b}",
                                             "mean_d": float(off["d"].mean())}
        else:
            out["drift"][r.grouping.name] = {"groups": len(r.grouping.names)}
    return _clean(out)


def write_all(release_dir: Path, reports_dir: Path, labels, metrics: list[dict], basis, results, p,
              n_rows: int) -> dict:
    """Write every output; return the headline numbers."""
    table = layer_stats_table(labels, metrics)
    writer.write_table(table, release_dir, "layer_stats")
    stats = table.to_pandas()
    for flag in ("is_random_like", "is_low_diversity_sparse", "is_degenerate"):
        stats[flag] = stats[flag].astype("float64")  # nullable bool -> 1/0/NaN, so means are shares
    models = labels.models.to_pandas()
    trained = stats["model_id"].map(dict(zip(models["model_id"], models["trained"])))
    reports_dir.mkdir(parents=True, exist_ok=True)

    summary = model_summary(stats, models)
    atomic_write_text(reports_dir / "model_summary.csv", summary.to_csv(index=False))

    with atomic_dir(reports_dir / "basis") as tmp:
        (tmp / "global.json").write_text(_json(_clean(basis.to_dict())))
        ev = pd.DataFrame({"component": np.arange(1, 10), "explained_variance_ratio": basis.explained_variance_ratio,
                           "cumulative": np.cumsum(basis.explained_variance_ratio)})
        ev.to_csv(tmp / "explained_variance.csv", index=False)
        for r in results:
            doc = {"grouping": r.grouping.name,
                   "groups": {name: (b.to_dict() if b is not None else None) for name, b in r.bases.items()}}
            (tmp / f"{r.grouping.name}.json").write_text(_json(_clean(doc)))

    with atomic_dir(reports_dir / "drift") as tmp:
        for r in results:
            pd.DataFrame(r.drift, columns=DRIFT_COLUMNS).to_csv(tmp / f"{r.grouping.name}.csv", index=False)

    with atomic_dir(reports_dir / "plots") as tmp:
        plots.eigen_images(basis, tmp / "eigen_images.png")
        plots.entropy_overview(stats, trained, tmp / "entropy_sparsity_vs_depth.png")
        for r in results:
            if not r.grouping.names:  # every label null: nothing to draw
                continue
            plots.drift_heatmap(r, tmp / f"drift_{r.grouping.name}.png", p.ci_level)
            plots.coefficient_distributions(r, basis, tmp / f"coefficients_{r.grouping.name}.png")
        if p.model_plots:
            (tmp / "layers").mkdir()
            for model_id, part in stats.groupby("model_id", sort=True):
                plots.model_layers(model_id, part, tmp / "layers" / f"{model_id}.png")

    head = headline(stats, basis, results, n_rows, labels.models.num_rows, trained)
    atomic_write_text(reports_dir / "metrics.json", _json(head))
    atomic_write_text(reports_dir / "README.md", readme(head, results, p))
    return head


def readme(head: dict, results, p) -> str:
    """What each file of ``reports/`` shows, with the headline numbers."""
    ev = head["explained_variance_ratio_top3"]
    lines = [
        "# Analysis of the filter database",
        "",
        f"{head['filters']:,} filters of shape 3x3 in {head['layers']:,} layers of {head['models']} models.",
        "Definitions: SPEC.md section 5; parameters: the `analyze` group of params.yaml.",
        "",
        "## Headline numbers",
        "",
        f"- Degenerated layers: {_pct(head['share_degenerate_layers'])} "
        f"(random-like {_pct(head['share_random_like_layers'])}, "
        f"low-diversity and sparse {_pct(head['share_low_diversity_sparse_layers'])}).",
        "- Random-like layers by `trained`: "
        + ", ".join(f"{k}: {_pct(v)}" for k, v in head["random_like_share_by_trained"].items()) + ".",
        f"- Mean normalised variance entropy {_num(head['mean_variance_entropy_norm'])}, "
        f"mean sparsity {_num(head['mean_sparsity'])}, mean orthogonality {_num(head['mean_orthogonality'])}.",
        f"- The first three eigen-images explain {_pct(ev)} of the variance of shape-normalised filters.",
        "",
        "## Files",
        "",
        "- `metrics.json`: these numbers (DVC metrics).",
        "- `model_summary.csv`: one row a model: its labels, share of degenerated layers, mean "
        "normalised entropy, sparsity, orthogonality.",
        "- `basis/global.json`: mean filter, the 9 eigen-images (rows of `components`, row-major 3x3) "
        "and their `explained_variance_ratio`; `basis/<grouping>.json`: the same per group; "
        "`basis/explained_variance.csv`: the global ratios (DVC plot).",
        "- `drift/<grouping>.csv`: D between every ordered pair of groups (symmetric, 0 on the diagonal), "
        f"its {int(p.ci_level * 100)}% bootstrap interval (`d_lo`, `d_hi`; models resampled with "
        f"Poisson(1) weights, {p.bootstrap} replicates; null when a group has fewer than 2 models), "
        "and `d_sc`: D on subsamples of equal expected size (`sc_target` filters a group) with its interval.",
        "- `plots/eigen_images.png`: the 9 global eigen-images and their variance shares.",
        "- `plots/drift_<grouping>.png`: D heatmaps (all filters, size-controlled) with intervals.",
        "- `plots/coefficients_<grouping>.png`: distribution of each eigen-image coefficient per group.",
        "- `plots/entropy_sparsity_vs_depth.png`: every layer's normalised entropy and sparsity against "
        "relative depth, trained models against initialisation baselines.",
        "- `plots/layers/<model_id>.png`: the same per model, degenerated layers marked.",
        "",
        "## Drift, largest pair per grouping",
        "",
        "| grouping | groups | max D | between | mean D |",
        "|---|---|---|---|---|",
    ]
    for name, d in head["drift"].items():
        if "max_d" in d:
            lines.append(f"| {name} | {d['groups']} | {d['max_d']:.4f} | {d['max_pair']} | {d['mean_d']:.4f} |")
        else:
            lines.append(f"| {name} | {d['groups']} | - | - | - |")
    lines += ["", "## Parameters of this run", "", "```yaml",
              yaml.safe_dump({"analyze": p.to_dict()}, sort_keys=False).rstrip(), "```"]
    return "\n".join(lines) + "\n"


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"
