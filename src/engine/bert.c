/* bert.c - BERT and DistilBERT forward passes and heads (see bert.h for the maths, the packing
 * of batches and the memory rules). */
#include "engine/bert.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels.h"

/* A batch larger than this many tokens is refused (scratch is chunked, but the caller's output
 * for pooling NONE is sum(len) x H floats and the loop counters are ints). */
#define BERT_MAX_BATCH_TOKENS (1 << 24)

typedef struct {
    const float *wq, *wk, *wv; /* (H, H) each, nn.Linear (out, in) */
    float *bqkv;               /* (3H) owned: bq | bk | bv, so one pass adds all three */
    const float *wo, *bo;      /* (H, H), (H) attention output dense */
    const float *ln1_g, *ln1_b;/* (H) attention LayerNorm (BERT attention.output.LayerNorm, DistilBERT sa_layer_norm) */
    const float *w1, *b1;      /* (I, H), (I) */
    const float *w2, *b2;      /* (H, I), (H) */
    const float *ln2_g, *ln2_b;/* (H) output LayerNorm */
    /* the same six matrices re-laid out by kern_pack_panels (into bert_model.packed), or NULL */
    const float *wq_p, *wk_p, *wv_p, *wo_p, *w1_p, *w2_p;
} bert_layer;

struct bert_model {
    bool distil;               /* DistilBERT names and heads */
    const char *name;          /* "bert" / "distilbert" for messages */
    int H, L, NH, HD, I, V, P, TV;
    int pos_offset;            /* first position id (0; padding_idx + 1 for RoBERTa-style models) */
    float eps;
    kern_act act;
    const float *wte;          /* (V, H) word embeddings; also the tied MLM decoder */
    const float *wpe;          /* (P, H) positions (file, or wpe_owned) */
    float *wpe_owned;          /* (P, H) computed sinusoidal table when the file has none */
    const float *wtt;          /* (TV, H) token types, BERT only (NULL for DistilBERT) */
    const float *emb_g, *emb_b;/* (H) embeddings LayerNorm */
    bert_layer *layers;        /* [L] owned array */
    float *packed;             /* owned: panel-packed layer matrices of small models, or NULL */
    /* classification: BERT pooler (dense + tanh) or DistilBERT pre_classifier (+ ReLU), then classifier */
    const float *pre_w, *pre_b;/* (H, H), (H) */
    const float *cls_w, *cls_b;/* (n_labels, H), (n_labels) */
    int n_labels;              /* 0 when there is no trained classifier */
    bool multi_label;          /* sigmoid instead of softmax */
    /* masked LM: transform dense + act + LayerNorm, decoder tied to wte + bias */
    const float *mlm_w, *mlm_b;/* (H, H), (H) */
    const float *mlm_g, *mlm_beta; /* (H) */
    const float *mlm_dec;      /* (V, H) = wte */
    const float *mlm_bias;     /* (V) */
    int64_t n_params;
};

int bert_hidden_size(const bert_model *b)
{
    return b->H;
}

int bert_max_tokens(const bert_model *b)
{
    return b->P - b->pos_offset;
}

/* ---------------------------------------------------------------- loading */

typedef struct {
    const mcli_weights *w;
    const char *prefix;       /* "bert" / "distilbert" */
    int64_t n_params;
} binder;

/* Looks up canonical name `name` (printf-style) with shape (d0) if d1 == 0, else (d0, d1).
 * Absent: *out = NULL and, if required, MCLI_ERR_FORMAT. Wrong shape or non-float: always an error. */
static mcli_status bind(binder *bd, const float **out, bool required, int64_t d0, int64_t d1, mcli_err *err,
                        const char *fmt, ...) MCLI_PRINTF(7, 8);

