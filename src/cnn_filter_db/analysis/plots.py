"""PNG figures of the analysis (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.colors
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..params import AnalyzeParams  # noqa: E402
from . import drift  # noqa: E402
from .population import CONTROL, TRAINED  # noqa: E402


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=100)
    plt.close(fig)


#: Smallest font of any figure (points).
FONT = 8


def eigen_images(basis, path: Path, population: str = "") -> None:
    """The mean filter and the 9 eigen-images of a basis on one colour scale (with its bar),
    each titled with its share of the variance."""
    fig, axes = plt.subplots(1, 10, figsize=(17, 2.6), layout="constrained")
    lim = max(float(np.abs(basis.components).max()), float(np.abs(basis.mean).max())) or 1.0
    im = axes[0].imshow(basis.mean.reshape(3, 3), cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[0].set_title("mean filter", fontsize=9)
    for k in range(9):
        ax = axes[k + 1]
        ax.imshow(basis.components[k].reshape(3, 3), cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"#{k + 1}: {100 * basis.explained_variance_ratio[k]:.1f}%", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(im, ax=list(axes), fraction=0.012, pad=0.01)
    bar.ax.tick_params(labelsize=FONT)
    bar.set_label("weight", fontsize=FONT)
    where = f" ({population})" if population else ""
    fig.suptitle(f"Eigen-images of {basis.count:,} shape-normalised filters{where}: share of variance above each",
                 fontsize=10)
    _save(fig, path)


def _matrix(rows, names, key):
    pos = {n: i for i, n in enumerate(names)}
    m = np.full((len(names), len(names)), np.nan)
    for r in rows:
        v = r[key]
        m[pos[r["group_a"]], pos[r["group_b"]]] = np.nan if v is None else v
    return m


def drift_heatmap(result, path: Path, ci_level: float = AnalyzeParams.ci_level) -> None:
    """D between the compared groups of one grouping, and the size-controlled D, on one colour
    scale; pairs without evidence of a shift (D within the larger null) greyed and hatched."""
    names = result.grouping.names
    g = len(names)
    rows = result.drift
    panels = [("d", "d_lo", "d_hi", "D (all filters)")]
    if rows and rows[0]["d_sc"] is not None:
        panels.append(("d_sc", "d_sc_lo", "d_sc_hi", f"D, size-controlled ({result.sub_target:,} filters a group)"))
    mats = [(_matrix(rows, names, k), _matrix(rows, names, lo), _matrix(rows, names, hi), t) for k, lo, hi, t in panels]
    none = _matrix([{**r, "no_evidence": float(r["no_evidence"])} for r in rows], names, "no_evidence") == 1
    off = ~np.eye(g, dtype=bool)
    values = np.concatenate([m[off & np.isfinite(m)] for m, _, _, _ in mats]) if g > 1 else np.zeros(1)
    vmax = float(values.max()) if len(values) and values.max() > 0 else 1.0
    size = max(4.5, 0.75 * g + 2.5)
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels) + 1.5, size + 1.2), squeeze=False,
                             layout="constrained")
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    im = None
    for ax, (m, lo, hi, title) in zip(axes[0], mats):
        shown = np.where(off, m, np.nan)
        im = ax.imshow(np.where(none, np.nan, shown), cmap=cmap, vmin=0, vmax=vmax)
        grey = np.where(none & off, 1.0, np.nan)
        ax.imshow(grey, cmap=matplotlib.colors.ListedColormap(["#cfcfcf"]), vmin=0, vmax=1)
        ax.set_xticks(range(g), names, rotation=60, ha="right", fontsize=FONT)
        ax.set_yticks(range(g), names, fontsize=FONT)
        ax.set_title(title, fontsize=10)
        if g <= 10:
            for a in range(g):
                for b in range(g):
                    if a == b or not np.isfinite(m[a, b]):
                        continue
                    text = f"{m[a, b]:.3f}"
                    if np.isfinite(lo[a, b]):
                        text += f"\n[{lo[a, b]:.3f}, {hi[a, b]:.3f}]"
                    dark = not none[a, b] and m[a, b] < 0.6 * vmax
                    ax.text(b, a, text, ha="center", va="center", fontsize=FONT,
                            color="white" if dark else "black")
    bar = fig.colorbar(im, ax=list(axes[0]), fraction=0.03, pad=0.02)
    bar.set_label("D (nats)", fontsize=FONT)
    bar.ax.tick_params(labelsize=FONT)
    fig.suptitle(f"Drift between {result.grouping.name} groups, {100 * ci_level:.0f}% intervals; grey: no evidence "
                 "of a shift (D within a group's null)", fontsize=10)
    _save(fig, path)


def coefficient_distributions(result, basis, path: Path) -> None:
    """Each eigen-image coefficient's distribution per group (density, log scale)."""
    lo, hi = result.value_range
    bins = result.hist.shape[-1]
    edges = drift.bin_edges(lo, hi, bins)
    centres = (edges[:-1] + edges[1:]) / 2
    width = (hi - lo) / bins if hi > lo else 1.0
    fig, axes = plt.subplots(3, 3, figsize=(13, 10), sharex=True)
    # fixed spacing: a layout engine costs more than the drawing here
    fig.subplots_adjust(left=0.07, right=0.80, bottom=0.07, top=0.92, hspace=0.3, wspace=0.25)
    names = result.grouping.names
    cmap = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    handles = []
    for k, ax in enumerate(axes.ravel()):
        top = 0.0
        for gi, name in enumerate(names):
            h = result.hist[gi, k]
            if h.sum() == 0:
                continue
            dens = h / (h.sum() * width)
            top = max(top, float(dens.max()))
            line, = ax.plot(centres, np.where(dens > 0, dens, np.nan), lw=1.2, color=cmap(gi % cmap.N), label=name)
            if k == 0:
                handles.append(line)
        ax.set_yscale("log")
        # a fixed floor and no minor ticks: matplotlib's automatic log ticks are slow to lay out
        ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.tick_params(labelsize=FONT)
        if top > 0:
            ax.set_ylim(top * 1e-5, top * 2)
        ax.set_title(f"coefficient {k + 1} ({100 * basis.explained_variance_ratio[k]:.1f}% of variance)", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("coefficient value", fontsize=9)
    for ax in axes[:, 0]:
        ax.set_ylabel("density (log)", fontsize=9)
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.81, 0.5), fontsize=9,
               title=result.grouping.name, title_fontsize=9, frameon=False)
    fig.suptitle(f"Eigen-image coefficients by {result.grouping.name}", fontsize=11)
    _save(fig, path)


