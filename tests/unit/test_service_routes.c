/* test_service_routes.c - the model service's handlers without HTTP (service_handle): routing,
 * hostile bodies and paths, model URLs, inference against the PyTorch references, the summary,
 * and requests racing unloads (run under ASan/UBSan in CI). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hub/catalog.h"
#include "server/service.h"
#include "util/log.h"

#define GPT2_DIR MCLI_FIXTURES "/decoders/tiny-gpt2"
#define CLS_DIR MCLI_FIXTURES "/encoders/bert_cls"

typedef struct {
    char dir[64];
    service *svc;
} ctx;

static int setup(void **state)
{
    log_set_level(MCLI_LOG_WARN);
    hub_catalog_set_data_dir(MCLI_SOURCE_DIR "/data");
    ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    snprintf(c->dir, sizeof c->dir, "/tmp/mcli-svc-XXXXXX");
    if (!mkdtemp(c->dir))
        return -1;
    service_opts o = {.host = "127.0.0.1", .port = 0, .models_dir = c->dir};
    mcli_err err = {0};
    if (service_new(&o, &c->svc, &err) != MCLI_OK) {
        fprintf(stderr, "service_new: %s\n", err.msg);
        return -1;
    }
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    ctx *c = *state;
    service_free(c->svc);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", c->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", c->dir);
    free(c);
    return 0;
}

/* Runs one request; returns the status and (owned) JSON body. */
static int call(service *s, const char *method, const char *path, const char *body, json_t **out)
{
    svc_reply r;
    service_handle(s, method, path, false, body ? body : "", body ? strlen(body) : 0, &r);
    assert_null(r.stream.next);
    assert_non_null(r.body);
    if (out)
        *out = r.body;
    else
        json_decref(r.body);
    return r.status;
}

static void expect_error(service *s, const char *method, const char *path, const char *body, int status,
                         const char *needle)
{
    json_t *j = NULL;
    int got = call(s, method, path, body, &j);
    const char *detail = json_string_value(json_object_get(j, "detail"));
    if (got != status || !detail || !strstr(detail, needle))
        fail_msg("%s %s: got %d '%s', want %d with '%s'", method, path, got, detail ? detail : "(none)", status,
                 needle);
    assert_non_null(json_string_value(json_object_get(j, "error")));
    json_decref(j);
}

static char *add_model(service *s, const char *name, const char *dir, const char *extra)
{
    char body[1024];
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"model_path\":\"%s\"%s}", name, dir, extra ? extra : "");
    json_t *j = NULL;
    int st = call(s, "POST", "/models", body, &j);
    if (st != 200)
        fail_msg("add %s: %d %s", name, st, json_string_value(json_object_get(j, "detail")));
    char *id = strdup(json_string_value(json_object_get(j, "model_id")));
    json_decref(j);
    return id;
}

static json_t *load_ref(const char *path)
{
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    if (!j)
        fail_msg("%s: %s", path, e.text);
    return j;
}

static void routing_answers_404_405_and_tolerates_a_trailing_slash(void **state)
{
    ctx *c = *state;
    json_t *j = NULL;
    assert_int_equal(call(c->svc, "GET", "/", NULL, &j), 200);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "running");
    json_decref(j);
    assert_int_equal(call(c->svc, "GET", "/health/", NULL, &j), 200);
    assert_true(json_number_value(json_object_get(j, "memory_usage_mb")) > 1.0);
    json_decref(j);
    expect_error(c->svc, "GET", "/nope", NULL, 404, "no route");
    expect_error(c->svc, "PATCH", "/models", NULL, 405, "not allowed");
    expect_error(c->svc, "GET", "/models/x/generate", NULL, 405, "not allowed");
    expect_error(c->svc, "POST", "/models/x/frobnicate", "{}", 405, "not allowed");
    expect_error(c->svc, "GET", "/models/x/frobnicate", NULL, 404, "'x/frobnicate'");
    expect_error(c->svc, "GET", "/lightweight/models/a/b/download", NULL, 405, "not allowed");
    char *long_path = malloc(5000);
    assert_non_null(long_path);
    memset(long_path, 'a', 4999);
    long_path[0] = '/';
    long_path[4999] = '\0';
    expect_error(c->svc, "GET", long_path, NULL, 413, "too long");
    free(long_path);
}

