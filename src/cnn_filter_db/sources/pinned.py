"""Registry weights pinned on first build (catalog/lock.yaml): timm tags through the Hub,
torchvision weights through their download URLs.

The first build online resolves the name to an exact file (the Hub commit of the timm
repository; torchvision's URL, whose file name carries a sha256 prefix that is checked),
stores it in the content-addressed cache and records the pin; later builds fetch exactly
that and refuse any other bytes, naming the entry.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from .. import config
from ..atomic import atomic_write_text
from ..cache import Cache
from ..errors import CatalogError, SourceError
from . import hf, url

#: Base URL replacing ``https://download.pytorch.org/`` (a mirror, or a local test server).
TORCHVISION_MIRROR_ENV = "CNN_FILTER_DB_TORCHVISION_MIRROR"
TORCHVISION_BASE = "https://download.pytorch.org/"
TIMM_FILENAME = "model.safetensors"  # every timm Hub repository carries its weights under this name
_HASH_PREFIX = re.compile(r"-([0-9a-f]{6,64})\.[A-Za-z0-9]+$")

HEADER = ("# Weight pins of generated catalog entries, recorded by their first build and verified by\n"
          "# every later one (`cnn-filter-db catalog lock --check` lists unlocked and stale entries).\n"
          "# Commit this file. Remove an entry's block to let the next build pin it anew.\n")


def needs_lock(entry) -> bool:
    """Registry weights named without a sha256 of their own: pinned in catalog/lock.yaml."""
    s = entry.source
    return s.kind == "torchvision" or (s.kind == "timm" and s.pretrained_tag is not None and s.sha256 is None)


def locked_source(entry) -> str:
    """What a lock record pins: the registry name of the weights (a changed name = stale)."""
    s = entry.source
    if s.kind == "timm":
        return f"timm://{s.architecture}.{s.pretrained_tag}"
    return f"torchvision://{s.weights}"


def load_lock(root: Path = Path(".")) -> dict[str, dict]:
    path = Path(root) / config.LOCK_FILE
    if not path.exists():
        return {}
    try:
        doc = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except yaml.YAMLError as exc:
        raise CatalogError([(str(config.LOCK_FILE), "-", f"not valid YAML ({exc})")]) from None
    models = doc.get("models") or {}
    if not isinstance(models, dict):
        raise CatalogError([(str(config.LOCK_FILE), "models", "expected a mapping model_id -> pin")])
    return models


def record(root: Path, model_id: str, pin: dict) -> None:
    """Add or replace ``model_id``'s pin (written to a temporary name, then renamed)."""
    models = load_lock(root)
    models[model_id] = pin
    text = HEADER + yaml.safe_dump({"models": dict(sorted(models.items()))}, sort_keys=False, width=200)
    atomic_write_text(Path(root) / config.LOCK_FILE, text)


def fetch(entry, cache: Cache, root: Path = Path(".")) -> Path:
    """The entry's weight file in the cache: verified against its pin, or pinned now."""
    pin = load_lock(root).get(entry.model_id)
    if pin is not None and pin.get("source") != locked_source(entry):
        raise SourceError(f"{entry.model_id}: {config.LOCK_FILE} pins {pin.get('source')}, but the entry names "
                          f"{locked_source(entry)}; remove its block from the lock to pin it anew")
    if entry.source.kind == "timm":
        path, new_pin = _timm(entry, cache, pin)
    else:
        path, new_pin = _torchvision(entry, cache, pin)
    if pin is None:
        record(root, entry.model_id, new_pin)
    return path


def _check(entry, pin: dict | None, filename: str, got: str) -> None:
    if pin is not None and pin["files"].get(filename) != got:
        raise SourceError(f"{entry.model_id}: {filename} has sha256 {got}, but {config.LOCK_FILE} pins "
                          f"{pin['files'].get(filename)}: the published weights changed")


