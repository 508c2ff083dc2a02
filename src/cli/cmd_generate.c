/* cmd_generate.c - decoder commands: generate and chat.
 *
 * NAME      mcli generate
 * SYNOPSIS  mcli generate --model DIR [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P]
 *                         [--min-p P] [--repetition-penalty R] [--seed S] [--greedy] [--stop STR]...
 *                         [--ignore-eos] [--threads N] [--stream] [--json] PROMPT...
 * OUTPUT    --json: {"text":..,"token_ids":[..],"finish_reason":"stop|length","prompt_tokens":N,
 *           "prompt_ms":..,"gen_ms":..} (prompt pass and generation wall time)
 *           (with --stream, first one {"token_id":..,"text":..} line per token).
 *           Text: the generated text (pieces printed as they come with --stream), then a newline.
 * DEFAULTS  50 new tokens, sampling at temperature 1.0 with seed 0 (reproducible); --greedy (or
 *           --temperature 0) picks the most likely token. Several PROMPT words are joined with
 *           spaces; PROMPT "-" reads the prompt from stdin. An empty prompt starts from EOS.
 *
 * NAME      mcli chat
 * SYNOPSIS  mcli chat --model DIR [--max-new-tokens N] [sampling options as above] [--threads N]
 * BEHAVIOUR Reads one user turn per line from stdin (prompt "> " only when stdin is a terminal),
 *           prints the reply as it is generated, one line per reply; Ctrl-D (end of input) ends.
 *           Turns are joined DialoGPT-style with the EOS token; the oldest turns are dropped when
 *           the conversation no longer fits the context window.
 *
 * ERRORS    usage errors -> exit 2; a model that cannot generate, a prompt that does not fit the
 *           context -> exit 1 with the reason on stderr.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "engine/engine.h"

#define GEN_MAX_STOP_ARGS 16
#define CHAT_MAX_LINE (64 * 1024)
#define CHAT_MAX_TURNS 256

const char usage_generate[] =
    "Usage: mcli generate --model DIR [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] "
    "[--greedy] [--stream] [--json] PROMPT\n"
    "\n"
    "Options:\n"
    "  --model DIR              a GPT-2 family model directory (gpt2, distilgpt2, DialoGPT)\n"
    "  --max-new-tokens N       tokens to generate at most (default 50)\n"
    "  --greedy                 always pick the most likely token (same as --temperature 0)\n"
    "  --temperature T          sampling temperature (default 1.0)\n"
    "  --top-k K                sample among the K most likely tokens (0 = off)\n"
    "  --top-p P                nucleus sampling: smallest set of mass >= P (1 = off)\n"
    "  --min-p P                drop tokens below P x the top probability (0 = off)\n"
    "  --repetition-penalty R   CTRL-style penalty on tokens already seen (1 = off)\n"
    "  --seed S                 random seed (default 0): the same seed gives the same text\n"
    "  --stop STR               stop when the text contains STR (repeatable; STR is not printed)\n"
    "  --ignore-eos             keep going after the end-of-text token\n"
    "  --threads N              compute threads (default: the CPUs available)\n"
    "  --stream                 print text as it is generated\n"
    "  --json                   print {\"text\",\"token_ids\",\"finish_reason\",\"prompt_tokens\"}\n"
    "\n"
    "PROMPT words are joined with spaces; \"-\" reads the prompt from stdin.\n"
    "Example: mcli generate --model models/gpt2 --greedy --max-new-tokens 20 \"Hello, my name is\"\n";

const char usage_chat[] =
    "Usage: mcli chat --model DIR [--max-new-tokens N] [--greedy] [--temperature T] [--top-k K] [--top-p P] "
    "[--seed S] [--threads N]\n"
    "\n"
    "Interactive multi-turn chat with a DialoGPT-style model: type a line, get a reply; Ctrl-D ends.\n"
    "Turns are joined with the end-of-text token and the oldest are dropped to fit the context.\n"
    "Reads piped stdin too (one turn per line). Sampling options as for `mcli generate`\n"
    "(default here: 64 new tokens per reply).\n";

typedef struct {
    const char *cmd;
    const char *model;
    mcli_gen_params p;
    const char *stop[GEN_MAX_STOP_ARGS];
    int threads;
    bool stream, json;
    int first_pos; /* index of the first positional argument, argc if none */
} gen_args;

