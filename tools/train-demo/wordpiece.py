"""BERT's uncased tokenization (basic tokenizer + greedy WordPiece) and a small WordPiece trainer.

The encoder follows the behaviour of transformers' BertTokenizer with do_lower_case=True,
strip_accents unset (so accents are stripped), tokenize_chinese_chars=True: clean the text,
space out CJK ideographs, split on whitespace, lower-case, strip accents (NFD, drop Mn), split
on punctuation, then greedy longest-match-first WordPiece with "##" continuations; a word longer
than 100 characters or with an unmatchable piece becomes [UNK]. Training data is tokenized with
this same code so that what the model saw is what the server's tokenizer will produce.

The vocabulary is learned with BPE-style merges over "##"-prefixed continuation symbols (as the
WordPiece trainers of common libraries do), then used with greedy longest-match at encode time.
"""
import json
import unicodedata

from bpe import train_merges

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD, UNK, CLS, SEP, MASK = range(5)
MAX_CHARS_PER_WORD = 100


def _is_whitespace(ch):
    if ch in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(ch) == "Zs"


def _is_control(ch):
    if ch in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(ch).startswith("C")


def _is_punctuation(ch):
    cp = ord(ch)
    if (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (123 <= cp <= 126):
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp):
    return ((0x4E00 <= cp <= 0x9FFF) or (0x3400 <= cp <= 0x4DBF) or (0x20000 <= cp <= 0x2A6DF) or
            (0x2A700 <= cp <= 0x2B73F) or (0x2B740 <= cp <= 0x2B81F) or (0x2B820 <= cp <= 0x2CEAF) or
            (0xF900 <= cp <= 0xFAFF) or (0x2F800 <= cp <= 0x2FA1F))


def basic_tokenize(text):
    """BERT's BasicTokenizer for an uncased model: text -> list of lower-cased, accent-free words."""
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            continue
        out.append(" " if _is_whitespace(ch) else ch)
    text = "".join(out)
    out = []
    for ch in text:
        if _is_cjk(ord(ch)):
            out.extend((" ", ch, " "))
        else:
            out.append(ch)
    text = "".join(out)
    words = []
    for tok in text.strip().split():
        tok = tok.lower()
        tok = "".join(c for c in unicodedata.normalize("NFD", tok) if unicodedata.category(c) != "Mn")
        cur = []
        for ch in tok:
            if _is_punctuation(ch):
                if cur:
                    words.append("".join(cur))
                    cur = []
                words.append(ch)
            else:
                cur.append(ch)
        if cur:
            words.append("".join(cur))
    return " ".join(words).split()


class WordPiece:
    def __init__(self, tokens):
        self.tokens = tokens
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.cache = {}
        assert tokens[:5] == SPECIALS

    def word_pieces(self, word):
        if word in self.cache:
            return self.cache[word]
        if len(word) > MAX_CHARS_PER_WORD:
            return [UNK]
        ids = []
        start = 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                piece = word[start:end]
                if start > 0:
                    piece = "##" + piece
                if piece in self.vocab:
                    found = self.vocab[piece]
                    break
                end -= 1
            if found is None:
                ids = [UNK]
                break
            ids.append(found)
            start = end
        self.cache[word] = ids
        return ids

    def encode(self, text, max_len=None):
        """text -> [CLS] pieces [SEP], truncated to max_len tokens in all (as BERT truncates)."""
        ids = []
        for w in basic_tokenize(text):
            ids.extend(self.word_pieces(w))
        if max_len is not None:
            ids = ids[:max_len - 2]
        return [CLS] + ids + [SEP]

    @classmethod
    def train(cls, texts, vocab_size, min_char_count=5, log=None):
        counts = {}
        for t in texts:
            for w in basic_tokenize(t):
                counts[w] = counts.get(w, 0) + 1
        chars = {}
        for w, c in counts.items():
            for i, ch in enumerate(w):
                key = ch if i == 0 else "##" + ch
                chars[key] = chars.get(key, 0) + c
        alphabet = sorted(k for k, c in chars.items() if c >= min_char_count)
        # Every kept character also gets its continuation form so that any word of known
        # characters can be spelled out (BERT's vocabularies do the same).
        base = set(alphabet)
        for k in alphabet:
            base.add(k[2:] if k.startswith("##") else "##" + k)
        base = sorted(base)
        base_set = set(base)
        word_counts = {}
        for w, c in counts.items():
            if len(w) > MAX_CHARS_PER_WORD:
                continue
            syms = tuple(ch if i == 0 else "##" + ch for i, ch in enumerate(w))
            if all(s in base_set for s in syms):
                word_counts[syms] = word_counts.get(syms, 0) + c

        def join(a, b):
            return a + (b[2:] if b.startswith("##") else b)

        n_new = vocab_size - len(SPECIALS) - len(base)
        _, new_tokens = train_merges(word_counts, n_new, join=join, log=log)
        tokens = list(SPECIALS) + base + [t for t in new_tokens if t not in base_set]
        return cls(tokens)

    def save(self, directory, model_max_length):
        with open(directory + "/vocab.txt", "w", encoding="utf-8") as f:
            for t in self.tokens:
                f.write(t + "\n")
        special = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                   "cls_token": "[CLS]", "mask_token": "[MASK]"}
        with open(directory + "/special_tokens_map.json", "w") as f:
            json.dump(special, f, indent=2)
            f.write("\n")
        cfg = dict(special)
        cfg.update({"do_lower_case": True, "strip_accents": None, "tokenize_chinese_chars": True,
                    "do_basic_tokenize": True, "model_max_length": model_max_length,
                    "tokenizer_class": "BertTokenizer", "clean_up_tokenization_spaces": True})
        with open(directory + "/tokenizer_config.json", "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")

    @classmethod
    def load(cls, directory):
        with open(directory + "/vocab.txt", encoding="utf-8") as f:
            tokens = [line.rstrip("\n") for line in f]
        return cls(tokens)
