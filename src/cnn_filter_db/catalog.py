"""The catalog: one YAML file a model, its entry model, vocabulary and generated index.

The pydantic models below are the single source of truth for what an entry holds;
``catalog/schema.json`` is generated from them (``cnn-filter-db catalog schema``) with the
controlled vocabularies of ``catalog/vocabulary.yaml`` filled in as enums.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import Field, ValidationError, model_validator

from . import config, sources, strict_yaml
from .errors import CatalogError
from .fields import ONE_LINE, StrictModel
from .hashing import sha256_file
from .license_policy import LicensePolicy, excluded_models
from .params import CatalogParams, ReleaseParams, load_params
from .vocabulary import CONV_KINDS, VOCABULARY_FIELDS, load_vocabulary  # noqa: F401 (part of the catalog's API)

#: The ``source`` of an entry: one model a registered source kind (see cnn_filter_db.sources).
Source = Annotated[Union[tuple(k.model for k in sources.kinds().values())], Field(discriminator="kind")]

Line = Annotated[str, Field(pattern=ONE_LINE, max_length=500)]
Name = Annotated[str, Field(pattern=ONE_LINE, min_length=1, max_length=200)]


class Expected3x3(StrictModel):
    """The 3x3 conv counts of the architecture, counted without weights when the entry was generated."""

    layers: int = Field(ge=1)
    filters: int = Field(ge=1)


class Entry(StrictModel):
    """One catalog entry: a model, where its weights come from, and what it was trained on."""

    model_id: str = Field(pattern=config.MODEL_ID_PATTERN)
    name: Name
    set: str = Field(default=config.DEFAULT_SET, pattern=config.SET_NAME_PATTERN,
                     description="the catalog set the entry belongs to; params.yaml catalog.sets selects what is built")
    source: Source
    format: Name = Field(description="weights format (vocabulary: format)")
    architecture: Name
    family: Name
    task: Name
    visual_category: Name
    training_dataset: Name
    pretraining_dataset: Name = Field(description="dataset of pre-training, 'none' if trained from scratch")
    trained: bool = Field(description="false for an initialisation baseline")
    license: Name = Field(description="licence of the weights")
    training_data_license: Name
    paper: Line | None = Field(description="URL or citation of the paper; null when there is none")
    accuracy: float | None = Field(ge=0, le=1, description="reported test accuracy as a fraction")
    accuracy_metric: Name | None = None
    accuracy_split: Name | None = None
    homepage: Line | None = None
    notes: str | None = Field(None, max_length=4000)
    expected_3x3: Expected3x3 | None = Field(
        default=None, description="3x3 layer and filter counts the weights must have (generated entries)")
    conv_kind_overrides: dict[Line, Literal["dense", "grouped", "depthwise"]] = Field(
        default_factory=dict, max_length=10_000,
        description="layer name -> conv_kind, where the format's facts mislead")
    keras_layer_classes: dict[Line, Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9]{0,63}$")]] = Field(
        default_factory=dict, max_length=10_000,
        description="Keras layer name or group path -> layer class (Conv2D, DepthwiseConv2D, "
                    "SeparableConv2D, Conv2DTranspose, ... or skip), for layers of a file "
                    "without config whose names do not tell their class")

    @model_validator(mode="after")
    def _consistent(self):
        if self.source.kind == "timm" and self.source.pretrained_tag is None and self.trained:
            raise ValueError("a timm source without pretrained_tag is an initialisation baseline: set trained: false")
        if self.accuracy is not None and not self.accuracy_metric:
            raise ValueError("accuracy is given: accuracy_metric is required")
        return self


def is_model_id(text: str) -> bool:
    return isinstance(text, str) and re.fullmatch(config.MODEL_ID_PATTERN, text) is not None


def shown(path: Path) -> str:
    """A path as error messages print it: control characters escaped, so it stays one line."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in str(path))


# --------------------------------------------------------------------------- loading

