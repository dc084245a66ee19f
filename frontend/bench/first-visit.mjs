// How soon the page is usable on a slow mobile network: 400 ms round trip, 400 kbit/s
// down, 200 kbit/s up. Chromium reaches chat-server through a throttling TCP proxy, so
// every byte is slowed alike: the page's own requests and its service worker's (which
// DevTools' per-page emulation would leave fast). Each connection also pays one round
// trip to open with HANDSHAKE=1, as TCP does. Loopback only.
//   cold: a fresh profile opens the page; the time from navigation start until the name
//         prompt is on screen, styled and enabled (typeable), and until the app has taken
//         it over (the wasm running);
//   warm: the same profile, signed in and with the service worker installed, reloads; the
//         time until the room is on screen (its title and message list) and until it is
//         live (the Subscribe stream's Welcome arrived).
// EMULATION=cdp uses Chromium's own emulation instead of the proxy
// (Network.emulateNetworkConditions on the page, the method): the same for a cold
// visit, but the service worker's fetches then go unthrottled, so its warm figures flatter.
//   cargo build -p chat-server && trunk build --release
//   node frontend/bench/first-visit.mjs [DIST] [RUNS]     (defaults: dist/, 5)
import net from 'node:net';
import path from 'node:path';
import { ChatServer, ROOT, TIMEOUT, freePort, launchBrowser } from '../e2e/harness.mjs';

const DIST = path.resolve(process.argv[2] || path.join(ROOT, 'dist'));
const RUNS = Number(process.argv[3] || 5);
const RTT_MS = 400;
const DOWN_BYTES_PER_S = 400_000 / 8;
const UP_BYTES_PER_S = 200_000 / 8;
// DevTools' emulation (and the issue's figures) add the latency once per request and none
// for opening a connection; HANDSHAKE=1 charges each new connection a round trip too, as
// TCP does (a stricter figure: the page's CSS and scripts open new connections).
const HANDSHAKE = process.env.HANDSHAKE === '1';
const CDP = process.env.EMULATION === 'cdp';
const CHUNK = 1460; // one TCP segment: bytes leave the link in segments, not whole writes

/**
 * One direction of the link: its bandwidth shared fairly by the connections with bytes to
 * send (one segment each in turn, as routers' fair queues do and DevTools' throttling does
 * per request), then half the RTT of travel.
 */
class Direction {
  constructor(bytesPerS) {
    this.bytesPerS = bytesPerS;
    this.waiting = []; // connections with queued segments, in turn order
    this.busy = false;
  }

  /** Queues `chunk` of connection `flow` ({ queue: [], to: socket }). */
  send(chunk, flow) {
    for (let at = 0; at < chunk.length; at += CHUNK) flow.queue.push(chunk.subarray(at, at + CHUNK));
    if (!this.waiting.includes(flow)) this.waiting.push(flow);
    this.next();
  }

  next() {
    if (this.busy || this.waiting.length === 0) return;
    const flow = this.waiting.shift();
    const piece = flow.queue.shift();
    if (flow.queue.length > 0) this.waiting.push(flow);
    this.busy = true;
    setTimeout(() => {
      this.busy = false;
      setTimeout(() => flow.to.writable && flow.to.write(piece), RTT_MS / 2);
      this.next();
    }, (piece.length * 1000) / this.bytesPerS);
  }
}

