"""DVC dependencies are complete: every module of the package a stage can import is covered
by that stage's ``deps`` in dvc.yaml, so a code change always marks the stage as changed.

The imports are derived from the source (``ast``), not listed by hand: from the stage
script to the command it runs in ``cli.py`` (only that command's function and the ``cli``
helpers it calls), then every import of every module reached, at any depth, including the
imports inside functions. A package that imports its submodules by name at run time
(``formats``) counts with all its submodules.
"""
from __future__ import annotations

import ast
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PKG = "cnn_filter_db"


def module_file(name: str) -> Path | None:
    p = SRC.joinpath(*name.split("."))
    if (p / "__init__.py").exists():
        return p / "__init__.py"
    return p.with_suffix(".py") if p.with_suffix(".py").exists() else None


def _targets(node: ast.AST, current: str) -> list[str]:
    """The package modules an import statement of module ``current`` loads."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == PKG]
    if node.level:
        package = current if module_file(current).name == "__init__.py" else current.rsplit(".", 1)[0]
        parts = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join(parts + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    if base.split(".")[0] != PKG:
        return []
    return [base] + [f"{base}.{a.name}" for a in node.names if module_file(f"{base}.{a.name}")]


def _imports(tree: ast.AST, current: str) -> list[str]:
    return [m for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for m in _targets(n, current)]


def closure(start: list[str]) -> set[str]:
    """Every package module loaded, transitively, when the ``start`` modules are (``cli``
    counts without its imports: a stage reaches only its command's slice of it)."""
    seen: set[str] = {f"{PKG}.cli"}
    todo = list(start)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for parent in (".".join(parts[:i]) for i in range(1, len(parts) + 1)):
            path = module_file(parent)
            if parent in seen or path is None:
                continue
            seen.add(parent)
            text = path.read_text()
            todo += _imports(ast.parse(text), parent)
            if path.name == "__init__.py" and "__import__(" in text:  # submodules loaded by name
                todo += [f"{parent}.{p.stem}" for p in path.parent.glob("*.py") if p.stem != "__init__"]
    return seen


def cli_command_imports(command: str) -> list[str]:
    """The modules ``cli.py`` imports at its top and in the function of ``command`` (and in
    the module-level helpers that function calls)."""
    tree = ast.parse((SRC / PKG / "cli.py").read_text())
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    found = [m for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)) for m in _targets(n, f"{PKG}.cli")]
    todo, done = [f"cmd_{command.replace('-', '_')}"], set()
    assert todo[0] in functions, f"cli.py has no {todo[0]}"
    while todo:
        fn = functions[todo.pop()]
        done.add(fn.name)
        found += _imports(fn, f"{PKG}.cli")
        todo += [c.func.id for c in ast.walk(fn) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
                 and c.func.id in functions and c.func.id not in done]
    return found


def stage_command(script: Path) -> str:
    """The cli command a stage script runs: the first item of its ``main([...])`` call."""
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "main" and node.args:
            first = node.args[0].elts[0]
            return first.value
    raise AssertionError(f"{script}: no main([COMMAND, ...]) call")


def stages() -> dict[str, dict]:
    data = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    return {name: (s["do"] if "foreach" in s else s) for name, s in data["stages"].items()}


def stage_modules(stage: dict) -> tuple[Path, set[str]]:
    tokens = shlex.split(stage["cmd"])
    assert tokens[0] == "python" and tokens[1].startswith("stages/"), stage["cmd"]
    script = ROOT / tokens[1]
    modules = closure(cli_command_imports(stage_command(script)))
    # the script's own imports besides cli (cli itself counts only through the command's slice)
    script_imports = [m for m in _imports(ast.parse(script.read_text()), "stages") if m != f"{PKG}.cli"]
    return script, modules | closure(script_imports)


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("name", sorted(stages()))
def test_stage_deps_cover_every_module_it_imports(name):
    stage = stages()[name]
    deps = [str(d).replace("${item}", "ITEM") for d in stage.get("deps", [])]
    script, modules = stage_modules(stage)
    files = sorted(module_file(m).relative_to(ROOT).as_posix() for m in modules)
    missing = [f for f in files + [script.relative_to(ROOT).as_posix()] if not covered(f, deps)]
    assert not missing, f"dvc.yaml stage {name}: deps miss {missing}"


def test_the_derivation_sees_what_a_stage_imports():
    """Not vacuous: validate reaches the release folder package and the suites' helpers
    through cli.cmd_validate; extract reaches the writer and every format reader."""
    _, validate = stage_modules(stages()["validate"])
    assert {f"{PKG}.validate", f"{PKG}.filter_scan", f"{PKG}.dataset.runs", f"{PKG}.params",
            f"{PKG}.cli", f"{PKG}.vocabulary"} <= validate
    assert f"{PKG}.analysis.pipeline" not in validate and f"{PKG}.publish" not in validate
    _, extract = stage_modules(stages()["extract"])
    assert {f"{PKG}.dataset.writer", f"{PKG}.formats.onnx", f"{PKG}.formats.tflite", f"{PKG}.sources.pypi"} <= extract


#: Outputs whose place is a parameter, not a command-line option: train.reports_dir of
#: params.yaml (tests/test_params.py checks that dvc.yaml's outs follow it).
PARAM_PLACED = {"train": ["reports/training"]}


@pytest.mark.parametrize("name", sorted(stages()))
def test_stage_command_names_where_its_outputs_go(name):
    """No hidden default: each output (and metrics file) lies in a folder or file the stage's
    command names, so dvc.yaml shows what the stage really runs with."""
    stage = stages()[name]
    args = [t for t in shlex.split(stage["cmd"], comments=True)[2:] if not t.startswith("-")]
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stage.get("outs", []) + stage.get("metrics", [])]
    outs = [o.replace("${item}", "ITEM") for o in outs]
    hidden = [o for o in outs if not covered(o, args + PARAM_PLACED.get(name, []))]
    assert outs and not hidden, f"{name}: {stage['cmd']!r} does not name where {hidden} go"
