/* model_cache.c - LRU cache of loaded models with reference counts (see model_cache.h).
 *
 * Entries sit in one doubly linked list, most recently used at the head; the cache is small
 * (a handful of models), so lookups are linear. An entry leaves the list when it is evicted,
 * unloaded or fails to load; it is freed by whoever drops its last reference (the list itself
 * holds no reference). Models are freed and eviction callbacks run after the lock is dropped.
 */
#include "sched/model_cache.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

typedef enum { ENTRY_LOADING, ENTRY_READY } entry_state;

struct model_cache_entry {
    char *key;
    void *model;
    size_t bytes;
    int refs;
    entry_state state;
    bool listed;  /* in the cache's list (false once evicted/unloaded: freed at refs == 0) */
    struct model_cache_entry *prev, *next;
    struct model_cache_entry *free_next; /* the "to free after unlock" chain */
};

struct model_cache {
    size_t max_models;
    size_t max_bytes; /* 0 = no limit */
    model_cache_loader loader;
    void (*on_evict)(void *user, const char *key);
    void *evict_user;
    pthread_mutex_t lock;
    pthread_cond_t loaded; /* broadcast when a load finishes (either way) */
    struct model_cache_entry *head, *tail;
    size_t n_listed;
    size_t listed_bytes;
};

mcli_status model_cache_new(const model_cache_opts *opts, model_cache **out, mcli_err *err)
{
    *out = NULL;
    if (!opts->loader.load || !opts->loader.free)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "model cache: a loader needs load and free callbacks");
    if (opts->max_memory_mb > SIZE_MAX / (1024 * 1024))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "model cache: memory budget %zu MB is too large",
                         opts->max_memory_mb);
    model_cache *c = calloc(1, sizeof *c);
    if (!c)
        return mcli_fail(err, MCLI_ERR_NOMEM, "model cache: out of memory");
    c->max_models = opts->max_models ? opts->max_models : MODEL_CACHE_DEFAULT_MAX_MODELS;
    c->max_bytes = opts->max_memory_mb * 1024 * 1024;
    c->loader = opts->loader;
    c->on_evict = opts->on_evict;
    c->evict_user = opts->evict_user;
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        return mcli_fail(err, MCLI_ERR_INTERNAL, "model cache: cannot create a mutex");
    }
    if (pthread_cond_init(&c->loaded, NULL) != 0) {
        pthread_mutex_destroy(&c->lock);
        free(c);
        return mcli_fail(err, MCLI_ERR_INTERNAL, "model cache: cannot create a condition variable");
    }
    *out = c;
    return MCLI_OK;
}

static void entry_destroy(model_cache *c, struct model_cache_entry *e)
{
    if (e->model)
        c->loader.free(c->loader.user, e->model);
    free(e->key);
    free(e);
}

void model_cache_free(model_cache *c)
{
    if (!c)
        return;
    struct model_cache_entry *e = c->head;
    while (e) {
        struct model_cache_entry *next = e->next;
        if (e->refs != 0)
            LOG_ERROR("model cache: freeing '%s' with %d reference(s) outstanding", e->key, e->refs);
        entry_destroy(c, e);
        e = next;
    }
    pthread_cond_destroy(&c->loaded);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* ---- list helpers (lock held) ---- */

static void list_unlink(model_cache *c, struct model_cache_entry *e)
{
    if (!e->listed)
        return;
    if (e->prev) e->prev->next = e->next; else c->head = e->next;
    if (e->next) e->next->prev = e->prev; else c->tail = e->prev;
    e->prev = e->next = NULL;
    e->listed = false;
    c->n_listed--;
    c->listed_bytes -= e->bytes;
}

static void list_push_front(model_cache *c, struct model_cache_entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head) c->head->prev = e; else c->tail = e;
    c->head = e;
    e->listed = true;
    c->n_listed++;
    c->listed_bytes += e->bytes;
}

static void list_touch(model_cache *c, struct model_cache_entry *e)
{
    if (c->head == e)
        return;
    list_unlink(c, e);
    list_push_front(c, e);
}

static struct model_cache_entry *find(model_cache *c, const char *key)
{
    for (struct model_cache_entry *e = c->head; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

/* Evicts unreferenced ready models, least recently used first, until the count fits in
 * max_models - room and the bytes in max_bytes; evicted entries go on *victims. */
static void enforce_budget(model_cache *c, size_t room, struct model_cache_entry **victims)
{
    for (;;) {
        bool over_count = c->n_listed + room > c->max_models;
        bool over_bytes = c->max_bytes && c->listed_bytes > c->max_bytes;
        if (!over_count && !over_bytes)
            return;
        struct model_cache_entry *v = c->tail;
        while (v && (v->refs > 0 || v->state != ENTRY_READY))
            v = v->prev;
        if (!v) {
            LOG_WARN("model cache: over budget (%zu models, %zu MB) but every model is in use; "
                     "evicting when one is released", c->n_listed, c->listed_bytes >> 20);
            return;
        }
        list_unlink(c, v);
        v->free_next = *victims;
        *victims = v;
    }
}

/* Frees victims (lock NOT held) and tells the owner which were evicted. */
static void free_victims(model_cache *c, struct model_cache_entry *victims, bool notify)
{
    while (victims) {
        struct model_cache_entry *next = victims->free_next;
        LOG_INFO("model cache: unloading '%s' (%zu MB)", victims->key, victims->bytes >> 20);
        if (notify && c->on_evict)
            c->on_evict(c->evict_user, victims->key);
        entry_destroy(c, victims);
        victims = next;
    }
}

mcli_status model_cache_acquire(model_cache *c, const char *key, const char *path, model_cache_ref **out,
                                bool *loaded, mcli_err *err)
{
    *out = NULL;
    if (loaded)
        *loaded = false;
    if (!key || !*key || strnlen(key, MODEL_CACHE_KEY_MAX) >= MODEL_CACHE_KEY_MAX)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "model cache: a key must be 1..%d bytes",
                         MODEL_CACHE_KEY_MAX - 1);
    if (!path || !*path)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "model cache: no path to load '%s' from", key);
    struct model_cache_entry *victims = NULL;

