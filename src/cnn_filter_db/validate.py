"""Validate a release folder with Great Expectations: models, layers, filters, manifest.

The expectation suites live in ``cnn_filter_db/validation/<table>.py`` (package data), one module a
table, each with ``KEYS`` (the columns that name an offending row) and
``expectations(vocabulary, params)``. This module builds the frame each suite runs on
(the metadata tables as published plus a few derived columns; the filters through a
streaming per-layer summary, see ``filter_scan``), runs one Checkpoint a table on an
ephemeral Great Expectations context, and turns the results into a short report.

Examples
--------
>>> result = validate_release("dist/cnn-filter-db", "reports/validation")  # doctest: +SKIP
>>> print(result.summary()); result.success
"""
from __future__ import annotations

import importlib.util
import json
import logging
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Mapping

import pandas as pd

from . import config
from .atomic import atomic_dir, atomic_write_text
from .vocabulary import load_vocabulary
from .dataset import layout, reader, shard
from .dataset.manifest import fingerprint, read_manifest
from .errors import CnnFilterDbError
from .filter_scan import scan_filters
from .hashing import sha256_file
from .params import RunOptions, ValidateParams
from .progress import bar as progress_bar

TABLES = ("models", "layers", "filters", "manifest")
MAX_EXAMPLES = 5
_DOCS_SITE = "local_site"


# --------------------------------------------------------------------------- results

@dataclass
class Failure:
    """One failed expectation: where, what, how many rows, and up to five example keys."""

    table: str
    expectation: str
    column: str
    description: str
    unexpected_count: int | None = None
    element_count: int | None = None
    examples: list[dict] = field(default_factory=list)
    observed: Any = None
    expected: dict | None = None
    exception: str | None = None

    def lines(self) -> list[str]:
        what = f"{self.description} [{self.expectation}({self.column})]"
        if self.exception:
            return [f"    x {what}: raised {self.exception}"]
        if self.unexpected_count is not None and self.element_count is not None:
            head = f"    x {what}: {self.unexpected_count:,} of {self.element_count:,} rows"
        else:  # a table- or column-level expectation: what was seen against what was expected
            head = f"    x {what}: observed {_short(self.observed)}, expected {_short(self.expected)}"
        return [head] + [f"        {_format_example(e)}" for e in self.examples]


@dataclass
class TableResult:
    table: str
    success: bool | None  # None: skipped
    evaluated: int = 0
    rows: int = 0
    failures: list[Failure] = field(default_factory=list)
    note: str = ""


@dataclass
class Result:
    """What ``validate_release`` found; ``success`` is False when any expectation failed."""

    release_dir: Path
    tables: dict[str, TableResult]
    stats: dict[str, Any]
    reports_dir: Path | None = None

    @property
    def success(self) -> bool:
        return all(t.success is not False for t in self.tables.values())

    @property
    def failures(self) -> list[Failure]:
        return [f for t in self.tables.values() for f in t.failures]

    def metrics(self) -> dict:
        """The DVC metric: success and counts. Timings stay out (``stats``): a metric that
        changes on every run would make a reproduced, unchanged pipeline look dirty."""
        return {
            "success": self.success,
            "evaluated_expectations": sum(t.evaluated for t in self.tables.values()),
            "failed_expectations": len(self.failures),
            "tables": {name: {"success": t.success, "rows": t.rows, "failed": len(t.failures)}
                       for name, t in self.tables.items()},
            **{k: v for k, v in self.stats.items() if not k.endswith("seconds")},
        }

    def summary(self) -> str:
        """A short report: per table ok / FAILED / skipped, and for each failed expectation
        how many rows and up to five example keys."""
        evaluated = sum(t.evaluated for t in self.tables.values())
        status = "ok" if self.success else f"FAILED ({len(self.failures)} of {evaluated} expectations)"
        out = [f"validate {self.release_dir}: {status}"]
        for name, t in self.tables.items():
            if t.success is None:
                out.append(f"  {name:<9} skipped: {t.note}")
                continue
            state = "ok" if t.success else f"FAILED {len(t.failures)} of"
            unit = {"filters": "layers"}.get(name, "files" if name == "manifest" else "rows")
            extra = f" ({t.note})" if t.note else ""
            out.append(f"  {name:<9} {state} {t.evaluated} expectations on {t.rows:,} {unit}{extra}")
            for f in t.failures:
                out.extend(f.lines())
        if self.reports_dir is not None:
            docs = self.reports_dir / "data_docs" / "index.html"
            out.append(f"  reports   {self.reports_dir}" + (f" (Data Docs: {docs})" if docs.exists() else ""))
        return "\n".join(out)


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _format_example(example: dict) -> str:
    def fmt(v):
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    return " ".join(f"{k}={fmt(v)}" for k, v in example.items())


