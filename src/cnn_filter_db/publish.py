"""Publish a release folder to a Hugging Face Hub dataset repository, as one commit
tagged ``v<version>``.

Versions are immutable: a version whose tag exists is refused before anything is sent.
The release must match its manifest (sha256 of every file, the fingerprint) and pass the
validation hook. Files go through ``HfApi.create_commit``, so the library's usual upload
path applies (the Hub decides regular or large-file storage for each file).

The token is handed to ``huggingface_hub`` only: it is never printed, logged, or put in an
error message (messages from the Hub are scrubbed of it as a second guard).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import CnnFilterDbError
from .dataset.layout import MANIFEST, release_files
from .dataset.manifest import check_manifest


class PublishError(CnnFilterDbError):
    """The release was not published; the message says why."""


@dataclass
class PlannedFile:
    path_in_repo: str
    local: Path
    size: int


@dataclass
class PublishResult:
    repo_id: str
    version: str
    tag: str
    files: list[PlannedFile]
    commit: str | None = None  # None for a dry run
    deleted: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _scrub(text: str, token: str | None) -> str:
    """``text`` without the token passed in, nor the one huggingface_hub would use, nor
    anything shaped like a Hub token (:func:`sources.hf.redact`)."""
    from .sources.hf import redact

    return redact(text.replace(token, "<token>") if token else text)


def _run_validation(validate: Callable | None, release_dir: Path) -> None:
    """The hook returns problems (an iterable of messages, or an object with ``success``);
    raising counts as a failure too."""
    if validate is None:
        return
    try:
        result = validate(release_dir)
    except CnnFilterDbError as exc:
        raise PublishError(f"{release_dir}: validation failed, not publishing:\n{exc}") from None
    if result is None:
        return
    if hasattr(result, "success"):
        if not result.success:
            raise PublishError(f"{release_dir}: validation failed, not publishing: {result}")
        return
    problems = [str(p) for p in result]
    if problems:
        raise PublishError(f"{release_dir}: validation failed, not publishing:\n" + "\n".join(problems))


def plan(release_dir: Path) -> tuple[dict, list[PlannedFile]]:
    """The manifest and the files to upload, after checking the folder against its manifest."""
    release_dir = Path(release_dir)
    problems = check_manifest(release_dir)
    if problems:
        raise PublishError(f"{release_dir}: the release does not match its manifest, not publishing:\n"
                           + "\n".join(problems))
    manifest = json.loads((release_dir / MANIFEST).read_text())
    files = [PlannedFile(rel, release_dir / rel, (release_dir / rel).stat().st_size) for rel in release_files(release_dir)]
    return manifest, files


def publish(release_dir: Path, repo_id: str, token: str | None = None, dry_run: bool = False, *,
            validate: Callable | None = None, version: str | None = None, endpoint: str | None = None,
            private: bool | None = None, git_root: Path | None = None,
            echo: Callable[[str], None] = print) -> PublishResult:
    """Upload ``release_dir`` to the dataset repo ``repo_id`` in one commit, tagged ``v<version>``.

    Parameters
    ----------
    token : a Hub token; None uses ``HF_TOKEN`` or the saved login (huggingface_hub's rules).
    dry_run : print where each file would go and its size; no network at all.
    validate : called with the release folder before anything is sent; see ``_run_validation``.
    version : when given, must equal the manifest's version.
    endpoint : the Hub URL (default: ``HF_ENDPOINT`` or huggingface.co).
    git_root : when given, the source repository whose HEAD gets the git tag ``v<version>``
        too when it lacks it; a dirty tree, or the tag on another commit, is refused before
        anything is sent.
    echo : where progress lines go (never the token).
    """
    release_dir = Path(release_dir)
    manifest, files = plan(release_dir)
    if version is not None and str(version) != manifest["version"]:
        raise PublishError(f"{release_dir / MANIFEST}: version {manifest['version']} differs from the requested {version}")
    tag = f"v{manifest['version']}"
    _run_validation(validate, release_dir)
    if git_root is not None:
        _check_git(Path(git_root), manifest["version"])
    result = PublishResult(repo_id, manifest["version"], tag, files, dry_run=dry_run)

    if dry_run:
        where = f"hf://datasets/{repo_id}"
        for f in files:
            echo(f"{f.path_in_repo}  ->  {where}/{f.path_in_repo}  ({human_size(f.size)})")
        echo(f"dry run: {len(files)} files, {human_size(result.bytes)}, would be committed to {where} "
             f"and tagged {tag} (fingerprint {manifest['fingerprint']}); nothing was sent")
        if git_root is not None:
            echo(f"dry run: git tag {tag} would be made at HEAD of {git_root} if missing")
        return result

    try:
        _upload(release_dir, repo_id, token, endpoint, private, manifest, result, echo)
    except PublishError:
        raise
    except Exception as exc:  # any Hub or network error: one clear message, token scrubbed
        # ``from None``: the chained traceback would add nothing the message lacks
        raise PublishError(_scrub(f"{repo_id}: publishing {tag} failed: {type(exc).__name__}: {exc}", token)) from None
    if git_root is not None:
        from .git_tag import tag_release

        head = tag_release(Path(git_root), manifest["version"], exist_ok=True)
        echo(f"git tag {tag} at {head}")
    return result


def _check_git(root: Path, version: str) -> None:
    """Refuse early what the git tag would refuse after the upload."""
    from .git_tag import GitTagError, check_taggable

    try:
        check_taggable(root, version, exist_ok=True)
    except GitTagError as exc:
        raise PublishError(f"not publishing: {exc}") from None


def _upload(release_dir: Path, repo_id: str, token, endpoint, private, manifest: dict,
            result: PublishResult, echo) -> None:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    api = HfApi(endpoint=endpoint, token=token)
    tag = result.tag
    try:
        refs = api.list_repo_refs(repo_id, repo_type="dataset")
    except RepositoryNotFoundError:
        refs = None
    if refs is not None and any(t.name == tag for t in refs.tags):
        target = next(t.target_commit for t in refs.tags if t.name == tag)
        raise PublishError(f"{repo_id}: tag {tag} already exists (commit {target}); versions are immutable: "
                           "bump release.version to publish a change")
    api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private)
    refs = api.list_repo_refs(repo_id, repo_type="dataset")
    head = next((b.target_commit for b in refs.branches if b.name == "main"), None)

    # the commit replaces the repo's content: files of the previous version not in this one go
    local = {f.path_in_repo for f in result.files}
    remote = set(api.list_repo_files(repo_id, repo_type="dataset", revision=head)) if head else set()
    result.deleted = sorted(p for p in remote - local if p != ".gitattributes")
    operations = [CommitOperationDelete(path_in_repo=p) for p in result.deleted]
    operations += [CommitOperationAdd(path_in_repo=f.path_in_repo, path_or_fileobj=str(f.local)) for f in result.files]
    echo(f"uploading {len(result.files)} files ({human_size(result.bytes)}) to datasets/{repo_id}"
         + (f", removing {len(result.deleted)}" if result.deleted else ""))
    info = api.create_commit(repo_id, operations, repo_type="dataset",
                             commit_message=f"Release {tag}",
                             commit_description=f"cnn-filter-db {tag}, fingerprint {manifest['fingerprint']}",
                             parent_commit=head)
    result.commit = info.oid
    api.create_tag(repo_id, tag=tag, revision=info.oid, repo_type="dataset",
                   tag_message=f"cnn-filter-db {tag}, fingerprint {manifest['fingerprint']}")
    echo(f"published datasets/{repo_id} {tag} at commit {info.oid}")
