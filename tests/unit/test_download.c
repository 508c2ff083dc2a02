/* Unit tests for the pure parts of the downloader and the models directory: id/revision/file-name
 * validation tables, URL encoding, the manifest round trip and its malformed inputs, SHA-256 of a file
 * against the FIPS 180-2 test vector, the per-model lock, listing and removal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hub/download.h"
#include "hub/hub.h"
#include "hub/manifest.h"
#include "store/models_dir.h"

static char tmpdir[256];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mcli-test-download-%ld", (long)getpid());
    mcli_err err;
    return models_dir_mkdirs(tmpdir, &err) == MCLI_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    mcli_err err;
    mcli_status st = models_dir_rmtree(tmpdir, &err);
    return st == MCLI_OK ? 0 : -1;
}

static void repo_ids_table(void **state)
{
    (void)state;
    static const char *const good[] = {"gpt2", "prajjwal1/bert-tiny", "sentence-transformers/all-MiniLM-L6-v2",
                                       "a/b", "A_b.c-d/E.f_g-9"};
    static const char *const bad[] = {"", "/", "a/", "/a", "a/b/c", "../x", "x/..", "a/..b", ".a/b", "a/.b", "-a/b",
                                      "a/-b", "a b/c", "a/b c", "a\\b", "a/b\n", "ö/x", "a//b"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!models_dir_repo_valid(good[i]))
            fail_msg("rejected good id '%s'", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (models_dir_repo_valid(bad[i]))
            fail_msg("accepted bad id '%s'", bad[i]);
    char longid[300];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    assert_false(models_dir_repo_valid(longid));
    memset(longid, 'a', 96);
    longid[96] = '\0';
    assert_true(models_dir_repo_valid(longid));
    longid[96] = 'a';
    longid[97] = '\0';
    assert_false(models_dir_repo_valid(longid));
    assert_false(models_dir_repo_valid(NULL));
}

static void refs_and_revisions(void **state)
{
    (void)state;
    char repo[200], rev[128];
    mcli_err err;
    assert_int_equal(hub_parse_ref("org/name", repo, sizeof repo, rev, sizeof rev, &err), MCLI_OK);
    assert_string_equal(repo, "org/name");
    assert_string_equal(rev, "");
    assert_int_equal(hub_parse_ref("org/name@v1.0", repo, sizeof repo, rev, sizeof rev, &err), MCLI_OK);
    assert_string_equal(rev, "v1.0");
    assert_int_equal(hub_parse_ref("org/name@refs/pr/1", repo, sizeof repo, rev, sizeof rev, &err), MCLI_OK);
    assert_string_equal(rev, "refs/pr/1");
    static const char *const bad[] = {"org/name@", "org/name@../x", "org/name@/abs", "org/name@a b", "../x@main",
                                      "org/name@a@b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (hub_parse_ref(bad[i], repo, sizeof repo, rev, sizeof rev, &err) != MCLI_ERR_INVALID_ARG)
            fail_msg("accepted bad ref '%s'", bad[i]);
}

static void file_names_from_the_hub_are_checked(void **state)
{
    (void)state;
    assert_true(hub_file_name_valid("config.json"));
    assert_true(hub_file_name_valid("1_Pooling/config.json"));
    assert_true(hub_file_name_valid("model-00001-of-00002.safetensors"));
    static const char *const bad[] = {"", "/etc/passwd", "../x", "a/../b", "a/b/c", ".hidden", "a/.b", "a b",
                                      "a\\b", "x/", "/x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (hub_file_name_valid(bad[i]))
            fail_msg("accepted bad file name '%s'", bad[i]);
}

static void url_encoding(void **state)
{
    (void)state;
    char out[64];
    assert_true(dl_url_encode("refs/pr/1", false, out, sizeof out));
    assert_string_equal(out, "refs%2Fpr%2F1");
    assert_true(dl_url_encode("1_Pooling/config.json", true, out, sizeof out));
    assert_string_equal(out, "1_Pooling/config.json");
    assert_true(dl_url_encode("a b?", true, out, sizeof out));
    assert_string_equal(out, "a%20b%3F");
    char small[4];
    assert_false(dl_url_encode("abcd", true, small, sizeof small));
    assert_false(dl_url_encode(" ", true, small, 3));
    assert_true(dl_url_encode(" ", true, small, 4));
}

static void size_values_table(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        bool ok;
        int64_t v;
    } cases[] = {
        {"0", true, 0},
        {"648216", true, 648216},
        {"000123", true, 123},
        {"9223372036854775807", true, INT64_MAX},
        {"9223372036854775808", false, 0},
        {"18446744073709551616", false, 0},
        {"99999999999999999999999", false, 0},
        {"", false, 0},
        {"-1", false, 0},
        {"+1", false, 0},
        {" 1", false, 0},
        {"1 ", false, 0},
        {"12a", false, 0},
        {"0x10", false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t v = -7;
        bool ok = dl_parse_size(cases[i].in, &v);
        if (ok != cases[i].ok || (ok && v != cases[i].v))
            fail_msg("'%s': ok %d v %lld", cases[i].in, ok, (long long)v);
    }
}

static void content_range_table(void **state)
{
    (void)state;
    assert_int_equal(dl_content_range_start("bytes 200000-648215/648216"), 200000);
    assert_int_equal(dl_content_range_start("BYTES 0-0/1"), 0);
    assert_int_equal(dl_content_range_start("bytes */648216"), -1);
    assert_int_equal(dl_content_range_start("bytes -5/10"), -1);
    assert_int_equal(dl_content_range_start("bytes 5"), -1);
    assert_int_equal(dl_content_range_start(""), -1);
    assert_int_equal(dl_content_range_start("items 1-2/3"), -1);
    assert_int_equal(dl_content_range_start("bytes 99999999999999999999-1/2"), -1);
}

