"""Does the committed ``dvc.lock`` match the code? ``dvc status`` read for CI.

In CI the pipeline's outputs are not there (nothing was pulled or built), so every stage
reports its outputs, and the outputs of the stages before it that it reads, as deleted:
that is expected. What must not happen is a stage whose code, parameters or command changed since
the lock was written: then a fresh clone starts stale and ``release`` would trust a lock
that does not describe the code. This module reports exactly those.

    python -m cnn_filter_db.lock_status      # exit 1 and one line a problem when stale
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


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


def dvc_status(root: Path = Path(".")) -> dict:
    proc = subprocess.run(["dvc", "status", "--json"], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dvc status failed: {(proc.stderr or proc.stdout).strip()}")
    return json.loads(proc.stdout or "{}")


def main(argv: list[str] | None = None) -> int:
    root = Path(argv[0]) if argv else Path(".")
    problems = lock_problems(dvc_status(root))
    for p in problems:
        print(f"dvc.lock is stale: {p}", file=sys.stderr)
    if problems:
        print("rebuild (`dvc repro`) and commit dvc.lock", file=sys.stderr)
        return 1
    print("dvc.lock matches the code and parameters (missing outputs aside)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