static bool parse_int(const char *s, long lo, long hi, int *out)
{
    if (!s || !*s)
        return false;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static bool parse_float(const char *s, float lo, float hi, float *out)
{
    if (!s || !*s)
        return false;
    char *end = NULL;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || *end || !isfinite(v) || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = (uint64_t)v;
    return true;
}

/* Returns -1 on success, else the exit code of a usage error. */
static int parse_args(int argc, char **argv, gen_args *a, bool positional_ok)
{
    a->cmd = argv[0];
    a->first_pos = argc;
    int i = 1;
    for (; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--") == 0) {
            i++;
            break;
        }
        if (strncmp(o, "--", 2) != 0 || strlen(o) == 2)
            break;
        if (strcmp(o, "--greedy") == 0) {
            a->p.greedy = true;
            continue;
        }
        if (strcmp(o, "--stream") == 0) {
            a->stream = true;
            continue;
        }
        if (strcmp(o, "--json") == 0) {
            a->json = true;
            continue;
        }
        if (strcmp(o, "--ignore-eos") == 0) {
            a->p.ignore_eos = true;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return cli_usage_error(a->cmd, "%s needs a value", o);
        bool ok = true;
        if (strcmp(o, "--model") == 0)
            a->model = v;
        else if (strcmp(o, "--max-new-tokens") == 0)
            ok = parse_int(v, 0, 1 << 20, &a->p.max_new_tokens);
        else if (strcmp(o, "--temperature") == 0)
            ok = parse_float(v, 0.0f, 100.0f, &a->p.temperature);
        else if (strcmp(o, "--top-k") == 0)
            ok = parse_int(v, 0, 1 << 24, &a->p.top_k);
        else if (strcmp(o, "--top-p") == 0)
            ok = parse_float(v, 1e-6f, 1.0f, &a->p.top_p);
        else if (strcmp(o, "--min-p") == 0)
            ok = parse_float(v, 0.0f, 1.0f, &a->p.min_p);
        else if (strcmp(o, "--repetition-penalty") == 0)
            ok = parse_float(v, 1e-3f, 1000.0f, &a->p.repetition_penalty);
        else if (strcmp(o, "--seed") == 0)
            ok = parse_u64(v, &a->p.seed);
        else if (strcmp(o, "--threads") == 0)
            ok = parse_int(v, 1, 1024, &a->threads);
        else if (strcmp(o, "--stop") == 0) {
            if (a->p.n_stop >= GEN_MAX_STOP_ARGS)
                return cli_usage_error(a->cmd, "at most %d --stop strings", GEN_MAX_STOP_ARGS);
            if (!*v)
                return cli_usage_error(a->cmd, "--stop needs a non-empty string");
            a->stop[a->p.n_stop++] = v;
        } else
            return cli_usage_error(a->cmd, "unknown option %s", o);
        if (!ok)
            return cli_usage_error(a->cmd, "invalid value for %s: '%s'", o, v);
        i++;
    }
    a->first_pos = i;
    a->p.stop = a->stop;
    if (!a->model)
        return cli_usage_error(a->cmd, "--model DIR is required");
    if (!positional_ok && i < argc)
        return cli_usage_error(a->cmd, "unexpected argument '%s'", argv[i]);
    return -1;
}

static int fail_exit(const char *cmd, const mcli_err *err)
{
    fprintf(stderr, "mcli %s: %s\n", cmd, err->msg);
    return mcli_status_exit(err->code);
}

/* Reads all of stdin (capped) into a malloc'ed string. */
static char *read_stdin(size_t cap)
{
    size_t n = 0, sz = 4096;
    char *buf = malloc(sz);
    if (!buf)
        return NULL;
    for (;;) {
        if (n + 1 >= sz) {
            if (sz >= cap) {
                free(buf);
                return NULL;
            }
            sz *= 2;
            char *t = realloc(buf, sz);
            if (!t) {
                free(buf);
                return NULL;
            }
            buf = t;
        }
        size_t got = fread(buf + n, 1, sz - n - 1, stdin);
        n += got;
        if (got == 0)
            break;
    }
    buf[n] = '\0';
    return buf;
}

typedef struct {
    bool json;
} stream_ctx;

static int stream_cb(void *user, int32_t id, const char *piece, size_t len)
{
    const stream_ctx *c = user;
    if (c->json) {
        json_t *o = json_pack("{s:I,s:s%}", "token_id", (json_int_t)id, "text", piece, len);
        if (o) {
            char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
            if (s)
                printf("%s\n", s);
            free(s);
            json_decref(o);
        }
    } else if (len > 0) {
        fwrite(piece, 1, len, stdout);
    }
    fflush(stdout);
    return 0;
}

/* Tokenizes text (no special tokens); an empty result becomes [EOS] (GPT-2's start token). */
static mcli_status encode_prompt(const mcli_model *m, const char *text, int32_t **ids, size_t *n, mcli_err *err)
{
    mcli_encoding enc;
    memset(&enc, 0, sizeof enc);
    const mcli_tok_opts opts = {.add_special_tokens = false, .max_length = 0, .truncate = false};
    mcli_status st = tokenizer_encode(engine_tokenizer(m), text, strlen(text), NULL, 0, &opts, &enc, err);
    if (st != MCLI_OK)
        return st;
    *ids = malloc((enc.n + 1) * sizeof **ids);
    if (!*ids) {
        encoding_free(&enc);
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory");
    }
    memcpy(*ids, enc.ids, enc.n * sizeof **ids);
    *n = enc.n;
    encoding_free(&enc);
    if (*n == 0) {
        const int32_t eos = engine_info(m)->config->eos_token_id >= 0 ? engine_info(m)->config->eos_token_id
                                                                     : tokenizer_special(engine_tokenizer(m))->eos;
        if (eos < 0) {
            free(*ids);
            *ids = NULL;
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "empty prompt and the model has no start/EOS token");
        }
        (*ids)[0] = eos;
        *n = 1;
    }
    return MCLI_OK;
}

