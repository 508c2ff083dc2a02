/* routes_tei.c - Text Embeddings Inference-style routes for encoders: POST /embed, /predict,
 * /tokenize, /decode and GET /info. They serve the first loaded model that can do the task, or
 * the one named by an optional "model" field. Shapes follow TEI's OpenAPI description. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

/* body.model if given, else the first model that can do task. Replies on failure. */
static srv_model *tei_model(http_req *r, json_t *body, unsigned task)
{
    mcli_err err;
    mcli_err_clear(&err);
    const char *name = NULL;
    if (jf_string(body, "", "model", false, &name, NULL, &err) != MCLI_OK) {
        req_error_err(r, &err);
        return NULL;
    }
    if (name)
        return route_model(r, name, task);
    srv_model *m = task ? server_first_model(r->srv, task) : (r->srv->n_models ? &r->srv->models[0] : NULL);
    if (!m)
        req_error(r, MCLI_ERR_NOT_FOUND, 404, "no loaded model can serve this route");
    return m;
}

static void tei_encode_finish(http_req *r, sched_job *job)
{
    if (job->status != MCLI_OK) {
        req_error_err(r, &job->err);
        return;
    }
    metrics_tokens(job->total_tokens, 0);
    json_t *out = json_array();
    for (size_t i = 0; i < job->n_texts; i++) {
        if (job->kind == SCHED_EMBED) {
            json_array_append_new(out, json_floats(job->out + i * job->dim, job->dim));
            continue;
        }
        json_t *res = classify_result_json(r->model, job, i);
        json_t *scores = json_incref(json_object_get(res, "scores"));
        json_decref(res);
        json_array_append_new(out, scores);
    }
    if (job->kind == SCHED_CLASSIFY && !r->input_listed) { /* one input: its list of {label, score} */
        json_t *one = json_incref(json_array_get(out, 0));
        json_decref(out);
        out = one;
    }
    req_reply_json(r, 200, out);
}

static void tei_encode(http_req *r, sched_kind kind)
{
    json_t *body = req_body_json(r);
    if (!body)
        return;
    srv_model *m = tei_model(r, body, kind == SCHED_EMBED ? MCLI_TASK_EMBED : MCLI_TASK_CLASSIFY);
    if (!m) {
        json_decref(body);
        return;
    }
    mcli_err err;
    mcli_err_clear(&err);
    sched_job *job = sched_job_new(kind);
    bool normalize = true, truncate = false, listed = false;
    const char *pooling = "mean";
    mcli_status st = job ? MCLI_OK : mcli_fail(&err, MCLI_ERR_NOMEM, "out of memory");
    if (st == MCLI_OK)
        st = jf_texts(body, "inputs", true, job, &listed, &err);
    if (st == MCLI_OK)
        st = jf_bool(body, "", "normalize", &normalize, &err);
    if (st == MCLI_OK)
        st = jf_bool(body, "", "truncate", &truncate, &err);
    if (st == MCLI_OK)
        st = jf_string(body, "", "pooling", false, &pooling, NULL, &err);
    if (st == MCLI_OK && strcmp(pooling, "mean") != 0 && strcmp(pooling, "cls") != 0)
        st = mcli_fail(&err, MCLI_ERR_INVALID_ARG, "field \"pooling\" must be \"mean\" or \"cls\"");
    json_decref(body);
    if (st != MCLI_OK) {
        sched_job_unref(job);
        req_error_err(r, &err);
        return;
    }
    job->normalize = normalize;
    job->truncate = truncate;
    job->pool = strcmp(pooling, "cls") == 0 ? MCLI_POOL_CLS : MCLI_POOL_MEAN;
    r->input_listed = listed;
    req_submit(r, m, job, tei_encode_finish);
}

static void post_embed(http_req *r) { tei_encode(r, SCHED_EMBED); }
static void post_predict(http_req *r) { tei_encode(r, SCHED_CLASSIFY); }

