"""End-to-end tests of `mcli inspect`: every generated checkpoint directory, in every format,
against what the fixture generator (torch) recorded; heads and labels; error exits."""
import json
import os
import shutil

import pytest

from conftest import FIXTURES, run_mcli

CKPT = os.path.join(FIXTURES, "checkpoints")
with open(os.path.join(CKPT, "expected.json")) as f:
    EXPECTED = json.load(f)

# What each directory's weights contain (by construction in gen_checkpoints.py).
HEADS = {
    "bert_st_f32": dict(classification=True, masked_lm=False, lm_head=False, pooler=True),
    "bert_st_f16": dict(classification=False, masked_lm=True, lm_head=False, pooler=True),
    "bert_st_bf16": dict(classification=False, masked_lm=False, lm_head=False, pooler=True),
    "bert_st_sharded": dict(classification=False, masked_lm=False, lm_head=False, pooler=True),
    "bert_pt_zip": dict(classification=False, masked_lm=True, lm_head=False, pooler=True),
    "bert_pt_legacy": dict(classification=True, masked_lm=False, lm_head=False, pooler=True),
    "distilbert_pt_zip": dict(classification=True, masked_lm=False, lm_head=False, pooler=False),
    "distilbert_pt_sharded": dict(classification=False, masked_lm=False, lm_head=False, pooler=False),
    "gpt2_pt_legacy": dict(classification=False, masked_lm=False, lm_head=True, pooler=False),
    "gpt2_st": dict(classification=False, masked_lm=False, lm_head=True, pooler=False),
}


@pytest.mark.parametrize("name", sorted(HEADS))
def test_inspect_json_matches_the_generator(name):
    r = run_mcli("inspect", "--model", os.path.join(CKPT, name), "--json")
    assert r.returncode == 0, r.stderr
    o = json.loads(r.stdout)
    exp = EXPECTED[name]
    assert o["weights_format"] == exp["format"]
    assert o["n_tensors"] == len(exp["tensors"])
    assert o["parameters"] == exp["parameters"]
    float_elems = sum(_numel(t["shape"]) for t in exp["tensors"].values() if "fnv1a64" in t)
    assert o["weight_bytes"] == 4 * float_elems
    dtypes = {}
    for t in exp["tensors"].values():
        dtypes[t["dtype"]] = dtypes.get(t["dtype"], 0) + 1
    assert {k: v["tensors"] for k, v in o["dtypes"].items()} == dtypes
    for head, present in HEADS[name].items():
        assert o["heads"][head]["present"] is present, head
    assert o["warnings"] == []
    names = [f["name"] for f in o["files"]]
    assert "config.json" in names and names == sorted(names)


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def test_tied_heads_are_reported_as_tied():
    o = json.loads(run_mcli("inspect", "--model", os.path.join(CKPT, "bert_st_f16"), "--json").stdout)
    assert o["heads"]["masked_lm"]["decoder_tied"] is True
    o = json.loads(run_mcli("inspect", "--model", os.path.join(CKPT, "bert_pt_zip"), "--json").stdout)
    assert o["heads"]["masked_lm"]["decoder_tied"] is False  # in the file, sharing the embeddings' storage
    o = json.loads(run_mcli("inspect", "--model", os.path.join(CKPT, "gpt2_st"), "--json").stdout)
    assert o["heads"]["lm_head"]["tied"] is True
    assert o["tasks"] == ["generate"]


def test_classification_labels_in_id_order():
    o = json.loads(run_mcli("inspect", "--model", os.path.join(CKPT, "bert_pt_legacy"), "--json").stdout)
    cls = o["heads"]["classification"]
    assert cls["labels"] == ["neg", "neu", "pos"]
    assert cls["n_outputs"] == 3
    assert o["architecture"] == "BertForSequenceClassification"
    assert o["config_head"] == "sequence_classification"
    assert o["tasks"] == ["embed", "classify"]


def test_text_output_names_format_heads_and_labels():
    r = run_mcli("inspect", "--model", os.path.join(CKPT, "distilbert_pt_zip"))
    assert r.returncode == 0, r.stderr
    assert "distilbert (DistilBertForSequenceClassification" in r.stdout
    assert "pytorch zip" in r.stdout
    assert "classification (2 outputs: NEGATIVE, POSITIVE)" in r.stdout
    assert "parameters   %d" % EXPECTED["distilbert_pt_zip"]["parameters"] in r.stdout


