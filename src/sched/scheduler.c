/* scheduler.c - per-model job queues, worker threads, dynamic batching, cancellation.
 * See scheduler.h for the state diagram and the ownership rules. */
#include "sched/scheduler.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "util/buf.h"

#define SCHED_MAX_WORKERS 16
#define SCHED_MAX_ACTIVE 64   /* engine_gen_step's limit (GPT2_MAX_ROWS) */

struct sched {
    const mcli_model *model;
    char name[256];
    sched_opts opts;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    sched_job *head, *tail;          /* FIFO of queued jobs (each holds one reference) */
    size_t depth;
    size_t running;
    bool stopping;
    int n_workers;
    pthread_t workers[SCHED_MAX_WORKERS];
    sched_job *current[SCHED_MAX_WORKERS];  /* job each encoder worker runs, for cancel_all */
    sched_job *current_gen[SCHED_MAX_ACTIVE]; /* generations in the decode loop, for cancel_all */
    bool lock_ok, wake_ok, joined;
};

typedef struct {
    sched *s;
    int slot;
} worker_arg;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---------------------------------------------------------------- jobs */

sched_job *sched_job_new(sched_kind kind)
{
    sched_job *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->kind = kind;
    job->pool = MCLI_POOL_MEAN;
    engine_gen_params_default(&job->params);
    atomic_init(&job->refs, 1);
    atomic_init(&job->cancelled, false);
    return job;
}

mcli_status sched_job_add_text(sched_job *job, const char *text, size_t len, mcli_err *err)
{
    if (job->n_texts >= SCHED_MAX_BATCH * 16)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "too many inputs (at most %d per request)", SCHED_MAX_BATCH * 16);
    char **grown = realloc(job->texts, (job->n_texts + 1) * sizeof *grown);
    if (!grown)
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory queuing input %zu", job->n_texts);
    job->texts = grown;
    char *copy = malloc(len + 1);
    if (!copy)
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory copying input %zu (%zu bytes)", job->n_texts, len);
    memcpy(copy, text, len);
    copy[len] = '\0';
    job->texts[job->n_texts++] = copy;
    return MCLI_OK;
}

mcli_status sched_job_add_stop(sched_job *job, const char *stop, size_t len, mcli_err *err)
{
    if (job->params.n_stop >= SCHED_MAX_STOP)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "\"stop\": at most %d stop strings", SCHED_MAX_STOP);
    if (len == 0)
        return MCLI_OK;
    char *copy = malloc(len + 1);
    if (!copy)
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory copying a stop string");
    memcpy(copy, stop, len);
    copy[len] = '\0';
    job->stop_buf[job->params.n_stop++] = copy;
    job->params.stop = (const char *const *)job->stop_buf;
    return MCLI_OK;
}

void sched_job_ref(sched_job *job) { atomic_fetch_add(&job->refs, 1); }

void sched_job_unref(sched_job *job)
{
    if (!job || atomic_fetch_sub(&job->refs, 1) != 1)
        return;
    for (size_t i = 0; i < job->n_texts; i++)
        free(job->texts[i]);
    free(job->texts);
    free(job->prompt);
    for (size_t i = 0; i < job->params.n_stop; i++)
        free(job->stop_buf[i]);
    free(job->out);
    free(job->probs);
    free(job->n_tokens);
    gen_result_free(&job->gen);
    free(job->text);
    engine_gen_free(job->gen_state);
    free(job);
}

void sched_job_cancel(sched_job *job) { atomic_store(&job->cancelled, true); }
bool sched_job_cancelled(const sched_job *job) { return atomic_load(&job->cancelled); }

/* ---------------------------------------------------------------- queue */

