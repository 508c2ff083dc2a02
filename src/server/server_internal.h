/* server_internal.h - what http.c shares with the route files (routes_*.c) and json_reply.c.
 * Not for use outside src/server/.
 *
 * A request (http_req) is created on the first libmicrohttpd callback and reference counted:
 * one reference for the connection (dropped when libmicrohttpd reports completion) and one for
 * each job in flight (dropped after the job's on_done). Its state machine:
 *
 *   READ --(body complete)--> dispatch: the route either replies at once       -> DONE
 *                                       or submits a job and suspends          -> WAIT
 *   WAIT --(job done, resumed)--> r->finish() builds the reply                 -> DONE
 *   WAIT --(stream started, resumed)--> queue the content-reader response      -> STREAM
 *   STREAM: reader copies buffered chunks; empty buffer -> suspend until the worker writes
 *
 * Routes run on HTTP threads: they parse, validate, submit and reply - never compute.
 */
#ifndef MCLI_SERVER_INTERNAL_H
#define MCLI_SERVER_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "engine/engine.h"
#include "sched/scheduler.h"
#include "server/http.h"
#include "server/metrics.h"
#include "util/status.h"

typedef struct {
    char *path;                 /* relative to the model dir */
    uint64_t size;
    char sha256[65];
} srv_file;

typedef struct {
    char *name;
    char *dir;
    mcli_model *model;
    const mcli_model_info *info;
    sched *sched;
    srv_file *files;            /* weight files with sizes and digests */
    size_t n_files;
    uint64_t total_size;
    char digest[72];            /* "sha256:<hex>" of the (first) weight file */
    double load_ms;
    time_t loaded_at;
    bool decoder;
} srv_model;

struct server {
    server_opts opts;
    char host[64], api_key[256], cors_origin[256], models_dir[1024];
    struct MHD_Daemon *daemon;
    srv_model *models;
    size_t n_models;
    int port;
    atomic_long in_flight;
    atomic_bool stopping;
    atomic_bool cancel_all;     /* shutdown grace over: long-running detached work stops */
    atomic_int detached;        /* detached threads (pulls) still running */
    time_t started;
};

typedef enum { API_ORIGINAL, API_OLLAMA, API_OPENAI, API_TEI } api_style;
typedef enum { PH_READ, PH_WAIT, PH_STREAM, PH_DONE } req_phase;

typedef struct http_req http_req;
typedef void (*req_finish_fn)(http_req *r, sched_job *job);
/* Streaming formatters, called on the worker thread. */
typedef void (*req_token_fn)(http_req *r, sched_job *job, int32_t id, const char *piece, size_t len);
typedef void (*req_stream_done_fn)(http_req *r, sched_job *job);

struct http_req {
    server *srv;
    struct MHD_Connection *conn;
    const char *method;         /* owned by libmicrohttpd, valid for the request */
    const char *url;
    char *path_arg;             /* {name} of /models/{name}/ACTION (owned) */
    met_route route;
    api_style api;
    double t0;
    int fd;
    atomic_int refs;

    char *body;                 /* capped at srv->opts.max_body */
    size_t body_len, body_cap;
    bool too_large;

    pthread_mutex_t lock;       /* guards everything below */
    req_phase phase;
    bool suspended, conn_alive, job_done, stream_started, stream_done;
    sched_job *job;
    srv_model *model;
    req_finish_fn finish;
    req_token_fn on_token;
    req_stream_done_fn on_stream_done;
    const char *stream_ctype;
    char *sbuf;                 /* stream buffer [s_off, s_len) pending */
    size_t s_len, s_off, s_cap;
    double last_alive_check;

    void *ctx;                  /* route state, freed with ctx_free */
    void (*ctx_free)(void *);

    bool input_listed;          /* the client sent a list of inputs (reply with a list) */
    int status;
    size_t bytes;
};

/* ---- replies (HTTP thread, from a route or a finish function; exactly one per request) ---- */
/* Takes body (malloc'd, len bytes) and sends it. */
void req_reply_raw(http_req *r, int status, const char *ctype, char *body, size_t len);
/* Takes j (decref'd) and sends it compact. */
void req_reply_json(http_req *r, int status, json_t *j);
/* Error in the route's API style: status from mcli_status_http(code) unless http_status > 0. */
void req_error(http_req *r, mcli_status code, int http_status, const char *fmt, ...) MCLI_PRINTF(4, 5);
void req_error_err(http_req *r, const mcli_err *err);
/* 404 naming name and listing the loaded models. */
void req_unknown_model(http_req *r, const char *name);

/* ---- jobs ---- */
/* Submits job to model's scheduler and suspends; finish(r, job) runs on an HTTP thread when the
 * job is done. On failure (queue full) replies with the error itself. Takes over job's caller
 * reference. */
void req_submit(http_req *r, srv_model *m, sched_job *job, req_finish_fn finish);
/* Like req_submit for a GENERATE job that streams: on_token formats each token, on_done the
 * last chunk; an error before the first token is answered by finish(). */
void req_submit_stream(http_req *r, srv_model *m, sched_job *job, const char *ctype, req_token_fn on_token,
                       req_stream_done_fn on_done, req_finish_fn finish);
/* Runs job->call(job, NULL, r, err) on a new detached thread (work that belongs to no model,
 * such as a pull). stream: job's on_start begins a stream of ctype whose last chunk on_done
 * writes; finish answers if the call fails before starting (or when not streaming). */
void req_run_detached(http_req *r, sched_job *job, bool stream, const char *ctype, req_stream_done_fn on_done,
                      req_finish_fn finish);
