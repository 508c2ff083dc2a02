"""Helpers for the model-service e2e tests: start/stop the real `mcli start`, JSON over HTTP."""
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

from conftest import FIXTURES, MCLI, free_port, run_mcli, wait_for_port

GPT2_DIR = os.path.join(FIXTURES, "decoders", "tiny-gpt2")
BERT_CLS_DIR = os.path.join(FIXTURES, "encoders", "bert_cls")
BERT_BASE_DIR = os.path.join(FIXTURES, "encoders", "bert_base")


def load_json(path):
    with open(path) as f:
        return json.load(f)


def http(method, url, body=None, raw=None, timeout=60, headers=None):
    """Returns (status, parsed JSON or text)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read().decode()
            status = r.status
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        status = e.code
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


class Service:
    """A foreground `mcli start` on a free port with its own models dir."""

    def __init__(self, tmp_path, port=None, extra=(), env=None, models_dir=None):
        self.models_dir = str(models_dir or (tmp_path / "models"))
        self.port = port or free_port()
        self.env = dict(os.environ)
        self.env.update({"MCLI_MODELS_DIR": self.models_dir, "MCLI_LOG_LEVEL": "warn"})
        for k in ("MCLI_SERVICE_PORT", "MCLI_SERVICE_HOST", "MCLI_SERVICE_CONFIG", "MCLI_SERVICE_DB", "MCLI_API_KEY"):
            self.env.pop(k, None)
        if env:
            self.env.update(env)
        self.extra = list(extra)
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def db(self):
        return os.path.join(self.models_dir, "registry.db")

    @property
    def pid_file(self):
        return os.path.join(self.models_dir, "service.pid")

    def start(self):
        self.proc = subprocess.Popen([MCLI, "start", "--port", str(self.port), "--models-dir", self.models_dir,
                                      *self.extra], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        wait_for_port(self.port, self.proc, timeout=30)
        deadline = time.time() + 10
        while not os.path.exists(self.pid_file) and time.time() < deadline:
            time.sleep(0.02)
        return self

    def cli(self, *args, timeout=120):
        return run_mcli(*args, "--models-dir", self.models_dir, env=self.env, timeout=timeout)

    def get(self, path, **kw):
        return http("GET", self.url + path, **kw)

    def post(self, path, body=None, **kw):
        return http("POST", self.url + path, body if body is not None else {}, **kw)

    def put(self, path, body, **kw):
        return http("PUT", self.url + path, body, **kw)

    def delete(self, path, **kw):
        return http("DELETE", self.url + path, **kw)

    def add(self, name, path, **fields):
        status, r = self.post("/models", dict(name=name, model_path=path, **fields))
        assert status == 200, r
        return r["model_id"]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            for s in (self.proc.stdout, self.proc.stderr):
                if s:
                    s.close()

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        for s in (self.proc.stdout, self.proc.stderr):
            if s:
                s.close()
