"""A small local server speaking the part of the Hugging Face Hub HTTP API that
``huggingface_hub`` and ``datasets`` use to publish and to load a dataset at a revision.

Made for the publish and pinning tests: it runs on 127.0.0.1 in a thread of the test
process, keeps its repositories in a folder (file contents as content-addressed blobs,
commits, branches and tags as JSON), and serves:

- ``POST /api/repos/create`` and ``POST /api/validate-yaml`` (README front matter must be
  a YAML mapping);
- ``GET /api/{type}s/{repo}`` and ``.../revision/{rev}`` (repo info with ``sha``,
  ``siblings`` and ``cardData``), ``.../refs``, ``.../tree/{rev}[/{path}]``,
  ``POST .../paths-info/{rev}``;
- ``POST .../preupload/{rev}`` and ``POST .../commit/{rev}`` (NDJSON: header, inline
  base64 ``file``, ``deletedFile``, ``deletedFolder``; ``parentCommit`` is checked);
- ``POST .../tag/{rev}`` (409 when the tag exists) and ``DELETE .../tag/{tag}``;
- ``GET``/``HEAD /{datasets/}{repo}/resolve/{rev}/{path}`` with ``ETag``, ``X-Repo-Commit``,
  ``Content-Length``, ``Accept-Ranges`` and single ``Range`` requests (206).

Errors carry ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound) and
``X-Error-Message`` as the Hub does, so the client raises its usual exception types.
Writes require ``Authorization: Bearer <token>`` when the server is given a token.

What it does NOT cover, honestly:

- large-file uploads: preupload always answers ``uploadMode: "regular"`` so every file
  travels inline in the commit; a ``lfsFile`` line is refused with 422. The Git LFS batch
  API and Xet storage (what the real Hub picks for Parquet files) are not implemented, so
  the large-file branch of ``huggingface_hub`` is not exercised by these tests;
- pull requests, ``refs/convert/parquet``, gated or private repos, the dataset viewer,
  ``expand`` fields beyond ``lastCommit``, pagination (every listing is one page), commit
  history listing, and any notion of users or organisations.
"""
from __future__ import annotations

import base64
import hashlib
import json
import shutil
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

