/* bench_gpt2.c - GPT-2 small decoder speed with random weights: prompt tokens/s (pp),
 * generated tokens/s (tg, greedy, one token per step through the KV cache), the effective
 * weight-read bandwidth of a step, and this machine's memory bandwidth measured in the same
 * run (STREAM-like triad, as in ../shared/BASELINES.md, and a read-only sum).
 *
 * Usage: bench_gpt2 [--threads N] [--pp 128] [--tg 128] [--reps 3] [--layers 12] [--embd 768]
 *                   [--vocab 50257] [--ctx 1024] [--dir /tmp/mcli-bench-gpt2] [--no-bw]
 * Writes a random safetensors checkpoint into --dir (about 500 MB for GPT-2 small; reused
 * when its size matches), loads it the way the engine does (mmap, zero-copy), and prints a
 * table followed by one JSON object on the last line. MCLI_GPT2_BLAS=1 runs the same steps
 * through OpenBLAS instead of the streaming kernels, for comparison.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "engine/gpt2.h"
#include "engine/kernels.h"
#include "engine/kernels_decode.h"
#include "engine/model_internal.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- random checkpoint ---- */
typedef struct {
    char name[64];
    int64_t d0, d1; /* d1 == 0: vector */
    int kind;       /* 0 random matrix, 1 ones, 2 zeros / small */
} spec;

static uint64_t rng_state = 0x1234567887654321ull;
static inline uint64_t xs64(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int write_checkpoint(const char *dir, int L, int C, int V, int n_ctx, size_t *bytes_out)
{
    const int F = 4 * C;
    spec *sp = calloc((size_t)(4 + 12 * L), sizeof *sp);
    int n = 0;
#define ADD(nm, a, b, k) (snprintf(sp[n].name, sizeof sp[n].name, "%s", nm), sp[n].d0 = (a), sp[n].d1 = (b), sp[n].kind = (k), n++)
    ADD("wte.weight", V, C, 0);
    ADD("wpe.weight", n_ctx, C, 0);
    ADD("ln_f.weight", C, 0, 1);
    ADD("ln_f.bias", C, 0, 2);
    char nm[64];
    for (int l = 0; l < L; l++) {
        const struct {
            const char *s;
            int64_t a, b;
            int k;
        } t[] = {{"ln_1.weight", C, 0, 1},       {"ln_1.bias", C, 0, 2},         {"attn.c_attn.weight", C, 3 * C, 0},
                 {"attn.c_attn.bias", 3 * C, 0, 2}, {"attn.c_proj.weight", C, C, 0}, {"attn.c_proj.bias", C, 0, 2},
                 {"ln_2.weight", C, 0, 1},       {"ln_2.bias", C, 0, 2},         {"mlp.c_fc.weight", C, F, 0},
                 {"mlp.c_fc.bias", F, 0, 2},     {"mlp.c_proj.weight", F, C, 0}, {"mlp.c_proj.bias", C, 0, 2}};
        for (size_t i = 0; i < 12; i++) {
            snprintf(nm, sizeof nm, "h.%d.%s", l, t[i].s);
            ADD(nm, t[i].a, t[i].b, t[i].k);
        }
    }
#undef ADD
    size_t hcap = (size_t)n * 160 + 64, hl = 0, off = 0;
    char *hdr = malloc(hcap);
    hl += (size_t)snprintf(hdr + hl, hcap - hl, "{");
    for (int i = 0; i < n; i++) {
        size_t numel = (size_t)sp[i].d0 * (size_t)(sp[i].d1 ? sp[i].d1 : 1);
        if (sp[i].d1)
            hl += (size_t)snprintf(hdr + hl, hcap - hl, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}",
                                   i ? "," : "", sp[i].name, (long long)sp[i].d0, (long long)sp[i].d1, off, off + numel * 4);
        else
            hl += (size_t)snprintf(hdr + hl, hcap - hl, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],\"data_offsets\":[%zu,%zu]}",
                                   i ? "," : "", sp[i].name, (long long)sp[i].d0, off, off + numel * 4);
        off += numel * 4;
    }
    hl += (size_t)snprintf(hdr + hl, hcap - hl, "}");
    while (hl % 8)
        hdr[hl++] = ' ';
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const size_t total = 8 + hl + off;
    struct stat stt;
    if (stat(path, &stt) == 0 && (size_t)stt.st_size == total) {
        free(hdr);
        free(sp);
        *bytes_out = off;
        return 0; /* reuse */
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "bench_gpt2: cannot write %s: %s\n", path, strerror(errno));
        free(hdr);
        free(sp);
        return -1;
    }
    uint64_t hlen = hl;
    fwrite(&hlen, 8, 1, f);
    fwrite(hdr, 1, hl, f);
    float *buf = malloc(sizeof(float) * (1 << 20));
    for (int i = 0; i < n; i++) {
        size_t numel = (size_t)sp[i].d0 * (size_t)(sp[i].d1 ? sp[i].d1 : 1);
        while (numel > 0) {
            size_t k = numel < (1u << 20) ? numel : (1u << 20);
            for (size_t j = 0; j < k; j++)
                buf[j] = sp[i].kind == 1 ? 1.0f
                                         : (float)((double)(xs64() >> 11) * 0x1.0p-53 - 0.5) *
                                               (sp[i].kind == 0 ? 0.08f : 0.02f);
            fwrite(buf, sizeof(float), k, f);
            numel -= k;
        }
    }
    free(buf);
    int rc = fclose(f) == 0 ? 0 : -1;
    free(hdr);
    free(sp);
    *bytes_out = off;
    return rc;
}

