/* cmd_model.c - the inspect command: what a model directory holds, read without running it.
 *
 * NAME      mcli inspect
 * SYNOPSIS  mcli inspect --model DIR [--json]
 * OUTPUT    model type and architectures entry, sizes, parameter count, weight bytes, weights
 *           format, dtypes with tensor counts, the heads the weights really contain
 *           (classification with its labels, masked LM, LM head, pooler; a tied decoder absent
 *           from the file counts as present), files in the directory. --json: one object
 *           (keys documented in usage_inspect).
 * ERRORS    unreadable DIR, config.json or weights -> exit 1 with the reason; bad flags -> exit 2.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "formats/config.h"
#include "formats/weights.h"

#define INSPECT_MAX_FILES 4096

const char usage_inspect[] =
    "Usage: mcli inspect --model DIR [--json]\n"
    "\n"
    "Describes a model directory without running it: model type and architecture (config.json),\n"
    "sizes, parameter count, weight bytes (as float32), weights file format (safetensors, sharded,\n"
    "pytorch zip or legacy), dtypes present, the heads the weights actually contain and the files.\n"
    "\n"
    "  --model DIR   the model directory (config.json + model.safetensors / pytorch_model.bin ...)\n"
    "  --json        one JSON object instead of text. Keys: model_dir, model_type, architecture,\n"
    "                config_head, vocab_size, hidden_size, n_layers, n_heads, intermediate_size,\n"
    "                max_positions, type_vocab_size, activation, layer_norm_eps, parameters,\n"
    "                weight_bytes, weights_format, n_tensors, dtypes {NAME: {tensors, elements}},\n"
    "                heads {classification {present, labels, n_outputs, multi_label}, masked_lm\n"
    "                {present, decoder_tied}, lm_head {present, tied}, pooler {present}},\n"
    "                tasks [embed, classify, fill-mask, generate], files [{name, bytes}], warnings [..]\n"
    "\n"
    "Parameters count every floating-point tensor once (tied copies once; GPT-2 attention-mask\n"
    "buffers and position_ids are not parameters). Exit status 1 if DIR, its config.json or its\n"
    "weights cannot be read.\n"
    "Example: mcli inspect --model models/distilbert-base-uncased-finetuned-sst-2-english --json\n";

typedef struct {
    const char *name;
    long long bytes;
} file_entry;

typedef struct {
    bool cls; /* classification head present */
    int cls_outputs;
    bool mlm, mlm_decoder_tied; /* masked-LM head present; decoder weight absent (tied) */
    bool lm, lm_tied;           /* causal LM head; lm_head absent (tied to wte) */
    bool pooler;
} heads_found;

static const char *head_name(mcli_head_kind h)
{
    switch (h) {
    case MCLI_HEAD_BASE:
        return "base";
    case MCLI_HEAD_SEQ_CLS:
        return "sequence_classification";
    case MCLI_HEAD_MASKED_LM:
        return "masked_lm";
    case MCLI_HEAD_CAUSAL_LM:
        return "causal_lm";
    }
    return "?";
}

static const char *act_name(mcli_activation a)
{
    switch (a) {
    case MCLI_ACT_GELU:
        return "gelu";
    case MCLI_ACT_GELU_NEW:
        return "gelu_new";
    case MCLI_ACT_RELU:
        return "relu";
    }
    return "?";
}

static const char *arch_prefix(mcli_arch a)
{
    return a == MCLI_ARCH_BERT ? "bert" : a == MCLI_ARCH_DISTILBERT ? "distilbert" : "transformer";
}

static bool has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Buffers saved with the weights that are not parameters. */
static bool is_buffer(const char *name)
{
    return has_suffix(name, ".attn.bias") || has_suffix(name, ".attn.masked_bias") ||
           strcmp(name, "attn.bias") == 0 || has_suffix(name, "position_ids");
}

static bool is_float(mcli_dtype dt)
{
    return dt == MCLI_DT_F32 || dt == MCLI_DT_F16 || dt == MCLI_DT_BF16 || dt == MCLI_DT_F64;
}

