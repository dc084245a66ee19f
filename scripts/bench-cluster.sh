#!/usr/bin/env bash
# The chat on several servers, measured beside one (issue 10): the same chat-bench load
# against one chat-server on SQLite, one on PostgreSQL, and three on one PostgreSQL joined
# by NATS (subscribers spread over the three, one sender on each). For the PostgreSQL and
# NATS runs it also prints what each message cost there: WAL bytes, commits and
# PostgreSQL CPU, NATS messages and bytes in and out and nats-server CPU. Everything runs
# on this machine's loopback, from a PostgreSQL and a nats-server of its own (Debian's:
# scripts/setup.sh), removed at the end; the CPU counted is that PostgreSQL's and that
# nats-server's only. Prints every figure, then one markdown table of them all, ready for
# BENCHMARKS.md, which says what they mean.
#
#   bash scripts/bench-cluster.sh
#   BENCH_SECONDS=2 BENCH_SUBSCRIBERS=90 bash scripts/bench-cluster.sh   # a quick check
#
# Exits non-zero if any run lost, duplicated or reordered a message, or failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"
SECONDS_EACH="${BENCH_SECONDS:-10}"
SUBSCRIBERS="${BENCH_SUBSCRIBERS:-900}"
PSQL=/usr/lib/postgresql/15/bin/psql

step() { printf '\n==> %s\n' "$*" >&2; }

step "building chat-server and chat-bench (release)"
cargo build --release -p chat-server -p chat-bench
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"

TMP="$(mktemp -d)"
chmod 755 "$TMP" # PostgreSQL runs as its own user and must reach its dir inside
SERVER_PIDS=()
NATS_PID=""
stop_servers() {
  for pid in "${SERVER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${SERVER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  SERVER_PIDS=()
}
cleanup() {
  stop_servers
  [ -z "$NATS_PID" ] || { kill "$NATS_PID" 2>/dev/null || true; wait "$NATS_PID" 2>/dev/null || true; }
  bash scripts/pg-temp.sh stop "$TMP/pg"
  rm -rf "$TMP"
}
trap cleanup EXIT

# Below Linux's ephemeral range, so no client socket of an earlier run holds it.
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

wait_port() {
  local port="$1" pid="$2" log="$3"
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "a process did not start on $port; its log:" >&2
  cat "$log" >&2
  exit 1
}

step "starting PostgreSQL (fsync on) and nats-server"
PG_URL="$(bash scripts/pg-temp.sh start "$TMP/pg" "$(free_port)" durable)"
NATS_PORT="$(free_port)"
NATS_MON="$(free_port)"
nats-server -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MON" >"$TMP/nats.log" 2>&1 &
NATS_PID=$!
wait_port "$NATS_PORT" "$NATS_PID" "$TMP/nats.log"
NATS_URL="nats://127.0.0.1:$NATS_PORT"

# The limits are for strangers; here every client is the load, from 127.0.0.1.
SERVER_FLAGS=(
  --max-messages-per-sec 0 --max-connections 0 --max-connections-per-ip 0
  --max-streams 0 --max-streams-per-ip 0 --max-new-rooms-per-hour 0
)

# start_servers N DB [NATS]: N servers on DB, joined by NATS when given.
ADDRS=""
start_servers() {
  local n="$1" db="$2" nats="${3:-}" port
  ADDRS=""
  for i in $(seq "$n"); do
    port="$(free_port)"
    "$BIN/chat-server" --addr "127.0.0.1:$port" --db "$db" ${nats:+--nats "$nats"} "${SERVER_FLAGS[@]}" \
      >"$TMP/server$i.log" 2>&1 &
    SERVER_PIDS+=($!)
    wait_port "$port" "$!" "$TMP/server$i.log"
    ADDRS="${ADDRS:+$ADDRS,}127.0.0.1:$port"
  done
}

