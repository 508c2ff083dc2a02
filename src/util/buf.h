/* buf.h - appending bytes to a NUL-terminated, capped, growable buffer.
 * The buffer is three caller fields (data, len, cap) so that structs keep their own layout; the
 * caller owns data (free()). Not thread-safe: one owner at a time. */
#ifndef MCLI_UTIL_BUF_H
#define MCLI_UTIL_BUF_H

#include <stddef.h>

#include "util/status.h"

/* Appends src[0..n) to *data (length *len, capacity *cap), keeping a NUL after the last byte.
 * Capacity doubles from 256 bytes. max > 0 caps *len: an append that would pass it returns
 * MCLI_ERR_TOO_LARGE; allocation failure returns MCLI_ERR_NOMEM; in both cases the buffer is
 * unchanged. Does not fill an mcli_err: the caller knows what the bytes were. */
mcli_status buf_append(char **data, size_t *len, size_t *cap, size_t max, const void *src, size_t n) MCLI_MUST_USE;

#endif