static void post_tokenize(http_req *r)
{
    json_t *body = req_body_json(r);
    if (!body)
        return;
    srv_model *m = tei_model(r, body, 0);
    if (!m) {
        json_decref(body);
        return;
    }
    mcli_err err;
    mcli_err_clear(&err);
    bool add_special = true, truncate = false;
    if (jf_bool(body, "", "add_special_tokens", &add_special, &err) != MCLI_OK ||
        jf_bool(body, "", "truncate", &truncate, &err) != MCLI_OK) {
        json_decref(body);
        req_error_err(r, &err);
        return;
    }
    call_submit(r, m, CALL_TEI_TOKENIZE, body, 0, add_special, false, truncate);
}

static void post_decode(http_req *r)
{
    json_t *body = req_body_json(r);
    if (!body)
        return;
    srv_model *m = tei_model(r, body, 0);
    if (!m) {
        json_decref(body);
        return;
    }
    mcli_err err;
    mcli_err_clear(&err);
    bool skip = true;
    json_t *ids = json_object_get(body, "ids");
    mcli_status st = jf_bool(body, "", "skip_special_tokens", &skip, &err);
    if (st == MCLI_OK && !json_is_array(ids))
        st = mcli_fail(&err, MCLI_ERR_INVALID_ARG, "missing field \"ids\" (a list of token ids)");
    if (st == MCLI_OK && json_array_size(ids) > 0 && json_is_array(json_array_get(ids, 0))) {
        if (json_array_size(ids) != 1)
            st = mcli_fail(&err, MCLI_ERR_INVALID_ARG, "field \"ids\": one sequence per request");
        else /* [[...]] -> [...] */
            json_object_set(body, "ids", json_array_get(ids, 0));
    }
    if (st != MCLI_OK) {
        json_decref(body);
        req_error_err(r, &err);
        return;
    }
    call_submit(r, m, CALL_DECODE, body, 0, false, skip, false);
}

static void get_info(http_req *r)
{
    srv_model *m = r->srv->n_models ? &r->srv->models[0] : NULL;
    srv_model *enc = server_first_model(r->srv, MCLI_TASK_EMBED | MCLI_TASK_CLASSIFY);
    if (enc)
        m = enc;
    if (!m) {
        req_error(r, MCLI_ERR_NOT_FOUND, 404, "no model loaded");
        return;
    }
    const mcli_config *c = m->info->config;
    json_t *type;
    if (m->info->tasks & MCLI_TASK_CLASSIFY) {
        json_t *id2label = json_object(), *label2id = json_object();
        for (int i = 0; i < c->n_labels && c->labels; i++) {
            char k[16];
            snprintf(k, sizeof k, "%d", i);
            json_object_set_new(id2label, k, json_string(c->labels[i]));
            json_object_set_new(label2id, c->labels[i], json_integer(i));
        }
        type = json_pack("{s:{s:o,s:o}}", "classifier", "id2label", id2label, "label2id", label2id);
    } else if (m->decoder) {
        type = json_pack("{s:{}}", "generator");
    } else {
        type = json_pack("{s:{s:s}}", "embedding", "pooling", "mean");
    }
    req_reply_json(r, 200, json_pack("{s:s,s:s,s:s,s:o,s:i,s:i,s:i,s:i,s:s,s:s}", "model_id", m->name, "model_sha",
                                     m->digest, "model_dtype", "float32", "model_type", type,
                                     "max_concurrent_requests", (int)r->srv->opts.sched.queue_cap,
                                     "max_input_length", c->max_positions, "max_batch_tokens",
                                     (int)(r->srv->opts.sched.token_budget ? r->srv->opts.sched.token_budget : 8192),
                                     "max_client_batch_size", SCHED_MAX_BATCH * 16, "version", MCLI_VERSION,
                                     "router", "mcli"));
}

const route_entry routes_tei[] = {
    {"POST", "/embed", NULL, post_embed, MET_TEI_EMBED, API_TEI},
    {"POST", "/predict", NULL, post_predict, MET_TEI_PREDICT, API_TEI},
    {"POST", "/tokenize", NULL, post_tokenize, MET_TEI_TOKENIZE, API_TEI},
    {"POST", "/decode", NULL, post_decode, MET_TEI_DECODE, API_TEI},
    {"GET", "/info", NULL, get_info, MET_TEI_INFO, API_TEI},
    {0},
};
