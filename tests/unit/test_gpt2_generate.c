/* engine_generate, the mcli_gen step API and chat prompts on the tiny GPT-2 fixture (loaded with
 * engine_load, tokenizer included): greedy ids equal torch's, EOS and length endings, stop
 * strings cut from text and stream alike, cancellation, seeded reproducibility, top-k 1 ==
 * greedy, batched steps == separate runs, DialoGPT turn joining and left trimming. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

#define MODEL_DIR MCLI_FIXTURES "/decoders/tiny-gpt2"
#define REF_PATH MCLI_FIXTURES "/decoders/tiny-gpt2-ref.json"

typedef struct {
    mcli_model *m;
    json_t *ref;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    json_error_t je;
    f->ref = json_load_file(REF_PATH, 0, &je);
    if (!f->ref)
        fail_msg("%s: %s", REF_PATH, je.text);
    mcli_err err;
    mcli_engine_opts o = {.n_threads = 2};
    if (engine_load(MODEL_DIR, &o, &f->m, &err) != MCLI_OK)
        fail_msg("%s", err.msg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    engine_free(f->m);
    json_decref(f->ref);
    free(f);
    return 0;
}

static int32_t *ids_of(const json_t *arr, size_t *n)
{
    *n = json_array_size(arr);
    int32_t *ids = malloc((*n + 1) * sizeof *ids);
    for (size_t i = 0; i < *n; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return ids;
}

static const json_t *greedy_case(const fixture *f, const char *name)
{
    const json_t *cases = json_object_get(f->ref, "greedy");
    for (size_t i = 0; i < json_array_size(cases); i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(cases, i), "name")), name) == 0)
            return json_array_get(cases, i);
    fail_msg("no greedy case %s", name);
    return NULL;
}

/* Collects streamed pieces; cancels after `cancel_after` calls if > 0. */
typedef struct {
    char text[8192];
    size_t len;
    int calls;
    int cancel_after;
    int32_t last_id;
} sink;

static int sink_cb(void *user, int32_t id, const char *piece, size_t len)
{
    sink *s = user;
    assert_true(s->len + len < sizeof s->text);
    memcpy(s->text + s->len, piece, len);
    s->len += len;
    s->text[s->len] = '\0';
    s->calls++;
    s->last_id = id;
    return s->cancel_after > 0 && s->calls >= s->cancel_after;
}

static void greedy_generation_fills_context_with_torch_ids(void **state)
{
    fixture *f = *state;
    const json_t *c = greedy_case(f, "reaches_n_positions");
    size_t np, ne;
    int32_t *prompt = ids_of(json_object_get(c, "prompt"), &np);
    int32_t *want = ids_of(json_object_get(c, "ids"), &ne);
    mcli_gen_params p;
    engine_gen_params_default(&p);
    p.greedy = true;
    p.ignore_eos = true;
    p.max_new_tokens = 500; /* more than fits: the context ends it */
    mcli_gen_result r;
    mcli_err err;
    assert_int_equal(engine_generate(f->m, prompt, np, &p, NULL, NULL, &r, &err), MCLI_OK);
    assert_int_equal(r.n, ne);
    assert_int_equal(np + r.n, 128);
    assert_memory_equal(r.ids, want, ne * sizeof *want);
    assert_string_equal(r.finish_reason, "length");
    assert_int_equal(r.n_prompt, np);
    gen_result_free(&r);
    free(prompt);
    free(want);
}

/* The same case without ignore_eos ends at torch's first EOS, which is not returned. */
static void eos_ends_generation_with_stop_and_is_not_returned(void **state)
{
    fixture *f = *state;
    const json_t *c = greedy_case(f, "reaches_n_positions");
    const int32_t eos = (int32_t)json_integer_value(json_object_get(f->ref, "eos_token_id"));
    size_t np, ne;
    int32_t *prompt = ids_of(json_object_get(c, "prompt"), &np);
    int32_t *want = ids_of(json_object_get(c, "ids"), &ne);
    size_t first_eos = 0;
    while (first_eos < ne && want[first_eos] != eos)
        first_eos++;
    assert_true(first_eos < ne); /* the fixture is built so that greedy meets EOS */
    mcli_gen_params p;
    engine_gen_params_default(&p);
    p.greedy = true;
    p.max_new_tokens = 100;
    sink s = {0};
    mcli_gen_result r;
    mcli_err err;
    assert_int_equal(engine_generate(f->m, prompt, np, &p, sink_cb, &s, &r, &err), MCLI_OK);
    assert_string_equal(r.finish_reason, "stop");
    assert_int_equal(r.n, first_eos);
    assert_memory_equal(r.ids, want, first_eos * sizeof *want);
    /* one callback per token plus one for the EOS; the pieces add up to the text */
    assert_int_equal(s.calls, (int)first_eos + 1);
    assert_int_equal(s.last_id, eos);
    assert_string_equal(s.text, r.text);
    /* the text is the tokenizer's decoding of the ids */
    char *dec = NULL;
    assert_int_equal(tokenizer_decode(engine_tokenizer(f->m), r.ids, r.n, true, &dec, &err), MCLI_OK);
    assert_string_equal(dec, r.text);
    free(dec);
    gen_result_free(&r);
    free(prompt);
    free(want);
}

