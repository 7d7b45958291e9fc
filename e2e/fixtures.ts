// Helpers for the end-to-end specs: a real Clicker server process on a free
// port, QR decoding from screenshots, and loopback rewriting. Tests only ever
// send traffic to 127.0.0.1; the LAN address is read from the QR, checked,
// then swapped for loopback before anything is opened.
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import jsQR from 'jsqr';
import { PNG } from 'pngjs';
import { expect, type Browser, type BrowserContextOptions, type Page } from '@playwright/test';
import { SETTLE_MS } from '../protocol/knocks';

const ROOT = path.resolve(import.meta.dirname, '..');

export class ClickerServer {
  private constructor(
    private proc: ChildProcess,
    readonly port: number,
    /** The URL the server printed for the laptop (on the LAN address). */
    readonly printedUrl: string,
    private readonly args: string[],
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** Loopback base URL: what the tests actually open. */
  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  static async start(args: string[] = [], env: NodeJS.ProcessEnv = {}, port = 0): Promise<ClickerServer> {
    const proc = spawn(process.execPath, [path.join(ROOT, 'dist/server/main.js'), '--port', String(port), ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const printedUrl = await new Promise<string>((resolve, reject) => {
      let out = '';
      let err = '';
      const timer = setTimeout(() => {
        // Never leave a half-started server behind.
        proc.kill('SIGKILL');
        reject(new Error(`server did not start: ${out}${err}`));
      }, 20_000);
      proc.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const m = /Open the slideshow on this laptop:\s+(\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      proc.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
      proc.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`server exited with ${code}: ${err}`));
      });
    });
    return new ClickerServer(proc, Number(new URL(printedUrl).port), printedUrl, args, env);
  }

  /** Stops the process (SIGTERM, as an operator would) and waits for it to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.proc.exitCode !== null) return this.proc.exitCode;
    const exited = new Promise<number | null>((resolve) => this.proc.once('exit', (code) => resolve(code)));
    this.proc.kill(signal);
    return exited;
  }

  /** A new server process on the same port, with an empty in-memory hub. */
  async restart(signal: NodeJS.Signals = 'SIGKILL'): Promise<ClickerServer> {
    await this.stop(signal);
    return ClickerServer.start(this.args, this.env, this.port);
  }
}

/** Every non-internal address of this machine: what the QR code may carry. */
export function lanAddresses(): string[] {
  return Object.values(os.networkInterfaces())
    .flatMap((list) => list ?? [])
    .filter((a) => !a.internal)
    .map((a) => a.address);
}

/** Same URL, pointed at 127.0.0.1 on the same port. */
export function toLoopback(url: string): string {
  const u = new URL(url);
  u.hostname = '127.0.0.1';
  return u.toString();
}

/** Decodes the QR code visible in a PNG screenshot. */
export function decodeQr(png: Buffer): string {
  const img = PNG.sync.read(png);
  const code = jsQR(new Uint8ClampedArray(img.data.buffer, img.data.byteOffset, img.data.length), img.width, img.height);
  if (!code) throw new Error('no QR code found in the screenshot');
  return code.data;
}

/** How many pixels of a PNG screenshot are within `tolerance` of `hex` (#RRGGBB) in each channel. */
export function pixelsNear(png: Buffer, hex: string, tolerance = 24): number {
  const img = PNG.sync.read(png);
  const want = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  let n = 0;
  for (let i = 0; i < img.data.length; i += 4) {
    if (want.every((v, c) => Math.abs(img.data[i + c]! - v) <= tolerance)) n++;
  }
  return n;
}

/** Screenshots the title slide's QR code and decodes it. */
export async function readDeckQr(deck: Page): Promise<string> {
  const box = deck.locator('[data-clicker-qr-code] img');
  await box.waitFor();
  // Wait until the image has been drawn.
  await deck.waitForFunction(() => {
    const img = document.querySelector<HTMLImageElement>('[data-clicker-qr-code] img');
    return !!img && img.complete && img.naturalWidth > 0;
  });
  return decodeQr(await box.screenshot());
}

/**
 * What the presenter does once the phone has scanned the pairing QR (phone
 * approval): reads the name the waiting phone shows, checks that the
 * slideshow (or the drop-in's overlay) asks about that same name, and allows
 * it with Enter. Resolves with the name once the phone is live.
 */
