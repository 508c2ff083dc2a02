/* test_scheduler.c - the scheduler against the engine on the fixture models: dynamic batching
 * gives the same vectors as one-at-a-time engine calls, batches form when requests queue up,
 * a full queue says BUSY, cancellation works queued and mid-generation, batched decoding of
 * several generations matches the PyTorch greedy reference. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "sched/scheduler.h"

#define ENC_DIR MCLI_FIXTURES "/encoders/bert_base"
#define DEC_DIR MCLI_FIXTURES "/decoders/tiny-gpt2"

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
} waiter;

static waiter W = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
static atomic_int gate_open;

static void on_done(sched_job *job, void *user)
{
    (void)job;
    (void)user;
    pthread_mutex_lock(&W.lock);
    W.done++;
    pthread_cond_broadcast(&W.cond);
    pthread_mutex_unlock(&W.lock);
}

static void wait_done(int n)
{
    pthread_mutex_lock(&W.lock);
    while (W.done < n)
        pthread_cond_wait(&W.cond, &W.lock);
    pthread_mutex_unlock(&W.lock);
}

static void reset(void)
{
    W.done = 0;
    atomic_store(&gate_open, 0);
}

/* A CALL job that holds the worker until the gate opens, so that later jobs queue up. */
static mcli_status gate_call(sched_job *job, const mcli_model *m, void *user, mcli_err *err)
{
    (void)job;
    (void)m;
    (void)user;
    (void)err;
    while (!atomic_load(&gate_open))
        usleep(1000);
    return MCLI_OK;
}

static sched_job *gate_job(void)
{
    sched_job *j = sched_job_new(SCHED_CALL);
    j->call = gate_call;
    j->on_done = on_done;
    return j;
}

static const char *const TEXTS[] = {"the cat sat on the mat.", "i love this movie!", "a dog",
                                    "paris is the capital of france and a big city",
                                    "the big red dog and the small blue cat sat on a green mat and a red mat"};

static void embed_reference(const mcli_model *m, const char *text, float *out)
{
    mcli_err err;
    mcli_encoding e;
    memset(&e, 0, sizeof e);
    mcli_tok_opts o = {.add_special_tokens = true, .max_length = 16, .truncate = true};
    assert_int_equal(tokenizer_encode(engine_tokenizer(m), text, strlen(text), NULL, 0, &o, &e, &err), MCLI_OK);
    mcli_seq s = {.ids = e.ids, .type_ids = e.type_ids, .len = e.n};
    assert_int_equal(engine_embed(m, &s, 1, MCLI_POOL_MEAN, false, out, &err), MCLI_OK);
    encoding_free(&e);
}

static void queued_embeds_run_as_one_batch_with_unbatched_results(void **state)
{
    (void)state;
    mcli_err err;
    mcli_model *m = NULL;
    assert_int_equal(engine_load(ENC_DIR, NULL, &m, &err), MCLI_OK);
    sched_opts o = {.queue_cap = 64, .token_budget = 8192};
    sched *s = NULL;
    assert_int_equal(sched_new(m, "bert", &o, &s, &err), MCLI_OK);
    reset();
    sched_job *gate = gate_job();
    assert_int_equal(sched_submit(s, gate, &err), MCLI_OK);
    while (sched_running(s) == 0)
        usleep(1000);
    enum { N = 12 };
    sched_job *jobs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = sched_job_new(SCHED_EMBED);
        const char *t = TEXTS[i % 4];
        assert_int_equal(sched_job_add_text(jobs[i], t, strlen(t), &err), MCLI_OK);
        jobs[i]->pool = MCLI_POOL_MEAN;
        jobs[i]->on_done = on_done;
        assert_int_equal(sched_submit(s, jobs[i], &err), MCLI_OK);
    }
    assert_int_equal(sched_depth(s), N);
    atomic_store(&gate_open, 1);
    wait_done(N + 1);
    size_t dim = (size_t)engine_info(m)->config->hidden_size;
    float *want = malloc(dim * sizeof *want);
    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i]->status, MCLI_OK);
        assert_int_equal(jobs[i]->batch_size, N); /* all queued jobs went into one engine call */
        assert_int_equal(jobs[i]->dim, dim);
        embed_reference(m, TEXTS[i % 4], want);
        for (size_t k = 0; k < dim; k++)
            assert_true(fabsf(jobs[i]->out[k] - want[k]) < 1e-5f);
        sched_job_unref(jobs[i]);
    }
    free(want);
    sched_job_unref(gate);
    sched_free(s);
    engine_free(m);
}

