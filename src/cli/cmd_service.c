/* cmd_service.c - the model service's commands: start, stop, status (the daemon and its pid
 * file) and add, add-from-url, update (+ service_list_registry / service_remove_registry, see
 * service_cli.h) that manage the registry through the running service, or directly on the
 * database when no service runs (or with --direct).
 *
 * Settings, in rising precedence: defaults < config file (--config or $MCLI_SERVICE_CONFIG) <
 * environment ($MCLI_SERVICE_*, $MCLI_MODELS_DIR) < flags. docs/SERVICE.md has the table.
 *
 * The pid file (default <models_dir>/service.pid) is JSON {"pid","host","port","db","models_dir"},
 * written atomically once the service listens and removed when it stops. A pid file whose process
 * is gone is stale and ignored (and replaced by the next start).
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/service_cli.h"
#include "hub/download.h"
#include "hub/hub.h"
#include "server/service.h"
#include "store/models_dir.h"
#include "store/registry.h"
#include "util/config_file.h"
#include "util/log.h"

#define PATH_CAP 4096
#define HTTP_RESP_MAX (16u << 20)

/* ---------------------------------------------------------------- settings */

typedef struct {
    /* flags as given (NULL = not given) */
    const char *f_host, *f_port, *f_models_dir, *f_db, *f_config, *f_pid_file, *f_log_file, *f_max_models,
        *f_max_memory_mb, *f_lw_port, *f_threads, *f_api_key;
    bool daemon, json, direct, summary;
    /* resolved */
    char host[256];
    int port;
    char models_dir[PATH_CAP];
    char db[PATH_CAP];
    char pid_file[PATH_CAP];
    char log_file[PATH_CAP];
    char api_key[256];
    long long max_models, max_memory_mb, lw_port, threads;
} svc_settings;

static const char *const config_keys[] = {"host", "port", "models_dir", "db", "pid_file", "log_file", "max_models",
                                          "max_memory_mb", "lightweight_port", "threads", "api_key", "log_level"};

/* flag > env > config > NULL */
static const char *pick(const char *flag, const char *env_name, const cfg_file *cfg, const char *key)
{
    if (flag)
        return flag;
    const char *e = env_name ? getenv(env_name) : NULL;
    if (e && *e)
        return e;
    return cfg ? cfg_get(cfg, key) : NULL;
}

static bool copy_setting(const char *cmd, const char *what, char *dst, size_t cap, const char *v)
{
    int n = snprintf(dst, cap, "%s", v);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "mcli %s: %s is too long\n", cmd, what);
        return false;
    }
    return true;
}

/* Resolves every setting; returns 0 or an exit code. */
static int resolve_settings(const char *cmd, svc_settings *s)
{
    cfg_file cfg = {0};
    bool have_cfg = false;
    mcli_err err = {0};
    const char *cfg_path = s->f_config ? s->f_config : getenv("MCLI_SERVICE_CONFIG");
    if (cfg_path && *cfg_path) {
        if (cfg_load(cfg_path, &cfg, &err) != MCLI_OK ||
            cfg_check_keys(&cfg, config_keys, sizeof config_keys / sizeof config_keys[0], &err) != MCLI_OK) {
            cfg_free(&cfg);
            fprintf(stderr, "mcli %s: %s\n", cmd, err.msg);
            return err.code == MCLI_ERR_INVALID_ARG ? 2 : 1;
        }
        have_cfg = true;
    }
    const cfg_file *c = have_cfg ? &cfg : NULL;
    int rc = 0;
    const char *v;
    long long x;
    const char *level = c ? cfg_get(c, "log_level") : NULL;
    if (level && !getenv("MCLI_LOG_LEVEL")) {
        if (log_parse_level(level) < 0) {
            fprintf(stderr, "mcli %s: config log_level '%s' is not debug|info|warn|error|off\n", cmd, level);
            rc = 2;
            goto done;
        }
        log_set_level((mcli_log_level)log_parse_level(level));
    }
    if (!copy_setting(cmd, "host", s->host, sizeof s->host,
                      (v = pick(s->f_host, "MCLI_SERVICE_HOST", c, "host")) ? v : "127.0.0.1")) {
        rc = 2;
        goto done;
    }
    v = pick(s->f_port, "MCLI_SERVICE_PORT", c, "port");
    s->port = SERVICE_DEFAULT_PORT;
    if (v) {
        if (cfg_parse_int("port", v, 0, 65535, &x, &err) != MCLI_OK)
            goto bad;
        s->port = (int)x;
    }
    v = pick(s->f_models_dir, NULL, c, "models_dir");
    if (models_dir_resolve(v, s->models_dir, sizeof s->models_dir, &err) != MCLI_OK)
        goto bad;
    if (s->f_models_dir == NULL && getenv("MCLI_MODELS_DIR") && *getenv("MCLI_MODELS_DIR") && c &&
        cfg_get(c, "models_dir")) {
        /* env beats config: models_dir_resolve(NULL) reads $MCLI_MODELS_DIR */
        if (models_dir_resolve(NULL, s->models_dir, sizeof s->models_dir, &err) != MCLI_OK)
            goto bad;
    }
    v = pick(s->f_db, "MCLI_SERVICE_DB", c, "db");
    if (v ? !copy_setting(cmd, "db", s->db, sizeof s->db, v)
          : snprintf(s->db, sizeof s->db, "%s/registry.db", s->models_dir) >= (int)sizeof s->db) {
        rc = 2;
        goto done;
    }
    v = pick(s->f_pid_file, "MCLI_SERVICE_PID_FILE", c, "pid_file");
    if (v ? !copy_setting(cmd, "pid file", s->pid_file, sizeof s->pid_file, v)
          : snprintf(s->pid_file, sizeof s->pid_file, "%s/service.pid", s->models_dir) >= (int)sizeof s->pid_file) {
        rc = 2;
        goto done;
    }
    v = pick(s->f_log_file, "MCLI_SERVICE_LOG_FILE", c, "log_file");
    if (v ? !copy_setting(cmd, "log file", s->log_file, sizeof s->log_file, v)
          : snprintf(s->log_file, sizeof s->log_file, "%s/service.log", s->models_dir) >= (int)sizeof s->log_file) {
        rc = 2;
        goto done;
    }
    s->max_models = 0;
    if ((v = pick(s->f_max_models, "MCLI_SERVICE_MAX_MODELS", c, "max_models")) &&
        cfg_parse_int("max_models", v, 1, 1000, &s->max_models, &err) != MCLI_OK)
        goto bad;
    s->max_memory_mb = 0;
    if ((v = pick(s->f_max_memory_mb, "MCLI_SERVICE_MAX_MEMORY_MB", c, "max_memory_mb")) &&
        cfg_parse_int("max_memory_mb", v, 0, 100000000, &s->max_memory_mb, &err) != MCLI_OK)
        goto bad;
    s->lw_port = 0;
    if ((v = pick(s->f_lw_port, "MCLI_SERVICE_LIGHTWEIGHT_PORT", c, "lightweight_port")) &&
        cfg_parse_int("lightweight_port", v, 0, 65535, &s->lw_port, &err) != MCLI_OK)
        goto bad;
    v = pick(s->f_api_key, "MCLI_API_KEY", c, "api_key");
    if (v && !copy_setting(cmd, "api key", s->api_key, sizeof s->api_key, v)) {
        rc = 2;
        goto done;
    }
    s->threads = 1;
    if ((v = pick(s->f_threads, "MCLI_SERVICE_THREADS", c, "threads")) &&
        cfg_parse_int("threads", v, 1, 256, &s->threads, &err) != MCLI_OK)
        goto bad;
    goto done;
bad:
    fprintf(stderr, "mcli %s: %s\n", cmd, err.msg);
    rc = 2;
done:
    cfg_free(&cfg);
    return rc;
}

