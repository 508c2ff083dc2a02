/* hub.c - pull a repository: resolve files, check disk, fetch under a lock, write the manifest
 * (see hub.h for the flow). */
#include "hub/hub.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hub/manifest.h"
#include "store/models_dir.h"
#include "sys/sysinfo.h"
#include "util/log.h"

#define DEFAULT_ENDPOINT "https://huggingface.co"
#define API_BODY_MAX (4 * 1024 * 1024)    /* the /api/models listing */
#define INDEX_BODY_MAX (8 * 1024 * 1024)  /* a *.index.json */
#define FILES_MAX 256                     /* files pulled for one model */
#define SHARDS_MAX 128
#define REV_MAX 100
#define DISK_MARGIN_MB 50
#define URL_CAP 4096

static const char *const OPTIONAL_FILES[] = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
    "merges.txt", "added_tokens.json", "generation_config.json", "modules.json", "sentence_bert_config.json",
    "1_Pooling/config.json",
};
#define N_OPTIONAL (sizeof OPTIONAL_FILES / sizeof OPTIONAL_FILES[0])

static const char *const WEIGHTS[] = {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                                      "pytorch_model.bin.index.json"};

const char *hub_endpoint(char *buf, size_t cap)
{
    const char *e = getenv("HF_ENDPOINT");
    if (!e || !e[0])
        e = DEFAULT_ENDPOINT;
    snprintf(buf, cap, "%s", e);
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == '/')
        buf[--n] = '\0';
    return buf;
}

