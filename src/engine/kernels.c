/* kernels.c - see kernels.h. Two layers per op: a scalar inline function that defines the
 * maths (used for tails and on targets without AVX2+FMA), and an 8-lane AVX2 loop that
 * evaluates the same polynomials. */
#include "engine/kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define KERN_AVX2 1
#else
#define KERN_AVX2 0
#endif

/* exp: x = n ln2 + r, |r| <= ln2/2; e^r by its degree-7 Taylor polynomial (truncation
 * error < 2e-9 relative on that interval); 2^n applied as two exponent-field factors so
 * that n in [-126, 128] never overflows the 8-bit field. Inputs below -87.33654 (where expf
 * leaves the normal range) give 0; inputs above 88.72283 are clamped there. */
#define EXP_LO (-87.33654f)
#define EXP_HI 88.72283f
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f      /* ln 2 split so that n * LN2_HI is exact */
#define LN2_LO (-2.12194440e-4f)
#define C2 (1.0f / 2.0f)
#define C3 (1.0f / 6.0f)
#define C4 (1.0f / 24.0f)
#define C5 (1.0f / 120.0f)
#define C6 (1.0f / 720.0f)
#define C7 (1.0f / 5040.0f)

/* erf, Abramowitz & Stegun 7.1.26: erf(x) = 1 - t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) e^(-x^2),
 * t = 1 / (1 + p x), x >= 0; |error| <= 1.5e-7. */
#define ERF_P 0.3275911f
#define ERF_A1 0.254829592f
#define ERF_A2 (-0.284496736f)
#define ERF_A3 1.421413741f
#define ERF_A4 (-1.453152027f)
#define ERF_A5 1.061405429f

/* erf near 0, where A&S loses digits to cancellation: its Maclaurin series to x^11,
 * 2/sqrt(pi) (x - x^3/3 + x^5/10 - x^7/42 + x^9/216 - x^11/1320); error < 2e-8 for |x| < 0.5. */
#define ERF_SMALL 0.5f
#define TWO_OVER_SQRTPI 1.12837916709551257f
#define ES3 (-1.0f / 3.0f)
#define ES5 (1.0f / 10.0f)
#define ES7 (-1.0f / 42.0f)
#define ES9 (1.0f / 216.0f)
#define ES11 (-1.0f / 1320.0f)

/* tanh: odd; for |x| < TANH_SMALL its Taylor series to x^7 (error < 3e-10), else
 * 1 - 2 / (e^(2|x|) + 1); |x| > 9 is +-1 in float. */
#define TANH_SMALL 0.0625f
#define TANH_BIG 9.0f

#define SQRT1_2 0.70710678118654752f
#define SQRT_2_OVER_PI 0.79788456080286536f
#define GELU_TANH_C 0.044715f