REPO_TYPES = ("model", "dataset", "space")
GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob (what the Hub reports as a regular file's ``oid``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra or {}


class Repo:
    """One repository: blobs on disk, commits and refs in ``state.json``."""

    def __init__(self, folder: Path, repo_type: str, repo_id: str):
        self.folder, self.repo_type, self.repo_id = folder, repo_type, repo_id
        self.blobs = folder / "blobs"
        self.state_file = folder / "state.json"
        if self.state_file.exists():
            self.state = json.loads(self.state_file.read_text())
        else:
            self.blobs.mkdir(parents=True, exist_ok=True)
            self.state = {"created": _now(), "commits": {}, "branches": {}, "tags": {}}
            oid = self._put(GITATTRIBUTES)
            self.state["branches"]["main"] = self._new_commit(None, {".gitattributes": [oid, len(GITATTRIBUTES)]},
                                                              "initial commit")
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

    def _new_commit(self, parent: str | None, files: dict, title: str) -> str:
        body = json.dumps({"parent": parent, "files": files, "title": title, "t": time.time_ns()}, sort_keys=True)
        oid = hashlib.sha1(body.encode()).hexdigest()
        self.state["commits"][oid] = {"parent": parent, "files": files, "title": title, "date": _now()}
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

    def commit(self, branch: str, lines: list[dict]) -> str:
        if branch not in self.state["branches"]:
            raise HubError(404, f"Invalid rev id: {branch} (commits go to a branch)", "RevisionNotFound")
        head = self.state["branches"][branch]
        files = dict(self.files(head))
        title = ""
        for line in lines:
            key, value = line.get("key"), line.get("value", {})
            if key == "header":
                title = value.get("summary", "")
                parent = value.get("parentCommit")
                if parent and not head.startswith(parent):
                    raise HubError(412, f"A commit has happened since. Parent {parent} is not the head {head}")
            elif key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"unsupported encoding {value.get('encoding')!r}")
                data = base64.b64decode(value["content"])
                files[value["path"]] = [self._put(data), len(data)]
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, f"File not found: {value['path']}", "EntryNotFound")
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                for path in [p for p in files if p.startswith(prefix)]:
                    del files[path]
            elif key == "lfsFile":
                raise HubError(422, "this test server does not implement large-file (LFS/Xet) uploads")
            else:
                raise HubError(400, f"unknown commit operation {key!r}")
        oid = self._new_commit(head, files, title)
        self.state["branches"][branch] = oid
        self._save()
        return oid

    def tag(self, rev: str, tag: str) -> None:
        if tag in self.state["tags"] or tag in self.state["branches"]:
            raise HubError(409, f"Tag {tag} already exists")
        self.state["tags"][tag] = self.resolve(rev)
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

    def create(self, repo_type: str, repo_id: str, url: str) -> Repo:
        path = self._path(repo_type, repo_id)
        if (path / "state.json").exists():
            # the Hub's conflict answer carries the repo url: create_repo(exist_ok=True) reads it
            raise HubError(409, f"You already created this {repo_type} repo", extra={"url": url})
        self._repos[(repo_type, repo_id)] = Repo(path, repo_type, repo_id)
        return self._repos[(repo_type, repo_id)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects; every reply sets Content-Length
    server: "_Server"

    def log_message(self, format, *args):  # quiet: the tests read self.server.requests instead
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

    def _json(self, obj, status: int = 200, headers: dict | None = None):
        self._send(status, json.dumps(obj).encode(), headers)

    def _error(self, exc: HubError):
        headers = {"X-Error-Message": exc.message}
        if exc.code:
            headers["X-Error-Code"] = exc.code
        self._send(exc.status, json.dumps({"error": exc.message, **exc.extra}).encode(), headers)

    def _check_write(self):
        token = self.server.token
        if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
            raise HubError(401, "Invalid credentials in Authorization header")

    def _dispatch(self):
        url = urlsplit(self.path)
        # split the raw path first: revisions arrive URL-quoted (refs%2Fpr%2F1) and must stay one segment
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.server.requests.append((self.command, url.path))
        self._raw = self._read_body()  # before taking the lock: a slow upload must not stall readers
        try:
            with self.server.state.lock:
                self._route(parts, query)
        except HubError as exc:
            self._error(exc)

    do_GET = do_POST = do_HEAD = do_DELETE = _dispatch

    # ------------------------------------------------------------------ routes
    def _route(self, parts: list[str], query: dict):
        state = self.server.state
        if parts[:1] == ["api"] and parts[1:3] == ["repos", "create"] and self.command == "POST":
            self._check_write()
            body = json.loads(self._body() or b"{}")
            repo_type = body.get("type") or "model"
            repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            url = f"{self.server.base_url}/{prefix}{repo_id}"
            state.create(repo_type, repo_id, url)
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
        # /{datasets/}{ns}/{name}/resolve/{rev}/{path...}
        repo_type = "model"
        if parts and parts[0] in ("datasets", "spaces"):
            repo_type, parts = parts[0][:-1], parts[1:]
        if len(parts) >= 5 and parts[2] == "resolve" and self.command in ("GET", "HEAD"):
            return self._resolve(state.get(repo_type, f"{parts[0]}/{parts[1]}"), parts[3], "/".join(parts[4:]))
        raise HubError(404, f"no route for {self.command} {self.path}")

    def _api(self, repo_type: str, repo_id: str, rest: list[str], query: dict):
        repo = self.server.state.get(repo_type, repo_id)
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
            body = json.loads(self._body())
            return self._json({"files": [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                 "oid": files[f["path"]][0] if f["path"] in files else None}
                for f in body["files"]]})
        if self.command == "POST" and op == "commit":
            self._check_write()
            lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
            oid = repo.commit(rest[1], lines)
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            return self._json({"success": True, "commitOid": oid, "pullRequestUrl": None,
                               "commitUrl": f"{self.server.base_url}/{prefix}{repo_id}/commit/{oid}"})
        if self.command == "POST" and op == "tag":
            self._check_write()
            repo.tag(rest[1], json.loads(self._body())["tag"])
            return self._json({})
        if self.command == "DELETE" and op == "tag":
            self._check_write()
            repo.delete_tag(rest[1])
            return self._json({})
        raise HubError(404, f"no route for {self.command} {self.path}")

    def _info(self, repo: Repo, commit: str, blobs: bool) -> dict:
        files = repo.files(commit)
        siblings = []
        for path, (oid, size) in sorted(files.items()):
            siblings.append({"rfilename": path, **({"size": size, "blobId": oid} if blobs else {})})
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
        for path, (oid, size) in sorted(files.items()):
            if not path.startswith(base):
                continue
            rest = path[len(base):].split("/")
            # every folder on the way (all of them when recursive, the first level otherwise)
            for depth in range(1, len(rest) if recursive else min(2, len(rest))):
                folders.add(base + "/".join(rest[:depth]))
            if recursive or len(rest) == 1:
                out.append({"type": "file", "oid": oid, "size": size, "path": path,
                            **({"lastCommit": last} if expand else {})})
        for folder in sorted(folders):
            oid = hashlib.sha1(f"{commit}:{folder}".encode()).hexdigest()
            out.append({"type": "directory", "oid": oid, "size": 0, "path": folder,
                        **({"lastCommit": last} if expand else {})})
        return out

    def _resolve(self, repo: Repo, rev: str, path: str):
        commit = repo.resolve(rev)
        entry = repo.files(commit).get(path)
        if entry is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        data = repo.read(entry[0])
        headers = {"ETag": f'"{entry[0]}"', "X-Repo-Commit": commit, "Accept-Ranges": "bytes"}
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


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState
    token: str | None
    base_url: str
    requests: list


class HubServer:
    """Start with ``HubServer(folder).start()``; ``url`` is the endpoint; ``stop()`` ends it.

    ``token``: when given, write requests must carry it as a bearer token (reads are public).
    ``requests`` lists (method, path) of every request served, for assertions.
    """

    def __init__(self, folder: Path, token: str | None = None, host: str = "127.0.0.1"):
        self.folder = Path(folder)
        self._httpd = _Server((host, 0), _Handler)
        self._httpd.state = HubState(self.folder)
        self._httpd.token = token
        self._httpd.requests = []
        self.url = f"http://{host}:{self._httpd.server_address[1]}"
        self._httpd.base_url = self.url
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)

    @property
    def requests(self) -> list:
        return self._httpd.requests

    @property
    def state(self) -> HubState:
        return self._httpd.state

    def start(self) -> "HubServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def wipe(self) -> None:
        """Forget every repository (for a test that needs an empty hub)."""
        with self._httpd.state.lock:
            self._httpd.state._repos.clear()
            shutil.rmtree(self.folder, ignore_errors=True)
