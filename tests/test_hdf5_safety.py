"""HDF5 containment: a weights file that makes HDF5 read another local file (external raw
storage, an external link, a virtual dataset), aliases data through a soft link, or needs a
filter plugin is refused by every HDF5 reader, naming the file and the dataset; nothing is
written and the other file's bytes appear nowhere."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from cnn_filter_db import formats
from cnn_filter_db.catalog import Entry
from cnn_filter_db.errors import FormatError
from cnn_filter_db.extract import extract_model
from cnn_filter_db.scaffold import add_entry
from cnn_filter_db.sources.cache import sha256_file
from keras2_writer import write_keras2_h5

MARKER = b"TOP-SECRET-MARKER:ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC" * 8
KERNEL = "model_weights/conv1/conv1/kernel:0"  # (3, 3, 3, 4) float32 in the Keras 2 file
SHAPE = (3, 3, 3, 4)


def kernels():
    rng = np.random.default_rng(3)
    return {"conv1": rng.normal(size=SHAPE).astype(np.float32),
            "dwise": rng.normal(size=(3, 3, 4, 1)).astype(np.float32),
            "sep_d": rng.normal(size=(3, 3, 4, 1)).astype(np.float32),
            "sep_p": rng.normal(size=(1, 1, 4, 6)).astype(np.float32),
            "conv2": rng.normal(size=(3, 3, 3, 6)).astype(np.float32)}


def _secret_floats(tmp_path) -> tuple:
    """The other local file, and a file holding its bytes as float32 (for links and VDS)."""
    secret = tmp_path / "secret.txt"
    secret.write_bytes(MARKER)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("stolen", data=np.frombuffer(MARKER[: 4 * 108], np.float32).reshape(SHAPE))
    return secret, other


def make_bad(kind: str, path, tmp_path) -> str:
    """A Keras 2 file whose conv1 kernel escapes in the way ``kind`` says; the expected error."""
    write_keras2_h5(path, kernels())
    secret, other = _secret_floats(tmp_path)
    with h5py.File(path, "a") as f:
        del f[KERNEL]
        group = f["model_weights/conv1"]
        if kind == "external":
            # as the attack did: each float32 is 3 bytes of the other file plus one zero byte
            # (so every |w| stays tiny and passes validation)
            zero = tmp_path / "zero.bin"
            zero.write_bytes(b"\0")
            segments = []
            for i in range(int(np.prod(SHAPE))):
                segments += [(str(secret), 3 * i, 3), (str(zero), 0, 1)]
            group.create_dataset("conv1/kernel:0", shape=SHAPE, dtype="<f4", external=segments)
            return "stores its data in another file"
        if kind == "external_link":
            group["conv1/kernel:0"] = h5py.ExternalLink(str(other), "/stolen")
            return "is an external link to"
        if kind == "virtual":
            layout = h5py.VirtualLayout(shape=SHAPE, dtype="f4")
            layout[...] = h5py.VirtualSource(str(other), "stolen", shape=SHAPE)
            group.create_virtual_dataset("conv1/kernel:0", layout)
            return "is a virtual dataset"
        if kind == "soft_link":
            group["conv1/kernel:0"] = h5py.SoftLink("/optimizer_weights/Adam/conv1/kernel/m:0")
            return "is a soft link"
        if kind == "filter":
            group.create_dataset("conv1/kernel:0", data=kernels()["conv1"], chunks=SHAPE, compression=32004,
                                 allow_unknown_filter=True)  # lz4: a plugin, not shipped with h5py
            return "uses HDF5 filter 32004"
    raise AssertionError(kind)


KINDS = ["external", "external_link", "virtual", "soft_link", "filter"]


def _no_marker_anywhere(folder):
    pieces = [MARKER[i:i + 3] for i in range(0, 48, 3)]
    for p in folder.rglob("*"):
        if p.is_file() and p.name not in ("secret.txt", "other.h5") and not p.name.startswith("weights"):
            data = p.read_bytes()
            assert not any(piece in data for piece in pieces), p


@pytest.mark.parametrize("kind", KINDS)
def test_keras_reader_refuses_escapes(kind, tmp_path):
    path = tmp_path / "weights.h5"
    expected = make_bad(kind, path, tmp_path)
    with pytest.raises(FormatError, match=rf"weights\.h5: refused: /{KERNEL} {expected}"):
        formats.read(path, "keras")


def test_the_external_storage_attack_reads_the_other_file_without_the_check(tmp_path):
    """The bad file is what the attack made: h5py alone hands out the other file's bytes."""
    path = tmp_path / "weights.h5"
    make_bad("external", path, tmp_path)
    with h5py.File(path, "r") as f:
        raw = f[KERNEL][()].tobytes()
    assert raw[:3] == MARKER[:3] and raw[4:7] == MARKER[3:6] and raw[3] == 0
    assert np.abs(np.frombuffer(raw, "<f4")).max() < 1e-37


