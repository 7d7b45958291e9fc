// Tap-to-slide in Chromium: the whole path a presenter feels, from the phone
// page's pointerdown through the POST, the hub, the slideshow's stream and
// reveal.js, to the slideshow's DOM changing; and on to the end of the frame
// that shows it.
//
// The start is stamped inside the phone page by a capture-phase pointerdown
// listener on window (it runs before the remote's own handler, which sends on
// pointerdown); the end is stamped inside the slideshow page by a
// MutationObserver that sees a section gain or lose `present`, or a fragment
// gain or lose `visible`. Both stamps are performance.timeOrigin +
// performance.now(), the one clock two renderer processes share closely
// enough; the Playwright-side time of each tap call is kept too, as a check.
//
// The same run also measures two reference points on the same browser:
// tap-to-event, the tap to the moment the slideshow's EventSource hands the
// command to the page (before reveal.js moves), and the floor: a blank page
// with one button posting to the bare relay (bench/relay.ts /floor.html) and a
// blank page listening on it. The floor is what Chromium's own IPC and
// network stack take on this machine, with no app at all on either side.
//
// In-page callbacks below declare no named inner functions: tsx compiles this
// file with keepNames, which would wrap them in a `__name` helper that does
// not exist inside the page.
import { performance } from 'node:perf_hooks';
import { chromium, devices, type Browser, type Page } from '@playwright/test';
import { round, roundSummary, summarize, type Summary } from '../lib/stats';
import { judge, type Scenario } from '../lib/scenario';

declare global {
  interface Window {
    __clickerBench?: { moves: number[]; taps: number[]; events: number[]; frames: number[] };
  }
}

export interface TapOptions {
  /** Next+Previous pairs before measuring. */
  warmup: number;
  /** Measured Next+Previous pairs; each gives two samples. */
  pairs: number;
  /** Pause after each move, so the slideshow's state report reaches the phone before the next tap. */
  settleMs: number;
  moveTimeoutMs: number;
}

export const TAP_DEFAULTS: TapOptions = { warmup: 3, pairs: 60, settleMs: 120, moveTimeoutMs: 5_000 };

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  // The slideshow and the phone are two devices, each in the foreground: one
  // headless browser must not treat either page as a background tab.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

/** Records deck moves in the slideshow page. */
function installMoveObserver(): void {
  const bench = window.__clickerBench ?? { moves: [] as number[], taps: [] as number[], events: [] as number[], frames: [] as number[] };
  window.__clickerBench = bench;
  const root = document.querySelector('.reveal .slides');
  if (!root) throw new Error('no .reveal .slides element in the slideshow page');
  new MutationObserver((records) => {
    const t = window.performance.timeOrigin + window.performance.now();
    let moved = false;
    for (const r of records) {
      const el = r.target;
      if (!(el instanceof Element)) continue;
      const old = (r.oldValue ?? '').split(/\s+/);
      if (el.tagName === 'SECTION' && old.includes('present') !== el.classList.contains('present')) moved = true;
      if (el.classList.contains('fragment') && old.includes('visible') !== el.classList.contains('visible')) moved = true;
    }
    if (!moved) return;
    bench.moves.push(t);
    // The frame that shows the move: a task posted from the next animation
    // frame's callback runs once that frame's style, layout and paint are done
    // on the main thread (compositing and the display come after).
    requestAnimationFrame(() => {
      const channel = new MessageChannel();
      channel.port1.onmessage = () => bench.frames.push(window.performance.timeOrigin + window.performance.now());
      channel.port2.postMessage(null);
    });
  }).observe(root, { subtree: true, attributes: true, attributeFilter: ['class'], attributeOldValue: true });
}

/**
 * Stamps each `command` event as the slideshow's EventSource delivers it,
 * before the page's own listener runs: installed before any page script, it
 * wraps the listeners the page adds for that event name.
 */
