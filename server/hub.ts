// The channel hub of one process: the open streams, and the rules for
// channels, pairing and events, on top of a Bus that holds what instances
// share (bus.ts). It knows nothing of HTTP routing: a subscriber is anything
// with `write`, `end` and `writableLength` (a socket in practice), and
// failures are `HubError`s that the HTTP layer maps to status codes in one table.
//
// The write path is hand-written for speed: each event is framed once per
// process into a Buffer, and that same Buffer is written to every subscriber.
import {
  EVENT,
  MAX_CONTROLLERS,
  slideshowData,
  type Beat,
  type Command,
  type DeckState,
  type Knock,
  type PairPending,
  type Pointer,
  type PublicDeckState,
  type Question,
  type ReactionKind,
  type Register,
  type Snapshot,
  type SpeakerNotes,
  type StateEvent,
  type StateReport,
} from '../protocol/messages';
import { BusUnavailable, ChannelGone, ControllersFull, MemoryBus, NotAuthor, presenceOf, summaryOf, type AppendOptions, type AppendResult, type Bus, type BusEvent, type ChannelHead, type ChannelRecord } from './bus';
import type { Config } from './config';
import { channelIdFor, hashSecret, isWaitingKey, issueWaitingKey, knockTicket, labelFor, matchesHash, newSecret, sameHash } from './keys';
import { NO_METRICS, type HubMetrics } from './metrics';
import { encodeEvent, formatComment } from './sse';

export type HubErrorKind =
  | 'not_found'
  | 'not_author'
  | 'forbidden'
  | 'code_spent'
  | 'refused'
  | 'too_many_controllers'
  | 'too_many_channels'
  | 'too_many_subscribers'
  | 'too_many_subscribers_ip'
  | 'unavailable'
  | 'questions_closed';

/** A channel with MAX_CONTROLLERS phones: a new one must wait for a revoke. */
const controllersFull = () =>
  new HubError('too_many_controllers', `this slideshow has ${MAX_CONTROLLERS} remotes paired, the most it takes: revoke them on the slideshow, then pair again`);

