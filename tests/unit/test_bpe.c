/* GPT-2 byte-level BPE: the rules of shared/notes/tokenizer-reference.md with hand-checked ids
 * on the real GPT-2 vocabulary, offsets, exact round trips of random text, incremental
 * decoding of multibyte characters split across tokens, U+FFFD replacement, merges.txt and
 * vocab.json edge cases, a hostile 200k-letter word, and concurrent encoding (cache locks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <time.h>

#include "tok_testlib.h"
#include "tokenizers/tokenizer_impl.h"

static mcli_tokenizer *gpt;
static char *gpt_dir;

static int setup(void **state)
{
    (void)state;
    gpt_dir = tt_gpt2_dir();
    gpt = tt_load(gpt_dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tokenizer_free(gpt);
    tt_rmdir(gpt_dir);
    return 0;
}

static void expect_tokens(const char *text, const char *want)
{
    mcli_encoding e = tt_encode(gpt, text, true);
    const char *got = tt_tokens(gpt, &e);
    if (strcmp(got, want) != 0)
        fail_msg("\"%s\": got %s, want %s", text, got, want);
    encoding_free(&e);
}

static void real_vocabulary_loads_completely(void **state)
{
    (void)state;
    assert_int_equal(tokenizer_kind(gpt), MCLI_TOK_BPE);
    assert_int_equal(tokenizer_vocab_size(gpt), 50257);
    assert_int_equal(bpe_merge_count(gpt->bpe), 50000);
    assert_int_equal(bpe_skipped_merges(gpt->bpe), 0);
    const mcli_special_ids *sp = tokenizer_special(gpt);
    assert_int_equal(sp->eos, 50256);
    assert_int_equal(sp->bos, 50256);
    assert_int_equal(sp->unk, 50256);
    assert_int_equal(sp->cls, -1);
    assert_int_equal(tokenizer_model_max_length(gpt), 1024);
    mcli_encoding e = tt_encode(gpt, "Hello world", true);
    assert_int_equal(e.n, 2);
    assert_int_equal(e.ids[0], 15496);
    assert_int_equal(e.ids[1], 995);
    encoding_free(&e);
}

static void contractions_are_case_sensitive(void **state)
{
    (void)state;
    expect_tokens("don't", "don|'t");
    expect_tokens("DON'T", "DON|'|T");
    expect_tokens("we'll they're I'm", "we|'ll|Ġthey|'re|ĠI|'m");
}

static void run_of_spaces_leaves_the_last_one_to_the_word(void **state)
{
    (void)state;
    expect_tokens("x    spaces", "x|Ġ|Ġ|Ġ|Ġspaces");
    expect_tokens("end   ", "end|Ġ|Ġ|Ġ");
    expect_tokens("a\n\nb", "a|Ċ|Ċ|b");
}

static void endoftext_inside_text_is_one_special_token(void **state)
{
    (void)state;
    mcli_encoding e = tt_encode(gpt, "a <|endoftext|> b", true);
    assert_string_equal(tt_tokens(gpt, &e), "a|Ġ|<|endoftext|>|Ġb");
    assert_int_equal(e.ids[2], 50256);
    assert_string_equal(tt_offsets(&e), "0-1 1-2 2-15 15-17");
    assert_int_equal(e.special[2], 0); /* from the text, not added by a post-processor */
    encoding_free(&e);
    expect_tokens("x<|endoftext|><|endoftext|>", "x|<|endoftext|>|<|endoftext|>");
    e = tt_encode(gpt, "<|endoftext", true); /* unfinished: plain text, no 50256 */
    assert_true(e.n > 1);
    for (size_t i = 0; i < e.n; i++)
        assert_int_not_equal(e.ids[i], 50256);
    encoding_free(&e);
}

static void offsets_cover_the_bytes_of_each_token(void **state)
{
    (void)state;
    mcli_encoding e = tt_encode(gpt, "Hello world", true);
    assert_string_equal(tt_offsets(&e), "0-5 5-11"); /* "Ġworld" includes its space */
    encoding_free(&e);
    e = tt_encode(gpt, "a\xF0\x9F\x98\x80", true); /* a😀: the emoji's 4 bytes are 2 tokens */
    assert_string_equal(tt_tokens(gpt, &e), "a|ðŁĺ|Ģ");
    assert_string_equal(tt_offsets(&e), "0-1 1-2 1-2");
    encoding_free(&e);
    e = tt_encode(gpt, "\xC3\xA9t\xC3\xA9 x", true); /* été x */
    assert_int_equal(e.offsets[2 * e.n - 1], 5);
    encoding_free(&e);
}