static mcli_status bind(binder *bd, const float **out, bool required, int64_t d0, int64_t d1, mcli_err *err,
                        const char *fmt, ...)
{
    char name[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    *out = NULL;
    const mcli_tensor *t = weights_lookup(bd->w, bd->prefix, name);
    if (!t) {
        if (required)
            return mcli_fail(err, MCLI_ERR_FORMAT, "the weights have no tensor %s (nor %s.%s): not a complete %s checkpoint",
                             name, bd->prefix, name, bd->prefix);
        return MCLI_OK;
    }
    int nd = d1 ? 2 : 1;
    if (t->ndim != nd || t->shape[0] != d0 || (nd == 2 && t->shape[1] != d1)) {
        char got[96] = "";
        size_t used = 0;
        for (int i = 0; i < t->ndim && i < MCLI_MAX_DIMS && used < sizeof got; i++)
            used += (size_t)snprintf(got + used, sizeof got - used, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        if (nd == 2)
            return mcli_fail(err, MCLI_ERR_FORMAT, "tensor %s has shape (%s), expected (%lld, %lld) from config.json",
                             t->name, got, (long long)d0, (long long)d1);
        return mcli_fail(err, MCLI_ERR_FORMAT, "tensor %s has shape (%s), expected (%lld) from config.json", t->name,
                         got, (long long)d0);
    }
    if (!t->data)
        return mcli_fail(err, MCLI_ERR_FORMAT, "tensor %s has dtype %s; a floating-point tensor is needed", t->name,
                         mcli_dtype_name(t->file_dtype));
    bd->n_params += (int64_t)t->numel;
    *out = t->data;
    return MCLI_OK;
}

static kern_act act_of(mcli_activation a)
{
    switch (a) {
    case MCLI_ACT_GELU:
        return KERN_ACT_GELU_ERF;
    case MCLI_ACT_GELU_NEW:
        return KERN_ACT_GELU_TANH;
    case MCLI_ACT_RELU:
        return KERN_ACT_RELU;
    }
    return KERN_ACT_GELU_ERF;
}

/* transformers' create_sinusoidal_embeddings: angle = pos / 10000^(2 (j / 2) / dim), sin on even
 * columns, cos on odd ones, computed in double and stored as float. */
static void sinusoidal_positions(float *out, int P, int H)
{
    for (int pos = 0; pos < P; pos++)
        for (int j = 0; j < H; j++) {
            double angle = pos / pow(10000.0, 2.0 * (j / 2) / H);
            out[(size_t)pos * H + j] = (float)((j % 2 == 0) ? sin(angle) : cos(angle));
        }
}

static mcli_status bind_layers(bert_model *b, binder *bd, mcli_err *err)
{
    const int H = b->H, I = b->I;
    for (int l = 0; l < b->L; l++) {
        bert_layer *y = &b->layers[l];
        const float *bq, *bk, *bv;
        mcli_status s;
        if (b->distil) {
            const char *p = "transformer.layer";
            if ((s = bind(bd, &y->wq, true, H, H, err, "%s.%d.attention.q_lin.weight", p, l)) ||
                (s = bind(bd, &bq, true, H, 0, err, "%s.%d.attention.q_lin.bias", p, l)) ||
                (s = bind(bd, &y->wk, true, H, H, err, "%s.%d.attention.k_lin.weight", p, l)) ||
                (s = bind(bd, &bk, true, H, 0, err, "%s.%d.attention.k_lin.bias", p, l)) ||
                (s = bind(bd, &y->wv, true, H, H, err, "%s.%d.attention.v_lin.weight", p, l)) ||
                (s = bind(bd, &bv, true, H, 0, err, "%s.%d.attention.v_lin.bias", p, l)) ||
                (s = bind(bd, &y->wo, true, H, H, err, "%s.%d.attention.out_lin.weight", p, l)) ||
                (s = bind(bd, &y->bo, true, H, 0, err, "%s.%d.attention.out_lin.bias", p, l)) ||
                (s = bind(bd, &y->ln1_g, true, H, 0, err, "%s.%d.sa_layer_norm.weight", p, l)) ||
                (s = bind(bd, &y->ln1_b, true, H, 0, err, "%s.%d.sa_layer_norm.bias", p, l)) ||
                (s = bind(bd, &y->w1, true, I, H, err, "%s.%d.ffn.lin1.weight", p, l)) ||
                (s = bind(bd, &y->b1, true, I, 0, err, "%s.%d.ffn.lin1.bias", p, l)) ||
                (s = bind(bd, &y->w2, true, H, I, err, "%s.%d.ffn.lin2.weight", p, l)) ||
                (s = bind(bd, &y->b2, true, H, 0, err, "%s.%d.ffn.lin2.bias", p, l)) ||
                (s = bind(bd, &y->ln2_g, true, H, 0, err, "%s.%d.output_layer_norm.weight", p, l)) ||
                (s = bind(bd, &y->ln2_b, true, H, 0, err, "%s.%d.output_layer_norm.bias", p, l)))
                return s;
        } else {
            const char *p = "encoder.layer";
            if ((s = bind(bd, &y->wq, true, H, H, err, "%s.%d.attention.self.query.weight", p, l)) ||
                (s = bind(bd, &bq, true, H, 0, err, "%s.%d.attention.self.query.bias", p, l)) ||
                (s = bind(bd, &y->wk, true, H, H, err, "%s.%d.attention.self.key.weight", p, l)) ||
                (s = bind(bd, &bk, true, H, 0, err, "%s.%d.attention.self.key.bias", p, l)) ||
                (s = bind(bd, &y->wv, true, H, H, err, "%s.%d.attention.self.value.weight", p, l)) ||
                (s = bind(bd, &bv, true, H, 0, err, "%s.%d.attention.self.value.bias", p, l)) ||
                (s = bind(bd, &y->wo, true, H, H, err, "%s.%d.attention.output.dense.weight", p, l)) ||
                (s = bind(bd, &y->bo, true, H, 0, err, "%s.%d.attention.output.dense.bias", p, l)) ||
                (s = bind(bd, &y->ln1_g, true, H, 0, err, "%s.%d.attention.output.LayerNorm.weight", p, l)) ||
                (s = bind(bd, &y->ln1_b, true, H, 0, err, "%s.%d.attention.output.LayerNorm.bias", p, l)) ||
                (s = bind(bd, &y->w1, true, I, H, err, "%s.%d.intermediate.dense.weight", p, l)) ||
                (s = bind(bd, &y->b1, true, I, 0, err, "%s.%d.intermediate.dense.bias", p, l)) ||
                (s = bind(bd, &y->w2, true, H, I, err, "%s.%d.output.dense.weight", p, l)) ||
                (s = bind(bd, &y->b2, true, H, 0, err, "%s.%d.output.dense.bias", p, l)) ||
                (s = bind(bd, &y->ln2_g, true, H, 0, err, "%s.%d.output.LayerNorm.weight", p, l)) ||
                (s = bind(bd, &y->ln2_b, true, H, 0, err, "%s.%d.output.LayerNorm.bias", p, l)))
                return s;
        }
        y->bqkv = malloc((size_t)3 * H * sizeof *y->bqkv);
        if (!y->bqkv)
            return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory for layer %d biases", l);
        memcpy(y->bqkv, bq, (size_t)H * sizeof *bq);
        memcpy(y->bqkv + H, bk, (size_t)H * sizeof *bk);
        memcpy(y->bqkv + 2 * H, bv, (size_t)H * sizeof *bv);
    }
    return MCLI_OK;
}

/* Small models (bert-tiny: 1.6 MB of layer matrices) keep a panel-packed copy of their layer
 * matrices: calls small enough to run on one thread then skip OpenBLAS's per-call packing of the
 * weights, which was ~27% of bert-tiny's time at 32 tokens. The copy costs at most
 * BERT_PACK_MAX_FLOATS floats; bigger models use OpenBLAS only (their RSS budget has no room
 * for a second copy of the weights). */
#define BERT_PACK_MAX_FLOATS (2u * 1024u * 1024u)

static mcli_status pack_small(bert_model *b, mcli_err *err)
{
    const size_t H = (size_t)b->H, I = (size_t)b->I, per = 4 * H * H + 2 * H * I;
    if (H % 16 || I % 16 || per * (size_t)b->L > BERT_PACK_MAX_FLOATS)
        return MCLI_OK;
    b->packed = malloc(per * (size_t)b->L * sizeof *b->packed);
    if (!b->packed)
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory packing %zu floats of layer weights", per * (size_t)b->L);
    float *p = b->packed;
    for (int l = 0; l < b->L; l++) {
        bert_layer *y = &b->layers[l];
        const float *src[6] = {y->wq, y->wk, y->wv, y->wo, y->w1, y->w2};
        const float **dst[6] = {&y->wq_p, &y->wk_p, &y->wv_p, &y->wo_p, &y->w1_p, &y->w2_p};
        const int rows[6] = {b->H, b->H, b->H, b->H, b->I, b->H}, cols[6] = {b->H, b->H, b->H, b->H, b->H, b->I};
        for (int i = 0; i < 6; i++) {
            kern_pack_panels(p, src[i], rows[i], cols[i]);
            *dst[i] = p;
            p += (size_t)rows[i] * cols[i];
        }
    }
    return MCLI_OK;
}

/* Binds the optional heads and decides which tasks the weights really support. */
static mcli_status bind_heads(bert_model *b, binder *bd, mcli_config *c, mcli_err *err)
{
    const int H = b->H, V = b->V;
    mcli_status s;
    /* Classification: the classifier's row count is the number of labels. */
    const mcli_tensor *cls = weights_lookup(bd->w, bd->prefix, "classifier.weight");
    int n_labels = 0;
    if (cls && cls->ndim == 2 && cls->shape[1] == H && cls->shape[0] >= 1 && cls->shape[0] <= 100000)
        n_labels = (int)cls->shape[0];
    else if (cls)
        return mcli_fail(err, MCLI_ERR_FORMAT, "tensor %s must be (n_labels, %d)", cls->name, H);
    if (n_labels > 0) {
        if (b->distil)
            s = bind(bd, &b->pre_w, false, H, H, err, "pre_classifier.weight");
        else
            s = bind(bd, &b->pre_w, false, H, H, err, "pooler.dense.weight");
        if (s)
            return s;
        if (b->distil)
            s = bind(bd, &b->pre_b, b->pre_w != NULL, H, 0, err, "pre_classifier.bias");
        else
            s = bind(bd, &b->pre_b, b->pre_w != NULL, H, 0, err, "pooler.dense.bias");
        if (s)
            return s;
        if ((s = bind(bd, &b->cls_w, true, n_labels, H, err, "classifier.weight")) ||
            (s = bind(bd, &b->cls_b, true, n_labels, 0, err, "classifier.bias")))
            return s;
        if (!b->pre_w) { /* a classifier without its pooler/pre_classifier cannot run */
            b->cls_w = b->cls_b = NULL;
            n_labels = 0;
        }
    } else if (!b->distil) {
        /* The pooler alone still counts as a parameter of the model (and has_pooler). */
        if ((s = bind(bd, &b->pre_w, false, H, H, err, "pooler.dense.weight")) ||
            (s = bind(bd, &b->pre_b, b->pre_w != NULL, H, 0, err, "pooler.dense.bias")))
            return s;
    }
    if (n_labels > 0) {
        if (c->n_labels == 0) {
            /* No id2label/num_labels in config.json: transformers names them LABEL_i. */
            c->labels = calloc((size_t)n_labels, sizeof *c->labels);
            if (!c->labels)
                return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory for labels");
            c->n_labels = n_labels;
            for (int i = 0; i < n_labels; i++) {
                char name[32];
                snprintf(name, sizeof name, "LABEL_%d", i);
                c->labels[i] = strdup(name);
                if (!c->labels[i])
                    return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory for labels");
            }
        } else if (c->n_labels != n_labels) {
            return mcli_fail(err, MCLI_ERR_FORMAT,
                             "config.json names %d labels but the classifier has %d outputs", c->n_labels, n_labels);
        }
        b->n_labels = n_labels;
        b->multi_label = c->multi_label;
    }
    /* Masked LM. */
    const char *tw = b->distil ? "vocab_transform.weight" : "cls.predictions.transform.dense.weight";
    if ((s = bind(bd, &b->mlm_w, false, H, H, err, "%s", tw)))
        return s;
    if (b->mlm_w) {
        if (b->distil) {
            if ((s = bind(bd, &b->mlm_b, true, H, 0, err, "vocab_transform.bias")) ||
                (s = bind(bd, &b->mlm_g, true, H, 0, err, "vocab_layer_norm.weight")) ||
                (s = bind(bd, &b->mlm_beta, true, H, 0, err, "vocab_layer_norm.bias")) ||
                (s = bind(bd, &b->mlm_bias, true, V, 0, err, "vocab_projector.bias")))
                return s;
        } else {
            if ((s = bind(bd, &b->mlm_b, true, H, 0, err, "cls.predictions.transform.dense.bias")) ||
                (s = bind(bd, &b->mlm_g, true, H, 0, err, "cls.predictions.transform.LayerNorm.weight")) ||
                (s = bind(bd, &b->mlm_beta, true, H, 0, err, "cls.predictions.transform.LayerNorm.bias")) ||
                (s = bind(bd, &b->mlm_bias, false, V, 0, err, "cls.predictions.bias")))
                return s;
            /* older checkpoints keep the bias on the decoder */
            if (!b->mlm_bias && (s = bind(bd, &b->mlm_bias, true, V, 0, err, "cls.predictions.decoder.bias")))
                return s;
        }
        /* The decoder is tied to the word embeddings (tie_word_embeddings defaults to true for both
         * architectures and transformers re-ties after loading), so a saved decoder copy is ignored. */
        b->mlm_dec = b->wte;
    }
    return MCLI_OK;
}

void bert_free(bert_model *b)
{
    if (!b)
        return;
    if (b->layers)
        for (int l = 0; l < b->L; l++)
            free(b->layers[l].bqkv);
    free(b->layers);
    free(b->wpe_owned);
    free(b->packed);
    free(b);
}

mcli_status bert_load(mcli_model *m, mcli_err *err)
{
    mcli_config *c = &m->config;
    mcli_status s;
    bert_model *b = calloc(1, sizeof *b);
    if (!b)
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory loading the encoder");
    b->distil = c->arch == MCLI_ARCH_DISTILBERT;
    b->name = b->distil ? "distilbert" : "bert";
    b->H = c->hidden_size;
    b->L = c->n_layers;
    b->NH = c->n_heads;
    b->I = c->intermediate_size;
    b->V = c->vocab_size;
    b->P = c->max_positions;
    b->TV = b->distil ? 0 : c->type_vocab_size;
    b->eps = c->layer_norm_eps;
    b->act = act_of(c->activation);
    if (b->H <= 0 || b->NH <= 0 || b->H % b->NH != 0) {
        s = mcli_fail(err, MCLI_ERR_FORMAT, "hidden size %d is not a multiple of the %d attention heads", b->H, b->NH);
        goto fail;
    }
    b->HD = b->H / b->NH;
    b->layers = calloc((size_t)b->L, sizeof *b->layers);
    if (!b->layers) {
        s = mcli_fail(err, MCLI_ERR_NOMEM, "out of memory for %d layers", b->L);
        goto fail;
    }
    binder bd = {.w = m->weights, .prefix = b->name, .n_params = 0};
    if ((s = bind(&bd, &b->wte, true, b->V, b->H, err, "embeddings.word_embeddings.weight")) ||
        (s = bind(&bd, &b->wpe, !(b->distil && c->sinusoidal_pos_embds), b->P, b->H, err,
                  "embeddings.position_embeddings.weight")) ||
        (s = bind(&bd, &b->emb_g, true, b->H, 0, err, "embeddings.LayerNorm.weight")) ||
        (s = bind(&bd, &b->emb_b, true, b->H, 0, err, "embeddings.LayerNorm.bias")))
        goto fail;
    if (!b->distil && (s = bind(&bd, &b->wtt, true, b->TV, b->H, err, "embeddings.token_type_embeddings.weight")))
        goto fail;
    if (!b->wpe) {
        b->wpe_owned = malloc((size_t)b->P * b->H * sizeof *b->wpe_owned);
        if (!b->wpe_owned) {
            s = mcli_fail(err, MCLI_ERR_NOMEM, "out of memory for %d sinusoidal positions", b->P);
            goto fail;
        }
        sinusoidal_positions(b->wpe_owned, b->P, b->H);
        b->wpe = b->wpe_owned;
    }
    if ((s = bind_layers(b, &bd, err)) || (s = bind_heads(b, &bd, c, err)) || (s = pack_small(b, err)))
        goto fail;
    b->n_params = bd.n_params;

    m->bert = b;
    m->info.tasks = MCLI_TASK_EMBED | (b->n_labels ? MCLI_TASK_CLASSIFY : 0u) | (b->mlm_w ? MCLI_TASK_FILL_MASK : 0u);
    m->info.n_params = b->n_params;
    m->info.has_pooler = !b->distil && b->pre_w != NULL;
    return MCLI_OK;
fail:
    bert_free(b);
    return s;
}

/* ---------------------------------------------------------------- forward */

typedef struct {
    float *x;      /* (N, H) hidden states */
    float *ctx;    /* (N, H) attention context */
    float *big;    /* (N, max(3H, I)): q|k|v rows (stride 3H), later the FFN activations (stride I) */
    float *scores; /* (Tmax, Tmax) */
    float *head;   /* (head_rows, max(H, ...)) scratch of the heads */
} scratch;

/* Checks every sequence; sets *total and *tmax. */
static mcli_status check_seqs(const bert_model *b, const mcli_seq *seqs, size_t n, size_t *total, size_t *tmax,
                              mcli_err *err)
{
    if (!seqs || n == 0)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "no input sequences");
    size_t sum = 0, mx = 0;
    size_t limit = (size_t)bert_max_tokens(b);
    for (size_t i = 0; i < n; i++) {
        const mcli_seq *q = &seqs[i];
        if (!q->ids || q->len == 0)
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "input %zu is empty (tokenize with special tokens first)", i);
        if (q->len > limit)
            return mcli_fail(err, MCLI_ERR_TOO_LARGE,
                             "input %zu has %zu tokens; this %s model takes at most %zu (truncate the text)", i, q->len,
                             b->name, limit);
        for (size_t t = 0; t < q->len; t++) {
            if (q->ids[t] < 0 || q->ids[t] >= b->V)
                return mcli_fail(err, MCLI_ERR_INVALID_ARG, "input %zu: token id %d at %zu is outside the vocabulary [0, %d)",
                                 i, (int)q->ids[t], t, b->V);
            if (q->type_ids && b->wtt && (q->type_ids[t] < 0 || q->type_ids[t] >= b->TV))
                return mcli_fail(err, MCLI_ERR_INVALID_ARG, "input %zu: token type %d at %zu is outside [0, %d)", i,
                                 (int)q->type_ids[t], t, b->TV);
        }
        sum += q->len;
        mx = q->len > mx ? q->len : mx;
        if (sum > BERT_MAX_BATCH_TOKENS)
            return mcli_fail(err, MCLI_ERR_TOO_LARGE, "the batch has more than %d tokens; split it", BERT_MAX_BATCH_TOKENS);
    }
    *total = sum;
    *tmax = mx;
    return MCLI_OK;
}

