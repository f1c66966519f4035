"""Publish a release folder to a Hugging Face Hub dataset repository, tagged ``v<version>``.

A release goes up in several commits to ``main`` (at most ``config.PUBLISH_COMMIT_BYTES``
and ``config.PUBLISH_COMMIT_FILES`` each): the Parquet shards first, then one last commit
with the small files that describe the release (card, manifest, citation metadata) and the
removal of files the new version no longer has. The tag is made only after the branch holds
exactly the release, checked file by file (sha256 of large files, git id of small ones).

Resuming needs no local state: the branch is the record. Files already on ``main`` with the
same content are not sent again, whether a previous version put them there (a new version
re-sends only what changed) or an interrupted run did; a large file uploaded to storage but
not yet committed is not sent again either (the LFS batch API answers that the object is
there). So after an interruption, running the same command again finishes the release.

Versions are immutable: a version whose tag exists is refused before anything is sent, and
a tag is never moved. The release must match its manifest (sha256 of every file) and pass
the validation hook. The token is handed to ``huggingface_hub`` only: it is never printed,
logged, or put in an error message (messages from the Hub are scrubbed of it).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from . import config
from .errors import CnnFilterDbError, ReleaseError
from .dataset.layout import MANIFEST, release_files
from .dataset.manifest import Manifest, check_manifest, read_manifest
from .git_tag import GitTagError, check_taggable, tag_release
from .hashing import BLOCK, sha256_file
from .hub_layout import HUB_LIMITS, HubLimits, require_within
from .sources.hf import redact

#: Files that describe a release as a whole: they go up in the last commit, after the data.
LAST = {"README.md", MANIFEST}


class PublishError(CnnFilterDbError):
    """The release was not published; the message says why."""


@dataclass
class PlannedFile:
    path_in_repo: str
    local: Path
    size: int
    sha256: str = ""


@dataclass
class PublishResult:
    repo_id: str
    version: str
    tag: str
    files: list[PlannedFile]
    commit: str | None = None  # None for a dry run
    deleted: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)  # paths uploaded by this run
    unchanged: list[str] = field(default_factory=list)  # paths already on the Hub with this content
    commits: list[str] = field(default_factory=list)  # commits made by this run, in order
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
    """``text`` on one line, without the token passed in, nor the one huggingface_hub would
    use, nor anything shaped like a Hub token or a bearer credential."""
    text = " ".join(str(text).split())
    if token:
        text = text.replace(token, "<token>")
    return redact(text)


def git_blob_oid(path: Path) -> str:
    """The git id of a file's content (what the Hub reports for a small, regular file)."""
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(BLOCK), b""):
            h.update(block)
    return h.hexdigest()


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


def plan(release_dir: Path) -> tuple[Manifest, list[PlannedFile]]:
    """The manifest and the files to upload (with their sha256), after checking the folder
    against its manifest."""
    release_dir = Path(release_dir)
    problems = check_manifest(release_dir)
    if problems:
        raise PublishError(f"{release_dir}: the release does not match its manifest, not publishing:\n"
                           + "\n".join(problems))
    manifest = read_manifest(release_dir)  # parsed and checked just now: cannot fail here
    known = manifest.recorded()
    files = []
    for rel in release_files(release_dir):
        local = release_dir / rel
        files.append(PlannedFile(rel, local, local.stat().st_size, known.get(rel) or sha256_file(local)))
    return manifest, files


def batches(files: list[PlannedFile], max_bytes: int, max_files: int) -> list[list[PlannedFile]]:
    """The files in commits: data first (in path order, each commit within both limits, a
    file larger than ``max_bytes`` alone), then the files that describe the release."""
    data = [f for f in files if f.path_in_repo not in LAST]
    out, current, size = [], [], 0
    for f in data:
        if current and (size + f.size > max_bytes or len(current) >= max_files):
            out.append(current)
            current, size = [], 0
        current.append(f)
        size += f.size
    if current:
        out.append(current)
    out.append([f for f in files if f.path_in_repo in LAST])
    return out


