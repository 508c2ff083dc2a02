/* torch_pickle.c - the restricted unpickler (see torch_pickle.h for the contract).
 *
 * One pass over the opcodes with an explicit value stack. Values are small tagged nodes
 * allocated from a per-parse list (freed all at once), so shared references through the memo
 * and even cycles (a list appended to itself) are harmless: nothing ever walks a value tree
 * recursively. Strings point into the input, which outlives the parse.
 */
#include "formats/torch_pickle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/weights_internal.h"
#include "util/log.h"

#define TP_MAX_STACK (1u << 20) /* values on the stack */
#define TP_MAX_MARKS 4096       /* open MARKs */
#define TP_MAX_MEMO (1u << 22)  /* memo slots */
#define TP_MAX_NODES (1u << 21) /* values created by one pickle (bert-large needs ~10k) */
#define TP_MAX_STR (1u << 20)   /* bytes in one string */
#define TP_MAX_GLOBAL 128       /* bytes of a GLOBAL module or name */

typedef enum {
    V_NONE,
    V_BOOL,
    V_INT,
    V_BIGINT,
    V_FLOAT,
    V_STR,
    V_TUPLE,
    V_LIST,
    V_DICT,
    V_GLOBAL,
    V_STORAGE,
    V_TENSOR
} vkind;

/* The globals a torch checkpoint may name. */
typedef enum { G_ORDERED_DICT, G_REBUILD_TENSOR_V2, G_REBUILD_TENSOR, G_REBUILD_PARAMETER, G_STORAGE } gkind;

typedef struct val val;
struct val {
    val *next_alloc;
    vkind kind;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s; /* V_STR, V_BIGINT (raw bytes) */
        struct {
            val **items;
            size_t n, cap;
        } seq; /* tuple, list; dict as key,value pairs */
        struct {
            gkind g;
            mcli_dtype dt;
        } gl;
        struct {
            size_t index;
            uint64_t offset, size;
        } st;         /* storage (or legacy view of one) */
        tp_tensor *t; /* V_TENSOR, owned by the node */
    } u;
};

typedef struct {
    const char *what;
    const uint8_t *data;
    size_t len, pos;
    val **stack;
    size_t sp, stack_cap;
    size_t marks[TP_MAX_MARKS];
    size_t n_marks;
    val **memo;
    size_t memo_cap, memo_len;
    val *nodes;
    size_t n_nodes;
    tp_state_dict *sd; /* storage table being filled; NULL: persistent ids refused */
    size_t *st_hash;   /* open addressing over sd->storages, index + 1, 0 = empty */
    size_t st_hash_cap;
    size_t st_cap;
} unpickler;

static const struct {
    const char *module, *name;
    gkind g;
    mcli_dtype dt;
} allowed_globals[] = {
    {"collections", "OrderedDict", G_ORDERED_DICT, MCLI_DT_F32},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR_V2, MCLI_DT_F32},
    {"torch._utils", "_rebuild_tensor", G_REBUILD_TENSOR, MCLI_DT_F32},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAMETER, MCLI_DT_F32},
    {"torch", "FloatStorage", G_STORAGE, MCLI_DT_F32},
    {"torch", "HalfStorage", G_STORAGE, MCLI_DT_F16},
    {"torch", "BFloat16Storage", G_STORAGE, MCLI_DT_BF16},
    {"torch", "DoubleStorage", G_STORAGE, MCLI_DT_F64},
    {"torch", "LongStorage", G_STORAGE, MCLI_DT_I64},
    {"torch", "IntStorage", G_STORAGE, MCLI_DT_I32},
    {"torch", "ShortStorage", G_STORAGE, MCLI_DT_I16},
    {"torch", "CharStorage", G_STORAGE, MCLI_DT_I8},
    {"torch", "ByteStorage", G_STORAGE, MCLI_DT_U8},
    {"torch", "BoolStorage", G_STORAGE, MCLI_DT_BOOL},
};

static mcli_status bad(unpickler *u, mcli_err *err, const char *fmt, ...) MCLI_PRINTF(3, 4);
static mcli_status bad(unpickler *u, mcli_err *err, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mcli_fail(err, MCLI_ERR_FORMAT, "%s: pickle byte %zu: %s", u->what, u->pos, msg);
}

static void free_nodes(unpickler *u)
{
    val *v = u->nodes;
    while (v) {
        val *next = v->next_alloc;
        if (v->kind == V_TUPLE || v->kind == V_LIST || v->kind == V_DICT)
            free(v->u.seq.items);
        if (v->kind == V_TENSOR)
            free(v->u.t);
        free(v);
        v = next;
    }
    u->nodes = NULL;
}

static void unpickler_free(unpickler *u)
{
    free_nodes(u);
    free(u->stack);
    free(u->memo);
    free(u->st_hash);
}

static val *new_val(unpickler *u, vkind k)
{
    if (u->n_nodes >= TP_MAX_NODES)
        return NULL;
    val *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->kind = k;
    v->next_alloc = u->nodes;
    u->nodes = v;
    u->n_nodes++;
    return v;
}

