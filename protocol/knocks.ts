// The phones waiting for the presenter to allow them (phone approval), as
// the slideshow and the drop-in keep them: a knock arrives every second from
// each waiting phone, and one that stops knocking (its page was closed)
// leaves the list. No DOM here: each page draws the list its own way.
import type { Knock } from './wire';

/** A phone that has not knocked for this long has gone away (it knocks every second; a failed knock costs it at most 4 s more). */
export const KNOCK_FRESH_MS = 8_000;
/** The most shown at once; the rest wait for a place, and the card says how many. */
export const KNOCKS_SHOWN = 4;
/** A row that has just taken its place on the card answers no key or click for this long: a number pressed, or a click aimed, as it arrived must not pick it. */
export const SETTLE_MS = 700;

function isKnock(data: unknown): data is Knock {
  const k = data as Partial<Knock> | null;
  return typeof k === 'object' && k !== null && typeof k.hash === 'string' && typeof k.label === 'string' && typeof k.device === 'string' && typeof k.ticket === 'string';
}

/** A waiting phone as the card shows it. */
export interface ShownKnock extends Knock {
  /** Its number on the card, kept for as long as it is shown (1 to KNOCKS_SHOWN). */
  slot: number;
  /** Another waiting phone shows the same name: neither can be told apart, so neither may be allowed. */
  clash: boolean;
}

export type KeyAction = { allow: Knock } | 'refuse' | 'ignore' | undefined;

/** A row's name, numbered when several rows show. */
export function rowName(k: ShownKnock, numbered: boolean): string {
  return numbered ? `${k.slot}. ${k.label}` : k.label;
}

/** A row's device line, which says so when another phone shows the same name. */
export function rowDevice(k: ShownKnock): string {
  return k.clash ? `${k.device} · same name as another phone` : k.device;
}

/** The line under the rows: how many more wait, a clash, and which keys do what. `newCode` says how this page gets a new code. */
export function cardHint(shown: readonly ShownKnock[], more: number, newCode: string): string {
  return [
    more > 0 ? `${more} more waiting.` : '',
    shown.some((k) => k.clash) ? `Two phones show the same name: allow neither. ${newCode}` : '',
    shown.length > 1 || more > 0
      ? `Allow only the phone whose screen shows its name: press its number${shown.length > 1 ? ` (${shown.map((k) => k.slot).join(', ')})` : ''} · Esc refuses those shown`
      : 'Allow it only if your phone shows this name · Enter allows · Esc refuses',
  ]
    .filter(Boolean)
    .join(' ');
}

export class KnockQueue {
  /** First come first, the newest knock of each. */
  private readonly waiting = new Map<string, { knock: Knock; seen: number; slot: number; shownAt: number }>();
  private readonly refused = new Set<string>();
  private timer: ReturnType<typeof setInterval> | undefined;

  /**
   * `onRefuse` tells the server of each phone refused, with its knock (the
   * server then answers its knocks "not allowed" and passes them on no more).
   */
  constructor(
    private readonly onChange: () => void,
    private readonly now: () => number = Date.now,
    private readonly onRefuse: (knock: Knock) => void = () => undefined,
  ) {}

  /** A `knock` event's data. */
  add(data: unknown): void {
    if (!isKnock(data)) return;
    if (this.refused.has(data.hash)) {
      // The server passed it on, so it has forgotten the refusal (a restart): told again.
      this.onRefuse(data);
      return;
    }
    const known = this.waiting.get(data.hash);
    if (known) {
      known.seen = this.now();
      // The ticket follows the code: a knock after a new code carries the new one.
      known.knock = data;
      return;
    }
    this.waiting.set(data.hash, { knock: data, seen: this.now(), slot: 0, shownAt: 0 });
    this.timer ??= setInterval(() => this.sweep(), 1_000);
    this.changed();
  }

  /** The phones shown now, by their numbers. */
  list(): ShownKnock[] {
    const labels = new Map<string, number>();
    for (const w of this.waiting.values()) labels.set(w.knock.label, (labels.get(w.knock.label) ?? 0) + 1);
    return [...this.waiting.values()]
      .filter((w) => w.slot > 0)
      .sort((a, b) => a.slot - b.slot)
      .map((w) => ({ ...w.knock, slot: w.slot, clash: (labels.get(w.knock.label) ?? 0) > 1 }));
  }

  /** Waiting phones not shown yet, for "+N more". */
  hidden(): number {
    let n = 0;
    for (const w of this.waiting.values()) if (w.slot === 0) n++;
    return n;
  }

  /**
   * What a key press means while phones wait: Enter allows the one phone
   * shown (never a guess among several), a digit the phone of that number,
   * Escape refuses those shown. A phone whose name another shows too is
   * never allowed from the keyboard. Right after the list changed, keys are
   * ignored. Undefined when nothing waits, or for any other key.
   */
  keyAction(key: string, code = ''): KeyAction {
    const shown = this.list();
    if (shown.length === 0) return undefined;
    // The digit typed, or (on a layout whose digits need Shift, as AZERTY's do) the digit key's position.
    const digit = /^[1-9]$/.test(key) ? key : /^Digit([1-9])$/.exec(code)?.[1];
    if (key !== 'Escape' && key !== 'Enter' && digit === undefined) return undefined;
    if (key === 'Escape') return shown.some((k) => !this.settled(k.hash)) ? 'ignore' : 'refuse';
    const chosen = key === 'Enter' ? (shown.length === 1 && this.hidden() === 0 ? shown[0] : undefined) : shown.find((k) => k.slot === Number(digit));
    return chosen && !chosen.clash && this.settled(chosen.hash) ? { allow: chosen } : 'ignore';
  }

  /** Whether this phone's row has been in its place long enough to be chosen (by a key or a click). */
  settled(hash: string): boolean {
    const w = this.waiting.get(hash);
    return w !== undefined && w.slot > 0 && this.now() - w.shownAt >= SETTLE_MS;
  }

  /** The presenter said no: this phone is not shown again, however often it knocks. */
  refuse(hash: string): void {
    this.refused.add(hash);
    const w = this.waiting.get(hash);
    if (!w) return;
    this.waiting.delete(hash);
    this.onRefuse(w.knock);
    this.changed();
  }

  /** Esc: every phone shown is refused; those waiting for a place move up. */
  refuseShown(): void {
    for (const [hash, w] of this.waiting) {
      if (w.slot === 0) continue;
      this.refused.add(hash);
      this.waiting.delete(hash);
      this.onRefuse(w.knock);
    }
    this.changed();
  }

  /** A phone was allowed, or the code replaced: whoever else waited is refused by the server now. */
  clear(): void {
    if (this.waiting.size === 0) return;
    this.waiting.clear();
    this.changed();
  }

  /** Numbers the shown rows (a row keeps its number while shown), stops the sweep when nothing waits, and redraws. */
  private changed(): void {
    const taken = new Set<number>();
    for (const w of this.waiting.values()) if (w.slot > 0) taken.add(w.slot);
    for (const w of this.waiting.values()) {
      if (w.slot > 0 || taken.size >= KNOCKS_SHOWN) continue;
      let slot = 1;
      while (taken.has(slot)) slot++;
      w.slot = slot;
      w.shownAt = this.now();
      taken.add(slot);
    }
    if (this.waiting.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
    this.onChange();
  }

  private sweep(): void {
    const now = this.now();
    let gone = false;
    for (const [hash, w] of this.waiting) {
      if (now - w.seen > KNOCK_FRESH_MS) {
        this.waiting.delete(hash);
        gone = true;
      }
    }
    if (gone) this.changed();
  }
}
