/* catalog.c - load and merge catalog JSON files (see catalog.h). */
#include "hub/catalog.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CATALOG_FILE_MAX (1024 * 1024) /* bytes of one catalog file */
#define CATALOG_ENTRIES_MAX 1000
#define CATALOG_STR_MAX 2048            /* any one string field */
#define CATALOG_TAGS_MAX 32
#define CAT_PATH_MAX 4096

struct hub_catalog {
    hub_entry *entries;
    size_t n, cap;
    char sources[2 * CAT_PATH_MAX + 8];
};

static char g_data_dir[CAT_PATH_MAX];

void hub_catalog_set_data_dir(const char *dir)
{
    snprintf(g_data_dir, sizeof g_data_dir, "%s", dir ? dir : "");
}

static bool file_is_regular(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Directory of the running executable into out (no trailing slash); false if unknown. */
static bool exe_dir(char *out, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    if (n <= 0 || (size_t)n >= cap - 1)
        return false;
    out[n] = '\0';
    char *slash = strrchr(out, '/');
    if (!slash)
        return false;
    *slash = '\0';
    return true;
}

mcli_status hub_catalog_data_dir(char *out, size_t cap, mcli_err *err)
{
    char cands[4][CAT_PATH_MAX];
    size_t n = 0;
    const char *env = getenv("MCLI_DATA_DIR");
    if (env && env[0])
        snprintf(cands[n++], CAT_PATH_MAX, "%s", env);
    char exe[CAT_PATH_MAX - 32];
    bool have_exe = exe_dir(exe, sizeof exe);
    if (have_exe)
        snprintf(cands[n++], CAT_PATH_MAX, "%s/../share/mcli", exe);
    if (g_data_dir[0])
        snprintf(cands[n++], CAT_PATH_MAX, "%s", g_data_dir);
    if (have_exe)
        snprintf(cands[n++], CAT_PATH_MAX, "%s/data", exe);
    char tried[1024] = "";
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        char f[CAT_PATH_MAX + 16];
        snprintf(f, sizeof f, "%s/catalog.json", cands[i]);
        if (file_is_regular(f)) {
            int w = snprintf(out, cap, "%s", cands[i]);
            if (w < 0 || (size_t)w >= cap)
                return mcli_fail(err, MCLI_ERR_INVALID_ARG, "data directory path too long");
            return MCLI_OK;
        }
        int w = snprintf(tried + used, sizeof tried - used, "%s%s", used ? ", " : "", cands[i]);
        if (w > 0 && (size_t)w < sizeof tried - used)
            used += (size_t)w;
        /* A candidate from $MCLI_DATA_DIR that lacks the file is still a clear user error. */
        if (i == 0 && env && env[0])
            return mcli_fail(err, MCLI_ERR_NOT_FOUND, "no catalog.json in MCLI_DATA_DIR=%s", env);
    }
    return mcli_fail(err, MCLI_ERR_NOT_FOUND,
                     "catalog.json not found (tried %s); set MCLI_DATA_DIR to the directory that has it", tried);
}

static void entry_clear(hub_entry *e)
{
    free(e->key);
    free(e->repo);
    free(e->revision);
    free(e->name);
    free(e->description);
    free(e->parameters);
    free(e->type);
    free(e->architecture);
    free(e->alias_note);
    free(e->path);
    for (size_t i = 0; i < e->n_tags; i++)
        free(e->tags[i]);
    free(e->tags);
    memset(e, 0, sizeof *e);
}

void hub_catalog_free(hub_catalog *cat)
{
    if (!cat)
        return;
    for (size_t i = 0; i < cat->n; i++)
        entry_clear(&cat->entries[i]);
    free(cat->entries);
    free(cat);
}

size_t hub_catalog_count(const hub_catalog *cat)
{
    return cat ? cat->n : 0;
}

const hub_entry *hub_catalog_at(const hub_catalog *cat, size_t i)
{
    return cat && i < cat->n ? &cat->entries[i] : NULL;
}

const char *hub_catalog_sources(const hub_catalog *cat)
{
    return cat ? cat->sources : "";
}

const hub_entry *hub_catalog_find(const hub_catalog *cat, const char *key)
{
    if (!cat || !key)
        return NULL;
    for (size_t i = 0; i < cat->n; i++)
        if (strcmp(cat->entries[i].key, key) == 0)
            return &cat->entries[i];
    for (size_t i = 0; i < cat->n; i++)
        if (strcmp(cat->entries[i].repo, key) == 0)
            return &cat->entries[i];
    for (size_t i = 0; i < cat->n; i++)
        if (strcasecmp(cat->entries[i].key, key) == 0)
            return &cat->entries[i];
    return NULL;
}

/* Copies an optional string member (NULL if absent); false on wrong type / too long / no memory. */
static bool get_str(json_t *o, const char *name, char **out, const char *file, size_t idx, mcli_err *err)
{
    *out = NULL;
    json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v) || json_string_length(v) > CATALOG_STR_MAX) {
        mcli_fail(err, MCLI_ERR_FORMAT, "%s: models[%zu].%s must be a string of at most %d bytes", file, idx, name,
                  CATALOG_STR_MAX);
        return false;
    }
    *out = strdup(json_string_value(v));
    if (!*out) {
        mcli_fail(err, MCLI_ERR_NOMEM, "out of memory reading %s", file);
        return false;
    }
    return true;
}

