/* registry.c - the SQLite model registry (see registry.h for the contract).
 *
 * Every statement is prepared once per connection (stmt cache indexed by reg_stmt) and reset
 * after each use. Writes are single autocommit statements, or BEGIN IMMEDIATE transactions when
 * they read before writing, so that a writer waits on the busy timeout instead of failing on a
 * stale WAL snapshot.
 *
 * Migrations (user_version N -> N+1, applied in order):
 *   0 -> 1  the original service's tables: models, inferences (without error)
 *   1 -> 2  inferences.error, an index for per-model statistics
 */
#include "store/registry.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static const char *const migrations[REGISTRY_SCHEMA_VERSION] = {
    /* 0 -> 1 */
    "CREATE TABLE models ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " name TEXT NOT NULL UNIQUE,"
    " model_type TEXT NOT NULL,"
    " model_path TEXT NOT NULL,"
    " tokenizer_path TEXT,"
    " device TEXT NOT NULL DEFAULT 'cpu',"
    " max_length INTEGER NOT NULL DEFAULT 100,"
    " temperature REAL NOT NULL DEFAULT 0.7,"
    " top_p REAL NOT NULL DEFAULT 0.9,"
    " top_k INTEGER NOT NULL DEFAULT 50,"
    " is_loaded INTEGER NOT NULL DEFAULT 0,"
    " memory_usage_mb REAL,"
    " parameters_count INTEGER,"
    " created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')));"
    "CREATE TABLE inferences ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " model_id TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
    " request_type TEXT NOT NULL,"
    " input TEXT,"
    " output TEXT,"
    " execution_time_ms REAL,"
    " created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')));",
    /* 1 -> 2 */
    "ALTER TABLE inferences ADD COLUMN error TEXT;"
    "CREATE INDEX inferences_by_model ON inferences(model_id, created_at);",
};

/* Timestamps are always written explicitly (older schemas had no column defaults). */
#define NOW_SQL "strftime('%Y-%m-%dT%H:%M:%fZ','now')"

#define MODEL_COLS                                                                                          \
    "id, name, model_type, model_path, coalesce(tokenizer_path,''), device, max_length, temperature, top_p, " \
    "top_k, is_loaded, coalesce(memory_usage_mb,0), coalesce(parameters_count,0), created_at"

typedef enum {
    ST_INSERT_MODEL,
    ST_GET_BY_ID,
    ST_GET_BY_NAME,
    ST_LIST,
    ST_UPDATE,
    ST_SET_LOADED,
    ST_CLEAR_LOADED,
    ST_DELETE,
    ST_INSERT_INFERENCE,
    ST_COUNT_MODELS,
    ST_COUNT_BY_TYPE,
    ST_PER_MODEL,
    ST_TOTAL_INFERENCES,
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_N
} reg_stmt;

static const char *const stmt_sql[ST_N] = {
    [ST_INSERT_MODEL] = "INSERT INTO models (id, name, model_type, model_path, tokenizer_path, device, max_length,"
                        " temperature, top_p, top_k, is_loaded, memory_usage_mb, parameters_count, created_at)"
                        " VALUES (?1, ?2, ?3, ?4, nullif(?5,''), ?6, ?7, ?8, ?9, ?10, 0, NULL, NULL, " NOW_SQL ")",
    [ST_GET_BY_ID] = "SELECT " MODEL_COLS " FROM models WHERE id = ?1",
    [ST_GET_BY_NAME] = "SELECT " MODEL_COLS " FROM models WHERE name = ?1",
    [ST_LIST] = "SELECT " MODEL_COLS " FROM models ORDER BY created_at, rowid",
    [ST_UPDATE] = "UPDATE models SET name = coalesce(?2, name), model_type = coalesce(?3, model_type),"
                  " model_path = coalesce(?4, model_path),"
                  " tokenizer_path = CASE WHEN ?5 IS NULL THEN tokenizer_path ELSE nullif(?5,'') END,"
                  " device = coalesce(?6, device), max_length = coalesce(?7, max_length),"
                  " temperature = coalesce(?8, temperature), top_p = coalesce(?9, top_p),"
                  " top_k = coalesce(?10, top_k) WHERE id = ?1",
    [ST_SET_LOADED] = "UPDATE models SET is_loaded = ?2,"
                      " memory_usage_mb = CASE WHEN ?2 THEN ?3 ELSE memory_usage_mb END,"
                      " parameters_count = CASE WHEN ?2 THEN ?4 ELSE parameters_count END WHERE id = ?1",
    [ST_CLEAR_LOADED] = "UPDATE models SET is_loaded = 0 WHERE is_loaded <> 0",
    [ST_DELETE] = "DELETE FROM models WHERE id = ?1",
    [ST_INSERT_INFERENCE] = "INSERT INTO inferences (id, model_id, request_type, input, output, execution_time_ms,"
                            " error, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, " NOW_SQL ")",
    [ST_COUNT_MODELS] = "SELECT count(*), coalesce(sum(is_loaded <> 0),0),"
                        " coalesce(sum(CASE WHEN is_loaded <> 0 THEN coalesce(memory_usage_mb,0) ELSE 0 END),0)"
                        " FROM models",
    [ST_COUNT_BY_TYPE] = "SELECT model_type, count(*) FROM models GROUP BY model_type ORDER BY model_type",
    [ST_PER_MODEL] = "SELECT m.id, m.name, count(i.id), coalesce(sum(i.error IS NOT NULL),0),"
                     " coalesce(avg(CASE WHEN i.error IS NULL THEN i.execution_time_ms END),0)"
                     " FROM models m LEFT JOIN inferences i ON i.model_id = m.id"
                     " GROUP BY m.id ORDER BY m.created_at, m.rowid",
    [ST_TOTAL_INFERENCES] = "SELECT count(*), coalesce(sum(error IS NOT NULL),0) FROM inferences",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
};

