// A PostgreSQL (scripts/pg-temp.sh) and a nats-server of the test's own, on free loopback
// ports, for the browser test of several servers (cluster.test.mjs). Debian's packages:
// scripts/setup.sh installs nats-server (nats_tool); postgresql-15 is expected in
// /usr/lib/postgresql/15. stop() stops each and removes what it wrote.
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ROOT, freePort, until } from './harness.mjs';

const PG_TEMP = path.join(ROOT, 'scripts/pg-temp.sh');

export class Postgres {
  async start() {
    this.dir = path.join(os.tmpdir(), `chat-e2e-pg-${process.pid}-${Date.now()}`);
    const run = spawnSync('bash', [PG_TEMP, 'start', this.dir, String(await freePort())], { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`PostgreSQL did not start: ${run.stderr}`);
    /** The `--db` URL of its `postgres` database. */
    this.url = run.stdout.trim();
  }

  stop() {
    if (this.dir) spawnSync('bash', [PG_TEMP, 'stop', this.dir]);
  }
}

export class Nats {
  async start() {
    const port = await freePort();
    this.url = `nats://127.0.0.1:${port}`;
    const bin = ['/usr/sbin/nats-server', '/usr/bin/nats-server'].find((p) => spawnSync('test', ['-x', p]).status === 0);
    if (!bin) throw new Error('nats-server missing (bash scripts/setup.sh installs it: nats_tool)');
    this.child = spawn(bin, ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    this.exited = new Promise((resolve) => this.child.once('exit', resolve));
    await until(`nats-server on ${port}`, () => new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true); });
      socket.on('error', () => resolve(false));
    }));
  }

  async stop() {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}