/* Takes the options every service command shares; returns 1 if argv[*i] was one (advancing *i
 * past its value), 0 if not, -1 on a usage error (reported). */
static int take_common(const char *cmd, int argc, char **argv, int *i, svc_settings *s)
{
    const char *a = argv[*i];
    static const char *const with_value[] = {"--models-dir", "--db", "--config", "--pid-file", "--api-key"};
    for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++) {
        if (strcmp(a, with_value[k]) != 0)
            continue;
        if (*i + 1 >= argc) {
            cli_usage_error(cmd, "%s needs a value", a);
            return -1;
        }
        const char *v = argv[++*i];
        if (k == 0) s->f_models_dir = v;
        else if (k == 1) s->f_db = v;
        else if (k == 2) s->f_config = v;
        else if (k == 3) s->f_pid_file = v;
        else s->f_api_key = v;
        return 1;
    }
    if (strcmp(a, "--json") == 0) {
        s->json = true;
        return 1;
    }
    if (strcmp(a, "--direct") == 0) {
        s->direct = true;
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- pid file */

typedef struct {
    long pid;
    char host[256];
    int port;
    char api_key[256]; /* from the settings, never from the pid file */
} pid_info;

static bool pid_alive(long pid)
{
    if (pid <= 0 || pid > INT_MAX)
        return false;
    if (kill((pid_t)pid, 0) != 0 && errno != EPERM)
        return false;
    /* a zombie (exited, not yet reaped) is not running */
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
}

/* True unless /proc says pid runs something other than `mcli ... start` (a reused pid must not be
 * signalled by `stop`). */
static bool pid_is_service(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
    FILE *f = fopen(path, "rb");
    if (!f)
        return true; /* no /proc: trust the pid file */
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (n == 0)
        return false;
    const char *exe = strrchr(buf, '/');
    exe = exe ? exe + 1 : buf;
    bool is_mcli = strstr(exe, "mcli") != NULL, has_start = false;
    for (size_t i = strlen(buf) + 1; i < n; i += strlen(buf + i) + 1)
        if (strcmp(buf + i, "start") == 0)
            has_start = true;
    return is_mcli && has_start;
}

/* Reads the pid file; false if absent or unreadable (a malformed one is reported). */
static bool pidfile_read(const char *path, pid_info *out)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (n == sizeof buf) {
        fprintf(stderr, "mcli: pid file %s is too large; ignoring it\n", path);
        return false;
    }
    json_t *j = json_loadb(buf, n, 0, &jerr);
    json_t *pid = json_object_get(j, "pid"), *port = json_object_get(j, "port"), *host = json_object_get(j, "host");
    bool ok = json_is_integer(pid) && json_is_integer(port) && json_is_string(host) &&
              json_integer_value(port) > 0 && json_integer_value(port) < 65536 &&
              json_string_length(host) < sizeof out->host;
    if (ok) {
        out->pid = (long)json_integer_value(pid);
        out->port = (int)json_integer_value(port);
        snprintf(out->host, sizeof out->host, "%s", json_string_value(host));
    } else {
        fprintf(stderr, "mcli: pid file %s is malformed; ignoring it\n", path);
    }
    json_decref(j);
    return ok;
}

static mcli_status pidfile_write(const char *path, const svc_settings *s, int port, mcli_err *err)
{
    char tmp[PATH_CAP + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    json_t *j = json_pack("{s:I,s:s,s:i,s:s,s:s}", "pid", (json_int_t)getpid(), "host", s->host, "port", port, "db",
                          s->db, "models_dir", s->models_dir);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return mcli_fail(err, MCLI_ERR_NOMEM, "pid file: out of memory");
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0)
        ok = false;
    free(text);
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return mcli_fail(err, MCLI_ERR_IO, "cannot write the pid file %s: %s", path, strerror(e));
    }
    return MCLI_OK;
}

/* Removes the pid file if it still names this process. */
static void pidfile_remove_own(const char *path)
{
    pid_info pi;
    if (pidfile_read(path, &pi) && pi.pid == (long)getpid())
        unlink(path);
}

