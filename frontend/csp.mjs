// Fits the built page to the Content-Security-Policy chat-server sends with it
// (crates/chat-server/src/page_headers.rs), which allows scripts from the page's own
// origin only, never inline ones. Called by compress.mjs, before compressing.
//
// 1. trunk starts the app with an inline <script type="module"> in index.html (import the
//    glue, init the wasm). It is moved, as it is, into `loader-<hash>.js` next to the glue
//    and index.html points at it with a Subresource Integrity hash, like trunk's own
//    assets. A file rather than a CSP hash of the inline script: the policy stays one fixed
//    string, for chat-server and for any static host alike, and the hashed name is cached
//    for a year like the rest.
// 2. A page built with CHAT_API_URL calls that origin: it is written to dist/api-origin,
//    where chat-server reads it to add it to connect-src.
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

const sri = (bytes) => `sha384-${createHash("sha384").update(bytes).digest("base64")}`;

/** Moves every inline script of index.html into a content-hashed file. */
export async function externalizeScripts(dir) {
  const indexPath = join(dir, "index.html");
  const index = await readFile(indexPath, "utf8");
  const moved = [];
  // trunk's minifier may drop the quotes around attribute values; an inline script is one
  // without a src attribute.
  const out = index.replace(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi, (whole, attrs, body) => {
    if (/\bsrc\s*=/i.test(attrs) || body.trim() === "") return whole;
    // `trunk serve`'s live-reload script: trunk fills in its address when serving
    // index.html, and serves the page without this policy anyway.
    if (body.includes("{{__TRUNK")) return whole;
    const bytes = Buffer.from(body.trim() + "\n", "utf8");
    // trunk's own naming (`<stem>-<16 hex>.js`), so chat-server caches it like trunk's files.
    const name = `loader-${createHash("sha256").update(bytes).digest("hex").slice(0, 16)}.js`;
    moved.push({ name, bytes });
    // Served from where the glue it imports is (trunk's public_url, "/" by default).
    const at = /from\s*["']([^"']*\/)[^"'/]*["']/.exec(body)?.[1] ?? "/";
    return `<script${attrs} src="${at}${name}" integrity="${sri(bytes)}"></script>`;
  });
  for (const { name, bytes } of moved) {
    await writeFile(join(dir, name), bytes);
    console.log(`csp: inline script moved to ${name} (${bytes.length} bytes)`);
  }
  await writeFile(indexPath, out);
}

/** Records the API origin the page was built for, when it is not the page's own. */
export async function recordApiOrigin(dir) {
  const url = process.env.CHAT_API_URL;
  if (!url) return;
  const origin = new URL(url).origin;
  await writeFile(join(dir, "api-origin"), `${origin}\n`);
  console.log(`csp: the page calls ${origin} (api-origin, for connect-src)`);
}
