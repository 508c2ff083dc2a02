"""mcli pull against the fake hub: the files chosen, the manifest, redirects and tokens, retries,
resume after a dropped connection / a stall / a SIGKILL, corruption, locking, offline mode, disk checks.
Expectations are independent: checksums computed here with hashlib from the fixture files, and the
request log the fake hub recorded (Range headers, Authorization, hosts)."""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import MCLI, run_mcli
from hub_helpers import env, fixture_file, hub, model_dir, read_manifest, sha256_of  # noqa: F401

GPT2 = "tiny-org/tiny-gpt2"
GPT2_WEIGHTS = fixture_file(GPT2, "model.safetensors")
GPT2_SIZE = os.path.getsize(GPT2_WEIGHTS)


def pull(env, *args, timeout=60, extra=None):
    e = dict(env)
    e.update(extra or {})
    return run_mcli("pull", *args, env=e, timeout=timeout)


def cdn_gets(hub, name="model.safetensors"):
    return [r for r in hub.requests(server="cdn", method="GET") if f"name={name}" in r["path"]]


def test_pull_fetches_config_weights_tokenizer_and_writes_manifest(hub, env):
    r = pull(env, GPT2)
    assert r.returncode == 0, r.stderr
    d = model_dir(env, GPT2)
    assert r.stdout.strip() == d
    expected = ["config.json", "merges.txt", "model.safetensors", "tokenizer_config.json", "vocab.json"]
    assert sorted(f for f in os.listdir(d) if f != "mcli-manifest.json") == expected
    for name in expected:
        assert sha256_of(os.path.join(d, name)) == sha256_of(fixture_file(GPT2, name)), name
    m = read_manifest(d)
    assert m["repo"] == GPT2 and m["revision"] == "main"
    assert m["commit"] == hub.repos[GPT2].commit
    files = {f["name"]: f for f in m["files"]}
    assert set(files) == set(expected)
    for name in expected:
        assert files[name]["size"] == os.path.getsize(fixture_file(GPT2, name))
        assert files[name]["sha256"] == sha256_of(fixture_file(GPT2, name))
    assert files["model.safetensors"]["lfs"] is True and files["config.json"]["lfs"] is False
    assert m["total_bytes"] == sum(os.path.getsize(fixture_file(GPT2, n)) for n in expected)


def test_files_after_the_first_are_pinned_to_the_commit(hub, env):
    assert pull(env, GPT2).returncode == 0
    commit = hub.repos[GPT2].commit
    gets = [r["path"] for r in hub.requests(server="hub", method="GET") if "/resolve/" in r["path"]]
    assert gets and all(f"/resolve/{commit}/" in p for p in gets)


def test_second_pull_skips_files_already_verified(hub, env):
    assert pull(env, GPT2).returncode == 0
    hub.reset()
    r = pull(env, GPT2)
    assert r.returncode == 0
    assert "0 downloaded, 5 already present" in r.stderr
    assert hub.requests(method="GET", contains="/resolve/") == []
    assert cdn_gets(hub) == []


def test_lfs_redirect_drops_authorization_on_the_cdn_host(hub, env):
    r = pull(env, GPT2, extra={"HF_TOKEN": "secret-token"})
    assert r.returncode == 0, r.stderr
    hub_reqs = hub.requests(server="hub")
    cdn_reqs = hub.requests(server="cdn")
    assert hub_reqs and cdn_reqs
    assert all(x["authorization"] == "Bearer secret-token" for x in hub_reqs)
    assert all(x["authorization"] is None for x in cdn_reqs)
    assert all(not x["host"].startswith("127.0.0.1:" + str(hub.hub_server.server_address[1])) for x in cdn_reqs)


def test_private_repo_without_token_is_401_with_a_clear_message_and_no_retry(hub, env):
    r = pull(env, "private/tiny-bert")
    assert r.returncode == 1
    assert "401" in r.stderr and "HF_TOKEN" in r.stderr
    assert len(hub.requests(contains="private/tiny-bert")) == 1
    assert not os.path.exists(model_dir(env, "private/tiny-bert"))


def test_private_repo_with_token_downloads(hub, env):
    r = pull(env, "private/tiny-bert", extra={"HF_TOKEN": "secret-token"})
    assert r.returncode == 0, r.stderr
    assert os.path.exists(os.path.join(model_dir(env, "private/tiny-bert"), "model.safetensors"))


def test_unknown_repo_is_404_with_a_clear_message_and_no_retry(hub, env):
    r = pull(env, "tiny-org/does-not-exist")
    assert r.returncode == 1
    assert "repository not found" in r.stderr and "check the model id" in r.stderr
    assert len(hub.requests(contains="does-not-exist")) == 1
    assert not os.path.exists(os.path.join(env["MCLI_MODELS_DIR"], "lightweight", "tiny-org"))


