/* recommend.h - pick the model that fits this machine.
 *
 * The caller (cmd_hub.c) turns catalog entries into rec_candidate values; this file knows nothing
 * about the catalog or the network. Estimates, per candidate:
 *   weights   = size_mb (fp32 weights are resident once loaded; mmap pages count too)
 *   runtime   = 40 MB (binary, libraries, tokenizer tables, HTTP buffers)
 *   encoder activations at batch B=8, context T=n_ctx (one layer at a time, reused):
 *             4 bytes * B * T * (hidden * 6 + intermediate) + 4 * B * heads * T * T
 *   decoder KV cache for S=4 concurrent sequences at context T:
 *             4 bytes * S * 2 * layers * T * hidden, plus logits 4 * S * vocab
 *   need_mb   = weights + runtime + activations
 * A candidate fits when need_mb * 1.5 (headroom) <= usable memory (min of MemAvailable and the
 * cgroup limit minus usage) and size_mb * 1.1 + 50 MB <= free disk (unless already on disk).
 *
 * Choice: the original tool's rule chooses a tier by RAM (here: total RAM, capped by the cgroup memory
 * limit when there is one - the original used psutil's total): < 2048 MB -> the candidate with
 * min_ram_mb 0 (bert-tiny), < 4096 MB -> min_ram_mb 2048 (tiny DistilBERT), else min_ram_mb 4096
 * (distilbert-base-uncased). The tier rule is data: each candidate carries min_ram_mb. Among the
 * candidates whose min_ram_mb <= that tier, the most capable one (highest min_ram_mb, then
 * highest capability) that also fits by the estimate wins; if it does not fit we step down. If
 * nothing fits, the smallest candidate is returned with fits = false and the reason.
 *
 * Thread-safety: pure functions. Ownership: everything is caller-owned.
 */
#ifndef MCLI_SYS_RECOMMEND_H
#define MCLI_SYS_RECOMMEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sys/sysinfo.h"

typedef struct {
    const char *key;       /* catalog key, for messages */
    double size_mb;        /* download / weight size */
    int n_layers, hidden, n_heads, intermediate, n_ctx, vocab;
    bool decoder;          /* KV cache instead of encoder activations */
    int64_t min_ram_mb;    /* tier threshold (the original rule); < 0 = not an --auto candidate */
    double capability;     /* tie-break among one tier (the catalog's accuracy score) */
    bool on_disk;          /* already downloaded: no disk needed */
} rec_candidate;

typedef struct {
    int64_t weights_mb, runtime_mb, activations_mb, need_mb, need_with_headroom_mb, disk_need_mb;
    bool fits_memory, fits_disk;
} rec_estimate;

typedef struct {
    int index;             /* into the candidate array; -1 if there were no candidates */
    bool fits;             /* false: nothing fits, index is the smallest as a last resort */
    int64_t usable_mem_mb; /* what the estimates were compared against (mem_effective_mb) */
    int64_t tier_basis_mb; /* min(RAM total, cgroup limit): what chose the tier */
    int tier_mb;           /* the original rule's tier: 0, 2048 or 4096 */
    char reason[512];
} rec_result;

#define REC_HEADROOM 1.5
#define REC_RUNTIME_MB 40
#define REC_BATCH 8
#define REC_DECODER_SEQS 4

void recommend_estimate(const rec_candidate *c, const mcli_sysinfo *sys, rec_estimate *out);

/* Chooses among cands[0..n) (see above). Writes the per-candidate analysis to report if non-NULL. */
void recommend_choose(const rec_candidate *cands, size_t n, const mcli_sysinfo *sys, rec_result *out,
                      FILE *report);

#endif
