"""The typed parameters: every default lives once, in ``cnn_filter_db.params``.

params.yaml's groups parse with their typed class (so a key there is a real parameter) and
repeat no default; no signature, command-line option or module constant of the package
repeats a parameter's literal default; run-only settings are not stage parameters; and
real DVC sees a parameter set in an empty group (``dvc status``, ``dvc params diff``,
``dvc exp run -S ++group.key=value``)."""
from __future__ import annotations

import ast
import dataclasses
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cnn_filter_db import params as params_module
from cnn_filter_db.errors import AnalysisError, CnnFilterDbError
from cnn_filter_db.params import (GROUPS, SWITCHES, AnalyzeParams, CatalogParams, ExtractParams, ReleaseParams, RunOptions,
                                  TrainParams, ValidateParams, load_params)

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "cnn_filter_db"

#: Names a function uses for a parameter whose field name is longer (the function sits
#: beside one measure, where the short name is clear).
ALIASES = {"eps": "sparsity_eps", "margin": "random_like_margin", "entropy_max": "low_diversity_entropy",
           "sparsity_min": "low_diversity_sparsity"}
#: Values too common to tell a repeated default from an unrelated one by value alone.
COMMON = {0, 1, 2}


def _fields() -> dict[str, list[tuple[str, object]]]:
    """field name -> [(where, default)] over the parameter groups and the run options."""
    out: dict[str, list[tuple[str, object]]] = {}
    for group, cls in {**GROUPS, "run": RunOptions}.items():
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            out.setdefault(f.name, []).append((f"{group}.{f.name}", default))
    return out


def _distinctive_defaults() -> dict[tuple[type, object], str]:
    """Numeric defaults specific enough that the same literal (same type) elsewhere is a repeat."""
    return {(type(d), d): where for pairs in _fields().values() for where, d in pairs
            if type(d) in (int, float) and d not in COMMON}


def _same(value, default) -> bool:
    if isinstance(default, Path) or isinstance(value, Path):
        return str(value) == str(default)
    if isinstance(default, tuple) and isinstance(value, (list, tuple)):
        return [list(x) if isinstance(x, (list, tuple)) else x for x in value] == \
            [list(x) if isinstance(x, (list, tuple)) else x for x in default]
    return type(value) is type(default) and value == default


# --------------------------------------------------------------------------- (a) params.yaml

def dvc_read_keys(dvc_yaml: dict) -> set[str]:
    """``group.key`` names dvc.yaml interpolates (``${catalog.sets}``): DVC needs them written out."""
    return set(re.findall(r"\$\{\s*([\w.]+)\s*\}", yaml.safe_dump(dvc_yaml)))


def repeated_defaults(params: dict, dvc_keys: set[str]) -> list[str]:
    """The keys of a params.yaml document whose value equals their typed default."""
    out = []
    for group, values in params.items():
        if group not in GROUPS or not isinstance(values, dict):
            continue
        default = GROUPS[group]()
        typed = GROUPS[group].of(values)
        for key in values:
            if f"{group}.{key}" not in dvc_keys and _same(getattr(typed, key), getattr(default, key)):
                out.append(f"{group}.{key}")
    return out


def test_params_yaml_groups_are_typed_and_hold_no_run_options():
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(data) == set(GROUPS)
    for group, cls in GROUPS.items():
        cls.of(data[group])  # unknown keys raise
    run_keys = {f.name for f in dataclasses.fields(RunOptions)}
    assert not any(run_keys & set(values or {}) for values in data.values())
    # and DVC tracks what a stage computes with: the groups are listed in dvc.yaml
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert "analyze" in stages["analyze"]["params"] and "validate" in stages["validate"]["params"]
    assert "extract" in stages["extract"]["do"]["params"] and "train" in stages["train"]["do"]["params"]
    listed = {p for s in stages.values() for p in (s.get("do", s).get("params") or [])}
    assert not any(p.split(".")[-1] in run_keys for p in listed)
    # DVC's outputs must be written out in dvc.yaml: the train stage's reports sit where the
    # effective train.reports_dir puts them
    reports_dir = TrainParams.of(data["train"]).reports_dir
    reports = [next(iter(o)) if isinstance(o, dict) else o for o in stages["train"]["do"]["outs"]]
    assert [Path(o).parent for o in reports if o.startswith("reports/")] == [reports_dir] * 2


