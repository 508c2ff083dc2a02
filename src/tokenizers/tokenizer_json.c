/* tokenizer_json.c - the "fast" tokenizer.json format, for the variants BERT, DistilBERT and
 * GPT-2 repositories ship:
 *
 *   WordPiece: model {type WordPiece, vocab, unk_token, continuing_subword_prefix,
 *              max_input_chars_per_word}, normalizer BertNormalizer (or null), pre_tokenizer
 *              BertPreTokenizer (or null), post_processor TemplateProcessing "[CLS] $A [SEP]"
 *              (pair "... $B:1 [SEP]:1") or BertProcessing (or null), decoder WordPiece.
 *   BPE:       model {type BPE, vocab, merges ("a b" strings or ["a","b"] pairs)}, pre_tokenizer
 *              ByteLevel (use_regex true; add_prefix_space honoured), decoder / post_processor
 *              ByteLevel (or null).
 *   added_tokens: [{id, content, special, lstrip, rstrip, ...}], recognised inside text.
 *
 * Anything else (Unigram, WordLevel, other normalizers, templates of another shape) is
 * MCLI_ERR_UNSUPPORTED naming the component, so tokenizer_load() can fall back to the vocab
 * files. The text pipeline is the same code as for vocab.txt / vocab.json (wordpiece.c, bpe.c),
 * so both formats tokenize identically; tokenizer_config.json beside the file still supplies
 * model_max_length and the names of special tokens.
 */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizers/tokenizer_impl.h"
#include "tokenizers/unicode.h"

static const char *type_of(const json_t *obj)
{
    const json_t *t = json_object_get(obj, "type");
    return json_is_string(t) ? json_string_value(t) : NULL;
}

static mcli_status load_vocab_object(mcli_tokenizer *t, const json_t *vocab, const char *path, mcli_err *err)
{
    if (!json_is_object(vocab) || json_object_size(vocab) == 0)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: model.vocab must be a non-empty object of token -> id",
                         path);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)vocab, key, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= VOCAB_MAX_ID)
            return mcli_fail(err, MCLI_ERR_FORMAT,
                             "%s: model.vocab id of \"%.64s\" is not an integer in 0..%d", path, key,
                             VOCAB_MAX_ID - 1);
        if (!uni_utf8_valid((const uint8_t *)key, strlen(key), NULL))
            return mcli_fail(err, MCLI_ERR_FORMAT, "%s: a model.vocab token is not valid UTF-8", path);
        mcli_status st = vocab_set(t->vocab, key, strlen(key), (int32_t)json_integer_value(v), NULL, err);
        if (st != MCLI_OK)
            return mcli_err_prefix(err, "%s", path);
    }
    return MCLI_OK;
}

static mcli_status load_added_tokens(mcli_tokenizer *t, const json_t *root, const char *path, mcli_err *err)
{
    const json_t *added = json_object_get(root, "added_tokens");
    if (!added || json_is_null(added))
        return MCLI_OK;
    if (!json_is_array(added))
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: added_tokens must be an array", path);
    size_t i;
    json_t *a;
    json_array_foreach((json_t *)added, i, a)
    {
        const json_t *id = json_object_get(a, "id");
        const json_t *content = json_object_get(a, "content");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= VOCAB_MAX_ID ||
            !json_is_string(content))
            return mcli_fail(err, MCLI_ERR_FORMAT,
                             "%s: added_tokens[%zu] needs an integer id and a string content", path, i);
        mcli_status st =
            tok_add_token(t, json_string_value(content), json_string_length(content),
                          (int32_t)json_integer_value(id), tok_json_bool(a, "special", false),
                          tok_json_bool(a, "lstrip", false), tok_json_bool(a, "rstrip", false), err);
        if (st != MCLI_OK)
            return mcli_err_prefix(err, "%s: added_tokens[%zu]", path, i);
    }
    return MCLI_OK;
}

