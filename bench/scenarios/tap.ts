// Tap-to-slide in Chromium: the whole path a presenter feels, from the phone
// page's pointerdown through the POST, the hub, the slideshow's stream and
// reveal.js, to the slideshow's DOM changing.
//
// The start is stamped inside the phone page by a capture-phase pointerdown
// listener on window (it runs before the remote's own handler, which sends on
// pointerdown); the end is stamped inside the slideshow page by a
// MutationObserver that sees a section gain or lose `present`, or a fragment
// gain or lose `visible`. Both stamps are performance.timeOrigin +
// performance.now(), the one clock two renderer processes share closely
// enough; the Playwright-side time of each tap call is kept too, as a check.
//
// In-page callbacks below declare no named inner functions: tsx compiles this
// file with keepNames, which would wrap them in a `__name` helper that does
// not exist inside the page.
import { performance } from 'node:perf_hooks';
import { chromium, devices, type Browser, type Page } from '@playwright/test';
import { round, roundSummary, summarize } from '../lib/stats';
import { judge, type Scenario } from '../lib/scenario';

declare global {
  interface Window {
    __clickerBench?: { moves: number[]; taps: number[] };
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
  const bench = { moves: [] as number[], taps: [] as number[] };
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
    if (moved) bench.moves.push(t);
  }).observe(root, { subtree: true, attributes: true, attributeFilter: ['class'], attributeOldValue: true });
}

/** Records taps in the phone page, before any of the page's own scripts run. */
function installTapStamp(): void {
  const bench = { moves: [] as number[], taps: [] as number[] };
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

async function count(page: Page, what: 'moves' | 'taps'): Promise<number> {
  return page.evaluate((w) => window.__clickerBench?.[w].length ?? 0, what);
}

async function stamp(page: Page, what: 'moves' | 'taps', index: number): Promise<number> {
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

        const samples: { dir: 'next' | 'prev'; ms: number; outsideMs: number; tapAt: number; moveAt: number }[] = [];
        let failures = 0;
        let consecutive = 0;
        const tapOnce = async (dir: 'next' | 'prev', record: boolean): Promise<void> => {
          const button = dir === 'next' ? next : prev;
          const movesBefore = await count(deck, 'moves');
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
          const [tapAt, moveAt] = [await stamp(phone, 'taps', tapsBefore), await stamp(deck, 'moves', movesBefore)];
          if (record) samples.push({ dir, ms: moveAt - tapAt, outsideMs, tapAt, moveAt });
          await new Promise((resolve) => setTimeout(resolve, opts.settleMs));
        };

        for (let i = 0; i < opts.warmup + opts.pairs; i++) {
          if (Date.now() > ctx.deadline) throw new Error('out of time');
          const record = i >= opts.warmup;
          await tapOnce('next', record);
          await tapOnce('prev', record);
        }

        const all = summarize(samples.map((s) => s.ms));
        // Where the time goes, from the phone's resource timing: tap to request start (the
        // remote's own work), the POST's round trip, and the deck's move after the answer
        // (negative when the event reached the deck before the answer reached the phone).
        const requests = await commandRequests(phone);
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
        ctx.log(`tap: p50 ${all.p50.toFixed(1)} ms over ${all.n} taps, ${failures} without a move`);
        return {
          rows: [
            { figure: 'tap-to-slide p50 (Chromium)', clicker: all.p50, relay: null, unit: 'ms', goals: [{ text: '<= 5 ms', pass: judge(all.p50, '<=', 5) }] },
            { figure: 'tap-to-slide p99 (Chromium)', clicker: all.p99, relay: null, unit: 'ms' },
          ],
          data: {
            options: { ...opts },
            chromium: browser.version(),
            tapToSlide: { ...roundSummary(all) },
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
