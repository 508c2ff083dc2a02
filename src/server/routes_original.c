/* routes_original.c - the original service's routes (/, /health, /models, /models/{name}/ACTION),
 * /metrics, and the encoder plumbing the other route files share: model lookup, classification
 * results, CALL jobs (fill-mask, tokenize, decode) that run on a model's worker.
 * Route handlers run on HTTP threads and only parse, validate and submit; CALL functions run on
 * the scheduler's worker (they are the only code here that computes). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

/* ---------------------------------------------------------------- shared helpers */

static const char *task_name(unsigned task)
{
    switch (task) {
    case MCLI_TASK_EMBED: return "embed";
    case MCLI_TASK_CLASSIFY: return "classify (it has no classification head)";
    case MCLI_TASK_FILL_MASK: return "fill masks (it has no masked-LM head)";
    case MCLI_TASK_GENERATE: return "generate text (it is not a decoder)";
    default: return "do this";
    }
}

srv_model *route_model(http_req *r, const char *name, unsigned task)
{
    srv_model *m = server_find_model(r->srv, name);
    if (!m) {
        req_unknown_model(r, name);
        return NULL;
    }
    if (task && !(m->info->tasks & task)) {
        req_error(r, MCLI_ERR_UNSUPPORTED, 400, "model %s cannot %s; it is a %s model", m->name, task_name(task),
                  model_kind_name(m));
        return NULL;
    }
    return m;
}

