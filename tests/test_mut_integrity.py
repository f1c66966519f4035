"""``dataset.integrity.verify``: the remembered manifests and shards never stand in for a
changed or another folder's file (mutants of the caches that survived the other tests).

The shards are small files written by the test; the manifests are written by hand with
their sha256 from hashlib, so no expectation comes from the code under test."""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from cnn_filter_db.dataset import integrity
from cnn_filter_db.errors import IntegrityError

SHARDS = ["filters/m/m-00000-of-00002.parquet", "filters/m/m-00001-of-00002.parquet"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_manifest(release: Path, recorded: dict[str, str]) -> Path:
    """A manifest recording ``recorded`` (path -> sha256); the fingerprint is not checked by verify."""
    doc = {"name": "cnn-filter-db", "version": "0.0.0", "fingerprint": "f" * 64, "catalog_sha256": "c" * 64,
           "versions": {}, "shards": [{"path": p, "sha256": s, "rows": 1, "bytes": 1} for p, s in recorded.items()]}
    path = release / "manifest.json"
    path.write_text(json.dumps(doc, indent=1, sort_keys=True))
    return path


def _release(root: Path, contents: list[bytes]) -> tuple[Path, list[Path]]:
    """A folder with two shard files of the given bytes and a manifest recording their sha256."""
    paths = []
    for rel, data in zip(SHARDS, contents):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        paths.append(p)
    _write_manifest(root, {rel: _sha(data) for rel, data in zip(SHARDS, contents)})
    return root, paths


def test_a_remembered_shard_does_not_end_the_check_of_the_others(tmp_path):
    release, (a, b) = _release(tmp_path / "r", [b"shard a", b"shard b"])
    integrity.verify(release, [a])          # a is now remembered
    b.write_bytes(b"shard B")               # b no longer matches the manifest
    with pytest.raises(IntegrityError, match=re.escape(str(b))):
        integrity.verify(release, [a, b])


def test_a_rewritten_manifest_is_read_again(tmp_path):
    release, (a, _) = _release(tmp_path / "r", [b"shard a", b"shard b"])
    integrity.verify(release, [a])
    path = _write_manifest(release, {SHARDS[0]: _sha(b"another a"), SHARDS[1]: _sha(b"shard b")})
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a later write, whatever the clock's grain
    with pytest.raises(IntegrityError, match=r"sha256 [0-9a-f]{64} differs from " + _sha(b"another a")):
        integrity.verify(release, [a])


def test_two_folders_whose_manifests_look_alike_are_not_confused(tmp_path):
    """Same size and mtime of manifest.json, other content: each folder is checked against its own."""
    rel_a, (a, _) = _release(tmp_path / "a", [b"shard a", b"shard b"])
    rel_b, (b, _) = _release(tmp_path / "b", [b"shard x", b"shard y"])
    ma, mb = rel_a / "manifest.json", rel_b / "manifest.json"
    assert ma.stat().st_size == mb.stat().st_size  # the hex digests have one length
    os.utime(mb, ns=(ma.stat().st_atime_ns, ma.stat().st_mtime_ns))
    integrity.verify(rel_a, [a])
    integrity.verify(rel_b, [b])            # b matches its own manifest, not a's


def test_errors_say_what_the_mismatch_means(tmp_path):
    release, (a, b) = _release(tmp_path / "r", [b"shard a", b"shard b"])
    stray = release / "filters" / "m" / "m-extra.parquet"
    stray.write_bytes(b"stray")
    with pytest.raises(IntegrityError) as info:
        integrity.verify(release, [stray])
    assert str(info.value) == (f"{stray}: not listed in {release / 'manifest.json'}; the folder is not "
                               "the release the manifest describes")
    b.write_bytes(b"changed")
    with pytest.raises(IntegrityError) as info:
        integrity.verify(release, [b])
    assert str(info.value) == (f"{b}: sha256 {_sha(b'changed')} differs from {_sha(b'shard b')} in manifest.json; "
                               "the shard is corrupt or was changed after the release was built")


def test_a_folder_without_manifest_is_not_checked(tmp_path):
    release, (a, _) = _release(tmp_path / "r", [b"shard a", b"shard b"])
    (release / "manifest.json").unlink()
    a.write_bytes(b"anything")
    assert integrity.verify(release, [a]) is None


def test_an_unchanged_manifest_is_parsed_once(tmp_path, monkeypatch):
    """The module docstring's promise: a second read of an unchanged folder costs a stat."""
    release, (a, b) = _release(tmp_path / "r", [b"shard a", b"shard b"])
    parsed = []
    real = integrity.read_manifest
    monkeypatch.setattr(integrity, "read_manifest", lambda p: parsed.append(Path(p)) or real(p))
    integrity.verify(release, [a])
    integrity.verify(release, [b])
    integrity.verify(release, [a, b])
    assert parsed == [release / "manifest.json"]
