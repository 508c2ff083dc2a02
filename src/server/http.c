/* http.c - libmicrohttpd glue: daemon, request state machine, limits, CORS, auth, access log,
 * suspend/resume around scheduler jobs, streaming through a bounded buffer, graceful shutdown.
 * The request state machine is drawn in server_internal.h. */
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hub/manifest.h"
#include "server/server_internal.h"
#include "util/log.h"
#include "util/buf.h"

#define STREAM_BUF_MAX (1024 * 1024) /* bytes a stream may fall behind before it is dropped */
#define ALIVE_CHECK_MS 20.0

double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void iso_time(time_t t, char *buf, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void server_opts_default(server_opts *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->cors_origin = "*";
    o->threads = 4; /* epoll loops; a preempted loop stalls only its quarter of the connections */
    o->max_body = 4u << 20;
    o->conn_timeout_s = 30;
    o->access_log = true;
    o->sched.queue_cap = 256;
    o->sched.max_gen_batch = 16;
    o->sched.token_budget = 8192;
}

/* ---------------------------------------------------------------- models */

srv_model *server_find_model(server *s, const char *name)
{
    if (!name)
        return NULL;
    size_t n = strlen(name);
    for (size_t i = 0; i < s->n_models; i++) {
        const char *mn = s->models[i].name;
        size_t ml = strlen(mn);
        if (strcmp(mn, name) == 0)
            return &s->models[i];
        /* "org/name:latest" names the same model as "org/name" */
        if (n > ml && name[ml] == ':' && strncmp(mn, name, ml) == 0 && strcmp(name + ml, ":latest") == 0)
            return &s->models[i];
    }
    return NULL;
}

srv_model *server_first_model(server *s, unsigned task)
{
    for (size_t i = 0; i < s->n_models; i++)
        if (s->models[i].info->tasks & task)
            return &s->models[i];
    return NULL;
}

const char *model_kind_name(const srv_model *m)
{
    if (m->decoder)
        return "text-generation";
    if (m->info->tasks & MCLI_TASK_CLASSIFY)
        return "text-classification";
    if (m->info->tasks & MCLI_TASK_FILL_MASK)
        return "fill-mask";
    return "feature-extraction";
}

static mcli_status sha256_file(const char *path, char hex[65], uint64_t *size, mcli_err *err)
{
    mcli_status st = MCLI_OK;
    unsigned char *buf = NULL;
    EVP_MD_CTX *ctx = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return mcli_fail(err, MCLI_ERR_IO, "%s: cannot open to compute its digest: %s", path, strerror(errno));
    buf = malloc(1u << 20);
    ctx = EVP_MD_CTX_new();
    if (!buf || !ctx) {
        st = mcli_fail(err, MCLI_ERR_NOMEM, "out of memory hashing %s", path);
        goto done;
    }
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        st = mcli_fail(err, MCLI_ERR_INTERNAL, "sha256 unavailable in libcrypto");
        goto done;
    }
    uint64_t total = 0;
    size_t got;
    while ((got = fread(buf, 1, 1u << 20, f)) > 0) {
        EVP_DigestUpdate(ctx, buf, got);
        total += got;
    }
    if (ferror(f)) {
        st = mcli_fail(err, MCLI_ERR_IO, "%s: read failed while hashing", path);
        goto done;
    }
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    *size = total;
done:
    EVP_MD_CTX_free(ctx);
    free(buf);
    fclose(f);
    return st;
}

static bool is_weight_file(const char *n)
{
    size_t l = strlen(n);
    if (l > 12 && strcmp(n + l - 12, ".safetensors") == 0)
        return true;
    return l > 4 && strcmp(n + l - 4, ".bin") == 0 && strcmp(n, "training_args.bin") != 0;
}

/* Sizes and digests of the weight files from the hub's manifest; false if there is none. */
static bool model_files_from_manifest(srv_model *m)
{
    hub_manifest man;
    memset(&man, 0, sizeof man);
    mcli_err err;
    if (manifest_read(m->dir, &man, &err) != MCLI_OK)
        return false;
    for (size_t i = 0; i < man.n_files; i++) {
        if (!is_weight_file(man.files[i].name) || strlen(man.files[i].sha256) != 64)
            continue;
        srv_file *grown = realloc(m->files, (m->n_files + 1) * sizeof *grown);
        char *path = strdup(man.files[i].name);
        if (!grown || !path) {
            free(grown == m->files ? NULL : grown);
            free(path);
            break;
        }
        m->files = grown;
        srv_file *f = &m->files[m->n_files++];
        f->path = path;
        f->size = (uint64_t)man.files[i].size;
        memcpy(f->sha256, man.files[i].sha256, 65);
        m->total_size += f->size;
    }
    manifest_free(&man);
    if (m->n_files)
        snprintf(m->digest, sizeof m->digest, "sha256:%s", m->files[0].sha256);
    return m->n_files > 0;
}