static void etag_normalisation(void **state)
{
    (void)state;
    char out[16];
    dl_norm_etag("\"abc\"", out, sizeof out);
    assert_string_equal(out, "abc");
    dl_norm_etag("W/\"abc\"", out, sizeof out);
    assert_string_equal(out, "abc");
    dl_norm_etag("abc", out, sizeof out);
    assert_string_equal(out, "abc");
    dl_norm_etag("\"", out, sizeof out);
    assert_string_equal(out, "\"");
    dl_norm_etag("\"0123456789abcdefXYZ\"", out, sizeof out);
    assert_string_equal(out, "0123456789abcde"); /* truncated to the buffer */
}

static void backoff_doubles_caps_and_honours_retry_after(void **state)
{
    (void)state;
    dl_policy p = {6, 100, 1000, 15, 30};
    assert_int_equal(dl_backoff_ms(&p, 1, NULL), 100);
    assert_int_equal(dl_backoff_ms(&p, 2, NULL), 200);
    assert_int_equal(dl_backoff_ms(&p, 4, NULL), 800);
    assert_int_equal(dl_backoff_ms(&p, 5, NULL), 1000);
    assert_int_equal(dl_backoff_ms(&p, 60, NULL), 1000);
    assert_int_equal(dl_backoff_ms(&p, 1, "0"), 0);
    assert_int_equal(dl_backoff_ms(&p, 1, "1"), 1000);
    assert_int_equal(dl_backoff_ms(&p, 1, "99999999999999999999"), 1000); /* capped, no overflow */
    assert_int_equal(dl_backoff_ms(&p, 2, "Wed, 21 Oct 2015 07:28:00 GMT"), 200); /* date form: backoff */
    assert_int_equal(dl_backoff_ms(&p, 2, ""), 200);
    assert_int_equal(dl_backoff_ms(&p, 3, "-5"), 400);
}

static void sha256_of_a_file_matches_the_standard_vector(void **state)
{
    (void)state;
    char p[512], hex[65];
    int64_t size = 0;
    snprintf(p, sizeof p, "%s/abc", tmpdir);
    write_file(p, "abc");
    mcli_err err;
    assert_int_equal(dl_sha256_file(p, hex, &size, &err), MCLI_OK);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(size, 3);
    snprintf(p, sizeof p, "%s/empty", tmpdir);
    write_file(p, "");
    assert_int_equal(dl_sha256_file(p, hex, &size, &err), MCLI_OK);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_int_equal(dl_sha256_file("/nonexistent", hex, &size, &err), MCLI_ERR_IO);
}

