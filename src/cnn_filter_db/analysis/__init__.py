"""The analysis of a release (SPEC.md section 5): one module a measure, and the engine.

- :mod:`.sparsity`, :mod:`.entropy`, :mod:`.orthogonality`, :mod:`.degeneration`: the
  per-layer measures; :mod:`.layer` computes them all in one sweep of a layer.
- :mod:`.population`: each model's training label and the populations (trained, with the
  controls beside).
- :mod:`.basis`: the streaming eigen-image basis; :mod:`.drift`: D between groups, its
  bootstrap interval, its null and the size-controlled D.
- :mod:`.labels`: the small tables and the groupings; :mod:`.engine`: the three streaming
  passes over the shards, locally or on Dask; :mod:`.pipeline`: :func:`analyze`;
  :mod:`.report` and :mod:`.plots`: the outputs.
"""
from .params import AnalyzeParams

__all__ = ["AnalyzeParams", "analyze"]


def analyze(release_dir, reports_dir, params=None) -> dict:
    """See :func:`cnn_filter_db.analysis.pipeline.analyze` (imported on first use: it pulls
    in pyarrow, pandas and matplotlib)."""
    from .pipeline import analyze as _analyze

    return _analyze(release_dir, reports_dir, params)