struct mcli_registry {
    sqlite3 *db;
    char *path;
    pthread_mutex_t lock;
    sqlite3_stmt *stmts[ST_N];
};

/* ---- errors ---- */

static mcli_status status_of_sqlite(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK: case SQLITE_ROW: case SQLITE_DONE: return MCLI_OK;
    case SQLITE_NOTADB: case SQLITE_CORRUPT: return MCLI_ERR_FORMAT;
    case SQLITE_BUSY: case SQLITE_LOCKED: return MCLI_ERR_BUSY;
    case SQLITE_NOMEM: return MCLI_ERR_NOMEM;
    case SQLITE_CONSTRAINT: case SQLITE_MISMATCH: case SQLITE_RANGE: case SQLITE_TOOBIG: return MCLI_ERR_INVALID_ARG;
    case SQLITE_CANTOPEN: case SQLITE_IOERR: case SQLITE_FULL: case SQLITE_READONLY: case SQLITE_PERM:
    case SQLITE_PROTOCOL: return MCLI_ERR_IO;
    default: return MCLI_ERR_INTERNAL;
    }
}

/* "registry PATH: WHAT: SQLITE MESSAGE (hint)" with the status derived from rc. */
static mcli_status reg_fail(const mcli_registry *r, int rc, mcli_err *err, const char *what)
{
    mcli_status st = status_of_sqlite(rc);
    if (st == MCLI_OK)
        st = MCLI_ERR_INTERNAL;
    const char *msg = r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc);
    const char *hint = "";
    if ((rc & 0xff) == SQLITE_NOTADB)
        hint = " (this file is not an SQLite database: point --db elsewhere or move the file away)";
    else if ((rc & 0xff) == SQLITE_BUSY)
        hint = " (another process holds the database lock; retry)";
    else if ((rc & 0xff) == SQLITE_CORRUPT)
        hint = " (the database is corrupt: restore it or move it away to start afresh)";
    else if ((rc & 0xff) == SQLITE_CANTOPEN)
        hint = " (check that the directory exists and is writable)";
    return mcli_fail(err, st, "registry %s: %s: %s%s", r->path, what, msg, hint);
}

/* ---- statements ---- */

static mcli_status stmt_get(mcli_registry *r, reg_stmt which, sqlite3_stmt **out, mcli_err *err)
{
    if (!r->stmts[which]) {
        int rc = sqlite3_prepare_v3(r->db, stmt_sql[which], -1, SQLITE_PREPARE_PERSISTENT, &r->stmts[which], NULL);
        if (rc != SQLITE_OK)
            return reg_fail(r, rc, err, "preparing a statement");
    }
    *out = r->stmts[which];
    return MCLI_OK;
}

static void stmt_done(sqlite3_stmt *s)
{
    if (s) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }
}

static int bind_text_or_null(sqlite3_stmt *s, int idx, const char *text)
{
    return text ? sqlite3_bind_text(s, idx, text, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(s, idx);
}

/* Runs a statement that returns no rows. */
static mcli_status exec_stmt(mcli_registry *r, reg_stmt which, const char *what, mcli_err *err)
{
    sqlite3_stmt *s = NULL;
    mcli_status st = stmt_get(r, which, &s, err);
    if (st != MCLI_OK)
        return st;
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE)
        st = reg_fail(r, rc, err, what);
    stmt_done(s);
    return st;
}

