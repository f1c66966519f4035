"""The dataset card (README.md of a release), rendered from ``dataset_card.md`` at the
repository root, with huggingface_hub's :class:`DatasetCard` and :class:`DatasetCardData`.

The metadata is built from facts, never typed twice: ``configs`` from
``config.RELEASE_CONFIGS``, ``dataset_info`` (features, splits, example counts, sizes) by
``datasets`` itself from the Arrow schemas of :mod:`cnn_filter_db.dataset.schema` and the row
counts of the manifest, and the licence as the Hub expects for mixed licences: ``other``,
with a link to the per-model licence table (each model's weights keep their own licence).
The template holds the prose, with ``$name`` placeholders (:class:`string.Template`; write
``$$`` for a literal dollar).
"""
from __future__ import annotations

from collections import defaultdict
from fnmatch import fnmatch
from string import Template
from typing import Iterable, Mapping

import pandas as pd
import pyarrow as pa
import yaml
from datasets import DatasetInfo, Features, SplitDict, SplitInfo
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from . import config
from .analysis.population import trained_model_ids
from .citation import PAPER, PRETTY_NAME, TAGS, bibtex
from .dataset.schema import FILTERS_SCHEMA, LAYERS_SCHEMA, MODELS_SCHEMA

DEFAULT_REPO_ID = "ORG/cnn-filter-db"  # shown in snippets until release.hub_repo_id is set
TASK_CATEGORIES = ["other"]
#: The Hub's identifier for a licence that is not one licence: each model keeps its own.
LICENSE_NAME = "per-model-licences"
LICENCES_ANCHOR = "licences"
#: The offline release page, beside the card in the source repository (reports/index.html).
REPORT_PAGE = "reports/index.html"

#: The config of the trained population's filters (one ``data_files`` entry a model folder).
TRAINED_FILTERS_CONFIG = "filters_trained"

#: Schema of each config whose columns this package defines (layer_stats: read from its file).
SCHEMAS = {"filters": FILTERS_SCHEMA, "layers": LAYERS_SCHEMA, "models": MODELS_SCHEMA}

_SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
                    (10_000_000_000, "1B<n<10B"), (100_000_000_000, "10B<n<100B"),
                    (1_000_000_000_000, "100B<n<1T")]


# --------------------------------------------------------------------------- metadata

def size_category(n: int) -> str:
    for bound, label in _SIZE_CATEGORIES:
        if n < bound:
            return label
    return "n>1T"


def config_shards(manifest: Mapping, name: str) -> list[Mapping]:
    """The manifest's shard records of one config (by the config's ``data_files`` glob)."""
    return shards_matching(manifest, [config.RELEASE_CONFIGS[name]])


def shards_matching(manifest: Mapping, patterns: list[str]) -> list[Mapping]:
    return [s for s in manifest.get("shards", []) if any(fnmatch(s["path"], p) for p in patterns)]


def dataset_infos(manifest: Mapping, configs: Mapping[str, tuple[pa.Schema, list[str]]]) -> DatasetInfosDict:
    """What ``datasets`` records for each config (name -> (Arrow schema, data_files globs)):
    features derived from the Arrow schema, one ``train`` split with its example count, and
    the Parquet bytes to download."""
    out = DatasetInfosDict()
    for name, (schema, patterns) in configs.items():
        records = shards_matching(manifest, patterns)
        rows = sum(int(s["rows"]) for s in records)
        size = sum(int(s["bytes"]) for s in records)
        splits = SplitDict()
        splits.add(SplitInfo(name="train", num_bytes=size, num_examples=rows))
        out[name] = DatasetInfo(features=Features.from_arrow_schema(schema), splits=splits,
                                download_size=size, dataset_size=size)
    return out


