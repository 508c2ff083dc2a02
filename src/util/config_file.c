/* config_file.c - `key = value` / flat JSON settings files (see config_file.h). */
#include "util/config_file.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
}

static mcli_status add_entry(cfg_file *c, const char *key, size_t klen, const char *val, size_t vlen, int line,
                             mcli_err *err)
{
    if (klen == 0 || klen >= CFG_KEY_MAX)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s:%d: a key must be 1..%d characters", c->path, line, CFG_KEY_MAX - 1);
    for (size_t i = 0; i < klen; i++)
        if (!key_char(key[i]))
            return mcli_fail(err, MCLI_ERR_FORMAT, "%s:%d: key '%.*s' has a character outside [A-Za-z0-9_.-]",
                             c->path, line, (int)klen, key);
    if (vlen >= CFG_VALUE_MAX)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s:%d: the value of '%.*s' is longer than %d bytes", c->path, line,
                         (int)klen, key, CFG_VALUE_MAX - 1);
    if (memchr(val, '\0', vlen))
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s:%d: the value of '%.*s' contains a NUL byte", c->path, line,
                         (int)klen, key);
    for (size_t i = 0; i < c->n; i++)
        if (strlen(c->items[i].key) == klen && memcmp(c->items[i].key, key, klen) == 0)
            return mcli_fail(err, MCLI_ERR_FORMAT, "%s:%d: '%.*s' is set twice (first on line %d)", c->path, line,
                             (int)klen, key, c->items[i].line);
    if (c->n >= CFG_MAX_ENTRIES)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: more than %d settings", c->path, CFG_MAX_ENTRIES);
    if (!c->items) {
        c->items = calloc(CFG_MAX_ENTRIES, sizeof *c->items);
        if (!c->items)
            return mcli_fail(err, MCLI_ERR_NOMEM, "%s: out of memory", c->path);
    }
    cfg_entry *e = &c->items[c->n++];
    memcpy(e->key, key, klen);
    e->key[klen] = '\0';
    memcpy(e->value, val, vlen);
    e->value[vlen] = '\0';
    e->line = line;
    return MCLI_OK;
}

static mcli_status parse_json(cfg_file *c, const char *text, size_t len, mcli_err *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s:%d:%d: not valid JSON: %s", c->path, jerr.line, jerr.column,
                         jerr.text);
    mcli_status st = MCLI_OK;
    if (!json_is_object(root)) {
        st = mcli_fail(err, MCLI_ERR_FORMAT, "%s: the JSON form must be one object", c->path);
        goto done;
    }
    for (void *it = json_object_iter(root); it; it = json_object_iter_next(root, it)) {
        const char *key = json_object_iter_key(it);
        json_t *v = json_object_iter_value(it);
        char buf[64];
        const char *val = buf;
        size_t vlen;
        if (json_is_string(v)) {
            val = json_string_value(v);
            vlen = json_string_length(v);
        } else if (json_is_integer(v)) {
            vlen = (size_t)snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        } else if (json_is_real(v)) {
            vlen = (size_t)snprintf(buf, sizeof buf, "%.17g", json_real_value(v));
        } else if (json_is_boolean(v)) {
            val = json_is_true(v) ? "true" : "false";
            vlen = strlen(val);
        } else {
            st = mcli_fail(err, MCLI_ERR_FORMAT, "%s: '%.60s' must be a string, number or boolean", c->path, key);
            goto done;
        }
        if ((st = add_entry(c, key, strlen(key), val, vlen, 0, err)) != MCLI_OK)
            goto done;
    }
done:
    json_decref(root);
    return st;
}

