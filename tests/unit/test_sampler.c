/* Sampler: hand-checked cut-offs (top-p, min-p, top-k ties), the repetition-penalty formula,
 * greedy and temperature statistics on toy distributions, seeded reproducibility, bad params. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "engine/sampler.h"

static mcli_gen_params params(void)
{
    mcli_gen_params p;
    engine_gen_params_default(&p);
    return p;
}

/* Draws n samples from logits (copied fresh each time) and counts them per id. */
static void histogram(const mcli_gen_params *p, const float *logits, int V, int n, int *count)
{
    mcli_sampler s;
    mcli_err err;
    assert_int_equal(sampler_init(&s, V, p, &err), MCLI_OK);
    float tmp[16];
    memset(count, 0, (size_t)V * sizeof *count);
    for (int i = 0; i < n; i++) {
        memcpy(tmp, logits, (size_t)V * sizeof *tmp);
        int32_t id = sampler_sample(&s, tmp);
        assert_in_range(id, 0, V - 1);
        count[id]++;
    }
    sampler_free(&s);
}

static void rng_same_seed_same_stream_and_uniform_in_unit_interval(void **state)
{
    (void)state;
    mcli_rng a, b, c;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    rng_seed(&c, 43);
    int differ = 0;
    double sum = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t x = rng_next(&a);
        assert_true(x == rng_next(&b));
        differ += x != rng_next(&c);
        double u = rng_uniform(&a);
        (void)rng_uniform(&b);
        assert_true(u >= 0.0 && u < 1.0);
        sum += u;
    }
    assert_true(differ > 9990);
    assert_true(fabs(sum / 10000 - 0.5) < 0.02);
}

static void greedy_takes_argmax_lowest_id_on_ties(void **state)
{
    (void)state;
    mcli_gen_params p = params();
    p.greedy = true;
    mcli_sampler s;
    mcli_err err;
    assert_int_equal(sampler_init(&s, 5, &p, &err), MCLI_OK);
    float l1[5] = {0.1f, 3.0f, -1.0f, 2.9f, 3.0f};
    assert_int_equal(sampler_sample(&s, l1), 1);
    sampler_free(&s);
    /* temperature 0 is greedy too */
    p = params();
    p.temperature = 0.0f;
    assert_int_equal(sampler_init(&s, 5, &p, &err), MCLI_OK);
    float l2[5] = {0.1f, 0.2f, 5.0f, -3.0f, 4.0f};
    assert_int_equal(sampler_sample(&s, l2), 2);
    sampler_free(&s);
}

/* transformers: score > 0 ? score / penalty : score * penalty, on every seen id once. */
static void repetition_penalty_divides_positive_multiplies_negative(void **state)
{
    (void)state;
    mcli_gen_params p = params();
    p.greedy = true;
    p.repetition_penalty = 2.0f;
    mcli_sampler s;
    mcli_err err;
    assert_int_equal(sampler_init(&s, 4, &p, &err), MCLI_OK);
    const int32_t seen[5] = {0, 1, 1, 0, 99 /* out of range: ignored */};
    sampler_accept(&s, seen, 5);
    float l[4] = {2.0f, -1.0f, 0.5f, 1.5f};
    /* after the penalty: 1.0, -2.0, 0.5, 1.5 -> argmax 3 (it was 0 before) */
    assert_int_equal(sampler_sample(&s, l), 3);
    assert_float_equal(l[0], 1.0f, 0);
    assert_float_equal(l[1], -2.0f, 0);
    assert_float_equal(l[2], 0.5f, 0);
    assert_float_equal(l[3], 1.5f, 0);
    sampler_free(&s);
}

/* probs 0.5, 0.3, 0.15, 0.05: top_p 0.79 keeps {0,1} (the mass before token 2 is 0.8, not
 * < 0.79); 0.81 keeps {0,1,2}; the kept ones keep their relative odds. */
