// The phones waiting for the presenter to allow them (phone approval), as
// the slideshow and the drop-in keep them: a knock arrives every second from
// each waiting phone, and one that stops knocking (its page was closed)
// leaves the list. No DOM here: each page draws the list its own way.
import type { Knock } from './wire';

/** A phone that has not knocked for this long has gone away. */
export const KNOCK_FRESH_MS = 4_000;
/** The most shown at once: past this, the newest wait for a place (one noisy address cannot bury the presenter's phone). */
export const KNOCKS_SHOWN = 4;

function isKnock(data: unknown): data is Knock {
  const k = data as Partial<Knock> | null;
  return typeof k === 'object' && k !== null && typeof k.hash === 'string' && typeof k.label === 'string' && typeof k.device === 'string';
}

export class KnockQueue {
  private readonly waiting = new Map<string, { knock: Knock; seen: number }>();
  private readonly refused = new Set<string>();
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly onChange: () => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** A `knock` event's data. */
  add(data: unknown): void {
    if (!isKnock(data) || this.refused.has(data.hash)) return;
    const known = this.waiting.get(data.hash);
    if (known) {
      known.seen = this.now();
      return;
    }
    this.waiting.set(data.hash, { knock: data, seen: this.now() });
    this.timer ??= setInterval(() => this.sweep(), 1_000);
    this.onChange();
  }

  /** The phones waiting now, first come first. */
  list(): Knock[] {
    return [...this.waiting.values()].slice(0, KNOCKS_SHOWN).map((w) => w.knock);
  }

  /**
   * What a key press means while phones wait: Enter allows the one waiting
   * phone (never a guess among several), a digit the phone of that number,
   * Escape refuses them all. Undefined for any other key, or nothing waiting.
   */
  keyAction(key: string): { allow: string } | 'refuse' | 'ignore' | undefined {
    const list = this.list();
    if (list.length === 0) return undefined;
    if (key === 'Escape') return 'refuse';
    if (key === 'Enter') return list.length === 1 ? { allow: list[0]!.hash } : 'ignore';
    if (/^[1-9]$/.test(key)) {
      const chosen = list[Number(key) - 1];
      return chosen ? { allow: chosen.hash } : 'ignore';
    }
    return undefined;
  }

  /** The presenter said no: this phone is not shown again, however often it knocks. */
  refuse(hash: string): void {
    this.refused.add(hash);
    this.drop(hash);
  }

  refuseAll(): void {
    for (const hash of this.waiting.keys()) this.refused.add(hash);
    this.clear();
  }

  /** A phone was allowed, and the code is spent: the others' knocks will be refused by the server. */
  clear(): void {
    this.waiting.clear();
    this.stop();
    this.onChange();
  }

  private drop(hash: string): void {
    if (!this.waiting.delete(hash)) return;
    if (this.waiting.size === 0) this.stop();
    this.onChange();
  }

  private sweep(): void {
    const now = this.now();
    let changed = false;
    for (const [hash, w] of this.waiting) {
      if (now - w.seen > KNOCK_FRESH_MS) {
        this.waiting.delete(hash);
        changed = true;
      }
    }
    if (this.waiting.size === 0) this.stop();
    if (changed) this.onChange();
  }

  private stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
