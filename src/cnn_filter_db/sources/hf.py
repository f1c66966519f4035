"""A file of a Hugging Face Hub repository at a pinned revision, through ``huggingface_hub``.

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

from .. import config
from ..errors import SourceError
from .cache import Cache

_TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{8,}")


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
    what = f"hf://{repo_id}@{revision}/{filename}"
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
