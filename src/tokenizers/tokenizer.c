/* tokenizer.c - loading from vocab files, and the one encode / decode / detok interface.
 *
 * Encode:  validate UTF-8 -> split out added tokens ([CLS], <|endoftext|>, ...) -> model
 *          (wordpiece.c | bpe.c) per chunk -> truncate -> [CLS] A [SEP] (B [SEP]).
 * Decode:  ids -> token strings -> WordPiece join ("##" glue, clean-up of spaces) or BPE bytes
 *          (invalid UTF-8 replaced with U+FFFD, as Python's errors="replace").
 * Detok:   BPE keeps the bytes of an unfinished UTF-8 sequence until it completes;
 *          WordPiece re-decodes and holds back the last few bytes the clean-up may still change.
 */
#include "tokenizers/tokenizer.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizers/tokenizer_impl.h"
#include "tokenizers/unicode.h"
#include "util/log.h"
#include "util/buf.h"

#define DECODE_MAX_BYTES (64u << 20)

/* --- small helpers ------------------------------------------------------------------- */

mcli_status toklist_push(tok_list *l, int32_t id, int32_t start, int32_t end, mcli_err *err)
{
    if (l->n == l->cap) {
        if (l->cap >= TOK_MAX_TOKENS)
            return mcli_fail(err, MCLI_ERR_TOO_LARGE, "more than %u tokens", TOK_MAX_TOKENS);
        size_t nc = l->cap ? l->cap * 2 : 256;
        int32_t *ids = realloc(l->ids, nc * sizeof *ids);
        if (!ids)
            return mcli_fail(err, MCLI_ERR_NOMEM, "tokenizer: out of memory");
        l->ids = ids;
        int32_t *offs = realloc(l->offs, 2 * nc * sizeof *offs);
        if (!offs)
            return mcli_fail(err, MCLI_ERR_NOMEM, "tokenizer: out of memory");
        l->offs = offs;
        l->cap = nc;
    }
    l->ids[l->n] = id;
    l->offs[2 * l->n] = start;
    l->offs[2 * l->n + 1] = end;
    l->n++;
    return MCLI_OK;
}

typedef struct {
    char *p;
    size_t n, cap;
} dbuf;

static bool dbuf_put(dbuf *b, const void *s, size_t n)
{
    return buf_append(&b->p, &b->n, &b->cap, DECODE_MAX_BYTES - 1, s, n) == MCLI_OK;
}

mcli_status tok_read_file(const char *path, size_t max, char **buf, size_t *len, mcli_err *err)
{
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return mcli_fail(err, MCLI_ERR_NOT_FOUND, "%s: no such file", path);
        return mcli_fail(err, MCLI_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    mcli_status st = MCLI_OK;
    char *p = NULL;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = mcli_fail(err, MCLI_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    if ((unsigned long long)sb.st_size > max) {
        st = mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: %lld bytes is over the %zu-byte limit for this file",
                       path, (long long)sb.st_size, max);
        goto fail;
    }
    size_t n = (size_t)sb.st_size;
    p = malloc(n + 1);
    if (!p) {
        st = mcli_fail(err, MCLI_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    if (fread(p, 1, n, f) != n || ferror(f)) {
        st = mcli_fail(err, MCLI_ERR_IO, "%s: read failed", path);
        goto fail;
    }
    p[n] = '\0';
    fclose(f);
    *buf = p;
    *len = n;
    return MCLI_OK;
fail:
    free(p);
    fclose(f);
    return st;
}

static bool file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static mcli_status join_path(char *out, size_t cap, const char *dir, const char *name, mcli_err *err)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "model directory path is too long: %s", dir);
    return MCLI_OK;
}

/* --- the tokenizer object ------------------------------------------------------------ */

mcli_status tok_alloc(mcli_tok_kind kind, mcli_tokenizer **out, mcli_err *err)
{
    *out = NULL;
    mcli_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return mcli_fail(err, MCLI_ERR_NOMEM, "tokenizer: out of memory");
    t->kind = kind;
    t->sp = (mcli_special_ids){-1, -1, -1, -1, -1, -1, -1};
    t->pp_cls = t->pp_sep = -1;
    memcpy(t->wp_prefix, "##", 3);
    t->cleanup_spaces = kind == MCLI_TOK_WORDPIECE;
    mcli_status st = vocab_new(&t->vocab, err);
    if (st != MCLI_OK) {
        free(t);
        return st;
    }
    *out = t;
    return MCLI_OK;
}

void tokenizer_free(mcli_tokenizer *t)
{
    if (!t)
        return;
    wordpiece_free(t->wp);
    bpe_free(t->bpe);
    for (size_t i = 0; i < t->n_added; i++)
        free(t->added[i].content);
    free(t->added);
    free(t->id_flags);
    vocab_free(t->vocab);
    free(t);
}

mcli_status tok_add_token(mcli_tokenizer *t, const char *content, size_t len, int32_t id, bool special,
                          bool lstrip, bool rstrip, mcli_err *err)
{
    if (len == 0)
        return mcli_fail(err, MCLI_ERR_FORMAT, "added token %ld has empty content", (long)id);
    if (!uni_utf8_valid((const uint8_t *)content, len, NULL))
        return mcli_fail(err, MCLI_ERR_FORMAT, "added token %ld is not valid UTF-8", (long)id);
    for (size_t i = 0; i < t->n_added; i++) {
        added_tok *a = &t->added[i];
        if (a->len == len && memcmp(a->content, content, len) == 0) {
            a->id = id;
            a->special = a->special || special;
            a->lstrip = lstrip;
            a->rstrip = rstrip;
            return vocab_set(t->vocab, content, len, id, NULL, err);
        }
    }
    if (t->n_added >= TOK_MAX_ADDED)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "more than %d added tokens", TOK_MAX_ADDED);
    if (t->n_added == t->cap_added) {
        size_t nc = t->cap_added ? t->cap_added * 2 : 16;
        added_tok *p = realloc(t->added, nc * sizeof *p);
        if (!p)
            return mcli_fail(err, MCLI_ERR_NOMEM, "tokenizer: out of memory");
        t->added = p;
        t->cap_added = nc;
    }
    char *c = malloc(len + 1);
    if (!c)
        return mcli_fail(err, MCLI_ERR_NOMEM, "tokenizer: out of memory");
    memcpy(c, content, len);
    c[len] = '\0';
    t->added[t->n_added++] = (added_tok){c, len, id, special, lstrip, rstrip};
    return vocab_set(t->vocab, content, len, id, NULL, err);
}

