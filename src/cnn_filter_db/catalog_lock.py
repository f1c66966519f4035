"""catalog/lock.yaml: the weight pins of generated entries, recorded on their first build.

A generated entry (a timm pretrained tag, a torchvision weights enum) names its weights by
registry name only. The first build online records what it got: the Hub commit (timm) or
the URL (torchvision) and the sha256 of each weight file. Every later build fetches that
exact revision and refuses a file whose sha256 differs, naming the entry.
"""
from __future__ import annotations

from pathlib import Path

from .catalog import parse_all
from .errors import CatalogError
from .sources.pinned import HEADER, load_lock, locked_source, needs_lock, record  # noqa: F401 (the lock's API)


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
