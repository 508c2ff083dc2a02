/* service_routes.c - the model service's routes (see service.h), transport-free: each handler
 * turns a parsed request into a JSON reply. Handlers run on the calling (connection) thread;
 * inference runs there too, which is what the service's thread-per-connection front expects
 * (a slow generation holds its own connection only).
 *
 * Errors are {"detail": message, "error": status name} (the original service's "detail" key),
 * with the HTTP code from mcli_status_http().
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "engine/engine.h"
#include "hub/hub.h"
#include "server/server_internal.h"
#include "server/service_internal.h"
#include "store/models_dir.h"
#include "sys/sysinfo.h"
#include "util/log.h"

#define PROMPT_MAX (64 * 1024)
#define SVC_PATH_MAX 1024

/* ---------------------------------------------------------------- replies */

static void reply(svc_reply *out, int status, json_t *body)
{
    memset(out, 0, sizeof *out);
    out->status = status;
    out->body = body ? body : json_object();
}

static void reply_err(svc_reply *out, const mcli_err *err)
{
    mcli_status code = err->code == MCLI_OK ? MCLI_ERR_INTERNAL : err->code;
    reply(out, mcli_status_http(code),
          json_pack("{s:s,s:s}", "detail", err->msg[0] ? err->msg : mcli_status_name(code), "error",
                    mcli_status_name(code)));
}

static void reply_fail(svc_reply *out, mcli_status code, const char *fmt, ...) MCLI_PRINTF(3, 4);
static void reply_fail(svc_reply *out, mcli_status code, const char *fmt, ...)
{
    mcli_err err = {.code = code};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.msg, sizeof err.msg, fmt, ap);
    va_end(ap);
    reply_err(out, &err);
}

/* ---------------------------------------------------------------- body fields */

static json_t *parse_body(const char *body, size_t len, bool required, mcli_err *err)
{
    if (len == 0) {
        if (required) {
            mcli_fail(err, MCLI_ERR_INVALID_ARG, "this route needs a JSON object body");
            return NULL;
        }
        return json_object();
    }
    json_error_t jerr;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        mcli_fail(err, MCLI_ERR_INVALID_ARG, "the body is not valid JSON: %s at line %d, column %d", jerr.text,
                  jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        mcli_fail(err, MCLI_ERR_INVALID_ARG, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

/* String field: absent -> *v unchanged (or an error if required); at most max bytes, no NUL. */
static mcli_status field_str(json_t *o, const char *key, bool required, size_t max, const char **v, mcli_err *err)
{
    json_t *f = json_object_get(o, key);
    if (!f || json_is_null(f))
        return required ? mcli_fail(err, MCLI_ERR_INVALID_ARG, "field '%s' is required", key) : MCLI_OK;
    if (!json_is_string(f))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field '%s' must be a string", key);
    size_t n = json_string_length(f);
    if (n > max)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "field '%s' is %zu bytes, more than the %zu allowed", key, n, max);
    if (strlen(json_string_value(f)) != n)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field '%s' contains a NUL character", key);
    *v = json_string_value(f);
    return MCLI_OK;
}

static mcli_status field_int(json_t *o, const char *key, long long lo, long long hi, bool *set, long long *v,
                             mcli_err *err)
{
    json_t *f = json_object_get(o, key);
    if (!f || json_is_null(f))
        return MCLI_OK;
    if (!json_is_integer(f))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field '%s' must be an integer", key);
    long long x = json_integer_value(f);
    if (x < lo || x > hi)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field '%s' must be in %lld..%lld, got %lld", key, lo, hi, x);
    *v = x;
    if (set)
        *set = true;
    return MCLI_OK;
}

static mcli_status field_num(json_t *o, const char *key, double lo, double hi, bool lo_open, bool *set, double *v,
                             mcli_err *err)
{
    json_t *f = json_object_get(o, key);
    if (!f || json_is_null(f))
        return MCLI_OK;
    if (!json_is_number(f))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field '%s' must be a number", key);
    double x = json_number_value(f);
    if (!(lo_open ? x > lo : x >= lo) || !(x <= hi))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field '%s' must be in %s%g, %g], got %g", key, lo_open ? "(" : "[",
                         lo, hi, x);
    *v = x;
    if (set)
        *set = true;
    return MCLI_OK;
}

/* The generation defaults a body may carry (POST /models, PUT /models/{id}, generate). */
typedef struct {
    bool has_max_length, has_temperature, has_top_p, has_top_k;
    long long max_length, top_k;
    double temperature, top_p;
} gen_fields;

static mcli_status read_gen_fields(json_t *o, gen_fields *g, mcli_err *err)
{
    mcli_status st;
    if ((st = field_int(o, "max_length", 1, 1000000, &g->has_max_length, &g->max_length, err)) != MCLI_OK ||
        (st = field_num(o, "temperature", 0.0, 100.0, false, &g->has_temperature, &g->temperature, err)) != MCLI_OK ||
        (st = field_num(o, "top_p", 0.0, 1.0, true, &g->has_top_p, &g->top_p, err)) != MCLI_OK ||
        (st = field_int(o, "top_k", 0, 1000000, &g->has_top_k, &g->top_k, err)) != MCLI_OK)
        return st;
    return MCLI_OK;
}

/* ---------------------------------------------------------------- small helpers */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

double service_rss_mb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    double mb = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) != 0)
            continue;
        const char *p = line + 6;
        while (*p == ' ' || *p == '\t')
            p++;
        char *end = NULL;
        errno = 0;
        unsigned long long kb = strtoull(p, &end, 10);
        if (errno == 0 && end != p)
            mb = (double)kb / 1024.0;
        break;
    }
    fclose(f);
    return mb;
}

/* Percent-decodes src into dst[cap]; false on a bad escape, a NUL, or overflow. */
static bool url_decode(const char *src, char *dst, size_t cap)
{
    size_t o = 0;
    for (const char *p = src; *p; p++) {
        char c = *p;
        if (c == '%') {
            int hi = p[1] ? (p[1] >= '0' && p[1] <= '9' ? p[1] - '0' : (p[1] | 32) >= 'a' && (p[1] | 32) <= 'f' ? (p[1] | 32) - 'a' + 10 : -1) : -1;
            int lo = hi >= 0 && p[2] ? (p[2] >= '0' && p[2] <= '9' ? p[2] - '0' : (p[2] | 32) >= 'a' && (p[2] | 32) <= 'f' ? (p[2] | 32) - 'a' + 10 : -1) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return false;
            c = (char)(hi * 16 + lo);
            p += 2;
        }
        if (o + 1 >= cap)
            return false;
        dst[o++] = c;
    }
    dst[o] = '\0';
    return true;
}

static json_t *model_json(service *s, const reg_model *m)
{
    bool loaded = model_cache_contains(s->cache, m->id);
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:f,s:f,s:i,s:b,s:f,s:I,s:s}", "id", m->id, "name", m->name,
                          "model_type", m->model_type, "model_path", m->model_path, "device", m->device,
                          "max_length", m->max_length, "temperature", m->temperature, "top_p", m->top_p, "top_k",
                          m->top_k, "is_loaded", loaded, "memory_usage_mb", m->memory_usage_mb, "parameters_count",
                          (json_int_t)m->parameters_count, "created_at", m->created_at);
    if (j)
        json_object_set_new(j, "tokenizer_path", m->tokenizer_path[0] ? json_string(m->tokenizer_path) : json_null());
    return j;
}

