#!/usr/bin/env bash
# What the browser downloads for the app: the wasm, the JS glue and the CSS that trunk
# emits, each raw, gzip -9 and brotli at quality 11 (what frontend/compress.mjs writes and
# the server sends), and the total. Every figure in BENCHMARKS.md comes from this script.
#
#   bash scripts/frontend-size.sh            # builds a release dist into a temp dir first
#   bash scripts/frontend-size.sh DIST_DIR   # measures an existing dist (e.g. dist/)
#   bash scripts/frontend-size.sh --check DIST_DIR   # and fails past the budget (scripts/test.sh)
#
# Sizes are computed from the uncompressed files with node's zlib (always installed),
# not read from the .br/.gz next to them, so a dist without them measures the same.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$ROOT/frontend/node_modules/.bin:$PATH"

# The page's weight budget: total brotli bytes of the files above. It sits just above the
# weight measured when it was set (BENCHMARKS.md, "Frontend weight"), so growth is a
# decision: whoever raises it says in BENCHMARKS.md what the bytes buy. The issue's ceiling
# is 146 KB; at 146,000 bytes this budget is that ceiling, so raising it means cutting
# elsewhere first.
BUDGET_BROTLI=146000

check=0
if [ "${1:-}" = "--check" ]; then
  check=1
  shift
fi
dist="${1:-}"
if [ -z "$dist" ]; then
  dist="$(mktemp -d)"
  trap 'rm -rf "$dist"' EXIT
  bash "$ROOT/scripts/trunk-release.sh" --dist "$dist" >&2
fi

node - "$dist" "$check" "$BUDGET_BROTLI" <<'EOF'
const fs = require("fs");
const path = require("path");
const zlib = require("zlib");

const [dist, check, budget] = [process.argv[2], process.argv[3] === "1", Number(process.argv[4])];
const files = fs
  .readdirSync(dist)
  .filter((f) => /\.(wasm|js|css)$/.test(f))
  .sort((a, b) => order(a) - order(b) || a.localeCompare(b));
if (files.length === 0) {
  console.error(`no .wasm/.js/.css in ${dist}: is it a trunk dist?`);
  process.exit(1);
}

function order(f) {
  return [".wasm", ".js", ".css"].indexOf(path.extname(f));
}

function sizes(buf) {
  return {
    raw: buf.length,
    gzip: zlib.gzipSync(buf, { level: 9 }).length,
    brotli: zlib.brotliCompressSync(buf, {
      params: {
        [zlib.constants.BROTLI_PARAM_QUALITY]: 11,
        [zlib.constants.BROTLI_PARAM_SIZE_HINT]: buf.length,
      },
    }).length,
  };
}

const rows = files.map((f) => ({
  // trunk's content hash changes every build (a 64-bit number in hex, so at times shorter
  // than 16 digits); the kind of file is what compares.
  name: f.replace(/-[0-9a-f]{12,16}(?=[._])/, "-<hash>"),
  ...sizes(fs.readFileSync(path.join(dist, f))),
}));
const total = { name: "total", raw: 0, gzip: 0, brotli: 0 };
for (const r of rows) for (const k of ["raw", "gzip", "brotli"]) total[k] += r[k];

console.log("| file | raw | gzip | brotli |");
console.log("|---|---:|---:|---:|");
for (const r of [...rows, total]) {
  const b = r === total ? "**" : "";
  const name = r === total ? r.name : `\`${r.name}\``;
  console.log(`| ${b}${name}${b} | ${b}${r.raw}${b} | ${b}${r.gzip}${b} | ${b}${r.brotli}${b} |`);
}
if (check) {
  if (total.brotli > budget) {
    console.error(
      `page weight ${total.brotli} bytes brotli is over the budget of ${budget} ` +
        `(+${total.brotli - budget}): cut it, or raise BUDGET_BROTLI in scripts/frontend-size.sh ` +
        `and say in BENCHMARKS.md what the bytes buy`,
    );
    process.exit(1);
  }
  console.log(`page weight ${total.brotli} bytes brotli, within the budget of ${budget}`);
}
EOF
