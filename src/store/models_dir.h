/* models_dir.h - the models directory on disk: layout, repo-id checks, locks, listing, removal.
 *
 * Layout (the original tool's):
 *   <models_dir>/lightweight/<org>/<name>/      one model (repo "org/name"); files as in the repo
 *   <models_dir>/lightweight/<name>/            a repo without an org ("gpt2", "distilgpt2")
 *   <models_dir>/lightweight/<...>/mcli-manifest.json   what was pulled (hub/manifest.h)
 *   <models_dir>/lightweight/.locks/<org>--<name>.lock  flock() target, never deleted
 * models_dir is "./models" unless --models-dir or $MCLI_MODELS_DIR says otherwise.
 *
 * Lock files live outside the model directory so that `remove` can delete the directory while
 * holding the lock without a waiting puller ending up with a lock on an unlinked file.
 *
 * Ownership: every path is written into a caller-provided buffer; models_dir_list() returns a
 * heap array freed with models_dir_list_free(). Thread-safety: no shared state; the flock is
 * per open file description, so two threads of one process exclude each other too.
 */
#ifndef MCLI_STORE_MODELS_DIR_H
#define MCLI_STORE_MODELS_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

#define MODELS_DIR_DEFAULT "./models"
#define MODELS_DIR_PATH_MAX 4096
#define MODELS_DIR_REPO_MAX 200

/* True if repo is a Hugging Face id we accept: "name" or "org/name"; each part 1..96 chars of
 * [A-Za-z0-9._-], not starting with '.' or '-', no "..". Anything else (absolute paths, "../x",
 * "a/b/c", spaces) is rejected, so a repo id can never escape the models directory. */
bool models_dir_repo_valid(const char *repo);

/* Picks the models directory: flag if non-NULL/non-empty, else $MCLI_MODELS_DIR, else "./models". */
mcli_status models_dir_resolve(const char *flag, char *out, size_t cap, mcli_err *err) MCLI_MUST_USE;

/* out = <models_dir>/lightweight/<repo>. Fails with INVALID_ARG on a bad repo id. */
mcli_status models_dir_model_path(const char *models_dir, const char *repo, char *out, size_t cap,
                                  mcli_err *err) MCLI_MUST_USE;

/* mkdir -p (mode 0755). */
mcli_status models_dir_mkdirs(const char *path, mcli_err *err) MCLI_MUST_USE;

/* Takes the exclusive lock of one model. If another process holds it and wait is false, fails with
 * MCLI_ERR_BUSY; if wait is true, calls on_wait(user) once (may be NULL) and blocks until free.
 * *fd_out receives the descriptor to pass to models_dir_unlock(). */
mcli_status models_dir_lock(const char *models_dir, const char *repo, bool wait, void (*on_wait)(void *user),
                            void *user, int *fd_out, mcli_err *err) MCLI_MUST_USE;
void models_dir_unlock(int fd);

/* True if dir holds a model that looks complete: config.json plus a weights file. */
bool models_dir_has_model(const char *dir);

typedef struct {
    char repo[MODELS_DIR_REPO_MAX];   /* "org/name" or "name" */
    char path[MODELS_DIR_PATH_MAX];   /* the model directory */
    int64_t bytes;                    /* total size of regular files in it (not following links) */
    bool has_manifest;                /* mcli-manifest.json present (pulled by mcli) */
} models_dir_entry;

/* Lists every model under <models_dir>/lightweight (sorted by repo). A missing directory is an
 * empty list, not an error. Caller frees *out with models_dir_list_free(). */
mcli_status models_dir_list(const char *models_dir, models_dir_entry **out, size_t *n_out,
                            mcli_err *err) MCLI_MUST_USE;
void models_dir_list_free(models_dir_entry *list);

/* Deletes the model directory of repo (its files, manifest and leftover .part files) under the
 * model's lock, then the org directory if it became empty. NOT_FOUND if it is not there. */
mcli_status models_dir_remove(const char *models_dir, const char *repo, mcli_err *err) MCLI_MUST_USE;

/* rm -r of one directory tree; does not follow symlinks (a link is unlinked, not its target). */
mcli_status models_dir_rmtree(const char *path, mcli_err *err) MCLI_MUST_USE;

#endif
