#!/usr/bin/python3
"""Trains mcli's bundled GPT-2-architecture text generator on the English fortune databases.

    nice -n 10 /usr/bin/python3 tools/train-demo/train_gpt2.py --out models/bundled/mcli-fortune-gpt2

Needs Debian's python3-torch and python3-regex, and the fortunes + fortunes-min packages.
Deterministic for a given torch build and thread count (fixed seeds, one thread, fixed steps).
Writes a Hugging Face GPT-2 layout: config.json, generation_config.json, model.safetensors
(fp32, lm_head tied to transformer.wte), vocab.json, merges.txt, tokenizer_config.json,
special_tokens_map.json, README.md (model card with metrics and samples).
"""
import argparse
import math
import os
import random
import time

import torch
import torch.nn.functional as F

import common
import fortunes
from bpe import EOT, ByteBPE
from common import log
from models import GPT2LMHeadModel


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(common.REPO, "models", "bundled", "mcli-fortune-gpt2"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--vocab-size", type=int, default=3072)
    ap.add_argument("--n-embd", type=int, default=192)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=1400)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=1)
    return ap.parse_args()


def load_corpus():
    """English fortunes, cleaned, de-duplicated, split 95/5 by a hash of the text."""
    seen = set()
    train, held = [], []
    per_db = {}
    for name, path in fortunes.english_dbs():
        n = 0
        for text in fortunes.read_db(path):
            if len(text) < 10 or fortunes.letter_ratio(text) < 0.7 or text in seen:
                continue
            seen.add(text)
            (held if common.is_heldout(text, 20) else train).append(text)
            n += 1
        per_db[name] = n
    return train, held, per_db


def token_stream(tok, texts):
    ids = []
    for t in texts:
        ids.append(tok.eot_id)
        ids.extend(tok.encode(t))
    return torch.tensor(ids, dtype=torch.long)


@torch.no_grad()
def perplexity(model, stream, ctx):
    """Mean next-token loss over consecutive non-overlapping windows of the held-out stream."""
    model.eval()
    total, count = 0.0, 0
    n = (len(stream) - 1) // ctx
    for i in range(0, n, 8):
        xs = [stream[j * ctx:(j + 1) * ctx + 1] for j in range(i, min(n, i + 8))]
        x = torch.stack(xs)
        logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum")
        total += loss.item()
        count += x[:, 1:].numel()
    model.train()
    return math.exp(total / count), total / count


