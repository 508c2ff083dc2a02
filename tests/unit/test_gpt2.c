/* GPT-2 forward passes against the torch reference (tests/fixtures/gen/gen_gpt2_ref.py):
 * logits within 1e-4, KV-cache steps equal to the full pass, chunked prefill, batched steps of
 * several sequences, greedy ids identical, and the error paths. Uses the gpt2 API directly
 * (no tokenizer needed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gpt2.h"
#include "engine/model_internal.h"

#define MODEL_DIR MCLI_FIXTURES "/decoders/tiny-gpt2"
#define REF_PATH MCLI_FIXTURES "/decoders/tiny-gpt2-ref.json"
#define TOL 1e-4

typedef struct {
    mcli_model *m;
    json_t *ref;
} fixture;

static void model_free(mcli_model *m)
{
    if (!m)
        return;
    gpt2_free(m->gpt2);
    weights_free(m->weights);
    config_free(&m->config);
    free(m);
}

static mcli_model *model_open(int n_threads)
{
    mcli_err err;
    mcli_err_clear(&err);
    mcli_model *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->n_threads = n_threads;
    mcli_status st = config_load(MODEL_DIR, &m->config, &err);
    if (st == MCLI_OK)
        st = weights_open(MODEL_DIR, &m->weights, &err);
    if (st == MCLI_OK)
        st = gpt2_load(m, &err);
    if (st != MCLI_OK)
        fail_msg("loading %s: %s", MODEL_DIR, err.msg);
    return m;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    json_error_t je;
    f->ref = json_load_file(REF_PATH, 0, &je);
    if (!f->ref)
        fail_msg("%s: %s", REF_PATH, je.text);
    f->m = model_open(2);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    model_free(f->m);
    json_decref(f->ref);
    free(f);
    return 0;
}

static int32_t *ids_of(const json_t *arr, size_t *n)
{
    *n = json_array_size(arr);
    int32_t *ids = malloc((*n + 1) * sizeof *ids);
    assert_non_null(ids);
    for (size_t i = 0; i < *n; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return ids;
}

/* Max |a - ref[row]| over a row of reference logits. */
static double row_diff(const float *a, const json_t *ref_row, int V)
{
    assert_int_equal(json_array_size(ref_row), (size_t)V);
    double worst = 0.0;
    for (int i = 0; i < V; i++) {
        double d = fabs((double)a[i] - json_real_value(json_array_get(ref_row, i)));
        if (d > worst || isnan(d))
            worst = isnan(d) ? INFINITY : d;
    }
    return worst;
}

static void prompt_logits_match_torch_within_1e4(void **state)
{
    fixture *f = *state;
    const gpt2_model *g = f->m->gpt2;
    const int V = gpt2_n_vocab(g);
    assert_int_equal(V, json_integer_value(json_object_get(f->ref, "vocab_size")));
    const json_t *c = json_object_get(f->ref, "prompt_logits");
    size_t n;
    int32_t *ids = ids_of(json_object_get(c, "ids"), &n);
    gpt2_state *s;
    mcli_err err;
    assert_int_equal(gpt2_state_new(g, 16, &s, &err), MCLI_OK);
    float *all = malloc(n * (size_t)V * sizeof *all);
    assert_int_equal(gpt2_prefill(g, s, ids, n, all, &err), MCLI_OK);
    for (size_t t = 0; t < n; t++) {
        double d = row_diff(all + t * (size_t)V, json_array_get(json_object_get(c, "logits"), t), V);
        if (d > TOL)
            fail_msg("position %zu: max |diff| %g > %g", t, d, TOL);
    }
    /* The state's next-token logits are the last row. */
    assert_memory_equal(gpt2_state_logits(s), all + (n - 1) * (size_t)V, (size_t)V * sizeof(float));
    assert_int_equal(gpt2_state_len(s), (int)n);
    free(all);
    free(ids);
    gpt2_state_free(s);
}

/* 100 tokens: two prefill chunks (64 + 36 rows, the sgemm path) equal torch's full pass. */
static void prefill_in_two_chunks_matches_full_pass(void **state)
{
    fixture *f = *state;
    const gpt2_model *g = f->m->gpt2;
    const int V = gpt2_n_vocab(g);
    const json_t *c = json_object_get(f->ref, "incremental");
    size_t n;
    int32_t *ids = ids_of(json_object_get(c, "ids"), &n);
    assert_true(n > GPT2_MAX_ROWS);
    gpt2_state *s;
    mcli_err err;
    assert_int_equal(gpt2_state_new(g, (int)n, &s, &err), MCLI_OK);
    float *all = malloc(n * (size_t)V * sizeof *all);
    assert_int_equal(gpt2_prefill(g, s, ids, n, all, &err), MCLI_OK);
    for (size_t t = 0; t < n; t++) {
        double d = row_diff(all + t * (size_t)V, json_array_get(json_object_get(c, "logits"), t), V);
        if (d > TOL)
            fail_msg("position %zu: max |diff| %g", t, d);
    }
    free(all);
    free(ids);
    gpt2_state_free(s);
}

