/* gpt2.c - GPT-2 family decoder: tensor binding and forward passes over a KV cache.
 * See gpt2.h for the math and the ownership rules.
 *
 * One forward pass runs R rows (R <= GPT2_MAX_ROWS). Every row is (state, position, id):
 * a prompt chunk is R consecutive positions of one state; a batched step is one position of
 * R different states. Linear layers run on all rows at once (kd_matmul_kn for R <= 8, which
 * reads each weight once; cblas_sgemm above); attention runs per (row, head) against that
 * row's own cache, after the chunk's keys/values were written, so causality holds by
 * construction (row at position p reads positions 0..p).
 */
#include "engine/gpt2.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels.h"
#include "engine/kernels_decode.h"
#include "tokenizers/tokenizer.h"

/* Rows up to this count use the weight-streaming kernels instead of sgemm. The environment
 * variable MCLI_GPT2_BLAS=1 turns them off (OpenBLAS for everything), for benchmarks. */
#define GPT2_STREAM_ROWS 8

typedef struct {
    const float *ln_1_w, *ln_1_b;     /* [C] */
    const float *attn_w, *attn_b;     /* c_attn: [C, 3C], [3C]  (q | k | v along the output) */
    const float *aproj_w, *aproj_b;   /* attn.c_proj: [C, C], [C] */
    const float *ln_2_w, *ln_2_b;     /* [C] */
    const float *fc_w, *fc_b;         /* mlp.c_fc: [C, F], [F] */
    const float *mproj_w, *mproj_b;   /* mlp.c_proj: [F, C], [C] */
} gpt2_layer;

struct gpt2_model {
    int V, n_ctx, C, H, hd, L, F;     /* vocab, context, n_embd, heads, head_dim, layers, n_inner */
    float eps;
    int eos;
    const float *wte;                 /* [V, C] */
    const float *wpe;                 /* [n_ctx, C] */
    const float *ln_f_w, *ln_f_b;     /* [C] */
    const float *lm_head;             /* [V, C]: wte, or lm_head.weight if the file has its own */
    gpt2_layer *layers;               /* [L], owned */
    kd_pool *pool;                    /* owned */
    int stream_rows;                  /* rows up to which the streaming kernels replace BLAS */
};

struct gpt2_state {
    const gpt2_model *g;
    int cap;                          /* positions the cache holds */
    int n;                            /* positions filled */
    float *arena;                     /* owns every float buffer below */
    float *kv;                        /* [L][2][H][cap][hd]: keys then values, per head contiguous */
    float *logits;                    /* [V] */
    float *x, *h, *att;               /* [MAX_ROWS, C] residual stream, normed input, attention out */
    float *qkv;                       /* [MAX_ROWS, 3C] */
    float *ff;                        /* [MAX_ROWS, F] */
    float *scores;                    /* [nth, n_ctx] attention probabilities per pool thread */
    float *kscratch;                  /* partial sums of the streaming products (kd_matmul_kn) */
    size_t kscratch_n;
    gpt2_state **row_st;              /* [MAX_ROWS] */
    int *row_pos;                     /* [MAX_ROWS] */
    float **row_out;                  /* [MAX_ROWS] logits destination per row (NULL: none) */
    float **lm_out;                   /* [MAX_ROWS] gathered destinations for the LM head */
};

int gpt2_n_vocab(const gpt2_model *g) { return g->V; }
int gpt2_n_ctx(const gpt2_model *g) { return g->n_ctx; }
int gpt2_eos_id(const gpt2_model *g) { return g->eos; }

