/* weights.c - the weights set: tensor table, owned mappings/buffers, name lookup, and the
 * choice of file in a model directory. The format readers live in safetensors.c,
 * torch_zip.c and torch_legacy.c and fill the set through weights_internal.h.
 *
 * Which file weights_open() reads, first match wins:
 *   model.safetensors -> model.safetensors.index.json -> pytorch_model.bin
 *   -> pytorch_model.bin.index.json
 */
#include "formats/weights.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/weights_internal.h"
#include "util/log.h"

#define WB_MAX_SHARDS 4096
#define WB_POPULATE_MIN (1u << 20) /* converted buffers from this size on are mmap'ed pre-faulted */
#define WB_MAX_INDEX_BYTES (64u << 20)

const char *mcli_dtype_name(mcli_dtype dt)
{
    switch (dt) {
    case MCLI_DT_F32:
        return "F32";
    case MCLI_DT_F16:
        return "F16";
    case MCLI_DT_BF16:
        return "BF16";
    case MCLI_DT_F64:
        return "F64";
    case MCLI_DT_I64:
        return "I64";
    case MCLI_DT_I32:
        return "I32";
    case MCLI_DT_I16:
        return "I16";
    case MCLI_DT_I8:
        return "I8";
    case MCLI_DT_U8:
        return "U8";
    case MCLI_DT_BOOL:
        return "BOOL";
    }
    return "?";
}

size_t wb_dtype_size(mcli_dtype dt)
{
    switch (dt) {
    case MCLI_DT_F64:
    case MCLI_DT_I64:
        return 8;
    case MCLI_DT_F32:
    case MCLI_DT_I32:
        return 4;
    case MCLI_DT_F16:
    case MCLI_DT_BF16:
    case MCLI_DT_I16:
        return 2;
    case MCLI_DT_I8:
    case MCLI_DT_U8:
    case MCLI_DT_BOOL:
        return 1;
    }
    return 1;
}

mcli_status wb_new(mcli_weights **out, mcli_err *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory allocating a weights set");
    return MCLI_OK;
}

void weights_free(mcli_weights *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++)
        free((char *)w->tensors[i].name);
    for (size_t i = 0; i < w->n_maps; i++)
        if (w->maps[i].addr)
            munmap(w->maps[i].addr, w->maps[i].len);
    for (size_t i = 0; i < w->n_bufs; i++) {
        if (w->bufs[i].mapped)
            munmap(w->bufs[i].p, w->bufs[i].len);
        else
            free(w->bufs[i].p);
    }
    free(w->tensors);
    free(w->srcs);
    free(w->by_name);
    free(w->maps);
    free(w->bufs);
    free(w);
}

/* Grows *arr (elements of `size`) so that it holds at least need elements. */
static bool grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return true;
    size_t ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    size_t bytes;
    if (!wb_mul_ok(ncap, size, &bytes))
        return false;
    void *p = realloc(*arr, bytes);
    if (!p)
        return false;
    *arr = p;
    *cap = ncap;
    return true;
}

