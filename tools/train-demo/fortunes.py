"""Reading the fortune databases that Debian's fortune packages install.

A fortune database is a text file of entries separated by lines holding a single "%".
Only the plain database files are read (not the .dat indexes, not the .u8 symlinks, never
an "off" directory of offensive fortunes). Every entry is cleaned the same way:
backspace overstriking removed, all whitespace runs collapsed to one space.

The packages (Debian 12 "bookworm"):
  fortunes, fortunes-min   English  (/usr/share/games/fortunes/*)        BSD-3-Clause (fortune-mod)
  fortunes-de              German   (/usr/share/games/fortunes/de/*)     GPL-2+
  fortunes-es              Spanish  (/usr/share/games/fortunes/es/*)     GPL-2+ (texts presumed public domain)
  fortunes-it              Italian  (/usr/share/games/fortunes/it/*)     public domain / "freeware"
  fortunes-br              Portuguese (/usr/share/games/fortunes/brasil) GPL-2+
"""
import os
import re

ROOT = "/usr/share/games/fortunes"

# English databases left out of the generator's corpus: ASCII art, and the two collections
# of jokes about ethnic groups and the sexes (a demo model should not learn to repeat them).
EN_EXCLUDE = {"ascii-art", "ethnic", "men-women", "translate-me"}

# Foreign-language databases left out: ASCII art, banners, and collections that are mostly
# English or translations (their label would be wrong).
FOREIGN_EXCLUDE = {"de/asciiart", "de/translations", "de/channel-debian.fortunes", "it/banner",
                   "es/varios.fortunes-pre"}

_WS = re.compile(r"\s+")
_OVERSTRIKE = re.compile(r".\x08")


def clean(entry):
    """One fortune entry -> one line of text (overstriking removed, whitespace collapsed)."""
    entry = _OVERSTRIKE.sub("", entry)
    entry = entry.replace("\x08", "")
    return _WS.sub(" ", entry).strip()


def read_db(path):
    """All entries of one database file, cleaned, in file order (empty ones dropped)."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    entries = []
    cur = []
    for line in text.split("\n"):
        if line.rstrip("\r") == "%":
            entries.append("\n".join(cur))
            cur = []
        else:
            cur.append(line)
    entries.append("\n".join(cur))
    out = []
    for e in entries:
        c = clean(e)
        if c:
            out.append(c)
    return out


def _db_files(directory, rel_prefix=""):
    names = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name.endswith(".dat") or name.endswith(".u8") or name == "off":
            continue
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        names.append((rel_prefix + name, path))
    return names


def english_dbs():
    """[(name, path)] of the English databases of the fortunes + fortunes-min packages."""
    out = []
    for name, path in _db_files(ROOT):
        if name in EN_EXCLUDE or name == "brasil":
            continue
        out.append((name, path))
    return out


def language_dbs():
    """{language code: [(name, path)]} for the language-identification data set."""
    langs = {"en": english_dbs()}
    for code, sub in (("de", "de"), ("es", "es"), ("it", "it")):
        d = os.path.join(ROOT, sub)
        langs[code] = [(n, p) for n, p in _db_files(d, sub + "/") if n not in FOREIGN_EXCLUDE]
    langs["pt"] = [("brasil", os.path.join(ROOT, "brasil"))]
    for code, dbs in langs.items():
        if not dbs:
            raise SystemExit("no fortune databases for %s: install the Debian packages listed in "
                             "tools/train-demo/README.md" % code)
    return langs


def letter_ratio(s):
    """Share of letters and spaces in s (ASCII art and code score low)."""
    if not s:
        return 0.0
    good = sum(1 for ch in s if ch.isalpha() or ch == " ")
    return good / len(s)
