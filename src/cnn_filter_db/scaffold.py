"""``cnn-filter-db catalog add``: inspect a weights file and write a catalog entry to fill in.

The written entry holds every fact the file tells (source pin, format, counts) and marks
each field the contributor must still fill with ``TODO``; ``catalog validate`` then fails,
naming each of them, until they are filled.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from . import formats, sources
from .atomic import atomic_write_text
from .cache import Cache
from .catalog import entry_path, load_vocabulary, write_index
from .config import default_cache_dir
from .errors import CatalogError, FormatError, SourceError
from .extract import layers_of
from .formats.sniff import sniff_format


@dataclass
class Findings:
    source: dict
    format: str
    n_layers: int
    n_filters: int
    n_depthwise: int
    sha256: str | None
    architecture: str | None = None


def inspect(spec: str, cache_dir: Path | None = None) -> Findings:
    """Fetch or build the weights a spec names and count their 3x3 layers and filters."""
    source = sources.parse_spec(spec)
    kind = sources.kind_of(source["kind"])
    cache = Cache(cache_dir or default_cache_dir())
    path = kind.download(source, cache) if kind.download else None
    sha = path.name if path is not None else None
    if sha is not None:
        source["sha256"] = sha
    if kind.build is not None:
        try:
            pinned = kind.model.model_validate(source)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise SourceError(f"{spec}: source.{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
        convs, fmt, arch = kind.build(pinned, "new-model", cache_dir=cache_dir).convs, "pytorch", source.get("architecture")
    else:
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

    baseline = f.source["kind"] == "timm" and not f.source.get("pretrained_tag")
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
    path = entry_path(model_id, root)  # refuses an id that does not match the pattern
    if (path.exists() or path.is_symlink()) and not force:
        raise CatalogError([(str(path), "-", "an entry with this id exists; pass --force to overwrite it")])
    findings = inspect(spec, cache_dir)
    atomic_write_text(path, render_entry(model_id, findings, root))
    write_index(root)
    return path, findings