def publish(release_dir: Path, repo_id: str, token: str | None = None, dry_run: bool = False, *,
            validate: Callable | None = None, version: str | None = None, endpoint: str | None = None,
            private: bool | None = None, git_root: Path | None = None,
            commit_bytes: int = config.PUBLISH_COMMIT_BYTES, commit_files: int = config.PUBLISH_COMMIT_FILES,
            hub_limits: HubLimits = HUB_LIMITS, echo: Callable[[str], None] = print) -> PublishResult:
    """Upload ``release_dir`` to the dataset repo ``repo_id`` in commits, then tag it ``v<version>``.

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
    commit_bytes, commit_files : the most one commit carries.
    hub_limits : a folder beyond these layout limits is refused before anything is sent.
    echo : where progress lines go (never the token).
    """
    release_dir = Path(release_dir)
    # preconditions, cheapest first, each said as it passes (a dry run checks them all too)
    manifest_version = _manifest_version(release_dir)
    if version is not None and str(version) != manifest_version:
        raise PublishError(f"{release_dir / MANIFEST}: version {manifest_version} differs from the requested {version}")
    if git_root is not None:
        _check_git(Path(git_root), manifest_version)
        echo(f"ok: {git_root} is committed and clean, and git tag v{manifest_version} is free or at HEAD")
    layout = require_within(release_dir, hub_limits, error=PublishError)
    echo(f"ok: {layout.files} files, at most {layout.largest_folder[1]:,} entries in a folder "
         f"({layout.largest_folder[0]}): within the Hub's limits")
    manifest, files = plan(release_dir)
    echo(f"ok: the {len(files)} files of {release_dir} match {MANIFEST} (sha256 of each, fingerprint)")
    tag = f"v{manifest.version}"
    _run_validation(validate, release_dir)
    if validate is not None:
        echo("ok: the release passes validation")
    result = PublishResult(repo_id, manifest.version, tag, files, dry_run=dry_run)

    if dry_run:
        where = f"hf://datasets/{repo_id}"
        for f in files:
            echo(f"{f.path_in_repo}  ->  {where}/{f.path_in_repo}  ({human_size(f.size)})")
        echo(f"dry run: {len(files)} files, {human_size(result.bytes)}, would be committed to {where} "
             f"and tagged {tag} (fingerprint {manifest.fingerprint}); nothing was sent")
        if git_root is not None:
            echo(f"dry run: git tag {tag} would be made at HEAD of {git_root} if missing")
        return result

    upload = _Upload(HfApi(endpoint=endpoint, token=token), repo_id, manifest, result, echo)
    try:
        upload.run(private, commit_bytes, commit_files)
    except PublishError as exc:
        raise PublishError(_scrub(str(exc), token)) from None
    except KeyboardInterrupt:
        raise PublishError(f"{repo_id}: publishing {tag} was interrupted {upload.progress()}; nothing was tagged; "
                           "run the same command again to finish (what arrived is not sent again)") from None
    except Exception as exc:  # any Hub or network error: one clear line, token scrubbed
        # ``from None``: the chained traceback would add nothing the message lacks
        raise PublishError(_scrub(f"{repo_id}: publishing {tag} failed {upload.progress()}: "
                                  f"{_describe(exc)}; nothing was tagged", token)) from None
    if git_root is not None:
        head = tag_release(Path(git_root), manifest.version, exist_ok=True)
        echo(f"git tag {tag} at {head}")
    return result


def _describe(exc: Exception) -> str:
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        hint = {401: "the token was not accepted", 403: "the token has no write access to this repository"}.get(status)
        server = exc.server_message or str(exc).split("\n")[0]
        return f"HTTP {status}" + (f" ({hint})" if hint else "") + f": {server}"
    return f"{type(exc).__name__}: {exc}"


def _manifest_version(release_dir: Path) -> str:
    try:
        return read_manifest(release_dir).version
    except ReleaseError as exc:
        raise PublishError(f"not publishing: {exc}") from None


def _check_git(root: Path, version: str) -> None:
    """Refuse early what the git tag would refuse after the upload."""
    try:
        check_taggable(root, version, exist_ok=True)
    except GitTagError as exc:
        raise PublishError(f"not publishing: {exc}") from None


def _kept(path_in_repo: str) -> bool:
    """Files on the Hub that are not part of a release and a publish leaves alone: the repo's
    ``.gitattributes`` and the public DVC remote's objects (``dvc-cache/``, filled by `release`)."""
    return path_in_repo == ".gitattributes" or path_in_repo.startswith(f"{config.HUB_DVC_CACHE_DIR}/")