static inline float exp_s(float x)
{
    if (x != x)
        return x; /* NaN stays NaN (and never reaches the int conversion) */
    if (x < EXP_LO)
        return 0.0f;
    if (x > EXP_HI)
        x = EXP_HI;
    float n = rintf(x * LOG2E);
    float r = fmaf(n, -LN2_HI, x);
    r = fmaf(n, -LN2_LO, r);
    float p = fmaf(r, C7, C6);
    p = fmaf(p, r, C5);
    p = fmaf(p, r, C4);
    p = fmaf(p, r, C3);
    p = fmaf(p, r, C2);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    int32_t ni = (int32_t)n;
    int32_t n1 = ni >> 1, n2 = ni - n1;
    uint32_t b1 = (uint32_t)(n1 + 127) << 23, b2 = (uint32_t)(n2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    return p * s1 * s2;
}

static inline float erf_s(float x)
{
    float ax = fabsf(x);
    if (ax < ERF_SMALL) {
        float x2 = x * x;
        float p = fmaf(x2, ES11, ES9);
        p = fmaf(p, x2, ES7);
        p = fmaf(p, x2, ES5);
        p = fmaf(p, x2, ES3);
        p = fmaf(p, x2, 1.0f);
        return TWO_OVER_SQRTPI * x * p;
    }
    float t = 1.0f / fmaf(ERF_P, ax, 1.0f);
    float p = fmaf(ERF_A5, t, ERF_A4);
    p = fmaf(p, t, ERF_A3);
    p = fmaf(p, t, ERF_A2);
    p = fmaf(p, t, ERF_A1);
    float y = 1.0f - p * t * exp_s(-ax * ax);
    return copysignf(y, x);
}

static inline float tanh_s(float x)
{
    float ax = fabsf(x);
    float y;
    if (ax < TANH_SMALL) {
        float x2 = x * x;
        float p = fmaf(x2, -17.0f / 315.0f, 2.0f / 15.0f);
        p = fmaf(p, x2, -1.0f / 3.0f);
        return fmaf(p * x2, x, x);
    }
    if (ax > TANH_BIG)
        y = 1.0f;
    else
        y = 1.0f - 2.0f / (exp_s(2.0f * ax) + 1.0f);
    return copysignf(y, x);
}

static inline float act_s(float x, kern_act act)
{
    switch (act) {
    case KERN_ACT_GELU_ERF:
        return 0.5f * x * (1.0f + erf_s(x * SQRT1_2));
    case KERN_ACT_GELU_TANH: {
        float u = SQRT_2_OVER_PI * fmaf(GELU_TANH_C * x * x, x, x);
        return 0.5f * x * (1.0f + tanh_s(u));
    }
    case KERN_ACT_RELU:
        return x > 0.0f ? x : 0.0f;
    case KERN_ACT_TANH:
        return tanh_s(x);
    case KERN_ACT_NONE:
    default:
        return x;
    }
}

#if KERN_AVX2
static inline __m256 exp8(__m256 x)
{
    __m256 zero = _mm256_cmp_ps(x, _mm256_set1_ps(EXP_LO), _CMP_LT_OQ);
    x = _mm256_min_ps(x, _mm256_set1_ps(EXP_HI));
    x = _mm256_max_ps(x, _mm256_set1_ps(EXP_LO));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    __m256 p = _mm256_fmadd_ps(r, _mm256_set1_ps(C7), _mm256_set1_ps(C6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1);
    __m256i n2 = _mm256_sub_epi32(ni, n1);
    __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    p = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    return _mm256_andnot_ps(zero, p);
}

static inline __m256 abs8(__m256 x)
{
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
}

/* copysign(mag, sign) for mag >= 0 */
static inline __m256 copysign8(__m256 mag, __m256 sign)
{
    return _mm256_or_ps(mag, _mm256_and_ps(sign, _mm256_set1_ps(-0.0f)));
}

static inline __m256 erf8(__m256 x)
{
    __m256 ax = abs8(x);
    __m256 one = _mm256_set1_ps(1.0f);
    /* t = 1 / (1 + p|x|): the 12-bit reciprocal estimate refined by one Newton step */
    __m256 den = _mm256_fmadd_ps(_mm256_set1_ps(ERF_P), ax, one);
    __m256 t = _mm256_rcp_ps(den);
    t = _mm256_mul_ps(t, _mm256_fnmadd_ps(den, t, _mm256_set1_ps(2.0f)));
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(ERF_A5), t, _mm256_set1_ps(ERF_A4));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ERF_A3));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ERF_A2));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(ERF_A1));
    __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(ax, ax)));
    __m256 y = copysign8(_mm256_sub_ps(one, _mm256_mul_ps(_mm256_mul_ps(p, t), e)), x);
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 q = _mm256_fmadd_ps(x2, _mm256_set1_ps(ES11), _mm256_set1_ps(ES9));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(ES7));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(ES5));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(ES3));
    q = _mm256_fmadd_ps(q, x2, one);
    __m256 small = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(TWO_OVER_SQRTPI), x), q);
    return _mm256_blendv_ps(y, small, _mm256_cmp_ps(ax, _mm256_set1_ps(ERF_SMALL), _CMP_LT_OQ));
}

static inline __m256 tanh8(__m256 x)
{
    __m256 ax = abs8(x);
    __m256 one = _mm256_set1_ps(1.0f);
    __m256 e = exp8(_mm256_mul_ps(_mm256_set1_ps(2.0f), _mm256_min_ps(ax, _mm256_set1_ps(TANH_BIG))));
    __m256 big = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
    big = _mm256_blendv_ps(big, one, _mm256_cmp_ps(ax, _mm256_set1_ps(TANH_BIG), _CMP_GT_OQ));
    big = copysign8(big, x);
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 p = _mm256_fmadd_ps(x2, _mm256_set1_ps(-17.0f / 315.0f), _mm256_set1_ps(2.0f / 15.0f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-1.0f / 3.0f));
    __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, x2), x, x);
    return _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, _mm256_set1_ps(TANH_SMALL), _CMP_LT_OQ));
}

