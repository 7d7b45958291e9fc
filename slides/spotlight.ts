// What the audience adds to the slideshow, for the presenter's screen and for
// every follower alike: the question the presenter chose to show, as a
// lower-third card, and reactions, as a short burst of glyphs.
//
// Both come from the public stream, so everything here is treated as
// untrusted: the question is set with textContent only (never markup), and a
// reaction is looked up in a fixed table, so an unknown kind draws nothing.
import { EVENT, REACTIONS, type ReactionKind, type Snapshot, type Spotlight } from '../protocol/messages';

/** Characters past which a question is set smaller on the card, so that the longest allowed (280) fits whole in its lower third. */
const LONG_QUESTION = 120;
import './spotlight.css';

/** What a glyph can show: a reaction, or the follow page's "Ask" icon. */
export type GlyphKind = ReactionKind | 'ask';

/**
 * A glyph: an empty element that spotlight.css draws as the kind's bundled
 * image (Twemoji). It is never a system emoji: a laptop without an emoji
 * font, common on Linux, drew those as empty boxes on the projector. The
 * follow page's buttons use it too. The kind comes from a fixed list, so the
 * stylesheet has a picture for every one.
 */
export function glyph(kind: GlyphKind, className = 'clicker-glyph'): HTMLSpanElement {
  const el = document.createElement('span');
  el.className = className;
  el.dataset.kind = kind;
  return el;
}

/** Events this overlay wants from the stream, besides the snapshot. */
export const OVERLAY_EVENTS = [EVENT.spotlight, EVENT.reaction] as const;

/**
 * Glyphs on screen at most. A packed room can send hundreds of reactions a
 * second; past this, new ones are dropped rather than queued, so a flood costs
 * a few dozen animated nodes and never a growing backlog.
 */
const MAX_ON_SCREEN = 36;
/** One reaction draws this many glyphs: one large, the rest small, a little apart in time. */
const PER_BURST = 3;
/** Longest a burst lives; removal does not rely on animationend, which a hidden tab may never fire. */
const BURST_MS = 2_600;

const isKind = (k: unknown): k is ReactionKind => (REACTIONS as readonly unknown[]).includes(k);

function questionOf(data: unknown): Spotlight['question'] {
  if (typeof data !== 'object' || data === null) return null;
  const q = (data as { question?: unknown }).question ?? null;
  if (typeof q !== 'object' || q === null) return null;
  const { id, text } = q as { id?: unknown; text?: unknown };
  return typeof id === 'string' && typeof text === 'string' ? { id, text } : null;
}

export class AudienceOverlay {
  private readonly card: HTMLElement;
  private readonly text: HTMLElement;
  private readonly burst: HTMLElement;
  private onScreen = 0;
  private hideTimer: ReturnType<typeof setTimeout> | undefined;

  constructor() {
    this.card = document.createElement('aside');
    this.card.className = 'clicker-spotlight';
    this.card.setAttribute('data-clicker-spotlight', '');
    // Announced when it appears, like a caption; it never takes focus from the deck.
    this.card.setAttribute('role', 'status');
    this.card.setAttribute('aria-live', 'polite');
    this.card.hidden = true;
    const label = document.createElement('p');
    label.className = 'clicker-spotlight-label';
    label.textContent = 'Question from the audience';
    this.text = document.createElement('p');
    this.text.className = 'clicker-spotlight-text';
    this.card.append(label, this.text);

    this.burst = document.createElement('div');
    this.burst.className = 'clicker-reactions';
    this.burst.setAttribute('aria-hidden', 'true');
    document.body.append(this.card, this.burst);
  }

  /** Takes any stream event; ignores the ones that are not the overlay's. */
  onEvent(name: string, data: unknown): void {
    if (name === EVENT.snapshot) this.show((data as Partial<Snapshot>).spotlight ?? null);
    else if (name === EVENT.spotlight) this.show(questionOf(data));
    else if (name === EVENT.reaction) {
      const kind = (data as { kind?: unknown } | null)?.kind;
      if (isKind(kind)) this.react(kind);
    }
  }

  /** Shows a question on the slide, or takes the card away (null). */
  show(q: Spotlight['question']): void {
    clearTimeout(this.hideTimer);
    if (!q || typeof q.text !== 'string') {
      if (this.card.hidden) return;
      // Slide out first, then leave the layout.
      this.card.classList.remove('visible');
      delete this.card.dataset.questionId;
      this.hideTimer = setTimeout(() => (this.card.hidden = true), 300);
      return;
    }
    this.card.dataset.questionId = q.id;
    this.text.textContent = q.text;
    // A long question is set smaller rather than cut: the room must read all of what was asked.
    this.card.dataset.long = String(q.text.length > LONG_QUESTION);
    this.card.hidden = false;
    // A frame in between so the transition runs from the hidden position.
    requestAnimationFrame(() => this.card.classList.add('visible'));
  }

  /** One reaction: a few glyphs float up and fade. Cheap under a flood (see MAX_ON_SCREEN). */
  react(kind: ReactionKind): void {
    for (let i = 0; i < PER_BURST && this.onScreen < MAX_ON_SCREEN; i++) {
      const el = glyph(kind, i === 0 ? 'clicker-glyph clicker-burst' : 'clicker-glyph clicker-burst small');
      // Random spread, so a room's reactions read as a crowd and not a column;
      // the stylesheet keeps the spread and the drift inside the strip.
      el.style.setProperty('--f', Math.random().toFixed(3));
      el.style.setProperty('--dx', `${Math.round((Math.random() - 0.5) * 60)}px`);
      el.style.animationDelay = `${i * 120}ms`;
      this.onScreen++;
      let gone = false;
      const remove = () => {
        if (gone) return;
        gone = true;
        el.remove();
        this.onScreen--;
      };
      el.addEventListener('animationend', remove, { once: true });
      setTimeout(remove, BURST_MS + i * 120);
      this.burst.append(el);
    }
  }
}