function installEventStamp(): void {
  const bench = { moves: [] as number[], taps: [] as number[], events: [] as number[], frames: [] as number[] };
  window.__clickerBench = bench;
  const add = EventSource.prototype.addEventListener;
  EventSource.prototype.addEventListener = function (this: EventSource, type: string, listener: EventListenerOrEventListenerObject, options?: boolean | AddEventListenerOptions) {
    if (type !== 'command' || typeof listener !== 'function') return add.call(this, type, listener, options);
    return add.call(
      this,
      type,
      (ev: Event) => {
        bench.events.push(window.performance.timeOrigin + window.performance.now());
        listener.call(this, ev);
      },
      options,
    );
  } as typeof EventSource.prototype.addEventListener;
}

/** The floor's listening page: stamps each message the blank page's EventSource delivers. */
function installFloorStamp(): void {
  const bench = { moves: [] as number[], taps: [] as number[], events: [] as number[], frames: [] as number[] };
  window.__clickerBench = bench;
  window.addEventListener('floor-event', () => {
    bench.events.push(window.performance.timeOrigin + window.performance.now());
  });
}

/** Records taps in the phone page, before any of the page's own scripts run. */
function installTapStamp(): void {
  const bench = { moves: [] as number[], taps: [] as number[], events: [] as number[], frames: [] as number[] };
  window.__clickerBench = bench;
  // Room for every command's resource timing entry (the default keeps 250).
  window.performance.setResourceTimingBufferSize(5_000);
  window.addEventListener(
    'pointerdown',
    () => {
      bench.taps.push(window.performance.timeOrigin + window.performance.now());
    },
    { capture: true },
  );
}

/** [start, responseEnd] of each command POST the phone made, on the timeOrigin + now() scale. */
async function commandRequests(phone: Page): Promise<[number, number][]> {
  return phone.evaluate(() =>
    window.performance
      .getEntriesByType('resource')
      .filter((e) => e.name.includes('/commands'))
      .map((e): [number, number] => [
        window.performance.timeOrigin + e.startTime,
        window.performance.timeOrigin + (e as PerformanceResourceTiming).responseEnd,
      ]),
  );
}

async function count(page: Page, what: 'moves' | 'taps' | 'events' | 'frames'): Promise<number> {
  return page.evaluate((w) => window.__clickerBench?.[w].length ?? 0, what);
}

async function stamp(page: Page, what: 'moves' | 'taps' | 'events' | 'frames', index: number): Promise<number> {
  return page.evaluate(([w, i]) => window.__clickerBench?.[w][i] ?? Number.NaN, [what, index] as const);
}