mcli_status sched_submit(sched *s, sched_job *job, mcli_err *err)
{
    if (!job->on_done)
        return mcli_fail(err, MCLI_ERR_INTERNAL, "sched_submit: job without on_done");
    pthread_mutex_lock(&s->lock);
    if (s->stopping) {
        pthread_mutex_unlock(&s->lock);
        return mcli_fail(err, MCLI_ERR_BUSY, "model %s is shutting down", s->name);
    }
    if (s->depth >= s->opts.queue_cap) {
        size_t cap = s->opts.queue_cap;
        pthread_mutex_unlock(&s->lock);
        return mcli_fail(err, MCLI_ERR_BUSY, "model %s: queue full (%zu requests waiting); retry later", s->name, cap);
    }
    sched_job_ref(job);
    job->t_submit = now_ms();
    job->next = NULL;
    if (s->tail)
        s->tail->next = job;
    else
        s->head = job;
    s->tail = job;
    s->depth++;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    return MCLI_OK;
}

/* Removes and returns the oldest job; lock held. */
static sched_job *queue_pop(sched *s)
{
    sched_job *job = s->head;
    if (!job)
        return NULL;
    s->head = job->next;
    if (!s->head)
        s->tail = NULL;
    job->next = NULL;
    s->depth--;
    return job;
}

static bool same_batch_shape(const sched_job *a, const sched_job *b)
{
    return a->kind == b->kind && (a->kind != SCHED_EMBED || (a->pool == b->pool && a->normalize == b->normalize));
}

/* Takes queued jobs shaped like first until the batch holds SCHED_MAX_BATCH texts; lock held.
 * batch[0] = first. Returns the number of jobs. */
static size_t queue_take_batch(sched *s, sched_job *first, sched_job **batch, size_t max_jobs)
{
    size_t n = 0, texts = first->n_texts;
    batch[n++] = first;
    sched_job *prev = NULL, *j = s->head;
    while (j && n < max_jobs && texts < SCHED_MAX_BATCH) {
        sched_job *next = j->next;
        if (same_batch_shape(first, j) && texts + j->n_texts <= SCHED_MAX_BATCH) {
            if (prev)
                prev->next = next;
            else
                s->head = next;
            if (s->tail == j)
                s->tail = prev;
            j->next = NULL;
            s->depth--;
            texts += j->n_texts;
            batch[n++] = j;
        } else {
            prev = j;
        }
        j = next;
    }
    return n;
}

/* Completes a job: on_done, then the scheduler's reference is dropped. */
static void job_finish(sched_job *job)
{
    job->on_done(job, job->user);
    sched_job_unref(job);
}

/* ---------------------------------------------------------------- encoders */

/* Tokenizes every text of job; on failure sets job->status. */
static void encode_tokenize(const mcli_model *m, sched_job *job, mcli_encoding *encs)
{
    const mcli_tokenizer *tok = engine_tokenizer(m);
    const mcli_config *cfg = engine_info(m)->config;
    mcli_tok_opts o = {.add_special_tokens = true, .max_length = (size_t)cfg->max_positions, .truncate = job->truncate};
    job->n_tokens = calloc(job->n_texts ? job->n_texts : 1, sizeof *job->n_tokens);
    if (!job->n_tokens) {
        job->status = mcli_fail(&job->err, MCLI_ERR_NOMEM, "out of memory tokenizing");
        return;
    }
    for (size_t i = 0; i < job->n_texts; i++) {
        mcli_status st = tokenizer_encode(tok, job->texts[i], strlen(job->texts[i]), NULL, 0, &o, &encs[i], &job->err);
        if (st == MCLI_ERR_TOO_LARGE) {
            job->status = mcli_fail(&job->err, MCLI_ERR_INVALID_ARG,
                                    "input %zu is longer than the model's context of %d tokens; "
                                    "send \"truncate\": true to cut it",
                                    i, cfg->max_positions);
            return;
        }
        if (st != MCLI_OK) {
            job->status = st;
            mcli_err_prefix(&job->err, "input %zu", i);
            return;
        }
        job->n_tokens[i] = encs[i].n;
        job->total_tokens += encs[i].n;
        if (encs[i].truncated)
            job->any_truncated = true;
    }
}

