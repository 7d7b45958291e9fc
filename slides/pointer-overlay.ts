// The laser pointer and pen on the slideshow (presenter and follower pages).
//
// One SVG sits above the slides, fitted over the .slides element's bounding
// box: reveal.js lays the deck out at its configured size (960x700 by
// default) and scales that box to the window, so a position in [0,1] maps
// onto the box, and the SVG's viewBox is the deck's own size, so the dot and
// the strokes scale with the slides. Strokes are kept per slide (h/v) and
// come back when the deck returns to that slide; nothing is kept across a
// reload, and a follower who joins late does not see earlier strokes (pointer
// events are never replayed).
import type { RevealApi } from 'reveal.js';
import { Pointer } from '../protocol/messages';
import './pointer-overlay.css';

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * How far below the newest applied `seq` an event counts as a late packet
 * (dropped, so the dot never jumps back). Phones number their events from
 * their clock in ms, so anything further below comes from a phone whose count
 * is simply lower (another phone, a skewed clock) and is applied.
 */
const LATE_WINDOW = 60_000;

/**
 * The dot hides by itself when the phone goes quiet this long without a
 * `lift` (its connection dropped mid-touch). A resting finger repeats its
 * position every second, so this never hides a dot that is still held.
 */
const DOT_IDLE_MS = 3_500;

/** Dot radius, pen dot radius and stroke width, in deck units (a 960-wide deck). */
const DOT_R = 10;
const PEN_R = 6;
const STROKE_W = 5;

interface Stroke {
  id: number;
  /** Path data in deck units, grown point by point. */
  d: string;
}

export class PointerOverlay {
  private readonly svg: SVGSVGElement;
  private readonly strokesLayer: SVGGElement;
  private readonly dot: SVGCircleElement;
  /** Strokes per slide, keyed "h/v". */
  private readonly strokes = new Map<string, Stroke[]>();
  /** The path of the stroke being drawn, when it is on the slide shown. */
  private live: { stroke: Stroke; path: SVGPathElement } | null = null;
  private lastSeq = -1;
  private idleTimer: ReturnType<typeof setTimeout> | undefined;
  private size = { width: 960, height: 700 };

  constructor(private readonly deck: RevealApi) {
    this.svg = document.createElementNS(SVG_NS, 'svg');
    this.svg.classList.add('clicker-pointer');
    // Decoration of what the presenter says; screen readers have the slide itself.
    this.svg.setAttribute('aria-hidden', 'true');
    this.svg.setAttribute('preserveAspectRatio', 'none');
    this.strokesLayer = document.createElementNS(SVG_NS, 'g');
    this.strokesLayer.classList.add('clicker-pointer-strokes');
    this.dot = document.createElementNS(SVG_NS, 'circle');
    this.dot.classList.add('clicker-pointer-dot');
    this.dot.setAttribute('r', String(DOT_R));
    this.svg.append(this.strokesLayer, this.dot);
    this.hideDot();
    document.body.append(this.svg);

    this.fit();
    // The box moves with the window and with reveal.js's own layout passes.
    window.addEventListener('resize', () => this.fit());
    deck.on('resize', () => this.fit());
    deck.on('slidechanged', () => this.showSlide());
  }

  /** Applies one `pointer` event from the stream; anything malformed or late is ignored. */
  apply(data: unknown): void {
    const parsed = Pointer.safeParse(data);
    if (!parsed.success) return;
    const p = parsed.data;
    if (p.seq <= this.lastSeq && this.lastSeq - p.seq < LATE_WINDOW) return;
    this.lastSeq = p.seq;
    // Measured on every event: cheap, and always right after a layout change
    // that fired no event (a scrollbar, an entered full screen).
    this.fit();
    switch (p.type) {
      case 'point':
        this.moveDot(p.x, p.y, DOT_R);
        break;
      case 'draw':
        this.moveDot(p.x, p.y, PEN_R);
        this.extend(p.stroke, p.x, p.y);
        break;
      case 'lift':
        this.hideDot();
        this.live = null;
        break;
      case 'clear':
        this.strokes.delete(this.slideKey());
        this.live = null;
        this.strokesLayer.replaceChildren();
        break;
    }
  }

