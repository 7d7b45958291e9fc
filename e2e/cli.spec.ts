// Presenting your own talk: a Markdown deck from a temporary folder, started
// through the command line, with an image beside it and speaker notes.
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import { devices, expect, test, type Page } from '@playwright/test';
import { ClickerServer, closePages, deckPosition, markPage, readDeckQr, recordFrames, titlesSeen, toLoopback, allowPhone } from './fixtures';

const TALK = `---
title: Owls at night
theme: white
---

# Owls at night

![A grey owl](owl.png)

Note:
Start with the silent flight.

---

## Feathers

Soft edges break up the air.

Note:
Pass the feather around the room.

--

## Ears
<!-- .slide: data-notes="Ask who has heard one call." -->

One ear sits higher than the other.

---

## Thanks
`;

function writePng(file: string): void {
  const png = new PNG({ width: 64, height: 48 });
  png.data.fill(0x80);
  writeFileSync(file, PNG.sync.write(png));
}

/**
 * What the floating QR covers on the title slide: lines of its text, its
 * images, reveal.js's Next arrow and slide number, the presenter status.
 */
function floatingQrOverlaps(deck: Page): Promise<string[]> {
  return deck.evaluate(() => {
    const qr = document.querySelector('.clicker-qr-floating')!.getBoundingClientRect();
    const hits = (r: DOMRect) => r.width > 0 && r.left < qr.right && qr.left < r.right && r.top < qr.bottom && qr.top < r.bottom;
    const found: string[] = [];
    const slide = document.querySelector('.reveal .slides section.present')!;
    const walker = document.createTreeWalker(slide, NodeFilter.SHOW_TEXT);
    const range = document.createRange();
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (!n.nodeValue?.trim() || n.parentElement?.closest('aside.notes')) continue;
      range.selectNodeContents(n);
      if ([...range.getClientRects()].some(hits)) found.push(`text "${n.nodeValue.trim()}"`);
    }
    for (const sel of ['.reveal .slides section.present img', '.reveal .controls .navigate-right', '.reveal .slide-number', '.clicker-status']) {
      const el = document.querySelector(sel);
      if (el && hits(el.getBoundingClientRect())) found.push(sel);
    }
    return found;
  });
}

let server: ClickerServer;
let dir: string;
test.beforeEach(async () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'clicker-deck-'));
  dir = path.join(root, 'talk');
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'talk.md'), TALK);
  writePng(path.join(dir, 'owl.png'));
  mkdirSync(path.join(dir, 'assets'));
  writePng(path.join(dir, 'assets', 'logo.png'));
  writeFileSync(path.join(root, 'secret.txt'), 'not for the audience');
  writeFileSync(path.join(dir, '.env'), 'TOKEN=hidden');
  server = await ClickerServer.start([path.join(dir, 'talk.md')]);
});
test.afterEach(async ({ browser }) => {
  await closePages(browser);
  await server.stop();
});

test("the user's own deck: their title slide, their image, their notes on the phone", async ({ browser }) => {
  const deck = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
  await deck.goto(`${server.base}/`);
  await expect(deck).toHaveTitle('Owls at night');
  await expect(deck.locator('.reveal .slides section.present h1')).toHaveText('Owls at night');
  await expect(deck.locator('link[href="/assets/theme/white.css"]')).toHaveCount(1);
  const img = deck.locator('.reveal .slides section.present img');
  await expect.poll(() => img.evaluate((el: HTMLImageElement) => el.complete && el.naturalWidth)).toBe(64);
  expect(await deckPosition(deck)).toBe('1 / 4');
  // Their title slide has no place for the QR, so it floats in a corner: clear
  // of their title and image, of reveal.js's arrows and slide number, and of
  // the presenter status.
  await deck.locator('[data-clicker-qr-code] img').waitFor();
  expect(await floatingQrOverlaps(deck)).toEqual([]);

  const phone = await (await browser.newContext({ ...devices['Pixel 7'] })).newPage();
  await phone.goto(toLoopback(await readDeckQr(deck)));
  await allowPhone(deck, phone);
  await expect(phone.locator('#title')).toHaveText('Owls at night');
  await expect(phone.locator('#notes')).toHaveText('Start with the silent flight.');
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect(phone.locator('#title')).toHaveText('Feathers');
  await expect(phone.locator('#notes')).toHaveText('Pass the feather around the room.');
  await expect(phone.locator('#next-title')).toHaveText('Ears');
  // The QR stays on the title slide only: it does not cover the user's other slides.
  await expect(deck.locator('[data-clicker-qr]')).toBeHidden();
});

