/* safetensors.h - the safetensors header parser, exposed for tests and the fuzz target.
 *
 * File layout: u64 little-endian N, N bytes of JSON {name: {"dtype", "shape",
 * "data_offsets": [begin, end]}, "__metadata__": {...}}, then the data buffer; offsets are
 * relative to the data buffer. st_parse_header() checks everything before any tensor byte is
 * touched: N <= ST_MAX_HEADER and inside the file, valid JSON without duplicate keys, known
 * dtypes, dtype size x shape == end - begin, every range inside the file, no overlaps and no
 * gap (or trailing bytes) over ST_MAX_GAP. Ownership: the st_header owns its entries and the
 * parsed JSON (entry names point into it); release with st_header_free(). Thread-safe: no
 * shared state.
 */
#ifndef MCLI_FORMATS_SAFETENSORS_H
#define MCLI_FORMATS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "formats/weights.h"

#define ST_MAX_HEADER (100u << 20) /* bytes of JSON header */
#define ST_MAX_GAP 64              /* tolerated unused bytes between/after tensors (alignment) */

typedef struct {
    const char *name; /* NUL-terminated, points into the parsed JSON */
    mcli_dtype dt;
    int ndim;
    int64_t shape[MCLI_MAX_DIMS];
    uint64_t begin, end; /* byte range relative to data_start */
} st_entry;

typedef struct {
    void *root;        /* json_t * */
    st_entry *entries; /* [n] in header order */
    size_t n;
    size_t data_start; /* 8 + N */
} st_header;

/* Parses and validates the header of a whole file image (file[0..len)). `what` names the file
 * in error messages. On failure *out is left empty. */
mcli_status st_parse_header(const uint8_t *file, size_t len, const char *what, st_header *out,
                            mcli_err *err) MCLI_MUST_USE;
void st_header_free(st_header *h);

#endif
