// Shared pieces of the browser end-to-end test: a real chat-server on a free loopback
// port with its own SQLite file (restartable on the same port and file, to simulate a
// crash), chat-cli as a native client, a bare grpc-web poster for bulk messages, and
// headless Chromium through playwright-core. Everything started here is stopped here.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SERVER_BIN = process.env.CHAT_SERVER_BIN || path.join(ROOT, 'target/debug/chat-server');
const CLI_BIN = process.env.CHAT_CLI_BIN || path.join(ROOT, 'target/debug/chat-cli');
export const DIST = process.env.CHAT_DIST_DIR || path.join(ROOT, 'dist');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

// The server's heartbeat in these tests: short, so a dead stream is noticed in seconds.
export const HEARTBEAT_MS = 1000;

// CI runs on two slow cores: generous, but every wait has an end.
export const TIMEOUT = Number(process.env.E2E_TIMEOUT_MS || 30_000);

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** axe-core's serious and critical findings on `p`'s page as it is now. */
async function axeFindings(p) {
  if (!(await p.page.evaluate(() => 'axe' in window))) await p.page.addScriptTag({ content: AXE_SOURCE });
  return p.page.evaluate(async () => {
    const { violations } = await window.axe.run(document, { resultTypes: ['violations'] });
    return violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary}`).join('; ')}`);
  });
}

/** axe on what is on `p`'s screen, in the light and the dark scheme: no serious or critical finding. */
export async function assertAccessible(p, screen) {
  for (const colorScheme of ['light', 'dark']) {
    await p.page.emulateMedia({ colorScheme });
    await sleep(100); // transitions, if any, settle
    assert.deepEqual(await axeFindings(p), [], `${screen}, ${colorScheme}`);
  }
  await p.page.emulateMedia({ colorScheme: 'light' });
}

/**
 * A test step (`it`, with a generous timeout) whose failure report carries what the server
 * and the pages said: `said()` gives {server, people} as they are when the step fails.
 */
export function reportingStep(said) {
  return (name, opts, fn) =>
    it(name, { timeout: 6 * TIMEOUT, ...opts }, async () => {
      try {
        await fn();
      } catch (err) {
        const { server, people } = said();
        console.error(`\n--- chat-server output ---\n${server?.log.text ?? '(not started)'}`);
        for (const p of people) console.error(`--- page console (${p.name}) ---\n${p.console.join('\n')}`);
        throw err;
      }
    });
}

/** Polls `check` until it returns a truthy value or `ms` pass. */
export async function until(what, check, ms = TIMEOUT) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** Keeps the tail of a child's output for failure reports. */
function capture(stream, sink) {
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    sink.text += chunk;
    if (sink.text.length > 200_000) sink.text = sink.text.slice(-100_000);
  });
}

/**
 * chat-server serving dist/ on a fixed port, so a restart keeps the pages' URL, and storing
 * into its own temporary database, kept across restarts (that is what durability means).
 */