static void run_encode_batch(sched *s, sched_job **batch, size_t n_jobs)
{
    const mcli_model *m = s->model;
    const mcli_model_info *info = engine_info(m);
    sched_kind kind = batch[0]->kind;
    size_t dim = kind == SCHED_EMBED ? (size_t)info->config->hidden_size : (size_t)info->config->n_labels;
    size_t total_texts = 0;
    for (size_t j = 0; j < n_jobs; j++)
        total_texts += batch[j]->n_texts;

    mcli_encoding *encs = calloc(total_texts ? total_texts : 1, sizeof *encs);
    mcli_seq *seqs = calloc(total_texts ? total_texts : 1, sizeof *seqs);
    size_t *owner = calloc(total_texts ? total_texts : 1, sizeof *owner);  /* seq -> job index */
    size_t *row = calloc(total_texts ? total_texts : 1, sizeof *row);      /* seq -> text index in job */
    float *tmp = NULL, *tmp_p = NULL;
    if (!encs || !seqs || !owner || !row)
        goto nomem;

    size_t n_seq = 0, e = 0;
    for (size_t j = 0; j < n_jobs; j++) {
        sched_job *job = batch[j];
        job->batch_size = total_texts;
        job->dim = dim;
        if (sched_job_cancelled(job)) {
            job->status = mcli_fail(&job->err, MCLI_ERR_CANCELLED, "cancelled: the client went away");
            e += job->n_texts;
            continue;
        }
        if (dim == 0) {
            job->status = mcli_fail(&job->err, MCLI_ERR_UNSUPPORTED, "model %s has no labels to classify with", s->name);
            e += job->n_texts;
            continue;
        }
        encode_tokenize(m, job, encs + e);
        if (job->status == MCLI_OK) {
            job->out = calloc(job->n_texts * dim + 1, sizeof *job->out);
            if (kind == SCHED_CLASSIFY)
                job->probs = calloc(job->n_texts * dim + 1, sizeof *job->probs);
            if (!job->out || (kind == SCHED_CLASSIFY && !job->probs))
                job->status = mcli_fail(&job->err, MCLI_ERR_NOMEM, "out of memory for %zu outputs", job->n_texts);
        }
        if (job->status == MCLI_OK) {
            for (size_t i = 0; i < job->n_texts; i++) {
                seqs[n_seq] = (mcli_seq){.ids = encs[e + i].ids, .type_ids = encs[e + i].type_ids, .len = encs[e + i].n};
                owner[n_seq] = j;
                row[n_seq] = i;
                n_seq++;
            }
        }
        e += job->n_texts;
    }

    tmp = malloc((SCHED_MAX_BATCH * dim + 1) * sizeof *tmp);
    tmp_p = malloc((SCHED_MAX_BATCH * dim + 1) * sizeof *tmp_p);
    if (!tmp || !tmp_p)
        goto nomem;

    /* Shortest first (stable insertion sort; n_seq is at most a few hundred), so that each padded
     * batch holds sequences of similar length and little padding. */
    for (size_t i = 1; i < n_seq; i++) {
        mcli_seq sq = seqs[i];
        size_t ow = owner[i], rw = row[i], k = i;
        for (; k > 0 && seqs[k - 1].len > sq.len; k--) {
            seqs[k] = seqs[k - 1];
            owner[k] = owner[k - 1];
            row[k] = row[k - 1];
        }
        seqs[k] = sq;
        owner[k] = ow;
        row[k] = rw;
    }
    /* Padded batches: [start, end) with (end-start) * max_len <= token_budget. */
    for (size_t start = 0; start < n_seq;) {
        size_t end = start, max_len = 0;
        while (end < n_seq && end - start < SCHED_MAX_BATCH) {
            size_t ml = seqs[end].len > max_len ? seqs[end].len : max_len;
            if (end > start && (end - start + 1) * ml > s->opts.token_budget)
                break;
            max_len = ml;
            end++;
        }
        mcli_err err;
        mcli_err_clear(&err);
        mcli_status st = kind == SCHED_EMBED
                             ? engine_embed(m, seqs + start, end - start, batch[owner[start]]->pool,
                                            batch[owner[start]]->normalize, tmp, &err)
                             : engine_classify(m, seqs + start, end - start, tmp, tmp_p, &err);
        for (size_t q = start; q < end; q++) {
            sched_job *job = batch[owner[q]];
            if (st != MCLI_OK) {
                if (job->status == MCLI_OK) {
                    job->status = st;
                    job->err = err;
                }
                continue;
            }
            memcpy(job->out + row[q] * dim, tmp + (q - start) * dim, dim * sizeof *tmp);
            if (kind == SCHED_CLASSIFY)
                memcpy(job->probs + row[q] * dim, tmp_p + (q - start) * dim, dim * sizeof *tmp_p);
        }
        start = end;
    }
    goto done;

nomem:
    for (size_t j = 0; j < n_jobs; j++)
        if (batch[j]->status == MCLI_OK)
            batch[j]->status = mcli_fail(&batch[j]->err, MCLI_ERR_NOMEM, "out of memory batching %zu inputs", total_texts);
done:
    if (encs)
        for (size_t i = 0; i < total_texts; i++)
            encoding_free(&encs[i]);
    free(encs);
    free(seqs);
    free(owner);
    free(row);
    free(tmp);
    free(tmp_p);
}