/* ---------------------------------------------------------------- model loading */

static void on_evict(void *user, const char *key)
{
    service *s = user;
    mcli_err err = {0};
    if (registry_set_loaded(s->reg, key, false, 0, 0, &err) != MCLI_OK && err.code != MCLI_ERR_NOT_FOUND)
        LOG_WARN("service: recording the eviction of %s: %s", key, err.msg);
}

/* Takes a reference to model m (loading it on a miss and recording the load). */
static mcli_status acquire_model(service *s, const reg_model *m, model_cache_ref **ref, mcli_err *err)
{
    bool loaded = false;
    mcli_status st = model_cache_acquire(s->cache, m->id, m->model_path, ref, &loaded, err);
    if (st != MCLI_OK)
        return mcli_err_prefix(err, "loading model '%s' from %s", m->name, m->model_path);
    if (loaded) {
        const mcli_model_info *info = engine_info(model_cache_model(*ref));
        double mb = (double)model_cache_bytes(*ref) / (1024.0 * 1024.0);
        mcli_err e2 = {0};
        if (registry_set_loaded(s->reg, m->id, true, mb, info ? info->n_params : 0, &e2) != MCLI_OK)
            LOG_WARN("service: recording the load of %s: %s", m->name, e2.msg);
        /* a model registered without a type (CLI --direct) learns it from its config */
        if (strcmp(m->model_type, "auto") == 0 && info && info->config) {
            reg_update u = {.model_type = info->config->model_type};
            if (registry_update(s->reg, m->id, &u, NULL, &e2) != MCLI_OK)
                LOG_WARN("service: recording the model type of %s: %s", m->name, e2.msg);
        }
        LOG_INFO("service: loaded '%s' (%.1f MB) from %s", m->name, mb, m->model_path);
    }
    return MCLI_OK;
}

static void record(service *s, const char *model_id, const char *type, const char *input, const char *output,
                   double ms, const mcli_err *failure)
{
    reg_inference inf = {.model_id = model_id, .request_type = type, .input = input, .output = output,
                         .execution_time_ms = ms, .error = failure ? failure->msg : NULL};
    mcli_err err = {0};
    if (registry_record_inference(s->reg, &inf, &err) != MCLI_OK)
        LOG_WARN("service: recording a %s inference: %s", type, err.msg);
}

/* ---------------------------------------------------------------- /, /health, /models */

static void handle_root(service *s, svc_reply *out)
{
    size_t n = model_cache_list(s->cache, NULL, 0);
    reply(out, 200, json_pack("{s:s,s:s,s:s,s:I}", "service", "mcli model service", "version", MCLI_VERSION, "status",
                              "running", "models_loaded", (json_int_t)n));
}

static void handle_health(service *s, svc_reply *out)
{
    size_t n = model_cache_list(s->cache, NULL, 0);
    reply(out, 200, json_pack("{s:s,s:I,s:f,s:I}", "status", "healthy", "models_loaded", (json_int_t)n,
                              "memory_usage_mb", service_rss_mb(), "uptime_s",
                              (json_int_t)(time(NULL) - s->started)));
}

