/* cmd_hub.c - commands for the catalog, downloads, models on disk and system analysis:
 * lightweight (--list | --auto | --download MODEL | --start-server), lightweight-run, pull, list,
 * remove, sysinfo. Results go to stdout; progress, analysis notes and errors to stderr.
 * The serving half (cli_serve_models) lives in cmd_serve.c. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/service_cli.h"
#include "hub/catalog.h"
#include "hub/hub.h"
#include "hub/manifest.h"
#include "store/models_dir.h"
#include "sys/recommend.h"
#include "sys/sysinfo.h"
#include "util/log.h"

#ifndef MCLI_DATA_DIR
#define MCLI_DATA_DIR ""
#endif

/* Every command of the binary (server, service) resolves the catalog through the compile-time
 * data dir too, not only the commands in this file: set it before main() runs. */
__attribute__((constructor)) static void hub_cli_set_data_dir(void)
{
    hub_catalog_set_data_dir(MCLI_DATA_DIR);
}

/* ---- shared option parsing ---- */

typedef struct {
    const char *models_dir_flag;
    char models_dir[MODELS_DIR_PATH_MAX];
    const char *host;
    int port;
    bool json;
} common_opts;

/* If argv[*i] is a common option, consumes it (and its value) and returns 1; 0 if not one;
 * -1 on a usage error (already printed). */
static int take_common(const char *cmd, int argc, char **argv, int *i, common_opts *c)
{
    const char *a = argv[*i];
    if (strcmp(a, "--models-dir") == 0 || strcmp(a, "--host") == 0 || strcmp(a, "--port") == 0) {
        if (*i + 1 >= argc) {
            cli_usage_error(cmd, "%s needs a value", a);
            return -1;
        }
        const char *v = argv[++*i];
        if (strcmp(a, "--models-dir") == 0) {
            c->models_dir_flag = v;
        } else if (strcmp(a, "--host") == 0) {
            c->host = v;
        } else {
            char *end = NULL;
            errno = 0;
            long p = strtol(v, &end, 10);
            if (errno || !end || *end || p < 1 || p > 65535) {
                cli_usage_error(cmd, "--port must be a number from 1 to 65535, not '%s'", v);
                return -1;
            }
            c->port = (int)p;
        }
        return 1;
    }
    if (strcmp(a, "--json") == 0) {
        c->json = true;
        return 1;
    }
    return 0;
}

static int fail_status(const char *cmd, const mcli_err *err)
{
    fprintf(stderr, "mcli %s: %s\n", cmd, err->msg);
    return mcli_status_exit(err->code);
}

static bool resolve_models_dir(const char *cmd, common_opts *c, int *rc)
{
    mcli_err err;
    mcli_err_clear(&err);
    if (models_dir_resolve(c->models_dir_flag, c->models_dir, sizeof c->models_dir, &err) != MCLI_OK) {
        *rc = fail_status(cmd, &err);
        return false;
    }
    return true;
}

/* ---- progress rendering ---- */

typedef struct {
    bool tty;
    bool quiet;
    int last_decile;          /* non-TTY: last 10% step printed for the current file */
    double last_draw;
    int64_t last_drawn;       /* TTY: bytes shown by the last redraw (-1 none) */
    size_t cur_index;
} progress_state;

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void human_bytes(double b, char *out, size_t cap)
{
    if (b >= 1024.0 * 1024 * 1024)
        snprintf(out, cap, "%.2f GB", b / (1024.0 * 1024 * 1024));
    else if (b >= 1024.0 * 1024)
        snprintf(out, cap, "%.1f MB", b / (1024.0 * 1024));
    else if (b >= 1024.0)
        snprintf(out, cap, "%.1f kB", b / 1024.0);
    else
        snprintf(out, cap, "%.0f B", b);
}

