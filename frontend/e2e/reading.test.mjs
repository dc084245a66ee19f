// Reading and access, in headless Chromium against a real chat-server: links and the small
// Markdown subset, grouping, day lines, the "new messages" line and the jump button, the
// polite live region, the whole flow from the keyboard alone, and axe-core on every
// screen, light and dark, with no serious or critical finding. Run after `cargo build` and
// `trunk build --release`:  node --test frontend/e2e/reading.test.mjs
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import {
  Person, TIMEOUT, assertAccessible, createRoom, postMessages, reportingStep,
  startServerAndBrowser, stopAll, until,
} from './harness.mjs';

const DAY_MS = 24 * 60 * 60 * 1000;

const MARKDOWN = 'see https://example.com/a_b?q=1. not javascript:alert(1) nor <b>x</b>: **bold** _italic_ `code`';
const MARKDOWN_SHOWN = 'see https://example.com/a_b?q=1. not javascript:alert(1) nor <b>x</b>: bold italic code';

describe('reading and access', { timeout: 20 * TIMEOUT }, () => {
  let server;
  let browser;
  const people = [];

  const step = (name, fn) => reportingStep(() => ({ server, people }))(name, {}, fn);

  const open = async (name, options = {}) => {
    const person = await Person.open(browser, server.url, options);
    person.name = name;
    people.push(person);
    return person;
  };

  /** The rows of the room on screen: text, whether it heads a run, and the lines above it. */
  const rows = (p) => p.page.$$eval('li[data-testid=message]', (items) => items.map((li) => ({
    text: li.querySelector('[data-testid=message-text]').textContent,
    head: li.querySelector('[data-testid=message-user]') !== null,
    day: li.querySelector('[data-testid=day]')?.textContent ?? null,
    newLine: li.querySelector('[data-testid=new-messages]') !== null,
  })));

  const scrollToTop = (p) => p.page.locator('[data-testid=messages]').evaluate((el) => {
    el.scrollTop = 0;
    el.dispatchEvent(new Event('scroll'));
  });

  const atNewest = (p) => p.page.locator('[data-testid=messages]')
    .evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight <= 2);

  before(async () => {
    ({ server, browser } = await startServerAndBrowser());
    for (const room of ['reading', 'group', 'paging', 'scroll', 'keys']) await createRoom(server.url, room);
  });
  after(() => stopAll({ people, browser, server }));

  step('http(s) links become links, other schemes and markup stay text, and the Markdown subset is elements', async () => {
    await postMessages(server.url, 'grace', 'reading', [MARKDOWN, 'javascript:alert(document.cookie)']);
    const reader = await open('reader');
    await reader.join('reader');
    await reader.goTo('reading');
    const row = await reader.message(MARKDOWN_SHOWN);
    const text = row.locator('[data-testid=message-text]');
    assert.equal(await text.textContent(), MARKDOWN_SHOWN);
    const link = text.locator('a');
    assert.equal(await link.count(), 1, 'only the https URL is a link');
    assert.equal(await link.getAttribute('href'), 'https://example.com/a_b?q=1');
    assert.equal(await link.getAttribute('target'), '_blank');
    assert.equal(await link.getAttribute('rel'), 'noopener noreferrer nofollow');
    assert.equal(await text.locator('strong').textContent(), 'bold');
    assert.equal(await text.locator('em').textContent(), 'italic');
    assert.equal(await text.locator('code').textContent(), 'code');
    assert.equal(await text.locator('b').count(), 0, 'HTML in a message is text');
    const plain = await reader.message('javascript:alert(document.cookie)');
    assert.equal(await plain.locator('a').count(), 0);
    assert.equal(await reader.page.locator('a[href^="javascript" i]').count(), 0);
  });

  step('one sender\'s run within minutes shows name and time once, under a day line', async () => {
    await postMessages(server.url, 'ann', 'group', ['ann 1', 'ann 2', 'ann 3']);
    await postMessages(server.url, 'ben', 'group', ['ben 1']);
    await postMessages(server.url, 'ann', 'group', ['ann 4']);
    const reader = await open('grouper');
    await reader.join('grouper');
    await reader.goTo('group');
    await reader.message('ann 4');
    assert.deepEqual((await rows(reader)).map((r) => [r.text, r.head, r.day]), [
      ['ann 1', true, 'Today'],
      ['ann 2', false, null],
      ['ann 3', false, null],
      ['ben 1', true, null],
      ['ann 4', true, null],
    ]);
    // A run's later messages still give their exact time on hover.
    const second = await reader.message('ann 2');
    assert.match(await second.locator('.bubble').getAttribute('title'), /\d\d?:\d\d/);
  });

  step('day lines say Yesterday and then the date, by the reader\'s clock', async () => {
    for (const [days, expected] of [[1, /^Yesterday$/], [3, /^(?!Today|Yesterday).*\d/]]) {
      const later = await open(`later by ${days} days`);
      // Date alone is moved; timers run as usual.
      await later.page.clock.setFixedTime(Date.now() + days * DAY_MS);
      await later.page.reload();
      await later.join(`later${days}`);
      await later.goTo('group');
      await later.message('ann 4');
      const days_ = (await rows(later)).map((r) => r.day).filter((d) => d !== null);
      assert.equal(days_.length, 1, `one day line: ${days_}`);
      assert.match(days_[0], expected);
      // Not recent any more by that clock: the time of day, not "N min ago".
      assert.match(await later.page.locator('[data-testid=message-time]').first().textContent(), /^\d\d:\d\d$/);
      people.splice(people.indexOf(later), 1);
      await later.close();
    }
  });

  step('a page of older messages merged above continues the run it meets', async () => {
    const texts = Array.from({ length: 60 }, (_, i) => `p ${String(i + 1).padStart(2, '0')}`);
    // At most ten per call keep one sender (postMessages spreads bigger batches over names).
    for (let i = 0; i < texts.length; i += 10) await postMessages(server.url, 'paul', 'paging', texts.slice(i, i + 10));
    const reader = await open('pager');
    await reader.join('pager');
    await reader.goTo('paging');
    await reader.message('p 60');
    let shown = await rows(reader);
    assert.ok(shown.length < 60, 'the latest page first');
    assert.deepEqual(shown.filter((r) => r.head).map((r) => r.text), [shown[0].text]);
    await scrollToTop(reader);
    await until('the older page', async () => (await rows(reader)).length === 60);
    shown = await rows(reader);
    assert.deepEqual(shown.map((r) => r.text), texts);
    assert.deepEqual(shown.filter((r) => r.head).map((r) => r.text), ['p 01'], 'one run, one heading');
    assert.deepEqual(shown.filter((r) => r.day).map((r) => r.text), ['p 01'], 'one day line, at the top');
  });

  step('scrolled up: a jump button counts what came, a line marks where it starts, the live region says it', async () => {
    await postMessages(server.url, 'sam', 'scroll', Array.from({ length: 40 }, (_, i) => `s ${i + 1}\nline two`));
    const reader = await open('scroller');
    await reader.join('scroller');
    await reader.goTo('scroll');
    await reader.message('s 40');
    const jump = reader.page.locator('[data-testid=jump]');
    const announcer = reader.page.locator('[data-testid=announcer]');
    assert.ok(await jump.isHidden(), 'no button at the bottom');
    assert.equal(await announcer.textContent(), '', 'history is not read out');
    assert.equal((await rows(reader)).filter((r) => r.newLine).length, 0);

    await scrollToTop(reader);
    await jump.waitFor({ state: 'visible' });
    assert.equal(await reader.page.locator('[data-testid=jump-count]').textContent(), '');
    await postMessages(server.url, 'tom', 'scroll', ['t 1', 't 2', 't 3']);
    await until('the count of unseen messages', async () =>
      (await reader.page.locator('[data-testid=jump-count]').textContent()) === '3 new');
    const marked = (await rows(reader)).filter((r) => r.newLine).map((r) => r.text);
    assert.deepEqual(marked, ['t 1'], 'the line is above the first that came unseen');
    assert.equal(await announcer.textContent(), 'tom: t 3');
    assert.equal(await reader.page.locator('[data-testid=messages]').evaluate((el) => el.scrollTop), 0, 'not pulled down');

    await jump.click();
    await jump.waitFor({ state: 'hidden' });
    assert.ok(await atNewest(reader), 'the jump went to the newest');
    // The reader's own message is not announced back to them, and is shown even when the
    // reader had scrolled up.
    await scrollToTop(reader);
    await jump.waitFor({ state: 'visible' });
    await reader.sendOk('mine');
    await reader.message('mine');
    await jump.waitFor({ state: 'hidden' });
    assert.ok(await atNewest(reader), 'scrolled to the own message');
    assert.ok(!(await announcer.textContent()).includes('mine'), 'own message announced');

    // Away from the room while two more come, then back: the line is above them.
    await reader.goTo('general');
    await postMessages(server.url, 'tom', 'scroll', ['while away 1', 'while away 2']);
    await until('the unread badge', async () => (await reader.unread('scroll')) === '2');
    await reader.goTo('scroll');
    await reader.message('while away 2');
    assert.deepEqual((await rows(reader)).filter((r) => r.newLine).map((r) => r.text), ['while away 1']);
    assert.equal(await announcer.textContent(), '', 'coming back reads nothing out');
  });

  step('the whole flow works from the keyboard alone', async () => {
    const typist = await open('typist');
    const page = typist.page;
    const focused = () => page.evaluate(() => {
      const el = document.activeElement;
      return el?.dataset?.testid ?? el?.getAttribute('href') ?? el?.tagName;
    });
    /** Presses `key` until the focus is on `what` (a data-testid or an href). */
    const tabTo = async (what, key = 'Tab') => {
      for (let i = 0; i < 40; i += 1) {
        if ((await focused()) === what) return;
        await page.keyboard.press(key);
      }
      throw new Error(`${key} never reached ${what} (focus on ${await focused()})`);
    };
    await page.locator('[data-testid=name-input]').waitFor();
    await tabTo('name-input');
    await page.keyboard.type('typist');
    await page.keyboard.press('Enter');
    await typist.waitForState('live');
    // In the chat, the keyboard is where one writes.
    await until('the focus on the composer', async () => (await focused()) === 'composer-input');
    await page.keyboard.type('typed in general');
    await page.keyboard.press('Enter');
    await typist.message('typed in general');

    // To another room through the room list, and the focus comes back to the composer.
    await until('the room list to offer #keys', async () => (await typist.roomItem('keys').count()) > 0);
    await tabTo('#keys', 'Shift+Tab');
    await page.keyboard.press('Enter');
    await page.locator('[data-testid=room-title]', { hasText: '#keys' }).waitFor();
    await until('the focus on the composer', async () => (await focused()) === 'composer-input');
    await typist.waitForState('live');
    await page.keyboard.type('typed in keys');
    await page.keyboard.press('Enter');
    await typist.message('typed in keys');
    // The conversation itself takes the focus, so it scrolls from the keyboard.
    await tabTo('messages', 'Shift+Tab');
  });

  step('axe-core finds nothing serious or critical on any screen, light or dark, desktop or phone', async () => {
    // The checker is injected as an inline script, which the page's policy rightly refuses;
    // this context alone lets it in.
    for (const viewport of [{ width: 1280, height: 800 }, { width: 390, height: 800 }]) {
      const p = await open(`axe ${viewport.width}`, { bypassCSP: true, viewport });
      const name = `axe${viewport.width}`;
      await p.page.locator('[data-testid=name-input]').waitFor();
      await assertAccessible(p, 'the name prompt');
      await p.submitPrompt('guest', 'not a name!');
      await p.promptError();
      await assertAccessible(p, 'the name prompt with an error');
      await p.page.locator('[data-testid=mode-sign-in]').click();
      await assertAccessible(p, 'the sign-in form');

      await p.join(name);
      await p.goTo('reading');
      await p.message(MARKDOWN_SHOWN);
      await assertAccessible(p, 'a room with links and Markdown');
      await p.goTo('scroll');
      await p.message('while away 2');
      await scrollToTop(p);
      await p.page.locator('[data-testid=jump]').waitFor();
      await assertAccessible(p, 'a room scrolled up');

      await p.page.locator('[data-testid=new-room-input]').fill('two words');
      await p.page.locator('[data-testid=new-room-submit]').click();
      await p.page.locator('[data-testid=new-room-error]').waitFor();
      await assertAccessible(p, 'the room list with an error');
    }
  });

  step('no page threw', async () => {
    for (const p of people) {
      const errors = p.console.filter((line) => line.startsWith('pageerror') || line.includes('panicked'));
      assert.deepEqual(errors, [], `${p.name}'s page reported errors`);
    }
  });
});
