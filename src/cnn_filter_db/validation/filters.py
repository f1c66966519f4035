"""Expectations on the ``filters`` table, run on its per-layer summary.

A billion filters do not fit a pandas frame, so ``cnn_filter_db.filter_scan`` reads every
shard once, batch by batch (``cnn_filter_db.dataset.runs``), and reduces it to one row a
(model_id, layer_id): every layer of ``layers`` plus every layer the shards hold. The columns these expectations read:

- ``in_layers``: the (model_id, layer_id) is a row of ``layers``;
- ``malformed_rows``: rows of shards whose schema is not FILTERS_SCHEMA (9 float32 a row);
- ``non_finite``: rows holding a NaN or an infinity;
- ``max_abs``: max |w| over the layer's finite weights;
- ``duplicate_keys``: rows repeating the previous (layer_id, out_channel, in_channel);
- ``unordered_keys``: rows whose key is below the previous one (the sort order is broken);
- ``out_of_range_keys``: rows with a channel index outside the layer's grid;
- ``missing_keys``: keys of the out_channels x in_channels_per_group grid with no row
  (so that, with no duplicates, each layer holds exactly n_filters rows);
- ``misplaced_rows``: rows whose model_id is not the shard folder's.

Columns that need the layer's grid are null for a layer missing from ``layers``; the
expectations skip nulls, so such a layer fails ``in_layers`` only.
"""
import great_expectations.expectations as gxe

KEYS = ["model_id", "layer_id"]


def _zero(column: str, description: str):
    return gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, max_value=0, description=description)


def expectations(vocabulary: dict, params) -> list:
    return [
        gxe.ExpectColumnValuesToBeInSet(column="in_layers", value_set=[True],
                                        description="every (model_id, layer_id) of the filters is a row of layers"),
        _zero("malformed_rows", "every row holds 9 float32 weights (shard schema is FILTERS_SCHEMA)"),
        _zero("non_finite", "every weight is finite (no NaN, no inf)"),
        gxe.ExpectColumnValuesToBeBetween(
            column="max_abs", max_value=float(params.max_abs_weight), strict_max=True,
            description=f"max |w| of each layer is below {params.max_abs_weight:g} (no exploded weights)"),
        _zero("duplicate_keys", "(model_id, layer_id, out_channel, in_channel) is unique"),
        _zero("unordered_keys", "rows are sorted by (layer_id, out_channel, in_channel)"),
        _zero("out_of_range_keys", "channel indices are within the layer's out_channels and in_channels_per_group"),
        _zero("missing_keys", "each layer is complete: every (out_channel, in_channel) of its grid has a row"),
        _zero("misplaced_rows", "every row's model_id is its shard folder's"),
    ]
