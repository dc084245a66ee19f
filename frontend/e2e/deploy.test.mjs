// The chat deployed as the README walks an operator through it: nginx started from
// deploy/nginx.conf and deploy/nginx-static.conf (only ports and paths replaced) in front of
// a real chat-server, on a certificate made at test time with openssl, driven by headless
// Chromium and chat-cli (nginx.mjs starts nginx). Needs nginx and openssl (scripts/setup.sh
// installs them), the
// release page in dist/ and a second build for a static host of its own in
// target/dist-api-url (scripts/test.sh builds both). Everything runs on loopback; every
// process started here is stopped here and the temp dir removed.
//
// The names in the confs need no DNS: Chromium maps them (--host-resolver-rules)
//   api.example.com  -> nginx.conf's https port (the API: the second build's CHAT_API_URL)
//   chat.example.com -> nginx-static.conf's port (the page alone, no proxy)
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ChatCli, ChatServer, HEARTBEAT_MS, createRoom, Person, ROOT, TIMEOUT, freePort, launchBrowser, postMessages, sleep, until,
} from './harness.mjs';
import { DeployedNginx, request, subscribeStream, unitFlags } from './nginx.mjs';

const DIST = process.env.CHAT_DIST_DIR || path.join(ROOT, 'dist');
const DIST_API_URL = process.env.CHAT_DIST_API_URL_DIR || path.join(ROOT, 'target/dist-api-url');
// target/dist-api-url is built with CHAT_API_URL=https://api.example.com (scripts/setup.sh:
// build_frontend_api_url); chat-server lets the static host's origin call it.
const PAGE_ORIGIN = 'https://chat.example.com';

/** The same over plain http (chat-server itself), with the headers of interest. */
async function plainGet(url, headers = {}) {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
  await res.arrayBuffer();
  return { status: res.status, headers: Object.fromEntries(res.headers) };
}

/** The protocol the page's own document came over ('h2' for HTTP/2). */
const protocolOf = (page) => page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);