# CPU seconds (utime+stime) of the processes given and their live children: this run's
# PostgreSQL (its postmaster and backends) or nats-server, never another one on the machine.
cpu_of() {
  local total=0 pid ticks
  for pid in "$@" $(for p in "$@"; do pgrep -P "$p"; done); do
    ticks="$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)"
    total=$((total + ticks))
  done
  awk -v t="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", t / hz }'
}
pg_cpu() { cpu_of "$(head -1 "$TMP/pg/data/postmaster.pid")"; }
nats_cpu() { cpu_of "$NATS_PID"; }

# The table's rows, one per run: | setup | load | deliveries/s | p99 | ... |
ROWS=()

sql() { "$PSQL" -X -q -t -A -d "$1" -c "$2"; }
# Writes of room counter rows: every commit of messages writes the counter row of each room
# it holds (see the PostgreSQL writer), so with the one room every load here uses, commits.
# Read from the statistics, which a backend reports by the time it exits.
counter_writes() { sql "$1" "SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables WHERE relname = 'rooms'"; }
varz() { curl -s "http://127.0.0.1:$NATS_MON/varz" | tr -d ' ,' | awk -F: -v k="\"$1\"" '$1 == k { print $2 }'; }

FAILED=()
DB_N=0
# run NAME SETUP [ARGS...]: SETUP is sqlite, pg or cluster; a fresh database each time.
run() {
  local name="$1" setup="$2"
  shift 2
  step "$name"
  local db
  case "$setup" in
    sqlite) db="$TMP/bench.db"; rm -f "$TMP"/bench.db*; start_servers 1 "$db" ;;
    pg) DB_N=$((DB_N + 1)); sql "$PG_URL" "CREATE DATABASE bench$DB_N"; db="${PG_URL%/*}/bench$DB_N"; start_servers 1 "$db" ;;
    cluster) DB_N=$((DB_N + 1)); sql "$PG_URL" "CREATE DATABASE bench$DB_N"; db="${PG_URL%/*}/bench$DB_N"; start_servers 3 "$db" "$NATS_URL" ;;
  esac
  # A server listens before it has set up its database; the figures below read its tables.
  if [ "$setup" != sqlite ]; then
    for _ in $(seq 100); do
      [ "$(sql "$db" "SELECT to_regclass('messages') IS NOT NULL")" = t ] && break
      sleep 0.1
    done
  fi
  echo "### $name"
  echo "chat-bench --addr $ADDRS $*"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  local wal0 writes0 rows0 pgcpu0 natscpu0 in_msgs0 in_bytes0 out_msgs0 out_bytes0
  if [ "$setup" != sqlite ]; then
    wal0="$(sql "$db" "SELECT pg_current_wal_lsn() - '0/0'")"
    writes0="$(counter_writes "$db")"
    rows0="$(sql "$db" "SELECT count(*) FROM messages")"
    pgcpu0="$(pg_cpu)"
    natscpu0="$(nats_cpu)"
    in_msgs0="$(varz in_msgs)" in_bytes0="$(varz in_bytes)" out_msgs0="$(varz out_msgs)" out_bytes0="$(varz out_bytes)"
  fi
  local pids
  pids="$(IFS=,; echo "${SERVER_PIDS[*]}")"
  if ! "$BIN/chat-bench" --addr "$ADDRS" --server-pid "$pids" "$@" | tee "$TMP/bench.out"; then
    FAILED+=("$name")
  fi
  # From chat-bench's report: "deliveries  N of M in S s: R/s", "... p99 X ms ...",
  # "server CPU ... Y us per message)".
  local rate p99 server_us pg_cells="| - | - | - " nats_cells="| - | - "
  rate="$(sed -n 's/^  deliveries .*: \([0-9,]*\)\/s$/\1/p' "$TMP/bench.out")"
  p99="$(sed -n 's/^  latency send->receive .* p99 \([0-9.]* ms\) .*/\1/p' "$TMP/bench.out")"
  server_us="$(sed -n 's/^  server CPU .* \([0-9.]*\) us per message)$/\1 us/p' "$TMP/bench.out")"
  if [ "$setup" = sqlite ]; then
    stop_servers
  else
    # CPU while the servers' backends live (a process gone takes its CPU time with it).
    local rows wal writes pgcpu natscpu nats_figures=()
    rows=$(( $(sql "$db" "SELECT count(*) FROM messages") - rows0 ))
    wal=$(( $(sql "$db" "SELECT pg_current_wal_lsn() - '0/0'") - wal0 ))
    pgcpu="$(pg_cpu)"
    natscpu="$(nats_cpu)"
    [ "$rows" -gt 0 ] || rows=1
    if [ "$setup" = cluster ]; then
      nats_figures=(-v r="$rows" -v im="$(( $(varz in_msgs) - in_msgs0 ))" -v ib="$(( $(varz in_bytes) - in_bytes0 ))"
        -v om="$(( $(varz out_msgs) - out_msgs0 ))" -v ob="$(( $(varz out_bytes) - out_bytes0 ))"
        -v c0="$natscpu0" -v c1="$natscpu")
    fi
    # Commits, once the servers' backends have gone and reported their table counts.
    stop_servers
    sleep 1
    writes=$(( $(counter_writes "$db") - writes0 ))
    echo "per message stored ($rows messages):"
    awk -v r="$rows" -v w="$wal" -v x="$writes" -v c0="$pgcpu0" -v c1="$pgcpu" 'BEGIN {
      printf "  PostgreSQL: %.0f WAL bytes, %.1f us CPU; %d commits wrote the room, %.1f messages each\n",
        w / r, (c1 - c0) * 1e6 / r, x, r / (x > 0 ? x : 1) }'
    pg_cells="$(awk -v r="$rows" -v w="$wal" -v x="$writes" -v c0="$pgcpu0" -v c1="$pgcpu" 'BEGIN {
      printf "| %.1f us | %.0f B | %.1f ", (c1 - c0) * 1e6 / r, w / r, r / (x > 0 ? x : 1) }')"
    if [ "$setup" = cluster ]; then
      awk "${nats_figures[@]}" 'BEGIN {
        printf "  NATS: %.3f publishes in (%.0f bytes), %.3f deliveries out (%.0f bytes), %.1f us nats-server CPU\n",
          im / r, ib / r, om / r, ob / r, (c1 - c0) * 1e6 / r }'
      nats_cells="$(awk "${nats_figures[@]}" 'BEGIN { printf "| %.1f us | %.0f B ", (c1 - c0) * 1e6 / r, (ib + ob) / r }')"
    fi
  fi
  ROWS+=("| $table_setup | $table_load | ${rate:-?} | ${p99:--} | ${server_us:-?} $pg_cells$nats_cells|")
  echo
}

