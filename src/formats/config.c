/* config.c - config.json -> mcli_config for the three supported model types.
 *
 * Field spellings follow transformers' configuration classes, including their attribute
 * maps (GPT-2 n_embd == hidden_size, DistilBERT dim == hidden_size, ...); when a field is
 * absent the class default applies, as in transformers. Options that change the math in ways
 * the engine does not implement (relative position embeddings, GPT-2 attention scaling
 * variants, cross-attention) are refused rather than silently ignored.
 */
#include "formats/config.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/log.h"

#define CFG_MAX_BYTES (16u << 20)
#define CFG_MAX_LABELS 65536
#define CFG_MAX_LABEL_LEN 1024

static const char supported_types[] = "bert, distilbert, gpt2";

const char *mcli_arch_name(mcli_arch a)
{
    switch (a) {
    case MCLI_ARCH_BERT:
        return "bert";
    case MCLI_ARCH_DISTILBERT:
        return "distilbert";
    case MCLI_ARCH_GPT2:
        return "gpt2";
    }
    return "?";
}

void config_free(mcli_config *c)
{
    if (!c)
        return;
    if (c->labels) {
        for (int i = 0; i < c->n_labels; i++)
            free(c->labels[i]);
        free(c->labels);
    }
    c->labels = NULL;
    c->n_labels = 0;
}

/* Reads an integer field under any of its spellings (NULL-terminated list). Absent or null ->
 * *out = def (or an error if def_ok is false). Two spellings with different values -> error. */
static mcli_status get_int(json_t *root, const char *path, const char *const *names, long long def,
                           bool def_ok, long long lo, long long hi, int *out, mcli_err *err)
{
    const char *found = NULL;
    long long val = def;
    for (size_t i = 0; names[i]; i++) {
        json_t *v = json_object_get(root, names[i]);
        if (!v || json_is_null(v))
            continue;
        long long x;
        if (json_is_integer(v)) {
            x = json_integer_value(v);
        } else if (json_is_real(v) && json_real_value(v) == (double)(long long)json_real_value(v) &&
                   json_real_value(v) > -1e15 && json_real_value(v) < 1e15) {
            x = (long long)json_real_value(v);
        } else {
            return mcli_fail(err, MCLI_ERR_FORMAT, "%s: \"%s\" must be an integer", path, names[i]);
        }
        if (found && x != val)
            return mcli_fail(err, MCLI_ERR_FORMAT, "%s: \"%s\" (%lld) and \"%s\" (%lld) disagree", path,
                             found, val, names[i], x);
        found = names[i];
        val = x;
    }
    if (!found && !def_ok)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: \"%s\" is missing", path, names[0]);
    if (val < lo || val > hi)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: \"%s\" = %lld is outside [%lld, %lld]", path,
                         found ? found : names[0], val, lo, hi);
    *out = (int)val;
    return MCLI_OK;
}

/* Token ids: absent/null -> def; must lie in [0, vocab). A list (newer configs allow several
 * eos ids) gives its first entry. */
static mcli_status get_token_id(json_t *root, const char *path, const char *name, int def, int vocab,
                                int *out, mcli_err *err)
{
    const char *names[] = {name, NULL};
    json_t *v = json_object_get(root, name);
    json_t *holder = NULL;
    if (json_is_array(v)) {
        holder = json_object();
        if (!holder ||
            json_object_set(holder, name, json_array_size(v) ? json_array_get(v, 0) : json_null())) {
            json_decref(holder);
            return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory reading %s", name);
        }
        root = holder;
    }
    mcli_status s = get_int(root, path, names, def, true, -1, (long long)vocab - 1, out, err);
    json_decref(holder);
    if (s != MCLI_OK)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: \"%s\" must be null or a token id in [0, %d)", path, name,
                         vocab);
    return MCLI_OK;
}

static mcli_status get_bool(json_t *root, const char *path, const char *name, bool def, bool *out,
                            mcli_err *err)
{
    json_t *v = json_object_get(root, name);
    if (!v || json_is_null(v)) {
        *out = def;
        return MCLI_OK;
    }
    if (!json_is_boolean(v))
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: \"%s\" must be true or false", path, name);
    *out = json_is_true(v);
    return MCLI_OK;
}