@pytest.mark.parametrize("kind", KINDS)
def test_extract_and_catalog_add_write_nothing(kind, tmp_path, root):
    import shutil

    path = tmp_path / "weights.h5"
    expected = make_bad(kind, path, tmp_path)
    entry = Entry.model_validate({
        "model_id": "escape", "name": "x", "format": "keras",
        "source": {"kind": "url", "url": path.as_uri(), "sha256": sha256_file(path)},
        "architecture": "x", "family": "other", "task": "other", "visual_category": "none",
        "training_dataset": "none", "pretraining_dataset": "none", "trained": False, "license": "MIT",
        "training_data_license": "not-applicable", "paper": None, "accuracy": None})
    out = tmp_path / "out"
    with pytest.raises(FormatError, match=rf"^escape: .*refused: /{KERNEL} {expected}"):
        extract_model(entry, out / "release", out / "meta", root=tmp_path, cache_dir=tmp_path / "cache",
                      progress=False)
    assert not (out / "release").exists() or not any((out / "release").rglob("*.parquet"))
    assert not (out / "meta" / "escape").exists()

    proj = tmp_path / "proj"
    (proj / "catalog" / "models").mkdir(parents=True)
    shutil.copy(root / "catalog" / "vocabulary.yaml", proj / "catalog")
    with pytest.raises(FormatError, match=rf"refused: /{KERNEL} {expected}"):
        add_entry(str(path), "escape", root=proj, cache_dir=tmp_path / "cache")
    assert list((proj / "catalog" / "models").iterdir()) == []
    assert not (proj / "catalog" / "index.yaml").exists()
    _no_marker_anywhere(tmp_path)


def test_keras3_archive_inner_file_is_checked(tmp_path):
    import zipfile

    inner = tmp_path / "weights.h5"
    _, other = _secret_floats(tmp_path)
    with h5py.File(inner, "w") as f:
        f.create_group("vars")
        f.create_group("layers/conv2d/vars")["0"] = h5py.ExternalLink(str(other), "/stolen")
    archive = tmp_path / "model.keras"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("config.json", '{"class_name": "Functional", "config": {"layers": []}}')
        zf.write(inner, "model.weights.h5")
    with pytest.raises(FormatError, match=r"model\.keras \(model\.weights\.h5\): refused: "
                                          r"/layers/conv2d/vars/0 is an external link"):
        formats.read(archive, "keras")


def test_allowed_filters_still_read(tmp_path):
    path = tmp_path / "weights.h5"
    k = kernels()
    write_keras2_h5(path, k)
    with h5py.File(path, "a") as f:
        del f[KERNEL]
        f["model_weights/conv1"].create_dataset("conv1/kernel:0", data=k["conv1"], chunks=SHAPE,
                                                compression="gzip", shuffle=True, fletcher32=True)
    conv = {c.name: c for c in formats.read(path, "keras").convs}["conv1"]
    np.testing.assert_array_equal(conv.weight, k["conv1"].transpose(3, 2, 0, 1))
