/* test_registry.c - the SQLite model registry: schema and migrations, CRUD, errors, summary math,
 * concurrent writers. Each test works in its own temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/registry.h"

typedef struct {
    char dir[64];
    char db[128];
} tmp_ctx;

static int setup(void **state)
{
    tmp_ctx *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    snprintf(t->dir, sizeof t->dir, "/tmp/mcli-reg-XXXXXX");
    if (!mkdtemp(t->dir)) {
        free(t);
        return -1;
    }
    snprintf(t->db, sizeof t->db, "%s/registry.db", t->dir);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    tmp_ctx *t = *state;
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", t->dir);
    free(t);
    return 0;
}

/* Opens the registry or fails the test with its message. */
static mcli_registry *open_ok(const char *path)
{
    mcli_registry *r = NULL;
    mcli_err err = {0};
    mcli_status st = registry_open(path, &r, &err);
    if (st != MCLI_OK)
        fail_msg("registry_open: %s", err.msg);
    return r;
}

static reg_model make_model(const char *name, const char *type)
{
    reg_model m;
    reg_model_init(&m);
    snprintf(m.name, sizeof m.name, "%s", name);
    snprintf(m.model_type, sizeof m.model_type, "%s", type);
    snprintf(m.model_path, sizeof m.model_path, "/models/%s", name);
    return m;
}

static reg_model add_ok(mcli_registry *r, const char *name, const char *type)
{
    reg_model m = make_model(name, type);
    mcli_err err = {0};
    if (registry_add(r, &m, &m, &err) != MCLI_OK)
        fail_msg("registry_add %s: %s", name, err.msg);
    return m;
}

static void record_ok(mcli_registry *r, const char *id, double ms, const char *error)
{
    reg_inference inf = {.model_id = id, .request_type = "generate", .input = "in", .output = error ? NULL : "out",
                         .execution_time_ms = ms, .error = error};
    mcli_err err = {0};
    if (registry_record_inference(r, &inf, &err) != MCLI_OK)
        fail_msg("record: %s", err.msg);
}

/* Runs one SQL query on a raw SQLite connection and returns the first column of the first row as int. */
static long long sql_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    long long v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void sql_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fail_msg("sql: %s", msg ? msg : "?");
    sqlite3_close(db);
}

static void new_registry_has_current_schema_in_wal_mode(void **state)
{
    tmp_ctx *t = *state;
    mcli_registry *r = open_ok(t->db);
    registry_close(r);
    assert_int_equal(sql_int(t->db, "PRAGMA user_version"), REGISTRY_SCHEMA_VERSION);
    assert_int_equal(sql_int(t->db, "SELECT count(*) FROM pragma_table_info('models')"), 14);
    assert_int_equal(sql_int(t->db, "SELECT count(*) FROM pragma_table_info('inferences')"), 8);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(t->db, &db), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);
    /* Reopening an up-to-date database changes nothing. */
    r = open_ok(t->db);
    registry_close(r);
    assert_int_equal(sql_int(t->db, "PRAGMA user_version"), REGISTRY_SCHEMA_VERSION);
}