def test_params_yaml_repeats_no_default():
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    dvc_keys = dvc_read_keys(yaml.safe_load((ROOT / "dvc.yaml").read_text()))
    assert dvc_keys == {"catalog.sets", "models", "trained", "item"}  # what the foreach stages read
    assert repeated_defaults(data, dvc_keys | set(SWITCHES)) == []
    # the switches are written out, so that plain `dvc exp run -S train.profile=paper` works
    assert all(key.split(".")[1] in (data[key.split(".")[0]] or {}) for key in SWITCHES)
    # the check itself: a repeat of each kind of value is found, a real change is not
    crafted = {"analyze": {"bins": 70, "sparsity_eps": 0.02, "groupings": list(AnalyzeParams.groupings)},
               "train": {"reports_dir": "reports/training", "profile": "paper"},
               "validate": {"max_abs_weight": 10000.0}, "catalog": {"sets": ["default"]}}
    assert repeated_defaults(crafted, set()) == ["analyze.bins", "analyze.groupings", "train.reports_dir",
                                                 "validate.max_abs_weight", "catalog.sets"]
    assert repeated_defaults(crafted, {"catalog.sets"})[-1] == "validate.max_abs_weight"


# --------------------------------------------------------------------------- (b) signatures, options

def literal_repeats(source: str, where: str, signatures: bool = True) -> list[str]:
    """Function parameters (``signatures``) and ``add_argument`` options whose literal default
    repeats a parameter's: the same value under the field's name (or its alias), or a
    distinctive number under any name."""
    fields, distinctive = _fields(), _distinctive_defaults()
    out = []

    def check(name: str, node: ast.expr, line: int):
        try:
            value = ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError):
            return  # not a literal: a name such as AnalyzeParams.bins
        if value is None:
            return
        same = [w for w, d in fields.get(ALIASES.get(name, name), []) if _same(value, d)]
        if same:
            out.append(f"{where}:{line}: {name}={value!r} (the default of parameter {same[0]}: "
                       "use the params module's value)")
        elif type(value) in (int, float) and (type(value), value) in distinctive:
            out.append(f"{where}:{line}: {name}={value!r} repeats the default of {distinctive[type(value), value]}")

    for node in ast.walk(ast.parse(source)):
        if signatures and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            a = node.args
            pos = a.posonlyargs + a.args
            pairs = list(zip(pos[len(pos) - len(a.defaults):], a.defaults))
            pairs += [(k, d) for k, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
            for arg, default in pairs:
                check(arg.arg, default, default.lineno)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            kw = {k.arg: k.value for k in node.keywords}
            options = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if "default" in kw and options:
                dest = ast.literal_eval(kw["dest"]) if "dest" in kw else options[-1].lstrip("-").replace("-", "_")
                check(dest, kw["default"], node.lineno)
    return out


def test_no_literal_default_is_repeated_in_a_signature_or_an_option():
    """The package and its stage scripts: signatures and options; the benchmarks: their
    options (their own functions make synthetic data, e.g. with a ``seed`` of their own)."""
    found = []
    for folder, signatures in (("src", True), ("stages", True), ("benchmarks", False)):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path != PACKAGE / "params.py":  # the one place
                found += literal_repeats(path.read_text(), str(path.relative_to(ROOT)), signatures)
    assert found == []
    # the scan finds each kind of repeat, and leaves a default taken from the params module alone
    crafted = '''
def sparsity(w, eps=0.01): ...
def f(x, *, bins: int = 70, seed=None, chunk=65536, n=AnalyzeParams.bins, population="", device="auto"): ...
def g(t=1_048_576, flag=True): ...
p.add_argument("--batch-rows", type=int, default=262_144)
p.add_argument("--profile", default="quick")
p.add_argument("--workers", type=int, default=RunOptions.workers)
'''
    assert [line.split(": ", 1)[1].split(" ")[0] for line in literal_repeats(crafted, "x")] == \
        ["eps=0.01", "bins=70", "device='auto'", "t=1048576", "batch_rows=262144", "profile='quick'"]
    assert len(literal_repeats(crafted, "x", signatures=False)) == 2


def test_functions_take_their_defaults_from_the_params_module():
    """Sampled where the old copies were: each default is the params class's value."""
    import inspect

    from cnn_filter_db import train
    from cnn_filter_db.analysis import degeneration, layer, sparsity

    def defaults(fn):
        return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}

    a, t = AnalyzeParams(), TrainParams()
    assert defaults(sparsity.sparsity) == {"eps": a.sparsity_eps}
    assert defaults(layer.layer_stats) == {"sparsity_eps": a.sparsity_eps, "margin": a.random_like_margin,
                                           "entropy_max": a.low_diversity_entropy,
                                           "sparsity_min": a.low_diversity_sparsity}
    assert defaults(degeneration.flags) == {"margin": a.random_like_margin, "entropy_max": a.low_diversity_entropy,
                                            "sparsity_min": a.low_diversity_sparsity}
    d = defaults(train.load_recipe)
    assert (d["profile"], d["num_threads"], d["device"]) == (t.profile, t.num_threads, t.device)