# --------------------------------------------------------------------------- suites

def load_suites(root: Path = Path(".")) -> dict[str, ModuleType]:
    """The suite modules ``cnn_filter_db/validation/<table>.py`` (package data), by table."""
    suites = {}
    for table in TABLES:
        path = Path(root) / config.VALIDATION_DIR / f"{table}.py"
        if not path.exists():
            raise FileNotFoundError(f"{path}: expectation suite of table {table!r} not found (the package is incomplete: reinstall it)")
        spec = importlib.util.spec_from_file_location(f"cnn_filter_db_suites.{table}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        suites[table] = module
    return suites


# --------------------------------------------------------------------------- frames

def models_frame(models: pd.DataFrame, layers: pd.DataFrame) -> pd.DataFrame:
    """``models`` plus layers_n_layers and layers_n_filters, counted from ``layers``.
    (A frame missing the columns they need is returned as is: the suite reports the gap.)"""
    if "model_id" not in models or not {"model_id", "out_channels", "in_channels_per_group"} <= set(layers):
        return models
    grid = layers["out_channels"].astype("float64") * layers["in_channels_per_group"].astype("float64")
    per_model = pd.DataFrame({"model_id": layers["model_id"], "grid": grid}).groupby("model_id")["grid"]
    frame = models.copy()
    frame["layers_n_layers"] = frame["model_id"].map(per_model.size()).fillna(0).astype("int64")
    frame["layers_n_filters"] = frame["model_id"].map(per_model.sum()).fillna(0).astype("int64")
    return frame


def layers_frame(layers: pd.DataFrame) -> pd.DataFrame:
    """``layers`` plus grid_filters = out_channels * in_channels_per_group."""
    frame = layers.copy()
    if not {"out_channels", "in_channels_per_group"} <= set(frame):
        return frame
    frame["grid_filters"] = frame["out_channels"].astype("float64") * frame["in_channels_per_group"].astype("float64")
    return frame


def layer_shapes(layers: pd.DataFrame) -> dict[tuple[str, int], tuple[int, int]]:
    """(model_id, layer_id) -> (out_channels, in_channels_per_group), rows with nulls left out."""
    columns = ["model_id", "layer_id", "out_channels", "in_channels_per_group"]
    if not set(columns) <= set(layers):
        return {}  # the layers suite reports the missing columns
    known = layers.dropna(subset=columns)
    return {(str(m), int(l)): (int(o), int(i)) for m, l, o, i in
            zip(known["model_id"], known["layer_id"], known["out_channels"], known["in_channels_per_group"])}


def manifest_frame(release_dir: Path, manifest) -> tuple[pd.DataFrame, str]:
    """One row a file, recorded in the manifest (shards and card files) or on disk (every
    visible file but manifest.json, so stray files show as unlisted), and the fingerprint
    recomputed from the shards on disk."""
    release_dir = Path(release_dir)
    recorded = manifest.recorded()
    rows_recorded = {s.path: s.rows for s in manifest.shards}
    on_disk = set(layout.release_files(release_dir)) - {layout.MANIFEST}
    shards = {p.relative_to(release_dir).as_posix() for p in layout.list_shards(release_dir)}
    actual_sha = {rel: sha256_file(release_dir / rel) for rel in sorted(on_disk)}
    rows = []
    for rel in sorted(set(recorded) | on_disk):
        n_rows = None
        if rel in shards:
            try:
                n_rows = shard.open_shard(release_dir / rel).metadata.num_rows
            except CnnFilterDbError:
                pass
        rows.append({
            "path": rel, "listed": rel in recorded, "exists": rel in on_disk,
            "sha256_recorded": recorded.get(rel), "sha256_actual": actual_sha.get(rel),
            "rows_recorded": rows_recorded.get(rel), "rows_actual": n_rows,
            "fingerprint_recorded": manifest.fingerprint,
        })
    frame = pd.DataFrame(rows, columns=["path", "listed", "exists", "sha256_recorded", "sha256_actual",
                                        "rows_recorded", "rows_actual", "fingerprint_recorded"])
    frame["rows_recorded"] = frame["rows_recorded"].astype("float64")
    frame["rows_actual"] = frame["rows_actual"].astype("float64")
    return frame, fingerprint(actual_sha[rel] for rel in shards)


# --------------------------------------------------------------------------- Great Expectations

@contextmanager
def _quiet():
    """GX logs and warns a lot at INFO/WARNING level; the report says what matters."""
    loggers = [logging.getLogger(n) for n in ("great_expectations", "py.warnings")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _context(docs_dir: Path | None):
    """An ephemeral context: in-memory stores, no analytics, no progress bars."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (DataContextConfig, InMemoryStoreBackendDefaults,
                                                            ProgressBarsConfig)

    sites = {}
    if docs_dir is not None:
        sites[_DOCS_SITE] = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    cfg = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(), data_docs_sites=sites,
                            analytics_enabled=False,
                            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False))
    return gx.get_context(mode="ephemeral", project_config=cfg)


def _checkpoint(context, table: str, suite_module: ModuleType, vocabulary: dict, params: ValidateParams):
    """One Checkpoint a table: each runs on its own frame (a Checkpoint hands the same
    batch parameters to all its validation definitions). Its results stay in the context's
    in-memory store, from which Data Docs are built once at the end."""
    import great_expectations as gx

    batch = (context.data_sources.add_pandas(f"release-{table}")
             .add_dataframe_asset(table).add_batch_definition_whole_dataframe("whole table"))
    suite = context.suites.add(gx.ExpectationSuite(name=table, meta={"source": f"validation/{table}.py"}))
    for expectation in suite_module.expectations(vocabulary, params):
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=table, data=batch, suite=suite))
    return context.checkpoints.add(gx.Checkpoint(
        name=table, validation_definitions=[definition],
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": list(suite_module.KEYS),
                       "partial_unexpected_count": MAX_EXAMPLES, "return_unexpected_index_query": False}))


def _column_of(kwargs: dict) -> str:
    for key in ("column", "column_list"):
        if key in kwargs:
            v = kwargs[key]
            return ",".join(v) if isinstance(v, list) else str(v)
    if "column_A" in kwargs:
        return f"{kwargs['column_A']},{kwargs['column_B']}"
    return "table"


def _exception_message(info: dict) -> str | None:
    """GX reports an exception either flat or keyed by the metric that raised it."""
    if info.get("raised_exception"):
        return info.get("exception_message")
    messages = [v.get("exception_message") for v in info.values() if isinstance(v, dict)]
    return "; ".join(sorted({m for m in messages if m})) or None


def _observed(res: dict) -> Any:
    mismatched = (res.get("details") or {}).get("mismatched")
    if isinstance(mismatched, dict) and mismatched.get("missing"):
        return {"missing columns": mismatched["missing"]}
    if res.get("observed_value") is not None:
        return res["observed_value"]
    return res.get("partial_unexpected_list")  # set expectations list what they saw there


def _failure(table: str, r, keys: list[str]) -> Failure:
    cfg = r.expectation_config
    kwargs = cfg.kwargs
    column = _column_of(kwargs)
    res = r.result or {}
    raised = _exception_message(r.exception_info or {})
    examples = []
    for item in (res.get("unexpected_index_list") or [])[:MAX_EXAMPLES]:
        # the keys first, then the offending value(s); skip columns that only repeat a key
        examples.append({k: item[k] for k in keys if k in item} |
                        {k: v for k, v in item.items() if k not in keys})
    return Failure(table=table, expectation=cfg.type, column=column,
                   description=cfg.description or cfg.type, exception=raised,
                   unexpected_count=res.get("unexpected_count"), element_count=res.get("element_count"),
                   examples=examples,
                   observed=_observed(res),
                   expected={k: v for k, v in kwargs.items() if k not in ("batch_id", "column", "column_list")})


def _run(context, table: str, suite_module: ModuleType, frame: pd.DataFrame, vocabulary: dict,
         params: ValidateParams, expectation_parameters: dict) -> tuple[TableResult, dict]:
    checkpoint = _checkpoint(context, table, suite_module, vocabulary, params)
    result = checkpoint.run(batch_parameters={"dataframe": frame}, expectation_parameters=expectation_parameters)
    (suite_result,) = result.run_results.values()
    keys = list(suite_module.KEYS)
    failures = [_failure(table, r, keys) for r in suite_result.results if not r.success]
    table_result = TableResult(table, success=bool(result.success), evaluated=len(suite_result.results),
                               rows=len(frame), failures=failures)
    payload = {
        "checkpoint": result.name,
        "success": bool(result.success),
        "statistics": result.describe_dict()["statistics"],
        "run_results": [_without_run_stamps(r.to_json_dict()) for r in result.run_results.values()],
    }
    return table_result, payload


#: Fields of Great Expectations' results that change on every run (clock times, random ids):
#: left out, so that the written results change only when the data or the suites do.
_RUN_STAMPS = {"run_id", "run_time", "validation_time", "ge_load_time", "id", "validation_id", "checkpoint_id",
               "batch_id"}


def _without_run_stamps(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_run_stamps(v) for k, v in value.items() if k not in _RUN_STAMPS}
    if isinstance(value, list):
        return [_without_run_stamps(v) for v in value]
    return value


# --------------------------------------------------------------------------- entry point

def validate_release(release_dir: Path = config.RELEASE_DIR, reports_dir: Path | None = None,
                     params: ValidateParams | Mapping[str, Any] | None = None, root: Path = Path("."),
                     tables: Iterable[str] = TABLES, require_manifest: bool = False,
                     data_docs: bool = RunOptions.data_docs) -> Result:
    """Run the expectation suites of ``validation/`` on a release folder.

    Parameters
    ----------
    release_dir : the release folder (filters/, layers/, models/, optionally manifest.json).
    reports_dir : where to write ``<table>.json`` (the Checkpoint results), ``metrics.json``
        and ``data_docs/``; nothing is written when None.
    params : the ``validate`` params group (``ValidateParams`` or a mapping).
    root : the project root holding ``validation/`` and ``catalog/vocabulary.yaml``.
    tables : the suites to run (the release stage may run ``["manifest"]`` only).
    require_manifest : a missing manifest.json is an error instead of a skipped suite (for
        the release stage, which has just written it).
    data_docs : also build the Data Docs HTML site under ``reports_dir`` (a run option).

    Returns
    -------
    Result, with ``success``, ``failures`` and ``summary()``. The manifest suite is skipped,
    with a note, when the folder has no manifest.json yet.
    """
    t0 = time.perf_counter()
    release_dir = Path(release_dir)
    params = ValidateParams.of(params)
    tables = list(tables)
    unknown = set(tables) - set(TABLES)
    if unknown:
        raise CnnFilterDbError(f"validate: unknown tables {sorted(unknown)}; known: {list(TABLES)}")
    tables = [t for t in TABLES if t in tables]
    if not release_dir.is_dir():
        raise FileNotFoundError(f"{release_dir}: no such release folder")
    suites = load_suites(root)
    vocabulary = load_vocabulary(root)

    need_meta = any(t in tables for t in ("models", "layers", "filters"))
    models = reader.read_table(release_dir, "models", verify=False).to_pandas() if need_meta else None
    layers = reader.read_table(release_dir, "layers", verify=False).to_pandas() if need_meta else None

    frames: dict[str, pd.DataFrame] = {}
    expectation_parameters: dict[str, Any] = {}
    notes: dict[str, str] = {}
    stats: dict[str, Any] = {}
    if "models" in tables:
        frames["models"] = models_frame(models, layers)
    if "layers" in tables:
        frames["layers"] = layers_frame(layers)
        ids = models["model_id"].dropna().astype(str).unique() if "model_id" in models else []
        expectation_parameters["model_ids"] = sorted(ids)
    if "filters" in tables:
        t_scan = time.perf_counter()
        scan = scan_filters(release_dir, layer_shapes(layers))
        frames["filters"] = scan.frame()
        stats.update(filters=scan.rows_, shards=scan.shards_, scan_seconds=round(time.perf_counter() - t_scan, 3))
        notes["filters"] = f"summary of {scan.rows_:,} filters in {scan.shards_} shards"
    skipped: dict[str, str] = {}
    if "manifest" in tables:
        path = release_dir / layout.MANIFEST
        if path.exists():
            manifest = read_manifest(path)
            frames["manifest"], expectation_parameters["fingerprint_recomputed"] = manifest_frame(release_dir, manifest)
            expectation_parameters["fingerprint_recomputed"] = [expectation_parameters["fingerprint_recomputed"]]
        elif require_manifest:
            raise FileNotFoundError(f"{path}: no manifest; the release stage writes it")
        else:
            skipped["manifest"] = "no manifest.json yet (the release stage writes it)"

    if reports_dir is not None:
        reports_dir = Path(reports_dir).resolve()  # GX's Data Docs store needs an absolute path
    docs = reports_dir is not None and data_docs
    results: dict[str, TableResult] = {}
    json_results: dict[str, dict] = {}
    with _quiet(), _docs_dir(reports_dir, docs) as docs_dir:
        context = _context(docs_dir)
        for table in progress_bar(tables, desc="validate: run the suites", unit="table"):
            if table in skipped:
                results[table] = TableResult(table, success=None, note=skipped[table])
                json_results[table] = {"success": None, "skipped": True, "note": skipped[table]}
                continue
            results[table], json_results[table] = _run(context, table, suites[table], frames[table], vocabulary,
                                                       params, expectation_parameters)
            results[table].note = notes.get(table, "")
        if docs_dir is not None:
            context.build_data_docs(site_names=[_DOCS_SITE])
    stats["seconds"] = round(time.perf_counter() - t0, 3)
    result = Result(release_dir, results, stats, Path(reports_dir) if reports_dir is not None else None)
    if reports_dir is not None:
        write_reports(result, json_results, Path(reports_dir))
    return result


@contextmanager
def _docs_dir(reports_dir: Path | None, enabled: bool):
    """A temporary folder for the Data Docs, renamed to ``reports_dir/data_docs`` on success."""
    if reports_dir is None or not enabled:
        yield None
        return
    with atomic_dir(Path(reports_dir) / "data_docs") as tmp:
        yield tmp


def write_reports(result: Result, json_results: dict[str, dict], reports_dir: Path) -> None:
    """``<table>.json`` (Checkpoint results, one a table, always all of them so that DVC finds
    its outputs) and ``metrics.json`` (the success metric), each written atomically. Neither
    holds a clock time: a rebuild of unchanged data writes the same bytes. (The Data Docs
    site does; it is a report, not a DVC output.)"""
    for table, payload in json_results.items():
        atomic_write_text(reports_dir / f"{table}.json", json.dumps(payload, indent=2, default=str) + "\n")
    atomic_write_text(reports_dir / "metrics.json", json.dumps(result.metrics(), indent=2) + "\n")
