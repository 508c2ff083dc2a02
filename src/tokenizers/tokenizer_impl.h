/* tokenizer_impl.h - the tokenizer object, shared by the loaders (tokenizer.c for
 * vocab.txt / vocab.json + merges.txt, tokenizer_json.c for tokenizer.json). Not a public
 * contract: callers use tokenizer.h.
 *
 * Ownership: everything reachable from mcli_tokenizer is owned by it and freed by
 * tokenizer_free(). After loading nothing is written except the BPE cache (locked).
 */
#ifndef MCLI_TOKENIZERS_TOKENIZER_IMPL_H
#define MCLI_TOKENIZERS_TOKENIZER_IMPL_H

#include <jansson.h>

#include "tokenizers/bpe.h"
#include "tokenizers/tokenizer.h"
#include "tokenizers/vocab.h"
#include "tokenizers/wordpiece.h"

#define TOK_MAX_ADDED 4096               /* added tokens per tokenizer */
#define TOK_MAX_FILE_BYTES (64u << 20)   /* vocab.txt, vocab.json, merges.txt */
#define TOK_MAX_JSON_BYTES (128u << 20)  /* tokenizer.json */
#define TOK_MAX_CONFIG_BYTES (16u << 20) /* tokenizer_config.json & co */

#define TOK_F_SPECIAL 1u /* in all_special_ids: skipped by decode(skip_special) */
#define TOK_F_ADDED 2u   /* an added token outside the base vocabulary: decodes as its text */
#define TOK_F_LEGACY 4u  /* Python's decode sets it apart as its own sub-text */

typedef struct {
    char *content; /* owned, NUL-terminated */
    size_t len;
    int32_t id;
    bool special;        /* a special token: skipped by decode(skip_special) */
    bool lstrip, rstrip; /* absorb whitespace on that side when matched in text */
} added_tok;

struct mcli_tokenizer {
    mcli_tok_kind kind;
    tok_vocab *vocab;
    size_t base_vocab; /* id range of the model vocabulary before added tokens */
    wordpiece *wp;     /* kind == WORDPIECE */
    bpe *bpe;          /* kind == BPE */
    wp_opts wpo;       /* options the wordpiece was built with (never_split not kept) */
    added_tok *added;  /* [n_added], matched in text longest-first at each position */
    size_t n_added, cap_added;
    uint8_t added_first[32]; /* bitset of the first bytes of added tokens */
    uint8_t *id_flags;       /* [vocab_id_range] TOK_F_* bits per id */
    mcli_special_ids sp;
    int32_t pp_cls, pp_sep;  /* post-processor ids ([CLS] A [SEP] B [SEP]); -1: none */
    size_t model_max_length; /* 0 = unknown / unlimited */
    bool cleanup_spaces;     /* clean_up_tokenization_spaces on decode */
    bool add_prefix_space;   /* BPE: prepend " " before encoding */
    char wp_prefix[16];      /* WordPiece decoder prefix, "##" */
    const char *source;      /* "tokenizer.json" or "vocab.txt" / "vocab.json+merges.txt" */
};

/* Allocates an empty tokenizer of the given kind with its vocab. */
mcli_status tok_alloc(mcli_tok_kind kind, mcli_tokenizer **out, mcli_err *err) MCLI_MUST_USE;
/* Registers an added token (also sets it in the vocab). Re-adding the same content updates it. */
mcli_status tok_add_token(mcli_tokenizer *t, const char *content, size_t len, int32_t id, bool special,
                          bool lstrip, bool rstrip, mcli_err *err) MCLI_MUST_USE;
/* Computes id_flags and the lookup tables once all tokens are in. */
mcli_status tok_finish(mcli_tokenizer *t, mcli_err *err) MCLI_MUST_USE;

/* Reads a whole file (at most max bytes) into a NUL-terminated buffer the caller frees.
 * A missing file is MCLI_ERR_NOT_FOUND. */
mcli_status tok_read_file(const char *path, size_t max, char **buf, size_t *len, mcli_err *err) MCLI_MUST_USE;

/* Config helpers (tokenizer.c). A JSON file read with tok_load_json_file must be an object;
 * with optional, a missing file gives *out = NULL and MCLI_OK. */
mcli_status tok_load_json_file(const char *path, json_t **out, bool optional, mcli_err *err) MCLI_MUST_USE;
bool tok_json_bool(const json_t *obj, const char *key, bool dflt);
size_t tok_json_max_length(const json_t *cfg);
/* A token written as "text" or {"content": "text"}; NULL otherwise. */
const char *tok_json_token_text(const json_t *v);
/* Looks key ("unk_token", ...) up in cfg, then map, then dflt; sets *id to its vocabulary id and
 * registers it as a special added token, or *id = -1 if it is not in the vocabulary. */
mcli_status tok_resolve_special(mcli_tokenizer *t, const json_t *cfg, const json_t *map, const char *key,
                                const char *dflt, int32_t *id, mcli_err *err) MCLI_MUST_USE;
/* added_tokens_decoder of cfg, dir/added_tokens.json, additional_special_tokens. */
mcli_status tok_load_added(mcli_tokenizer *t, const char *dir, const json_t *cfg, const json_t *map,
                           mcli_err *err) MCLI_MUST_USE;

/* Loads dir/tokenizer.json (tokenizer_json.c). */
mcli_status tokenizer_json_load(const char *path, mcli_tokenizer **out, mcli_err *err) MCLI_MUST_USE;

#endif
