"""Streaming, cancellation, fairness and shutdown of `mcli serve`, with a long-context random GPT-2
(generated at test time) so that a generation is still running when the test interrupts it."""
import json
import socket
import threading
import time

import pytest
import requests

from server_util import Server, make_slow_gpt2, wait_until

SLOW = "test/slow-gpt2"


@pytest.fixture(scope="module")
def slow_dir(tmp_path_factory):
    return make_slow_gpt2(str(tmp_path_factory.mktemp("models") / "slow-gpt2"))


@pytest.fixture(scope="module")
def srv(slow_dir):
    s = Server([f"{SLOW}={slow_dir}"])
    yield s
    assert s.stop() == 0


def running(s):
    return s.metric("mcli_running_jobs", {"model": SLOW})


def test_stream_client_disconnect_cancels_the_generation(srv):
    before = srv.metric("mcli_http_requests_total", {"route": "/api/generate", "status": "499"})
    r = requests.post(srv.url("/api/generate"), json={"model": SLOW, "prompt": "the cat",
                                                       "options": {"num_predict": 4000}}, stream=True, timeout=30)
    lines = r.iter_lines()
    first = json.loads(next(lines))
    assert first["done"] is False
    r.close()  # the client goes away after one token of 4000
    assert wait_until(lambda: running(srv) == 0, timeout=10), "the generation kept running after the client left"
    assert wait_until(lambda: srv.metric("mcli_http_requests_total",
                                         {"route": "/api/generate", "status": "499"}) == before + 1, timeout=5)
    assert srv.healthy()


def test_non_stream_client_disconnect_cancels_the_generation(srv):
    body = json.dumps({"model": SLOW, "prompt": "the cat", "stream": False, "options": {"num_predict": 4000}})
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
        c.sendall(f"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
        assert wait_until(lambda: running(srv) == 1, timeout=10)
    assert wait_until(lambda: running(srv) == 0, timeout=10), "a suspended request's generation was not cancelled"
    assert srv.healthy()


def test_short_generation_is_not_stuck_behind_a_long_one(srv):
    done = threading.Event()
    lines = []

    def long_stream():
        with requests.post(srv.url("/api/generate"), json={"model": SLOW, "prompt": "a",
                                                           "options": {"num_predict": 4000}},
                           stream=True, timeout=60) as r:
            for line in r.iter_lines():
                if line:
                    lines.append(json.loads(line))
                    if lines[-1]["done"] or stop.is_set():
                        break
        done.set()

    stop = threading.Event()
    t = threading.Thread(target=long_stream)
    t.start()
    try:
        assert wait_until(lambda: len(lines) >= 2, timeout=20)
        short = srv.post("/api/generate", {"model": SLOW, "prompt": "b", "stream": False,
                                           "options": {"num_predict": 5}}, timeout=60).json()
        assert short["eval_count"] == 5
        assert not done.is_set(), "the short request should finish while the long one still streams"
    finally:
        stop.set()
        t.join(timeout=60)
    assert wait_until(lambda: running(srv) == 0, timeout=10)


def test_health_answers_quickly_while_generating(srv):
    r = requests.post(srv.url("/api/generate"), json={"model": SLOW, "prompt": "the cat",
                                                       "options": {"num_predict": 4000}}, stream=True, timeout=30)
    try:
        next(r.iter_lines())
        lat = []
        with requests.Session() as sess:
            for _ in range(40):
                t0 = time.perf_counter()
                assert sess.get(srv.url("/health"), timeout=5).status_code == 200
                lat.append(time.perf_counter() - t0)
        lat.sort()
        # generous bound for a shared CI machine; bench/http measures the 5 ms p99 target
        assert lat[len(lat) // 2] < 0.25, lat
    finally:
        r.close()
    assert wait_until(lambda: running(srv) == 0, timeout=10)


def test_sigterm_lets_an_in_flight_request_finish(slow_dir):
    s = Server([f"{SLOW}={slow_dir}"])
    result = {}

    def call():
        result["r"] = requests.post(s.url("/api/generate"), json={"model": SLOW, "prompt": "x", "stream": False,
                                                                  "options": {"num_predict": 16}}, timeout=60)

    t = threading.Thread(target=call)
    t.start()
    assert wait_until(lambda: s.proc.poll() is None and running(s) == 1, timeout=10, step=0.005) or "r" in result
    code = s.stop(timeout=30)
    t.join(timeout=30)
    assert code == 0
    assert result["r"].status_code == 200
    assert result["r"].json()["eval_count"] == 16


def test_sigterm_cancels_long_requests_after_the_grace_period(tmp_path):
    # A context long enough that no machine finishes it within the 1 s grace period (the 4096-token
    # model of the other tests can: ~0.9 s on a quiet machine): attention over 32k positions.
    very_slow = make_slow_gpt2(str(tmp_path / "very-slow-gpt2"), n_pos=32768, hidden=256)
    s = Server([f"{SLOW}={very_slow}"], extra=["--grace", "1"])
    r = requests.post(s.url("/api/generate"), json={"model": SLOW, "prompt": "x",
                                                    "options": {"num_predict": 32000}}, stream=True, timeout=30)
    it = r.iter_lines()
    next(it)
    t0 = time.time()
    code = s.stop(timeout=30)
    assert code == 0
    assert time.time() - t0 < 15
    rest = [json.loads(x) for x in it if x]  # the stream ends instead of hanging
    assert not rest or not rest[-1].get("done") or rest[-1].get("done_reason") != "length"
