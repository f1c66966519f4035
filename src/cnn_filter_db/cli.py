"""The ``cnn-filter-db`` command line. Each command is a thin wrapper over the library;
the DVC stages in ``stages/`` call these same commands."""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from . import __version__, config
from .errors import CnnFilterDbError
from .params import AnalyzeParams, ExtractParams, ReleaseParams, RunOptions, TrainParams, ValidateParams, load_params
from .progress import bar

DESCRIPTION = """\
Build, check, analyse and publish cnn-filter-db, a versioned dataset of trained 3x3
convolution filters (one row a filter, Parquet shards, a Hugging Face Hub dataset).

Reading a release needs no command: `from cnn_filter_db import load_layer, load_model,
load_filters`, or `datasets.load_dataset`. These commands build and maintain it; most
run inside a checkout of the repository (`--root`), under `dvc repro`."""

EPILOG = """\
the usual order: catalog add -> catalog validate -> dvc repro (extract, gather, validate,
analyze, release --build-only) -> release -> publish. `COMMAND --help` explains each."""

VERSION = (f"cnn-filter-db {__version__} (the package; a dataset release has its own version, "
           "release.version in params.yaml, written into its manifest.json and card)")


def _print_problems(problems) -> None:
    for file, field, msg in problems:
        print(f"{file}: {field}: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------- catalog

def cmd_catalog_validate(args) -> int:
    from .catalog import validate_catalog

    entries, problems = validate_catalog(args.root)
    if problems:
        _print_problems(problems)
        bad = len({p[0] for p in problems})
        print(f"catalog: {len(problems)} problem(s) in {bad} file(s)", file=sys.stderr)
        return 1
    print(f"catalog: {len(entries)} entries valid; index and schema up to date")
    return 0


def cmd_catalog_index(args) -> int:
    from .catalog import entry_files, write_index
    from .errors import CatalogError

    try:
        path = write_index(args.root)
    except CatalogError as exc:  # the index is left as it was
        _print_problems(exc.problems)
        print(f"catalog index: not written, {len(exc.problems)} problem(s) in "
              f"{len({p[0] for p in exc.problems})} file(s)", file=sys.stderr)
        return 1
    print(f"wrote {path} ({len(entry_files(args.root))} models)")
    return 0


def cmd_catalog_schema(args) -> int:
    from .atomic import atomic_write_text
    from .catalog import render_schema

    path = Path(args.root) / config.SCHEMA_FILE
    atomic_write_text(path, render_schema(args.root))
    print(f"wrote {path}")
    return 0


def cmd_catalog_add(args) -> int:
    from .scaffold import add_entry

    path, f = add_entry(args.source, args.id, root=args.root, cache_dir=args.cache_dir, force=args.force)
    print(f"wrote {path}: format {f.format}, {f.n_layers} 3x3 layers, {f.n_filters:,} filters "
          f"({f.n_depthwise:,} depthwise)" + (f", sha256 {f.sha256}" if f.sha256 else ""))
    print("now fill in every TODO in it, then run `cnn-filter-db catalog validate`")
    return 0


def cmd_catalog_check(args) -> int:
    from .atomic import atomic_write_text
    from .review import check_catalog, markdown_report

    checked, problems = check_catalog(args.root, args.changed_since, args.cache_dir,
                                      load_params("validate", args.root))
    report = markdown_report(checked, problems)
    print(report)
    if args.report:
        atomic_write_text(args.report, report)
    return 1 if problems or any(c.problems for c in checked) else 0


# --------------------------------------------------------------------------- catalog sets, zoo, lock

def cmd_catalog_generate(args) -> int:
    from .zoo.generate import generate

    r = generate(args.registry, args.root, pattern=args.pattern)
    done = ", ".join(f"{n} {k}" for k, n in sorted(r.outcomes.items())) or "nothing"
    print(f"{args.registry}: {done}; {len(r.skipped)} weights without an entry; {r.seconds:.0f} s")
    for path in r.refused:
        print(f"{path}: -: edited since it was generated; not overwritten (remove its first line to own it, "
              "or delete the file to regenerate it)", file=sys.stderr)
    if args.skipped:
        for mid, why in sorted(r.skipped.items()):
            print(f"skipped {mid}: {why}")
    return 1 if r.refused else 0


def cmd_catalog_lock(args) -> int:
    from .catalog_lock import lock_status

    unlocked, stale = lock_status(args.root)
    for mid in unlocked:
        print(f"unlocked {mid}")
    for mid, why in stale:
        print(f"stale {mid}: {why}", file=sys.stderr)
    print(f"lock: {len(unlocked)} unlocked, {len(stale)} stale")
    return 1 if stale else 0


# --------------------------------------------------------------------------- build

def cmd_extract(args) -> int:
    from .catalog import entry_files, load_entry
    from .extract import extract_model

    ids = args.model_ids or ([p.stem for p in entry_files(args.root)] if args.all else [])
    if not ids:
        print("extract: name model ids, or --all", file=sys.stderr)
        return 2
    params = ExtractParams.of(load_params("extract", args.root))
    entries = [load_entry(m, args.root) for m in ids]  # check every entry before any work
    train = _train_options(args.root)
    for entry in bar(entries, desc="models", unit="model", disable=len(entries) < 2 or args.quiet):
        model = extract_model(entry, args.release_dir, args.meta_dir, root=args.root, cache_dir=args.cache_dir,
                              progress=not args.quiet, params=params,
                              source_options=train if entry.source.kind == "train" else None)
        print(f"{entry.model_id}: {model['n_layers']} 3x3 layers, {model['n_filters']:,} filters")
    return 0


def _train_options(root: Path) -> dict:
    """The ``train`` params group as options of the train source (paths under the root)."""
    p = TrainParams.of(load_params("train", root))
    return {"profile": p.profile, "reports_dir": Path(root) / p.reports_dir, "num_threads": p.num_threads,
            "device": p.device, "hub_ids": p.hub_ids}


def cmd_extract_set(args) -> int:
    from .set_build import build_set

    def progress(model_id, what):
        if not args.quiet:
            print(f"{model_id}: {what}", flush=True)

    s = build_set(args.set, args.root, args.release_dir, args.meta_dir,
                  ExtractParams.of(load_params("extract", args.root)), progress, args.sets_dir)
    print(f"set {args.set}: {len(s['models'])} models" + (f", {s['n_filters']:,} filters" if "n_filters" in s else ""))
    return 0


def cmd_fetch(args) -> int:
    from .catalog import load_catalog
    from .sources import fetch_file, has_file

    entries = [e for e in load_catalog(args.root) if has_file(e)]
    if args.model_ids:
        entries = [e for e in entries if e.model_id in set(args.model_ids)]
    for entry in bar(entries, desc="fetch", unit="file", disable=args.quiet):
        fetch_file(entry, args.cache_dir)
    print(f"fetched {len(entries)} weight files into the cache")
    return 0


def cmd_gather(args) -> int:
    from .catalog import index_models
    from .extract import gather

    ids = index_models(args.root)
    models, layers = gather(args.meta_dir, args.release_dir, ids, prune_orphans=True)
    print(f"gathered {models.num_rows} models, {layers.num_rows} layers into {args.release_dir}")
    return 0


def cmd_release(args) -> int:
    params = ReleaseParams.of(load_params("release", args.root))
    version = args.version or params.version
    if not version:
        raise CnnFilterDbError("release: set release.version in params.yaml, or give --version")
    version = str(version)
    if args.build_only:
        return _build_release(args, params, version)
    if args.previous or args.metrics:
        raise CnnFilterDbError("release: --previous and --metrics apply only with --build-only (the DVC stage)")
    return _cut_release(args, version, params.hub_repo_id)


def _build_release(args, params: ReleaseParams, version: str) -> int:
    """The DVC release stage: licence policy, manifest, card and citation."""
    from .catalog import load_catalog, selected_sets
    from .release import build_release

    previous = args.previous or params.previous_manifest
    sets = set(selected_sets(args.root))  # entries of sets not built are not "left out" of this release
    manifest = build_release(args.release_dir, version, params, previous=previous, root=args.root,
                             entries=[e for e in load_catalog(args.root) if e.set in sets], prune=False)
    rows = sum(s["rows"] for s in manifest["shards"])
    print(f"release {version}: {len(manifest['shards'])} shards, {rows:,} rows, "
          f"fingerprint {manifest['fingerprint']}")
    for mid, why in manifest.get("excluded_models", {}).items():
        print(f"left out {mid}: {why}")
    # the folder just written must pass the manifest suite (files, sha256, fingerprint)
    from .validate import validate_release

    check = validate_release(args.release_dir, root=args.root, tables=["manifest"], require_manifest=True)
    if not check.success:
        print(check.summary(), file=sys.stderr)
        return 1
    if args.metrics:
        from .summary import write_summary

        print(f"wrote {write_summary(manifest, args.root, args.metrics)}")
    return 0


def cmd_validate(args) -> int:
    from .validate import validate_release

    params = ValidateParams.of(load_params("validate", args.root))
    if args.max_abs_weight is not None:
        params = replace(params, max_abs_weight=args.max_abs_weight)
    run = RunOptions.of({"data_docs": args.data_docs})
    result = validate_release(args.path or args.root / config.RELEASE_DIR, args.reports, params, root=args.root,
                              data_docs=run.data_docs, **({"tables": args.tables} if args.tables else {}),
                              verify=not args.no_verify)
    print(result.summary())
    # timings go to the log only: the DVC outputs hold no clock time
    print(f"  time      {result.stats['seconds']} s" + (f" (filter scan {result.stats['scan_seconds']} s)"
                                                     if "scan_seconds" in result.stats else ""))
    return 0 if result.success else 1


def cmd_analyze(args) -> int:
    from .analysis.pipeline import analyze

    run = RunOptions.of({"engine": args.engine, "scheduler": args.scheduler, "workers": args.workers,
                         "batch_rows": args.batch_rows})
    reports = args.reports_dir or args.root / config.REPORTS_DIR
    s = analyze(args.release_dir, reports, AnalyzeParams.of(load_params("analyze", args.root)), run,
                verify=not args.no_verify)
    share = s["share_degenerate_layers"]
    print(f"analysed {s['filters']:,} filters in {s['layers']:,} layers of {s['models']} models: "
          f"{'n/a' if share is None else f'{share:.1%}'} of layers degenerated; reports in {reports}")
    print("seconds: " + ", ".join(f"{k} {v}" for k, v in s.get("timings_s", {}).items()))  # the log only
    return 0


def _cut_release(args, version: str, repo_id: str | None) -> int:
    """Pin what `dvc repro` built: check it is current and committed, `dvc push` to the
    ``storage`` remote, mirror the new objects to the Hub's public DVC remote, tag v<version>."""
    import json
    import subprocess

    from . import dvc_remote
    from .dataset.manifest import check_manifest, read_manifest
    from .git_tag import check_taggable, tag_release
    from .sources.hf import redact

    check_taggable(args.root, version)  # clean, committed tree; tag free
    storage = dvc_remote.remote_url(args.root, dvc_remote.PUSH_REMOTE)
    if repo_id:
        public = dvc_remote.remote_url(args.root, dvc_remote.PUBLIC_REMOTE)
        expected = dvc_remote.public_url(repo_id, "")[1:]  # datasets/ORG/NAME/resolve/main/dvc-cache
        if not public.rstrip("/").endswith(expected):
            raise CnnFilterDbError(f".dvc/config: remote {dvc_remote.PUBLIC_REMOTE!r} reads {public}, but release "
                                   f"uploads to datasets/{repo_id} (release.hub_repo_id): expected a URL ending in {expected}")
        if "://" in storage and not storage.startswith("file://"):
            raise CnnFilterDbError(f".dvc/config: remote {dvc_remote.PUSH_REMOTE!r} is {storage}: release mirrors it to "
                                   "the Hub and needs it to be a local folder")
    status = subprocess.run(["dvc", "status", "--json"], cwd=args.root, capture_output=True, text=True)
    if status.returncode != 0:
        raise CnnFilterDbError(f"dvc status failed: {status.stderr.strip()}")
    stale = json.loads(status.stdout or "{}")
    if stale:
        raise CnnFilterDbError(f"the pipeline is not up to date ({', '.join(sorted(stale))}): "
                               "run `dvc repro`, commit dvc.lock, then release")
    problems = check_manifest(args.release_dir)
    if problems:
        raise CnnFilterDbError("the release folder does not match its manifest:\n" + "\n".join(problems))
    manifest = read_manifest(args.release_dir).model_dump()
    if manifest["version"] != version:
        raise CnnFilterDbError(f"manifest.json is version {manifest['version']}, params say {version}: run `dvc repro`")
    push = subprocess.run(["dvc", "push", "-r", dvc_remote.PUSH_REMOTE], cwd=args.root, capture_output=True, text=True)
    if push.returncode != 0:
        raise CnnFilterDbError(f"dvc push failed: {(push.stderr or push.stdout).strip()}")
    if repo_id:
        try:
            dvc_remote.upload_new_objects(Path(storage.removeprefix("file://")), repo_id)
        except Exception as exc:  # any Hub or network error: one line, token scrubbed, nothing tagged
            raise CnnFilterDbError(redact(f"datasets/{repo_id}: uploading the DVC objects failed, not tagged: "
                                          f"{type(exc).__name__}: {exc}")) from None
    else:
        print("release.hub_repo_id is not set: the public DVC remote was not updated")
    head = tag_release(args.root, version, message=f"cnn-filter-db v{version}, fingerprint {manifest['fingerprint']}")
    print(f"pushed the DVC outputs and tagged v{version} at {head} (fingerprint {manifest['fingerprint']})")
    return 0


def cmd_publish(args) -> int:
    from .publish import publish

    repo_id = args.repo_id or ReleaseParams.of(load_params("release", args.root)).hub_repo_id
    if not repo_id:
        print("publish: give --repo-id or set release.hub_repo_id in params.yaml", file=sys.stderr)
        return 2
    publish(args.release_dir, repo_id, dry_run=args.dry_run, validate=_validator(args), git_root=args.root)
    return 0


def cmd_page(args) -> int:
    from .release_page import write_page

    params = ReleaseParams.of(load_params("release", args.root))
    reports = args.reports_dir or args.root / config.REPORTS_DIR
    out = write_page(args.release_dir, reports, args.out, repo_id=params.hub_repo_id)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, self-contained)")
    return 0


