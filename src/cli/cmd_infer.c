/* cmd_infer.c - encoder inference commands (embed, classify, fill-mask) and bench.
 *
 * NAME      mcli embed
 * SYNOPSIS  mcli embed --model DIR [--pooling cls|mean|none] [--normalize] [--threads N] [--json] TEXT...
 * OUTPUT    --json: {"embeddings":[[...],...]} (one vector per TEXT); with --pooling none:
 *           {"hidden_states":[[[...],...],...]} (one row per token, [CLS] and [SEP] included).
 *           Text: per TEXT a line "# TEXT (N values)" then the values separated by spaces.
 * DEFAULT   --pooling mean.
 *
 * NAME      mcli classify
 * SYNOPSIS  mcli classify --model DIR [--threads N] [--json] TEXT...
 * OUTPUT    --json: one JSON object per TEXT, one per line:
 *           {"label":"POSITIVE","scores":[{"label":..,"score":..},..],"logits":[..]}; scores
 *           sorted best first (softmax, or sigmoid for multi-label models); logits in label order.
 *           Text: "LABEL<TAB>SCORE<TAB>TEXT" per TEXT.
 *
 * NAME      mcli fill-mask
 * SYNOPSIS  mcli fill-mask --model DIR [--top-k 5] [--threads N] [--json] TEXT
 * OUTPUT    --json: [{"token_id":..,"token_str":..,"score":..,"sequence":..},..] best first, as
 *           transformers' fill-mask pipeline; with several masks, one such list per mask.
 *           Text: "SCORE<TAB>TOKEN<TAB>SEQUENCE" per prediction.
 *
 * NAME      mcli bench
 * SYNOPSIS  mcli bench --model DIR [--seq-len 128] [--batch 1] [--runs 10] [--threads N] [--json]
 * OUTPUT    load time, first-call and median forward latency of random token ids, peak RSS.
 *           bench/run.py is the full harness (machine limits, every shape, PERFORMANCE.md).
 *
 * ERRORS    (all) usage errors -> exit 2; missing model, unsupported head, too-long input -> exit 1
 *           with the reason on stderr. Texts longer than the model's maximum are truncated with a
 *           warning on stderr (as sentence-transformers does).
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli/cli.h"
#include "engine/engine.h"

typedef struct {
    const char *cmd;
    const char *model;
    bool json;
    int threads;
    const char *pooling;
    bool normalize;
    int top_k;
    int seq_len, batch, runs;
    char **texts;
    size_t n_texts;
} infer_args;

static bool parse_int(const char *s, int lo, int hi, int *out)
{
    if (!s || !*s)
        return false;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

/* True if option o is one of the space-separated names in flags (whole words only). */
static bool has_flag(const char *flags, const char *o)
{
    size_t n = strlen(o);
    for (const char *p = flags; (p = strstr(p, o)) != NULL; p += n)
        if ((p == flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return true;
    return false;
}

/* Parses the flags a command accepts (flags: a string of the option names it takes). */
static int parse_args(int argc, char **argv, const char *flags, infer_args *a)
{
    a->cmd = argv[0];
    a->texts = calloc((size_t)argc, sizeof *a->texts);
    if (!a->texts) {
        fprintf(stderr, "mcli %s: out of memory\n", a->cmd);
        return 1;
    }
    bool only_texts = false;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (only_texts || o[0] != '-' || strcmp(o, "-") == 0) {
            a->texts[a->n_texts++] = argv[i];
            continue;
        }
        if (strcmp(o, "--") == 0) {
            only_texts = true;
            continue;
        }
        if (!has_flag(flags, o))
            return cli_usage_error(a->cmd, "unknown option '%s'", o);
        if (strcmp(o, "--json") == 0) {
            a->json = true;
        } else if (strcmp(o, "--normalize") == 0) {
            a->normalize = true;
        } else if (!v) {
            return cli_usage_error(a->cmd, "%s needs a value", o);
        } else {
            i++;
            if (strcmp(o, "--model") == 0)
                a->model = v;
            else if (strcmp(o, "--pooling") == 0)
                a->pooling = v;
            else if (strcmp(o, "--threads") == 0 && !parse_int(v, 1, 1024, &a->threads))
                return cli_usage_error(a->cmd, "--threads must be a number from 1 to 1024, not '%s'", v);
            else if (strcmp(o, "--top-k") == 0 && !parse_int(v, 1, 1 << 20, &a->top_k))
                return cli_usage_error(a->cmd, "--top-k must be a positive number, not '%s'", v);
            else if (strcmp(o, "--seq-len") == 0 && !parse_int(v, 1, 1 << 16, &a->seq_len))
                return cli_usage_error(a->cmd, "--seq-len must be a positive number, not '%s'", v);
            else if (strcmp(o, "--batch") == 0 && !parse_int(v, 1, 4096, &a->batch))
                return cli_usage_error(a->cmd, "--batch must be a number from 1 to 4096, not '%s'", v);
            else if (strcmp(o, "--runs") == 0 && !parse_int(v, 1, 100000, &a->runs))
                return cli_usage_error(a->cmd, "--runs must be a positive number, not '%s'", v);
        }
    }
    if (!a->model)
        return cli_usage_error(a->cmd, "--model DIR is required");
    return 0;
}

static int fail_err(const char *cmd, const mcli_err *err)
{
    fprintf(stderr, "mcli %s: %s\n", cmd, err->msg);
    return mcli_status_exit(err->code);
}

static mcli_model *load(const infer_args *a, int *rc)
{
    mcli_err err = {0};
    mcli_model *m = NULL;
    mcli_engine_opts opts = {.n_threads = a->threads};
    if (engine_load(a->model, &opts, &m, &err) != MCLI_OK) {
        *rc = fail_err(a->cmd, &err);
        return NULL;
    }
    return m;
}

/* Tokenizes every text with [CLS]/[SEP], truncated to the model's length (warning on stderr).
 * encs[n] is caller-allocated; on failure the ones done are freed. */
static int tokenize_all(const infer_args *a, const mcli_model *m, mcli_encoding *encs, mcli_seq *seqs)
{
    const mcli_config *c = engine_info(m)->config;
    mcli_tok_opts opts = {.add_special_tokens = true, .max_length = (size_t)c->max_positions, .truncate = true};
    for (size_t i = 0; i < a->n_texts; i++) {
        mcli_err err = {0};
        if (tokenizer_encode(engine_tokenizer(m), a->texts[i], strlen(a->texts[i]), NULL, 0, &opts, &encs[i], &err) !=
            MCLI_OK) {
            for (size_t j = 0; j < i; j++)
                encoding_free(&encs[j]);
            fprintf(stderr, "mcli %s: text %zu: %s\n", a->cmd, i + 1, err.msg);
            return mcli_status_exit(err.code);
        }
        if (encs[i].truncated)
            fprintf(stderr, "mcli %s: warning: text %zu was cut to the model's %d tokens\n", a->cmd, i + 1,
                    c->max_positions);
        seqs[i] = (mcli_seq){.ids = encs[i].ids, .type_ids = encs[i].type_ids, .len = encs[i].n};
    }
    return 0;
}

static json_t *json_floats(const float *x, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_real((double)x[i]));
    return a;
}