/* The running service from the pid file, or false (a stale file is removed). */
static bool find_service(const svc_settings *s, pid_info *pi)
{
    if (!pidfile_read(s->pid_file, pi))
        return false;
    if (pid_alive(pi->pid) && pid_is_service(pi->pid)) {
        snprintf(pi->api_key, sizeof pi->api_key, "%s", s->api_key);
        return true;
    }
    unlink(s->pid_file);
    return false;
}

/* ---------------------------------------------------------------- HTTP client */

typedef struct {
    char *data;
    size_t len;
    bool too_big;
} resp_buf;

static size_t on_body(char *p, size_t size, size_t n, void *user)
{
    resp_buf *b = user;
    size_t add = size * n;
    if (b->too_big || add > HTTP_RESP_MAX - b->len) {
        b->too_big = true;
        return 0;
    }
    char *grown = realloc(b->data, b->len + add + 1);
    if (!grown)
        return 0;
    b->data = grown;
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

/* One request to the service; *reply is the parsed JSON body (caller decrefs). */
static mcli_status svc_call(const pid_info *pi, const char *method, const char *path, json_t *body, long timeout_s,
                            long *status, json_t **reply, mcli_err *err)
{
    *reply = NULL;
    *status = 0;
    char url[1600];
    const char *host = strcmp(pi->host, "0.0.0.0") == 0 ? "127.0.0.1" : pi->host;
    bool v6 = strchr(host, ':') != NULL;
    if (snprintf(url, sizeof url, "http://%s%s%s:%d%s", v6 ? "[" : "", host, v6 ? "]" : "", pi->port, path) >=
        (int)sizeof url)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "request path too long");
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    CURL *c = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    if (hdr && pi->api_key[0]) {
        char auth[300];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", pi->api_key);
        struct curl_slist *more = curl_slist_append(hdr, auth);
        if (more)
            hdr = more;
    }
    resp_buf b = {0};
    mcli_status st = MCLI_OK;
    if (!c || !hdr || (body && !text)) {
        st = mcli_fail(err, MCLI_ERR_NOMEM, "out of memory preparing a request");
        goto done;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (text) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        st = mcli_fail(err, MCLI_ERR_NETWORK, "the service at %s:%d did not answer %s %s: %s", pi->host, pi->port,
                       method, path, b.too_big ? "reply too large" : curl_easy_strerror(rc));
        goto done;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    json_error_t jerr;
    *reply = b.data ? json_loadb(b.data, b.len, 0, &jerr) : NULL;
    if (!*reply)
        st = mcli_fail(err, MCLI_ERR_FORMAT, "the service answered %s %s with %ld and a body that is not JSON", method,
                       path, *status);
done:
    curl_slist_free_all(hdr);
    if (c)
        curl_easy_cleanup(c);
    free(text);
    free(b.data);
    return st;
}

/* Prints the service's error reply; returns the exit code for its HTTP status. */
static int report_http_error(const char *cmd, long status, json_t *reply)
{
    json_t *d = json_object_get(reply, "detail");
    fprintf(stderr, "mcli %s: the service answered %ld: %s\n", cmd, status,
            json_is_string(d) ? json_string_value(d) : "(no detail)");
    return status == 400 || status == 422 ? 2 : 1;
}

static void print_json(json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10));
    printf("%s\n", text ? text : "null");
    free(text);
}

static int fail_err(const char *cmd, const mcli_err *err)
{
    fprintf(stderr, "mcli %s: %s\n", cmd, err->msg);
    return mcli_status_exit(err->code);
}

/* ---------------------------------------------------------------- start */

const char usage_start[] =
    "Usage: mcli [workflow model-service] start [--host H] [--port 8000] [--models-dir D] [--config FILE] [--daemon]\n"
    "\n"
    "Runs the model service: a registry of models (SQLite), a management API, generate/classify on\n"
    "registered models, and the /lightweight/... routes. In the foreground until SIGINT/SIGTERM, or\n"
    "detached with --daemon (the log then goes to the log file). See docs/SERVICE.md.\n"
    "\n"
    "  --host H               address to bind (default 127.0.0.1; env MCLI_SERVICE_HOST)\n"
    "  --port N               port (default 8000; 0 = any free port; env MCLI_SERVICE_PORT)\n"
    "  --models-dir D         models directory (default ./models; env MCLI_MODELS_DIR)\n"
    "  --db FILE              registry database (default D/registry.db; env MCLI_SERVICE_DB)\n"
    "  --config FILE          settings file, key = value or JSON (env MCLI_SERVICE_CONFIG)\n"
    "  --max-models N         models kept loaded, least recently used unloaded first (default 2)\n"
    "  --max-memory-mb N      memory budget of loaded models (default: none)\n"
    "  --lightweight-port N   port of POST /lightweight/start (default: port + 1)\n"
    "  --api-key KEY          require 'Authorization: Bearer KEY' (not on GET /health; env MCLI_API_KEY)\n"
    "  --threads N            engine threads per model call (default 1: requests run in parallel)\n"
    "  --pid-file FILE        (default D/service.pid; env MCLI_SERVICE_PID_FILE)\n"
    "  --log-file FILE        log of a --daemon service (default D/service.log)\n"
    "  --daemon               detach; returns once the service listens\n"
    "\n"
    "Precedence: config file < environment < flags.\n";

static int run_foreground(const svc_settings *s, int ready_fd)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any thread: they all inherit it */
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    service_opts o = {.host = s->host, .port = s->port, .models_dir = s->models_dir, .db_path = s->db,
                      .max_models = (size_t)s->max_models, .max_memory_mb = (size_t)s->max_memory_mb,
                      .lightweight_port = (int)s->lw_port, .threads = (int)s->threads,
                      .api_key = s->api_key[0] ? s->api_key : NULL, .access_log = true};
    service *svc = NULL;
    mcli_err err = {0};
    int rc = 1;
    if (service_new(&o, &svc, &err) != MCLI_OK || service_listen(svc, &err) != MCLI_OK ||
        pidfile_write(s->pid_file, s, service_port(svc), &err) != MCLI_OK) {
        fprintf(stderr, "mcli start: %s\n", err.msg);
        rc = mcli_status_exit(err.code);
        goto done;
    }
    printf("mcli model service listening on http://%s:%d (pid %ld, registry %s)\n", s->host, service_port(svc),
           (long)getpid(), s->db);
    fflush(stdout);
    if (ready_fd >= 0) {
        char c = 1;
        if (write(ready_fd, &c, 1) != 1)
            LOG_WARN("start: could not signal readiness to the parent");
        close(ready_fd);
        ready_fd = -1;
    }
    int sig = 0;
    sigwait(&set, &sig);
    LOG_INFO("service: signal %d, stopping", sig);
    rc = 0;
