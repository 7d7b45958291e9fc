// The channel hub: channels, their secrets, their latest state, a bounded
// replay history and the open streams. It knows nothing of HTTP routing: a
// subscriber is anything with `write`, `end` and `writableLength` (a Node
// ServerResponse in practice), and failures are `HubError`s that the HTTP layer
// maps to status codes in one table.
//
// The write path is hand-written for speed: each event is framed once into a
// Buffer and that same Buffer is written to every subscriber.
import {
  EVENT,
  type Command,
  type DeckState,
  type Presence,
  type Register,
  type SlideRef,
  type Snapshot,
  type StateReport,
} from '../protocol/messages';
import { encodeEvent, formatComment } from './sse';
import { channelIdFor, hashSecret, matchesHash, newSecret, sameHash } from './keys';
import type { Config } from './config';

export type HubErrorKind =
  | 'not_found'
  | 'forbidden'
  | 'code_spent'
  | 'too_many_channels'
  | 'too_many_subscribers'
  | 'too_many_subscribers_ip';

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
  /** Drops the connection at once, queued bytes and all (a ServerResponse has it). */
  destroy?(): void;
  readonly writableLength: number;
}

interface Subscriber {
  sink: Sink;
  ip: string;
}

interface HistoryEntry {
  id: number;
  at: number;
  frame: Buffer;
}

export type HubLimits = Pick<
  Config,
  | 'heartbeatMs'
  | 'retryMs'
  | 'historyMax'
  | 'historyMaxAgeMs'
  | 'channelTtlMs'
  | 'maxChannels'
  | 'maxSubscribersPerChannel'
  | 'maxSubscribersPerIp'
  | 'maxQueuedBytes'
>;

/** Recent command ids remembered per channel to drop retried duplicates. */
const DEDUP_WINDOW = 1024;
const HEARTBEAT = Buffer.from(formatComment());

export class Channel {
  /** Id of the last event sent on this channel; ids are monotonic per channel. */
  seq: number;
  /** Commands after this id are all still in `history`; older ids cannot be replayed. */
  floor: number;
  readonly history: HistoryEntry[] = [];
  readonly subscribers = new Set<Subscriber>();
  /** Hashes of paired controller keys. */
  readonly controllers = new Set<string>();
  /** Hash of the one open pairing code, if any. */
  pairCodeHash: string | null = null;
  state: DeckState | null = null;
  slides: SlideRef[] | null = null;
  /** Command id -> event id, oldest first, for duplicate detection. */
  readonly recentCommands = new Map<string, number>();
  lastActive: number;

  constructor(
    readonly id: string,
    readonly deckHash: string,
    seq: number,
    now: number,
  ) {
    this.seq = seq;
    this.floor = seq;
    this.lastActive = now;
  }

  presence(): Presence {
    return { controllers: this.controllers.size, pairingOpen: this.pairCodeHash !== null };
  }
}

export interface CreatedChannel {
  channel: Channel;
  deckKey: string;
  pairCode: string | null;
}

export interface PublishResult {
  eventId: number;
  duplicate: boolean;
  delivered: number;
}

export class Hub {
  private readonly channels = new Map<string, Channel>();
  private readonly perIp = new Map<string, number>();
  private subscriberCount = 0;
  private timers: NodeJS.Timeout[] = [];
  private readonly retryFrame: Buffer;

  constructor(
    private readonly limits: HubLimits,
    private readonly now: () => number = Date.now,
  ) {
    this.retryFrame = Buffer.from(`retry: ${limits.retryMs}\n\n`);
  }

  /** Starts heartbeats and the idle-channel sweep. Timers never hold the process open. */
  start(): void {
    const beat = setInterval(() => this.heartbeat(), this.limits.heartbeatMs);
    const sweep = setInterval(() => this.sweep(), Math.min(this.limits.channelTtlMs, 60_000));
    beat.unref();
    sweep.unref();
    this.timers.push(beat, sweep);
  }

  /** Ends every stream so clients reconnect at once (to this process's successor), and stops timers. */
  close(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    for (const ch of this.channels.values()) {
      for (const sub of ch.subscribers) sub.sink.end();
      // A request still in flight must not write to an ended stream (see publish).
      ch.subscribers.clear();
    }
  }

  get(id: string): Channel {
    const ch = this.channels.get(id);
    if (!ch) throw new HubError('not_found', 'unknown channel');
    return ch;
  }

  stats(): { channels: number; subscribers: number } {
    return { channels: this.channels.size, subscribers: this.subscriberCount };
  }

  create(): CreatedChannel {
    this.ensureRoom();
    const deckKey = newSecret();
    const id = channelIdFor(deckKey);
    const channel = new Channel(id, hashSecret(deckKey), 0, this.now());
    this.channels.set(id, channel);
    return { channel, deckKey, pairCode: this.issuePairCode(channel) };
  }

