/* engine.h - one inference API for the CLI and the server.
 *
 * A mcli_model (weights + config + tokenizer) is immutable after engine_load(): any number
 * of threads may call the functions below on one model at once. Per-call state (activations,
 * KV caches) lives in objects the caller owns (mcli_gen) or in scratch allocated per call
 * from a size known at load time — never per token or per layer.
 *
 * Encoders take already-tokenized sequences so that the scheduler can batch requests:
 * tokenize with engine_tokenizer(), then call engine_embed / engine_classify / engine_fill_mask
 * with several sequences at once (they are padded into one batch internally).
 */
#ifndef MCLI_ENGINE_ENGINE_H
#define MCLI_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/config.h"
#include "tokenizers/tokenizer.h"
#include "util/status.h"

typedef struct mcli_model mcli_model;

enum { MCLI_TASK_EMBED = 1, MCLI_TASK_CLASSIFY = 2, MCLI_TASK_FILL_MASK = 4, MCLI_TASK_GENERATE = 8 };

typedef struct {
    const mcli_config *config;  /* sizes, labels, arch */
    unsigned tasks;             /* MCLI_TASK_* this model can do with the weights it has */
    int64_t n_params;
    size_t weight_bytes;
    const char *weights_format; /* "safetensors", "pytorch zip", ... */
    bool has_pooler;
} mcli_model_info;

typedef struct {
    int n_threads;              /* 0 = the cores available to the process */
} mcli_engine_opts;

mcli_status engine_load(const char *dir, const mcli_engine_opts *opts, mcli_model **out, mcli_err *err) MCLI_MUST_USE;
void engine_free(mcli_model *m);
const mcli_model_info *engine_info(const mcli_model *m);
const mcli_tokenizer *engine_tokenizer(const mcli_model *m);

/* One tokenized input sequence (ids from tokenizer_encode with special tokens). */
typedef struct {
    const int32_t *ids;
    const int32_t *type_ids;    /* may be NULL (all zero) */
    size_t len;
} mcli_seq;

typedef enum { MCLI_POOL_NONE, MCLI_POOL_CLS, MCLI_POOL_MEAN } mcli_pooling;

/* out: [n, hidden] for CLS/MEAN pooling; for NONE the last hidden states of every
 * sequence concatenated: sum(len_i) x hidden. Caller allocates out. */
mcli_status engine_embed(const mcli_model *m, const mcli_seq *seqs, size_t n, mcli_pooling pool,
                         bool normalize, float *out, mcli_err *err) MCLI_MUST_USE;

/* logits: [n, n_labels]; probs: [n, n_labels] softmax (sigmoid for multi-label); probs may be NULL. */
mcli_status engine_classify(const mcli_model *m, const mcli_seq *seqs, size_t n, float *logits, float *probs,
                            mcli_err *err) MCLI_MUST_USE;

/* Masked-LM logits at the given positions of one sequence: logits [n_pos, vocab]. */
mcli_status engine_mlm_logits(const mcli_model *m, const mcli_seq *seq, const size_t *positions, size_t n_pos,
                              float *logits, mcli_err *err) MCLI_MUST_USE;

/* Fill-mask: for every mask token in seq (the tokenizer's [MASK] id), the top_k vocabulary
 * entries by softmax probability, best first (ties: lower id first), as the transformers
 * fill-mask pipeline ranks them. On success *preds is [*n_masks * top_k] (row i = i-th mask
 * from the left), allocated here and freed by the caller with free(). No mask token ->
 * MCLI_ERR_INVALID_ARG; top_k is clamped to the vocabulary size (top_k >= 1). */
typedef struct {
    int32_t token_id;
    float score;                /* softmax probability */
} mcli_fill_pred;
mcli_status engine_fill_mask(const mcli_model *m, const mcli_seq *seq, int top_k, mcli_fill_pred **preds,
                             size_t *n_masks, mcli_err *err) MCLI_MUST_USE;

/* The CPUs this process may run on: the affinity mask, capped by a cgroup CPU quota; >= 1. */
int engine_cpus_available(void);

/* ---- generation (decoders) ---- */
typedef struct {
    int max_new_tokens;         /* default 50 */
    bool greedy;                /* true, or temperature == 0 -> argmax */
    float temperature;          /* default 1.0 */
    int top_k;                  /* 0 = off */
    float top_p;                /* 1.0 = off */
    float min_p;                /* 0 = off */
    float repetition_penalty;   /* 1.0 = off (transformers' CTRL-style penalty) */
    uint64_t seed;
    const char *const *stop;    /* stop strings; generation ends when the text contains one */
    size_t n_stop;
    bool ignore_eos;
} mcli_gen_params;