static bool get_num(json_t *o, const char *name, double *out, double dflt, const char *file, size_t idx,
                    mcli_err *err)
{
    json_t *v = json_object_get(o, name);
    *out = dflt;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_number(v)) {
        mcli_fail(err, MCLI_ERR_FORMAT, "%s: models[%zu].%s must be a number", file, idx, name);
        return false;
    }
    *out = json_number_value(v);
    return true;
}

static bool get_int(json_t *o, const char *name, int *out, const char *file, size_t idx, mcli_err *err)
{
    double d;
    if (!get_num(o, name, &d, 0, file, idx, err))
        return false;
    if (d < 0 || d > 1e8) {
        mcli_fail(err, MCLI_ERR_FORMAT, "%s: models[%zu].%s out of range", file, idx, name);
        return false;
    }
    *out = (int)d;
    return true;
}

/* Fills e from the JSON object o; dir is the directory of the catalog file (for "path"). */
static mcli_status parse_entry(json_t *o, size_t idx, const char *file, const char *dir, bool user, hub_entry *e,
                               mcli_err *err)
{
    memset(e, 0, sizeof *e);
    e->auto_min_ram_mb = -1;
    if (!json_is_object(o))
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: models[%zu] is not an object", file, idx);
    char *path_rel = NULL;
    if (!get_str(o, "key", &e->key, file, idx, err) || !get_str(o, "repo", &e->repo, file, idx, err) ||
        !get_str(o, "revision", &e->revision, file, idx, err) || !get_str(o, "name", &e->name, file, idx, err) ||
        !get_str(o, "description", &e->description, file, idx, err) ||
        !get_str(o, "parameters", &e->parameters, file, idx, err) || !get_str(o, "type", &e->type, file, idx, err) ||
        !get_str(o, "architecture", &e->architecture, file, idx, err) ||
        !get_str(o, "alias_note", &e->alias_note, file, idx, err) || !get_str(o, "path", &path_rel, file, idx, err))
        goto fail;
    if (!e->key || !e->key[0]) {
        mcli_fail(err, MCLI_ERR_FORMAT, "%s: models[%zu] has no \"key\"", file, idx);
        goto fail;
    }
    if (!get_num(o, "size_mb", &e->size_mb, 0, file, idx, err) ||
        !get_num(o, "efficiency_score", &e->efficiency_score, 0, file, idx, err) ||
        !get_num(o, "accuracy_score", &e->accuracy_score, 0, file, idx, err))
        goto fail;
    json_t *shape = json_object_get(o, "shape");
    if (shape && json_is_object(shape)) {
        if (!get_int(shape, "layers", &e->layers, file, idx, err) || !get_int(shape, "hidden", &e->hidden, file, idx, err) ||
            !get_int(shape, "heads", &e->heads, file, idx, err) ||
            !get_int(shape, "intermediate", &e->intermediate, file, idx, err) ||
            !get_int(shape, "context", &e->context, file, idx, err) || !get_int(shape, "vocab", &e->vocab, file, idx, err))
            goto fail;
    }
    json_t *tier = json_object_get(o, "auto_min_ram_mb");
    if (tier && !json_is_null(tier)) {
        if (!json_is_integer(tier) || json_integer_value(tier) < 0) {
            mcli_fail(err, MCLI_ERR_FORMAT, "%s: models[%zu].auto_min_ram_mb must be a non-negative integer", file, idx);
            goto fail;
        }
        e->auto_min_ram_mb = json_integer_value(tier);
    }
    json_t *b = json_object_get(o, "bundled");
    e->bundled = b && json_is_true(b);
    json_t *tags = json_object_get(o, "tags");
    if (tags && json_is_array(tags)) {
        size_t nt = json_array_size(tags);
        if (nt > CATALOG_TAGS_MAX)
            nt = CATALOG_TAGS_MAX;
        e->tags = calloc(nt ? nt : 1, sizeof *e->tags);
        if (!e->tags) {
            mcli_fail(err, MCLI_ERR_NOMEM, "out of memory reading %s", file);
            goto fail;
        }
        for (size_t i = 0; i < nt; i++) {
            json_t *t = json_array_get(tags, i);
            if (!json_is_string(t) || json_string_length(t) > 64)
                continue;
            e->tags[e->n_tags] = strdup(json_string_value(t));
            if (!e->tags[e->n_tags]) {
                mcli_fail(err, MCLI_ERR_NOMEM, "out of memory reading %s", file);
                goto fail;
            }
            e->n_tags++;
        }
    }
    if (!e->repo) {
        e->repo = strdup(e->key);
        if (!e->repo) {
            mcli_fail(err, MCLI_ERR_NOMEM, "out of memory reading %s", file);
            goto fail;
        }
    }
    if (!e->revision) {
        e->revision = strdup("main");
        if (!e->revision) {
            mcli_fail(err, MCLI_ERR_NOMEM, "out of memory reading %s", file);
            goto fail;
        }
    }
    if (e->bundled && !path_rel) {
        mcli_fail(err, MCLI_ERR_FORMAT, "%s: models[%zu] (%s) is bundled but has no \"path\"", file, idx, e->key);
        goto fail;
    }
    if (path_rel) {
        size_t need = strlen(dir) + strlen(path_rel) + 2;
        e->path = malloc(need);
        if (!e->path) {
            mcli_fail(err, MCLI_ERR_NOMEM, "out of memory reading %s", file);
            goto fail;
        }
        if (path_rel[0] == '/')
            snprintf(e->path, need, "%s", path_rel);
        else
            snprintf(e->path, need, "%s/%s", dir, path_rel);
        free(path_rel);
        path_rel = NULL;
        char *canon = realpath(e->path, NULL); /* tidy "data/../models/x" when it exists */
        if (canon) {
            free(e->path);
            e->path = canon;
        }
    }
    e->from_user_file = user;
    return MCLI_OK;
fail:
    free(path_rel);
    entry_clear(e);
    return err ? err->code : MCLI_ERR_FORMAT;
}

