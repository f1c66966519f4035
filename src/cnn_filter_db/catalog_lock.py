"""catalog/lock.yaml: the weight pins of generated entries, recorded on their first build.

A generated entry (a timm pretrained tag, a torchvision weights enum) names its weights by
registry name only. The first build online records what it got: the Hub commit (timm) or
the URL (torchvision) and the sha256 of each weight file. Every later build fetches that
exact revision and refuses a file whose sha256 differs, naming the entry.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from . import config
from .atomic import atomic_write_text
from .catalog import Entry, parse_all
from .errors import CatalogError

HEADER = ("# Weight pins of generated catalog entries, recorded by their first build and verified by\n"
          "# every later one (`cnn-filter-db catalog lock --check` lists unlocked and stale entries).\n"
          "# Commit this file. Remove an entry's block to let the next build pin it anew.\n")


def needs_lock(entry: Entry) -> bool:
    s = entry.source
    return s.kind == "torchvision" or (s.kind == "timm" and s.pretrained_tag is not None)


def locked_source(entry: Entry) -> str:
    """What a lock record pins: the registry name of the weights (a changed name = stale)."""
    s = entry.source
    if s.kind == "timm":
        return f"timm://{s.architecture}.{s.pretrained_tag}"
    return f"torchvision://{s.weights}"


def load_lock(root: Path = Path(".")) -> dict[str, dict]:
    path = Path(root) / config.LOCK_FILE
    if not path.exists():
        return {}
    try:
        doc = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except yaml.YAMLError as exc:
        raise CatalogError([(str(config.LOCK_FILE), "-", f"not valid YAML ({exc})")]) from None
    models = doc.get("models") or {}
    if not isinstance(models, dict):
        raise CatalogError([(str(config.LOCK_FILE), "models", "expected a mapping model_id -> pin")])
    return models


def record(root: Path, model_id: str, pin: dict) -> None:
    """Add or replace ``model_id``'s pin (written to a temporary name, then renamed)."""
    models = load_lock(root)
    models[model_id] = pin
    text = HEADER + yaml.safe_dump({"models": dict(sorted(models.items()))}, sort_keys=False, width=200)
    atomic_write_text(Path(root) / config.LOCK_FILE, text)


def lock_status(root: Path = Path(".")) -> tuple[list[str], list[tuple[str, str]]]:
    """(unlocked model ids, [(model_id, why)] of stale pins)."""
    entries, problems = parse_all(root)
    if problems:
        raise CatalogError(problems)
    lock = load_lock(root)
    by_id = {e.model_id: e for e in entries}
    unlocked, stale = [], []
    for e in entries:
        if needs_lock(e) and e.model_id not in lock:
            unlocked.append(e.model_id)
    for mid, pin in lock.items():
        e = by_id.get(mid)
        if e is None:
            stale.append((mid, "no catalog entry of this id any more"))
        elif not needs_lock(e):
            stale.append((mid, f"its entry's source ({e.source.kind}) carries its own pin"))
        elif pin.get("source") != locked_source(e):
            stale.append((mid, f"pinned {pin.get('source')}, the entry now names {locked_source(e)}"))
    return sorted(unlocked), sorted(stale)