static inline __m256 act8(__m256 x, kern_act act)
{
    switch (act) {
    case KERN_ACT_GELU_ERF: {
        __m256 e = erf8(_mm256_mul_ps(x, _mm256_set1_ps(SQRT1_2)));
        return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    }
    case KERN_ACT_GELU_TANH: {
        __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(GELU_TANH_C), x), x);
        __m256 u = _mm256_mul_ps(_mm256_set1_ps(SQRT_2_OVER_PI), _mm256_fmadd_ps(x3, x, x));
        return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), tanh8(u)));
    }
    case KERN_ACT_RELU:
        return _mm256_max_ps(x, _mm256_setzero_ps());
    case KERN_ACT_TANH:
        return tanh8(x);
    case KERN_ACT_NONE:
    default:
        return x;
    }
}

static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

static inline float hmax8(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
#endif

void kern_set_threads(int n)
{
    openblas_set_num_threads(n < 1 ? 1 : n);
}

/* A hand-written 3x4 dot-product kernel without packing was tried for bert-tiny's small shapes
 * (weights in L2, M = 32): OpenBLAS with its packing was still ~25% faster, so every product
 * goes through cblas_sgemm. */
int kern_get_threads(void)
{
    return openblas_get_num_threads();
}

void kern_linear(float *y, size_t ldy, const float *x, size_t ldx, const float *w, int M, int N, int K,
                 bool accumulate)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, (int)ldx, w, K, accumulate ? 1.0f : 0.0f,
                y, (int)ldy);
}

void kern_pack_panels(float *wp, const float *w, int N, int K)
{
    for (int p = 0; p < N / 16; p++)
        for (int k = 0; k < K; k++)
            for (int j = 0; j < 16; j++)
                wp[((size_t)p * K + k) * 16 + j] = w[((size_t)p * 16 + j) * K + k];
}

#if KERN_AVX2
static inline void store16(float *y, __m256 lo, __m256 hi, bool accumulate)
{
    if (accumulate) {
        lo = _mm256_add_ps(lo, _mm256_loadu_ps(y));
        hi = _mm256_add_ps(hi, _mm256_loadu_ps(y + 8));
    }
    _mm256_storeu_ps(y, lo);
    _mm256_storeu_ps(y + 8, hi);
}

/* y (6, 16) [+]= x (6, K) @ panel (K, 16): twelve accumulators in registers. */
static void panel_6x16(float *y, size_t ldy, const float *x, size_t ldx, const float *pw, int K, bool accumulate)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
           c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const float *x0 = x, *x1 = x + ldx, *x2 = x + 2 * ldx, *x3 = x + 3 * ldx, *x4 = x + 4 * ldx, *x5 = x + 5 * ldx;
    for (int k = 0; k < K; k++, pw += 16) {
        __m256 b0 = _mm256_loadu_ps(pw), b1 = _mm256_loadu_ps(pw + 8);
        __m256 a = _mm256_broadcast_ss(x0 + k);
        c00 = _mm256_fmadd_ps(a, b0, c00);
        c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(x1 + k);
        c10 = _mm256_fmadd_ps(a, b0, c10);
        c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(x2 + k);
        c20 = _mm256_fmadd_ps(a, b0, c20);
        c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(x3 + k);
        c30 = _mm256_fmadd_ps(a, b0, c30);
        c31 = _mm256_fmadd_ps(a, b1, c31);
        a = _mm256_broadcast_ss(x4 + k);
        c40 = _mm256_fmadd_ps(a, b0, c40);
        c41 = _mm256_fmadd_ps(a, b1, c41);
        a = _mm256_broadcast_ss(x5 + k);
        c50 = _mm256_fmadd_ps(a, b0, c50);
        c51 = _mm256_fmadd_ps(a, b1, c51);
    }
    store16(y, c00, c01, accumulate);
    store16(y + ldy, c10, c11, accumulate);
    store16(y + 2 * ldy, c20, c21, accumulate);
    store16(y + 3 * ldy, c30, c31, accumulate);
    store16(y + 4 * ldy, c40, c41, accumulate);
    store16(y + 5 * ldy, c50, c51, accumulate);
}