static void add_get_list_update_remove_round_trip(void **state)
{
    tmp_ctx *t = *state;
    mcli_registry *r = open_ok(t->db);
    mcli_err err = {0};
    reg_model a = add_ok(r, "tiny-bert", "bert");
    reg_model b = add_ok(r, "gpt", "gpt2");
    assert_int_equal(strlen(a.id), REG_ID_LEN);
    assert_string_not_equal(a.id, b.id);
    assert_int_equal(a.max_length, REG_DEFAULT_MAX_LENGTH);
    assert_true(fabs(a.temperature - REG_DEFAULT_TEMPERATURE) < 1e-12);
    assert_string_equal(a.device, "cpu");
    assert_false(a.is_loaded);
    assert_true(strlen(a.created_at) >= 20 && a.created_at[4] == '-' && a.created_at[10] == 'T');

    reg_model got;
    assert_int_equal(registry_get(r, a.id, &got, &err), MCLI_OK);
    assert_string_equal(got.name, "tiny-bert");
    assert_string_equal(got.model_path, "/models/tiny-bert");
    assert_int_equal(registry_get(r, "gpt", &got, &err), MCLI_OK); /* by name */
    assert_string_equal(got.id, b.id);

    reg_update u = {.set_temperature = true, .temperature = 0.0, .set_top_k = true, .top_k = 5,
                    .tokenizer_path = "/tok", .name = "gpt-renamed"};
    assert_int_equal(registry_update(r, b.id, &u, &got, &err), MCLI_OK);
    assert_string_equal(got.name, "gpt-renamed");
    assert_true(got.temperature == 0.0);
    assert_int_equal(got.top_k, 5);
    assert_true(fabs(got.top_p - REG_DEFAULT_TOP_P) < 1e-12); /* untouched */
    assert_string_equal(got.tokenizer_path, "/tok");
    assert_string_equal(got.model_path, "/models/gpt");

    assert_int_equal(registry_set_loaded(r, a.id, true, 17.5, 4386178, &err), MCLI_OK);
    assert_int_equal(registry_get(r, a.id, &got, &err), MCLI_OK);
    assert_true(got.is_loaded);
    assert_true(got.memory_usage_mb == 17.5);
    assert_int_equal(got.parameters_count, 4386178);
    assert_int_equal(registry_clear_loaded(r, &err), MCLI_OK);
    assert_int_equal(registry_get(r, a.id, &got, &err), MCLI_OK);
    assert_false(got.is_loaded);
    assert_int_equal(got.parameters_count, 4386178); /* last measurement kept */

    reg_model *list = NULL;
    size_t n = 0;
    assert_int_equal(registry_list(r, &list, &n, &err), MCLI_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, a.id); /* oldest first */
    assert_string_equal(list[1].id, b.id);
    free(list);

    record_ok(r, b.id, 3.0, NULL);
    assert_int_equal(registry_remove(r, "gpt-renamed", &err), MCLI_OK);
    assert_int_equal(registry_get(r, b.id, &got, &err), MCLI_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, b.id));
    assert_int_equal(registry_remove(r, b.id, &err), MCLI_ERR_NOT_FOUND);
    registry_close(r);
    /* The removed model's inferences went with it. */
    assert_int_equal(sql_int(t->db, "SELECT count(*) FROM inferences"), 0);
    assert_int_equal(sql_int(t->db, "SELECT count(*) FROM models"), 1);
}

static void duplicate_name_is_invalid_argument_naming_it(void **state)
{
    tmp_ctx *t = *state;
    mcli_registry *r = open_ok(t->db);
    reg_model a = add_ok(r, "dup", "bert");
    reg_model other = add_ok(r, "other", "bert");
    reg_model m = make_model("dup", "gpt2");
    mcli_err err = {0};
    assert_int_equal(registry_add(r, &m, NULL, &err), MCLI_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "'dup' already exists"));
    assert_non_null(strstr(err.msg, t->db));
    reg_update u = {.name = "dup"};
    assert_int_equal(registry_update(r, other.id, &u, NULL, &err), MCLI_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "taken"));
    reg_model got;
    assert_int_equal(registry_get(r, "dup", &got, &err), MCLI_OK);
    assert_string_equal(got.id, a.id);
    assert_string_equal(got.model_type, "bert");
    registry_close(r);
    assert_int_equal(sql_int(t->db, "SELECT count(*) FROM models"), 2);
}

static void invalid_fields_are_rejected_before_touching_the_database(void **state)
{
    tmp_ctx *t = *state;
    mcli_registry *r = open_ok(t->db);
    mcli_err err = {0};
    reg_model m = make_model("x", "bert");
    m.top_p = 0.0;
    assert_int_equal(registry_add(r, &m, NULL, &err), MCLI_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "top_p"));
    m = make_model("x", "bert");
    m.temperature = -0.5;
    assert_int_equal(registry_add(r, &m, NULL, &err), MCLI_ERR_INVALID_ARG);
    m = make_model("x", "bert");
    m.temperature = NAN;
    assert_int_equal(registry_add(r, &m, NULL, &err), MCLI_ERR_INVALID_ARG);
    m = make_model("x", "bert");
    m.max_length = 0;
    assert_int_equal(registry_add(r, &m, NULL, &err), MCLI_ERR_INVALID_ARG);
    m = make_model("bad\nname", "bert");
    assert_int_equal(registry_add(r, &m, NULL, &err), MCLI_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "control character"));
    m = make_model("", "bert");
    assert_int_equal(registry_add(r, &m, NULL, &err), MCLI_ERR_INVALID_ARG);
    m = make_model("x", "bert");
    memset(m.name, 'a', sizeof m.name); /* not terminated within the field */
    assert_int_equal(registry_add(r, &m, NULL, &err), MCLI_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "longer than 255"));
    reg_update u = {.set_top_k = true, .top_k = -1};
    reg_model ok = add_ok(r, "ok", "bert");
    assert_int_equal(registry_update(r, ok.id, &u, NULL, &err), MCLI_ERR_INVALID_ARG);
    reg_update u2 = {.set_top_p = true, .top_p = 0.5};
    assert_int_equal(registry_update(r, "missing", &u2, NULL, &err), MCLI_ERR_NOT_FOUND);
    reg_inference inf = {.model_id = "00000000-0000-4000-8000-000000000000", .request_type = "generate"};
    assert_int_equal(registry_record_inference(r, &inf, &err), MCLI_ERR_NOT_FOUND);
    registry_close(r);
    assert_int_equal(sql_int(t->db, "SELECT count(*) FROM models"), 1);
    assert_int_equal(sql_int(t->db, "SELECT count(*) FROM inferences"), 0);
}

