/* BERT WordPiece: every rule of shared/notes/tokenizer-reference.md (and transformers'
 * BasicTokenizer) checked one by one with hand-checked values on the real bert-base-uncased
 * vocabulary (ids are line numbers - 1 of vocab.txt), offsets, pairs and truncation, decode
 * clean-up, vocab.txt edge cases and hostile files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>

#include "tok_testlib.h"

static mcli_tokenizer *bert;
static char *bert_dir;

static int setup(void **state)
{
    (void)state;
    bert_dir = tt_bert_dir(NULL);
    bert = tt_load(bert_dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tokenizer_free(bert);
    tt_rmdir(bert_dir);
    return 0;
}

/* tokens of text (no [CLS]/[SEP]) joined by '|' */
static void expect_tokens(const mcli_tokenizer *t, const char *text, const char *want)
{
    mcli_encoding e = tt_encode(t, text, false);
    const char *got = tt_tokens(t, &e);
    if (strcmp(got, want) != 0)
        fail_msg("\"%s\": got %s, want %s", text, got, want);
    encoding_free(&e);
}

static void expect_offsets(const mcli_tokenizer *t, const char *text, bool specials, const char *want)
{
    mcli_encoding e = tt_encode(t, text, specials);
    const char *got = tt_offsets(&e);
    if (strcmp(got, want) != 0)
        fail_msg("\"%s\": offsets %s, want %s", text, got, want);
    encoding_free(&e);
}

static void expect_same_ids(const mcli_tokenizer *t, const char *a, const char *b)
{
    mcli_encoding ea = tt_encode(t, a, false), eb = tt_encode(t, b, false);
    char ta[4096];
    snprintf(ta, sizeof ta, "%s", tt_tokens(t, &ea));
    if (ea.n != eb.n || memcmp(ea.ids, eb.ids, ea.n * sizeof *ea.ids) != 0)
        fail_msg("\"%s\" -> %s but \"%s\" -> %s", a, ta, b, tt_tokens(t, &eb));
    assert_true(ea.n > 0);
    encoding_free(&ea);
    encoding_free(&eb);
}

static void cleaning_deletes_controls_format_chars_and_noncharacters(void **state)
{
    (void)state;
    /* ZWJ U+200D, soft hyphen U+00AD, BOM U+FEFF, private use U+E000, U+FFFF, U+FFFD, NUL, BEL */
    expect_tokens(bert, "hel\xE2\x80\x8Dlo", "hello");
    expect_tokens(bert, "hel\xC2\xADlo", "hello");
    expect_tokens(bert, "\xEF\xBB\xBFhello", "hello");
    expect_tokens(bert, "hel\xEE\x80\x80lo", "hello");
    expect_tokens(bert, "hel\xEF\xBF\xBFlo", "hello");
    expect_tokens(bert, "hel\xEF\xBF\xBDlo", "hello");
    expect_tokens(bert, "hel\alo", "hello");
    mcli_encoding e;
    mcli_err err;
    mcli_tok_opts o = {0};
    assert_int_equal(tokenizer_encode(bert, "hel\0lo", 6, NULL, 0, &o, &e, &err), MCLI_OK);
    assert_string_equal(tt_tokens(bert, &e), "hello");
    encoding_free(&e);
}

static void tab_cr_lf_and_unicode_spaces_separate_words(void **state)
{
    (void)state;
    expect_tokens(bert, "a\tb\rc\nd", "a|b|c|d");
    expect_tokens(bert,
                  "a\xC2\xA0"
                  "b\xE3\x80\x80"
                  "c",
                  "a|b|c"); /* NBSP, ideographic space (Zs) */
    expect_tokens(bert,
                  "a\xE2\x80\xA8"
                  "b\xE2\x80\xA9"
                  "c",
                  "a|b|c"); /* U+2028 / U+2029: str.split() */
}