/* Copies a text column into dst[cap]; a value that does not fit is a malformed database. */
static mcli_status col_text(mcli_registry *r, sqlite3_stmt *s, int col, char *dst, size_t cap, mcli_err *err)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    int len = sqlite3_column_bytes(s, col);
    if (!t) {
        if (sqlite3_errcode(r->db) == SQLITE_NOMEM)
            return mcli_fail(err, MCLI_ERR_NOMEM, "registry %s: out of memory reading a row", r->path);
        dst[0] = '\0';
        return MCLI_OK;
    }
    if (len < 0 || (size_t)len >= cap)
        return mcli_fail(err, MCLI_ERR_FORMAT, "registry %s: column %s holds %d bytes, more than the %zu allowed",
                         r->path, sqlite3_column_name(s, col), len, cap - 1);
    memcpy(dst, t, (size_t)len);
    dst[len] = '\0';
    return MCLI_OK;
}

static mcli_status read_model_row(mcli_registry *r, sqlite3_stmt *s, reg_model *m, mcli_err *err)
{
    mcli_status st;
    if ((st = col_text(r, s, 0, m->id, sizeof m->id, err)) != MCLI_OK ||
        (st = col_text(r, s, 1, m->name, sizeof m->name, err)) != MCLI_OK ||
        (st = col_text(r, s, 2, m->model_type, sizeof m->model_type, err)) != MCLI_OK ||
        (st = col_text(r, s, 3, m->model_path, sizeof m->model_path, err)) != MCLI_OK ||
        (st = col_text(r, s, 4, m->tokenizer_path, sizeof m->tokenizer_path, err)) != MCLI_OK ||
        (st = col_text(r, s, 5, m->device, sizeof m->device, err)) != MCLI_OK ||
        (st = col_text(r, s, 13, m->created_at, sizeof m->created_at, err)) != MCLI_OK)
        return st;
    sqlite3_int64 max_len = sqlite3_column_int64(s, 6), top_k = sqlite3_column_int64(s, 9);
    m->max_length = max_len > 0 && max_len <= 1000000 ? (int)max_len : REG_DEFAULT_MAX_LENGTH;
    m->top_k = top_k >= 0 && top_k <= 1000000 ? (int)top_k : REG_DEFAULT_TOP_K;
    m->temperature = sqlite3_column_double(s, 7);
    m->top_p = sqlite3_column_double(s, 8);
    m->is_loaded = sqlite3_column_int64(s, 10) != 0;
    m->memory_usage_mb = sqlite3_column_double(s, 11);
    m->parameters_count = sqlite3_column_int64(s, 12);
    return MCLI_OK;
}

/* ---- validation ---- */

static mcli_status check_text(const char *field, const char *v, size_t cap, bool required, mcli_err *err)
{
    if (!v)
        return required ? mcli_fail(err, MCLI_ERR_INVALID_ARG, "%s is required", field) : MCLI_OK;
    size_t n = strnlen(v, cap);
    if (n >= cap)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "%s is longer than %zu bytes", field, cap - 1);
    if (required && n == 0)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "%s must not be empty", field);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20)
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "%s contains a control character at byte %zu", field, i);
    return MCLI_OK;
}

static mcli_status check_numbers(bool has_ml, int ml, bool has_t, double t, bool has_p, double p, bool has_k, int k,
                                 mcli_err *err)
{
    if (has_ml && (ml < 1 || ml > 1000000))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "max_length must be in 1..1000000, got %d", ml);
    if (has_t && !(t >= 0.0 && t <= 100.0))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "temperature must be in 0..100, got %g", t);
    if (has_p && !(p > 0.0 && p <= 1.0))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "top_p must be in (0, 1], got %g", p);
    if (has_k && (k < 0 || k > 1000000))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "top_k must be in 0..1000000, got %d", k);
    return MCLI_OK;
}

/* ---- open / migrate ---- */

static mcli_status exec_sql(mcli_registry *r, const char *sql, const char *what, mcli_err *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(r->db, sql, NULL, NULL, &msg);
    sqlite3_free(msg);
    return rc == SQLITE_OK ? MCLI_OK : reg_fail(r, rc, err, what);
}

static mcli_status read_user_version(mcli_registry *r, int *out, mcli_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(r->db, "PRAGMA user_version", -1, &s, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        mcli_status st = reg_fail(r, rc, err, "reading the schema version");
        sqlite3_finalize(s);
        return st;
    }
    *out = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return MCLI_OK;
}

/* Brings the schema to REGISTRY_SCHEMA_VERSION, one IMMEDIATE transaction per step; the version
 * is re-read inside the transaction so two processes opening at once migrate once. */
