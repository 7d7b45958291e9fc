// The laser pointer and pen (issue 9): a pad on the phone, a red dot and ink
// on the slideshow (presenter and followers), and stale positions dropped
// rather than shown late. Touches are real touch input (CDP), so the pad's
// pointer events and touch-action: none are what a phone would exercise.
import { devices, expect, test, type Browser, type Locator, type Page } from '@playwright/test';
import { ClickerServer, closePages, deckPosition, readDeckQr, toLoopback, allowPhone } from './fixtures';

let server: ClickerServer;
test.beforeEach(async () => {
  server = await ClickerServer.start();
});
test.afterEach(async ({ browser }) => {
  await closePages(browser);
  await server.stop();
});

/** Tolerance, in slideshow pixels, between where the dot is and where it should be. */
const PX = 4;

async function pairedPair(browser: Browser, phoneOptions = devices['Pixel 7']): Promise<{ deck: Page; phone: Page; id: string }> {
  const deck = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
  await deck.goto(`${server.base}/`);
  const url = await readDeckQr(deck);
  const phone = await (await browser.newContext({ ...phoneOptions })).newPage();
  await phone.goto(toLoopback(url));
  await allowPhone(deck, phone);
  await expect(phone.locator('#conn')).toHaveAttribute('data-state', 'live');
  return { deck, phone, id: new URL(url).pathname.split('/').pop()! };
}

/** A follower page, from the follow URL the title slide shows once a phone is paired. */
async function follower(browser: Browser, deck: Page): Promise<Page> {
  const box = deck.locator('[data-clicker-qr]');
  await expect(box).toHaveAttribute('data-kind', 'follow');
  const followUrl = (await box.getAttribute('data-url')) ?? '';
  expect(new URL(followUrl).pathname).toMatch(/^\/f\//);
  const page = await (await browser.newContext({ viewport: { width: 1024, height: 640 } })).newPage();
  await page.goto(toLoopback(followUrl));
  await expect(page.locator('.clicker-status')).toHaveAttribute('data-link', 'live');
  return page;
}

/** Opens the pointer pad and returns a finger on it, in fractions of the pad. */
async function openPad(phone: Page) {
  await phone.getByRole('button', { name: 'Pointer', exact: true }).tap();
  const pad = phone.getByRole('application', { name: 'Pointer pad' });
  await expect(pad).toBeVisible();
  const cdp = await phone.context().newCDPSession(phone);
  // Measured once: the pad does not move while the finger is on it, and a
  // fast drag should not wait on a layout query per step.
  const box = (await pad.boundingBox())!;
  const at = async (fx: number, fy: number) => [{ x: box.x + fx * box.width, y: box.y + fy * box.height }];
  return {
    pad,
    down: async (fx: number, fy: number) => cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: await at(fx, fy) }),
    move: async (fx: number, fy: number) => cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: await at(fx, fy) }),
    up: async () => cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] }),
  };
}

/** Where a fraction of the slide is on a slideshow page: mapped onto the scaled .slides box. */
async function slidePoint(page: Page, fx: number, fy: number): Promise<{ x: number; y: number }> {
  const box = (await page.locator('.reveal .slides').boundingBox())!;
  return { x: box.x + fx * box.width, y: box.y + fy * box.height };
}

async function centerOf(loc: Locator): Promise<{ x: number; y: number } | null> {
  const box = await loc.boundingBox();
  return box && { x: box.x + box.width / 2, y: box.y + box.height / 2 };
}

/** Waits until the red dot on `page` is shown at fraction (fx, fy) of the slide. */
async function expectDotAt(page: Page, fx: number, fy: number): Promise<void> {
  const dot = page.locator('.clicker-pointer-dot');
  await expect(dot).toBeVisible();
  const want = await slidePoint(page, fx, fy);
  await expect
    .poll(async () => {
      const c = await centerOf(dot);
      return c ? Math.max(Math.abs(c.x - want.x), Math.abs(c.y - want.y)) : Infinity;
    }, { message: `dot at ${fx}, ${fy}` })
    .toBeLessThanOrEqual(PX);
}

test('a finger on the pad shows the red dot at the same place on the slide, and lifting hides it', async ({ browser }) => {
  const { deck, phone } = await pairedPair(browser);
  const finger = await openPad(phone);
  // The pad has the deck's own shape (reveal.js's 960x700), as the slideshow reported it.
  const padBox = (await finger.pad.boundingBox())!;
  expect(padBox.width / padBox.height).toBeCloseTo(960 / 700, 1);
  // The pad keeps the finger: no scrolling, no pinch zoom.
  await expect(finger.pad).toHaveCSS('touch-action', 'none');
  await expect(deck.locator('.clicker-pointer-dot')).toBeHidden();

  await finger.down(0.25, 0.5);
  await expectDotAt(deck, 0.25, 0.5);
  await finger.move(0.75, 0.3);
  await expectDotAt(deck, 0.75, 0.3);
  await finger.move(0.05, 0.95);
  await expectDotAt(deck, 0.05, 0.95);
  await finger.up();
  await expect(deck.locator('.clicker-pointer-dot')).toBeHidden();

  // Back on the remote, which still drives the deck.
  await phone.getByRole('button', { name: 'Back to remote' }).tap();
  await expect(finger.pad).toBeHidden();
  await phone.getByRole('button', { name: 'Next', exact: true }).tap();
  await expect.poll(() => deckPosition(deck)).toBe('2 / 8');
});