static void mark(mcli_tokenizer *t, int32_t id, uint8_t flag)
{
    if (id >= 0 && (size_t)id < vocab_id_range(t->vocab))
        t->id_flags[id] |= flag;
}

mcli_status tok_finish(mcli_tokenizer *t, mcli_err *err)
{
    size_t range = vocab_id_range(t->vocab);
    if (range == 0)
        return mcli_fail(err, MCLI_ERR_FORMAT, "the vocabulary is empty");
    free(t->id_flags);
    t->id_flags = calloc(range, 1);
    if (!t->id_flags)
        return mcli_fail(err, MCLI_ERR_NOMEM, "tokenizer: out of memory");
    memset(t->added_first, 0, sizeof t->added_first);
    for (size_t i = 0; i < t->n_added; i++) {
        const added_tok *a = &t->added[i];
        uint8_t b = (uint8_t)a->content[0];
        t->added_first[b >> 3] |= (uint8_t)(1u << (b & 7));
        if (a->special)
            mark(t, a->id, TOK_F_SPECIAL);
        if ((size_t)a->id >= t->base_vocab)
            mark(t, a->id, TOK_F_ADDED);
        /* legacy_added_tokens: added tokens that are not special, or special ones outside the
         * base vocabulary */
        if (!a->special || (size_t)a->id >= t->base_vocab)
            mark(t, a->id, TOK_F_LEGACY);
    }
    const int32_t ids[] = {t->sp.unk, t->sp.cls, t->sp.sep, t->sp.pad, t->sp.mask, t->sp.bos, t->sp.eos};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        mark(t, ids[i], TOK_F_SPECIAL);
    return MCLI_OK;
}

/* --- config files -------------------------------------------------------------------- */

/* A token given as "text" or {"content": "text", ...}; NULL if absent or another type. */
const char *tok_json_token_text(const json_t *v)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_object(v)) {
        const json_t *c = json_object_get(v, "content");
        if (json_is_string(c))
            return json_string_value(c);
    }
    return NULL;
}

mcli_status tok_load_json_file(const char *path, json_t **out, bool optional, mcli_err *err)
{
    *out = NULL;
    char *buf;
    size_t len;
    mcli_status st = tok_read_file(path, TOK_MAX_CONFIG_BYTES, &buf, &len, err);
    if (st == MCLI_ERR_NOT_FOUND && optional) {
        mcli_err_clear(err);
        return MCLI_OK;
    }
    if (st != MCLI_OK)
        return st;
    json_error_t je;
    *out = json_loadb(buf, len, 0, &je);
    /* transformers writes "model_max_length": 1000000000000000019884624838656 (int(1e30)) for
     * "no limit", which overflows jansson's integers: read such a file with integers as reals
     * (only model_max_length is numeric in these files; token ids stay integers elsewhere). */
    if (!*out && strstr(je.text, "too big integer"))
        *out = json_loadb(buf, len, JSON_DECODE_INT_AS_REAL, &je);
    free(buf);
    if (!*out)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: invalid JSON at line %d column %d: %s", path, je.line,
                         je.column, je.text);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: expected a JSON object", path);
    }
    return MCLI_OK;
}

bool tok_json_bool(const json_t *obj, const char *key, bool dflt)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* Looks a special token up in tokenizer_config.json, then special_tokens_map.json, then the
 * default; returns its id in the vocabulary (registering it as a special added token so it is
 * recognised in text), or -1 when it is not in the vocabulary. */
mcli_status tok_resolve_special(mcli_tokenizer *t, const json_t *cfg, const json_t *map, const char *key,
                                const char *dflt, int32_t *id, mcli_err *err)
{
    *id = -1;
    const json_t *v = cfg ? json_object_get(cfg, key) : NULL;
    if (!v && map)
        v = json_object_get(map, key);
    const char *text = v ? tok_json_token_text(v) : dflt;
    if (v && json_is_null(v))
        text = NULL;
    if (!text)
        return MCLI_OK;
    int32_t found = vocab_find(t->vocab, text, strlen(text));
    if (found < 0) {
        LOG_DEBUG("tokenizer: %s \"%s\" is not in the vocabulary; ignored", key, text);
        return MCLI_OK;
    }
    *id = found;
    return tok_add_token(t, text, strlen(text), found, true, false, false, err);
}

static bool parse_id(const char *s, int32_t *out)
{
    long long v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (*s - '0');
        if (v >= VOCAB_MAX_ID)
            return false;
    }
    *out = (int32_t)v;
    return true;
}

/* tokenizer_config.json "added_tokens_decoder", added_tokens.json and
 * "additional_special_tokens". */
