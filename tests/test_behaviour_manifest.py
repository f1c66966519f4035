"""Reading ``manifest.json``: from a release folder or the file itself, and every bad input
as one ``ReleaseError`` naming the file (and the field, for a malformed manifest)."""
from __future__ import annotations

import hashlib
import json

import pytest

from cnn_filter_db.dataset.manifest import check_manifest, read_manifest, write_manifest
from cnn_filter_db.errors import ReleaseError

SHA_A = hashlib.sha256(b"a").hexdigest()


def _manifest(**changes) -> dict:
    m = {"name": "cnn-filter-db", "version": "0.1.0", "fingerprint": SHA_A, "catalog_sha256": SHA_A,
         "versions": {"cnn-filter-db": "0.1.0"},
         "shards": [{"path": "models/train-00000-of-00001.parquet", "sha256": SHA_A, "rows": 3, "bytes": 10}]}
    m.update(changes)
    return m


def test_read_manifest_from_the_folder_or_the_file(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(_manifest()))
    for source in (tmp_path, tmp_path / "manifest.json", str(tmp_path)):
        m = read_manifest(source)
        assert (m.version, m.fingerprint, m.shards[0].rows) == ("0.1.0", SHA_A, 3)


def test_missing_manifest_names_the_file(tmp_path):
    with pytest.raises(ReleaseError) as info:
        read_manifest(tmp_path)
    assert str(info.value) == f"{tmp_path / 'manifest.json'}: no manifest (the release stage writes it)"


def test_unreadable_manifest_names_the_file(tmp_path):
    (tmp_path / "manifest.json").write_bytes(b"\xff\xfe not utf-8 \xff")
    with pytest.raises(ReleaseError) as info:
        read_manifest(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'manifest.json'}: cannot be read: ")


def test_invalid_json_names_the_file(tmp_path):
    (tmp_path / "manifest.json").write_text('{"name": "cnn-filter-db",')
    with pytest.raises(ReleaseError) as info:
        read_manifest(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'manifest.json'}: not valid JSON (")


def test_malformed_manifest_names_the_file_and_the_field(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(_manifest(fingerprint="not-a-hash")))
    with pytest.raises(ReleaseError) as info:
        read_manifest(tmp_path)
    msg = str(info.value)
    assert msg.startswith(f"{tmp_path / 'manifest.json'}: malformed manifest: fingerprint: ")
    (tmp_path / "manifest.json").write_text(json.dumps(_manifest(shards=[{"path": "../x.parquet", "sha256": SHA_A,
                                                                           "rows": 1, "bytes": 1}])))
    with pytest.raises(ReleaseError, match=r"manifest.json: malformed manifest: shards\.0\.path: "):
        read_manifest(tmp_path)


def _release(tmp_path):
    """A release folder by hand: one models shard (any bytes: only its hash matters here)."""
    shard = tmp_path / "models" / "train-00000-of-00001.parquet"
    shard.parent.mkdir(parents=True)
    shard.write_bytes(b"shard bytes")
    sha = hashlib.sha256(b"shard bytes").hexdigest()
    fp = hashlib.sha256(sha.encode()).hexdigest()  # one shard: sha256 of its sha256 alone
    (tmp_path / "manifest.json").write_text(json.dumps(_manifest(
        fingerprint=fp, shards=[{"path": "models/train-00000-of-00001.parquet", "sha256": sha, "rows": 1,
                                 "bytes": len(b"shard bytes")}])))
    return tmp_path


def test_check_manifest_accepts_a_matching_folder_and_names_a_stray_file(tmp_path):
    release = _release(tmp_path)
    assert check_manifest(release) == []
    (release / "stray.txt").write_text("not in the manifest")
    assert check_manifest(release) == [f"{release / 'stray.txt'}: not listed in manifest.json"]


def test_check_manifest_reports_a_malformed_manifest_as_one_problem(tmp_path):
    release = _release(tmp_path)
    (release / "manifest.json").write_text(json.dumps(_manifest(version=3)))
    problems = check_manifest(release)
    assert len(problems) == 1
    assert problems[0].startswith(f"{release / 'manifest.json'}: malformed manifest: version: ")


def test_check_manifest_names_every_missing_file_and_a_stray_shard(tmp_path):
    release = _release(tmp_path)
    m = json.loads((release / "manifest.json").read_text())
    m["files"] = {"README.md": SHA_A, "CITATION.cff": SHA_A}   # listed, never written
    (release / "manifest.json").write_text(json.dumps(m))
    stray = release / "layers" / "train-00000-of-00001.parquet"  # a shard on disk, not listed
    stray.parent.mkdir()
    stray.write_bytes(b"other shard")
    problems = check_manifest(release)
    assert f"{release / 'CITATION.cff'}: listed in manifest.json but missing" in problems
    assert f"{release / 'README.md'}: listed in manifest.json but missing" in problems
    assert f"{stray}: not listed in manifest.json" in problems
    # the fingerprint of both shards on disk, sorted (hashlib), differs from the recorded one
    both = sorted(hashlib.sha256(b).hexdigest() for b in (b"shard bytes", b"other shard"))
    recomputed = hashlib.sha256("\n".join(both).encode()).hexdigest()
    assert f"{release / 'manifest.json'}: fingerprint {m['fingerprint']} does not match the shards ({recomputed})" in problems
    assert len(problems) == 4


def test_malformed_manifest_lists_every_field_and_the_reason(tmp_path):
    (tmp_path / "manifest.json").write_text("[]")
    with pytest.raises(ReleaseError) as info:
        read_manifest(tmp_path)
    assert str(info.value) == (f"{tmp_path / 'manifest.json'}: malformed manifest: "
                               "(top): Input should be a valid dictionary or instance of Manifest")
    (tmp_path / "manifest.json").write_text(json.dumps({"name": "cnn-filter-db", "version": "0.1.0"}))
    with pytest.raises(ReleaseError) as info:
        read_manifest(tmp_path)
    assert str(info.value) == (f"{tmp_path / 'manifest.json'}: malformed manifest: fingerprint: Field required; "
                               "catalog_sha256: Field required; versions: Field required; shards: Field required")
    bad_path = _manifest(shards=[{"path": "../x.parquet", "sha256": SHA_A, "rows": 1, "bytes": 1}])
    (tmp_path / "manifest.json").write_text(json.dumps(bad_path))
    with pytest.raises(ReleaseError) as info:
        read_manifest(tmp_path)
    assert "shards.0.path: " in str(info.value)
    assert "'../x.parquet': not a path inside the release folder" in str(info.value)


def test_write_manifest_refuses_a_malformed_one_naming_the_file(tmp_path):
    with pytest.raises(ReleaseError) as info:
        write_manifest(tmp_path, _manifest(fingerprint="f"))
    assert str(info.value).startswith(f"{tmp_path / 'manifest.json'}: malformed manifest: fingerprint: ")
    assert not (tmp_path / "manifest.json").exists()
    path = write_manifest(tmp_path, _manifest())
    assert path == tmp_path / "manifest.json"
    assert json.loads(path.read_text()) == _manifest()   # written as given (keys sorted, same values)
    assert path.read_text().endswith("}\n") and '\n  "catalog_sha256"' in path.read_text()
    keys = list(json.loads(path.read_text()))                     # in the file's order
    assert keys == sorted(keys)