static bool seq_push(val *s, val *item)
{
    if (s->u.seq.n == s->u.seq.cap) {
        size_t ncap = s->u.seq.cap ? s->u.seq.cap * 2 : 4;
        val **p = realloc(s->u.seq.items, ncap * sizeof *p);
        if (!p)
            return false;
        s->u.seq.items = p;
        s->u.seq.cap = ncap;
    }
    s->u.seq.items[s->u.seq.n++] = item;
    return true;
}

static mcli_status push(unpickler *u, val *v, mcli_err *err)
{
    if (!v)
        return u->n_nodes >= TP_MAX_NODES
                   ? mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: pickle creates over %u objects", u->what,
                               TP_MAX_NODES)
                   : mcli_fail(err, MCLI_ERR_NOMEM, "%s: out of memory unpickling", u->what);
    if (u->sp == u->stack_cap) {
        if (u->stack_cap >= TP_MAX_STACK)
            return mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: pickle stack over %u entries", u->what,
                             TP_MAX_STACK);
        size_t ncap = u->stack_cap ? u->stack_cap * 2 : 64;
        val **p = realloc(u->stack, ncap * sizeof *p);
        if (!p)
            return mcli_fail(err, MCLI_ERR_NOMEM, "%s: out of memory unpickling", u->what);
        u->stack = p;
        u->stack_cap = ncap;
    }
    u->stack[u->sp++] = v;
    return MCLI_OK;
}

/* Pops one value; values above the innermost MARK only. */
static val *pop(unpickler *u)
{
    size_t floor = u->n_marks ? u->marks[u->n_marks - 1] : 0;
    if (u->sp <= floor)
        return NULL;
    return u->stack[--u->sp];
}

static val *top(unpickler *u)
{
    size_t floor = u->n_marks ? u->marks[u->n_marks - 1] : 0;
    return u->sp > floor ? u->stack[u->sp - 1] : NULL;
}

/* Pops the innermost MARK; *from = index of the first value above it. */
static bool pop_mark(unpickler *u, size_t *from)
{
    if (!u->n_marks)
        return false;
    *from = u->marks[--u->n_marks];
    return true;
}

static bool need(unpickler *u, size_t n)
{
    return u->len - u->pos >= n;
}

static uint64_t rd_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static mcli_status memo_put(unpickler *u, size_t idx, mcli_err *err)
{
    val *v = top(u);
    if (!v)
        return bad(u, err, "memo store with an empty stack");
    if (idx >= TP_MAX_MEMO)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: pickle memo index %zu over the limit %u", u->what, idx,
                         TP_MAX_MEMO);
    /* Python's pickler numbers memo entries 0, 1, 2, ...; an index that skips ahead would only
     * make us allocate a large sparse memo. */
    if (idx > u->memo_len)
        return bad(u, err, "memo index %zu skips ahead of the %zu entries stored", idx, u->memo_len);
    if (idx >= u->memo_cap) {
        size_t ncap = u->memo_cap ? u->memo_cap : 64;
        while (ncap <= idx)
            ncap *= 2;
        val **p = realloc(u->memo, ncap * sizeof *p);
        if (!p)
            return mcli_fail(err, MCLI_ERR_NOMEM, "%s: out of memory unpickling", u->what);
        memset(p + u->memo_cap, 0, (ncap - u->memo_cap) * sizeof *p);
        u->memo = p;
        u->memo_cap = ncap;
    }
    u->memo[idx] = v;
    if (idx >= u->memo_len)
        u->memo_len = idx + 1;
    return MCLI_OK;
}

static mcli_status memo_get(unpickler *u, size_t idx, mcli_err *err)
{
    if (idx >= u->memo_cap || !u->memo[idx]) {
        char d[32];
        snprintf(d, sizeof d, "%zu", idx);
        return bad(u, err, "memo index %s was never stored", d);
    }
    return push(u, u->memo[idx], err);
}

static mcli_status push_str(unpickler *u, size_t n, mcli_err *err)
{
    if (n > TP_MAX_STR)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: pickle string of %zu bytes over the limit", u->what,
                         n);
    if (!need(u, n))
        return bad(u, err, "string runs past the end of the data (truncated file?)");
    val *v = new_val(u, V_STR);
    if (v) {
        v->u.s.p = (const char *)u->data + u->pos;
        v->u.s.n = n;
    }
    u->pos += n;
    return push(u, v, err);
}

static mcli_status push_int(unpickler *u, int64_t x, mcli_err *err)
{
    val *v = new_val(u, V_INT);
    if (v)
        v->u.i = x;
    return push(u, v, err);
}

