// Two chat-servers on one PostgreSQL and one NATS behind nginx (deploy/nginx.conf, its two
// upstream servers given the test's ports), driven by headless Chromium: pages whose
// requests land on either server chat as one room, and when one server is killed
// (SIGKILL) mid-chat the pages carry on through the other, every message shown once; so
// does a chat-cli on nginx's native gRPC, which subscribes again through nginx after the
// last id it printed.
// Needs what deploy.test.mjs needs, plus nats-server and postgresql-15 (scripts/setup.sh).
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ChatCli, ChatServer, ROOT, TIMEOUT, freePort, launchBrowser, Person, until } from './harness.mjs';
import { DeployedNginx, unitFlags } from './nginx.mjs';
import { Nats, Postgres } from './services.mjs';

const DIST = process.env.CHAT_DIST_DIR || path.join(ROOT, 'dist');

describe('two servers behind nginx, one killed mid-chat', { timeout: 20 * TIMEOUT }, () => {
  const pg = new Postgres();
  const nats = new Nats();
  const servers = [];
  let nginx;
  let browser;
  const people = [];
  let cli; // chat-cli as cy, through nginx

  const step = (name, fn) =>
    it(name, { timeout: 6 * TIMEOUT }, async () => {
      try {
        await fn();
      } catch (err) {
        for (const [i, s] of servers.entries()) console.error(`\n--- chat-server ${i} ---\n${s.log.text}`);
        console.error(`--- nginx ---\n${nginx?.log.text ?? ''}${nginx?.logs() ?? ''}`);
        for (const p of people) console.error(`--- page console (${p.name}) ---\n${p.console.join('\n')}`);
        if (cli) console.error(`--- chat-cli out ---\n${cli.out.text}\n--- chat-cli err ---\n${cli.err.text}`);
        throw err;
      }
    });

  /** Each text printed exactly once by chat-cli. */
  const printedOnce = (texts) => {
    const lines = cli.out.text.split('\n');
    for (const text of texts) assert.equal(lines.filter((l) => l.endsWith(`]: ${text}`)).length, 1, `chat-cli: "${text}" once in\n${cli.out.text}`);
  };
  const printed = (texts) => until(`chat-cli to print ${JSON.stringify(texts)}`, async () => texts.every((t) => cli.out.text.includes(`]: ${t}\n`)));

  /** Each text shown exactly once on `person`'s page. */
  const shownOnce = async (person, texts) => {
    const shown = (await person.messages()).map((m) => m.text);
    for (const text of texts) assert.equal(shown.filter((t) => t === text).length, 1, `${person.name}: "${text}" once in ${JSON.stringify(shown)}`);
  };

  before(async () => {
    await pg.start();
    await nats.start();
    for (let i = 0; i < 2; i += 1) {
      const server = new ChatServer(await freePort(), [...unitFlags(), '--nats', nats.url], { db: pg.url });
      servers.push(server);
      await server.start();
    }
    nginx = new DeployedNginx({ serverPorts: servers.map((s) => s.port), dist: DIST });
    await nginx.start();
    browser = await launchBrowser();
  });

  after(async () => {
    await cli?.close();
    for (const p of people) await p.close();
    await browser?.close().catch(() => {});
    await nginx?.stop();
    for (const s of servers) await s.stop();
    await nats.stop();
    pg.stop();
  });

  step('pages on either server chat as one room', async () => {
    for (const name of ['ann', 'bob']) {
      const context = await browser.newContext({ ignoreHTTPSErrors: true });
      context.setDefaultTimeout(TIMEOUT);
      const page = await context.newPage();
      const person = new Person(context, page);
      person.name = name;
      page.on('console', (msg) => person.console.push(`${msg.type()}: ${msg.text()}`));
      await page.goto(`${nginx.site}/`);
      await person.join(name);
      people.push(person);
    }
    const [ann, bob] = people;
    // chat-cli through nginx's native gRPC: its line arriving proves its stream is open.
    cli = new ChatCli('cy', nginx.site, ['--ca-cert', nginx.caFile]);
    cli.say('cy 1');
    for (const person of people) await person.message('cy 1');
    // nginx spreads requests over both servers: several sends, so both take some.
    for (let i = 1; i <= 4; i += 1) {
      await ann.sendOk(`ann ${i}`);
      await bob.sendOk(`bob ${i}`);
    }
    for (const person of people) {
      for (let i = 1; i <= 4; i += 1) {
        await person.message(`ann ${i}`);
        await person.message(`bob ${i}`);
      }
    }
    await printed(['ann 4', 'bob 4']);
  });

  step('one server killed mid-chat: both pages go on through the other', async () => {
    // Each page's stream is on one of the two: the first kill ends those on server 0, the
    // second (once 0 is back) those on server 1, so every page has lost its server once.
    // chat-cli's stream is on one of them too, so it loses its server once as well.
    const texts = ['ann 1', 'ann 4', 'bob 1', 'bob 4'];
    for (const [round, dead] of [[1, 0], [2, 1]]) {
      await servers[dead].kill();
      for (const person of people) await person.sendOk(`kill ${round}, from ${person.name}`);
      cli.say(`kill ${round}, from cy`);
      const roundTexts = ['ann', 'bob', 'cy'].map((name) => `kill ${round}, from ${name}`);
      for (const person of people) {
        for (const text of roundTexts) await person.message(text);
        await person.waitForState('live');
      }
      await printed(roundTexts);
      texts.push(...roundTexts);
      if (round === 1) await servers[0].start();
    }
    for (const person of people) await shownOnce(person, [...texts, 'cy 1']);
    printedOnce([...texts, 'cy 1']);
    assert.match(cli.err.text, /reconnected/, `chat-cli lost its server and came back:\n${cli.err.text}`);
    const code = await cli.close();
    assert.equal(code, 0, `chat-cli confirmed every line it sent: ${cli.err.text}`);
  });
});