/* Adds or replaces (by key) one entry; takes ownership of *e. */
static mcli_status catalog_put(hub_catalog *cat, hub_entry *e, mcli_err *err)
{
    for (size_t i = 0; i < cat->n; i++) {
        if (strcmp(cat->entries[i].key, e->key) == 0) {
            entry_clear(&cat->entries[i]);
            cat->entries[i] = *e;
            memset(e, 0, sizeof *e);
            return MCLI_OK;
        }
    }
    if (cat->n >= CATALOG_ENTRIES_MAX)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "catalog has more than %d models", CATALOG_ENTRIES_MAX);
    if (cat->n == cat->cap) {
        size_t nc = cat->cap ? cat->cap * 2 : 16;
        hub_entry *grown = realloc(cat->entries, nc * sizeof *grown);
        if (!grown)
            return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory growing the catalog");
        cat->entries = grown;
        cat->cap = nc;
    }
    cat->entries[cat->n++] = *e;
    memset(e, 0, sizeof *e);
    return MCLI_OK;
}

static mcli_status load_file(hub_catalog *cat, const char *file, bool user, mcli_err *err)
{
    json_error_t jerr;
    struct stat st;
    if (stat(file, &st) != 0)
        return mcli_fail(err, MCLI_ERR_NOT_FOUND, "catalog %s: %s", file, strerror(errno));
    if (st.st_size > CATALOG_FILE_MAX)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "catalog %s is larger than %d bytes", file, CATALOG_FILE_MAX);
    json_t *root = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return mcli_fail(err, MCLI_ERR_FORMAT, "catalog %s: line %d: %s", file, jerr.line, jerr.text);
    mcli_status st_ = MCLI_OK;
    json_t *models = json_object_get(root, "models");
    if (!json_is_object(root) || !json_is_array(models)) {
        st_ = mcli_fail(err, MCLI_ERR_FORMAT, "catalog %s: expected {\"format\": 1, \"models\": [...]}", file);
        goto done;
    }
    char dir[CAT_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    size_t n = json_array_size(models);
    for (size_t i = 0; i < n; i++) {
        hub_entry e;
        st_ = parse_entry(json_array_get(models, i), i, file, dir, user, &e, err);
        if (st_ != MCLI_OK)
            goto done;
        st_ = catalog_put(cat, &e, err);
        if (st_ != MCLI_OK) {
            entry_clear(&e);
            goto done;
        }
    }
    size_t used = strlen(cat->sources);
    snprintf(cat->sources + used, sizeof cat->sources - used, "%s%s", used ? ", " : "", file);
done:
    json_decref(root);
    return st_;
}

mcli_status hub_catalog_load(const char *const *paths, size_t n, hub_catalog **out, mcli_err *err)
{
    *out = NULL;
    hub_catalog *cat = calloc(1, sizeof *cat);
    if (!cat)
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory loading the catalog");
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && !file_is_regular(paths[i]))
            continue;
        mcli_status st = load_file(cat, paths[i], i > 0, err);
        if (st != MCLI_OK) {
            hub_catalog_free(cat);
            return st;
        }
    }
    *out = cat;
    return MCLI_OK;
}

mcli_status hub_catalog_open_default(hub_catalog **out, mcli_err *err)
{
    char dir[CAT_PATH_MAX - 32];
    mcli_status st = hub_catalog_data_dir(dir, sizeof dir, err);
    if (st != MCLI_OK)
        return st;
    char sys_file[CAT_PATH_MAX], user_file[CAT_PATH_MAX] = "";
    snprintf(sys_file, sizeof sys_file, "%s/catalog.json", dir);
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0] == '/')
        snprintf(user_file, sizeof user_file, "%s/mcli/catalog.json", xdg);
    else if (home && home[0])
        snprintf(user_file, sizeof user_file, "%s/.config/mcli/catalog.json", home);
    const char *paths[2] = {sys_file, user_file};
    return hub_catalog_load(paths, user_file[0] ? 2 : 1, out, err);
}
