#!/usr/bin/env bash
# nnlab against the PyTorch port of the labs over whole lab runs (15 epochs each),
# back to back: for each round and lab, each nnlab binary's `lab LAB`, then
# torch_labs.py --lab LAB --adam fused --ftz (PyTorch at its best: fused Adam,
# subnormals flushed). Prints each run's total training seconds and test accuracy,
# and per lab and binary the per-round ratio nnlab / PyTorch of total training time
# and their median: the one measure of training speed (BENCHMARKS.md).
#
# usage: scripts/vs_torch_labs.sh DATA_DIR [LABS] [ROUNDS] [NAME=BINARY ...]
#   DATA_DIR holds mnist/; LABS defaults to "xavier deep dropout", ROUNDS to 3;
#   binaries default to new=./target/release/nnlab (give two to compare a change:
#   before=/tmp/nnlab-old after=./target/release/nnlab).
# needs: cargo build --release; pip install torch numpy; nothing else running.
set -uo pipefail
data=${1:?usage: scripts/vs_torch_labs.sh DATA_DIR [LABS] [ROUNDS] [NAME=BINARY ...]}
labs=${2:-xavier deep dropout}
rounds=${3:-3}
shift $(( $# < 3 ? $# : 3 ))
bins=("$@")
[ ${#bins[@]} -eq 0 ] && bins=("new=./target/release/nnlab")
cd "$(dirname "$0")/.."
lscpu | grep "Model name" >&2
out=$(mktemp)
for r in $(seq "$rounds"); do
  for lab in $labs; do
    for b in "${bins[@]}"; do
      name=${b%%=*}
      echo "### round $r $lab $name $(date +%H:%M:%S)" >&2
      "${b#*=}" lab "$lab" --json --data-dir "$data" 2>/dev/null |
        python3 -c 'import json,sys
xs=[json.loads(l) for l in sys.stdin]
t=[x["seconds"] for x in xs if x.get("event")=="epoch"]
acc=[x["test_accuracy"] for x in xs if x.get("event")=="result"]
print(sys.argv[1], sys.argv[2], sys.argv[3], sum(t), acc[0] if acc else "nan")' "$r" "$lab" "$name" >>"$out"
    done
    echo "### round $r $lab torch $(date +%H:%M:%S)" >&2
    python3 ../shared/anchors/torch_labs.py --lab "$lab" --data "$data/mnist" --adam fused --ftz 2>&1 |
      python3 -c 'import re,sys
s=sys.stdin.read()
t=[float(x) for x in re.findall(r"time = ([0-9.]+) s", s)]
a=re.findall(r"Accuracy: ([0-9.]+)", s)
print(sys.argv[1], sys.argv[2], "torch", sum(t), a[-1] if a else "nan")' "$r" "$lab" >>"$out"
  done
done
python3 - "$out" <<'PY'
import sys, statistics, collections
runs = collections.defaultdict(dict)
names, labs = [], []
for line in open(sys.argv[1]):
    r, lab, who, total, acc = line.split()
    runs[(lab, who)][int(r)] = (float(total), acc)
    if who not in names: names.append(who)
    if lab not in labs: labs.append(lab)
for lab in labs:
    for who in names:
        rs = runs[(lab, who)]
        print(f"{lab:8} {who:8} total s per round: {' '.join(f'{rs[r][0]:7.2f}' for r in sorted(rs))}"
              f"   accuracy: {' '.join(rs[r][1] for r in sorted(rs))}")
    for who in names:
        if who == "torch":
            continue
        ratios = [runs[(lab, who)][r][0] / runs[(lab, "torch")][r][0]
                  for r in sorted(runs[(lab, who)]) if r in runs[(lab, "torch")]]
        print(f"{lab:8} {who:8} / torch per round: {' '.join(f'{x:.2f}' for x in ratios)}"
              f"   median {statistics.median(ratios):.2f}")
PY
