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
    cached = cache.get(source.sha256)
    if cached:
        return cached
    parsed = urllib.parse.urlparse(source.url)
    if parsed.scheme == "file":
        local = Path(urllib.request.url2pathname(parsed.path))
        if not local.is_file():
            raise SourceError(f"source.url: no file at {local}")
        with open(local, "rb") as fh:
            return cache.put_stream(fh, source.sha256, source.url)
    try:
        with urllib.request.urlopen(source.url, timeout=TIMEOUT_S) as resp:
            return cache.put_stream(resp, source.sha256, source.url)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise SourceError(f"source.url: could not download {source.url}: {exc}") from None
