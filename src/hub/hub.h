/* hub.h - pull one repository into the models directory: list files, choose what mcli needs,
 * check disk, download each file (download.h) under the model's lock, write the manifest.
 *
 *   hub_pull: lock -> resolve (API listing, else probe with HEAD) -> HEAD each file (size, sha256,
 *             commit; later files pinned to the commit of the first) -> disk check -> fetch each
 *             (skipping files the manifest already has with the same checksum) -> sharded weights:
 *             read the index, fetch its shards -> manifest -> unlock
 *
 * Which files: config.json (required; its model_type must be bert, distilbert or gpt2 - the
 * architectures the engine runs - unless opts.any_architecture, checked before any weights are fetched); weights: model.safetensors, else model.safetensors.index.json
 * + shards, else pytorch_model.bin, else pytorch_model.bin.index.json + shards (one is required);
 * optional when present: tokenizer.json, tokenizer_config.json, special_tokens_map.json, vocab.txt,
 * vocab.json, merges.txt, added_tokens.json, generation_config.json, modules.json,
 * sentence_bert_config.json, 1_Pooling/config.json.
 *
 * Environment: HF_ENDPOINT (default https://huggingface.co), HF_TOKEN (Bearer, sent to the hub's
 * host only), HF_HUB_OFFLINE=1 (no network: succeed only if the model is already complete on disk).
 *
 * Thread-safety: hub_pull may run in several threads at once (different or equal repos: equal
 * ones serialise on the lock). The progress callback runs on the calling thread.
 */
#ifndef MCLI_HUB_HUB_H
#define MCLI_HUB_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hub/download.h"
#include "util/status.h"

typedef enum {
    HUB_EV_MESSAGE,     /* message: a status line ("resolving", "waiting for lock", ...) */
    HUB_EV_FILE_START,  /* file, file_total, index / n_files */
    HUB_EV_PROGRESS,    /* file_done / file_total, total_done / total_bytes, bytes_per_sec */
    HUB_EV_FILE_DONE,   /* file, sha256, skipped (already present) */
    HUB_EV_DONE,        /* everything in place; total_bytes */
} hub_event_kind;

typedef struct {
    hub_event_kind kind;
    const char *repo;
    const char *message;
    const char *file;
    const char *sha256;
    size_t index, n_files;       /* 1-based index of this file among n_files */
    int64_t file_done, file_total;    /* file_total -1 if unknown */
    int64_t total_done, total_bytes;  /* across the files of this pull */
    double bytes_per_sec;
    bool skipped;
} hub_event;

/* Return non-zero to cancel the pull (MCLI_ERR_CANCELLED; partial files stay for a resume). */
typedef int (*hub_progress_fn)(void *user, const hub_event *ev);

typedef struct {
    const char *models_dir;      /* required */
    const char *repo;            /* "org/name" or "name" */
    const char *revision;        /* NULL = "main" */
    const char *endpoint;        /* NULL = $HF_ENDPOINT or https://huggingface.co */
    const char *token;           /* NULL = $HF_TOKEN; "" = none */
    int offline;                 /* -1 = $HF_HUB_OFFLINE, 0 no, 1 yes */
    const dl_policy *policy;     /* NULL = dl_policy_default() */
    hub_progress_fn progress;    /* may be NULL */
    void *user;
    bool any_architecture;       /* false: stop after config.json unless model_type is one mcli runs */
} hub_pull_opts;

typedef struct {
    char dir[4096];              /* the model directory */
    char commit[41];
    size_t n_files;
    size_t n_downloaded;         /* files fetched this time (others were already present) */
    int64_t total_bytes;
    int64_t bytes_downloaded;
    bool offline_hit;            /* offline mode, served from disk */
} hub_pull_result;

mcli_status hub_pull(const hub_pull_opts *opts, hub_pull_result *res, mcli_err *err) MCLI_MUST_USE;

/* Splits "org/name@rev" into repo and revision (rev "" if none). Validates both. */
mcli_status hub_parse_ref(const char *ref, char *repo, size_t repo_cap, char *rev, size_t rev_cap,
                          mcli_err *err) MCLI_MUST_USE;

/* True if name is an acceptable file path inside a repo (relative, <= 2 levels, safe characters). */
bool hub_file_name_valid(const char *name);

/* $HF_ENDPOINT without a trailing slash, or https://huggingface.co. */
const char *hub_endpoint(char *buf, size_t cap);

#endif
