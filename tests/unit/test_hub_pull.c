/* hub_pull / dl_fetch end to end inside one process (so the sanitizer build checks the transfer code):
 * against tests/e2e/fake_hub.py started as a child process. Covers the happy path with the progress
 * events, a dropped connection resumed with Range, a cancel followed by a resume, a corrupted blob,
 * a missing repository, and a Retry-After. Expected checksums come from the fixture files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hub/download.h"
#include "hub/hub.h"
#include "hub/manifest.h"
#include "store/models_dir.h"

#define PY "/usr/bin/python3"
#define FAKE_HUB MCLI_SOURCE_DIR "/tests/e2e/fake_hub.py"
#define HUB_ROOT MCLI_FIXTURES "/hub"
#define REPO "tiny-org/tiny-gpt2"
#define WEIGHTS HUB_ROOT "/" REPO "/model.safetensors"

static pid_t hub_pid = -1;
static char endpoint[128];
static char tmpdir[256];
static dl_policy policy;

static int setup(void **state)
{
    (void)state;
    if (access(PY, X_OK) != 0)
        return 0; /* tests skip */
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    hub_pid = fork();
    if (hub_pid < 0)
        return -1;
    if (hub_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive a crashed test */
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(PY, PY, FAKE_HUB, HUB_ROOT, "0", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[512] = "";
    if (!f || !fgets(line, sizeof line, f))
        return -1;
    fclose(f);
    /* "fake hub at http://127.0.0.1:PORT, CDN at ..." */
    const char *p = strstr(line, "http://");
    const char *comma = p ? strchr(p, ',') : NULL;
    if (!p || !comma || (size_t)(comma - p) >= sizeof endpoint)
        return -1;
    memcpy(endpoint, p, (size_t)(comma - p));
    endpoint[comma - p] = '\0';
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mcli-test-hub-pull-%ld", (long)getpid());
    dl_policy_default(&policy);
    policy.base_delay_ms = 10;
    policy.max_delay_ms = 3000;
    policy.max_attempts = 4;
    setenv("MCLI_SYSINFO_OVERRIDE", "", 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (hub_pid > 0) {
        kill(hub_pid, SIGTERM);
        waitpid(hub_pid, NULL, 0);
    }
    mcli_err err;
    mcli_status st = models_dir_rmtree(tmpdir, &err);
    return st == MCLI_OK ? 0 : -1;
}

static size_t sink(char *b, size_t s, size_t n, void *u)
{
    (void)b;
    (void)u;
    return s * n;
}

/* POSTs a JSON body to the fake hub's control endpoint. */
static void control(const char *path, const char *json)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", endpoint, path);
    CURL *h = curl_easy_init();
    assert_non_null(h);
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
}

/* The Range headers of the CDN GETs of the weights, in order ("" when none). Returns the count. */
static size_t cdn_ranges(char out[][64], size_t cap)
{
    char url[256], *body = NULL;
    size_t len = 0;
    mcli_err err;
    snprintf(url, sizeof url, "%s/_control/log", endpoint);
    assert_int_equal(dl_get_small(url, NULL, &policy, 16 << 20, &body, &len, &err), MCLI_OK);
    json_t *log = json_loads(body, 0, NULL);
    free(body);
    assert_non_null(log);
    size_t n = 0, i;
    json_t *r;
    json_array_foreach(log, i, r) {
        const char *server = json_string_value(json_object_get(r, "server"));
        const char *method = json_string_value(json_object_get(r, "method"));
        const char *path = json_string_value(json_object_get(r, "path"));
        if (strcmp(server, "cdn") || strcmp(method, "GET") || !strstr(path, "model.safetensors") || n >= cap)
            continue;
        const char *range = json_string_value(json_object_get(r, "range"));
        snprintf(out[n++], 64, "%s", range ? range : "");
    }
    json_decref(log);
    return n;
}

typedef struct {
    int starts, dones, finished;
    int64_t last_total_done;
    bool monotonic;
    int64_t cancel_after; /* cancel once this many bytes of the weights arrived; 0 = never */
} events;

static int on_event(void *user, const hub_event *ev)
{
    events *e = user;
    switch (ev->kind) {
    case HUB_EV_FILE_START: e->starts++; break;
    case HUB_EV_FILE_DONE: e->dones++; break;
    case HUB_EV_DONE: e->finished++; break;
    case HUB_EV_PROGRESS:
        if (ev->total_done < e->last_total_done)
            e->monotonic = false;
        e->last_total_done = ev->total_done;
        if (e->cancel_after && ev->file && strcmp(ev->file, "model.safetensors") == 0 && ev->file_done >= e->cancel_after)
            return 1;
        break;
    default: break;
    }
    return 0;
}

static mcli_status pull_into(const char *sub, const char *repo, events *ev, hub_pull_result *res, mcli_err *err)
{
    char models[512];
    snprintf(models, sizeof models, "%s/%s", tmpdir, sub);
    hub_pull_opts o = {models, repo, NULL, endpoint, "", 0, &policy, on_event, ev, false};
    return hub_pull(&o, res, err);
}

static void check_weights(const hub_pull_result *res)
{
    char want[65], got[65], p[4200];
    mcli_err err;
    assert_int_equal(dl_sha256_file(WEIGHTS, want, NULL, &err), MCLI_OK);
    snprintf(p, sizeof p, "%s/model.safetensors", res->dir);
    assert_int_equal(dl_sha256_file(p, got, NULL, &err), MCLI_OK);
    assert_string_equal(got, want);
    hub_manifest m;
    assert_int_equal(manifest_read(res->dir, &m, &err), MCLI_OK);
    const manifest_file *f = manifest_find(&m, "model.safetensors");
    assert_non_null(f);
    assert_string_equal(f->sha256, want);
    manifest_free(&m);
}

#define NEED_HUB() do { if (hub_pid <= 0) skip(); control("/_control/reset", "{}"); } while (0)

static void pull_fetches_verifies_and_reports_progress(void **state)
{
    (void)state;
    NEED_HUB();
    events ev = {0, 0, 0, 0, true, 0};
    hub_pull_result res;
    mcli_err err;
    mcli_err_clear(&err);
    assert_int_equal(pull_into("a", REPO, &ev, &res, &err), MCLI_OK);
    assert_int_equal(res.n_files, 5);
    assert_int_equal(res.n_downloaded, 5);
    assert_int_equal(ev.starts, 5);
    assert_int_equal(ev.dones, 5);
    assert_int_equal(ev.finished, 1);
    assert_true(ev.monotonic);
    assert_int_equal(strlen(res.commit), 40);
    check_weights(&res);
    /* Again: nothing downloaded. */
    ev = (events){0, 0, 0, 0, true, 0};
    assert_int_equal(pull_into("a", REPO, &ev, &res, &err), MCLI_OK);
    assert_int_equal(res.n_downloaded, 0);
    assert_int_equal(ev.starts, 0);
}

static void dropped_connection_resumes_from_the_byte_count(void **state)
{
    (void)state;
    NEED_HUB();
    control("/_control/faults", "{\"kind\":\"drop\",\"match\":\"model.safetensors\",\"server\":\"cdn\",\"times\":1,"
                                "\"after_bytes\":123456}");
    events ev = {0, 0, 0, 0, true, 0};
    hub_pull_result res;
    mcli_err err;
    assert_int_equal(pull_into("b", REPO, &ev, &res, &err), MCLI_OK);
    char ranges[8][64];
    assert_int_equal(cdn_ranges(ranges, 8), 2);
    assert_string_equal(ranges[0], "");
    assert_string_equal(ranges[1], "bytes=123456-");
    check_weights(&res);
}

static void cancel_keeps_the_part_and_the_next_pull_resumes(void **state)
{
    (void)state;
    NEED_HUB();
    control("/_control/faults", "{\"kind\":\"trickle\",\"match\":\"model.safetensors\",\"server\":\"cdn\",\"times\":1,"
                                "\"chunk\":65536,\"delay\":0.02}");
    events ev = {0, 0, 0, 0, true, 200000};
    hub_pull_result res;
    mcli_err err;
    assert_int_equal(pull_into("c", REPO, &ev, &res, &err), MCLI_ERR_CANCELLED);
    char part[4200];
    snprintf(part, sizeof part, "%s/model.safetensors.part", res.dir);
    struct stat st;
    assert_int_equal(stat(part, &st), 0);
    int64_t have = (int64_t)st.st_size;
    assert_true(have >= 200000);
    ev = (events){0, 0, 0, 0, true, 0};
    assert_int_equal(pull_into("c", REPO, &ev, &res, &err), MCLI_OK);
    char ranges[8][64], want[64];
    size_t n = cdn_ranges(ranges, 8);
    assert_int_equal(n, 2);
    snprintf(want, sizeof want, "bytes=%lld-", (long long)have);
    assert_string_equal(ranges[1], want);
    check_weights(&res);
    assert_int_not_equal(stat(part, &st), 0);
}

static void corrupted_blob_is_rejected_and_removed(void **state)
{
    (void)state;
    NEED_HUB();
    control("/_control/faults", "{\"kind\":\"corrupt\",\"match\":\"model.safetensors\",\"server\":\"cdn\",\"times\":-1}");
    events ev = {0, 0, 0, 0, true, 0};
    hub_pull_result res;
    mcli_err err;
    assert_int_equal(pull_into("d", REPO, &ev, &res, &err), MCLI_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "checksum mismatch"));
    char p[4200];
    struct stat st;
    snprintf(p, sizeof p, "%s/model.safetensors", res.dir);
    assert_int_not_equal(stat(p, &st), 0);
    snprintf(p, sizeof p, "%s/model.safetensors.part", res.dir);
    assert_int_not_equal(stat(p, &st), 0);
    snprintf(p, sizeof p, "%s/%s", res.dir, MANIFEST_FILE);
    assert_int_not_equal(stat(p, &st), 0);
}

