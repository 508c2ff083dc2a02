/* service_http.c - the model service's HTTP front: a libmicrohttpd daemon with one thread per
 * connection that reads a capped body and hands the request to service_handle().
 *
 * Why not http.c: the lightweight server's route tables are a static array in http.c and its
 * models are fixed at server_start, so the service cannot mount its routes there without a change
 * to http.c (a table of extra routes in server_opts, and a user pointer reachable from http_req).
 * This file is that missing piece kept small: no suspend/resume and no scheduler, because the
 * service's handlers may block (inference, downloads, progress streams) and a thread per
 * connection makes that safe. The connection limit bounds the threads.
 *
 *   connection --first call--> conn_state allocated --body chunks--> appended (capped)
 *              --last call--> service_handle --> JSON or streamed reply --completed--> access log, freed
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "server/service_internal.h"
#include "util/log.h"
#include "util/buf.h"

#define SVC_CONN_LIMIT 128
#define SVC_CONN_TIMEOUT_S 120

void service_routes_shutdown(service *s);
void service_routes_free(service *s);

typedef struct {
    char *body;
    size_t len, cap;
    bool too_large;
    int status;
    long long bytes; /* body bytes of a JSON reply; -1 for a stream */
    double t0;
    char line[320]; /* "METHOD path" for the access log */
} conn_state;

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static bool append_body(conn_state *cs, const char *data, size_t n)
{
    mcli_status st = cs->too_large ? MCLI_ERR_TOO_LARGE
                                   : buf_append(&cs->body, &cs->len, &cs->cap, SERVICE_MAX_BODY, data, n);
    if (st != MCLI_OK)
        cs->too_large = true;
    return st == MCLI_OK;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    svc_stream *st = cls;
    size_t n = st->next(st->ctx, buf, max);
    return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : (ssize_t)n;
}

static void stream_free(void *cls)
{
    svc_stream *st = cls;
    if (st->free)
        st->free(st->ctx);
    free(st);
}

static enum MHD_Result queue_json(struct MHD_Connection *c, conn_state *cs, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(body);
    if (!text) {
        static const char oom[] = "{\"detail\":\"out of memory\",\"error\":\"out_of_memory\"}";
        text = strdup(oom);
        status = 500;
        if (!text)
            return MHD_NO;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    cs->status = status;
    cs->bytes = (long long)strlen(text);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Constant-time comparison of the Bearer token with the key (no early exit on the first mismatch). */
static bool authorized(const service *s, struct MHD_Connection *c, const char *method, const char *url)
{
    if (!s->api_key[0] || (strcmp(method, "GET") == 0 && strcmp(url, "/health") == 0))
        return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncmp(h, "Bearer ", 7) != 0)
        return false;
    const char *given = h + 7;
    size_t n = strlen(s->api_key), m = strnlen(given, 512);
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(s->api_key[i] ^ (i < m ? given[i] : 0));
    return diff == 0;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    service *s = cls;
    conn_state *cs = *con_cls;
    if (!cs) {
        cs = calloc(1, sizeof *cs);
        if (!cs)
            return MHD_NO;
        cs->t0 = mono_ms();
        snprintf(cs->line, sizeof cs->line, "%.16s %.290s", method, url);
        *con_cls = cs;
        return MHD_YES;
    }
    if (*upload_size) {
        append_body(cs, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (!authorized(s, c, method, url))
        return queue_json(c, cs, 401,
                          json_pack("{s:s,s:s}", "detail",
                                    "this service needs 'Authorization: Bearer <key>' (the --api-key it was started with)",
                                    "error", "unauthorized"));
    if (cs->too_large)
        return queue_json(c, cs, 413,
                          json_pack("{s:s,s:s}", "detail", "request body larger than 1 MiB", "error", "too_large"));
    const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "stream");
    bool stream = q && (strcmp(q, "1") == 0 || strcmp(q, "true") == 0);
    svc_reply r;
    service_handle(s, method, url, stream, cs->body ? cs->body : "", cs->len, &r);
    if (!r.stream.next)
        return queue_json(c, cs, r.status, r.body);
    svc_stream *st = malloc(sizeof *st);
    if (!st) {
        if (r.stream.free)
            r.stream.free(r.stream.ctx);
        return MHD_NO;
    }
    *st = r.stream;
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, st,
                                                                  stream_free);
    if (!resp) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", st->content_type ? st->content_type : "application/x-ndjson");
    cs->status = r.status;
    cs->bytes = -1;
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)r.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)c;
    service *s = cls;
    conn_state *cs = *con_cls;
    if (!cs)
        return;
    if (s->access_log) {
        char bytes[32] = "stream";
        if (cs->bytes >= 0)
            snprintf(bytes, sizeof bytes, "%lld", cs->bytes);
        LOG_INFO("service: %s %d %s bytes %.1f ms%s", cs->line, cs->status, bytes, mono_ms() - cs->t0,
                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection ended early)");
    }
    free(cs->body);
    free(cs);
    *con_cls = NULL;
}

mcli_status service_listen(service *s, mcli_err *err)
{
    if (s->daemon)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "service: already listening");
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", s->port);
    int rc = getaddrinfo(s->host, port_s, &hints, &ai);
    if (rc != 0 || !ai)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "service: cannot resolve host '%s': %s", s->host,
                         gai_strerror(rc));
    atomic_store(&s->bound_port, s->port); /* known before the first request unless the port is 0 */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(flags, (uint16_t)s->port, NULL, NULL, on_access, s, MHD_OPTION_SOCK_ADDR,
                                 ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)SVC_CONN_LIMIT,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)SVC_CONN_TIMEOUT_S,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon)
        return mcli_fail(err, MCLI_ERR_IO,
                         "service: cannot listen on %s:%d (is the port in use? pick another with --port)", s->host,
                         s->port);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    atomic_store(&s->bound_port, info ? (int)info->port : s->port);
    LOG_INFO("service: listening on http://%s:%d (registry %s, models %s)", s->host, atomic_load(&s->bound_port),
             s->db_path, s->models_dir);
    return MCLI_OK;
}

int service_port(service *s) { return atomic_load(&s->bound_port); }

void service_free(service *s)
{
    if (!s)
        return;
    service_routes_shutdown(s);
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    service_routes_free(s);
}
