/* json_reply.c - request bodies: JSON parsing with positions, typed field readers that name the
 * field on error, float arrays. Runs on HTTP threads; no shared state. */
#include <math.h>
#include <string.h>

#include "server/server_internal.h"

json_t *req_body_json(http_req *r)
{
    if (!r->body || r->body_len == 0) {
        req_error(r, MCLI_ERR_INVALID_ARG, 400, "empty request body: send a JSON object");
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        req_error(r, MCLI_ERR_FORMAT, 400, "invalid JSON at line %d, column %d (byte %d): %s", je.line, je.column,
                  je.position, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        req_error(r, MCLI_ERR_INVALID_ARG, 400, "the request body must be a JSON object");
        return NULL;
    }
    return j;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

mcli_status jf_string(json_t *o, const char *where, const char *key, bool required, const char **v, size_t *len,
                      mcli_err *err)
{
    json_t *x = json_object_get(o, key);
    if (!x || json_is_null(x)) {
        if (required)
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "missing field \"%s%s\" (a string)", where, key);
        return MCLI_OK;
    }
    if (!json_is_string(x))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"%s%s\" must be a string, not %s", where, key, type_name(x));
    *v = json_string_value(x);
    if (len)
        *len = json_string_length(x);
    if (memchr(*v, '\0', json_string_length(x)))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"%s%s\" contains a NUL character", where, key);
    return MCLI_OK;
}

mcli_status jf_int(json_t *o, const char *where, const char *key, long long lo, long long hi, long long *v,
                   mcli_err *err)
{
    json_t *x = json_object_get(o, key);
    if (!x || json_is_null(x))
        return MCLI_OK;
    long long n;
    if (json_is_integer(x)) {
        n = json_integer_value(x);
    } else if (json_is_real(x) && json_real_value(x) == floor(json_real_value(x)) && fabs(json_real_value(x)) < 9e15) {
        n = (long long)json_real_value(x);
    } else {
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"%s%s\" must be an integer, not %s", where, key,
                         type_name(x));
    }
    if (n < lo || n > hi)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"%s%s\" = %lld is out of range [%lld, %lld]", where, key,
                         n, lo, hi);
    *v = n;
    return MCLI_OK;
}

mcli_status jf_number(json_t *o, const char *where, const char *key, double lo, double hi, double *v, mcli_err *err)
{
    json_t *x = json_object_get(o, key);
    if (!x || json_is_null(x))
        return MCLI_OK;
    if (!json_is_number(x))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"%s%s\" must be a number, not %s", where, key, type_name(x));
    double n = json_number_value(x);
    if (!(n >= lo && n <= hi))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"%s%s\" = %g is out of range [%g, %g]", where, key, n, lo,
                         hi);
    *v = n;
    return MCLI_OK;
}

mcli_status jf_bool(json_t *o, const char *where, const char *key, bool *v, mcli_err *err)
{
    json_t *x = json_object_get(o, key);
    if (!x || json_is_null(x))
        return MCLI_OK;
    if (!json_is_boolean(x))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"%s%s\" must be true or false, not %s", where, key,
                         type_name(x));
    *v = json_is_true(x);
    return MCLI_OK;
}

mcli_status jf_texts(json_t *o, const char *key, bool required, sched_job *job, bool *listed, mcli_err *err)
{
    json_t *x = json_object_get(o, key);
    if (listed)
        *listed = false;
    if (!x || json_is_null(x)) {
        if (required)
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "missing field \"%s\" (a string or a list of strings)", key);
        return MCLI_OK;
    }
    if (json_is_string(x)) {
        if (memchr(json_string_value(x), '\0', json_string_length(x)))
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"%s\" contains a NUL character", key);
        return sched_job_add_text(job, json_string_value(x), json_string_length(x), err);
    }
    if (!json_is_array(x))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"%s\" must be a string or a list of strings, not %s", key,
                         type_name(x));
    if (json_array_size(x) == 0)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"%s\" is an empty list", key);
    if (listed)
        *listed = true;
    size_t i;
    json_t *e;
    json_array_foreach(x, i, e)
    {
        if (!json_is_string(e))
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"%s[%zu]\" must be a string, not %s", key, i,
                             type_name(e));
        if (memchr(json_string_value(e), '\0', json_string_length(e)))
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"%s[%zu]\" contains a NUL character", key, i);
        mcli_status st = sched_job_add_text(job, json_string_value(e), json_string_length(e), err);
        if (st != MCLI_OK)
            return st;
    }
    return MCLI_OK;
}

mcli_status jf_stop(json_t *o, const char *where, const char *key, sched_job *job, mcli_err *err)
{
    json_t *x = json_object_get(o, key);
    if (!x || json_is_null(x))
        return MCLI_OK;
    if (json_is_string(x))
        return sched_job_add_stop(job, json_string_value(x), json_string_length(x), err);
    if (!json_is_array(x))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"%s%s\" must be a string or a list of strings, not %s",
                         where, key, type_name(x));
    size_t i;
    json_t *e;
    json_array_foreach(x, i, e)
    {
        if (!json_is_string(e))
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"%s%s[%zu]\" must be a string", where, key, i);
        mcli_status st = sched_job_add_stop(job, json_string_value(e), json_string_length(e), err);
        if (st != MCLI_OK) {
            mcli_err_prefix(err, "field \"%s%s\"", where, key);
            return st;
        }
    }
    return MCLI_OK;
}

json_t *json_floats(const float *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_real(isfinite(v[i]) ? (double)v[i] : 0.0));
    return a;
}