echo "# several servers, $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates proto || echo '+uncommitted'), $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# server flags: ${SERVER_FLAGS[*]}; PostgreSQL 15 with fsync on; SQLite with --db-sync full"
echo

LOAD=(--subscribers "$SUBSCRIBERS" --rooms 1 --senders 3 --duration "$SECONDS_EACH")
for setup in sqlite pg cluster; do
  case "$setup" in
    sqlite) table_setup="1 server, SQLite" ;;
    pg) table_setup="1 server, PostgreSQL" ;;
    cluster) table_setup="3 servers, one PostgreSQL, NATS" ;;
  esac
  table_load="3 senders at full speed"
  run "$table_setup: 1 room x $SUBSCRIBERS grpc-web subscribers, $table_load" "$setup" "${LOAD[@]}"
  table_load="$((SUBSCRIBERS * 100)) deliveries/s offered"
  run "$table_setup: 1 room x $SUBSCRIBERS grpc-web subscribers, $table_load: latency" "$setup" "${LOAD[@]}" --rate 100
done

echo "## the table (1 room x $SUBSCRIBERS grpc-web subscribers spread over the servers, 3 native senders spread too, ${SECONDS_EACH} s each; CPU and bytes per message stored)"
echo
echo "| setup | load | deliveries/s | p99 | chat-server CPU | PostgreSQL CPU | WAL | messages per commit | nats-server CPU | NATS bytes |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo

if [ "${#FAILED[@]}" -gt 0 ]; then
  printf 'NOT CLEAN or failed: %s\n' "${FAILED[@]}"
  exit 1
fi
echo "every run: every message delivered once, in order"