static bool name_part_ok(const char *s, size_t n)
{
    if (n == 0 || n > 128 || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

bool hub_file_name_valid(const char *name)
{
    size_t len = strnlen(name, MANIFEST_NAME_MAX);
    if (len == 0 || len >= MANIFEST_NAME_MAX - 16)
        return false;
    const char *slash = memchr(name, '/', len);
    if (!slash)
        return name_part_ok(name, len);
    size_t a = (size_t)(slash - name);
    if (memchr(slash + 1, '/', len - a - 1))
        return false;
    return name_part_ok(name, a) && name_part_ok(slash + 1, len - a - 1);
}

static bool rev_valid(const char *rev)
{
    size_t n = strnlen(rev, REV_MAX + 1);
    if (n == 0 || n > REV_MAX || rev[0] == '/' || rev[0] == '.' || strstr(rev, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = rev[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-' || c == '/'))
            return false;
    }
    return true;
}

mcli_status hub_parse_ref(const char *ref, char *repo, size_t repo_cap, char *rev, size_t rev_cap, mcli_err *err)
{
    if (!ref || !ref[0])
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "no model id given (expected org/name[@revision])");
    const char *at = strchr(ref, '@');
    size_t rlen = at ? (size_t)(at - ref) : strlen(ref);
    if (rlen >= repo_cap)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "model id too long: %.60s...", ref);
    memcpy(repo, ref, rlen);
    repo[rlen] = '\0';
    rev[0] = '\0';
    if (at) {
        if ((size_t)snprintf(rev, rev_cap, "%s", at + 1) >= rev_cap || !rev_valid(rev))
            return mcli_fail(err, MCLI_ERR_INVALID_ARG,
                             "'%s' is not a revision: use a branch, tag or commit (letters, digits, . _ - /)", at + 1);
    }
    if (!models_dir_repo_valid(repo))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG,
                         "'%s' is not a model id: use org/name as on huggingface.co (letters, digits, . _ -)", repo);
    return MCLI_OK;
}

/* ---- the pull ---- */

typedef struct {
    char name[MANIFEST_NAME_MAX];
    dl_meta meta;
    bool present;     /* already on disk with the same checksum */
} planned_file;

typedef struct {
    const hub_pull_opts *o;
    const dl_policy *policy;
    const char *token;
    char endpoint[1024];
    char repo_enc[512];
    char rev[REV_MAX + 1];     /* the revision asked for */
    char pin[REV_MAX + 1];     /* what URLs use: the commit once known */
    char dir[4096];
    planned_file *files;
    size_t n_files;
    hub_manifest old;          /* manifest of a previous pull (may be empty) */
    hub_manifest now;
    int64_t total_bytes, total_done, file_base;
    size_t cur_index;
    const char *cur_name;
    struct timespec t0;
    int64_t bytes_at_t0;
    hub_pull_result *res;
} pull_ctx;

static int emit(pull_ctx *c, hub_event *ev)
{
    if (!c->o->progress)
        return 0;
    ev->repo = c->o->repo;
    ev->n_files = c->n_files;
    ev->total_bytes = c->total_bytes;
    return c->o->progress(c->o->user, ev);
}

static void emit_msg(pull_ctx *c, const char *msg)
{
    hub_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = HUB_EV_MESSAGE;
    ev.message = msg;
    (void)emit(c, &ev);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int on_file_progress(void *user, int64_t done, int64_t total)
{
    pull_ctx *c = user;
    hub_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = HUB_EV_PROGRESS;
    ev.file = c->cur_name;
    ev.index = c->cur_index;
    ev.file_done = done;
    ev.file_total = total;
    ev.total_done = c->total_done + done;
    double el = now_s() - ((double)c->t0.tv_sec + (double)c->t0.tv_nsec / 1e9);
    ev.bytes_per_sec = el > 0.05 ? (double)(c->total_done + done - c->bytes_at_t0) / el : 0;
    return emit(c, &ev);
}

static bool file_url(const pull_ctx *c, const char *name, char *out, size_t cap)
{
    char rev_enc[3 * REV_MAX + 1], name_enc[3 * MANIFEST_NAME_MAX];
    if (!dl_url_encode(c->pin, false, rev_enc, sizeof rev_enc) || !dl_url_encode(name, true, name_enc, sizeof name_enc))
        return false;
    int n = snprintf(out, cap, "%s/%s/resolve/%s/%s", c->endpoint, c->repo_enc, rev_enc, name_enc);
    return n > 0 && (size_t)n < cap;
}

static mcli_status plan_add(pull_ctx *c, const char *name, mcli_err *err)
{
    for (size_t i = 0; i < c->n_files; i++)
        if (strcmp(c->files[i].name, name) == 0)
            return MCLI_OK;
    if (c->n_files >= FILES_MAX)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: more than %d files to download", c->o->repo, FILES_MAX);
    planned_file *grown = realloc(c->files, (c->n_files + 1) * sizeof *grown);
    if (!grown)
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory");
    c->files = grown;
    memset(&c->files[c->n_files], 0, sizeof c->files[0]);
    snprintf(c->files[c->n_files].name, MANIFEST_NAME_MAX, "%s", name);
    c->n_files++;
    return MCLI_OK;
}

/* HEAD one file into meta. Pins later URLs to the commit the hub reports. */
static mcli_status head_file(pull_ctx *c, const char *name, dl_meta *meta, mcli_err *err)
{
    char url[URL_CAP];
    if (!file_url(c, name, url, sizeof url))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "URL too long for %s", name);
    mcli_status st = dl_head(url, c->token, c->policy, meta, err);
    if (st == MCLI_OK && meta->commit[0] && strcmp(c->pin, meta->commit) != 0 && !c->res->commit[0]) {
        snprintf(c->res->commit, sizeof c->res->commit, "%s", meta->commit);
        snprintf(c->pin, sizeof c->pin, "%s", meta->commit);
    }
    return st;
}

/* Fills the plan from the API listing (siblings[].rfilename). NOT_FOUND if the API has no listing
 * (the caller then probes); AUTH passes through. */
static mcli_status plan_from_api(pull_ctx *c, mcli_err *err)
{
    char url[URL_CAP], rev_enc[3 * REV_MAX + 1];
    if (!dl_url_encode(c->rev, false, rev_enc, sizeof rev_enc))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "revision too long");
    snprintf(url, sizeof url, "%s/api/models/%s/revision/%s", c->endpoint, c->repo_enc, rev_enc);
    char *body = NULL;
    size_t len = 0;
    mcli_status st = dl_get_small(url, c->token, c->policy, API_BODY_MAX, &body, &len, err);
    if (st != MCLI_OK)
        return st;
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    free(body);
    json_t *sib = root ? json_object_get(root, "siblings") : NULL;
    if (!json_is_array(sib)) {
        json_decref(root);
        return mcli_fail(err, MCLI_ERR_NOT_FOUND, "%s: no file listing in the API answer", url);
    }
    json_t *sha = json_object_get(root, "sha");
    if (json_is_string(sha) && strlen(json_string_value(sha)) == 40 && rev_valid(json_string_value(sha)) &&
        !c->res->commit[0]) {
        snprintf(c->res->commit, sizeof c->res->commit, "%s", json_string_value(sha));
        snprintf(c->pin, sizeof c->pin, "%s", c->res->commit);
    }
    /* Which of the wanted names the repository has. */
    bool have_config = false;
    int weights = -1;
    bool has_opt[N_OPTIONAL] = {false};
    size_t n = json_array_size(sib);
    for (size_t i = 0; i < n; i++) {
        const char *f = json_string_value(json_object_get(json_array_get(sib, i), "rfilename"));
        if (!f)
            continue;
        if (strcmp(f, "config.json") == 0)
            have_config = true;
        for (int w = 0; w < 4; w++)
            if (strcmp(f, WEIGHTS[w]) == 0 && (weights < 0 || w < weights))
                weights = w;
        for (size_t k = 0; k < N_OPTIONAL; k++)
            if (strcmp(f, OPTIONAL_FILES[k]) == 0)
                has_opt[k] = true;
    }
    json_decref(root);
    if (!have_config)
        return mcli_fail(err, MCLI_ERR_UNSUPPORTED,
                         "%s has no config.json: not a transformers model repository mcli can run", c->o->repo);
    if (weights < 0)
        return mcli_fail(err, MCLI_ERR_UNSUPPORTED,
                         "%s has no weights mcli can read (model.safetensors or pytorch_model.bin, or their indexes)",
                         c->o->repo);
    if ((st = plan_add(c, "config.json", err)) != MCLI_OK || (st = plan_add(c, WEIGHTS[weights], err)) != MCLI_OK)
        return st;
    for (size_t k = 0; k < N_OPTIONAL; k++)
        if (has_opt[k] && (st = plan_add(c, OPTIONAL_FILES[k], err)) != MCLI_OK)
            return st;
    return MCLI_OK;
}

