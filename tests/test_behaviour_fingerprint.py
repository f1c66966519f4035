"""The release fingerprint (SPEC.md section 4: sha256 over the sorted list of every shard's
sha256), recomputed here with hashlib from the shard files, never by the code under test."""
from __future__ import annotations

import hashlib
import json
import random

import pyarrow.parquet as pq

from cnn_filter_db.dataset.manifest import build_manifest, check_manifest, fingerprint, write_manifest


def _file_sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _shards(release):
    """Every Parquet shard of the release's three configs, found by globbing, not by layout."""
    return [p for p in release.rglob("*.parquet")
            if p.relative_to(release).parts[0] in ("filters", "layers", "models")]


def _expected(release) -> str:
    hexes = sorted(_file_sha256(p) for p in _shards(release))
    return hashlib.sha256("\n".join(hexes).encode()).hexdigest()


def test_fingerprint_of_hashes_in_any_order():
    hexes = [hashlib.sha256(bytes([i])).hexdigest() for i in range(7)]
    expected = hashlib.sha256("\n".join(sorted(hexes)).encode()).hexdigest()
    rng = random.Random(0)
    orders = set()
    for _ in range(20):
        shuffled = hexes[:]
        rng.shuffle(shuffled)
        orders.add(tuple(shuffled))
        assert fingerprint(shuffled) == expected
        assert fingerprint(iter(shuffled)) == expected  # a generator, as build_manifest passes
    assert len(orders) > 2  # really different orders were tried


def test_fingerprint_literal():
    """sha256 of b"a" (ca97...) and of b"b" (3e23...); sorted, 3e23 comes first. The expected
    value was computed outside Python: printf "%s\\n%s" $B $A | sha256sum (coreutils)."""
    a = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
    b = "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"
    assert hashlib.sha256(b"a").hexdigest() == a and hashlib.sha256(b"b").hexdigest() == b
    expected = "0d6b8562ada6532fbb83d290ef589552c0cdd3595596402f5d2ff2aa3368ffea"
    assert fingerprint([a, b]) == fingerprint([b, a]) == expected


def test_manifest_fingerprint_recomputed_from_the_shard_files(copy_release):
    release = copy_release()
    shards = _shards(release)
    assert len(shards) >= 7  # five filter shards, layers, models
    manifest = build_manifest(release, "0.0.1", "0" * 64, {"cnn-filter-db": "test"})
    assert manifest["fingerprint"] == _expected(release)
    # each shard's recorded sha256 is the file's
    recorded = {s["path"]: s["sha256"] for s in manifest["shards"]}
    assert recorded == {p.relative_to(release).as_posix(): _file_sha256(p) for p in shards}
    # the other fields: as given, and rows and bytes read with pyarrow and stat
    assert (manifest["name"], manifest["version"], manifest["catalog_sha256"], manifest["versions"]) == \
        ("cnn-filter-db", "0.0.1", "0" * 64, {"cnn-filter-db": "test"})
    for s in manifest["shards"]:
        assert s["rows"] == pq.ParquetFile(release / s["path"]).metadata.num_rows
        assert s["bytes"] == (release / s["path"]).stat().st_size


def test_changing_one_shard_changes_the_fingerprint_and_check_finds_it(copy_release):
    release = copy_release()
    manifest = build_manifest(release, "0.0.1", "0" * 64, {"cnn-filter-db": "test"})
    write_manifest(release, manifest)
    assert check_manifest(release) == []
    before = _expected(release)
    shard = sorted(_shards(release))[0]
    # its first row dropped: a different (still readable) file, a different fingerprint
    pq.write_table(pq.read_table(shard).slice(1), shard)
    after = _expected(release)
    assert after != before
    problems = check_manifest(release)
    assert any("fingerprint" in p and after in p for p in problems), problems
    rebuilt = build_manifest(release, "0.0.1", "0" * 64, {"cnn-filter-db": "test"})
    assert rebuilt["fingerprint"] == after
    assert json.loads((release / "manifest.json").read_text())["fingerprint"] == before