json_t *classify_result_json(const srv_model *m, const sched_job *job, size_t i)
{
    const mcli_config *cfg = m->info->config;
    size_t n = job->dim;
    const float *p = job->probs + i * n, *lg = job->out + i * n;
    size_t order[1024];
    if (n > sizeof order / sizeof order[0])
        n = sizeof order / sizeof order[0];
    for (size_t k = 0; k < n; k++)
        order[k] = k;
    for (size_t a = 1; a < n; a++) /* insertion sort, best first; n is a handful of labels */
        for (size_t b = a; b > 0 && p[order[b]] > p[order[b - 1]]; b--) {
            size_t t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    json_t *scores = json_array();
    for (size_t k = 0; k < n; k++) {
        const char *label = (int)order[k] < cfg->n_labels && cfg->labels ? cfg->labels[order[k]] : "";
        json_array_append_new(scores, json_pack("{s:s,s:f}", "label", label, "score", (double)p[order[k]]));
    }
    const char *top = n && cfg->labels ? cfg->labels[order[0]] : "";
    return json_pack("{s:s,s:f,s:o,s:o}", "label", top, "score", n ? (double)p[order[0]] : 0.0, "scores", scores,
                     "logits", json_floats(lg, n));
}

/* ---------------------------------------------------------------- CALL jobs (worker thread) */

static void call_ctx_free(void *p)
{
    call_ctx *c = p;
    if (!c)
        return;
    json_decref(c->body);
    json_decref(c->result);
    free(c);
}

/* "sequence" of a fill-mask candidate: the input with the mask replaced, specials skipped. */
static mcli_status fill_sequence(const mcli_tokenizer *tok, const mcli_encoding *e, size_t pos, int32_t id,
                                 char **out, mcli_err *err)
{
    int32_t *ids = malloc(e->n * sizeof *ids);
    if (!ids)
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory decoding a candidate");
    memcpy(ids, e->ids, e->n * sizeof *ids);
    ids[pos] = id;
    mcli_status st = tokenizer_decode(tok, ids, e->n, true, out, err);
    free(ids);
    return st;
}

static mcli_status call_fill_mask(call_ctx *c, const mcli_model *m, const char *text, mcli_err *err)
{
    const mcli_tokenizer *tok = engine_tokenizer(m);
    const mcli_config *cfg = engine_info(m)->config;
    int32_t mask = tokenizer_special(tok)->mask;
    mcli_encoding e;
    memset(&e, 0, sizeof e);
    size_t *pos = NULL;
    float *logits = NULL;
    mcli_status st;
    if (mask < 0)
        return mcli_fail(err, MCLI_ERR_UNSUPPORTED, "this model's tokenizer has no mask token");
    mcli_tok_opts o = {.add_special_tokens = true, .max_length = (size_t)cfg->max_positions, .truncate = c->truncate};
    st = tokenizer_encode(tok, text, strlen(text), NULL, 0, &o, &e, err);
    if (st == MCLI_ERR_TOO_LARGE)
        st = mcli_fail(err, MCLI_ERR_INVALID_ARG, "the text is longer than the model's context of %d tokens; "
                       "send \"truncate\": true to cut it", cfg->max_positions);
    if (st != MCLI_OK)
        goto done;
    size_t n_pos = 0;
    pos = malloc((e.n ? e.n : 1) * sizeof *pos);
    if (!pos) {
        st = mcli_fail(err, MCLI_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < e.n; i++)
        if (e.ids[i] == mask)
            pos[n_pos++] = i;
    if (n_pos == 0) {
        st = mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"text\" has no mask token %s",
                       tokenizer_id_to_token(tok, mask) ? tokenizer_id_to_token(tok, mask) : "");
        goto done;
    }
    size_t vocab = (size_t)cfg->vocab_size;
    logits = malloc(n_pos * vocab * sizeof *logits);
    if (!logits) {
        st = mcli_fail(err, MCLI_ERR_NOMEM, "out of memory for %zu x %zu logits", n_pos, vocab);
        goto done;
    }
    mcli_seq seq = {.ids = e.ids, .type_ids = e.type_ids, .len = e.n};
    st = engine_mlm_logits(m, &seq, pos, n_pos, logits, err);
    if (st != MCLI_OK)
        goto done;
    size_t k = c->top_k > 0 ? (size_t)c->top_k : 5;
    if (k > vocab)
        k = vocab;
    json_t *all = json_array();
    for (size_t p = 0; p < n_pos; p++) {
        float *lg = logits + p * vocab;
        float mx = lg[0];
        for (size_t v = 1; v < vocab; v++)
            mx = lg[v] > mx ? lg[v] : mx;
        double sum = 0;
        for (size_t v = 0; v < vocab; v++)
            sum += exp((double)(lg[v] - mx));
        json_t *cands = json_array();
        /* top-k by repeated selection: k is small */
        int32_t chosen[64];
        size_t kk = k > 64 ? 64 : k;
        for (size_t j = 0; j < kk; j++) {
            int32_t best = -1;
            for (size_t v = 0; v < vocab; v++) {
                bool used = false;
                for (size_t q = 0; q < j; q++)
                    used |= chosen[q] == (int32_t)v;
                if (!used && (best < 0 || lg[v] > lg[best]))
                    best = (int32_t)v;
            }
            chosen[j] = best;
            char *tstr = NULL, *seqstr = NULL;
            st = tokenizer_decode(tok, &best, 1, false, &tstr, err);
            if (st == MCLI_OK)
                st = fill_sequence(tok, &e, pos[p], best, &seqstr, err);
            if (st != MCLI_OK) {
                free(tstr);
                json_decref(cands);
                json_decref(all);
                goto done;
            }
            json_array_append_new(cands, json_pack("{s:i,s:s,s:f,s:s}", "token_id", (json_int_t)best, "token_str",
                                                   tstr, "score", exp((double)(lg[best] - mx)) / sum, "sequence",
                                                   seqstr));
            free(tstr);
            free(seqstr);
        }
        json_array_append_new(all, cands);
    }
    /* One mask: the candidate list (transformers' pipeline shape); several: a list per mask. */
    if (n_pos == 1) {
        c->result = json_incref(json_array_get(all, 0));
        json_decref(all);
    } else {
        c->result = all;
    }
done:
    encoding_free(&e);
    free(pos);
    free(logits);
    return st;
}

static mcli_status call_tokenize(call_ctx *c, const mcli_model *m, const char *text, size_t idx, mcli_err *err)
{
    const mcli_tokenizer *tok = engine_tokenizer(m);
    const mcli_config *cfg = engine_info(m)->config;
    mcli_encoding e;
    memset(&e, 0, sizeof e);
    mcli_tok_opts o = {.add_special_tokens = c->add_special,
                       .max_length = c->truncate ? (size_t)cfg->max_positions : 0,
                       .truncate = c->truncate};
    mcli_status st = tokenizer_encode(tok, text, strlen(text), NULL, 0, &o, &e, err);
    if (st != MCLI_OK)
        return st;
    json_t *res;
    if (c->kind == CALL_TOKENIZE) {
        json_t *ids = json_array(), *toks = json_array(), *offs = json_array();
        for (size_t i = 0; i < e.n; i++) {
            const char *t = tokenizer_id_to_token(tok, e.ids[i]);
            json_array_append_new(ids, json_integer(e.ids[i]));
            json_array_append_new(toks, json_string(t ? t : ""));
            json_array_append_new(offs, json_pack("[i,i]", (json_int_t)e.offsets[2 * i], (json_int_t)e.offsets[2 * i + 1]));
        }
        res = json_pack("{s:o,s:o,s:o,s:b}", "ids", ids, "tokens", toks, "offsets", offs, "truncated", e.truncated);
    } else { /* TEI: [{"id","text","special","start","stop"}] */
        res = json_array();
        for (size_t i = 0; i < e.n; i++) {
            const char *t = tokenizer_id_to_token(tok, e.ids[i]);
            json_array_append_new(res, json_pack("{s:i,s:s,s:b,s:i,s:i}", "id", (json_int_t)e.ids[i], "text",
                                                 t ? t : "", "special", e.special ? e.special[i] : 0, "start",
                                                 (json_int_t)e.offsets[2 * i], "stop",
                                                 (json_int_t)e.offsets[2 * i + 1]));
        }
    }
    encoding_free(&e);
    if (!c->result)
        c->result = json_array();
    json_array_append_new(c->result, res);
    (void)idx;
    return MCLI_OK;
}

static mcli_status call_decode(call_ctx *c, const mcli_model *m, mcli_err *err)
{
    const mcli_tokenizer *tok = engine_tokenizer(m);
    json_t *ids = json_object_get(c->body, "ids");
    size_t n = json_array_size(ids), vocab = tokenizer_vocab_size(tok);
    int32_t *v = malloc((n ? n : 1) * sizeof *v);
    if (!v)
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_array_get(ids, i);
        json_int_t id = json_is_integer(x) ? json_integer_value(x) : -1;
        if (id < 0 || (size_t)id >= vocab) {
            free(v);
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"ids[%zu]\" must be a token id in 0..%zu", i, vocab - 1);
        }
        v[i] = (int32_t)id;
    }
    char *text = NULL;
    mcli_status st = tokenizer_decode(tok, v, n, c->skip_special, &text, err);
    free(v);
    if (st != MCLI_OK)
        return st;
    json_t *t = json_string(text);
    free(text);
    c->result = t ? json_pack("[o]", t) : NULL; /* TEI answers a list of strings */
    return c->result ? MCLI_OK : mcli_fail(err, MCLI_ERR_INVALID_ARG, "decoded text is not valid UTF-8");
}

