/* routes_openai.c - the OpenAI-compatible API (/v1/...): models, completions, chat completions
 * (Server-Sent Events with "stream": true, "data: [DONE]" last), embeddings (float or base64).
 * Shapes follow the OpenAI API reference. Handlers run on HTTP threads; the work goes through
 * the scheduler. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

static const gen_names openai_names = {
    .max_new = "max_tokens", .max_new_alias = "max_completion_tokens", .repeat_penalty = "repetition_penalty",
    .def_temperature = 1.0, .def_top_p = 1.0, .def_top_k = 0, .def_max_new = 16, .def_repeat_penalty = 1.0,
};

static void get_models(http_req *r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r->srv->n_models; i++) {
        srv_model *m = &r->srv->models[i];
        json_array_append_new(a, json_pack("{s:s,s:s,s:I,s:s}", "id", m->name, "object", "model", "created",
                                           (json_int_t)m->loaded_at, "owned_by", "mcli"));
    }
    req_reply_json(r, 200, json_pack("{s:s,s:o}", "object", "list", "data", a));
}

/* ---- completions ---- */

static bool is_chat(const http_req *r) { return r->route == MET_V1_CHAT; }

static json_t *usage_json(const sched_job *job)
{
    return json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)job->gen.n_prompt, "completion_tokens",
                     (json_int_t)job->gen.n, "total_tokens", (json_int_t)(job->gen.n_prompt + job->gen.n));
}

/* "stop" (EOS or a stop string) and "length" are OpenAI's names too; "cancelled" never reaches a client. */
static const char *finish_reason(const sched_job *job)
{
    return job->gen.finish_reason ? job->gen.finish_reason : "stop";
}

static void openai_finish(http_req *r, sched_job *job)
{
    if (job->status != MCLI_OK) {
        req_error_err(r, &job->err);
        return;
    }
    metrics_tokens(job->gen.n_prompt, job->gen.n);
    gen_ctx *c = r->ctx;
    json_t *choice = is_chat(r) ? json_pack("{s:i,s:{s:s,s:o},s:n,s:s}", "index", 0, "message", "role", "assistant",
                                            "content", gen_text_json(job), "logprobs", "finish_reason",
                                            finish_reason(job))
                                : json_pack("{s:o,s:i,s:n,s:s}", "text", gen_text_json(job), "index", 0, "logprobs",
                                            "finish_reason", finish_reason(job));
    json_t *j = json_pack("{s:s,s:s,s:I,s:s,s:[o],s:o,s:s}", "id", c->id, "object",
                          is_chat(r) ? "chat.completion" : "text_completion", "created", (json_int_t)c->created,
                          "model", c->model, "choices", choice, "usage", usage_json(job), "system_fingerprint",
                          "mcli-" MCLI_VERSION);
    req_reply_json(r, 200, j);
}

/* One SSE chunk with a single choice; finish may be NULL (still generating). */
static json_t *sse_chunk(http_req *r, const char *text, size_t len, const char *finish)
{
    gen_ctx *c = r->ctx;
    json_t *t = json_stringn(text, len);
    if (!t)
        t = json_string("");
    json_t *choice;
    if (is_chat(r)) {
        json_t *delta = json_object();
        if (!c->sent_role) {
            json_object_set_new(delta, "role", json_string("assistant"));
            c->sent_role = true;
        }
        if (finish && len == 0)
            json_decref(t);
        else
            json_object_set_new(delta, "content", t);
        choice = json_pack("{s:i,s:o,s:n,s:o}", "index", 0, "delta", delta, "logprobs", "finish_reason",
                           finish ? json_string(finish) : json_null());
    } else {
        choice = json_pack("{s:o,s:i,s:n,s:o}", "text", t, "index", 0, "logprobs", "finish_reason",
                           finish ? json_string(finish) : json_null());
    }
    return json_pack("{s:s,s:s,s:I,s:s,s:[o]}", "id", c->id, "object",
                     is_chat(r) ? "chat.completion.chunk" : "text_completion", "created", (json_int_t)c->created,
                     "model", c->model, "choices", choice);
}

static void openai_token(http_req *r, sched_job *job, int32_t id, const char *piece, size_t len)
{
    if (len)
        req_stream_json(r, "data: ", sse_chunk(r, piece, len, NULL), "\n\n");
}

