/* test_model_cache.c - the LRU model cache with a fake loader: hits and misses, LRU order,
 * count and memory budgets, models in use never freed, unload while in use, load failures,
 * concurrent acquirers (one load per key, no model freed under a user). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sched/model_cache.h"

#define FAKE_MAGIC 0x6d6f6465u

typedef struct {
    unsigned magic;
    atomic_int users; /* threads between acquire and release */
    char path[64];
} fake_model;

typedef struct {
    atomic_int loads, frees, evictions, loading_now, max_loading_same, violations;
    int load_delay_us;
    char last_evicted[MODEL_CACHE_KEY_MAX];
} fake_ctx;

/* path "NAME:MB" loads a model of MB megabytes; "fail:..." fails. */
static mcli_status fake_load(void *user, const char *path, void **model, size_t *bytes, mcli_err *err)
{
    fake_ctx *f = user;
    if (strncmp(path, "fail", 4) == 0)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: not a model", path);
    int now = atomic_fetch_add(&f->loading_now, 1) + 1;
    int prev = atomic_load(&f->max_loading_same);
    while (now > prev && !atomic_compare_exchange_weak(&f->max_loading_same, &prev, now)) {
    }
    if (f->load_delay_us)
        usleep((useconds_t)f->load_delay_us);
    atomic_fetch_sub(&f->loading_now, 1);
    fake_model *m = calloc(1, sizeof *m);
    if (!m)
        return mcli_fail(err, MCLI_ERR_NOMEM, "oom");
    m->magic = FAKE_MAGIC;
    snprintf(m->path, sizeof m->path, "%s", path);
    const char *colon = strchr(path, ':');
    *bytes = colon ? (size_t)strtoul(colon + 1, NULL, 10) << 20 : 1;
    *model = m;
    atomic_fetch_add(&f->loads, 1);
    return MCLI_OK;
}

static void fake_free(void *user, void *model)
{
    fake_ctx *f = user;
    fake_model *m = model;
    if (m->magic != FAKE_MAGIC || atomic_load(&m->users) != 0)
        atomic_fetch_add(&f->violations, 1);
    m->magic = 0;
    free(m);
    atomic_fetch_add(&f->frees, 1);
}

static void on_evict(void *user, const char *key)
{
    fake_ctx *f = user;
    static pthread_mutex_t evict_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&evict_lock);
    atomic_fetch_add(&f->evictions, 1);
    snprintf(f->last_evicted, sizeof f->last_evicted, "%s", key);
    pthread_mutex_unlock(&evict_lock);
}

static model_cache *new_cache(fake_ctx *f, size_t max_models, size_t max_mb)
{
    model_cache_opts o = {.max_models = max_models, .max_memory_mb = max_mb,
                          .loader = {.load = fake_load, .free = fake_free, .user = f},
                          .on_evict = on_evict, .evict_user = f};
    model_cache *c = NULL;
    mcli_err err = {0};
    if (model_cache_new(&o, &c, &err) != MCLI_OK)
        fail_msg("model_cache_new: %s", err.msg);
    return c;
}

static model_cache_ref *get(model_cache *c, const char *key, const char *path)
{
    model_cache_ref *r = NULL;
    mcli_err err = {0};
    if (model_cache_acquire(c, key, path, &r, NULL, &err) != MCLI_OK)
        fail_msg("acquire %s: %s", key, err.msg);
    return r;
}

static void use(model_cache *c, const char *key, const char *path) { model_cache_release(c, get(c, key, path)); }

static void second_acquire_is_a_hit_on_the_same_model(void **state)
{
    (void)state;
    fake_ctx f = {0};
    model_cache *c = new_cache(&f, 0, 0);
    bool loaded = false;
    model_cache_ref *a = NULL, *b = NULL;
    mcli_err err = {0};
    assert_int_equal(model_cache_acquire(c, "a", "a:1", &a, &loaded, &err), MCLI_OK);
    assert_true(loaded);
    assert_int_equal(model_cache_acquire(c, "a", "a:1", &b, &loaded, &err), MCLI_OK);
    assert_false(loaded);
    assert_ptr_equal(model_cache_model(a), model_cache_model(b));
    assert_int_equal(model_cache_bytes(a), 1 << 20);
    assert_int_equal(atomic_load(&f.loads), 1);
    model_cache_release(c, a);
    model_cache_release(c, b);
    model_cache_free(c);
    assert_int_equal(atomic_load(&f.frees), 1);
}

