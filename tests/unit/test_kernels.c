/* test_kernels.c - every fast encoder kernel against a plain C loop computed in double
 * (the naive references below), on sizes that exercise both the 8-lane and the scalar tail
 * paths, and on strided column slices like the ones the encoder passes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "engine/kernels.h"

/* Deterministic uniform floats in [lo, hi) (xorshift, no global state). */
static float rnd(uint64_t *s, float lo, float hi)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return lo + (hi - lo) * (float)((*s >> 40) & 0xffffff) / (float)(1 << 24);
}

static float *rnd_array(uint64_t *s, size_t n, float lo, float hi)
{
    float *a = malloc(n * sizeof *a);
    assert_non_null(a);
    for (size_t i = 0; i < n; i++)
        a[i] = rnd(s, lo, hi);
    return a;
}

/* ---- naive references (double precision, straight loops) ---- */

static double ref_act(double x, kern_act act)
{
    switch (act) {
    case KERN_ACT_GELU_ERF:
        return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case KERN_ACT_GELU_TANH:
        return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case KERN_ACT_RELU:
        return x > 0 ? x : 0;
    case KERN_ACT_TANH:
        return tanh(x);
    default:
        return x;
    }
}

/* y (M,N) [+]= x (M,K) @ w (N,K)^T */
static void ref_linear(double *y, const float *x, size_t ldx, const float *w, int M, int N, int K)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)x[(size_t)m * ldx + k] * w[(size_t)n * K + k];
            y[(size_t)m * N + n] += s;
        }
}

static void ref_layernorm(double *y, const float *x, const float *b, const float *g, const float *beta, int N,
                          double eps)
{
    double mean = 0, var = 0;
    for (int i = 0; i < N; i++)
        mean += (double)x[i] + (b ? b[i] : 0);
    mean /= N;
    for (int i = 0; i < N; i++) {
        double d = (double)x[i] + (b ? b[i] : 0) - mean;
        var += d * d;
    }
    var /= N;
    for (int i = 0; i < N; i++)
        y[i] = ((double)x[i] + (b ? b[i] : 0) - mean) / sqrt(var + eps) * g[i] + beta[i];
}

static void ref_softmax(double *y, const float *x, int N)
{
    double mx = x[0], sum = 0;
    for (int i = 1; i < N; i++)
        mx = x[i] > mx ? x[i] : mx;
    for (int i = 0; i < N; i++) {
        y[i] = exp((double)x[i] - mx);
        sum += y[i];
    }
    for (int i = 0; i < N; i++)
        y[i] /= sum;
}

/* ---- element-wise maths ---- */

static void exp_matches_libm_over_the_float_range(void **state)
{
    (void)state;
    enum { N = 2003 };
    static float x[N];
    for (int i = 0; i < N; i++)
        x[i] = -87.0f + 175.0f * (float)i / (N - 1);
    float y[N];
    memcpy(y, x, sizeof y);
    kern_exp(y, N);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double want = exp((double)x[i]);
        double rel = fabs(y[i] - want) / want;
        worst = rel > worst ? rel : worst;
    }
    assert_true(worst < 5e-7);
}

static void exp_below_float_range_is_zero_and_nan_propagates(void **state)
{
    (void)state;
    float x[11] = {-88.0f, -100.0f, -1e30f, -INFINITY, 0.0f, -88.0f, -100.0f, -1e30f, -INFINITY, 0.0f, NAN};
    kern_exp(x, 11);
    for (int i = 0; i < 10; i++)
        assert_true(x[i] == ((i % 5 == 4) ? 1.0f : 0.0f));
    assert_true(isnan(x[10]));
}

static void erf_is_within_4e7_absolute_of_libm(void **state)
{
    (void)state;
    enum { N = 12003 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++)
        x[i] = -6.0f + 12.0f * (float)i / (N - 1);
    memcpy(y, x, sizeof y);
    kern_erf(y, N);
    for (int i = 0; i < N; i++)
        assert_true(fabs(y[i] - erf((double)x[i])) < 4e-7);
}

static void tanh_is_accurate_for_tiny_and_large_inputs(void **state)
{
    (void)state;
    enum { N = 1203 };
    float x[N];
    for (int i = 0; i < N; i++) {
        double t = -1.0 + 2.0 * i / (N - 1);                /* [-1, 1] */
        x[i] = (float)(t * t * t * 20.0);                   /* dense near 0, reaches +-20 */
    }
    x[0] = 1e-30f;
    x[1] = -3e-5f;
    float y[N];
    memcpy(y, x, sizeof y);
    kern_tanh(y, N);
    for (int i = 0; i < N; i++) {
        double want = tanh((double)x[i]);
        /* relative near 0 (Taylor branch), ~1 ulp of 1.0 absolute elsewhere */
        double tol = fabs(x[i]) < 0.0625 ? 2e-7 * fabs(want) : 1.5e-7;
        assert_true(fabs(y[i] - want) <= tol);
    }
}

