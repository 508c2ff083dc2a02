"""Helpers shared by the two training scripts: seeding, logging, hashing splits, saving."""
import hashlib
import json
import os
import random
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "fixtures", "gen"))
import safetensors_write  # noqa: E402  (the repository's dependency-free safetensors writer)

T0 = time.time()


def log(msg):
    print("[%7.1fs] %s" % (time.time() - T0, msg), flush=True)


def seed_everything(seed):
    random.seed(seed)
    torch.manual_seed(seed)


def is_heldout(text, modulus):
    """Deterministic split that does not depend on file order: 1 in `modulus` texts is held out."""
    h = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(h[:4], "little") % modulus == 0


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def save_safetensors(state, path, metadata=None):
    safetensors_write.save_file(state, path, metadata=metadata or {"format": "pt"})


def load_safetensors(path):
    """Minimal reader (F32/F16 only) used to check that the written file reproduces the model."""
    import struct
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    dtypes = {"F32": torch.float32, "F16": torch.float16}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=dtypes[info["dtype"]])
        out[name] = t.reshape(info["shape"]).float()
    return out


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_versions(names):
    """{package: version} from dpkg's status file, for the model cards."""
    out = {}
    try:
        with open("/var/lib/dpkg/status", encoding="utf-8", errors="replace") as f:
            pkg = None
            for line in f:
                if line.startswith("Package: "):
                    pkg = line[9:].strip()
                elif line.startswith("Version: ") and pkg in names:
                    out[pkg] = line[9:].strip()
    except OSError:
        pass
    return out
