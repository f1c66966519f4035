"""Malformed catalog entries, generated: each one must fail `catalog index` and `catalog validate`
with one line naming the file (and the field), no traceback, in under 5 s, writing nothing.

The cases are built from real entries by breaking one thing at a time: a wrong type (lists
and mappings where scalars belong, booleans where numbers belong), a value outside its
pattern or range, YAML constructs the catalog refuses (duplicate keys, anchors and aliases,
merge keys, deep nesting, huge integers), bytes that are not UTF-8 text, and broken
training recipes. Whether a case is malformed is decided here, by its construction.
"""
from __future__ import annotations

import contextlib
import io
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cnn_filter_db import catalog
from cnn_filter_db.cli import main

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


@dataclass
class Case:
    name: str
    text: bytes  # the file's bytes
    field: str | None  # the field the error must name, where there is one
    file_id: str = "fuzz-entry"
    single: bool = True  # one thing is wrong, so one problem line (else: several fields are)


def _base(model_id: str) -> dict:
    return yaml.safe_load((ROOT / "catalog" / "models" / f"{model_id}.yaml").read_text())


PYPI = _base("facenet-mtcnn-pnet")
TIMM = _base("timm-resnet18-init")
TRAIN = _base("train-resnet9-mnist5k-s0")


def dump(data: dict) -> bytes:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=10_000).encode()


def with_changes(base: dict, path: str, value, model_id: str = "fuzz-entry") -> dict:
    data = yaml.safe_load(yaml.safe_dump(base))  # a deep copy
    data["model_id"] = model_id
    keys = path.split(".")
    node = data
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return data


def nested(depth: int):
    value: object = "x"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


# values of the wrong type for a field that holds one string
NOT_A_STRING = {"list": ["MIT"], "mapping": {"a": 1}, "bool": True, "int": 7, "float": 1.5, "nested": nested(8)}
REQUIRED_STRINGS = ["name", "format", "architecture", "family", "task", "visual_category", "training_dataset",
                    "pretraining_dataset", "license", "training_data_license"]
OPTIONAL_STRINGS = ["paper", "homepage", "notes", "accuracy_split"]


