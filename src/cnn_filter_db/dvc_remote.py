"""The DVC remote anyone can pull from.

The Hub dataset repo's ``dvc-cache/`` folder holds DVC's remote layout (``files/md5/ab/cdef...``,
content-addressed, only ever added to). The repository's default DVC remote ``hub`` is a plain
HTTP remote on that folder (``https://huggingface.co/datasets/ORG/NAME/resolve/main/dvc-cache``),
so ``dvc get``, ``dvc pull`` and ``dvc.api`` work without an account or credentials.

``cnn-filter-db release`` pushes to the maintainers' ``storage`` remote (a local folder by
default), then uploads the objects the Hub folder lacks (:func:`upload_new_objects`).
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable

from . import config
from .errors import CnnFilterDbError

#: The DVC remote release pushes to, and the one everybody reads from (.dvc/config).
PUSH_REMOTE = "storage"
PUBLIC_REMOTE = "hub"


class RemoteError(CnnFilterDbError):
    """The DVC outputs could not be pushed or mirrored to the public remote."""


def public_url(repo_id: str, endpoint: str = "https://huggingface.co") -> str:
    """The HTTP URL the ``hub`` remote reads (the Hub's ``resolve`` route on the main branch)."""
    return f"{endpoint.rstrip('/')}/datasets/{repo_id}/resolve/main/{config.HUB_DVC_CACHE_DIR}"


def remote_url(root: Path, name: str) -> str:
    """The URL of the DVC remote ``name`` as DVC resolves it (a local path made absolute)."""
    proc = subprocess.run(["dvc", "config", f"remote.{name}.url"], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RemoteError(f"{Path(root) / '.dvc' / 'config'}: no DVC remote {name!r} "
                          f"(expected remotes {PUSH_REMOTE!r} to push to and {PUBLIC_REMOTE!r} to read from)")
    return proc.stdout.strip()


def object_files(folder: Path) -> list[str]:
    """The objects of a local DVC remote, as paths relative to it (``files/md5/ab/cdef...``)."""
    folder = Path(folder)
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def upload_new_objects(storage: Path, repo_id: str, *, token: str | None = None, endpoint: str | None = None,
                       echo: Callable[[str], None] = print) -> int:
    """Upload the objects of the local remote ``storage`` that the Hub repo's ``dvc-cache/``
    lacks, in one commit on main; returns how many were sent. Objects are immutable, so
    those already there are never sent again."""
    from huggingface_hub import CommitOperationAdd, HfApi

    storage = Path(storage)
    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
    prefix = f"{config.HUB_DVC_CACHE_DIR}/"
    there = {p[len(prefix):] for p in api.list_repo_files(repo_id, repo_type="dataset") if p.startswith(prefix)}
    new = [rel for rel in object_files(storage) if rel not in there]
    if new:
        api.create_commit(repo_id, [CommitOperationAdd(path_in_repo=prefix + rel, path_or_fileobj=str(storage / rel))
                                    for rel in new],
                          repo_type="dataset", commit_message=f"DVC cache: {len(new)} new objects")
    echo(f"public DVC remote: {len(new)} new objects uploaded to datasets/{repo_id}/{prefix} "
         f"({len(there)} were there)")
    return len(new)
