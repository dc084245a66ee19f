// The chat deployed as the README walks an operator through it: nginx started from
// deploy/nginx.conf and deploy/nginx-static.conf (only ports and paths replaced) in front of
// a real chat-server, on a certificate made at test time with openssl, driven by headless
// Chromium and chat-cli. Needs nginx and openssl (scripts/setup.sh installs them), the
// release page in dist/ and a second build for a static host of its own in
// target/dist-api-url (scripts/test.sh builds both). Everything runs on loopback; every
// process started here is stopped here and the temp dir removed.
//
// The names in the confs need no DNS: Chromium maps them (--host-resolver-rules)
//   api.example.com  -> nginx.conf's https port (the API: the second build's CHAT_API_URL)
//   chat.example.com -> nginx-static.conf's port (the page alone, no proxy)
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ChatCli, ChatServer, HEARTBEAT_MS, Person, ROOT, TIMEOUT, freePort, launchBrowser, postMessages, sleep, until,
} from './harness.mjs';

const NGINX = process.env.NGINX_BIN || '/usr/sbin/nginx';
const DIST = process.env.CHAT_DIST_DIR || path.join(ROOT, 'dist');
const DIST_API_URL = process.env.CHAT_DIST_API_URL_DIR || path.join(ROOT, 'target/dist-api-url');
// target/dist-api-url is built with CHAT_API_URL=https://api.example.com (scripts/setup.sh:
// build_frontend_api_url); chat-server lets the static host's origin call it.
const PAGE_ORIGIN = 'https://chat.example.com';

/** Replaces each `[from, to]` in `text`, failing when `from` is not there (the file changed). */
function substitute(file, text, pairs) {
  for (const [from, to] of pairs) {
    if (!text.includes(from)) throw new Error(`${file} no longer contains ${JSON.stringify(from)}: update this test`);
    text = text.split(from).join(to);
  }
  return text;
}

/** deploy/chat-server.service's ExecStart flags, less those naming a port or a path. */
function unitFlags() {
  const unit = readFileSync(path.join(ROOT, 'deploy/chat-server.service'), 'utf8');
  const exec = /^ExecStart=((?:.*\\\n)*.*)$/m.exec(unit)[1].replace(/\\\n/g, ' ');
  const words = exec.split(/\s+/).filter(Boolean).slice(1);
  const flags = [];
  for (let i = 0; i < words.length; i += 1) {
    if (['--addr', '--db', '--static-dir'].includes(words[i])) i += 1;
    else flags.push(words[i]);
  }
  assert.ok(flags.includes('--trusted-proxy'), `the unit runs chat-server behind a proxy: ${exec}`);
  return flags;
}

/** One https request trusting the test certificate: {status, headers, body}. */
function request(url, { method = 'GET', headers = {}, body, ca }) {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, headers, ca, timeout: 10_000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url}`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** The same over plain http (chat-server itself), with the headers of interest. */
async function plainGet(url, headers = {}) {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
  await res.arrayBuffer();
  return { status: res.status, headers: Object.fromEntries(res.headers) };
}

/**
 * An anonymous grpc-web Subscribe to `room`, held open over https: counts the frames it
 * gets and keeps the bytes, and notes whether the stream ended.
 */
function subscribeStream(baseUrl, room, ca) {
  const roomBytes = Buffer.from(room, 'utf8');
  // SubscribeRequest { room = 1 }.
  const msg = Buffer.concat([Buffer.from([0x0a, roomBytes.length]), roomBytes]);
  const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, msg.length]), msg]);
  const stream = { frames: 0, bytes: Buffer.alloc(0), ended: null, opened: Date.now() };
  stream.req = https.request(`${baseUrl}/grpcchat.ChatService/Subscribe`, {
    method: 'POST',
    ca,
    headers: { 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' },
  }, (res) => {
    let pending = Buffer.alloc(0);
    res.on('data', (chunk) => {
      stream.bytes = Buffer.concat([stream.bytes, chunk]);
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
        stream.frames += 1;
        pending = pending.subarray(5 + pending.readUInt32BE(1));
      }
    });
    res.on('end', () => { stream.ended ??= `ended after ${Date.now() - stream.opened} ms`; });
    res.on('error', (err) => { stream.ended ??= `${err.message} after ${Date.now() - stream.opened} ms`; });
  });
  stream.req.on('error', (err) => { stream.ended ??= `${err.message} after ${Date.now() - stream.opened} ms`; });
  stream.req.end(frame);
  return stream;
}

/** The protocol the page's own document came over ('h2' for HTTP/2). */
const protocolOf = (page) => page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);

describe('deployed behind nginx', { timeout: 20 * TIMEOUT }, () => {
  let tmp;
  let server;
  let nginx;
  let nginxLog = { text: '' };
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
        console.error(`--- nginx ---\n${nginxLog.text}`);
        for (const f of ['error.log', 'access.log']) {
          const file = tmp && path.join(tmp, f);
          if (file && existsSync(file)) console.error(`--- nginx ${f} ---\n${readFileSync(file, 'utf8').slice(-20_000)}`);
        }
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
      ['nginx (bash scripts/setup.sh installs it: deploy_tools)', NGINX],
      ['the built page (trunk build --release)', path.join(DIST, 'index.html')],
      ['the page built for its own origin (scripts/test.sh: build_frontend_api_url)', path.join(DIST_API_URL, 'index.html')],
    ]) {
      if (!existsSync(file)) throw new Error(`${what} missing: ${file}`);
    }
    tmp = mkdtempSync(path.join(os.tmpdir(), 'chat-deploy-'));

    // The certificate, exactly as the README's walkthrough makes one.
    const cert = path.join(tmp, 'fullchain.pem');
    const key = path.join(tmp, 'privkey.pem');
    const openssl = spawnSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '30',
      '-keyout', key, '-out', cert, '-subj', '/CN=chat.example.com',
      '-addext', 'subjectAltName=DNS:chat.example.com,DNS:api.example.com,DNS:localhost,IP:127.0.0.1',
      // A server's certificate, not an authority's (clients refuse a CA as a server).
      '-addext', 'basicConstraints=critical,CA:FALSE',
    ], { encoding: 'utf8' });
    if (openssl.status !== 0) throw new Error(`openssl failed (${openssl.error ?? openssl.status}): ${openssl.stderr}`);
    ca = readFileSync(cert);

    // chat-server with deploy/chat-server.service's flags, but its own port, database and
    // page (the harness's), and the static host's origin allowed.
    let serverPort;
    let httpsPort;
    let httpPort;
    [serverPort, httpsPort, httpPort, staticPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    server = new ChatServer(serverPort, [...unitFlags(), '--allowed-origin', PAGE_ORIGIN]);
    await server.start();

    const certPaths = ['/etc/ssl/chat/', `${tmp}/`];
    const siteFile = path.join(ROOT, 'deploy/nginx.conf');
    const siteConf = readFileSync(siteFile, 'utf8');
    writeFileSync(path.join(tmp, 'chat.conf'), substitute(siteFile, siteConf, [
      ['listen 443 ssl http2;', `listen 127.0.0.1:${httpsPort} ssl http2;`],
      ['listen 80;', `listen 127.0.0.1:${httpPort};`],
      ['server 127.0.0.1:8080;', `server 127.0.0.1:${serverPort};`], // both upstream blocks
      ['root /var/www/chat;', `root ${DIST};`],
      certPaths,
    ]));
    const staticFile = path.join(ROOT, 'deploy/nginx-static.conf');
    writeFileSync(path.join(tmp, 'chat-static.conf'), substitute(staticFile, readFileSync(staticFile, 'utf8'), [
      ['listen 443 ssl http2;', `listen 127.0.0.1:${staticPort} ssl http2;`],
      ['root /var/www/chat-static;', `root ${DIST_API_URL};`],
      certPaths,
    ]));
    readTimeoutMs = 1000 * Number(/proxy_read_timeout (\d+)s;/.exec(siteConf)[1]);
    assert.ok(readTimeoutMs > HEARTBEAT_MS && readTimeoutMs > 15_000, 'the read timeout must be above the default heartbeat');

    // What Debian's /etc/nginx/nginx.conf gives the site, with every file in the temp dir.
    for (const dir of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(path.join(tmp, dir));
    writeFileSync(path.join(tmp, 'nginx.conf'), `