static void default_budget_keeps_two_and_evicts_least_recently_used(void **state)
{
    (void)state;
    fake_ctx f = {0};
    model_cache *c = new_cache(&f, 0, 0); /* default: 2 models */
    use(c, "a", "a:1");
    use(c, "b", "b:1");
    use(c, "a", "a:1");  /* a is now the most recent */
    use(c, "c", "c:1");  /* evicts b */
    assert_int_equal(atomic_load(&f.evictions), 1);
    assert_string_equal(f.last_evicted, "b");
    assert_true(model_cache_contains(c, "a"));
    assert_false(model_cache_contains(c, "b"));
    assert_true(model_cache_contains(c, "c"));
    model_cache_info info[4];
    assert_int_equal(model_cache_list(c, info, 4), 2);
    assert_string_equal(info[0].key, "c");
    assert_string_equal(info[1].key, "a");
    use(c, "b", "b:1"); /* reloads on demand, evicts a */
    assert_int_equal(atomic_load(&f.loads), 4);
    assert_string_equal(f.last_evicted, "a");
    model_cache_free(c);
    assert_int_equal(atomic_load(&f.frees), 4);
    assert_int_equal(atomic_load(&f.violations), 0);
}

static void model_in_use_is_never_evicted(void **state)
{
    (void)state;
    fake_ctx f = {0};
    model_cache *c = new_cache(&f, 2, 0);
    model_cache_ref *a = get(c, "a", "a:1");
    model_cache_ref *b = get(c, "b", "b:1");
    model_cache_ref *cc = get(c, "c", "c:1"); /* over budget: all three in use */
    assert_int_equal(atomic_load(&f.frees), 0);
    assert_int_equal(model_cache_list(c, NULL, 0), 3);
    model_cache_release(c, cc); /* c is the most recent: the LRU unreferenced one is c itself */
    assert_int_equal(atomic_load(&f.frees), 1);
    assert_string_equal(f.last_evicted, "c");
    assert_string_equal(((fake_model *)model_cache_model(a))->path, "a:1");
    model_cache_release(c, a);
    model_cache_release(c, b);
    assert_int_equal(model_cache_list(c, NULL, 0), 2);
    model_cache_free(c);
    assert_int_equal(atomic_load(&f.violations), 0);
}

static void memory_budget_evicts_until_the_bytes_fit(void **state)
{
    (void)state;
    fake_ctx f = {0};
    model_cache *c = new_cache(&f, 10, 10); /* 10 models, 10 MB */
    use(c, "a", "a:4");
    use(c, "b", "b:4");
    assert_int_equal(atomic_load(&f.evictions), 0);
    use(c, "c", "c:4"); /* 12 MB > 10: a goes */
    assert_int_equal(atomic_load(&f.evictions), 1);
    assert_string_equal(f.last_evicted, "a");
    use(c, "d", "d:9"); /* 17 MB: b and c go */
    assert_int_equal(atomic_load(&f.evictions), 3);
    assert_int_equal(model_cache_list(c, NULL, 0), 1);
    model_cache_free(c);
}

static void model_larger_than_memory_budget_is_refused(void **state)
{
    (void)state;
    fake_ctx f = {0};
    model_cache *c = new_cache(&f, 2, 10);
    use(c, "small", "small:2");
    model_cache_ref *r = NULL;
    mcli_err err = {0};
    assert_int_equal(model_cache_acquire(c, "big", "big:20", &r, NULL, &err), MCLI_ERR_TOO_LARGE);
    assert_null(r);
    assert_non_null(strstr(err.msg, "20 MB"));
    assert_false(model_cache_contains(c, "big"));
    assert_int_equal(atomic_load(&f.frees), 1); /* the big one, freed at once */
    model_cache_free(c);
}

static void unload_while_in_use_frees_at_last_release(void **state)
{
    (void)state;
    fake_ctx f = {0};
    model_cache *c = new_cache(&f, 2, 0);
    model_cache_ref *a = get(c, "a", "a:1");
    assert_true(model_cache_unload(c, "a"));
    assert_false(model_cache_contains(c, "a"));
    assert_false(model_cache_unload(c, "a"));
    assert_int_equal(atomic_load(&f.frees), 0);
    assert_int_equal(((fake_model *)model_cache_model(a))->magic, FAKE_MAGIC);
    model_cache_ref *a2 = get(c, "a", "a:1"); /* a fresh copy */
    assert_ptr_not_equal(model_cache_model(a), model_cache_model(a2));
    model_cache_release(c, a);
    assert_int_equal(atomic_load(&f.frees), 1);
    assert_int_equal(atomic_load(&f.evictions), 0); /* an unload is not an eviction */
    model_cache_release(c, a2);
    assert_true(model_cache_unload(c, "a"));
    assert_int_equal(atomic_load(&f.frees), 2);
    model_cache_free(c);
    assert_int_equal(atomic_load(&f.violations), 0);
}