static void handle_list(service *s, svc_reply *out)
{
    reg_model *list = NULL;
    size_t n = 0;
    mcli_err err = {0};
    if (registry_list(s->reg, &list, &n, &err) != MCLI_OK) {
        reply_err(out, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, model_json(s, &list[i]));
    free(list);
    reply(out, 200, arr);
}

static void handle_get_one(service *s, const char *key, svc_reply *out)
{
    reg_model m;
    mcli_err err = {0};
    if (registry_get(s->reg, key, &m, &err) != MCLI_OK) {
        reply_err(out, &err);
        return;
    }
    reply(out, 200, model_json(s, &m));
}

static void handle_summary(service *s, svc_reply *out)
{
    reg_summary sum;
    mcli_err err = {0};
    if (registry_summary(s->reg, &sum, &err) != MCLI_OK) {
        reply_err(out, &err);
        return;
    }
    json_t *by_type = json_object();
    for (size_t i = 0; i < sum.n_types; i++)
        json_object_set_new(by_type, sum.by_type[i].model_type, json_integer(sum.by_type[i].count));
    json_t *per = json_array();
    for (size_t i = 0; i < sum.n_models; i++) {
        const reg_model_stats *m = &sum.per_model[i];
        json_array_append_new(per, json_pack("{s:s,s:s,s:I,s:I,s:f}", "id", m->id, "name", m->name, "inferences",
                                             (json_int_t)m->inferences, "errors", (json_int_t)m->errors,
                                             "mean_latency_ms", m->mean_latency_ms));
    }
    /* loaded models and their memory come from the cache (what is in memory now); the registry's
     * is_loaded column can lag it by an eviction in flight */
    model_cache_info info[64];
    size_t n_loaded = model_cache_list(s->cache, info, sizeof info / sizeof info[0]);
    double loaded_mb = 0;
    for (size_t i = 0; i < n_loaded && i < sizeof info / sizeof info[0]; i++)
        loaded_mb += (double)info[i].bytes / (1024.0 * 1024.0);
    if (n_loaded > sizeof info / sizeof info[0])
        loaded_mb = sum.loaded_memory_mb;
    reply(out, 200,
          json_pack("{s:I,s:I,s:f,s:o,s:I,s:I,s:o}", "total_models", (json_int_t)sum.total_models, "loaded_models",
                    (json_int_t)n_loaded, "memory_usage_mb", loaded_mb, "models_by_type", by_type,
                    "total_inferences", (json_int_t)sum.total_inferences, "total_errors",
                    (json_int_t)sum.total_errors, "models", per));
    registry_summary_free(&sum);
}

/* Registers a model from body fields (model_path given or from a download) and loads it. On a
 * load failure the registration is undone. */
static void add_and_load(service *s, json_t *body, const char *model_path, const char *default_name, svc_reply *out)
{
    mcli_err err = {0};
    const char *name = default_name, *type = NULL, *tok = NULL, *device = NULL;
    gen_fields g = {0};
    mcli_status st;
    if ((st = field_str(body, "name", default_name == NULL, REG_NAME_MAX - 1, &name, &err)) != MCLI_OK ||
        (st = field_str(body, "model_type", false, REG_TYPE_MAX - 1, &type, &err)) != MCLI_OK ||
        (st = field_str(body, "tokenizer_path", false, REG_PATH_MAX - 1, &tok, &err)) != MCLI_OK ||
        (st = field_str(body, "device", false, REG_DEVICE_MAX - 1, &device, &err)) != MCLI_OK ||
        (st = read_gen_fields(body, &g, &err)) != MCLI_OK) {
        reply_err(out, &err);
        return;
    }
    if (device && strcmp(device, "cpu") != 0 && strcmp(device, "auto") != 0) {
        reply_fail(out, MCLI_ERR_UNSUPPORTED, "device '%s' is not available: mcli runs on the CPU (use \"cpu\")", device);
        return;
    }
    char real[PATH_MAX];
    struct stat stt;
    if (!realpath(model_path, real) || stat(real, &stt) != 0 || !S_ISDIR(stt.st_mode)) {
        reply_fail(out, MCLI_ERR_NOT_FOUND, "model_path '%.300s' is not a directory on the service's machine",
                   model_path);
        return;
    }
    reg_model m;
    reg_model_init(&m);
    if (strlen(real) >= sizeof m.model_path) {
        reply_fail(out, MCLI_ERR_INVALID_ARG, "model_path is too long");
        return;
    }
    snprintf(m.name, sizeof m.name, "%s", name);
    snprintf(m.model_type, sizeof m.model_type, "%s", type ? type : "auto");
    snprintf(m.model_path, sizeof m.model_path, "%s", real);
    if (tok)
        snprintf(m.tokenizer_path, sizeof m.tokenizer_path, "%s", tok);
    if (g.has_max_length) m.max_length = (int)g.max_length;
    if (g.has_temperature) m.temperature = g.temperature;
    if (g.has_top_p) m.top_p = g.top_p;
    if (g.has_top_k) m.top_k = (int)g.top_k;
    if (registry_add(s->reg, &m, &m, &err) != MCLI_OK) {
        reply_err(out, &err);
        return;
    }
    model_cache_ref *ref = NULL;
    if (acquire_model(s, &m, &ref, &err) != MCLI_OK) {
        mcli_err e2 = {0};
        if (registry_remove(s->reg, m.id, &e2) != MCLI_OK)
            LOG_WARN("service: undoing the registration of '%s': %s", m.name, e2.msg);
        reply_err(out, &err);
        return;
    }
    const mcli_model_info *info = engine_info(model_cache_model(ref));
    if (!type && info && info->config) {
        reg_update u = {.model_type = info->config->model_type};
        if (registry_update(s->reg, m.id, &u, &m, &err) != MCLI_OK)
            LOG_WARN("service: recording the model type of '%s': %s", m.name, err.msg);
    }
    model_cache_release(s->cache, ref);
    if (registry_get(s->reg, m.id, &m, &err) != MCLI_OK) {
        reply_err(out, &err);
        return;
    }
    json_t *j = json_pack("{s:s,s:s,s:o}", "model_id", m.id, "status", "loaded", "model", model_json(s, &m));
    reply(out, 200, j);
}

static void handle_add(service *s, const char *body, size_t len, svc_reply *out)
{
    mcli_err err = {0};
    json_t *j = parse_body(body, len, true, &err);
    const char *path = NULL;
    if (!j || field_str(j, "model_path", true, REG_PATH_MAX - 1, &path, &err) != MCLI_OK) {
        json_decref(j);
        reply_err(out, &err);
        return;
    }
    add_and_load(s, j, path, NULL, out);
    json_decref(j);
}

static void handle_update(service *s, const char *key, const char *body, size_t len, svc_reply *out)
{
    mcli_err err = {0};
    json_t *j = parse_body(body, len, true, &err);
    if (!j) {
        reply_err(out, &err);
        return;
    }
    reg_update u = {0};
    gen_fields g = {0};
    const char *device = NULL;
    if (field_str(j, "name", false, REG_NAME_MAX - 1, &u.name, &err) != MCLI_OK ||
        field_str(j, "model_type", false, REG_TYPE_MAX - 1, &u.model_type, &err) != MCLI_OK ||
        field_str(j, "model_path", false, REG_PATH_MAX - 1, &u.model_path, &err) != MCLI_OK ||
        field_str(j, "tokenizer_path", false, REG_PATH_MAX - 1, &u.tokenizer_path, &err) != MCLI_OK ||
        field_str(j, "device", false, REG_DEVICE_MAX - 1, &device, &err) != MCLI_OK ||
        read_gen_fields(j, &g, &err) != MCLI_OK)
        goto fail;
    if (device && strcmp(device, "cpu") != 0) {
        mcli_fail(&err, MCLI_ERR_UNSUPPORTED, "device '%s' is not available: mcli runs on the CPU", device);
        goto fail;
    }
    u.device = device;
    u.set_max_length = g.has_max_length;
    u.max_length = (int)g.max_length;
    u.set_temperature = g.has_temperature;
    u.temperature = g.temperature;
    u.set_top_p = g.has_top_p;
    u.top_p = g.top_p;
    u.set_top_k = g.has_top_k;
    u.top_k = (int)g.top_k;
    char real[PATH_MAX];
    if (u.model_path) {
        if (!realpath(u.model_path, real)) {
            mcli_fail(&err, MCLI_ERR_NOT_FOUND, "model_path '%.300s' does not exist on the service's machine",
                      u.model_path);
            goto fail;
        }
        u.model_path = real;
    }
    reg_model m;
    if (registry_update(s->reg, key, &u, &m, &err) != MCLI_OK)
        goto fail;
    if (u.model_path && model_cache_unload(s->cache, m.id)) /* reload from the new path on demand */
        on_evict(s, m.id);
    reply(out, 200, json_pack("{s:s,s:s,s:o}", "model_id", m.id, "status", "updated", "model", model_json(s, &m)));
    json_decref(j);
    return;
fail:
    json_decref(j);
    reply_err(out, &err);
}

static void handle_unload(service *s, const char *key, bool remove, svc_reply *out)
{
    reg_model m;
    mcli_err err = {0};
    if (registry_get(s->reg, key, &m, &err) != MCLI_OK) {
        reply_err(out, &err);
        return;
    }
    bool was_loaded = model_cache_unload(s->cache, m.id);
    if (remove) {
        if (registry_remove(s->reg, m.id, &err) != MCLI_OK) {
            reply_err(out, &err);
            return;
        }
        reply(out, 200, json_pack("{s:s,s:s,s:s}", "model_id", m.id, "name", m.name, "status", "removed"));
        return;
    }
    if (registry_set_loaded(s->reg, m.id, false, 0, 0, &err) != MCLI_OK) {
        reply_err(out, &err);
        return;
    }
    reply(out, 200, json_pack("{s:s,s:s,s:s,s:b}", "model_id", m.id, "name", m.name, "status", "unloaded",
                              "was_loaded", was_loaded));
}

/* ---------------------------------------------------------------- inference */

static uint64_t fresh_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    static _Atomic uint64_t counter;
    return ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (counter++ * 0x9E3779B97F4A7C15ull);
}

