#!/usr/bin/env bash
# The search benchmark (issue 11): builds the search_bench example in release and runs it:
# one room of 1,000,000 messages filled through the store into a temp SQLite database,
# served on a loopback port, Search timed over gRPC for queries of every selectivity
# (p50/p99/max per kind), then the index's size and share of the file. Prints the load
# average before and after, since the machine may be shared. BENCHMARKS.md quotes it.
#
#   bash scripts/bench-search.sh                      # 1,000,000 messages, 200 calls a kind
#   bash scripts/bench-search.sh --messages 100000 --runs 50
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

echo "==> building the search benchmark (release)" >&2
cargo build --release -p chat-server --example search_bench
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/search_bench"

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
"$BIN" "$@"
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
