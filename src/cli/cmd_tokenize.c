/* cmd_tokenize.c - the tokenize command: encode a text (or decode ids) with a model's tokenizer.
 *
 * NAME      mcli tokenize
 * SYNOPSIS  mcli tokenize --model DIR [--json] [--pair TEXT] [--no-special] [--max-length N] TEXT
 *           mcli tokenize --model DIR --decode [--skip-special] IDS
 * OUTPUT    --json: {"ids":[...],"tokens":[...],"offsets":[[start,end],...],"type_ids":[...],
 *           "truncated":false}; offsets are code point offsets into TEXT (or into the pair text
 *           for tokens with type id 1), [0,0] for [CLS]/[SEP]. Text mode: one token per line,
 *           "id<TAB>token<TAB>start-end".
 *           --decode: the decoded text and a newline (--json: {"text": "..."}).
 * ERRORS    invalid UTF-8 text -> exit 2; missing/bad tokenizer files -> exit 1.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "tokenizers/tokenizer.h"

#define STDIN_MAX_BYTES (64u << 20)
#define DECODE_MAX_IDS (1u << 24)

const char usage_tokenize[] =
    "Usage: mcli tokenize --model DIR [--json] [--pair TEXT] [--no-special] [--max-length N] TEXT\n"
    "       mcli tokenize --model DIR --decode [--skip-special] [--json] IDS\n"
    "\n"
    "Tokenizes TEXT with the tokenizer of the model directory DIR (tokenizer.json, or vocab.txt,\n"
    "or vocab.json + merges.txt, with tokenizer_config.json). TEXT '-' reads standard input.\n"
    "\n"
    "  --json            print "
    "{\"ids\":[..],\"tokens\":[..],\"offsets\":[[start,end],..],\"type_ids\":[..]}\n"
    "                    (offsets: code point offsets into the input; [0,0] for [CLS]/[SEP])\n"
    "  --pair TEXT       a second text (BERT: [CLS] TEXT [SEP] PAIR [SEP], type ids 0 then 1)\n"
    "  --no-special      do not add [CLS]/[SEP]\n"
    "  --max-length N    truncate to N tokens (longest text first for pairs)\n"
    "  --decode          IDS is a list of token ids (\"101,7592,102\" or \"101 7592 102\"): print the text\n"
    "  --skip-special    with --decode: leave special tokens out\n"
    "\n"
    "Text output is one token per line: id, token and start-end, separated by tabs.\n"
    "Example: mcli tokenize --model models/bert-base-uncased --json \"Hello, world!\"\n";

static int fail(const char *what, const mcli_err *err)
{
    fprintf(stderr, "mcli tokenize: %s%s%s\n", what ? what : "", what ? ": " : "", err->msg);
    return mcli_status_exit(err->code);
}

static char *read_stdin(size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    for (;;) {
        if (n == cap) {
            if (cap >= STDIN_MAX_BYTES) {
                free(buf);
                return NULL;
            }
            char *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                return NULL;
            }
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0)
            break;
    }
    *len = n;
    return buf;
}

static bool parse_size(const char *s, size_t *out)
{
    if (!s || !*s || *s == '-')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > (1ull << 30))
        return false;
    *out = (size_t)v;
    return true;
}

/* "101,7592 102" -> ids; false on anything but decimal numbers and separators. */
static bool parse_ids(const char *s, int32_t **ids, size_t *n)
{
    size_t cap = 16, k = 0;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v)
        return false;
    while (*s) {
        if (*s == ',' || *s == ' ' || *s == '\t' || *s == '\n' || *s == '[' || *s == ']') {
            s++;
            continue;
        }
        if (*s < '0' || *s > '9')
            goto bad;
        long long x = 0;
        while (*s >= '0' && *s <= '9') {
            x = x * 10 + (*s++ - '0');
            if (x > INT32_MAX)
                goto bad;
        }
        if (k == cap) {
            if (cap >= DECODE_MAX_IDS)
                goto bad;
            int32_t *p = realloc(v, 2 * cap * sizeof *p);
            if (!p)
                goto bad;
            v = p;
            cap *= 2;
        }
        v[k++] = (int32_t)x;
    }
    *ids = v;
    *n = k;
    return true;
bad:
    free(v);
    return false;
}

static int print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!s) {
        fprintf(stderr, "mcli tokenize: out of memory\n");
        return 1;
    }
    puts(s);
    free(s);
    return 0;
}

static int do_decode(const mcli_tokenizer *t, const char *text, bool skip_special, bool as_json)
{
    int32_t *ids;
    size_t n;
    if (!parse_ids(text, &ids, &n))
        return cli_usage_error("tokenize", "--decode expects token ids such as \"101,7592,102\"");
    char *out;
    size_t out_len;
    mcli_err err;
    mcli_status st = tokenizer_decode_len(t, ids, n, skip_special, &out, &out_len, &err);
    free(ids);
    if (st != MCLI_OK)
        return fail("decode", &err);
    int rc = 0;
    if (as_json) {
        /* the text may hold NUL bytes (GPT-2 round-trips them): keep its length */
        rc = print_json(json_pack("{s:s%}", "text", out, out_len));
    } else {
        fwrite(out, 1, out_len, stdout);
        putchar('\n');
    }
    free(out);
    return rc;
}

