/* tok_internal.h - pieces shared by the tokenizer files (not part of the public contract).
 *
 * tok_list: the growable output of the models (ids + code point offsets), capped at
 * TOK_MAX_TOKENS. Owned by whoever created it; not thread-safe (one per encode call).
 */
#ifndef MCLI_TOKENIZERS_TOK_INTERNAL_H
#define MCLI_TOKENIZERS_TOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "util/status.h"

#define TOK_MAX_TOKENS (1u << 26)      /* tokens one encode may produce */
#define TOK_MAX_TEXT_BYTES (64u << 20) /* bytes of text one encode accepts */

typedef struct {
    int32_t *ids;  /* [n] */
    int32_t *offs; /* [2n] start,end code point offsets into the whole input */
    size_t n, cap;
} tok_list;

static inline void toklist_free(tok_list *l)
{
    free(l->ids);
    free(l->offs);
    l->ids = l->offs = NULL;
    l->n = l->cap = 0;
}

mcli_status toklist_push(tok_list *l, int32_t id, int32_t start, int32_t end, mcli_err *err) MCLI_MUST_USE;

#endif