/** A TCP proxy to `port` that makes it look RTT_MS away behind a slow link. */
async function slowLink(port) {
  const down = new Direction(DOWN_BYTES_PER_S);
  const up = new Direction(UP_BYTES_PER_S);
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    const toServer = { queue: [], to: upstream };
    const toBrowser = { queue: [], to: client };
    // With HANDSHAKE, the TCP handshake's round trip before the first byte may go up.
    let open = false;
    const early = [];
    setTimeout(() => {
      open = true;
      for (const chunk of early.splice(0)) up.send(chunk, toServer);
    }, HANDSHAKE ? RTT_MS : 0);
    client.on('data', (chunk) => (open ? up.send(chunk, toServer) : early.push(chunk)));
    upstream.on('data', (chunk) => down.send(chunk, toBrowser));
    const end = (other) => () => setTimeout(() => other.end(), RTT_MS / 2);
    client.on('end', end(upstream));
    upstream.on('end', end(client));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * ms from navigation start until the moment `name` has come, checked in the page every
 * frame (a function, not a string: the page's CSP allows no eval).
 */
const when = (page, name) =>
  page
    .waitForFunction(
      (moment) => {
        const $ = (selector) => document.querySelector(selector);
        const shown = (el) => el != null && el.offsetParent !== null;
        const input = $('[data-testid=name-input]');
        const reached = {
          typeable: () =>
            shown(input) && !input.disabled && getComputedStyle(input.closest('form')).display === 'grid',
          app: () => !document.getElementById('boot') && input !== null,
          room: () => shown($('[data-testid=room-title]')) && $('[data-testid=messages]') !== null,
          live: () => $('[data-testid=connection][data-state=live]') !== null,
        }[moment]();
        return reached && performance.now();
      },
      name,
      { polling: 'raf', timeout: 4 * TIMEOUT },
    )
    .then((handle) => handle.jsonValue());

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const server = new ChatServer(await freePort(), [], { dist: DIST });
let link;
let browser;
try {
  await server.start();
  link = CDP ? { url: server.url, close: async () => {} } : await slowLink(server.port);
  browser = await launchBrowser();
  const rows = { 'cold: prompt typeable': [], 'cold: app running': [], 'warm: room on screen': [], 'warm: room live': [] };
  for (let run = 0; run < RUNS; run += 1) {
    const context = await browser.newContext();
    const page = await context.newPage();
    if (CDP) {
      const cdp = await context.newCDPSession(page);
      await cdp.send('Network.enable');
      await cdp.send('Network.emulateNetworkConditions', {
        offline: false,
        latency: RTT_MS,
        downloadThroughput: DOWN_BYTES_PER_S,
        uploadThroughput: UP_BYTES_PER_S,
      });
    }
    await page.goto(link.url, { waitUntil: 'commit' });
    rows['cold: prompt typeable'].push(await when(page, 'typeable'));
    rows['cold: app running'].push(await when(page, 'app'));

    await page.locator('[data-testid=name-input]').fill(`visitor${run}`);
    await page.locator('[data-testid=name-submit]').click();
    await when(page, 'live');
    // The release's files in the worker's cache before the second visit, if it has one.
    await page.evaluate(async () => {
      if (!navigator.serviceWorker || !document.querySelector('link[rel=manifest]')) return;
      await navigator.serviceWorker.ready;
      while (!navigator.serviceWorker.controller) await new Promise((r) => setTimeout(r, 50));
    });
    await page.reload({ waitUntil: 'commit' });
    rows['warm: room on screen'].push(await when(page, 'room'));
    rows['warm: room live'].push(await when(page, 'live'));
    await context.close();
  }
  console.log(`${path.relative(ROOT, DIST) || DIST}: ${RUNS} runs, ${RTT_MS} ms RTT, ${DOWN_BYTES_PER_S * 8 / 1000} kbit/s down, ${UP_BYTES_PER_S * 8 / 1000} up, ${CDP ? 'Chromium emulation (CDP)' : HANDSHAKE ? 'proxy, a round trip per new connection' : 'proxy, no connection cost'}`);
  console.log('| moment | median ms | runs (ms) |');
  console.log('|---|---:|---|');
  for (const [moment, times] of Object.entries(rows)) {
    console.log(`| ${moment} | ${Math.round(median(times))} | ${times.map(Math.round).join(', ')} |`);
  }
} finally {
  await browser?.close();
  await link?.close();
  await server.stop();
}
