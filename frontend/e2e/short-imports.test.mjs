// frontend/short-imports.mjs on a small hand-made module: the glue's imports are renamed
// in the wasm and in the glue alike, as are the long exports the glue reaches as
// properties, other modules' imports and short exports are left alone, index.html's
// integrity hashes follow the files, and a glue that names an import twice stops the build.
// An export the glue never names is dropped with the code only it reached, as are the glue's
// classes nothing else in it names (minify.mjs).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';

import { dropUnusedClasses } from '../minify.mjs';
import { renameImports, shortenImports } from '../short-imports.mjs';

const GLUE_MODULE = './app_bg.js';
const LONG = '__wbg_log_0123456789abcdef';
const LONG_EXPORT = 'closure_invoke_shim_1';

const text = (s) => [s.length, ...Buffer.from(s)];
const section = (id, bytes) => [id, bytes.length, ...bytes];
/**
 * A module importing `LONG` (a function) from the glue and a memory from "env", exporting a
 * function as `LONG_EXPORT` and the memory as "mem".
 */
function wasm() {
  return Buffer.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 0, 0]),
    ...section(2, [2, ...text(GLUE_MODULE), ...text(LONG), 0, 0, ...text('env'), ...text('mem'), 2, 0, 1]),
    ...section(3, [1, 0]),
    ...section(7, [2, ...text(LONG_EXPORT), 0, 1, ...text('mem'), 2, 0]),
    ...section(10, [1, 2, 0, 0x0b]),
  ]);
}
const imports = (bytes) => WebAssembly.Module.imports(new WebAssembly.Module(bytes));
const exports = (bytes) => WebAssembly.Module.exports(new WebAssembly.Module(bytes)).map((e) => e.name);
const sri = (bytes) => `sha384-${createHash('sha384').update(bytes).digest('base64')}`;

describe('short-imports', () => {
  it('renames imports and exports and leaves a valid module', () => {
    const out = renameImports(
      wasm(),
      (module, field) => (module === GLUE_MODULE ? ['m0', 'a'] : [module, field]),
      (name) => (name === LONG_EXPORT ? 'x0' : name),
    );
    assert.deepEqual(imports(out), [
      { module: 'm0', name: 'a', kind: 'function' },
      { module: 'env', name: 'mem', kind: 'memory' },
    ]);
    assert.deepEqual(exports(out), ['x0', 'mem']);
  });

  it('renames the glue and the wasm together and updates index.html', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'short-imports-'));
    try {
      const glue = Buffer.from(`const i={"${GLUE_MODULE}":{${LONG}:function(){}}};V.${LONG_EXPORT}();V.mem;`);
      const index = `<link href=/app.js integrity=${sri(glue)}><link href=/app_bg.wasm integrity=${sri(wasm())}>`;
      await writeFile(path.join(dir, 'app.js'), glue);
      await writeFile(path.join(dir, 'app_bg.wasm'), wasm());
      await writeFile(path.join(dir, 'index.html'), index);
      await shortenImports(dir);
      const [newGlue, newWasm, newIndex] = await Promise.all(
        ['app.js', 'app_bg.wasm', 'index.html'].map((f) => readFile(path.join(dir, f))),
      );
      assert.equal(newGlue.toString(), 'const i={"m0":{a:function(){}}};V.x0();V.mem;');
      assert.deepEqual(imports(newWasm).map((i) => `${i.module}.${i.name}`), ['m0.a', 'env.mem']);
      assert.deepEqual(exports(newWasm), ['x0', 'mem']);
      assert.equal(
        newIndex.toString(),
        `<link href=/app.js integrity=${sri(newGlue)}><link href=/app_bg.wasm integrity=${sri(newWasm)}>`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('drops the exports the glue never names, and the code only they reach', async () => {
    // wasm() plus a second function, exported as "unused_method", that holds the constant
    // 0x12345 (LEB128 c5 c6 04) so its body can be found in the bytes.
    const body = [0x41, 0xc5, 0xc6, 0x04, 0x1a, 0x0b];
    const full = Buffer.from([
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      ...section(1, [1, 0x60, 0, 0]),
      ...section(2, [2, ...text(GLUE_MODULE), ...text(LONG), 0, 0, ...text('env'), ...text('mem'), 2, 0, 1]),
      ...section(3, [2, 0, 0]),
      ...section(7, [3, ...text(LONG_EXPORT), 0, 1, ...text('mem'), 2, 0, ...text('unused_method'), 0, 2]),
      ...section(10, [2, 2, 0, 0x0b, body.length + 1, 0, ...body]),
    ]);
    const constant = Buffer.from(body.slice(0, 4));
    assert.ok(full.includes(constant));
    const dir = await mkdtemp(path.join(tmpdir(), 'short-imports-'));
    try {
      await writeFile(path.join(dir, 'app.js'), `const i={"${GLUE_MODULE}":{${LONG}:function(){}}};V.${LONG_EXPORT}();V.mem;`);
      await writeFile(path.join(dir, 'app_bg.wasm'), full);
      await writeFile(path.join(dir, 'index.html'), '');
      await shortenImports(dir);
      const newWasm = await readFile(path.join(dir, 'app_bg.wasm'));
      assert.deepEqual(exports(newWasm).sort(), ['mem', 'x0']);
      assert.ok(!newWasm.includes(constant), 'the dropped export\'s code is gone');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('drops the glue classes nothing else names, and keeps one the glue makes', () => {
    const cls = (name, exported) =>
      `${exported ? 'export ' : ''}class ${name} {\n    static __wrap(ptr) {\n        ${name}Finalization.register(ptr);\n    }\n}\n` +
      `if (Symbol.dispose) ${name}.prototype[Symbol.dispose] = ${name}.prototype.free;\n`;
    const fin = (name) => `const ${name}Finalization = (typeof FinalizationRegistry === 'undefined')\n    ? {}\n    : new FinalizationRegistry(ptr => wasm.free_${name}(ptr, 1));\n`;
    const glue =
      cls('Unused', true) + cls('Unused2', false) + cls('Made', true) + fin('Unused') + fin('Unused2') + fin('Made') +
      'function __wbg_make(ptr) { return Made.__wrap(ptr); }\n';
    const out = dropUnusedClasses(glue);
    assert.ok(!/Unused/.test(out), out);
    assert.equal(out, cls('Made', true) + fin('Made') + 'function __wbg_make(ptr) { return Made.__wrap(ptr); }\n');
  });

  it('refuses a glue that names an import more than once', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'short-imports-'));
    try {
      await writeFile(path.join(dir, 'app.js'), `const i={"${GLUE_MODULE}":{${LONG}:function(){}}};i.${LONG};`);
      await writeFile(path.join(dir, 'app_bg.wasm'), wasm());
      await writeFile(path.join(dir, 'index.html'), '');
      await assert.rejects(shortenImports(dir), /is in app\.js 2 times/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
