/* models_dir.c - layout, locks, listing and removal of models on disk (see models_dir.h). */
#include "store/models_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST_NAME "mcli-manifest.json"
#define REPO_PART_MAX 96
#define LIST_MAX 4096  /* models listed at most; a directory with more is truncated */

static bool part_valid(const char *s, size_t n)
{
    if (n == 0 || n > REPO_PART_MAX || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '-';
        if (!ok)
            return false;
        if (c == '.' && i + 1 < n && s[i + 1] == '.')
            return false;
    }
    return true;
}

bool models_dir_repo_valid(const char *repo)
{
    if (!repo)
        return false;
    size_t len = strnlen(repo, MODELS_DIR_REPO_MAX);
    if (len == 0 || len >= MODELS_DIR_REPO_MAX)
        return false;
    const char *slash = memchr(repo, '/', len);
    if (!slash)
        return part_valid(repo, len);
    size_t org = (size_t)(slash - repo);
    return part_valid(repo, org) && part_valid(slash + 1, len - org - 1);
}

mcli_status models_dir_resolve(const char *flag, char *out, size_t cap, mcli_err *err)
{
    const char *dir = (flag && flag[0]) ? flag : getenv("MCLI_MODELS_DIR");
    if (!dir || !dir[0])
        dir = MODELS_DIR_DEFAULT;
    int n = snprintf(out, cap, "%s", dir);
    if (n < 0 || (size_t)n >= cap)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "models directory path too long (%zu bytes max)", cap - 1);
    return MCLI_OK;
}

mcli_status models_dir_model_path(const char *models_dir, const char *repo, char *out, size_t cap, mcli_err *err)
{
    if (!models_dir_repo_valid(repo))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG,
                         "'%s' is not a model id: use org/name as on huggingface.co (letters, digits, . _ -)",
                         repo ? repo : "(null)");
    int n = snprintf(out, cap, "%s/lightweight/%s", models_dir, repo);
    if (n < 0 || (size_t)n >= cap)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "model path too long under %s", models_dir);
    return MCLI_OK;
}

mcli_status models_dir_mkdirs(const char *path, mcli_err *err)
{
    char buf[MODELS_DIR_PATH_MAX];
    int n = snprintf(buf, sizeof buf, "%s", path);
    if (n < 0 || (size_t)n >= sizeof buf)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "path too long: %.100s...", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return mcli_fail(err, MCLI_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return mcli_fail(err, MCLI_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return mcli_fail(err, MCLI_ERR_IO, "%s exists and is not a directory", buf);
    return MCLI_OK;
}

mcli_status models_dir_lock(const char *models_dir, const char *repo, bool wait, void (*on_wait)(void *user),
                            void *user, int *fd_out, mcli_err *err)
{
    *fd_out = -1;
    if (!models_dir_repo_valid(repo))
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "'%s' is not a model id", repo ? repo : "(null)");
    char dir[MODELS_DIR_PATH_MAX], path[MODELS_DIR_PATH_MAX + MODELS_DIR_REPO_MAX + 16];
    int n = snprintf(dir, sizeof dir, "%s/lightweight/.locks", models_dir);
    if (n < 0 || (size_t)n >= sizeof dir)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "models directory path too long");
    mcli_status st = models_dir_mkdirs(dir, err);
    if (st != MCLI_OK)
        return st;
    char flat[MODELS_DIR_REPO_MAX + 2];
    size_t j = 0;
    for (size_t i = 0; repo[i] && j + 2 < sizeof flat; i++) {
        if (repo[i] == '/') {
            flat[j++] = '-';
            flat[j++] = '-';
        } else {
            flat[j++] = repo[i];
        }
    }
    flat[j] = '\0';
    snprintf(path, sizeof path, "%s/%s.lock", dir, flat);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return mcli_fail(err, MCLI_ERR_IO, "cannot open lock file %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) {
            int e = errno;
            close(fd);
            return mcli_fail(err, MCLI_ERR_IO, "cannot lock %s: %s", path, strerror(e));
        }
        if (!wait) {
            close(fd);
            return mcli_fail(err, MCLI_ERR_BUSY, "%s is being downloaded or removed by another mcli process; retry later",
                             repo);
        }
        if (on_wait)
            on_wait(user);
        while (flock(fd, LOCK_EX) != 0) {
            if (errno != EINTR) {
                int e = errno;
                close(fd);
                return mcli_fail(err, MCLI_ERR_IO, "cannot lock %s: %s", path, strerror(e));
            }
        }
    }
    *fd_out = fd;
    return MCLI_OK;
}

void models_dir_unlock(int fd)
{
    if (fd >= 0) {
        flock(fd, LOCK_UN);
        close(fd);
    }
}

static bool file_exists(const char *dir, const char *name)
{
    char p[MODELS_DIR_PATH_MAX + 64];
    int n = snprintf(p, sizeof p, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof p)
        return false;
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

bool models_dir_has_model(const char *dir)
{
    static const char *const weights[] = {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                                          "pytorch_model.bin.index.json"};
    if (!file_exists(dir, "config.json"))
        return false;
    for (size_t i = 0; i < sizeof weights / sizeof weights[0]; i++)
        if (file_exists(dir, weights[i]))
            return true;
    return false;
}

/* Sum of regular-file sizes under path, one level of subdirectories deep (1_Pooling/...). */
static int64_t dir_bytes(const char *path, int depth)
{
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int64_t total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[MODELS_DIR_PATH_MAX];
        int n = snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        if (n < 0 || (size_t)n >= sizeof p)
            continue;
        struct stat st;
        if (lstat(p, &st) != 0)
            continue;
        if (S_ISREG(st.st_mode))
            total += (int64_t)st.st_size;
        else if (S_ISDIR(st.st_mode) && depth < 2)
            total += dir_bytes(p, depth + 1);
    }
    closedir(d);
    return total;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const models_dir_entry *)a)->repo, ((const models_dir_entry *)b)->repo);
}

