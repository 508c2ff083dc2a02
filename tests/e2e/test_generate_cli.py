"""`mcli generate` and `mcli chat` on the tiny GPT-2 fixture: greedy ids equal the torch reference
(tests/fixtures/gen/gen_gpt2_ref.py), --stream prints the same text, seeds reproduce, usage errors
exit 2, chat reads piped turns."""
import json
import os

from conftest import FIXTURES, run_mcli

MODEL = os.path.join(FIXTURES, "decoders", "tiny-gpt2")
with open(os.path.join(FIXTURES, "decoders", "tiny-gpt2-ref.json")) as f:
    REF = json.load(f)
GREEDY = {c["name"]: c for c in REF["greedy"]}


def test_greedy_json_has_torch_token_ids():
    c = GREEDY["longer_than_prompt"]
    r = run_mcli("generate", "--model", MODEL, "--greedy", "--max-new-tokens", str(c["max_new_tokens"]), "--json",
                 c["text"])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["token_ids"] == c["ids"]
    assert out["finish_reason"] == "length"
    assert out["prompt_tokens"] == len(c["prompt"])
    assert isinstance(out["text"], str) and len(out["text"]) > 0
    assert out["prompt_ms"] >= 0 and out["gen_ms"] > 0


def test_stream_prints_the_same_text_as_plain_output():
    args = ["generate", "--model", MODEL, "--max-new-tokens", "25", "--seed", "9", "--top-p", "0.9", "hello world"]
    plain = run_mcli(*args)
    stream = run_mcli(*args[:-1], "--stream", args[-1])
    js = run_mcli(*args[:-1], "--json", args[-1])
    assert plain.returncode == 0 and stream.returncode == 0 and js.returncode == 0, plain.stderr + stream.stderr
    assert plain.stdout == stream.stdout
    assert plain.stdout == json.loads(js.stdout)["text"] + "\n"


def test_stream_json_emits_one_line_per_token_then_result():
    r = run_mcli("generate", "--model", MODEL, "--greedy", "--ignore-eos", "--max-new-tokens", "6", "--stream",
                 "--json", "the cat")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    final = lines[-1]
    assert [x["token_id"] for x in lines[:-1]] == final["token_ids"]
    assert "".join(x["text"] for x in lines[:-1]) == final["text"]
    assert len(final["token_ids"]) == 6


def test_same_seed_same_text_other_seed_differs():
    base = ["generate", "--model", MODEL, "--max-new-tokens", "30", "--ignore-eos", "--temperature", "1.5", "--json"]
    a = json.loads(run_mcli(*base, "--seed", "5", "she sells").stdout)
    b = json.loads(run_mcli(*base, "--seed", "5", "she sells").stdout)
    c = json.loads(run_mcli(*base, "--seed", "6", "she sells").stdout)
    assert a["token_ids"] == b["token_ids"] and a["text"] == b["text"]
    assert a["token_ids"] != c["token_ids"]


def test_stop_string_is_removed_and_ends_with_stop():
    c = GREEDY["longer_than_prompt"]
    full = json.loads(run_mcli("generate", "--model", MODEL, "--greedy", "--max-new-tokens", "26", "--json",
                               c["text"]).stdout)["text"]
    assert "eee" in full
    r = run_mcli("generate", "--model", MODEL, "--greedy", "--max-new-tokens", "26", "--stop", "eee", "--json",
                 c["text"])
    out = json.loads(r.stdout)
    assert out["finish_reason"] == "stop"
    assert out["text"] == full[:full.index("eee")]


def test_usage_errors_exit_2():
    assert run_mcli("generate", "--model", MODEL).returncode == 2                      # no prompt
    assert run_mcli("generate", "hello").returncode == 2                               # no model
    assert run_mcli("generate", "--model", MODEL, "--top-p", "0", "x").returncode == 2
    assert run_mcli("generate", "--model", MODEL, "--temperature", "abc", "x").returncode == 2
    assert run_mcli("generate", "--model", MODEL, "--bogus", "x").returncode == 2
    r = run_mcli("generate", "--model", "/nonexistent/model", "hi")
    assert r.returncode == 1 and "nonexistent" in r.stderr


def test_prompt_too_long_for_context_is_an_error():
    r = run_mcli("generate", "--model", MODEL, "--greedy", " ".join(["hello"] * 200))
    assert r.returncode == 1
    assert "context" in r.stderr


def test_chat_reads_piped_turns_and_replies_once_per_line():
    r = run_mcli("chat", "--model", MODEL, "--max-new-tokens", "8", "--greedy",
                 input="hello there\n\nhow are you?\n")
    assert r.returncode == 0, r.stderr
    replies = r.stdout.split("\n")
    assert replies[-1] == ""          # every reply ends with a newline
    assert len(replies) == 3          # two non-empty turns -> two replies
    assert "> " not in r.stdout       # no prompt when stdin is not a terminal


def test_chat_first_reply_is_greedy_continuation_of_turn_plus_eos():
    # the first reply equals `generate` on the same ids: the turn's tokens + EOS
    chat = run_mcli("chat", "--model", MODEL, "--max-new-tokens", "8", "--greedy", "--ignore-eos",
                    input="the cat sat on\n")
    assert chat.returncode == 0, chat.stderr
    gen = run_mcli("generate", "--model", MODEL, "--max-new-tokens", "8", "--greedy", "--ignore-eos",
                   "the cat sat on<|endoftext|>")
    assert gen.returncode == 0, gen.stderr
    assert chat.stdout == gen.stdout
