#!/usr/bin/python3
"""Trains mcli's bundled BERT-architecture classifier: which language a text is written in
(German, English, Spanish, Italian, Portuguese), learned from Debian's fortune databases.

    nice -n 10 /usr/bin/python3 tools/train-demo/train_classifier.py --out models/bundled/mcli-langid-bert

Needs Debian's python3-torch and the packages fortunes, fortunes-min, fortunes-de, fortunes-es,
fortunes-it, fortunes-br. Deterministic for a given torch build and thread count.
Writes a Hugging Face BERT layout: config.json (id2label/label2id), model.safetensors (fp32,
BertForSequenceClassification names, pooler included so that CLS/mean embeddings work too),
vocab.txt (its own lower-cased WordPiece vocabulary), tokenizer_config.json,
special_tokens_map.json, heldout.jsonl (200 held-out texts with labels), README.md (model card).
"""
import argparse
import json
import math
import os
import random
import time

import torch
import torch.nn.functional as F

import common
import fortunes
from common import log
from models import BertForSequenceClassification
from wordpiece import PAD, WordPiece

LABELS = ["de", "en", "es", "it", "pt"]
NAMES = {"de": "German", "en": "English", "es": "Spanish", "it": "Italian", "pt": "Portuguese"}

# Frequent short words that mark a language (only words that are not also frequent in one of
# the other four). Used to drop entries of a database that are written in another language.
MARKERS = {
    "en": "the and of to is you that it be are with for this what have your was they will".split(),
    "de": "der die das und ist nicht ich sie ein eine den mit von sich auf wenn auch dass wird".split(),
    "es": "el los las una por del con para lo pero como mas cuando esta todo hay muy".split(),
    "it": "il di che non sono della gli mi ho per piu ma anche questo alla cosa sei".split(),
    "pt": "do da em um uma com nao os voce eu ao mais pra isso foi ele tem".split(),
}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(common.REPO, "models", "bundled", "mcli-langid-bert"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--vocab-size", type=int, default=4000)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=512)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--per-lang", type=int, default=4000, help="cap on training texts per language")
    ap.add_argument("--heldout-per-lang", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--span-prob", type=float, default=0.5,
                    help="share of training examples cut to a random span of 2-12 words")
    ap.add_argument("--threads", type=int, default=1)
    return ap.parse_args()


def marker_language(text):
    words = text.lower().replace("'", " ").split()
    counts = {c: sum(1 for w in words if w.strip(".,;:!?\"()") in m) for c, m in MARKERS.items()}
    best = max(counts, key=counts.get)
    return best, counts


def load_data(args):
    rng = random.Random(args.seed)
    train, held, stats = {}, {}, {}
    seen = set()
    for code, dbs in sorted(fortunes.language_dbs().items()):
        texts = []
        dropped = 0
        for name, path in dbs:
            for t in fortunes.read_db(path):
                if len(t) < 15 or fortunes.letter_ratio(t) < 0.7 or t in seen:
                    continue
                seen.add(t)
                best, counts = marker_language(t)
                if best != code and counts[best] >= 2 and counts[best] > counts[code]:
                    dropped += 1
                    continue
                texts.append(t)
        tr = [t for t in texts if not common.is_heldout(t, 10)]
        he = [t for t in texts if common.is_heldout(t, 10)]
        rng.shuffle(tr)
        rng.shuffle(he)
        train[code] = tr[:args.per_lang]
        held[code] = he[:args.heldout_per_lang]
        stats[code] = {"databases": len(dbs), "kept": len(texts), "dropped_other_language": dropped,
                       "train": len(train[code]), "heldout": len(held[code])}
    return train, held, stats


def random_span(text, rng):
    words = text.split(" ")
    n = rng.randint(2, 12)
    if len(words) <= n:
        return text
    s = rng.randrange(0, len(words) - n + 1)
    return " ".join(words[s:s + n])


def batch_tensors(seqs):
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), PAD, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    return ids, mask


@torch.no_grad()
def predict(model, tok, texts, max_len):
    model.eval()
    preds, all_logits = [], []
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = [None] * len(texts)
    for i in range(0, len(order), 64):
        idx = order[i:i + 64]
        ids, mask = batch_tensors([tok.encode(texts[j], max_len) for j in idx])
        logits, _ = model(ids, mask)
        for k, j in enumerate(idx):
            out[j] = logits[k]
    model.train()
    all_logits = torch.stack(out)
    preds = all_logits.argmax(-1).tolist()
    return preds, all_logits