/* ---------------------------------------------------------------------------------------- */
/* Loading                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* Binds one tensor by canonical name and checks its shape (d1 == 0 for vectors). */
static mcli_status bind(const mcli_weights *w, const char *name, int64_t d0, int64_t d1, const float **out,
                        int64_t *n_params, mcli_err *err)
{
    const mcli_tensor *t = weights_lookup(w, "transformer", name);
    if (!t)
        return mcli_fail(err, MCLI_ERR_FORMAT, "GPT-2 weights: tensor '%s' is missing (is this a GPT-2 checkpoint?)",
                         name);
    int ok = t->data != NULL && (d1 == 0 ? (t->ndim == 1 && t->shape[0] == d0)
                                          : (t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == d1));
    if (!ok) {
        if (!t->data)
            return mcli_fail(err, MCLI_ERR_FORMAT, "GPT-2 weights: tensor '%s' is not a float tensor", name);
        return mcli_fail(err, MCLI_ERR_FORMAT,
                         "GPT-2 weights: tensor '%s' has shape [%lld%s%lld] (ndim %d), expected [%lld%s%lld]", name,
                         (long long)t->shape[0], t->ndim > 1 ? ", " : "", t->ndim > 1 ? (long long)t->shape[1] : 0LL,
                         t->ndim, (long long)d0, d1 ? ", " : "", (long long)d1);
    }
    *out = t->data;
    *n_params += (int64_t)t->numel;
    return MCLI_OK;
}

mcli_status gpt2_load(mcli_model *m, mcli_err *err)
{
    const mcli_config *c = &m->config;
    gpt2_model *g = NULL;
    mcli_status st;
    int64_t n_params = 0;
    if (c->arch != MCLI_ARCH_GPT2)
        return mcli_fail(err, MCLI_ERR_INTERNAL, "gpt2_load called for a %s model", mcli_arch_name(c->arch));
    if (c->hidden_size <= 0 || c->n_heads <= 0 || c->hidden_size % c->n_heads != 0 || c->n_layers <= 0 ||
        c->vocab_size <= 0 || c->max_positions <= 0 || c->intermediate_size <= 0 || c->hidden_size > 65536 ||
        c->n_layers > 1024 || c->max_positions > (1 << 20) || c->intermediate_size > (1 << 20))
        return mcli_fail(err, MCLI_ERR_FORMAT,
                         "GPT-2 config: inconsistent sizes (n_embd %d, n_head %d, n_layer %d, vocab %d, n_positions %d, "
                         "n_inner %d); n_embd must be a multiple of n_head",
                         c->hidden_size, c->n_heads, c->n_layers, c->vocab_size, c->max_positions, c->intermediate_size);
    if (c->activation != MCLI_ACT_GELU_NEW)
        return mcli_fail(err, MCLI_ERR_UNSUPPORTED,
                         "GPT-2 config: activation_function must be gelu_new (the GPT-2 default)");

    g = calloc(1, sizeof *g);
    if (!g)
        return mcli_fail(err, MCLI_ERR_NOMEM, "GPT-2: out of memory");
    g->C = c->hidden_size;
    g->H = c->n_heads;
    g->hd = g->C / g->H;
    g->L = c->n_layers;
    g->F = c->intermediate_size;
    g->n_ctx = c->max_positions;
    g->eps = c->layer_norm_eps > 0 ? c->layer_norm_eps : 1e-5f;
    g->eos = c->eos_token_id;
    if (g->eos < 0 && m->tokenizer)
        g->eos = tokenizer_special(m->tokenizer)->eos;

    /* The vocabulary size is what wte says (some checkpoints pad it beyond config.vocab_size). */
    const mcli_tensor *wte = weights_lookup(m->weights, "transformer", "wte.weight");
    if (!wte || wte->ndim != 2 || wte->shape[1] != g->C || wte->shape[0] <= 0 || wte->shape[0] > (1 << 24)) {
        st = mcli_fail(err, MCLI_ERR_FORMAT, "GPT-2 weights: wte.weight missing or not [vocab, %d]", g->C);
        goto fail;
    }
    g->V = (int)wte->shape[0];
    if ((st = bind(m->weights, "wte.weight", g->V, g->C, &g->wte, &n_params, err)) != MCLI_OK ||
        (st = bind(m->weights, "wpe.weight", g->n_ctx, g->C, &g->wpe, &n_params, err)) != MCLI_OK ||
        (st = bind(m->weights, "ln_f.weight", g->C, 0, &g->ln_f_w, &n_params, err)) != MCLI_OK ||
        (st = bind(m->weights, "ln_f.bias", g->C, 0, &g->ln_f_b, &n_params, err)) != MCLI_OK)
        goto fail;

    g->layers = calloc((size_t)g->L, sizeof *g->layers);
    if (!g->layers) {
        st = mcli_fail(err, MCLI_ERR_NOMEM, "GPT-2: out of memory");
        goto fail;
    }
    const int C = g->C, F = g->F;
    for (int l = 0; l < g->L; l++) {
        gpt2_layer *y = &g->layers[l];
        struct {
            const char *suffix;
            int64_t d0, d1;
            const float **dst;
        } spec[] = {
            {"ln_1.weight", C, 0, &y->ln_1_w},        {"ln_1.bias", C, 0, &y->ln_1_b},
            {"attn.c_attn.weight", C, 3 * C, &y->attn_w}, {"attn.c_attn.bias", 3 * C, 0, &y->attn_b},
            {"attn.c_proj.weight", C, C, &y->aproj_w}, {"attn.c_proj.bias", C, 0, &y->aproj_b},
            {"ln_2.weight", C, 0, &y->ln_2_w},        {"ln_2.bias", C, 0, &y->ln_2_b},
            {"mlp.c_fc.weight", C, F, &y->fc_w},      {"mlp.c_fc.bias", F, 0, &y->fc_b},
            {"mlp.c_proj.weight", F, C, &y->mproj_w}, {"mlp.c_proj.bias", C, 0, &y->mproj_b},
        };
        for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++) {
            char name[128];
            snprintf(name, sizeof name, "h.%d.%s", l, spec[i].suffix);
            if ((st = bind(m->weights, name, spec[i].d0, spec[i].d1, spec[i].dst, &n_params, err)) != MCLI_OK)
                goto fail;
        }
    }
    /* Tied LM head unless the file carries a distinct one. */
    g->lm_head = g->wte;
    const mcli_tensor *lm = weights_lookup(m->weights, "transformer", "lm_head.weight");
    if (lm && lm->data && lm->data != g->wte) {
        if (lm->ndim != 2 || lm->shape[0] != g->V || lm->shape[1] != g->C) {
            st = mcli_fail(err, MCLI_ERR_FORMAT, "GPT-2 weights: lm_head.weight is not [%d, %d]", g->V, g->C);
            goto fail;
        }
        if (memcmp(lm->data, g->wte, (size_t)g->V * (size_t)g->C * sizeof(float)) != 0) {
            g->lm_head = lm->data;
            n_params += (int64_t)lm->numel;
        }
    }
    if ((st = kd_pool_new(m->n_threads, &g->pool, err)) != MCLI_OK)
        goto fail;
    const char *blas = getenv("MCLI_GPT2_BLAS");
    g->stream_rows = blas && strcmp(blas, "1") == 0 ? 0 : GPT2_STREAM_ROWS;

    m->gpt2 = g;
    m->info.tasks |= MCLI_TASK_GENERATE;
    m->info.n_params = n_params;
    return MCLI_OK;
