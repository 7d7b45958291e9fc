// The remote a presenter gives a whole talk with: notes, timer, jump list,
// blackout, the laptop's own keyboard, keep-awake and both orientations.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { devices, expect, test, type Browser, type Page } from '@playwright/test';
import { ClickerServer, closePages, deckPosition, readDeckQr, toLoopback, allowPhone } from './fixtures';

let server: ClickerServer;
test.beforeEach(async () => {
  server = await ClickerServer.start();
});
test.afterEach(async ({ browser }) => {
  await closePages(browser);
  await server.stop();
});

async function pairedPair(browser: Browser, phoneOptions = devices['Pixel 7']): Promise<{ deck: Page; phone: Page }> {
  const deck = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
  await deck.goto(`${server.base}/`);
  const url = await readDeckQr(deck);
  const phone = await (await browser.newContext({ ...phoneOptions })).newPage();
  await phone.goto(toLoopback(url));
  await allowPhone(deck, phone);
  await expect(phone.locator('#conn')).toHaveAttribute('data-state', 'live');
  return { deck, phone };
}

test('the phone shows the title, the notes, the next title and a running timer', async ({ browser }) => {
  const { phone } = await pairedPair(browser);
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect(phone.locator('#title')).toHaveText('How it works');
  await expect(phone.getByLabel('Speaker notes')).toContainText('Scan once, then tap or swipe.');
  await expect(phone.locator('#next-title')).toHaveText('Under the hood');

  await expect(phone.getByLabel('Elapsed time')).toHaveText('0:00');
  await phone.getByRole('button', { name: 'Start' }).tap();
  await expect(phone.getByLabel('Elapsed time')).not.toHaveText('0:00', { timeout: 5_000 });
  await phone.getByRole('button', { name: 'Pause' }).tap();
  const paused = await phone.getByLabel('Elapsed time').innerText();
  await expect(phone.getByRole('button', { name: 'Resume' })).toBeVisible();
  await phone.getByRole('button', { name: 'Reset' }).tap();
  await expect(phone.getByLabel('Elapsed time')).toHaveText('0:00');
  expect(paused).toMatch(/^0:0[1-9]$/);
  await expect(phone.getByLabel('Time of day')).toHaveText(/\d{1,2}:\d{2}/);

  // The notes font size is adjustable.
  const before = await phone.getByLabel('Speaker notes').evaluate((el) => getComputedStyle(el).fontSize);
  await phone.getByRole('button', { name: 'Larger notes' }).tap();
  const after = await phone.getByLabel('Speaker notes').evaluate((el) => getComputedStyle(el).fontSize);
  expect(parseFloat(after)).toBeGreaterThan(parseFloat(before));

  // Titles, notes and the next title read in their own script's direction: Arabic or Hebrew right to left, the rest left to right.
  for (const id of ['title', 'notes', 'next-title']) {
    const dirs = await phone.locator(`#${id}`).evaluate((el) => {
      const kept = el.textContent;
      const out: string[] = [];
      for (const text of ['مرحبا بالعالم.', 'Hello, world.']) {
        el.textContent = text;
        out.push(getComputedStyle(el).direction);
      }
      el.textContent = kept;
      return out;
    });
    expect(dirs, id).toEqual(['rtl', 'ltr']);
  }
});

test('the timer turns over each second as it passes, counted from the tap on Start', async ({ browser }) => {
  const deck = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
  await deck.goto(`${server.base}/`);
  const url = await readDeckQr(deck);
  const phone = await (await browser.newContext({ ...devices['Pixel 7'] })).newPage();
  await phone.clock.install();
  await phone.goto(toLoopback(url));
  await allowPhone(deck, phone);
  await expect(phone.locator('#conn')).toHaveAttribute('data-state', 'live');
  // Time stops, then moves on 300 ms: Start is tapped out of step with the page's one-second timers so far.
  await phone.clock.pauseAt(Math.ceil((Date.now() + 5_000) / 1_000) * 1_000 + 400);
  await phone.clock.runFor(300);
  const elapsed = phone.getByLabel('Elapsed time');
  await phone.getByRole('button', { name: 'Start' }).tap();
  await expect(elapsed).toHaveText('0:00');
  await phone.clock.runFor(1_050);
  await expect(elapsed).toHaveText('0:01');
  await phone.clock.runFor(1_000);
  await expect(elapsed).toHaveText('0:02');
});

