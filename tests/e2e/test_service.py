"""The model service (mcli start): lifecycle with a pid file, every management and inference route,
inference against PyTorch references, the LRU budget, the registry across restarts, the CLI's
service and direct-on-database modes, and configuration precedence."""
import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest

from conftest import FIXTURES, MCLI, free_port, run_mcli, wait_for_port
from service_util import (BERT_BASE_DIR, BERT_CLS_DIR, GPT2_DIR, Service, http, load_json)

GPT2_REF = load_json(os.path.join(FIXTURES, "decoders", "tiny-gpt2-ref.json"))
CLS_REF = load_json(os.path.join(BERT_CLS_DIR, "reference.json"))


@pytest.fixture
def svc(tmp_path):
    s = Service(tmp_path).start()
    yield s
    s.stop()


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------- lifecycle

def test_start_status_stop_lifecycle_through_the_pid_file(tmp_path):
    s = Service(tmp_path).start()
    try:
        info = load_json(s.pid_file)
        assert info["pid"] == s.proc.pid and info["port"] == s.port and info["host"] == "127.0.0.1"
        r = s.cli("status", "--json")
        assert r.returncode == 0, r.stderr
        st = json.loads(r.stdout)
        assert st["running"] is True and st["pid"] == s.proc.pid and st["port"] == s.port
        assert st["health"]["status"] == "healthy"
        r = s.cli("status")
        assert r.returncode == 0 and f"http://127.0.0.1:{s.port}" in r.stdout

        again = s.cli("start", "--port", str(free_port()))
        assert again.returncode == 1 and "already runs" in again.stderr

        r = s.cli("stop")
        assert r.returncode == 0 and "stopped" in r.stdout
        assert s.proc.wait(timeout=10) == 0
        assert not os.path.exists(s.pid_file)
        r = s.cli("status")
        assert r.returncode == 3 and "not running" in r.stdout
        assert s.cli("stop").returncode == 0  # stopping a stopped service is not an error
    finally:
        s.stop()


