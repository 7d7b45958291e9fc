// "Nothing lost", in a real browser: a paired deck and phone through a server
// killed mid-talk, a graceful restart, a proxy answering 502/503 while the
// server is away, a phone that drops off the network, and a tap whose answer
// is lost on the way back. Every check ends on the deck's own position: after
// N taps it has moved exactly N steps (a step is a slide or a fragment).
//
// All traffic goes to 127.0.0.1; the QR code's LAN URL is rewritten with
// toLoopback before the phone opens it. The only clock limit asserted is the
// issue's: the phone drives the deck within 5 s of a restarted server being up.
import http from 'node:http';
import { devices, expect, test, type Browser, type BrowserContext, type Locator, type Page } from '@playwright/test';
import { ClickerServer, readDeckQr, toLoopback, allowPhone, deckPosition } from './fixtures';

const ARGS = ['--bind', '127.0.0.1'];
const RESTART_BOUND_MS = 5_000;
let server: ClickerServer;
/** Contexts a test opened. Closed after it: a page left open keeps reconnecting to its dead server every second, and could reach a later test's server if the OS hands out the same port again. */
let contexts: BrowserContext[] = [];

test.beforeEach(async () => {
  server = await ClickerServer.start(ARGS);
});
test.afterEach(async () => {
  await Promise.all(contexts.map((c) => c.close()));
  contexts = [];
  await server.stop();
});

interface Pair {
  deck: Page;
  phone: Page;
  phoneCtx: BrowserContext;
  commands: CommandLog;
}

/** Every command POST the phone made, and how each ended. */
interface CommandLog {
  ids: string[];
  /** Answers by status (2xx and otherwise). */
  answers: number[];
  failures: number;
}

/** The slideshow open on a laptop, and a phone's page not yet at the QR's URL (which is given, on loopback). */
async function deckAndPhone(browser: Browser): Promise<{ deck: Page; phone: Page; phoneCtx: BrowserContext; url: string }> {
  const deckCtx = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const phoneCtx = await browser.newContext({ ...devices['Pixel 7'] });
  contexts.push(deckCtx, phoneCtx);
  const deck = await deckCtx.newPage();
  await deck.goto(`${server.base}/`);
  const url = toLoopback(await readDeckQr(deck));
  return { deck, phone: await phoneCtx.newPage(), phoneCtx, url };
}

/** `via`: the base URL the phone reaches the server through (a proxy's), instead of the server's own. */
async function pairedPhone(browser: Browser, via?: string): Promise<Pair> {
  const { deck, phone, phoneCtx, url } = await deckAndPhone(browser);
  const commands: CommandLog = { ids: [], answers: [], failures: 0 };
  const isCommand = (u: string) => /\/api\/channels\/[^/]+\/commands$/.test(new URL(u).pathname);
  phone.on('request', (req) => {
    if (req.method() === 'POST' && isCommand(req.url())) commands.ids.push((JSON.parse(req.postData() ?? '{}') as { id: string }).id);
  });
  phone.on('response', (res) => {
    if (res.request().method() === 'POST' && isCommand(res.url())) commands.answers.push(res.status());
  });
  phone.on('requestfailed', (req) => {
    if (req.method() === 'POST' && isCommand(req.url())) commands.failures++;
  });
  await phone.goto(via ? url.replace(server.base, via) : url);
  await allowPhone(deck, phone);
  await expect(phone.locator('#conn')).toHaveAttribute('data-state', 'live');
  await expect(deck.locator('.clicker-status')).toHaveAttribute('data-paired', 'true');
  return { deck, phone, phoneCtx, commands };
}

/**
 * Where the deck is, counted in steps from the start: every slide (vertical
 * ones included) is one step and each fragment on it one more, which is what
 * one "next" moves. Read from the DOM reveal.js maintains.
 */
function deckStep(deck: Page): Promise<number> {
  return deck.evaluate(deckSteps).then((s) => s.at);
}

/** In the slideshow page: the steps to where the deck is (-1 if nowhere), and to its last build. */
function deckSteps(): { at: number; end: number } {
  const leaves = [...document.querySelectorAll('.reveal .slides > section')].flatMap((s) => {
    const inner = [...s.querySelectorAll(':scope > section')];
    return inner.length ? inner : [s];
  });
  let step = 0;
  let at = -1;
  for (const leaf of leaves) {
    if (leaf.classList.contains('present')) at = step + leaf.querySelectorAll('.fragment.visible').length;
    step += 1 + leaf.querySelectorAll('.fragment').length;
  }
  return { at, end: step - 1 };
}

/** A paired phone that has moved the deck one step; then the slideshow's tab is closed. Its context, to open the slideshow again. */
async function pairedThenClosed(browser: Browser): Promise<{ p: Pair; deckCtx: BrowserContext }> {
  const p = await pairedPhone(browser);
  await burst(p, 1);
  await expect.poll(() => deckStep(p.deck)).toBe(1);
  const deckCtx = p.deck.context();
  await p.deck.close();
  return { p, deckCtx };
}