/* Summary against figures computed by hand:
 *   a (bert, loaded 10.5 MB): 10, 20, 30 ms ok + one 5 ms error -> 4 inferences, 1 error, mean 20
 *   b (bert, not loaded, last measured 99 MB): none -> 0, 0, mean 0
 *   c (gpt2, loaded 20.25 MB): 7 ms -> 1, 0, mean 7
 *   totals: 3 models, 2 loaded, 30.75 MB loaded, 5 inferences, 1 error; bert 2, gpt2 1. */
static void summary_matches_hand_computed_figures(void **state)
{
    tmp_ctx *t = *state;
    mcli_registry *r = open_ok(t->db);
    mcli_err err = {0};
    reg_model a = add_ok(r, "a", "bert");
    reg_model b = add_ok(r, "b", "bert");
    reg_model c = add_ok(r, "c", "gpt2");
    assert_int_equal(registry_set_loaded(r, a.id, true, 10.5, 100, &err), MCLI_OK);
    assert_int_equal(registry_set_loaded(r, b.id, true, 99.0, 100, &err), MCLI_OK);
    assert_int_equal(registry_set_loaded(r, b.id, false, 0, 0, &err), MCLI_OK);
    assert_int_equal(registry_set_loaded(r, c.id, true, 20.25, 100, &err), MCLI_OK);
    record_ok(r, a.id, 10, NULL);
    record_ok(r, a.id, 20, NULL);
    record_ok(r, a.id, 30, NULL);
    record_ok(r, a.id, 5, "boom");
    record_ok(r, c.id, 7, NULL);

    reg_summary s;
    assert_int_equal(registry_summary(r, &s, &err), MCLI_OK);
    assert_int_equal(s.total_models, 3);
    assert_int_equal(s.loaded_models, 2);
    assert_true(fabs(s.loaded_memory_mb - 30.75) < 1e-9);
    assert_int_equal(s.total_inferences, 5);
    assert_int_equal(s.total_errors, 1);
    assert_int_equal(s.n_types, 2);
    assert_string_equal(s.by_type[0].model_type, "bert");
    assert_int_equal(s.by_type[0].count, 2);
    assert_string_equal(s.by_type[1].model_type, "gpt2");
    assert_int_equal(s.by_type[1].count, 1);
    assert_int_equal(s.n_models, 3);
    assert_string_equal(s.per_model[0].name, "a");
    assert_int_equal(s.per_model[0].inferences, 4);
    assert_int_equal(s.per_model[0].errors, 1);
    assert_true(fabs(s.per_model[0].mean_latency_ms - 20.0) < 1e-9);
    assert_string_equal(s.per_model[1].name, "b");
    assert_int_equal(s.per_model[1].inferences, 0);
    assert_true(s.per_model[1].mean_latency_ms == 0.0);
    assert_string_equal(s.per_model[2].id, c.id);
    assert_true(fabs(s.per_model[2].mean_latency_ms - 7.0) < 1e-9);
    registry_summary_free(&s);
    registry_close(r);
}

