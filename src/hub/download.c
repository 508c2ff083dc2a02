/* download.c - resumable, verified single-file downloads with libcurl (see download.h). */
#include "hub/download.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

#define MAX_REDIRECTS 10
#define URL_MAX 4096
#define HDR_VALUE_MAX 512
#define ERR_BODY_MAX 512
#define USER_AGENT "mcli/" MCLI_VERSION

/* Copies src into dst[cap] (truncating, always NUL-terminated). */
static void str_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static CURLcode g_init_rc = CURLE_OK;

static void global_init(void)
{
    g_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static long env_long(const char *name, long dflt, long lo, long hi)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end = NULL;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || x < lo || x > hi)
        return dflt;
    return x;
}

void dl_policy_default(dl_policy *p)
{
    p->max_attempts = (int)env_long("MCLI_RETRY_MAX", 6, 1, 100);
    p->base_delay_ms = env_long("MCLI_RETRY_BASE_MS", 1000, 0, 600000);
    p->max_delay_ms = env_long("MCLI_RETRY_MAX_MS", 30000, 0, 3600000);
    p->connect_timeout_s = 15;
    p->stall_timeout_s = env_long("MCLI_STALL_TIMEOUT_S", 30, 1, 3600);
}

bool dl_url_encode(const char *s, bool keep_slash, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t j = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
                     *p == '_' || *p == '-' || *p == '~' || (keep_slash && *p == '/');
        if (plain) {
            if (j + 1 >= cap)
                return false;
            out[j++] = (char)*p;
        } else {
            if (j + 3 >= cap)
                return false;
            out[j++] = '%';
            out[j++] = hex[*p >> 4];
            out[j++] = hex[*p & 15];
        }
    }
    if (j >= cap)
        return false;
    out[j] = '\0';
    return true;
}

/* ---- one HTTP exchange with manual redirects ---- */

typedef enum { SINK_DISCARD, SINK_MEMORY, SINK_FILE } sink_kind;

typedef struct {
    /* headers of the current hop */
    long status;
    char etag[HDR_VALUE_MAX], linked_etag[HDR_VALUE_MAX], linked_size[64], content_length[64];
    char repo_commit[64], retry_after[64], content_range[128], error_code[64], location[URL_MAX];
    bool headers_done;
    /* body */
    sink_kind sink;
    char *mem;
    size_t mem_len, mem_cap;        /* memory sink: mem_cap is the limit */
    bool too_large;
    int fd;                          /* file sink */
    int64_t file_offset;             /* bytes already in the part before this transfer */
    int64_t written;                 /* bytes written this transfer */
    EVP_MD_CTX *sha256, *sha1;
    int64_t blob_size;               /* for re-initialising the git blob hash ("blob N\0"); -1 none */
    bool restarted;                  /* a Range request was answered with the whole file */
    int write_errno;
    char err_body[ERR_BODY_MAX + 1]; /* start of an error response body, for messages */
    size_t err_len;
    dl_progress_fn progress;
    void *user;
    int64_t total;
    bool cancelled;
    long stall_s;                    /* no new byte for this long = stalled */
    curl_off_t last_now;
    double last_change;
    bool stalled;
    const char *meta_path;           /* file sink: sidecar written as soon as a 200 arrives */
    const char *content_id;
    char validator[HDR_VALUE_MAX];   /* ETag of the 200 response being received */
} xfer;

static void xfer_reset_hop(xfer *x)
{
    x->status = 0;
    x->etag[0] = x->linked_etag[0] = x->linked_size[0] = x->content_length[0] = '\0';
    x->repo_commit[0] = x->retry_after[0] = x->content_range[0] = x->error_code[0] = x->location[0] = '\0';
    x->headers_done = false;
    x->err_len = 0;
    x->err_body[0] = '\0';
}

/* Copies a header value (trimmed) if line starts with name (case-insensitive). */
static bool take_header(const char *line, size_t len, const char *name, char *dst, size_t cap)
{
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return false;
    const char *v = line + nl + 1;
    size_t vl = len - nl - 1;
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    if (vl >= cap)
        vl = cap - 1;
    memcpy(dst, v, vl);
    dst[vl] = '\0';
    return true;
}

/* Sidecar: "id <expected content id>\nvalidator <etag of the server that sent the bytes>\n". */
static void meta_write(const char *path, const char *id, const char *validator)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "id %s\nvalidator %s\n", id, validator);
    if (n <= 0 || (size_t)n >= sizeof buf)
        return; /* no sidecar: the next attempt starts from zero, which is always safe */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return;
    ssize_t w = write(fd, buf, (size_t)n);
    close(fd);
    if (w != n)
        unlink(path);
}