fail:
    gpt2_free(g);
    return st;
}

void gpt2_free(gpt2_model *g)
{
    if (!g)
        return;
    kd_pool_free(g->pool);
    free(g->layers);
    free(g);
}

/* ---------------------------------------------------------------------------------------- */
/* Per-sequence state                                                                       */
/* ---------------------------------------------------------------------------------------- */

mcli_status gpt2_state_new(const gpt2_model *g, int capacity, gpt2_state **out, mcli_err *err)
{
    *out = NULL;
    if (capacity < 1 || capacity > g->n_ctx)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "GPT-2: a cache of %d positions is outside 1..%d (n_positions)",
                         capacity, g->n_ctx);
    gpt2_state *s = calloc(1, sizeof *s);
    if (!s)
        return mcli_fail(err, MCLI_ERR_NOMEM, "GPT-2: out of memory for a generation state");
    const size_t R = GPT2_MAX_ROWS, C = (size_t)g->C;
    const size_t n_kv = (size_t)g->L * 2 * C * (size_t)capacity;
    const size_t nth = (size_t)kd_pool_threads(g->pool);
    /* Each buffer rounded up to 16 floats so every one starts on a 64-byte line. */
#define ROUND16(n) (((n) + 15) & ~(size_t)15)
    const int widest = 3 * g->C > g->F ? 3 * g->C : g->F;
    const size_t n_ks = kd_matmul_kn_scratch(g->pool, GPT2_STREAM_ROWS, widest);
    const size_t sizes[] = {n_kv, (size_t)g->V, R * C, R * C, R * C, R * 3 * C, R * (size_t)g->F,
                            nth * (size_t)g->n_ctx, n_ks};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        total += ROUND16(sizes[i]);
    s->arena = aligned_alloc(64, total * sizeof(float));
    s->row_st = calloc(R, sizeof *s->row_st);
    s->row_pos = calloc(R, sizeof *s->row_pos);
    s->row_out = calloc(R, sizeof *s->row_out);
    s->lm_out = calloc(R, sizeof *s->lm_out);
    if (!s->arena || !s->row_st || !s->row_pos || !s->row_out || !s->lm_out) {
        gpt2_state_free(s);
        return mcli_fail(err, MCLI_ERR_NOMEM, "GPT-2: out of memory for a cache of %d positions (%zu MB)", capacity,
                         total * sizeof(float) >> 20);
    }
    float *p = s->arena;
    float **dst[] = {&s->kv, &s->logits, &s->x, &s->h, &s->att, &s->qkv, &s->ff, &s->scores, &s->kscratch};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *dst[i] = p;
        p += ROUND16(sizes[i]);
    }