static void hostile_bodies_are_400s_that_say_why(void **state)
{
    ctx *c = *state;
    expect_error(c->svc, "POST", "/models", "", 400, "JSON object body");
    expect_error(c->svc, "POST", "/models", "{\"name\":", 400, "not valid JSON");
    expect_error(c->svc, "POST", "/models", "[]", 400, "must be a JSON object");
    expect_error(c->svc, "POST", "/models", "{\"a\":1,\"a\":2}", 400, "not valid JSON");
    expect_error(c->svc, "POST", "/models", "{\"name\":\"x\",\"model_path\":\"a\\u0000b\"}", 400, "NUL");
    expect_error(c->svc, "POST", "/models", "{\"name\":7,\"model_path\":\"/tmp\"}", 400, "'name' must be a string");
    expect_error(c->svc, "POST", "/models", "{\"name\":\"x\",\"model_path\":\"/tmp\",\"top_k\":1.5}", 400, "integer");
    expect_error(c->svc, "POST", "/models", "{\"name\":\"x\",\"model_path\":\"/tmp\",\"top_k\":99999999999999}", 400,
                 "top_k");
    expect_error(c->svc, "POST", "/models", "{\"name\":\"x\",\"model_path\":\"/tmp\",\"temperature\":-1}", 400,
                 "temperature");
    expect_error(c->svc, "POST", "/models", "{\"name\":\"x\",\"model_path\":\"/no/such/dir\"}", 404, "not a directory");
    expect_error(c->svc, "POST", "/models", "{\"name\":\"x\",\"model_path\":\"/tmp\"}", 404, "config.json");
    /* a name over the column's size */
    char body[600];
    int n = snprintf(body, sizeof body, "{\"name\":\"");
    memset(body + n, 'n', 300);
    snprintf(body + n + 300, sizeof body - (size_t)n - 300, "\",\"model_path\":\"/tmp\"}");
    expect_error(c->svc, "POST", "/models", body, 413, "'name'");
    /* deep nesting is refused by the parser's depth limit, not the stack */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 1);
    assert_non_null(deep);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[depth * 2] = '\0';
    expect_error(c->svc, "POST", "/models", deep, 400, "not valid JSON");
    free(deep);
    json_t *list = NULL;
    assert_int_equal(call(c->svc, "GET", "/models", NULL, &list), 200);
    assert_int_equal(json_array_size(list), 0); /* nothing registered by any of them */
    json_decref(list);
}

static void model_urls_split_into_endpoint_repo_and_revision(void **state)
{
    (void)state;
    struct {
        const char *url, *endpoint, *repo, *rev;
    } ok[] = {
        {"https://huggingface.co/prajjwal1/bert-tiny", "https://huggingface.co", "prajjwal1/bert-tiny", ""},
        {"http://127.0.0.1:5000/org/m/tree/v1.0", "http://127.0.0.1:5000", "org/m", "v1.0"},
        {"https://h/org/m/?x=1", "https://h", "org/m", ""},
        {"hf://org/m@abc", "", "org/m", "abc"},
        {"gpt2", "", "gpt2", ""},
        {"org/m", "", "org/m", ""},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char e[512], r[256], v[128];
        mcli_err err = {0};
        if (service_parse_model_url(ok[i].url, e, sizeof e, r, sizeof r, v, sizeof v, &err) != MCLI_OK)
            fail_msg("%s: %s", ok[i].url, err.msg);
        assert_string_equal(e, ok[i].endpoint);
        assert_string_equal(r, ok[i].repo);
        assert_string_equal(v, ok[i].rev);
    }
    static const char *const bad[] = {"https://h", "https://h/", "https://h/../../etc/passwd", "a/b/c", "/abs/path",
                                      "", "org/..", "https://h/org/ m"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char e[512], r[256], v[128];
        mcli_err err = {0};
        if (service_parse_model_url(bad[i], e, sizeof e, r, sizeof r, v, sizeof v, &err) == MCLI_OK)
            fail_msg("'%s' was accepted as %s", bad[i], r);
    }
}

static void download_keys_with_bad_escapes_or_paths_are_refused(void **state)
{
    ctx *c = *state;
    expect_error(c->svc, "POST", "/lightweight/models/a%2/download", NULL, 400, "bad model key");
    expect_error(c->svc, "POST", "/lightweight/models/a%00b/download", NULL, 400, "bad model key");
    expect_error(c->svc, "POST", "/lightweight/models/..%2F..%2Fetc/download", NULL, 404, "unknown model key");
    expect_error(c->svc, "POST", "/lightweight/models/a/b/c/download", NULL, 404, "unknown model key");
    json_t *j = NULL;
    assert_int_equal(call(c->svc, "GET", "/lightweight/status", NULL, &j), 200);
    assert_true(json_is_false(json_object_get(j, "running")));
    assert_int_equal(json_array_size(json_object_get(j, "downloads")), 0);
    json_decref(j);
}

