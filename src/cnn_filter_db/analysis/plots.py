"""PNG figures of the analysis (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import drift  # noqa: E402


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=100)
    plt.close(fig)


def eigen_images(basis, path: Path) -> None:
    """The 9 eigen-images of a basis, each titled with its share of the variance."""
    fig, axes = plt.subplots(1, 10, figsize=(16, 2.2), layout="constrained")
    lim = float(np.abs(basis.components).max()) or 1.0
    axes[0].imshow(basis.mean.reshape(3, 3), cmap="RdBu_r", vmin=-1, vmax=1)
    axes[0].set_title("mean", fontsize=9)
    for k in range(9):
        ax = axes[k + 1]
        ax.imshow(basis.components[k].reshape(3, 3), cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"#{k + 1}: {100 * basis.explained_variance_ratio[k]:.1f}%", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Eigen-images of {basis.count:,} shape-normalised filters (share of variance)", fontsize=10)
    _save(fig, path)


def drift_heatmap(result, path: Path, ci_level: float = 0.95) -> None:
    """D between the groups of one grouping, and the size-controlled D; intervals in the cells."""
    names = result.grouping.names
    g = len(names)
    rows = result.drift
    panels = [("d", "d_lo", "d_hi", "D (all filters)")]
    if rows and rows[0]["d_sc"] is not None:
        panels.append(("d_sc", "d_sc_lo", "d_sc_hi", f"D, size-controlled ({result.sub_target:,} filters a group)"))
    size = max(4.0, 0.55 * g + 2)
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels) + 1, size + 1), squeeze=False,
                             layout="constrained")
    for ax, (key, lo_key, hi_key, title) in zip(axes[0], panels):
        m = np.full((g, g), np.nan)
        lo = np.full((g, g), np.nan)
        hi = np.full((g, g), np.nan)
        pos = {n: i for i, n in enumerate(names)}
        for r in rows:
            a, b = pos[r["group_a"]], pos[r["group_b"]]
            m[a, b] = r[key]
            lo[a, b] = np.nan if r[lo_key] is None else r[lo_key]
            hi[a, b] = np.nan if r[hi_key] is None else r[hi_key]
        im = ax.imshow(m, cmap="viridis")
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax.set_xticks(range(g), names, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(g), names, fontsize=7)
        ax.set_title(title, fontsize=9)
        if g <= 12:
            for a in range(g):
                for b in range(g):
                    if a == b:
                        continue
                    text = f"{m[a, b]:.3f}"
                    if np.isfinite(lo[a, b]):
                        text += f"\n[{lo[a, b]:.3f},\n{hi[a, b]:.3f}]"
                    light = np.isfinite(m[a, b]) and m[a, b] > np.nanmax(m) * 0.6
                    ax.text(b, a, text, ha="center", va="center", fontsize=5.5,
                            color="black" if light else "white")
    fig.suptitle(f"Drift between {result.grouping.name} groups ({100 * ci_level:.0f}% bootstrap intervals "
                 f"over models)", fontsize=10)
    _save(fig, path)


def coefficient_distributions(result, basis, path: Path) -> None:
    """Each eigen-image coefficient's distribution per group (smoothed histograms)."""
    lo, hi = result.value_range
    bins = result.hist.shape[-1]
    edges = drift.bin_edges(lo, hi, bins)
    centres = (edges[:-1] + edges[1:]) / 2
    width = (hi - lo) / bins if hi > lo else 1.0
    fig, axes = plt.subplots(3, 3, figsize=(12, 9), sharex=True)
    # fixed spacing: a layout engine costs more than the drawing here
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.05, top=0.92, hspace=0.25, wspace=0.2)
    names = result.grouping.names
    cmap = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    for k, ax in enumerate(axes.ravel()):
        top = 0.0
        for gi, name in enumerate(names):
            h = result.hist[gi, k]
            if h.sum() == 0:
                continue
            dens = h / (h.sum() * width)
            top = max(top, float(dens.max()))
            ax.plot(centres, np.where(dens > 0, dens, np.nan), lw=1, color=cmap(gi % cmap.N), label=name)
        ax.set_yscale("log")
        # a fixed floor and no minor ticks: matplotlib's automatic log ticks are slow to lay out
        ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        if top > 0:
            ax.set_ylim(top * 1e-5, top * 2)
        ax.set_title(f"coefficient {k + 1} ({100 * basis.explained_variance_ratio[k]:.1f}% of variance)", fontsize=9)
    axes[0, 0].legend(fontsize=6, ncol=2 if len(names) > 8 else 1)
    fig.suptitle(f"Eigen-image coefficients by {result.grouping.name} (density, log scale)", fontsize=10)
    _save(fig, path)


def entropy_overview(stats, trained, path: Path) -> None:
    """Normalised entropy and sparsity of every layer against depth; trained vs initialisation."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    for value, colour, label in ((True, "tab:blue", "trained"), (False, "tab:orange", "initialisation")):
        part = stats[trained == value]
        axes[0].scatter(part["conv_depth_norm"], part["variance_entropy_norm"], s=6, alpha=0.5, c=colour, label=label)
        axes[1].scatter(part["conv_depth_norm"], part["sparsity"], s=6, alpha=0.5, c=colour, label=label)
    axes[0].axhline(1.0, color="grey", lw=0.8, ls="--")
    axes[0].set_ylabel("variance entropy / TH(n)")
    axes[1].set_ylabel("sparsity")
    for ax in axes:
        ax.set_xlabel("relative depth (conv_depth_norm)")
        ax.legend(fontsize=8)
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
    ax.legend(fontsize=7)
    ax.set_title(f"{model_id}: {len(part)} layers, {int(deg.sum())} degenerated", fontsize=9)
    _save(fig, path)
