"""A small local server speaking the part of the Hugging Face Hub HTTP API that
``huggingface_hub`` and ``datasets`` use to publish and to load a dataset at a revision.

Made for the publish and pinning tests: it runs on 127.0.0.1 in a thread of the test
process, keeps its repositories in a folder (regular files as git blobs, large files as
LFS objects keyed by sha256, commits, branches and tags as JSON), and serves:

- ``POST /api/repos/create`` and ``POST /api/validate-yaml`` (README front matter must be
  a YAML mapping);
- ``GET /api/{type}s/{repo}`` and ``.../revision/{rev}`` (repo info with ``sha``,
  ``siblings`` and ``cardData``), ``.../refs``, ``.../tree/{rev}[/{path}]``,
  ``POST .../paths-info/{rev}``; a large file's entry carries its ``lfs`` object
  (``oid`` = sha256, ``size``, ``pointerSize``) and its real size, its ``oid`` is the git
  id of its pointer, as on the Hub;
- ``POST .../preupload/{rev}``: ``lfs`` for binary files (a NUL byte in the sample),
  files over 10 MB and paths the repo's ``.gitattributes`` sends to LFS, else ``regular``;
- the Git LFS batch API, basic transfer: ``POST /{datasets/}{repo}.git/info/lfs/objects/batch``
  answers, per object, an ``upload`` action (a signed URL on a separate *storage* server,
  another origin, like S3) and a ``verify`` action back on the Hub, or no action when the
  repo already stores the object; ``PUT`` on storage checks the sha256 and size before the
  object exists; ``POST .../objects/verify`` checks it is there;
- ``POST .../commit/{rev}`` (NDJSON: header, inline base64 ``file``, ``lfsFile`` pointers
  to stored objects, ``deletedFile``, ``deletedFolder``; ``parentCommit`` is checked);
- ``POST .../tag/{rev}`` (409 when the tag exists) and ``DELETE .../tag/{tag}``;
- ``GET``/``HEAD /{datasets/}{repo}/resolve/{rev}/{path}``: a regular file is served
  directly; a large file answers 302 to a signed storage URL with ``X-Linked-Etag``
  (sha256) and ``X-Linked-Size``, as the Hub does. Both serve ``ETag``, ``X-Repo-Commit``,
  ``Content-Length``, ``Accept-Ranges`` and single ``Range`` requests (206).

Errors carry ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound) and
``X-Error-Message`` as the Hub does, so the client raises its usual exception types.
Writes require ``Authorization: Bearer <token>`` when the server is given a token; a
``read_token`` is accepted for reads and refused for writes (403). Errors about
credentials echo the Authorization header they received, so a test can prove that the
client scrubs the token from what it prints.

For tests of failures and measurements: ``received`` lists (server, method, path, bytes of
body) of every request; ``fail_commits`` (``fail_tags``) makes the next commit(s) (tag requests) answer an error;
``after_commit`` runs hooks after each commit (another client's tag, say);
``hold_uploads(after=n)`` stops the storage server before reading the body of the
upload after the n-th, until released (a test kills the client meanwhile).

What it does NOT cover, honestly:

- Xet storage (what ``huggingface_hub`` uses when ``hf_xet`` is installed): the tests
  set ``HF_HUB_DISABLE_XET=1`` so the client takes the LFS path served here;
- the LFS ``multipart`` transfer (the batch API always chooses ``basic``);
- pull requests, ``refs/convert/parquet``, gated or private repos, the dataset viewer,
  ``expand`` fields beyond ``lastCommit``, pagination (every listing is one page), commit
  history listing, and any notion of users or organisations.
"""
from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import json
import secrets
import shutil
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import yaml

REPO_TYPES = ("model", "dataset", "space")
GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"
LFS_SIZE_LIMIT = 10 * 1000 * 1000  # the Hub sends files above 10 MB to LFS whatever they hold
LFS_JSON = "application/vnd.git-lfs+json"


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob (what the Hub reports as a regular file's ``oid``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _prefix(repo_type: str) -> str:
    return "" if repo_type == "model" else f"{repo_type}s/"


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, extra: dict | None = None,
                 echo: str = ""):
        super().__init__(message)
        self.status, self.message, self.code, self.extra, self.echo = status, message, code, extra or {}, echo


