"""Source kinds live in one registry: each module of cnn_filter_db.sources registers its kind
(entry model, URI, fetch or build, `catalog add` spec), the catalog's entry model is built
from it, and `sources` and `train` do not import each other's internals."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cnn_filter_db import catalog, sources
from cnn_filter_db.errors import SourceError

SRC = Path(__file__).resolve().parents[1] / "src"


def test_every_kind_is_registered_and_in_the_entry_schema(root):
    kinds = sources.kinds()
    assert set(kinds) == {"pypi", "url", "hf", "timm", "torchvision", "train"}
    for name, kind in kinds.items():
        assert kind.model.model_fields["kind"].annotation.__args__ == (name,)
        assert (kind.fetch is None) != (kind.build is None)  # a file to fetch, or weights to build
    mapping = catalog.json_schema(root)["properties"]["source"]["discriminator"]["mapping"]
    assert set(mapping) == set(kinds)


@pytest.mark.parametrize("spec, expected", [
    ("pypi:facenet-pytorch==2.6.0:facenet_pytorch/data/pnet.pt",
     {"kind": "pypi", "package": "facenet-pytorch", "version": "2.6.0", "path": "facenet_pytorch/data/pnet.pt"}),
    ("hf:org/repo@" + "a" * 40 + ":model.safetensors",
     {"kind": "hf", "repo_id": "org/repo", "revision": "a" * 40, "filename": "model.safetensors"}),
    ("timm:resnet18", {"kind": "timm", "architecture": "resnet18", "seed": 0}),
    ("timm:resnet18.a1_in1k", {"kind": "timm", "architecture": "resnet18", "pretrained_tag": "a1_in1k"}),
    ("https://example.org/w.onnx", {"kind": "url", "url": "https://example.org/w.onnx"}),
])
def test_catalog_add_specs_are_parsed_by_their_kind(spec, expected):
    assert sources.parse_spec(spec) == expected


def test_unknown_spec_names_the_forms():
    with pytest.raises(SourceError, match="pypi:PACKAGE==VERSION:PATH/IN/WHEEL.*timm:ARCH"):
        sources.parse_spec("no/such/file.onnx")


def _imports(path: Path) -> set[str]:
    """Absolute names of the package modules a file imports (relative imports resolved)."""
    package = ".".join(path.relative_to(SRC).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(x for x in (base, node.module) if x)
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_train_does_not_import_sources_and_sources_only_reach_train_through_its_kind():
    train_files = sorted((SRC / "cnn_filter_db" / "train").glob("*.py"))
    assert train_files
    for path in train_files:
        assert not any(n.startswith("cnn_filter_db.sources") for n in _imports(path)), path
    for path in sorted((SRC / "cnn_filter_db" / "sources").glob("*.py")):
        uses_train = any(n.startswith("cnn_filter_db.train") for n in _imports(path))
        assert uses_train == (path.name == "train.py"), path
    # and at run time: importing train loads nothing of sources
    code = "import sys, cnn_filter_db.train; print(sorted(m for m in sys.modules if 'cnn_filter_db.sources' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(SRC)), check=True)
    assert out.stdout.strip() == "[]"


def test_a_new_kind_is_one_module(tmp_path):
    """A copy of the package plus one module in sources/: the catalog validates entries of the
    new kind and sources.load builds them, with no other file changed."""
    src = tmp_path / "src"
    shutil.copytree(SRC, src, ignore=shutil.ignore_patterns("__pycache__"))
    (src / "cnn_filter_db" / "sources" / "constant.py").write_text(textwrap.dedent('''
        """``constant``: one 3x3 conv whose weights all equal ``value`` (a kind for this test)."""
        from typing import Literal

        import numpy as np

        from ..fields import StrictModel
        from ..formats.base import Conv, ModelConvs
        from ..loaded import Loaded
        from . import SourceKind, register


        class ConstantSource(StrictModel):
            kind: Literal["constant"]
            value: float


        def build(source, model_id, cache_dir=None):
            w = np.full((2, 1, 3, 3), source.value, np.float32)
            return Loaded(ModelConvs([Conv("c", w, groups=1, level=0)], "pytorch"), "0" * 64, uri(source, model_id))


        def uri(source, model_id):
            return f"constant://{source.value}"


        register(SourceKind("constant", ConstantSource, uri, build=build))
    '''))
    code = textwrap.dedent('''
        from cnn_filter_db import catalog, sources
        data = yaml.safe_load(open(sys.argv[1]).read())
        data["source"] = {"kind": "constant", "value": 0.5}
        entry = catalog.Entry.model_validate(data)
        loaded = sources.load(entry)
        print(loaded.uri, loaded.convs.convs[0].weight.sum())
        try:
            catalog.Entry.model_validate(dict(data, source={"kind": "constant", "value": True}))
        except Exception as exc:
            print("refused", exc.errors()[0]["loc"])
    ''')
    entry = Path(__file__).resolve().parents[1] / "catalog" / "models" / "timm-resnet18-init.yaml"
    out = subprocess.run([sys.executable, "-c", "import sys, yaml\n" + code, str(entry)], capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(src)), timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["constant://0.5 9.0", "refused ('source', 'constant', 'value')"]