/* Without a listing: HEAD the candidates; a 404 on an optional file just skips it. */
static mcli_status plan_by_probing(pull_ctx *c, mcli_err *err)
{
    dl_meta m;
    mcli_status st = head_file(c, "config.json", &m, err);
    if (st == MCLI_ERR_NOT_FOUND)
        return mcli_fail(err, MCLI_ERR_NOT_FOUND,
                         "%s@%s: config.json not found - check the model id and revision (is it a transformers model?)",
                         c->o->repo, c->rev);
    if (st != MCLI_OK)
        return st;
    if ((st = plan_add(c, "config.json", err)) != MCLI_OK)
        return st;
    c->files[c->n_files - 1].meta = m;
    bool got_weights = false;
    for (int w = 0; w < 4 && !got_weights; w++) {
        mcli_err e2;
        st = head_file(c, WEIGHTS[w], &m, &e2);
        if (st == MCLI_ERR_NOT_FOUND)
            continue;
        if (st != MCLI_OK) {
            *err = e2;
            return st;
        }
        if ((st = plan_add(c, WEIGHTS[w], err)) != MCLI_OK)
            return st;
        c->files[c->n_files - 1].meta = m;
        got_weights = true;
    }
    if (!got_weights)
        return mcli_fail(err, MCLI_ERR_UNSUPPORTED,
                         "%s has no weights mcli can read (model.safetensors or pytorch_model.bin, or their indexes)",
                         c->o->repo);
    for (size_t k = 0; k < N_OPTIONAL; k++) {
        mcli_err e2;
        st = head_file(c, OPTIONAL_FILES[k], &m, &e2);
        if (st == MCLI_ERR_NOT_FOUND)
            continue;
        if (st != MCLI_OK) {
            *err = e2;
            return st;
        }
        if ((st = plan_add(c, OPTIONAL_FILES[k], err)) != MCLI_OK)
            return st;
        c->files[c->n_files - 1].meta = m;
    }
    return MCLI_OK;
}

static bool path_of(const pull_ctx *c, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", c->dir, name);
    return n > 0 && (size_t)n < cap;
}