static void bias_act_matches_reference_for_every_activation(void **state)
{
    (void)state;
    uint64_t s = 42;
    const int M = 3, N = 37, LD = 41; /* 37 = 4 vector blocks + 5 tail elements */
    kern_act acts[] = {KERN_ACT_NONE, KERN_ACT_GELU_ERF, KERN_ACT_GELU_TANH, KERN_ACT_RELU, KERN_ACT_TANH};
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        float *x = rnd_array(&s, (size_t)M * LD, -8.0f, 8.0f);
        float *b = rnd_array(&s, (size_t)N, -1.0f, 1.0f);
        float *orig = malloc((size_t)M * LD * sizeof *orig);
        assert_non_null(orig);
        memcpy(orig, x, (size_t)M * LD * sizeof *orig);
        kern_bias_act(x, LD, b, M, N, acts[a]);
        for (int m = 0; m < M; m++)
            for (int i = 0; i < LD; i++) {
                size_t at = (size_t)m * LD + i;
                if (i >= N) {
                    assert_true(x[at] == orig[at]); /* outside the slice: untouched */
                    continue;
                }
                double want = ref_act((double)orig[at] + b[i], acts[a]);
                assert_true(fabs(x[at] - want) < 1e-6 * (1.0 + fabs(want)));
            }
        free(x);
        free(b);
        free(orig);
    }
}

static void fill_rows_broadcasts_the_bias_and_leaves_the_rest(void **state)
{
    (void)state;
    float y[3 * 5];
    for (int i = 0; i < 15; i++)
        y[i] = -1.0f;
    const float b[3] = {1, 2, 3};
    kern_fill_rows(y, 5, b, 3, 3);
    for (int m = 0; m < 3; m++)
        for (int n = 0; n < 5; n++)
            assert_true(y[m * 5 + n] == (n < 3 ? b[n] : -1.0f));
}

static void bias_act_without_bias_is_plain_activation(void **state)
{
    (void)state;
    float x[9] = {-3, -1, -0.5f, 0, 0.5f, 1, 2, 3, 10};
    kern_bias_act(x, 9, NULL, 1, 9, KERN_ACT_RELU);
    float want[9] = {0, 0, 0, 0, 0.5f, 1, 2, 3, 10};
    assert_memory_equal(x, want, sizeof want);
}

/* ---- row kernels ---- */

static void add_layernorm_matches_reference_with_and_without_bias(void **state)
{
    (void)state;
    uint64_t s = 7;
    const int M = 4, N = 45, LD = 50;
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        float *x = rnd_array(&s, (size_t)M * LD, -3.0f, 5.0f);
        float *b = rnd_array(&s, N, -1.0f, 1.0f);
        float *g = rnd_array(&s, N, 0.5f, 1.5f);
        float *beta = rnd_array(&s, N, -0.2f, 0.2f);
        float *orig = malloc((size_t)M * LD * sizeof *orig);
        assert_non_null(orig);
        memcpy(orig, x, (size_t)M * LD * sizeof *orig);
        kern_add_layernorm(x, LD, with_bias ? b : NULL, g, beta, M, N, 1e-12f);
        double want[64];
        for (int m = 0; m < M; m++) {
            ref_layernorm(want, orig + (size_t)m * LD, with_bias ? b : NULL, g, beta, N, 1e-12);
            for (int i = 0; i < N; i++)
                assert_true(fabs(x[(size_t)m * LD + i] - want[i]) < 2e-6);
        }
        free(x);
        free(b);
        free(g);
        free(beta);
        free(orig);
    }
}

static void layernorm_of_a_constant_row_is_beta(void **state)
{
    (void)state;
    float x[10], g[10], beta[10];
    for (int i = 0; i < 10; i++) {
        x[i] = 3.25f;
        g[i] = 2.0f;
        beta[i] = (float)i;
    }
    kern_add_layernorm(x, 10, NULL, g, beta, 1, 10, 1e-5f);
    for (int i = 0; i < 10; i++)
        assert_true(fabsf(x[i] - (float)i) < 1e-6f);
}

