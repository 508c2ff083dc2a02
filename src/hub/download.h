/* download.h - one file from a Hugging Face-style hub over HTTP(S), resumable and verified.
 *
 *   queued --dl_head()--> resolved --dl_fetch()--> fetching --(eof)--> verifying --ok--> in place
 *                            |                       |   ^                  |
 *                            |                       |   +-- retry/resume --+ (transient error: keep FILE.part)
 *                            +-> failed (401/403/404: no retry)             +-> failed (size/sha mismatch:
 *                                                                                FILE.part deleted)
 * dl_fetch() writes DEST.part and DEST.part.meta (the validator the part was fetched with and the
 * expected content id). After an interruption or a crash, the next dl_fetch() of the same file
 * sends `Range: bytes=N-` + `If-Range: <validator>` and appends; a server answering 200 instead
 * restarts from zero. The whole file is hashed (SHA-256, plus the git blob SHA-1 for non-LFS files,
 * whose ETag is that SHA-1) and compared against the hub's X-Linked-Etag / ETag and size before an
 * atomic rename() onto DEST. Nothing but DEST.part(.meta) is ever written before verification.
 *
 * Redirects are followed by hand (at most 10): the Authorization header is only sent to the origin
 * (scheme, host, port) of the first URL, never to a CDN on another host; only http/https.
 *
 * Retries: timeouts, resets, connection failures, 5xx and 429, with exponential backoff from
 * policy.base_delay_ms (doubling, capped at policy.max_delay_ms) or Retry-After when the server
 * sends one (also capped). 401/403/404 are never retried.
 *
 * Thread-safety: every call uses its own curl easy handle; hub_global_init() must have run
 * (dl_* call it through pthread_once). Ownership: see each function.
 */
#ifndef MCLI_HUB_DOWNLOAD_H
#define MCLI_HUB_DOWNLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

typedef struct {
    int max_attempts;        /* per file; default 6, env MCLI_RETRY_MAX */
    long base_delay_ms;      /* first backoff; default 1000, env MCLI_RETRY_BASE_MS */
    long max_delay_ms;       /* cap for backoff and Retry-After; default 30000, env MCLI_RETRY_MAX_MS */
    long connect_timeout_s;  /* default 15 */
    long stall_timeout_s;    /* < 1 byte/s for this long = timeout; default 30, env MCLI_STALL_TIMEOUT_S */
} dl_policy;

/* Defaults, then the environment overrides above. */
void dl_policy_default(dl_policy *p);

/* What the hub says about one file (from a HEAD). */
typedef struct {
    int http_status;
    int64_t size;            /* X-Linked-Size, else Content-Length; -1 unknown */
    char etag[96];           /* X-Linked-Etag, else ETag; quotes and W/ removed */
    char sha256[65];         /* etag if it is 64 hex digits (an LFS file), else "" */
    char git_sha1[41];       /* etag if it is 40 hex digits (a git blob), else "" */
    char commit[41];         /* X-Repo-Commit, "" if absent */
    bool lfs;
} dl_meta;

/* Called while bytes arrive: done/total of this file (total -1 if unknown). Return non-zero to cancel. */
typedef int (*dl_progress_fn)(void *user, int64_t done, int64_t total);

/* HEAD url: follows same-origin redirects (renamed repos), stops at a redirect to another host (the
 * LFS/CDN one, whose headers carry X-Linked-*). NOT_FOUND on 404, AUTH on 401/403 (messages say what
 * to do), NETWORK after retries. token may be NULL. */
mcli_status dl_head(const char *url, const char *token, const dl_policy *policy, dl_meta *out,
                    mcli_err *err) MCLI_MUST_USE;

/* GET url into memory, at most cap bytes (TOO_LARGE beyond). *body is NUL-terminated, caller frees. */
mcli_status dl_get_small(const char *url, const char *token, const dl_policy *policy, size_t cap, char **body,
                         size_t *len, mcli_err *err) MCLI_MUST_USE;

typedef struct {
    const char *url;         /* the hub URL .../resolve/<rev>/<file> */
    const char *token;       /* may be NULL */
    const char *dest;        /* final path; DEST.part and DEST.part.meta are used on the way */
    const dl_meta *expect;   /* from dl_head(): size and checksum to verify */
    const dl_policy *policy; /* NULL = dl_policy_default() */
    dl_progress_fn progress; /* may be NULL */
    void *user;
} dl_request;

typedef struct {
    char sha256[65];         /* of the file now in place */
    int64_t size;
    int64_t resumed_from;    /* bytes reused from a previous DEST.part (0 = from scratch) */
    int attempts;
} dl_result;

/* Fetches, verifies and renames into place (see the diagram). FORMAT on a checksum or size mismatch
 * (the part is deleted), CANCELLED if progress returned non-zero (the part is kept for a resume). */
mcli_status dl_fetch(const dl_request *req, dl_result *out, mcli_err *err) MCLI_MUST_USE;

/* SHA-256 of a file as 64 lowercase hex digits. */
mcli_status dl_sha256_file(const char *path, char out[65], int64_t *size, mcli_err *err) MCLI_MUST_USE;

/* Percent-encodes s for a URL path (keeps A-Za-z0-9 . _ - ~ and, if keep_slash, '/'). */
bool dl_url_encode(const char *s, bool keep_slash, char *out, size_t cap);

/* ---- header parsing helpers (exposed for table tests) ---- */

/* Strict decimal (Content-Length, X-Linked-Size): digits only, no sign or spaces, fits int64. */
bool dl_parse_size(const char *s, int64_t *out);

/* START of "bytes START-END/TOTAL" (Content-Range), or -1 if malformed. */
int64_t dl_content_range_start(const char *v);

/* Drops a W/ prefix and surrounding quotes from an ETag value. */
void dl_norm_etag(const char *in, char *out, size_t cap);

/* Delay before retry number `attempt` (1-based): base * 2^(attempt-1), or Retry-After seconds when it
 * is a plain number; both capped at max_delay_ms. */
long dl_backoff_ms(const dl_policy *p, int attempt, const char *retry_after);

#endif
