"""The ``hf`` source: fails fast offline or when the Hub is unreachable, never leaks a token,
checks the sha256 of what it gets (from the Hugging Face cache or from a local Hub server)."""
from __future__ import annotations

import hashlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from huggingface_hub import constants
from safetensors.numpy import save

from cnn_filter_db.cache import Cache
from cnn_filter_db.errors import SourceError
from cnn_filter_db.sources.hf import HfSource, fetch

FAKE_TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
PAYLOAD = save({"conv.weight": np.arange(4 * 2 * 9, dtype=np.float32).reshape(4, 2, 3, 3),
                "fc.weight": np.ones((3, 4), np.float32)})  # a real safetensors file
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def source(sha=SHA, revision=COMMIT):
    return HfSource(kind="hf", repo_id="someone/cnn", revision=revision, filename="model.safetensors", sha256=sha)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: connections are refused


def test_offline_fails_at_once_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.monotonic()
    with pytest.raises(SourceError) as err:
        fetch(source(), Cache(tmp_path / "cache"))
    assert time.monotonic() - t < 10
    msg = str(err.value)
    assert "hf://someone/cnn@" in msg and "offline" in msg and "HF_HUB_OFFLINE" in msg
    assert FAKE_TOKEN not in msg


def test_unreachable_hub_fails_within_seconds_without_the_token(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    t = time.monotonic()
    with pytest.raises(SourceError) as err:
        fetch(source(), Cache(tmp_path / "cache"))
    elapsed = time.monotonic() - t
    assert elapsed < 10, f"took {elapsed:.1f} s"
    msg = str(err.value)
    assert "could not download from the Hub" in msg and "someone/cnn" in msg
    assert FAKE_TOKEN not in msg
    assert not list((tmp_path / "cache").rglob("*.safetensors"))  # nothing left behind


def test_silent_hub_times_out_within_seconds(tmp_path, monkeypatch):
    """A server that accepts connections and never answers (a stalled network): one request
    with the metadata timeout, no retries."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # connections complete in the backlog; nothing ever answers
    try:
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}")
        t = time.monotonic()
        with pytest.raises(SourceError, match="could not download from the Hub .*Timeout"):
            fetch(source(), Cache(tmp_path / "cache"))
        assert time.monotonic() - t < 10
    finally:
        listener.close()


def _seed_hf_cache(hf_cache, data: bytes):
    """A file as huggingface_hub stores it: models--<org>--<name>/snapshots/<commit>/<file>."""
    snap = hf_cache / "models--someone--cnn" / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    (snap / "model.safetensors").write_bytes(data)


def test_file_from_the_hugging_face_cache_is_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # works offline: no network is needed
    _seed_hf_cache(tmp_path / "hf", PAYLOAD)
    cache = Cache(tmp_path / "cache")
    got = fetch(source(), cache)
    assert got == cache.path(SHA) and got.read_bytes() == PAYLOAD
    with pytest.raises(SourceError, match="sha256 mismatch for hf://someone/cnn@.*expected 0{64}, got " + SHA):
        fetch(source(sha="0" * 64), Cache(tmp_path / "cache2"))
    assert not (tmp_path / "cache2" / "sha256" / "00" / ("0" * 64)).exists()


class _Hub(BaseHTTPRequestHandler):
    """Answers /<repo>/resolve/<revision>/<file> as the Hub does (HEAD for metadata, GET for bytes)."""

    body = PAYLOAD
    seen_auth: list = []

    def _headers(self):
        if not self.path.startswith(f"/someone/cnn/resolve/{COMMIT}/model.safetensors"):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.send_header("X-Error-Code", "EntryNotFound")
            self.end_headers()
            return False
        self.seen_auth.append(self.headers.get("authorization"))
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.send_header("ETag", f'"{hashlib.sha256(self.body).hexdigest()}"')
        self.send_header("X-Repo-Commit", COMMIT)
        self.end_headers()
        return True

    def do_HEAD(self):
        self._headers()

    def do_GET(self):
        if self._headers():
            self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def hub(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    yield server
    server.shutdown()
    server.server_close()


def test_download_from_a_hub_server_is_checked(tmp_path, hub):
    cache = Cache(tmp_path / "cache")
    got = fetch(source(), cache)
    assert got.read_bytes() == PAYLOAD and got == cache.path(SHA)
    assert fetch(source(), cache) == got  # second time from our cache
    with pytest.raises(SourceError, match="sha256 mismatch"):
        fetch(source(sha="1" * 64), Cache(tmp_path / "other"))
    assert not [p for p in (tmp_path / "other").rglob("*") if p.is_file()]  # no partial file kept


def test_missing_file_on_the_hub_is_a_clear_error(tmp_path, hub):
    bad = HfSource(kind="hf", repo_id="someone/cnn", revision=COMMIT, filename="nope.bin", sha256=SHA)
    with pytest.raises(SourceError, match=r"hf://someone/cnn@0123.*/nope.bin: could not download from the Hub"):
        fetch(bad, Cache(tmp_path / "cache"))


def test_unpinned_download_for_catalog_add(tmp_path, hub):
    """``catalog add hf:...`` learns the pin: the file is stored under its own sha256."""
    from cnn_filter_db.scaffold import inspect
    from cnn_filter_db.sources.hf import download

    cache = Cache(tmp_path / "cache")
    got = download({"kind": "hf", "repo_id": "someone/cnn", "revision": COMMIT, "filename": "model.safetensors"},
                   cache)
    assert got == cache.path(SHA) and got.read_bytes() == PAYLOAD
    found = inspect(f"hf:someone/cnn@{COMMIT}:model.safetensors", cache_dir=tmp_path / "cache2")
    assert (found.format, found.n_layers, found.n_filters, found.sha256) == ("safetensors", 1, 8, SHA)