/* Lists and hashes the weight files of m->dir (once, at load), unless the manifest has them. */
static mcli_status model_hash_files(srv_model *m, mcli_err *err)
{
    if (model_files_from_manifest(m))
        return MCLI_OK;
    DIR *d = opendir(m->dir);
    if (!d)
        return mcli_fail(err, MCLI_ERR_IO, "%s: cannot list the model directory: %s", m->dir, strerror(errno));
    mcli_status st = MCLI_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_weight_file(e->d_name))
            continue;
        srv_file *grown = realloc(m->files, (m->n_files + 1) * sizeof *grown);
        if (!grown) {
            st = mcli_fail(err, MCLI_ERR_NOMEM, "out of memory listing %s", m->dir);
            break;
        }
        m->files = grown;
        srv_file *f = &m->files[m->n_files];
        memset(f, 0, sizeof *f);
        f->path = strdup(e->d_name);
        size_t plen = strlen(m->dir) + strlen(e->d_name) + 2;
        char *full = malloc(plen);
        if (!f->path || !full) {
            free(f->path);
            free(full);
            st = mcli_fail(err, MCLI_ERR_NOMEM, "out of memory listing %s", m->dir);
            break;
        }
        snprintf(full, plen, "%s/%s", m->dir, e->d_name);
        st = sha256_file(full, f->sha256, &f->size, err);
        free(full);
        if (st != MCLI_OK) {
            free(f->path);
            break;
        }
        m->total_size += f->size;
        m->n_files++;
    }
    closedir(d);
    if (st == MCLI_OK && m->n_files)
        snprintf(m->digest, sizeof m->digest, "sha256:%s", m->files[0].sha256);
    return st;
}

/* The served name: the manifest's repo, else the path below models_dir/lightweight ("org/name", the
 * download layout), else the directory's base name (so models/bundled/X is served as X wherever
 * models_dir is). */
static char *derive_name(const server *s, const char *dir)
{
    hub_manifest man;
    memset(&man, 0, sizeof man);
    mcli_err err;
    if (manifest_read(dir, &man, &err) == MCLI_OK) {
        char *name = man.repo[0] ? strdup(man.repo) : NULL;
        manifest_free(&man);
        if (name)
            return name;
    }
    char real_dir[4096], real_models[4096], lightweight[4096];
    int ln = snprintf(lightweight, sizeof lightweight, "%s/lightweight", s->models_dir);
    if (s->models_dir[0] && ln > 0 && (size_t)ln < sizeof lightweight && realpath(dir, real_dir) &&
        realpath(lightweight, real_models)) {
        size_t n = strlen(real_models);
        if (strncmp(real_dir, real_models, n) == 0 && real_dir[n] == '/' && real_dir[n + 1])
            return strdup(real_dir + n + 1);
    }
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && dir[start - 1] != '/')
        start--;
    return strndup(dir + start, len - start);
}

/* Compute threads run at this nice value so that the HTTP threads (nice 0) are scheduled first
 * when they wake: /health stays fast while a generation keeps the cores busy. */
#define SERVER_COMPUTE_NICE 5

typedef struct {
    server *s;
    srv_model *m;
    const char *dir;
    const mcli_engine_opts *eo;
    mcli_err *err;
    mcli_status st;
} load_arg;