# --------------------------------------------------------------------------- (c) one typed module

def module_duplicates(path: Path, module_name: str) -> list[str]:
    """Module constants that duplicate a parameter: named for it (``NAME``, ``PREFIX_NAME``)
    with its default value, or holding a distinctive default under any name; and typed
    parameter classes (``...Params``) outside the params module."""
    fields, distinctive = _fields(), _distinctive_defaults()
    tree = ast.parse(path.read_text())
    out = [f"{module_name}.{n.name}: a parameter class outside cnn_filter_db.params"
           for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name.endswith("Params")]
    module = None
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in (t for t in targets if isinstance(t, ast.Name)):
            name = target.id
            named = [(where, d) for f, pairs in fields.items() for where, d in pairs
                     if name == f.upper() or name.endswith("_" + f.upper())]
            try:
                literal = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError):
                literal = None
            if type(literal) in (int, float) and (type(literal), literal) in distinctive:
                out.append(f"{module_name}.{name} = {literal!r} repeats the default of "
                           f"{distinctive[type(literal), literal]}")
            if named:
                module = module or importlib.import_module(module_name)
                value = getattr(module, name)
                out += [f"{module_name}.{name} duplicates {where} ({value!r})" for where, d in named if _same(value, d)]
    return out


def test_no_module_duplicates_a_parameter():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "params.py":
            continue
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        found += module_duplicates(path, name)
    assert found == []
    # the check: the constants config.py used to hold, and a second parameter class, are found
    assert not hasattr(importlib.import_module("cnn_filter_db.config"), "TRAIN_PROFILE")


