/* routes_gen.c - what the original, Ollama and OpenAI generation routes share: reading the
 * sampling parameters (each API names them differently), chat messages, seeds, reply state.
 * HTTP threads only; no shared state but the seed counter (atomic). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

json_t *gen_text_json(const sched_job *job)
{
    json_t *t = json_stringn(job->text ? job->text : "", job->text_len);
    return t ? t : json_string("");
}

uint64_t gen_random_seed(void)
{
    static atomic_uint_fast64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (atomic_fetch_add(&counter, 1) * 0x9E3779B97F4A7C15ull);
    x ^= x >> 33; /* splitmix-style finalizer */
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

mcli_status gen_read_params(json_t *o, const char *where, const gen_names *names, sched_job *job, mcli_err *err)
{
    mcli_status st;
    long long max_new = names->def_max_new, top_k = names->def_top_k, seed = -1;
    double temperature = names->def_temperature, top_p = names->def_top_p, min_p = 0;
    double rep = names->def_repeat_penalty;
    bool do_sample = true, do_sample_given = false;
    if ((st = jf_int(o, where, names->max_new, -1, 1 << 20, &max_new, err)) != MCLI_OK)
        return st;
    if (names->max_new_alias && !json_object_get(o, names->max_new))
        if ((st = jf_int(o, where, names->max_new_alias, -1, 1 << 20, &max_new, err)) != MCLI_OK)
            return st;
    if ((st = jf_number(o, where, "temperature", 0, 100, &temperature, err)) != MCLI_OK ||
        (st = jf_number(o, where, "top_p", 0, 1, &top_p, err)) != MCLI_OK ||
        (st = jf_number(o, where, "min_p", 0, 1, &min_p, err)) != MCLI_OK ||
        (st = jf_int(o, where, "top_k", 0, 1 << 20, &top_k, err)) != MCLI_OK ||
        (st = jf_int(o, where, "seed", -1, (long long)1 << 62, &seed, err)) != MCLI_OK)
        return st;
    if (names->repeat_penalty && (st = jf_number(o, where, names->repeat_penalty, 0.01, 100, &rep, err)) != MCLI_OK)
        return st;
    if (json_object_get(o, "do_sample")) {
        if ((st = jf_bool(o, where, "do_sample", &do_sample, err)) != MCLI_OK)
            return st;
        do_sample_given = true;
    }
    /* llama.cpp's ignore_eos: generate exactly the token limit (benchmarks, fixed-length output). */
    bool ignore_eos = false;
    if (json_object_get(o, "ignore_eos") && (st = jf_bool(o, where, "ignore_eos", &ignore_eos, err)) != MCLI_OK)
        return st;
    if ((st = jf_stop(o, where, "stop", job, err)) != MCLI_OK)
        return st;
    mcli_gen_params *p = &job->params;
    p->ignore_eos = ignore_eos;
    /* -1 (Ollama: "until the context is full") -> the whole remaining context. */
    p->max_new_tokens = max_new < 0 ? (1 << 20) : (int)max_new;
    p->temperature = (float)temperature;
    p->greedy = temperature == 0 || (do_sample_given && !do_sample);
    p->top_k = (int)top_k;
    p->top_p = top_p <= 0 ? 1.0f : (float)top_p;
    p->min_p = (float)min_p;
    p->repetition_penalty = (float)rep;
    p->seed = seed >= 0 ? (uint64_t)seed : gen_random_seed();
    return MCLI_OK;
}

mcli_status gen_read_messages(json_t *o, sched_job *job, mcli_err *err)
{
    json_t *msgs = json_object_get(o, "messages");
    if (!msgs)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "missing field \"messages\" (a list of {\"role\", \"content\"})");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"messages\" must be a non-empty list");
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        if (!json_is_object(m))
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"messages[%zu]\" must be an object", i);
        json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
        if (!json_is_string(role))
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"messages[%zu].role\" must be a string", i);
        const char *rs = json_string_value(role);
        if (strcmp(rs, "system") != 0 && strcmp(rs, "user") != 0 && strcmp(rs, "assistant") != 0 &&
            strcmp(rs, "tool") != 0 && strcmp(rs, "developer") != 0)
            return mcli_fail(err, MCLI_ERR_INVALID_ARG,
                             "field \"messages[%zu].role\" must be system, user or assistant (got \"%.40s\")", i, rs);
        if (strcmp(rs, "system") == 0 || strcmp(rs, "developer") == 0)
            continue;
        const char *text = NULL;
        size_t len = 0;
        if (json_is_string(content)) {
            text = json_string_value(content);
            len = json_string_length(content);
        } else if (json_is_array(content)) {
            /* OpenAI content parts: take the first {"type":"text","text":...} */
            size_t k;
            json_t *part;
            json_array_foreach(content, k, part)
            {
                json_t *t = json_object_get(part, "text");
                if (json_is_string(t)) {
                    text = json_string_value(t);
                    len = json_string_length(t);
                    break;
                }
            }
        }
        if (!text)
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"messages[%zu].content\" must be a string", i);
        if (memchr(text, '\0', len))
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"messages[%zu].content\" contains a NUL character", i);
        mcli_status st = sched_job_add_text(job, text, len, err);
        if (st != MCLI_OK)
            return st;
    }
    if (job->n_texts == 0)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "field \"messages\" holds no user or assistant message");
    job->chat = true;
    return MCLI_OK;
}

gen_ctx *gen_ctx_new(http_req *r, const srv_model *m, const char *id_prefix)
{
    gen_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->created = time(NULL);
    snprintf(c->id, sizeof c->id, "%s%016llx", id_prefix, (unsigned long long)gen_random_seed());
    snprintf(c->model, sizeof c->model, "%s", m->name);
    r->ctx = c;
    r->ctx_free = free;
    return c;
}
