// The Bus: what several Clicker instances must share about a channel, behind
// one narrow interface. The in-memory bus is the embedded default; the Redis
// bus (bus-redis.ts) lets instances behind a load balancer serve the same
// channels. The hub (hub.ts) keeps only what is local to one process: the
// open streams. Both buses pass the same contract suite (bus-contract.ts).
import { EVENT, MAX_CONTROLLERS, slideshowData, type DeckState, type Presence, type Question, type QuestionsSummary, type SlideRef, type Spotlight } from '../protocol/messages';

/** A channel as every instance sees it. Secrets appear only as hashes. */
export interface ChannelRecord {
  id: string;
  deckHash: string;
  /** Hashes of paired controller keys. */
  controllers: string[];
  /** Hash of the one open pairing code, if any. */
  pairCodeHash: string | null;
  state: DeckState | null;
  slides: SlideRef[] | null;
  /** Whether the audience may ask questions (the presenter can turn it off). */
  questionsOpen: boolean;
  /** The question on the slideshow, if any. */
  spotlight: Spotlight['question'];
  /** Id of the last event on the channel when the record was read. */
  seq: number;
  /**
   * Key hashes of the waiting phones the slideshow refused while the open
   * code is open (the newest MAX_REFUSED): their knocks are answered "not
   * allowed", and reach the slideshow no more. A new code, or its use, clears them.
   */
  refused: string[];
  /**
   * Whether a slideshow is connected: some instance has said it holds one of
   * the deck's streams (slideshowStreams), and its word has not lapsed when
   * last summed. The value the last `slideshow` event carried.
   */
  slideshow: boolean;
}

/** A channel as it is made: no events yet, no phone refused, no slideshow connected. */
export type NewChannel = Omit<ChannelRecord, 'seq' | 'refused' | 'slideshow'>;

/** What became of an instance's word on its slideshow streams (Bus.slideshowStreams). */
export interface SlideshowChange {
  /** Whether any instance holds a slideshow stream now. */
  connected: boolean;
  /** The id of the `slideshow` event appended, when `connected` changed; null otherwise. */
  eventId: number | null;
}

/** Refusals a channel keeps for its open code: more than a room's worth of phones. */
export const MAX_REFUSED = 64;

/** Audience questions kept per channel; a phone that reconnects sees these. */
export const QUESTIONS_KEPT = 30;

/** One event on a channel, with its channel-wide monotonic id. */
export interface BusEvent {
  id: number;
  event: string;
  data: string;
  /** Wall-clock ms when it was appended (by the bus's clock): for the delivery-latency metric, and for a replay to leave out stale commands. */
  at?: number;
}

export interface AppendResult {
  eventId: number;
  /** The dedup key was seen before: nothing was appended, `eventId` is the first one's. */
  duplicate: boolean;
}

export interface History {
  /** Kept events after the asked-for id, oldest first, each with its `at`. */
  events: BusEvent[];
  /** False when the asked-for id is unknown or events after it were already dropped. */
  complete: boolean;
  /** Id of the channel's last event. */
  last: number;
}

export interface BusLimits {
  historyMax: number;
  historyMaxAgeMs: number;
  channelTtlMs: number;
}

/** Raised when the bus cannot be reached (Redis down): the HTTP layer answers 503 with Retry-After. */
export class BusUnavailable extends Error {}

/**
 * The two calls of every tap, answered at once by a bus whose store is this
 * process's memory. The hub's command path uses them instead of the promise
 * round trips a remote store needs: on one process those round trips were
 * most of a command's time on the server (bench: latency).
 */
export interface LocalStore {
  /** The channel as stored, not a copy (so nothing is allocated per tap); null when there is none. */
  peek(id: string): Readonly<ChannelHead> | null;
  /** `append`, at once. */
  appendNow(id: string, event: string, data: string, opts?: { keep?: boolean; dedup?: string }): AppendResult;
}

/** What a command's checks read of a channel. */
export type ChannelHead = Pick<ChannelRecord, 'id' | 'deckHash' | 'controllers'>;

