// Direct messages in the browser: alice starts one with bob by clicking his name, they
// talk live, bob sees it counted as unread before he opens it, and carol (a third page)
// sees nothing of it anywhere, her `@bob` being her own conversation; with bob's tab
// hidden a direct message raises a notification and counts in the title, whether its
// conversation is on screen or not (Chromium grants the permission; the tab is hidden by
// harness.mjs's setHidden); a guest's name cannot be messaged, and the page says
// why. Run after `cargo build` and
// `trunk build --release`:
//   node --test frontend/e2e/direct.test.mjs
//
// Test hooks (data-testid), beside chat.test.mjs's:
//   conversations                 the list of the person's conversations; each entry is a
//                                 `room` item with data-room="@peer" and its `unread` badge
//   member > a                    a person's name, a link opening the conversation with them
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import {
  Person, TIMEOUT, notifications, recordNotifications, reportingStep, setHidden,
  startServerAndBrowser, stopAll, until,
} from './harness.mjs';

describe('direct messages in the browser', { timeout: 10 * TIMEOUT }, () => {
  let server;
  let browser;
  let alice;
  let bob;
  const people = [];
  const step = reportingStep(() => ({ server, people }));

  /** A person; `notes`: Chromium allows notifications and the page records them. */
  const open = async (name, { notes = false } = {}) => {
    const person = await Person.open(browser, server.url, notes ? { bypassCSP: true } : {});
    person.name = name;
    people.push(person);
    if (notes) {
      await person.context.grantPermissions(['notifications'], { origin: server.url });
      await person.context.addInitScript(recordNotifications);
      await person.page.reload();
    }
    return person;
  };
  const conversations = (p) => p.page.locator('[data-testid=conversations] [data-testid=room]');
  const title = (p, text) => p.page.locator('[data-testid=room-title]', { hasText: text }).waitFor();
  const texts = async (p) => (await p.messages()).map((m) => m.text);

  before(async () => ({ server, browser } = await startServerAndBrowser()));
  after(() => stopAll({ people, browser, server }));

  step('alice clicks bob, they talk live, and bob sees it unread first', {}, async () => {
    alice = await open('alice');
    await alice.register('alice', 'alice password 1');
    bob = await open('bob', { notes: true });
    await bob.register('bob', 'bob password 1');
    // Both in general: alice's member list has bob, as a link; her own name is not one.
    const bobInList = alice.page.locator('[data-testid=member][data-name=bob] a');
    await bobInList.waitFor();
    assert.equal(await alice.page.locator('[data-testid=member][data-name=alice] a').count(), 0);
    await bobInList.click();
    await title(alice, '@bob');
    await alice.waitForState('live');
    await alice.sendOk('just between us');
    await alice.message('just between us');

    // Bob, still in general, gets the conversation listed with its count by the next poll.
    const fromAlice = bob.page.locator('[data-testid=conversations] [data-room="@alice"]');
    await fromAlice.waitFor();
    await until('bob\'s unread count for alice', async () => (await bob.unread('@alice')) === '1');
    assert.ok(!(await texts(bob)).includes('just between us'), 'general shows none of it');

    await fromAlice.locator('a').click();
    await title(bob, '@alice');
    await bob.waitForState('live');
    await bob.message('just between us');
    await bob.sendOk('hi alice');
    await alice.message('hi alice');
    await alice.sendOk('live both ways');
    await bob.message('live both ways');
    await until('read once open', async () => (await bob.unread('@alice')) === '');
  });

  step('while hidden, a direct message notifies and counts in the title', {}, async () => {
    const toggle = bob.page.locator('[data-testid=notify-toggle]');
    await toggle.click();
    await until('notifications on', async () => (await toggle.getAttribute('aria-pressed')) === 'true');
    // Elsewhere: the room list's poll sees the conversation's count grow.
    await bob.goTo('general');
    await setHidden(bob, true);
    await alice.sendOk('ping while away');
    await until('the title to count it', async () => (await bob.page.title()) === '(1) Chat').catch(async (e) => {
      throw new Error(`${e.message}: title ${await bob.page.title()}, unread ${await bob.unread('@alice')}`);
    });
    await until('the notification', async () => (await notifications(bob)).length === 1);
    assert.deepEqual(await notifications(bob), [{ title: 'New message from alice', body: '' }]);
    assert.equal(await bob.page.title(), '(1) Chat');
    await setHidden(bob, false);
    await until('the title back', async () => (await bob.page.title()) === 'Chat');

    // On screen: the message itself, with its text.
    await bob.page.locator('[data-testid=conversations] [data-room="@alice"] a').click();
    await title(bob, '@alice');
    await bob.waitForState('live');
    await bob.message('ping while away');
    await setHidden(bob, true);
    await alice.sendOk('and on screen');
    await until('the second notification', async () => (await notifications(bob)).length === 2);
    assert.deepEqual((await notifications(bob))[1], { title: 'alice in @alice', body: 'and on screen' });
    assert.equal(await bob.page.title(), '(1) Chat');
    await setHidden(bob, false);
  });

  step('carol sees nothing of it, and her @bob is her own', {}, async () => {
    const carol = await open('carol');
    await carol.register('carol', 'carol password 1');
    await carol.waitForState('live');
    // Two polls of the room list later, still nothing of theirs.
    await new Promise((resolve) => setTimeout(resolve, 7000));
    assert.equal(await conversations(carol).count(), 0);
    const listed = await carol.page.$$eval('[data-testid=room]', (items) => items.map((li) => li.getAttribute('data-room')));
    assert.ok(listed.every((room) => !room.startsWith('@')), `carol's list: ${listed}`);
    assert.ok(!(await texts(carol)).some((t) => /between us|alice|both ways/.test(t)));

    await carol.page.evaluate(() => { window.location.hash = '@bob'; });
    await title(carol, '@bob');
    await carol.waitForState('live');
    assert.deepEqual(await texts(carol), []);
    await carol.sendOk('carol to bob');
    await carol.message('carol to bob');
    // Bob now has two conversations, alice's none of carol's.
    await bob.page.locator('[data-testid=conversations] [data-room="@carol"]').waitFor();
    assert.equal(await conversations(alice).count(), 1);
    assert.ok(!(await texts(alice)).includes('carol to bob'));
  });

  step('a guest cannot be messaged, and the page says why', {}, async () => {
    const gus = await open('gus');
    await gus.join('gus');
    await alice.goTo('general');
    const gusInList = alice.page.locator('[data-testid=member][data-name=gus] a');
    await gusInList.waitFor();
    await gusInList.click();
    await title(alice, '@gus');
    const error = alice.page.locator('[data-testid=room-error]');
    await error.waitFor();
    assert.match(await error.textContent(), /only registered accounts/);
  });
});