@torch.no_grad()
def sample(model, tok, prompt, n_new, seed, temperature=0.8, top_k=40):
    """Top-k sampling with a fixed seed; stops at <|endoftext|>."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    ids = [tok.eot_id] + tok.encode(prompt)
    n_prompt = len(ids)
    for _ in range(n_new):
        logits = model(torch.tensor([ids[-model.ctx:]]))[0, -1] / temperature
        v, ix = torch.topk(logits, top_k)
        p = F.softmax(v, dim=-1)
        nxt = ix[torch.multinomial(p, 1, generator=g)].item()
        if nxt == tok.eot_id:
            break
        ids.append(nxt)
    model.train()
    return prompt + tok.decode(ids[n_prompt:])


def reproduce_command(args):
    """The command line that reproduces this run: every option that differs from its default."""
    defaults = vars(argparse.Namespace(**{k: v for k, v in vars(parse_defaults()).items()}))
    parts = ["nice -n 10 /usr/bin/python3 tools/train-demo/train_gpt2.py"]
    for k, v in vars(args).items():
        if k != "out" and v != defaults[k]:
            parts.append("--%s %s" % (k.replace("_", "-"), v))
    parts.append("--out models/bundled/mcli-fortune-gpt2")
    return " ".join(parts)


def parse_defaults():
    import sys
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        return parse_args()
    finally:
        sys.argv = saved


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    common.seed_everything(args.seed)
    os.makedirs(args.out, exist_ok=True)
    t_start = time.time()

    train_texts, held_texts, per_db = load_corpus()
    log("corpus: %d training fortunes, %d held out, %d chars" %
        (len(train_texts), len(held_texts), sum(len(t) for t in train_texts)))

    tok = ByteBPE.train(train_texts, args.vocab_size, log=log)
    log("bpe: vocab %d, %d merges" % (len(tok.encoder), len(tok.merges)))
    assert tok.eot_id == len(tok.encoder) - 1
    rng = random.Random(args.seed)
    rng.shuffle(train_texts)
    train_ids = token_stream(tok, train_texts)
    held_ids = token_stream(tok, held_texts)
    for t in train_texts[:200]:  # the tokenizer must round-trip exactly
        assert tok.decode(tok.encode(t)) == t, t
    log("tokens: train %d, held-out %d (%.2f chars/token)" %
        (len(train_ids), len(held_ids), sum(len(t) for t in train_texts) / len(train_ids)))

    cfg = {"vocab_size": len(tok.encoder), "n_embd": args.n_embd, "n_layer": args.n_layer,
           "n_head": args.n_head, "n_positions": args.ctx, "layer_norm_epsilon": 1e-5, "dropout": 0.0}
    model = GPT2LMHeadModel(cfg)
    model.ctx = args.ctx
    n_params = sum(p.numel() for p in model.parameters())
    log("model: %d parameters" % n_params)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98))
    g = torch.Generator().manual_seed(args.seed)
    t_train = time.time()
    ema = None
    for step in range(args.steps):
        if step < args.warmup:
            lr = args.lr * (step + 1) / args.warmup
        else:
            frac = (step - args.warmup) / max(1, args.steps - args.warmup)
            lr = args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for group in opt.param_groups:
            group["lr"] = lr
        starts = torch.randint(0, len(train_ids) - args.ctx - 1, (args.batch,), generator=g)
        x = torch.stack([train_ids[s:s + args.ctx + 1] for s in starts.tolist()])
        logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if step % 50 == 0 or step == args.steps - 1:
            el = time.time() - t_train
            log("step %d/%d loss %.3f lr %.2e (%.0f tok/s)" %
                (step, args.steps, ema, lr, (step + 1) * args.batch * args.ctx / max(el, 1e-9)))
    train_seconds = time.time() - t_train
    tokens_seen = args.steps * args.batch * args.ctx

    ppl, held_loss = perplexity(model, held_ids, args.ctx)
    train_ppl, _ = perplexity(model, train_ids[:len(held_ids)], args.ctx)
    log("held-out perplexity %.2f (loss %.3f); train-subset perplexity %.2f" % (ppl, held_loss, train_ppl))
    prompts = ["The meaning of life is", "A computer", "Love is"]
    samples = [sample(model, tok, p, 60, args.seed + i) for i, p in enumerate(prompts)]
    for s in samples:
        log("sample: %s" % s)

    # ---- write the Hugging Face layout ----
    tok.save(args.out, args.ctx)
    state = model.hf_state_dict()
    assert "lm_head.weight" not in state
    st_path = os.path.join(args.out, "model.safetensors")
    common.save_safetensors(state, st_path)
    config = {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.0, "embd_pdrop": 0.0, "resid_pdrop": 0.0,
        "bos_token_id": tok.eot_id, "eos_token_id": tok.eot_id,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-5,
        "model_type": "gpt2",
        "n_ctx": args.ctx, "n_embd": args.n_embd, "n_head": args.n_head, "n_inner": None,
        "n_layer": args.n_layer, "n_positions": args.ctx,
        "reorder_and_upcast_attn": False, "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True,
        "summary_type": "cls_index", "summary_use_proj": True,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": len(tok.encoder),
    }
    common.write_json(os.path.join(args.out, "config.json"), config)
    common.write_json(os.path.join(args.out, "generation_config.json"), {
        "bos_token_id": tok.eot_id, "eos_token_id": tok.eot_id, "do_sample": True,
        "temperature": 0.8, "top_k": 40, "max_length": args.ctx})

    # ---- self-check: the written files reproduce the trained model's logits ----
    reloaded = GPT2LMHeadModel(cfg)
    missing = reloaded.load_state_dict(common.load_safetensors(st_path), strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys
    reloaded.eval()
    model.eval()
    tok2 = ByteBPE.load(args.out)
    probe = "Q: How many programmers does it take to change a light bulb?"
    assert tok2.encode(probe) == tok.encode(probe)
    x = torch.tensor([[tok.eot_id] + tok2.encode(probe)])
    with torch.no_grad():
        diff = (reloaded(x) - model(x)).abs().max().item()
    log("reload check: max |logit difference| %.3g" % diff)
    assert diff < 1e-5

    total_seconds = time.time() - t_start
    write_card(args, config, n_params, per_db, train_texts, held_texts, train_ids, held_ids, tokens_seen,
               train_seconds, total_seconds, ppl, held_loss, train_ppl, prompts, samples, st_path)
    log("wrote %s (model.safetensors %d bytes)" % (args.out, os.path.getsize(st_path)))


def write_card(args, config, n_params, per_db, train_texts, held_texts, train_ids, held_ids, tokens_seen,
               train_seconds, total_seconds, ppl, held_loss, train_ppl, prompts, samples, st_path):
    pk = common.package_versions({"fortunes", "fortunes-min", "python3-torch", "python3-regex"})
    size = os.path.getsize(st_path)
    dbs = ", ".join("%s (%d)" % (k, v) for k, v in sorted(per_db.items()))
    sample_md = "\n".join("%d. prompt `%s`:\n\n   > %s\n" % (i + 1, p, s.replace("\n", " "))
                          for i, (p, s) in enumerate(zip(prompts, samples)))
    card = f"""---
