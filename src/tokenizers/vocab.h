/* vocab.h - a token vocabulary: id -> string and string -> id (open-addressing hash table).
 *
 * Built once at load (vocab_new, vocab_set for each entry, vocab_finish), then read-only, so
 * lookups are thread-safe without locks. The vocab owns copies of all strings.
 *
 * Duplicates follow transformers' Python tokenizers: when one string is given two ids, the
 * string maps to the LAST id set (vocab.txt: the last line wins), and the earlier id becomes a
 * "shadowed" id with no string (Python's ids_to_tokens has no entry for it; it decodes as the
 * unknown token). When one id is given two strings (vocab.json), the last string is the id's
 * string for decoding, and both strings still encode to that id.
 */
#ifndef MCLI_TOKENIZERS_VOCAB_H
#define MCLI_TOKENIZERS_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

#define VOCAB_MAX_ID (1 << 24)     /* refuse ids above 16M: no real vocabulary is that big */
#define VOCAB_MAX_TOKEN_BYTES 1024 /* refuse longer token strings */

typedef struct tok_vocab tok_vocab;

mcli_status vocab_new(tok_vocab **out, mcli_err *err) MCLI_MUST_USE;
void vocab_free(tok_vocab *v);

/* Maps s[0..len) <-> id. Replaces an existing mapping of s (the old id becomes shadowed if no
 * other string names it). *replaced (if non-NULL) tells whether s was already present. */
mcli_status vocab_set(tok_vocab *v, const char *s, size_t len, int32_t id, bool *replaced,
                      mcli_err *err) MCLI_MUST_USE;

/* Id of s[0..len), or -1. */
int32_t vocab_find(const tok_vocab *v, const char *s, size_t len);
/* String of id (NUL-terminated) and its byte length, or NULL for an id out of range or
 * without a string. */
const char *vocab_str(const tok_vocab *v, int32_t id, size_t *len);
/* One more than the largest id set (the id range a model's embedding must cover). */
size_t vocab_id_range(const tok_vocab *v);
/* Number of distinct strings. */
size_t vocab_count(const tok_vocab *v);
/* Longest string, in bytes. */
size_t vocab_max_bytes(const tok_vocab *v);

#endif
