// The first visit before the wasm has arrived: index.html's static prompt is on screen
// and typeable while the wasm download is held back (page.route), its tabs work, a name
// submitted meanwhile is sent once the wasm is let through, and the app's prompt that
// replaces it says the same things (index.html keeps name_prompt.rs's texts). Run after
// `cargo build` and `trunk build --release`.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  Person, TIMEOUT, startServerAndBrowser, until,
} from './harness.mjs';

/** Holds every request for the wasm until `release()`. */
async function holdWasm(context) {
  const held = [];
  let released = false;
  await context.route(/_bg\.wasm$/, (route) => (released ? route.continue() : held.push(route)));
  return {
    held,
    release: async () => {
      released = true;
      for (const route of held.splice(0)) await route.continue();
    },
  };
}

/** What the prompt shows in each mode: tab states, fields, button and hint. */
async function promptTexts(page) {
  const texts = {};
  for (const mode of ['sign-in', 'register', 'guest']) {
    await page.locator(`[data-testid=mode-${mode}]`).click();
    texts[mode] = await page.evaluate(() => {
      const visible = (el) => Boolean(el && el.offsetParent !== null);
      const form = document.querySelector('form.name-prompt');
      return {
        title: form.querySelector('h1').textContent,
        tabs: [...form.querySelectorAll('[role=tab]')].map((t) => `${t.textContent}:${t.getAttribute('aria-selected')}`),
        labels: [...form.querySelectorAll('label')].filter(visible).map((l) => l.textContent),
        password: visible(form.querySelector('[data-testid=password-input]')),
        button: form.querySelector('[data-testid=name-submit]').textContent,
        hint: form.querySelector('.hint').textContent,
      };
    });
  }
  return texts;
}

describe('the first visit, before the wasm arrives', { timeout: 6 * TIMEOUT }, () => {
  let server;
  let browser;
  const pages = [];

  before(async () => ({ server, browser } = await startServerAndBrowser()));

  after(async () => {
    for (const p of pages) await p.context.close();
    await browser?.close();
    await server?.stop();
  });

  it('the prompt is typeable at once, and a name submitted early gets through', async () => {
    const context = await browser.newContext();
    const wasm = await holdWasm(context);
    const page = await context.newPage();
    pages.push({ context });
    await page.goto(server.url);
    const input = page.locator('[data-testid=name-input]');
    await input.waitFor({ state: 'visible' });
    await until('the page to ask for the wasm', async () => wasm.held.length > 0);
    // Typed into and submitted while the wasm is still held: the static prompt.
    await input.pressSequentially('early');
    await page.locator('[data-testid=name-submit]').click();
    assert.equal(await page.locator('[data-testid=me]').count(), 0, 'the app cannot be there yet');
    assert.ok(await page.locator('[data-testid=name-submit]').isDisabled(), 'the button waits for the app');
    assert.ok(wasm.held.length > 0, 'the wasm is still held');

    await wasm.release();
    await page.locator('[data-testid=me]', { hasText: 'early' }).waitFor();
    await page.locator('[data-testid=connection][data-state=live]').waitFor();
    // Exactly one prompt ever on the page, and none now.
    assert.equal(await page.locator('#boot').count(), 0, 'the static page is gone');
    assert.equal(await page.locator('[data-testid=name-input]').count(), 0);
  });

  it('typing goes on across the takeover, in the mode chosen before it', async () => {
    const context = await browser.newContext();
    const wasm = await holdWasm(context);
    const page = await context.newPage();
    pages.push({ context });
    await page.goto(server.url);
    await page.locator('[data-testid=mode-register]').click();
    await page.locator('[data-testid=name-input]').fill('keep');
    const password = page.locator('[data-testid=password-input]');
    await password.fill('typed before the');
    await until('the page to ask for the wasm', async () => wasm.held.length > 0);
    await wasm.release();
    await until('the app to take the prompt over', async () => (await page.locator('#boot').count()) === 0);
    // Same field focused, same caret: the rest of the password lands after what was there.
    await page.keyboard.type(' app came');
    assert.equal(await password.inputValue(), 'typed before the app came');
    assert.equal(await page.locator('[data-testid=name-input]').inputValue(), 'keep');
    assert.equal(await page.locator('[data-testid=mode-register]').getAttribute('aria-selected'), 'true');
    await page.locator('[data-testid=name-submit]').click();
    await page.locator('[data-testid=me]', { hasText: 'keep' }).waitFor();
  });

  it('the static prompt says what the app\'s prompt says, in every mode', async () => {
    const context = await browser.newContext();
    const wasm = await holdWasm(context);
    const page = await context.newPage();
    pages.push({ context });
    await page.goto(server.url);
    await until('the page to ask for the wasm', async () => wasm.held.length > 0);
    const early = await promptTexts(page);
    await wasm.release();
    await until('the app to take the prompt over', async () => (await page.locator('#boot').count()) === 0);
    assert.deepEqual(await promptTexts(page), early);
  });

  it('a returning visitor sees the frame, not the prompt, until the app is in the room', async () => {
    const ann = await Person.open(browser, server.url);
    pages.push(ann);
    await ann.join('ann');
    const wasm = await holdWasm(ann.context);
    // No service worker in the way of the route: the wasm comes from the network.
    await ann.page.evaluate(async () => {
      for (const r of await navigator.serviceWorker.getRegistrations()) await r.unregister();
    });
    await ann.page.reload();
    await until('the page to ask for the wasm', async () => wasm.held.length > 0);
    assert.ok(await ann.page.locator('.boot-frame').isVisible(), 'the frame is shown');
    assert.ok(!(await ann.page.locator('#boot-prompt').isVisible()), 'no prompt for a saved session');
    await wasm.release();
    await ann.waitForState('live');
    assert.equal(await ann.page.locator('#boot').count(), 0);
    assert.deepEqual(ann.cspViolations, []);
  });
});