static char *join_args(int argc, char **argv, int from)
{
    size_t len = 1;
    for (int i = from; i < argc; i++)
        len += strlen(argv[i]) + 1;
    char *s = malloc(len);
    if (!s)
        return NULL;
    size_t k = 0;
    for (int i = from; i < argc; i++) {
        size_t l = strlen(argv[i]);
        if (i > from)
            s[k++] = ' ';
        memcpy(s + k, argv[i], l);
        k += l;
    }
    s[k] = '\0';
    return s;
}

int cmd_generate(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        cli_print_command_help("generate", stdout);
        return 0;
    }
    gen_args a;
    memset(&a, 0, sizeof a);
    engine_gen_params_default(&a.p);
    int rc = parse_args(argc, argv, &a, true);
    if (rc >= 0)
        return rc;
    if (a.first_pos >= argc)
        return cli_usage_error(a.cmd, "PROMPT is required");
    char *prompt = NULL;
    if (a.first_pos == argc - 1 && strcmp(argv[a.first_pos], "-") == 0)
        prompt = read_stdin((size_t)16 << 20);
    else
        prompt = join_args(argc, argv, a.first_pos);
    if (!prompt) {
        fprintf(stderr, "mcli generate: cannot read the prompt (out of memory or over 16 MiB)\n");
        return 1;
    }

    mcli_err err;
    mcli_err_clear(&err);
    mcli_model *m = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    mcli_gen_result res;
    memset(&res, 0, sizeof res);
    const mcli_engine_opts eo = {.n_threads = a.threads};
    rc = 0;
    if (engine_load(a.model, &eo, &m, &err) != MCLI_OK || encode_prompt(m, prompt, &ids, &n, &err) != MCLI_OK) {
        rc = fail_exit(a.cmd, &err);
        goto done;
    }
    stream_ctx sc = {.json = a.json};
    if (engine_generate(m, ids, n, &a.p, a.stream ? stream_cb : NULL, &sc, &res, &err) != MCLI_OK) {
        if (a.stream && !a.json)
            fputc('\n', stdout);
        rc = fail_exit(a.cmd, &err);
        goto done;
    }
    if (a.json) {
        json_t *tok = json_array();
        for (size_t i = 0; i < res.n; i++)
            json_array_append_new(tok, json_integer(res.ids[i]));
        json_t *o = json_pack("{s:s,s:o,s:s,s:I,s:f,s:f}", "text", res.text ? res.text : "", "token_ids", tok,
                              "finish_reason", res.finish_reason, "prompt_tokens", (json_int_t)res.n_prompt,
                              "prompt_ms", res.prompt_ms, "gen_ms", res.gen_ms);
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        if (!s) {
            fprintf(stderr, "mcli generate: cannot format the result as JSON (invalid UTF-8 in the text?)\n");
            rc = 1;
        } else {
            printf("%s\n", s);
        }
        free(s);
        json_decref(o);
    } else if (a.stream) {
        fputc('\n', stdout);
    } else {
        printf("%s\n", res.text ? res.text : "");
    }