static bool same_values(const mcli_tensor *a, const mcli_tensor *b)
{
    return a && b && a->data && b->data && a->numel == b->numel &&
           (a->data == b->data || memcmp(a->data, b->data, a->numel * sizeof(float)) == 0);
}

/* The tensor pairs transformers ties; when both are in the file with equal values, the copy is
 * not counted as a parameter a second time. */
static const mcli_tensor *tied_duplicate(const mcli_weights *w, const mcli_config *c)
{
    const char *p = arch_prefix(c->arch);
    const mcli_tensor *emb =
        weights_lookup(w, p, c->arch == MCLI_ARCH_GPT2 ? "wte.weight" : "embeddings.word_embeddings.weight");
    const char *dec_name = c->arch == MCLI_ARCH_BERT         ? "cls.predictions.decoder.weight"
                           : c->arch == MCLI_ARCH_DISTILBERT ? "vocab_projector.weight"
                                                             : "lm_head.weight";
    const mcli_tensor *dec = weights_lookup(w, p, dec_name);
    return (emb && dec && dec != emb && (weights_same_source(w, emb, dec) || same_values(emb, dec))) ? dec
                                                                                                     : NULL;
}

static void find_heads(const mcli_weights *w, const mcli_config *c, heads_found *h)
{
    const char *p = arch_prefix(c->arch);
    memset(h, 0, sizeof *h);
    const mcli_tensor *t;
    switch (c->arch) {
    case MCLI_ARCH_BERT:
        t = weights_lookup(w, p, "classifier.weight");
        h->cls = t && weights_lookup(w, p, "classifier.bias");
        h->cls_outputs = t && t->ndim == 2 ? (int)t->shape[0] : 0;
        h->mlm = weights_lookup(w, p, "cls.predictions.transform.dense.weight") &&
                 weights_lookup(w, p, "cls.predictions.bias");
        h->mlm_decoder_tied = h->mlm && !weights_lookup(w, p, "cls.predictions.decoder.weight");
        h->pooler = weights_lookup(w, p, "pooler.dense.weight") != NULL;
        break;
    case MCLI_ARCH_DISTILBERT:
        t = weights_lookup(w, p, "classifier.weight");
        h->cls = t && weights_lookup(w, p, "pre_classifier.weight");
        h->cls_outputs = t && t->ndim == 2 ? (int)t->shape[0] : 0;
        h->mlm =
            weights_lookup(w, p, "vocab_transform.weight") && weights_lookup(w, p, "vocab_projector.bias");
        h->mlm_decoder_tied = h->mlm && !weights_lookup(w, p, "vocab_projector.weight");
        break;
    case MCLI_ARCH_GPT2:
        t = weights_lookup(w, p, "score.weight");
        h->cls = t != NULL;
        h->cls_outputs = t && t->ndim == 2 ? (int)t->shape[0] : 0;
        h->lm_tied = !weights_lookup(w, p, "lm_head.weight");
        h->lm = weights_lookup(w, p, "wte.weight") != NULL;
        break;
    }
}

static int cmp_files(const void *a, const void *b)
{
    return strcmp(((const file_entry *)a)->name, ((const file_entry *)b)->name);
}

/* Lists regular files of dir (sorted); names are strdup'ed, free with free_files(). */
static int list_files(const char *dir, file_entry **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    file_entry *files = calloc(INSPECT_MAX_FILES, sizeof *files);
    if (!files) {
        closedir(d);
        return -1;
    }
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir(d)) && count < INSPECT_MAX_FILES) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        struct stat st;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path ||
            stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        files[count].name = strdup(e->d_name);
        if (!files[count].name)
            break;
        files[count].bytes = (long long)st.st_size;
        count++;
    }
    closedir(d);
    qsort(files, count, sizeof *files, cmp_files);
    *out = files;
    *n = count;
    return 0;
}