export class ChatServer {
  /**
   * `extraArgs` go to chat-server after the harness's own flags; `dist` is the page it
   * serves. `ca`: the certificate (PEM) of a server given `--tls-cert` in `extraArgs`,
   * which the readiness check then trusts. `db` is its `--db` when not a SQLite file of
   * its own (a PostgreSQL URL shared with other servers).
   */
  constructor(port, extraArgs = [], { dist = DIST, ca, db } = {}) {
    this.port = port;
    this.extraArgs = extraArgs;
    this.dist = dist;
    this.ca = ca;
    this.url = `${ca ? 'https' : 'http'}://127.0.0.1:${port}`;
    this.log = { text: '' };
    this.child = null;
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'chat-e2e-'));
    this.db = db ?? path.join(this.dir, 'chat.db');
  }

  async start() {
    for (const [what, file] of [['chat-server binary', SERVER_BIN], ['built frontend', path.join(this.dist, 'index.html')]]) {
      if (!existsSync(file)) throw new Error(`${what} missing: ${file} (run cargo build and trunk build --release first)`);
    }
    this.log.text += `\n--- starting ${SERVER_BIN} on port ${this.port} ---\n`;
    // Every page here comes from 127.0.0.1 and the test signs in more people a minute than
    // one address may (the Rust tests cover that limit): it is lifted. Password guessing
    // still backs off, as the page must show.
    const args = [
      '--addr', `127.0.0.1:${this.port}`, '--static-dir', this.dist, '--heartbeat-ms', `${HEARTBEAT_MS}`, '--db', this.db,
      '--max-sign-ins-per-min', '0',
      ...this.extraArgs,
    ];
    const child = spawn(SERVER_BIN, args, {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    capture(child.stdout, this.log);
    capture(child.stderr, this.log);
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    this.exited = exited;
    // Ready when it serves the page (static files and API share the port).
    await until(`chat-server on ${this.url}`, async () => {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`chat-server exited early (${child.exitCode ?? child.signalCode})`);
      }
      if (this.ca) return (await httpsStatus(`${this.url}/`, this.ca)) === 200;
      const res = await fetch(`${this.url}/`, { signal: AbortSignal.timeout(2000) });
      return res.ok;
    }).catch((err) => {
      if (child.exitCode !== null) throw new Error(`chat-server exited with ${child.exitCode}:\n${this.log.text}`);
      throw err;
    });
  }

  /** Like a crash: no graceful shutdown; sessions are lost, stored messages are not. */
  async kill() {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  /** The end of the test: stops the server and deletes its database. */
  async stop() {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const done = await Promise.race([this.exited.then(() => true), sleep(5000).then(() => false)]);
      if (!done) await this.kill();
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const GRPC_WEB_HEADERS = { 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' };

/** The status of a GET over https trusting only `ca` (node's fetch cannot be given one). */
function httpsStatus(url, ca) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

/** Protobuf for a message of string fields only: field number -> value. */
function encodeStrings(fields) {
  const parts = [];
  for (const [num, value] of Object.entries(fields)) {
    const bytes = Buffer.from(value, 'utf8');
    let len = bytes.length;
    const varint = [];
    do {
      varint.push((len & 0x7f) | (len > 0x7f ? 0x80 : 0));
      len >>>= 7;
    } while (len > 0);
    parts.push(Buffer.from([(Number(num) << 3) | 2, ...varint]), bytes);
  }
  return Buffer.concat(parts);
}

/** The grpc-status of a grpc-web response: a header when trailers-only, else the trailer frame. */
async function grpcWebStatus(res) {
  if (res.headers.has('grpc-status')) {
    return { code: Number(res.headers.get('grpc-status')), message: decodeURIComponent(res.headers.get('grpc-message') ?? '') };
  }
  const body = Buffer.from(await res.arrayBuffer());
  for (let at = 0; at + 5 <= body.length;) {
    const len = body.readUInt32BE(at + 1);
    if (body[at] & 0x80) {
      const trailers = body.subarray(at + 5, at + 5 + len).toString('utf8');
      const code = /grpc-status:\s*(\d+)/i.exec(trailers);
      const message = /grpc-message:\s*(.*)/i.exec(trailers);
      return { code: code ? Number(code[1]) : 2, message: decodeURIComponent(message?.[1]?.trim() ?? '') };
    }
    at += 5 + len;
  }
  return { code: 2, message: 'no grpc-status in the response' };
}

/**
 * One grpc-web unary call from node (what a browser sends, without a browser): `fields`
 * are the request's string fields by number, `token` goes in as `authorization: Bearer`.
 * Returns the grpc-status as {code, message}.
 */
export async function grpcWebCall(serverUrl, method, fields = {}, token = undefined) {
  const headers = token ? { ...GRPC_WEB_HEADERS, authorization: `Bearer ${token}` } : GRPC_WEB_HEADERS;
  const res = await fetch(`${serverUrl}/grpcchat.ChatService/${method}`, {
    method: 'POST',
    headers,
    body: frame(fields),
    signal: AbortSignal.timeout(10_000),
  });
  return grpcWebStatus(res);
}

/** A grpc-web data frame holding a message of string fields. */
function frame(fields) {
  const message = encodeStrings(fields);
  const out = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), message]);
  out.writeUInt32BE(message.length, 1);
  return out;
}

/**
 * A new session's token from Join ({1: name}), Register or SignIn ({1: name, 2: password}):
 * JoinResponse.token is field 1, the first field of the first data frame (hex, < 128 bytes).
 */
export async function sessionToken(serverUrl, method, fields) {
  const res = await fetch(`${serverUrl}/grpcchat.ChatService/${method}`, {
    method: 'POST', headers: GRPC_WEB_HEADERS, body: frame(fields), signal: AbortSignal.timeout(10_000),
  });
  const body = Buffer.from(await res.arrayBuffer());
  if (body.length < 7 || body[0] !== 0 || body[5] !== 0x0a) throw new Error(`${method} ${fields[1]} failed: ${body}`);
  return body.subarray(7, 7 + body[6]).toString('utf8');
}