def test_unknown_revision_is_a_clear_error(hub, env):
    r = pull(env, GPT2 + "@no-such-branch")
    assert r.returncode == 1 and "revision not found" in r.stderr


def test_pull_at_a_commit_revision(hub, env):
    commit = hub.repos[GPT2].commit
    r = pull(env, f"{GPT2}@{commit}")
    assert r.returncode == 0, r.stderr
    assert read_manifest(model_dir(env, GPT2))["revision"] == commit


def test_invalid_repo_ids_are_usage_errors_before_any_request(hub, env):
    for bad in ("../etc", "/abs/path", "a/b/c", "has space/x", "org/..", "x/-y", "org/a..b"):
        r = pull(env, bad)
        assert r.returncode == 2, bad
        assert "not a model id" in r.stderr
    assert hub.requests() == []


def test_resume_after_a_dropped_connection_continues_from_the_partial_byte_count(hub, env):
    hub.add_fault("drop", match="model.safetensors", server="cdn", times=1, after_bytes=200000)
    r = pull(env, GPT2)
    assert r.returncode == 0, r.stderr
    gets = cdn_gets(hub)
    assert len(gets) == 2
    assert gets[0]["range"] is None
    assert gets[1]["range"] == "bytes=200000-"
    assert gets[1]["if_range"].startswith('"cdn-')
    assert sha256_of(os.path.join(model_dir(env, GPT2), "model.safetensors")) == sha256_of(GPT2_WEIGHTS)


def test_a_server_ignoring_range_gets_the_whole_file_written_from_the_start(hub, env):
    hub.add_fault("drop", match="model.safetensors", server="cdn", times=1, after_bytes=200000)
    hub.add_fault("no_range", match="model.safetensors", server="cdn", times=-1)
    r = pull(env, GPT2)
    assert r.returncode == 0, r.stderr
    gets = cdn_gets(hub)
    assert len(gets) == 2 and gets[1]["range"] == "bytes=200000-"
    assert "instead of resuming" in r.stderr
    d = model_dir(env, GPT2)
    assert os.path.getsize(os.path.join(d, "model.safetensors")) == GPT2_SIZE
    assert sha256_of(os.path.join(d, "model.safetensors")) == sha256_of(GPT2_WEIGHTS)


def test_server_errors_are_retried_then_succeed(hub, env):
    hub.add_fault("status", match="/config.json", server="hub", times=2, status=503)
    r = pull(env, GPT2)
    assert r.returncode == 0, r.stderr
    heads = hub.requests(server="hub", method="HEAD", contains="/config.json")
    assert len(heads) == 3  # two 503s, then the answer
    assert "retrying" in r.stderr


def test_500_on_the_cdn_is_retried(hub, env):
    hub.add_fault("status", match="model.safetensors", server="cdn", times=1, status=500)
    r = pull(env, GPT2)
    assert r.returncode == 0, r.stderr
    assert len(cdn_gets(hub)) == 2


def test_429_retry_after_is_honoured(hub, env):
    hub.add_fault("status", match="model.safetensors", server="cdn", times=1, status=429, retry_after=1)
    r = pull(env, GPT2, extra={"MCLI_RETRY_MAX_MS": "5000"})
    assert r.returncode == 0, r.stderr
    gets = cdn_gets(hub)
    assert len(gets) == 2
    assert gets[1]["time"] - gets[0]["time"] >= 0.95  # Retry-After: 1, not the 20 ms backoff


