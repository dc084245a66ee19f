#!/usr/bin/env bash
# Fuzzes the grpc-web framing and the request decoders with cargo-fuzz on the nightly
# toolchain, SECONDS each (default 180), then minimizes each corpus in place
# (fuzz/corpus/<target>/, committed). A finding stops the run and is written to
# fuzz/artifacts/<target>/; fix it, and turn it into a regular test.
# Not part of scripts/test.sh. The committed corpus replays on stable without cargo-fuzz:
#   cargo test --manifest-path fuzz/Cargo.toml --no-default-features
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs="${1:-180}"

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

for target in grpc_web_framing request_decoders; do
  echo "== $target: ${secs}s"
  cargo +nightly fuzz run "$target" -- -max_total_time="$secs" -max_len=4608 -len_control=0 -timeout=20
  cargo +nightly fuzz cmin "$target" -- -max_len=4608 -timeout=20
done