export class HubError extends Error {
  constructor(
    readonly kind: HubErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/** What the hub needs of an open stream. */
export interface Sink {
  write(chunk: Buffer): boolean;
  end(): void;
  /** Drops the connection at once, queued bytes and all (a socket has it). */
  destroy?(): void;
  readonly writableLength: number;
}

/** Whose key a stream showed it holds (its `?as=` token): the deck's, or a paired phone's, by its key hash. */
export interface KeyHolder {
  deck: boolean;
  hash: string;
}

interface Subscriber {
  sink: Sink | null;
  /** The deck's own stream, the only one that carries knocks. */
  deck: boolean;
  /** The key hash of the holder whose token opened it (the deck's or a phone's), or null for the room's. */
  holder: string | null;
  /** Heartbeats in a row that found this stream's bytes still queued. */
  stalledBeats: number;
  ip: string;
  /** The event names this stream carries (its `?events=`), or null for all. */
  only: ReadonlySet<string> | null;
  /**
   * It named EVENT.beat: its heartbeats are events, not comments. Only the
   * heartbeat and the stream's opening read this; a beat is never published,
   * so `carries` never sees one, and a stream with no `?events=` keeps its comments.
   */
  beats: boolean;
  /** Live events that arrived while the snapshot was being read; written right after it. */
  pending: { id: number; command: boolean; frame: Buffer }[] | null;
  /**
   * Commands up to this id are in the stream already (the snapshot's past,
   * or the replay), and so is every other kind up to `othersUpTo`. Another
   * instance's events come over a link of their own, which can run behind
   * the one the snapshot was read on: one relayed late must not follow the
   * snapshot that already covers it (the stream's ids would go back, and an
   * old command would move the deck).
   */
  commandsUpTo: number;
  othersUpTo: number;
}

/** Whether the stream asked for this kind of event (its `?events=`). */
/** The state as the streams carry it: the notes stay with the hub, for key holders only (`notes`). */
function withoutNotes(state: DeckState): PublicDeckState {
  const { notes, ...rest } = state;
  void notes;
  return rest;
}

function carries(sub: Subscriber, event: string): boolean {
  // A waiting phone's knock is for the slideshow alone: were its name on the
  // room's streams, anyone could pose as the presenter's phone.
  if (event === EVENT.knock && !sub.deck) return false;
  return sub.only === null || sub.only.has(event);
}

/**
 * Where the channel's open streams all stand at least, from their snapshots:
 * a catch-up starts no earlier than this even when no live event has been
 * written here yet (`lastId` is still 0), because the history may no longer
 * reach back that far. Streams still reading their snapshot do not count:
 * they take what arrives meanwhile from `pending`. 0 when no stream is open.
 */
function joinedAt(local: LocalChannel): number {
  let least = Infinity;
  for (const sub of local.subscribers) if (sub.sink) least = Math.min(least, sub.othersUpTo);
  return least === Infinity ? 0 : least;
}

/** Whether the stream already holds event `id`: from its snapshot, or from its replay for a command. */
function covers(sub: Subscriber, id: number, command: boolean): boolean {
  return id <= (command ? sub.commandsUpTo : sub.othersUpTo);
}

/**
 * Streams a channel keeps for its phones beyond its cap for the room: up to
 * 16 phones (the most a channel pairs), each with room for a reconnect that
 * arrives before its old stream has gone, and each held to its own share
 * (PHONE_STREAMS), so one phone cannot take the others' slots.
 */
const KEY_HOLDER_STREAMS = 48;
const PHONE_STREAMS = 3;
/** The slideshow's own streams: a tab or two, the drop-in, a reconnect. Never counted against its phones'. */
const DECK_STREAMS = 8;

interface LocalChannel {
  subscribers: Set<Subscriber>;
  /** Newest event id delivered here: where a catch-up after a bus outage starts. */
  lastId: number;
  /** Id of the newest event of each state-like kind delivered here, so an older one arriving late is dropped. */
  latest: Map<string, number>;
  /** Live events held back while the channel catches up from history (null otherwise), so the stream stays in id order. */
  held: BusEvent[] | null;
  /** The last catch-up covered every event up to this id; a relayed copy of one arriving later is dropped. */
  caughtUpTo: number;
  /** Open streams of key holders (the deck, its phones), which have slots of their own. */
  keyHolders: number;
  /** Of those, each holder's, by key hash. */
  holders: Map<string, number>;
}

/**
 * This process's part in whether a channel's slideshow is connected
 * (EVENT.slideshow). Kept apart from LocalChannel, which is dropped and made
 * anew as streams are ended and swept (endStreams, sweep): a grace running
 * when that happens must go on, and be the one a returning stream clears.
 */
interface SlideshowHere {
  /** Open streams of the slideshow's here (opened with the deck key's token). */
  streams: number;
  /** Set while the last of them has gone but its grace (slideshowAwayMs) has not run out. */
  grace: NodeJS.Timeout | null;
  /** Whether this process last told the bus it holds one. */
  said: boolean;
}

export type HubLimits = Pick<
  Config,
  | 'heartbeatMs'
  | 'keyHolderBeatMs'
  | 'retryMs'
  | 'historyMax'
  | 'historyMaxAgeMs'
  | 'commandReplayMaxAgeMs'
  | 'channelTtlMs'
  | 'maxChannels'
  | 'maxSubscribersPerChannel'
  | 'maxSubscribersPerIp'
  | 'maxQueuedBytes'
  | 'slideshowAwayMs'
>;

const HEARTBEAT = Buffer.from(formatComment());
/** Heartbeats in a row that find a stream's bytes still queued before it is cut as unread (30 to 45 s at the default 15 s). */
const STALLED_BEATS = 3;
/**
 * Heartbeats an instance's word that it holds a slideshow stream stands for,
 * unless said again (each heartbeat says it again): an instance that dies
 * without a word stops counting after this many.
 */
const SLIDESHOW_WORD_BEATS = 3;
/** Queued bytes past which a stream skips pointer positions rather than receive them late. */
const POINTER_BACKLOG_BYTES = 4 * 1024;

export interface CreatedChannel {
  channel: ChannelRecord;
  deckKey: string;
  pairCode: string | null;
  /** Set when a re-registration made the channel anew: the id its events number on from. */
  numberedFrom?: number;
}

export interface PublishResult {
  eventId: number;
  duplicate: boolean;
  delivered: number;
}

export class Hub {
  readonly bus: Bus;
  /** Counters and the delivery-latency histogram; a no-op unless the app wires in Prometheus metrics. */
  metrics: HubMetrics = NO_METRICS;
  private readonly local = new Map<string, LocalChannel>();
  /** By channel id; an entry lives while this process holds, or has said it holds, a slideshow stream there. */
  private readonly slideshowLinks = new Map<string, SlideshowHere>();
  private readonly perIp = new Map<string, number>();
  private subscriberCount = 0;
  private timers: NodeJS.Timeout[] = [];
  private readonly retryFrame: Buffer;
  /** The heartbeat of a stream that asked for it as an event (EVENT.beat), framed once. */
  private readonly beatFrame: Buffer;
  /** The same for a key holder's stream, on its quicker beat (keyHolderBeatMs); null when that is no quicker. */
  private readonly holderBeatFrame: Buffer | null;
  /**
   * Key holders' streams that beat on the quicker beat, with the channel
   * each is listed in: a handful per talk, so that beat never walks the
   * room's thousands of streams.
   */
  private readonly quick = new Map<Subscriber, LocalChannel>();
  /** The bus hands this process's own events back in the store's order (see publish). */
  private readonly echoed: boolean;
  /** Set by close(): a stream ending after it says nothing of the slideshow (see close). */
  private closed = false;
  /** Catch-ups run one after another, never two at once on the same channels. */
  private catchingUp: Promise<void> = Promise.resolve();

  constructor(
    private readonly limits: HubLimits,
    private readonly now: () => number = Date.now,
    bus?: Bus,
  ) {
    this.bus = bus ?? new MemoryBus(limits, now);
    this.retryFrame = Buffer.from(`retry: ${limits.retryMs}\n\n`);
    this.beatFrame = encodeEvent({ event: EVENT.beat, data: JSON.stringify({ every: limits.heartbeatMs } satisfies Beat) });
    this.holderBeatFrame =
      limits.keyHolderBeatMs < limits.heartbeatMs
        ? encodeEvent({ event: EVENT.beat, data: JSON.stringify({ every: limits.keyHolderBeatMs } satisfies Beat) })
        : null;
    // Other instances' events reach this process's streams here.
    this.bus.onRemote((id, ev) => this.deliver(id, ev));
    // And, from a bus that echoes them, this process's own, interleaved with
    // the others' in the one order the store gave them ids in.
    this.echoed = this.bus.onOwn !== undefined;
    this.bus.onOwn?.((id, ev) => this.deliver(id, ev));
    // From the moment the link drops, live events wait for the catch-up: the
    // first ones after it comes back must not overtake what was missed.
    this.bus.onOutage?.(() => {
      for (const local of this.local.values()) if (local.subscribers.size > 0) local.held ??= [];
    });
    this.bus.onReconnect?.(() => {
      // This process's word may have lapsed during the outage: said again
      // first, before an instance with only phones sums without it.
      for (const [id, link] of this.slideshowLinks) if (link.said) void this.saySlideshow(id);
      this.catchingUp = this.catchingUp.then(() => this.catchUp()).catch(() => undefined);
    });
  }

  /** Starts heartbeats and the idle-channel sweep. Timers never hold the process open. */
  start(): void {
    const beat = setInterval(() => this.heartbeat(), this.limits.heartbeatMs);
    const sweep = setInterval(() => void this.sweep().catch(() => undefined), Math.min(this.limits.channelTtlMs / 2, 60_000));
    beat.unref();
    sweep.unref();
    this.timers.push(beat, sweep);
    if (this.holderBeatFrame) {
      const quick = setInterval(() => this.quickBeat(), this.limits.keyHolderBeatMs);
      quick.unref();
      this.timers.push(quick);
    }
  }

  /** Ends every stream so clients reconnect at once (to this process's successor), and stops timers. */
  close(): void {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    for (const ch of this.local.values()) {
      for (const sub of ch.subscribers) sub.sink?.end();
      // A request still in flight must not write to an ended stream.
      ch.subscribers.clear();
    }
    // No word of the slideshow leaving: it reconnects to this process's
    // successor, and were that another instance, a word said now could reach
    // the phones before the one the successor says. Unsaid, this process's
    // word lapses (SLIDESHOW_WORD_BEATS).
    for (const link of this.slideshowLinks.values()) if (link.grace) clearTimeout(link.grace);
    this.slideshowLinks.clear();
    this.quick.clear();
  }

  /** Streams open in this process, and the channels they are on. */
  stats(): { channels: number; subscribers: number } {
    let channels = 0;
    for (const ch of this.local.values()) if (ch.subscribers.size) channels++;
    return { channels, subscribers: this.subscriberCount };
  }

  async get(id: string): Promise<ChannelRecord> {
    const record = await this.call(() => this.bus.get(id));
    if (!record) throw new HubError('not_found', 'unknown channel');
    return record;
  }

  async create(): Promise<CreatedChannel> {
    await this.ensureRoom();
    const deckKey = newSecret();
    const id = channelIdFor(deckKey);
    const record = { id, deckHash: hashSecret(deckKey), controllers: [], pairCodeHash: null, state: null, slides: null, questionsOpen: true, spotlight: null };
    await this.call(() => this.bus.create(record, 0));
    const pairCode = await this.issuePairCode({ ...record, seq: 0, refused: [], slideshow: false });
    return { channel: await this.get(id), deckKey, pairCode };
  }

  /**
   * Brings back a channel after a server restart, or refreshes a live one on a
   * slideshow reload. Only the deck key's holder can do either: for a live
   * channel the key is checked against its hash, for an unknown one the id
   * must derive from the key.
   */
  async register(id: string, deckKey: string, body: Register): Promise<CreatedChannel> {
    let record = await this.call(() => this.bus.get(id));
    let numberedFrom: number | undefined;
    if (record) {
      if (!this.isDeck(record, deckKey)) throw new HubError('forbidden', 'wrong deck key');
    } else {
      if (channelIdFor(deckKey) !== id) throw new HubError('forbidden', 'wrong deck key');
      await this.ensureRoom();
      const fresh = { id, deckHash: hashSecret(deckKey), controllers: [...new Set(body.controllers)], pairCodeHash: null, state: null, slides: null, questionsOpen: true, spotlight: null };
      // Another instance may have brought it back a moment ago; either way it exists now.
      if (await this.call(() => this.bus.create(fresh, body.lastEventId))) numberedFrom = body.lastEventId;
    }
    // What the deck shows now, told to the phones and followers too: after a
    // reload (an edited deck file) or a restart, the outline may have changed.
    if (body.report) await this.report({ id }, body.report);
    record = await this.get(id);
    // The code the deck shows stays, while it is open (a reload must not turn
    // away the phones waiting with it); otherwise a deck with no phone yet
    // gets a fresh code to show, and a paired deck shows the follow QR.
    const keep = body.pairCode !== undefined && record.pairCodeHash !== null && matchesHash(body.pairCode, record.pairCodeHash);
    const pairCode = keep ? body.pairCode! : record.controllers.length === 0 ? await this.issuePairCode(record) : null;
    return { channel: await this.get(id), deckKey, pairCode, ...(numberedFrom === undefined ? {} : { numberedFrom }) };
  }

  isDeck(record: Pick<ChannelRecord, 'deckHash'>, key: string | undefined): boolean {
    return key !== undefined && matchesHash(key, record.deckHash);
  }

  /**
   * The channel at once, when the bus holds it in this process (the memory
   * bus): the command path then runs start to finish without a promise.
   * Undefined when the bus has to be awaited (Redis); throws like `get` for
   * a channel that does not exist.
   */
  peek(id: string): Readonly<ChannelHead> | undefined {
    const local = this.bus.local;
    if (!local) return undefined;
    const head = local.peek(id);
    if (!head) throw new HubError('not_found', 'unknown channel');
    return head;
  }

  /** Commands may come from a paired controller, or from the deck key's holder (a script of the presenter's). */
  canCommand(record: Pick<ChannelRecord, 'deckHash' | 'controllers'>, key: string | undefined): boolean {
    return key !== undefined && this.canCommandHash(record, hashSecret(key));
  }

  /** As canCommand, for a key hashed already (hashSecret). */
  canCommandHash(record: Pick<ChannelRecord, 'deckHash' | 'controllers'>, presented: string): boolean {
    // Every stored hash is compared, so timing does not reveal which one matched.
    let ok = sameHash(presented, record.deckHash);
    for (const h of record.controllers) ok = sameHash(presented, h) || ok;
    return ok;
  }

  /** Issues a new one-time pairing code; any earlier unspent one stops working. */
  async issuePairCode(record: ChannelRecord): Promise<string> {
    const code = newSecret();
    const presence = await this.call(() => this.bus.setPairCode(record.id, hashSecret(code)));
    await this.publish(record.id, EVENT.presence, JSON.stringify(presence));
    return code;
  }

  /** Exchanges the open pairing code for a controller key, once, whichever instance the phones reach. */
  async pair(record: ChannelRecord, code: string): Promise<{ controllerKey: string; controllerHash: string }> {
    const controllerKey = newSecret();
    const controllerHash = hashSecret(controllerKey);
    const presence = await this.call(() => this.bus.spendPairCode(record.id, hashSecret(code), controllerHash));
    if (!presence) throw new HubError('code_spent', 'this pairing code has already been used or replaced');
    await this.publish(record.id, EVENT.presence, JSON.stringify(presence));
    return { controllerKey, controllerHash };
  }

  /**
   * A phone with the open pairing code asks to be the remote, and waits for
   * the slideshow to allow it (phone approval). Its key is made here on the
   * first knock and brought back on each later one, so the phone keeps one
   * name. The knock goes to the deck's own stream, live only: a waiting
   * phone knocks every second, so one the slideshow missed (its stream was
   * reconnecting) comes again. Once the slideshow has allowed the key, the
   * answer says so, whatever became of the code since.
   */
  async knock(record: ChannelRecord, code: string, key: string | undefined, device: string): Promise<PairPending | { controllerKey: string; controllerHash: string }> {
    if (key !== undefined) {
      const controllerHash = hashSecret(key);
      if (record.controllers.some((h) => sameHash(controllerHash, h))) return { controllerKey: key, controllerHash };
    }
    if (record.pairCodeHash === null || !matchesHash(code, record.pairCodeHash)) {
      throw new HubError('code_spent', 'this pairing code has already been used or replaced');
    }
    // A full slideshow: said at once, not after the presenter has allowed the phone.
    if (record.controllers.length >= MAX_CONTROLLERS) throw controllersFull();
    // Only a key this server made: one a phone picked could be searched for a name to copy.
    if (key !== undefined && !isWaitingKey(record.deckHash, record.pairCodeHash, key, this.now())) {
      throw new HubError('forbidden', 'this key was not issued for this slideshow and code, or has expired; scan the QR code again');
    }
    const controllerKey = key ?? issueWaitingKey(record.deckHash, record.pairCodeHash, this.now());
    const controllerHash = hashSecret(controllerKey);
    // Refused on the slideshow: told so, and never on its card again while this code is open.
    if (record.refused.some((h) => sameHash(h, controllerHash))) throw new HubError('refused', 'the presenter did not allow this phone');
    const label = labelFor(controllerHash);
    const knock: Knock = { hash: controllerHash, label, device, ticket: knockTicket(record.deckHash, record.pairCodeHash, controllerHash) };
    await this.publish(record.id, EVENT.knock, JSON.stringify(knock));
    return { pending: true, controllerKey, controllerHash, label };
  }

  /**
   * The slideshow allows the phone that knocked with this key hash: it
   * spends the code it shows on that phone, as `pair` spends it on whoever
   * brings it first. The knock's ticket proves the hash knocked with this
   * very code; a code spent or replaced meanwhile refuses it.
   */
  async allow(record: ChannelRecord, code: string, controllerHash: string, ticket: string): Promise<void> {
    const codeHash = hashSecret(code);
    if (record.pairCodeHash === null || !sameHash(codeHash, record.pairCodeHash)) throw new HubError('code_spent', 'this pairing code has already been used or replaced');
    if (!sameHash(ticket, knockTicket(record.deckHash, codeHash, controllerHash))) throw new HubError('forbidden', 'no phone knocked with this key and code');
    const presence = await this.call(() => this.bus.spendPairCode(record.id, codeHash, controllerHash));
    if (!presence) throw new HubError('code_spent', 'this pairing code has already been used or replaced');
    await this.publish(record.id, EVENT.presence, JSON.stringify(presence));
  }

  /**
   * The slideshow refuses a phone that knocked (its ticket proves it knocked
   * with the code on show): its knocks are answered "not allowed" from now
   * on, on every instance, and reach the slideshow no more. Kept while the
   * code is open, so a reload of the slideshow does not bring the phone back.
   */
  async refuse(record: ChannelRecord, code: string, controllerHash: string, ticket: string): Promise<void> {
    const codeHash = hashSecret(code);
    if (record.pairCodeHash === null || !sameHash(codeHash, record.pairCodeHash)) throw new HubError('code_spent', 'this pairing code has already been used or replaced');
    if (!sameHash(ticket, knockTicket(record.deckHash, codeHash, controllerHash))) throw new HubError('forbidden', 'no phone knocked with this key and code');
    if (!(await this.call(() => this.bus.refuse(record.id, codeHash, controllerHash)))) throw new HubError('code_spent', 'this pairing code has already been used or replaced');
  }

  /** Revokes one controller by its hash, or all of them. */
  async revoke(record: ChannelRecord, controllerHash?: string): Promise<number> {
    const { removed, presence } = await this.call(() => this.bus.revoke(record.id, controllerHash));
    await this.publish(record.id, EVENT.presence, JSON.stringify(presence));
    return removed;
  }

  /**
   * Publishes a command unless its id was seen recently (a retried POST).
   * `author`: the key hash the command came with, checked again as it is appended (see Bus.append).
   */
  command(record: Pick<ChannelRecord, 'id'>, cmd: Command, author?: string): Promise<PublishResult> {
    return this.publish(record.id, EVENT.command, JSON.stringify(cmd), { keep: true, dedup: cmd.id, ...(author === undefined ? {} : { author }) });
  }

  /** `command` at once, for a channel `peek` returned (so the bus is local). */
  commandNow(record: Readonly<ChannelHead>, cmd: Command): PublishResult {
    return this.publishNow(record.id, EVENT.command, JSON.stringify(cmd), { keep: true, dedup: cmd.id });
  }

  async report(record: Pick<ChannelRecord, 'id'>, report: StateReport): Promise<PublishResult> {
    await this.call(() => this.bus.setState(record.id, report.state, report.slides));
    const body: StateEvent = { state: withoutNotes(report.state) };
    if (report.cause) body.cause = report.cause;
    if (report.slides) body.slides = report.slides;
    return this.publish(record.id, EVENT.state, JSON.stringify(body));
  }

  /**
   * The speaker notes of the slide the deck is on. Never on a stream: anyone
   * who scans the follow QR may open one. The caller checks the key.
   */
  notes(record: ChannelRecord): SpeakerNotes | null {
    const s = record.state;
    return s ? { indexh: s.indexh, indexv: s.indexv, notes: s.notes } : null;
  }

  /** Laser pointer and pen: delivered now or never (see `deliver`), not kept. */
  pointer(record: Pick<ChannelRecord, 'id'>, p: Pointer): Promise<PublishResult> {
    return this.publish(record.id, EVENT.pointer, JSON.stringify(p));
  }

  /** A follower's question waits for the presenter; only a count goes out on the public stream. */
  async ask(record: ChannelRecord, text: string): Promise<Question> {
    if (!record.questionsOpen) throw new HubError('questions_closed', 'the presenter is not taking questions right now');
    const question: Question = { id: newSecret().slice(0, 12), text, at: this.now(), status: 'pending' };
    const summary = await this.call(() => this.bus.addQuestion(record.id, question));
    await this.publish(record.id, EVENT.questions, JSON.stringify(summary));
    return question;
  }

  questions(record: ChannelRecord): Promise<Question[]> {
    return this.call(() => this.bus.questions(record.id));
  }

  /** Shows a question on the slideshow (and to followers), or dismisses it. */
  async moderate(record: ChannelRecord, questionId: string, status: 'shown' | 'dismissed'): Promise<void> {
    const r = await this.call(() => this.bus.moderate(record.id, questionId, status));
    if (!r) throw new HubError('not_found', 'no such question');
    await this.publish(record.id, EVENT.spotlight, JSON.stringify({ question: r.spotlight }));
    await this.publish(record.id, EVENT.questions, JSON.stringify(r.summary));
  }

  async setQuestionsOpen(record: ChannelRecord, open: boolean): Promise<void> {
    const summary = await this.call(() => this.bus.setQuestionsOpen(record.id, open));
    await this.publish(record.id, EVENT.questions, JSON.stringify(summary));
  }

  /** A reaction for a brief burst on the slideshow; never kept. */
  react(record: ChannelRecord, kind: ReactionKind): Promise<PublishResult> {
    return this.publish(record.id, EVENT.reaction, JSON.stringify({ kind }));
  }

  /**
   * Opens a stream: the retry hint, then a snapshot of the current state, then
   * every command after `lastEventId` that is still in the history and not
   * stale (see `stale`). State and presence events are not replayed, because
   * the snapshot already supersedes them. `open` is called only once the limits have passed and the snapshot
   * is read, so a refusal can still be a plain 4xx. With `only`, the stream
   * carries just those events after its snapshot (replayed commands too).
   */
  async subscribe(
    record: ChannelRecord,
    open: Sink | (() => Sink),
    ip: string,
    lastEventId: number | 'unknown' | undefined,
    only: ReadonlySet<string> | null = null,
    keyHolder: KeyHolder | false = false,
  ): Promise<() => void> {
    const local = this.localChannel(record.id);
    // The deck and its phones have slots of their own: the room's streams,
    // however many, never lock the talk's own links out of its channel.
    if (keyHolder) {
      // A holder at its share makes room with its own oldest stream: a phone
      // that changed networks reconnects while its old connection, which
      // nothing has told the server is dead, still counts.
      if ((local.holders.get(keyHolder.hash) ?? 0) >= (keyHolder.deck ? DECK_STREAMS : PHONE_STREAMS)) this.endOldest(local, keyHolder.hash);
      else if (!keyHolder.deck && local.keyHolders - (local.holders.get(record.deckHash) ?? 0) >= KEY_HOLDER_STREAMS) {
        throw new HubError('too_many_subscribers', 'this channel has too many open streams');
      }
    } else {
      if (local.subscribers.size - local.keyHolders >= this.limits.maxSubscribersPerChannel) {
        throw new HubError('too_many_subscribers', 'this channel has too many open streams');
      }
      if ((this.perIp.get(ip) ?? 0) >= this.limits.maxSubscribersPerIp) {
        throw new HubError('too_many_subscribers_ip', 'too many open streams from this address');
      }
    }
    // Listed before the snapshot is read, so nothing published meanwhile is missed: it waits in `pending`.
    const holder = keyHolder ? keyHolder.hash : null;
    const sub: Subscriber = {
      sink: null,
      deck: keyHolder ? keyHolder.deck : false,
      holder,
      ip,
      only,
      beats: only?.has(EVENT.beat) ?? false,
      pending: [],
      commandsUpTo: 0,
      othersUpTo: 0,
      stalledBeats: 0,
    };
    local.subscribers.add(sub);
    if (holder !== null) {
      local.keyHolders++;
      local.holders.set(holder, (local.holders.get(holder) ?? 0) + 1);
    } else this.perIp.set(ip, (this.perIp.get(ip) ?? 0) + 1);
    if (sub.deck) this.slideshowOpened(record.id);
    this.subscriberCount++;
    let open_ = true;
    const unsubscribe = () => {
      if (!open_) return;
      open_ = false;
      local.subscribers.delete(sub);
      this.quick.delete(sub);
      this.subscriberCount--;
      if (sub.deck) this.slideshowClosed(record.id);
      if (holder !== null) {
        local.keyHolders--;
        const left = (local.holders.get(holder) ?? 1) - 1;
        if (left > 0) local.holders.set(holder, left);
        else local.holders.delete(holder);
      } else {
        const left = (this.perIp.get(ip) ?? 1) - 1;
        if (left > 0) this.perIp.set(ip, left);
        else this.perIp.delete(ip);
      }
      if (local.subscribers.size === 0) void this.bus.touch([record.id]).catch(() => undefined);
    };

    let fresh: ChannelRecord;
    let replay: BusEvent[] = [];
    let resumable = false;
    /** Commands up to this id are in the snapshot's past or in the replay. */
    let replayedUpTo = 0;
    let questions: Question[];
    try {
      fresh = await this.get(record.id);
      // Revoked since its token was read: the stream ends as it opens (see below), and reconnects as one of the room's.
      if (holder !== null && !sub.deck && !fresh.controllers.includes(holder)) local.subscribers.delete(sub);
      replayedUpTo = fresh.seq;
      if (typeof lastEventId === 'number') {
        const history = await this.call(() => this.bus.since(record.id, lastEventId));
        resumable = history.complete;
        replay = history.events.filter((ev) => carries(sub, ev.event) && !this.stale(ev));
        if (resumable) replayedUpTo = Math.max(replayedUpTo, history.last);
      }
      questions = await this.call(() => this.bus.questions(record.id));
    } catch (err) {
      unsubscribe();
      throw err;
    }
    const snapshot: Snapshot = {
      state: fresh.state && withoutNotes(fresh.state),
      slides: fresh.slides,
      presence: presenceOf(fresh),
      gap: lastEventId !== undefined && !resumable,
      questions: summaryOf(fresh.questionsOpen, questions),
      spotlight: fresh.spotlight,
      slideshow: fresh.slideshow,
    };
    let sink: Sink;
    try {
      sink = typeof open === 'function' ? open() : open;
    } catch (err) {
      unsubscribe();
      throw err;
    }
    if (!open_ || !local.subscribers.has(sub)) {
      // The client went away, or the hub closed, while the snapshot was read.
      sink.end();
      return unsubscribe;
    }
    sink.write(this.retryFrame);
    // With a replay to follow, the snapshot carries no id, so the browser's
    // Last-Event-ID ends on the last replayed command rather than skipping it.
    sink.write(encodeEvent({ event: EVENT.snapshot, id: replay.length ? undefined : fresh.seq, data: JSON.stringify(snapshot) }));
    for (const ev of replay) sink.write(this.frame(ev));
    sub.commandsUpTo = replayedUpTo;
    sub.othersUpTo = fresh.seq;
    // What arrived meanwhile, unless the snapshot or the replay already has it; `write` holds later events to the same bounds.
    for (const p of sub.pending ?? []) if (!covers(sub, p.id, p.command)) sink.write(p.frame);
    sub.pending = null;
    // The first beat at once: the client learns how often to expect one before it has to judge a silence.
    if (sub.beats && holder !== null && this.holderBeatFrame) {
      sink.write(this.holderBeatFrame);
      this.quick.set(sub, local);
    } else if (sub.beats) sink.write(this.beatFrame);
    sub.sink = sink;
    return unsubscribe;
  }

  /**
   * Sends one event to every open stream of this process, unnumbered and not
   * kept: it is news for whoever is connected now (the deck file changed), not
   * part of any channel's history.
   */
  broadcast(event: string, data: string): number {
    const frame = encodeEvent({ event, data });
    let n = 0;
    for (const ch of this.local.values()) {
      for (const sub of ch.subscribers) {
        if (!carries(sub, event)) continue;
        if (sub.sink) sub.sink.write(frame);
        else sub.pending?.push({ id: Number.MAX_SAFE_INTEGER, command: false, frame });
        n++;
      }
    }
    return n;
  }

  /** Keeps channels with open streams alive, and drops idle ones (the memory bus; Redis expires keys by itself). */
  async sweep(): Promise<number> {
    const active = [...this.local].filter(([, ch]) => ch.subscribers.size > 0).map(([id]) => id);
    for (const [id, ch] of this.local) if (ch.subscribers.size === 0) this.local.delete(id);
    await this.call(() => this.bus.touch(active));
    return this.bus instanceof MemoryBus ? this.bus.sweep() : 0;
  }

  /**
   * After an outage of the link to other instances: what they published
   * meanwhile never reached this process. Missed commands come from the
   * history; the deck's current state is sent once, as the latest state event.
   * Live events that arrive meanwhile are held and follow in order: written
   * first, they would move `lastId` past the missed ones, which would then be
   * skipped (and the state with them). A channel the store no longer has
   * (Redis came back empty) has its streams ended, so every client
   * reconnects and the slideshow re-registers it with its deck key on the way.
   */
  async catchUp(): Promise<void> {
    let failure: unknown;
    for (const [id, local] of [...this.local]) {
      if (local.subscribers.size === 0) {
        // Its streams left during the outage: nothing to catch up, and a stream joining later must not wait on a hold.
        this.local.delete(id);
        continue;
      }
      // Usually set already, when the link dropped (onOutage).
      local.held ??= [];
      const from = Math.max(local.lastId, joinedAt(local));
      try {
        const history = await this.call(() => this.bus.since(id, from));
        if (!history.complete) {
          // What was missed has already left the history (more was published
          // meanwhile than it keeps, or the store came back with less): the
          // streams cannot be made whole here. Ended, each client reconnects
          // with its Last-Event-ID and gets a snapshot that says so (`gap`).
          this.endStreams(id, local);
          continue;
        }
        // Read after the history, so it holds every state change up to history.last (and maybe a few after).
        const record = await this.get(id);
        // A phone revoked meanwhile, on another instance: its streams go with its key.
        this.dropRevoked(local, record);
        for (const ev of history.events) if (ev.id > local.lastId && !this.stale(ev)) this.write(local, ev);
        // Labelled history.last, not record.seq: events after history.last
        // are relayed live, and a stream must never see ids go back. Compared
        // with where the catch-up started, not with `lastId`: the replayed
        // commands may reach history.last, and a state reported before the
        // last of them was missed all the same.
        if (history.last > from) {
          if (record.state) this.write(local, { id: history.last, event: EVENT.state, data: JSON.stringify({ state: withoutNotes(record.state) }) });
          this.write(local, { id: history.last, event: EVENT.presence, data: JSON.stringify(presenceOf(record)) });
          // The audience side too: a question shown or asked meanwhile.
          const questions = await this.call(() => this.bus.questions(id));
          this.write(local, { id: history.last, event: EVENT.questions, data: JSON.stringify(summaryOf(record.questionsOpen, questions)) });
          this.write(local, { id: history.last, event: EVENT.spotlight, data: JSON.stringify({ question: record.spotlight }) });
          // A slideshow that left or came back meanwhile, on another instance.
          this.write(local, { id: history.last, event: EVENT.slideshow, data: slideshowData(record.slideshow) });
        }
        // Relayed events up to history.last may still be on their way (the
        // two links are read in no set order): kept commands among them were
        // just written from history, and the rest are superseded.
        local.caughtUpTo = Math.max(local.caughtUpTo, history.last);
      } catch (err) {
        // Gone from the store, or unreadable just now (a store that came back
        // slow, a failover): either way what was missed cannot be written
        // here, and events after it must not go out as if nothing were
        // missing. Ended, each client resumes with its Last-Event-ID, from
        // the history, once the store answers.
        this.endStreams(id, local);
        // One channel failing must not leave the others without their catch-up.
        if (!(err instanceof HubError && err.kind === 'not_found')) failure ??= err;
      } finally {
        const held = local.held;
        local.held = null;
        for (const ev of held ?? []) if (ev.id > Math.max(local.lastId, local.caughtUpTo)) this.write(local, ev);
      }
    }
    if (failure !== undefined) throw failure;
  }

  /** Ends every stream of a channel, as close() does for all of them, and forgets what this process knew of it. */
  private endStreams(id: string, local: LocalChannel): void {
    for (const sub of local.subscribers) sub.sink?.end();
    // A stream still reading its snapshot sees it is no longer listed and ends itself.
    local.subscribers.clear();
    // Brought back, the channel may count again from a lower id.
    this.local.delete(id);
  }

  private async ensureRoom(): Promise<void> {
    if ((await this.call(() => this.bus.count())) < this.limits.maxChannels) return;
    await this.sweep();
    if ((await this.call(() => this.bus.count())) >= this.limits.maxChannels) {
      throw new HubError('too_many_channels', 'this server holds as many channels as it may');
    }
  }

  /** Appends to the bus, then writes to this process's own streams (other instances hear it from the bus). */
  private async publish(id: string, event: string, data: string, opts: AppendOptions = {}): Promise<PublishResult> {
    const at = this.bus.clock();
    const r = await this.call(() => this.bus.append(id, event, data, opts));
    return this.published(id, event, data, r, at);
  }

  /** `publish` at once, on a bus that holds its store in this process. */
  private publishNow(id: string, event: string, data: string, opts: AppendOptions): PublishResult {
    const local = this.bus.local;
    if (!local) throw new Error('commandNow needs a bus that answers at once; use command');
    const at = this.bus.clock();
    let r: AppendResult;
    try {
      r = local.appendNow(id, event, data, opts);
    } catch (err) {
      throw this.hubError(err);
    }
    return this.published(id, event, data, r, at);
  }

  /** After an append: the event goes to this process's streams, unless it was a repeat. */
  private published(id: string, event: string, data: string, r: AppendResult, at: number): PublishResult {
    if (r.duplicate) return { eventId: r.eventId, duplicate: true, delivered: 0 };
    // With a bus that echoes this process's own events (Redis), they are
    // written when the echo arrives: the store numbers and relays events in
    // one order, but an append's answer races other instances' relayed
    // events, and writing the answer at once let a stream see ids 30, 31, 29
    // (a stream cut after 31 then resumes past 29 and never gets it).
    // `delivered` then counts the streams the echo will reach.
    const delivered = this.echoed ? (this.local.get(id)?.subscribers.size ?? 0) : this.deliver(id, { id: r.eventId, event, data, at });
    // Counted after the write: the tap's delivery does not wait for bookkeeping.
    if (event === EVENT.command) this.metrics.command();
    return { eventId: r.eventId, duplicate: false, delivered };
  }

  /**
   * A kept command too old to replay (`commandReplayMaxAgeMs`): a slideshow
   * back after a long absence starts where the deck was, instead of jumping
   * through every tap made while it was away. It counts as covered all the
   * same (the stream's position moves past it), so it is never sent later.
   */
  private stale(ev: BusEvent): boolean {
    // On the bus's clock: `at` may have been read by another instance, and a shared bus gives them all one clock.
    return ev.event === EVENT.command && ev.at !== undefined && this.bus.clock() - ev.at > this.limits.commandReplayMaxAgeMs;
  }

  private frame(ev: BusEvent): Buffer {
    return encodeEvent({ id: ev.id, event: ev.event, data: ev.data });
  }

  /** Frames the event once and writes the same Buffer to every local subscriber of the channel. */
  private deliver(id: string, ev: BusEvent): number {
    const local = this.local.get(id);
    if (!local || local.subscribers.size === 0) return 0;
    if (local.held) {
      local.held.push(ev);
      return 0;
    }
    if (ev.id <= local.caughtUpTo) return 0;
    // The phones paired may have changed (a revoke, on this instance or another): their streams go with their keys.
    if (ev.event === EVENT.presence && local.keyHolders > 0) void this.endRevokedStreams(id, local);
    return this.write(local, ev);
  }

  /**
   * Ends the streams of phones no longer paired. A revoked phone's stream
   * would otherwise stay open, in a key holder's slot, for as long as its
   * connection lasts; reopened, it is one of the room's.
   */
  private async endRevokedStreams(id: string, local: LocalChannel): Promise<void> {
    let record: ChannelRecord | null;
    try {
      record = await this.bus.get(id);
    } catch {
      // The store is away: the catch-up when it is back checks again (catchUp).
      return;
    }
    if (record) this.dropRevoked(local, record);
  }

  private dropRevoked(local: LocalChannel, record: Pick<ChannelRecord, 'controllers'>): void {
    const paired = new Set(record.controllers);
    for (const sub of local.subscribers) {
      if (sub.holder === null || sub.deck || paired.has(sub.holder)) continue;
      // One still reading its snapshot ends itself once it finds it is no longer listed.
      if (sub.sink) this.cut(local, sub, sub.sink);
      else local.subscribers.delete(sub);
    }
  }

  /** Ends a key holder's oldest stream (by when it opened), to make room for its newest. */
  private endOldest(local: LocalChannel, holder: string): void {
    for (const sub of local.subscribers) {
      if (sub.holder !== holder) continue;
      if (sub.sink) this.cut(local, sub, sub.sink);
      else local.subscribers.delete(sub);
      return;
    }
  }

  private write(local: LocalChannel, ev: BusEvent): number {
    // Across instances two events can cross on the way; a state older than
    // one already shown would move the phone backwards, so it is dropped.
    // Commands are always delivered: the deck drops a repeat by its id.
    if (ev.event === EVENT.state || ev.event === EVENT.presence || ev.event === EVENT.questions || ev.event === EVENT.spotlight || ev.event === EVENT.slideshow) {
      // Per kind: a presence event does not replace a state event, so neither may hide the other.
      if (ev.id < (local.latest.get(ev.event) ?? 0)) return 0;
      local.latest.set(ev.event, ev.id);
    }
    local.lastId = Math.max(local.lastId, ev.id);
    const frame = this.frame(ev);
    const command = ev.event === EVENT.command;
    // A pointer position is only worth showing now: a stream that still has
    // bytes queued (a slow phone, a congested link) skips it, and the newest
    // position wins once the stream has drained.
    const ephemeral = ev.event === EVENT.pointer;
    let delivered = 0;
    for (const sub of local.subscribers) {
      if (!carries(sub, ev.event)) continue;
      const sink = sub.sink;
      if (!sink) {
        if (!ephemeral) sub.pending?.push({ id: ev.id, command, frame });
        continue;
      }
      if (covers(sub, ev.id, command)) continue;
      if (ephemeral && sink.writableLength > POINTER_BACKLOG_BYTES) continue;
      // A subscriber that cannot keep up is cut loose rather than buffered
      // without bound; its EventSource reconnects and replays from history.
      if (sink.writableLength > this.limits.maxQueuedBytes) {
        this.cut(local, sub, sink);
        continue;
      }
      sink.write(frame);
      delivered++;
    }
    // On the bus's clock, which `at` was read on here or on another instance.
    // Each instance knows Redis's clock only to within half a round trip, so
    // an event from another can look a little younger than zero: counted as 0.
    if (ev.at !== undefined) this.metrics.delivered(Math.max(0, this.bus.clock() - ev.at) / 1000, delivered);
    return delivered;
  }

  private localChannel(id: string): LocalChannel {
    let ch = this.local.get(id);
    if (!ch) this.local.set(id, (ch = { subscribers: new Set(), lastId: 0, latest: new Map(), held: null, caughtUpTo: 0, keyHolders: 0, holders: new Map() }));
    return ch;
  }

  /** Runs a bus call, turning "the channel is gone" and "the bus is down" into HubErrors. */
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.hubError(err);
    }
  }

