"""The parameters of the pipeline, typed, each with its one default.

``params.yaml`` (grouped by stage; DVC reads the same file and re-runs a stage when its
group changes) sets the values a project chooses; a key it leaves out takes the default
written here, once. This module is a code dependency of every stage, so changing a default
here re-runs the stages that use it too.

Run-only settings (how a stage runs, not what it computes: the analysis engine, its
workers, the batch size) are not stage parameters: :class:`RunOptions` reads them from
the command line or the environment, so changing them re-runs nothing.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import AnalysisError, CnnFilterDbError

PARAMS_FILE = Path("params.yaml")


def load_params(group: str | None = None, root: Path = Path(".")) -> dict:
    """The whole params file, or one stage's group of it ({} when absent)."""
    path = Path(root) / PARAMS_FILE
    data = yaml.safe_load(path.read_text()) if path.exists() else {}
    data = data or {}
    return data if group is None else dict(data.get(group) or {})


def _of(cls, values: "Mapping[str, Any] | None", group: str, error=CnnFilterDbError):
    """``cls`` from a params group (unknown keys are an error naming them)."""
    if isinstance(values, cls):
        return values
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise error(f"params.yaml {group}: unknown keys {unknown}; known: {sorted(known)}")
    return cls(**values)


def _whole(group: str, name: str, value, minimum: int = 1, error=CnnFilterDbError) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise error(f"params.yaml {group}.{name}: expected a whole number >= {minimum}, got {value!r}")


# --------------------------------------------------------------------------- extract

@dataclass(frozen=True)
class ExtractParams:
    """The ``extract`` group: where weights are cached and how filter shards are cut.

    cache_dir : the content-addressed weights cache; None = ``$CNN_FILTER_DB_CACHE`` or
        the user's cache folder (``config.default_cache_dir``).
    max_rows_per_shard : filters a shard (16 M: about 500 MB at ~31 bytes a filter).
    row_group_rows : filters a row group (about 75 MB uncompressed).
    """

    cache_dir: Path | None = None
    max_rows_per_shard: int = 16_000_000
    row_group_rows: int = 1_048_576

    def __post_init__(self):
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))
        for name in ("max_rows_per_shard", "row_group_rows"):
            _whole("extract", name, getattr(self, name))

    @classmethod
    def of(cls, values: "ExtractParams | Mapping[str, Any] | None") -> "ExtractParams":
        return _of(cls, values, "extract")


# --------------------------------------------------------------------------- validate

@dataclass(frozen=True)
class ValidateParams:
    """The ``validate`` group.

    max_abs_weight : a layer whose largest finite |w| reaches this fails (trained 3x3
        weights are far below it; exploded ones are not).
    data_docs : build the Data Docs HTML site beside the JSON results.
    """

    max_abs_weight: float = 1e3
    data_docs: bool = True

    @classmethod
    def of(cls, values: "ValidateParams | Mapping[str, Any] | None") -> "ValidateParams":
        return _of(cls, values, "validate")


# --------------------------------------------------------------------------- analyze

#: The groupings compared by default: model columns, ``trained``, and depth deciles.
DEFAULT_GROUPINGS = ("task", "visual_category", "training_dataset", "family", "trained", "format",
                     "depth_decile")


