/* manifest.c - read/write mcli-manifest.json (see manifest.h). */
#include "hub/manifest.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST_BYTES_MAX (1024 * 1024)

void manifest_free(hub_manifest *m)
{
    if (!m)
        return;
    free(m->files);
    m->files = NULL;
    m->n_files = 0;
}

const manifest_file *manifest_find(const hub_manifest *m, const char *name)
{
    for (size_t i = 0; i < m->n_files; i++)
        if (strcmp(m->files[i].name, name) == 0)
            return &m->files[i];
    return NULL;
}

mcli_status manifest_add(hub_manifest *m, const manifest_file *f, mcli_err *err)
{
    for (size_t i = 0; i < m->n_files; i++) {
        if (strcmp(m->files[i].name, f->name) == 0) {
            m->files[i] = *f;
            return MCLI_OK;
        }
    }
    if (m->n_files >= MANIFEST_FILES_MAX)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "more than %d files in one model", MANIFEST_FILES_MAX);
    manifest_file *grown = realloc(m->files, (m->n_files + 1) * sizeof *grown);
    if (!grown)
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory");
    m->files = grown;
    m->files[m->n_files++] = *f;
    return MCLI_OK;
}

static void copy_str(json_t *o, const char *k, char *dst, size_t cap)
{
    json_t *v = json_object_get(o, k);
    if (json_is_string(v))
        snprintf(dst, cap, "%s", json_string_value(v));
    else
        dst[0] = '\0';
}

mcli_status manifest_read(const char *dir, hub_manifest *out, mcli_err *err)
{
    memset(out, 0, sizeof *out);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, MANIFEST_FILE);
    struct stat st;
    if (stat(path, &st) != 0)
        return mcli_fail(err, MCLI_ERR_NOT_FOUND, "no manifest in %s", dir);
    if (st.st_size > MANIFEST_BYTES_MAX)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s is larger than %d bytes", path, MANIFEST_BYTES_MAX);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: %s", path, jerr.text);
    mcli_status status = MCLI_OK;
    json_t *files = json_object_get(root, "files");
    if (!json_is_object(root) || !json_is_array(files)) {
        status = mcli_fail(err, MCLI_ERR_FORMAT, "%s: not a manifest (no files array)", path);
        goto done;
    }
    copy_str(root, "repo", out->repo, sizeof out->repo);
    copy_str(root, "revision", out->revision, sizeof out->revision);
    copy_str(root, "commit", out->commit, sizeof out->commit);
    copy_str(root, "endpoint", out->endpoint, sizeof out->endpoint);
    copy_str(root, "pulled_at", out->pulled_at, sizeof out->pulled_at);
    size_t n = json_array_size(files);
    for (size_t i = 0; i < n; i++) {
        json_t *f = json_array_get(files, i);
        json_t *name = json_object_get(f, "name"), *size = json_object_get(f, "size");
        if (!json_is_string(name) || json_string_length(name) >= MANIFEST_NAME_MAX || !json_is_integer(size) ||
            json_integer_value(size) < 0) {
            status = mcli_fail(err, MCLI_ERR_FORMAT, "%s: files[%zu] needs a name and a size", path, i);
            goto done;
        }
        manifest_file mf;
        memset(&mf, 0, sizeof mf);
        snprintf(mf.name, sizeof mf.name, "%s", json_string_value(name));
        mf.size = json_integer_value(size);
        copy_str(f, "sha256", mf.sha256, sizeof mf.sha256);
        copy_str(f, "etag", mf.etag, sizeof mf.etag);
        mf.lfs = json_is_true(json_object_get(f, "lfs"));
        status = manifest_add(out, &mf, err);
        if (status != MCLI_OK)
            goto done;
        out->total_bytes += mf.size;
    }
done:
    json_decref(root);
    if (status != MCLI_OK)
        manifest_free(out);
    return status;
}

mcli_status manifest_write(const char *dir, const hub_manifest *m, mcli_err *err)
{
    mcli_status status = MCLI_OK;
    char path[4200], tmp[4220];
    snprintf(path, sizeof path, "%s/%s", dir, MANIFEST_FILE);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    json_t *root = json_object(), *files = json_array();
    if (!root || !files) {
        json_decref(root);
        json_decref(files);
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory writing the manifest");
    }
    int64_t total = 0;
    json_object_set_new(root, "format", json_integer(1));
    json_object_set_new(root, "repo", json_string(m->repo));
    json_object_set_new(root, "revision", json_string(m->revision));
    json_object_set_new(root, "commit", json_string(m->commit));
    json_object_set_new(root, "endpoint", json_string(m->endpoint));
    json_object_set_new(root, "pulled_at", json_string(m->pulled_at));
    for (size_t i = 0; i < m->n_files; i++) {
        const manifest_file *f = &m->files[i];
        json_t *o = json_object();
        if (!o) {
            status = mcli_fail(err, MCLI_ERR_NOMEM, "out of memory writing the manifest");
            goto done;
        }
        json_object_set_new(o, "name", json_string(f->name));
        json_object_set_new(o, "size", json_integer(f->size));
        json_object_set_new(o, "sha256", json_string(f->sha256));
        json_object_set_new(o, "etag", json_string(f->etag));
        json_object_set_new(o, "lfs", json_boolean(f->lfs));
        json_array_append_new(files, o);
        total += f->size;
    }
    json_object_set_new(root, "total_bytes", json_integer(total));
    json_object_set(root, "files", files);
    if (json_dump_file(root, tmp, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
        status = mcli_fail(err, MCLI_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
        unlink(tmp);
        goto done;
    }
    if (rename(tmp, path) != 0) {
        status = mcli_fail(err, MCLI_ERR_IO, "cannot move %s into place: %s", path, strerror(errno));
        unlink(tmp);
    }
done:
    json_decref(files);
    json_decref(root);
    return status;
}
