// Shortens the names the wasm imports from its JS glue, in both files. wasm-bindgen names
// each import `__wbg_<method>_<16 hex digits>` under the module "./<crate>_bg.js", and each
// name is written twice, in the wasm's import section and as a key of the glue's imports
// object. The hex digits differ for every import and do not compress: with ~170 imports
// the long names were ~4.6 KB of the page's brotli weight (BENCHMARKS.md, "Frontend
// weight"). The long exports the glue calls (closure shims named after their Rust types,
// class methods) get short names the same way. Both files are rewritten together, so the
// names still match; the sections are rebuilt, and any import the glue does not name by
// exactly its key fails the build, rather than a page that cannot instantiate. Run by
// compress.mjs on release builds, after minify.mjs.
//
// The wasm's exports the glue no longer names at all (the methods of the classes
// minify.mjs dropped as unused) are dropped too, and wasm-opt then removes the code only
// they reached.
//
// Like minify.mjs it replaces the files' Subresource Integrity hashes in index.html.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const sri = (bytes) => `sha384-${createHash("sha384").update(bytes).digest("base64")}`;

function readLeb(buf, pos) {
  let value = 0;
  let scale = 1;
  let byte;
  do {
    byte = buf[pos++];
    value += (byte & 0x7f) * scale;
    scale *= 128;
  } while (byte & 0x80);
  return [value, pos];
}

function leb(value) {
  const out = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value) byte |= 0x80;
    out.push(byte);
  } while (value);
  return Buffer.from(out);
}

function readName(buf, pos) {
  const [len, start] = readLeb(buf, pos);
  return [buf.toString("utf8", start, start + len), start + len];
}

function name(text) {
  const bytes = Buffer.from(text, "utf8");
  return Buffer.concat([leb(bytes.length), bytes]);
}

function skipLimits(buf, pos) {
  const flags = buf[pos++];
  [, pos] = readLeb(buf, pos);
  if (flags & 1) [, pos] = readLeb(buf, pos);
  return pos;
}

// One-byte value and reference types (numbers, v128, funcref, externref); anything longer
// (typed references) is not something wasm-bindgen imports, so it stops the build.
function skipValType(buf, pos) {
  const type = buf[pos];
  if (type === 0x63 || type === 0x64) throw new Error("short-imports: typed reference in an import");
  return pos + 1;
}

/**
 * The wasm with each import `(module, field)` renamed to `rename(module, field)` and each
 * export to `renameExport(name)`, or left out where that is null.
 */
export function renameImports(wasm, rename, renameExport = (name) => name) {
  if (wasm.readUInt32LE(0) !== 0x6d736100) throw new Error("short-imports: not a wasm module");
  const parts = [wasm.subarray(0, 8)];
  let pos = 8;
  while (pos < wasm.length) {
    const id = wasm[pos];
    const [size, start] = readLeb(wasm, pos + 1);
    const end = start + size;
    if (id === 7) {
      parts.push(renameExports(wasm.subarray(start, end), renameExport));
      pos = end;
      continue;
    }
    if (id !== 2) {
      parts.push(wasm.subarray(pos, end));
      pos = end;
      continue;
    }
    let p = start;
    let count;
    [count, p] = readLeb(wasm, p);
    const out = [leb(count)];
    for (let i = 0; i < count; i++) {
      let module, field;
      [module, p] = readName(wasm, p);
      [field, p] = readName(wasm, p);
      const desc = p;
      const kind = wasm[p++];
      if (kind === 0) [, p] = readLeb(wasm, p); // function: type index
      else if (kind === 1) p = skipLimits(wasm, skipValType(wasm, p)); // table
      else if (kind === 2) p = skipLimits(wasm, p); // memory
      else if (kind === 3) p = skipValType(wasm, p) + 1; // global: type, mutability
      else throw new Error(`short-imports: import kind ${kind}`);
      const [newModule, newField] = rename(module, field);
      out.push(name(newModule), name(newField), wasm.subarray(desc, p));
    }
    if (p !== end) throw new Error("short-imports: import section did not parse to its end");
    const payload = Buffer.concat(out);
    parts.push(Buffer.from([2]), leb(payload.length), payload);
    pos = end;
  }
  return Buffer.concat(parts);
}

// The export section (id 7) rebuilt with each name renamed (or dropped): name, kind, index.
function renameExports(payload, rename) {
  let [count, p] = readLeb(payload, 0);
  const out = [];
  for (let i = 0; i < count; i++) {
    let field;
    [field, p] = readName(payload, p);
    const desc = p;
    [, p] = readLeb(payload, p + 1);
    const renamed = rename(field);
    if (renamed !== null) out.push(name(renamed), payload.subarray(desc, p));
  }
  if (p !== payload.length) throw new Error("short-imports: export section did not parse to its end");
  const body = Buffer.concat([leb(out.length / 2), ...out]);
  return Buffer.concat([Buffer.from([7]), leb(body.length), body]);
}

