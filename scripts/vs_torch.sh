#!/usr/bin/env bash
# nnlab against the PyTorch port of the labs, back to back: three rounds of
# `nnlab bench --epochs 2` then torch_labs.py for xavier, deep and dropout.
# usage: scripts/vs_torch.sh DATA_DIR   (DATA_DIR holds mnist/, as --data-dir does)
# needs: cargo build --release; pip install torch numpy
set -uo pipefail
data=${1:?usage: scripts/vs_torch.sh DATA_DIR}
cd "$(dirname "$0")/.."
for r in 1 2 3; do
  echo "### round $r $(date +%H:%M:%S)"
  ./target/release/nnlab bench --epochs 2 --data-dir "$data" 2>&1 | grep -E "^(xavier|deep|dropout)"
  for lab in xavier deep dropout; do
    echo "torch $lab"
    python3 ../shared/anchors/torch_labs.py --lab $lab --data "$data/mnist" --epochs 3 --adam fused 2>&1 | tail -6
  done
done
