/* routes_ollama.c - the Ollama-compatible API (/api/...): generate and chat (NDJSON streams by
 * default), embed, tags, show, ps, pull (streamed progress), delete, version.
 * Field names, defaults and reply shapes follow Ollama's API documentation; durations are in
 * nanoseconds. Handlers run on HTTP threads; generation and embedding go through the scheduler,
 * pulls run on a detached thread through the hub. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/hub.h"
#include "hub/manifest.h"
#include "server/server_internal.h"
#include "store/models_dir.h"

static const gen_names ollama_names = {
    .max_new = "num_predict", .max_new_alias = NULL, .repeat_penalty = "repeat_penalty",
    .def_temperature = 0.8, .def_top_p = 0.9, .def_top_k = 40, .def_max_new = 128, .def_repeat_penalty = 1.1,
};

static void created_at(char *buf, size_t cap)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%.19s.%06dZ", base, (int)((ts.tv_nsec / 1000) % 1000000));
}

/* "4.4M", "124M", "1.5B" */
static void param_size(int64_t n, char *buf, size_t cap)
{
    if (n >= 1000000000)
        snprintf(buf, cap, "%.1fB", (double)n / 1e9);
    else if (n >= 1000000)
        snprintf(buf, cap, "%.1fM", (double)n / 1e6);
    else
        snprintf(buf, cap, "%.1fK", (double)n / 1e3);
}

static json_t *details_json(const srv_model *m)
{
    char ps[32];
    param_size(m->info->n_params, ps, sizeof ps);
    const char *fam = m->info->config->model_type;
    return json_pack("{s:s,s:s,s:s,s:[s],s:s,s:s}", "parent_model", "", "format",
                     m->info->weights_format ? m->info->weights_format : "safetensors", "family", fam, "families", fam,
                     "parameter_size", ps, "quantization_level", "F32");
}

/* ---- generate / chat ---- */

static int64_t ns_since(double t0) { return (int64_t)((now_sec() - t0) * 1e9); }

/* The timing and count fields Ollama puts on the final object. */
static void add_final_fields(http_req *r, const sched_job *job, json_t *j)
{
    json_object_set_new(j, "done_reason", json_string(job->gen.finish_reason ? job->gen.finish_reason : "stop"));
    json_object_set_new(j, "total_duration", json_integer(ns_since(r->t0)));
    json_object_set_new(j, "load_duration", json_integer((json_int_t)(job->queue_ms * 1e6)));
    json_object_set_new(j, "prompt_eval_count", json_integer((json_int_t)job->gen.n_prompt));
    json_object_set_new(j, "prompt_eval_duration", json_integer((json_int_t)(job->gen.prompt_ms * 1e6)));
    json_object_set_new(j, "eval_count", json_integer((json_int_t)job->gen.n));
    json_object_set_new(j, "eval_duration", json_integer((json_int_t)(job->gen.gen_ms * 1e6)));
}

/* One object: {"model","created_at","response"|"message", "done"}. */
static json_t *chunk(http_req *r, const char *text, size_t len, bool done)
{
    gen_ctx *c = r->ctx;
    char ts[64];
    created_at(ts, sizeof ts);
    json_t *j = json_pack("{s:s,s:s}", "model", c->model, "created_at", ts);
    json_t *t = json_stringn(text, len);
    if (!t)
        t = json_string("");
    if (r->route == MET_API_CHAT)
        json_object_set_new(j, "message", json_pack("{s:s,s:o}", "role", "assistant", "content", t));
    else
        json_object_set_new(j, "response", t);
    json_object_set_new(j, "done", json_boolean(done));
    return j;
}

static void ollama_finish(http_req *r, sched_job *job)
{
    if (job->status != MCLI_OK) {
        req_error_err(r, &job->err);
        return;
    }
    metrics_tokens(job->gen.n_prompt, job->gen.n);
    json_t *j = chunk(r, job->text ? job->text : "", job->text_len, true);
    add_final_fields(r, job, j);
    req_reply_json(r, 200, j);
}

static void ollama_token(http_req *r, sched_job *job, int32_t id, const char *piece, size_t len)
{
    if (len)
        req_stream_json(r, "", chunk(r, piece, len, false), "\n");
}

static void ollama_stream_done(http_req *r, sched_job *job)
{
    if (job->status != MCLI_OK) {
        req_stream_json(r, "", json_pack("{s:s}", "error", job->err.msg), "\n");
        return;
    }
    metrics_tokens(job->gen.n_prompt, job->gen.n);
    json_t *j = chunk(r, "", 0, true);
    add_final_fields(r, job, j);
    req_stream_json(r, "", j, "\n");
}

