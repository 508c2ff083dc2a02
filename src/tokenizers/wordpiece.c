/* wordpiece.c - BERT basic tokenizer + WordPiece (see wordpiece.h for the rules and order).
 *
 * Data flow for one chunk of text (no allocation per character; scratch buffers grow by
 * doubling and live for one wordpiece_encode call):
 *
 *   code points --clean/lower/CJK/whitespace--> word (cp, orig span)
 *        --NFD+drop Mn | NFC--> normalized word --punctuation--> pieces --greedy match--> ids
 */
#include "tokenizers/wordpiece.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizers/unicode.h"

struct wordpiece {
    const tok_vocab *vocab;  /* borrowed */
    wp_opts o;               /* never_split points into never_split_copy */
    char **never_split_copy; /* [o.n_never_split] owned */
    size_t prefix_len;
    size_t max_piece_chars; /* longest vocab entry in code points (without prefix) */
};

/* A run of code points with the span [os, oe) of original code points each came from. */
typedef struct {
    uint32_t *cp;
    int32_t *os, *oe;
    size_t n, cap;
} cpbuf;

typedef struct {
    cpbuf word;     /* after cleaning / lower-casing, before normalization */
    cpbuf norm;     /* after NFD+strip or NFC */
    cpbuf seg;      /* one NFC segment, decomposed */
    uint8_t *bytes; /* UTF-8 of the current piece, with room for the prefix */
    size_t *boff;   /* [chars+1] byte offset of each char of the piece in bytes */
    size_t bcap, ocap;
} wp_scratch;

static bool cpbuf_reserve(cpbuf *b, size_t need)
{
    if (need <= b->cap)
        return true;
    size_t nc = b->cap ? b->cap : 64;
    while (nc < need)
        nc *= 2;
    uint32_t *cp = realloc(b->cp, nc * sizeof *cp);
    if (!cp)
        return false;
    b->cp = cp;
    int32_t *os = realloc(b->os, nc * sizeof *os);
    if (!os)
        return false;
    b->os = os;
    int32_t *oe = realloc(b->oe, nc * sizeof *oe);
    if (!oe)
        return false;
    b->oe = oe;
    b->cap = nc;
    return true;
}

static bool cpbuf_push(cpbuf *b, uint32_t cp, int32_t os, int32_t oe)
{
    if (b->n == b->cap && !cpbuf_reserve(b, b->n + 1))
        return false;
    b->cp[b->n] = cp;
    b->os[b->n] = os;
    b->oe[b->n] = oe;
    b->n++;
    return true;
}

static void cpbuf_free(cpbuf *b)
{
    free(b->cp);
    free(b->os);
    free(b->oe);
}

static void scratch_free(wp_scratch *s)
{
    cpbuf_free(&s->word);
    cpbuf_free(&s->norm);
    cpbuf_free(&s->seg);
    free(s->bytes);
    free(s->boff);
}

mcli_status wordpiece_new(const tok_vocab *vocab, const wp_opts *opts, wordpiece **out, mcli_err *err)
{
    *out = NULL;
    wordpiece *wp = calloc(1, sizeof *wp);
    if (!wp)
        return mcli_fail(err, MCLI_ERR_NOMEM, "wordpiece: out of memory");
    wp->vocab = vocab;
    wp->o = *opts;
    wp->o.never_split = NULL;
    wp->o.n_never_split = 0;
    wp->prefix_len = strnlen(opts->prefix, sizeof opts->prefix);
    if (wp->prefix_len >= sizeof opts->prefix) {
        wordpiece_free(wp);
        return mcli_fail(err, MCLI_ERR_FORMAT, "wordpiece: continuing-subword prefix is too long");
    }
    if (opts->n_never_split) {
        wp->never_split_copy = calloc(opts->n_never_split, sizeof *wp->never_split_copy);
        if (!wp->never_split_copy)
            goto nomem;
        for (size_t i = 0; i < opts->n_never_split; i++) {
            wp->never_split_copy[i] = strdup(opts->never_split[i]);
            if (!wp->never_split_copy[i])
                goto nomem;
            wp->o.n_never_split = i + 1;
        }
        wp->o.never_split = (const char *const *)wp->never_split_copy;
    }
    /* The longest vocabulary entry bounds the greedy search (a piece can never match more
     * code points than the longest token has). Counted in bytes: >= code points. */
    wp->max_piece_chars = vocab_max_bytes(vocab);
    *out = wp;
    return MCLI_OK;
nomem:
    wordpiece_free(wp);
    return mcli_fail(err, MCLI_ERR_NOMEM, "wordpiece: out of memory");
}

