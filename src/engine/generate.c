/* generate.c - text generation on decoders: the mcli_gen step machine (see engine.h for
 * its state diagram), engine_generate on top of it, and DialoGPT chat prompts.
 *
 * Per step and gen: [NEW: prefill the prompt] or [RUNNING with a pending token: one batched
 * forward pass over every such gen] -> sample -> detokenize -> stop-string check -> release
 * text. Sampling the token before running it through the model means a finished gen never
 * pays for a forward pass whose logits nobody reads, and a streamed piece leaves as soon as
 * it is chosen.
 *
 * Stop strings: `text` holds everything generated; `released` is what callers have seen.
 * After each token the new region is searched for every stop string (a match must end
 * there); without a match, the longest tail of `text` that is a prefix of a stop string is
 * held back. On a match the text is cut at its start and the gen ends with "stop".
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine.h"
#include "engine/gpt2.h"
#include "engine/model_internal.h"
#include "engine/sampler.h"
#include "util/buf.h"

#define GEN_MAX_STOP 16
#define GEN_MAX_STOP_LEN 256
#define GEN_MAX_NEW_TOKENS (1 << 20)

typedef enum { GEN_NEW, GEN_RUNNING, GEN_DONE } gen_phase;

struct mcli_gen {
    const mcli_model *m;
    gpt2_state *st;             /* owned */
    mcli_sampler smp;           /* owned buffers */
    mcli_detok *detok;          /* owned */
    gen_phase phase;
    int32_t *prompt;            /* owned copy, freed after prefill */
    size_t n_prompt;
    int max_new;
    int n_valid;                /* ids >= n_valid (model rows the tokenizer cannot decode) are never sampled */
    bool ignore_eos;
    int eos;
    char *stop[GEN_MAX_STOP];   /* owned copies */
    size_t stop_len[GEN_MAX_STOP];
    size_t n_stop, max_stop_len;
    int32_t *ids;               /* [max_new] generated ids (owned until engine_gen_result) */
    size_t n_ids;
    char *text;                 /* generated text, NUL-terminated (owned until engine_gen_result) */
    size_t text_len, text_cap;
    size_t released;            /* bytes of text handed out */
    bool has_pending;           /* ids[n_ids-1] was sampled but not yet run through the model */
    bool has_last;
    int32_t last_id;
    size_t last_off, last_len;  /* the piece released by the last step: text[last_off, +last_len) */
    const char *finish_reason;
    double prompt_ms, gen_ms;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void engine_gen_params_default(mcli_gen_params *p)
{
    memset(p, 0, sizeof *p);
    p->max_new_tokens = 50;
    p->greedy = false;
    p->temperature = 1.0f;
    p->top_k = 0;
    p->top_p = 1.0f;
    p->min_p = 0.0f;
    p->repetition_penalty = 1.0f;
    p->seed = 0;
}

void gen_result_free(mcli_gen_result *r)
{
    if (!r)
        return;
    free(r->ids);
    free(r->text);
    r->ids = NULL;
    r->text = NULL;
    r->n = 0;
}

void engine_gen_free(mcli_gen *g)
{
    if (!g)
        return;
    gpt2_state_free(g->st);
    sampler_free(&g->smp);
    detok_free(g->detok);
    free(g->prompt);
    for (size_t i = 0; i < g->n_stop; i++)
        free(g->stop[i]);
    free(g->ids);
    free(g->text);
    free(g);
}

