// Audience questions and reactions as a room meets them, in a real Chromium
// against a real server process: a follower asks from the follow page, the
// presenter's phone lists it (badge and panel), Show puts it on the slideshow
// and on every follower's screen, Dismiss takes it away; markup in a question
// stays text; reactions burst on the slideshow, capped under a flood; with
// questions off the follower is told and nothing arrives; and a reloaded
// presenter phone still has the list.
//
// Only 127.0.0.1 is ever opened: the QR codes carry the LAN address, which is
// swapped for loopback (toLoopback) before a page goes there, and every
// context records the hosts it contacts.
import { devices, expect, test, type Browser, type BrowserContextOptions, type Locator, type Page, type TestInfo } from '@playwright/test';
import { ClickerServer, closePages, LoopbackOnly, pixelsNear, readDeckQr, toLoopback, allowPhone } from './fixtures';

const phoneDevice = devices['Pixel 7'];
let server: ClickerServer;
const loopback = new LoopbackOnly();

test.afterEach(async ({ browser }) => {
  await closePages(browser);
  await server.stop();
  expect(loopback.off, 'every request went to 127.0.0.1').toEqual([]);
});

/** A fresh server per test; `env` raises the per-follower limits where a test is about something else. */
async function startServer(env: NodeJS.ProcessEnv = { QUESTIONS_PER_MINUTE: '100', REACTIONS_PER_10S: '1000' }): Promise<void> {
  loopback.reset();
  server = await ClickerServer.start([], env);
}


interface Talk {
  deck: Page;
  phone: Page;
  id: string;
  followUrl: string;
}

/** The slideshow on the laptop, the presenter's phone paired from its QR, and the follow URL it then offers. */
async function startTalk(browser: Browser): Promise<Talk> {
  const deck = await loopback.newPage(browser, { viewport: { width: 1280, height: 720 } });
  await deck.goto(`${server.base}/`);
  const qr = new URL(await readDeckQr(deck));
  const id = qr.pathname.split('/').pop() ?? '';
  const phone = await loopback.newPage(browser, { ...phoneDevice });
  await phone.goto(toLoopback(qr.toString()));
  await allowPhone(deck, phone);
  await expect(phone.locator('#conn')).toHaveAttribute('data-state', 'live');
  const box = deck.locator('[data-clicker-qr]');
  await expect(box).toHaveAttribute('data-kind', 'follow');
  const followUrl = (await box.getAttribute('data-url')) ?? '';
  expect(new URL(followUrl).pathname).toBe(`/f/${id}`);
  return { deck, phone, id, followUrl };
}

async function openFollower(browser: Browser, t: Talk, options: BrowserContextOptions = { ...phoneDevice }): Promise<Page> {
  const page = await loopback.newPage(browser, options);
  await page.goto(toLoopback(t.followUrl));
  await expect(page.locator('.clicker-status')).toContainText('Following the presenter');
  await expect(page.locator('.clicker-status')).toHaveAttribute('data-link', 'live');
  return page;
}

/** Opens the follow page's form. After a send it closes itself shortly: wait for that rather than race it. */
async function openForm(follower: Page): Promise<Locator> {
  const form = follower.getByRole('form', { name: 'Ask a question' });
  await expect(form).toBeHidden({ timeout: 5_000 });
  await follower.getByRole('button', { name: 'Ask a question' }).tap();
  await expect(form).toBeVisible();
  return form;
}

/** Asks from the follow page's form, and waits for the "sent" answer. */
async function ask(follower: Page, text: string): Promise<void> {
  const form = await openForm(follower);
  await form.getByRole('textbox').fill(text);
  await form.getByRole('button', { name: 'Send' }).tap();
  await expect(form.getByRole('status')).toHaveText(/Sent/);
}

function questionsButton(phone: Page): Locator {
  return phone.getByRole('button', { name: /^Questions/ });
}