def test_an_unreachable_hub_fails_fast_with_a_hint(env):
    from conftest import free_port
    e = dict(env)
    e["HF_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    e["MCLI_RETRY_BASE_MS"] = "1000"
    t0 = time.time()
    r = pull(e, GPT2)
    assert r.returncode == 1
    assert time.time() - t0 < 5  # one quick second try, not the whole backoff ladder
    assert "cannot be reached" in r.stderr and "HF_ENDPOINT" in r.stderr


def test_persistent_503_gives_up_after_max_attempts(hub, env):
    hub.add_fault("status", match="/config.json", server="hub", times=-1, status=503)
    r = pull(env, GPT2, extra={"MCLI_RETRY_MAX": "3"})
    assert r.returncode == 1
    assert "503" in r.stderr
    assert len(hub.requests(server="hub", contains="/config.json")) == 3


def test_corrupted_lfs_download_is_rejected_and_nothing_is_left_in_place(hub, env):
    hub.add_fault("corrupt", match="model.safetensors", server="cdn", times=-1)
    r = pull(env, GPT2)
    assert r.returncode == 1
    assert "checksum mismatch" in r.stderr
    d = model_dir(env, GPT2)
    left = os.listdir(d) if os.path.isdir(d) else []
    assert "model.safetensors" not in left
    assert not any(f.startswith("model.safetensors.part") for f in left)
    assert "mcli-manifest.json" not in left


def test_corrupted_small_file_fails_the_git_blob_check(hub, env):
    hub.add_fault("corrupt", match="/config.json", server="hub", times=-1)
    r = pull(env, GPT2)
    assert r.returncode == 1
    assert "git blob sha1" in r.stderr
    assert not os.path.exists(os.path.join(model_dir(env, GPT2), "config.json"))


def test_a_stalled_transfer_times_out_and_resumes(hub, env):
    hub.add_fault("stall", match="model.safetensors", server="cdn", times=1, after_bytes=100000, delay=4)
    r = pull(env, GPT2, extra={"MCLI_STALL_TIMEOUT_S": "1"})
    assert r.returncode == 0, r.stderr
    gets = cdn_gets(hub)
    assert len(gets) == 2 and gets[1]["range"] == "bytes=100000-"


def test_trickled_download_completes_with_a_progress_line_per_ten_percent(hub, env):
    hub.add_fault("trickle", match="model.safetensors", server="cdn", times=1, chunk=32768, delay=0.01)
    r = pull(env, GPT2)
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip().startswith("model.safetensors:")]
    assert [l.split(":")[1].split("%")[0].strip() for l in lines] == [str(p) for p in range(10, 101, 10)]