  private hubError(err: unknown): unknown {
    if (err instanceof ChannelGone) return new HubError('not_found', 'unknown channel');
    if (err instanceof ControllersFull) return controllersFull();
    if (err instanceof NotAuthor) return new HubError('not_author', 'controller key required');
    if (err instanceof BusUnavailable) return new HubError('unavailable', 'the channel store is unavailable; try again shortly');
    return err;
  }

  /** A stream of the slideshow's opened here: said at once, unless this process's word already stands. */
  private slideshowOpened(id: string): void {
    if (this.closed) return;
    let link = this.slideshowLinks.get(id);
    if (!link) this.slideshowLinks.set(id, (link = { streams: 0, grace: null, said: false }));
    link.streams++;
    if (link.grace) {
      // Back within its grace: the phones never heard it was gone.
      clearTimeout(link.grace);
      link.grace = null;
    }
    if (!link.said) void this.saySlideshow(id);
  }

  /**
   * A stream of the slideshow's closed here. The last one is said gone only
   * once slideshowAwayMs have passed without another: a slideshow's stream
   * is cut and reopened on every Wi-Fi hiccup and server restart, and a
   * phone told "not connected" each time would learn to ignore it.
   */
  private slideshowClosed(id: string): void {
    const link = this.slideshowLinks.get(id);
    // Closing, this process says nothing of the slideshow leaving (see close).
    if (!link || this.closed) return;
    link.streams--;
    if (link.streams > 0 || link.grace) return;
    link.grace = setTimeout(() => {
      link.grace = null;
      void this.saySlideshow(id);
    }, this.limits.slideshowAwayMs);
    link.grace.unref();
  }