/* ---------------------------------------------------------------- generation */

/* Appends a released piece to job->text; false when out of memory. */
static bool text_append(sched_job *job, const char *piece, size_t len)
{
    return buf_append(&job->text, &job->text_len, &job->text_cap, 0, piece, len) == MCLI_OK;
}

static int gen_token_cb(void *user, int32_t id, const char *piece, size_t len)
{
    sched_job *job = user;
    if (sched_job_cancelled(job))
        return 1;
    if (len && !text_append(job, piece, len))
        return 1;
    if (job->on_token && job->on_token(job, job->user, id, piece, len) != 0) {
        sched_job_cancel(job);
        return 1;
    }
    return 0;
}


/* Tokenizes a GENERATE job's prompt (or chat turns), fits it to the context and creates its
 * generation state. On failure sets job->status and returns false. */
static bool gen_prepare(sched *s, sched_job *job)
{
    const mcli_model *m = s->model;
    const mcli_config *cfg = engine_info(m)->config;
    const mcli_tokenizer *tok = engine_tokenizer(m);
    mcli_encoding enc;
    memset(&enc, 0, sizeof enc);
    int32_t *chat_ids = NULL;
    int32_t start_id[1];
    const int32_t *ids = NULL;
    size_t n = 0;
    size_t maxpos = cfg->max_positions > 1 ? (size_t)cfg->max_positions : 1024;
    size_t room = job->params.max_new_tokens > 0 ? (size_t)job->params.max_new_tokens : 0;
    if (room > maxpos - 1)
        room = maxpos - 1;
    if (job->chat && job->params.max_new_tokens >= (1 << 20))
        room = maxpos / 4;  /* "until the context is full": keep three quarters for the conversation */
    if (job->chat) {
        job->status = engine_chat_prompt(m, (const char *const *)job->texts, job->n_texts, (int)room, &chat_ids, &n,
                                         &job->err);
        if (job->status != MCLI_OK)
            goto out;
        ids = chat_ids;
    } else {
        mcli_tok_opts o = {.add_special_tokens = true, .max_length = 0, .truncate = false};
        const char *prompt = job->prompt ? job->prompt : "";
        job->status = tokenizer_encode(tok, prompt, strlen(prompt), NULL, 0, &o, &enc, &job->err);
        if (job->status != MCLI_OK) {
            mcli_err_prefix(&job->err, "prompt");
            goto out;
        }
        ids = enc.ids;
        n = enc.n;
    }
    if (n == 0) {  /* transformers starts an empty prompt from the BOS token */
        const mcli_special_ids *sp = tokenizer_special(tok);
        start_id[0] = sp->bos >= 0 ? sp->bos : (sp->eos >= 0 ? sp->eos : 0);
        ids = start_id;
        n = 1;
    }
    if (n + room > maxpos || n >= maxpos) {
        if (job->truncate && room < maxpos) {
            size_t keep = maxpos - (room ? room : 1);
            ids += n - keep;
            n = keep;
        } else if (n >= maxpos) {
            job->status = mcli_fail(&job->err, MCLI_ERR_INVALID_ARG,
                                    "the prompt has %zu tokens, the model's context is %zu; "
                                    "shorten it or send \"truncate\": true to keep its end",
                                    n, maxpos);
            goto out;
        } else {
            room = maxpos - n;  /* generation stops at the end of the context: "length" */
        }
    }
    job->params.max_new_tokens = (int)room;
    job->total_tokens = n;
    job->status = engine_gen_new(m, ids, n, &job->params, &job->gen_state, &job->err);
    if (job->status == MCLI_ERR_TOO_LARGE)
        job->status = MCLI_ERR_INVALID_ARG;
out:
    encoding_free(&enc);
    free(chat_ids);
    return job->status == MCLI_OK;
}

