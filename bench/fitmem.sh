#!/usr/bin/env bash
# Memory of a fit on 100 000 and 400 000 simulated option examples (10 wordings × 4 options):
# peak RSS of `plumb fit` in process (/usr/bin/time), and of a `plumb serve` fitted through
# gRPC by `plumb fit --server` (VmHWM from /proc, a fresh server for each size). "Per example"
# is the peak above the process's RSS without examples (a fit of an empty file; an idle
# server), divided by the examples. Prints a Markdown table for BENCHMARKS.md.
# Usage: bash bench/fitmem.sh [PLUMB_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/serve.sh
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
pid=""
bin=${1:-$work/plumb}
[ -n "${1:-}" ] || go build -o "$bin" ./cmd/plumb
"$bin" simulate --labeled --questions 400000 --seed 3 > "$work/400000.jsonl"
head -100000 "$work/400000.jsonl" > "$work/100000.jsonl"
/usr/bin/time -f "%M" -o "$work/base" "$bin" fit --data /dev/null --dry-run --store "$work/local.db" > /dev/null 2>&1 || true
base_local=$(tail -1 "$work/base")
echo "| examples | in process: peak RSS | per example | over gRPC: server peak RSS | per example |"
echo "|---|---|---|---|---|"
for n in 100000 400000; do
  /usr/bin/time -f "%M" -o "$work/local" "$bin" fit --data "$work/$n.jsonl" --dry-run --store "$work/local.db" > /dev/null
  local_kb=$(tail -1 "$work/local")
  rm -f "$work/srv.db"
  start_serve "$bin" "$work/serve.log" --addr 127.0.0.1:0 --store "$work/srv.db" --log-level warn
  base_server=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  "$bin" fit --data "$work/$n.jsonl" --dry-run --server "$addr" > /dev/null
  server_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill -TERM "$pid"; wait "$pid" || true; pid=""
  awk -v n="$n" -v l="$local_kb" -v s="$server_kb" -v bl="$base_local" -v bs="$base_server" 'BEGIN {
    printf "| %d | %.0f MiB | %.2f KB | %.0f MiB | %.2f KB |\n", n, l/1024, (l-bl)*1.024/n, s/1024, (s-bs)*1.024/n }'
done
echo
echo "baseline: $((base_local / 1024)) MiB in process, $((base_server / 1024)) MiB for an idle server"