async function openPanel(phone: Page): Promise<Locator> {
  await questionsButton(phone).tap();
  const panel = phone.getByRole('dialog', { name: 'Audience questions' });
  await expect(panel).toBeVisible();
  return panel;
}

const item = (panel: Locator, text: string) => panel.getByRole('listitem').filter({ hasText: text });

/** Methods and URLs of every request a page sends from now on. */
function recordRequests(page: Page): string[] {
  const seen: string[] = [];
  page.on('request', (req) => seen.push(`${req.method()} ${new URL(req.url()).pathname}`));
  return seen;
}

async function shot(page: Page, testInfo: TestInfo, name: string): Promise<void> {
  const body = await page.screenshot({ path: testInfo.outputPath(`${name}.png`) });
  await testInfo.attach(name, { body, contentType: 'image/png' });
}

test('a follower asks, the presenter sees it on the phone, shows it on the slideshow and dismisses it', async ({ browser }, testInfo) => {
  await startServer();
  const t = await startTalk(browser);
  const follower = await openFollower(browser, t);
  const sent = recordRequests(follower);
  const question = 'How does the pairing code stay secret?';

  // The bar: three reactions with names, and Ask.
  for (const name of ['Thumbs up', 'Applause', 'Question mark', 'Ask a question']) {
    await expect(follower.getByRole('button', { name, exact: true })).toBeVisible();
  }
  await follower.getByRole('button', { name: 'Ask a question' }).tap();
  const form = follower.getByRole('form', { name: 'Ask a question' });
  await expect(form).toBeVisible();
  await expect(follower.getByRole('button', { name: 'Ask a question' })).toHaveAttribute('aria-expanded', 'true');
  await expect(form.getByRole('textbox', { name: 'Ask the presenter' })).toBeFocused();
  await expect(form.locator('.clicker-ask-count')).toHaveText('0 / 280');
  await expect(form.getByRole('button', { name: 'Send' })).toBeDisabled();
  await form.getByRole('textbox').fill(question);
  await expect(form.locator('.clicker-ask-count')).toHaveText(`${question.length} / 280`);
  await shot(follower, testInfo, 'follow-ask-form');
  await form.getByRole('button', { name: 'Send' }).tap();
  await expect(form.getByRole('status')).toHaveText('Sent. The presenter will see your question.');
  await expect(form.getByRole('textbox')).toHaveValue('');

  // The presenter's phone: a badge, and the question in the panel.
  await expect(t.phone.locator('#questions-badge')).toHaveText('1');
  await expect(questionsButton(t.phone)).toHaveAccessibleName('Questions, 1 waiting');
  await shot(t.phone, testInfo, 'phone-questions-badge');
  const panel = await openPanel(t.phone);
  await expect(item(panel, question)).toHaveCount(1);
  await expect(item(panel, question).locator('.q-meta')).toContainText('Waiting');
  // Nothing is on the slideshow yet: a waiting question is the presenter's alone.
  await expect(t.deck.locator('[data-clicker-spotlight]')).toBeHidden();
  await expect(follower.locator('[data-clicker-spotlight]')).toBeHidden();

  await item(panel, question).getByRole('button', { name: 'Show' }).tap();
  const onDeck = t.deck.locator('[data-clicker-spotlight]');
  await expect(onDeck).toBeVisible();
  await expect(onDeck.locator('.clicker-spotlight-text')).toHaveText(question);
  await expect(onDeck).toContainText('Question from the audience');
  // Followers see it too (and the form closed itself after sending).
  await expect(follower.locator('[data-clicker-spotlight] .clicker-spotlight-text')).toHaveText(question);
  await expect(form).toBeHidden();
  await expect(item(panel, question).locator('.q-meta')).toContainText('On screen');
  await expect(t.phone.locator('#questions-badge')).toBeHidden();
  await shot(t.phone, testInfo, 'phone-questions-panel');
  await shot(follower, testInfo, 'follow-spotlight');

  // Dismiss: gone from every screen.
  await item(panel, question).getByRole('button', { name: 'Dismiss' }).tap();
  await expect(onDeck).toBeHidden();
  await expect(follower.locator('[data-clicker-spotlight]')).toBeHidden();
  await expect(item(panel, question).locator('.q-meta')).toContainText('Dismissed');

  // Follow mode wrote nothing but the question: never a command, a pairing or a state.
  const writes = sent.filter((r) => !/^(GET|HEAD) /.test(r));
  expect(writes).toEqual([`POST /api/channels/${t.id}/questions`]);
});