test('the slide list jumps the deck anywhere, and First and Last go to the ends', async ({ browser }) => {
  const { deck, phone } = await pairedPair(browser);
  await phone.getByRole('button', { name: 'Slides' }).tap();
  const list = phone.getByRole('dialog', { name: 'Jump to slide' });
  await expect(list.getByRole('button')).toHaveCount(1 + 8);
  await list.getByRole('button', { name: 'Commands in, events out' }).tap();
  await expect(list).toBeHidden();
  await expect.poll(() => deckPosition(deck)).toBe('4 / 8');
  await expect(phone.locator('#position')).toHaveText('4 / 8');
  await expect(phone.locator('#title')).toHaveText('Commands in, events out');

  await phone.getByRole('button', { name: 'Last' }).tap();
  await expect.poll(() => deckPosition(deck)).toBe('8 / 8');
  await expect(phone.getByRole('button', { name: 'Next' })).toBeDisabled();
  await phone.getByRole('button', { name: 'First' }).tap();
  await expect.poll(() => deckPosition(deck)).toBe('1 / 8');
  await expect(phone.getByRole('button', { name: 'Previous' })).toBeDisabled();
});

test('a deck of a thousand slides with long titles: the phone follows it, and its slide list holds every slide', async ({ browser }) => {
  // Sent whole, the outline of such a deck was over the server's cap for a state report: every report was refused, and the phone never left "1 / 1000".
  const dir = mkdtempSync(path.join(os.tmpdir(), 'clicker-long-deck-'));
  const title = (i: number) => `Slide ${i + 1}: ${'a long and winding title, '.repeat(8)}`.slice(0, 190).trim();
  writeFileSync(path.join(dir, 'long.md'), Array.from({ length: 1_000 }, (_v, i) => `## ${title(i)}\n\nNote:\nNote ${i + 1}.`).join('\n\n---\n\n'));
  await server.stop();
  server = await ClickerServer.start([path.join(dir, 'long.md')]);
  const { deck, phone } = await pairedPair(browser);
  await expect(phone.locator('#position')).toHaveText('1 / 1000');
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect(phone.locator('#position')).toHaveText('2 / 1000');
  await expect(phone.locator('#title')).toHaveText(title(1));
  await expect(phone.getByLabel('Speaker notes')).toHaveText('Note 2.');
  await phone.getByRole('button', { name: 'Slides' }).tap();
  const list = phone.getByRole('dialog', { name: 'Jump to slide' });
  await expect(list.getByRole('button')).toHaveCount(1 + 1_000);
  // Long titles are cut in the list, with an ellipsis, but still say which slide is which.
  const item = list.getByRole('button', { name: /^Slide 700: a long .*…$/ });
  await item.scrollIntoViewIfNeeded();
  await item.tap();
  await expect.poll(() => deckPosition(deck)).toBe('700 / 1000');
  await expect(phone.locator('#title')).toHaveText(title(699));
});

test('slides without a title are named on the phone by their first words, their picture, their video or the page they embed, not only by number', async ({ browser }) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'clicker-untitled-'));
  const words = 'Simplicity is prerequisite for reliability, and reliability is what a room full of people needs from a remote.';
  writeFileSync(
    path.join(dir, 'talk.md'),
    [
      '# A talk',
      `> ${words}`,
      '![A red kite over the hills](img/kite.png)',
      '![](photos/Stage%20left.jpg?v=2)',
      '<!-- .slide: data-background-image="img/crowd.jpg" -->',
      '<video src="clips/demo.mp4" muted></video>',
      'Questions?',
      '',
      '<iframe src="http://127.0.0.1:9/demo" title=""></iframe>',
      '<!-- .slide: data-background-iframe="http://127.0.0.1:9/" -->',
    ].join('\n\n---\n\n'),
  );
  await server.stop();
  server = await ClickerServer.start([path.join(dir, 'talk.md')]);
  const { deck, phone } = await pairedPair(browser);
  await expect(phone.locator('#position')).toHaveText('1 / 10');
  await expect(phone.locator('#next-title')).toHaveText('Simplicity is prerequisite for reliability, and reliability…');
  await phone.getByRole('button', { name: 'Slides' }).tap();
  const list = phone.getByRole('dialog', { name: 'Jump to slide' });
  await expect(list.getByRole('button', { name: /^Slide|Picture|Video|Page|Questions|Simplicity|A talk/ })).toHaveText([
    'A talk',
    'Simplicity is prerequisite for reliability, and reliability…',
    'Picture: A red kite over the hills',
    'Picture: Stage left.jpg',
    'Picture: crowd.jpg',
    'Video: demo.mp4',
    'Questions?',
    'Slide 8',
    'Page: 127.0.0.1:9/demo',
    'Page: 127.0.0.1:9',
  ]);
  await phone.screenshot({ path: test.info().outputPath('phone-untitled-slides.png') });
  await list.getByRole('button', { name: 'Picture: A red kite over the hills' }).tap();
  await expect.poll(() => deckPosition(deck)).toBe('3 / 10');
  await expect(phone.locator('#title')).toHaveText('Picture: A red kite over the hills');
  await expect(phone.locator('#next-title')).toHaveText('Picture: Stage left.jpg');
});