/* (Re)starts the content hashes; git hashes "blob <size>\0" before the content. */
static void hash_restart(EVP_MD_CTX *sha256, EVP_MD_CTX *sha1, int64_t blob_size)
{
    EVP_DigestInit_ex(sha256, EVP_sha256(), NULL);
    if (sha1) {
        char hdr[40];
        int hl = snprintf(hdr, sizeof hdr, "blob %lld", (long long)blob_size);
        EVP_DigestInit_ex(sha1, EVP_sha1(), NULL);
        EVP_DigestUpdate(sha1, hdr, (size_t)hl + 1);
    }
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        /* A new response (after 100-continue or on each hop): start clean. */
        xfer_reset_hop(x);
        const char *sp = memchr(buf, ' ', len);
        if (sp && (size_t)(sp - buf) + 4 <= len) {
            long code = 0;
            for (int i = 1; i <= 3; i++) {
                char c = sp[i];
                if (c < '0' || c > '9') {
                    code = 0;
                    break;
                }
                code = code * 10 + (c - '0');
            }
            x->status = code;
        }
        return len;
    }
    if (len <= 2) {
        x->headers_done = true;
        /* A 200 to a Range request (If-Range did not match, or Range is not supported): the body
         * is the whole file, so write it from byte 0 instead of appending it. */
        if (x->sink == SINK_FILE && x->status == 200 && x->file_offset > 0) {
            if (ftruncate(x->fd, 0) != 0 || lseek(x->fd, 0, SEEK_SET) != 0)
                x->write_errno = errno ? errno : EIO;
            hash_restart(x->sha256, x->sha1, x->blob_size);
            x->file_offset = 0;
            x->restarted = true;
        }
        /* Record the validator before the first body byte, so that a crash mid-file can resume. */
        if (x->sink == SINK_FILE && x->meta_path && x->status == 200 && x->etag[0] &&
            strncmp(x->etag, "W/", 2) != 0) {
            snprintf(x->validator, sizeof x->validator, "%s", x->etag);
            meta_write(x->meta_path, x->content_id, x->validator);
        }
        return len;
    }
    (void)(take_header(buf, len, "ETag", x->etag, sizeof x->etag) ||
        take_header(buf, len, "X-Linked-Etag", x->linked_etag, sizeof x->linked_etag) ||
        take_header(buf, len, "X-Linked-Size", x->linked_size, sizeof x->linked_size) ||
        take_header(buf, len, "Content-Length", x->content_length, sizeof x->content_length) ||
        take_header(buf, len, "X-Repo-Commit", x->repo_commit, sizeof x->repo_commit) ||
        take_header(buf, len, "Retry-After", x->retry_after, sizeof x->retry_after) ||
        take_header(buf, len, "Content-Range", x->content_range, sizeof x->content_range) ||
        take_header(buf, len, "X-Error-Code", x->error_code, sizeof x->error_code) ||
        take_header(buf, len, "Location", x->location, sizeof x->location));
    return len;
}

static bool status_is_body(long s)
{
    return s == 200 || s == 206;
}

