"""Progress bars that suit where they are shown: a redrawn bar on a terminal; without one
(under ``dvc repro``, in CI, in a log) a short line at most every few seconds, each ending
in a newline, instead of one line redrawn with carriage returns thousands of times."""
from __future__ import annotations

import sys

from tqdm import tqdm

from . import config


class _Lines:
    """A stream for tqdm that turns each redraw (``\\r`` + status + padding) into one line."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-like stream without isatty
        return False


def bar(iterable=None, *, file=None, **kwargs) -> tqdm:
    """``tqdm(iterable, **kwargs)`` on stderr, in log mode when stderr is not a terminal."""
    stream = file if file is not None else sys.stderr
    if not _is_terminal(stream):
        kwargs.setdefault("mininterval", config.PROGRESS_LOG_INTERVAL_S)
        kwargs["ncols"] = config.PROGRESS_LOG_COLUMNS
        kwargs["ascii"] = True
        kwargs["dynamic_ncols"] = False
        stream = _Lines(stream)
    return tqdm(iterable, file=stream, **kwargs)