/* Allocates the scratch for chunks of at most `tokens` tokens, sequences of at most tmax
 * tokens, and `head_floats` floats for the heads. One allocation; free(s->x). */
static mcli_status scratch_new(const bert_model *b, size_t tokens, size_t tmax, size_t head_floats, scratch *s,
                               mcli_err *err)
{
    size_t wide = (size_t)(3 * b->H > b->I ? 3 * b->H : b->I);
    size_t nx = tokens * (size_t)b->H, nbig = tokens * wide, nsc = tmax * tmax;
    size_t total = 2 * nx + nbig + nsc + head_floats;
    float *mem = malloc(total * sizeof *mem);
    if (!mem)
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory for %zu floats of activations (%zu tokens)", total, tokens);
    s->x = mem;
    s->ctx = mem + nx;
    s->big = s->ctx + nx;
    s->scores = s->big + nbig;
    s->head = s->scores + nsc;
    return MCLI_OK;
}

/* Below this many tokens in a chunk (the one-thread regime of small models) the packed weights
 * are used; above it OpenBLAS, whose threads then pay off. */
#define BERT_PACKED_MAX_TOKENS 256

/* y (M, N) [+]= x (M, K) @ w^T, through the packed copy wp when `packed`, else OpenBLAS. */
static void linear(bool packed, float *y, size_t ldy, const float *x, size_t ldx, const float *w, const float *wp,
                   int M, int N, int K, bool accumulate)
{
    if (packed)
        kern_linear_packed(y, ldy, x, ldx, wp, M, N, K, accumulate);
    else
        kern_linear(y, ldy, x, ldx, w, M, N, K, accumulate);
}