static size_t on_body(char *buf, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    if (!status_is_body(x->status)) {
        if (x->status >= 400) {
            size_t room = ERR_BODY_MAX - x->err_len;
            size_t take = len < room ? len : room;
            memcpy(x->err_body + x->err_len, buf, take);
            x->err_len += take;
            x->err_body[x->err_len] = '\0';
        }
        return len; /* redirect or error bodies are not content */
    }
    switch (x->sink) {
    case SINK_DISCARD:
        return len;
    case SINK_MEMORY:
        if (x->mem_len + len > x->mem_cap) {
            x->too_large = true;
            return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
        }
        if (!x->mem) {
            x->mem = malloc(x->mem_cap + 1);
            if (!x->mem)
                return 0;
        }
        memcpy(x->mem + x->mem_len, buf, len);
        x->mem_len += len;
        return len;
    case SINK_FILE: {
        size_t done = 0;
        while (done < len) {
            ssize_t w = write(x->fd, buf + done, len - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                x->write_errno = w < 0 ? errno : EIO;
                return 0;
            }
            done += (size_t)w;
        }
        EVP_DigestUpdate(x->sha256, buf, len);
        if (x->sha1)
            EVP_DigestUpdate(x->sha1, buf, len);
        x->written += (int64_t)len;
        return len;
    }
    }
    return len;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal;
    (void)ultotal;
    (void)ulnow;
    xfer *x = ud;
    /* Our own stall detector: curl's low-speed check averages over several seconds. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double t = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    if (x->last_change == 0 || dlnow != x->last_now) {
        x->last_now = dlnow;
        x->last_change = t;
    } else if (x->stall_s > 0 && t - x->last_change > (double)x->stall_s) {
        x->stalled = true;
        return 1;
    }
    if (x->progress && x->sink == SINK_FILE && status_is_body(x->status)) {
        if (x->progress(x->user, x->file_offset + (int64_t)dlnow, x->total) != 0) {
            x->cancelled = true;
            return 1;
        }
    }
    return 0;
}

/* scheme://host:port of url into out; false if it cannot be parsed. */
static bool url_origin(const char *url, char *out, size_t cap)
{
    CURLU *u = curl_url();
    if (!u)
        return false;
    bool ok = false;
    char *scheme = NULL, *host = NULL, *port = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        int n = snprintf(out, cap, "%s://%s:%s", scheme, host, port);
        ok = n > 0 && (size_t)n < cap;
        if (ok)
            for (char *p = out; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                    *p = (char)(*p - 'A' + 'a');
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return ok;
}

static bool url_is_http(const char *url)
{
    return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

typedef struct {
    const char *url;
    const char *token;
    const dl_policy *policy;
    bool head;
    bool stop_at_cross_origin;  /* HEAD: stop at the redirect to the CDN */
    const char *range;          /* "bytes=N-" or NULL */
    const char *if_range;       /* validator or NULL */
} hop_req;

/* Performs req following redirects; x holds the last hop's headers/status. Returns the curl code;
 * *final_url gets the URL of the last hop. */
static CURLcode perform(const hop_req *req, xfer *x, char *final_url, size_t final_cap)
{
    CURLcode rc = CURLE_OK;
    char url[URL_MAX], origin[256] = "", hop_origin[256];
    snprintf(url, sizeof url, "%s", req->url);
    if (!url_origin(url, origin, sizeof origin))
        return CURLE_URL_MALFORMAT;
    CURL *h = curl_easy_init();
    if (!h)
        return CURLE_OUT_OF_MEMORY;
    for (int hop = 0; hop <= MAX_REDIRECTS; hop++) {
        if (!url_is_http(url) || !url_origin(url, hop_origin, sizeof hop_origin)) {
            rc = CURLE_UNSUPPORTED_PROTOCOL;
            break;
        }
        struct curl_slist *hdrs = NULL, *tmp;
        char line[HDR_VALUE_MAX + 64];
        bool ok = true;
        /* The token goes to the hub's origin only: a redirect to a CDN never sees it. */
        if (req->token && req->token[0] && strcmp(hop_origin, origin) == 0) {
            snprintf(line, sizeof line, "Authorization: Bearer %s", req->token);
            ok = (tmp = curl_slist_append(hdrs, line)) != NULL;
            hdrs = ok ? tmp : hdrs;
        }
        if (ok && req->range) {
            snprintf(line, sizeof line, "Range: %s", req->range);
            ok = (tmp = curl_slist_append(hdrs, line)) != NULL;
            hdrs = ok ? tmp : hdrs;
        }
        if (ok && req->if_range && req->if_range[0]) {
            snprintf(line, sizeof line, "If-Range: %s", req->if_range);
            ok = (tmp = curl_slist_append(hdrs, line)) != NULL;
            hdrs = ok ? tmp : hdrs;
        }
        if (!ok) {
            curl_slist_free_all(hdrs);
            rc = CURLE_OUT_OF_MEMORY;
            break;
        }
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_USERAGENT, USER_AGENT);
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, req->policy->connect_timeout_s);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, req->policy->stall_timeout_s);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        if (req->head)
            curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        xfer_reset_hop(x);
        x->stall_s = req->policy->stall_timeout_s;
        x->last_change = 0;
        x->stalled = false;
        LOG_DEBUG("hub: %s %s%s%s", req->head ? "HEAD" : "GET", url, req->range ? " Range: " : "",
                  req->range ? req->range : "");
        rc = curl_easy_perform(h);
        curl_slist_free_all(hdrs);
        if (rc == CURLE_ABORTED_BY_CALLBACK && x->stalled)
            rc = CURLE_OPERATION_TIMEDOUT; /* stalled: a transient failure, retried with a resume */
        long code = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        if (code)
            x->status = code;
        snprintf(final_url, final_cap, "%s", url);
        if (rc != CURLE_OK)
            break;
        bool redirect = code == 301 || code == 302 || code == 303 || code == 307 || code == 308;
        if (!redirect)
            break;
        char *next = NULL;
        if (curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &next) != CURLE_OK || !next) {
            rc = CURLE_TOO_MANY_REDIRECTS; /* a redirect without a usable Location */
            break;
        }
        char next_origin[256];
        if (req->stop_at_cross_origin && url_origin(next, next_origin, sizeof next_origin) &&
            strcmp(next_origin, origin) != 0)
            break; /* HEAD: the X-Linked-* headers are on this hop */
        if (strlen(next) >= sizeof url) {
            rc = CURLE_URL_MALFORMAT;
            break;
        }
        snprintf(url, sizeof url, "%s", next);
        if (hop == MAX_REDIRECTS)
            rc = CURLE_TOO_MANY_REDIRECTS;
    }
    curl_easy_cleanup(h);
    return rc;
}

