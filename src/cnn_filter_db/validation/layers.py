"""Expectations on the ``layers`` table: one row a 3x3 conv layer.

Runs on the table as published, plus one derived column:

- ``grid_filters``: out_channels x in_channels_per_group.

Expectation parameter (filled at run time): ``model_ids``, the model_id column of ``models``.
"""
import great_expectations.expectations as gxe

from cnn_filter_db.vocabulary import CONV_KINDS
from cnn_filter_db.dataset.schema import LAYERS_SCHEMA

KEYS = ["model_id", "layer_id"]

REQUIRED = ["model_id", "layer_id", "layer_name", "conv_depth", "conv_depth_norm", "out_channels",
            "in_channels_per_group", "conv_kind", "n_filters"]  # groups is null where the format is silent


def expectations(vocabulary: dict, params) -> list:
    ex = [gxe.ExpectTableColumnsToMatchSet(column_set=LAYERS_SCHEMA.names, exact_match=False,
                                           description="every published column is present")]
    ex += [gxe.ExpectColumnValuesToNotBeNull(column=c, description=f"{c} is filled") for c in REQUIRED]
    ex += [
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["model_id", "layer_id"],
                                            description="(model_id, layer_id) is unique"),
        gxe.ExpectColumnValuesToBeInSet(column="model_id", value_set={"$PARAMETER": "model_ids"},
                                        description="every model_id is a row of models"),
        gxe.ExpectColumnValuesToBeBetween(column="layer_id", min_value=0,
                                          description="layer_id is 0-based"),
        gxe.ExpectColumnValuesToBeBetween(column="out_channels", min_value=1,
                                          description="out_channels is positive"),
        gxe.ExpectColumnValuesToBeBetween(column="in_channels_per_group", min_value=1,
                                          description="in_channels_per_group is positive"),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="n_filters", column_B="grid_filters",
                                            description="n_filters == out_channels * in_channels_per_group"),
        gxe.ExpectColumnValuesToBeBetween(column="conv_depth_norm", min_value=0, max_value=1,
                                          description="conv_depth_norm is within [0, 1]"),
        gxe.ExpectColumnValuesToBeInSet(column="conv_kind", value_set=list(CONV_KINDS),
                                        description="conv_kind is dense, grouped or depthwise"),
    ]
    return ex
