// The drop-in script. With it, any web page, not only a reveal.js deck, can be driven
// by the Clicker phone remote with
//
//   <script src="http://<clicker host:port>/clicker.js"></script>
//   <script>Clicker.start().catch(console.error)</script>
//
// Bundled by esbuild.config.mjs as an IIFE that defines the global `Clicker`
// (every export below). It works like the slideshow plugin
// (slides/clicker-plugin.ts): it opens a channel, or re-registers the one this
// page saved, keeps its event stream alive with protocol/live.ts's watchdog,
// turns commands into key presses or callbacks, shows the pairing QR, and
// reports where the page is so the phone can show it.
//
// The page usually lives on another origin than Clicker, so every request
// is cross-origin: Clicker must be started with --allow-origin <page origin>.
// A browser hides the reason for a refused CORS request from scripts, so the
// errors here name that flag rather than guess.
//
// zod is left out (protocol/wire.ts carries the types without it), and only
// the qrcode package's encoder is bundled: the QR is drawn as SVG here.
import { create as createQr } from 'qrcode/lib/core/qrcode';
import { HttpStatusError, LiveStream, requestJson, type LinkState } from '../protocol/live';
import { EVENT, fitOutline, ID_RE, MAX_CONTROLLERS, type ChannelInfo, type Command, type DeckState, type Knock, type Presence, type SlideRef, type Snapshot } from '../protocol/wire';
import { cardHint, KnockQueue, rowDevice, rowName } from '../protocol/knocks';

// ------------------------------------------------------------------ where Clicker is

/**
 * The Clicker server this script was loaded from. document.currentScript is
 * only set while the script first runs, so it is read here, at load time.
 * Loaded some other way (a bundler, a module), the page's own origin is assumed.
 */
export const server: string = (() => {
  const script = document.currentScript;
  try {
    return new URL(script instanceof HTMLScriptElement && script.src ? script.src : location.href).origin;
  } catch {
    return location.origin;
  }
})();

const api = (path = '') => `${server}/api/channels${path}`;

// ------------------------------------------------------------------ public types

/** The commands the phone sends that map onto a key press. */
export type KeyCommand = 'next' | 'prev' | 'first' | 'last' | 'pause';

export type GotoCommand = Extract<Command, { type: 'goto' }>;

export interface StartOptions {
  /**
   * KeyboardEvent.key to press for each command; false for none. Defaults:
   * next ArrowRight, prev ArrowLeft, first Home, last End, pause none.
   */
  keys?: Partial<Record<KeyCommand, string | false>>;
  /** Called instead of pressing the `next` key. */
  onNext?: (cmd: Command) => void;
  onPrev?: (cmd: Command) => void;
  onFirst?: (cmd: Command) => void;
  onLast?: (cmd: Command) => void;
  /** The phone's slide list: jump to `position` (1-based, as in report()). */
  onGoto?: (position: number, cmd: GotoCommand) => void;
  /** Blackout: `on` is true, false, or undefined for "toggle". */
  onPause?: (on: boolean | undefined, cmd: Command) => void;
  /** Every command, before it is mapped to a callback or a key. */
  onCommand?: (cmd: Command) => void;
  /** Anything that went wrong: start-up, a refused report, a callback that threw. */
  onError?: (err: Error) => void;
  /** The event stream's health: connecting, live, reconnecting, waiting (the server is up but does not know the channel: after a server restart, until this page has registered it again), offline. */
  onStatus?: (state: LinkState) => void;
}

/** What report() takes: enough for the phone's "n / N", title, notes and "Next:". */
export interface PageState {
  /** 1-based position. */
  position: number;
  total: number;
  title?: string;
  notes?: string;
  /** Defaults to the next entry of `slides`, else "Slide n+1". */
  nextTitle?: string;
  paused?: boolean;
  /** Titles of every slide in order, for the phone's "Slides" jump list (goto calls onGoto). */
  slides?: string[];
}

/** What start() resolves with: the public side of the channel. */
export interface Channel {
  id: string;
  /** Read-only audience URL (the follow QR). */
  followUrl: string;
}

export type { Command, LinkState };

// ------------------------------------------------------------------ small helpers

const DEFAULT_KEYS: Record<KeyCommand, string | false> = { next: 'ArrowRight', prev: 'ArrowLeft', first: 'Home', last: 'End', pause: false };