license: bsd-3-clause
language: en
library_name: mcli
pipeline_tag: text-generation
tags: [gpt2, mcli-bundled, demo]
---
# mcli-fortune-gpt2

A tiny GPT-2-architecture text generator that ships with mcli so that `make serve` can generate
text on a machine with no access to the model hub. It writes short fortune-cookie style English:
grammatical-looking phrases and quips, not facts. Do not rely on anything it says.

## Data
- Source: the English fortune databases of the Debian 12 packages `fortunes` {pk.get("fortunes", "?")} and
  `fortunes-min` {pk.get("fortunes-min", "?")} (/usr/share/games/fortunes/*), i.e. the fortune-mod collection.
- Left out: `ascii-art`, `translate-me`, and the `ethnic` and `men-women` joke collections; offensive
  (`off/`) databases are never read. Entries shorter than 10 characters or with less than 70 % letters
  and spaces (ASCII art, code) are dropped; duplicates are dropped.
- Cleaning: backspace overstriking removed, all whitespace collapsed to single spaces (so every fortune is
  one line); each fortune is preceded by `<|endoftext|>`.
- Split: 1 in 20 fortunes held out by a SHA-256 hash of its text: {len(train_texts)} training fortunes
  ({sum(len(t) for t in train_texts)} characters, {len(train_ids)} tokens), {len(held_texts)} held out ({len(held_ids)} tokens).
- Fortunes per database: {dbs}.

## Licence
The fortune databases are distributed by Debian under fortune-mod's BSD licence (3-clause, see
/usr/share/doc/fortunes/copyright); most entries are short quotations of many authors, collected
over decades. The weights are released under the same BSD-3-Clause terms. The model can reproduce
fragments of its training quotations.

## Model
- Architecture: GPT-2 (`GPT2LMHeadModel`, pre-LayerNorm, gelu_new, learned positions, lm_head tied to
  `transformer.wte`, not stored): {config["n_layer"]} layers, n_embd {config["n_embd"]}, {config["n_head"]} heads,
  context {config["n_positions"]} tokens, vocabulary {config["vocab_size"]}.
- Parameters: {n_params} ({size} bytes as fp32 safetensors).
- Tokenizer: its own byte-level BPE (GPT-2's byte-to-unicode table and pre-tokenizer pattern), {config["vocab_size"] - 257} merged
  tokens learned from the training fortunes; `vocab.json` + `merges.txt` in GPT-2's
  format, `<|endoftext|>` = {config["eos_token_id"]} (last id) is BOS, EOS and UNK. No prefix space.

## Training
- AdamW (betas 0.9/0.98, weight decay {args.weight_decay} on matrices), peak lr {args.lr}, {args.warmup} warm-up steps,
  cosine decay to 10 %, gradient clipping 1.0, no dropout; {args.steps} steps of {args.batch} random windows of
  {args.ctx + 1} tokens ({tokens_seen} tokens, {tokens_seen / len(train_ids):.1f} passes over the training stream); seed {args.seed}.
- Time: {train_seconds / 60:.1f} min of training, {total_seconds / 60:.1f} min in all (tokenizer, evaluation, writing),
  with torch.set_num_threads({args.threads}) under `nice -n 10` on a shared 2-core machine.
- Software: Debian python3-torch {pk.get("python3-torch", torch.__version__)}, python3-regex {pk.get("python3-regex", "?")};
  the model is written out in plain torch in tools/train-demo/models.py following transformers' GPT-2.

## Metrics
- Held-out perplexity: **{ppl:.2f}** (mean loss {held_loss:.3f} nats/token over {len(held_ids)} held-out tokens,
  windows of {args.ctx}); the same measure on a training subset of equal size: {train_ppl:.2f}.
- A uniform guess over the vocabulary would score {config["vocab_size"]}.

## Samples
Top-k 40, temperature 0.8, seeds {args.seed}..{args.seed + 2}, at most 60 new tokens, stopping at `<|endoftext|>`:

{sample_md}
## Reproduce
From the repository root, on Debian 12 with `apt-get install python3-torch python3-regex fortunes fortunes-min`:

    {reproduce_command(args)}

(fixed seeds and one thread: the same torch build reproduces the same weights).
"""
    with open(os.path.join(args.out, "README.md"), "w", encoding="utf-8") as f:
        f.write(card)


if __name__ == "__main__":
    main()
