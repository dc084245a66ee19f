// The chat as people use it: the release build served by a real chat-server, driven in
// headless Chromium (two or three people, each in their own browser context) and by
// chat-cli as a native gRPC client. Run after `cargo build` and `trunk build --release`:
//   node --test frontend/e2e/
//
// The page's test hooks (data-testid), kept stable for these tests:
//   mode-guest, mode-sign-in, mode-register  the prompt's three ways in (Join, SignIn, Register)
//   name-input, password-input, name-submit  the prompt's fields and button (the button counts
//                                            down while the server says to wait)
//   name-error                               the server's refusal (name taken, wrong password)
//   name-notice                              why the prompt came back (session ended, ...)
//   me, me-guest                             the name signed in as, in the header; "guest" tag
//   sign-out                                 the sign-out button (Leave)
//   account-menu; old-password-input,        an account's menu: change password, sign out
//   new-password-input, change-password-     everywhere, and the outcome of either
//   submit, sign-out-everywhere,
//   account-result
//   connection [data-state]                  badge: connecting | live | reconnecting | offline
//   room-title                               "#room" of the room on screen
//   rooms; room [data-room=NAME]             the room list; the current one has class "current"
//   unread                                   a room's unread badge (absent when 0; "99+" past 99)
//   new-room-input, new-room-submit,         open/create a room by name; the error explains
//   new-room-error                           a bad name
//   room-error                               the server refusing the room (e.g. too many rooms)
//   members; member [data-name=NAME]         who is here
//   typing                                   "NAME is typing..." (empty when nobody types)
//   messages; message [data-id],             the conversation; rows of the reader's own
//   message-user, message-text, message-time messages have class "mine"; message-guest
//   message-guest                            tags a guest's message; user and time only
//                                            on the first of one sender's run
//   day, new-messages                        a day line; the "New messages" line
//   jump, jump-count                         "Jump to newest" when scrolled up; how many
//                                            arrived unseen
//   announcer                                the polite live region (messages from others)
//   older-loading                            shown while an older page is on its way
//   composer-input, composer-send,           the composer and the server's error next to it
//   composer-error
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import {
  ChatCli, FreezingProxy, HEARTBEAT_MS, Person, TIMEOUT, createRoom, grpcWebCall, postMessages,
  reportingStep, sleep, startServerAndBrowser, stopAll, until,
} from './harness.mjs';

const XSS = '<img src=x onerror=alert(1)>';
const IVY_PASSWORD = 'ivy keeps this 1';