static mcli_status call_run(sched_job *job, const mcli_model *m, void *user, mcli_err *err)
{
    http_req *r = user;
    call_ctx *c = r->ctx;
    switch (c->kind) {
    case CALL_FILL_MASK:
        return call_fill_mask(c, m, job->texts[0], err);
    case CALL_TOKENIZE:
    case CALL_TEI_TOKENIZE:
        for (size_t i = 0; i < job->n_texts; i++) {
            mcli_status st = call_tokenize(c, m, job->texts[i], i, err);
            if (st != MCLI_OK) {
                mcli_err_prefix(err, "input %zu", i);
                return st;
            }
        }
        return MCLI_OK;
    case CALL_DECODE:
        return call_decode(c, m, err);
    }
    return mcli_fail(err, MCLI_ERR_INTERNAL, "unknown CALL kind");
}

static void call_finish(http_req *r, sched_job *job)
{
    call_ctx *c = r->ctx;
    if (job->status != MCLI_OK) {
        req_error_err(r, &job->err);
        return;
    }
    json_t *res = c->result;
    c->result = NULL;
    /* /models/{name}/tokenize with one "text" answers one object, not a list of one. */
    if (c->kind == CALL_TOKENIZE && json_is_array(res) && json_array_size(res) == 1 &&
        json_is_string(json_object_get(c->body, "text"))) {
        json_t *one = json_incref(json_array_get(res, 0));
        json_decref(res);
        res = one;
    }
    req_reply_json(r, 200, res);
}