/* Runs the encoder over seqs[0..n) packed into s->x (N, H), N = sum of lengths.
 * Heads that read a few rows only compute the last layer's attention output and FFN for them
 * (for distilbert-base that skips ~12% of the work): cls_only keeps the first token of each
 * sequence (on return s->x rows 0..n-1), rows[0..n_rows) keeps those packed row indices (in
 * increasing order; on return s->x rows 0..n_rows-1). Otherwise every row is computed. */
static void encode(const bert_model *b, const mcli_seq *seqs, size_t n, scratch *s, bool cls_only,
                   const size_t *rows, size_t n_rows)
{
    const int H = b->H, HD = b->HD, I = b->I;
    const size_t H3 = (size_t)3 * H;
    int N = 0;
    /* embeddings */
    for (size_t i = 0; i < n; i++) {
        for (size_t t = 0; t < seqs[i].len; t++, N++) {
            float *row = s->x + (size_t)N * H;
            memcpy(row, b->wte + (size_t)seqs[i].ids[t] * H, (size_t)H * sizeof *row);
            kern_axpy(row, 1.0f, b->wpe + ((size_t)t + (size_t)b->pos_offset) * H, H);
            if (b->wtt)
                kern_axpy(row, 1.0f, b->wtt + (size_t)(seqs[i].type_ids ? seqs[i].type_ids[t] : 0) * H, H);
        }
    }
    kern_add_layernorm(s->x, (size_t)H, NULL, b->emb_g, b->emb_b, N, H, b->eps);
    const float scale = 1.0f / sqrtf((float)HD);
    const bool pk = b->packed && N <= BERT_PACKED_MAX_TOKENS;
    for (int l = 0; l < b->L; l++) {
        const bert_layer *y = &b->layers[l];
        float *qkv = s->big;
        /* q | k | v (N, 3H) = bias, then += three products into column slices */
        kern_fill_rows(qkv, H3, y->bqkv, N, 3 * H);
        linear(pk, qkv, H3, s->x, (size_t)H, y->wq, y->wq_p, N, H, H, true);
        linear(pk, qkv + H, H3, s->x, (size_t)H, y->wk, y->wk_p, N, H, H, true);
        linear(pk, qkv + 2 * H, H3, s->x, (size_t)H, y->wv, y->wv_p, N, H, H, true);
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            int T = (int)seqs[i].len;
            for (int h = 0; h < b->NH; h++) {
                const float *q = qkv + off * H3 + (size_t)h * HD;
                kern_attention(s->ctx + off * H + (size_t)h * HD, (size_t)H, q, H3, q + H, H3, q + 2 * H, H3, T, HD,
                               scale, s->scores);
            }
            off += seqs[i].len;
        }
        if ((cls_only || rows) && l == b->L - 1) {
            /* row i <- row src_i with src_i >= i increasing, so the copies can go in place */
            size_t keep = cls_only ? n : n_rows;
            off = 0;
            for (size_t i = 0; i < keep; i++) {
                size_t src = cls_only ? off : rows[i];
                if (src != i) {
                    memcpy(s->x + i * H, s->x + src * H, (size_t)H * sizeof *s->x);
                    memcpy(s->ctx + i * H, s->ctx + src * H, (size_t)H * sizeof *s->ctx);
                }
                if (cls_only)
                    off += seqs[i].len;
            }
            N = (int)keep;
        }
        /* x = LN(x + ctx Wo^T + bo) */
        linear(pk, s->x, (size_t)H, s->ctx, (size_t)H, y->wo, y->wo_p, N, H, H, true);
        kern_add_layernorm(s->x, (size_t)H, y->bo, y->ln1_g, y->ln1_b, N, H, b->eps);
        /* x = LN(x + act(x W1^T + b1) W2^T + b2) */
        float *ffn = s->big;
        kern_fill_rows(ffn, (size_t)I, y->b1, N, I);
        linear(pk, ffn, (size_t)I, s->x, (size_t)H, y->w1, y->w1_p, N, I, H, true);
        kern_bias_act(ffn, (size_t)I, NULL, N, I, b->act);
        linear(pk, s->x, (size_t)H, ffn, (size_t)I, y->w2, y->w2_p, N, H, I, true);
        kern_add_layernorm(s->x, (size_t)H, y->b2, y->ln2_g, y->ln2_b, N, H, b->eps);
    }
}