test('the follow page holds no speaker notes, while the phone shows them', async ({ browser }) => {
  const deck = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
  await deck.goto(`${server.base}/`);
  const qr = new URL(toLoopback(await readDeckQr(deck)));
  const phone = await (await browser.newContext({ ...devices['Pixel 7'] })).newPage();
  await phone.goto(qr.href);
  await allowPhone(deck, phone);
  await expect(phone.locator('#notes')).toHaveText('Start with the silent flight.');

  const follower = await (await browser.newContext({ ...devices['Pixel 7'] })).newPage();
  const streamed: string[] = [];
  follower.on('response', (res) => {
    if (/\/(_audience\.md|_deck\.md)$/.test(new URL(res.url()).pathname)) streamed.push(new URL(res.url()).pathname);
  });
  await follower.goto(`${server.base}${qr.pathname.replace(/^\/r\//, '/f/')}`);
  await expect(follower.locator('.reveal .slides section.present h1')).toHaveText('Owls at night');
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect(follower.locator('.reveal .slides section.present > h2')).toHaveText('Feathers');
  await expect(phone.locator('#notes')).toHaveText('Pass the feather around the room.');
  // Notes given in a `.slide:` comment reach the phone, and not the follower.
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect(follower.locator('.reveal .slides section.present > h2')).toHaveText('Ears');
  await expect(phone.locator('#notes')).toHaveText('Ask who has heard one call.');
  // Not in its DOM, not in what it loaded: the Markdown it read is the audience's copy.
  const html = await follower.content();
  for (const secret of ['silent flight', 'Pass the feather', 'heard one call']) expect(html).not.toContain(secret);
  expect(await follower.locator('[data-notes]').count()).toBe(0);
  expect(await follower.locator('aside.notes').count()).toBe(0);
  expect(streamed).toEqual(['/_audience.md']);
  const audienceMd = await (await follower.request.get(`${server.base}/_audience.md`)).text();
  expect(audienceMd).toContain('## Feathers');
  expect(audienceMd).not.toContain('Pass the feather');
  expect(audienceMd).not.toContain('heard one call');
});