void wordpiece_free(wordpiece *wp)
{
    if (!wp)
        return;
    for (size_t i = 0; i < wp->o.n_never_split; i++)
        free(wp->never_split_copy[i]);
    free(wp->never_split_copy);
    free(wp);
}

/* Stable sort of each run of non-starters by combining class (canonical ordering), keeping
 * each code point's span with it. Runs are short in real text; insertion sort is fine and
 * bounded by the run length squared only for hostile input, which piece length limits do
 * not bound - so cap the work: runs longer than 64 are left as they are (no real text has
 * them; the result then differs from Python only in the order of stacked marks). */
static void canonical_order(cpbuf *b, size_t from)
{
    size_t i = from;
    while (i < b->n) {
        if (uni_combining_class(b->cp[i]) == 0) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < b->n && uni_combining_class(b->cp[j]) != 0)
            j++;
        if (j - i > 1 && j - i <= 64) {
            for (size_t k = i + 1; k < j; k++) {
                uint32_t c = b->cp[k];
                int32_t os = b->os[k], oe = b->oe[k];
                int cc = uni_combining_class(c);
                size_t m = k;
                while (m > i && uni_combining_class(b->cp[m - 1]) > cc) {
                    b->cp[m] = b->cp[m - 1];
                    b->os[m] = b->os[m - 1];
                    b->oe[m] = b->oe[m - 1];
                    m--;
                }
                b->cp[m] = c;
                b->os[m] = os;
                b->oe[m] = oe;
            }
        }
        i = j;
    }
}

/* Appends the NFD of in[from..to) to out (with canonical ordering), dropping Mn if strip. */
static bool decompose_into(const cpbuf *in, size_t from, size_t to, cpbuf *out, bool strip)
{
    size_t start = out->n;
    for (size_t i = from; i < to; i++) {
        uint32_t d[32];
        size_t nd = uni_nfd_char(in->cp[i], d, 32);
        if (nd == 0) {
            d[0] = in->cp[i];
            nd = 1;
        }
        for (size_t k = 0; k < nd; k++)
            if (!cpbuf_push(out, d[k], in->os[i], in->oe[i]))
                return false;
    }
    canonical_order(out, start);
    if (strip) {
        size_t w = start;
        for (size_t r = start; r < out->n; r++) {
            if (uni_is_mn(out->cp[r]))
                continue; /* a dropped mark leaves the spans (as HF's fast tokenizers do) */
            out->cp[w] = out->cp[r];
            out->os[w] = out->os[r];
            out->oe[w] = out->oe[r];
            w++;
        }
        out->n = w;
    }
    return true;
}

/* Hangul vowel and trailing jamo are starters that still compose with what precedes them. */
static bool composes_backward(uint32_t cp)
{
    return (cp >= 0x1161 && cp <= 0x1175) || (cp >= 0x11A8 && cp <= 0x11C2);
}

/* NFC of word into norm, segment by segment: a segment is a starter and the non-starters
 * after it; every code point NFC makes of a segment spans the whole segment. */