/* The model named by body.model (Ollama also accepts "name"). Replies on failure. */
static srv_model *body_model(http_req *r, json_t *body, unsigned task)
{
    mcli_err err;
    mcli_err_clear(&err);
    const char *name = NULL;
    if (jf_string(body, "", "model", false, &name, NULL, &err) != MCLI_OK ||
        (!name && jf_string(body, "", "name", false, &name, NULL, &err) != MCLI_OK)) {
        req_error_err(r, &err);
        return NULL;
    }
    if (!name) {
        req_error(r, MCLI_ERR_INVALID_ARG, 400, "missing field \"model\"");
        return NULL;
    }
    return route_model(r, name, task);
}

static void post_generate_or_chat(http_req *r, bool chat)
{
    json_t *body = req_body_json(r);
    if (!body)
        return;
    srv_model *m = body_model(r, body, MCLI_TASK_GENERATE);
    if (!m) {
        json_decref(body);
        return;
    }
    mcli_err err;
    mcli_err_clear(&err);
    sched_job *job = sched_job_new(SCHED_GENERATE);
    const char *prompt = NULL;
    size_t plen = 0;
    bool stream = true;
    json_t *opts = json_object_get(body, "options");
    mcli_status st = job ? MCLI_OK : mcli_fail(&err, MCLI_ERR_NOMEM, "out of memory");
    if (st == MCLI_OK && opts && !json_is_object(opts))
        st = mcli_fail(&err, MCLI_ERR_INVALID_ARG, "field \"options\" must be an object");
    json_t *empty = json_object();
    if (st == MCLI_OK)
        st = gen_read_params(opts ? opts : empty, "options.", &ollama_names, job, &err);
    json_decref(empty);
    if (st == MCLI_OK)
        st = jf_bool(body, "", "stream", &stream, &err);
    if (st == MCLI_OK)
        st = jf_bool(body, "", "truncate", &job->truncate, &err);
    if (st == MCLI_OK && chat)
        st = gen_read_messages(body, job, &err);
    if (st == MCLI_OK && !chat)
        st = jf_string(body, "", "prompt", false, &prompt, &plen, &err);
    if (st == MCLI_OK && !chat && prompt && !(job->prompt = strndup(prompt, plen)))
        st = mcli_fail(&err, MCLI_ERR_NOMEM, "out of memory");
    if (st == MCLI_OK && !gen_ctx_new(r, m, ""))
        st = mcli_fail(&err, MCLI_ERR_NOMEM, "out of memory");
    json_decref(body);
    if (st != MCLI_OK) {
        sched_job_unref(job);
        req_error_err(r, &err);
        return;
    }
    if (!chat && plen == 0) { /* Ollama: an empty prompt only loads the model */
        sched_job_unref(job);
        json_t *j = chunk(r, "", 0, true);
        json_object_set_new(j, "done_reason", json_string("load"));
        req_reply_json(r, 200, j);
        return;
    }
    if (stream)
        req_submit_stream(r, m, job, "application/x-ndjson", ollama_token, ollama_stream_done, ollama_finish);
    else
        req_submit(r, m, job, ollama_finish);
}

static void post_generate(http_req *r) { post_generate_or_chat(r, false); }
static void post_chat(http_req *r) { post_generate_or_chat(r, true); }

/* ---- embeddings ---- */

static void embed_finish(http_req *r, sched_job *job)
{
    if (job->status != MCLI_OK) {
        req_error_err(r, &job->err);
        return;
    }
    metrics_tokens(job->total_tokens, 0);
    if (r->route == MET_API_EMBEDDINGS) { /* legacy: one "embedding" */
        req_reply_json(r, 200, json_pack("{s:o}", "embedding", json_floats(job->out, job->dim)));
        return;
    }
    json_t *emb = json_array();
    for (size_t i = 0; i < job->n_texts; i++)
        json_array_append_new(emb, json_floats(job->out + i * job->dim, job->dim));
    req_reply_json(r, 200, json_pack("{s:s,s:o,s:I,s:I,s:I}", "model", r->model->name, "embeddings", emb,
                                     "total_duration", (json_int_t)ns_since(r->t0), "load_duration", (json_int_t)0,
                                     "prompt_eval_count", (json_int_t)job->total_tokens));
}