static void *load_main(void *p)
{
    load_arg *a = p;
    /* Per-thread on Linux; threads created from here (the engine's pool, the scheduler's
     * workers) inherit it. Failure only costs latency. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), SERVER_COMPUTE_NICE) != 0)
        LOG_DEBUG("setpriority: %s (compute threads keep nice 0)", strerror(errno));
    a->st = engine_load(a->dir, a->eo, &a->m->model, a->err);
    if (a->st != MCLI_OK) {
        mcli_err_prefix(a->err, "loading %s", a->dir);
        return NULL;
    }
    a->st = sched_new(a->m->model, a->m->name, &a->s->opts.sched, &a->m->sched, a->err);
    return NULL;
}

/* engine_load + sched_new on a helper thread at SERVER_COMPUTE_NICE. */
static mcli_status load_niced(server *s, srv_model *m, const char *dir, const mcli_engine_opts *eo, mcli_err *err)
{
    load_arg a = {.s = s, .m = m, .dir = dir, .eo = eo, .err = err, .st = MCLI_OK};
    pthread_t t;
    if (pthread_create(&t, NULL, load_main, &a) != 0)
        return mcli_fail(err, MCLI_ERR_INTERNAL, "cannot start a thread to load %s", dir);
    pthread_join(t, NULL);
    return a.st;
}

mcli_status server_add_model(server *s, const char *name, const char *dir, mcli_err *err)
{
    srv_model *grown = realloc(s->models, (s->n_models + 1) * sizeof *grown);
    if (!grown)
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory adding model %s", dir);
    s->models = grown;
    srv_model *m = &s->models[s->n_models];
    memset(m, 0, sizeof *m);
    mcli_status st;
    m->dir = strdup(dir);
    m->name = name && *name ? strdup(name) : derive_name(s, dir);
    if (!m->dir || !m->name) {
        st = mcli_fail(err, MCLI_ERR_NOMEM, "out of memory adding model %s", dir);
        goto fail;
    }
    if (server_find_model(s, m->name)) {
        st = mcli_fail(err, MCLI_ERR_INVALID_ARG, "two models named %s; name one with --model NAME=DIR", m->name);
        goto fail;
    }
    /* Engine threads when not set: encoders get one (dynamic batching supplies the parallel work
     * and the HTTP threads keep the other core), decoders every core (one stream's tokens/s). */
    mcli_engine_opts eo = s->opts.engine;
    if (eo.n_threads == 0) {
        mcli_config cfg;
        memset(&cfg, 0, sizeof cfg);
        mcli_err cerr;
        if (config_load(dir, &cfg, &cerr) == MCLI_OK) {
            eo.n_threads = cfg.arch == MCLI_ARCH_GPT2 ? 0 : 1;
            config_free(&cfg);
        }
    }
    double t0 = now_sec();
    st = load_niced(s, m, dir, &eo, err);
    if (st != MCLI_OK)
        goto fail;
    m->load_ms = (now_sec() - t0) * 1e3;
    m->loaded_at = time(NULL);
    m->info = engine_info(m->model);
    m->decoder = (m->info->tasks & MCLI_TASK_GENERATE) != 0;
    st = model_hash_files(m, err);
    if (st != MCLI_OK)
        goto fail;
    LOG_INFO("loaded %s from %s (%s, %lld parameters, %.0f ms)", m->name, dir, model_kind_name(m),
             (long long)m->info->n_params, m->load_ms);
    s->n_models++;
    return MCLI_OK;
fail:
    for (size_t i = 0; i < m->n_files; i++)
        free(m->files[i].path);
    free(m->files);
    sched_free(m->sched);
    engine_free(m->model);
    free(m->dir);
    free(m->name);
    return st;
}

/* ---------------------------------------------------------------- requests */

static void req_unref(http_req *r)
{
    if (atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    if (r->job)
        sched_job_unref(r->job);
    if (r->ctx_free)
        r->ctx_free(r->ctx);
    pthread_mutex_destroy(&r->lock);
    free(r->path_arg);
    free(r->body);
    free(r->sbuf);
    free(r);
}

static http_req *req_new(server *s, struct MHD_Connection *conn, const char *url, const char *method)
{
    http_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        return NULL;
    }
    r->srv = s;
    r->conn = conn;
    r->url = url;
    r->method = method;
    r->route = MET_ROUTE_OTHER;
    r->api = API_ORIGINAL;
    r->t0 = now_sec();
    r->conn_alive = true;
    r->phase = PH_READ;
    r->fd = -1;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci)
        r->fd = ci->connect_fd;
    atomic_init(&r->refs, 1);
    return r;
}

static void add_common_headers(http_req *r, struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->srv->cors_origin);
    if (strcmp(r->srv->cors_origin, "*") != 0)
        MHD_add_response_header(resp, "Vary", "Origin");
}

void req_reply_raw(http_req *r, int status, const char *ctype, char *body, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        r->status = 500;
        r->phase = PH_DONE;
        return;
    }
    add_common_headers(r, resp);
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (status == 503)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->status = status;
    r->bytes = len;
    r->phase = PH_DONE;
}

void req_reply_json(http_req *r, int status, json_t *j)
{
    char *body = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ENCODE_ANY | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(j);
    if (!body) {
        static const char oom[] = "{\"error\":\"out of memory building the response\"}";
        char *b = strdup(oom);
        if (b)
            req_reply_raw(r, 500, "application/json", b, strlen(b));
        else
            r->phase = PH_DONE;
        return;
    }
    req_reply_raw(r, status, "application/json", body, strlen(body));
}

