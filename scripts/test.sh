#!/usr/bin/env bash
# Every test, from a fresh clone: unit and integration tests of the Rust crates (those on
# PostgreSQL start instances of their own from Debian's postgresql-15), then the
# frontend built as users get it (release, wasm-opt) and driven in headless Chromium, served
# by chat-server and behind nginx from deploy/ (frontend/e2e/deploy.test.mjs).
# .ci/run calls exactly this.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

setup_build_tools
browser
deploy_tools
nats_tool
postgres_server

step "formatting"
cargo fmt --all -- --check

step "Rust tests"
cargo test --workspace --no-fail-fast --color never 2>&1 | tee -a "$log"

step "fuzz corpus replay"
# The committed fuzz corpus through each fuzz target's checks, on stable, without
# cargo-fuzz; fuzz/ is a workspace of its own, built into the same target dir.
cargo test --manifest-path fuzz/Cargo.toml --no-default-features --target-dir target \
  --color never 2>&1 | tee -a "$log"

step "browser end-to-end tests"
build_frontend
step "page weight budget"
bash scripts/frontend-size.sh --check dist
build_frontend_api_url
cargo build -p chat-server -p chat-cli
node --test --test-reporter=spec frontend/e2e/ 2>&1 | tee -a "$log"

# One closing line for the whole run.
passed=$(( $(grep -oE 'test result: [a-z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}') \
  + $(grep -oE '^ℹ pass [0-9]+' "$log" | awk '{s+=$3} END {print s+0}') ))
failed=$(( $(grep -oE '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}') \
  + $(grep -oE '^ℹ fail [0-9]+' "$log" | awk '{s+=$3} END {print s+0}') ))
echo
echo "all: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