static void free_files(file_entry *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((char *)f[i].name);
    free(f);
}

static void human_bytes(long long b, char *buf, size_t cap)
{
    if (b < 1024)
        snprintf(buf, cap, "%lld B", b);
    else if (b < 1024 * 1024)
        snprintf(buf, cap, "%.1f KB", (double)b / 1024);
    else if (b < 1024LL * 1024 * 1024)
        snprintf(buf, cap, "%.1f MB", (double)b / (1024 * 1024));
    else
        snprintf(buf, cap, "%.2f GB", (double)b / (1024.0 * 1024 * 1024));
}

/* err's message already names the file it is about. */
static int fail(const mcli_err *err)
{
    fprintf(stderr, "mcli inspect: %s\n", err->msg);
    return 1;
}

int cmd_inspect(int argc, char **argv)
{
    const char *dir = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error("inspect", "--model needs a directory");
            dir = argv[++i];
        } else if (strncmp(argv[i], "--model=", 8) == 0) {
            dir = argv[i] + 8;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else {
            return cli_usage_error("inspect", "unknown argument '%s'", argv[i]);
        }
    }
    if (!dir || !*dir)
        return cli_usage_error("inspect", "--model DIR is required");

    mcli_err err;
    mcli_err_clear(&err);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "mcli inspect: %s: %s\n", dir,
                stat(dir, &st) != 0 ? strerror(errno) : "not a directory (pass the model directory)");
        return 1;
    }
    mcli_config cfg;
    if (config_load(dir, &cfg, &err) != MCLI_OK)
        return fail(&err);
    mcli_weights *w = NULL;
    /* Metadata only: nothing is converted, so F16 or legacy checkpoints inspect quickly. */
    if (weights_open_meta(dir, &w, &err) != MCLI_OK) {
        config_free(&cfg);
        return fail(&err);
    }

    /* Parameters, dtypes. */
    const mcli_tensor *dup = tied_duplicate(w, &cfg);
    long long params = 0;
    size_t dt_tensors[MCLI_DT_BOOL + 1] = {0}, dt_elems[MCLI_DT_BOOL + 1] = {0};
    for (size_t i = 0; i < weights_count(w); i++) {
        const mcli_tensor *t = weights_at(w, i);
        if ((unsigned)t->file_dtype <= MCLI_DT_BOOL) {
            dt_tensors[t->file_dtype]++;
            dt_elems[t->file_dtype] += t->numel;
        }
        if (is_float(t->file_dtype) && t != dup && !is_buffer(t->name))
            params += (long long)t->numel;
    }
    heads_found h;
    find_heads(w, &cfg, &h);
    const char *prefix = arch_prefix(cfg.arch);
    unsigned n_warn = 0;
    char warnings[4][256];
    const char *emb_name = cfg.arch == MCLI_ARCH_GPT2 ? "wte.weight" : "embeddings.word_embeddings.weight";
    if (!weights_lookup(w, prefix, emb_name))
        snprintf(warnings[n_warn++], sizeof warnings[0],
                 "no %s tensor (with or without the '%s.' prefix): the weights do not look like a %s model",
                 emb_name, prefix, cfg.model_type);
    if (cfg.head == MCLI_HEAD_SEQ_CLS && !h.cls)
        snprintf(warnings[n_warn++], sizeof warnings[0],
                 "config.json names %s but the weights have no classification head", cfg.architecture);
    if (cfg.head == MCLI_HEAD_MASKED_LM && !h.mlm)
        snprintf(warnings[n_warn++], sizeof warnings[0],
                 "config.json names %s but the weights have no masked-LM head", cfg.architecture);
    if (h.cls && cfg.n_labels > 0 && h.cls_outputs != cfg.n_labels && n_warn < 4)
        snprintf(warnings[n_warn++], sizeof warnings[0],
                 "the classifier has %d outputs but config.json names %d labels", h.cls_outputs,
                 cfg.n_labels);
    bool can_embed = cfg.arch != MCLI_ARCH_GPT2;
    /* As the engine runs them: BERT classifies from the pooler, DistilBERT through
     * pre_classifier (required in h.cls); GPT-2 sequence classification is not run. */
    bool can_classify =
        h.cls && (cfg.arch == MCLI_ARCH_DISTILBERT || (cfg.arch == MCLI_ARCH_BERT && h.pooler));
    bool can_fill = h.mlm;
    bool can_generate = cfg.arch == MCLI_ARCH_GPT2 && h.lm;

    file_entry *files = NULL;
    size_t n_files = 0;
    if (list_files(dir, &files, &n_files) != 0) {
        files = NULL;
        n_files = 0;
    }

    int rc = 0;
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "model_dir", json_string(dir));
        json_object_set_new(o, "model_type", json_string(cfg.model_type));
        json_object_set_new(o, "architecture", json_string(cfg.architecture));
        json_object_set_new(o, "config_head", json_string(head_name(cfg.head)));
        json_object_set_new(o, "vocab_size", json_integer(cfg.vocab_size));
        json_object_set_new(o, "hidden_size", json_integer(cfg.hidden_size));
        json_object_set_new(o, "n_layers", json_integer(cfg.n_layers));
        json_object_set_new(o, "n_heads", json_integer(cfg.n_heads));
        json_object_set_new(o, "intermediate_size", json_integer(cfg.intermediate_size));
        json_object_set_new(o, "max_positions", json_integer(cfg.max_positions));
        json_object_set_new(o, "type_vocab_size", json_integer(cfg.type_vocab_size));
        json_object_set_new(o, "activation", json_string(act_name(cfg.activation)));
        json_object_set_new(o, "layer_norm_eps", json_real(cfg.layer_norm_eps));
        json_object_set_new(o, "parameters", json_integer(params));
        json_object_set_new(o, "weight_bytes", json_integer((json_int_t)weights_bytes(w)));
        json_object_set_new(o, "weights_format", json_string(weights_format(w)));
        json_object_set_new(o, "n_tensors", json_integer((json_int_t)weights_count(w)));
        json_t *dts = json_object();
        for (int d = 0; d <= MCLI_DT_BOOL; d++) {
            if (!dt_tensors[d])
                continue;
            json_t *e = json_object();
            json_object_set_new(e, "tensors", json_integer((json_int_t)dt_tensors[d]));
            json_object_set_new(e, "elements", json_integer((json_int_t)dt_elems[d]));
            json_object_set_new(dts, mcli_dtype_name((mcli_dtype)d), e);
        }
        json_object_set_new(o, "dtypes", dts);
        json_t *heads = json_object();
        json_t *cls = json_object();
        json_object_set_new(cls, "present", json_boolean(h.cls));
        if (h.cls) {
            json_t *labels = json_array();
            for (int i = 0; i < cfg.n_labels; i++)
                json_array_append_new(labels, json_string(cfg.labels[i]));
            json_object_set_new(cls, "labels", labels);
            json_object_set_new(cls, "n_outputs", json_integer(h.cls_outputs));
            json_object_set_new(cls, "multi_label", json_boolean(cfg.multi_label));
        }
        json_object_set_new(heads, "classification", cls);
        json_t *mlm = json_object();
        json_object_set_new(mlm, "present", json_boolean(h.mlm));
        if (h.mlm)
            json_object_set_new(mlm, "decoder_tied", json_boolean(h.mlm_decoder_tied));
        json_object_set_new(heads, "masked_lm", mlm);
        json_t *lm = json_object();
        json_object_set_new(lm, "present", json_boolean(h.lm));
        if (h.lm)
            json_object_set_new(lm, "tied", json_boolean(h.lm_tied));
        json_object_set_new(heads, "lm_head", lm);
        json_t *pool = json_object();
        json_object_set_new(pool, "present", json_boolean(h.pooler));
        json_object_set_new(heads, "pooler", pool);
        json_object_set_new(o, "heads", heads);
        json_t *tasks = json_array();
        if (can_embed)
            json_array_append_new(tasks, json_string("embed"));
        if (can_classify)
            json_array_append_new(tasks, json_string("classify"));
        if (can_fill)
            json_array_append_new(tasks, json_string("fill-mask"));
        if (can_generate)
            json_array_append_new(tasks, json_string("generate"));
        json_object_set_new(o, "tasks", tasks);
        json_t *fl = json_array();
        for (size_t i = 0; i < n_files; i++) {
            json_t *e = json_object();
            json_object_set_new(e, "name", json_string(files[i].name));
            json_object_set_new(e, "bytes", json_integer(files[i].bytes));
            json_array_append_new(fl, e);
        }
        json_object_set_new(o, "files", fl);
        json_t *wa = json_array();
        for (unsigned i = 0; i < n_warn; i++)
            json_array_append_new(wa, json_string(warnings[i]));
        json_object_set_new(o, "warnings", wa);
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        if (s) {
            puts(s);
            free(s);
        } else {
            fprintf(stderr, "mcli inspect: out of memory\n");
            rc = 1;
        }
        json_decref(o);
    } else {
        char hb[32];
        printf("model        %s\n", dir);
        printf("type         %s (%s; config head: %s)\n", cfg.model_type,
               cfg.architecture[0] ? cfg.architecture : "no architectures entry", head_name(cfg.head));
        printf("sizes        hidden %d, layers %d, heads %d, intermediate %d, vocab %d, positions %d",
               cfg.hidden_size, cfg.n_layers, cfg.n_heads, cfg.intermediate_size, cfg.vocab_size,
               cfg.max_positions);
        if (cfg.type_vocab_size)
            printf(", token types %d", cfg.type_vocab_size);
        printf("\nactivation   %s, layer-norm eps %g%s\n", act_name(cfg.activation),
               (double)cfg.layer_norm_eps, cfg.sinusoidal_pos_embds ? ", sinusoidal positions" : "");
        human_bytes((long long)weights_bytes(w), hb, sizeof hb);
        printf("parameters   %lld\n", params);
        printf("weights      %s, %zu tensors, %s as float32\n", weights_format(w), weights_count(w), hb);
        printf("dtypes      ");
        for (int d = 0; d <= MCLI_DT_BOOL; d++)
            if (dt_tensors[d])
                printf(" %s x%zu", mcli_dtype_name((mcli_dtype)d), dt_tensors[d]);
        printf("\nheads        ");
        bool any = false;
        if (h.cls) {
            printf("classification (%d outputs%s", h.cls_outputs, cfg.multi_label ? ", multi-label" : "");
            for (int i = 0; i < cfg.n_labels; i++)
                printf("%s%s", i ? ", " : ": ", cfg.labels[i]);
            printf(")");
            any = true;
        }
        if (h.mlm) {
            printf("%smasked LM%s", any ? "; " : "",
                   h.mlm_decoder_tied ? " (decoder tied to word embeddings)" : "");
            any = true;
        }
        if (h.lm) {
            printf("%sLM head%s", any ? "; " : "", h.lm_tied ? " (tied to wte)" : "");
            any = true;
        }
        if (h.pooler) {
            printf("%spooler", any ? "; " : "");
            any = true;
        }
        printf("%s\n", any ? "" : "none (base model)");
        printf("tasks       %s%s%s%s\n", can_embed ? " embed" : "", can_classify ? " classify" : "",
               can_fill ? " fill-mask" : "", can_generate ? " generate" : "");
        printf("files       ");
        for (size_t i = 0; i < n_files; i++) {
            human_bytes(files[i].bytes, hb, sizeof hb);
            printf("%s %s (%s)", i ? "," : "", files[i].name, hb);
        }
        printf("\n");
        for (unsigned i = 0; i < n_warn; i++)
            printf("warning      %s\n", warnings[i]);
    }
    free_files(files, n_files);
    weights_free(w);
    config_free(&cfg);
    return rc;
}