test('the longest question a follower may ask is shown whole on the slideshow', async ({ browser }, testInfo) => {
  await startServer();
  const t = await startTalk(browser);
  const follower = await openFollower(browser, t);
  const words = 'When the venue Wi-Fi drops for a minute in the middle of a keynote, what exactly happens to the taps I make on my phone, ';
  const longest = (words + words + words).slice(0, 279) + '?';
  expect(longest).toHaveLength(280);
  await ask(follower, longest);
  const panel = await openPanel(t.phone);
  await item(panel, longest.slice(0, 40)).getByRole('button', { name: 'Show' }).tap();
  for (const page of [t.deck, follower]) {
    const text = page.locator('[data-clicker-spotlight] .clicker-spotlight-text');
    await expect(text).toBeVisible();
    await expect(text).toHaveText(longest);
    // Nothing of it is cut off: the box is as tall as its text.
    const { shown, whole } = await text.evaluate((el) => ({ shown: el.clientHeight, whole: el.scrollHeight }));
    expect(whole, 'the text is not clipped').toBeLessThanOrEqual(shown + 1);
  }
  await shot(t.deck, testInfo, 'deck-spotlight-longest');
});

test('markup in a question is shown as text on the phone, the slideshow and the follow page, and creates no element', async ({ browser }) => {
  await startServer();
  const t = await startTalk(browser);
  const follower = await openFollower(browser, t);
  const evil = '<img src=x onerror="window.__pwned=1"><b>bold</b> & <script>window.__pwned=2</script>';
  await ask(follower, evil);

  const panel = await openPanel(t.phone);
  const entry = panel.locator('.q-item').first();
  expect(await entry.locator('.q-text').textContent()).toBe(evil);
  await expect(panel.locator('img, b, script')).toHaveCount(0);

  await entry.getByRole('button', { name: 'Show' }).tap();
  for (const page of [t.deck, follower]) {
    const card = page.locator('[data-clicker-spotlight]');
    await expect(card).toBeVisible();
    expect(await card.locator('.clicker-spotlight-text').textContent()).toBe(evil);
    await expect(card.locator('img, b, script')).toHaveCount(0);
  }
  for (const page of [t.deck, t.phone, follower]) {
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
  }
});

// This machine has no emoji font, as many Linux laptops have none: a glyph
// drawn from a font would be an empty box here, and never the picture's colours.
test('reaction glyphs are pictures from the bundle, drawn with no emoji font', async ({ browser }) => {
  await startServer();
  const t = await startTalk(browser);
  const follower = await openFollower(browser, t);
  // Each button of the follow page, by a colour of its picture (Twemoji's fills).
  const buttons: [string, string][] = [
    ['Thumbs up', '#FFDB5E'],
    ['Applause', '#FFDB5E'],
    ['Question mark', '#BE1931'],
    ['Ask a question', '#BDDDF4'],
  ];
  for (const [name, colour] of buttons) {
    const button = follower.getByRole('button', { name });
    // No text to fall back to a font: the picture is the glyph.
    expect((await button.locator('.clicker-glyph').textContent()) ?? '').toBe('');
    const png = await button.locator('.clicker-glyph').screenshot();
    expect(pixelsNear(png, colour), `${name}: pixels of ${colour} in its glyph`).toBeGreaterThan(20);
  }

  // The bursts on the slideshow carry the same pictures, inline in the stylesheet (no request to make).
  await follower.getByRole('button', { name: 'Applause' }).tap();
  const burst = t.deck.locator('.clicker-reactions .clicker-burst[data-kind="clap"]').first();
  await expect(burst).toBeAttached();
  const drawn = await burst.evaluate(async (el) => {
    const bg = getComputedStyle(el).backgroundImage;
    // Serialized as url("…"), with the SVG's own quotes escaped.
    const url = (/^url\("(.*)"\)$/.exec(bg)?.[1] ?? '').replace(/\\(.)/g, '$1');
    const img = new Image();
    img.src = url;
    await img.decode();
    return { scheme: url.slice(0, 19), width: img.naturalWidth, text: el.textContent };
  });
  expect(drawn).toEqual({ scheme: 'data:image/svg+xml,', width: expect.any(Number), text: '' });
  expect(drawn.width).toBeGreaterThan(0);
});