void call_submit(http_req *r, srv_model *m, call_kind kind, json_t *body, long long top_k, bool add_special,
                 bool skip_special, bool truncate)
{
    call_ctx *c = calloc(1, sizeof *c);
    sched_job *job = sched_job_new(SCHED_CALL);
    if (!c || !job) {
        free(c);
        sched_job_unref(job);
        json_decref(body);
        req_error(r, MCLI_ERR_NOMEM, 500, "out of memory");
        return;
    }
    c->kind = kind;
    c->body = body;
    c->top_k = top_k;
    c->add_special = add_special;
    c->skip_special = skip_special;
    c->truncate = truncate;
    r->ctx = c;
    r->ctx_free = call_ctx_free;
    mcli_err err;
    mcli_err_clear(&err);
    mcli_status st = MCLI_OK;
    if (kind != CALL_DECODE) {
        const char *key = kind == CALL_TEI_TOKENIZE ? "inputs" : json_object_get(body, "texts") ? "texts" : "text";
        st = jf_texts(body, key, true, job, NULL, &err);
        if (st == MCLI_OK && kind == CALL_FILL_MASK && job->n_texts != 1)
            st = mcli_fail(&err, MCLI_ERR_INVALID_ARG, "field \"text\" must be one string");
    }
    if (st != MCLI_OK) {
        sched_job_unref(job);
        req_error_err(r, &err);
        return;
    }
    job->call = call_run;
    req_submit(r, m, job, call_finish);
}

/* ---------------------------------------------------------------- GET routes */

static json_t *model_names(server *s)
{
    json_t *a = json_array();
    for (size_t i = 0; i < s->n_models; i++)
        json_array_append_new(a, json_string(s->models[i].name));
    return a;
}

static void get_root(http_req *r)
{
    json_t *j = json_pack("{s:s,s:s,s:o,s:s}", "status", "running", "service", "mcli lightweight server", "models",
                          model_names(r->srv), "version", MCLI_VERSION);
    req_reply_json(r, 200, j);
}

/* The hot path of load balancers and benchmarks: no JSON library, one small buffer. */
static void get_health(http_req *r)
{
    server *s = r->srv;
    char *body = malloc(192);
    if (!body) {
        req_error(r, MCLI_ERR_NOMEM, 500, "out of memory");
        return;
    }
    int n = snprintf(body, 192, "{\"status\":\"%s\",\"models_loaded\":%zu,\"uptime_s\":%lld,\"version\":\"%s\"}",
                     atomic_load(&s->stopping) ? "stopping" : "healthy", s->n_models,
                     (long long)(time(NULL) - s->started), MCLI_VERSION);
    req_reply_raw(r, atomic_load(&s->stopping) ? 503 : 200, "application/json", body, n > 0 && n < 192 ? (size_t)n : 0);
}

static json_t *tasks_json(const srv_model *m)
{
    json_t *a = json_array();
    if (m->info->tasks & MCLI_TASK_EMBED)
        json_array_append_new(a, json_string("embed"));
    if (m->info->tasks & MCLI_TASK_CLASSIFY)
        json_array_append_new(a, json_string("classify"));
    if (m->info->tasks & MCLI_TASK_FILL_MASK)
        json_array_append_new(a, json_string("fill-mask"));
    if (m->info->tasks & MCLI_TASK_GENERATE)
        json_array_append_new(a, json_string("generate"));
    json_array_append_new(a, json_string("tokenize"));
    return a;
}

