#!/usr/bin/env bash
# nnlab's cnn1, cnn and lstm presets against the PyTorch ports of the same nets
# (../shared/anchors/torch_cnn_rnn.py --ftz: 2 threads, fused Adam, subnormals
# flushed), back to back, EPOCHS epochs each: for each round and net, nnlab then
# PyTorch. Prints each run's median epoch time over epochs 2..N and their ratio
# nnlab / PyTorch per round, and the median ratio over rounds.
#
# usage: scripts/vs_torch_cnn_rnn.sh DATA_DIR [NETS] [EPOCHS] [ROUNDS] [BINARY]
#   DATA_DIR holds mnist/; NETS defaults to "cnn1 cnn lstm", EPOCHS to 3, ROUNDS to 1.
# needs: cargo build --release; pip install torch numpy; nothing else running.
set -uo pipefail
data=${1:?usage: scripts/vs_torch_cnn_rnn.sh DATA_DIR [NETS] [EPOCHS] [ROUNDS] [BINARY]}
nets=${2:-cnn1 cnn lstm}
epochs=${3:-3}
rounds=${4:-1}
bin=${5:-./target/release/nnlab}
cd "$(dirname "$0")/.."
lscpu | grep "Model name" >&2
median='import re,statistics,sys
t=[float(x) for x in re.findall(sys.argv[1], sys.stdin.read())]
print(statistics.median(t[1:]) if len(t) > 1 else (t[0] if t else float("nan")))'
for r in $(seq "$rounds"); do
  for net in $nets; do
    a=$("$bin" train --preset "$net" --epochs "$epochs" --data-dir "$data" 2>/dev/null |
      python3 -c "$median" 'Epoch: \d+ cost = \S+ .*\(([0-9.]+) s\)')
    b=$(python3 ../shared/anchors/torch_cnn_rnn.py --model "$net" --data "$data/mnist" \
      --epochs "$epochs" --ftz 2>&1 | python3 -c "$median" 'time = ([0-9.]+) s')
    python3 -c 'import sys; a,b=float(sys.argv[2]),float(sys.argv[3]); print(f"round {sys.argv[4]} {sys.argv[1]:5} nnlab {a:6.2f} s/epoch  torch {b:6.2f} s/epoch  ratio {a/b:.2f}")' "$net" "$a" "$b" "$r"
  done
done