/* ---- memory bandwidth probes ---- */
typedef struct {
    double *a, *b, *c;
    float *r;
    size_t n;
    double sums[64];
} bw_job;

#define BW_CHUNKS 64
static void triad_task(void *ctx, int chunk, int ith)
{
    (void)ith;
    bw_job *j = ctx;
    size_t c0 = j->n * (size_t)chunk / BW_CHUNKS, c1 = j->n * (size_t)(chunk + 1) / BW_CHUNKS;
    for (size_t i = c0; i < c1; i++)
        j->a[i] = j->b[i] + 3.0 * j->c[i];
}

static void read_task(void *ctx, int chunk, int ith)
{
    (void)ith;
    bw_job *j = ctx;
    size_t c0 = j->n * (size_t)chunk / BW_CHUNKS, c1 = j->n * (size_t)(chunk + 1) / BW_CHUNKS;
    j->sums[chunk] = kern_dot(j->r + c0, j->r + c0, (int)(c1 - c0));
}

static void measure_bandwidth(kd_pool *pool, double *triad_gbs, double *read_gbs)
{
    const size_t n = (size_t)32 << 20; /* 32 Mi doubles = 256 MiB per array */
    bw_job j = {0};
    j.n = n;
    j.a = malloc(n * 8);
    j.b = malloc(n * 8);
    j.c = malloc(n * 8);
    for (size_t i = 0; i < n; i++) {
        j.a[i] = 0;
        j.b[i] = 1;
        j.c[i] = 2;
    }
    double best = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_s();
        kd_pool_run(pool, BW_CHUNKS, triad_task, &j);
        double t = now_s() - t0;
        best = t < best ? t : best;
    }
    *triad_gbs = 3.0 * 8.0 * (double)n / best / 1e9;
    free(j.a);
    free(j.b);
    free(j.c);
    /* read-only: the access pattern of a GEMV over weights */
    j.n = n * 2;
    j.r = malloc(j.n * sizeof *j.r);
    for (size_t i = 0; i < j.n; i++)
        j.r[i] = 1.0f;
    best = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_s();
        kd_pool_run(pool, BW_CHUNKS, read_task, &j);
        double t = now_s() - t0;
        best = t < best ? t : best;
    }
    *read_gbs = 4.0 * (double)j.n / best / 1e9;
    free(j.r);
}

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