/* Maps an activation name to the engine's enum (transformers' ACT2FN names). */
static mcli_status parse_activation(const char *path, const char *field, json_t *v, const char *def,
                                    mcli_activation *out, mcli_err *err)
{
    const char *name = def;
    if (v && !json_is_null(v)) {
        name = json_string_value(v);
        if (!name)
            return mcli_fail(err, MCLI_ERR_FORMAT, "%s: \"%s\" must be a string", path, field);
    }
    /* gelu / gelu_python: exact erf form. gelu_new, gelu_pytorch_tanh, gelu_fast and
     * gelu_accurate are the same tanh approximation 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))
     * written differently. quick_gelu (x sigmoid(1.702x)) and clipped variants are different
     * functions and refused. */
    if (strcmp(name, "gelu") == 0 || strcmp(name, "gelu_python") == 0)
        *out = MCLI_ACT_GELU;
    else if (strcmp(name, "gelu_new") == 0 || strcmp(name, "gelu_pytorch_tanh") == 0 ||
             strcmp(name, "gelu_fast") == 0 || strcmp(name, "gelu_accurate") == 0)
        *out = MCLI_ACT_GELU_NEW;
    else if (strcmp(name, "relu") == 0)
        *out = MCLI_ACT_RELU;
    else
        return mcli_fail(err, MCLI_ERR_UNSUPPORTED,
                         "%s: %s \"%.64s\" is not supported (supported: gelu, gelu_python, gelu_new, "
                         "gelu_pytorch_tanh, gelu_fast, gelu_accurate, relu)",
                         path, field, name);
    return MCLI_OK;
}

static mcli_status get_eps(json_t *root, const char *path, const char *name, double def, float *out,
                           mcli_err *err)
{
    json_t *v = json_object_get(root, name);
    double x = def;
    if (v && !json_is_null(v)) {
        if (!json_is_number(v))
            return mcli_fail(err, MCLI_ERR_FORMAT, "%s: \"%s\" must be a number", path, name);
        x = json_number_value(v);
    }
    if (!(x > 0.0 && x < 1.0))
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: \"%s\" = %g must be in (0, 1)", path, name, x);
    *out = (float)x;
    return MCLI_OK;
}

/* Strict decimal label id: "0" or [1-9][0-9]{0,8}. */
static bool parse_label_id(const char *s, long *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 9 || (n > 1 && s[0] == '0'))
        return false;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static mcli_status set_label(mcli_config *c, const char *path, long id, const char *name, mcli_err *err)
{
    if (!name || strlen(name) > CFG_MAX_LABEL_LEN)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: label %ld must be a string of at most %d bytes", path, id,
                         CFG_MAX_LABEL_LEN);
    if (id < 0 || id >= c->n_labels)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: label id %ld is outside [0, %d)", path, id, c->n_labels);
    if (c->labels[id])
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: label id %ld is given twice", path, id);
    c->labels[id] = strdup(name);
    if (!c->labels[id])
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory reading labels");
    return MCLI_OK;
}

static mcli_status alloc_labels(mcli_config *c, int n, mcli_err *err)
{
    c->labels = calloc((size_t)n, sizeof *c->labels);
    if (!c->labels)
        return mcli_fail(err, MCLI_ERR_NOMEM, "out of memory for %d labels", n);
    c->n_labels = n;
    return MCLI_OK;
}

/* id2label (preferred), else label2id, else num_labels -> c->labels. As in transformers, an
 * explicit num_labels that disagrees with id2label wins and the names become LABEL_i. */
