#!/usr/bin/env bash
# A/B timing of two nnlab binaries on a noisy machine: alternate them for ROUNDS
# rounds of `bench --epochs EPOCHS --presets PRESETS`, then print each binary's
# min and median s/epoch per preset (compare the mins: noise only ever adds time).
# usage: scripts/ab.sh BIN_A BIN_B [PRESETS] [ROUNDS] [EPOCHS]   (data: $NNLAB_DATA)
set -euo pipefail
a=$1 b=$2 presets=${3:-deep} rounds=${4:-5} epochs=${5:-1}
out=$(mktemp)
for r in $(seq "$rounds"); do
  for bin in "$a" "$b"; do
    "$bin" bench --epochs "$epochs" --presets "$presets" --json 2>/dev/null |
      python3 -c 'import json,sys; [print(sys.argv[1], x["preset"], x["median_epoch_s"]) for x in json.load(sys.stdin)]' "$bin" >>"$out"
  done
done
python3 - "$out" <<'PY'
import sys, statistics, collections
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    b, p, s = line.split(); d[(p, b)].append(float(s))
for (p, b), xs in sorted(d.items()):
    print(f"{p:8} {b:30} min {min(xs):.3f}  median {statistics.median(xs):.3f}  all {' '.join(f'{x:.3f}' for x in xs)}")
PY