/* True if the file is on disk and the previous manifest says it has the checksum the hub reports. */
static bool already_present(const pull_ctx *c, const planned_file *f)
{
    const manifest_file *mf = manifest_find(&c->old, f->name);
    if (!mf || !f->meta.etag[0] || strcmp(mf->etag, f->meta.etag) != 0)
        return false;
    if (f->meta.size >= 0 && mf->size != f->meta.size)
        return false;
    char p[4400];
    struct stat st;
    return path_of(c, f->name, p, sizeof p) && stat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == mf->size;
}

static mcli_status check_disk(pull_ctx *c, size_t from, mcli_err *err)
{
    int64_t need = 0;
    for (size_t i = from; i < c->n_files; i++) {
        planned_file *f = &c->files[i];
        if (f->present || f->meta.size < 0)
            continue;
        char p[4400];
        struct stat st;
        int64_t have = 0;
        if (path_of(c, f->name, p, sizeof p)) {
            char part[4410];
            snprintf(part, sizeof part, "%s.part", p);
            if (stat(part, &st) == 0 && st.st_size <= f->meta.size)
                have = (int64_t)st.st_size;
        }
        need += f->meta.size - have;
    }
    mcli_sysinfo si;
    mcli_err e2;
    if (sysinfo_probe(c->dir, &si, &e2) != MCLI_OK || si.disk_free_mb < 0)
        return MCLI_OK; /* cannot measure: let the writes tell */
    int64_t need_mb = (need + 1024 * 1024 - 1) / (1024 * 1024);
    if (need_mb + DISK_MARGIN_MB > si.disk_free_mb)
        return mcli_fail(err, MCLI_ERR_IO,
                         "not enough disk space for %s: need %lld MB (+%d MB margin), %lld MB free on %s; free some space "
                         "or use --models-dir on another filesystem",
                         c->o->repo, (long long)need_mb, DISK_MARGIN_MB, (long long)si.disk_free_mb, si.disk_path);
    return MCLI_OK;
}

/* Ensures the parent directory of a file inside the model dir exists (for 1_Pooling/config.json). */
static mcli_status ensure_parent(const char *path, mcli_err *err)
{
    char d[4400];
    snprintf(d, sizeof d, "%s", path);
    char *slash = strrchr(d, '/');
    if (!slash)
        return MCLI_OK;
    *slash = '\0';
    return models_dir_mkdirs(d, err);
}

static mcli_status fetch_one(pull_ctx *c, size_t i, mcli_err *err)
{
    planned_file *f = &c->files[i];
    hub_event ev;
    memset(&ev, 0, sizeof ev);
    ev.file = f->name;
    ev.index = i + 1;
    ev.file_total = f->meta.size;
    if (f->present) {
        const manifest_file *mf = manifest_find(&c->old, f->name);
        mcli_status st = manifest_add(&c->now, mf, err);
        if (st != MCLI_OK)
            return st;
        ev.kind = HUB_EV_FILE_DONE;
        ev.sha256 = mf->sha256;
        ev.skipped = true;
        ev.file_done = mf->size;
        c->total_done += mf->size;
        ev.total_done = c->total_done;
        return emit(c, &ev) ? mcli_fail(err, MCLI_ERR_CANCELLED, "pull of %s cancelled", c->o->repo) : MCLI_OK;
    }
    ev.kind = HUB_EV_FILE_START;
    ev.total_done = c->total_done;
    if (emit(c, &ev))
        return mcli_fail(err, MCLI_ERR_CANCELLED, "pull of %s cancelled", c->o->repo);
    char url[URL_CAP], dest[4400];
    if (!file_url(c, f->name, url, sizeof url) || !path_of(c, f->name, dest, sizeof dest))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "path too long for %s", f->name);
    mcli_status st = ensure_parent(dest, err);
    if (st != MCLI_OK)
        return st;
    c->cur_index = i + 1;
    c->cur_name = f->name;
    dl_request rq = {url, c->token, dest, &f->meta, c->policy, on_file_progress, c};
    dl_result r;
    st = dl_fetch(&rq, &r, err);
    if (st != MCLI_OK)
        return mcli_err_prefix(err, "%s: %s", c->o->repo, f->name);
    manifest_file mf;
    memset(&mf, 0, sizeof mf);
    snprintf(mf.name, sizeof mf.name, "%s", f->name);
    mf.size = r.size;
    snprintf(mf.sha256, sizeof mf.sha256, "%s", r.sha256);
    snprintf(mf.etag, sizeof mf.etag, "%s", f->meta.etag);
    mf.lfs = f->meta.lfs;
    if ((st = manifest_add(&c->now, &mf, err)) != MCLI_OK)
        return st;
    c->total_done += r.size;
    c->res->n_downloaded++;
    c->res->bytes_downloaded += r.size - r.resumed_from;
    ev.kind = HUB_EV_FILE_DONE;
    ev.sha256 = mf.sha256;
    ev.file_done = r.size;
    ev.total_done = c->total_done;
    return emit(c, &ev) ? mcli_fail(err, MCLI_ERR_CANCELLED, "pull of %s cancelled", c->o->repo) : MCLI_OK;
}