done:
    if (ready_fd >= 0)
        close(ready_fd);
    service_free(svc);
    pidfile_remove_own(s->pid_file);
    curl_global_cleanup();
    return rc;
}

int cmd_start(int argc, char **argv)
{
    const char *cmd = "start";
    svc_settings s = {0};
    for (int i = 1; i < argc; i++) {
        int t = take_common(cmd, argc, argv, &i, &s);
        if (t < 0)
            return 2;
        if (t > 0)
            continue;
        const char *a = argv[i];
        const char **slot = strcmp(a, "--host") == 0              ? &s.f_host
                            : strcmp(a, "--port") == 0            ? &s.f_port
                            : strcmp(a, "--max-models") == 0      ? &s.f_max_models
                            : strcmp(a, "--max-memory-mb") == 0   ? &s.f_max_memory_mb
                            : strcmp(a, "--lightweight-port") == 0 ? &s.f_lw_port
                            : strcmp(a, "--log-file") == 0        ? &s.f_log_file
                            : strcmp(a, "--threads") == 0         ? &s.f_threads
                                                                  : NULL;
        if (slot) {
            if (i + 1 >= argc)
                return cli_usage_error(cmd, "%s needs a value", a);
            *slot = argv[++i];
        } else if (strcmp(a, "--daemon") == 0) {
            s.daemon = true;
        } else {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        }
    }
    int rc = resolve_settings(cmd, &s);
    if (rc)
        return rc;
    mcli_err err = {0};
    if (models_dir_mkdirs(s.models_dir, &err) != MCLI_OK)
        return fail_err(cmd, &err);
    pid_info pi;
    if (find_service(&s, &pi)) {
        fprintf(stderr, "mcli start: the model service already runs (pid %ld, http://%s:%d); stop it first\n", pi.pid,
                pi.host, pi.port);
        return 1;
    }
    if (!s.daemon)
        return run_foreground(&s, -1);

    int pipefd[2];
    if (pipe(pipefd) != 0) {
        fprintf(stderr, "mcli start: pipe: %s\n", strerror(errno));
        return 1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "mcli start: fork: %s\n", strerror(errno));
        return 1;
    }
    if (child == 0) {
        close(pipefd[0]);
        setsid();
        int devnull = open("/dev/null", O_RDONLY);
        int logfd = open(s.log_file, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            close(devnull);
        }
        if (logfd >= 0) {
            dup2(logfd, STDOUT_FILENO);
            dup2(logfd, STDERR_FILENO);
            close(logfd);
        }
        _exit(run_foreground(&s, pipefd[1]));
    }
    close(pipefd[1]);
    char c = 0;
    ssize_t n;
    do
        n = read(pipefd[0], &c, 1); /* returns when the child is ready or has exited */
    while (n < 0 && errno == EINTR);
    close(pipefd[0]);
    if (n == 1 && find_service(&s, &pi)) {
        printf("mcli model service started: http://%s:%d (pid %ld, log %s)\n", pi.host, pi.port, pi.pid, s.log_file);
        return 0;
    }
    int wst = 0;
    waitpid(child, &wst, 0);
    fprintf(stderr, "mcli start: the service did not start (exit %d); see %s\n",
            WIFEXITED(wst) ? WEXITSTATUS(wst) : 128 + WTERMSIG(wst), s.log_file);
    return 1;
}

/* ---------------------------------------------------------------- stop / status */

const char usage_stop[] =
    "Usage: mcli [workflow model-service] stop [--models-dir D] [--pid-file FILE] [--config FILE]\n"
    "\n"
    "Stops the running model service (SIGTERM, then SIGKILL after 20 s). Stopping a service that\n"
    "does not run is not an error.\n";

