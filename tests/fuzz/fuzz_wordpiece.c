/* libFuzzer target: BERT WordPiece.
 *   first byte even: the rest is text for the real bert-base-uncased tokenizer (encode with a pair
 *                    split at the first 0xFE byte, truncation, decode, incremental decode);
 *                    invalid UTF-8 must be MCLI_ERR_INVALID_ARG, valid text must encode.
 *   first byte odd:  the rest is a vocab.txt (or, with bit 1 set, a tokenizer.json) loaded from a
 *                    temporary directory, then used on a fixed text.
 * Build (from the repository root) and run:
 *   clang -g -O1 -std=c11 -D_GNU_SOURCE -DMCLI_VERSION=\"fuzz\" -fsanitize=fuzzer,address,undefined -Isrc
 * tests/fuzz/fuzz_wordpiece.c src/tokenizers/[a-z]*.c src/util/*.c $(pkg-config --cflags
 * --libs jansson libutf8proc libpcre2-8) -lm -lpthread -o build-fuzz/fuzz_wordpiece MCLI_SHARED=../shared
 * build-fuzz/fuzz_wordpiece -max_total_time=60 -max_len=4096
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokenizers/tokenizer.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static mcli_tokenizer *bert;
static char tmpdir[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(MCLI_LOG_OFF);
    const char *shared = getenv("MCLI_SHARED");
    char dir[1024], link[1100], target[1100];
    strcpy(tmpdir, "/tmp/fuzz-wp-XXXXXX");
    if (!mkdtemp(tmpdir))
        abort();
    snprintf(dir, sizeof dir, "%s/bert", tmpdir);
    if (mkdir(dir, 0700) != 0)
        abort();
    snprintf(target, sizeof target, "%s/vocab/bert-base-uncased/vocab.txt", shared ? shared : "../shared");
    snprintf(link, sizeof link, "%s/vocab.txt", dir);
    if (symlink(target, link) != 0)
        abort();
    mcli_err err;
    if (tokenizer_load(dir, &bert, &err) != MCLI_OK) {
        fprintf(stderr, "fuzz_wordpiece: %s (set MCLI_SHARED)\n", err.msg);
        abort();
    }
    return 0;
}

static void exercise(const mcli_tokenizer *t, const uint8_t *text, size_t len)
{
    const uint8_t *sep = memchr(text, 0xFE, len);
    size_t alen = sep ? (size_t)(sep - text) : len;
    mcli_tok_opts o = {
        .add_special_tokens = true, .max_length = len % 3 ? 0 : 1 + len % 40, .truncate = true};
    mcli_encoding e;
    mcli_err err;
    mcli_status st = tokenizer_encode(t, (const char *)text, alen, sep ? (const char *)sep + 1 : NULL,
                                      sep ? len - alen - 1 : 0, &o, &e, &err);
    if (st != MCLI_OK)
        return;
    for (size_t i = 0; i < e.n; i++)
        if (e.offsets[2 * i] > e.offsets[2 * i + 1])
            abort();
    char *s;
    if (tokenizer_decode(t, e.ids, e.n, len & 1, &s, &err) == MCLI_OK)
        free(s);
    mcli_detok *d;
    if (detok_new(t, len & 2, &d, &err) == MCLI_OK) {
        const char *piece;
        size_t n;
        for (size_t i = 0; i < e.n; i++)
            if (detok_push(d, e.ids[i], &piece, &n, &err) != MCLI_OK)
                abort();
        if (detok_flush(d, &piece, &n, &err) != MCLI_OK)
            abort();
        detok_free(d);
    }
    encoding_free(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (!(data[0] & 1)) {
        exercise(bert, data + 1, size - 1);
        return 0;
    }
    char dir[128], path[160];
    snprintf(dir, sizeof dir, "%s/x", tmpdir);
    mkdir(dir, 0700);
    const char *name = (data[0] & 2) ? "tokenizer.json" : "vocab.txt";
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    fwrite(data + 1, 1, size - 1, f);
    fclose(f);
    mcli_tokenizer *t = NULL;
    mcli_err err;
    if (tokenizer_load(dir, &t, &err) == MCLI_OK) {
        static const uint8_t probe[] = "Hello [MASK], w\xC3\xB6rld! \xE4\xB8\xAD unaffable\xFE pair text";
        exercise(t, probe, sizeof probe - 1);
        tokenizer_free(t);
    }
    unlink(path);
    return 0;
}
