/* Tokenizers against an independent implementation: every string of
 * tests/fixtures/gen/tokenizer_corpus.json (CJK, accents, emoji/ZWJ, controls, 100/101-char words,
 * contractions, URLs, code, whitespace runs, RTL scripts, Hangul, Devanagari, "€200", "$5+3",
 * "<|endoftext|>" inside text...) must give exactly the ids stored in
 * tests/fixtures/tokenizers/{bert,gpt2}_expect.json (transformers.js, or Python behaviour
 * hand-checked where JS differs). Also: BERT decode equals the reference decode, and every
 * GPT-2 string round-trips through encode/decode byte for byte; and 400 seeded random strings
 * over many Unicode blocks agree with a Python transcription of the transformers algorithm;
 * offsets equal those of HF's Rust tokenizers (tests/fixtures/tokenizers/{bert,gpt2}_offsets.json). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

#include "tok_testlib.h"

static json_t *load_fixture(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizers/%s", MCLI_FIXTURES, name);
    json_error_t je;
    json_t *j = json_load_file(path, JSON_ALLOW_NUL, &je);
    if (!j)
        fail_msg("%s: %s", path, je.text);
    assert_true(json_array_size(json_object_get(j, "cases")) >= 100);
    return j;
}

/* Runs every case; returns the number of mismatches (each printed). */
static int check_cases(const mcli_tokenizer *t, const json_t *fx, bool roundtrip)
{
    bool specials = json_is_true(json_object_get(fx, "add_special_tokens"));
    const json_t *cases = json_object_get(fx, "cases");
    int bad = 0;
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        const json_t *jt = json_object_get(c, "text");
        const char *text = json_string_value(jt);
        size_t len = json_string_length(jt);
        mcli_encoding e;
        mcli_err err;
        mcli_tok_opts o = {.add_special_tokens = specials};
        if (tokenizer_encode(t, text, len, NULL, 0, &o, &e, &err) != MCLI_OK) {
            print_error("case %zu: encode failed: %s\n", i, err.msg);
            bad++;
            continue;
        }
        const json_t *ids = json_object_get(c, "ids");
        bool same = json_array_size(ids) == e.n;
        for (size_t k = 0; same && k < e.n; k++)
            same = json_integer_value(json_array_get(ids, k)) == e.ids[k];
        if (!same) {
            print_error("case %zu (%s) \"%s\": got %s\n", i, json_string_value(json_object_get(c, "source")),
                        text, tt_tokens(t, &e));
            bad++;
        }
        /* offsets are inside the text and never go backwards for ordinary tokens */
        for (size_t k = 0; k < e.n; k++) {
            if (e.special[k])
                continue;
            if (e.offsets[2 * k] < 0 || e.offsets[2 * k] > e.offsets[2 * k + 1]) {
                print_error("case %zu: bad offsets %s\n", i, tt_offsets(&e));
                bad++;
                break;
            }
        }
        char *dec = NULL;
        size_t dec_len = 0;
        if (tokenizer_decode_len(t, e.ids, e.n, false, &dec, &dec_len, &err) != MCLI_OK) {
            print_error("case %zu: decode failed: %s\n", i, err.msg);
            bad++;
        } else {
            const json_t *want = json_object_get(c, "decoded");
            if (roundtrip && (dec_len != len || memcmp(dec, text, len) != 0)) {
                print_error("case %zu: round trip gave \"%s\" for \"%s\"\n", i, dec, text);
                bad++;
            } else if (!roundtrip && json_is_string(want) && strcmp(dec, json_string_value(want)) != 0) {
                print_error("case %zu: decode gave \"%s\", reference \"%s\"\n", i, dec,
                            json_string_value(want));
                bad++;
            }
        }
        free(dec);
        encoding_free(&e);
    }
    return bad;
}

static void bert_vocab_txt_matches_reference_on_corpus(void **state)
{
    (void)state;
    char *dir = tt_bert_dir(NULL);
    mcli_tokenizer *t = tt_load(dir);
    json_t *fx = load_fixture("bert_expect.json");
    assert_int_equal(check_cases(t, fx, false), 0);
    json_decref(fx);
    tokenizer_free(t);
    tt_rmdir(dir);
}

static void gpt2_vocab_json_matches_reference_and_round_trips(void **state)
{
    (void)state;
    char *dir = tt_gpt2_dir();
    mcli_tokenizer *t = tt_load(dir);
    json_t *fx = load_fixture("gpt2_expect.json");
    assert_int_equal(check_cases(t, fx, true), 0);
    json_decref(fx);
    tokenizer_free(t);
    tt_rmdir(dir);
}

/* Offsets against Hugging Face's Rust tokenizers (the source of transformers'
 * return_offsets_mapping), on every corpus case where the Rust ids equal the Python ones. */