static void pairs_concatenate_with_type_ids(void **state)
{
    (void)state;
    mcli_encoding e;
    mcli_err err;
    mcli_tok_opts o = {.add_special_tokens = true};
    assert_int_equal(tokenizer_encode(gpt, "Hello", 5, " world", 6, &o, &e, &err), MCLI_OK);
    assert_string_equal(tt_tokens(gpt, &e), "Hello|Ġworld");
    assert_int_equal(e.type_ids[0], 0);
    assert_int_equal(e.type_ids[1], 1);
    encoding_free(&e);
    o.max_length = 1, o.truncate = true;
    assert_int_equal(tokenizer_encode(gpt, "Hello world", 11, NULL, 0, &o, &e, &err), MCLI_OK);
    assert_int_equal(e.n, 1);
    assert_true(e.truncated);
    encoding_free(&e);
}

/* xorshift: deterministic random text */
static uint64_t rng = 88172645463325252ULL;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static size_t put_cp(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static size_t random_text(char *buf, size_t max_cps)
{
    static const uint32_t pool[] = {
        ' ',      ' ',    '\n',  '\t',  0,     0x7F,   '\'',   'A',    'z',    '0',     '9',     '.',
        '!',      0xA0,   0xAD,  0xE9,  0x301, 0x3000, 0x200D, 0xFEFF, 0x4E2D, 0x1F600, 0x1F3FD, 0x20000,
        0x10FFFF, 0xFFFD, 0x645, 0x5D0, 0x928, 0x94D,  0xD55C, 0x2028, 0x85,   0x1C,    0xE000};
    size_t n = 0, cps = 1 + next_rand() % max_cps;
    for (size_t i = 0; i < cps; i++) {
        uint32_t r = next_rand();
        uint32_t cp = (r & 3) ? pool[(r >> 2) % (sizeof pool / sizeof pool[0])] : ('a' + (r >> 2) % 26);
        n += put_cp(buf + n, cp);
    }
    return n;
}

static void random_strings_round_trip_exactly(void **state)
{
    (void)state;
    char buf[4 * 64 + 1];
    for (int i = 0; i < 500; i++) {
        size_t len = random_text(buf, 64);
        mcli_encoding e;
        mcli_err err;
        mcli_tok_opts o = {0};
        assert_int_equal(tokenizer_encode(gpt, buf, len, NULL, 0, &o, &e, &err), MCLI_OK);
        char *dec;
        size_t dl;
        assert_int_equal(tokenizer_decode_len(gpt, e.ids, e.n, false, &dec, &dl, &err), MCLI_OK);
        assert_int_equal(dl, len);
        assert_memory_equal(dec, buf, len);
        free(dec);
        encoding_free(&e);
    }
}

static void detok_emits_only_complete_utf8_sequences(void **state)
{
    (void)state;
    mcli_encoding e = tt_encode(gpt, "\xF0\x9F\x98\x80", true); /* 😀 = ðŁĺ + Ģ */
    assert_int_equal(e.n, 2);
    mcli_detok *d;
    mcli_err err;
    const char *piece;
    size_t n;
    assert_int_equal(detok_new(gpt, false, &d, &err), MCLI_OK);
    assert_int_equal(detok_push(d, e.ids[0], &piece, &n, &err), MCLI_OK);
    assert_int_equal(n, 0);
    assert_string_equal(piece, "");
    assert_int_equal(detok_push(d, e.ids[1], &piece, &n, &err), MCLI_OK);
    assert_int_equal(n, 4);
    assert_string_equal(piece, "\xF0\x9F\x98\x80");
    /* an unfinished sequence at the end becomes U+FFFD on flush */
    assert_int_equal(detok_push(d, e.ids[0], &piece, &n, &err), MCLI_OK);
    assert_int_equal(n, 0);
    assert_int_equal(detok_flush(d, &piece, &n, &err), MCLI_OK);
    assert_string_equal(piece, "\xEF\xBF\xBD");
    detok_free(d);
    encoding_free(&e);
}

static void detok_pieces_add_up_to_the_text(void **state)
{
    (void)state;
    const char *text = "Family \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 in "
                       "\xE4\xB8\xAD\xE6\x96\x87 and \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4<|endoftext|>!";
    mcli_encoding e = tt_encode(gpt, text, true);
    for (int skip = 0; skip < 2; skip++) {
        mcli_detok *d;
        mcli_err err;
        assert_int_equal(detok_new(gpt, skip, &d, &err), MCLI_OK);
        char acc[512] = "";
        const char *piece;
        size_t n;
        for (size_t i = 0; i < e.n; i++) {
            assert_int_equal(detok_push(d, e.ids[i], &piece, &n, &err), MCLI_OK);
            uint32_t cp;
            (void)cp;
            strncat(acc, piece, sizeof acc - strlen(acc) - 1);
        }
        assert_int_equal(detok_flush(d, &piece, &n, &err), MCLI_OK);
        assert_int_equal(n, 0);
        if (skip)
            assert_string_equal(
                acc, "Family \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 in "
                     "\xE4\xB8\xAD\xE6\x96\x87 and \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4!");
        else
            assert_string_equal(acc, text);
        detok_free(d);
    }
    encoding_free(&e);
}

static void decode_replaces_invalid_bytes_like_python(void **state)
{
    (void)state;
    int32_t f0 = tokenizer_token_to_id(gpt, "\xC3\xB0");  /* "ð" = byte 0xF0 */
    int32_t e2 = tokenizer_token_to_id(gpt, "\xC3\xA2");  /* "â" = byte 0xE2 */
    int32_t x82 = tokenizer_token_to_id(gpt, "\xC4\xA4"); /* "Ĥ" = byte 0x82 */
    int32_t a = tokenizer_token_to_id(gpt, "a");
    assert_true(f0 >= 0 && e2 >= 0 && x82 >= 0 && a >= 0);
    char *s;
    mcli_err err;
    int32_t ids1[] = {f0, a};
    assert_int_equal(tokenizer_decode(gpt, ids1, 2, false, &s, &err), MCLI_OK);
    assert_string_equal(s, "\xEF\xBF\xBD"
                           "a");
    free(s);
    int32_t ids2[] = {e2, x82, a}; /* E2 82 is one maximal subpart: one U+FFFD */
    assert_int_equal(tokenizer_decode(gpt, ids2, 3, false, &s, &err), MCLI_OK);
    assert_string_equal(s, "\xEF\xBF\xBD"
                           "a");
    free(s);
    int32_t ids3[] = {x82, x82}; /* lone continuation bytes: one U+FFFD each */
    assert_int_equal(tokenizer_decode(gpt, ids3, 2, false, &s, &err), MCLI_OK);
    assert_string_equal(s, "\xEF\xBF\xBD\xEF\xBF\xBD");
    free(s);
    int32_t ids4[] = {15496, 50256, 995};
    assert_int_equal(tokenizer_decode(gpt, ids4, 3, true, &s, &err), MCLI_OK);
    assert_string_equal(s, "Hello world");
    free(s);
    int32_t bad[] = {50257};
    assert_int_equal(tokenizer_decode(gpt, bad, 1, false, &s, &err), MCLI_ERR_INVALID_ARG);
}

static void hostile_long_word_is_encoded_quickly(void **state)
{
    (void)state;
    size_t len = 200000;
    char *w = malloc(len + 1);
    assert_non_null(w);
    for (size_t i = 0; i < len; i++)
        w[i] = (char)('a' + (i * 7 + i / 3) % 26);
    w[len] = '\0';
    clock_t t0 = clock();
    mcli_encoding e = tt_encode(gpt, w, false);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    assert_true(secs < 10.0); /* O(n log n) merging; quadratic merging would take minutes */
    char *dec;
    size_t dl;
    mcli_err err;
    assert_int_equal(tokenizer_decode_len(gpt, e.ids, e.n, false, &dec, &dl, &err), MCLI_OK);
    assert_int_equal(dl, len);
    assert_memory_equal(dec, w, len);
    free(dec);
    encoding_free(&e);
    free(w);
}

static mcli_status load_status(const char *dir, mcli_err *err)
{
    mcli_tokenizer *t = NULL;
    mcli_status st = tokenizer_load(dir, &t, err);
    tokenizer_free(t);
    return st;
}

static void bad_merges_and_vocab_files_are_clear_errors(void **state)
{
    (void)state;
    mcli_err err;
    char *dir = tt_tmpdir();
    tt_link(dir, "vocab.json", GPT2_VOCAB);
    tt_write_str(dir, "merges.txt", "#version: 0.2\nĠ t\nbad\n");
    assert_int_equal(load_status(dir, &err), MCLI_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "line 3"));
    tt_write_str(dir, "merges.txt", "#version: 0.2\nĠ t h\n");
    assert_int_equal(load_status(dir, &err), MCLI_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "line 2"));
    tt_write_str(dir, "merges.txt", "#version: 0.2\nĠ t\n\nh e\n");
    assert_int_equal(load_status(dir, &err), MCLI_ERR_FORMAT);
    tt_write_str(dir, "merges.txt", "#version: 0.2\nĠ t\n\xFF x\n");
    assert_int_equal(load_status(dir, &err), MCLI_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "UTF-8"));
    tt_write_str(dir, "merges.txt",
                 "#version: 0.2\r\nĠ t\r\nh e\r\n\r\n\n"); /* CRLF, trailing blank lines: fine */
    mcli_tokenizer *t = tt_load(dir);
    assert_int_equal(bpe_merge_count(t->bpe), 2);
    mcli_encoding e = tt_encode(t, " the", false);
    assert_string_equal(tt_tokens(t, &e), "Ġt|he"); /* only the two merges exist */
    encoding_free(&e);
    tokenizer_free(t);
    tt_rmdir(dir);

    dir = tt_tmpdir();
    tt_write_str(dir, "merges.txt", "#version: 0.2\n");
    tt_write_str(dir, "vocab.json", "{\"a\": 0, \"b\": 1}");
    assert_int_equal(load_status(dir, &err), MCLI_ERR_FORMAT); /* byte symbols missing */
    assert_non_null(strstr(err.msg, "byte"));
    tt_write_str(dir, "vocab.json", "{\"a\": -1}");
    assert_int_equal(load_status(dir, &err), MCLI_ERR_FORMAT);
    tt_write_str(dir, "vocab.json", "{\"a\": 0, \"b\": ");
    assert_int_equal(load_status(dir, &err), MCLI_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "invalid JSON"));
    tt_write_str(dir, "vocab.json", "[1, 2]");
    assert_int_equal(load_status(dir, &err), MCLI_ERR_FORMAT);
    tt_write_str(dir, "vocab.json", "{\"a\": 99999999999}");
    assert_int_equal(load_status(dir, &err), MCLI_ERR_FORMAT);
    tt_rmdir(dir);
}