/** A follower's page on the pair's channel (a phone of the room), live; and its status pill. */
async function followerOf(browser: Browser, p: Pair, via = server.base): Promise<{ follower: Page; pill: Locator }> {
  const followCtx = await browser.newContext({ ...devices['Pixel 7'] });
  contexts.push(followCtx);
  const follower = await followCtx.newPage();
  await follower.goto(`${via}${new URL(p.phone.url()).pathname.replace(/^\/r\//, '/f/')}`);
  const pill = follower.locator('.clicker-status');
  await expect(pill).toHaveAttribute('data-link', 'live');
  return { follower, pill };
}

const next = (phone: Page) => phone.getByRole('button', { name: 'Next' }).tap();

/** Taps Next `n` times without waiting in between, then waits for every POST to be answered 2xx. */
async function burst(p: Pair, n: number): Promise<void> {
  const ok = () => p.commands.answers.filter((s) => s >= 200 && s < 300).length;
  const before = ok();
  for (let i = 0; i < n; i++) await next(p.phone);
  await expect.poll(ok).toBe(before + n);
}

/**
 * The deck is exactly `step` steps in, and stays there: a sentinel tap must
 * move it exactly one more, so no late duplicate was waiting in between
 * (events reach the deck in order).
 */
async function expectExactly(p: Pair, step: number): Promise<number> {
  await expect.poll(() => deckStep(p.deck)).toBe(step);
  await burst(p, 1);
  await expect.poll(() => deckStep(p.deck)).toBe(step + 1);
  return step + 1;
}

test('server killed (-9) mid-talk: the phone drives the deck again within 5 s, with no re-pairing, and the deck keeps its slide', async ({ browser }) => {
  const p = await pairedPhone(browser);
  await burst(p, 3);
  await expect.poll(() => deckStep(p.deck)).toBe(3);
  const pairedIds = p.commands.ids.length;

  server = await server.restart('SIGKILL');
  const upAt = Date.now();
  // Nothing on the deck moved because its server vanished.
  expect(await deckStep(p.deck)).toBe(3);

  // The phone taps at once; its POST is retried (with the same id) until the deck has re-registered the channel.
  await next(p.phone);
  await expect.poll(() => deckStep(p.deck), { timeout: RESTART_BOUND_MS }).toBe(4);
  const drivenMs = Date.now() - upAt;
  console.log(`[restart -9] the phone moved the deck ${drivenMs} ms after the new server was up (${p.commands.failures} failed and ${p.commands.answers.filter((s) => s >= 400).length} refused POST attempts retried)`);
  expect(drivenMs).toBeLessThanOrEqual(RESTART_BOUND_MS);

  // Same pairing: the phone never went back to a message view, and both ends show a live link again.
  await expect(p.phone.locator('#message')).toBeHidden();
  await expect(p.phone.locator('#conn')).toHaveAttribute('data-state', 'live');
  await expect(p.deck.locator('.clicker-status')).toHaveAttribute('data-paired', 'true');
  await expect(p.deck.locator('.clicker-status')).toHaveAttribute('data-link', 'live');
  expect(p.commands.ids.slice(pairedIds).every((id) => id === p.commands.ids[pairedIds]), 'every attempt of the tap carried the same id').toBe(true);

  // After the restart, N taps are exactly N steps.
  await burst(p, 4);
  await expectExactly(p, 8);
  await expect(p.phone.locator('#position')).toHaveText(/^\d+ \/ \d+$/);
});

test('graceful stop (SIGTERM): the process exits promptly, clients notice, and reconnect to its successor', async ({ browser }) => {
  const p = await pairedPhone(browser);
  await burst(p, 2);
  await expect.poll(() => deckStep(p.deck)).toBe(2);

  const port = server.port;
  const t0 = Date.now();
  const code = await server.stop('SIGTERM');
  const exitMs = Date.now() - t0;
  console.log(`[restart SIGTERM] exit code ${code} after ${exitMs} ms`);
  expect(code).toBe(0);
  expect(exitMs).toBeLessThanOrEqual(RESTART_BOUND_MS);
  // The server ended the streams itself, so both ends know at once rather than at the next heartbeat.
  await expect(p.phone.locator('#conn')).not.toHaveAttribute('data-state', 'live');
  await expect(p.deck.locator('.clicker-status')).not.toHaveAttribute('data-link', 'live');

  server = await ClickerServer.start(ARGS, {}, port);
  const upAt = Date.now();
  await next(p.phone);
  await expect.poll(() => deckStep(p.deck), { timeout: RESTART_BOUND_MS }).toBe(3);
  console.log(`[restart SIGTERM] the phone moved the deck ${Date.now() - upAt} ms after the new server was up`);
  await expect(p.phone.locator('#conn')).toHaveAttribute('data-state', 'live');
  await expect(p.deck.locator('.clicker-status')).toHaveAttribute('data-link', 'live');
  await burst(p, 3);
  await expectExactly(p, 6);
});

/**
 * A proxy in front of the server that can make the event streams open
 * through it go silent with both connections left open: the path died
 * without a FIN or an RST reaching either end (a phone's Wi-Fi changed, a NAT
 * forgot the connection). Everything else, and every later request, is
 * proxied as usual.
 */