static int on_progress(void *user, const hub_event *ev)
{
    progress_state *ps = user;
    if (ps->quiet)
        return 0;
    char a[32], b[32], sp[32];
    switch (ev->kind) {
    case HUB_EV_MESSAGE:
        fprintf(stderr, "%s: %s\n", ev->repo, ev->message);
        break;
    case HUB_EV_FILE_START:
        ps->last_decile = -1;
        ps->last_drawn = -1;
        ps->cur_index = ev->index;
        ps->last_draw = 0;
        human_bytes((double)(ev->file_total > 0 ? ev->file_total : 0), a, sizeof a);
        fprintf(stderr, "[%zu/%zu] %s (%s)\n", ev->index, ev->n_files, ev->file, ev->file_total >= 0 ? a : "size unknown");
        break;
    case HUB_EV_PROGRESS: {
        double pct = ev->file_total > 0 ? 100.0 * (double)ev->file_done / (double)ev->file_total : 0;
        human_bytes((double)ev->file_done, a, sizeof a);
        human_bytes((double)(ev->file_total > 0 ? ev->file_total : 0), b, sizeof b);
        human_bytes(ev->bytes_per_sec, sp, sizeof sp);
        if (ps->tty) {
            double t = mono_now();
            if (ev->file_done == ps->last_drawn || (t - ps->last_draw < 0.1 && ev->file_done != ev->file_total))
                break;
            ps->last_draw = t;
            ps->last_drawn = ev->file_done;
            char bar[31];
            int filled = (int)(pct * 30 / 100);
            for (int i = 0; i < 30; i++)
                bar[i] = i < filled ? '#' : '-';
            bar[30] = '\0';
            double left = ev->bytes_per_sec > 0 && ev->total_bytes > ev->total_done
                              ? (double)(ev->total_bytes - ev->total_done) / ev->bytes_per_sec
                              : 0;
            fprintf(stderr, "\r  [%s] %5.1f%%  %s / %s  %s/s  ETA %ds   ", bar, pct, a, b, sp, (int)(left + 0.5));
        } else if (ev->file_total > 0) {
            /* One line per 10% step, even when a single callback crossed several steps. */
            int decile = (int)(pct / 10);
            if (ps->last_decile < 0)
                ps->last_decile = 0;
            while (ps->last_decile < decile && ps->last_decile < 10) {
                ps->last_decile++;
                fprintf(stderr, "  %s: %d%% (%s / %s, %s/s)\n", ev->file, ps->last_decile * 10, a, b, sp);
            }
        }
        break;
    }
    case HUB_EV_FILE_DONE:
        if (ps->tty && !ev->skipped)
            fprintf(stderr, "\n");
        if (ev->skipped)
            fprintf(stderr, "[%zu/%zu] %s already present, sha256 %.16s...\n", ev->index, ev->n_files, ev->file,
                    ev->sha256 ? ev->sha256 : "");
        else
            fprintf(stderr, "  %s verified, sha256 %s\n", ev->file, ev->sha256 ? ev->sha256 : "");
        break;
    case HUB_EV_DONE:
        break;
    }
    fflush(stderr);
    return 0;
}

/* ---- catalog helpers ---- */

static hub_catalog *open_catalog(const char *cmd, int *rc)
{
    hub_catalog *cat = NULL;
    mcli_err err;
    mcli_err_clear(&err);
    if (hub_catalog_open_default(&cat, &err) != MCLI_OK) {
        *rc = fail_status(cmd, &err);
        return NULL;
    }
    return cat;
}

/* The directory holding entry e: its bundled path, or its repo under the models dir. */
static bool entry_dir(const hub_entry *e, const char *models_dir, char *out, size_t cap)
{
    if (e->bundled && e->path) {
        int n = snprintf(out, cap, "%s", e->path);
        return n > 0 && (size_t)n < cap;
    }
    mcli_err err;
    return models_dir_model_path(models_dir, e->repo, out, cap, &err) == MCLI_OK;
}

static bool entry_present(const hub_entry *e, const char *models_dir)
{
    char dir[MODELS_DIR_PATH_MAX];
    if (!entry_dir(e, models_dir, dir, sizeof dir))
        return false;
    char mf[MODELS_DIR_PATH_MAX + 32];
    snprintf(mf, sizeof mf, "%s/%s", dir, MANIFEST_FILE);
    return access(mf, F_OK) == 0 || models_dir_has_model(dir);
}

