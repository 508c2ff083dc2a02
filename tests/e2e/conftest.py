"""Shared helpers for end-to-end tests: the real mcli binary, free ports, a server fixture."""
import os
import socket
import subprocess
import time

import pytest

MCLI = os.environ.get("MCLI_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "mcli"))
SOURCE_DIR = os.environ.get("MCLI_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.environ.get("MCLI_SHARED", os.path.join(SOURCE_DIR, "..", "shared"))
FIXTURES = os.path.join(SOURCE_DIR, "tests", "fixtures")


def run_mcli(*args, env=None, timeout=120, input=None):
    """Runs mcli with args; returns CompletedProcess with text stdout/stderr."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([MCLI, *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout, input=input)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mcli exited early with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} not open after {timeout}s")


@pytest.fixture
def mcli():
    return run_mcli
