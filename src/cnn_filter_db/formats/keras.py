"""Keras weights, read with h5py (Keras itself is not imported).

Layouts, as Keras writes them:

* Keras 2 ``.h5`` from ``model.save``: the ``model_weights`` group, whose ``layer_names``
  attribute lists the layers and each ``model_weights/<layer>`` group's ``weight_names``
  attribute lists that layer's weights; the model config is the root attribute
  ``model_config``. Weights belong to the group's layer whatever their own prefix says
  (Keras 2.0-2.2 under TensorFlow store ``conv1/conv1_1/kernel:0`` when a name scope was
  taken twice); only in a nested model's group does the prefix name the inner layer. The
  ``optimizer_weights`` group holds optimizer slots shaped like the kernels and is never read.
* Keras 2 ``save_weights`` ``.h5``: the same groups at the file root (``layer_names`` a root
  attribute), without a config.
* Keras 3 ``.weights.h5``: a ``vars`` group per layer (``vars/0``, ``vars/1``, ...) under
  ``layers/<class_snake>`` for functional models and under the attribute names of a
  subclassed model (``<block>/conv/vars``, ``<block>/layers/conv2d/vars``); the layer's own
  name is the ``name`` attribute of ``vars``. The ``optimizer`` group is never read.
* Keras 3 ``.keras``: a zip of ``config.json`` and ``model.weights.h5`` (the layout above).

Layer class: from the stored config where there is one; without a config from Keras's
generated names (a Keras 3 ``layers/conv2d_1`` group, or a layer named ``conv2d_3``,
``depthwise_conv2d``, ``separable_conv2d_1``, ``conv2d_transpose``, ...) or from Keras 2
variable names (``depthwise_kernel`` with ``pointwise_kernel`` is a SeparableConv2D,
alone a DepthwiseConv2D). A kernel whose class nothing tells is refused, naming the mapping
to add to the catalog entry (``keras_layer_classes: {<layer>: Conv2D}``, passed to the
reader as ``layer_classes``).

Kernels are stored HWIO and become (out, in_per_group, kh, kw). ``Conv2D`` keeps the
``groups`` of its config (None without a config); ``DepthwiseConv2D`` (kernel H, W, C, mult)
becomes C*mult outputs of one input each, marked depthwise with groups C; ``SeparableConv2D``
gives two convs, ``<layer>/depthwise`` (depthwise) and ``<layer>/pointwise`` (a dense 1x1).
Transposed, 1-D and 3-D convolutions are not filters of this database and are skipped; any
other layer holding a 4-D kernel is refused, since its layout cannot be known.

Level: the layer order of the stored model config (``model_config`` in Keras 2 files,
``config.json`` in ``.keras``), nested models depth first; each conv takes the next level.
Without a config the order is the stored layer order of Keras 2 files, and the natural
order of the group paths in Keras 3 files (only approximate).

Every file is opened through :func:`.hdf5_safety.open_contained` (no external storage, links
or unknown filters).
"""
from __future__ import annotations

import json
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FormatError
from . import register
from .base import Conv, ModelConvs
from .hdf5_safety import open_contained
from .sniff import mismatch_hint
from .state_dict import natural_key

