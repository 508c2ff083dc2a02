"""`mcli serve` end to end: every route of the original, Ollama, OpenAI and TEI APIs against a real
server on a loopback port, checked against the PyTorch references of the fixture models (and
sha256 of the weight files); bad input of every kind, each followed by a healthy /health."""
import base64
import concurrent.futures
import hashlib
import json
import math
import os
import socket
import struct
import time

import pytest
import requests

from server_util import DEC, ENC, Server, close, ref

GPT = "org/tiny-gpt2"


@pytest.fixture(scope="module")
def srv():
    s = Server([f"test/bert-base={ENC}/bert_base", f"{ENC}/bert_cls", f"{ENC}/bert_mlm",
                f"{ENC}/bert_multilabel", f"{GPT}={DEC}/tiny-gpt2"], extra=["--max-body", "65536"])
    yield s
    assert s.stop() == 0, "SIGTERM must stop the server cleanly"


def gpt_ref():
    with open(os.path.join(DEC, "tiny-gpt2-ref.json")) as f:
        return json.load(f)


# ---------------------------------------------------------------- original routes

def test_root_and_health_report_running_models(srv):
    r = srv.get("/")
    assert r.status_code == 200
    assert r.json()["status"] == "running"
    assert set(r.json()["models"]) == {"test/bert-base", "bert_cls", "bert_mlm", "bert_multilabel", GPT}
    h = srv.get("/health")
    assert h.json()["status"] == "healthy" and h.json()["models_loaded"] == 5
    assert h.headers["Access-Control-Allow-Origin"] == "*"


def test_models_lists_type_and_real_parameter_counts(srv):
    models = {m["name"]: m for m in srv.get("/models").json()["models"]}
    assert models["bert_cls"]["type"] == "text-classification"
    assert models["bert_cls"]["parameters"] == ref("bert_cls")["n_params"]
    assert models["test/bert-base"]["parameters"] == ref("bert_base")["n_params"]
    assert models[GPT]["type"] == "text-generation"
    assert models["bert_cls"]["labels"] == ref("bert_cls")["labels"]


@pytest.mark.parametrize("path", ["/models/test/bert-base/embed", "/models/test%2Fbert-base/embed"])
def test_embed_raw_and_urlencoded_name_matches_torch_mean_pooling(srv, path):
    rf = ref("bert_base")
    texts = rf["texts"][:4]
    r = srv.post(path, {"texts": texts})
    assert r.status_code == 200, r.text
    emb = r.json()["embeddings"]
    assert len(emb) == 4
    for got, want in zip(emb, rf["mean"][:4]):
        close(got, want)


def test_embed_cls_pooling_normalized_matches_torch(srv):
    rf = ref("bert_base")
    r = srv.post("/models/test/bert-base/embed", {"text": rf["texts"][0], "pooling": "cls", "normalize": True})
    close(r.json()["embeddings"][0], rf["cls_normalized"][0])


def test_concurrent_embeds_are_batched_and_each_matches_its_reference(srv):
    rf = ref("bert_base")
    texts = [t for t in rf["texts"] if t] * 8

    def one(t):
        return srv.post("/models/test/bert-base/embed", {"text": t}).json()

    with concurrent.futures.ThreadPoolExecutor(32) as ex:
        results = list(ex.map(one, texts))
    for t, res in zip(texts, results):
        close(res["embeddings"][0], rf["mean"][rf["texts"].index(t)])
    assert max(res["batch_size"] for res in results) > 1, "simultaneous requests should share an engine call"


def test_classify_returns_label_scores_logits_like_torch(srv):
    rf = ref("bert_cls")
    r = srv.post("/models/bert_cls/classify", {"text": rf["texts"][1]}).json()
    close(r["logits"], rf["logits"][1])
    best = max(range(len(rf["probs"][1])), key=lambda i: rf["probs"][1][i])
    assert r["label"] == rf["labels"][best]
    assert abs(sum(s["score"] for s in r["scores"]) - 1) < 1e-5
    many = srv.post("/models/bert_cls/classify", {"texts": rf["texts"][:3]}).json()["results"]
    for i in range(3):
        close(many[i]["logits"], rf["logits"][i])


