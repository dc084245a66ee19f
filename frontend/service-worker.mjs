// Writes dist/sw.js: frontend/sw.js with the release on its first line, the list of
// trunk's content-hashed files and a version derived from their names (so from their
// hashes). A new build with any changed file has a new version, hence a new sw.js, which
// the browser sees on its next check and installs into a new cache. Called by
// compress.mjs once every other file is final (the loader is written by csp.mjs).
import { createHash } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { minify } from "terser";

// The names chat-server caches for a year (static_files.rs `is_hashed`): `<stem>-<hex>.<ext>`
// or `<stem>-<hex>_bg.wasm`.
const HASHED = /^.+-[0-9a-f]{8,16}(_bg)?\.[a-z]+$/;

/** `small`: minified, as a release build ships it. */
export async function writeServiceWorker(dir, { small = false } = {}) {
  const assets = (await readdir(dir))
    .filter((name) => HASHED.test(name))
    .sort()
    .map((name) => `/${name}`);
  const version = createHash("sha256").update(assets.join("\n")).digest("hex").slice(0, 16);
  const template = await readFile(join(dirname(fileURLToPath(import.meta.url)), "sw.js"), "utf8");
  const release = `const RELEASE = ${JSON.stringify({ version, assets })};\n`;
  const code = release + template;
  await writeFile(join(dir, "sw.js"), small ? (await minify(code, { compress: { passes: 2 } })).code : code);
  console.log(`sw: release ${version}, ${assets.length} hashed files`);
}
