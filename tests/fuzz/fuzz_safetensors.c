/* libFuzzer target: the safetensors header parser, then every described tensor added to a
 * weights set from the fuzzed bytes (exercises the F16/BF16/F64 conversions and the checks).
 * Build and run with tests/fuzz/run.sh. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "formats/safetensors.h"
#include "formats/weights_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_header h;
    mcli_err err;
    if (st_parse_header(data, size, "fuzz", &h, &err) != MCLI_OK)
        return 0;
    mcli_weights *w = NULL;
    if (wb_new(&w, &err) == MCLI_OK) {
        for (size_t i = 0; i < h.n; i++) {
            const st_entry *e = &h.entries[i];
            wb_tensor_desc d = {.name = e->name,
                                .name_len = strlen(e->name),
                                .dt = e->dt,
                                .ndim = e->ndim,
                                .shape = e->shape,
                                .stride = NULL,
                                .src = data + h.data_start + e->begin};
            if (wb_add_tensor(w, &d, &err) != MCLI_OK)
                break;
        }
        if (wb_finish(w, &err) == MCLI_OK) {
            /* touch every float so ASan sees any read past the input */
            volatile float sink = 0;
            for (size_t i = 0; i < weights_count(w); i++) {
                const mcli_tensor *t = weights_at(w, i);
                for (size_t k = 0; t->data && k < t->numel; k++)
                    sink += t->data[k];
            }
            (void)sink;
        }
        weights_free(w);
    }
    st_header_free(&h);
    return 0;
}