void req_error(http_req *r, mcli_status code, int http_status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int status = http_status > 0 ? http_status : mcli_status_http(code);
    json_t *j;
    if (r->api == API_OPENAI) {
        const char *type = status >= 500 ? "server_error"
                           : status == 401 ? "authentication_error"
                           : status == 404 ? "not_found_error"
                           : status == 503 ? "overloaded_error"
                                           : "invalid_request_error";
        j = json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", msg, "type", type, "param", "code",
                      mcli_status_name(code));
    } else {
        j = json_pack("{s:s,s:s,s:i}", "error", msg, "error_type", mcli_status_name(code), "status", status);
    }
    req_reply_json(r, status, j);
}

void req_error_err(http_req *r, const mcli_err *err)
{
    mcli_status code = err->code == MCLI_OK ? MCLI_ERR_INTERNAL : err->code;
    req_error(r, code, 0, "%s", err->msg[0] ? err->msg : mcli_status_name(code));
}

void req_unknown_model(http_req *r, const char *name)
{
    char list[768];
    size_t off = 0;
    list[0] = '\0';
    for (size_t i = 0; i < r->srv->n_models && off + 4 < sizeof list; i++) {
        int n = snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "", r->srv->models[i].name);
        if (n < 0 || (size_t)n >= sizeof list - off)
            break;
        off += (size_t)n;
    }
    req_error(r, MCLI_ERR_NOT_FOUND, 404, "model '%.200s' is not loaded; loaded models: %s", name ? name : "",
              off ? list : "(none)");
}

/* ---- jobs: worker-side callbacks ---- */

/* Worker thread. The connection may be suspended: resume it so the HTTP side runs again. */
static void req_wake(http_req *r)
{
    if (r->suspended && r->conn_alive) {
        r->suspended = false;
        MHD_resume_connection(r->conn);
    }
}

static void job_on_start(sched_job *job, void *user)
{
    http_req *r = user;
    pthread_mutex_lock(&r->lock);
    r->stream_started = true;
    req_wake(r);
    pthread_mutex_unlock(&r->lock);
}

