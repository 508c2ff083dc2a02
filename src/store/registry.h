/* registry.h - the model service's registry: an embedded SQLite database of registered models
 * and of every inference made with them.
 *
 * Layout (schema version REGISTRY_SCHEMA_VERSION, kept in PRAGMA user_version):
 *   models(id TEXT PK (uuid v4), name TEXT UNIQUE, model_type, model_path, tokenizer_path, device,
 *          max_length, temperature, top_p, top_k, is_loaded, memory_usage_mb, parameters_count,
 *          created_at)
 *   inferences(id TEXT PK (uuid v4), model_id -> models(id) ON DELETE CASCADE, request_type, input,
 *              output, execution_time_ms, error, created_at)
 * Older databases are migrated forward on open, one version at a time, each step in its own
 * IMMEDIATE transaction (a crash mid-migration leaves the previous version intact). A database
 * written by a newer mcli (user_version above ours) is refused, never modified.
 *
 * Durability: WAL journal, synchronous=NORMAL (a killed process never loses or corrupts committed
 * rows; a power cut may lose the last transactions), busy timeout REGISTRY_BUSY_TIMEOUT_MS so that
 * several processes (a running service and the CLI) may write at once.
 *
 * Ownership: registry_open returns a handle owned by the caller (registry_close; NULL is a no-op).
 * reg_model is a plain value (fixed-size strings, no heap): copy it freely. Arrays returned by
 * registry_list / registry_summary are owned by the caller (free() / registry_summary_free()).
 *
 * Thread-safety: one handle is one SQLite connection guarded by a mutex; any number of threads
 * may share a handle (calls are serialised). Several handles (threads or processes) on one file
 * are consistent through SQLite's locking.
 *
 * Errors name the database path and the SQLite message. Mapping: not an SQLite file / corrupt ->
 * MCLI_ERR_FORMAT; a duplicate name -> MCLI_ERR_INVALID_ARG; unknown id or name ->
 * MCLI_ERR_NOT_FOUND; still locked after the busy timeout -> MCLI_ERR_BUSY; disk errors -> MCLI_ERR_IO.
 *
 * Non-goals: no inference history API beyond the summary (the rows are there for SQL); text
 * stored per inference is capped at REGISTRY_TEXT_MAX bytes (longer input/output is cut on a
 * UTF-8 boundary; the model's own reply is not affected).
 */
#ifndef MCLI_STORE_REGISTRY_H
#define MCLI_STORE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

#define REGISTRY_SCHEMA_VERSION 2
#define REGISTRY_BUSY_TIMEOUT_MS 10000
#define REGISTRY_TEXT_MAX (16 * 1024)

#define REG_ID_LEN 36 /* "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" */
#define REG_NAME_MAX 256
#define REG_TYPE_MAX 64
#define REG_PATH_MAX 4096
#define REG_DEVICE_MAX 32
#define REG_TIME_MAX 32

/* Defaults of the original service for a model added without generation settings. */
#define REG_DEFAULT_MAX_LENGTH 100
#define REG_DEFAULT_TEMPERATURE 0.7
#define REG_DEFAULT_TOP_P 0.9
#define REG_DEFAULT_TOP_K 50
#define REG_DEFAULT_DEVICE "cpu"

typedef struct mcli_registry mcli_registry;

typedef struct {
    char id[REG_ID_LEN + 1];
    char name[REG_NAME_MAX];            /* 1..255 bytes, unique */
    char model_type[REG_TYPE_MAX];      /* free text: "bert", "gpt2", "text-generation", ... */
    char model_path[REG_PATH_MAX];
    char tokenizer_path[REG_PATH_MAX];  /* "" = the model directory */
    char device[REG_DEVICE_MAX];        /* "cpu" */
    int max_length;                     /* new tokens to generate by default, 1..1000000 */
    double temperature;                 /* >= 0 (0 = greedy) */
    double top_p;                       /* (0, 1] */
    int top_k;                          /* >= 0 (0 = off) */
    bool is_loaded;
    double memory_usage_mb;             /* measured at load; 0 when never loaded */
    int64_t parameters_count;           /* 0 when never loaded */
    char created_at[REG_TIME_MAX];      /* ISO 8601 UTC, set by the registry */
} reg_model;

