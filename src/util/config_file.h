/* config_file.h - a small settings file: `key = value` lines or one flat JSON object.
 *
 *   # the model service            {"port": 8000,
 *   port = 8000                     "models_dir": "/srv/models",
 *   models_dir = "/srv/models"      "max_models": 2}
 *
 * Text form: one setting per line; blank lines and lines starting with '#' or ';' are skipped;
 * the value may be double-quoted (then \" and \\ are its only escapes); a key is 1..63 characters
 * of [A-Za-z0-9_.-]. JSON form (the first non-blank byte is '{'): string, number and boolean
 * values, no nesting. A key given twice is an error (it is almost always a mistake). Files are
 * capped at CFG_MAX_BYTES, values at CFG_VALUE_MAX - 1 bytes.
 *
 * Precedence is the caller's business (the service applies file < environment < flags).
 *
 * Ownership: cfg_load fills a caller-owned cfg_file that owns its entries (cfg_free).
 * Thread-safety: plain data.
 */
#ifndef MCLI_UTIL_CONFIG_FILE_H
#define MCLI_UTIL_CONFIG_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/status.h"

#define CFG_MAX_BYTES (64 * 1024)
#define CFG_KEY_MAX 64
#define CFG_VALUE_MAX 4096
#define CFG_MAX_ENTRIES 256

typedef struct {
    char key[CFG_KEY_MAX];
    char value[CFG_VALUE_MAX];
    int line;              /* 1-based line of the setting (JSON: 0) */
} cfg_entry;

typedef struct {
    cfg_entry *items;
    size_t n;
    char path[512];
} cfg_file;

/* Reads and parses path. NOT_FOUND if it does not exist, FORMAT naming the line otherwise. */
mcli_status cfg_load(const char *path, cfg_file *out, mcli_err *err) MCLI_MUST_USE;
/* Parses text (len bytes) as if read from a file named name. */
mcli_status cfg_parse(const char *name, const char *text, size_t len, cfg_file *out, mcli_err *err) MCLI_MUST_USE;
void cfg_free(cfg_file *c);

/* The value of key, or NULL. */
const char *cfg_get(const cfg_file *c, const char *key);

/* Every key must be one of allowed[0..n): INVALID_ARG naming the first unknown one and its line. */
mcli_status cfg_check_keys(const cfg_file *c, const char *const *allowed, size_t n, mcli_err *err) MCLI_MUST_USE;

/* Parses a whole decimal integer in lo..hi (no sign for lo >= 0, no spaces, no trailing bytes).
 * what names the setting in the error. */
mcli_status cfg_parse_int(const char *what, const char *text, long long lo, long long hi, long long *out,
                          mcli_err *err) MCLI_MUST_USE;

#endif