int main(int argc, char **argv)
{
    int threads = 0, pp = 128, tg = 128, reps = 3, L = 12, C = 768, V = 50257, n_ctx = 1024, do_bw = 1;
    const char *dir = "/tmp/mcli-bench-gpt2";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--no-bw") == 0) {
            do_bw = 0;
            continue;
        }
        if (!v) {
            fprintf(stderr, "bench_gpt2: %s needs a value\n", a);
            return 2;
        }
        long x = strtol(v, NULL, 10);
        if (strcmp(a, "--threads") == 0) threads = (int)x;
        else if (strcmp(a, "--pp") == 0) pp = (int)x;
        else if (strcmp(a, "--tg") == 0) tg = (int)x;
        else if (strcmp(a, "--reps") == 0) reps = (int)x;
        else if (strcmp(a, "--layers") == 0) L = (int)x;
        else if (strcmp(a, "--embd") == 0) C = (int)x;
        else if (strcmp(a, "--vocab") == 0) V = (int)x;
        else if (strcmp(a, "--ctx") == 0) n_ctx = (int)x;
        else if (strcmp(a, "--dir") == 0) dir = v;
        else {
            fprintf(stderr, "bench_gpt2: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (pp < 1 || tg < 1 || reps < 1 || pp + tg > n_ctx || C % 12 != 0) {
        fprintf(stderr, "bench_gpt2: need pp, tg, reps >= 1, pp + tg <= ctx, embd multiple of 12\n");
        return 2;
    }
    mkdir(dir, 0755);
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *cf = fopen(path, "w");
    if (!cf) {
        fprintf(stderr, "bench_gpt2: cannot write %s\n", path);
        return 1;
    }
    fprintf(cf,
            "{\"model_type\":\"gpt2\",\"architectures\":[\"GPT2LMHeadModel\"],\"n_embd\":%d,\"n_layer\":%d,\"n_head\":12,"
            "\"n_positions\":%d,\"vocab_size\":%d,\"activation_function\":\"gelu_new\",\"layer_norm_epsilon\":1e-5,"
            "\"bos_token_id\":%d,\"eos_token_id\":%d}\n",
            C, L, n_ctx, V, V - 1, V - 1);
    fclose(cf);
    size_t file_bytes = 0;
    double t0 = now_s();
    if (write_checkpoint(dir, L, C, V, n_ctx, &file_bytes) != 0)
        return 1;
    double t_write = now_s() - t0;

    mcli_err err;
    mcli_err_clear(&err);
    mcli_model *m = calloc(1, sizeof *m);
    m->n_threads = threads;
    t0 = now_s();
    if (config_load(dir, &m->config, &err) != MCLI_OK || weights_open(dir, &m->weights, &err) != MCLI_OK ||
        gpt2_load(m, &err) != MCLI_OK) {
        fprintf(stderr, "bench_gpt2: %s\n", err.msg);
        return 1;
    }
    double t_load = now_s() - t0;
    const gpt2_model *g = m->gpt2;
    const int nth = threads > 0 ? threads : kd_cpus_available();
    /* bytes a decoding step reads: every weight except wpe (one row) */
    const size_t step_bytes = file_bytes - (size_t)n_ctx * C * 4 + (size_t)C * 4;

    int32_t *ids = malloc((size_t)(pp + tg) * sizeof *ids);
    for (int i = 0; i < pp + tg; i++)
        ids[i] = (int32_t)(xs64() % (uint64_t)V);
    gpt2_state *s = NULL;
    if (gpt2_state_new(g, pp + tg, &s, &err) != MCLI_OK) {
        fprintf(stderr, "bench_gpt2: %s\n", err.msg);
        return 1;
    }
    /* warm-up: touch every weight page once */
    if (gpt2_prefill(g, s, ids, 8, NULL, &err) != MCLI_OK) {
        fprintf(stderr, "bench_gpt2: %s\n", err.msg);
        return 1;
    }
    double *pp_t = calloc((size_t)reps, sizeof *pp_t), *tg_t = calloc((size_t)reps, sizeof *tg_t);
    double *tgp_t = calloc((size_t)reps, sizeof *tgp_t);
    for (int r = 0; r < reps; r++) {
        /* pp: one prompt of pp tokens */
        gpt2_state_reset(s);
        t0 = now_s();
        if (gpt2_prefill(g, s, ids, (size_t)pp, NULL, &err) != MCLI_OK)
            goto fail;
        pp_t[r] = now_s() - t0;
        /* tg after the prompt */
        t0 = now_s();
        for (int i = 0; i < tg; i++) {
            int32_t id = argmax(gpt2_state_logits(s), V);
            if (gpt2_step(g, &s, &id, 1, &err) != MCLI_OK)
                goto fail;
        }
        tgp_t[r] = now_s() - t0;
        /* tg from a 1-token context (llama-bench's tg128) */
        gpt2_state_reset(s);
        if (gpt2_prefill(g, s, ids, 1, NULL, &err) != MCLI_OK)
            goto fail;
        t0 = now_s();
        for (int i = 0; i < tg; i++) {
            int32_t id = argmax(gpt2_state_logits(s), V);
            if (gpt2_step(g, &s, &id, 1, &err) != MCLI_OK)
                goto fail;
        }
        tg_t[r] = now_s() - t0;
    }
    const double pp_tok_s = pp / median(pp_t, reps);
    const double tg_tok_s = tg / median(tg_t, reps);
    const double tgp_tok_s = tg / median(tgp_t, reps);
    const double ms_tok = 1e3 / tg_tok_s;
    const double gbs = (double)step_bytes * tg_tok_s / 1e9;
    /* peak RSS of the decoder alone: read before the bandwidth probe allocates its arrays */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double rss_mib = (double)ru.ru_maxrss / 1024.0;
    double triad = 0, readbw = 0;
    if (do_bw) {
        kd_pool *bp = NULL;
        if (kd_pool_new(nth, &bp, &err) == MCLI_OK) {
            measure_bandwidth(bp, &triad, &readbw);
            kd_pool_free(bp);
        }
    }
    const char *mode = getenv("MCLI_GPT2_BLAS") && strcmp(getenv("MCLI_GPT2_BLAS"), "1") == 0 ? "openblas" : "mcli";

    printf("GPT-2 decoder bench (%d layers x %d, vocab %d, ctx %d), %d threads, kernels: %s\n", L, C, V, n_ctx, nth,
           mode);
    printf("  checkpoint %.0f MB (%s %.2f s), load %.3f s\n", (double)file_bytes / 1e6,
           t_write > 0.5 ? "written" : "reused", t_write, t_load);
    printf("  %-34s %10.1f tokens/s\n", "pp (prompt)", pp_tok_s);
    printf("  %-34s %10.1f tokens/s  (%.2f ms/token)\n", "tg (from 1-token context)", tg_tok_s, ms_tok);
    printf("  %-34s %10.1f tokens/s\n", "tg (after the prompt)", tgp_tok_s);
    printf("  %-34s %10.2f GB/s (%.0f MB per token)\n", "effective weight read", gbs, (double)step_bytes / 1e6);
    if (do_bw)
        printf("  %-34s %10.2f GB/s triad, %.2f GB/s read -> %.0f%% of triad, %.0f%% of read\n", "machine bandwidth",
               triad, readbw, 100.0 * gbs / triad, 100.0 * gbs / readbw);
    printf("  %-34s %10.1f MiB (weights %.1f MiB, +%.1f%%)\n", "peak RSS", rss_mib, (double)file_bytes / 1048576.0,
           100.0 * (rss_mib * 1048576.0 / (double)file_bytes - 1.0));
    printf("{\"bench\":\"gpt2\",\"kernels\":\"%s\",\"threads\":%d,\"layers\":%d,\"n_embd\":%d,\"vocab\":%d,\"pp\":%d,\"tg\":%d,"
           "\"pp_tokens_per_s\":%.2f,\"tg_tokens_per_s\":%.2f,\"tg_after_prompt_tokens_per_s\":%.2f,\"ms_per_token\":%.3f,"
           "\"bytes_per_token\":%zu,\"effective_gb_s\":%.3f,\"triad_gb_s\":%.3f,\"read_gb_s\":%.3f,"
           "\"bandwidth_ratio_triad\":%.4f,\"peak_rss_mib\":%.1f,\"weight_mib\":%.1f}\n",
           mode, nth, L, C, V, pp, tg, pp_tok_s, tg_tok_s, tgp_tok_s, ms_tok, step_bytes, gbs, triad, readbw,
           triad > 0 ? gbs / triad : 0.0, rss_mib, (double)file_bytes / 1048576.0);
    gpt2_state_free(s);
    free(ids);
    free(pp_t);
    free(tg_t);
    free(tgp_t);
    gpt2_free(m->gpt2);
    weights_free(m->weights);
    config_free(&m->config);
    free(m);
    return 0;
fail:
    fprintf(stderr, "bench_gpt2: %s\n", err.msg);
    return 1;
}
