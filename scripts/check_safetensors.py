"""Reads an nnlab model file with Python's standard library alone (no numpy, no
safetensors package), parsing the safetensors format from its specification: an
8-byte little-endian header length, a JSON header naming each tensor's dtype, shape
and byte offsets, then the raw little-endian data. It runs the MLP's forward pass
(Linear layers `i.weight` (out, in) / `i.bias`, ReLU between them, as PyTorch's
nn.Sequential would) in double precision and compares with the logits nnlab computed.
This is a reader independent of nnlab's own (and of the safetensors crate).

Usage: check_safetensors.py MODEL INPUT.f32 LOGITS.f32 ROWS  (raw little-endian f32)
Exit status 0 when every logit matches to 1e-4."""
import json
import struct
import sys


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack_from("<Q", blob, 0)
    header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = blob[8 + n :]
    tensors = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", (name, t["dtype"])
        begin, end = t["data_offsets"]
        count = 1
        for d in t["shape"]:
            count *= d
        assert end - begin == 4 * count, (name, t)
        tensors[name] = (t["shape"], struct.unpack_from(f"<{count}f", data, begin))
    return tensors, meta


def read_f32(path):
    with open(path, "rb") as f:
        raw = f.read()
    return struct.unpack(f"<{len(raw) // 4}f", raw)


path, xin, lin, rows = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
tensors, meta = read_safetensors(path)
config = json.loads(meta["config"])
assert config["model"]["activation"] == "relu", config["model"]["activation"]
idx = sorted(int(k.split(".")[0]) for k in tensors if k.endswith(".weight"))
flat = read_f32(xin)
width = len(flat) // rows
xs = [list(flat[r * width : (r + 1) * width]) for r in range(rows)]
for j, i in enumerate(idx):
    (out_dim, in_dim), w = tensors[f"{i}.weight"]
    _, b = tensors[f"{i}.bias"]
    assert all(len(x) == in_dim for x in xs), (i, in_dim)
    nxt = []
    for x in xs:
        # only the nonzero inputs contribute: MNIST rows are mostly zeros
        nz = [(k, v) for k, v in enumerate(x) if v != 0.0]
        y = []
        for o in range(out_dim):
            row = o * in_dim
            s = b[o]
            for k, v in nz:
                s += w[row + k] * v
            y.append(max(s, 0.0) if j < len(idx) - 1 else s)
        nxt.append(y)
    xs = nxt
want = read_f32(lin)
classes = len(want) // rows
err = max(abs(xs[r][c] - want[r * classes + c]) for r in range(rows) for c in range(classes))
print(f"max |python - nnlab| = {err:.3g} over {len(want)} logits; class names {meta['class_names']}")
sys.exit(0 if err < 1e-4 else 1)