mcli_status engine_gen_new(const mcli_model *m, const int32_t *prompt, size_t n_prompt,
                           const mcli_gen_params *params, mcli_gen **out, mcli_err *err)
{
    *out = NULL;
    if (!m->gpt2)
        return mcli_fail(err, MCLI_ERR_UNSUPPORTED, "this model (%s) cannot generate text: only GPT-2 family decoders can",
                         m->config.model_type);
    if (!m->tokenizer)
        return mcli_fail(err, MCLI_ERR_INTERNAL, "generation needs the model's tokenizer (load with engine_load)");
    const gpt2_model *gm = m->gpt2;
    const int n_ctx = gpt2_n_ctx(gm);
    if (n_prompt == 0)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "empty prompt: generation needs at least one prompt token");
    if (n_prompt >= (size_t)n_ctx)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE,
                         "prompt of %zu tokens leaves no room to generate in a context of %d positions; shorten it",
                         n_prompt, n_ctx);
    if (params->max_new_tokens < 0 || params->max_new_tokens > GEN_MAX_NEW_TOKENS)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "max_new_tokens must be in 0..%d (got %d)", GEN_MAX_NEW_TOKENS,
                         params->max_new_tokens);
    if (params->n_stop > GEN_MAX_STOP)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "at most %d stop strings (got %zu)", GEN_MAX_STOP, params->n_stop);
    for (size_t i = 0; i < params->n_stop; i++) {
        size_t len = params->stop[i] ? strlen(params->stop[i]) : 0;
        if (len == 0 || len > GEN_MAX_STOP_LEN)
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "stop string %zu must have 1..%d bytes", i, GEN_MAX_STOP_LEN);
    }

    mcli_status st;
    mcli_gen *g = calloc(1, sizeof *g);
    if (!g)
        return mcli_fail(err, MCLI_ERR_NOMEM, "generation: out of memory");
    g->m = m;
    g->phase = GEN_NEW;
    g->max_new = params->max_new_tokens;
    g->ignore_eos = params->ignore_eos;
    g->eos = gpt2_eos_id(gm);
    g->n_valid = gpt2_n_vocab(gm);
    const size_t tok_v = tokenizer_vocab_size(m->tokenizer);
    if (tok_v > 0 && tok_v < (size_t)g->n_valid)
        g->n_valid = (int)tok_v;
    size_t cap = n_prompt + (size_t)g->max_new;
    if (cap > (size_t)n_ctx)
        cap = (size_t)n_ctx;
    if ((st = sampler_init(&g->smp, gpt2_n_vocab(gm), params, err)) != MCLI_OK)
        goto fail;
    if ((st = gpt2_state_new(gm, (int)cap, &g->st, err)) != MCLI_OK)
        goto fail;
    if ((st = detok_new(m->tokenizer, true, &g->detok, err)) != MCLI_OK)
        goto fail;
    g->prompt = malloc(n_prompt * sizeof *g->prompt);
    g->ids = malloc(((size_t)g->max_new + 1) * sizeof *g->ids);
    g->text_cap = 256;
    g->text = malloc(g->text_cap);
    if (!g->prompt || !g->ids || !g->text) {
        st = mcli_fail(err, MCLI_ERR_NOMEM, "generation: out of memory");
        goto fail;
    }
    memcpy(g->prompt, prompt, n_prompt * sizeof *prompt);
    g->n_prompt = n_prompt;
    g->text[0] = '\0';
    for (size_t i = 0; i < params->n_stop; i++) {
        g->stop_len[i] = strlen(params->stop[i]);
        g->stop[i] = malloc(g->stop_len[i] + 1);
        if (!g->stop[i]) {
            st = mcli_fail(err, MCLI_ERR_NOMEM, "generation: out of memory");
            goto fail;
        }
        memcpy(g->stop[i], params->stop[i], g->stop_len[i] + 1);
        g->n_stop = i + 1;
        if (g->stop_len[i] > g->max_stop_len)
            g->max_stop_len = g->stop_len[i];
    }
    sampler_accept(&g->smp, prompt, n_prompt);
    *out = g;
    return MCLI_OK;
fail:
    engine_gen_free(g);
    return st;
}

bool engine_gen_done(const mcli_gen *g) { return g->phase == GEN_DONE; }

bool engine_gen_last(const mcli_gen *g, int32_t *id, const char **piece, size_t *piece_len)
{
    if (!g->has_last)
        return false;
    if (id)
        *id = g->last_id;
    if (piece)
        *piece = g->text + g->last_off;
    if (piece_len)
        *piece_len = g->last_len;
    return true;
}

static void finish(mcli_gen *g, const char *reason)
{
    g->phase = GEN_DONE;
    g->finish_reason = reason;
    g->has_pending = false;
}

void engine_gen_cancel(mcli_gen *g)
{
    if (g->phase != GEN_DONE)
        finish(g, "cancelled");
}

static mcli_status text_append(mcli_gen *g, const char *s, size_t len, mcli_err *err)
{
    if (buf_append(&g->text, &g->text_len, &g->text_cap, 0, s, len) != MCLI_OK)
        return mcli_fail(err, MCLI_ERR_NOMEM, "generation: out of memory for %zu bytes of text", g->text_len + len);
    return MCLI_OK;
}

/* Releases text up to `upto` as this step's piece (appending to a piece already started
 * in this step). */
static void release(mcli_gen *g, size_t upto)
{
    if (upto <= g->released)
        return;
    g->last_len = upto - g->last_off;
    g->released = upto;
}

/* After text grew from old_len: stop-string search, then release what is safe. Returns
 * true if a stop string ended the generation. */