_CONV2D = {"Conv2D", "Convolution2D"}
_DEPTHWISE = {"DepthwiseConv2D"}
_SEPARABLE = {"SeparableConv2D", "SeparableConvolution2D"}
#: Layers with conv kernels that are not 2-D filters of this database (transposed like ONNX
#: ConvTranspose, or of another rank).
_SKIPPED = {"Conv2DTranspose", "Convolution2DTranspose", "Deconvolution2D", "Conv1D", "Convolution1D",
            "Conv1DTranspose", "Conv3D", "Convolution3D", "Conv3DTranspose", "DepthwiseConv1D",
            "SeparableConv1D", "SeparableConvolution1D", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"}
_SUPPORTED = sorted(_CONV2D | _DEPTHWISE | _SEPARABLE)
_CONTAINERS = {"Functional", "Sequential", "Model"}
#: What a catalog entry may map a layer to (``keras_layer_classes``): a known class, or ``skip``.
MAPPABLE = tuple(sorted(_CONV2D | _DEPTHWISE | _SEPARABLE | _SKIPPED)) + ("skip",)
_MAPPING_HINT = "Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose or skip"


def _snake(name: str) -> str:
    """Keras 3's group name for a class (``keras.src.utils.naming.to_snake_case``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


_CLASS_OF_SNAKE = {_snake(c): c for c in _CONV2D | _DEPTHWISE | _SEPARABLE | _SKIPPED}


def class_from_name(name: str | None) -> str | None:
    """The class of a layer Keras named itself (``conv2d_3`` -> Conv2D), else None."""
    if not name:
        return None
    return _CLASS_OF_SNAKE.get(re.sub(r"_\d+$", "", name.rsplit("/", 1)[-1]))


@dataclass
class _Layer:
    """One layer's weights as found in the file, before layout conversion."""

    name: str
    cls: str | None
    config: dict
    variables: list  # h5py datasets in the layer's own order
    var_names: list[str] | None = None  # Keras 2 names ('kernel', 'bias', ...); None in Keras 3
    order: tuple = field(default_factory=tuple)
    where: str | None = None  # the group path, for errors and for the entry's mapping

    def var(self, names: tuple[str, ...], index: int):
        """The weight called one of ``names`` (Keras 2 names them), else the index-th 4-D one."""
        if self.var_names is not None:
            for wanted in names:
                for n, v in zip(self.var_names, self.variables):
                    if n == wanted:
                        return v
        four_d = [v for v in self.variables if len(v.shape) == 4]
        return four_d[index] if index < len(four_d) else None


@register("keras", options=("layer_classes",))
def read_keras(path: Path, layer_classes: dict[str, str] | None = None) -> ModelConvs:
    import h5py

    path = Path(path)
    layer_classes = _checked_mapping(dict(layer_classes or {}), path)
    if zipfile.is_zipfile(path):
        return _read_keras_archive(path, layer_classes)
    if not h5py.is_hdf5(path):
        raise FormatError(f"{path}: not a Keras file (neither an HDF5 file nor a .keras zip archive)"
                          f"{mismatch_hint(path, 'keras')}")
    try:
        with open_contained(path) as f:
            return _read_h5(f, path, config=None, keras_version=None, layer_classes=layer_classes)
    except OSError as exc:
        raise FormatError(f"{path}: not a readable HDF5 file ({exc})") from None


def _checked_mapping(mapping: dict, path: Path) -> dict[str, str]:
    for key, value in mapping.items():
        if value not in MAPPABLE:
            raise FormatError(f"{path}: keras_layer_classes: {key!r} maps to {value!r}; expected one of "
                              f"{', '.join(MAPPABLE)}")
    return mapping


def _read_keras_archive(path: Path, layer_classes: dict[str, str]) -> ModelConvs:
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "model.weights.h5" not in names or "config.json" not in names:
                raise FormatError(f"{path}: not a .keras archive (expected config.json and model.weights.h5 "
                                  f"in the zip){mismatch_hint(path, 'keras')}")
            try:
                config = json.loads(zf.read("config.json"))
                meta = json.loads(zf.read("metadata.json")) if "metadata.json" in names else {}
            except ValueError as exc:
                raise FormatError(f"{path}: config.json of the .keras archive is not JSON ({exc})") from None
            # h5py needs a seekable file; a temporary copy keeps memory bounded for big models
            with tempfile.TemporaryDirectory(prefix="cnn-filter-db-keras-") as tmp:
                weights = Path(tmp) / "model.weights.h5"
                with zf.open("model.weights.h5") as src, open(weights, "wb") as dst:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        dst.write(block)
                try:
                    with open_contained(weights, f"{path} (model.weights.h5)") as f:
                        return _read_h5(f, path, config=config, keras_version=meta.get("keras_version"),
                                        layer_classes=layer_classes)
                except OSError as exc:
                    raise FormatError(f"{path}: model.weights.h5 in the archive is not readable HDF5 ({exc})") from None
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as exc:
        raise FormatError(f"{path}: not a readable .keras zip archive ({exc})") from None


def is_keras3_weights(f) -> bool:
    """A Keras 3 weights file: a ``vars`` group at the root, or a ``layers`` group."""
    import h5py

    return any(isinstance(f.get(k, getlink=True), h5py.HardLink) and isinstance(f.get(k), h5py.Group)
               for k in ("vars", "layers") if k in f)


def _read_h5(f, path: Path, config: dict | None, keras_version: str | None,
             layer_classes: dict[str, str]) -> ModelConvs:
    import h5py

    if "model_weights" in f or "layer_names" in f.attrs:
        layers, version = _keras2_layers(f, path)
        keras_version = keras_version or version
    elif is_keras3_weights(f):
        layers = _keras3_layers(f, path, config)
    else:
        raise FormatError(f"{path}: not a Keras weights file (no model_weights group, layer_names attribute, "
                          f"layers or vars group){mismatch_hint(path, 'keras')}")
    layers.sort(key=lambda layer: layer.order)
    unknown = set(layer_classes) - {k for layer in layers for k in (layer.name, layer.where)}
    if unknown:
        raise FormatError(f"{path}: keras_layer_classes names layers the file does not have: {sorted(unknown)} "
                          f"(a layer is named by its name or its group path, e.g. "
                          f"{[layer.where or layer.name for layer in layers][:3]})")
    convs: list[Conv] = []
    for layer in layers:
        _apply_mapping(layer, layer_classes)
        convs.extend(_layer_convs(layer, path, len(convs)))
    versions = {"h5py": h5py.__version__}
    if keras_version:
        versions["keras (writer)"] = str(keras_version)
    return ModelConvs(convs=convs, format="keras", framework_versions=versions)


def _apply_mapping(layer: _Layer, mapping: dict[str, str]) -> None:
    """The entry's mapping wins (by layer name or group path); else the names tell, if they can."""
    for key in (layer.name, layer.where):
        if key is not None and key in mapping:
            layer.cls = mapping[key]
            return
    if layer.cls is None:
        layer.cls = class_from_name(layer.name) or _class_from_var_names(layer.var_names)


def _class_from_var_names(names: list[str] | None) -> str | None:
    if not names:
        return None
    if "depthwise_kernel" in names and "pointwise_kernel" in names:
        return "SeparableConv2D"
    if "depthwise_kernel" in names:
        return "DepthwiseConv2D"
    return None


# --------------------------------------------------------------------------- Keras 2

def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _keras2_layers(f, path: Path) -> tuple[list[_Layer], str | None]:
    root = f["model_weights"] if "model_weights" in f else f
    try:
        layer_names = [_text(x) for x in root.attrs["layer_names"]]
    except KeyError:
        raise FormatError(f"{path}: the Keras 2 weights group has no layer_names attribute") from None
    config_index = {}
    if "model_config" in f.attrs:
        try:
            model_config = json.loads(_text(f.attrs["model_config"]))
        except ValueError as exc:
            raise FormatError(f"{path}: the model_config attribute is not JSON ({exc})") from None
        config_index = _index_config(_config_layers(model_config))
    by_last = _unique_last_names(config_index)
    layers: dict[tuple, _Layer] = {}
    for top in layer_names:
        if top not in root:
            raise FormatError(f"{path}: layer {top!r} is listed in layer_names but has no group")
        group = root[top]
        nested = _is_nested(top, config_index)
        for wname in (_text(x) for x in group.attrs.get("weight_names", [])):
            try:
                ds = group[wname]
            except KeyError:
                raise FormatError(f"{path}: weight {top}/{wname} is listed but missing") from None
            key = _keras2_owner(top, wname, nested, config_index)
            if key not in layers:
                order, cls, cfg = config_index.get(key) or (
                    by_last.get(key[-1]) if len(key) > 1 else None) or (None, None, {})
                layers[key] = _Layer(name="/".join(key[1:] if len(key) > 1 else key), cls=cls, config=cfg,
                                     variables=[], var_names=[], where="/".join(key),
                                     order=(0, order) if order is not None else (1, len(layers)))
            layers[key].variables.append(ds)
            layers[key].var_names.append(wname.split("/")[-1].split(":")[0])
    version = _text(f.attrs["keras_version"]) if "keras_version" in f.attrs else None
    if (version is None or version.startswith("1.")) and any(
            re.search(r"_W$", n) for layer in layers.values() for n in layer.var_names):
        # Keras 1 stored kernels in the backend's dim ordering (Theano: out, in, kh, kw), which
        # the file does not record
        raise FormatError(f"{path}: a Keras 1 file (weights named like 'conv_W'): its kernel layout depends on the "
                          f"dim ordering it was saved with, which the file does not record; re-save it with Keras 2")
    return list(layers.values()), version


def _unsuffixed(name: str) -> str:
    return re.sub(r"_\d+$", "", name)


def _is_nested(top: str, config_index: dict) -> bool | None:
    """Whether the layer ``top`` is itself a model (True/False), or None without a config."""
    if not config_index:
        return None
    entry = config_index.get((top,))
    return entry is not None and (entry[1] in _CONTAINERS or any(len(k) > 1 and k[0] == top for k in config_index))


def _keras2_owner(top: str, wname: str, nested: bool | None, config_index: dict) -> tuple:
    """The layer (names from the top model down) a weight of group ``top`` belongs to."""
    prefix = wname.split("/")[:-1]
    if prefix and prefix[0] in (top,) and (nested is not True or len(prefix) > 1):
        prefix = prefix[1:]  # 'conv1/kernel:0' or, in a nested model, 'backbone/dwise/...'
    if nested is False or not prefix:
        return (top,)
    if nested is None and _unsuffixed(prefix[0]) == _unsuffixed(top):
        return (top,)  # no config: 'conv1_1/kernel:0' in group conv1 is conv1's own weight
    key = (top, *prefix)
    if key in config_index or nested is None:
        return key
    # Keras 2.0-2.2 uniquified scopes: 'dwise_1' for the inner layer 'dwise'
    plain = (top, *(_unsuffixed(p) for p in prefix))
    return plain if plain in config_index else key


def _config_layers(model_config) -> list:
    """The layer list of a model config (Keras 2 Sequential configs may be the list itself)."""
    cfg = model_config.get("config", model_config) if isinstance(model_config, dict) else model_config
    if isinstance(cfg, list):
        return cfg
    if isinstance(cfg, dict) and isinstance(cfg.get("layers"), list):
        return cfg["layers"]
    return []


def _layer_name(layer_config: dict) -> str:
    cfg = layer_config.get("config")
    return str((cfg.get("name") if isinstance(cfg, dict) else None) or layer_config.get("name") or "")


def _index_config(layer_configs: list) -> dict[tuple, tuple[int, str, dict]]:
    """(names from the top model down) -> (depth-first position, class name, layer config)."""
    index: dict[tuple, tuple[int, str, dict]] = {}

    def walk(items, prefix):
        for lc in items:
            if not isinstance(lc, dict):
                continue
            name = _layer_name(lc)
            cfg = lc.get("config") if isinstance(lc.get("config"), dict) else {}
            index[prefix + (name,)] = (len(index), str(lc.get("class_name")), cfg)
            inner = _config_layers(lc)
            if inner:
                walk(inner, prefix + (name,))

    walk(layer_configs, ())
    return index


def _unique_last_names(index: dict) -> dict:
    counts: dict[str, int] = {}
    for key in index:
        counts[key[-1]] = counts.get(key[-1], 0) + 1
    return {key[-1]: value for key, value in index.items() if counts[key[-1]] == 1}


# --------------------------------------------------------------------------- Keras 3

def _vars_groups(f) -> list[str]:
    """Every ``vars`` group of the file but the optimizer's, in natural order of the paths."""
    import h5py

    found: list[str] = []

    def visit(name, obj):
        if isinstance(obj, h5py.Group) and name.rsplit("/", 1)[-1] == "vars" and name.split("/")[0] != "optimizer":
            found.append(name)

    f.visititems(visit)
    return sorted(found, key=natural_key)


def _keras3_layers(f, path: Path, config: dict | None) -> list[_Layer]:
    """Every ``vars`` group, matched to its entry of the config where there is one.

    Keras 3 names the groups of a functional model after the layer class (``layers/conv2d``,
    ``layers/conv2d_1``, ...) and, in recent versions, stores the layer name as the ``name``
    attribute of ``vars``. A group is matched by that name where the config holds it once;
    else by rebuilding Keras's group path from the config (class names made unique in layer
    order, as Keras does). Unmatched groups get their class from Keras's generated names.
    """
    entries: list[tuple[int, str, dict, str, str]] = []  # (position, class, config, name, vars path)
    if config is not None:
        def walk(items, prefix):
            used: dict[str, int] = {}
            for lc in items:
                if not isinstance(lc, dict):
                    continue
                cls = str(lc.get("class_name"))
                key = _snake(cls)
                if key in used:  # keras.src.saving.saving_lib._get_unique_name
                    used[key] += 1
                    key = f"{key}_{used[key]}"
                else:
                    used[key] = 0
                gpath = f"{prefix}layers/{key}"
                cfg = lc.get("config") if isinstance(lc.get("config"), dict) else {}
                entries.append((len(entries), cls, cfg, _layer_name(lc), f"{gpath}/vars"))
                inner = _config_layers(lc)
                if inner:
                    walk(inner, f"{gpath}/")

        walk(_config_layers(config), "")
    by_path = {e[4]: e for e in entries}
    name_counts: dict[str, int] = {}
    for e in entries:
        name_counts[e[3]] = name_counts.get(e[3], 0) + 1
    by_name = {e[3]: e for e in entries if name_counts[e[3]] == 1}

    groups = _vars_groups(f)
    stored = {g: (_text(f[g].attrs["name"]) if "name" in f[g].attrs else None) for g in groups}
    stored_counts: dict[str | None, int] = {}
    for name in stored.values():
        stored_counts[name] = stored_counts.get(name, 0) + 1
    layers = []
    for gpath in groups:
        group = f[gpath]
        keys = sorted((k for k in group.keys() if k.isdigit()), key=int)
        variables = [group[k] for k in keys]
        if not variables:
            continue
        owner = gpath.rsplit("/", 1)[0] if "/" in gpath else ""
        stored_name = stored[gpath]
        entry = by_name.get(stored_name) if stored_name else None
        if entry is None and gpath in by_path and stored_name in (None, by_path[gpath][3]):
            entry = by_path[gpath]
        if entry is not None:
            pos, cls, cfg, cname, _ = entry
            layers.append(_Layer(name=cname or stored_name or owner, cls=cls, config=cfg,
                                 variables=variables, order=(0, pos), where=owner))
            continue
        # No config entry: Keras names the groups of layer lists ('layers/conv2d_1',
        # '<block>/stack/conv2d') after the class; an attribute's group has the attribute's
        # name, and then the layer's own name tells if Keras generated it ('conv2d_3');
        # else the entry must say.
        cls = class_from_name(owner.rsplit("/", 1)[-1]) or class_from_name(stored_name)
        unique = stored_name is not None and stored_counts[stored_name] == 1
        layers.append(_Layer(name=stored_name if unique else (owner or stored_name or gpath), cls=cls, config={},
                             variables=variables, order=(1, natural_key(gpath)), where=owner or gpath))
    return layers


# --------------------------------------------------------------------------- layouts

def _array(ds, path: Path, where: str) -> np.ndarray:
    try:
        value = ds[()]
    except OSError as exc:  # truncated data
        raise FormatError(f"{path}: {where}: the weights cannot be read ({exc})") from None
    if not np.issubdtype(value.dtype, np.floating):
        raise FormatError(f"{path}: {where}: kernel of dtype {value.dtype}; only floating-point kernels are "
                          f"supported (quantised Keras layers are not)")
    return value


def _layer_convs(layer: _Layer, path: Path, level: int) -> list[Conv]:
    four_d = [v for v in layer.variables if len(v.shape) == 4]
    cls = layer.cls
    where = f"layer {layer.name!r}" + (f" ({cls})" if cls else "")
    if cls in _SKIPPED or cls == "skip" or not four_d:
        return []
    if cls in _CONV2D:
        k = _array(_need(layer.var(("kernel",), 0), path, where, "kernel"), path, where)
        _check_rank(k, path, where)
        groups = int(layer.config.get("groups", 1)) if layer.config else None
        return [Conv(layer.name, _hwio(k), groups=groups, level=level)]
    if cls in _DEPTHWISE:
        k = _array(_need(layer.var(("depthwise_kernel", "kernel"), 0), path, where, "depthwise kernel"), path, where)
        _check_rank(k, path, where)
        return [Conv(layer.name, _depthwise(k), groups=int(k.shape[2]), level=level, kind="depthwise")]
    if cls in _SEPARABLE:
        dk = _array(_need(layer.var(("depthwise_kernel",), 0), path, where, "depthwise kernel"), path, where)
        pk = _array(_need(layer.var(("pointwise_kernel",), 1), path, where, "pointwise kernel"), path, where)
        _check_rank(dk, path, where)
        _check_rank(pk, path, where)
        return [Conv(f"{layer.name}/depthwise", _depthwise(dk), groups=int(dk.shape[2]), level=level, kind="depthwise"),
                Conv(f"{layer.name}/pointwise", _hwio(pk), groups=1, level=level + 1, kind="dense")]
    shown = f"layer {layer.name!r}" + (f" (group {layer.where})" if layer.where and layer.where != layer.name else "")
    if cls is None:
        key = layer.where or layer.name
        raise FormatError(f"{path}: {shown} holds a 4-D weight of shape {tuple(four_d[0].shape)}, but no config or "
                          f"Keras-generated name tells its class, so its kernel layout cannot be known; say it in "
                          f"the catalog entry: `keras_layer_classes: {{{key!r}: Conv2D}}` (or {_MAPPING_HINT})")
    raise FormatError(f"{path}: unsupported layer type: {shown} is a {cls} holding a 4-D weight; its kernel "
                      f"layout cannot be known (supported 2-D convolutions: {', '.join(_SUPPORTED)}; a catalog "
                      f"entry may map the layer with `keras_layer_classes: {{{(layer.where or layer.name)!r}: skip}}`)")


def _need(ds, path: Path, where: str, what: str):
    if ds is None:
        raise FormatError(f"{path}: {where}: no {what} among its weights")
    return ds


def _check_rank(k: np.ndarray, path: Path, where: str) -> None:
    if k.ndim != 4:
        raise FormatError(f"{path}: {where}: expected a 4-D kernel, got shape {k.shape}")


def _hwio(k: np.ndarray) -> np.ndarray:
    """(kh, kw, in, out) -> (out, in, kh, kw)."""
    return np.ascontiguousarray(k.transpose(3, 2, 0, 1), dtype=np.float32)


def _depthwise(k: np.ndarray) -> np.ndarray:
    """(kh, kw, C, mult) -> (C*mult, 1, kh, kw); output channel c*mult + m, as Keras orders them."""
    kh, kw, c, mult = k.shape
    return np.ascontiguousarray(k.reshape(kh, kw, c * mult).transpose(2, 0, 1)[:, None], dtype=np.float32)
