#!/bin/sh
# Builds the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined) - safetensors (header
# parser), pickle (the unpickler), checkpoint (whole files through weights_open_file), wordpiece and
# bpe (the tokenizers, over the real vocabularies in $MCLI_SHARED/vocab) - and runs each for
# FUZZ_SECONDS (default 20) with seed corpora from tests/fixtures. CTest runs it briefly (label fuzz).
#   tests/fuzz/run.sh                 # all five targets
#   FUZZ_SECONDS=300 tests/fuzz/run.sh pickle
# Output and the grown corpora go to $FUZZ_OUT (default build-fuzz/ in the source tree).
# Exit status is non-zero if a target crashes; the crashing input is left in $FUZZ_OUT.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${FUZZ_OUT:-$ROOT/build-fuzz}
SECS=${FUZZ_SECONDS:-20}
TARGETS=${*:-safetensors pickle checkpoint wordpiece bpe}
export MCLI_SHARED=${MCLI_SHARED:-$ROOT/../shared}
CC=${CC:-clang}
mkdir -p "$OUT"

CFLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -DMCLI_VERSION=\"fuzz\" -fsanitize=fuzzer,address,undefined
        -fno-sanitize-recover=undefined -I$ROOT/src $(pkg-config --cflags jansson minizip)"
LIBS="$(pkg-config --libs jansson minizip) -lm -lpthread"
SRCS="$ROOT/src/formats/*.c $ROOT/src/util/*.c"
TOK_CFLAGS="$(pkg-config --cflags libutf8proc libpcre2-8)"
TOK_LIBS="$(pkg-config --libs jansson libutf8proc libpcre2-8) -lm -lpthread"
TOK_SRCS="$ROOT/src/tokenizers/*.c $ROOT/src/util/*.c"

# Seeds: the safetensors fixtures as they are; for the unpickler, every data.pkl of the zip
# fixtures and the object pickle of the legacy ones (plain python3, no torch needed).
mkdir -p "$OUT/seeds_safetensors" "$OUT/seeds_pickle" "$OUT/seeds_checkpoint" \
         "$OUT/corpus_safetensors" "$OUT/corpus_pickle" "$OUT/corpus_checkpoint" \
         "$OUT/seeds_wordpiece" "$OUT/seeds_bpe" "$OUT/corpus_wordpiece" "$OUT/corpus_bpe"
# Tokenizer seeds: the tricky-string corpus, one file per string (a leading selector byte 0 keeps
# fuzz_bpe on its text mode).
python3 - "$ROOT/tests/fixtures/gen/tokenizer_corpus.json" "$OUT" <<'PY'
import json, os, sys
corpus, out = sys.argv[1], sys.argv[2]
for i, text in enumerate(json.load(open(corpus, encoding="utf-8"))):
    b = text.encode("utf-8")
    open(os.path.join(out, "seeds_wordpiece", "s%03d" % i), "wb").write(b)
    open(os.path.join(out, "seeds_bpe", "s%03d" % i), "wb").write(b"\x00" + b)
PY
find "$ROOT/tests/fixtures/checkpoints" -name '*.safetensors' -exec cp {} "$OUT/seeds_safetensors/" \;
# whole files for fuzz_checkpoint: the small .bin and .safetensors fixtures, renamed uniquely
i=0
for f in $(find "$ROOT/tests/fixtures/checkpoints" -name '*.bin' -o -name '*.safetensors' | sort); do
    i=$((i + 1)); cp "$f" "$OUT/seeds_checkpoint/seed$i"
done
python3 - "$ROOT/tests/fixtures/checkpoints" "$OUT/seeds_pickle" <<'PY'
import os, pickletools, sys, zipfile, io
src, dst = sys.argv[1], sys.argv[2]
n = 0
for root, _, files in os.walk(src):
    for f in files:
        p = os.path.join(root, f)
        if not f.endswith(".bin"):
            continue
        raw = open(p, "rb").read()
        try:
            if raw[:2] == b"PK":
                with zipfile.ZipFile(p) as z:
                    for name in z.namelist():
                        if name.endswith("data.pkl"):
                            blob = z.read(name)
                            break
                    else:
                        continue
            else:
                s = io.BytesIO(raw)
                for _ in range(3):          # magic, protocol, sys info
                    for _op in pickletools.genops(s):
                        pass
                start = s.tell()
                for _op in pickletools.genops(s):
                    pass
                blob = raw[start:s.tell()]
        except Exception:
            continue
        n += 1
        open(os.path.join(dst, "seed%03d.pkl" % n), "wb").write(blob)
print("pickle seeds:", n)
PY

status=0
for t in $TARGETS; do
    echo "== building fuzz_$t"
    case $t in
    wordpiece|bpe)
        # shellcheck disable=SC2086
        $CC $CFLAGS $TOK_CFLAGS "$ROOT/tests/fuzz/fuzz_$t.c" $TOK_SRCS $TOK_LIBS -o "$OUT/fuzz_$t" ;;
    *)
        # shellcheck disable=SC2086
        $CC $CFLAGS "$ROOT/tests/fuzz/fuzz_$t.c" $SRCS $LIBS -o "$OUT/fuzz_$t" ;;
    esac
    echo "== running fuzz_$t for ${SECS}s"
    (cd "$OUT" && ./fuzz_$t -max_total_time="$SECS" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 "corpus_$t" "seeds_$t") || status=1
done
exit $status
