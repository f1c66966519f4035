"""The parameters of the analysis (the ``analyze`` group of ``params.yaml``), with defaults.

Every threshold of SPEC.md section 5 is a parameter here, so a run can be repeated with
other values without touching code.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..errors import AnalysisError

#: The groupings compared by default: model columns, ``trained``, and depth deciles.
DEFAULT_GROUPINGS = ("task", "visual_category", "training_dataset", "family", "trained", "format",
                     "depth_decile")


@dataclass(frozen=True)
class AnalyzeParams:
    """Parameters of :func:`cnn_filter_db.analysis.analyze`.

    Parameters
    ----------
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
    size_control_n : that size; null = the smallest group of the grouping.
    seed : seed of the subsampling hash and of the bootstrap weights.
    engine : ``local`` (this process) or ``dask`` (one task a shard).
    scheduler : a Dask scheduler address; null starts a LocalCluster of ``workers``.
    workers : shards analysed at a time: threads of the local engine, or processes of
        the Dask LocalCluster.
    batch_rows : rows read at a time from a shard (Parquet ``iter_batches``).
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
    engine: str = "local"
    scheduler: str | None = None
    workers: int = 2
    batch_rows: int = 262_144
    model_plots: bool = True

    def __post_init__(self):
        problems = []
        if not 0 < self.sparsity_eps < 1:
            problems.append(f"sparsity_eps: expected 0 < value < 1, got {self.sparsity_eps}")
        if self.bins < 2:
            problems.append(f"bins: expected at least 2, got {self.bins}")
        if self.bootstrap < 0:
            problems.append(f"bootstrap: expected a count >= 0, got {self.bootstrap}")
        if not 0 < self.ci_level < 1:
            problems.append(f"ci_level: expected 0 < value < 1, got {self.ci_level}")
        if self.engine not in ("local", "dask"):
            problems.append(f"engine: expected 'local' or 'dask', got {self.engine!r}")
        if self.batch_rows < 1:
            problems.append(f"batch_rows: expected at least 1, got {self.batch_rows}")
        if self.size_control_n is not None and self.size_control_n < 1:
            problems.append(f"size_control_n: expected null or at least 1, got {self.size_control_n}")
        if len(set(self.groupings)) != len(self.groupings):
            problems.append(f"groupings: listed twice: {sorted(self.groupings)}")
        if problems:
            raise AnalysisError("params.yaml analyze: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, values: dict | None) -> "AnalyzeParams":
        """From the ``analyze`` group of ``params.yaml``; unknown keys are an error."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise AnalysisError(f"params.yaml analyze: unknown keys {unknown}; known: {sorted(known)}")
        if "groupings" in values:
            values["groupings"] = tuple(values["groupings"] or ())
        return cls(**values)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["groupings"] = list(self.groupings)
        return d
