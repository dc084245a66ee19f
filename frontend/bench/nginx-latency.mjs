// A stream's message latency through nginx (deploy/nginx.conf: TLS, proxy_buffering off)
// against straight from chat-server: two grpc-web Subscribe streams on one room, one via
// nginx over https and one to chat-server over plain http, both open at once; each message
// is posted once (SendMessage, straight to chat-server) and timed from the post until it
// arrives on each stream. The difference is what nginx adds. Loopback only.
//   cargo build --release -p chat-server && trunk build --release
//   node frontend/bench/nginx-latency.mjs [MESSAGES]        (default 500)
import path from 'node:path';
import { ChatServer, ROOT, freePort, grpcWebCall, until } from '../e2e/harness.mjs';
import { DeployedNginx, subscribeStream, unitFlags } from '../e2e/nginx.mjs';

process.env.CHAT_SERVER_BIN ??= path.join(ROOT, 'target/release/chat-server');
const MESSAGES = Number(process.argv[2] || 500);
const ROOM = 'latency';

const server = new ChatServer(await freePort(), [...unitFlags(), '--max-messages-per-sec', '0', '--db-sync', 'normal']);
const nginx = new DeployedNginx({ serverPorts: [server.port, server.port], dist: path.join(ROOT, 'dist') });
try {
  await server.start();
  await nginx.start();
  const sentAt = new Map();
  const arrived = { direct: new Map(), nginx: new Map() };
  const onFrame = (into) => (frame) => {
    const at = performance.now();
    const id = /lat-(\d+)-end/.exec(frame.toString('latin1'))?.[1];
    if (id !== undefined) into.set(Number(id), at);
  };
  const direct = subscribeStream(server.url, ROOM, undefined, onFrame(arrived.direct));
  const proxied = subscribeStream(nginx.site, ROOM, nginx.ca, onFrame(arrived.nginx));
  await until('both Welcomes', async () => direct.frames >= 1 && proxied.frames >= 1);

  for (let i = 0; i < MESSAGES; i += 1) {
    sentAt.set(i, performance.now());
    const status = await grpcWebCall(server.url, 'SendMessage', { 1: 'bench', 2: `lat-${i}-end`, 3: ROOM });
    if (status.code !== 0) throw new Error(`SendMessage failed: ${status.code} ${status.message}`);
  }
  await until('every message on both streams', async () =>
    arrived.direct.size === MESSAGES && arrived.nginx.size === MESSAGES);
  direct.req.destroy();
  proxied.req.destroy();

  const ms = (path) => [...sentAt].map(([i, t]) => arrived[path].get(i) - t).sort((a, b) => a - b);
  const extra = [...sentAt.keys()].map((i) => arrived.nginx.get(i) - arrived.direct.get(i)).sort((a, b) => a - b);
  const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))].toFixed(2);
  console.log(`${MESSAGES} messages, one at a time, post -> arrival on a grpc-web Subscribe stream (ms)`);
  console.log('path                     p50     p90     p99     max');
  for (const [name, xs] of [['chat-server (http/1.1)', ms('direct')], ['nginx (https, http/1.1)', ms('nginx')], ['nginx minus direct', extra]]) {
    console.log(`${name.padEnd(24)}${[50, 90, 99, 100].map((p) => pct(xs, p).padStart(8)).join('')}`);
  }
} finally {
  await nginx.stop();
  await server.stop();
}