/* Prefill 20 tokens, then 80 single-token steps through the KV cache: the logits after
 * every step equal torch's full-sequence pass at that position. */
static void kv_cache_steps_match_full_pass(void **state)
{
    fixture *f = *state;
    const gpt2_model *g = f->m->gpt2;
    const int V = gpt2_n_vocab(g);
    const json_t *c = json_object_get(f->ref, "incremental");
    const json_t *logits = json_object_get(c, "logits");
    size_t n;
    int32_t *ids = ids_of(json_object_get(c, "ids"), &n);
    const size_t pre = (size_t)json_integer_value(json_object_get(c, "prefill"));
    gpt2_state *s;
    mcli_err err;
    assert_int_equal(gpt2_state_new(g, (int)n, &s, &err), MCLI_OK);
    assert_int_equal(gpt2_prefill(g, s, ids, pre, NULL, &err), MCLI_OK);
    double d = row_diff(gpt2_state_logits(s), json_array_get(logits, pre - 1), V);
    assert_true(d <= TOL);
    for (size_t t = pre; t < n; t++) {
        assert_int_equal(gpt2_step(g, &s, &ids[t], 1, &err), MCLI_OK);
        d = row_diff(gpt2_state_logits(s), json_array_get(logits, t), V);
        if (d > TOL)
            fail_msg("step at position %zu: max |diff| %g", t, d);
    }
    assert_int_equal(gpt2_state_len(s), (int)n);
    free(ids);
    gpt2_state_free(s);
}

/* Three sequences at different lengths advanced in one gpt2_step (one pass over the
 * weights) give each its own reference logits. */
static void batched_step_of_three_sequences_matches_reference(void **state)
{
    fixture *f = *state;
    const gpt2_model *g = f->m->gpt2;
    const int V = gpt2_n_vocab(g);
    const json_t *c = json_object_get(f->ref, "incremental");
    const json_t *logits = json_object_get(c, "logits");
    size_t n;
    int32_t *ids = ids_of(json_object_get(c, "ids"), &n);
    const size_t lens[3] = {5, 30, 71};
    gpt2_state *s[3];
    mcli_err err;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(gpt2_state_new(g, (int)n, &s[i], &err), MCLI_OK);
        assert_int_equal(gpt2_prefill(g, s[i], ids, lens[i], NULL, &err), MCLI_OK);
    }
    for (int step = 0; step < 6; step++) {
        int32_t next[3];
        for (int i = 0; i < 3; i++)
            next[i] = ids[lens[i] + (size_t)step];
        assert_int_equal(gpt2_step(g, s, next, 3, &err), MCLI_OK);
        for (int i = 0; i < 3; i++) {
            double d = row_diff(gpt2_state_logits(s[i]), json_array_get(logits, lens[i] + (size_t)step), V);
            if (d > TOL)
                fail_msg("sequence %d step %d: max |diff| %g", i, step, d);
        }
    }
    for (int i = 0; i < 3; i++)
        gpt2_state_free(s[i]);
    free(ids);
}

