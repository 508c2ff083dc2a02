/* metrics.h - process-wide Prometheus counters for the HTTP server.
 *
 * Requests are counted by route label (the route pattern, never the raw path, so the number
 * of series stays fixed) and HTTP status; latencies go into one fixed-bucket histogram per
 * route. Everything is lock-free (relaxed atomics): any thread may record at any time.
 * metrics_render() writes the text exposition format into a caller-owned buffer.
 * Non-goals: labels chosen at run time, summaries/quantiles (compute them from the buckets).
 */
#ifndef MCLI_SERVER_METRICS_H
#define MCLI_SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Route labels; MET_ROUTE_OTHER for unknown paths. Keep in sync with metrics.c's names. */
typedef enum {
    MET_ROOT, MET_HEALTH, MET_MODELS, MET_MODEL_GENERATE, MET_MODEL_CLASSIFY, MET_MODEL_EMBED,
    MET_MODEL_FILL_MASK, MET_MODEL_TOKENIZE,
    MET_API_GENERATE, MET_API_CHAT, MET_API_EMBED, MET_API_EMBEDDINGS, MET_API_TAGS, MET_API_SHOW, MET_API_PS,
    MET_API_PULL, MET_API_DELETE, MET_API_VERSION,
    MET_V1_MODELS, MET_V1_COMPLETIONS, MET_V1_CHAT, MET_V1_EMBEDDINGS,
    MET_TEI_EMBED, MET_TEI_PREDICT, MET_TEI_TOKENIZE, MET_TEI_DECODE, MET_TEI_INFO,
    MET_METRICS, MET_OPTIONS, MET_ROUTE_OTHER,
    MET_ROUTE_COUNT
} met_route;

const char *metrics_route_name(met_route r);

/* One finished request: its route, HTTP status and wall time in seconds. */
void metrics_observe(met_route r, int http_status, double seconds);
/* Tokens read (prompts, inputs) and produced (generated). */
void metrics_tokens(uint64_t in, uint64_t out);

typedef struct {
    const char *name;
    size_t queued, running;
} metrics_model_gauge;

/* Writes the exposition text into buf (cap bytes, NUL-terminated); returns the length, or
 * cap if it did not fit (the text is then cut at a line boundary). */
size_t metrics_render(char *buf, size_t cap, const metrics_model_gauge *models, size_t n_models,
                      size_t in_flight);

#endif
