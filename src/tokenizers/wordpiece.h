/* wordpiece.h - BERT's basic tokenizer + greedy longest-match WordPiece.
 *
 * Follows transformers' Python BertTokenizer, in this order, for text between added tokens:
 *   1. lower-case each code point on its own (PreTrainedTokenizer.tokenize lower-cases per
 *      character, so there is no final sigma; U+0130 -> "i" U+0307 like Python's str.lower),
 *   2. clean: drop NUL, U+FFFD and category C* except \t \r \n, which are whitespace,
 *   3. put spaces around CJK ideographs (supplementary-plane extensions included),
 *   4. split on whitespace (Zs, \t \r \n, and U+2028/U+2029 as Python's str.split does),
 *   5. per word: NFD then drop Mn when stripping accents (uncased default), else NFC,
 *   6. split on punctuation (P* and ASCII 33-47, 58-64, 91-96, 123-126),
 *   7. WordPiece: greedy longest match with "##" continuations; a piece of more than
 *      max_input_chars (100) code points, or one that cannot be covered, is one [UNK].
 * Offsets are code point offsets into the original input: a piece spans from the first to the
 * last original code point that produced it (a composed NFC character spans its whole
 * base+marks sequence; a mark removed by accent stripping belongs to no piece, as in HF's
 * fast tokenizers).
 *
 * Ownership: wordpiece_new borrows the vocab (it must outlive the wordpiece) and copies
 * never_split. Thread-safety: read-only after creation; encode allocates its own scratch.
 */
#ifndef MCLI_TOKENIZERS_WORDPIECE_H
#define MCLI_TOKENIZERS_WORDPIECE_H

#include "tokenizers/tok_internal.h"
#include "tokenizers/vocab.h"

typedef struct {
    bool lowercase;        /* do_lower_case */
    int strip_accents;     /* -1: same as lowercase (transformers' None), 0: no, 1: yes */
    bool tokenize_chinese; /* tokenize_chinese_chars */
    bool clean_text;       /* always true for vocab.txt; tokenizer.json may turn it off */
    int32_t unk_id;
    size_t max_input_chars;         /* 100 */
    char prefix[16];                /* continuing subword prefix, "##" */
    const char *const *never_split; /* words kept whole (not lower-cased, not split); may be NULL */
    size_t n_never_split;
} wp_opts;

typedef struct wordpiece wordpiece;

mcli_status wordpiece_new(const tok_vocab *vocab, const wp_opts *opts, wordpiece **out,
                          mcli_err *err) MCLI_MUST_USE;
void wordpiece_free(wordpiece *wp);

/* Tokenizes the code points cps[0..n) (already validated), whose first code point is at
 * offset cp_base of the whole input; appends to out. */
mcli_status wordpiece_encode(const wordpiece *wp, const uint32_t *cps, size_t n, size_t cp_base,
                             tok_list *out, mcli_err *err) MCLI_MUST_USE;

/* transformers' clean_up_tokenization on s (in place; the result is never longer). */
void wordpiece_cleanup_spaces(char *s);

#endif
