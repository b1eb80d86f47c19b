#!/usr/bin/env bash
# Checks that plumb's outputs are byte-identical between a base revision and the working tree:
# simulate, score, fit --dry-run --json, fit then eval --json, and score under a fitted profile,
# on simulated evidence (options, samples, stance wordings) and on the real files of testdata/.
# A restructure that must not change behaviour is checked with it.
#
# Usage: bench/same-output.sh [BASE_REV]     (default: HEAD)
# Prints one line per output compared and exits 1 at the first difference (with its diff).
set -euo pipefail
cd "$(dirname "$0")/.."
base="${1:-HEAD}"
work=$(mktemp -d)
cleanup() { git worktree remove --force "$work/base" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT && echo "outputs kept in $work"

git worktree add --detach --quiet "$work/base" "$base"
(cd "$work/base" && go build -o "$work/base.plumb" ./cmd/plumb)
go build -o "$work/new.plumb" ./cmd/plumb
echo "base $(git -C "$work/base" rev-parse --short HEAD), new $(git rev-parse --short HEAD)$(git diff --quiet || echo ' + working tree')"

mmlu=testdata/mmlu-llama13b/mmlu-llama13b.jsonl
sac3=testdata/sac3/sac3-nq_open.jsonl
prime=testdata/sac3/sac3-prime.jsonl

run() { # SIDE: every output of one binary into $work/SIDE/
  local side=$1 bin="$work/$1.plumb" out="$work/out-$1"
  mkdir -p "$out"
  local db="$out/plumb.db"
  "$bin" simulate --questions 3000 --seed 3 --labeled > "$out/sim-options.jsonl"
  "$bin" simulate --questions 600 --seed 4 --samples 8 --wordings 5 --stance 2 --labeled > "$out/sim-samples.jsonl"
  "$bin" simulate --questions 2000 --seed 5 --stance 3 > "$out/sim-requests.jsonl"
  "$bin" simulate --questions 300 --seed 6 --samples 6 --wordings 4 --stance 1 > "$out/sim-sample-requests.jsonl"
  # Inputs are the base's simulations, so that a change to simulate shows once, above.
  local so="$work/out-base/sim-options.jsonl" ss="$work/out-base/sim-samples.jsonl"
  local sr="$work/out-base/sim-requests.jsonl" ssr="$work/out-base/sim-sample-requests.jsonl"
  "$bin" score --store "$db" "$sr" > "$out/score-default.jsonl"
  "$bin" score --store "$db" "$ssr" > "$out/score-default-samples.jsonl"
  tr -d '\n' < testdata/score-request.json | "$bin" score --store "$db" > "$out/score-example.jsonl"
  "$bin" score --store "$db" --from openai testdata/openai-example.jsonl > "$out/score-openai.jsonl"
  "$bin" fit --store "$db" --data "$mmlu" --dry-run --json --seed 1 > "$out/fit-mmlu.json" 2> /dev/null
  "$bin" fit --store "$db" --data "$mmlu" --dry-run --json --risk 0.3 --temperature adaptive --confidence-map logistic > "$out/fit-mmlu-adaptive.json"
  "$bin" fit --store "$db" --data "$sac3" --dry-run --json --seed 2 > "$out/fit-sac3.json" 2> /dev/null
  "$bin" fit --store "$db" --data "$prime" --dry-run --json --seed 2 > "$out/fit-prime.json" 2> /dev/null
  "$bin" fit --store "$db" --data "$ss" --dry-run --json --score aps > "$out/fit-sim-samples.json" 2> /dev/null
  "$bin" fit --store "$db" --data "$so" --profile sim --temperature adaptive --risk 0.2 > /dev/null 2>&1
  "$bin" fit --store "$db" --data "$ss" --profile simsamples --risk 0.3 > /dev/null 2>&1
  "$bin" eval --store "$db" --data "$so" --profile sim --json > "$out/eval-sim.json"
  "$bin" eval --store "$db" --data "$mmlu" --profile sim --json > "$out/eval-mmlu.json" 2> /dev/null || true
  "$bin" eval --store "$db" --data "$ss" --profile simsamples --json > "$out/eval-sim-samples.json"
  "$bin" score --store "$db" --profile sim "$sr" > "$out/score-sim.jsonl"
  "$bin" score --store "$db" --profile simsamples "$ssr" > "$out/score-sim-samples.jsonl"
  rm -f "$db"
}
# The base first: its simulations are both sides' inputs.
run base
run new
# protojson varies its white space from build to build on purpose: the indented reports are
# compared compacted (python3's json keeps every number's shortest form, so equal values give
# equal bytes); the JSON Lines outputs, which plumb writes compact itself, byte for byte.
for f in "$work"/out-*/*.json; do
  python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), separators=(",", ":"), ensure_ascii=False))' "$f" > "$f.tmp"
  mv "$f.tmp" "$f"
done
status=0
for f in "$work"/out-base/*; do
  name=$(basename "$f")
  if cmp -s "$f" "$work/out-new/$name"; then
    printf 'same       %-28s %8d bytes\n' "$name" "$(wc -c < "$f")"
  else
    printf 'DIFFERENT  %s\n' "$name"
    diff <(head -c 4000 "$f") <(head -c 4000 "$work/out-new/$name") | head -20 || true
    status=1
  fi
done
exit $status
