// Writes `<file>.br` and `<file>.gz` next to every compressible file trunk has staged, so
// chat-server sends them as they are (tower-http ServeDir, precompressed) instead of
// compressing per request, and at a level no server would spend per request: brotli at
// quality 11 takes about a second for the wasm, once per build. Run by trunk as a
// post_build hook (Trunk.toml) in $TRUNK_STAGING_DIR; node's zlib does both formats, so
// nothing else needs installing.
//
// Release builds first get their JS glue minified (minify.mjs) and the names the wasm
// imports from it and exports to it shortened in both (short-imports.mjs), and every build gets its
// inline loader moved into a file for the Content-Security-Policy (csp.mjs), its icons
// (icons.mjs) and its service worker (service-worker.mjs), so what is compressed is what
// is served. Debug builds (`trunk serve`) are several times larger and rebuilt on
// every save, so they get fast settings: the files exist either way, and only release
// sizes are measured.
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import zlib from "node:zlib";

import { externalizeScripts, recordApiOrigin } from "./csp.mjs";
import { writeIcons } from "./icons.mjs";
import { minifyGlue } from "./minify.mjs";
import { writeServiceWorker } from "./service-worker.mjs";
import { shortenImports } from "./short-imports.mjs";

const brotli = promisify(zlib.brotliCompress);
const gzip = promisify(zlib.gzip);

const dir = process.env.TRUNK_STAGING_DIR ?? process.argv[2];
if (!dir) {
  console.error("usage: TRUNK_STAGING_DIR=dist node compress.mjs (or pass the dir)");
  process.exit(2);
}
const release = (process.env.TRUNK_PROFILE ?? "release") === "release";
// Already-compressed formats (images, fonts) gain nothing.
const compressible = /\.(wasm|js|mjs|css|html|svg|json|webmanifest|txt|map|ico)$/;

async function* files(at) {
  for (const entry of await readdir(at, { withFileTypes: true })) {
    const path = join(at, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (compressible.test(entry.name)) yield path;
  }
}

async function compress(path) {
  const raw = await readFile(path);
  const text = !path.endsWith(".wasm");
  const [br, gz] = await Promise.all([
    brotli(raw, {
      params: {
        [zlib.constants.BROTLI_PARAM_QUALITY]: release ? 11 : 5,
        [zlib.constants.BROTLI_PARAM_MODE]: text
          ? zlib.constants.BROTLI_MODE_TEXT
          : zlib.constants.BROTLI_MODE_GENERIC,
        [zlib.constants.BROTLI_PARAM_SIZE_HINT]: raw.length,
      },
    }),
    gzip(raw, { level: release ? 9 : 6 }),
  ]);
  // A variant no smaller than the file would only cost the server a lookup.
  const written = [];
  for (const [ext, bytes] of [[".br", br], [".gz", gz]]) {
    if (bytes.length < raw.length) {
      await writeFile(path + ext, bytes);
      written.push(`${ext.slice(1)} ${bytes.length}`);
    }
  }
  return `${path.slice(dir.length + 1)}: ${raw.length} -> ${written.join(", ") || "kept as is"}`;
}

if (release) {
  await minifyGlue(dir);
  await shortenImports(dir);
}
await externalizeScripts(dir);
await recordApiOrigin(dir);
await writeIcons(dir);
// Last: it lists the final hashed files, the loader csp.mjs wrote included.
await writeServiceWorker(dir, { small: release });
const jobs = [];
for await (const path of files(dir)) jobs.push(compress(path));
for (const line of await Promise.all(jobs)) console.log(`compress: ${line}`);