static mcli_status migrate(mcli_registry *r, mcli_err *err)
{
    for (;;) {
        mcli_status st = exec_sql(r, "BEGIN IMMEDIATE", "starting a migration", err);
        if (st != MCLI_OK)
            return st;
        int version = 0;
        if ((st = read_user_version(r, &version, err)) != MCLI_OK)
            goto fail;
        if (version == REGISTRY_SCHEMA_VERSION)
            return exec_sql(r, "COMMIT", "finishing the migration", err);
        if (version < 0 || version > REGISTRY_SCHEMA_VERSION) {
            st = mcli_fail(err, MCLI_ERR_UNSUPPORTED,
                           "registry %s: schema version %d is not one this mcli knows (it knows 0..%d): "
                           "it was written by a newer mcli; upgrade mcli or use another --db",
                           r->path, version, REGISTRY_SCHEMA_VERSION);
            goto fail;
        }
        char what[64];
        snprintf(what, sizeof what, "migrating the schema from version %d to %d", version, version + 1);
        if ((st = exec_sql(r, migrations[version], what, err)) != MCLI_OK)
            goto fail;
        char set_version[64];
        snprintf(set_version, sizeof set_version, "PRAGMA user_version = %d", version + 1);
        if ((st = exec_sql(r, set_version, what, err)) != MCLI_OK)
            goto fail;
        if ((st = exec_sql(r, "COMMIT", what, err)) != MCLI_OK)
            goto fail;
        continue;
    fail:
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
        return st;
    }
}

mcli_status registry_open(const char *path, mcli_registry **out, mcli_err *err)
{
    *out = NULL;
    if (!path || !*path)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "registry: no database path given");
    mcli_registry *r = calloc(1, sizeof *r);
    if (!r)
        return mcli_fail(err, MCLI_ERR_NOMEM, "registry %s: out of memory", path);
    mcli_status st = MCLI_OK;
    bool lock_ready = false;
    r->path = strdup(path);
    if (!r->path) {
        st = mcli_fail(err, MCLI_ERR_NOMEM, "registry %s: out of memory", path);
        goto fail;
    }
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        st = mcli_fail(err, MCLI_ERR_INTERNAL, "registry %s: cannot create a mutex", path);
        goto fail;
    }
    lock_ready = true;
    int rc = sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        st = reg_fail(r, rc, err, "opening");
        goto fail;
    }
    sqlite3_extended_result_codes(r->db, 1);
    rc = sqlite3_busy_timeout(r->db, REGISTRY_BUSY_TIMEOUT_MS);
    if (rc != SQLITE_OK) {
        st = reg_fail(r, rc, err, "setting the busy timeout");
        goto fail;
    }
    /* The first statement reads the header: a file that is not SQLite fails here (SQLITE_NOTADB). */
    if ((st = exec_sql(r, "PRAGMA journal_mode = WAL", "switching to WAL", err)) != MCLI_OK ||
        (st = exec_sql(r, "PRAGMA synchronous = NORMAL", "setting synchronous", err)) != MCLI_OK ||
        (st = exec_sql(r, "PRAGMA foreign_keys = ON", "enabling foreign keys", err)) != MCLI_OK ||
        (st = migrate(r, err)) != MCLI_OK)
        goto fail;
    *out = r;
    return MCLI_OK;
fail:
    if (r->db)
        sqlite3_close_v2(r->db);
    if (lock_ready)
        pthread_mutex_destroy(&r->lock);
    free(r->path);
    free(r);
    return st;
}

void registry_close(mcli_registry *r)
{
    if (!r)
        return;
    for (int i = 0; i < ST_N; i++)
        sqlite3_finalize(r->stmts[i]);
    sqlite3_close_v2(r->db);
    pthread_mutex_destroy(&r->lock);
    free(r->path);
    free(r);
}

const char *registry_path(const mcli_registry *r) { return r->path; }

void reg_model_init(reg_model *m)
{
    memset(m, 0, sizeof *m);
    snprintf(m->device, sizeof m->device, "%s", REG_DEFAULT_DEVICE);
    m->max_length = REG_DEFAULT_MAX_LENGTH;
    m->temperature = REG_DEFAULT_TEMPERATURE;
    m->top_p = REG_DEFAULT_TOP_P;
    m->top_k = REG_DEFAULT_TOP_K;
}

mcli_status registry_new_uuid(char out[REG_ID_LEN + 1], mcli_err *err)
{
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return mcli_fail(err, MCLI_ERR_IO, "registry: getrandom failed: %s", strerror(errno));
        }
        got += (size_t)n;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
    return MCLI_OK;
}

/* ---- queries (callers hold r->lock) ---- */

/* Looks up by id, then by name; NOT_FOUND names the key. */
static mcli_status get_locked(mcli_registry *r, const char *key, reg_model *out, mcli_err *err)
{
    static const reg_stmt order[2] = {ST_GET_BY_ID, ST_GET_BY_NAME};
    for (int i = 0; i < 2; i++) {
        sqlite3_stmt *s = NULL;
        mcli_status st = stmt_get(r, order[i], &s, err);
        if (st != MCLI_OK)
            return st;
        int rc = sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(s);
        if (rc == SQLITE_ROW)
            st = read_model_row(r, s, out, err);
        else if (rc != SQLITE_DONE)
            st = reg_fail(r, rc, err, "looking up a model");
        stmt_done(s);
        if (st != MCLI_OK || rc == SQLITE_ROW)
            return st;
    }
    return mcli_fail(err, MCLI_ERR_NOT_FOUND, "registry %s: no model with id or name '%.*s' (see `mcli list`)",
                     r->path, 200, key);
}

