"""Kept for imports written before the cache moved to :mod:`cnn_filter_db.cache` (it sits
below both ``sources`` and ``train``); new code imports it from there."""
from ..cache import Cache, sha256_file  # noqa: F401
