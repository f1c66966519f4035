"""cnn-filter-db: a versioned dataset of trained 3x3 CNN filters and its tooling.

Reading needs only numpy, pyarrow and huggingface_hub (``pip install cnn-filter-db``)::

    from cnn_filter_db import load_layer, load_model, load_filters
"""
from __future__ import annotations

from importlib import metadata

try:
    # the one version source is pyproject.toml, read back from the installed metadata
    __version__ = metadata.version("cnn-filter-db")
except metadata.PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

_READERS = ("load_layer", "load_model", "load_filters")


def __getattr__(name):
    # lazy: ``import cnn_filter_db`` (and the command line's start) imports neither numpy nor pyarrow
    if name in _READERS:
        from . import load

        return getattr(load, name)
    raise AttributeError(f"module 'cnn_filter_db' has no attribute {name!r}")


__all__ = [*_READERS, "__version__"]