static void add_prefix_space_config_prepends_a_space(void **state)
{
    (void)state;
    char *dir = tt_gpt2_dir();
    tt_write_str(dir, "tokenizer_config.json", "{\"add_prefix_space\": true}");
    mcli_tokenizer *t = tt_load(dir);
    mcli_encoding e = tt_encode(t, "Hello world", false);
    assert_string_equal(tt_tokens(t, &e), "ĠHello|Ġworld");
    assert_string_equal(tt_offsets(&e), "0-5 5-11"); /* offsets still index the caller's text */
    encoding_free(&e);
    tokenizer_free(t);
    tt_rmdir(dir);
}

typedef struct {
    const char *const *texts;
    size_t n;
    uint64_t sum;
} job;

static uint64_t encode_sum(const char *const *texts, size_t n)
{
    uint64_t sum = 0;
    for (size_t r = 0; r < 20; r++) {
        for (size_t i = 0; i < n; i++) {
            mcli_encoding e;
            mcli_err err;
            mcli_tok_opts o = {0};
            if (tokenizer_encode(gpt, texts[i], strlen(texts[i]), NULL, 0, &o, &e, &err) != MCLI_OK)
                return 0;
            for (size_t k = 0; k < e.n; k++)
                sum = sum * 31 + (uint64_t)e.ids[k] + (uint64_t)e.offsets[2 * k] * 7;
            encoding_free(&e);
        }
    }
    return sum;
}