static void print_json(json_t *j)
{
    json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(9) | JSON_ENCODE_ANY);
    fputc('\n', stdout);
}

/* ---------------------------------------------------------------- embed */

const char usage_embed[] =
    "Usage: mcli embed --model DIR [--pooling cls|mean|none] [--normalize] [--json] TEXT...\n"
    "\n"
    "Runs an encoder (BERT, DistilBERT) over each TEXT and prints its embedding.\n"
    "\n"
    "  --model DIR        a model directory (config.json, weights, tokenizer files)\n"
    "  --pooling MODE     cls: the [CLS] token's last hidden state; mean (default): the mean over\n"
    "                     the text's tokens; none: every token's last hidden state\n"
    "  --normalize        scale each vector to unit L2 norm\n"
    "  --threads N        compute threads (default: the CPUs available)\n"
    "  --json             {\"embeddings\":[[...],...]}; with --pooling none {\"hidden_states\":[[[...]]]}\n"
    "\n"
    "Example: mcli embed --model models/bert-tiny --pooling cls --json \"hello world\"\n";

int cmd_embed(int argc, char **argv)
{
    infer_args a = {.pooling = "mean"};
    mcli_model *m = NULL;
    mcli_encoding *encs = NULL;
    mcli_seq *seqs = NULL;
    float *out = NULL;
    int rc = parse_args(argc, argv, "--model --pooling --normalize --threads --json", &a);
    if (rc)
        goto done;
    mcli_pooling pool;
    if (strcmp(a.pooling, "cls") == 0)
        pool = MCLI_POOL_CLS;
    else if (strcmp(a.pooling, "mean") == 0)
        pool = MCLI_POOL_MEAN;
    else if (strcmp(a.pooling, "none") == 0)
        pool = MCLI_POOL_NONE;
    else {
        rc = cli_usage_error(a.cmd, "--pooling must be cls, mean or none, not '%s'", a.pooling);
        goto done;
    }
    if (a.n_texts == 0) {
        rc = cli_usage_error(a.cmd, "give at least one TEXT");
        goto done;
    }
    if (!(m = load(&a, &rc)))
        goto done;
    encs = calloc(a.n_texts, sizeof *encs);
    seqs = calloc(a.n_texts, sizeof *seqs);
    if (!encs || !seqs) {
        rc = 1;
        fprintf(stderr, "mcli embed: out of memory\n");
        goto done;
    }
    if ((rc = tokenize_all(&a, m, encs, seqs))) {
        free(encs);
        encs = NULL;
        goto done;
    }
    size_t H = (size_t)engine_info(m)->config->hidden_size, rows = 0;
    for (size_t i = 0; i < a.n_texts; i++)
        rows += pool == MCLI_POOL_NONE ? seqs[i].len : 1;
    out = malloc(rows * H * sizeof *out);
    mcli_err err = {0};
    if (!out) {
        rc = 1;
        fprintf(stderr, "mcli embed: out of memory for %zu x %zu outputs\n", rows, H);
        goto done;
    }
    if (engine_embed(m, seqs, a.n_texts, pool, a.normalize, out, &err) != MCLI_OK) {
        rc = fail_err(a.cmd, &err);
        goto done;
    }
    const float *row = out;
    if (a.json) {
        json_t *root = json_object(), *list = json_array();
        for (size_t i = 0; i < a.n_texts; i++) {
            if (pool == MCLI_POOL_NONE) {
                json_t *tok = json_array();
                for (size_t t = 0; t < seqs[i].len; t++, row += H)
                    json_array_append_new(tok, json_floats(row, H));
                json_array_append_new(list, tok);
            } else {
                json_array_append_new(list, json_floats(row, H));
                row += H;
            }
        }
        json_object_set_new(root, pool == MCLI_POOL_NONE ? "hidden_states" : "embeddings", list);
        print_json(root);
        json_decref(root);
    } else {
        for (size_t i = 0; i < a.n_texts; i++) {
            size_t n = pool == MCLI_POOL_NONE ? seqs[i].len : 1;
            printf("# %s (%zu x %zu values)\n", a.texts[i], n, H);
            for (size_t t = 0; t < n; t++, row += H)
                for (size_t j = 0; j < H; j++)
                    printf("%.6g%c", row[j], j + 1 == H ? '\n' : ' ');
        }
    }
done:
    if (encs)
        for (size_t i = 0; i < a.n_texts; i++)
            encoding_free(&encs[i]);
    free(encs);
    free(seqs);
    free(out);
    free(a.texts);
    engine_free(m);
    return rc;
}

