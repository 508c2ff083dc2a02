#!/usr/bin/python3
"""Loads the committed bundled models from their files alone (config.json, model.safetensors,
tokenizer files) with the plain-torch reference in models.py, and prints what a correct engine
must reproduce:

  - mcli-langid-bert: accuracy on heldout.jsonl (compare with the model card) and the logits of
    a few probe sentences, with their token ids;
  - mcli-fortune-gpt2: token ids of a prompt and the greedy continuation (ids and text).

    /usr/bin/python3 tools/train-demo/check_bundled.py [--bundled models/bundled] [--json]
"""
import argparse
import json
import os

import torch

import common
from bpe import ByteBPE
from models import BertForSequenceClassification, GPT2LMHeadModel
from wordpiece import WordPiece


def load_bert(d):
    with open(os.path.join(d, "config.json")) as f:
        c = json.load(f)
    cfg = {k: c[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                             "intermediate_size", "max_position_embeddings", "type_vocab_size",
                             "layer_norm_eps", "hidden_dropout_prob", "attention_probs_dropout_prob",
                             "initializer_range", "pad_token_id")}
    cfg["num_labels"] = len(c["id2label"])
    m = BertForSequenceClassification(cfg)
    m.load_state_dict(common.load_safetensors(os.path.join(d, "model.safetensors")), strict=True)
    m.eval()
    labels = [c["id2label"][str(i)] for i in range(cfg["num_labels"])]
    return m, WordPiece.load(d), labels, c["max_position_embeddings"]


def load_gpt2(d):
    with open(os.path.join(d, "config.json")) as f:
        c = json.load(f)
    cfg = {k: c[k] for k in ("vocab_size", "n_embd", "n_layer", "n_head", "n_positions", "layer_norm_epsilon")}
    m = GPT2LMHeadModel(cfg)
    m.load_state_dict(common.load_safetensors(os.path.join(d, "model.safetensors")), strict=True)
    m.eval()
    return m, ByteBPE.load(d), c


@torch.no_grad()
def check_bert(d):
    model, tok, labels, max_len = load_bert(d)
    rows = [json.loads(line) for line in open(os.path.join(d, "heldout.jsonl"), encoding="utf-8")]
    correct = 0
    for r in rows:
        ids = tok.encode(r["text"], max_len)
        logits, _ = model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))
        correct += int(labels[logits[0].argmax().item()] == r["label"])
    probes = ["Hello, how are you today?", "Ich habe keine Zeit.", "¿Dónde está la biblioteca?",
              "Non ho capito niente.", "Eu não sei nada."]
    out = {"heldout_accuracy": correct / len(rows), "heldout_n": len(rows), "probes": []}
    for p in probes:
        ids = tok.encode(p, max_len)
        logits, h = model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))
        out["probes"].append({"text": p, "ids": ids, "logits": [round(v, 5) for v in logits[0].tolist()],
                              "label": labels[logits[0].argmax().item()],
                              "cls_embedding_head": [round(v, 5) for v in h[0, 0, :4].tolist()]})
    return out


@torch.no_grad()
def check_gpt2(d, n_new=20):
    model, tok, c = load_gpt2(d)
    prompt = "The meaning of life is"
    out = {}
    # As transformers' GPT-2 tokenizer encodes a prompt (no BOS added), and with the
    # <|endoftext|> that preceded every fortune in training.
    for key, ids in (("plain", tok.encode(prompt)), ("with_bos", [tok.eot_id] + tok.encode(prompt))):
        n_prompt = len(ids)
        for _ in range(n_new):
            nxt = model(torch.tensor([ids]))[0, -1].argmax().item()
            ids.append(nxt)
        first = model(torch.tensor([ids[:n_prompt]]))[0, -1]
        out[key] = {"prompt": prompt, "prompt_ids": ids[:n_prompt], "greedy_ids": ids[n_prompt:],
                    "greedy_text": tok.decode(ids[n_prompt:]),
                    "first_step_top5": torch.topk(first, 5).indices.tolist(),
                    "first_step_logits_head": [round(v, 5) for v in first[:4].tolist()]}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundled", default=os.path.join(common.REPO, "models", "bundled"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    res = {}
    d = os.path.join(args.bundled, "mcli-langid-bert")
    if os.path.exists(os.path.join(d, "model.safetensors")):
        res["mcli-langid-bert"] = check_bert(d)
    d = os.path.join(args.bundled, "mcli-fortune-gpt2")
    if os.path.exists(os.path.join(d, "model.safetensors")):
        res["mcli-fortune-gpt2"] = check_gpt2(d)
    print(json.dumps(res, indent=None if args.json else 2, ensure_ascii=False))


if __name__ == "__main__":
    main()
