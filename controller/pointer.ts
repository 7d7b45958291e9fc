// The phone's laser pointer and pen: a pad with the slide's shape. A finger
// on it shows a red dot at the same place on the slideshow; in Draw mode it
// leaves ink on the current slide.
//
// Traffic is coalesced here, because a late position is worse than none: at
// most one POST is in flight, while it is only the newest position is kept
// (older ones are dropped, never sent late), and sends are paced by
// requestAnimationFrame, so never faster than the display (60 a second at
// most, under the server's per-key limit). Every event carries a `seq` that
// only grows on this phone; the slideshow ignores one older than what it
// has already shown.
import './pointer.css';
import { canStep, type Pointer, type PublicDeckState } from '../protocol/wire';
import { HttpStatusError, requestJson } from '../protocol/live';

/** reveal.js's default slide size (960x700), until the slideshow reports its own. */
const DEFAULT_ASPECT = 960 / 700;
/** A resting finger repeats its position this often, so the slideshow's idle timeout never hides a held dot. */
const HOLD_REPEAT_MS = 1_000;
/** After a failed send, wait this long before the next. */
const FAIL_PAUSE_MS = 400;
/** A failed event is sent again at most this many times in a row. */
const RESEND_MAX = 4;
/** Gap between the title, the pad and the tip, as in pointer.css. */
const STAGE_GAP = 8;
/** Waiting events kept at most while a send is in flight. */
const QUEUE_MAX = 4;
/** Stroke ids wrap here (the schema's bound). */
const STROKE_IDS = 1_000_000;

type Mode = 'point' | 'draw';
/** A pointer event before it is numbered at send time. */
type Unnumbered = Pointer extends infer P ? (P extends { seq: number } ? Omit<P, 'seq'> : never) : never;

export interface PointerPadOptions {
  /** The channel's API base, `/api/channels/<id>`. */
  api: string;
  key(): string;
  /** Previous or next slide, through the remote's own command path. */
  nav(type: 'prev' | 'next'): void;
  /** The server refused the key: the presenter revoked this phone. */
  unpaired(): void;
}

/**
 * Whether `next` makes a waiting `prev` pointless. A newer position replaces
 * a waiting one (the dot only needs to be where the finger is now), a lift
 * replaces a waiting dot position, and anything replaces a waiting lift (the
 * finger is down again). Ink is the exception: a stroke's last point is kept
 * when a lift or a new stroke follows it, or the stroke would end short.
 * A `clear` is an action, not a position: it is never replaced.
 */
function supersedes(prev: Unnumbered, next: Unnumbered): boolean {
  if (next.type === 'clear') return false;
  switch (prev.type) {
    case 'point':
    case 'lift':
      return true;
    case 'draw':
      return next.type === 'draw' && next.stroke === prev.stroke;
    case 'clear':
      return false;
  }
}

/**
 * Sends pointer events with at most one POST in flight. While one is, what
 * waits is coalesced (see `supersedes`), so in practice it is the newest
 * position alone; older ones are dropped, never sent late.
 */
class PointerSender {
  private readonly queue: Unnumbered[] = [];
  private inFlight = false;
  private frame = 0;
  private pauseTimer: ReturnType<typeof setTimeout> | undefined;
  private pausedUntil = 0;
  private lastSeq = 0;
  private resends = 0;

  constructor(
    private readonly url: string,
    private readonly opts: Pick<PointerPadOptions, 'key' | 'unpaired'>,
  ) {}

  push(p: Unnumbered): void {
    const last = this.queue[this.queue.length - 1];
    if (last && supersedes(last, p)) this.queue[this.queue.length - 1] = p;
    else this.queue.push(p);
    // Only alternating kinds can pile up (a stroke's end, a lift, a clear); keep it short anyway.
    const extra = this.queue.length - QUEUE_MAX;
    if (extra > 0) this.queue.splice(this.queue.findIndex((q) => q.type !== 'clear'), 1);
    this.resends = 0;
    this.schedule();
  }

  /**
   * Numbered at send time from the clock, so a reloaded phone (whose counter
   * would start again at 0) still numbers above what the slideshow last applied.
   */
  private nextSeq(): number {
    this.lastSeq = Math.max(this.lastSeq + 1, Date.now());
    return this.lastSeq;
  }