def card_data(manifest: Mapping, schemas: Mapping[str, pa.Schema], repo_id: str,
              trained_models: list[str] | None = None) -> DatasetCardData:
    """The card's metadata for the configs present (``schemas``: config -> schema), and the
    ``filters_trained`` config when ``trained_models`` lists the trained population."""
    n_filters = sum(int(s["rows"]) for s in config_shards(manifest, "filters"))
    data = DatasetCardData(
        license="other", license_name=LICENSE_NAME,
        license_link=f"https://huggingface.co/datasets/{repo_id}/blob/v{manifest['version']}/README.md#{LICENCES_ANCHOR}",
        pretty_name=PRETTY_NAME, size_categories=[size_category(n_filters)], task_categories=TASK_CATEGORIES,
        tags=TAGS)
    configs, infos = {}, {}
    for name, glob in config.RELEASE_CONFIGS.items():
        if name in schemas:
            configs[name] = {"data_files": [{"split": "train", "path": glob}],
                             **({"default": True} if name == config.DEFAULT_CONFIG else {})}
            infos[name] = (schemas[name], [glob])
    if trained_models and "filters" in schemas:
        paths = [f"filters/{m}/*.parquet" for m in trained_models]
        configs[TRAINED_FILTERS_CONFIG] = {"data_files": [{"split": "train", "path": paths}]}
        infos[TRAINED_FILTERS_CONFIG] = (schemas["filters"], paths)
    MetadataConfigs(configs).to_dataset_card_data(data)
    dataset_infos(manifest, infos).to_dataset_card_data(data)
    return data


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


def licence_table(models: list[Mapping]) -> str:
    """Models and filters per weights licence, with the models under each."""
    by = defaultdict(list)
    for r in models:
        by[r["license"] or "unknown"].append(r)
    order = sorted(by, key=lambda lic: (-sum(int(r["n_filters"]) for r in by[lic]), lic))
    return md_table(["weights licence", "models", "filters", "model ids"],
                    ([lic, len(by[lic]), f"{sum(int(r['n_filters']) for r in by[lic]):,}",
                      ", ".join(f"`{r['model_id']}`" for r in sorted(by[lic], key=lambda r: r["model_id"]))]
                     for lic in order))


# --------------------------------------------------------------------------- the card

def render(template: str, *, manifest: Mapping, models: list[Mapping], schemas: Mapping[str, pa.Schema],
           excluded: Mapping[str, str], previous: Mapping | None = None, repo_id: str | None = None,
           year: str | None = None, source_repository: str | None = None) -> str:
    """README.md of a release: the metadata of :func:`card_data`, then ``template`` with its
    placeholders filled, as a huggingface_hub :class:`DatasetCard`.

    ``manifest`` gives version, fingerprint, catalog sha256 and the shards (rows, bytes);
    ``models`` are the rows of the release's ``models`` table; ``schemas`` maps each config
    present to its Arrow schema.
    ``source_repository``: the git URL of this repository (default: GitHub, named as the Hub repo).
    """
    repo_id = repo_id or DEFAULT_REPO_ID
    source_repository = source_repository or f"https://github.com/{repo_id}"
    n_filters = sum(int(r["n_filters"]) for r in models)
    n_layers = sum(int(r["n_layers"]) for r in models)
    has_training = bool(models) and "training" in models[0]
    trained = trained_model_ids(pd.DataFrame(list(models))) if has_training else []
    data = card_data(manifest, schemas, repo_id, trained)
    values = {
        "version": manifest["version"],
        "fingerprint": manifest["fingerprint"],
        "catalog_sha256": manifest["catalog_sha256"],
        "repo_id": repo_id,
        "pretty_name": PRETTY_NAME,
        "source_repository": source_repository,
        "n_models": f"{len(models):,}",
        "n_layers": f"{n_layers:,}",
        "n_filters": f"{n_filters:,}",
        "configs": ", ".join(f"`{c['config_name']}`" for c in data.configs),
        "counts_task": counts_table(models, "task"),
        "counts_visual_category": counts_table(models, "visual_category"),
        "counts_format": counts_table(models, "format"),
        "counts_family": counts_table(models, "family"),
        "counts_training": counts_table(models, "training", share=True) if has_training else "",
        "models_table": models_table(models),
        "licence_table": licence_table(models),
        "license_name": LICENSE_NAME,
        "report_page": REPORT_PAGE,
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
    card = DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body.lstrip()}")
    return str(card)


def read_front_matter(text: str) -> dict:
    """The YAML metadata of a card (the block between the first two ``---`` lines)."""
    if not text.startswith("---\n"):
        raise ValueError("README.md: no YAML front matter (expected a first line '---')")
    head, sep, _ = text[4:].partition("\n---\n")
    if not sep:
        raise ValueError("README.md: the YAML front matter is not closed by a '---' line")
    return yaml.safe_load(head) or {}