/* Resolves what the user typed to (repo, revision, display key). Any valid org/name passes. */
static mcli_status resolve_model(const hub_catalog *cat, const char *typed, char *repo, size_t repo_cap, char *rev,
                                 size_t rev_cap, const hub_entry **entry, mcli_err *err)
{
    *entry = NULL;
    char base[MODELS_DIR_REPO_MAX];
    mcli_status st = hub_parse_ref(typed, base, sizeof base, rev, rev_cap, err);
    if (st != MCLI_OK)
        return st;
    const hub_entry *e = hub_catalog_find(cat, base);
    if (e) {
        *entry = e;
        if (!rev[0])
            snprintf(rev, rev_cap, "%s", e->revision);
        if ((size_t)snprintf(repo, repo_cap, "%s", e->repo) >= repo_cap)
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "repo id too long");
        if (e->alias_note && strcmp(e->key, base) == 0)
            fprintf(stderr, "note: %s is an alias: %s\n", e->key, e->alias_note);
        return MCLI_OK;
    }
    snprintf(repo, repo_cap, "%s", base);
    if (!rev[0])
        snprintf(rev, rev_cap, "main");
    return MCLI_OK;
}

static int do_pull(const char *cmd, const char *models_dir, const char *repo, const char *rev, bool any_arch,
                   hub_pull_result *res, mcli_err *err)
{
    progress_state ps = {isatty(2) && !getenv("MCLI_PROGRESS_LINES"), false, -1, 0, -1, 0};
    hub_pull_opts o = {models_dir, repo, rev, NULL, NULL, -1, NULL, on_progress, &ps, any_arch};
    fprintf(stderr, "Pulling %s@%s into %s/lightweight/%s\n", repo, rev, models_dir, repo);
    mcli_status st = hub_pull(&o, res, err);
    if (st != MCLI_OK)
        return fail_status(cmd, err);
    char tb[32];
    human_bytes((double)res->total_bytes, tb, sizeof tb);
    if (res->offline_hit)
        fprintf(stderr, "%s is on disk (offline mode)\n", repo);
    else
        fprintf(stderr, "%s: %zu files, %s, commit %s (%zu downloaded, %zu already present)\n", repo, res->n_files, tb,
                res->commit[0] ? res->commit : "unknown", res->n_downloaded, res->n_files - res->n_downloaded);
    return 0;
}

/* ---- lightweight --list ---- */

static void print_catalog(const hub_catalog *cat, const char *models_dir, bool json)
{
    size_t n = hub_catalog_count(cat);
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++) {
            const hub_entry *e = hub_catalog_at(cat, i);
            json_t *o = json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:f, s:b, s:s?, s:b, s:s?, s:b, s:I}", "key", e->key,
                                  "repo", e->repo, "name", e->name, "description", e->description, "type", e->type,
                                  "parameters", e->parameters, "size_mb", e->size_mb, "alias",
                                  strcmp(e->key, e->repo) != 0, "alias_note", e->alias_note, "bundled", e->bundled,
                                  "path", e->path, "present", entry_present(e, models_dir), "auto_min_ram_mb",
                                  (json_int_t)e->auto_min_ram_mb);
            if (o)
                json_array_append_new(arr, o);
        }
        char *text = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
        printf("%s\n", text ? text : "[]");
        free(text);
        json_decref(arr);
        return;
    }
    printf("Available lightweight models (%s):\n\n", hub_catalog_sources(cat));
    for (size_t i = 0; i < n; i++) {
        const hub_entry *e = hub_catalog_at(cat, i);
        bool present = entry_present(e, models_dir);
        const char *status = e->bundled ? (present ? "bundled, present" : "bundled, MISSING")
                                        : (present ? "downloaded" : "not downloaded");
        printf("  %-48s [%s]\n", e->key, status);
        printf("      %s (%s parameters, %g MB) - %s\n", e->name ? e->name : e->key, e->parameters ? e->parameters : "?",
               e->size_mb, e->description ? e->description : "");
        printf("      type %s | efficiency %.1f/10 | accuracy %.1f/10", e->type ? e->type : "?", e->efficiency_score,
               e->accuracy_score);
        if (e->n_tags) {
            printf(" | tags ");
            for (size_t t = 0; t < e->n_tags; t++)
                printf("%s%s", t ? ", " : "", e->tags[t]);
        }
        printf("\n");
        if (strcmp(e->key, e->repo) != 0)
            printf("      alias -> %s: %s\n", e->repo, e->alias_note ? e->alias_note : "");
        if (e->bundled)
            printf("      bundled at %s\n", e->path);
        if (e->auto_min_ram_mb >= 0)
            printf("      --auto candidate for machines with >= %lld MB RAM\n", (long long)e->auto_min_ram_mb);
        printf("\n");
    }
    printf("Any other org/name repository of a supported architecture can be pulled too: mcli pull ORG/NAME\n");
}

/* ---- recommendation ---- */

