/* unicode.h - the small set of Unicode facts the tokenizers need, on top of utf8proc.
 *
 * UTF-8 decoding is strict (no overlongs, no surrogates, nothing above U+10FFFF): text that
 * fails uni_utf8_valid() is rejected by the tokenizers, never repaired. Character classes
 * follow transformers' Python BertTokenizer (see docs in unicode.c for each rule).
 * Unicode data comes from utf8proc (its tables may be newer than Python's Unicode 14:
 * characters assigned after Unicode 14 can classify differently from the reference).
 *
 * All functions are pure and thread-safe.
 */
#ifndef MCLI_TOKENIZERS_UNICODE_H
#define MCLI_TOKENIZERS_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decodes one code point at s[0..len). Returns the sequence length (1..4) and sets *cp, or 0
 * if the bytes at s do not start a complete, valid UTF-8 sequence. */
size_t uni_utf8_decode(const uint8_t *s, size_t len, uint32_t *cp);
/* Encodes cp (<= 0x10FFFF, not a surrogate) to out[0..4); returns the byte count. */
size_t uni_utf8_encode(uint32_t cp, uint8_t out[4]);
/* True if s[0..len) is entirely valid UTF-8. If not and bad_at is non-NULL, sets the byte
 * offset of the first invalid sequence. */
bool uni_utf8_valid(const uint8_t *s, size_t len, size_t *bad_at);

/* BERT classes (transformers BasicTokenizer). */
bool uni_is_bert_control(uint32_t cp);    /* category C* except \t \n \r */
bool uni_is_bert_whitespace(uint32_t cp); /* ' ', \t, \n, \r, category Zs */
bool uni_is_py_split_space(uint32_t cp);  /* extra separators of Python's str.split(): U+2028, U+2029 */
bool uni_is_bert_punct(uint32_t cp);      /* category P*, or ASCII 33-47, 58-64, 91-96, 123-126 */
bool uni_is_cjk(uint32_t cp);             /* the CJK ideograph blocks transformers lists */
bool uni_is_mn(uint32_t cp);              /* category Mn (nonspacing mark) */
int uni_combining_class(uint32_t cp);

/* Python's str.lower() of one code point: writes 1 or 2 code points (U+0130 -> i + U+0307). */
size_t uni_lower_py(uint32_t cp, uint32_t out[2]);

/* Canonical decomposition (NFD) of one code point, without reordering; returns the count
 * written to out (at most cap; a result larger than cap is an internal error -> 0). */
size_t uni_nfd_char(uint32_t cp, uint32_t *out, size_t cap);

#endif
