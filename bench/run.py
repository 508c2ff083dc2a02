#!/usr/bin/python3
"""mcli benchmark harness: the machine's limits and encoder speed, in one sitting.

    /usr/bin/python3 bench/run.py [--build build] [--quick] [--skip-limits]

1. Machine limits (small C programs in bench/): OpenBLAS sgemm 2048^3 GFLOPS at 1 and 2 threads and
   a STREAM-like triad GB/s at 1 and 2 threads - measured at the start and again at the end, since
   the machine is shared and noisy.
2. Encoders: random-weight models with the real shapes of prajjwal1/bert-tiny (2 x 128, 2 heads,
   FFN 512, vocab 30522) and distilbert-base-uncased (6 x 768, 12 heads, FFN 3072), written once to
   /tmp/mcli-bench (safetensors + config + the shared BERT vocab; nothing is committed). Each cell is
   one fresh `mcli bench` process: latency of engine_embed on random ids (first call, median and min
   of several calls), peak RSS of the process. Seq 8/32/128/512 x batch 1/8/32 at 2 threads, and
   batch 1 at 1 thread.
3. Start-up to first result: wall time of `mcli embed --model DIR "hello world"` (load + tokenize +
   forward + print), median of 7 runs after one warm-up (files in the page cache).
4. Decoder: if BUILD/bench/bench_gpt2 exists (the decoder's harness: GPT-2 small, random weights,
   prompt and generation tokens/s, its own bandwidth probe), it is run at 1 and 2 threads
   (--reps 2); the JSON object on its last line is added under "decoder" and printed as a table
   (its keys are the columns). Its figures are not interpreted here. --skip-decoder leaves it out.

Prints tables and writes bench/results/bench-<UTC time>.json and .md.
"""
import argparse
import datetime
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.environ.get("MCLI_SHARED", os.path.join(ROOT, "..", "shared"))
MODELS_DIR = "/tmp/mcli-bench"

MODELS = {
    "bert-tiny": dict(model_type="bert", layers=2, hidden=128, heads=2, ffn=512, vocab=30522, positions=512),
    "distilbert-base": dict(model_type="distilbert", layers=6, hidden=768, heads=12, ffn=3072, vocab=30522,
                            positions=512),
}
SEQS = [8, 32, 128, 512]
BATCHES = [1, 8, 32]


# ---------------------------------------------------------------- models
def write_model(name, s):
    d = os.path.join(MODELS_DIR, name)
    if os.path.exists(os.path.join(d, "model.safetensors")):
        return d
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures", "gen"))
    from safetensors_write import save_file
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    H, I, V, P, L = s["hidden"], s["ffn"], s["vocab"], s["positions"], s["layers"]

    def rnd(*shape):
        return torch.randn(*shape, generator=g) * 0.02

    t = {}
    if s["model_type"] == "bert":
        p = "bert."
        t[p + "embeddings.token_type_embeddings.weight"] = rnd(2, H)
        names = dict(q="attention.self.query", k="attention.self.key", v="attention.self.value",
                     o="attention.output.dense", ln1="attention.output.LayerNorm", f1="intermediate.dense",
                     f2="output.dense", ln2="output.LayerNorm")
        layer = p + "encoder.layer.{}."
        cfg = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": H, "num_hidden_layers": L,
               "num_attention_heads": s["heads"], "intermediate_size": I, "hidden_act": "gelu",
               "max_position_embeddings": P, "type_vocab_size": 2, "vocab_size": V, "layer_norm_eps": 1e-12}
    else:
        p = "distilbert."
        names = dict(q="attention.q_lin", k="attention.k_lin", v="attention.v_lin", o="attention.out_lin",
                     ln1="sa_layer_norm", f1="ffn.lin1", f2="ffn.lin2", ln2="output_layer_norm")
        layer = p + "transformer.layer.{}."
        cfg = {"architectures": ["DistilBertModel"], "model_type": "distilbert", "dim": H, "n_layers": L,
               "n_heads": s["heads"], "hidden_dim": I, "activation": "gelu", "max_position_embeddings": P,
               "vocab_size": V, "sinusoidal_pos_embds": False}
    t[p + "embeddings.word_embeddings.weight"] = rnd(V, H)
    t[p + "embeddings.position_embeddings.weight"] = rnd(P, H)
    t[p + "embeddings.LayerNorm.weight"] = torch.ones(H)
    t[p + "embeddings.LayerNorm.bias"] = torch.zeros(H)
    for l in range(L):
        q = layer.format(l)
        for key, (o, i) in dict(q=(H, H), k=(H, H), v=(H, H), o=(H, H), f1=(I, H), f2=(H, I)).items():
            t[q + names[key] + ".weight"] = rnd(o, i)
            t[q + names[key] + ".bias"] = rnd(o)
        for key in ("ln1", "ln2"):
            t[q + names[key] + ".weight"] = torch.ones(H)
            t[q + names[key] + ".bias"] = torch.zeros(H)
    save_file(t, os.path.join(d, "model.safetensors"))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    shutil.copy(os.path.join(SHARED, "vocab", "bert-base-uncased", "vocab.txt"), os.path.join(d, "vocab.txt"))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "model_max_length": P}, f)
    return d