    pthread_mutex_lock(&c->lock);
    struct model_cache_entry *e;
    while ((e = find(c, key)) && e->state == ENTRY_LOADING)
        pthread_cond_wait(&c->loaded, &c->lock);
    if (e) {
        e->refs++;
        list_touch(c, e);
        pthread_mutex_unlock(&c->lock);
        *out = e;
        return MCLI_OK;
    }
    /* A miss: make room for one more model, then load without the lock. */
    e = calloc(1, sizeof *e);
    char *key_copy = strdup(key);
    if (!e || !key_copy) {
        pthread_mutex_unlock(&c->lock);
        free(e);
        free(key_copy);
        return mcli_fail(err, MCLI_ERR_NOMEM, "model cache: out of memory for '%s'", key);
    }
    e->key = key_copy;
    e->refs = 1;
    e->state = ENTRY_LOADING;
    enforce_budget(c, 1, &victims);
    list_push_front(c, e);
    pthread_mutex_unlock(&c->lock);
    free_victims(c, victims, true);
    victims = NULL;

    void *model = NULL;
    size_t bytes = 0;
    mcli_status st = c->loader.load(c->loader.user, path, &model, &bytes, err);
    if (st == MCLI_OK && c->max_bytes && bytes > c->max_bytes) {
        st = mcli_fail(err, MCLI_ERR_TOO_LARGE,
                       "model '%s' needs %zu MB, more than the cache's memory budget of %zu MB; "
                       "raise the budget (--max-memory-mb) or use a smaller model",
                       key, (bytes + (1 << 20) - 1) >> 20, c->max_bytes >> 20);
        c->loader.free(c->loader.user, model);
        model = NULL;
    }

    pthread_mutex_lock(&c->lock);
    if (st != MCLI_OK) {
        list_unlink(c, e);
        pthread_cond_broadcast(&c->loaded);
        pthread_mutex_unlock(&c->lock);
        entry_destroy(c, e);
        return st;
    }
    e->model = model;
    e->bytes = bytes;
    if (e->listed)
        c->listed_bytes += bytes;
    e->state = ENTRY_READY;
    enforce_budget(c, 0, &victims);
    pthread_cond_broadcast(&c->loaded);
    pthread_mutex_unlock(&c->lock);
    free_victims(c, victims, true);
    if (loaded)
        *loaded = true;
    *out = e;
    return MCLI_OK;
}

void *model_cache_model(const model_cache_ref *ref) { return ref->model; }
size_t model_cache_bytes(const model_cache_ref *ref) { return ref->bytes; }

void model_cache_release(model_cache *c, model_cache_ref *ref)
{
    if (!ref)
        return;
    struct model_cache_entry *victims = NULL;
    pthread_mutex_lock(&c->lock);
    ref->refs--;
    if (ref->refs == 0 && !ref->listed) {
        ref->free_next = NULL;
        victims = ref; /* unloaded while in use: freed now, not an eviction */
        pthread_mutex_unlock(&c->lock);
        free_victims(c, victims, false);
        return;
    }
    if (ref->refs == 0)
        enforce_budget(c, 0, &victims);
    pthread_mutex_unlock(&c->lock);
    free_victims(c, victims, true);
}

bool model_cache_unload(model_cache *c, const char *key)
{
    pthread_mutex_lock(&c->lock);
    struct model_cache_entry *e = find(c, key);
    if (!e) {
        pthread_mutex_unlock(&c->lock);
        return false;
    }
    list_unlink(c, e);
    bool free_now = e->refs == 0;
    pthread_mutex_unlock(&c->lock);
    if (free_now) {
        e->free_next = NULL;
        free_victims(c, e, false);
    }
    return true;
}

bool model_cache_contains(model_cache *c, const char *key)
{
    pthread_mutex_lock(&c->lock);
    bool found = find(c, key) != NULL;
    pthread_mutex_unlock(&c->lock);
    return found;
}

size_t model_cache_list(model_cache *c, model_cache_info *out, size_t cap)
{
    pthread_mutex_lock(&c->lock);
    size_t i = 0;
    for (struct model_cache_entry *e = c->head; e && i < cap; e = e->next, i++) {
        snprintf(out[i].key, sizeof out[i].key, "%s", e->key);
        out[i].bytes = e->bytes;
        out[i].refs = e->refs;
        out[i].loading = e->state == ENTRY_LOADING;
    }
    size_t n = c->n_listed;
    pthread_mutex_unlock(&c->lock);
    return n;
}
