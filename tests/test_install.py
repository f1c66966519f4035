"""The package as users get it: a wheel built from the source tree, installed (not editable)
into a fresh virtual environment, used from a folder that is not a checkout.

The base install (numpy, pyarrow, huggingface_hub) reads a release; the ``validate`` extra
adds what `cnn-filter-db validate PATH` needs, and the suites and the vocabulary come from
inside the wheel."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

# (pydantic is a base dependency: load_layer parses the release's manifest.json with it to check
# each shard's sha256)
HEAVY = ("pandas", "torch", "timm", "datasets", "great_expectations", "dvc", "scipy", "matplotlib", "dask",
         "onnx", "h5py", "sklearn")


def run(cmd, cwd, env=None, ok=True):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    if ok:
        assert proc.returncode == 0, f"{cmd}:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory, root) -> Path:
    """A wheel built (without network, with the current setuptools) from a copy of the source tree."""
    work = tmp_path_factory.mktemp("wheel")
    tree = work / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, tree / name)
    shutil.copytree(root / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", work / "out", tree], cwd=work)
    (whl,) = (work / "out").glob("cnn_filter_db-*.whl")
    return whl


def test_wheel_holds_the_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for table in ("models", "layers", "filters", "manifest"):
        assert f"cnn_filter_db/validation/{table}.py" in names
    assert {"cnn_filter_db/data/vocabulary.yaml", "cnn_filter_db/data/dataset_card.md"} <= names


def test_repository_paths_link_to_the_one_copy(root):
    # contributors edit catalog/vocabulary.yaml and dataset_card.md; those are the packaged files
    for link, target in [("catalog/vocabulary.yaml", "src/cnn_filter_db/data/vocabulary.yaml"),
                         ("dataset_card.md", "src/cnn_filter_db/data/dataset_card.md")]:
        assert (root / link).is_symlink() and (root / link).resolve() == (root / target).resolve()


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_reads_and_validates_from_any_folder(wheel, small_release, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    elsewhere = tmp_path / "elsewhere"  # not a checkout: no params.yaml, catalog/ or validation/
    elsewhere.mkdir()

    # the base install: reading only
    run([py, "-m", "pip", "install", "--quiet", wheel], cwd=elsewhere, env=env)
    listed = run([py, "-m", "pip", "list", "--format=freeze"], cwd=elsewhere, env=env).stdout.lower()
    for heavy in ("torch", "great-expectations", "great_expectations", "dvc", "pandas", "datasets"):
        assert f"\n{heavy}==" not in f"\n{listed}", f"the base install pulled {heavy}"
    assert run([py, "-m", "cnn_filter_db", "--version"], cwd=elsewhere, env=env).stdout.startswith("cnn-filter-db 0.")

    # load_layer from a folder that is not the release's parent; expected values read with pyarrow here
    mid = "efficientnet-lite0"
    table = pq.read_table(sorted((small_release / "filters" / mid).glob("*.parquet")))
    mask = np.asarray(table["layer_id"]) == 2
    expected = np.asarray(table["weights"].combine_chunks().flatten()).reshape(-1, 9)[mask]
    code = ("import sys, numpy as np, cnn_filter_db\n"
            f"w = cnn_filter_db.load_layer({mid!r}, 2, source={str(small_release)!r})\n"
            "np.save('w.npy', w)\n"
            f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    run([py, "-c", code], cwd=elsewhere, env=env)
    got = np.load(elsewhere / "w.npy")
    assert got.dtype == np.float32 and got.ndim == 4 and got.shape[2:] == (3, 3)
    np.testing.assert_array_equal(got.reshape(-1, 9), expected)

    # a mistyped local path is an error saying so, not a Hub request
    bad = run([py, "-c", f"import cnn_filter_db; cnn_filter_db.load_layer({mid!r}, 0, source='dist/cnn-filter-dbx')"],
              cwd=elsewhere, env=env, ok=False)
    assert bad.returncode != 0 and "dist/cnn-filter-dbx: no such release folder" in bad.stderr

    # the validate extra: the suites and the vocabulary come from the wheel
    run([py, "-m", "pip", "install", "--quiet", f"{wheel}[validate]"], cwd=elsewhere, env=env)
    proc = run(["cnn-filter-db", "validate", small_release, "--tables", "models", "layers", "filters"],
               cwd=elsewhere, env=env, ok=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "not found" not in proc.stderr
    missing = run(["cnn-filter-db", "validate", elsewhere / "nope"], cwd=elsewhere, env=env, ok=False)
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    assert "nope" in missing.stderr