async function silencingProxy(upstreamPort: number) {
  const upstreams = new Map<http.ServerResponse, http.IncomingMessage>();
  /** Event-stream requests proxied, by who asked (the phone's user agent says Android; so does a follower's). */
  let streams = 0;
  const agent = new http.Agent({ keepAlive: true });
  const srv = http.createServer((req, res) => {
    const stream = req.method === 'GET' && /\/events(\?|$)/.test(req.url ?? '');
    if (stream) streams++;
    const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers, agent }, (ures) => {
      res.writeHead(ures.statusCode ?? 502, ures.headers);
      if (stream) upstreams.set(res, ures);
      ures.pipe(res);
    });
    up.on('error', () => res.destroy());
    res.on('close', () => {
      upstreams.delete(res);
      if (!res.writableFinished) up.destroy();
    });
    req.pipe(up);
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as { port: number };
  return {
    base: `http://127.0.0.1:${port}`,
    streams: () => streams,
    /** Every event stream open now carries nothing more, and nobody is told. */
    silence() {
      for (const [res, ures] of upstreams) {
        ures.unpipe(res);
        ures.pause();
      }
      upstreams.clear();
    },
    close: async () => {
      srv.closeAllConnections();
      agent.destroy();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    },
  };
}

/** What stands on the server's port while it is away: a proxy with no upstream, answering 502 and then 503. */
async function badGateway(port: number) {
  let status: 502 | 503 = 502;
  /** Event-stream requests answered, by status and by who asked (the phone's user agent says Android). */
  const streams = { 502: { phone: 0, deck: 0 }, 503: { phone: 0, deck: 0 } };
  let other = 0;
  const srv = http.createServer((req, res) => {
    // The watchdog's HEAD, asking why a stream was refused, is not a stream request.
    if (req.method === 'GET' && /\/events(\?|$)/.test(req.url ?? '')) streams[status][/Android/.test(req.headers['user-agent'] ?? '') ? 'phone' : 'deck']++;
    else other++;
    res.writeHead(status, { 'Content-Type': 'text/html', Connection: 'close' }).end(`<h1>${status}</h1>`);
  });
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', resolve);
  });
  return {
    streams,
    other: () => other,
    set: (s: 502 | 503) => (status = s),
    close: async () => {
      srv.closeAllConnections();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    },
  };
}

test('502 and 503 while the server is away: the watchdog keeps retrying where EventSource gives up, and the link indicator shows it', async ({ browser }) => {
  const p = await pairedPhone(browser);
  await burst(p, 1);
  await expect.poll(() => deckStep(p.deck)).toBe(1);

  const port = server.port;
  await server.stop('SIGKILL');
  const proxy = await badGateway(port);
  try {
    await expect(p.phone.locator('#conn')).toHaveAttribute('data-state', 'reconnecting');
    // A bare EventSource makes one request after the drop and stops at the first non-200: more than
    // one refused stream request from the same page can only come from the watchdog.
    await expect.poll(() => proxy.streams[502].phone, { timeout: 20_000 }).toBeGreaterThanOrEqual(2);
    proxy.set(503);
    await expect.poll(() => proxy.streams[503].phone, { timeout: 20_000 }).toBeGreaterThanOrEqual(2);
    await expect.poll(() => proxy.streams[503].deck, { timeout: 20_000 }).toBeGreaterThanOrEqual(1);
    await expect(p.phone.locator('#conn')).toHaveAttribute('data-state', 'reconnecting');
    await expect(p.deck.locator('.clicker-status')).toHaveAttribute('data-link', 'reconnecting');
    // A proxy's 502 or 503 is the server away, not a channel it does not know: never "No slideshow".
    await expect(p.phone.locator('#conn-text')).toHaveText('Reconnecting…');
    console.log(
      `[non-200] refused stream requests: 502 phone x${proxy.streams[502].phone} deck x${proxy.streams[502].deck}, ` +
        `503 phone x${proxy.streams[503].phone} deck x${proxy.streams[503].deck}; other refused requests (the watchdogs' HEADs among them) x${proxy.other()}`,
    );
  } finally {
    await proxy.close();
  }

  server = await ClickerServer.start(ARGS, {}, port);
  const upAt = Date.now();
  // The backoff is capped at 8 s, so the link is back well within this.
  await expect(p.phone.locator('#conn')).toHaveAttribute('data-state', 'live', { timeout: 20_000 });
  await expect(p.deck.locator('.clicker-status')).toHaveAttribute('data-link', 'live', { timeout: 20_000 });
  console.log(`[non-200] both links live again ${Date.now() - upAt} ms after the real server was back`);
  expect(await deckStep(p.deck)).toBe(1);
  await burst(p, 2);
  await expectExactly(p, 3);
});

