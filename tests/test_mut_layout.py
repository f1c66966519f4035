"""``dataset.layout``: which paths belong to a release folder, with every refusal checked on
paths written out by hand (mutants that survived the other tests)."""
from __future__ import annotations

import os

import pytest

from cnn_filter_db.dataset import layout
from cnn_filter_db.errors import ReleaseError


def test_a_partial_download_of_one_model_asks_for_its_shards_the_layers_and_the_manifest():
    assert layout.download_patterns(["m1"]) == ["filters/m1/*.parquet", "layers/*.parquet", "manifest.json"]
    assert layout.download_patterns(["m1", "m2"]) == ["filters/m1/*.parquet", "filters/m2/*.parquet",
                                                      "layers/*.parquet", "manifest.json"]
    assert layout.download_patterns(None) == ["filters/*/*.parquet", "layers/*.parquet", "manifest.json"]
    for bad in ("../m1", "*", "m[12]", "m?"):
        with pytest.raises(ReleaseError, match=r"not a model id"):
            layout.download_patterns(["m1", bad])


@pytest.mark.parametrize("rel", [
    "a\\b.parquet",        # a backslash: a separator on Windows
    "/abs/x.parquet", "a//b.parquet", "a/./b.parquet", "a/", "a/../b", "..", ".", "",
    ".hidden/x", "filters/.m.tmp/x", "x.tmp",
])
def test_a_path_that_is_not_plainly_inside_the_folder_is_refused(rel):
    with pytest.raises(ReleaseError) as info:
        layout.check_relative(rel)
    assert str(info.value) == f"{rel!r}: not a path inside the release folder"


@pytest.mark.parametrize("rel", [None, 5, b"filters/x.parquet"])
def test_a_path_that_is_not_a_string_is_refused(rel):
    with pytest.raises(ReleaseError, match="not a path inside the release folder"):
        layout.check_relative(rel)


def test_plain_relative_paths_are_accepted():
    for rel in ("manifest.json", "filters/m/m-00000-of-00001.parquet", "a/b/c.d"):
        assert layout.check_relative(rel) == rel


def test_links_fifos_and_linked_folders_are_listed_apart_and_never_entered(tmp_path):
    """Only regular files belong to a release; every other visible entry is named apart,
    found without following it (a linked folder is not entered)."""
    release, outside = tmp_path / "rel", tmp_path / "outside"
    (release / "filters" / "m").mkdir(parents=True)
    outside.mkdir()
    (outside / "x.parquet").write_bytes(b"x")
    (release / "filters" / "m" / "m-00000-of-00001.parquet").write_bytes(b"x")
    (release / "README.md").write_text("card\n")
    (release / ".hidden").mkdir()
    os.symlink("/dev/zero", release / ".hidden" / "zero")          # hidden: not even listed
    os.symlink(outside, release / "filters" / "linked")             # a folder link out
    os.symlink(release / "README.md", release / "card-link.md")     # a link that stays inside
    os.symlink(tmp_path / "not-yet", release / "dangling.json")
    os.symlink("/dev/zero", release / "notes.txt")
    os.mkfifo(release / "filters" / "m" / "pipe")
    files, other = layout.release_entries(release)
    assert files == ["README.md", "filters/m/m-00000-of-00001.parquet"]
    assert other == ["card-link.md", "dangling.json", "filters/linked", "filters/m/pipe", "notes.txt"]
    assert layout.release_files(release) == files
    assert layout.release_entries(tmp_path / "missing") == ([], [])


def test_model_shards_are_the_visible_parquet_files_in_name_order(tmp_path):
    folder = tmp_path / "filters" / "m"
    (folder / "sub.parquet").mkdir(parents=True)          # a folder, not a shard
    for name in ("m-00001-of-00002.parquet", "m-00000-of-00002.parquet", ".m-00000-of-00002.parquet",
                 "m.parquet.tmp", "notes.txt"):
        (folder / name).write_bytes(b"x")
    assert [p.name for p in layout.model_shards(tmp_path, "m")] == ["m-00000-of-00002.parquet",
                                                                    "m-00001-of-00002.parquet"]


def test_shards_are_listed_in_the_order_of_their_relative_paths_as_text(tmp_path):
    """The manifest's order: by the posix path string, where "m-b/" sorts before "m/"
    ('-' is 0x2d, '/' is 0x2f), unlike an order by path components."""
    for rel in ("filters/m/m-00000-of-00001.parquet", "filters/m-b/m-b-00000-of-00001.parquet",
                "filters/m.x/m.x-00000-of-00001.parquet", "layers/train-00000-of-00001.parquet"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    got = [p.relative_to(tmp_path).as_posix() for p in layout.list_shards(tmp_path)]
    assert got == ["filters/m-b/m-b-00000-of-00001.parquet", "filters/m.x/m.x-00000-of-00001.parquet",
                   "filters/m/m-00000-of-00001.parquet", "layers/train-00000-of-00001.parquet"]


@pytest.mark.parametrize("model_id", ["", "a/b", "a\\b", "a\0b", ".", "..", ".hidden", "m.tmp", 5, None,
                                      "*", "m?", "m[0]"])  # glob characters would widen a download
def test_a_model_id_that_is_not_one_visible_folder_name_is_refused(model_id):
    with pytest.raises(ReleaseError) as info:
        layout.check_model_id(model_id)
    assert str(info.value) == f"model_id {model_id!r}: not a model id (one visible folder name under filters/)"


def test_model_ids_of_the_catalog_shape_are_accepted(tmp_path):
    for model_id in ("efficientnet-lite0", "a", "m.x_1"):
        assert layout.check_model_id(model_id) == model_id
        assert layout.model_dir(tmp_path, model_id) == tmp_path / "filters" / model_id


def test_an_unknown_table_is_refused_naming_the_known_ones(tmp_path):
    with pytest.raises(ReleaseError) as info:
        layout.table_dir(tmp_path, "nope")
    assert str(info.value) == "unknown table 'nope'; known: ['filters', 'layer_stats', 'layers', 'models']"
    assert [layout.table_dir(tmp_path, n) for n in ("filters", "layers", "models", "layer_stats")] == [
        tmp_path / "filters", tmp_path / "layers", tmp_path / "models", tmp_path / "layer_stats"]