def test_multilabel_classify_uses_sigmoid(srv):
    rf = ref("bert_multilabel")
    r = srv.post("/models/bert_multilabel/classify", {"text": rf["texts"][0]}).json()
    by_label = {s["label"]: s["score"] for s in r["scores"]}
    for label, p in zip(rf["labels"], rf["probs"][0]):
        assert abs(by_label[label] - p) < 1e-4


def test_fill_mask_top_candidates_match_torch(srv):
    m = ref("bert_mlm")["mlm"][0]
    r = srv.post("/models/bert_mlm/fill-mask", {"text": m["text"], "top_k": 5})
    assert r.status_code == 200, r.text
    cands = r.json()
    top_ids = m["top_ids"][0] if isinstance(m["top_ids"][0], list) else m["top_ids"]
    top_scores = m["top_scores"][0] if isinstance(m["top_scores"][0], list) else m["top_scores"]
    assert [c["token_id"] for c in cands] == top_ids[:5]
    close([c["score"] for c in cands], top_scores[:5])
    assert set(cands[0]) == {"token_id", "token_str", "score", "sequence"}


def test_tokenize_gives_reference_ids_tokens_and_offsets(srv):
    rf = ref("bert_base")
    r = srv.post("/models/test/bert-base/tokenize", {"text": rf["texts"][0]}).json()
    assert r["ids"] == rf["ids"][0]
    assert r["tokens"][0] == "[CLS]" and r["tokens"][-1] == "[SEP]"
    assert r["offsets"][1] == [0, 3]  # "the"


def test_generate_greedy_matches_torch_token_ids(srv):
    g = gpt_ref()["greedy"][0]
    r = srv.post(f"/models/{GPT}/generate", {"prompt": g["text"], "max_new_tokens": g["max_new_tokens"],
                                             "temperature": 0})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_ids"] == g["ids"]
    assert body["model"] == GPT
    assert body["usage"]["completion_tokens"] == len(g["ids"])
    assert body["usage"]["prompt_tokens"] == len(g["prompt"])
    assert isinstance(body["generated_text"], str)


def test_generate_same_seed_same_text_and_stream_concatenates_to_it(srv):
    body = {"prompt": "the cat", "max_new_tokens": 12, "seed": 7, "temperature": 0.9, "top_k": 20}
    a = srv.post(f"/models/{GPT}/generate", body).json()
    b = srv.post(f"/models/{GPT}/generate", body).json()
    assert a["generated_text"] == b["generated_text"]
    with srv.post(f"/models/{GPT}/generate", dict(body, stream=True), stream=True) as r:
        lines = [json.loads(x) for x in r.iter_lines() if x]
    assert lines[-1]["done"] is True
    assert "".join(x.get("text", "") for x in lines[:-1]) == a["generated_text"]


# ---------------------------------------------------------------- Ollama

def test_ollama_generate_streams_ndjson_incrementally(srv):
    g = gpt_ref()["greedy"][0]
    body = {"model": GPT, "prompt": g["text"], "options": {"temperature": 0, "num_predict": 8,
                                                           "repeat_penalty": 1.0}}
    with srv.post("/api/generate", body, stream=True) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("application/x-ndjson")
        lines = [json.loads(x) for x in r.iter_lines() if x]
    assert all(not x["done"] for x in lines[:-1]) and lines[-1]["done"]
    last = lines[-1]
    assert last["done_reason"] == "length"
    assert last["eval_count"] == 8 and last["prompt_eval_count"] == len(g["prompt"])
    for k in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(last[k], int) and last[k] >= 0
    assert last["total_duration"] >= last["eval_duration"]
    streamed = "".join(x["response"] for x in lines)
    one = srv.post("/api/generate", dict(body, stream=False)).json()
    assert one["done"] is True and one["response"] == streamed
    ids = srv.post(f"/models/{GPT}/generate", {"prompt": g["text"], "max_new_tokens": 8, "temperature": 0}).json()
    assert ids["token_ids"] == g["ids"][:8]
    assert ids["generated_text"] == streamed