def test_module_duplicates_finds_the_old_copies(tmp_path):
    pkg = tmp_path / "dup_pkg_for_params_test"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "consts.py").write_text(
        "from pathlib import Path\nTRAIN_PROFILE = 'quick'\nTRAIN_NUM_THREADS = 1\n"
        "REPORTS_DIR = Path('reports')\nTRAIN_REPORTS_DIR = REPORTS_DIR / 'training'\n"
        "EPS = 0.01\nWORKERS = 4\nBATCH_ROWS = 1 << 18\nFOLDER_ENTRIES = 10_000\nclass AnalyzeParams: pass\n")
    sys.path.insert(0, str(tmp_path))
    try:
        found = module_duplicates(pkg / "consts.py", "dup_pkg_for_params_test.consts")
    finally:
        sys.path.remove(str(tmp_path))
    assert [f.split(" ")[0].rstrip(":") for f in found] == [
        "dup_pkg_for_params_test.consts.AnalyzeParams", "dup_pkg_for_params_test.consts.TRAIN_PROFILE",
        "dup_pkg_for_params_test.consts.TRAIN_NUM_THREADS", "dup_pkg_for_params_test.consts.TRAIN_REPORTS_DIR",
        "dup_pkg_for_params_test.consts.EPS", "dup_pkg_for_params_test.consts.BATCH_ROWS"]


def test_params_module_imports_only_lower_modules():
    tree = ast.parse((PACKAGE / "params.py").read_text())
    relative = {a.name if n.module is None else n.module for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom) and n.level for a in n.names}
    assert relative <= {"config", "errors"}, relative


# --------------------------------------------------------------------------- values

def test_defaults_and_overrides(tmp_path):
    (tmp_path / "params.yaml").write_text("extract:\n  row_group_rows: 1000\nanalyze: {}\ntrain:\n"
                                          "  hub_ids: {mnist: me/mnist}\n")
    p = ExtractParams.of(load_params("extract", tmp_path))
    assert (p.row_group_rows, p.max_rows_per_shard) == (1000, 16_000_000)
    assert AnalyzeParams.of(load_params("analyze", tmp_path)) == AnalyzeParams()
    t = TrainParams.of(load_params("train", tmp_path))
    assert (t.profile, t.reports_dir, t.num_threads, t.hub_ids) == ("quick", Path("reports/training"), 1,
                                                                    {"mnist": "me/mnist"})
    assert ReleaseParams.of(load_params("release", tmp_path)).allow_unknown_license is False
    assert CatalogParams.of(None).sets == ("default",)
    a = AnalyzeParams.of({"groupings": ["task"], "null_pairs": [["a", "b"]]})
    assert (a.groupings, a.null_pairs) == (("task",), (("a", "b"),))
    assert AnalyzeParams.of(a.to_dict()) == a
    with pytest.raises(CnnFilterDbError, match=r"params.yaml extract.row_group_rows: expected a whole number >= 1, got 0"):
        ExtractParams.of({"row_group_rows": 0})
    with pytest.raises(CnnFilterDbError, match=r"params.yaml validate: unknown keys \['max_abs'\]"):
        ValidateParams.of({"max_abs": 3})
    with pytest.raises(CnnFilterDbError, match=r"params.yaml train.num_threads: expected a whole number >= 1, got 0"):
        TrainParams.of({"num_threads": 0})
    with pytest.raises(AnalysisError, match=r"params.yaml analyze: unknown keys \['eps'\]"):
        AnalyzeParams.of({"eps": 0.02})
    with pytest.raises(AnalysisError, match=r"population: expected one of \['trained', 'controls', 'all'\], got 'x'"):
        AnalyzeParams.of({"population": "x"})


def test_the_pipeline_sees_params_yaml_values():
    """The effective values of this checkout: params.yaml's keys over the defaults."""
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    a = AnalyzeParams.of(data["analyze"])
    assert a.null_pairs == (("train-resnet9-mnist5k-s0", "train-resnet9-mnist5k-s1"),)
    assert (a.sparsity_eps, a.bins, a.population) == (0.01, 70, "trained")  # the values of the last build


def test_run_options_come_from_the_command_line_then_the_environment():
    env = {"CNN_FILTER_DB_WORKERS": "5", "CNN_FILTER_DB_ENGINE": "dask"}
    assert RunOptions.of({"workers": None, "batch_rows": 1000}, env) == RunOptions("dask", None, 5, 1000)
    assert RunOptions.of({"workers": 1}, env).workers == 1
    assert RunOptions.of(None, {}) == RunOptions()
    with pytest.raises(AnalysisError, match="engine: expected 'local' or 'dask', got 'spark'"):
        RunOptions.of({"engine": "spark"}, {})


