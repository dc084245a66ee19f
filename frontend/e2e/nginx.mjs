// nginx started from deploy/nginx.conf and deploy/nginx-static.conf, with only their ports
// and paths replaced, in front of a chat-server, on a certificate made here with openssl
// exactly as the README's walkthrough makes one; and node clients for it (https requests
// trusting that certificate, a held grpc-web Subscribe). Used by deploy.test.mjs and by
// frontend/bench/nginx-latency.mjs. Everything it starts and writes, stop() removes.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { ROOT, freePort, sleep, until } from './harness.mjs';

export const NGINX = process.env.NGINX_BIN || '/usr/sbin/nginx';

/** Replaces each `[from, to]` in `text`, failing when `from` is not there (the file changed). */
function substitute(file, text, pairs) {
  for (const [from, to] of pairs) {
    if (!text.includes(from)) throw new Error(`${file} no longer contains ${JSON.stringify(from)}: update this test`);
    text = text.split(from).join(to);
  }
  return text;
}

/** deploy/chat-server.service's ExecStart flags, less those naming a port or a path. */
export function unitFlags() {
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
export function request(url, { method = 'GET', headers = {}, body, ca }) {
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

/**
 * An anonymous grpc-web Subscribe to `room`, held open (https trusting `ca`, or plain
 * http): counts the frames it gets, keeps the bytes, hands each frame to `onFrame`, and
 * notes whether the stream ended.
 */
export function subscribeStream(baseUrl, room, ca, onFrame = () => {}) {
  const roomBytes = Buffer.from(room, 'utf8');
  // SubscribeRequest { room = 1 }.
  const msg = Buffer.concat([Buffer.from([0x0a, roomBytes.length]), roomBytes]);
  const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, msg.length]), msg]);
  const stream = { frames: 0, bytes: Buffer.alloc(0), ended: null, opened: Date.now() };
  const client = baseUrl.startsWith('https:') ? https : http;
  stream.req = client.request(`${baseUrl}/grpcchat.ChatService/Subscribe`, {
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
        onFrame(pending.subarray(5, 5 + pending.readUInt32BE(1)));
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

export class DeployedNginx {
  /**
   * `serverPorts`: the chat-servers behind it, the two nginx.conf names or one (its 8081
   * lines deleted, as the README's one-server walkthrough does); `dist`: the page nginx.conf serves; `staticDist`: the page nginx-static.conf
   * serves (the same when not given).
   */
  constructor({ serverPorts, dist, staticDist = dist }) {
    Object.assign(this, { serverPorts, dist, staticDist });
    this.log = { text: '' };
  }

  async start() {
    if (!existsSync(NGINX)) throw new Error(`nginx missing: ${NGINX} (bash scripts/setup.sh installs it: deploy_tools)`);
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'chat-deploy-'));
    this.tmp = tmp;

    this.caFile = path.join(tmp, 'fullchain.pem');
    const openssl = spawnSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '30',
      '-keyout', path.join(tmp, 'privkey.pem'), '-out', this.caFile, '-subj', '/CN=chat.example.com',
      '-addext', 'subjectAltName=DNS:chat.example.com,DNS:api.example.com,DNS:localhost,IP:127.0.0.1',
      // A server's certificate, not an authority's (clients refuse a CA as a server).
      '-addext', 'basicConstraints=critical,CA:FALSE',
    ], { encoding: 'utf8' });
    if (openssl.status !== 0) throw new Error(`openssl failed (${openssl.error ?? openssl.status}): ${openssl.stderr}`);
    this.ca = readFileSync(this.caFile);

    const [httpsPort, httpPort, staticPort] = [await freePort(), await freePort(), await freePort()];
    Object.assign(this, { httpsPort, staticPort });
    const certPaths = ['/etc/ssl/chat/', `${tmp}/`];
    const siteFile = path.join(ROOT, 'deploy/nginx.conf');
    let siteConf = readFileSync(siteFile, 'utf8');
    const [first, second] = this.serverPorts;
    if (second === undefined) {
      // The walkthrough's `sed -i '/127.0.0.1:8081/d'`.
      if (!siteConf.includes('127.0.0.1:8081')) throw new Error(`${siteFile} no longer names 127.0.0.1:8081: update this test`);
      siteConf = siteConf.split('\n').filter((line) => !line.includes('127.0.0.1:8081')).join('\n');
    }
    writeFileSync(path.join(tmp, 'chat.conf'), substitute(siteFile, siteConf, [
      ['listen 443 ssl http2;', `listen 127.0.0.1:${httpsPort} ssl http2;`],
      ['listen 80;', `listen 127.0.0.1:${httpPort};`],
      // In both upstream blocks.
      ['server 127.0.0.1:8080;', `server 127.0.0.1:${first};`],
      ...(second === undefined ? [] : [['server 127.0.0.1:8081;', `server 127.0.0.1:${second};`]]),
      ['root /var/www/chat;', `root ${this.dist};`],
      certPaths,
    ]));
    const staticFile = path.join(ROOT, 'deploy/nginx-static.conf');
    writeFileSync(path.join(tmp, 'chat-static.conf'), substitute(staticFile, readFileSync(staticFile, 'utf8'), [
      ['listen 443 ssl http2;', `listen 127.0.0.1:${staticPort} ssl http2;`],
      ['root /var/www/chat-static;', `root ${this.staticDist};`],
      certPaths,
    ]));
    this.readTimeoutMs = 1000 * Number(/proxy_read_timeout (\d+)s;/.exec(siteConf)[1]);

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
    const child = spawn(NGINX, ['-p', tmp, '-e', path.join(tmp, 'error.log'), '-c', path.join(tmp, 'nginx.conf')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    for (const s of [child.stdout, child.stderr]) s.on('data', (c) => { this.log.text += c; });
    this.exited = new Promise((resolve) => child.once('exit', resolve));
    this.site = `https://127.0.0.1:${httpsPort}`;
    const exitedEarly = () => new Error(`nginx exited with ${child.exitCode}: ${this.log.text}${this.logs()}`);
    await until(`nginx on ${this.site}`, async () => {
      if (child.exitCode !== null) throw exitedEarly();
      return (await request(`${this.site}/`, { ca: this.ca })).status === 200;
    }).catch((err) => {
      throw child.exitCode !== null ? exitedEarly() : err;
    });
  }

  /** The tails of nginx's error and access logs, for failure reports. */
  logs() {
    let out = '';
    for (const f of ['error.log', 'access.log']) {
      const file = this.tmp && path.join(this.tmp, f);
      if (file && existsSync(file)) out += `\n--- nginx ${f} ---\n${readFileSync(file, 'utf8').slice(-20_000)}`;
    }
    return out;
  }

  async stop() {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const done = await Promise.race([this.exited.then(() => true), sleep(5000).then(() => false)]);
      if (!done) {
        child.kill('SIGKILL');
        await this.exited;
      }
    }
    if (this.tmp) rmSync(this.tmp, { recursive: true, force: true });
  }
}
