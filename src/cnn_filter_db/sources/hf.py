"""``hf``: a file of a Hugging Face Hub repository at a pinned commit, through ``huggingface_hub``.

Lookup order: our content-addressed cache; the user's Hugging Face cache (no network);
then a download into a temporary folder beside our cache. Every path ends in
:meth:`Cache.put_stream`, so the file is checked against the entry's sha256 before use.

Offline (``HF_HUB_OFFLINE=1``) a missing file fails at once. Online, one metadata request
without retries and with a short timeout (``config.HF_METADATA_TIMEOUT_S``) comes first:
``hf_hub_download`` itself, when its first request fails and no copy is cached, retries five
times with back-off and a 60 s timeout, which is minutes on an unreachable network. Only a
Hub that answered is asked for the file. Error messages never carry a token.
"""
from __future__ import annotations

import inspect
import os
import re
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field

from .. import config
from ..cache import Cache
from ..errors import SourceError
from ..fields import RELATIVE_PATH, SHA256, StrictModel
from . import SourceKind, register

_TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{8,}")
#: ``name`` or ``namespace/name`` as the Hub allows them.
REPO_ID = r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$"
#: A pin is a commit: branches and tags move.
COMMIT = r"^[0-9a-f]{40}$"


class HfSource(StrictModel):
    """A file in a Hugging Face Hub repository at a pinned revision."""

    kind: Literal["hf"]
    repo_id: str = Field(pattern=REPO_ID, description="namespace/name of the Hub repository")
    revision: str = Field(pattern=COMMIT, description="the commit (40 hex digits) the file is pinned at")
    filename: str = Field(pattern=RELATIVE_PATH, max_length=500, description="path of the file in the repository")
    repo_type: Literal["model", "dataset"] = "model"
    sha256: SHA256


def uri(source, model_id: str) -> str:
    return f"hf://{source.repo_id}@{source.revision}/{source.filename}"


def fetch(source, cache: Cache) -> Path:
    """The entry's file in the cache, checked against ``source.sha256``."""
    cached = cache.get(source.sha256)
    if cached:
        return cached
    return download(source, cache)


def download(source, cache: Cache) -> Path:
    """Fetch a Hub file into ``cache``; ``source`` is an HfSource or a mapping with its fields.

    Without a ``sha256`` (``catalog add`` learning the pin) the file is stored under whatever
    hash it has; with one, a mismatch is refused before the file becomes visible.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url, try_to_load_from_cache

    def field(name, default=None):
        return source.get(name, default) if isinstance(source, dict) else getattr(source, name, default)

    repo_id, revision, filename = field("repo_id"), field("revision"), field("filename")
    repo_type, sha256 = field("repo_type") or "model", field("sha256")
    for name, value, pattern in (("repo_id", repo_id, REPO_ID), ("filename", filename, RELATIVE_PATH)):
        if not isinstance(value, str) or not re.fullmatch(pattern, value):
            raise SourceError(f"source.{name}: {value!r} does not match {pattern}")
    what = f"hf://{repo_id}@{revision or 'main'}/{filename}"
    local = try_to_load_from_cache(repo_id, filename, revision=revision, repo_type=repo_type)
    if isinstance(local, str) and os.path.isfile(local):
        with open(local, "rb") as fh:
            return cache.put_stream(fh, sha256, what)
    if is_offline():
        raise SourceError(f"{what}: not in the cache ({cache.root}) nor in the Hugging Face cache, and the Hub "
                          f"is offline (HF_HUB_OFFLINE is set); fetch it where the Hub is reachable "
                          f"(`cnn-filter-db fetch`) or unset HF_HUB_OFFLINE")
    endpoint = os.environ.get("HF_ENDPOINT") or None
    try:
        url = hf_hub_url(repo_id, filename, repo_type=repo_type, revision=revision, endpoint=endpoint)
        no_retry = ({"retry_on_errors": False}
                    if "retry_on_errors" in inspect.signature(get_hf_file_metadata).parameters else {})
        get_hf_file_metadata(url, timeout=config.HF_METADATA_TIMEOUT_S, endpoint=endpoint, **no_retry)
    except Exception as exc:  # network, HTTP (404, 401, gated), validation errors of huggingface_hub
        raise SourceError(_message(what, exc)) from None
    cache.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache.root, prefix=".hf-") as tmp:
        try:
            path = hf_hub_download(repo_id, filename, revision=revision, repo_type=repo_type, local_dir=tmp,
                                   etag_timeout=config.HF_METADATA_TIMEOUT_S, endpoint=endpoint)
        except Exception as exc:
            raise SourceError(_message(what, exc)) from None
        with open(path, "rb") as fh:
            return cache.put_stream(fh, sha256, what)


def parse_spec(rest: str) -> dict:
    m = re.fullmatch(r"([^@:]+)@([^:]+):(.+)", rest)
    if not m:
        raise SourceError(f"hf:{rest!r}: expected hf:ORG/REPO@COMMIT:FILENAME")
    return {"kind": "hf", "repo_id": m[1], "revision": m[2], "filename": m[3]}


def _message(what: str, exc: Exception) -> str:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return redact(f"{what}: could not download from the Hub ({type(exc).__name__}: {detail})")


def is_offline() -> bool:
    """Offline by the environment now, or by huggingface_hub's setting at its import."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return value in {"1", "ON", "YES", "TRUE"} or bool(constants.HF_HUB_OFFLINE)


def redact(text: str) -> str:
    """``text`` without any Hugging Face token (the configured one, or anything shaped like one)."""
    try:
        from huggingface_hub import get_token

        token = get_token()
    except Exception:
        token = None
    if token:
        text = text.replace(token, "<token>")
    return _TOKEN_PATTERN.sub("hf_<redacted>", text)


register(SourceKind("hf", HfSource, uri, fetch=fetch, download=download, spec_prefix="hf:", parse_spec=parse_spec,
                    spec_help="hf:ORG/REPO@COMMIT:FILENAME"))