test('a phone that goes offline and back loses no tap and doubles none; nor does a tap whose answer was lost', async ({ browser }) => {
  const p = await pairedPhone(browser);
  await burst(p, 1);
  await expect.poll(() => deckStep(p.deck)).toBe(1);

  await p.phoneCtx.setOffline(true);
  await expect(p.phone.locator('#conn')).toHaveAttribute('data-state', 'offline');
  const failedBefore = p.commands.failures;
  const idsBefore = p.commands.ids.length;
  const taps = p.phone.locator('#taps');
  await next(p.phone);
  // The presenter is told the tap is waiting, not left to wonder (and tap again).
  await expect(taps).toHaveText('1 tap waiting to send…');
  await next(p.phone);
  await expect(taps).toHaveText('2 taps waiting to send…');
  // The first tap's POST fails and is retried with its id; the second waits its turn behind it
  // (taps land in the order they were made); nothing reaches the deck meanwhile.
  await expect.poll(() => p.commands.failures - failedBefore).toBeGreaterThanOrEqual(4);
  expect(await deckStep(p.deck)).toBe(1);
  const offlineIds = new Set(p.commands.ids.slice(idsBefore));
  expect(offlineIds.size).toBe(1);

  await p.phoneCtx.setOffline(false);
  await expect.poll(() => deckStep(p.deck)).toBe(3);
  await expect(p.phone.locator('#conn')).toHaveAttribute('data-state', 'live');
  // Both landed: nothing is waiting any more.
  await expect(taps).toBeHidden();
  console.log(`[offline] ${p.commands.failures - failedBefore} failed POST attempts of the first tap, retried with its id`);
  // Two taps, two ids, each sent until it landed.
  expect(new Set(p.commands.ids.slice(idsBefore)).size).toBe(2);
  let step = await expectExactly(p, 3);

  // The server gets the tap but its answer never reaches the phone: the phone retries the same id, the server drops it.
  let lose = true;
  let firstStatus = 0;
  await p.phone.route('**/api/channels/*/commands', async (route) => {
    if (!lose) return route.continue();
    lose = false;
    firstStatus = (await route.fetch()).status();
    await route.abort('connectionreset');
  });
  const idsBeforeLoss = p.commands.ids.length;
  await burst(p, 1);
  const attempts = p.commands.ids.slice(idsBeforeLoss);
  console.log(`[lost answer] first attempt reached the server (${firstStatus}), answers the phone saw: ${p.commands.answers.slice(-1).join(',')}; attempts ${attempts.length}`);
  expect(firstStatus).toBe(202);
  expect(attempts.length).toBeGreaterThanOrEqual(2);
  expect(new Set(attempts).size, 'the retry carried the same id').toBe(1);
  expect(p.commands.answers.at(-1), 'the retry was acknowledged as a duplicate').toBe(200);
  await p.phone.unroute('**/api/channels/*/commands');
  step = await expectExactly(p, step + 1);
  expect(step).toBe(6);
});

test('with the slideshow closed the phone and the followers are told, without a tap; both are told again once it is back', async ({ browser }) => {
  const p = await pairedPhone(browser);
  await burst(p, 1);
  await expect.poll(() => deckStep(p.deck)).toBe(1);
  const taps = p.phone.locator('#taps');
  await expect(taps).toBeHidden();
  const { follower, pill } = await followerOf(browser, p);

  // The laptop's tab is closed by mistake; the phone's own link is fine. Nobody taps:
  // the server tells both, once the slideshow's stream has been gone for a few seconds.
  const deckCtx = p.deck.context();
  const requestsBefore = p.commands.ids.length;
  await p.deck.close();
  await expect(taps).toHaveText('The slideshow is not connected: is it open on the laptop?');
  expect(p.commands.ids.length, 'told, not found out by a tap').toBe(requestsBefore);
  await expect(p.phone.locator('#conn')).toHaveAttribute('data-state', 'live');
  await expect(pill).toHaveAttribute('data-link', 'waiting');
  await expect(pill).toContainText('presenter offline');
  // The whole notice is on the screen, wrapped if it must be.
  const box = (await taps.boundingBox())!;
  const viewport = p.phone.viewportSize()!;
  expect(box.x).toBeGreaterThanOrEqual(0);
  expect(box.x + box.width).toBeLessThanOrEqual(viewport.width);
  expect(await taps.evaluate((el) => el.scrollWidth <= el.clientWidth)).toBe(true);
  await p.phone.screenshot({ path: test.info().outputPath('phone-slideshow-away.png') });
  await follower.screenshot({ path: test.info().outputPath('follower-slideshow-away.png') });
  // A tap meanwhile: the notice stays the one that says why.
  await burst(p, 1);
  await expect(taps).toHaveText('The slideshow is not connected: is it open on the laptop?');

  // Opened again, it resumes its channel, applies the tap it missed and reports: the notices go.
  const deck = await deckCtx.newPage();
  await deck.goto(`${server.base}/`);
  await expect.poll(() => deckStep(deck)).toBe(2);
  await expect(taps).toBeHidden();
  await expect(pill).toHaveAttribute('data-link', 'live');
  await expect(pill).not.toContainText('offline');
});

test('a slideshow whose stream the server still counts but that applies nothing (a laptop gone to sleep): the phone finds out from its unanswered tap', async ({ browser }) => {
  // The server would say it gone after a minute: here, the phone's own
  // check (a tap the slideshow never reports) is what speaks.
  await server.stop();
  server = await ClickerServer.start(ARGS, { SLIDESHOW_AWAY_MS: '60000' });
  const { p } = await pairedThenClosed(browser);
  const taps = p.phone.locator('#taps');
  await burst(p, 1);
  await expect(taps).toHaveText('The slideshow is not answering: is it open on the laptop?');
  await expect(p.phone.locator('#conn')).toHaveAttribute('data-state', 'live');
});