static mcli_status resolve_global(unpickler *u, const char *mod, size_t ml, const char *name, size_t nl,
                                  mcli_err *err)
{
    for (size_t i = 0; i < sizeof allowed_globals / sizeof *allowed_globals; i++) {
        if (strlen(allowed_globals[i].module) == ml && memcmp(allowed_globals[i].module, mod, ml) == 0 &&
            strlen(allowed_globals[i].name) == nl && memcmp(allowed_globals[i].name, name, nl) == 0) {
            val *v = new_val(u, V_GLOBAL);
            if (v) {
                v->u.gl.g = allowed_globals[i].g;
                v->u.gl.dt = allowed_globals[i].dt;
            }
            return push(u, v, err);
        }
    }
    /* Print the refused name safely: printable ASCII only. */
    char shown[2 * TP_MAX_GLOBAL + 2];
    size_t k = 0;
    for (size_t i = 0; i < ml && k < TP_MAX_GLOBAL; i++)
        shown[k++] = (mod[i] >= 0x20 && mod[i] < 0x7f) ? mod[i] : '?';
    shown[k++] = '.';
    for (size_t i = 0; i < nl && k < sizeof shown - 1; i++)
        shown[k++] = (name[i] >= 0x20 && name[i] < 0x7f) ? name[i] : '?';
    shown[k] = '\0';
    return mcli_fail(err, MCLI_ERR_FORMAT,
                     "%s: pickle byte %zu: refusing global '%s' (only torch tensor/storage rebuilders and "
                     "collections.OrderedDict are allowed; this file may be malicious)",
                     u->what, u->pos, shown);
}

/* Reads a '\n'-terminated line of at most TP_MAX_GLOBAL bytes. */
static bool read_line(unpickler *u, const char **p, size_t *n)
{
    const uint8_t *start = u->data + u->pos;
    size_t avail = u->len - u->pos;
    size_t lim = avail < TP_MAX_GLOBAL + 1 ? avail : TP_MAX_GLOBAL + 1;
    const uint8_t *nl = memchr(start, '\n', lim);
    if (!nl)
        return false;
    *p = (const char *)start;
    *n = (size_t)(nl - start);
    u->pos += *n + 1;
    return true;
}

/* ---- storage table ---- */

static uint64_t hash_key(const char *k)
{
    uint64_t h = 0xCBF29CE484222325ULL;
    for (; *k; k++)
        h = (h ^ (uint8_t)*k) * 0x100000001B3ULL;
    return h;
}

static int cmp_key_index(const void *a, const void *b)
{
    const tp_storage *const *x = a, *const *y = b;
    return strcmp((*x)->key, (*y)->key);
}

mcli_status tp_index_storages(const tp_state_dict *sd, const tp_storage ***order, mcli_err *err)
{
    *order = malloc((sd->n_storages ? sd->n_storages : 1) * sizeof **order);
    if (!*order)
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory indexing %zu storages", sd->n_storages);
    for (size_t i = 0; i < sd->n_storages; i++)
        (*order)[i] = &sd->storages[i];
    qsort(*order, sd->n_storages, sizeof **order, cmp_key_index);
    return MCLI_OK;
}

long tp_lookup_storage(const tp_state_dict *sd, const tp_storage *const *order, const char *key)
{
    size_t lo = 0, hi = sd->n_storages;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(order[mid]->key, key);
        if (c == 0)
            return (long)(order[mid] - sd->storages);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static mcli_status rehash(unpickler *u, mcli_err *err)
{
    size_t ncap = u->st_hash_cap ? u->st_hash_cap * 2 : 256;
    size_t *h = calloc(ncap, sizeof *h);
    if (!h)
        return mcli_fail(err, MCLI_ERR_NOMEM, "%s: out of memory", u->what);
    for (size_t i = 0; i < u->sd->n_storages; i++) {
        size_t j = hash_key(u->sd->storages[i].key) & (ncap - 1);
        while (h[j])
            j = (j + 1) & (ncap - 1);
        h[j] = i + 1;
    }
    free(u->st_hash);
    u->st_hash = h;
    u->st_hash_cap = ncap;
    return MCLI_OK;
}

/* Finds or adds storage `key`; a key seen before must agree on dtype and size. */
static mcli_status storage_ref(unpickler *u, const char *key, mcli_dtype dt, uint64_t numel, size_t *index,
                               mcli_err *err)
{
    mcli_status s;
    if ((u->sd->n_storages + 1) * 2 > u->st_hash_cap && (s = rehash(u, err)) != MCLI_OK)
        return s;
    size_t j = hash_key(key) & (u->st_hash_cap - 1);
    while (u->st_hash[j]) {
        tp_storage *st = &u->sd->storages[u->st_hash[j] - 1];
        if (strcmp(st->key, key) == 0) {
            if (st->dt != dt || st->numel != numel)
                return bad(u, err, "storage '%s' is declared twice with different types or sizes", key);
            *index = u->st_hash[j] - 1;
            return MCLI_OK;
        }
        j = (j + 1) & (u->st_hash_cap - 1);
    }
    if (u->sd->n_storages >= TP_MAX_STORAGES)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: more than %d storages", u->what, TP_MAX_STORAGES);
    if (u->sd->n_storages == u->st_cap) {
        size_t ncap = u->st_cap ? u->st_cap * 2 : 64;
        tp_storage *p = realloc(u->sd->storages, ncap * sizeof *p);
        if (!p)
            return mcli_fail(err, MCLI_ERR_NOMEM, "%s: out of memory", u->what);
        u->sd->storages = p;
        u->st_cap = ncap;
    }
    tp_storage *st = &u->sd->storages[u->sd->n_storages];
    memset(st, 0, sizeof *st);
    snprintf(st->key, sizeof st->key, "%s", key);
    st->dt = dt;
    st->numel = numel;
    *index = u->sd->n_storages++;
    u->st_hash[j] = *index + 1;
    return MCLI_OK;
}

static bool str_is(const val *v, const char *s)
{
    return v && v->kind == V_STR && v->u.s.n == strlen(s) && memcmp(v->u.s.p, s, v->u.s.n) == 0;
}

static bool as_int(const val *v, int64_t *out)
{
    if (!v)
        return false;
    if (v->kind == V_INT) {
        *out = v->u.i;
        return true;
    }
    if (v->kind == V_BOOL) {
        *out = v->u.b;
        return true;
    }
    return false;
}

/* Copies a storage key: 1..TP_MAX_KEY bytes of [A-Za-z0-9_.-] (it becomes a zip entry name). */
static bool copy_key(const val *v, char *out)
{
    if (!v || v->kind != V_STR || v->u.s.n == 0 || v->u.s.n > TP_MAX_KEY)
        return false;
    for (size_t i = 0; i < v->u.s.n; i++) {
        char c = v->u.s.p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              c == '-' || c == '.'))
            return false;
    }
    if (v->u.s.n == 2 && v->u.s.p[0] == '.' && v->u.s.p[1] == '.')
        return false;
    memcpy(out, v->u.s.p, v->u.s.n);
    out[v->u.s.n] = '\0';
    return true;
}

