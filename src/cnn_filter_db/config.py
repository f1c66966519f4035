"""Every tunable constant and default path of the package, in one place.

Stage parameters that a pipeline run may change live in ``params.yaml``; the values
here are the library defaults those parameters fall back to.
"""
from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the content-addressed download cache.
CACHE_ENV = "CNN_FILTER_DB_CACHE"

#: Comma-separated sha256 pins of files whose pickled parts the user trusts to be unpickled
#: (the original release's /meta table); never taken from a catalog entry.
TRUSTED_PICKLE_ENV = "CNN_FILTER_DB_TRUSTED_PICKLE_SHA256"

#: Where catalog entries, the vocabulary and the schema live (relative to the project root).
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

#: The template of the published card and the citation file, at the repository root.
CARD_TEMPLATE = Path("dataset_card.md")
CITATION_FILE = Path("CITATION.cff")

#: Licence of the published dataset (Hub identifier), as the original release.
DATASET_LICENSE = "cc-by-sa-4.0"

#: Parquet layout of the filters table (SPEC.md section 4).
MAX_ROWS_PER_SHARD = 16_000_000  # about 500 MB at ~31 bytes a filter
ROW_GROUP_ROWS = 1_048_576  # about 75-100 MB uncompressed
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 1  # measured: faster than 3 and no larger on real weights (30.5 B/filter)

#: Hugging Face Hub source: seconds to wait for the file's metadata (huggingface_hub does not
#: retry that request, so an unreachable Hub fails within about this long).
HF_METADATA_TIMEOUT_S = 5

#: Validation (issue 4): the expectation suites, where results go, and the default bound
#: on any weight's magnitude (trained 3x3 weights are far below it; exploded ones are not).
VALIDATION_DIR = Path("validation")
VALIDATION_REPORTS_DIR = Path("reports") / "validation"
MAX_ABS_WEIGHT = 1e3

#: model ids: lower-case, file-name safe.
MODEL_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,80}$"


def default_cache_dir() -> Path:
    """The download cache: ``$CNN_FILTER_DB_CACHE`` or the user's cache folder."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cnn-filter-db"

#: Training of ``train`` catalog entries (params.yaml ``train`` group overrides these).
TRAIN_PROFILE = "quick"  # "paper": the published recipe (100 epochs, batch 256; for a GPU)
# Fixed, because CPU results may depend on the thread count. One thread: on a machine
# shared with other work, two OpenMP threads on two busy cores ran 5-10x slower than one.
TRAIN_NUM_THREADS = 1
REPORTS_DIR = Path("reports")
TRAIN_REPORTS_DIR = REPORTS_DIR / "training"
