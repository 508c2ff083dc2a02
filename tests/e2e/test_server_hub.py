"""/api/pull, /api/tags and /api/delete of `mcli serve` against the fake hub (tests/e2e/fake_hub.py):
streamed pull progress through the hub's downloader, manifest digests, deletion."""
import json
import os

import requests

from hub_helpers import env, hub, model_dir, read_manifest, sha256_of  # noqa: F401 (fixtures)
from server_util import ENC, Server


def test_pull_streams_progress_then_tags_show_manifest_digest_then_delete(hub, env):  # noqa: F811
    models_dir = env["MCLI_MODELS_DIR"]
    s = Server([f"{ENC}/bert_base"], extra=["--models-dir", models_dir], env=env)
    try:
        with s.post("/api/pull", {"model": "tiny-org/tiny-bert"}, stream=True, timeout=120) as r:
            assert r.status_code == 200
            lines = [json.loads(x) for x in r.iter_lines() if x]
        assert lines[-1] == {"status": "success"}, lines[-3:]
        assert any(x.get("status", "").startswith("pulling model.safetensors") for x in lines)
        d = model_dir(env, "tiny-org/tiny-bert")
        weights = os.path.join(d, "model.safetensors")
        digest = sha256_of(weights)
        assert {f["name"]: f["sha256"] for f in read_manifest(d)["files"]}["model.safetensors"] == digest
        tags = {m["name"]: m for m in s.get("/api/tags").json()["models"]}
        assert tags["tiny-org/tiny-bert"]["digest"] == digest
        assert s.post("/api/pull", {"model": "tiny-org/tiny-bert", "stream": False}).json()["status"] == "success"
        r = requests.delete(s.url("/api/delete"), json={"model": "tiny-org/tiny-bert"}, timeout=30)
        assert r.status_code == 200 and not os.path.exists(d)
        r = requests.delete(s.url("/api/delete"), json={"model": "tiny-org/tiny-bert"}, timeout=30)
        assert r.status_code == 404
        r = s.post("/api/pull", {"model": "nobody/nothing"}, stream=True)
        last = [json.loads(x) for x in r.iter_lines() if x][-1]
        assert "error" in last
        assert s.healthy()
    finally:
        assert s.stop() == 0


def test_a_pulled_model_is_served_under_its_repo_name_with_manifest_digests(hub, env, tmp_path):  # noqa: F811
    from conftest import run_mcli
    r = run_mcli("pull", "tiny-org/tiny-bert", env=env)
    assert r.returncode == 0, r.stderr
    d = model_dir(env, "tiny-org/tiny-bert")
    s = Server([d], extra=["--models-dir", env["MCLI_MODELS_DIR"]], env=env)
    try:
        names = s.get("/").json()["models"]
        assert names == ["tiny-org/tiny-bert"]
        tag = s.get("/api/tags").json()["models"][0]
        assert tag["digest"] == sha256_of(os.path.join(d, "model.safetensors"))
        assert s.post("/api/embed", {"model": "tiny-org/tiny-bert:latest", "input": "hi"}).status_code == 200
    finally:
        assert s.stop() == 0
