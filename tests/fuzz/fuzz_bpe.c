/* libFuzzer target: GPT-2 byte-level BPE.
 *   first byte % 3 == 0: the rest is text for the real GPT-2 tokenizer; valid UTF-8 must encode
 *                        and decode back to exactly the same bytes (the round-trip oracle), and
 *                        incremental decoding must add up to the same bytes.
 *   first byte % 3 == 1: the rest is a merges.txt over a small byte-level vocab.json.
 *   first byte % 3 == 2: the rest is a tokenizer.json.
 * Build (from the repository root) and run:
 *   clang -g -O1 -std=c11 -D_GNU_SOURCE -DMCLI_VERSION=\"fuzz\" -fsanitize=fuzzer,address,undefined -Isrc
 * tests/fuzz/fuzz_bpe.c src/tokenizers/[a-z]*.c src/util/*.c $(pkg-config --cflags --libs
 * jansson libutf8proc libpcre2-8) -lm -lpthread -o build-fuzz/fuzz_bpe MCLI_SHARED=../shared
 * build-fuzz/fuzz_bpe -max_total_time=60 -max_len=4096
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokenizers/bpe.h"
#include "tokenizers/tokenizer.h"
#include "tokenizers/unicode.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static mcli_tokenizer *gpt;
static char tmpdir[64];

static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    fwrite(p, 1, n, f);
    fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(MCLI_LOG_OFF);
    const char *shared = getenv("MCLI_SHARED");
    char dir[256], link[300], target[1100];
    strcpy(tmpdir, "/tmp/fuzz-bpe-XXXXXX");
    if (!mkdtemp(tmpdir))
        abort();
    snprintf(dir, sizeof dir, "%s/gpt2", tmpdir);
    if (mkdir(dir, 0700) != 0)
        abort();
    static const char *const files[] = {"vocab.json", "merges.txt"};
    for (int i = 0; i < 2; i++) {
        snprintf(target, sizeof target, "%s/vocab/gpt2/%s", shared ? shared : "../shared", files[i]);
        snprintf(link, sizeof link, "%s/%s", dir, files[i]);
        if (symlink(target, link) != 0)
            abort();
    }
    mcli_err err;
    if (tokenizer_load(dir, &gpt, &err) != MCLI_OK) {
        fprintf(stderr, "fuzz_bpe: %s (set MCLI_SHARED)\n", err.msg);
        abort();
    }
    /* the small vocabulary: the 256 byte symbols, "Ġt", "he", "Ġthe", "<|endoftext|>" */
    snprintf(dir, sizeof dir, "%s/small", tmpdir);
    if (mkdir(dir, 0700) != 0)
        abort();
    char *json = malloc(16384);
    size_t n = 0;
    n += (size_t)snprintf(json + n, 16384 - n, "{");
    for (int b = 0; b < 256; b++) {
        uint8_t u[4];
        size_t k = uni_utf8_encode(bpe_byte_char((uint8_t)b), u);
        n += (size_t)snprintf(json + n, 16384 - n, "%s\"%s%.*s\": %d", b ? "," : "",
                              (b == '"' || b == '\\') ? "\\" : "", (int)k, (const char *)u, b);
    }
    n += (size_t)snprintf(json + n, 16384 - n,
                          ",\"Ġt\": 256, \"he\": 257, \"Ġthe\": 258, \"<|endoftext|>\": 259}");
    write_file(dir, "vocab.json", json, n);
    free(json);
    return 0;
}

static void roundtrip(const mcli_tokenizer *t, const uint8_t *text, size_t len, bool oracle)
{
    mcli_tok_opts o = {0};
    mcli_encoding e;
    mcli_err err;
    mcli_status st = tokenizer_encode(t, (const char *)text, len, NULL, 0, &o, &e, &err);
    bool valid = uni_utf8_valid(text, len, NULL);
    if (st != MCLI_OK) {
        if (valid && oracle)
            abort(); /* valid text must encode */
        return;
    }
    if (!valid)
        abort(); /* invalid UTF-8 must be refused */
    char *s;
    size_t sl;
    if (tokenizer_decode_len(t, e.ids, e.n, false, &s, &sl, &err) != MCLI_OK)
        abort();
    if (oracle && (sl != len || memcmp(s, text, len) != 0))
        abort(); /* byte-exact round trip */
    mcli_detok *d;
    if (detok_new(t, false, &d, &err) != MCLI_OK)
        abort();
    size_t acc = 0;
    const char *piece;
    size_t n;
    for (size_t i = 0; i < e.n; i++) {
        if (detok_push(d, e.ids[i], &piece, &n, &err) != MCLI_OK)
            abort();
        if (oracle && (acc + n > sl || memcmp(s + acc, piece, n) != 0))
            abort();
        acc += n;
    }
    if (detok_flush(d, &piece, &n, &err) != MCLI_OK)
        abort();
    acc += n;
    if (oracle && acc != sl)
        abort();
    detok_free(d);
    free(s);
    encoding_free(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int mode = data[0] % 3;
    if (mode == 0) {
        roundtrip(gpt, data + 1, size - 1, true);
        return 0;
    }
    char dir[128];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, mode == 1 ? "small" : "json");
    mkdir(dir, 0700);
    write_file(dir, mode == 1 ? "merges.txt" : "tokenizer.json", data + 1, size - 1);
    mcli_tokenizer *t = NULL;
    mcli_err err;
    if (tokenizer_load(dir, &t, &err) == MCLI_OK) {
        static const uint8_t probe[] = "the other <|endoftext|> th\xC3\xA9 \xF0\x9F\x98\x80  x";
        roundtrip(t, probe, sizeof probe - 1, false);
        tokenizer_free(t);
    }
    return 0;
}