static void handle_generate(service *s, const char *key, const char *body, size_t len, svc_reply *out)
{
    mcli_err err = {0};
    reg_model m;
    json_t *j = parse_body(body, len, true, &err);
    if (!j)
        goto fail_early;
    if (registry_get(s->reg, key, &m, &err) != MCLI_OK)
        goto fail_early;
    const char *prompt = NULL;
    gen_fields g = {0};
    long long seed = -1;
    if (field_str(j, "prompt", true, PROMPT_MAX, &prompt, &err) != MCLI_OK || read_gen_fields(j, &g, &err) != MCLI_OK ||
        field_int(j, "seed", 0, LLONG_MAX, NULL, &seed, &err) != MCLI_OK)
        goto fail_early;

    double t0 = now_ms();
    model_cache_ref *ref = NULL;
    mcli_encoding enc;
    memset(&enc, 0, sizeof enc);
    mcli_gen_result res;
    memset(&res, 0, sizeof res);
    mcli_status st = acquire_model(s, &m, &ref, &err);
    if (st != MCLI_OK)
        goto done;
    const mcli_model *mm = model_cache_model(ref);
    const mcli_model_info *info = engine_info(mm);
    if (!(info->tasks & MCLI_TASK_GENERATE)) {
        st = mcli_fail(&err, MCLI_ERR_UNSUPPORTED, "model '%s' (%s) cannot generate text; use /models/%s/classify",
                       m.name, info->config->model_type, m.id);
        goto done;
    }
    const mcli_tok_opts to = {.add_special_tokens = true, .max_length = 0, .truncate = false};
    if ((st = tokenizer_encode(engine_tokenizer(mm), prompt, strlen(prompt), NULL, 0, &to, &enc, &err)) != MCLI_OK)
        goto done;
    if (enc.n == 0) {
        st = mcli_fail(&err, MCLI_ERR_INVALID_ARG, "the prompt is empty: give at least one token of text");
        goto done;
    }
    int ctx = info->config->max_positions;
    int max_new = g.has_max_length ? (int)g.max_length : m.max_length;
    if (max_new >= ctx)
        max_new = ctx - 1;
    size_t keep = (size_t)(ctx - max_new);
    size_t skip = enc.n > keep ? enc.n - keep : 0; /* a long prompt keeps its end */
    mcli_gen_params p;
    engine_gen_params_default(&p);
    p.max_new_tokens = max_new;
    p.temperature = (float)(g.has_temperature ? g.temperature : m.temperature);
    p.greedy = p.temperature == 0.0f;
    p.top_p = (float)(g.has_top_p ? g.top_p : m.top_p);
    p.top_k = (int)(g.has_top_k ? g.top_k : m.top_k);
    p.seed = seed >= 0 ? (uint64_t)seed : fresh_seed();
    st = engine_generate(mm, enc.ids + skip, enc.n - skip, &p, NULL, NULL, &res, &err);
done:;
    double ms = now_ms() - t0;
    record(s, m.id, "generate", prompt, st == MCLI_OK ? res.text : NULL, ms, st == MCLI_OK ? NULL : &err);
    if (st == MCLI_OK) {
        json_t *ids = json_array();
        for (size_t i = 0; i < res.n; i++)
            json_array_append_new(ids, json_integer(res.ids[i]));
        reply(out, 200,
              json_pack("{s:s,s:f,s:s,s:I,s:o,s:s}", "generated_text", res.text ? res.text : "", "execution_time_ms",
                        ms, "model_id", m.id, "tokens", (json_int_t)res.n, "token_ids", ids, "finish_reason",
                        res.finish_reason ? res.finish_reason : "stop"));
    } else
        reply_err(out, &err);
    gen_result_free(&res);
    encoding_free(&enc);
    model_cache_release(s->cache, ref);
    json_decref(j);
    return;
fail_early:
    json_decref(j);
    reply_err(out, &err);
}

static void handle_classify(service *s, const char *key, const char *body, size_t len, svc_reply *out)
{
    mcli_err err = {0};
    reg_model m;
    json_t *j = parse_body(body, len, true, &err);
    if (!j)
        goto fail_early;
    if (registry_get(s->reg, key, &m, &err) != MCLI_OK)
        goto fail_early;
    const char *text = NULL;
    if (field_str(j, "text", true, PROMPT_MAX, &text, &err) != MCLI_OK)
        goto fail_early;

    double t0 = now_ms();
    model_cache_ref *ref = NULL;
    mcli_encoding enc;
    memset(&enc, 0, sizeof enc);
    float *logits = NULL, *probs = NULL;
    json_t *cls = NULL;
    char *cls_text = NULL;
    int n_labels = 0;
    mcli_status st = acquire_model(s, &m, &ref, &err);
    if (st != MCLI_OK)
        goto done;
    const mcli_model *mm = model_cache_model(ref);
    const mcli_model_info *info = engine_info(mm);
    if (!(info->tasks & MCLI_TASK_CLASSIFY)) {
        st = mcli_fail(&err, MCLI_ERR_UNSUPPORTED,
                       "model '%s' (%s) has no classification head; use /models/%s/generate or another model", m.name,
                       info->config->model_type, m.id);
        goto done;
    }
    n_labels = info->config->n_labels;
    const mcli_tok_opts to = {.add_special_tokens = true, .max_length = (size_t)info->config->max_positions,
                              .truncate = true};
    if ((st = tokenizer_encode(engine_tokenizer(mm), text, strlen(text), NULL, 0, &to, &enc, &err)) != MCLI_OK)
        goto done;
    logits = calloc((size_t)n_labels, sizeof *logits);
    probs = calloc((size_t)n_labels, sizeof *probs);
    if (!logits || !probs) {
        st = mcli_fail(&err, MCLI_ERR_NOMEM, "out of memory for %d labels", n_labels);
        goto done;
    }
    mcli_seq seq = {.ids = enc.ids, .type_ids = enc.type_ids, .len = enc.n};
    if ((st = engine_classify(mm, &seq, 1, logits, probs, &err)) != MCLI_OK)
        goto done;
    cls = json_object();
    for (int i = 0; i < n_labels; i++)
        json_object_set_new(cls, info->config->labels[i], json_real(probs[i]));
    cls_text = json_dumps(cls, JSON_COMPACT);
done:;
    double ms = now_ms() - t0;
    record(s, m.id, "classify", text, cls_text, ms, st == MCLI_OK ? NULL : &err);
    if (st == MCLI_OK)
        reply(out, 200, json_pack("{s:o,s:f,s:s}", "classifications", cls, "execution_time_ms", ms, "model_id", m.id));
    else
        reply_err(out, &err);
    free(cls_text);
    free(logits);
    free(probs);
    encoding_free(&enc);
    model_cache_release(s->cache, ref);
    json_decref(j);
    return;
fail_early:
    json_decref(j);
    reply_err(out, &err);
}

/* ---------------------------------------------------------------- download jobs */

static void job_unref_locked(svc_job *job)
{
    if (--job->refs == 0 && !job->listed)
        free(job);
}

static void job_unref(service *s, svc_job *job)
{
    pthread_mutex_lock(&s->lock);
    job_unref_locked(job);
    pthread_mutex_unlock(&s->lock);
}

/* Drops the oldest finished jobs beyond SVC_MAX_JOBS (lock held). */
static void jobs_prune_locked(service *s)
{
    size_t n = 0;
    for (svc_job *j = s->jobs; j; j = j->next)
        n++;
    while (n > SVC_MAX_JOBS) {
        svc_job **pp = &s->jobs, **oldest = NULL;
        for (; *pp; pp = &(*pp)->next)
            if ((*pp)->state != JOB_RUNNING)
                oldest = pp; /* the list is newest first: the last finished one is the oldest */
        if (!oldest)
            return;
        svc_job *victim = *oldest;
        *oldest = victim->next;
        victim->listed = false;
        if (victim->refs == 0)
            free(victim);
        n--;
    }
}

