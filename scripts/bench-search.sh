#!/usr/bin/env bash
# The search benchmark (issue 11): builds the search_bench example in release and runs it:
# one room of 1,000,000 messages filled through the store into a temp SQLite database, or
# with `--db postgres` into a PostgreSQL of its own (scripts/pg-temp.sh, fsync on, on a
# free loopback port, removed at the end), served on a loopback port, Search timed over
# gRPC for queries of every selectivity (p50/p99/max per kind), then the index's size and
# share of the database. Prints the load average before and after, since the machine may
# be shared. BENCHMARKS.md quotes it.
#
#   bash scripts/bench-search.sh                      # 1,000,000 messages, 200 calls a kind
#   bash scripts/bench-search.sh --db postgres        # the same on PostgreSQL
#   bash scripts/bench-search.sh --messages 100000 --runs 50
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

DB=sqlite
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --db) DB="${2:?--db needs sqlite or postgres}"; shift 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
case "$DB" in
  sqlite | postgres) ;;
  *) echo "--db is sqlite or postgres, not $DB" >&2; exit 2 ;;
esac

echo "==> building the search benchmark (release)" >&2
cargo build --release -p chat-server --example search_bench
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/search_bench"

if [ "$DB" = postgres ]; then
  TMP="$(mktemp -d)"
  chmod 755 "$TMP" # PostgreSQL runs as its own user and must reach its dir inside
  trap 'bash scripts/pg-temp.sh stop "$TMP/pg"; rm -rf "$TMP"' EXIT
  # Below Linux's ephemeral range, so no client socket of an earlier run holds it.
  port=""
  for _ in $(seq 50); do
    port=$((10000 + RANDOM % 22000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    port=""
  done
  [ -n "$port" ] || { echo "no free port found" >&2; exit 1; }
  echo "==> starting PostgreSQL (fsync on) on 127.0.0.1:$port" >&2
  ARGS+=(--postgres "$(bash scripts/pg-temp.sh start "$TMP/pg" "$port" durable)")
fi

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
"$BIN" ${ARGS[@]+"${ARGS[@]}"}
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