def _timm(entry, cache: Cache, pin: dict | None) -> tuple[Path, dict]:
    from timm.models import get_pretrained_cfg

    name = f"{entry.source.architecture}.{entry.source.pretrained_tag}"
    cfg = get_pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id:
        raise SourceError(f"{entry.model_id}: timm has no Hub copy of {name!r} (pretrained_cfg.hf_hub_id)")
    repo_id = cfg.hf_hub_id
    filename = cfg.hf_hub_filename or TIMM_FILENAME
    if pin is not None:
        revision, sha = pin["revision"], pin["files"].get(filename)
        if sha is None:
            raise SourceError(f"{entry.model_id}: {config.LOCK_FILE} pins no file named {filename}")
        cached = cache.get(sha)
        if cached:
            return cached, pin
    else:
        revision, sha = _hub_commit(entry, repo_id, filename), None
    try:
        path = hf.download({"repo_id": repo_id, "revision": revision, "filename": filename, "sha256": sha}, cache)
    except SourceError as exc:
        raise SourceError(f"{entry.model_id}: {exc}") from None
    got = path.name  # the cache stores a file under its own sha256
    _check(entry, pin, filename, got)
    return path, {"source": locked_source(entry), "repo_id": repo_id, "revision": revision,
                  "files": {filename: got}}


def _hub_commit(entry, repo_id: str, filename: str) -> str:
    """The commit the Hub's main branch points at now (its resolve answer names it)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    if hf.is_offline():
        raise SourceError(f"{entry.model_id}: not pinned in {config.LOCK_FILE} yet; its first build needs the Hub, "
                          "and HF_HUB_OFFLINE is set")
    endpoint = os.environ.get("HF_ENDPOINT") or None
    try:
        meta = get_hf_file_metadata(hf_hub_url(repo_id, filename, endpoint=endpoint),
                                    timeout=config.HF_METADATA_TIMEOUT_S, endpoint=endpoint)
    except Exception as exc:
        raise SourceError(hf.redact(f"{entry.model_id}: could not resolve hf://{repo_id}/{filename} "
                                    f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''})")) from None
    if not meta.commit_hash or not re.fullmatch(r"[0-9a-f]{40}", meta.commit_hash):
        raise SourceError(f"{entry.model_id}: the Hub named no commit for hf://{repo_id}/{filename}")
    return meta.commit_hash


def torchvision_url(weights: str) -> tuple[str, str]:
    """(the URL torchvision names, where to download it from) for a weights enum
    (``ResNet50_Weights.IMAGENET1K_V2``): the mirror named by $CNN_FILTER_DB_TORCHVISION_MIRROR
    when set."""
    from torchvision.models import get_weight

    try:
        address = get_weight(weights).url
    except (ValueError, KeyError, AttributeError) as exc:
        raise SourceError(f"source.weights: torchvision has no weights {weights!r} ({exc})") from None
    mirror = os.environ.get(TORCHVISION_MIRROR_ENV)
    if mirror and address.startswith(TORCHVISION_BASE):
        return address, mirror.rstrip("/") + "/" + address[len(TORCHVISION_BASE):]
    return address, address


def _torchvision(entry, cache: Cache, pin: dict | None) -> tuple[Path, dict]:
    canonical, address = torchvision_url(entry.source.weights)
    filename = canonical.rsplit("/", 1)[-1]
    if pin is not None:
        sha = pin["files"].get(filename)
        if sha is None:
            raise SourceError(f"{entry.model_id}: {config.LOCK_FILE} pins {sorted(pin['files'])}, torchvision "
                              f"now names {filename}")
        try:
            path = cache.get(sha) or url.download_url(address, sha, cache)
        except SourceError as exc:
            raise SourceError(f"{entry.model_id}: {exc}") from None
        return path, pin
    m = _HASH_PREFIX.search(filename)
    if not m:
        raise SourceError(f"{entry.model_id}: {filename} carries no sha256 prefix to check the first download by")
    try:
        path = url.download_url(address, None, cache)
    except SourceError as exc:
        raise SourceError(f"{entry.model_id}: {exc}") from None
    if not path.name.startswith(m[1]):
        path.unlink()
        raise SourceError(f"{entry.model_id}: {address} has sha256 {path.name}, which does not start with the "
                          f"prefix {m[1]} its file name promises")
    return path, {"source": locked_source(entry), "url": canonical, "files": {filename: path.name}}
