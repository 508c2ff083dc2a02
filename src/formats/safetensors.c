/* safetensors.c - reads .safetensors files: header validation (safetensors.h), then every
 * tensor added to the weights set (F32 zero-copy from the mapping, others converted). */
#include "formats/safetensors.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "formats/weights_internal.h"

static bool parse_dtype(const char *s, mcli_dtype *dt)
{
    static const struct {
        const char *name;
        mcli_dtype dt;
    } table[] = {
        {"F32", MCLI_DT_F32}, {"F16", MCLI_DT_F16},   {"BF16", MCLI_DT_BF16}, {"F64", MCLI_DT_F64},
        {"I64", MCLI_DT_I64}, {"I32", MCLI_DT_I32},   {"I16", MCLI_DT_I16},   {"I8", MCLI_DT_I8},
        {"U8", MCLI_DT_U8},   {"BOOL", MCLI_DT_BOOL},
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (strcmp(s, table[i].name) == 0) {
            *dt = table[i].dt;
            return true;
        }
    return false;
}

void st_header_free(st_header *h)
{
    if (!h)
        return;
    free(h->entries);
    json_decref(h->root);
    memset(h, 0, sizeof *h);
}

static int cmp_begin(const void *a, const void *b)
{
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Fills e from one header value {"dtype", "shape", "data_offsets"}; data_len bounds the offsets. */
static mcli_status parse_entry(const char *what, const char *name, json_t *v, uint64_t data_len, st_entry *e,
                               mcli_err *err)
{
    if (!json_is_object(v))
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: header entry '%s' is not an object", what, name);
    const char *dts = json_string_value(json_object_get(v, "dtype"));
    json_t *shape = json_object_get(v, "shape");
    json_t *offs = json_object_get(v, "data_offsets");
    if (!dts || !json_is_array(shape) || !json_is_array(offs) || json_array_size(offs) != 2)
        return mcli_fail(err, MCLI_ERR_FORMAT,
                         "%s: tensor '%s' needs \"dtype\" (string), \"shape\" (array) and \"data_offsets\" "
                         "([begin, end])",
                         what, name);
    if (!parse_dtype(dts, &e->dt))
        return mcli_fail(
            err, MCLI_ERR_UNSUPPORTED,
            "%s: tensor '%s' has dtype '%.16s'; supported: F32 F16 BF16 F64 I64 I32 I16 I8 U8 BOOL", what,
            name, dts);
    if (json_array_size(shape) > MCLI_MAX_DIMS)
        return mcli_fail(err, MCLI_ERR_UNSUPPORTED, "%s: tensor '%s' has %zu dimensions (at most %d)", what,
                         name, json_array_size(shape), MCLI_MAX_DIMS);
    e->name = name;
    e->ndim = (int)json_array_size(shape);
    uint64_t numel = 1;
    for (int i = 0; i < e->ndim; i++) {
        json_t *d = json_array_get(shape, (size_t)i);
        json_int_t dv = json_is_integer(d) ? json_integer_value(d) : -1;
        if (dv < 0 || dv > WB_MAX_DIM_VALUE)
            return mcli_fail(err, MCLI_ERR_FORMAT,
                             "%s: tensor '%s': shape[%d] is not an integer in [0, 2^40]", what, name, i);
        e->shape[i] = dv;
        if (__builtin_mul_overflow(numel, (uint64_t)dv, &numel))
            return mcli_fail(err, MCLI_ERR_FORMAT, "%s: tensor '%s': element count overflows", what, name);
    }
    json_t *b = json_array_get(offs, 0), *en = json_array_get(offs, 1);
    if (!json_is_integer(b) || !json_is_integer(en) || json_integer_value(b) < 0 ||
        json_integer_value(en) < json_integer_value(b))
        return mcli_fail(err, MCLI_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets must be integers 0 <= begin <= end", what, name);
    e->begin = (uint64_t)json_integer_value(b);
    e->end = (uint64_t)json_integer_value(en);
    if (e->end > data_len)
        return mcli_fail(
            err, MCLI_ERR_FORMAT,
            "%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the data (%llu bytes); "
            "the file is truncated or corrupt",
            what, name, (unsigned long long)e->begin, (unsigned long long)e->end,
            (unsigned long long)data_len);
    uint64_t bytes;
    if (__builtin_mul_overflow(numel, (uint64_t)wb_dtype_size(e->dt), &bytes) || bytes != e->end - e->begin)
        return mcli_fail(err, MCLI_ERR_FORMAT,
                         "%s: tensor '%s': %s x shape needs %llu bytes but data_offsets span %llu", what,
                         name, dts, (unsigned long long)bytes, (unsigned long long)(e->end - e->begin));
    return MCLI_OK;
}

mcli_status st_parse_header(const uint8_t *file, size_t len, const char *what, st_header *out, mcli_err *err)
{
    memset(out, 0, sizeof *out);
    json_t *root = NULL;
    st_entry *entries = NULL;
    const st_entry **order = NULL;
    mcli_status s;
    if (len < 8)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: %zu bytes, too short for a safetensors file", what, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | file[i];
    if (hlen > ST_MAX_HEADER)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE,
                         "%s: header length %llu is over the %u MB limit (corrupt file?)", what,
                         (unsigned long long)hlen, ST_MAX_HEADER >> 20);
    if (hlen > len - 8)
        return mcli_fail(err, MCLI_ERR_FORMAT,
                         "%s: header length %llu runs past the end of the file (%zu bytes)", what,
                         (unsigned long long)hlen, len);
    if (hlen < 2 || file[8] != '{')
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: header does not start with a JSON object", what);
    json_error_t jerr;
    root = json_loadb((const char *)file + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: header is not valid JSON (at byte %d: %s)", what,
                         jerr.position, jerr.text);
    if (!json_is_object(root)) {
        s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: header is not a JSON object", what);
        goto fail;
    }
    size_t cap = json_object_size(root);
    if (cap > WB_MAX_TENSORS) {
        s = mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: more than %d tensors", what, WB_MAX_TENSORS);
        goto fail;
    }
    entries = calloc(cap ? cap : 1, sizeof *entries);
    order = calloc(cap ? cap : 1, sizeof *order);
    if (!entries || !order) {
        s = mcli_fail(err, MCLI_ERR_NOMEM, "%s: out of memory for %zu header entries", what, cap);
        goto fail;
    }
    uint64_t data_len = (uint64_t)(len - 8 - hlen);
    size_t n = 0;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(v)) {
                s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: __metadata__ is not an object", what);
                goto fail;
            }
            continue;
        }
        size_t klen = strlen(key);
        if (klen == 0 || klen > WB_MAX_NAME) {
            s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: tensor name empty or over %d bytes", what, WB_MAX_NAME);
            goto fail;
        }
        s = parse_entry(what, key, v, data_len, &entries[n], err);
        if (s != MCLI_OK)
            goto fail;
        order[n] = &entries[n];
        n++;
    }
    /* Ranges sorted by offset must not overlap, and unused bytes stay within alignment padding. */
    qsort(order, n, sizeof *order, cmp_begin);
    uint64_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const st_entry *e = order[i];
        if (e->begin < pos) {
            s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: tensor '%s' [%llu, %llu) overlaps '%s' (ends at %llu)",
                          what, e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                          order[i - 1]->name, (unsigned long long)pos);
            goto fail;
        }
        if (e->begin - pos > ST_MAX_GAP) {
            s = mcli_fail(err, MCLI_ERR_FORMAT,
                          "%s: %llu unused bytes before tensor '%s' (offsets are inconsistent)", what,
                          (unsigned long long)(e->begin - pos), e->name);
            goto fail;
        }
        if (e->end > pos)
            pos = e->end;
    }
    if (data_len - pos > ST_MAX_GAP) {
        s = mcli_fail(err, MCLI_ERR_FORMAT,
                      "%s: %llu bytes after the last tensor are not described by the header", what,
                      (unsigned long long)(data_len - pos));
        goto fail;
    }
    free(order);
    out->root = root;
    out->entries = entries;
    out->n = n;
    out->data_start = (size_t)(8 + hlen);
    return MCLI_OK;
fail:
    free(order);
    free(entries);
    json_decref(root);
    return s;
}

mcli_status st_load(mcli_weights *w, const char *path, mcli_err *err)
{
    const uint8_t *file;
    size_t len;
    mcli_status s = wb_map_file(w, path, &file, &len, err);
    if (s != MCLI_OK)
        return s;
    st_header h;
    s = st_parse_header(file, len, path, &h, err);
    if (s != MCLI_OK)
        return s;
    for (size_t i = 0; i < h.n; i++) {
        const st_entry *e = &h.entries[i];
        wb_tensor_desc d = {
            .name = e->name,
            .name_len = strlen(e->name),
            .dt = e->dt,
            .ndim = e->ndim,
            .shape = e->shape,
            .stride = NULL,
            .src = file + h.data_start + e->begin,
        };
        s = wb_add_tensor(w, &d, err);
        if (s != MCLI_OK) {
            mcli_err_prefix(err, "%s", path);
            break;
        }
    }
    st_header_free(&h);
    return s;
}