static void get_models(http_req *r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r->srv->n_models; i++) {
        srv_model *m = &r->srv->models[i];
        const mcli_config *c = m->info->config;
        json_t *labels = json_array();
        for (int k = 0; k < c->n_labels && c->labels; k++)
            json_array_append_new(labels, json_string(c->labels[k]));
        json_array_append_new(
            a, json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:o,s:i,s:i,s:i,s:i,s:o,s:s,s:s,s:f}", "name", m->name, "type",
                         model_kind_name(m), "architecture", c->architecture[0] ? c->architecture : c->model_type,
                         "model_type", c->model_type, "parameters", (json_int_t)m->info->n_params, "size_bytes",
                         (json_int_t)m->total_size, "tasks", tasks_json(m), "hidden_size", c->hidden_size, "layers",
                         c->n_layers, "max_positions", c->max_positions, "vocab_size", c->vocab_size, "labels", labels,
                         "digest", m->digest, "path", m->dir, "load_ms", m->load_ms));
    }
    req_reply_json(r, 200, json_pack("{s:o}", "models", a));
}

static void get_metrics(http_req *r)
{
    server *s = r->srv;
    metrics_model_gauge g[64];
    size_t n = s->n_models < 64 ? s->n_models : 64;
    for (size_t i = 0; i < n; i++) {
        g[i].name = s->models[i].name;
        g[i].queued = s->models[i].sched ? sched_depth(s->models[i].sched) : 0;
        g[i].running = s->models[i].sched ? sched_running(s->models[i].sched) : 0;
    }
    size_t cap = 256 * 1024;
    char *buf = malloc(cap);
    if (!buf) {
        req_error(r, MCLI_ERR_NOMEM, 500, "out of memory");
        return;
    }
    size_t len = metrics_render(buf, cap, g, n, (size_t)atomic_load(&s->in_flight));
    if (len >= cap)
        len = strlen(buf);
    req_reply_raw(r, 200, "text/plain; version=0.0.4", buf, len);
}

/* ---------------------------------------------------------------- /models/{name}/ACTION */

static void encode_finish(http_req *r, sched_job *job)
{
    if (job->status != MCLI_OK) {
        req_error_err(r, &job->err);
        return;
    }
    metrics_tokens(job->total_tokens, 0);
    json_t *usage = json_pack("{s:I}", "prompt_tokens", (json_int_t)job->total_tokens);
    if (job->kind == SCHED_EMBED) {
        json_t *emb = json_array();
        for (size_t i = 0; i < job->n_texts; i++)
            json_array_append_new(emb, json_floats(job->out + i * job->dim, job->dim));
        req_reply_json(r, 200, json_pack("{s:s,s:o,s:I,s:o,s:b,s:I}", "model", r->model->name, "embeddings", emb,
                                         "dim", (json_int_t)job->dim, "usage", usage, "truncated", job->any_truncated,
                                         "batch_size", (json_int_t)job->batch_size));
        return;
    }
    json_t *results = json_array();
    for (size_t i = 0; i < job->n_texts; i++)
        json_array_append_new(results, classify_result_json(r->model, job, i));
    json_t *j = json_pack("{s:s,s:o,s:o}", "model", r->model->name, "results", results, "usage", usage);
    if (job->n_texts == 1 && !r->input_listed) { /* one "text": its fields at the top level too */
        json_t *one = json_array_get(results, 0);
        json_object_update(j, one);
    }
    req_reply_json(r, 200, j);
}

/* {"text": "..."} or {"texts": [...]} (or "inputs"): which key the client used. */
static const char *texts_key(json_t *body)
{
    if (json_object_get(body, "texts"))
        return "texts";
    if (json_object_get(body, "inputs"))
        return "inputs";
    return "text";
}