${process.getuid?.() === 0 ? 'user root;' : ''}
daemon off;
worker_processes 1;
pid ${tmp}/nginx.pid;
error_log ${tmp}/error.log info;
events { worker_connections 512; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  sendfile on;
  gzip on;
  access_log ${tmp}/access.log;
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;
  include ${tmp}/chat.conf;
  include ${tmp}/chat-static.conf;
}
`);
    nginx = spawn(NGINX, ['-p', tmp, '-e', path.join(tmp, 'error.log'), '-c', path.join(tmp, 'nginx.conf')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    for (const s of [nginx.stdout, nginx.stderr]) s.on('data', (c) => { nginxLog.text += c; });
    nginx.exited = new Promise((resolve) => nginx.once('exit', resolve));
    site = `https://127.0.0.1:${httpsPort}`;
    await until(`nginx on ${site}`, async () => {
      if (nginx.exitCode !== null) throw new Error(`nginx exited with ${nginx.exitCode}: ${nginxLog.text}`);
      return (await request(`${site}/`, { ca })).status === 200;
    }).catch((err) => {
      if (nginx.exitCode !== null) throw new Error(`nginx exited with ${nginx.exitCode}: ${nginxLog.text}`);
      throw err;
    });

    browser = await launchBrowser([
      `--host-resolver-rules=MAP api.example.com 127.0.0.1:${httpsPort},MAP chat.example.com 127.0.0.1:${staticPort}`,
    ]);
    // Opened first, checked last: a stream through nginx in a room where nothing is said.
    quiet = subscribeStream(site, 'quiet-room', ca);
  });

  after(async () => {
    quiet?.req.destroy();
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close().catch(() => {});
    if (nginx && nginx.exitCode === null && nginx.signalCode === null) {
      nginx.kill('SIGTERM');
      const done = await Promise.race([nginx.exited.then(() => true), sleep(5000).then(() => false)]);
      if (!done) {
        nginx.kill('SIGKILL');
        await nginx.exited;
      }
    }
    await server?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  step('nginx serves the page with chat-server\'s cache rules and headers, gzip precompressed', {}, async () => {
    const index = await request(`${site}/`, { ca });
    const wasm = /["'/]([\w.-]+-[0-9a-f]{8,16}_bg\.wasm)["']/.exec(index.body.toString('utf8'))?.[1];
    assert.ok(wasm, `no hashed wasm named in index.html:\n${index.body}`);
    // Every header chat-server sets on its files, compared with nginx's for the same paths.
    const compared = ['cache-control', 'content-security-policy', 'x-content-type-options', 'referrer-policy', 'x-frame-options'];
    for (const [file, reqHeaders] of [['/', {}], [`/${wasm}`, { 'accept-encoding': 'gzip' }], ['/some/room', {}]]) {
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
    const caFile = path.join(tmp, 'fullchain.pem');
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