static void max_new_tokens_ends_with_length(void **state)
{
    fixture *f = *state;
    const json_t *c = greedy_case(f, "longer_than_prompt");
    size_t np, ne;
    int32_t *prompt = ids_of(json_object_get(c, "prompt"), &np);
    int32_t *want = ids_of(json_object_get(c, "ids"), &ne);
    assert_true(ne > np);
    mcli_gen_params p;
    engine_gen_params_default(&p);
    p.greedy = true;
    p.max_new_tokens = (int)ne;
    mcli_gen_result r;
    mcli_err err;
    assert_int_equal(engine_generate(f->m, prompt, np, &p, NULL, NULL, &r, &err), MCLI_OK);
    assert_int_equal(r.n, ne);
    assert_memory_equal(r.ids, want, ne * sizeof *want);
    assert_string_equal(r.finish_reason, "length");
    gen_result_free(&r);
    p.max_new_tokens = 0;
    assert_int_equal(engine_generate(f->m, prompt, np, &p, NULL, NULL, &r, &err), MCLI_OK);
    assert_int_equal(r.n, 0);
    assert_string_equal(r.text, "");
    assert_string_equal(r.finish_reason, "length");
    gen_result_free(&r);
    free(prompt);
    free(want);
}

/* Greedy text of "the cat sat on" is "e token\x06\beeeee...": stop "eee" cuts before the first
 * "eee", and the stream never shows the "ee" that was held back. */
static void stop_string_is_cut_from_text_and_stream(void **state)
{
    fixture *f = *state;
    const json_t *c = greedy_case(f, "longer_than_prompt");
    size_t np;
    int32_t *prompt = ids_of(json_object_get(c, "prompt"), &np);
    mcli_gen_params p;
    engine_gen_params_default(&p);
    p.greedy = true;
    p.max_new_tokens = 26;
    mcli_gen_result full;
    mcli_err err;
    assert_int_equal(engine_generate(f->m, prompt, np, &p, NULL, NULL, &full, &err), MCLI_OK);
    const char *hit = strstr(full.text, "eee");
    assert_non_null(hit);
    const size_t cut = (size_t)(hit - full.text);
    const char *stops[2] = {"zzz-never", "eee"};
    p.stop = stops;
    p.n_stop = 2;
    sink s = {0};
    mcli_gen_result r;
    assert_int_equal(engine_generate(f->m, prompt, np, &p, sink_cb, &s, &r, &err), MCLI_OK);
    assert_string_equal(r.finish_reason, "stop");
    assert_int_equal(strlen(r.text), cut);
    assert_memory_equal(r.text, full.text, cut);
    assert_string_equal(s.text, r.text);
    assert_true(r.n < full.n);
    gen_result_free(&r);
    gen_result_free(&full);
    free(prompt);
}

static void callback_nonzero_cancels(void **state)
{
    fixture *f = *state;
    const int32_t prompt[3] = {5, 6, 7};
    mcli_gen_params p;
    engine_gen_params_default(&p);
    p.max_new_tokens = 40;
    p.ignore_eos = true;
    sink s = {.cancel_after = 3};
    mcli_gen_result r;
    mcli_err err;
    assert_int_equal(engine_generate(f->m, prompt, 3, &p, sink_cb, &s, &r, &err), MCLI_OK);
    assert_string_equal(r.finish_reason, "cancelled");
    assert_int_equal(r.n, 3);
    assert_int_equal(s.calls, 3);
    gen_result_free(&r);
}