/* BINPERSID: ('storage', StorageType, key, location, numel[, view_metadata]). */
static mcli_status persistent_load(unpickler *u, val *pid, mcli_err *err)
{
    if (!u->sd)
        return bad(u, err, "persistent id outside the tensor pickle");
    if (!pid || pid->kind != V_TUPLE || (pid->u.seq.n != 5 && pid->u.seq.n != 6) ||
        !str_is(pid->u.seq.items[0], "storage"))
        return bad(u, err, "persistent id is not a ('storage', type, key, location, size) tuple");
    val **it = pid->u.seq.items;
    char key[TP_MAX_KEY + 1];
    int64_t numel;
    if (it[1]->kind != V_GLOBAL || it[1]->u.gl.g != G_STORAGE)
        return bad(u, err, "persistent id names no torch storage type");
    if (!copy_key(it[2], key))
        return bad(u, err, "storage key is empty, too long or has characters other than [A-Za-z0-9_.-]");
    if (it[3]->kind != V_STR || !as_int(it[4], &numel) || numel < 0 || (uint64_t)numel > ((uint64_t)1 << 48))
        return bad(u, err, "storage '%s' has a bad location or size", key);
    size_t index = 0;
    mcli_status s = storage_ref(u, key, it[1]->u.gl.dt, (uint64_t)numel, &index, err);
    if (s != MCLI_OK)
        return s;
    val *v = new_val(u, V_STORAGE);
    if (v) {
        v->u.st.index = index;
        v->u.st.offset = 0;
        v->u.st.size = (uint64_t)numel;
    }
    if (pid->u.seq.n == 6 && it[5]->kind != V_NONE) {
        /* Very old torch: a view (view_key, offset, size) of the root storage. */
        val *vm = it[5];
        int64_t off, size;
        if (vm->kind != V_TUPLE || vm->u.seq.n != 3 || !as_int(vm->u.seq.items[1], &off) ||
            !as_int(vm->u.seq.items[2], &size) || off < 0 || size < 0 || (uint64_t)off > (uint64_t)numel ||
            (uint64_t)size > (uint64_t)numel - (uint64_t)off)
            return bad(u, err, "storage '%s' has a bad view (offset, size)", key);
        if (v) {
            v->u.st.offset = (uint64_t)off;
            v->u.st.size = (uint64_t)size;
        }
    }
    return push(u, v, err);
}

/* Reads a tuple of ndim ints into out. */
static bool int_tuple(const val *v, int64_t *out, int *ndim)
{
    if (!v || (v->kind != V_TUPLE && v->kind != V_LIST) || v->u.seq.n > MCLI_MAX_DIMS)
        return false;
    for (size_t i = 0; i < v->u.seq.n; i++)
        if (!as_int(v->u.seq.items[i], &out[i]))
            return false;
    *ndim = (int)v->u.seq.n;
    return true;
}