test('Blackout toggles the slideshow paused mode, on and off', async ({ browser }) => {
  const { deck, phone } = await pairedPair(browser);
  const blackout = phone.getByRole('button', { name: 'Blackout' });
  await expect(blackout).toHaveAttribute('aria-pressed', 'false');
  await blackout.tap();
  await expect(deck.locator('.reveal')).toHaveClass(/\bpaused\b/);
  await expect(blackout).toHaveAttribute('aria-pressed', 'true');
  // A screen reader is told too, in the announcement of where the deck is.
  await expect(phone.getByRole('status').filter({ hasText: /^Slide / })).toHaveText('Slide 1 of 8: Clicker, blacked out');
  // The room sees black: reveal.js's resume button stays invisible until the
  // laptop's mouse moves, and fades again once the mouse is still.
  const resume = deck.getByRole('button', { name: 'Resume presentation' });
  await expect(resume).toHaveCSS('opacity', '0');
  await deck.mouse.move(400, 300);
  await deck.mouse.move(420, 310);
  await expect(resume).toHaveCSS('opacity', '1');
  await expect(resume).toHaveCSS('opacity', '0', { timeout: 8_000 });
  await deck.screenshot({ path: test.info().outputPath('blackout.png') });
  await blackout.tap();
  await expect(deck.locator('.reveal')).not.toHaveClass(/\bpaused\b/);
  await expect(blackout).toHaveAttribute('aria-pressed', 'false');
  await expect(phone.getByRole('status').filter({ hasText: /^Slide / })).toHaveText('Slide 1 of 8: Clicker');
});