def test_ollama_stop_string_ends_generation(srv):
    base = {"model": GPT, "prompt": "the cat", "stream": False, "options": {"temperature": 0, "num_predict": 20}}
    full = srv.post("/api/generate", base).json()["response"]
    if len(full) < 4:
        pytest.skip("greedy continuation too short to cut")
    stop = full[2:4]
    cut = srv.post("/api/generate", dict(base, options=dict(base["options"], stop=[stop]))).json()
    assert cut["response"] == full[:full.index(stop)]
    assert cut["done_reason"] == "stop"


def test_ollama_chat_non_stream_and_stream(srv):
    body = {"model": GPT, "messages": [{"role": "system", "content": "be nice"}, {"role": "user", "content": "hi"}],
            "stream": False, "options": {"temperature": 0, "num_predict": 5}}
    one = srv.post("/api/chat", body).json()
    assert one["message"]["role"] == "assistant" and one["done"] is True
    with srv.post("/api/chat", dict(body, stream=True), stream=True) as r:
        lines = [json.loads(x) for x in r.iter_lines() if x]
    assert "".join(x["message"]["content"] for x in lines) == one["message"]["content"]


def test_ollama_empty_prompt_only_loads(srv):
    r = srv.post("/api/generate", {"model": GPT}).json()
    assert r["done"] is True and r["done_reason"] == "load"


def test_ollama_embed_string_and_list_are_unit_vectors_like_torch(srv):
    rf = ref("bert_base")
    one = srv.post("/api/embed", {"model": "test/bert-base", "input": rf["texts"][0]}).json()
    close(one["embeddings"][0], rf["mean_normalized"][0])
    many = srv.post("/api/embed", {"model": "test/bert-base", "input": rf["texts"][:3]}).json()
    assert len(many["embeddings"]) == 3
    for got, want in zip(many["embeddings"], rf["mean_normalized"][:3]):
        close(got, want)
    assert many["prompt_eval_count"] == sum(len(i) for i in rf["ids"][:3])
    legacy = srv.post("/api/embeddings", {"model": "test/bert-base", "prompt": rf["texts"][0]}).json()
    close(legacy["embedding"], rf["mean"][0])


def test_ollama_tags_have_real_sizes_and_sha256_digests(srv):
    tags = {m["name"]: m for m in srv.get("/api/tags").json()["models"]}
    path = os.path.join(ENC, "bert_cls", "model.safetensors")
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert tags["bert_cls"]["digest"] == digest
    assert tags["bert_cls"]["size"] == os.path.getsize(path)
    assert tags[GPT]["details"]["family"] == "gpt2"


def test_ollama_show_ps_version(srv):
    show = srv.post("/api/show", {"model": GPT}).json()
    assert show["model_info"]["gpt2.context_length"] == 128
    assert "completion" in show["capabilities"]
    assert srv.post("/api/show", {"model": "nope"}).status_code == 404
    ps = srv.get("/api/ps").json()["models"]
    assert {m["name"] for m in ps} >= {GPT, "bert_cls"}
    assert srv.get("/api/version").json()["version"].count(".") == 2


def test_ollama_pull_and_delete_without_models_dir_are_clear_errors(srv):
    r = srv.post("/api/pull", {"model": "org/x"})
    assert r.status_code == 400 and "models directory" in r.json()["error"]
    r = requests.delete(srv.url("/api/delete"), json={"model": "org/x"}, timeout=10)
    assert r.status_code == 400
    assert srv.healthy()


# ---------------------------------------------------------------- OpenAI

def test_openai_models_lists_every_model(srv):
    data = srv.get("/v1/models").json()
    assert data["object"] == "list"
    assert {m["id"] for m in data["data"]} == {"test/bert-base", "bert_cls", "bert_mlm", "bert_multilabel", GPT}


