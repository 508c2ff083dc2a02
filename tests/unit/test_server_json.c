/* test_server_json.c - the request-body field readers (bounds, types, named fields in errors)
 * and the Prometheus renderer (counts, histogram buckets, a buffer too small). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "server/metrics.h"
#include "server/server_internal.h"

static json_t *parse(const char *s)
{
    json_error_t je;
    json_t *j = json_loads(s, JSON_ALLOW_NUL, &je); /* the server parses without it; the readers still defend */
    assert_non_null(j);
    return j;
}

static void int_field_bounds_are_inclusive_and_named_in_errors(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        mcli_status want;
        long long value;
        const char *needle;
    } cases[] = {
        {"{\"n\": 0}", MCLI_OK, 0, NULL},
        {"{\"n\": 100}", MCLI_OK, 100, NULL},
        {"{\"n\": 101}", MCLI_ERR_INVALID_ARG, 7, "out of range"},
        {"{\"n\": -1}", MCLI_ERR_INVALID_ARG, 7, "out of range"},
        {"{\"n\": 9223372036854775807}", MCLI_ERR_INVALID_ARG, 7, "out of range"},
        {"{\"n\": 5.0}", MCLI_OK, 5, NULL},
        {"{\"n\": 5.5}", MCLI_ERR_INVALID_ARG, 7, "must be an integer"},
        {"{\"n\": 1e300}", MCLI_ERR_INVALID_ARG, 7, "must be an integer"},
        {"{\"n\": \"5\"}", MCLI_ERR_INVALID_ARG, 7, "not a string"},
        {"{\"n\": null}", MCLI_OK, 7, NULL},
        {"{}", MCLI_OK, 7, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = parse(cases[i].body);
        long long v = 7;
        mcli_err err;
        mcli_err_clear(&err);
        mcli_status st = jf_int(j, "options.", "n", 0, 100, &v, &err);
        assert_int_equal(st, cases[i].want);
        assert_int_equal(v, cases[i].value);
        if (cases[i].needle) {
            assert_non_null(strstr(err.msg, cases[i].needle));
            assert_non_null(strstr(err.msg, "\"options.n\""));
        }
        json_decref(j);
    }
}

static void number_rejects_nan_free_out_of_range_and_wrong_types(void **state)
{
    (void)state;
    json_t *j = parse("{\"a\": 0.5, \"b\": 2.5, \"c\": true, \"d\": 0}");
    double v = -1;
    mcli_err err;
    assert_int_equal(jf_number(j, "", "a", 0, 1, &v, &err), MCLI_OK);
    assert_true(v == 0.5);
    assert_int_equal(jf_number(j, "", "b", 0, 1, &v, &err), MCLI_ERR_INVALID_ARG);
    assert_int_equal(jf_number(j, "", "c", 0, 1, &v, &err), MCLI_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "a boolean"));
    assert_int_equal(jf_number(j, "", "d", 0, 1, &v, &err), MCLI_OK); /* an integer is a number */
    assert_true(v == 0);
    json_decref(j);
}

static void strings_must_be_strings_without_nul(void **state)
{
    (void)state;
    json_t *j = parse("{\"s\": \"ab\\u0000c\", \"t\": \"ok\", \"u\": 3}");
    const char *v = NULL;
    size_t len = 0;
    mcli_err err;
    assert_int_equal(jf_string(j, "", "s", true, &v, &len, &err), MCLI_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "NUL"));
    assert_int_equal(jf_string(j, "", "t", true, &v, &len, &err), MCLI_OK);
    assert_string_equal(v, "ok");
    assert_int_equal(len, 2);
    assert_int_equal(jf_string(j, "", "u", true, &v, &len, &err), MCLI_ERR_INVALID_ARG);
    assert_int_equal(jf_string(j, "", "missing", true, &v, &len, &err), MCLI_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "missing field \"missing\""));
    json_decref(j);
}