static int job_progress(void *user, const hub_event *ev)
{
    svc_job *job = user;
    service *s = job->svc;
    pthread_mutex_lock(&s->lock);
    switch (ev->kind) {
    case HUB_EV_FILE_START:
    case HUB_EV_PROGRESS:
    case HUB_EV_FILE_DONE:
        if (ev->file)
            snprintf(job->file, sizeof job->file, "%s", ev->file);
        job->index = ev->index;
        job->n_files = ev->n_files;
        job->file_done = ev->file_done;
        job->file_total = ev->file_total;
        job->total_done = ev->total_done;
        job->total_bytes = ev->total_bytes;
        job->bytes_per_sec = ev->bytes_per_sec;
        break;
    case HUB_EV_DONE:
        job->total_done = job->total_bytes = ev->total_bytes;
        break;
    case HUB_EV_MESSAGE:
        break;
    }
    job->seq++;
    pthread_cond_broadcast(&s->dl_cond);
    int cancel = s->stopping;
    pthread_mutex_unlock(&s->lock);
    return cancel;
}

static void *job_main(void *arg)
{
    svc_job *job = arg;
    service *s = job->svc;
    hub_pull_opts o = {.models_dir = s->models_dir, .repo = job->repo,
                       .revision = job->revision[0] ? job->revision : NULL,
                       .endpoint = job->endpoint[0] ? job->endpoint : NULL, .token = NULL, .offline = -1,
                       .policy = NULL, .progress = job_progress, .user = job};
    hub_pull_result res;
    memset(&res, 0, sizeof res);
    mcli_err err = {0};
    mcli_status st = hub_pull(&o, &res, &err);
    pthread_mutex_lock(&s->lock);
    if (st == MCLI_OK) {
        job->state = JOB_DONE;
        snprintf(job->dir, sizeof job->dir, "%s", res.dir);
        job->n_files = res.n_files;
        job->total_bytes = job->total_done = res.total_bytes;
    } else {
        job->state = JOB_FAILED;
        job->err = err;
    }
    job->seq++;
    s->active_jobs--;
    pthread_cond_broadcast(&s->dl_cond);
    job_unref_locked(job);
    pthread_mutex_unlock(&s->lock);
    LOG_INFO("service: download of %s %s%s", job->repo, st == MCLI_OK ? "done" : "failed: ",
             st == MCLI_OK ? "" : err.msg);
    return NULL;
}

/* Joins the running download of repo, or starts one. Returns a job with a reference for the caller. */
static mcli_status job_start(service *s, const char *key, const char *repo, const char *revision,
                             const char *endpoint, svc_job **out, mcli_err *err)
{
    pthread_mutex_lock(&s->lock);
    for (svc_job *j = s->jobs; j; j = j->next) {
        if (j->state == JOB_RUNNING && strcmp(j->repo, repo) == 0) {
            j->refs++;
            pthread_mutex_unlock(&s->lock);
            *out = j;
            return MCLI_OK;
        }
    }
    if (s->stopping) {
        pthread_mutex_unlock(&s->lock);
        return mcli_fail(err, MCLI_ERR_BUSY, "the service is stopping");
    }
    svc_job *job = calloc(1, sizeof *job);
    if (!job) {
        pthread_mutex_unlock(&s->lock);
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory starting a download");
    }
    snprintf(job->key, sizeof job->key, "%s", key);
    snprintf(job->repo, sizeof job->repo, "%s", repo);
    snprintf(job->revision, sizeof job->revision, "%s", revision ? revision : "");
    snprintf(job->endpoint, sizeof job->endpoint, "%s", endpoint ? endpoint : "");
    job->state = JOB_RUNNING;
    job->started = time(NULL);
    job->svc = s;
    job->refs = 2; /* the worker's and the caller's */
    job->listed = true;
    job->next = s->jobs;
    s->jobs = job;
    s->active_jobs++;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    int rc = pthread_create(&th, &attr, job_main, job);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        s->jobs = job->next;
        s->active_jobs--;
        pthread_mutex_unlock(&s->lock);
        free(job);
        return mcli_fail(err, MCLI_ERR_INTERNAL, "cannot start a download thread: %s", strerror(rc));
    }
    jobs_prune_locked(s);
    pthread_mutex_unlock(&s->lock);
    *out = job;
    return MCLI_OK;
}

/* Waits until job ends (lock not held by the caller). */
static void job_wait(service *s, svc_job *job)
{
    pthread_mutex_lock(&s->lock);
    while (job->state == JOB_RUNNING)
        pthread_cond_wait(&s->dl_cond, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

static json_t *job_json_locked(const svc_job *j)
{
    static const char *const names[] = {"downloading", "success", "error"};
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:f}", "model_key", j->key, "repo", j->repo,
                          "status", names[j->state], "file", j->file, "file_index", (json_int_t)j->index, "n_files",
                          (json_int_t)j->n_files, "completed", (json_int_t)j->file_done, "total",
                          (json_int_t)j->file_total, "total_completed", (json_int_t)j->total_done, "total_bytes",
                          (json_int_t)j->total_bytes, "bytes_per_sec", j->bytes_per_sec);
    if (o && j->state == JOB_DONE)
        json_object_set_new(o, "path", json_string(j->dir));
    if (o && j->state == JOB_FAILED)
        json_object_set_new(o, "error", json_string(j->err.msg));
    return o;
}

/* NDJSON progress stream of one job: a line at every change, the final line with status
 * "success" (and path) or "error". */
typedef struct {
    service *s;
    svc_job *job;
    unsigned seen;
    bool ended;
    char *line;
    size_t len, off;
} job_stream;

static size_t job_stream_next(void *ctx, char *buf, size_t cap)
{
    job_stream *js = ctx;
    while (js->off >= js->len) {
        free(js->line);
        js->line = NULL;
        js->len = js->off = 0;
        if (js->ended)
            return 0;
        service *s = js->s;
        pthread_mutex_lock(&s->lock);
        while (js->job->seq == js->seen && js->job->state == JOB_RUNNING)
            pthread_cond_wait(&s->dl_cond, &s->lock);
        js->seen = js->job->seq;
        if (js->job->state != JOB_RUNNING)
            js->ended = true;
        json_t *o = job_json_locked(js->job);
        pthread_mutex_unlock(&s->lock);
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!text)
            return 0;
        size_t n = strlen(text);
        js->line = malloc(n + 2);
        if (!js->line) {
            free(text);
            return 0;
        }
        memcpy(js->line, text, n);
        js->line[n] = '\n';
        js->line[n + 1] = '\0';
        free(text);
        js->len = n + 1;
    }
    size_t take = js->len - js->off < cap ? js->len - js->off : cap;
    memcpy(buf, js->line + js->off, take);
    js->off += take;
    return take;
}

static void job_stream_free(void *ctx)
{
    job_stream *js = ctx;
    job_unref(js->s, js->job);
    free(js->line);
    free(js);
}

/* ---------------------------------------------------------------- /lightweight/... */

