/* manifest.h - mcli-manifest.json: what was pulled into one model directory.
 *
 *   {"format": 1, "repo": "prajjwal1/bert-tiny", "revision": "main", "commit": "<40 hex>",
 *    "endpoint": "https://huggingface.co", "pulled_at": "2026-11-27T10:00:00Z", "total_bytes": N,
 *    "files": [{"name": "config.json", "size": 285, "sha256": "<64 hex>", "etag": "...", "lfs": false}, ...]}
 * Written atomically (temp file + rename) only after every file is verified and in place, so a
 * manifest always describes complete files. The server reads it for /api/tags digests and sizes.
 *
 * Ownership: hub_manifest owns its files array (manifest_free). Thread-safety: plain values.
 */
#ifndef MCLI_HUB_MANIFEST_H
#define MCLI_HUB_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

#define MANIFEST_FILE "mcli-manifest.json"
#define MANIFEST_NAME_MAX 256
#define MANIFEST_FILES_MAX 1024

typedef struct {
    char name[MANIFEST_NAME_MAX];  /* path inside the model dir, e.g. "1_Pooling/config.json" */
    int64_t size;
    char sha256[65];
    char etag[96];                 /* the hub's ETag / X-Linked-Etag (to skip unchanged files) */
    bool lfs;
} manifest_file;

typedef struct {
    char repo[200];
    char revision[128];
    char commit[41];
    char endpoint[256];
    char pulled_at[32];
    int64_t total_bytes;
    manifest_file *files;
    size_t n_files;
} hub_manifest;

/* Reads <dir>/mcli-manifest.json. NOT_FOUND if absent, FORMAT if malformed. */
mcli_status manifest_read(const char *dir, hub_manifest *out, mcli_err *err) MCLI_MUST_USE;

/* Writes <dir>/mcli-manifest.json atomically (also computes total_bytes). */
mcli_status manifest_write(const char *dir, const hub_manifest *m, mcli_err *err) MCLI_MUST_USE;

/* Appends (or replaces by name) one file record. */
mcli_status manifest_add(hub_manifest *m, const manifest_file *f, mcli_err *err) MCLI_MUST_USE;

const manifest_file *manifest_find(const hub_manifest *m, const char *name);
void manifest_free(hub_manifest *m);

#endif