export interface Bus {
  /** Tags this instance's own messages so it can ignore their echo. */
  readonly instanceId: string;
  /**
   * Now, in ms, on the clock the bus stamps events with: the same for every
   * instance sharing the store, so an event's age reads alike on all of them.
   */
  clock(): number;
  /** Present when the store is in this process and answers synchronously (the memory bus). */
  readonly local?: LocalStore;
  /** Creates a channel; false if the id is taken. Ids continue after `seq` (a restart's last id). */
  create(record: NewChannel, seq: number): Promise<boolean>;
  get(id: string): Promise<ChannelRecord | null>;
  /** Opens (a hash) or closes (null) pairing. */
  setPairCode(id: string, hash: string | null): Promise<Presence>;
  /**
   * Spends the open code if it is `hash`, adding a controller, atomically
   * across instances; null if it was not open. A channel with MAX_CONTROLLERS
   * already throws ControllersFull, and the code stays open.
   */
  spendPairCode(id: string, hash: string, controllerHash: string): Promise<Presence | null>;
  /** Refuses a waiting phone's key hash while the code `hash` is open; false if it is not open. */
  refuse(id: string, hash: string, controllerHash: string): Promise<boolean>;
  /** Removes one controller, or all. */
  revoke(id: string, controllerHash?: string): Promise<{ removed: number; presence: Presence }>;
  setState(id: string, state: DeckState, slides?: SlideRef[]): Promise<void>;
  /**
   * This instance holds a stream of the slideshow's on the channel (`open`),
   * good until `until` on the bus's clock unless said again, or holds none.
   * Every instance's word that has not lapsed is summed, lapsed ones are
   * dropped (an instance that died without a word), and when that changes
   * whether a slideshow is connected, an EVENT.slideshow event saying so is
   * appended (not kept), in the same atomic step: the events go out in the
   * order of the changes, whichever instances made them.
   */
  slideshowStreams(id: string, open: boolean, until: number): Promise<SlideshowChange>;
  /** Keeps a new question (the newest QUESTIONS_KEPT are kept). */
  addQuestion(id: string, question: Question): Promise<QuestionsSummary>;
  /** The kept questions, newest first. */
  questions(id: string): Promise<Question[]>;
  /** Shows (into the spotlight) or dismisses a question; null if it is not kept. */
  moderate(id: string, questionId: string, status: 'shown' | 'dismissed'): Promise<{ spotlight: Spotlight['question']; summary: QuestionsSummary } | null>;
  setQuestionsOpen(id: string, open: boolean): Promise<QuestionsSummary>;
  /**
   * Appends an event with the next id and hands it to every other instance.
   * `keep` puts it in the replay history; a repeated `dedup` key appends nothing.
   * `author`, a key hash, must be the deck's or a paired controller's at the
   * moment of the append (a NotAuthor otherwise): a tap checked just before a
   * revoke on another instance is not appended after it.
   */
  append(id: string, event: string, data: string, opts?: AppendOptions): Promise<AppendResult>;
  /** Kept events after `after`, within the history's count and age bounds. */
  since(id: string, after: number): Promise<History>;
  /** Receives events appended by other instances. */
  onRemote(listener: (channelId: string, event: BusEvent) => void): void;
  /**
   * Receives this instance's own events back from the shared store, in the
   * one order in which the store numbered everyone's. A hub given this
   * writes its own events to its streams from here rather than as it appends
   * them, so ids never go back on a stream when instances append at once.
   */
  onOwn?(listener: (channelId: string, event: BusEvent) => void): void;
  /** Called when the link to other instances drops: their events stop arriving until onReconnect. */
  onOutage?(listener: () => void): void;
  /** Called when the link to other instances comes back after an outage, so streams can catch up from history. */
  onReconnect?(listener: () => void): void;
  /** Keeps a channel alive while someone uses it; idle channels expire after the TTL. */
  touch(ids: Iterable<string>): Promise<void>;
  /** Channels held (by this process, for the memory bus). */
  count(): Promise<number>;
  /** Whether the shared store answers right now (readiness). */
  ready(): Promise<boolean>;
  close(): Promise<void>;
}

/** Dedup keys a memory channel remembers: the latest this many. */
export const DEDUP_WINDOW = 1024;

/**
 * The latest DEDUP_WINDOW dedup keys of a channel and the event ids they got.
 * The oldest key is found in a ring, not through the Map's iterator: a Map
 * iterator steps over every entry deleted before it, and with the window full
 * that walk made each tap's append cost 0.5 µs instead of 0.15.
 */
class DedupWindow {
  private readonly ids = new Map<string, number>();
  /** Keys in the order they came; grows to the window, then the oldest slot is reused. */
  private readonly order: string[] = [];
  private oldest = 0;

  get(key: string): number | undefined {
    return this.ids.get(key);
  }

  /** Remembers a key not in the window, forgetting the oldest when full. */
  add(key: string, eventId: number): void {
    if (this.order.length < DEDUP_WINDOW) this.order.push(key);
    else {
      this.ids.delete(this.order[this.oldest]!);
      this.order[this.oldest] = key;
      this.oldest = (this.oldest + 1) % DEDUP_WINDOW;
    }
    this.ids.set(key, eventId);
  }
}

