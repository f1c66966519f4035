"""Expectations on the ``models`` table: one row a model.

Runs on the table as published, plus two columns that ``cnn_filter_db.validate`` derives
from the ``layers`` table before the run:

- ``layers_n_layers``: how many rows of ``layers`` the model has;
- ``layers_n_filters``: the sum of out_channels x in_channels_per_group over those rows.
"""
import great_expectations.expectations as gxe

from cnn_filter_db.vocabulary import VOCABULARY_FIELDS
from cnn_filter_db.config import MODEL_ID_PATTERN
from cnn_filter_db.dataset.schema import MODELS_SCHEMA

#: The columns that name an offending row in reports.
KEYS = ["model_id"]

#: Columns every row fills; paper, accuracy and its metric and split may be null.
REQUIRED = ["model_id", "name", "architecture", "family", "source_kind", "source_uri", "weights_sha256",
            "format", "task", "visual_category", "training_dataset", "pretraining_dataset", "trained",
            "license", "training_data_license", "n_layers", "n_filters", "catalog_sha256",
            "framework_versions"]
SOURCE_KINDS = ["pypi", "url", "hf", "timm", "train"]
SHA256 = r"^[0-9a-f]{64}$"


def expectations(vocabulary: dict, params) -> list:
    ex = [gxe.ExpectTableColumnsToMatchSet(column_set=MODELS_SCHEMA.names, exact_match=False,
                                           description="every published column is present")]
    ex += [gxe.ExpectColumnValuesToNotBeNull(column=c, description=f"{c} is filled")
           for c in REQUIRED]
    ex += [
        gxe.ExpectColumnValuesToBeUnique(column="model_id", description="model_id is unique"),
        gxe.ExpectColumnValuesToMatchRegex(column="model_id", regex=MODEL_ID_PATTERN,
                                           description="model_id is lower-case and file-name safe"),
        # both rows of a duplicate are unexpected, so the report names both model ids
        gxe.ExpectColumnValuesToBeUnique(column="weights_sha256",
                                         description="no two models hold the same weights (weights_sha256 unique)"),
        gxe.ExpectColumnValuesToMatchRegex(column="weights_sha256", regex=SHA256,
                                           description="weights_sha256 is 64 lower-case hex digits"),
        gxe.ExpectColumnValuesToMatchRegex(column="catalog_sha256", regex=SHA256,
                                           description="catalog_sha256 is 64 lower-case hex digits"),
        gxe.ExpectColumnValuesToBeInSet(column="source_kind", value_set=SOURCE_KINDS,
                                        description="source_kind is a known kind of source"),
    ]
    ex += [gxe.ExpectColumnValuesToBeInSet(column=field, value_set=list(vocabulary[vocab]),
                                           description=f"{field} is in the vocabulary list {vocab!r}")
           for field, vocab in VOCABULARY_FIELDS.items()]
    ex += [
        gxe.ExpectColumnValuesToBeBetween(column="accuracy", min_value=0, max_value=1,
                                          description="accuracy is a fraction in [0, 1]"),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="n_layers", column_B="layers_n_layers",
                                            description="n_layers equals the model's rows in layers"),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="n_filters", column_B="layers_n_filters",
                                            description="n_filters equals the sum of its layers' grids"),
    ]
    return ex
