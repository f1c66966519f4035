"""Tokens never reach an output: the scrubbing functions (``sources.hf.redact`` and
``publish._scrub``) on real token shapes, then end to end against a server that echoes the
Authorization header back in its error, so the token really is in the raw error."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cnn_filter_db.publish import _scrub
from cnn_filter_db.release import build_release
from cnn_filter_db.sources.hf import redact

from echo_server import EchoServer

SRC = Path(__file__).resolve().parents[1] / "src"
# the shape of a Hub user access token: "hf_" and 34 letters and digits
HF_TOKEN_SHAPED = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567"
PLAIN_SECRET = "plain-secret-not-hub-shaped-9f8e7d"   # not hf_-shaped: only found by its value
REPO = "test-org/cnn-filter-db"


@pytest.fixture(autouse=True)
def _no_configured_token(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)


# --------------------------------------------------------------------------- unit: shapes

T = HF_TOKEN_SHAPED
R = "hf_<redacted>"


@pytest.mark.parametrize("text,expected", [
    (f"401 Client Error for url https://huggingface.co/api/models/x (token {T})",
     f"401 Client Error for url https://huggingface.co/api/models/x (token {R})"),
    (f"headers: {{'Authorization': 'Bearer {T}'}}", f"headers: {{'Authorization': 'Bearer {R}'}}"),
    (f"Authorization: Bearer {T}\r\nHost: huggingface.co", f"Authorization: Bearer {R}\r\nHost: huggingface.co"),
    (f"https://user:{T}@huggingface.co/datasets/x.git", f"https://user:{R}@huggingface.co/datasets/x.git"),
    (f"https://huggingface.co/api/whoami?token={T}&x=1", f"https://huggingface.co/api/whoami?token={R}&x=1"),
    # two tokens, the second written backwards ("...0123456776543210zY...A_fh"): one run of
    # letters and digits after "hf_", so one placeholder and the trailing "_fh"
    (f"{T}{T[::-1]}", f"{R}_fh"),
])
def test_redact_removes_hub_shaped_tokens(text, expected):
    assert redact(text) == expected


def test_redact_keeps_text_without_tokens():
    text = "hf://org/model@abc/model.onnx: 404 Not Found (hf_ alone, or hf_short, is no token)"
    assert redact(text) == text


def test_redact_removes_the_configured_token_of_any_shape(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", PLAIN_SECRET)
    out = redact(f"Authorization: Bearer {PLAIN_SECRET} refused; url https://h/x?t={PLAIN_SECRET}")
    assert PLAIN_SECRET not in out
    assert out == "Authorization: Bearer <token> refused; url https://h/x?t=<token>"


@pytest.mark.parametrize("text", [
    "Authorization: Bearer {t}",
    "https://user:{t}@hub.example.org/x",
    "error for token={t}: denied; again {t}",
])
def test_scrub_removes_the_token_it_is_given(text):
    out = _scrub(text.format(t=PLAIN_SECRET), PLAIN_SECRET)
    assert PLAIN_SECRET not in out
    assert out == text.format(t="<token>")


def test_scrub_also_removes_hub_shaped_tokens_it_was_not_given():
    out = _scrub(f"Bearer {HF_TOKEN_SHAPED} and Bearer {PLAIN_SECRET}", PLAIN_SECRET)
    assert HF_TOKEN_SHAPED not in out and PLAIN_SECRET not in out
    assert out == "Bearer hf_<redacted> and Bearer <token>"
    assert _scrub("nothing secret", None) == "nothing secret"


# --------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def echo():
    server = EchoServer().start()
    yield server
    server.stop()


def _run(code: str, endpoint: str, home: Path, token: str | None) -> subprocess.CompletedProcess:
    """``code`` in a fresh, online Python (huggingface_hub reads the offline switch at import)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1",
               PYTHONPATH=str(SRC) + os.pathsep + env.get("PYTHONPATH", ""))
    if token is not None:
        env["HF_TOKEN"] = token
    # default logging (WARNING): at DEBUG, httpcore logs the raw response headers, which this
    # server fills with the token; that is the HTTP library's trace, not a message of ours
    prelude = "import logging, sys\nfrom pathlib import Path\nlogging.basicConfig(stream=sys.stderr)\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("token", [HF_TOKEN_SHAPED, PLAIN_SECRET])
def test_hf_source_error_never_shows_the_echoed_token(echo, tmp_path, token):
    before = len(echo.seen)
    proc = _run(f"""
        from cnn_filter_db.errors import SourceError
        from cnn_filter_db.sources.cache import Cache
        from cnn_filter_db.sources.hf import download
        try:
            download({{"repo_id": "org/model", "revision": "main", "filename": "w.onnx", "sha256": "0" * 64}},
                     Cache(Path({str(tmp_path / 'cache')!r})))
        except SourceError as exc:
            print("ERROR:", exc)
            sys.exit(3)
    """, echo.url, tmp_path / "home", token)
    # the token really went to the server, which put it in its error
    assert any(auth == f"Bearer {token}" for _, _, auth in echo.seen[before:]), echo.seen[before:]
    assert proc.returncode == 3, proc.stdout + proc.stderr[-3000:]
    assert "ERROR: hf://org/model@main/w.onnx: could not download from the Hub" in proc.stdout
    # the error names the redirected URL, whose query held the token: now a placeholder
    assert "401" in proc.stdout and "w.onnx?echo=" in proc.stdout
    assert token not in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def release(small_release, tmp_path_factory, root):
    rel = tmp_path_factory.mktemp("redaction") / "cnn-filter-db"
    shutil.copytree(small_release, rel)
    build_release(rel, "0.1.0", {"redistributable_licenses": ["MIT", "Apache-2.0", "AGPL-3.0"],
                                 "hub_repo_id": REPO}, root=root)
    return rel


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_publish_error_never_shows_the_echoed_token(echo, release, tmp_path, how):
    before = len(echo.seen)
    token_arg = repr(PLAIN_SECRET) if how == "argument" else "None"
    proc = _run(f"""
        from cnn_filter_db.publish import PublishError, publish
        try:
            publish(Path({str(release)!r}), {REPO!r}, token={token_arg})
        except PublishError as exc:
            print("REFUSED:", exc)
            sys.exit(3)
    """, echo.url, tmp_path / "home", PLAIN_SECRET if how == "environment" else None)
    assert any(auth == f"Bearer {PLAIN_SECRET}" for _, _, auth in echo.seen[before:]), echo.seen[before:]
    assert proc.returncode == 3, proc.stdout + proc.stderr[-3000:]
    assert f"REFUSED: {REPO}: publishing v0.1.0 failed" in proc.stdout and "401" in proc.stdout
    assert PLAIN_SECRET not in proc.stdout + proc.stderr