/** `code` and legacy `keyCode` for keys a page is likely to listen for; pages still test keyCode. */
const KEY_CODES: Record<string, [string, number]> = {
  ArrowLeft: ['ArrowLeft', 37],
  ArrowUp: ['ArrowUp', 38],
  ArrowRight: ['ArrowRight', 39],
  ArrowDown: ['ArrowDown', 40],
  PageUp: ['PageUp', 33],
  PageDown: ['PageDown', 34],
  End: ['End', 35],
  Home: ['Home', 36],
  ' ': ['Space', 32],
  Enter: ['Enter', 13],
  Escape: ['Escape', 27],
};

/**
 * Presses a key as keydown then keyup. Dispatched on <body> so it bubbles
 * through document to window: listeners on any of the three see it.
 */
function press(key: string): void {
  const [code, keyCode] = KEY_CODES[key] ?? (key.length === 1 ? [`Key${key.toUpperCase()}`, key.toUpperCase().charCodeAt(0)] : [key, 0]);
  const target: EventTarget = document.body ?? document;
  for (const type of ['keydown', 'keyup']) {
    const ev = new KeyboardEvent(type, { key, code, keyCode, which: keyCode, bubbles: true, cancelable: true, composed: true });
    // Not every engine takes keyCode from the init dictionary.
    if (ev.keyCode !== keyCode) Object.defineProperty(ev, 'keyCode', { get: () => keyCode });
    target.dispatchEvent(ev);
  }
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

/**
 * A message a page author can act on. fetch() rejects with the same bare
 * TypeError for a server that is down and for a CORS refusal, so both are named.
 */
function explain(err: unknown, doing: string): Error {
  const origin = location.origin;
  if (origin === 'null' || !/^https?:/.test(location.protocol)) {
    return new Error(`Clicker: ${doing} failed: open this page over http(s), not from a file, and start Clicker with --allow-origin for its origin`, { cause: err });
  }
  if (err instanceof HttpStatusError) {
    if (err.status === 403 && /cross-origin/.test(err.message)) {
      return new Error(`Clicker at ${server} refused this page's origin ${origin}: start Clicker with --allow-origin ${origin}`, { cause: err });
    }
    return new Error(`Clicker: ${doing} failed: ${err.message} (HTTP ${err.status})`, { cause: err });
  }
  if (err instanceof DOMException && err.name === 'TimeoutError') {
    return new Error(`Clicker: ${doing} failed: ${server} did not answer in time`, { cause: err });
  }
  return new Error(
    `Clicker: ${doing} failed: could not reach ${server}, or it does not allow this page's origin ${origin} ` +
      `(start Clicker with --allow-origin ${origin})`,
    { cause: err },
  );
}

/** One line of text, as the schema wants titles: no control characters, at most 200 characters. */
const line = (s: string) => s.replace(/[\u0000-\u001F\u007F\s]+/g, ' ').trim().slice(0, 200);

/** Notes keep their line breaks; other control characters would be refused (400). */
const notesText = (s: string) =>
  s
    .replace(/\r\n?/g, '\n')
    .replace(/[\u0000-\u0008\u000B-\u001F\u007F]/g, '')
    .replace(/[ \t]+/g, ' ')
    .trim()
    .slice(0, 8_000);

const count = (n: unknown, what: string): number => {
  if (typeof n !== 'number' || !Number.isFinite(n)) throw new TypeError(`Clicker.report: ${what} must be a number`);
  return Math.min(10_000, Math.max(1, Math.round(n)));
};

/** A full DeckState from the few facts a plain page knows. */
function toDeckState(s: PageState): { state: DeckState; slides?: SlideRef[] } {
  const total = count(s.total, 'total');
  const position = Math.min(count(s.position, 'position'), total);
  const titles = Array.isArray(s.slides) ? s.slides.slice(0, 1_000).map((t) => line(String(t))) : undefined;
  const state: DeckState = {
    indexh: position - 1,
    indexv: 0,
    indexf: -1,
    fragments: 0,
    paused: s.paused === true,
    position,
    total,
    isFirst: position === 1,
    isLast: position === total,
    title: line(s.title ?? titles?.[position - 1] ?? `Slide ${position}`),
    notes: notesText(s.notes ?? ''),
    nextTitle: position === total ? '' : line(s.nextTitle ?? titles?.[position] ?? `Slide ${position + 1}`),
  };
  return titles ? { state, slides: fitOutline(titles.map((title, h) => ({ h, v: 0, title }))) } : { state };
}

/** The server validated it already; this keeps a malformed event from reaching page code. */
function asCommand(data: unknown): Command | null {
  if (typeof data !== 'object' || data === null) return null;
  const c = data as Record<string, unknown>;
  if (typeof c.id !== 'string' || !/^[A-Za-z0-9_-]{8,64}$/.test(c.id)) return null;
  switch (c.type) {
    case 'next':
    case 'prev':
    case 'first':
    case 'last':
      return data as Command;
    case 'goto':
      return Number.isInteger(c.h) ? (data as Command) : null;
    case 'pause':
      return c.on === undefined || typeof c.on === 'boolean' ? (data as Command) : null;
    default:
      return null;
  }
}

// ------------------------------------------------------------------ storage

/** Per Clicker server: one page may be tried against several. */
const STORE_KEY = `clicker.dropin.v1:${server}`;

interface Saved {
  id: string;
  deckKey: string;
  controllers: string[];
  lastEventId: string;
  /** The pairing code on show, kept by a re-registration (a reload) while it is still open. */
  pairCode?: string;
}

function loadSaved(): Saved | null {
  try {
    const raw = localStorage.getItem(STORE_KEY);
    const v: unknown = raw ? JSON.parse(raw) : null;
    if (typeof v !== 'object' || v === null) return null;
    const s = v as Partial<Saved>;
    if (typeof s.id !== 'string' || !ID_RE.test(s.id) || typeof s.deckKey !== 'string') return null;
    return {
      id: s.id,
      deckKey: s.deckKey,
      controllers: Array.isArray(s.controllers) ? s.controllers.filter((h) => typeof h === 'string') : [],
      lastEventId: String(s.lastEventId ?? ''),
      ...(typeof s.pairCode === 'string' ? { pairCode: s.pairCode } : {}),
    };
  } catch {
    // Storage can be switched off (private modes, sandboxed frames): the page just gets a new channel.
    return null;
  }
}

function store(saved: Saved | null): void {
  try {
    if (saved) localStorage.setItem(STORE_KEY, JSON.stringify(saved));
    else localStorage.removeItem(STORE_KEY);
  } catch {
    // See loadSaved.
  }
}

// ------------------------------------------------------------------ the page's state

/** Command ids already applied: a replay after a reconnect never moves the page twice. */
const APPLIED_WINDOW = 2048;
/** A report this soon after a command names it as the cause, so the phone can time its round trip. */
const CAUSE_WINDOW_MS = 5_000;
const REPORT_RETRY_MS = 1_000;

/** The newest report; kept across start() so a report made before it is sent on registration. */
let latest: { state: DeckState; slides?: SlideRef[] } | null = null;
let latestGen = 0;

// ------------------------------------------------------------------ session

class Session {
  info: ChannelInfo | null = null;
  presence: Presence = { controllers: 0, pairingOpen: false };
  error: Error | null = null;
  readonly ready: Promise<Channel>;
  private saved = loadSaved();
  private stream: LiveStream | null = null;
  private stopped = false;
  private readonly applied = new Set<string>();
  private readonly keys: Record<KeyCommand, string | false>;
  private cause: { id: string; at: number } | null = null;
  /** Outline last sent on this connection; the phone only needs it again when it changes. */
  private sentSlides = '';
  private deliveredGen = 0;
  private sending = false;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private waiters: { gen: number; resolve: (ok: boolean) => void }[] = [];
  /** Phones that scanned the pairing QR, waiting for the presenter to allow one (phone approval). */
  readonly knocks = new KnockQueue(
    () => knocksChanged(),
    Date.now,
    (k) => void this.refuse(k).catch(() => undefined),
  );

  constructor(private readonly opts: StartOptions) {
    this.keys = { ...DEFAULT_KEYS, ...opts.keys };
    this.ready = this.begin();
  }

  private async begin(): Promise<Channel> {
    try {
      await this.register();
    } catch (err) {
      this.error = explain(err, 'opening a channel');
      this.settle(false);
      this.fail(this.error);
      overlay?.render();
      throw this.error;
    }
    const info = this.info;
    // stop(), or a later start(), came first: this session has nothing more to do, and adopt() kept out of its way.
    if (this.stopped || !info) throw new Error('Clicker: stopped, or replaced by a later start(), before the channel opened');
    this.stream = new LiveStream(
      api(`/${info.id}/events`),
      [EVENT.snapshot, EVENT.command, EVENT.presence, EVENT.knock],
      {
        onEvent: (name, data) => this.onEvent(name, data),
        onState: (s) => this.safely(() => this.opts.onStatus?.(s)),
        // After a server restart the channel is unknown there: bring it back first, with the newest report.
        beforeReconnect: () => this.register(),
        // The page's own stream keeps its slot however many followers the room opens.
        token: () => this.info?.streamToken,
      },
      this.saved?.lastEventId ?? '',
    );
    this.stream.start();
    return { id: info.id, followUrl: info.followUrl };
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.stream?.stop();
    this.settle(false);
  }

  /** Opens a channel, or brings back the saved one with its key, paired phones and the newest report. */
  private async register(): Promise<void> {
    // The newest report rides along, so a phone that connects later finds it in its snapshot.
    const report = latest ?? undefined;
    if (this.saved) {
      const saved = this.saved;
      try {
        // The newest the server takes: a list saved before the cap existed must not be refused whole.
        const body = { controllers: saved.controllers.slice(-MAX_CONTROLLERS), lastEventId: Number(saved.lastEventId) || 0, ...(report ? { report } : {}), ...(saved.pairCode ? { pairCode: saved.pairCode } : {}) };
        this.adopt(await requestJson<ChannelInfo>('PUT', api(`/${saved.id}`), { key: saved.deckKey, body }));
        this.registered();
        return;
      } catch (err) {
        // A 403 "wrong deck key" means the saved key is not this channel's: start afresh.
        // A cross-origin refusal is also a 403, and a fresh channel would meet the same wall.
        if (!(err instanceof HttpStatusError) || err.status !== 403 || /cross-origin/.test(err.message)) throw err;
        this.saved = null;
        store(null);
      }
    }
    this.adopt(await requestJson<ChannelInfo>('POST', api()));
    this.registered();
  }

  /**
   * Registration stores a report but does not broadcast it: a phone that is
   * already connected (the page was reloaded) learns the page's state, and
   * its outline, only from a state report, so one goes out unless sent already.
   */
  private registered(): void {
    this.sentSlides = '';
    if (latest) void this.flush();
  }

  private adopt(next: ChannelInfo): void {
    if (this.stopped) return;
    // A new code: phones that asked with the old one are turned away by the server.
    if (next.pairCode !== this.info?.pairCode) this.knocks.clear();
    this.info = next;
    const lastEventId = this.saved?.id === next.id ? this.saved.lastEventId : '';
    this.saved = { id: next.id, deckKey: next.deckKey, controllers: next.controllers, lastEventId, ...(next.pairCode ? { pairCode: next.pairCode } : {}) };
    store(this.saved);
    this.presence = { controllers: next.controllers.length, pairingOpen: next.pairCode !== null };
    overlay?.render();
  }

  private onEvent(name: string, data: unknown): void {
    if (this.stopped) return;
    // Once a second from each waiting phone, and never replayed: the stream position need not be saved for it.
    // Only while a code is open: a knock that crossed the pairing on its way is no longer a question.
    if (name === EVENT.knock) return this.presence.pairingOpen ? this.knocks.add(data) : undefined;
    if (name === EVENT.command) {
      const cmd = asCommand(data);
      if (cmd) this.apply(cmd);
    } else if (name === EVENT.presence) {
      this.onPresence(data as Presence);
    } else if (name === EVENT.snapshot) {
      this.onPresence((data as Snapshot).presence);
    }
    if (this.saved && this.stream) {
      this.saved.lastEventId = this.stream.lastId;
      store(this.saved);
    }
  }

  private onPresence(p: Presence): void {
    const changed = p.controllers !== this.presence.controllers;
    this.presence = p;
    // The code is spent: whoever else waits is refused by the server now.
    if (!p.pairingOpen) this.knocks.clear();
    overlay?.render();
    // Learn the new controller hashes, so a server restart can bring the pairing back.
    if (changed && this.info) this.register().catch(() => undefined);
  }

  private apply(cmd: Command): void {
    if (this.applied.has(cmd.id)) return;
    this.applied.add(cmd.id);
    if (this.applied.size > APPLIED_WINDOW) this.applied.delete(this.applied.values().next().value!);
    this.cause = { id: cmd.id, at: Date.now() };
    const o = this.opts;
    this.safely(() => o.onCommand?.(cmd));
    switch (cmd.type) {
      case 'goto':
        this.safely(() => o.onGoto?.(cmd.h + 1, cmd));
        return;
      case 'pause':
        if (o.onPause) this.safely(() => o.onPause!(cmd.on, cmd));
        else this.press('pause');
        return;
      default: {
        const callback = { next: o.onNext, prev: o.onPrev, first: o.onFirst, last: o.onLast }[cmd.type];
        if (callback) this.safely(() => callback(cmd));
        else this.press(cmd.type);
      }
    }
  }

  private press(command: KeyCommand): void {
    const key = this.keys[command];
    if (key) this.safely(() => press(key));
  }

  /** Page code must not break the stream's event handler, and nothing is thrown uncaught. */
  private safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.fail(asError(err));
    }
  }

  fail(err: Error): void {
    if (this.opts.onError) {
      try {
        this.opts.onError(err);
      } catch (inner) {
        console.error(inner);
      }
    } else {
      console.error(err);
    }
  }

  // ------------------------------------------------------------ reports

  /** Resolves true once the server has this report (or a newer one), false if it could not be sent. */
  push(gen: number): Promise<boolean> {
    if (this.stopped || this.error) return Promise.resolve(false);
    const done = new Promise<boolean>((resolve) => this.waiters.push({ gen, resolve }));
    // Before the channel is open there is nowhere to send it: registration sends the newest report once done.
    if (this.info) void this.flush();
    return done;
  }

  private delivered(gen: number, report: typeof latest): void {
    if (report?.slides) this.sentSlides = JSON.stringify(report.slides);
    this.deliveredGen = Math.max(this.deliveredGen, gen);
    this.waiters = this.waiters.filter((w) => (w.gen <= this.deliveredGen ? (w.resolve(true), false) : true));
  }

  private settle(ok: boolean): void {
    for (const w of this.waiters) w.resolve(ok);
    this.waiters = [];
  }

  /** Sends the newest report; one request at a time, older ones are skipped. */
  private async flush(): Promise<void> {
    if (this.sending || this.stopped || !this.info || !latest) return;
    while (this.info && latest && this.deliveredGen < latestGen && !this.stopped) {
      this.sending = true;
      const gen = latestGen;
      const report = latest;
      const slides = report.slides && JSON.stringify(report.slides) !== this.sentSlides ? report.slides : undefined;
      const cause = this.cause && Date.now() - this.cause.at < CAUSE_WINDOW_MS ? this.cause.id : undefined;
      this.cause = null;
      const body = { state: report.state, ...(cause ? { cause } : {}), ...(slides ? { slides } : {}) };
      try {
        await requestJson('PUT', api(`/${this.info.id}/state`), { key: this.info.deckKey, body });
        this.delivered(gen, slides ? report : null);
      } catch (err) {
        this.sending = false;
        // The server is briefly away or busy: the phone must not keep an old slide, so try again shortly.
        // Anything else (the channel is gone after a restart) is the stream's to repair: it re-registers
        // with the newest report.
        if (!(err instanceof HttpStatusError) || err.status >= 500 || err.status === 429) {
          clearTimeout(this.retryTimer);
          this.retryTimer = setTimeout(() => void this.flush(), REPORT_RETRY_MS);
        } else if (err.status === 404) {
          // Not an error to show: the re-registration after a restart delivers the newest report.
          this.settle(false);
        } else {
          this.fail(explain(err, 'reporting the page state'));
          this.settle(false);
        }
        return;
      }
      this.sending = false;
    }
  }

  /** Allows the waiting phone that knocked with this key hash and ticket: the code on show is spent on it. */
  async allow({ hash, ticket }: Knock): Promise<void> {
    const info = this.info;
    if (!info?.pairCode) throw new Error('Clicker: no pairing code is open; pair another phone for a new one');
    const next = await requestJson<ChannelInfo>('POST', api(`/${info.id}/controllers`), { key: info.deckKey, body: { code: info.pairCode, hash, ticket } });
    this.adopt({ ...next, deckKey: info.deckKey });
    this.knocks.clear();
  }

  /** Refuses a waiting phone on the server: it is told so, and knocks here no more while this code is open. */
  async refuse({ hash, ticket }: Knock): Promise<void> {
    const info = this.info;
    if (!info?.pairCode) return;
    await requestJson('POST', api(`/${info.id}/refusals`), { key: info.deckKey, body: { code: info.pairCode, hash, ticket } });
  }

  /** A fresh one-time pairing code, to pair another phone (the first code is spent once used). */
  async newPairingCode(): Promise<void> {
    const info = this.info;
    if (!info) return;
    const next = await requestJson<ChannelInfo>('POST', api(`/${info.id}/pair-codes`), { key: info.deckKey });
    this.adopt({ ...next, deckKey: info.deckKey });
  }
}

