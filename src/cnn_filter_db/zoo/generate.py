"""``cnn-filter-db catalog generate timm|torchvision``: one catalog entry per pretrained
weight of the registry, each file marked as generated (see :mod:`.generated_file`)."""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .. import config
from . import generated_file, registries


@dataclass
class Report:
    outcomes: Counter = field(default_factory=Counter)
    skipped: dict[str, str] = field(default_factory=dict)  # model_id -> why there is no entry
    refused: list[str] = field(default_factory=list)  # generated files edited by hand
    seconds: float = 0.0


def dump(entry: dict) -> str:
    return yaml.safe_dump(entry, sort_keys=False, width=100, allow_unicode=True)


def generate(registry: str, root: Path = Path("."), pattern: str = "*", progress=None) -> Report:
    """Write (or refresh) the entries of ``registry``; remove generated, untouched entries of
    that set the registry no longer lists (only when generating the whole registry)."""
    if registry not in registries.SETS:
        raise ValueError(f"registry: expected one of {', '.join(registries.SETS)}, got {registry!r}")
    start = time.perf_counter()
    models_dir = Path(root) / config.MODELS_DIR
    models_dir.mkdir(parents=True, exist_ok=True)
    report = Report()
    items = (registries.timm_entries(pattern, progress) if registry == "timm"
             else registries.torchvision_entries(pattern, progress))
    produced = set()
    for mid, entry, why in items:
        if entry is None:
            report.skipped[mid] = why
            continue
        produced.add(mid)
        path = models_dir / f"{mid}.yaml"
        outcome = generated_file.write(path, dump(entry), registry)
        report.outcomes[outcome] += 1
        if outcome == "refused-edited":
            report.refused.append(str(path))
    if pattern == "*":
        for path in models_dir.glob("*.yaml"):
            if path.stem in produced or generated_file.state(path) != "generated":
                continue
            if (yaml.safe_load(path.read_text()) or {}).get("set") == registry:
                path.unlink()
                report.outcomes["removed"] += 1
    report.seconds = time.perf_counter() - start
    return report
