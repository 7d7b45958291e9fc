// Wire constants and shapes with no runtime dependency, so the phone's
// bundle can use them without pulling in zod (the phone has a size budget).
import type { DeckState, SlideRef } from './messages';
export type { Command, DeckState, Pointer, SlideRef, StateReport } from './messages';

/** Server-sent event names. Clients switch on these, never on anything dynamic. */
export const EVENT = {
  /** First event of every connection: the channel's current state. */
  snapshot: 'snapshot',
  /** A command for the slideshow. */
  command: 'command',
  /** A state report from the slideshow. */
  state: 'state',
  /** Pairing changed: a phone paired, a code was issued, a controller was revoked. */
  presence: 'presence',
  /** The deck file changed on disk: reload in place. */
  reload: 'reload',
  /** Laser pointer and pen positions from the presenter's phone (never replayed). */
  pointer: 'pointer',
  /** The audience's questions changed: how many wait, and whether asking is open (never their text). */
  questions: 'questions',
  /** The question on the slideshow, or null when none is. */
  spotlight: 'spotlight',
  /** A follower's reaction, for a brief burst on the slideshow. */
  reaction: 'reaction',
  /**
   * A phone with the pairing code asks to be the remote (phone approval).
   * Only on the deck's own stream: the room never learns a waiting phone's
   * name, so nobody can pose as it. Never kept; a waiting phone knocks again
   * every second.
   */
  knock: 'knock',
  /**
   * Whether the slideshow is connected: some instance holds a stream opened
   * with the deck's token. Told when that changes, and a few seconds late
   * when it goes (a reconnect is not news); never kept.
   */
  slideshow: 'slideshow',
  /**
   * The heartbeat, as an event, on a stream that names it in `?events=`
   * (every other stream gets a comment): once as the stream opens, then every
   * `every` ms. EventSource never surfaces a comment, so a client can tell a
   * stream that died without a word (a Wi-Fi change, a sleeping laptop, a
   * NAT that forgot the connection) from a quiet one only by these.
   */
  beat: 'beat',
} as const;

/** The `beat` event's data: how often the server beats, so a client knows how long a silence means the stream is dead. */
export interface Beat {
  every: number;
}

/**
 * A command's useful life: the phone gives up a tap it could not send within
 * this, and the server does not replay a kept command older than this (by
 * default), because a tap older than this would surprise the room.
 */
export const COMMAND_DEADLINE_MS = 30_000;

export type ReactionKind = 'thumbs' | 'clap' | 'question';

export interface Question {
  id: string;
  text: string;
  /** Wall-clock ms when it was asked. */
  at: number;
  status: 'pending' | 'shown' | 'dismissed';
}

export interface QuestionsSummary {
  open: boolean;
  pending: number;
}

/** Answer of GET /api/channels/:id/questions (presenter only): the last 30, newest first. */
export interface QuestionList extends QuestionsSummary {
  questions: Question[];
}

export interface Spotlight {
  question: { id: string; text: string } | null;
}

/** The `slideshow` event: whether the slideshow is connected to the server. */
export interface SlideshowLink {
  connected: boolean;
}

const SLIDESHOW_CONNECTED = JSON.stringify({ connected: true } satisfies SlideshowLink);
const SLIDESHOW_AWAY = JSON.stringify({ connected: false } satisfies SlideshowLink);
/** The `slideshow` event's data, written once for each value: the bus appends it as is. */
export const slideshowData = (connected: boolean): string => (connected ? SLIDESHOW_CONNECTED : SLIDESHOW_AWAY);

/** A controller key as the server hands it out and takes it back (PairRequest): a phone checks a stored one against it. */
export const CONTROLLER_KEY_RE = /^[A-Za-z0-9_-]{16,64}$/;

export interface Presence {
  /** How many controllers are paired. */
  controllers: number;
  /** Whether a fresh, unspent pairing code exists. */
  pairingOpen: boolean;
}

/**
 * A deck state as streams carry it: without the speaker notes. Anyone who
 * scans the follow QR may open a stream, so notes go only to key holders,
 * through GET /api/channels/:id/notes.
 */
export type PublicDeckState = Omit<DeckState, 'notes'>;

/**
 * Whether Next (or Previous) does anything on a deck in this state. During a
 * blackout both bring the slide back without moving it (the slideshow's
 * applyCommand), so both work even at an end of the deck.
 */