int cmd_stop(int argc, char **argv)
{
    const char *cmd = "stop";
    svc_settings s = {0};
    for (int i = 1; i < argc; i++) {
        int t = take_common(cmd, argc, argv, &i, &s);
        if (t < 0)
            return 2;
        if (t == 0)
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
    }
    int rc = resolve_settings(cmd, &s);
    if (rc)
        return rc;
    pid_info pi;
    if (!find_service(&s, &pi)) {
        printf("mcli model service is not running\n");
        return 0;
    }
    if (kill((pid_t)pi.pid, SIGTERM) != 0) {
        fprintf(stderr, "mcli stop: cannot signal pid %ld: %s\n", pi.pid, strerror(errno));
        return 1;
    }
    for (int waited = 0; pid_alive(pi.pid); waited += 50) {
        if (waited == 20000) {
            fprintf(stderr, "mcli stop: pid %ld did not stop within 20 s; killing it\n", pi.pid);
            kill((pid_t)pi.pid, SIGKILL);
        }
        if (waited > 25000) {
            fprintf(stderr, "mcli stop: pid %ld is still there\n", pi.pid);
            return 1;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    pid_info again;
    if (pidfile_read(s.pid_file, &again) && again.pid == pi.pid)
        unlink(s.pid_file);
    printf("mcli model service stopped (pid %ld)\n", pi.pid);
    return 0;
}

const char usage_status[] =
    "Usage: mcli [workflow model-service] status [--json] [--models-dir D] [--pid-file FILE] [--config FILE]\n"
    "\n"
    "Whether the model service runs, where, and what it holds. Exit 0 when it runs, 3 when it does not.\n";

int cmd_status(int argc, char **argv)
{
    const char *cmd = "status";
    svc_settings s = {0};
    for (int i = 1; i < argc; i++) {
        int t = take_common(cmd, argc, argv, &i, &s);
        if (t < 0)
            return 2;
        if (t == 0)
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
    }
    int rc = resolve_settings(cmd, &s);
    if (rc)
        return rc;
    pid_info pi;
    if (!find_service(&s, &pi)) {
        if (s.json) {
            json_t *o = json_pack("{s:b,s:s}", "running", 0, "pid_file", s.pid_file);
            print_json(o);
            json_decref(o);
        } else
            printf("mcli model service is not running (no live process in %s)\n", s.pid_file);
        return 3;
    }
    long status = 0;
    json_t *health = NULL;
    mcli_err err = {0};
    mcli_status st = svc_call(&pi, "GET", "/health", NULL, 10, &status, &health, &err);
    char url[320];
    snprintf(url, sizeof url, "http://%s:%d", pi.host, pi.port);
    if (s.json) {
        json_t *o = json_pack("{s:b,s:I,s:s,s:i,s:s,s:o}", "running", 1, "pid", (json_int_t)pi.pid, "host", pi.host,
                              "port", pi.port, "url", url, "health",
                              st == MCLI_OK ? json_incref(health) : json_null());
        print_json(o);
        json_decref(o);
    } else if (st == MCLI_OK) {
        json_t *n = json_object_get(health, "models_loaded"), *mem = json_object_get(health, "memory_usage_mb");
        printf("mcli model service is running: %s (pid %ld), %lld model(s) loaded, %.1f MB resident\n", url, pi.pid,
               (long long)json_integer_value(n), json_number_value(mem));
    } else {
        printf("mcli model service process %ld is alive but %s does not answer: %s\n", pi.pid, url, err.msg);
    }
    json_decref(health);
    return st == MCLI_OK ? 0 : 1;
}

/* ---------------------------------------------------------------- registry commands */

static bool parse_double(const char *cmd, const char *what, const char *v, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x) || x < lo || x > hi) {
        cli_usage_error(cmd, "%s must be a number in %g..%g, got '%s'", what, lo, hi, v);
        return false;
    }
    *out = x;
    return true;
}

static bool parse_int_flag(const char *cmd, const char *what, const char *v, long long lo, long long hi, long long *out)
{
    mcli_err err = {0};
    if (cfg_parse_int(what, v, lo, hi, out, &err) != MCLI_OK) {
        cli_usage_error(cmd, "%s", err.msg);
        return false;
    }
    return true;
}

/* Model fields given as flags, for add / add-from-url / update. */
typedef struct {
    const char *name, *path, *type, *tokenizer;
    bool has_max_length, has_temperature, has_top_p, has_top_k;
    long long max_length, top_k;
    double temperature, top_p;
} model_flags;

/* 1 if argv[*i] was a model flag, 0 if not, -1 on a usage error. */
static int take_model_flag(const char *cmd, int argc, char **argv, int *i, model_flags *m)
{
    const char *a = argv[*i];
    static const char *const names[] = {"--name", "--path", "--type", "--tokenizer-path", "--max-length",
                                        "--temperature", "--top-p", "--top-k"};
    size_t k = 0;
    for (; k < sizeof names / sizeof names[0]; k++)
        if (strcmp(a, names[k]) == 0)
            break;
    if (k == sizeof names / sizeof names[0])
        return 0;
    if (*i + 1 >= argc) {
        cli_usage_error(cmd, "%s needs a value", a);
        return -1;
    }
    const char *v = argv[++*i];
    switch (k) {
    case 0: m->name = v; return 1;
    case 1: m->path = v; return 1;
    case 2: m->type = v; return 1;
    case 3: m->tokenizer = v; return 1;
    case 4: m->has_max_length = true; return parse_int_flag(cmd, "--max-length", v, 1, 1000000, &m->max_length) ? 1 : -1;
    case 5:
        m->has_temperature = true;
        return parse_double(cmd, "--temperature", v, 0, 100, &m->temperature) ? 1 : -1;
    case 6:
        m->has_top_p = true;
        if (!parse_double(cmd, "--top-p", v, 0, 1, &m->top_p))
            return -1;
        if (m->top_p <= 0) {
            cli_usage_error(cmd, "--top-p must be above 0");
            return -1;
        }
        return 1;
    default: m->has_top_k = true; return parse_int_flag(cmd, "--top-k", v, 0, 1000000, &m->top_k) ? 1 : -1;
    }
}

static json_t *model_flags_json(const model_flags *m)
{
    json_t *o = json_object();
    if (m->name) json_object_set_new(o, "name", json_string(m->name));
    if (m->type) json_object_set_new(o, "model_type", json_string(m->type));
    if (m->tokenizer) json_object_set_new(o, "tokenizer_path", json_string(m->tokenizer));
    if (m->has_max_length) json_object_set_new(o, "max_length", json_integer(m->max_length));
    if (m->has_temperature) json_object_set_new(o, "temperature", json_real(m->temperature));
    if (m->has_top_p) json_object_set_new(o, "top_p", json_real(m->top_p));
    if (m->has_top_k) json_object_set_new(o, "top_k", json_integer(m->top_k));
    return o;
}

static void print_model_line(const reg_model *m)
{
    printf("%-36s  %-24s %-10s %-6s %s\n", m->id, m->name, m->model_type, m->is_loaded ? "yes" : "no", m->model_path);
}

static int open_registry(const char *cmd, const svc_settings *s, mcli_registry **r)
{
    mcli_err err = {0};
    if (models_dir_mkdirs(s->models_dir, &err) != MCLI_OK || registry_open(s->db, r, &err) != MCLI_OK)
        return fail_err(cmd, &err);
    return 0;
}

