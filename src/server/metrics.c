/* metrics.c - Prometheus counters; see metrics.h. */
#include "server/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *const route_names[MET_ROUTE_COUNT] = {
    [MET_ROOT] = "/", [MET_HEALTH] = "/health", [MET_MODELS] = "/models",
    [MET_MODEL_GENERATE] = "/models/{name}/generate", [MET_MODEL_CLASSIFY] = "/models/{name}/classify",
    [MET_MODEL_EMBED] = "/models/{name}/embed", [MET_MODEL_FILL_MASK] = "/models/{name}/fill-mask",
    [MET_MODEL_TOKENIZE] = "/models/{name}/tokenize",
    [MET_API_GENERATE] = "/api/generate", [MET_API_CHAT] = "/api/chat", [MET_API_EMBED] = "/api/embed",
    [MET_API_EMBEDDINGS] = "/api/embeddings", [MET_API_TAGS] = "/api/tags", [MET_API_SHOW] = "/api/show",
    [MET_API_PS] = "/api/ps", [MET_API_PULL] = "/api/pull", [MET_API_DELETE] = "/api/delete",
    [MET_API_VERSION] = "/api/version",
    [MET_V1_MODELS] = "/v1/models", [MET_V1_COMPLETIONS] = "/v1/completions",
    [MET_V1_CHAT] = "/v1/chat/completions", [MET_V1_EMBEDDINGS] = "/v1/embeddings",
    [MET_TEI_EMBED] = "/embed", [MET_TEI_PREDICT] = "/predict", [MET_TEI_TOKENIZE] = "/tokenize",
    [MET_TEI_DECODE] = "/decode", [MET_TEI_INFO] = "/info",
    [MET_METRICS] = "/metrics", [MET_OPTIONS] = "OPTIONS *", [MET_ROUTE_OTHER] = "other",
};

/* Statuses counted individually; anything else lands in the last slot ("other"). */
static const int status_codes[] = {200, 204, 400, 401, 404, 405, 413, 499, 500, 501, 502, 503, 0};
#define N_STATUS (sizeof status_codes / sizeof status_codes[0])

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
#define N_BUCKETS (sizeof buckets / sizeof buckets[0])

static _Atomic uint64_t req_count[MET_ROUTE_COUNT][N_STATUS];
static _Atomic uint64_t lat_bucket[MET_ROUTE_COUNT][N_BUCKETS + 1];  /* last = +Inf */
static _Atomic uint64_t lat_sum_us[MET_ROUTE_COUNT];
static _Atomic uint64_t tokens_in, tokens_out;

const char *metrics_route_name(met_route r)
{
    return (unsigned)r < MET_ROUTE_COUNT ? route_names[r] : "other";
}

void metrics_observe(met_route r, int http_status, double seconds)
{
    if ((unsigned)r >= MET_ROUTE_COUNT)
        r = MET_ROUTE_OTHER;
    size_t si = N_STATUS - 1;
    for (size_t i = 0; i + 1 < N_STATUS; i++)
        if (status_codes[i] == http_status) {
            si = i;
            break;
        }
    atomic_fetch_add_explicit(&req_count[r][si], 1, memory_order_relaxed);
    size_t b = 0;
    while (b < N_BUCKETS && seconds > buckets[b])
        b++;
    atomic_fetch_add_explicit(&lat_bucket[r][b], 1, memory_order_relaxed);
    if (seconds < 0)
        seconds = 0;
    atomic_fetch_add_explicit(&lat_sum_us[r], (uint64_t)(seconds * 1e6), memory_order_relaxed);
}

void metrics_tokens(uint64_t in, uint64_t out)
{
    atomic_fetch_add_explicit(&tokens_in, in, memory_order_relaxed);
    atomic_fetch_add_explicit(&tokens_out, out, memory_order_relaxed);
}

typedef struct {
    char *buf;
    size_t cap, len;
    int full;
} out_buf;

static void put(out_buf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out_buf *o, const char *fmt, ...)
{
    if (o->full)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len) {
        o->buf[o->len] = '\0';  /* drop the partial line */
        o->full = 1;
        return;
    }
    o->len += (size_t)n;
}

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    long pages = -1, rss = -1;
    int ok = fscanf(f, "%ld %ld", &pages, &rss) == 2;  /* kernel-written numbers, not client input */
    fclose(f);
    return ok ? rss * sysconf(_SC_PAGESIZE) : -1;
}