export function tapScenario(opts: TapOptions = TAP_DEFAULTS): Scenario {
  return {
    name: 'tap',
    needsServers: true,
    description: `tap-to-slide in headless Chromium, ${opts.pairs} Next/Previous pairs after ${opts.warmup} warm-up`,
    async run(ctx) {
      const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
      const pageErrors: string[] = [];
      let browser: Browser | undefined;
      try {
        browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });

        const deckContext = await browser.newContext({ viewport: { width: 1280, height: 720 } });
        await deckContext.addInitScript(installEventStamp);
        const deck = await deckContext.newPage();
        deck.on('pageerror', (err) => pageErrors.push(`slideshow: ${err.message}`));
        await deck.goto(`${ctx.clicker.baseUrl}/`, { waitUntil: 'load', timeout: 15_000 });
        // The slideshow exposes the controller URL on its QR element once the channel exists.
        const qr = deck.locator('[data-clicker-qr][data-url]');
        await qr.first().waitFor({ state: 'attached', timeout: 15_000 });
        const raw = await qr.first().getAttribute('data-url');
        if (!raw) throw new Error('[data-clicker-qr] has an empty data-url');
        const controllerUrl = new URL(raw);
        // The QR carries the address a phone would use; the bench only ever talks to loopback.
        controllerUrl.protocol = 'http:';
        controllerUrl.host = `${ctx.clicker.host}:${ctx.clicker.port}`;
        await deck.evaluate(installMoveObserver);

        const phoneContext = await browser.newContext({ ...devices['Pixel 7'] });
        await phoneContext.addInitScript(installTapStamp);
        const phone = await phoneContext.newPage();
        phone.on('pageerror', (err) => pageErrors.push(`phone: ${err.message}`));
        await phone.goto(controllerUrl.href, { waitUntil: 'load', timeout: 15_000 });
        const next = phone.getByRole('button', { name: 'Next', exact: true });
        const prev = phone.getByRole('button', { name: 'Previous', exact: true });
        await next.waitFor({ state: 'visible', timeout: 15_000 });

        const samples: { dir: 'next' | 'prev'; ms: number; outsideMs: number; tapAt: number; moveAt: number; eventMs: number; frameMs: number }[] = [];
        let failures = 0;
        let consecutive = 0;
        const tapOnce = async (dir: 'next' | 'prev', record: boolean): Promise<void> => {
          const button = dir === 'next' ? next : prev;
          const movesBefore = await count(deck, 'moves');
          const eventsBefore = await count(deck, 'events');
          const tapsBefore = await count(phone, 'taps');
          const t0 = performance.now();
          await button.tap({ timeout: opts.moveTimeoutMs });
          try {
            await deck.waitForFunction((n) => (window.__clickerBench?.moves.length ?? 0) > n, movesBefore, {
              timeout: opts.moveTimeoutMs,
              polling: 5,
            });
          } catch {
            failures++;
            if (++consecutive >= 3) throw new Error(`three taps in a row did not move the deck (last: ${dir})`);
            ctx.log(`tap: ${dir} did not move the deck within ${opts.moveTimeoutMs} ms`);
            return;
          }
          const outsideMs = performance.now() - t0;
          consecutive = 0;
          // The frame after the move always comes; it is stamped a frame or two later.
          await deck.waitForFunction((n) => (window.__clickerBench?.frames.length ?? 0) > n, movesBefore, { timeout: opts.moveTimeoutMs, polling: 5 });
          const [tapAt, moveAt, eventAt, frameAt] = [
            await stamp(phone, 'taps', tapsBefore),
            await stamp(deck, 'moves', movesBefore),
            await stamp(deck, 'events', eventsBefore),
            await stamp(deck, 'frames', movesBefore),
          ];
          if (record) samples.push({ dir, ms: moveAt - tapAt, outsideMs, tapAt, moveAt, eventMs: eventAt - tapAt, frameMs: frameAt - tapAt });
          await new Promise((resolve) => setTimeout(resolve, opts.settleMs));
        };

        for (let i = 0; i < opts.warmup + opts.pairs; i++) {
          if (Date.now() > ctx.deadline) throw new Error('out of time');
          const record = i >= opts.warmup;
          await tapOnce('next', record);
          await tapOnce('prev', record);
        }

        const requests = await commandRequests(phone);
        await phoneContext.close();
        await deckContext.close();
        const floor = await measureFloor(browser, ctx.relay.baseUrl, opts);

        const all = summarize(samples.map((s) => s.ms));
        const toEvent = summarize(samples.map((s) => s.eventMs));
        const toFrame = summarize(samples.map((s) => s.frameMs));
        // Where the time goes, from the phone's resource timing: tap to request start (the
        // remote's own work), the POST's round trip, and the deck's move after the answer
        // (negative when the event reached the deck before the answer reached the phone).
        const toRequest: number[] = [];
        const post: number[] = [];
        const afterAnswer: number[] = [];
        for (const s of samples) {
          const req = requests.find(([start]) => start >= s.tapAt - 1 && start <= s.moveAt);
          if (!req) continue;
          toRequest.push(req[0] - s.tapAt);
          post.push(req[1] - req[0]);
          afterAnswer.push(s.moveAt - req[1]);
        }
        const outside = summarize(samples.map((s) => s.outsideMs));
        const negative = samples.filter((s) => s.ms < 0).length;
        if (pageErrors.length) ctx.log(`tap: page errors: ${pageErrors.slice(0, 3).join(' | ')}`);
        ctx.log(`tap: p50 ${all.p50.toFixed(1)} ms over ${all.n} taps, ${failures} without a move; tap-to-event p50 ${toEvent.p50.toFixed(1)} ms, floor ${floor.p50.toFixed(1)} ms; tap-to-frame p50 ${toFrame.p50.toFixed(1)} ms`);
        return {
          rows: [
            { figure: 'tap-to-slide p50 (Chromium)', clicker: all.p50, relay: null, unit: 'ms', goals: [{ text: '<= 5 ms', pass: judge(all.p50, '<=', 5) }] },
            { figure: 'tap-to-slide p99 (Chromium)', clicker: all.p99, relay: null, unit: 'ms' },
            // Relay column: the floor, blank pages on the bare relay.
            { figure: 'tap-to-event p50 (Chromium; relay: blank-page floor)', clicker: toEvent.p50, relay: floor.p50, unit: 'ms' },
            // What the presenter sees: the move's frame rendered (main thread done).
            { figure: 'tap-to-frame p50 (Chromium)', clicker: toFrame.p50, relay: null, unit: 'ms' },
          ],
          data: {
            options: { ...opts },
            chromium: browser.version(),
            tapToSlide: { ...roundSummary(all) },
            // Tap to the slideshow's EventSource delivering the command; the rest of tap-to-slide is the page and reveal.js.
            tapToEvent: { ...roundSummary(toEvent) },
            // Tap to the end of the frame that shows the move (style, layout, paint on the main thread; reveal.js's screen-reader announcement runs in it).
            tapToFrame: { ...roundSummary(toFrame) },
            floor: { ...roundSummary(floor) },
            next: { ...roundSummary(summarize(samples.filter((s) => s.dir === 'next').map((s) => s.ms))) },
            prev: { ...roundSummary(summarize(samples.filter((s) => s.dir === 'prev').map((s) => s.ms))) },
            // Playwright's tap call to the observed move, on this process's clock: includes CDP round trips.
            playwrightSide: { ...roundSummary(outside) },
            breakdown: {
              matched: toRequest.length,
              tapToRequestStartP50: round(summarize(toRequest).p50),
              postRoundTripP50: round(summarize(post).p50),
              moveAfterAnswerP50: round(summarize(afterAnswer).p50),
            },
            tapsWithoutMove: failures,
            // A negative sample would mean the two pages' clocks disagree by more than the latency.
            negativeSamples: negative,
            pageErrors: pageErrors.slice(0, 20),
            meanMs: round(all.mean),
          },
        };
      } finally {
        await browser?.close().catch(() => undefined);
      }
    },
  };
}

