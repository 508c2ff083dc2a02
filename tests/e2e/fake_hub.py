"""A fake Hugging Face hub for tests: python3's http.server (ThreadingHTTPServer), no third-party code.

Serves every repository found under a root directory (a directory with a config.json at depth 1
or 2: "name" or "org/name") the way huggingface.co does:

  GET/HEAD /{repo}/resolve/{rev}/{file}
      rev is "main" or the repo's commit (40 hex, derived from its files).
      Non-LFS files (everything but *.safetensors / *.bin): 200 with ETag "<git blob sha1>",
      X-Repo-Commit, Content-Length, Accept-Ranges: bytes.
      LFS files: 302 to the "CDN" - a second server on another host name (127.0.0.2, or
      localhost when 127.0.0.2 cannot be bound) - with X-Linked-Etag "<sha256>", X-Linked-Size,
      X-Repo-Commit, ETag, Location. The CDN serves the bytes with its own ETag, honours Range
      and If-Range (206 + Content-Range; 200 when If-Range does not match).
      Missing file: 404 X-Error-Code: EntryNotFound; missing repo: 404 RepoNotFound; missing
      revision: 404 RevisionNotFound. Repos under "private/" need "Authorization: Bearer <token>"
      (FakeHub.token) and answer 401 GatedRepo otherwise.
  GET /api/models/{repo}/revision/{rev}   {"id", "sha", "siblings": [{"rfilename"}, ...]}
  Renamed repositories (FakeHub.renames = {"gpt2": "openai-community/gpt2"}, as huggingface.co did
  for its legacy ids): both routes answer 307 with a relative Location under the new name.

Faults (FakeHub.add_fault(...) in-process, or POST /_control/faults with the same JSON fields;
GET /_control/log returns the request log; POST /_control/reset clears faults and log):
  kind "status":  answer `status` (with Retry-After: retry_after if given) `times` times
  kind "drop":    send the headers and `after_bytes` bytes of the body, then cut the connection
  kind "corrupt": flip one byte of the body (the checksum will not match)
  kind "trickle": send the body in `chunk` byte pieces every `delay` seconds
  kind "stall":   send `after_bytes`, then stop sending for `delay` seconds
  kind "no_api":  the /api/models route answers 404 (so the client must probe files)
  kind "no_range": the CDN ignores Range (answers 200 with the whole file)
Each fault matches requests whose path contains `match` on `server` ("hub", "cdn" or "any"),
for `times` requests (-1 = forever).

Run standalone: python3 fake_hub.py ROOT [PORT]
"""
import hashlib
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LFS_SUFFIXES = (".safetensors", ".bin", ".h5", ".onnx")


def _git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    def __init__(self, name, path):
        self.name = name
        self.path = path
        self.files = {}
        for dirpath, _dirs, names in os.walk(path):
            for n in sorted(names):
                full = os.path.join(dirpath, n)
                rel = os.path.relpath(full, path)
                with open(full, "rb") as f:
                    data = f.read()
                self.files[rel] = {
                    "data": data,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "git": _git_blob_sha1(data),
                    "lfs": rel.endswith(LFS_SUFFIXES),
                }
        h = hashlib.sha1(name.encode())
        for rel in sorted(self.files):
            h.update(rel.encode() + b"\0" + self.files[rel]["git"].encode())
        self.commit = h.hexdigest()


def _find_repos(root):
    repos = {}
    for first in sorted(os.listdir(root)):
        p1 = os.path.join(root, first)
        if not os.path.isdir(p1):
            continue
        if os.path.exists(os.path.join(p1, "config.json")):
            repos[first] = Repo(first, p1)
            continue
        for second in sorted(os.listdir(p1)):
            p2 = os.path.join(p1, second)
            if os.path.isdir(p2):
                repos[f"{first}/{second}"] = Repo(f"{first}/{second}", p2)
    return repos