static void lower_casing_is_per_code_point_without_final_sigma(void **state)
{
    (void)state;
    expect_tokens(bert, "\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3",
                  "\xCE\xBF|##\xCE\xB4|##\xCE\xBF|##\xCF\x83"); /* ΟΔΟΣ -> ο ##δ ##ο ##σ */
    expect_tokens(bert, "HELLO World", "hello|world");
}

static void accents_are_stripped_by_nfd_and_dropping_mn(void **state)
{
    (void)state;
    expect_tokens(bert, "Caf\xC3\xA9", "cafe");            /* é */
    expect_tokens(bert, "Cafe\xCC\x81", "cafe");           /* e + U+0301 */
    expect_same_ids(bert, "\xE3\x81\xA7", "\xE3\x81\xA6"); /* で -> て (dakuten U+3099 is Mn) */
    expect_same_ids(bert, "\xED\x95\x9C", "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB"); /* 한 -> conjoining jamo */
    /* नमस्ते: the virama U+094D and the vowel sign U+0947 are Mn and vanish -> नमसत */
    expect_same_ids(bert, "\xE0\xA4\xA8\xE0\xA4\xAE\xE0\xA4\xB8\xE0\xA5\x8D\xE0\xA4\xA4\xE0\xA5\x87",
                    "\xE0\xA4\xA8\xE0\xA4\xAE\xE0\xA4\xB8\xE0\xA4\xA4");
    expect_tokens(bert, "\xC3\x85ngstr\xC3\xB6m", "ang|##strom"); /* Ångström: no "angstrom" in the vocab */
}

static void cjk_ideographs_are_single_words_including_supplementary_planes(void **state)
{
    (void)state;
    expect_tokens(bert,
                  "a\xE4\xB8\xAD"
                  "b",
                  "a|\xE4\xB8\xAD|b"); /* a中b */
    expect_tokens(bert,
                  "a\xF0\xA0\x80\x80"
                  "b",
                  "a|[UNK]|b");                             /* U+20000 (Ext. B) */
    expect_tokens(bert, "x\xF0\xAA\x9C\x80y", "x|[UNK]|y"); /* U+2A700 (Ext. C) */
    expect_tokens(bert, "\xE3\x81\xB2\xE3\x82\x89",
                  "\xE3\x81\xB2|##\xE3\x82\x89"); /* ひら: hiragana is not CJK-spaced */
}

static void punctuation_includes_ascii_symbols_but_not_currency_signs(void **state)
{
    (void)state;
    expect_tokens(bert, "$5+3", "$|5|+|3");
    expect_tokens(bert,
                  "\xE2\x82\xAC"
                  "200",
                  "\xE2\x82\xAC|##200"); /* €200 -> €, ##200 (Sc is not P*) */
    expect_tokens(bert, "a^b`c~d", "a|^|b|`|c|~|d");
    expect_tokens(bert, "\xC2\xBFqu\xC3\xA9?", "\xC2\xBF|que|?"); /* ¿ is Po */
}

static void word_of_100_chars_is_split_and_101_is_unk(void **state)
{
    (void)state;
    char w[128];
    memset(w, 'a', 101);
    w[100] = '\0';
    mcli_encoding e = tt_encode(bert, w, false);
    assert_true(e.n > 1);
    assert_string_not_equal(tt_tokens(bert, &e), "[UNK]");
    assert_int_equal(e.offsets[0], 0);
    assert_int_equal(e.offsets[2 * e.n - 1], 100);
    encoding_free(&e);
    w[100] = 'a';
    w[101] = '\0';
    e = tt_encode(bert, w, false);
    assert_int_equal(e.n, 1);
    assert_int_equal(e.ids[0], 100);
    assert_int_equal(e.offsets[0], 0);
    assert_int_equal(e.offsets[1], 101);
    encoding_free(&e);
}

static void greedy_longest_match_with_continuations(void **state)
{
    (void)state;
    expect_tokens(bert, "unaffable", "una|##ffa|##ble");
    expect_tokens(bert, "aaaaaa", "aaa|##aa|##a");
}

