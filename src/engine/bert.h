/* bert.h - BERT and DistilBERT encoders: embeddings, post-LN transformer blocks, and the heads
 * (pooling, sequence classification, masked LM). Engine-internal: engine.c dispatches here.
 *
 * The maths follows transformers' modeling_bert.py and modeling_distilbert.py:
 *   x   = LayerNorm(word[id] + position[t] (+ token_type[type]))
 *   per block (post-LN):
 *     a = LayerNorm(x + Wo . Attention(Wq x + bq, Wk x + bk, Wv x + bv) + bo)
 *     x = LayerNorm(a + W2 . act(W1 a + b1) + b2)
 *   Attention = softmax(q k^T / sqrt(head_dim)) v per head.
 * The two architectures differ only in tensor names, the token-type embedding (BERT only),
 * where the 1/sqrt(head_dim) is applied (same function) and their heads. RoBERTa-style variants
 * fit by setting the position offset (padding_idx + 1) in bert_model.
 *
 * Batches are packed, not padded: the tokens of all sequences are stacked into one (N, H)
 * matrix for the dense layers, and attention runs per sequence at its own length. In
 * transformers a padded key gets score + finfo.min, whose exp is exactly 0 in float32, so the
 * results for real tokens are the same function; the parity tests compare against padded,
 * masked torch batches.
 *
 * Memory: weights are read-only views into the model's mcli_weights (plus small owned buffers:
 * concatenated q|k|v biases, computed sinusoidal positions, and for small models such as
 * bert-tiny a panel-packed copy of the layer matrices, at most 8 MB, used by one-thread calls). Each call allocates its scratch
 * once, sized from the batch (tokens are processed in chunks of at most BERT_CHUNK_TOKENS, or one
 * whole sequence if longer), and frees it before returning: calls on one model are independent
 * and may run on any number of threads at once.
 */
#ifndef MCLI_ENGINE_BERT_H
#define MCLI_ENGINE_BERT_H

#include "engine/model_internal.h"

/* Token budget of one forward chunk: bounds the scratch of big batches (~38 MB for
 * distilbert-base) while keeping the matrix products large enough to run at full speed. */
#define BERT_CHUNK_TOKENS 1024

/* See engine_embed / engine_classify / engine_mlm_logits in engine.h (same contracts). */
mcli_status bert_embed(const mcli_model *m, const mcli_seq *seqs, size_t n, mcli_pooling pool, bool normalize,
                       float *out, mcli_err *err) MCLI_MUST_USE;
mcli_status bert_classify(const mcli_model *m, const mcli_seq *seqs, size_t n, float *logits, float *probs,
                          mcli_err *err) MCLI_MUST_USE;
mcli_status bert_mlm_logits(const mcli_model *m, const mcli_seq *seq, const size_t *positions, size_t n_pos,
                            float *logits, mcli_err *err) MCLI_MUST_USE;

/* Hidden size and the longest sequence the model takes (for callers sizing outputs). */
int bert_hidden_size(const bert_model *b);
int bert_max_tokens(const bert_model *b);

#endif