test('editing the deck reloads the slideshow in place, and the phone stays paired', async ({ browser }) => {
  const deck = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
  await deck.addInitScript(recordFrames);
  await deck.goto(`${server.base}/`);
  const qr = new URL(toLoopback(await readDeckQr(deck)));
  const phone = await (await browser.newContext({ ...devices['Pixel 7'] })).newPage();
  await phone.goto(qr.href);
  await allowPhone(deck, phone);
  await phone.getByRole('button', { name: 'Next' }).tap();
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect.poll(() => deckPosition(deck)).toBe('3 / 4');
  // Someone in the audience joins now: the presenter's slide is the first they see, not the title slide on the way to it.
  const follower = await (await browser.newContext({ ...devices['Pixel 7'] })).newPage();
  await follower.addInitScript(recordFrames);
  await follower.goto(`${server.base}${qr.pathname.replace(/^\/r\//, '/f/')}`);
  await expect(follower.locator('.reveal .slides section.present > h2')).toHaveText('Ears');
  await follower.waitForTimeout(500);
  expect(await titlesSeen(follower)).toEqual(['Ears']);

  const file = path.join(dir, 'talk.md');
  writeFileSync(file, readFileSync(file, 'utf8').replace('## Ears', '## Ears, edited live'));
  await expect(deck.locator('.reveal .slides section.present > h2')).toHaveText('Ears, edited live');
  expect(await deckPosition(deck)).toBe('3 / 4');
  // The room saw no other slide on the way back: not the title slide, nor the transition to this one.
  await deck.waitForTimeout(1_000);
  expect(await titlesSeen(deck)).toEqual(['Ears, edited live']);
  // The follower reloads too, and likewise shows only where the presenter is.
  await expect(follower.locator('.reveal .slides section.present > h2')).toHaveText('Ears, edited live');
  expect(await titlesSeen(follower)).toEqual(['Ears, edited live']);
  await expect(phone.locator('#title')).toHaveText('Ears, edited live');
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect.poll(() => deckPosition(deck)).toBe('4 / 4');

  // A slide added while presenting, above the one on screen: the slideshow stays on its slide (now the fifth),
  // the phone's slide list learns the new one, and a jump lands where it says.
  writeFileSync(file, readFileSync(file, 'utf8').replace('## Thanks', '## Questions?\n\n---\n\n## Thanks'));
  await expect.poll(() => deckPosition(deck)).toBe('5 / 5');
  await expect(deck.locator('.reveal .slides section.present > h2')).toHaveText('Thanks');
  await expect(phone.locator('#title')).toHaveText('Thanks');
  await phone.getByRole('button', { name: 'Slides' }).tap();
  const list = phone.getByRole('dialog', { name: 'Jump to slide' });
  await expect(list.getByRole('button')).toHaveText(['Close', 'Owls at night', 'Feathers', 'Ears, edited live', 'Questions?', 'Thanks']);
  await list.getByRole('button', { name: 'Questions?' }).tap();
  await expect.poll(() => deckPosition(deck)).toBe('4 / 5');
  await expect(deck.locator('.reveal .slides section.present > h2')).toHaveText('Questions?');
  // One removed above it: still the same slide.
  writeFileSync(file, readFileSync(file, 'utf8').replace(/# Owls at night\n[\s\S]*?\n---\n\n/, ''));
  await expect.poll(() => deckPosition(deck)).toBe('3 / 4');
  await expect(deck.locator('.reveal .slides section.present > h2')).toHaveText('Questions?');
});


test('saving the deck while blacked out keeps the screen black', async ({ browser }) => {
  const deck = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
  await deck.addInitScript(recordFrames);
  await deck.goto(`${server.base}/`);
  const phone = await (await browser.newContext({ ...devices['Pixel 7'] })).newPage();
  await phone.goto(toLoopback(await readDeckQr(deck)));
  await allowPhone(deck, phone);
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect.poll(() => deckPosition(deck)).toBe('2 / 4');
  await phone.getByRole('button', { name: 'Blackout' }).tap();
  await expect(deck.locator('.reveal')).toHaveClass(/\bpaused\b/);

  const file = path.join(dir, 'talk.md');
  writeFileSync(file, readFileSync(file, 'utf8').replace('## Feathers', '## Feathers, edited in the dark'));
  await expect(deck.locator('.reveal .slides section.present > h2')).toHaveText('Feathers, edited in the dark');
  await expect(deck.locator('.reveal')).toHaveClass(/\bpaused\b/);
  await expect(phone.getByRole('button', { name: 'Blackout' })).toHaveAttribute('aria-pressed', 'true');
  // Not one frame of the reload showed the room a slide: the title slide on the way, or this one before it went black.
  await deck.waitForTimeout(1_000);
  expect(await titlesSeen(deck)).toEqual([]);
  await phone.getByRole('button', { name: 'Blackout' }).tap();
  await expect(deck.locator('.reveal')).not.toHaveClass(/\bpaused\b/);
});

test('the saved slide is resumed for the same deck soon after, and never for another deck or a day later', async ({ browser }) => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const deck = await ctx.newPage();
  await deck.goto(`${server.base}/`);
  // reveal.js takes keys once it is ready; a key pressed before is lost, as it would be for a person.
  await expect(deck.locator('.reveal')).toHaveClass(/\bready\b/);
  await deck.keyboard.press('Space');
  await deck.keyboard.press('Space');
  await expect.poll(() => deckPosition(deck)).toBe('3 / 4');
  // A restart of the same talk: back where it was.
  await deck.close();
  server = await server.restart('SIGTERM');
  const again = await ctx.newPage();
  await again.goto(`${server.base}/`);
  await expect.poll(() => deckPosition(again)).toBe('3 / 4');
  await again.close();

  // Another talk on the same address (the same browser storage): its title slide, with the QR code on it.
  const port = server.port;
  await server.stop();
  const other = path.join(dir, 'other.md');
  writeFileSync(other, '# Another talk\n\n---\n\n## Its second slide\n\n---\n\n## Its third\n');
  server = await ClickerServer.start([other], {}, port);
  const next = await ctx.newPage();
  await next.goto(`${server.base}/`);
  await expect(next.locator('.reveal .slides section.present h1')).toHaveText('Another talk');
  expect(await deckPosition(next)).toBe('1 / 3');
  await expect(next.locator('[data-clicker-qr]')).toBeVisible();
  await next.keyboard.press('ArrowRight');
  await expect.poll(() => deckPosition(next)).toBe('2 / 3');
  await next.close();

  // The same deck, opened again a day after it was left: from the top.
  const later = await ctx.newPage();
  await later.addInitScript(() => {
    const raw = localStorage.getItem('clicker.deck.v1');
    if (raw) localStorage.setItem('clicker.deck.v1', JSON.stringify({ ...JSON.parse(raw), at: Date.now() - 24 * 3600_000 }));
  });
  await later.goto(`${server.base}/`);
  await expect(later.locator('.reveal .slides section.present h1')).toHaveText('Another talk');
  expect(await deckPosition(later)).toBe('1 / 3');
});

test('notes keep their lists on the phone; Notes: works as Note: does; a <br> in a heading is a space', async ({ browser }) => {
  const mdDir = mkdtempSync(path.join(os.tmpdir(), 'clicker-notes-'));
  writeFileSync(
    path.join(mdDir, 'talk.md'),
    [
      '# Scaling Postgres<br>to a billion rows',
      '',
      'notes:',
      'Open with the graph.',
      '',
      '- point **one**',
      '- point two',
      '',
      '1. first step',
      '2. second step',
      '',
      '---',
      '',
      '## Part one<br/>The setup',
      '',
      'Notes:',
      'Plural works too.',
      '',
    ].join('\n'),
  );
  const own = await ClickerServer.start([path.join(mdDir, 'talk.md')]);
  try {
    const deck = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
    await deck.goto(`${own.base}/`);
    // The notes are notes, not words on the projected slide.
    await expect(deck.locator('.reveal .slides section.present aside.notes')).toHaveCount(1);
    await expect(deck.getByText('Open with the graph.')).toBeHidden();
    const phone = await (await browser.newContext({ ...devices['Pixel 7'] })).newPage();
    await phone.goto(toLoopback(await readDeckQr(deck)));
    await allowPhone(deck, phone);
    await expect(phone.locator('#title')).toHaveText('Scaling Postgres to a billion rows');
    await expect(phone.locator('#next-title')).toHaveText('Part one The setup');
    expect(await phone.locator('#notes').evaluate((el) => el.textContent)).toBe(
      'Open with the graph.\n\n• point one\n• point two\n\n1. first step\n2. second step',
    );
    await phone.getByRole('button', { name: 'Next' }).tap();
    await expect(phone.locator('#notes')).toHaveText('Plural works too.');
    await expect(deck.locator('.reveal .slides section.present aside.notes')).toHaveCount(1);
    await expect(deck.getByText('Plural works too.')).toBeHidden();
  } finally {
    await own.stop();
  }
});

test('the floating QR finds a corner clear of a long title, on a 4:3 projector too', async ({ browser }) => {
  const longDir = mkdtempSync(path.join(os.tmpdir(), 'clicker-long-'));
  writeFileSync(path.join(longDir, 'talk.md'), '---\ntheme: white\n---\n\n# Scaling Postgres to a billion rows a day\n\nJane Doe\n\nPGConf 2026\n\n---\n\n## Two\n');
  const own = await ClickerServer.start([path.join(longDir, 'talk.md')]);
  try {
    for (const viewport of [{ width: 1024, height: 768 }, { width: 1280, height: 720 }, { width: 1920, height: 1080 }]) {
      const deck = await (await browser.newContext({ viewport })).newPage();
      await deck.goto(`${own.base}/`);
      await deck.locator('[data-clicker-qr-code] img').waitFor();
      await expect.poll(() => floatingQrOverlaps(deck), { message: `${viewport.width}x${viewport.height}` }).toEqual([]);
      await deck.screenshot({ path: test.info().outputPath(`qr-${viewport.width}.png`) });
      // Still scannable: the pairing URL reads from the screenshot.
      expect(new URL(await readDeckQr(deck)).pathname).toMatch(/^\/r\//);
      // Back on the title slide, and after a new pairing code (Q) from
      // another slide: placed where the words came to rest, not where they
      // were while the slide was still sliding in.
      await deck.keyboard.press('ArrowRight');
      await expect.poll(() => deckPosition(deck)).toBe('2 / 2');
      await deck.keyboard.press('ArrowLeft');
      await expect.poll(() => deckPosition(deck)).toBe('1 / 2');
      await expect.poll(() => floatingQrOverlaps(deck), { message: `back, ${viewport.width}x${viewport.height}` }).toEqual([]);
      // Q on another slide shows the fresh code over it and leaves the deck there; back on the title slide, that slide's own QR shows it.
      await deck.keyboard.press('ArrowRight');
      await expect.poll(() => deckPosition(deck)).toBe('2 / 2');
      await deck.keyboard.press('q');
      await expect(deck.locator('[data-clicker-pair-panel]')).toBeVisible();
      expect(await deckPosition(deck)).toBe('2 / 2');
      await deck.keyboard.press('ArrowLeft');
      await expect.poll(() => deckPosition(deck)).toBe('1 / 2');
      await expect(deck.locator('[data-clicker-pair-panel]')).toBeHidden();
      await expect.poll(() => floatingQrOverlaps(deck), { message: `Q, ${viewport.width}x${viewport.height}` }).toEqual([]);
      await deck.context().close();
    }
  } finally {
    await own.stop();
  }
});

test('titles holding control characters reach the phone without them, and every move is still reported', async ({ browser }) => {
  // A BEL in a data-title and a DEL and a SOH in headings: the state schema
  // refuses control characters in a title, so unless the slideshow drops them,
  // its reports (and with them the pairing QR) never get through.
  const htmlDir = mkdtempSync(path.join(os.tmpdir(), 'clicker-html-'));
  writeFileSync(
    path.join(htmlDir, 'talk.html'),
    '<section data-title="Bell&#7;s and whistles"><h1>One</h1></section><section><h2>Tab&#1;bed</h2></section><section><h2>&#127;Three</h2></section>',
  );
  const own = await ClickerServer.start([path.join(htmlDir, 'talk.html')]);
  try {
    const deck = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
    await deck.goto(`${own.base}/`);
    const phone = await (await browser.newContext({ ...devices['Pixel 7'] })).newPage();
    await phone.goto(toLoopback(await readDeckQr(deck)));
    await allowPhone(deck, phone);
    await expect(phone.locator('#title')).toHaveText('Bells and whistles');
    await expect(phone.locator('#next-title')).toHaveText('Tabbed');
    await phone.getByRole('button', { name: 'Next' }).tap();
    await expect(phone.locator('#title')).toHaveText('Tabbed');
    await expect(phone.locator('#next-title')).toHaveText('Three');
    await phone.getByRole('button', { name: 'Slides' }).tap();
    const list = phone.getByRole('dialog', { name: 'Jump to slide' });
    await expect(list.getByRole('button', { name: 'Bells and whistles', exact: true })).toBeVisible();
  } finally {
    await own.stop();
  }
});

test("files beside the deck are served; nothing outside its folder, no dotfiles, and not the deck's source", async ({ request }) => {
  expect((await request.get(`${server.base}/owl.png`)).status()).toBe(200);
  // The deck file holds the speaker notes: the pages have it rendered, and the presenter's Markdown stays on the laptop.
  for (const p of ['/talk.md', '/./talk.md', '/%74alk.md', '/assets/../talk.md']) {
    const res = await request.get(`${server.base}${p}`);
    expect(res.status(), p).toBe(404);
    expect(await res.text(), p).not.toContain('silent flight');
  }
  // Nor an editor's copies of it, which hold the same notes.
  for (const name of ['talk.md~', '#talk.md#', 'talk.md.orig', 'talk.md.swp', 'draft.bak']) {
    writeFileSync(path.join(dir, name), 'silent flight');
    const res = await request.get(`${server.base}/${encodeURIComponent(name)}`);
    expect(res.status(), name).toBe(404);
  }
  // Markdown beside the deck (an HTML deck's sections load it) is the presenter's, as the slideshow is.
  writeFileSync(path.join(dir, 'part.md'), '## Part\n\nNote:\nsilent flight');
  expect((await request.get(`${server.base}/part.md`)).status()).toBe(200);
  const relayed = await request.get(`${server.base}/part.md`, { headers: { 'X-Forwarded-For': '198.51.100.7' } });
  expect(relayed.status()).toBe(403);
  expect(await relayed.text()).not.toContain('silent flight');
  // A deck's own assets/ folder, though Clicker's bundles live under /assets too: both are served.
  const logo = await request.get(`${server.base}/assets/logo.png`);
  expect(logo.status()).toBe(200);
  expect(logo.headers()['content-type']).toBe('image/png');
  expect((await request.get(`${server.base}/assets/slides.js`)).status()).toBe(200);
  const missing = await request.get(`${server.base}/assets/nope.png`);
  expect(missing.status()).toBe(404);
  expect(await missing.json()).toEqual({ error: 'not found' });
  for (const p of ['/../secret.txt', '/%2e%2e/secret.txt', '/..%2fsecret.txt', '/%2e%2e%2fsecret.txt', '/.env']) {
    const res = await request.get(`${server.base}${p}`);
    expect(res.status(), p).toBeGreaterThanOrEqual(400);
    expect(res.status(), p).toBeLessThan(500);
    expect(await res.text(), p).not.toMatch(/not for the audience|TOKEN=hidden/);
  }
});

test('from another machine the slideshow opens only with the presenter link, whose key leaves the address bar; the room gets a readable refusal', async ({ browser }) => {
  const key = 'e2e-presenter-key-0123456789';
  // Behind a trusted proxy, X-Forwarded-For makes this loopback browser another machine.
  const remote = await ClickerServer.start([path.join(dir, 'talk.md'), '--trust-proxy'], { PRESENTER_KEY: key });
  try {
    const room = await (await browser.newContext({ ...devices['Pixel 7'], extraHTTPHeaders: { 'X-Forwarded-For': '198.51.100.7' } })).newPage();
    const refused = await room.goto(`${remote.base}/`);
    expect(refused?.status()).toBe(403);
    await expect(room.getByRole('heading', { name: 'Forbidden' })).toBeVisible();
    await expect(room.locator('p')).toContainText('open it with the presenter link');
    await expect(room.locator('p')).toContainText('scan the QR code on the screen');
    await room.screenshot({ path: test.info().outputPath('refused-phone.png') });
    expect((await room.goto(`${remote.base}/?key=${key.slice(0, -1)}`))?.status()).toBe(403);
    expect(await room.context().cookies()).toEqual([]);

    const laptop = await (await browser.newContext({ viewport: { width: 1280, height: 720 }, extraHTTPHeaders: { 'X-Forwarded-For': '198.51.100.20' } })).newPage();
    const markdown: number[] = [];
    laptop.on('response', (res) => {
      if (new URL(res.url()).pathname === '/_deck.md') markdown.push(res.status());
    });
    await laptop.goto(`${remote.base}/?key=${key}`);
    // The room reads the projected address bar: the key is gone from it, kept in an HttpOnly cookie.
    expect(laptop.url()).toBe(`${remote.base}/`);
    await expect(laptop.locator('.reveal .slides section.present h1')).toHaveText('Owls at night');
    expect(await laptop.locator('aside.notes').count()).toBeGreaterThan(0);
    const [cookie] = await laptop.context().cookies();
    expect(cookie).toMatchObject({ name: 'clicker_presenter', httpOnly: true, sameSite: 'Strict' });
    expect(cookie!.value).not.toContain(key);
    expect(await laptop.evaluate(() => document.cookie)).toBe('');
    // A reload (or the live reload on a saved deck) needs no link again.
    await laptop.reload();
    await expect(laptop.locator('.reveal .slides section.present h1')).toHaveText('Owls at night');
    expect(markdown).toEqual([200, 200]);
  } finally {
    await remote.stop();
  }
});

test("a theme's web fonts come from Clicker itself: the slideshow draws them with no request off this machine and nothing refused", async ({ browser }) => {
  // sky imports Quicksand and Open Sans from Google Fonts; Clicker carries both.
  const own = await ClickerServer.start(['--theme', 'sky']);
  try {
    const deck = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
    const elsewhere: string[] = [];
    deck.on('request', (r) => {
      if (!r.url().startsWith(`${own.base}/`) && !r.url().startsWith('data:')) elsewhere.push(r.url());
    });
    const refused: string[] = [];
    deck.on('console', (m) => {
      if (/Content Security Policy|Refused to load/i.test(m.text())) refused.push(m.text());
    });
    const fonts: string[] = [];
    deck.on('response', (r) => {
      if (r.url().includes('/assets/fonts/')) fonts.push(`${r.status()} ${new URL(r.url()).pathname}`);
    });
    await deck.goto(`${own.base}/`);
    await expect(deck.locator('.reveal')).toHaveClass(/\bready\b/);
    const loaded = await deck.evaluate(async () => {
      await document.fonts.ready;
      return [...document.fonts].filter((f) => f.status === 'loaded').map((f) => `${f.family.replace(/"/g, '')} ${f.weight} ${f.style}`);
    });
    // The title's heading font and the body font, drawn from Clicker's own files.
    expect(loaded).toEqual(expect.arrayContaining(['Quicksand 400 normal', 'Open Sans 400 normal']));
    expect(await deck.locator('.reveal h1').first().evaluate((h) => getComputedStyle(h).fontFamily)).toMatch(/^"?Quicksand"?,/);
    expect(fonts.length).toBeGreaterThan(0);
    expect(fonts.every((f) => f.startsWith('200 /assets/fonts/'))).toBe(true);
    expect(elsewhere).toEqual([]);
    expect(refused).toEqual([]);
  } finally {
    await own.stop();
  }
});

test('a save finds the slide on screen again by its words, its title and its neighbours: not another slide with the same title', async ({ browser }) => {
  const ownDir = mkdtempSync(path.join(os.tmpdir(), 'clicker-marks-'));
  const file = path.join(ownDir, 'talk.md');
  // The title slide has a background of its own: a page placing itself elsewhere must not show it on the way.
  const slides = ['<!-- .slide: data-background-color="#5a1a3a" -->\n\n# Talk', '## Demo\n\nThe first demo', 'Only words here, no heading', '## Demo\n\nThe second demo', '## End'];
  const save = (list: string[]) => writeFileSync(file, list.join('\n\n---\n\n') + '\n');
  save(slides);
  const own = await ClickerServer.start([file]);
  try {
    const deck = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
    await deck.goto(`${own.base}/`);
    await expect(deck.locator('.reveal')).toHaveClass(/\bready\b/);
    const present = deck.locator('.reveal .slides section.present');
    // Each save reloads the page: a mark set on this one is gone after it.
    const saveAndReload = async (list: string[]) => {
      const page = await markPage(deck);
      save(list);
      await expect.poll(() => page.reloaded()).toBe(true);
      await expect(deck.locator('.reveal')).toHaveClass(/\bready\b/);
      await expect(deck.locator('.reveal')).not.toHaveClass(/\bclicker-restoring\b/);
    };
    const qr = new URL(toLoopback(await readDeckQr(deck)));
    for (let i = 0; i < 3; i++) await deck.keyboard.press('ArrowRight');
    await expect(present).toContainText('The second demo');
    // An audience member joining now sees that slide, and nothing of the title slide first.
    const follower = await (await browser.newContext({ ...devices['iPhone 13'] })).newPage();
    await follower.addInitScript(recordFrames);
    await follower.goto(`${own.base}/f/${qr.pathname.split('/').pop()}`);
    await expect(follower.locator('.reveal .slides section.present')).toContainText('The second demo');
    await follower.waitForTimeout(500);
    expect(await titlesSeen(follower)).toEqual(['Demo']);

    // A slide added above: the second "Demo" is found, not the first (as near to the old place).
    let now = [slides[0]!, '## Added', ...slides.slice(1)];
    await saveAndReload(now);
    expect(await deckPosition(deck)).toBe('5 / 6');
    await expect(present).toContainText('The second demo');

    // Retitled: its words still say which it is, rather than the other "Demo".
    now = now.map((x) => x.replace('## Demo\n\nThe second demo', '## Demo, retitled\n\nThe second demo'));
    await saveAndReload(now);
    expect(await deckPosition(deck)).toBe('5 / 6');
    await expect(present.locator('h2')).toHaveText('Demo, retitled');

    // A slide with no heading is known by its words.
    await deck.keyboard.press('ArrowLeft');
    await expect(present).toContainText('Only words here');
    now = [slides[0]!, '## Added too', ...now.slice(1)];
    await saveAndReload(now);
    expect(await deckPosition(deck)).toBe('5 / 7');
    await expect(present).toContainText('Only words here');

    // Deleted: the numbers are kept (the next slide moved into its place), not a jump to a slide sharing a title.
    await deck.keyboard.press('ArrowLeft');
    await expect(present).toContainText('The first demo');
    now = now.filter((x) => !x.includes('The first demo'));
    await saveAndReload(now);
    expect(await deckPosition(deck)).toBe('4 / 6');
    await expect(present).toContainText('Only words here');

    // A slide that is a picture alone, with no title and no words, is known by its picture.
    now = [...now.slice(0, 4), '![The kite](kite.png)', '![](plan.png)', ...now.slice(4)];
    await saveAndReload(now);
    await deck.keyboard.press('ArrowRight');
    await deck.keyboard.press('ArrowRight');
    await expect(present.locator('img')).toHaveAttribute('src', 'plan.png');
    expect(await deckPosition(deck)).toBe('6 / 8');
    now = [slides[0]!, '## Added a third', ...now.slice(1)];
    await saveAndReload(now);
    expect(await deckPosition(deck)).toBe('7 / 9');
    await expect(present.locator('img')).toHaveAttribute('src', 'plan.png');
  } finally {
    await own.stop();
  }
});

test("an HTML deck's stylesheet, Markdown part and picture reload the slideshow when saved; an editor's backup file does not", async ({ browser }) => {
  const htmlDir = mkdtempSync(path.join(os.tmpdir(), 'clicker-live-'));
  mkdirSync(path.join(htmlDir, 'css'));
  writeFileSync(path.join(htmlDir, 'css', 'talk.css'), '.reveal .slides h1 { color: rgb(255, 0, 0); }');
  writeFileSync(path.join(htmlDir, 'part.md'), '## From the part\n\nFirst words');
  writeFileSync(
    path.join(htmlDir, 'talk.html'),
    '<!doctype html><html><head><title>Live</title><link rel="stylesheet" href="css/talk.css"></head><body><div class="reveal"><div class="slides"><section><h1>Styled</h1></section><section data-markdown="part.md"></section></div></div></body></html>',
  );
  const own = await ClickerServer.start([path.join(htmlDir, 'talk.html')]);
  try {
    const deck = await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage();
    await deck.goto(`${own.base}/`);
    const h1 = deck.locator('.reveal .slides section h1').first();
    await expect(h1).toHaveCSS('color', 'rgb(255, 0, 0)');
    // Each reload starts a new page: a mark set on this one is gone after it.
    let page = await markPage(deck);
    writeFileSync(path.join(htmlDir, 'css', 'talk.css'), '.reveal .slides h1 { color: rgb(0, 128, 0); }');
    await expect(h1).toHaveCSS('color', 'rgb(0, 128, 0)');
    await expect.poll(() => page.reloaded()).toBe(true);

    page = await markPage(deck);
    writeFileSync(path.join(htmlDir, 'part.md'), '## From the part\n\nEdited words');
    await expect(deck.locator('.reveal .slides').getByText('Edited words')).toBeAttached();
    await expect.poll(() => page.reloaded()).toBe(true);

    // Backups and swap files an editor writes beside the real ones change nothing on screen.
    page = await markPage(deck);
    for (const f of ['css/talk.css~', '.talk.html.swp', 'part.md.orig', 'notes.txt']) writeFileSync(path.join(htmlDir, f), 'x');
    await deck.waitForTimeout(1_500);
    expect(await page.reloaded({ strict: true })).toBe(false);
    await expect(h1).toHaveCSS('color', 'rgb(0, 128, 0)');
  } finally {
    await own.stop();
  }
});