interface MemoryChannel {
  record: Omit<ChannelRecord, 'seq'>;
  /** Newest first. */
  questions: Question[];
  seq: number;
  /** Kept events, with the time they were appended. */
  history: { ev: BusEvent; at: number }[];
  /** Events after this id are all still in `history`. */
  floor: number;
  dedup: DedupWindow;
  lastActive: number;
  /** Until when this process's word that it holds a slideshow stream stands; null when it holds none. */
  slideshowUntil: number | null;
}

/**
 * The embedded bus: one process, no setup. Everything is synchronous under
 * the promise surface, so the single-instance default pays no I/O.
 */
export class MemoryBus implements Bus, LocalStore {
  readonly instanceId = 'memory';
  readonly local: LocalStore = this;
  private readonly channels = new Map<string, MemoryChannel>();

  constructor(
    private readonly limits: BusLimits,
    private readonly now: () => number = Date.now,
  ) {}

  clock(): number {
    return this.now();
  }

  async create(record: NewChannel, seq: number): Promise<boolean> {
    if (this.channels.has(record.id)) return false;
    const at = this.now();
    this.channels.set(record.id, {
      record: { ...record, controllers: [...record.controllers], refused: [], slideshow: false },
      questions: [],
      seq,
      history: [],
      floor: seq,
      dedup: new DedupWindow(),
      lastActive: at,
      slideshowUntil: null,
    });
    return true;
  }

  async get(id: string): Promise<ChannelRecord | null> {
    const ch = this.channels.get(id);
    return ch ? { ...ch.record, controllers: [...ch.record.controllers], refused: [...ch.record.refused], seq: ch.seq } : null;
  }

  async setPairCode(id: string, hash: string | null): Promise<Presence> {
    const ch = this.must(id);
    ch.record.pairCodeHash = hash;
    ch.record.refused = [];
    return presenceOf(ch.record);
  }

  async spendPairCode(id: string, hash: string, controllerHash: string): Promise<Presence | null> {
    const ch = this.must(id);
    if (ch.record.pairCodeHash !== hash) return null;
    if (ch.record.controllers.length >= MAX_CONTROLLERS && !ch.record.controllers.includes(controllerHash)) throw new ControllersFull(id);
    ch.record.pairCodeHash = null;
    ch.record.refused = [];
    if (!ch.record.controllers.includes(controllerHash)) ch.record.controllers.push(controllerHash);
    return presenceOf(ch.record);
  }

  async refuse(id: string, hash: string, controllerHash: string): Promise<boolean> {
    const ch = this.must(id);
    if (ch.record.pairCodeHash !== hash) return false;
    if (!ch.record.refused.includes(controllerHash)) ch.record.refused = [...ch.record.refused, controllerHash].slice(-MAX_REFUSED);
    return true;
  }

  async revoke(id: string, controllerHash?: string): Promise<{ removed: number; presence: Presence }> {
    const ch = this.must(id);
    const before = ch.record.controllers.length;
    ch.record.controllers = controllerHash === undefined ? [] : ch.record.controllers.filter((h) => h !== controllerHash);
    return { removed: before - ch.record.controllers.length, presence: presenceOf(ch.record) };
  }

  async setState(id: string, state: DeckState, slides?: SlideRef[]): Promise<void> {
    const ch = this.must(id);
    ch.record.state = state;
    if (slides) ch.record.slides = slides;
  }

  async slideshowStreams(id: string, open: boolean, until: number): Promise<SlideshowChange> {
    const ch = this.must(id);
    ch.slideshowUntil = open ? until : null;
    // One process: its own word is the only one, and lapses as any would.
    const connected = ch.slideshowUntil !== null && ch.slideshowUntil > this.now();
    if (connected === ch.record.slideshow) return { connected, eventId: null };
    ch.record.slideshow = connected;
    const { eventId } = this.appendNow(id, EVENT.slideshow, slideshowData(connected));
    return { connected, eventId };
  }

  async addQuestion(id: string, question: Question): Promise<QuestionsSummary> {
    const ch = this.must(id);
    ch.questions.unshift({ ...question });
    if (ch.questions.length > QUESTIONS_KEPT) ch.questions.length = QUESTIONS_KEPT;
    return summaryOf(ch.record.questionsOpen, ch.questions);
  }

  async questions(id: string): Promise<Question[]> {
    return this.must(id).questions.map((q) => ({ ...q }));
  }