/* Resolves a model key: a catalog key or repo, else any valid org/name repository. */
static mcli_status resolve_key(service *s, const char *key, const hub_entry **entry, mcli_err *err)
{
    *entry = s->catalog ? hub_catalog_find(s->catalog, key) : NULL;
    if (*entry || models_dir_repo_valid(key))
        return MCLI_OK;
    return mcli_fail(err, MCLI_ERR_NOT_FOUND,
                     "unknown model key '%.200s': not in the catalog and not an org/name repository id "
                     "(see GET /lightweight/models)", key);
}

static void handle_lw_download(service *s, const char *raw_key, bool stream, const char *body, size_t len,
                               svc_reply *out)
{
    char key[256];
    mcli_err err = {0};
    if (!url_decode(raw_key, key, sizeof key) || !key[0]) {
        reply_fail(out, MCLI_ERR_INVALID_ARG, "bad model key in the path");
        return;
    }
    json_t *j = parse_body(body, len, false, &err);
    if (!j) {
        reply_err(out, &err);
        return;
    }
    json_t *sf = json_object_get(j, "stream");
    if (json_is_true(sf))
        stream = true;
    json_decref(j);
    const hub_entry *e = NULL;
    if (resolve_key(s, key, &e, &err) != MCLI_OK) {
        reply_err(out, &err);
        return;
    }
    if (e && e->bundled && e->path) {
        reply(out, 200, json_pack("{s:s,s:s,s:s,s:b}", "status", "success", "model_key", key, "path", e->path,
                                  "bundled", 1));
        return;
    }
    svc_job *job = NULL;
    if (job_start(s, key, e ? e->repo : key, e ? e->revision : NULL, NULL, &job, &err) != MCLI_OK) {
        reply_err(out, &err);
        return;
    }
    if (stream) {
        job_stream *js = calloc(1, sizeof *js);
        if (!js) {
            job_unref(s, job);
            reply_fail(out, MCLI_ERR_NOMEM, "out of memory");
            return;
        }
        js->s = s;
        js->job = job;
        memset(out, 0, sizeof *out);
        out->status = 200;
        out->stream = (svc_stream){.next = job_stream_next, .free = job_stream_free, .ctx = js,
                                   .content_type = "application/x-ndjson"};
        return;
    }
    job_wait(s, job);
    pthread_mutex_lock(&s->lock);
    if (job->state == JOB_DONE)
        reply(out, 200, json_pack("{s:s,s:s,s:s,s:s,s:I,s:I}", "status", "success", "model_key", key, "repo", job->repo,
                                  "path", job->dir, "files", (json_int_t)job->n_files, "total_bytes",
                                  (json_int_t)job->total_bytes));
    else
        reply_err(out, &job->err);
    job_unref_locked(job);
    pthread_mutex_unlock(&s->lock);
}

static json_t *lw_loaded_names_locked(service *s)
{
    json_t *arr = json_array();
    if (s->lw)
        for (size_t i = 0; i < s->lw->n_models; i++)
            json_array_append_new(arr, json_string(s->lw->models[i].name));
    return arr;
}

static void handle_lw_models(service *s, svc_reply *out)
{
    mcli_err err = {0};
    models_dir_entry *list = NULL;
    size_t n = 0;
    if (models_dir_list(s->models_dir, &list, &n, &err) != MCLI_OK) {
        reply_err(out, &err);
        return;
    }
    json_t *downloaded = json_array();
    for (size_t i = 0; i < n; i++)
        if (models_dir_has_model(list[i].path))
            json_array_append_new(downloaded, json_pack("{s:s,s:s,s:I}", "repo", list[i].repo, "path", list[i].path,
                                                        "bytes", (json_int_t)list[i].bytes));
    json_t *models = json_array();
    if (s->catalog) {
        for (size_t c = 0; c < hub_catalog_count(s->catalog); c++) {
            const hub_entry *e = hub_catalog_at(s->catalog, c);
            bool on_disk = false;
            const char *path = NULL;
            for (size_t i = 0; i < n; i++)
                if (strcmp(list[i].repo, e->repo) == 0 && models_dir_has_model(list[i].path)) {
                    on_disk = true;
                    path = list[i].path;
                }
            if (e->bundled && e->path) {
                on_disk = true;
                path = e->path;
            }
            json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:f,s:b}", "key", e->key, "repo", e->repo, "name",
                                  e->name ? e->name : e->key, "description", e->description ? e->description : "",
                                  "parameters", e->parameters ? e->parameters : "", "type", e->type ? e->type : "",
                                  "architecture", e->architecture ? e->architecture : "", "size_mb", e->size_mb,
                                  "downloaded", on_disk);
            if (o)
                json_object_set_new(o, "path", path ? json_string(path) : json_null());
            json_array_append_new(models, o);
        }
    }
    models_dir_list_free(list);
    pthread_mutex_lock(&s->lock);
    json_t *loaded = lw_loaded_names_locked(s);
    pthread_mutex_unlock(&s->lock);
    json_t *j = json_pack("{s:o,s:o,s:o,s:s}", "models", models, "downloaded", downloaded, "loaded", loaded,
                          "models_dir", s->models_dir);
    if (!s->catalog)
        json_object_set_new(j, "catalog_error", json_string(s->catalog_error));
    reply(out, 200, j);
}

static void handle_lw_start(service *s, const char *body, size_t len, svc_reply *out)
{
    mcli_err err = {0};
    json_t *j = parse_body(body, len, false, &err);
    int bound = atomic_load(&s->bound_port);
    long long port = s->lightweight_port ? s->lightweight_port : (bound ? bound + 1 : 0);
    if (!j || field_int(j, "port", 0, 65535, NULL, &port, &err) != MCLI_OK) {
        json_decref(j);
        reply_err(out, &err);
        return;
    }
    json_decref(j);
    pthread_mutex_lock(&s->lw_lock);
    server *srv = NULL;
    models_dir_entry *list = NULL;
    size_t n = 0, added = 0;
    if (s->lw) {
        char url[320];
        snprintf(url, sizeof url, "http://%s:%d", s->host, s->lw_port);
        reply(out, 200, json_pack("{s:s,s:i,s:s}", "status", "already_running", "port", s->lw_port, "url", url));
        goto done;
    }
    if (models_dir_list(s->models_dir, &list, &n, &err) != MCLI_OK)
        goto fail;
    server_opts o;
    server_opts_default(&o);
    o.host = s->host;
    o.port = (int)port;
    o.models_dir = s->models_dir;
    o.access_log = s->access_log;
    o.api_key = s->api_key[0] ? s->api_key : NULL;
    if (server_new(&o, &srv, &err) != MCLI_OK)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        if (!models_dir_has_model(list[i].path))
            continue;
        mcli_err e2 = {0};
        if (server_add_model(srv, list[i].repo, list[i].path, &e2) != MCLI_OK) {
            LOG_WARN("service: lightweight server: skipping %s: %s", list[i].repo, e2.msg);
            continue;
        }
        added++;
    }
    if (added == 0) {
        mcli_fail(&err, MCLI_ERR_NOT_FOUND,
                  "no downloaded model could be loaded from %s/lightweight; download one first "
                  "(POST /lightweight/models/{key}/download)", s->models_dir);
        goto fail;
    }
    if (server_start(srv, &err) != MCLI_OK)
        goto fail;
    pthread_mutex_lock(&s->lock);
    s->lw = srv;
    s->lw_port = server_port(srv);
    json_t *names = lw_loaded_names_locked(s);
    pthread_mutex_unlock(&s->lock);
    srv = NULL;
    char url[320];
    snprintf(url, sizeof url, "http://%s:%d", s->host, s->lw_port);
    reply(out, 200, json_pack("{s:s,s:i,s:s,s:o}", "status", "started", "port", s->lw_port, "url", url, "models",
                              names));
    LOG_INFO("service: lightweight server started on %s with %zu model(s)", url, added);
    goto done;