  /**
   * Brings back a channel after a server restart, or refreshes a live one on a
   * slideshow reload. Only the deck key's holder can do either: for a live
   * channel the key is checked against its hash, for an unknown one the id
   * must derive from the key.
   */
  register(id: string, deckKey: string, body: Register): CreatedChannel {
    let channel = this.channels.get(id);
    if (channel) {
      if (!matchesHash(deckKey, channel.deckHash)) throw new HubError('forbidden', 'wrong deck key');
    } else {
      if (channelIdFor(deckKey) !== id) throw new HubError('forbidden', 'wrong deck key');
      this.ensureRoom();
      channel = new Channel(id, hashSecret(deckKey), body.lastEventId, this.now());
      for (const h of body.controllers) channel.controllers.add(h);
      this.channels.set(id, channel);
    }
    if (body.report) this.applyReport(channel, body.report);
    channel.lastActive = this.now();
    // A deck with no phone yet always gets a fresh code to show; a paired deck shows the follow QR.
    const pairCode = channel.controllers.size === 0 ? this.issuePairCode(channel) : null;
    return { channel, deckKey, pairCode };
  }

  isDeck(channel: Channel, key: string | undefined): boolean {
    return key !== undefined && matchesHash(key, channel.deckHash);
  }

  /** Commands may come from a paired controller, or from the deck key's holder (a script of the presenter's). */
  canCommand(channel: Channel, key: string | undefined): boolean {
    if (key === undefined) return false;
    // Hashed once; then every stored hash is compared, so timing does not reveal which one matched.
    const presented = hashSecret(key);
    let ok = sameHash(presented, channel.deckHash);
    for (const h of channel.controllers) ok = sameHash(presented, h) || ok;
    return ok;
  }

  /** Issues a new one-time pairing code; any earlier unspent one stops working. */
  issuePairCode(channel: Channel): string {
    const code = newSecret();
    channel.pairCodeHash = hashSecret(code);
    this.publish(channel, EVENT.presence, JSON.stringify(channel.presence()), false);
    return code;
  }

  /** Exchanges the open pairing code for a controller key, once. */
  pair(channel: Channel, code: string): { controllerKey: string; controllerHash: string } {
    if (channel.pairCodeHash === null || !matchesHash(code, channel.pairCodeHash)) {
      throw new HubError('code_spent', 'this pairing code has already been used or replaced');
    }
    channel.pairCodeHash = null;
    const controllerKey = newSecret();
    const controllerHash = hashSecret(controllerKey);
    channel.controllers.add(controllerHash);
    this.publish(channel, EVENT.presence, JSON.stringify(channel.presence()), false);
    return { controllerKey, controllerHash };
  }

  /** Revokes one controller by its hash, or all of them. */
  revoke(channel: Channel, controllerHash?: string): number {
    let n = 0;
    if (controllerHash === undefined) {
      n = channel.controllers.size;
      channel.controllers.clear();
    } else if (channel.controllers.delete(controllerHash)) n = 1;
    this.publish(channel, EVENT.presence, JSON.stringify(channel.presence()), false);
    return n;
  }

  /** Publishes a command unless its id was seen recently (a retried POST). */
  command(channel: Channel, cmd: Command): PublishResult {
    const seen = channel.recentCommands.get(cmd.id);
    if (seen !== undefined) return { eventId: seen, duplicate: true, delivered: 0 };
    const { eventId, delivered } = this.publish(channel, EVENT.command, JSON.stringify(cmd), true);
    channel.recentCommands.set(cmd.id, eventId);
    if (channel.recentCommands.size > DEDUP_WINDOW) {
      const oldest = channel.recentCommands.keys().next();
      if (!oldest.done) channel.recentCommands.delete(oldest.value);
    }
    return { eventId, duplicate: false, delivered };
  }

  report(channel: Channel, report: StateReport): PublishResult {
    this.applyReport(channel, report);
    const body: { state: DeckState; cause?: string; slides?: SlideRef[] } = { state: report.state };
    if (report.cause) body.cause = report.cause;
    if (report.slides) body.slides = report.slides;
    const { eventId, delivered } = this.publish(channel, EVENT.state, JSON.stringify(body), false);
    return { eventId, duplicate: false, delivered };
  }