test('Draw leaves ink on the slide for the presenter and followers, kept per slide, and Clear wipes it', async ({ browser }, testInfo) => {
  const { deck, phone } = await pairedPair(browser);
  const audience = await follower(browser, deck);
  const finger = await openPad(phone);

  // The dot reaches followers too.
  await finger.down(0.6, 0.4);
  await expectDotAt(deck, 0.6, 0.4);
  await expectDotAt(audience, 0.6, 0.4);
  await finger.up();
  await expect(audience.locator('.clicker-pointer-dot')).toBeHidden();

  await phone.getByRole('button', { name: 'Draw', exact: true }).tap();
  await expect(phone.getByRole('button', { name: 'Draw', exact: true })).toHaveAttribute('aria-pressed', 'true');
  await expect(phone.getByRole('button', { name: 'Point', exact: true })).toHaveAttribute('aria-pressed', 'false');
  // An underline beneath the title, then a tick.
  await finger.down(0.3, 0.3);
  for (let i = 1; i <= 20; i++) {
    await finger.move(0.3 + i * 0.02, 0.3 + Math.sin(i / 3) * 0.02);
    await phone.waitForTimeout(16);
  }
  await finger.up();
  await finger.down(0.72, 0.55);
  await finger.move(0.76, 0.62);
  await finger.move(0.86, 0.45);
  await finger.up();
  const strokes = deck.locator('.clicker-pointer-strokes path');
  await expect(strokes).toHaveCount(2);
  await expect(audience.locator('.clicker-pointer-strokes path')).toHaveCount(2);
  // The underline spans from where the finger went down to where it lifted.
  const from = await slidePoint(deck, 0.3, 0.3);
  const to = await slidePoint(deck, 0.7, 0.3);
  const line = (await strokes.first().boundingBox())!;
  expect(Math.abs(line.x - from.x)).toBeLessThanOrEqual(PX + 4);
  expect(Math.abs(line.x + line.width - to.x)).toBeLessThanOrEqual(PX + 4);
  expect(line.y).toBeLessThan(from.y + 30);
  expect(line.y + line.height).toBeGreaterThan(from.y - 30);
  // The tick reaches the point where the finger lifted: a stroke's last point is never coalesced away.
  const tickEnd = await slidePoint(deck, 0.86, 0.45);
  const tick = (await strokes.nth(1).boundingBox())!;
  expect(Math.abs(tick.x + tick.width - tickEnd.x)).toBeLessThanOrEqual(PX + 4);
  expect(Math.abs(tick.y - tickEnd.y)).toBeLessThanOrEqual(PX + 4);

  // Pointing at it, for the screenshots: the dot and the ink together. Right
  // after the synthetic strokes, Chromium now and then drops this emulated tap
  // (seen about once in four runs); tapping again is what a presenter would do.
  const point = phone.getByRole('button', { name: 'Point', exact: true });
  await expect(async () => {
    await point.tap();
    await expect(point).toHaveAttribute('aria-pressed', 'true', { timeout: 1_000 });
  }).toPass({ timeout: 10_000 });
  await finger.down(0.5, 0.7);
  await finger.move(0.52, 0.66);
  await expectDotAt(deck, 0.52, 0.66);
  await phone.screenshot({ path: testInfo.outputPath('pointer-phone.png') });
  await deck.screenshot({ path: testInfo.outputPath('pointer-slideshow.png') });
  await audience.screenshot({ path: testInfo.outputPath('pointer-follower.png') });
  await finger.up();

  // Another slide has no ink; coming back redraws it.
  await phone.getByRole('button', { name: 'Next slide' }).tap();
  await expect.poll(() => deckPosition(deck)).toBe('2 / 8');
  await expect(strokes).toHaveCount(0);
  await expect(audience.locator('.clicker-pointer-strokes path')).toHaveCount(0);
  await phone.getByRole('button', { name: 'Previous slide' }).tap();
  await expect.poll(() => deckPosition(deck)).toBe('1 / 8');
  await expect(strokes).toHaveCount(2);
  await expect(audience.locator('.clicker-pointer-strokes path')).toHaveCount(2);

  await phone.getByRole('button', { name: 'Clear drawings on this slide' }).tap();
  await expect(strokes).toHaveCount(0);
  await expect(audience.locator('.clicker-pointer-strokes path')).toHaveCount(0);
});