fail:
    reply_err(out, &err);
done:
    server_free(srv);
    models_dir_list_free(list);
    pthread_mutex_unlock(&s->lw_lock);
}

static void handle_lw_status(service *s, svc_reply *out)
{
    mcli_sysinfo si;
    mcli_err err = {0};
    json_t *sys = NULL;
    if (sysinfo_probe(s->models_dir, &si, &err) == MCLI_OK) {
        char *text = sysinfo_to_json(&si);
        sys = text ? json_loads(text, 0, NULL) : NULL;
        free(text);
    }
    if (!sys)
        sys = json_pack("{s:s}", "error", err.msg[0] ? err.msg : "unavailable");
    pthread_mutex_lock(&s->lock);
    json_t *downloads = json_array();
    for (svc_job *j = s->jobs; j; j = j->next)
        json_array_append_new(downloads, job_json_locked(j));
    json_t *o = json_pack("{s:b,s:o,s:o,s:o,s:o}", "running", s->lw != NULL, "port",
                          s->lw ? json_integer(s->lw_port) : json_null(), "loaded_models", lw_loaded_names_locked(s),
                          "system_info", sys, "downloads", downloads);
    if (s->lw) {
        char url[320];
        snprintf(url, sizeof url, "http://%s:%d", s->host, s->lw_port);
        json_object_set_new(o, "url", json_string(url));
    }
    pthread_mutex_unlock(&s->lock);
    reply(out, 200, o);
}

/* ---------------------------------------------------------------- from-url */

/* Splits a model URL: "https://host[:port]/org/name[/tree/REV]" (endpoint = scheme://host:port),
 * "hf://org/name", or a bare "org/name[@REV]". */
mcli_status service_parse_model_url(const char *url, char *endpoint, size_t ecap, char *repo, size_t rcap, char *rev,
                                   size_t vcap, mcli_err *err)
{
    endpoint[0] = repo[0] = rev[0] = '\0';
    const char *rest = url;
    if (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0) {
        const char *host = strstr(url, "://") + 3;
        const char *slash = strchr(host, '/');
        if (!slash || slash == host)
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "url '%.200s' names no repository after the host", url);
        if ((size_t)(slash - url) >= ecap)
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "url '%.200s': the host part is too long", url);
        memcpy(endpoint, url, (size_t)(slash - url));
        endpoint[slash - url] = '\0';
        rest = slash + 1;
    } else if (strncmp(url, "hf://", 5) == 0) {
        rest = url + 5;
    }
    char buf[512];
    if (strlen(rest) >= sizeof buf)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "url is too long");
    snprintf(buf, sizeof buf, "%s", rest);
    char *tree = strstr(buf, "/tree/");
    if (tree) {
        *tree = '\0';
        snprintf(rev, vcap, "%s", tree + 6);
        char *end = rev + strcspn(rev, "/?#");
        *end = '\0';
    }
    buf[strcspn(buf, "?#")] = '\0';
    size_t L = strlen(buf);
    while (L > 0 && buf[L - 1] == '/')
        buf[--L] = '\0';
    if (!tree) {
        char repo_only[256], rev_only[128];
        if (hub_parse_ref(buf, repo_only, sizeof repo_only, rev_only, sizeof rev_only, err) != MCLI_OK)
            return err->code;
        snprintf(buf, sizeof buf, "%s", repo_only);
        snprintf(rev, vcap, "%s", rev_only);
    }
    if (!models_dir_repo_valid(buf))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "'%.200s' is not a repository id (org/name)", buf);
    snprintf(repo, rcap, "%s", buf);
    return MCLI_OK;
}

static void handle_from_url(service *s, const char *body, size_t len, svc_reply *out)
{
    mcli_err err = {0};
    json_t *j = parse_body(body, len, true, &err);
    const char *url = NULL;
    char endpoint[512], repo[256], rev[128];
    if (!j || field_str(j, "url", true, 1000, &url, &err) != MCLI_OK ||
        service_parse_model_url(url, endpoint, sizeof endpoint, repo, sizeof repo, rev, sizeof rev, &err) != MCLI_OK) {
        json_decref(j);
        reply_err(out, &err);
        return;
    }
    svc_job *job = NULL;
    if (job_start(s, repo, repo, rev, endpoint, &job, &err) != MCLI_OK) {
        json_decref(j);
        reply_err(out, &err);
        return;
    }
    job_wait(s, job);
    char dir[4096];
    pthread_mutex_lock(&s->lock);
    bool ok = job->state == JOB_DONE;
    if (ok)
        snprintf(dir, sizeof dir, "%s", job->dir);
    else
        err = job->err;
    job_unref_locked(job);
    pthread_mutex_unlock(&s->lock);
    if (!ok) {
        json_decref(j);
        reply_err(out, &err);
        return;
    }
    const char *slash = strrchr(repo, '/');
    add_and_load(s, j, dir, slash ? slash + 1 : repo, out);
    if (out->body && out->status == 200)
        json_object_set_new(out->body, "path", json_string(dir));
    json_decref(j);
}

/* ---------------------------------------------------------------- dispatch */

/* Exact-path routes; the /models/{id}... and /lightweight/models/{key}/download families follow. */
typedef struct {
    const char *method, *path;
    void (*no_body)(service *s, svc_reply *out);
    void (*with_body)(service *s, const char *body, size_t len, svc_reply *out);
} exact_route;

static const exact_route exact_routes[] = {
    {"GET", "/", handle_root, NULL},
    {"GET", "/health", handle_health, NULL},
    {"GET", "/models", handle_list, NULL},
    {"POST", "/models", NULL, handle_add},
    {"GET", "/models/summary", handle_summary, NULL},
    {"POST", "/models/from-url", NULL, handle_from_url},
    {"GET", "/lightweight/models", handle_lw_models, NULL},
    {"POST", "/lightweight/start", NULL, handle_lw_start},
    {"GET", "/lightweight/status", handle_lw_status, NULL},
};

