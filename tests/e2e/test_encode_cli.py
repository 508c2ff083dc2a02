"""`mcli embed`, `classify` and `fill-mask` end to end: the real binary tokenizes the fixture texts
with the model directory's own vocab.txt and must reproduce the PyTorch reference outputs written by
tests/fixtures/gen/gen_encoder_ref.py (reference.json beside each model) within 1e-4."""
import json
import math
import os

import pytest

from conftest import FIXTURES, run_mcli

ENC = os.path.join(FIXTURES, "encoders")
TOL = 1e-4


def ref(name):
    with open(os.path.join(ENC, name, "reference.json")) as f:
        r = json.load(f)
    assert r["version"] == "encoder-ref-v1"
    return r


def model(name):
    return os.path.join(ENC, name)


def texts_of(r):
    """The reference batch entries that came from a text (the BERT pair entry has none)."""
    return [(i, t) for i, t in enumerate(r["texts"]) if t is not None]


def assert_close(got, want, what):
    assert len(got) == len(want), what
    worst = max(abs(a - b) for a, b in zip(got, want))
    assert worst <= TOL, f"{what}: differs by {worst}"


@pytest.mark.parametrize("name", ["bert_cls", "distilbert_cls", "bert_base"])
@pytest.mark.parametrize("pooling,normalize,key", [("cls", False, "cls"), ("mean", False, "mean"),
                                                   ("mean", True, "mean_normalized")])
def test_embed_json_matches_torch(name, pooling, normalize, key):
    r = ref(name)
    items = texts_of(r)
    args = ["embed", "--model", model(name), "--pooling", pooling, "--json"] + (["--normalize"] if normalize else [])
    p = run_mcli(*args, *[t for _, t in items])
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert list(out) == ["embeddings"]
    assert len(out["embeddings"]) == len(items)
    for k, (i, _) in enumerate(items):
        assert_close(out["embeddings"][k], r[key][i], f"{name} {key} text {i}")
    if normalize:
        for v in out["embeddings"]:
            assert abs(math.sqrt(sum(x * x for x in v)) - 1.0) < 1e-5


def test_embed_pooling_none_gives_every_token_hidden_state():
    r = ref("distilbert_cls")
    items = texts_of(r)
    p = run_mcli("embed", "--model", model("distilbert_cls"), "--pooling", "none", "--json", *[t for _, t in items])
    assert p.returncode == 0, p.stderr
    hs = json.loads(p.stdout)["hidden_states"]
    for k, (i, _) in enumerate(items):
        n_tok = len(r["ids"][i])
        assert len(hs[k]) == n_tok
        assert_close([x for row in hs[k] for x in row], r["hidden_states"][i], f"hidden states text {i}")


def test_embed_text_output_is_readable():
    p = run_mcli("embed", "--model", model("bert_cls"), "a dog")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "# a dog (1 x 32 values)"
    assert len(lines[1].split()) == 32


@pytest.mark.parametrize("name", ["bert_cls", "bert_multilabel", "distilbert_cls"])
def test_classify_json_matches_torch(name):
    r = ref(name)
    items = texts_of(r)
    p = run_mcli("classify", "--model", model(name), "--json", *[t for _, t in items])
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(rows) == len(items)
    for row, (i, _) in zip(rows, items):
        assert_close(row["logits"], r["logits"][i], f"{name} logits {i}")
        probs = r["probs"][i]
        best = max(range(len(probs)), key=lambda j: probs[j])
        assert row["label"] == r["labels"][best]
        assert [s["label"] for s in row["scores"]] == [r["labels"][j] for j in sorted(range(len(probs)),
                                                                                      key=lambda j: -probs[j])]
        for s in row["scores"]:
            assert abs(s["score"] - probs[r["labels"].index(s["label"])]) <= TOL
        total = sum(s["score"] for s in row["scores"])
        if r["multi_label"]:
            assert abs(total - 1.0) > 0.05  # independent sigmoids, not a distribution
        else:
            assert abs(total - 1.0) < 1e-5