static void missing_repo_is_not_found_without_retry(void **state)
{
    (void)state;
    NEED_HUB();
    events ev = {0, 0, 0, 0, true, 0};
    hub_pull_result res;
    mcli_err err;
    assert_int_equal(pull_into("e", "tiny-org/missing", &ev, &res, &err), MCLI_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "repository not found"));
}

static void retry_after_is_waited_for(void **state)
{
    (void)state;
    NEED_HUB();
    control("/_control/faults", "{\"kind\":\"status\",\"status\":429,\"retry_after\":1,\"match\":\"model.safetensors\","
                                "\"server\":\"cdn\",\"times\":1}");
    events ev = {0, 0, 0, 0, true, 0};
    hub_pull_result res;
    mcli_err err;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(pull_into("f", REPO, &ev, &res, &err), MCLI_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double el = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(el >= 0.95);
    check_weights(&res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pull_fetches_verifies_and_reports_progress),
        cmocka_unit_test(dropped_connection_resumes_from_the_byte_count),
        cmocka_unit_test(cancel_keeps_the_part_and_the_next_pull_resumes),
        cmocka_unit_test(corrupted_blob_is_rejected_and_removed),
        cmocka_unit_test(missing_repo_is_not_found_without_retry),
        cmocka_unit_test(retry_after_is_waited_for),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
