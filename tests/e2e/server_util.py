"""Starting and stopping a real `mcli serve` for the server's e2e tests."""
import json
import os
import signal
import subprocess
import time

import requests

from conftest import FIXTURES, MCLI, free_port, wait_for_port

ENC = os.path.join(FIXTURES, "encoders")
DEC = os.path.join(FIXTURES, "decoders")


class Server:
    """A running `mcli serve` on a free loopback port; stop() sends SIGTERM and returns the exit code."""

    def __init__(self, models, extra=(), env=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        args = [MCLI, "serve", "--port", str(self.port)]
        for m in models:
            args += ["--model", m]
        args += list(extra)
        full_env = dict(os.environ)
        full_env.pop("MCLI_API_KEY", None)
        if env:
            full_env.update(env)
        self.stderr_path = f"/tmp/mcli-e2e-server-{self.port}.log"
        self.stderr = open(self.stderr_path, "w+")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.stderr, env=full_env)
        try:
            wait_for_port(self.port, self.proc, timeout=30)
        except Exception:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("server did not start: " + self.log())

    def url(self, path):
        return self.base + path

    def get(self, path, **kw):
        kw.setdefault("timeout", 30)
        return requests.get(self.url(path), **kw)

    def post(self, path, body=None, **kw):
        kw.setdefault("timeout", 30)
        if body is not None and "data" not in kw:
            kw["json"] = body
        return requests.post(self.url(path), **kw)

    def log(self):
        self.stderr.flush()
        with open(self.stderr_path) as f:
            return f.read()

    def healthy(self):
        r = self.get("/health", timeout=5)
        return r.status_code == 200 and r.json()["status"] == "healthy"

    def metric(self, name, labels=None):
        """Sum of the samples of one metric whose labels include `labels`."""
        total = 0.0
        for line in self.get("/metrics").text.splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            key, _, value = line.rpartition(" ")
            if key != name and not key.startswith(name + "{"):
                continue
            if labels and not all(f'{k}="{v}"' in key for k, v in labels.items()):
                continue
            total += float(value)
        return total

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        self.stderr.close()
        try:
            os.unlink(self.stderr_path)
        except OSError:
            pass
        return self.proc.returncode


def ref(model):
    with open(os.path.join(ENC, model, "reference.json")) as f:
        return json.load(f)


def close(a, b, tol=1e-4):
    assert len(a) == len(b), (len(a), len(b))
    worst = max(abs(x - y) for x, y in zip(a, b))
    assert worst <= tol, f"max abs diff {worst} > {tol}"


def wait_until(pred, timeout=10.0, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return False