  /**
   * Tells the bus whether this process holds a slideshow stream on the
   * channel (or one in its grace), for the sum over every instance, and
   * writes the `slideshow` event when that sum changed. Failures are left to
   * the next heartbeat, which says it again.
   */
  private async saySlideshow(id: string): Promise<void> {
    if (this.closed) return;
    const link = this.slideshowLinks.get(id);
    const open = link !== undefined && (link.streams > 0 || link.grace !== null);
    if (link) link.said = open;
    // Said gone: nothing of it is left to keep, unless a stream opens while the bus answers.
    if (link && !open) this.slideshowLinks.delete(id);
    const at = this.bus.clock();
    try {
      const r = await this.bus.slideshowStreams(id, open, at + SLIDESHOW_WORD_BEATS * this.limits.heartbeatMs);
      if (r.eventId !== null) this.published(id, EVENT.slideshow, slideshowData(r.connected), { eventId: r.eventId, duplicate: false }, at);
    } catch {
      // The store is away, or the channel gone: the next heartbeat says it again.
      if (link && this.slideshowLinks.get(id) === link) link.said = false;
    }
  }

  private heartbeat(): void {
    // This process's word on the slideshow, said again before it lapses;
    // and, where this process has streams, summed again, so the word of an
    // instance that died unsaid drops out.
    for (const id of this.slideshowLinks.keys()) void this.saySlideshow(id);
    for (const [id, ch] of this.local) if (ch.subscribers.size > 0 && !this.slideshowLinks.has(id)) void this.saySlideshow(id);
    for (const ch of this.local.values()) {
      for (const sub of ch.subscribers) {
        const sink = sub.sink;
        if (!sink) continue;
        // Bytes still queued here mean the socket's kernel buffer is full: its
        // reader has not taken what was sent (megabytes, on Linux). Queued at
        // STALLED_BEATS heartbeats in a row, the stream is not being read, and
        // is cut: the kernel's buffer goes with it, and a live client
        // reconnects and replays what it missed.
        if (sink.writableLength === 0) sub.stalledBeats = 0;
        else if (++sub.stalledBeats >= STALLED_BEATS) {
          this.cut(ch, sub, sink);
          continue;
        }
        // A quick-beating stream has its beats from quickBeat; this one would say the slower interval.
        if (!this.quick.has(sub)) sink.write(sub.beats ? this.beatFrame : HEARTBEAT);
      }
    }
  }

  /**
   * The key holders' quicker beat. A stream with bytes still queued gets
   * none: a beat behind them adds nothing, and the heartbeat judges whether
   * it is stalled. One no longer listed in its channel (cut, revoked, or its
   * channel's streams ended) has its sink ended or ending, and is dropped.
   */
  private quickBeat(): void {
    const frame = this.holderBeatFrame;
    if (!frame) return;
    for (const [sub, local] of this.quick) {
      if (!local.subscribers.has(sub)) this.quick.delete(sub);
      else if (sub.sink && sub.sink.writableLength === 0) sub.sink.write(frame);
    }
  }

  /** Drops a stream that is not keeping up; its client reconnects and replays from history. */
  private cut(local: LocalChannel, sub: Subscriber, sink: Sink): void {
    // Out of the set at once: until the dropped stream has closed, any
    // further write to it would throw ERR_STREAM_WRITE_AFTER_END.
    local.subscribers.delete(sub);
    if (sink.destroy) sink.destroy();
    else sink.end();
  }
}
