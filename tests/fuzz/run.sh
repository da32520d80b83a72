#!/usr/bin/env bash
# Runs one libFuzzer target for a while on a copy of its seed corpus (the committed corpus is
# never modified), and fails if the fuzzer found a crash, a leak, a timeout or a broken invariant.
#   tests/fuzz/run.sh TARGET_BINARY CORPUS_DIR SECONDS
set -euo pipefail
binary=$1 corpus=$2 seconds=$3
work=$(mktemp -d /tmp/shoal-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
cp "$corpus"/* "$work/corpus/"
echo "fuzzing $(basename "$binary") for ${seconds}s from $(ls "$corpus" | wc -l) seed(s)"
status=0
"$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$work/corpus" > "$work/log" 2>&1 || status=$?
grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' "$work/log" || true
echo "corpus grew to $(ls "$work/corpus" | wc -l) input(s)"
if [ "$status" -ne 0 ] || ls "$work/artifacts"/* > /dev/null 2>&1; then
  tail -n 60 "$work/log"
  for artifact in "$work/artifacts"/*; do
    [ -e "$artifact" ] || continue
    echo "---- $artifact (base64) ----"
    base64 -w0 "$artifact" | head -c 1500
    echo
  done
  echo "FUZZ FAILURE: $(basename "$binary") exited $status" >&2
  exit 1
fi