static void inference_text_is_capped_on_a_utf8_boundary(void **state)
{
    tmp_ctx *t = *state;
    mcli_registry *r = open_ok(t->db);
    reg_model a = add_ok(r, "a", "gpt2");
    /* 'é' is two bytes: REGISTRY_TEXT_MAX is even, so a leading 'x' puts a boundary mid-character. */
    size_t n = REGISTRY_TEXT_MAX + 100;
    char *big = malloc(n + 1);
    assert_non_null(big);
    big[0] = 'x';
    for (size_t i = 1; i + 1 < n; i += 2) {
        big[i] = (char)0xC3;
        big[i + 1] = (char)0xA9;
    }
    big[n - 1] = 'y';
    big[n] = '\0';
    reg_inference inf = {.model_id = a.id, .request_type = "generate", .input = big, .output = "short",
                         .execution_time_ms = 1};
    mcli_err err = {0};
    assert_int_equal(registry_record_inference(r, &inf, &err), MCLI_OK);
    registry_close(r);
    free(big);
    assert_int_equal(sql_int(t->db, "SELECT length(CAST(input AS BLOB)) FROM inferences"), REGISTRY_TEXT_MAX - 1);
    assert_int_equal(sql_int(t->db, "SELECT length(output) FROM inferences"), 5);
}

/* The version-1 schema as the original service laid it out (no inferences.error). */
static const char v1_schema[] =
    "CREATE TABLE models (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL UNIQUE, model_type TEXT NOT NULL,"
    " model_path TEXT NOT NULL, tokenizer_path TEXT, device TEXT NOT NULL DEFAULT 'cpu',"
    " max_length INTEGER NOT NULL DEFAULT 100, temperature REAL NOT NULL DEFAULT 0.7,"
    " top_p REAL NOT NULL DEFAULT 0.9, top_k INTEGER NOT NULL DEFAULT 50, is_loaded INTEGER NOT NULL DEFAULT 0,"
    " memory_usage_mb REAL, parameters_count INTEGER, created_at TEXT NOT NULL);"
    "CREATE TABLE inferences (id TEXT PRIMARY KEY NOT NULL, model_id TEXT NOT NULL REFERENCES models(id)"
    " ON DELETE CASCADE, request_type TEXT NOT NULL, input TEXT, output TEXT, execution_time_ms REAL,"
    " created_at TEXT NOT NULL);"
    "INSERT INTO models (id, name, model_type, model_path, max_length, temperature, top_p, top_k, created_at)"
    " VALUES ('11111111-1111-4111-8111-111111111111', 'old', 'gpt2', '/m/old', 64, 0.5, 0.8, 40,"
    " '2025-01-01T00:00:00Z');"
    "INSERT INTO inferences (id, model_id, request_type, input, output, execution_time_ms, created_at)"
    " VALUES ('22222222-2222-4222-8222-222222222222', '11111111-1111-4111-8111-111111111111', 'generate',"
    " 'hi', 'there', 12.0, '2025-01-01T00:00:01Z');"
    "PRAGMA user_version = 1;";

static void version_1_database_is_migrated_keeping_its_rows(void **state)
{
    tmp_ctx *t = *state;
    sql_exec(t->db, v1_schema);
    mcli_registry *r = open_ok(t->db);
    mcli_err err = {0};
    reg_model old;
    assert_int_equal(registry_get(r, "old", &old, &err), MCLI_OK);
    assert_string_equal(old.id, "11111111-1111-4111-8111-111111111111");
    assert_int_equal(old.max_length, 64);
    assert_int_equal(old.top_k, 40);
    record_ok(r, old.id, 8.0, "failed"); /* uses the new error column */
    record_ok(r, old.id, 4.0, NULL);
    reg_summary s;
    assert_int_equal(registry_summary(r, &s, &err), MCLI_OK);
    assert_int_equal(s.per_model[0].inferences, 3);
    assert_int_equal(s.per_model[0].errors, 1);
    assert_true(fabs(s.per_model[0].mean_latency_ms - 8.0) < 1e-9); /* (12 + 4) / 2 */
    registry_summary_free(&s);
    registry_close(r);
    assert_int_equal(sql_int(t->db, "PRAGMA user_version"), REGISTRY_SCHEMA_VERSION);
    assert_int_equal(sql_int(t->db, "SELECT count(*) FROM sqlite_master WHERE name = 'inferences_by_model'"), 1);
}

