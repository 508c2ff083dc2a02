/* Decoder kernels (kernels_decode.c): the streaming matrix products against their plain double
 * references over odd shapes (tails of 1..15 columns, K not a multiple of 4 or 8, M = 1..9),
 * on 1 and 3 pool threads; gelu_new, softmax, layer norm against libm; the pool runs every
 * chunk exactly once and survives many back-to-back jobs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels_decode.h"

static uint64_t rs = 88172645463325252ull;
static float frand(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)((double)(rs >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

static float *rnd(size_t n)
{
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = frand();
    return p;
}

static void matmul_kn_matches_reference_on_odd_shapes(void **state)
{
    (void)state;
    const int shapes[][3] = {{1, 64, 192}, {1, 768, 2304}, {1, 13, 7}, {2, 33, 45}, {3, 5, 129},
                             {8, 64, 513}, {9, 100, 31}, {1, 3, 1}};
    const int threads[2] = {1, 3};
    for (int ti = 0; ti < 2; ti++) {
        kd_pool *p;
        mcli_err err;
        assert_int_equal(kd_pool_new(threads[ti], &p, &err), MCLI_OK);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const int M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
            const size_t ldx = (size_t)K + 3, ldy = (size_t)N + 5; /* strided rows */
            float *x = rnd((size_t)M * ldx), *W = rnd((size_t)K * N), *b = rnd((size_t)N);
            float *y = rnd((size_t)M * ldy), *yr = malloc((size_t)M * ldy * sizeof *yr);
            const size_t ns = kd_matmul_kn_scratch(p, M, N);
            float *scratch = malloc(ns * sizeof *scratch);
            for (int mode = 0; mode < 4; mode++) {
                const int acc = mode & 1, rows = mode >> 1; /* rows: the row-block path (scratch) */
                memcpy(yr, y, (size_t)M * ldy * sizeof *yr);
                kd_matmul_kn(p, y, ldy, x, ldx, W, acc ? NULL : b, M, K, N, acc, rows ? scratch : NULL, rows ? ns : 0);
                kd_ref_matmul_kn(yr, ldy, x, ldx, W, acc ? NULL : b, M, K, N, acc);
                for (int m = 0; m < M; m++)
                    for (int n = 0; n < N; n++)
                        if (fabsf(y[(size_t)m * ldy + n] - yr[(size_t)m * ldy + n]) > 1e-4f * (1.0f + sqrtf((float)K)))
                            fail_msg("kn M%d K%d N%d mode %d threads %d: [%d,%d] %g vs %g", M, K, N, mode, threads[ti],
                                     m, n, y[(size_t)m * ldy + n], yr[(size_t)m * ldy + n]);
                /* the padding between rows is untouched */
                for (int m = 0; m < M; m++)
                    for (size_t n = (size_t)N; n < ldy; n++)
                        assert_true(y[(size_t)m * ldy + n] == yr[(size_t)m * ldy + n]);
            }
            free(x), free(W), free(b), free(y), free(yr), free(scratch);
        }
        kd_pool_free(p);
    }
}

/* The row-block path gives bitwise the same result on every run (partials added in block
 * order, whichever thread computed them). */
static void matmul_kn_row_blocks_are_bitwise_reproducible(void **state)
{
    (void)state;
    kd_pool *p;
    mcli_err err;
    assert_int_equal(kd_pool_new(2, &p, &err), MCLI_OK);
    const int M = 1, K = 768, N = 2304;
    float *x = rnd(K), *W = rnd((size_t)K * N), *b = rnd(N);
    float *y0 = malloc(N * sizeof *y0), *y1 = malloc(N * sizeof *y1);
    const size_t ns = kd_matmul_kn_scratch(p, M, N);
    float *scratch = malloc(ns * sizeof *scratch);
    kd_matmul_kn(p, y0, N, x, K, W, b, M, K, N, 0, scratch, ns);
    for (int rep = 0; rep < 50; rep++) {
        kd_matmul_kn(p, y1, N, x, K, W, b, M, K, N, 0, scratch, ns);
        assert_memory_equal(y0, y1, N * sizeof *y0);
    }
    free(x), free(W), free(b), free(y0), free(y1), free(scratch);
    kd_pool_free(p);
}

