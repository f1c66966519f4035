"""cnn-filter-db: a versioned dataset of trained 3x3 CNN filters and its tooling."""
from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name):
    # lazy: ``import cnn_filter_db`` stays light for the command line
    if name == "load_layer":
        from .load import load_layer

        return load_layer
    raise AttributeError(f"module 'cnn_filter_db' has no attribute {name!r}")


__all__ = ["load_layer", "__version__"]
