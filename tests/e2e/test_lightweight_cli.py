"""The original commands: lightweight --list | --auto | --download MODEL, lightweight-run --list-models /
--model M --download-only, the user catalog, bundled entries, sysinfo and the recommendation under
injected figures (MCLI_SYSINFO_OVERRIDE) and, where the machine allows, under a real cgroup limit."""
import json
import os

import pytest

from conftest import MCLI, run_mcli
from hub_helpers import HUB_FIXTURES, add_repo, env, hub, model_dir, read_manifest  # noqa: F401

ORIGINAL_FIVE = ["prajjwal1/bert-tiny", "sshleifer/tiny-distilbert-base-uncased", "microsoft/DialoGPT-tiny",
                 "distilbert-base-uncased", "microsoft/DialoGPT-small"]
NEIGHBOURS = ["distilbert-base-uncased-finetuned-sst-2-english", "sentence-transformers/all-MiniLM-L6-v2",
              "distilgpt2", "gpt2"]
TINY_BERT = os.path.join(HUB_FIXTURES, "tiny-org", "tiny-bert")
TINY_DISTIL = "sshleifer/tiny-distilbert-base-uncased-finetuned-sst-2-english"


@pytest.fixture
def catalog_hub(hub):
    """The fake hub also serves the three --auto candidates (tiny stand-ins with the real ids)."""
    for name in ("prajjwal1/bert-tiny", TINY_DISTIL, "distilbert-base-uncased"):
        add_repo(hub.root, name, TINY_BERT)
    hub.reload()
    return hub


def catalog_json(env):
    r = run_mcli("workflow", "model-service", "lightweight", "--list", "--json", env=env)
    assert r.returncode == 0, r.stderr
    return {m["key"]: m for m in json.loads(r.stdout)}


def test_list_shows_the_original_five_and_the_neighbours(env):
    cat = catalog_json(env)
    for key in ORIGINAL_FIVE + NEIGHBOURS:
        assert key in cat, key
    assert cat["prajjwal1/bert-tiny"]["parameters"] == "4.4M"
    assert cat["distilbert-base-uncased"]["size_mb"] == 260
    assert not any(m["present"] for m in cat.values() if not m["bundled"])


def test_the_shipped_bundled_models_are_listed_with_their_directories(env):
    from conftest import SOURCE_DIR
    cat = catalog_json(env)
    bundled = {k: m for k, m in cat.items() if m["bundled"]}
    assert set(bundled) == {"mcli-fortune-gpt2", "mcli-langid-bert"}
    for key, m in bundled.items():
        assert os.path.realpath(m["path"]) == os.path.realpath(os.path.join(SOURCE_DIR, "models", "bundled", key))
        has = all(os.path.exists(os.path.join(m["path"], f)) for f in ("config.json", "model.safetensors"))
        assert m["present"] == has


def test_the_two_unpublished_keys_are_aliases_of_real_repositories_and_list_says_so(env):
    cat = catalog_json(env)
    assert cat["sshleifer/tiny-distilbert-base-uncased"]["repo"] == TINY_DISTIL
    assert cat["microsoft/DialoGPT-tiny"]["repo"] == "microsoft/DialoGPT-small"
    assert cat["sshleifer/tiny-distilbert-base-uncased"]["alias"] and cat["microsoft/DialoGPT-tiny"]["alias"]
    assert not cat["prajjwal1/bert-tiny"]["alias"]
    text = run_mcli("lightweight", "--list", env=env).stdout
    assert "alias -> " + TINY_DISTIL in text
    assert "alias -> microsoft/DialoGPT-small" in text


def test_download_of_an_alias_fetches_the_real_repository(catalog_hub, env):
    r = run_mcli("workflow", "model-service", "lightweight", "--download", "sshleifer/tiny-distilbert-base-uncased",
                 env=env)
    assert r.returncode == 0, r.stderr
    assert "is an alias" in r.stderr
    assert r.stdout.strip() == model_dir(env, TINY_DISTIL)
    assert read_manifest(model_dir(env, TINY_DISTIL))["repo"] == TINY_DISTIL
    assert catalog_json(env)["sshleifer/tiny-distilbert-base-uncased"]["present"]


def test_download_of_any_org_name_repository_not_in_the_catalog(catalog_hub, env):
    r = run_mcli("lightweight", "--download", "tiny-org/tiny-gpt2", env=env)
    assert r.returncode == 0, r.stderr
    assert os.path.exists(os.path.join(model_dir(env, "tiny-org/tiny-gpt2"), "model.safetensors"))