/* Analyses the machine and picks a catalog entry. Returns NULL (and sets *rc) on failure. */
static const hub_entry *recommend_entry(const char *cmd, const hub_catalog *cat, const char *models_dir, int *rc)
{
    mcli_sysinfo si;
    mcli_err err;
    mcli_err_clear(&err);
    if (sysinfo_probe(models_dir, &si, &err) != MCLI_OK) {
        *rc = fail_status(cmd, &err);
        return NULL;
    }
    sysinfo_print(&si, stderr);
    size_t n = hub_catalog_count(cat);
    rec_candidate *cands = calloc(n ? n : 1, sizeof *cands);
    if (!cands) {
        fprintf(stderr, "mcli %s: out of memory\n", cmd);
        *rc = 1;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const hub_entry *e = hub_catalog_at(cat, i);
        rec_candidate *c = &cands[i];
        c->key = e->key;
        c->size_mb = e->size_mb;
        c->n_layers = e->layers;
        c->hidden = e->hidden;
        c->n_heads = e->heads;
        c->intermediate = e->intermediate;
        c->n_ctx = e->context;
        c->vocab = e->vocab;
        c->decoder = e->architecture && strcmp(e->architecture, "gpt2") == 0;
        c->min_ram_mb = e->auto_min_ram_mb;
        c->capability = e->accuracy_score;
        c->on_disk = entry_present(e, models_dir);
    }
    rec_result r;
    fprintf(stderr, "\n");
    recommend_choose(cands, n, &si, &r, stderr);
    free(cands);
    if (r.index < 0) {
        fprintf(stderr, "mcli %s: %s\n", cmd, r.reason);
        *rc = 1;
        return NULL;
    }
    fprintf(stderr, "\nRecommended: %s\n  because %s\n", hub_catalog_at(cat, (size_t)r.index)->key, r.reason);
    if (!r.fits)
        fprintf(stderr, "warning: it may not fit; free memory or disk, or pick a model with --model\n");
    return hub_catalog_at(cat, (size_t)r.index);
}

/* Directories of every model ready to serve: downloaded ones plus present bundled ones. */
static size_t collect_served(const hub_catalog *cat, const char *models_dir, char dirs[][MODELS_DIR_PATH_MAX],
                             size_t cap)
{
    size_t n = 0;
    models_dir_entry *list = NULL;
    size_t nl = 0;
    mcli_err err;
    if (models_dir_list(models_dir, &list, &nl, &err) == MCLI_OK) {
        for (size_t i = 0; i < nl && n < cap; i++)
            if (models_dir_has_model(list[i].path))
                snprintf(dirs[n++], MODELS_DIR_PATH_MAX, "%s", list[i].path);
        models_dir_list_free(list);
    }
    for (size_t i = 0; cat && i < hub_catalog_count(cat) && n < cap; i++) {
        const hub_entry *e = hub_catalog_at(cat, i);
        if (e->bundled && e->path && models_dir_has_model(e->path))
            snprintf(dirs[n++], MODELS_DIR_PATH_MAX, "%s", e->path);
    }
    return n;
}

#define SERVE_MAX 64

static int serve_dirs(char dirs[][MODELS_DIR_PATH_MAX], size_t n, const common_opts *c)
{
    const char *ptrs[SERVE_MAX];
    for (size_t i = 0; i < n && i < SERVE_MAX; i++)
        ptrs[i] = dirs[i];
    cli_serve_opts so = {ptrs, n, c->host ? c->host : "127.0.0.1", c->port ? c->port : 8080, c->models_dir};
    return cli_serve_models(&so);
}

/* ---- commands ---- */

const char usage_lightweight[] =
    "Usage: mcli [workflow model-service] lightweight [--list | --auto | --download MODEL | --start-server] [options]\n"
    "\n"
    "  --list               list the catalog of lightweight models and which are downloaded\n"
    "  --auto               analyse this machine and recommend (and download) the model that fits\n"
    "  --download MODEL     download MODEL (a catalog key or any org/name repository, optionally @REVISION)\n"
    "  --start-server       serve the downloaded (and bundled) models over HTTP\n"
    "  --port N             port for --start-server (default 8080)\n"
    "  --host H             address to bind (default 127.0.0.1)\n"
    "  --models-dir DIR     where models live (default ./models; env MCLI_MODELS_DIR)\n"
    "  --json               --list: print the catalog as JSON\n"
    "\n"
    "Environment: HF_ENDPOINT (default https://huggingface.co), HF_TOKEN (gated/private repos),\n"
    "HF_HUB_OFFLINE=1 (never touch the network), MCLI_DATA_DIR (where catalog.json is).\n"
    "The catalog is data/catalog.json, extended by $XDG_CONFIG_HOME/mcli/catalog.json. See docs/HUB.md.\n";