/* Moves a finished (or failed) generation's result into the job and frees its state. */
static void gen_collect(sched_job *job)
{
    if (job->gen_state) {
        if (job->status == MCLI_OK) {
            job->status = engine_gen_result(job->gen_state, &job->gen, &job->err);
            if (job->status == MCLI_OK && job->gen.finish_reason && strcmp(job->gen.finish_reason, "cancelled") == 0)
                job->status = mcli_fail(&job->err, MCLI_ERR_CANCELLED, "cancelled: the client went away");
        }
        engine_gen_free(job->gen_state);
        job->gen_state = NULL;
    }
}

/* The decode loop of a decoder model: admits queued jobs between steps, advances every active
 * generation by one token per step, completes the finished ones. CALL jobs run in between. */
static void *decoder_main(void *p)
{
    worker_arg *wa = p;
    sched *s = wa->s;
    free(wa);
    sched_job *active[SCHED_MAX_ACTIVE];
    mcli_gen *gens[SCHED_MAX_ACTIVE];
    size_t n_active = 0;
    size_t max_active = (size_t)s->opts.max_gen_batch;
    for (;;) {
        sched_job *admit[SCHED_MAX_ACTIVE];
        size_t n_admit = 0;
        pthread_mutex_lock(&s->lock);
        while (!s->head && n_active == 0 && !s->stopping)
            pthread_cond_wait(&s->wake, &s->lock);
        if (s->stopping && !s->head && n_active == 0) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        while (s->head && n_active + n_admit < max_active)
            admit[n_admit++] = queue_pop(s);
        s->running += n_admit;
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->lock);

        double t = now_ms();
        for (size_t i = 0; i < n_admit; i++) {
            sched_job *job = admit[i];
            job->queue_ms = t - job->t_submit;
            job->status = MCLI_OK;
            bool ok = false;
            if (stopping || sched_job_cancelled(job))
                job->status = mcli_fail(&job->err, MCLI_ERR_CANCELLED, "cancelled before it ran");
            else if (job->kind == SCHED_CALL)
                job->status = job->call ? job->call(job, s->model, job->user, &job->err)
                                        : mcli_fail(&job->err, MCLI_ERR_INTERNAL, "CALL job without a function");
            else if (job->kind != SCHED_GENERATE)
                job->status = mcli_fail(&job->err, MCLI_ERR_UNSUPPORTED, "model %s is a decoder: it only generates",
                                        s->name);
            else
                ok = gen_prepare(s, job);
            if (ok) {
                pthread_mutex_lock(&s->lock);
                active[n_active] = job;
                gens[n_active] = job->gen_state;
                s->current_gen[n_active] = job;
                n_active++;
                pthread_mutex_unlock(&s->lock);
                if (job->on_start)
                    job->on_start(job, job->user);
            } else {
                gen_collect(job);
                pthread_mutex_lock(&s->lock);
                s->running--;
                pthread_mutex_unlock(&s->lock);
                job_finish(job);
            }
        }
        if (n_active == 0)
            continue;

        for (size_t i = 0; i < n_active; i++)
            if (sched_job_cancelled(active[i]) || s->stopping)
                engine_gen_cancel(gens[i]);
        mcli_err err;
        mcli_err_clear(&err);
        mcli_status st = engine_gen_step(gens, n_active, &err);
        for (size_t i = 0; i < n_active; i++) {
            sched_job *job = active[i];
            if (st != MCLI_OK) {
                job->status = st;
                job->err = err;
                engine_gen_cancel(gens[i]);
                continue;
            }
            int32_t id;
            const char *piece;
            size_t len;
            if (engine_gen_last(gens[i], &id, &piece, &len) && gen_token_cb(job, id, piece, len) != 0)
                engine_gen_cancel(gens[i]);
        }
        /* Complete the finished ones, keeping the order of the others. */
        size_t kept = 0;
        for (size_t i = 0; i < n_active; i++) {
            sched_job *job = active[i];
            if (!engine_gen_done(gens[i])) {
                active[kept] = job;
                gens[kept] = gens[i];
                kept++;
                continue;
            }
            gen_collect(job);
            pthread_mutex_lock(&s->lock);
            s->running--;
            pthread_mutex_unlock(&s->lock);
            job_finish(job);
        }
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < SCHED_MAX_ACTIVE; i++)
            s->current_gen[i] = i < kept ? active[i] : NULL;
        pthread_mutex_unlock(&s->lock);
        n_active = kept;
    }
    return NULL;
}

