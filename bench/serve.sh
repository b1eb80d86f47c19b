# Sourced by the bench scripts (from the repository root).
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

# The load tools, pinned, and where the scripts put them and plumb.
GHZ_VERSION=v0.120.0
HEY_VERSION=v0.1.4
BIN="$(pwd)/bench/.bin"

# setup TOOL...: installs the named load tools (ghz, hey) and plumb into $BIN, and makes $work,
# a temporary folder that goes, with the server in $pid, when the script exits.
setup() {
  mkdir -p "$BIN"
  local tool
  for tool in "$@"; do
    case $tool in
    ghz) GOBIN="$BIN" go install "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION" ;;
    hey) GOBIN="$BIN" go install "github.com/rakyll/hey@$HEY_VERSION" ;;
    esac
  done
  go build -o "$BIN/plumb" ./cmd/plumb
  work=$(mktemp -d)
  pid=""
  trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; fi; wait 2>/dev/null; rm -rf "$work"' EXIT
}