static void special_tokens_in_text_stay_whole(void **state)
{
    (void)state;
    expect_tokens(bert, "hello [MASK] world[SEP]", "hello|[MASK]|world|[SEP]");
    expect_tokens(bert, "[mask]", "[|mask|]"); /* matching is case-sensitive, like Python */
    expect_offsets(bert, "hello [MASK] world", false, "0-5 6-12 13-18");
}

static void offsets_are_code_points_of_the_original_text(void **state)
{
    (void)state;
    expect_offsets(bert, "H\xC3\xA9llo, w\xC3\xB6rld!", true, "0-0 0-5 5-6 7-12 12-13 0-0");
    expect_offsets(bert, "cafe\xCC\x81 x", false, "0-4 6-7"); /* the dropped mark is outside */
    expect_offsets(bert, "caf\xC3\xA9 x", false, "0-4 5-6");  /* é is one code point */
    expect_offsets(bert,
                   "a\xF0\xA0\x80\x80"
                   "b",
                   false, "0-1 1-2 2-3");
    expect_offsets(bert, "  unaffable", false, "2-5 5-8 8-11");
    expect_offsets(bert, "hel\xE2\x80\x8Dlo", false, "0-6"); /* the deleted ZWJ is inside */
}

static void pairs_get_type_ids_and_longest_first_truncation(void **state)
{
    (void)state;
    mcli_encoding e;
    mcli_err err;
    mcli_tok_opts o = {.add_special_tokens = true};
    assert_int_equal(tokenizer_encode(bert, "hello world", 11, "a b", 3, &o, &e, &err), MCLI_OK);
    assert_string_equal(tt_tokens(bert, &e), "[CLS]|hello|world|[SEP]|a|b|[SEP]");
    static const int32_t types[] = {0, 0, 0, 0, 1, 1, 1};
    static const uint8_t special[] = {1, 0, 0, 1, 0, 0, 1};
    assert_int_equal(e.n, 7);
    assert_memory_equal(e.type_ids, types, sizeof types);
    assert_memory_equal(e.special, special, sizeof special);
    assert_string_equal(tt_offsets(&e), "0-0 0-5 6-11 0-0 0-1 2-3 0-0"); /* pair offsets index the pair */
    encoding_free(&e);

    o.max_length = 7, o.truncate = true; /* 5 + 2 + 3 = 10: three cuts, all from the longer text */
    assert_int_equal(tokenizer_encode(bert, "a b c d e", 9, "f g", 3, &o, &e, &err), MCLI_OK);
    assert_string_equal(tt_tokens(bert, &e), "[CLS]|a|b|[SEP]|f|g|[SEP]");
    assert_true(e.truncated);
    encoding_free(&e);
    o.max_length = 5; /* tie: transformers cuts the second text first */
    assert_int_equal(tokenizer_encode(bert, "a b", 3, "c d", 3, &o, &e, &err), MCLI_OK);
    assert_string_equal(tt_tokens(bert, &e), "[CLS]|a|[SEP]|c|[SEP]");
    encoding_free(&e);
    o.max_length = 3;
    assert_int_equal(tokenizer_encode(bert, "a b c", 5, NULL, 0, &o, &e, &err), MCLI_OK);
    assert_string_equal(tt_tokens(bert, &e), "[CLS]|a|[SEP]");
    encoding_free(&e);
    o.truncate = false;
    assert_int_equal(tokenizer_encode(bert, "a b c", 5, NULL, 0, &o, &e, &err), MCLI_ERR_TOO_LARGE);
    o.truncate = true, o.max_length = 1;
    assert_int_equal(tokenizer_encode(bert, "a", 1, NULL, 0, &o, &e, &err), MCLI_ERR_INVALID_ARG);
    assert_int_equal(tokenizer_model_max_length(bert), 512);
}

