#include "util/buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

mcli_status buf_append(char **data, size_t *len, size_t *cap, size_t max, const void *src, size_t n)
{
    if (n > SIZE_MAX / 2 - *len || (max && *len + n > max))
        return MCLI_ERR_TOO_LARGE;
    size_t need = *len + n + 1;
    if (need > *cap || !*data) {
        size_t grown = *cap ? *cap : 256;
        while (grown < need)
            grown *= 2;
        if (max && grown > max + 1)
            grown = max + 1;
        char *p = realloc(*data, grown);
        if (!p)
            return MCLI_ERR_NOMEM;
        *data = p;
        *cap = grown;
    }
    if (n)
        memcpy(*data + *len, src, n);
    *len += n;
    (*data)[*len] = '\0';
    return MCLI_OK;
}
