"""The publish gate's pure parts: the plan (a release must match its manifest before
anything is sent), the commit batches, the sizes printed and the git ids compared with the
Hub's. Expectations: hashlib and ``git hash-object``, or counted by hand below."""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from cnn_filter_db.publish import PlannedFile, PublishError, batches, git_blob_oid, human_size, plan

FILES = {  # a release folder by hand: path -> bytes
    "filters/m/m-00000-of-00001.parquet": b"A" * 10,
    "layers/train-00000-of-00001.parquet": b"L" * 5,
    "README.md": b"card\n",
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _release(root: Path) -> Path:
    for rel, data in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / ".cache.tmp").mkdir()                       # litter: never part of a release
    (root / ".cache.tmp" / "x.parquet").write_bytes(b"x")
    shards = [p for p in FILES if p.endswith(".parquet")]
    # SPEC section 4: the fingerprint is sha256 over the sorted shard sha256s joined by newlines
    fingerprint = _sha("\n".join(sorted(_sha(FILES[p]) for p in shards)).encode())
    doc = {"name": "cnn-filter-db", "version": "1.2.3", "fingerprint": fingerprint, "catalog_sha256": "c" * 64,
           "versions": {}, "files": {"README.md": _sha(FILES["README.md"])},
           "shards": [{"path": p, "sha256": _sha(FILES[p]), "rows": 1, "bytes": len(FILES[p])} for p in shards]}
    (root / "manifest.json").write_text(json.dumps(doc, indent=2))
    return root


def test_plan_lists_every_visible_file_with_its_size_and_sha256(tmp_path):
    release = _release(tmp_path / "rel")
    manifest, files = plan(release)
    assert manifest.version == "1.2.3"
    mbytes = (release / "manifest.json").read_bytes()
    # sorted by path: upper case sorts before lower case
    assert [(f.path_in_repo, f.local, f.size, f.sha256) for f in files] == [
        ("README.md", release / "README.md", 5, _sha(b"card\n")),
        ("filters/m/m-00000-of-00001.parquet", release / "filters/m/m-00000-of-00001.parquet", 10, _sha(b"A" * 10)),
        ("layers/train-00000-of-00001.parquet", release / "layers/train-00000-of-00001.parquet", 5, _sha(b"L" * 5)),
        ("manifest.json", release / "manifest.json", len(mbytes), _sha(mbytes)),
    ]


@pytest.mark.parametrize("change,problem", [
    (lambda r: (r / "layers/train-00000-of-00001.parquet").write_bytes(b"M" * 5), "sha256 differs"),
    (lambda r: (r / "stray.txt").write_text("x"), "not listed in manifest.json"),
])
def test_plan_refuses_a_release_that_differs_from_its_manifest(tmp_path, change, problem):
    release = _release(tmp_path / "rel")
    change(release)
    with pytest.raises(PublishError) as info:
        plan(release)
    first, *problems = str(info.value).split("\n")
    assert first == f"{release}: the release does not match its manifest, not publishing:"
    assert problems and any(problem in p for p in problems)


def test_plan_lists_every_problem_on_its_own_line(tmp_path):
    release = _release(tmp_path / "rel")
    (release / "layers/train-00000-of-00001.parquet").write_bytes(b"M" * 5)
    (release / "stray.txt").write_text("x")
    with pytest.raises(PublishError) as info:
        plan(release)
    lines = str(info.value).split("\n")
    fingerprint = _sha("\n".join(sorted([_sha(b"A" * 10), _sha(b"M" * 5)])).encode())
    assert lines[1:] == [f"{release / 'stray.txt'}: not listed in manifest.json",
                         f"{release / 'layers/train-00000-of-00001.parquet'}: sha256 differs from manifest.json",
                         f"{release / 'manifest.json'}: fingerprint {json.loads((release / 'manifest.json').read_text())['fingerprint']} "
                         f"does not match the shards ({fingerprint})"]


def test_plan_of_a_manifest_without_card_files(tmp_path):
    """``files`` is optional in a manifest: without it every sha256 is the file's own."""
    release = _release(tmp_path / "rel")
    (release / "README.md").unlink()
    doc = json.loads((release / "manifest.json").read_text())
    del doc["files"]
    (release / "manifest.json").write_text(json.dumps(doc))
    _, files = plan(release)
    assert [(f.path_in_repo, f.sha256) for f in files[:2]] == [
        ("filters/m/m-00000-of-00001.parquet", _sha(b"A" * 10)), ("layers/train-00000-of-00001.parquet", _sha(b"L" * 5))]


def _files(sizes: dict[str, int]) -> list[PlannedFile]:
    return [PlannedFile(p, Path(p), n) for p, n in sizes.items()]


def test_batches_fill_each_commit_up_to_both_limits_and_keep_the_card_last():
    files = _files({"README.md": 3, "a": 5, "b": 5, "c": 5, "d": 20, "e": 1, "manifest.json": 2})
    got = [[f.path_in_repo for f in b] for b in batches(files, max_bytes=10, max_files=2)]
    # a+b = 10 bytes fits exactly; c would make 15; d (20) is alone as it is larger than the limit
    assert got == [["a", "b"], ["c"], ["d"], ["e"], ["README.md", "manifest.json"]]
    got = [[f.path_in_repo for f in b] for b in batches(files, max_bytes=1000, max_files=2)]
    assert got == [["a", "b"], ["c", "d"], ["e"], ["README.md", "manifest.json"]]
    got = [[f.path_in_repo for f in b] for b in batches(files, max_bytes=1000, max_files=3)]
    assert got == [["a", "b", "c"], ["d", "e"], ["README.md", "manifest.json"]]


def test_batches_count_bytes_from_zero_in_every_commit():
    # a+b+c is 9 > 8 bytes (the sum, not the last file's size, is compared); after the first
    # commit the count starts again at 0, so c+d (5 + 5) fits exactly in the limit of 10
    files = _files({"a": 3, "b": 3, "c": 3})
    assert [[f.path_in_repo for f in b] for b in batches(files, 8, 10)] == [["a", "b"], ["c"], []]
    files = _files({"a": 8, "c": 5, "d": 5})
    assert [[f.path_in_repo for f in b] for b in batches(files, 10, 10)] == [["a"], ["c", "d"], []]


def test_batches_of_only_data_or_no_data():
    assert [[f.path_in_repo for f in b] for b in batches(_files({"x": 1}), 10, 10)] == [["x"], []]
    assert [[f.path_in_repo for f in b] for b in batches(_files({"README.md": 1}), 10, 10)] == [["README.md"]]
    assert batches([], 10, 10) == [[]]


@pytest.mark.parametrize("n,text", [
    (0, "0 B"), (999, "999 B"), (1000, "1.0 KB"), (1_550_000, "1.6 MB"), (999_949_999, "999.9 MB"),
    (2_500_000_000, "2.5 GB"), (10**12, "1.0 TB"), (5 * 10**15, "5000.0 TB"),
])
def test_human_size_uses_decimal_units(n, text):
    assert human_size(n) == text


@pytest.mark.parametrize("data", [b"", b"hello\n", bytes(range(256)) * 300])
def test_git_blob_oid_equals_git_hash_object(tmp_path, data):
    path = tmp_path / "f"
    path.write_bytes(data)
    expected = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True).stdout.strip()
    assert git_blob_oid(path) == expected
