/* tokenizer.json ("fast" format): built at test time from the shared vocabularies in the shape
 * the hub's bert-base-uncased and gpt2 repositories ship, it must tokenize the whole corpus
 * exactly like vocab.txt / vocab.json + merges.txt (ids, type ids, offsets, decode, pairs with
 * truncation); it is preferred when both exist; added tokens (special or not, lstrip/rstrip)
 * work; hostile files (truncated, huge, unsupported components, bad merges) are clear errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>

#include "tok_testlib.h"

static json_t *special_token(const char *content, int id, bool special)
{
    return json_pack("{s:i,s:s,s:b,s:b,s:b,s:b,s:b}", "id", id, "content", content, "single_word", 0,
                     "lstrip", 0, "rstrip", 0, "normalized", 0, "special", special);
}

static json_t *template_piece(const char *kind, const char *id, int type_id)
{
    return json_pack("{s:{s:s,s:i}}", kind, "id", id, "type_id", type_id);
}

/* bert-base-uncased tokenizer.json from vocab.txt */
static json_t *build_bert_json(void)
{
    FILE *f = fopen(BERT_VOCAB, "rb");
    assert_non_null(f);
    json_t *vocab = json_object();
    char line[1100];
    int id = 0;
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        if (n && line[n - 1] == '\n')
            line[--n] = '\0';
        json_object_set_new(vocab, line, json_integer(id++));
    }
    fclose(f);
    json_t *added = json_array();
    json_array_append_new(added, special_token("[PAD]", 0, true));
    json_array_append_new(added, special_token("[UNK]", 100, true));
    json_array_append_new(added, special_token("[CLS]", 101, true));
    json_array_append_new(added, special_token("[SEP]", 102, true));
    json_array_append_new(added, special_token("[MASK]", 103, true));
    json_t *single = json_array(), *pair = json_array();
    json_array_append_new(single, template_piece("SpecialToken", "[CLS]", 0));
    json_array_append_new(single, template_piece("Sequence", "A", 0));
    json_array_append_new(single, template_piece("SpecialToken", "[SEP]", 0));
    json_array_append_new(pair, template_piece("SpecialToken", "[CLS]", 0));
    json_array_append_new(pair, template_piece("Sequence", "A", 0));
    json_array_append_new(pair, template_piece("SpecialToken", "[SEP]", 0));
    json_array_append_new(pair, template_piece("Sequence", "B", 1));
    json_array_append_new(pair, template_piece("SpecialToken", "[SEP]", 1));
    json_t *root = json_pack(
        "{s:s,s:n,s:n,s:o,s:{s:s,s:b,s:b,s:n,s:b},s:{s:s},"
        "s:{s:s,s:o,s:o,s:{s:{s:s,s:[i],s:[s]},s:{s:s,s:[i],s:[s]}}},s:{s:s,s:s,s:b},"
        "s:{s:s,s:s,s:s,s:i,s:o}}",
        "version", "1.0", "truncation", "padding", "added_tokens", added, "normalizer", "type",
        "BertNormalizer", "clean_text", 1, "handle_chinese_chars", 1, "strip_accents", "lowercase", 1,
        "pre_tokenizer", "type", "BertPreTokenizer", "post_processor", "type", "TemplateProcessing", "single",
        single, "pair", pair, "special_tokens", "[CLS]", "id", "[CLS]", "ids", 101, "tokens", "[CLS]",
        "[SEP]", "id", "[SEP]", "ids", 102, "tokens", "[SEP]", "decoder", "type", "WordPiece", "prefix", "##",
        "cleanup", 1, "model", "type", "WordPiece", "unk_token", "[UNK]", "continuing_subword_prefix", "##",
        "max_input_chars_per_word", 100, "vocab", vocab);
    assert_non_null(root);
    return root;
}