/* A peer that closed its socket reads as EOF; pending bytes (a pipelined request) mean alive. */
static bool client_gone(http_req *r)
{
    if (r->fd < 0)
        return false;
    char c;
    ssize_t n = recv(r->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static int job_on_token(sched_job *job, void *user, int32_t id, const char *piece, size_t len)
{
    http_req *r = user;
    if (r->on_token && r->stream_started) {
        r->on_token(r, job, id, piece, len);
        pthread_mutex_lock(&r->lock);
        bool alive = r->conn_alive;
        pthread_mutex_unlock(&r->lock);
        return alive ? 0 : 1;
    }
    double t = now_sec() * 1e3;
    if (t - r->last_alive_check >= ALIVE_CHECK_MS) {
        r->last_alive_check = t;
        pthread_mutex_lock(&r->lock);
        bool gone = !r->conn_alive || (r->suspended && client_gone(r));
        pthread_mutex_unlock(&r->lock);
        if (gone)
            return 1;
    }
    return 0;
}

static void job_on_done(sched_job *job, void *user)
{
    http_req *r = user;
    if (r->stream_started && r->on_stream_done)
        r->on_stream_done(r, job);
    pthread_mutex_lock(&r->lock);
    r->job_done = true;
    r->stream_done = true;
    req_wake(r);
    pthread_mutex_unlock(&r->lock);
    req_unref(r);
}

static void submit_common(http_req *r, srv_model *m, sched_job *job, req_finish_fn finish)
{
    mcli_err err;
    mcli_err_clear(&err);
    job->user = r;
    job->on_done = job_on_done;
    job->on_token = job->kind == SCHED_GENERATE ? job_on_token : NULL;
    pthread_mutex_lock(&r->lock);
    r->job = job;
    r->model = m;
    r->finish = finish;
    r->phase = PH_WAIT;
    atomic_fetch_add(&r->refs, 1);
    mcli_status st = sched_submit(m->sched, job, &err);
    if (st != MCLI_OK) {
        r->phase = PH_READ;
        pthread_mutex_unlock(&r->lock);
        atomic_fetch_sub(&r->refs, 1);
        req_error_err(r, &err);
        return;
    }
    r->suspended = true;
    MHD_suspend_connection(r->conn);
    pthread_mutex_unlock(&r->lock);
}

void req_submit(http_req *r, srv_model *m, sched_job *job, req_finish_fn finish)
{
    submit_common(r, m, job, finish);
}

void req_submit_stream(http_req *r, srv_model *m, sched_job *job, const char *ctype, req_token_fn on_token,
                       req_stream_done_fn on_done, req_finish_fn finish)
{
    r->on_token = on_token;
    r->on_stream_done = on_done;
    r->stream_ctype = ctype;
    job->on_start = job_on_start;
    submit_common(r, m, job, finish);
}

typedef struct {
    http_req *r;
    sched_job *job;
} detached_arg;

static void *detached_main(void *p)
{
    detached_arg *a = p;
    http_req *r = a->r;
    sched_job *job = a->job;
    free(a);
    if (job->on_start)
        job->on_start(job, r);
    job->status = job->call(job, NULL, r, &job->err);
    server *s = r->srv;
    job_on_done(job, r); /* drops the job's reference on r */
    sched_job_unref(job);
    atomic_fetch_sub(&s->detached, 1);
    return NULL;
}

void req_run_detached(http_req *r, sched_job *job, bool stream, const char *ctype, req_stream_done_fn on_done,
                      req_finish_fn finish)
{
    detached_arg *a = malloc(sizeof *a);
    if (!a) {
        sched_job_unref(job);
        req_error(r, MCLI_ERR_NOMEM, 500, "out of memory");
        return;
    }
    r->on_stream_done = on_done;
    r->stream_ctype = ctype;
    job->on_start = stream ? job_on_start : NULL;
    job->user = r;
    pthread_mutex_lock(&r->lock);
    r->job = job;
    r->finish = finish;
    r->phase = PH_WAIT;
    atomic_fetch_add(&r->refs, 1);
    sched_job_ref(job); /* the thread's */
    a->r = r;
    a->job = job;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    atomic_fetch_add(&r->srv->detached, 1);
    int rc = pthread_create(&t, &attr, detached_main, a);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        atomic_fetch_sub(&r->srv->detached, 1);
        free(a);
        r->phase = PH_READ;
        r->job = NULL;
        pthread_mutex_unlock(&r->lock);
        atomic_fetch_sub(&r->refs, 1);
        sched_job_unref(job);
        sched_job_unref(job);
        req_error(r, MCLI_ERR_BUSY, 503, "cannot start a thread for this request; retry later");
        return;
    }
    r->suspended = true;
    MHD_suspend_connection(r->conn);
    pthread_mutex_unlock(&r->lock);
}

bool req_cancelled(http_req *r)
{
    pthread_mutex_lock(&r->lock);
    bool gone = !r->conn_alive || (r->job && sched_job_cancelled(r->job)) || atomic_load(&r->srv->cancel_all);
    if (!gone && r->suspended && r->phase == PH_WAIT && !r->stream_started)
        gone = client_gone(r);
    pthread_mutex_unlock(&r->lock);
    return gone;
}

int req_stream_write(http_req *r, const char *data, size_t len)
{
    pthread_mutex_lock(&r->lock);
    /* Never block the worker (a decode step serves every stream of the model): a client that
     * falls STREAM_BUF_MAX behind is dropped instead. */
    if (!r->conn_alive || r->s_len - r->s_off + len > STREAM_BUF_MAX) {
        if (r->conn_alive && r->job)
            sched_job_cancel(r->job);
        pthread_mutex_unlock(&r->lock);
        return -1;
    }
    if (r->s_off > 0 && r->s_len + len > r->s_cap) {
        memmove(r->sbuf, r->sbuf + r->s_off, r->s_len - r->s_off);
        r->s_len -= r->s_off;
        r->s_off = 0;
    }
    if (r->s_len + len > r->s_cap) {
        size_t cap = r->s_cap ? r->s_cap : 4096;
        while (cap < r->s_len + len)
            cap *= 2;
        char *grown = realloc(r->sbuf, cap);
        if (!grown) {
            pthread_mutex_unlock(&r->lock);
            return -1;
        }
        r->sbuf = grown;
        r->s_cap = cap;
    }
    memcpy(r->sbuf + r->s_len, data, len);
    r->s_len += len;
    req_wake(r);
    pthread_mutex_unlock(&r->lock);
    return 0;
}

int req_stream_printf(http_req *r, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    return req_stream_write(r, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

int req_stream_json(http_req *r, const char *prefix, json_t *j, const char *suffix)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ENCODE_ANY | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(j);
    if (!s)
        return -1;
    size_t pl = strlen(prefix), sl = strlen(s), xl = strlen(suffix);
    char *line = malloc(pl + sl + xl + 1);
    if (!line) {
        free(s);
        return -1;
    }
    memcpy(line, prefix, pl);
    memcpy(line + pl, s, sl);
    memcpy(line + pl + sl, suffix, xl);
    int rc = req_stream_write(r, line, pl + sl + xl);
    free(line);
    free(s);
    return rc;
}

/* HTTP thread: copies buffered stream bytes; suspends while the generation has nothing new. */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    http_req *r = cls;
    pthread_mutex_lock(&r->lock);
    size_t pending = r->s_len - r->s_off;
    if (pending) {
        size_t n = pending < max ? pending : max;
        memcpy(buf, r->sbuf + r->s_off, n);
        r->s_off += n;
        if (r->s_off == r->s_len)
            r->s_off = r->s_len = 0;
        r->bytes += n;
        pthread_mutex_unlock(&r->lock);
        return (ssize_t)n;
    }
    if (r->stream_done) {
        pthread_mutex_unlock(&r->lock);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    r->suspended = true;
    MHD_suspend_connection(r->conn);
    pthread_mutex_unlock(&r->lock);
    return 0;
}

static void start_stream_response(http_req *r)
{
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, r, NULL);
    if (!resp) {
        req_error(r, MCLI_ERR_NOMEM, 500, "out of memory starting the stream");
        return;
    }
    add_common_headers(r, resp);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->stream_ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    r->status = 200;
    r->phase = PH_STREAM;
}

/* ---------------------------------------------------------------- dispatch */

static const route_entry *const route_tables[] = {routes_original, routes_ollama, routes_openai, routes_tei};

/* Constant-time comparison of the presented and the configured key. */
static bool key_matches(const char *given, const char *want)
{
    size_t gl = strlen(given), wl = strlen(want);
    unsigned char diff = (unsigned char)(gl != wl);
    for (size_t i = 0; i < wl; i++)
        diff |= (unsigned char)(want[i] ^ (i < gl ? given[i] : 0));
    return diff == 0;
}

static bool authorized(http_req *r)
{
    if (!r->srv->api_key[0])
        return true;
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    while (*h == ' ')
        h++;
    return key_matches(h, r->srv->api_key);
}

/* Matches /models/{name}/ACTION; on success *name is a malloc'd copy. */
static bool match_model_action(const char *url, const char *action, char **name)
{
    static const char prefix[] = "/models/";
    size_t pl = sizeof prefix - 1, ul = strlen(url), al = strlen(action);
    if (ul <= pl + al + 1 || strncmp(url, prefix, pl) != 0)
        return false;
    if (url[ul - al - 1] != '/' || strcmp(url + ul - al, action) != 0)
        return false;
    *name = strndup(url + pl, ul - al - 1 - pl);
    return *name != NULL;
}

static void reply_preflight(http_req *r)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return;
    add_common_headers(r, resp);
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
    const char *want = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Access-Control-Request-Headers");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            want && strlen(want) < 512 ? want : "Authorization, Content-Type");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "86400");
    MHD_queue_response(r->conn, 204, resp);
    MHD_destroy_response(resp);
    r->status = 204;
    r->phase = PH_DONE;
}

