/* scheduler.h - the layer between HTTP and the engine: one bounded queue per model, worker
 * threads that run jobs, dynamic batching of encoder jobs, cancellation.
 *
 *   HTTP thread                     sched (per model)                     engine
 *   ------------                    -----------------                     ------
 *   sched_job_new + fill inputs
 *   sched_submit ---- full? -> MCLI_ERR_BUSY (503 + Retry-After)
 *                    queued ----> worker pops the oldest job; for EMBED/CLASSIFY it
 *                                 also takes every queued job of the same shape
 *                                 (up to SCHED_MAX_BATCH texts), tokenizes them and
 *                                 runs them as padded batches of at most
 *                                 token_budget padded tokens ------------> engine_embed/classify
 *                                 GENERATE: the decode loop admits queued jobs
 *                                 between steps (tokenize, fit the context,
 *                                 engine_gen_new, on_start), then advances
 *                                 every active generation by one token in one
 *                                 batched step, on_token per token -------> engine_gen_step
 *                                 CALL: run the job's function on the worker
 *                    done <------ on_done(job) exactly once, on the worker thread
 *
 * Fairness: a decoder model has one decode loop that runs up to sched_opts.max_gen_batch
 * generations together (continuous batching): each step gives every active generation
 * exactly one token and reads the weights once for all of them; a new request joins at the
 * next step instead of waiting for the running ones to finish. Encoder models have one
 * worker: batching, not parallelism, is what makes many small requests cheap there.
 *
 * Cancellation: sched_job_cancel() (client gone) sets a flag; a queued job is completed
 * with MCLI_ERR_CANCELLED without running, a running generation stops at the next token.
 *
 * Ownership: a job is reference counted. sched_job_new returns one reference (the caller's);
 * sched_submit takes another that the scheduler drops after on_done. Inputs copied into the
 * job (texts, prompt, stop strings) are owned by the job and freed with it.
 * Thread-safety: sched_submit / sched_job_cancel / sched_depth may be called from any
 * thread. A job's outputs may be read once on_done has run (on_done is the hand-off).
 */
#ifndef MCLI_SCHED_SCHEDULER_H
#define MCLI_SCHED_SCHEDULER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "util/status.h"

#define SCHED_MAX_BATCH 64      /* texts per engine call */
#define SCHED_MAX_STOP 8        /* stop strings per generation */

typedef enum { SCHED_EMBED, SCHED_CLASSIFY, SCHED_GENERATE, SCHED_CALL } sched_kind;

typedef struct sched sched;
typedef struct sched_job sched_job;

typedef void (*sched_done_fn)(sched_job *job, void *user);
typedef void (*sched_start_fn)(sched_job *job, void *user);
/* Return non-zero to stop the generation (the client went away). */
typedef int (*sched_token_fn)(sched_job *job, void *user, int32_t id, const char *piece, size_t len);
typedef mcli_status (*sched_call_fn)(sched_job *job, const mcli_model *m, void *user, mcli_err *err);

struct sched_job {
    /* ---- inputs (set before sched_submit, read-only after) ---- */
    sched_kind kind;
    char **texts;               /* EMBED/CLASSIFY: [n_texts] owned NUL-terminated copies */
    size_t n_texts;
    mcli_pooling pool;          /* EMBED */
    bool normalize;             /* EMBED */
    bool truncate;              /* cut inputs to the context instead of failing */
    char *prompt;               /* GENERATE: owned copy of the prompt text, or */
    bool chat;                  /* GENERATE: texts are chat turns (oldest first) for engine_chat_prompt */
    mcli_gen_params params;     /* GENERATE; params.stop points into stop_buf */
    char *stop_buf[SCHED_MAX_STOP];
    sched_call_fn call;         /* CALL */
    sched_start_fn on_start;    /* GENERATE: prompt accepted, first token coming (optional) */
    sched_token_fn on_token;    /* GENERATE (optional) */
    sched_done_fn on_done;      /* required */
    void *user;                 /* passed to the callbacks; owned by the submitter */

    /* ---- outputs (valid once on_done runs) ---- */
    mcli_status status;
    mcli_err err;
    float *out;                 /* EMBED: [n_texts, dim]; CLASSIFY: logits [n_texts, dim] */
    float *probs;               /* CLASSIFY: [n_texts, dim] */
    size_t dim;
    size_t *n_tokens;           /* EMBED/CLASSIFY: [n_texts] tokens after truncation */
    size_t total_tokens;        /* input tokens (all texts, or the prompt) */
    bool any_truncated;
    mcli_gen_result gen;        /* GENERATE (gen.text stops at an embedded NUL: use text below) */
    char *text;                 /* GENERATE: the released pieces concatenated, text_len bytes (may hold NULs) */
    size_t text_len, text_cap;
    double queue_ms;            /* time spent queued */
    size_t batch_size;          /* texts in the engine call that served this job */

    /* ---- internal ---- */
    atomic_int refs;
    atomic_bool cancelled;
    double t_submit;
    mcli_gen *gen_state;        /* GENERATE while active in the decode loop */
    sched_job *next;
};

typedef struct {
    size_t queue_cap;           /* jobs waiting per model before 503; default 256 */
    int max_gen_batch;          /* generations decoded together per decoder model; default 16 */
    size_t token_budget;        /* padded tokens per encoder engine call; default 8192 */
} sched_opts;

/* Starts the workers for model m (not owned; must outlive the scheduler). */
mcli_status sched_new(const mcli_model *m, const char *name, const sched_opts *opts, sched **out,
                      mcli_err *err) MCLI_MUST_USE;
/* Cancels everything queued or running and joins the workers; every job gets its on_done.
 * Later submits fail with MCLI_ERR_BUSY. Idempotent. */
void sched_stop(sched *s);
/* sched_stop, then frees. NULL is a no-op. */
void sched_free(sched *s);

/* A zeroed job with one reference. NULL on allocation failure. */
sched_job *sched_job_new(sched_kind kind);
/* Copies text (len bytes) into the job's input list. */
mcli_status sched_job_add_text(sched_job *job, const char *text, size_t len, mcli_err *err) MCLI_MUST_USE;
/* Copies a stop string into the job's generation parameters. */
mcli_status sched_job_add_stop(sched_job *job, const char *stop, size_t len, mcli_err *err) MCLI_MUST_USE;
void sched_job_ref(sched_job *job);
void sched_job_unref(sched_job *job);
void sched_job_cancel(sched_job *job);
bool sched_job_cancelled(const sched_job *job);

/* Queues job; MCLI_ERR_BUSY if the queue is full, MCLI_ERR_CANCELLED if stopping. */
mcli_status sched_submit(sched *s, sched_job *job, mcli_err *err) MCLI_MUST_USE;
/* Cancels every queued and running job (shutdown deadline passed). */
void sched_cancel_all(sched *s);

/* Queued (not yet running) and running jobs. */
size_t sched_depth(const sched *s);
size_t sched_running(const sched *s);

#endif
