"""The Hugging Face Hub's limits on a dataset repository, checked on a release folder as built.

The Hub advises fewer than 10,000 entries in one folder and about 100,000 files in a
repository, and large files of at most a few GB (each is stored and served whole). The
release keeps one folder a model under ``filters/``, so the per-folder limit bounds the
number of models of one release; shards are capped by ``extract.max_rows_per_shard``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MAX_ENTRIES_PER_FOLDER = 10_000
MAX_FILES_PER_REPO = 100_000
MAX_FILE_BYTES = 5 * 1024**3  # "a few GB": the Hub's advice for one large file


@dataclass
class LayoutReport:
    files: int
    largest_folder: tuple[str, int]  # (folder, entries)
    largest_file: tuple[str, int]  # (file, bytes)
    problems: list[str]


def check_layout(release_dir: Path, max_entries_per_folder: int = MAX_ENTRIES_PER_FOLDER,
                 max_files: int = MAX_FILES_PER_REPO, max_file_bytes: int = MAX_FILE_BYTES) -> LayoutReport:
    """Count files, entries per folder and file sizes under ``release_dir`` (hidden names,
    which are not uploaded, are skipped)."""
    release_dir = Path(release_dir)
    files, problems = 0, []
    largest_folder, largest_file = ("", 0), ("", 0)
    for folder, dirs, names in os.walk(release_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        names = [n for n in names if not n.startswith(".")]
        rel = os.path.relpath(folder, release_dir)
        entries = len(dirs) + len(names)
        if entries > largest_folder[1]:
            largest_folder = (rel, entries)
        if entries > max_entries_per_folder:
            problems.append(f"{rel}: {entries:,} entries in one folder (the Hub allows {max_entries_per_folder:,})")
        for n in names:
            files += 1
            size = os.path.getsize(os.path.join(folder, n))
            if size > largest_file[1]:
                largest_file = (os.path.join(rel, n), size)
            if size > max_file_bytes:
                problems.append(f"{os.path.join(rel, n)}: {size:,} bytes (at most {max_file_bytes:,} a file)")
    if files > max_files:
        problems.append(f"{release_dir}: {files:,} files (the Hub advises at most {max_files:,} a repository)")
    return LayoutReport(files, largest_folder, largest_file, problems)