static void seeded_sampling_is_reproducible_and_top_k_one_is_greedy(void **state)
{
    fixture *f = *state;
    const int32_t prompt[4] = {40, 41, 42, 43};
    mcli_gen_params p;
    engine_gen_params_default(&p);
    p.max_new_tokens = 30;
    p.ignore_eos = true;
    p.temperature = 1.5f; /* spread the toy model's distribution */
    p.seed = 1234;
    mcli_gen_result a, b, c, g, k;
    mcli_err err;
    assert_int_equal(engine_generate(f->m, prompt, 4, &p, NULL, NULL, &a, &err), MCLI_OK);
    assert_int_equal(engine_generate(f->m, prompt, 4, &p, NULL, NULL, &b, &err), MCLI_OK);
    p.seed = 1235;
    assert_int_equal(engine_generate(f->m, prompt, 4, &p, NULL, NULL, &c, &err), MCLI_OK);
    assert_int_equal(a.n, 30);
    assert_memory_equal(a.ids, b.ids, a.n * sizeof *a.ids);
    assert_string_equal(a.text, b.text);
    assert_memory_not_equal(a.ids, c.ids, a.n * sizeof *a.ids);
    p.greedy = true;
    assert_int_equal(engine_generate(f->m, prompt, 4, &p, NULL, NULL, &g, &err), MCLI_OK);
    p.greedy = false;
    p.top_k = 1;
    assert_int_equal(engine_generate(f->m, prompt, 4, &p, NULL, NULL, &k, &err), MCLI_OK);
    assert_int_equal(g.n, k.n);
    assert_memory_equal(g.ids, k.ids, g.n * sizeof *g.ids);
    gen_result_free(&a);
    gen_result_free(&b);
    gen_result_free(&c);
    gen_result_free(&g);
    gen_result_free(&k);
}

/* Three gens stepped together (one forward pass per step) give the ids each gives alone. */
static void batched_gen_steps_equal_separate_generations(void **state)
{
    fixture *f = *state;
    const int32_t prompts[3][5] = {{1, 2, 3, 4, 5}, {100, 200}, {7, 7, 7, 9}};
    const size_t lens[3] = {5, 2, 4};
    const int max_new[3] = {12, 20, 7};
    mcli_gen_params p;
    engine_gen_params_default(&p);
    p.ignore_eos = true;
    p.top_p = 0.9f;
    mcli_gen *gens[3];
    mcli_err err;
    for (int i = 0; i < 3; i++) {
        p.max_new_tokens = max_new[i];
        p.seed = (uint64_t)i;
        assert_int_equal(engine_gen_new(f->m, prompts[i], lens[i], &p, &gens[i], &err), MCLI_OK);
    }
    int steps = 0;
    while (!engine_gen_done(gens[0]) || !engine_gen_done(gens[1]) || !engine_gen_done(gens[2])) {
        assert_int_equal(engine_gen_step(gens, 3, &err), MCLI_OK);
        assert_true(++steps <= 20);
    }
    for (int i = 0; i < 3; i++) {
        mcli_gen_result together, alone;
        assert_int_equal(engine_gen_result(gens[i], &together, &err), MCLI_OK);
        p.max_new_tokens = max_new[i];
        p.seed = (uint64_t)i;
        assert_int_equal(engine_generate(f->m, prompts[i], lens[i], &p, NULL, NULL, &alone, &err), MCLI_OK);
        assert_int_equal(together.n, (size_t)max_new[i]);
        assert_int_equal(alone.n, together.n);
        assert_memory_equal(alone.ids, together.ids, alone.n * sizeof *alone.ids);
        assert_string_equal(alone.text, together.text);
        gen_result_free(&together);
        gen_result_free(&alone);
        engine_gen_free(gens[i]);
    }
}

static void bad_prompts_and_params_are_clear_errors(void **state)
{
    fixture *f = *state;
    int32_t long_prompt[128] = {0};
    mcli_gen_params p;
    engine_gen_params_default(&p);
    mcli_gen_result r;
    mcli_err err;
    assert_int_equal(engine_generate(f->m, long_prompt, 128, &p, NULL, NULL, &r, &err), MCLI_ERR_TOO_LARGE);
    assert_int_equal(engine_generate(f->m, long_prompt, 0, &p, NULL, NULL, &r, &err), MCLI_ERR_INVALID_ARG);
    p.top_p = 2.0f;
    assert_int_equal(engine_generate(f->m, long_prompt, 3, &p, NULL, NULL, &r, &err), MCLI_ERR_INVALID_ARG);
    engine_gen_params_default(&p);
    const int32_t bad_id[2] = {1, 5000};
    assert_int_equal(engine_generate(f->m, bad_id, 2, &p, NULL, NULL, &r, &err), MCLI_ERR_INVALID_ARG);
    const char *empty_stop[1] = {""};
    p.stop = empty_stop;
    p.n_stop = 1;
    assert_int_equal(engine_generate(f->m, long_prompt, 3, &p, NULL, NULL, &r, &err), MCLI_ERR_INVALID_ARG);
}

static void encode(const fixture *f, const char *text, int32_t *out, size_t *n)
{
    mcli_encoding e;
    mcli_err err;
    const mcli_tok_opts o = {.add_special_tokens = false};
    assert_int_equal(tokenizer_encode(engine_tokenizer(f->m), text, strlen(text), NULL, 0, &o, &e, &err), MCLI_OK);
    memcpy(out, e.ids, e.n * sizeof *out);
    *n = e.n;
    encoding_free(&e);
}