test('a phone whose stream went deaf without a word (a Wi-Fi change) still sees its tap land: the overdue report renews the stream, with no false alarm', async ({ browser }, testInfo) => {
  // At the default 15 s heartbeat, a deaf stream's silence would take 24.5 s to judge: the tap must not wait for it.
  const proxy = await silencingProxy(server.port);
  try {
    const p = await pairedPhone(browser, proxy.base);
    await expect(p.phone.locator('#position')).toHaveText('1 / 8');
    // Every notice the phone shows from here on.
    await p.phone.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { noticesSeen: string[] }).noticesSeen = seen;
      const el = document.getElementById('taps')!;
      new MutationObserver(() => {
        if (!el.hidden && el.textContent) seen.push(el.textContent);
      }).observe(el, { childList: true, characterData: true, subtree: true, attributes: true });
      // And the link's states, for the log: the renew shows as a brief reconnect.
      const conn = document.getElementById('conn')!;
      const links: string[] = [];
      (window as unknown as { linksSeen: string[] }).linksSeen = links;
      new MutationObserver(() => links.push(conn.dataset.state ?? '')).observe(conn, { attributes: true, attributeFilter: ['data-state'] });
    });
    const streamsBefore = proxy.streams();
    proxy.silence();
    await burst(p, 1);
    await expect.poll(() => deckStep(p.deck)).toBe(1);
    // The slideshow's report went down the deaf stream; the renewed one's snapshot brings the move.
    await expect(p.phone.locator('#position')).toHaveText('2 / 8');
    await expect(p.phone.locator('#title')).toHaveText('How it works');
    expect(proxy.streams(), 'the phone opened a new stream').toBe(streamsBefore + 1);
    // Past the report's wait: the tap that did land is not called unanswered.
    await p.phone.waitForTimeout(3_500);
    await expect(p.phone.locator('#taps')).toBeHidden();
    expect(await p.phone.evaluate(() => (window as unknown as { noticesSeen: string[] }).noticesSeen)).toEqual([]);
    await testInfo.attach('phone-after-a-deaf-stream', { body: await p.phone.screenshot({ path: testInfo.outputPath('phone-after-a-deaf-stream.png') }), contentType: 'image/png' });
    console.log(`[deaf phone] link states after the path went silent: ${(await p.phone.evaluate(() => (window as unknown as { linksSeen: string[] }).linksSeen)).join(' > ')}`);
    // And the new stream carries the next report as it comes.
    await burst(p, 1);
    await expect(p.phone.locator('#fragments')).toHaveText('1 of 3 builds shown');
    expect(proxy.streams(), 'no further stream').toBe(streamsBefore + 1);
  } finally {
    await proxy.close();
  }
});

test("a follower whose stream went deaf without a word is found out by its missing beats and follows again, with no tap of its own", async ({ browser }, testInfo) => {
  await server.stop();
  // Beats every second: the follower's page judges a silence after 3.5 s.
  server = await ClickerServer.start(ARGS, { HEARTBEAT_MS: '1000' });
  const proxy = await silencingProxy(server.port);
  try {
    const p = await pairedPhone(browser);
    const { follower, pill } = await followerOf(browser, p, proxy.base);
    await expect.poll(() => deckPosition(follower)).toBe('1 / 8');
    // Quiet, and beating: the follower keeps its one stream.
    await follower.waitForTimeout(5_000);
    expect(proxy.streams(), 'one stream while the beats come').toBe(1);
    proxy.silence();
    await burst(p, 1);
    await expect.poll(() => deckStep(p.deck)).toBe(1);
    await expect.poll(() => deckPosition(follower), { timeout: 15_000 }).toBe('2 / 8');
    expect(proxy.streams(), 'the follower opened a new stream').toBe(2);
    await expect(pill).toHaveAttribute('data-link', 'live');
    // The slide's transition done, for the picture.
    await follower.waitForTimeout(1_000);
    await testInfo.attach('follower-after-a-deaf-stream', { body: await follower.screenshot({ path: testInfo.outputPath('follower-after-a-deaf-stream.png') }), contentType: 'image/png' });
  } finally {
    await proxy.close();
  }
});

test('after a restart with the slideshow closed, the phone says there is no slideshow and a follower that the presenter is offline; both are live again once it is open', async ({ browser }) => {
  // The follower joins while the slideshow is still open; then the laptop's tab is closed.
  const p = await pairedPhone(browser);
  await burst(p, 1);
  await expect.poll(() => deckStep(p.deck)).toBe(1);
  const { follower, pill } = await followerOf(browser, p);
  const deckCtx = p.deck.context();
  await p.deck.close();

  // The server comes back empty (in memory), and nobody has the slideshow open to register the channel again.
  server = await server.restart('SIGKILL');
  await expect(pill).toHaveAttribute('data-link', 'waiting');
  await expect(pill).toContainText('Following the presenter');
  await expect(pill).toContainText('presenter offline');
  await expect(p.phone.locator('#conn')).toHaveAttribute('data-state', 'waiting');
  await expect(p.phone.locator('#conn-text')).toHaveText('No slideshow');
  // Neither label is cut short, nor runs into what sits beside it.
  for (const [page, sel] of [[follower, '.clicker-status'], [p.phone, '#conn-text']] as const) {
    expect(await page.locator(sel).evaluate((el) => el.scrollWidth <= el.clientWidth), sel).toBe(true);
  }
  const [pillBox, number] = [await pill.boundingBox(), await follower.locator('.reveal .slide-number').boundingBox()];
  expect(pillBox && number, 'the status pill and the slide number are both on the screen').toBeTruthy();
  expect(pillBox!.x + pillBox!.width).toBeLessThanOrEqual(number!.x);
  await follower.screenshot({ path: test.info().outputPath('follower-waiting.png') });
  await p.phone.screenshot({ path: test.info().outputPath('phone-waiting.png') });

  // The presenter opens it again: it registers its channel, and both go live on their own.
  const deck = await deckCtx.newPage();
  await deck.goto(`${server.base}/`);
  await expect(pill).toHaveAttribute('data-link', 'live');
  await expect(p.phone.locator('#conn')).toHaveAttribute('data-state', 'live');
  await expect.poll(() => deckStep(deck)).toBe(1);
});