static void invalid_utf8_text_is_rejected(void **state)
{
    (void)state;
    static const char *const bad[] = {"\xFF",         "ab\xC3",           "\xC0\xAF",
                                      "\xED\xA0\x80", "\xF4\x90\x80\x80", "\x80x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mcli_encoding e;
        mcli_err err;
        mcli_tok_opts o = {0};
        assert_int_equal(tokenizer_encode(bert, bad[i], strlen(bad[i]), NULL, 0, &o, &e, &err),
                         MCLI_ERR_INVALID_ARG);
        assert_non_null(strstr(err.msg, "UTF-8"));
        assert_null(e.ids);
    }
}

static void decode_joins_pieces_and_cleans_up_spaces(void **state)
{
    (void)state;
    const char *text = "Don't stop, unaffable friends. I'm here!";
    mcli_encoding e = tt_encode(bert, text, true);
    char *s;
    mcli_err err;
    assert_int_equal(tokenizer_decode(bert, e.ids, e.n, false, &s, &err), MCLI_OK);
    assert_string_equal(s, "[CLS] don't stop, unaffable friends. i'm here! [SEP]");
    free(s);
    assert_int_equal(tokenizer_decode(bert, e.ids, e.n, true, &s, &err), MCLI_OK);
    assert_string_equal(s, "don't stop, unaffable friends. i'm here!");
    free(s);
    encoding_free(&e);
    int32_t bad = 30522;
    assert_int_equal(tokenizer_decode(bert, &bad, 1, false, &s, &err), MCLI_ERR_INVALID_ARG);
}

static void detok_streams_the_same_text_as_decode(void **state)
{
    (void)state;
    const char *text = "Don't stop - \xC3\xA9t\xC3\xA9 is warm , isn't it ?";
    mcli_encoding e = tt_encode(bert, text, true);
    mcli_detok *d;
    mcli_err err;
    assert_int_equal(detok_new(bert, true, &d, &err), MCLI_OK);
    char acc[1024] = "";
    const char *piece;
    size_t n;
    for (size_t i = 0; i < e.n; i++) {
        assert_int_equal(detok_push(d, e.ids[i], &piece, &n, &err), MCLI_OK);
        assert_int_equal(strlen(piece), n);
        strncat(acc, piece, sizeof acc - strlen(acc) - 1);
    }
    assert_int_equal(detok_flush(d, &piece, &n, &err), MCLI_OK);
    strncat(acc, piece, sizeof acc - strlen(acc) - 1);
    char *full;
    assert_int_equal(tokenizer_decode(bert, e.ids, e.n, true, &full, &err), MCLI_OK);
    assert_string_equal(acc, full);
    assert_string_equal(full, "don't stop - ete is warm, isn't it?");
    free(full);
    detok_free(d);
    encoding_free(&e);
}

static void special_ids_come_from_the_vocabulary(void **state)
{
    (void)state;
    const mcli_special_ids *sp = tokenizer_special(bert);
    assert_int_equal(sp->pad, 0);
    assert_int_equal(sp->unk, 100);
    assert_int_equal(sp->cls, 101);
    assert_int_equal(sp->sep, 102);
    assert_int_equal(sp->mask, 103);
    assert_int_equal(sp->bos, -1);
    assert_int_equal(tokenizer_vocab_size(bert), 30522);
    assert_int_equal(tokenizer_kind(bert), MCLI_TOK_WORDPIECE);
    assert_int_equal(tokenizer_token_to_id(bert, "hello"), 7592);
    assert_string_equal(tokenizer_id_to_token(bert, 7592), "hello");
    assert_null(tokenizer_id_to_token(bert, 30522));
}

