// The slideshow side of Clicker, as a reveal.js plugin.
//
// Presenter mode: opens (or, after a reload or a server restart, re-registers)
// a channel, shows the pairing QR on the title slide, applies commands from the
// phone through a fixed switch over reveal.js's API, and reports its state after
// every change. The deck is the source of truth: it never applies a `state`
// event, which is only its own report coming back.
//
// Follow mode: read-only; applies the presenter's state and never sends a
// command. Its only writes are a follower's own questions and reactions, on
// a tap (audience.ts).
import QRCode from 'qrcode';
import type { RevealApi, RevealPlugin } from 'reveal.js';
import { z } from 'zod';
import {
  Command,
  EVENT,
  KeyHash,
  MAX_REGISTERED_EVENT_ID,
  PairCode,
  type ChannelInfo,
  type DeckState,
  type Presence,
  type PublicDeckState,
  type SlideRef,
  type SlideshowLink,
  type Snapshot,
  type StateEvent,
  type StateReport,
} from '../protocol/messages';
import { HttpStatusError, LiveStream, requestJson, type LinkState } from '../protocol/live';
import { fitOutline, ID_RE, MAX_CONTROLLERS } from '../protocol/wire';
import { NEW_CODE_KEY, PresenterStatus } from './status';
import { KnockCard } from './knock-card';
import { deckAspect, PointerOverlay } from './pointer-overlay';
import { AudienceOverlay, OVERLAY_EVENTS } from './spotlight';
import { AUDIENCE_EVENTS, AudienceBar } from './audience';

const STORE_KEY = 'clicker.deck.v1';
/** Wait before re-sending a state report that failed. */
const REPORT_RETRY_MS = 1_000;
/** Command ids already applied, so a replay after reconnect never moves the deck twice. */
const APPLIED_WINDOW = 2048;

/** How to know a slide again after the deck file was edited around it. */
const SlideMark = z.object({
  title: z.string(),
  body: z.string(),
  /** The keys of the slides before and after it. */
  prev: z.string(),
  next: z.string(),
  /** Its place among all the slides, vertical ones counted. */
  flat: z.number().int().min(0),
});
type SlideMark = z.infer<typeof SlideMark>;

const Index = z.number().int().min(-1);

/**
 * What the slideshow keeps in localStorage. Read through this schema: the
 * store outlives every version of this code, and anything may have been
 * written there (an older format, a hand edit, another page of this
 * origin). A part that does not parse is dropped, never trusted: a bad
 * position is no reason to lose the channel, and a bad channel means a new
 * one. Each part is held to what the server takes back (Register, the
 * bearer key): one it would refuse would leave the slideshow without a
 * channel at every try.
 */
const Saved = z.object({
  id: z.string().regex(ID_RE),
  deckKey: z.string().regex(/^[A-Za-z0-9_-]{16,128}$/),
  // One bad hash costs that phone its pairing, not every phone theirs.
  controllers: z
    .array(z.unknown())
    .transform((xs) => xs.filter((h): h is string => KeyHash.safeParse(h).success))
    .catch([]),
  lastEventId: z.string().regex(/^\d{0,15}$/).catch(''),
  /**
   * The highest event id this slideshow has seen anywhere: its stream's, and
   * its own state reports' (the stream does not carry those). After a
   * restart that lost the channel, it is registered again from here, so no
   * id a phone may already hold is handed out twice.
   */
  seenUpTo: z.number().int().min(0).max(MAX_REGISTERED_EVENT_ID).optional().catch(undefined),
  /** The pairing code on show, brought to the re-registration so a reload keeps it (and the phones waiting with it). */
  pairCode: PairCode.nullable().optional().catch(undefined),
  /** Where the deck was, and how to know the slide there again after an edit moved it. */
  reveal: z
    // reveal.js's getState() leaves indexf out on a slide with no fragments.
    .object({ indexh: Index, indexv: Index, indexf: Index.optional(), paused: z.boolean().optional(), mark: SlideMark.optional().catch(undefined) })
    .optional()
    .catch(undefined),
  /** The deck the position belongs to (the page's clicker-deck meta), and when the page last held it (ms). */
  deck: z.string().optional().catch(undefined),
  at: z.number().optional().catch(undefined),
});
type Saved = z.infer<typeof Saved>;

/**
 * A saved position is resumed only this soon after the page last held it:
 * a reload, a browser restarted mid-talk or a server restart are quick, and
 * tomorrow's talk (or the real one after a rehearsal) starts on its title
 * slide, where the QR code is, instead of wherever the rehearsal stopped.
 */
const RESUME_WITHIN_MS = 30 * 60_000;
/** The longest a reload keeps the deck hidden while it goes back to its slide. */
const RESTORE_HIDE_MAX_MS = 3_000;

/** This page's deck, from the meta tag the server writes (server/deck.ts). */
const deckOfPage = (): string => document.querySelector<HTMLMetaElement>('meta[name="clicker-deck"]')?.content ?? '';

export type ClickerMode = { mode: 'present' } | { mode: 'follow'; channelId: string };

const api = (path = '') => `/api/channels${path}`;

function loadSaved(): Saved | null {
  try {
    const raw = localStorage.getItem(STORE_KEY);
    const parsed = raw ? Saved.safeParse(JSON.parse(raw)) : null;
    return parsed?.success ? parsed.data : null;
  } catch {
    // Not JSON, or storage switched off: the slideshow opens a new channel.
    return null;
  }
}