static void dispatch(http_req *r)
{
    const char *url = r->url;
    if (strcmp(r->method, "OPTIONS") == 0) {
        r->route = MET_OPTIONS;
        reply_preflight(r);
        return;
    }
    const route_entry *hit = NULL;
    char allow[128] = "";
    for (size_t t = 0; t < sizeof route_tables / sizeof route_tables[0] && !hit; t++) {
        for (const route_entry *e = route_tables[t]; e->fn; e++) {
            char *name = NULL;
            bool path_ok = e->path ? strcmp(e->path, url) == 0 : match_model_action(url, e->action, &name);
            if (!path_ok)
                continue;
            if (strcmp(e->method, r->method) == 0 || (strcmp(r->method, "HEAD") == 0 && strcmp(e->method, "GET") == 0)) {
                hit = e;
                free(r->path_arg);
                r->path_arg = name;
                break;
            }
            free(name);
            r->route = e->metric;
            r->api = e->api;
            size_t al = strlen(allow);
            if (al + strlen(e->method) + 3 < sizeof allow && !strstr(allow, e->method))
                snprintf(allow + al, sizeof allow - al, "%s%s", al ? ", " : "", e->method);
        }
    }
    if (!hit && allow[0]) {
        char *body = NULL;
        json_t *j = json_pack("{s:s,s:s,s:i}", "error", "method not allowed on this route", "allow", allow, "status", 405);
        body = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        struct MHD_Response *resp =
            body ? MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE) : NULL;
        if (!resp) {
            free(body);
            return;
        }
        add_common_headers(r, resp);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
        r->bytes = strlen(body);
        MHD_queue_response(r->conn, 405, resp);
        MHD_destroy_response(resp);
        r->status = 405;
        r->phase = PH_DONE;
        return;
    }
    if (hit) {
        r->route = hit->metric;
        r->api = hit->api;
    }
    if (!(hit && hit->metric == MET_HEALTH) && !authorized(r)) {
        req_error(r, MCLI_ERR_AUTH, 401, "missing or wrong API key: send 'Authorization: Bearer <key>'");
        return;
    }
    if (!hit) {
        req_error(r, MCLI_ERR_NOT_FOUND, 404, "no route for %.8s %.300s; see docs/API.md", r->method, url);
        return;
    }
    if (r->too_large) {
        req_error(r, MCLI_ERR_TOO_LARGE, 413, "request body larger than the limit of %zu bytes", r->srv->opts.max_body);
        return;
    }
    hit->fn(r);
}