class Repo:
    """One repository: git blobs and LFS objects on disk, commits and refs in ``state.json``.

    A commit's files map path -> [git oid, size, sha256 or None]: the git oid of the
    content (regular) or of the LFS pointer (large file, whose sha256 names the object).
    """

    def __init__(self, folder: Path, repo_type: str, repo_id: str, visibility: str | None = None):
        """The repository in ``folder``, created (with ``visibility`` as asked, when given) if new."""
        self.folder, self.repo_type, self.repo_id = folder, repo_type, repo_id
        self.blobs = folder / "blobs"
        self.lfs = folder / "lfs"
        self.state_file = folder / "state.json"
        if self.state_file.exists():
            self.state = json.loads(self.state_file.read_text())
        else:
            self.blobs.mkdir(parents=True, exist_ok=True)
            self.lfs.mkdir(parents=True, exist_ok=True)
            self.state = {"created": _now(), "commits": {}, "branches": {}, "tags": {}}
            if visibility is not None:  # kept as asked; this server has no access control
                self.state["visibility"] = visibility
            oid = self._put(GITATTRIBUTES)
            self.state["branches"]["main"] = self._new_commit(
                None, {".gitattributes": [oid, len(GITATTRIBUTES), None]}, "initial commit")
            self._save()

    def _save(self) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        tmp.replace(self.state_file)

    def _put(self, data: bytes) -> str:
        oid = git_blob_oid(data)
        path = self.blobs / oid
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return oid

    def has_object(self, sha256: str, size: int | None = None) -> bool:
        path = self.lfs / sha256
        return path.exists() and (size is None or path.stat().st_size == size)

    def store_object(self, sha256: str, size: int, data: bytes) -> None:
        """Keep an uploaded LFS object, only when its bytes are what the batch request announced."""
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
            raise HubError(400, f"object {sha256}: received {len(data)} bytes whose sha256 differs from the oid "
                                f"or whose size differs from {size}")
        tmp = self.lfs / f".{sha256}.{secrets.token_hex(4)}.tmp"
        tmp.write_bytes(data)
        tmp.replace(self.lfs / sha256)

    def _new_commit(self, parent: str | None, files: dict, title: str, description: str = "") -> str:
        body = json.dumps({"parent": parent, "files": files, "title": title, "t": time.time_ns()}, sort_keys=True)
        oid = hashlib.sha1(body.encode()).hexdigest()
        self.state["commits"][oid] = {"parent": parent, "files": files, "title": title, "description": description,
                                      "date": _now()}
        return oid

    def resolve(self, rev: str) -> str:
        """A branch, tag or full commit id -> commit id."""
        if rev in self.state["branches"]:
            return self.state["branches"][rev]
        if rev in self.state["tags"]:
            return self.state["tags"][rev]
        if rev in self.state["commits"]:
            return rev
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def files(self, commit: str) -> dict[str, list]:
        return self.state["commits"][commit]["files"]

    def read(self, oid: str) -> bytes:
        return (self.blobs / oid).read_bytes()

    def content(self, commit: str, path: str) -> bytes:
        """The bytes a user downloads for ``path`` at ``commit`` (the LFS object, not its pointer)."""
        oid, _, sha256 = self.files(commit)[path]
        return (self.lfs / sha256).read_bytes() if sha256 else self.read(oid)

    def lfs_patterns(self, commit: str) -> list[str]:
        entry = self.files(commit).get(".gitattributes")
        text = self.read(entry[0]).decode() if entry else ""
        return [line.split()[0] for line in text.splitlines() if "filter=lfs" in line.split()[1:]]

    def commit(self, branch: str, lines: list[dict]) -> str:
        if branch not in self.state["branches"]:
            raise HubError(404, f"Invalid rev id: {branch} (commits go to a branch)", "RevisionNotFound")
        head = self.state["branches"][branch]
        files = dict(self.files(head))
        title, description = "", ""
        for line in lines:
            key, value = line.get("key"), line.get("value", {})
            if key == "header":
                title = value.get("summary", "")
                description = value.get("description", "")
                parent = value.get("parentCommit")
                if parent and not head.startswith(parent):
                    raise HubError(412, f"A commit has happened since. Parent {parent} is not the head {head}")
            elif key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"unsupported encoding {value.get('encoding')!r}")
                data = base64.b64decode(value["content"])
                files[value["path"]] = [self._put(data), len(data), None]
            elif key == "lfsFile":
                sha256, size = value.get("oid"), value.get("size")
                if value.get("algo") != "sha256" or not self.has_object(sha256, size):
                    raise HubError(422, f"{value.get('path')}: LFS object {sha256} ({size} bytes) was not uploaded")
                files[value["path"]] = [self._put(lfs_pointer(sha256, size)), size, sha256]
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, f"File not found: {value['path']}", "EntryNotFound")
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                for path in [p for p in files if p.startswith(prefix)]:
                    del files[path]
            else:
                raise HubError(400, f"unknown commit operation {key!r}")
        oid = self._new_commit(head, files, title, description)
        self.state["branches"][branch] = oid
        self._save()
        return oid

    def tag(self, rev: str, tag: str, message: str | None = None) -> None:
        if tag in self.state["tags"] or tag in self.state["branches"]:
            raise HubError(409, f"Tag {tag} already exists")
        self.state["tags"][tag] = self.resolve(rev)
        self.state.setdefault("tag_messages", {})[tag] = message
        self._save()

    def delete_tag(self, tag: str) -> None:
        if self.state["tags"].pop(tag, None) is None:
            raise HubError(404, f"Invalid rev id: {tag}", "RevisionNotFound")
        self._save()

    def card_data(self, commit: str) -> dict | None:
        entry = self.files(commit).get("README.md")
        if entry is None:
            return None
        text = self.read(entry[0]).decode()
        if not text.startswith("---"):
            return None
        meta = yaml.safe_load(text.split("---", 2)[1])
        return meta if isinstance(meta, dict) else None