/* gpt2 tokenizer.json from vocab.json + merges.txt; merges as "a b" or as ["a", "b"] */
static json_t *build_gpt2_json(bool pair_merges)
{
    json_error_t je;
    json_t *vocab = json_load_file(GPT2_VOCAB, 0, &je);
    assert_non_null(vocab);
    FILE *f = fopen(GPT2_MERGES, "rb");
    assert_non_null(f);
    json_t *merges = json_array();
    char line[1100];
    bool first = true;
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        if (n && line[n - 1] == '\n')
            line[--n] = '\0';
        if ((first && !strncmp(line, "#version", 8)) || n == 0) {
            first = false;
            continue;
        }
        first = false;
        char *sp = strchr(line, ' ');
        assert_non_null(sp);
        if (pair_merges) {
            *sp = '\0';
            json_array_append_new(merges, json_pack("[ss]", line, sp + 1));
        } else {
            json_array_append_new(merges, json_string(line));
        }
    }
    fclose(f);
    json_t *added = json_array();
    json_array_append_new(added, special_token("<|endoftext|>", 50256, true));
    json_t *root =
        json_pack("{s:s,s:o,s:n,s:{s:s,s:b,s:b,s:b},s:{s:s,s:b,s:b,s:b},s:{s:s,s:b,s:b,s:b},"
                  "s:{s:s,s:n,s:n,s:s,s:s,s:b,s:b,s:o,s:o}}",
                  "version", "1.0", "added_tokens", added, "normalizer", "pre_tokenizer", "type", "ByteLevel",
                  "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 1, "post_processor", "type",
                  "ByteLevel", "add_prefix_space", 1, "trim_offsets", 0, "use_regex", 1, "decoder", "type",
                  "ByteLevel", "add_prefix_space", 1, "trim_offsets", 1, "use_regex", 1, "model", "type",
                  "BPE", "dropout", "unk_token", "continuing_subword_prefix", "", "end_of_word_suffix", "",
                  "fuse_unk", 0, "byte_fallback", 0, "vocab", vocab, "merges", merges);
    assert_non_null(root);
    return root;
}

/* Built once per run (reading the vocabularies is the slow part, above all under ASan); each
 * use gets its own deep copy to modify. */
static json_t *bert_cached, *gpt2_cached;

static int build_all(void **state)
{
    (void)state;
    bert_cached = build_bert_json();
    gpt2_cached = build_gpt2_json(false);
    return 0;
}

static int free_all(void **state)
{
    (void)state;
    json_decref(bert_cached);
    json_decref(gpt2_cached);
    return 0;
}

static json_t *bert_json(void)
{
    return json_deep_copy(bert_cached);
}

static json_t *gpt2_json(bool pair_merges)
{
    return pair_merges ? build_gpt2_json(true) : json_deep_copy(gpt2_cached);
}

static char *json_dir(json_t *root, const char *config)
{
    char *dir = tt_tmpdir();
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    assert_int_equal(json_dump_file(root, path, JSON_COMPACT), 0);
    if (config)
        tt_write_str(dir, "tokenizer_config.json", config);
    return dir;
}

static json_t *corpus(void)
{
    json_error_t je;
    json_t *c =
        json_load_file(MCLI_SOURCE_DIR "/tests/fixtures/gen/tokenizer_corpus.json", JSON_ALLOW_NUL, &je);
    if (!c)
        fail_msg("corpus: %s", je.text);
    return c;
}

static bool same_encoding(const mcli_encoding *a, const mcli_encoding *b)
{
    return a->n == b->n && a->truncated == b->truncated && !memcmp(a->ids, b->ids, a->n * sizeof *a->ids) &&
           !memcmp(a->type_ids, b->type_ids, a->n * sizeof *a->type_ids) &&
           !memcmp(a->offsets, b->offsets, 2 * a->n * sizeof *a->offsets) &&
           !memcmp(a->special, b->special, a->n);
}

/* Every corpus string (the first `limit` if non-zero) alone and paired with the next one
 * (truncated to 24 tokens). */