test('a slideshow reopened after a long absence applies the taps made just before, not the stale ones', async ({ browser }) => {
  // Replay for 8 s rather than the default 30, so the test need not wait half a minute. Not
  // less: the fresh tap must still be fresh when the reopened page's stream opens, and on a
  // loaded machine the page load and its registration alone took over 2 s (3 s was missed once).
  const MAX_AGE_MS = 8_000;
  await server.stop();
  server = await ClickerServer.start(ARGS, { COMMAND_REPLAY_MAX_AGE_MS: String(MAX_AGE_MS) });
  const { p, deckCtx } = await pairedThenClosed(browser);
  // Two taps into an empty room; then, long after, one the presenter makes while reopening the slideshow.
  await burst(p, 2);
  await expect(p.phone.locator('#taps')).toHaveText('The slideshow is not connected: is it open on the laptop?');
  await p.phone.waitForTimeout(MAX_AGE_MS);
  await burst(p, 1);

  const deck = await deckCtx.newPage();
  await deck.goto(`${server.base}/`);
  // One step on: the fresh tap. The stale two would have come first, in the same replay.
  await expect.poll(() => deckStep(deck)).toBe(2);
  await expect(p.phone.locator('#taps')).toBeHidden();
  await expectExactly({ ...p, deck }, 2);
});

test('a slideshow reopened on another deck does not apply the taps aimed at the last one', async ({ browser }) => {
  const { p, deckCtx } = await pairedThenClosed(browser);
  // Two taps while the laptop switches talks: meant for the deck that was closed.
  await burst(p, 2);
  // The page that opens next is another deck's: what the page saved names a
  // deck other than the one it now shows (as after `clicker other-talk.md`).
  await deckCtx.addInitScript(() => {
    const raw = localStorage.getItem('clicker.deck.v1');
    if (raw) localStorage.setItem('clicker.deck.v1', JSON.stringify({ ...(JSON.parse(raw) as object), deck: 'another-talk' }));
  });
  const deck = await deckCtx.newPage();
  await deck.goto(`${server.base}/`);
  // Still paired (the channel is the laptop's, not the deck's), and it starts
  // at the top: a sentinel tap moves it one step, where the two replayed would have made it three.
  await expect(deck.locator('.clicker-status')).toHaveAttribute('data-paired', 'true');
  await expectExactly({ ...p, deck }, 0);
});

test('taps made offline land in the order they were made, each once', async ({ browser }) => {
  const p = await pairedPhone(browser);
  await burst(p, 1);
  await expect.poll(() => deckStep(p.deck)).toBe(1);
  // Where Last goes: the end of the deck, every build shown.
  const { end } = await p.deck.evaluate(deckSteps);

  await p.phoneCtx.setOffline(true);
  await expect(p.phone.locator('#conn')).toHaveAttribute('data-state', 'offline');
  const failedBefore = p.commands.failures;
  await p.phone.getByRole('button', { name: 'Last', exact: true }).tap();
  // Last has failed five times: its retries now come two seconds apart.
  await expect.poll(() => p.commands.failures - failedBefore, { timeout: 10_000 }).toBeGreaterThanOrEqual(5);
  await p.phone.getByRole('button', { name: 'Previous' }).tap();
  await p.phoneCtx.setOffline(false);
  // Last, then Previous: one step short of the end. (Each retrying on its own, Previous landed first and the deck stayed at the end.)
  await expect.poll(() => deckStep(p.deck), { timeout: 15_000 }).toBe(end - 1);
  await expect(p.phone.locator('#taps')).toBeHidden();
  await expectExactly(p, end - 1);
});

test('a tap that cannot be delivered within 30 s is given up, the phone says so, and it never lands later', async ({ browser }) => {
  const p = await pairedPhone(browser);
  await burst(p, 1);
  await expect.poll(() => deckStep(p.deck)).toBe(1);
  // The phone's clock, so the 30 s that sendCommand keeps retrying for need not be waited out. Time still flows.
  await p.phone.clock.install();

  await p.phoneCtx.setOffline(true);
  await expect(p.phone.locator('#conn')).toHaveAttribute('data-state', 'offline');
  const taps = p.phone.locator('#taps');
  await next(p.phone);
  await expect(taps).toHaveText('1 tap waiting to send…');
  await expect(taps).toHaveAttribute('data-kind', 'waiting');

  // Past the deadline: the next retry fails, and the tap is given up.
  await p.phone.clock.fastForward('00:31');
  await expect(taps).toHaveText('1 tap not delivered');
  await expect(taps).toHaveAttribute('data-kind', 'lost');

  await p.phoneCtx.setOffline(false);
  await expect(p.phone.locator('#conn')).toHaveAttribute('data-state', 'live');
  // The given-up tap stays given up: the deck has not moved, and the next tap moves it exactly one step.
  expect(await deckStep(p.deck)).toBe(1);
  await expectExactly(p, 1);
  // That tap went through, so the notice is gone.
  await expect(taps).toBeHidden();
});