/* ---------------------------------------------------------------- workers */

static void *worker_main(void *p)
{
    worker_arg *wa = p;
    sched *s = wa->s;
    int slot = wa->slot;
    free(wa);
    sched_job *batch[SCHED_MAX_BATCH];
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (!s->head && !s->stopping)
            pthread_cond_wait(&s->wake, &s->lock);
        sched_job *job = queue_pop(s);
        if (!job) {  /* stopping and drained */
            pthread_mutex_unlock(&s->lock);
            break;
        }
        size_t n_jobs = 1;
        batch[0] = job;
        if (job->kind == SCHED_EMBED || job->kind == SCHED_CLASSIFY)
            n_jobs = queue_take_batch(s, job, batch, SCHED_MAX_BATCH);
        s->running += n_jobs;
        s->current[slot] = job;
        pthread_mutex_unlock(&s->lock);

        double t = now_ms();
        for (size_t j = 0; j < n_jobs; j++) {
            batch[j]->queue_ms = t - batch[j]->t_submit;
            batch[j]->status = MCLI_OK;
        }
        if (s->stopping || (n_jobs == 1 && sched_job_cancelled(job))) {
            for (size_t j = 0; j < n_jobs; j++)
                batch[j]->status = mcli_fail(&batch[j]->err, MCLI_ERR_CANCELLED, "cancelled before it ran");
        } else if (job->kind == SCHED_EMBED || job->kind == SCHED_CLASSIFY) {
            run_encode_batch(s, batch, n_jobs);
        } else if (job->kind == SCHED_GENERATE) {
            job->status = mcli_fail(&job->err, MCLI_ERR_UNSUPPORTED, "model %s is an encoder: it cannot generate text",
                                    s->name);
        } else {
            job->status = job->call ? job->call(job, s->model, job->user, &job->err)
                                    : mcli_fail(&job->err, MCLI_ERR_INTERNAL, "CALL job without a function");
        }

        pthread_mutex_lock(&s->lock);
        s->current[slot] = NULL;
        s->running -= n_jobs;
        pthread_mutex_unlock(&s->lock);
        for (size_t j = 0; j < n_jobs; j++)
            job_finish(batch[j]);
    }
    return NULL;
}

