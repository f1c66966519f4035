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

:func:`.pipeline.analyze` runs it all; its parameters are :class:`cnn_filter_db.params.AnalyzeParams`.
This file imports nothing, so the modules that only need the population labels
(extraction, the card) load :mod:`.population` and the two measures it uses, not pyarrow,
pandas and matplotlib.
"""