/* Threads for one call. Below BERT_MT_MIN_MACS multiply-adds in the FFN product (bert-tiny up
 * to ~250 tokens), waking OpenBLAS's second thread for every product costs more than it saves,
 * and far more on a busy machine (measured: bert-tiny s32 at 2 threads 4x slower than at 1 with
 * the load average at 14), so such calls run on the caller's thread only. OpenBLAS's count is
 * process-wide: it is set for the call and put back afterwards; a concurrent call may see the
 * other value, which only changes its speed. */
#define BERT_MT_MIN_MACS (16.0 * 1024 * 1024)

typedef struct {
    int prev, want;
} call_threads;

static call_threads threads_begin(const mcli_model *m, size_t chunk_tokens)
{
    const bert_model *b = m->bert;
    call_threads t = {kern_get_threads(), m->n_threads > 0 ? m->n_threads : 1};
    if ((double)chunk_tokens * b->H * b->I < BERT_MT_MIN_MACS)
        t.want = 1;
    if (t.want != t.prev)
        kern_set_threads(t.want);
    return t;
}

static void threads_end(call_threads t)
{
    if (t.want != t.prev)
        kern_set_threads(t.prev);
}

/* Chunk planning: consecutive sequences whose lengths sum to at most `cap` tokens. */
static size_t chunk_end(const mcli_seq *seqs, size_t n, size_t start, size_t cap)
{
    size_t sum = 0, i = start;
    for (; i < n; i++) {
        if (i > start && sum + seqs[i].len > cap)
            break;
        sum += seqs[i].len;
    }
    return i;
}

