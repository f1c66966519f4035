"""``url``: an http(s) or file URL, checked against its sha256.

The URL is published in the models table and the card, so it may hold no credentials
(``user:password@``) and no query string (where tokens travel), and no whitespace or
control character (a newline would forge a line of the card). A ``file://`` URL names a
file on one machine: fine for local work, refused by ``catalog check`` (a pull request
must point at a public URL).
"""
from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Literal

from pydantic import Field

from ..cache import Cache
from ..errors import SourceError
from ..fields import SHA256, StrictModel
from . import SourceKind, register

TIMEOUT_S = 30
# printable ASCII without '#' and '?' (a path), and without '#' (a fragment)
_PATH = r"[\x21\x22\x24-\x3e\x40-\x7e]"
_FRAGMENT = r"[\x21\x22\x24-\x7e]"
URL_PATTERN = (rf"^(https?://[A-Za-z0-9]([A-Za-z0-9.-]{{0,252}})(:[0-9]{{1,5}})?(/{_PATH}*)?|file:///{_PATH}*)"
               rf"(#{_FRAGMENT}*)?$")


class UrlSource(StrictModel):
    """An http(s) or file URL."""

    kind: Literal["url"]
    url: str = Field(pattern=URL_PATTERN, max_length=2000,
                     description="http(s) or file URL (percent-encoded), without user:password@ or a query string")
    sha256: SHA256


def uri(source, model_id: str) -> str:
    return source.url


def is_local(url: str) -> bool:
    return url.startswith("file:")


def fetch(source, cache: Cache) -> Path:
    return cache.get(source.sha256) or download_url(source.url, source.sha256, cache)


def download(source: dict, cache: Cache) -> Path:
    """The file of an unpinned source (``catalog add``), stored under its own sha256."""
    return download_url(source["url"], None, cache)


def download_url(url: str, sha256: str | None, cache: Cache) -> Path:
    """``url`` into the cache, checked against ``sha256`` (None: learn it)."""
    if not re.fullmatch(URL_PATTERN, url):
        raise SourceError(f"source.url: {url!r} is not an http(s) or file URL without credentials or query")
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


def parse_spec(spec: str) -> dict | None:
    """An http(s)/file URL, or a local file (as a file:// URL); None for anything else."""
    if re.match(r"^(https?|file)://", spec):
        return {"kind": "url", "url": spec}
    path = Path(spec)
    if path.is_file():
        return {"kind": "url", "url": path.resolve().as_uri()}
    return None


register(SourceKind("url", UrlSource, uri, fetch=fetch, download=download, parse_spec=parse_spec,
                    spec_help="a local path or an http(s)/file URL"))