static mcli_status parse_labels(json_t *root, const char *path, mcli_config *c, mcli_err *err)
{
    json_t *id2label = json_object_get(root, "id2label");
    json_t *label2id = json_object_get(root, "label2id");
    json_t *num = json_object_get(root, "num_labels");
    if (id2label && !json_is_null(id2label) && !json_is_object(id2label))
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: \"id2label\" must be an object", path);
    if (label2id && !json_is_null(label2id) && !json_is_object(label2id))
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: \"label2id\" must be an object", path);
    int num_labels = -1;
    if (num && !json_is_null(num)) {
        const char *names[] = {"num_labels", NULL};
        mcli_status s = get_int(root, path, names, 0, true, 0, CFG_MAX_LABELS, &num_labels, err);
        if (s != MCLI_OK)
            return s;
    }
    mcli_status s = MCLI_OK;
    const char *key;
    json_t *v;
    size_t n_map = json_is_object(id2label)   ? json_object_size(id2label)
                   : json_is_object(label2id) ? json_object_size(label2id)
                                              : 0;
    if (n_map > CFG_MAX_LABELS)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: more than %d labels", path, CFG_MAX_LABELS);
    if (n_map > 0 && (num_labels < 0 || (size_t)num_labels == n_map)) {
        s = alloc_labels(c, (int)n_map, err);
        if (s != MCLI_OK)
            return s;
        if (json_is_object(id2label) && json_object_size(id2label) > 0) {
            json_object_foreach(id2label, key, v)
            {
                long id;
                if (!parse_label_id(key, &id))
                    return mcli_fail(err, MCLI_ERR_FORMAT, "%s: id2label key \"%.32s\" is not a label id",
                                     path, key);
                s = set_label(c, path, id, json_string_value(v), err);
                if (s != MCLI_OK)
                    return s;
            }
        } else {
            json_object_foreach(label2id, key, v)
            {
                if (!json_is_integer(v))
                    return mcli_fail(err, MCLI_ERR_FORMAT, "%s: label2id[\"%.32s\"] must be an integer", path,
                                     key);
                json_int_t id = json_integer_value(v);
                s = set_label(c, path, (id < 0 || id > CFG_MAX_LABELS) ? -1 : (long)id, key, err);
                if (s != MCLI_OK)
                    return s;
            }
        }
        return MCLI_OK;
    }
    if (num_labels > 0) {
        if (n_map > 0)
            LOG_WARN(
                "%s: num_labels=%d disagrees with the %zu entries of id2label; using LABEL_0..LABEL_%d as "
                "transformers does",
                path, num_labels, n_map, num_labels - 1);
        s = alloc_labels(c, num_labels, err);
        if (s != MCLI_OK)
            return s;
        for (int i = 0; i < num_labels; i++) {
            char name[32];
            snprintf(name, sizeof name, "LABEL_%d", i);
            s = set_label(c, path, i, name, err);
            if (s != MCLI_OK)
                return s;
        }
    }
    return MCLI_OK;
}

static mcli_head_kind head_from_architecture(const char *a, const char *path)
{
    static const struct {
        const char *suffix;
        mcli_head_kind head;
    } table[] = {
        {"ForSequenceClassification", MCLI_HEAD_SEQ_CLS},
        {"ForMaskedLM", MCLI_HEAD_MASKED_LM},
        {"ForPreTraining", MCLI_HEAD_MASKED_LM},
        {"LMHeadModel", MCLI_HEAD_CAUSAL_LM},
        {"ForCausalLM", MCLI_HEAD_CAUSAL_LM},
        {"DoubleHeadsModel", MCLI_HEAD_CAUSAL_LM},
        {"Model", MCLI_HEAD_BASE},
    };
    size_t n = strlen(a);
    for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
        size_t k = strlen(table[i].suffix);
        if (n >= k && strcmp(a + n - k, table[i].suffix) == 0)
            return table[i].head;
    }
    if (*a)
        LOG_WARN("%s: architecture %s has a head mcli does not run; only the base model is used", path, a);
    return MCLI_HEAD_BASE;
}