export function canStep(s: Pick<DeckState, 'isFirst' | 'isLast' | 'paused'> | null, dir: 'next' | 'prev'): boolean {
  if (!s) return true;
  return s.paused || !(dir === 'next' ? s.isLast : s.isFirst);
}

/** GET /api/channels/:id/notes (a controller or the deck key): the notes of the slide the deck is on. */
export interface SpeakerNotes {
  indexh: number;
  indexv: number;
  notes: string;
}

export interface Snapshot {
  state: PublicDeckState | null;
  slides: SlideRef[] | null;
  presence: Presence;
  /** True when the client asked to resume from an id the server no longer has. */
  gap: boolean;
  questions: QuestionsSummary;
  /** The question on the slideshow right now, for late joiners. */
  spotlight: Spotlight['question'];
  /** Whether the slideshow is connected (see EVENT.slideshow). */
  slideshow: boolean;
}

export interface StateEvent {
  state: PublicDeckState;
  cause?: string;
  slides?: SlideRef[];
}

/** Answer of channel creation and re-registration. */
export interface ChannelInfo {
  id: string;
  deckKey: string;
  pairCode: string | null;
  /** Controller URL with the one-time pairing code in its fragment. */
  controllerUrl: string | null;
  /** Read-only audience URL. */
  followUrl: string;
  /** Hashes of the controller keys, for re-registration after a restart. */
  controllers: string[];
  /** The deck's stream token (`?as=` on its event stream): its stream gets a slot kept for key holders. */
  streamToken: string;
  /**
   * Set when this re-registration made the channel anew (the store had lost
   * it): the id its events number on from. Nothing before it exists any
   * more, so the slideshow's stream resumes from here.
   */
  numberedFrom?: number;
}

export interface PairResult {
  controllerKey: string;
  controllerHash: string;
  /** The phone's stream token (`?as=` on its event stream): its stream gets a slot kept for key holders. */
  streamToken: string;
}

/**
 * Answer of POST /api/channels/:id/pair while the phone waits for the laptop
 * to allow it (202). The key works for nothing until then.
 */
export interface PairPending {
  pending: true;
  controllerKey: string;
  controllerHash: string;
  /** The phone's name, on its screen and on the slideshow's request, so the presenter allows the right one. */
  label: string;
}

/** A `knock` event's data: a phone waiting to be allowed. */
export interface Knock {
  /** Its controller key's hash, which the slideshow sends back to allow it. */
  hash: string;
  label: string;
  /** What kind of device it says it is (its User-Agent, summed up): a hint only, since anyone can claim any. */
  device: string;
  /** Sent back to allow it: proof that this hash knocked with the code now open. */
  ticket: string;
}

/** Every error answer has this shape. */
export interface ErrorBody {
  error: string;
  /** Set on a spent pairing code: where the phone can still follow along. */
  followUrl?: string;
  /** Set when the presenter refused this waiting phone on the slideshow. */
  refused?: boolean;
}

export const ID_RE = /^[A-Za-z0-9_-]{22}$/;

/**
 * The outline's share of a state report, in bytes of JSON. The server takes
 * a report of up to 128 KiB (`maxStateBytes`), notes included: a deck of
 * hundreds of long titles, sent whole, was refused (413) with every report,
 * and the phone never saw where the deck was.
 */
export const OUTLINE_BYTES = 64 * 1024;
/** Titles are cut no shorter than this: the jump list still says which slide is which. */
const OUTLINE_TITLE_MIN = 12;

/** The outline as sent: over OUTLINE_BYTES, the longest titles are cut, with an ellipsis, until it fits. */
export function fitOutline(full: SlideRef[]): SlideRef[] {
  const bytes = (refs: SlideRef[]) => new TextEncoder().encode(JSON.stringify(refs)).length;
  let refs = full;
  for (let max = 200; bytes(refs) > OUTLINE_BYTES && max > OUTLINE_TITLE_MIN; ) {
    max = Math.max(OUTLINE_TITLE_MIN, Math.floor(max * 0.75));
    // By code points, so no character is cut in half.
    refs = full.map((r) => {
      const chars = [...r.title];
      return chars.length > max ? { ...r, title: `${chars.slice(0, max - 1).join('')}…` } : r;
    });
  }
  return refs;
}

/** Phones a channel pairs at most: the slideshow names them all when it re-registers. */
export const MAX_CONTROLLERS = 16;
