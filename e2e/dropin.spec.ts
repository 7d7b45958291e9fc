// The drop-in script (dropin/clicker.ts, served as /clicker.js) on a plain
// page of another origin: examples/plain.html, served by a tiny static server
// on 127.0.0.1 and a different port, so every request it makes to Clicker is
// cross-origin. Clicker allows that one origin with --allow-origin; a page
// from a third port is not allowed and must get nowhere.
//
// Only 127.0.0.1 is ever opened: the QR carries the LAN address, which is
// read, checked, and swapped for loopback (toLoopback) before the phone goes
// there. Every context records the hosts it contacts, and the test fails if
// one is not loopback.
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { devices, expect, test, type Page } from '@playwright/test';
import type { ChannelInfo } from '../protocol/wire';
import { ClickerServer, closePages, decodeQr, lanAddresses, LoopbackOnly, toLoopback, allowPhone } from './fixtures';

const phoneDevice = devices['Pixel 7'];
const EXAMPLES = path.resolve(import.meta.dirname, '..', 'examples');
/** What examples/plain.html's script tag points at; the static server swaps in the test's Clicker. */
const EXAMPLE_CLICKER = 'http://localhost:3000';

interface StaticSite {
  readonly origin: string;
  close(): Promise<void>;
}

/**
 * Serves examples/ on 127.0.0.1 and a free port: a page of another origin.
 * HTML gets its Clicker address rewritten to the loopback one under test.
 */