@pytest.mark.parametrize("figures, expected, why", [
    ({"ram_total_mb": 1500, "ram_available_mb": 1400}, "prajjwal1/bert-tiny", "under 2 GB"),
    ({"ram_total_mb": 3000, "ram_available_mb": 2800}, "sshleifer/tiny-distilbert-base-uncased", "under 4 GB"),
    ({"ram_total_mb": 8192, "ram_available_mb": 8000}, "distilbert-base-uncased", "4 GB or more"),
    ({"ram_total_mb": 8192, "ram_available_mb": 8000, "cgroup_mem_limit_mb": 1800, "cgroup_mem_usage_mb": 100},
     "prajjwal1/bert-tiny", "cgroup limit"),
    ({"ram_total_mb": 8192, "ram_available_mb": 600}, "sshleifer/tiny-distilbert-base-uncased", "do not fit"),
    ({"ram_total_mb": 8192, "ram_available_mb": 8000, "disk_free_mb": 200}, "sshleifer/tiny-distilbert-base-uncased",
     "do not fit"),
])
def test_auto_recommends_by_the_original_rule_refined_by_the_estimate(catalog_hub, env, figures, expected, why):
    e = dict(env)
    e["MCLI_SYSINFO_OVERRIDE"] = json.dumps(figures)
    r = run_mcli("workflow", "model-service", "lightweight", "--auto", env=e)
    assert r.returncode == 0, r.stderr
    assert f"Recommended: {expected}\n" in r.stderr
    assert why in r.stderr.split("Recommended:")[1]
    assert "overridden" in r.stderr  # the analysis says the figures were injected
    repo = TINY_DISTIL if expected.startswith("sshleifer/") else expected
    assert r.stdout.strip() == model_dir(env, repo)
    assert os.path.exists(os.path.join(model_dir(env, repo), "mcli-manifest.json"))


def test_auto_when_nothing_fits_says_so(catalog_hub, env):
    e = dict(env)
    e["MCLI_SYSINFO_OVERRIDE"] = json.dumps({"ram_total_mb": 64, "ram_available_mb": 30})
    r = run_mcli("lightweight-run", "--auto", "--download-only", env=e)
    assert "nothing fits" in r.stderr
    assert "warning: it may not fit" in r.stderr


def test_lightweight_run_model_download_only_prints_the_model_dir(catalog_hub, env):
    r = run_mcli("workflow", "model-service", "lightweight-run", "--model", "prajjwal1/bert-tiny", "--download-only",
                 env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == model_dir(env, "prajjwal1/bert-tiny")


def test_lightweight_run_list_models(env):
    r = run_mcli("workflow", "model-service", "lightweight-run", "--list-models", env=env)
    assert r.returncode == 0
    for key in ORIGINAL_FIVE:
        assert key in r.stdout


def test_models_dir_flag_beats_the_environment(catalog_hub, env, tmp_path):
    other = tmp_path / "elsewhere"
    r = run_mcli("lightweight-run", "--model", "prajjwal1/bert-tiny", "--download-only", "--models-dir", str(other),
                 env=env)
    assert r.returncode == 0, r.stderr
    assert os.path.exists(other / "lightweight" / "prajjwal1" / "bert-tiny" / "config.json")
    assert not os.path.exists(model_dir(env, "prajjwal1/bert-tiny"))


def write_user_catalog(env, models):
    d = os.path.join(env["XDG_CONFIG_HOME"], "mcli")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "catalog.json"), "w") as f:
        json.dump({"format": 1, "models": models}, f)


