/* weights.h - the named tensors of one model directory, whatever file format holds them.
 *
 * weights_open() finds model.safetensors, a sharded model.safetensors.index.json,
 * or pytorch_model.bin (torch zip or legacy format; sharded index too) and exposes every
 * tensor as a contiguous, row-major float32 array: F32 safetensors data is mapped
 * zero-copy; F16/BF16 and non-contiguous torch views are converted into buffers owned
 * by the weights set. Nothing in a file is ever executed; every offset is checked.
 *
 * In detail: contiguous F32 data that is 4-byte aligned in its file (safetensors, torch zip
 * entries, legacy storages) is used in place from a read-only private mapping; everything else
 * (F16, BF16, F64, strided views, unaligned legacy storages) is converted once at open, and the
 * source pages are dropped again, so memory stays near one float32 copy of the model. Integer
 * and bool tensors are listed (name, dtype, shape) with data == NULL. Tensors sharing a storage
 * (tied weights saved by torch) point to the same memory when used in place. The formats'
 * readers: safetensors.c, torch_zip.c, torch_legacy.c with the restricted unpickler in
 * torch_pickle.c (only torch's rebuild functions, storage types and OrderedDict may appear).
 *
 * Ownership: the mcli_weights owns its mappings and buffers; tensor pointers stay valid
 * until weights_free(). Thread-safety: immutable after weights_open(); any number of
 * threads may read it at once.
 */
#ifndef MCLI_FORMATS_WEIGHTS_H
#define MCLI_FORMATS_WEIGHTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

#define MCLI_MAX_DIMS 8

typedef enum {
    MCLI_DT_F32,
    MCLI_DT_F16,
    MCLI_DT_BF16,
    MCLI_DT_F64,
    MCLI_DT_I64,
    MCLI_DT_I32,
    MCLI_DT_I16,
    MCLI_DT_I8,
    MCLI_DT_U8,
    MCLI_DT_BOOL,
} mcli_dtype;

typedef struct {
    const char *name;               /* as spelled in the file, e.g. "bert.encoder.layer.0.attention.self.query.weight" */
    mcli_dtype file_dtype;          /* dtype stored in the file */
    int ndim;
    int64_t shape[MCLI_MAX_DIMS];
    size_t numel;
    const float *data;              /* contiguous row-major float32 view (NULL for non-float tensors) */
} mcli_tensor;

typedef struct mcli_weights mcli_weights;

/* Opens the weights in directory dir. On success *out owns everything; free with weights_free(). */
mcli_status weights_open(const char *dir, mcli_weights **out, mcli_err *err) MCLI_MUST_USE;

/* Opens one file (safetensors or pytorch .bin of either format) directly. */
mcli_status weights_open_file(const char *path, mcli_weights **out, mcli_err *err) MCLI_MUST_USE;

/* Like weights_open() but converts nothing, for describing a model cheaply (mcli inspect):
 * names, dtypes, shapes, weights_bytes() and weights_format() are as weights_open() reports;
 * tensors used in place keep their data, all others have data == NULL. */
mcli_status weights_open_meta(const char *dir, mcli_weights **out, mcli_err *err) MCLI_MUST_USE;

void weights_free(mcli_weights *w);

size_t weights_count(const mcli_weights *w);
const mcli_tensor *weights_at(const mcli_weights *w, size_t i);

/* Exact-name lookup; NULL if absent. */
const mcli_tensor *weights_find(const mcli_weights *w, const char *name);

/* Total bytes of float32 tensor data exposed, and a short description of the file format
 * ("safetensors", "safetensors (3 shards)", "pytorch zip", "pytorch legacy"). */
size_t weights_bytes(const mcli_weights *w);

/* True if a and b (tensors of w) are the same bytes of the same file read the same way - e.g.
 * tied weights that torch.save stored once for two names. */
bool weights_same_source(const mcli_weights *w, const mcli_tensor *a, const mcli_tensor *b);
const char *weights_format(const mcli_weights *w);

const char *mcli_dtype_name(mcli_dtype dt);

/* Parameter names as real checkpoints spell them. `canonical` is transformers' name without
 * the base-model prefix, e.g. "embeddings.word_embeddings.weight",
 * "encoder.layer.3.attention.output.LayerNorm.weight" (BERT), "transformer.layer.0.ffn.lin1.weight"
 * -> canonical "transformer.layer.0.ffn.lin1.weight" (DistilBERT keeps its inner "transformer."),
 * "h.0.attn.c_attn.weight" (GPT-2); heads keep their own names: "classifier.weight",
 * "pre_classifier.weight", "pooler.dense.weight", "cls.predictions.transform.dense.weight",
 * "vocab_transform.weight", "lm_head.weight". Tries the name as is, with the architecture's
 * prefix ("bert.", "distilbert.", "transformer."), and old "LayerNorm.gamma"/".beta" spellings.
 * arch_prefix is e.g. "bert". Returns NULL if absent (tied weights are the engine's concern). */
const mcli_tensor *weights_lookup(const mcli_weights *w, const char *arch_prefix, const char *canonical);

#endif
