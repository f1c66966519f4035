"""An http(s) or file URL, checked against its sha256."""
from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import SourceError
from .cache import Cache

TIMEOUT_S = 30


def fetch(source, cache: Cache) -> Path:
    return cache.get(source.sha256) or download(source.url, source.sha256, cache)


def download(url: str, sha256: str | None, cache: Cache) -> Path:
    """``url`` into the cache, checked against ``sha256`` (None: learn it, for the scaffold)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        local = Path(urllib.request.url2pathname(parsed.path))
        if not local.is_file():
            raise SourceError(f"source.url: no file at {local}")
        with open(local, "rb") as fh:
            return cache.put_stream(fh, sha256, url)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            return cache.put_stream(resp, sha256, url)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise SourceError(f"source.url: could not download {url}: {exc}") from None