def entropy_overview(stats, member, path: Path) -> None:
    """Normalised entropy and sparsity of every layer against depth; trained population vs controls."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    for value, colour, label in ((TRAINED, "tab:blue", "trained population"), (CONTROL, "tab:orange", "controls")):
        part = stats[(member == value).to_numpy()]
        axes[0].scatter(part["conv_depth_norm"], part["variance_entropy_norm"], s=6, alpha=0.5, c=colour, label=label)
        axes[1].scatter(part["conv_depth_norm"], part["sparsity"], s=6, alpha=0.5, c=colour, label=label)
    axes[0].axhline(1.0, color="grey", lw=0.8, ls="--")
    axes[0].set_ylabel("variance entropy / TH(n)")
    axes[1].set_ylabel("sparsity")
    for ax in axes:
        ax.set_xlabel("relative depth (conv_depth_norm)")
        ax.legend(fontsize=FONT)
        ax.tick_params(labelsize=FONT)
    fig.suptitle("Per-layer normalised entropy and sparsity against depth", fontsize=10)
    _save(fig, path)


def model_layers(model_id: str, part, path: Path) -> None:
    """One model: normalised entropy and sparsity per layer against depth, degenerated marked."""
    part = part.sort_values(["conv_depth_norm", "layer_id"])
    fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
    x = part["conv_depth_norm"].to_numpy(float)
    ax.plot(x, part["variance_entropy_norm"].to_numpy(float), "o-", ms=3, lw=1, label="entropy / TH(n)")
    ax.plot(x, part["sparsity"].to_numpy(float), "s-", ms=3, lw=1, label="sparsity")
    deg = part["is_degenerate"].to_numpy(float) == 1
    if deg.any():
        ax.scatter(x[deg], part["variance_entropy_norm"].to_numpy(float)[deg], marker="x", s=60, c="red",
                   label="degenerated", zorder=3)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("relative depth (conv_depth_norm)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=FONT)
    ax.set_title(f"{model_id}: {len(part)} layers, {int(deg.sum())} degenerated", fontsize=9)
    _save(fig, path)
