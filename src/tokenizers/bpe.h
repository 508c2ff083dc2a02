/* bpe.h - GPT-2 byte-level BPE: pre-tokenisation regex, merges by rank, a word cache.
 *
 * Encoding of a chunk of text (between added tokens), as transformers' GPT2Tokenizer:
 *   1. split with the GPT-2 pattern
 *        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *      (PCRE2, UTF + UCP, JIT when available; \s is spelled out as Unicode White_Space, the
 *      set Python's `regex` module uses, so it does not depend on PCRE2's idea of \s),
 *   2. map each byte of a piece to its printable stand-in (bytes_to_unicode),
 *   3. merge adjacent symbols, lowest merge rank first, until no ranked pair is left.
 * The merge loop keeps a heap of candidate pairs, so a hostile 10 MB "word" costs
 * O(n log n), not O(n^2). Results for words up to BPE_CACHE_KEY_MAX bytes are kept in a
 * bounded direct-mapped cache (striped mutexes, so encode is thread-safe).
 *
 * Offsets: a token spans the code points holding its first to its last byte.
 *
 * Ownership: bpe_new borrows the vocab (it must outlive the bpe). bpe_free(NULL) is a no-op.
 */
#ifndef MCLI_TOKENIZERS_BPE_H
#define MCLI_TOKENIZERS_BPE_H

#include "tokenizers/tok_internal.h"
#include "tokenizers/vocab.h"

typedef struct bpe bpe;

/* Creates an empty merge table over vocab: every byte's stand-in character must be a token. */
mcli_status bpe_new(const tok_vocab *vocab, bpe **out, mcli_err *err) MCLI_MUST_USE;
void bpe_free(bpe *b);

/* Adds the merge (left, right) with the given rank; a later add of the same pair replaces
 * the rank (Python's dict). A merge whose parts or result are not in the vocabulary is
 * counted and ignored (*skipped set). */
mcli_status bpe_add_merge(bpe *b, const char *left, size_t llen, const char *right, size_t rlen,
                          uint32_t rank, bool *skipped, mcli_err *err) MCLI_MUST_USE;

/* Parses merges.txt content: an optional first "#version" line, then one "left right" pair
 * per line; trailing empty lines are allowed, any other malformed line is an error naming
 * its line number. */
mcli_status bpe_load_merges_txt(bpe *b, const char *data, size_t len, const char *path,
                                mcli_err *err) MCLI_MUST_USE;
size_t bpe_merge_count(const bpe *b);
size_t bpe_skipped_merges(const bpe *b);

/* Encodes text[from..to) (valid UTF-8, a whole chunk between added tokens). cp_of_byte maps
 * a byte offset of text to the code point index of the character holding it. */
mcli_status bpe_encode(const bpe *b, const char *text, size_t from, size_t to, const int32_t *cp_of_byte,
                       tok_list *out, mcli_err *err) MCLI_MUST_USE;

/* Appends the bytes a byte-level token string stands for to out (at most strlen(tok) bytes);
 * returns the count, or -1 if tok contains a character that is not a byte stand-in. */
long bpe_token_bytes(const char *tok, size_t len, uint8_t *out);

/* The printable stand-in code point of byte b (GPT-2 bytes_to_unicode). */
uint32_t bpe_byte_char(uint8_t b);

#endif