  private schedule(): void {
    if (this.frame || this.inFlight || this.pauseTimer !== undefined || !this.queue.length) return;
    const wait = this.pausedUntil - Date.now();
    if (wait > 0) {
      this.pauseTimer = setTimeout(() => {
        this.pauseTimer = undefined;
        this.schedule();
      }, wait);
      return;
    }
    // Paced by the display: at most one send per frame, and none while the tab is hidden.
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    const next = this.queue.shift();
    if (!next || this.inFlight) return;
    const body = { ...next, seq: this.nextSeq() } as Pointer;
    this.inFlight = true;
    try {
      await requestJson('POST', this.url, { body, key: this.opts.key(), timeoutMs: 3_000 });
    } catch (err) {
      if (err instanceof HttpStatusError && err.status === 401) {
        this.queue.length = 0;
        this.opts.unpaired();
        return;
      }
      // A 429 comes with Retry-After: 1 (a second's worth of tokens); anything else is a network blip.
      this.pausedUntil = Date.now() + (err instanceof HttpStatusError && err.status === 429 ? 1_000 : FAIL_PAUSE_MS);
      // A lost position is superseded by any newer one; with none waiting it
      // goes again (a lost lift would leave the dot up). A lost clear always does.
      if (this.resends++ < RESEND_MAX && (next.type === 'clear' || !this.queue.length)) this.queue.unshift(next);
    } finally {
      this.inFlight = false;
    }
    this.schedule();
  }
}

/** Builds an element with a class and optional attributes and children. */
function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

const button = (cls: string, text: string, attrs: Record<string, string> = {}) => el('button', cls, { type: 'button', ...attrs }, text);

export class PointerPad {
  private readonly sender: PointerSender;
  private readonly root: HTMLElement;
  private readonly stage: HTMLElement;
  private readonly pad: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly dot: HTMLElement;
  private readonly hint: HTMLElement;
  private readonly caption: HTMLElement;
  /** The slide's title above the pad, at the pad's width. */
  private readonly card: HTMLElement;
  private readonly tip: HTMLElement;
  private readonly modeButtons: Record<Mode, HTMLButtonElement>;
  private readonly prev: HTMLButtonElement;
  private readonly next: HTMLButtonElement;
  private mode: Mode = 'point';
  private aspect = DEFAULT_ASPECT;
  private slide = '';
  /** This phone's own ink, per slide, in [0,1] coordinates: drawn under the finger at once. */
  private readonly ink = new Map<string, number[][]>();
  private active: { id: number; x: number; y: number; line: number[] | null } | null = null;
  private stroke = Math.floor(Math.random() * (STROKE_IDS / 2));
  private holdTimer: ReturnType<typeof setInterval> | undefined;