int cmd_lightweight(int argc, char **argv)
{
    const char *cmd = "lightweight";
    common_opts c = {0};
    bool list = false, autom = false, start = false;
    const char *download = NULL;
    for (int i = 1; i < argc; i++) {
        int t = take_common(cmd, argc, argv, &i, &c);
        if (t < 0)
            return 2;
        if (t > 0)
            continue;
        if (strcmp(argv[i], "--list") == 0)
            list = true;
        else if (strcmp(argv[i], "--auto") == 0)
            autom = true;
        else if (strcmp(argv[i], "--start-server") == 0)
            start = true;
        else if (strcmp(argv[i], "--download") == 0 && i + 1 < argc)
            download = argv[++i];
        else if (strcmp(argv[i], "--download") == 0)
            return cli_usage_error(cmd, "--download needs a MODEL");
        else
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
    }
    if ((int)list + (int)autom + (int)start + (download != NULL) != 1)
        return cli_usage_error(cmd, "choose one of --list, --auto, --download MODEL, --start-server");
    int rc = 0;
    if (!resolve_models_dir(cmd, &c, &rc))
        return rc;
    hub_catalog *cat = open_catalog(cmd, &rc);
    if (!cat)
        return rc;
    mcli_err err;
    mcli_err_clear(&err);
    if (list) {
        print_catalog(cat, c.models_dir, c.json);
    } else if (autom || download) {
        char repo[MODELS_DIR_REPO_MAX], rev[128];
        const hub_entry *e = NULL;
        if (autom) {
            e = recommend_entry(cmd, cat, c.models_dir, &rc);
            if (!e)
                goto out;
        }
        if (e && e->bundled) {
            printf("%s\n", e->path);
            goto out;
        }
        if (resolve_model(cat, autom ? e->key : download, repo, sizeof repo, rev, sizeof rev, &e, &err) != MCLI_OK) {
            rc = fail_status(cmd, &err);
            goto out;
        }
        if (e && e->bundled) {
            fprintf(stderr, "%s is bundled with mcli: nothing to download\n", e->key);
            printf("%s\n", e->path);
            goto out;
        }
        hub_pull_result res;
        rc = do_pull(cmd, c.models_dir, repo, rev, false, &res, &err);
        if (rc == 0)
            printf("%s\n", res.dir);
    } else {
        static char dirs[SERVE_MAX][MODELS_DIR_PATH_MAX];
        size_t n = collect_served(cat, c.models_dir, dirs, SERVE_MAX);
        if (n == 0) {
            fprintf(stderr, "mcli %s: no models in %s; download one first: mcli lightweight --auto\n", cmd,
                    c.models_dir);
            rc = 1;
            goto out;
        }
        rc = serve_dirs(dirs, n, &c);
    }
out:
    hub_catalog_free(cat);
    return rc;
}

const char usage_lightweight_run[] =
    "Usage: mcli [workflow model-service] lightweight-run [--auto | --model M] [--port N] [options]\n"
    "\n"
    "  --auto               pick the model that fits this machine (the default without --model)\n"
    "  --model M            use model M (catalog key or org/name[@REVISION])\n"
    "  --list-models        list the catalog and exit\n"
    "  --download-only      download the model and exit without serving\n"
    "  --port N             port to serve on (default 8080)\n"
    "  --host H             address to bind (default 127.0.0.1)\n"
    "  --models-dir DIR     where models live (default ./models; env MCLI_MODELS_DIR)\n"
    "\n"
    "When the chosen model is not on disk and the hub cannot be reached, the bundled demo models are\n"
    "served instead (one line on stderr says so).\n";