mcli_status wb_map_file(mcli_weights *w, const char *path, const uint8_t **data, size_t *len, mcli_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mcli_fail(err, errno == ENOENT ? MCLI_ERR_NOT_FOUND : MCLI_ERR_IO, "%s: cannot open: %s", path,
                         strerror(errno));
    struct stat st;
    void *addr = NULL;
    mcli_status s = MCLI_OK;
    if (fstat(fd, &st) != 0) {
        s = mcli_fail(err, MCLI_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: not a regular file", path);
        goto fail;
    }
    if (!grow((void **)&w->maps, &w->cap_maps, w->n_maps + 1, sizeof *w->maps)) {
        s = mcli_fail(err, MCLI_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    size_t n = (size_t)st.st_size;
    if (n > 0) {
        addr = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
        if (addr == MAP_FAILED) {
            s = mcli_fail(err, MCLI_ERR_IO, "%s: mmap of %zu bytes failed: %s", path, n, strerror(errno));
            goto fail;
        }
    }
    close(fd);
    w->maps[w->n_maps].addr = addr;
    w->maps[w->n_maps].len = n;
    w->n_maps++;
    *data = addr;
    *len = n;
    return MCLI_OK;
fail:
    close(fd);
    return s;
}

/* IEEE half -> float, exact for every input. The 15-bit exponent+mantissa moved into float
 * position and scaled by 2^112 (the bias difference 127 - 15) is exact for normal and subnormal
 * halves; infinities and NaNs keep their payload. */
static inline float f16_to_f32(uint16_t h)
{
    uint32_t em = h & 0x7fffu, bits = em << 13;
    float f;
    if (em >= 0x7c00u) {
        bits |= 0x7f800000u;
    } else {
        memcpy(&f, &bits, sizeof f);
        f *= 0x1p112f;
        memcpy(&bits, &f, sizeof bits);
    }
    bits |= (uint32_t)(h & 0x8000u) << 16;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline float bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* One element of dt at p (unaligned, little-endian host) as float. */
static float load_elem(mcli_dtype dt, const uint8_t *p)
{
    switch (dt) {
    case MCLI_DT_F32: {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    case MCLI_DT_F16: {
        uint16_t h;
        memcpy(&h, p, 2);
        return f16_to_f32(h);
    }
    case MCLI_DT_BF16: {
        uint16_t h;
        memcpy(&h, p, 2);
        return bf16_to_f32(h);
    }
    case MCLI_DT_F64: {
        double d;
        memcpy(&d, p, 8);
        return (float)d;
    }
    default:
        return 0.0f;
    }
}

static bool dtype_is_float(mcli_dtype dt)
{
    return dt == MCLI_DT_F32 || dt == MCLI_DT_F16 || dt == MCLI_DT_BF16 || dt == MCLI_DT_F64;
}

/* After a tensor was converted out of a file mapping, its source pages are dropped from the
 * process (MADV_DONTNEED on a private, never-written file mapping only forgets them; any later
 * read faults them back in from the file), so peak memory stays near one copy of the model. */
static void drop_source_pages(const mcli_weights *w, const uint8_t *src, size_t len)
{
    long ps = sysconf(_SC_PAGESIZE);
    size_t page = ps > 0 ? (size_t)ps : 4096;
    for (size_t m = 0; m < w->n_maps; m++) {
        const uint8_t *a = w->maps[m].addr;
        if (!a || src < a || src >= a + w->maps[m].len || len > (size_t)(a + w->maps[m].len - src))
            continue;
        uintptr_t lo = (uintptr_t)src & ~(uintptr_t)(page - 1);
        uintptr_t hi = ((uintptr_t)src + len + page - 1) & ~(uintptr_t)(page - 1);
        if (hi > (uintptr_t)(a + w->maps[m].len))
            hi = (uintptr_t)(a + w->maps[m].len);
        if (hi > lo)
            (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
        return;
    }
}

mcli_status wb_add_tensor(mcli_weights *w, const wb_tensor_desc *d, mcli_err *err)
{
    if (d->ndim < 0 || d->ndim > MCLI_MAX_DIMS)
        return mcli_fail(err, MCLI_ERR_UNSUPPORTED, "tensor '%.*s': %d dimensions (at most %d supported)",
                         (int)d->name_len, d->name, d->ndim, MCLI_MAX_DIMS);
    if (d->name_len == 0 || d->name_len > WB_MAX_NAME || memchr(d->name, '\0', d->name_len))
        return mcli_fail(err, MCLI_ERR_FORMAT, "tensor name is empty, over %d bytes or contains NUL",
                         WB_MAX_NAME);
    if (w->n >= WB_MAX_TENSORS)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "more than %d tensors", WB_MAX_TENSORS);
    size_t numel = 1;
    for (int i = 0; i < d->ndim; i++) {
        if (d->shape[i] < 0 || d->shape[i] > WB_MAX_DIM_VALUE ||
            !wb_mul_ok(numel, (size_t)d->shape[i], &numel))
            return mcli_fail(err, MCLI_ERR_FORMAT, "tensor '%.*s': bad shape", (int)d->name_len, d->name);
    }
    size_t cap_srcs = w->cap;
    if (!grow((void **)&w->srcs, &cap_srcs, w->n + 1, sizeof *w->srcs) ||
        !grow((void **)&w->tensors, &w->cap, w->n + 1, sizeof *w->tensors) ||
        !grow((void **)&w->bufs, &w->cap_bufs, w->n_bufs + 1, sizeof *w->bufs))
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory adding tensor '%.*s'", (int)d->name_len,
                         d->name);

    char *name = NULL;
    float *buf = NULL;
    name = malloc(d->name_len + 1);
    if (!name)
        goto nomem;
    memcpy(name, d->name, d->name_len);
    name[d->name_len] = '\0';

    bool contiguous = true;
    if (d->stride) {
        int64_t expect = 1;
        for (int i = d->ndim - 1; i >= 0; i--) {
            if (d->shape[i] != 1 && d->stride[i] != expect)
                contiguous = false;
            expect *= d->shape[i];
        }
        if (numel == 0)
            contiguous = true;
    }

    const float *data = NULL;
    if (dtype_is_float(d->dt)) {
        size_t bytes;
        if (!wb_mul_ok(numel, sizeof(float), &bytes))
            goto nomem;
        if (d->dt == MCLI_DT_F32 && contiguous && ((uintptr_t)d->src % _Alignof(float)) == 0) {
            data = (const float *)(const void *)d->src;
        } else if (w->meta_only) {
            data = NULL;
        } else {
            /* Big buffers come pre-faulted from the kernel: first-touch page faults one by one
             * cost more than the conversion itself on virtual machines. */
            bool mapped = bytes >= WB_POPULATE_MIN;
            if (mapped) {
                void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
                buf = p == MAP_FAILED ? NULL : p;
            } else {
                buf = malloc(bytes ? bytes : 1);
            }
            if (!buf)
                goto nomem;
            w->bufs[w->n_bufs].p = buf;
            w->bufs[w->n_bufs].len = bytes;
            w->bufs[w->n_bufs].mapped = mapped;
            size_t es = wb_dtype_size(d->dt);
            if (contiguous) {
                if (d->dt == MCLI_DT_F32) {
                    memcpy(buf, d->src, bytes);
                } else if (d->dt == MCLI_DT_F16) {
                    for (size_t i = 0; i < numel; i++) {
                        uint16_t h;
                        memcpy(&h, d->src + 2 * i, 2);
                        buf[i] = f16_to_f32(h);
                    }
                } else if (d->dt == MCLI_DT_BF16) {
                    for (size_t i = 0; i < numel; i++) {
                        uint16_t h;
                        memcpy(&h, d->src + 2 * i, 2);
                        buf[i] = bf16_to_f32(h);
                    }
                } else {
                    for (size_t i = 0; i < numel; i++)
                        buf[i] = load_elem(d->dt, d->src + i * es);
                }
            } else {
                /* Walk the view in row-major order with an index counter. */
                int64_t idx[MCLI_MAX_DIMS] = {0};
                int64_t off = 0;
                for (size_t i = 0; i < numel; i++) {
                    buf[i] = load_elem(d->dt, d->src + (size_t)off * es);
                    for (int k = d->ndim - 1; k >= 0; k--) {
                        idx[k]++;
                        off += d->stride[k];
                        if (idx[k] < d->shape[k])
                            break;
                        off -= d->stride[k] * d->shape[k];
                        idx[k] = 0;
                    }
                }
            }
            data = buf;
            w->n_bufs++;
            buf = NULL; /* owned by w now */
            if (contiguous && numel > 0)
                drop_source_pages(w, d->src, numel * wb_dtype_size(d->dt));
        }
        w->bytes += bytes;
    }
    w->srcs[w->n].p = d->src;
    w->srcs[w->n].contiguous = contiguous;
    mcli_tensor *t = &w->tensors[w->n++];
    memset(t, 0, sizeof *t);
    t->name = name;
    t->file_dtype = d->dt;
    t->ndim = d->ndim;
    for (int i = 0; i < d->ndim; i++)
        t->shape[i] = d->shape[i];
    t->numel = numel;
    t->data = data;
    return MCLI_OK;
nomem:
    free(name);
    free(buf);
    return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory converting tensor '%.*s'", (int)d->name_len,
                     d->name);
}

static int cmp_by_name(const void *a, const void *b)
{
    const mcli_tensor *ta = *(const mcli_tensor *const *)a, *tb = *(const mcli_tensor *const *)b;
    return strcmp(ta->name, tb->name);
}

/* Unmaps files no tensor points into (every tensor converted, e.g. F16 files or unaligned
 * legacy storages), so their pages do not stay resident next to the converted copies. */
static void release_unused_maps(mcli_weights *w)
{
    for (size_t m = 0; m < w->n_maps; m++) {
        const uint8_t *a = w->maps[m].addr;
        if (!a)
            continue;
        bool used = false;
        for (size_t i = 0; i < w->n && !used; i++) {
            const uint8_t *p = (const uint8_t *)w->tensors[i].data;
            used = p && p >= a && p < a + w->maps[m].len;
        }
        if (!used) {
            munmap(w->maps[m].addr, w->maps[m].len);
            w->maps[m].addr = NULL;
            w->maps[m].len = 0;
        }
    }
}

mcli_status wb_finish(mcli_weights *w, mcli_err *err)
{
    release_unused_maps(w);
    free(w->by_name);
    w->by_name = malloc((w->n ? w->n : 1) * sizeof *w->by_name);
    if (!w->by_name)
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory indexing %zu tensors", w->n);
    for (size_t i = 0; i < w->n; i++)
        w->by_name[i] = &w->tensors[i];
    qsort(w->by_name, w->n, sizeof *w->by_name, cmp_by_name);
    for (size_t i = 1; i < w->n; i++) {
        if (strcmp(w->by_name[i - 1]->name, w->by_name[i]->name) == 0)
            return mcli_fail(err, MCLI_ERR_FORMAT, "tensor '%s' appears twice", w->by_name[i]->name);
    }
    return MCLI_OK;
}

mcli_status wb_absorb(mcli_weights *dst, mcli_weights *src, mcli_err *err)
{
    size_t cap_srcs = dst->cap;
    if (!grow((void **)&dst->srcs, &cap_srcs, dst->n + src->n, sizeof *dst->srcs) ||
        !grow((void **)&dst->tensors, &dst->cap, dst->n + src->n, sizeof *dst->tensors) ||
        !grow((void **)&dst->maps, &dst->cap_maps, dst->n_maps + src->n_maps, sizeof *dst->maps) ||
        !grow((void **)&dst->bufs, &dst->cap_bufs, dst->n_bufs + src->n_bufs, sizeof *dst->bufs)) {
        weights_free(src);
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory merging shards");
    }
    if (dst->n + src->n > WB_MAX_TENSORS) {
        weights_free(src);
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "more than %d tensors", WB_MAX_TENSORS);
    }
    if (src->n) {
        memcpy(dst->tensors + dst->n, src->tensors, src->n * sizeof *src->tensors);
        memcpy(dst->srcs + dst->n, src->srcs, src->n * sizeof *src->srcs);
    }
    if (src->n_maps)
        memcpy(dst->maps + dst->n_maps, src->maps, src->n_maps * sizeof *src->maps);
    if (src->n_bufs)
        memcpy(dst->bufs + dst->n_bufs, src->bufs, src->n_bufs * sizeof *src->bufs);
    dst->n += src->n;
    dst->n_maps += src->n_maps;
    dst->n_bufs += src->n_bufs;
    dst->bytes += src->bytes;
    src->n = src->n_maps = src->n_bufs = 0;
    weights_free(src);
    return MCLI_OK;
}

size_t weights_count(const mcli_weights *w)
{
    return w ? w->n : 0;
}

const mcli_tensor *weights_at(const mcli_weights *w, size_t i)
{
    return (w && i < w->n) ? &w->tensors[i] : NULL;
}

const mcli_tensor *weights_find(const mcli_weights *w, const char *name)
{
    if (!w || !name || !w->by_name)
        return NULL;
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const mcli_tensor *t = w->by_name[mid];
        int c = strcmp(t->name, name);
        if (c == 0)
            return t;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t weights_bytes(const mcli_weights *w)
{
    return w ? w->bytes : 0;
}

bool weights_same_source(const mcli_weights *w, const mcli_tensor *a, const mcli_tensor *b)
{
    if (!w || !a || !b || a < w->tensors || a >= w->tensors + w->n || b < w->tensors ||
        b >= w->tensors + w->n)
        return false;
    const struct wb_src *sa = &w->srcs[a - w->tensors], *sb = &w->srcs[b - w->tensors];
    if (a == b)
        return true;
    if (!sa->p || sa->p != sb->p || !sa->contiguous || !sb->contiguous || a->file_dtype != b->file_dtype ||
        a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

const char *weights_format(const mcli_weights *w)
{
    return w ? w->format : "";
}

/* Tries `prefix.name` (prefix may be NULL/"" -> just name). */
static const mcli_tensor *find_joined(const mcli_weights *w, const char *prefix, const char *name)
{
    char buf[WB_MAX_NAME + 1];
    int n = (prefix && *prefix) ? snprintf(buf, sizeof buf, "%s.%s", prefix, name)
                                : snprintf(buf, sizeof buf, "%s", name);
    if (n < 0 || (size_t)n >= sizeof buf)
        return NULL;
    return weights_find(w, buf);
}

/* True if the component before the final ".weight"/".bias" names a layer norm. */
static bool is_norm_param(const char *name, size_t stem_len)
{
    size_t start = stem_len;
    while (start > 0 && name[start - 1] != '.')
        start--;
    for (size_t i = start; i + 4 <= stem_len; i++)
        if (strncasecmp(name + i, "norm", 4) == 0)
            return true;
    return false;
}

const mcli_tensor *weights_lookup(const mcli_weights *w, const char *arch_prefix, const char *canonical)
{
    if (!w || !canonical)
        return NULL;
    const mcli_tensor *t = find_joined(w, NULL, canonical);
    if (!t && arch_prefix && *arch_prefix)
        t = find_joined(w, arch_prefix, canonical);
    if (t)
        return t;
    /* Old checkpoints (pytorch-pretrained-bert, early transformers) call layer-norm
     * parameters gamma/beta instead of weight/bias. */
    size_t len = strlen(canonical);
    const char *alt_suffix = NULL;
    size_t stem = 0;
    if (len > 7 && strcmp(canonical + len - 7, ".weight") == 0) {
        stem = len - 7;
        alt_suffix = ".gamma";
    } else if (len > 5 && strcmp(canonical + len - 5, ".bias") == 0) {
        stem = len - 5;
        alt_suffix = ".beta";
    }
    if (!alt_suffix || !is_norm_param(canonical, stem))
        return NULL;
    char alt[WB_MAX_NAME + 1];
    int n = snprintf(alt, sizeof alt, "%.*s%s", (int)stem, canonical, alt_suffix);
    if (n < 0 || (size_t)n >= sizeof alt)
        return NULL;
    t = find_joined(w, NULL, alt);
    if (!t && arch_prefix && *arch_prefix)
        t = find_joined(w, arch_prefix, alt);
    return t;
}

/* ---- choosing and opening files ---- */

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Reads the first 9 bytes of path (fewer if the file is shorter). */
static mcli_status read_head(const char *path, uint8_t head[9], size_t *got, mcli_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return mcli_fail(err, errno == ENOENT ? MCLI_ERR_NOT_FOUND : MCLI_ERR_IO, "%s: cannot open: %s", path,
                         strerror(errno));
    *got = fread(head, 1, 9, f);
    fclose(f);
    return MCLI_OK;
}

/* Loads one file into w, picking the reader from its first bytes. */
static mcli_status load_one(mcli_weights *w, const char *path, mcli_err *err)
{
    uint8_t head[9];
    size_t got = 0;
    mcli_status s = read_head(path, head, &got, err);
    if (s != MCLI_OK)
        return s;
    if (got >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4) {
        s = torch_zip_load(w, path, err);
        if (s == MCLI_OK)
            snprintf(w->format, sizeof w->format, "pytorch zip");
    } else if (got >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5) {
        s = torch_legacy_load(w, path, err);
        if (s == MCLI_OK)
            snprintf(w->format, sizeof w->format, "pytorch legacy");
    } else if (has_suffix(path, ".safetensors") || (got == 9 && head[8] == '{')) {
        s = st_load(w, path, err);
        if (s == MCLI_OK)
            snprintf(w->format, sizeof w->format, "safetensors");
    } else {
        char first[3 * 9 + 1] = "";
        for (size_t i = 0; i < got && i < 4; i++)
            snprintf(first + 3 * i, sizeof first - 3 * i, "%02x ", head[i]);
        s = mcli_fail(
            err, MCLI_ERR_FORMAT,
            "%s: not a safetensors file nor a PyTorch checkpoint (zip or legacy pickle); first bytes: "
            "%s(%zu-byte read)",
            path, got ? first : "none ", got);
    }
    return s;
}

static mcli_status open_file(const char *path, bool meta, mcli_weights **out, mcli_err *err)
{
    *out = NULL;
    mcli_weights *w = NULL;
    mcli_status s = wb_new(&w, err);
    if (s != MCLI_OK)
        return s;
    w->meta_only = meta;
    s = load_one(w, path, err);
    if (s == MCLI_OK)
        s = wb_finish(w, err);
    if (s != MCLI_OK)
        goto fail;
    *out = w;
    return MCLI_OK;
fail:
    weights_free(w);
    return s;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Opens a sharded checkpoint from its index.json: every shard named in weight_map is loaded
 * once; each tensor in weight_map must be in the shard it names. */
static mcli_status open_sharded(const char *dir, const char *index_name, bool meta, mcli_weights **out,
                                mcli_err *err)
{
    char path[4096];
    mcli_weights *w = NULL;
    json_t *root = NULL;
    const char **shards = NULL;
    size_t n_shards = 0;
    mcli_status s;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, index_name) >= sizeof path)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "%s: path too long", dir);
    struct stat st;
    if (stat(path, &st) != 0)
        return mcli_fail(err, MCLI_ERR_NOT_FOUND, "%s: cannot stat: %s", path, strerror(errno));
    if ((uint64_t)st.st_size > WB_MAX_INDEX_BYTES)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: %lld bytes, over the %u MB limit for an index", path,
                         (long long)st.st_size, WB_MAX_INDEX_BYTES >> 20);
    json_error_t jerr;
    root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: invalid JSON at line %d: %s", path, jerr.line, jerr.text);
        goto fail;
    }
    json_t *map = json_object_get(root, "weight_map");
    if (!json_is_object(map) || json_object_size(map) == 0) {
        s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: missing or empty \"weight_map\" object", path);
        goto fail;
    }
    if (json_object_size(map) > WB_MAX_TENSORS) {
        s = mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: more than %d tensors", path, WB_MAX_TENSORS);
        goto fail;
    }
    shards = calloc(json_object_size(map), sizeof *shards);
    if (!shards) {
        s = mcli_fail(err, MCLI_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    const char *key;
    json_t *val;
    json_object_foreach(map, key, val)
    {
        const char *file = json_string_value(val);
        if (!file || !*file || strchr(file, '/') || strchr(file, '\\') || strstr(file, "..") ||
            strlen(file) > 255) {
            s = mcli_fail(err, MCLI_ERR_FORMAT,
                          "%s: shard for '%s' must be a plain file name (no '/', '\\' or '..')", path, key);
            goto fail;
        }
        shards[n_shards++] = file;
    }
    qsort(shards, n_shards, sizeof *shards, cmp_str);
    size_t uniq = 0;
    for (size_t i = 0; i < n_shards; i++)
        if (uniq == 0 || strcmp(shards[uniq - 1], shards[i]) != 0)
            shards[uniq++] = shards[i];
    n_shards = uniq;
    if (n_shards > WB_MAX_SHARDS) {
        s = mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: %zu shards (limit %d)", path, n_shards, WB_MAX_SHARDS);
        goto fail;
    }
    s = wb_new(&w, err);
    if (s != MCLI_OK)
        goto fail;
    w->meta_only = meta;
    for (size_t i = 0; i < n_shards; i++) {
        char spath[4096];
        if ((size_t)snprintf(spath, sizeof spath, "%s/%s", dir, shards[i]) >= sizeof spath) {
            s = mcli_fail(err, MCLI_ERR_INVALID_ARG, "%s: shard path too long", dir);
            goto fail;
        }
        mcli_weights *part = NULL;
        s = wb_new(&part, err);
        if (s != MCLI_OK)
            goto fail;
        part->meta_only = meta;
        s = load_one(part, spath, err);
        if (s != MCLI_OK) {
            weights_free(part);
            mcli_err_prefix(err, "shard %zu of %zu", i + 1, n_shards);
            goto fail;
        }
        /* Every tensor in this shard must be listed for this shard. */
        for (size_t k = 0; k < part->n; k++) {
            const char *want = json_string_value(json_object_get(map, part->tensors[k].name));
            if (!want || strcmp(want, shards[i]) != 0) {
                s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: tensor '%s' is in shard %s but the index %s%s", path,
                              part->tensors[k].name, shards[i], want ? "names shard " : "does not list it",
                              want ? want : "");
                weights_free(part);
                goto fail;
            }
        }
        s = wb_absorb(w, part, err);
        if (s != MCLI_OK)
            goto fail;
    }
    s = wb_finish(w, err);
    if (s != MCLI_OK)
        goto fail;
    json_object_foreach(map, key, val)
    {
        if (!weights_find(w, key)) {
            s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: tensor '%s' is listed for shard %s but missing from it",
                          path, key, json_string_value(val));
            goto fail;
        }
    }
    const char *base = has_suffix(index_name, ".bin.index.json") ? "pytorch" : "safetensors";
    snprintf(w->format, sizeof w->format, "%s (%zu shard%s)", base, n_shards, n_shards == 1 ? "" : "s");
    free(shards);
    json_decref(root);
    *out = w;
    return MCLI_OK;
fail:
    free(shards);
    json_decref(root);
    weights_free(w);
    return s;
}