static void *encode_thread(void *arg)
{
    job *j = arg;
    j->sum = encode_sum(j->texts, j->n);
    return NULL;
}

static void concurrent_encodes_agree_with_serial(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "The quick brown fox jumps over the lazy dog.",
        "tokenization tokenizer tokens tokenized",
        "I'm sure we'll see what they've done",
        "\xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80 caf\xC3\xA9",
        "x    spaces and\ttabs\nnewlines",
        "<|endoftext|> special <|endoftext|>",
    };
    size_t n = sizeof texts / sizeof texts[0];
    uint64_t want = encode_sum(texts, n);
    assert_true(want != 0);
    pthread_t th[4];
    job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (job){texts, n, 0};
        assert_int_equal(pthread_create(&th[i], NULL, encode_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_true(jobs[i].sum == want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(real_vocabulary_loads_completely),
        cmocka_unit_test(contractions_are_case_sensitive),
        cmocka_unit_test(run_of_spaces_leaves_the_last_one_to_the_word),
        cmocka_unit_test(endoftext_inside_text_is_one_special_token),
        cmocka_unit_test(offsets_cover_the_bytes_of_each_token),
        cmocka_unit_test(pairs_concatenate_with_type_ids),
        cmocka_unit_test(random_strings_round_trip_exactly),
        cmocka_unit_test(detok_emits_only_complete_utf8_sequences),
        cmocka_unit_test(detok_pieces_add_up_to_the_text),
        cmocka_unit_test(decode_replaces_invalid_bytes_like_python),
        cmocka_unit_test(hostile_long_word_is_encoded_quickly),
        cmocka_unit_test(bad_merges_and_vocab_files_are_clear_errors),
        cmocka_unit_test(add_prefix_space_config_prepends_a_space),
        cmocka_unit_test(concurrent_encodes_agree_with_serial),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
