/* model_cache_engine.c - the model cache's loader over the engine: engine_load / engine_free,
 * a model sized by its weight bytes. Kept apart from model_cache.c so that the cache itself
 * (and its tests) do not pull in the engine. Thread-safety: stateless. */
#include "engine/engine.h"
#include "sched/model_cache.h"

#include <stdint.h>

static mcli_status engine_loader_load(void *user, const char *path, void **model, size_t *bytes, mcli_err *err)
{
    mcli_model *m = NULL;
    mcli_engine_opts opts = {.n_threads = (int)(intptr_t)user};
    mcli_status st = engine_load(path, &opts, &m, err);
    if (st != MCLI_OK)
        return st;
    const mcli_model_info *info = engine_info(m);
    *bytes = info ? info->weight_bytes : 0;
    *model = m;
    return MCLI_OK;
}

static void engine_loader_free(void *user, void *model)
{
    (void)user;
    engine_free(model);
}

model_cache_loader model_cache_engine_loader(int n_threads)
{
    model_cache_loader l = {.load = engine_loader_load, .free = engine_loader_free,
                            .user = (void *)(intptr_t)(n_threads > 0 ? n_threads : 0)};
    return l;
}