test('Next or Previous during a blackout brings the same slide back, as in PowerPoint and Keynote, and never moves the deck behind the black', async ({ browser }, testInfo) => {
  const { deck, phone } = await pairedPair(browser);
  const next = phone.getByRole('button', { name: 'Next' });
  const blackout = phone.getByRole('button', { name: 'Blackout' });
  await next.tap();
  await expect(phone.locator('#position')).toHaveText('2 / 8');
  for (const button of ['Next', 'Previous']) {
    await blackout.tap();
    await expect(deck.locator('.reveal')).toHaveClass(/\bpaused\b/);
    await expect(blackout).toHaveAttribute('aria-pressed', 'true');
    // The phone says what the pad does now, so a presenter is not left guessing.
    await expect(phone.locator('#pad')).toHaveAttribute('data-hint', 'Blacked out: ‹ or › brings it back');
    if (button === 'Next') {
      await phone.screenshot({ path: testInfo.outputPath('phone-blacked-out.png') });
      // A screen reader hears the hint in words, not the glyphs drawn for the eye.
      await expect(phone.locator('#pad')).toMatchAriaSnapshot('- text: "Blacked out: Next or Previous brings the slide back"');
    }
    await phone.getByRole('button', { name: button }).tap();
    await expect(deck.locator('.reveal')).not.toHaveClass(/\bpaused\b/);
    await expect(blackout).toHaveAttribute('aria-pressed', 'false');
    await expect.poll(() => deckPosition(deck)).toBe('2 / 8');
    await expect(phone.locator('#position')).toHaveText('2 / 8');
    await expect(phone.locator('#pad')).not.toHaveAttribute('data-hint');
  }
  // The laptop's keyboard, or a USB clicker's PageDown, does the same: reveal.js alone would drop the key and leave the room in black.
  await deck.locator('body').click({ position: { x: 640, y: 40 } });
  for (const key of ['PageDown', 'ArrowLeft']) {
    await blackout.tap();
    await expect(deck.locator('.reveal')).toHaveClass(/\bpaused\b/);
    await expect(blackout).toHaveAttribute('aria-pressed', 'true');
    await deck.keyboard.press(key);
    await expect(deck.locator('.reveal')).not.toHaveClass(/\bpaused\b/);
    await expect(blackout).toHaveAttribute('aria-pressed', 'false');
    expect(await deckPosition(deck)).toBe('2 / 8');
  }
  // Behind the black, not one build was shown either. Out of the blackout, the same button moves again: the slide's first build.
  await expect(phone.locator('#fragments')).toHaveText('0 of 3 builds shown');
  await next.tap();
  await expect(phone.locator('#fragments')).toHaveText('1 of 3 builds shown');
  // A jump from the slide list is explicit: it moves while the screen stays black, so the next slide can be readied unseen.
  await blackout.tap();
  await expect(deck.locator('.reveal')).toHaveClass(/\bpaused\b/);
  await phone.getByRole('button', { name: 'Slides' }).tap();
  await phone.getByRole('dialog', { name: 'Jump to slide' }).getByRole('button', { name: 'Secured on the server' }).tap();
  await expect.poll(() => deckPosition(deck)).toBe('5 / 8');
  await expect(deck.locator('.reveal')).toHaveClass(/\bpaused\b/);
  await expect(phone.locator('#position')).toHaveText('5 / 8');
  // At the end of the deck, still black, Next is there to bring the slide back; once it is back, Next has nowhere to go.
  await phone.getByRole('button', { name: 'Last' }).tap();
  await expect(phone.locator('#position')).toHaveText('8 / 8');
  await expect(deck.locator('.reveal')).toHaveClass(/\bpaused\b/);
  await expect(next).toBeEnabled();
  await next.tap();
  await expect(deck.locator('.reveal')).not.toHaveClass(/\bpaused\b/);
  await expect(next).toBeDisabled();
  expect(await deckPosition(deck)).toBe('8 / 8');
});

test("the laptop's keyboard moves the deck and the phone follows, fragment by fragment", async ({ browser }) => {
  const { deck, phone } = await pairedPair(browser);
  await deck.locator('body').click({ position: { x: 640, y: 40 } });
  await deck.keyboard.press('ArrowRight');
  await expect(phone.locator('#position')).toHaveText('2 / 8');
  // Space steps through fragments; the phone sees every one, none skipped.
  for (const shown of [1, 2, 3]) {
    await deck.keyboard.press('Space');
    await expect(phone.locator('#fragments')).toHaveText(`${shown} of 3 builds shown`);
  }
  await deck.keyboard.press('Space');
  await expect(phone.locator('#position')).toHaveText('3 / 8');
  await deck.keyboard.press('ArrowDown');
  await expect(phone.locator('#position')).toHaveText('4 / 8');
  await expect(phone.locator('#title')).toHaveText('Commands in, events out');
  // And the phone's own tap continues from where the laptop left the deck: no jump back.
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect.poll(() => deckPosition(deck)).toBe('5 / 8');
});

test("on a slide with slides below it, the laptop's down arrow stays clear of the slide number, and a click on it goes down", async ({ browser }) => {
  const deck = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
  await deck.goto(`${server.base}/`);
  await deck.locator('body').click({ position: { x: 640, y: 40 } });
  // Slide 2's three fragments, then slide 3: the top of a vertical stack.
  for (let i = 0; i < 5; i++) await deck.keyboard.press('ArrowRight');
  await expect.poll(() => deckPosition(deck)).toBe('3 / 8');
  const down = deck.locator('.reveal .controls .navigate-down.enabled .controls-arrow');
  await expect(down).toBeVisible();
  // Where the arrow comes to rest (reveal.js slides it in): a trial click waits until it is stable.
  await down.click({ trial: true });
  const a = (await down.boundingBox())!;
  const n = (await deck.locator('.reveal .slide-number').boundingBox())!;
  const overlap = a.x < n.x + n.width && n.x < a.x + a.width && a.y < n.y + n.height && n.y < a.y + a.height;
  expect(overlap, `down arrow ${JSON.stringify(a)} and slide number ${JSON.stringify(n)} overlap`).toBe(false);
  expect(a.y + a.height, 'the down arrow is wholly on screen').toBeLessThanOrEqual(720);
  await down.click();
  await expect.poll(() => deckPosition(deck)).toBe('4 / 8');
});