describe('chat in the browser', { timeout: 20 * TIMEOUT }, () => {
  let server;
  let browser;
  let alice;
  let bob;
  // Pages still open, and every page ever opened (for the CSP check at the end).
  const people = [];
  const everyone = [];

  // Every failure report carries what the server and the pages said.
  const step = reportingStep(() => ({ server, people }));

  const open = async (name, url = server.url) => {
    const person = await Person.open(browser, url);
    person.name = name;
    people.push(person);
    everyone.push(person);
    return person;
  };

  /** No message id shown twice on any page. */
  const assertNoDuplicates = async () => {
    for (const p of people) {
      const ids = (await p.messages()).map((m) => m.id);
      assert.equal(new Set(ids).size, ids.length, `${p.name} shows a message twice: ${ids}`);
    }
  };

  before(async () => ({ server, browser } = await startServerAndBrowser()));
  after(() => stopAll({ people, browser, server }));

  step('the page mounts under its security headers, checks the name and joins as a guest', {}, async () => {
    alice = await open('alice');
    // The page was served with the policy it must run under, and has no inline script
    // (the loader is a file of its own).
    const headers = alice.response.headers();
    assert.match(headers['content-security-policy'], /script-src 'self' 'wasm-unsafe-eval'/);
    assert.match(headers['content-security-policy'], /frame-ancestors 'none'/);
    assert.equal(headers['x-content-type-options'], 'nosniff');
    assert.equal(headers['referrer-policy'], 'no-referrer');
    assert.equal(await alice.page.locator('script:not([src])').count(), 0);
    // The wasm app actually ran (a broken wasm-opt pass, or a loader the CSP refused,
    // would leave an empty body).
    await alice.page.locator('[data-testid=name-input]').waitFor({ state: 'visible' });
    await alice.page.locator('[data-testid=name-input]').fill('not a name!');
    await alice.page.locator('[data-testid=name-submit]').click();
    await alice.page.locator('[data-testid=name-error]').waitFor();
    await alice.join('alice');
    await alice.page.locator('[data-testid=me-guest]').waitFor();

    // Join refuses a name another live session holds, in the server's words.
    const impostor = await open('impostor');
    try {
      await impostor.submitPrompt('guest', 'alice');
      assert.match(await impostor.promptError(), /alice/);
    } finally {
      people.splice(people.indexOf(impostor), 1);
      await impostor.close();
    }

    bob = await open('bob');
    await bob.join('bob');
  });

  step('a message typed in one page appears in the other, marked as mine only for the sender', {}, async () => {
    const text = `hello bob ${Date.now()}`;
    await alice.sendOk(text);
    const atBob = await bob.message(text);
    const atAlice = await alice.message(text);
    assert.equal(await atBob.locator('[data-testid=message-user]').textContent(), 'alice');
    // Recent, so relative; the exact time is on hover.
    assert.match(await atBob.locator('[data-testid=message-time]').textContent(), /^(just now|\d+ min ago)$/);
    assert.match(await atBob.locator('.bubble').getAttribute('title'), /\d\d?:\d\d/);
    assert.equal(await atAlice.getAttribute('data-id'), await atBob.getAttribute('data-id'));
    assert.ok(await atAlice.evaluate((el) => el.classList.contains('mine')), 'sender sees it as mine');
    assert.ok(!(await atBob.evaluate((el) => el.classList.contains('mine'))), 'receiver does not');
    // Alice is a guest: her name may be someone else's later, and the row says so.
    assert.equal(await atBob.locator('[data-testid=message-guest]').textContent(), 'guest');

    // Shift+Enter is a newline, not a send.
    const box = bob.page.locator('[data-testid=composer-input]');
    await box.fill('two');
    await box.press('Shift+Enter');
    await box.pressSequentially('lines');
    assert.equal(await box.inputValue(), 'two\nlines');
    await box.press('Enter');
    await alice.message('two\nlines');
    await assertNoDuplicates();
  });

  step('a server error is shown at the composer and the typed text is kept', {}, async () => {
    await alice.send('   ');
    const error = alice.page.locator('[data-testid=composer-error]');
    await error.waitFor();
    assert.match(await error.textContent(), /message is empty/);
    assert.equal(await alice.page.locator('[data-testid=composer-input]').inputValue(), '   ');
    // The next good send clears the error.
    await alice.sendOk(`error cleared ${Date.now()}`);
    await error.waitFor({ state: 'detached' });
  });

  // Not skipped when chat-cli is missing: the native path is part of what must work.
  step('chat-cli and the browsers see each other', {}, async () => {
    assert.ok(ChatCli.available(), 'chat-cli is not built: run cargo build -p chat-cli');
    const carol = new ChatCli('carol', server.url);
    try {
      // Carol's line arriving proves her Broadcast stream is open, so she will hear Bob.
      const fromCli = `hi from the terminal ${Date.now()}`;
      carol.say(fromCli);
      const row = await alice.message(fromCli);
      assert.equal(await row.locator('[data-testid=message-user]').textContent(), 'carol');
      await bob.message(fromCli);

      const fromBrowser = `hi carol ${Date.now()}`;
      await bob.sendOk(fromBrowser);
      const line = new RegExp(`^\\d\\d:\\d\\d:\\d\\d \\[bob\\]: ${fromBrowser}$`, 'm');
      await until('the browser message on chat-cli stdout', async () => line.test(carol.out.text));
    } catch (err) {
      console.error(`--- chat-cli stdout ---\n${carol.out.text}\n--- chat-cli stderr ---\n${carol.err.text}`);
      throw err;
    } finally {
      await carol.close();
    }
  });

  step('markup in a message is shown as text, never run', {}, async () => {
    await alice.sendOk(XSS);
    const row = await bob.message(XSS);
    assert.equal(await row.locator('[data-testid=message-text]').textContent(), XSS);
    await sleep(1000); // an injected onerror would fire by now
    for (const p of [alice, bob]) {
      assert.equal(await p.page.locator('[data-testid=messages] img').count(), 0);
      assert.deepEqual(p.dialogs, [], `${p.name} saw a dialog`);
    }
  });

  step("an injected inline script is refused by the page's policy, and the refusal is heard", {}, async () => {
    // What an injection would try. page.evaluate itself is not subject to the policy; the
    // script element it adds is.
    const ran = await alice.page.evaluate(() => {
      const script = document.createElement('script');
      script.textContent = 'window.injected = true;';
      document.body.append(script);
      return window.injected === true;
    });
    assert.equal(ran, false, 'the inline script ran');
    await until('the violation to be reported by the page and by Chromium', async () =>
      alice.cspViolations.some((l) => l.startsWith('error: csp violation: script-src'))
      && alice.cspViolations.some((l) => l.includes('Content Security Policy')));
    // Expected here; the last step checks that nothing else was ever refused.
    alice.cspViolations.length = 0;
  });

  step('a page that was offline shows it, comes back by itself and gets what it missed', {}, async () => {
    await bob.context.setOffline(true);
    await bob.waitForState('offline');
    const missed = `while bob was offline ${Date.now()}`;
    await alice.sendOk(missed);
    await bob.context.setOffline(false);
    await bob.waitForState('live', 2 * TIMEOUT);
    // Resumed after its last id in the same epoch: the gap is replayed, nothing twice.
    await bob.message(missed);
    assert.deepEqual((await bob.messages()).map((m) => m.id), (await alice.messages()).map((m) => m.id));
    await assertNoDuplicates();
  });

  step('a connection that dies silently is noticed by missing heartbeats and replaced', {}, async () => {
    const proxy = new FreezingProxy(server.port);
    await proxy.start();
    const erin = await open('erin', proxy.url);
    try {
      await erin.join('erin');
      proxy.freeze();
      // No error ever arrives on a frozen connection: only the silence gives it away.
      // Three missed heartbeats, plus slack for slow machines; well under the 30 s that
      // an unarmed watchdog (waiting for a Welcome) would take.
      await erin.waitForState('reconnecting', 3 * HEARTBEAT_MS + 15_000);
      const missed = `while erin's line was dead ${Date.now()}`;
      await alice.sendOk(missed);
      proxy.thaw();
      await erin.waitForState('live', 2 * TIMEOUT);
      await erin.message(missed);
      const ids = (await erin.messages()).map((m) => m.id);
      assert.equal(new Set(ids).size, ids.length, `erin shows a message twice: ${ids}`);
    } finally {
      people.splice(people.indexOf(erin), 1);
      await erin.close();
      await proxy.stop();
    }
  });

  step('after a server restart the pages reconnect by themselves, keep their names and the history', {}, async () => {
    const shownBefore = (await bob.messages()).map((m) => m.id);
    await server.kill();
    await Promise.all([alice.waitForState('reconnecting'), bob.waitForState('reconnecting')]);
    await server.start();
    // Backoff is capped at 10 s; allow a few rounds. The sessions died with the server: the
    // pages join again under the same names by themselves, without a prompt.
    await Promise.all([alice.waitForState('live', 3 * TIMEOUT), bob.waitForState('live', 3 * TIMEOUT)]);
    for (const p of [alice, bob]) {
      assert.equal(await p.page.locator('[data-testid=me]').textContent(), p.name);
      assert.equal(await p.page.locator('[data-testid=name-input]').count(), 0);
    }

    const text = `after the restart ${Date.now()}`;
    await alice.sendOk(text);
    await bob.message(text);
    // The messages are stored: what was there is still there, the new one after it.
    await until('bob to show the old conversation and the new message', async () => {
      const ids = (await bob.messages()).map((m) => m.id);
      return ids.length === shownBefore.length + 1 && shownBefore.every((id) => ids.includes(id));
    });
    assert.deepEqual((await bob.messages()).map((m) => m.id), (await alice.messages()).map((m) => m.id));
    await assertNoDuplicates();
  });

  step('the list follows new messages only while scrolled to the bottom', {}, async () => {
    const list = bob.page.locator('[data-testid=messages]');
    const gap = () => list.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight);
    for (let i = 0; i < 25; i += 1) await alice.sendOk(`filler ${i}\nsecond line`);
    await bob.message('filler 24');
    await until('bob scrolled to the newest', async () => (await gap()) <= 2);
    assert.ok(await list.evaluate((el) => el.scrollHeight > el.clientHeight), 'list overflows');

    // Reading older messages: a new arrival must not pull the reader down.
    await list.evaluate((el) => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); });
    await alice.sendOk('while bob reads');
    await bob.message('while bob reads');
    await sleep(300);
    assert.equal(await list.evaluate((el) => el.scrollTop), 0);
  });

  step('a newly opened page shows the recent history and a reload remembers the name', {}, async () => {
    const before = (await alice.messages()).map((m) => m.text);
    assert.ok(before.length > 0);
    const dave = await open('dave');
    await dave.join('dave');
    await until('history in the new page', async () => {
      const shown = (await dave.messages()).map((m) => m.text);
      return JSON.stringify(shown) === JSON.stringify(before);
    });

    // A reload keeps the session itself: same token, no new Join, no prompt.
    const token = () => dave.page.evaluate(() => localStorage.getItem('chat.token'));
    const tokenBefore = await token();
    await dave.page.reload();
    await dave.page.locator('[data-testid=me]', { hasText: 'dave' }).waitFor();
    assert.equal(await dave.page.locator('[data-testid=name-input]').count(), 0);
    await dave.waitForState('live');
    await dave.message(before.at(-1));
    assert.equal(await token(), tokenBefore);

    // Signing out ends the session (Leave): the prompt comes back prefilled, and a new
    // name is remembered across a reload.
    await dave.page.locator('[data-testid=sign-out]').click();
    assert.equal(await dave.page.locator('[data-testid=name-input]').inputValue(), 'dave');
    await dave.join('dave.2');
    await dave.sendOk('renamed');
    assert.ok(await (await dave.message('renamed')).evaluate((el) => el.classList.contains('mine')));
    await dave.page.reload();
    await dave.page.locator('[data-testid=me]', { hasText: 'dave.2' }).waitFor();
    await dave.waitForState('live');
  });

  step('rooms: a new room, unread counts, switching without reload, the last room remembered', {}, async () => {
    // No reload may happen: this marker would vanish with the page.
    for (const p of [alice, bob]) await p.page.evaluate(() => { window.noReload = true; });

    // A bad name is explained before anything is sent.
    await bob.page.locator('[data-testid=new-room-input]').fill('two words');
    await bob.page.locator('[data-testid=new-room-submit]').click();
    const error = bob.page.locator('[data-testid=new-room-error]');
    await error.waitFor();
    assert.match(await error.textContent(), /Spaces are not allowed/);

    const room = `random-${Date.now() % 100000}`;
    await bob.goTo(room);
    assert.equal(new URL(bob.page.url()).hash, `#${room}`);
    assert.ok(await bob.roomItem(room).evaluate((el) => el.classList.contains('current')));
    for (let i = 1; i <= 3; i += 1) await bob.sendOk(`in ${room} ${i}`);

    // Alice, still in general, sees the room appear with 3 unread (the list is polled).
    await until(`alice's unread badge for ${room}`, async () => (await alice.unread(room)) === '3');
    assert.equal(await alice.unread('general'), '');
    await alice.goTo(room);
    await alice.message(`in ${room} 3`);
    await until('the badge of the room on screen to go', async () => (await alice.unread(room)) === '');

    // Now general gets news while both are away from it.
    await postMessages(server.url, 'grace', 'general', ['news 1', 'news 2']);
    await until("alice's unread badge for general", async () => (await alice.unread('general')) === '2');
    await alice.goTo('general');
    await alice.message('news 2');
    await until('the general badge to go', async () => (await alice.unread('general')) === '');
    assert.equal(await alice.unread(room), '');
    for (const p of [alice, bob]) assert.ok(await p.page.evaluate(() => window.noReload), `${p.name} reloaded`);

    // Back to the previous room through the browser's Back button (the hash), then a new
    // visit without any hash comes back to the last room (localStorage).
    await alice.page.evaluate(() => history.back());
    await alice.page.locator('[data-testid=room-title]', { hasText: `#${room}` }).waitFor();
    await alice.page.goto(server.url);
    assert.equal(await alice.page.evaluate(() => window.noReload), undefined, 'a real new visit');
    await alice.page.locator('[data-testid=room-title]', { hasText: `#${room}` }).waitFor();
    await alice.waitForState('live');
    await alice.message(`in ${room} 3`);
    await alice.goTo('general');
    await bob.goTo('general');
  });

  step('the member list shows who is here and drops a page that closed', {}, async () => {
    const frank = await open('frank');
    await frank.join('frank');
    await until('alice to list alice, bob and frank', async () => {
      const names = await alice.members();
      return ['alice', 'bob', 'frank'].every((n) => names.includes(n));
    });
    assert.deepEqual(await frank.members(), [...(await frank.members())].sort(), 'sorted');
    people.splice(people.indexOf(frank), 1);
    await frank.close();
    await until('frank to leave alice\'s member list', async () => !(await alice.members()).includes('frank'), 10_000);
    assert.ok((await alice.members()).includes('bob'));
  });

  step('typing in one page shows "is typing" in the other until the message arrives or it expires', {}, async () => {
    const typing = alice.page.locator('[data-testid=typing]');
    const box = bob.page.locator('[data-testid=composer-input]');
    await box.pressSequentially('almost', { delay: 30 });
    await until('alice to see bob typing', async () => /bob is typing/.test(await typing.textContent()));
    assert.equal(await bob.page.locator('[data-testid=typing]').textContent(), '', 'not shown to the typist');
    await box.press('Enter');
    await alice.message('almost');
    await until('the indicator to clear', async () => (await typing.textContent()) === '');

    // Typing without sending: the indicator goes by itself once the event's expires_ms
    // (5 s on this server) pass. The page sends Typing at most every 2.5 s: wait that out.
    await sleep(2600);
    await box.pressSequentially('hmm', { delay: 30 });
    await until('alice to see bob typing again', async () => /bob is typing/.test(await typing.textContent()));
    const shownAt = Date.now();
    await until('the indicator to expire', async () => (await typing.textContent()) === '', 15_000);
    assert.ok(Date.now() - shownAt > 2000, 'shown for a few seconds, not dropped at once');
    await box.fill('');
  });

  step('scrolling up loads older pages and keeps the view steady', {}, async () => {
    const room = 'long-history';
    const texts = Array.from({ length: 120 }, (_, i) => `old ${String(i + 1).padStart(3, '0')}`);
    await createRoom(server.url, room);
    await postMessages(server.url, 'archivist', room, texts);
    await alice.goTo(room);
    await alice.message('old 120');
    const list = alice.page.locator('[data-testid=messages]');
    let count = (await alice.messages()).length;
    assert.ok(count < 120, `only the latest page at first, got ${count}`);
    while (count < 120) {
      // Scrolled to the top, the first row's place noted in the same script, before the
      // page that the scroll asks for can land.
      const anchor = await list.evaluate((el) => {
        el.scrollTop = 0;
        const row = el.querySelector('li[data-testid=message]');
        // The text, not the row: the day line above the first row moves to the new first.
        const text = row.querySelector('[data-testid=message-text]');
        const offset = text.getBoundingClientRect().top - el.getBoundingClientRect().top;
        el.dispatchEvent(new Event('scroll'));
        return { id: row.getAttribute('data-id'), offset };
      });
      await until('an older page', async () => (await alice.messages()).length > count);
      await sleep(300);
      const rows = await alice.messages();
      assert.ok(rows.findIndex((m) => m.id === anchor.id) > 0, 'older rows went above the anchor');
      // The row that was on top stays where it was on screen.
      const stayed = await list.evaluate((el, id) => {
        const row = el.querySelector(`li[data-id="${id}"] [data-testid=message-text]`);
        return row.getBoundingClientRect().top - el.getBoundingClientRect().top;
      }, anchor.id);
      assert.ok(Math.abs(stayed - anchor.offset) <= 2, `row ${anchor.id} moved from ${anchor.offset} to ${stayed}`);
      count = rows.length;
    }
    const shown = (await alice.messages()).map((m) => m.text);
    assert.deepEqual(shown, texts);
    await assertNoDuplicates();
    await alice.goTo('general');
  });

  step('a page whose session ended and whose name was taken meanwhile asks for a name, saying why', {}, async () => {
    const henry = await open('henry');
    try {
      await henry.join('henry');
      // The session ends behind the page's back (as if it idled out) and someone else
      // takes the name before the page's next call finds out.
      const token = await henry.page.evaluate(() => localStorage.getItem('chat.token'));
      assert.equal((await grpcWebCall(server.url, 'Leave', {}, token)).code, 0);
      assert.equal((await grpcWebCall(server.url, 'Join', { 1: 'henry' })).code, 0);
      const notice = henry.page.locator('[data-testid=name-notice]');
      await notice.waitFor();
      assert.match(await notice.textContent(), /henry/);
      assert.equal(await henry.page.locator('[data-testid=name-input]').inputValue(), 'henry');
      await henry.join('henry.2');
    } finally {
      await henry.close();
      people.splice(people.indexOf(henry), 1);
    }
  });

  step('registering keeps a name: no guest can take it, a wrong password is refused, the right one signs in', {}, async () => {
    const ivy = await open('ivy');
    const other = await open('ivy elsewhere');
    try {
      await ivy.register('ivy', IVY_PASSWORD);
      assert.equal(await ivy.page.locator('[data-testid=me-guest]').isVisible(), false, 'not a guest');
      const text = `from an account ${Date.now()}`;
      await ivy.sendOk(text);
      const row = await alice.message(text);
      assert.equal(await row.locator('[data-testid=message-guest]').count(), 0);
      // The page keeps the session's token, never the password.
      const stored = await ivy.page.evaluate(() => JSON.stringify({ ...localStorage }));
      assert.ok(stored.includes('chat.token') && !stored.includes(IVY_PASSWORD), stored);

      await other.submitPrompt('guest', 'ivy');
      assert.match(await other.promptError(), /ivy/);
      await other.submitPrompt('sign-in', 'ivy', 'not the password');
      assert.match(await other.promptError(), /wrong name or password/);
      // Each wrong password locks the account a while (1 s, then doubling): tried again
      // meanwhile, the page shows the server's refusal and counts the wait down on the
      // button. (A try slow enough to miss the lock earns a longer one.)
      const button = other.page.locator('[data-testid=name-submit]');
      await until('a try inside the lock', async () => {
        await other.submitPrompt('sign-in', 'ivy', 'still not the password');
        const said = await other.promptError();
        return /try again in/.test(said) && /Try again in \d+ s/.test(await button.textContent());
      });
      assert.ok(await button.isDisabled(), 'the button waits');
      await other.signIn('ivy', IVY_PASSWORD);
      await other.message(text);
      assert.equal(await other.page.locator('[data-testid=me-guest]').isVisible(), false);
    } finally {
      for (const p of [ivy, other]) {
        people.splice(people.indexOf(p), 1);
        await p.close();
      }
    }
  });

  step('an account changes its password and signs out everywhere, which ends its other pages too', {}, async () => {
    const kate = await open('kate');
    const elsewhere = await open('kate elsewhere');
    try {
      await kate.register('kate', 'first password 1');
      await elsewhere.signIn('kate', 'first password 1');

      await kate.page.locator('[data-testid=account-menu] summary').click();
      await kate.page.locator('[data-testid=old-password-input]').fill('first password 1');
      await kate.page.locator('[data-testid=new-password-input]').fill('second password 2');
      await kate.page.locator('[data-testid=change-password-submit]').click();
      await kate.page.locator('[data-testid=account-result]', { hasText: 'Password changed' }).waitFor();

      // This page goes back to the sign-in form and says what happened...
      await kate.page.locator('[data-testid=sign-out-everywhere]').click();
      await kate.page.locator('[data-testid=name-notice]', { hasText: /signed out everywhere/i }).waitFor();
      assert.equal(await kate.page.locator('[data-testid=name-input]').inputValue(), 'kate');
      assert.equal(await kate.page.locator('[data-testid=password-input]').inputValue(), '');
      // ...and the other page learns at its next call that its session ended too: the
      // sign-in form, the name prefilled, not a guest's name taken over.
      await elsewhere.page.locator('[data-testid=name-notice]').waitFor();
      assert.equal(await elsewhere.page.locator('[data-testid=name-input]').inputValue(), 'kate');
      await elsewhere.page.locator('[data-testid=password-input]').waitFor();
      assert.equal(await elsewhere.page.evaluate(() => localStorage.getItem('chat.token')), null);

      await elsewhere.submitPrompt('sign-in', 'kate', 'first password 1');
      assert.match(await elsewhere.promptError(), /wrong name or password|try again in/);
      await elsewhere.signIn('kate', 'second password 2');
    } finally {
      for (const p of [kate, elsewhere]) {
        people.splice(people.indexOf(p), 1);
        await p.close();
      }
    }
  });

  step('a registered name survives a server restart: still signed in after a reload, and no guest takes it', {}, async () => {
    const judy = await open('judy');
    const guest = await open('not judy');
    try {
      await judy.register('judy', 'judy password 1');
      const token = () => judy.page.evaluate(() => localStorage.getItem('chat.token'));
      const before = await token();
      await server.kill();
      await judy.waitForState('reconnecting');
      await server.start();
      await judy.waitForState('live', 3 * TIMEOUT);
      await judy.page.reload();
      await judy.page.locator('[data-testid=me]', { hasText: 'judy' }).waitFor();
      await judy.waitForState('live');
      // The same session, kept by the server across the restart: no new sign-in.
      assert.equal(await token(), before);
      assert.equal(await judy.page.locator('[data-testid=name-input]').count(), 0);
      assert.equal(await judy.page.locator('[data-testid=me-guest]').isVisible(), false);
      await judy.sendOk(`judy after the restart ${Date.now()}`);

      await guest.submitPrompt('guest', 'judy');
      assert.match(await guest.promptError(), /judy/);
    } finally {
      for (const p of [judy, guest]) {
        people.splice(people.indexOf(p), 1);
        await p.close();
      }
    }
    // The guests' pages came back by themselves, for the steps after this one.
    await Promise.all([alice.waitForState('live', 3 * TIMEOUT), bob.waitForState('live', 3 * TIMEOUT)]);
  });

  step('a message whose answer was lost is sent again by itself and posted exactly once', {}, async () => {
    const proxy = new FreezingProxy(server.port);
    await proxy.start();
    const lena = await open('lena', proxy.url);
    try {
      await lena.join('lena');
      // The request reaches the server, which stores the message; the answer never
      // comes back, so the page cannot know it was posted.
      proxy.loseAnswers(true);
      const text = `answer lost ${Date.now()}`;
      await lena.send(text);
      await alice.message(text);
      const error = lena.page.locator('[data-testid=composer-error]');
      await until('lena to say the message is not sent yet', async () =>
        /Not sent yet/.test((await error.allTextContents()).join('')));
      const box = lena.page.locator('[data-testid=composer-input]');
      assert.equal(await box.inputValue(), text, 'the text waits in the box');

      // The page keeps trying with the same message id; the server answers the next try
      // with the message it already has.
      proxy.loseAnswers(false);
      await until('the composer to clear once a try got through', async () => (await box.inputValue()) === '', 2 * TIMEOUT);
      await lena.waitForState('live', 2 * TIMEOUT);
      await lena.message(text);
      // A second copy would have been posted before this one.
      const marker = `after the lost answer ${Date.now()}`;
      await alice.sendOk(marker);
      for (const p of [alice, lena]) {
        await p.message(marker);
        const copies = (await p.messages()).filter((m) => m.text === text).length;
        assert.equal(copies, 1, `${p.name} shows the message ${copies} times`);
      }
    } finally {
      people.splice(people.indexOf(lena), 1);
      await lena.close();
      await proxy.stop();
    }
  });

  step('no page threw (a Rust panic shows up as a page error)', {}, async () => {
    for (const p of people) {
      const errors = p.console.filter((line) => line.startsWith('pageerror') || line.includes('panicked'));
      assert.deepEqual(errors, [], `${p.name}'s page reported errors`);
    }
  });

  step('no page met a Content-Security-Policy violation', {}, async () => {
    for (const p of everyone) assert.deepEqual(p.cspViolations, [], `${p.name}'s page was refused something`);
  });
});
