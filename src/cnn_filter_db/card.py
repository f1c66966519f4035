"""The dataset card (README.md of a release) and its citation, rendered from
``dataset_card.md`` at the repository root.

The YAML front matter is built here: ``configs`` from ``config.RELEASE_CONFIGS`` and
``dataset_info`` features from the Arrow schemas of :mod:`cnn_filter_db.dataset.schema` (the one
source of truth for columns). The template holds the prose, with ``$name`` placeholders
(:class:`string.Template`; write ``$$`` for a literal dollar).
"""
from __future__ import annotations

from collections import defaultdict
from string import Template
from typing import Iterable, Mapping

import pandas as pd
import pyarrow as pa
import yaml

from . import config
from .analysis.population import trained_model_ids
from .dataset.schema import FILTERS_SCHEMA, LAYERS_SCHEMA, MODELS_SCHEMA

PRETTY_NAME = "CNN Filter DB"
DEFAULT_REPO_ID = "ORG/cnn-filter-db"  # shown in snippets until release.hub_repo_id is set
TASK_CATEGORIES = ["other"]
TAGS = ["convolutional-neural-networks", "model-weights", "cnn-filters", "3x3-convolution", "interpretability"]
PAPER = {
    "key": "gavrikov2022cnnfilterdb",
    "title": "{CNN Filter DB}: An Empirical Investigation of Trained Convolutional Filters",
    "authors": "Gavrikov, Paul and Keuper, Janis",
    "booktitle": "Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)",
    "year": "2022",
    "arxiv": "2203.15331",
}

#: Schema of each config whose columns this package defines (layer_stats: read from its file).
SCHEMAS = {"filters": FILTERS_SCHEMA, "layers": LAYERS_SCHEMA, "models": MODELS_SCHEMA}

_SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
                    (10_000_000_000, "1B<n<10B"), (100_000_000_000, "10B<n<100B"),
                    (1_000_000_000_000, "100B<n<1T")]


# --------------------------------------------------------------------------- front matter

def _dtype(t: pa.DataType):
    """An Arrow type as a ``datasets`` YAML feature type."""
    if pa.types.is_fixed_size_list(t):
        return {"list": _dtype(t.value_type), "length": t.list_size}
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return {"list": _dtype(t.value_type)}
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_string(t):
        return "string"
    if pa.types.is_large_string(t):
        return "large_string"
    if pa.types.is_integer(t):
        return str(t)  # int8 ... uint64: the same names in Arrow and datasets
    if pa.types.is_floating(t):
        return f"float{t.bit_width}"  # Arrow says halffloat/float/double
    raise ValueError(f"no dataset-card feature type for Arrow type {t}")


def features(schema: pa.Schema) -> list[dict]:
    """The ``dataset_info.features`` list of one config: ``weights`` becomes
    ``{name: weights, list: float32, length: 9}``."""
    out = []
    for field in schema:
        t = _dtype(field.type)
        out.append({"name": field.name, **(t if isinstance(t, dict) else {"dtype": t})})
    return out


def size_category(n: int) -> str:
    for bound, label in _SIZE_CATEGORIES:
        if n < bound:
            return label
    return "n>1T"


#: The config of the trained population's filters (one ``data_files`` entry a model folder).
TRAINED_FILTERS_CONFIG = "filters_trained"


def front_matter(n_filters: int, schemas: Mapping[str, pa.Schema], trained_models: list[str] | None = None) -> dict:
    """The card's YAML metadata for the configs present (``schemas``: config -> schema), and
    the ``filters_trained`` config when ``trained_models`` lists the trained population."""
    configs = []
    for name, glob in config.RELEASE_CONFIGS.items():
        if name not in schemas:
            continue
        cfg = {"config_name": name}
        if name == config.DEFAULT_CONFIG:
            cfg["default"] = True
        cfg["data_files"] = [{"split": "train", "path": glob}]
        configs.append(cfg)
    if trained_models and "filters" in schemas:
        configs.append({"config_name": TRAINED_FILTERS_CONFIG, "data_files": [
            {"split": "train", "path": [f"filters/{m}/*.parquet" for m in trained_models]}]})
    return {
        "license": config.DATASET_LICENSE,
        "pretty_name": PRETTY_NAME,
        "size_categories": [size_category(n_filters)],
        "task_categories": TASK_CATEGORIES,
        "tags": TAGS,
        "configs": configs,
        "dataset_info": [{"config_name": c["config_name"],
                          "features": features(schemas[c["config_name"] if c["config_name"] in schemas else "filters"])}
                         for c in configs],
    }