let roomMakers = 0;

/**
 * Makes `room` exist. Only signed-in people create rooms, so a throwaway guest opens it
 * (a Subscribe, dropped once its first bytes arrive: the room exists before the server
 * answers) and leaves; no message is posted.
 */
export async function createRoom(serverUrl, room) {
  const name = `maker${process.pid}x${roomMakers++}`;
  const token = await sessionToken(serverUrl, 'Join', { 1: name });
  const opened = new AbortController();
  const res = await fetch(`${serverUrl}/grpcchat.ChatService/Subscribe`, {
    method: 'POST',
    headers: { ...GRPC_WEB_HEADERS, authorization: `Bearer ${token}` },
    body: frame({ 1: room }),
    signal: opened.signal,
  });
  const status = res.headers.get('grpc-status');
  if (status !== null && status !== '0') {
    throw new Error(`creating room ${room}: ${status} ${decodeURIComponent(res.headers.get('grpc-message') ?? '')}`);
  }
  await res.body.getReader().read();
  opened.abort();
  const left = await grpcWebCall(serverUrl, 'Leave', {}, token);
  if (left.code !== 0) throw new Error(`Leave ${name}: ${left.code} ${left.message}`);
}

/**
 * Posts `texts` to `room` with token-less SendMessage calls: fast setup for big histories.
 * The room must exist (see `createRoom`).
 * Waits and retries when the server's rate limit says so (RESOURCE_EXHAUSTED).
 */
export async function postMessages(serverUrl, username, room, texts) {
  for (const [i, text] of texts.entries()) {
    // A handful of names, each with its own rate-limit bucket, keeps bulk setup quick.
    const from = texts.length > 10 ? `${username}${i % 8}` : username;
    for (let tries = 0; ; tries += 1) {
      const status = await grpcWebCall(serverUrl, 'SendMessage', { 1: from, 2: text, 3: room });
      if (status.code === 0) break;
      if (status.code !== 8 || tries > 50) {
        throw new Error(`SendMessage ${JSON.stringify(text)} failed: ${status.code} ${status.message}`);
      }
      await sleep(250); // RESOURCE_EXHAUSTED: the rate limit refills
    }
  }
}

/** chat-cli with stdin piped in and stdout collected. */
export class ChatCli {
  /** `extraArgs` go to chat-cli after --name and --server (e.g. --ca-cert FILE). */
  constructor(name, serverUrl, extraArgs = []) {
    this.out = { text: '' };
    this.err = { text: '' };
    this.child = spawn(CLI_BIN, ['--name', name, '--server', serverUrl, ...extraArgs], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    capture(this.child.stdout, this.out);
    capture(this.child.stderr, this.err);
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  static available() {
    return existsSync(CLI_BIN);
  }

  say(line) {
    this.child.stdin.write(`${line}\n`);
  }

  /** Ends stdin (chat-cli then waits for its echoes and exits); kills it if it lingers. */
  async close() {
    if (this.child.exitCode !== null) return this.child.exitCode;
    this.child.stdin.end();
    const code = await Promise.race([this.exited, sleep(15_000).then(() => 'timeout')]);
    if (code === 'timeout') {
      this.child.kill('SIGKILL');
      await this.exited;
    }
    return code;
  }
}

/**
 * A TCP relay in front of the server that can freeze: bytes stop flowing both ways but no
 * connection closes, like a Wi-Fi that drops without telling anyone. Only a missing
 * heartbeat can reveal that. It can also lose answers: requests still reach the server,
 * but a connection is cut as soon as the server starts to answer, so the client never
 * learns whether what it sent was done (the case idempotent sends are for).
 */
export class FreezingProxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.frozen = false;
    this.losingAnswers = false;
    this.sockets = new Set();
  }