test('a pairing that never reached the server (Wi-Fi lost while scanning) is offered again with the same code, which still works', async ({ browser }) => {
  const { deck, phone, url } = await deckAndPhone(browser);
  await phone.route('**/api/channels/*/pair', (route) => route.abort('connectionrefused'));
  await phone.goto(url);
  await expect(phone.getByRole('heading', { name: 'Could not pair' })).toBeVisible();
  await expect(phone.locator('#message-text')).toContainText('then try again');
  // The code is already off the address bar, so a reload could not pair; the button tries the same code.
  expect(new URL(phone.url()).hash).toBe('');
  await phone.unroute('**/api/channels/*/pair');
  await phone.getByRole('button', { name: 'Try again' }).tap();
  await allowPhone(deck, phone);
  await expect(phone.locator('#conn')).toHaveAttribute('data-state', 'live');
  await expect(deck.locator('.clicker-status')).toHaveAttribute('data-paired', 'true');
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect.poll(() => deckStep(deck)).toBe(1);
});

test('a link whose pairing code was cut short says so at once, and offers to follow, rather than asking to try again', async ({ browser }) => {
  const { phone, url } = await deckAndPhone(browser);
  const cut = new URL(url);
  // A chat app or a hand-typed link lost most of the code.
  cut.hash = cut.hash.slice(0, 6);
  await phone.goto(cut.toString());
  await expect(phone.getByRole('heading', { name: 'Scan the QR code again' })).toBeVisible();
  await expect(phone.locator('#message-text')).toHaveText('This link does not hold a whole pairing code. Scan the QR code on the slides again.');
  await expect(phone.getByRole('button', { name: 'Try again' })).toBeHidden();
  await expect(phone.getByRole('link', { name: /follow/i })).toHaveAttribute('href', /\/f\/[A-Za-z0-9_-]{22}$/);
  await phone.screenshot({ path: test.info().outputPath('phone-code-cut-short.png') });
});

test("a room that has taken every stream of the channel does not lock the slideshow or the phone out: both reconnect and taps land", async ({ browser }) => {
  await server.stop();
  server = await ClickerServer.start(ARGS, { MAX_SUBSCRIBERS_PER_CHANNEL: '2' });
  const p = await pairedPhone(browser);
  const id = new URL(p.phone.url()).pathname.split('/').pop() ?? '';
  // The room: every follower stream the channel allows, and one more that is refused.
  const followers: http.ClientRequest[] = [];
  const follow = () =>
    new Promise<number>((resolve) => {
      const req = http.get(`${server.base}/api/channels/${id}/events`, (res) => resolve(res.statusCode ?? 0));
      req.on('error', () => resolve(0));
      followers.push(req);
    });
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push(await follow());
    expect(statuses).toEqual([200, 200, 503]);
    // The slideshow and the phone come back (a saved deck file, a Wi-Fi blip): their streams still open.
    await p.deck.reload();
    await p.phone.reload();
    await expect(p.phone.locator('#conn')).toHaveAttribute('data-state', 'live');
    await expect(p.deck.locator('.clicker-status')).toHaveAttribute('data-link', 'live');
    const before = await deckStep(p.deck);
    await p.phone.getByRole('button', { name: 'Next' }).tap();
    await expect.poll(() => deckStep(p.deck)).toBe(before + 1);
  } finally {
    for (const req of followers) req.destroy();
  }
});

test('after a restart that lost the channel, the slideshow registers it again past every id already handed out, its own state reports included', async ({ browser }) => {
  const p = await pairedPhone(browser);
  // The slideshow's stream carries the commands, not its own state reports, whose ids come after them.
  const reportIds: number[] = [];
  p.deck.on('response', (res) => {
    if (res.request().method() === 'PUT' && /\/state$/.test(new URL(res.url()).pathname) && res.status() === 200) {
      void res.json().then((b: { eventId: number }) => reportIds.push(b.eventId));
    }
  });
  await burst(p, 2);
  await expect.poll(() => deckStep(p.deck)).toBe(2);
  // Moves on the laptop's own keys: state reports, and no command, so the stream's last id falls behind.
  await p.deck.keyboard.press('ArrowRight');
  await p.deck.keyboard.press('ArrowRight');
  await expect.poll(() => deckStep(p.deck)).toBe(4);
  await expect.poll(() => reportIds.length).toBeGreaterThanOrEqual(4);
  const highest = Math.max(...reportIds);

  server = await server.restart('SIGKILL');
  const answer = p.phone.waitForResponse((res) => res.request().method() === 'POST' && /\/commands$/.test(new URL(res.url()).pathname) && res.status() === 202);
  await next(p.phone);
  const { eventId } = (await (await answer).json()) as { eventId: number };
  // A phone that saw that report's id and resumes from it would otherwise take this tap's id for one it had.
  expect(eventId).toBeGreaterThan(highest);
  await expect.poll(() => deckStep(p.deck)).toBe(5);
});

