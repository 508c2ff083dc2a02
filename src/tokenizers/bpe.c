/* bpe.c - GPT-2 byte-level BPE (see bpe.h). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizers/bpe.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizers/unicode.h"
#include "util/log.h"

#define BPE_CACHE_SLOTS 8192 /* power of two */
#define BPE_CACHE_STRIPES 64
#define BPE_CACHE_KEY_MAX 40
#define BPE_CACHE_IDS_MAX 16
#define BPE_MAX_MERGES (1u << 24)

/* Unicode White_Space, the set Python's `regex` module matches with \s. */
#define WS                                                                                                   \
    "\\t\\n\\x{0B}\\f\\r "                                                                                   \
    "\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])|[" WS "]+";

typedef struct {
    uint64_t key; /* left << 32 | right; 0 marks an empty slot (pair 0,0 is stored in zero_pair) */
    uint32_t rank;
    int32_t merged;
} merge_slot;

typedef struct {
    uint8_t klen; /* 0 = empty */
    uint8_t nids;
    char key[BPE_CACHE_KEY_MAX];
    int32_t ids[BPE_CACHE_IDS_MAX];
    uint16_t lens[BPE_CACHE_IDS_MAX]; /* bytes each token covers */
} cache_slot;

struct bpe {
    const tok_vocab *vocab; /* borrowed */
    int32_t byte_id[256];   /* token id of each byte's stand-in character */
    merge_slot *merges;     /* [n_slots] */
    size_t n_slots, n_merges, n_skipped;
    bool has_zero_pair;
    merge_slot zero_pair;
    const pcre2_code *re; /* shared by all tokenizers (compiled once) */
    cache_slot *cache;    /* [BPE_CACHE_SLOTS] */
    pthread_mutex_t locks[BPE_CACHE_STRIPES];
    bool locks_ready;
};

/* --- bytes_to_unicode ---------------------------------------------------------------- */

/* Bytes 33..126, 161..172, 174..255 stand for themselves; the other 68 map, in byte order,
 * to U+0100..U+0143. */