/* Registers m directly in the database (no service): the model loads on first use. */
static int direct_add(const char *cmd, const svc_settings *s, const model_flags *f, const char *real_path)
{
    mcli_registry *r = NULL;
    int rc = open_registry(cmd, s, &r);
    if (rc)
        return rc;
    reg_model m;
    reg_model_init(&m);
    snprintf(m.name, sizeof m.name, "%s", f->name);
    snprintf(m.model_type, sizeof m.model_type, "%s", f->type ? f->type : "auto");
    snprintf(m.model_path, sizeof m.model_path, "%s", real_path);
    if (f->tokenizer) snprintf(m.tokenizer_path, sizeof m.tokenizer_path, "%s", f->tokenizer);
    if (f->has_max_length) m.max_length = (int)f->max_length;
    if (f->has_temperature) m.temperature = f->temperature;
    if (f->has_top_p) m.top_p = f->top_p;
    if (f->has_top_k) m.top_k = (int)f->top_k;
    mcli_err err = {0};
    if (registry_add(r, &m, &m, &err) != MCLI_OK) {
        registry_close(r);
        return fail_err(cmd, &err);
    }
    registry_close(r);
    if (s->json)
        printf("{\"model_id\":\"%s\",\"status\":\"registered\"}\n", m.id);
    else
        printf("Registered %s (id %s) in %s; the service loads it on first use\n", m.name, m.id, s->db);
    return 0;
}

/* Sends a model add to the service and prints the outcome. */
static int service_add(const char *cmd, const svc_settings *s, const pid_info *pi, const char *path, json_t *body)
{
    long status = 0;
    json_t *reply = NULL;
    mcli_err err = {0};
    if (svc_call(pi, "POST", path, body, 3600, &status, &reply, &err) != MCLI_OK) {
        json_decref(reply);
        return fail_err(cmd, &err);
    }
    int rc = 0;
    if (status != 200) {
        rc = report_http_error(cmd, status, reply);
    } else if (s->json) {
        print_json(reply);
    } else {
        json_t *id = json_object_get(reply, "model_id"), *model = json_object_get(reply, "model");
        printf("Added %s (id %s), loaded by the service at http://%s:%d\n",
               json_string_value(json_object_get(model, "name")) ? json_string_value(json_object_get(model, "name"))
                                                                 : "?",
               json_is_string(id) ? json_string_value(id) : "?", pi->host, pi->port);
    }
    json_decref(reply);
    return rc;
}

const char usage_add[] =
    "Usage: mcli [workflow model-service] add NAME --path DIR [--type TYPE] [options]\n"
    "\n"
    "Registers a model directory. With the service running it is also loaded at once (and refused if\n"
    "it cannot be); otherwise it is written to the registry and loads on first use.\n"
    "  --path DIR             the model directory (config.json, weights, tokenizer files)\n"
    "  --type TYPE            model type (default: from config.json when loaded)\n"
    "  --tokenizer-path P     recorded; the tokenizer is read from the model directory\n"
    "  --max-length N --temperature T --top-p P --top-k K   generation defaults\n"
    "  --json --direct --models-dir D --db F --config F --pid-file F\n";

int cmd_add(int argc, char **argv)
{
    const char *cmd = "add";
    svc_settings s = {0};
    model_flags f = {0};
    const char *pos_name = NULL;
    for (int i = 1; i < argc; i++) {
        int t = take_common(cmd, argc, argv, &i, &s);
        if (t == 0)
            t = take_model_flag(cmd, argc, argv, &i, &f);
        if (t < 0)
            return 2;
        if (t > 0)
            continue;
        if (argv[i][0] == '-' || pos_name)
            return cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
        pos_name = argv[i];
    }
    if (pos_name)
        f.name = pos_name;
    if (!f.name)
        return cli_usage_error(cmd, "which NAME?");
    if (!f.path)
        return cli_usage_error(cmd, "--path DIR is required");
    int rc = resolve_settings(cmd, &s);
    if (rc)
        return rc;
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(f.path, real) || stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "mcli add: %s is not a directory\n", f.path);
        return 1;
    }
    pid_info pi;
    if (s.direct || !find_service(&s, &pi))
        return direct_add(cmd, &s, &f, real);
    json_t *body = model_flags_json(&f);
    json_object_set_new(body, "model_path", json_string(real));
    rc = service_add(cmd, &s, &pi, "/models", body);
    json_decref(body);
    return rc;
}

static int print_progress(void *user, const hub_event *ev)
{
    (void)user;
    if (ev->kind == HUB_EV_FILE_DONE)
        fprintf(stderr, "  %s%s\n", ev->file ? ev->file : "", ev->skipped ? " (already present)" : "");
    else if (ev->kind == HUB_EV_MESSAGE && ev->message)
        fprintf(stderr, "  %s\n", ev->message);
    return 0;
}

const char usage_add_from_url[] =
    "Usage: mcli [workflow model-service] add-from-url NAME URL [options]\n"
    "\n"
    "Downloads a model (URL: https://HOST/org/name[/tree/REV], hf://org/name or org/name[@REV]) into\n"
    "the models directory and registers it as NAME (options as for add, without --path).\n";

int cmd_add_from_url(int argc, char **argv)
{
    const char *cmd = "add-from-url";
    svc_settings s = {0};
    model_flags f = {0};
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        int t = take_common(cmd, argc, argv, &i, &s);
        if (t == 0)
            t = take_model_flag(cmd, argc, argv, &i, &f);
        if (t < 0)
            return 2;
        if (t > 0)
            continue;
        if (argv[i][0] == '-' || npos == 2)
            return cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
        pos[npos++] = argv[i];
    }
    if (npos != 2)
        return cli_usage_error(cmd, "give NAME and URL");
    f.name = pos[0];
    const char *url = pos[1];
    int rc = resolve_settings(cmd, &s);
    if (rc)
        return rc;
    pid_info pi;
    if (!s.direct && find_service(&s, &pi)) {
        json_t *body = model_flags_json(&f);
        json_object_set_new(body, "url", json_string(url));
        rc = service_add(cmd, &s, &pi, "/models/from-url", body);
        json_decref(body);
        return rc;
    }
    char endpoint[512], repo[256], rev[128];
    mcli_err err = {0};
    if (service_parse_model_url(url, endpoint, sizeof endpoint, repo, sizeof repo, rev, sizeof rev, &err) != MCLI_OK)
        return fail_err(cmd, &err);
    if (models_dir_mkdirs(s.models_dir, &err) != MCLI_OK)
        return fail_err(cmd, &err);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    hub_pull_opts o = {.models_dir = s.models_dir, .repo = repo, .revision = rev[0] ? rev : NULL,
                       .endpoint = endpoint[0] ? endpoint : NULL, .offline = -1, .progress = print_progress};
    hub_pull_result res;
    fprintf(stderr, "Downloading %s into %s\n", repo, s.models_dir);
    mcli_status st = hub_pull(&o, &res, &err);
    curl_global_cleanup();
    if (st != MCLI_OK)
        return fail_err(cmd, &err);
    return direct_add(cmd, &s, &f, res.dir);
}

