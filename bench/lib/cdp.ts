// A Chromium driven over the DevTools protocol with nothing enabled that a
// phone or a laptop would not have: for the tap scenario.
//
// Why not Playwright here: it enables the Network domain on every page it
// drives (for its request events and routing), and DevTools' network
// instrumentation then takes part in every request and every chunk of every
// response, in the renderer and in the browser. On this machine that added
// 1.5 to 3 ms to each tap's path (phone POST and slideshow stream), more than
// the hub's whole share, and no presenter's phone or laptop has DevTools
// attached. This client attaches to each page and uses only Page (to install
// the stamping scripts before the page's own), Emulation (the phone's screen
// and touch), Input (the taps, the way the browser hands a real touch to the
// page) and Runtime.evaluate between taps to read the stamps back.
//
// The transport is --remote-debugging-pipe: JSON messages separated by NUL
// on file descriptors 3 (to Chromium) and 4 (from it), so nothing listens on a
// port.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { sleep } from './scenario';

type Params = Record<string, unknown>;

interface Pending {
  resolve(result: Params): void;
  reject(err: Error): void;
  method: string;
}

/** What a page looks like: the laptop's window, or a phone's screen. */
export interface PageOptions {
  width: number;
  height: number;
  deviceScaleFactor?: number;
  /** A phone: mobile viewport, touch events, and its user agent. */
  mobile?: { userAgent: string };
  /** Scripts run in every document of the page before its own (as Page.addScriptToEvaluateOnNewDocument). */
  init?: string[];
}

export class CdpError extends Error {}

export class CdpBrowser {
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private closed: Error | undefined;
  private stderr = '';

  private constructor(
    private readonly child: ChildProcess,
    private readonly toChrome: Writable,
    private readonly profileDir: string,
  ) {}

  /** Starts Chromium headless with a fresh profile; `args` are added to the pipe and headless flags. */
  static async launch(executablePath: string, args: readonly string[], timeoutMs = 30_000): Promise<CdpBrowser> {
    const profileDir = await mkdtemp(path.join(os.tmpdir(), 'clicker-bench-chromium-'));
    const child = spawn(
      executablePath,
      ['--headless', '--remote-debugging-pipe', '--no-startup-window', `--user-data-dir=${profileDir}`, '--hide-scrollbars', '--mute-audio', ...args],
      { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] },
    );
    const [, , err, toChrome, fromChrome] = child.stdio as [null, null, Readable, Writable, Readable];
    const browser = new CdpBrowser(child, toChrome, profileDir);
    err.setEncoding('utf8');
    err.on('data', (d: string) => {
      // Kept for the error message if it dies; Chromium logs a lot at start.
      browser.stderr = (browser.stderr + d).slice(-4_000);
    });
    browser.read(fromChrome);
    child.on('error', (e) => browser.fail(new CdpError(`chromium: ${e.message}`)));
    child.on('exit', (code, signal) => browser.fail(new CdpError(`chromium exited (${signal ?? code}): ${browser.stderr.trim().split('\n').slice(-3).join(' | ')}`)));
    // A pipe write to a dead process must surface as that error, not crash the bench.
    toChrome.on('error', (e) => browser.fail(new CdpError(`chromium pipe: ${e.message}`)));
    const timer = setTimeout(() => browser.fail(new CdpError(`chromium did not answer within ${timeoutMs} ms`)), timeoutMs);
    try {
      await browser.send('Browser.getVersion');
    } catch (e) {
      await browser.close();
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return browser;
  }

  private read(fromChrome: Readable): void {
    let buf = '';
    fromChrome.setEncoding('utf8');
    fromChrome.on('data', (d: string) => {
      buf += d;
      for (let end = buf.indexOf('\0'); end >= 0; end = buf.indexOf('\0')) {
        const msg = JSON.parse(buf.slice(0, end)) as { id?: number; result?: Params; error?: { message: string } };
        buf = buf.slice(end + 1);
        // Events (no id) are not asked for and not needed.
        if (msg.id === undefined) continue;
        const p = this.pending.get(msg.id);
        if (!p) continue;
        this.pending.delete(msg.id);
        if (msg.error) p.reject(new CdpError(`${p.method}: ${msg.error.message}`));
        else p.resolve(msg.result ?? {});
      }
    });
  }

