"""Only ``cnn_filter_db/dataset/`` lists, opens or writes shards (issue 11, item 1).

Derived from the source with ``ast``, over every module of the package outside
``dataset/`` (the analysis engine and its Dask path included) and every benchmark: none
imports ``pyarrow.parquet`` or ``pyarrow.dataset``, and none globs for ``*.parquet``.
A few files write a Parquet file that is not a shard of a release; each is listed below
with the one ``pyarrow.parquet`` name it may use and why.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG_DIR = ROOT / "src" / "cnn_filter_db"
READERS = ("pyarrow.parquet", "pyarrow.dataset")
GLOBS = ("glob", "rglob", "iglob")

#: file (relative to the repository) -> names of ``pyarrow.parquet`` it may use, and why.
ALLOWED = {
    "src/cnn_filter_db/formats/hdf5_original.py":
        ({"write_table"}, "a cache of the original HDF5 file's metadata, outside any release"),
    "benchmarks/bench_extract.py":
        ({"write_table"}, "the baseline: a plain pyarrow write of the same filters (issue 2, item 12)"),
    "benchmarks/bench_import.py":
        ({"ParquetWriter"}, "the baseline: a plain pyarrow write of the same filters"),
    "benchmarks/bench_parquet_layout.py":
        ({"write_table"}, "candidate layouts written to a temporary file, never into a release"),
    "benchmarks/bench_cdc_dedup.py":
        ({"write_table"}, "a model's shard and its edits, with and without CDC, in a temporary folder"),
}


def violations(path: Path, allowed: set[str] = frozenset()) -> list[str]:
    """What in ``path`` reads, writes or lists Parquet files other than through ``dataset``."""
    tree = ast.parse(path.read_text(), str(path))
    aliases: set[str] = set()  # local names bound to pyarrow.parquet / pyarrow.dataset
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in READERS:
                    aliases.add(a.asname or a.name)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            if node.module == "pyarrow":
                for a in node.names:
                    if f"pyarrow.{a.name}" in READERS:
                        aliases.add(a.asname or a.name)
            elif node.module in READERS:
                for a in node.names:
                    if a.name not in allowed:
                        found.append(f"line {node.lineno}: from {node.module} import {a.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            if node.attr not in allowed:
                found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Attribute) and ast.unparse(node.value) in READERS:  # pyarrow.parquet.x
            if node.attr not in allowed:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in GLOBS
              and node.args and isinstance(node.args[0], ast.Constant) and "parquet" in str(node.args[0].value)):
            found.append(f"line {node.lineno}: {ast.unparse(node.func)}({node.args[0].value!r}) lists shards")
    return found


def checked_files() -> list[Path]:
    files = [p for p in PKG_DIR.rglob("*.py") if "dataset" not in p.relative_to(PKG_DIR).parts[:1]]
    return sorted(files + list((ROOT / "benchmarks").glob("*.py")))


@pytest.mark.parametrize("path", checked_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_module_outside_dataset_opens_or_lists_shards(path):
    allowed = ALLOWED.get(path.relative_to(ROOT).as_posix(), (set(), ""))[0]
    assert violations(path, allowed) == [], f"{path.relative_to(ROOT)}: go through cnn_filter_db.dataset"


def test_the_boundary_covers_the_analysis_engine_and_the_benchmarks():
    names = {p.relative_to(ROOT).as_posix() for p in checked_files()}
    assert {"src/cnn_filter_db/analysis/engine.py", "src/cnn_filter_db/analysis/pipeline.py",
            "src/cnn_filter_db/filter_scan.py", "benchmarks/bench_analyze.py",
            "benchmarks/bench_validate.py"} <= names
    assert not any(n.startswith("src/cnn_filter_db/dataset/") for n in names)
    assert set(ALLOWED) <= names  # no stale entry


def test_the_check_finds_each_way_of_reaching_a_shard(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pyarrow.parquet as pq\n"                       # 1
        "from pyarrow import parquet\n"                       # 2
        "from pyarrow.parquet import ParquetFile\n"           # 3
        "import pyarrow.dataset\n"                            # 4
        "from pathlib import Path\n"                          # 5
        "pq.read_table('x')\n"                                # 6
        "parquet.ParquetFile('x')\n"                          # 7
        "pyarrow.dataset.dataset('x')\n"                      # 8
        "Path('r').rglob('*.parquet')\n"                      # 9
        "Path('r').glob('filters/*/*.parquet')\n"             # 10
        "pq.write_table(None, 'y')\n"                         # 11
    )
    lines = sorted(int(v.split(":")[0].split()[1]) for v in violations(bad))
    assert lines == [3, 6, 7, 8, 9, 10, 11]
    # an allowed name is allowed, nothing else
    assert sorted(int(v.split(":")[0].split()[1]) for v in violations(bad, {"write_table"})) == [3, 6, 7, 8, 9, 10]
    clean = tmp_path / "clean.py"
    clean.write_text("import pyarrow as pa\nfrom cnn_filter_db.dataset import reader\n"
                     "reader.read_table('r', 'models')\nPath('r').glob('*.yaml')\n")
    assert violations(clean) == []
