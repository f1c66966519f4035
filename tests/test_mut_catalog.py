"""The catalog's files, index and sets (``catalog.py``) on small projects written here:
every refusal with its exact message, the index's order, and the catalog hash recomputed
with hashlib (mutants that survived the other catalog tests)."""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import yaml

from cnn_filter_db import catalog
from cnn_filter_db.errors import CatalogError

from catalog_project import tiny_entry

ROOT = Path(__file__).resolve().parents[1]
PATTERN = r"^[a-z0-9][a-z0-9._-]{1,80}$"


def _project(tmp_path: Path, entries: list[dict], params: dict | None = None) -> Path:
    root = tmp_path / "proj"
    (root / "catalog" / "models").mkdir(parents=True)
    shutil.copy(ROOT / "catalog" / "vocabulary.yaml", root / "catalog")
    for e in entries:
        (root / "catalog" / "models" / f"{e['model_id']}.yaml").write_text(yaml.safe_dump(e, sort_keys=False))
    if params is not None:
        (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def _entries(tmp_path: Path) -> list[dict]:
    a = tiny_entry(tmp_path, "aa-model", None, 2, 0)
    b = tiny_entry(tmp_path, "bb-model", "extra", 2, 1)
    c = tiny_entry(tmp_path, "cc-model", None, 2, 2)
    c["license"] = "proprietary-test"
    return [a, b, c]


def test_model_ids_are_two_to_81_lower_case_letters_digits_dots_dashes_underscores():
    assert [catalog.is_model_id(x) for x in ("ab", "a" * 81, "a-b.c_d", "0x")] == [True] * 4
    assert [catalog.is_model_id(x) for x in ("a", "a" * 82, "Ab", "-ab", "a b", None, 5)] == [False] * 7


def test_entry_path_refuses_an_id_outside_the_pattern(tmp_path):
    assert catalog.entry_path("ab", tmp_path) == tmp_path / "catalog" / "models" / "ab.yaml"
    with pytest.raises(CatalogError) as info:
        catalog.entry_path("../x", tmp_path)
    assert info.value.problems == [("catalog/models/'../x'", "model_id", f"should match pattern '{PATTERN}'")]


def test_shown_paths_stay_on_one_line():
    assert catalog.shown(Path("a\nb\tc.yaml")) == "a\\nb\\tc.yaml"
    assert catalog.shown(Path("plain/ok.yaml")) == "plain/ok.yaml"


def test_every_file_of_the_models_folder_that_is_not_an_entry_is_named(tmp_path):
    root = _project(tmp_path, _entries(tmp_path)[:1])
    models = root / "catalog" / "models"
    (models / ".gitkeep").write_text("")                       # hidden: ignored
    (models / "README.md").write_text("x")
    (models / "Bad_ID.yaml").write_text("x")
    (models / "dir-id.yaml").mkdir()
    os.symlink(models / "aa-model.yaml", models / "link-id.yaml")
    paths, problems = catalog.list_entries(root)
    assert paths == [models / "aa-model.yaml"]
    naming = (f"not a catalog entry: files in catalog/models/ are named <model_id>.yaml, with model_id "
              f"matching '{PATTERN}'")
    assert problems == [(str(models / "Bad_ID.yaml"), "-", naming), (str(models / "README.md"), "-", naming),
                        (str(models / "dir-id.yaml"), "-", "is not a regular file (a symbolic link or a folder)"),
                        (str(models / "link-id.yaml"), "-", "is not a regular file (a symbolic link or a folder)")]
    assert catalog.entry_files(root) == [models / "aa-model.yaml"]
    assert catalog.list_entries(tmp_path / "nowhere") == ([], [])


@pytest.mark.parametrize("name,text,expected", [
    ("aa-model.yml", "x: 1", "a catalog file is named <model_id>.yaml, with model_id matching"),
    ("A.yaml", "x: 1", "a catalog file is named <model_id>.yaml, with model_id matching"),
    ("aa-model.yaml", "", "expected a mapping of fields, got an empty file"),
    ("aa-model.yaml", "- 1\n- 2\n", "expected a mapping of fields, got list"),
])
def test_a_file_that_cannot_be_an_entry_is_one_problem(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(CatalogError) as info:
        catalog.parse_entry(path, tmp_path)
    ((where, fld, message),) = info.value.problems
    assert (where, fld) == (str(path), "-") and message.startswith(expected)


def test_problems_of_an_entry_name_the_source_field_without_the_kind_tag(tmp_path):
    e = _entries(tmp_path)[0]
    e["source"]["sha256"] = "abc"
    e["colour"] = "blue"
    del e["task"]
    root = _project(tmp_path, [e])
    with pytest.raises(CatalogError) as info:
        catalog.parse_entry(root / "catalog" / "models" / "aa-model.yaml", root)
    by_field = {f: m for _, f, m in info.value.problems}
    assert set(by_field) == {"source.sha256", "colour", "task"}
    assert by_field["colour"] == "unknown field (not in catalog/schema.json)"
    assert by_field["task"] == "required field is missing"
    assert "\n" not in by_field["source.sha256"]


def test_a_vocabulary_problem_lists_the_allowed_values(tmp_path):
    e = _entries(tmp_path)[0]
    e["task"] = "dreaming"
    root = _project(tmp_path, [e])
    path = root / "catalog" / "models" / "aa-model.yaml"
    with pytest.raises(CatalogError) as info:
        catalog.parse_entry(path, root)
    ((where, fld, message),) = info.value.problems
    tasks = yaml.safe_load((ROOT / "catalog" / "vocabulary.yaml").read_text())["task"]
    assert (where, fld) == (str(path), "task")
    assert message == (f"'dreaming' is not in vocabulary 'task' of catalog/vocabulary.yaml (add it there, or use "
                       f"one of: {', '.join(tasks)})")
    assert catalog.parse_entry(path, root, vocabulary=False).task == "dreaming"  # structure only


def test_accuracy_needs_its_metric(tmp_path):
    e = _entries(tmp_path)[0]
    e["accuracy"] = 0.5
    root = _project(tmp_path, [e])
    with pytest.raises(CatalogError) as info:
        catalog.parse_entry(root / "catalog" / "models" / "aa-model.yaml", root)
    # a problem of the whole entry (not of one field) names no field: "-"
    assert [p[1:] for p in info.value.problems] == [("-", "accuracy is given: accuracy_metric is required")]
    e["accuracy_metric"] = "top-1"
    (root / "catalog" / "models" / "aa-model.yaml").write_text(yaml.safe_dump(e))
    assert catalog.parse_entry(root / "catalog" / "models" / "aa-model.yaml", root).accuracy == 0.5


def test_catalog_hash_is_over_the_entry_files_then_the_vocabulary(tmp_path):
    root = _project(tmp_path, _entries(tmp_path))
    h = hashlib.sha256()
    files = sorted((root / "catalog" / "models").glob("*.yaml")) + [root / "catalog" / "vocabulary.yaml"]
    for f in files:
        h.update(f"{f.name}\0{hashlib.sha256(f.read_bytes()).hexdigest()}\n".encode())
    assert catalog.catalog_sha256(root) == h.hexdigest()
    before = catalog.catalog_sha256(root)
    e = _entries(tmp_path)[0]
    e["name"] = "edited"
    (root / "catalog" / "models" / "aa-model.yaml").write_text(yaml.safe_dump(e))
    assert catalog.catalog_sha256(root) != before


POLICY = {"redistributable_licenses": ["MIT"]}


def test_index_lists_the_default_set_the_other_sets_and_the_excluded_models(tmp_path):
    root = _project(tmp_path, _entries(tmp_path), {"release": POLICY, "catalog": {"sets": ["default", "extra"]}})
    doc = yaml.safe_load(catalog.render_index(root))
    assert doc["models"] == ["aa-model"] and doc["trained"] == [] and doc["sets"] == {"extra": ["bb-model"]}
    assert list(doc["excluded"]) == ["cc-model"] and "proprietary-test" in doc["excluded"]["cc-model"]
    catalog.write_index(root)
    assert catalog.index_models(root) == ["aa-model", "bb-model"]
    assert catalog.set_members("extra", root) == ["bb-model"]
    assert catalog.check_index(root) == []


def test_index_without_a_licence_policy_excludes_nothing(tmp_path):
    root = _project(tmp_path, _entries(tmp_path), {"catalog": {"sets": ["default"]}})
    doc = yaml.safe_load(catalog.render_index(root))
    assert doc == {"models": ["aa-model", "cc-model"], "trained": [], "sets": {"extra": ["bb-model"]}}
    catalog.write_index(root)
    assert catalog.index_models(root) == ["aa-model", "cc-model"]    # set extra is not selected


def test_index_of_a_catalog_with_a_malformed_entry_is_refused(tmp_path):
    root = _project(tmp_path, _entries(tmp_path)[:1], {})
    (root / "catalog" / "models" / "zz-model.yaml").write_text("name: x\n")
    with pytest.raises(CatalogError) as info:
        catalog.render_index(root)
    assert {p[0] for p in info.value.problems} == {str(root / "catalog" / "models" / "zz-model.yaml")}


@pytest.mark.parametrize("sets,message", [
    ("default", "expected a list of set names, got 'default'"),
    (["default", "Bad Set"], "expected a list of set names, got ['default', 'Bad Set']"),
    (["default", 3], "expected a list of set names, got ['default', 3]"),
    (["extra"], "must include 'default' (the offline set, one DVC stage a model), got ['extra']"),
])
def test_selected_sets_must_be_set_names_including_default(tmp_path, sets, message):
    root = _project(tmp_path, [], {"catalog": {"sets": sets}})
    with pytest.raises(CatalogError) as info:
        catalog.selected_sets(root)
    assert info.value.problems == [("params.yaml", "catalog.sets", message)]


def test_selected_sets_default_to_the_default_set(tmp_path):
    assert catalog.selected_sets(_project(tmp_path, [], {})) == ["default"]


def test_an_unknown_set_is_refused_naming_the_known_ones(tmp_path):
    root = _project(tmp_path, [], {})
    (root / "catalog" / "index.yaml").write_text(yaml.safe_dump({"models": [], "sets": {"b-set": ["ab"],
                                                                                        "a-set": ["cd"]}}))
    with pytest.raises(CatalogError) as info:
        catalog.set_members("nope", root)
    assert info.value.problems == [("catalog/index.yaml", "sets", "has no set 'nope' (sets: a-set, b-set)")]
    (root / "catalog" / "index.yaml").write_text(yaml.safe_dump({"models": []}))
    with pytest.raises(CatalogError, match=r"\(sets: none\)"):
        catalog.set_members("nope", root)


@pytest.mark.parametrize("doc,bad", [
    ({"models": ["ok-id", "../evil"]}, "'../evil'"),
    ({"trained": ["Bad"]}, "'Bad'"),
    ({"sets": {"x": ["ok-id", "a b"]}}, "'a b'"),
    ({"sets": {"x": None}}, "None"),
    ({"sets": ["not", "a", "mapping"]}, "None"),
])
def test_an_index_listing_a_non_id_is_refused(tmp_path, doc, bad):
    root = _project(tmp_path, [], {})
    (root / "catalog" / "index.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(CatalogError) as info:
        catalog.index_models(root)
    assert info.value.problems == [("catalog/index.yaml", "models",
                                    f"{bad} is not a model id; run `cnn-filter-db catalog index`")]


def test_an_index_that_is_not_a_mapping_is_refused(tmp_path):
    root = _project(tmp_path, [], {})
    (root / "catalog" / "index.yaml").write_text("- a\n- b\n")
    with pytest.raises(CatalogError) as info:
        catalog.index_models(root)
    assert info.value.problems == [("catalog/index.yaml", "-", "expected a mapping; run `cnn-filter-db catalog index`")]


def test_index_models_are_the_default_set_then_the_trained_then_the_selected_sets(tmp_path):
    root = _project(tmp_path, [], {"catalog": {"sets": ["default", "x-set"]}})
    (root / "catalog" / "index.yaml").write_text(yaml.safe_dump(
        {"models": ["aa"], "trained": ["tt"], "sets": {"x-set": ["s1", "s2"], "y-set": ["s3"]}}))
    assert catalog.index_models(root) == ["aa", "tt", "s1", "s2"]


def test_an_index_that_is_not_valid_yaml_is_named_with_the_line(tmp_path):
    root = _project(tmp_path, [], {})
    (root / "catalog" / "index.yaml").write_text("models: [aa]\nmodels: [bb]\n")
    with pytest.raises(CatalogError) as info:
        catalog.index_models(root)
    assert info.value.problems == [("catalog/index.yaml", "line 2, column 1",
                                    "not valid catalog YAML: duplicate key 'models' (first at line 1)")]


def test_a_field_holding_a_line_break_is_reported_on_one_line(tmp_path):
    """Found by mutation testing: a layer name with a line break (a YAML key) made the
    problem's field two lines."""
    e = _entries(tmp_path)[0]
    e["conv_kind_overrides"] = {"a\nb": "dense"}
    root = _project(tmp_path, [e])
    with pytest.raises(CatalogError) as info:
        catalog.parse_entry(root / "catalog" / "models" / "aa-model.yaml", root)
    ((_, fld, message),) = info.value.problems
    assert fld == "conv_kind_overrides.a\\nb.[key]" and "\n" not in message


def test_an_entry_that_is_not_valid_yaml_is_named_with_the_line(tmp_path):
    path = tmp_path / "aa-model.yaml"
    path.write_text("name: x\nname: y\n")
    with pytest.raises(CatalogError) as info:
        catalog.parse_entry(path, tmp_path)
    assert info.value.problems == [(str(path), "line 2, column 1",
                                    "not valid catalog YAML: duplicate key 'name' (first at line 1)")]


def test_load_catalog_returns_every_entry_or_raises_every_problem(tmp_path):
    entries = _entries(tmp_path)[:2]
    root = _project(tmp_path, entries)
    assert [e.model_id for e in catalog.load_catalog(root)] == ["aa-model", "bb-model"]
    (root / "catalog" / "models" / "zz-model.yaml").write_text("name: x\n")
    (root / "catalog" / "models" / "notes.txt").write_text("x")
    with pytest.raises(CatalogError) as info:
        catalog.load_catalog(root)
    assert {p[0] for p in info.value.problems} == {str(root / "catalog" / "models" / n)
                                                   for n in ("zz-model.yaml", "notes.txt")}


INDEX_PROBLEM = [("catalog/index.yaml", "models", "does not match catalog/models/ and the licence policy of "
                  "params.yaml; run `cnn-filter-db catalog index`")]


def test_check_index_names_a_stale_missing_or_unreadable_index(tmp_path):
    root = _project(tmp_path, _entries(tmp_path)[:1], {})
    assert catalog.check_index(root) == INDEX_PROBLEM                   # no index yet
    catalog.write_index(root)
    assert catalog.check_index(root) == []
    (root / "catalog" / "index.yaml").write_bytes(b"models: [\xff]\n")   # not UTF-8
    assert catalog.check_index(root) == INDEX_PROBLEM


@pytest.mark.parametrize("index,problem", [
    ({"models": ["aa-model", "zz-model"], "sets": {"x": ["aa-model"]}}, False),  # every id names an entry file
    ({"models": ["gone-model"]}, True),
    ({"models": ["aa-model"], "trained": ["gone-model"]}, True),
    ({"models": ["aa-model"], "sets": {"x": ["gone-model"]}}, True),
    ({"models": ["Not An Id"]}, True),
])
def test_while_an_entry_is_malformed_check_index_names_only_ids_without_a_file(tmp_path, index, problem):
    root = _project(tmp_path, _entries(tmp_path)[:1], {})
    (root / "catalog" / "models" / "zz-model.yaml").write_text("name: x\n")   # malformed: no index renders
    (root / "catalog" / "index.yaml").write_text(yaml.safe_dump(index))
    assert catalog.check_index(root) == (INDEX_PROBLEM if problem else [])


def test_load_entry_reads_the_vocabulary_of_its_root(tmp_path):
    e = _entries(tmp_path)[0]
    e["task"] = "custom-task"
    root = _project(tmp_path, [e])
    vocab = yaml.safe_load((root / "catalog" / "vocabulary.yaml").read_text())
    vocab["task"].append("custom-task")
    (root / "catalog" / "vocabulary.yaml").write_text(yaml.safe_dump(vocab))
    assert catalog.load_entry("aa-model", root).task == "custom-task"


def test_validate_catalog_names_a_stale_schema(tmp_path):
    root = _project(tmp_path, _entries(tmp_path)[:1], {})
    catalog.write_index(root)
    (root / "catalog" / "schema.json").write_text("{}\n")
    entries, problems = catalog.validate_catalog(root)
    assert [e.model_id for e in entries] == ["aa-model"]
    assert problems == [("catalog/schema.json", "-", "is out of date; run `cnn-filter-db catalog schema`")]
    (root / "catalog" / "schema.json").write_text(catalog.render_schema(root))
    assert catalog.validate_catalog(root)[1] == []


def test_parse_all_checks_the_vocabulary_by_default(tmp_path):
    e = _entries(tmp_path)[0]
    e["task"] = "dreaming"
    root = _project(tmp_path, [e])
    entries, problems = catalog.parse_all(root)
    assert entries == [] and [(p[1], p[2].split(" is not")[0]) for p in problems] == [("task", "'dreaming'")]
    assert [x.model_id for x in catalog.parse_all(root, vocabulary=False)[0]] == ["aa-model"]


def test_shown_keeps_printable_non_ascii_characters():
    assert catalog.shown(Path("modèle/α.yaml")) == "modèle/α.yaml"


def test_a_malformed_entry_in_a_folder_with_a_tab_is_named_on_one_line(tmp_path):
    folder = tmp_path / "a\tb"
    folder.mkdir()
    path = folder / "aa-model.yaml"
    path.write_text("name: x\nname: y\n")
    with pytest.raises(CatalogError) as info:
        catalog.parse_entry(path, tmp_path)
    assert info.value.problems[0][0] == str(path).replace("\t", "\\t")
    assert info.value.problems[0][2].startswith("not valid catalog YAML: duplicate key 'name'")
