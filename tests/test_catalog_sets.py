"""Catalog sets: params.yaml ``catalog.sets`` selects what `dvc repro` builds, with the
repository's own extract / extract-set / gather stages run by real DVC in a temporary repo."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from catalog_project import git_dvc_init, make_project, run, tiny_entry

from cnn_filter_db import catalog
from cnn_filter_db.errors import CatalogError, CnnFilterDbError
from cnn_filter_db.set_build import build_set

def test_index_lists_sets_and_selection_follows_params(tmp_path):
    entries = [tiny_entry(tmp_path, "d-one", None, 4, 0), tiny_entry(tmp_path, "x-one", "extra", 2, 1),
               tiny_entry(tmp_path, "x-two", "extra", 3, 2)]
    proj = make_project(tmp_path, entries)
    doc = yaml.safe_load((proj / "catalog" / "index.yaml").read_text())
    assert doc["models"] == ["d-one"] and doc["trained"] == []
    assert doc["sets"] == {"extra": ["x-one", "x-two"]}
    assert catalog.index_models(proj) == ["d-one"]
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["catalog"]["sets"] = ["default", "extra"]
    (proj / "params.yaml").write_text(yaml.safe_dump(params))
    assert catalog.index_models(proj) == ["d-one", "x-one", "x-two"]
    # the index does not depend on the selection: changing the param needs no regeneration
    assert catalog.check_index(proj) == []
    params["catalog"]["sets"] = ["extra"]
    (proj / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(CatalogError, match="catalog.sets: must include 'default'"):
        catalog.index_models(proj)
    assert catalog.check_index(proj)[0][1] == "catalog.sets"
    with pytest.raises(CatalogError, match="has no set 'nope'"):
        catalog.set_members("nope", proj)


def test_bad_set_name_is_one_clear_problem(tmp_path):
    e = tiny_entry(tmp_path, "d-one", "Bad Set", 4, 0)
    with pytest.raises(CatalogError) as err:  # the index is not written over a malformed entry
        make_project(tmp_path, [e])
    assert err.value.problems[0][1] == "set"
    with pytest.raises(CatalogError) as err:
        catalog.load_entry("d-one", tmp_path / "proj")
    assert err.value.problems[0][1] == "set"


def test_a_failing_member_does_not_stop_the_others(tmp_path):
    bad = tiny_entry(tmp_path, "x-bad", "extra", 2, 1)
    bad["source"]["sha256"] = "0" * 64  # the file is fine, the pin is not
    proj = make_project(tmp_path, [tiny_entry(tmp_path, "d-one", None, 4, 0), bad,
                                   tiny_entry(tmp_path, "x-good", "extra", 3, 2)])
    with pytest.raises(CnnFilterDbError) as err:
        build_set("extra", proj)
    assert "1 of 2 models failed" in str(err.value) and "x-bad: " in str(err.value) and "sha256" in str(err.value)
    summary = json.loads((proj / "build" / "sets" / "extra.json").read_text())
    assert list(summary["models"]) == ["x-good"] and list(summary["failed"]) == ["x-bad"]
    assert (proj / "dist" / "cnn-filter-db" / "filters" / "x-good").is_dir()
    assert not (proj / "dist" / "cnn-filter-db" / "filters" / "x-bad").exists()


def models_table(proj: Path) -> list[str]:
    return sorted(pq.read_table(proj / "dist" / "cnn-filter-db" / "models").column("model_id").to_pylist())


@pytest.mark.slow
def test_dvc_exp_run_with_more_sets_builds_more(tmp_path):
    entries = [tiny_entry(tmp_path, "d-one", None, 4, 0), tiny_entry(tmp_path, "d-two", "default", 5, 3),
               tiny_entry(tmp_path, "x-one", "extra", 2, 1), tiny_entry(tmp_path, "x-two", "extra", 3, 2)]
    proj = make_project(tmp_path, entries)
    git_dvc_init(proj)
    run(proj, "dvc", "repro", "-q")
    # the default selection builds the default set, one stage a model, exactly as before
    assert models_table(proj) == ["d-one", "d-two"]
    lock = yaml.safe_load((proj / "dvc.lock").read_text())["stages"]
    assert {"extract@d-one", "extract@d-two", "extract-set@default", "gather"} == set(lock)
    assert not (proj / "dist" / "cnn-filter-db" / "filters" / "x-one").exists()
    run(proj, "git", "add", "-A")
    run(proj, "git", "commit", "-qm", "built")

    run(proj, "dvc", "exp", "run", "-S", "catalog.sets=[default,extra]")
    assert models_table(proj) == ["d-one", "d-two", "x-one", "x-two"]
    lock = yaml.safe_load((proj / "dvc.lock").read_text())["stages"]
    assert "extract-set@extra" in lock
    summary = json.loads((proj / "build" / "sets" / "extra.json").read_text())
    # filters per model: 2*3 + 2*2 = 10 and 3*3 + 3*3 = 18, counted by hand
    assert {m: v["n_filters"] for m, v in summary["models"].items()} == {"x-one": 10, "x-two": 18}
    shards = sorted(p.name for p in (proj / "dist" / "cnn-filter-db" / "filters" / "x-two").iterdir())
    assert shards == ["x-two-00000-of-00001.parquet"]
    assert pq.read_table(proj / "dist" / "cnn-filter-db" / "filters" / "x-two").num_rows == 18
    # up to date now; the per-model stages of the default set did not run again
    status = run(proj, "dvc", "status", "--json")
    assert json.loads(status.stdout or "{}") == {}

    # a changed member is rebuilt, the other one is not
    before = (proj / "dist" / "cnn-filter-db" / "filters" / "x-one").stat().st_mtime_ns
    path = proj / "catalog" / "models" / "x-two.yaml"
    path.write_text(path.read_text().replace("name: x-two", "name: x-two renamed"))
    out = run(proj, "python", "stages/extract_set.py", "extra")
    assert "x-two: built" in out.stdout and "x-one" not in out.stdout
    assert (proj / "dist" / "cnn-filter-db" / "filters" / "x-one").stat().st_mtime_ns == before