mcli_status registry_get(mcli_registry *r, const char *id_or_name, reg_model *out, mcli_err *err)
{
    mcli_status st = check_text("model id", id_or_name, REG_PATH_MAX, true, err);
    if (st != MCLI_OK)
        return st;
    pthread_mutex_lock(&r->lock);
    st = get_locked(r, id_or_name, out, err);
    pthread_mutex_unlock(&r->lock);
    return st;
}

mcli_status registry_add(mcli_registry *r, const reg_model *m, reg_model *out, mcli_err *err)
{
    mcli_status st;
    if ((st = check_text("name", m->name, sizeof m->name, true, err)) != MCLI_OK ||
        (st = check_text("model_type", m->model_type, sizeof m->model_type, true, err)) != MCLI_OK ||
        (st = check_text("model_path", m->model_path, sizeof m->model_path, true, err)) != MCLI_OK ||
        (st = check_text("tokenizer_path", m->tokenizer_path, sizeof m->tokenizer_path, false, err)) != MCLI_OK ||
        (st = check_text("device", m->device[0] ? m->device : REG_DEFAULT_DEVICE, sizeof m->device, true, err)) !=
            MCLI_OK ||
        (st = check_numbers(true, m->max_length, true, m->temperature, true, m->top_p, true, m->top_k, err)) != MCLI_OK)
        return st;
    char id[REG_ID_LEN + 1];
    if ((st = registry_new_uuid(id, err)) != MCLI_OK)
        return st;
    char name[REG_NAME_MAX];
    memcpy(name, m->name, sizeof name); /* out may alias m */

    pthread_mutex_lock(&r->lock);
    sqlite3_stmt *s = NULL;
    if ((st = stmt_get(r, ST_INSERT_MODEL, &s, err)) != MCLI_OK)
        goto done;
    int rc = sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(s, 2, m->name, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(s, 3, m->model_type, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(s, 4, m->model_path, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(s, 5, m->tokenizer_path, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(s, 6, m->device[0] ? m->device : REG_DEFAULT_DEVICE, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(s, 7, m->max_length);
    if (rc == SQLITE_OK) rc = sqlite3_bind_double(s, 8, m->temperature);
    if (rc == SQLITE_OK) rc = sqlite3_bind_double(s, 9, m->top_p);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(s, 10, m->top_k);
    if (rc == SQLITE_OK) rc = sqlite3_step(s);
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        st = mcli_fail(err, MCLI_ERR_INVALID_ARG,
                       "registry %s: a model named '%s' already exists; pick another name or update it", r->path, name);
        goto done;
    }
    if (rc != SQLITE_DONE) {
        st = reg_fail(r, rc, err, "adding a model");
        goto done;
    }
    stmt_done(s);
    s = NULL;
    if (out)
        st = get_locked(r, id, out, err);
done:
    stmt_done(s);
    pthread_mutex_unlock(&r->lock);
    return st;
}

mcli_status registry_list(mcli_registry *r, reg_model **out, size_t *n, mcli_err *err)
{
    *out = NULL;
    *n = 0;
    reg_model *arr = NULL;
    size_t len = 0, cap = 0;
    pthread_mutex_lock(&r->lock);
    sqlite3_stmt *s = NULL;
    mcli_status st = stmt_get(r, ST_LIST, &s, err);
    if (st != MCLI_OK)
        goto fail;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            reg_model *grown = realloc(arr, ncap * sizeof *arr);
            if (!grown) {
                st = mcli_fail(err, MCLI_ERR_NOMEM, "registry %s: out of memory listing %zu models", r->path, len);
                goto fail;
            }
            arr = grown;
            cap = ncap;
        }
        if ((st = read_model_row(r, s, &arr[len], err)) != MCLI_OK)
            goto fail;
        len++;
    }
    if (rc != SQLITE_DONE) {
        st = reg_fail(r, rc, err, "listing models");
        goto fail;
    }
    stmt_done(s);
    pthread_mutex_unlock(&r->lock);
    *out = arr;
    *n = len;
    return MCLI_OK;
fail:
    stmt_done(s);
    pthread_mutex_unlock(&r->lock);
    free(arr);
    return st;
}

mcli_status registry_update(mcli_registry *r, const char *id_or_name, const reg_update *u, reg_model *out,
                            mcli_err *err)
{
    mcli_status st;
    if ((st = check_text("model id", id_or_name, REG_PATH_MAX, true, err)) != MCLI_OK ||
        (st = check_text("name", u->name, REG_NAME_MAX, u->name != NULL, err)) != MCLI_OK ||
        (st = check_text("model_type", u->model_type, REG_TYPE_MAX, u->model_type != NULL, err)) != MCLI_OK ||
        (st = check_text("model_path", u->model_path, REG_PATH_MAX, u->model_path != NULL, err)) != MCLI_OK ||
        (st = check_text("tokenizer_path", u->tokenizer_path, REG_PATH_MAX, false, err)) != MCLI_OK ||
        (st = check_text("device", u->device, REG_DEVICE_MAX, u->device != NULL, err)) != MCLI_OK ||
        (st = check_numbers(u->set_max_length, u->max_length, u->set_temperature, u->temperature, u->set_top_p,
                            u->top_p, u->set_top_k, u->top_k, err)) != MCLI_OK)
        return st;

    pthread_mutex_lock(&r->lock);
    sqlite3_stmt *s = NULL;
    bool in_tx = false;
    reg_model cur;
    if ((st = exec_stmt(r, ST_BEGIN, "starting an update", err)) != MCLI_OK)
        goto done;
    in_tx = true;
    if ((st = get_locked(r, id_or_name, &cur, err)) != MCLI_OK)
        goto done;
    if ((st = stmt_get(r, ST_UPDATE, &s, err)) != MCLI_OK)
        goto done;
    int rc = sqlite3_bind_text(s, 1, cur.id, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK) rc = bind_text_or_null(s, 2, u->name);
    if (rc == SQLITE_OK) rc = bind_text_or_null(s, 3, u->model_type);
    if (rc == SQLITE_OK) rc = bind_text_or_null(s, 4, u->model_path);
    if (rc == SQLITE_OK) rc = bind_text_or_null(s, 5, u->tokenizer_path);
    if (rc == SQLITE_OK) rc = bind_text_or_null(s, 6, u->device);
    if (rc == SQLITE_OK) rc = u->set_max_length ? sqlite3_bind_int(s, 7, u->max_length) : sqlite3_bind_null(s, 7);
    if (rc == SQLITE_OK) rc = u->set_temperature ? sqlite3_bind_double(s, 8, u->temperature) : sqlite3_bind_null(s, 8);
    if (rc == SQLITE_OK) rc = u->set_top_p ? sqlite3_bind_double(s, 9, u->top_p) : sqlite3_bind_null(s, 9);
    if (rc == SQLITE_OK) rc = u->set_top_k ? sqlite3_bind_int(s, 10, u->top_k) : sqlite3_bind_null(s, 10);
    if (rc == SQLITE_OK) rc = sqlite3_step(s);
    if (rc == SQLITE_CONSTRAINT_UNIQUE) {
        st = mcli_fail(err, MCLI_ERR_INVALID_ARG, "registry %s: cannot rename '%s' to '%s': that name is taken",
                       r->path, cur.name, u->name ? u->name : "");
        goto done;
    }
    if (rc != SQLITE_DONE) {
        st = reg_fail(r, rc, err, "updating a model");
        goto done;
    }
    stmt_done(s);
    s = NULL;
    if (out && (st = get_locked(r, cur.id, out, err)) != MCLI_OK)
        goto done;
    st = exec_stmt(r, ST_COMMIT, "committing an update", err);
    in_tx = false;
done:
    stmt_done(s);
    if (in_tx)
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&r->lock);
    return st;
}

mcli_status registry_set_loaded(mcli_registry *r, const char *id, bool loaded, double memory_usage_mb,
                                int64_t parameters_count, mcli_err *err)
{
    mcli_status st = check_text("model id", id, REG_ID_LEN + 1, true, err);
    if (st != MCLI_OK)
        return st;
    pthread_mutex_lock(&r->lock);
    sqlite3_stmt *s = NULL;
    if ((st = stmt_get(r, ST_SET_LOADED, &s, err)) != MCLI_OK)
        goto done;
    int rc = sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(s, 2, loaded ? 1 : 0);
    if (rc == SQLITE_OK) rc = sqlite3_bind_double(s, 3, memory_usage_mb);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 4, parameters_count);
    if (rc == SQLITE_OK) rc = sqlite3_step(s);
    if (rc != SQLITE_DONE)
        st = reg_fail(r, rc, err, "recording the load state");
    else if (sqlite3_changes(r->db) == 0)
        st = mcli_fail(err, MCLI_ERR_NOT_FOUND, "registry %s: no model with id '%s'", r->path, id);
done:
    stmt_done(s);
    pthread_mutex_unlock(&r->lock);
    return st;
}