const char usage_update[] =
    "Usage: mcli [workflow model-service] update ID [--temperature T] [--top-p P] [--top-k K] [--max-length N]\n"
    "\n"
    "Changes a registered model's settings (ID or name): --name, --path, --type, --tokenizer-path and\n"
    "the generation defaults. A new --path unloads the model (it reloads from there on next use).\n";

int cmd_update(int argc, char **argv)
{
    const char *cmd = "update";
    svc_settings s = {0};
    model_flags f = {0};
    const char *id = NULL;
    for (int i = 1; i < argc; i++) {
        int t = take_common(cmd, argc, argv, &i, &s);
        if (t == 0)
            t = take_model_flag(cmd, argc, argv, &i, &f);
        if (t < 0)
            return 2;
        if (t > 0)
            continue;
        if (argv[i][0] == '-' || id)
            return cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
        id = argv[i];
    }
    if (!id)
        return cli_usage_error(cmd, "which model (ID or name)?");
    int rc = resolve_settings(cmd, &s);
    if (rc)
        return rc;
    char real[PATH_MAX];
    if (f.path && !realpath(f.path, real)) {
        fprintf(stderr, "mcli update: %s does not exist\n", f.path);
        return 1;
    }
    pid_info pi;
    mcli_err err = {0};
    if (!s.direct && find_service(&s, &pi)) {
        char enc[600], path[700];
        if (!dl_url_encode(id, false, enc, sizeof enc))
            return cli_usage_error(cmd, "model id too long");
        snprintf(path, sizeof path, "/models/%s", enc);
        json_t *body = model_flags_json(&f);
        if (f.path)
            json_object_set_new(body, "model_path", json_string(real));
        long status = 0;
        json_t *reply = NULL;
        mcli_status st = svc_call(&pi, "PUT", path, body, 60, &status, &reply, &err);
        json_decref(body);
        if (st != MCLI_OK)
            rc = fail_err(cmd, &err);
        else if (status != 200)
            rc = report_http_error(cmd, status, reply);
        else if (s.json)
            print_json(reply);
        else
            printf("Updated %s\n", json_string_value(json_object_get(reply, "model_id")));
        json_decref(reply);
        return rc;
    }
    mcli_registry *r = NULL;
    if ((rc = open_registry(cmd, &s, &r)) != 0)
        return rc;
    reg_update u = {.name = f.name, .model_type = f.type, .model_path = f.path ? real : NULL,
                    .tokenizer_path = f.tokenizer, .set_max_length = f.has_max_length,
                    .max_length = (int)f.max_length, .set_temperature = f.has_temperature,
                    .temperature = f.temperature, .set_top_p = f.has_top_p, .top_p = f.top_p,
                    .set_top_k = f.has_top_k, .top_k = (int)f.top_k};
    reg_model m;
    if (registry_update(r, id, &u, &m, &err) != MCLI_OK) {
        registry_close(r);
        return fail_err(cmd, &err);
    }
    registry_close(r);
    if (s.json)
        printf("{\"model_id\":\"%s\",\"status\":\"updated\"}\n", m.id);
    else
        printf("Updated %s (id %s)\n", m.name, m.id);
    return 0;
}

/* ---------------------------------------------------------------- list / remove (registry) */

static void print_summary_text(json_t *sum)
{
    printf("models: %lld registered, %lld loaded (%.1f MB)\n",
           (long long)json_integer_value(json_object_get(sum, "total_models")),
           (long long)json_integer_value(json_object_get(sum, "loaded_models")),
           json_number_value(json_object_get(sum, "memory_usage_mb")));
    json_t *types = json_object_get(sum, "models_by_type");
    for (void *it = json_object_iter(types); it; it = json_object_iter_next(types, it))
        printf("  %-20s %lld\n", json_object_iter_key(it), (long long)json_integer_value(json_object_iter_value(it)));
    printf("inferences: %lld (%lld failed)\n", (long long)json_integer_value(json_object_get(sum, "total_inferences")),
           (long long)json_integer_value(json_object_get(sum, "total_errors")));
    json_t *models = json_object_get(sum, "models");
    for (size_t i = 0; i < json_array_size(models); i++) {
        json_t *v = json_array_get(models, i);
        printf("  %-24s %6lld inferences, %4lld failed, mean %.1f ms\n",
               json_string_value(json_object_get(v, "name")),
               (long long)json_integer_value(json_object_get(v, "inferences")),
               (long long)json_integer_value(json_object_get(v, "errors")),
               json_number_value(json_object_get(v, "mean_latency_ms")));
    }
}

static json_t *summary_to_json(const reg_summary *s)
{
    json_t *by_type = json_object();
    for (size_t i = 0; i < s->n_types; i++)
        json_object_set_new(by_type, s->by_type[i].model_type, json_integer(s->by_type[i].count));
    json_t *per = json_array();
    for (size_t i = 0; i < s->n_models; i++)
        json_array_append_new(per, json_pack("{s:s,s:s,s:I,s:I,s:f}", "id", s->per_model[i].id, "name",
                                             s->per_model[i].name, "inferences", (json_int_t)s->per_model[i].inferences,
                                             "errors", (json_int_t)s->per_model[i].errors, "mean_latency_ms",
                                             s->per_model[i].mean_latency_ms));
    return json_pack("{s:I,s:I,s:f,s:o,s:I,s:I,s:o}", "total_models", (json_int_t)s->total_models, "loaded_models",
                     (json_int_t)s->loaded_models, "memory_usage_mb", s->loaded_memory_mb, "models_by_type", by_type,
                     "total_inferences", (json_int_t)s->total_inferences, "total_errors", (json_int_t)s->total_errors,
                     "models", per);
}

