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


def make_slow_gpt2(out, n_pos=4096, hidden=128, layers=2, heads=4):
    """A random GPT-2 with a long context (so a generation can be interrupted midway) and the tiny
    fixture's vocabulary, written with numpy in well under a second (torch would take longer)."""
    import shutil
    import struct as st

    import numpy as np

    os.makedirs(out, exist_ok=True)
    src = os.path.join(DEC, "tiny-gpt2")
    for f in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(src, f), os.path.join(out, f))
    vocab = len(json.load(open(os.path.join(src, "vocab.json"), encoding="utf-8")))
    rng = np.random.default_rng(0)
    t = {"transformer.wte.weight": (vocab, hidden), "transformer.wpe.weight": (n_pos, hidden)}
    ones = {"transformer.ln_f.weight": hidden}
    zeros = {"transformer.ln_f.bias": hidden}
    for i in range(layers):
        p = f"transformer.h.{i}."
        ones[p + "ln_1.weight"] = ones[p + "ln_2.weight"] = hidden
        zeros[p + "ln_1.bias"] = zeros[p + "ln_2.bias"] = hidden
        t[p + "attn.c_attn.weight"] = (hidden, 3 * hidden)
        t[p + "attn.c_attn.bias"] = (3 * hidden,)
        t[p + "attn.c_proj.weight"] = (hidden, hidden)
        t[p + "attn.c_proj.bias"] = (hidden,)
        t[p + "mlp.c_fc.weight"] = (hidden, 4 * hidden)
        t[p + "mlp.c_fc.bias"] = (4 * hidden,)
        t[p + "mlp.c_proj.weight"] = (4 * hidden, hidden)
        t[p + "mlp.c_proj.bias"] = (hidden,)
    arrays = {k: (rng.standard_normal(s) * 0.02).astype("<f4") for k, s in t.items()}
    arrays.update({k: np.ones(n, "<f4") for k, n in ones.items()})
    arrays.update({k: np.zeros(n, "<f4") for k, n in zeros.items()})
    # Never end early: with ln_f's bias at 1 and EOS's (tied) embedding at -5 everywhere, EOS's logit
    # is -5 * hidden whatever the hidden state (the normalised part sums to zero).
    arrays["transformer.ln_f.bias"] = np.ones(hidden, "<f4")
    eos = json.load(open(os.path.join(src, "config.json")))["eos_token_id"]
    arrays["transformer.wte.weight"][eos, :] = -5.0
    header, blobs, off = {}, [], 0
    for k in sorted(arrays):
        b = arrays[k].tobytes()
        header[k] = {"dtype": "F32", "shape": list(arrays[k].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(st.pack("<Q", len(h)) + h + b"".join(blobs))
    cfg = json.load(open(os.path.join(src, "config.json")))
    cfg.update({"n_embd": hidden, "n_layer": layers, "n_head": heads, "n_positions": n_pos, "n_ctx": n_pos})
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"))
    return out
