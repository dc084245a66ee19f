#!/usr/bin/env bash
# The fan-out benchmark (issue 4): builds release, and for each scenario of the targets
# starts a fresh chat-server on a free loopback port, runs chat-bench against it, stops it.
# Prints every figure; BENCHMARKS.md says what they mean. About two minutes after the build.
#
#   bash scripts/bench.sh              # every scenario
#   BENCH_SECONDS=5 bash scripts/bench.sh   # shorter sending phases
#
# Exits non-zero if any scenario lost, duplicated or reordered a message, or failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"
SECONDS_EACH="${BENCH_SECONDS:-10}"

step() { printf '\n==> %s\n' "$*" >&2; }

step "building chat-server and chat-bench (release)"
cargo build --release -p chat-server -p chat-bench
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"

# Ten thousand subscribers are ten thousand sockets on each side.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 10200 ]; then
  echo "open-file limit $(ulimit -n) is below the 10,200 the idle scenario needs" >&2
  exit 1
fi

TMP="$(mktemp -d)"
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
trap 'stop_server; rm -rf "$TMP"' EXIT

# The limits are for strangers; here every client is the load, from 127.0.0.1.
SERVER_FLAGS=(
  --max-messages-per-sec 0                            # the senders are the load, not abuse
  --max-connections 0 --max-connections-per-ip 0      # every subscriber connects from one address
  --max-streams 0 --max-streams-per-ip 0              # and holds one stream
  --max-new-rooms-per-hour 0                          # one session creates every room of the run
)

# Below Linux's ephemeral range (32768-60999), so no client socket of an earlier run holds it.
free_port() {
  local port
  for _ in $(seq 50); do
    port=$((10000 + RANDOM % 22000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  echo "no free port found" >&2
  return 1
}

start_server() {
  PORT="$(free_port)"
  rm -f "$TMP"/bench.db*
  "$BIN/chat-server" --addr "127.0.0.1:$PORT" --db "$TMP/bench.db" "${SERVER_FLAGS[@]}" >"$TMP/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
      return
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "chat-server did not start; its log:" >&2
  cat "$TMP/server.log" >&2
  exit 1
}

FAILED=()
# scenario NAME ARGS...: a fresh server, one chat-bench run, the report on stdout.
scenario() {
  local name="$1"
  shift
  step "$name"
  start_server
  echo "### $name"
  echo "chat-bench $*"
  # Other work on the machine takes cores from both sides; say how much there was.
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  if ! "$BIN/chat-bench" --addr "127.0.0.1:$PORT" --server-pid "$SERVER_PID" "$@"; then
    FAILED+=("$name")
  fi
  echo
  stop_server
}

echo "# fan-out benchmark, $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates proto || echo '+uncommitted'), $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# server flags: ${SERVER_FLAGS[*]}"
LOAD="$(cut -d' ' -f1 /proc/loadavg)"
if awk -v l="$LOAD" 'BEGIN { exit !(l > 1.0) }'; then
  echo "# WARNING: load average $LOAD before starting: other work shares the cores, so"
  echo "# throughput and latency will read low; CPU per delivery and the CPU-bound ceiling hold up better"
fi
echo

# Memory first, on a fresh server, so nothing earlier has grown its heap.
scenario "10,000 idle grpc-web subscribers: server RSS per subscriber" \
  --subscribers 10000 --senders 0 --settle-ms 2000
scenario "1 room x 1,000 grpc-web subscribers, senders at full speed, with the raw-TCP baseline" \
  --subscribers 1000 --rooms 1 --duration "$SECONDS_EACH" --baseline
scenario "1 room x 1,000 grpc-web subscribers, 500,000 deliveries/s offered: latency" \
  --subscribers 1000 --rooms 1 --duration "$SECONDS_EACH" --rate 500
scenario "100 rooms x 10 grpc-web subscribers, senders at full speed, with the raw-TCP baseline" \
  --subscribers 1000 --rooms 100 --duration "$SECONDS_EACH" --baseline
scenario "1 room x 1,000 native gRPC subscribers, senders at full speed" \
  --subscribers 1000 --rooms 1 --duration "$SECONDS_EACH" --transport native

if [ "${#FAILED[@]}" -gt 0 ]; then
  printf 'NOT CLEAN or failed: %s\n' "${FAILED[@]}"
  exit 1
fi
echo "every scenario: every message delivered once, in order"