static bool byte_is_printable(unsigned b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

uint32_t bpe_byte_char(uint8_t b)
{
    if (byte_is_printable(b))
        return b;
    if (b <= 32)
        return 256u + b;
    if (b >= 127 && b <= 160)
        return 256u + 33u + (b - 127u);
    return 256u + 67u; /* 173, the soft hyphen */
}

static int char_byte(uint32_t cp)
{
    if (cp < 256)
        return byte_is_printable(cp) ? (int)cp : -1;
    if (cp < 256 + 33)
        return (int)(cp - 256);
    if (cp < 256 + 67)
        return (int)(cp - 256 - 33 + 127);
    if (cp == 256 + 67)
        return 173;
    return -1;
}

long bpe_token_bytes(const char *tok, size_t len, uint8_t *out)
{
    size_t i = 0;
    long n = 0;
    while (i < len) {
        uint32_t cp;
        size_t k = uni_utf8_decode((const uint8_t *)tok + i, len - i, &cp);
        if (k == 0)
            return -1;
        int b = char_byte(cp);
        if (b < 0)
            return -1;
        out[n++] = (uint8_t)b;
        i += k;
    }
    return n;
}

/* --- merge table --------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static merge_slot *merge_find_slot(merge_slot *slots, size_t n_slots, uint64_t key)
{
    size_t mask = n_slots - 1;
    size_t i = (size_t)mix64(key) & mask;
    while (slots[i].key != 0 && slots[i].key != key)
        i = (i + 1) & mask;
    return &slots[i];
}

static const merge_slot *merge_lookup(const bpe *b, int32_t left, int32_t right)
{
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    if (key == 0)
        return b->has_zero_pair ? &b->zero_pair : NULL;
    const merge_slot *s = merge_find_slot(b->merges, b->n_slots, key);
    return s->key ? s : NULL;
}

static bool merges_grow(bpe *b)
{
    size_t n = b->n_slots ? b->n_slots * 2 : 4096;
    merge_slot *slots = calloc(n, sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < b->n_slots; i++)
        if (b->merges[i].key)
            *merge_find_slot(slots, n, b->merges[i].key) = b->merges[i];
    free(b->merges);
    b->merges = slots;
    b->n_slots = n;
    return true;
}

mcli_status bpe_add_merge(bpe *b, const char *left, size_t llen, const char *right, size_t rlen,
                          uint32_t rank, bool *skipped, mcli_err *err)
{
    *skipped = false;
    if (b->n_merges >= BPE_MAX_MERGES)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "more than %u merges", BPE_MAX_MERGES);
    int32_t l = vocab_find(b->vocab, left, llen);
    int32_t r = vocab_find(b->vocab, right, rlen);
    int32_t m = -1;
    if (l >= 0 && r >= 0 && llen + rlen <= VOCAB_MAX_TOKEN_BYTES) {
        char buf[VOCAB_MAX_TOKEN_BYTES];
        memcpy(buf, left, llen);
        memcpy(buf + llen, right, rlen);
        m = vocab_find(b->vocab, buf, llen + rlen);
    }
    if (m < 0) {
        b->n_skipped++;
        *skipped = true;
        return MCLI_OK;
    }
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    if (key == 0) {
        if (!b->has_zero_pair)
            b->n_merges++;
        b->has_zero_pair = true;
        b->zero_pair = (merge_slot){0, rank, m};
        return MCLI_OK;
    }
    if ((b->n_merges + 1) * 2 > b->n_slots && !merges_grow(b))
        return mcli_fail(err, MCLI_ERR_NOMEM, "bpe: out of memory for merges");
    merge_slot *s = merge_find_slot(b->merges, b->n_slots, key);
    if (!s->key)
        b->n_merges++;
    *s = (merge_slot){key, rank, m};
    return MCLI_OK;
}

size_t bpe_merge_count(const bpe *b)
{
    return b->n_merges;
}

size_t bpe_skipped_merges(const bpe *b)
{
    return b->n_skipped;
}

static bool is_space_byte(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

mcli_status bpe_load_merges_txt(bpe *b, const char *data, size_t len, const char *path, mcli_err *err)
{
    size_t pos = 0, line_no = 0;
    uint32_t rank = 0;
    size_t pending_blank = 0; /* blank lines seen; an error only if a merge follows */
    while (pos < len) {
        size_t end = pos;
        while (end < len && data[end] != '\n')
            end++;
        size_t next = end < len ? end + 1 : end;
        line_no++;
        const char *line = data + pos;
        size_t ll = end - pos;
        if (ll && line[ll - 1] == '\r')
            ll--;
        pos = next;
        if (line_no == 1 && ll >= 8 && memcmp(line, "#version", 8) == 0)
            continue;
        /* split on whitespace into exactly two parts */
        size_t i = 0;
        while (i < ll && is_space_byte(line[i]))
            i++;
        if (i == ll) {
            pending_blank = line_no;
            continue;
        }
        if (pending_blank)
            return mcli_fail(err, MCLI_ERR_FORMAT,
                             "%s: line %zu is empty; merges.txt must have one \"left right\" pair per line",
                             path, pending_blank);
        size_t a0 = i;
        while (i < ll && !is_space_byte(line[i]))
            i++;
        size_t a1 = i;
        while (i < ll && is_space_byte(line[i]))
            i++;
        size_t b0 = i;
        while (i < ll && !is_space_byte(line[i]))
            i++;
        size_t b1 = i;
        while (i < ll && is_space_byte(line[i]))
            i++;
        if (b0 == b1 || i != ll)
            return mcli_fail(err, MCLI_ERR_FORMAT, "%s: line %zu is not a \"left right\" pair (%s)", path,
                             line_no, b0 == b1 ? "one part" : "more than two parts");
        if (!uni_utf8_valid((const uint8_t *)line, ll, NULL))
            return mcli_fail(err, MCLI_ERR_FORMAT, "%s: line %zu is not valid UTF-8", path, line_no);
        bool skipped;
        mcli_status st = bpe_add_merge(b, line + a0, a1 - a0, line + b0, b1 - b0, rank++, &skipped, err);
        if (st != MCLI_OK)
            return mcli_err_prefix(err, "%s line %zu", path, line_no);
    }
    if (b->n_skipped)
        LOG_WARN("%s: %zu merges name tokens missing from the vocabulary; ignored", path, b->n_skipped);
    return MCLI_OK;
}