/* True if a transfer error is worth another attempt. A host that cannot be resolved or connected to
 * gets one quick second try only: an unreachable hub (air-gapped machine) must fail in about a
 * second, not after the whole backoff ladder (callers then fall back to what is on disk). */
static bool curl_transient(CURLcode rc, int attempt)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        return attempt < 2;
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return true;
    default:
        return false;
    }
}

/* A hint appended to network failures that mean "the hub is not reachable". */
static const char *net_hint(CURLcode rc)
{
    if (rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT)
        return " - the hub cannot be reached: check the network, a proxy (https_proxy) or HF_ENDPOINT; "
               "HF_HUB_OFFLINE=1 uses what is on disk";
    return "";
}

static bool http_transient(long s)
{
    return s == 429 || s == 408 || (s >= 500 && s <= 599);
}

/* Backoff before attempt number `attempt` (1-based, after a failure), honouring Retry-After. */
long dl_backoff_ms(const dl_policy *p, int attempt, const char *retry_after)
{
    long d = p->base_delay_ms;
    for (int i = 1; i < attempt && d < p->max_delay_ms; i++)
        d *= 2;
    if (retry_after && retry_after[0]) {
        const char *s = retry_after;
        long secs = 0;
        bool digits = true;
        for (; *s; s++) {
            if (*s < '0' || *s > '9') {
                digits = false;
                break;
            }
            if (secs < 100000)
                secs = secs * 10 + (*s - '0');
        }
        if (digits)
            d = secs * 1000; /* an HTTP-date form is ignored: keep the backoff */
    }
    if (d > p->max_delay_ms)
        d = p->max_delay_ms;
    return d < 0 ? 0 : d;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Normalises an ETag value: drops W/ and quotes. */
void dl_norm_etag(const char *in, char *out, size_t cap)
{
    if (strncmp(in, "W/", 2) == 0)
        in += 2;
    size_t n = strlen(in);
    if (n >= 2 && in[0] == '"' && in[n - 1] == '"') {
        in++;
        n -= 2;
    }
    if (n >= cap)
        n = cap - 1;
    memcpy(out, in, n);
    out[n] = '\0';
}

static bool is_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

/* Strict decimal for Content-Length-like values: digits only, no sign, fits int64. */
bool dl_parse_size(const char *s, int64_t *out)
{
    if (!*s)
        return false;
    int64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        int d = *s - '0';
        if (v > (INT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static mcli_status status_error(long s, const xfer *x, const char *url, mcli_err *err)
{
    if (s == 401)
        return mcli_fail(err, MCLI_ERR_AUTH,
                         "%s: 401 unauthorized%s%s: the repository is gated or private (or does not exist) - set HF_TOKEN "
                         "to a token of an account with access, and check the model id",
                         url, x->error_code[0] ? " " : "", x->error_code);
    if (s == 403)
        return mcli_fail(err, MCLI_ERR_AUTH,
                         "%s: 403 forbidden%s%s: access to this repository is restricted (gated) - accept its terms on "
                         "the model page with the account of HF_TOKEN, or use a token with read access",
                         url, x->error_code[0] ? " " : "", x->error_code);
    if (s == 404) {
        const char *what = strcmp(x->error_code, "RepoNotFound") == 0       ? "repository not found: check the model id"
                           : strcmp(x->error_code, "RevisionNotFound") == 0 ? "revision not found: check the branch, tag or commit"
                           : strcmp(x->error_code, "EntryNotFound") == 0    ? "file not found in this repository"
                                                                            : "not found: check the model id and revision";
        return mcli_fail(err, MCLI_ERR_NOT_FOUND, "%s: 404 %s", url, what);
    }
    return mcli_fail(err, MCLI_ERR_NETWORK, "%s: HTTP %ld%s%.200s", url, s, x->err_len ? ": " : "", x->err_body);
}

mcli_status dl_head(const char *url, const char *token, const dl_policy *policy, dl_meta *out, mcli_err *err)
{
    pthread_once(&g_once, global_init);
    if (g_init_rc != CURLE_OK)
        return mcli_fail(err, MCLI_ERR_INTERNAL, "libcurl initialisation failed: %s", curl_easy_strerror(g_init_rc));
    dl_policy defp;
    if (!policy) {
        dl_policy_default(&defp);
        policy = &defp;
    }
    memset(out, 0, sizeof *out);
    out->size = -1;
    xfer x;
    memset(&x, 0, sizeof x);
    x.sink = SINK_DISCARD;
    x.fd = -1;
    hop_req req = {url, token, policy, true, true, NULL, NULL};
    char final_url[URL_MAX];
    for (int attempt = 1;; attempt++) {
        CURLcode rc = perform(&req, &x, final_url, sizeof final_url);
        long s = x.status;
        if (rc == CURLE_OK && (s == 200 || (s >= 300 && s < 400))) {
            out->http_status = (int)s;
            char raw[HDR_VALUE_MAX];
            dl_norm_etag(x.linked_etag[0] ? x.linked_etag : x.etag, raw, sizeof raw);
            str_copy(out->etag, sizeof out->etag, raw);
            out->lfs = x.linked_etag[0] != '\0';
            if (is_hex(out->etag, 64))
                str_copy(out->sha256, sizeof out->sha256, out->etag);
            else if (is_hex(out->etag, 40))
                str_copy(out->git_sha1, sizeof out->git_sha1, out->etag);
            for (char *p = out->sha256; *p; p++)
                if (*p >= 'A' && *p <= 'F')
                    *p = (char)(*p - 'A' + 'a');
            int64_t size;
            if (x.linked_size[0] && dl_parse_size(x.linked_size, &size))
                out->size = size;
            else if (s == 200 && x.content_length[0] && dl_parse_size(x.content_length, &size))
                out->size = size;
            if (is_hex(x.repo_commit, 40))
                str_copy(out->commit, sizeof out->commit, x.repo_commit);
            if (s >= 300 && !x.linked_etag[0] && !x.etag[0])
                return mcli_fail(err, MCLI_ERR_FORMAT, "%s: redirected to another host without X-Linked-Etag", url);
            return MCLI_OK;
        }
        bool retry = rc != CURLE_OK ? curl_transient(rc, attempt) : http_transient(s);
        if (!retry || attempt >= policy->max_attempts) {
            if (rc != CURLE_OK)
                return mcli_fail(err, MCLI_ERR_NETWORK, "%s: %s (after %d attempt%s)%s", url, curl_easy_strerror(rc),
                                 attempt, attempt > 1 ? "s" : "", net_hint(rc));
            mcli_status st = status_error(s, &x, url, err);
            if (st == MCLI_ERR_NETWORK && attempt > 1)
                mcli_err_prefix(err, "after %d attempts", attempt);
            return st;
        }
        long d = dl_backoff_ms(policy, attempt, x.retry_after);
        LOG_WARN("hub: %s: %s; retrying in %ld ms (attempt %d of %d)", url,
                 rc != CURLE_OK ? curl_easy_strerror(rc) : "server busy or failing", d, attempt + 1,
                 policy->max_attempts);
        sleep_ms(d);
    }
}

mcli_status dl_get_small(const char *url, const char *token, const dl_policy *policy, size_t cap, char **body,
                         size_t *len, mcli_err *err)
{
    pthread_once(&g_once, global_init);
    if (g_init_rc != CURLE_OK)
        return mcli_fail(err, MCLI_ERR_INTERNAL, "libcurl initialisation failed");
    dl_policy defp;
    if (!policy) {
        dl_policy_default(&defp);
        policy = &defp;
    }
    *body = NULL;
    *len = 0;
    hop_req req = {url, token, policy, false, false, NULL, NULL};
    char final_url[URL_MAX];
    for (int attempt = 1;; attempt++) {
        xfer x;
        memset(&x, 0, sizeof x);
        x.sink = SINK_MEMORY;
        x.mem_cap = cap;
        x.fd = -1;
        CURLcode rc = perform(&req, &x, final_url, sizeof final_url);
        long s = x.status;
        if (x.too_large) {
            free(x.mem);
            return mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: response larger than %zu bytes", url, cap);
        }
        if (rc == CURLE_OK && s == 200) {
            if (!x.mem) {
                x.mem = malloc(1);
                if (!x.mem)
                    return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory");
            }
            x.mem[x.mem_len] = '\0';
            *body = x.mem;
            *len = x.mem_len;
            return MCLI_OK;
        }
        free(x.mem);
        bool retry = rc != CURLE_OK ? curl_transient(rc, attempt) : http_transient(s);
        if (!retry || attempt >= policy->max_attempts) {
            if (rc != CURLE_OK)
                return mcli_fail(err, MCLI_ERR_NETWORK, "%s: %s%s", url, curl_easy_strerror(rc), net_hint(rc));
            return status_error(s, &x, url, err);
        }
        long d = dl_backoff_ms(policy, attempt, x.retry_after);
        if (rc != CURLE_OK)
            LOG_WARN("hub: %s: %s; retrying in %ld ms", url, curl_easy_strerror(rc), d);
        else
            LOG_WARN("hub: %s: HTTP %ld; retrying in %ld ms", url, s, d);
        sleep_ms(d);
    }
}

/* ---- the part file and its sidecar ---- */

static void hex_of(const unsigned char *d, unsigned n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = hx[d[i] >> 4];
        out[2 * i + 1] = hx[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static bool meta_read(const char *path, char *id, size_t id_cap, char *validator, size_t v_cap)
{
    char buf[1024];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    id[0] = validator[0] = '\0';
    char *line = buf;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (strncmp(line, "id ", 3) == 0)
            snprintf(id, id_cap, "%s", line + 3);
        else if (strncmp(line, "validator ", 10) == 0)
            snprintf(validator, v_cap, "%s", line + 10);
        line = nl ? nl + 1 : NULL;
    }
    return id[0] != '\0';
}

/* Hashes the first n bytes of fd into the contexts. */
static bool hash_prefix(int fd, int64_t n, EVP_MD_CTX *a, EVP_MD_CTX *b)
{
    unsigned char buf[1 << 16];
    if (lseek(fd, 0, SEEK_SET) != 0)
        return false;
    while (n > 0) {
        size_t want = n < (int64_t)sizeof buf ? (size_t)n : sizeof buf;
        ssize_t r = read(fd, buf, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        EVP_DigestUpdate(a, buf, (size_t)r);
        if (b)
            EVP_DigestUpdate(b, buf, (size_t)r);
        n -= r;
    }
    return true;
}

mcli_status dl_sha256_file(const char *path, char out[65], int64_t *size, mcli_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mcli_fail(err, MCLI_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    mcli_status status = MCLI_OK;
    if (!c || fstat(fd, &st) != 0 || !EVP_DigestInit_ex(c, EVP_sha256(), NULL)) {
        status = mcli_fail(err, MCLI_ERR_IO, "cannot hash %s", path);
        goto done;
    }
    if (!hash_prefix(fd, (int64_t)st.st_size, c, NULL)) {
        status = mcli_fail(err, MCLI_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    EVP_DigestFinal_ex(c, d, &dl);
    hex_of(d, dl, out);
    if (size)
        *size = (int64_t)st.st_size;
done:
    EVP_MD_CTX_free(c);
    close(fd);
    return status;
}

/* Parses "bytes START-END/TOTAL" and returns START, or -1. */
int64_t dl_content_range_start(const char *v)
{
    if (strncasecmp(v, "bytes ", 6) != 0)
        return -1;
    v += 6;
    int64_t s = 0;
    if (*v < '0' || *v > '9')
        return -1;
    while (*v >= '0' && *v <= '9') {
        if (s > (INT64_MAX - 9) / 10)
            return -1;
        s = s * 10 + (*v++ - '0');
    }
    return *v == '-' ? s : -1;
}

static void unlink_part(const char *part, const char *meta)
{
    unlink(part);
    unlink(meta);
}

mcli_status dl_fetch(const dl_request *r, dl_result *out, mcli_err *err)
{
    pthread_once(&g_once, global_init);
    if (g_init_rc != CURLE_OK)
        return mcli_fail(err, MCLI_ERR_INTERNAL, "libcurl initialisation failed");
    dl_policy defp;
    const dl_policy *policy = r->policy;
    if (!policy) {
        dl_policy_default(&defp);
        policy = &defp;
    }
    memset(out, 0, sizeof *out);
    char part[4200], meta[4210];
    if ((size_t)snprintf(part, sizeof part, "%s.part", r->dest) >= sizeof part)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "destination path too long: %s", r->dest);
    snprintf(meta, sizeof meta, "%s.meta", part);
    const dl_meta *ex = r->expect;
    const char *id = ex->sha256[0] ? ex->sha256 : ex->etag;
    int64_t expect_size = ex->size;

    /* A part from another version of the file is useless: drop it. */
    char old_id[128] = "", validator[HDR_VALUE_MAX] = "";
    if (access(part, F_OK) == 0) {
        if (!meta_read(meta, old_id, sizeof old_id, validator, sizeof validator) || strcmp(old_id, id) != 0) {
            LOG_INFO("hub: %s: discarding a partial download of another version", r->dest);
            unlink_part(part, meta);
            validator[0] = '\0';
        }
    }

    mcli_status status = MCLI_OK;
    int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644); /* never write through a planted link */
    if (fd < 0)
        return mcli_fail(err, MCLI_ERR_IO, "cannot create %s: %s", part, strerror(errno));
    EVP_MD_CTX *sha256 = EVP_MD_CTX_new();
    EVP_MD_CTX *sha1 = ex->git_sha1[0] && expect_size >= 0 ? EVP_MD_CTX_new() : NULL;
    if (!sha256 || (ex->git_sha1[0] && expect_size >= 0 && !sha1)) {
        status = mcli_fail(err, MCLI_ERR_NOMEM, "out of memory");
        goto fail;
    }

    xfer x;
    char retry_after[64] = "";
    for (int attempt = 1;; attempt++) {
        out->attempts = attempt;
        struct stat st;
        if (fstat(fd, &st) != 0) {
            status = mcli_fail(err, MCLI_ERR_IO, "cannot stat %s: %s", part, strerror(errno));
            goto fail;
        }
        int64_t have = (int64_t)st.st_size;
        if (expect_size >= 0 && have > expect_size)
            have = 0; /* longer than the file: cannot be a prefix */
        if (have > 0 && !validator[0])
            have = 0; /* no validator recorded: cannot resume safely */
        if (ftruncate(fd, have) != 0) {
            status = mcli_fail(err, MCLI_ERR_IO, "cannot truncate %s: %s", part, strerror(errno));
            goto fail;
        }
        /* Hash what we keep, then continue at its end. */
        hash_restart(sha256, sha1, expect_size);
        if (have > 0 && !hash_prefix(fd, have, sha256, sha1)) {
            status = mcli_fail(err, MCLI_ERR_IO, "cannot read %s: %s", part, strerror(errno));
            goto fail;
        }
        if (lseek(fd, have, SEEK_SET) != have) {
            status = mcli_fail(err, MCLI_ERR_IO, "cannot seek %s: %s", part, strerror(errno));
            goto fail;
        }
        if (attempt == 1)
            out->resumed_from = have;
        if (have > 0)
            LOG_INFO("hub: resuming %s at byte %lld", r->dest, (long long)have);

        memset(&x, 0, sizeof x);
        x.sink = SINK_FILE;
        x.fd = fd;
        x.file_offset = have;
        x.sha256 = sha256;
        x.sha1 = sha1;
        x.blob_size = expect_size;
        x.progress = r->progress;
        x.user = r->user;
        x.total = expect_size;
        x.meta_path = meta;
        x.content_id = id;
        char range[64];
        snprintf(range, sizeof range, "bytes=%lld-", (long long)have);
        bool complete = expect_size >= 0 && have == expect_size;
        CURLcode rc = CURLE_OK;
        if (!complete) {
            hop_req req = {r->url, r->token, policy, false, false, have > 0 ? range : NULL,
                           have > 0 ? validator : NULL};
            char final_url[URL_MAX];
            rc = perform(&req, &x, final_url, sizeof final_url);
        }
        long s = complete ? 206 : x.status;
        if (x.cancelled) {
            status = mcli_fail(err, MCLI_ERR_CANCELLED, "download of %s cancelled (partial file kept for a resume)",
                               r->dest);
            goto fail;
        }
        if (x.write_errno) {
            status = mcli_fail(err, MCLI_ERR_IO, "writing %s: %s", part, strerror(x.write_errno));
            goto fail;
        }
        if (x.validator[0])
            snprintf(validator, sizeof validator, "%s", x.validator);
        if (x.restarted)
            LOG_WARN("hub: %s: the server sent the whole file instead of resuming; it was written from the start",
                     r->dest);
        if (!complete && s == 206 && have > 0 && dl_content_range_start(x.content_range) != have) {
            /* The server resumed somewhere else: the bytes just written are misplaced. */
            LOG_WARN("hub: %s: server answered Range %s with Content-Range '%s'; restarting", r->dest, range,
                     x.content_range);
            validator[0] = '\0';
            if (ftruncate(fd, 0) != 0) {
                status = mcli_fail(err, MCLI_ERR_IO, "cannot truncate %s", part);
                goto fail;
            }
        } else if (!complete && s == 416) {
            validator[0] = '\0';
            if (ftruncate(fd, 0) != 0) {
                status = mcli_fail(err, MCLI_ERR_IO, "cannot truncate %s", part);
                goto fail;
            }
        } else if (rc == CURLE_OK && status_is_body(s)) {
            break; /* transfer complete */
        } else if (rc == CURLE_OK && !http_transient(s)) {
            status = status_error(s, &x, r->url, err);
            goto fail; /* 401/403/404/other 4xx: no retry; keep the part (it may be valid later) */
        } else if (rc != CURLE_OK && !curl_transient(rc, attempt)) {
            status = mcli_fail(err, MCLI_ERR_NETWORK, "%s: %s%s", r->url, curl_easy_strerror(rc), net_hint(rc));
            goto fail;
        }
        if (attempt >= policy->max_attempts) {
            if (rc != CURLE_OK)
                status = mcli_fail(err, MCLI_ERR_NETWORK,
                                   "%s: %s after %d attempts (partial file kept; run again to resume)%s", r->url,
                                   curl_easy_strerror(rc), attempt, net_hint(rc));
            else
                status = mcli_fail(err, MCLI_ERR_NETWORK, "%s: HTTP %ld after %d attempts (partial file kept; run again to resume)",
                                   r->url, s, attempt);
            goto fail;
        }
        snprintf(retry_after, sizeof retry_after, "%s", x.retry_after);
        long d = dl_backoff_ms(policy, attempt, rc == CURLE_OK ? retry_after : NULL);
        LOG_WARN("hub: %s: %s; retrying in %ld ms (attempt %d of %d)", r->dest,
                 rc != CURLE_OK ? curl_easy_strerror(rc) : (s == 429 ? "429 too many requests" : "server error"), d,
                 attempt + 1, policy->max_attempts);
        sleep_ms(d);
    }

    /* verifying */
    if (fsync(fd) != 0) {
        status = mcli_fail(err, MCLI_ERR_IO, "cannot flush %s: %s", part, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        status = mcli_fail(err, MCLI_ERR_IO, "cannot stat %s", part);
        goto fail;
    }
    out->size = (int64_t)st.st_size;
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    EVP_DigestFinal_ex(sha256, d, &dlen);
    hex_of(d, dlen, out->sha256);
    if (expect_size >= 0 && out->size != expect_size) {
        unlink_part(part, meta);
        status = mcli_fail(err, MCLI_ERR_FORMAT,
                           "%s: size mismatch: got %lld bytes, the hub said %lld; the download was discarded - run again",
                           r->dest, (long long)out->size, (long long)expect_size);
        goto fail;
    }
    if (ex->sha256[0] && strcmp(out->sha256, ex->sha256) != 0) {
        unlink_part(part, meta);
        status = mcli_fail(err, MCLI_ERR_FORMAT,
                           "%s: checksum mismatch: sha256 %s, expected %s; the corrupted download was deleted - run again",
                           r->dest, out->sha256, ex->sha256);
        goto fail;
    }
    if (sha1) {
        char g[41];
        dlen = 0;
        EVP_DigestFinal_ex(sha1, d, &dlen);
        hex_of(d, dlen, g);
        if (strcasecmp(g, ex->git_sha1) != 0) {
            unlink_part(part, meta);
            status = mcli_fail(err, MCLI_ERR_FORMAT,
                               "%s: checksum mismatch: git blob sha1 %s, expected %s; the corrupted download was deleted - run again",
                               r->dest, g, ex->git_sha1);
            goto fail;
        }
    }
    if (rename(part, r->dest) != 0) {
        status = mcli_fail(err, MCLI_ERR_IO, "cannot move %s into place: %s", part, strerror(errno));
        goto fail;
    }
    unlink(meta);
    close(fd);
    EVP_MD_CTX_free(sha256);
    EVP_MD_CTX_free(sha1);
    return MCLI_OK;
fail:
    close(fd);
    EVP_MD_CTX_free(sha256);
    EVP_MD_CTX_free(sha1);
    return status;
}
