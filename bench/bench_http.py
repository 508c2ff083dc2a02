#!/usr/bin/python3
"""HTTP load tests of `mcli serve` with wrk (Debian package `wrk`).

  /usr/bin/python3 bench/bench_http.py [--mcli build/mcli] [--duration 5] [--rounds 3] [--work DIR]

Generates random-weight models of real shapes (bert-tiny with the real BERT vocabulary, GPT-2 small
with the real GPT-2 vocabulary; tests/fixtures/server/gen_models.py), starts the server on a free
loopback port (default 4 HTTP threads, access log on, written to a file) and measures:
  1. GET /health at 1, 16, 64, 256 connections (wrk -t2)
  2. POST /api/embed (bench/http/embed.lua) at 1 and 32 connections, with dynamic batching and with
     batching disabled (--batch-tokens 1: one sequence per engine call)
  3. POST /api/generate, 16 tokens (bench/http/generate.lua) at 1 and 4 connections
  4. GET /health latency while a long generation streams (wrk -c4, --latency)
in interleaved rounds (the load of a shared machine drifts; ratios are taken within a round) and
prints markdown tables: requests/s, p50, p99 (wrk shares the 2 cores with the server).
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
GEN = os.path.join(SOURCE, "tests", "fixtures", "server", "gen_models.py")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit("server did not start")


def to_ms(v, unit):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def wrk(url, conns, duration, script=None, env=None, threads=2, timeout=10):
    threads = min(threads, conns)
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--timeout", f"{timeout}s", "--latency", url]
    if script:
        cmd[1:1] = ["-s", script]
    full_env = dict(os.environ, **(env or {}))
    out = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\b", out)
        lat[pct] = to_ms(m.group(1), m.group(2)) if m else float("nan")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    timeouts = re.search(r"timeout (\d+)", out)
    return {"cmd": " ".join(cmd), "rps": rps, "p50": lat["50"], "p99": lat["99"],
            "non2xx": int(errors.group(1)) if errors else 0, "timeouts": int(timeouts.group(1)) if timeouts else 0}


class Server:
    def __init__(self, mcli, models, extra, log):
        self.port = free_port()
        args = [mcli, "serve", "--port", str(self.port)] + [a for m in models for a in ("--model", m)] + extra
        self.log = open(log, "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.log)
        wait_port(self.port, self.proc)
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.log.close()


def ensure_models(work):
    for kind in ("bert-tiny", "gpt2-small"):
        out = os.path.join(work, kind)
        if not os.path.exists(os.path.join(out, "model.safetensors")):
            print(f"generating {kind} in {out} ...", file=sys.stderr)
            subprocess.run(["/usr/bin/python3", GEN, out, kind], check=True)


def long_generation(base, model, stop):
    body = json.dumps({"model": model, "prompt": "Once upon a time", "options": {"num_predict": 100000}}).encode()
    req = urllib.request.Request(base + "/api/generate", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        while not stop.is_set():
            if not r.readline():
                break


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mcli", default=os.path.join(SOURCE, "build", "mcli"))
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--work", default="/tmp/mcli-bench-http")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(SOURCE, "bench", "results"),
                    help="directory for http-<time>.json (every row, with its wrk command)")
    a = ap.parse_args()
    ensure_models(a.work)
    bert = f"bert-tiny={a.work}/bert-tiny"
    gpt = f"gpt2={a.work}/gpt2-small"
    rows = []
    d = a.duration

    emb = os.path.join(HERE, "http", "embed.lua")
    gen = os.path.join(HERE, "http", "generate.lua")
    srv = Server(a.mcli, [bert, gpt], [], os.path.join(a.work, "server.log"))
    nob = Server(a.mcli, [bert], ["--batch-tokens", "1"], os.path.join(a.work, "server-nobatch.log"))
    try:
        # Interleaved rounds: on a shared machine the load drifts, so every compared configuration
        # runs once per round and the ratios are taken per round.
        for rnd in range(a.rounds):
            for c in (1, 16, 64, 256):
                rows.append((rnd, "GET /health", c, "", wrk(srv.base + "/health", c, d)))
            for c in (1, 32):
                rows.append((rnd, "POST /api/embed bert-tiny", c, "batching on",
                             wrk(srv.base + "/api/embed", c, d, emb, {"MODEL": "bert-tiny"})))
            rows.append((rnd, "POST /api/embed bert-tiny", 32, "batching off",
                         wrk(nob.base + "/api/embed", 32, d, emb, {"MODEL": "bert-tiny"})))
        for c in (1, 4):
            rows.append((0, "POST /api/generate 16 tok gpt2-small", c, "",
                         wrk(srv.base + "/api/generate", c, 3 * d, gen, {"MODEL": "gpt2"}, threads=1, timeout=60)))
        stop = threading.Event()
        t = threading.Thread(target=long_generation, args=(srv.base, "gpt2", stop), daemon=True)
        t.start()
        time.sleep(1.0)
        for rnd in range(a.rounds):
            rows.append((rnd, "GET /health during a generation", 4, "", wrk(srv.base + "/health", 4, d)))
        stop.set()
    finally:
        srv.stop()
        nob.stop()

    def pick(rnd, name, c, var):
        return next(r for (k, n, cc, v, r) in rows if k == rnd and n == name and cc == c and v == var)

    print("| round | test | connections | variant | requests/s | p50 ms | p99 ms | non-2xx | timeouts |")
    print("|---:|---|---:|---|---:|---:|---:|---:|---:|")
    for rnd, name, c, var, r in rows:
        print(f"| {rnd + 1} | {name} | {c} | {var} | {r['rps']:.1f} | {r['p50']:.2f} | {r['p99']:.2f} | "
              f"{r['non2xx']} | {r['timeouts']} |")
    print()
    print("| round | embed 32 clients / 1 client | batching on / off at 32 clients |")
    print("|---:|---:|---:|")
    for rnd in range(a.rounds):
        on1 = pick(rnd, "POST /api/embed bert-tiny", 1, "batching on")["rps"]
        on32 = pick(rnd, "POST /api/embed bert-tiny", 32, "batching on")["rps"]
        off32 = pick(rnd, "POST /api/embed bert-tiny", 32, "batching off")["rps"]
        print(f"| {rnd + 1} | {on32 / on1:.2f}x | {on32 / off32:.2f}x |")
    print()
    os.makedirs(a.out, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    path = os.path.join(a.out, f"http-{stamp}.json")
    with open(path, "w") as f:
        json.dump({"when_utc": stamp, "load_average": os.getloadavg(), "duration_s": a.duration,
                   "rows": [{"round": rnd + 1, "test": name, "connections": c, "variant": var, **r}
                            for rnd, name, c, var, r in rows]}, f, indent=1)
    print(f"wrote {path}", file=sys.stderr)
    seen = set()
    for rnd, name, c, var, r in rows:
        key = (name, c, var)
        if key not in seen:
            seen.add(key)
            print(f"- `{re.sub(r'127.0.0.1:[0-9]+', '127.0.0.1:PORT', r['cmd'])}`" + (f" ({var})" if var else ""))


if __name__ == "__main__":
    main()