/* --- create / free ------------------------------------------------------------------- */

/* The pattern is compiled (and JIT-compiled when PCRE2 has a JIT) once per process and shared:
 * a compiled pattern is read-only during matching, so concurrent use is safe. It is never freed. */
static pthread_once_t pattern_once = PTHREAD_ONCE_INIT;
static pcre2_code *gpt2_re;
static int pattern_error;
static PCRE2_SIZE pattern_error_at;

static void compile_pattern(void)
{
    gpt2_re = pcre2_compile((PCRE2_SPTR)gpt2_pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                            &pattern_error, &pattern_error_at, NULL);
    if (gpt2_re)
        (void)pcre2_jit_compile(gpt2_re, PCRE2_JIT_COMPLETE); /* optional: interpreted matching otherwise */
}

mcli_status bpe_new(const tok_vocab *vocab, bpe **out, mcli_err *err)
{
    *out = NULL;
    bpe *b = calloc(1, sizeof *b);
    if (!b)
        return mcli_fail(err, MCLI_ERR_NOMEM, "bpe: out of memory");
    b->vocab = vocab;
    mcli_status st = MCLI_OK;
    for (unsigned i = 0; i < 256; i++) {
        uint8_t u[4];
        size_t n = uni_utf8_encode(bpe_byte_char((uint8_t)i), u);
        b->byte_id[i] = vocab_find(vocab, (const char *)u, n);
        if (b->byte_id[i] < 0) {
            st = mcli_fail(
                err, MCLI_ERR_FORMAT,
                "the vocabulary has no token for byte 0x%02X (\"%.*s\"); not a byte-level BPE vocabulary", i,
                (int)n, (const char *)u);
            goto fail;
        }
    }
    if (!merges_grow(b))
        goto nomem;
    b->cache = calloc(BPE_CACHE_SLOTS, sizeof *b->cache);
    if (!b->cache)
        goto nomem;
    for (int i = 0; i < BPE_CACHE_STRIPES; i++) {
        if (pthread_mutex_init(&b->locks[i], NULL) != 0) {
            for (int k = 0; k < i; k++)
                pthread_mutex_destroy(&b->locks[k]);
            goto nomem;
        }
    }
    b->locks_ready = true;

    pthread_once(&pattern_once, compile_pattern);
    if (!gpt2_re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(pattern_error, msg, sizeof msg);
        st = mcli_fail(err, MCLI_ERR_INTERNAL, "bpe: compiling the GPT-2 pattern failed at %zu: %s",
                       (size_t)pattern_error_at, (const char *)msg);
        goto fail;
    }
    b->re = gpt2_re;
    *out = b;
    return MCLI_OK;
nomem:
    st = mcli_fail(err, MCLI_ERR_NOMEM, "bpe: out of memory");
fail:
    bpe_free(b);
    return st;
}

void bpe_free(bpe *b)
{
    if (!b)
        return;
    if (b->locks_ready)
        for (int i = 0; i < BPE_CACHE_STRIPES; i++)
            pthread_mutex_destroy(&b->locks[i]);
    free(b->cache);
    free(b->merges);
    free(b);
}