def test_stale_pid_file_is_ignored_and_replaced(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (models / "service.pid").write_text(json.dumps({"pid": dead.pid, "host": "127.0.0.1", "port": 1}))
    s = Service(tmp_path).start()
    try:
        assert load_json(s.pid_file)["pid"] == s.proc.pid
    finally:
        s.stop()


def test_daemon_detaches_and_stop_ends_it(tmp_path):
    port = free_port()
    models = str(tmp_path / "models")
    env = {"MCLI_MODELS_DIR": models}
    r = run_mcli("start", "--daemon", "--port", str(port), env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"http://127.0.0.1:{port}" in r.stdout
    pid = load_json(os.path.join(models, "service.pid"))["pid"]
    try:
        assert pid_alive(pid)
        status, body = http("GET", f"http://127.0.0.1:{port}/health")
        assert status == 200 and body["status"] == "healthy"
        assert os.path.exists(os.path.join(models, "service.log"))
    finally:
        r = run_mcli("stop", env=env)
    assert r.returncode == 0
    deadline = time.time() + 10
    while pid_alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid)


def test_busy_port_is_a_clear_error(tmp_path):
    import socket
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        r = run_mcli("start", "--port", str(port), "--models-dir", str(tmp_path / "m"), timeout=30)
    assert r.returncode != 0 and "cannot listen" in r.stderr and str(port) in r.stderr


# ---------------------------------------------------------------- root, health

def test_root_and_health_report_state_and_measured_memory(svc):
    status, root = svc.get("/")
    assert status == 200
    assert root["service"] == "mcli model service" and root["status"] == "running" and root["models_loaded"] == 0
    status, h = svc.get("/health")
    assert status == 200 and h["status"] == "healthy" and h["models_loaded"] == 0
    with open(f"/proc/{svc.proc.pid}/status") as f:
        rss_kb = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    assert abs(h["memory_usage_mb"] - rss_kb / 1024) < max(2.0, 0.2 * rss_kb / 1024)


# ---------------------------------------------------------------- inference vs references

def test_generate_greedy_matches_the_pytorch_reference(svc):
    case = next(c for c in GPT2_REF["greedy"] if c["name"] == "longer_than_prompt")
    mid = svc.add("gpt", GPT2_DIR, max_length=case["max_new_tokens"])
    status, r = svc.post(f"/models/{mid}/generate", {"prompt": case["text"], "temperature": 0})
    assert status == 200, r
    assert r["token_ids"] == case["ids"]
    assert r["tokens"] == len(case["ids"]) and r["execution_time_ms"] > 0
    assert isinstance(r["generated_text"], str)
    # by name too, and max_length in the body wins over the registered default
    status, r2 = svc.post("/models/gpt/generate", {"prompt": case["text"], "temperature": 0, "max_length": 3})
    assert status == 200 and r2["token_ids"] == case["ids"][:3]


def test_classify_matches_the_pytorch_reference(svc):
    mid = svc.add("cls", BERT_CLS_DIR)
    for i in range(3):
        status, r = svc.post(f"/models/{mid}/classify", {"text": CLS_REF["texts"][i]})
        assert status == 200, r
        got = r["classifications"]
        assert set(got) == set(CLS_REF["labels"])
        for label, p in zip(CLS_REF["labels"], CLS_REF["probs"][i]):
            assert abs(got[label] - p) < 1e-4, (label, got[label], p)


def test_sampling_with_a_seed_is_reproducible(svc):
    mid = svc.add("gpt", GPT2_DIR)
    body = {"prompt": "the cat sat on", "temperature": 1.0, "top_k": 20, "top_p": 0.95, "seed": 7, "max_length": 12}
    a = svc.post(f"/models/{mid}/generate", body)[1]
    b = svc.post(f"/models/{mid}/generate", body)[1]
    assert a["token_ids"] == b["token_ids"] and len(a["token_ids"]) > 0


# ---------------------------------------------------------------- management

def test_add_list_update_unload_reload_remove(svc):
    status, r = svc.post("/models", {"name": "gpt", "model_path": GPT2_DIR, "temperature": 0.3, "top_k": 7})
    assert status == 200 and r["status"] == "loaded"
    mid = r["model_id"]
    assert len(mid) == 36 and mid[14] == "4"
    status, models = svc.get("/models")
    assert status == 200 and len(models) == 1
    m = models[0]
    assert m["id"] == mid and m["name"] == "gpt" and m["model_type"] == "gpt2" and m["is_loaded"] is True
    assert m["temperature"] == pytest.approx(0.3) and m["top_k"] == 7 and m["device"] == "cpu"
    assert m["parameters_count"] > 0 and m["memory_usage_mb"] > 0
    assert m["model_path"] == os.path.realpath(GPT2_DIR)

    status, one = svc.get("/models/gpt")
    assert status == 200 and one == m
    assert svc.get("/models/nope")[0] == 404

    status, r = svc.put(f"/models/{mid}", {"temperature": 0.0, "max_length": 5})
    assert status == 200 and r["model"]["temperature"] == 0 and r["model"]["max_length"] == 5

    status, r = svc.delete(f"/models/{mid}")
    assert status == 200 and r["status"] == "unloaded" and r["was_loaded"] is True
    assert svc.get("/health")[1]["models_loaded"] == 0
    assert svc.get("/models")[1][0]["is_loaded"] is False

    status, r = svc.post(f"/models/{mid}/generate", {"prompt": "the cat"})  # reloads on demand
    assert status == 200 and r["tokens"] == 5  # the updated default
    assert svc.get("/models")[1][0]["is_loaded"] is True

    # a name with a slash, addressed raw or encoded
    org = svc.add("org/model", BERT_CLS_DIR)
    assert svc.post("/models/org/model/classify", {"text": "a dog"})[0] == 200
    assert svc.get("/models/org%2Fmodel")[1]["id"] == org
    assert svc.delete("/models/org/model/remove")[0] == 200

    status, r = svc.delete(f"/models/{mid}/remove")
    assert status == 200 and r["status"] == "removed"
    assert svc.get("/models")[1] == []
    assert svc.post(f"/models/{mid}/generate", {"prompt": "x"})[0] == 404
    assert svc.get("/health")[1]["models_loaded"] == 0


def test_summary_counts_every_inference_and_averages_latency(svc):
    g = svc.add("gpt", GPT2_DIR, max_length=4)
    c = svc.add("cls", BERT_CLS_DIR)
    times = []
    for p in ("a cat", "the dog"):
        times.append(svc.post(f"/models/{g}/generate", {"prompt": p})[1]["execution_time_ms"])
    cls_time = svc.post(f"/models/{c}/classify", {"text": "a dog"})[1]["execution_time_ms"]
    status, r = svc.post(f"/models/{g}/classify", {"text": "x"})  # a decoder cannot classify
    assert status == 400 and "classification head" in r["detail"]
    status, s = svc.get("/models/summary")
    assert status == 200
    assert s["total_models"] == 2 and s["loaded_models"] == 2
    assert s["models_by_type"] == {"bert": 1, "gpt2": 1}
    assert s["total_inferences"] == 4 and s["total_errors"] == 1
    per = {m["name"]: m for m in s["models"]}
    assert per["gpt"]["inferences"] == 3 and per["gpt"]["errors"] == 1
    assert per["gpt"]["mean_latency_ms"] == pytest.approx(sum(times) / 2, abs=0.01)
    assert per["cls"]["inferences"] == 1 and per["cls"]["mean_latency_ms"] == pytest.approx(cls_time, abs=0.01)
    assert s["memory_usage_mb"] == pytest.approx(sum(m["memory_usage_mb"] for m in svc.get("/models")[1]))
    con = sqlite3.connect(svc.db)
    rows = con.execute("SELECT request_type, input, output IS NOT NULL, error IS NOT NULL FROM inferences "
                       "ORDER BY created_at").fetchall()
    con.close()
    assert rows[0][:2] == ("generate", "a cat") and rows[2] == ("classify", "a dog", 1, 0)
    assert rows[3][0] == "classify" and rows[3][3] == 1


def test_default_budget_keeps_two_models_and_reloads_evicted_ones(svc):
    a = svc.add("cls", BERT_CLS_DIR)
    svc.add("gpt", GPT2_DIR)
    svc.add("base", BERT_BASE_DIR)
    assert svc.get("/health")[1]["models_loaded"] == 2
    loaded = {m["name"]: m["is_loaded"] for m in svc.get("/models")[1]}
    assert loaded == {"cls": False, "gpt": True, "base": True}
    status, r = svc.post(f"/models/{a}/classify", {"text": CLS_REF["texts"][0]})
    assert status == 200
    assert r["classifications"]["negative"] == pytest.approx(CLS_REF["probs"][0][0], abs=1e-4)
    loaded = {m["name"]: m["is_loaded"] for m in svc.get("/models")[1]}
    assert loaded == {"cls": True, "gpt": False, "base": True}


def test_errors_are_json_with_the_right_status(svc):
    mid = svc.add("gpt", GPT2_DIR)
    cases = [
        (("POST", "/models", None, b"{not json"), 400, "not valid JSON"),
        (("POST", "/models", {"name": "x"}, None), 400, "model_path"),
        (("POST", "/models", {"name": "gpt", "model_path": GPT2_DIR}, None), 400, "already exists"),
        (("POST", "/models", {"name": "y", "model_path": "/no/such/dir"}, None), 404, "not a directory"),
        (("POST", "/models", {"name": "z", "model_path": FIXTURES}, None), None, "config.json"),
        (("POST", "/models", {"name": "w", "model_path": GPT2_DIR, "top_p": 0}, None), 400, "top_p"),
        (("POST", "/models", {"name": "v", "model_path": GPT2_DIR, "device": "cuda"}, None), 400, "CPU"),
        (("POST", f"/models/{mid}/generate", {}, None), 400, "prompt"),
        (("POST", f"/models/{mid}/generate", {"prompt": 5}, None), 400, "string"),
        (("POST", f"/models/{mid}/generate", {"prompt": "x", "max_length": 0}, None), 400, "max_length"),
        (("POST", "/models/nope/generate", {"prompt": "x"}, None), 404, "nope"),
        (("PUT", "/models/nope", {"temperature": 1}, None), 404, "nope"),
        (("DELETE", "/models/nope/remove", None, None), 404, "nope"),
        (("GET", "/nowhere", None, None), 404, "no route"),
        (("DELETE", "/models", None, None), 405, "not allowed"),
        (("POST", "/models", None, b"[1,2]"), 400, "object"),
        (("POST", "/models", None, b"x" * (1024 * 1024 + 10)), 413, "1 MiB"),
    ]
    for (method, path, body, raw), code, text in cases:
        status, r = http(method, svc.url + path, body=body, raw=raw)
        if code is None:
            assert 400 <= status < 500, (path, status, r)
        else:
            assert status == code, (method, path, status, r)
        assert text in r["detail"], (path, r)
        assert "error" in r
    # a failed add leaves nothing behind
    names = [m["name"] for m in svc.get("/models")[1]]
    assert names == ["gpt"]


# ---------------------------------------------------------------- persistence

def test_registry_survives_a_restart(tmp_path):
    s = Service(tmp_path).start()
    try:
        g = s.add("gpt", GPT2_DIR, temperature=0.0, max_length=3)
        c = s.add("cls", BERT_CLS_DIR)
        s.post(f"/models/{c}/classify", {"text": "a dog"})
        before = s.get("/models")[1]
    finally:
        s.stop()
    s2 = Service(tmp_path, models_dir=s.models_dir).start()
    try:
        after = s2.get("/models")[1]
        assert [(m["id"], m["name"], m["temperature"], m["max_length"]) for m in after] == \
               [(m["id"], m["name"], m["temperature"], m["max_length"]) for m in before]
        assert all(m["is_loaded"] is False for m in after)  # nothing is in memory after a restart
        assert s2.get("/models/summary")[1]["total_inferences"] == 1
        status, r = s2.post(f"/models/{g}/generate", {"prompt": "the cat sat on"})
        assert status == 200 and r["tokens"] == 3
    finally:
        s2.stop()


# ---------------------------------------------------------------- CLI

def test_cli_manages_the_registry_directly_when_no_service_runs(tmp_path):
    models = str(tmp_path / "models")
    env = {"MCLI_MODELS_DIR": models}
    r = run_mcli("add", "gpt", "--path", GPT2_DIR, "--temperature", "0", "--max-length", "4", "--json", env=env)
    assert r.returncode == 0, r.stderr
    mid = json.loads(r.stdout)["model_id"]
    r = run_mcli("add", "gpt", "--path", GPT2_DIR, env=env)
    assert r.returncode != 0 and "already exists" in r.stderr
    r = run_mcli("add", "bad", "--path", "/no/such", env=env)
    assert r.returncode == 1 and "not a directory" in r.stderr
    r = run_mcli("update", "gpt", "--top-k", "3", "--name", "gpt-2", env=env)
    assert r.returncode == 0, r.stderr
    r = run_mcli("update", "gpt", "--top-p", "2", env=env)
    assert r.returncode == 2
    con = sqlite3.connect(os.path.join(models, "registry.db"))
    row = con.execute("SELECT id, name, top_k, temperature, max_length, is_loaded FROM models").fetchone()
    con.close()
    assert row == (mid, "gpt-2", 3, 0.0, 4, 0)
    s = Service(tmp_path, models_dir=models).start()
    try:
        status, out = s.post("/models/gpt-2/generate", {"prompt": "the cat sat on"})
        assert status == 200 and out["tokens"] == 4
        # registered without --type: the first load records the type from config.json
        assert s.get("/models")[1][0]["model_type"] == "gpt2"
    finally:
        s.stop()


def test_cli_goes_through_the_running_service(svc):
    r = svc.cli("add", "cls", "--path", BERT_CLS_DIR, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "loaded" and out["model"]["is_loaded"] is True  # the service loaded it
    assert svc.get("/health")[1]["models_loaded"] == 1
    r = svc.cli("add", "broken", "--path", FIXTURES)
    assert r.returncode != 0 and "the service answered 4" in r.stderr
    r = svc.cli("update", "cls", "--temperature", "0.25")
    assert r.returncode == 0, r.stderr
    assert svc.get("/models")[1][0]["temperature"] == pytest.approx(0.25)


def test_config_file_then_environment_then_flags(tmp_path):
    models = tmp_path / "models"
    p_cfg, p_env, p_flag = free_port(), free_port(), free_port()
    cfg = tmp_path / "service.conf"
    cfg.write_text(f"# service settings\nport = {p_cfg}\nmodels_dir = \"{models}\"\nmax_models = 1\n")

    def start(extra, env):
        e = dict(os.environ)
        e.pop("MCLI_MODELS_DIR", None)
        e.update(env)
        proc = subprocess.Popen([MCLI, "start", "--config", str(cfg), *extra], env=e, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        return proc

    for extra, env, port in (([], {}, p_cfg), ([], {"MCLI_SERVICE_PORT": str(p_env)}, p_env),
                             (["--port", str(p_flag)], {"MCLI_SERVICE_PORT": str(p_env)}, p_flag)):
        proc = start(extra, env)
        try:
            wait_for_port(port, proc)
            deadline = time.time() + 10
            while not (models / "service.pid").exists() and time.time() < deadline:
                time.sleep(0.02)
            assert load_json(str(models / "service.pid"))["port"] == port
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=20)
    bad = tmp_path / "bad.conf"
    bad.write_text("port = 80 80\n")
    r = run_mcli("start", "--config", str(bad))
    assert r.returncode == 2 and "port" in r.stderr
    bad.write_text("colour = blue\n")
    r = run_mcli("start", "--config", str(bad))
    assert r.returncode == 2 and "bad.conf:1: unknown setting 'colour'" in r.stderr
    js = tmp_path / "service.json"
    js.write_text(json.dumps({"port": p_cfg, "models_dir": str(models)}))
    proc = start(["--config", str(js)], {})
    try:
        wait_for_port(p_cfg, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


def test_memory_budget_evicts_the_least_recently_used_model(tmp_path):
    # weights: gpt 0.62 MB, each small BERT 0.085 MB, the DistilBERT 0.175 MB; budget 1 MB, 10 models
    s = Service(tmp_path, extra=["--max-models", "10", "--max-memory-mb", "1"]).start()
    try:
        enc = os.path.join(FIXTURES, "encoders")
        s.add("gpt", GPT2_DIR)
        for name in ("bert_cls", "bert_base", "bert_mlm", "bert_multilabel"):
            s.add(name, os.path.join(enc, name))
        assert s.get("/health")[1]["models_loaded"] == 5  # 0.96 MB: everything fits
        s.add("distil", os.path.join(enc, "distilbert_cls"))  # 1.14 MB: the oldest (gpt) goes
        loaded = {m["name"]: m["is_loaded"] for m in s.get("/models")[1]}
        assert loaded == {"gpt": False, "bert_cls": True, "bert_base": True, "bert_mlm": True,
                          "bert_multilabel": True, "distil": True}
        assert s.get("/models/summary")[1]["memory_usage_mb"] <= 1.0
    finally:
        s.stop()


def test_a_pid_file_naming_another_live_process_is_stale(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    other = subprocess.Popen(["sleep", "30"])
    try:
        (models / "service.pid").write_text(json.dumps({"pid": other.pid, "host": "127.0.0.1", "port": 1}))
        r = run_mcli("stop", "--models-dir", str(models))
        assert r.returncode == 0 and "not running" in r.stdout
        assert other.poll() is None  # stop never signals a process that is not the service
        r = run_mcli("status", "--models-dir", str(models))
        assert r.returncode == 3
    finally:
        other.kill()
        other.wait()


def test_api_key_guards_every_route_but_health(tmp_path):
    s = Service(tmp_path, extra=["--api-key", "s3cret"]).start()
    try:
        assert s.get("/health")[0] == 200
        status, r = s.get("/models")
        assert status == 401 and "Bearer" in r["detail"]
        assert s.get("/models", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert s.get("/models", headers={"Authorization": "Bearer s3cret"})[0] == 200
        assert s.post("/models", {"name": "g", "model_path": GPT2_DIR})[0] == 401
        # the CLI sends the key it is configured with
        r = s.cli("add", "g", "--path", GPT2_DIR)
        assert r.returncode != 0 and "401" in r.stderr
        r = s.cli("add", "g", "--path", GPT2_DIR, "--api-key", "s3cret", "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["status"] == "loaded", r.stderr
        env = dict(s.env, MCLI_API_KEY="s3cret")
        r = run_mcli("update", "g", "--top-k", "9", "--models-dir", s.models_dir, env=env)
        assert r.returncode == 0, r.stderr
        assert s.cli("status").returncode == 0
    finally:
        s.stop()
