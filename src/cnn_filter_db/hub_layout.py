"""The Hugging Face Hub's limits on a dataset repository, checked on a release folder as built.

The Hub advises fewer than 10,000 entries in one folder and about 100,000 files in a
repository, and large files of at most a few GB (each is stored and served whole). The
release keeps one folder a model under ``filters/``, so the per-folder limit bounds the
number of models of one release; shards are capped by ``extract.max_rows_per_shard``.
``release`` (build) and ``publish`` refuse a folder beyond these limits (:func:`require_within`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable

from .dataset.layout import release_files
from .errors import ReleaseError

MAX_ENTRIES_PER_FOLDER = 10_000
MAX_FILES_PER_REPO = 100_000
MAX_FILE_BYTES = 5 * 1024**3  # "a few GB": the Hub's advice for one large file


@dataclass(frozen=True)
class HubLimits:
    """The limits a release folder is held to (the Hub's, unless a test asks for less)."""

    max_entries_per_folder: int = MAX_ENTRIES_PER_FOLDER
    max_files: int = MAX_FILES_PER_REPO
    max_file_bytes: int = MAX_FILE_BYTES


HUB_LIMITS = HubLimits()


@dataclass
class LayoutReport:
    files: int
    largest_folder: tuple[str, int]  # (folder, entries)
    largest_file: tuple[str, int]  # (file, bytes)
    problems: list[str]


def check_layout(release_dir: Path, max_entries_per_folder: int = MAX_ENTRIES_PER_FOLDER,
                 max_files: int = MAX_FILES_PER_REPO, max_file_bytes: int = MAX_FILE_BYTES,
                 planned: Iterable[str] = ()) -> LayoutReport:
    """Count files, entries (files and sub-folders) per folder and file sizes of the release
    folder's visible files (the release's one rule: :func:`dataset.layout.release_files`).
    ``planned``: paths about to be written (the card, the manifest), counted as files too."""
    release_dir = Path(release_dir)
    files = sorted(set(release_files(release_dir)) | set(planned))
    entries: dict[str, set[str]] = {}
    for rel in files:
        parts = PurePosixPath(rel).parts
        for depth in range(len(parts)):
            folder = "/".join(parts[:depth]) or "."
            entries.setdefault(folder, set()).add(parts[depth])
    problems = [f"{folder}: {len(names):,} entries in one folder (the Hub allows {max_entries_per_folder:,})"
                for folder, names in sorted(entries.items()) if len(names) > max_entries_per_folder]
    sizes = {rel: (release_dir / rel).stat().st_size if (release_dir / rel).exists() else 0 for rel in files}
    problems += [f"{rel}: {size:,} bytes (at most {max_file_bytes:,} a file)"
                 for rel, size in sizes.items() if size > max_file_bytes]
    if len(files) > max_files:
        problems.append(f"{release_dir}: {len(files):,} files (the Hub advises at most {max_files:,} a repository)")
    largest_folder = max(((f, len(n)) for f, n in entries.items()), key=lambda x: x[1], default=("", 0))
    largest_file = max(sizes.items(), key=lambda x: x[1], default=("", 0))
    return LayoutReport(len(files), largest_folder, largest_file, problems)


def require_within(release_dir: Path, limits: HubLimits = HUB_LIMITS, planned: Iterable[str] = (),
                   error: type[Exception] = ReleaseError) -> LayoutReport:
    """The layout report, or ``error`` with one line naming the folder and what is beyond the
    limits (the first three problems and how many more)."""
    report = check_layout(release_dir, limits.max_entries_per_folder, limits.max_files, limits.max_file_bytes,
                          planned=planned)
    if report.problems:
        shown = "; ".join(report.problems[:3])
        more = f"; and {len(report.problems) - 3} more" if len(report.problems) > 3 else ""
        raise error(f"{release_dir}: the layout is beyond the Hugging Face Hub's limits: {shown}{more}")
    return report
