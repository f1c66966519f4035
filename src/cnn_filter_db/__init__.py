"""cnn-filter-db: a versioned dataset of trained 3x3 CNN filters and its tooling."""
from __future__ import annotations

__version__ = "0.1.0"
