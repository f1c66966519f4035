"""The parameters of the pipeline, typed, each with its one default: one class a group of
``params.yaml`` (``extract``, ``train``, ``validate``, ``analyze``, ``release``, ``catalog``).

``params.yaml`` (grouped by stage; DVC reads the same file and re-runs a stage when its
group changes) holds only what this project sets differently from these defaults, and
what dvc.yaml itself reads (``catalog.sets``); a key it leaves out takes the default written
here, once (``tests/test_params.py`` fails on a key that repeats a default, and on a
literal default repeated in a signature or a command-line option). Functions that take one
parameter use the class attribute as their default (``eps=AnalyzeParams.sparsity_eps``).
This module is a code dependency of every stage, so changing a default here re-runs the
stages that use it too. It imports nothing of the package but ``config`` and ``errors``.

Run-only settings (how a stage runs, not what it computes: the analysis engine, its
workers, the batch size) are not stage parameters: :class:`RunOptions` reads them from
the command line or the environment, so changing them re-runs nothing.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from . import config
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
    """The ``extract`` group: how filter shards are cut. (Where weights are cached is not a
    parameter: ``--cache-dir`` or ``$CNN_FILTER_DB_CACHE``, see ``config.default_cache_dir``;
    the cache is content-addressed, so its place changes no output.)

    max_rows_per_shard : filters a shard (16 M: about 500 MB at ~31 bytes a filter).
    row_group_rows : filters a row group (about 75 MB uncompressed).
    """

    max_rows_per_shard: int = 16_000_000
    row_group_rows: int = 1_048_576

    def __post_init__(self):
        for name in ("max_rows_per_shard", "row_group_rows"):
            _whole("extract", name, getattr(self, name))

    @classmethod
    def of(cls, values: "ExtractParams | Mapping[str, Any] | None") -> "ExtractParams":
        return _of(cls, values, "extract")


# --------------------------------------------------------------------------- train

@dataclass(frozen=True)
class TrainParams:
    """The ``train`` group: how ``train`` catalog entries are trained (see :mod:`.train`).

    profile : ``quick`` (offline, minutes on a CPU, AdamW) or ``paper`` (the published recipe
        and datasets: 100 epochs, batch 256; online, for a GPU).
    reports_dir : a training curve (PNG) and the run's numbers (JSON) per model, relative to
        the project root.
    num_threads : torch CPU threads. Fixed, because CPU results may depend on the thread
        count (the checkpoint pins in the catalog hold for 1); and on a machine shared with
        other work, two OpenMP threads on two busy cores ran 5-10x slower than one.
    device : ``auto`` (the GPU when there is one), ``cpu`` or ``cuda``.
    hub_ids : dataset name -> Hub dataset id, overriding the dataset's own default
        (``train.data.DATASETS``) for recipes on the full datasets.
    """

    profile: str = "quick"
    reports_dir: Path = config.REPORTS_DIR / "training"
    num_threads: int = 1
    device: str = "auto"
    hub_ids: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "reports_dir", Path(self.reports_dir))
        object.__setattr__(self, "hub_ids", dict(self.hub_ids or {}))
        _whole("train", "num_threads", self.num_threads)

    @classmethod
    def of(cls, values: "TrainParams | Mapping[str, Any] | None") -> "TrainParams":
        return _of(cls, values, "train")


# --------------------------------------------------------------------------- validate

@dataclass(frozen=True)
class ValidateParams:
    """The ``validate`` group.

    max_abs_weight : a layer whose largest finite |w| reaches this fails (exploded weights).
        Real trained layers reach the thousands where batch norm was folded into the conv
        (mediapipe-pose-landmark-full, layer 12: 2,360), so the bound sits above them.
    """

    max_abs_weight: float = 1e4

    @classmethod
    def of(cls, values: "ValidateParams | Mapping[str, Any] | None") -> "ValidateParams":
        return _of(cls, values, "validate")


# --------------------------------------------------------------------------- analyze

#: The populations a statistic can be over (``analysis.population``).
TRAINED, CONTROLS, ALL = "trained", "controls", "all"
POPULATIONS = (TRAINED, CONTROLS, ALL)


@dataclass(frozen=True)
class AnalyzeParams:
    """The ``analyze`` group: the parameters of :func:`cnn_filter_db.analysis.pipeline.analyze`.

    Every threshold of SPEC.md section 5 is a parameter here, so a run can be repeated with
    other values without touching code.

    sparsity_eps : a filter is sparse when every ``|w| < sparsity_eps * max|W|`` of its layer.
    bins : histogram bins per eigen-image coefficient (drift).
    empty_bin : the density given to empty bins before renormalising (float32 eps).
    random_like_margin : ``is_random_like`` when ``H >= TH(n) - random_like_margin`` (0: the
        authors' threshold).
    low_diversity_entropy, low_diversity_sparsity : ``is_low_diversity_sparse`` when
        ``H < low_diversity_entropy`` and ``S >= low_diversity_sparsity`` (this project's choice).
    population : the models every statistic is over: ``trained`` (pre-trained and trained-here
        models that left their initialisation; the others are controls, reported beside),
        ``controls`` or ``all`` (see :mod:`.analysis.population`).
    groupings : what drift compares: a column of ``models`` or ``layers``, or ``depth_decile``.
    min_group_filters, min_group_models : smaller groups are listed but not compared.
    null_pairs : pairs of model ids (runs of one recipe with another seed); D between the two
        is reported as a second null. Pairs absent from the release are skipped. None by
        default: the pairs name catalog entries, so params.yaml lists them.
    bootstrap : Poisson-bootstrap replicates for the intervals of D (0 = no intervals).
    ci_level : coverage of the percentile interval.
    size_controlled : also compute D with every group reduced to the same number of filters.
    size_control_n : that number; None = the smallest compared group of the grouping.
    size_control_draws : draws of the size-controlled D (its median and interval).
    seed : seed of the null's splits, of the bootstrap weights and of the draws.
    model_plots : write one depth plot per model.
    """

    sparsity_eps: float = 0.01
    bins: int = 70
    empty_bin: float = 1.1920929e-07
    random_like_margin: float = 0.0
    low_diversity_entropy: float = 0.5
    low_diversity_sparsity: float = 0.14
    population: str = TRAINED
    groupings: tuple[str, ...] = ("task", "visual_category", "training_dataset", "family", "training", "format",
                                  "depth_decile")
    min_group_filters: int = 1000
    min_group_models: int = 1
    null_pairs: tuple[tuple[str, str], ...] = ()
    bootstrap: int = 200
    ci_level: float = 0.95
    size_controlled: bool = True
    size_control_n: int | None = None
    size_control_draws: int = 200
    seed: int = 0
    model_plots: bool = True

    def __post_init__(self):
        object.__setattr__(self, "groupings", tuple(self.groupings or ()))
        object.__setattr__(self, "null_pairs", tuple(tuple(pair) for pair in self.null_pairs or ()))
        problems = []
        if not 0 < self.sparsity_eps < 1:
            problems.append(f"sparsity_eps: expected 0 < value < 1, got {self.sparsity_eps}")
        if self.population not in POPULATIONS:
            problems.append(f"population: expected one of {list(POPULATIONS)}, got {self.population!r}")
        if self.min_group_filters < 2 or self.min_group_models < 1:
            problems.append(f"min_group_filters, min_group_models: expected at least 2 and 1, got "
                            f"{self.min_group_filters} and {self.min_group_models}")
        if self.size_control_draws < 1:
            problems.append(f"size_control_draws: expected at least 1, got {self.size_control_draws}")
        if any(len(pair) != 2 or pair[0] == pair[1] for pair in self.null_pairs):
            problems.append(f"null_pairs: expected pairs of two model ids, got {[list(x) for x in self.null_pairs]}")
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
    def of(cls, values: "AnalyzeParams | Mapping[str, Any] | None") -> "AnalyzeParams":
        """From the ``analyze`` group of ``params.yaml``; unknown keys are an error."""
        return _of(cls, values, "analyze", AnalysisError)

    def to_dict(self) -> dict:
        """The effective values, as params.yaml would hold them (lists, not tuples)."""
        d = asdict(self)
        d["groupings"] = list(self.groupings)
        d["null_pairs"] = [list(pair) for pair in self.null_pairs]
        return d


# --------------------------------------------------------------------------- release

@dataclass(frozen=True)
class ReleaseParams:
    """The ``release`` group: what a release is called, where it goes, what it may contain.

    version : the dataset release's version (written into its manifest and card); required
        to build a release.
    redistributable_licenses : weights licences the published release may redistribute;
        models outside the list are left out (catalog/index.yaml names them and why).
        None: no policy (building a release requires one).
    allow_unknown_license : publish weights whose licence nobody states (flagged in the card).
    hub_repo_id : the Hub dataset repository (also the public DVC remote).
    source_repository : the git URL `dvc get` names in the card; None: GitHub, named as the
        Hub repository.
    previous_manifest : the previous release's manifest.json (or folder), for the changelog.
    year : the citation year of the dataset entry; None: no year (a build date would make the
        card differ between two builds of the same release).
    """

    version: str | None = None
    redistributable_licenses: tuple[str, ...] | None = None
    allow_unknown_license: bool = False
    hub_repo_id: str | None = None
    source_repository: str | None = None
    previous_manifest: str | None = None
    year: str | None = None

    def __post_init__(self):
        if self.version is not None:
            object.__setattr__(self, "version", str(self.version))
        if self.redistributable_licenses is not None:
            object.__setattr__(self, "redistributable_licenses", tuple(self.redistributable_licenses))

    @classmethod
    def of(cls, values: "ReleaseParams | Mapping[str, Any] | None") -> "ReleaseParams":
        return _of(cls, values, "release")


# --------------------------------------------------------------------------- catalog

@dataclass(frozen=True)
class CatalogParams:
    """The ``catalog`` group. sets : the catalog sets to build (dvc.yaml makes one stage a set)."""

    sets: tuple[str, ...] = (config.DEFAULT_SET,)

    def __post_init__(self):
        object.__setattr__(self, "sets", tuple(self.sets or ()))

    @classmethod
    def of(cls, values: "CatalogParams | Mapping[str, Any] | None") -> "CatalogParams":
        return _of(cls, values, "catalog")


#: params.yaml's groups and their classes.
#: Experiment switches: written out in params.yaml although they equal their default here,
#: because ``dvc exp run -S key=value`` sets only keys the file already has (a key left out
#: needs ``-S ++key=value``), and these are the ones the README tells users to flip.
#: tests/test_params.py allows exactly these (and what dvc.yaml interpolates) to repeat a default.
SWITCHES = ("train.profile", "analyze.population")

GROUPS = {"extract": ExtractParams, "train": TrainParams, "validate": ValidateParams, "analyze": AnalyzeParams,
          "release": ReleaseParams, "catalog": CatalogParams}


# --------------------------------------------------------------------------- run options

#: Environment variables of the run options (``CNN_FILTER_DB_<NAME>``).
RUN_ENV_PREFIX = "CNN_FILTER_DB_"


@dataclass(frozen=True)
class RunOptions:
    """How a stage runs, not what it computes: the outputs DVC tracks do not depend on them
    (both engines, any number of workers and any batch size give the same numbers), so they
    are not stage params.

    engine : ``local`` (this process) or ``dask`` (one task a shard).
    scheduler : a Dask scheduler address; None starts a LocalCluster of ``workers``.
    workers : shards analysed at a time: threads of the local engine, or processes of
        the Dask LocalCluster.
    batch_rows : rows read (decoded) at a time from a shard, by the analysis and every
        streaming reader (``dataset.runs``, ``dataset.reader``, the validation scan): a slice
        of a row group keeps numpy temporaries small and in cache.
    data_docs : validation also builds the Great Expectations Data Docs HTML site beside
        its JSON results (``reports/validation/data_docs``, not a DVC output).
    """

    engine: str = "local"
    scheduler: str | None = None
    workers: int = 2
    batch_rows: int = 1 << 18
    data_docs: bool = True

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
        ``..._BATCH_ROWS``, ``..._DATA_DOCS``: 0, false or no turn it off), then the defaults."""
        if isinstance(values, cls):
            return values
        chosen = {}
        for f in fields(cls):
            env = environ.get(RUN_ENV_PREFIX + f.name.upper())
            if env is not None:
                if f.type == "int":
                    chosen[f.name] = int(env)
                elif f.type == "bool":
                    chosen[f.name] = env.strip().lower() not in ("0", "false", "no")
                else:
                    chosen[f.name] = env
        chosen.update({k: v for k, v in dict(values or {}).items() if v is not None})
        return _of(cls, chosen, "run", AnalysisError)
