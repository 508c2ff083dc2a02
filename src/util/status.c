#include "util/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const status_names[MCLI_STATUS_COUNT] = {
    [MCLI_OK] = "ok",
    [MCLI_ERR_INVALID_ARG] = "invalid_argument",
    [MCLI_ERR_NOT_FOUND] = "not_found",
    [MCLI_ERR_FORMAT] = "bad_format",
    [MCLI_ERR_UNSUPPORTED] = "unsupported",
    [MCLI_ERR_TOO_LARGE] = "too_large",
    [MCLI_ERR_IO] = "io_error",
    [MCLI_ERR_NOMEM] = "out_of_memory",
    [MCLI_ERR_NETWORK] = "network_error",
    [MCLI_ERR_AUTH] = "unauthorized",
    [MCLI_ERR_BUSY] = "busy",
    [MCLI_ERR_CANCELLED] = "cancelled",
    [MCLI_ERR_INTERNAL] = "internal_error",
};

const char *mcli_status_name(mcli_status s)
{
    if ((unsigned)s >= MCLI_STATUS_COUNT || !status_names[s])
        return "unknown";
    return status_names[s];
}

mcli_status mcli_fail(mcli_err *err, mcli_status code, const char *fmt, ...)
{
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

mcli_status mcli_err_prefix(mcli_err *err, const char *fmt, ...)
{
    if (!err)
        return MCLI_ERR_INTERNAL;
    char prefix[MCLI_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int plen = vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    if (plen < 0)
        return err->code;
    /* Room for "prefix: " then as much of the old message as fits. */
    size_t pre = (size_t)plen < sizeof prefix ? (size_t)plen : sizeof prefix - 1;
    if (pre + 2 >= sizeof err->msg)
        pre = sizeof err->msg - 3;
    size_t old_len = strnlen(err->msg, sizeof err->msg - 1);
    size_t keep = sizeof err->msg - 1 - pre - 2;
    if (old_len > keep)
        old_len = keep;
    memmove(err->msg + pre + 2, err->msg, old_len);
    memcpy(err->msg, prefix, pre);
    err->msg[pre] = ':';
    err->msg[pre + 1] = ' ';
    err->msg[pre + 2 + old_len] = '\0';
    return err->code;
}

void mcli_err_clear(mcli_err *err)
{
    if (err) {
        err->code = MCLI_OK;
        err->msg[0] = '\0';
    }
}

int mcli_status_http(mcli_status s)
{
    switch (s) {
    case MCLI_OK: return 200;
    case MCLI_ERR_INVALID_ARG: return 400;
    case MCLI_ERR_FORMAT: return 400;
    case MCLI_ERR_UNSUPPORTED: return 400;
    case MCLI_ERR_NOT_FOUND: return 404;
    case MCLI_ERR_TOO_LARGE: return 413;
    case MCLI_ERR_AUTH: return 401;
    case MCLI_ERR_BUSY: return 503;
    case MCLI_ERR_CANCELLED: return 499;
    case MCLI_ERR_NETWORK: return 502;
    default: return 500;
    }
}

int mcli_status_exit(mcli_status s)
{
    switch (s) {
    case MCLI_OK: return 0;
    case MCLI_ERR_INVALID_ARG: return 2;
    case MCLI_ERR_CANCELLED: return 130;
    default: return 1;
    }
}
