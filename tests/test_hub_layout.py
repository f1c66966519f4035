"""A release of 2,000 tiny models, built by the set stage, stays within the Hub's limits:
at most 10,000 entries in a folder, about 100,000 files, shards of at most a few GB; and
`release` (build) and `publish` refuse a folder beyond limits (small ones passed in)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from catalog_project import make_project, tiny_entry

from cnn_filter_db.errors import ReleaseError
from cnn_filter_db.extract import gather
from cnn_filter_db.hub_layout import HubLimits, check_layout
from cnn_filter_db.publish import PublishError, publish
from cnn_filter_db.release import build_release
from cnn_filter_db.set_build import build_set

from conftest import SMALL_MODELS

POLICY = {"redistributable_licenses": ["MIT", "Apache-2.0", "BSD-3-Clause", "AGPL-3.0"], "hub_repo_id": "t/l"}

N_MODELS = int(os.environ.get("CNN_FILTER_DB_LAYOUT_MODELS", "2000"))


def test_layout_check_counts_and_flags(tmp_path):
    rel = tmp_path / "rel"
    (rel / "filters" / "m").mkdir(parents=True)
    for i in range(5):
        (rel / "filters" / "m" / f"s{i}.parquet").write_bytes(b"x" * (i + 1))
    (rel / ".cache").mkdir()
    (rel / ".cache" / "hidden").write_bytes(b"y" * 100)
    r = check_layout(rel, max_entries_per_folder=4, max_files=4, max_file_bytes=4)
    assert r.files == 5 and r.largest_folder == ("filters/m", 5)
    assert r.largest_file == ("filters/m/s4.parquet", 5)
    assert len(r.problems) == 3  # the folder, the file count, and s4 (5 bytes > 4)
    assert check_layout(rel).problems == []


@pytest.mark.slow
def test_two_thousand_models_fit_the_hub(tmp_path):
    entries = [tiny_entry(tmp_path, f"bulk-{i:05d}", "bulk", 1 + i % 4, i) for i in range(N_MODELS)]
    proj = make_project(tmp_path, entries, sets=("default", "bulk"))
    start = time.perf_counter()
    summary = build_set("bulk", proj, params={"max_rows_per_shard": 16_000_000, "row_group_rows": 1 << 20})
    seconds = time.perf_counter() - start
    print(f"\nbuilt {N_MODELS} tiny models in {seconds:.0f} s ({seconds / N_MODELS * 1000:.0f} ms a model)")
    assert len(summary["models"]) == N_MODELS and not summary["failed"]
    # hand count: a model with c output channels holds c*3 + c*c filters
    assert summary["n_filters"] == sum(c * 3 + c * c for c in (1 + i % 4 for i in range(N_MODELS)))
    release = proj / "dist" / "cnn-filter-db"
    gather(proj / "build" / "meta", release, [e["model_id"] for e in entries])
    report = check_layout(release)
    assert report.problems == []
    # one folder a model under filters/, one shard each, plus the models and layers tables
    assert report.largest_folder == ("filters", N_MODELS)
    assert report.files == N_MODELS + 2
    # a second run finds every model up to date and extracts nothing
    start = time.perf_counter()
    again = build_set("bulk", proj, params={"max_rows_per_shard": 16_000_000, "row_group_rows": 1 << 20})
    print(f"up-to-date set stage: {time.perf_counter() - start:.1f} s")
    assert again["models"] == summary["models"]


def _visible_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.parts)]


def test_release_build_refuses_a_layout_beyond_the_limits(copy_release, root):
    rel = copy_release()
    n_models = len(SMALL_MODELS)
    assert len(list((rel / "filters").iterdir())) == n_models
    with pytest.raises(ReleaseError) as info:
        build_release(rel, "0.1.0", POLICY, root=root, hub_limits=HubLimits(max_entries_per_folder=n_models - 1))
    message = str(info.value)
    assert "\n" not in message and "beyond the Hugging Face Hub's limits" in message
    assert f"filters: {n_models:,} entries in one folder (the Hub allows {n_models - 1:,})" in message
    assert not (rel / "README.md").exists() and not (rel / "manifest.json").exists()  # nothing written

    # the file limit counts the four files the build is about to write (card, citation,
    # croissant, manifest): exactly that many passes, one fewer is refused
    n_after = len(_visible_files(rel)) + 4
    with pytest.raises(ReleaseError, match=f"{n_after:,} files .*at most {n_after - 1:,}"):
        build_release(rel, "0.1.0", POLICY, root=root, hub_limits=HubLimits(max_files=n_after - 1))
    build_release(rel, "0.1.0", POLICY, root=root, hub_limits=HubLimits(max_files=n_after))
    assert len(_visible_files(rel)) == n_after


def test_publish_refuses_a_layout_beyond_the_limits(copy_release, root, capsys):
    rel = copy_release()
    build_release(rel, "0.1.0", POLICY, root=root)
    largest = max(_visible_files(rel), key=lambda p: p.stat().st_size)
    size = largest.stat().st_size
    with pytest.raises(PublishError) as info:
        publish(rel, "t/l", dry_run=True, hub_limits=HubLimits(max_file_bytes=size - 1))
    message = str(info.value)
    assert "\n" not in message
    assert f"{largest.relative_to(rel).as_posix()}: {size:,} bytes (at most {size - 1:,} a file)" in message
    assert "dry run" not in capsys.readouterr().out  # refused before the plan
    result = publish(rel, "t/l", dry_run=True, hub_limits=HubLimits(max_file_bytes=size))
    assert result.dry_run and len(result.files) == len(_visible_files(rel))