/* REDUCE on an allowed global. */
static mcli_status reduce(unpickler *u, val *fn, val *args, mcli_err *err)
{
    if (!fn || fn->kind != V_GLOBAL)
        return bad(u, err, "REDUCE on something that is not an allowed global");
    if (!args || args->kind != V_TUPLE)
        return bad(u, err, "REDUCE arguments are not a tuple");
    size_t n = args->u.seq.n;
    val **a = args->u.seq.items;
    switch (fn->u.gl.g) {
    case G_ORDERED_DICT:
        if (n != 0)
            return bad(u, err, "OrderedDict with constructor arguments");
        return push(u, new_val(u, V_DICT), err);
    case G_REBUILD_PARAMETER:
        if (n < 1 || a[0]->kind != V_TENSOR)
            return bad(u, err, "_rebuild_parameter without a tensor");
        return push(u, a[0], err);
    case G_REBUILD_TENSOR:
    case G_REBUILD_TENSOR_V2: {
        size_t min = fn->u.gl.g == G_REBUILD_TENSOR ? 4 : 6;
        if (n < min || n > 7 || a[0]->kind != V_STORAGE)
            return bad(u, err, "tensor rebuild arguments are not (storage, offset, size, stride, ...)");
        tp_tensor *t = calloc(1, sizeof *t);
        val *v = new_val(u, V_TENSOR);
        if (!t || !v) {
            free(t);
            return push(u, NULL, err);
        }
        v->u.t = t;
        int64_t off;
        int nd2;
        if (!as_int(a[1], &off) || off < 0 || !int_tuple(a[2], t->shape, &t->ndim) ||
            !int_tuple(a[3], t->stride, &nd2) || nd2 != t->ndim)
            return bad(u, err, "tensor offset, size or stride malformed (or over 8 dimensions)");
        /* Extent check: the last element addressed must lie inside the storage (view). */
        const val *st = a[0];
        uint64_t last = (uint64_t)off, numel = 1;
        for (int i = 0; i < t->ndim; i++) {
            if (t->shape[i] < 0 || t->shape[i] > WB_MAX_DIM_VALUE || t->stride[i] < 0 ||
                t->stride[i] > WB_MAX_DIM_VALUE)
                return bad(u, err, "tensor has a negative or huge size or stride");
            if (__builtin_mul_overflow(numel, (uint64_t)t->shape[i], &numel))
                return bad(u, err, "tensor element count overflows");
        }
        /* More elements than the storage holds means an expanded (stride 0) view: legal in torch,
         * never in a state dict, and a way to make us allocate without bound. */
        if (numel > a[0]->u.st.size)
            return bad(u, err, "tensor has more elements than its storage (expanded view)");
        if (numel > 0) {
            for (int i = 0; i < t->ndim; i++) {
                uint64_t span;
                if (__builtin_mul_overflow((uint64_t)(t->shape[i] - 1), (uint64_t)t->stride[i], &span) ||
                    __builtin_add_overflow(last, span, &last))
                    return bad(u, err, "tensor extent overflows");
            }
            if (last >= st->u.st.size)
                return bad(u, err, "tensor reaches past the end of its storage '%s'",
                           u->sd->storages[st->u.st.index].key);
        } else if ((uint64_t)off > st->u.st.size) {
            return bad(u, err, "empty tensor's offset is past its storage '%s'",
                       u->sd->storages[st->u.st.index].key);
        }
        t->storage = st->u.st.index;
        t->offset = st->u.st.offset + (uint64_t)off;
        return push(u, v, err);
    }
    case G_STORAGE:
        break;
    }
    return bad(u, err, "REDUCE on a storage type");
}