/* --- merging one word ---------------------------------------------------------------- */

typedef struct {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
    uint32_t start, len;
    bool alive;
} symbol;

typedef struct {
    uint32_t rank, pos;
    int32_t left, right, merged;
} cand;

typedef struct {
    symbol *sym;
    size_t sym_cap;
    cand *heap;
    size_t heap_n, heap_cap;
} bpe_scratch;

static bool cand_less(const cand *a, const cand *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static bool heap_push(bpe_scratch *s, cand c)
{
    if (s->heap_n == s->heap_cap) {
        size_t nc = s->heap_cap ? s->heap_cap * 2 : 64;
        cand *p = realloc(s->heap, nc * sizeof *p);
        if (!p)
            return false;
        s->heap = p;
        s->heap_cap = nc;
    }
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_less(&c, &s->heap[parent]))
            break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = c;
    return true;
}

static cand heap_pop(bpe_scratch *s)
{
    cand top = s->heap[0];
    cand last = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand *best = &last;
        if (l < n && cand_less(&s->heap[l], best))
            m = l, best = &s->heap[l];
        if (r < n && cand_less(&s->heap[r], best))
            m = r;
        if (m == i)
            break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (n)
        s->heap[i] = last;
    return top;
}

static bool push_pair(const bpe *b, bpe_scratch *s, int32_t i)
{
    int32_t j = s->sym[i].next;
    if (j < 0)
        return true;
    const merge_slot *m = merge_lookup(b, s->sym[i].id, s->sym[j].id);
    if (!m)
        return true;
    return heap_push(s, (cand){m->rank, (uint32_t)i, s->sym[i].id, s->sym[j].id, m->merged});
}

/* Merges the bytes w[0..n) into symbols; on return s->sym[0] starts the linked list. */
static mcli_status merge_word(const bpe *b, bpe_scratch *s, const uint8_t *w, size_t n, mcli_err *err)
{
    if (n > s->sym_cap) {
        size_t nc = s->sym_cap ? s->sym_cap : 64;
        while (nc < n)
            nc *= 2;
        symbol *p = realloc(s->sym, nc * sizeof *p);
        if (!p)
            return mcli_fail(err, MCLI_ERR_NOMEM, "bpe: out of memory");
        s->sym = p;
        s->sym_cap = nc;
    }
    for (size_t i = 0; i < n; i++)
        s->sym[i] =
            (symbol){b->byte_id[w[i]], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1, (uint32_t)i, 1, true};
    s->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (!push_pair(b, s, (int32_t)i))
            return mcli_fail(err, MCLI_ERR_NOMEM, "bpe: out of memory");
    while (s->heap_n) {
        cand c = heap_pop(s);
        symbol *a = &s->sym[c.pos];
        if (!a->alive || a->id != c.left || a->next < 0)
            continue;
        symbol *nb = &s->sym[a->next];
        if (nb->id != c.right)
            continue;
        a->id = c.merged;
        a->len += nb->len;
        nb->alive = false;
        a->next = nb->next;
        if (a->next >= 0)
            s->sym[a->next].prev = (int32_t)c.pos;
        if ((a->prev >= 0 && !push_pair(b, s, a->prev)) || !push_pair(b, s, (int32_t)c.pos))
            return mcli_fail(err, MCLI_ERR_NOMEM, "bpe: out of memory");
    }
    return MCLI_OK;
}

static size_t cache_index(const uint8_t *w, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= w[i];
        h *= 1099511628211ULL;
    }
    return (size_t)mix64(h) & (BPE_CACHE_SLOTS - 1);
}