test('the screen stays awake over plain http, through the video fallback', async ({ browser }) => {
  const deck = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
  await deck.goto(`${server.base}/`);
  const url = await readDeckQr(deck);
  const ctx = await browser.newContext({ ...devices['Pixel 7'] });
  // 127.0.0.1 counts as a secure context; a phone on the LAN address does not, and has no Wake Lock API.
  await ctx.addInitScript(() => {
    delete (Navigator.prototype as { wakeLock?: unknown }).wakeLock;
    // The fallback's video is never attached to the document; note every media element that plays.
    const played: HTMLMediaElement[] = [];
    (window as unknown as { played: HTMLMediaElement[] }).played = played;
    const play = HTMLMediaElement.prototype.play;
    HTMLMediaElement.prototype.play = function (this: HTMLMediaElement) {
      played.push(this);
      return play.call(this);
    };
  });
  const phone = await ctx.newPage();
  await phone.goto(toLoopback(url));
  await allowPhone(deck, phone);
  expect(await phone.evaluate(() => 'wakeLock' in navigator)).toBe(false);
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect
    .poll(() => phone.evaluate(() => (window as unknown as { played: HTMLMediaElement[] }).played.some((v) => v instanceof HTMLVideoElement && !v.paused)))
    .toBe(true);
});

test('the remote is installable: a manifest with icons', async ({ browser, request }) => {
  const { phone } = await pairedPair(browser);
  const href = await phone.locator('link[rel="manifest"]').getAttribute('href');
  const res = await request.get(`${server.base}${href}`);
  expect(res.ok()).toBe(true);
  const manifest = (await res.json()) as { name: string; display: string; icons: { src: string; sizes: string }[] };
  expect(manifest.display).toBe('standalone');
  expect(manifest.icons.map((i) => i.sizes)).toEqual(['192x192', '512x512']);
  for (const icon of manifest.icons) {
    const img = await request.get(`${server.base}${icon.src}`);
    expect(img.headers()['content-type']).toBe('image/png');
  }
});