/** Elements that start and end a line of their own in plain text. */
const BLOCKS = new Set(['P', 'DIV', 'LI', 'UL', 'OL', 'H1', 'H2', 'H3', 'H4', 'H5', 'H6', 'PRE', 'BLOCKQUOTE', 'TABLE', 'TR', 'DL', 'DT', 'DD', 'SECTION', 'FIGURE']);
/** Containers whose white-space-only text is markup layout, not words. */
const LAYOUT = new Set(['UL', 'OL', 'TABLE', 'THEAD', 'TBODY', 'TR', 'DL']);

/**
 * Rendered markup as plain text that keeps what textContent loses: a <br>
 * or a paragraph is a line break ("Scaling Postgres<br>to a billion" read
 * "Postgresto"), and a list item keeps its bullet or its number, so the
 * steps in the speaker notes still read as steps on the phone.
 */
function plainText(root: Node): string {
  let out = '';
  const breakLine = () => {
    if (out !== '' && !out.endsWith('\n')) out += '\n';
  };
  const walk = (node: Node): void => {
    if (node.nodeType === Node.TEXT_NODE) {
      const text = node.nodeValue ?? '';
      if (!(node.parentElement && LAYOUT.has(node.parentElement.tagName) && text.trim() === '')) out += text;
      return;
    }
    if (!(node instanceof Element)) return;
    if (node.tagName === 'BR') {
      out += '\n';
      return;
    }
    const block = BLOCKS.has(node.tagName);
    if (block) breakLine();
    if (node.tagName === 'LI') {
      const list = node.parentElement;
      if (list?.tagName === 'OL') {
        let n = Number(list.getAttribute('start') ?? 1) || 1;
        for (let s = node.previousElementSibling; s; s = s.previousElementSibling) if (s.tagName === 'LI') n++;
        out += `${n}. `;
      } else {
        out += '• ';
      }
    }
    for (const child of node.childNodes) walk(child);
    if (block) breakLine();
  };
  walk(root);
  return out;
}

/** Without control characters: the state schema refuses a slide's name holding one (and with it every report of the deck). */
const withoutControls = (text: string): string => text.replace(/[\u0000-\u001F\u007F]/g, '');
/** Text as one line of a slide's name: white space (a <br> included) folds to spaces, and any other control character goes. */
const oneLine = (text: string): string => withoutControls(text.replace(/\s+/g, ' ')).trim();

/** Plain text of a slide's title: its data-title, else its first heading. */
function titleOf(slide: Element | undefined, fallback: string): string {
  if (!slide) return '';
  const explicit = slide.getAttribute('data-title');
  const heading = slide.querySelector('h1, h2, h3, h4, h5, h6');
  const text = oneLine(explicit ?? (heading ? plainText(heading) : ''));
  return (text || fallback).slice(0, 200);
}

/** How much of a title-less slide's words name it on the phone. */
const LABEL_WORDS = 60;