mcli_status tok_load_added(mcli_tokenizer *t, const char *dir, const json_t *cfg, const json_t *map,
                           mcli_err *err)
{
    mcli_status st = MCLI_OK;
    const json_t *dec = cfg ? json_object_get(cfg, "added_tokens_decoder") : NULL;
    if (json_is_object(dec)) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)dec, key, v)
        {
            int32_t id;
            const char *content = tok_json_token_text(v);
            if (!parse_id(key, &id) || !content)
                return mcli_fail(err, MCLI_ERR_FORMAT,
                                 "tokenizer_config.json: bad added_tokens_decoder entry \"%s\"", key);
            st = tok_add_token(t, content, strlen(content), id, tok_json_bool(v, "special", false),
                               tok_json_bool(v, "lstrip", false), tok_json_bool(v, "rstrip", false), err);
            if (st != MCLI_OK)
                return st;
        }
    }
    char path[4096];
    if ((st = join_path(path, sizeof path, dir, "added_tokens.json", err)) != MCLI_OK)
        return st;
    json_t *at;
    if ((st = tok_load_json_file(path, &at, true, err)) != MCLI_OK)
        return st;
    if (at) {
        const char *key;
        json_t *v;
        json_object_foreach(at, key, v)
        {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= VOCAB_MAX_ID) {
                st = mcli_fail(err, MCLI_ERR_FORMAT, "%s: the id of \"%s\" is not a valid token id", path,
                               key);
                break;
            }
            if ((st = tok_add_token(t, key, strlen(key), (int32_t)json_integer_value(v), false, false, false,
                                    err)) != MCLI_OK)
                break;
        }
        json_decref(at);
        if (st != MCLI_OK)
            return st;
    }
    const json_t *extra = cfg ? json_object_get(cfg, "additional_special_tokens") : NULL;
    if (!json_is_array(extra) && map)
        extra = json_object_get(map, "additional_special_tokens");
    if (json_is_array(extra)) {
        size_t i;
        json_t *v;
        json_array_foreach((json_t *)extra, i, v)
        {
            const char *text = tok_json_token_text(v);
            if (!text)
                continue;
            int32_t id = vocab_find(t->vocab, text, strlen(text));
            if (id >= 0 &&
                (st = tok_add_token(t, text, strlen(text), id, true, false, false, err)) != MCLI_OK)
                return st;
        }
    }
    return MCLI_OK;
}

size_t tok_json_max_length(const json_t *cfg)
{
    const json_t *v = cfg ? json_object_get(cfg, "model_max_length") : NULL;
    double d = json_is_number(v) ? json_number_value(v) : 0;
    /* transformers writes 1e30 (VERY_LARGE_INTEGER) for "no limit" */
    return (d >= 1 && d <= 1e9) ? (size_t)d : 0;
}

/* vocab.txt: one token per line; the id is the line number. Lines end at \n, \r\n or \r
 * (Python's universal newlines); a token may be empty. */
static mcli_status load_vocab_txt(mcli_tokenizer *t, const char *path, mcli_err *err)
{
    char *buf;
    size_t len;
    mcli_status st = tok_read_file(path, TOK_MAX_FILE_BYTES, &buf, &len, err);
    if (st != MCLI_OK)
        return st;
    size_t bad;
    if (!uni_utf8_valid((const uint8_t *)buf, len, &bad)) {
        st = mcli_fail(err, MCLI_ERR_FORMAT, "%s: not valid UTF-8 (byte %zu); a vocab.txt must be UTF-8 text",
                       path, bad);
        goto done;
    }
    if (memchr(buf, '\0', len)) {
        st = mcli_fail(err, MCLI_ERR_FORMAT, "%s: contains a NUL byte; not a vocab.txt", path);
        goto done;
    }
    size_t pos = 0, dups = 0;
    int32_t id = 0;
    while (pos < len) {
        size_t end = pos;
        while (end < len && buf[end] != '\n' && buf[end] != '\r')
            end++;
        if (id >= VOCAB_MAX_ID) {
            st = mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: more than %d lines", path, VOCAB_MAX_ID);
            goto done;
        }
        bool replaced;
        if ((st = vocab_set(t->vocab, buf + pos, end - pos, id, &replaced, err)) != MCLI_OK) {
            mcli_err_prefix(err, "%s line %ld", path, (long)id + 1);
            goto done;
        }
        if (replaced && dups++ < 3)
            LOG_WARN("%s: line %ld repeats an earlier token; like transformers, the last line's id wins",
                     path, (long)id + 1);
        id++;
        if (end < len && buf[end] == '\r' && end + 1 < len && buf[end + 1] == '\n')
            end++;
        pos = end + 1;
    }
    if (id == 0)
        st = mcli_fail(err, MCLI_ERR_FORMAT, "%s: empty vocabulary", path);
done:
    free(buf);
    return st;
}

static mcli_status load_wordpiece_dir(const char *dir, mcli_tokenizer **out, mcli_err *err)
{
    *out = NULL;
    mcli_tokenizer *t = NULL;
    json_t *cfg = NULL, *map = NULL;
    const char **never = NULL;
    size_t n_never = 0;
    char path[4096];
    mcli_status st = tok_alloc(MCLI_TOK_WORDPIECE, &t, err);
    if (st != MCLI_OK)
        return st;
    t->source = "vocab.txt";
    if ((st = join_path(path, sizeof path, dir, "vocab.txt", err)) != MCLI_OK ||
        (st = load_vocab_txt(t, path, err)) != MCLI_OK)
        goto fail;
    t->base_vocab = vocab_id_range(t->vocab);
    if ((st = join_path(path, sizeof path, dir, "tokenizer_config.json", err)) != MCLI_OK ||
        (st = tok_load_json_file(path, &cfg, true, err)) != MCLI_OK)
        goto fail;
    if ((st = join_path(path, sizeof path, dir, "special_tokens_map.json", err)) != MCLI_OK ||
        (st = tok_load_json_file(path, &map, true, err)) != MCLI_OK)
        goto fail;

    if ((st = tok_resolve_special(t, cfg, map, "unk_token", "[UNK]", &t->sp.unk, err)) != MCLI_OK ||
        (st = tok_resolve_special(t, cfg, map, "sep_token", "[SEP]", &t->sp.sep, err)) != MCLI_OK ||
        (st = tok_resolve_special(t, cfg, map, "pad_token", "[PAD]", &t->sp.pad, err)) != MCLI_OK ||
        (st = tok_resolve_special(t, cfg, map, "cls_token", "[CLS]", &t->sp.cls, err)) != MCLI_OK ||
        (st = tok_resolve_special(t, cfg, map, "mask_token", "[MASK]", &t->sp.mask, err)) != MCLI_OK)
        goto fail;
    if (t->sp.unk < 0) {
        st = mcli_fail(err, MCLI_ERR_FORMAT, "%s/vocab.txt: the unknown token is not in the vocabulary", dir);
        goto fail;
    }
    if ((st = tok_load_added(t, dir, cfg, map, err)) != MCLI_OK)
        goto fail;
    t->pp_cls = t->sp.cls;
    t->pp_sep = t->sp.sep;
    t->model_max_length = tok_json_max_length(cfg);
    t->cleanup_spaces = tok_json_bool(cfg, "clean_up_tokenization_spaces", true);

    wp_opts o = {
        .lowercase = tok_json_bool(cfg, "do_lower_case", true),
        .strip_accents = -1,
        .tokenize_chinese = tok_json_bool(cfg, "tokenize_chinese_chars", true),
        .clean_text = true,
        .unk_id = t->sp.unk,
        .max_input_chars = 100,
        .prefix = "##",
    };
    const json_t *sa = cfg ? json_object_get(cfg, "strip_accents") : NULL;
    if (json_is_boolean(sa))
        o.strip_accents = json_is_true(sa) ? 1 : 0;
    const json_t *ns = cfg ? json_object_get(cfg, "never_split") : NULL;
    if (json_is_array(ns) && json_array_size(ns)) {
        never = calloc(json_array_size(ns), sizeof *never);
        if (!never) {
            st = mcli_fail(err, MCLI_ERR_NOMEM, "tokenizer: out of memory");
            goto fail;
        }
        size_t i;
        json_t *v;
        json_array_foreach(ns, i, v) if (json_is_string(v)) never[n_never++] = json_string_value(v);
    }
    o.never_split = never;
    o.n_never_split = n_never;
    t->wpo = o;
    t->wpo.never_split = NULL;
    t->wpo.n_never_split = 0;
    if ((st = wordpiece_new(t->vocab, &o, &t->wp, err)) != MCLI_OK || (st = tok_finish(t, err)) != MCLI_OK)
        goto fail;
    free(never);
    json_decref(cfg);
    json_decref(map);
    *out = t;
    return MCLI_OK;
fail:
    free(never);
    json_decref(cfg);
    json_decref(map);
    tokenizer_free(t);
    return st;
}

