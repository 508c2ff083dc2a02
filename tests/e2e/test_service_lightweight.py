"""The model service's /lightweight/... integration against the fake hub: the catalog, downloads (raw and
URL-encoded keys, progress in /lightweight/status while they run, NDJSON streams), the in-process
lightweight server with real inference on its port, and /models/from-url."""
import json
import os
import shutil
import threading
import time
import urllib.request

import pytest

from conftest import FIXTURES, free_port, run_mcli
from fake_hub import FakeHub
from service_util import BERT_CLS_DIR, GPT2_DIR, Service, http, load_json

CLS_REF = load_json(os.path.join(BERT_CLS_DIR, "reference.json"))


@pytest.fixture
def hub(tmp_path):
    root = tmp_path / "hub"
    shutil.copytree(BERT_CLS_DIR, root / "prajjwal1" / "bert-tiny")
    shutil.copytree(GPT2_DIR, root / "tiny-org" / "tiny-gpt2")
    h = FakeHub(str(root)).start()
    yield h
    h.stop()


@pytest.fixture
def svc(tmp_path, hub):
    env = {"HF_ENDPOINT": hub.url, "MCLI_RETRY_BASE_MS": "20", "MCLI_RETRY_MAX_MS": "200", "HF_TOKEN": "",
           "HF_HUB_OFFLINE": "", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    # the lightweight server goes to port + 1: pick a port whose successor is free too
    for _ in range(20):
        port = free_port()
        try:
            import socket
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            break
        except OSError:
            continue
    s = Service(tmp_path, port=port, env=env).start()
    yield s
    s.stop()


def test_readme_flow_download_start_and_real_inference_on_the_lightweight_port(svc):
    status, cat = svc.get("/lightweight/models")
    assert status == 200
    entry = next(m for m in cat["models"] if m["key"] == "prajjwal1/bert-tiny")
    assert entry["downloaded"] is False and cat["loaded"] == []

    status, r = svc.post("/lightweight/models/prajjwal1/bert-tiny/download")
    assert status == 200, r
    assert r["status"] == "success" and r["repo"] == "prajjwal1/bert-tiny"
    want = os.path.join(svc.models_dir, "lightweight", "prajjwal1", "bert-tiny")
    assert os.path.realpath(r["path"]) == os.path.realpath(want)
    with open(os.path.join(want, "model.safetensors"), "rb") as f, \
            open(os.path.join(BERT_CLS_DIR, "model.safetensors"), "rb") as g:
        assert f.read() == g.read()
    status, cat = svc.get("/lightweight/models")
    assert next(m for m in cat["models"] if m["key"] == "prajjwal1/bert-tiny")["downloaded"] is True
    assert [d["repo"] for d in cat["downloaded"]] == ["prajjwal1/bert-tiny"]

    status, st = svc.get("/lightweight/status")
    assert st["running"] is False and st["port"] is None
    status, r = svc.post("/lightweight/start")
    assert status == 200, r
    assert r["status"] == "started" and r["port"] == svc.port + 1
    assert r["url"] == f"http://127.0.0.1:{svc.port + 1}"
    status, again = svc.post("/lightweight/start")
    assert status == 200 and again["status"] == "already_running" and again["port"] == r["port"]

    status, st = svc.get("/lightweight/status")
    assert st["running"] is True and st["port"] == svc.port + 1
    assert st["loaded_models"] == ["prajjwal1/bert-tiny"]
    assert st["system_info"]["cpus_online"] >= 1 and st["system_info"]["ram_total_mb"] > 0
    assert svc.get("/lightweight/models")[1]["loaded"] == ["prajjwal1/bert-tiny"]

    lw = f"http://127.0.0.1:{svc.port + 1}"
    for i in range(2):
        status, out = http("POST", lw + "/models/prajjwal1/bert-tiny/classify", {"text": CLS_REF["texts"][i]})
        assert status == 200, out
        got = {s["label"]: s["score"] for s in out["scores"]}
        for label, p in zip(CLS_REF["labels"], CLS_REF["probs"][i]):
            assert abs(got[label] - p) < 1e-4


def test_download_progress_is_visible_in_status_while_it_runs(svc, hub):
    hub.add_fault("trickle", match="model.safetensors", server="any", times=-1, chunk=4096, delay=0.04)
    result = {}

    def download():
        result["r"] = svc.post("/lightweight/models/prajjwal1%2Fbert-tiny/download", timeout=120)

    t = threading.Thread(target=download)
    t.start()
    seen = []
    deadline = time.time() + 60
    while t.is_alive() and time.time() < deadline:
        status, st = svc.get("/lightweight/status")
        for d in st["downloads"]:
            if d["status"] == "downloading" and d["file"] == "model.safetensors" and 0 < d["completed"] < d["total"]:
                seen.append(d["completed"])
        time.sleep(0.05)
    t.join()
    status, r = result["r"]
    assert status == 200 and r["status"] == "success", r
    assert len(seen) >= 2 and seen == sorted(seen)  # partial progress, growing
    final = svc.get("/lightweight/status")[1]["downloads"][0]
    assert final["status"] == "success" and final["total_completed"] == final["total_bytes"] > 0


def test_download_streams_ndjson_progress_when_asked(svc, hub):
    hub.add_fault("trickle", match="model.safetensors", server="any", times=-1, chunk=8192, delay=0.02)
    req = urllib.request.Request(svc.url + "/lightweight/models/tiny-org%2Ftiny-gpt2/download?stream=1",
                                 data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=120) as resp:
        assert resp.headers["Content-Type"] == "application/x-ndjson"
        lines = [json.loads(l) for l in resp.read().decode().splitlines() if l.strip()]
    assert len(lines) >= 3
    assert all(l["model_key"] == "tiny-org/tiny-gpt2" for l in lines)
    assert lines[-1]["status"] == "success" and os.path.isdir(lines[-1]["path"])
    done = [l["total_completed"] for l in lines]
    assert done == sorted(done) and lines[-1]["total_completed"] == lines[-1]["total_bytes"]
    assert any(l["status"] == "downloading" for l in lines[:-1])


def test_download_errors_name_the_key(svc):
    status, r = svc.post("/lightweight/models/no/such/thing/download")
    assert status == 404 and "no/such/thing" in r["detail"]
    status, r = svc.post("/lightweight/models/tiny-org/missing/download")
    assert status == 404 and "tiny-org/missing" in r["detail"]
    status, r = svc.get("/lightweight/models/tiny-org/tiny-gpt2/download")
    assert status == 405
    status, r = svc.post("/lightweight/start")
    assert status == 404 and "download one first" in r["detail"]


def test_models_from_url_downloads_then_loads(svc, hub):
    status, r = svc.post("/models/from-url", {"url": hub.url + "/tiny-org/tiny-gpt2", "name": "g",
                                               "temperature": 0, "max_length": 4})
    assert status == 200, r
    assert r["status"] == "loaded" and os.path.isdir(r["path"])
    status, out = svc.post("/models/g/generate", {"prompt": "the cat sat on"})
    assert status == 200 and out["tokens"] == 4
    status, r = svc.post("/models/from-url", {"url": hub.url + "/tiny-org/nothing-here"})
    assert status == 404
    status, r = svc.post("/models/from-url", {"url": "https://example.invalid/../../etc"})
    assert status == 400


def test_cli_add_from_url_without_a_service_registers_the_download(tmp_path, hub):
    env = {"HF_ENDPOINT": hub.url, "MCLI_MODELS_DIR": str(tmp_path / "m"), "HF_TOKEN": "", "HF_HUB_OFFLINE": ""}
    r = run_mcli("add-from-url", "gpt", "tiny-org/tiny-gpt2", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "registered"
    import sqlite3
    con = sqlite3.connect(str(tmp_path / "m" / "registry.db"))
    (path,) = con.execute("SELECT model_path FROM models WHERE name = 'gpt'").fetchone()
    con.close()
    assert os.path.realpath(path) == os.path.realpath(str(tmp_path / "m" / "lightweight" / "tiny-org" / "tiny-gpt2"))


def test_lightweight_start_on_a_busy_port_fails_cleanly_and_can_be_retried(svc):
    import socket
    assert svc.post("/lightweight/models/prajjwal1/bert-tiny/download")[0] == 200
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        status, r = svc.post("/lightweight/start", {"port": busy})
        assert status >= 400 and str(busy) in r["detail"]
    assert svc.get("/lightweight/status")[1]["running"] is False
    port = free_port()
    status, r = svc.post("/lightweight/start", {"port": port})
    assert status == 200 and r["status"] == "started" and r["port"] == port
    status, out = http("GET", f"http://127.0.0.1:{port}/health")
    assert status == 200


def test_the_lightweight_server_inherits_the_api_key(tmp_path, hub):
    env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": "", "HF_HUB_OFFLINE": ""}
    s = Service(tmp_path, env=env, extra=["--api-key", "k3y"]).start()
    auth = {"Authorization": "Bearer k3y"}
    try:
        status, r = http("POST", s.url + "/lightweight/models/prajjwal1/bert-tiny/download", {}, headers=auth)
        assert status == 200, r
        port = free_port()
        status, r = http("POST", s.url + "/lightweight/start", {"port": port}, headers=auth)
        assert status == 200, r
        lw = f"http://127.0.0.1:{port}/models/prajjwal1/bert-tiny/classify"
        assert http("POST", lw, {"text": "a dog"})[0] == 401
        assert http("POST", lw, {"text": "a dog"}, headers=auth)[0] == 200
    finally:
        s.stop()
