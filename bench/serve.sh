# Sourced by the bench scripts.
#
# start_serve BINARY LOG ARGS...: starts `BINARY serve ARGS` in the background, its stderr in
# LOG, and sets pid and addr (the gRPC address it says it serves on); prints the log and exits
# when it has not come up within 10 s.
start_serve() {
  local bin=$1 log=$2
  shift 2
  "$bin" serve "$@" 2> "$log" &
  pid=$!
  addr=""
  for _ in $(seq 1 100); do
    addr=$(sed -n 's/.*serving on \([^ ]*\).*/\1/p' "$log" | head -1)
    [ -n "$addr" ] && return 0
    sleep 0.1
  done
  cat "$log"
  exit 1
}
