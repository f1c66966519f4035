"""The Arrow schemas of the published tables and the Parquet options they are written with.

The one source of truth for column names, types and Parquet options: extraction, the
readers, validation, the card and the analysis all take them from here.
"""
from __future__ import annotations

import pyarrow as pa

from .. import config

FILTERS_SCHEMA = pa.schema([
    pa.field("model_id", pa.string(), nullable=False),
    pa.field("layer_id", pa.int32(), nullable=False),
    pa.field("out_channel", pa.int32(), nullable=False),
    pa.field("in_channel", pa.int32(), nullable=False),
    pa.field("weights", pa.list_(pa.field("element", pa.float32(), nullable=False), 9), nullable=False),
])

LAYERS_SCHEMA = pa.schema([
    ("model_id", pa.string()),
    ("layer_id", pa.int32()),
    ("layer_name", pa.string()),
    ("conv_depth", pa.int32()),
    ("conv_depth_norm", pa.float32()),
    ("out_channels", pa.int32()),
    ("in_channels_per_group", pa.int32()),
    ("groups", pa.int32()),
    ("conv_kind", pa.string()),
    ("n_filters", pa.int64()),
])

#: ``layer_stats`` (written by the analysis): the ``layers`` columns, then the metrics of
#: SPEC.md section 5 (null where undefined: H of one filter, O of one output channel).
LAYER_STATS_SCHEMA = pa.schema(list(LAYERS_SCHEMA) + [
    ("sparsity", pa.float64()),
    ("variance_entropy", pa.float64()),
    ("variance_entropy_norm", pa.float64()),
    ("variance_entropy_clean", pa.float64()),
    ("orthogonality", pa.float64()),
    ("weight_mean", pa.float64()),
    ("weight_std", pa.float64()),
    ("weight_absmax", pa.float64()),
    ("is_random_like", pa.bool_()),
    ("is_low_diversity_sparse", pa.bool_()),
    ("is_degenerate", pa.bool_()),
])

MODELS_SCHEMA = pa.schema([
    ("model_id", pa.string()),
    ("name", pa.string()),
    ("architecture", pa.string()),
    ("family", pa.string()),
    ("source_kind", pa.string()),
    ("source_uri", pa.string()),
    ("weights_sha256", pa.string()),
    ("format", pa.string()),
    ("task", pa.string()),
    ("visual_category", pa.string()),
    ("training_dataset", pa.string()),
    ("pretraining_dataset", pa.string()),
    ("trained", pa.bool_()),
    ("training", pa.string()),            # pretrained | trained-here | initialisation (analysis.population)
    ("training_steps", pa.int64()),       # optimizer steps of a trained-here run
    ("random_like_share", pa.float64()),  # share of 3x3 layers with H >= TH(n)
    ("near_initialisation", pa.bool_()),  # trained-here with random_like_share >= 0.9
    ("license", pa.string()),
    ("training_data_license", pa.string()),
    ("paper", pa.string()),
    ("accuracy", pa.float64()),
    ("accuracy_metric", pa.string()),
    ("accuracy_split", pa.string()),
    ("validation_accuracy", pa.float64()),
    ("n_layers", pa.int32()),
    ("n_filters", pa.int64()),
    ("catalog_sha256", pa.string()),
    ("framework_versions", pa.string()),  # JSON object: package -> version
])

WEIGHTS_LEAF = "weights.list.element"


def parquet_options(schema: pa.Schema) -> dict:
    """Writer options: zstd, a CRC32 checksum on every page, a page index. On the filters:
    byte-stream-split, no dictionary and no statistics on the weights; a dictionary on
    ``model_id`` only; content-defined pages as ``config.CONTENT_DEFINED_CHUNKING`` says (off).

    Measured on 1e7 filters (benchmarks/bench_extract.py): the integer columns plain-encoded
    write about 6 % faster than dictionary-encoded and are no larger after zstd (30.80 against
    30.81 B/filter); per-page min/max of the weights serve no filter or query (rows are found
    by layer and channel) and cost a pass over every value.
    """
    names = [f.name for f in schema]
    opts = dict(compression=config.COMPRESSION, compression_level=config.COMPRESSION_LEVEL,
                write_page_checksum=True,  # readers verify them: a flipped byte is an error
                write_page_index=config.PAGE_INDEX)
    if "weights" in names:
        opts["use_dictionary"] = ["model_id"]
        opts["write_statistics"] = [n for n in names if n != "weights"]
        opts["use_byte_stream_split"] = [WEIGHTS_LEAF]
        opts["use_content_defined_chunking"] = config.CONTENT_DEFINED_CHUNKING
        # values handed to the encoder at a time (default 1,024): the same bytes, a few % less CPU
        opts["write_batch_size"] = 1 << 16
    return opts


#: The schema of each table this package defines, by config name (``config.RELEASE_CONFIGS``).
SCHEMAS = {"filters": FILTERS_SCHEMA, "layers": LAYERS_SCHEMA, "models": MODELS_SCHEMA,
           "layer_stats": LAYER_STATS_SCHEMA}