/* vocab.json: {"token": id, ...}; Python's json keeps the last of duplicate keys, so does
 * jansson. */
static mcli_status load_vocab_json(mcli_tokenizer *t, const char *path, mcli_err *err)
{
    char *buf;
    size_t len;
    mcli_status st = tok_read_file(path, TOK_MAX_FILE_BYTES, &buf, &len, err);
    if (st != MCLI_OK)
        return st;
    json_error_t je;
    json_t *root = json_loadb(buf, len, 0, &je);
    free(buf);
    if (!root)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: invalid JSON at line %d column %d: %s", path, je.line,
                         je.column, je.text);
    if (!json_is_object(root) || json_object_size(root) == 0) {
        st = mcli_fail(err, MCLI_ERR_FORMAT, "%s: expected a non-empty object of token -> id", path);
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= VOCAB_MAX_ID) {
            st = mcli_fail(err, MCLI_ERR_FORMAT, "%s: the id of token \"%.64s\" is not an integer in 0..%d",
                           path, key, VOCAB_MAX_ID - 1);
            goto done;
        }
        if ((st = vocab_set(t->vocab, key, strlen(key), (int32_t)json_integer_value(v), NULL, err)) !=
            MCLI_OK) {
            mcli_err_prefix(err, "%s", path);
            goto done;
        }
    }
done:
    json_decref(root);
    return st;
}

static mcli_status load_bpe_dir(const char *dir, mcli_tokenizer **out, mcli_err *err)
{
    *out = NULL;
    mcli_tokenizer *t = NULL;
    json_t *cfg = NULL, *map = NULL;
    char *merges = NULL;
    size_t merges_len;
    char path[4096];
    mcli_status st = tok_alloc(MCLI_TOK_BPE, &t, err);
    if (st != MCLI_OK)
        return st;
    t->source = "vocab.json+merges.txt";
    if ((st = join_path(path, sizeof path, dir, "vocab.json", err)) != MCLI_OK ||
        (st = load_vocab_json(t, path, err)) != MCLI_OK)
        goto fail;
    t->base_vocab = vocab_id_range(t->vocab);
    if ((st = bpe_new(t->vocab, &t->bpe, err)) != MCLI_OK) {
        mcli_err_prefix(err, "%s", path);
        goto fail;
    }
    if ((st = join_path(path, sizeof path, dir, "merges.txt", err)) != MCLI_OK ||
        (st = tok_read_file(path, TOK_MAX_FILE_BYTES, &merges, &merges_len, err)) != MCLI_OK ||
        (st = bpe_load_merges_txt(t->bpe, merges, merges_len, path, err)) != MCLI_OK)
        goto fail;
    if ((st = join_path(path, sizeof path, dir, "tokenizer_config.json", err)) != MCLI_OK ||
        (st = tok_load_json_file(path, &cfg, true, err)) != MCLI_OK)
        goto fail;
    if ((st = join_path(path, sizeof path, dir, "special_tokens_map.json", err)) != MCLI_OK ||
        (st = tok_load_json_file(path, &map, true, err)) != MCLI_OK)
        goto fail;
    if ((st = tok_resolve_special(t, cfg, map, "unk_token", "<|endoftext|>", &t->sp.unk, err)) != MCLI_OK ||
        (st = tok_resolve_special(t, cfg, map, "bos_token", "<|endoftext|>", &t->sp.bos, err)) != MCLI_OK ||
        (st = tok_resolve_special(t, cfg, map, "eos_token", "<|endoftext|>", &t->sp.eos, err)) != MCLI_OK ||
        (st = tok_resolve_special(t, cfg, map, "pad_token", NULL, &t->sp.pad, err)) != MCLI_OK ||
        (st = tok_load_added(t, dir, cfg, map, err)) != MCLI_OK)
        goto fail;
    t->model_max_length = tok_json_max_length(cfg);
    t->cleanup_spaces = tok_json_bool(cfg, "clean_up_tokenization_spaces", false);
    t->add_prefix_space = tok_json_bool(cfg, "add_prefix_space", false);
    if ((st = tok_finish(t, err)) != MCLI_OK)
        goto fail;
    free(merges);
    json_decref(cfg);
    json_decref(map);
    *out = t;
    return MCLI_OK;
fail:
    free(merges);
    json_decref(cfg);
    json_decref(map);
    tokenizer_free(t);
    return st;
}

