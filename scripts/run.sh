#!/usr/bin/env bash
# One command from a fresh clone to the app on http://127.0.0.1:8080:
# installs the build tools, builds the frontend and the server, and runs it.
# Extra arguments go to chat-server (see `chat-server --help`).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

setup_build_tools
build_frontend
step "building and starting chat-server"
exec cargo run --release -p chat-server -- --addr "${CHAT_ADDR:-127.0.0.1:8080}" --static-dir dist "$@"
