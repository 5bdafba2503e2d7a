"""A small Hugging Face Hub for the tests: real HTTP on 127.0.0.1, repos stored on disk.

It speaks the part of the Hub API that `huggingface_hub`'s upload and `datasets`' loading call,
with Xet off (`HF_HUB_DISABLE_XET=1`), so the real clients run unchanged against it:

    server = HubServer(tmp_path / "hub", tokens={"hf_test": "alice"})
    server.start()                      # server.url is the HF_ENDPOINT to give the clients
    server.fail("POST", "/commit/", status=429, times=2, retry_after=0)
    server.commits("alice/data")        # commit oids on main, newest first
    server.stop()

Storage: `ROOT/objects/SHA256` holds file contents; `ROOT/repos/TYPE/OWNER/NAME.json` holds a
repo's visibility, branches and commits (each commit maps a path to its sha256, size and whether
it is stored through LFS). Private repos answer 401 to requests without a known token, as the Hub
does. Requests the server does not know are logged in `server.unknown` and answered 404.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

REPO = r"(?P<rtype>datasets|models|spaces)/(?P<repo>[^/]+/[^/]+?)"
REV = r"(?P<rev>[^/]+)"
# Files the Hub stores through LFS: binary data files (the real Hub decides from .gitattributes
# and the content; an extension list is enough for what the factory uploads).
LFS_SUFFIXES = (".parquet", ".arrow", ".bin", ".safetensors")


@dataclass
class Fault:
    method: str
    fragment: str
    status: int
    times: int
    retry_after: float | None
    after: int = 0


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    text = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
    return text.encode()


class HubState:
    """Repos, branches, commits and blobs on disk, behind one lock."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.lock = threading.RLock()
        (self.root / "objects").mkdir(parents=True, exist_ok=True)

    def _meta_path(self, rtype: str, repo: str) -> Path:
        return self.root / "repos" / rtype / f"{repo}.json"

    def load(self, rtype: str, repo: str) -> dict[str, Any] | None:
        path = self._meta_path(rtype, repo)
        return json.loads(path.read_text()) if path.is_file() else None

    def save(self, rtype: str, repo: str, meta: dict[str, Any]) -> None:
        path = self._meta_path(rtype, repo)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(meta, indent=1))

    def put_object(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self.root / "objects" / sha
        if not path.is_file():
            path.write_bytes(data)
        return sha

    def has_object(self, sha: str) -> bool:
        return (self.root / "objects" / sha).is_file()

    def get_object(self, sha: str) -> bytes:
        return (self.root / "objects" / sha).read_bytes()

    def create(self, rtype: str, repo: str, private: bool, owner: str) -> None:
        attributes = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"
        sha = self.put_object(attributes)
        files = {".gitattributes": {"sha256": sha, "size": len(attributes), "lfs": False}}
        meta = {"private": private, "owner": owner, "branches": {}, "commits": {}}
        oid = self._add_commit(meta, None, files, "initial commit")
        meta["branches"]["main"] = oid
        self.save(rtype, repo, meta)

    @staticmethod
    def _add_commit(meta: dict[str, Any], parent: str | None, files: dict[str, Any],
                    message: str) -> str:
        payload = json.dumps([parent, files, message, len(meta["commits"]), time.time()])
        oid = hashlib.sha1(payload.encode()).hexdigest()
        meta["commits"][oid] = {"parent": parent, "files": files, "message": message,
                                "date": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}
        return oid

    @staticmethod
    def resolve(meta: dict[str, Any], rev: str) -> str | None:
        if rev in meta["branches"]:
            return meta["branches"][rev]
        if rev in meta["commits"]:
            return rev
        return None

    def commit(self, rtype: str, repo: str, branch: str, lines: list[dict[str, Any]]
               ) -> tuple[int, dict[str, Any]]:
        with self.lock:
            meta = self.load(rtype, repo)
            assert meta is not None
            head = meta["branches"].get(branch)
            if head is None:
                return 404, {"error": f"Invalid rev id: {branch}"}
            files = dict(meta["commits"][head]["files"])
            header: dict[str, Any] = {}
            for line in lines:
                key, value = line["key"], line["value"]
                if key == "header":
                    header = value
                elif key == "file":
                    data = base64.b64decode(value["content"])
                    files[value["path"]] = {"sha256": self.put_object(data), "size": len(data),
                                            "lfs": False}
                elif key == "lfsFile":
                    if not self.has_object(value["oid"]):
                        return 400, {"error": f"LFS object {value['oid']} was never uploaded"}
                    size = len(self.get_object(value["oid"]))
                    files[value["path"]] = {"sha256": value["oid"], "size": size, "lfs": True}
                elif key == "deletedFile":
                    if value["path"] not in files:
                        return 404, {"error": "A file with this name doesn't exist"}
                    del files[value["path"]]
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    files = {p: f for p, f in files.items() if not p.startswith(prefix)}
                else:
                    return 400, {"error": f"unknown commit operation {key!r}"}
            parent = header.get("parentCommit")
            if parent and parent != head:
                return 412, {"error": "A commit has happened since. Please refresh and try again."}
            message = header.get("summary", "")
            oid = self._add_commit(meta, head, files, message)
            meta["branches"][branch] = oid
            self.save(rtype, repo, meta)
            return 200, {"commitOid": oid, "commitUrl": f"/{rtype}/{repo}/commit/{oid}",
                         "pullRequestUrl": None}


class HubServer:
    """The test Hub, served from a thread on an ephemeral port of 127.0.0.1."""

    def __init__(self, root: Path, tokens: dict[str, str] | None = None) -> None:
        self.state = HubState(root)
        self.tokens = dict(tokens or {})
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, int]] = []
        self.unknown: list[str] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        handler = type("Handler", (HubHandler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def fail(self, method: str, fragment: str, *, status: int = 429, times: int = 1,
             retry_after: float | None = None, after: int = 0) -> None:
        """After `after` more requests whose path contains `fragment`, the next `times` answer
        `status` (with a `Retry-After` header when given)."""
        self.faults.append(Fault(method, fragment, status, times, retry_after, after))

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.state.lock:
            for fault in self.faults:
                if fault.times > 0 and fault.method == method and fault.fragment in path:
                    if fault.after > 0:
                        fault.after -= 1
                        continue
                    fault.times -= 1
                    return fault
        return None

    def commits(self, repo: str, branch: str = "main", rtype: str = "datasets") -> list[str]:
        """Commit oids reachable from `branch`, newest first."""
        meta = self.state.load(rtype, repo)
        if meta is None or branch not in meta["branches"]:
            return []
        out, oid = [], meta["branches"][branch]
        while oid:
            out.append(oid)
            oid = meta["commits"][oid]["parent"]
        return out

    def files(self, repo: str, branch: str = "main", rtype: str = "datasets") -> dict[str, Any]:
        meta = self.state.load(rtype, repo)
        assert meta is not None
        return meta["commits"][meta["branches"][branch]]["files"]

    def count(self, method: str, fragment: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == method and fragment in p)


class HubHandler(BaseHTTPRequestHandler):
    hub: HubServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    # -- dispatch ------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib names
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        self.status = 0
        self.method, self.route = method, split.path
        body = self._read_body()
        try:
            fault = self.hub.take_fault(method, split.path)
            if fault:
                headers = ({"Retry-After": str(fault.retry_after)}
                           if fault.retry_after is not None else {})
                self._json(fault.status, {"error": "injected fault"}, headers)
                return
            for verb, pattern, name in ROUTES:
                match = pattern.fullmatch(split.path)
                if match and verb == method or (match and verb == "GET" and method == "HEAD"):
                    getattr(self, name)(body=body, **match.groupdict())
                    return
            self.hub.unknown.append(f"{method} {self.path}")
            self._json(404, {"error": "not implemented by the test hub"})
        except Exception as exc:  # noqa: BLE001 - a test server answers 500, never dies
            try:
                self._json(500, {"error": f"{type(exc).__name__}: {exc}"})
            except OSError:  # the client went away
                pass

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # -- responses -----------------------------------------------------------------------------

    def _send(self, status: int, data: bytes, headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.status = status
        # recorded before the answer leaves, so a client never sees it before the test can
        self.hub.requests.append((self.method, self.route, status))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _error(self, status: int, code: str, message: str) -> None:
        self._json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

    # -- auth and lookup -----------------------------------------------------------------------

    def _user(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip()
        return self.hub.tokens.get(token)

    def _repo(self, rtype: str, repo: str, *, write: bool = False) -> dict[str, Any] | None:
        """The repo's metadata, or None after answering the error the Hub would give."""
        meta = self.hub.state.load(rtype, unquote(repo))
        user = self._user()
        if meta is None or (meta["private"] and user is None):
            status = 401 if user is None else 404
            self._error(status, "RepoNotFound", "Repository not found")
            return None
        if write and user is None:
            self._error(401, "RepoNotFound", "Invalid credentials in Authorization header")
            return None
        return meta

    def _revision(self, meta: dict[str, Any], rev: str) -> str | None:
        oid = HubState.resolve(meta, unquote(rev))
        if oid is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {unquote(rev)}")
        return oid

    def _commit(self, rtype: str, repo: str, rev: str, *,
                write: bool = False) -> tuple[dict[str, Any], str] | None:
        """The repo's metadata and the commit `rev` names, or None after answering the error."""
        meta = self._repo(rtype, repo, write=write)
        oid = self._revision(meta, rev) if meta is not None else None
        return (meta, oid) if meta is not None and oid is not None else None

    # -- repos ---------------------------------------------------------------------------------

    def create_repo(self, body: bytes) -> None:
        user = self._user()
        if user is None:
            self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
            return
        payload = json.loads(body)
        rtype = payload.get("type", "model") + "s"
        repo = f"{payload.get('organization') or user}/{payload['name']}"
        private = payload.get("private", payload.get("visibility") == "private")
        with self.hub.state.lock:
            if self.hub.state.load(rtype, repo) is not None:
                self._json(409, {"error": "You already created this dataset repo",
                                 "url": f"{self.hub.url}/{rtype}/{repo}"})
                return
            self.hub.state.create(rtype, repo, bool(private), user)
        self._json(200, {"url": f"{self.hub.url}/{rtype}/{repo}", "name": repo})

    def repo_info(self, rtype: str, repo: str, body: bytes, rev: str = "main") -> None:
        found = self._commit(rtype, repo, rev)
        if found is None:
            return
        meta, oid = found
        commit = meta["commits"][oid]
        self._json(200, {
            "id": unquote(repo), "_id": unquote(repo), "author": meta["owner"], "sha": oid,
            "private": meta["private"], "gated": False, "disabled": False, "downloads": 0,
            "likes": 0, "tags": [], "lastModified": commit["date"],
            "siblings": [{"rfilename": p} for p in sorted(commit["files"])],
        })

    def create_branch(self, rtype: str, repo: str, rev: str, body: bytes) -> None:
        meta = self._repo(rtype, repo, write=True)
        if meta is None:
            return
        branch = unquote(rev)
        with self.hub.state.lock:
            meta = self.hub.state.load(rtype, unquote(repo))
            assert meta is not None
            if branch in meta["branches"]:
                self._json(409, {"error": "Reference already exists"})
                return
            start = (json.loads(body or b"{}") or {}).get("startingPoint") or "main"
            oid = HubState.resolve(meta, start)
            if oid is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {start}")
                return
            meta["branches"][branch] = oid
            self.hub.state.save(rtype, unquote(repo), meta)
        self._json(200, {})

    def refs(self, rtype: str, repo: str, body: bytes) -> None:
        meta = self._repo(rtype, repo)
        if meta is None:
            return
        branches = [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": oid}
                    for b, oid in meta["branches"].items()]
        self._json(200, {"branches": branches, "tags": [], "converts": []})

    def list_commits(self, rtype: str, repo: str, rev: str, body: bytes) -> None:
        meta = self._repo(rtype, repo)
        if meta is None or self._revision(meta, rev) is None:
            return
        oids = self.hub.commits(unquote(repo), unquote(rev), rtype)
        self._json(200, [{"id": oid, "title": meta["commits"][oid]["message"], "message": "",
                          "authors": [], "date": meta["commits"][oid]["date"]} for oid in oids])

    def validate_yaml(self, body: bytes) -> None:
        import yaml

        content = json.loads(body)["content"]
        match = re.match(r"^---\n(.*?)\n---\n", content, re.DOTALL)
        try:
            data = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as exc:
            self._json(400, {"errors": [{"message": str(exc)}], "warnings": []})
            return
        if not isinstance(data, dict):
            self._json(400, {"errors": [{"message": "metadata must be a mapping"}],
                             "warnings": []})
            return
        self._json(200, {"errors": [], "warnings": []})

    def agent_harnesses(self, body: bytes) -> None:
        """The registry `huggingface_hub` reads to name the agent in its user agent: empty."""
        self._json(200, {"standardEnvVars": [], "harnesses": {}})

    # -- upload --------------------------------------------------------------------------------

    def preupload(self, rtype: str, repo: str, rev: str, body: bytes) -> None:
        found = self._commit(rtype, repo, rev, write=True)
        if found is None:
            return
        meta, oid = found
        current = meta["commits"][oid]["files"]
        answer = []
        for f in json.loads(body)["files"]:
            lfs = f["path"].endswith(LFS_SUFFIXES)
            remote = current.get(f["path"])
            remote_oid = None
            if remote is not None:
                remote_oid = (remote["sha256"] if lfs else
                              git_blob_oid(self.hub.state.get_object(remote["sha256"])))
            answer.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular",
                           "shouldIgnore": False, "oid": remote_oid})
        self._json(200, {"files": answer})

    def lfs_batch(self, rtype: str, repo: str, body: bytes) -> None:
        if self._repo(rtype, repo, write=True) is None:
            return
        payload = json.loads(body)
        objects = []
        for obj in payload["objects"]:
            entry: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"],
                                     "authenticated": True}
            if not self.hub.state.has_object(obj["oid"]):
                entry["actions"] = {"upload": {"href": f"{self.hub.url}/lfs-objects/{obj['oid']}",
                                               "expires_in": 3600}}
            objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects},
                   {"Content-Type": "application/vnd.git-lfs+json"})

    def lfs_upload(self, oid: str, body: bytes) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            self._json(400, {"error": "content does not match its oid"})
            return
        self.hub.state.put_object(body)
        self._json(200, {})

    def commit(self, rtype: str, repo: str, rev: str, body: bytes) -> None:
        meta = self._repo(rtype, repo, write=True)
        if meta is None:
            return
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        status, answer = self.hub.state.commit(rtype, unquote(repo), unquote(rev), lines)
        if status == 404 and "rev id" in answer["error"]:
            self._error(404, "RevisionNotFound", answer["error"])
            return
        if status == 200:
            answer["commitUrl"] = self.hub.url + answer["commitUrl"]
        self._json(status, answer)

    # -- download ------------------------------------------------------------------------------

    def _entry(self, path: str, f: dict[str, Any]) -> dict[str, Any]:
        if f["lfs"]:
            pointer = lfs_pointer(f["sha256"], f["size"])
            return {"type": "file", "path": path, "size": f["size"], "oid": git_blob_oid(pointer),
                    "lfs": {"oid": f["sha256"], "size": f["size"], "pointerSize": len(pointer)}}
        blob = self.hub.state.get_object(f["sha256"])
        return {"type": "file", "path": path, "size": f["size"], "oid": git_blob_oid(blob)}

    def _entries(self, files: dict[str, Any], base: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = base.strip("/") + "/" if base.strip("/") else ""
        out: list[dict[str, Any]] = []
        folders: set[str] = set()
        for path in sorted(files):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix):].split("/")
            for depth in range(1, len(parts)):
                folder = prefix + "/".join(parts[:depth])
                if (recursive or depth == 1) and folder not in folders:
                    folders.add(folder)
                    out.append({"type": "directory", "path": folder, "size": 0,
                                "oid": hashlib.sha1(folder.encode()).hexdigest()})
            if recursive or len(parts) == 1:
                out.append(self._entry(path, files[path]))
        return out

    def tree(self, rtype: str, repo: str, rev: str, body: bytes, path: str = "") -> None:
        found = self._commit(rtype, repo, rev)
        if found is None:
            return
        meta, oid = found
        files = meta["commits"][oid]["files"]
        base = unquote(path)
        entries = self._entries(files, base, self.query.get("recursive") in ("1", "true", "True"))
        if base and not entries:
            self._error(404, "EntryNotFound", f"{base} does not exist on {unquote(rev)}")
            return
        self._json(200, entries)

    def paths_info(self, rtype: str, repo: str, rev: str, body: bytes) -> None:
        found = self._commit(rtype, repo, rev)
        if found is None:
            return
        meta, oid = found
        files = meta["commits"][oid]["files"]
        ctype = self.headers.get("Content-Type", "")
        if "json" in ctype:
            paths = json.loads(body).get("paths", [])
        else:
            paths = parse_qs(body.decode()).get("paths", [])
        out = []
        for p in paths:
            p = p.strip("/")
            if p in files:
                out.append(self._entry(p, files[p]))
            elif any(f.startswith(p + "/") for f in files):
                out.append({"type": "directory", "path": p, "size": 0,
                            "oid": hashlib.sha1(p.encode()).hexdigest()})
        self._json(200, out)

    def resolve(self, repo: str, rev: str, path: str, body: bytes,
                rtype: str = "models") -> None:
        found = self._commit(rtype, repo, rev)
        if found is None:
            return
        meta, oid = found
        f = meta["commits"][oid]["files"].get(unquote(path))
        if f is None:
            self._error(404, "EntryNotFound", f"{unquote(path)} does not exist")
            return
        data = self.hub.state.get_object(f["sha256"])
        etag = f["sha256"] if f["lfs"] else git_blob_oid(data)
        headers = {"X-Repo-Commit": oid, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        if f["lfs"]:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
        status, chunk = 200, data
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if match and data:
            first, last = match.group(1), match.group(2)
            start = int(first) if first else max(len(data) - int(last), 0)
            end = int(last) if first and last else len(data) - 1
            end = min(end, len(data) - 1)
            if start >= len(data):
                self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                return
            status, chunk = 206, data[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        self._send(status, chunk, headers, "application/octet-stream")


ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (verb, re.compile(pattern), name) for verb, pattern, name in [
        ("POST", r"/api/repos/create", "create_repo"),
        ("POST", r"/api/validate-yaml", "validate_yaml"),
        ("GET", r"/api/agent-harnesses", "agent_harnesses"),
        ("GET", rf"/api/{REPO}", "repo_info"),
        ("GET", rf"/api/{REPO}/revision/{REV}", "repo_info"),
        ("POST", rf"/api/{REPO}/branch/{REV}", "create_branch"),
        ("GET", rf"/api/{REPO}/refs", "refs"),
        ("GET", rf"/api/{REPO}/commits/{REV}", "list_commits"),
        ("POST", rf"/api/{REPO}/preupload/{REV}", "preupload"),
        ("POST", rf"/{REPO}\.git/info/lfs/objects/batch", "lfs_batch"),
        ("PUT", r"/lfs-objects/(?P<oid>[0-9a-f]{64})", "lfs_upload"),
        ("POST", rf"/api/{REPO}/commit/{REV}", "commit"),
        ("GET", rf"/api/{REPO}/tree/{REV}", "tree"),
        ("GET", rf"/api/{REPO}/tree/{REV}/(?P<path>.+)", "tree"),
        ("POST", rf"/api/{REPO}/paths-info/{REV}", "paths_info"),
        ("GET", rf"/(?P<rtype>datasets|spaces)/(?P<repo>[^/]+/[^/]+)/resolve/{REV}/(?P<path>.+)",
         "resolve"),
    ]
]


def main() -> None:
    """Serve a test Hub until interrupted: `python tests/hub_server.py ROOT --token T:USER`."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("root", type=Path, help="where repos and objects are stored")
    parser.add_argument("--token", action="append", default=[],
                        help="TOKEN:USER accepted for writes and private reads (repeatable)")
    parser.add_argument("--port", type=int, default=0, help="default: any free port")
    args = parser.parse_args()
    tokens = dict(t.split(":", 1) for t in args.token)
    server = HubServer(args.root, tokens)
    handler = type("Handler", (HubHandler,), {"hub": server})
    server._httpd = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    print(f"HF_ENDPOINT={server.url} HF_HUB_DISABLE_XET=1", flush=True)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if server.unknown:
            print("requests the test hub does not know:", *server.unknown, sep="\n  ")


if __name__ == "__main__":
    main()
