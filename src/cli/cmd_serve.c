/* cmd_serve.c - `mcli serve`: load model directories and serve them over HTTP until SIGINT or
 * SIGTERM; and cli_serve_models(), the same server for `lightweight --start-server` and
 * `lightweight-run`. Signals are blocked in every thread and taken with sigwait() on the main
 * thread, so shutdown runs in ordinary code (no async-signal-safety games). */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "server/http.h"
#include "util/log.h"

const char usage_serve[] =
    "Usage: mcli serve --model [NAME=]DIR [--model [NAME=]DIR...] [options]\n"
    "\n"
    "Serves local model directories over HTTP: the original routes (/models/{name}/...),\n"
    "Ollama (/api/...), OpenAI (/v1/...) and TEI-style (/embed, /predict, ...) APIs, /metrics.\n"
    "See docs/API.md.\n"
    "\n"
    "Options:\n"
    "  --model [NAME=]DIR     a model directory; NAME defaults to the manifest's repo or DIR's name\n"
    "  --port N               TCP port (default 8080; 0 = any free port)\n"
    "  --host H               bind address (default 127.0.0.1; 0.0.0.0 for every interface)\n"
    "  --api-key K            require 'Authorization: Bearer K' on every route but /health\n"
    "                         (default: $MCLI_API_KEY)\n"
    "  --cors-origin O        Access-Control-Allow-Origin (default *)\n"
    "  --threads N            HTTP threads, each an epoll loop (default 4)\n"
    "  --engine-threads N     compute threads per engine call (default: 1 for encoders, whose\n"
    "                         requests are batched, all cores for decoders)\n"
    "  --max-body BYTES       request body limit (default 4194304)\n"
    "  --timeout S            idle / slow client timeout in seconds (default 30)\n"
    "  --queue N              requests waiting per model before 503 (default 256)\n"
    "  --batch-tokens N       padded tokens per encoder batch (default 8192)\n"
    "  --gen-batch N          generations decoded together per model (default 16)\n"
    "  --grace S              seconds in-flight requests get at shutdown (default 10)\n"
    "  --models-dir D         models directory for /api/pull, /api/tags, /api/delete\n"
    "  --no-access-log        do not log one line per request\n";

typedef struct {
    server_opts so;
    double grace_s;
} serve_cfg;

/* Parses a whole decimal argument in [lo, hi]. */
static bool parse_long(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s)
        return false;
    errno = 0;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Loads the models and serves until a signal. names[i] may be NULL. Returns an exit code. */
static int serve_run(serve_cfg *cfg, const char *const *dirs, const char *const *names, size_t n)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread exists: every thread inherits it */
    signal(SIGPIPE, SIG_IGN);

    mcli_err err;
    mcli_err_clear(&err);
    server *srv = NULL;
    int rc = 1;
    if (server_new(&cfg->so, &srv, &err) != MCLI_OK)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (server_add_model(srv, names[i], dirs[i], &err) != MCLI_OK)
            goto fail;
    if (server_start(srv, &err) != MCLI_OK)
        goto fail;
    LOG_INFO("serving %zu model(s) on http://%s:%d (api key %s, CORS origin %s)", n, cfg->so.host, server_port(srv),
             cfg->so.api_key && *cfg->so.api_key ? "required" : "off", cfg->so.cors_origin);
    printf("mcli: listening on http://%s:%d\n", cfg->so.host, server_port(srv));
    fflush(stdout);

    int sig = 0;
    while (sigwait(&set, &sig) != 0)
        ;
    LOG_INFO("got %s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    server_shutdown(srv, cfg->grace_s);
    server_free(srv);
    return 0;
fail:
    fprintf(stderr, "mcli serve: %s\n", err.msg);
    server_free(srv);
    return rc == 1 ? mcli_status_exit(err.code) : rc;
}

static void cfg_default(serve_cfg *cfg)
{
    server_opts_default(&cfg->so);
    cfg->grace_s = 10;
    const char *key = getenv("MCLI_API_KEY");
    if (key && *key)
        cfg->so.api_key = key;
}

