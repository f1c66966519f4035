"""Generated entries are pinned on their first build (catalog/lock.yaml) and verified on
every later one. The real clients (huggingface_hub, urllib) talk to local servers: a
resolve-only Hub that redirects to a separate large-file host as the Hub does, and a
stand-in for torchvision's download host."""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torchvision
import yaml
from safetensors.torch import save

from cnn_filter_db.zoo import generated_file, registries

ROOT = Path(__file__).resolve().parents[1]
COMMIT = "5f1e0b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2"
TIMM_NAME = "test_resnet.r160_in1k"
TIMM_ID = "timm-test_resnet.r160_in1k"
TV_WEIGHTS = "SqueezeNet1_1_Weights.IMAGENET1K_V1"
TV_ID = "tv-squeezenet1_1.imagenet1k_v1"
TV_FILE = "squeezenet1_1-b8a52dc0.pth"


class Files(ThreadingHTTPServer):
    """Serves ``routes``: path -> (status, headers, body); records every request line."""

    daemon_threads = True

    def __init__(self, host="127.0.0.1"):
        self.routes: dict[str, tuple[int, dict, bytes]] = {}
        self.requests: list[str] = []
        super().__init__((host, 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self, body: bool):
        self.server.requests.append(f"{self.command} {self.path}")
        status, headers, data = self.server.routes.get(self.path, (404, {"X-Error-Code": "EntryNotFound"}, b"not found"))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_HEAD(self):
        self._answer(False)

    def do_GET(self):
        self._answer(True)


def serve_on_hub(hub: Files, lfs: Files, repo_id: str, filename: str, data: bytes, revs=("main", COMMIT)) -> None:
    """The Hub's resolve answer for a large file: a redirect to the large-file host that
    names the commit, the file's sha256 (its LFS ETag) and size."""
    sha = hashlib.sha256(data).hexdigest()
    lfs.routes[f"/objects/{sha}"] = (200, {"ETag": f'"{sha}"'}, data)
    for rev in revs:
        hub.routes[f"/{repo_id}/resolve/{rev}/{filename}"] = (302, {
            "Location": f"{lfs.url}/objects/{sha}", "X-Repo-Commit": COMMIT, "X-Linked-Etag": f'"{sha}"',
            "X-Linked-Size": str(len(data)), "ETag": '"0123456789abcdef0123456789abcdef01234567"'}, b"")


def hand_count(state: dict) -> tuple[int, int]:
    shapes = [tuple(v.shape) for k, v in state.items() if k.endswith("weight") and v.ndim == 4 and v.shape[-2:] == (3, 3)]
    return len(shapes), int(sum(np.prod(s[:2]) for s in shapes))


@pytest.fixture()
def project(tmp_path):
    proj = tmp_path / "proj"
    (proj / "catalog" / "models").mkdir(parents=True)
    shutil.copy(ROOT / "catalog" / "vocabulary.yaml", proj / "catalog")
    shutil.copy(ROOT / "params.yaml", proj)
    return proj


def write_generated(proj: Path, items) -> dict:
    out = {}
    for mid, entry, why in items:
        assert entry is not None, why
        generated_file.write(proj / "catalog" / "models" / f"{mid}.yaml", yaml.safe_dump(entry, sort_keys=False), entry["set"])
        out[mid] = entry
    return out


def cli(proj: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    full.update(env, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-m", "cnn_filter_db.cli", "--root", str(proj), *args],
                          env=full, capture_output=True, text=True)


def test_timm_weights_pinned_on_first_build_then_verified(project, tmp_path):
    torch.manual_seed(0)
    model = timm.create_model(TIMM_NAME, pretrained=False)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    data = save(state)
    sha = hashlib.sha256(data).hexdigest()
    entries = write_generated(project, registries.timm_entries("test_resnet*"))
    n_layers, n_filters = hand_count({k: v.numpy() for k, v in state.items()})
    assert entries[TIMM_ID]["expected_3x3"] == {"layers": n_layers, "filters": n_filters}
    hub, lfs = Files("127.0.0.1"), Files("localhost")  # LFS on another host, as the Hub redirects
    serve_on_hub(hub, lfs, f"timm/{TIMM_NAME}", "model.safetensors", data)
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf"),
           "CNN_FILTER_DB_CACHE": str(tmp_path / "cache")}
    # offline, an unpinned entry cannot be built, and says why
    off = cli(project, "extract", TIMM_ID, "--quiet", env={**env, "HF_HUB_OFFLINE": "1"})
    assert off.returncode == 1 and TIMM_ID in off.stderr and "not pinned" in off.stderr
    check = cli(project, "catalog", "lock", "--check", env=env)
    assert check.returncode == 0 and f"unlocked {TIMM_ID}" in check.stdout

    first = cli(project, "extract", TIMM_ID, "--quiet", env=env)
    assert first.returncode == 0, first.stderr
    assert f"{n_layers} 3x3 layers, {n_filters:,} filters" in first.stdout
    pin = yaml.safe_load((project / "catalog" / "lock.yaml").read_text())["models"][TIMM_ID]
    assert pin == {"source": f"timm://{TIMM_NAME}", "repo_id": f"timm/{TIMM_NAME}", "revision": COMMIT,
                   "files": {"model.safetensors": sha}}
    assert any(r.startswith("GET /objects/") for r in lfs.requests)  # the bytes came through the redirect
    check = cli(project, "catalog", "lock", "--check", env=env)
    assert check.returncode == 0 and "0 unlocked, 0 stale" in check.stdout

    # later builds fetch the pinned commit, not main; other bytes there are refused by name
    shutil.rmtree(tmp_path / "cache")
    hub.requests.clear()
    torch.manual_seed(1)
    other = save({k: v.contiguous() for k, v in timm.create_model(TIMM_NAME).state_dict().items()})
    serve_on_hub(hub, lfs, f"timm/{TIMM_NAME}", "model.safetensors", other)
    again = cli(project, "extract", TIMM_ID, "--quiet", env=env)
    assert again.returncode == 1
    assert TIMM_ID in again.stderr and sha in again.stderr and "sha256 mismatch" in again.stderr
    assert hub.requests and all(f"/resolve/{COMMIT}/" in r for r in hub.requests)
    # a stale pin (the entry now names other weights) is listed
    path = project / "catalog" / "models" / f"{TIMM_ID}.yaml"
    path.write_text(path.read_text().replace("pretrained_tag: r160_in1k", "pretrained_tag: r160_in1k_v2"))
    check = cli(project, "catalog", "lock", "--check", env=env)
    assert check.returncode == 1 and f"stale {TIMM_ID}" in check.stderr


def test_torchvision_first_download_checks_the_file_name_prefix(project, tmp_path):
    entries = write_generated(project, [x for x in registries.torchvision_entries("squeezenet1_1") if x[0] == TV_ID])
    state = torchvision.models.get_model("squeezenet1_1", weights=None).state_dict()
    assert entries[TV_ID]["expected_3x3"] == dict(zip(("layers", "filters"), hand_count(
        {k: v.numpy() for k, v in state.items()})))
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    mirror = Files()
    mirror.routes[f"/models/{TV_FILE}"] = (200, {}, data)
    env = {"CNN_FILTER_DB_TORCHVISION_MIRROR": mirror.url, "CNN_FILTER_DB_CACHE": str(tmp_path / "cache")}
    # our bytes are not torchvision's: their sha256 cannot start with the file name's b8a52dc0
    bad = cli(project, "extract", TV_ID, "--quiet", env=env)
    assert bad.returncode == 1
    assert TV_ID in bad.stderr and "b8a52dc0" in bad.stderr and "prefix" in bad.stderr
    assert not (project / "catalog" / "lock.yaml").exists()
    assert not (tmp_path / "cache" / "sha256" / hashlib.sha256(data).hexdigest()[:2]).exists() or not any(
        (tmp_path / "cache" / "sha256").rglob(hashlib.sha256(data).hexdigest()))
    assert mirror.requests == [f"GET /models/{TV_FILE}"]

    # with a pin (as a first build records it), the pinned bytes are fetched, read and counted
    sha = hashlib.sha256(data).hexdigest()
    (project / "catalog" / "lock.yaml").write_text(yaml.safe_dump({"models": {TV_ID: {
        "source": f"torchvision://{TV_WEIGHTS}", "url": f"https://download.pytorch.org/models/{TV_FILE}",
        "files": {TV_FILE: sha}}}}))
    good = cli(project, "extract", TV_ID, "--quiet", env=env)
    assert good.returncode == 0, good.stderr
    n_layers, n_filters = hand_count({k: v.numpy() for k, v in state.items()})
    assert f"{n_layers} 3x3 layers, {n_filters:,} filters" in good.stdout
    # other bytes under the pinned name: refused, naming the entry
    shutil.rmtree(tmp_path / "cache")
    mirror.routes[f"/models/{TV_FILE}"] = (200, {}, data + b"\0")
    changed = cli(project, "extract", TV_ID, "--quiet", env=env)
    assert changed.returncode == 1 and TV_ID in changed.stderr and sha in changed.stderr


def test_generated_files_are_idempotent_and_hand_edits_are_kept(project):
    items = list(registries.timm_entries("test_resnet*"))
    mid, entry, _ = items[0]
    body = yaml.safe_dump(entry, sort_keys=False)
    path = project / "catalog" / "models" / f"{mid}.yaml"
    assert generated_file.write(path, body, "timm") == "written"
    first = path.read_bytes()
    assert generated_file.write(path, body, "timm") == "unchanged" and path.read_bytes() == first
    assert hashlib.sha256(first.split(b"\n", 1)[1]).hexdigest().encode() in first.split(b"\n", 1)[0]
    path.write_text(path.read_text().replace("visual_category: natural", "visual_category: art"))
    edited = path.read_bytes()
    assert generated_file.write(path, body, "timm") == "refused-edited" and path.read_bytes() == edited
    path.write_text(path.read_text().split("\n", 1)[1])  # the mark removed: a person owns it now
    owned = path.read_bytes()
    assert generated_file.write(path, body, "timm") == "kept-hand" and path.read_bytes() == owned
