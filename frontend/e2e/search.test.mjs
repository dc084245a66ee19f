// Search in the browser: in a room of 600 messages, a search finds one 500 back, its words
// marked; opening it (from the keyboard) shows it in place with its neighbours, paging the
// history in; a common word pages with "More", newest first; a query with no word is
// refused in words; axe-core finds nothing serious with results on screen. Run after
// `cargo build` and `trunk build --release`:  node --test frontend/e2e/search.test.mjs
//
// Test hooks (data-testid): search (the form), search-query, search-go, search-results,
// search-status, search-hit [data-id] (one per hit, a button), search-more, search-error.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import {
  ChatServer, Person, TIMEOUT, assertAccessible, createRoom, freePort, launchBrowser, postMessages, reportingStep,
  until,
} from './harness.mjs';

const COUNT = 600;
const NEEDLE = 99; // 500 from the newest

describe('search in the browser', { timeout: 10 * TIMEOUT }, () => {
  let server;
  let browser;
  let sam;
  const people = [];
  const step = (name, fn) => reportingStep(() => ({ server, people }))(name, {}, fn);
  const row = (p, id) => p.page.locator(`li[data-testid=message][data-id="${id}"]`);
  const hits = (p) => p.page.locator('[data-testid=search-hit]');
  const search = async (p, words) => {
    await p.page.locator('[data-testid=search-query]').fill(words);
    await p.page.locator('[data-testid=search-query]').press('Enter');
  };
  const settled = (p) => until('the search to finish', async () => !/Searching/.test(
    await p.page.locator('[data-testid=search-status]').textContent(),
  ));

  before(async () => {
    // The room is filled by one address without a token: its allowance is lifted.
    server = new ChatServer(await freePort(), ['--max-messages-per-sec', '0']);
    await server.start();
    browser = await launchBrowser();
    await createRoom(server.url, 'archive');
    const texts = Array.from({ length: COUNT }, (_, i) => (i === NEEDLE
      ? 'the lighthouse keeper wrote it down'
      : `entry ${i} of the archive`));
    await postMessages(server.url, 'clerk', 'archive', texts);
  });

  after(async () => {
    for (const p of people) await p.close();
    await browser?.close().catch(() => {});
    await server?.stop();
  });

  step('a search finds a message 500 back and opens the room there, with its neighbours', async () => {
    // axe is injected as an inline script, which the page's CSP rightly refuses.
    sam = await Person.open(browser, server.url, { bypassCSP: true });
    sam.name = 'sam';
    people.push(sam);
    await sam.join('sam');
    await sam.goTo('archive');
    await sam.message(`entry ${COUNT - 1} of the archive`);
    const label = await sam.page.locator('label[for=search-query]').textContent();
    assert.equal(label, 'Search #archive');

    await search(sam, 'Keeper LIGHTHOUSE');
    await until('one hit', async () => (await hits(sam).count()) === 1);
    const hit = hits(sam).first();
    const id = await hit.getAttribute('data-id');
    assert.deepEqual(await hit.locator('mark').allTextContents(), ['lighthouse', 'keeper']);
    assert.match(await hit.textContent(), /the lighthouse keeper wrote it down/);
    assert.equal(await sam.page.locator('[data-testid=search-status]').textContent(), '1 message found');
    assert.equal(await row(sam, id).count(), 0, 'not loaded yet: it is 500 back');
    await assertAccessible(sam, 'search results');

    // From the keyboard: the hit is a button.
    await hit.focus();
    await sam.page.keyboard.press('Enter');
    await row(sam, id).locator('[data-testid=message-text]', { hasText: 'lighthouse keeper' }).waitFor();
    await until('the message in view, marked', async () => (await row(sam, id).isVisible())
      && (await row(sam, id).getAttribute('class')).includes('found'));
    const n = Number(id);
    for (const [neighbour, text] of [[n - 1, `entry ${NEEDLE - 1} `], [n + 1, `entry ${NEEDLE + 1} `]]) {
      assert.match(await row(sam, neighbour).locator('[data-testid=message-text]').textContent(), new RegExp(text));
    }
  });

  step('a common word pages with More, newest first; a query with no word is refused', async () => {
    await search(sam, 'archive');
    await settled(sam);
    await until('a first page', async () => (await hits(sam).count()) === 20);
    assert.equal(await sam.page.locator('[data-testid=search-status]').textContent(), '20+ messages found');
    await sam.page.locator('[data-testid=search-more]').click();
    await until('a second page', async () => (await hits(sam).count()) === 40);
    const ids = (await hits(sam).evaluateAll((els) => els.map((e) => Number(e.dataset.id))));
    assert.deepEqual(ids, [...ids].sort((a, b) => b - a), 'newest first');
    assert.equal(new Set(ids).size, 40, 'no hit twice');
    assert.match(await hits(sam).first().textContent(), new RegExp(`entry ${COUNT - 1} of the archive`));

    await search(sam, '?!');
    const error = sam.page.locator('[data-testid=search-error]');
    await error.waitFor();
    assert.match(await error.textContent(), /at least one word/);

    // Escape clears the search.
    await sam.page.locator('[data-testid=search-query]').press('Escape');
    await sam.page.locator('[data-testid=search-results]').waitFor({ state: 'hidden' });
  });
});