static void top_p_keeps_smallest_set_reaching_p(void **state)
{
    (void)state;
    const float logits[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    int cnt[4];
    mcli_gen_params p = params();
    p.top_p = 0.79f;
    p.seed = 7;
    histogram(&p, logits, 4, 4000, cnt);
    assert_int_equal(cnt[2] + cnt[3], 0);
    assert_true(fabs(cnt[0] / 4000.0 - 0.625) < 0.03);
    p.top_p = 0.81f;
    histogram(&p, logits, 4, 4000, cnt);
    assert_true(cnt[2] > 0);
    assert_int_equal(cnt[3], 0);
    /* a tiny top_p always keeps the most likely token */
    p.top_p = 1e-6f;
    histogram(&p, logits, 4, 200, cnt);
    assert_int_equal(cnt[0], 200);
}

/* min_p 0.25 x top 0.5 = 0.125 keeps {0,1,2}; min_p 0.5 -> 0.25 keeps {0,1}. */
static void min_p_drops_tokens_below_fraction_of_top(void **state)
{
    (void)state;
    const float logits[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    int cnt[4];
    mcli_gen_params p = params();
    p.min_p = 0.25f;
    histogram(&p, logits, 4, 4000, cnt);
    assert_true(cnt[2] > 0);
    assert_int_equal(cnt[3], 0);
    p.min_p = 0.5f;
    histogram(&p, logits, 4, 4000, cnt);
    assert_int_equal(cnt[2] + cnt[3], 0);
    assert_true(fabs(cnt[0] / 4000.0 - 0.625) < 0.03);
}

/* top_k keeps every logit >= the k-th largest: ties survive (TopKLogitsWarper). */
static void top_k_keeps_ties_at_the_cutoff(void **state)
{
    (void)state;
    const float logits[5] = {1.0f, 3.0f, 3.0f, 0.0f, 2.0f};
    int cnt[5];
    mcli_gen_params p = params();
    p.top_k = 1;
    histogram(&p, logits, 5, 2000, cnt);
    assert_int_equal(cnt[0] + cnt[3] + cnt[4], 0);
    assert_true(cnt[1] > 800 && cnt[2] > 800);
    p.top_k = 3;
    histogram(&p, logits, 5, 4000, cnt);
    assert_int_equal(cnt[0] + cnt[3], 0);
    assert_true(cnt[4] > 0);
}

static void top_k_one_equals_greedy(void **state)
{
    (void)state;
    float logits[16];
    mcli_rng r;
    rng_seed(&r, 5);
    for (int trial = 0; trial < 200; trial++) {
        for (int i = 0; i < 16; i++)
            logits[i] = (float)(rng_uniform(&r) * 10.0 - 5.0);
        mcli_gen_params pg = params(), pk = params();
        pg.greedy = true;
        pk.top_k = 1;
        pk.temperature = 1.7f;
        pk.seed = (uint64_t)trial;
        mcli_sampler a, b;
        mcli_err err;
        assert_int_equal(sampler_init(&a, 16, &pg, &err), MCLI_OK);
        assert_int_equal(sampler_init(&b, 16, &pk, &err), MCLI_OK);
        float l1[16], l2[16];
        memcpy(l1, logits, sizeof l1);
        memcpy(l2, logits, sizeof l2);
        assert_int_equal(sampler_sample(&a, l1), sampler_sample(&b, l2));
        sampler_free(&a);
        sampler_free(&b);
    }
}

/* logits 0, ln 2: probs 1/3, 2/3 at T = 1; 1/5, 4/5 at T = 0.5; 1/2, 1/2 as T grows. */
static void temperature_reshapes_distribution_as_softmax_of_logits_over_t(void **state)
{
    (void)state;
    const float logits[2] = {0.0f, logf(2.0f)};
    int cnt[2];
    mcli_gen_params p = params();
    p.seed = 11;
    histogram(&p, logits, 2, 20000, cnt);
    assert_true(fabs(cnt[1] / 20000.0 - 2.0 / 3.0) < 0.015);
    p.temperature = 0.5f;
    histogram(&p, logits, 2, 20000, cnt);
    assert_true(fabs(cnt[1] / 20000.0 - 0.8) < 0.015);
    p.temperature = 100.0f;
    histogram(&p, logits, 2, 20000, cnt);
    assert_true(fabs(cnt[1] / 20000.0 - 0.5) < 0.02);
}

static void same_seed_same_samples_different_seed_differs(void **state)
{
    (void)state;
    float base[16];
    for (int i = 0; i < 16; i++)
        base[i] = (float)(i % 5) * 0.3f;
    int32_t seq[3][64];
    const uint64_t seeds[3] = {99, 99, 100};
    for (int k = 0; k < 3; k++) {
        mcli_gen_params p = params();
        p.seed = seeds[k];
        p.top_p = 0.95f;
        mcli_sampler s;
        mcli_err err;
        assert_int_equal(sampler_init(&s, 16, &p, &err), MCLI_OK);
        for (int i = 0; i < 64; i++) {
            float l[16];
            memcpy(l, base, sizeof l);
            seq[k][i] = sampler_sample(&s, l);
        }
        sampler_free(&s);
    }
    assert_memory_equal(seq[0], seq[1], sizeof seq[0]);
    assert_memory_not_equal(seq[0], seq[2], sizeof seq[0]);
}

static void invalid_params_are_rejected(void **state)
{
    (void)state;
    mcli_sampler s;
    mcli_err err;
    mcli_gen_params p = params();
    p.temperature = -1.0f;
    assert_int_equal(sampler_init(&s, 4, &p, &err), MCLI_ERR_INVALID_ARG);
    p = params();
    p.top_p = 0.0f;
    assert_int_equal(sampler_init(&s, 4, &p, &err), MCLI_ERR_INVALID_ARG);
    p = params();
    p.top_p = 1.5f;
    assert_int_equal(sampler_init(&s, 4, &p, &err), MCLI_ERR_INVALID_ARG);
    p = params();
    p.min_p = -0.1f;
    assert_int_equal(sampler_init(&s, 4, &p, &err), MCLI_ERR_INVALID_ARG);
    p = params();
    p.repetition_penalty = 0.0f;
    assert_int_equal(sampler_init(&s, 4, &p, &err), MCLI_ERR_INVALID_ARG);
    p = params();
    p.top_k = -2;
    assert_int_equal(sampler_init(&s, 4, &p, &err), MCLI_ERR_INVALID_ARG);
    p = params();
    p.temperature = NAN;
    assert_int_equal(sampler_init(&s, 4, &p, &err), MCLI_ERR_INVALID_ARG);
}

/* -inf logits (banned tokens) are never drawn; all -inf falls back to a valid id. */
static void minus_infinity_logits_are_never_sampled(void **state)
{
    (void)state;
    const float logits[4] = {-INFINITY, 0.0f, -INFINITY, 0.0f};
    int cnt[4];
    mcli_gen_params p = params();
    histogram(&p, logits, 4, 1000, cnt);
    assert_int_equal(cnt[0] + cnt[2], 0);
    const float all[3] = {-INFINITY, -INFINITY, -INFINITY};
    histogram(&p, all, 3, 10, cnt);
    assert_int_equal(cnt[0], 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rng_same_seed_same_stream_and_uniform_in_unit_interval),
        cmocka_unit_test(greedy_takes_argmax_lowest_id_on_ties),
        cmocka_unit_test(repetition_penalty_divides_positive_multiplies_negative),
        cmocka_unit_test(top_p_keeps_smallest_set_reaching_p),
        cmocka_unit_test(min_p_drops_tokens_below_fraction_of_top),
        cmocka_unit_test(top_k_keeps_ties_at_the_cutoff),
        cmocka_unit_test(top_k_one_equals_greedy),
        cmocka_unit_test(temperature_reshapes_distribution_as_softmax_of_logits_over_t),
        cmocka_unit_test(same_seed_same_samples_different_seed_differs),
        cmocka_unit_test(invalid_params_are_rejected),
        cmocka_unit_test(minus_infinity_logits_are_never_sampled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