mcli_status sched_new(const mcli_model *m, const char *name, const sched_opts *opts, sched **out, mcli_err *err)
{
    *out = NULL;
    sched *s = calloc(1, sizeof *s);
    if (!s)
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory creating the scheduler for %s", name);
    s->model = m;
    snprintf(s->name, sizeof s->name, "%s", name ? name : "model");
    s->opts.queue_cap = opts && opts->queue_cap ? opts->queue_cap : 256;
    s->opts.max_gen_batch = opts && opts->max_gen_batch > 0 ? opts->max_gen_batch : 16;
    s->opts.token_budget = opts && opts->token_budget ? opts->token_budget : 8192;
    if (s->opts.max_gen_batch > SCHED_MAX_ACTIVE)
        s->opts.max_gen_batch = SCHED_MAX_ACTIVE;
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        goto fail_sync;
    s->lock_ok = true;
    if (pthread_cond_init(&s->wake, NULL) != 0)
        goto fail_sync;
    s->wake_ok = true;

    bool decoder = (engine_info(m)->tasks & MCLI_TASK_GENERATE) != 0;
    for (int i = 0; i < 1; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) {
            sched_free(s);
            return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory starting workers for %s", name);
        }
        wa->s = s;
        wa->slot = i;
        if (pthread_create(&s->workers[i], NULL, decoder ? decoder_main : worker_main, wa) != 0) {
            free(wa);
            sched_free(s);
            return mcli_fail(err, MCLI_ERR_INTERNAL, "cannot start worker thread %d for %s", i, name);
        }
        s->n_workers++;
    }
    *out = s;
    return MCLI_OK;

fail_sync:
    sched_free(s);
    return mcli_fail(err, MCLI_ERR_INTERNAL, "cannot create the scheduler's lock for %s", name);
}

void sched_cancel_all(sched *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    for (sched_job *j = s->head; j; j = j->next)
        sched_job_cancel(j);
    for (int i = 0; i < s->n_workers; i++)
        if (s->current[i])
            sched_job_cancel(s->current[i]);
    for (int i = 0; i < SCHED_MAX_ACTIVE; i++)
        if (s->current_gen[i])
            sched_job_cancel(s->current_gen[i]);
    pthread_mutex_unlock(&s->lock);
}

void sched_stop(sched *s)
{
    if (!s || s->joined)
        return;
    if (s->lock_ok) {
        pthread_mutex_lock(&s->lock);
        s->stopping = true;
        for (sched_job *j = s->head; j; j = j->next)
            sched_job_cancel(j);
        for (int i = 0; i < s->n_workers; i++)
            if (s->current[i])
                sched_job_cancel(s->current[i]);
        if (s->wake_ok)
            pthread_cond_broadcast(&s->wake);
        pthread_mutex_unlock(&s->lock);
    }
    for (int i = 0; i < s->n_workers; i++)
        pthread_join(s->workers[i], NULL);
    s->joined = true;
}

void sched_free(sched *s)
{
    if (!s)
        return;
    sched_stop(s);
    if (s->wake_ok)
        pthread_cond_destroy(&s->wake);
    if (s->lock_ok)
        pthread_mutex_destroy(&s->lock);
    free(s);
}

size_t sched_depth(const sched *s)
{
    pthread_mutex_lock((pthread_mutex_t *)&s->lock);
    size_t d = s->depth;
    pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
    return d;
}

size_t sched_running(const sched *s)
{
    pthread_mutex_lock((pthread_mutex_t *)&s->lock);
    size_t r = s->running;
    pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
    return r;
}