// Short keys that are plain JS identifiers: a..z, A..Z, then two characters.
function shortKey(index) {
  const first = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  const rest = first + "0123456789";
  let key = first[index % first.length];
  for (let n = Math.floor(index / first.length); n > 0; n = Math.floor((n - 1) / rest.length)) {
    key += rest[(n - 1) % rest.length];
  }
  return key;
}

// wasm-opt (npm binaryen, as trunk's) removing what no export, start or table reaches;
// the features are frontend/index.html's, which the stripped wasm no longer lists.
function removeUnused(wasm) {
  const wasmOpt = fileURLToPath(new URL("./node_modules/.bin/wasm-opt", import.meta.url));
  const features = ["bulk-memory", "nontrapping-float-to-int", "sign-ext", "mutable-globals"]
    .concat(["reference-types", "multivalue"])
    .map((f) => `--enable-${f}`);
  const tmp = mkdtempSync(join(tmpdir(), "short-imports-"));
  try {
    const [input, output] = [join(tmp, "in.wasm"), join(tmp, "out.wasm")];
    writeFileSync(input, wasm);
    execFileSync(wasmOpt, [input, "-o", output, "--remove-unused-module-elements", ...features]);
    return readFileSync(output);
  } finally {
    rmSync(tmp, { recursive: true });
  }
}

const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

export async function shortenImports(dir) {
  const indexPath = join(dir, "index.html");
  let index = await readFile(indexPath, "utf8");
  const names = await readdir(dir);
  for (const wasmName of names.filter((f) => f.endsWith("_bg.wasm"))) {
    const glueName = wasmName.replace(/_bg\.wasm$/, ".js");
    if (!names.includes(glueName)) throw new Error(`short-imports: no ${glueName} for ${wasmName}`);
    const [wasmPath, gluePath] = [join(dir, wasmName), join(dir, glueName)];
    const [wasm, glueBytes] = [await readFile(wasmPath), await readFile(gluePath)];
    let glue = glueBytes.toString("utf8");

    // The glue's own module: the one whose quoted name keys its imports object.
    const modules = new Map();
    const fields = new Map();
    // An export is renamed only when the glue reaches it as a property (`.name`) every time
    // it names it, and only a long one (closure shims, class methods): short names such as
    // `memory` could be another object's property.
    const exports = new Map();
    const dropped = [];
    const renameExport = (field) => {
      const uses = glue.match(new RegExp(`(?<![\\w$])${escape(field)}(?![\\w$])`, "g"))?.length ?? 0;
      if (uses === 0) {
        dropped.push(field);
        return null;
      }
      const asProperty = glue.match(new RegExp(`\\.${escape(field)}(?![\\w$])`, "g"))?.length ?? 0;
      if (field.length <= 12 || uses === 0 || uses !== asProperty) return field;
      exports.set(field, `x${exports.size.toString(36)}`);
      return exports.get(field);
    };
    let renamed = renameImports(wasm, (module, field) => {
      if (!modules.has(module)) {
        const quoted = JSON.stringify(module);
        const found = glue.split(quoted).length - 1;
        if (found > 1) throw new Error(`short-imports: ${quoted} is in ${glueName} ${found} times`);
        modules.set(module, found === 1 ? `m${modules.size}` : null);
        if (found === 1) glue = glue.replace(quoted, JSON.stringify(modules.get(module)));
      }
      if (modules.get(module) === null) return [module, field];
      if (!fields.has(field)) fields.set(field, shortKey(fields.size));
      return [modules.get(module), fields.get(field)];
    }, renameExport);
    for (const [field, key] of exports) {
      glue = glue.replace(new RegExp(`\\.${escape(field)}(?![\\w$])`, "g"), `.${key}`);
    }
    for (const [field, key] of fields) {
      const pattern = new RegExp(`(?<![\\w$])${escape(field)}(?![\\w$])`, "g");
      const found = glue.match(pattern)?.length ?? 0;
      if (found !== 1) throw new Error(`short-imports: ${field} is in ${glueName} ${found} times`);
      glue = glue.replace(pattern, key);
    }
    if (dropped.length > 0) renamed = removeUnused(renamed);
    const newGlue = Buffer.from(glue, "utf8");
    for (const [path, before, after] of [
      [wasmPath, wasm, renamed],
      [gluePath, glueBytes, newGlue],
    ]) {
      const [was, now] = [sri(before), sri(after)];
      if (index.includes(was)) index = index.replaceAll(was, now);
      await writeFile(path, after);
    }
    console.log(
      `short-imports: ${fields.size} imports, ${exports.size} exports, ${dropped.length} dropped; ${wasmName}: ${wasm.length} -> ${renamed.length}, ` +
        `${glueName}: ${glueBytes.length} -> ${newGlue.length}`,
    );
  }
  await writeFile(indexPath, index);
}