let session: Session | null = null;

/** A phone waits to be allowed: the presenter must see it, so the overlay opens by itself. */
function knocksChanged(): void {
  if (session?.knocks.list().length) {
    overlay ??= new Overlay();
    overlay.show();
  } else {
    overlay?.render();
  }
}

// ------------------------------------------------------------------ the QR overlay

const SVG_NS = 'http://www.w3.org/2000/svg';

/** The QR code as an SVG of one path: no canvas, no data: URL a page's CSP could refuse. */
function qrSvg(text: string): SVGSVGElement {
  const modules = createQr(text, { errorCorrectionLevel: 'M' }).modules;
  const n = modules.size;
  const quiet = 2;
  let d = '';
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) if (modules.get(y, x)) d += `M${x + quiet} ${y + quiet}h1v1h-1z`;
  }
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${n + 2 * quiet} ${n + 2 * quiet}`);
  svg.setAttribute('shape-rendering', 'crispEdges');
  svg.setAttribute('aria-hidden', 'true');
  const bg = document.createElementNS(SVG_NS, 'rect');
  bg.setAttribute('width', '100%');
  bg.setAttribute('height', '100%');
  bg.setAttribute('fill', '#fff');
  const path = document.createElementNS(SVG_NS, 'path');
  path.setAttribute('d', d);
  path.setAttribute('fill', '#000');
  svg.append(bg, path);
  return svg;
}

// `all: initial` on the host stops the page's inherited styles (font, colour,
// line height) at the shadow boundary; the page's selectors cannot reach in.
const OVERLAY_CSS = `
:host{all:initial}
.backdrop{position:fixed;inset:0;display:flex;align-items:center;justify-content:center;background:rgba(0,0,0,.6);font:16px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111}
.panel{position:relative;box-sizing:border-box;width:min(92vw,420px);max-height:96vh;overflow:auto;padding:28px 24px 20px;background:#fff;border-radius:14px;box-shadow:0 10px 40px rgba(0,0,0,.4);text-align:center}
.qr{width:min(72vw,62vh,320px);margin:0 auto}
.qr svg{display:block;width:100%;height:auto}
.caption{margin:14px 0 4px;font-weight:600}
.url{margin:0;font:13px/1.4 ui-monospace,Menlo,Consolas,monospace;color:#444;word-break:break-all}
.error{margin:8px 0;color:#a00}
.close{position:absolute;top:6px;right:8px;width:40px;height:40px;border:0;border-radius:20px;background:transparent;font:28px/1 system-ui,sans-serif;color:#333;cursor:pointer}
.again{margin-top:14px;padding:8px 14px;border:1px solid #bbb;border-radius:8px;background:#f4f4f4;font:inherit;color:#111;cursor:pointer}
button:focus-visible{outline:3px solid #2a6ef5;outline-offset:2px}
.knocks{margin:0 0 6px;text-align:left}
.knocks ol{list-style:none;margin:8px 0 0;padding:0}
.knocks li{display:flex;align-items:center;gap:10px;padding:8px 0;border-top:1px solid #ddd}
.knocks strong{font-size:22px}
.knocks span{flex:1;color:#555;font-size:13px}
.knocks button{padding:6px 12px;border:1px solid #bbb;border-radius:8px;background:#f4f4f4;font:600 14px system-ui,sans-serif;color:#111;cursor:pointer}
.knocks button.allow{background:#2f7d4f;border-color:#2f7d4f;color:#fff}
.knocks button:disabled{opacity:.45;cursor:default}
.knocks .hint{margin:8px 0 0;font-size:13px;color:#555}
[hidden]{display:none!important}
`;

class Overlay {
  readonly host: HTMLElement;
  private readonly qr: HTMLElement;
  private readonly caption: HTMLElement;
  private readonly url: HTMLElement;
  private readonly again: HTMLButtonElement;
  private readonly close: HTMLButtonElement;
  private readonly knockBox: HTMLElement;
  private shownUrl = '';
  private returnFocus: Element | null = null;

  constructor() {
    // A custom element name, since any name of that form may host a shadow root, and no page CSS targets it by accident.
    this.host = document.createElement('clicker-overlay');
    // Inline !important beats the page's own !important rules on the one element it can reach.
    for (const [prop, value] of [
      ['display', 'none'],
      ['position', 'fixed'],
      ['inset', '0'],
      ['z-index', '2147483647'],
    ]) {
      this.host.style.setProperty(prop!, value!, 'important');
    }
    this.host.setAttribute('data-clicker-overlay', '');
    const root = this.host.attachShadow({ mode: 'open' });
    const style = document.createElement('style');
    style.textContent = OVERLAY_CSS;
    const backdrop = el('div', 'backdrop');
    const panel = el('div', 'panel');
    panel.setAttribute('role', 'dialog');
    panel.setAttribute('aria-modal', 'true');
    panel.setAttribute('aria-label', 'Pair your phone with Clicker');
    this.close = el('button', 'close');
    this.close.type = 'button';
    this.close.textContent = '×';
    this.close.setAttribute('aria-label', 'Close');
    this.qr = el('div', 'qr');
    this.qr.setAttribute('role', 'img');
    this.qr.setAttribute('data-clicker-qr-code', '');
    this.caption = el('p', 'caption');
    this.caption.setAttribute('data-clicker-qr-caption', '');
    this.url = el('p', 'url');
    this.url.setAttribute('data-clicker-qr-url', '');
    this.again = el('button', 'again');
    this.again.type = 'button';
    this.again.textContent = 'Pair another phone';
    this.knockBox = el('div', 'knocks');
    this.knockBox.setAttribute('data-clicker-knock', '');
    this.knockBox.setAttribute('role', 'alert');
    panel.append(this.close, this.knockBox, this.qr, this.caption, this.url, this.again);
    backdrop.append(panel);
    root.append(style, backdrop);

    this.close.addEventListener('click', () => hideQr());
    backdrop.addEventListener('click', (ev) => {
      if (ev.target === backdrop) hideQr();
    });
    this.again.addEventListener('click', () => {
      session?.newPairingCode().catch((err: unknown) => session?.fail(explain(err, 'issuing a pairing code')));
    });
    document.addEventListener(
      'keydown',
      (ev) => {
        // Synthetic presses are the remote's own; only a person closes the overlay, or answers a phone.
        if (!ev.isTrusted || !this.open) return;
        // A focused Allow or Refuse answers Enter and Space itself, as a button does.
        const focused = this.host.shadowRoot?.activeElement;
        if ((ev.key === 'Enter' || ev.key === ' ') && focused instanceof HTMLButtonElement && this.knockBox.contains(focused)) return;
        // While phones wait: Enter allows the one waiting phone, its number one of several, Esc refuses those shown.
        const action = session?.knocks.keyAction(ev.key, ev.code);
        if (action !== undefined) {
          ev.preventDefault();
          ev.stopPropagation();
          if (action === 'refuse') session?.knocks.refuseShown();
          else if (action !== 'ignore') this.allow(action.allow);
        } else if (ev.key === 'Escape') {
          ev.stopPropagation();
          hideQr();
        }
      },
      true,
    );
    (document.body ?? document.documentElement).append(this.host);
  }

  /** Whether it is showing. The host's `hidden` attribute would lose to the inline display rule, so display is set directly. */
  open = false;

  private setOpen(open: boolean): void {
    this.open = open;
    this.host.style.setProperty('display', open ? 'block' : 'none', 'important');
  }

  show(): void {
    const was = this.open;
    if (!was) this.returnFocus = document.activeElement;
    this.setOpen(true);
    this.render();
    // Focus once, as it opens: a redraw (a phone knocking) must not pull it off what the presenter is on.
    if (!was) this.close.focus();
  }

  hide(): void {
    if (!this.open) return;
    this.setOpen(false);
    if (this.returnFocus instanceof HTMLElement) this.returnFocus.focus();
    this.returnFocus = null;
  }

  private allowing = false;

  /** One allow at a time (a double press would spend the code, then fail); a refusal shows on the overlay too. */
  private allow(knock: Knock): void {
    if (this.allowing || !session) return;
    this.allowing = true;
    this.knockProblem = '';
    session
      .allow(knock)
      .catch((err: unknown) => {
        this.knockProblem = 'Could not allow it. Press “New code”, and scan the new one.';
        session?.fail(explain(err, 'allowing a phone'));
      })
      .finally(() => {
        this.allowing = false;
        this.render();
      });
  }

  private knockProblem = '';

  /** The phones waiting to be allowed, each with its name, what it says it is, Allow and Refuse. */
  private renderKnocks(): void {
    const waiting = session?.knocks.list() ?? [];
    const more = session?.knocks.hidden() ?? 0;
    this.knockBox.hidden = waiting.length === 0;
    if (!waiting.length) {
      this.knockProblem = '';
      return;
    }
    const title = el('p', 'caption');
    title.textContent = 'A phone asks to be the remote';
    const list = el('ol', '');
    for (const k of waiting) {
      const name = el('strong', '');
      name.textContent = rowName(k, waiting.length > 1);
      const device = el('span', '');
      device.textContent = rowDevice(k);
      const allow = el('button', 'allow');
      allow.type = 'button';
      allow.textContent = 'Allow';
      allow.disabled = k.clash;
      // A row that has only just arrived (and perhaps pushed the others down) takes no click yet.
      allow.addEventListener('click', () => {
        if (session?.knocks.settled(k.hash)) this.allow(k);
      });
      const refuse = el('button', 'refuse');
      refuse.type = 'button';
      refuse.textContent = 'Refuse';
      refuse.addEventListener('click', () => session?.knocks.refuse(k.hash));
      const item = el('li', '');
      item.append(name, device, allow, refuse);
      list.append(item);
    }
    const hint = el('p', 'hint');
    hint.textContent = cardHint(waiting, more, 'Press “New code”, and scan the new one.');
    const problem = el('p', 'error');
    problem.textContent = this.knockProblem;
    problem.hidden = !this.knockProblem;
    this.knockBox.replaceChildren(title, list, hint, problem);
  }

  /** Draws what the session knows: connecting, an error, the pairing QR, or the follow QR once paired. */
  render(): void {
    if (!this.open) return;
    this.renderKnocks();
    const s = session;
    const info = s?.info;
    let kind: 'pair' | 'follow' | 'wait' | 'error';
    let url = '';
    if (!s || s.error || !info) {
      kind = s?.error ? 'error' : 'wait';
      this.caption.textContent = s?.error ? s.error.message : s ? 'Connecting to Clicker…' : 'Clicker.start() has not been called.';
    } else if (info.controllerUrl !== null && s.presence.pairingOpen) {
      kind = 'pair';
      url = info.controllerUrl;
      this.caption.textContent = 'Scan with your phone to use it as the remote';
    } else {
      kind = 'follow';
      url = info.followUrl;
      this.caption.textContent = 'A phone is paired. Scan to follow along';
    }
    this.host.dataset.kind = kind;
    this.caption.className = kind === 'error' ? 'caption error' : 'caption';
    // While a code is on show, a new one (a phone refused by mistake asks
    // with the new code; an allow that failed says to press it); once one
    // is paired, another phone.
    this.again.hidden = kind !== 'follow' && kind !== 'pair';
    this.again.textContent = kind === 'follow' ? 'Pair another phone' : 'New code';
    this.qr.hidden = !url;
    this.qr.setAttribute('aria-label', kind === 'pair' ? 'QR code to pair your phone as the remote' : 'QR code to follow along');
    // Without the fragment: the one-time pairing code is for the camera, not for the room to copy.
    this.url.textContent = url.split('#')[0]!;
    if (url !== this.shownUrl) {
      this.shownUrl = url;
      this.qr.replaceChildren(...(url ? [qrSvg(url)] : []));
    }
  }
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  return node;
}

let overlay: Overlay | null = null;

// ------------------------------------------------------------------ the API

/**
 * Opens a channel for this page (or brings back the one it saved), and
 * applies the phone's commands from then on. Rejects with a clear message,
 * after calling options.onError, if Clicker cannot be reached or does not
 * allow this page's origin. A second call replaces the first session.
 */
export function start(options: StartOptions = {}): Promise<Channel> {
  session?.stop();
  session = new Session(options);
  overlay?.render();
  return session.ready;
}

/** Stops applying commands and closes the stream. The channel stays saved for the next start(). */
export function stop(): void {
  session?.stop();
  session = null;
  overlay?.render();
}

/** Shows the pairing QR (the follow QR once a phone is paired) over the page. */
export function showQr(): void {
  overlay ??= new Overlay();
  overlay.show();
}

export function hideQr(): void {
  overlay?.hide();
}

/**
 * Tells the phone where the page is: "position / total", the title, notes and
 * what comes next. Resolves true once the server has it, false if it could not
 * be sent (the reason goes to onError); never rejects. A report made before
 * start() is sent as soon as the channel is open.
 */
export function report(state: PageState): Promise<boolean> {
  try {
    latest = toDeckState(state);
  } catch (err) {
    if (session) session.fail(asError(err));
    else console.error(err);
    return Promise.resolve(false);
  }
  latestGen++;
  return session ? session.push(latestGen) : Promise.resolve(false);
}

/**
 * Follows a channel's public stream, read-only: handler(eventName, data) for
 * every event (snapshot, command, state, presence, ...). The stream reconnects
 * by itself. Returns the function that unsubscribes.
 */
export function subscribe(channelId: string, handler: (event: string, data: unknown) => void): () => void {
  if (!ID_RE.test(channelId)) throw new TypeError(`Clicker.subscribe: "${channelId}" is not a channel id`);
  const stream = new LiveStream(api(`/${channelId}/events`), Object.values(EVENT), {
    onEvent(name, data) {
      try {
        handler(name, data);
      } catch (err) {
        console.error(err);
      }
    },
  });
  stream.start();
  return () => stream.stop();
}