/** Tap-to-event with no app: two blank pages on the bare relay, in the same browser. */
async function measureFloor(browser: Browser, relayBase: string, opts: TapOptions): Promise<Summary> {
  const ch = `floor-${process.pid}`;
  const listenContext = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const phoneContext = await browser.newContext({ ...devices['Pixel 7'] });
  try {
    await listenContext.addInitScript(installFloorStamp);
    await phoneContext.addInitScript(installTapStamp);
    const listener = await listenContext.newPage();
    await listener.goto(`${relayBase}/floor.html#sub/${ch}`, { waitUntil: 'load', timeout: 15_000 });
    const phone = await phoneContext.newPage();
    await phone.goto(`${relayBase}/floor.html#pub/${ch}`, { waitUntil: 'load', timeout: 15_000 });
    const button = phone.getByRole('button', { name: 'Next' });
    await listener.locator('body[data-open]').waitFor({ state: 'attached', timeout: 15_000 });
    const samples: number[] = [];
    const taps = 2 * (opts.warmup + opts.pairs);
    for (let i = 0; i < taps; i++) {
      const eventsBefore = await count(listener, 'events');
      const tapsBefore = await count(phone, 'taps');
      await button.tap({ timeout: opts.moveTimeoutMs });
      await listener.waitForFunction((n) => (window.__clickerBench?.events.length ?? 0) > n, eventsBefore, { timeout: opts.moveTimeoutMs, polling: 5 });
      if (i >= 2 * opts.warmup) samples.push((await stamp(listener, 'events', eventsBefore)) - (await stamp(phone, 'taps', tapsBefore)));
      await new Promise((resolve) => setTimeout(resolve, opts.settleMs));
    }
    return summarize(samples);
  } finally {
    await phoneContext.close().catch(() => undefined);
    await listenContext.close().catch(() => undefined);
  }
}