  private fail(err: Error): void {
    if (this.closed) return;
    this.closed = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  send(method: string, params: Params = {}, sessionId?: string): Promise<Params> {
    if (this.closed) return Promise.reject(this.closed);
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, method });
      this.toChrome.write(`${JSON.stringify(sessionId ? { id, method, params, sessionId } : { id, method, params })}\0`);
    });
  }

  async version(): Promise<string> {
    const v = await this.send('Browser.getVersion');
    return String(v.product ?? '');
  }

  /** A page in a browser context of its own: its own cookies, storage and connections, like another device. */
  async newPage(url: string, opts: PageOptions): Promise<CdpPage> {
    const { browserContextId } = await this.send('Target.createBrowserContext');
    const { targetId } = await this.send('Target.createTarget', { url: 'about:blank', browserContextId });
    const { sessionId } = await this.send('Target.attachToTarget', { targetId, flatten: true });
    const page = new CdpPage(this, String(sessionId));
    await page.send('Page.enable');
    await page.send('Emulation.setDeviceMetricsOverride', {
      width: opts.width,
      height: opts.height,
      deviceScaleFactor: opts.deviceScaleFactor ?? 1,
      mobile: opts.mobile !== undefined,
    });
    if (opts.mobile) {
      await page.send('Emulation.setTouchEmulationEnabled', { enabled: true, maxTouchPoints: 5 });
      await page.send('Emulation.setUserAgentOverride', { userAgent: opts.mobile.userAgent });
    }
    for (const source of opts.init ?? []) await page.send('Page.addScriptToEvaluateOnNewDocument', { source });
    await page.send('Page.navigate', { url });
    return page;
  }

  async close(): Promise<void> {
    if (!this.closed) {
      const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
      await Promise.race([this.send('Browser.close').catch(() => undefined), sleep(5_000)]);
      await Promise.race([exited, sleep(5_000)]);
    }
    this.fail(new CdpError('browser closed'));
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await rm(this.profileDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

export class CdpPage {
  constructor(
    private readonly browser: CdpBrowser,
    private readonly sessionId: string,
  ) {}

  send(method: string, params: Params = {}): Promise<Params> {
    return this.browser.send(method, params, this.sessionId);
  }

  /**
   * Runs `fn(arg)` in the page and returns its JSON result. `fn` travels as
   * source text, so it must not use anything from this file's scope.
   */
  async evaluate<A, R>(fn: (arg: A) => R | Promise<R>, arg: A): Promise<R> {
    const res = await this.send('Runtime.evaluate', {
      expression: `(${fn.toString()})(${JSON.stringify(arg)})`,
      returnByValue: true,
      awaitPromise: true,
    });
    const details = res.exceptionDetails as { exception?: { description?: string }; text?: string } | undefined;
    if (details) throw new CdpError(`in the page: ${details.exception?.description ?? details.text ?? 'an exception'}`);
    return (res.result as { value: R }).value;
  }

  /** Polls `fn(arg)` every `everyMs` until it returns something truthy; its value. */
  async waitFor<A, R>(fn: (arg: A) => R, arg: A, timeoutMs: number, what: string, everyMs = 20): Promise<NonNullable<R>> {
    const until = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      try {
        const v = await this.evaluate(fn, arg);
        if (v) return v as NonNullable<R>;
      } catch (err) {
        // A navigation in progress destroys the context; the next poll finds the new one.
        last = err;
      }
      if (Date.now() > until) throw new CdpError(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? ` (${last.message})` : ''}`);
      await sleep(everyMs);
    }
  }

  /** A one-finger tap at (x, y) in CSS pixels: touchstart and touchend, as a phone's browser delivers them. */
  async tap(x: number, y: number): Promise<void> {
    await this.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [{ x, y }] });
    await this.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
  }

  /** The centre of the first element matching `selector`, once it is laid out. */
  center(selector: string, timeoutMs: number): Promise<[number, number]> {
    return this.waitFor(
      (sel: string): [number, number] | null => {
        const el = document.querySelector(sel);
        const r = el?.getBoundingClientRect();
        return r && r.width > 0 && r.height > 0 ? [r.x + r.width / 2, r.y + r.height / 2] : null;
      },
      selector,
      timeoutMs,
      `${selector} on screen`,
    );
  }
}