static void compare_on_corpus(const mcli_tokenizer *x, const mcli_tokenizer *y, size_t limit)
{
    json_t *c = corpus();
    size_t n = json_array_size(c);
    assert_true(n >= 100);
    if (limit && limit < n)
        n = limit;
    for (size_t i = 0; i < n; i++) {
        const json_t *t1 = json_array_get(c, i), *t2 = json_array_get(c, (i + 1) % n);
        for (int mode = 0; mode < 2; mode++) {
            mcli_tok_opts o = {.add_special_tokens = true, .max_length = mode ? 24 : 0, .truncate = true};
            mcli_encoding a, b;
            mcli_err err;
            const char *p = mode ? json_string_value(t2) : NULL;
            size_t pl = mode ? json_string_length(t2) : 0;
            assert_int_equal(
                tokenizer_encode(x, json_string_value(t1), json_string_length(t1), p, pl, &o, &a, &err),
                MCLI_OK);
            assert_int_equal(
                tokenizer_encode(y, json_string_value(t1), json_string_length(t1), p, pl, &o, &b, &err),
                MCLI_OK);
            if (!same_encoding(&a, &b))
                fail_msg("case %zu mode %d \"%s\": %s", i, mode, json_string_value(t1), tt_tokens(x, &a));
            char *da, *db;
            size_t la, lb;
            assert_int_equal(tokenizer_decode_len(x, a.ids, a.n, mode, &da, &la, &err), MCLI_OK);
            assert_int_equal(tokenizer_decode_len(y, b.ids, b.n, mode, &db, &lb, &err), MCLI_OK);
            assert_int_equal(la, lb);
            assert_memory_equal(da, db, la);
            free(da);
            free(db);
            encoding_free(&a);
            encoding_free(&b);
        }
    }
    json_decref(c);
}

static void bert_tokenizer_json_equals_vocab_txt_on_corpus(void **state)
{
    (void)state;
    json_t *root = bert_json();
    char *jdir = json_dir(root, "{\"model_max_length\": 512}");
    json_decref(root);
    char *vdir = tt_bert_dir(NULL);
    mcli_tokenizer *a = tt_load(jdir), *b = tt_load(vdir);
    assert_int_equal(tokenizer_kind(a), MCLI_TOK_WORDPIECE);
    assert_int_equal(tokenizer_vocab_size(a), 30522);
    assert_memory_equal(tokenizer_special(a), tokenizer_special(b), sizeof(mcli_special_ids));
    assert_int_equal(tokenizer_model_max_length(a), 512);
    compare_on_corpus(a, b, 0);
    tokenizer_free(a);
    tokenizer_free(b);
    tt_rmdir(jdir);
    tt_rmdir(vdir);
}

static void gpt2_tokenizer_json_equals_vocab_json_on_corpus(void **state)
{
    (void)state;
    char *vdir = tt_gpt2_dir();
    mcli_tokenizer *b = tt_load(vdir);
    for (int pairs = 0; pairs < 2; pairs++) {
        json_t *root = gpt2_json(pairs);
        char *jdir = json_dir(root, NULL);
        json_decref(root);
        mcli_tokenizer *a = tt_load(jdir);
        assert_int_equal(tokenizer_kind(a), MCLI_TOK_BPE);
        assert_int_equal(tokenizer_special(a)->eos, 50256);
        compare_on_corpus(a, b, pairs ? 40 : 0); /* the ["a","b"] merges form: a shorter check */
        tokenizer_free(a);
        tt_rmdir(jdir);
    }
    tokenizer_free(b);
    tt_rmdir(vdir);
}

