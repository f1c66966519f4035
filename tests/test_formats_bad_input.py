"""Bad input through the whole pipeline: for each new format, a corrupt file, a file whose
extension lies, a NaN or inf kernel and an unsupported layer each stop ``extract_model`` with
an error that names the entry, and nothing is written for that model."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from cnn_filter_db.catalog import Entry
from cnn_filter_db.errors import FormatError
from cnn_filter_db.extract import extract_model
from cnn_filter_db.sources.cache import sha256_file
from keras2_writer import write_keras2_h5
from tflite_writer import TfliteWriter


def _keras_kernels(nan=False):
    rng = np.random.default_rng(3)
    k = {"conv1": rng.normal(size=(3, 3, 3, 4)).astype(np.float32),
         "dwise": rng.normal(size=(3, 3, 4, 1)).astype(np.float32),
         "sep_d": rng.normal(size=(3, 3, 4, 1)).astype(np.float32),
         "sep_p": rng.normal(size=(1, 1, 4, 6)).astype(np.float32),
         "conv2": rng.normal(size=(3, 3, 3, 6)).astype(np.float32)}
    if nan:
        k["dwise"][0, 1, 2, 0] = np.inf
    return k


def _tflite(kernel) -> bytes:
    w = TfliteWriter()
    x = w.tensor("x", [1, 4, 4, 2])
    y = w.tensor("y", [1, 4, 4, 3])
    wt = w.const("w", kernel) if kernel is not None else w.tensor("w_runtime", [3, 3, 3, 2])
    w.conv(x, wt, w.const("b", np.zeros(3, np.float32)), y)
    return w.build([x], [y])


def make(fmt: str, problem: str, path):
    """Write the bad file for (format, problem); returns the regex the error must match."""
    if fmt == "safetensors":
        good = {"conv.weight": np.ones((2, 2, 3, 3), np.float32)}
        if problem == "corrupt":
            save_file(good, str(path))
            path.write_bytes(path.read_bytes()[:-20])
            return "truncated"
        if problem == "lying":
            torch.save({"conv.weight": torch.ones(2, 2, 3, 3)}, path)
            return "not a safetensors file .*format 'pytorch'"
        if problem == "nan":
            good["conv.weight"][1, 1, 0, 0] = np.nan
            save_file(good, str(path))
            return "layer 'conv' holds 1 NaN or infinite weights"
        save_file({"conv.weight": np.ones((2, 2, 3, 3), np.int8)}, str(path))
        return "4-D conv weight of dtype int8"
    if fmt == "keras":
        if problem == "corrupt":
            write_keras2_h5(path, _keras_kernels())
            path.write_bytes(path.read_bytes()[:3000])
            return "not a readable HDF5 file|not a Keras file"
        if problem == "lying":
            path.write_bytes(_tflite(np.ones((3, 3, 3, 2), np.float32)))
            return "not a Keras file .*format 'tflite'"
        if problem == "nan":
            write_keras2_h5(path, _keras_kernels(nan=True))
            return "layer 'dwise' holds 1 NaN or infinite weights"
        write_keras2_h5(path, _keras_kernels(), conv2_class="MyConv")
        return "unsupported layer type: layer 'conv2' is a MyConv"
    if fmt == "tflite":
        if problem == "corrupt":
            path.write_bytes(_tflite(np.ones((3, 3, 3, 2), np.float32))[:300])
            return "corrupt or truncated TFLite flatbuffer"
        if problem == "lying":
            write_keras2_h5(path, _keras_kernels())
            return "not a TFLite flatbuffer .*format 'keras'"
        if problem == "nan":
            k = np.ones((3, 3, 3, 2), np.float32)
            k[0, 0, 0, 0] = -np.inf
            path.write_bytes(_tflite(k))
            return "layer 'y' holds 1 NaN or infinite weights"
        path.write_bytes(_tflite(None))
        return "the filter is computed at run time"
    raise AssertionError(fmt)


SUFFIX = {"safetensors": ".safetensors", "keras": ".h5", "tflite": ".tflite"}


@pytest.mark.parametrize("problem", ["corrupt", "lying", "nan", "unsupported"])
@pytest.mark.parametrize("fmt", ["safetensors", "keras", "tflite"])
def test_bad_input_names_the_entry_and_writes_nothing(fmt, problem, tmp_path):
    path = tmp_path / f"weights{SUFFIX[fmt]}"
    expected = make(fmt, problem, path)
    model_id = f"bad-{fmt}-{problem}"
    entry = Entry.model_validate({
        "model_id": model_id, "name": "bad input", "format": fmt,
        "source": {"kind": "url", "url": path.as_uri(), "sha256": sha256_file(path)},
        "architecture": "x", "family": "other", "task": "other", "visual_category": "none",
        "training_dataset": "none", "pretraining_dataset": "none", "trained": False, "license": "MIT",
        "training_data_license": "not-applicable", "paper": None, "accuracy": None})
    release, meta = tmp_path / "release", tmp_path / "meta"
    with pytest.raises(FormatError, match=rf"^{model_id}: .*({expected})"):
        extract_model(entry, release, meta, root=tmp_path, cache_dir=tmp_path / "cache", progress=False)
    assert not (release / "filters" / model_id).exists()
    assert not (meta / model_id).exists()