/** A file's name from a URL or path, without its query: `img/kite.png?v=2` is `kite.png`. */
function fileName(url: string): string {
  const path = url.split(/[?#]/)[0] ?? '';
  const name = path.slice(path.lastIndexOf('/') + 1);
  try {
    return decodeURIComponent(name);
  } catch {
    return name;
  }
}

/**
 * An embedded page by where it is: its host and path ("localhost:5173/demo"),
 * which is what tells one live demo from another.
 */
function pageName(src: string): string {
  try {
    const url = new URL(src, location.href);
    return `${url.host}${url.pathname === '/' ? '' : url.pathname}`;
  } catch {
    return src;
  }
}

/**
 * A slide with neither title nor words, by its picture, its video or the
 * page it embeds: the alt text, else the file's name ("Picture: kite.png"),
 * or the page's address ("Page: localhost:5173/demo"); '' for none.
 */
function mediaOf(slide: Element): string {
  const img = slide.querySelector<HTMLImageElement>('img');
  const video = slide.querySelector('video');
  const iframe = slide.querySelector('iframe');
  const attr = (name: string) => slide.getAttribute(name) || undefined;
  let name = '';
  let kind = '';
  if (img || attr('data-background-image')) {
    kind = 'Picture';
    const file = img?.getAttribute('src') ?? attr('data-background-image');
    name = oneLine(img?.getAttribute('alt') ?? '') || (file ? fileName(file) : '');
  } else if (video || attr('data-background-video')) {
    kind = 'Video';
    const file = video?.getAttribute('src') ?? video?.querySelector('source')?.getAttribute('src') ?? attr('data-background-video');
    name = file ? fileName(file) : '';
  } else if (iframe || attr('data-background-iframe')) {
    kind = 'Page';
    // reveal.js may hold an iframe's address in data-src until the slide is near.
    const src = iframe?.getAttribute('src') || iframe?.getAttribute('data-src') || attr('data-background-iframe');
    name = oneLine(iframe?.getAttribute('title') ?? '') || (src ? pageName(src) : '');
  }
  name = withoutControls(name);
  return name ? `${kind}: ${name}`.slice(0, 200) : '';
}

/** What stands for a slide's content when it is found again after a save: its words, else its picture, video or page. */
const contentOf = (slide: Element | undefined): string => (slide ? bodyOf(slide) || mediaOf(slide) : '');

/**
 * What the phone calls a slide: its title; else, for a slide of words alone
 * (a quote, "Questions?"), its first words; else its picture, its video or
 * the page it embeds. Only a slide with none of those is "Slide 7": a presenter looking for the
 * kite photo in the jump list must not have to remember its number.
 */
function labelOf(slide: Element | undefined, fallback: string): string {
  if (!slide) return '';
  const title = titleOf(slide, '');
  if (title) return title;
  const words = bodyOf(slide);
  if (!words) return mediaOf(slide) || fallback;
  if (words.length <= LABEL_WORDS) return words;
  const cut = words.slice(0, LABEL_WORDS);
  const space = cut.lastIndexOf(' ');
  return `${(space > LABEL_WORDS / 2 ? cut.slice(0, space) : cut).replace(/[\s,;:.\u2013\u2014-]+$/, '')}…`;
}

/** Speaker notes as plain text; the phone shows them as text, never as markup. */
function notesOf(slide: Element): string {
  const attr = slide.getAttribute('data-notes');
  const aside = slide.querySelector(':scope > aside.notes');
  const text = attr ?? (aside ? plainText(aside) : '');
  // Keep line breaks, drop other control characters the schema would refuse.
  return text
    .replace(/\r\n?/g, '\n')
    .replace(/[\u0000-\u0008\u000B-\u001F\u007F]/g, '')
    .replace(/[ \t]+/g, ' ')
    .replace(/\n\s*\n\s*\n+/g, '\n\n')
    .trim()
    .slice(0, 8_000);
}

/** Where the deck is: what every report carries. */
function describeState(deck: RevealApi): DeckState {
  const slides = deck.getSlides();
  const current = deck.getCurrentSlide();
  const idx = deck.getIndices();
  const pos = slides.indexOf(current);
  const fragments = new Set(
    [...current.querySelectorAll('.fragment')].map((f, i) => f.getAttribute('data-fragment-index') ?? `x${i}`),
  ).size;
  const avail = deck.availableFragments();
  const past = deck.getSlidePastCount();
  return {
    indexh: idx.h,
    indexv: idx.v ?? 0,
    indexf: typeof idx.f === 'number' ? idx.f : -1,
    fragments,
    paused: deck.isPaused(),
    position: past + 1,
    total: Math.max(1, deck.getTotalSlides()),
    isFirst: deck.isFirstSlide() && !avail.prev,
    isLast: deck.isLastSlide() && !avail.next,
    title: labelOf(current, `Slide ${past + 1}`),
    notes: notesOf(current),
    nextTitle: labelOf(slides[pos + 1], `Slide ${pos + 2}`),
    aspect: deckAspect(deck),
  };
}

/**
 * The deck's outline, for the phone's jump list: sent once per connection,
 * not with every move, and cut to fit a state report (fitOutline).
 */
function outlineOf(deck: RevealApi): SlideRef[] {
  const full = deck
    .getSlides()
    .slice(0, 1_000)
    .map((s, i) => {
      const { h, v } = deck.getIndices(s);
      return { h, v: v ?? 0, title: labelOf(s, `Slide ${i + 1}`) };
    });
  return fitOutline(full);
}

/**
 * Applies one command through a fixed allow-list of reveal.js calls.
 *
 * Next or Previous during a blackout brings the same slide back and moves
 * nothing, as the B key works in PowerPoint and Keynote: a presenter who
 * taps on while the room sees black wants the room back, and a move behind
 * the black would skip a slide nobody saw. A jump (goto, first, last) is
 * explicit, so it moves and the screen stays black: the next slide can be
 * readied unseen.
 */
export function applyCommand(deck: RevealApi, cmd: Command): void {
  switch (cmd.type) {
    case 'next':
      if (deck.isPaused()) deck.togglePause(false);
      else deck.next();
      break;
    case 'prev':
      if (deck.isPaused()) deck.togglePause(false);
      else deck.prev();
      break;
    case 'first':
      deck.slide(0, 0, -1);
      break;
    case 'last': {
      const slides = deck.getSlides();
      const last = slides[slides.length - 1];
      if (last) {
        const { h, v } = deck.getIndices(last);
        deck.slide(h, v ?? 0, Number.MAX_SAFE_INTEGER);
      }
      break;
    }
    case 'goto':
      deck.slide(cmd.h, cmd.v, cmd.f ?? -1);
      break;
    case 'pause':
      deck.togglePause(cmd.on);
      break;
  }
}

/** Whether the deck shows its title slide, where the pairing QR lives. */
function onTitleSlide(deck: RevealApi): boolean {
  const { h, v } = deck.getIndices();
  return h === 0 && (v ?? 0) === 0;
}

/**
 * A user's deck has no QR placeholder on its title slide, so the QR floats in
 * a corner of the first slide instead, and steps aside on every other slide.
 */
function floatingQr(deck: RevealApi): HTMLElement {
  const box = document.createElement('div');
  box.className = 'clicker-qr clicker-qr-floating';
  box.setAttribute('data-clicker-qr', '');
  const code = document.createElement('div');
  code.className = 'clicker-qr-code';
  code.setAttribute('data-clicker-qr-code', '');
  code.setAttribute('role', 'img');
  code.setAttribute('aria-label', 'QR code');
  const caption = document.createElement('p');
  caption.className = 'clicker-qr-caption';
  caption.setAttribute('data-clicker-qr-caption', '');
  box.append(code, caption);
  deck.getRevealElement()?.append(box);
  const place = () => {
    box.hidden = !onTitleSlide(deck);
    if (!box.hidden) placeFloatingQr(box, deck.getCurrentSlide());
  };
  deck.on('slidechanged', place);
  // slidechanged fires as the slide starts to move in, while its words are
  // still sliding across: the boxes read then are not where they come to rest.
  // Placed again once reveal.js says the transition is over.
  deck.on('slidetransitionend', place);
  deck.on('resize', place);
  // The QR image and the caption change the box's size once they arrive
  // (load does not bubble, so it is caught on the way down).
  box.addEventListener('load', place, true);
  new MutationObserver(place).observe(caption, { childList: true, characterData: true, subtree: true });
  place();
  return box;
}

/** The pairing QR as an image, drawn the same way wherever it shows. */
const qrImage = (url: string) => QRCode.toDataURL(url, { margin: 1, width: 480, errorCorrectionLevel: 'M', color: { dark: '#000000', light: '#ffffff' } });

/**
 * A fresh pairing code asked for away from the title slide (the phone died
 * mid-talk) shows over the current slide, in a corner: the deck stays where
 * the presenter and the room are. It goes when a phone has paired with it,
 * when the presenter asks again (Q hides it), or on the title slide, whose
 * own QR shows the same code.
 */
class PairingPanel {
  private readonly box = document.createElement('div');
  private readonly img = document.createElement('img');
  private url = '';

  constructor() {
    this.box.className = 'clicker-pair-panel';
    this.box.setAttribute('data-clicker-pair-panel', '');
    this.box.setAttribute('role', 'dialog');
    this.box.setAttribute('aria-label', 'Pair a phone');
    this.box.hidden = true;
    const code = document.createElement('div');
    code.className = 'clicker-qr-code';
    this.img.alt = 'QR code to pair your phone as the remote';
    code.append(this.img);
    const caption = document.createElement('p');
    caption.textContent = 'Scan with your phone to use it as the remote';
    const hint = document.createElement('p');
    hint.className = 'clicker-pair-panel-hint';
    hint.textContent = `${NEW_CODE_KEY.key} hides this`;
    this.box.append(code, caption, hint);
    document.body.append(this.box);
  }

  get shown(): boolean {
    return !this.box.hidden;
  }

  async show(url: string): Promise<void> {
    if (url !== this.url) {
      this.url = url;
      this.img.src = await qrImage(url);
    }
    this.box.hidden = false;
  }

  hide(): void {
    this.box.hidden = true;
  }
}

/** Where the floating QR may go, most preferred first, and how big. */
const CORNERS = ['tr', 'tl', 'br', 'bl'] as const;
const SIZES = ['normal', 'small'] as const;

/** The boxes of what the slide shows: each line of its text, and each image, video, canvas or SVG. */
function contentRects(slide: Element): DOMRect[] {
  const rects: DOMRect[] = [];
  const range = document.createRange();
  const walker = document.createTreeWalker(slide, NodeFilter.SHOW_TEXT | NodeFilter.SHOW_ELEMENT, {
    // Speaker notes are never drawn.
    acceptNode: (n) => (n instanceof Element && n.matches('aside.notes') ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
  });
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n instanceof Element) {
      if (n.matches('img, video, canvas, svg, iframe, pre, table')) rects.push(n.getBoundingClientRect());
    } else if (n.nodeValue?.trim()) {
      range.selectNodeContents(n);
      rects.push(...range.getClientRects());
    }
  }
  return rects.filter((r) => r.width > 0 && r.height > 0);
}

/** Area of the part of `a` that `b` covers. */
function overlap(a: DOMRect, b: DOMRect): number {
  const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
  const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
  return w > 0 && h > 0 ? w * h : 0;
}

/**
 * Puts the floating QR where it covers none of the title slide's content: a
 * corner at full size if one is free, else a corner at the small size, else
 * wherever it covers least. Tried in place (8 layouts at most, on the title
 * slide only), since only the browser knows where the slide's words landed.
 */
function placeFloatingQr(box: HTMLElement, slide: Element | undefined): void {
  const content = slide ? contentRects(slide) : [];
  let best: { corner: string; size: string; covered: number } | null = null;
  for (const size of SIZES) {
    for (const corner of CORNERS) {
      box.dataset.corner = corner;
      box.dataset.size = size;
      const at = box.getBoundingClientRect();
      const covered = content.reduce((sum, r) => sum + overlap(at, r), 0);
      if (covered === 0) return;
      if (!best || covered < best.covered) best = { corner, size, covered };
    }
  }
  if (best) {
    box.dataset.corner = best.corner;
    box.dataset.size = best.size;
  }
}

/**
 * Runs `fn` in a task of its own, after the current one. A MessageChannel is
 * used rather than setTimeout, which browsers clamp and throttle.
 */
const taskChannel = new MessageChannel();
const tasks: (() => void)[] = [];
taskChannel.port1.onmessage = () => tasks.shift()?.();
function nextTask(fn: () => void): void {
  tasks.push(fn);
  taskChannel.port2.postMessage(null);
}

/** The deck file changed on the laptop: reload in place (the channel and the slide are kept). */
function reloadSoon(): void {
  setTimeout(() => location.reload(), 50);
}

export function clickerPlugin(mode: ClickerMode): RevealPlugin {
  return {
    id: 'clicker',
    init(deck: RevealApi) {
      if (mode.mode === 'follow') void startFollower(deck, mode.channelId);
      else void startPresenter(deck);
    },
  };
}

async function startFollower(deck: RevealApi, channelId: string): Promise<void> {
  const status = new PresenterStatus('follow');
  // Followers see the shown question and the room's reactions, and may ask
  // and react: the only writes follow mode makes, and never a command.
  const overlay = new AudienceOverlay();
  const audience = new AudienceBar(api(`/${channelId}`));
  // Hidden until the presenter's slide is known: opening the page, or its
  // reload when the deck file is saved, never shows the title slide first
  // and then a transition across the deck.
  const arrival = hideUntilArrived(deck, false);
  await whenReady(deck);
  const qr = document.querySelector<HTMLElement>('[data-clicker-qr]');
  // Hidden but still taking its space: the title slide keeps the presenter's
  // layout, so the laser dot and the ink land on the same words here.
  if (qr) qr.style.visibility = 'hidden';
  const pointer = new PointerOverlay(deck);
  const follow = (state: PublicDeckState | null) => {
    // No slide reported yet: the presenter's is the title slide.
    if (!state) return arrival.show();
    arrival.arrive(() => {
      deck.slide(state.indexh, state.indexv, state.indexf);
      if (deck.isPaused() !== state.paused) deck.togglePause(state.paused);
    });
  };
  new LiveStream(api(`/${channelId}/events`), [EVENT.snapshot, EVENT.state, EVENT.slideshow, EVENT.reload, EVENT.pointer, ...OVERLAY_EVENTS, ...AUDIENCE_EVENTS], {
    onEvent(name, data) {
      // Up to 60 a second: straight to the overlay, past everything else.
      if (name === EVENT.pointer) return pointer.apply(data);
      overlay.onEvent(name, data);
      audience.onEvent(name, data);
      if (name === EVENT.reload) reloadSoon();
      else if (name === EVENT.snapshot) {
        // Only a `false` means away: a snapshot without the field (an older server) says nothing of it.
        status.setSlideshow((data as Snapshot).slideshow !== false);
        follow((data as Snapshot).state);
      } else if (name === EVENT.state) follow((data as StateEvent).state);
      else if (name === EVENT.slideshow) status.setSlideshow((data as SlideshowLink).connected);
    },
    onState: (s) => status.setLink(s),
  }).start();
}

/** What a slide's own words are, besides its heading: headings, speaker notes and Clicker's own parts left out, one line, at most 300 characters. */
function bodyOf(slide: Element | undefined): string {
  if (!slide) return '';
  let text = '';
  const walk = (node: Node): void => {
    if (node.nodeType === Node.TEXT_NODE) text += node.nodeValue ?? '';
    if (!(node instanceof Element)) return;
    if (/^(H[1-6]|ASIDE|SCRIPT|STYLE|TEMPLATE)$/.test(node.tagName) || node.matches('[data-clicker-qr], [class^="clicker"], [class*=" clicker"]')) return;
    for (const child of node.childNodes) walk(child);
  };
  for (const child of slide.childNodes) walk(child);
  return text.replace(/\s+/g, ' ').trim().slice(0, 300);
}

/** How much of a slide's words stand for it, as a neighbour, when it has no title. */
const KEY_WORDS = 80;
/** A slide as its neighbours know it: its title, or the start of its words. */
const keyFrom = (title: string, body: string): string => title || body.slice(0, KEY_WORDS);
const keyOf = (slide: Element | undefined): string => keyFrom(titleOf(slide, ''), contentOf(slide));

function markOf(deck: RevealApi, slide: Element | undefined): SlideMark | undefined {
  if (!slide) return undefined;
  const slides = deck.getSlides();
  const flat = slides.indexOf(slide as HTMLElement);
  if (flat < 0) return undefined;
  return { title: titleOf(slide, ''), body: contentOf(slide), prev: keyOf(slides[flat - 1]), next: keyOf(slides[flat + 1]), flat };
}

/**
 * Where a saved position is in the deck as it is now. Saving the deck file
 * reloads the slideshow: a slide added or removed above the one on screen
 * moves it, and the same numbers would show another slide. Each slide is
 * scored against the mark saved with the position: its title (2), its words
 * (2), the slide before it and the slide after it (1 each). It must share
 * its title or its words, and score 3 or more: a retitled slide is found by
 * its words, a reworded one by its title, and another slide that only
 * shares its title ("Demo", twice) is told apart by its words and its
 * neighbours. The best wins, the nearest to the old place on a tie; with
 * none (the slide was deleted, or rewritten whole) the numbers are kept.
 */
function whereSlideWent(deck: RevealApi, at: { indexh: number; indexv: number; indexf?: number | undefined; mark?: SlideMark | undefined }): { indexh: number; indexv: number; indexf?: number | undefined } {
  const mark = at.mark;
  if (!mark) return at;
  const slides = deck.getSlides();
  // Each slide read once: a neighbour's key is another slide's title or words.
  const titles = slides.map((slide) => titleOf(slide, ''));
  const bodies = slides.map(contentOf);
  const keys = titles.map((title, i) => keyFrom(title, bodies[i]!));
  // Before the first slide and after the last, as keyOf(undefined).
  const keyAt = (i: number) => keys[i] ?? '';
  let best: { slide: HTMLElement; score: number; distance: number } | undefined;
  for (const [i, slide] of slides.entries()) {
    const own = (mark.title !== '' && titles[i] === mark.title ? 2 : 0) + (mark.body !== '' && bodies[i] === mark.body ? 2 : 0);
    if (own === 0) continue;
    const score = own + (keyAt(i - 1) === mark.prev ? 1 : 0) + (keyAt(i + 1) === mark.next ? 1 : 0);
    const distance = Math.abs(i - mark.flat);
    if (score >= 3 && (!best || score > best.score || (score === best.score && distance < best.distance))) best = { slide, score, distance };
  }
  if (!best) return at;
  const { h, v } = deck.getIndices(best.slide);
  return { indexh: h, indexv: v ?? 0, indexf: at.indexf };
}

/**
 * Keeps the slides out of sight while a page that has just loaded goes to
 * the slide it should be on (a reloaded slideshow to its own, a follower to
 * the presenter's), so nobody watches it pass the title slide. `arrive`
 * makes that move with no transition and shows the deck once a frame has
 * laid it out; `show` shows it where it is. Never hidden for longer than
 * RESTORE_HIDE_MAX_MS, whatever becomes of reveal.js's start or the stream.
 * Call before reveal.js is ready, so the first frame is already hidden.
 */
function hideUntilArrived(deck: RevealApi, paused: boolean): { arrive(move: () => void): void; show(): void } {
  const root = deck.getRevealElement();
  const classes = ['clicker-restoring', ...(paused ? ['clicker-restoring-paused'] : [])];
  root?.classList.add(...classes);
  let shown = false;
  /** A move made with the transition off, waiting for its frame. */
  let placing = false;
  const show = () => {
    if (shown) return;
    shown = true;
    clearTimeout(timer);
    root?.classList.remove(...classes);
  };
  const timer = setTimeout(show, RESTORE_HIDE_MAX_MS);
  return {
    show,
    arrive(move) {
      // A second move before the first has been shown (the snapshot, then a
      // state event at once) goes the same way, and must not take the
      // borrowed 'none' for the author's transition.
      if (shown || placing) return move();
      placing = true;
      const { transition } = deck.getConfig();
      deck.configure({ transition: 'none' });
      move();
      requestAnimationFrame(() =>
        requestAnimationFrame(() => {
          deck.configure({ transition });
          placing = false;
          show();
        }),
      );
    },
  };
}

/** Plugins are initialised before reveal.js has built its controls; navigation has to wait for `ready`. */
const whenReady = (deck: RevealApi) =>
  new Promise<void>((resolve) => (deck.isReady() ? resolve() : deck.on('ready', () => resolve())));

/** reveal.js's keys for a step on or back (arrows, page keys, space, N and P): a USB clicker sends one of these. */
const STEP_KEYS = new Set(['ArrowRight', 'ArrowLeft', 'ArrowUp', 'ArrowDown', 'PageDown', 'PageUp', ' ', 'n', 'N', 'p', 'P']);

/**
 * The laptop's keyboard, or a USB clicker, during a blackout: a step key
 * brings the slide back and moves nothing, as the phone's Next does
 * (applyCommand). reveal.js alone drops those keys while paused, so a
 * presenter's clicker seems dead until they find the B key. Capturing, ahead
 * of reveal.js, which must not also take the key as a move once the deck is
 * back up.
 */
function resumeOnStepKeys(deck: RevealApi): void {
  addEventListener(
    'keydown',
    (e) => {
      if (!deck.isPaused() || !STEP_KEYS.has(e.key) || e.ctrlKey || e.metaKey || e.altKey) return;
      if (deck.getConfig().keyboard === false) return;
      const t = e.target;
      if (t instanceof HTMLElement && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
      e.preventDefault();
      e.stopImmediatePropagation();
      deck.togglePause(false);
    },
    true,
  );
}

async function startPresenter(deck: RevealApi): Promise<void> {
  const status = new PresenterStatus('present');
  deck.addKeyBinding({ ...NEW_CODE_KEY }, () => void status.requestNewCode());
  // The question the presenter shows from the phone, and the audience's reactions.
  const overlay = new AudienceOverlay();
  let saved = loadSaved();
  // A reload comes back on the slide it left; another deck, or the same one much later, starts at the top.
  const thisDeck = deckOfPage();
  const resuming = saved?.reveal && saved.deck === thisDeck && Date.now() - (saved.at ?? 0) < RESUME_WITHIN_MS ? saved.reveal : null;
  // Saving the deck file reloads the page in front of the room: until it is
  // back on its slide, nothing shows (not the title slide, nor the slide
  // transition on the way), and a blacked-out screen stays black.
  const arrival = resuming ? hideUntilArrived(deck, resuming.paused === true) : null;
  await whenReady(deck);
  resumeOnStepKeys(deck);
  const pointer = new PointerOverlay(deck);
  const persist = () => {
    if (saved) localStorage.setItem(STORE_KEY, JSON.stringify(saved));
  };
  /** The stream resumes after this event: commands the page missed while away are replayed, if they are for this deck. */
  let resumeAfter = saved?.lastEventId ?? '';
  if (resuming) {
    const { indexh, indexv, indexf } = whereSlideWent(deck, resuming);
    arrival?.arrive(() => {
      deck.slide(indexh, indexv, indexf);
      // Blacked out stays blacked out: saving the deck file reloads the page, and must not put the slide back up for the room.
      if (resuming.paused) deck.togglePause(true);
    });
  } else if (saved) {
    // Taps the phone made while the page was away were aimed at that other
    // deck (or are long stale): resume the channel after them, not through them.
    // (The saved id still goes to the server, so a restarted one numbers its events on from it.)
    delete saved.reveal;
    resumeAfter = '';
  }

  let info: ChannelInfo | null = null;
  let presence: Presence = { controllers: 0, pairingOpen: false };
  const panel = new PairingPanel();
  // Phones that scanned the pairing QR wait here for the presenter to allow one.
  const knocks = new KnockCard(
    async ({ hash, ticket }) => {
      if (!info?.pairCode) throw new Error('no pairing code is open');
      const next = await requestJson<ChannelInfo>('POST', api(`/${info.id}/controllers`), { key: info.deckKey, body: { code: info.pairCode, hash, ticket } });
      adopt({ ...next, deckKey: info.deckKey });
    },
    async ({ hash, ticket }) => {
      if (!info?.pairCode) return;
      await requestJson('POST', api(`/${info.id}/refusals`), { key: info.deckKey, body: { code: info.pairCode, hash, ticket } });
    },
  );
  let stream: LiveStream | null = null;
  /**
   * Saves where the deck is and the last stream event it applied, read at the
   * same moment, so the two always agree: a reload resumes the stream after
   * the commands already applied, on the slide they led to. It runs after
   * every move and every stream event. (Saving the position only once a
   * report's PUT had answered let a reload in between come back one slide
   * behind, with the command that moved it never replayed.)
   */
  const remember = () => {
    if (!saved) return;
    const r = deck.getState();
    saved.reveal = { indexh: r.indexh, indexv: r.indexv, indexf: r.indexf, paused: r.paused, mark: markOf(deck, deck.getCurrentSlide()) };
    saved.deck = thisDeck;
    saved.at = Date.now();
    if (stream) saved.lastEventId = stream.lastId;
    persist();
  };
  // A long stay on one slide, then a reload, still counts from when the page went, not from the last move.
  addEventListener('pagehide', remember);
  let outlineSent = false;
  const applied = new Set<string>();

  const showQr = async () => {
    const box = document.querySelector<HTMLElement>('[data-clicker-qr]') ?? floatingQr(deck);
    const code = box?.querySelector<HTMLElement>('[data-clicker-qr-code]');
    const caption = box?.querySelector<HTMLElement>('[data-clicker-qr-caption]');
    if (!box || !code || !caption || !info) return;
    const pairing = info.controllerUrl !== null && presence.pairingOpen;
    const url = pairing ? info.controllerUrl! : info.followUrl;
    // Presence and snapshot events come often; the QR is drawn again only when its URL changes.
    if (box.dataset.url === url && code.querySelector('img')?.src) return;
    box.dataset.url = url;
    box.dataset.kind = pairing ? 'pair' : 'follow';
    const img = code.querySelector('img') ?? code.appendChild(document.createElement('img'));
    img.alt = pairing ? 'QR code to pair your phone as the remote' : 'QR code to follow along';
    img.src = await qrImage(url);
    caption.textContent = pairing ? 'Scan with your phone to use it as the remote' : 'Scan to follow along on your phone';
    const link = box.querySelector<HTMLElement>('[data-clicker-qr-url]') ?? box.appendChild(document.createElement('p'));
    link.setAttribute('data-clicker-qr-url', '');
    link.className = 'clicker-qr-url';
    // Without the secret fragment: the pairing code is for the camera, not for the room to copy.
    link.textContent = pairing ? url.split('#')[0]! : url;
  };

  const adopt = (next: ChannelInfo) => {
    // A new code (Q, a re-registration): phones that asked with the old one are turned away by the server.
    if (next.pairCode !== info?.pairCode) knocks.queue.clear();
    info = next;
    const same = saved?.id === next.id;
    saved = {
      ...(saved ?? { lastEventId: '' }),
      id: next.id,
      deckKey: next.deckKey,
      controllers: next.controllers,
      lastEventId: same ? saved!.lastEventId : '',
      seenUpTo: same ? saved!.seenUpTo : undefined,
      pairCode: next.pairCode,
    };
    presence = { controllers: next.controllers.length, pairingOpen: next.pairCode !== null };
    persist();
    status.setPresence(presence);
    void showQr();
  };

  const report = (): StateReport => (outlineSent ? { state: describeState(deck) } : { state: describeState(deck), slides: outlineOf(deck) });

  /** Opens a channel, or brings back the saved one with its keys, paired phones and current state. */
  const register = async () => {
    if (saved) {
      try {
        const answer = await requestJson<ChannelInfo>('PUT', api(`/${saved.id}`), {
          key: saved.deckKey,
          body: {
            // The newest the server takes: a list saved before the cap existed must not be refused whole.
            controllers: saved.controllers.slice(-MAX_CONTROLLERS),
            lastEventId: Math.min(MAX_REGISTERED_EVENT_ID, Math.max(Number(saved.lastEventId) || 0, saved.seenUpTo ?? 0)),
            report: { state: describeState(deck), slides: outlineOf(deck) },
            ...(saved.pairCode ? { pairCode: saved.pairCode } : {}),
          },
        });
        adopt(answer);
        // Made anew (the store had lost it), past ids the stream never carried: the stream resumes from there, and replays every tap after it.
        if (answer.numberedFrom !== undefined) {
          resumeAfter = String(answer.numberedFrom);
          stream?.resumeFrom(resumeAfter);
          if (saved) saved.lastEventId = resumeAfter;
        }
        outlineSent = true;
        return;
      } catch (err) {
        // A 403 means the saved key is not this channel's, and a 400 or 401 that the server will never take
        // what was saved: a new channel, not the same refusal at every try. Anything else (server down) is retried by the stream.
        if (!(err instanceof HttpStatusError) || ![400, 401, 403].includes(err.status)) throw err;
        saved = null;
      }
    }
    adopt(await requestJson<ChannelInfo>('POST', api(), {}));
    outlineSent = false;
  };

  // ------------------------------------------------------------ reports
  let inFlight = false;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let queued: { cause?: string } | null = null;
  const sendReport = async (cause?: string) => {
    if (!info) return;
    if (inFlight) {
      // Only the newest state matters; keep the cause of the latest command.
      queued = { cause: cause ?? queued?.cause };
      return;
    }
    inFlight = true;
    // This send carries the newest state: a retry still waiting for an older one is moot.
    clearTimeout(retryTimer);
    const body = report();
    if (cause) body.cause = cause;
    let failed = false;
    try {
      const answer = await requestJson<{ eventId?: number }>('PUT', api(`/${info.id}/state`), { key: info.deckKey, body });
      if (body.slides) outlineSent = true;
      if (saved && typeof answer.eventId === 'number' && answer.eventId > (saved.seenUpTo ?? 0)) {
        saved.seenUpTo = answer.eventId;
        persist();
      }
    } catch (err) {
      // A 503 (the shared store is briefly away) or a network error: the
      // phone must not keep showing an old slide, so the newest state is sent
      // again shortly. Anything else (the channel is gone after a restart) is
      // the stream's reconnect to repair: it re-registers with the current state.
      failed = !(err instanceof HttpStatusError) || err.status >= 500 || err.status === 429;
    } finally {
      inFlight = false;
    }
    if (failed && !queued) {
      clearTimeout(retryTimer);
      retryTimer = setTimeout(() => void sendReport(), REPORT_RETRY_MS);
    }
    if (queued) {
      const q = queued;
      queued = null;
      void sendReport(q.cause);
    }
  };

  let applying = false;
  for (const ev of ['slidechanged', 'fragmentshown', 'fragmenthidden', 'paused', 'resumed']) {
    // A move of the deck's own (the laptop's keyboard, a USB clicker, a click):
    // the slide moves first; saving it and describing it for the phone come in
    // the next task. (A command's move is saved after its stream event, below.)
    deck.on(ev, () => {
      if (applying) return;
      nextTask(() => {
        remember();
        void sendReport();
      });
    });
  }

  const onCommand = (data: unknown) => {
    const parsed = Command.safeParse(data);
    if (!parsed.success) return;
    const cmd = parsed.data;
    if (applied.has(cmd.id)) return;
    applied.add(cmd.id);
    if (applied.size > APPLIED_WINDOW) applied.delete(applied.values().next().value!);
    applying = true;
    try {
      applyCommand(deck, cmd);
    } finally {
      applying = false;
    }
    // The slide moves first; describing it and telling the phone comes in the next task.
    nextTask(() => void sendReport(cmd.id));
  };

  const onPresence = (p: Presence) => {
    const changed = p.controllers !== presence.controllers;
    presence = p;
    // A phone has paired with the code: its panel, and the other phones' requests, have had their day.
    if (!p.pairingOpen) {
      panel.hide();
      knocks.queue.clear();
    }
    status.setPresence(p);
    void showQr();
    // Learn the new controller hashes, so a restart can bring the pairing back.
    if (changed && info) void register().catch(() => undefined);
  };

  try {
    await register();
  } catch {
    status.setLink('offline');
  }
  const channelId = info ? (info as ChannelInfo).id : saved?.id;
  if (!channelId) {
    // No server at all on first load: try again shortly rather than leave a dead deck.
    setTimeout(() => location.reload(), 3_000);
    return;
  }
  void sendReport();

  stream = new LiveStream(
    api(`/${channelId}/events`),
    [EVENT.snapshot, EVENT.command, EVENT.presence, EVENT.reload, EVENT.pointer, EVENT.knock, ...OVERLAY_EVENTS],
    {
      onEvent(name, data) {
        // Up to 60 a second, and never replayed: no need to persist the stream position for them.
        if (name === EVENT.pointer) return pointer.apply(data);
        // Once a second from each waiting phone, never replayed either.
        // Only while a code is open: a knock that crossed the pairing on its way is no longer a question.
        if (name === EVENT.knock) return presence.pairingOpen ? knocks.queue.add(data) : undefined;
        overlay.onEvent(name, data);
        if (name === EVENT.reload) reloadSoon();
        else if (name === EVENT.command) onCommand(data);
        else if (name === EVENT.presence) onPresence(data as Presence);
        else if (name === EVENT.snapshot) {
          const snap = data as Snapshot;
          onPresence(snap.presence);
        }
        // After the slide has moved, in a task of its own (the move is what the presenter waits for).
        if (saved) nextTask(remember);
      },
      onState: (s: LinkState) => status.setLink(s),
      // After a server restart the channel is unknown there: bring it back first.
      beforeReconnect: register,
      token: () => info?.streamToken,
    },
    resumeAfter,
  );
  stream.start();

  status.onNewCode(async () => {
    if (!info) return;
    // Asked again while it shows: the presenter is done with it.
    if (panel.shown) return panel.hide();
    adopt({ ...(await requestJson<ChannelInfo>('POST', api(`/${info.id}/pair-codes`), { key: info.deckKey })), deckKey: info.deckKey });
    if (!onTitleSlide(deck) && info.controllerUrl) await panel.show(info.controllerUrl);
  });
  // The title slide shows the same code itself.
  deck.on('slidechanged', () => {
    if (onTitleSlide(deck)) panel.hide();
  });
  status.onRevoke(async () => {
    if (!info) return;
    await requestJson('DELETE', api(`/${info.id}/controllers`), { key: info.deckKey });
  });
}
