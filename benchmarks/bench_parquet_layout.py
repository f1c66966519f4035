"""Storage of the filters table under three Parquet layouts, on a built release folder.

    python benchmarks/bench_parquet_layout.py [RELEASE_DIR]

Each model's filter shards are read and written again, one file a model, with the
package's writer options (zstd, byte-stream-split weights, row groups of
``ExtractParams().row_group_rows``): without page index and CDC, with a page index (column and offset indexes:
readers can skip pages within a row group), and with the page index and content-defined
chunking (pyarrow >= 21: page boundaries follow the content, so that content-addressed
storage such as the Hub's Xet deduplicates the unchanged parts of a changed file). Prints
bytes a filter for each, and the time to write.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from cnn_filter_db import config
from cnn_filter_db.dataset import layout, reader, schema
from cnn_filter_db.params import ExtractParams

LAYOUTS = {
    "no page index, no CDC": {},
    "page index": {"write_page_index": True},
    "page index + CDC": {"write_page_index": True, "use_content_defined_chunking": True},
    "page index + CDC 1-4 MiB": {"write_page_index": True,
                                 "use_content_defined_chunking": {"min_chunk_size": 1 << 20, "max_chunk_size": 4 << 20}},
    "the package's options": None,  # schema.parquet_options as configured
}
NEW = ("write_page_index", "use_content_defined_chunking")


def main(release_dir: Path) -> None:
    models = layout.filter_models(release_dir)
    n_rows = 0
    sizes = {name: 0 for name in LAYOUTS}
    seconds = {name: 0.0 for name in LAYOUTS}
    with tempfile.TemporaryDirectory() as tmp:
        for model_id in models:
            table = reader.read_filters(release_dir, model_id, verify=False)
            n_rows += table.num_rows
            for name, extra in LAYOUTS.items():
                out = Path(tmp) / f"{model_id}.parquet"
                t = time.perf_counter()
                opts = schema.parquet_options(table.schema)
                if extra is not None:
                    opts = {k: v for k, v in opts.items() if k not in NEW} | extra
                pq.write_table(table, out, row_group_size=ExtractParams().row_group_rows, **opts)
                seconds[name] += time.perf_counter() - t
                sizes[name] += out.stat().st_size
                out.unlink()
    print(f"{release_dir}: {len(models)} models, {n_rows:,} filters")
    for name in LAYOUTS:
        print(f"  {name:26s} {sizes[name] / n_rows:6.2f} bytes a filter  ({sizes[name] / 1e6:7.1f} MB, "
              f"written in {seconds[name]:.1f} s)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else config.RELEASE_DIR))