#undef ROUND16
    memset(s->logits, 0, (size_t)g->V * sizeof(float));
    s->kscratch_n = n_ks;
    s->g = g;
    s->cap = capacity;
    s->n = 0;
    *out = s;
    return MCLI_OK;
}

void gpt2_state_free(gpt2_state *s)
{
    if (!s)
        return;
    free(s->arena);
    free(s->row_st);
    free(s->row_pos);
    free(s->row_out);
    free(s->lm_out);
    free(s);
}

void gpt2_state_reset(gpt2_state *s) { s->n = 0; }
int gpt2_state_len(const gpt2_state *s) { return s->n; }
int gpt2_state_capacity(const gpt2_state *s) { return s->cap; }
float *gpt2_state_logits(gpt2_state *s) { return s->logits; }

/* Keys (kv_i 0) or values (1) of layer l, head h: [cap, hd]. */
static inline float *cache_at(const gpt2_state *s, int l, int kv_i, int h)
{
    const gpt2_model *g = s->g;
    return s->kv + (((size_t)l * 2 + (size_t)kv_i) * (size_t)g->H + (size_t)h) * (size_t)s->cap * (size_t)g->hd;
}

/* ---------------------------------------------------------------------------------------- */
/* Forward pass                                                                             */
/* ---------------------------------------------------------------------------------------- */

/* y[R,N] (+)= x[R,K] @ W[K,N] + b */
static void linear(const gpt2_model *g, gpt2_state *sc, float *y, const float *x, const float *W, const float *b, int R,
                   int K, int N, int accumulate)
{
    if (R <= g->stream_rows) {
        kd_matmul_kn(g->pool, y, (size_t)N, x, (size_t)K, W, b, R, K, N, accumulate, sc->kscratch, sc->kscratch_n);
        return;
    }
    for (int r = 0; r < R; r++) {
        float *yr = y + (size_t)r * N;
        if (!accumulate)
            memcpy(yr, b, (size_t)N * sizeof(float));
        else
            for (int n = 0; n < N; n++)
                yr[n] += b[n];
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, N, K, 1.0f, x, K, W, N, 1.0f, y, N);
}

typedef struct {
    const gpt2_model *g;
    int layer, R;
    gpt2_state *const *st;  /* [R] */
    const int *pos;         /* [R] */
    const float *qkv;       /* [R, 3C] */
    float *att;             /* [R, C] */
    float *scores;          /* [nth, n_ctx] */
} attn_job;

/* Chunk idx = (row r, head h): att[r, h*hd:(h+1)*hd] = softmax(q k^T / sqrt(hd)) v over
 * positions 0..pos[r] of row r's cache; sc is thread ith's scratch row. */