static void matmul_nk_matches_reference_on_odd_shapes(void **state)
{
    (void)state;
    const int shapes[][3] = {{1, 64, 317}, {1, 768, 1001}, {2, 12, 9}, {5, 40, 3}, {1, 7, 13}, {64, 16, 21}};
    const int threads[2] = {1, 2};
    for (int ti = 0; ti < 2; ti++) {
        kd_pool *p;
        mcli_err err;
        assert_int_equal(kd_pool_new(threads[ti], &p, &err), MCLI_OK);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const int M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
            float *x = rnd((size_t)M * K), *E = rnd((size_t)N * K);
            float *y = calloc((size_t)M * N, sizeof *y), *yr = calloc((size_t)M * N, sizeof *yr);
            float *yp[64], *yrp[64];
            for (int m = 0; m < M; m++) {
                yp[m] = y + (size_t)m * N;
                yrp[m] = yr + (size_t)m * N;
            }
            kd_matmul_nk(p, yp, x, (size_t)K, E, M, K, N);
            kd_ref_matmul_nk(yrp, x, (size_t)K, E, M, K, N);
            for (size_t i = 0; i < (size_t)M * N; i++)
                if (fabsf(y[i] - yr[i]) > 1e-4f * (1.0f + sqrtf((float)K)))
                    fail_msg("nk M%d K%d N%d: [%zu] %g vs %g", M, K, N, i, y[i], yr[i]);
            free(x), free(E), free(y), free(yr);
        }
        kd_pool_free(p);
    }
}

enum { N_CHUNKS = 37 };

typedef struct {
    atomic_int hits[N_CHUNKS];
    atomic_int by_thread[8];
    int nth;
} count_job;

static void count_task(void *ctx, int chunk, int ith)
{
    count_job *j = ctx;
    assert_true(chunk >= 0 && chunk < N_CHUNKS);
    assert_true(ith >= 0 && ith < j->nth);
    atomic_fetch_add(&j->hits[chunk], 1);
    atomic_fetch_add(&j->by_thread[ith], 1);
}

/* Every chunk runs exactly once per job, on a valid thread index, over many back-to-back
 * jobs (workers sleeping and waking, or arriving late and finding nothing left). */
static void pool_runs_each_chunk_exactly_once_per_job(void **state)
{
    (void)state;
    for (int nth = 1; nth <= 4; nth++) {
        kd_pool *p;
        mcli_err err;
        assert_int_equal(kd_pool_new(nth, &p, &err), MCLI_OK);
        assert_int_equal(kd_pool_threads(p), nth);
        count_job j;
        memset(&j, 0, sizeof j);
        j.nth = nth;
        for (int rep = 0; rep < 300; rep++)
            kd_pool_run(p, N_CHUNKS, count_task, &j);
        int total = 0;
        for (int c = 0; c < N_CHUNKS; c++)
            assert_int_equal(atomic_load(&j.hits[c]), 300);
        for (int i = 0; i < nth; i++)
            total += atomic_load(&j.by_thread[i]);
        assert_int_equal(total, 300 * N_CHUNKS);
        kd_pool_run(p, 0, count_task, &j); /* no chunks: nothing runs */
        assert_int_equal(atomic_load(&j.hits[0]), 300);
        kd_pool_free(p);
    }
    /* NULL pool: inline on thread 0 */
    count_job j;
    memset(&j, 0, sizeof j);
    j.nth = 1;
    kd_pool_run(NULL, N_CHUNKS, count_task, &j);
    assert_int_equal(atomic_load(&j.by_thread[0]), N_CHUNKS);
    kd_pool_free(NULL);
}

/* Regression: a job published right after kd_pool_new, before the workers first ran, was
 * missed by them and the caller waited forever. */
static void job_right_after_pool_creation_completes(void **state)
{
    (void)state;
    for (int rep = 0; rep < 200; rep++) {
        kd_pool *p;
        mcli_err err;
        assert_int_equal(kd_pool_new(2 + rep % 3, &p, &err), MCLI_OK);
        count_job j;
        memset(&j, 0, sizeof j);
        j.nth = 2 + rep % 3;
        kd_pool_run(p, N_CHUNKS, count_task, &j);
        for (int c = 0; c < N_CHUNKS; c++)
            assert_int_equal(atomic_load(&j.hits[c]), 1);
        kd_pool_free(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matmul_kn_matches_reference_on_odd_shapes),
        cmocka_unit_test(matmul_kn_row_blocks_are_bitwise_reproducible),
        cmocka_unit_test(matmul_nk_matches_reference_on_odd_shapes),
        cmocka_unit_test(pool_runs_each_chunk_exactly_once_per_job),
        cmocka_unit_test(job_right_after_pool_creation_completes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
