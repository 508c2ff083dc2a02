/* recommend.c - memory/disk estimates and the tiered choice (see recommend.h). */
#include "sys/recommend.h"

#include <math.h>
#include <string.h>

#define MB (1024.0 * 1024.0)

void recommend_estimate(const rec_candidate *c, const mcli_sysinfo *sys, rec_estimate *out)
{
    memset(out, 0, sizeof *out);
    double T = c->n_ctx > 0 ? c->n_ctx : 512;
    double h = c->hidden > 0 ? c->hidden : 768;
    double inter = c->intermediate > 0 ? c->intermediate : 4 * h;
    double heads = c->n_heads > 0 ? c->n_heads : 12;
    double layers = c->n_layers > 0 ? c->n_layers : 12;
    double act;
    if (c->decoder) {
        /* KV cache: S seqs x 2 (K,V) x layers x T x hidden floats, plus one layer's scratch and logits. */
        act = 4.0 * REC_DECODER_SEQS * (2.0 * layers * T * h + T * (6.0 * h + inter) + (c->vocab > 0 ? c->vocab : 50257));
    } else {
        /* One layer's activations for a batch (reused layer to layer) plus attention scores. */
        act = 4.0 * REC_BATCH * T * (6.0 * h + inter) + 4.0 * REC_BATCH * heads * T * T;
    }
    out->weights_mb = (int64_t)ceil(c->size_mb);
    out->runtime_mb = REC_RUNTIME_MB;
    out->activations_mb = (int64_t)ceil(act / MB);
    out->need_mb = out->weights_mb + out->runtime_mb + out->activations_mb;
    out->need_with_headroom_mb = (int64_t)ceil((double)out->need_mb * REC_HEADROOM);
    out->disk_need_mb = c->on_disk ? 0 : (int64_t)ceil(c->size_mb * 1.1) + 50;
    out->fits_memory = sys->mem_effective_mb < 0 || out->need_with_headroom_mb <= sys->mem_effective_mb;
    out->fits_disk = c->on_disk || sys->disk_free_mb < 0 || out->disk_need_mb <= sys->disk_free_mb;
}

static int tier_of(int64_t mem_mb)
{
    if (mem_mb >= 0 && mem_mb < 2048)
        return 0;
    if (mem_mb >= 0 && mem_mb < 4096)
        return 2048;
    return 4096;
}

/* Order: higher tier first, then higher capability, then smaller size. */
static bool better(const rec_candidate *a, const rec_candidate *b)
{
    if (a->min_ram_mb != b->min_ram_mb)
        return a->min_ram_mb > b->min_ram_mb;
    if (a->capability != b->capability)
        return a->capability > b->capability;
    return a->size_mb < b->size_mb;
}

void recommend_choose(const rec_candidate *cands, size_t n, const mcli_sysinfo *sys, rec_result *out, FILE *report)
{
    memset(out, 0, sizeof *out);
    out->index = -1;
    out->usable_mem_mb = sys->mem_effective_mb;
    int64_t basis = sys->ram_total_mb;
    if (sys->cgroup_mem_limit_mb >= 0 && (basis < 0 || sys->cgroup_mem_limit_mb < basis))
        basis = sys->cgroup_mem_limit_mb;
    out->tier_basis_mb = basis;
    out->tier_mb = tier_of(basis);
    if (report) {
        fprintf(report, "Candidates (need = weights + runtime + activations; x%.1f headroom must fit in %lld MB usable memory):\n",
                REC_HEADROOM, (long long)sys->mem_effective_mb);
    }
    int best = -1, smallest = -1;
    for (size_t i = 0; i < n; i++) {
        const rec_candidate *c = &cands[i];
        if (c->min_ram_mb < 0)
            continue;
        rec_estimate e;
        recommend_estimate(c, sys, &e);
        bool in_tier = c->min_ram_mb <= out->tier_mb;
        bool ok = in_tier && e.fits_memory && e.fits_disk;
        if (report)
            fprintf(report, "  %-42s tier >=%5lld MB  need %5lld MB (w %lld + rt %lld + act %lld) -> %5lld MB, disk %5lld MB  %s\n",
                    c->key, (long long)c->min_ram_mb, (long long)e.need_mb, (long long)e.weights_mb,
                    (long long)e.runtime_mb, (long long)e.activations_mb, (long long)e.need_with_headroom_mb,
                    (long long)e.disk_need_mb,
                    !in_tier ? "above this machine's tier"
                    : !e.fits_memory ? "does not fit in memory"
                    : !e.fits_disk ? "not enough free disk"
                    : "fits");
        if (smallest < 0 || c->size_mb < cands[smallest].size_mb)
            smallest = (int)i;
        if (ok && (best < 0 || better(c, &cands[best])))
            best = (int)i;
    }
    if (best >= 0) {
        const rec_candidate *c = &cands[best];
        out->index = best;
        out->fits = true;
        rec_estimate e;
        recommend_estimate(c, sys, &e);
        char rule[128];
        snprintf(rule, sizeof rule, "%lld MB of RAM%s is %s", (long long)basis,
                 basis == sys->cgroup_mem_limit_mb ? " (cgroup limit)" : "",
                 out->tier_mb == 0      ? "under 2 GB: the tiny tier"
                 : out->tier_mb == 2048 ? "under 4 GB: the small tier"
                                        : "4 GB or more: the base tier");
        if (c->min_ram_mb == out->tier_mb)
            snprintf(out->reason, sizeof out->reason,
                     "%s: %s; it needs about %lld MB (%lld MB with headroom) of %lld MB usable and %lld MB of %lld MB free disk",
                     c->key, rule, (long long)e.need_mb, (long long)e.need_with_headroom_mb,
                     (long long)sys->mem_effective_mb, (long long)e.disk_need_mb, (long long)sys->disk_free_mb);
        else
            snprintf(out->reason, sizeof out->reason,
                     "%s: %s, but the larger models of that tier do not fit (memory with headroom or disk); "
                     "this one needs about %lld MB (%lld MB with headroom) of %lld MB usable and %lld MB of %lld MB free disk",
                     c->key, rule, (long long)e.need_mb, (long long)e.need_with_headroom_mb,
                     (long long)sys->mem_effective_mb, (long long)e.disk_need_mb, (long long)sys->disk_free_mb);
    } else if (smallest >= 0) {
        out->index = smallest;
        out->fits = false;
        rec_estimate e;
        recommend_estimate(&cands[smallest], sys, &e);
        snprintf(out->reason, sizeof out->reason,
                 "nothing fits: even %s needs about %lld MB with headroom (usable %lld MB) and %lld MB of disk (free %lld MB)",
                 cands[smallest].key, (long long)e.need_with_headroom_mb, (long long)sys->mem_effective_mb,
                 (long long)e.disk_need_mb, (long long)sys->disk_free_mb);
    } else {
        snprintf(out->reason, sizeof out->reason, "no --auto candidates in the catalog");
    }
}
