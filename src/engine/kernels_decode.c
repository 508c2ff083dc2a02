/* kernels_decode.c - see kernels_decode.h. AVX2+FMA paths with plain C fallbacks. */
#include "engine/kernels_decode.h"
#include "engine/kernels.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define KD_AVX2 1
#else
#define KD_AVX2 0
#endif

/* ------------------------------------------------------------------------------------------
 * Thread pool with dynamically claimed chunks
 *
 *   state = (job << 32) | next_chunk; next_chunk == CLOSED when no job is open.
 *
 *   caller: lock run_lock -> fn/ctx/n, done = 0 -> state = (job, 0) + broadcast (under mu)
 *           -> claim chunks itself -> spin (then yield) until done == n -> state = (job, CLOSED)
 *   worker: spin on state's job (KD_SPIN rounds), else sleep on cond -> read fn/ctx/n ->
 *           claim chunks by CAS on the whole state word (fails once the job changed or closed,
 *           so a late worker can never run a stale job's chunk) -> done++ per chunk
 *
 * The caller never waits for a worker that has not started: if the other threads are busy
 * (an oversubscribed machine), it runs every chunk itself. Each chunk's work is fixed by its
 * index, not by the thread that runs it, so results are bitwise reproducible.
 * ------------------------------------------------------------------------------------------ */
#define KD_SPIN 2000   /* worker: pause rounds (~50 us) before sleeping; short so that idle workers
                        * do not compete with OpenBLAS's threads during prompt sgemms */
#define KD_WAIT_SPIN 256 /* caller: pause rounds before yielding the CPU to a late worker */
#define KD_CLOSED 0xFFFFFFFFu

typedef struct kd_worker {
    kd_pool *pool;
    int ith;
    pthread_t tid;
} kd_worker;

struct kd_pool {
    int nth;
    kd_worker *workers;          /* [nth - 1] */
    int n_started;
    pthread_mutex_t run_lock;    /* serialises kd_pool_run callers */
    pthread_mutex_t mu;          /* guards sleeping on cond */
    pthread_cond_t cond;
    uint32_t job;                /* last job id (under run_lock) */
    _Atomic uint64_t state;      /* (job << 32) | next chunk */
    atomic_int done;             /* chunks finished in the open job */
    atomic_int quit;
    _Atomic(kd_chunk_fn) fn;
    _Atomic(void *) ctx;
    atomic_int n_chunks;
};

static inline void kd_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Claims and runs chunks of job `job` until none is left or the job changed. */
static void kd_claim_loop(kd_pool *p, uint32_t job, kd_chunk_fn fn, void *ctx, int n, int ith)
{
    for (;;) {
        uint64_t s = atomic_load_explicit(&p->state, memory_order_acquire);
        const uint32_t c = (uint32_t)s;
        if ((uint32_t)(s >> 32) != job || c >= (uint32_t)n)
            return;
        if (!atomic_compare_exchange_weak_explicit(&p->state, &s, s + 1, memory_order_acq_rel, memory_order_acquire))
            continue;
        fn(ctx, (int)c, ith);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

static void *kd_worker_main(void *arg)
{
    kd_worker *w = arg;
    kd_pool *p = w->pool;
    uint32_t seen = 0; /* the job id at pool creation: a job may be published before this runs */
    for (;;) {
        uint32_t job = seen;
        for (int i = 0; i < KD_SPIN; i++) {
            job = (uint32_t)(atomic_load_explicit(&p->state, memory_order_acquire) >> 32);
            if (job != seen || atomic_load_explicit(&p->quit, memory_order_relaxed))
                break;
            kd_relax();
        }
        if (job == seen) {
            pthread_mutex_lock(&p->mu);
            while ((job = (uint32_t)(atomic_load_explicit(&p->state, memory_order_acquire) >> 32)) == seen &&
                   !atomic_load_explicit(&p->quit, memory_order_relaxed))
                pthread_cond_wait(&p->cond, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load_explicit(&p->quit, memory_order_acquire))
            break;
        seen = job;
        /* fn/ctx/n may belong to a newer job if this one already ended: then every claim fails. */
        kd_chunk_fn fn = atomic_load_explicit(&p->fn, memory_order_acquire);
        void *ctx = atomic_load_explicit(&p->ctx, memory_order_acquire);
        int n = atomic_load_explicit(&p->n_chunks, memory_order_acquire);
        kd_claim_loop(p, job, fn, ctx, n, w->ith);
    }
    return NULL;
}

int kd_cpus_available(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    return 1;
}

mcli_status kd_pool_new(int n_threads, kd_pool **out, mcli_err *err)
{
    *out = NULL;
    if (n_threads <= 0)
        n_threads = kd_cpus_available();
    if (n_threads > 256)
        n_threads = 256;
    kd_pool *p = calloc(1, sizeof *p);
    if (!p)
        return mcli_fail(err, MCLI_ERR_NOMEM, "thread pool: out of memory");
    p->nth = n_threads;
    pthread_mutex_init(&p->run_lock, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cond, NULL);
    atomic_init(&p->state, (uint64_t)KD_CLOSED);
    atomic_init(&p->done, 0);
    atomic_init(&p->quit, 0);
    atomic_init(&p->fn, NULL);
    atomic_init(&p->ctx, NULL);
    atomic_init(&p->n_chunks, 0);
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) {
            kd_pool_free(p);
            return mcli_fail(err, MCLI_ERR_NOMEM, "thread pool: out of memory");
        }
        for (int i = 0; i < n_threads - 1; i++) {
            p->workers[i].pool = p;
            p->workers[i].ith = i + 1;
            if (pthread_create(&p->workers[i].tid, NULL, kd_worker_main, &p->workers[i]) != 0) {
                kd_pool_free(p);
                return mcli_fail(err, MCLI_ERR_NOMEM, "thread pool: cannot start thread %d of %d", i + 2,
                                 n_threads);
            }
            p->n_started++;
        }
    }
    *out = p;
    return MCLI_OK;
}

void kd_pool_free(kd_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_started; i++)
        pthread_join(p->workers[i].tid, NULL);
    free(p->workers);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->run_lock);
    free(p);
}

