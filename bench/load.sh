#!/usr/bin/env bash
# Load test of a real `plumb serve` with ghz (pinned, installed here), all in one run:
#   (a) Score, 4 options × 10 wordings, fitted profile
#   (b) Score, 5 wordings × 10 samples × 32 tokens × top-5, fitted profile
#   (c) the no-op baseline (plumb.bench.v1.BaselineService/Noop) with the same request bytes as
#       (a) and as (b): the gRPC floor of this machine
# It prints throughput and p50/p99 for each and the ratios (a)/(c) and (b)/(c); then the same
# calls over HTTP — Connect with JSON bodies, as curl and browsers send them — driven by hey
# (pinned, installed here), beside an HTTP no-op with the same bytes; then runs a soak of (a) at
# the same concurrency and prints the server's RSS after warm-up and at the end.
#
# Usage: bench/load.sh            (env: C=concurrency, default 16; N=requests per run, default
#                                  20000; SOAK=soak seconds, default 60; STORE=the server's
#                                  --store, default a fresh bbolt file: a postgres:// URL
#                                  measures the PostgreSQL store)
# The soak is a request count sized to last at least SOAK seconds at the faster of (a)'s rate and
# a warm-up soak's, with 30 % to spare, topped up by further rounds in the rare case the machine
# sped up so much that it ended early (ghz's -z ends by cancelling the calls in flight, which it
# counts as errors).
set -euo pipefail
cd "$(dirname "$0")/.."
C="${C:-16}"
N="${N:-20000}"
SOAK="${SOAK:-60}"
source bench/serve.sh
setup ghz hey

# Per-call logging is off (--log-level warn): the run measures plumb and gRPC, not log I/O.
STORE="${STORE:-$work/plumb.db}"
start_serve "$BIN/plumb" "$work/serve.log" --baseline --log-level warn --addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --store "$STORE"
http=$(sed -n 's/.*HTTP on \(http:[^ ]*\).*/\1/p' "$work/serve.log" | head -1)

echo "machine: $(nproc) cores, $(go version | cut -d' ' -f3-), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "server: $addr (pid $pid, store $(sed -n 's/.*(store \(.*\))$/\1/p' "$work/serve.log" | head -1)); ghz $GHZ_VERSION, concurrency $C, $N requests per run"

# Fitted profiles, through the server.
"$BIN/plumb" simulate --labeled --questions 3000 --seed 1 > "$work/opt.jsonl"
"$BIN/plumb" fit --server "$addr" --data "$work/opt.jsonl" --profile bench-options > /dev/null
"$BIN/plumb" simulate --labeled --questions 400 --seed 2 --samples 10 --wordings 5 --tokens 32 > "$work/smp.jsonl"
"$BIN/plumb" fit --server "$addr" --data "$work/smp.jsonl" --profile bench-samples > /dev/null

# One request of each shape.
"$BIN/plumb" simulate --questions 1 --seed 9 | sed 's/^{/{"profile":"bench-options",/' > "$work/a.json"
"$BIN/plumb" simulate --questions 1 --seed 9 --samples 10 --wordings 5 --tokens 32 | sed 's/^{/{"profile":"bench-samples",/' > "$work/b.json"
echo "payloads: (a) $(wc -c < "$work/a.json") bytes of JSON, (b) $(wc -c < "$work/b.json") bytes of JSON"

rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }

# ghz NAME METHOD PAYLOAD [ghz flags]: runs ghz and prints one line of results.
run() {
  local name=$1 method=$2 payload=$3
  shift 3
  "$BIN/ghz" --insecure --call "$method" -D "$payload" -c "$C" "$@" "$addr" > "$work/$name.txt"
  local rps p50 p99 ok total
  rps=$(awk -F'\t' '/Requests\/sec:/ {print $2}' "$work/$name.txt" | tr -d ' ')
  p50=$(awk '/ 50 % in/ {print $4, $5}' "$work/$name.txt")
  p99=$(awk '/ 99 % in/ {print $4, $5}' "$work/$name.txt")
  ok=$(awk '/\[OK\]/ {print $2}' "$work/$name.txt")
  total=$(awk -F'\t' '/Count:/ {print $2}' "$work/$name.txt" | tr -d ' ')
  printf '%-34s %10s req/s   p50 %-10s p99 %-10s ok %s/%s\n' "$name" "$rps" "$p50" "$p99" "${ok:-0}" "$total"
  echo "$rps" > "$work/$name.rps"
  echo "${ok:-0} $total" > "$work/$name.count"
  if [ "${ok:-0}" != "$total" ]; then sed -n '/Error distribution/,$p' "$work/$name.txt"; fi
}