static int check_offsets(const mcli_tokenizer *t, const char *fixture, bool specials)
{
    json_t *fx = load_fixture(fixture);
    int bad = 0, compared = 0;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(fx, "cases"), i, c)
    {
        if (!json_is_true(json_object_get(c, "ids_match_python")))
            continue;
        const json_t *jt = json_object_get(c, "text");
        mcli_encoding e;
        mcli_err err;
        mcli_tok_opts o = {.add_special_tokens = specials};
        assert_int_equal(
            tokenizer_encode(t, json_string_value(jt), json_string_length(jt), NULL, 0, &o, &e, &err),
            MCLI_OK);
        const json_t *offs = json_object_get(c, "offsets");
        bool same = json_array_size(offs) == e.n;
        for (size_t k = 0; same && k < e.n; k++) {
            const json_t *pair = json_array_get(offs, k);
            same = json_integer_value(json_array_get(pair, 0)) == e.offsets[2 * k] &&
                   json_integer_value(json_array_get(pair, 1)) == e.offsets[2 * k + 1];
        }
        if (!same) {
            char *want = json_dumps(offs, JSON_COMPACT);
            print_error("%s case %zu \"%s\": offsets %s, Rust %s\n", fixture, i, json_string_value(jt),
                        tt_offsets(&e), want);
            free(want);
            bad++;
        }
        compared++;
        encoding_free(&e);
    }
    assert_true(compared >= 100);
    json_decref(fx);
    return bad;
}

static void offsets_match_hf_rust_tokenizers(void **state)
{
    (void)state;
    char *bdir = tt_bert_dir(NULL), *gdir = tt_gpt2_dir();
    mcli_tokenizer *bert = tt_load(bdir), *gpt = tt_load(gdir);
    int bad = check_offsets(bert, "bert_offsets.json", true) + check_offsets(gpt, "gpt2_offsets.json", false);
    assert_int_equal(bad, 0);
    tokenizer_free(bert);
    tokenizer_free(gpt);
    tt_rmdir(bdir);
    tt_rmdir(gdir);
}

/* The corpus and 400 seeded random strings over many Unicode blocks, with ids from the
 * Python-rules reference (tests/fixtures/gen/check_tokenizer_pyref.py): BERT uncased, BERT with
 * do_lower_case=false (the NFC path) and GPT-2 must agree on every one. */
static void random_unicode_strings_match_python_rules(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizers/pyrules_random.json", MCLI_FIXTURES);
    json_error_t je;
    json_t *fx = json_load_file(path, JSON_ALLOW_NUL, &je);
    if (!fx)
        fail_msg("%s: %s", path, je.text);
    char *bdir = tt_bert_dir(NULL), *gdir = tt_gpt2_dir(), *cdir = tt_bert_dir("{\"do_lower_case\": false}");
    mcli_tokenizer *bert = tt_load(bdir), *gpt = tt_load(gdir), *cased = tt_load(cdir);
    const json_t *cases = json_object_get(fx, "cases");
    assert_true(json_array_size(cases) >= 500); /* the corpus + 400 random strings */
    static const char *const names[] = {"bert_ids", "gpt2_ids", "bert_cased_ids"};
    int bad = 0;
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        const json_t *jt = json_object_get(c, "text");
        for (int k = 0; k < 3; k++) {
            const mcli_tokenizer *t = k == 0 ? bert : k == 1 ? gpt : cased;
            const json_t *ids = json_object_get(c, names[k]);
            assert_non_null(ids);
            mcli_encoding e;
            mcli_err err;
            mcli_tok_opts o = {.add_special_tokens = true};
            assert_int_equal(
                tokenizer_encode(t, json_string_value(jt), json_string_length(jt), NULL, 0, &o, &e, &err),
                MCLI_OK);
            bool same = json_array_size(ids) == e.n;
            for (size_t j = 0; same && j < e.n; j++)
                same = json_integer_value(json_array_get(ids, j)) == e.ids[j];
            if (!same) {
                print_error("random case %zu (%s) \"%s\": got %s\n", i, names[k], json_string_value(jt),
                            tt_tokens(t, &e));
                bad++;
            }
            if (k == 0) {
                char *dec;
                const char *want = json_string_value(json_object_get(c, "bert_decoded"));
                assert_non_null(want);
                assert_int_equal(tokenizer_decode(t, e.ids, e.n, false, &dec, &err), MCLI_OK);
                if (strcmp(dec, want) != 0) {
                    print_error("random case %zu: decode \"%s\", Python rules \"%s\"\n", i, dec, want);
                    bad++;
                }
                free(dec);
            }
            encoding_free(&e);
        }
    }
    assert_int_equal(bad, 0);
    tokenizer_free(bert);
    tokenizer_free(gpt);
    tokenizer_free(cased);
    tt_rmdir(bdir);
    tt_rmdir(gdir);
    tt_rmdir(cdir);
    json_decref(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bert_vocab_txt_matches_reference_on_corpus),
        cmocka_unit_test(gpt2_vocab_json_matches_reference_and_round_trips),
        cmocka_unit_test(random_unicode_strings_match_python_rules),
        cmocka_unit_test(offsets_match_hf_rust_tokenizers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