static void generate_and_classify_match_the_pytorch_references(void **state)
{
    ctx *c = *state;
    json_t *gref = load_ref(MCLI_FIXTURES "/decoders/tiny-gpt2-ref.json");
    json_t *case0 = json_array_get(json_object_get(gref, "greedy"), 0);
    char extra[64];
    snprintf(extra, sizeof extra, ",\"max_length\":%lld,\"temperature\":0",
             (long long)json_integer_value(json_object_get(case0, "max_new_tokens")));
    char *g = add_model(c->svc, "gpt", GPT2_DIR, extra);
    char path[128], body[256];
    snprintf(path, sizeof path, "/models/%s/generate", g);
    snprintf(body, sizeof body, "{\"prompt\":\"%s\"}", json_string_value(json_object_get(case0, "text")));
    json_t *r = NULL;
    assert_int_equal(call(c->svc, "POST", path, body, &r), 200);
    assert_true(json_equal(json_object_get(r, "token_ids"), json_object_get(case0, "ids")));
    json_decref(r);

    json_t *cref = load_ref(CLS_DIR "/reference.json");
    char *k = add_model(c->svc, "cls", CLS_DIR, NULL);
    snprintf(path, sizeof path, "/models/%s/classify", k);
    snprintf(body, sizeof body, "{\"text\":\"%s\"}", json_string_value(json_array_get(json_object_get(cref, "texts"), 0)));
    assert_int_equal(call(c->svc, "POST", path, body, &r), 200);
    json_t *cls = json_object_get(r, "classifications");
    json_t *labels = json_object_get(cref, "labels"), *probs = json_array_get(json_object_get(cref, "probs"), 0);
    for (size_t i = 0; i < json_array_size(labels); i++) {
        double got = json_number_value(json_object_get(cls, json_string_value(json_array_get(labels, i))));
        double want = json_number_value(json_array_get(probs, i));
        if (fabs(got - want) > 1e-4)
            fail_msg("label %zu: %g vs %g", i, got, want);
    }
    json_decref(r);

    /* summary: 2 models, 2 inferences, 0 errors; then a failing one */
    snprintf(path, sizeof path, "/models/%s/generate", k);
    expect_error(c->svc, "POST", path, "{\"prompt\":\"x\"}", 400, "cannot generate");
    assert_int_equal(call(c->svc, "GET", "/models/summary", NULL, &r), 200);
    assert_int_equal(json_integer_value(json_object_get(r, "total_models")), 2);
    assert_int_equal(json_integer_value(json_object_get(r, "total_inferences")), 3);
    assert_int_equal(json_integer_value(json_object_get(r, "total_errors")), 1);
    json_decref(r);
    free(g);
    free(k);
    json_decref(gref);
    json_decref(cref);
}

typedef struct {
    service *svc;
    const char *id;
    int failures;
    int iters;
} racer;

static void *generate_loop(void *p)
{
    racer *r = p;
    char path[128];
    snprintf(path, sizeof path, "/models/%s/generate", r->id);
    for (int i = 0; i < r->iters; i++) {
        svc_reply rep;
        static const char body[] = "{\"prompt\":\"the cat\",\"max_length\":3}";
        service_handle(r->svc, "POST", path, false, body, sizeof body - 1, &rep);
        if (rep.status != 200)
            r->failures++;
        json_decref(rep.body);
    }
    return NULL;
}

static void *unload_loop(void *p)
{
    racer *r = p;
    char path[128];
    snprintf(path, sizeof path, "/models/%s", r->id);
    for (int i = 0; i < r->iters; i++) {
        svc_reply rep;
        service_handle(r->svc, "DELETE", path, false, "", 0, &rep);
        if (rep.status != 200)
            r->failures++;
        json_decref(rep.body);
        usleep(500);
    }
    return NULL;
}

static void requests_racing_unloads_never_lose_their_model(void **state)
{
    ctx *c = *state;
    char *g = add_model(c->svc, "gpt", GPT2_DIR, NULL);
    racer gen[2] = {{.svc = c->svc, .id = g, .iters = 15}, {.svc = c->svc, .id = g, .iters = 15}};
    racer un = {.svc = c->svc, .id = g, .iters = 30};
    pthread_t th[3];
    assert_int_equal(pthread_create(&th[0], NULL, generate_loop, &gen[0]), 0);
    assert_int_equal(pthread_create(&th[1], NULL, generate_loop, &gen[1]), 0);
    assert_int_equal(pthread_create(&th[2], NULL, unload_loop, &un), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(gen[0].failures + gen[1].failures + un.failures, 0);
    json_t *r = NULL;
    assert_int_equal(call(c->svc, "GET", "/models/summary", NULL, &r), 200);
    assert_int_equal(json_integer_value(json_object_get(r, "total_inferences")), 30);
    assert_int_equal(json_integer_value(json_object_get(r, "total_errors")), 0);
    json_decref(r);
    free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(routing_answers_404_405_and_tolerates_a_trailing_slash, setup, teardown),
        cmocka_unit_test_setup_teardown(hostile_bodies_are_400s_that_say_why, setup, teardown),
        cmocka_unit_test(model_urls_split_into_endpoint_repo_and_revision),
        cmocka_unit_test_setup_teardown(download_keys_with_bad_escapes_or_paths_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(generate_and_classify_match_the_pytorch_references, setup, teardown),
        cmocka_unit_test_setup_teardown(requests_racing_unloads_never_lose_their_model, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