describe('deployed behind nginx', { timeout: 20 * TIMEOUT }, () => {
  let server;
  let nginx;
  let browser;
  let ca;
  let site; // https://127.0.0.1:PORT, deploy/nginx.conf
  let staticPort; // deploy/nginx-static.conf
  let readTimeoutMs;
  let quiet;
  const contexts = [];
  const people = [];

  const step = (name, opts, fn) =>
    it(name, { timeout: 6 * TIMEOUT, ...opts }, async () => {
      try {
        await fn();
      } catch (err) {
        console.error(`\n--- chat-server output ---\n${server?.log.text ?? '(not started)'}`);
        console.error(`--- nginx ---\n${nginx?.log.text ?? ''}${nginx?.logs() ?? ''}`);
        for (const p of people) console.error(`--- page console (${p.name}) ---\n${p.console.join('\n')}`);
        throw err;
      }
    });

  /** A browser profile (context) trusting nothing but not stopping at the test certificate. */
  const newContext = async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    context.setDefaultTimeout(TIMEOUT);
    contexts.push(context);
    return context;
  };

  /** A tab in `context` with `url` open, as a harness Person. */
  const openTab = async (context, url, name) => {
    const page = await context.newPage();
    const person = new Person(context, page);
    person.name = name;
    page.on('pageerror', (err) => person.console.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => person.console.push(`${msg.type()}: ${msg.text()}`));
    people.push(person);
    await page.goto(url);
    return person;
  };

  before(async () => {
    for (const [what, file] of [
      ['the built page (trunk build --release)', path.join(DIST, 'index.html')],
      ['the page built for its own origin (scripts/test.sh: build_frontend_api_url)', path.join(DIST_API_URL, 'index.html')],
    ]) {
      if (!existsSync(file)) throw new Error(`${what} missing: ${file}`);
    }
    // chat-server with deploy/chat-server.service's flags, but its own port, database and
    // page (the harness's), and the static host's origin allowed.
    server = new ChatServer(await freePort(), [...unitFlags(), '--allowed-origin', PAGE_ORIGIN]);
    await server.start();
    // One server (on SQLite): nginx.conf as the README's walkthrough installs it.
    nginx = new DeployedNginx({ serverPorts: [server.port], dist: DIST, staticDist: DIST_API_URL });
    await nginx.start();
    ({ ca, site, staticPort } = nginx);
    const httpsPort = nginx.httpsPort;
    readTimeoutMs = nginx.readTimeoutMs;
    assert.ok(readTimeoutMs > HEARTBEAT_MS && readTimeoutMs > 15_000, 'the read timeout must be above the default heartbeat');

    browser = await launchBrowser([
      `--host-resolver-rules=MAP api.example.com 127.0.0.1:${httpsPort},MAP chat.example.com 127.0.0.1:${staticPort}`,
    ]);
    // Opened first, checked last: a stream through nginx in a room where nothing is said.
    await createRoom(server.url, 'quiet-room');
    quiet = subscribeStream(site, 'quiet-room', ca);
  });

  after(async () => {
    quiet?.req.destroy();
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close().catch(() => {});
    await nginx?.stop();
    await server?.stop();
  });

  step('nginx serves the page with chat-server\'s cache rules and headers, gzip precompressed', {}, async () => {
    const index = await request(`${site}/`, { ca });
    // Named by the preload link (the loader that imports it is a file of its own).
    const wasm = /["'/]([\w.-]+-[0-9a-f]{8,16}_bg\.wasm)["'\s>]/.exec(index.body.toString('utf8'))?.[1];
    assert.ok(wasm, `no hashed wasm named in index.html:\n${index.body}`);
    // Every header chat-server sets on its files, compared with nginx's for the same paths.
    const compared = ['cache-control', 'content-security-policy', 'x-content-type-options', 'referrer-policy', 'x-frame-options'];
    for (const [file, reqHeaders] of [['/', {}], [`/${wasm}`, { 'accept-encoding': 'gzip' }], ['/some/room', {}], ['/favicon.ico', {}], ['/sw.js', {}]]) {
      const viaNginx = await request(`${site}${file}`, { ca, headers: reqHeaders });
      const direct = await plainGet(`${server.url}${file}`, reqHeaders);
      assert.equal(viaNginx.status, 200, file);
      for (const h of compared) assert.equal(viaNginx.headers[h], direct.headers[h], `${h} of ${file}`);
    }
    const gz = await request(`${site}/${wasm}`, { ca, headers: { 'accept-encoding': 'gzip, br' } });
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.equal(gz.headers['content-type'], 'application/wasm');
    assert.match(gz.headers.vary ?? '', /accept-encoding/i);
    assert.equal(gz.body.length, readFileSync(path.join(DIST, `${wasm}.gz`)).length, 'the .gz file as built');
    const missing = await request(`${site}/${wasm.replace(/-[0-9a-f]+_bg/, '-0123456789abcdef_bg')}`, { ca });
    assert.equal(missing.status, 404, 'a missing hashed asset is not index.html');
    const missingFile = await request(`${site}/apple-touch-icon.png`, { ca });
    assert.equal(missingFile.status, 404, 'a missing file is not index.html');
  });

  step('the page loads from nginx over https on HTTP/2 and chats', {}, async () => {
    const ann = await openTab(await newContext(), `${site}/`, 'ann');
    assert.equal(await protocolOf(ann.page), 'h2');
    await ann.join('ann');
    await ann.sendOk('hello through nginx');
    await ann.message('hello through nginx');
  });

  step('eight tabs of one browser profile are all live at once, each sending and receiving', {}, async () => {
    const context = await newContext();
    const tabs = [await openTab(context, `${site}/#octo`, 'octo-1')];
    await tabs[0].join('octo');
    // The others find the session in the profile's storage and go straight in.
    for (let i = 2; i <= 8; i += 1) tabs.push(await openTab(context, `${site}/#octo`, `octo-${i}`));
    for (const tab of tabs) {
      await tab.waitForState('live');
      assert.equal(await protocolOf(tab.page), 'h2', `${tab.name} is on HTTP/2`);
    }
    for (const [i, tab] of tabs.entries()) await tab.sendOk(`tab ${i + 1} of 8`);
    for (const tab of tabs) {
      for (let i = 1; i <= 8; i += 1) await tab.message(`tab ${i} of 8`);
      await tab.waitForState('live');
    }
  });

  step('chat-cli chats both ways through nginx\'s native gRPC over TLS', { skip: !ChatCli.available() && 'chat-cli not built' }, async () => {
    const ann = people.find((p) => p.name === 'ann');
    const caFile = nginx.caFile;
    const cli = new ChatCli('terminal', site, ['--ca-cert', caFile]);
    try {
      // The line arriving proves chat-cli joined and its stream is open, so it will hear ann.
      cli.say('hello from the terminal');
      const row = await ann.message('hello from the terminal');
      assert.equal(await row.locator('[data-testid=message-user]').textContent(), 'terminal');
      await ann.sendOk('hello back, terminal');
      await until('chat-cli to print the reply', async () => cli.out.text.includes('[ann]: hello back, terminal'));
    } finally {
      const code = await cli.close();
      assert.equal(code, 0, `chat-cli: ${cli.err.text}`);
    }
  });

  step('the page on a static host of its own origin calls the API across origins', {}, async () => {
    const carol = await openTab(await newContext(), `${PAGE_ORIGIN}/`, 'carol');
    assert.equal(await carol.page.evaluate(() => location.origin), PAGE_ORIGIN);
    await carol.join('carol');
    await carol.sendOk('from another origin');
    await people.find((p) => p.name === 'ann').message('from another origin');

    // The page's API, api.example.com, is nginx.conf's server (mapped above).
    const preflight = (origin) => request(`${site}/grpcchat.ChatService/Join`, {
      method: 'OPTIONS',
      ca,
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,x-grpc-web',
      },
    });
    assert.equal((await preflight(PAGE_ORIGIN)).headers['access-control-allow-origin'], PAGE_ORIGIN);
    const foreign = await preflight('https://elsewhere.example');
    assert.equal(foreign.headers['access-control-allow-origin'], undefined, JSON.stringify(foreign.headers));
  });

  step('a stream stays open through nginx across a quiet spell longer than its read timeout', {}, async () => {
    // Quiet in its room from the start: only heartbeats keep nginx from closing it.
    const quietUntil = quiet.opened + readTimeoutMs + 5000;
    while (Date.now() < quietUntil && !quiet.ended) await sleep(Math.min(1000, quietUntil - Date.now()));
    assert.equal(quiet.ended, null, 'the quiet stream was closed');
    assert.ok(quiet.frames >= 2, `a Welcome and heartbeats arrived (${quiet.frames} frames)`);
    await postMessages(server.url, 'pinger', 'quiet-room', ['still there?']);
    await until('the message on the long-quiet stream', async () => quiet.bytes.includes('still there?'));
    assert.equal(quiet.ended, null);
  });
});
