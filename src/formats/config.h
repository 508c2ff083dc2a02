/* config.h - a model's config.json, validated and reduced to what the engine needs.
 * Ownership: config_load fills a caller-owned mcli_config whose strings/arrays it owns;
 * release with config_free(). Thread-safety: plain data, read-only after load. */
#ifndef MCLI_FORMATS_CONFIG_H
#define MCLI_FORMATS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "util/status.h"

typedef enum { MCLI_ARCH_BERT, MCLI_ARCH_DISTILBERT, MCLI_ARCH_GPT2 } mcli_arch;
typedef enum { MCLI_ACT_GELU, MCLI_ACT_GELU_NEW, MCLI_ACT_RELU } mcli_activation;
/* What the `architectures` entry asks for (the weights may still lack that head). */
typedef enum { MCLI_HEAD_BASE, MCLI_HEAD_SEQ_CLS, MCLI_HEAD_MASKED_LM, MCLI_HEAD_CAUSAL_LM } mcli_head_kind;

typedef struct {
    mcli_arch arch;
    char model_type[32];      /* "bert", "distilbert", "gpt2" */
    char architecture[128];   /* architectures[0], e.g. "DistilBertForSequenceClassification"; "" if absent */
    mcli_head_kind head;
    int vocab_size;
    int hidden_size;          /* BERT hidden_size, DistilBERT dim, GPT-2 n_embd */
    int n_layers;             /* num_hidden_layers / n_layers / n_layer */
    int n_heads;              /* num_attention_heads / n_heads / n_head */
    int intermediate_size;    /* BERT intermediate_size, DistilBERT hidden_dim, GPT-2 n_inner or 4*n_embd */
    int max_positions;        /* max_position_embeddings / n_positions */
    int type_vocab_size;      /* BERT only; 0 otherwise */
    mcli_activation activation;
    float layer_norm_eps;     /* BERT layer_norm_eps, GPT-2 layer_norm_epsilon, DistilBERT 1e-12 */
    bool sinusoidal_pos_embds;/* DistilBERT option */
    int n_labels;             /* from id2label / num_labels; 0 if none */
    char **labels;            /* [n_labels] label names indexed by id ("LABEL_0".. if unnamed) */
    bool multi_label;         /* problem_type == "multi_label_classification" */
    int pad_token_id, bos_token_id, eos_token_id; /* -1 if absent */
} mcli_config;

/* Reads dir/config.json (or a path to a .json file). Unknown model_type -> MCLI_ERR_UNSUPPORTED
 * naming it and the supported ones. */
mcli_status config_load(const char *path, mcli_config *out, mcli_err *err) MCLI_MUST_USE;
void config_free(mcli_config *c);

const char *mcli_arch_name(mcli_arch a);

#endif