int cmd_lightweight_run(int argc, char **argv)
{
    const char *cmd = "lightweight-run";
    common_opts c = {0};
    bool list = false, download_only = false;
    const char *model = NULL;
    for (int i = 1; i < argc; i++) {
        int t = take_common(cmd, argc, argv, &i, &c);
        if (t < 0)
            return 2;
        if (t > 0)
            continue;
        if (strcmp(argv[i], "--list-models") == 0)
            list = true;
        else if (strcmp(argv[i], "--download-only") == 0)
            download_only = true;
        else if (strcmp(argv[i], "--auto") == 0)
            continue;
        else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            model = argv[++i];
        else if (strcmp(argv[i], "--model") == 0)
            return cli_usage_error(cmd, "--model needs a MODEL");
        else
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
    }
    int rc = 0;
    if (!resolve_models_dir(cmd, &c, &rc))
        return rc;
    hub_catalog *cat = open_catalog(cmd, &rc);
    if (!cat)
        return rc;
    static char dirs[SERVE_MAX][MODELS_DIR_PATH_MAX];
    size_t n_dirs = 0;
    mcli_err err;
    mcli_err_clear(&err);
    if (list) {
        print_catalog(cat, c.models_dir, c.json);
        goto out;
    }
    const hub_entry *e = NULL;
    if (!model) {
        e = recommend_entry(cmd, cat, c.models_dir, &rc);
        if (!e)
            goto out;
        model = e->key;
    }
    e = NULL;
    char repo[MODELS_DIR_REPO_MAX], rev[128];
    if (resolve_model(cat, model, repo, sizeof repo, rev, sizeof rev, &e, &err) != MCLI_OK) {
        rc = fail_status(cmd, &err);
        goto out;
    }
    if (e && e->bundled) {
        snprintf(dirs[n_dirs++], MODELS_DIR_PATH_MAX, "%s", e->path);
    } else {
        hub_pull_result res;
        fprintf(stderr, "Using model %s\n", model);
        rc = do_pull(cmd, c.models_dir, repo, rev, false, &res, &err);
        if (rc != 0) {
            if (err.code != MCLI_ERR_NETWORK || download_only)
                goto out;
            n_dirs = 0;
            for (size_t i = 0; i < hub_catalog_count(cat) && n_dirs < SERVE_MAX; i++) {
                const hub_entry *b = hub_catalog_at(cat, i);
                if (b->bundled && b->path && models_dir_has_model(b->path))
                    snprintf(dirs[n_dirs++], MODELS_DIR_PATH_MAX, "%s", b->path);
            }
            if (n_dirs == 0)
                goto out;
            fprintf(stderr, "mcli %s: the hub cannot be reached and %s is not on disk: serving the %zu bundled demo "
                            "model(s) instead\n", cmd, repo, n_dirs);
            rc = 0;
        } else {
            snprintf(dirs[n_dirs++], MODELS_DIR_PATH_MAX, "%s", res.dir);
        }
    }
    if (download_only) {
        printf("%s\n", dirs[0]);
        goto out;
    }
    rc = serve_dirs(dirs, n_dirs, &c);
out:
    hub_catalog_free(cat);
    return rc;
}

const char usage_list[] =
    "Usage: mcli [workflow model-service] list [--summary] [--json] [--models-dir DIR]\n"
    "       mcli [workflow model-service] list --registry [--summary] [--json] [--direct] [--db F]\n"
    "\n"
    "Lists the models downloaded under DIR/lightweight (repo, size, files, commit, when pulled).\n"
    "  --summary            one line: how many models and their total size\n"
    "  --json               machine-readable output\n"
    "  --registry           list the model service's registry instead (through the running service,\n"
    "                       else directly on its database); --summary then adds counts by type,\n"
    "                       memory and per-model inference statistics (see docs/SERVICE.md)\n";

/* Removes the first "--registry" from argv (in place); true if it was there. The registry half of
 * list/remove belongs to the model service (cmd_service.c); this file only hands over. */
static bool take_registry_flag(int *argc, char **argv)
{
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--registry") == 0) {
            for (int j = i; j + 1 < *argc; j++)
                argv[j] = argv[j + 1];
            (*argc)--;
            return true;
        }
    }
    return false;
}