test('portrait and landscape layouts keep every control on screen, down to a 320 px phone', async ({ browser }, testInfo) => {
  // A dozen pages, one after another: on a slow 2-core machine it took 50 to 57 s, against the 60 s default.
  test.slow();
  for (const [name, device] of [
    ['portrait', devices['Pixel 7']],
    ['landscape', devices['Pixel 7 landscape']],
    ['iphone', devices['iPhone 13']],
    // The narrowest phone in use (320 x 568 CSS px), both ways up.
    ['small', devices['iPhone SE']],
    ['small landscape', devices['iPhone SE landscape']],
  ] as const) {
    const { phone } = await pairedPair(browser, device);
    await phone.getByRole('button', { name: 'Next' }).tap();
    await expect(phone.locator('#title')).toHaveText('How it works');
    const viewport = phone.viewportSize()!;
    const check = async (when: string) => {
      // A tapped button is drawn 3% smaller while Chromium holds its :active state, a moment after
      // the tap (46.56 px for 48): measure the layout at rest, as the thumb finds it.
      await expect.poll(() => phone.evaluate(() => document.querySelectorAll('button:active').length), `a button still pressed in ${when}`).toBe(0);
      // Nothing wider or taller than the screen: a page that scrolls under the thumb moves the buttons.
      const page = await phone.evaluate(() => ({ w: document.documentElement.scrollWidth, h: document.documentElement.scrollHeight }));
      expect(page.w, `page width in ${when}`).toBeLessThanOrEqual(viewport.width);
      expect(page.h, `page height in ${when}`).toBeLessThanOrEqual(viewport.height);
      // The position reads at a glance: one line.
      expect(await phone.locator('#position').evaluate((el) => el.getClientRects().length), `position lines in ${when}`).toBe(1);
      // The notes keep room to be read, whatever the title above them.
      const notes = (await phone.locator('#notes').boundingBox())!;
      expect(notes.height, `notes height in ${when}`).toBeGreaterThanOrEqual(40);
      const labels = ['Next', 'Previous', 'Blackout', 'Slides', 'First', 'Last', (await phone.locator('#timer-toggle').innerText()).trim(), 'Reset', 'Pointer', 'Smaller notes', 'Larger notes'];
      const boxes: { label: string; x: number; y: number; width: number; height: number }[] = [];
      for (const label of labels) {
        const box = (await phone.getByRole('button', { name: label, exact: true }).boundingBox())!;
        expect(box, `${label} in ${when}`).not.toBeNull();
        // Inside the screen, and at least 48 px each way: thumb-sized.
        expect(box.x, `${label} left in ${when}`).toBeGreaterThanOrEqual(0);
        expect(box.y, `${label} top in ${when}`).toBeGreaterThanOrEqual(0);
        expect(box.y + box.height, `${label} bottom in ${when}`).toBeLessThanOrEqual(viewport.height + 0.5);
        expect(box.x + box.width, `${label} right in ${when}`).toBeLessThanOrEqual(viewport.width + 0.5);
        expect(Math.min(box.width, box.height), `${label} size in ${when}`).toBeGreaterThanOrEqual(48);
        boxes.push({ label, ...box });
      }
      // The pointer's red dot stays a dot, however tight its row.
      const dot = await phone.locator('#pointer-open').evaluate((el) => {
        const st = getComputedStyle(el, '::before');
        return `${st.width} x ${st.height}`;
      });
      expect(dot, `pointer dot in ${when}`).toBe('10px x 10px');
      const questions = (await phone.locator('#questions-open').boundingBox())!;
      expect(questions.x + questions.width, `Questions right in ${when}`).toBeLessThanOrEqual(viewport.width + 0.5);
      boxes.push({ label: 'Questions', ...questions }, { label: 'notes', ...notes });
      // No control lies on another, nor on the notes: a tap meant for one must not land on its neighbour.
      for (const [i, a] of boxes.entries()) {
        for (const b of boxes.slice(i + 1)) {
          const overlapX = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
          const overlapY = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
          if (a.label === 'notes' || b.label === 'notes') {
            // The notes' own size buttons sit inside their box.
            if (['Smaller notes', 'Larger notes'].includes(a.label === 'notes' ? b.label : a.label)) continue;
          }
          expect(overlapX > 0.5 && overlapY > 0.5, `${a.label} over ${b.label} in ${when}`).toBe(false);
        }
      }
    };
    await check(name);
    // A talk's longest title, and a note on its builds: the title takes two lines at most, the rest stays put.
    await phone.evaluate(() => {
      document.getElementById('title')!.textContent = 'Why the hub writes one buffer to every socket, and what that saves a keynote with ten thousand phones';
    });
    // A paused timer's button reads Resume, the longest word on its row.
    await phone.getByRole('button', { name: 'Start', exact: true }).tap();
    await phone.getByRole('button', { name: 'Pause', exact: true }).tap();
    await check(`${name}, long title`);
    const shot = await phone.screenshot({ path: testInfo.outputPath(`phone-${name.replace(' ', '-')}.png`) });
    await testInfo.attach(`phone-${name}`, { body: shot, contentType: 'image/png' });
    if (name === 'landscape') await phone.screenshot({ path: 'docs/phone-landscape.png' });
    // Past an hour the count is wider: the timer's row stays one row, and the notes keep their room.
    const channel = new URL(phone.url()).pathname.split('/')[2];
    await phone.evaluate((ch) => localStorage.setItem(`clicker.timer.${ch}`, JSON.stringify({ since: Date.now() - 3_725_000, acc: 0 })), channel);
    await phone.reload();
    await expect(phone.locator('#conn')).toHaveAttribute('data-state', 'live');
    await expect(phone.locator('#elapsed')).toHaveText(/^1:02:\d\d$/);
    await check(`${name}, after an hour`);
    const tops = await Promise.all(['#elapsed', '#timer-toggle', '#timer-reset', '#pointer-open'].map(async (sel) => (await phone.locator(sel).boundingBox())!));
    for (const box of tops.slice(1)) expect(box.y, `the timer's row in ${name}, after an hour`).toBeLessThan(tops[0]!.y + tops[0]!.height);
    await phone.context().close();
  }
});