def _validator(args):
    from .validate import validate_release

    params = ValidateParams.of(load_params("validate", args.root))
    return lambda release_dir: validate_release(release_dir, params=params, root=args.root)


def cmd_import_original(args) -> int:
    from .import_original import import_original

    r = import_original(Path(args.path), args.sha256, args.root, models=args.model or None,
                        unknown_labels="fallback" if args.fallback_labels else "error",
                        force=args.force, progress=True, entries_only=args.entries_only, source_url=args.url)
    for m in r.skipped:
        print(f"kept existing entry {m} (use --force)")
    for orig, problem in r.failed:
        print(f"FAILED {orig}: {problem}", file=sys.stderr)
    print(f"imported {len(r.imported)} models, {sum(x['n_filters'] for x in r.imported):,} filters")
    return 1 if r.failed else 0


# --------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    from .sources import kinds

    parser = argparse.ArgumentParser(prog="cnn-filter-db", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=VERSION)
    parser.add_argument("--root", type=Path, default=Path("."),
                        help="the repository checkout whose catalog/, params.yaml and dist/ are used (default: .)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cat = sub.add_parser("catalog", help="check and maintain the model catalog")
    catsub = cat.add_subparsers(dest="catalog_command", required=True, metavar="SUBCOMMAND")
    p = catsub.add_parser("validate", help="check every entry, the index and the schema")
    p.set_defaults(func=cmd_catalog_validate)
    p = catsub.add_parser("index", help="regenerate catalog/index.yaml from catalog/models/")
    p.set_defaults(func=cmd_catalog_index)
    p = catsub.add_parser("schema", help="regenerate catalog/schema.json from the entry model")
    p.set_defaults(func=cmd_catalog_schema)
    p = catsub.add_parser("add", help="inspect weights and write a catalog entry to fill in",
                          description="SOURCE: " + "; ".join(k.spec_help for k in kinds().values() if k.spec_help))
    p.add_argument("source", metavar="PATH_OR_URL_OR_SOURCE")
    p.add_argument("--id", required=True, help="the new model_id (also the file name)")
    p.add_argument("--force", action="store_true", help="overwrite an existing entry")
    p.add_argument("--cache-dir", type=Path, default=None)
    p.set_defaults(func=cmd_catalog_add)
    p = catsub.add_parser("generate", help="write one entry per pretrained weight of a model registry")
    p.add_argument("registry", choices=["timm", "torchvision"])
    p.add_argument("--pattern", default="*", help="timm model name pattern (default: all)")
    p.add_argument("--skipped", action="store_true", help="list the weights left out and why")
    p.set_defaults(func=cmd_catalog_generate)
    p = catsub.add_parser("lock", help="weight pins of generated entries (catalog/lock.yaml)")
    p.add_argument("--check", action="store_true", help="list unlocked and stale entries; exit 1 on stale ones")
    p.set_defaults(func=cmd_catalog_lock)
    p = catsub.add_parser("check", help="check changed entries end to end; print a Markdown report")
    p.add_argument("--changed-since", metavar="REV", default=None,
                   help="only entries added or changed since this git revision (default: all)")
    p.add_argument("--report", type=Path, default=None, help="also write the report to this file")
    p.add_argument("--cache-dir", type=Path, default=None)
    p.set_defaults(func=cmd_catalog_check)

    def release_dir_arg(p):
        p.add_argument("--release-dir", type=Path, default=None, help=f"default: ROOT/{config.RELEASE_DIR}")

    def no_verify_arg(p):  # validate and analyze: the DVC stages pass it, visibly, in dvc.yaml
        p.add_argument("--no-verify", action="store_true",
                       help="do not check each shard's sha256 against the release's manifest.json (checked by "
                            "default when the folder has one). For the DVC pipeline only: during its validate "
                            "and analyze stages the folder still holds the previous build's manifest.json, "
                            "which the release stage rewrites and checks afterwards")

    def build_args(p):  # the commands that write per-model metadata
        release_dir_arg(p)
        p.add_argument("--meta-dir", type=Path, default=None, help=f"default: ROOT/{config.META_DIR}")

    p = sub.add_parser("extract", help="fetch models and write their filter shards")
    p.add_argument("model_ids", nargs="*", metavar="MODEL_ID")
    p.add_argument("--all", action="store_true", help="every catalog entry")
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    build_args(p)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("extract-set", help="extract the new or changed models of one catalog set (a DVC stage)")
    p.add_argument("set", metavar="SET")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--sets-dir", type=Path, default=None, help="where SET.json goes (default: ROOT/build/sets)")
    build_args(p)
    p.set_defaults(func=cmd_extract_set)

    p = sub.add_parser("fetch", help="download the catalog's weight files into the cache")
    p.add_argument("model_ids", nargs="*", metavar="MODEL_ID")
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("import-original", help="import the CVPR 2022 release (HDF5) as catalog entries and shards")
    p.add_argument("path", help="the release's .h5 file")
    p.add_argument("--sha256", required=True,
                   help="pinned sha256 of the file: its /meta table is pickled by pandas, so it is read "
                        "only from the file with this hash")
    p.add_argument("--model", action="append", help="import only this original model (repeatable)")
    p.add_argument("--fallback-labels", action="store_true",
                   help="map labels missing from the vocabulary to 'other'/'unknown' instead of stopping")
    p.add_argument("--force", action="store_true", help="overwrite existing entries")
    p.add_argument("--entries-only", action="store_true",
                   help="write only the catalog entries (set original-v1), for `dvc repro` to extract")
    p.add_argument("--url", default=None,
                   help="URL the entries name for the file (default: its file:// URL), e.g. the Zenodo download")
    p.set_defaults(func=cmd_import_original)

    p = sub.add_parser("gather", help="write the layers and models tables from extracted metadata")
    build_args(p)
    p.set_defaults(func=cmd_gather)

    p = sub.add_parser("validate", help="run the expectation suites on a release folder; exit 1 on any failure")
    p.add_argument("path", nargs="?", type=Path, default=None, help=f"release folder (default: ROOT/{config.RELEASE_DIR})")
    p.add_argument("--reports", type=Path, default=None,
                   help="write the Checkpoint results (JSON), metrics.json and Data Docs here")
    p.add_argument("--max-abs-weight", type=float, default=None,
                   help="bound on per-layer max |w| (default: validate.max_abs_weight of params.yaml)")
    p.add_argument("--tables", nargs="+", default=None, choices=["models", "layers", "filters", "manifest"],
                   help="suites to run (default: all)")
    p.add_argument("--no-data-docs", dest="data_docs", action="store_const", const=False, default=None,
                   help="do not build the Data Docs HTML site under --reports (a run option, not a "
                        "parameter: also CNN_FILTER_DB_DATA_DOCS=0)")
    no_verify_arg(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("analyze", help="layer_stats, eigen-image bases, drift between groups, plots",
                       description="Streaming passes over the filter shards of the release folder: per-layer "
                                   "sparsity, variance entropy, orthogonality and degeneration flags (written "
                                   "into the release as layer_stats), eigen-image bases and drift between "
                                   "groups (under --reports-dir; its README.md defines each measure). "
                                   "Parameters: the analyze group of params.yaml over the defaults of "
                                   "cnn_filter_db.params.AnalyzeParams.")
    p.add_argument("--reports-dir", type=Path, default=None, help=f"default: ROOT/{config.REPORTS_DIR}")
    # run options, not stage params: they change how the analysis runs, not its numbers
    p.add_argument("--engine", choices=["local", "dask"], default=None,
                   help=f"local or dask (default: $CNN_FILTER_DB_ENGINE, else {RunOptions.engine})")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (engine dask; default: "
                                                     "$CNN_FILTER_DB_SCHEDULER, else a LocalCluster)")
    p.add_argument("--workers", type=int, default=None,
                   help=f"shards at a time (default: $CNN_FILTER_DB_WORKERS, else {RunOptions.workers})")
    p.add_argument("--batch-rows", type=int, default=None,
                   help=f"rows read at a time (default: $CNN_FILTER_DB_BATCH_ROWS, else {RunOptions.batch_rows:,})")
    release_dir_arg(p)
    no_verify_arg(p)
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("release", help="pin the built release: `dvc push` its outputs and tag v<version>",
                       description="On a clean, committed tree whose pipeline is up to date (run `dvc repro` "
                                   "and commit dvc.lock first): push the DVC outputs to the default remote and "
                                   "create the git tag v<version>. --build-only is the DVC release stage.")
    p.add_argument("--version", default=None, help="default: release.version of params.yaml")
    p.add_argument("--build-only", action="store_true",
                   help="only apply the licence policy and write manifest, card and citation (the DVC stage)")
    p.add_argument("--previous", default=None,
                   help="with --build-only: the previous manifest.json or release folder, for the changelog")
    p.add_argument("--metrics", type=Path, default=None,
                   help="with --build-only: write the pipeline's DVC metrics here (counts, storage, validation "
                        "outcome, headline analysis numbers)")
    release_dir_arg(p)
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("page", help="write reports/index.html, the release page (one self-contained HTML file)",
                       description="Counts, models and licences, validation summary, plots, drift tables, how "
                                   "to load and pin; opens offline (no request of any kind).")
    p.add_argument("--reports-dir", type=Path, default=None, help=f"default: ROOT/{config.REPORTS_DIR}")
    p.add_argument("--out", type=Path, default=None, help="default: REPORTS_DIR/index.html")
    release_dir_arg(p)
    p.set_defaults(func=cmd_page)

    p = sub.add_parser("publish", help="upload the release to the Hugging Face Hub (resumable, in commits), tagged v<version>",
                       description="The token comes from HF_TOKEN or `hf auth login`; it is never printed.")
    p.add_argument("--repo-id", default=None, help="ORG/NAME (default: release.hub_repo_id of params.yaml)")
    p.add_argument("--dry-run", action="store_true",
                   help="check every precondition, then print which files would go where; no network")
    release_dir_arg(p)
    p.set_defaults(func=cmd_publish)
    return parser


def _input_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input (a missing file, bad params, a malformed table); a
    library's own kinds count only once it is imported (nothing else can have raised them)."""
    kinds: list[type[BaseException]] = [OSError, ValueError, KeyError]
    if "yaml" in sys.modules:
        kinds.append(sys.modules["yaml"].YAMLError)
    if "pyarrow" in sys.modules:
        kinds.append(sys.modules["pyarrow"].ArrowException)
    return tuple(kinds)


#: Commands that read the catalog of a checkout (``--root``).
NEEDS_CHECKOUT = ("catalog", "extract", "fetch", "gather", "release")


def _check_root(args) -> None:
    if not args.root.is_dir():
        raise CnnFilterDbError(f"--root {args.root}: no such folder (the repository checkout to work in)")
    if args.command in NEEDS_CHECKOUT and not (args.root / config.MODELS_DIR).is_dir():
        raise CnnFilterDbError(f"--root {args.root}: not a cnn-filter-db checkout (no {config.MODELS_DIR}/); "
                               "run inside the repository or give --root")


def foreach_arguments(argv: list[str], script: str, what: str) -> list[str]:
    """The arguments a foreach stage script (stages/extract.py, stages/extract_set.py) hands
    to its command. As a DVC stage: dvc.yaml's options, then the item from the stage's own
    name in ``DVC_STAGE``, after "--" (an item is never an option, and no catalog value is
    interpolated into a shell command). By hand: the items and options as given."""
    _, at, item = os.environ.get("DVC_STAGE", "").partition("@")
    if at:
        return [*argv, "--", item]
    if not [a for a in argv if not a.startswith("-")]:
        sys.exit(f"{script}: name {what}, or run it as a DVC foreach stage (DVC sets DVC_STAGE)")
    return argv


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # paths default to their place under the project root
    if hasattr(args, "release_dir") and args.release_dir is None:
        args.release_dir = args.root / config.RELEASE_DIR
    if hasattr(args, "meta_dir") and args.meta_dir is None:
        args.meta_dir = args.root / config.META_DIR
    try:
        _check_root(args)
        return args.func(args)
    except CnnFilterDbError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except _input_errors() as exc:
        # a missing file, bad params or a malformed table: one line naming the problem
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