/* turns joined with EOS after each; the oldest whole turns dropped to fit n_positions -
 * max_new_tokens; a newest turn that alone does not fit keeps its last tokens. */
static void chat_prompt_joins_turns_with_eos_and_trims_from_left(void **state)
{
    fixture *f = *state;
    const int32_t eos = 316;
    const char *turns[3] = {"hello there", "how are you?", "she sells sea shells"};
    int32_t t[3][64];
    size_t tn[3];
    for (int i = 0; i < 3; i++)
        encode(f, turns[i], t[i], &tn[i]);
    int32_t *ids;
    size_t n;
    mcli_err err;
    assert_int_equal(engine_chat_prompt(f->m, turns, 3, 20, &ids, &n, &err), MCLI_OK);
    assert_int_equal(n, tn[0] + tn[1] + tn[2] + 3);
    size_t k = 0;
    for (int i = 0; i < 3; i++) {
        assert_memory_equal(ids + k, t[i], tn[i] * sizeof *ids);
        k += tn[i];
        assert_int_equal(ids[k++], eos);
    }
    free(ids);
    /* budget just too small for all three: the first turn goes, whole */
    const int budget = (int)(tn[1] + tn[2] + 2 + tn[0]); /* one short of tn0 + 1 */
    assert_int_equal(engine_chat_prompt(f->m, turns, 3, 128 - budget, &ids, &n, &err), MCLI_OK);
    assert_int_equal(n, tn[1] + tn[2] + 2);
    assert_memory_equal(ids, t[1], tn[1] * sizeof *ids);
    free(ids);
    /* budget of 3 tokens: the end of the newest turn and its EOS */
    assert_int_equal(engine_chat_prompt(f->m, turns, 3, 125, &ids, &n, &err), MCLI_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], t[2][tn[2] - 2]);
    assert_int_equal(ids[1], t[2][tn[2] - 1]);
    assert_int_equal(ids[2], eos);
    free(ids);
    assert_int_equal(engine_chat_prompt(f->m, turns, 3, 128, &ids, &n, &err), MCLI_ERR_INVALID_ARG);
}

typedef struct {
    const mcli_model *m;
    uint64_t seed;
    mcli_gen_result r;
    mcli_status st;
} gen_thread_arg;

static void *gen_thread(void *arg)
{
    gen_thread_arg *a = arg;
    const int32_t prompt[3] = {11, 12, 13};
    mcli_gen_params p;
    engine_gen_params_default(&p);
    p.max_new_tokens = 40;
    p.ignore_eos = true;
    p.seed = a->seed;
    mcli_err err;
    a->st = engine_generate(a->m, prompt, 3, &p, NULL, NULL, &a->r, &err);
    return NULL;
}

/* One loaded model, four threads generating at once (shared weights and thread pool): each
 * gets exactly what it gets alone. */
static void concurrent_generations_on_one_model_match_sequential(void **state)
{
    fixture *f = *state;
    enum { T = 4 };
    gen_thread_arg conc[T], seq[T];
    pthread_t tid[T];
    for (int i = 0; i < T; i++) {
        conc[i] = (gen_thread_arg){.m = f->m, .seed = (uint64_t)(100 + i)};
        seq[i] = conc[i];
        assert_int_equal(pthread_create(&tid[i], NULL, gen_thread, &conc[i]), 0);
    }
    for (int i = 0; i < T; i++)
        pthread_join(tid[i], NULL);
    for (int i = 0; i < T; i++) {
        gen_thread(&seq[i]);
        assert_int_equal(conc[i].st, MCLI_OK);
        assert_int_equal(seq[i].st, MCLI_OK);
        assert_int_equal(conc[i].r.n, 40);
        assert_memory_equal(conc[i].r.ids, seq[i].r.ids, 40 * sizeof(int32_t));
        gen_result_free(&conc[i].r);
        gen_result_free(&seq[i].r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(greedy_generation_fills_context_with_torch_ids),
        cmocka_unit_test(eos_ends_generation_with_stop_and_is_not_returned),
        cmocka_unit_test(max_new_tokens_ends_with_length),
        cmocka_unit_test(stop_string_is_cut_from_text_and_stream),
        cmocka_unit_test(callback_nonzero_cancels),
        cmocka_unit_test(seeded_sampling_is_reproducible_and_top_k_one_is_greedy),
        cmocka_unit_test(batched_gen_steps_equal_separate_generations),
        cmocka_unit_test(bad_prompts_and_params_are_clear_errors),
        cmocka_unit_test(chat_prompt_joins_turns_with_eos_and_trims_from_left),
        cmocka_unit_test(concurrent_generations_on_one_model_match_sequential),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