def field_cases() -> list[Case]:
    cases = []
    for fld in REQUIRED_STRINGS + OPTIONAL_STRINGS:
        for label, value in NOT_A_STRING.items():
            cases.append(Case(f"{fld}-{label}", dump(with_changes(PYPI, fld, value)), fld))
    for fld in REQUIRED_STRINGS:
        cases.append(Case(f"{fld}-null", dump(with_changes(PYPI, fld, None)), fld))
    for fld in ["name", "architecture", "paper", "homepage"]:
        cases.append(Case(f"{fld}-newline", dump(with_changes(PYPI, fld, "line one\nline two")), fld))
    for label, value in {"int": 1, "zero": 0, "string": "yes", "list": [True], "null": None, "float": 1.0}.items():
        cases.append(Case(f"trained-{label}", dump(with_changes(PYPI, "trained", value)), "trained"))
    acc = {"true": True, "false": False, "string": "0.5", "list": [0.5], "mapping": {"v": 0.5}, "above-1": 1.5,
           "negative": -0.1, "huge": 2**64, "nan": float("nan"), "inf": float("inf"), "percent": 97.5}
    for label, value in acc.items():
        data = with_changes(PYPI, "accuracy", value)
        data["accuracy_metric"] = "top1"
        cases.append(Case(f"accuracy-{label}", dump(data), "accuracy"))
    cases.append(Case("accuracy-without-metric", dump(with_changes(PYPI, "accuracy", 0.5)), None))
    for label, value in {"list": ["pypi"], "string": "pypi", "null": None, "empty": {}, "unknown-kind": {"kind": "ftp"},
                         "int": 3, "bool": True}.items():
        cases.append(Case(f"source-{label}", dump(with_changes(PYPI, "source", value)), "source"))
    bad_source = {
        "package": ["--log=x", "-r/etc/passwd", "a b", "", "pkg;rm -rf", "pkg\n", ["facenet-pytorch"], 7, True],
        "version": ["1.0 --index-url x", "1.0\n--pre", ">=1.0", "latest", "", 1.5, True, ["2.6.0"], "2.6.0; rm"],
        "path": ["/etc/passwd", "../x.pt", "a/../../b.pt", "", ".hidden/x", "a b.pt", ["x"], 7],
        "sha256": ["abc", "F" * 64, "0" * 63, 7, True, ["0" * 64], None],
        "kind": ["PYPI", None, 1],
        "wheel": ["x"],  # an unknown field
    }
    for fld, values in bad_source.items():
        for i, value in enumerate(values):
            cases.append(Case(f"source.{fld}-{i}", dump(with_changes(PYPI, f"source.{fld}", value)), f"source.{fld}"
                              if fld != "kind" else "source"))
    url = {"kind": "url", "sha256": "0" * 64}
    for i, value in enumerate(["https://example.org/w.pt\n", "https://example.org/a\nb.pt", "https://u:p@example.org/w",
                               "https://example.org/w?token=hf_abcdefghijkl", "javascript:alert(1)", "ftp://x.org/w",
                               "file:relative/w.pt", "https://example.org/a b.pt", "https://", "", ["https://x.org/w"],
                               "https://example.org/\x7fw", "-https://example.org/w"]):
        cases.append(Case(f"url-{i}", dump(with_changes(PYPI, "source", dict(url, url=value))), "source.url"))
    hf = {"kind": "hf", "repo_id": "someone/cnn", "revision": "0" * 40, "filename": "model.safetensors", "sha256": "0" * 64}
    for fld, value in [("revision", "main"), ("revision", "0" * 39), ("repo_id", "../x"), ("repo_id", "a/b/c"),
                       ("filename", "../../etc/passwd"), ("filename", "/abs"), ("repo_type", "space"),
                       ("revision", ["0" * 40])]:
        cases.append(Case(f"hf-{fld}-{value}", dump(with_changes(PYPI, "source", dict(hf, **{fld: value}))),
                          f"source.{fld}"))
    for fld, value in [("seed", 2**64), ("seed", 2**32), ("seed", -1), ("seed", 1.5), ("seed", True), ("seed", "0"),
                       ("architecture", "resnet18; rm -rf ~"), ("architecture", "ResNet18"), ("architecture", ""),
                       ("architecture", ["resnet18"]), ("pretrained_tag", "a1 in1k"), ("pretrained_tag", 5)]:
        cases.append(Case(f"timm-{fld}-{value!r}"[:60], dump(with_changes(TIMM, f"source.{fld}", value)),
                          f"source.{fld}"))
    cases.append(Case("timm-baseline-with-pin", dump(with_changes(TIMM, "source.sha256", "0" * 64)), "source"))
    cases.append(Case("timm-baseline-trained", dump(with_changes(TIMM, "trained", True)), None))
    recipe = {
        "recipe-empty": ({}, "source.recipe"),
        "recipe-null": (None, "source.recipe"),
        "recipe-string": ("resnet9", "source.recipe"),
        "recipe-list": (["resnet9"], "source.recipe"),
    }
    for label, (value, fld) in recipe.items():
        cases.append(Case(label, dump(with_changes(TRAIN, "source.recipe", value)), fld, single=label != "recipe-empty"))
    for fld, value in [("colour", "blue"), ("architecture", "resnet1000"), ("dataset", "imagenet-22k"),
                       ("epochs", 0), ("epochs", True), ("epochs", 1.5), ("batch_size", 1), ("input_size", "32"),
                       ("seed", 2**64), ("seed", -1), ("seed", False), ("augmentation", "mixup"),
                       ("optimizer", ["sgd"]), ("optimizer.lr", True), ("optimizer.lr", "0.01"), ("optimizer.lr", 0),
                       ("optimizer.name", "adam"), ("optimizer.momentum", 1.0), ("optimizer.extra", 1),
                       ("schedule.warmup_fraction", 1.0), ("split.test", 1.5), ("split.validation", True),
                       ("split.limit", 5), ("profiles", {"paper": {"epochs": 1}}), ("profiles.quick.epochs", 0),
                       ("profiles.quick.lr", 0.1), ("hub_id", "/etc"), ("hub_id", "../../data"), ("hub_id", 7)]:
        cases.append(Case(f"recipe.{fld}-{value!r}"[:60], dump(with_changes(TRAIN, f"source.recipe.{fld}", value)),
                          f"source.recipe.{fld.split('.')[0]}" if fld.startswith(("optimizer.", "profiles.", "split.",
                                                                                   "schedule.")) else
                          ("source" if fld == "hub_id" else f"source.recipe.{fld}")))
    for label, value in {"list": ["dense"], "string": "dense", "bad-kind": {"conv1": "sparse"},
                         "int-key": {1: "dense"}, "list-value": {"conv1": ["dense"]}}.items():
        cases.append(Case(f"overrides-{label}", dump(with_changes(PYPI, "conv_kind_overrides", value)),
                          "conv_kind_overrides"))
    cases.append(Case("unknown-field", dump(with_changes(PYPI, "colour", "blue")), "colour"))
    cases.append(Case("missing-source", dump({k: v for k, v in with_changes(PYPI, "name", "x").items() if k != "source"}),
                      "source"))
    cases.append(Case("model-id-mismatch", dump(with_changes(PYPI, "name", "x", model_id="other-id")), "model_id"))
    cases.append(Case("model-id-bad", dump(with_changes(PYPI, "name", "x", model_id="Bad Id!")), "model_id"))
    return cases


