"""Progress: without a terminal (DVC, CI, a log file) short lines, not one redrawn line."""
from __future__ import annotations

import io
import time

from cnn_filter_db import config
from cnn_filter_db.progress import bar


def test_log_mode_writes_short_lines():
    out = io.StringIO()  # not a terminal
    for _ in bar(range(50), desc="extract some-model", unit="filter", total=50, file=out, mininterval=0):
        pass
    text = out.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and text.endswith("\n")
    assert len(lines) >= 2 and all(0 < len(line) <= config.PROGRESS_LOG_COLUMNS for line in lines)
    assert lines[-1].startswith("extract some-model: 100%") and "50/50" in lines[-1]


def test_log_mode_is_rate_limited():
    out = io.StringIO()
    start = time.monotonic()
    for _ in bar(range(200_000), file=out):  # the default interval: a few seconds
        pass
    assert time.monotonic() - start < config.PROGRESS_LOG_INTERVAL_S  # a quick loop ...
    assert len(out.getvalue().splitlines()) <= 2  # ... prints its start and end only
