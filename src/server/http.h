/* http.h - the lightweight HTTP server: libmicrohttpd (thread pool, epoll) in front of the
 * scheduler, serving loaded models through the original, Ollama, OpenAI and TEI routes.
 *
 * Life of a server:  server_new -> server_add_model* -> server_start -> (serving) ->
 *                    server_shutdown(grace) -> server_free
 * server_shutdown stops accepting connections at once, lets in-flight requests finish for up to
 * the grace period, then cancels what is left (generations stop at their next token).
 *
 * Ownership: the server owns its models (engine_free on server_free), schedulers and daemon.
 * Thread-safety: server_new/add_model/start/shutdown/free are called from one controlling
 * thread; everything else happens on libmicrohttpd's threads and the schedulers' workers.
 * Non-goals: TLS (put a reverse proxy in front), HTTP/2, loading models at run time.
 */
#ifndef MCLI_SERVER_HTTP_H
#define MCLI_SERVER_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/engine.h"
#include "sched/scheduler.h"
#include "util/status.h"

typedef struct server server;

typedef struct {
    const char *host;           /* bind address; default "127.0.0.1" */
    int port;                   /* 0 = any free port (see server_port) */
    const char *api_key;        /* NULL/"" = no auth; else Bearer token on every route but /health */
    const char *cors_origin;    /* Access-Control-Allow-Origin; default "*" */
    int threads;                /* HTTP threads (epoll loops); default 4 */
    size_t max_body;            /* request body limit in bytes (413 above); default 4 MiB */
    unsigned conn_timeout_s;    /* idle/slow client timeout; default 30 */
    bool access_log;            /* one line per request on stderr; default on (see server_opts_default) */
    const char *models_dir;     /* for /api/pull, /api/delete, /api/tags of downloaded models; may be NULL */
    sched_opts sched;           /* queue sizes, generation workers, batch token budget */
    mcli_engine_opts engine;
} server_opts;

void server_opts_default(server_opts *o);

mcli_status server_new(const server_opts *opts, server **out, mcli_err *err) MCLI_MUST_USE;
/* Loads the model in dir and serves it under name (NULL = derived from dir). */
mcli_status server_add_model(server *s, const char *name, const char *dir, mcli_err *err) MCLI_MUST_USE;
mcli_status server_start(server *s, mcli_err *err) MCLI_MUST_USE;
int server_port(const server *s);
/* Stops accepting, waits up to grace_s for in-flight requests, cancels the rest. */
void server_shutdown(server *s, double grace_s);
void server_free(server *s);

#endif
