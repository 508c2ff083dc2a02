"""The command tree: help at every level, version, the optional `workflow model-service` prefix,
usage errors with exit code 2 on stderr."""
import pytest

from conftest import run_mcli

RESERVED = ["lightweight", "lightweight-run", "start", "stop", "status", "list", "add", "add-from-url",
            "update", "remove", "sysinfo", "pull", "inspect", "tokenize", "embed", "classify",
            "fill-mask", "generate", "chat", "serve", "bench"]


def test_version_prints_semver():
    r = run_mcli("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("mcli ")
    assert r.stdout.strip().split()[1].count(".") == 2


@pytest.mark.parametrize("args", [["--help"], ["workflow", "model-service", "--help"], ["workflow", "model-service"]])
def test_main_help_lists_every_command(args):
    r = run_mcli(*args)
    assert r.returncode == 0
    for name in RESERVED:
        assert f"  {name} " in r.stdout, name


@pytest.mark.parametrize("name", RESERVED)
def test_every_command_has_help_with_and_without_prefix(name):
    plain = run_mcli(name, "--help")
    prefixed = run_mcli("workflow", "model-service", name, "--help")
    assert plain.returncode == 0 and prefixed.returncode == 0
    assert plain.stdout == prefixed.stdout
    assert plain.stdout.startswith(f"mcli {name} - ")
    assert "Usage:" in plain.stdout


def test_lightweight_help_names_its_modes():
    r = run_mcli("workflow", "model-service", "lightweight", "--help")
    for flag in ("--list", "--auto", "--download", "--start-server", "--port"):
        assert flag in r.stdout


def test_unknown_command_is_usage_error_on_stderr():
    r = run_mcli("frobnicate")
    assert r.returncode == 2
    assert r.stdout == ""
    assert "unknown command 'frobnicate'" in r.stderr
    assert "Usage:" in r.stderr


def test_unknown_global_option_is_usage_error():
    r = run_mcli("--frob")
    assert r.returncode == 2 and "unknown option '--frob'" in r.stderr


def test_wrong_workflow_group_is_usage_error():
    r = run_mcli("workflow", "other", "list")
    assert r.returncode == 2 and "workflow" in r.stderr


def test_no_command_prints_usage_and_exit_2():
    r = run_mcli()
    assert r.returncode == 2 and "Usage:" in r.stderr