mcli_status weights_open_file(const char *path, mcli_weights **out, mcli_err *err)
{
    return open_file(path, false, out, err);
}

static mcli_status open_dir(const char *dir, bool meta, mcli_weights **out, mcli_err *err)
{
    static const char *const candidates[] = {"model.safetensors", "model.safetensors.index.json",
                                             "pytorch_model.bin", "pytorch_model.bin.index.json"};
    *out = NULL;
    struct stat st;
    if (stat(dir, &st) != 0)
        return mcli_fail(err, MCLI_ERR_NOT_FOUND, "%s: no such model directory", dir);
    if (!S_ISDIR(st.st_mode))
        return open_file(dir, meta, out, err);
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++) {
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, candidates[i]) >= sizeof path)
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "%s: path too long", dir);
        if (!file_exists(path))
            continue;
        mcli_status s = has_suffix(candidates[i], ".index.json")
                            ? open_sharded(dir, candidates[i], meta, out, err)
                            : open_file(path, meta, out, err);
        if (s != MCLI_OK)
            return s;
        LOG_DEBUG("%s: %zu tensors, %zu bytes (%s)", path, (*out)->n, (*out)->bytes, (*out)->format);
        return MCLI_OK;
    }
    static const char *const foreign[] = {"tf_model.h5", "flax_model.msgpack", "model.onnx", "rust_model.ot"};
    const char *hint = "";
    for (size_t i = 0; i < sizeof foreign / sizeof *foreign; i++) {
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, foreign[i]) < sizeof path &&
            file_exists(path)) {
            hint = "; only PyTorch and safetensors weights are read (this directory has other formats only)";
            break;
        }
    }
    return mcli_fail(err, MCLI_ERR_NOT_FOUND,
                     "%s: no weights found (looked for model.safetensors, model.safetensors.index.json, "
                     "pytorch_model.bin, pytorch_model.bin.index.json)%s",
                     dir, hint);
}

mcli_status weights_open(const char *dir, mcli_weights **out, mcli_err *err)
{
    return open_dir(dir, false, out, err);
}

mcli_status weights_open_meta(const char *dir, mcli_weights **out, mcli_err *err)
{
    return open_dir(dir, true, out, err);
}
