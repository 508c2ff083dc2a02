/* model_internal.h - the inside of mcli_model, shared by the engine's files only
 * (engine.c loads and dispatches; bert.c runs encoders; gpt2.c runs decoders).
 * Not for use outside src/engine/. */
#ifndef MCLI_ENGINE_MODEL_INTERNAL_H
#define MCLI_ENGINE_MODEL_INTERNAL_H

#include "engine/engine.h"
#include "formats/config.h"
#include "formats/weights.h"

typedef struct bert_model bert_model;   /* bert.c: BERT and DistilBERT encoders */
typedef struct gpt2_model gpt2_model;   /* gpt2.c: GPT-2 family decoders */

struct mcli_model {
    char name[128];            /* the model directory's base name, for messages ("distilbert-base-uncased") */
    mcli_config config;        /* owned */
    mcli_weights *weights;     /* owned; tensors below point into it */
    mcli_tokenizer *tokenizer; /* owned */
    mcli_model_info info;
    int n_threads;
    bert_model *bert;          /* set for MCLI_ARCH_BERT / MCLI_ARCH_DISTILBERT */
    gpt2_model *gpt2;          /* set for MCLI_ARCH_GPT2 */
};

/* Binds the decoder's tensors from m->weights (m->config already loaded); sets m->gpt2,
 * m->info.tasks/n_params. Implemented in gpt2.c. */
mcli_status gpt2_load(mcli_model *m, mcli_err *err) MCLI_MUST_USE;
void gpt2_free(gpt2_model *g);

/* Same for encoders; implemented in bert.c. */
mcli_status bert_load(mcli_model *m, mcli_err *err) MCLI_MUST_USE;
void bert_free(bert_model *b);

#endif