/* The id of a template's special token: special_tokens[name].ids[0]. */
static mcli_status template_special(const json_t *pp, const json_t *piece, int32_t *id, const char *path,
                                    mcli_err *err)
{
    const json_t *st = json_object_get(piece, "SpecialToken");
    const json_t *name = json_object_get(st, "id");
    const json_t *entry = json_object_get(json_object_get(pp, "special_tokens"),
                                          json_string_value(name) ? json_string_value(name) : "");
    const json_t *ids = json_object_get(entry, "ids");
    if (!json_is_string(name) || !json_is_array(ids) || json_array_size(ids) != 1 ||
        !json_is_integer(json_array_get(ids, 0)))
        return mcli_fail(err, MCLI_ERR_UNSUPPORTED,
                         "%s: post_processor special token entry is not a single id", path);
    json_int_t v = json_integer_value(json_array_get(ids, 0));
    if (v < 0 || v >= VOCAB_MAX_ID)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: post_processor special token id out of range", path);
    *id = (int32_t)v;
    return MCLI_OK;
}

static bool is_sequence(const json_t *piece, const char *which)
{
    const json_t *s = json_object_get(json_object_get(piece, "Sequence"), "id");
    return json_is_string(s) && !strcmp(json_string_value(s), which);
}

/* Accepts [CLS] $A [SEP] with pair [CLS] $A [SEP] $B [SEP] (BERT), or $A alone (no specials). */
static mcli_status load_post_processor(mcli_tokenizer *t, const json_t *root, const char *path, mcli_err *err)
{
    const json_t *pp = json_object_get(root, "post_processor");
    if (!pp || json_is_null(pp))
        return MCLI_OK;
    const char *type = type_of(pp);
    if (!type)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: post_processor has no type", path);
    if (!strcmp(type, "ByteLevel"))
        return MCLI_OK;
    if (!strcmp(type, "BertProcessing")) {
        const json_t *cls = json_object_get(pp, "cls"), *sep = json_object_get(pp, "sep");
        if (!json_is_array(cls) || !json_is_array(sep) || !json_is_integer(json_array_get(cls, 1)) ||
            !json_is_integer(json_array_get(sep, 1)))
            return mcli_fail(err, MCLI_ERR_FORMAT, "%s: BertProcessing needs cls and sep as [token, id]",
                             path);
        t->pp_cls = (int32_t)json_integer_value(json_array_get(cls, 1));
        t->pp_sep = (int32_t)json_integer_value(json_array_get(sep, 1));
        return MCLI_OK;
    }
    if (strcmp(type, "TemplateProcessing") != 0)
        return mcli_fail(err, MCLI_ERR_UNSUPPORTED, "%s: post_processor type \"%s\" is not supported", path,
                         type);
    const json_t *single = json_object_get(pp, "single"), *pair = json_object_get(pp, "pair");
    if (json_is_array(single) && json_array_size(single) == 1 && is_sequence(json_array_get(single, 0), "A"))
        return MCLI_OK;
    if (!json_is_array(single) || json_array_size(single) != 3 ||
        !is_sequence(json_array_get(single, 1), "A") || !json_is_array(pair) || json_array_size(pair) != 5 ||
        !is_sequence(json_array_get(pair, 3), "B"))
        return mcli_fail(
            err, MCLI_ERR_UNSUPPORTED,
            "%s: only the \"[CLS] $A [SEP]\" / \"[CLS] $A [SEP] $B [SEP]\" template is supported", path);
    int32_t cls, sep, pcls, psep1, psep2;
    mcli_status st;
    if ((st = template_special(pp, json_array_get(single, 0), &cls, path, err)) != MCLI_OK ||
        (st = template_special(pp, json_array_get(single, 2), &sep, path, err)) != MCLI_OK ||
        (st = template_special(pp, json_array_get(pair, 0), &pcls, path, err)) != MCLI_OK ||
        (st = template_special(pp, json_array_get(pair, 2), &psep1, path, err)) != MCLI_OK ||
        (st = template_special(pp, json_array_get(pair, 4), &psep2, path, err)) != MCLI_OK)
        return st;
    if (pcls != cls || psep1 != sep || psep2 != sep)
        return mcli_fail(err, MCLI_ERR_UNSUPPORTED,
                         "%s: the pair template uses other special tokens than the single one", path);
    t->pp_cls = cls;
    t->pp_sep = sep;
    return MCLI_OK;
}

