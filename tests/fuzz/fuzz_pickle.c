/* libFuzzer target: the restricted unpickler. Each input goes through the three entry points
 * (state dict, legacy preamble, storage-key list); a parsed state dict with small storages is
 * then materialised from zero-filled buffers, exercising strided copies and extent checks.
 * Build and run with tests/fuzz/run.sh. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "formats/torch_pickle.h"
#include "formats/weights_internal.h"

#define FUZZ_MAX_STORAGE_BYTES (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void materialise(const tp_state_dict *sd_const)
{
    tp_state_dict sd = *sd_const;
    size_t total = 0;
    for (size_t i = 0; i < sd.n_storages; i++) {
        size_t b;
        if (!wb_mul_ok((size_t)sd.storages[i].numel, wb_dtype_size(sd.storages[i].dt), &b) ||
            !wb_add_ok(total, b, &total) || total > FUZZ_MAX_STORAGE_BYTES)
            return;
    }
    uint8_t *pool = calloc(1, total ? total : 1);
    if (!pool)
        return;
    size_t at = 0;
    for (size_t i = 0; i < sd.n_storages; i++) {
        sd.storages[i].data = pool + at;
        at += (size_t)sd.storages[i].numel * wb_dtype_size(sd.storages[i].dt);
    }
    mcli_weights *w = NULL;
    mcli_err err;
    if (wb_new(&w, &err) == MCLI_OK) {
        if (tp_add_tensors(w, &sd, "fuzz", &err) == MCLI_OK)
            (void)wb_finish(w, &err);
        weights_free(w);
    }
    /* restore: the storages array is shared with sd_const */
    for (size_t i = 0; i < sd.n_storages; i++)
        sd.storages[i].data = NULL;
    free(pool);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mcli_err err;
    size_t used = 0;
    tp_state_dict sd;
    if (tp_parse_state_dict(data, size, "fuzz", &used, &sd, &err) == MCLI_OK) {
        if (used > size)
            abort();
        materialise(&sd);
        tp_state_dict_free(&sd);
    }
    (void)tp_parse_legacy_preamble(data, size, "fuzz", &used, &err);
    char **keys = NULL;
    size_t n = 0;
    if (tp_parse_string_list(data, size, "fuzz", &used, &keys, &n, &err) == MCLI_OK)
        tp_free_strings(keys, n);
    return 0;
}
