"""`.ci/run` fails when the committed dvc.lock does not match the code, the parameters or a
stage's command, and passes when only outputs are missing (as in CI). Real git and DVC."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cnn_filter_db.lock_status import dvc_status, lock_problems, main

ROOT = Path(__file__).resolve().parents[1]

DVC_YAML = """\
stages:
  first:
    cmd: python code/first.py
    deps: [code/first.py]
    params: [first.n]
    outs: [out/first]
  second:
    cmd: python code/second.py
    deps: [code/second.py, out/first]
    outs: [out/second.txt]
"""
FIRST = """import pathlib, yaml
n = yaml.safe_load(open("params.yaml"))["first"]["n"]
pathlib.Path("out/first").mkdir(parents=True, exist_ok=True)
pathlib.Path("out/first/a.txt").write_text(str(n))
"""
SECOND = """import pathlib
pathlib.Path("out/second.txt").write_text(pathlib.Path("out/first/a.txt").read_text() * 2)
"""


@pytest.fixture
def project(tmp_path) -> Path:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "first.py").write_text(FIRST)
    (tmp_path / "code" / "second.py").write_text(SECOND)
    (tmp_path / "params.yaml").write_text("first:\n  n: 3\n")
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    shutil.copy(ROOT / ".dvcignore", tmp_path / ".dvcignore")  # the repository's
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "repro", "-q"]):
        subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True)
    assert (tmp_path / "out" / "second.txt").read_text() == "33"
    return tmp_path


def test_lock_check(project, monkeypatch, capsys):
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    assert dvc_status(project) == {}
    # what a crashed write leaves inside an output is ignored (.dvcignore): nothing changed
    (project / "out" / "first" / ".a.txt.k9x.tmp").write_text("half written")
    (project / "out" / ".first.3kd.tmp").mkdir()
    (project / "out" / ".first.old").mkdir()
    assert dvc_status(project) == {}
    ignore = (project / ".dvcignore").read_text()
    (project / ".dvcignore").write_text("")  # without the patterns, the output looks changed
    assert "out/first" in str(dvc_status(project).get("first"))
    (project / ".dvcignore").write_text(ignore)
    # CI: no outputs at all; every stage reports missing outputs and inputs, which is fine
    shutil.rmtree(project / "out")
    status = dvc_status(project)
    assert "out/first" in str(status["second"])  # the input of `second` is reported deleted
    assert lock_problems(status) == [] and main([str(project)]) == 0
    (project / "out" / "first").mkdir(parents=True)  # a partial output: still not the lock's business
    assert lock_problems(dvc_status(project)) == []

    (project / "code" / "first.py").write_text(FIRST + "# changed\n")
    (project / "params.yaml").write_text("first:\n  n: 4\n")
    (project / "dvc.yaml").write_text(DVC_YAML.replace("python code/second.py", "python code/second.py --fast"))
    assert lock_problems(dvc_status(project)) == ["first: dependency code/first.py modified",
                                                  "first: parameter params.yaml:first.n modified",
                                                  "second: changed command"]
    assert main([str(project)]) == 1
    assert "dvc.lock is stale: first: dependency code/first.py modified" in capsys.readouterr().err


def test_lock_entries_of_removed_stages_are_reported_and_pruned(project, monkeypatch, capsys):
    """DVC keeps a stage's lock entry after the stage leaves dvc.yaml (a catalog entry removed
    from a foreach): the lock then describes code that no longer exists."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    third = "  third:\n    cmd: python code/third.py\n    deps: [code/third.py, out/first]\n    outs: [out/third.txt]\n"
    (project / "code" / "third.py").write_text(SECOND.replace("out/second.txt", "out/third.txt"))
    (project / "dvc.yaml").write_text(DVC_YAML + third)
    subprocess.run(["dvc", "repro", "-q"], cwd=project, check=True, capture_output=True)
    before = (project / "dvc.lock").read_text()
    assert "  third:\n" in before
    (project / "dvc.yaml").write_text(DVC_YAML)
    assert dvc_status(project) == {}  # dvc status alone does not see it
    assert main([str(project)]) == 1
    assert "dvc.lock is stale: third: recorded, but dvc.yaml no longer defines it" in capsys.readouterr().err
    assert main(["--prune", str(project)]) == 0
    after = (project / "dvc.lock").read_text()
    assert "third" not in after and "out/third.txt" not in after
    # everything else kept as DVC wrote it: the entries of `first` and `second`, the schema
    old, new = yaml.safe_load(before), yaml.safe_load(after)
    assert new == {**old, "stages": {k: v for k, v in old["stages"].items() if k != "third"}}
    assert list(new["stages"]) == ["first", "second"]
    assert dvc_status(project) == {} and main([str(project)]) == 0
    assert not list(project.glob(".dvc.lock.*"))
