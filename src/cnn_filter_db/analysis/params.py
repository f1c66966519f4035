"""The parameters of the analysis (the ``analyze`` group of ``params.yaml``), with defaults.

Every threshold of SPEC.md section 5 is a parameter here, so a run can be repeated with
other values without touching code.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..errors import AnalysisError
from .population import POPULATIONS

#: The groupings compared by default: model columns, ``training``, and depth deciles.
DEFAULT_GROUPINGS = ("task", "visual_category", "training_dataset", "family", "training", "format",
                     "depth_decile")

#: Two runs of one recipe that differ only in the seed: D between them is a second null.
DEFAULT_NULL_PAIRS = (("train-resnet9-mnist5k-s0", "train-resnet9-mnist5k-s1"),)


@dataclass(frozen=True)
class AnalyzeParams:
    """Parameters of :func:`cnn_filter_db.analysis.pipeline.analyze`.

    Parameters
    ----------
    sparsity_eps : a filter is sparse when every ``|w| < sparsity_eps * max|W|``.
    bins : histogram bins per eigen-image coefficient (drift).
    empty_bin : the density given to empty bins before renormalising (float32 eps).
    random_like_margin : ``is_random_like`` when ``H >= TH(n) - random_like_margin`` (0: the
        authors' threshold).
    low_diversity_entropy, low_diversity_sparsity : ``is_low_diversity_sparse`` when
        ``H < low_diversity_entropy`` and ``S >= low_diversity_sparsity`` (this project's choice).
    population : the models every statistic is over: ``trained`` (pre-trained and trained-here
        models that left their initialisation; the others are controls, reported beside),
        ``controls`` or ``all`` (see :mod:`.population`).
    groupings : what drift compares: a column of ``models`` or ``layers``, or ``depth_decile``.
    min_group_filters, min_group_models : smaller groups are listed but not compared.
    null_pairs : pairs of model ids (runs of one recipe with another seed); D between the two
        is reported as a second null. Pairs absent from the release are skipped.
    bootstrap : Poisson-bootstrap replicates for the intervals of D (0 = no intervals).
    ci_level : coverage of the percentile interval.
    size_controlled : also compute D with every group reduced to the same number of filters.
    size_control_n : that number; null = the smallest compared group of the grouping.
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
    population: str = "trained"
    groupings: tuple[str, ...] = DEFAULT_GROUPINGS
    min_group_filters: int = 1000
    min_group_models: int = 1
    null_pairs: tuple[tuple[str, str], ...] = DEFAULT_NULL_PAIRS
    bootstrap: int = 200
    ci_level: float = 0.95
    size_controlled: bool = True
    size_control_n: int | None = None
    size_control_draws: int = 200
    seed: int = 0
    model_plots: bool = True

    def __post_init__(self):
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
    def from_dict(cls, values: dict | None) -> "AnalyzeParams":
        """From the ``analyze`` group of ``params.yaml``; unknown keys are an error."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise AnalysisError(f"params.yaml analyze: unknown keys {unknown}; known: {sorted(known)}")
        if "groupings" in values:
            values["groupings"] = tuple(values["groupings"] or ())
        if "null_pairs" in values:
            values["null_pairs"] = tuple(tuple(pair) for pair in values["null_pairs"] or ())
        return cls(**values)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["groupings"] = list(self.groupings)
        d["null_pairs"] = [list(pair) for pair in self.null_pairs]
        return d
