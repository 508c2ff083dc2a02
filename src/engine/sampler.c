/* sampler.c - see sampler.h for the order of the steps and their semantics. */
#include "engine/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- PRNG: splitmix64 to seed, xoshiro256** to draw ---- */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void rng_seed(mcli_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_next(mcli_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t out = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double rng_uniform(mcli_rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

/* ---- sampler ---- */
mcli_status sampler_init(mcli_sampler *s, int n_vocab, const mcli_gen_params *p, mcli_err *err)
{
    memset(s, 0, sizeof *s);
    if (n_vocab <= 0)
        return mcli_fail(err, MCLI_ERR_INTERNAL, "sampler: vocabulary of %d tokens", n_vocab);
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "temperature must be a finite number >= 0 (got %g)",
                         (double)p->temperature);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "top_p must be in (0, 1] (got %g)", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "min_p must be in [0, 1] (got %g)", (double)p->min_p);
    if (!(p->repetition_penalty > 0.0f) || !isfinite(p->repetition_penalty))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "repetition_penalty must be > 0 (got %g)",
                         (double)p->repetition_penalty);
    if (p->top_k < 0)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "top_k must be >= 0 (got %d)", p->top_k);
    s->n_vocab = n_vocab;
    s->p = *p;
    s->p.stop = NULL;
    s->p.n_stop = 0;
    rng_seed(&s->rng, p->seed);
    s->seen = calloc((size_t)n_vocab, 1);
    s->seen_ids = malloc((size_t)n_vocab * sizeof *s->seen_ids);
    s->cand_id = malloc((size_t)n_vocab * sizeof *s->cand_id);
    s->cand_p = malloc((size_t)n_vocab * sizeof *s->cand_p);
    s->sorted = malloc((size_t)n_vocab * sizeof *s->sorted);
    if (!s->seen || !s->seen_ids || !s->cand_id || !s->cand_p || !s->sorted) {
        sampler_free(s);
        return mcli_fail(err, MCLI_ERR_NOMEM, "sampler: out of memory for %d tokens", n_vocab);
    }
    return MCLI_OK;
}

void sampler_free(mcli_sampler *s)
{
    if (!s)
        return;
    free(s->seen);
    free(s->seen_ids);
    free(s->cand_id);
    free(s->cand_p);
    free(s->sorted);
    memset(s, 0, sizeof *s);
}

void sampler_accept(mcli_sampler *s, const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const int32_t id = ids[i];
        if (id < 0 || id >= s->n_vocab || s->seen[id])
            continue;
        s->seen[id] = 1;
        s->seen_ids[s->n_seen++] = id;
    }
}

static int32_t argmax(const float *x, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* Descending by probability, ascending id on ties (a total order: reproducible). */
typedef mcli_sampler_cand cand;

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->p != y->p)
        return x->p > y->p ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* The k-th largest value of x[n] (1 <= k <= n), without modifying x: quickselect on tmp. */
static float kth_largest(const float *x, int n, int k, float *tmp)
{
    memcpy(tmp, x, (size_t)n * sizeof *tmp);
    int lo = 0, hi = n - 1, want = k - 1;
    while (lo < hi) {
        const float pivot = tmp[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (tmp[i] > pivot)
                i++;
            while (tmp[j] < pivot)
                j--;
            if (i <= j) {
                float t = tmp[i];
                tmp[i] = tmp[j];
                tmp[j] = t;
                i++;
                j--;
            }
        }
        if (want <= j)
            hi = j;
        else if (want >= i)
            lo = i;
        else
            return tmp[want];
    }
    return tmp[want];
}

int32_t sampler_sample(mcli_sampler *s, float *logits)
{
    const int V = s->n_vocab;
    const mcli_gen_params *p = &s->p;

    if (p->repetition_penalty != 1.0f)
        for (int i = 0; i < s->n_seen; i++) {
            float *l = &logits[s->seen_ids[i]];
            *l = *l > 0.0f ? *l / p->repetition_penalty : *l * p->repetition_penalty;
        }
    if (p->greedy || p->temperature == 0.0f)
        return argmax(logits, V);

    const float inv_t = 1.0f / p->temperature;
    float cutoff = -INFINITY;
    if (p->top_k > 0 && p->top_k < V)
        cutoff = kth_largest(logits, V, p->top_k, s->cand_p) * inv_t;

    /* Candidates: (prob, id) of the logits that survive top-k, softmax over them. */
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) {
        float l = logits[i] * inv_t;
        logits[i] = l;
        if (l > mx)
            mx = l;
    }
    int n = 0;
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        if (!(logits[i] >= cutoff) || logits[i] == -INFINITY) /* also drops NaN */
            continue;
        float e = expf(logits[i] - mx);
        s->cand_id[n] = i;
        s->cand_p[n] = e;
        sum += e;
        n++;
    }
    if (n == 0) /* every logit -inf or NaN: fall back to the first maximum */
        return argmax(logits, V);
    float pmax = 0.0f;
    for (int i = 0; i < n; i++) {
        s->cand_p[i] = (float)(s->cand_p[i] / sum);
        if (s->cand_p[i] > pmax)
            pmax = s->cand_p[i];
    }

    /* top-p: the nucleus lies within the tokens of prob >= t once their mass reaches top_p, so
     * only those are sorted (lowering t tenfold until it does). */
    if (p->top_p < 1.0f) {
        double t = pmax * 1e-2;
        int m = 0;
        for (;;) {
            double mass = 0.0;
            m = 0;
            for (int i = 0; i < n; i++)
                if (s->cand_p[i] >= t) {
                    mass += s->cand_p[i];
                    m++;
                }
            if (mass >= p->top_p || t == 0.0)
                break;
            t = t < 1e-30 ? 0.0 : t * 1e-2;
        }
        cand *buf = s->sorted;
        {
            int k = 0;
            for (int i = 0; i < n; i++)
                if (s->cand_p[i] >= t)
                    buf[k++] = (cand){s->cand_p[i], s->cand_id[i]};
            qsort(buf, (size_t)m, sizeof *buf, cand_cmp);
            double before = 0.0;
            int keep = 0;
            while (keep < m && (keep == 0 || before < p->top_p)) {
                before += buf[keep].p;
                keep++;
            }
            for (int i = 0; i < keep; i++) {
                s->cand_id[i] = buf[i].id;
                s->cand_p[i] = buf[i].p;
            }
            n = keep;
        }
    }
    /* min-p relative to the most likely token (pmax is still in the set). */
    if (p->min_p > 0.0f) {
        const float thr = p->min_p * pmax;
        int k = 0;
        for (int i = 0; i < n; i++)
            if (s->cand_p[i] >= thr) {
                s->cand_id[k] = s->cand_id[i];
                s->cand_p[k] = s->cand_p[i];
                k++;
            }
        n = k;
    }
    double total = 0.0;
    for (int i = 0; i < n; i++)
        total += s->cand_p[i];
    const double u = rng_uniform(&s->rng) * total;
    double acc = 0.0;
    for (int i = 0; i < n; i++) {
        acc += s->cand_p[i];
        if (u < acc)
            return s->cand_id[i];
    }
    return s->cand_id[n - 1];
}