static int print_encoding(const mcli_tokenizer *t, const mcli_encoding *e, bool as_json)
{
    if (!as_json) {
        for (size_t i = 0; i < e->n; i++) {
            const char *tok = tokenizer_id_to_token(t, e->ids[i]);
            printf("%ld\t%s\t%ld-%ld\n", (long)e->ids[i], tok ? tok : "", (long)e->offsets[2 * i],
                   (long)e->offsets[2 * i + 1]);
        }
        return 0;
    }
    json_t *ids = json_array(), *toks = json_array(), *offs = json_array(), *types = json_array();
    json_t *root = json_object();
    if (!ids || !toks || !offs || !types || !root)
        goto nomem;
    for (size_t i = 0; i < e->n; i++) {
        const char *tok = tokenizer_id_to_token(t, e->ids[i]);
        if (json_array_append_new(ids, json_integer(e->ids[i])) ||
            json_array_append_new(toks, json_string(tok ? tok : "")) ||
            json_array_append_new(offs,
                                  json_pack("[ii]", (int)e->offsets[2 * i], (int)e->offsets[2 * i + 1])) ||
            json_array_append_new(types, json_integer(e->type_ids[i])))
            goto nomem;
    }
    if (json_object_set_new(root, "ids", ids) || json_object_set_new(root, "tokens", toks) ||
        json_object_set_new(root, "offsets", offs) || json_object_set_new(root, "type_ids", types)) {
        ids = toks = offs = types = NULL;
        goto nomem;
    }
    json_object_set_new(root, "truncated", json_boolean(e->truncated));
    return print_json(root);
nomem:
    json_decref(ids);
    json_decref(toks);
    json_decref(offs);
    json_decref(types);
    json_decref(root);
    fprintf(stderr, "mcli tokenize: out of memory\n");
    return 1;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *text = NULL, *pair = NULL;
    bool as_json = false, no_special = false, decode = false, skip_special = false;
    size_t max_length = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--model") || !strcmp(a, "--pair") || !strcmp(a, "--max-length")) {
            if (i + 1 >= argc)
                return cli_usage_error("tokenize", "%s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--model"))
                model = v;
            else if (!strcmp(a, "--pair"))
                pair = v;
            else if (!parse_size(v, &max_length) || max_length == 0)
                return cli_usage_error("tokenize", "--max-length expects a positive number, got '%s'", v);
        } else if (!strcmp(a, "--json")) {
            as_json = true;
        } else if (!strcmp(a, "--no-special")) {
            no_special = true;
        } else if (!strcmp(a, "--decode")) {
            decode = true;
        } else if (!strcmp(a, "--skip-special")) {
            skip_special = true;
        } else if (!strcmp(a, "--")) {
            if (i + 1 < argc && !text)
                text = argv[++i];
            if (i + 1 < argc)
                return cli_usage_error("tokenize", "only one TEXT argument is accepted");
        } else if (a[0] == '-' && a[1] != '\0') {
            return cli_usage_error("tokenize", "unknown option '%s'", a);
        } else if (!text) {
            text = a;
        } else {
            return cli_usage_error("tokenize", "only one TEXT argument is accepted (quote it)");
        }
    }
    if (!model)
        return cli_usage_error("tokenize", "--model DIR is required");
    if (!text)
        return cli_usage_error("tokenize", "missing TEXT (or '-' for standard input)");

    mcli_err err;
    mcli_err_clear(&err);
    mcli_tokenizer *t = NULL;
    if (tokenizer_load(model, &t, &err) != MCLI_OK)
        return fail(NULL, &err);

    int rc;
    char *in = NULL;
    size_t len = strlen(text);
    if (!strcmp(text, "-")) {
        in = read_stdin(&len);
        if (!in) {
            fprintf(stderr, "mcli tokenize: cannot read standard input (over %u bytes?)\n", STDIN_MAX_BYTES);
            tokenizer_free(t);
            return 1;
        }
        text = in;
    }
    if (decode) {
        char *z = in ? strndup(in, len) : NULL;
        rc = do_decode(t, z ? z : text, skip_special, as_json);
        free(z);
    } else {
        mcli_tok_opts opts = {.add_special_tokens = !no_special, .max_length = max_length, .truncate = true};
        mcli_encoding e;
        if (tokenizer_encode(t, text, len, pair, pair ? strlen(pair) : 0, &opts, &e, &err) != MCLI_OK) {
            rc = fail(NULL, &err);
        } else {
            rc = print_encoding(t, &e, as_json);
            encoding_free(&e);
        }
    }
    free(in);
    tokenizer_free(t);
    return rc;
}
