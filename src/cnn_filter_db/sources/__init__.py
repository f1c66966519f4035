"""Where weight bytes come from: one module a source kind, each registering itself.

A kind is a :class:`SourceKind`: the pydantic model of an entry's ``source`` mapping (the
catalog builds its entry model from the registered ones), its URI, and either a ``fetch``
of a pinned file (pypi, url, hf: the file is then read by the reader of the entry's format)
or a ``build`` that returns the convolutions directly (timm, train). ``catalog add`` finds
the kind of a spec through ``parse_spec``. Adding a kind is adding one module here.

Functions take a catalog entry (anything with ``model_id``, ``format`` and ``source``);
this package does not import the catalog, which imports it.
"""
from __future__ import annotations

import functools
import os
import pkgutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .. import config, formats
from ..cache import Cache
from ..errors import CnnFilterDbError, SourceError
from ..loaded import Loaded

__all__ = ["KINDS", "Loaded", "SourceKind", "fetch_file", "has_file", "kinds", "load", "parse_spec",
           "register", "source_uri"]


@dataclass(frozen=True)
class SourceKind:
    """One kind of ``source`` of a catalog entry.

    ``model``: the strict pydantic model of the ``source`` mapping (with ``kind: Literal[name]``).
    ``uri(source, model_id)``: where the weights come from, as published in the models table.
    ``fetch(source, cache)``: the pinned file into the cache (file kinds).
    ``download(mapping, cache)``: the file of a new, unpinned source, stored under whatever
    sha256 it has (``catalog add`` learns the pin this way); None where there is no file.
    ``build(source, model_id, cache_dir, **options)``: the model's convolutions (generated kinds).
    ``spec_prefix`` and ``parse_spec(rest)``: how ``catalog add`` names this kind
    (``pypi:...``); a kind without a prefix is tried on any spec no prefixed kind claimed.
    """

    name: str
    model: type
    uri: Callable[[Any, str], str]
    fetch: Callable[[Any, Cache], Path] | None = None
    download: Callable[[dict, Cache], Path | None] | None = None
    build: Callable[..., Loaded] | None = None
    spec_prefix: str | None = None
    parse_spec: Callable[[str], dict | None] | None = None
    spec_help: str = ""


#: kind name -> SourceKind, filled by the modules of this package on import.
KINDS: dict[str, SourceKind] = {}


def register(kind: SourceKind) -> SourceKind:
    KINDS[kind.name] = kind
    return kind


@functools.cache
def _import_kind_modules() -> None:
    # every module of this package is a kind (as formats/ loads its readers)
    for info in pkgutil.iter_modules(__path__):
        __import__(f"{__name__}.{info.name}")


def kinds() -> dict[str, SourceKind]:
    """Every registered kind: each module of this package registers its own on import."""
    _import_kind_modules()
    return KINDS


def kind_of(name: str) -> SourceKind:
    try:
        return kinds()[name]
    except KeyError:
        raise SourceError(f"unknown source kind {name!r}; known: {', '.join(sorted(kinds()))}") from None


def source_uri(entry) -> str:
    return kind_of(entry.source.kind).uri(entry.source, entry.model_id)


def has_file(entry) -> bool:
    """Whether the entry's weights are a file pinned by the entry itself (not built by the
    pipeline, nor pinned on first build in catalog/lock.yaml)."""
    return kind_of(entry.source.kind).fetch is not None and not pinned.needs_lock(entry)


def parse_spec(spec: str) -> dict:
    """The ``source`` mapping that ``catalog add SPEC`` names (without its pin)."""
    prefixed = [k for k in kinds().values() if k.spec_prefix and k.parse_spec]
    for kind in prefixed:
        if spec.startswith(kind.spec_prefix):
            return kind.parse_spec(spec[len(kind.spec_prefix):])
    for kind in kinds().values():
        if kind.parse_spec and not kind.spec_prefix:
            found = kind.parse_spec(spec)
            if found is not None:
                return found
    forms = ", ".join(k.spec_help for k in kinds().values() if k.spec_help)
    raise SourceError(f"{spec!r}: no such file, and not a source spec; expected one of: {forms}")


def trusted_pickle_pin(entry) -> str | None:
    """The sha256 pin under which a reader may unpickle (the original release's /meta), or None.

    An entry's own sha256 proves nothing here: whoever wrote the entry chose both the file
    and its hash. Only a hash the *user* trusts, listed in ``$CNN_FILTER_DB_TRUSTED_PICKLE_SHA256``
    (comma-separated; ``import-original --sha256`` is the other way in), unlocks it.
    """
    trusted = {s.strip() for s in os.environ.get(config.TRUSTED_PICKLE_ENV, "").split(",") if s.strip()}
    sha = getattr(entry.source, "sha256", None)
    return sha if sha in trusted else None


def member_of(entry) -> str | None:
    """The model inside a multi-model file, named by a ``#model=...`` fragment of a url source
    (the ``hdf5-original`` release holds hundreds of models in one file)."""
    url = getattr(entry.source, "url", None)
    if url is None:
        return None
    values = urllib.parse.parse_qs(urllib.parse.urlparse(url).fragment).get("model")
    return values[0] if values else None


def fetch_file(entry, cache_dir: Path | None = None, root: Path = Path(".")) -> Path:
    """The entry's weights file in the cache, fetched and checked against its sha256 (or, for
    registry weights named without one, against their pin in catalog/lock.yaml under ``root``)."""
    cache = Cache(cache_dir or config.default_cache_dir())
    if pinned.needs_lock(entry):
        return pinned.fetch(entry, cache, root)
    kind = kind_of(entry.source.kind)
    if kind.fetch is None:
        raise SourceError(f"{entry.model_id}: source kind {kind.name!r} has no file to fetch")
    try:
        return kind.fetch(entry.source, cache)
    except CnnFilterDbError as exc:
        raise type(exc)(f"{entry.model_id}: {exc}") from None


def load(entry, cache_dir: Path | None = None, root: Path = Path("."), **options) -> Loaded:
    """Fetch or build the entry's weights and read its convolutions.

    ``root``: where catalog/lock.yaml lives, for registry weights pinned there. ``options``
    go to the kind's ``build`` (for ``train``: profile, reports_dir, hub_ids, num_threads,
    device, progress).
    """
    kind = kind_of(entry.source.kind)
    locked = pinned.needs_lock(entry)
    if kind.build is not None and not locked:
        return kind.build(entry.source, entry.model_id, cache_dir=cache_dir, **options)
    path = fetch_file(entry, cache_dir, root)
    uri = kind.uri(entry.source, entry.model_id)
    try:
        convs = formats.read(path, entry.format, member=member_of(entry), sha256=trusted_pickle_pin(entry),
                             layer_classes=entry.keras_layer_classes or None)
    except CnnFilterDbError as exc:
        # name the file as the user knows it, not by its place in the cache
        raise type(exc)(f"{entry.model_id}: {str(exc).replace(str(path), uri)}") from None
    return Loaded(convs, path.name if locked else entry.source.sha256, uri, path)


# registry weights pinned in catalog/lock.yaml; imported last: it uses the kinds above
from . import pinned  # noqa: E402