/* ---------------------------------------------------------------- classify */

const char usage_classify[] =
    "Usage: mcli classify --model DIR [--json] TEXT...\n"
    "\n"
    "Classifies each TEXT with a sequence-classification model (BertForSequenceClassification,\n"
    "DistilBertForSequenceClassification). Scores are softmax probabilities, or independent sigmoid\n"
    "probabilities for multi-label models (problem_type multi_label_classification).\n"
    "\n"
    "  --model DIR        a model directory with a trained classifier head\n"
    "  --threads N        compute threads (default: the CPUs available)\n"
    "  --json             one object per TEXT and line:\n"
    "                     {\"label\":..,\"scores\":[{\"label\":..,\"score\":..},..],\"logits\":[..]}\n"
    "\n"
    "Example: mcli classify --model models/sst2 --json \"what a great film\"\n";

typedef struct {
    int id;
    float score;
} label_score;

static int by_score_desc(const void *x, const void *y)
{
    const label_score *a = x, *b = y;
    if (a->score != b->score)
        return a->score < b->score ? 1 : -1;
    return a->id - b->id;
}

int cmd_classify(int argc, char **argv)
{
    infer_args a = {0};
    mcli_model *m = NULL;
    mcli_encoding *encs = NULL;
    mcli_seq *seqs = NULL;
    float *logits = NULL, *probs = NULL;
    label_score *order = NULL;
    int rc = parse_args(argc, argv, "--model --threads --json", &a);
    if (rc)
        goto done;
    if (a.n_texts == 0) {
        rc = cli_usage_error(a.cmd, "give at least one TEXT");
        goto done;
    }
    if (!(m = load(&a, &rc)))
        goto done;
    const mcli_config *c = engine_info(m)->config;
    mcli_err err = {0};
    if (!(engine_info(m)->tasks & MCLI_TASK_CLASSIFY)) {
        /* let the engine word the refusal ("... has no trained classification head; it does ...") */
        float dummy[1];
        mcli_seq none = {0};
        if (engine_classify(m, &none, 1, dummy, NULL, &err) != MCLI_OK) {
            rc = fail_err(a.cmd, &err);
            goto done;
        }
    }
    encs = calloc(a.n_texts, sizeof *encs);
    seqs = calloc(a.n_texts, sizeof *seqs);
    size_t nl = (size_t)c->n_labels;
    logits = malloc(a.n_texts * nl * sizeof *logits);
    probs = malloc(a.n_texts * nl * sizeof *probs);
    order = malloc(nl * sizeof *order);
    if (!encs || !seqs || !logits || !probs || !order) {
        rc = 1;
        fprintf(stderr, "mcli classify: out of memory\n");
        goto done;
    }
    if ((rc = tokenize_all(&a, m, encs, seqs))) {
        free(encs);
        encs = NULL;
        goto done;
    }
    if (engine_classify(m, seqs, a.n_texts, logits, probs, &err) != MCLI_OK) {
        rc = fail_err(a.cmd, &err);
        goto done;
    }
    for (size_t i = 0; i < a.n_texts; i++) {
        for (size_t k = 0; k < nl; k++)
            order[k] = (label_score){(int)k, probs[i * nl + k]};
        qsort(order, nl, sizeof *order, by_score_desc);
        if (a.json) {
            json_t *o = json_object(), *scores = json_array();
            json_object_set_new(o, "label", json_string(c->labels[order[0].id]));
            for (size_t k = 0; k < nl; k++) {
                json_t *s = json_object();
                json_object_set_new(s, "label", json_string(c->labels[order[k].id]));
                json_object_set_new(s, "score", json_real(order[k].score));
                json_array_append_new(scores, s);
            }
            json_object_set_new(o, "scores", scores);
            json_object_set_new(o, "logits", json_floats(logits + i * nl, nl));
            print_json(o);
            json_decref(o);
        } else {
            printf("%s\t%.4f\t%s\n", c->labels[order[0].id], order[0].score, a.texts[i]);
        }
    }
done:
    if (encs)
        for (size_t i = 0; i < a.n_texts; i++)
            encoding_free(&encs[i]);
    free(encs);
    free(seqs);
    free(logits);
    free(probs);
    free(order);
    free(a.texts);
    engine_free(m);
    return rc;
}