static size_t chunk_cap(size_t total, size_t tmax)
{
    size_t cap = BERT_CHUNK_TOKENS > tmax ? BERT_CHUNK_TOKENS : tmax;
    return total < cap ? total : cap;
}

mcli_status bert_embed(const mcli_model *m, const mcli_seq *seqs, size_t n, mcli_pooling pool, bool normalize,
                       float *out, mcli_err *err)
{
    const bert_model *b = m->bert;
    size_t total, tmax;
    scratch s;
    mcli_status st = check_seqs(b, seqs, n, &total, &tmax, err);
    if (st)
        return st;
    if (!out)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "no output buffer");
    size_t cap = chunk_cap(total, tmax);
    if ((st = scratch_new(b, cap, tmax, 0, &s, err)))
        return st;
    call_threads th = threads_begin(m, cap);
    const size_t H = (size_t)b->H;
    float *dst = out;
    for (size_t start = 0; start < n;) {
        size_t end = chunk_end(seqs, n, start, cap);
        encode(b, seqs + start, end - start, &s, false, NULL, 0);
        const float *row = s.x;
        for (size_t i = start; i < end; i++) {
            size_t T = seqs[i].len;
            if (pool == MCLI_POOL_NONE) {
                memcpy(dst, row, T * H * sizeof *dst);
                if (normalize)
                    for (size_t t = 0; t < T; t++)
                        kern_l2_normalize(dst + t * H, H);
                dst += T * H;
            } else {
                if (pool == MCLI_POOL_CLS) {
                    memcpy(dst, row, H * sizeof *dst);
                } else { /* mean over the real tokens (the attention mask) */
                    memset(dst, 0, H * sizeof *dst);
                    for (size_t t = 0; t < T; t++)
                        kern_axpy(dst, 1.0f, row + t * H, (int)H);
                    float inv = 1.0f / (float)T;
                    for (size_t j = 0; j < H; j++)
                        dst[j] *= inv;
                }
                if (normalize)
                    kern_l2_normalize(dst, H);
                dst += H;
            }
            row += T * H;
        }
        start = end;
    }
    threads_end(th);
    free(s.x);
    return MCLI_OK;
}