int cmd_list(int argc, char **argv)
{
    if (take_registry_flag(&argc, argv))
        return service_list_registry(argc, argv);
    const char *cmd = "list";
    common_opts c = {0};
    bool summary = false;
    for (int i = 1; i < argc; i++) {
        int t = take_common(cmd, argc, argv, &i, &c);
        if (t < 0)
            return 2;
        if (t > 0)
            continue;
        if (strcmp(argv[i], "--summary") == 0)
            summary = true;
        else
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
    }
    int rc = 0;
    if (!resolve_models_dir(cmd, &c, &rc))
        return rc;
    models_dir_entry *list = NULL;
    size_t n = 0;
    mcli_err err;
    mcli_err_clear(&err);
    if (models_dir_list(c.models_dir, &list, &n, &err) != MCLI_OK)
        return fail_status(cmd, &err);
    int64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += list[i].bytes;
    char tb[32];
    human_bytes((double)total, tb, sizeof tb);
    if (summary) {
        if (c.json)
            printf("{\"models\":%zu,\"total_bytes\":%lld}\n", n, (long long)total);
        else
            printf("%zu model%s, %s in %s\n", n, n == 1 ? "" : "s", tb, c.models_dir);
        models_dir_list_free(list);
        return 0;
    }
    json_t *arr = c.json ? json_array() : NULL;
    if (c.json && !arr) {
        models_dir_list_free(list);
        fprintf(stderr, "mcli %s: out of memory\n", cmd);
        return 1;
    }
    if (!c.json && n == 0)
        printf("No models in %s/lightweight; try: mcli lightweight --list\n", c.models_dir);
    else if (!c.json)
        printf("%-48s %10s %6s  %-12s %s\n", "MODEL", "SIZE", "FILES", "COMMIT", "PULLED");
    for (size_t i = 0; i < n; i++) {
        hub_manifest m;
        mcli_err e2;
        bool have = manifest_read(list[i].path, &m, &e2) == MCLI_OK;
        char sz[32];
        human_bytes((double)list[i].bytes, sz, sizeof sz);
        if (c.json) {
            json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s}", "model", list[i].repo, "path", list[i].path,
                                  "bytes", (json_int_t)list[i].bytes, "files", (json_int_t)(have ? m.n_files : 0),
                                  "commit", have ? m.commit : "", "revision", have ? m.revision : "", "pulled_at",
                                  have ? m.pulled_at : "");
            if (o)
                json_array_append_new(arr, o);
        } else {
            printf("%-48s %10s %6zu  %-12.12s %s\n", list[i].repo, sz, have ? m.n_files : (size_t)0,
                   have && m.commit[0] ? m.commit : "-", have ? m.pulled_at : "(no manifest)");
        }
        if (have)
            manifest_free(&m);
    }
    if (c.json) {
        char *text = json_dumps(arr, JSON_COMPACT);
        printf("%s\n", text ? text : "[]");
        free(text);
        json_decref(arr);
    }
    models_dir_list_free(list);
    return 0;
}

const char usage_remove[] =
    "Usage: mcli [workflow model-service] remove MODEL [--models-dir DIR]\n"
    "       mcli [workflow model-service] remove --registry ID|NAME [--direct] [--db F]\n"
    "\n"
    "Deletes the model's directory (its files, manifest and any partial downloads). MODEL is a catalog\n"
    "key (aliases resolve to their repository) or org/name. Fails with 'busy' while it is being pulled.\n"
    "With --registry, removes a model from the model service's registry instead (unloading it).\n";

int cmd_remove(int argc, char **argv)
{
    if (take_registry_flag(&argc, argv))
        return service_remove_registry(argc, argv);
    const char *cmd = "remove";
    common_opts c = {0};
    const char *model = NULL;
    for (int i = 1; i < argc; i++) {
        int t = take_common(cmd, argc, argv, &i, &c);
        if (t < 0)
            return 2;
        if (t > 0)
            continue;
        if (argv[i][0] == '-' || model)
            return cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
        model = argv[i];
    }
    if (!model)
        return cli_usage_error(cmd, "which MODEL? (see 'mcli list')");
    int rc = 0;
    if (!resolve_models_dir(cmd, &c, &rc))
        return rc;
    mcli_err err;
    mcli_err_clear(&err);
    const char *repo = model;
    hub_catalog *cat = NULL;
    mcli_err e2;
    if (hub_catalog_open_default(&cat, &e2) == MCLI_OK) {
        const hub_entry *e = hub_catalog_find(cat, model);
        if (e && !e->bundled)
            repo = e->repo;
        else if (e && e->bundled) {
            fprintf(stderr, "mcli %s: %s is a bundled model (part of mcli at %s), not a download\n", cmd, model, e->path);
            hub_catalog_free(cat);
            return 1;
        }
    }
    mcli_status st = models_dir_remove(c.models_dir, repo, &err);
    if (st == MCLI_OK)
        printf("Removed %s (%s/lightweight/%s)\n", repo, c.models_dir, repo);
    hub_catalog_free(cat);
    return st == MCLI_OK ? 0 : fail_status(cmd, &err);
}