static void post_embed_common(http_req *r, bool legacy)
{
    json_t *body = req_body_json(r);
    if (!body)
        return;
    srv_model *m = body_model(r, body, MCLI_TASK_EMBED);
    if (!m) {
        json_decref(body);
        return;
    }
    mcli_err err;
    mcli_err_clear(&err);
    sched_job *job = sched_job_new(SCHED_EMBED);
    mcli_status st = job ? MCLI_OK : mcli_fail(&err, MCLI_ERR_NOMEM, "out of memory");
    bool truncate = true; /* Ollama truncates by default */
    if (st == MCLI_OK)
        st = jf_texts(body, legacy ? "prompt" : "input", true, job, NULL, &err);
    if (st == MCLI_OK)
        st = jf_bool(body, "", "truncate", &truncate, &err);
    json_decref(body);
    if (st != MCLI_OK) {
        sched_job_unref(job);
        req_error_err(r, &err);
        return;
    }
    job->pool = MCLI_POOL_MEAN;
    job->normalize = !legacy; /* /api/embed returns unit vectors; the legacy route raw ones */
    job->truncate = truncate;
    req_submit(r, m, job, embed_finish);
}

static void post_embed(http_req *r) { post_embed_common(r, false); }
static void post_embeddings(http_req *r) { post_embed_common(r, true); }

/* ---- tags, show, ps, version ---- */

static json_t *tag_entry(const srv_model *m)
{
    char mod[32];
    iso_time(m->loaded_at, mod, sizeof mod);
    return json_pack("{s:s,s:s,s:s,s:I,s:s,s:o}", "name", m->name, "model", m->name, "modified_at", mod, "size",
                     (json_int_t)m->total_size, "digest", m->digest[0] ? m->digest + 7 : "", "details",
                     details_json(m));
}

static void get_tags(http_req *r)
{
    server *s = r->srv;
    json_t *a = json_array();
    for (size_t i = 0; i < s->n_models; i++)
        json_array_append_new(a, tag_entry(&s->models[i]));
    /* Downloaded but not loaded: sizes and digests from their manifests. */
    if (s->opts.models_dir) {
        models_dir_entry *list = NULL;
        size_t n = 0;
        mcli_err err;
        if (models_dir_list(s->opts.models_dir, &list, &n, &err) == MCLI_OK) {
            for (size_t i = 0; i < n; i++) {
                if (server_find_model(s, list[i].repo))
                    continue;
                hub_manifest man;
                memset(&man, 0, sizeof man);
                char digest[65] = "";
                int64_t size = list[i].bytes;
                if (manifest_read(list[i].path, &man, &err) == MCLI_OK) {
                    for (size_t f = 0; f < man.n_files; f++) {
                        const char *fn = man.files[f].name;
                        size_t l = strlen(fn);
                        if (l > 12 && strcmp(fn + l - 12, ".safetensors") == 0 && !digest[0])
                            snprintf(digest, sizeof digest, "%s", man.files[f].sha256);
                        else if (l > 4 && strcmp(fn + l - 4, ".bin") == 0 && !digest[0])
                            snprintf(digest, sizeof digest, "%s", man.files[f].sha256);
                    }
                    size = man.total_bytes;
                    manifest_free(&man);
                }
                json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:I,s:s,s:b}", "name", list[i].repo, "model",
                                                   list[i].repo, "modified_at", "", "size", (json_int_t)size, "digest",
                                                   digest, "loaded", 0));
            }
            models_dir_list_free(list);
        }
    }
    req_reply_json(r, 200, json_pack("{s:o}", "models", a));
}

static void post_show(http_req *r)
{
    json_t *body = req_body_json(r);
    if (!body)
        return;
    srv_model *m = body_model(r, body, 0);
    json_decref(body);
    if (!m)
        return;
    const mcli_config *c = m->info->config;
    const char *arch = c->model_type;
    json_t *mi = json_object();
    char key[96];
    json_object_set_new(mi, "general.architecture", json_string(arch));
    json_object_set_new(mi, "general.parameter_count", json_integer(m->info->n_params));
    snprintf(key, sizeof key, "%s.context_length", arch);
    json_object_set_new(mi, key, json_integer(c->max_positions));
    snprintf(key, sizeof key, "%s.embedding_length", arch);
    json_object_set_new(mi, key, json_integer(c->hidden_size));
    snprintf(key, sizeof key, "%s.block_count", arch);
    json_object_set_new(mi, key, json_integer(c->n_layers));
    snprintf(key, sizeof key, "%s.attention.head_count", arch);
    json_object_set_new(mi, key, json_integer(c->n_heads));
    snprintf(key, sizeof key, "%s.feed_forward_length", arch);
    json_object_set_new(mi, key, json_integer(c->intermediate_size));
    json_object_set_new(mi, "tokenizer.ggml.model", json_string(m->decoder ? "gpt2" : "bert"));
    json_t *caps = json_array();
    if (m->decoder)
        json_array_append_new(caps, json_string("completion"));
    if (m->info->tasks & MCLI_TASK_EMBED)
        json_array_append_new(caps, json_string("embedding"));
    char mod[32];
    iso_time(m->loaded_at, mod, sizeof mod);
    req_reply_json(r, 200, json_pack("{s:s,s:s,s:s,s:o,s:o,s:o,s:s}", "modelfile", "", "parameters", "", "template",
                                     m->decoder ? "{{ .Prompt }}<|endoftext|>" : "", "details", details_json(m),
                                     "model_info", mi, "capabilities", caps, "modified_at", mod));
}

