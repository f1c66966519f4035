"""``train.loop.plot_curve``: the training curve PNG.

Two kinds of expectation: facts read from the PNG with numpy (its size in pixels, which
colours it holds and where the best-epoch line is), and a reference drawing made here with
matplotlib's own API from the figure this test specifies (6 x 3.6 inches at 100 dpi; train
loss in tab:blue and validation accuracy in tab:orange on a twin axis, both with 3-point
circle markers; axis labels; integer epoch ticks; a grey dashed line of width 1 at the best
epoch; a 9-point title naming the best epoch and the test accuracy to 4 decimals; tight
layout): the PNG must equal it pixel for pixel (same matplotlib, same machine).
"""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.ticker import MaxNLocator

from cnn_filter_db.train.loop import plot_curve

HISTORY = [{"epoch": 1, "train_loss": 2.0, "val_accuracy": 0.30},
           {"epoch": 2, "train_loss": 1.2, "val_accuracy": 0.55},
           {"epoch": 3, "train_loss": 0.9, "val_accuracy": 0.61},
           {"epoch": 4, "train_loss": 0.8, "val_accuracy": 0.58}]


def reference(history, title: str) -> np.ndarray:
    """The specified figure, drawn here (``title`` is the whole title, written out by each test)."""
    fig = Figure(figsize=(6, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], color="tab:blue", marker="o", ms=3)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("train loss", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(epochs, [h["val_accuracy"] for h in history], color="tab:orange", marker="o", ms=3)
    ax2.set_ylabel("validation accuracy", color="tab:orange")
    return fig, ax, ax2


def png_of(fig) -> np.ndarray:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    buf.seek(0)
    return imread(buf, format="png")


def drawn(history, title, best=None):
    fig, ax, ax2 = reference(history, title)
    if best:
        ax2.axvline(best, color="grey", ls="--", lw=1)
    ax.set_title(title, fontsize=9)
    return png_of(fig)


def test_the_curve_is_a_600_by_360_png_written_where_asked(tmp_path):
    out = tmp_path / "reports" / "training" / "m.png"          # folders that do not exist yet
    got = plot_curve(HISTORY, out, "m", best_epoch=3, test_accuracy=0.6)
    assert got == out and out.is_file()
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])           # the IHDR chunk: 6 x 100, 3.6 x 100
    assert (width, height) == (600, 360)
    assert not [p.name for p in out.parent.iterdir() if p.name != "m.png"]   # no temporary file left
    plot_curve(HISTORY, out, "m again")                         # the folder exists now: overwritten
    assert out.read_bytes() != data


def test_the_curve_draws_both_series_in_their_colours_and_the_best_epoch_line(tmp_path):
    img = imread(plot_curve(HISTORY, tmp_path / "c.png", "m", best_epoch=3))[..., :3]
    rgb = (img * 255).round().astype(int)

    def count(hex_colour):
        want = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
        return int((np.abs(rgb - want).max(axis=2) <= 8).sum())

    assert count("#1f77b4") > 100 and count("#ff7f0e") > 100     # tab:blue, tab:orange
    grey = np.abs(rgb - 128).max(axis=2) <= 8                   # "grey" is #808080
    columns = grey.sum(axis=0)
    assert columns.max() > 50                                   # a vertical line
    assert 0 < (grey[:, columns.argmax()]).sum() < 0.8 * 360     # dashed: gaps along it
    assert count("#808080") == int(grey.sum())
    plain = imread(plot_curve(HISTORY, tmp_path / "p.png", "m"))[..., :3]
    plain_grey = np.abs((plain * 255).round() - 128).max(axis=2) <= 8
    assert plain_grey.sum(axis=0).max() < 50                     # no best epoch given: no line


@pytest.mark.parametrize("best,test_accuracy,title", [
    (3, 0.61234, "resnet (best epoch 3, test 0.6123)"),         # 4 decimals
    (3, None, "resnet (best epoch 3)"),
    (None, 0.5, "resnet"),                                      # no best epoch: the title alone
    (0, None, "resnet"),                                        # epoch 0 means none
])
def test_the_curve_equals_the_specified_figure(tmp_path, best, test_accuracy, title):
    got = imread(plot_curve(HISTORY, tmp_path / "r.png", "resnet", best_epoch=best, test_accuracy=test_accuracy))
    want = drawn(HISTORY, title, best)
    assert got.shape == want.shape and np.array_equal(got, want)


def test_integer_epoch_ticks_on_a_two_epoch_curve(tmp_path):
    """Two epochs: matplotlib's default locator would put ticks at 1.0, 1.2, ..., 2.0."""
    two = HISTORY[:2]
    got = imread(plot_curve(two, tmp_path / "t.png", "t", best_epoch=2))
    assert np.array_equal(got, drawn(two, "t (best epoch 2)", 2))


def test_the_curve_ignores_the_users_matplotlib_settings(tmp_path):
    """Another default dpi, colour cycle and save format (a matplotlibrc could set them): the
    same PNG, since the figure names its size, dpi, colours and format."""
    import matplotlib
    from cycler import cycler

    default = imread(plot_curve(HISTORY, tmp_path / "a.png", "m", best_epoch=2))
    with matplotlib.rc_context({"figure.dpi": 50, "axes.prop_cycle": cycler(color=["black", "green"]),
                                "savefig.format": "svg"}):
        out = plot_curve(HISTORY, tmp_path / "b.png", "m", best_epoch=2)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(imread(out), default)