/* Model names are ours (from the command line), but escape '"' and '\' anyway. */
static void put_label(out_buf *o, const char *s)
{
    for (; *s && !o->full; s++) {
        if (*s == '"' || *s == '\\')
            put(o, "\\%c", *s);
        else if (*s == '\n')
            put(o, "\\n");
        else
            put(o, "%c", *s);
    }
}

size_t metrics_render(char *buf, size_t cap, const metrics_model_gauge *models, size_t n_models, size_t in_flight)
{
    if (cap == 0)
        return 0;
    out_buf o = {.buf = buf, .cap = cap, .len = 0, .full = 0};
    buf[0] = '\0';
    put(&o, "# HELP mcli_http_requests_total HTTP requests by route and status.\n"
            "# TYPE mcli_http_requests_total counter\n");
    for (int r = 0; r < MET_ROUTE_COUNT; r++)
        for (size_t s = 0; s < N_STATUS; s++) {
            uint64_t v = atomic_load_explicit(&req_count[r][s], memory_order_relaxed);
            if (!v)
                continue;
            if (status_codes[s])
                put(&o, "mcli_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", route_names[r], status_codes[s],
                    (unsigned long long)v);
            else
                put(&o, "mcli_http_requests_total{route=\"%s\",status=\"other\"} %llu\n", route_names[r],
                    (unsigned long long)v);
        }
    put(&o, "# HELP mcli_http_request_duration_seconds Request latency from first byte to completion.\n"
            "# TYPE mcli_http_request_duration_seconds histogram\n");
    for (int r = 0; r < MET_ROUTE_COUNT; r++) {
        uint64_t cum = 0, counts[N_BUCKETS + 1];
        for (size_t b = 0; b <= N_BUCKETS; b++)
            counts[b] = atomic_load_explicit(&lat_bucket[r][b], memory_order_relaxed), cum += counts[b];
        if (!cum)
            continue;
        uint64_t run = 0;
        for (size_t b = 0; b < N_BUCKETS; b++) {
            run += counts[b];
            put(&o, "mcli_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", route_names[r],
                buckets[b], (unsigned long long)run);
        }
        put(&o, "mcli_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", route_names[r],
            (unsigned long long)cum);
        put(&o, "mcli_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", route_names[r],
            (double)atomic_load_explicit(&lat_sum_us[r], memory_order_relaxed) / 1e6);
        put(&o, "mcli_http_request_duration_seconds_count{route=\"%s\"} %llu\n", route_names[r],
            (unsigned long long)cum);
    }
    put(&o, "# HELP mcli_tokens_in_total Tokens read from prompts and inputs.\n# TYPE mcli_tokens_in_total counter\n"
            "mcli_tokens_in_total %llu\n",
        (unsigned long long)atomic_load_explicit(&tokens_in, memory_order_relaxed));
    put(&o, "# HELP mcli_tokens_out_total Tokens generated.\n# TYPE mcli_tokens_out_total counter\n"
            "mcli_tokens_out_total %llu\n",
        (unsigned long long)atomic_load_explicit(&tokens_out, memory_order_relaxed));
    put(&o, "# HELP mcli_queue_depth Requests waiting in a model's queue.\n# TYPE mcli_queue_depth gauge\n");
    for (size_t i = 0; i < n_models; i++) {
        put(&o, "mcli_queue_depth{model=\"");
        put_label(&o, models[i].name);
        put(&o, "\"} %zu\n", models[i].queued);
    }
    put(&o, "# HELP mcli_running_jobs Requests a model's workers are running.\n# TYPE mcli_running_jobs gauge\n");
    for (size_t i = 0; i < n_models; i++) {
        put(&o, "mcli_running_jobs{model=\"");
        put_label(&o, models[i].name);
        put(&o, "\"} %zu\n", models[i].running);
    }
    put(&o, "# HELP mcli_models_loaded Models loaded and served.\n# TYPE mcli_models_loaded gauge\n"
            "mcli_models_loaded %zu\n",
        n_models);
    put(&o, "# HELP mcli_http_in_flight Requests being handled.\n# TYPE mcli_http_in_flight gauge\n"
            "mcli_http_in_flight %zu\n",
        in_flight);
    put(&o, "# HELP mcli_resident_memory_bytes Resident set size of the process.\n"
            "# TYPE mcli_resident_memory_bytes gauge\nmcli_resident_memory_bytes %ld\n",
        rss_bytes());
    return o.full ? cap : o.len;
}
