/* kernels_decode.h - the decoder's hot kernels: a persistent thread pool, small-M matrix
 * products that read each weight once (GEMV-like, for single-token steps and batched
 * steps of a few sequences), layer norm, gelu_new, softmax and attention dot products.
 *
 * Why not OpenBLAS for these: with M = 1..8 rows, a GPT-2 step is bound by reading the
 * weights (~500 MB/token for GPT-2 small fp32); cblas_sgemv/sgemm at M=1 do not reach the
 * memory bandwidth on this machine, while a row-streaming kernel split over a persistent
 * pool does. Large-M (prompt) products still go through cblas_sgemm in gpt2.c.
 *
 * Every kernel has a plain reference version (kd_ref_*) that the tests compare against.
 * Layouts are row-major; shapes are stated per function as (rows, cols).
 *
 * Ownership: kd_pool_new returns a pool owned by the caller (kd_pool_free). Kernels take
 * caller-owned buffers and allocate nothing.
 * Thread-safety: kd_pool_run may be called from any number of threads at once; calls are
 * serialised (each job uses every pool thread). Kernels are reentrant.
 */
#ifndef MCLI_ENGINE_KERNELS_DECODE_H
#define MCLI_ENGINE_KERNELS_DECODE_H

#include <stddef.h>

#include "util/status.h"

/* ---- thread pool ---- */
typedef struct kd_pool kd_pool;

/* One chunk of a job; ith (0 <= ith < threads) names the thread running it, for per-thread
 * scratch. What a chunk computes must depend on `chunk` only (reproducible results). */
typedef void (*kd_chunk_fn)(void *ctx, int chunk, int ith);

/* n_threads <= 0 means the CPUs available to the process. The caller's thread counts as
 * one of them: n_threads - 1 workers are started. */
mcli_status kd_pool_new(int n_threads, kd_pool **out, mcli_err *err) MCLI_MUST_USE;
void kd_pool_free(kd_pool *p);
int kd_pool_threads(const kd_pool *p);
/* Runs fn(ctx, c, ith) once for every chunk c in [0, n_chunks), claimed dynamically by the
 * caller's thread (ith 0) and the workers that are awake, and returns when all are done.
 * A busy machine degrades to the caller running everything, never to waiting for a thread
 * that has no CPU. p may be NULL: runs the chunks inline. */
void kd_pool_run(kd_pool *p, int n_chunks, kd_chunk_fn fn, void *ctx);

/* The CPUs this process may run on (sched_getaffinity), at least 1. */
int kd_cpus_available(void);

/* ---- matrix products (weights read once for all M rows) ---- */

/* y[M,N] (+)= x[M,K] @ W[K,N] + b[N]   (W row-major [in, out], as GPT-2's Conv1D stores it)
 * b may be NULL; accumulate != 0 adds to y (residual connections), else overwrites.
 * ldx/ldy are the row strides of x and y.
 * With scratch of at least kd_matmul_kn_scratch(p, M, N) floats, W is cut into blocks of whole
 * rows (each read front to back, the fastest stream) whose partial sums are added in block
 * order; without, it is cut into column ranges. Either way the result does not depend on which
 * thread ran which chunk (bitwise reproducible for a given thread count). */
void kd_matmul_kn(kd_pool *p, float *y, size_t ldy, const float *x, size_t ldx, const float *W,
                  const float *b, int M, int K, int N, int accumulate, float *scratch, size_t scratch_floats);
/* Scratch floats that let kd_matmul_kn use row blocks for an M x N output. */
size_t kd_matmul_kn_scratch(const kd_pool *p, int M, int N);

/* y_m[N] = x[M,K] @ E[N,K]^T  for m in [0,M): one output row pointer per input row
 * (E row-major [out, in], e.g. the tied LM head = wte [vocab, n_embd]). Split over rows of E. */
void kd_matmul_nk(kd_pool *p, float *const *y, const float *x, size_t ldx, const float *E, int M, int K, int N);

/* Plain single-threaded references of the two products (tests). */
void kd_ref_matmul_kn(float *y, size_t ldy, const float *x, size_t ldx, const float *W, const float *b, int M,
                      int K, int N, int accumulate);
void kd_ref_matmul_nk(float *const *y, const float *x, size_t ldx, const float *E, int M, int K, int N);

/* Element-wise and row kernels (layer norm, gelu_new, softmax, dot, axpy) are the encoder's, in
 * kernels.h: one implementation of each op for the whole engine. */

#endif
