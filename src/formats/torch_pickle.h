/* torch_pickle.h - a restricted unpickler for the pickles torch.save writes.
 *
 * It understands only the opcodes torch.save emits (protocols 2-4: PROTO, FRAME, MARK,
 * EMPTY_DICT/LIST/TUPLE, TUPLE/TUPLE1-3, DICT, LIST, SETITEM(S), APPEND(S), BINUNICODE and the
 * other length-prefixed strings, BININT/BININT1/BININT2/LONG1, BINFLOAT, NONE, NEWTRUE,
 * NEWFALSE, BINPUT/LONG_BINPUT/MEMOIZE, BINGET/LONG_BINGET, GLOBAL/STACK_GLOBAL, REDUCE,
 * BINPERSID, BUILD, STOP) and builds plain data; it never calls anything. GLOBAL may only name
 * torch._utils._rebuild_tensor_v2 / _rebuild_tensor / _rebuild_parameter, the torch.*Storage
 * types and collections.OrderedDict; any other global is refused, naming it. The stack, the
 * mark stack, the memo, the number of objects and string lengths are capped; there is no
 * recursion, so nesting depth cannot exhaust the C stack.
 *
 * Persistent ids ('storage', StorageType, key, location, numel[, view]) become entries of the
 * storage table; tensors refer to them by index, with their offset, sizes and strides. The
 * container readers (torch_zip.c, torch_legacy.c) then point each storage at its bytes and call
 * tp_add_tensors(). Ownership: a tp_state_dict owns its arrays and names; free with
 * tp_state_dict_free(). Thread-safe: no shared state.
 */
#ifndef MCLI_FORMATS_TORCH_PICKLE_H
#define MCLI_FORMATS_TORCH_PICKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/weights.h"

#define TP_MAX_KEY 63 /* bytes in a storage key */
#define TP_MAX_STORAGES 200000

typedef struct {
    char key[TP_MAX_KEY + 1];
    mcli_dtype dt;
    uint64_t numel;      /* elements, as the persistent id declares */
    const uint8_t *data; /* numel * element size bytes; set by the container reader */
} tp_storage;

typedef struct {
    char *name;      /* owned */
    size_t storage;  /* index into storages */
    uint64_t offset; /* in elements, from the start of the storage */
    int ndim;
    int64_t shape[MCLI_MAX_DIMS];
    int64_t stride[MCLI_MAX_DIMS];
} tp_tensor;

typedef struct {
    tp_storage *storages;
    size_t n_storages;
    tp_tensor *tensors;
    size_t n_tensors;
    size_t n_skipped; /* dict values that were not tensors */
} tp_state_dict;

/* Unpickles one pickle at data[0..len) that must evaluate to a dict (or OrderedDict) of
 * name -> tensor; *used is set to the bytes consumed up to and including STOP. Every tensor's
 * extent is checked against its storage's declared size. `what` names the input in errors. */
mcli_status tp_parse_state_dict(const uint8_t *data, size_t len, const char *what, size_t *used,
                                tp_state_dict *out, mcli_err *err) MCLI_MUST_USE;

/* Legacy files: the three leading pickles (magic number, protocol version 1001, system info
 * with little-endian byte order). *used = bytes consumed. */
mcli_status tp_parse_legacy_preamble(const uint8_t *data, size_t len, const char *what, size_t *used,
                                     mcli_err *err) MCLI_MUST_USE;

/* Legacy files: the pickled list of storage keys after the object. On success *keys is an
 * owned array of *n owned strings; free with tp_free_strings(). */
mcli_status tp_parse_string_list(const uint8_t *data, size_t len, const char *what, size_t *used,
                                 char ***keys, size_t *n, mcli_err *err) MCLI_MUST_USE;
void tp_free_strings(char **keys, size_t n);

/* Storage lookup by key: tp_index_storages() builds *order (owned by the caller, free()),
 * sorted by key; tp_lookup_storage() returns the index into sd->storages or -1. */
mcli_status tp_index_storages(const tp_state_dict *sd, const tp_storage ***order,
                              mcli_err *err) MCLI_MUST_USE;
long tp_lookup_storage(const tp_state_dict *sd, const tp_storage *const *order, const char *key);

/* Adds every tensor (storages must all have data) to the weights set; F32 contiguous aligned
 * views are zero-copy, everything else converted. */
struct mcli_weights;
mcli_status tp_add_tensors(struct mcli_weights *w, const tp_state_dict *sd, const char *what,
                           mcli_err *err) MCLI_MUST_USE;

void tp_state_dict_free(tp_state_dict *sd);

#endif