/* Fills m with the defaults above and empty strings (id and created_at are set by registry_add). */
void reg_model_init(reg_model *m);

/* Opens (creating if absent) the registry at path and migrates it to REGISTRY_SCHEMA_VERSION.
 * The parent directory must exist. */
mcli_status registry_open(const char *path, mcli_registry **out, mcli_err *err) MCLI_MUST_USE;
void registry_close(mcli_registry *r);
const char *registry_path(const mcli_registry *r);

/* Inserts m (its id and created_at are ignored and generated); writes the new row, with id and
 * created_at, to *out if non-NULL (out may alias m). */
mcli_status registry_add(mcli_registry *r, const reg_model *m, reg_model *out, mcli_err *err) MCLI_MUST_USE;

/* Finds a model by id, else by name. */
mcli_status registry_get(mcli_registry *r, const char *id_or_name, reg_model *out, mcli_err *err) MCLI_MUST_USE;

/* All models, oldest first. *out is malloc'ed (NULL when *n == 0); caller frees it. */
mcli_status registry_list(mcli_registry *r, reg_model **out, size_t *n, mcli_err *err) MCLI_MUST_USE;

/* A partial update: NULL strings and unset flags leave the column as it is. */
typedef struct {
    const char *name, *model_type, *model_path, *tokenizer_path, *device;
    bool set_max_length, set_temperature, set_top_p, set_top_k;
    int max_length;
    double temperature, top_p;
    int top_k;
} reg_update;

/* Updates the model with this id or name; writes the updated row to *out if non-NULL. */
mcli_status registry_update(mcli_registry *r, const char *id_or_name, const reg_update *u, reg_model *out,
                            mcli_err *err) MCLI_MUST_USE;

/* Records load state: memory and parameter counts are kept when loaded is false (last measured). */
mcli_status registry_set_loaded(mcli_registry *r, const char *id, bool loaded, double memory_usage_mb,
                                int64_t parameters_count, mcli_err *err) MCLI_MUST_USE;

/* Marks every model as not loaded (a service starting has nothing in memory). */
mcli_status registry_clear_loaded(mcli_registry *r, mcli_err *err) MCLI_MUST_USE;

/* Deletes the model with this id or name, and its inference history. */
mcli_status registry_remove(mcli_registry *r, const char *id_or_name, mcli_err *err) MCLI_MUST_USE;

typedef struct {
    const char *model_id;
    const char *request_type;   /* "generate", "classify", ... */
    const char *input;          /* may be NULL */
    const char *output;         /* may be NULL (failed inference) */
    double execution_time_ms;
    const char *error;          /* NULL on success */
} reg_inference;

/* Appends one inference row. An unknown model_id is MCLI_ERR_NOT_FOUND. */
mcli_status registry_record_inference(mcli_registry *r, const reg_inference *inf, mcli_err *err) MCLI_MUST_USE;

typedef struct {
    char model_type[REG_TYPE_MAX];
    int64_t count;
} reg_type_count;

typedef struct {
    char id[REG_ID_LEN + 1];
    char name[REG_NAME_MAX];
    int64_t inferences;         /* all rows, failed included */
    int64_t errors;             /* rows with an error */
    double mean_latency_ms;     /* mean execution_time_ms of the successful ones; 0 if none */
} reg_model_stats;

typedef struct {
    int64_t total_models;
    int64_t loaded_models;
    double loaded_memory_mb;    /* sum of memory_usage_mb over loaded models */
    int64_t total_inferences;
    int64_t total_errors;
    reg_type_count *by_type;    /* [n_types], sorted by model_type */
    size_t n_types;
    reg_model_stats *per_model; /* [n_models], oldest model first */
    size_t n_models;
} reg_summary;

mcli_status registry_summary(mcli_registry *r, reg_summary *out, mcli_err *err) MCLI_MUST_USE;
void registry_summary_free(reg_summary *s);

/* Runs PRAGMA integrity_check and foreign_key_check; MCLI_ERR_FORMAT naming the first problem. */
mcli_status registry_check(mcli_registry *r, mcli_err *err) MCLI_MUST_USE;

/* Writes a fresh random (version 4) uuid, NUL-terminated, into out[REG_ID_LEN + 1]. */
mcli_status registry_new_uuid(char out[REG_ID_LEN + 1], mcli_err *err) MCLI_MUST_USE;

#endif