static void post_encode(http_req *r, sched_kind kind)
{
    unsigned task = kind == SCHED_EMBED ? MCLI_TASK_EMBED : MCLI_TASK_CLASSIFY;
    srv_model *m = route_model(r, r->path_arg, task);
    if (!m)
        return;
    json_t *body = req_body_json(r);
    if (!body)
        return;
    mcli_err err;
    mcli_err_clear(&err);
    sched_job *job = sched_job_new(kind);
    if (!job) {
        json_decref(body);
        req_error(r, MCLI_ERR_NOMEM, 500, "out of memory");
        return;
    }
    bool listed = false, truncate = false, normalize = false;
    const char *pooling = "mean";
    mcli_status st = jf_texts(body, texts_key(body), true, job, &listed, &err);
    if (st == MCLI_OK)
        st = jf_bool(body, "", "truncate", &truncate, &err);
    if (st == MCLI_OK)
        st = jf_bool(body, "", "normalize", &normalize, &err);
    if (st == MCLI_OK)
        st = jf_string(body, "", "pooling", false, &pooling, NULL, &err);
    if (st == MCLI_OK && strcmp(pooling, "mean") != 0 && strcmp(pooling, "cls") != 0)
        st = mcli_fail(&err, MCLI_ERR_INVALID_ARG, "field \"pooling\" must be \"mean\" or \"cls\" (got \"%.20s\")",
                       pooling);
    if (st != MCLI_OK) {
        json_decref(body);
        sched_job_unref(job);
        req_error_err(r, &err);
        return;
    }
    job->truncate = truncate;
    job->normalize = normalize;
    job->pool = strcmp(pooling, "cls") == 0 ? MCLI_POOL_CLS : MCLI_POOL_MEAN;
    r->input_listed = listed;
    json_decref(body);
    req_submit(r, m, job, encode_finish);
}

static void post_model_embed(http_req *r) { post_encode(r, SCHED_EMBED); }
static void post_model_classify(http_req *r) { post_encode(r, SCHED_CLASSIFY); }

static void post_model_fill_mask(http_req *r)
{
    srv_model *m = route_model(r, r->path_arg, MCLI_TASK_FILL_MASK);
    if (!m)
        return;
    json_t *body = req_body_json(r);
    if (!body)
        return;
    mcli_err err;
    mcli_err_clear(&err);
    long long top_k = 5;
    bool truncate = false;
    if (jf_int(body, "", "top_k", 1, 64, &top_k, &err) != MCLI_OK ||
        jf_bool(body, "", "truncate", &truncate, &err) != MCLI_OK) {
        json_decref(body);
        req_error_err(r, &err);
        return;
    }
    call_submit(r, m, CALL_FILL_MASK, body, top_k, true, false, truncate);
}

static void post_model_tokenize(http_req *r)
{
    srv_model *m = route_model(r, r->path_arg, 0);
    if (!m)
        return;
    json_t *body = req_body_json(r);
    if (!body)
        return;
    mcli_err err;
    mcli_err_clear(&err);
    bool add_special = true, truncate = false;
    if (jf_bool(body, "", "add_special_tokens", &add_special, &err) != MCLI_OK ||
        jf_bool(body, "", "truncate", &truncate, &err) != MCLI_OK) {
        json_decref(body);
        req_error_err(r, &err);
        return;
    }
    call_submit(r, m, CALL_TOKENIZE, body, 0, add_special, false, truncate);
}

/* ---- generate ---- */

static const gen_names original_names = {
    .max_new = "max_new_tokens", .max_new_alias = "max_length", .repeat_penalty = "repetition_penalty",
    .def_temperature = 1.0, .def_top_p = 1.0, .def_top_k = 0, .def_max_new = 50, .def_repeat_penalty = 1.0,
};

static json_t *usage_json(const sched_job *job)
{
    return json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)job->gen.n_prompt, "completion_tokens",
                     (json_int_t)job->gen.n, "total_tokens", (json_int_t)(job->gen.n_prompt + job->gen.n));
}

static void generate_finish(http_req *r, sched_job *job)
{
    if (job->status != MCLI_OK) {
        req_error_err(r, &job->err);
        return;
    }
    metrics_tokens(job->gen.n_prompt, job->gen.n);
    json_t *j = json_pack("{s:o,s:s,s:s,s:s,s:o,s:f,s:f}", "generated_text", gen_text_json(job),
                          "model", r->model->name, "prompt", job->prompt ? job->prompt : "", "finish_reason",
                          job->gen.finish_reason ? job->gen.finish_reason : "stop", "usage", usage_json(job),
                          "time_ms", job->gen.prompt_ms + job->gen.gen_ms + job->queue_ms, "tokens_per_second",
                          job->gen.gen_ms > 0 ? (double)job->gen.n / (job->gen.gen_ms / 1e3) : 0.0);
    json_t *ids = json_array();
    for (size_t i = 0; i < job->gen.n; i++)
        json_array_append_new(ids, json_integer(job->gen.ids[i]));
    json_object_set_new(j, "token_ids", ids);
    req_reply_json(r, 200, j);
}

