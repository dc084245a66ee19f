#!/usr/bin/env bash
# The page's release build: `trunk build --release` (arguments go to it, e.g. --dist DIR)
# with the wasm's standard library compiled from source by the nightly toolchain, and
# panics that abort at once. std's prebuilt copy carries the panic machinery (message
# formatting, location, unwinding hooks) that every bounds check links in; built with
# `panic = "immediate-abort"` it is left out, which is the largest single cut in
# BENCHMARKS.md ("Frontend weight"). std's `optimize_for_size` feature picks its smaller
# variants where it has two (sorting, number formatting and parsing). A plain
# `trunk build --release` (stable, the prebuilt std) still builds a working page, just
# heavier than the budget. `-Zlocation-detail=none` leaves the file/line/column of each
# `#[track_caller]` site out of the data, and `-Zfmt-debug=none` makes `{:?}` and derived
# `Debug` print nothing: the page never shows either (no panic message is kept, and no
# `{:?}` reaches the screen or the console).
# Only the frontend build uses nightly: the server, the CLI and the tests stay on stable.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$ROOT/frontend/node_modules/.bin:$PATH"
# scripts/setup.sh (wasm_toolchain) installs this toolchain's rust-src when missing.
WASM_TOOLCHAIN="${WASM_TOOLCHAIN:-nightly}"

cd "$ROOT"
RUSTFLAGS="${RUSTFLAGS:-} -Zlocation-detail=none -Zfmt-debug=none" \
  RUSTUP_TOOLCHAIN="$WASM_TOOLCHAIN" \
  CARGO_UNSTABLE_BUILD_STD=std,panic_abort \
  CARGO_UNSTABLE_BUILD_STD_FEATURES=optimize_for_size \
  CARGO_UNSTABLE_PANIC_IMMEDIATE_ABORT=true \
  CARGO_PROFILE_WASM_RELEASE_PANIC=immediate-abort \
  exec trunk build --release "$@"