static void newer_schema_version_is_refused_and_left_untouched(void **state)
{
    tmp_ctx *t = *state;
    sql_exec(t->db, "CREATE TABLE future (x); PRAGMA user_version = 99;");
    mcli_registry *r = NULL;
    mcli_err err = {0};
    assert_int_equal(registry_open(t->db, &r, &err), MCLI_ERR_UNSUPPORTED);
    assert_null(r);
    assert_non_null(strstr(err.msg, "schema version 99"));
    assert_non_null(strstr(err.msg, t->db));
    assert_int_equal(sql_int(t->db, "PRAGMA user_version"), 99);
    assert_int_equal(sql_int(t->db, "SELECT count(*) FROM sqlite_master WHERE name = 'models'"), 0);
}

static void file_that_is_not_sqlite_is_a_clear_format_error(void **state)
{
    tmp_ctx *t = *state;
    FILE *f = fopen(t->db, "wb");
    assert_non_null(f);
    for (int i = 0; i < 64; i++)
        fputs("this is a text file, not a database\n", f);
    fclose(f);
    mcli_registry *r = NULL;
    mcli_err err = {0};
    assert_int_equal(registry_open(t->db, &r, &err), MCLI_ERR_FORMAT);
    assert_null(r);
    assert_non_null(strstr(err.msg, t->db));
    assert_non_null(strstr(err.msg, "not an SQLite database"));
}

static void missing_directory_is_an_io_error_naming_the_path(void **state)
{
    tmp_ctx *t = *state;
    char path[200];
    snprintf(path, sizeof path, "%s/no/such/dir/r.db", t->dir);
    mcli_registry *r = NULL;
    mcli_err err = {0};
    assert_int_equal(registry_open(path, &r, &err), MCLI_ERR_IO);
    assert_non_null(strstr(err.msg, path));
}

static void uuids_are_version_4_and_distinct(void **state)
{
    (void)state;
    char a[REG_ID_LEN + 1], b[REG_ID_LEN + 1];
    mcli_err err = {0};
    assert_int_equal(registry_new_uuid(a, &err), MCLI_OK);
    assert_int_equal(registry_new_uuid(b, &err), MCLI_OK);
    assert_int_equal(strlen(a), 36);
    assert_true(a[8] == '-' && a[13] == '-' && a[18] == '-' && a[23] == '-');
    assert_int_equal(a[14], '4');
    assert_non_null(strchr("89ab", a[19]));
    assert_string_not_equal(a, b);
}

/* Garbage over the table pages of a valid database: every call fails cleanly with FORMAT and the
 * path, and registry_check names the damage; nothing crashes. */
static void corrupted_pages_are_a_format_error_not_a_crash(void **state)
{
    tmp_ctx *t = *state;
    mcli_registry *r = open_ok(t->db);
    for (int i = 0; i < 200; i++) {
        char name[32];
        snprintf(name, sizeof name, "model-%03d", i);
        reg_model m = add_ok(r, name, i % 2 ? "bert" : "gpt2");
        record_ok(r, m.id, i, NULL);
    }
    registry_close(r); /* the last connection checkpoints the WAL into the file */
    FILE *f = fopen(t->db, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    assert_true(size > 8 * 4096);
    unsigned char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)(i * 131 + 7);
    for (long off = 2 * 4096; off + 4096 <= size; off += 3 * 4096) {
        assert_int_equal(fseek(f, off, SEEK_SET), 0);
        assert_int_equal(fwrite(junk, 1, sizeof junk, f), sizeof junk);
    }
    fclose(f);
    mcli_err err = {0};
    r = NULL;
    mcli_status st = registry_open(t->db, &r, &err);
    if (st == MCLI_OK) {
        reg_model *list = NULL;
        size_t n = 0;
        mcli_status ls = registry_list(r, &list, &n, &err);
        free(list);
        reg_summary sum;
        mcli_status ss = registry_summary(r, &sum, &err);
        if (ss == MCLI_OK)
            registry_summary_free(&sum);
        assert_true(ls != MCLI_OK || ss != MCLI_OK);
        assert_int_equal(registry_check(r, &err), MCLI_ERR_FORMAT);
        registry_close(r);
    } else {
        assert_int_equal(st, MCLI_ERR_FORMAT);
    }
    assert_non_null(strstr(err.msg, t->db));
    print_message("corruption reported as: %s\n", err.msg);
}

/* ---- concurrency ---- */

enum { WRITER_MODELS = 40 };