/* One `key = value` line [p, end). */
static mcli_status parse_line(cfg_file *c, const char *p, const char *end, int line, mcli_err *err)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    if (p == end || *p == '#' || *p == ';')
        return MCLI_OK;
    const char *eq = memchr(p, '=', (size_t)(end - p));
    if (!eq)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s:%d: expected 'key = value'", c->path, line);
    const char *kend = eq;
    while (kend > p && (kend[-1] == ' ' || kend[-1] == '\t'))
        kend--;
    const char *v = eq + 1;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    if (v < end && *v == '"') {
        char buf[CFG_VALUE_MAX];
        size_t o = 0;
        const char *q = v + 1;
        for (; q < end && *q != '"'; q++) {
            char ch = *q;
            if (ch == '\\') {
                if (q + 1 >= end || (q[1] != '"' && q[1] != '\\'))
                    return mcli_fail(err, MCLI_ERR_FORMAT, "%s:%d: only \\\" and \\\\ may be escaped", c->path, line);
                ch = *++q;
            }
            if (o + 1 >= sizeof buf)
                return mcli_fail(err, MCLI_ERR_FORMAT, "%s:%d: value longer than %d bytes", c->path, line,
                                 CFG_VALUE_MAX - 1);
            buf[o++] = ch;
        }
        if (q >= end)
            return mcli_fail(err, MCLI_ERR_FORMAT, "%s:%d: unterminated quoted value", c->path, line);
        if (q + 1 != end)
            return mcli_fail(err, MCLI_ERR_FORMAT, "%s:%d: text after the closing quote", c->path, line);
        return add_entry(c, p, (size_t)(kend - p), buf, o, line, err);
    }
    return add_entry(c, p, (size_t)(kend - p), v, (size_t)(end - v), line, err);
}

mcli_status cfg_parse(const char *name, const char *text, size_t len, cfg_file *out, mcli_err *err)
{
    memset(out, 0, sizeof *out);
    snprintf(out->path, sizeof out->path, "%s", name ? name : "(config)");
    if (len > CFG_MAX_BYTES)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: larger than %d bytes", out->path, CFG_MAX_BYTES);
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
        i++;
    mcli_status st;
    if (i < len && text[i] == '{') {
        st = parse_json(out, text, len, err);
    } else {
        st = MCLI_OK;
        int line = 1;
        const char *p = text, *end = text + len;
        while (p < end && st == MCLI_OK) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *le = nl ? nl : end;
            st = parse_line(out, p, le, line, err);
            p = nl ? nl + 1 : end;
            line++;
        }
    }
    if (st != MCLI_OK)
        cfg_free(out);
    return st;
}

mcli_status cfg_load(const char *path, cfg_file *out, mcli_err *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return mcli_fail(err, errno == ENOENT ? MCLI_ERR_NOT_FOUND : MCLI_ERR_IO, "config file %s: %s", path,
                         strerror(errno));
    char *buf = malloc(CFG_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        return mcli_fail(err, MCLI_ERR_NOMEM, "config file %s: out of memory", path);
    }
    size_t n = fread(buf, 1, CFG_MAX_BYTES + 1, f);
    bool failed = ferror(f) != 0;
    fclose(f);
    mcli_status st;
    if (failed)
        st = mcli_fail(err, MCLI_ERR_IO, "config file %s: read error", path);
    else if (n > CFG_MAX_BYTES)
        st = mcli_fail(err, MCLI_ERR_TOO_LARGE, "config file %s: larger than %d bytes", path, CFG_MAX_BYTES);
    else
        st = cfg_parse(path, buf, n, out, err);
    free(buf);
    return st;
}

void cfg_free(cfg_file *c)
{
    if (!c)
        return;
    free(c->items);
    c->items = NULL;
    c->n = 0;
}

const char *cfg_get(const cfg_file *c, const char *key)
{
    for (size_t i = 0; c && i < c->n; i++)
        if (strcmp(c->items[i].key, key) == 0)
            return c->items[i].value;
    return NULL;
}

mcli_status cfg_check_keys(const cfg_file *c, const char *const *allowed, size_t n, mcli_err *err)
{
    for (size_t i = 0; i < c->n; i++) {
        bool ok = false;
        for (size_t k = 0; k < n && !ok; k++)
            ok = strcmp(c->items[i].key, allowed[k]) == 0;
        if (!ok)
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "%s:%d: unknown setting '%s'", c->path, c->items[i].line,
                             c->items[i].key);
    }
    return MCLI_OK;
}

mcli_status cfg_parse_int(const char *what, const char *text, long long lo, long long hi, long long *out,
                          mcli_err *err)
{
    const char *p = text;
    bool neg = false;
    if (*p == '-' && lo < 0) {
        neg = true;
        p++;
    }
    if (*p < '0' || *p > '9')
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "%s: '%.40s' is not a whole number", what, text);
    unsigned long long v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (9223372036854775807ULL - d) / 10)
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "%s: '%.40s' is too large", what, text);
        v = v * 10 + d;
    }
    if (*p)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "%s: '%.40s' is not a whole number", what, text);
    long long x = neg ? -(long long)v : (long long)v;
    if (x < lo || x > hi)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "%s: %lld is outside %lld..%lld", what, x, lo, hi);
    *out = x;
    return MCLI_OK;
}
