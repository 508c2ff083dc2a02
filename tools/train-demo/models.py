"""GPT-2 and BERT written out in plain torch, with the parameter names and formulas of
transformers' GPT2LMHeadModel and BertForSequenceClassification, so that the state dicts
saved here load as Hugging Face checkpoints (and in mcli's C engine).

GPT-2 (pre-LayerNorm decoder):
  h = wte[ids] + wpe[pos]
  per block: a = c_attn(ln_1(h)) -> q,k,v; causal softmax(q k^T / sqrt(d_head)) v; h += c_proj(a)
             h += mlp.c_proj(gelu_new(mlp.c_fc(ln_2(h))))
  logits = ln_f(h) @ wte^T           (lm_head tied to wte, not stored)
  Conv1D weights are [in, out]: y = x @ W + b.

BERT (post-LayerNorm encoder):
  e = LayerNorm(word[ids] + position[pos] + token_type[type_ids])
  per layer: a = LayerNorm(h + output.dense(self-attention(h)))      (padding masked out)
             h = LayerNorm(a + output.dense(gelu(intermediate.dense(a))))
  pooled = tanh(pooler.dense(h[:, 0])); logits = classifier(pooled)
  Linear weights are [out, in]. gelu is the exact erf form.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Conv1D(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out).normal_(std=0.02))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], -1)


class GPT2Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n_head = cfg["n_head"]
        self.c_attn = Conv1D(cfg["n_embd"], 3 * cfg["n_embd"])
        self.c_proj = Conv1D(cfg["n_embd"], cfg["n_embd"])
        self.drop = cfg.get("dropout", 0.0)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        hd = C // self.n_head
        q = q.view(B, T, self.n_head, hd).transpose(1, 2)
        k = k.view(B, T, self.n_head, hd).transpose(1, 2)
        v = v.view(B, T, self.n_head, hd).transpose(1, 2)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        att = att.masked_fill(~causal, torch.finfo(att.dtype).min)
        att = F.softmax(att, dim=-1)
        att = F.dropout(att, self.drop, self.training)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        return F.dropout(self.c_proj(y), self.drop, self.training)


class GPT2MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        inner = cfg.get("n_inner") or 4 * cfg["n_embd"]
        self.c_fc = Conv1D(cfg["n_embd"], inner)
        self.c_proj = Conv1D(inner, cfg["n_embd"])
        self.drop = cfg.get("dropout", 0.0)

    def forward(self, x):
        return F.dropout(self.c_proj(gelu_new(self.c_fc(x))), self.drop, self.training)


class GPT2Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        eps = cfg["layer_norm_epsilon"]
        self.ln_1 = nn.LayerNorm(cfg["n_embd"], eps=eps)
        self.attn = GPT2Attention(cfg)
        self.ln_2 = nn.LayerNorm(cfg["n_embd"], eps=eps)
        self.mlp = GPT2MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.wte = nn.Embedding(cfg["vocab_size"], cfg["n_embd"])
        self.wpe = nn.Embedding(cfg["n_positions"], cfg["n_embd"])
        self.h = nn.ModuleList([GPT2Block(cfg) for _ in range(cfg["n_layer"])])
        self.ln_f = nn.LayerNorm(cfg["n_embd"], eps=cfg["layer_norm_epsilon"])
        self.drop = cfg.get("dropout", 0.0)

    def forward(self, ids):
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = F.dropout(self.wte(ids) + self.wpe(pos)[None], self.drop, self.training)
        for block in self.h:
            x = block(x)
        return self.ln_f(x)


class GPT2LMHeadModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.transformer = GPT2Model(cfg)
        n_layer = cfg["n_layer"]
        with torch.no_grad():
            self.transformer.wte.weight.normal_(std=0.02)
            self.transformer.wpe.weight.normal_(std=0.01)
            # GPT-2's scaled init of the residual projections.
            for block in self.transformer.h:
                block.attn.c_proj.weight.normal_(std=0.02 / math.sqrt(2 * n_layer))
                block.mlp.c_proj.weight.normal_(std=0.02 / math.sqrt(2 * n_layer))

    def forward(self, ids):
        h = self.transformer(ids)
        return h @ self.transformer.wte.weight.t()

    def hf_state_dict(self):
        """Names exactly as GPT2LMHeadModel.save_pretrained writes them (lm_head.weight is tied
        to transformer.wte.weight and not stored; the attn.bias mask buffers are not stored)."""
        return {k: v.detach().clone().contiguous() for k, v in self.state_dict().items()}


class BertSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        H = cfg["hidden_size"]
        self.n_head = cfg["num_attention_heads"]
        self.query = nn.Linear(H, H)
        self.key = nn.Linear(H, H)
        self.value = nn.Linear(H, H)
        self.drop = cfg["attention_probs_dropout_prob"]

    def forward(self, x, mask_add):
        B, T, H = x.shape
        hd = H // self.n_head

        def heads(t):
            return t.view(B, T, self.n_head, hd).transpose(1, 2)
        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + mask_add
        att = F.dropout(F.softmax(att, dim=-1), self.drop, self.training)
        return (att @ v).transpose(1, 2).reshape(B, T, H)


class BertSelfOutput(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.dense = nn.Linear(cfg["hidden_size"], cfg["hidden_size"])
        self.LayerNorm = nn.LayerNorm(cfg["hidden_size"], eps=cfg["layer_norm_eps"])
        self.drop = cfg["hidden_dropout_prob"]

    def forward(self, h, inp):
        return self.LayerNorm(F.dropout(self.dense(h), self.drop, self.training) + inp)


class BertAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.self = BertSelfAttention(cfg)
        self.output = BertSelfOutput(cfg)

    def forward(self, x, mask_add):
        return self.output(self.self(x, mask_add), x)


class BertIntermediate(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.dense = nn.Linear(cfg["hidden_size"], cfg["intermediate_size"])

    def forward(self, x):
        return F.gelu(self.dense(x))


class BertOutput(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.dense = nn.Linear(cfg["intermediate_size"], cfg["hidden_size"])
        self.LayerNorm = nn.LayerNorm(cfg["hidden_size"], eps=cfg["layer_norm_eps"])
        self.drop = cfg["hidden_dropout_prob"]

    def forward(self, h, inp):
        return self.LayerNorm(F.dropout(self.dense(h), self.drop, self.training) + inp)


class BertLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attention = BertAttention(cfg)
        self.intermediate = BertIntermediate(cfg)
        self.output = BertOutput(cfg)

    def forward(self, x, mask_add):
        a = self.attention(x, mask_add)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(cfg) for _ in range(cfg["num_hidden_layers"])])

    def forward(self, x, mask_add):
        for layer in self.layer:
            x = layer(x, mask_add)
        return x


class BertEmbeddings(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        H = cfg["hidden_size"]
        self.word_embeddings = nn.Embedding(cfg["vocab_size"], H, padding_idx=cfg["pad_token_id"])
        self.position_embeddings = nn.Embedding(cfg["max_position_embeddings"], H)
        self.token_type_embeddings = nn.Embedding(cfg["type_vocab_size"], H)
        self.LayerNorm = nn.LayerNorm(H, eps=cfg["layer_norm_eps"])
        self.drop = cfg["hidden_dropout_prob"]

    def forward(self, ids, type_ids):
        pos = torch.arange(ids.shape[1], device=ids.device)
        e = self.word_embeddings(ids) + self.position_embeddings(pos)[None] + self.token_type_embeddings(type_ids)
        return F.dropout(self.LayerNorm(e), self.drop, self.training)


class BertPooler(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.dense = nn.Linear(cfg["hidden_size"], cfg["hidden_size"])

    def forward(self, h):
        return torch.tanh(self.dense(h[:, 0]))


class BertModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = BertEncoder(cfg)
        self.pooler = BertPooler(cfg)

    def forward(self, ids, attention_mask, type_ids=None):
        if type_ids is None:
            type_ids = torch.zeros_like(ids)
        # transformers' extended attention mask: 0 where attended, dtype-min where padded.
        mask_add = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        h = self.encoder(self.embeddings(ids, type_ids), mask_add)
        return h, self.pooler(h)


class BertForSequenceClassification(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.bert = BertModel(cfg)
        self.classifier = nn.Linear(cfg["hidden_size"], cfg["num_labels"])
        self.drop = cfg["hidden_dropout_prob"]
        std = cfg["initializer_range"]
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    m.weight.normal_(std=std)
                    m.bias.zero_()
                elif isinstance(m, nn.Embedding):
                    m.weight.normal_(std=std)
                    if m.padding_idx is not None:
                        m.weight[m.padding_idx].zero_()
                elif isinstance(m, nn.LayerNorm):
                    m.weight.fill_(1.0)
                    m.bias.zero_()

    def forward(self, ids, attention_mask, type_ids=None):
        h, pooled = self.bert(ids, attention_mask, type_ids)
        return self.classifier(F.dropout(pooled, self.drop, self.training)), h

    def hf_state_dict(self):
        return {k: v.detach().clone().contiguous() for k, v in self.state_dict().items()}
