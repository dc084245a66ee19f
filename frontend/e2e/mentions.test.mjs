// Mentions and notifications in headless Chromium against a real chat-server: `@name`
// completion from the keyboard alone, a mention of the reader marked in the message, and
// while the tab is hidden a browser notification for a mention (Chromium grants the
// permission) and the unread count in the tab title, other rooms' included; the
// permission asked only on a click.
// axe-core checks the new parts, light and dark. Run after `cargo build` and
// `trunk build --release`:  node --test frontend/e2e/mentions.test.mjs
//
// Headless Chromium keeps every page visible whatever is in front (bringToFront, another
// page, a minimized window: none changes document.visibilityState), so the test hides a
// page the way the browser would tell it (harness.mjs's setHidden): `hidden` and
// `visibilityState` say so and a visibilitychange event fires.
//
// Test hooks (data-testid): notify-toggle [aria-pressed], notify-refused; mention-list,
// mention-option [aria-selected]; mention (the reader's name marked in a message).
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import {
  Person, TIMEOUT, assertAccessible, notifications, recordNotifications, reportingStep, setHidden,
  sleep, startServerAndBrowser, stopAll, until,
} from './harness.mjs';

describe('mentions and notifications', { timeout: 10 * TIMEOUT }, () => {
  let server;
  let browser;
  const people = [];
  const step = (name, fn) => reportingStep(() => ({ server, people }))(name, {}, fn);

  /** A person whose page records notifications; `grant`: Chromium allows them. */
  const open = async (name, { grant = false } = {}) => {
    const person = await Person.open(browser, server.url, { bypassCSP: true });
    person.name = name;
    people.push(person);
    if (grant) await person.context.grantPermissions(['notifications'], { origin: server.url });
    await person.context.addInitScript(recordNotifications);
    await person.page.reload();
    return person;
  };

  let ann;
  let bob;

  before(async () => ({ server, browser } = await startServerAndBrowser()));
  after(() => stopAll({ people, browser, server }));

  step('@ completes the names of the room from the keyboard alone', async () => {
    bob = await open('bob', { grant: true });
    await bob.join('bob');
    const bea = await open('bea');
    await bea.join('bea');
    ann = await open('ann');
    await ann.join('ann');
    await until('ann to see bea and bob here', async () => (await ann.members()).join() === 'ann,bea,bob');

    const box = ann.page.locator('[data-testid=composer-input]');
    const list = ann.page.locator('[data-testid=mention-list]');
    const options = ann.page.locator('[data-testid=mention-option]');
    await box.focus();
    await ann.page.keyboard.type('hi @B');
    await list.waitFor();
    assert.deepEqual(await options.allTextContents(), ['bea', 'bob'], 'matching names, not mine');
    assert.equal(await box.getAttribute('aria-controls'), 'mention-list');
    assert.equal(await box.getAttribute('aria-activedescendant'), 'mention-0');
    await assertAccessible(ann, 'the completion list');

    await ann.page.keyboard.press('ArrowDown');
    assert.equal(await box.getAttribute('aria-activedescendant'), 'mention-1');
    assert.equal(await options.nth(1).getAttribute('aria-selected'), 'true');
    await ann.page.keyboard.press('Enter');
    await list.waitFor({ state: 'hidden' });
    assert.equal(await box.inputValue(), 'hi @bob ', 'Enter takes the name, sends nothing');
    assert.equal(await box.getAttribute('aria-activedescendant'), null);

    // Escape closes without taking; Tab takes; typing goes on after the name.
    await ann.page.keyboard.type('and @b');
    await list.waitFor();
    await ann.page.keyboard.press('Escape');
    await list.waitFor({ state: 'hidden' });
    assert.equal(await box.inputValue(), 'hi @bob and @b');
    await ann.page.keyboard.type('e');
    await list.waitFor();
    assert.deepEqual(await options.allTextContents(), ['bea']);
    await ann.page.keyboard.press('Tab');
    await ann.page.keyboard.type('too');
    assert.equal(await box.inputValue(), 'hi @bob and @bea too');
    await ann.page.keyboard.press('Enter');
    await ann.message('hi @bob and @bea too');
    assert.equal(await box.inputValue(), '');

    // A click takes a name too.
    await ann.page.keyboard.type('@bo');
    await options.first().click();
    assert.equal(await box.inputValue(), '@bob ');
    await box.fill('');
  });

  step('permission is asked only on a click, and a refusal is said', async () => {
    const cy = await open('cy');
    await cy.join('cy');
    await sleep(500);
    assert.equal(await cy.page.evaluate(() => window.permissionAsks), 0, 'nothing asked on load');
    const toggle = cy.page.locator('[data-testid=notify-toggle]');
    assert.equal(await toggle.getAttribute('aria-pressed'), 'false');
    await toggle.click();
    // Not granted: headless Chromium answers the request with a refusal.
    await cy.page.locator('[data-testid=notify-refused]', { hasText: 'Not allowed' }).waitFor();
    assert.equal(await cy.page.evaluate(() => window.permissionAsks), 1);
    assert.equal(await toggle.getAttribute('aria-pressed'), 'false');
  });

  step('a mention while hidden raises a notification; the title counts what came', async () => {
    const toggle = bob.page.locator('[data-testid=notify-toggle]');
    await toggle.click();
    await until('notifications on', async () => (await toggle.getAttribute('aria-pressed')) === 'true');
    assert.equal(await bob.page.title(), 'Chat');

    await setHidden(bob, true);
    await ann.sendOk('nothing for bob here');
    await until('the title to count one', async () => (await bob.page.title()) === '(1) Chat');
    await ann.sendOk('`@bob` in code and https://x.org/@bob are not mentions');
    await ann.sendOk('look @Bob, this one is');
    await until('the title to count three', async () => (await bob.page.title()) === '(3) Chat');
    await until('the notification', async () => (await notifications(bob)).length === 1);
    assert.deepEqual(await notifications(bob), [{ title: 'ann in #general', body: 'look @Bob, this one is' }]);

    // Seen again: the count goes; the mention is marked, in the message and on its row.
    await setHidden(bob, false);
    await until('the title back', async () => (await bob.page.title()) === 'Chat');
    const row = await bob.message('look @Bob, this one is');
    assert.equal(await row.locator('[data-testid=mention]').textContent(), '@Bob');
    assert.match(await row.getAttribute('class'), /\bmention\b/);
    const inCode = await bob.message('in code and');
    assert.equal(await inCode.locator('[data-testid=mention]').count(), 0);
    assert.doesNotMatch(await inCode.getAttribute('class'), /\bmention\b/);
    assert.equal(await (await ann.message('look @Bob, this one is')).locator('[data-testid=mention]').count(), 0,
      'only bob sees his name marked');
    await assertAccessible(bob, 'a marked mention and the notify switch on');

    // A click on the notification brings the tab and shows the message.
    await bob.page.evaluate(() => window.notes[0].dispatchEvent(new Event('click')));
    await until('the message found', async () => (await row.getAttribute('class')).includes('found'));

    // While visible, nothing is raised or counted; the choice outlives a reload.
    await ann.sendOk('@bob again, seen');
    await bob.message('@bob again, seen');
    assert.equal((await notifications(bob)).length, 1);
    assert.equal(await bob.page.title(), 'Chat');
    await bob.page.reload();
    await bob.waitForState('live');
    assert.equal(await toggle.getAttribute('aria-pressed'), 'true');
    assert.equal(await bob.page.evaluate(() => window.permissionAsks), 0);
  });

  step('messages in another room count in the title while hidden, without a notification', async () => {
    await bob.message('@bob again, seen');
    await setHidden(bob, true);
    await ann.goTo('side');
    await ann.sendOk('@bob over here');
    await ann.sendOk('and here');
    // The room list's poll (every 3 s) sees the other room's unread count grow.
    await until('the title to count the other room', async () => (await bob.page.title()) === '(2) Chat');
    assert.deepEqual(await notifications(bob), [], 'no text to judge: no notification (none since the reload)');
    await setHidden(bob, false);
    await until('the title back', async () => (await bob.page.title()) === 'Chat');
    assert.equal(await bob.unread('side'), '2');
  });
});
