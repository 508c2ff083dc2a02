"""mcli tokenize end to end: the real binary on model directories that point at the shared
BERT and GPT-2 vocabularies, compared with the stored transformers.js / Python expectations."""
import json
import os

import pytest

from conftest import FIXTURES, SHARED, run_mcli


@pytest.fixture
def bert_dir(tmp_path):
    d = tmp_path / "bert"
    d.mkdir()
    os.symlink(os.path.join(SHARED, "vocab", "bert-base-uncased", "vocab.txt"), d / "vocab.txt")
    (d / "tokenizer_config.json").write_text('{"do_lower_case": true, "model_max_length": 512}')
    return str(d)


@pytest.fixture
def gpt2_dir(tmp_path):
    d = tmp_path / "gpt2"
    d.mkdir()
    for f in ("vocab.json", "merges.txt"):
        os.symlink(os.path.join(SHARED, "vocab", "gpt2", f), d / f)
    return str(d)


def tokenize_json(model, text, *extra):
    r = run_mcli("tokenize", "--model", model, "--json", *extra, "-", input=text)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_bert_json_output_has_ids_tokens_offsets(bert_dir):
    r = run_mcli("tokenize", "--model", bert_dir, "--json", "Hello, world!")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["ids"] == [101, 7592, 1010, 2088, 999, 102]
    assert out["tokens"] == ["[CLS]", "hello", ",", "world", "!", "[SEP]"]
    assert out["offsets"] == [[0, 0], [0, 5], [5, 6], [7, 12], [12, 13], [0, 0]]
    assert out["type_ids"] == [0] * 6


def test_text_mode_prints_one_token_per_line(bert_dir):
    r = run_mcli("tokenize", "--model", bert_dir, "--no-special", "Héllo wörld")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["7592\thello\t0-5", "2088\tworld\t6-11"]


def test_pair_and_truncation(bert_dir):
    out = tokenize_json(bert_dir, "a b c d e", "--pair", "f g", "--max-length", "7")
    assert out["tokens"] == ["[CLS]", "a", "b", "[SEP]", "f", "g", "[SEP]"]
    assert out["type_ids"] == [0, 0, 0, 0, 1, 1, 1]
    assert out["truncated"] is True


@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_cli_matches_reference_fixture(name, bert_dir, gpt2_dir):
    with open(os.path.join(FIXTURES, "tokenizers", f"{name}_expect.json"), encoding="utf-8") as f:
        fx = json.load(f)
    model = bert_dir if name == "bert" else gpt2_dir
    extra = [] if fx["add_special_tokens"] else ["--no-special"]
    cases = fx["cases"][::4]  # every 4th case: the unit test covers them all in-process
    assert len(cases) >= 25
    for c in cases:
        r = run_mcli("tokenize", "--model", model, "--json", *extra, "-", input=c["text"])
        assert r.returncode == 0, (c["text"], r.stderr)
        assert json.loads(r.stdout)["ids"] == c["ids"], c["text"]


def test_gpt2_endoftext_and_decode_round_trip(gpt2_dir):
    text = "Hello world <|endoftext|> 😀 €200\n"
    out = tokenize_json(gpt2_dir, text)
    assert out["ids"][:2] == [15496, 995]
    assert 50256 in out["ids"]
    ids = ",".join(str(i) for i in out["ids"])
    r = run_mcli("tokenize", "--model", gpt2_dir, "--decode", "--json", ids)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["text"] == text


def test_gpt2_decode_keeps_nul_bytes(gpt2_dir):
    out = tokenize_json(gpt2_dir, "nul\0byte")
    r = run_mcli("tokenize", "--model", gpt2_dir, "--decode", "--json", ",".join(map(str, out["ids"])))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["text"] == "nul\0byte"


def test_bert_decode_cleans_up_and_skips_specials(bert_dir):
    r = run_mcli("tokenize", "--model", bert_dir, "--decode", "101 2123 1005 1056 2644 1010 2088 1012 102")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "[CLS] don't stop, world. [SEP]\n"
    r = run_mcli("tokenize", "--model", bert_dir, "--decode", "--skip-special", "101,7592,102")
    assert r.stdout == "hello\n"


def test_invalid_utf8_is_a_usage_error(bert_dir):
    import subprocess
    from conftest import MCLI
    r = subprocess.run([MCLI, "tokenize", "--model", bert_dir, "-"], input=b"ab\xff", capture_output=True)
    assert r.returncode == 2
    assert b"UTF-8" in r.stderr


def test_missing_tokenizer_is_a_clear_error(tmp_path):
    r = run_mcli("tokenize", "--model", str(tmp_path), "x")
    assert r.returncode == 1
    assert "no tokenizer found" in r.stderr


def test_bad_arguments_are_usage_errors(bert_dir):
    assert run_mcli("tokenize", "x").returncode == 2
    assert run_mcli("tokenize", "--model", bert_dir).returncode == 2
    assert run_mcli("tokenize", "--model", bert_dir, "--max-length", "-3", "x").returncode == 2
    assert run_mcli("tokenize", "--model", bert_dir, "--decode", "1,x").returncode == 2
    r = run_mcli("tokenize", "--model", bert_dir, "--decode", "999999")
    assert r.returncode == 2 and "outside the vocabulary" in r.stderr