  async moderate(id: string, questionId: string, status: 'shown' | 'dismissed'): Promise<{ spotlight: Spotlight['question']; summary: QuestionsSummary } | null> {
    const ch = this.must(id);
    const q = ch.questions.find((x) => x.id === questionId);
    if (!q) return null;
    q.status = status;
    if (status === 'shown') ch.record.spotlight = { id: q.id, text: q.text };
    else if (ch.record.spotlight?.id === q.id) ch.record.spotlight = null;
    return { spotlight: ch.record.spotlight, summary: summaryOf(ch.record.questionsOpen, ch.questions) };
  }

  async setQuestionsOpen(id: string, open: boolean): Promise<QuestionsSummary> {
    const ch = this.must(id);
    ch.record.questionsOpen = open;
    return summaryOf(open, ch.questions);
  }

  async append(id: string, event: string, data: string, opts?: AppendOptions): Promise<AppendResult> {
    return this.appendNow(id, event, data, opts);
  }

  peek(id: string): Readonly<ChannelHead> | null {
    return this.channels.get(id)?.record ?? null;
  }

  appendNow(id: string, event: string, data: string, opts: AppendOptions = {}): AppendResult {
    const ch = this.must(id);
    if (opts.author !== undefined && opts.author !== ch.record.deckHash && !ch.record.controllers.includes(opts.author)) throw new NotAuthor();
    if (opts.dedup !== undefined) {
      const seen = ch.dedup.get(opts.dedup);
      if (seen !== undefined) return { eventId: seen, duplicate: true };
    }
    const eventId = ++ch.seq;
    const at = this.now();
    ch.lastActive = at;
    if (opts.keep) {
      ch.history.push({ ev: { id: eventId, event, data }, at });
      if (ch.history.length > this.limits.historyMax) ch.floor = ch.history.shift()!.ev.id;
    }
    if (opts.dedup !== undefined) {
      ch.dedup.add(opts.dedup, eventId);
    }
    return { eventId, duplicate: false };
  }

  async since(id: string, after: number): Promise<History> {
    const ch = this.must(id);
    const cutoff = this.now() - this.limits.historyMaxAgeMs;
    while (ch.history.length && ch.history[0]!.at < cutoff) ch.floor = ch.history.shift()!.ev.id;
    if (after < ch.floor || after > ch.seq) return { events: [], complete: false, last: ch.seq };
    return { events: ch.history.filter((h) => h.ev.id > after).map((h) => ({ ...h.ev, at: h.at })), complete: true, last: ch.seq };
  }

  onRemote(): void {
    // One process: there is no other instance to hear from.
  }

  async touch(ids: Iterable<string>): Promise<void> {
    const at = this.now();
    for (const id of ids) {
      const ch = this.channels.get(id);
      if (ch) ch.lastActive = at;
    }
  }

  async count(): Promise<number> {
    return this.channels.size;
  }

  async ready(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
    // Nothing to release: the hub drives the sweep.
  }

  /** Drops channels idle for the TTL; the hub touches the ones with open streams first, and calls this on its timer. */
  sweep(): number {
    const cutoff = this.now() - this.limits.channelTtlMs;
    let dropped = 0;
    for (const [id, ch] of this.channels) {
      if (ch.lastActive < cutoff) {
        this.channels.delete(id);
        dropped++;
      }
    }
    return dropped;
  }

  private must(id: string): MemoryChannel {
    const ch = this.channels.get(id);
    if (!ch) throw new ChannelGone(id);
    return ch;
  }
}

/** What an append may ask for: see Bus.append. */
export interface AppendOptions {
  keep?: boolean;
  dedup?: string;
  author?: string;
}

/** The key hash an append named is not the deck's or a paired controller's (any more). */
export class NotAuthor extends Error {
  constructor() {
    super('controller key required');
  }
}

/** A channel with MAX_CONTROLLERS phones paired pairs no more until some are revoked. */
export class ControllersFull extends Error {
  constructor(readonly id: string) {
    super('too many controllers');
  }
}

/** The channel expired or never existed. */
export class ChannelGone extends Error {
  constructor(readonly id: string) {
    super('unknown channel');
  }
}

export function presenceOf(record: Pick<ChannelRecord, 'controllers' | 'pairCodeHash'>): Presence {
  return { controllers: record.controllers.length, pairingOpen: record.pairCodeHash !== null };
}

export function summaryOf(open: boolean, questions: Pick<Question, 'status'>[]): QuestionsSummary {
  return { open, pending: questions.filter((q) => q.status === 'pending').length };
}