int kd_pool_threads(const kd_pool *p) { return p ? p->nth : 1; }

void kd_pool_run(kd_pool *p, int n_chunks, kd_chunk_fn fn, void *ctx)
{
    if (n_chunks <= 0)
        return;
    if (!p || p->nth <= 1 || p->n_started != p->nth - 1 || n_chunks == 1) {
        for (int c = 0; c < n_chunks; c++)
            fn(ctx, c, 0);
        return;
    }
    pthread_mutex_lock(&p->run_lock);
    const uint32_t job = ++p->job;
    atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&p->ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&p->n_chunks, n_chunks, memory_order_relaxed);
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->state, (uint64_t)job << 32, memory_order_release);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    kd_claim_loop(p, job, fn, ctx, n_chunks, 0);
    unsigned spins = 0;
    while (atomic_load_explicit(&p->done, memory_order_acquire) < n_chunks) {
        kd_relax();
        if (++spins > KD_WAIT_SPIN)
            sched_yield(); /* a worker holds a chunk but has no CPU: let it run */
    }
    atomic_store_explicit(&p->state, ((uint64_t)job << 32) | KD_CLOSED, memory_order_release);
    pthread_mutex_unlock(&p->run_lock);
}

/* Chunk count for n items split into pieces of at least `min_piece`, about `per_thread`
 * chunks per thread (so that a late thread's share is small). */
static int kd_chunks(const kd_pool *p, int n, int min_piece, int per_thread, int align, int *piece)
{
    int want = kd_pool_threads(p) * per_thread;
    int w = (n + want - 1) / want;
    if (w < min_piece)
        w = min_piece;
    w = (w + align - 1) / align * align;
    *piece = w;
    return (n + w - 1) / w;
}

/* ------------------------------------------------------------------------------------------
 * Vector helpers
 * ------------------------------------------------------------------------------------------ */
#if KD_AVX2
static inline float hsum256(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v);
    __m128 hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    __m128 sh = _mm_movehdup_ps(lo);
    lo = _mm_add_ps(lo, sh);
    sh = _mm_movehl_ps(sh, lo);
    lo = _mm_add_ss(lo, sh);
    return _mm_cvtss_f32(lo);
}

/* e^x, relative error ~2e-7 on [-87, 88]; clamps outside (so exp(-inf) -> ~1e-38, not 0). */
#endif

/* ------------------------------------------------------------------------------------------
 * y[M,N] (+)= x[M,K] @ W[K,N] + b
 * Each thread owns a column range [n0,n1) and streams the rows of W through it, four rows
 * of W (four k) per pass so that y is loaded/stored once per four FMAs. For M > 1 the
 * columns are cut into tiles so that y's tile and W's four-row tile stay in L1.
 * ------------------------------------------------------------------------------------------ */
typedef struct {
    float *y;
    size_t ldy;
    const float *x;
    size_t ldx;
    const float *W, *b;
    int M, K, N, accumulate;
    int piece;      /* columns (column split) or rows of W (row split) per chunk */
    float *partial; /* row split: [n_chunks, M, N] partial sums */
} kn_job;