static bool compose_into(wp_scratch *s)
{
    const cpbuf *w = &s->word;
    size_t i = 0;
    while (i < w->n) {
        size_t j = i + 1;
        while (j < w->n && (uni_combining_class(w->cp[j]) != 0 || composes_backward(w->cp[j])))
            j++;
        if (j == i + 1 && w->cp[i] < 0xC0) { /* fast path: nothing to compose or decompose */
            if (!cpbuf_push(&s->norm, w->cp[i], w->os[i], w->oe[i]))
                return false;
            i = j;
            continue;
        }
        s->seg.n = 0;
        if (!decompose_into(w, i, j, &s->seg, false))
            return false;
        utf8proc_ssize_t n = utf8proc_normalize_utf32(
            (utf8proc_int32_t *)s->seg.cp, (utf8proc_ssize_t)s->seg.n, UTF8PROC_COMPOSE | UTF8PROC_STABLE);
        if (n < 0)
            n = (utf8proc_ssize_t)s->seg.n; /* cannot happen for valid code points; keep NFD */
        for (utf8proc_ssize_t k = 0; k < n; k++)
            if (!cpbuf_push(&s->norm, s->seg.cp[k], w->os[i], w->oe[j - 1]))
                return false;
        i = j;
    }
    return true;
}

static bool bytes_reserve(wp_scratch *s, size_t nbytes, size_t nchars)
{
    if (nbytes > s->bcap) {
        size_t nc = s->bcap ? s->bcap : 256;
        while (nc < nbytes)
            nc *= 2;
        uint8_t *p = realloc(s->bytes, nc);
        if (!p)
            return false;
        s->bytes = p;
        s->bcap = nc;
    }
    if (nchars > s->ocap) {
        size_t nc = s->ocap ? s->ocap : 128;
        while (nc < nchars)
            nc *= 2;
        size_t *p = realloc(s->boff, nc * sizeof *p);
        if (!p)
            return false;
        s->boff = p;
        s->ocap = nc;
    }
    return true;
}

/* Greedy longest-match WordPiece of norm[a..b). */
static mcli_status piece_encode(const wordpiece *wp, wp_scratch *s, size_t a, size_t b, tok_list *out,
                                mcli_err *err)
{
    const cpbuf *nb = &s->norm;
    size_t count = b - a;
    if (count == 0)
        return MCLI_OK;
    if (count > wp->o.max_input_chars)
        return toklist_push(out, wp->o.unk_id, nb->os[a], nb->oe[b - 1], err);

    size_t pl = wp->prefix_len;
    if (!bytes_reserve(s, pl + count * 4, count + 1))
        return mcli_fail(err, MCLI_ERR_NOMEM, "wordpiece: out of memory");
    /* bytes = prefix + UTF-8 of the piece; boff[i] = offset of char i after the prefix. */
    memcpy(s->bytes, wp->o.prefix, pl);
    size_t nbytes = pl;
    for (size_t i = 0; i < count; i++) {
        s->boff[i] = nbytes;
        nbytes += uni_utf8_encode(nb->cp[a + i], s->bytes + nbytes);
    }
    s->boff[count] = nbytes;

    size_t first = out->n;
    size_t start = 0;
    while (start < count) {
        size_t end = count;
        if (end - start > wp->max_piece_chars)
            end = start + wp->max_piece_chars;
        int32_t id = -1;
        for (; end > start; end--) {
            size_t blen = s->boff[end] - s->boff[start];
            if (start == 0)
                id = vocab_find(wp->vocab, (const char *)s->bytes + s->boff[0], blen);
            else {
                /* Put the prefix right before the piece: the byte before char `start` is
                 * overwritten and restored after the lookup. */
                size_t at = s->boff[start] - pl;
                uint8_t saved[16];
                memcpy(saved, s->bytes + at, pl);
                memcpy(s->bytes + at, wp->o.prefix, pl);
                id = vocab_find(wp->vocab, (const char *)s->bytes + at, blen + pl);
                memcpy(s->bytes + at, saved, pl);
            }
            if (id >= 0)
                break;
        }
        if (id < 0) {
            out->n = first; /* Python: the whole piece becomes one [UNK] */
            return toklist_push(out, wp->o.unk_id, nb->os[a], nb->oe[b - 1], err);
        }
        mcli_status st = toklist_push(out, id, nb->os[a + start], nb->oe[a + end - 1], err);
        if (st != MCLI_OK)
            return st;
        start = end;
    }
    return MCLI_OK;
}