static int32_t argmax(const float *x, int n)
{
    int32_t b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

/* Greedy continuations (EOS not special here) have identical ids, including one that fills
 * the context to n_positions. */
static void greedy_ids_identical_to_torch(void **state)
{
    fixture *f = *state;
    const gpt2_model *g = f->m->gpt2;
    const int V = gpt2_n_vocab(g);
    const json_t *cases = json_object_get(f->ref, "greedy");
    for (size_t ci = 0; ci < json_array_size(cases); ci++) {
        const json_t *c = json_array_get(cases, ci);
        size_t np, ne;
        int32_t *prompt = ids_of(json_object_get(c, "prompt"), &np);
        int32_t *want = ids_of(json_object_get(c, "ids"), &ne);
        int cap = gpt2_n_ctx(g);
        gpt2_state *s;
        mcli_err err;
        assert_int_equal(gpt2_state_new(g, cap, &s, &err), MCLI_OK);
        assert_int_equal(gpt2_prefill(g, s, prompt, np, NULL, &err), MCLI_OK);
        for (size_t i = 0; i < ne; i++) {
            int32_t id = argmax(gpt2_state_logits(s), V);
            if (id != want[i])
                fail_msg("case %zu token %zu: got %d, torch %d", ci, i, id, want[i]);
            if (gpt2_state_len(s) < cap)
                assert_int_equal(gpt2_step(g, &s, &id, 1, &err), MCLI_OK);
        }
        if (strcmp(json_string_value(json_object_get(c, "name")), "reaches_n_positions") == 0) {
            assert_int_equal(np + ne, (size_t)cap);
            /* the cache is full: one more token is refused */
            int32_t id = 0;
            assert_int_equal(gpt2_step(g, &s, &id, 1, &err), MCLI_ERR_TOO_LARGE);
        }
        gpt2_state_free(s);
        free(prompt);
        free(want);
    }
}

/* One pool thread or two: the same logits within the parity tolerance (the weight row blocks
 * are grouped differently, so sums may differ in the last bits). */
static void single_thread_model_gives_same_logits(void **state)
{
    fixture *f = *state;
    mcli_model *m1 = model_open(1);
    const json_t *c = json_object_get(f->ref, "prompt_logits");
    size_t n;
    int32_t *ids = ids_of(json_object_get(c, "ids"), &n);
    gpt2_state *a, *b;
    mcli_err err;
    assert_int_equal(gpt2_state_new(f->m->gpt2, 16, &a, &err), MCLI_OK);
    assert_int_equal(gpt2_state_new(m1->gpt2, 16, &b, &err), MCLI_OK);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(gpt2_step(f->m->gpt2, &a, &ids[i], 1, &err), MCLI_OK);
        assert_int_equal(gpt2_step(m1->gpt2, &b, &ids[i], 1, &err), MCLI_OK);
    }
    const int V = gpt2_n_vocab(f->m->gpt2);
    for (int i = 0; i < V; i++)
        assert_float_equal(gpt2_state_logits(a)[i], gpt2_state_logits(b)[i], TOL);
    gpt2_state_free(a);
    gpt2_state_free(b);
    free(ids);
    model_free(m1);
}

static void bad_ids_and_full_cache_are_clear_errors(void **state)
{
    fixture *f = *state;
    const gpt2_model *g = f->m->gpt2;
    gpt2_state *s;
    mcli_err err;
    assert_int_equal(gpt2_state_new(g, 0, &s, &err), MCLI_ERR_TOO_LARGE);
    assert_int_equal(gpt2_state_new(g, gpt2_n_ctx(g) + 1, &s, &err), MCLI_ERR_TOO_LARGE);
    assert_int_equal(gpt2_state_new(g, 4, &s, &err), MCLI_OK);
    int32_t bad[2] = {1, gpt2_n_vocab(g)};
    assert_int_equal(gpt2_prefill(g, s, bad, 2, NULL, &err), MCLI_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "outside the vocabulary"));
    int32_t neg = -1;
    assert_int_equal(gpt2_step(g, &s, &neg, 1, &err), MCLI_ERR_INVALID_ARG);
    assert_int_equal(gpt2_prefill(g, s, bad, 0, NULL, &err), MCLI_ERR_INVALID_ARG);
    int32_t five[5] = {1, 2, 3, 4, 5};
    assert_int_equal(gpt2_prefill(g, s, five, 5, NULL, &err), MCLI_ERR_TOO_LARGE);
    assert_int_equal(gpt2_state_len(s), 0);
    gpt2_state *twice[2] = {s, s};
    int32_t two[2] = {1, 2};
    assert_int_equal(gpt2_step(g, twice, two, 2, &err), MCLI_ERR_INVALID_ARG);
    gpt2_state_free(s);
}

static void load_reports_generate_task_and_tied_head(void **state)
{
    fixture *f = *state;
    assert_true(f->m->info.tasks & MCLI_TASK_GENERATE);
    /* wte 317x64 + wpe 128x64 + ln_f 2x64 + 2 layers of (2x64 + 64x192 + 192 + 64x64 + 64 + 2x64 + 64x256 + 256
     * + 256x64 + 64) = 20288 + 8192 + 128 + 2 * 49984 (no lm_head: tied) */
    assert_int_equal(f->m->info.n_params, 317 * 64 + 128 * 64 + 128 + 2 * 49984);
    assert_int_equal(gpt2_eos_id(f->m->gpt2), 316);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(load_reports_generate_task_and_tied_head),
        cmocka_unit_test(prompt_logits_match_torch_within_1e4),
        cmocka_unit_test(prefill_in_two_chunks_matches_full_pass),
        cmocka_unit_test(kv_cache_steps_match_full_pass),
        cmocka_unit_test(batched_step_of_three_sequences_matches_reference),
        cmocka_unit_test(greedy_ids_identical_to_torch),
        cmocka_unit_test(single_thread_model_gives_same_logits),
        cmocka_unit_test(bad_ids_and_full_cache_are_clear_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