static void openai_stream_done(http_req *r, sched_job *job)
{
    gen_ctx *c = r->ctx;
    if (job->status != MCLI_OK) {
        req_stream_json(r, "data: ", json_pack("{s:{s:s,s:s}}", "error", "message", job->err.msg, "type",
                                               mcli_status_name(job->status)), "\n\n");
    } else {
        metrics_tokens(job->gen.n_prompt, job->gen.n);
        json_t *last = sse_chunk(r, "", 0, finish_reason(job));
        json_object_set_new(last, "usage", usage_json(job)); /* usage on the final chunk, always */
        req_stream_json(r, "data: ", last, "\n\n");
        if (c->include_usage) { /* and the separate usage-only chunk OpenAI sends when asked */
            json_t *u = json_pack("{s:s,s:s,s:I,s:s,s:[],s:o}", "id", c->id, "object",
                                  is_chat(r) ? "chat.completion.chunk" : "text_completion", "created",
                                  (json_int_t)c->created, "model", c->model, "choices", "usage", usage_json(job));
            req_stream_json(r, "data: ", u, "\n\n");
        }
    }
    req_stream_write(r, "data: [DONE]\n\n", 14);
}

static void post_completion(http_req *r)
{
    json_t *body = req_body_json(r);
    if (!body)
        return;
    mcli_err err;
    mcli_err_clear(&err);
    const char *name = NULL;
    if (jf_string(body, "", "model", true, &name, NULL, &err) != MCLI_OK) {
        json_decref(body);
        req_error_err(r, &err);
        return;
    }
    srv_model *m = route_model(r, name, MCLI_TASK_GENERATE);
    if (!m) {
        json_decref(body);
        return;
    }
    sched_job *job = sched_job_new(SCHED_GENERATE);
    bool stream = false;
    long long n = 1;
    mcli_status st = job ? MCLI_OK : mcli_fail(&err, MCLI_ERR_NOMEM, "out of memory");
    if (st == MCLI_OK)
        st = gen_read_params(body, "", &openai_names, job, &err);
    if (st == MCLI_OK)
        st = jf_bool(body, "", "stream", &stream, &err);
    if (st == MCLI_OK)
        st = jf_int(body, "", "n", 1, 1, &n, &err);
    if (st == MCLI_OK)
        st = jf_bool(body, "", "truncate", &job->truncate, &err);
    if (st == MCLI_OK && is_chat(r)) {
        st = gen_read_messages(body, job, &err);
    } else if (st == MCLI_OK) {
        json_t *p = json_object_get(body, "prompt");
        if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0)))
            p = json_array_get(p, 0);
        if (!p)
            st = mcli_fail(&err, MCLI_ERR_INVALID_ARG, "missing field \"prompt\" (a string)");
        else if (!json_is_string(p))
            st = mcli_fail(&err, MCLI_ERR_INVALID_ARG, "field \"prompt\" must be a string (one prompt per request)");
        else if (memchr(json_string_value(p), '\0', json_string_length(p)))
            st = mcli_fail(&err, MCLI_ERR_INVALID_ARG, "field \"prompt\" contains a NUL character");
        else if (!(job->prompt = strndup(json_string_value(p), json_string_length(p))))
            st = mcli_fail(&err, MCLI_ERR_NOMEM, "out of memory");
    }
    gen_ctx *c = st == MCLI_OK ? gen_ctx_new(r, m, is_chat(r) ? "chatcmpl-" : "cmpl-") : NULL;
    if (st == MCLI_OK && !c)
        st = mcli_fail(&err, MCLI_ERR_NOMEM, "out of memory");
    json_t *so = json_object_get(body, "stream_options");
    if (c && json_is_object(so))
        c->include_usage = json_is_true(json_object_get(so, "include_usage"));
    json_decref(body);
    if (st != MCLI_OK) {
        sched_job_unref(job);
        req_error_err(r, &err);
        return;
    }
    if (stream)
        req_submit_stream(r, m, job, "text/event-stream", openai_token, openai_stream_done, openai_finish);
    else
        req_submit(r, m, job, openai_finish);
}

/* ---- embeddings ---- */

