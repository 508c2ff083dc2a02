"""GPT-2 byte-level BPE: training a small vocabulary, and encoding exactly as GPT-2's tokenizer does.

Written from the published description of GPT-2's tokenizer (the byte-to-unicode table, the
pre-tokenizer pattern, rank-ordered merges). Output files follow the GPT-2 layout:
vocab.json (token -> id; the 256 byte tokens first in byte_encoder order, then merges in order,
<|endoftext|> last) and merges.txt ("#version: 0.2" then one "left right" pair per line).
"""
import heapq
import json

try:
    import regex
except ImportError:  # pragma: no cover - the Debian package python3-regex provides it
    raise SystemExit("the GPT-2 pre-tokenizer needs the `regex` module: apt-get install python3-regex")

# The pre-tokenizer pattern published with GPT-2.
PAT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
EOT = "<|endoftext|>"


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character table, in its canonical order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return list(zip(bs, [chr(c) for c in cs]))


BYTE_ORDER = bytes_to_unicode()
BYTE_ENCODER = dict(BYTE_ORDER)
BYTE_DECODER = {c: b for b, c in BYTE_ORDER}


def pretokenize(text):
    """text -> list of pre-tokens, each already mapped through the byte encoder."""
    return ["".join(BYTE_ENCODER[b] for b in tok.encode("utf-8")) for tok in PAT.findall(text)]


def train_merges(word_counts, n_merges, join=lambda a, b: a + b, log=None):
    """Classic BPE on a {tuple(symbols): count} table.

    Returns the merges in order [(left, right)]. Ties are broken by the smaller pair, so the
    result is deterministic. Merges whose result string already exists are skipped for the
    vocabulary count but still listed (new_tokens tells which strings are new)."""
    words = [list(w) for w in word_counts]
    freqs = [word_counts[w] for w in word_counts]
    pair_counts = {}
    where = {}
    for i, w in enumerate(words):
        f = freqs[i]
        for p in zip(w, w[1:]):
            pair_counts[p] = pair_counts.get(p, 0) + f
            where.setdefault(p, set()).add(i)
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)
    merges = []
    new_tokens = []
    seen = set(s for w in words for s in w)
    while len(new_tokens) < n_merges and heap:
        negc, pair = heapq.heappop(heap)
        cur = pair_counts.get(pair, 0)
        if cur <= 0:
            continue
        if -negc != cur:
            heapq.heappush(heap, (-cur, pair))
            continue
        if cur < 2:
            break
        a, b = pair
        merged = join(a, b)
        merges.append(pair)
        if merged not in seen:
            seen.add(merged)
            new_tokens.append(merged)
        touched = {}
        for i in where.pop(pair, ()):
            w = words[i]
            f = freqs[i]
            if len(w) < 2:
                continue
            for p in zip(w, w[1:]):
                touched[p] = touched.get(p, 0) - f
            out = []
            j = 0
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    out.append(merged)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            words[i] = out
            for p in zip(out, out[1:]):
                touched[p] = touched.get(p, 0) + f
                where.setdefault(p, set()).add(i)
        for p, d in touched.items():
            if d == 0:
                continue
            c = pair_counts.get(p, 0) + d
            pair_counts[p] = c
            if c > 0:
                heapq.heappush(heap, (-c, p))
        pair_counts.pop(pair, None)
        if log and len(merges) % 500 == 0:
            log("bpe: %d merges, last %r+%r (count %d)" % (len(merges), a, b, cur))
    return merges, new_tokens


class ByteBPE:
    """A GPT-2 style tokenizer over a given vocabulary and merge list."""

    def __init__(self, vocab, merges):
        self.encoder = vocab
        self.decoder = {i: t for t, i in vocab.items()}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.merges = merges
        self.cache = {}
        self.eot_id = vocab[EOT]

    @classmethod
    def train(cls, texts, vocab_size, log=None):
        """texts: iterable of str. vocab_size counts the 256 bytes and <|endoftext|>."""
        counts = {}
        for t in texts:
            for tok in pretokenize(t):
                counts[tok] = counts.get(tok, 0) + 1
        word_counts = {tuple(w): c for w, c in counts.items()}
        merges, new_tokens = train_merges(word_counts, vocab_size - 257, log=log)
        vocab = {}
        for _, ch in BYTE_ORDER:
            vocab[ch] = len(vocab)
        for t in new_tokens:
            vocab[t] = len(vocab)
        vocab[EOT] = len(vocab)
        return cls(vocab, merges)

    def bpe(self, token):
        """One pre-token (byte-encoded str) -> list of vocabulary strings (GPT-2's algorithm)."""
        if token in self.cache:
            return self.cache[token]
        word = list(token)
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            first, second = best
            new = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new.extend(word[i:])
                    break
                new.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new.append(first + second)
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = new
        self.cache[token] = word
        return word

    def encode(self, text):
        """Plain text (no special tokens inside) -> ids."""
        ids = []
        for tok in pretokenize(text):
            ids.extend(self.encoder[p] for p in self.bpe(tok))
        return ids

    def decode(self, ids):
        parts = []
        for i in ids:
            t = self.decoder[i]
            if t == EOT:
                parts.append(t.encode("utf-8"))
            else:
                parts.append(bytes(BYTE_DECODER[c] for c in t))
        return b"".join(parts).decode("utf-8", errors="replace")

    def save(self, directory, model_max_length):
        with open(directory + "/vocab.json", "w", encoding="utf-8") as f:
            json.dump(self.encoder, f, ensure_ascii=False)
        with open(directory + "/merges.txt", "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n")
            for a, b in self.merges:
                f.write("%s %s\n" % (a, b))
        special = {"bos_token": EOT, "eos_token": EOT, "unk_token": EOT}
        with open(directory + "/special_tokens_map.json", "w") as f:
            json.dump(special, f, indent=2)
            f.write("\n")
        cfg = {"add_prefix_space": False, "bos_token": EOT, "eos_token": EOT, "unk_token": EOT,
               "errors": "replace", "model_max_length": model_max_length,
               "tokenizer_class": "GPT2Tokenizer", "clean_up_tokenization_spaces": False}
        with open(directory + "/tokenizer_config.json", "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")

    @classmethod
    def load(cls, directory):
        with open(directory + "/vocab.json", encoding="utf-8") as f:
            vocab = json.load(f)
        merges = []
        with open(directory + "/merges.txt", encoding="utf-8") as f:
            for n, line in enumerate(f):
                line = line.rstrip("\n")
                if n == 0 and line.startswith("#version"):
                    continue
                if line:
                    a, b = line.split(" ")
                    merges.append((a, b))
        return cls(vocab, merges)