/* out (C) = LayerNorm(x (C)) with gain w and shift b; x is kept (it is the residual stream). */
static void gpt2_layernorm(float *out, const float *x, const float *w, const float *b, int C, float eps)
{
    memcpy(out, x, (size_t)C * sizeof *out);
    kern_add_layernorm(out, (size_t)C, NULL, w, b, 1, C, eps);
}

static void attn_task(void *ctx, int idx, int ith)
{
    const attn_job *j = ctx;
    const gpt2_model *g = j->g;
    const int C = g->C, hd = g->hd;
    const float scale = 1.0f / sqrtf((float)hd);
    float *sc = j->scores + (size_t)ith * (size_t)g->n_ctx;
    const int r = idx / g->H, h = idx % g->H;
    const float *q = j->qkv + (size_t)r * 3 * C + (size_t)h * hd;
    const float *K = cache_at(j->st[r], j->layer, 0, h);
    const float *Vc = cache_at(j->st[r], j->layer, 1, h);
    const int n = j->pos[r] + 1;
    for (int t = 0; t < n; t++)
        sc[t] = kern_dot(q, K + (size_t)t * hd, hd) * scale;
    kern_softmax_rows(sc, (size_t)n, 1, n);
    float *o = j->att + (size_t)r * C + (size_t)h * hd;
    memset(o, 0, (size_t)hd * sizeof(float));
    for (int t = 0; t < n; t++)
        kern_axpy(o, sc[t], Vc + (size_t)t * hd, hd);
}

/* Runs R rows described by scratch->row_st/row_pos/row_out and ids; `sc` is the state whose
 * scratch is used. Positions were validated by the callers. */
static void forward_rows(const gpt2_model *g, gpt2_state *sc, const int32_t *ids, int R)
{
    const int C = g->C, F = g->F;
    for (int r = 0; r < R; r++) {
        const float *te = g->wte + (size_t)ids[r] * C, *pe = g->wpe + (size_t)sc->row_pos[r] * C;
        float *x = sc->x + (size_t)r * C;
        for (int i = 0; i < C; i++)
            x[i] = te[i] + pe[i];
    }
    for (int l = 0; l < g->L; l++) {
        const gpt2_layer *y = &g->layers[l];
        for (int r = 0; r < R; r++)
            gpt2_layernorm(sc->h + (size_t)r * C, sc->x + (size_t)r * C, y->ln_1_w, y->ln_1_b, C, g->eps);
        linear(g, sc, sc->qkv, sc->h, y->attn_w, y->attn_b, R, C, 3 * C, 0);
        for (int r = 0; r < R; r++) {
            const float *qkv = sc->qkv + (size_t)r * 3 * C;
            gpt2_state *s = sc->row_st[r];
            const size_t off = (size_t)sc->row_pos[r] * g->hd;
            for (int h = 0; h < g->H; h++) {
                memcpy(cache_at(s, l, 0, h) + off, qkv + C + (size_t)h * g->hd, (size_t)g->hd * sizeof(float));
                memcpy(cache_at(s, l, 1, h) + off, qkv + 2 * C + (size_t)h * g->hd, (size_t)g->hd * sizeof(float));
            }
        }
        attn_job aj = {g, l, R, sc->row_st, sc->row_pos, sc->qkv, sc->att, sc->scores};
        kd_pool_run(g->pool, R * g->H, attn_task, &aj);
        linear(g, sc, sc->x, sc->att, y->aproj_w, y->aproj_b, R, C, C, 1);
        for (int r = 0; r < R; r++)
            gpt2_layernorm(sc->h + (size_t)r * C, sc->x + (size_t)r * C, y->ln_2_w, y->ln_2_b, C, g->eps);
        linear(g, sc, sc->ff, sc->h, y->fc_w, y->fc_b, R, C, F, 0);
        kern_bias_act(sc->ff, (size_t)F, NULL, R, F, KERN_ACT_GELU_TANH);
        linear(g, sc, sc->x, sc->ff, y->mproj_w, y->mproj_b, R, F, C, 1);
    }
    /* Final layer norm and LM head only for the rows that want logits. */
    int M = 0;
    for (int r = 0; r < R; r++) {
        if (!sc->row_out[r])
            continue;
        gpt2_layernorm(sc->h + (size_t)M * C, sc->x + (size_t)r * C, g->ln_f_w, g->ln_f_b, C, g->eps);
        sc->lm_out[M++] = sc->row_out[r];
    }
    if (M > 0 && g->stream_rows > 0)
        kd_matmul_nk(g->pool, sc->lm_out, sc->h, (size_t)C, g->lm_head, M, C, g->V);
    else
        for (int r = 0; r < M; r++)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, g->V, C, 1.0f, g->lm_head, C, sc->h + (size_t)r * C, 1, 0.0f,
                        sc->lm_out[r], 1);
}