class _Upload:
    """One publish run: state for its progress line, steps as methods."""

    def __init__(self, api: HfApi, repo_id: str, manifest: Manifest, result: PublishResult, echo):
        self.api, self.repo_id, self.manifest, self.result, self.echo = api, repo_id, manifest, result, echo
        self.n_commits = 0
        self.done_commits = 0

    def progress(self) -> str:
        if not self.done_commits:
            return "before any commit"
        return f"after {self.done_commits} of {self.n_commits} commits to main"

    def _tree(self, revision: str) -> dict:
        """path -> (sha256 or None, git id) of every file on the branch at ``revision``."""
        out = {}
        for entry in self.api.list_repo_tree(self.repo_id, repo_type="dataset", revision=revision, recursive=True):
            if hasattr(entry, "blob_id"):  # a file, not a folder
                out[entry.path] = (entry.lfs.sha256 if entry.lfs else None, entry.blob_id)
        return out

    @staticmethod
    def _same(f: PlannedFile, remote: tuple | None) -> bool:
        if remote is None:
            return False
        sha256, blob = remote
        return sha256 == f.sha256 if sha256 else blob == git_blob_oid(f.local)

    def run(self, private, commit_bytes: int, commit_files: int) -> None:
        api, repo_id, result, tag = self.api, self.repo_id, self.result, self.result.tag
        try:
            refs = api.list_repo_refs(repo_id, repo_type="dataset")
        except RepositoryNotFoundError:
            refs = None
        existing = {t.name: t.target_commit for t in refs.tags} if refs is not None else {}
        if tag in existing:
            raise PublishError(f"{repo_id}: tag {tag} already exists (commit {existing[tag]}); versions are "
                               "immutable: bump release.version to publish a change")
        if refs is None:
            api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private)
            refs = api.list_repo_refs(repo_id, repo_type="dataset")
        head = next(b.target_commit for b in refs.branches if b.name == "main")

        remote = self._tree(head)
        local = {f.path_in_repo for f in result.files}
        result.unchanged = [f.path_in_repo for f in result.files if self._same(f, remote.get(f.path_in_repo))]
        todo = [f for f in result.files if f.path_in_repo not in set(result.unchanged)]
        # kept: the public DVC remote's objects, which `release` adds to
        result.deleted = sorted(p for p in set(remote) - local if not _kept(p))
        plan = [b for b in batches(todo, commit_bytes, commit_files) if b]
        if result.deleted and not (plan and plan[-1][0].path_in_repo in LAST):
            plan.append([])  # the removals go in the last commit
        self.n_commits = len(plan)
        self.echo(f"uploading {len(todo)} files ({human_size(sum(f.size for f in todo))}) to datasets/{repo_id} "
                  f"in {len(plan)} commits; {len(result.unchanged)} files already there"
                  + (f"; removing {len(result.deleted)}" if result.deleted else ""))
        for i, batch in enumerate(plan, 1):
            operations = [CommitOperationAdd(path_in_repo=f.path_in_repo, path_or_fileobj=str(f.local)) for f in batch]
            if i == len(plan):
                operations += [CommitOperationDelete(path_in_repo=p) for p in result.deleted]
            title = f"Release {tag}" + (f" (part {i} of {len(plan)})" if len(plan) > 1 else "")
            info = api.create_commit(repo_id, operations, repo_type="dataset", commit_message=title,
                                     commit_description=f"cnn-filter-db {tag}, fingerprint {self.manifest.fingerprint}",
                                     parent_commit=head)
            head = info.oid
            result.commits.append(head)
            result.sent += [f.path_in_repo for f in batch]
            self.done_commits = i
            self.echo(f"commit {i} of {len(plan)}: {len(batch)} files ({human_size(sum(f.size for f in batch))}) "
                      f"at {head}")

        self._check_complete(head)
        try:
            api.create_tag(repo_id, tag=tag, revision=head, repo_type="dataset",
                           tag_message=f"cnn-filter-db {tag}, fingerprint {self.manifest.fingerprint}")
        except HfHubHTTPError as exc:
            if exc.response is not None and exc.response.status_code == 409:
                raise PublishError(f"{repo_id}: tag {tag} was made by someone else while this run uploaded; "
                                   f"it was not moved (main is at {head})") from None
            raise
        result.commit = head
        self.echo(f"published datasets/{repo_id} {tag} at commit {head}")

    def _check_complete(self, head: str) -> None:
        """The branch holds exactly the release, or PublishError (and no tag)."""
        remote = self._tree(head)
        wrong = [f.path_in_repo for f in self.result.files if not self._same(f, remote.get(f.path_in_repo))]
        extra = sorted(p for p in set(remote) - {f.path_in_repo for f in self.result.files} if not _kept(p))
        if wrong or extra:
            raise PublishError(f"{self.repo_id}: after uploading, main at {head} does not hold the release "
                               f"(differing: {wrong[:5]}, extra: {extra[:5]}); nothing was tagged")
