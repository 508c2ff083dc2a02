/* torch_legacy.c - pytorch_model.bin in the format torch < 1.6 wrote (and torch.save still
 * writes with _use_new_zipfile_serialization=False). Most 2019-2020 hub checkpoints use it.
 *
 * Layout, all in one file:
 *   pickle  magic number 0x1950a86a20f9469cfc6c
 *   pickle  protocol version 1001
 *   pickle  system info {protocol_version, little_endian, type_sizes}
 *   pickle  the object (the state dict), storages as persistent ids
 *   pickle  list of storage keys, in the order their data follows
 *   for each key: u64 little-endian element count, then count * element-size raw bytes
 * The file is mapped once; F32 tensors whose data is 4-byte aligned and contiguous are used
 * in place, the rest converted (weights_internal.h).
 */
#include <stdlib.h>
#include <string.h>

#include "formats/torch_pickle.h"
#include "formats/weights_internal.h"
#include "util/log.h"

mcli_status torch_legacy_load(mcli_weights *w, const char *path, mcli_err *err)
{
    const uint8_t *file;
    size_t len, pos = 0, used = 0;
    tp_state_dict sd;
    memset(&sd, 0, sizeof sd);
    char **keys = NULL;
    size_t n_keys = 0;
    const tp_storage **order = NULL;
    mcli_status s = wb_map_file(w, path, &file, &len, err);
    if (s != MCLI_OK)
        return s;
    if ((s = tp_parse_legacy_preamble(file, len, path, &used, err)) != MCLI_OK)
        goto done;
    pos += used;
    if ((s = tp_parse_state_dict(file + pos, len - pos, path, &used, &sd, err)) != MCLI_OK)
        goto done;
    pos += used;
    if ((s = tp_parse_string_list(file + pos, len - pos, path, &used, &keys, &n_keys, err)) != MCLI_OK)
        goto done;
    pos += used;
    if ((s = tp_index_storages(&sd, &order, err)) != MCLI_OK)
        goto done;
    for (size_t i = 0; i < n_keys; i++) {
        long idx = tp_lookup_storage(&sd, order, keys[i]);
        if (idx < 0) {
            s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: storage '%s' has data but no tensor uses it", path,
                          keys[i]);
            goto done;
        }
        tp_storage *st = &sd.storages[idx];
        if (st->data) {
            s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: storage '%s' is listed twice", path, keys[i]);
            goto done;
        }
        if (len - pos < 8) {
            s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: file ends before storage '%s' (truncated download?)",
                          path, keys[i]);
            goto done;
        }
        uint64_t count = 0;
        for (int b = 7; b >= 0; b--)
            count = (count << 8) | file[pos + (size_t)b];
        pos += 8;
        if (count != st->numel) {
            s = mcli_fail(err, MCLI_ERR_FORMAT,
                          "%s: storage '%s' holds %llu elements but the tensors declare %llu", path, keys[i],
                          (unsigned long long)count, (unsigned long long)st->numel);
            goto done;
        }
        size_t bytes;
        if (!wb_mul_ok((size_t)count, wb_dtype_size(st->dt), &bytes) || bytes > len - pos) {
            s = mcli_fail(
                err, MCLI_ERR_FORMAT,
                "%s: storage '%s' (%llu elements) runs past the end of the file (truncated download?)", path,
                keys[i], (unsigned long long)count);
            goto done;
        }
        st->data = file + pos;
        pos += bytes;
    }
    for (size_t i = 0; i < sd.n_storages; i++) {
        if (!sd.storages[i].data) {
            s = mcli_fail(err, MCLI_ERR_FORMAT,
                          "%s: storage '%s' is used by a tensor but its data is missing", path,
                          sd.storages[i].key);
            goto done;
        }
    }
    if (pos != len)
        LOG_DEBUG("%s: %zu trailing bytes after the last storage", path, len - pos);
    s = tp_add_tensors(w, &sd, path, err);
done:
    free(order);
    tp_free_strings(keys, n_keys);
    tp_state_dict_free(&sd);
    return s;
}