def evaluate(model, tok, held, max_len, transform=None):
    texts, gold = [], []
    for code in LABELS:
        for t in held[code]:
            texts.append(transform(t) if transform else t)
            gold.append(LABELS.index(code))
    preds, _ = predict(model, tok, texts, max_len)
    correct = sum(int(p == g) for p, g in zip(preds, gold))
    confusion = [[0] * len(LABELS) for _ in LABELS]
    for p, g in zip(preds, gold):
        confusion[g][p] += 1
    counts = [gold.count(i) for i in range(len(LABELS))]
    return {"accuracy": correct / len(gold), "n": len(gold), "majority": max(counts) / len(gold),
            "confusion": confusion}


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    common.seed_everything(args.seed)
    os.makedirs(args.out, exist_ok=True)
    t_start = time.time()

    train, held, stats = load_data(args)
    for code in LABELS:
        log("%s: %s" % (code, stats[code]))
    all_train = [t for code in LABELS for t in train[code]]
    tok = WordPiece.train(all_train, args.vocab_size, log=log)
    log("wordpiece: vocab %d" % len(tok.tokens))
    enc_train = {code: [tok.encode(t, args.max_len) for t in train[code]] for code in LABELS}
    n_tokens = sum(len(s) for c in LABELS for s in enc_train[c])
    n_unk = sum(s.count(1) for c in LABELS for s in enc_train[c])
    log("train tokens %d, [UNK] %.3f%%" % (n_tokens, 100.0 * n_unk / n_tokens))

    cfg = {"vocab_size": len(tok.tokens), "hidden_size": args.hidden, "num_hidden_layers": args.layers,
           "num_attention_heads": args.heads, "intermediate_size": args.intermediate,
           "max_position_embeddings": args.max_len, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
           "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
           "pad_token_id": PAD, "num_labels": len(LABELS)}
    model = BertForSequenceClassification(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    log("model: %d parameters" % n_params)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    rng = random.Random(args.seed + 1)
    t_train = time.time()
    ema_loss, ema_acc = None, None
    for step in range(args.steps):
        if step < args.warmup:
            lr = args.lr * (step + 1) / args.warmup
        else:
            frac = (step - args.warmup) / max(1, args.steps - args.warmup)
            lr = args.lr * 0.5 * (1 + math.cos(math.pi * frac))
        for group in opt.param_groups:
            group["lr"] = lr
        seqs, ys = [], []
        for _ in range(args.batch):
            y = rng.randrange(len(LABELS))  # balanced over languages
            code = LABELS[y]
            j = rng.randrange(len(train[code]))
            if rng.random() < args.span_prob:
                seqs.append(tok.encode(random_span(train[code][j], rng), args.max_len))
            else:
                seqs.append(enc_train[code][j])
            ys.append(y)
        ids, mask = batch_tensors(seqs)
        logits, _ = model(ids, mask)
        y = torch.tensor(ys)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        acc = (logits.argmax(-1) == y).float().mean().item()
        ema_loss = loss.item() if ema_loss is None else 0.95 * ema_loss + 0.05 * loss.item()
        ema_acc = acc if ema_acc is None else 0.95 * ema_acc + 0.05 * acc
        if step % 100 == 0 or step == args.steps - 1:
            log("step %d/%d loss %.3f acc %.3f lr %.2e" % (step, args.steps, ema_loss, ema_acc, lr))
    train_seconds = time.time() - t_train

    full = evaluate(model, tok, held, args.max_len)
    span_rng = random.Random(args.seed + 2)
    short = evaluate(model, tok, held, args.max_len, transform=lambda t: random_span(t, span_rng))
    log("held-out accuracy %.4f (n=%d, majority %.3f); short spans %.4f" %
        (full["accuracy"], full["n"], full["majority"], short["accuracy"]))

    # ---- write the Hugging Face layout ----
    tok.save(args.out, args.max_len)
    st_path = os.path.join(args.out, "model.safetensors")
    common.save_safetensors(model.hf_state_dict(), st_path)
    config = {
        "architectures": ["BertForSequenceClassification"],
        "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": None,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": args.hidden,
        "id2label": {str(i): c for i, c in enumerate(LABELS)},
        "initializer_range": 0.02,
        "intermediate_size": args.intermediate,
        "label2id": {c: i for i, c in enumerate(LABELS)},
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": args.max_len,
        "model_type": "bert",
        "num_attention_heads": args.heads,
        "num_hidden_layers": args.layers,
        "pad_token_id": PAD,
        "position_embedding_type": "absolute",
        "problem_type": "single_label_classification",
        "torch_dtype": "float32",
        "type_vocab_size": 2,
        "use_cache": True,
        "vocab_size": len(tok.tokens),
    }
    common.write_json(os.path.join(args.out, "config.json"), config)

    # 200 held-out texts (40 per language, the first ones of the shuffled held-out lists) for e2e tests.
    sample_held = {c: held[c][:40] for c in LABELS}
    sample_eval = evaluate(model, tok, sample_held, args.max_len)
    with open(os.path.join(args.out, "heldout.jsonl"), "w", encoding="utf-8") as f:
        for c in LABELS:
            for t in sample_held[c]:
                f.write(json.dumps({"text": t, "label": c}, ensure_ascii=False) + "\n")
    log("heldout.jsonl accuracy %.3f" % sample_eval["accuracy"])

    # ---- self-check: the written files reproduce the trained model's logits ----
    reloaded = BertForSequenceClassification(cfg)
    res = reloaded.load_state_dict(common.load_safetensors(st_path), strict=True)
    assert not res.missing_keys and not res.unexpected_keys
    reloaded.eval()
    model.eval()
    tok2 = WordPiece.load(args.out)
    probe = ["Wer nicht arbeitet, soll auch nicht essen.", "The early bird catches the worm.",
             "Quien mucho abarca poco aprieta.", "Chi va piano va sano e va lontano.",
             "Quem espera sempre alcança."]
    seqs = [tok2.encode(p, args.max_len) for p in probe]
    assert seqs == [tok.encode(p, args.max_len) for p in probe]
    ids, mask = batch_tensors(seqs)
    with torch.no_grad():
        a, ha = reloaded(ids, mask)
        b, hb = model(ids, mask)
    diff = max((a - b).abs().max().item(), (ha - hb).abs().max().item())
    log("reload check: max |difference| %.3g; probes -> %s" % (diff, [LABELS[i] for i in a.argmax(-1).tolist()]))
    assert diff < 1e-5
    probe_preds = [LABELS[i] for i in a.argmax(-1).tolist()]

    total_seconds = time.time() - t_start
    write_card(args, config, n_params, stats, tok, n_unk / n_tokens, full, short, sample_eval, train_seconds,
               total_seconds, st_path, list(zip(probe, probe_preds)))
    log("wrote %s (model.safetensors %d bytes)" % (args.out, os.path.getsize(st_path)))


def confusion_md(conf):
    head = "| gold \\ predicted | " + " | ".join(LABELS) + " |\n|---|" + "---|" * len(LABELS) + "\n"
    rows = "".join("| %s | %s |\n" % (LABELS[i], " | ".join(str(v) for v in row)) for i, row in enumerate(conf))
    return head + rows


def write_card(args, config, n_params, stats, tok, unk_rate, full, short, sample_eval, train_seconds,
               total_seconds, st_path, probes):
    pk = common.package_versions({"fortunes", "fortunes-min", "fortunes-de", "fortunes-es", "fortunes-it",
                                  "fortunes-br", "python3-torch"})
    size = os.path.getsize(st_path)
    data_rows = "".join("| %s (%s) | %s | %d | %d | %d | %d |\n" % (
        c, NAMES[c], {"en": "fortunes, fortunes-min", "de": "fortunes-de", "es": "fortunes-es",
                      "it": "fortunes-it", "pt": "fortunes-br"}[c], stats[c]["kept"],
        stats[c]["dropped_other_language"], stats[c]["train"], stats[c]["heldout"]) for c in LABELS)
    probe_md = "\n".join("- `%s` -> %s" % (t, p) for t, p in probes)
    versions = ", ".join("%s %s" % kv for kv in sorted(pk.items()) if kv[0] != "python3-torch")
    card = f"""---
license: gpl-2.0-or-later
language: [de, en, es, it, pt]
library_name: mcli
pipeline_tag: text-classification
tags: [bert, language-identification, mcli-bundled, demo]
---
# mcli-langid-bert

A tiny BERT-architecture classifier that ships with mcli so that `make serve` can classify (and embed)
text on a machine with no access to the model hub. It tells which of five languages a text is in:

| id | label | language |
|---|---|---|
""" + "".join("| %d | %s | %s |\n" % (i, c, NAMES[c]) for i, c in enumerate(LABELS)) + f"""
Anything else (French, Dutch, code, ...) still gets one of these five labels. Its embeddings (CLS or mean
pooling of the last hidden states, or the pooler output) are language-aware sentence vectors; they are
not trained for semantic similarity.

## Data
Fortune databases of Debian 12 packages ({versions}), one label per package language.
Entries are cleaned (overstriking removed, whitespace collapsed), entries under 15 characters or with less
than 70 % letters and spaces are dropped, duplicates are dropped, and an entry is dropped when common words
of another of the five languages outnumber those of its own (quotes in English inside the German
collection, for example). 1 in 10 entries is held out by a SHA-256 hash of its text; held-out lists are
shuffled with the seed and capped at {args.heldout_per_lang} per language, training lists at {args.per_lang}.

| label | package | kept | dropped (other language) | train | held out |
|---|---|---|---|---|---|
{data_rows}
Left out entirely: `de/asciiart`, `de/translations`, `de/channel-debian.fortunes`, `it/banner`,
`es/varios.fortunes-pre`, the English `ascii-art`, `translate-me`, `ethnic` and `men-women` databases,
and every offensive (`off/`) database.

## Licence
GPL-2.0-or-later, the most restrictive of the sources: fortunes-de, fortunes-es and fortunes-br are
GPL-2+ (fortunes-es notes its texts are presumed public domain), fortunes-it is declared public domain /
freeware, and fortunes / fortunes-min carry fortune-mod's BSD-3-Clause licence (see
/usr/share/doc/<package>/copyright). The weights and heldout.jsonl are distributed under GPL-2.0-or-later.

## Model
- Architecture: BERT (`BertForSequenceClassification`: post-LayerNorm encoder, exact gelu, learned absolute
  positions, token types, tanh pooler, linear classifier on the pooled [CLS]): {config["num_hidden_layers"]} layers,
  hidden {config["hidden_size"]}, {config["num_attention_heads"]} heads, intermediate {config["intermediate_size"]},
  at most {config["max_position_embeddings"]} tokens, vocabulary {config["vocab_size"]}.
- Parameters: {n_params} ({size} bytes as fp32 safetensors).
- Tokenizer: BERT uncased (lower-case, accents stripped, punctuation split, greedy longest-match WordPiece,
  `##` continuations) over its own {len(tok.tokens)}-token `vocab.txt` learned from the training texts;
  [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4. [UNK] rate on training text: {100 * unk_rate:.3f} %.
  Training text was tokenized with exactly this procedure (tools/train-demo/wordpiece.py).

## Training
- Balanced batches of {args.batch} (a language drawn uniformly, then a text); with probability {args.span_prob} a text is cut
  to a random span of 2-12 words so that short inputs are classified well. AdamW (weight decay 0.01 on matrices),
  peak lr {args.lr}, {args.warmup} warm-up steps, cosine decay, dropout 0.1, gradient clipping 1.0, {args.steps} steps, seed {args.seed}.
- Time: {train_seconds / 60:.1f} min of training, {total_seconds / 60:.1f} min in all (vocabulary, evaluation,
  writing), torch.set_num_threads({args.threads}) under `nice -n 10` on a shared 2-core machine; Debian
  python3-torch {pk.get("python3-torch", torch.__version__)}, model written out in plain torch (tools/train-demo/models.py).

## Metrics (held out)
- Whole fortunes: accuracy **{100 * full["accuracy"]:.2f} %** on {full["n"]} texts; majority-class baseline {100 * full["majority"]:.1f} %.
- Random spans of 2-12 words of the same texts: accuracy {100 * short["accuracy"]:.2f} %.
- `heldout.jsonl` (the first 40 held-out texts of each language, {sample_eval["n"]} in all, `{{"text", "label"}}` per
  line): accuracy **{100 * sample_eval["accuracy"]:.2f} %** (majority baseline {100 * sample_eval["majority"]:.1f} %). A correct
  server should score this within noise (same tokenizer, same fp32 weights: essentially identically).

Confusion on whole held-out fortunes:

{confusion_md(full["confusion"])}
Probes (not from the data):
{probe_md}

## Reproduce
From the repository root, on Debian 12 with `apt-get install python3-torch fortunes fortunes-min fortunes-de
fortunes-es fortunes-it fortunes-br`:

    nice -n 10 /usr/bin/python3 tools/train-demo/train_classifier.py --out models/bundled/mcli-langid-bert

(fixed seeds and one thread: the same torch build reproduces the same weights).
"""
    with open(os.path.join(args.out, "README.md"), "w", encoding="utf-8") as f:
        f.write(card)


if __name__ == "__main__":
    main()