mcli_status tokenizer_load(const char *dir, mcli_tokenizer **out, mcli_err *err)
{
    *out = NULL;
    char path[4096];
    mcli_status st;
    if ((st = join_path(path, sizeof path, dir, "tokenizer.json", err)) != MCLI_OK)
        return st;
    bool has_wp = false, has_bpe = false;
    char p2[4096];
    if (join_path(p2, sizeof p2, dir, "vocab.txt", err) == MCLI_OK)
        has_wp = file_exists(p2);
    if (join_path(p2, sizeof p2, dir, "vocab.json", err) == MCLI_OK)
        has_bpe = file_exists(p2);
    if (file_exists(path)) {
        st = tokenizer_json_load(path, out, err);
        if (st != MCLI_ERR_UNSUPPORTED || (!has_wp && !has_bpe))
            return st;
        LOG_WARN("%s (%s); using the vocabulary files instead", path, err->msg);
        mcli_err_clear(err);
    }
    if (has_wp)
        st = load_wordpiece_dir(dir, out, err);
    else if (has_bpe)
        st = load_bpe_dir(dir, out, err);
    else
        return mcli_fail(
            err, MCLI_ERR_NOT_FOUND,
            "%s: no tokenizer found (expected tokenizer.json, vocab.txt, or vocab.json + merges.txt)", dir);
    if (st != MCLI_OK)
        return mcli_err_prefix(err, "loading the tokenizer of %s", dir);
    return MCLI_OK;
}

/* --- queries ------------------------------------------------------------------------- */

mcli_tok_kind tokenizer_kind(const mcli_tokenizer *t)
{
    return t->kind;
}

size_t tokenizer_vocab_size(const mcli_tokenizer *t)
{
    return vocab_id_range(t->vocab);
}

size_t tokenizer_model_max_length(const mcli_tokenizer *t)
{
    return t->model_max_length;
}

const mcli_special_ids *tokenizer_special(const mcli_tokenizer *t)
{
    return &t->sp;
}

const char *tokenizer_id_to_token(const mcli_tokenizer *t, int32_t id)
{
    if (id < 0 || (size_t)id >= vocab_id_range(t->vocab))
        return NULL;
    const char *s = vocab_str(t->vocab, id, NULL);
    /* an id whose string was taken by a later duplicate reads as the unknown token (Python's
     * ids_to_tokens.get(id, unk_token)) */
    return s ? s : vocab_str(t->vocab, t->sp.unk, NULL);
}

int32_t tokenizer_token_to_id(const mcli_tokenizer *t, const char *token)
{
    return vocab_find(t->vocab, token, strlen(token));
}

/* --- encode -------------------------------------------------------------------------- */

static bool is_ascii_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* The longest added token matching text at p, or NULL. */
static const added_tok *match_added(const mcli_tokenizer *t, const char *text, size_t len, size_t p)
{
    uint8_t b = (uint8_t)text[p];
    if (!(t->added_first[b >> 3] & (1u << (b & 7))))
        return NULL;
    const added_tok *best = NULL;
    for (size_t i = 0; i < t->n_added; i++) {
        const added_tok *a = &t->added[i];
        if (a->len <= len - p && (!best || a->len > best->len) && memcmp(text + p, a->content, a->len) == 0)
            best = a;
    }
    return best;
}

typedef struct {
    const char *text;
    size_t len;
    uint32_t *cps;       /* [n_cps] */
    int32_t *cp_of_byte; /* [len + 1] */
    size_t n_cps;
} text_view;

static void text_view_free(text_view *v)
{
    free(v->cps);
    free(v->cp_of_byte);
}

/* Validates text and maps it; the code point array is only built when want_cps (WordPiece). */
static mcli_status text_view_make(const char *text, size_t len, bool want_cps, text_view *v, mcli_err *err)
{
    memset(v, 0, sizeof *v);
    v->text = text;
    v->len = len;
    if (want_cps)
        v->cps = malloc((len ? len : 1) * sizeof *v->cps);
    v->cp_of_byte = malloc((len + 1) * sizeof *v->cp_of_byte);
    if ((want_cps && !v->cps) || !v->cp_of_byte) {
        text_view_free(v);
        return mcli_fail(err, MCLI_ERR_NOMEM, "tokenizer: out of memory for %zu bytes of text", len);
    }
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t k = uni_utf8_decode((const uint8_t *)text + i, len - i, &cp);
        if (k == 0) {
            text_view_free(v);
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "text is not valid UTF-8 (byte %zu)", i);
        }
        for (size_t j = 0; j < k; j++)
            v->cp_of_byte[i + j] = (int32_t)v->n_cps;
        if (want_cps)
            v->cps[v->n_cps] = cp;
        v->n_cps++;
        i += k;
    }
    v->cp_of_byte[len] = (int32_t)v->n_cps;
    return MCLI_OK;
}

static mcli_status encode_chunk(const mcli_tokenizer *t, const text_view *v, size_t from, size_t to,
                                tok_list *out, mcli_err *err)
{
    if (from >= to)
        return MCLI_OK;
    if (t->kind == MCLI_TOK_WORDPIECE) {
        size_t c0 = (size_t)v->cp_of_byte[from], c1 = (size_t)v->cp_of_byte[to];
        return wordpiece_encode(t->wp, v->cps + c0, c1 - c0, c0, out, err);
    }
    return bpe_encode(t->bpe, v->text, from, to, v->cp_of_byte, out, err);
}

