"""The command line: every command answers --help; errors are one clear line, exit 1."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from cnn_filter_db.cli import build_parser


def commands(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,)
                yield from commands(sub, prefix + (name,))


ALL = list(commands(build_parser()))


def test_spec_commands_exist():
    names = {" ".join(c) for c in ALL}
    assert {"catalog validate", "catalog add", "catalog check", "catalog index", "extract",
            "release", "publish", "import-original"} <= names


@pytest.mark.parametrize("cmd", ALL, ids=" ".join)
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([*cmd, "--help"])
    assert info.value.code == 0
    assert f"usage: cnn-filter-db {' '.join(cmd)}" in capsys.readouterr().out.replace("\n", " ").replace("  ", " ")


def test_error_is_one_clear_line(tmp_path, root):
    proc = subprocess.run([sys.executable, "-m", "cnn_filter_db.cli", "--root", str(root), "extract",
                           "no-such-model"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: {root}/catalog/models/no-such-model.yaml: -: file not found"]


def test_version_and_module_entry(root):
    proc = subprocess.run([sys.executable, "-m", "cnn_filter_db", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0
    from importlib.metadata import version

    assert proc.stdout.startswith(f"cnn-filter-db {version('cnn-filter-db')} (the package;")
    assert "release.version" in proc.stdout  # the dataset's version is said to be another thing


def test_help_offers_only_used_options_and_no_outside_files(capsys):
    parser = build_parser()
    parser.print_help()
    top = capsys.readouterr().out
    assert "Build, check, analyse and publish" in top and "--version" in top
    for cmd in ALL:
        with pytest.raises(SystemExit):
            build_parser().parse_args([*cmd, "--help"])
        text = capsys.readouterr().out
        assert "SPEC.md" not in text and "../shared" not in text
        # --meta-dir only where per-model metadata is written or read
        assert ("--meta-dir" in text) == (cmd in [("extract",), ("extract-set",), ("gather",)])


def test_release_options_of_the_stage_only(root):
    proc = subprocess.run([sys.executable, "-m", "cnn_filter_db", "--root", str(root), "release", "--previous", "x"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: release: --previous and --metrics apply only with --build-only (the DVC stage)"


@pytest.mark.parametrize("argv, words", [
    (["--root", "/no/such/folder", "catalog", "index"], "--root /no/such/folder: no such folder"),
    (["catalog", "validate"], "not a cnn-filter-db checkout (no catalog/models/)"),
    (["validate"], "no such release folder"),
])
def test_wrong_root_is_one_line_and_writes_nothing(argv, words, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cnn_filter_db", *argv], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr
    assert not any(tmp_path.iterdir()) and not os.path.exists("/no/such/folder")