def test_openai_completion_usage_and_greedy_text(srv):
    g = gpt_ref()["greedy"][0]
    r = srv.post("/v1/completions", {"model": GPT, "prompt": g["text"], "max_tokens": 8, "temperature": 0}).json()
    assert r["object"] == "text_completion"
    assert r["usage"] == {"prompt_tokens": len(g["prompt"]), "completion_tokens": 8,
                          "total_tokens": len(g["prompt"]) + 8}
    orig = srv.post(f"/models/{GPT}/generate", {"prompt": g["text"], "max_new_tokens": 8, "temperature": 0}).json()
    assert r["choices"][0]["text"] == orig["generated_text"]
    assert r["choices"][0]["finish_reason"] == "length"


def test_openai_chat_stream_is_sse_with_done_and_usage(srv):
    body = {"model": GPT, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 6, "temperature": 0,
            "stream": True}
    events = []
    with srv.post("/v1/chat/completions", body, stream=True) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line:
                assert line.startswith(b"data: ")
                events.append(line[6:].decode())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 6
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    one = srv.post("/v1/chat/completions", dict(body, stream=False)).json()
    assert one["choices"][0]["message"]["content"] == text


def test_openai_embeddings_float_and_base64_little_endian(srv):
    rf = ref("bert_base")
    f = srv.post("/v1/embeddings", {"model": "test/bert-base", "input": rf["texts"][:2]}).json()
    assert [d["index"] for d in f["data"]] == [0, 1]
    close(f["data"][1]["embedding"], rf["mean_normalized"][1])
    b = srv.post("/v1/embeddings", {"model": "test/bert-base", "input": rf["texts"][0],
                                    "encoding_format": "base64"}).json()
    raw = base64.b64decode(b["data"][0]["embedding"])
    vec = struct.unpack("<%df" % (len(raw) // 4), raw)
    close(vec, rf["mean_normalized"][0])
    assert b["usage"]["prompt_tokens"] == len(rf["ids"][0])


def test_openai_errors_use_openai_shape(srv):
    r = srv.post("/v1/completions", {"model": "nope", "prompt": "x"})
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "not_found_error"
    assert "loaded models" in r.json()["error"]["message"]


# ---------------------------------------------------------------- TEI

def test_tei_embed_predict_tokenize_decode_info(srv):
    rf = ref("bert_base")
    e = srv.post("/embed", {"inputs": rf["texts"][0], "model": "test/bert-base"}).json()
    close(e[0], rf["mean_normalized"][0])
    cls = ref("bert_cls")
    p = srv.post("/predict", {"inputs": cls["texts"][0], "model": "bert_cls"}).json()
    best = max(range(len(cls["probs"][0])), key=lambda i: cls["probs"][0][i])
    assert p[0]["label"] == cls["labels"][best]
    assert abs(p[0]["score"] - cls["probs"][0][best]) < 1e-4
    t = srv.post("/tokenize", {"inputs": rf["texts"][0], "model": "test/bert-base"}).json()
    assert [x["id"] for x in t[0]] == rf["ids"][0]
    assert t[0][0]["special"] is True and t[0][1]["special"] is False
    d = srv.post("/decode", {"ids": rf["ids"][0], "model": "test/bert-base"}).json()
    assert d == ["the cat sat on the mat."]
    info = srv.get("/info").json()
    assert info["max_input_length"] == 16 and info["model_dtype"] == "float32"


# ---------------------------------------------------------------- metrics, CORS

def test_metrics_count_requests_tokens_and_models(srv):
    before = srv.metric("mcli_http_requests_total", {"route": "/api/embed", "status": "200"})
    srv.post("/api/embed", {"model": "test/bert-base", "input": "a dog"})
    assert srv.metric("mcli_http_requests_total", {"route": "/api/embed", "status": "200"}) == before + 1
    assert srv.metric("mcli_models_loaded") == 5
    assert srv.metric("mcli_tokens_in_total") > 0
    assert srv.metric("mcli_resident_memory_bytes") > 1e6
    text = srv.get("/metrics").text
    assert 'mcli_http_request_duration_seconds_bucket{route="/api/embed",le="+Inf"}' in text
    assert 'mcli_queue_depth{model="bert_cls"} 0' in text


def test_cors_preflight_is_answered(srv):
    r = requests.options(srv.url("/v1/chat/completions"), timeout=5,
                         headers={"Origin": "http://x", "Access-Control-Request-Method": "POST",
                                  "Access-Control-Request-Headers": "content-type,authorization"})
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert "authorization" in r.headers["Access-Control-Allow-Headers"].lower()


# ---------------------------------------------------------------- bad input

BAD = [
    # (method, path, raw body, status, substring of the error)
    ("POST", "/api/generate", b"{\"model\": ", 400, "line 1"),
    ("POST", "/api/embed", b"{\"model\":\"test/bert-base\",\"input\":\"\xff\xfe\"}", 400, "byte"),
    ("POST", "/api/embed", b"[1,2]", 400, "JSON object"),
    ("POST", "/api/embed", b"", 400, "empty"),
    ("POST", "/api/embed", b"{\"model\":\"test/bert-base\"}", 400, "\"input\""),
    ("POST", "/api/embed", b"{\"model\":\"test/bert-base\",\"input\":[\"a\",3]}", 400, "input[1]"),
    ("POST", "/api/generate", b"{\"model\":\"org/tiny-gpt2\",\"prompt\":\"x\",\"options\":{\"temperature\":\"hot\"}}",
     400, "options.temperature"),
    ("POST", "/api/generate", b"{\"model\":\"org/tiny-gpt2\",\"prompt\":\"x\",\"options\":{\"top_p\":7}}", 400,
     "out of range"),
    ("POST", "/api/generate", b"{\"model\":\"ghost/model\",\"prompt\":\"x\"}", 404, "bert_cls"),
    ("POST", "/models/ghost/embed", b"{\"text\":\"x\"}", 404, "loaded models"),
    ("POST", "/models/bert_cls/generate", b"{\"prompt\":\"x\"}", 400, "cannot generate"),
    ("POST", "/models/test/bert-base/embed", b"{\"text\":\"" + b"a " * 40 + b"\"}", 400, "truncate"),
    ("POST", "/models/org/tiny-gpt2/generate", b"{\"prompt\":\"" + b"the cat " * 200 + b"\"}", 400, "context"),
    ("POST", "/models/bert_mlm/fill-mask", b"{\"text\":\"no mask here\"}", 400, "mask"),
    ("POST", "/v1/embeddings", b"{\"model\":\"test/bert-base\",\"input\":\"x\",\"encoding_format\":\"hex\"}", 400,
     "encoding_format"),
    ("POST", "/v1/completions", b"{\"model\":\"org/tiny-gpt2\",\"prompt\":\"x\",\"n\":3}", 400, "\"n\""),
    ("POST", "/api/chat", b"{\"model\":\"org/tiny-gpt2\",\"messages\":[{\"role\":\"pirate\",\"content\":\"x\"}]}", 400,
     "role"),
    ("POST", "/decode", b"{\"ids\":[1,99999],\"model\":\"test/bert-base\"}", 400, "ids[1]"),
    ("POST", "/api/embed", b"{\"model\":\"test/bert-base\",\"input\":\"x\",\"input\":\"y\"}", 400, "duplicate"),
    ("GET", "/no/such/route", None, 404, "no route"),
    ("DELETE", "/health", None, 405, "not allowed"),
    ("GET", "/api/generate", None, 405, "not allowed"),
]


@pytest.mark.parametrize("method,path,body,status,needle", BAD, ids=[f"{b[0]} {b[1]} {b[3]}" for b in BAD])
def test_bad_input_is_a_client_error_and_server_keeps_serving(srv, method, path, body, status, needle):
    r = requests.request(method, srv.url(path), data=body, timeout=10,
                         headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    msg = err["message"] if isinstance(err, dict) else err
    assert needle in msg
    assert srv.healthy()


def test_truncate_true_accepts_long_inputs(srv):
    r = srv.post("/models/test/bert-base/embed", {"text": "a " * 40, "truncate": True})
    assert r.status_code == 200 and r.json()["truncated"] is True
    r = srv.post(f"/models/{GPT}/generate", {"prompt": "the cat " * 200, "truncate": True, "max_new_tokens": 4})
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == 124


def test_body_over_limit_is_413(srv):
    r = requests.post(srv.url("/api/embed"), data=b"x" * 70000, timeout=10)
    assert r.status_code == 413
    assert srv.healthy()


def test_405_names_the_allowed_method(srv):
    r = requests.put(srv.url("/v1/models"), timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "GET"


def test_garbage_bytes_on_the_socket_do_not_hurt(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"\x00\x01GARBAGE\r\n\r\n")
        try:
            s.recv(4096)
        except OSError:
            pass
    assert srv.healthy()


# ---------------------------------------------------------------- auth, CORS origin, timeouts

def test_api_key_required_everywhere_but_health():
    s = Server([f"{ENC}/bert_base"], extra=["--cors-origin", "https://app.example"],
               env={"MCLI_API_KEY": "s3cret"})
    try:
        assert s.get("/health").status_code == 200
        r = s.get("/v1/models")
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        assert s.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = s.get("/v1/models", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert ok.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert s.post("/api/embed", {"model": "bert_base", "input": "x"}).status_code == 401
    finally:
        assert s.stop() == 0


def test_slow_client_is_timed_out():
    s = Server([f"{ENC}/bert_base"], extra=["--timeout", "1"])
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
            c.sendall(b"POST /api/embed HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"mo")
            t0 = time.time()
            data = c.recv(4096)  # the server closes the connection
            assert time.time() - t0 < 8
            assert data == b"" or b"HTTP/1.1" in data
        assert s.healthy()
    finally:
        assert s.stop() == 0


def test_queue_full_is_503_with_retry_after():
    s = Server([f"{ENC}/bert_base"], extra=["--queue", "1"])
    try:
        def one(_):
            return s.post("/api/embed", {"model": "bert_base", "input": ["the cat sat on the mat."] * 64})

        with concurrent.futures.ThreadPoolExecutor(24) as ex:
            rs = list(ex.map(one, range(48)))
        codes = {r.status_code for r in rs}
        assert codes <= {200, 503}
        busy = [r for r in rs if r.status_code == 503]
        assert busy, "a queue of one must turn some of 48 simultaneous requests away"
        assert busy[0].headers["Retry-After"] == "1"
        assert "queue full" in busy[0].json()["error"]
        assert s.healthy()
    finally:
        assert s.stop() == 0


def test_port_in_use_fails_with_clear_message():
    s = Server([f"{ENC}/bert_base"])
    try:
        from conftest import run_mcli
        r = run_mcli("serve", "--model", f"{ENC}/bert_base", "--port", str(s.port), timeout=30)
        assert r.returncode != 0
        assert "cannot listen" in r.stderr
    finally:
        assert s.stop() == 0


def test_serve_usage_errors_exit_2(mcli):
    r = mcli("serve")
    assert r.returncode == 2 and "--model" in r.stderr
    r = mcli("serve", "--model", f"{ENC}/bert_base", "--port", "99999")
    assert r.returncode == 2


@pytest.mark.parametrize("pooling,normalize", [("mean", False), ("cls", True)])
def test_embed_equals_the_cli_embed_json_output(srv, mcli, pooling, normalize):
    text = "the cat sat on the mat."
    args = ["embed", "--model", f"{ENC}/bert_base", "--pooling", pooling, "--json"] + (["--normalize"] if normalize else [])
    cli = mcli(*args, text)
    assert cli.returncode == 0, cli.stderr
    want = json.loads(cli.stdout)["embeddings"][0]
    got = srv.post("/models/test/bert-base/embed", {"text": text, "pooling": pooling, "normalize": normalize}).json()
    close(got["embeddings"][0], want, tol=1e-6)


def test_one_access_log_line_per_request_with_status_bytes_and_ms(srv):
    import re
    r = srv.post("/api/embed", {"model": "test/bert-base", "input": "log me"})
    n = len(r.content)
    requests.get(srv.url("/nope%0Aforged 200"), timeout=5)
    time.sleep(0.2)
    log = srv.log()
    assert re.search(rf"info  POST /api/embed 200 {n} [0-9.]+ms\n", log)
    assert re.search(r"info  GET /nope\?forged 200 404 \d+ [0-9.]+ms\n", log)  # control bytes never reach the log
