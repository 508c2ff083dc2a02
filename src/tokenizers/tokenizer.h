/* tokenizer.h - one interface over BERT WordPiece and GPT-2 byte-level BPE tokenizers.
 *
 * tokenizer_load() reads a model directory: tokenizer.json if present, else vocab.txt
 * (+ tokenizer_config.json) or vocab.json + merges.txt (+ tokenizer_config.json,
 * special_tokens_map.json). Behaviour follows transformers' Python tokenizers.
 *
 * Ownership: the tokenizer owns its vocabulary; an mcli_encoding owns its arrays and is
 * released with encoding_free(). Thread-safety: a loaded tokenizer may be used from any
 * number of threads at once (internal caches are locked).
 *
 * Behaviour worth knowing (details in wordpiece.h, bpe.h, tokenizer_json.c):
 * - Added / special tokens ([CLS], [MASK], <|endoftext|>, added_tokens) are recognised inside
 *   the text, case-sensitively, as single tokens, before the model sees the rest.
 * - Offsets are code point offsets into the text (or into the pair text for type id 1 tokens);
 *   BERT pieces span the original characters that produced them (a stripped combining mark
 *   belongs to none: HF's Rust tokenizers do the same, see tests/fixtures/tokenizers),
 *   GPT-2 tokens span the characters holding their first to last byte (so "Ġworld" includes
 *   the space, and both tokens of a 4-byte emoji split in two span that emoji).
 * - Decode follows Python's decode: WordPiece joins "##" pieces and, unless
 *   clean_up_tokenization_spaces is false, applies its clean-up (" ." -> ".", " ' " -> "'",
 *   " n't" -> "n't"...); GPT-2 decodes bytes exactly (invalid UTF-8 -> U+FFFD per maximal
 *   subpart). An id outside the vocabulary is MCLI_ERR_INVALID_ARG (Python would print [UNK]).
 * - Truncation of pairs is longest-first, one token at a time, the second text on ties.
 * - Limits: text over 64 MiB is MCLI_ERR_TOO_LARGE; vocab files over 64 MiB, tokenizer.json
 *   over 128 MiB, invalid UTF-8 vocabularies, malformed merges lines are MCLI_ERR_FORMAT /
 *   MCLI_ERR_TOO_LARGE with the file and line in the message.
 */
#ifndef MCLI_TOKENIZERS_TOKENIZER_H
#define MCLI_TOKENIZERS_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

typedef struct mcli_tokenizer mcli_tokenizer;

typedef enum { MCLI_TOK_WORDPIECE, MCLI_TOK_BPE } mcli_tok_kind;

typedef struct {
    int32_t *ids;      /* [n] token ids */
    int32_t *type_ids; /* [n] segment ids (0 for the first text, 1 for the pair) */
    int32_t *offsets;  /* [2n] start,end character (code point) offsets into the input; 0,0 for specials */
    uint8_t *special;  /* [n] 1 where the token was added by the post-processor ([CLS], [SEP]) */
    size_t n;
    bool truncated; /* the input was longer than max_length and was cut */
} mcli_encoding;

typedef struct {
    bool add_special_tokens; /* [CLS] a [SEP] (b [SEP]) for BERT; nothing for GPT-2 */
    size_t max_length;       /* 0 = no limit */
    bool truncate;           /* true: cut to max_length; false: exceeding it is MCLI_ERR_TOO_LARGE */
} mcli_tok_opts;

mcli_status tokenizer_load(const char *dir, mcli_tokenizer **out, mcli_err *err) MCLI_MUST_USE;
void tokenizer_free(mcli_tokenizer *t);

mcli_tok_kind tokenizer_kind(const mcli_tokenizer *t);
size_t tokenizer_vocab_size(const mcli_tokenizer *t);
/* model_max_length from the tokenizer's config (512 for BERT, 1024 for GPT-2), 0 if unknown.
 * Added: callers may pass it as mcli_tok_opts.max_length. */
size_t tokenizer_model_max_length(const mcli_tokenizer *t);

/* Encodes UTF-8 text (len bytes; invalid UTF-8 -> MCLI_ERR_INVALID_ARG); pair may be NULL. */
mcli_status tokenizer_encode(const mcli_tokenizer *t, const char *text, size_t len, const char *pair,
                             size_t pair_len, const mcli_tok_opts *opts, mcli_encoding *out,
                             mcli_err *err) MCLI_MUST_USE;
void encoding_free(mcli_encoding *e);

/* Decodes ids to a NUL-terminated UTF-8 string owned by the caller (free()). */
mcli_status tokenizer_decode(const mcli_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                             char **out, mcli_err *err) MCLI_MUST_USE;

/* Same, also giving the byte length (the text may contain NUL bytes when the ids encode them).
 * Added for byte-exact round trips. */
mcli_status tokenizer_decode_len(const mcli_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                                 char **out, size_t *out_len, mcli_err *err) MCLI_MUST_USE;

/* Vocabulary string of a token (e.g. "##ing", "Ġthe"), or NULL if out of range. */
const char *tokenizer_id_to_token(const mcli_tokenizer *t, int32_t id);
/* Id of a vocabulary string, or -1. */
int32_t tokenizer_token_to_id(const mcli_tokenizer *t, const char *token);

/* Special token ids, -1 when the tokenizer has none. */
typedef struct {
    int32_t unk, cls, sep, pad, mask, bos, eos;
} mcli_special_ids;
const mcli_special_ids *tokenizer_special(const mcli_tokenizer *t);

/* Incremental decoding for streaming: feed ids one at a time, get back only text that ends
 * on complete UTF-8 sequences. Caller owns the mcli_detok (detok_free). */
typedef struct mcli_detok mcli_detok;
mcli_status detok_new(const mcli_tokenizer *t, bool skip_special, mcli_detok **out,
                      mcli_err *err) MCLI_MUST_USE;
/* Appends the text made complete by id to *piece (NUL-terminated, owned by detok, valid until
 * the next call); *piece_len may be 0. */
mcli_status detok_push(mcli_detok *d, int32_t id, const char **piece, size_t *piece_len,
                       mcli_err *err) MCLI_MUST_USE;
/* Whatever bytes remain (an incomplete sequence at the end, decoded with U+FFFD). */
mcli_status detok_flush(mcli_detok *d, const char **piece, size_t *piece_len, mcli_err *err) MCLI_MUST_USE;
void detok_free(mcli_detok *d);

#endif
