/* kernels.h - the numeric building blocks of the encoders: matrix products through OpenBLAS
 * (or, for small models, a 6x16 AVX2 kernel over weights packed once at load), layer norm,
 * softmax, the activations (exact erf GELU, tanh GELU, ReLU, tanh) fused with a bias add, and
 * one-head attention.
 *
 * Layout: every tensor is row-major float32; shapes are written (rows, cols) and every
 * matrix argument has an explicit row stride (ld*) in elements, so column slices of a wider
 * buffer (one head of a (T, H) activation) are passed without copies. Outputs first, then
 * inputs, then sizes.
 *
 * Numerics: the transcendental functions (exp, erf, tanh) use polynomial approximations
 * evaluated 8 lanes at a time with AVX2+FMA when the compiler targets it, and the same
 * polynomials one lane at a time otherwise (and for tails), so every path gives the same
 * answers to within float rounding. Accuracy against libm in double: exp and tanh < 4 ulp-ish
 * (relative 3e-7), erf absolute < 4e-7 (Maclaurin series below 0.5, Abramowitz & Stegun 7.1.26 above). tests/unit/test_kernels.c
 * holds a plain C reference of every op and the tolerances.
 *
 * Ownership: kernels allocate nothing; they read and write caller memory only.
 * Thread-safety: all kernels are reentrant. kern_linear and the attention kernel call
 * cblas_sgemm, which uses OpenBLAS's process-wide thread pool (kern_set_threads).
 */
#ifndef MCLI_ENGINE_KERNELS_H
#define MCLI_ENGINE_KERNELS_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    KERN_ACT_NONE,
    KERN_ACT_GELU_ERF,  /* 0.5 x (1 + erf(x / sqrt 2)): transformers "gelu" */
    KERN_ACT_GELU_TANH, /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): "gelu_new" */
    KERN_ACT_RELU,      /* max(x, 0) */
    KERN_ACT_TANH,      /* tanh(x) (BERT's pooler) */
} kern_act;

/* Sets / reads OpenBLAS's thread count (process-wide; n >= 1). */
void kern_set_threads(int n);
int kern_get_threads(void);

/* y (M, N) = x (M, K) @ w (N, K)^T            if !accumulate
 * y (M, N) = y + x (M, K) @ w (N, K)^T        if accumulate (residual add for free)
 * w is a torch nn.Linear weight, (out, in) row-major. Bias and activation are separate
 * (kern_bias_act) so that the caller can fuse them with what comes next. */
void kern_linear(float *y, size_t ldy, const float *x, size_t ldx, const float *w, int M, int N, int K,
                 bool accumulate);

/* y (M, N) = b (N) broadcast to every row: a bias written before kern_linear(accumulate) so that
 * the product needs no separate zeroing or bias pass. */
void kern_fill_rows(float *y, size_t ldy, const float *b, int M, int N);

/* Weights re-laid out once at load for kern_linear_packed: w (N, K) -> wp of N/16 panels, panel p
 * holding w[16p .. 16p+15][k] for k = 0..K-1 as (K, 16) rows. N must be a multiple of 16;
 * wp has N*K floats. */
void kern_pack_panels(float *wp, const float *w, int N, int K);

/* y (M, N) [+]= x (M, K) @ w^T with w pre-packed by kern_pack_panels: a 6x16 register-blocked
 * kernel (broadcast x, 16 contiguous weights per k), single-threaded, no per-call packing.
 * For small models whose packed weights fit the caches (bert-tiny); N a multiple of 16. */
void kern_linear_packed(float *y, size_t ldy, const float *x, size_t ldx, const float *wp, int M, int N, int K,
                        bool accumulate);

/* x (M, N) = act(x + b (N)), b may be NULL. */
void kern_bias_act(float *x, size_t ldx, const float *b, int M, int N, kern_act act);

/* x (M, N) = LayerNorm(x + b) with gain g (N) and shift beta (N); b may be NULL.
 * Biased variance, eps inside the square root, as torch.nn.LayerNorm. In place. */
void kern_add_layernorm(float *x, size_t ldx, const float *b, const float *g, const float *beta, int M, int N,
                        float eps);

/* x (M, N) = softmax over each row, in place (max-subtracted). N >= 1. */
void kern_softmax_rows(float *x, size_t ldx, int M, int N);

/* x (n) = 1 / (1 + exp(-x)), in place. */
void kern_sigmoid(float *x, size_t n);

/* x (n) /= max(||x||_2, 1e-12), as torch.nn.functional.normalize. */
void kern_l2_normalize(float *x, size_t n);

/* dot(a (n), b (n)) and y (n) += alpha x (n): the attention inner loops. */
float kern_dot(const float *a, const float *b, int n);
void kern_axpy(float *y, float alpha, const float *x, int n);

/* One head of scaled dot-product attention over one unpadded sequence:
 *   out (T, d) = softmax(scale * q (T, d) @ k (T, d)^T) @ v (T, d)
 * q, k, v and out are column slices with row strides ldq, ldk, ldv, ldo. scores is caller
 * scratch of at least T*T floats. Padding never reaches this kernel: a padded key would get
 * exp(finfo.min - max) == 0 in transformers, so running each sequence at its own length is
 * the same function. Short sequences use a hand loop, longer ones two sgemm calls. */
void kern_attention(float *out, size_t ldo, const float *q, size_t ldq, const float *k, size_t ldk, const float *v,
                    size_t ldv, int T, int d, float scale, float *scores);

/* Element-wise maths on n floats in place (exposed for the tests and the heads). */
void kern_exp(float *x, size_t n);
void kern_erf(float *x, size_t n);
void kern_tanh(float *x, size_t n);

#endif