class FakeHub:
    def __init__(self, root, token="secret-token"):
        self.root = root
        self.token = token
        self.repos = _find_repos(root)
        self.blobs = {}
        for repo in self.repos.values():
            for f in repo.files.values():
                self.blobs[f["sha256"]] = f["data"]
        self.faults = []
        self.log = []
        self.renames = {}
        self.lock = threading.Lock()
        self.hub_server = None
        self.cdn_server = None

    # ---- lifecycle ----
    def start(self, port=0):
        self.hub_server = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(self, "hub"))
        try:
            self.cdn_server = ThreadingHTTPServer(("127.0.0.2", 0), _make_handler(self, "cdn"))
            self.cdn_host = "127.0.0.2"
        except OSError:
            self.cdn_server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self, "cdn"))
            self.cdn_host = "localhost"
        for s in (self.hub_server, self.cdn_server):
            s.daemon_threads = True
            threading.Thread(target=s.serve_forever, daemon=True).start()
        return self

    def stop(self):
        for s in (self.hub_server, self.cdn_server):
            if s:
                s.shutdown()
                s.server_close()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.hub_server.server_address[1]}"

    @property
    def cdn_url(self):
        return f"http://{self.cdn_host}:{self.cdn_server.server_address[1]}"

    def reload(self):
        """Re-reads the repositories (after a test changed files under root)."""
        with self.lock:
            self.repos = _find_repos(self.root)
            for repo in self.repos.values():
                for f in repo.files.values():
                    self.blobs[f["sha256"]] = f["data"]

    # ---- faults and log ----
    def add_fault(self, kind, match="", server="any", times=1, **kw):
        with self.lock:
            self.faults.append(dict(kind=kind, match=match, server=server, times=times, **kw))

    def reset(self):
        with self.lock:
            self.faults.clear()
            self.log.clear()

    def take_fault(self, server, path, kinds):
        with self.lock:
            for f in self.faults:
                if f["kind"] in kinds and f["match"] in path and f["server"] in (server, "any") and f["times"] != 0:
                    if f["times"] > 0:
                        f["times"] -= 1
                    return dict(f)
        return None

    def requests(self, server=None, method=None, contains=""):
        with self.lock:
            return [r for r in self.log if (server is None or r["server"] == server)
                    and (method is None or r["method"] == method) and contains in r["path"]]