static void manifest_round_trip(void **state)
{
    (void)state;
    hub_manifest m;
    memset(&m, 0, sizeof m);
    snprintf(m.repo, sizeof m.repo, "org/name");
    snprintf(m.revision, sizeof m.revision, "main");
    snprintf(m.commit, sizeof m.commit, "0123456789abcdef0123456789abcdef01234567");
    snprintf(m.pulled_at, sizeof m.pulled_at, "2026-01-01T00:00:00Z");
    manifest_file f = {"config.json", 10, "aa", "etag1", false};
    mcli_err err;
    assert_int_equal(manifest_add(&m, &f, &err), MCLI_OK);
    manifest_file g = {"model.safetensors", 1000, "bb", "etag2", true};
    assert_int_equal(manifest_add(&m, &g, &err), MCLI_OK);
    g.size = 2000; /* replaces by name */
    assert_int_equal(manifest_add(&m, &g, &err), MCLI_OK);
    assert_int_equal(m.n_files, 2);
    assert_int_equal(manifest_write(tmpdir, &m, &err), MCLI_OK);
    manifest_free(&m);
    hub_manifest r;
    assert_int_equal(manifest_read(tmpdir, &r, &err), MCLI_OK);
    assert_string_equal(r.repo, "org/name");
    assert_string_equal(r.commit, "0123456789abcdef0123456789abcdef01234567");
    assert_int_equal(r.n_files, 2);
    assert_int_equal(r.total_bytes, 2010);
    const manifest_file *w = manifest_find(&r, "model.safetensors");
    assert_non_null(w);
    assert_int_equal(w->size, 2000);
    assert_true(w->lfs);
    assert_string_equal(w->etag, "etag2");
    assert_null(manifest_find(&r, "nope"));
    manifest_free(&r);
}

static void malformed_manifests_are_format_errors(void **state)
{
    (void)state;
    static const char *const cases[] = {"{", "[]", "{\"files\": 3}", "{\"files\": [{\"name\": \"x\"}]}",
                                        "{\"files\": [{\"name\": \"x\", \"size\": -1}]}",
                                        "{\"files\": [{\"name\": 1, \"size\": 1}]}"};
    char d[512], p[600];
    snprintf(d, sizeof d, "%s/bad-manifest", tmpdir);
    mcli_err err;
    assert_int_equal(models_dir_mkdirs(d, &err), MCLI_OK);
    snprintf(p, sizeof p, "%s/%s", d, MANIFEST_FILE);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(p, cases[i]);
        hub_manifest m;
        if (manifest_read(d, &m, &err) != MCLI_ERR_FORMAT)
            fail_msg("case %zu accepted", i);
    }
    hub_manifest m;
    assert_int_equal(manifest_read("/nonexistent", &m, &err), MCLI_ERR_NOT_FOUND);
}

static void lock_is_exclusive_between_open_descriptions(void **state)
{
    (void)state;
    int a = -1, b = -1;
    mcli_err err;
    assert_int_equal(models_dir_lock(tmpdir, "org/name", false, NULL, NULL, &a, &err), MCLI_OK);
    assert_int_equal(models_dir_lock(tmpdir, "org/name", false, NULL, NULL, &b, &err), MCLI_ERR_BUSY);
    assert_int_equal(b, -1);
    assert_non_null(strstr(err.msg, "another mcli process"));
    int c = -1; /* another model is independent */
    assert_int_equal(models_dir_lock(tmpdir, "org/other", false, NULL, NULL, &c, &err), MCLI_OK);
    models_dir_unlock(c);
    models_dir_unlock(a);
    assert_int_equal(models_dir_lock(tmpdir, "org/name", false, NULL, NULL, &b, &err), MCLI_OK);
    models_dir_unlock(b);
    assert_int_equal(models_dir_lock(tmpdir, "../evil", false, NULL, NULL, &b, &err), MCLI_ERR_INVALID_ARG);
}