mcli_status registry_clear_loaded(mcli_registry *r, mcli_err *err)
{
    pthread_mutex_lock(&r->lock);
    mcli_status st = exec_stmt(r, ST_CLEAR_LOADED, "clearing load states", err);
    pthread_mutex_unlock(&r->lock);
    return st;
}

mcli_status registry_remove(mcli_registry *r, const char *id_or_name, mcli_err *err)
{
    mcli_status st = check_text("model id", id_or_name, REG_PATH_MAX, true, err);
    if (st != MCLI_OK)
        return st;
    pthread_mutex_lock(&r->lock);
    sqlite3_stmt *s = NULL;
    bool in_tx = false;
    reg_model cur;
    if ((st = exec_stmt(r, ST_BEGIN, "starting a removal", err)) != MCLI_OK)
        goto done;
    in_tx = true;
    if ((st = get_locked(r, id_or_name, &cur, err)) != MCLI_OK)
        goto done;
    if ((st = stmt_get(r, ST_DELETE, &s, err)) != MCLI_OK)
        goto done;
    int rc = sqlite3_bind_text(s, 1, cur.id, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK) rc = sqlite3_step(s);
    if (rc != SQLITE_DONE) {
        st = reg_fail(r, rc, err, "removing a model");
        goto done;
    }
    stmt_done(s);
    s = NULL;
    st = exec_stmt(r, ST_COMMIT, "committing a removal", err);
    in_tx = false;
done:
    stmt_done(s);
    if (in_tx)
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&r->lock);
    return st;
}