static void tokenizer_json_is_preferred_over_vocab_files(void **state)
{
    (void)state;
    json_t *root = bert_json();
    json_object_set_new(json_object_get(root, "model"), "max_input_chars_per_word", json_integer(5));
    char *dir = json_dir(root, NULL);
    json_decref(root);
    tt_link(dir, "vocab.txt", BERT_VOCAB);
    mcli_tokenizer *t = tt_load(dir);
    mcli_encoding e = tt_encode(t, "hello wonderful", false);
    assert_string_equal(tt_tokens(t, &e), "hello|[UNK]"); /* the 5-char limit came from tokenizer.json */
    encoding_free(&e);
    tokenizer_free(t);
    tt_rmdir(dir);
}

static void added_tokens_are_matched_in_text(void **state)
{
    (void)state;
    json_t *root = gpt2_json(false);
    json_t *added = json_object_get(root, "added_tokens");
    json_array_append_new(added, json_pack("{s:i,s:s,s:b,s:b,s:b,s:b,s:b}", "id", 50257, "content", "<x>",
                                           "single_word", 0, "lstrip", 1, "rstrip", 1, "normalized", 0,
                                           "special", 0));
    json_array_append_new(added, json_pack("{s:i,s:s,s:b,s:b,s:b,s:b,s:b}", "id", 50258, "content", "<sep>",
                                           "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 0,
                                           "special", 1));
    char *dir = json_dir(root, NULL);
    json_decref(root);
    mcli_tokenizer *t = tt_load(dir);
    assert_int_equal(tokenizer_vocab_size(t), 50259);
    mcli_encoding e = tt_encode(t, "a <x> b <sep> c", false);
    assert_string_equal(tt_tokens(t, &e), "a|<x>|b|Ġ|<sep>|Ġc"); /* <x> absorbs the spaces around it */
    assert_string_equal(tt_offsets(&e), "0-1 2-5 6-7 7-8 8-13 13-15");
    char *s;
    mcli_err err;
    /* Python's _decode: added tokens outside the base vocabulary are sub-texts of their own, and
     * sub-texts are joined with " " (spaces_between_special_tokens): "a", "<x>", "b ", "<sep>", " c" */
    assert_int_equal(tokenizer_decode(t, e.ids, e.n, false, &s, &err), MCLI_OK);
    assert_string_equal(s, "a <x> b  <sep>  c");
    free(s);
    assert_int_equal(tokenizer_decode(t, e.ids, e.n, true, &s, &err), MCLI_OK);
    assert_string_equal(s, "a <x> b  c");
    free(s);
    encoding_free(&e);
    tokenizer_free(t);
    tt_rmdir(dir);
}

static mcli_status load_status(const char *dir, mcli_err *err)
{
    mcli_tokenizer *t = NULL;
    mcli_status st = tokenizer_load(dir, &t, err);
    tokenizer_free(t);
    return st;
}

static void write_json(const char *dir, json_t *root)
{
    char *s = json_dumps(root, JSON_COMPACT);
    assert_non_null(s);
    tt_write_str(dir, "tokenizer.json", s);
    free(s);
}

/* A byte-level BPE tokenizer.json with the 256 byte symbols and GPT-2's first 8 merges only:
 * the hostile-merges cases need no 2 MB file. */
static json_t *small_bpe_json(void)
{
    json_t *full_model = json_object_get(gpt2_cached, "model");
    json_t *full_vocab = json_object_get(full_model, "vocab");
    json_t *vocab = json_object(), *merges = json_array();
    const char *key;
    json_t *v;
    json_object_foreach(full_vocab, key, v) if (json_integer_value(v) < 256) json_object_set(vocab, key, v);
    for (size_t i = 0; i < 8; i++) {
        const char *m = json_string_value(json_array_get(json_object_get(full_model, "merges"), i));
        char buf[64];
        snprintf(buf, sizeof buf, "%s", m);
        char *sp = strchr(buf, ' ');
        assert_non_null(sp);
        *sp = '\0';
        char joined[64];
        snprintf(joined, sizeof joined, "%s%s", buf, sp + 1);
        json_object_set(vocab, joined, json_object_get(full_vocab, joined));
        json_array_append_new(merges, json_string(m));
    }
    json_t *root = json_copy(gpt2_cached), *model = json_copy(full_model); /* shallow: shares the rest */
    json_object_set_new(model, "vocab", vocab);
    json_object_set_new(model, "merges", merges);
    json_object_set_new(root, "model", model);
    return root;
}