static void get_ps(http_req *r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r->srv->n_models; i++) {
        srv_model *m = &r->srv->models[i];
        json_array_append_new(a, json_pack("{s:s,s:s,s:I,s:s,s:o,s:s,s:I}", "name", m->name, "model", m->name, "size",
                                           (json_int_t)m->total_size, "digest", m->digest[0] ? m->digest + 7 : "",
                                           "details", details_json(m), "expires_at", "9999-12-31T23:59:59Z",
                                           "size_vram", (json_int_t)0));
    }
    req_reply_json(r, 200, json_pack("{s:o}", "models", a));
}

static void get_version(http_req *r) { req_reply_json(r, 200, json_pack("{s:s}", "version", MCLI_VERSION)); }

/* ---- pull (detached thread) and delete ---- */

#define MAX_PULLS 4 /* concurrent /api/pull threads */

typedef struct {
    char repo[256];
    bool stream;
    hub_pull_result res;
} pull_ctx;

static int pull_progress(void *user, const hub_event *ev)
{
    http_req *r = user;
    pull_ctx *c = r->ctx;
    if (req_cancelled(r))
        return 1;
    if (!c->stream)
        return 0;
    json_t *j = NULL;
    char status[600];
    switch (ev->kind) {
    case HUB_EV_MESSAGE:
        j = json_pack("{s:s}", "status", ev->message ? ev->message : "");
        break;
    case HUB_EV_FILE_START:
    case HUB_EV_PROGRESS:
        snprintf(status, sizeof status, "pulling %s", ev->file ? ev->file : "");
        j = json_pack("{s:s,s:I,s:I}", "status", status, "total", (json_int_t)ev->file_total, "completed",
                      (json_int_t)ev->file_done);
        break;
    case HUB_EV_FILE_DONE:
        snprintf(status, sizeof status, "verified %s", ev->file ? ev->file : "");
        j = json_pack("{s:s,s:s}", "status", status, "digest", ev->sha256 ? ev->sha256 : "");
        break;
    case HUB_EV_DONE:
        j = json_pack("{s:s,s:I}", "status", "writing manifest", "total", (json_int_t)ev->total_bytes);
        break;
    }
    return j && req_stream_json(r, "", j, "\n") != 0 ? 1 : 0;
}

static mcli_status pull_run(sched_job *job, const mcli_model *unused, void *user, mcli_err *err)
{
    http_req *r = user;
    pull_ctx *c = r->ctx;
    hub_pull_opts o = {.models_dir = r->srv->opts.models_dir, .repo = c->repo, .offline = -1,
                       .progress = pull_progress, .user = r};
    return hub_pull(&o, &c->res, err);
}

static void pull_stream_done(http_req *r, sched_job *job)
{
    if (job->status != MCLI_OK)
        req_stream_json(r, "", json_pack("{s:s}", "error", job->err.msg), "\n");
    else
        req_stream_json(r, "", json_pack("{s:s}", "status", "success"), "\n");
}

static void pull_finish(http_req *r, sched_job *job)
{
    if (job->status != MCLI_OK) {
        req_error_err(r, &job->err);
        return;
    }
    pull_ctx *c = r->ctx;
    req_reply_json(r, 200, json_pack("{s:s,s:s,s:I}", "status", "success", "path", c->res.dir, "total",
                                     (json_int_t)c->res.total_bytes));
}

