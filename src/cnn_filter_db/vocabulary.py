"""The controlled vocabularies of the catalog (``catalog/vocabulary.yaml``): which fields of an
entry take their values from which list. Kept apart from the entry model so that readers of
the vocabulary alone (the validation suites) do not load the source kinds.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from . import config, strict_yaml
from .errors import CatalogError
from .fields import ONE_LINE

#: Fields whose values must come from catalog/vocabulary.yaml, and the vocabulary list they use.
VOCABULARY_FIELDS = {
    "task": "task",
    "visual_category": "visual_category",
    "family": "family",
    "training_dataset": "dataset",
    "pretraining_dataset": "dataset",
    "license": "license",
    "training_data_license": "license",
    "format": "format",
}
CONV_KINDS = ("dense", "grouped", "depthwise")


@lru_cache(maxsize=8)
def _vocabulary_cached(path: str, mtime: float) -> dict[str, tuple[str, ...]]:
    where = str(config.VOCABULARY_FILE)
    data = strict_yaml.load_file(Path(path), where)
    if not isinstance(data, dict):
        raise CatalogError([(where, "-", "expected a mapping of vocabulary name -> list of values")])
    vocab = {}
    for name, values in data.items():
        if not isinstance(values, list) or not all(isinstance(v, str) and re.fullmatch(ONE_LINE, v) for v in values):
            raise CatalogError([(where, str(name), "expected a list of one-line strings")])
        vocab[str(name)] = tuple(values)
    missing = sorted(set(VOCABULARY_FIELDS.values()) - set(vocab))
    if missing:
        raise CatalogError([(where, missing[0], "required vocabulary is missing")])
    return vocab


def load_vocabulary(root: Path = Path(".")) -> dict[str, tuple[str, ...]]:
    """The vocabulary of the project at ``root``; outside a checkout (an installed wheel run
    from any folder), the packaged one."""
    path = Path(root) / config.VOCABULARY_FILE
    if not path.exists():
        path = config.PACKAGED_VOCABULARY
    if not path.is_file():
        raise CatalogError([(str(config.VOCABULARY_FILE), "-", "file not found")])
    return _vocabulary_cached(str(path.resolve()), path.stat().st_mtime)