/* Encodes one text without post-processing: added tokens, then the model between them. */
static mcli_status encode_one(const mcli_tokenizer *t, const char *text, size_t len, tok_list *out,
                              mcli_err *err)
{
    if (len > TOK_MAX_TEXT_BYTES)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "text of %zu bytes is over the %u-byte limit", len,
                         TOK_MAX_TEXT_BYTES);
    char *prefixed = NULL;
    int shift = 0;
    if (t->add_prefix_space && len > 0) {
        prefixed = malloc(len + 1);
        if (!prefixed)
            return mcli_fail(err, MCLI_ERR_NOMEM, "tokenizer: out of memory");
        prefixed[0] = ' ';
        memcpy(prefixed + 1, text, len);
        text = prefixed;
        len++;
        shift = 1;
    }
    text_view v;
    mcli_status st = text_view_make(text, len, t->kind == MCLI_TOK_WORDPIECE, &v, err);
    if (st != MCLI_OK) {
        free(prefixed);
        return st;
    }
    size_t chunk = 0, p = 0;
    while (p < len) {
        const added_tok *a = t->n_added ? match_added(t, text, len, p) : NULL;
        if (!a) {
            p++;
            continue;
        }
        size_t end = p;
        if (a->lstrip)
            while (end > chunk && is_ascii_space((uint8_t)text[end - 1]))
                end--;
        if ((st = encode_chunk(t, &v, chunk, end, out, err)) != MCLI_OK)
            goto done;
        if ((st = toklist_push(out, a->id, v.cp_of_byte[p], v.cp_of_byte[p + a->len], err)) != MCLI_OK)
            goto done;
        p += a->len;
        if (a->rstrip)
            while (p < len && is_ascii_space((uint8_t)text[p]))
                p++;
        chunk = p;
    }
    st = encode_chunk(t, &v, chunk, len, out, err);
done:
    if (st == MCLI_OK && shift) {
        for (size_t i = 0; i < 2 * out->n; i++)
            out->offs[i] = out->offs[i] > 0 ? out->offs[i] - 1 : 0;
    }
    text_view_free(&v);
    free(prefixed);
    return st;
}

mcli_status tokenizer_encode(const mcli_tokenizer *t, const char *text, size_t len, const char *pair,
                             size_t pair_len, const mcli_tok_opts *opts, mcli_encoding *out, mcli_err *err)
{
    memset(out, 0, sizeof *out);
    tok_list a = {0}, b = {0};
    mcli_status st;
    if (!text && len)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "tokenizer_encode: NULL text");
    if ((st = encode_one(t, text ? text : "", len, &a, err)) != MCLI_OK)
        goto fail;
    if (pair && (st = encode_one(t, pair, pair_len, &b, err)) != MCLI_OK) {
        mcli_err_prefix(err, "second text");
        goto fail;
    }
    bool specials = opts && opts->add_special_tokens && t->pp_cls >= 0 && t->pp_sep >= 0;
    size_t n_special = specials ? (pair ? 3 : 2) : 0;
    size_t na = a.n, nb = b.n;
    size_t max = opts ? opts->max_length : 0;
    if (max && na + nb + n_special > max) {
        if (!opts->truncate) {
            st = mcli_fail(err, MCLI_ERR_TOO_LARGE, "the input is %zu tokens, over the limit of %zu",
                           na + nb + n_special, max);
            goto fail;
        }
        if (max < n_special) {
            st = mcli_fail(err, MCLI_ERR_INVALID_ARG,
                           "max_length %zu leaves no room for the %zu special tokens", max, n_special);
            goto fail;
        }
        /* longest_first, as transformers: drop one token at a time from the longer text
         * (from the second text on a tie) */
        size_t remove = na + nb + n_special - max;
        while (remove--) {
            if (!pair || na > nb)
                na--;
            else
                nb--;
        }
        out->truncated = true;
    }
    size_t n = na + nb + n_special;
    out->ids = malloc((n ? n : 1) * sizeof *out->ids);
    out->type_ids = malloc((n ? n : 1) * sizeof *out->type_ids);
    out->offsets = malloc((n ? n : 1) * 2 * sizeof *out->offsets);
    out->special = malloc(n ? n : 1);
    if (!out->ids || !out->type_ids || !out->offsets || !out->special) {
        st = mcli_fail(err, MCLI_ERR_NOMEM, "tokenizer: out of memory");
        goto fail;
    }
    size_t k = 0;
#define EMIT(id_, type_, s_, e_, sp_)                                                                        \
    do {                                                                                                     \
        out->ids[k] = (id_);                                                                                 \
        out->type_ids[k] = (type_);                                                                          \
        out->offsets[2 * k] = (s_);                                                                          \
        out->offsets[2 * k + 1] = (e_);                                                                      \
        out->special[k] = (sp_);                                                                             \
        k++;                                                                                                 \
    } while (0)
    if (specials)
        EMIT(t->pp_cls, 0, 0, 0, 1);
    for (size_t i = 0; i < na; i++)
        EMIT(a.ids[i], 0, a.offs[2 * i], a.offs[2 * i + 1], 0);
    if (specials)
        EMIT(t->pp_sep, 0, 0, 0, 1);
    for (size_t i = 0; i < nb; i++)
        EMIT(b.ids[i], 1, b.offs[2 * i], b.offs[2 * i + 1], 0);
    if (specials && pair)
        EMIT(t->pp_sep, 1, 0, 0, 1);
#undef EMIT
    out->n = k;
    toklist_free(&a);
    toklist_free(&b);
    return MCLI_OK;
fail:
    toklist_free(&a);
    toklist_free(&b);
    encoding_free(out);
    return st;
}

void encoding_free(mcli_encoding *e)
{
    if (!e)
        return;
    free(e->ids);
    free(e->type_ids);
    free(e->offsets);
    free(e->special);
    memset(e, 0, sizeof *e);
}

/* --- decode -------------------------------------------------------------------------- */

/* Appends b[0..n) to out, replacing each maximal invalid UTF-8 subpart with U+FFFD (what
 * Python's bytes.decode("utf-8", "replace") does). With keep_tail, an unfinished but so far
 * valid sequence at the end is not written; its length is returned in *tail. */
