/* model_cache.h - loaded models kept under a budget, least recently used evicted first.
 *
 * The model service keeps at most `max_models` models in memory (default 2, as the original
 * service) and, when `max_memory_mb` is set, at most that many megabytes of weights. A request
 * takes a reference with model_cache_acquire (loading the model on a miss) and gives it back with
 * model_cache_release. A model with references is never evicted or freed: eviction only picks
 * unreferenced models, least recently acquired first, and an explicit unload of a model in use
 * takes it out of the cache at once but frees it when its last reference is released. An evicted
 * model is simply loaded again by the next acquire.
 *
 *   (absent) --acquire--> LOADING --load ok--> READY --evict/unload, refs == 0--> freed
 *                            |                   \--unload, refs > 0--> DOOMED --last release--> freed
 *                            +--load failed--> (absent; the error goes to the acquirer)
 *
 * Budgets are enforced at every acquire and release; they can be exceeded only while more
 * models than the budget are referenced at once (the cache never fails a request for that).
 * A single model larger than the memory budget is refused with MCLI_ERR_TOO_LARGE.
 *
 * Loading runs outside the cache lock: other models stay usable meanwhile, and concurrent
 * acquirers of the same key wait for the one load instead of loading twice.
 *
 * The cache is generic over what it holds (a loader with load/free callbacks), so it can be
 * tested without the engine; model_cache_engine_loader() (model_cache_engine.c) loads with
 * engine_load and sizes a model by its weight bytes.
 *
 * Ownership: the cache owns the models it holds and their keys; a model_cache_ref is a borrowed
 * handle valid until model_cache_release. model_cache_free requires that no reference is held.
 * Thread-safety: every function may be called from any thread (one mutex + condition variable);
 * the loader's callbacks are called without the lock held, possibly from several threads at once
 * for different keys.
 */
#ifndef MCLI_SCHED_MODEL_CACHE_H
#define MCLI_SCHED_MODEL_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/status.h"

#define MODEL_CACHE_DEFAULT_MAX_MODELS 2
#define MODEL_CACHE_KEY_MAX 128 /* keys are shorter than this */

typedef struct {
    /* Loads the model at path into *model and reports its resident size in bytes. */
    mcli_status (*load)(void *user, const char *path, void **model, size_t *bytes, mcli_err *err);
    void (*free)(void *user, void *model);
    void *user;
} model_cache_loader;

typedef struct {
    size_t max_models;    /* 0 = MODEL_CACHE_DEFAULT_MAX_MODELS */
    size_t max_memory_mb; /* 0 = no memory budget */
    model_cache_loader loader;
    /* Called (without the lock) for each model evicted to respect the budget; may be NULL. */
    void (*on_evict)(void *user, const char *key);
    void *evict_user;
} model_cache_opts;

typedef struct model_cache model_cache;
typedef struct model_cache_entry model_cache_ref;

mcli_status model_cache_new(const model_cache_opts *opts, model_cache **out, mcli_err *err) MCLI_MUST_USE;
/* Frees every model. No reference may be outstanding. NULL is a no-op. */
void model_cache_free(model_cache *c);

/* Returns a reference to the model under key, loading it from path on a miss. *loaded (may be
 * NULL) tells whether this call did the load. */
mcli_status model_cache_acquire(model_cache *c, const char *key, const char *path, model_cache_ref **out,
                                bool *loaded, mcli_err *err) MCLI_MUST_USE;
/* The model a reference holds, and its size. */
void *model_cache_model(const model_cache_ref *ref);
size_t model_cache_bytes(const model_cache_ref *ref);
/* Gives a reference back; ref is invalid afterwards. */
void model_cache_release(model_cache *c, model_cache_ref *ref);

/* Takes key out of the cache (freed now, or at its last release). False if it was not there. */
bool model_cache_unload(model_cache *c, const char *key);

/* True if key is loaded (or loading). */
bool model_cache_contains(model_cache *c, const char *key);

typedef struct {
    char key[MODEL_CACHE_KEY_MAX];
    size_t bytes;
    int refs;
    bool loading;
} model_cache_info;

/* A snapshot of the cache, most recently used first: at most cap entries into out; returns how
 * many models the cache holds (may exceed cap). */
size_t model_cache_list(model_cache *c, model_cache_info *out, size_t cap);

/* The loader over engine_load / engine_free (model_cache_engine.c); n_threads is the engine's
 * threads per model call (0 = the cores available). The value is held in the returned loader. */
model_cache_loader model_cache_engine_loader(int n_threads);

#endif