static bool check_stops(mcli_gen *g, size_t old_len)
{
    if (g->n_stop == 0) {
        release(g, g->text_len);
        return false;
    }
    const size_t from = old_len >= g->max_stop_len ? old_len - (g->max_stop_len - 1) : 0;
    size_t best = (size_t)-1;
    for (size_t i = 0; i < g->n_stop; i++) {
        const char *hit = memmem(g->text + from, g->text_len - from, g->stop[i], g->stop_len[i]);
        if (hit && (size_t)(hit - g->text) < best)
            best = (size_t)(hit - g->text);
    }
    if (best != (size_t)-1) {
        if (best < g->released) /* cannot happen: held-back text covers every partial match */
            best = g->released;
        g->text_len = best;
        g->text[best] = '\0';
        release(g, best);
        finish(g, "stop");
        return true;
    }
    size_t hold = 0;
    const size_t unreleased = g->text_len - g->released;
    for (size_t i = 0; i < g->n_stop; i++) {
        size_t maxl = g->stop_len[i] - 1 < unreleased ? g->stop_len[i] - 1 : unreleased;
        for (size_t L = maxl; L > hold; L--)
            if (memcmp(g->text + g->text_len - L, g->stop[i], L) == 0) {
                hold = L;
                break;
            }
    }
    release(g, g->text_len - hold);
    return false;
}

/* End of generation for a reason other than a stop string: flush the detokenizer and
 * release everything. */
static mcli_status finish_flush(mcli_gen *g, const char *reason, mcli_err *err)
{
    const char *piece = NULL;
    size_t len = 0;
    mcli_status st = detok_flush(g->detok, &piece, &len, err);
    if (st != MCLI_OK)
        return st;
    if (len > 0 && (st = text_append(g, piece, len, err)) != MCLI_OK)
        return st;
    release(g, g->text_len);
    finish(g, reason);
    return MCLI_OK;
}

/* Samples one token from g's current logits and updates text, stops and phase. */
static mcli_status sample_one(mcli_gen *g, mcli_err *err)
{
    float *logits = gpt2_state_logits(g->st);
    for (int i = g->n_valid; i < gpt2_n_vocab(g->m->gpt2); i++)
        logits[i] = -INFINITY; /* padded vocabulary rows */
    const int32_t id = sampler_sample(&g->smp, logits);
    g->has_last = true;
    g->last_id = id;
    g->last_off = g->released;
    g->last_len = 0;
    if (id == g->eos && !g->ignore_eos)
        return finish_flush(g, "stop", err);
    g->ids[g->n_ids++] = id;
    sampler_accept(&g->smp, &id, 1);
    const char *piece = NULL;
    size_t len = 0;
    mcli_status st = detok_push(g->detok, id, &piece, &len, err);
    if (st != MCLI_OK)
        return st;
    const size_t old_len = g->text_len;
    if (len > 0 && (st = text_append(g, piece, len, err)) != MCLI_OK)
        return st;
    if (check_stops(g, old_len))
        return MCLI_OK;
    /* The sampled token sits at position st->n; another one needs st->n + 1 < capacity. */
    if (g->n_ids >= (size_t)g->max_new || gpt2_state_len(g->st) + 1 >= gpt2_state_capacity(g->st))
        return finish_flush(g, "length", err);
    g->has_pending = true;
    return MCLI_OK;
}

mcli_status engine_gen_step(mcli_gen *const *gens, size_t n, mcli_err *err)
{
    mcli_status st;
    if (n > GPT2_MAX_ROWS)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "engine_gen_step: %zu generations at once (at most %d)", n,
                         GPT2_MAX_ROWS);
    for (size_t i = 0; i < n; i++) {
        gens[i]->has_last = false;
        if (i > 0 && gens[i]->m != gens[0]->m)
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "engine_gen_step: generations of different models");
    }
    /* 1. prompts of new gens */
    for (size_t i = 0; i < n; i++) {
        mcli_gen *g = gens[i];
        if (g->phase != GEN_NEW)
            continue;
        if (g->max_new == 0) {
            finish(g, "length");
            continue;
        }
        const double t0 = now_ms();
        if ((st = gpt2_prefill(g->m->gpt2, g->st, g->prompt, g->n_prompt, NULL, err)) != MCLI_OK)
            return st;
        g->prompt_ms = now_ms() - t0;
        g->phase = GEN_RUNNING;
        free(g->prompt);
        g->prompt = NULL;
    }
    /* 2. one forward pass for every pending token */
    gpt2_state *states[GPT2_MAX_ROWS];
    int32_t ids[GPT2_MAX_ROWS];
    mcli_gen *stepped[GPT2_MAX_ROWS];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        mcli_gen *g = gens[i];
        if (g->phase == GEN_RUNNING && g->has_pending) {
            states[k] = g->st;
            ids[k] = g->ids[g->n_ids - 1];
            stepped[k++] = g;
        }
    }
    if (k > 0) {
        const double t0 = now_ms();
        if ((st = gpt2_step(gens[0]->m->gpt2, states, ids, k, err)) != MCLI_OK)
            return st;
        const double dt = now_ms() - t0;
        for (size_t i = 0; i < k; i++) {
            stepped[i]->has_pending = false;
            stepped[i]->gen_ms += dt;
        }
    }
    /* 3. sample */
    for (size_t i = 0; i < n; i++) {
        mcli_gen *g = gens[i];
        if (g->phase != GEN_RUNNING || g->has_pending)
            continue;
        const double t0 = now_ms();
        if ((st = sample_one(g, err)) != MCLI_OK)
            return st;
        g->gen_ms += now_ms() - t0;
    }
    return MCLI_OK;
}

