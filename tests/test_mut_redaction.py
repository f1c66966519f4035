"""The Hub error messages of ``sources.hf``: one line of the error, token-free (mutants of
``_message`` that survived the end-to-end tests, which only see a non-empty first line)."""
from __future__ import annotations

import pytest

from cnn_filter_db.sources.hf import _message

WHAT = "hf://org/model@0123/w.onnx"
TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567"  # the shape of a user access token


@pytest.fixture(autouse=True)
def _no_configured_token(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)


def test_hub_error_message_keeps_only_the_first_line_of_the_error():
    exc = ConnectionError("  Max retries exceeded\nTraceback detail\nmore")
    assert _message(WHAT, exc) == f"{WHAT}: could not download from the Hub (ConnectionError: Max retries exceeded)"


def test_hub_error_message_of_an_empty_error_names_its_type_only():
    assert _message(WHAT, TimeoutError()) == f"{WHAT}: could not download from the Hub (TimeoutError: )"
    assert _message(WHAT, OSError("  \n ")) == f"{WHAT}: could not download from the Hub (OSError: )"


def test_hub_error_message_is_scrubbed_of_a_token_in_the_error():
    exc = PermissionError(f"401 for url https://hub.example.org/x?token={TOKEN}")
    assert _message(WHAT, exc) == (f"{WHAT}: could not download from the Hub "
                                   "(PermissionError: 401 for url https://hub.example.org/x?token=hf_<redacted>)")