  private slideKey(): string {
    const { h, v } = this.deck.getIndices();
    return `${h}/${v ?? 0}`;
  }

  /** Fits the SVG over the scaled slide area, and its viewBox to the deck's unscaled size. */
  private fit(): void {
    const slides = this.deck.getSlidesElement();
    if (!slides) return;
    const box = slides.getBoundingClientRect();
    // offsetWidth/Height ignore the scale transform: the deck's configured size.
    const width = slides.offsetWidth || 960;
    const height = slides.offsetHeight || 700;
    if (width !== this.size.width || height !== this.size.height) {
      this.size = { width, height };
      this.showSlide();
    }
    this.svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    const s = this.svg.style;
    s.left = `${box.left}px`;
    s.top = `${box.top}px`;
    s.width = `${box.width}px`;
    s.height = `${box.height}px`;
  }

  private moveDot(x: number, y: number, r: number): void {
    this.dot.setAttribute('cx', (x * this.size.width).toFixed(1));
    this.dot.setAttribute('cy', (y * this.size.height).toFixed(1));
    this.dot.setAttribute('r', String(r));
    this.dot.style.visibility = 'visible';
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.hideDot(), DOT_IDLE_MS);
  }

  private hideDot(): void {
    clearTimeout(this.idleTimer);
    this.dot.style.visibility = 'hidden';
  }

  /** Adds a point to stroke `id` on the current slide, starting the stroke if it is new. */
  private extend(id: number, x: number, y: number): void {
    const px = (x * this.size.width).toFixed(1);
    const py = (y * this.size.height).toFixed(1);
    if (this.live && this.live.stroke.id === id) {
      this.live.stroke.d += ` L${px} ${py}`;
      this.live.path.setAttribute('d', this.live.stroke.d);
      return;
    }
    const key = this.slideKey();
    const list = this.strokes.get(key) ?? [];
    this.strokes.set(key, list);
    // A zero-length segment, so a single tap still leaves a round mark.
    const stroke: Stroke = { id, d: `M${px} ${py} L${px} ${py}` };
    list.push(stroke);
    this.live = { stroke, path: this.addPath(stroke) };
  }

  private addPath(stroke: Stroke): SVGPathElement {
    const path = document.createElementNS(SVG_NS, 'path');
    path.setAttribute('d', stroke.d);
    path.setAttribute('stroke-width', String(STROKE_W));
    this.strokesLayer.append(path);
    return path;
  }

  /** Shows the strokes of the slide now on screen. */
  private showSlide(): void {
    this.live = null;
    this.strokesLayer.replaceChildren();
    for (const stroke of this.strokes.get(this.slideKey()) ?? []) this.addPath(stroke);
  }
}

/**
 * Width over height of the deck's slide area, for the phone's pointer pad.
 * Read from the configured size when it is in pixels: reading offsetWidth
 * would force a layout on every state report, on the tap's path.
 * offsetWidth/Height (the size before reveal.js scales it) cover the rest.
 */
export function deckAspect(deck: RevealApi): number | undefined {
  const { width, height } = deck.getConfig();
  let aspect: number | undefined;
  if (typeof width === 'number' && typeof height === 'number' && height > 0) aspect = width / height;
  else {
    const slides = deck.getSlidesElement();
    if (!slides || !slides.offsetWidth || !slides.offsetHeight) return undefined;
    aspect = slides.offsetWidth / slides.offsetHeight;
  }
  aspect = Math.round(aspect * 10_000) / 10_000;
  return aspect >= 0.2 && aspect <= 5 ? aspect : undefined;
}