int service_list_registry(int argc, char **argv)
{
    const char *cmd = argc > 0 ? argv[0] : "list";
    svc_settings s = {0};
    for (int i = 1; i < argc; i++) {
        int t = take_common(cmd, argc, argv, &i, &s);
        if (t < 0)
            return 2;
        if (t > 0)
            continue;
        if (strcmp(argv[i], "--summary") == 0)
            s.summary = true;
        else if (strcmp(argv[i], "--registry") != 0)
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
    }
    int rc = resolve_settings(cmd, &s);
    if (rc)
        return rc;
    pid_info pi;
    mcli_err err = {0};
    json_t *data = NULL;
    if (!s.direct && find_service(&s, &pi)) {
        long status = 0;
        if (svc_call(&pi, "GET", s.summary ? "/models/summary" : "/models", NULL, 30, &status, &data, &err) != MCLI_OK)
            return fail_err(cmd, &err);
        if (status != 200) {
            rc = report_http_error(cmd, status, data);
            json_decref(data);
            return rc;
        }
    } else {
        mcli_registry *r = NULL;
        if ((rc = open_registry(cmd, &s, &r)) != 0)
            return rc;
        if (s.summary) {
            reg_summary sum;
            if (registry_summary(r, &sum, &err) != MCLI_OK) {
                registry_close(r);
                return fail_err(cmd, &err);
            }
            data = summary_to_json(&sum);
            registry_summary_free(&sum);
        } else {
            reg_model *list = NULL;
            size_t n = 0;
            if (registry_list(r, &list, &n, &err) != MCLI_OK) {
                registry_close(r);
                return fail_err(cmd, &err);
            }
            data = json_array();
            for (size_t i = 0; i < n; i++) {
                if (!s.json) {
                    if (i == 0)
                        printf("%-36s  %-24s %-10s %-6s %s\n", "ID", "NAME", "TYPE", "LOADED", "PATH");
                    print_model_line(&list[i]);
                    continue;
                }
                json_array_append_new(
                    data, json_pack("{s:s,s:s,s:s,s:s,s:i,s:f,s:f,s:i,s:b,s:s}", "id", list[i].id, "name",
                                    list[i].name, "model_type", list[i].model_type, "model_path", list[i].model_path,
                                    "max_length", list[i].max_length, "temperature", list[i].temperature, "top_p",
                                    list[i].top_p, "top_k", list[i].top_k, "is_loaded", list[i].is_loaded,
                                    "created_at", list[i].created_at));
            }
            if (!s.json && n == 0)
                printf("No models registered in %s; add one with 'mcli add NAME --path DIR'\n", s.db);
            free(list);
            if (!s.json) {
                json_decref(data);
                registry_close(r);
                return 0;
            }
        }
        registry_close(r);
    }
    if (s.json)
        print_json(data);
    else if (s.summary)
        print_summary_text(data);
    else {
        if (json_array_size(data) == 0)
            printf("No models registered; add one with 'mcli add NAME --path DIR'\n");
        for (size_t i = 0; i < json_array_size(data); i++) {
            json_t *v = json_array_get(data, i);
            if (i == 0)
                printf("%-36s  %-24s %-10s %-6s %s\n", "ID", "NAME", "TYPE", "LOADED", "PATH");
            printf("%-36s  %-24s %-10s %-6s %s\n", json_string_value(json_object_get(v, "id")),
                   json_string_value(json_object_get(v, "name")), json_string_value(json_object_get(v, "model_type")),
                   json_is_true(json_object_get(v, "is_loaded")) ? "yes" : "no",
                   json_string_value(json_object_get(v, "model_path")));
        }
    }
    json_decref(data);
    return 0;
}

int service_remove_registry(int argc, char **argv)
{
    const char *cmd = argc > 0 ? argv[0] : "remove";
    svc_settings s = {0};
    const char *id = NULL;
    for (int i = 1; i < argc; i++) {
        int t = take_common(cmd, argc, argv, &i, &s);
        if (t < 0)
            return 2;
        if (t > 0 || strcmp(argv[i], "--registry") == 0)
            continue;
        if (argv[i][0] == '-' || id)
            return cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
        id = argv[i];
    }
    if (!id)
        return cli_usage_error(cmd, "which model (ID or name)?");
    int rc = resolve_settings(cmd, &s);
    if (rc)
        return rc;
    pid_info pi;
    mcli_err err = {0};
    if (!s.direct && find_service(&s, &pi)) {
        char enc[600], path[700];
        if (!dl_url_encode(id, false, enc, sizeof enc))
            return cli_usage_error(cmd, "model id too long");
        snprintf(path, sizeof path, "/models/%s/remove", enc);
        long status = 0;
        json_t *reply = NULL;
        if (svc_call(&pi, "DELETE", path, NULL, 60, &status, &reply, &err) != MCLI_OK)
            return fail_err(cmd, &err);
        if (status != 200)
            rc = report_http_error(cmd, status, reply);
        else if (s.json)
            print_json(reply);
        else
            printf("Removed %s from the registry\n", id);
        json_decref(reply);
        return rc;
    }
    mcli_registry *r = NULL;
    if ((rc = open_registry(cmd, &s, &r)) != 0)
        return rc;
    if (registry_remove(r, id, &err) != MCLI_OK) {
        registry_close(r);
        return fail_err(cmd, &err);
    }
    registry_close(r);
    if (s.json)
        printf("{\"status\":\"removed\"}\n");
    else
        printf("Removed %s from the registry %s\n", id, s.db);
    return 0;
}
