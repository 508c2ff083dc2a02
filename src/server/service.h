/* service.h - the model service (default port 8000): a registry of models in SQLite, models
 * loaded on demand into an LRU cache, generate/classify with every inference recorded, and the
 * /lightweight/... integration (catalog, downloads with progress, an in-process lightweight server).
 *
 * Two halves:
 *   service_routes.c  service_handle(): one request (method, path, query, body) -> status + JSON
 *                     (or an NDJSON progress stream). Transport-free, so it is testable and could
 *                     be mounted on another HTTP layer unchanged.
 *   service_http.c    a thin libmicrohttpd front (thread per connection, body cap, access log)
 *                     that calls service_handle. It exists because the lightweight server's
 *                     route tables (server_internal.h) are static and its models fixed at start;
 *                     see docs/SERVICE.md for what mounting on http.c would need.
 *
 * Routes (docs/SERVICE.md has the bodies and replies):
 *   GET / | GET /health | GET /models | GET /models/{id} | GET /models/summary | POST /models
 *   POST /models/from-url
 *   PUT /models/{id} | DELETE /models/{id} | DELETE /models/{id}/remove
 *   POST /models/{id}/generate | POST /models/{id}/classify
 *   GET /lightweight/models | POST /lightweight/models/{key}/download | POST /lightweight/start
 *   GET /lightweight/status
 *
 * Ownership: service_new copies its options; the service owns its registry handle, model cache,
 * catalog, download jobs and lightweight server. Thread-safety: service_handle may run on any
 * number of threads at once; service_listen/service_free are called by one controlling thread.
 */
#ifndef MCLI_SERVER_SERVICE_H
#define MCLI_SERVER_SERVICE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/status.h"

#define SERVICE_DEFAULT_PORT 8000
#define SERVICE_MAX_BODY (1u << 20)

typedef struct {
    const char *host;          /* default "127.0.0.1" */
    int port;                  /* default 8000; 0 = any free port */
    const char *models_dir;    /* required: downloads go to <models_dir>/lightweight */
    const char *db_path;       /* default <models_dir>/registry.db */
    size_t max_models;         /* cache budget; 0 = 2 */
    size_t max_memory_mb;      /* cache budget; 0 = none */
    int lightweight_port;      /* /lightweight/start default; 0 = port + 1 */
    int threads;               /* engine threads per model call; 0 = 1 (requests run in parallel on
                                  their own connection threads instead) */
    const char *api_key;       /* NULL/"" = none; else "Authorization: Bearer KEY" on every route but
                                  GET /health (also required by the lightweight server it starts) */
    bool access_log;
} service_opts;

typedef struct service service;

mcli_status service_new(const service_opts *opts, service **out, mcli_err *err) MCLI_MUST_USE;
/* Stops the HTTP front and the lightweight server, frees everything. NULL is a no-op. */
void service_free(service *s);

/* A streamed reply: next() writes up to cap bytes into buf and returns how many, 0 at the end;
 * it may block until data is there. free() releases ctx. */
typedef struct {
    size_t (*next)(void *ctx, char *buf, size_t cap);
    void (*free)(void *ctx);
    void *ctx;
    const char *content_type;
} svc_stream;

typedef struct {
    int status;       /* HTTP status */
    json_t *body;     /* owned by the reply (NULL when stream.next is set) */
    svc_stream stream;
} svc_reply;

/* Handles one request. query_stream: the ?stream=1 flag. Always fills out. */
void service_handle(service *s, const char *method, const char *path, bool query_stream, const char *body,
                    size_t body_len, svc_reply *out);

/* Starts listening (service_http.c); the port actually bound is service_port(). */
mcli_status service_listen(service *s, mcli_err *err) MCLI_MUST_USE;
int service_port(service *s);

/* Splits a model URL for a download: "https://host[:port]/org/name[/tree/REV]" (endpoint becomes
 * "https://host[:port]"), "hf://org/name[@REV]" or "org/name[@REV]" (endpoint ""). */
mcli_status service_parse_model_url(const char *url, char *endpoint, size_t ecap, char *repo, size_t rcap, char *rev,
                                    size_t vcap, mcli_err *err) MCLI_MUST_USE;

/* Resident memory of this process in MB (VmRSS from /proc/self/status); -1 if unknown. */
double service_rss_mb(void);

#endif