def yaml_cases() -> list[Case]:
    good = dump(with_changes(PYPI, "name", "fuzz"))
    cases = []
    for i, fld in enumerate(["name", "license", "task", "source", "accuracy", "trained"]):
        extra = f"{fld}: duplicate\n" if fld != "source" else "source: {kind: url, url: 'https://x.org/w', sha256: '" + "0" * 64 + "'}\n"
        cases.append(Case(f"duplicate-{fld}", (good.decode() + extra).encode(), "line"))
    cases.append(Case("duplicate-nested", good.replace(b"  kind: pypi\n", b"  kind: pypi\n  kind: url\n"), "line"))
    # "billion laughs": nine levels of nine aliases each, 9**9 strings once expanded
    bomb = "  a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    cases.append(Case("alias-bomb", good + b"notes:\n" + bomb.encode(), "line"))
    recipe_bomb = dump(with_changes(TRAIN, "name", "x")).decode().replace(
        "  recipe:\n", "  recipe:\n    lol: &l [x, x, x, x, x, x, x, x]\n    lol2: [*l, *l, *l, *l, *l, *l, *l, *l]\n")
    cases.append(Case("alias-bomb-in-recipe", recipe_bomb.encode(), "line"))
    cases.append(Case("anchor-and-alias", good.replace(b"license: MIT", b"license: &lic MIT\ntraining_data_license_x: *lic"),
                      "line"))
    cases.append(Case("merge-key", good + b"conv_kind_overrides:\n  <<: {conv1: dense}\n", "line"))
    for depth in (25, 200, 5000):
        cases.append(Case(f"deep-flow-{depth}", good + b"notes: " + b"[" * depth + b"]" * depth + b"\n", "line"))
    cases.append(Case("deep-block", good + b"notes:\n" + b"".join(b"  " * (i + 1) + b"- \n" for i in range(60)), "line"))
    for digits in (41, 4301, 100_000):
        cases.append(Case(f"huge-int-{digits}", good.replace(b"accuracy: null", b"accuracy: " + b"9" * digits), "line"))
    cases.append(Case("huge-float", good.replace(b"accuracy: null", b"accuracy: 1" + b"0" * 400 + b".0\naccuracy_metric: top1"),
                      "accuracy"))
    cases.append(Case("latin-1", good.replace(b"name: fuzz", "name: Modèle".encode("latin-1")), "line"))
    cases.append(Case("utf-16", good.decode().encode("utf-16"), "line"))
    cases.append(Case("lone-continuation-byte", good + b"notes: \x80\n", "line"))
    cases.append(Case("nul-byte", good.replace(b"name: fuzz", b"name: fu\x00zz"), "line"))
    cases.append(Case("nul-at-start", b"\x00" + good, "line"))
    cases.append(Case("control-char", good.replace(b"name: fuzz", b"name: fu\x01zz"), "line"))
    cases.append(Case("escape-in-double-quotes", good.replace(b"name: fuzz", b'name: "fu\\x1b[31mzz"'), "name"))
    cases.append(Case("empty", b"", None))
    cases.append(Case("whitespace-only", b"  \n\n", None))
    cases.append(Case("comment-only", b"# nothing here\n", None))
    cases.append(Case("top-level-list", b"- model_id: fuzz-entry\n", None))
    cases.append(Case("top-level-scalar", b"fuzz-entry\n", None))
    cases.append(Case("two-documents", good + b"---\n" + good, "line"))
    cases.append(Case("tab-indent", good.replace(b"  kind: pypi", b"\tkind: pypi"), "line"))
    cases.append(Case("unterminated-quote", good.replace(b"name: fuzz", b"name: 'fuzz"), "line"))
    cases.append(Case("unhashable-key", good + b"? [a, b]\n: 1\n", "line"))
    cases.append(Case("python-tag", good.replace(b"name: fuzz", b"name: !!python/object/apply:os.system ['touch PWNED']"),
                      "line"))
    cases.append(Case("binary-tag", good.replace(b"name: fuzz", b"name: !!binary aGVsbG8="), "name"))
    cases.append(Case("set-tag", good.replace(b"name: fuzz", b"name: !!set {a: null}"), "name"))
    cases.append(Case("too-large", good + b"notes: '" + b"x" * 300_000 + b"'\n", None))
    rng = random.Random(0)
    for i in range(6):
        cases.append(Case(f"binary-{i}", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4000))), None))
    cases.append(Case("onnx-bytes", b"\x08\x07\x12\x07pytorch\x1a\x032.1:\x00\x00", None))
    cases.append(Case("truncated", good[: len(good) // 2], None, single=False))
    return cases


def name_cases() -> list[Case]:
    good = dump(with_changes(PYPI, "name", "x"))
    out = []
    for i, file_id in enumerate(["x;touch PWNED", "$(touch PWNED)", "UPPER", "-rf", "a b", "a'b", "x" * 90, "é", "a\nb"]):
        out.append(Case(f"file-name-{i}", good, None, file_id))
    out.append(Case("file-name-yml", good, None, "fuzz-entry.yml"[:-4] + ".yml"))
    return out


CASES = field_cases() + yaml_cases() + name_cases()


def test_at_least_200_cases():
    assert len(CASES) >= 200, len(CASES)
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    # Checking a recipe's architecture imports torch (the registry of architectures is torch
    # modules): a one-time cost of the process, paid here rather than by the first case.
    # The command-line sample below measures whole processes, import included.
    import cnn_filter_db.train.architectures  # noqa: F401

    r = tmp_path_factory.mktemp("fuzz") / "repo"
    (r / "catalog" / "models").mkdir(parents=True)
    shutil.copy(ROOT / "catalog" / "vocabulary.yaml", r / "catalog")
    shutil.copy(ROOT / "params.yaml", r)
    catalog.write_index(r)
    (r / "catalog" / "schema.json").write_text(catalog.render_schema(r))
    return r


def entry_file(project: Path, case: Case) -> Path:
    folder = project / "catalog" / "models"
    for old in folder.iterdir():
        old.unlink()
    name = case.file_id if case.file_id.endswith(".yml") else f"{case.file_id}.yaml"
    path = folder / name
    path.write_bytes(case.text)
    return path


def run(*argv: str) -> tuple[int, str, float]:
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, err.getvalue(), time.perf_counter() - start


def check_output(case: Case, path: Path, rc: int, err: str, seconds: float, limit: float = 5) -> None:
    assert rc == 1, (case.name, rc, err)
    assert "Traceback" not in err, (case.name, err)
    assert seconds < limit, (case.name, seconds)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    problems = [ln for ln in lines if not ln.startswith("catalog")]  # the summary line
    assert len(problems) == 1 if case.single else len(problems) >= 1, (case.name, err)
    shown = str(path).replace("\n", "\\n")  # a newline in a file name is printed escaped
    assert all(p.startswith(f"{shown}: ") for p in problems), (case.name, err)
    if case.field:
        assert any(p[len(f"{shown}: "):].startswith(case.field) for p in problems), (case.name, case.field, err)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_entry_fails_index_and_validate(case, project, tmp_path, monkeypatch):
    outside = tmp_path / "cwd"
    outside.mkdir()
    monkeypatch.chdir(outside)
    monkeypatch.setenv("CNN_FILTER_DB_CACHE", str(tmp_path / "cache"))
    path = entry_file(project, case)
    index_before = (project / "catalog" / "index.yaml").read_bytes()
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    for command in ("index", "validate"):
        rc, err, seconds = run("--root", str(project), "catalog", command)
        check_output(case, path, rc, err, seconds)
    assert (project / "catalog" / "index.yaml").read_bytes() == index_before  # not rewritten
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before
    assert not any(outside.iterdir()) and not (tmp_path / "cache").exists()  # nothing written elsewhere


SUBPROCESS_SAMPLE = ["license-list", "accuracy-true", "source.package-0", "source.version-0", "url-0", "alias-bomb",
                     "deep-flow-5000", "huge-int-4301", "latin-1", "nul-byte", "binary-0", "recipe-empty",
                     "recipe.seed-18446744073709551616", "duplicate-license", "file-name-0"]


@pytest.mark.parametrize("name", SUBPROCESS_SAMPLE)
def test_sample_through_the_command_line(name, project, tmp_path):
    """The same through real processes: exit status, one line, no traceback, nothing written.

    The time bound here is looser: a process pays Python's start-up and, for a recipe, the
    import of torch (measured 1.7 s a command, 4.8 s with torch, on the shared 2-core machine
    under load); the catalog's own work is what the in-process test above bounds by 5 s.
    """
    case = next(c for c in CASES if c.name == name)
    path = entry_file(project, case)
    env = dict(os.environ, PYTHONPATH=str(SRC), CNN_FILTER_DB_CACHE=str(tmp_path / "cache"), HOME=str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    for command in ("index", "validate"):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "cnn_filter_db.cli", "--root", str(project), "catalog", command],
                              capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
        check_output(case, path, proc.returncode, proc.stderr, time.perf_counter() - start, limit=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"] and not any((tmp_path / "home").iterdir())
