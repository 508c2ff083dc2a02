/* torch_zip.c - pytorch_model.bin in the zip format of torch >= 1.6, read with minizip.
 *
 * Entries: <folder>/data.pkl (the state-dict pickle), <folder>/data/<key> (one per storage,
 * STORED, raw little-endian elements), <folder>/version, optionally <folder>/byteorder. The
 * folder name is whatever the writer chose (torch uses the file's stem or "archive"), so it is
 * taken from the one entry named FOLDER/data.pkl. minizip reports where each stored entry's bytes
 * begin in the file (unzGetCurrentFileZStreamPos64), so tensors are used in place from our own
 * read-only mapping. Compressed entries, size mismatches and data outside the file are refused.
 * CRCs of tensor entries are not verified (that would read every byte at load); data.pkl's is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unzip.h>

#include "formats/torch_pickle.h"
#include "formats/weights_internal.h"

#define ZIP_MAX_ENTRIES (1u << 20)
#define ZIP_MAX_PKL (64u << 20)
#define ZIP_MAX_NAME 1024

/* Reads the current entry (at most cap bytes) into a new buffer; CRC checked. */
static mcli_status read_entry(unzFile zf, const char *path, const char *name, uint64_t size, size_t cap,
                              uint8_t **out, mcli_err *err)
{
    *out = NULL;
    if (size > cap)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: entry %s is %llu bytes (limit %zu)", path, name,
                         (unsigned long long)size, cap);
    uint8_t *buf = malloc(size ? (size_t)size : 1);
    if (!buf)
        return mcli_fail(err, MCLI_ERR_NOMEM, "%s: out of memory reading %s", path, name);
    mcli_status s = MCLI_OK;
    if (unzOpenCurrentFile(zf) != UNZ_OK) {
        s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: cannot open zip entry %s", path, name);
        goto fail;
    }
    size_t got = 0;
    while (got < size) {
        size_t chunk = (size_t)size - got > (1u << 30) ? (1u << 30) : (size_t)size - got;
        int r = unzReadCurrentFile(zf, buf + got, (unsigned)chunk);
        if (r <= 0) {
            unzCloseCurrentFile(zf);
            s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: zip entry %s is truncated or corrupt", path, name);
            goto fail;
        }
        got += (size_t)r;
    }
    if (unzCloseCurrentFile(zf) != UNZ_OK) {
        s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: zip entry %s fails its CRC check", path, name);
        goto fail;
    }
    *out = buf;
    return MCLI_OK;
fail:
    free(buf);
    return s;
}

/* Finds the single "<folder>/data.pkl" entry; sets prefix to "<folder>/". */
static mcli_status find_prefix(unzFile zf, const char *path, char *prefix, size_t cap, mcli_err *err)
{
    size_t n = 0, found = 0;
    prefix[0] = '\0';
    for (int r = unzGoToFirstFile(zf); r == UNZ_OK; r = unzGoToNextFile(zf)) {
        if (++n > ZIP_MAX_ENTRIES)
            return mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: more than %u zip entries", path, ZIP_MAX_ENTRIES);
        unz_file_info64 info;
        char name[ZIP_MAX_NAME];
        if (unzGetCurrentFileInfo64(zf, &info, name, sizeof name, NULL, 0, NULL, 0) != UNZ_OK)
            return mcli_fail(err, MCLI_ERR_FORMAT, "%s: unreadable zip directory entry %zu", path, n);
        if (info.size_filename >= sizeof name)
            continue;
        size_t len = strlen(name);
        const char *slash = strchr(name, '/');
        if (len > 9 && strcmp(name + len - 9, "/data.pkl") == 0 && slash == name + len - 9) {
            if (found++)
                return mcli_fail(err, MCLI_ERR_FORMAT, "%s: more than one data.pkl in the archive", path);
            if (len - 8 >= cap)
                return mcli_fail(err, MCLI_ERR_FORMAT, "%s: archive folder name too long", path);
            memcpy(prefix, name, len - 8);
            prefix[len - 8] = '\0';
        }
    }
    if (!found)
        return mcli_fail(err, MCLI_ERR_FORMAT,
                         "%s: zip archive without <folder>/data.pkl; not a torch.save checkpoint", path);
    return MCLI_OK;
}

