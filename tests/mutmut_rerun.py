"""Run mutants that mutmut could not pair with their tests, and record the outcome in mutmut's results.

mutmut links a test to a function when the function runs inside the pytest process. The
upload tests of ``publish`` (``tests/test_mut_publish_upload.py``) call ``publish()`` in a
worker subprocess (``huggingface_hub`` must be imported there without the test session's
offline switch), so mutmut records "no tests" for ``publish._Upload`` and leaves survivors in
``publish()`` that only the subprocess tests reach. The worker inherits ``MUTANT_UNDER_TEST``,
so running pytest by hand with that variable set does test the mutant. This script does it,
one mutant at a time, after ``mutmut run`` has made ``mutants/``:

    python tests/mutmut_rerun.py tests/test_mut_publish_upload.py -k 'cnn_filter_db.publish.x_publish__*' \
        -k 'cnn_filter_db.publish.xǁ_Uploadǁ*' -k 'cnn_filter_db.publish.x__*'

It reruns the mutants matching a pattern whose status is "no tests" or "survived" (``--all``:
every matching mutant), with ``pytest -x`` on the given test files in ``mutants/``, and writes
the exit code into ``mutants/.../<module>.py.meta`` so that ``mutmut results`` shows it
(1 killed, 0 survived, 36 timeout after ``--timeout`` seconds).
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RERUN = {None, 0, 33, 5}  # not checked, survived, no tests
TIMEOUT = {-24, 24, 152, 255, 36}  # mutmut's timeout codes (SIGXCPU, or its own)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tests", nargs="+", help="test files, relative to the project root")
    ap.add_argument("-k", "--mutants", action="append", required=True,
                    help="mutant names, fnmatch style (cnn_filter_db.publish.x_publish__mutmut_*); repeatable")
    ap.add_argument("--all", action="store_true", help="rerun every matching mutant, killed ones too")
    ap.add_argument("--timeouts", action="store_true",
                    help="also rerun mutmut's timeouts: a forked worker can hang where a fresh process does not "
                         "(torch's thread pool, tqdm's monitor thread)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a mutant counts as a timeout")
    args = ap.parse_args(argv)
    mutants = Path("mutants")
    if not (mutants / "src").is_dir():
        raise SystemExit("mutants/src: missing; run `mutmut run` first (it makes the mutated copy)")
    env = {**os.environ, "PYTHONPATH": str((mutants / "src").resolve())}

    def pytest(name: str) -> tuple[int, str]:
        """pytest's exit code and the first test it names as failed."""
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider", "-m", "not slow",
               *args.tests]
        try:
            proc = subprocess.run(cmd, cwd=mutants, env={**env, "MUTANT_UNDER_TEST": name}, capture_output=True,
                                  text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            return 36, ""
        failed = [l for l in proc.stdout.splitlines() if l.startswith(("FAILED ", "ERROR "))]
        return proc.returncode, (failed[0][:160] if failed else "")

    if pytest("")[0] != 0:
        raise SystemExit(f"the tests fail without a mutant: {' '.join(args.tests)} in {mutants}")
    counts: dict[str, int] = {}
    for meta_path in sorted((mutants / "src").rglob("*.py.meta")):
        meta = json.loads(meta_path.read_text())
        codes = meta["exit_code_by_key"]
        names = [n for n in codes if any(fnmatch.fnmatch(n, p) for p in args.mutants) and (args.all or codes[n] in RERUN or (args.timeouts and codes[n] in TIMEOUT))]
        for name in names:
            start = time.monotonic()
            code, failed = pytest(name)
            code = 1 if code == 2 else code  # 2: the mutated module failed to import (collection error)
            codes[name] = code
            status = {0: "survived", 1: "killed", 36: "timeout"}.get(code, f"exit {code}")
            counts[status] = counts.get(status, 0) + 1
            print(f"{status:9} {time.monotonic() - start:5.1f}s {name} {failed}", flush=True)
            meta_path.write_text(json.dumps(meta, indent=4))  # after each mutant: an interrupted rerun keeps its results
    print(counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
