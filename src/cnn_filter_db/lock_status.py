"""Does the committed ``dvc.lock`` match the code? ``dvc status`` read for CI.

In CI the pipeline's outputs are not there (nothing was pulled or built), so every stage
reports its outputs, and the outputs of the stages before it that it reads, as deleted:
that is expected. What must not happen is a stage whose code, parameters or command changed since
the lock was written: then a fresh clone starts stale and ``release`` would trust a lock
that does not describe the code. This module reports exactly those, and lock entries of
stages dvc.yaml no longer defines (DVC keeps them when a catalog entry is removed).

    python -m cnn_filter_db.lock_status          # exit 1 and one line a problem when stale
    python -m cnn_filter_db.lock_status --prune  # drop the entries of stages no longer defined
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

LOCK = "dvc.lock"


def _related(a: str, b: str) -> bool:
    """One path is the other, or inside it."""
    a, b = a.rstrip("/"), b.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def lock_problems(status: dict) -> list[str]:
    """The stale parts of a ``dvc status --json`` result: changed commands, parameters and
    dependencies. A changed dependency is fine when it is (inside, or holds) an output that
    changed too: a stage's missing or partial inputs are earlier stages' missing or partial
    outputs, a matter of what was built, not of the lock."""
    changed_outs = [path for changes in status.values() for change in changes if isinstance(change, dict)
                    for path in change.get("changed outs", {})]
    problems = []
    for stage, changes in sorted(status.items()):
        for change in changes:
            if not isinstance(change, dict):  # "changed command", "always changed", ...
                if change != "always changed":
                    problems.append(f"{stage}: {change}")
                continue
            for dep, state in change.get("changed deps", {}).items():
                if isinstance(state, dict):  # a params file: key -> state
                    problems += [f"{stage}: parameter {dep}:{key} {s}" for key, s in sorted(state.items())]
                elif not any(_related(dep, out) for out in changed_outs):
                    problems.append(f"{stage}: dependency {dep} {state}")
    return problems


def orphan_entries(root: Path = Path(".")) -> list[str]:
    """Stages dvc.lock records that dvc.yaml no longer defines."""
    path = Path(root) / LOCK
    if not path.exists():
        return []
    recorded = set((yaml.safe_load(path.read_text()) or {}).get("stages") or {})
    proc = subprocess.run(["dvc", "stage", "list", "--name-only", "--fail"], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dvc stage list failed: {(proc.stderr or proc.stdout).strip()}")
    return sorted(recorded - set(proc.stdout.split()))


def prune_lock(root: Path, stages: list[str]) -> None:
    """Remove the entries of ``stages`` from dvc.lock: each is a block of lines from
    ``  <name>:`` to the next stage at the same indentation (DVC's fixed layout); written to a
    temporary name, then renamed."""
    path = Path(root) / LOCK
    drop, out = set(stages), []
    skipping = False
    for line in path.read_text().splitlines(keepends=True):
        head = re.match(r"^  (\S[^:]*):\s*$", line)
        if head or not line.startswith("   "):
            skipping = bool(head) and head.group(1) in drop
        if not skipping:
            out.append(line)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{LOCK}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.writelines(out)
    os.replace(tmp, path)


def dvc_status(root: Path = Path(".")) -> dict:
    proc = subprocess.run(["dvc", "status", "--json"], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dvc status failed: {(proc.stderr or proc.stdout).strip()}")
    return json.loads(proc.stdout or "{}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cnn_filter_db.lock_status", description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", type=Path, default=Path("."))
    ap.add_argument("--prune", action="store_true", help="remove lock entries of stages dvc.yaml no longer defines")
    args = ap.parse_args(argv)
    root = args.root
    orphans = orphan_entries(root)
    if args.prune and orphans:
        prune_lock(root, orphans)
        print(f"removed {len(orphans)} entries from {LOCK}: {', '.join(orphans)}")
        orphans = orphan_entries(root)
    problems = [f"{s}: recorded, but dvc.yaml no longer defines it (`--prune` removes it)" for s in orphans]
    problems += lock_problems(dvc_status(root))
    for p in problems:
        print(f"dvc.lock is stale: {p}", file=sys.stderr)
    if problems:
        print("rebuild (`dvc repro`) and commit dvc.lock", file=sys.stderr)
        return 1
    print("dvc.lock matches the code and parameters (missing outputs aside)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