static mcli_status check_ids(const gpt2_model *g, const int32_t *ids, size_t n, mcli_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= g->V)
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "GPT-2: token id %ld at index %zu is outside the vocabulary 0..%d",
                             (long)ids[i], i, g->V - 1);
    return MCLI_OK;
}

mcli_status gpt2_prefill(const gpt2_model *g, gpt2_state *s, const int32_t *ids, size_t n, float *all_logits,
                         mcli_err *err)
{
    if (n == 0)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "GPT-2: empty prompt (at least one token is needed)");
    if (s->g != g)
        return mcli_fail(err, MCLI_ERR_INTERNAL, "GPT-2: generation state belongs to another model");
    if (n > (size_t)(s->cap - s->n))
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "GPT-2: %zu tokens do not fit the cache (%d of %d positions used)", n,
                         s->n, s->cap);
    mcli_status st = check_ids(g, ids, n, err);
    if (st != MCLI_OK)
        return st;
    for (size_t c0 = 0; c0 < n; c0 += GPT2_MAX_ROWS) {
        const int R = (int)(n - c0 < GPT2_MAX_ROWS ? n - c0 : GPT2_MAX_ROWS);
        for (int r = 0; r < R; r++) {
            const size_t i = c0 + (size_t)r;
            s->row_st[r] = s;
            s->row_pos[r] = s->n + r;
            s->row_out[r] = all_logits ? all_logits + i * (size_t)g->V : NULL;
        }
        if (c0 + (size_t)R == n && !all_logits)
            s->row_out[R - 1] = s->logits;
        forward_rows(g, s, ids + c0, R);
        s->n += R;
    }
    if (all_logits)
        memcpy(s->logits, all_logits + (n - 1) * (size_t)g->V, (size_t)g->V * sizeof(float));
    return MCLI_OK;
}

mcli_status gpt2_step(const gpt2_model *g, gpt2_state *const *states, const int32_t *ids, size_t n, mcli_err *err)
{
    if (n == 0)
        return MCLI_OK;
    if (n > GPT2_MAX_ROWS)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "GPT-2: %zu sequences in one step (at most %d)", n, GPT2_MAX_ROWS);
    mcli_status st = check_ids(g, ids, n, err);
    if (st != MCLI_OK)
        return st;
    for (size_t i = 0; i < n; i++) {
        const gpt2_state *s = states[i];
        if (s->g != g)
            return mcli_fail(err, MCLI_ERR_INTERNAL, "GPT-2: generation state belongs to another model");
        if (s->n >= s->cap)
            return mcli_fail(err, MCLI_ERR_TOO_LARGE, "GPT-2: sequence %zu is full (%d positions)", i, s->cap);
        for (size_t k = 0; k < i; k++)
            if (states[k] == s)
                return mcli_fail(err, MCLI_ERR_INVALID_ARG, "GPT-2: the same state appears twice in one step");
    }
    gpt2_state *sc = states[0];
    for (size_t i = 0; i < n; i++) {
        sc->row_st[i] = states[i];
        sc->row_pos[i] = states[i]->n;
        sc->row_out[i] = states[i]->logits;
    }
    forward_rows(g, sc, ids, (int)n);
    for (size_t i = 0; i < n; i++)
        states[i]->n++;
    return MCLI_OK;
}
