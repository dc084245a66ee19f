#!/usr/bin/env bash
# What the page's wasm is made of: the last release build's wasm (from
# scripts/trunk-release.sh, in target/) through wasm-bindgen and wasm-opt as trunk runs
# them, but with the function names kept (-g), then twiggy's sizes grouped by the crate
# each item's name starts with. Raw bytes of code and data, not brotli: brotli is only
# known for the whole file (scripts/frontend-size.sh). BENCHMARKS.md, "Frontend weight",
# quotes this script.
#
#   bash scripts/frontend-breakdown.sh        # groups, then the 25 largest items
#   bash scripts/frontend-breakdown.sh 60     # groups, then the 60 largest items
#
# Needs twiggy (`cargo install twiggy`), which nothing else uses.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$ROOT/frontend/node_modules/.bin:$PATH"
top="${1:-25}"
wasm="$ROOT/target/wasm32-unknown-unknown/wasm-release/chat-frontend.wasm"
[ -f "$wasm" ] || { echo "no $wasm: run scripts/trunk-release.sh first" >&2; exit 1; }
command -v twiggy >/dev/null || { echo "twiggy is missing: cargo install twiggy" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
wasm-bindgen --target web --out-dir "$work" "$wasm"
# frontend/index.html's wasm-opt flags, with names kept instead of stripped.
wasm-opt "$work/chat-frontend_bg.wasm" -o "$work/named.wasm" -Oz -g \
  --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  -iit --low-memory-unused --zero-filled-memory --flatten --rereloop -Oz
twiggy top -f csv "$work/named.wasm" >"$work/top.csv"

node - "$work/top.csv" "$top" <<'EOF'
const fs = require("fs");
const [file, top] = [process.argv[2], Number(process.argv[3])];
// twiggy's CSV: Name,ShallowSize,...; names may hold commas and doubled quotes.
function* rows(text) {
  const re = /("(?:[^"]|"")*"|[^,\n]*),(\d+),[^\n]*\n/g;
  text = text.slice(text.indexOf("\n") + 1);
  for (let m; (m = re.exec(text)); ) {
    const name = m[1].startsWith('"') ? m[1].slice(1, -1).replaceAll('""', '"') : m[1];
    yield [name, Number(m[2])];
  }
}
const items = [...rows(fs.readFileSync(file, "utf8"))]
  // The names section exists only because of -g.
  .filter(([name]) => !/subsection|custom section/.test(name))
  .map(([name, bytes]) => [name.replace(/\[[0-9a-f]+\]/g, ""), bytes]);
const group = (name) =>
  name.startsWith("data segment") ? "data (strings, tables)" : (name.match(/^[<&(\s]*(?:dyn )?([a-z_][a-z0-9_]*)::/)?.[1] ?? "other (main, wasm-bindgen shims, import and export names)");
const groups = new Map();
let total = 0;
for (const [name, bytes] of items) {
  groups.set(group(name), (groups.get(group(name)) ?? 0) + bytes);
  total += bytes;
}
console.log(`| group | raw bytes | share |\n|---|---:|---:|`);
for (const [g, bytes] of [...groups].sort((a, b) => b[1] - a[1]).filter(([, b]) => b >= 1000)) {
  console.log(`| ${g} | ${bytes} | ${((100 * bytes) / total).toFixed(0)}% |`);
}
console.log(`| **total** | **${total}** | |\n`);
console.log(`| raw bytes | item |\n|---:|---|`);
for (const [name, bytes] of items.sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`| ${bytes} | \`${name.length > 150 ? name.slice(0, 147) + "..." : name}\` |`);
}
EOF