static mcli_status load_bert(json_t *r, const char *p, mcli_config *c, mcli_err *err)
{
    static const char
        *const vocab[] = {"vocab_size", NULL},
               *const hidden[] = {"hidden_size", NULL}, *const layers[] = {"num_hidden_layers", NULL},
               *const heads[] = {"num_attention_heads", NULL}, *const inter[] = {"intermediate_size", NULL},
               *const pos[] = {"max_position_embeddings", NULL}, *const types[] = {"type_vocab_size", NULL};
    mcli_status s;
    if ((s = get_int(r, p, vocab, 30522, true, 1, 1 << 21, &c->vocab_size, err)) ||
        (s = get_int(r, p, hidden, 768, true, 1, 16384, &c->hidden_size, err)) ||
        (s = get_int(r, p, layers, 12, true, 1, 256, &c->n_layers, err)) ||
        (s = get_int(r, p, heads, 12, true, 1, 256, &c->n_heads, err)) ||
        (s = get_int(r, p, inter, 3072, true, 1, 1 << 17, &c->intermediate_size, err)) ||
        (s = get_int(r, p, pos, 512, true, 1, 1 << 20, &c->max_positions, err)) ||
        (s = get_int(r, p, types, 2, true, 1, 1024, &c->type_vocab_size, err)) ||
        (s = parse_activation(p, "hidden_act", json_object_get(r, "hidden_act"), "gelu", &c->activation,
                              err)) ||
        (s = get_eps(r, p, "layer_norm_eps", 1e-12, &c->layer_norm_eps, err)) ||
        (s = get_token_id(r, p, "pad_token_id", 0, c->vocab_size, &c->pad_token_id, err)) ||
        (s = get_token_id(r, p, "bos_token_id", -1, c->vocab_size, &c->bos_token_id, err)) ||
        (s = get_token_id(r, p, "eos_token_id", -1, c->vocab_size, &c->eos_token_id, err)))
        return s;
    const char *pet = json_string_value(json_object_get(r, "position_embedding_type"));
    if (pet && strcmp(pet, "absolute") != 0)
        return mcli_fail(err, MCLI_ERR_UNSUPPORTED,
                         "%s: position_embedding_type \"%.32s\" is not supported (only \"absolute\")", p,
                         pet);
    bool is_decoder = false;
    if ((s = get_bool(r, p, "is_decoder", false, &is_decoder, err)))
        return s;
    if (is_decoder)
        return mcli_fail(err, MCLI_ERR_UNSUPPORTED,
                         "%s: BERT as a decoder (is_decoder: true) is not supported", p);
    return MCLI_OK;
}

static mcli_status load_distilbert(json_t *r, const char *p, mcli_config *c, mcli_err *err)
{
    static const char *const vocab[] = {"vocab_size", NULL}, *const hidden[] = {"dim", "hidden_size", NULL},
                             *const layers[] = {"n_layers", "num_hidden_layers", NULL},
                             *const heads[] = {"n_heads", "num_attention_heads", NULL},
                             *const inter[] = {"hidden_dim", NULL},
                             *const pos[] = {"max_position_embeddings", NULL};
    mcli_status s;
    if ((s = get_int(r, p, vocab, 30522, true, 1, 1 << 21, &c->vocab_size, err)) ||
        (s = get_int(r, p, hidden, 768, true, 1, 16384, &c->hidden_size, err)) ||
        (s = get_int(r, p, layers, 6, true, 1, 256, &c->n_layers, err)) ||
        (s = get_int(r, p, heads, 12, true, 1, 256, &c->n_heads, err)) ||
        (s = get_int(r, p, inter, 4 * 768, true, 1, 1 << 17, &c->intermediate_size, err)) ||
        (s = get_int(r, p, pos, 512, true, 1, 1 << 20, &c->max_positions, err)) ||
        (s = parse_activation(p, "activation", json_object_get(r, "activation"), "gelu", &c->activation,
                              err)) ||
        (s = get_bool(r, p, "sinusoidal_pos_embds", false, &c->sinusoidal_pos_embds, err)) ||
        (s = get_token_id(r, p, "pad_token_id", 0, c->vocab_size, &c->pad_token_id, err)) ||
        (s = get_token_id(r, p, "bos_token_id", -1, c->vocab_size, &c->bos_token_id, err)) ||
        (s = get_token_id(r, p, "eos_token_id", -1, c->vocab_size, &c->eos_token_id, err)))
        return s;
    c->type_vocab_size = 0;
    c->layer_norm_eps = 1e-12f; /* hard-coded in DistilBERT's modeling code */
    return MCLI_OK;
}