static mcli_status no_head(const mcli_model *m, const char *what, const char *can, mcli_err *err)
{
    return mcli_fail(err, MCLI_ERR_UNSUPPORTED, "%s has no trained %s head; it does %s", m->name, what, can);
}

static const char *tasks_text(const mcli_model *m)
{
    unsigned t = m->info.tasks;
    if ((t & MCLI_TASK_CLASSIFY) && (t & MCLI_TASK_FILL_MASK))
        return "embeddings, classification and fill-mask";
    if (t & MCLI_TASK_CLASSIFY)
        return "embeddings and classification";
    if (t & MCLI_TASK_FILL_MASK)
        return "embeddings and fill-mask";
    return "embeddings only";
}

mcli_status bert_classify(const mcli_model *m, const mcli_seq *seqs, size_t n, float *logits, float *probs,
                          mcli_err *err)
{
    const bert_model *b = m->bert;
    if (!b->n_labels)
        return no_head(m, "classification", tasks_text(m), err);
    size_t total, tmax;
    scratch s;
    mcli_status st = check_seqs(b, seqs, n, &total, &tmax, err);
    if (st)
        return st;
    if (!logits)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "no output buffer");
    size_t cap = chunk_cap(total, tmax);
    /* head scratch: the pooler/pre_classifier output (nc, H); nc = sequences in a chunk <= cap */
    if ((st = scratch_new(b, cap, tmax, cap * (size_t)b->H, &s, err)))
        return st;
    call_threads th = threads_begin(m, cap);
    const int H = b->H, NL = b->n_labels;
    for (size_t start = 0; start < n;) {
        size_t end = chunk_end(seqs, n, start, cap);
        int nc = (int)(end - start);
        encode(b, seqs + start, end - start, &s, true, NULL, 0);
        const float *cls = s.x; /* (nc, H): the first token of each sequence */
        float *z = s.head;
        /* BERT: tanh(pooler); DistilBERT: ReLU(pre_classifier) */
        kern_linear(z, (size_t)H, cls, (size_t)H, b->pre_w, nc, H, H, false);
        kern_bias_act(z, (size_t)H, b->pre_b, nc, H, b->distil ? KERN_ACT_RELU : KERN_ACT_TANH);
        float *lg = logits + start * (size_t)NL;
        kern_linear(lg, (size_t)NL, z, (size_t)H, b->cls_w, nc, NL, H, false);
        kern_bias_act(lg, (size_t)NL, b->cls_b, nc, NL, KERN_ACT_NONE);
        start = end;
    }
    threads_end(th);
    if (probs) {
        memcpy(probs, logits, n * (size_t)NL * sizeof *probs);
        /* transformers' pipeline: sigmoid for multi-label or a single output, else softmax */
        if (b->multi_label || NL == 1)
            kern_sigmoid(probs, n * (size_t)NL);
        else
            kern_softmax_rows(probs, (size_t)NL, (int)n, NL);
    }
    free(s.x);
    return MCLI_OK;
}