/* Runs the pickle at u->data[u->pos..] to STOP; *result = the value left on the stack. */
static mcli_status run(unpickler *u, val **result, mcli_err *err)
{
    mcli_status s = MCLI_OK;
    for (;;) {
        if (!need(u, 1))
            return bad(u, err, "pickle ends without STOP (truncated file?)");
        uint8_t op = u->data[u->pos++];
        size_t from;
        val *v, *k, *x;
        switch (op) {
        case 0x80: /* PROTO */
            if (!need(u, 1))
                return bad(u, err, "truncated PROTO");
            if (u->data[u->pos] < 2 || u->data[u->pos] > 5)
                return bad(u, err, "unsupported pickle protocol");
            u->pos++;
            break;
        case 0x95: /* FRAME: a length hint, the opcodes follow inline */
            if (!need(u, 8))
                return bad(u, err, "truncated FRAME");
            u->pos += 8;
            break;
        case '.': /* STOP */
            v = pop(u);
            if (!v || u->n_marks || u->sp)
                return bad(u, err, "STOP with %s", v ? "values left on the stack" : "an empty stack");
            *result = v;
            return MCLI_OK;
        case '(': /* MARK */
            if (u->n_marks >= TP_MAX_MARKS)
                return mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: over %d nested MARKs in pickle", u->what,
                                 TP_MAX_MARKS);
            u->marks[u->n_marks++] = u->sp;
            break;
        case '}':
            s = push(u, new_val(u, V_DICT), err);
            break;
        case ']':
            s = push(u, new_val(u, V_LIST), err);
            break;
        case ')':
            s = push(u, new_val(u, V_TUPLE), err);
            break;
        case 'N':
            s = push(u, new_val(u, V_NONE), err);
            break;
        case 0x88: /* NEWTRUE */
        case 0x89: /* NEWFALSE */
            v = new_val(u, V_BOOL);
            if (v)
                v->u.b = op == 0x88;
            s = push(u, v, err);
            break;
        case 'K': /* BININT1 */
            if (!need(u, 1))
                return bad(u, err, "truncated int");
            s = push_int(u, u->data[u->pos], err);
            u->pos += 1;
            break;
        case 'M': /* BININT2 */
            if (!need(u, 2))
                return bad(u, err, "truncated int");
            s = push_int(u, (int64_t)rd_le(u->data + u->pos, 2), err);
            u->pos += 2;
            break;
        case 'J': /* BININT: signed 32-bit */
            if (!need(u, 4))
                return bad(u, err, "truncated int");
            s = push_int(u, (int32_t)(uint32_t)rd_le(u->data + u->pos, 4), err);
            u->pos += 4;
            break;
        case 0x8a: { /* LONG1: n-byte little-endian two's complement */
            if (!need(u, 1) || !need(u, 1 + (size_t)u->data[u->pos]))
                return bad(u, err, "truncated LONG1");
            size_t n = u->data[u->pos++];
            if (n <= 8) {
                uint64_t raw = n ? rd_le(u->data + u->pos, (int)n) : 0;
                if (n && n < 8 && (u->data[u->pos + n - 1] & 0x80))
                    raw |= ~(uint64_t)0 << (8 * n);
                s = push_int(u, (int64_t)raw, err);
            } else {
                v = new_val(u, V_BIGINT);
                if (v) {
                    v->u.s.p = (const char *)u->data + u->pos;
                    v->u.s.n = n;
                }
                s = push(u, v, err);
            }
            u->pos += n;
            break;
        }
        case 'G': { /* BINFLOAT: big-endian double */
            if (!need(u, 8))
                return bad(u, err, "truncated float");
            uint64_t bits = 0;
            for (int i = 0; i < 8; i++)
                bits = (bits << 8) | u->data[u->pos + (size_t)i];
            v = new_val(u, V_FLOAT);
            if (v)
                memcpy(&v->u.f, &bits, sizeof bits);
            u->pos += 8;
            s = push(u, v, err);
            break;
        }
        case 'X': /* BINUNICODE */
        case 'T': /* BINSTRING */
        case 'B': /* BINBYTES */
            if (!need(u, 4))
                return bad(u, err, "truncated string length");
            u->pos += 4;
            s = push_str(u, (size_t)rd_le(u->data + u->pos - 4, 4), err);
            break;
        case 0x8c: /* SHORT_BINUNICODE */
        case 'U':  /* SHORT_BINSTRING */
        case 'C':  /* SHORT_BINBYTES */
            if (!need(u, 1))
                return bad(u, err, "truncated string length");
            u->pos += 1;
            s = push_str(u, u->data[u->pos - 1], err);
            break;
        case 0x8d: { /* BINUNICODE8 */
            if (!need(u, 8))
                return bad(u, err, "truncated string length");
            uint64_t n = rd_le(u->data + u->pos, 8);
            u->pos += 8;
            if (n > TP_MAX_STR)
                return mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: pickle string over the limit", u->what);
            s = push_str(u, (size_t)n, err);
            break;
        }
        case 't': /* TUPLE */
        case 'l': /* LIST */
        case 'd': /* DICT */
            if (!pop_mark(u, &from))
                return bad(u, err, "TUPLE/LIST/DICT without MARK");
            v = new_val(u, op == 't' ? V_TUPLE : op == 'l' ? V_LIST : V_DICT);
            if (!v)
                return push(u, NULL, err);
            if (op == 'd' && (u->sp - from) % 2)
                return bad(u, err, "DICT with an odd number of items");
            for (size_t i = from; i < u->sp; i++)
                if (!seq_push(v, u->stack[i]))
                    return push(u, NULL, err);
            u->sp = from;
            s = push(u, v, err);
            break;
        case 0x85:   /* TUPLE1 */
        case 0x86:   /* TUPLE2 */
        case 0x87: { /* TUPLE3 */
            size_t n = (size_t)(op - 0x84);
            size_t floor = u->n_marks ? u->marks[u->n_marks - 1] : 0;
            if (u->sp - floor < n)
                return bad(u, err, "TUPLE%s with too few values", n == 1 ? "1" : n == 2 ? "2" : "3");
            v = new_val(u, V_TUPLE);
            if (!v)
                return push(u, NULL, err);
            for (size_t i = u->sp - n; i < u->sp; i++)
                if (!seq_push(v, u->stack[i]))
                    return push(u, NULL, err);
            u->sp -= n;
            s = push(u, v, err);
            break;
        }
        case 's': /* SETITEM */
            x = pop(u);
            k = pop(u);
            v = top(u);
            if (!x || !k || !v || v->kind != V_DICT)
                return bad(u, err, "SETITEM without a dict, key and value");
            if (!seq_push(v, k) || !seq_push(v, x))
                return push(u, NULL, err);
            break;
        case 'u': /* SETITEMS */
        case 'e': /* APPENDS */
            if (!pop_mark(u, &from))
                return bad(u, err, "SETITEMS/APPENDS without MARK");
            v = from > (u->n_marks ? u->marks[u->n_marks - 1] : 0) ? u->stack[from - 1] : NULL;
            if (!v || v->kind != (op == 'u' ? V_DICT : V_LIST) || (op == 'u' && (u->sp - from) % 2))
                return bad(u, err, "SETITEMS/APPENDS on the wrong kind of object");
            for (size_t i = from; i < u->sp; i++)
                if (!seq_push(v, u->stack[i]))
                    return push(u, NULL, err);
            u->sp = from;
            break;
        case 'a': /* APPEND */
            x = pop(u);
            v = top(u);
            if (!x || !v || v->kind != V_LIST)
                return bad(u, err, "APPEND without a list");
            if (!seq_push(v, x))
                return push(u, NULL, err);
            break;
        case 'q': /* BINPUT */
            if (!need(u, 1))
                return bad(u, err, "truncated BINPUT");
            s = memo_put(u, u->data[u->pos++], err);
            break;
        case 'r': /* LONG_BINPUT */
            if (!need(u, 4))
                return bad(u, err, "truncated LONG_BINPUT");
            s = memo_put(u, (size_t)rd_le(u->data + u->pos, 4), err);
            u->pos += 4;
            break;
        case 0x94: /* MEMOIZE */
            s = memo_put(u, u->memo_len, err);
            break;
        case 'h': /* BINGET */
            if (!need(u, 1))
                return bad(u, err, "truncated BINGET");
            s = memo_get(u, u->data[u->pos++], err);
            break;
        case 'j': /* LONG_BINGET */
            if (!need(u, 4))
                return bad(u, err, "truncated LONG_BINGET");
            s = memo_get(u, (size_t)rd_le(u->data + u->pos, 4), err);
            u->pos += 4;
            break;
        case 'c': { /* GLOBAL module\nname\n */
            const char *m, *n;
            size_t ml, nl;
            if (!read_line(u, &m, &ml) || !read_line(u, &n, &nl))
                return bad(u, err, "GLOBAL name missing, unterminated or over 128 bytes");
            s = resolve_global(u, m, ml, n, nl, err);
            break;
        }
        case 0x93: /* STACK_GLOBAL */
            x = pop(u);
            k = pop(u);
            if (!x || !k || x->kind != V_STR || k->kind != V_STR || x->u.s.n > TP_MAX_GLOBAL ||
                k->u.s.n > TP_MAX_GLOBAL)
                return bad(u, err, "STACK_GLOBAL without module and name strings");
            s = resolve_global(u, k->u.s.p, k->u.s.n, x->u.s.p, x->u.s.n, err);
            break;
        case 'R': /* REDUCE */
            x = pop(u);
            k = pop(u);
            s = reduce(u, k, x, err);
            break;
        case 'Q': /* BINPERSID */
            s = persistent_load(u, pop(u), err);
            break;
        case 'b': /* BUILD: state for the object below; plain data here, so it is dropped */
            x = pop(u);
            v = top(u);
            if (!x || !v || (v->kind != V_DICT && v->kind != V_TENSOR))
                return bad(u, err, "BUILD on something other than a dict or tensor");
            break;
        default: {
            char d[8];
            snprintf(d, sizeof d, "0x%02x", op);
            return bad(u, err, "opcode %s is not one torch.save writes", d);
        }
        }
        if (s != MCLI_OK)
            return s;
    }
}