static mcli_status load_gpt2(json_t *r, const char *p, mcli_config *c, mcli_err *err)
{
    static const char *const vocab[] = {"vocab_size", NULL},
                             *const hidden[] = {"n_embd", "hidden_size", NULL},
                             *const layers[] = {"n_layer", "num_hidden_layers", NULL},
                             *const heads[] = {"n_head", "num_attention_heads", NULL},
                             *const inter[] = {"n_inner", NULL},
                             *const pos[] = {"n_positions", "max_position_embeddings", NULL};
    mcli_status s;
    if ((s = get_int(r, p, vocab, 50257, true, 1, 1 << 21, &c->vocab_size, err)) ||
        (s = get_int(r, p, hidden, 768, true, 1, 16384, &c->hidden_size, err)) ||
        (s = get_int(r, p, layers, 12, true, 1, 256, &c->n_layers, err)) ||
        (s = get_int(r, p, heads, 12, true, 1, 256, &c->n_heads, err)) ||
        (s = get_int(r, p, inter, 4LL * c->hidden_size, true, 1, 1 << 17, &c->intermediate_size, err)) ||
        (s = get_int(r, p, pos, 1024, true, 1, 1 << 20, &c->max_positions, err)) ||
        (s = parse_activation(p, "activation_function", json_object_get(r, "activation_function"), "gelu_new",
                              &c->activation, err)) ||
        (s = get_eps(r, p, "layer_norm_epsilon", 1e-5, &c->layer_norm_eps, err)) ||
        (s = get_token_id(r, p, "pad_token_id", -1, c->vocab_size, &c->pad_token_id, err)) ||
        (s = get_token_id(r, p, "bos_token_id", 50256 < c->vocab_size ? 50256 : -1, c->vocab_size,
                          &c->bos_token_id, err)) ||
        (s = get_token_id(r, p, "eos_token_id", 50256 < c->vocab_size ? 50256 : -1, c->vocab_size,
                          &c->eos_token_id, err)))
        return s;
    bool scale = true, inv_idx = false, cross = false;
    if ((s = get_bool(r, p, "scale_attn_weights", true, &scale, err)) ||
        (s = get_bool(r, p, "scale_attn_by_inverse_layer_idx", false, &inv_idx, err)) ||
        (s = get_bool(r, p, "add_cross_attention", false, &cross, err)))
        return s;
    if (!scale || inv_idx || cross)
        return mcli_fail(
            err, MCLI_ERR_UNSUPPORTED,
            "%s: GPT-2 variants with scale_attn_weights=false, scale_attn_by_inverse_layer_idx=true "
            "or add_cross_attention=true are not supported",
            p);
    c->type_vocab_size = 0;
    return MCLI_OK;
}

/* Resolves `path` to a config.json file (a directory means DIR/config.json). */
static mcli_status resolve_path(const char *path, char *buf, size_t cap, mcli_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return mcli_fail(err, MCLI_ERR_NOT_FOUND, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        if ((size_t)snprintf(buf, cap, "%s/config.json", path) >= cap)
            return mcli_fail(err, MCLI_ERR_INVALID_ARG, "%s: path too long", path);
        if (stat(buf, &st) != 0)
            return mcli_fail(err, MCLI_ERR_NOT_FOUND, "%s: no config.json in the model directory", path);
    } else if ((size_t)snprintf(buf, cap, "%s", path) >= cap) {
        return mcli_fail(err, MCLI_ERR_INVALID_ARG, "%s: path too long", path);
    }
    if (!S_ISREG(st.st_mode))
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: not a regular file", buf);
    if ((uint64_t)st.st_size > CFG_MAX_BYTES)
        return mcli_fail(err, MCLI_ERR_TOO_LARGE, "%s: %lld bytes, over the %u MB limit for config.json", buf,
                         (long long)st.st_size, CFG_MAX_BYTES >> 20);
    return MCLI_OK;
}