static void softmax_rows_match_reference_and_sum_to_one(void **state)
{
    (void)state;
    uint64_t s = 9;
    int sizes[] = {1, 3, 8, 29, 130};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int N = sizes[k];
        float *x = rnd_array(&s, (size_t)2 * N, -30.0f, 30.0f);
        float *orig = malloc((size_t)2 * N * sizeof *orig);
        double *want = malloc((size_t)N * sizeof *want);
        assert_non_null(orig);
        assert_non_null(want);
        memcpy(orig, x, (size_t)2 * N * sizeof *orig);
        kern_softmax_rows(x, N, 2, N);
        for (int m = 0; m < 2; m++) {
            ref_softmax(want, orig + (size_t)m * N, N);
            double sum = 0;
            for (int i = 0; i < N; i++) {
                assert_true(fabs(x[(size_t)m * N + i] - want[i]) < 1e-6 * (1 + want[i]));
                sum += x[(size_t)m * N + i];
            }
            assert_true(fabs(sum - 1.0) < 1e-5);
        }
        free(x);
        free(orig);
        free(want);
    }
}

static void softmax_of_huge_logits_does_not_overflow(void **state)
{
    (void)state;
    float x[3] = {1e30f, 1e30f, -1e30f};
    kern_softmax_rows(x, 3, 1, 3);
    assert_true(fabsf(x[0] - 0.5f) < 1e-7f && fabsf(x[1] - 0.5f) < 1e-7f && x[2] == 0.0f);
}

static void sigmoid_and_l2_normalize_match_reference(void **state)
{
    (void)state;
    float x[5] = {-20, -1, 0, 2, 30};
    kern_sigmoid(x, 5);
    double in[5] = {-20, -1, 0, 2, 30};
    for (int i = 0; i < 5; i++)
        assert_true(fabs(x[i] - 1.0 / (1.0 + exp(-in[i]))) < 1e-7);
    float v[3] = {3, 4, 0};
    kern_l2_normalize(v, 3);
    assert_true(fabsf(v[0] - 0.6f) < 1e-7f && fabsf(v[1] - 0.8f) < 1e-7f && v[2] == 0.0f);
    float z[2] = {0, 0};
    kern_l2_normalize(z, 2); /* norm clamped at 1e-12 like F.normalize: zeros stay zeros */
    assert_true(z[0] == 0.0f && z[1] == 0.0f);
}

static void dot_and_axpy_match_reference_on_odd_lengths(void **state)
{
    (void)state;
    uint64_t s = 11;
    for (int n = 0; n < 40; n++) {
        float *a = rnd_array(&s, (size_t)n + 1, -1, 1);
        float *b = rnd_array(&s, (size_t)n + 1, -1, 1);
        double want = 0;
        for (int i = 0; i < n; i++)
            want += (double)a[i] * b[i];
        assert_true(fabs(kern_dot(a, b, n) - want) < 1e-5);
        float keep = b[n];
        kern_axpy(b, 0.5f, a, n);
        assert_true(b[n] == keep); /* does not write past n */
        free(a);
        free(b);
    }
}

/* ---- matrix kernels ---- */

static void linear_matches_reference_on_strided_slices(void **state)
{
    (void)state;
    uint64_t s = 5;
    const int M = 7, N = 19, K = 33, LDX = 40, LDY = 25;
    float *x = rnd_array(&s, (size_t)M * LDX, -1, 1);
    float *w = rnd_array(&s, (size_t)N * K, -1, 1);
    float *y = rnd_array(&s, (size_t)M * LDY, -1, 1);
    double *want = calloc((size_t)M * N, sizeof *want);
    assert_non_null(want);
    for (int accumulate = 0; accumulate < 2; accumulate++) {
        float *y0 = malloc((size_t)M * LDY * sizeof *y0);
        assert_non_null(y0);
        memcpy(y0, y, (size_t)M * LDY * sizeof *y0);
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++)
                want[(size_t)m * N + n] = accumulate ? y0[(size_t)m * LDY + n] : 0.0;
        ref_linear(want, x, LDX, w, M, N, K);
        kern_linear(y, LDY, x, LDX, w, M, N, K, accumulate);
        for (int m = 0; m < M; m++)
            for (int n = 0; n < LDY; n++) {
                size_t at = (size_t)m * LDY + n;
                if (n >= N)
                    assert_true(y[at] == y0[at]);
                else
                    assert_true(fabs(y[at] - want[(size_t)m * N + n]) < 1e-5);
            }
        free(y0);
    }
    free(x);
    free(w);
    free(y);
    free(want);
}