def entry_path(model_id: str, root: Path = Path(".")) -> Path:
    if not is_model_id(model_id):
        raise CatalogError([(f"{config.MODELS_DIR}/{model_id!r}", "model_id",
                             f"should match pattern '{config.MODEL_ID_PATTERN}'")])
    return Path(root) / config.MODELS_DIR / f"{model_id}.yaml"


def _problems(where: str, exc: ValidationError) -> list[tuple[str, str, str]]:
    kinds = "|".join(re.escape(k) for k in sources.kinds())
    problems = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"] if not str(x).startswith("function-after")) or "-"
        # a discriminated union adds the tag to the location; drop it for readability
        loc = re.sub(rf"^source\.({kinds})(\.|$)", lambda m: "source" + m[2], loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (not in catalog/schema.json)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        problems.append((where, loc or "-", msg.replace("\n", " ")))
    return problems


def parse_entry(path: Path, root: Path = Path("."), vocabulary: bool = True) -> Entry:
    """Read and check one entry; every problem is reported as (file, field, expected).

    ``vocabulary=False`` checks the structure only (the index does, so that a scaffolded
    entry whose TODOs are not filled in yet is listed).
    """
    path = Path(path)
    where = shown(path)
    if not is_model_id(path.stem) or path.suffix != ".yaml":
        raise CatalogError([(where, "-", f"a catalog file is named <model_id>.yaml, with model_id matching "
                                         f"'{config.MODEL_ID_PATTERN}'")])
    data = strict_yaml.load_file(path, where)
    if not isinstance(data, dict):
        raise CatalogError([(where, "-", "expected a mapping of fields, got "
                                         + ("an empty file" if data is None else type(data).__name__))])
    try:
        entry = Entry.model_validate(data)
    except ValidationError as exc:
        raise CatalogError(_problems(where, exc)) from None
    problems: list[tuple[str, str, str]] = []
    if entry.model_id != path.stem:
        problems.append((where, "model_id", f"must equal the file name {path.stem!r}"))
    if vocabulary:
        vocab = load_vocabulary(root)
        for fld, vocab_name in VOCABULARY_FIELDS.items():
            value = getattr(entry, fld)
            if value not in vocab[vocab_name]:
                problems.append((where, fld, f"{value!r} is not in vocabulary '{vocab_name}' of "
                                             f"{config.VOCABULARY_FILE} (add it there, or use one of: "
                                             f"{', '.join(vocab[vocab_name])})"))
    if problems:
        raise CatalogError(problems)
    return entry


def list_entries(root: Path = Path(".")) -> tuple[list[Path], list[tuple[str, str, str]]]:
    """The entry files of ``catalog/models/`` (regular files named ``<model_id>.yaml``), and a
    problem for anything else there (hidden files such as ``.gitkeep`` are ignored)."""
    folder = Path(root) / config.MODELS_DIR
    if not folder.is_dir():
        return [], []
    paths, problems = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.suffix != ".yaml" or not is_model_id(path.stem):
            problems.append((shown(path), "-", f"not a catalog entry: files in {config.MODELS_DIR}/ are named "
                                             f"<model_id>.yaml, with model_id matching '{config.MODEL_ID_PATTERN}'"))
        elif path.is_symlink() or not path.is_file():
            problems.append((shown(path), "-", "is not a regular file (a symbolic link or a folder)"))
        else:
            paths.append(path)
    return paths, problems


def entry_files(root: Path = Path(".")) -> list[Path]:
    """The well-named entry files (see :func:`list_entries` for the others)."""
    return list_entries(root)[0]


def load_entry(model_id: str, root: Path = Path(".")) -> Entry:
    return parse_entry(entry_path(model_id, root), root)


def parse_all(root: Path = Path("."), vocabulary: bool = True) -> tuple[list[Entry], list[tuple[str, str, str]]]:
    """Every valid entry, and the problems of the others (all files are read)."""
    paths, problems = list_entries(root)
    entries = []
    for path in paths:
        try:
            entries.append(parse_entry(path, root, vocabulary))
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

    Every file of ``catalog/models/`` must be a well-formed entry (its vocabulary is left to
    ``catalog validate``), else a :class:`CatalogError` names each bad file and nothing is
    listed: an id reaches DVC stage names and paths only after it matched the id pattern.
    Models whose weights licence the release policy (``release`` group of params.yaml)
    does not allow are listed under ``excluded`` with the reason, and are not built.
    """
    entries, problems = parse_all(root, vocabulary=False)
    if problems:
        raise CatalogError(problems)
    rows = [{"model_id": e.model_id, "license": e.license} for e in entries]
    trained = {e.model_id for e in entries if e.source.kind == "train"}
    set_of = {e.model_id: e.set for e in entries}
    excluded: dict[str, str] = {}
    release = ReleaseParams.of(load_params("release", root))
    if release.redistributable_licenses is not None:
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


def selected_sets(root: Path = Path(".")) -> list[str]:
    """The catalog sets params.yaml (``catalog.sets``) selects; ``[default]`` when unset."""
    group = load_params("catalog", root)
    CatalogParams.of(group)  # unknown keys are an error
    sets = group.get("sets", list(CatalogParams.sets))
    if not isinstance(sets, list) or not all(isinstance(x, str) and re.match(config.SET_NAME_PATTERN, x) for x in sets):
        raise CatalogError([("params.yaml", "catalog.sets", f"expected a list of set names, got {sets!r}")])
    if config.DEFAULT_SET not in sets:
        raise CatalogError([("params.yaml", "catalog.sets", f"must include {config.DEFAULT_SET!r} (the offline set, "
                                                            f"one DVC stage a model), got {sets!r}")])
    return sets


def index_models(root: Path = Path(".")) -> list[str]:
    """The model ids the pipeline builds: the default set (trained ones last), then the
    members of every other set params.yaml selects."""
    doc = _index(root)
    ids = list(doc.get("models") or []) + list(doc.get("trained") or [])
    for name in selected_sets(root):
        if name != config.DEFAULT_SET:
            ids.extend((doc.get("sets") or {}).get(name) or [])
    return ids


def _index(root: Path) -> dict:
    """The generated index, its every listed id checked against the id pattern."""
    where = str(config.INDEX_FILE)
    doc = strict_yaml.load_file(Path(root) / config.INDEX_FILE, where) or {}
    if not isinstance(doc, dict):
        raise CatalogError([(where, "-", "expected a mapping; run `cnn-filter-db catalog index`")])
    sets = doc.get("sets") or {}
    listed = list(doc.get("models") or []) + list(doc.get("trained") or []) + [
        i for members in (sets.values() if isinstance(sets, dict) else [None]) for i in (members or [None])]
    bad = [i for i in listed if not is_model_id(i)]
    if bad:
        raise CatalogError([(where, "models", f"{bad[0]!r} is not a model id; run `cnn-filter-db catalog index`")])
    return doc


def set_members(name: str, root: Path = Path(".")) -> list[str]:
    """The model ids of one non-default set, as the index lists them."""
    sets = _index(root).get("sets") or {}
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
    """A problem when the committed index differs from the one the catalog gives. While some
    entries are malformed (reported by themselves), only ids that name no entry file are."""
    path = Path(root) / config.INDEX_FILE
    problem = [(str(config.INDEX_FILE), "models",
                f"does not match {config.MODELS_DIR}/ and the licence policy of params.yaml; "
                "run `cnn-filter-db catalog index`")]
    current = path.read_text(errors="replace") if path.is_file() else ""
    try:
        selected_sets(root)
    except CatalogError as exc:
        return exc.problems
    try:
        return problem if current != render_index(root) else []
    except CatalogError:
        try:
            doc = _index(root)
        except CatalogError:
            return problem
        listed = list(doc.get("models") or []) + list(doc.get("trained") or []) + [
            i for members in (doc.get("sets") or {}).values() for i in members or []]
        known = {p.stem for p in entry_files(root)}
        return problem if set(listed) - known else []


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
