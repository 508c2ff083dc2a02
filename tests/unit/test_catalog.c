/* Unit tests for hub/catalog: the shipped data/catalog.json (the original five, their aliases, the
 * neighbours, the --auto tiers), lookups, user-file overrides, bundled paths and malformed files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hub/catalog.h"
#include "store/models_dir.h"

#define SHIPPED MCLI_SOURCE_DIR "/data/catalog.json"

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
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mcli-test-catalog-%ld", (long)getpid());
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

static hub_catalog *load_shipped(void)
{
    const char *paths[] = {SHIPPED};
    hub_catalog *cat = NULL;
    mcli_err err;
    assert_int_equal(hub_catalog_load(paths, 1, &cat, &err), MCLI_OK);
    return cat;
}

static void shipped_catalog_has_the_original_five_and_the_neighbours(void **state)
{
    (void)state;
    hub_catalog *cat = load_shipped();
    static const char *const keys[] = {
        "prajjwal1/bert-tiny", "sshleifer/tiny-distilbert-base-uncased", "microsoft/DialoGPT-tiny",
        "distilbert-base-uncased", "microsoft/DialoGPT-small", "distilbert-base-uncased-finetuned-sst-2-english",
        "sentence-transformers/all-MiniLM-L6-v2", "distilgpt2", "gpt2"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const hub_entry *e = hub_catalog_find(cat, keys[i]);
        assert_non_null(e);
        assert_true(models_dir_repo_valid(e->repo));
        assert_non_null(e->name);
        assert_non_null(e->description);
        assert_non_null(e->parameters);
        assert_true(e->size_mb > 0);
        assert_true(e->n_tags > 0);
        assert_true(e->hidden > 0 && e->layers > 0 && e->context > 0);
    }
    const hub_entry *bt = hub_catalog_find(cat, "prajjwal1/bert-tiny");
    assert_string_equal(bt->parameters, "4.4M");
    assert_true(bt->size_mb == 18 && bt->efficiency_score == 10.0 && bt->accuracy_score == 4.5);
    assert_string_equal(bt->type, "text-classification");
    assert_string_equal(bt->revision, "main");
    hub_catalog_free(cat);
}

static void unpublished_keys_are_aliases_of_real_repos(void **state)
{
    (void)state;
    hub_catalog *cat = load_shipped();
    const hub_entry *a = hub_catalog_find(cat, "sshleifer/tiny-distilbert-base-uncased");
    assert_string_equal(a->repo, "sshleifer/tiny-distilbert-base-uncased-finetuned-sst-2-english");
    assert_non_null(a->alias_note);
    const hub_entry *b = hub_catalog_find(cat, "microsoft/DialoGPT-tiny");
    assert_string_equal(b->repo, "microsoft/DialoGPT-small");
    assert_non_null(b->alias_note);
    /* Looking up by the real repo finds the alias entry (the first with that repo). */
    assert_ptr_equal(hub_catalog_find(cat, "sshleifer/tiny-distilbert-base-uncased-finetuned-sst-2-english"), a);
    /* Keys that are real repos are not aliases. */
    for (size_t i = 0; i < hub_catalog_count(cat); i++) {
        const hub_entry *e = hub_catalog_at(cat, i);
        assert_true((strcmp(e->key, e->repo) != 0) == (e->alias_note != NULL));
    }
    hub_catalog_free(cat);
}

static void auto_tiers_encode_the_original_rule(void **state)
{
    (void)state;
    hub_catalog *cat = load_shipped();
    assert_int_equal(hub_catalog_find(cat, "prajjwal1/bert-tiny")->auto_min_ram_mb, 0);
    assert_int_equal(hub_catalog_find(cat, "sshleifer/tiny-distilbert-base-uncased")->auto_min_ram_mb, 2048);
    assert_int_equal(hub_catalog_find(cat, "distilbert-base-uncased")->auto_min_ram_mb, 4096);
    assert_int_equal(hub_catalog_find(cat, "gpt2")->auto_min_ram_mb, -1);
    hub_catalog_free(cat);
}

static void lookup_is_case_insensitive_as_a_last_resort(void **state)
{
    (void)state;
    hub_catalog *cat = load_shipped();
    assert_ptr_equal(hub_catalog_find(cat, "Prajjwal1/Bert-Tiny"), hub_catalog_find(cat, "prajjwal1/bert-tiny"));
    assert_null(hub_catalog_find(cat, "nobody/nothing"));
    hub_catalog_free(cat);
}