static void make_model(const char *models, const char *repo, bool with_weights)
{
    char d[1024], p[1100];
    mcli_err err;
    assert_int_equal(models_dir_model_path(models, repo, d, sizeof d, &err), MCLI_OK);
    assert_int_equal(models_dir_mkdirs(d, &err), MCLI_OK);
    snprintf(p, sizeof p, "%s/config.json", d);
    write_file(p, "{}");
    if (with_weights) {
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        write_file(p, "0123456789");
    }
}

static void list_finds_both_layouts_and_remove_deletes(void **state)
{
    (void)state;
    char models[512];
    snprintf(models, sizeof models, "%s/models", tmpdir);
    models_dir_entry *list = NULL;
    size_t n = 99;
    mcli_err err;
    assert_int_equal(models_dir_list(models, &list, &n, &err), MCLI_OK); /* missing dir = empty */
    assert_int_equal(n, 0);
    make_model(models, "org/b", true);
    make_model(models, "flat", true);
    make_model(models, "org/a", false); /* config only, no manifest: an interrupted first pull, not listed */
    assert_int_equal(models_dir_list(models, &list, &n, &err), MCLI_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].repo, "flat");
    assert_string_equal(list[1].repo, "org/b");
    assert_int_equal(list[1].bytes, 12);
    assert_true(models_dir_has_model(list[1].path));
    models_dir_list_free(list);

    assert_int_equal(models_dir_remove(models, "org/b", &err), MCLI_OK);
    assert_int_equal(models_dir_remove(models, "org/b", &err), MCLI_ERR_NOT_FOUND);
    assert_int_equal(models_dir_remove(models, "org/a", &err), MCLI_OK);
    char org[600];
    snprintf(org, sizeof org, "%s/lightweight/org", models);
    struct stat st;
    assert_int_not_equal(stat(org, &st), 0); /* empty org dir removed */
    /* Removal refuses while a pull holds the lock. */
    int fd = -1;
    assert_int_equal(models_dir_lock(models, "flat", false, NULL, NULL, &fd, &err), MCLI_OK);
    assert_int_equal(models_dir_remove(models, "flat", &err), MCLI_ERR_BUSY);
    models_dir_unlock(fd);
    assert_int_equal(models_dir_remove(models, "flat", &err), MCLI_OK);
}

static void models_dir_resolution_order(void **state)
{
    (void)state;
    char out[256];
    mcli_err err;
    setenv("MCLI_MODELS_DIR", "/from/env", 1);
    assert_int_equal(models_dir_resolve("/from/flag", out, sizeof out, &err), MCLI_OK);
    assert_string_equal(out, "/from/flag");
    assert_int_equal(models_dir_resolve(NULL, out, sizeof out, &err), MCLI_OK);
    assert_string_equal(out, "/from/env");
    unsetenv("MCLI_MODELS_DIR");
    assert_int_equal(models_dir_resolve(NULL, out, sizeof out, &err), MCLI_OK);
    assert_string_equal(out, "./models");
    char tiny[4];
    assert_int_equal(models_dir_resolve("/long/path", tiny, sizeof tiny, &err), MCLI_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(repo_ids_table),
        cmocka_unit_test(refs_and_revisions),
        cmocka_unit_test(file_names_from_the_hub_are_checked),
        cmocka_unit_test(url_encoding),
        cmocka_unit_test(size_values_table),
        cmocka_unit_test(content_range_table),
        cmocka_unit_test(etag_normalisation),
        cmocka_unit_test(backoff_doubles_caps_and_honours_retry_after),
        cmocka_unit_test(sha256_of_a_file_matches_the_standard_vector),
        cmocka_unit_test(manifest_round_trip),
        cmocka_unit_test(malformed_manifests_are_format_errors),
        cmocka_unit_test(lock_is_exclusive_between_open_descriptions),
        cmocka_unit_test(list_finds_both_layouts_and_remove_deletes),
        cmocka_unit_test(models_dir_resolution_order),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
