/* status.h - the one status type and error report used across mcli.
 *
 * Every fallible function returns mcli_status and, on failure, fills a
 * caller-owned mcli_err with a message that says what failed, on which input,
 * and what to do. mcli_err is a plain value (no heap), so error paths never
 * allocate. Thread-safe: no shared state.
 */
#ifndef MCLI_UTIL_STATUS_H
#define MCLI_UTIL_STATUS_H

#include <stddef.h>

#if defined(__GNUC__)
#define MCLI_MUST_USE __attribute__((warn_unused_result))
#define MCLI_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#else
#define MCLI_MUST_USE
#define MCLI_PRINTF(fmt_idx, arg_idx)
#endif

typedef enum {
    MCLI_OK = 0,
    MCLI_ERR_INVALID_ARG,   /* caller passed something unusable (bad flag, bad field)   -> 400 / exit 2 */
    MCLI_ERR_NOT_FOUND,     /* file, model, route or key does not exist                 -> 404 / exit 1 */
    MCLI_ERR_FORMAT,        /* a file or body is malformed or hostile                   -> 400 / exit 1 */
    MCLI_ERR_UNSUPPORTED,   /* well-formed but not something mcli handles               -> 400/501 / exit 1 */
    MCLI_ERR_TOO_LARGE,     /* over a configured limit (body size, context length)      -> 413 / exit 1 */
    MCLI_ERR_IO,            /* read/write/mmap failed                                   -> 500 / exit 1 */
    MCLI_ERR_NOMEM,         /* allocation failed                                        -> 500 / exit 1 */
    MCLI_ERR_NETWORK,       /* transfer failed after retries                            -> 502 / exit 1 */
    MCLI_ERR_AUTH,          /* 401/403 from upstream or a missing API key               -> 401 / exit 1 */
    MCLI_ERR_BUSY,          /* queue full, lock held                                    -> 503 / exit 1 */
    MCLI_ERR_CANCELLED,     /* the client went away or asked to stop                    -> 499 / exit 130 */
    MCLI_ERR_INTERNAL,      /* a bug: an invariant did not hold                         -> 500 / exit 1 */
    MCLI_STATUS_COUNT
} mcli_status;

#define MCLI_ERR_MSG_MAX 512

typedef struct {
    mcli_status code;
    char msg[MCLI_ERR_MSG_MAX];
} mcli_err;

/* Short stable name of a status ("format", "not_found", ...). Never NULL. */
const char *mcli_status_name(mcli_status s);

/* Fills err (if non-NULL) with code and a printf-style message, returns code.
 * Use as `return mcli_fail(err, MCLI_ERR_FORMAT, "%s: header too large", path);` */
mcli_status mcli_fail(mcli_err *err, mcli_status code, const char *fmt, ...) MCLI_PRINTF(3, 4);

/* Prepends context to an existing message: "loading model X: <old message>". Returns err->code. */
mcli_status mcli_err_prefix(mcli_err *err, const char *fmt, ...) MCLI_PRINTF(2, 3);

/* Resets err to MCLI_OK with an empty message. */
void mcli_err_clear(mcli_err *err);

/* The one mapping from status to HTTP code and to process exit code. */
int mcli_status_http(mcli_status s);
int mcli_status_exit(mcli_status s);

#endif
