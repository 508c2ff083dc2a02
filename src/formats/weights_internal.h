/* weights_internal.h - how the format readers (safetensors.c, torch_zip.c, torch_legacy.c)
 * fill an mcli_weights. Not for use outside src/formats/.
 *
 * A reader maps its file with wb_map_file() (the weights set owns the mapping), then adds
 * tensors with wb_add_tensor(), which either points into the mapping (F32, contiguous,
 * aligned) or converts into a buffer the weights set owns. wb_finish() sorts the names for
 * lookup and rejects duplicates. Single-threaded: a weights set is built by one thread and
 * only read afterwards.
 */
#ifndef MCLI_FORMATS_WEIGHTS_INTERNAL_H
#define MCLI_FORMATS_WEIGHTS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/weights.h"

/* Limits on untrusted files (shared by all readers). */
#define WB_MAX_TENSORS 200000 /* tensors in one weights set */
#define WB_MAX_NAME 512       /* bytes in one tensor name */
#define WB_MAX_DIM_VALUE ((int64_t)1 << 40)

struct mcli_weights {
    mcli_tensor *tensors; /* [n]; names owned (malloc'd) */
    size_t n, cap;
    const mcli_tensor **by_name; /* [n] sorted by name (set by wb_finish; tensors fixed after) */
    struct wb_map {
        void *addr;
        size_t len;
    } * maps;
    size_t n_maps, cap_maps;
    struct wb_buf {
        void *p;
        size_t len;
        bool mapped;
    } * bufs; /* converted tensor data, owned */
    size_t n_bufs, cap_bufs;
    struct wb_src {
        const uint8_t *p;
        bool contiguous;
    } * srcs;       /* [n] where each tensor's bytes
                     * start in its file (cap == cap) */
    size_t bytes;   /* float32 bytes exposed */
    bool meta_only; /* weights_open_meta: convert nothing */
    char format[64];
};

/* Bytes of one element of dt (1 for BOOL). */
size_t wb_dtype_size(mcli_dtype dt);

mcli_status wb_new(mcli_weights **out, mcli_err *err) MCLI_MUST_USE;

/* Maps path read-only; the mapping lives until weights_free(). Empty files map to
 * (NULL, 0). */
mcli_status wb_map_file(mcli_weights *w, const char *path, const uint8_t **data, size_t *len,
                        mcli_err *err) MCLI_MUST_USE;

/* Describes a strided view of `src` (elements of `dt`, element strides) to add as a tensor.
 * The caller has already checked that every element addressed lies inside the source. */
typedef struct {
    const char *name; /* copied */
    size_t name_len;
    mcli_dtype dt;
    int ndim;
    const int64_t *shape;  /* [ndim], each >= 0 */
    const int64_t *stride; /* [ndim] in elements, or NULL for row-major contiguous */
    const uint8_t *src;    /* first element; may be unaligned */
} wb_tensor_desc;

/* Adds one tensor: zero-copy when F32, contiguous and 4-byte aligned; otherwise converted to
 * a contiguous float32 buffer owned by w (integer/bool tensors get data == NULL; with
 * w->meta_only nothing is converted and such tensors get data == NULL too). */
mcli_status wb_add_tensor(mcli_weights *w, const wb_tensor_desc *d, mcli_err *err) MCLI_MUST_USE;

/* Sorts names and rejects duplicates (names the duplicate). */
mcli_status wb_finish(mcli_weights *w, mcli_err *err) MCLI_MUST_USE;

/* Moves every tensor, mapping and buffer of src into dst (for shards); frees src. */
mcli_status wb_absorb(mcli_weights *dst, mcli_weights *src, mcli_err *err) MCLI_MUST_USE;

/* Checked arithmetic: false on overflow. */
static inline bool wb_mul_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool wb_add_ok(size_t a, size_t b, size_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

/* Format readers (one file each). They append tensors to w; they do not call wb_finish. */
mcli_status st_load(mcli_weights *w, const char *path, mcli_err *err) MCLI_MUST_USE;
mcli_status torch_zip_load(mcli_weights *w, const char *path, mcli_err *err) MCLI_MUST_USE;
mcli_status torch_legacy_load(mcli_weights *w, const char *path, mcli_err *err) MCLI_MUST_USE;

#endif
