"""The official `openai` and `ollama` npm clients against `mcli serve` (installed by this test into
tests/e2e/node/node_modules, which git ignores). Skipped with the reason when npm cannot install."""
import json
import os
import shutil
import subprocess

import pytest

from server_util import DEC, ENC, Server, close, ref

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")
GPT = "org/tiny-gpt2"


@pytest.fixture(scope="module")
def node_clients():
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node/npm not installed")
    have = all(os.path.isdir(os.path.join(NODE_DIR, "node_modules", p)) for p in ("openai", "ollama"))
    if not have:
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR,
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            pytest.skip(f"npm install of openai/ollama failed (offline?): {r.stderr.strip()[:300]}")
    return os.path.join(NODE_DIR, "clients.mjs")


def test_official_openai_and_ollama_clients_work(node_clients):
    s = Server([f"{GPT}={DEC}/tiny-gpt2", f"test/bert-base={ENC}/bert_base"])
    try:
        r = subprocess.run(["node", node_clients, s.base, GPT, "test/bert-base"], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        # our own API gives the reference answers for the same greedy requests
        chat = s.post("/v1/chat/completions", {"model": GPT, "messages": [{"role": "user", "content": "hello there"}],
                                               "max_tokens": 5, "temperature": 0}).json()
        assert out["chat"] == chat["choices"][0]["message"]["content"]
        assert out["chat_stream"] == out["chat"]
        assert out["chat_usage"]["completion_tokens"] == 5
        gen = s.post("/api/generate", {"model": GPT, "prompt": "the cat", "stream": False,
                                       "options": {"temperature": 0, "num_predict": 6}}).json()
        assert out["generate"] == gen["response"] == out["generate_stream"]
        assert out["generate_eval_count"] == 6
        want = ref("bert_base")["mean_normalized"][0]
        close(out["openai_embedding"], want)
        close(out["ollama_embedding"], want)
        assert set(out["models"]) == {GPT, "test/bert-base"}
        assert GPT in out["tags"]
    finally:
        assert s.stop() == 0