static void unpickler_init(unpickler *u, const uint8_t *data, size_t len, const char *what, tp_state_dict *sd)
{
    memset(u, 0, sizeof *u);
    u->data = data;
    u->len = len;
    u->what = what;
    u->sd = sd;
}

void tp_state_dict_free(tp_state_dict *sd)
{
    if (!sd)
        return;
    for (size_t i = 0; i < sd->n_tensors; i++)
        free(sd->tensors[i].name);
    free(sd->tensors);
    free(sd->storages);
    memset(sd, 0, sizeof *sd);
}

mcli_status tp_parse_state_dict(const uint8_t *data, size_t len, const char *what, size_t *used,
                                tp_state_dict *out, mcli_err *err)
{
    memset(out, 0, sizeof *out);
    unpickler u;
    unpickler_init(&u, data, len, what, out);
    val *root = NULL;
    mcli_status s = run(&u, &root, err);
    if (s != MCLI_OK)
        goto fail;
    if (root->kind != V_DICT) {
        s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: the pickled object is not a state dict (name -> tensor)",
                      what);
        goto fail;
    }
    size_t pairs = root->u.seq.n / 2;
    out->tensors = calloc(pairs ? pairs : 1, sizeof *out->tensors);
    if (!out->tensors) {
        s = mcli_fail(err, MCLI_ERR_NOMEM, "%s: out of memory", what);
        goto fail;
    }
    for (size_t i = 0; i < pairs; i++) {
        val *k = root->u.seq.items[2 * i], *v = root->u.seq.items[2 * i + 1];
        if (v->kind != V_TENSOR) {
            out->n_skipped++;
            continue;
        }
        if (k->kind != V_STR || k->u.s.n == 0 || k->u.s.n > WB_MAX_NAME || memchr(k->u.s.p, '\0', k->u.s.n)) {
            s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: a tensor's name is not a string of 1..%d bytes", what,
                          WB_MAX_NAME);
            goto fail;
        }
        tp_tensor *t = &out->tensors[out->n_tensors];
        *t = *v->u.t;
        t->name = malloc(k->u.s.n + 1);
        if (!t->name) {
            s = mcli_fail(err, MCLI_ERR_NOMEM, "%s: out of memory", what);
            goto fail;
        }
        memcpy(t->name, k->u.s.p, k->u.s.n);
        t->name[k->u.s.n] = '\0';
        out->n_tensors++;
    }
    if (out->n_tensors == 0 && out->n_skipped > 0) {
        s = mcli_fail(err, MCLI_ERR_UNSUPPORTED,
                      "%s: the pickled dict holds no tensors at its top level (a training checkpoint with a "
                      "nested state dict?); save model.state_dict() instead",
                      what);
        goto fail;
    }
    if (out->n_skipped)
        LOG_WARN("%s: ignored %zu entries of the state dict that are not tensors", what, out->n_skipped);
    *used = u.pos;
    unpickler_free(&u);
    return MCLI_OK;
