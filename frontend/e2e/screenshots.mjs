// The README's pictures, made from the real app: a chat-server on a free loopback port with
// a throwaway database, a short conversation posted through the API (links, code, bold,
// italic, a day line, a run of one sender, a "new messages" line), and the page in
// headless Chromium at desktop and phone width, light and dark. Writes
// docs/screenshots/{desktop,phone}-{light,dark}.png. Run after `cargo build -p chat-server`
// and `trunk build --release`:
//   node frontend/e2e/screenshots.mjs
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  ChatServer, Person, ROOT, createRoom, freePort, grpcWebCall, launchBrowser, sessionToken,
} from './harness.mjs';

const OUT = path.join(ROOT, 'docs/screenshots');
const SIZES = { desktop: { width: 1100, height: 720 }, phone: { width: 390, height: 760 } };

/** Posts `text` to `room` as the signed-in account behind `token`. */
async function say(serverUrl, token, room, text) {
  const status = await grpcWebCall(serverUrl, 'SendMessage', { 2: text, 3: room }, token);
  if (status.code !== 0) throw new Error(`SendMessage ${JSON.stringify(text)}: ${status.code} ${status.message}`);
}

const server = new ChatServer(await freePort());
let browser;
try {
  await server.start();
  browser = await launchBrowser();
  mkdirSync(OUT, { recursive: true });
  const ada = await sessionToken(server.url, 'Register', { 1: 'ada', 2: 'ada password 1' });
  const linus = await sessionToken(server.url, 'Register', { 1: 'linus', 2: 'linus password 1' });
  await createRoom(server.url, 'release');
  await say(server.url, ada, 'release', 'Morning! The release notes are at https://example.com/notes');
  await say(server.url, ada, 'release', 'Please run `cargo test --workspace` before you merge');
  await say(server.url, linus, 'release', '**Done.** All green here');
  await say(server.url, linus, 'release', '_Nice_, tagging it now');

  const maya = await Person.open(browser, server.url, { viewport: SIZES.desktop });
  await maya.register('maya', 'maya password 1');
  await maya.goTo('release');
  await maya.sendOk('Thanks both, I will watch the deploy');
  // Away for a moment while more is said: back in the room, a line marks what is new.
  await maya.goTo('general');
  await say(server.url, ada, 'release', 'Deploy finished in **4 min**, dashboards look calm');
  await maya.page.locator('[data-testid=room][data-room=release] [data-testid=unread]').waitFor();
  await maya.goTo('release');
  await maya.message('Deploy finished');
  await maya.page.locator('[data-testid=new-messages]').waitFor();
  // The composer has the focus (and its ring); the pictures show the page at rest.
  await maya.page.evaluate(() => document.activeElement?.blur());

  for (const [size, viewport] of Object.entries(SIZES)) {
    await maya.page.setViewportSize(viewport);
    // At the newest, as a reader following the room is (a resize alone keeps the offset).
    await maya.page.locator('[data-testid=messages]').evaluate((el) => { el.scrollTop = el.scrollHeight; });
    for (const colorScheme of ['light', 'dark']) {
      await maya.page.emulateMedia({ colorScheme });
      const file = path.join(OUT, `${size}-${colorScheme}.png`);
      await maya.page.screenshot({ path: file });
      console.log(file);
    }
  }
} finally {
  await browser?.close().catch(() => {});
  await server.stop();
}