/* Streamed variant: NDJSON {"token","text"} lines, then {"done":true,...}. */
static void generate_token(http_req *r, sched_job *job, int32_t id, const char *piece, size_t len)
{
    if (len == 0)
        return;
    req_stream_json(r, "", json_pack("{s:i,s:s%,s:b}", "token_id", (json_int_t)id, "text", piece, len, "done", 0),
                    "\n");
}

static void generate_stream_done(http_req *r, sched_job *job)
{
    if (job->status != MCLI_OK) {
        req_stream_json(r, "", json_pack("{s:s,s:b}", "error", job->err.msg, "done", 1), "\n");
        return;
    }
    metrics_tokens(job->gen.n_prompt, job->gen.n);
    req_stream_json(r, "",
                    json_pack("{s:b,s:o,s:s,s:s,s:o}", "done", 1, "generated_text", gen_text_json(job),
                              "model", r->model->name, "finish_reason",
                              job->gen.finish_reason ? job->gen.finish_reason : "stop", "usage", usage_json(job)),
                    "\n");
}

static void post_model_generate(http_req *r)
{
    srv_model *m = route_model(r, r->path_arg, MCLI_TASK_GENERATE);
    if (!m)
        return;
    json_t *body = req_body_json(r);
    if (!body)
        return;
    mcli_err err;
    mcli_err_clear(&err);
    sched_job *job = sched_job_new(SCHED_GENERATE);
    const char *prompt = NULL;
    size_t plen = 0;
    bool stream = false;
    mcli_status st = job ? MCLI_OK : mcli_fail(&err, MCLI_ERR_NOMEM, "out of memory");
    if (st == MCLI_OK)
        st = jf_string(body, "", "prompt", true, &prompt, &plen, &err);
    if (st == MCLI_OK)
        st = gen_read_params(body, "", &original_names, job, &err);
    if (st == MCLI_OK)
        st = jf_bool(body, "", "truncate", &job->truncate, &err);
    if (st == MCLI_OK)
        st = jf_bool(body, "", "stream", &stream, &err);
    if (st == MCLI_OK && !(job->prompt = strndup(prompt, plen)))
        st = mcli_fail(&err, MCLI_ERR_NOMEM, "out of memory");
    json_decref(body);
    if (st != MCLI_OK) {
        sched_job_unref(job);
        req_error_err(r, &err);
        return;
    }
    if (stream)
        req_submit_stream(r, m, job, "application/x-ndjson", generate_token, generate_stream_done, generate_finish);
    else
        req_submit(r, m, job, generate_finish);
}

const route_entry routes_original[] = {
    {"GET", "/", NULL, get_root, MET_ROOT, API_ORIGINAL},
    {"GET", "/health", NULL, get_health, MET_HEALTH, API_ORIGINAL},
    {"GET", "/models", NULL, get_models, MET_MODELS, API_ORIGINAL},
    {"GET", "/metrics", NULL, get_metrics, MET_METRICS, API_ORIGINAL},
    {"POST", NULL, "generate", post_model_generate, MET_MODEL_GENERATE, API_ORIGINAL},
    {"POST", NULL, "classify", post_model_classify, MET_MODEL_CLASSIFY, API_ORIGINAL},
    {"POST", NULL, "embed", post_model_embed, MET_MODEL_EMBED, API_ORIGINAL},
    {"POST", NULL, "fill-mask", post_model_fill_mask, MET_MODEL_FILL_MASK, API_ORIGINAL},
    {"POST", NULL, "tokenize", post_model_tokenize, MET_MODEL_TOKENIZE, API_ORIGINAL},
    {0},
};
