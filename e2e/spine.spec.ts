import { mkdirSync } from 'node:fs';
import { devices, expect, test, type Request } from '@playwright/test';
import { ClickerServer, closePages, deckPosition, lanAddresses, readDeckQr, toLoopback, allowPhone } from './fixtures';

const phoneDevice = devices['Pixel 7'];
let server: ClickerServer;

test.beforeEach(async () => {
  server = await ClickerServer.start();
});
test.afterEach(async ({ browser }) => {
  await closePages(browser);
  await server.stop();
});

test('the printed URL and the QR code carry a LAN address, never localhost', async ({ browser }) => {
  const printedHost = new URL(server.printedUrl).hostname;
  expect(lanAddresses()).toContain(printedHost);

  const deck = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
  await deck.goto(`${server.base}/`);
  const qr = new URL(await readDeckQr(deck));
  expect(lanAddresses()).toContain(qr.hostname);
  expect(qr.port).toBe(String(server.port));
  expect(qr.pathname).toMatch(/^\/r\/[A-Za-z0-9_-]{22}$/);
  // The one-time pairing code rides in the fragment, which never reaches the server or a Referer.
  expect(qr.hash).toMatch(/^#[A-Za-z0-9_-]{32}$/);
});

test('a phone that scans the QR code drives the slideshow, and shows where it is', async ({ browser }) => {
  const laptop = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const deck = await laptop.newPage();
  // The events each page's stream asks for (its ?events=).
  const asked = { deck: [] as string[][], phone: [] as string[][] };
  const record = (who: keyof typeof asked) => (req: Request) => {
    const url = new URL(req.url());
    if (url.pathname.endsWith('/events')) asked[who].push(url.searchParams.get('events')?.split(',') ?? ['(all)']);
  };
  deck.on('request', record('deck'));
  await deck.goto(`${server.base}/`);
  const controllerUrl = await readDeckQr(deck);
  expect(await deckPosition(deck)).toBe('1 / 8');

  const phoneCtx = await browser.newContext({ ...phoneDevice });
  const phone = await phoneCtx.newPage();
  phone.on('request', record('phone'));
  await phone.goto(toLoopback(controllerUrl));
  await allowPhone(deck, phone);
  await expect(phone.locator('#conn')).toHaveAttribute('data-state', 'live');
  // Nobody is sent what it would drop: the phone gets neither its own commands
  // nor its own pointer positions, the slideshow not its own state reports.
  // Both ask for their heartbeats as events, to tell a dead stream from a quiet one.
  expect(asked.phone).toEqual([['snapshot', 'state', 'slideshow', 'questions', 'spotlight', 'beat']]);
  expect(asked.deck).toHaveLength(1);
  expect(asked.deck[0]).toContain('command');
  expect(asked.deck[0]).toContain('beat');
  expect(asked.deck[0]).not.toContain('state');
  await expect(phone.locator('#position')).toHaveText('1 / 8');
  await expect(phone.locator('#title')).toHaveText('Clicker');

  // The laptop shows that a remote is paired and swaps the pairing QR for a follow QR.
  await expect(deck.locator('.clicker-status')).toHaveAttribute('data-paired', 'true');
  await expect(deck.locator('[data-clicker-qr]')).toHaveAttribute('data-kind', 'follow');

  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect.poll(() => deckPosition(deck)).toBe('2 / 8');
  await expect(phone.locator('#position')).toHaveText('2 / 8');
  await expect(phone.locator('#title')).toHaveText('How it works');
  await expect(phone.locator('#notes')).toContainText('Three steps.');
  await expect(phone.locator('#next-title')).toHaveText('Under the hood');
  // A screen reader hears the move: a polite status, read once per move, never drawn.
  const announced = phone.getByRole('status').filter({ hasText: /^Slide / });
  await expect(announced).toHaveText('Slide 2 of 8: How it works, 0 of 3 builds shown');
  await expect(announced).toHaveAttribute('aria-live', 'polite');
  expect(await announced.boundingBox()).toMatchObject({ width: 1, height: 1 });

  // Fragments are steps: the next tap reveals the first bullet on the same slide.
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect(deck.locator('.reveal .slides section.present .fragment.visible')).toHaveCount(1);
  await expect(phone.locator('#fragments')).toHaveText('1 of 3 builds shown');
  await expect(announced).toHaveText('Slide 2 of 8: How it works, 1 of 3 builds shown');
  await expect(phone.locator('#position')).toHaveText('2 / 8');

  await phone.getByRole('button', { name: 'Previous' }).tap();
  await expect(deck.locator('.reveal .slides section.present .fragment.visible')).toHaveCount(0);
  await phone.getByRole('button', { name: 'Previous' }).tap();
  await expect.poll(() => deckPosition(deck)).toBe('1 / 8');
  await expect(phone.locator('#position')).toHaveText('1 / 8');
  await expect(phone.getByRole('button', { name: 'Previous' })).toBeDisabled();

  // Swipe left on the phone: next.
  await phone.locator('#remote').evaluate((el) => {
    const touch = (type: string, x: number) =>
      el.dispatchEvent(
        new TouchEvent(type, {
          bubbles: true,
          touches: type === 'touchend' ? [] : [new Touch({ identifier: 1, target: el, clientX: x, clientY: 300 })],
          changedTouches: [new Touch({ identifier: 1, target: el, clientX: x, clientY: 300 })],
        }),
      );
    touch('touchstart', 300);
    touch('touchend', 100);
  });
  await expect.poll(() => deckPosition(deck)).toBe('2 / 8');
  await expect(phone.locator('#position')).toHaveText('2 / 8');

  // Screenshots for the README, taken by the test itself.
  mkdirSync('docs', { recursive: true });
  await phone.screenshot({ path: 'docs/phone.png' });
  await deck.goto(`${server.base}/`);
  await phone.getByRole('button', { name: 'Previous' }).tap();
  await expect.poll(() => deckPosition(deck)).toBe('1 / 8');
  await deck.locator('[data-clicker-qr-code] img').waitFor();
  // The slide transition is still running after the move: the README shows the slide where it lands.
  await expect.poll(() => deck.evaluate(() => document.querySelector('.reveal .slides')?.getAnimations({ subtree: true }).length)).toBe(0);
  await deck.screenshot({ path: 'docs/slideshow.png' });
});

test('a slideshow tab closed before its report was answered opens again on the same slide', async ({ browser }) => {
  const laptop = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const deck = await laptop.newPage();
  await deck.goto(`${server.base}/`);
  const phone = await (await browser.newContext({ ...phoneDevice })).newPage();
  await phone.goto(toLoopback(await readDeckQr(deck)));
  await allowPhone(deck, phone);
  await expect(phone.locator('#conn')).toHaveAttribute('data-state', 'live');
  // The slideshow's state report is slow to answer (a busy laptop, a slow
  // proxy), and the tab goes away before the answer comes (it crashed, or the
  // presenter closed it by mistake).
  await deck.route('**/api/channels/*/state', async (route) => {
    await new Promise((r) => setTimeout(r, 3_000));
    await route.continue().catch(() => undefined);
  });
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect.poll(() => deckPosition(deck)).toBe('2 / 8');
  // A moment later: the page has long finished with the command (it saves its place in a task after the move).
  await deck.waitForTimeout(500);
  await deck.close();

  // Opened again: on the slide it was on, the command not applied a second time.
  const again = await laptop.newPage();
  await again.goto(`${server.base}/`);
  await expect(again.locator('.reveal')).toHaveClass(/\bready\b/);
  await expect.poll(() => deckPosition(again)).toBe('2 / 8');
  await expect(again.locator('.reveal .slides section.present .fragment.visible')).toHaveCount(0);
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect(again.locator('.reveal .slides section.present .fragment.visible')).toHaveCount(1);
  await expect.poll(() => deckPosition(again)).toBe('2 / 8');
});

test('a reload keeps the same channel, and the paired phone keeps working', async ({ browser }) => {
  const deck = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
  await deck.goto(`${server.base}/`);
  const first = new URL(await readDeckQr(deck));
  const phone = await (await browser.newContext({ ...phoneDevice })).newPage();
  await phone.goto(toLoopback(first.toString()));
  await allowPhone(deck, phone);
  await expect(phone.locator('#conn')).toHaveAttribute('data-state', 'live');
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect.poll(() => deckPosition(deck)).toBe('2 / 8');

  await deck.reload();
  // Back on the same slide, same channel: the follow QR names the same id.
  await expect.poll(() => deckPosition(deck)).toBe('2 / 8');
  await deck.locator('[data-clicker-qr][data-url]').waitFor({ state: 'attached' });
  const after = new URL((await deck.getAttribute('[data-clicker-qr]', 'data-url'))!);
  expect(after.pathname.split('/').pop()).toBe(first.pathname.split('/').pop());

  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect(deck.locator('.reveal .slides section.present .fragment.visible')).toHaveCount(1);
});
