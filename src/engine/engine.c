/* engine.c - engine_load (config + weights + tokenizer, then the architecture's binder),
 * engine_free, the info accessors, and dispatch of the encoder calls to bert.c. Generation
 * lives in gpt2.c / sampler.c.
 *
 * Threads: the model's thread count (opts->n_threads, else the CPUs this process may use:
 * affinity mask and cgroup CPU quota) is applied to OpenBLAS when the model loads. OpenBLAS's
 * count is process-wide, so with several models loaded the last load wins.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bert.h"
#include "engine/engine.h"
#include "engine/kernels.h"
#include "engine/model_internal.h"
#include "util/log.h"

/* Reads a small text file into buf (NUL-terminated); false if absent or unreadable. */
static bool read_small(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n > 0;
}

/* Parses a non-negative decimal prefix of at most 18 digits; -1 if none. */
static long long parse_count(const char *s, const char **end)
{
    long long v = 0;
    int digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 18) {
        v = v * 10 + (*s - '0');
        s++;
        digits++;
    }
    *end = s;
    return digits ? v : -1;
}

/* CPUs allowed by the cgroup CPU quota (v2 cpu.max "QUOTA PERIOD", v1 cfs files), or 0 if unlimited. */
static int cgroup_cpu_limit(void)
{
    char buf[128];
    const char *end;
    long long quota = -1, period = -1;
    if (read_small("/sys/fs/cgroup/cpu.max", buf, sizeof buf)) {
        if (strncmp(buf, "max", 3) == 0)
            return 0;
        quota = parse_count(buf, &end);
        if (*end == ' ')
            period = parse_count(end + 1, &end);
    } else {
        if (read_small("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", buf, sizeof buf))
            quota = parse_count(buf, &end); /* "-1" parses as no digits: unlimited */
        if (read_small("/sys/fs/cgroup/cpu/cpu.cfs_period_us", buf, sizeof buf))
            period = parse_count(buf, &end);
    }
    if (quota <= 0 || period <= 0)
        return 0;
    long long n = (quota + period - 1) / period;
    return n > 4096 ? 4096 : (int)n;
}

int engine_cpus_available(void)
{
    int n = 1;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    int limit = cgroup_cpu_limit();
    if (limit > 0 && limit < n)
        n = limit;
    return n < 1 ? 1 : n;
}

static void set_name(mcli_model *m, const char *dir)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && dir[start - 1] != '/')
        start--;
    size_t n = len - start;
    if (n >= sizeof m->name)
        n = sizeof m->name - 1;
    memcpy(m->name, dir + start, n);
    m->name[n] = '\0';
}

mcli_status engine_load(const char *dir, const mcli_engine_opts *opts, mcli_model **out, mcli_err *err)
{
    mcli_status s;
    *out = NULL;
    if (!dir || !*dir)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "no model directory given");
    mcli_model *m = calloc(1, sizeof *m);
    if (!m)
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory loading %s", dir);
    set_name(m, dir);
    if ((s = config_load(dir, &m->config, err)) || (s = weights_open(dir, &m->weights, err)) ||
        (s = tokenizer_load(dir, &m->tokenizer, err)))
        goto fail;
    m->info.config = &m->config;
    m->info.weight_bytes = weights_bytes(m->weights);
    m->info.weights_format = weights_format(m->weights);
    m->n_threads = opts && opts->n_threads > 0 ? opts->n_threads : engine_cpus_available();
    kern_set_threads(m->n_threads);
    switch (m->config.arch) {
    case MCLI_ARCH_BERT:
    case MCLI_ARCH_DISTILBERT:
        s = bert_load(m, err);
        break;
    case MCLI_ARCH_GPT2:
        s = gpt2_load(m, err);
        break;
    default:
        s = mcli_fail(err, MCLI_ERR_UNSUPPORTED, "architecture %s is not supported", mcli_arch_name(m->config.arch));
    }
    if (s)
        goto fail;
    LOG_DEBUG("loaded %s: %s, %lld parameters, %zu weight bytes (%s), %d threads", m->name,
              mcli_arch_name(m->config.arch), (long long)m->info.n_params, m->info.weight_bytes,
              m->info.weights_format, m->n_threads);
    *out = m;
    return MCLI_OK;
fail:
    mcli_err_prefix(err, "loading model %s", dir);
    engine_free(m);
    return s;
}

void engine_free(mcli_model *m)
{
    if (!m)
        return;
    bert_free(m->bert);
    gpt2_free(m->gpt2);
    tokenizer_free(m->tokenizer);
    weights_free(m->weights);
    config_free(&m->config);
    free(m);
}