/* Appends one entry if dir holds a model. Returns false only on allocation failure. */
static bool list_add(models_dir_entry **list, size_t *n, size_t *cap, const char *repo, const char *dir)
{
    bool manifest = file_exists(dir, MANIFEST_NAME);
    if (!manifest && !models_dir_has_model(dir))
        return true;
    if (*n >= LIST_MAX)
        return true;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        models_dir_entry *grown = realloc(*list, nc * sizeof *grown);
        if (!grown)
            return false;
        *list = grown;
        *cap = nc;
    }
    models_dir_entry *e = &(*list)[(*n)++];
    memset(e, 0, sizeof *e);
    snprintf(e->repo, sizeof e->repo, "%s", repo);
    snprintf(e->path, sizeof e->path, "%s", dir);
    e->bytes = dir_bytes(dir, 0);
    e->has_manifest = manifest;
    return true;
}

static bool is_dir(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

mcli_status models_dir_list(const char *models_dir, models_dir_entry **out, size_t *n_out, mcli_err *err)
{
    *out = NULL;
    *n_out = 0;
    models_dir_entry *list = NULL;
    size_t n = 0, cap = 0;
    DIR *top = NULL;
    char root[MODELS_DIR_PATH_MAX];
    int len = snprintf(root, sizeof root, "%s/lightweight", models_dir);
    if (len < 0 || (size_t)len >= sizeof root)
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "models directory path too long");
    top = opendir(root);
    if (!top)
        return MCLI_OK; /* nothing downloaded yet */
    struct dirent *e;
    while ((e = readdir(top)) != NULL) {
        if (e->d_name[0] == '.' || !models_dir_repo_valid(e->d_name))
            continue;
        char p[MODELS_DIR_PATH_MAX];
        int m = snprintf(p, sizeof p, "%s/%s", root, e->d_name);
        if (m < 0 || (size_t)m >= sizeof p || !is_dir(p))
            continue;
        if (file_exists(p, "config.json") || file_exists(p, MANIFEST_NAME)) {
            if (!list_add(&list, &n, &cap, e->d_name, p))
                goto nomem;
            continue;
        }
        DIR *org = opendir(p);
        if (!org)
            continue;
        struct dirent *f;
        while ((f = readdir(org)) != NULL) {
            if (f->d_name[0] == '.')
                continue;
            char repo[MODELS_DIR_REPO_MAX], q[MODELS_DIR_PATH_MAX];
            int r = snprintf(repo, sizeof repo, "%s/%s", e->d_name, f->d_name);
            int s = snprintf(q, sizeof q, "%s/%s", p, f->d_name);
            if (r < 0 || (size_t)r >= sizeof repo || s < 0 || (size_t)s >= sizeof q)
                continue;
            if (!models_dir_repo_valid(repo) || !is_dir(q))
                continue;
            if (!list_add(&list, &n, &cap, repo, q)) {
                closedir(org);
                goto nomem;
            }
        }
        closedir(org);
    }
    closedir(top);
    if (n > 1)
        qsort(list, n, sizeof *list, entry_cmp);
    *out = list;
    *n_out = n;
    return MCLI_OK;
nomem:
    closedir(top);
    free(list);
    return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory listing %s", root);
}

void models_dir_list_free(models_dir_entry *list)
{
    free(list);
}

mcli_status models_dir_rmtree(const char *path, mcli_err *err)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? MCLI_OK : mcli_fail(err, MCLI_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) != 0)
            return mcli_fail(err, MCLI_ERR_IO, "cannot delete %s: %s", path, strerror(errno));
        return MCLI_OK;
    }
    DIR *d = opendir(path);
    if (!d)
        return mcli_fail(err, MCLI_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    mcli_status status = MCLI_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[MODELS_DIR_PATH_MAX];
        int n = snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        if (n < 0 || (size_t)n >= sizeof p) {
            status = mcli_fail(err, MCLI_ERR_IO, "path too long under %s", path);
            break;
        }
        status = models_dir_rmtree(p, err);
        if (status != MCLI_OK)
            break;
    }
    closedir(d);
    if (status != MCLI_OK)
        return status;
    if (rmdir(path) != 0)
        return mcli_fail(err, MCLI_ERR_IO, "cannot delete directory %s: %s", path, strerror(errno));
    return MCLI_OK;
}

mcli_status models_dir_remove(const char *models_dir, const char *repo, mcli_err *err)
{
    char dir[MODELS_DIR_PATH_MAX];
    mcli_status st = models_dir_model_path(models_dir, repo, dir, sizeof dir, err);
    if (st != MCLI_OK)
        return st;
    if (!is_dir(dir))
        return mcli_fail(err, MCLI_ERR_NOT_FOUND, "%s is not downloaded (no directory %s); see 'mcli list'", repo, dir);
    int fd = -1;
    st = models_dir_lock(models_dir, repo, false, NULL, NULL, &fd, err);
    if (st != MCLI_OK)
        return st;
    st = models_dir_rmtree(dir, err);
    if (st == MCLI_OK && strchr(repo, '/')) {
        /* Remove the org directory if this was its last model (rmdir fails harmlessly otherwise). */
        char *slash = strrchr(dir, '/');
        *slash = '\0';
        (void)rmdir(dir);
    }
    models_dir_unlock(fd);
    return st;
}