static void hostile_tokenizer_json_files_are_clear_errors(void **state)
{
    (void)state;
    mcli_err err;
    json_t *root = bert_json();
    char *full = json_dumps(root, JSON_COMPACT);
    char *dir = tt_tmpdir();
    tt_write(dir, "tokenizer.json", full, strlen(full) / 2); /* truncated download */
    assert_int_equal(load_status(dir, &err), MCLI_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "invalid JSON"));
    free(full);

    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)129 << 20), 0); /* sparse: over the 128 MiB cap */
    close(fd);
    assert_int_equal(load_status(dir, &err), MCLI_ERR_TOO_LARGE);

    tt_write_str(dir, "tokenizer.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}");
    assert_int_equal(load_status(dir, &err), MCLI_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "Unigram"));
    tt_link(dir, "vocab.txt", BERT_VOCAB); /* unsupported tokenizer.json + vocab.txt: falls back */
    assert_int_equal(load_status(dir, &err), MCLI_OK);
    tt_rmdir(dir);

    dir = tt_tmpdir();
    tt_write_str(dir, "tokenizer.json", "[]");
    assert_int_equal(load_status(dir, &err), MCLI_ERR_FORMAT);
    json_object_set_new(json_object_get(root, "normalizer"), "type", json_string("NFKC"));
    write_json(dir, root);
    assert_int_equal(load_status(dir, &err), MCLI_ERR_UNSUPPORTED);
    json_object_set_new(json_object_get(root, "normalizer"), "type", json_string("BertNormalizer"));
    json_array_remove(json_object_get(json_object_get(root, "post_processor"), "single"), 0);
    write_json(dir, root);
    assert_int_equal(load_status(dir, &err), MCLI_ERR_UNSUPPORTED);
    json_decref(root);
    root = bert_json();
    json_object_set_new(json_object_get(root, "model"), "unk_token", json_string("<nope>"));
    write_json(dir, root);
    assert_int_equal(load_status(dir, &err), MCLI_ERR_FORMAT);
    json_decref(root);
    root = bert_json();
    json_array_append_new(json_object_get(root, "added_tokens"), json_pack("{s:s}", "content", "x"));
    write_json(dir, root);
    assert_int_equal(load_status(dir, &err), MCLI_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "added_tokens"));
    json_decref(root);

    root = small_bpe_json();
    json_t *merges = json_object_get(json_object_get(root, "model"), "merges");
    json_array_set_new(merges, 7, json_string("nospace"));
    write_json(dir, root);
    assert_int_equal(load_status(dir, &err), MCLI_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "merges[7]"));
    json_array_set_new(merges, 7, json_integer(3));
    write_json(dir, root);
    assert_int_equal(load_status(dir, &err), MCLI_ERR_FORMAT);
    json_array_set_new(merges, 7, json_string("Ġ t"));
    json_object_set_new(json_object_get(root, "model"), "byte_fallback", json_true());
    write_json(dir, root);
    assert_int_equal(load_status(dir, &err), MCLI_ERR_UNSUPPORTED);
    json_decref(root);
    tt_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bert_tokenizer_json_equals_vocab_txt_on_corpus),
        cmocka_unit_test(gpt2_tokenizer_json_equals_vocab_json_on_corpus),
        cmocka_unit_test(tokenizer_json_is_preferred_over_vocab_files),
        cmocka_unit_test(added_tokens_are_matched_in_text),
        cmocka_unit_test(hostile_tokenizer_json_files_are_clear_errors),
    };
    return cmocka_run_group_tests(tests, build_all, free_all);
}