test('during a blackout the follower is told why the screen is black, and can still react and ask; the progress bar does not move them', async ({ browser }, testInfo) => {
  await startServer();
  const t = await startTalk(browser);
  const follower = await openFollower(browser, t, { viewport: { width: 1280, height: 720 }, hasTouch: true });
  await t.phone.getByRole('button', { name: 'Blackout' }).tap();
  await expect(follower.locator('.reveal')).toHaveClass(/\bpaused\b/);
  const overlay = follower.locator('.reveal .pause-overlay');
  await expect(overlay).toBeVisible();
  expect(await overlay.evaluate((el) => getComputedStyle(el, '::after').content)).toBe('"The presenter has paused the slides"');
  // Taps reach the bar through the blackout (Playwright's tap checks that nothing lies on top).
  await follower.getByRole('button', { name: 'Applause' }).tap({ timeout: 5_000 });
  await expect(t.deck.locator('.clicker-reactions .clicker-burst[data-kind="clap"]').first()).toBeAttached();
  await openForm(follower);
  await shot(follower, testInfo, 'follow-blackout');
  await t.phone.getByRole('button', { name: 'Blackout' }).tap();
  await expect(follower.locator('.reveal')).not.toHaveClass(/\bpaused\b/);

  // A click far along the progress bar leaves the follower on the presenter's slide.
  const number = () => follower.locator('.reveal .slide-number').innerText();
  const before = await number();
  const bar = (await follower.locator('.reveal .progress').boundingBox())!;
  await follower.mouse.click(bar.x + bar.width * 0.8, bar.y + bar.height / 2);
  await follower.waitForTimeout(500);
  expect(await number()).toBe(before);
});