static mcli_status load_wordpiece(mcli_tokenizer *t, const json_t *root, const json_t *model,
                                  const char *path, mcli_err *err)
{
    mcli_status st = load_vocab_object(t, json_object_get(model, "vocab"), path, err);
    if (st != MCLI_OK)
        return st;
    t->base_vocab = vocab_id_range(t->vocab);
    wp_opts o = {.lowercase = false,
                 .strip_accents = -1,
                 .tokenize_chinese = false,
                 .clean_text = false,
                 .unk_id = -1,
                 .max_input_chars = 100,
                 .prefix = "##"};
    const json_t *unk = json_object_get(model, "unk_token");
    if (!json_is_string(unk) ||
        (o.unk_id = vocab_find(t->vocab, json_string_value(unk), json_string_length(unk))) < 0)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: model.unk_token is missing or not in the vocabulary",
                         path);
    t->sp.unk = o.unk_id;
    const json_t *prefix = json_object_get(model, "continuing_subword_prefix");
    if (json_is_string(prefix)) {
        if (json_string_length(prefix) >= sizeof o.prefix)
            return mcli_fail(err, MCLI_ERR_UNSUPPORTED, "%s: continuing_subword_prefix is too long", path);
        memcpy(o.prefix, json_string_value(prefix), json_string_length(prefix) + 1);
    }
    const json_t *maxc = json_object_get(model, "max_input_chars_per_word");
    if (json_is_integer(maxc) && json_integer_value(maxc) > 0 && json_integer_value(maxc) <= 1000000)
        o.max_input_chars = (size_t)json_integer_value(maxc);

    const json_t *norm = json_object_get(root, "normalizer");
    if (norm && !json_is_null(norm)) {
        const char *nt = type_of(norm);
        if (!nt || strcmp(nt, "BertNormalizer") != 0)
            return mcli_fail(err, MCLI_ERR_UNSUPPORTED,
                             "%s: normalizer \"%s\" is not supported (only BertNormalizer)", path,
                             nt ? nt : "?");
        o.clean_text = tok_json_bool(norm, "clean_text", true);
        o.tokenize_chinese = tok_json_bool(norm, "handle_chinese_chars", true);
        o.lowercase = tok_json_bool(norm, "lowercase", true);
        const json_t *sa = json_object_get(norm, "strip_accents");
        if (json_is_boolean(sa))
            o.strip_accents = json_is_true(sa) ? 1 : 0;
    } else {
        o.strip_accents = 0;
    }
    const json_t *pre = json_object_get(root, "pre_tokenizer");
    if (pre && !json_is_null(pre)) {
        const char *pt = type_of(pre);
        if (!pt || strcmp(pt, "BertPreTokenizer") != 0)
            return mcli_fail(
                err, MCLI_ERR_UNSUPPORTED,
                "%s: pre_tokenizer \"%s\" is not supported with WordPiece (only BertPreTokenizer)", path,
                pt ? pt : "?");
    }
    const json_t *dec = json_object_get(root, "decoder");
    if (dec && !json_is_null(dec)) {
        const char *dt = type_of(dec);
        if (!dt || strcmp(dt, "WordPiece") != 0)
            return mcli_fail(err, MCLI_ERR_UNSUPPORTED, "%s: decoder \"%s\" is not supported with WordPiece",
                             path, dt ? dt : "?");
        t->cleanup_spaces = tok_json_bool(dec, "cleanup", true);
        const json_t *dp = json_object_get(dec, "prefix");
        if (json_is_string(dp) && json_string_length(dp) < sizeof t->wp_prefix)
            memcpy(t->wp_prefix, json_string_value(dp), json_string_length(dp) + 1);
    }
    t->wpo = o;
    return wordpiece_new(t->vocab, &o, &t->wp, err);
}

