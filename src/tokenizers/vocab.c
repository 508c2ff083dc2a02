/* vocab.c - string <-> id table for the tokenizers (see vocab.h). */
#include "tokenizers/vocab.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *s; /* owned, NUL-terminated */
    uint32_t len;
    int32_t id;
} vocab_entry;

struct tok_vocab {
    vocab_entry *entries; /* [n_entries] in insertion order */
    size_t n_entries, cap_entries;
    int32_t *slots; /* [n_slots] entry index or -1; n_slots is a power of two */
    size_t n_slots;
    int32_t *id_entry; /* [id_cap] entry index naming the id, or -1 */
    size_t id_cap, id_range;
    size_t max_bytes;
};

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return h;
}

mcli_status vocab_new(tok_vocab **out, mcli_err *err)
{
    *out = NULL;
    tok_vocab *v = calloc(1, sizeof *v);
    if (!v)
        return mcli_fail(err, MCLI_ERR_NOMEM, "vocabulary: out of memory");
    v->n_slots = 1024;
    v->slots = malloc(v->n_slots * sizeof *v->slots);
    if (!v->slots) {
        free(v);
        return mcli_fail(err, MCLI_ERR_NOMEM, "vocabulary: out of memory");
    }
    memset(v->slots, 0xff, v->n_slots * sizeof *v->slots);
    *out = v;
    return MCLI_OK;
}

void vocab_free(tok_vocab *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n_entries; i++)
        free(v->entries[i].s);
    free(v->entries);
    free(v->slots);
    free(v->id_entry);
    free(v);
}

static size_t find_slot(const tok_vocab *v, const char *s, size_t len)
{
    size_t mask = v->n_slots - 1;
    size_t i = (size_t)hash_bytes(s, len) & mask;
    for (;;) {
        int32_t e = v->slots[i];
        if (e < 0)
            return i;
        const vocab_entry *en = &v->entries[e];
        if (en->len == len && memcmp(en->s, s, len) == 0)
            return i;
        i = (i + 1) & mask;
    }
}

static bool grow_slots(tok_vocab *v)
{
    size_t n = v->n_slots * 2;
    int32_t *slots = malloc(n * sizeof *slots);
    if (!slots)
        return false;
    memset(slots, 0xff, n * sizeof *slots);
    free(v->slots);
    v->slots = slots;
    v->n_slots = n;
    for (size_t e = 0; e < v->n_entries; e++) {
        size_t i = find_slot(v, v->entries[e].s, v->entries[e].len);
        v->slots[i] = (int32_t)e;
    }
    return true;
}

static bool grow_ids(tok_vocab *v, size_t need)
{
    size_t n = v->id_cap ? v->id_cap : 1024;
    while (n < need)
        n *= 2;
    int32_t *p = realloc(v->id_entry, n * sizeof *p);
    if (!p)
        return false;
    for (size_t i = v->id_cap; i < n; i++)
        p[i] = -1;
    v->id_entry = p;
    v->id_cap = n;
    return true;
}

mcli_status vocab_set(tok_vocab *v, const char *s, size_t len, int32_t id, bool *replaced, mcli_err *err)
{
    if (replaced)
        *replaced = false;
    if (id < 0 || id >= VOCAB_MAX_ID)
        return mcli_fail(err, MCLI_ERR_FORMAT, "token id %ld is out of range (0..%d)", (long)id,
                         VOCAB_MAX_ID - 1);
    if (len > VOCAB_MAX_TOKEN_BYTES)
        return mcli_fail(err, MCLI_ERR_FORMAT, "token string of %zu bytes (id %ld) is over the %d-byte limit",
                         len, (long)id, VOCAB_MAX_TOKEN_BYTES);
    if ((size_t)id >= v->id_cap && !grow_ids(v, (size_t)id + 1))
        return mcli_fail(err, MCLI_ERR_NOMEM, "vocabulary: out of memory");
    if ((v->n_entries + 1) * 2 > v->n_slots && !grow_slots(v))
        return mcli_fail(err, MCLI_ERR_NOMEM, "vocabulary: out of memory");

    size_t slot = find_slot(v, s, len);
    int32_t e = v->slots[slot];
    if (e >= 0) {
        /* The string is known: it now names id; its old id loses its string unless the
         * old id was named by another (later) entry. */
        vocab_entry *en = &v->entries[e];
        if (replaced)
            *replaced = true;
        if (v->id_entry[en->id] == e)
            v->id_entry[en->id] = -1;
        en->id = id;
        v->id_entry[id] = e;
    } else {
        if (v->n_entries == v->cap_entries) {
            size_t nc = v->cap_entries ? v->cap_entries * 2 : 1024;
            vocab_entry *p = realloc(v->entries, nc * sizeof *p);
            if (!p)
                return mcli_fail(err, MCLI_ERR_NOMEM, "vocabulary: out of memory");
            v->entries = p;
            v->cap_entries = nc;
        }
        char *copy = malloc(len + 1);
        if (!copy)
            return mcli_fail(err, MCLI_ERR_NOMEM, "vocabulary: out of memory");
        memcpy(copy, s, len);
        copy[len] = '\0';
        e = (int32_t)v->n_entries++;
        vocab_entry *en = &v->entries[e];
        en->s = copy;
        en->len = (uint32_t)len;
        en->id = id;
        v->slots[slot] = e;
        v->id_entry[id] = e;
    }
    if ((size_t)id + 1 > v->id_range)
        v->id_range = (size_t)id + 1;
    if (len > v->max_bytes)
        v->max_bytes = len;
    return MCLI_OK;
}

int32_t vocab_find(const tok_vocab *v, const char *s, size_t len)
{
    if (len > v->max_bytes)
        return -1;
    int32_t e = v->slots[find_slot(v, s, len)];
    return e < 0 ? -1 : v->entries[e].id;
}

const char *vocab_str(const tok_vocab *v, int32_t id, size_t *len)
{
    if (id < 0 || (size_t)id >= v->id_range || v->id_entry[id] < 0)
        return NULL;
    const vocab_entry *en = &v->entries[v->id_entry[id]];
    if (len)
        *len = en->len;
    return en->s;
}

size_t vocab_id_range(const tok_vocab *v)
{
    return v->id_range;
}

size_t vocab_count(const tok_vocab *v)
{
    return v->n_entries;
}

size_t vocab_max_bytes(const tok_vocab *v)
{
    return v->max_bytes;
}