/* y (1, 16) [+]= x (1, K) @ panel (K, 16): the rows left over by panel_6x16. */
static void panel_1x16(float *y, const float *x, const float *pw, int K, bool accumulate)
{
    __m256 c0 = _mm256_setzero_ps(), c1 = c0, d0 = c0, d1 = c0;
    int k = 0;
    for (; k + 2 <= K; k += 2, pw += 32) {
        __m256 a = _mm256_broadcast_ss(x + k), e = _mm256_broadcast_ss(x + k + 1);
        c0 = _mm256_fmadd_ps(a, _mm256_loadu_ps(pw), c0);
        c1 = _mm256_fmadd_ps(a, _mm256_loadu_ps(pw + 8), c1);
        d0 = _mm256_fmadd_ps(e, _mm256_loadu_ps(pw + 16), d0);
        d1 = _mm256_fmadd_ps(e, _mm256_loadu_ps(pw + 24), d1);
    }
    if (k < K) {
        __m256 a = _mm256_broadcast_ss(x + k);
        c0 = _mm256_fmadd_ps(a, _mm256_loadu_ps(pw), c0);
        c1 = _mm256_fmadd_ps(a, _mm256_loadu_ps(pw + 8), c1);
    }
    store16(y, _mm256_add_ps(c0, d0), _mm256_add_ps(c1, d1), accumulate);
}
#endif

void kern_linear_packed(float *y, size_t ldy, const float *x, size_t ldx, const float *wp, int M, int N, int K,
                        bool accumulate)
{
    for (int p = 0; p < N / 16; p++) {
        const float *pw = wp + (size_t)p * K * 16;
        float *yp = y + (size_t)p * 16;
#if KERN_AVX2
        int m = 0;
        for (; m + 6 <= M; m += 6)
            panel_6x16(yp + (size_t)m * ldy, ldy, x + (size_t)m * ldx, ldx, pw, K, accumulate);
        for (; m < M; m++)
            panel_1x16(yp + (size_t)m * ldy, x + (size_t)m * ldx, pw, K, accumulate);
#else
        for (int m = 0; m < M; m++)
            for (int j = 0; j < 16; j++) {
                float acc = 0.0f;
                for (int k = 0; k < K; k++)
                    acc += x[(size_t)m * ldx + k] * pw[(size_t)k * 16 + j];
                yp[(size_t)m * ldy + j] = accumulate ? yp[(size_t)m * ldy + j] + acc : acc;
            }
#endif
    }
}

void kern_fill_rows(float *y, size_t ldy, const float *b, int M, int N)
{
    for (int m = 0; m < M; m++)
        memcpy(y + (size_t)m * ldy, b, (size_t)N * sizeof *y);
}

void kern_bias_act(float *x, size_t ldx, const float *b, int M, int N, kern_act act)
{
    for (int m = 0; m < M; m++) {
        float *row = x + (size_t)m * ldx;
        int i = 0;
#if KERN_AVX2
        for (; i + 8 <= N; i += 8) {
            __m256 v = _mm256_loadu_ps(row + i);
            if (b)
                v = _mm256_add_ps(v, _mm256_loadu_ps(b + i));
            _mm256_storeu_ps(row + i, act8(v, act));
        }
#endif
        for (; i < N; i++)
            row[i] = act_s(b ? row[i] + b[i] : row[i], act);
    }
}

void kern_add_layernorm(float *x, size_t ldx, const float *b, const float *g, const float *beta, int M, int N,
                        float eps)
{
    for (int m = 0; m < M; m++) {
        float *row = x + (size_t)m * ldx;
        if (b)
            kern_axpy(row, 1.0f, b, N);
        int i = 0;
        float sum = 0.0f;
#if KERN_AVX2
        __m256 acc = _mm256_setzero_ps();
        for (; i + 8 <= N; i += 8)
            acc = _mm256_add_ps(acc, _mm256_loadu_ps(row + i));
        sum = hsum8(acc);
#endif
        for (; i < N; i++)
            sum += row[i];
        float mean = sum / (float)N;
        float var = 0.0f;
        i = 0;
#if KERN_AVX2
        __m256 vm = _mm256_set1_ps(mean);
        acc = _mm256_setzero_ps();
        for (; i + 8 <= N; i += 8) {
            __m256 d = _mm256_sub_ps(_mm256_loadu_ps(row + i), vm);
            acc = _mm256_fmadd_ps(d, d, acc);
        }
        var = hsum8(acc);
#endif
        for (; i < N; i++) {
            float d = row[i] - mean;
            var += d * d;
        }
        var /= (float)N;
        float rstd = 1.0f / sqrtf(var + eps);
        i = 0;
#if KERN_AVX2
        __m256 vr = _mm256_set1_ps(rstd);
        for (; i + 8 <= N; i += 8) {
            __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(row + i), vm), vr);
            _mm256_storeu_ps(row + i, _mm256_fmadd_ps(d, _mm256_loadu_ps(g + i), _mm256_loadu_ps(beta + i)));
        }