/* ---------------------------------------------------------------- fill-mask */

const char usage_fill_mask[] =
    "Usage: mcli fill-mask --model DIR [--top-k 5] [--json] TEXT\n"
    "\n"
    "Predicts the token(s) hidden behind the mask token ([MASK] for BERT) with a masked-LM model\n"
    "(BertForMaskedLM, DistilBertForMaskedLM), as transformers' fill-mask pipeline does.\n"
    "\n"
    "  --model DIR        a model directory with a masked-LM head\n"
    "  --top-k K          predictions per mask (default 5)\n"
    "  --threads N        compute threads (default: the CPUs available)\n"
    "  --json             [{\"token_id\":..,\"token_str\":..,\"score\":..,\"sequence\":..},..], best first;\n"
    "                     with several masks, one such list per mask\n"
    "\n"
    "Example: mcli fill-mask --model models/distilbert-base-uncased \"paris is the [MASK] of france.\"\n";

int cmd_fill_mask(int argc, char **argv)
{
    infer_args a = {.top_k = 5};
    mcli_model *m = NULL;
    mcli_encoding enc = {0};
    bool have_enc = false;
    mcli_fill_pred *preds = NULL;
    int32_t *ids = NULL;
    json_t *root = NULL;
    int rc = parse_args(argc, argv, "--model --top-k --threads --json", &a);
    if (rc)
        goto done;
    if (a.n_texts != 1) {
        rc = cli_usage_error(a.cmd, "give exactly one TEXT containing the mask token");
        goto done;
    }
    if (!(m = load(&a, &rc)))
        goto done;
    mcli_seq seq;
    if ((rc = tokenize_all(&a, m, &enc, &seq)))
        goto done;
    have_enc = true;
    mcli_err err = {0};
    size_t n_masks = 0;
    if (engine_fill_mask(m, &seq, a.top_k, &preds, &n_masks, &err) != MCLI_OK) {
        rc = fail_err(a.cmd, &err);
        goto done;
    }
    const mcli_tokenizer *tok = engine_tokenizer(m);
    int k = a.top_k < engine_info(m)->config->vocab_size ? a.top_k : engine_info(m)->config->vocab_size;
    ids = malloc(seq.len * sizeof *ids);
    root = json_array();
    if (!ids || !root) {
        rc = 1;
        fprintf(stderr, "mcli fill-mask: out of memory\n");
        goto done;
    }
    int32_t mask_id = tokenizer_special(tok)->mask;
    size_t mi = 0;
    for (size_t p = 0; p < seq.len; p++) {
        if (seq.ids[p] != mask_id)
            continue;
        json_t *list = json_array();
        for (int j = 0; j < k; j++) {
            const mcli_fill_pred *pr = &preds[mi * (size_t)k + (size_t)j];
            memcpy(ids, seq.ids, seq.len * sizeof *ids);
            ids[p] = pr->token_id;
            char *token_str = NULL, *sequence = NULL;
            /* as the pipeline: token_str = decode([id]); sequence drops specials only for one mask */
            if (tokenizer_decode(tok, &pr->token_id, 1, false, &token_str, &err) != MCLI_OK ||
                tokenizer_decode(tok, ids, seq.len, n_masks == 1, &sequence, &err) != MCLI_OK) {
                free(token_str);
                json_decref(list);
                rc = fail_err(a.cmd, &err);
                goto done;
            }
            if (a.json) {
                json_t *o = json_object();
                json_object_set_new(o, "token_id", json_integer(pr->token_id));
                json_object_set_new(o, "token_str", json_string(token_str));
                json_object_set_new(o, "score", json_real(pr->score));
                json_object_set_new(o, "sequence", json_string(sequence));
                json_array_append_new(list, o);
            } else {
                printf("%.4f\t%s\t%s\n", pr->score, token_str, sequence);
            }
            free(token_str);
            free(sequence);
        }
        json_array_append_new(root, list);
        mi++;
    }
    if (a.json)
        print_json(n_masks == 1 ? json_array_get(root, 0) : root);
done:
    json_decref(root);
    if (have_enc)
        encoding_free(&enc);
    free(ids);
    free(preds);
    free(a.texts);
    engine_free(m);
    return rc;
}