def _make_handler(hub, server_name):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet
            pass

        def _record(self):
            with hub.lock:
                hub.log.append({
                    "server": server_name, "method": self.command, "path": self.path,
                    "host": self.headers.get("Host", ""),
                    "range": self.headers.get("Range"), "if_range": self.headers.get("If-Range"),
                    "authorization": self.headers.get("Authorization"), "time": time.time(),
                })

        def do_HEAD(self):
            self._record()
            self._route(head=True)

        def do_GET(self):
            self._record()
            self._route(head=False)

        def do_POST(self):
            self._record()
            path = urllib.parse.urlparse(self.path).path
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            if path == "/_control/reset":
                hub.reset()
                return self._send(200, b"{}", {"Content-Type": "application/json"}, False)
            if path == "/_control/faults":
                f = json.loads(body or b"{}")
                hub.add_fault(**f)
                return self._send(200, b"{}", {"Content-Type": "application/json"}, False)
            self._send(404, b"not found", {}, False)

        # ---- helpers ----
        def _send(self, status, body, headers, head, fault=None):
            self.send_response(status)
            headers = dict(headers)
            headers.setdefault("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if head:
                return
            if fault and fault["kind"] == "corrupt" and body:
                body = bytearray(body)
                body[len(body) // 2] ^= 0xFF
                body = bytes(body)
            if fault and fault["kind"] == "drop":
                cut = min(int(fault.get("after_bytes", len(body) // 2)), len(body))
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if fault and fault["kind"] == "stall":
                cut = min(int(fault.get("after_bytes", len(body) // 2)), len(body))
                self.wfile.write(body[:cut])
                self.wfile.flush()
                time.sleep(float(fault.get("delay", 5)))
                try:
                    self.wfile.write(body[cut:])
                except OSError:
                    pass
                return
            if fault and fault["kind"] == "trickle":
                chunk = int(fault.get("chunk", 4096))
                delay = float(fault.get("delay", 0.01))
                try:
                    for i in range(0, len(body), chunk):
                        self.wfile.write(body[i:i + chunk])
                        self.wfile.flush()
                        time.sleep(delay)
                except OSError:
                    pass
                return
            self.wfile.write(body)

        def _error(self, status, code, head, extra=None):
            body = json.dumps({"error": code}).encode()
            h = {"Content-Type": "application/json", "X-Error-Code": code}
            h.update(extra or {})
            self._send(status, body, h, head)

        def _status_fault(self, head):
            f = hub.take_fault(server_name, self.path, ("status",))
            if not f:
                return False
            extra = {}
            if "retry_after" in f:
                extra["Retry-After"] = str(f["retry_after"])
            self._error(int(f["status"]), f.get("error_code", "Injected"), head, extra)
            return True

        def _route(self, head):
            path = urllib.parse.unquote(urllib.parse.urlparse(self.path).path)
            if self._status_fault(head):
                return
            if server_name == "cdn":
                return self._cdn(path, head)
            if path == "/_control/log":
                return self._send(200, json.dumps(hub.log).encode(), {"Content-Type": "application/json"}, head)
            if path.startswith("/api/models/"):
                return self._api(path[len("/api/models/"):], head)
            if "/resolve/" in path:
                repo, _, rest = path[1:].partition("/resolve/")
                rev, _, fname = rest.partition("/")
                return self._resolve(repo, rev, fname, head)
            self._error(404, "NotFound", head)

        def _renamed(self, repo_name, head):
            new = hub.renames.get(repo_name)
            if not new:
                return False
            path = urllib.parse.urlparse(self.path).path.replace(f"/{repo_name}/", f"/{new}/", 1)
            self._send(307, b"", {"Location": path}, head)
            return True

        def _check_repo(self, repo_name, rev, head):
            if self._renamed(repo_name, head):
                return None
            repo = hub.repos.get(repo_name)
            if repo is None:
                self._error(404, "RepoNotFound", head)
                return None
            if repo_name.startswith("private/"):
                if self.headers.get("Authorization") != f"Bearer {hub.token}":
                    self._error(401, "GatedRepo", head)
                    return None
            if rev not in ("main", repo.commit):
                self._error(404, "RevisionNotFound", head)
                return None
            return repo

        def _api(self, rest, head):
            if hub.take_fault(server_name, self.path, ("no_api",)):
                return self._error(404, "NotFound", head)
            repo_name, _, rev = rest.partition("/revision/")
            repo = self._check_repo(repo_name, rev or "main", head)
            if not repo:
                return
            body = json.dumps({"id": repo.name, "sha": repo.commit,
                               "siblings": [{"rfilename": n} for n in sorted(repo.files)]}).encode()
            self._send(200, body, {"Content-Type": "application/json"}, head)

        def _resolve(self, repo_name, rev, fname, head):
            repo = self._check_repo(repo_name, rev, head)
            if not repo:
                return
            f = repo.files.get(fname)
            if f is None:
                return self._error(404, "EntryNotFound", head, {"X-Repo-Commit": repo.commit})
            common = {"X-Repo-Commit": repo.commit, "Accept-Ranges": "bytes"}
            if f["lfs"]:
                loc = f"{hub.cdn_url}/cdn/{f['sha256']}?name={urllib.parse.quote(fname)}"
                h = dict(common)
                h.update({"X-Linked-Etag": f'"{f["sha256"]}"', "X-Linked-Size": str(len(f["data"])),
                          "ETag": f'"{f["sha256"]}"', "Location": loc})
                return self._send(302, b"", h, head)
            fault = hub.take_fault(server_name, self.path, ("drop", "corrupt", "trickle", "stall"))
            h = dict(common)
            h.update({"ETag": f'"{f["git"]}"', "Content-Type": "application/octet-stream"})
            self._send(200, f["data"], h, head, fault)

        def _cdn(self, path, head):
            if not path.startswith("/cdn/"):
                return self._error(404, "NotFound", head)
            sha = path[len("/cdn/"):]
            data = hub.blobs.get(sha)
            if data is None:
                return self._error(404, "NoSuchKey", head)
            etag = f'"cdn-{sha[:20]}"'
            fault = hub.take_fault(server_name, self.path, ("drop", "corrupt", "trickle", "stall"))
            h = {"ETag": etag, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
            rng = None if hub.take_fault(server_name, self.path, ("no_range",)) else self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if rng and (if_range is None or if_range == etag) and rng.startswith("bytes="):
                start_s, _, end_s = rng[len("bytes="):].partition("-")
                start = int(start_s)
                end = int(end_s) if end_s else len(data) - 1
                if start >= len(data):
                    return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"}, head)
                h["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                return self._send(206, data[start:end + 1], h, head, fault)
            self._send(200, data, h, head, fault)

    return Handler


if __name__ == "__main__":
    hub = FakeHub(sys.argv[1]).start(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    print(f"fake hub at {hub.url}, CDN at {hub.cdn_url}, repos: {', '.join(sorted(hub.repos))}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        hub.stop()