typedef struct {
    const char *db;        /* open a connection of its own when non-NULL */
    mcli_registry *shared; /* else use this one */
    int tag;
    int failures;
    char msg[MCLI_ERR_MSG_MAX];
} writer_arg;

/* Adds WRITER_MODELS models, records two inferences each, and removes every other one. */
static void *writer(void *p)
{
    writer_arg *w = p;
    mcli_err err = {0};
    mcli_registry *r = w->shared;
    if (!r && registry_open(w->db, &r, &err) != MCLI_OK)
        goto fail;
    for (int i = 0; i < WRITER_MODELS; i++) {
        reg_model m = make_model("", "bert");
        snprintf(m.name, sizeof m.name, "w%d-m%d", w->tag, i);
        if (registry_add(r, &m, &m, &err) != MCLI_OK)
            goto fail;
        reg_inference inf = {.model_id = m.id, .request_type = "classify", .execution_time_ms = i};
        if (registry_record_inference(r, &inf, &err) != MCLI_OK || registry_record_inference(r, &inf, &err) != MCLI_OK)
            goto fail;
        if (i % 2 == 1 && registry_remove(r, m.id, &err) != MCLI_OK)
            goto fail;
    }
    if (!w->shared)
        registry_close(r);
    return NULL;
fail:
    w->failures++;
    snprintf(w->msg, sizeof w->msg, "%s", err.msg);
    if (!w->shared)
        registry_close(r);
    return NULL;
}

static void check_after_writers(tmp_ctx *t, writer_arg *w, int n)
{
    for (int i = 0; i < n; i++)
        if (w[i].failures)
            fail_msg("writer %d: %s", i, w[i].msg);
    long long models = sql_int(t->db, "SELECT count(*) FROM models");
    assert_int_equal(models, n * WRITER_MODELS / 2);
    assert_int_equal(sql_int(t->db, "SELECT count(*) FROM inferences"), n * WRITER_MODELS);
    assert_int_equal(sql_int(t->db, "SELECT count(*) FROM inferences WHERE model_id NOT IN (SELECT id FROM models)"), 0);
    mcli_registry *r = open_ok(t->db);
    mcli_err err = {0};
    assert_int_equal(registry_check(r, &err), MCLI_OK);
    reg_summary s;
    assert_int_equal(registry_summary(r, &s, &err), MCLI_OK);
    assert_int_equal(s.total_models, models);
    assert_int_equal(s.total_inferences, n * WRITER_MODELS);
    registry_summary_free(&s);
    registry_close(r);
}

static void two_connections_writing_at_once_stay_consistent(void **state)
{
    tmp_ctx *t = *state;
    registry_close(open_ok(t->db)); /* create the schema first */
    writer_arg w[2] = {{.db = t->db, .tag = 0}, {.db = t->db, .tag = 1}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, writer, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    check_after_writers(t, w, 2);
}

static void two_threads_sharing_one_handle_stay_consistent(void **state)
{
    tmp_ctx *t = *state;
    mcli_registry *r = open_ok(t->db);
    writer_arg w[2] = {{.shared = r, .tag = 0}, {.shared = r, .tag = 1}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, writer, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    registry_close(r);
    check_after_writers(t, w, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(new_registry_has_current_schema_in_wal_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(add_get_list_update_remove_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(duplicate_name_is_invalid_argument_naming_it, setup, teardown),
        cmocka_unit_test_setup_teardown(invalid_fields_are_rejected_before_touching_the_database, setup, teardown),
        cmocka_unit_test_setup_teardown(summary_matches_hand_computed_figures, setup, teardown),
        cmocka_unit_test_setup_teardown(inference_text_is_capped_on_a_utf8_boundary, setup, teardown),
        cmocka_unit_test_setup_teardown(version_1_database_is_migrated_keeping_its_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(newer_schema_version_is_refused_and_left_untouched, setup, teardown),
        cmocka_unit_test_setup_teardown(file_that_is_not_sqlite_is_a_clear_format_error, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_directory_is_an_io_error_naming_the_path, setup, teardown),
        cmocka_unit_test(uuids_are_version_4_and_distinct),
        cmocka_unit_test_setup_teardown(corrupted_pages_are_a_format_error_not_a_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(two_connections_writing_at_once_stay_consistent, setup, teardown),
        cmocka_unit_test_setup_teardown(two_threads_sharing_one_handle_stay_consistent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
