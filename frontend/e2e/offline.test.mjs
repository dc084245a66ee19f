// The page as an installed app: Chromium finds its manifest and icons installable, the
// service worker (frontend/sw.js) takes the page over, a second visit with the server gone
// still renders it from the cache, grpc-web calls never come from a cache, and a new
// release replaces the old one's cache. The release build in a copy of dist/, so the test
// can make a "new release" of it. Run after `cargo build` and `trunk build --release`.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { writeServiceWorker } from '../service-worker.mjs';
import { ChatServer, DIST, Person, TIMEOUT, freePort, launchBrowser, until } from './harness.mjs';

const HASHED = /-[0-9a-f]{8,16}(_bg)?\.[a-z]+$/;
const API = /\/grpcchat\.ChatService\//;

/** Every URL in the page's caches, by cache name. */
const cached = (page) =>
  page.evaluate(async () => {
    const all = {};
    for (const name of await caches.keys()) {
      all[name] = (await (await caches.open(name)).keys()).map((r) => new URL(r.url).pathname);
    }
    return all;
  });

describe('installable, and the page from the cache', { timeout: 10 * TIMEOUT }, () => {
  let dist;
  let server;
  let browser;
  let ivan;
  // Every response the page got, and whether the service worker answered it.
  const responses = [];

  before(async () => {
    dist = mkdtempSync(path.join(os.tmpdir(), 'chat-dist-sw-'));
    cpSync(DIST, dist, { recursive: true });
    server = new ChatServer(await freePort(), [], { dist });
    await server.start();
    browser = await launchBrowser();
  });

  after(async () => {
    await ivan?.context.close();
    await browser?.close();
    await server?.stop();
    if (dist) rmSync(dist, { recursive: true, force: true });
  });

  it('the manifest and icons make it installable, and /favicon.ico is an icon', async () => {
    ivan = await Person.open(browser, server.url);
    ivan.page.on('response', (r) => responses.push({ url: r.url(), sw: r.fromServiceWorker() }));
    await ivan.join('ivan');
    const cdp = await ivan.context.newCDPSession(ivan.page);
    const manifest = await cdp.send('Page.getAppManifest');
    assert.deepEqual(manifest.errors, [], 'manifest errors');
    assert.match(manifest.url, /\/manifest\.webmanifest$/);
    const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
    // Every playwright context is an incognito profile, where nothing installs; any other
    // reason is the page's.
    const reasons = installabilityErrors.map((e) => e.errorId).filter((id) => id !== 'in-incognito');
    assert.deepEqual(reasons, [], 'Chromium says it is not installable');

    for (const [file, type] of [['favicon.ico', 'image/x-icon'], ['icon-192.png', 'image/png'], ['icon-512.png', 'image/png']]) {
      const res = await fetch(`${server.url}/${file}`);
      assert.equal(res.status, 200, file);
      assert.equal(res.headers.get('content-type'), type, file);
    }
    // A file the build does not write is missing, not the page under its name.
    assert.equal((await fetch(`${server.url}/apple-touch-icon.png`)).status, 404);
  });

  it('the service worker takes the page over and caches the release, never the API', async () => {
    await until('the service worker to control the page', () =>
      ivan.page.evaluate(() => navigator.serviceWorker.controller !== null));
    const caches = await cached(ivan.page);
    const names = Object.keys(caches);
    assert.equal(names.length, 1, `one cache: ${names}`);
    const files = caches[names[0]];
    const built = readdirSync(dist).filter((f) => HASHED.test(f)).map((f) => `/${f}`);
    assert.deepEqual([...files].sort(), ['/', ...built].sort(), 'the page and exactly the hashed files');

    // The page keeps calling the API while the worker controls it: every call goes out.
    await ivan.sendOk('through the worker');
    const calls = responses.filter((r) => API.test(r.url));
    assert.ok(calls.length > 0, 'the page made grpc-web calls');
    assert.deepEqual(calls.filter((r) => r.sw), [], 'a grpc-web answer came from the service worker');
    assert.ok(Object.values(await cached(ivan.page)).flat().every((p) => !API.test(p)), 'an API call in the cache');
  });

  it('a second visit with the server gone still renders the page from the cache', async () => {
    responses.length = 0;
    await server.kill();
    await ivan.page.reload();
    // The session is in localStorage: the app mounts and tries to reconnect.
    await ivan.page.locator('[data-testid=me]', { hasText: 'ivan' }).waitFor();
    await ivan.page.locator('[data-testid=connection]:not([data-state=live])').waitFor();
    const assets = responses.filter((r) => HASHED.test(new URL(r.url).pathname));
    assert.ok(assets.length >= 3, `the page's files were fetched: ${JSON.stringify(responses)}`);
    assert.deepEqual(assets.filter((r) => !r.sw), [], 'every hashed file from the service worker');

    await server.start();
    await ivan.waitForState('live');
    const calls = responses.filter((r) => API.test(r.url));
    assert.ok(calls.length > 0 && calls.every((r) => !r.sw), 'API answers came from the server');
  });

  it('a new release replaces the old cache', async () => {
    const before = Object.keys(await cached(ivan.page));
    // A "new release": the stylesheet under a new hash, index.html pointing at it (its
    // precompressed copies dropped, so the server sends the new one) and a new sw.js.
    const css = readdirSync(dist).find((f) => /^style-[0-9a-f]+\.css$/.test(f));
    const renamed = css.replace(/-[0-9a-f]+\.css$/, '-0123456789abcdef.css');
    for (const ext of ['', '.br', '.gz']) renameSync(path.join(dist, css + ext), path.join(dist, renamed + ext));
    const index = path.join(dist, 'index.html');
    writeFileSync(index, readFileSync(index, 'utf8').replace(css, renamed));
    for (const ext of ['.br', '.gz']) rmSync(index + ext, { force: true });
    await writeServiceWorker(dist);
    for (const ext of ['.br', '.gz']) rmSync(path.join(dist, `sw.js${ext}`), { force: true });

    await ivan.page.reload();
    await ivan.page.evaluate(async () => (await navigator.serviceWorker.getRegistration()).update());
    await until('the new release to replace the old cache', async () => {
      const now = Object.keys(await cached(ivan.page));
      return now.length === 1 && now[0] !== before[0];
    });
    const [files] = Object.values(await cached(ivan.page));
    assert.ok(files.includes(`/${renamed}`), 'the new stylesheet is cached');
    assert.ok(!files.includes(`/${css}`), 'the old stylesheet is gone');
    // The page still works on the new release.
    await ivan.page.reload();
    await ivan.waitForState('live');
    assert.deepEqual(ivan.cspViolations, []);
  });
});