static void texts_accept_a_string_or_a_list_and_name_the_bad_element(void **state)
{
    (void)state;
    json_t *j = parse("{\"one\": \"a\", \"many\": [\"a\", \"b\"], \"bad\": [\"a\", 1], \"empty\": [], \"obj\": {}}");
    mcli_err err;
    bool listed = false;
    sched_job *job = sched_job_new(SCHED_EMBED);
    assert_int_equal(jf_texts(j, "one", true, job, &listed, &err), MCLI_OK);
    assert_false(listed);
    assert_int_equal(jf_texts(j, "many", true, job, &listed, &err), MCLI_OK);
    assert_true(listed);
    assert_int_equal(job->n_texts, 3);
    assert_string_equal(job->texts[2], "b");
    assert_int_equal(jf_texts(j, "bad", true, job, &listed, &err), MCLI_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "\"bad[1]\""));
    assert_int_equal(jf_texts(j, "empty", true, job, &listed, &err), MCLI_ERR_INVALID_ARG);
    assert_int_equal(jf_texts(j, "obj", true, job, &listed, &err), MCLI_ERR_INVALID_ARG);
    assert_int_equal(jf_texts(j, "absent", false, job, &listed, &err), MCLI_OK);
    sched_job_unref(job);
    json_decref(j);
}

static void stop_strings_are_capped(void **state)
{
    (void)state;
    json_t *j = parse("{\"stop\": [\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]}");
    mcli_err err;
    sched_job *job = sched_job_new(SCHED_GENERATE);
    assert_int_equal(jf_stop(j, "", "stop", job, &err), MCLI_ERR_INVALID_ARG);
    assert_int_equal(job->params.n_stop, SCHED_MAX_STOP);
    sched_job_unref(job);
    json_decref(j);
}

static void metrics_render_counts_and_cumulative_buckets(void **state)
{
    (void)state;
    metrics_observe(MET_API_TAGS, 200, 0.0003);
    metrics_observe(MET_API_TAGS, 200, 0.003);
    metrics_observe(MET_API_TAGS, 404, 100.0);
    metrics_observe(MET_API_TAGS, 418, 0.001); /* not a tracked status: "other" */
    metrics_tokens(5, 7);
    metrics_model_gauge g = {.name = "org/\"x\"", .queued = 3, .running = 1};
    char buf[64 * 1024];
    size_t n = metrics_render(buf, sizeof buf, &g, 1, 2);
    assert_true(n > 0 && n < sizeof buf);
    assert_non_null(strstr(buf, "mcli_http_requests_total{route=\"/api/tags\",status=\"200\"} 2\n"));
    assert_non_null(strstr(buf, "mcli_http_requests_total{route=\"/api/tags\",status=\"404\"} 1\n"));
    assert_non_null(strstr(buf, "mcli_http_requests_total{route=\"/api/tags\",status=\"other\"} 1\n"));
    assert_non_null(strstr(buf, "mcli_http_request_duration_seconds_bucket{route=\"/api/tags\",le=\"0.0005\"} 1\n"));
    assert_non_null(strstr(buf, "mcli_http_request_duration_seconds_bucket{route=\"/api/tags\",le=\"0.005\"} 3\n"));
    assert_non_null(strstr(buf, "mcli_http_request_duration_seconds_bucket{route=\"/api/tags\",le=\"30\"} 3\n"));
    assert_non_null(strstr(buf, "mcli_http_request_duration_seconds_bucket{route=\"/api/tags\",le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(buf, "mcli_tokens_out_total 7\n"));
    assert_non_null(strstr(buf, "mcli_queue_depth{model=\"org/\\\"x\\\"\"} 3\n"));
    assert_non_null(strstr(buf, "mcli_http_in_flight 2\n"));
    char small[100];
    size_t m = metrics_render(small, sizeof small, &g, 1, 0);
    assert_int_equal(m, sizeof small);     /* did not fit */
    assert_true(strlen(small) < sizeof small);
    assert_true(small[0] == '\0' || small[strlen(small) - 1] == '\n'); /* cut at a line boundary */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(int_field_bounds_are_inclusive_and_named_in_errors),
        cmocka_unit_test(number_rejects_nan_free_out_of_range_and_wrong_types),
        cmocka_unit_test(strings_must_be_strings_without_nul),
        cmocka_unit_test(texts_accept_a_string_or_a_list_and_name_the_bad_element),
        cmocka_unit_test(stop_strings_are_capped),
        cmocka_unit_test(metrics_render_counts_and_cumulative_buckets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