/* Binds at most REGISTRY_TEXT_MAX bytes of text, cut back to a UTF-8 boundary. */
static int bind_capped(sqlite3_stmt *s, int idx, const char *text)
{
    if (!text)
        return sqlite3_bind_null(s, idx);
    size_t n = strnlen(text, REGISTRY_TEXT_MAX + 1);
    if (n > REGISTRY_TEXT_MAX) {
        n = REGISTRY_TEXT_MAX;
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
            n--;
    }
    return sqlite3_bind_text(s, idx, text, (int)n, SQLITE_TRANSIENT);
}

mcli_status registry_record_inference(mcli_registry *r, const reg_inference *inf, mcli_err *err)
{
    mcli_status st;
    if ((st = check_text("model id", inf->model_id, REG_ID_LEN + 1, true, err)) != MCLI_OK ||
        (st = check_text("request_type", inf->request_type, REG_TYPE_MAX, true, err)) != MCLI_OK)
        return st;
    char id[REG_ID_LEN + 1];
    if ((st = registry_new_uuid(id, err)) != MCLI_OK)
        return st;
    pthread_mutex_lock(&r->lock);
    sqlite3_stmt *s = NULL;
    if ((st = stmt_get(r, ST_INSERT_INFERENCE, &s, err)) != MCLI_OK)
        goto done;
    int rc = sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(s, 2, inf->model_id, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(s, 3, inf->request_type, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK) rc = bind_capped(s, 4, inf->input);
    if (rc == SQLITE_OK) rc = bind_capped(s, 5, inf->output);
    if (rc == SQLITE_OK) rc = sqlite3_bind_double(s, 6, inf->execution_time_ms);
    if (rc == SQLITE_OK) rc = bind_capped(s, 7, inf->error);
    if (rc == SQLITE_OK) rc = sqlite3_step(s);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        st = mcli_fail(err, MCLI_ERR_NOT_FOUND, "registry %s: cannot record an inference for model '%s': it is not registered",
                       r->path, inf->model_id);
    else if (rc != SQLITE_DONE)
        st = reg_fail(r, rc, err, "recording an inference");
done:
    stmt_done(s);
    pthread_mutex_unlock(&r->lock);
    return st;
}

void registry_summary_free(reg_summary *s)
{
    if (!s)
        return;
    free(s->by_type);
    free(s->per_model);
    memset(s, 0, sizeof *s);
}

/* Grows *arr (elements of size elem) so that index len fits; cap doubles. */
static bool grow(void **arr, size_t *cap, size_t len, size_t elem)
{
    if (len < *cap)
        return true;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, ncap * elem);
    if (!p)
        return false;
    *arr = p;
    *cap = ncap;
    return true;
}