def test_classify_text_output_one_line_per_text():
    p = run_mcli("classify", "--model", model("distilbert_cls"), "a dog", "i love this movie!")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 2
    label, score, text = lines[1].split("\t")
    assert label in ("NEGATIVE", "POSITIVE") and 0.5 <= float(score) <= 1.0 and text == "i love this movie!"


@pytest.mark.parametrize("name", ["bert_mlm", "distilbert_mlm"])
def test_fill_mask_json_matches_torch_top5(name):
    r = ref(name)
    for case in r["mlm"]:
        p = run_mcli("fill-mask", "--model", model(name), "--json", case["text"])
        assert p.returncode == 0, p.stderr
        preds = json.loads(p.stdout)
        assert [x["token_id"] for x in preds] == case["top_ids"]
        assert [x["token_str"] for x in preds] == case["top_tokens"]
        assert [x["sequence"] for x in preds] == case["top_sequences"]
        for x, s in zip(preds, case["top_scores"]):
            assert abs(x["score"] - s) <= TOL


def test_fill_mask_top_k_and_several_masks():
    p = run_mcli("fill-mask", "--model", model("bert_mlm"), "--top-k", "2", "--json", "i [MASK] this [MASK].")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert len(out) == 2 and all(len(lst) == 2 for lst in out)
    for lst in out:
        assert lst[0]["score"] >= lst[1]["score"]
        # with several masks the pipeline keeps special tokens in the sequence
        assert lst[0]["sequence"].startswith("[CLS] ")


def test_head_the_model_lacks_is_a_clear_error():
    p = run_mcli("classify", "--model", model("distilbert_mlm"), "a dog")
    assert p.returncode == 1
    assert p.stdout == ""
    assert "distilbert_mlm has no trained classification head; it does embeddings and fill-mask" in p.stderr
    p = run_mcli("fill-mask", "--model", model("bert_cls"), "a [MASK]")
    assert p.returncode == 1
    assert "has no trained masked-LM (fill-mask) head" in p.stderr


def test_fill_mask_without_mask_token_is_an_error():
    p = run_mcli("fill-mask", "--model", model("bert_mlm"), "no mask here")
    assert p.returncode != 0 and "no mask token" in p.stderr


def test_text_longer_than_the_model_is_truncated_with_a_warning():
    long_text = " ".join(["dog"] * 40)
    p = run_mcli("embed", "--model", model("bert_cls"), "--json", long_text)
    assert p.returncode == 0, p.stderr
    assert "cut to the model's 16 tokens" in p.stderr
    assert len(json.loads(p.stdout)["embeddings"][0]) == 32


@pytest.mark.parametrize("args", [["embed", "x"], ["embed", "--model"], ["embed", "--model", ENC, "--frob", "x"],
                                  ["embed", "--model", ENC, "--pooling", "max", "x"],
                                  ["fill-mask", "--model", ENC, "--top-k", "0", "x [MASK]"],
                                  ["classify", "--model", ENC]])
def test_usage_errors_exit_2(args):
    p = run_mcli(*args)
    assert p.returncode == 2
    assert p.stdout == ""
    assert "Try 'mcli" in p.stderr


def test_missing_model_directory_exits_1():
    p = run_mcli("embed", "--model", os.path.join(ENC, "no_such_model"), "x")
    assert p.returncode == 1
    assert "no_such_model" in p.stderr


def test_bench_command_reports_latency_json():
    p = run_mcli("bench", "--model", model("distilbert_cls"), "--seq-len", "16", "--batch", "2", "--runs", "3", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["seq_len"] == 16 and out["batch"] == 2 and out["runs"] == 3
    assert 0 < out["min_ms"] <= out["median_ms"]
    assert out["peak_rss_mib"] > 0


@pytest.mark.parametrize("cmd", ["embed", "classify", "fill-mask"])
def test_encoder_commands_on_a_decoder_say_what_it_is(cmd):
    gpt2 = os.path.join(FIXTURES, "decoders", "tiny-gpt2")
    if not os.path.isdir(gpt2):
        pytest.skip("no GPT-2 fixture")
    p = run_mcli(cmd, "--model", gpt2, "hello [MASK]")
    assert p.returncode == 1 and p.stdout == ""
    assert "is a gpt2 decoder: it generates text" in p.stderr