# --------------------------------------------------------------------------- body parts

def _md_escape(value) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def md_table(header: list[str], rows: Iterable[Iterable]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_escape(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def counts_table(models: list[Mapping], key: str, share: bool = False) -> str:
    """Models and filters per value of ``key`` (task, visual_category, format, family), and
    with ``share`` each value's share of the filters."""
    n_models, n_filters = defaultdict(int), defaultdict(int)
    for row in models:
        n_models[row[key]] += 1
        n_filters[row[key]] += int(row["n_filters"])
    order = sorted(n_models, key=lambda v: (-n_filters[v], str(v)))
    total = sum(n_filters.values()) or 1
    if share:
        return md_table([key, "models", "filters", "share of filters"],
                        ([v, n_models[v], f"{n_filters[v]:,}", f"{100 * n_filters[v] / total:.1f} %"] for v in order))
    return md_table([key, "models", "filters"], ([v, n_models[v], f"{n_filters[v]:,}"] for v in order))


def models_table(models: list[Mapping]) -> str:
    return md_table(
        ["model_id", "name", "task", "family", "format", "weights licence", "training-data licence", "layers", "filters"],
        ([r["model_id"], r["name"], r["task"], r["family"], r["format"], r["license"], r["training_data_license"],
          r["n_layers"], f"{int(r['n_filters']):,}"] for r in sorted(models, key=lambda r: r["model_id"])))


def excluded_text(excluded: Mapping[str, str]) -> str:
    if not excluded:
        return "No model of the catalog was left out by the licence policy."
    lines = ["These models are in the catalog but left out of this release by the licence policy:", ""]
    lines += [f"- `{mid}`: {why}" for mid, why in sorted(excluded.items())]
    return "\n".join(lines)


def changelog(manifest: Mapping, previous: Mapping | None) -> str:
    """Models added, removed and changed since ``previous`` (a manifest), as Markdown."""
    if previous is None:
        return "First release."
    now, before = manifest.get("models", {}), previous.get("models", {})
    lines = [f"Compared with v{previous['version']} (fingerprint `{previous['fingerprint']}`):", ""]
    added = sorted(set(now) - set(before))
    removed = sorted(set(before) - set(now))
    changed = []
    for mid in sorted(set(now) & set(before)):
        what = [label for field, label in (("weights_sha256", "weights"), ("catalog_sha256", "catalog entry"),
                                           ("n_filters", "number of filters"))
                if now[mid].get(field) != before[mid].get(field)]
        if what:
            changed.append((mid, what))
    excluded = manifest.get("excluded_models", {})
    for mid in added:
        lines.append(f"- added `{mid}`")
    for mid in removed:
        why = f" (left out: {excluded[mid]})" if mid in excluded else " (removed from the catalog)"
        lines.append(f"- removed `{mid}`{why}")
    for mid, what in changed:
        lines.append(f"- changed `{mid}`: {', '.join(what)}")
    if not (added or removed or changed):
        if previous.get("fingerprint") == manifest.get("fingerprint"):
            lines.append("- no change to the data")
        else:
            lines.append("- the same models; shards differ (encoding or metadata columns)")
    return "\n".join(lines)


def bibtex(version: str, fingerprint: str, repo_id: str, year: str | None = None) -> str:
    key = "cnn_filter_db_v" + version.replace(".", "_").replace("-", "_")
    release = [f"@misc{{{key},",
               f"  title = {{{{CNN Filter DB}}: a versioned dataset of trained 3x3 convolution filters, release v{version}}},",
               "  author = {{cnn-filter-db contributors}},",
               *( [f"  year = {{{year}}},"] if year else []),
               f"  howpublished = {{\\url{{https://huggingface.co/datasets/{repo_id}}}}},",
               f"  note = {{Version v{version}, fingerprint sha256:{fingerprint}}}",
               "}"]
    p = PAPER
    paper = [f"@inproceedings{{{p['key']},",
             f"  title = {{{p['title']}}},",
             f"  author = {{{p['authors']}}},",
             f"  booktitle = {{{p['booktitle']}}},",
             f"  year = {{{p['year']}}},",
             f"  eprint = {{{p['arxiv']}}},",
             "  archivePrefix = {arXiv}",
             "}"]
    return "\n".join(release) + "\n\n" + "\n".join(paper)


def citation_cff(version: str, fingerprint: str, repo_id: str) -> str:
    """CITATION.cff of a release: this release as the work, the original paper as a reference."""
    data = {
        "cff-version": "1.2.0",
        "message": "If you use this dataset, please cite this release (version and fingerprint) and the original paper.",
        "type": "dataset",
        "title": f"{PRETTY_NAME}: a versioned dataset of trained 3x3 convolution filters",
        "version": f"v{version}",
        "authors": [{"name": "cnn-filter-db contributors"}],
        "license": "CC-BY-SA-4.0",
        "url": f"https://huggingface.co/datasets/{repo_id}",
        "identifiers": [{"type": "other", "value": f"sha256:{fingerprint}",
                         "description": "fingerprint of the release (sha256 over the sorted shard sha256s)"}],
        "keywords": TAGS,
        "references": [_paper_cff()],
    }
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _paper_cff() -> dict:
    return {
        "type": "conference-paper",
        "title": "CNN Filter DB: An Empirical Investigation of Trained Convolutional Filters",
        "authors": [{"family-names": "Gavrikov", "given-names": "Paul"},
                    {"family-names": "Keuper", "given-names": "Janis"}],
        "collection-title": PAPER["booktitle"],
        "year": 2022,
        "identifiers": [{"type": "url", "value": f"https://arxiv.org/abs/{PAPER['arxiv']}"},
                        {"type": "doi", "value": "10.5281/zenodo.6371680",
                         "description": "the original v1.0.0 dataset on Zenodo"}],
    }


# --------------------------------------------------------------------------- the card

def render(template: str, *, manifest: Mapping, models: list[Mapping], schemas: Mapping[str, pa.Schema],
           excluded: Mapping[str, str], previous: Mapping | None = None, repo_id: str | None = None,
           year: str | None = None) -> str:
    """README.md of a release: YAML front matter, then ``template`` with its placeholders filled.

    ``manifest`` gives version, fingerprint and catalog sha256; ``models`` are the rows of the
    release's ``models`` table; ``schemas`` maps each config present to its Arrow schema.
    """
    repo_id = repo_id or DEFAULT_REPO_ID
    n_filters = sum(int(r["n_filters"]) for r in models)
    n_layers = sum(int(r["n_layers"]) for r in models)
    trained = trained_model_ids(pd.DataFrame(list(models))) if models and "training" in models[0] else []
    meta = front_matter(n_filters, schemas, trained)
    values = {
        "version": manifest["version"],
        "fingerprint": manifest["fingerprint"],
        "catalog_sha256": manifest["catalog_sha256"],
        "repo_id": repo_id,
        "n_models": f"{len(models):,}",
        "n_layers": f"{n_layers:,}",
        "n_filters": f"{n_filters:,}",
        "configs": ", ".join(f"`{c['config_name']}`" for c in meta["configs"]),
        "counts_task": counts_table(models, "task"),
        "counts_visual_category": counts_table(models, "visual_category"),
        "counts_format": counts_table(models, "format"),
        "counts_family": counts_table(models, "family"),
        "counts_training": counts_table(models, "training", share=True) if models and "training" in models[0] else "",
        "models_table": models_table(models),
        "excluded": excluded_text(excluded),
        "changelog": changelog(manifest, previous),
        "bibtex": bibtex(manifest["version"], manifest["fingerprint"], repo_id, year),
        "versions": ", ".join(f"{k} {v}" for k, v in sorted(manifest.get("versions", {}).items())),
    }
    try:
        body = Template(template).substitute(values)
    except KeyError as exc:
        raise ValueError(f"{config.CARD_TEMPLATE}: unknown placeholder ${exc.args[0]} "
                         f"(known: {', '.join(sorted(values))})") from None
    except ValueError as exc:  # a lone "$": string.Template's message names the line
        raise ValueError(f"{config.CARD_TEMPLATE}: {exc} (write $$ for a literal dollar)") from None
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, width=120) + "---\n\n" + body.lstrip("\n")


def read_front_matter(text: str) -> dict:
    """The YAML metadata of a card (the block between the first two ``---`` lines)."""
    if not text.startswith("---\n"):
        raise ValueError("README.md: no YAML front matter (expected a first line '---')")
    head, sep, _ = text[4:].partition("\n---\n")
    if not sep:
        raise ValueError("README.md: the YAML front matter is not closed by a '---' line")
    return yaml.safe_load(head) or {}
