/* tok_testlib.h - helpers for the tokenizer unit tests: temporary model directories that point at
 * the shared vocabularies (never copied into the repo), and small file writers.
 * Header-only (static functions); include after cmocka.h. */
#ifndef MCLI_TESTS_TOK_TESTLIB_H
#define MCLI_TESTS_TOK_TESTLIB_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokenizers/tokenizer.h"

#define BERT_VOCAB MCLI_SHARED "/vocab/bert-base-uncased/vocab.txt"
#define GPT2_VOCAB MCLI_SHARED "/vocab/gpt2/vocab.json"
#define GPT2_MERGES MCLI_SHARED "/vocab/gpt2/merges.txt"

/* Creates an empty temporary directory; returns a malloc'd path. */
static inline char *tt_tmpdir(void)
{
    char tmpl[] = "/tmp/mcli-toktest-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static inline void tt_write(const char *dir, const char *name, const void *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static inline void tt_write_str(const char *dir, const char *name, const char *s)
{
    tt_write(dir, name, s, strlen(s));
}

static inline void tt_link(const char *dir, const char *name, const char *target)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(symlink(target, path), 0);
}

/* Removes every file in dir, then dir (flat directories only). Frees dir. */
static inline void tt_rmdir(char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[1024];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

/* A bert-base-uncased model directory (vocab.txt + tokenizer_config.json). */
static inline char *tt_bert_dir(const char *config_json)
{
    char *dir = tt_tmpdir();
    tt_link(dir, "vocab.txt", BERT_VOCAB);
    tt_write_str(dir, "tokenizer_config.json",
                 config_json ? config_json : "{\"do_lower_case\": true, \"model_max_length\": 512}");
    return dir;
}

/* A gpt2 model directory (vocab.json + merges.txt + tokenizer_config.json). */
static inline char *tt_gpt2_dir(void)
{
    char *dir = tt_tmpdir();
    tt_link(dir, "vocab.json", GPT2_VOCAB);
    tt_link(dir, "merges.txt", GPT2_MERGES);
    tt_write_str(dir, "tokenizer_config.json", "{\"model_max_length\": 1024}");
    return dir;
}

static inline mcli_tokenizer *tt_load(const char *dir)
{
    mcli_tokenizer *t = NULL;
    mcli_err err;
    mcli_err_clear(&err);
    mcli_status st = tokenizer_load(dir, &t, &err);
    if (st != MCLI_OK)
        fail_msg("tokenizer_load(%s): %s", dir, err.msg);
    return t;
}

/* Encodes text (NUL-terminated) without special tokens unless asked. */
static inline mcli_encoding tt_encode(const mcli_tokenizer *t, const char *text, bool specials)
{
    mcli_encoding e;
    mcli_err err;
    mcli_tok_opts o = {.add_special_tokens = specials};
    if (tokenizer_encode(t, text, strlen(text), NULL, 0, &o, &e, &err) != MCLI_OK)
        fail_msg("encode(\"%s\"): %s", text, err.msg);
    return e;
}

/* Token strings of an encoding joined by '|', e.g. "hello|,|world" (static buffer). */
static inline const char *tt_tokens(const mcli_tokenizer *t, const mcli_encoding *e)
{
    static char buf[8192];
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < e->n; i++) {
        const char *s = tokenizer_id_to_token(t, e->ids[i]);
        int k = snprintf(buf + n, sizeof buf - n, "%s%s", i ? "|" : "", s ? s : "<null>");
        if (k < 0 || (size_t)k >= sizeof buf - n)
            break;
        n += (size_t)k;
    }
    return buf;
}

/* Offsets of an encoding as "s-e s-e ..." (static buffer). */
static inline const char *tt_offsets(const mcli_encoding *e)
{
    static char buf[8192];
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < e->n; i++) {
        int k = snprintf(buf + n, sizeof buf - n, "%s%d-%d", i ? " " : "", (int)e->offsets[2 * i],
                         (int)e->offsets[2 * i + 1]);
        if (k < 0 || (size_t)k >= sizeof buf - n)
            break;
        n += (size_t)k;
    }
    return buf;
}

#endif