  constructor(opts: PointerPadOptions) {
    this.sender = new PointerSender(`${opts.api}/pointer`, {
      key: opts.key,
      unpaired: () => {
        this.hide(false);
        opts.unpaired();
      },
    });
    const back = button('small pointer-back', '‹ Remote', { 'aria-label': 'Back to remote' });
    this.modeButtons = {
      point: button('', 'Point', { 'aria-pressed': 'true' }),
      draw: button('', 'Draw', { 'aria-pressed': 'false' }),
    };
    const modes = el('div', 'pointer-modes', { role: 'group', 'aria-label': 'Pointer mode' }, this.modeButtons.point, this.modeButtons.draw);
    const clear = button('small pointer-clear', 'Clear', { 'aria-label': 'Clear drawings on this slide' });
    this.caption = el('p', 'pointer-caption');
    this.canvas = el('canvas', 'pointer-ink', { 'aria-hidden': 'true' });
    this.dot = el('span', 'pointer-pad-dot', { 'aria-hidden': 'true' });
    this.hint = el('span', 'pointer-hint', { id: 'pointer-hint' });
    this.pad = el('div', 'pointer-pad', { role: 'application', 'aria-label': 'Pointer pad', 'aria-describedby': 'pointer-hint' }, this.canvas, this.dot, this.hint);
    this.card = el('div', 'pointer-card', {}, this.caption, this.pad);
    this.tip = el('p', 'pointer-tip', {}, 'Turn the phone sideways for a bigger pad.');
    this.stage = el('div', 'pointer-stage', {}, this.card, this.tip);
    const prev = (this.prev = button('nav-button prev', '‹', { 'aria-label': 'Previous slide' }));
    const next = (this.next = button('nav-button next', '›', { 'aria-label': 'Next slide' }));
    this.root = el(
      'section',
      'pointer',
      { id: 'pointer', 'aria-label': 'Pointer' },
      el('div', 'pointer-tools', {}, back, modes, clear),
      this.stage,
      el('div', 'pointer-nav', {}, prev, next),
    );
    this.root.hidden = true;
    document.getElementById('app')?.append(this.root);

    document.getElementById('pointer-open')?.addEventListener('click', () => this.open());
    back.addEventListener('click', () => this.close());
    this.modeButtons.point.addEventListener('click', () => this.setMode('point'));
    this.modeButtons.draw.addEventListener('click', () => this.setMode('draw'));
    clear.addEventListener('click', () => {
      this.ink.delete(this.slide);
      this.paintInk();
      this.sender.push({ type: 'clear' });
    });
    prev.addEventListener('click', () => opts.nav('prev'));
    next.addEventListener('click', () => opts.nav('next'));
    this.wirePad();
    this.setMode('point');

    // The phone's back gesture leaves the pad rather than the page.
    window.addEventListener('popstate', () => {
      if (!this.root.hidden && !this.inHistory()) this.hide(true);
    });
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && !this.root.hidden) this.close();
    });
    new ResizeObserver(() => this.layout()).observe(this.stage);
  }

  /** Follows the deck: the pad takes the slide's shape, and shows this phone's ink for the slide on screen. */
  update(s: PublicDeckState): void {
    const aspect = s.aspect ?? DEFAULT_ASPECT;
    const slide = `${s.indexh}/${s.indexv}`;
    this.caption.textContent = s.title || `Slide ${s.position}`;
    this.prev.disabled = !canStep(s, 'prev');
    this.next.disabled = !canStep(s, 'next');
    if (aspect !== this.aspect) {
      this.aspect = aspect;
      this.layout();
    }
    if (slide !== this.slide) {
      this.slide = slide;
      // A stroke under the finger continues on the new slide as a new line.
      if (this.active?.line) this.active.line = null;
      this.paintInk();
    }
  }

  open(): void {
    if (!this.inHistory()) history.pushState({ clickerPointer: true }, '');
    const remote = document.getElementById('remote');
    if (remote) remote.hidden = true;
    this.root.hidden = false;
    const app = document.getElementById('app');
    if (app) app.dataset.view = 'pointer';
    this.layout();
  }

  close(): void {
    // Leaving through history keeps the back gesture and the button in step.
    if (this.inHistory()) history.back();
    this.hide(true);
  }

  private inHistory(): boolean {
    const st: unknown = history.state;
    return typeof st === 'object' && st !== null && (st as { clickerPointer?: unknown }).clickerPointer === true;
  }

  /** Hides the pad; `toRemote` shows the remote again (not when a message replaces both). */
  private hide(toRemote: boolean): void {
    this.end();
    this.root.hidden = true;
    if (!toRemote) return;
    const remote = document.getElementById('remote');
    if (remote) remote.hidden = false;
    const app = document.getElementById('app');
    if (app) app.dataset.view = 'remote';
  }

  private setMode(mode: Mode): void {
    this.mode = mode;
    for (const [m, b] of Object.entries(this.modeButtons)) b.setAttribute('aria-pressed', String(m === mode));
    this.pad.dataset.mode = mode;
    this.hint.textContent = mode === 'point' ? 'Touch and move to point' : 'Touch and move to draw';
  }

  /** Fits the pad to the space it has, in the slide's shape, and sizes the ink canvas to it. */
  private layout(): void {
    if (this.root.hidden) return;
    const w = this.stage.clientWidth;
    // The title above the pad and the tip below it (portrait only) share the stage's height.
    const h = this.stage.clientHeight - this.caption.offsetHeight - this.tip.offsetHeight - 2 * STAGE_GAP;
    if (!w || !h) return;
    const width = Math.floor(Math.min(w, h * this.aspect));
    const height = Math.floor(width / this.aspect);
    this.pad.style.width = `${width}px`;
    this.card.style.width = `${width}px`;
    this.pad.style.height = `${height}px`;
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(width * dpr);
    this.canvas.height = Math.round(height * dpr);
    this.paintInk();
  }

  private wirePad(): void {
    const pad = this.pad;
    const at = (e: PointerEvent): [number, number] => {
      const r = pad.getBoundingClientRect();
      // Four decimals: finer than any screen's pixels, and short on the wire.
      const clamp = (v: number) => Math.round(Math.min(1, Math.max(0, v)) * 10_000) / 10_000;
      return [clamp((e.clientX - r.left) / r.width), clamp((e.clientY - r.top) / r.height)];
    };
    pad.addEventListener('pointerdown', (e) => {
      // One finger draws; a second one resting on the glass is ignored.
      if (this.active || (e.pointerType === 'mouse' && e.button !== 0)) return;
      e.preventDefault();
      // Moves outside the pad still belong to this finger (clamped to the edge).
      try {
        pad.setPointerCapture(e.pointerId);
      } catch {
        // A pointer the browser no longer knows (already lifted): its pointerup follows.
      }
      const [x, y] = at(e);
      let line: number[] | null = null;
      if (this.mode === 'draw') {
        this.stroke = (this.stroke + 1) % STROKE_IDS;
        line = this.newLine(x, y);
      }
      this.active = { id: e.pointerId, x, y, line };
      pad.classList.add('touching');
      this.moveTo(x, y);
      // Repeat the position while the finger rests (no pointermove fires then).
      this.holdTimer = setInterval(() => {
        if (this.active) this.send(this.active.x, this.active.y);
      }, HOLD_REPEAT_MS);
    });
    pad.addEventListener('pointermove', (e) => {
      if (!this.active || e.pointerId !== this.active.id) return;
      // Every sample the browser merged into this event inks the phone's own
      // canvas; only the newest goes over the network.
      const samples = typeof e.getCoalescedEvents === 'function' ? e.getCoalescedEvents() : [];
      for (const s of samples.length ? samples : [e]) {
        const [x, y] = at(s);
        this.active.x = x;
        this.active.y = y;
        if (this.mode === 'draw') this.inkTo(x, y);
      }
      this.moveTo(this.active.x, this.active.y);
    });
    const up = (e: PointerEvent) => {
      if (this.active && e.pointerId === this.active.id) this.end();
    };
    pad.addEventListener('pointerup', up);
    pad.addEventListener('pointercancel', up);
    pad.addEventListener('lostpointercapture', up);
    // A long press must not open a context menu over the pad.
    pad.addEventListener('contextmenu', (e) => e.preventDefault());
  }

  /** Shows the phone's own dot and queues the position for the slideshow. */
  private moveTo(x: number, y: number): void {
    this.dot.style.transform = `translate(${x * this.pad.clientWidth}px, ${y * this.pad.clientHeight}px)`;
    this.send(x, y);
  }

  private send(x: number, y: number): void {
    this.sender.push(this.mode === 'draw' ? { type: 'draw', x, y, stroke: this.stroke } : { type: 'point', x, y });
  }

  /** The finger lifted (or the pad closed under it): hide the dot on the slideshow. */
  private end(): void {
    clearInterval(this.holdTimer);
    if (!this.active) return;
    this.active = null;
    this.pad.classList.remove('touching');
    this.sender.push({ type: 'lift' });
  }

  private newLine(x: number, y: number): number[] {
    const line = [x, y];
    const lines = this.ink.get(this.slide) ?? [];
    lines.push(line);
    this.ink.set(this.slide, lines);
    this.paintInk();
    return line;
  }

  /** Extends the stroke under the finger on the phone's canvas, one segment at a time. */
  private inkTo(x: number, y: number): void {
    const a = this.active;
    if (!a) return;
    if (!a.line) {
      a.line = this.newLine(x, y);
      return;
    }
    const n = a.line.length;
    const px = a.line[n - 2] ?? x;
    const py = a.line[n - 1] ?? y;
    a.line.push(x, y);
    const ctx = this.ctx();
    if (!ctx) return;
    ctx.beginPath();
    ctx.moveTo(px * this.canvas.width, py * this.canvas.height);
    ctx.lineTo(x * this.canvas.width, y * this.canvas.height);
    ctx.stroke();
  }

  private ctx(): CanvasRenderingContext2D | null {
    const ctx = this.canvas.getContext('2d');
    if (!ctx) return null;
    // The slideshow's pen is 5 units of a 960-wide slide: the same share of the pad here.
    ctx.lineWidth = Math.max(2, (this.canvas.width * 5) / 960);
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.strokeStyle = '#ff3b30';
    return ctx;
  }

  /** Repaints this phone's ink for the slide on screen. */
  private paintInk(): void {
    const ctx = this.ctx();
    if (!ctx) return;
    const { width, height } = this.canvas;
    ctx.clearRect(0, 0, width, height);
    for (const line of this.ink.get(this.slide) ?? []) {
      ctx.beginPath();
      ctx.moveTo((line[0] ?? 0) * width, (line[1] ?? 0) * height);
      // A single tap is a dot: a zero-length segment with round caps.
      if (line.length === 2) ctx.lineTo((line[0] ?? 0) * width, (line[1] ?? 0) * height);
      for (let i = 2; i + 1 < line.length; i += 2) ctx.lineTo(line[i]! * width, line[i + 1]! * height);
      ctx.stroke();
    }
  }
}
