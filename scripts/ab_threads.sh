#!/usr/bin/env bash
# The thread tuner against two fixed threads, whole labs alternating: for each of N
# pairs, `nnlab lab LAB` (the tuner, the default) then `nnlab lab LAB -j 2`, printing
# their training seconds and the `core_to_core` round trip before and after the pair
# (fast: within one chiplet; slow: across two; BENCHMARKS.md, "Slow phases").
# usage: scripts/ab_threads.sh NNLAB LAB N   (after `cargo build --release --examples`;
# data: $NNLAB_DATA or nnlab's cache)
set -euo pipefail
bin=$1 lab=$2 n=$3
probe=$(dirname "$0")/../target/release/examples/core_to_core
trained() { "$bin" lab "$lab" "$@" 2>&1 | grep -o "trained in [0-9.]*" | grep -o "[0-9.]*$"; }
for _ in $(seq "$n"); do
  before=$("$probe" | grep -o "[0-9]* ns")
  tuner=$(trained)
  fixed=$(trained -j 2)
  after=$("$probe" | grep -o "[0-9]* ns")
  echo "$(date +%T) $lab $before | tuner $tuner | fixed-2 $fixed | $after"
done