def test_data_docs_and_the_weights_cache_are_run_settings_not_stage_params(tmp_path):
    """Neither changes an output DVC tracks (the Data Docs site is not an output; the weights
    cache is content-addressed), so changing them must re-run nothing: not in params.yaml."""
    from cnn_filter_db.cli import build_parser

    with pytest.raises(CnnFilterDbError, match=r"params.yaml validate: unknown keys \['data_docs'\]"):
        ValidateParams.of({"data_docs": False})
    with pytest.raises(CnnFilterDbError, match=r"params.yaml extract: unknown keys \['cache_dir'\]"):
        ExtractParams.of({"cache_dir": str(tmp_path)})
    assert RunOptions.of(None, {}).data_docs is True
    assert RunOptions.of(None, {"CNN_FILTER_DB_DATA_DOCS": "0"}).data_docs is False
    assert RunOptions.of(None, {"CNN_FILTER_DB_DATA_DOCS": "false"}).data_docs is False
    assert RunOptions.of(None, {"CNN_FILTER_DB_DATA_DOCS": "1"}).data_docs is True
    assert build_parser().parse_args(["validate"]).data_docs is None  # the run option decides
    no_docs = build_parser().parse_args(["validate", "--no-data-docs"])
    assert RunOptions.of({"data_docs": no_docs.data_docs}, {"CNN_FILTER_DB_DATA_DOCS": "1"}).data_docs is False


def test_cli_analyze_options_default_to_nothing_so_the_params_module_decides():
    from cnn_filter_db.cli import build_parser

    args = build_parser().parse_args(["analyze"])
    assert (args.engine, args.scheduler, args.workers, args.batch_rows, args.reports_dir) == (None,) * 5
    assert RunOptions.of({"engine": args.engine, "workers": args.workers}, {}) == RunOptions()


# --------------------------------------------------------------------------- real DVC

STAGE = ("python -c \"from cnn_filter_db.params import AnalyzeParams, load_params; "
         "p = AnalyzeParams.of(load_params('analyze')); open('out.txt', 'w').write(f'{p.population} {p.bins}')\"")


def test_dvc_tracks_a_parameter_set_in_an_empty_group(tmp_path):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(Path(params_module.__file__).parents[1]), DVC_NO_ANALYTICS="1",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.org")

    def run(*cmd, ok=True):
        r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert r.returncode == 0 or not ok, r.stdout + r.stderr
        return r

    (tmp_path / "params.yaml").write_text("analyze: {}\n")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(
        {"stages": {"analyze": {"cmd": STAGE, "params": ["analyze"], "outs": ["out.txt"]}}}))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "repro", "-q"]):
        run(*cmd)
    assert (tmp_path / "out.txt").read_text() == "trained 70"
    run("git", "add", "-A")
    run("git", "commit", "-qm", "defaults")
    assert "up to date" in run("dvc", "status").stdout
    # a key written into the empty group: DVC sees the change
    (tmp_path / "params.yaml").write_text("analyze:\n  bins: 35\n")
    assert "modified:" in run("dvc", "status").stdout
    assert re.search(r"analyze\.bins\s+-\s+35", run("dvc", "params", "diff").stdout)
    run("git", "checkout", "-q", "params.yaml")
    # an experiment sets a key left at its default: `++` adds it (plain `-S key=value` only
    # overrides a key already in the file)
    assert run("dvc", "exp", "run", "-S", "analyze.population=controls", ok=False).returncode != 0
    run("dvc", "exp", "run", "-S", "++analyze.population=controls")
    assert (tmp_path / "out.txt").read_text() == "controls 70"
    assert yaml.safe_load((tmp_path / "params.yaml").read_text()) == {"analyze": {"population": "controls"}}