static void small_token_budget_splits_batches_without_changing_results(void **state)
{
    (void)state;
    mcli_err err;
    mcli_model *m = NULL;
    assert_int_equal(engine_load(ENC_DIR, NULL, &m, &err), MCLI_OK);
    sched_opts o = {.queue_cap = 8, .token_budget = 16};
    sched *s = NULL;
    assert_int_equal(sched_new(m, "bert", &o, &s, &err), MCLI_OK);
    reset();
    sched_job *job = sched_job_new(SCHED_EMBED);
    for (int i = 0; i < 5; i++)
        assert_int_equal(sched_job_add_text(job, TEXTS[i], strlen(TEXTS[i]), &err), MCLI_OK);
    job->truncate = true;
    job->on_done = on_done;
    assert_int_equal(sched_submit(s, job, &err), MCLI_OK);
    wait_done(1);
    assert_int_equal(job->status, MCLI_OK);
    size_t dim = job->dim;
    float *want = malloc(dim * sizeof *want);
    for (int i = 0; i < 5; i++) {
        embed_reference(m, TEXTS[i], want);
        for (size_t k = 0; k < dim; k++)
            assert_true(fabsf(job->out[i * dim + k] - want[k]) < 1e-5f);
    }
    assert_true(job->any_truncated); /* text 4 has more than 16 tokens */
    assert_int_equal(job->n_tokens[4], 16);
    free(want);
    sched_job_unref(job);
    sched_free(s);
    engine_free(m);
}

static void full_queue_is_busy_and_queued_cancel_never_runs(void **state)
{
    (void)state;
    mcli_err err;
    mcli_model *m = NULL;
    assert_int_equal(engine_load(ENC_DIR, NULL, &m, &err), MCLI_OK);
    sched_opts o = {.queue_cap = 2};
    sched *s = NULL;
    assert_int_equal(sched_new(m, "bert", &o, &s, &err), MCLI_OK);
    reset();
    sched_job *gate = gate_job();
    assert_int_equal(sched_submit(s, gate, &err), MCLI_OK);
    while (sched_running(s) == 0)
        usleep(1000);
    sched_job *a = sched_job_new(SCHED_EMBED), *b = sched_job_new(SCHED_EMBED), *c = sched_job_new(SCHED_EMBED);
    sched_job *all[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sched_job_add_text(all[i], "a dog", 5, &err), MCLI_OK);
        all[i]->on_done = on_done;
    }
    assert_int_equal(sched_submit(s, a, &err), MCLI_OK);
    assert_int_equal(sched_submit(s, b, &err), MCLI_OK);
    assert_int_equal(sched_submit(s, c, &err), MCLI_ERR_BUSY);
    assert_non_null(strstr(err.msg, "queue full"));
    sched_job_cancel(a);
    atomic_store(&gate_open, 1);
    wait_done(3);
    assert_int_equal(b->status, MCLI_OK);
    assert_int_equal(a->status, MCLI_ERR_CANCELLED);
    for (int i = 0; i < 3; i++)
        sched_job_unref(all[i]);
    sched_job_unref(gate);
    sched_free(s);
    engine_free(m);
}

/* ---- generation ---- */

static json_t *greedy_ref(void)
{
    json_error_t je;
    json_t *root = json_load_file(MCLI_FIXTURES "/decoders/tiny-gpt2-ref.json", 0, &je);
    assert_non_null(root);
    return root;
}

static int stop_after_3(sched_job *job, void *user, int32_t id, const char *piece, size_t len)
{
    (void)user;
    (void)id;
    (void)piece;
    (void)len;
    return job->gen_state && job->text_len > 0 && ++*(int *)job->user >= 3;
}