static void failed_load_leaves_nothing_cached(void **state)
{
    (void)state;
    fake_ctx f = {0};
    model_cache *c = new_cache(&f, 2, 0);
    model_cache_ref *r = NULL;
    mcli_err err = {0};
    assert_int_equal(model_cache_acquire(c, "x", "fail:1", &r, NULL, &err), MCLI_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "not a model"));
    assert_false(model_cache_contains(c, "x"));
    assert_int_equal(model_cache_list(c, NULL, 0), 0);
    assert_int_equal(model_cache_acquire(c, "", "a:1", &r, NULL, &err), MCLI_ERR_INVALID_ARG);
    char long_key[MODEL_CACHE_KEY_MAX + 1];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[MODEL_CACHE_KEY_MAX] = '\0';
    assert_int_equal(model_cache_acquire(c, long_key, "a:1", &r, NULL, &err), MCLI_ERR_INVALID_ARG);
    model_cache_free(c);
}

typedef struct {
    model_cache *c;
    int tag;
    int iters;
    int failures;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *w = p;
    static const char *const keys[4] = {"k0", "k1", "k2", "k3"};
    static const char *const paths[4] = {"k0:1", "k1:1", "k2:1", "k3:1"};
    for (int i = 0; i < w->iters; i++) {
        int k = (i * 7 + w->tag * 3) % 4;
        model_cache_ref *r = NULL;
        mcli_err err = {0};
        if (model_cache_acquire(w->c, keys[k], paths[k], &r, NULL, &err) != MCLI_OK) {
            w->failures++;
            continue;
        }
        fake_model *m = model_cache_model(r);
        atomic_fetch_add(&m->users, 1);
        if (m->magic != FAKE_MAGIC || strcmp(m->path, paths[k]) != 0)
            w->failures++;
        if (i % 16 == 0)
            usleep(200);
        atomic_fetch_sub(&m->users, 1);
        model_cache_release(w->c, r);
    }
    return NULL;
}

static void concurrent_users_never_see_a_model_freed_under_them(void **state)
{
    (void)state;
    fake_ctx f = {0};
    model_cache *c = new_cache(&f, 2, 0);
    enum { N = 4 };
    worker_arg w[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        w[i] = (worker_arg){.c = c, .tag = i, .iters = 400};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &w[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    assert_true(model_cache_list(c, NULL, 0) <= 2);
    model_cache_free(c);
    assert_int_equal(atomic_load(&f.violations), 0);
    assert_int_equal(atomic_load(&f.loads), atomic_load(&f.frees));
}

static void *same_key_worker(void *p)
{
    worker_arg *w = p;
    model_cache_ref *r = NULL;
    mcli_err err = {0};
    if (model_cache_acquire(w->c, "same", "same:1", &r, NULL, &err) != MCLI_OK)
        w->failures++;
    else
        model_cache_release(w->c, r);
    return NULL;
}

static void concurrent_misses_on_one_key_load_it_once(void **state)
{
    (void)state;
    fake_ctx f = {.load_delay_us = 30000};
    model_cache *c = new_cache(&f, 2, 0);
    enum { N = 6 };
    worker_arg w[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        w[i] = (worker_arg){.c = c, .tag = i};
        assert_int_equal(pthread_create(&th[i], NULL, same_key_worker, &w[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    assert_int_equal(atomic_load(&f.loads), 1);
    assert_int_equal(atomic_load(&f.max_loading_same), 1);
    model_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(second_acquire_is_a_hit_on_the_same_model),
        cmocka_unit_test(default_budget_keeps_two_and_evicts_least_recently_used),
        cmocka_unit_test(model_in_use_is_never_evicted),
        cmocka_unit_test(memory_budget_evicts_until_the_bytes_fit),
        cmocka_unit_test(model_larger_than_memory_budget_is_refused),
        cmocka_unit_test(unload_while_in_use_frees_at_last_release),
        cmocka_unit_test(failed_load_leaves_nothing_cached),
        cmocka_unit_test(concurrent_users_never_see_a_model_freed_under_them),
        cmocka_unit_test(concurrent_misses_on_one_key_load_it_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