/* Encodes one pre-token w[0..n) at byte offset at of text. */
static mcli_status encode_word(const bpe *b, bpe_scratch *s, const uint8_t *w, size_t n, size_t at,
                               const int32_t *cp_of_byte, tok_list *out, mcli_err *err)
{
    mcli_status st;
    size_t slot = 0;
    bpe *mut = (bpe *)b; /* only the cache and its locks are written */
    if (n <= BPE_CACHE_KEY_MAX) {
        slot = cache_index(w, n);
        cache_slot hit;
        hit.klen = 0;
        pthread_mutex_t *lock = &mut->locks[slot % BPE_CACHE_STRIPES];
        pthread_mutex_lock(lock);
        const cache_slot *c = &b->cache[slot];
        if (c->klen == n && memcmp(c->key, w, n) == 0)
            hit = *c;
        pthread_mutex_unlock(lock);
        if (hit.klen) {
            size_t off = at;
            for (size_t i = 0; i < hit.nids; i++) {
                st = toklist_push(out, hit.ids[i], cp_of_byte[off], cp_of_byte[off + hit.lens[i] - 1] + 1,
                                  err);
                if (st != MCLI_OK)
                    return st;
                off += hit.lens[i];
            }
            return MCLI_OK;
        }
    }
    if ((st = merge_word(b, s, w, n, err)) != MCLI_OK)
        return st;
    cache_slot fresh;
    fresh.klen = 0;
    fresh.nids = 0;
    bool cacheable = n <= BPE_CACHE_KEY_MAX;
    for (int32_t i = 0; i >= 0; i = s->sym[i].next) {
        const symbol *sy = &s->sym[i];
        size_t first = at + sy->start, last = first + sy->len - 1;
        if ((st = toklist_push(out, sy->id, cp_of_byte[first], cp_of_byte[last] + 1, err)) != MCLI_OK)
            return st;
        if (cacheable) {
            if (fresh.nids == BPE_CACHE_IDS_MAX) {
                cacheable = false;
            } else {
                fresh.ids[fresh.nids] = sy->id;
                fresh.lens[fresh.nids] = (uint16_t)sy->len;
                fresh.nids++;
            }
        }
    }
    if (cacheable) {
        fresh.klen = (uint8_t)n;
        memcpy(fresh.key, w, n);
        pthread_mutex_t *lock = &mut->locks[slot % BPE_CACHE_STRIPES];
        pthread_mutex_lock(lock);
        mut->cache[slot] = fresh;
        pthread_mutex_unlock(lock);
    }
    return MCLI_OK;
}

mcli_status bpe_encode(const bpe *b, const char *text, size_t from, size_t to, const int32_t *cp_of_byte,
                       tok_list *out, mcli_err *err)
{
    if (from >= to)
        return MCLI_OK;
    bpe_scratch s;
    memset(&s, 0, sizeof s);
    mcli_status st = MCLI_OK;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(b->re, NULL);
    if (!md) {
        st = mcli_fail(err, MCLI_ERR_NOMEM, "bpe: out of memory");
        goto done;
    }
    PCRE2_SPTR subject = (PCRE2_SPTR)text + from;
    PCRE2_SIZE len = to - from, pos = 0;
    while (pos < len) {
        int rc = pcre2_match(b->re, subject, len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            break; /* cannot happen: every character matches some alternative */
        if (rc < 0) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(rc, msg, sizeof msg);
            st = mcli_fail(err, MCLI_ERR_INTERNAL, "bpe: pre-tokenizer match failed at byte %zu: %s",
                           from + (size_t)pos, (const char *)msg);
            goto done;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] <= ov[0] || ov[0] < pos) { /* empty match: impossible with this pattern */
            st = mcli_fail(err, MCLI_ERR_INTERNAL, "bpe: pre-tokenizer made no progress at byte %zu",
                           from + (size_t)pos);
            goto done;
        }
        if ((st = encode_word(b, &s, subject + ov[0], ov[1] - ov[0], from + ov[0], cp_of_byte, out, err)) !=
            MCLI_OK)
            goto done;
        pos = ov[1];
    }
done:
    pcre2_match_data_free(md);
    free(s.sym);
    free(s.heap);
    return st;
}
