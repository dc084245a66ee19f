#!/usr/bin/env bash
# Installs what building the app needs, each piece only when missing or at another
# version, so a warm machine goes straight through. Sourced by run.sh and test.sh.
# Nothing here downloads a prebuilt binary: tools come from crates.io and npm, and trunk
# is pointed at them so it never fetches its own.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TRUNK_VERSION="0.21.14" # newer trunk needs a newer rustc than this machine's 1.95
export PATH="$HOME/.cargo/bin:$ROOT/frontend/node_modules/.bin:$PATH"

step() { printf '\n==> %s\n' "$*" >&2; }

rust_target() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    step "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  # The test run checks formatting; a minimal toolchain profile lacks rustfmt.
  if ! cargo fmt --version >/dev/null 2>&1; then
    step "adding rustfmt"
    rustup component add rustfmt
  fi
}

wasm_toolchain() {
  # scripts/trunk-release.sh builds the wasm's std from source with the nightly toolchain
  # (-Z build-std), which needs that toolchain and its rust-src.
  local tc="${WASM_TOOLCHAIN:-nightly}"
  if ! rustup run "$tc" rustc --version >/dev/null 2>&1; then
    step "installing the $tc toolchain for the page's release build"
    rustup toolchain install "$tc" --profile minimal
  fi
  if ! rustup component list --toolchain "$tc" --installed | grep -qx 'rust-src'; then
    step "adding rust-src to $tc (the page's std is built from source)"
    rustup component add rust-src --toolchain "$tc"
  fi
}

trunk_tool() {
  if [ "$(trunk --version 2>/dev/null)" != "trunk $TRUNK_VERSION" ]; then
    step "installing trunk $TRUNK_VERSION (takes several minutes once)"
    cargo install --locked trunk --version "$TRUNK_VERSION"
  fi
}

wasm_bindgen_tool() {
  # Must equal the wasm-bindgen crate in Cargo.lock, or trunk would try to download one.
  local want
  want="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock")"
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $want" ]; then
    step "installing wasm-bindgen-cli $want"
    # Not --locked: its lockfile pins a crate version the registry no longer serves.
    cargo install wasm-bindgen-cli --version "$want"
  fi
}

node_tools() {
  # binaryen's wasm-opt (Debian's is too old: its output fails at runtime in Chromium)
  # and playwright-core and axe-core for the browser tests.
  local stamp="$ROOT/frontend/node_modules/.package-lock.json"
  if [ ! -f "$stamp" ] || [ "$ROOT/frontend/package-lock.json" -nt "$stamp" ]; then
    step "installing the frontend's node tools"
    (cd "$ROOT/frontend" && npm ci --no-audit --no-fund)
  fi
}

browser() {
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    step "installing Chromium for the browser tests"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
  fi
}

deploy_tools() {
  # nginx (Debian's 1.22) and openssl for the deployment test (frontend/e2e/deploy.test.mjs
  # runs deploy/nginx.conf in front of chat-server). The test starts its own nginx from a
  # temp dir; on a machine running systemd, installing the package also starts Debian's
  # default site on port 80 (`systemctl disable --now nginx` stops it).
  if [ ! -x /usr/sbin/nginx ] || ! command -v openssl >/dev/null; then
    step "installing nginx and openssl for the deployment test"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx openssl
  fi
}

nats_tool() {
  # Debian's nats-server (2.9) for the tests of several servers sharing one chat
  # (crates/chat-server/tests/common/nats.rs starts a private one on a free port).
  if ! command -v nats-server >/dev/null; then
    step "installing nats-server for the tests of several servers"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nats-server
  fi
}

postgres_server() {
  # PostgreSQL 15 (Debian's) for the tests on PostgreSQL: they start instances of their own
  # from its programs (crates/chat-server/tests/common/pg.rs), each in a temp dir on a free
  # port, run as the package's `postgres` user when we are root. The package's own cluster
  # is not used (on a machine running systemd, installing it also starts one on port 5432).
  if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
    step "installing PostgreSQL 15 for the tests on PostgreSQL"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15
  fi
}

build_frontend() {
  step "building the frontend (trunk, release)"
  bash "$ROOT/scripts/trunk-release.sh"
}

build_frontend_api_url() {
  # The page for a static host of its own origin, calling the API at another
  # (frontend/e2e/deploy.test.mjs maps api.example.com to its nginx). It shares the first
  # build's target dir, so only the frontend crate itself is compiled again.
  step "building the frontend for a static host (CHAT_API_URL=https://api.example.com)"
  CHAT_API_URL=https://api.example.com bash "$ROOT/scripts/trunk-release.sh" --dist target/dist-api-url
}

setup_build_tools() {
  rust_target
  wasm_toolchain
  trunk_tool
  wasm_bindgen_tool
  node_tools
}