/* y[m, n0:n1] += sum over k in [k0, k1) of x[m, k] W[k, n0:n1]  (y already initialised) */
static void kn_accum(float *y, size_t ldy, const float *x, size_t ldx, const float *W, int M, int k0, int k1, int N,
                     int n0, int n1)
{
    int k = k0;
    for (; k + 4 <= k1; k += 4) {
        const float *w0 = W + (size_t)k * N, *w1 = w0 + N, *w2 = w1 + N, *w3 = w2 + N;
        for (int m = 0; m < M; m++) {
            const float *xm = x + (size_t)m * ldx + k;
            float *ym = y + (size_t)m * ldy;
            int n = n0;
#if KD_AVX2
            __m256 x0 = _mm256_set1_ps(xm[0]), x1 = _mm256_set1_ps(xm[1]);
            __m256 x2 = _mm256_set1_ps(xm[2]), x3 = _mm256_set1_ps(xm[3]);
            for (; n + 16 <= n1; n += 16) {
                __m256 a = _mm256_loadu_ps(ym + n), c = _mm256_loadu_ps(ym + n + 8);
                a = _mm256_fmadd_ps(x0, _mm256_loadu_ps(w0 + n), a);
                c = _mm256_fmadd_ps(x0, _mm256_loadu_ps(w0 + n + 8), c);
                a = _mm256_fmadd_ps(x1, _mm256_loadu_ps(w1 + n), a);
                c = _mm256_fmadd_ps(x1, _mm256_loadu_ps(w1 + n + 8), c);
                a = _mm256_fmadd_ps(x2, _mm256_loadu_ps(w2 + n), a);
                c = _mm256_fmadd_ps(x2, _mm256_loadu_ps(w2 + n + 8), c);
                a = _mm256_fmadd_ps(x3, _mm256_loadu_ps(w3 + n), a);
                c = _mm256_fmadd_ps(x3, _mm256_loadu_ps(w3 + n + 8), c);
                _mm256_storeu_ps(ym + n, a);
                _mm256_storeu_ps(ym + n + 8, c);
            }
#endif
            for (; n < n1; n++)
                ym[n] += xm[0] * w0[n] + xm[1] * w1[n] + xm[2] * w2[n] + xm[3] * w3[n];
        }
    }
    for (; k < k1; k++) {
        const float *w0 = W + (size_t)k * N;
        for (int m = 0; m < M; m++)
            kern_axpy(y + (size_t)m * ldy + n0, x[(size_t)m * ldx + k], w0 + n0, n1 - n0);
    }
}

/* Column split: chunk = columns [n0, n1), all of K; y initialised here. */
static void kn_task(void *ctx, int chunk, int ith)
{
    (void)ith;
    const kn_job *j = ctx;
    int n0 = chunk * j->piece, n1 = n0 + j->piece;
    if (n1 > j->N)
        n1 = j->N;
    for (int m = 0; m < j->M; m++) {
        float *ym = j->y + (size_t)m * j->ldy;
        if (!j->accumulate) {
            if (j->b)
                memcpy(ym + n0, j->b + n0, (size_t)(n1 - n0) * sizeof(float));
            else
                memset(ym + n0, 0, (size_t)(n1 - n0) * sizeof(float));
        } else if (j->b) {
            for (int n = n0; n < n1; n++)
                ym[n] += j->b[n];
        }
    }
    for (int t = n0; t < n1; t += 512)
        kn_accum(j->y, j->ldy, j->x, j->ldx, j->W, j->M, 0, j->K, j->N, t, t + 512 < n1 ? t + 512 : n1);
}

/* Row split: chunk = rows [k0, k1) of W, a contiguous block read front to back, summed into
 * its own partial[chunk] (M x N); the caller adds the partials in chunk order. */
static void kn_ksplit_task(void *ctx, int chunk, int ith)
{
    (void)ith;
    const kn_job *j = ctx;
    const int k0 = chunk * j->piece, k1 = k0 + j->piece < j->K ? k0 + j->piece : j->K;
    float *part = j->partial + (size_t)chunk * (size_t)j->M * (size_t)j->N;
    memset(part, 0, (size_t)j->M * (size_t)j->N * sizeof(float));
    const int tile = j->M == 1 ? j->N : 512; /* M > 1: keep y's tile and W's rows in L1 */
    for (int t = 0; t < j->N; t += tile)
        kn_accum(part, (size_t)j->N, j->x, j->ldx, j->W, j->M, k0, k1, j->N, t, t + tile < j->N ? t + tile : j->N);
}

/* Row blocks per product: two per thread. */
#define KN_ROW_CHUNKS_PER_THREAD 2

size_t kd_matmul_kn_scratch(const kd_pool *p, int M, int N)
{
    return (size_t)(KN_ROW_CHUNKS_PER_THREAD * kd_pool_threads(p)) * (size_t)M * (size_t)N;
}

