// Conversations in the browser: an edit and a delete seen live on another page, a reply
// whose quote jumps to an original beyond the loaded history, and a reaction toggled
// from two pages. Run after `cargo build` and `trunk build --release`:
//   node --test frontend/e2e/conversations.test.mjs
//
// Test hooks (data-testid) on a message row, beside chat.test.mjs's:
//   message-edit, message-delete, message-react,   its buttons (edit and delete only on
//   message-reply                                  the reader's own, an account's)
//   message-editor                                 the inline editor (Enter saves, Esc cancels)
//   message-edited [title]                         the "(edited)" mark; the time on hover
//   message-deleted                                "message deleted", in place of the text
//   message-quote                                  the quoted line of a reply's original
//   react-pick; reaction [title]                   the picker's emoji; a reaction chip
//                                                  ("EMOJI COUNT", who on hover)
//   composer-reply; action-error                   "Replying to ..."; a refused change
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import {
  Person, TIMEOUT, postMessages, reportingStep, startServerAndBrowser, stopAll, until,
} from './harness.mjs';

describe('conversations in the browser', { timeout: 10 * TIMEOUT }, () => {
  let server;
  let browser;
  let ann;
  let ben;
  const people = [];
  const step = reportingStep(() => ({ server, people }));

  const open = async (name) => {
    const person = await Person.open(browser, server.url);
    person.name = name;
    people.push(person);
    return person;
  };
  const row = (p, id) => p.page.locator(`li[data-testid=message][data-id="${id}"]`);

  before(async () => ({ server, browser } = await startServerAndBrowser()));
  after(() => stopAll({ people, browser, server }));

  step('an edit and a delete by the author reach another page live', {}, async () => {
    ann = await open('ann');
    await ann.register('ann', 'ann password 1');
    ben = await open('ben');
    await ben.register('ben', 'ben password 1');
    await ann.sendOk('helo wrld');
    const id = await (await ben.message('helo wrld')).getAttribute('data-id');
    // Only the author gets edit and delete.
    assert.equal(await row(ben, id).locator('[data-testid=message-edit]').count(), 0);
    assert.equal(await row(ann, id).locator('[data-testid=message-edit]').count(), 1);

    // Escape cancels an edit; Enter saves one.
    await row(ann, id).locator('[data-testid=message-edit]').click();
    const editor = ann.page.locator('[data-testid=message-editor]');
    await editor.fill('never sent');
    await editor.press('Escape');
    await editor.waitFor({ state: 'detached' });
    await row(ann, id).locator('[data-testid=message-edit]').click();
    await editor.fill('hello world');
    await editor.press('Enter');
    const mark = row(ben, id).locator('[data-testid=message-edited]');
    await mark.waitFor();
    assert.match(await row(ben, id).locator('[data-testid=message-text]').textContent(), /^hello world/);
    assert.match(await mark.getAttribute('title'), /\d/, 'the edit time on hover');

    // Deleting asks first; a dismissed question deletes nothing.
    await row(ann, id).locator('[data-testid=message-delete]').click();
    await until('the confirmation', async () => ann.dialogs.some((d) => /Delete this message/.test(d)));
    assert.equal(await row(ben, id).locator('[data-testid=message-deleted]').count(), 0);
    await ann.page.evaluate(() => { window.confirm = () => true; });
    await row(ann, id).locator('[data-testid=message-delete]').click();
    await row(ben, id).locator('[data-testid=message-deleted]').waitFor();
    assert.equal(await row(ben, id).textContent().then((t) => t.includes('hello world')), false);
    // A reload reads it from History the same way.
    await ben.page.reload();
    await ben.waitForState('live');
    await row(ben, id).locator('[data-testid=message-deleted]').waitFor();
  });

  step('a reply quotes its original and a click jumps to it, paging older history in', {}, async () => {
    await ann.sendOk('lunch at noon?');
    const original = await (await ann.message('lunch at noon?')).getAttribute('data-id');
    // Pushes the original beyond the first page a fresh page loads.
    await postMessages(server.url, 'filler', 'general', Array.from({ length: 70 }, (_, i) => `filler ${i}`));
    await ann.message('filler 69');
    await row(ann, original).locator('[data-testid=message-reply]').click();
    await ann.page.locator('[data-testid=composer-reply]', { hasText: 'lunch at noon?' }).waitFor();
    await ann.sendOk('yes, at noon');
    await ann.page.locator('[data-testid=composer-reply]').waitFor({ state: 'hidden' });

    const cy = await open('cy');
    await cy.join('cy');
    const reply = await cy.message('yes, at noon');
    assert.equal(await row(cy, original).count(), 0, 'the original is not loaded yet');
    await reply.locator('[data-testid=message-quote]', { hasText: 'ann: lunch at noon?' }).click();
    await row(cy, original).locator('[data-testid=message-text]', { hasText: 'lunch at noon?' }).waitFor();
    await until('the original in view', async () => row(cy, original).isVisible()
      && (await row(cy, original).getAttribute('class')).includes('found'));

    // Its deletion shows in the quote too.
    await ann.page.evaluate(() => { window.confirm = () => true; });
    await row(ann, original).locator('[data-testid=message-delete]').click();
    await reply.locator('[data-testid=message-quote]', { hasText: 'original deleted' }).waitFor();
  });

  step('a reaction toggled from two pages shows counts and who, live', {}, async () => {
    await ann.sendOk('react to me');
    const id = await (await ben.message('react to me')).getAttribute('data-id');
    await row(ben, id).locator('[data-testid=message-react]').click();
    await row(ben, id).locator('[data-testid=react-pick]', { hasText: '👍' }).click();
    const annChip = row(ann, id).locator('[data-testid=reaction]', { hasText: '👍' });
    await until('ann to see ben\'s 👍', async () => (await annChip.textContent()) === '👍 1');
    assert.equal(await annChip.getAttribute('title'), 'ben');
    await annChip.click();
    const benChip = row(ben, id).locator('[data-testid=reaction]', { hasText: '👍' });
    await until('ben to see two', async () => (await benChip.textContent()) === '👍 2');
    assert.equal(await benChip.getAttribute('title'), 'ben, ann');
    await benChip.click();
    await until('ann to see ben take it back', async () => (await annChip.textContent()) === '👍 1'
      && (await annChip.getAttribute('title')) === 'ann');
  });
});
