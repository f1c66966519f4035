"""Expectations on ``manifest.json``: one row a file, recorded in the manifest (the shards
and the card files README.md and CITATION.cff) or on disk (every visible file of the folder
but manifest.json: a stray file is a row that is not listed).

The frame is ``cnn_filter_db.dataset.manifest.compare``, the one comparison of a release
folder with its manifest (``check_manifest`` reports the same). Columns: ``path`` (relative
to the release folder), ``listed`` (in the manifest), ``exists`` (on disk), ``regular``
(a regular file, not a link, fifo or device: only those are opened; null when missing),
``sha256_recorded`` / ``sha256_actual`` (an edited card differs
here), ``rows_recorded`` / ``rows_actual`` (shards only, from the Parquet footer),
``fingerprint_recorded`` (the manifest's).

Expectation parameter: ``fingerprint_recomputed``, the fingerprint over the sha256 of the
shards on disk (``cnn_filter_db.dataset.manifest.fingerprint``).

This suite checks the manifest against the files only; the content of the shards is the
other suites' business, so a shard whose manifest entry was updated to match it still
fails there if its content is wrong. It is skipped, with a note, while a release folder has
no manifest.json yet (validation runs before the release stage writes it).
"""
import great_expectations.expectations as gxe

KEYS = ["path"]


def expectations(vocabulary: dict, params) -> list:
    return [
        gxe.ExpectColumnValuesToBeInSet(column="exists", value_set=[True],
                                        description="every file the manifest lists exists"),
        gxe.ExpectColumnValuesToBeInSet(column="regular", value_set=[True],
                                        description="every entry is a regular file (no link, fifo or device; "
                                                    "such an entry is never opened)"),
        gxe.ExpectColumnValuesToBeInSet(column="listed", value_set=[True],
                                        description="every file on disk is listed in the manifest (no stray files)"),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="sha256_recorded", column_B="sha256_actual",
                                            ignore_row_if="either_value_is_missing",
                                            description="every file has the sha256 the manifest records"),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="rows_recorded", column_B="rows_actual",
                                            ignore_row_if="either_value_is_missing",
                                            description="every shard has the row count the manifest records"),
        gxe.ExpectColumnDistinctValuesToEqualSet(
            column="fingerprint_recorded", value_set={"$PARAMETER": "fingerprint_recomputed"},
            description="the manifest's fingerprint recomputes from the shards on disk"),
    ]