  async start() {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, '127.0.0.1');
      for (const [from, to] of [[client, upstream], [upstream, client]]) {
        this.sockets.add(from);
        from.on('data', (chunk) => {
          if (from === upstream && this.losingAnswers) {
            client.destroy();
            upstream.destroy();
          } else {
            to.write(chunk);
          }
        });
        from.on('error', () => to.destroy());
        from.on('close', () => { this.sockets.delete(from); to.destroy(); });
        if (this.frozen) from.pause();
      }
    });
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${this.server.address().port}`;
  }

  freeze() {
    this.frozen = true;
    for (const s of this.sockets) s.pause();
  }

  thaw() {
    this.frozen = false;
    for (const s of this.sockets) s.resume();
  }

  /** While on, every answer from the server is lost (its connection cut) on the way. */
  loseAnswers(on) {
    this.losingAnswers = on;
  }

  async stop() {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server?.close(resolve) ?? resolve());
  }
}

/** Headless Chromium; `extraArgs` are more command-line switches. */
export async function launchBrowser(extraArgs = []) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: TIMEOUT * 2,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...extraArgs,
    ],
  });
}

/**
 * A suite's `before`: a chat-server on a free port and a browser. What started is stopped
 * again if the rest fails, since the suite's `after` never sees it.
 */
export async function startServerAndBrowser() {
  const server = new ChatServer(await freePort());
  try {
    await server.start();
    return { server, browser: await launchBrowser() };
  } catch (e) {
    await server.stop();
    throw e;
  }
}

/** A suite's `after`: closes its people's pages, then the browser, then the server. */
export async function stopAll({ people = [], browser, server }) {
  for (const p of people) await p.close();
  await browser?.close().catch(() => {});
  await server?.stop();
}

/**
 * An init script (`context.addInitScript`): the page records every Notification it makes
 * (`window.notes`) and every permission it asks for (`window.permissionAsks`).
 */
export function recordNotifications() {
  window.notes = [];
  window.permissionAsks = 0;
  const Real = window.Notification;
  window.Notification = class extends Real {
    constructor(title, options) {
      super(title, options);
      window.notes.push(this);
    }

    static requestPermission(...args) {
      window.permissionAsks += 1;
      return Real.requestPermission(...args);
    }
  };
}

/** The notifications `person`'s page made (recordNotifications), as { title, body }. */
export function notifications(person) {
  return person.page.evaluate(() => window.notes.map((n) => ({ title: n.title, body: n.body })));
}

/**
 * Hides or shows `person`'s tab as the browser would tell the page. Headless Chromium keeps
 * every page visible whatever is in front, so `hidden` and `visibilityState` are set and a
 * visibilitychange event fires.
 */
export function setHidden(person, hidden) {
  return person.page.evaluate((hidden) => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
    Object.defineProperty(document, 'visibilityState', {
      configurable: true, get: () => (hidden ? 'hidden' : 'visible'),
    });
    document.dispatchEvent(new Event('visibilitychange', { bubbles: true }));
  }, hidden);
}

/** A Content-Security-Policy violation, as the page's listener or Chromium reports it. */
const CSP_VIOLATION = /^error: (csp violation|.*Content Security Policy)/;

/**
 * One person: a fresh browser context (own localStorage) with the page open. `options` go
 * to the context (viewport, colorScheme, bypassCSP for the accessibility checker, ...).
 */
export class Person {
  static async open(browser, url, options = {}) {
    const context = await browser.newContext(options);
    context.setDefaultTimeout(TIMEOUT);
    // Before any of the page's scripts: every CSP violation the page meets is logged.
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        console.error(`csp violation: ${e.effectiveDirective} refused ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`);
      });
    });
    const page = await context.newPage();
    const person = new Person(context, page);
    page.on('dialog', (dialog) => {
      person.dialogs.push(dialog.message());
      dialog.dismiss().catch(() => {});
    });
    page.on('pageerror', (err) => person.console.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => {
      const line = `${msg.type()}: ${msg.text()}`;
      person.console.push(line);
      if (CSP_VIOLATION.test(line)) person.cspViolations.push(line);
    });
    person.response = await page.goto(url);
    return person;
  }

  constructor(context, page) {
    this.context = context;
    this.page = page;
    this.dialogs = [];
    this.console = [];
    this.cspViolations = [];
  }

  /**
   * Fills the prompt: `mode` is guest | sign-in | register, the password only for the
   * last two. Does not wait for the outcome.
   */
  async submitPrompt(mode, name, password = undefined) {
    await this.page.locator(`[data-testid=mode-${mode}]`).click();
    const input = this.page.locator('[data-testid=name-input]');
    await input.waitFor({ state: 'visible' });
    await input.fill(name);
    if (password !== undefined) await this.page.locator('[data-testid=password-input]').fill(password);
    await this.page.locator('[data-testid=name-submit]').click();
  }

  /**
   * In as `name` (guest | sign-in | register) and the feed live. When the server says to
   * wait (password guessing from this address backs off), the button counts down; the
   * click waits for it, as a person would.
   */
  async enter(mode, name, password = undefined) {
    await this.submitPrompt(mode, name, password);
    const me = this.page.locator('[data-testid=me]', { hasText: name });
    const error = this.page.locator('[data-testid=name-error]');
    await until(`${name} to be in (${mode})`, async () => {
      if (await me.count()) return true;
      if (/try again in/.test((await error.allTextContents()).join(''))) {
        // Short: the button is off until the wait is over, and gone once signed in.
        await this.page.locator('[data-testid=name-submit]').click({ timeout: 1000 });
      }
      return false;
    }, 2 * TIMEOUT).catch(async (err) => {
      const said = (await error.allTextContents()).join('');
      throw new Error(`${err.message}; the prompt says ${JSON.stringify(said)}`);
    });
    await this.waitForState('live');
  }

  /** Continues as a guest named `name` (Join). */
  async join(name) {
    await this.enter('guest', name);
  }

  async register(name, password) {
    await this.enter('register', name, password);
  }

  async signIn(name, password) {
    await this.enter('sign-in', name, password);
  }

  /** The prompt's error, once shown. */
  async promptError() {
    const error = this.page.locator('[data-testid=name-error]');
    await error.waitFor();
    return error.textContent();
  }

  async waitForState(state, timeout = TIMEOUT) {
    await this.page.locator(`[data-testid=connection][data-state=${state}]`).waitFor({ timeout });
  }

  /** Types into the composer and presses Enter. */
  async send(text) {
    const box = this.page.locator('[data-testid=composer-input]');
    await box.fill(text);
    await box.press('Enter');
  }

  /**
   * Sends and waits for the composer to clear, i.e. the server accepted it. Refused for
   * going too fast (the server's per-session rate limit), it waits and presses Enter
   * again, as a person would.
   */
  async sendOk(text) {
    await this.send(text);
    const box = this.page.locator('[data-testid=composer-input]');
    const error = this.page.locator('[data-testid=composer-error]');
    let lastError = '';
    await until(`composer to clear after sending ${JSON.stringify(text)}`, async () => {
      if ((await box.inputValue()) === '') return true;
      // Never waits: the error may go between a count and a read.
      lastError = (await error.allTextContents()).join('');
      if (/too fast/.test(lastError)) {
        await sleep(300);
        await box.press('Enter');
      }
      return false;
    }).catch((err) => {
      throw new Error(`${err.message}; the composer says ${JSON.stringify(lastError)}`);
    });
  }

  /** The message row whose text is exactly `text` (waits for it). */
  async message(text, timeout = TIMEOUT) {
    const row = this.page
      .locator('li[data-testid=message]')
      .filter({ has: this.page.locator('[data-testid=message-text]', { hasText: text }) })
      .last();
    await row.waitFor({ timeout });
    return row;
  }

  /** All shown messages as {id, user, text, mine}. */
  async messages() {
    return this.page.$$eval('li[data-testid=message]', (rows) =>
      rows.map((row) => ({
        id: row.getAttribute('data-id'),
        user: row.querySelector('[data-testid=message-user]')?.textContent,
        text: row.querySelector('[data-testid=message-text]')?.textContent,
        mine: row.classList.contains('mine'),
      })));
  }

  /** The room list entry for `room`. */
  roomItem(room) {
    return this.page.locator(`[data-testid=room][data-room="${room}"]`);
  }

  /** The unread badge of `room` as shown ('' when there is none). */
  async unread(room) {
    const badge = this.roomItem(room).locator('[data-testid=unread]');
    return (await badge.allTextContents()).join('').trim();
  }

  /** Opens `room` from the room list (creating it through the new-room box when absent). */
  async goTo(room) {
    if (await this.roomItem(room).count()) {
      await this.roomItem(room).locator('a').click();
    } else {
      await this.page.locator('[data-testid=new-room-input]').fill(room);
      await this.page.locator('[data-testid=new-room-submit]').click();
    }
    await this.page.locator('[data-testid=room-title]', { hasText: `#${room}` }).waitFor();
    await this.waitForState('live');
  }

  /** Names in the member list. */
  async members() {
    return this.page.$$eval('[data-testid=member]', (items) => items.map((li) => li.getAttribute('data-name')));
  }

  async close() {
    await this.context.close().catch(() => {});
  }
}