class HubState:
    """Every repository of the server, stored under ``folder``."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.lock = threading.RLock()
        self._repos: dict[tuple[str, str], Repo] = {}

    def _path(self, repo_type: str, repo_id: str) -> Path:
        return self.folder / f"{repo_type}s" / repo_id

    def get(self, repo_type: str, repo_id: str) -> Repo:
        key = (repo_type, repo_id)
        if key not in self._repos:
            path = self._path(repo_type, repo_id)
            if not (path / "state.json").exists():
                raise HubError(404, f"Repository not found: {repo_type}s/{repo_id}", "RepoNotFound")
            self._repos[key] = Repo(path, repo_type, repo_id)
        return self._repos[key]

    def create(self, repo_type: str, repo_id: str, url: str, visibility: str | None = None) -> Repo:
        path = self._path(repo_type, repo_id)
        if (path / "state.json").exists():
            # the Hub's conflict answer carries the repo url: create_repo(exist_ok=True) reads it
            raise HubError(409, f"You already created this {repo_type} repo", extra={"url": url})
        self._repos[(repo_type, repo_id)] = Repo(path, repo_type, repo_id, visibility)
        return self._repos[(repo_type, repo_id)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects; every reply sets Content-Length
    server: "_Server"

    def log_message(self, format, *args):  # quiet: the tests read the server's request lists instead
        pass

    # ------------------------------------------------------------------ plumbing
    def _body(self) -> bytes:
        return self._raw

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200, headers: dict | None = None, content_type="application/json"):
        self._send(status, json.dumps(obj).encode(), headers, content_type)

    def _error(self, exc: HubError):
        headers = {"X-Error-Message": exc.message.replace("\n", " ")}
        if exc.code:
            headers["X-Error-Code"] = exc.code
        # the echo goes in the body only: clients put the body's message in their exceptions,
        # while HTTP debug logs show headers (and a real Hub echoes nothing)
        self._send(exc.status, json.dumps({"error": exc.message + exc.echo, **exc.extra}).encode(), headers)

    def _check_write(self):
        hub = self.server.hub
        got = self.headers.get("Authorization")
        if hub.token is None or got == f"Bearer {hub.token}":
            return
        # the echo is deliberate: it proves that clients scrub what the server says
        if hub.read_token is not None and got == f"Bearer {hub.read_token}":
            raise HubError(403, "You don't have the rights to write to this repository (your token is read-only)",
                           echo=f" (received Authorization: {got})")
        raise HubError(401, "Invalid credentials in Authorization header", echo=f" (received Authorization: {got})")

    def _dispatch(self):
        hub = self.server.hub
        url = urlsplit(self.path)
        # split the raw path first: revisions arrive URL-quoted (refs%2Fpr%2F1) and must stay one segment
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        hub.requests.append((self.command, url.path))
        try:
            if self.server.role == "storage" and self.command == "PUT":
                hub._maybe_hold()
            self._raw = self._read_body()  # before taking the lock: a slow upload must not stall readers
            hub.received.append((self.server.role, self.command, url.path, len(self._raw),
                                 self.headers.get("Authorization")))
            with hub.state.lock:
                if self.server.role == "storage":
                    self._storage(parts, query)
                else:
                    self._route(parts, query)
        except HubError as exc:
            self._error(exc)
        except (ConnectionError, ValueError, OSError):  # a client killed mid-request: nothing is kept
            self.close_connection = True

    do_GET = do_POST = do_HEAD = do_DELETE = do_PUT = _dispatch

    # ------------------------------------------------------------------ hub routes
    def _route(self, parts: list[str], query: dict):
        hub = self.server.hub
        state = hub.state
        if parts[:1] == ["api"] and parts[1:3] == ["repos", "create"] and self.command == "POST":
            self._check_write()
            body = json.loads(self._body() or b"{}")
            repo_type = body.get("type") or "model"
            repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
            url = f"{hub.url}/{_prefix(repo_type)}{repo_id}"
            state.create(repo_type, repo_id, url, body.get("visibility"))
            return self._json({"url": url, "name": repo_id, "id": repo_id})
        if parts[:2] == ["api", "validate-yaml"] and self.command == "POST":
            body = json.loads(self._body())
            text = body.get("content", "")
            try:
                meta = yaml.safe_load(text.split("---", 2)[1]) if text.startswith("---") else {}
            except yaml.YAMLError as exc:
                raise HubError(400, f"Invalid YAML in README.md: {exc}")
            if meta is not None and not isinstance(meta, dict):
                raise HubError(400, "README.md metadata must be a YAML mapping")
            return self._json({"errors": [], "warnings": []})
        if parts[0] == "api" and len(parts) >= 4 and parts[1].rstrip("s") in REPO_TYPES:
            return self._api(parts[1][:-1], f"{parts[2]}/{parts[3]}", parts[4:], query)
        repo_type = "model"
        if parts and parts[0] in ("datasets", "spaces"):
            repo_type, parts = parts[0][:-1], parts[1:]
        # /{datasets/}{ns}/{name}.git/info/lfs/objects/{batch,verify}
        if len(parts) == 6 and parts[1].endswith(".git") and parts[2:5] == ["info", "lfs", "objects"]:
            repo = state.get(repo_type, f"{parts[0]}/{parts[1][:-4]}")
            if parts[5] == "batch" and self.command == "POST":
                return self._lfs_batch(repo)
            if parts[5] == "verify" and self.command == "POST":
                self._check_write()
                body = json.loads(self._body())
                if not repo.has_object(body["oid"], body["size"]):
                    raise HubError(404, f"object {body['oid']} ({body['size']} bytes) is not in storage")
                return self._json({}, content_type=LFS_JSON)
        # /{datasets/}{ns}/{name}/resolve/{rev}/{path...}
        if len(parts) >= 5 and parts[2] == "resolve" and self.command in ("GET", "HEAD"):
            return self._resolve(state.get(repo_type, f"{parts[0]}/{parts[1]}"), parts[3], "/".join(parts[4:]))
        raise HubError(404, f"no route for {self.command} {self.path}")

    def _lfs_batch(self, repo: Repo):
        self._check_write()
        hub = self.server.hub
        body = json.loads(self._body())
        if body.get("operation") != "upload" or "basic" not in body.get("transfers", ["basic"]):
            raise HubError(422, "this server offers the upload operation with the basic transfer only")
        objects = []
        for obj in body["objects"]:
            oid, size = obj["oid"], obj["size"]
            out = {"oid": oid, "size": size, "authenticated": True}
            if not repo.has_object(oid, size):  # already stored: no action, the client sends nothing
                where = f"{repo.repo_type}/{repo.repo_id}/{oid}/{size}"
                out["actions"] = {
                    "upload": {"href": f"{hub.storage_url}/upload/{where}?sig={hub.sign(where)}", "expires_in": 3600},
                    "verify": {"href": f"{hub.url}/{_prefix(repo.repo_type)}{repo.repo_id}.git/info/lfs/objects/verify",
                               "expires_in": 3600},
                }
            objects.append(out)
        return self._json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}, content_type=LFS_JSON)

    def _api(self, repo_type: str, repo_id: str, rest: list[str], query: dict):
        hub = self.server.hub
        repo = hub.state.get(repo_type, repo_id)
        op = rest[0] if rest else ""
        if self.command == "GET" and op in ("", "revision"):
            commit = repo.resolve(rest[1] if op == "revision" else "main")
            return self._json(self._info(repo, commit, query.get("blobs") in ("True", "true", "1")))
        if self.command == "GET" and op == "refs":
            def ref(kind, name, oid):
                return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": oid}
            return self._json({"branches": [ref("heads", n, o) for n, o in repo.state["branches"].items()],
                               "tags": [ref("tags", n, o) for n, o in repo.state["tags"].items()],
                               "converts": [], "pullRequests": []})
        if self.command == "GET" and op == "tree":
            commit = repo.resolve(rest[1])
            prefix = "/".join(rest[2:]).strip("/")
            recursive = query.get("recursive") in ("True", "true", "1")
            return self._json(self._tree(repo, commit, prefix, recursive, query.get("expand") in ("True", "true", "1")))
        if self.command == "POST" and op == "paths-info":
            commit = repo.resolve(rest[1])
            form = parse_qs(self._body().decode())
            expand = form.get("expand", ["false"])[-1] in ("True", "true", "1")
            entries = []
            for path in form.get("paths", []):
                path = path.strip("/")
                entries += [e for e in self._tree(repo, commit, _parent(path), False, expand) if e["path"] == path]
            return self._json(entries)
        if self.command == "POST" and op == "preupload":
            self._check_write()
            commit = repo.resolve(rest[1])
            files = repo.files(commit)
            patterns = repo.lfs_patterns(commit)
            body = json.loads(self._body())
            out = []
            for f in body["files"]:
                binary = b"\0" in base64.b64decode(f.get("sample", ""))
                lfs = binary or f.get("size", 0) > LFS_SIZE_LIMIT or _matches(f["path"], patterns)
                old = files.get(f["path"])
                # the oid of a file already there: sha256 for a large file, the git oid otherwise
                remote = None if old is None else (old[2] or old[0])
                out.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular",
                            "shouldIgnore": False, "oid": remote})
            return self._json({"files": out})
        if self.command == "POST" and op == "commit":
            self._check_write()
            status = hub.fail_commits.pop(0) if hub.fail_commits else None
            if status:
                raise HubError(status, "Internal Error while committing",
                               echo=f" (request carried Authorization: {self.headers.get('Authorization')})")
            lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
            oid = repo.commit(rest[1], lines)
            for hook in hub.after_commit:
                hook(repo, oid)
            return self._json({"success": True, "commitOid": oid, "pullRequestUrl": None,
                               "commitUrl": f"{hub.url}/{_prefix(repo_type)}{repo_id}/commit/{oid}"})
        if self.command == "POST" and op == "tag":
            self._check_write()
            status = hub.fail_tags.pop(0) if hub.fail_tags else None
            if status:
                raise HubError(status, "Internal Error while tagging")
            body = json.loads(self._body())
            repo.tag(rest[1], body["tag"], body.get("message"))
            return self._json({})
        if self.command == "DELETE" and op == "tag":
            self._check_write()
            repo.delete_tag(rest[1])
            return self._json({})
        raise HubError(404, f"no route for {self.command} {self.path}")

    def _info(self, repo: Repo, commit: str, blobs: bool) -> dict:
        files = repo.files(commit)
        siblings = []
        for path, (oid, size, sha256) in sorted(files.items()):
            extra = {}
            if blobs:
                extra = {"size": size, "blobId": oid}
                if sha256:
                    extra["lfs"] = {"sha256": sha256, "size": size, "pointerSize": len(lfs_pointer(sha256, size))}
            siblings.append({"rfilename": path, **extra})
        return {"_id": repo.repo_id, "id": repo.repo_id, "author": repo.repo_id.split("/")[0], "sha": commit,
                "private": False, "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
                "createdAt": repo.state["created"], "lastModified": repo.state["commits"][commit]["date"],
                "cardData": repo.card_data(commit), "siblings": siblings}

    def _tree(self, repo: Repo, commit: str, prefix: str, recursive: bool, expand: bool) -> list[dict]:
        files = repo.files(commit)
        if prefix and prefix not in {_parent(p) for p in files} and not any(p.startswith(prefix + "/") for p in files):
            raise HubError(404, f"Entry not found: {prefix}", "EntryNotFound")
        last = {"id": commit, "title": repo.state["commits"][commit]["title"], "date": repo.state["commits"][commit]["date"]}
        out, folders = [], set()
        base = prefix + "/" if prefix else ""
        for path, (oid, size, sha256) in sorted(files.items()):
            if not path.startswith(base):
                continue
            rest = path[len(base):].split("/")
            # every folder on the way (all of them when recursive, the first level otherwise)
            for depth in range(1, len(rest) if recursive else min(2, len(rest))):
                folders.add(base + "/".join(rest[:depth]))
            if recursive or len(rest) == 1:
                entry = {"type": "file", "oid": oid, "size": size, "path": path}
                if sha256:
                    entry["lfs"] = {"oid": sha256, "size": size, "pointerSize": len(lfs_pointer(sha256, size))}
                out.append({**entry, **({"lastCommit": last} if expand else {})})
        for folder in sorted(folders):
            oid = hashlib.sha1(f"{commit}:{folder}".encode()).hexdigest()
            out.append({"type": "directory", "oid": oid, "size": 0, "path": folder,
                        **({"lastCommit": last} if expand else {})})
        return out

    def _resolve(self, repo: Repo, rev: str, path: str):
        hub = self.server.hub
        commit = repo.resolve(rev)
        entry = repo.files(commit).get(path)
        if entry is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        oid, size, sha256 = entry
        if sha256:  # a large file: the Hub redirects to signed storage and names the object
            where = f"{repo.repo_type}/{repo.repo_id}/{sha256}/{size}"
            return self._send(302, b"", {
                "Location": f"{hub.storage_url}/object/{where}?sig={hub.sign(where)}",
                "ETag": f'"{oid}"', "X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(size),
                "X-Repo-Commit": commit})
        self._serve(repo.read(oid), {"ETag": f'"{oid}"', "X-Repo-Commit": commit})

    def _serve(self, data: bytes, headers: dict):
        headers = {**headers, "Accept-Ranges": "bytes"}
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start_s, _, end_s = rng[len("bytes="):].partition("-")
            if start_s == "":  # suffix range: the last N bytes
                start, end = max(0, len(data) - int(end_s)), len(data) - 1
            else:
                start, end = int(start_s), min(int(end_s) if end_s else len(data) - 1, len(data) - 1)
            if start >= len(data) and len(data):
                return self._send(416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return self._send(206, data[start:end + 1], headers, "application/octet-stream")
        self._send(200, data, headers, "application/octet-stream")

    # ------------------------------------------------------------------ storage routes (another origin)
    def _storage(self, parts: list[str], query: dict):
        """``PUT /upload/{type}/{ns}/{name}/{sha256}/{size}`` and ``GET|HEAD /object/...``, signed."""
        hub = self.server.hub
        if len(parts) != 6 or parts[0] not in ("upload", "object"):
            raise HubError(404, f"no route for {self.command} {self.path}")
        where = "/".join(parts[1:])
        if not hmac.compare_digest(query.get("sig", ""), hub.sign(where)):
            raise HubError(403, "signature does not match")
        repo = hub.state.get(parts[1], f"{parts[2]}/{parts[3]}")
        sha256, size = parts[4], int(parts[5])
        if parts[0] == "upload" and self.command == "PUT":
            repo.store_object(sha256, size, self._body())
            return self._send(200, b"", {"ETag": f'"{sha256}"'})
        if parts[0] == "object" and self.command in ("GET", "HEAD"):
            if not repo.has_object(sha256, size):
                raise HubError(404, "no such object")
            return self._serve((repo.lfs / sha256).read_bytes(), {"ETag": f'"{sha256}"'})
        raise HubError(405, f"{self.command} not allowed here")


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def _matches(path: str, patterns: list[str]) -> bool:
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(name if "/" not in p else path, p) for p in patterns)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: "HubServer"
    role: str  # "hub" or "storage"


class HubServer:
    """Start with ``HubServer(folder).start()``; ``url`` is the endpoint; ``stop()`` ends it.

    ``token``: when given, write requests must carry it as a bearer token (reads are public);
    ``read_token``: a token the server knows but refuses for writes (403).
    ``requests`` lists (method, path) of every request served by either origin;
    ``received`` lists (role, method, path, body bytes, Authorization header).
    """

    def __init__(self, folder: Path, token: str | None = None, host: str = "127.0.0.1",
                 read_token: str | None = None):
        self.folder = Path(folder)
        self.token, self.read_token = token, read_token
        self.state = HubState(self.folder)
        self.requests: list = []
        self.received: list = []
        self.fail_commits: list = []  # what the next commits answer, in order: a status, or None to pass
        self.fail_tags: list = []  # the same for the next tag requests
        self.after_commit: list = []  # callables (repo, commit) run after each commit, under the lock
        self._secret = secrets.token_bytes(16)
        self._hold_after: int | None = None
        self._puts = 0
        self._hold_lock = threading.Lock()
        self.held = threading.Event()
        self.release = threading.Event()
        self._servers = []
        for role in ("hub", "storage"):
            httpd = _Server((host, 0), _Handler)
            httpd.hub, httpd.role = self, role
            self._servers.append(httpd)
        self.url = f"http://{host}:{self._servers[0].server_address[1]}"
        self.storage_url = f"http://{host}:{self._servers[1].server_address[1]}"
        self._threads = [threading.Thread(target=s.serve_forever, name=f"hub-server-{s.role}", daemon=True)
                         for s in self._servers]

    def sign(self, where: str) -> str:
        return hmac.new(self._secret, quote(where).encode(), hashlib.sha256).hexdigest()[:32]

    @contextmanager
    def after_each_commit(self, hook):
        """Run ``hook(repo, commit)`` after each commit (under the state lock) while the block runs."""
        self.after_commit.append(hook)
        try:
            yield
        finally:
            self.after_commit.remove(hook)

    def hold_uploads(self, after: int) -> None:
        """Let ``after`` more storage uploads through, then hold the next one (before its body
        is read) until ``release`` is set; ``held`` is set when that happens."""
        self._puts, self._hold_after = 0, after
        self.held.clear()
        self.release.clear()

    def _maybe_hold(self) -> None:
        with self._hold_lock:
            if self._hold_after is None:
                return
            self._puts += 1
            hold = self._puts > self._hold_after
        if hold:
            self.held.set()
            self.release.wait(timeout=120)
            self._hold_after = None
            raise ConnectionError("held upload released after its client went away")

    def uploaded_objects(self, since: int = 0) -> list[tuple[str, int]]:
        """(sha256, bytes received) of every storage upload since ``received[since]``."""
        return [(path.split("/")[-2], n) for role, method, path, n, _ in self.received[since:]
                if role == "storage" and method == "PUT"]

    def start(self) -> "HubServer":
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self.release.set()
        for s in self._servers:
            s.shutdown()
            s.server_close()
        for t in self._threads:
            t.join(timeout=5)

    def wipe(self) -> None:
        """Forget every repository (for a test that needs an empty hub)."""
        with self.state.lock:
            self.state._repos.clear()
            shutil.rmtree(self.folder, ignore_errors=True)
