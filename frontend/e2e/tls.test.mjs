// chat-server serving TLS itself (--tls-cert, --tls-key; no nginx), on a certificate made
// at test time with openssl, in headless Chromium: the page and its API over https on
// HTTP/2 (ALPN), and eight tabs of one browser profile live at once, each sending and
// receiving every other's message while all eight Subscribe streams are open. Over
// HTTP/1.1 the seventh tab would wait behind the six streams a browser allows per host.
// Needs openssl (scripts/setup.sh installs it) and the release page in dist/. Everything
// runs on loopback; the server is stopped and the temp dir removed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import {
  ChatServer, Person, TIMEOUT, freePort, launchBrowser, reportingStep,
} from './harness.mjs';

/** The protocol a page's own document came over ('h2' for HTTP/2). */
const protocolOf = (page) => page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);

/** The protocols of the page's grpc-web calls so far. */
const apiProtocolsOf = (page) => page.evaluate(() => [...new Set(performance.getEntriesByType('resource')
  .filter((e) => e.name.includes('/grpcchat.ChatService/'))
  .map((e) => e.nextHopProtocol))]);

describe('chat-server serving TLS itself', { timeout: 10 * TIMEOUT }, () => {
  let tmp;
  let server;
  let browser;
  let context;
  const tabs = [];

  before(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'chat-tls-'));
    const [cert, key] = [path.join(tmp, 'fullchain.pem'), path.join(tmp, 'privkey.pem')];
    const openssl = spawnSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-keyout', key, '-out', cert, '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-addext', 'basicConstraints=critical,CA:FALSE',
    ], { encoding: 'utf8' });
    if (openssl.status !== 0) throw new Error(`openssl failed (${openssl.error ?? openssl.status}): ${openssl.stderr}`);
    server = new ChatServer(await freePort(), ['--tls-cert', cert, '--tls-key', key], { ca: readFileSync(cert) });
    await server.start();
    browser = await launchBrowser();
    // One profile (shared storage, so one session) that does not stop at the test certificate.
    context = await browser.newContext({ ignoreHTTPSErrors: true });
    context.setDefaultTimeout(TIMEOUT);
  });

  after(async () => {
    await context?.close().catch(() => {});
    await browser?.close().catch(() => {});
    await server?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  const step = reportingStep(() => ({ server, people: tabs }));

  /** A tab of the one profile with the room open. */
  const openTab = async (name) => {
    const page = await context.newPage();
    const tab = new Person(context, page);
    tab.name = name;
    page.on('pageerror', (err) => tab.console.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => tab.console.push(`${msg.type()}: ${msg.text()}`));
    tabs.push(tab);
    await page.goto(`${server.url}/#octo`);
    return tab;
  };

  step('eight tabs of one profile over https are all live at once on HTTP/2, each sending and receiving', {}, async () => {
    const first = await openTab('octo-1');
    await first.join('octo');
    // The others find the session in the profile's storage and go straight in.
    for (let i = 2; i <= 8; i += 1) await openTab(`octo-${i}`);
    for (const tab of tabs) {
      await tab.waitForState('live');
      assert.equal(await protocolOf(tab.page), 'h2', `${tab.name}'s page came over HTTP/2`);
    }
    for (const [i, tab] of tabs.entries()) await tab.sendOk(`tab ${i + 1} of 8`);
    for (const tab of tabs) {
      for (let i = 1; i <= 8; i += 1) await tab.message(`tab ${i} of 8`);
      await tab.waitForState('live');
      assert.deepEqual(await apiProtocolsOf(tab.page), ['h2'], `${tab.name}'s API calls went over HTTP/2`);
    }
  });
});
