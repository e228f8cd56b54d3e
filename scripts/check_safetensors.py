"""Loads an nnlab model file with the `safetensors` package, runs the MLP's forward
pass in numpy (Linear layers `i.weight` (out, in) / `i.bias`, ReLU between them, as
PyTorch's nn.Sequential would) and compares with the logits nnlab computed.
Usage: check_safetensors.py MODEL INPUT.f32 LOGITS.f32 ROWS  (raw little-endian f32)
Exit status 0 when every logit matches to 1e-4."""
import json
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

path, xin, lin, rows = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
tensors = load_file(path)
with safe_open(path, "np") as f:
    meta = f.metadata()
config = json.loads(meta["config"])
assert config["model"]["activation"] == "relu", config["model"]["activation"]
idx = sorted(int(k.split(".")[0]) for k in tensors if k.endswith(".weight"))
x = np.fromfile(xin, dtype="<f4").reshape(rows, -1).astype(np.float64)
for j, i in enumerate(idx):
    x = x @ tensors[f"{i}.weight"].astype(np.float64).T + tensors[f"{i}.bias"]
    if j < len(idx) - 1:
        x = np.maximum(x, 0.0)
want = np.fromfile(lin, dtype="<f4").reshape(rows, -1)
err = float(np.abs(x - want).max())
print(f"max |numpy - nnlab| = {err:.3g} over {want.size} logits; class names {meta['class_names']}")
sys.exit(0 if err < 1e-4 else 1)