static bool word_is_never_split(const wordpiece *wp, wp_scratch *s, int32_t *id)
{
    if (!wp->o.n_never_split)
        return false;
    const cpbuf *w = &s->word;
    uint8_t buf[256] = {0};
    size_t n = 0;
    for (size_t i = 0; i < w->n; i++) {
        if (n + 4 > sizeof buf)
            return false;
        n += uni_utf8_encode(w->cp[i], buf + n);
    }
    for (size_t i = 0; i < wp->o.n_never_split; i++) {
        const char *t = wp->o.never_split[i];
        if (strlen(t) == n && memcmp(t, buf, n) == 0) {
            *id = vocab_find(wp->vocab, t, n);
            if (*id < 0)
                *id = wp->o.unk_id;
            return true;
        }
    }
    return false;
}

static mcli_status flush_word(const wordpiece *wp, wp_scratch *s, tok_list *out, mcli_err *err)
{
    cpbuf *w = &s->word;
    if (w->n == 0)
        return MCLI_OK;
    mcli_status st = MCLI_OK;
    int32_t id;
    if (word_is_never_split(wp, s, &id)) {
        st = toklist_push(out, id, w->os[0], w->oe[w->n - 1], err);
        w->n = 0;
        return st;
    }
    bool strip = wp->o.strip_accents == 1 || (wp->o.strip_accents == -1 && wp->o.lowercase);
    s->norm.n = 0;
    bool ok = strip ? decompose_into(w, 0, w->n, &s->norm, true) : compose_into(s);
    w->n = 0;
    if (!ok)
        return mcli_fail(err, MCLI_ERR_NOMEM, "wordpiece: out of memory");

    const cpbuf *nb = &s->norm;
    size_t run = 0;
    for (size_t i = 0; i < nb->n; i++) {
        if (!uni_is_bert_punct(nb->cp[i]))
            continue;
        if ((st = piece_encode(wp, s, run, i, out, err)) != MCLI_OK)
            return st;
        if ((st = piece_encode(wp, s, i, i + 1, out, err)) != MCLI_OK)
            return st;
        run = i + 1;
    }
    return piece_encode(wp, s, run, nb->n, out, err);
}

mcli_status wordpiece_encode(const wordpiece *wp, const uint32_t *cps, size_t n, size_t cp_base,
                             tok_list *out, mcli_err *err)
{
    wp_scratch s;
    memset(&s, 0, sizeof s);
    mcli_status st = MCLI_OK;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = cps[i];
        int32_t at = (int32_t)(cp_base + i);
        if (wp->o.clean_text && (cp == 0 || cp == 0xFFFD || uni_is_bert_control(cp)))
            continue;
        if (uni_is_bert_whitespace(cp) || uni_is_py_split_space(cp)) {
            if ((st = flush_word(wp, &s, out, err)) != MCLI_OK)
                goto done;
            continue;
        }
        bool cjk = wp->o.tokenize_chinese && uni_is_cjk(cp);
        if (cjk && (st = flush_word(wp, &s, out, err)) != MCLI_OK)
            goto done;
        uint32_t low[2] = {cp, 0};
        size_t nl = wp->o.lowercase ? uni_lower_py(cp, low) : 1;
        for (size_t k = 0; k < nl; k++) {
            if (!cpbuf_push(&s.word, low[k], at, at + 1)) {
                st = mcli_fail(err, MCLI_ERR_NOMEM, "wordpiece: out of memory");
                goto done;
            }
        }
        if (cjk && (st = flush_word(wp, &s, out, err)) != MCLI_OK)
            goto done;
    }
    st = flush_word(wp, &s, out, err);
done:
    scratch_free(&s);
    return st;
}

/* transformers PreTrainedTokenizerBase.clean_up_tokenization: these replacements, in this
 * order, each over the whole string. */
static void replace_all(char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to);
    char *r = s, *w = s;
    while (*r) {
        if (strncmp(r, from, fl) == 0) {
            memmove(w, to, tl);
            w += tl;
            r += fl;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

void wordpiece_cleanup_spaces(char *s)
{
    static const char *const rules[][2] = {
        {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
        {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        replace_all(s, rules[i][0], rules[i][1]);
}