mcli_status engine_gen_result(mcli_gen *g, mcli_gen_result *out, mcli_err *err)
{
    memset(out, 0, sizeof *out);
    out->ids = g->ids;
    out->n = g->n_ids;
    out->text = g->text;
    out->finish_reason = g->finish_reason ? g->finish_reason : "cancelled";
    out->n_prompt = g->n_prompt;
    out->prompt_ms = g->prompt_ms;
    out->gen_ms = g->gen_ms;
    /* g keeps a valid, empty state. */
    g->ids = NULL;
    g->text = NULL;
    g->has_last = false;
    g->n_ids = g->text_len = g->text_cap = g->released = 0;
    if (g->phase != GEN_DONE)
        finish(g, "cancelled");
    (void)err;
    return MCLI_OK;
}

mcli_status engine_generate(const mcli_model *m, const int32_t *prompt, size_t n_prompt,
                            const mcli_gen_params *params, mcli_token_cb cb, void *user,
                            mcli_gen_result *out, mcli_err *err)
{
    memset(out, 0, sizeof *out);
    mcli_gen *g = NULL;
    mcli_status st = engine_gen_new(m, prompt, n_prompt, params, &g, err);
    if (st != MCLI_OK)
        return st;
    while (!engine_gen_done(g)) {
        if ((st = engine_gen_step(&g, 1, err)) != MCLI_OK)
            goto done;
        int32_t id;
        const char *piece;
        size_t len;
        if (cb && engine_gen_last(g, &id, &piece, &len) && cb(user, id, piece, len) != 0)
            engine_gen_cancel(g);
    }
    st = engine_gen_result(g, out, err);
done:
    engine_gen_free(g);
    return st;
}

/* ---- chat ---- */
mcli_status engine_chat_prompt(const mcli_model *m, const char *const *turns, size_t n_turns, int max_new_tokens,
                               int32_t **ids, size_t *n, mcli_err *err)
{
    *ids = NULL;
    *n = 0;
    if (!m->gpt2)
        return mcli_fail(err, MCLI_ERR_UNSUPPORTED, "chat needs a GPT-2 family decoder (this is a %s model)",
                         m->config.model_type);
    if (!m->tokenizer)
        return mcli_fail(err, MCLI_ERR_INTERNAL, "chat needs the model's tokenizer (load with engine_load)");
    const int eos = gpt2_eos_id(m->gpt2);
    if (eos < 0)
        return mcli_fail(err, MCLI_ERR_UNSUPPORTED, "chat needs an EOS token to separate turns; the model has none");
    const int n_ctx = gpt2_n_ctx(m->gpt2);
    if (max_new_tokens < 0 || max_new_tokens >= n_ctx)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "max_new_tokens %d leaves no room for the conversation (context %d)",
                         max_new_tokens, n_ctx);
    if (n_turns == 0)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "chat: no turns");
    const size_t budget = (size_t)(n_ctx - max_new_tokens);
    mcli_status st = MCLI_OK;
    int32_t *buf = malloc(budget * sizeof *buf);
    if (!buf)
        return mcli_fail(err, MCLI_ERR_NOMEM, "chat: out of memory");
    /* Newest turn first, filling buf from its end. */
    size_t used = 0;
    const mcli_tok_opts opts = {.add_special_tokens = false, .max_length = 0, .truncate = false};
    for (size_t t = n_turns; t-- > 0 && used < budget;) {
        mcli_encoding enc;
        memset(&enc, 0, sizeof enc);
        st = tokenizer_encode(m->tokenizer, turns[t], strlen(turns[t]), NULL, 0, &opts, &enc, err);
        if (st != MCLI_OK) {
            mcli_err_prefix(err, "chat turn %zu", t + 1);
            goto fail;
        }
        const size_t need = enc.n + 1;
        if (used + need > budget && t != n_turns - 1) {
            encoding_free(&enc);
            break; /* an older turn that does not fit: drop it and everything before it */
        }
        /* Append turn + EOS ending at budget - used; the newest turn may be cut from the left. */
        size_t take = need <= budget - used ? need : budget - used;
        int32_t *dst = buf + (budget - used - take);
        size_t skip = need - take; /* tokens cut from the turn's start */
        for (size_t i = skip; i < enc.n; i++)
            *dst++ = enc.ids[i];
        *dst = eos;
        used += take;
        encoding_free(&enc);
    }
    memmove(buf, buf + (budget - used), used * sizeof *buf);
    *ids = buf;
    *n = used;
    return MCLI_OK;
fail:
    free(buf);
    return st;
}