done:
    gen_result_free(&res);
    free(ids);
    free(prompt);
    engine_free(m);
    return rc;
}

/* ---- chat ---- */
static int chat_print_cb(void *user, int32_t id, const char *piece, size_t len)
{
    (void)user;
    (void)id;
    if (len > 0) {
        fwrite(piece, 1, len, stdout);
        fflush(stdout);
    }
    return 0;
}

int cmd_chat(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        cli_print_command_help("chat", stdout);
        return 0;
    }
    gen_args a;
    memset(&a, 0, sizeof a);
    engine_gen_params_default(&a.p);
    a.p.max_new_tokens = 64;
    int rc = parse_args(argc, argv, &a, false);
    if (rc >= 0)
        return rc;
    mcli_err err;
    mcli_err_clear(&err);
    mcli_model *m = NULL;
    char *turns[CHAT_MAX_TURNS];
    size_t n_turns = 0;
    char *line = NULL;
    size_t line_cap = 0;
    const mcli_engine_opts eo = {.n_threads = a.threads};
    if (engine_load(a.model, &eo, &m, &err) != MCLI_OK)
        return fail_exit(a.cmd, &err);
    if (!(engine_info(m)->tasks & MCLI_TASK_GENERATE)) {
        fprintf(stderr, "mcli chat: %s cannot generate text (chat needs a GPT-2 family decoder)\n", a.model);
        engine_free(m);
        return 1;
    }
    const bool tty = isatty(STDIN_FILENO);
    rc = 0;
    for (;;) {
        if (tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        ssize_t got = getline(&line, &line_cap, stdin);
        if (got < 0)
            break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        if (got == 0)
            continue;
        if ((size_t)got > CHAT_MAX_LINE) {
            fprintf(stderr, "mcli chat: line of %zd bytes ignored (at most %d)\n", got, CHAT_MAX_LINE);
            continue;
        }
        /* history: drop the oldest pair when full */
        if (n_turns + 2 > CHAT_MAX_TURNS) {
            free(turns[0]);
            free(turns[1]);
            memmove(turns, turns + 2, (n_turns - 2) * sizeof *turns);
            n_turns -= 2;
        }
        turns[n_turns] = strdup(line);
        if (!turns[n_turns]) {
            fprintf(stderr, "mcli chat: out of memory\n");
            rc = 1;
            break;
        }
        n_turns++;
        int32_t *ids = NULL;
        size_t n = 0;
        mcli_gen_result res;
        memset(&res, 0, sizeof res);
        if (engine_chat_prompt(m, (const char *const *)turns, n_turns, a.p.max_new_tokens, &ids, &n, &err) != MCLI_OK ||
            engine_generate(m, ids, n, &a.p, chat_print_cb, NULL, &res, &err) != MCLI_OK) {
            free(ids);
            rc = fail_exit(a.cmd, &err);
            break;
        }
        free(ids);
        fputc('\n', stdout);
        fflush(stdout);
        /* the reply becomes the next bot turn (may be empty: DialoGPT then sees two EOS) */
        turns[n_turns] = strdup(res.text ? res.text : "");
        gen_result_free(&res);
        if (!turns[n_turns]) {
            fprintf(stderr, "mcli chat: out of memory\n");
            rc = 1;
            break;
        }
        n_turns++;
        a.p.seed++; /* a different draw per reply, still reproducible per session */
    }
    if (tty && rc == 0)
        fputc('\n', stdout);
    for (size_t i = 0; i < n_turns; i++)
        free(turns[i]);
    free(line);
    engine_free(m);
    return rc;
}