test('reactions burst briefly on the slideshow, and a flood stays capped', async ({ browser }, testInfo) => {
  await startServer();
  const t = await startTalk(browser);
  const follower = await openFollower(browser, t);
  const bursts = t.deck.locator('.clicker-reactions .clicker-burst');

  await follower.getByRole('button', { name: 'Applause' }).tap();
  await expect(t.deck.locator('.clicker-reactions .clicker-burst[data-kind="clap"]').first()).toBeAttached();
  await follower.getByRole('button', { name: 'Thumbs up' }).tap();
  await follower.getByRole('button', { name: 'Question mark' }).tap();
  await expect(t.deck.locator('.clicker-burst[data-kind="thumbs"]').first()).toBeAttached();
  await expect(t.deck.locator('.clicker-burst[data-kind="question"]').first()).toBeAttached();
  // The follower's own screen shows the room's reactions too.
  await expect(follower.locator('.clicker-burst[data-kind="question"]').first()).toBeAttached();
  // On that phone held upright every emoji stays inside its strip, drift and
  // all, while a dozen bursts rise: none is cut off at the edge.
  const watching = follower.evaluate(async () => {
    const strip = document.querySelector('.clicker-reactions')!.getBoundingClientRect();
    let seen = 0;
    let spill = 0;
    const until = performance.now() + 2_500;
    while (performance.now() < until) {
      for (const el of document.querySelectorAll('.clicker-reactions .clicker-burst')) {
        const r = el.getBoundingClientRect();
        if (r.width === 0) continue;
        seen++;
        spill = Math.max(spill, strip.left - r.left, r.right - strip.right);
      }
      await new Promise((done) => requestAnimationFrame(done));
    }
    return { seen, spill, strip: strip.width };
  });
  for (let i = 0; i < 12; i++) {
    const res = await fetch(`${server.base}/api/channels/${t.id}/reactions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ kind: ['thumbs', 'clap', 'question'][i % 3] }),
    });
    expect(res.status).toBe(204);
  }
  const watched = await watching;
  expect(watched.seen).toBeGreaterThan(20);
  expect(watched.spill, `a burst crossed the edge of its ${watched.strip}px strip`).toBeLessThanOrEqual(0);
  await expect(follower.locator('.clicker-burst')).toHaveCount(0, { timeout: 6_000 });
  // A screenshot mid-flight: a shown question and a burst together.
  const q = 'Can the audience see the speaker notes?';
  await ask(follower, q);
  const panel = await openPanel(t.phone);
  await item(panel, q).getByRole('button', { name: 'Show' }).tap();
  await expect(t.deck.locator('[data-clicker-spotlight]')).toBeVisible();
  for (const kind of ['Applause', 'Thumbs up', 'Applause', 'Question mark', 'Applause']) await follower.getByRole('button', { name: kind }).tap();
  await t.deck.waitForTimeout(700);
  await shot(t.deck, testInfo, 'slideshow-spotlight-burst');
  // Brief: a couple of seconds, then gone.
  await expect(bursts).toHaveCount(0, { timeout: 6_000 });

  // A flood: 150 reactions in a moment never put more than a few dozen emoji on screen.
  await t.deck.evaluate(() => {
    const box = document.querySelector('.clicker-reactions')!;
    const w = window as unknown as { maxBursts: number };
    w.maxBursts = 0;
    new MutationObserver(() => (w.maxBursts = Math.max(w.maxBursts, box.childElementCount))).observe(box, { childList: true });
  });
  const statuses = await Promise.all(
    Array.from({ length: 150 }, (_, i) =>
      fetch(`${server.base}/api/channels/${t.id}/reactions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ kind: ['thumbs', 'clap', 'question'][i % 3] }),
      }).then((r) => r.status),
    ),
  );
  expect(statuses.every((s) => s === 204)).toBe(true);
  await expect.poll(() => t.deck.evaluate(() => (window as unknown as { maxBursts: number }).maxBursts)).toBeGreaterThan(10);
  await expect(bursts).toHaveCount(0, { timeout: 8_000 });
  const max = await t.deck.evaluate(() => (window as unknown as { maxBursts: number }).maxBursts);
  expect(max).toBeLessThanOrEqual(36);
});