static mcli_status load_bpe(mcli_tokenizer *t, const json_t *root, const json_t *model, const char *path,
                            mcli_err *err)
{
    mcli_status st = load_vocab_object(t, json_object_get(model, "vocab"), path, err);
    if (st != MCLI_OK)
        return st;
    t->base_vocab = vocab_id_range(t->vocab);
    const json_t *csp = json_object_get(model, "continuing_subword_prefix");
    const json_t *eow = json_object_get(model, "end_of_word_suffix");
    if ((json_is_string(csp) && json_string_length(csp)) ||
        (json_is_string(eow) && json_string_length(eow)) ||
        json_is_true(json_object_get(model, "byte_fallback")) ||
        (json_object_get(model, "dropout") && !json_is_null(json_object_get(model, "dropout"))))
        return mcli_fail(err, MCLI_ERR_UNSUPPORTED,
                         "%s: BPE with a subword prefix/suffix, byte fallback or dropout is not supported",
                         path);
    const json_t *pre = json_object_get(root, "pre_tokenizer");
    const char *pt = pre ? type_of(pre) : NULL;
    if (!pt || strcmp(pt, "ByteLevel") != 0 || !tok_json_bool(pre, "use_regex", true))
        return mcli_fail(
            err, MCLI_ERR_UNSUPPORTED,
            "%s: only byte-level BPE (pre_tokenizer ByteLevel with the GPT-2 regex) is supported", path);
    t->add_prefix_space = tok_json_bool(pre, "add_prefix_space", false);
    const json_t *norm = json_object_get(root, "normalizer");
    if (norm && !json_is_null(norm))
        return mcli_fail(err, MCLI_ERR_UNSUPPORTED, "%s: a normalizer with byte-level BPE is not supported",
                         path);
    const json_t *dec = json_object_get(root, "decoder");
    if (dec && !json_is_null(dec) && (!type_of(dec) || strcmp(type_of(dec), "ByteLevel") != 0))
        return mcli_fail(err, MCLI_ERR_UNSUPPORTED, "%s: decoder \"%s\" is not supported with byte-level BPE",
                         path, type_of(dec) ? type_of(dec) : "?");

    if ((st = bpe_new(t->vocab, &t->bpe, err)) != MCLI_OK)
        return mcli_err_prefix(err, "%s", path);
    const json_t *merges = json_object_get(model, "merges");
    if (!json_is_array(merges))
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: model.merges must be an array", path);
    size_t i;
    json_t *m;
    json_array_foreach((json_t *)merges, i, m)
    {
        const char *l, *r;
        size_t ll, rl;
        if (json_is_string(m)) {
            const char *s = json_string_value(m);
            const char *sp = strchr(s, ' ');
            if (!sp || sp == s || !sp[1] || strchr(sp + 1, ' '))
                return mcli_fail(err, MCLI_ERR_FORMAT, "%s: model.merges[%zu] is not \"left right\"", path,
                                 i);
            l = s, ll = (size_t)(sp - s), r = sp + 1, rl = strlen(sp + 1);
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            l = json_string_value(json_array_get(m, 0)), ll = json_string_length(json_array_get(m, 0));
            r = json_string_value(json_array_get(m, 1)), rl = json_string_length(json_array_get(m, 1));
        } else {
            return mcli_fail(err, MCLI_ERR_FORMAT,
                             "%s: model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", path, i);
        }
        bool skipped;
        if (i >= UINT32_MAX)
            return mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: too many merges", path);
        if ((st = bpe_add_merge(t->bpe, l, ll, r, rl, (uint32_t)i, &skipped, err)) != MCLI_OK)
            return mcli_err_prefix(err, "%s", path);
    }
    return MCLI_OK;
}