def test_missing_or_non_directory_model_exits_1(tmp_path):
    r = run_mcli("inspect", "--model", str(tmp_path / "nope"))
    assert r.returncode == 1
    assert "No such file or directory" in r.stderr
    r = run_mcli("inspect", "--model", os.path.join(CKPT, "expected.json"))
    assert r.returncode == 1
    assert "not a directory" in r.stderr
    r = run_mcli("inspect", "--model", str(tmp_path))  # empty directory: no config.json
    assert r.returncode == 1
    assert "config.json" in r.stderr


def test_directory_without_weights_exits_1(tmp_path):
    shutil.copy(os.path.join(CKPT, "bert_st_f32", "config.json"), tmp_path)
    r = run_mcli("inspect", "--model", str(tmp_path))
    assert r.returncode == 1
    assert "no weights found" in r.stderr


def test_malicious_checkpoint_is_refused_not_run(tmp_path):
    shutil.copy(os.path.join(CKPT, "bert_pt_zip", "config.json"), tmp_path)
    shutil.copy(os.path.join(CKPT, "hostile", "global_os_system.bin"), tmp_path / "pytorch_model.bin")
    r = run_mcli("inspect", "--model", str(tmp_path))
    assert r.returncode == 1
    assert "refusing global 'posix.system'" in r.stderr
    assert "pwned" not in r.stdout


def test_unsupported_model_type_names_supported_ones(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "roberta"}')
    r = run_mcli("inspect", "--model", str(tmp_path))
    assert r.returncode == 1
    assert "roberta" in r.stderr and "bert, distilbert, gpt2" in r.stderr


def test_usage_errors_exit_2_and_help_documents_flags():
    assert run_mcli("inspect").returncode == 2
    assert run_mcli("inspect", "--model").returncode == 2
    assert run_mcli("inspect", "--model", CKPT, "--bogus").returncode == 2
    r = run_mcli("inspect", "--help")
    assert r.returncode == 0
    assert "--model DIR" in r.stdout and "--json" in r.stdout


def _drop_tensors(src, dst, drop):
    """Rewrites a safetensors file without the named tensors (pure Python, no torch)."""
    import struct
    raw = open(src, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out_h, blobs, off = {}, [], 0
    for name, e in sorted(header.items(), key=lambda kv: kv[1].get("data_offsets", [0])[0] if kv[0] != "__metadata__" else -1):
        if name == "__metadata__" or name in drop:
            continue
        b, end = e["data_offsets"]
        blob = data[b:end]
        out_h[name] = dict(e, data_offsets=[off, off + len(blob)])
        blobs.append(blob)
        off += len(blob)
    hj = json.dumps(out_h).encode()
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))


def test_bert_classifier_without_pooler_is_not_offered_for_classify(tmp_path):
    src = os.path.join(CKPT, "bert_st_f32")
    shutil.copy(os.path.join(src, "config.json"), tmp_path)
    _drop_tensors(os.path.join(src, "model.safetensors"), str(tmp_path / "model.safetensors"),
                  {"bert.pooler.dense.weight", "bert.pooler.dense.bias"})
    o = json.loads(run_mcli("inspect", "--model", str(tmp_path), "--json").stdout)
    assert o["heads"]["classification"]["present"] is True
    assert o["heads"]["pooler"]["present"] is False
    assert o["tasks"] == ["embed"]
    assert o["n_tensors"] == len(EXPECTED["bert_st_f32"]["tensors"]) - 2


def test_config_head_missing_from_weights_is_a_warning(tmp_path):
    src = os.path.join(CKPT, "bert_st_f32")
    shutil.copy(os.path.join(src, "config.json"), tmp_path)
    _drop_tensors(os.path.join(src, "model.safetensors"), str(tmp_path / "model.safetensors"),
                  {"classifier.weight", "classifier.bias"})
    o = json.loads(run_mcli("inspect", "--model", str(tmp_path), "--json").stdout)
    assert o["heads"]["classification"]["present"] is False
    assert any("no classification head" in w for w in o["warnings"])
