// Minifies wasm-bindgen's JS glue in a release build with terser, since trunk's own JS
// minifier cannot parse it (`export default`) and leaves it as it is: about half of it is
// JSDoc and long local names (~1.7 KB brotli). Called by compress.mjs before compressing.
//
// First it drops the classes nothing in the glue uses. wasm-bindgen writes a class for
// every `#[wasm_bindgen]` struct linked in, whether or not the wasm ever hands one to
// JS: here the stream adapters of both copies of wasm-streams (server_fn's, which the page
// never calls, and tonic-web-wasm-client's, which only reads streams). A class is only
// ever made by the glue itself (`__wrap`, when the wasm returns one) or by a script that
// imports it, and the page has no such script, so a class the rest of the glue never
// names is dead. short-imports.mjs then drops the wasm exports only they called.
//
// trunk has already written the glue's Subresource Integrity hash into index.html, and the
// browser refuses a module whose bytes do not match it, so the hash is replaced along with
// the file. The file keeps its name: trunk's hash in it still changes exactly when the
// glue does, which is all the cache needs.
import { createHash } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { minify } from "terser";

const sri = (bytes) => `sha384-${createHash("sha384").update(bytes).digest("base64")}`;

/** `glue` without the classes (and their finalizers) that nothing else in it names. */
export function dropUnusedClasses(glue) {
  for (const [, name] of glue.matchAll(/^(?:export )?class (\w+) \{$/gm)) {
    const rest = glue
      .replace(new RegExp(`^(?:export )?class ${name} \\{\\n[\\s\\S]*?^\\}\\n`, "m"), "")
      .replace(`if (Symbol.dispose) ${name}.prototype[Symbol.dispose] = ${name}.prototype.free;\n`, "")
      .replace(new RegExp(`^const ${name}Finalization = [^;]*;\\n`, "m"), "");
    if (!new RegExp(`(?<![\\w$])${name}(?:Finalization)?(?![\\w$])`).test(rest)) glue = rest;
  }
  return glue;
}

export async function minifyGlue(dir) {
  const indexPath = join(dir, "index.html");
  let index = await readFile(indexPath, "utf8");
  const glue = (await readdir(dir)).filter((f) => f.endsWith(".js"));
  for (const name of glue) {
    const path = join(dir, name);
    const raw = await readFile(path);
    const out = await minify(dropUnusedClasses(raw.toString("utf8")), {
      module: true,
      ecma: 2020,
      compress: { passes: 2 },
    });
    const min = Buffer.from(out.code, "utf8");
    const [before, after] = [sri(raw), sri(min)];
    // trunk omits the hash when asked to (data-integrity="none"); otherwise it must be
    // there, or the page would load a glue the browser rejects.
    if (index.includes(before)) index = index.replaceAll(before, after);
    else if (index.includes("sha384-")) throw new Error(`no integrity hash for ${name} in index.html`);
    await writeFile(path, min);
    console.log(`minify: ${name}: ${raw.length} -> ${min.length}`);
  }
  await writeFile(indexPath, index);
}