mcli_status registry_summary(mcli_registry *r, reg_summary *out, mcli_err *err)
{
    memset(out, 0, sizeof *out);
    reg_summary sum = {0};
    size_t cap_types = 0, cap_models = 0;
    pthread_mutex_lock(&r->lock);
    sqlite3_stmt *s = NULL;
    bool in_tx = false;
    int rc;
    /* One read transaction so that the figures agree with each other. */
    mcli_status st = exec_sql(r, "BEGIN", "starting a summary", err);
    if (st != MCLI_OK)
        goto fail;
    in_tx = true;

    if ((st = stmt_get(r, ST_COUNT_MODELS, &s, err)) != MCLI_OK)
        goto fail;
    if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
        st = reg_fail(r, rc, err, "counting models");
        goto fail;
    }
    sum.total_models = sqlite3_column_int64(s, 0);
    sum.loaded_models = sqlite3_column_int64(s, 1);
    sum.loaded_memory_mb = sqlite3_column_double(s, 2);
    stmt_done(s);

    if ((st = stmt_get(r, ST_TOTAL_INFERENCES, &s, err)) != MCLI_OK)
        goto fail;
    if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
        st = reg_fail(r, rc, err, "counting inferences");
        goto fail;
    }
    sum.total_inferences = sqlite3_column_int64(s, 0);
    sum.total_errors = sqlite3_column_int64(s, 1);
    stmt_done(s);

    if ((st = stmt_get(r, ST_COUNT_BY_TYPE, &s, err)) != MCLI_OK)
        goto fail;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (!grow((void **)&sum.by_type, &cap_types, sum.n_types, sizeof *sum.by_type)) {
            st = mcli_fail(err, MCLI_ERR_NOMEM, "registry %s: out of memory in the summary", r->path);
            goto fail;
        }
        reg_type_count *t = &sum.by_type[sum.n_types];
        if ((st = col_text(r, s, 0, t->model_type, sizeof t->model_type, err)) != MCLI_OK)
            goto fail;
        t->count = sqlite3_column_int64(s, 1);
        sum.n_types++;
    }
    if (rc != SQLITE_DONE) {
        st = reg_fail(r, rc, err, "counting models by type");
        goto fail;
    }
    stmt_done(s);

    if ((st = stmt_get(r, ST_PER_MODEL, &s, err)) != MCLI_OK)
        goto fail;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (!grow((void **)&sum.per_model, &cap_models, sum.n_models, sizeof *sum.per_model)) {
            st = mcli_fail(err, MCLI_ERR_NOMEM, "registry %s: out of memory in the summary", r->path);
            goto fail;
        }
        reg_model_stats *m = &sum.per_model[sum.n_models];
        if ((st = col_text(r, s, 0, m->id, sizeof m->id, err)) != MCLI_OK ||
            (st = col_text(r, s, 1, m->name, sizeof m->name, err)) != MCLI_OK)
            goto fail;
        m->inferences = sqlite3_column_int64(s, 2);
        m->errors = sqlite3_column_int64(s, 3);
        m->mean_latency_ms = sqlite3_column_double(s, 4);
        sum.n_models++;
    }
    if (rc != SQLITE_DONE) {
        st = reg_fail(r, rc, err, "computing per-model statistics");
        goto fail;
    }
    stmt_done(s);
    s = NULL;
    st = exec_sql(r, "COMMIT", "finishing a summary", err);
    in_tx = false;
    if (st != MCLI_OK)
        goto fail;
    pthread_mutex_unlock(&r->lock);
    *out = sum;
    return MCLI_OK;
fail:
    stmt_done(s);
    if (in_tx)
        sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&r->lock);
    registry_summary_free(&sum);
    return st;
}

/* Runs a check pragma; any row but a single "ok" is a problem: the first rows go in the message. */
static mcli_status run_check(mcli_registry *r, const char *sql, bool ok_row_expected, mcli_err *err)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(r->db, sql, -1, &s, NULL);
    mcli_status st = MCLI_OK;
    char report[320] = "";
    size_t used = 0;
    int rows = 0;
    if (rc != SQLITE_OK) {
        st = reg_fail(r, rc, err, sql);
        goto done;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && rows < 4) {
        const unsigned char *v = sqlite3_column_text(s, 0);
        const char *text = v ? (const char *)v : "(a row)";
        if (ok_row_expected && rows == 0 && strcmp(text, "ok") == 0)
            continue;
        int n = snprintf(report + used, sizeof report - used, "%s%.120s", rows ? "; " : "", text);
        if (n > 0)
            used = used + (size_t)n < sizeof report ? used + (size_t)n : sizeof report - 1;
        rows++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        st = reg_fail(r, rc, err, sql);
    else if (rows > 0)
        st = mcli_fail(err, MCLI_ERR_FORMAT, "registry %s: %s reports: %s", r->path, sql, report);
done:
    sqlite3_finalize(s);
    return st;
}

mcli_status registry_check(mcli_registry *r, mcli_err *err)
{
    pthread_mutex_lock(&r->lock);
    mcli_status st = run_check(r, "PRAGMA integrity_check", true, err);
    if (st == MCLI_OK)
        st = run_check(r, "PRAGMA foreign_key_check", false, err);
    pthread_mutex_unlock(&r->lock);
    return st;
}
