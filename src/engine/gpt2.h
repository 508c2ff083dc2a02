/* gpt2.h - the GPT-2 family decoder (gpt2, distilgpt2, DialoGPT): forward passes over a
 * per-sequence KV cache, following transformers' modeling_gpt2.py:
 *
 *   x = wte[id] + wpe[pos]
 *   per block: a = x + c_proj(attn(ln_1(x)))          fused c_attn -> q | k | v, causal,
 *              x = a + mlp.c_proj(gelu_new(c_fc(ln_2(a))))    scale 1/sqrt(head_dim)
 *   logits = ln_f(x) @ wte^T                           (LM head tied to wte)
 *
 * Conv1D weights are used as stored, [in, out] (y = x W + b), straight from the weights
 * mapping: no copy, no transpose.
 *
 * Ownership: gpt2_model (m->gpt2) is created by gpt2_load and freed by gpt2_free through
 * engine_free; it only points into m->weights. A gpt2_state (KV cache, next-token logits and
 * the scratch of one forward pass) belongs to the caller: gpt2_state_new / gpt2_state_free.
 * Thread-safety: the model is read-only after load (its thread pool serialises jobs), so any
 * number of threads may run forward passes at once, each on its own states.
 */
#ifndef MCLI_ENGINE_GPT2_H
#define MCLI_ENGINE_GPT2_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model_internal.h"

/* Rows of one forward pass: the prompt is run in chunks of this many tokens, and one
 * gpt2_step can advance at most this many sequences at once. */
#define GPT2_MAX_ROWS 64

typedef struct gpt2_state gpt2_state;

int gpt2_n_vocab(const gpt2_model *g);
int gpt2_n_ctx(const gpt2_model *g);
int gpt2_eos_id(const gpt2_model *g);   /* -1 if neither config nor tokenizer names one */

/* A KV cache for `capacity` positions (1 <= capacity <= n_ctx) plus scratch; *out owned by
 * the caller. ~ 2 * n_layer * n_embd * capacity floats + GPT2_MAX_ROWS * 10 * n_embd floats. */
mcli_status gpt2_state_new(const gpt2_model *g, int capacity, gpt2_state **out, mcli_err *err) MCLI_MUST_USE;
void gpt2_state_free(gpt2_state *s);
/* Forgets every cached position (the buffers are kept). */
void gpt2_state_reset(gpt2_state *s);
int gpt2_state_len(const gpt2_state *s);
int gpt2_state_capacity(const gpt2_state *s);
/* [n_vocab] logits for the token after the last position run; valid after a forward pass,
 * writable (samplers modify it in place). */
float *gpt2_state_logits(gpt2_state *s);

/* Appends ids[0..n) at the end of s's cache (chunks of GPT2_MAX_ROWS, sgemm for large
 * chunks); leaves the logits after ids[n-1] in gpt2_state_logits(s). all_logits, if not
 * NULL, receives [n, n_vocab]: the logits after every position (scoring, tests).
 * Errors: n == 0 or ids out of [0, n_vocab) -> INVALID_ARG; cache full -> TOO_LARGE. */
mcli_status gpt2_prefill(const gpt2_model *g, gpt2_state *s, const int32_t *ids, size_t n, float *all_logits,
                         mcli_err *err) MCLI_MUST_USE;

/* One token for each of n distinct states (n <= GPT2_MAX_ROWS), in one pass that reads the
 * weights once: appends ids[i] to states[i] and leaves its next-token logits there.
 * states[0]'s scratch is used for the pass. */
mcli_status gpt2_step(const gpt2_model *g, gpt2_state *const *states, const int32_t *ids, size_t n,
                      mcli_err *err) MCLI_MUST_USE;

#endif