const char usage_sysinfo[] =
    "Usage: mcli sysinfo [--json] [--models-dir DIR]\n"
    "\n"
    "CPU cores (online, affinity, cgroup quota), SIMD features, RAM total/available, cgroup memory limit\n"
    "(v1 or v2), and free disk on the models directory's filesystem. MCLI_SYSINFO_OVERRIDE='{...}' (or\n"
    "'@file.json') replaces probed figures, for tests.\n";

int cmd_sysinfo(int argc, char **argv)
{
    const char *cmd = "sysinfo";
    common_opts c = {0};
    for (int i = 1; i < argc; i++) {
        int t = take_common(cmd, argc, argv, &i, &c);
        if (t < 0)
            return 2;
        if (t == 0)
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
    }
    int rc = 0;
    if (!resolve_models_dir(cmd, &c, &rc))
        return rc;
    mcli_sysinfo si;
    mcli_err err;
    mcli_err_clear(&err);
    if (sysinfo_probe(c.models_dir, &si, &err) != MCLI_OK)
        return fail_status(cmd, &err);
    if (c.json) {
        char *s = sysinfo_to_json(&si);
        if (!s) {
            fprintf(stderr, "mcli %s: out of memory\n", cmd);
            return 1;
        }
        printf("%s\n", s);
        free(s);
    } else {
        sysinfo_print(&si, stdout);
    }
    return 0;
}

const char usage_pull[] =
    "Usage: mcli pull REPO[@REVISION] [--models-dir DIR] [--any-arch]\n"
    "\n"
    "Downloads a Hugging Face repository (config, weights, tokenizer files) into\n"
    "DIR/lightweight/REPO, resuming partial files, verifying sizes and SHA-256, and writing\n"
    "mcli-manifest.json. REPO may be a catalog key (aliases resolve). Env: HF_ENDPOINT, HF_TOKEN,\n"
    "HF_HUB_OFFLINE. Retries: MCLI_RETRY_MAX, MCLI_RETRY_BASE_MS, MCLI_RETRY_MAX_MS, MCLI_STALL_TIMEOUT_S.\n"
    "The pull stops after config.json unless its model_type is bert, distilbert or gpt2;\n"
    "--any-arch downloads other architectures anyway (mcli cannot run them).\n";

int cmd_pull(int argc, char **argv)
{
    const char *cmd = "pull";
    common_opts c = {0};
    const char *ref = NULL;
    bool any_arch = false;
    for (int i = 1; i < argc; i++) {
        int t = take_common(cmd, argc, argv, &i, &c);
        if (t < 0)
            return 2;
        if (t > 0)
            continue;
        if (strcmp(argv[i], "--any-arch") == 0) {
            any_arch = true;
            continue;
        }
        if (argv[i][0] == '-' || ref)
            return cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
        ref = argv[i];
    }
    if (!ref)
        return cli_usage_error(cmd, "which REPO? e.g. mcli pull prajjwal1/bert-tiny");
    int rc = 0;
    if (!resolve_models_dir(cmd, &c, &rc))
        return rc;
    mcli_err err;
    mcli_err_clear(&err);
    hub_catalog *cat = NULL;
    mcli_err e2;
    if (hub_catalog_open_default(&cat, &e2) != MCLI_OK)
        cat = NULL; /* pulling any repo works without a catalog */
    char repo[MODELS_DIR_REPO_MAX], rev[128];
    const hub_entry *e = NULL;
    if (resolve_model(cat, ref, repo, sizeof repo, rev, sizeof rev, &e, &err) != MCLI_OK) {
        hub_catalog_free(cat);
        return fail_status(cmd, &err);
    }
    if (e && e->bundled) {
        fprintf(stderr, "%s is bundled with mcli: nothing to download\n", e->key);
        printf("%s\n", e->path);
        hub_catalog_free(cat);
        return 0;
    }
    hub_catalog_free(cat);
    hub_pull_result res;
    rc = do_pull(cmd, c.models_dir, repo, rev, any_arch, &res, &err);
    if (rc == 0)
        printf("%s\n", res.dir);
    return rc;
}