test('a thumb resting on Next moves the deck once, however long it rests; the keyboard still presses it', async ({ browser }) => {
  const { deck, phone } = await pairedPair(browser);
  const cdp = await phone.context().newCDPSession(phone);
  const box = (await phone.locator('#next').boundingBox())!;
  const at = { x: box.x + box.width / 2, y: box.y + box.height / 2 };
  // A touch held for 1.5 s, then lifted (the browser follows it with a click).
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [at] });
  await phone.waitForTimeout(1_500);
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
  await expect.poll(() => deckPosition(deck)).toBe('2 / 8');
  await expect(phone.locator('#position')).toHaveText('2 / 8');
  // A mouse held as long.
  await phone.mouse.move(at.x, at.y);
  await phone.mouse.down();
  await phone.waitForTimeout(1_500);
  await phone.mouse.up();
  // Time for a second command to land, were one sent.
  await phone.waitForTimeout(600);
  expect(await deckPosition(deck)).toBe('2 / 8');
  expect(await deck.locator('.reveal .slides section.present .fragment.visible').count()).toBe(1);
  // Enter on the focused button: one step.
  await phone.locator('#next').focus();
  await phone.keyboard.press('Enter');
  await expect.poll(() => deck.locator('.reveal .slides section.present .fragment.visible').count()).toBe(2);
  await phone.waitForTimeout(600);
  expect(await deck.locator('.reveal .slides section.present .fragment.visible').count()).toBe(2);
});

test('a swipe that starts on Next or Previous moves the deck once (the button already did); one elsewhere still swipes', async ({ browser }) => {
  const { deck, phone } = await pairedPair(browser);
  await expect(phone.locator('#position')).toHaveText('1 / 8');
  const cdp = await phone.context().newCDPSession(phone);
  const swipe = async (from: { x: number; y: number }, dx: number) => {
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [from] });
    for (let i = 1; i <= 6; i++) await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: [{ x: from.x + (dx * i) / 6, y: from.y }] });
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
  };
  const centre = async (selector: string) => {
    const box = (await phone.locator(selector).boundingBox())!;
    return { x: box.x + box.width / 2, y: box.y + box.height / 2 };
  };
  const shown = () => deck.locator('.reveal .slides section.present .fragment.visible').count();

  // On the first slide Previous is disabled, and does nothing: a swipe that starts on it is a swipe.
  await expect(phone.locator('#prev')).toBeDisabled();
  await swipe(await centre('#prev'), -150);
  await expect.poll(() => deckPosition(deck)).toBe('2 / 8');
  await swipe(await centre('#notes'), 150);
  await expect.poll(() => deckPosition(deck)).toBe('1 / 8');
  await expect(phone.locator('#prev')).toBeDisabled();

  // A thumb lands on Next and slides off it to the left: one step, not two.
  await swipe(await centre('#next'), -150);
  await expect.poll(() => deckPosition(deck)).toBe('2 / 8');
  await expect(phone.locator('#fragments')).toHaveText('0 of 3 builds shown');
  // Time for a second command to land, were one sent.
  await phone.waitForTimeout(600);
  expect(await shown()).toBe(0);
  expect(await deckPosition(deck)).toBe('2 / 8');

  // From Previous, to the right: one step back.
  await swipe(await centre('#prev'), 150);
  await expect.poll(() => deckPosition(deck)).toBe('1 / 8');
  await phone.waitForTimeout(600);
  expect(await deckPosition(deck)).toBe('1 / 8');

  // On the notes, a swipe is the whole gesture: left for next.
  await swipe(await centre('#notes'), -150);
  await expect.poll(() => deckPosition(deck)).toBe('2 / 8');
  await phone.waitForTimeout(600);
  expect(await shown()).toBe(0);

  // Right for previous, and only that: the browser's own back gesture must not take the remote away.
  // A thumb from near the left edge, at a thumb's pace: what Chromium takes for its back gesture when the page lets it.
  const remoteUrl = phone.url();
  const notes = await centre('#notes');
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [{ x: 20, y: notes.y }] });
  for (let i = 1; i <= 8; i++) {
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: [{ x: 20 + (250 * i) / 8, y: notes.y }] });
    await phone.waitForTimeout(16);
  }
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
  await expect.poll(() => deckPosition(deck)).toBe('1 / 8');
  await phone.waitForTimeout(600);
  expect(phone.url()).toBe(remoteUrl);
  await expect(phone.getByRole('button', { name: 'Next' })).toBeVisible();
});
