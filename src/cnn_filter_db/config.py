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
#: size cost), and content-defined page boundaries on the filters (a changed model's new
#: shard shares most pages with the old one under content-addressed storage such as Xet;
#: measured on 8.3 M filters: 30.66 B/filter with 1-4 MiB chunks, 31.32 with the 256 KiB-1 MiB
#: default, 30.52 without; benchmarks/bench_parquet_layout.py).
PAGE_INDEX = True
CONTENT_DEFINED_CHUNKING = {"min_chunk_size": 1 << 20, "max_chunk_size": 4 << 20}

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