#endif
        for (; i < N; i++)
            row[i] = (row[i] - mean) * rstd * g[i] + beta[i];
    }
}

/* One row: x = softmax(x). */
static void softmax_row(float *x, int N)
{
    int i = 0;
    float mx = -INFINITY;
#if KERN_AVX2
    if (N >= 8) {
        __m256 vmx = _mm256_set1_ps(-INFINITY);
        for (; i + 8 <= N; i += 8)
            vmx = _mm256_max_ps(vmx, _mm256_loadu_ps(x + i));
        mx = hmax8(vmx);
    }
#endif
    for (; i < N; i++)
        mx = x[i] > mx ? x[i] : mx;
    float sum = 0.0f;
    i = 0;
#if KERN_AVX2
    __m256 vsum = _mm256_setzero_ps();
    __m256 vmx8 = _mm256_set1_ps(mx);
    for (; i + 8 <= N; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmx8));
        _mm256_storeu_ps(x + i, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    sum = hsum8(vsum);
#endif
    for (; i < N; i++) {
        x[i] = exp_s(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    i = 0;
#if KERN_AVX2
    __m256 vinv = _mm256_set1_ps(inv);
    for (; i + 8 <= N; i += 8)
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vinv));
#endif
    for (; i < N; i++)
        x[i] *= inv;
}

void kern_softmax_rows(float *x, size_t ldx, int M, int N)
{
    for (int m = 0; m < M; m++)
        softmax_row(x + (size_t)m * ldx, N);
}

void kern_sigmoid(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 1.0f / (1.0f + exp_s(-x[i]));
}

void kern_l2_normalize(float *x, size_t n)
{
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    double norm = sqrt(ss);
    float inv = (float)(1.0 / (norm > 1e-12 ? norm : 1e-12));
    for (size_t i = 0; i < n; i++)
        x[i] *= inv;
}

float kern_dot(const float *a, const float *b, int n)
{
    int i = 0;
    float s = 0.0f;
#if KERN_AVX2
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), a1);
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
    s = hsum8(_mm256_add_ps(a0, a1));
#endif
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

void kern_axpy(float *y, float alpha, const float *x, int n)
{
    int i = 0;
#if KERN_AVX2
    __m256 va = _mm256_set1_ps(alpha);
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
#endif
    for (; i < n; i++)
        y[i] += alpha * x[i];
}

/* Below this length the per-call cost of two sgemm calls is more than the work. */
#ifndef ATTN_GEMM_MIN_T
#define ATTN_GEMM_MIN_T 16
#endif

void kern_attention(float *out, size_t ldo, const float *q, size_t ldq, const float *k, size_t ldk, const float *v,
                    size_t ldv, int T, int d, float scale, float *scores)
{
    if (T >= ATTN_GEMM_MIN_T) {
        /* scores (T, T) = scale q @ k^T; softmax; out (T, d) = scores @ v */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, d, scale, q, (int)ldq, k, (int)ldk, 0.0f, scores,
                    T);
        kern_softmax_rows(scores, (size_t)T, T, T);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, d, T, 1.0f, scores, T, v, (int)ldv, 0.0f, out,
                    (int)ldo);
        return;
    }
    for (int i = 0; i < T; i++) {
        const float *qi = q + (size_t)i * ldq;
        for (int j = 0; j < T; j++)
            scores[j] = scale * kern_dot(qi, k + (size_t)j * ldk, d);
        softmax_row(scores, T);
        float *oi = out + (size_t)i * ldo;
        memset(oi, 0, (size_t)d * sizeof *oi);
        for (int j = 0; j < T; j++)
            kern_axpy(oi, scores[j], v + (size_t)j * ldv, d);
    }
}

void kern_exp(float *x, size_t n)
{
    size_t i = 0;
#if KERN_AVX2
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, exp8(_mm256_loadu_ps(x + i)));
#endif
    for (; i < n; i++)
        x[i] = exp_s(x[i]);
}

void kern_erf(float *x, size_t n)
{
    size_t i = 0;
#if KERN_AVX2
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, erf8(_mm256_loadu_ps(x + i)));
#endif
    for (; i < n; i++)
        x[i] = erf_s(x[i]);
}

void kern_tanh(float *x, size_t n)
{
    size_t i = 0;
#if KERN_AVX2
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, tanh8(_mm256_loadu_ps(x + i)));
#endif
    for (; i < n; i++)
        x[i] = tanh_s(x[i]);
}