void engine_gen_params_default(mcli_gen_params *p);

/* Called once per generated token with the text it completes (may be empty while a UTF-8
 * sequence is incomplete). Return non-zero to cancel (client gone). */
typedef int (*mcli_token_cb)(void *user, int32_t token_id, const char *piece, size_t piece_len);

typedef struct {
    int32_t *ids;               /* [n] generated ids (prompt excluded); caller frees with gen_result_free */
    size_t n;
    char *text;                 /* generated text, stop string removed */
    const char *finish_reason;  /* "stop" (EOS or stop string), "length", "cancelled" */
    size_t n_prompt;
    double prompt_ms, gen_ms;
} mcli_gen_result;
void gen_result_free(mcli_gen_result *r);

/* Generates from prompt ids; the prompt must fit the context (max_positions - max_new_tokens
 * is the caller's job: see engine_chat_prompt for trimming). */
mcli_status engine_generate(const mcli_model *m, const int32_t *prompt, size_t n_prompt,
                            const mcli_gen_params *params, mcli_token_cb cb, void *user,
                            mcli_gen_result *out, mcli_err *err) MCLI_MUST_USE;

/* engine_generate's callback contract, in full: called once per sampled token, in order,
 * with the text that token releases. Text is held back while it could still be the start of
 * a stop string, and a stop string is never released. The EOS token (which ends the
 * generation and is not part of mcli_gen_result.ids) also gets a call, carrying whatever
 * text was still held back (often empty). The concatenated pieces equal result.text. */

/* ---- step API: one generation state per sequence, several advanced per step ----
 *
 *   engine_gen_new ---> NEW --step: prefill + sample--> RUNNING --step: forward + sample--> ...
 *                                                       |  EOS / stop string / length / cancel
 *                                                       v
 *                                                     DONE --engine_gen_result--> result
 *
 * engine_gen_step(gens, n) advances every unfinished gen by one token: prompts of new gens
 * are prefilled (one batched pass each), then the tokens sampled at the previous step are
 * run in ONE forward pass over all the sequences (the weights are read once per step, not
 * once per sequence), then one token is sampled per gen. Up to 64 gens per call.
 * Ownership: a mcli_gen belongs to the caller (engine_gen_free); it keeps a pointer to the
 * model, which must outlive it, and copies the prompt and params (stop strings included).
 * Thread-safety: a gen may be used by one thread at a time; different threads may step
 * different gens of one model concurrently. */
typedef struct mcli_gen mcli_gen;

/* Validates params and the prompt (non-empty, < n_positions tokens) and allocates the KV
 * cache for min(n_positions, n_prompt + max_new_tokens) positions. Nothing runs yet. */
mcli_status engine_gen_new(const mcli_model *m, const int32_t *prompt, size_t n_prompt,
                           const mcli_gen_params *params, mcli_gen **out, mcli_err *err) MCLI_MUST_USE;
/* gens: distinct states of the same model; finished ones are skipped. On error every gen
 * is left as it was before the call's failing stage; the error names what failed. */
mcli_status engine_gen_step(mcli_gen *const *gens, size_t n, mcli_err *err) MCLI_MUST_USE;
bool engine_gen_done(const mcli_gen *g);
/* The token sampled by the last step and the text it released (valid until the next call
 * on g). Returns false if the last step sampled nothing for g. */
bool engine_gen_last(const mcli_gen *g, int32_t *id, const char **piece, size_t *piece_len);
/* Ends g with finish_reason "cancelled" (keeps what was generated). */
void engine_gen_cancel(mcli_gen *g);
/* Moves the ids and text generated so far into *out (g may be freed afterwards). */
mcli_status engine_gen_result(mcli_gen *g, mcli_gen_result *out, mcli_err *err) MCLI_MUST_USE;
void engine_gen_free(mcli_gen *g);

/* DialoGPT-style chat prompt: turns[0..n_turns) (oldest first, user and bot alternating,
 * UTF-8, NUL-terminated) each followed by the EOS token. Whole turns are dropped from the
 * left until the prompt fits n_positions - max_new_tokens; if the newest turn alone does
 * not fit, only its last tokens are kept. *ids is malloc'ed for the caller (free()). */
mcli_status engine_chat_prompt(const mcli_model *m, const char *const *turns, size_t n_turns, int max_new_tokens,
                               int32_t **ids, size_t *n, mcli_err *err) MCLI_MUST_USE;

#endif