static void cased_config_keeps_case_and_composes_nfc(void **state)
{
    (void)state;
    char *dir = tt_bert_dir("{\"do_lower_case\": false}");
    mcli_tokenizer *t = tt_load(dir);
    expect_tokens(t, "Hello hello", "[UNK]|hello");    /* no upper case in the uncased vocab */
    expect_same_ids(t, "caf\xC3\xA9", "cafe\xCC\x81"); /* NFC: e + U+0301 == é */
    mcli_encoding a = tt_encode(t, "caf\xC3\xA9", false), b = tt_encode(t, "cafe", false);
    assert_false(a.n == b.n && memcmp(a.ids, b.ids, a.n * 4) == 0); /* accents kept */
    encoding_free(&a);
    encoding_free(&b);
    tokenizer_free(t);
    tt_rmdir(dir);

    dir =
        tt_bert_dir("{\"do_lower_case\": false, \"strip_accents\": true, \"tokenize_chinese_chars\": false}");
    t = tt_load(dir);
    expect_tokens(t, "caf\xC3\xA9 Caf\xC3\xA9", "cafe|[UNK]"); /* stripped, not lower-cased */
    expect_tokens(t,
                  "a\xE4\xB8\xAD"
                  "b",
                  "a|##\xE4\xB8\xAD|##b"); /* a中b stays one word */
    tokenizer_free(t);
    tt_rmdir(dir);

    dir = tt_bert_dir("{\"do_lower_case\": true, \"strip_accents\": false, \"never_split\": [\"[foo]\"]}");
    t = tt_load(dir);
    expect_same_ids(t, "CAF\xC3\x89", "cafe\xCC\x81"); /* lower + NFC, no stripping */
    expect_tokens(t, "x [foo] y", "x|[UNK]|y");        /* never_split: one word, not in vocab */
    tokenizer_free(t);
    tt_rmdir(dir);
}

/* The shape of tokenizer_config.json the hub serves for bert-base-uncased today. */
static void hub_style_config_with_added_tokens_decoder(void **state)
{
    (void)state;
    char *dir = tt_bert_dir(
        "{\"added_tokens_decoder\": {"
        "\"0\": {\"content\": \"[PAD]\", \"lstrip\": false, \"normalized\": false, \"rstrip\": false, "
        "\"single_word\": false, \"special\": true},"
        "\"100\": {\"content\": \"[UNK]\", \"lstrip\": false, \"normalized\": false, \"rstrip\": false, "
        "\"single_word\": false, \"special\": true},"
        "\"101\": {\"content\": \"[CLS]\", \"lstrip\": false, \"normalized\": false, \"rstrip\": false, "
        "\"single_word\": false, \"special\": true},"
        "\"102\": {\"content\": \"[SEP]\", \"lstrip\": false, \"normalized\": false, \"rstrip\": false, "
        "\"single_word\": false, \"special\": true},"
        "\"103\": {\"content\": \"[MASK]\", \"lstrip\": false, \"normalized\": false, \"rstrip\": false, "
        "\"single_word\": false, \"special\": true}},"
        "\"clean_up_tokenization_spaces\": false, \"cls_token\": \"[CLS]\", \"do_lower_case\": true,"
        "\"mask_token\": {\"content\": \"[MASK]\"}, \"model_max_length\": 1000000000000000019884624838656,"
        "\"pad_token\": \"[PAD]\", \"sep_token\": \"[SEP]\", \"strip_accents\": null,"
        "\"tokenize_chinese_chars\": true, \"tokenizer_class\": \"BertTokenizer\", \"unk_token\": "
        "\"[UNK]\"}");
    mcli_tokenizer *t = tt_load(dir);
    assert_int_equal(tokenizer_special(t)->mask, 103);
    assert_int_equal(tokenizer_model_max_length(t), 0); /* 1e30 means "no limit" */
    mcli_encoding e = tt_encode(t, "Hello, [MASK] world.", true);
    assert_string_equal(tt_tokens(t, &e), "[CLS]|hello|,|[MASK]|world|.|[SEP]");
    char *s;
    mcli_err err;
    assert_int_equal(tokenizer_decode(t, e.ids, e.n, true, &s, &err), MCLI_OK);
    assert_string_equal(s, "hello , world ."); /* no clean-up; [MASK] is special and skipped */
    free(s);
    encoding_free(&e);
    tokenizer_free(t);
    tt_rmdir(dir);
}