/* Shapes like bert-tiny's and distilbert's heads, accumulate and overwrite. */
static void linear_matches_reference_on_encoder_shapes(void **state)
{
    (void)state;
    uint64_t s = 77;
    const int shapes[][3] = {{32, 128, 128}, {7, 512, 128}, {5, 128, 512}, {1, 4, 8}, {64, 64, 64}};
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        int M = shapes[c][0], N = shapes[c][1], K = shapes[c][2];
        size_t LDX = (size_t)K + 8, LDY = (size_t)N + 4;
        float *x = rnd_array(&s, (size_t)M * LDX, -1, 1);
        float *w = rnd_array(&s, (size_t)N * K, -1, 1);
        float *y = rnd_array(&s, (size_t)M * LDY, -1, 1);
        double *want = calloc((size_t)M * N, sizeof *want);
        assert_non_null(want);
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++)
                want[(size_t)m * N + n] = y[(size_t)m * LDY + n];
        ref_linear(want, x, LDX, w, M, N, K);
        kern_linear(y, LDY, x, LDX, w, M, N, K, true);
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++)
                assert_true(fabs(y[(size_t)m * LDY + n] - want[(size_t)m * N + n]) < 1e-4);
        kern_linear(y, LDY, x, LDX, w, M, N, K, false);
        memset(want, 0, (size_t)M * N * sizeof *want);
        ref_linear(want, x, LDX, w, M, N, K);
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++)
                assert_true(fabs(y[(size_t)m * LDY + n] - want[(size_t)m * N + n]) < 1e-4);
        free(x);
        free(w);
        free(y);
        free(want);
    }
}

/* The packed small-model path: 6-row blocks, leftover rows, odd K, strided x and y. */
static void linear_packed_matches_reference(void **state)
{
    (void)state;
    uint64_t s = 31;
    const int shapes[][3] = {{32, 128, 128}, {7, 512, 128}, {13, 128, 512}, {1, 16, 3}, {6, 32, 33}};
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        int M = shapes[c][0], N = shapes[c][1], K = shapes[c][2];
        size_t LDX = (size_t)K + 5, LDY = (size_t)N + 3;
        float *x = rnd_array(&s, (size_t)M * LDX, -1, 1);
        float *w = rnd_array(&s, (size_t)N * K, -1, 1);
        float *wp = malloc((size_t)N * K * sizeof *wp);
        float *y = rnd_array(&s, (size_t)M * LDY, -1, 1);
        double *want = calloc((size_t)M * N, sizeof *want);
        assert_true(wp && want);
        kern_pack_panels(wp, w, N, K);
        for (int accumulate = 1; accumulate >= 0; accumulate--) {
            float *y0 = malloc((size_t)M * LDY * sizeof *y0);
            assert_non_null(y0);
            memcpy(y0, y, (size_t)M * LDY * sizeof *y0);
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++)
                    want[(size_t)m * N + n] = accumulate ? y0[(size_t)m * LDY + n] : 0.0;
            ref_linear(want, x, LDX, w, M, N, K);
            kern_linear_packed(y, LDY, x, LDX, wp, M, N, K, accumulate);
            for (int m = 0; m < M; m++)
                for (int n = 0; n < (int)LDY; n++) {
                    size_t at = (size_t)m * LDY + n;
                    if (n >= N)
                        assert_true(y[at] == y0[at]);
                    else
                        assert_true(fabs(y[at] - want[(size_t)m * N + n]) < 1e-4);
                }
            free(y0);
        }
        free(x);
        free(w);
        free(wp);
        free(y);
        free(want);
    }
}

/* Four threads calling kern_linear at once with OpenBLAS at 2 threads, on products big enough for
 * OpenBLAS to split them: each result equals a single-threaded reference (the server calls the
 * engine from several threads). */
typedef struct {
    const float *x, *w;
    const double *want;
    int M, N, K;
    int bad;
} linear_job;

static void *linear_worker(void *p)
{
    linear_job *j = p;
    float *y = malloc((size_t)j->M * j->N * sizeof *y);
    if (!y) {
        j->bad = 1;
        return NULL;
    }
    for (int it = 0; it < 3; it++) {
        kern_linear(y, (size_t)j->N, j->x, (size_t)j->K, j->w, j->M, j->N, j->K, false);
        for (size_t i = 0; i < (size_t)j->M * j->N; i++)
            if (fabs(y[i] - j->want[i]) > 1e-3)
                j->bad = 1;
    }
    free(y);
    return NULL;
}

