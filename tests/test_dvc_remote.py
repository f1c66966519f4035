"""The public DVC remote's objects on the Hub: uploaded once each, and left alone by `publish`.
(The whole route, release then `dvc get` over HTTP, is tests/test_dvc_pinning.py.)"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

from cnn_filter_db import dvc_remote
from cnn_filter_db.release import build_release

from hub_server import HubServer

TOKEN = "hf_RemoteTestToken0123456789abcdef"
REPO = "test-org/remote-test"


def test_public_url_is_the_resolve_route():
    assert dvc_remote.public_url("org/name") == "https://huggingface.co/datasets/org/name/resolve/main/dvc-cache"


def test_objects_uploaded_once_and_kept_by_publish(small_release, tmp_path, root):
    storage = tmp_path / "storage"
    objects = {"files/md5/ab/cdef0123456789abcdef01234567.dir": b'[{"md5": "x"}]',
               "files/md5/12/3456789abcdef0123456789abcdef0": b"some bytes"}
    for rel, data in objects.items():
        (storage / rel).parent.mkdir(parents=True, exist_ok=True)
        (storage / rel).write_bytes(data)
    (storage / ".tmp-upload").write_text("never an object")  # hidden: not part of the remote
    release = tmp_path / "cnn-filter-db"
    shutil.copytree(small_release, release)
    build_release(release, "0.1.0", {"redistributable_licenses": ["MIT", "Apache-2.0", "AGPL-3.0"],
                                     "allow_unknown_license": True, "hub_repo_id": REPO}, root=root)

    hub = HubServer(tmp_path / "hub", token=TOKEN).start()
    try:
        code = textwrap.dedent(f"""
            import json
            from pathlib import Path
            from cnn_filter_db import dvc_remote
            from cnn_filter_db.publish import publish
            first = dvc_remote.upload_new_objects(Path({str(storage)!r}), {REPO!r}, echo=lambda s: None)
            second = dvc_remote.upload_new_objects(Path({str(storage)!r}), {REPO!r}, echo=lambda s: None)
            publish(Path({str(release)!r}), {REPO!r}, echo=lambda s: None)
            print("RESULT", json.dumps({{"first": first, "second": second}}))
        """)
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_TOKEN")}
        env.update(HF_ENDPOINT=hub.url, HF_TOKEN=TOKEN, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "home"),
                   PYTHONPATH=str(root / "src"))
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        got = json.loads(proc.stdout.split("RESULT", 1)[1])
        assert got == {"first": 2, "second": 0}
        repo = hub.state.get("dataset", REPO)
        files = repo.files(repo.resolve("main"))
        for rel, data in objects.items():  # still there after publish replaced the release files
            assert repo.read(files[f"dvc-cache/{rel}"][0]) == data
        assert "dvc-cache/.tmp-upload" not in files and "manifest.json" in files
    finally:
        hub.stop()
