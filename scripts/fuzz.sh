#!/usr/bin/env bash
# Runs one proptest fuzz test again and again, each run with fresh random seeds, for
# SECS seconds (the test binary is built once, so editing sources meanwhile does not
# stop it). Prints how many runs passed.
# usage: scripts/fuzz.sh TEST_FILE TEST_NAME [SECS]
#   e.g. scripts/fuzz.sh fuzz image_input_never_panics 600
#        scripts/fuzz.sh fuzz http_input_never_takes_the_server_down 600
#        scripts/fuzz.sh models loader_never_panics 600
set -uo pipefail
cd "$(dirname "$0")/.."
file=${1:?usage: scripts/fuzz.sh TEST_FILE TEST_NAME [SECS]} name=${2:?test name} secs=${3:-600}
bin=$(cargo test --release --no-run --test "$file" 2>&1 | grep -o "target/release/deps/$file-[0-9a-f]*" | head -1)
[ -x "$bin" ] || { echo "no test binary for $file" >&2; exit 2; }
end=$((SECONDS + secs)); runs=0
while [ $SECONDS -lt $end ]; do
  "$bin" --exact "$name" -q >/dev/null 2>&1 || { echo "$name: failed after $runs runs; rerun: $bin --exact $name" >&2; exit 1; }
  runs=$((runs + 1))
done
echo "$name: $runs runs in $SECONDS s, no failure"
