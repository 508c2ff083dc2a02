/* unicode.c - strict UTF-8 and the BERT character classes, backed by utf8proc. */
#include "tokenizers/unicode.h"

#include <utf8proc.h>

size_t uni_utf8_decode(const uint8_t *s, size_t len, uint32_t *cp)
{
    if (len == 0)
        return 0;
    uint8_t b0 = s[0];
    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    size_t n;
    uint32_t c, min;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        n = 2, c = b0 & 0x1F, min = 0x80;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        n = 3, c = b0 & 0x0F, min = 0x800;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        n = 4, c = b0 & 0x07, min = 0x10000;
    } else {
        return 0; /* continuation byte, overlong C0/C1, or F5..FF */
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return n;
}

size_t uni_utf8_encode(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

bool uni_utf8_valid(const uint8_t *s, size_t len, size_t *bad_at)
{
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = uni_utf8_decode(s + i, len - i, &cp);
        if (n == 0) {
            if (bad_at)
                *bad_at = i;
            return false;
        }
        i += n;
    }
    return true;
}

static utf8proc_category_t cat(uint32_t cp)
{
    return utf8proc_category((utf8proc_int32_t)cp);
}

/* transformers _is_control: tab, newline and carriage return count as whitespace; any other
 * category C* (Cc, Cf, Cs, Co, Cn - so also unassigned code points and noncharacters) is
 * a control character that cleaning deletes. */
bool uni_is_bert_control(uint32_t cp)
{
    if (cp == '\t' || cp == '\n' || cp == '\r')
        return false;
    if (cp < 0x80)
        return cp < 0x20 || cp == 0x7F; /* Cc */
    switch (cat(cp)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
        return true;
    default:
        return false;
    }
}

bool uni_is_bert_whitespace(uint32_t cp)
{
    if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r')
        return true;
    return cp >= 0x80 && cat(cp) == UTF8PROC_CATEGORY_ZS;
}

/* After cleaning (controls gone, Zs turned into ' '), the only code points Python's
 * str.split() still treats as separators are LINE SEPARATOR and PARAGRAPH SEPARATOR. */
bool uni_is_py_split_space(uint32_t cp)
{
    return cp == 0x2028 || cp == 0x2029;
}

bool uni_is_bert_punct(uint32_t cp)
{
    if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
        (cp >= 123 && cp <= 126))
        return true;
    if (cp < 0x80)
        return false;
    switch (cat(cp)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        return true;
    default:
        return false;
    }
}

/* transformers _is_chinese_char: the CJK Unified Ideographs blocks (not Hiragana, Katakana
 * or Hangul), including the supplementary-plane extensions B-F and the compatibility blocks. */
bool uni_is_cjk(uint32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

bool uni_is_mn(uint32_t cp)
{
    return cp >= 0x300 && cat(cp) == UTF8PROC_CATEGORY_MN;
}

int uni_combining_class(uint32_t cp)
{
    if (cp < 0x300)
        return 0;
    return utf8proc_get_property((utf8proc_int32_t)cp)->combining_class;
}

/* Python's str.lower() uses the full lowercase mapping; the only unconditional multi-code-point
 * lowercase mapping in SpecialCasing.txt is U+0130 (capital I with dot above). utf8proc gives
 * the simple mapping for everything else, which is the same. */
size_t uni_lower_py(uint32_t cp, uint32_t out[2])
{
    if (cp < 0x80) {
        out[0] = (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
        return 1;
    }
    if (cp == 0x130) {
        out[0] = 'i';
        out[1] = 0x307;
        return 2;
    }
    out[0] = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
    return 1;
}

size_t uni_nfd_char(uint32_t cp, uint32_t *out, size_t cap)
{
    if (cp < 0xC0) {
        if (cap < 1)
            return 0;
        out[0] = cp;
        return 1;
    }
    int bc = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)cp, (utf8proc_int32_t *)out,
                                                 (utf8proc_ssize_t)cap, UTF8PROC_DECOMPOSE, &bc);
    if (n <= 0 || (size_t)n > cap)
        return 0;
    return (size_t)n;
}