int cli_serve_models(const cli_serve_opts *opts)
{
    serve_cfg cfg;
    cfg_default(&cfg);
    if (opts->host && *opts->host)
        cfg.so.host = opts->host;
    if (opts->port > 0)
        cfg.so.port = opts->port;
    cfg.so.models_dir = opts->models_dir;
    const char *origin = getenv("MCLI_CORS_ORIGIN");
    if (origin && *origin)
        cfg.so.cors_origin = origin;
    const char **names = calloc(opts->n_models ? opts->n_models : 1, sizeof *names);
    if (!names) {
        fprintf(stderr, "mcli: out of memory\n");
        return 1;
    }
    int rc = serve_run(&cfg, opts->model_dirs, names, opts->n_models);
    free(names);
    return rc;
}

#define SERVE_MAX_MODELS 32

int cmd_serve(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(usage_serve, stdout);
        return 0;
    }
    serve_cfg cfg;
    cfg_default(&cfg);
    const char *dirs[SERVE_MAX_MODELS], *names[SERVE_MAX_MODELS];
    char *name_bufs[SERVE_MAX_MODELS];
    size_t n = 0;
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long num = 0;
        if (strcmp(a, "--no-access-log") == 0) {
            cfg.so.access_log = false;
            continue;
        }
        if (!v) {
            rc = cli_usage_error("serve", "%s needs a value", a);
            goto done;
        }
        i++;
        if (strcmp(a, "--model") == 0) {
            if (n == SERVE_MAX_MODELS) {
                rc = cli_usage_error("serve", "at most %d models", SERVE_MAX_MODELS);
                goto done;
            }
            const char *eq = strchr(v, '=');
            names[n] = NULL;
            name_bufs[n] = NULL;
            if (eq && eq != v) {
                name_bufs[n] = strndup(v, (size_t)(eq - v));
                names[n] = name_bufs[n];
                dirs[n] = eq + 1;
            } else {
                dirs[n] = v;
            }
            n++;
        } else if (strcmp(a, "--port") == 0 && parse_long(v, 0, 65535, &num)) {
            cfg.so.port = (int)num;
        } else if (strcmp(a, "--host") == 0) {
            cfg.so.host = v;
        } else if (strcmp(a, "--api-key") == 0) {
            cfg.so.api_key = v;
        } else if (strcmp(a, "--cors-origin") == 0) {
            cfg.so.cors_origin = v;
        } else if (strcmp(a, "--models-dir") == 0) {
            cfg.so.models_dir = v;
        } else if (strcmp(a, "--threads") == 0 && parse_long(v, 1, 64, &num)) {
            cfg.so.threads = (int)num;
        } else if (strcmp(a, "--engine-threads") == 0 && parse_long(v, 0, 256, &num)) {
            cfg.so.engine.n_threads = (int)num;
        } else if (strcmp(a, "--max-body") == 0 && parse_long(v, 1024, 1L << 30, &num)) {
            cfg.so.max_body = (size_t)num;
        } else if (strcmp(a, "--timeout") == 0 && parse_long(v, 1, 3600, &num)) {
            cfg.so.conn_timeout_s = (unsigned)num;
        } else if (strcmp(a, "--queue") == 0 && parse_long(v, 1, 1000000, &num)) {
            cfg.so.sched.queue_cap = (size_t)num;
        } else if (strcmp(a, "--batch-tokens") == 0 && parse_long(v, 1, 1L << 24, &num)) {
            cfg.so.sched.token_budget = (size_t)num;
        } else if (strcmp(a, "--gen-batch") == 0 && parse_long(v, 1, 64, &num)) {
            cfg.so.sched.max_gen_batch = (int)num;
        } else if (strcmp(a, "--grace") == 0 && parse_long(v, 0, 3600, &num)) {
            cfg.grace_s = (double)num;
        } else {
            rc = cli_usage_error("serve", "unknown option or bad value: %s %s", a, v);
            goto done;
        }
    }
    if (n == 0) {
        rc = cli_usage_error("serve", "give at least one --model DIR");
        goto done;
    }
    rc = serve_run(&cfg, dirs, names, n);
done:
    for (size_t k = 0; k < n; k++)
        free(name_bufs[k]);
    return rc;
}