void service_handle(service *s, const char *method, const char *path, bool query_stream, const char *body,
                    size_t body_len, svc_reply *out)
{
    memset(out, 0, sizeof *out);
    char p[SVC_PATH_MAX];
    size_t plen = strnlen(path, sizeof p);
    if (plen >= sizeof p) {
        reply_fail(out, MCLI_ERR_TOO_LARGE, "path too long");
        return;
    }
    memcpy(p, path, plen + 1);
    while (plen > 1 && p[plen - 1] == '/')
        p[--plen] = '\0';

    bool path_known = false;
    for (size_t i = 0; i < sizeof exact_routes / sizeof exact_routes[0]; i++) {
        const exact_route *r = &exact_routes[i];
        if (strcmp(p, r->path) != 0)
            continue;
        path_known = true;
        if (strcmp(method, r->method) != 0)
            continue;
        if (r->no_body)
            r->no_body(s, out);
        else
            r->with_body(s, body, body_len, out);
        return;
    }

    static const char lw_prefix[] = "/lightweight/models/", dl_suffix[] = "/download";
    const size_t lp = sizeof lw_prefix - 1, ds = sizeof dl_suffix - 1;
    static const char m_prefix[] = "/models/";
    const size_t mp = sizeof m_prefix - 1;
    if (!path_known && plen > lp + ds && strncmp(p, lw_prefix, lp) == 0 && strcmp(p + plen - ds, dl_suffix) == 0) {
        path_known = true;
        if (strcmp(method, "POST") == 0) {
            p[plen - ds] = '\0';
            handle_lw_download(s, p + lp, query_stream, body, body_len, out);
            return;
        }
    } else if (!path_known && plen > mp && strncmp(p, m_prefix, mp) == 0) {
        /* the id may hold '/' (a name like "org/model"): only a known last segment is an action */
        char *id = p + mp;
        char *action = strrchr(id, '/');
        if (action && (strcmp(action + 1, "remove") == 0 || strcmp(action + 1, "generate") == 0 ||
                       strcmp(action + 1, "classify") == 0))
            *action++ = '\0';
        else
            action = NULL;
        path_known = true;
        if (!action && strcmp(method, "GET") == 0) {
            handle_get_one(s, id, out);
            return;
        }
        if (!action && strcmp(method, "PUT") == 0) {
            handle_update(s, id, body, body_len, out);
            return;
        }
        if (!action && strcmp(method, "DELETE") == 0) {
            handle_unload(s, id, false, out);
            return;
        }
        if (action && strcmp(action, "remove") == 0 && strcmp(method, "DELETE") == 0) {
            handle_unload(s, id, true, out);
            return;
        }
        if (action && strcmp(action, "generate") == 0 && strcmp(method, "POST") == 0) {
            handle_generate(s, id, body, body_len, out);
            return;
        }
        if (action && strcmp(action, "classify") == 0 && strcmp(method, "POST") == 0) {
            handle_classify(s, id, body, body_len, out);
            return;
        }
    }
    if (path_known)
        reply(out, 405, json_pack("{s:s+,s:s}", "detail", "method not allowed on ", path, "error", "method_not_allowed"));
    else
        reply(out, 404, json_pack("{s:s+,s:s}", "detail", "no route for ", path, "error", "not_found"));
}

/* ---------------------------------------------------------------- life */

mcli_status service_new(const service_opts *o, service **out, mcli_err *err)
{
    *out = NULL;
    if (!o->models_dir || !*o->models_dir)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "service: no models directory");
    service *s = calloc(1, sizeof *s);
    if (!s)
        return mcli_fail(err, MCLI_ERR_NOMEM, "service: out of memory");
    mcli_status st = MCLI_OK;
    bool locks = false;
    snprintf(s->host, sizeof s->host, "%s", o->host && *o->host ? o->host : "127.0.0.1");
    s->port = o->port;
    s->lightweight_port = o->lightweight_port;
    s->access_log = o->access_log;
    s->started = time(NULL);
    if (o->api_key && strlen(o->api_key) >= sizeof s->api_key) {
        st = mcli_fail(err, MCLI_ERR_INVALID_ARG, "service: the API key is longer than %zu bytes",
                       sizeof s->api_key - 1);
        goto fail;
    }
    snprintf(s->api_key, sizeof s->api_key, "%s", o->api_key ? o->api_key : "");
    int n1 = snprintf(s->models_dir, sizeof s->models_dir, "%s", o->models_dir);
    int n2 = o->db_path && *o->db_path ? snprintf(s->db_path, sizeof s->db_path, "%s", o->db_path)
                                       : snprintf(s->db_path, sizeof s->db_path, "%s/registry.db", o->models_dir);
    if (n1 < 0 || (size_t)n1 >= sizeof s->models_dir || n2 < 0 || (size_t)n2 >= sizeof s->db_path) {
        st = mcli_fail(err, MCLI_ERR_INVALID_ARG, "service: models directory or database path too long");
        goto fail;
    }
    if (pthread_mutex_init(&s->lock, NULL) != 0 || pthread_mutex_init(&s->lw_lock, NULL) != 0 ||
        pthread_cond_init(&s->dl_cond, NULL) != 0) {
        st = mcli_fail(err, MCLI_ERR_INTERNAL, "service: cannot create locks");
        goto fail;
    }
    locks = true;
    if ((st = models_dir_mkdirs(s->models_dir, err)) != MCLI_OK)
        goto fail;
    if ((st = registry_open(s->db_path, &s->reg, err)) != MCLI_OK)
        goto fail;
    if ((st = registry_clear_loaded(s->reg, err)) != MCLI_OK)
        goto fail;
    model_cache_opts co = {.max_models = o->max_models, .max_memory_mb = o->max_memory_mb,
                           .loader = model_cache_engine_loader(o->threads > 0 ? o->threads : 1),
                           .on_evict = on_evict, .evict_user = s};
    if ((st = model_cache_new(&co, &s->cache, err)) != MCLI_OK)
        goto fail;
    mcli_err cerr = {0};
    if (hub_catalog_open_default(&s->catalog, &cerr) != MCLI_OK) {
        snprintf(s->catalog_error, sizeof s->catalog_error, "%s", cerr.msg);
        LOG_WARN("service: no catalog: %s", cerr.msg);
        s->catalog = NULL;
    }
    *out = s;
    return MCLI_OK;
fail:
    model_cache_free(s->cache);
    registry_close(s->reg);
    if (locks) {
        pthread_mutex_destroy(&s->lock);
        pthread_mutex_destroy(&s->lw_lock);
        pthread_cond_destroy(&s->dl_cond);
    }
    free(s);
    return st;
}

/* service_free's half in this file: cancel downloads and wait for their threads. */
void service_routes_shutdown(service *s);
void service_routes_shutdown(service *s)
{
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    while (s->active_jobs > 0)
        pthread_cond_wait(&s->dl_cond, &s->lock);
    svc_job *j = s->jobs;
    s->jobs = NULL;
    while (j) {
        svc_job *next = j->next;
        j->listed = false;
        if (j->refs == 0)
            free(j);
        j = next;
    }
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_lock(&s->lw_lock); /* no /lightweight/start in progress past this point */
    pthread_mutex_lock(&s->lock);
    server *lw = s->lw;
    s->lw = NULL;
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&s->lw_lock);
    if (lw) {
        server_shutdown(lw, 2.0);
        server_free(lw);
    }
}

void service_routes_free(service *s);
void service_routes_free(service *s)
{
    model_cache_free(s->cache);
    registry_close(s->reg);
    hub_catalog_free(s->catalog);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->lw_lock);
    pthread_cond_destroy(&s->dl_cond);
    free(s);
}