/* ---------------------------------------------------------------- bench */

const char usage_bench[] =
    "Usage: mcli bench --model DIR [--seq-len 128] [--batch 1] [--runs 10] [--threads N] [--json]\n"
    "\n"
    "Times an encoder forward pass (engine_embed, CLS pooling) on random token ids of the given\n"
    "shape: model load time, the first call, and the median of --runs further calls; plus the\n"
    "process's peak RSS. For the full benchmark (machine limits, all shapes, comparison with\n"
    "../shared/BASELINES.md) run `make bench` (bench/run.py).\n"
    "\n"
    "  --model DIR        an encoder model directory\n"
    "  --seq-len T        tokens per sequence (default 128, at most the model's maximum)\n"
    "  --batch B          sequences per call (default 1)\n"
    "  --runs R           timed calls after the first (default 10)\n"
    "  --threads N        compute threads (default: the CPUs available)\n"
    "  --json             {\"load_ms\":..,\"first_ms\":..,\"median_ms\":..,\"min_ms\":..,\"peak_rss_mib\":..}\n";

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int cmd_bench(int argc, char **argv)
{
    infer_args a = {.seq_len = 128, .batch = 1, .runs = 10};
    mcli_model *m = NULL;
    int32_t *ids = NULL;
    mcli_seq *seqs = NULL;
    float *out = NULL;
    double *times = NULL;
    int rc = parse_args(argc, argv, "--model --seq-len --batch --runs --threads --json", &a);
    if (rc)
        goto done;
    if (a.n_texts) {
        rc = cli_usage_error(a.cmd, "unexpected argument '%s'", a.texts[0]);
        goto done;
    }
    double t0 = now_ms();
    if (!(m = load(&a, &rc)))
        goto done;
    double load_ms = now_ms() - t0;
    const mcli_config *c = engine_info(m)->config;
    if (!(engine_info(m)->tasks & MCLI_TASK_EMBED)) {
        fprintf(stderr, "mcli bench: %s is a %s decoder; mcli bench times encoders. For decoders run "
                        "bench/bench_gpt2 (or `make bench`).\n", a.model, mcli_arch_name(c->arch));
        rc = 1;
        goto done;
    }
    if (a.seq_len > c->max_positions) {
        rc = cli_usage_error(a.cmd, "--seq-len %d is longer than the model's %d positions", a.seq_len, c->max_positions);
        goto done;
    }
    size_t T = (size_t)a.seq_len, B = (size_t)a.batch, H = (size_t)c->hidden_size;
    ids = malloc(T * B * sizeof *ids);
    seqs = malloc(B * sizeof *seqs);
    out = malloc(B * H * sizeof *out);
    times = malloc((size_t)a.runs * sizeof *times);
    if (!ids || !seqs || !out || !times) {
        rc = 1;
        fprintf(stderr, "mcli bench: out of memory\n");
        goto done;
    }
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < T * B; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ids[i] = (int32_t)(s % (uint64_t)c->vocab_size);
    }
    for (size_t b = 0; b < B; b++)
        seqs[b] = (mcli_seq){.ids = ids + b * T, .len = T};
    mcli_err err = {0};
    double f0 = now_ms();
    if (engine_embed(m, seqs, B, MCLI_POOL_CLS, false, out, &err) != MCLI_OK) {
        rc = fail_err(a.cmd, &err);
        goto done;
    }
    double first_ms = now_ms() - f0;
    for (int r = 0; r < a.runs; r++) {
        double r0 = now_ms();
        if (engine_embed(m, seqs, B, MCLI_POOL_CLS, false, out, &err) != MCLI_OK) {
            rc = fail_err(a.cmd, &err);
            goto done;
        }
        times[r] = now_ms() - r0;
    }
    qsort(times, (size_t)a.runs, sizeof *times, cmp_double);
    double median = a.runs % 2 ? times[a.runs / 2] : 0.5 * (times[a.runs / 2 - 1] + times[a.runs / 2]);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mib = (double)ru.ru_maxrss / 1024.0;
    if (a.json) {
        json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:I}", "model", a.model, "seq_len", a.seq_len,
                              "batch", a.batch, "runs", a.runs, "load_ms", load_ms, "first_ms", first_ms, "median_ms",
                              median, "min_ms", times[0], "peak_rss_mib", rss_mib, "weight_bytes",
                              (json_int_t)engine_info(m)->weight_bytes);
        print_json(o);
        json_decref(o);
    } else {
        printf("model %s: batch %d x %d tokens, %d runs\n", a.model, a.batch, a.seq_len, a.runs);
        printf("load %.1f ms, first call %.3f ms, median %.3f ms, min %.3f ms, peak RSS %.1f MiB (weights %.1f MiB)\n",
               load_ms, first_ms, median, times[0], rss_mib, (double)engine_info(m)->weight_bytes / 1048576.0);
    }
done:
    free(ids);
    free(seqs);
    free(out);
    free(times);
    free(a.texts);
    engine_free(m);
    return rc;
}