const mcli_model_info *engine_info(const mcli_model *m)
{
    return &m->info;
}

const mcli_tokenizer *engine_tokenizer(const mcli_model *m)
{
    return m->tokenizer;
}

static mcli_status not_encoder(const mcli_model *m, const char *what, mcli_err *err)
{
    return mcli_fail(err, MCLI_ERR_UNSUPPORTED, "%s is a %s decoder: it generates text and does not do %s", m->name,
                     mcli_arch_name(m->config.arch), what);
}

mcli_status engine_embed(const mcli_model *m, const mcli_seq *seqs, size_t n, mcli_pooling pool, bool normalize,
                         float *out, mcli_err *err)
{
    if (!m->bert)
        return not_encoder(m, "embeddings", err);
    if (pool != MCLI_POOL_NONE && pool != MCLI_POOL_CLS && pool != MCLI_POOL_MEAN)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "unknown pooling %d", (int)pool);
    return bert_embed(m, seqs, n, pool, normalize, out, err);
}

mcli_status engine_classify(const mcli_model *m, const mcli_seq *seqs, size_t n, float *logits, float *probs,
                            mcli_err *err)
{
    if (!m->bert)
        return not_encoder(m, "classification", err);
    return bert_classify(m, seqs, n, logits, probs, err);
}

mcli_status engine_mlm_logits(const mcli_model *m, const mcli_seq *seq, const size_t *positions, size_t n_pos,
                              float *logits, mcli_err *err)
{
    if (!m->bert)
        return not_encoder(m, "fill-mask", err);
    return bert_mlm_logits(m, seq, positions, n_pos, logits, err);
}

/* Inserts (id, p) into the best-first list top[0..*n) of capacity k. */
static void topk_push(mcli_fill_pred *top, int *n, int k, int32_t id, float p)
{
    if (*n == k && !(p > top[k - 1].score))
        return; /* equal scores: the earlier (lower) id stays ahead */
    int i = *n < k ? (*n)++ : k - 1;
    while (i > 0 && p > top[i - 1].score) {
        top[i] = top[i - 1];
        i--;
    }
    top[i].token_id = id;
    top[i].score = p;
}

mcli_status engine_fill_mask(const mcli_model *m, const mcli_seq *seq, int top_k, mcli_fill_pred **preds,
                             size_t *n_masks, mcli_err *err)
{
    mcli_status s;
    size_t *pos = NULL;
    float *logits = NULL;
    mcli_fill_pred *out = NULL;
    *preds = NULL;
    *n_masks = 0;
    if (!m->bert)
        return not_encoder(m, "fill-mask", err);
    if (!(m->info.tasks & MCLI_TASK_FILL_MASK))
        return engine_mlm_logits(m, seq, NULL, 0, NULL, err); /* the "no masked-LM head" message */
    if (!seq || !seq->ids || seq->len == 0)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "fill-mask needs a tokenized input");
    if (top_k < 1)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "top_k must be at least 1 (got %d)", top_k);
    const int V = m->config.vocab_size;
    if (top_k > V)
        top_k = V;
    int32_t mask_id = tokenizer_special(m->tokenizer)->mask;
    size_t n = 0;
    for (size_t i = 0; i < seq->len; i++)
        n += seq->ids[i] == mask_id;
    if (mask_id < 0 || n == 0)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "the input has no mask token %s; put one where a word should be predicted",
                         mask_id >= 0 && tokenizer_id_to_token(m->tokenizer, mask_id) ? tokenizer_id_to_token(m->tokenizer, mask_id)
                                                                                       : "[MASK]");
    pos = malloc(n * sizeof *pos);
    logits = malloc(n * (size_t)V * sizeof *logits);
    out = malloc(n * (size_t)top_k * sizeof *out);
    if (!pos || !logits || !out) {
        s = mcli_fail(err, MCLI_ERR_NOMEM, "out of memory for %zu masks", n);
        goto fail;
    }
    for (size_t i = 0, j = 0; i < seq->len; i++)
        if (seq->ids[i] == mask_id)
            pos[j++] = i;
    if ((s = engine_mlm_logits(m, seq, pos, n, logits, err)))
        goto fail;
    kern_softmax_rows(logits, (size_t)V, (int)n, V);
    for (size_t i = 0; i < n; i++) {
        int cnt = 0;
        const float *p = logits + i * (size_t)V;
        for (int v = 0; v < V; v++)
            topk_push(out + i * (size_t)top_k, &cnt, top_k, v, p[v]);
    }
    free(pos);
    free(logits);
    *preds = out;
    *n_masks = n;
    return MCLI_OK;
fail:
    free(pos);
    free(logits);
    free(out);
    return s;
}