mcli_status bert_mlm_logits(const mcli_model *m, const mcli_seq *seq, const size_t *positions, size_t n_pos,
                            float *logits, mcli_err *err)
{
    const bert_model *b = m->bert;
    if (!b->mlm_w)
        return no_head(m, "masked-LM (fill-mask)", tasks_text(m), err);
    size_t total, tmax;
    scratch s;
    mcli_status st = check_seqs(b, seq, 1, &total, &tmax, err);
    if (st)
        return st;
    if (!logits || !positions || n_pos == 0)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "fill-mask needs at least one position and an output buffer");
    if (n_pos > seq->len)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "%zu positions asked for a sequence of %zu tokens", n_pos, seq->len);
    for (size_t i = 0; i < n_pos; i++)
        if (positions[i] >= seq->len)
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "position %zu is outside the sequence of %zu tokens",
                             positions[i], seq->len);
    const int H = b->H;
    if ((st = scratch_new(b, total, tmax, 2 * n_pos * (size_t)H, &s, err)))
        return st;
    call_threads th = threads_begin(m, total);
    /* the last layer only for the asked rows when they are strictly increasing (the usual case) */
    bool increasing = true;
    for (size_t i = 1; i < n_pos; i++)
        increasing = increasing && positions[i] > positions[i - 1];
    encode(b, seq, 1, &s, false, increasing ? positions : NULL, n_pos);
    float *h = s.head, *z = s.head + n_pos * (size_t)H;
    for (size_t i = 0; i < n_pos; i++)
        memcpy(h + i * H, s.x + (increasing ? i : positions[i]) * H, (size_t)H * sizeof *h);
    /* transform: LN(act(W h + b)); decoder: z E^T + bias */
    kern_linear(z, (size_t)H, h, (size_t)H, b->mlm_w, (int)n_pos, H, H, false);
    kern_bias_act(z, (size_t)H, b->mlm_b, (int)n_pos, H, b->act);
    kern_add_layernorm(z, (size_t)H, NULL, b->mlm_g, b->mlm_beta, (int)n_pos, H, b->eps);
    kern_linear(logits, (size_t)b->V, z, (size_t)H, b->mlm_dec, (int)n_pos, b->V, H, false);
    kern_bias_act(logits, (size_t)b->V, b->mlm_bias, (int)n_pos, b->V, KERN_ACT_NONE);
    threads_end(th);
    free(s.x);
    return MCLI_OK;
}