static void user_file_overrides_and_extends(void **state)
{
    (void)state;
    char user[512];
    snprintf(user, sizeof user, "%s/user.json", tmpdir);
    write_file(user, "{\"format\":1,\"models\":["
                     "{\"key\":\"gpt2\",\"name\":\"Mine\",\"size_mb\":1},"
                     "{\"key\":\"mcli/demo\",\"bundled\":true,\"path\":\"bundled/demo\",\"size_mb\":2}]}");
    const char *paths[] = {SHIPPED, user};
    hub_catalog *cat = NULL;
    mcli_err err;
    assert_int_equal(hub_catalog_load(paths, 2, &cat, &err), MCLI_OK);
    const hub_entry *g = hub_catalog_find(cat, "gpt2");
    assert_string_equal(g->name, "Mine");
    assert_true(g->from_user_file);
    assert_null(g->description); /* whole-entry replacement */
    const hub_entry *d = hub_catalog_find(cat, "mcli/demo");
    assert_true(d->bundled);
    char want[600];
    snprintf(want, sizeof want, "%s/bundled/demo", tmpdir);
    assert_string_equal(d->path, want); /* relative to the catalog file's directory */
    assert_non_null(hub_catalog_find(cat, "prajjwal1/bert-tiny"));
    hub_catalog_free(cat);
}

static void missing_user_file_is_skipped_missing_system_file_is_an_error(void **state)
{
    (void)state;
    const char *paths[] = {SHIPPED, "/nonexistent/user.json"};
    hub_catalog *cat = NULL;
    mcli_err err;
    assert_int_equal(hub_catalog_load(paths, 2, &cat, &err), MCLI_OK);
    hub_catalog_free(cat);
    const char *bad[] = {"/nonexistent/catalog.json"};
    assert_int_equal(hub_catalog_load(bad, 1, &cat, &err), MCLI_ERR_NOT_FOUND);
    assert_null(cat);
}

static void malformed_files_name_the_file_and_the_problem(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *msg;
    } cases[] = {
        {"{not json", "line 1"},
        {"[]", "expected"},
        {"{\"models\": {}}", "expected"},
        {"{\"models\": [1]}", "not an object"},
        {"{\"models\": [{\"name\": \"x\"}]}", "no \"key\""},
        {"{\"models\": [{\"key\": 5}]}", "must be a string"},
        {"{\"models\": [{\"key\": \"a\", \"size_mb\": \"big\"}]}", "must be a number"},
        {"{\"models\": [{\"key\": \"a\", \"bundled\": true}]}", "no \"path\""},
        {"{\"models\": [{\"key\": \"a\", \"auto_min_ram_mb\": -3}]}", "non-negative"},
        {"{\"models\": [{\"key\": \"a\", \"shape\": {\"hidden\": -1}}]}", "out of range"},
        {"{\"models\": [{\"key\": \"a\", \"key\": \"b\"}]}", "duplicate"},
    };
    char path[512];
    snprintf(path, sizeof path, "%s/bad.json", tmpdir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(path, cases[i].text);
        const char *paths[] = {path};
        hub_catalog *cat = NULL;
        mcli_err err;
        mcli_err_clear(&err);
        mcli_status st = hub_catalog_load(paths, 1, &cat, &err);
        assert_int_not_equal(st, MCLI_OK);
        assert_null(cat);
        assert_non_null(strstr(err.msg, "bad.json"));
        if (!strstr(err.msg, cases[i].msg))
            fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].msg);
    }
}

static void data_dir_env_wins(void **state)
{
    (void)state;
    char f[512];
    snprintf(f, sizeof f, "%s/catalog.json", tmpdir);
    write_file(f, "{\"format\":1,\"models\":[{\"key\":\"x/y\"}]}");
    setenv("MCLI_DATA_DIR", tmpdir, 1);
    setenv("XDG_CONFIG_HOME", "/nonexistent", 1);
    hub_catalog *cat = NULL;
    mcli_err err;
    assert_int_equal(hub_catalog_open_default(&cat, &err), MCLI_OK);
    assert_int_equal(hub_catalog_count(cat), 1);
    assert_string_equal(hub_catalog_at(cat, 0)->repo, "x/y");
    hub_catalog_free(cat);
    setenv("MCLI_DATA_DIR", "/nonexistent", 1);
    assert_int_equal(hub_catalog_open_default(&cat, &err), MCLI_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "MCLI_DATA_DIR"));
    unsetenv("MCLI_DATA_DIR");
    hub_catalog_set_data_dir(MCLI_SOURCE_DIR "/data");
    assert_int_equal(hub_catalog_open_default(&cat, &err), MCLI_OK);
    assert_non_null(hub_catalog_find(cat, "gpt2"));
    hub_catalog_free(cat);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shipped_catalog_has_the_original_five_and_the_neighbours),
        cmocka_unit_test(unpublished_keys_are_aliases_of_real_repos),
        cmocka_unit_test(auto_tiers_encode_the_original_rule),
        cmocka_unit_test(lookup_is_case_insensitive_as_a_last_resort),
        cmocka_unit_test(user_file_overrides_and_extends),
        cmocka_unit_test(missing_user_file_is_skipped_missing_system_file_is_an_error),
        cmocka_unit_test(malformed_files_name_the_file_and_the_problem),
        cmocka_unit_test(data_dir_env_wins),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
