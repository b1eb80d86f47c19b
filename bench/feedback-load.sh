#!/usr/bin/env bash
# Feedback ingest of a real `plumb serve` with ghz (pinned, installed here). The receipts are
# real: 2N simulated questions scored by the server under a fitted profile, in two sets of N.
#   (s) one FeedbackStream of the first N outcomes (ghz sends a JSON array's messages in one
#       client stream);
#   (u) the second N as unary Feedback calls at concurrency C, each with its own receipt (ghz
#       sends an array's messages round robin, one a call, so -n N sends each once);
#   (d) the second N again: every one a duplicate, the idempotent path;
# then a GetMonitor over all 2N.
#
# Usage: bench/feedback-load.sh   (env: N=outcomes, default 100000; C=concurrency, default 32;
#                                  STORE=the server's --store, default a fresh bbolt file: a
#                                  postgres:// URL measures the PostgreSQL store; each run fits
#                                  a profile of its own name there)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-100000}"
C="${C:-32}"
source bench/serve.sh
setup ghz

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/receipt.key"
STORE="${STORE:-$work/plumb.db}"
profile="bench-feedback-$$"
start_serve "$BIN/plumb" "$work/serve.log" --receipt-key-file "$work/receipt.key" --log-level warn --addr 127.0.0.1:0 --store "$STORE"
echo "machine: $(nproc) cores, $(go version | cut -d' ' -f3-), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "server: $addr (store $(sed -n 's/.*(store \(.*\))$/\1/p' "$work/serve.log" | head -1)); ghz $GHZ_VERSION, concurrency $C, $N outcomes"

"$BIN/plumb" simulate --labeled --questions 3000 --seed 1 > "$work/fit.jsonl"
"$BIN/plumb" fit --server "$addr" --data "$work/fit.jsonl" --profile "$profile" > /dev/null
# 2N questions and their labels (the same seed gives the same questions), scored for receipts.
"$BIN/plumb" simulate --questions "$((2 * N))" --seed 2 > "$work/q.jsonl"
"$BIN/plumb" simulate --labeled --questions "$((2 * N))" --seed 2 | sed 's/.*,"label":\({[^{}]*}\)}$/\1/' > "$work/labels"
"$BIN/plumb" score --server "$addr" --profile "$profile" "$work/q.jsonl" | sed 's/.*"receipt":"\([^"]*\)".*/\1/' > "$work/receipts"
[ "$(wc -l < "$work/receipts")" = "$((2 * N))" ] || { echo "scored $(wc -l < "$work/receipts") of $((2 * N))"; exit 1; }
# feedback FIRST LAST OUT: outcomes FIRST…LAST (1-based) as a JSON array of FeedbackRequests.
feedback() {
  paste -d '\t' "$work/receipts" "$work/labels" | sed -n "$1,$2p" |
    awk -F'\t' 'BEGIN { printf "[" } { printf "%s{\"receipt\":\"%s\",\"label\":%s,\"source\":\"FEEDBACK_SOURCE_GROUND_TRUTH\"}", (NR > 1 ? "," : ""), $1, $2 } END { print "]" }' > "$3"
}
feedback 1 "$N" "$work/stream.json"
feedback "$((N + 1))" "$((2 * N))" "$work/unary.json"
echo "payload: $(wc -c < "$work/unary.json") bytes of JSON, $(( $(wc -c < "$work/unary.json") / N )) a message"

# cpu: the server's CPU time so far (user + system), in clock ticks.
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
tick=$(getconf CLK_TCK)

# ghz NAME: N unary calls, one an outcome; prints throughput, p50/p99, the call count and the
# server's CPU per outcome (ghz shares the machine: the server's CPU is what it would need).
run() {
  local c0
  c0=$(cpu)
  "$BIN/ghz" --insecure --call plumb.v1.MonitorService.Feedback -D "$work/unary.json" -c "$C" -n "$N" "$addr" > "$work/$1.txt"
  local rps p50 p99 ok
  rps=$(awk -F'\t' '/Requests\/sec:/ {print $2}' "$work/$1.txt" | tr -d ' ')
  p50=$(awk '/ 50 % in/ {print $4, $5}' "$work/$1.txt")
  p99=$(awk '/ 99 % in/ {print $4, $5}' "$work/$1.txt")
  ok=$(awk '/\[OK\]/ {print $2}' "$work/$1.txt")
  printf '%-28s %10s outcomes/s   p50 %-10s p99 %-10s ok %s/%s   server CPU %s µs an outcome\n' "$1" "$rps" "$p50" "$p99" "${ok:-0}" "$N" \
    "$(awk -v a="$c0" -v b="$(cpu)" -v t="$tick" -v n="$N" 'BEGIN { printf "%.1f", (b - a) / t / n * 1e6 }')"
  if [ "${ok:-0}" != "$N" ]; then sed -n '/Error distribution/,$p' "$work/$1.txt"; fi
}
c0=$(cpu)
t0=$(date +%s.%N)
"$BIN/ghz" --insecure --call plumb.v1.MonitorService.FeedbackStream -D "$work/stream.json" -c 1 -n 1 "$addr" > "$work/stream.txt"
t1=$(date +%s.%N)
ok=$(awk '/\[OK\]/ {print $2}' "$work/stream.txt")
[ "${ok:-0}" = 1 ] || { sed -n '/Error distribution/,$p' "$work/stream.txt"; exit 1; }
# The call's own duration as ghz reports it (open, send every message, close and receive), and
# ghz's whole run, which adds its start and reading the messages from JSON.
call=$(awk -F'\t' '/Average:/ { split($2, v, " "); print (v[2] == "ms" ? v[1] / 1000 : (v[2] == "µs" || v[2] == "us" ? v[1] / 1e6 : v[1])) }' "$work/stream.txt")
awk -v a="$c0" -v b="$(cpu)" -v t="$tick" -v n="$N" -v s="$t0" -v e="$t1" -v c="$call" \
  'BEGIN { printf "%-28s %10.0f outcomes/s   (the call %.2f s; ghz'"'"'s whole run %.2f s: %.0f/s)   server CPU %.1f µs an outcome\n", "(s) one FeedbackStream", n / c, c, e - s, n / (e - s), (b - a) / t / n * 1e6 }'
run "(u) unary, new outcomes"
run "(d) unary, duplicates"
start=$(date +%s.%N)
"$BIN/plumb" monitor --server "$addr" --profile "$profile" --window "$((2 * N))" --json > "$work/monitor.json"
awk -v s="$start" -v e="$(date +%s.%N)" -v f="$work/monitor.json" 'BEGIN { printf "GetMonitor over %s: %.2f s\n", f, e - s }' | sed "s|$work/monitor.json|the outcomes|"
grep -o '"outcomes": *[0-9]*' "$work/monitor.json" | head -1
awk '/VmHWM/ { printf "server peak RSS: %.1f MiB\n", $2 / 1024 }' "/proc/$pid/status"