static char *base64_floats(const float *v, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t bytes = n * 4;
    unsigned char *raw = malloc(bytes ? bytes : 1);
    char *out = malloc((bytes + 2) / 3 * 4 + 1);
    if (!raw || !out) {
        free(raw);
        free(out);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) { /* little-endian float32, whatever the host order */
        uint32_t u;
        memcpy(&u, &v[i], 4);
        raw[4 * i] = (unsigned char)u;
        raw[4 * i + 1] = (unsigned char)(u >> 8);
        raw[4 * i + 2] = (unsigned char)(u >> 16);
        raw[4 * i + 3] = (unsigned char)(u >> 24);
    }
    size_t o = 0;
    for (size_t i = 0; i < bytes; i += 3) {
        uint32_t w = (uint32_t)raw[i] << 16;
        if (i + 1 < bytes)
            w |= (uint32_t)raw[i + 1] << 8;
        if (i + 2 < bytes)
            w |= raw[i + 2];
        out[o++] = tbl[(w >> 18) & 63];
        out[o++] = tbl[(w >> 12) & 63];
        out[o++] = i + 1 < bytes ? tbl[(w >> 6) & 63] : '=';
        out[o++] = i + 2 < bytes ? tbl[w & 63] : '=';
    }
    out[o] = '\0';
    free(raw);
    return out;
}

static void embeddings_finish(http_req *r, sched_job *job)
{
    if (job->status != MCLI_OK) {
        req_error_err(r, &job->err);
        return;
    }
    metrics_tokens(job->total_tokens, 0);
    bool base64 = r->ctx != NULL && *(const bool *)r->ctx;
    json_t *data = json_array();
    for (size_t i = 0; i < job->n_texts; i++) {
        json_t *e;
        if (base64) {
            char *s = base64_floats(job->out + i * job->dim, job->dim);
            e = s ? json_string(s) : json_null();
            free(s);
        } else {
            e = json_floats(job->out + i * job->dim, job->dim);
        }
        json_array_append_new(data, json_pack("{s:s,s:I,s:o}", "object", "embedding", "index", (json_int_t)i,
                                              "embedding", e));
    }
    req_reply_json(r, 200, json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model",
                                     r->model->name, "usage", "prompt_tokens", (json_int_t)job->total_tokens,
                                     "total_tokens", (json_int_t)job->total_tokens));
}

static void post_embeddings(http_req *r)
{
    json_t *body = req_body_json(r);
    if (!body)
        return;
    mcli_err err;
    mcli_err_clear(&err);
    const char *name = NULL, *fmt = "float";
    if (jf_string(body, "", "model", true, &name, NULL, &err) != MCLI_OK) {
        json_decref(body);
        req_error_err(r, &err);
        return;
    }
    srv_model *m = route_model(r, name, MCLI_TASK_EMBED);
    if (!m) {
        json_decref(body);
        return;
    }
    sched_job *job = sched_job_new(SCHED_EMBED);
    mcli_status st = job ? MCLI_OK : mcli_fail(&err, MCLI_ERR_NOMEM, "out of memory");
    bool truncate = false;
    if (st == MCLI_OK)
        st = jf_texts(body, "input", true, job, NULL, &err);
    if (st == MCLI_OK)
        st = jf_string(body, "", "encoding_format", false, &fmt, NULL, &err);
    if (st == MCLI_OK && strcmp(fmt, "float") != 0 && strcmp(fmt, "base64") != 0)
        st = mcli_fail(&err, MCLI_ERR_INVALID_ARG, "field \"encoding_format\" must be \"float\" or \"base64\"");
    if (st == MCLI_OK)
        st = jf_bool(body, "", "truncate", &truncate, &err);
    bool *b64 = st == MCLI_OK ? malloc(sizeof *b64) : NULL;
    if (st == MCLI_OK && !b64)
        st = mcli_fail(&err, MCLI_ERR_NOMEM, "out of memory");
    if (st == MCLI_OK) {
        *b64 = strcmp(fmt, "base64") == 0;
        r->ctx = b64;
        r->ctx_free = free;
    }
    json_decref(body);
    if (st != MCLI_OK) {
        sched_job_unref(job);
        req_error_err(r, &err);
        return;
    }
    job->pool = MCLI_POOL_MEAN;
    job->normalize = true;
    job->truncate = truncate;
    req_submit(r, m, job, embeddings_finish);
}

const route_entry routes_openai[] = {
    {"GET", "/v1/models", NULL, get_models, MET_V1_MODELS, API_OPENAI},
    {"POST", "/v1/completions", NULL, post_completion, MET_V1_COMPLETIONS, API_OPENAI},
    {"POST", "/v1/chat/completions", NULL, post_completion, MET_V1_CHAT, API_OPENAI},
    {"POST", "/v1/embeddings", NULL, post_embeddings, MET_V1_EMBEDDINGS, API_OPENAI},
    {0},
};