mcli_status tokenizer_json_load(const char *path, mcli_tokenizer **out, mcli_err *err)
{
    *out = NULL;
    char *buf = NULL;
    size_t len;
    json_t *root = NULL, *cfg = NULL, *map = NULL;
    mcli_tokenizer *t = NULL;
    mcli_status st = tok_read_file(path, TOK_MAX_JSON_BYTES, &buf, &len, err);
    if (st != MCLI_OK)
        return st;
    json_error_t je;
    root = json_loadb(buf, len, 0, &je);
    free(buf);
    if (!root)
        return mcli_fail(err, MCLI_ERR_FORMAT,
                         "%s: invalid JSON at line %d column %d: %s (truncated download?)", path, je.line,
                         je.column, je.text);
    const json_t *model = json_object_get(root, "model");
    const char *mt = json_is_object(model) ? type_of(model) : NULL;
    if (!mt && json_is_object(model) && json_object_get(model, "merges"))
        mt = "BPE";
    if (!mt) {
        st = mcli_fail(err, MCLI_ERR_FORMAT, "%s: no model object with a type", path);
        goto fail;
    }
    bool wp = !strcmp(mt, "WordPiece");
    if (!wp && strcmp(mt, "BPE") != 0) {
        st = mcli_fail(err, MCLI_ERR_UNSUPPORTED,
                       "%s: model type \"%s\" is not supported (WordPiece and BPE are)", path, mt);
        goto fail;
    }
    if ((st = tok_alloc(wp ? MCLI_TOK_WORDPIECE : MCLI_TOK_BPE, &t, err)) != MCLI_OK)
        goto fail;
    t->source = "tokenizer.json";
    if ((st = wp ? load_wordpiece(t, root, model, path, err) : load_bpe(t, root, model, path, err)) !=
            MCLI_OK ||
        (st = load_added_tokens(t, root, path, err)) != MCLI_OK ||
        (st = load_post_processor(t, root, path, err)) != MCLI_OK)
        goto fail;

    /* tokenizer_config.json / special_tokens_map.json beside it: names of the special
     * tokens, model_max_length, clean_up_tokenization_spaces. */
    char dir[4096];
    if (strlen(path) >= sizeof dir) {
        st = mcli_fail(err, MCLI_ERR_INVALID_ARG, "path too long: %s", path);
        goto fail;
    }
    memcpy(dir, path, strlen(path) + 1);
    char *d = dirname(dir);
    char cpath[4200];
    snprintf(cpath, sizeof cpath, "%s/tokenizer_config.json", d);
    if ((st = tok_load_json_file(cpath, &cfg, true, err)) != MCLI_OK)
        goto fail;
    snprintf(cpath, sizeof cpath, "%s/special_tokens_map.json", d);
    if ((st = tok_load_json_file(cpath, &map, true, err)) != MCLI_OK)
        goto fail;
    if (wp) {
        int32_t unk = t->sp.unk;
        if ((st = tok_resolve_special(t, cfg, map, "sep_token", "[SEP]", &t->sp.sep, err)) != MCLI_OK ||
            (st = tok_resolve_special(t, cfg, map, "pad_token", "[PAD]", &t->sp.pad, err)) != MCLI_OK ||
            (st = tok_resolve_special(t, cfg, map, "cls_token", "[CLS]", &t->sp.cls, err)) != MCLI_OK ||
            (st = tok_resolve_special(t, cfg, map, "mask_token", "[MASK]", &t->sp.mask, err)) != MCLI_OK)
            goto fail;
        const char *unk_text = vocab_str(t->vocab, unk, NULL);
        if (unk_text &&
            (st = tok_add_token(t, unk_text, strlen(unk_text), unk, true, false, false, err)) != MCLI_OK)
            goto fail;
        t->sp.unk = unk;
    } else {
        if ((st = tok_resolve_special(t, cfg, map, "unk_token", "<|endoftext|>", &t->sp.unk, err)) !=
                MCLI_OK ||
            (st = tok_resolve_special(t, cfg, map, "bos_token", "<|endoftext|>", &t->sp.bos, err)) !=
                MCLI_OK ||
            (st = tok_resolve_special(t, cfg, map, "eos_token", "<|endoftext|>", &t->sp.eos, err)) !=
                MCLI_OK ||
            (st = tok_resolve_special(t, cfg, map, "pad_token", NULL, &t->sp.pad, err)) != MCLI_OK)
            goto fail;
    }
    t->model_max_length = tok_json_max_length(cfg);
    const json_t *cu = cfg ? json_object_get(cfg, "clean_up_tokenization_spaces") : NULL;
    if (json_is_boolean(cu))
        t->cleanup_spaces = json_is_true(cu);
    if ((st = tok_finish(t, err)) != MCLI_OK)
        goto fail;
    json_decref(root);
    json_decref(cfg);
    json_decref(map);
    *out = t;
    return MCLI_OK;
fail:
    json_decref(root);
    json_decref(cfg);
    json_decref(map);
    tokenizer_free(t);
    return st;
}
