#!/usr/bin/env bash
# Interleaved A/B of plumb against a base revision: the engine's Go benchmarks (Score on options
# and samples, Fit on 100 000 questions, the evaluator) and the CLI on a million simulated option
# questions (plumb eval, and plumb score in-process on the same questions as requests). The base
# and the working tree alternate run by run, so that both see the same phases of a shared
# machine whose speed drifts by more than the changes measured.
#
# Usage: bench/ab.sh [BASE_REV] [ROUNDS]     (default: 4b37558, the last commit before the
#        restructure into service/ and internal/jsonl; 6 rounds)
# Writes bench/ab-base.txt and bench/ab-new.txt (go test -bench output, for benchstat) and
# bench/ab-cli.txt (one line per CLI run: side, command, seconds, CPU seconds, peak RSS in KB).
set -euo pipefail
cd "$(dirname "$0")/.."
base="${1:-4b37558}"
rounds="${2:-6}"
N="${N:-1000000}"
work=$(mktemp -d)
cleanup() { git worktree remove --force "$work/base" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

git worktree add --detach --quiet "$work/base" "$base"
echo "base $(git -C "$work/base" rev-parse --short HEAD), new $(git rev-parse --short HEAD)$(git diff --quiet || echo ' + working tree'); $(nproc) cores, $(go version | cut -d' ' -f3)"
(cd "$work/base" && go test -c -o "$work/base.test" ./calibrate && go build -o "$work/base.plumb" ./cmd/plumb)
go test -c -o "$work/new.test" ./calibrate
go build -o "$work/new.plumb" ./cmd/plumb

"$work/new.plumb" simulate --labeled --questions "$N" --seed 12 > "$work/eval.jsonl"
"$work/new.plumb" simulate --questions "$N" --seed 12 > "$work/score.jsonl"
"$work/new.plumb" simulate --labeled --questions 5000 --seed 13 > "$work/fit.jsonl"
for side in base new; do
  "$work/$side.plumb" fit --data "$work/fit.jsonl" --profile sim --temperature adaptive --store "$work/$side.db" > /dev/null
done

bench='BenchmarkScoreOptions$/wordings=10$|BenchmarkScoreSamples/wordings=5$|BenchmarkFit/examples=100000$|BenchmarkEvaluatorAdd'
: > bench/ab-base.txt
: > bench/ab-new.txt
: > bench/ab-cli.txt
timed() { # SIDE NAME COMMAND...: one line of wall seconds, CPU seconds and peak RSS
  local side=$1 name=$2
  shift 2
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" > /dev/null
  read -r wall user sys rss < "$work/time"
  printf '%s\t%s\t%s\t%.2f\t%s\n' "$side" "$name" "$wall" "$(echo "$user + $sys" | bc)" "$rss" | tee -a bench/ab-cli.txt
}
for r in $(seq 1 "$rounds"); do
  for side in base new; do
    (cd calibrate && "$work/$side.test" -test.run '^$' -test.bench "$bench" -test.benchmem) >> "bench/ab-$side.txt"
    timed "$side" eval "$work/$side.plumb" eval --data "$work/eval.jsonl" --profile sim --store "$work/$side.db" --json
    timed "$side" score "$work/$side.plumb" score --profile sim --store "$work/$side.db" "$work/score.jsonl"
  done
done
echo
go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da bench/ab-base.txt bench/ab-new.txt