static void duplicate_vocab_lines_keep_the_last_id(void **state)
{
    (void)state;
    char *dir = tt_tmpdir();
    tt_write_str(dir, "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nworld\nhello\r\n##s\r");
    mcli_tokenizer *t = tt_load(dir);
    assert_int_equal(tokenizer_token_to_id(t, "hello"), 6);    /* Python: vocab[token] = last index */
    assert_string_equal(tokenizer_id_to_token(t, 4), "[UNK]"); /* ids_to_tokens has no entry for 4 */
    assert_string_equal(tokenizer_id_to_token(t, 7), "##s");   /* \r\n and a lone \r end lines */
    assert_int_equal(tokenizer_vocab_size(t), 8);
    expect_tokens(t, "hello worlds", "hello|world|##s");
    mcli_encoding e = tt_encode(t, "hello", false);
    assert_int_equal(e.ids[0], 6);
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

static void hostile_vocab_files_are_clear_errors(void **state)
{
    (void)state;
    mcli_err err;
    char *dir = tt_tmpdir();
    tt_write_str(dir, "vocab.txt", "[UNK]\nbad\xFFline\n");
    assert_int_equal(load_status(dir, &err), MCLI_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "UTF-8"));
    tt_write_str(dir, "vocab.txt", "[UNK]\nnul\0x\n");
    tt_write(dir, "vocab.txt", "[UNK]\nnul\0x\n", 12);
    assert_int_equal(load_status(dir, &err), MCLI_ERR_FORMAT);
    tt_write_str(dir, "vocab.txt", "");
    assert_int_equal(load_status(dir, &err), MCLI_ERR_FORMAT);
    tt_write_str(dir, "vocab.txt", "hello\nworld\n");
    assert_int_equal(load_status(dir, &err), MCLI_ERR_FORMAT); /* no [UNK] */
    assert_non_null(strstr(err.msg, "unknown token"));
    /* a sparse 65 MiB file: refused before reading */
    char path[1024];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 65 << 20), 0);
    close(fd);
    assert_int_equal(load_status(dir, &err), MCLI_ERR_TOO_LARGE);
    tt_write_str(dir, "vocab.txt", "[UNK]\n");
    tt_write_str(dir, "tokenizer_config.json", "{\"do_lower_case\": tru");
    assert_int_equal(load_status(dir, &err), MCLI_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "tokenizer_config.json"));
    tt_rmdir(dir);
    dir = tt_tmpdir();
    assert_int_equal(load_status(dir, &err), MCLI_ERR_NOT_FOUND);
    tt_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cleaning_deletes_controls_format_chars_and_noncharacters),
        cmocka_unit_test(tab_cr_lf_and_unicode_spaces_separate_words),
        cmocka_unit_test(lower_casing_is_per_code_point_without_final_sigma),
        cmocka_unit_test(accents_are_stripped_by_nfd_and_dropping_mn),
        cmocka_unit_test(cjk_ideographs_are_single_words_including_supplementary_planes),
        cmocka_unit_test(punctuation_includes_ascii_symbols_but_not_currency_signs),
        cmocka_unit_test(word_of_100_chars_is_split_and_101_is_unk),
        cmocka_unit_test(greedy_longest_match_with_continuations),
        cmocka_unit_test(special_tokens_in_text_stay_whole),
        cmocka_unit_test(offsets_are_code_points_of_the_original_text),
        cmocka_unit_test(pairs_get_type_ids_and_longest_first_truncation),
        cmocka_unit_test(invalid_utf8_text_is_rejected),
        cmocka_unit_test(decode_joins_pieces_and_cleans_up_spaces),
        cmocka_unit_test(detok_streams_the_same_text_as_decode),
        cmocka_unit_test(special_ids_come_from_the_vocabulary),
        cmocka_unit_test(cased_config_keeps_case_and_composes_nfc),
        cmocka_unit_test(hub_style_config_with_added_tokens_decoder),
        cmocka_unit_test(duplicate_vocab_lines_keep_the_last_id),
        cmocka_unit_test(hostile_vocab_files_are_clear_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