async function serveExamples(clickerBase: () => string): Promise<StaticSite> {
  const server = http.createServer((req, res) => {
    const name = new URL(req.url ?? '/', 'http://x').pathname.slice(1) || 'plain.html';
    if (!/^[a-z0-9-]+\.(html|js)$/.test(name)) {
      res.writeHead(404).end();
      return;
    }
    readFile(path.join(EXAMPLES, name), 'utf8').then(
      (text) => {
        const html = name.endsWith('.html');
        res.writeHead(200, { 'Content-Type': html ? 'text/html; charset=utf-8' : 'text/javascript; charset=utf-8', 'Cache-Control': 'no-store' });
        res.end(html ? text.replaceAll(EXAMPLE_CLICKER, clickerBase()) : text);
      },
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

let clicker: ClickerServer;
/** The page origin Clicker allows. */
let allowed: StaticSite;
/** A page origin Clicker does not allow. */
let foreign: StaticSite;
const loopback = new LoopbackOnly();

test.beforeEach(async () => {
  loopback.reset();
  allowed = await serveExamples(() => clicker.base);
  foreign = await serveExamples(() => clicker.base);
  clicker = await ClickerServer.start(['--allow-origin', allowed.origin]);
});
test.afterEach(async ({ browser }) => {
  await closePages(browser);
  // Optional: a beforeEach that failed part-way leaves some of these unset.
  await clicker?.stop();
  await Promise.all([allowed?.close(), foreign?.close()]);
  expect(loopback.off, 'every request went to 127.0.0.1').toEqual([]);
});


/** Screenshots the QR inside the overlay's shadow root (Playwright's CSS locators pierce open shadow roots) and decodes it. */
async function readOverlayQr(page: Page): Promise<string> {
  const qr = page.locator('clicker-overlay [data-clicker-qr-code] svg');
  await qr.waitFor();
  return decodeQr(await qr.screenshot());
}

/** Opens examples/plain.html from `site` and waits until its Clicker.start() has settled. */
async function openExample(page: Page, site: StaticSite, state: 'ready' | 'error'): Promise<void> {
  await page.goto(`${site.origin}/plain.html`);
  await expect(page.locator('#status')).toHaveAttribute('data-state', state, { timeout: 20_000 });
}

/** The channel the drop-in saved in the page's localStorage (its deck key included). */
async function savedChannel(page: Page): Promise<{ id: string; deckKey: string; pairCode?: string }> {
  const raw = await page.evaluate((key) => localStorage.getItem(key), `clicker.dropin.v1:${clicker.base}`);
  expect(raw, 'the drop-in saved its channel').not.toBeNull();
  return JSON.parse(raw!) as { id: string; deckKey: string; pairCode?: string };
}

async function channelCount(): Promise<number> {
  const health = (await (await fetch(`${clicker.base}/healthz`)).json()) as { channels: number };
  return health.channels;
}

/** A command from a program (no Origin, held to its key), as a script of the presenter's would send one. */
async function postCommand(ch: { id: string; deckKey: string }, cmd: Record<string, unknown>): Promise<number> {
  const res = await fetch(`${clicker.base}/api/channels/${ch.id}/commands`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${ch.deckKey}` },
    body: JSON.stringify(cmd),
  });
  return res.status;
}

let seq = 0;
const cmdId = () => `dropin${process.pid}x${String(++seq).padStart(6, '0')}`;

test('a plain page of another origin pairs a phone through the QR overlay and follows Next and Previous', async ({ browser }) => {
  const page = await loopback.newPage(browser, { viewport: { width: 1280, height: 720 } });
  await openExample(page, allowed, 'ready');
  await expect(page.locator('#position')).toHaveText('1 / 4');

  await page.getByRole('button', { name: 'Pair phone' }).click();
  const overlay = page.locator('clicker-overlay');
  await expect(overlay).toHaveAttribute('data-kind', 'pair');
  const firstCode = new URL(await readOverlayQr(page));
  // Screenshot for the README, taken by the test itself.
  await page.screenshot({ path: 'docs/dropin.png' });
  // A code on show can be swapped for a new one (a phone refused by mistake asks again with it).
  await overlay.getByRole('button', { name: 'New code' }).click();
  // The QR is redrawn when the new code arrives: read it once that has happened, not while it may be.
  await expect.poll(async () => (await savedChannel(page)).pairCode).not.toBe(firstCode.hash.slice(1));
  const controllerUrl = new URL(await readOverlayQr(page));
  expect(controllerUrl.hash).not.toBe(firstCode.hash);
  expect(controllerUrl.pathname).toBe(firstCode.pathname);
  // The QR carries the LAN address, never loopback; the phone only ever opens it rewritten.
  expect(lanAddresses()).toContain(controllerUrl.hostname);
  expect(controllerUrl.port).toBe(String(clicker.port));
  expect(controllerUrl.pathname).toMatch(/^\/r\/[A-Za-z0-9_-]{22}$/);
  expect(controllerUrl.hash).toMatch(/^#[A-Za-z0-9_-]{32}$/);
  // The URL is written under the QR, without the one-time code in its fragment.
  await expect(overlay.locator('[data-clicker-qr-url]')).toHaveText(`${controllerUrl.origin}${controllerUrl.pathname}`);
  await expect(overlay.locator('[data-clicker-qr-caption]')).toHaveText('Scan with your phone to use it as the remote');
  // The page's own CSS (`div, p { color: #7a2 }`) stops at the shadow root.
  await expect(overlay.locator('[data-clicker-qr-caption]')).toHaveCSS('color', 'rgb(17, 17, 17)');

  const phone = await loopback.newPage(browser, { ...phoneDevice });
  await phone.goto(toLoopback(controllerUrl.toString()));
  await allowPhone(page, phone);
  await expect(phone.locator('#conn')).toHaveAttribute('data-state', 'live');
  await expect(phone.locator('#position')).toHaveText('1 / 4');
  await expect(phone.locator('#title')).toHaveText('Plain slides');
  await expect(phone.locator('#notes')).toContainText('Welcome everyone.');
  await expect(phone.locator('#next-title')).toHaveText('No framework');
  await expect(phone.getByRole('button', { name: 'Previous' })).toBeDisabled();

  // Paired: the overlay swaps the pairing QR for the follow QR, as the slideshow does.
  await expect(overlay).toHaveAttribute('data-kind', 'follow');
  await expect(overlay.getByRole('button', { name: 'Pair another phone' })).toBeVisible();
  await expect(overlay.getByRole('button', { name: 'New code' })).toHaveCount(0);
  const { id } = await savedChannel(page);
  expect(new URL(await readOverlayQr(page)).pathname).toBe(`/f/${id}`);
  await page.keyboard.press('Escape');
  await expect(overlay).toBeHidden();

  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect(page.locator('#position')).toHaveText('2 / 4');
  await expect(page.locator('.slide.current h1')).toHaveText('No framework');
  await expect(phone.locator('#position')).toHaveText('2 / 4');
  await expect(phone.locator('#title')).toHaveText('No framework');
  await expect(phone.locator('#notes')).toContainText('knows nothing about reveal.js');

  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect(page.locator('#position')).toHaveText('3 / 4');
  await expect(phone.locator('#position')).toHaveText('3 / 4');
  await expect(phone.locator('#title')).toHaveText('Driven by key presses');

  await phone.getByRole('button', { name: 'Previous' }).tap();
  await expect(page.locator('#position')).toHaveText('2 / 4');
  await expect(phone.locator('#position')).toHaveText('2 / 4');

  await phone.getByRole('button', { name: 'Last' }).tap();
  await expect(page.locator('#position')).toHaveText('4 / 4');
  await expect(phone.locator('#title')).toHaveText('The end');
  await expect(phone.getByRole('button', { name: 'Next' })).toBeDisabled();

  // The phone's slide list comes from report({slides}); a jump is a goto, which the page takes in onGoto.
  await phone.getByRole('button', { name: 'Slides' }).tap();
  await phone.locator('#slide-items').getByText('Driven by key presses').tap();
  await expect(page.locator('#position')).toHaveText('3 / 4');
  await expect(phone.locator('#position')).toHaveText('3 / 4');

  // A reload brings back the same channel with its deck key and paired phone: no re-scan.
  await page.reload();
  await expect(page.locator('#status')).toHaveAttribute('data-state', 'ready', { timeout: 20_000 });
  await expect(page.locator('#position')).toHaveText('1 / 4');
  expect((await savedChannel(page)).id).toBe(id);
  await expect(phone.locator('#position')).toHaveText('1 / 4');
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect(page.locator('#position')).toHaveText('2 / 4');
  await expect(phone.locator('#title')).toHaveText('No framework');
  expect(await channelCount()).toBe(1);

  // A Clicker restart (same port, empty hub): the page's stream watchdog re-registers the channel
  // with its deck key and the phone's hash, so the phone keeps working without a re-scan.
  clicker = await clicker.restart();
  await expect.poll(channelCount, { timeout: 20_000 }).toBe(1);
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect(page.locator('#position')).toHaveText('3 / 4', { timeout: 20_000 });
  await expect(phone.locator('#position')).toHaveText('3 / 4', { timeout: 20_000 });
  expect((await savedChannel(page)).id).toBe(id);
});

test('callbacks win over keys, onCommand sees every command, and subscribe() gets the public stream', async ({ browser }) => {
  const page = await loopback.newPage(browser, { viewport: { width: 1024, height: 640 } });
  await openExample(page, allowed, 'ready');
  await expect(page.locator('#position')).toHaveText('1 / 4');
  const ch = await savedChannel(page);

  // Replace the example's session with one that records what it does.
  await page.evaluate(async (channelId) => {
    const w = window as unknown as { log: string[]; events: string[]; Clicker: { start(o: object): Promise<unknown>; subscribe(id: string, h: (e: string, d: unknown) => void): () => void } };
    w.log = [];
    w.events = [];
    document.addEventListener('keydown', (e) => w.log.push(`key:${e.key}:${e.keyCode}`));
    w.Clicker.subscribe(channelId, (name) => w.events.push(name));
    await w.Clicker.start({
      keys: { prev: 'PageUp', last: false },
      onNext: () => w.log.push('onNext'),
      onGoto: (position: number) => w.log.push(`onGoto:${position}`),
      onPause: (on: boolean | undefined) => w.log.push(`onPause:${String(on)}`),
      onCommand: (cmd: { type: string }) => w.log.push(`cmd:${cmd.type}`),
    });
  }, ch.id);
  // Same channel: start() re-registered the saved one.
  expect((await savedChannel(page)).id).toBe(ch.id);
  // subscribe() does not resume from anywhere: wait until its stream is open before sending.
  await expect.poll(() => page.evaluate(() => (window as unknown as { events: string[] }).events[0]), { timeout: 20_000 }).toBe('snapshot');

  for (const cmd of [
    { type: 'next', id: cmdId() },
    { type: 'prev', id: cmdId() },
    { type: 'first', id: cmdId() },
    { type: 'last', id: cmdId() },
    { type: 'goto', id: cmdId(), h: 2, v: 0 },
    { type: 'pause', id: cmdId(), on: true },
  ]) {
    expect(await postCommand(ch, cmd)).toBe(202);
  }
  const log = () => page.evaluate(() => (window as unknown as { log: string[] }).log);
  await expect.poll(log).toEqual([
    'cmd:next',
    'onNext',
    'cmd:prev',
    'key:PageUp:33',
    'cmd:first',
    'key:Home:36',
    'cmd:last',
    'cmd:goto',
    'onGoto:3',
    'cmd:pause',
    'onPause:true',
  ]);
  // A retried POST with the same id is dropped: the page sees it once.
  const again = { type: 'next', id: cmdId() };
  expect(await postCommand(ch, again)).toBe(202);
  expect(await postCommand(ch, again)).toBe(200);
  await expect.poll(async () => (await log()).filter((l) => l === 'onNext').length).toBe(2);

  // A report from page code reaches every subscriber as a state event.
  await page.evaluate(() => (window as unknown as { Clicker: { report(s: object): Promise<boolean> } }).Clicker.report({ position: 2, total: 9, title: 'From page code' }));
  const events = () => page.evaluate(() => (window as unknown as { events: string[] }).events);
  await expect.poll(events).toContain('state');
  const seen = await events();
  expect(seen[0]).toBe('snapshot');
  expect(seen.filter((e) => e === 'command').length).toBe(7);
});

test('a page from an origin that is not allowed is refused: start() rejects, onError fires, no channel, nothing posted', async ({ browser }) => {
  const page = await loopback.newPage(browser, { viewport: { width: 1024, height: 640 } });
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await openExample(page, foreign, 'error');
  // The example shows what onError received.
  await expect(page.locator('#status')).toContainText(`--allow-origin ${foreign.origin}`);
  expect(await channelCount()).toBe(0);

  // start() itself rejects with the same clear message.
  const message = await page.evaluate(() =>
    (window as unknown as { Clicker: { start(): Promise<unknown> } }).Clicker.start().then(
      () => 'started',
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    ),
  );
  expect(message).toContain(`does not allow this page's origin ${foreign.origin}`);
  expect(message).toContain(`--allow-origin ${foreign.origin}`);
  // The overlay says so instead of showing a QR.
  await page.getByRole('button', { name: 'Pair phone' }).click();
  await expect(page.locator('clicker-overlay')).toHaveAttribute('data-kind', 'error');
  await expect(page.locator('clicker-overlay [data-clicker-qr-caption]')).toContainText('--allow-origin');
  await expect(page.locator('clicker-overlay [data-clicker-qr-code]')).toBeHidden();
  expect(await channelCount()).toBe(0);

  // A real channel exists; this page even holds its deck key, and still cannot post to it.
  const created = (await (await fetch(`${clicker.base}/api/channels`, { method: 'POST' })).json()) as ChannelInfo;
  const attempts = await page.evaluate(
    async ({ base, id, key }) => {
      const outcome = (p: Promise<Response>) => p.then((r) => `answered ${r.type} ${r.status}`, (e: unknown) => `refused ${String(e)}`);
      const cmd = (n: number) => JSON.stringify({ type: 'next', id: `foreign-${n}-0000` });
      return [
        // A CORS request with the key: its preflight is refused (403), so it is never sent.
        await outcome(fetch(`${base}/api/channels/${id}/commands`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` }, body: cmd(1) })),
        // "Simple" requests go out without a preflight; the server refuses the foreign Origin (403) and the page cannot read it.
        await outcome(fetch(`${base}/api/channels/${id}/commands`, { method: 'POST', mode: 'no-cors', headers: { 'Content-Type': 'text/plain' }, body: cmd(2) })),
        await outcome(fetch(`${base}/api/channels`, { method: 'POST', mode: 'no-cors' })),
        // Reading the stream is public, but without CORS headers for this origin the page cannot.
        await outcome(fetch(`${base}/api/channels/${id}/events`)),
      ];
    },
    { base: clicker.base, id: created.id, key: created.deckKey },
  );
  expect(attempts[0]).toMatch(/^refused TypeError/);
  // The simple requests did go out. Whether the page then sees an opaque answer or a network error
  // depends on the refusal's own headers (helmet's Cross-Origin-Resource-Policy on the Express routes);
  // either way the server refused them, which the channel count and the history below show.
  expect(attempts[1]).toMatch(/^(answered opaque 0|refused TypeError)/);
  expect(attempts[2]).toMatch(/^(answered opaque 0|refused TypeError)/);
  expect(attempts[3]).toMatch(/^refused TypeError/);
  expect(await channelCount()).toBe(1);

  // Nothing reached the channel: its history replays no command before this fence.
  const fence = cmdId();
  expect(await postCommand(created, { type: 'first', id: fence })).toBe(202);
  const ctl = new AbortController();
  const res = await fetch(`${clicker.base}/api/channels/${created.id}/events?lastEventId=0`, { signal: ctl.signal });
  const reader = res.body!.getReader();
  let text = '';
  while (!text.includes(fence)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  ctl.abort();
  expect(text).toContain(fence);
  expect(text).not.toContain('foreign-');
  expect(text.match(/^event: command$/gm)).toHaveLength(1);

  // Refusals are reported through the promise and onError, never as uncaught errors.
  expect(errors).toEqual([]);
});