test('with questions off the follower is told and nothing arrives; on again, questions flow', async ({ browser }) => {
  await startServer();
  const t = await startTalk(browser);
  const follower = await openFollower(browser, t);
  await ask(follower, 'Asked while questions are on');
  await expect(t.phone.locator('#questions-badge')).toHaveText('1');

  const panel = await openPanel(t.phone);
  const toggle = panel.getByRole('switch', { name: 'Take questions' });
  await expect(toggle).toHaveAttribute('aria-checked', 'true');
  await toggle.tap();
  await expect(toggle).toHaveAttribute('aria-checked', 'false');

  // The follower with the form open is told at once, and cannot send.
  const form = await openForm(follower);
  await expect(form.getByRole('status')).toHaveText(/Questions are off/);
  await form.getByRole('textbox').fill('Asked while questions are off');
  await expect(form.getByRole('button', { name: 'Send' })).toBeDisabled();
  await expect(follower.locator('.clicker-audience')).toHaveAttribute('data-questions', 'off');
  // A follower who joins now is told too.
  const late = await openFollower(browser, t);
  await late.getByRole('button', { name: 'Ask a question' }).tap();
  await expect(late.getByRole('form', { name: 'Ask a question' }).getByRole('status')).toHaveText(/Questions are off/);
  // Even sent by hand, the server refuses it.
  const status = await follower.evaluate(async (id) => {
    const res = await fetch(`/api/channels/${id}/questions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ text: 'By hand' }) });
    return res.status;
  }, t.id);
  expect(status).toBe(403);
  // Nothing arrived on the presenter's phone.
  await t.phone.waitForTimeout(500);
  await expect(panel.locator('.q-item')).toHaveCount(1);
  await expect(t.phone.locator('#questions-badge')).toHaveText('1');
  await expect(panel).toContainText('Asked while questions are on');
  await expect(panel).not.toContainText('By hand');

  // On again: the follower's form says so, and the question goes through.
  await toggle.tap();
  await expect(toggle).toHaveAttribute('aria-checked', 'true');
  await expect(form.getByRole('status')).toHaveText(/taking questions again/);
  await form.getByRole('button', { name: 'Send' }).tap();
  await expect(form.getByRole('status')).toHaveText(/Sent/);
  await expect(item(panel, 'Asked while questions are off')).toHaveCount(1);
  await expect(t.phone.locator('#questions-badge')).toHaveText('2');
});

test("the follower is told plainly when they ask too often, and the form's limit is the server's", async ({ browser }) => {
  // The real limits: three questions a minute from one follower.
  await startServer({});
  const t = await startTalk(browser);
  const follower = await openFollower(browser, t);
  for (const n of [1, 2, 3]) await ask(follower, `Question number ${n}`);
  const form = await openForm(follower);
  await form.getByRole('textbox').fill('One more?');
  await form.getByRole('button', { name: 'Send' }).tap();
  await expect(form.getByRole('status')).toHaveText('Too many questions from this device. Try again in 60 seconds.');
  // The draft is kept, to send later.
  await expect(form.getByRole('textbox')).toHaveValue('One more?');

  // The text box stops at 280 characters, and the count says so.
  await form.getByRole('textbox').fill('z'.repeat(300));
  await expect(form.getByRole('textbox')).toHaveValue('z'.repeat(280));
  await expect(form.locator('.clicker-ask-count')).toHaveText('280 / 280');
  await expect(form.locator('.clicker-ask-count')).toHaveClass(/near/);
  await expect(t.phone.locator('#questions-badge')).toHaveText('3');
});

test('a follower who reacts too often is told so, and the buttons rest for a moment', async ({ browser }) => {
  // The real limit: ten reactions in ten seconds from one follower.
  await startServer({});
  const t = await startTalk(browser);
  const follower = await openFollower(browser, t);
  // Count the reactions that reach the slideshow: each draws one large emoji.
  await t.deck.evaluate(() => {
    const w = window as unknown as { reactions: number };
    w.reactions = 0;
    new MutationObserver((records) => {
      for (const r of records) for (const n of r.addedNodes) if (n instanceof HTMLElement && !n.classList.contains('small')) w.reactions++;
    }).observe(document.querySelector('.clicker-reactions')!, { childList: true });
  });
  const thumbs = follower.getByRole('button', { name: 'Thumbs up' });
  // Eleven quick taps, as an eager thumb makes them (a tap's own waits would spread them over the window).
  for (let i = 0; i < 11; i++) await thumbs.dispatchEvent('click');
  await expect(follower.locator('.clicker-audience-note')).toHaveText('Easy there! Reactions are back in 10 seconds.');
  await expect(thumbs).toBeDisabled();
  await expect(follower.getByRole('button', { name: 'Applause' })).toBeDisabled();
  // Ten made it to the slideshow; the eleventh did not.
  await expect.poll(() => t.deck.evaluate(() => (window as unknown as { reactions: number }).reactions)).toBe(10);
  await t.deck.waitForTimeout(500);
  expect(await t.deck.evaluate(() => (window as unknown as { reactions: number }).reactions)).toBe(10);
});

test('a reloaded presenter phone still lists the questions, with what became of each', async ({ browser }, testInfo) => {
  await startServer();
  const t = await startTalk(browser);
  const follower = await openFollower(browser, t);
  for (const q of ['First question', 'Second question', 'Third question']) await ask(follower, q);
  let panel = await openPanel(t.phone);
  await expect(panel.locator('.q-item')).toHaveCount(3);
  await item(panel, 'Second question').getByRole('button', { name: 'Show' }).tap();
  await expect(t.deck.locator('[data-clicker-spotlight]')).toContainText('Second question');
  await item(panel, 'First question').getByRole('button', { name: 'Dismiss' }).tap();
  await expect(item(panel, 'First question').locator('.q-meta')).toContainText('Dismissed');

  await t.phone.reload();
  await expect(t.phone.locator('#conn')).toHaveAttribute('data-state', 'live');
  await expect(t.phone.locator('#questions-badge')).toHaveText('1');
  panel = await openPanel(t.phone);
  // Newest first, each with its status; the one on screen says so.
  await expect(panel.locator('.q-item .q-text')).toHaveText(['Third question', 'Second question', 'First question']);
  await expect(panel.locator('.q-item .q-meta')).toHaveText([/Waiting/, /On screen/, /Dismissed/]);
  await shot(t.phone, testInfo, 'phone-questions-reloaded');
  // A late follower sees the question on screen at once, from the snapshot.
  const late = await openFollower(browser, t);
  await expect(late.locator('[data-clicker-spotlight] .clicker-spotlight-text')).toHaveText('Second question');
});

test('on a phone the bar is thumb-sized and stays off the slide, upright and on its side', async ({ browser }, testInfo) => {
  await startServer();
  const t = await startTalk(browser);
  for (const [name, device] of [
    ['portrait', devices['Pixel 7']],
    ['landscape', devices['Pixel 7 landscape']],
    ['iphone', devices['iPhone 13']],
    ['small', devices['iPhone SE']],
    ['small landscape', devices['iPhone SE landscape']],
  ] as const) {
    const page = await openFollower(browser, t, { ...device });
    const viewport = page.viewportSize()!;
    const bar = (await page.locator('.clicker-audience-bar').boundingBox())!;
    for (const label of ['Thumbs up', 'Applause', 'Question mark', 'Ask a question']) {
      const box = (await page.getByRole('button', { name: label, exact: true }).boundingBox())!;
      expect(Math.min(box.width, box.height), `${label} size in ${name}`).toBeGreaterThanOrEqual(44);
      expect(box.x).toBeGreaterThanOrEqual(0);
      expect(box.x + box.width).toBeLessThanOrEqual(viewport.width + 0.5);
      expect(box.y + box.height).toBeLessThanOrEqual(viewport.height + 0.5);
    }
    // The bar sits beside or below what the slide shows, never on it.
    for (const part of await page.locator('.reveal .slides section.present :is(h1, h2, h3, p, li, img, pre)').all()) {
      const box = await part.boundingBox();
      if (!box || !(await part.isVisible())) continue;
      const overlapX = Math.max(0, Math.min(bar.x + bar.width, box.x + box.width) - Math.max(bar.x, box.x));
      const overlapY = Math.max(0, Math.min(bar.y + bar.height, box.y + box.height) - Math.max(bar.y, box.y));
      expect(overlapX * overlapY, `bar over "${await part.innerText()}" in ${name}`).toBe(0);
    }
    await page.getByRole('button', { name: 'Ask a question' }).tap();
    await page.getByRole('textbox', { name: 'Ask the presenter' }).fill('Will the slides be shared after the talk?');
    const form = (await page.getByRole('form', { name: 'Ask a question' }).boundingBox())!;
    expect(form.x).toBeGreaterThanOrEqual(0);
    expect(form.y).toBeGreaterThanOrEqual(0);
    expect(form.x + form.width).toBeLessThanOrEqual(viewport.width + 0.5);
    await shot(page, testInfo, `follow-${name}`);
    await page.context().close();
  }
});