void kd_matmul_kn(kd_pool *p, float *y, size_t ldy, const float *x, size_t ldx, const float *W,
                  const float *b, int M, int K, int N, int accumulate, float *scratch, size_t scratch_floats)
{
    kn_job j = {y, ldy, x, ldx, W, b, M, K, N, accumulate, 0, NULL};
    /* two chunks per thread: long contiguous reads stream best (measured: 8 per thread was
     * ~15% slower), and a late thread still leaves only half its share */
    int piece;
    const int n_k = kd_chunks(p, K, 16, KN_ROW_CHUNKS_PER_THREAD, 4, &piece);
    if (scratch && n_k > 1 && (size_t)n_k * (size_t)M * (size_t)N <= scratch_floats) {
        j.piece = piece;
        j.partial = scratch;
        kd_pool_run(p, n_k, kn_ksplit_task, &j);
        for (int m = 0; m < M; m++) {
            float *ym = y + (size_t)m * ldy;
            if (!accumulate)
                memset(ym, 0, (size_t)N * sizeof(float));
            if (b)
                kern_axpy(ym, 1.0f, b, N);
            for (int c = 0; c < n_k; c++)
                kern_axpy(ym, 1.0f, scratch + ((size_t)c * M + (size_t)m) * (size_t)N, N);
        }
        return;
    }
    const int n = kd_chunks(p, N, 64, 2, 16, &j.piece);
    kd_pool_run(p, n, kn_task, &j);
}

void kd_ref_matmul_kn(float *y, size_t ldy, const float *x, size_t ldx, const float *W, const float *b, int M,
                      int K, int N, int accumulate)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = b ? b[n] : 0.0;
            for (int k = 0; k < K; k++)
                s += (double)x[(size_t)m * ldx + k] * W[(size_t)k * N + n];
            float *yp = &y[(size_t)m * ldy + n];
            *yp = accumulate ? *yp + (float)s : (float)s;
        }
}

/* ------------------------------------------------------------------------------------------
 * y_m[N] = x[M,K] @ E[N,K]^T: each thread takes a range of rows of E, four rows at a time
 * (four read streams, eight independent accumulators for M = 1).
 * ------------------------------------------------------------------------------------------ */
typedef struct {
    float *const *y;
    const float *x;
    size_t ldx;
    const float *E;
    int M, K, N;
    int piece; /* rows of E per chunk */
} nk_job;

static void nk_task(void *ctx, int chunk, int ith)
{
    (void)ith;
    const nk_job *j = ctx;
    const int K = j->K;
    int r0 = chunk * j->piece, r1 = r0 + j->piece;
    if (r1 > j->N)
        r1 = j->N;
    int r = r0;
#if KD_AVX2
    if ((K & 7) == 0) {
        for (; r + 4 <= r1; r += 4) {
            const float *e0 = j->E + (size_t)r * K, *e1 = e0 + K, *e2 = e1 + K, *e3 = e2 + K;
            for (int m = 0; m < j->M; m++) {
                const float *xm = j->x + (size_t)m * j->ldx;
                __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
                __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
                for (int k = 0; k < K; k += 8) {
                    __m256 xv = _mm256_loadu_ps(xm + k);
                    a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(e0 + k), a0);
                    a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(e1 + k), a1);
                    a2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(e2 + k), a2);
                    a3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(e3 + k), a3);
                }
                float *ym = j->y[m];
                ym[r] = hsum256(a0);
                ym[r + 1] = hsum256(a1);
                ym[r + 2] = hsum256(a2);
                ym[r + 3] = hsum256(a3);
            }
        }
    }
#endif
    for (; r < r1; r++)
        for (int m = 0; m < j->M; m++)
            j->y[m][r] = kern_dot(j->x + (size_t)m * j->ldx, j->E + (size_t)r * K, K);
}

void kd_matmul_nk(kd_pool *p, float *const *y, const float *x, size_t ldx, const float *E, int M, int K, int N)
{
    nk_job j = {y, x, ldx, E, M, K, N, 0};
    int n = kd_chunks(p, N, 64, 4, 4, &j.piece);
    kd_pool_run(p, n, nk_task, &j);
}

void kd_ref_matmul_nk(float *const *y, const float *x, size_t ldx, const float *E, int M, int K, int N)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0.0;
            for (int k = 0; k < K; k++)
                s += (double)x[(size_t)m * ldx + k] * E[(size_t)n * K + k];
            y[m][n] = (float)s;
        }
}

/* ------------------------------------------------------------------------------------------
 * Row kernels
 * ------------------------------------------------------------------------------------------ */