@dataclass(frozen=True)
class AnalyzeParams:
    """The ``analyze`` group: every threshold of SPEC.md section 5, so a run can be
    repeated with other values without touching code.

    sparsity_eps : a filter is sparse when every ``|w| < sparsity_eps * max|W|``.
    bins : histogram bins per eigen-image coefficient (drift).
    empty_bin : the density given to empty bins before renormalising (float32 eps).
    random_like_margin : ``is_random_like`` when ``H >= TH(n) - random_like_margin``.
    low_diversity_entropy, low_diversity_sparsity : ``is_low_diversity_sparse`` when
        ``H < low_diversity_entropy`` and ``S >= low_diversity_sparsity``.
    groupings : what drift compares: a column of ``models`` or ``layers``, or ``depth_decile``.
    bootstrap : Poisson-bootstrap replicates for the intervals of D (0 = no intervals).
    ci_level : coverage of the percentile interval.
    size_controlled : also compute D on subsamples of equal expected size.
    size_control_n : that size; None = the smallest group of the grouping.
    seed : seed of the subsampling hash and of the bootstrap weights.
    model_plots : write one depth plot per model.
    """

    sparsity_eps: float = 0.01
    bins: int = 70
    empty_bin: float = 1.1920929e-07
    random_like_margin: float = 0.02
    low_diversity_entropy: float = 0.5
    low_diversity_sparsity: float = 0.14
    groupings: tuple[str, ...] = DEFAULT_GROUPINGS
    bootstrap: int = 200
    ci_level: float = 0.95
    size_controlled: bool = True
    size_control_n: int | None = None
    seed: int = 0
    model_plots: bool = True

    def __post_init__(self):
        object.__setattr__(self, "groupings", tuple(self.groupings or ()))
        problems = []
        if not 0 < self.sparsity_eps < 1:
            problems.append(f"sparsity_eps: expected 0 < value < 1, got {self.sparsity_eps}")
        if self.bins < 2:
            problems.append(f"bins: expected at least 2, got {self.bins}")
        if self.bootstrap < 0:
            problems.append(f"bootstrap: expected a count >= 0, got {self.bootstrap}")
        if not 0 < self.ci_level < 1:
            problems.append(f"ci_level: expected 0 < value < 1, got {self.ci_level}")
        if self.size_control_n is not None and self.size_control_n < 1:
            problems.append(f"size_control_n: expected null or at least 1, got {self.size_control_n}")
        if len(set(self.groupings)) != len(self.groupings):
            problems.append(f"groupings: listed twice: {sorted(self.groupings)}")
        if problems:
            raise AnalysisError("params.yaml analyze: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, values: "AnalyzeParams | Mapping[str, Any] | None") -> "AnalyzeParams":
        """From the ``analyze`` group of ``params.yaml``; unknown keys are an error."""
        return _of(cls, values, "analyze", AnalysisError)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["groupings"] = list(self.groupings)
        return d


#: Environment variables of the run options (``CNN_FILTER_DB_<NAME>``).
RUN_ENV_PREFIX = "CNN_FILTER_DB_"


@dataclass(frozen=True)
class RunOptions:
    """How the analysis runs; the results do not depend on them (both engines, any number
    of workers and any batch size give the same numbers), so they are not stage params.

    engine : ``local`` (this process) or ``dask`` (one task a shard).
    scheduler : a Dask scheduler address; None starts a LocalCluster of ``workers``.
    workers : shards analysed at a time: threads of the local engine, or processes of
        the Dask LocalCluster.
    batch_rows : rows read at a time from a shard.
    """

    engine: str = "local"
    scheduler: str | None = None
    workers: int = 2
    batch_rows: int = 262_144

    def __post_init__(self):
        if self.engine not in ("local", "dask"):
            raise AnalysisError(f"run option engine: expected 'local' or 'dask', got {self.engine!r}")
        for name in ("workers", "batch_rows"):
            _whole("run", name, getattr(self, name), error=AnalysisError)

    @classmethod
    def of(cls, values: "RunOptions | Mapping[str, Any] | None" = None, environ: Mapping[str, str] = os.environ
           ) -> "RunOptions":
        """From ``values`` (e.g. command-line options; None entries skipped), then the
        environment (``CNN_FILTER_DB_ENGINE``, ``..._SCHEDULER``, ``..._WORKERS``,
        ``..._BATCH_ROWS``), then the defaults."""
        if isinstance(values, cls):
            return values
        chosen = {}
        for f in fields(cls):
            env = environ.get(RUN_ENV_PREFIX + f.name.upper())
            if env is not None:
                chosen[f.name] = int(env) if f.type == "int" else env
        chosen.update({k: v for k, v in dict(values or {}).items() if v is not None})
        return _of(cls, chosen, "run", AnalysisError)