/* For detached work: true once the client left or shutdown cancelled everything. */
bool req_cancelled(http_req *r);
/* Worker side of a stream: append bytes (never blocks). -1 if the client left or fell 1 MiB behind. */
int req_stream_write(http_req *r, const char *data, size_t len);
int req_stream_printf(http_req *r, const char *fmt, ...) MCLI_PRINTF(2, 3);
/* Dumps j compactly followed by suffix ("\n" for NDJSON), prefix before it ("data: " for SSE). Takes j. */
int req_stream_json(http_req *r, const char *prefix, json_t *j, const char *suffix);

/* ---- request bodies (json_reply.c) ---- */
/* Parses the body as a JSON object; on failure replies 400 (with line/column/position) and returns NULL. */
json_t *req_body_json(http_req *r);
/* Field readers: absent -> keep *v (unless required -> MCLI_ERR_INVALID_ARG naming the field);
 * wrong type or out of range -> MCLI_ERR_INVALID_ARG naming the field. where is "" or "options.". */
mcli_status jf_string(json_t *o, const char *where, const char *key, bool required, const char **v, size_t *len,
                      mcli_err *err) MCLI_MUST_USE;
mcli_status jf_int(json_t *o, const char *where, const char *key, long long lo, long long hi, long long *v,
                   mcli_err *err) MCLI_MUST_USE;
mcli_status jf_number(json_t *o, const char *where, const char *key, double lo, double hi, double *v,
                      mcli_err *err) MCLI_MUST_USE;
mcli_status jf_bool(json_t *o, const char *where, const char *key, bool *v, mcli_err *err) MCLI_MUST_USE;
/* A string or a non-empty list of strings into job->texts; *listed = it was a list. */
mcli_status jf_texts(json_t *o, const char *key, bool required, sched_job *job, bool *listed,
                     mcli_err *err) MCLI_MUST_USE;
/* "stop": a string or a list of strings. */
mcli_status jf_stop(json_t *o, const char *where, const char *key, sched_job *job, mcli_err *err) MCLI_MUST_USE;
json_t *json_floats(const float *v, size_t n);

/* ---- models ---- */
/* Exact name, or name with a ":latest" tag, or NULL. */
srv_model *server_find_model(server *s, const char *name);
/* The first model that can do task (MCLI_TASK_*), or NULL. */
srv_model *server_first_model(server *s, unsigned task);
const char *model_kind_name(const srv_model *m);
/* ISO-8601 UTC time into buf. */
void iso_time(time_t t, char *buf, size_t cap);
double now_sec(void);

/* ---- shared generation plumbing (routes_gen.c) ---- */
/* Reads the sampling fields common to every API from o (names differ per API, see the
 * gen_names tables in routes_*.c) into job->params. A temperature of 0 means greedy. */
typedef struct {
    const char *max_new;        /* "max_new_tokens", "num_predict", "max_tokens" */
    const char *max_new_alias;  /* second accepted name, or NULL */
    const char *repeat_penalty; /* "repetition_penalty", "repeat_penalty", or NULL */
    double def_temperature, def_top_p;
    long long def_top_k, def_max_new;
    double def_repeat_penalty;
} gen_names;
mcli_status gen_read_params(json_t *o, const char *where, const gen_names *names, sched_job *job,
                            mcli_err *err) MCLI_MUST_USE;
/* Chat messages [{"role","content"}] into job->texts as turns (system messages are skipped:
 * DialoGPT has no place for them); sets job->chat. */
mcli_status gen_read_messages(json_t *o, sched_job *job, mcli_err *err) MCLI_MUST_USE;
/* The generated text as a JSON string (embedded NULs kept). */
json_t *gen_text_json(const sched_job *job);
/* A fresh random seed for requests that do not give one. */
uint64_t gen_random_seed(void);

/* Per-request state of a generation reply. */
typedef struct {
    char id[48];
    time_t created;
    char model[256];
    bool sent_role;             /* OpenAI chat stream: the first delta carries the role */
    bool include_usage;
    int64_t t_start_ns;
} gen_ctx;
gen_ctx *gen_ctx_new(http_req *r, const srv_model *m, const char *id_prefix);

/* ---- route handlers ---- */
typedef void (*route_fn)(http_req *r);
typedef struct {
    const char *method;
    const char *path;           /* exact path; NULL for the /models/{name}/ACTION family (see action) */
    const char *action;
    route_fn fn;
    met_route metric;
    api_style api;
} route_entry;

/* Each routes_*.c exports its table, terminated by {0}. */
extern const route_entry routes_original[];
extern const route_entry routes_ollama[];
extern const route_entry routes_openai[];
extern const route_entry routes_tei[];

/* ---- shared encoder plumbing (routes_original.c) ---- */
/* The model named by the path ({name} of /models/{name}/...) or by name, checked for task; on
 * failure replies (404 listing the loaded models, or 400 naming what the model can do). */
srv_model *route_model(http_req *r, const char *name, unsigned task);
/* Per text: {"label","score","scores":[{"label","score"}...] (best first),"logits"}. */
json_t *classify_result_json(const srv_model *m, const sched_job *job, size_t i);

/* State of a CALL job (fill-mask, tokenize, decode): the parsed body in, a JSON result out. */
typedef enum { CALL_FILL_MASK, CALL_TOKENIZE, CALL_TEI_TOKENIZE, CALL_DECODE } call_kind;
typedef struct {
    call_kind kind;
    json_t *body;               /* owned reference; read on the worker */
    json_t *result;             /* owned reference; built on the worker */
    long long top_k;
    bool add_special, skip_special, truncate;
} call_ctx;
/* Submits a CALL job for r on m; the finish replies 200 with ctx->result. */
void call_submit(http_req *r, srv_model *m, call_kind kind, json_t *body, long long top_k, bool add_special,
                 bool skip_special, bool truncate);

#endif