static void post_pull(http_req *r)
{
    json_t *body = req_body_json(r);
    if (!body)
        return;
    mcli_err err;
    mcli_err_clear(&err);
    const char *name = NULL;
    bool stream = true;
    mcli_status st = jf_string(body, "", "model", false, &name, NULL, &err);
    if (st == MCLI_OK && !name)
        st = jf_string(body, "", "name", true, &name, NULL, &err);
    if (st == MCLI_OK)
        st = jf_bool(body, "", "stream", &stream, &err);
    pull_ctx *c = calloc(1, sizeof *c);
    if (st == MCLI_OK && !c)
        st = mcli_fail(&err, MCLI_ERR_NOMEM, "out of memory");
    if (st == MCLI_OK) {
        /* "org/name:latest" -> "org/name" */
        snprintf(c->repo, sizeof c->repo, "%s", name);
        char *colon = strrchr(c->repo, ':');
        if (colon && strcmp(colon, ":latest") == 0)
            *colon = '\0';
        if (!models_dir_repo_valid(c->repo))
            st = mcli_fail(&err, MCLI_ERR_INVALID_ARG, "field \"model\": '%.200s' is not a valid repository name "
                           "(org/name)", name);
    }
    if (st == MCLI_OK && !r->srv->opts.models_dir)
        st = mcli_fail(&err, MCLI_ERR_UNSUPPORTED, "this server has no models directory to pull into "
                       "(start it with lightweight --start-server or lightweight-run)");
    if (st == MCLI_OK && atomic_load(&r->srv->detached) >= MAX_PULLS)
        st = mcli_fail(&err, MCLI_ERR_BUSY, "%d pulls are already running; retry later", MAX_PULLS);
    json_decref(body);
    if (st != MCLI_OK) {
        free(c);
        req_error_err(r, &err);
        return;
    }
    c->stream = stream;
    r->ctx = c;
    r->ctx_free = free;
    sched_job *job = sched_job_new(SCHED_CALL);
    if (!job) {
        req_error(r, MCLI_ERR_NOMEM, 500, "out of memory");
        return;
    }
    job->call = pull_run;
    req_run_detached(r, job, stream, "application/x-ndjson", pull_stream_done, pull_finish);
}

static void delete_model(http_req *r)
{
    json_t *body = req_body_json(r);
    if (!body)
        return;
    mcli_err err;
    mcli_err_clear(&err);
    const char *name = NULL;
    mcli_status st = jf_string(body, "", "model", false, &name, NULL, &err);
    if (st == MCLI_OK && !name)
        st = jf_string(body, "", "name", true, &name, NULL, &err);
    char repo[256] = "";
    if (st == MCLI_OK) {
        snprintf(repo, sizeof repo, "%s", name);
        char *colon = strrchr(repo, ':');
        if (colon && strcmp(colon, ":latest") == 0)
            *colon = '\0';
        if (!models_dir_repo_valid(repo))
            st = mcli_fail(&err, MCLI_ERR_INVALID_ARG, "field \"model\": '%.200s' is not a valid repository name", name);
    }
    json_decref(body);
    if (st == MCLI_OK && !r->srv->opts.models_dir)
        st = mcli_fail(&err, MCLI_ERR_UNSUPPORTED, "this server has no models directory to delete from");
    if (st == MCLI_OK)
        st = models_dir_remove(r->srv->opts.models_dir, repo, &err);
    if (st != MCLI_OK) {
        req_error_err(r, &err);
        return;
    }
    /* A loaded model keeps serving from memory until the server restarts. */
    req_reply_json(r, 200, json_pack("{s:s,s:s,s:b}", "status", "success", "deleted", repo, "still_loaded",
                                     server_find_model(r->srv, repo) != NULL));
}

const route_entry routes_ollama[] = {
    {"POST", "/api/generate", NULL, post_generate, MET_API_GENERATE, API_OLLAMA},
    {"POST", "/api/chat", NULL, post_chat, MET_API_CHAT, API_OLLAMA},
    {"POST", "/api/embed", NULL, post_embed, MET_API_EMBED, API_OLLAMA},
    {"POST", "/api/embeddings", NULL, post_embeddings, MET_API_EMBEDDINGS, API_OLLAMA},
    {"GET", "/api/tags", NULL, get_tags, MET_API_TAGS, API_OLLAMA},
    {"POST", "/api/show", NULL, post_show, MET_API_SHOW, API_OLLAMA},
    {"GET", "/api/ps", NULL, get_ps, MET_API_PS, API_OLLAMA},
    {"POST", "/api/pull", NULL, post_pull, MET_API_PULL, API_OLLAMA},
    {"DELETE", "/api/delete", NULL, delete_model, MET_API_DELETE, API_OLLAMA},
    {"GET", "/api/version", NULL, get_version, MET_API_VERSION, API_OLLAMA},
    {0},
};
