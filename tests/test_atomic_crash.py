"""kill -9 at every step of a model's (shards, metadata) swap (atomic.py's journal): whatever
the next run does first (finish through either path, or fail before its own swap), the pair is
wholly the old one or wholly the new one, and no hidden entry is left behind.

The child is a real process that SIGKILLs itself just before its k-th rename or removal (counted by
wrapping ``atomic._replace`` and ``atomic._remove`` in the child only). Expected pairs are the
values written (1.0 / "v1.0" old, 2.0 / "v2.0" new), read back with plain pyarrow."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from cnn_filter_db import atomic

CHILD = '''
import os, signal, sys
from pathlib import Path
import numpy as np
from cnn_filter_db import atomic
from cnn_filter_db.dataset import writer

release, meta, value, kill_at = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
steps = 0

def counted(real):
    def step(*args):
        global steps
        steps += 1
        if steps == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        real(*args)
    return step

atomic._replace = counted(atomic._replace)
atomic._remove = counted(atomic._remove)
rows = [{"model_id": "m", "layer_id": 0, "out_channels": 2, "in_channels_per_group": 1, "n_filters": 2}]
model = {"model_id": "m", "n_layers": 1, "n_filters": 2, "name": f"v{value}"}
writer.write_model(release, meta, model, rows, [writer.Layer(rows[0], np.full((2, 1, 3, 3), value, np.float32))])
print(steps)
'''

OLD, NEW = (1.0, "v1.0"), (2.0, "v2.0")


def _write(base: Path, value: float, kill_at: int = 0) -> subprocess.CompletedProcess:
    script = base.parent / "child.py"
    script.write_text(CHILD)
    return subprocess.run([sys.executable, str(script), str(base / "rel"), str(base / "meta"), str(value), str(kill_at)],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(Path(atomic.__file__).parents[1])))


def _pair(base: Path) -> tuple[float, str] | None:
    """(weight, name) of the visible pair, read with pyarrow alone; None when a part is missing."""
    shards = sorted((base / "rel" / "filters" / "m").glob("*.parquet"))
    meta = base / "meta" / "m" / "model.parquet"
    if not shards or not meta.exists():
        return None
    w = pq.read_table(shards)["weights"].combine_chunks().flatten().to_numpy()
    assert np.all(w == w[0]) and len(w) == 18  # 2 filters x 9, all of one value: never a mix of shards
    return float(w[0]), pq.read_table(meta)["name"][0].as_py()


def _entries(base: Path) -> tuple[list[str], list[str]]:
    return sorted(os.listdir(base / "rel" / "filters")), sorted(os.listdir(base / "meta"))


@pytest.fixture(scope="module")
def crashed(tmp_path_factory):
    """For each step k of a write over an existing pair: the folder a kill at step k left."""
    root = tmp_path_factory.mktemp("crashed")
    probe = root / "probe"
    assert _write(probe, 1.0).returncode == 0
    done = _write(probe, 2.0)
    assert done.returncode == 0, done.stderr
    n_steps = int(done.stdout)
    out = {}
    for k in range(1, n_steps + 1):
        base = root / f"k{k}"
        assert _write(base, 1.0).returncode == 0
        proc = _write(base, 2.0, kill_at=k)
        assert proc.returncode == -signal.SIGKILL, (k, proc.returncode, proc.stderr)
        out[k] = base
    return out


def _old_then_new(results: list) -> None:
    """Killed before its first step a write leaves the old pair, after its last the new one;
    in between, the old pair up to one step, the new one from there on, never a mix."""
    assert all(r in (OLD, NEW) for r in results), results
    assert results[0] == OLD and results[-1] == NEW, results
    assert results == sorted(results, key=lambda r: r == NEW), results


@pytest.mark.parametrize("finish", ["fails-before-swap", "clean-meta-only", "clean-filters-only"])
def test_a_kill_at_any_step_leaves_the_pair_wholly_old_or_wholly_new(crashed, finish, tmp_path):
    results, settled = [], []
    for k, source in crashed.items():
        base = tmp_path / f"k{k}"
        shutil.copytree(source, base, symlinks=True)
        release, meta = base / "rel", base / "meta"
        if finish == "fails-before-swap":  # the auditor's case: the next run fails before its own swap
            with pytest.raises(RuntimeError):
                with atomic.atomic_dirs(release / "filters" / "m", meta / "m"):
                    raise RuntimeError("download failed")
        elif finish == "clean-meta-only":  # the path whose journal only points to the group's record
            atomic.clean_stale(meta / "m")
        else:
            atomic.clean_stale(release / "filters" / "m")
        results.append(_pair(base))
        # both paths cleaned: nothing hidden left, and the pair unchanged
        atomic.clean_stale(release / "filters" / "m")
        atomic.clean_stale(meta / "m")
        assert _entries(base) == (["m"], ["m"]), f"killed at step {k}"
        settled.append(_pair(base))
    _old_then_new(results)
    assert settled == results
    assert len(crashed) == 10  # journals: 2 written, folders: 2 set aside, 2 moved in, 2 old removed; 2 journals removed
    # the 6th step moves the second folder in (the group's commit): killed before it, old; after, new
    assert results.index(NEW) + 1 == 7


def test_a_crash_while_finishing_a_crashed_group_is_finished_by_the_next_run(crashed, tmp_path, monkeypatch):
    """Finishing a group may itself be interrupted at any of its renames or removals
    (an exception there leaves the folders as a kill would: nothing in it catches)."""
    real_replace, real_remove = atomic._replace, atomic._remove
    for k, source in crashed.items():
        expected = OLD if k <= 6 else NEW  # as the test above found
        for j in range(1, 9):
            base = tmp_path / f"k{k}-j{j}"
            shutil.copytree(source, base, symlinks=True)
            steps = []

            def failing(real):
                def step(*args):
                    steps.append(args)
                    if len(steps) == j:
                        raise OSError("interrupted")
                    real(*args)
                return step

            monkeypatch.setattr(atomic, "_replace", failing(real_replace))
            monkeypatch.setattr(atomic, "_remove", failing(real_remove))
            try:
                atomic.clean_stale(base / "meta" / "m")
            except OSError:
                pass
            monkeypatch.setattr(atomic, "_replace", real_replace)
            monkeypatch.setattr(atomic, "_remove", real_remove)
            atomic.clean_stale(base / "rel" / "filters" / "m")
            atomic.clean_stale(base / "meta" / "m")
            assert _pair(base) == expected, f"killed at step {k}, finishing interrupted at step {j}"
            assert _entries(base) == (["m"], ["m"]), f"killed at step {k}, finishing interrupted at step {j}"


def test_a_first_write_killed_at_any_step_leaves_nothing_or_the_whole_pair(tmp_path):
    probe = tmp_path / "probe"
    done = _write(probe, 2.0)
    assert done.returncode == 0, done.stderr
    n_steps = int(done.stdout)
    results = []
    for k in range(1, n_steps + 1):
        base = tmp_path / f"k{k}"
        proc = _write(base, 2.0, kill_at=k)
        assert proc.returncode == -signal.SIGKILL, (k, proc.stderr)
        atomic.clean_stale(base / "meta" / "m")
        atomic.clean_stale(base / "rel" / "filters" / "m")
        results.append((_pair(base), _entries(base)))
    nothing, whole = (None, ([], [])), (NEW, (["m"], ["m"]))
    assert all(r in (nothing, whole) for r in results), results
    assert n_steps == 6  # no old folders: 2 journals written, 2 folders moved in, 2 journals removed
    assert results == [nothing] * 4 + [whole] * 2  # the 4th step moves the second folder in