mcli_status config_load(const char *path, mcli_config *out, mcli_err *err)
{
    memset(out, 0, sizeof *out);
    out->pad_token_id = out->bos_token_id = out->eos_token_id = -1;
    char file[4096];
    json_t *root = NULL;
    mcli_status s = resolve_path(path, file, sizeof file, err);
    if (s != MCLI_OK)
        return s;
    json_error_t jerr;
    root = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return mcli_fail(err, MCLI_ERR_FORMAT, "%s: invalid JSON at line %d: %s", file, jerr.line, jerr.text);
    if (!json_is_object(root)) {
        s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: not a JSON object", file);
        goto fail;
    }
    json_t *archs = json_object_get(root, "architectures");
    const char *arch0 = NULL;
    if (archs && !json_is_null(archs)) {
        if (!json_is_array(archs) ||
            (json_array_size(archs) > 0 && !json_is_string(json_array_get(archs, 0)))) {
            s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: \"architectures\" must be a list of class names", file);
            goto fail;
        }
        arch0 = json_string_value(json_array_get(archs, 0));
    }
    if (arch0 && strlen(arch0) >= sizeof out->architecture) {
        s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: architectures[0] is over %zu bytes", file,
                      sizeof out->architecture - 1);
        goto fail;
    }
    snprintf(out->architecture, sizeof out->architecture, "%s", arch0 ? arch0 : "");

    json_t *mt = json_object_get(root, "model_type");
    const char *type = json_string_value(mt);
    if (mt && !type) {
        s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: \"model_type\" must be a string", file);
        goto fail;
    }
    if (!type && arch0) { /* very old configs: infer from the class name */
        if (strncmp(arch0, "DistilBert", 10) == 0)
            type = "distilbert";
        else if (strncmp(arch0, "Bert", 4) == 0)
            type = "bert";
        else if (strncmp(arch0, "GPT2", 4) == 0)
            type = "gpt2";
    }
    if (!type) {
        s = mcli_fail(err, MCLI_ERR_FORMAT,
                      "%s: no \"model_type\" (and no recognisable architectures entry); "
                      "supported model types: %s",
                      file, supported_types);
        goto fail;
    }
    if (strcmp(type, "bert") == 0) {
        out->arch = MCLI_ARCH_BERT;
        s = load_bert(root, file, out, err);
    } else if (strcmp(type, "distilbert") == 0) {
        out->arch = MCLI_ARCH_DISTILBERT;
        s = load_distilbert(root, file, out, err);
    } else if (strcmp(type, "gpt2") == 0) {
        out->arch = MCLI_ARCH_GPT2;
        s = load_gpt2(root, file, out, err);
    } else {
        s = mcli_fail(err, MCLI_ERR_UNSUPPORTED, "%s: model_type \"%.64s\" is not supported (supported: %s)",
                      file, type, supported_types);
    }
    if (s != MCLI_OK)
        goto fail;
    snprintf(out->model_type, sizeof out->model_type, "%s", mcli_arch_name(out->arch));
    if (out->hidden_size % out->n_heads != 0) {
        s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: hidden size %d is not a multiple of the %d attention heads",
                      file, out->hidden_size, out->n_heads);
        goto fail;
    }
    out->head = head_from_architecture(out->architecture, file);
    s = parse_labels(root, file, out, err);
    if (s != MCLI_OK)
        goto fail;
    json_t *pt = json_object_get(root, "problem_type");
    if (pt && !json_is_null(pt)) {
        const char *ps = json_string_value(pt);
        if (!ps) {
            s = mcli_fail(err, MCLI_ERR_FORMAT, "%s: \"problem_type\" must be a string", file);
            goto fail;
        }
        out->multi_label = strcmp(ps, "multi_label_classification") == 0;
    }
    json_decref(root);
    return MCLI_OK;
fail:
    json_decref(root);
    config_free(out);
    return s;
}