fail:
    unpickler_free(&u);
    tp_state_dict_free(out);
    return s;
}

mcli_status tp_parse_legacy_preamble(const uint8_t *data, size_t len, const char *what, size_t *used,
                                     mcli_err *err)
{
    /* torch.serialization.MAGIC_NUMBER = 0x1950a86a20f9469cfc6c, pickled as LONG1 little-endian. */
    static const uint8_t magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    unpickler u;
    val *v = NULL;
    mcli_status s;
    size_t pos = 0;
    for (int step = 0; step < 3; step++) {
        unpickler_init(&u, data + pos, len - pos, what, NULL);
        s = run(&u, &v, err);
        if (s == MCLI_OK) {
            if (step == 0 && !(v->kind == V_BIGINT && v->u.s.n == 10 && memcmp(v->u.s.p, magic, 10) == 0))
                s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: not a PyTorch checkpoint (magic number missing)",
                              what);
            if (step == 1 && !(v->kind == V_INT && v->u.i == 1001))
                s = mcli_fail(err, MCLI_ERR_UNSUPPORTED, "%s: legacy PyTorch protocol version is not 1001",
                              what);
            if (step == 2) {
                if (v->kind != V_DICT) {
                    s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: system info is not a dict", what);
                } else {
                    for (size_t i = 0; i + 1 < v->u.seq.n; i += 2)
                        if (str_is(v->u.seq.items[i], "little_endian") &&
                            v->u.seq.items[i + 1]->kind == V_BOOL && !v->u.seq.items[i + 1]->u.b)
                            s = mcli_fail(err, MCLI_ERR_UNSUPPORTED,
                                          "%s: big-endian checkpoints are not supported", what);
                }
            }
        }
        pos += u.pos;
        unpickler_free(&u);
        if (s != MCLI_OK)
            return s;
    }
    *used = pos;
    return MCLI_OK;
}

void tp_free_strings(char **keys, size_t n)
{
    if (!keys)
        return;
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

mcli_status tp_parse_string_list(const uint8_t *data, size_t len, const char *what, size_t *used,
                                 char ***keys, size_t *n, mcli_err *err)
{
    *keys = NULL;
    *n = 0;
    unpickler u;
    unpickler_init(&u, data, len, what, NULL);
    val *v = NULL;
    char **out = NULL;
    size_t count = 0;
    mcli_status s = run(&u, &v, err);
    if (s != MCLI_OK)
        goto fail;
    if (v->kind != V_LIST || v->u.seq.n > TP_MAX_STORAGES) {
        s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: the storage key list is not a list of at most %d keys", what,
                      TP_MAX_STORAGES);
        goto fail;
    }
    out = calloc(v->u.seq.n ? v->u.seq.n : 1, sizeof *out);
    if (!out) {
        s = mcli_fail(err, MCLI_ERR_NOMEM, "%s: out of memory", what);
        goto fail;
    }
    for (; count < v->u.seq.n; count++) {
        char key[TP_MAX_KEY + 1];
        if (!copy_key(v->u.seq.items[count], key)) {
            s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: storage key %zu is malformed", what, count);
            goto fail;
        }
        out[count] = strdup(key);
        if (!out[count]) {
            s = mcli_fail(err, MCLI_ERR_NOMEM, "%s: out of memory", what);
            goto fail;
        }
    }
    *used = u.pos;
    *keys = out;
    *n = count;
    unpickler_free(&u);
    return MCLI_OK;
fail:
    tp_free_strings(out, count);
    unpickler_free(&u);
    return s;
}

mcli_status tp_add_tensors(struct mcli_weights *w, const tp_state_dict *sd, const char *what, mcli_err *err)
{
    for (size_t i = 0; i < sd->n_tensors; i++) {
        const tp_tensor *t = &sd->tensors[i];
        const tp_storage *st = &sd->storages[t->storage];
        if (!st->data && st->numel > 0)
            return mcli_fail(err, MCLI_ERR_INTERNAL, "%s: storage '%s' has no data", what, st->key);
        wb_tensor_desc d = {
            .name = t->name,
            .name_len = strlen(t->name),
            .dt = st->dt,
            .ndim = t->ndim,
            .shape = t->shape,
            .stride = t->stride,
            .src = st->data ? st->data + t->offset * wb_dtype_size(st->dt) : NULL,
        };
        mcli_status s = wb_add_tensor(w, &d, err);
        if (s != MCLI_OK)
            return mcli_err_prefix(err, "%s", what);
    }
    return MCLI_OK;
}