static void batched_generations_match_the_greedy_reference(void **state)
{
    (void)state;
    mcli_err err;
    mcli_model *m = NULL;
    assert_int_equal(engine_load(DEC_DIR, NULL, &m, &err), MCLI_OK);
    json_t *root = greedy_ref();
    json_t *g = json_array_get(json_object_get(root, "greedy"), 0);
    const char *text = json_string_value(json_object_get(g, "text"));
    json_t *want = json_object_get(g, "ids");
    int max_new = (int)json_integer_value(json_object_get(g, "max_new_tokens"));
    sched *s = NULL;
    sched_opts o = {.queue_cap = 8, .max_gen_batch = 4};
    assert_int_equal(sched_new(m, "gpt", &o, &s, &err), MCLI_OK);
    reset();
    enum { N = 3 };
    sched_job *jobs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = sched_job_new(SCHED_GENERATE);
        jobs[i]->prompt = strdup(text);
        jobs[i]->params.greedy = true;
        jobs[i]->params.max_new_tokens = max_new;
        jobs[i]->on_done = on_done;
        assert_int_equal(sched_submit(s, jobs[i], &err), MCLI_OK);
    }
    wait_done(N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i]->status, MCLI_OK);
        assert_int_equal(jobs[i]->gen.n, json_array_size(want));
        for (size_t k = 0; k < jobs[i]->gen.n; k++)
            assert_int_equal(jobs[i]->gen.ids[k], json_integer_value(json_array_get(want, k)));
        assert_string_equal(jobs[i]->gen.finish_reason, "length");
        assert_int_equal(jobs[i]->total_tokens, json_array_size(json_object_get(g, "prompt")));
        sched_job_unref(jobs[i]);
    }
    json_decref(root);
    sched_free(s);
    engine_free(m);
}

static void token_callback_cancels_a_running_generation(void **state)
{
    (void)state;
    mcli_err err;
    mcli_model *m = NULL;
    assert_int_equal(engine_load(DEC_DIR, NULL, &m, &err), MCLI_OK);
    sched *s = NULL;
    assert_int_equal(sched_new(m, "gpt", NULL, &s, &err), MCLI_OK);
    reset();
    int count = 0;
    sched_job *job = sched_job_new(SCHED_GENERATE);
    job->prompt = strdup("the cat");
    job->params.max_new_tokens = 100;
    job->params.greedy = true;
    job->on_token = stop_after_3;
    job->on_done = on_done;
    job->user = &count;
    assert_int_equal(sched_submit(s, job, &err), MCLI_OK);
    wait_done(1);
    assert_int_equal(job->status, MCLI_ERR_CANCELLED);
    assert_true(count == 3);
    assert_true(job->gen.n < 100);
    sched_job_unref(job);
    sched_free(s);
    engine_free(m);
}

static void prompt_longer_than_context_is_invalid_unless_truncated(void **state)
{
    (void)state;
    mcli_err err;
    mcli_model *m = NULL;
    assert_int_equal(engine_load(DEC_DIR, NULL, &m, &err), MCLI_OK);
    sched *s = NULL;
    assert_int_equal(sched_new(m, "gpt", NULL, &s, &err), MCLI_OK);
    reset();
    char *longp = malloc(4001);
    for (int i = 0; i < 4000; i++)
        longp[i] = i % 2 ? ' ' : 'a';
    longp[4000] = '\0';
    sched_job *a = sched_job_new(SCHED_GENERATE), *b = sched_job_new(SCHED_GENERATE);
    a->prompt = strdup(longp);
    b->prompt = longp;
    b->truncate = true;
    a->params.max_new_tokens = b->params.max_new_tokens = 4;
    a->on_done = b->on_done = on_done;
    assert_int_equal(sched_submit(s, a, &err), MCLI_OK);
    assert_int_equal(sched_submit(s, b, &err), MCLI_OK);
    wait_done(2);
    assert_int_equal(a->status, MCLI_ERR_INVALID_ARG);
    assert_non_null(strstr(a->err.msg, "truncate"));
    assert_int_equal(b->status, MCLI_OK);
    assert_int_equal(b->total_tokens, 128 - 4);
    assert_int_equal(b->gen.n, 4);
    sched_job_unref(a);
    sched_job_unref(b);
    sched_free(s);
    engine_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(queued_embeds_run_as_one_batch_with_unbatched_results),
        cmocka_unit_test(small_token_budget_splits_batches_without_changing_results),
        cmocka_unit_test(full_queue_is_busy_and_queued_cancel_never_runs),
        cmocka_unit_test(batched_generations_match_the_greedy_reference),
        cmocka_unit_test(token_callback_cancels_a_running_generation),
        cmocka_unit_test(prompt_longer_than_context_is_invalid_unless_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