/* Parses a Content-Length value: digits only, at most 19 of them. -1 if malformed. */
static long long parse_content_length(const char *v)
{
    long long n = 0;
    int digits = 0;
    for (; *v == ' '; v++)
        ;
    for (; *v >= '0' && *v <= '9'; v++) {
        if (++digits > 18)
            return -1;
        n = n * 10 + (*v - '0');
    }
    for (; *v == ' '; v++)
        ;
    return (*v || !digits) ? -1 : n;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    server *s = cls;
    http_req *r = *con_cls;
    if (!r) {
        r = req_new(s, conn, url, method);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        atomic_fetch_add(&s->in_flight, 1);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            long long n = parse_content_length(cl);
            if (n < 0 || (unsigned long long)n > s->opts.max_body) {
                /* Answer before reading the body: libmicrohttpd then skips it and closes. */
                r->too_large = true;
                dispatch(r);
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->too_large)
            return MHD_YES;
        if (r->body_len + n > s->opts.max_body) {
            r->too_large = true;
            free(r->body);
            r->body = NULL;
            r->body_len = r->body_cap = 0;
            return MHD_YES;
        }
        if (buf_append(&r->body, &r->body_len, &r->body_cap, s->opts.max_body, upload_data, n) != MCLI_OK)
            return MHD_NO;
        return MHD_YES;
    }
    if (r->phase == PH_WAIT) {
        pthread_mutex_lock(&r->lock);
        bool started = r->stream_started, done = r->job_done;
        pthread_mutex_unlock(&r->lock);
        if (started)
            start_stream_response(r);
        else if (done)
            r->finish(r, r->job);
        return MHD_YES;
    }
    if (r->phase != PH_READ)
        return MHD_YES;
    dispatch(r);
    return MHD_YES;
}

/* Copies a path for the log with control bytes replaced. */
static void log_safe(char *out, size_t cap, const char *in)
{
    size_t i = 0;
    for (; in && *in && i + 1 < cap; in++)
        out[i++] = ((unsigned char)*in < 0x20 || *in == 0x7f) ? '?' : *in;
    out[i] = '\0';
}

/* One line per request, in the logger's format, written with a single write(2): lines from
 * different threads never interleave and no lock is taken on the hot path. */
static void access_log(const http_req *r, int status, double secs)
{
    char path[256], line[512];
    log_safe(path, sizeof path, r->url);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ info  %.8s %s %d %zu %.2fms\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(ts.tv_nsec / 1000000L), r->method, path, status, r->bytes, secs * 1e3);
    if (n <= 0)
        return;
    if ((size_t)n >= sizeof line) {
        n = (int)sizeof line;
        line[n - 1] = '\n';
    }
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w; /* a full or closed stderr must not fail the request */
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    server *s = cls;
    http_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    pthread_mutex_lock(&r->lock);
    r->conn_alive = false;
    if (r->job && !r->job_done)
        sched_job_cancel(r->job);
    pthread_mutex_unlock(&r->lock);
    int status = r->status ? r->status : 499;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && r->phase == PH_STREAM && !r->stream_done)
        status = 499;
    double secs = now_sec() - r->t0;
    metrics_observe(r->route, status, secs);
    if (s->opts.access_log)
        access_log(r, status, secs);
    atomic_fetch_sub(&s->in_flight, 1);
    req_unref(r);
}

/* ---------------------------------------------------------------- lifecycle */