score=plumb.v1.ConfidenceService.Score
noop=plumb.bench.v1.BaselineService.Noop
run "warm-up" "$score" "$work/a.json" -n "$N" > /dev/null
echo
run "(a) Score options 4x10" "$score" "$work/a.json" -n "$N"
run "(c) Noop, payload (a)" "$noop" "$work/a.json" -n "$N"
run "(b) Score samples 5x10x32x5" "$score" "$work/b.json" -n "$((N / 10))"
run "(c) Noop, payload (b)" "$noop" "$work/b.json" -n "$((N / 10))"
ratio() { awk -v a="$(cat "$work/$1.rps")" -v c="$(cat "$work/$2.rps")" 'BEGIN { printf "%.1f %%", 100 * a / c }'; }
echo
echo "(a)/(c): $(ratio '(a) Score options 4x10' '(c) Noop, payload (a)')   target >= 70 %"
echo "(b)/(c): $(ratio '(b) Score samples 5x10x32x5' '(c) Noop, payload (b)')   target >= 50 %"


# hey NAME PATH PAYLOAD N: the same over HTTP/1.1 with keep-alive, JSON in and out.
hrun() {
  local name=$1 path=$2 payload=$3 n=$4
  "$BIN/hey" -n "$n" -c "$C" -m POST -T application/json -D "$payload" "$http$path" > "$work/$name.txt"
  local rps p50 p99 ok
  rps=$(awk '/Requests\/sec:/ {print $2}' "$work/$name.txt")
  p50=$(awk '/ 50% in/ {printf "%.2fms", $3 * 1000}' "$work/$name.txt")
  p99=$(awk '/ 99% in/ {printf "%.2fms", $3 * 1000}' "$work/$name.txt")
  ok=$(awk '/\[200\]/ {print $2}' "$work/$name.txt")
  printf '%-34s %10s req/s   p50 %-10s p99 %-10s ok %s/%s\n' "$name" "$rps" "$p50" "$p99" "${ok:-0}" "$n"
  echo "$rps" > "$work/$name.rps"
  if [ "${ok:-0}" != "$n" ]; then sed -n '/Status code distribution/,$p' "$work/$name.txt"; fi
}
echo
echo "HTTP ($http, Connect protocol, JSON bodies, HTTP/1.1 keep-alive; hey $HEY_VERSION, concurrency $C)"
hrun "warm-up HTTP" /plumb.v1.ConfidenceService/Score "$work/a.json" "$N" > /dev/null
hrun "(h) HTTP Score options 4x10" /plumb.v1.ConfidenceService/Score "$work/a.json" "$N"
hrun "(h0) HTTP Noop, payload (a)" /plumb.bench.v1.BaselineService/Noop "$work/a.json" "$N"
hrun "(hb) HTTP Score samples 5x10x32x5" /plumb.v1.ConfidenceService/Score "$work/b.json" "$((N / 10))"
echo
echo "(h)/(h0): $(ratio '(h) HTTP Score options 4x10' '(h0) HTTP Noop, payload (a)')   (h)/(a): $(ratio '(h) HTTP Score options 4x10' '(a) Score options 4x10')"

echo
warm_n=$(awk -v r="$(cat "$work/(a) Score options 4x10.rps")" -v s="$SOAK" 'BEGIN { printf "%d", r * s / 6 }')
warm_name="warm-up soak (a), $warm_n requests"
run "$warm_name" "$score" "$work/a.json" -n "$warm_n"
warm=$(rss)
# Sized from the faster rate seen so far with 30 % to spare, so that the soak lasts at least
# SOAK s; topped up if it did not.
rate=$(awk -v a="$(cat "$work/(a) Score options 4x10.rps")" -v w="$(cat "$work/$warm_name.rps")" 'BEGIN { print (a > w ? a : w) }')
start=$(date +%s)
left=$SOAK
round=0
ok_sum=0
total_sum=0
while [ "$left" -gt 0 ]; do
  round=$((round + 1))
  n=$(awk -v r="$rate" -v s="$left" 'BEGIN { printf "%d", r * s * 1.3 + 1 }')
  run "soak (a) round $round, $n requests" "$score" "$work/a.json" -n "$n"
  read -r ok total < "$work/soak (a) round $round, $n requests.count"
  ok_sum=$((ok_sum + ok))
  total_sum=$((total_sum + total))
  left=$((SOAK - ($(date +%s) - start)))
done
end=$(rss)
echo "soak: $total_sum calls in $(( $(date +%s) - start )) s ($round round(s)), $((total_sum - ok_sum)) errors"
awk -v w="$warm" -v e="$end" 'BEGIN { printf "server RSS: %.1f MiB after the warm-up soak, %.1f MiB after the soak (%+.1f %%; target within 10 %%)\n", w / 1024, e / 1024, 100 * (e - w) / w }'