test('on a slow network the phone sends only the newest position, and the dot ends where the finger did', async ({ browser }) => {
  const { deck, phone } = await pairedPair(browser);
  const finger = await openPad(phone);
  let posts = 0;
  // Each pointer POST takes 600 ms more to leave the phone: a congested venue Wi-Fi.
  await phone.route('**/api/channels/*/pointer', async (route) => {
    posts++;
    await new Promise((r) => setTimeout(r, 600));
    await route.continue();
  });

  const moves = 80;
  const started = Date.now();
  await finger.down(0.1, 0.1);
  for (let i = 1; i <= moves; i++) await finger.move(0.1 + (0.8 * i) / moves, 0.1 + (0.7 * i) / moves);
  const tookMs = Date.now() - started;
  const duringDrag = posts;
  // The last position is 0.9, 0.8: the dot gets there, not stuck on an older one.
  await expectDotAt(deck, 0.9, 0.8);
  const sent = posts;
  expect(sent, `POSTs for ${moves} moves in ${tookMs} ms`).toBeLessThan(moves / 4);
  // At most one in flight: while the finger moved, no more POSTs started than its duration allows.
  expect(duringDrag, `POSTs during a ${tookMs} ms drag`).toBeLessThanOrEqual(Math.ceil(tookMs / 600) + 1);
  await finger.up();
  await expect(deck.locator('.clicker-pointer-dot')).toBeHidden();
});

test('a late pointer event never moves the dot backwards', async ({ browser, request }) => {
  const { deck, phone, id } = await pairedPair(browser);
  const key = await phone.evaluate((channel) => localStorage.getItem(`clicker.remote.${channel}`), id);
  expect(key).toBeTruthy();
  const post = (body: object) =>
    request.post(`${server.base}/api/channels/${id}/pointer`, { data: body, headers: { Authorization: `Bearer ${key}` } });
  expect((await post({ type: 'point', x: 0.8, y: 0.2, seq: 5_000 })).status()).toBe(204);
  await expectDotAt(deck, 0.8, 0.2);
  // Sent before the last one, arriving after it: dropped.
  expect((await post({ type: 'point', x: 0.1, y: 0.9, seq: 4_990 })).status()).toBe(204);
  expect((await post({ type: 'lift', seq: 4_995 })).status()).toBe(204);
  // A newer one moves it, which also shows the older two have been handled by now.
  expect((await post({ type: 'point', x: 0.4, y: 0.5, seq: 5_001 })).status()).toBe(204);
  await expectDotAt(deck, 0.4, 0.5);
  await expect(deck.locator('.clicker-pointer-dot')).toBeVisible();
});

test('the pad keeps every control on screen and thumb-sized, in both orientations', async ({ browser }, testInfo) => {
  // A dozen pages, one after another: on a slow 2-core machine it took 50 to 57 s, against the 60 s default.
  test.slow();
  for (const [name, device] of [
    ['portrait', devices['Pixel 7']],
    ['landscape', devices['Pixel 7 landscape']],
    ['iphone', devices['iPhone 13']],
    ['small', devices['iPhone SE']],
    ['small landscape', devices['iPhone SE landscape']],
  ] as const) {
    const { phone } = await pairedPair(browser, device);
    const viewport = phone.viewportSize()!;
    const open = (await phone.getByRole('button', { name: 'Pointer', exact: true }).boundingBox())!;
    expect(open.y + open.height, `Pointer button in ${name}`).toBeLessThanOrEqual(viewport.height + 0.5);
    expect(open.x + open.width).toBeLessThanOrEqual(viewport.width + 0.5);
    expect(Math.min(open.width, open.height)).toBeGreaterThanOrEqual(48);
    const finger = await openPad(phone);
    for (const label of ['Back to remote', 'Point', 'Draw', 'Clear drawings on this slide', 'Previous slide', 'Next slide']) {
      const box = (await phone.getByRole('button', { name: label, exact: true }).boundingBox())!;
      expect(box, `${label} in ${name}`).not.toBeNull();
      expect(box.x).toBeGreaterThanOrEqual(0);
      expect(box.y + box.height).toBeLessThanOrEqual(viewport.height + 0.5);
      expect(box.x + box.width).toBeLessThanOrEqual(viewport.width + 0.5);
      expect(Math.min(box.width, box.height), `${label} size in ${name}`).toBeGreaterThanOrEqual(48);
    }
    const pad = (await finger.pad.boundingBox())!;
    expect(pad.width / pad.height, `pad shape in ${name}`).toBeCloseTo(960 / 700, 1);
    // The pad gets most of the screen.
    expect(pad.width * pad.height, `pad area in ${name}`).toBeGreaterThan(viewport.width * viewport.height * 0.3);
    expect(pad.y + pad.height).toBeLessThanOrEqual(viewport.height + 0.5);
    await phone.screenshot({ path: testInfo.outputPath(`pad-${name}.png`) });
    await phone.context().close();
  }
});