mcli_status server_new(const server_opts *opts, server **out, mcli_err *err)
{
    *out = NULL;
    server *s = calloc(1, sizeof *s);
    if (!s)
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory creating the server");
    server_opts_default(&s->opts);
    if (opts)
        s->opts = *opts;
    if (!s->opts.host || !*s->opts.host)
        s->opts.host = "127.0.0.1";
    if (!s->opts.cors_origin || !*s->opts.cors_origin)
        s->opts.cors_origin = "*";
    if (s->opts.threads <= 0)
        s->opts.threads = 4;
    if (s->opts.max_body == 0)
        s->opts.max_body = 4u << 20;
    if (s->opts.conn_timeout_s == 0)
        s->opts.conn_timeout_s = 30;
    if (strlen(s->opts.host) >= sizeof s->host || strlen(s->opts.cors_origin) >= sizeof s->cors_origin ||
        (s->opts.api_key && strlen(s->opts.api_key) >= sizeof s->api_key) ||
        (s->opts.models_dir && strlen(s->opts.models_dir) >= sizeof s->models_dir)) {
        free(s);
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "host, CORS origin, API key or models dir too long");
    }
    snprintf(s->host, sizeof s->host, "%s", s->opts.host);
    snprintf(s->cors_origin, sizeof s->cors_origin, "%s", s->opts.cors_origin);
    snprintf(s->api_key, sizeof s->api_key, "%s", s->opts.api_key ? s->opts.api_key : "");
    snprintf(s->models_dir, sizeof s->models_dir, "%s", s->opts.models_dir ? s->opts.models_dir : "");
    s->opts.host = s->host;
    s->opts.cors_origin = s->cors_origin;
    s->opts.api_key = s->api_key;
    s->opts.models_dir = s->models_dir[0] ? s->models_dir : NULL;
    atomic_init(&s->in_flight, 0);
    atomic_init(&s->stopping, false);
    atomic_init(&s->cancel_all, false);
    atomic_init(&s->detached, 0);
    *out = s;
    return MCLI_OK;
}

mcli_status server_start(server *s, mcli_err *err)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    const char *host = s->host;
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)s->opts.port);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)s->opts.port);
        flags |= MHD_USE_IPv6;
    } else {
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "--host %s: not an IPv4 or IPv6 address", s->host);
    }
    if (s->opts.port < 0 || s->opts.port > 65535)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "--port %d: must be 0..65535", s->opts.port);
    s->started = time(NULL);
    s->daemon = MHD_start_daemon(flags, (uint16_t)s->opts.port, NULL, NULL, on_access, s,
                                 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                 MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->opts.threads,
                                 MHD_OPTION_CONNECTION_TIMEOUT, s->opts.conn_timeout_s,
                                 MHD_OPTION_CONNECTION_LIMIT, 4096u,
                                 /* per-connection pool (request line + headers + upload buffer); MHD
                                  * clears it for every request, so smaller is faster: 16 KiB */
                                 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384,
                                 MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_END);
    if (!s->daemon)
        return mcli_fail(err, MCLI_ERR_IO, "cannot listen on %s:%d (in use? try another --port)", s->host,
                         s->opts.port);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->opts.port;
    return MCLI_OK;
}

int server_port(const server *s) { return s->port; }

static void wait_idle(server *s, double secs)
{
    double end = now_sec() + secs;
    while (atomic_load(&s->in_flight) > 0 && now_sec() < end)
        usleep(10000);
}

void server_shutdown(server *s, double grace_s)
{
    if (!s || !s->daemon || atomic_exchange(&s->stopping, true))
        return;
    MHD_socket lfd = MHD_quiesce_daemon(s->daemon);
    if (lfd != MHD_INVALID_SOCKET)
        close(lfd);
    LOG_INFO("shutting down: %ld request(s) in flight, waiting up to %.1f s", (long)atomic_load(&s->in_flight), grace_s);
    wait_idle(s, grace_s);
    if (atomic_load(&s->in_flight) > 0) {
        LOG_WARN("grace period over: cancelling %ld request(s)", (long)atomic_load(&s->in_flight));
        atomic_store(&s->cancel_all, true);
        for (size_t i = 0; i < s->n_models; i++)
            sched_cancel_all(s->models[i].sched);
    }
    /* Joining the workers completes every job, which resumes every suspended connection. */
    for (size_t i = 0; i < s->n_models; i++)
        sched_stop(s->models[i].sched);
    /* A detached pull may sit in a network call: its suspended connection must be resumed before
     * MHD_stop_daemon, so wait for it (curl's own timeouts bound this). */
    for (int waited = 0; atomic_load(&s->detached) > 0; waited++) {
        if (waited % 500 == 0)
            LOG_WARN("waiting for %d pull(s) to stop", atomic_load(&s->detached));
        usleep(10000);
    }
    wait_idle(s, 2.0);
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}

void server_free(server *s)
{
    if (!s)
        return;
    server_shutdown(s, 0);
    for (size_t i = 0; i < s->n_models; i++) {
        srv_model *m = &s->models[i];
        sched_free(m->sched);
        engine_free(m->model);
        for (size_t f = 0; f < m->n_files; f++)
            free(m->files[f].path);
        free(m->files);
        free(m->name);
        free(m->dir);
    }
    free(s->models);
    free(s);
}