mcli_status torch_zip_load(mcli_weights *w, const char *path, mcli_err *err)
{
    const uint8_t *file;
    size_t len;
    unzFile zf = NULL;
    uint8_t *pkl = NULL;
    const tp_storage **order = NULL;
    tp_state_dict sd;
    memset(&sd, 0, sizeof sd);
    char prefix[256], name[ZIP_MAX_NAME];
    mcli_status s = wb_map_file(w, path, &file, &len, err);
    if (s != MCLI_OK)
        return s;
    zf = unzOpen64(path);
    if (!zf) {
        s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: not a readable zip archive (truncated or corrupt download?)",
                      path);
        goto done;
    }
    if ((s = find_prefix(zf, path, prefix, sizeof prefix, err)) != MCLI_OK)
        goto done;
    size_t plen = strlen(prefix);

    /* The pickle. */
    unz_file_info64 info;
    snprintf(name, sizeof name, "%sdata.pkl", prefix);
    if (unzLocateFile(zf, name, 1) != UNZ_OK ||
        unzGetCurrentFileInfo64(zf, &info, NULL, 0, NULL, 0, NULL, 0) != UNZ_OK) {
        s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: cannot locate %s", path, name);
        goto done;
    }
    if ((s = read_entry(zf, path, name, info.uncompressed_size, ZIP_MAX_PKL, &pkl, err)) != MCLI_OK)
        goto done;
    size_t used;
    if ((s = tp_parse_state_dict(pkl, (size_t)info.uncompressed_size, path, &used, &sd, err)) != MCLI_OK)
        goto done;

    /* Byte order, if recorded (torch >= 2.1). */
    snprintf(name, sizeof name, "%sbyteorder", prefix);
    if (unzLocateFile(zf, name, 1) == UNZ_OK &&
        unzGetCurrentFileInfo64(zf, &info, NULL, 0, NULL, 0, NULL, 0) == UNZ_OK) {
        uint8_t *bo = NULL;
        if ((s = read_entry(zf, path, name, info.uncompressed_size, 16, &bo, err)) != MCLI_OK)
            goto done;
        bool little = info.uncompressed_size == 6 && memcmp(bo, "little", 6) == 0;
        free(bo);
        if (!little) {
            s = mcli_fail(err, MCLI_ERR_UNSUPPORTED, "%s: only little-endian checkpoints are supported",
                          path);
            goto done;
        }
    }

    /* One pass over the entries: each <prefix>data/<key> gives its storage's bytes. */
    if ((s = tp_index_storages(&sd, &order, err)) != MCLI_OK)
        goto done;
    for (int r = unzGoToFirstFile(zf); r == UNZ_OK; r = unzGoToNextFile(zf)) {
        if (unzGetCurrentFileInfo64(zf, &info, name, sizeof name, NULL, 0, NULL, 0) != UNZ_OK) {
            s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: unreadable zip directory entry", path);
            goto done;
        }
        if (info.size_filename >= sizeof name || strncmp(name, prefix, plen) != 0 ||
            strncmp(name + plen, "data/", 5) != 0)
            continue;
        const char *key = name + plen + 5;
        long idx = tp_lookup_storage(&sd, order, key);
        if (idx < 0)
            continue; /* a storage no tensor uses */
        tp_storage *st = &sd.storages[idx];
        size_t want;
        if (!wb_mul_ok((size_t)st->numel, wb_dtype_size(st->dt), &want)) {
            s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: storage %s is impossibly large", path, name);
            goto done;
        }
        if (info.compression_method != 0) {
            s = mcli_fail(err, MCLI_ERR_UNSUPPORTED,
                          "%s: entry %s is compressed (method %lu); torch.save stores tensors uncompressed - "
                          "re-save the checkpoint with torch.save",
                          path, name, (unsigned long)info.compression_method);
            goto done;
        }
        if (info.compressed_size != info.uncompressed_size || info.uncompressed_size != (uint64_t)want) {
            s = mcli_fail(err, MCLI_ERR_FORMAT,
                          "%s: entry %s has %llu bytes but its tensors need %zu (corrupt checkpoint)", path,
                          name, (unsigned long long)info.uncompressed_size, want);
            goto done;
        }
        if (st->data) {
            s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: entry %s appears twice", path, name);
            goto done;
        }
        if (unzOpenCurrentFile2(zf, NULL, NULL, 1) != UNZ_OK) {
            s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: cannot open zip entry %s (bad local header?)", path,
                          name);
            goto done;
        }
        ZPOS64_T at = unzGetCurrentFileZStreamPos64(zf);
        unzCloseCurrentFile(zf);
        if (at > len || want > len - at) {
            s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: entry %s lies outside the file (truncated?)", path,
                          name);
            goto done;
        }
        /* Empty storages may sit at the very end; never form a pointer past the mapping. */
        st->data = want ? file + at : file;
    }
    for (size_t i = 0; i < sd.n_storages; i++) {
        if (!sd.storages[i].data) {
            s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: no entry %sdata/%s for a storage the tensors use", path,
                          prefix, sd.storages[i].key);
            goto done;
        }
    }
    s = tp_add_tensors(w, &sd, path, err);
done:
    free(order);
    free(pkl);
    tp_state_dict_free(&sd);
    if (zf)
        unzClose(zf);
    return s;
}
