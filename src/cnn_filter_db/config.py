"""Fixed constants and default paths of the package, in one place.

Stage parameters (what a pipeline run may change) and their defaults are not here: they
are typed in :mod:`cnn_filter_db.params` and set in ``params.yaml``.
"""
from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the content-addressed download cache.
CACHE_ENV = "CNN_FILTER_DB_CACHE"

#: Comma-separated sha256 pins of files whose pickled parts the user trusts to be unpickled
#: (the original release's /meta table); never taken from a catalog entry.
TRUSTED_PICKLE_ENV = "CNN_FILTER_DB_TRUSTED_PICKLE_SHA256"

#: What the commands need wherever the package is installed (the one copy of each; the
#: repository's ``catalog/vocabulary.yaml`` and ``dataset_card.md`` link here).
PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE_DATA_DIR = PACKAGE_DIR / "data"
PACKAGED_VOCABULARY = PACKAGE_DATA_DIR / "vocabulary.yaml"

#: Where catalog entries, the vocabulary and the schema live (relative to the project root;
#: outside a checkout the packaged vocabulary applies).
CATALOG_DIR = Path("catalog")
MODELS_DIR = CATALOG_DIR / "models"
INDEX_FILE = CATALOG_DIR / "index.yaml"
LOCK_FILE = CATALOG_DIR / "lock.yaml"  # weight pins of generated entries, recorded on first build

#: Catalog sets: every entry belongs to one; params.yaml ``catalog.sets`` selects what is built.
DEFAULT_SET = "default"  # the offline set: one DVC stage a model
SET_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,40}$"
VOCABULARY_FILE = CATALOG_DIR / "vocabulary.yaml"
SCHEMA_FILE = CATALOG_DIR / "schema.json"

#: The release folder (a Hub dataset repository as built) and the per-model build folder.
RELEASE_DIR = Path("dist") / "cnn-filter-db"
BUILD_DIR = Path("build")
META_DIR = BUILD_DIR / "meta"

#: The configs of the published dataset (the card's ``configs``): name -> data_files glob,
#: relative to the release folder. ``filters`` is the default config.
RELEASE_CONFIGS = {
    "filters": "filters/*/*.parquet",
    "layers": "layers/*.parquet",
    "models": "models/*.parquet",
    "layer_stats": "layer_stats/*.parquet",
}
DEFAULT_CONFIG = "filters"

#: The template of the published card (package data) and the citation file of the repository.
CARD_TEMPLATE = PACKAGE_DATA_DIR / "dataset_card.md"
CITATION_FILE = Path("CITATION.cff")

#: Licence of the published dataset (Hub identifier), as the original release.
DATASET_LICENSE = "cc-by-sa-4.0"

#: Parquet encoding of the tables (SPEC.md section 4); the shard and row-group sizes are
#: parameters (``params.ExtractParams``).
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 1  # measured: faster than 3 and no larger on real weights (30.5 B/filter)
#: A page index on every table (readers can skip pages inside a row group; measured: no
#: size cost).
PAGE_INDEX = True
#: Parquet content-defined chunking of the filters (pyarrow's ``use_content_defined_chunking``):
#: off. Measured on the quiet 2-core machine (benchmarks/bench_extract.py, 2e7 filters, best of
#: 3): with 1-4 MiB chunks the extraction writes at 0.62-0.64 of a plain pyarrow write, without
#: at 0.91 (issue 11 asks >= 0.67). What it would buy (benchmarks/bench_cdc_dedup.py, Xet-like
#: ~64 KiB chunks): after one layer is removed from a model, 0.86-0.96 of the new shard's bytes
#: are already stored with CDC, 0.13-0.52 without; after a layer changes in place, alike with
#: or without (0.84-0.95). Storage of the default build: 30.54 B/filter with, 30.40 without.
#: To turn it on (a release re-published often with rows inserted or removed), set it to
#: ``{"min_chunk_size": 1 << 20, "max_chunk_size": 4 << 20}`` (smaller min sizes cost
#: storage, larger ones lose most of the deduplication: see the benchmark's --chunk-mib).
CONTENT_DEFINED_CHUNKING: dict | bool = False

#: Hugging Face Hub source: seconds to wait for the file's metadata (huggingface_hub does not
#: retry that request, so an unreachable Hub fails within about this long).
HF_METADATA_TIMEOUT_S = 5

#: The reports of a build (analysis, validation, training curves, the release page).
REPORTS_DIR = Path("reports")

#: Validation (issue 4): the expectation suites and where results go (its parameters:
#: ``params.ValidateParams``).
VALIDATION_DIR = PACKAGE_DIR / "validation"
VALIDATION_REPORTS_DIR = REPORTS_DIR / "validation"

#: model ids: lower-case, file-name safe.
MODEL_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,80}$"


def default_cache_dir() -> Path:
    """The download cache: ``$CNN_FILTER_DB_CACHE`` or the user's cache folder."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cnn-filter-db"


#: Publishing (issue 13): a release goes up in commits of at most this many bytes and files
#: (the Hub handles many moderate commits better than one huge one; each is a resume point).
PUBLISH_COMMIT_BYTES = 5_000_000_000
PUBLISH_COMMIT_FILES = 100

#: Progress without a terminal (under DVC or CI): one short line at most this often.
PROGRESS_LOG_INTERVAL_S = 5.0
PROGRESS_LOG_COLUMNS = 100

#: The Hub dataset repo's folder that holds the DVC cache (DVC's remote layout,
#: ``files/md5/xx/...``), read over plain HTTP by the repository's default DVC remote.
HUB_DVC_CACHE_DIR = "dvc-cache"
