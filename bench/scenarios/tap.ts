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
// enough.
//
// The browser is driven by lib/cdp.ts, not Playwright: the taps are real
// touch input and nothing watches the network, as on a presenter's phone and
// laptop (Playwright's network instrumentation added 1.5 to 3 ms per tap
// here). Nothing is asked of either page while a tap is on its way: the
// stamps are read back after it has landed.
//
// The same run also measures two reference points on the same browser:
// tap-to-event, the tap to the moment the slideshow's EventSource hands the
// command to the page (before reveal.js moves), and the floor: a blank page
// with one button posting to the bare relay (bench/relay.ts /floor.html) and a
// blank page listening on it. The floor is what Chromium's own IPC and
// network stack take on this machine, with no app at all on either side.
//
// In-page functions below declare no named inner functions: tsx compiles this
// file with keepNames, which would wrap them in a `__name` helper that does
// not exist inside the page.
import { devices } from '@playwright/test';
import { CdpBrowser, type CdpPage } from '../lib/cdp';
import { round, roundSummary, summarize, type Summary } from '../lib/stats';
import { judge, sleep, type Scenario } from '../lib/scenario';

interface BenchStamps {
  moves: number[];
  taps: number[];
  events: number[];
  frames: number[];
  errors: string[];
}

declare global {
  interface Window {
    __clickerBench?: BenchStamps;
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

/**
 * Installed in every page before the page's own scripts: the stamp arrays,
 * the page's uncaught errors, the phone's taps (capture phase, before the
 * remote's handler), the slideshow's `command` events (wrapping the
 * listeners the page adds, so the stamp comes before the page's own code),
 * and the floor page's events.
 */
function installStamps(): void {
  const bench: BenchStamps = { moves: [], taps: [], events: [], frames: [], errors: [] };
  window.__clickerBench = bench;
  window.addEventListener('error', (e) => {
    bench.errors.push(String(e.message));
  });
  window.addEventListener('unhandledrejection', (e) => {
    bench.errors.push(`unhandled rejection: ${String(e.reason)}`);
  });
  window.addEventListener(
    'pointerdown',
    () => {
      bench.taps.push(window.performance.timeOrigin + window.performance.now());
    },
    { capture: true },
  );
  window.addEventListener('floor-event', () => {
    bench.events.push(window.performance.timeOrigin + window.performance.now());
  });
  // Room for every command's resource timing entry (the default keeps 250).
  window.performance.setResourceTimingBufferSize(5_000);
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

/** Records deck moves in the slideshow page, once reveal.js has built it. */
function installMoveObserver(): boolean {
  const bench = window.__clickerBench;
  const root = document.querySelector('.reveal .slides');
  if (!bench || !root) return false;
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
  return true;
}

const INIT = [`(${installStamps.toString()})();`];

/** A copy of a page's stamps (read between taps, never while one is on its way). */
function stamps(page: CdpPage): Promise<BenchStamps> {
  return page.evaluate(() => window.__clickerBench ?? { moves: [], taps: [], events: [], frames: [], errors: ['no stamps installed'] }, null);
}

/** How many of each stamp a page holds. */
function counts(page: CdpPage): Promise<{ moves: number; taps: number; events: number }> {
  return page.evaluate(() => {
    const b = window.__clickerBench;
    return { moves: b?.moves.length ?? 0, taps: b?.taps.length ?? 0, events: b?.events.length ?? 0 };
  }, null);
}

/** [start, responseEnd] of each command POST the phone made, on the timeOrigin + now() scale. */
function commandRequests(phone: CdpPage): Promise<[number, number][]> {
  return phone.evaluate(
    () =>
      window.performance
        .getEntriesByType('resource')
        .filter((e) => e.name.includes('/commands'))
        .map((e): [number, number] => [
          window.performance.timeOrigin + e.startTime,
          window.performance.timeOrigin + (e as PerformanceResourceTiming).responseEnd,
        ]),
    null,
  );
}

/** The phone the remote runs on: a Pixel 7 from Playwright's device list (screen, density, user agent). */
const PHONE_PAGE = {
  width: devices['Pixel 7'].viewport.width,
  height: devices['Pixel 7'].viewport.height,
  deviceScaleFactor: devices['Pixel 7'].deviceScaleFactor,
  mobile: { userAgent: devices['Pixel 7'].userAgent },
  init: INIT,
};

const LAPTOP = { width: 1280, height: 720, init: INIT };

export function tapScenario(opts: TapOptions = TAP_DEFAULTS): Scenario {
  return {
    name: 'tap',
    needsServers: true,
    description: `tap-to-slide in headless Chromium, ${opts.pairs} Next/Previous pairs after ${opts.warmup} warm-up`,
    async run(ctx) {
      const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
      const browser = await CdpBrowser.launch(executablePath, CHROMIUM_ARGS);
      try {
        const deck = await browser.newPage(`${ctx.clicker.baseUrl}/`, LAPTOP);
        // The slideshow exposes the controller URL on its QR element once the channel exists.
        const raw = await deck.waitFor(
          () => document.querySelector('[data-clicker-qr][data-url]')?.getAttribute('data-url') ?? null,
          null,
          15_000,
          'the slideshow QR code',
        );
        const controllerUrl = new URL(raw);
        // The QR carries the address a phone would use; the bench only ever talks to loopback.
        controllerUrl.protocol = 'http:';
        controllerUrl.host = `${ctx.clicker.host}:${ctx.clicker.port}`;
        await deck.waitFor(installMoveObserver, null, 15_000, 'the slideshow built by reveal.js');

        const phone = await browser.newPage(controllerUrl.href, PHONE_PAGE);
        // Phone approval: the presenter allows the waiting phone on the slideshow.
        // A row takes no click for its first 0.7 s on the card, so this clicks until the card has gone.
        await deck.waitFor(
          () => {
            const seen = window as unknown as { clickerAllowClicked?: boolean };
            const card = document.querySelector<HTMLElement>('[data-clicker-knock]');
            const allow = card?.querySelector<HTMLButtonElement>('[data-clicker-allow]');
            if (card && !card.hidden && allow) {
              allow.click();
              seen.clickerAllowClicked = true;
              return null;
            }
            return seen.clickerAllowClicked && card?.hidden ? true : null;
          },
          null,
          15_000,
          'the slideshow asking to allow the phone, and the phone allowed',
        );
        // Paired and showing the deck's state: Next is enabled.
        await phone.waitFor(() => document.querySelector<HTMLButtonElement>('#next')?.disabled === false, null, 15_000, 'the remote paired, with Next enabled');
        const next = await phone.center('#next', 15_000);
        const prev = await phone.center('#prev', 15_000);

        const samples: { dir: 'next' | 'prev'; ms: number; tapAt: number; moveAt: number; eventMs: number; frameMs: number }[] = [];
        let failures = 0;
        let consecutive = 0;
        const tapOnce = async (dir: 'next' | 'prev', record: boolean): Promise<void> => {
          const before = await counts(deck);
          const tapsBefore = (await counts(phone)).taps;
          const [x, y] = dir === 'next' ? next : prev;
          await phone.tap(x, y);
          // Nothing is asked of the pages while the command travels.
          await sleep(opts.settleMs);
          try {
            // The frame after the move always comes; it is stamped a frame or two later.
            await deck.waitFor((n: number) => (window.__clickerBench?.frames.length ?? 0) > n, before.moves, opts.moveTimeoutMs, 'the move', 5);
          } catch {
            failures++;
            if (++consecutive >= 3) throw new Error(`three taps in a row did not move the deck (last: ${dir})`);
            ctx.log(`tap: ${dir} did not move the deck within ${opts.moveTimeoutMs} ms`);
            return;
          }
          consecutive = 0;
          if (!record) return;
          const d = await stamps(deck);
          const tapAt = (await stamps(phone)).taps[tapsBefore] ?? Number.NaN;
          const moveAt = d.moves[before.moves] ?? Number.NaN;
          samples.push({
            dir,
            ms: moveAt - tapAt,
            tapAt,
            moveAt,
            eventMs: (d.events[before.events] ?? Number.NaN) - tapAt,
            frameMs: (d.frames[before.moves] ?? Number.NaN) - tapAt,
          });
        };

        for (let i = 0; i < opts.warmup + opts.pairs; i++) {
          if (Date.now() > ctx.deadline) throw new Error('out of time');
          const record = i >= opts.warmup;
          await tapOnce('next', record);
          await tapOnce('prev', record);
        }

        const requests = await commandRequests(phone);
        const pageErrors = [...(await stamps(deck)).errors.map((e) => `slideshow: ${e}`), ...(await stamps(phone)).errors.map((e) => `phone: ${e}`)];
        const floor = await measureFloor(browser, ctx.relay.baseUrl, opts);

        const all = summarize(samples.map((s) => s.ms));
        const toEvent = summarize(samples.map((s) => s.eventMs));
        const toFrame = summarize(samples.map((s) => s.frameMs));
        // The slideshow page's own part: its EventSource's event to the DOM's move (the plugin and reveal.js).
        const eventToMove = summarize(samples.map((s) => s.ms - s.eventMs));
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
        const negative = samples.filter((s) => s.ms < 0).length;
        if (pageErrors.length) ctx.log(`tap: page errors: ${pageErrors.slice(0, 3).join(' | ')}`);
        ctx.log(`tap: p50 ${all.p50.toFixed(1)} ms over ${all.n} taps, ${failures} without a move; tap-to-event p50 ${toEvent.p50.toFixed(1)} ms, floor ${floor.p50.toFixed(1)} ms; tap-to-frame p50 ${toFrame.p50.toFixed(1)} ms`);
        return {
          rows: [
            { figure: 'tap-to-slide p50 (Chromium)', clicker: all.p50, relay: null, unit: 'ms', goals: [{ text: '<= 5 ms', pass: judge(all.p50, '<=', 5) }] },
            { figure: 'tap-to-slide p99 (Chromium)', clicker: all.p99, relay: null, unit: 'ms' },
            // Relay column: the floor, blank pages on the bare relay.
            { figure: 'tap-to-event p50 (Chromium; relay: blank-page floor)', clicker: toEvent.p50, relay: floor.p50, unit: 'ms' },
            { figure: 'event-to-move p50 (the slideshow page)', clicker: eventToMove.p50, relay: null, unit: 'ms' },
            // What the presenter sees: the move's frame rendered (main thread done).
            { figure: 'tap-to-frame p50 (Chromium)', clicker: toFrame.p50, relay: null, unit: 'ms' },
          ],
          data: {
            options: { ...opts },
            chromium: await browser.version(),
            driver: 'DevTools protocol over a pipe: Page, Emulation, Input and Runtime.evaluate between taps; no network instrumentation',
            tapToSlide: { ...roundSummary(all) },
            // Tap to the slideshow's EventSource delivering the command; the rest of tap-to-slide is the page and reveal.js.
            tapToEvent: { ...roundSummary(toEvent) },
            // Tap to the end of the frame that shows the move (style, layout, paint on the main thread; reveal.js's screen-reader announcement runs in it).
            tapToFrame: { ...roundSummary(toFrame) },
            floor: { ...roundSummary(floor) },
            next: { ...roundSummary(summarize(samples.filter((s) => s.dir === 'next').map((s) => s.ms))) },
            prev: { ...roundSummary(summarize(samples.filter((s) => s.dir === 'prev').map((s) => s.ms))) },
            breakdown: {
              matched: toRequest.length,
              tapToRequestStartP50: round(summarize(toRequest).p50),
              postRoundTripP50: round(summarize(post).p50),
              moveAfterAnswerP50: round(summarize(afterAnswer).p50),
              eventToMoveP50: round(eventToMove.p50),
            },
            tapsWithoutMove: failures,
            // A negative sample would mean the two pages' clocks disagree by more than the latency.
            negativeSamples: negative,
            pageErrors: pageErrors.slice(0, 20),
            meanMs: round(all.mean),
          },
        };
      } finally {
        await browser.close();
      }
    },
  };
}

/** Tap-to-event with no app: two blank pages on the bare relay, in the same browser. */
async function measureFloor(browser: CdpBrowser, relayBase: string, opts: TapOptions): Promise<Summary> {
  const ch = `floor-${process.pid}`;
  const listener = await browser.newPage(`${relayBase}/floor.html#sub/${ch}`, LAPTOP);
  await listener.waitFor(() => document.body?.dataset.open === '1', null, 15_000, 'the floor page stream open');
  const phone = await browser.newPage(`${relayBase}/floor.html#pub/${ch}`, PHONE_PAGE);
  const [x, y] = await phone.center('#go', 15_000);
  const samples: number[] = [];
  const taps = 2 * (opts.warmup + opts.pairs);
  for (let i = 0; i < taps; i++) {
    const eventsBefore = (await counts(listener)).events;
    const tapsBefore = (await counts(phone)).taps;
    await phone.tap(x, y);
    await sleep(opts.settleMs);
    await listener.waitFor((n: number) => (window.__clickerBench?.events.length ?? 0) > n, eventsBefore, opts.moveTimeoutMs, 'the floor event', 5);
    if (i >= 2 * opts.warmup) samples.push(((await stamps(listener)).events[eventsBefore] ?? Number.NaN) - ((await stamps(phone)).taps[tapsBefore] ?? Number.NaN));
  }
  return summarize(samples);
}