static bool put_utf8_lossy(dbuf *out, const uint8_t *b, size_t n, bool keep_tail, size_t *tail)
{
    static const char fffd[] = "\xEF\xBF\xBD";
    size_t i = 0;
    if (tail)
        *tail = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = uni_utf8_decode(b + i, n - i, &cp);
        if (k) {
            if (!dbuf_put(out, b + i, k))
                return false;
            i += k;
            continue;
        }
        /* length of the maximal subpart of a valid sequence starting at i */
        uint8_t c = b[i];
        size_t need = (c >= 0xC2 && c <= 0xDF)   ? 2
                      : (c >= 0xE0 && c <= 0xEF) ? 3
                      : (c >= 0xF0 && c <= 0xF4) ? 4
                                                 : 0;
        size_t j = i + 1;
        if (need) {
            uint8_t lo = 0x80, hi = 0xBF;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
            else if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
            if (j < n && b[j] >= lo && b[j] <= hi) {
                j++;
                while (j < n && j < i + need && (b[j] & 0xC0) == 0x80)
                    j++;
            }
            if (keep_tail && j == n && j - i < need) { /* a valid but unfinished sequence */
                *tail = n - i;
                return true;
            }
        }
        if (!dbuf_put(out, fffd, 3))
            return false;
        i = j;
    }
    return true;
}

/* convert_tokens_to_string of ids[from..to) (no added tokens among them) appended to out. */
static mcli_status convert_run(const mcli_tokenizer *t, const int32_t *ids, size_t from, size_t to, dbuf *out,
                               mcli_err *err)
{
    if (t->kind == MCLI_TOK_BPE) {
        dbuf raw = {0};
        for (size_t i = from; i < to; i++) {
            size_t len;
            const char *s = vocab_str(t->vocab, ids[i], &len);
            if (!s)
                s = tokenizer_id_to_token(t, ids[i]), len = s ? strlen(s) : 0;
            if (!s)
                continue;
            bool added = t->id_flags[ids[i]] & TOK_F_ADDED;
            long nb;
            uint8_t tmp[VOCAB_MAX_TOKEN_BYTES];
            if (added || (nb = bpe_token_bytes(s, len, tmp)) < 0) {
                /* not a byte-level string (an added token): its text as is */
                if (!dbuf_put(&raw, s, len))
                    goto nomem;
            } else if (!dbuf_put(&raw, tmp, (size_t)nb)) {
                goto nomem;
            }
        }
        bool ok = put_utf8_lossy(out, (const uint8_t *)raw.p, raw.n, false, NULL);
        free(raw.p);
        if (!ok)
            return mcli_fail(err, MCLI_ERR_TOO_LARGE, "decoded text is over %u bytes", DECODE_MAX_BYTES);
        return MCLI_OK;
    nomem:
        free(raw.p);
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "decoded text is over %u bytes", DECODE_MAX_BYTES);
    }
    /* WordPiece: " ".join(tokens).replace(" " + prefix, "").strip() */
    dbuf j = {0};
    for (size_t i = from; i < to; i++) {
        const char *s = tokenizer_id_to_token(t, ids[i]);
        if (!s)
            s = "";
        if ((i > from && !dbuf_put(&j, " ", 1)) || !dbuf_put(&j, s, strlen(s))) {
            free(j.p);
            return mcli_fail(err, MCLI_ERR_TOO_LARGE, "decoded text is over %u bytes", DECODE_MAX_BYTES);
        }
    }
    mcli_status st = MCLI_OK;
    if (j.n) {
        char pat[20];
        size_t pl = strlen(t->wp_prefix);
        pat[0] = ' ';
        memcpy(pat + 1, t->wp_prefix, pl + 1);
        char *r = j.p, *w = j.p;
        while (*r) {
            if (pl && strncmp(r, pat, pl + 1) == 0)
                r += pl + 1;
            else
                *w++ = *r++;
        }
        *w = '\0';
        char *s = j.p;
        while (*s && is_ascii_space((uint8_t)*s))
            s++;
        size_t n = strlen(s);
        while (n && is_ascii_space((uint8_t)s[n - 1]))
            n--;
        if (!dbuf_put(out, s, n))
            st = mcli_fail(err, MCLI_ERR_TOO_LARGE, "decoded text is over %u bytes", DECODE_MAX_BYTES);
    }
    free(j.p);
    return st;
}

static mcli_status decode_into(const mcli_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                               dbuf *out, mcli_err *err)
{
    size_t range = vocab_id_range(t->vocab);
    int32_t *kept = malloc((n ? n : 1) * sizeof *kept);
    if (!kept)
        return mcli_fail(err, MCLI_ERR_NOMEM, "tokenizer: out of memory");
    size_t m = 0;
    mcli_status st = MCLI_OK;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (size_t)ids[i] >= range) {
            st = mcli_fail(err, MCLI_ERR_INVALID_ARG,
                           "token id %ld (position %zu) is outside the vocabulary (0..%zu)", (long)ids[i], i,
                           range - 1);
            goto done;
        }
        if (skip_special && (t->id_flags[ids[i]] & TOK_F_SPECIAL))
            continue;
        kept[m++] = ids[i];
    }
    /* sub-texts: runs of ordinary tokens, and legacy added tokens on their own, joined by " " */
    size_t run = 0, subs = 0;
    if (!dbuf_put(out, "", 0))
        goto toolarge;
    for (size_t i = 0; i <= m; i++) {
        bool legacy = i < m && (t->id_flags[kept[i]] & TOK_F_LEGACY);
        if (i < m && !legacy)
            continue;
        if (i > run) {
            size_t before = out->n;
            if (subs && !dbuf_put(out, " ", 1))
                goto toolarge;
            size_t mark = out->n;
            if ((st = convert_run(t, kept, run, i, out, err)) != MCLI_OK)
                goto done;
            if (out->n == mark && i < m) /* Python drops an empty run before an added token */
                out->n = before, out->p[before] = '\0';
            else
                subs++;
        }
        if (legacy) {
            const char *s = tokenizer_id_to_token(t, kept[i]);
            if ((subs && !dbuf_put(out, " ", 1)) || !dbuf_put(out, s, strlen(s)))
                goto toolarge;
            subs++;
        }
        run = i + 1;
    }
    if (t->cleanup_spaces) {
        wordpiece_cleanup_spaces(out->p);
        out->n = strlen(out->p);
    }
    goto done;
toolarge:
    st = mcli_fail(err, MCLI_ERR_TOO_LARGE, "decoded text is over %u bytes", DECODE_MAX_BYTES);
