#!/usr/bin/env bash
# nnlab against the PyTorch port of the labs over whole lab runs (15 epochs each),
# back to back: `nnlab lab LAB` then torch_labs.py --lab LAB, for each lab, ROUNDS times.
# Prints, per run, the median seconds of epochs 2..15 and the total training seconds,
# and per lab the ratio nnlab / PyTorch. nnlab's epochs get faster as a ReLU net trains
# (its hidden layers' inputs fall under the sparse products' 30% nonzero limit), so
# this measures what a user's whole lab run costs, where `nnlab bench` measures
# epochs 2 and 3.
# usage: scripts/vs_torch_labs.sh DATA_DIR [LABS] [ROUNDS]   (DATA_DIR holds mnist/)
# needs: cargo build --release; pip install torch numpy
set -uo pipefail
data=${1:?usage: scripts/vs_torch_labs.sh DATA_DIR [LABS] [ROUNDS]}
labs=${2:-xavier deep dropout}
rounds=${3:-2}
cd "$(dirname "$0")/.."
out=$(mktemp)
for r in $(seq "$rounds"); do
  for lab in $labs; do
    echo "### round $r $lab $(date +%H:%M:%S)" >&2
    ./target/release/nnlab lab "$lab" --json --data-dir "$data" 2>/dev/null |
      python3 -c 'import json,sys; print(sys.argv[1], "nnlab", *[x["seconds"] for x in map(json.loads, sys.stdin) if x.get("event") == "epoch"])' "$lab" >>"$out"
    python3 ../shared/anchors/torch_labs.py --lab "$lab" --data "$data/mnist" --adam fused 2>&1 |
      python3 -c 'import re,sys; print(sys.argv[1], "torch", *re.findall(r"time = ([0-9.]+) s", sys.stdin.read()))' "$lab" >>"$out"
  done
done
python3 - "$out" <<'PY'
import sys, statistics, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    lab, who, *t = line.split()
    runs[(lab, who)].append([float(x) for x in t])
labs = []
for (lab, who) in runs:
    if lab not in labs:
        labs.append(lab)
for lab in labs:
    for who in ("nnlab", "torch"):
        for t in runs[(lab, who)]:
            print(f"{lab:8} {who:6} median(2..{len(t)}) {statistics.median(t[1:]):.3f} s/epoch  total {sum(t):6.2f} s  "
                  f"first {t[0]:.3f}  last five {' '.join(f'{x:.2f}' for x in t[-5:])}")
    for i, (a, b) in enumerate(zip(runs[(lab, 'nnlab')], runs[(lab, 'torch')])):
        print(f"{lab:8} round {i + 1}: nnlab / PyTorch = {statistics.median(a[1:]) / statistics.median(b[1:]):.2f} (median epoch), "
              f"{sum(a) / sum(b):.2f} (total)")
PY