static void concurrent_threaded_products_are_correct(void **state)
{
    (void)state;
    enum { M = 192, N = 256, K = 256 };
    uint64_t s = 99;
    float *x = rnd_array(&s, (size_t)M * K, -1, 1), *w = rnd_array(&s, (size_t)N * K, -1, 1);
    double *want = calloc((size_t)M * N, sizeof *want);
    assert_non_null(want);
    ref_linear(want, x, K, w, M, N, K);
    kern_set_threads(2);
    pthread_t t[4];
    linear_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (linear_job){x, w, want, M, N, K, 0};
        assert_int_equal(pthread_create(&t[i], NULL, linear_worker, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(jobs[i].bad, 0);
    }
    kern_set_threads(1);
    free(x);
    free(w);
    free(want);
}

/* Attention over column slices of a packed (T, 3*H) buffer, like the encoder's. */
static void check_attention(int T, int d)
{
    uint64_t s = 1234 + (uint64_t)T;
    const int H = 3 * d, LD = 3 * H; /* three heads; q | k | v blocks */
    float *qkv = rnd_array(&s, (size_t)T * LD, -2, 2);
    float *out = calloc((size_t)T * H, sizeof *out);
    float *scores = malloc((size_t)T * T * sizeof *scores);
    double *p = malloc((size_t)T * sizeof *p);
    assert_non_null(out);
    assert_non_null(scores);
    assert_non_null(p);
    float scale = 1.0f / sqrtf((float)d);
    int head = 1;
    const float *q = qkv + head * d, *k = qkv + H + head * d, *v = qkv + 2 * H + head * d;
    kern_attention(out + head * d, H, q, LD, k, LD, v, LD, T, d, scale, scores);
    for (int i = 0; i < T; i++) {
        double mx = -1e300, sum = 0;
        for (int j = 0; j < T; j++) {
            double sc = 0;
            for (int c = 0; c < d; c++)
                sc += (double)q[(size_t)i * LD + c] * k[(size_t)j * LD + c];
            p[j] = sc * scale;
            mx = p[j] > mx ? p[j] : mx;
        }
        for (int j = 0; j < T; j++) {
            p[j] = exp(p[j] - mx);
            sum += p[j];
        }
        for (int c = 0; c < d; c++) {
            double o = 0;
            for (int j = 0; j < T; j++)
                o += p[j] / sum * v[(size_t)j * LD + c];
            assert_true(fabs(out[(size_t)i * H + head * d + c] - o) < 1e-5);
            assert_true(out[(size_t)i * H + c] == 0.0f); /* other heads untouched */
        }
    }
    free(qkv);
    free(out);
    free(scores);
    free(p);
}

static void attention_hand_loop_matches_reference(void **state)
{
    (void)state;
    check_attention(1, 8);
    check_attention(5, 16);
    check_attention(15, 12); /* the hand loop runs below T = 16 */
}

static void attention_gemm_path_matches_reference(void **state)
{
    (void)state;
    check_attention(16, 8);
    check_attention(31, 12);
    check_attention(70, 16);
    check_attention(130, 64);
}

int main(void)
{
    kern_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exp_matches_libm_over_the_float_range),
        cmocka_unit_test(exp_below_float_range_is_zero_and_nan_propagates),
        cmocka_unit_test(erf_is_within_4e7_absolute_of_libm),
        cmocka_unit_test(tanh_is_accurate_for_tiny_and_large_inputs),
        cmocka_unit_test(bias_act_matches_reference_for_every_activation),
        cmocka_unit_test(bias_act_without_bias_is_plain_activation),
        cmocka_unit_test(fill_rows_broadcasts_the_bias_and_leaves_the_rest),
        cmocka_unit_test(add_layernorm_matches_reference_with_and_without_bias),
        cmocka_unit_test(layernorm_of_a_constant_row_is_beta),
        cmocka_unit_test(softmax_rows_match_reference_and_sum_to_one),
        cmocka_unit_test(softmax_of_huge_logits_does_not_overflow),
        cmocka_unit_test(sigmoid_and_l2_normalize_match_reference),
        cmocka_unit_test(dot_and_axpy_match_reference_on_odd_lengths),
        cmocka_unit_test(linear_matches_reference_on_strided_slices),
        cmocka_unit_test(linear_matches_reference_on_encoder_shapes),
        cmocka_unit_test(linear_packed_matches_reference),
        cmocka_unit_test(concurrent_threaded_products_are_correct),
        cmocka_unit_test(attention_hand_loop_matches_reference),
        cmocka_unit_test(attention_gemm_path_matches_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