export async function allowPhone(deck: Page, phone: Page): Promise<string> {
  const label = phone.locator('#message-label');
  await expect(label).toBeVisible();
  const name = (await label.textContent()) ?? '';
  expect(name).toMatch(/^[A-Z][a-z]+ [1-9]\d$/);
  // On screen, where the presenter looks: not merely in the page.
  await expect(deck.locator('[data-clicker-knock]')).toBeInViewport({ ratio: 1 });
  await expect(deck.locator('[data-clicker-knock] li strong')).toHaveText([name]);
  // Keys wait a moment after the card's list changes (a number pressed as a row moved must not pick its neighbour).
  await deck.waitForTimeout(SETTLE_MS + 200);
  await deck.keyboard.press('Enter');
  await expect(phone.locator('#conn')).toHaveAttribute('data-state', 'live');
  return name;
}

/**
 * Marks the page as it is now, to tell later whether it has been loaded anew
 * (a reload starts a new window, without the mark). `reloaded()` is for
 * polling: while the navigation is under way the old page's context is gone,
 * which counts as "not yet". `reloaded({ strict: true })` is for saying it
 * was not reloaded: it reads the page as it is, and fails if it cannot.
 */
export async function markPage(page: Page): Promise<{ reloaded(opts?: { strict?: boolean }): Promise<boolean> }> {
  await page.evaluate(() => ((window as unknown as { clickerMark?: boolean }).clickerMark = true));
  const read = () => page.evaluate(() => (window as unknown as { clickerMark?: boolean }).clickerMark !== true);
  return { reloaded: (opts = {}) => (opts.strict ? read() : read().catch(() => false)) };
}

/** The slideshow's "n / N" slide number as reveal.js renders it. */
export async function deckPosition(deck: Page): Promise<string> {
  return (await deck.locator('.reveal .slide-number').innerText()).replace(/\s+/g, ' ').trim();
}

/**
 * Closes every page a test opened. Run after each test, before its server
 * stops: a page left open keeps reconnecting, and could reach the next
 * test's server if the OS hands out the same port again.
 */
export async function closePages(browser: Browser): Promise<void> {
  await Promise.all(browser.contexts().map((c) => c.close()));
}

/**
 * Opens pages whose every request is watched. The tests only ever talk to
 * 127.0.0.1, never to the LAN address a QR code carries: `off` lists any
 * request that went elsewhere, and a test's afterEach expects it empty.
 */
export class LoopbackOnly {
  off: string[] = [];

  reset(): void {
    this.off = [];
  }

  async newPage(browser: Browser, options: BrowserContextOptions): Promise<Page> {
    const ctx = await browser.newContext(options);
    ctx.on('request', (req) => {
      const url = new URL(req.url());
      if ((url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '127.0.0.1') this.off.push(req.url());
    });
    return ctx.newPage();
  }
}

/** What one animation frame of a slideshow showed (see recordFrames). */
export interface Frame {
  /** The present slide's heading. */
  title: string;
  /** Whether that slide, or its background, could be seen: neither it nor a parent hidden or at opacity 0. */
  shown: boolean;
  /** Whether the pause overlay covered it wholly (a blackout, done fading in). */
  blackedOut: boolean;
}

/**
 * Installed before the page's own scripts: what each animation frame of the
 * page's first 4 s shows, for a test to read after a reload or on joining.
 */
export function recordFrames(): void {
  const frames: Frame[] = [];
  (window as unknown as { clickerFrames: Frame[] }).clickerFrames = frames;
  const t0 = performance.now();
  const seen = (el: Element | undefined) => !!el && el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true });
  const look = () => {
    // The innermost: in a vertical stack, the stack's section (and its background) is present too.
    const present = [...document.querySelectorAll('.reveal .slides section.present')].at(-1);
    const background = [...document.querySelectorAll('.reveal .backgrounds .slide-background.present')].at(-1);
    const overlay = document.querySelector('.reveal .pause-overlay') ?? undefined;
    if (present) {
      frames.push({
        title: present.querySelector('h1, h2')?.textContent ?? '',
        shown: seen(present) || seen(background),
        blackedOut: !!overlay && seen(overlay) && Number(getComputedStyle(overlay).opacity) >= 0.99,
      });
    }
    if (performance.now() - t0 < 4_000) requestAnimationFrame(look);
  };
  requestAnimationFrame(look);
}

/** The titles of the slides a page let the room see, in the frames recordFrames kept: each once, in order. */
export async function titlesSeen(page: Page): Promise<string[]> {
  const frames = await page.evaluate(() => (window as unknown as { clickerFrames: Frame[] }).clickerFrames);
  expect(frames.length, 'frames were recorded').toBeGreaterThan(10);
  return [...new Set(frames.filter((f) => f.shown && !f.blackedOut).map((f) => f.title))];
}