test('whatever the laptop and the phone have stored, the slideshow and the remote start: a bad part is dropped, not trusted', async ({ browser }) => {
  // A dozen pages, one after another: on a slow 2-core machine it took 50 to 57 s, against the 60 s default.
  test.slow();
  // The slideshow's store, as an older version, a hand edit or another page of this origin may have left it.
  // The last two parse as JSON objects but hold what the server would refuse (a 403, a 401 for a key too short).
  const bad = ['not json', '"a string"', '[]', '{"id":5}', '{"id":"AAAAAAAAAAAAAAAAAAAAAA"}', '{"id":"../../etc","deckKey":"x"}', `{"id":"AAAAAAAAAAAAAAAAAAAAAA","deckKey":"${'k'.repeat(32)}"}`, '{"id":"AAAAAAAAAAAAAAAAAAAAAA","deckKey":"x"}'];
  let lastDeck: Page | null = null;
  for (const value of bad) {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    contexts.push(ctx);
    await ctx.addInitScript((v) => {
      if (!sessionStorage.getItem('seeded')) localStorage.setItem('clicker.deck.v1', v);
      sessionStorage.setItem('seeded', '1');
    }, value);
    lastDeck = await ctx.newPage();
    await lastDeck.goto(`${server.base}/`);
    // A pairing QR on show: the slideshow opened a channel of its own.
    expect(new URL(await readDeckQr(lastDeck)).pathname, value).toMatch(/^\/r\/[A-Za-z0-9_-]{22}$/);
  }

  // A phone whose stored request names a key the server would refuse as malformed: asked without it, it gets a name.
  const qr = new URL(await readDeckQr(lastDeck!));
  const phoneCtx = await browser.newContext({ ...devices['Pixel 7'] });
  contexts.push(phoneCtx);
  await phoneCtx.addInitScript(
    ([id, code]) => localStorage.setItem(`clicker.remote.${id}.waiting`, JSON.stringify({ code, key: 'not a key!' })),
    [qr.pathname.split('/').pop()!, qr.hash.slice(1)] as const,
  );
  const stranger = await phoneCtx.newPage();
  await stranger.goto(toLoopback(qr.toString()));
  await expect(stranger.getByRole('heading', { name: 'Allow this phone on the laptop' })).toBeVisible();

  // A channel of its own, with a position and a list of phones that do not parse, written as the page
  // leaves (after its own last save): the channel is kept, the position dropped, and its phone, whose
  // hash was kept apart from the bad entry beside it, stays paired.
  const p = await pairedPhone(browser);
  await burst(p, 1);
  await expect.poll(() => deckStep(p.deck)).toBe(1);
  const kept = await p.deck.evaluate(() => JSON.parse(localStorage.getItem('clicker.deck.v1') ?? '{}') as { id: string; controllers: string[] });
  expect(kept.controllers).toHaveLength(1);
  await p.deck.evaluate(() => {
    addEventListener('pagehide', () => {
      const saved = JSON.parse(localStorage.getItem('clicker.deck.v1') ?? '{}') as { controllers: string[] };
      localStorage.setItem('clicker.deck.v1', JSON.stringify({ ...saved, controllers: [42, 'x', ...saved.controllers], reveal: { indexh: 'two', indexv: null } }));
    });
  });
  await p.deck.reload();
  await expect(p.deck.locator('.clicker-status')).toHaveAttribute('data-link', 'live');
  const after = await p.deck.evaluate(() => JSON.parse(localStorage.getItem('clicker.deck.v1') ?? '{}') as { id: string; controllers: string[] });
  expect(after.id, 'the same channel').toBe(kept.id);
  expect(after.controllers, 'the phone, without the bad entries').toEqual(kept.controllers);
  // Where it was could not be read: the title slide, told to the phone.
  await expect.poll(() => deckStep(p.deck)).toBe(0);
  await expect(p.phone.locator('#position')).toHaveText(/^1 \//);
  await expect(p.phone.locator('#conn')).toHaveAttribute('data-state', 'live');
  await burst(p, 1);
  await expect.poll(() => deckStep(p.deck)).toBe(1);

  // The phone's stores: a timer and a notes size that are not what it wrote, then a timer that is not JSON.
  for (const timer of ['{"since": "yesterday", "acc": -5}', '{"since": 1e300']) {
    await p.phone.evaluate(
      ([id, value]) => {
        localStorage.setItem(`clicker.timer.${id}`, value);
        localStorage.setItem('clicker.notesSize', '9999');
      },
      [kept.id, timer] as const,
    );
    await p.phone.reload();
    await expect(p.phone.locator('#conn'), timer).toHaveAttribute('data-state', 'live');
    await expect(p.phone.locator('#elapsed')).toHaveText('0:00');
    expect(await p.phone.locator('#notes').evaluate((el) => getComputedStyle(el).fontSize)).toBe('40px');
  }
  await burst(p, 1);
  await expect.poll(() => deckStep(p.deck)).toBe(2);
});