def test_sigkilled_pull_resumes_on_the_next_run(hub, env, tmp_path):
    hub.add_fault("trickle", match="model.safetensors", server="cdn", times=1, chunk=16384, delay=0.05)
    e = dict(os.environ)
    e.update(env)
    proc = subprocess.Popen([MCLI, "pull", GPT2], env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = os.path.join(model_dir(env, GPT2), "model.safetensors.part")
    deadline = time.time() + 20
    while time.time() < deadline and (not os.path.exists(part) or os.path.getsize(part) < 150000):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert os.path.exists(part), "no partial file after the kill"
    have = os.path.getsize(part)
    assert 0 < have < GPT2_SIZE
    assert not os.path.exists(os.path.join(model_dir(env, GPT2), "model.safetensors"))
    r = pull(env, GPT2)
    assert r.returncode == 0, r.stderr
    gets = cdn_gets(hub)
    assert gets[-1]["range"] == f"bytes={have}-"
    assert sha256_of(os.path.join(model_dir(env, GPT2), "model.safetensors")) == sha256_of(GPT2_WEIGHTS)
    assert not os.path.exists(part)


def test_two_concurrent_pulls_of_one_model_end_with_one_correct_copy(hub, env):
    hub.add_fault("trickle", match="model.safetensors", server="cdn", times=-1, chunk=65536, delay=0.1)
    e = dict(os.environ)
    e.update(env)
    procs = [subprocess.Popen([MCLI, "pull", GPT2], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert any("waiting for another mcli process" in err for _, err in outs)
    d = model_dir(env, GPT2)
    assert sha256_of(os.path.join(d, "model.safetensors")) == sha256_of(GPT2_WEIGHTS)
    assert len(cdn_gets(hub)) == 1  # the second process found it verified and in place
    assert not any(f.endswith((".part", ".meta", ".tmp")) for f in os.listdir(d))


def test_without_the_api_listing_files_are_probed(hub, env):
    hub.add_fault("no_api", times=-1)
    r = pull(env, GPT2)
    assert r.returncode == 0, r.stderr
    d = model_dir(env, GPT2)
    assert {"config.json", "model.safetensors", "vocab.json", "merges.txt"} <= set(os.listdir(d))
    # The absent optional files were probed and skipped (404), not fatal.
    assert hub.requests(server="hub", method="HEAD", contains="tokenizer.json")


def test_a_listed_optional_file_that_404s_is_skipped_but_a_missing_weights_file_fails(hub, env):
    hub.add_fault("status", match="/tokenizer_config.json", server="hub", times=-1, status=404,
                  error_code="EntryNotFound")
    r = pull(env, GPT2)
    assert r.returncode == 0, r.stderr
    assert "tokenizer_config.json is listed but not found" in r.stderr
    d = model_dir(env, GPT2)
    assert not os.path.exists(os.path.join(d, "tokenizer_config.json"))
    assert {f["name"] for f in read_manifest(d)["files"]} == {"config.json", "model.safetensors", "vocab.json",
                                                              "merges.txt"}
    hub.reset()
    hub.add_fault("status", match="/model.safetensors", server="hub", times=-1, status=404,
                  error_code="EntryNotFound")
    r = pull(env, "tiny-org/tiny-bert")
    assert r.returncode == 1 and "file not found" in r.stderr


def test_sharded_safetensors_pull_the_index_and_every_shard(hub, env):
    r = pull(env, "tiny-org/sharded-bert")
    assert r.returncode == 0, r.stderr
    d = model_dir(env, "tiny-org/sharded-bert")
    for name in ("model.safetensors.index.json", "model-00001-of-00002.safetensors",
                 "model-00002-of-00002.safetensors"):
        assert sha256_of(os.path.join(d, name)) == sha256_of(fixture_file("tiny-org/sharded-bert", name))


def test_pytorch_only_repo_pulls_pytorch_model_bin(hub, env):
    r = pull(env, "tiny-org/pt-bert")
    assert r.returncode == 0, r.stderr
    assert os.path.exists(os.path.join(model_dir(env, "tiny-org/pt-bert"), "pytorch_model.bin"))


def test_repo_without_org_uses_the_flat_layout(hub, env):
    r = pull(env, "tinyplain")
    assert r.returncode == 0, r.stderr
    assert os.path.exists(os.path.join(env["MCLI_MODELS_DIR"], "lightweight", "tinyplain", "config.json"))


def test_not_enough_disk_is_refused_before_downloading_the_weights(hub, env):
    r = pull(env, GPT2, extra={"MCLI_SYSINFO_OVERRIDE": '{"disk_free_mb": 20}'})
    assert r.returncode == 1
    assert "not enough disk space" in r.stderr
    assert cdn_gets(hub) == []


def test_offline_mode_uses_what_is_on_disk_and_never_touches_the_network(hub, env):
    r = pull(env, GPT2, extra={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 1 and "offline" in r.stderr
    assert hub.requests() == []
    assert pull(env, GPT2).returncode == 0
    hub.reset()
    r = pull(env, GPT2, extra={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr
    assert hub.requests() == []


def test_an_unsupported_architecture_stops_after_config_json(hub, env):
    import shutil
    from hub_helpers import HUB_FIXTURES
    d = os.path.join(hub.root, "other-org", "llama-ish")
    shutil.copytree(os.path.join(HUB_FIXTURES, "tiny-org", "tiny-gpt2"), d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"model_type": "llama", "hidden_size": 8}, f)
    hub.reload()
    r = pull(env, "other-org/llama-ish")
    assert r.returncode == 1
    assert "model_type 'llama' is not an architecture mcli runs" in r.stderr
    assert cdn_gets(hub) == []  # the weights were never requested
    assert not os.path.exists(model_dir(env, "other-org/llama-ish"))
    r = pull(env, "other-org/llama-ish", "--any-arch")
    assert r.returncode == 0, r.stderr
    assert os.path.exists(os.path.join(model_dir(env, "other-org/llama-ish"), "model.safetensors"))


def test_a_renamed_repository_is_followed_to_its_new_name(hub, env):
    hub.renames["tinyold"] = GPT2  # like gpt2 -> openai-community/gpt2
    r = pull(env, "tinyold", extra={"HF_TOKEN": "secret-token"})
    assert r.returncode == 0, r.stderr
    d = model_dir(env, "tinyold")  # stored under the id the user asked for
    assert sha256_of(os.path.join(d, "model.safetensors")) == sha256_of(GPT2_WEIGHTS)
    assert hub.requests(server="hub", contains="/tinyold/resolve/")
    assert hub.requests(server="hub", contains=f"/{GPT2}/resolve/")
    # Same-origin redirects keep the token; the CDN still never gets it.
    assert all(x["authorization"] == "Bearer secret-token" for x in hub.requests(server="hub"))
    assert all(x["authorization"] is None for x in hub.requests(server="cdn"))


def test_list_and_remove(hub, env):
    assert pull(env, GPT2).returncode == 0
    assert pull(env, "tinyplain").returncode == 0
    r = run_mcli("list", "--json", env=env)
    assert r.returncode == 0
    listed = {m["model"]: m for m in json.loads(r.stdout)}
    assert set(listed) == {GPT2, "tinyplain"}
    assert listed[GPT2]["commit"] == hub.repos[GPT2].commit and listed[GPT2]["files"] == 5
    r = run_mcli("remove", GPT2, env=env)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(model_dir(env, GPT2))
    assert not os.path.exists(os.path.join(env["MCLI_MODELS_DIR"], "lightweight", "tiny-org"))
    r = run_mcli("remove", GPT2, env=env)
    assert r.returncode == 1 and "not downloaded" in r.stderr
    r = run_mcli("list", env=env)
    assert "tinyplain" in r.stdout and GPT2 not in r.stdout
    r = run_mcli("list", "--summary", "--json", env=env)
    size = sum(os.path.getsize(os.path.join(model_dir(env, "tinyplain"), f))
               for f in os.listdir(model_dir(env, "tinyplain")))
    assert json.loads(r.stdout) == {"models": 1, "total_bytes": size}