/* Reads a downloaded *.index.json and adds its shards to the plan. */
static mcli_status plan_shards(pull_ctx *c, const char *index_name, mcli_err *err)
{
    char p[4400];
    if (!path_of(c, index_name, p, sizeof p))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "path too long");
    struct stat st;
    if (stat(p, &st) != 0 || st.st_size > INDEX_BODY_MAX)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: missing or larger than %d bytes", p, INDEX_BODY_MAX);
    json_error_t jerr;
    json_t *root = json_load_file(p, 0, &jerr);
    json_t *map = root ? json_object_get(root, "weight_map") : NULL;
    if (!json_is_object(map)) {
        json_decref(root);
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: no weight_map object (%s)", p, root ? "wrong shape" : jerr.text);
    }
    mcli_status status = MCLI_OK;
    size_t before = c->n_files;
    const char *k;
    json_t *v;
    json_object_foreach(map, k, v) {
        const char *shard = json_string_value(v);
        if (!shard || !hub_file_name_valid(shard) || strchr(shard, '/')) {
            status = mcli_fail(err, MCLI_ERR_FORMAT, "%s: weight_map[%s] is not a plain file name", p, k);
            break;
        }
        if ((status = plan_add(c, shard, err)) != MCLI_OK)
            break;
        if (c->n_files - before > SHARDS_MAX) {
            status = mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: more than %d shards", p, SHARDS_MAX);
            break;
        }
    }
    json_decref(root);
    return status;
}

/* The architectures the engine runs (formats/config.h accepts the same model_type values). */
static const char *const SUPPORTED_TYPES[] = {"bert", "distilbert", "gpt2"};

/* Stops a pull early when config.json names an architecture mcli cannot run. */
static mcli_status check_architecture(const pull_ctx *c, mcli_err *err)
{
    char p[4400];
    struct stat st;
    if (!path_of(c, "config.json", p, sizeof p) || stat(p, &st) != 0)
        return mcli_fail(err, MCLI_ERR_NOT_FOUND, "%s: config.json missing after download", c->o->repo);
    if (st.st_size > INDEX_BODY_MAX)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: config.json is larger than %d bytes", c->o->repo, INDEX_BODY_MAX);
    json_error_t jerr;
    json_t *root = json_load_file(p, 0, &jerr);
    if (!root)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: config.json is not JSON (line %d: %s)", c->o->repo, jerr.line,
                         jerr.text);
    const char *t = json_string_value(json_object_get(root, "model_type"));
    bool ok = false;
    for (size_t i = 0; t && i < sizeof SUPPORTED_TYPES / sizeof SUPPORTED_TYPES[0]; i++)
        ok = ok || strcmp(t, SUPPORTED_TYPES[i]) == 0;
    mcli_status st_ = MCLI_OK;
    if (!ok)
        st_ = mcli_fail(err, MCLI_ERR_UNSUPPORTED,
                        "%s: model_type '%.40s' is not an architecture mcli runs (bert, distilbert, gpt2); nothing "
                        "else was downloaded",
                        c->o->repo, t ? t : "(missing)");
    json_decref(root);
    return st_;
}