  /**
   * Opens a stream: the retry hint, then a snapshot of the current state, then
   * every command after `lastEventId` that is still in the history. State and
   * presence events are not replayed, because the snapshot already supersedes them.
   */
  subscribe(channel: Channel, to: Sink | (() => Sink), ip: string, lastEventId: number | 'unknown' | undefined): () => void {
    if (channel.subscribers.size >= this.limits.maxSubscribersPerChannel) {
      throw new HubError('too_many_subscribers', 'this channel has too many open streams');
    }
    const fromIp = this.perIp.get(ip) ?? 0;
    if (fromIp >= this.limits.maxSubscribersPerIp) {
      throw new HubError('too_many_subscribers_ip', 'too many open streams from this address');
    }
    this.trimHistory(channel);
    const resumable = typeof lastEventId === 'number' && lastEventId >= channel.floor && lastEventId <= channel.seq;
    const replay = resumable ? channel.history.filter((e) => e.id > lastEventId) : [];
    const snapshot: Snapshot = {
      state: channel.state,
      slides: channel.slides,
      presence: channel.presence(),
      gap: lastEventId !== undefined && !resumable,
    };
    // A factory opens the stream only once the limits have passed, so a refusal can still be a plain 4xx.
    const sink = typeof to === 'function' ? to() : to;
    sink.write(this.retryFrame);
    // With a replay to follow, the snapshot carries no id, so the browser's
    // Last-Event-ID ends on the last replayed command rather than skipping it.
    sink.write(
      encodeEvent({ event: EVENT.snapshot, id: replay.length ? undefined : channel.seq, data: JSON.stringify(snapshot) }),
    );
    for (const e of replay) sink.write(e.frame);

    const sub: Subscriber = { sink, ip };
    channel.subscribers.add(sub);
    channel.lastActive = this.now();
    this.perIp.set(ip, fromIp + 1);
    this.subscriberCount++;
    let open = true;
    return () => {
      if (!open) return;
      open = false;
      channel.subscribers.delete(sub);
      channel.lastActive = this.now();
      this.subscriberCount--;
      const left = (this.perIp.get(ip) ?? 1) - 1;
      if (left > 0) this.perIp.set(ip, left);
      else this.perIp.delete(ip);
    };
  }

  /**
   * Sends one event to every open stream on every channel, unnumbered and not
   * kept: it is news for whoever is connected now (the deck file changed), not
   * part of any channel's history.
   */
  broadcast(event: string, data: string): number {
    const frame = encodeEvent({ event, data });
    let n = 0;
    for (const ch of this.channels.values()) {
      for (const sub of ch.subscribers) {
        sub.sink.write(frame);
        n++;
      }
    }
    return n;
  }

  /** Drops channels nobody has used for the TTL. */
  sweep(): number {
    const cutoff = this.now() - this.limits.channelTtlMs;
    let dropped = 0;
    for (const [id, ch] of this.channels) {
      if (ch.subscribers.size === 0 && ch.lastActive < cutoff) {
        this.channels.delete(id);
        dropped++;
      }
    }
    return dropped;
  }

  private ensureRoom(): void {
    if (this.channels.size >= this.limits.maxChannels) {
      this.sweep();
      if (this.channels.size >= this.limits.maxChannels) {
        throw new HubError('too_many_channels', 'this server holds as many channels as it may');
      }
    }
  }

  private applyReport(channel: Channel, report: StateReport): void {
    channel.state = report.state;
    if (report.slides) channel.slides = report.slides;
  }

  /** Frames the event once and writes the same Buffer to every subscriber. */
  private publish(channel: Channel, event: string, data: string, keep: boolean): { eventId: number; delivered: number } {
    const eventId = ++channel.seq;
    const frame = encodeEvent({ id: eventId, event, data });
    const at = this.now();
    channel.lastActive = at;
    if (keep) {
      channel.history.push({ id: eventId, at, frame });
      if (channel.history.length > this.limits.historyMax) this.dropOldest(channel);
    }
    let delivered = 0;
    for (const sub of channel.subscribers) {
      // A subscriber that cannot keep up is cut loose rather than buffered
      // without bound; its EventSource reconnects and replays from history.
      if (sub.sink.writableLength > this.limits.maxQueuedBytes) {
        // Out of the set at once, not on 'close': until the ended stream has
        // flushed, any further write to it (the next event, a heartbeat)
        // throws ERR_STREAM_WRITE_AFTER_END and takes the whole process down.
        channel.subscribers.delete(sub);
        // Destroy rather than end: ending would keep its queued megabyte (and
        // its stream slot) until the stuck client finally reads or times out.
        if (sub.sink.destroy) sub.sink.destroy();
        else sub.sink.end();
        continue;
      }
      sub.sink.write(frame);
      delivered++;
    }
    return { eventId, delivered };
  }

  private trimHistory(channel: Channel): void {
    const cutoff = this.now() - this.limits.historyMaxAgeMs;
    while (channel.history.length && channel.history[0]!.at < cutoff) this.dropOldest(channel);
  }

  private dropOldest(channel: Channel): void {
    const dropped = channel.history.shift();
    if (dropped) channel.floor = dropped.id;
  }

  private heartbeat(): void {
    for (const ch of this.channels.values()) for (const sub of ch.subscribers) sub.sink.write(HEARTBEAT);
  }
}
