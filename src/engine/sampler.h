/* sampler.h - next-token choice from logits: repetition penalty, greedy, temperature,
 * top-k, top-p, min-p, and a seeded PRNG, with transformers' semantics:
 *
 *   1. repetition penalty over every id seen so far (prompt included), once per distinct id:
 *      logit > 0 ? logit / penalty : logit * penalty                 (RepetitionPenaltyLogitsProcessor)
 *   2. greedy (or temperature == 0): argmax, lowest id on ties
 *   3. logits / temperature                                           (TemperatureLogitsWarper)
 *   4. top-k: keep logits >= the k-th largest (ties kept)            (TopKLogitsWarper)
 *   5. top-p: keep the most likely tokens until their mass reaches p, always at least one
 *      (a token is kept iff the mass of the tokens ranked before it is < p)   (TopPLogitsWarper)
 *   6. min-p: keep tokens with prob >= min_p * max prob               (MinPLogitsWarper)
 *   7. draw from the renormalised distribution with one uniform number.
 *
 * Ownership: a sampler is a caller-owned struct whose buffers sampler_init allocates and
 * sampler_free releases. Thread-safety: one sampler per sequence; no shared state.
 */
#ifndef MCLI_ENGINE_SAMPLER_H
#define MCLI_ENGINE_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/engine.h"
#include "util/status.h"

/* xoshiro256** seeded through splitmix64: the same seed gives the same stream everywhere. */
typedef struct {
    uint64_t s[4];
} mcli_rng;
void rng_seed(mcli_rng *r, uint64_t seed);
uint64_t rng_next(mcli_rng *r);
/* Uniform in [0, 1), 53 random bits. */
double rng_uniform(mcli_rng *r);

typedef struct {
    float p;
    int32_t id;
} mcli_sampler_cand;

typedef struct {
    int n_vocab;
    mcli_gen_params p;     /* copy; p.stop is not used here */
    mcli_rng rng;
    uint8_t *seen;         /* [n_vocab] 1 if the id occurred (prompt or generated) */
    int32_t *seen_ids;     /* [n_vocab] the distinct seen ids, n_seen of them */
    int n_seen;
    int32_t *cand_id;      /* [n_vocab] candidate scratch */
    float *cand_p;         /* [n_vocab] */
    mcli_sampler_cand *sorted; /* [n_vocab] top-p sort scratch */
} mcli_sampler;

/* Validates params (temperature >= 0, top_p in (0,1], min_p in [0,1], penalty > 0,
 * top_k >= 0) and allocates the buffers. */
mcli_status sampler_init(mcli_sampler *s, int n_vocab, const mcli_gen_params *p, mcli_err *err) MCLI_MUST_USE;
void sampler_free(mcli_sampler *s);
/* Marks ids as seen for the repetition penalty (prompt, then each chosen token). Out-of-range
 * ids are ignored. */
void sampler_accept(mcli_sampler *s, const int32_t *ids, size_t n);
/* Picks the next id from logits[n_vocab] (modified in place). Does not call sampler_accept. */
int32_t sampler_sample(mcli_sampler *s, float *logits);

#endif
