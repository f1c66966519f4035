"""The publish validation gate through the command line: ``cnn-filter-db publish`` on a
release that holds a NaN (its manifest rebuilt to match, so only the content check can
catch it) exits non-zero and sends no request at all to the Hub. The real validator
(Great Expectations) runs; the Hub is a local server that counts its requests."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cnn_filter_db.dataset import schema
from cnn_filter_db.errors import CnnFilterDbError
from cnn_filter_db.publish import PublishError, _run_validation, publish
from cnn_filter_db.release import build_release
from cnn_filter_db.validate import validate_release

from echo_server import EchoServer

SRC = Path(__file__).resolve().parents[1] / "src"
TOKEN = "hf_GateTestTokenNeverSent0123456789"
REPO = "test-org/cnn-filter-db"
POLICY = {"redistributable_licenses": ["MIT", "Apache-2.0", "AGPL-3.0"], "hub_repo_id": REPO}


def _project(root: Path, dst: Path) -> Path:
    """A clean git checkout holding what publish reads: params and the vocabulary (the suites
    are package data)."""
    dst.mkdir()
    shutil.copy(root / "params.yaml", dst / "params.yaml")
    (dst / "catalog").mkdir()
    shutil.copy(root / "catalog" / "vocabulary.yaml", dst / "catalog" / "vocabulary.yaml")
    (dst / ".gitignore").write_text("dist/\n__pycache__/\n")
    for args in (["init", "-q", "-b", "main"], ["config", "user.email", "t@example.org"],
                 ["config", "user.name", "T"], ["add", "."], ["commit", "-qm", "project"]):
        subprocess.run(["git", "-C", str(dst), *args], check=True)
    return dst


def _release(small_release: Path, dst: Path, root: Path, nan: bool) -> Path:
    shutil.copytree(small_release, dst)
    if nan:
        shard = next((dst / "filters" / "efficientnet-lite0").glob("*.parquet"))
        table = pq.read_table(shard)
        w = table.column("weights").combine_chunks().flatten().to_numpy().reshape(-1, 9).copy()
        w[7, 4] = np.nan
        col = pa.FixedSizeListArray.from_arrays(pa.array(w.ravel()), 9)
        table = table.set_column(table.schema.get_field_index("weights"), "weights", col)
        pq.write_table(table.cast(schema.FILTERS_SCHEMA), shard, **schema.parquet_options(schema.FILTERS_SCHEMA))
    build_release(dst, "0.1.0", POLICY, root=root)  # the manifest matches the (corrupted) files
    return dst


@pytest.fixture(scope="module")
def hub():
    server = EchoServer().start()
    yield server
    server.stop()


def _publish_cli(project: Path, release: Path, hub: EchoServer, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(home), HF_TOKEN=TOKEN, HF_HUB_DISABLE_TELEMETRY="1",
               PYTHONPATH=str(SRC) + os.pathsep + env.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "cnn_filter_db.cli", "--root", str(project), "publish",
                           "--release-dir", str(release), "--repo-id", REPO],
                          env=env, capture_output=True, text=True, timeout=600)


def test_publish_cli_refuses_a_release_holding_a_nan_before_any_request(small_release, root, hub, tmp_path):
    project = _project(root, tmp_path / "project")
    release = _release(small_release, tmp_path / "nan" / "cnn-filter-db", root, nan=True)
    before = len(hub.seen)
    proc = _publish_cli(project, release, hub, tmp_path / "home")
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]
    assert "validation failed, not publishing" in proc.stderr
    assert hub.seen[before:] == []          # not one request, not even a HEAD
    assert TOKEN not in proc.stdout + proc.stderr


def test_publish_cli_sends_a_clean_release(small_release, root, hub, tmp_path):
    """The control: the same project and a release without the NaN passes the gate and
    goes to the Hub (this one refuses every request, so publishing then fails with 401)."""
    project = _project(root, tmp_path / "project")
    release = _release(small_release, tmp_path / "clean" / "cnn-filter-db", root, nan=False)
    before = len(hub.seen)
    proc = _publish_cli(project, release, hub, tmp_path / "home")
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]
    assert "validation failed" not in proc.stderr
    assert f"{REPO}: publishing v0.1.0 failed" in proc.stderr and "401" in proc.stderr
    assert any(f"/api/datasets/{REPO}" in path for _, path, _ in hub.seen[before:])
    assert TOKEN not in proc.stdout + proc.stderr


# --------------------------------------------------------------------------- the gate in process

class _Result:
    """The shape of the validator's answer: an object with ``success`` (validate.Result)."""

    def __init__(self, success: bool):
        self.success = success

    def __str__(self) -> str:
        return f"Result(success={self.success})"


@pytest.mark.parametrize("answer,refused", [
    (_Result(False), True), (_Result(True), False),
    (["filters: weights hold NaN"], True), ([], False), (None, False), ((), False),
])
def test_validation_gate_reads_each_answer_shape(answer, refused, tmp_path):
    seen = []

    def hook(path):
        seen.append(path)
        return answer

    if refused:
        with pytest.raises(PublishError, match=r"validation failed, not publishing"):
            _run_validation(hook, tmp_path)
    else:
        assert _run_validation(hook, tmp_path) is None
    assert seen == [tmp_path]
    assert _run_validation(None, tmp_path) is None  # no hook: nothing to check


def test_validation_gate_names_every_problem_and_raised_errors(tmp_path):

    with pytest.raises(PublishError) as info:
        _run_validation(lambda p: ["first problem", "second problem"], tmp_path)
    assert str(info.value) == f"{tmp_path}: validation failed, not publishing:\nfirst problem\nsecond problem"
    with pytest.raises(PublishError) as info:
        _run_validation(lambda p: _Result(False), tmp_path)
    assert str(info.value) == f"{tmp_path}: validation failed, not publishing: Result(success=False)"

    def raising(path):
        raise CnnFilterDbError("the suite could not run")

    with pytest.raises(PublishError) as info:
        _run_validation(raising, tmp_path)
    assert str(info.value) == f"{tmp_path}: validation failed, not publishing:\nthe suite could not run"


def test_real_validator_result_stops_publish_in_process(small_release, root, hub, tmp_path):
    """The real validator's result object (not a list), in the publish function itself."""
    release = _release(small_release, tmp_path / "nan" / "cnn-filter-db", root, nan=True)
    results = []

    def validator(path):
        results.append(validate_release(path, root=root, data_docs=False))
        return results[-1]

    before = len(hub.seen)
    with pytest.raises(PublishError, match="validation failed, not publishing"):
        publish(release, REPO, token=TOKEN, endpoint=hub.url, validate=validator)
    assert results[0].success is False
    assert hub.seen[before:] == []