def flops(s, seq, batch):
    """Multiply-adds x 2 of one forward: the dense layers plus attention's two products."""
    H, I, L = s["hidden"], s["ffn"], s["layers"]
    return batch * (2.0 * seq * (4 * H * H + 2 * H * I) * L + 4.0 * seq * seq * H * L)


# ---------------------------------------------------------------- runners
def run_json(cmd, timeout=900):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip().startswith("{")]


def limits(build):
    out = {}
    for t in (1, 2):
        out[f"sgemm_{t}t"] = run_json([os.path.join(build, "bench", "sgemm_peak"), str(t), "10"])[0]
        out[f"triad_{t}t"] = run_json([os.path.join(build, "bench", "triad"), str(t), "512", "7"])[0]
    return out


def encoder_cell(build, model_dir, spec, seq, batch, threads, gflops_guess):
    est_ms = flops(spec, seq, batch) / (0.7 * gflops_guess * 1e9) * 1e3 + 0.05
    runs = max(1, min(300, int(1500 / est_ms)))
    if est_ms > 3000:
        runs = 1
    elif runs < 3:
        runs = 3
    r = run_json([os.path.join(build, "mcli"), "bench", "--model", model_dir, "--seq-len", str(seq), "--batch",
                  str(batch), "--threads", str(threads), "--runs", str(runs), "--json"])[0]
    r.update(threads=threads, gflop=flops(spec, seq, batch) / 1e9)
    r["gflops"] = r["gflop"] / (r["median_ms"] / 1e3)
    return r


def interleaved_ratio(build, model_dir, spec, rounds=5):
    """distilbert-base b1 s128 at 2 threads against sgemm 2048^3 at 2 threads, alternated round by
    round so that both see the same machine load; the ratio of each round, and their median."""
    out = []
    for _ in range(rounds):
        g = run_json([os.path.join(build, "bench", "sgemm_peak"), "2", "5"])[0]["median_gflops"]
        r = run_json([os.path.join(build, "mcli"), "bench", "--model", model_dir, "--seq-len", "128", "--batch", "1",
                      "--threads", "2", "--runs", "5", "--json"])[0]
        mine = flops(spec, 128, 1) / (r["median_ms"] / 1e3) / 1e9
        out.append({"sgemm_gflops": g, "encoder_gflops": mine, "encoder_ms": r["median_ms"], "ratio": mine / g})
    return {"rounds": out, "median_ratio": statistics.median(x["ratio"] for x in out),
            "median_encoder_ms": statistics.median(x["encoder_ms"] for x in out),
            "median_sgemm_gflops": statistics.median(x["sgemm_gflops"] for x in out)}


def startup(build, model_dir, n=7):
    cmd = [os.path.join(build, "mcli"), "embed", "--model", model_dir, "hello world"]
    subprocess.run(cmd, capture_output=True, check=True)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times), "runs": n}


def decoder(build):
    exe = os.path.join(build, "bench", "bench_gpt2")
    if not os.path.exists(exe):
        return None
    rows = []
    for t in (1, 2):
        try:
            got = run_json([exe, "--threads", str(t), "--reps", "2"], timeout=1800)
            row = got[-1] if got else {"error": "no JSON line"}
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
            row = {"error": str(e)}
        row.setdefault("threads", t)
        rows.append(row)
    return rows


