"""The parameters of the pipeline, typed, each with its one default (the ``analyze`` group:
``analysis.params.AnalyzeParams``, beside the analysis it configures).

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
from dataclasses import dataclass, fields
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


# --------------------------------------------------------------------------- run options

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