def test_user_catalog_adds_and_overrides_entries(catalog_hub, env):
    write_user_catalog(env, [
        {"key": "my-bert", "repo": "tiny-org/tiny-bert", "name": "Mine", "size_mb": 1, "type": "fill-mask"},
        {"key": "gpt2", "name": "GPT-2 (my override)", "description": "overridden", "size_mb": 548},
    ])
    cat = catalog_json(env)
    assert cat["my-bert"]["repo"] == "tiny-org/tiny-bert"
    assert cat["gpt2"]["name"] == "GPT-2 (my override)"
    assert "prajjwal1/bert-tiny" in cat  # the system catalog is still there
    r = run_mcli("lightweight", "--download", "my-bert", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == model_dir(env, "tiny-org/tiny-bert")


def test_bundled_entries_are_listed_as_present(env):
    write_user_catalog(env, [{"key": "mcli/demo-bert", "bundled": True, "path": TINY_BERT, "name": "Demo",
                              "size_mb": 0.1, "type": "text-classification"}])
    cat = catalog_json(env)
    assert cat["mcli/demo-bert"]["bundled"] and cat["mcli/demo-bert"]["present"]
    text = run_mcli("lightweight", "--list", env=env).stdout
    assert "bundled, present" in text
    r = run_mcli("lightweight-run", "--model", "mcli/demo-bert", "--download-only", env=env)
    assert r.returncode == 0 and r.stdout.strip() == TINY_BERT
    for cmd in (["lightweight", "--download", "mcli/demo-bert"], ["pull", "mcli/demo-bert"]):
        r = run_mcli(*cmd, env=env)
        assert r.returncode == 0 and r.stdout.strip() == TINY_BERT
        assert "bundled with mcli: nothing to download" in r.stderr


def test_malformed_user_catalog_is_a_clear_error(env):
    d = os.path.join(env["XDG_CONFIG_HOME"], "mcli")
    os.makedirs(d)
    with open(os.path.join(d, "catalog.json"), "w") as f:
        f.write('{"format": 1, "models": [{"name": "no key"}]}')
    r = run_mcli("lightweight", "--list", env=env)
    assert r.returncode == 1
    assert "catalog.json" in r.stderr and "no \"key\"" in r.stderr


def test_mcli_data_dir_overrides_the_catalog_location(env, tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "catalog.json").write_text(json.dumps({"format": 1, "models": [{"key": "only/one", "size_mb": 1}]}))
    e = dict(env)
    e["MCLI_DATA_DIR"] = str(d)
    r = run_mcli("lightweight", "--list", "--json", env=e)
    assert r.returncode == 0, r.stderr
    assert [m["key"] for m in json.loads(r.stdout)] == ["only/one"]


@pytest.mark.parametrize("args", [[], ["--list", "--auto"], ["--download"], ["--frob"]])
def test_lightweight_usage_errors(env, args):
    r = run_mcli("lightweight", *args, env=env)
    assert r.returncode == 2 and "Try 'mcli lightweight --help'" in r.stderr


def test_start_server_with_no_models_says_what_to_do(env, tmp_path):
    from conftest import free_port
    env = _without_shipped_bundled(env, tmp_path)
    r = run_mcli("lightweight", "--start-server", "--port", str(free_port()), env=env, timeout=30)
    assert r.returncode == 1 and "mcli lightweight --auto" in r.stderr


def test_sysinfo_json_has_every_figure(env):
    r = run_mcli("sysinfo", "--json", env=env)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["cpus_online"] == os.cpu_count()
    assert s["cpus_affinity"] == len(os.sched_getaffinity(0))
    with open("/proc/meminfo") as f:
        total_kb = int(next(l for l in f if l.startswith("MemTotal:")).split()[1])
    assert s["ram_total_mb"] == total_kb // 1024
    st = os.statvfs(env["MCLI_MODELS_DIR"].rsplit("/", 1)[0])
    assert abs(s["disk_free_mb"] - st.f_bavail * st.f_frsize // (1 << 20)) < 64
    with open("/proc/cpuinfo") as f:
        flags = next((l for l in f if l.startswith("flags")), "").split()
    if flags:
        assert s["avx2"] == ("avx2" in flags) and s["fma"] == ("fma" in flags)
        assert s["avx512f"] == ("avx512f" in flags)
    assert s["overridden"] is False


def test_sysinfo_override_replaces_figures_and_rejects_garbage(env):
    e = dict(env)
    e["MCLI_SYSINFO_OVERRIDE"] = '{"ram_available_mb": 1500, "cgroup_mem_limit_mb": 1000, "cgroup_mem_usage_mb": 200}'
    s = json.loads(run_mcli("sysinfo", "--json", env=e).stdout)
    assert s["ram_available_mb"] == 1500 and s["mem_effective_mb"] == 800 and s["overridden"]
    e["MCLI_SYSINFO_OVERRIDE"] = '{"ram_available_mb": "lots"}'
    r = run_mcli("sysinfo", env=e)
    assert r.returncode == 2 and "wrong type" in r.stderr


def _own_memory_cgroup():
    """(kind, directory) of this process's memory cgroup, if it can be found."""
    with open("/proc/self/cgroup") as f:
        lines = [l.strip().split(":", 2) for l in f]
    for _, ctl, path in lines:
        if "memory" in ctl.split(","):
            d = "/sys/fs/cgroup/memory" + path
            if os.path.isdir(d):
                return "v1", d
    for hid, ctl, path in lines:
        if hid == "0" and ctl == "":
            d = "/sys/fs/cgroup" + path
            if os.path.exists(os.path.join(d, "memory.max")) or os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
                return "v2", d
    return None, None


def test_recommendation_under_a_real_cgroup_memory_limit(catalog_hub, env):
    kind, parent = _own_memory_cgroup()
    if not kind:
        pytest.skip("no memory cgroup found for this process")
    child = os.path.join(parent, f"mcli-test-{os.getpid()}")
    try:
        os.mkdir(child)
    except OSError as e:
        pytest.skip(f"cannot create a child cgroup under {parent}: {e}")
    try:
        limit_file = "memory.limit_in_bytes" if kind == "v1" else "memory.max"
        try:
            with open(os.path.join(child, limit_file), "w") as f:
                f.write(str(1500 * 1024 * 1024))
        except OSError as e:
            pytest.skip(f"cannot set {limit_file}: {e}")

        def enter():
            with open(os.path.join(child, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))

        import subprocess
        full = dict(os.environ)
        full.update(env)
        try:
            r = subprocess.run([MCLI, "sysinfo", "--json"], env=full, capture_output=True, text=True, timeout=30,
                               preexec_fn=enter)
        except subprocess.SubprocessError as e:
            pytest.skip(f"cannot move a process into {child}: {e}")
        assert r.returncode == 0, r.stderr
        s = json.loads(r.stdout)
        assert s["cgroup_mem_limit_mb"] == 1500
        assert s["mem_effective_mb"] <= 1500
        r = subprocess.run([MCLI, "lightweight", "--auto"], env=full, capture_output=True, text=True, timeout=60,
                           preexec_fn=enter)
        assert r.returncode == 0, r.stderr
        assert "Recommended: prajjwal1/bert-tiny\n" in r.stderr and "cgroup limit" in r.stderr
    finally:
        try:
            os.rmdir(child)
        except OSError:
            pass


def _without_shipped_bundled(env, tmp_path):
    """A copy of the shipped catalog without its bundled entries (which become present once trained),
    so that a test sees exactly the models it set up."""
    from conftest import SOURCE_DIR
    with open(os.path.join(SOURCE_DIR, "data", "catalog.json")) as f:
        cat = json.load(f)
    cat["models"] = [m for m in cat["models"] if not m.get("bundled")]
    d = tmp_path / "data-nobundled"
    d.mkdir()
    (d / "catalog.json").write_text(json.dumps(cat))
    e = dict(env)
    e["MCLI_DATA_DIR"] = str(d)
    return e


def _serve_and_get_models(args, env, port):
    import subprocess
    import urllib.request
    from conftest import wait_for_port
    full = dict(os.environ)
    full.update(env)
    proc = subprocess.Popen([MCLI, *args, "--port", str(port)], env=full, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, proc, timeout=20)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/models", timeout=10) as r:
            models = json.loads(r.read())["models"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    return models, err


def test_lightweight_run_downloads_then_serves_the_model(catalog_hub, env):
    from conftest import free_port
    models, err = _serve_and_get_models(["workflow", "model-service", "lightweight-run", "--model",
                                         "prajjwal1/bert-tiny"], env, free_port())
    assert [m["path"] for m in models] == [model_dir(env, "prajjwal1/bert-tiny")]
    assert "verified" in err


def test_start_server_serves_downloaded_and_bundled_models(catalog_hub, env, tmp_path):
    from conftest import free_port
    env = _without_shipped_bundled(env, tmp_path)
    write_user_catalog(env, [{"key": "mcli/demo-bert", "bundled": True, "path": TINY_BERT, "size_mb": 0.1}])
    assert run_mcli("pull", "tiny-org/tiny-gpt2", env=env).returncode == 0
    models, _ = _serve_and_get_models(["lightweight", "--start-server"], env, free_port())
    assert sorted(m["path"] for m in models) == sorted([model_dir(env, "tiny-org/tiny-gpt2"), TINY_BERT])


def test_unreachable_hub_falls_back_to_the_bundled_models(env, tmp_path):
    from conftest import free_port
    env = _without_shipped_bundled(env, tmp_path)
    write_user_catalog(env, [{"key": "mcli/demo-bert", "bundled": True, "path": TINY_BERT, "size_mb": 0.1}])
    e = dict(env)
    e["HF_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    e["MCLI_RETRY_MAX"] = "2"
    models, err = _serve_and_get_models(["lightweight-run", "--model", "prajjwal1/bert-tiny"], e, free_port())
    assert [m["path"] for m in models] == [TINY_BERT]
    assert "hub cannot be reached" in err and "bundled" in err
