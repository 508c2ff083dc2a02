"""`list --registry` and `remove --registry` hand over to the model service's registry (here directly
on a database, no service running): what `add` wrote is listed, counted by type, and removed."""
import json
import os

from conftest import FIXTURES, run_mcli


def test_registry_list_and_remove_round_trip(tmp_path):
    db = str(tmp_path / "registry.db")
    common = ["--direct", "--db", db, "--models-dir", str(tmp_path / "models")]
    r = run_mcli("add", "tiny-cls", "--path", os.path.join(FIXTURES, "encoders", "bert_cls"), "--type", "bert", *common)
    assert r.returncode == 0, r.stderr

    r = run_mcli("workflow", "model-service", "list", "--registry", "--json", *common)
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    assert [m["name"] for m in listed] == ["tiny-cls"]
    assert listed[0]["model_path"].endswith("encoders/bert_cls")

    r = run_mcli("list", "--registry", "--summary", "--json", *common)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["total_models"] == 1
    assert summary["models_by_type"] == {"bert": 1}

    r = run_mcli("remove", "--registry", "tiny-cls", *common)
    assert r.returncode == 0, r.stderr
    r = run_mcli("list", "--registry", "--summary", "--json", *common)
    assert json.loads(r.stdout)["total_models"] == 0


def test_registry_remove_of_unknown_model_names_it():
    r = run_mcli("remove", "--registry", "no-such-model", "--direct", "--db", "/nonexistent-dir/x.db")
    assert r.returncode != 0
    assert r.stderr.strip() != ""