static void utc_now(char *out, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void on_lock_wait(void *user)
{
    emit_msg(user, "waiting for another mcli process pulling this model");
}

static mcli_status pull_offline(pull_ctx *c, mcli_err *err)
{
    hub_manifest m;
    mcli_err e2;
    if (manifest_read(c->dir, &m, &e2) == MCLI_OK) {
        for (size_t i = 0; i < m.n_files; i++) {
            char p[4400];
            struct stat st;
            if (!path_of(c, m.files[i].name, p, sizeof p) || stat(p, &st) != 0 || st.st_size != m.files[i].size) {
                mcli_status st2 = mcli_fail(err, MCLI_ERR_NETWORK,
                                            "offline (HF_HUB_OFFLINE=1) and %s is incomplete on disk (%s); "
                                            "unset HF_HUB_OFFLINE to download it",
                                            c->o->repo, m.files[i].name);
                manifest_free(&m);
                return st2;
            }
        }
        snprintf(c->res->commit, sizeof c->res->commit, "%s", m.commit);
        c->res->n_files = m.n_files;
        c->res->total_bytes = m.total_bytes;
        manifest_free(&m);
    } else if (!models_dir_has_model(c->dir)) {
        return mcli_fail(err, MCLI_ERR_NETWORK,
                         "offline (HF_HUB_OFFLINE=1) and %s is not downloaded in %s; unset HF_HUB_OFFLINE to download it",
                         c->o->repo, c->dir);
    }
    c->res->offline_hit = true;
    emit_msg(c, "offline: using the copy on disk");
    return MCLI_OK;
}

mcli_status hub_pull(const hub_pull_opts *o, hub_pull_result *res, mcli_err *err)
{
    memset(res, 0, sizeof *res);
    if (!o || !o->models_dir || !o->models_dir[0] || !o->repo)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "pull needs a models directory and a repository id");
    pull_ctx c;
    memset(&c, 0, sizeof c);
    c.o = o;
    c.res = res;
    dl_policy defp = {0};
    if (!o->policy)
        dl_policy_default(&defp);
    c.policy = o->policy ? o->policy : &defp;
    c.token = o->token ? o->token : getenv("HF_TOKEN");
    if (o->endpoint && o->endpoint[0])
        snprintf(c.endpoint, sizeof c.endpoint, "%s", o->endpoint);
    else
        hub_endpoint(c.endpoint, sizeof c.endpoint);
    snprintf(c.rev, sizeof c.rev, "%s", o->revision && o->revision[0] ? o->revision : "main");
    snprintf(c.pin, sizeof c.pin, "%s", c.rev);
    if (!rev_valid(c.rev))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "'%s' is not a revision", c.rev);
    mcli_status st = models_dir_model_path(o->models_dir, o->repo, c.dir, sizeof c.dir, err);
    if (st != MCLI_OK)
        return st;
    snprintf(res->dir, sizeof res->dir, "%s", c.dir);
    if (!dl_url_encode(o->repo, true, c.repo_enc, sizeof c.repo_enc))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "model id too long");
    int offline = o->offline;
    if (offline < 0) {
        const char *v = getenv("HF_HUB_OFFLINE");
        offline = v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 ||
                        strcasecmp(v, "on") == 0);
    }

    int lock = -1;
    if ((st = models_dir_mkdirs(c.dir, err)) != MCLI_OK)
        return st;
    if ((st = models_dir_lock(o->models_dir, o->repo, true, on_lock_wait, &c, &lock, err)) != MCLI_OK)
        return st;
    if (offline) {
        st = pull_offline(&c, err);
        goto done;
    }
    mcli_err e2;
    if (manifest_read(c.dir, &c.old, &e2) != MCLI_OK)
        memset(&c.old, 0, sizeof c.old);

    emit_msg(&c, "resolving files");
    st = plan_from_api(&c, err);
    if (st == MCLI_ERR_AUTH || st == MCLI_ERR_UNSUPPORTED || st == MCLI_ERR_CANCELLED || st == MCLI_ERR_NETWORK)
        goto done; /* probing the same unreachable or failing host would only repeat the wait */
    if (st == MCLI_ERR_NOT_FOUND && (strstr(err->msg, "repository not found") || strstr(err->msg, "revision not found")))
        goto done;
    if (st != MCLI_OK) {
        LOG_DEBUG("hub: no API listing (%s); probing files", err->msg);
        free(c.files);
        c.files = NULL;
        c.n_files = 0;
        if ((st = plan_by_probing(&c, err)) != MCLI_OK)
            goto done;
    } else {
        for (size_t i = 0; i < c.n_files;) {
            st = head_file(&c, c.files[i].name, &c.files[i].meta, err);
            if (st == MCLI_ERR_NOT_FOUND && i >= 2) {
                /* Listed but not served: an optional file is just skipped (config and weights are not). */
                LOG_WARN("hub: %s: %s is listed but not found; skipping it", o->repo, c.files[i].name);
                memmove(&c.files[i], &c.files[i + 1], (c.n_files - i - 1) * sizeof c.files[0]);
                c.n_files--;
                continue;
            }
            if (st != MCLI_OK) {
                mcli_err_prefix(err, "%s", c.o->repo);
                goto done;
            }
            i++;
        }
    }
    for (size_t i = 0; i < c.n_files; i++)
        c.files[i].present = already_present(&c, &c.files[i]);
    for (size_t i = 0; i < c.n_files; i++)
        if (c.files[i].meta.size > 0)
            c.total_bytes += c.files[i].meta.size;

    snprintf(c.now.repo, sizeof c.now.repo, "%s", o->repo);
    snprintf(c.now.revision, sizeof c.now.revision, "%s", c.rev);
    if (strlen(c.endpoint) < sizeof c.now.endpoint)
        memcpy(c.now.endpoint, c.endpoint, strlen(c.endpoint) + 1);
    clock_gettime(CLOCK_MONOTONIC, &c.t0);
    size_t planned = c.n_files;
    for (size_t i = 0; i < c.n_files; i++) {
        if ((st = fetch_one(&c, i, err)) != MCLI_OK)
            goto done;
        char name[MANIFEST_NAME_MAX]; /* a copy: plan_shards() may move c.files */
        snprintf(name, sizeof name, "%s", c.files[i].name);
        if (strcmp(name, "config.json") == 0 && !o->any_architecture && (st = check_architecture(&c, err)) != MCLI_OK) {
            if (c.old.n_files == 0) {
                char p[4400];
                if (path_of(&c, "config.json", p, sizeof p))
                    unlink(p); /* a first pull of an unusable repo leaves nothing behind */
            }
            goto done;
        }
        /* config.json (always first) is small: check the disk for the rest once it is known usable. */
        if (i == 0 && (st = check_disk(&c, 1, err)) != MCLI_OK)
            goto done;
        size_t nl = strlen(name);
        if (i < planned && nl > 11 && strcmp(name + nl - 11, ".index.json") == 0) {
            size_t before = c.n_files;
            if ((st = plan_shards(&c, name, err)) != MCLI_OK)
                goto done;
            for (size_t k = before; k < c.n_files; k++) {
                if ((st = head_file(&c, c.files[k].name, &c.files[k].meta, err)) != MCLI_OK)
                    goto done;
                c.files[k].present = already_present(&c, &c.files[k]);
                if (c.files[k].meta.size > 0)
                    c.total_bytes += c.files[k].meta.size;
            }
            if ((st = check_disk(&c, before, err)) != MCLI_OK)
                goto done;
        }
    }
    snprintf(c.now.commit, sizeof c.now.commit, "%s", res->commit);
    utc_now(c.now.pulled_at, sizeof c.now.pulled_at);
    if ((st = manifest_write(c.dir, &c.now, err)) != MCLI_OK)
        goto done;
    res->n_files = c.now.n_files;
    res->total_bytes = 0;
    for (size_t i = 0; i < c.now.n_files; i++)
        res->total_bytes += c.now.files[i].size;
    hub_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = HUB_EV_DONE;
    ev.total_done = res->total_bytes;
    (void)emit(&c, &ev);
done:
    if (st != MCLI_OK) {
        /* Leave no empty directories behind a failed first pull (rmdir fails harmlessly otherwise). */
        if (rmdir(c.dir) == 0 && strchr(o->repo, '/')) {
            char *slash = strrchr(c.dir, '/');
            *slash = '\0';
            (void)rmdir(c.dir);
        }
    }
    models_dir_unlock(lock);
    manifest_free(&c.old);
    manifest_free(&c.now);
    free(c.files);
    return st;
}
