"""Shared fixtures for the downloader tests: a fake hub over a temporary copy of
tests/fixtures/hub (so a test may add repositories), and the environment that points mcli at it."""
import hashlib
import json
import os
import shutil

import pytest

from conftest import FIXTURES
from fake_hub import FakeHub

HUB_FIXTURES = os.path.join(FIXTURES, "hub")


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def fixture_file(repo, name):
    return os.path.join(HUB_FIXTURES, repo, name)


def add_repo(root, name, source_dir, drop=()):
    """Copies source_dir into the hub root as repository `name`."""
    dst = os.path.join(root, name)
    shutil.copytree(source_dir, dst)
    for d in drop:
        os.remove(os.path.join(dst, d))
    return dst


def read_manifest(model_dir):
    with open(os.path.join(model_dir, "mcli-manifest.json")) as f:
        return json.load(f)


@pytest.fixture
def hub(tmp_path):
    root = tmp_path / "hub"
    shutil.copytree(HUB_FIXTURES, root)
    # A repository that needs a token, and one without an org (like "gpt2").
    add_repo(str(root), "private/tiny-bert", os.path.join(HUB_FIXTURES, "tiny-org", "tiny-bert"))
    add_repo(str(root), "tinyplain", os.path.join(HUB_FIXTURES, "tiny-org", "tiny-bert"))
    h = FakeHub(str(root)).start()
    yield h
    h.stop()


@pytest.fixture
def env(hub, tmp_path):
    """Environment for run_mcli: the fake hub, a private models dir, fast retries, no token."""
    e = {
        "HF_ENDPOINT": hub.url,
        "MCLI_MODELS_DIR": str(tmp_path / "models"),
        "MCLI_RETRY_BASE_MS": "20",
        "MCLI_RETRY_MAX_MS": "200",
        "MCLI_STALL_TIMEOUT_S": "30",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "HF_HUB_OFFLINE": "",
        "HF_TOKEN": "",
        "MCLI_SYSINFO_OVERRIDE": "",
    }
    return e


def model_dir(env, repo):
    return os.path.join(env["MCLI_MODELS_DIR"], "lightweight", repo)