done:
    free(kept);
    return st;
}

mcli_status tokenizer_decode_len(const mcli_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                                 char **out, size_t *out_len, mcli_err *err)
{
    *out = NULL;
    *out_len = 0;
    dbuf b = {0};
    mcli_status st = decode_into(t, ids, n, skip_special, &b, err);
    if (st != MCLI_OK) {
        free(b.p);
        return st;
    }
    *out = b.p;
    *out_len = b.n;
    return MCLI_OK;
}

mcli_status tokenizer_decode(const mcli_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                             char **out, mcli_err *err)
{
    size_t len;
    return tokenizer_decode_len(t, ids, n, skip_special, out, &len, err);
}

/* --- incremental decoding ------------------------------------------------------------ */

#define DETOK_HOLD 6 /* bytes WordPiece clean-up may still rewrite: " n't" plus a UTF-8 tail */

struct mcli_detok {
    const mcli_tokenizer *t;
    bool skip_special;
    uint8_t pending[8]; /* BPE: an unfinished UTF-8 sequence */
    size_t n_pending;
    dbuf piece;   /* the text returned by the last call */
    int32_t *ids; /* WordPiece: every id so far */
    size_t n_ids, cap_ids;
    size_t emitted; /* WordPiece: bytes of the full decode already returned */
};

mcli_status detok_new(const mcli_tokenizer *t, bool skip_special, mcli_detok **out, mcli_err *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return mcli_fail(err, MCLI_ERR_NOMEM, "detok: out of memory");
    (*out)->t = t;
    (*out)->skip_special = skip_special;
    return MCLI_OK;
}

void detok_free(mcli_detok *d)
{
    if (!d)
        return;
    free(d->piece.p);
    free(d->ids);
    free(d);
}

/* Empties the returned piece (allocating it on first use; d->piece.p stays NULL on failure). */
static void piece_reset(mcli_detok *d)
{
    d->piece.n = 0;
    if (d->piece.p)
        d->piece.p[0] = '\0';
    else
        (void)dbuf_put(&d->piece, "", 0);
}

/* Returns the not-yet-returned part of the full WordPiece decode, minus a held-back tail. */
static mcli_status detok_wordpiece(mcli_detok *d, bool final, mcli_err *err)
{
    dbuf full = {0};
    mcli_status st = decode_into(d->t, d->ids, d->n_ids, d->skip_special, &full, err);
    if (st != MCLI_OK) {
        free(full.p);
        return st;
    }
    size_t upto = full.n;
    if (!final) {
        upto = upto > DETOK_HOLD ? upto - DETOK_HOLD : 0;
        while (upto > 0 && upto < full.n && ((uint8_t)full.p[upto] & 0xC0) == 0x80)
            upto--;
    }
    if (upto > d->emitted && !dbuf_put(&d->piece, full.p + d->emitted, upto - d->emitted)) {
        free(full.p);
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "detok: text too large");
    }
    if (upto > d->emitted)
        d->emitted = upto;
    free(full.p);
    return MCLI_OK;
}

mcli_status detok_push(mcli_detok *d, int32_t id, const char **piece, size_t *piece_len, mcli_err *err)
{
    *piece = "";
    *piece_len = 0;
    const mcli_tokenizer *t = d->t;
    if (id < 0 || (size_t)id >= vocab_id_range(t->vocab))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "token id %ld is outside the vocabulary", (long)id);
    piece_reset(d);
    if (!d->piece.p)
        return mcli_fail(err, MCLI_ERR_NOMEM, "detok: out of memory");
    if (t->kind == MCLI_TOK_WORDPIECE) {
        if (d->n_ids == d->cap_ids) {
            size_t nc = d->cap_ids ? d->cap_ids * 2 : 64;
            int32_t *p = realloc(d->ids, nc * sizeof *p);
            if (!p)
                return mcli_fail(err, MCLI_ERR_NOMEM, "detok: out of memory");
            d->ids = p;
            d->cap_ids = nc;
        }
        d->ids[d->n_ids++] = id;
        mcli_status st = detok_wordpiece(d, false, err);
        if (st != MCLI_OK)
            return st;
    } else {
        if (d->skip_special && (t->id_flags[id] & TOK_F_SPECIAL))
            return MCLI_OK;
        size_t len;
        const char *s = tokenizer_id_to_token(t, id);
        if (!s)
            s = "";
        len = strlen(s);
        uint8_t buf[VOCAB_MAX_TOKEN_BYTES + 8];
        memcpy(buf, d->pending, d->n_pending);
        size_t n = d->n_pending;
        long nb = -1;
        if (!(t->id_flags[id] & TOK_F_ADDED))
            nb = bpe_token_bytes(s, len, buf + n);
        if (nb < 0) {
            memcpy(buf + n, s, len);
            nb = (long)len;
        }
        n += (size_t)nb;
        size_t tail;
        if (!put_utf8_lossy(&d->piece, buf, n, true, &tail))
            return mcli_fail(err, MCLI_ERR_TOO_LARGE, "detok: text too large");
        d->n_pending = tail;
        memcpy(d->pending, buf + n - tail, tail);
    }
    *piece = d->piece.p;
    *piece_len = d->piece.n;
    return MCLI_OK;
}

mcli_status detok_flush(mcli_detok *d, const char **piece, size_t *piece_len, mcli_err *err)
{
    *piece = "";
    *piece_len = 0;
    piece_reset(d);
    if (!d->piece.p)
        return mcli_fail(err, MCLI_ERR_NOMEM, "detok: out of memory");
    if (d->t->kind == MCLI_TOK_WORDPIECE) {
        mcli_status st = detok_wordpiece(d, true, err);
        if (st != MCLI_OK)
            return st;
    } else if (d->n_pending) {
        if (!put_utf8_lossy(&d->piece, d->pending, d->n_pending, false, NULL))
            return mcli_fail(err, MCLI_ERR_TOO_LARGE, "detok: text too large");
        d->n_pending = 0;
    }
    *piece = d->piece.p;
    *piece_len = d->piece.n;
    return MCLI_OK;
}
