"""Loads nnlab's saved `cnn-best` nets into a PyTorch nn.Sequential and tests them on
MNIST's 10,000 test images: each member alone, then the members' averaged
probabilities (what `nnlab ensemble` reports). It shows that a saved model's tensors
have PyTorch's names and shapes, and that PyTorch computes the same accuracies.

Usage: python3 scripts/torch_cnn_best.py MNIST_DIR MODEL_DIR
  MNIST_DIR: the folder with t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte
             (nnlab's cache: ~/.cache/nnlab/mnist)
  MODEL_DIR: the folder `nnlab ensemble --preset cnn-best --save-dir` wrote
             (member-0.safetensors, ...), or one model's folder
Needs torch and numpy (`pip install torch numpy`); reads safetensors by itself."""
import glob
import json
import struct
import sys

import numpy as np
import torch
import torch.nn as nn


def idx(path):
    """An IDX file's array (MNIST's format: magic, dimensions, then bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data[4 + 4 * ndim :], dtype=np.uint8).reshape(dims)


def load_safetensors(path):
    """The file's f32 tensors by name (header length, JSON header, raw data)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack_from("<Q", blob, 0)
    header = json.loads(blob[8 : 8 + n])
    header.pop("__metadata__", None)
    data = blob[8 + n :]
    out = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", (name, t["dtype"])
        begin, end = t["data_offsets"]
        raw = np.frombuffer(data[begin:end], dtype="<f4").reshape(t["shape"])
        out[name] = torch.tensor(raw.copy())
    return out


def block(c_in, c_out, kernel, stride, padding):
    """Convolution, batch norm over its channels (nnlab's eps 1e-5), ReLU."""
    return [
        nn.Conv2d(c_in, c_out, kernel, stride, padding),
        nn.BatchNorm2d(c_out, eps=1e-5),
        nn.ReLU(),
    ]


def cnn_best():
    """The `cnn-best` preset's layer list, index for index (`--print-config`)."""
    return nn.Sequential(
        *block(1, 32, 3, 1, 0),
        *block(32, 32, 3, 1, 0),
        *block(32, 32, 5, 2, 2),
        nn.Dropout(0.4),
        *block(32, 64, 3, 1, 0),
        *block(64, 64, 3, 1, 0),
        *block(64, 64, 5, 2, 2),
        nn.Dropout(0.4),
        *block(64, 128, 4, 1, 0),
        nn.Flatten(),
        nn.Dropout(0.4),
        nn.Linear(128, 10),
    )


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    mnist, models = sys.argv[1], sys.argv[2]
    x = torch.tensor(idx(mnist + "/t10k-images-idx3-ubyte").astype(np.float32) / 255.0)
    x = x.reshape(-1, 1, 28, 28)
    y = torch.tensor(idx(mnist + "/t10k-labels-idx1-ubyte").astype(np.int64))
    files = sorted(glob.glob(models + "/member-*.safetensors")) or sorted(
        glob.glob(models + "/*.safetensors")
    )
    if not files:
        sys.exit(f"no .safetensors files in {models}")
    net = cnn_best().eval()
    total = 0
    for path in files:
        missing, unexpected = net.load_state_dict(load_safetensors(path), strict=False)
        # nnlab keeps no batch counter (PyTorch's num_batches_tracked); nothing else
        # may be missing or left over
        assert not unexpected, unexpected
        assert all(m.endswith("num_batches_tracked") for m in missing), missing
        with torch.no_grad():
            p = torch.softmax(net(x), dim=1)
        total = total + p
        print(f"{path}: test accuracy {(p.argmax(1) == y).float().mean().item():.4f}")
    if len(files) > 1:
        acc = (total.argmax(1) == y).float().mean().item()
        print(f"{len(files)} members, averaged probabilities: test accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
