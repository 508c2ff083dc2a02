/* catalog.h - the catalog of lightweight models: data/catalog.json plus a user file.
 *
 * Sources, later ones replacing earlier entries with the same key and adding new ones:
 *   1. <data dir>/catalog.json, the data dir being the first that has a catalog.json of:
 *      $MCLI_DATA_DIR, <exe dir>/../share/mcli, the dir given to hub_catalog_set_data_dir()
 *      (the mcli binary passes the compile-time MCLI_DATA_DIR = <source>/data), <exe dir>/data;
 *   2. $XDG_CONFIG_HOME/mcli/catalog.json, else ~/.config/mcli/catalog.json (optional).
 * File format (docs/HUB.md has the field reference):
 *   {"format": 1, "models": [{"key": "prajjwal1/bert-tiny", "repo": ..., "name": ..., ...}, ...]}
 * An entry whose key is not a published repository has "repo" (the real one) and "alias_note".
 * A bundled entry has "bundled": true and "path" (relative to the catalog file's directory).
 *
 * Ownership: a hub_catalog owns all its entries and strings; pointers returned by
 * hub_catalog_at/find live until hub_catalog_free. Thread-safety: immutable after load;
 * hub_catalog_set_data_dir() is meant to be called once at start-up, before threads.
 */
#ifndef MCLI_HUB_CATALOG_H
#define MCLI_HUB_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

typedef struct {
    char *key;           /* what users type (the original tool's key) */
    char *repo;          /* the repository fetched (== key unless an alias) */
    char *revision;      /* default "main" */
    char *name;          /* display name */
    char *description;
    char *parameters;    /* "4.4M" as displayed */
    char *type;          /* "text-classification", "text-generation", "feature-extraction", "fill-mask" */
    char *architecture;  /* "bert", "distilbert", "gpt2" */
    char *alias_note;    /* why key != repo; NULL if not an alias */
    char *path;          /* bundled models: absolute-or-relative-to-cwd directory; else NULL */
    char **tags;
    size_t n_tags;
    double size_mb, efficiency_score, accuracy_score;
    int layers, hidden, heads, intermediate, context, vocab;
    int64_t auto_min_ram_mb;  /* --auto tier (see sys/recommend.h); -1 = not an --auto candidate */
    bool bundled;
    bool from_user_file;      /* came from the user's catalog file */
} hub_entry;

typedef struct hub_catalog hub_catalog;

/* Sets the compile-time data directory fallback (copied). NULL clears it. */
void hub_catalog_set_data_dir(const char *dir);

/* Finds the data dir (see above) into out. NOT_FOUND with the list of places tried. */
mcli_status hub_catalog_data_dir(char *out, size_t cap, mcli_err *err) MCLI_MUST_USE;

/* Loads the system catalog and the user's file. Caller frees *out with hub_catalog_free. */
mcli_status hub_catalog_open_default(hub_catalog **out, mcli_err *err) MCLI_MUST_USE;

/* Loads paths[0..n) in order (later override earlier). A missing file among paths[1..] is skipped;
 * a missing paths[0] is NOT_FOUND; a malformed file is FORMAT with the file name and the problem. */
mcli_status hub_catalog_load(const char *const *paths, size_t n, hub_catalog **out, mcli_err *err) MCLI_MUST_USE;

void hub_catalog_free(hub_catalog *cat);
size_t hub_catalog_count(const hub_catalog *cat);
const hub_entry *hub_catalog_at(const hub_catalog *cat, size_t i);

/* By key, then by repo (so "sshleifer/tiny-distilbert-base-uncased-finetuned-sst-2-english" finds
 * the alias entry), then case-insensitively by key. NULL if absent. */
const hub_entry *hub_catalog_find(const hub_catalog *cat, const char *key_or_repo);

/* The catalog file paths actually loaded (for messages), "a, b". */
const char *hub_catalog_sources(const hub_catalog *cat);

#endif