# ---------------------------------------------------------------- report
def table(rows, cols):
    lines = ["| " + " | ".join(c for c, _ in cols) + " |", "|" + "|".join("---:" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(f(r) for _, f in cols) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="CMake build directory (default build)")
    ap.add_argument("--quick", action="store_true", help="skip the batch 8/32 x seq 512 cells")
    ap.add_argument("--skip-limits", action="store_true", help="do not measure sgemm/triad")
    ap.add_argument("--skip-decoder", action="store_true", help="do not run bench_gpt2")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    for exe in ("mcli", "bench/sgemm_peak", "bench/triad"):
        if not os.path.exists(os.path.join(build, exe)):
            sys.exit(f"run.py: {os.path.join(build, exe)} is missing; build first (make build or cmake --build)")
    started = datetime.datetime.now(datetime.timezone.utc)
    res = {"started": started.isoformat(timespec="seconds"), "command": " ".join(["/usr/bin/python3"] + sys.argv),
           "host": {"nproc": os.cpu_count(), "load_avg_start": os.getloadavg()}}
    print(f"mcli bench, {res['started']}, load average {os.getloadavg()[0]:.1f}", flush=True)
    dirs = {name: write_model(name, spec) for name, spec in MODELS.items()}

    if not a.skip_limits:
        res["limits_start"] = limits(build)
        print("limits (start):", json.dumps(res["limits_start"]), flush=True)
    peak = {t: res.get("limits_start", {}).get(f"sgemm_{t}t", {}).get("median_gflops", 90.0 * t) for t in (1, 2)}

    cells = []
    for name, spec in MODELS.items():
        for threads, batches in ((1, [1]), (2, BATCHES)):
            for batch in batches:
                for seq in SEQS:
                    if a.quick and batch > 1 and seq == 512:
                        continue
                    r = encoder_cell(build, dirs[name], spec, seq, batch, threads, peak[threads])
                    r["model_name"] = name
                    cells.append(r)
                    print(f"  {name:16s} T={threads} b={batch:2d} s={seq:3d}: median {r['median_ms']:9.3f} ms "
                          f"(min {r['min_ms']:.3f}, first {r['first_ms']:.3f}, {r['runs']} runs) "
                          f"{r['gflops']:6.1f} GFLOPS, RSS {r['peak_rss_mib']:.0f} MiB", flush=True)
    res["encoder"] = cells
    if not a.skip_limits:
        res["interleaved"] = interleaved_ratio(build, dirs["distilbert-base"], MODELS["distilbert-base"])
        print("interleaved distilbert b1 s128 2T vs sgemm 2T:", json.dumps(res["interleaved"]), flush=True)
    res["startup"] = {name: startup(build, d) for name, d in dirs.items()}
    print("start-up to first result:", json.dumps(res["startup"]), flush=True)
    dec = None if a.skip_decoder else decoder(build)
    if dec is not None:
        res["decoder"] = dec
    if not a.skip_limits:
        res["limits_end"] = limits(build)
        print("limits (end):", json.dumps(res["limits_end"]), flush=True)
    res["host"]["load_avg_end"] = os.getloadavg()

    # ---- summary against the targets
    def cell(model, seq, batch, threads):
        return next(c for c in cells if c["model_name"] == model and c["seq_len"] == seq and c["batch"] == batch
                    and c["threads"] == threads)

    summary = {}
    if not a.skip_limits:
        p2 = statistics.mean([res["limits_start"]["sgemm_2t"]["median_gflops"],
                              res["limits_end"]["sgemm_2t"]["median_gflops"]])
        d = cell("distilbert-base", 128, 1, 2)
        summary["distilbert_b1_s128_2t_ms"] = d["median_ms"]
        summary["distilbert_b1_s128_2t_gflops"] = d["gflops"]
        summary["sgemm_2t_gflops_mean_start_end"] = p2
        summary["distilbert_b1_s128_2t_fraction_of_sgemm_peak"] = d["gflops"] / p2
        summary["interleaved_fraction_of_sgemm_peak_median"] = res["interleaved"]["median_ratio"]
    summary["bert_tiny_s32_2t_ms"] = cell("bert-tiny", 32, 1, 2)["median_ms"]
    summary["bert_tiny_s32_1t_ms"] = cell("bert-tiny", 32, 1, 1)["median_ms"]
    d = cell("distilbert-base", 128, 1, 2)
    summary["distilbert_b1_s128_peak_rss_mib"] = d["peak_rss_mib"]
    summary["distilbert_weight_mib"] = d["weight_bytes"] / 2**20
    summary["distilbert_rss_over_weights"] = d["peak_rss_mib"] / (d["weight_bytes"] / 2**20)
    summary["distilbert_startup_ms"] = res["startup"]["distilbert-base"]["median_ms"]
    res["summary"] = summary

    md = [f"Run {res['started']} (`{res['command']}`), load average {res['host']['load_avg_start'][0]:.1f} at start,"
          f" {res['host']['load_avg_end'][0]:.1f} at end.", ""]
    if not a.skip_limits:
        lim = [dict(test=k, **{p: res[p][k] for p in ("limits_start", "limits_end")}) for k in res["limits_start"]]
        md += ["Machine limits (start / end of the run):", "",
               table(lim, [("test", lambda r: r["test"]),
                           ("start", lambda r: f"{r['limits_start'].get('median_gflops', r['limits_start'].get('best_gbs'))}"),
                           ("end", lambda r: f"{r['limits_end'].get('median_gflops', r['limits_end'].get('best_gbs'))}")]),
               "", "(sgemm: median GFLOPS of 10 calls; triad: best GB/s of 7 passes over 3 x 512 MiB)", ""]
    md += ["Encoder latency (ms, median of the runs; min in brackets), GFLOPS achieved, peak RSS:", "",
           table(cells, [("model", lambda r: r["model_name"]), ("threads", lambda r: str(r["threads"])),
                         ("batch", lambda r: str(r["batch"])), ("seq", lambda r: str(r["seq_len"])),
                         ("median ms", lambda r: f"{r['median_ms']:.3f} ({r['min_ms']:.3f})"),
                         ("first ms", lambda r: f"{r['first_ms']:.3f}"), ("runs", lambda r: str(r["runs"])),
                         ("GFLOPS", lambda r: f"{r['gflops']:.1f}"),
                         ("peak RSS MiB", lambda r: f"{r['peak_rss_mib']:.0f}")]), ""]
    if "interleaved" in res:
        md += ["distilbert-base b1 s128 at 2 threads against sgemm 2048^3 at 2 threads, alternated:", "",
               table(res["interleaved"]["rounds"],
                     [("sgemm GFLOPS", lambda r: f"{r['sgemm_gflops']:.1f}"),
                      ("encoder ms", lambda r: f"{r['encoder_ms']:.2f}"),
                      ("encoder GFLOPS", lambda r: f"{r['encoder_gflops']:.1f}"),
                      ("ratio", lambda r: f"{r['ratio']:.2f}")]), ""]
    md += ["Start-up to first result (`mcli embed --model DIR \"hello world\"`, wall ms):", "",
           table([dict(name=k, **v) for k, v in res["startup"].items()],
                 [("model", lambda r: r["name"]), ("median", lambda r: f"{r['median_ms']:.1f}"),
                  ("min-max", lambda r: f"{r['min_ms']:.1f}-{r['max_ms']:.1f}")]), ""]
    if dec:
        keys = sorted({k for r in dec for k, v in r.items() if not isinstance(v, (dict, list))})
        md += ["Decoder (bench_gpt2):", "", table(dec, [(k, (lambda kk: lambda r: str(r.get(kk, "")))(k)) for k in keys]),
               ""]
    md += ["Summary: " + json.dumps({k: round(v, 4) for k, v in summary.items()})]
    text = "\n".join(md)
    print()
    print(text)
    os.makedirs(a.out, exist_ok=True)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(a.out, f"bench-{stamp}.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(a.out, f"bench-{stamp}.md"), "w") as f:
        f.write(text + "\n")
    print(f"\nwrote {os.path.join(a.out, f'bench-{stamp}.json')} and .md")


if __name__ == "__main__":
    main()
