import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ID_RE, Register, type Command, type DeckState, type Snapshot } from '../protocol/messages';
import {
  BusUnavailable,
  MemoryBus,
  type AppendResult,
  type Bus,
  type BusEvent,
  type BusLimits,
  type ChannelRecord,
  type History,
  type NewChannel,
  type SlideshowChange,
} from './bus';
import { DEFAULTS } from './config';
import { Hub, HubError, type HubErrorKind, type HubLimits, type Sink } from './hub';
import { channelIdFor, hashSecret, newSecret } from './keys';
import type { Presence, Question, QuestionsSummary, SlideRef, Spotlight } from '../protocol/wire';

/** Records what the hub writes; the hub's own Sink interface, implemented in memory. */
class RecordingSink implements Sink {
  readonly chunks: Buffer[] = [];
  ended = 0;
  writableLength = 0;
  write(chunk: Buffer): boolean {
    this.chunks.push(chunk);
    return true;
  }
  end(): void {
    this.ended++;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
  /** Parses everything written so far as SSE frames (our frames never contain CR). */
  events(): { id?: string; event?: string; data: string }[] {
    return this.text()
      .split('\n\n')
      .filter((f) => f !== '' && !f.startsWith('retry:') && !f.startsWith(':'))
      .map((frame) => {
        const ev: { id?: string; event?: string; data: string } = { data: '' };
        const data: string[] = [];
        for (const line of frame.split('\n')) {
          const [field, value] = [line.slice(0, line.indexOf(': ')), line.slice(line.indexOf(': ') + 2)];
          if (field === 'id') ev.id = value;
          else if (field === 'event') ev.event = value;
          else if (field === 'data') data.push(value);
        }
        ev.data = data.join('\n');
        return ev;
      });
  }
  /** [event, id] of every frame, the shape most assertions compare. */
  trail(): [string | undefined, string | undefined][] {
    return this.events().map((e) => [e.event, e.id]);
  }
}

/** A socket-like sink: the hub must prefer destroy() to end() for a stream that cannot keep up. */
class DestroyableSink extends RecordingSink {
  destroyed = 0;
  destroy(): void {
    this.destroyed++;
  }
}

class Clock {
  t = 1_700_000_000_000;
  readonly now = (): number => this.t;
}

const BUS_METHODS = [
  'create',
  'get',
  'setPairCode',
  'spendPairCode',
  'refuse',
  'revoke',
  'setState',
  'slideshowStreams',
  'addQuestion',
  'questions',
  'moderate',
  'setQuestionsOpen',
  'append',
  'since',
  'touch',
  'count',
] as const;
type BusMethod = (typeof BUS_METHODS)[number];

/**
 * A Bus for tests: the memory bus underneath, plus what a shared store adds
 * (events from other instances through the listener given to onRemote), a
 * way to hold a read open while the test publishes, and failures on demand.
 */
class TestBus implements Bus {
  readonly instanceId = 'test';
  readonly inner: MemoryBus;
  private listener: ((channelId: string, event: BusEvent) => void) | null = null;
  private readonly failures = new Map<BusMethod, Error>();
  /** The next get() reads at once but answers only when this settles. */
  holdNextGet: Promise<void> | null = null;
  /** The next since() waits for this before it reads. */
  holdNextSince: Promise<void> | null = null;

  constructor(limits: BusLimits, now: () => number) {
    this.inner = new MemoryBus(limits, now);
  }

  clock(): number {
    return this.inner.clock();
  }

  fail(method: BusMethod | 'all', err: Error): void {
    for (const m of method === 'all' ? BUS_METHODS : [method]) this.failures.set(m, err);
  }

  heal(): void {
    this.failures.clear();
  }

  /** Plays an event as if another instance had appended it. */
  remote(channelId: string, event: BusEvent): void {
    assert.ok(this.listener, 'the hub did not register a remote listener');
    this.listener(channelId, event);
  }

  private check(method: BusMethod): void {
    const err = this.failures.get(method);
    if (err) throw err;
  }

  async create(record: NewChannel, seq: number): Promise<boolean> {
    this.check('create');
    return this.inner.create(record, seq);
  }
  async get(id: string): Promise<ChannelRecord | null> {
    this.check('get');
    const hold = this.holdNextGet;
    this.holdNextGet = null;
    const record = await this.inner.get(id);
    if (hold) await hold;
    return record;
  }
  async setPairCode(id: string, hash: string | null): Promise<Presence> {
    this.check('setPairCode');
    return this.inner.setPairCode(id, hash);
  }
  async spendPairCode(id: string, hash: string, controllerHash: string): Promise<Presence | null> {
    this.check('spendPairCode');
    return this.inner.spendPairCode(id, hash, controllerHash);
  }
  async refuse(id: string, hash: string, controllerHash: string): Promise<boolean> {
    this.check('refuse');
    return this.inner.refuse(id, hash, controllerHash);
  }
  async revoke(id: string, controllerHash?: string): Promise<{ removed: number; presence: Presence }> {
    this.check('revoke');
    return this.inner.revoke(id, controllerHash);
  }
  async setState(id: string, state: DeckState, slides?: SlideRef[]): Promise<void> {
    this.check('setState');
    return this.inner.setState(id, state, slides);
  }
  async slideshowStreams(id: string, open: boolean, until: number): Promise<SlideshowChange> {
    this.check('slideshowStreams');
    return this.inner.slideshowStreams(id, open, until);
  }
  async addQuestion(id: string, question: Question): Promise<QuestionsSummary> {
    this.check('addQuestion');
    return this.inner.addQuestion(id, question);
  }
  async questions(id: string): Promise<Question[]> {
    this.check('questions');
    return this.inner.questions(id);
  }
  async moderate(id: string, questionId: string, status: 'shown' | 'dismissed'): Promise<{ spotlight: Spotlight['question']; summary: QuestionsSummary } | null> {
    this.check('moderate');
    return this.inner.moderate(id, questionId, status);
  }
  async setQuestionsOpen(id: string, open: boolean): Promise<QuestionsSummary> {
    this.check('setQuestionsOpen');
    return this.inner.setQuestionsOpen(id, open);
  }
  async append(id: string, event: string, data: string, opts?: { keep?: boolean; dedup?: string }): Promise<AppendResult> {
    this.check('append');
    return this.inner.append(id, event, data, opts);
  }
  async since(id: string, after: number): Promise<History> {
    this.check('since');
    const hold = this.holdNextSince;
    this.holdNextSince = null;
    if (hold) await hold;
    return this.inner.since(id, after);
  }
  onRemote(listener: (channelId: string, event: BusEvent) => void): void {
    this.listener = listener;
  }
  async touch(ids: Iterable<string>): Promise<void> {
    this.check('touch');
    return this.inner.touch(ids);
  }
  async count(): Promise<number> {
    this.check('count');
    return this.inner.count();
  }
  async ready(): Promise<boolean> {
    return this.failures.size === 0;
  }
  async close(): Promise<void> {}
}

/** A promise the test settles when it chooses. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

function makeHub(overrides: Partial<HubLimits> = {}) {
  const clock = new Clock();
  const hub = new Hub({ ...DEFAULTS, ...overrides }, clock.now);
  return { hub, clock };
}

function makeTestHub(overrides: Partial<HubLimits> = {}) {
  const clock = new Clock();
  const limits = { ...DEFAULTS, ...overrides };
  const bus = new TestBus(limits, clock.now);
  const hub = new Hub(limits, clock.now, bus);
  return { hub, bus, clock };
}

const isHubError = (kind: HubErrorKind) => (err: unknown) => {
  assert.ok(err instanceof HubError, `expected a HubError, got ${String(err)}`);
  assert.equal(err.kind, kind);
  return true;
};

let cmdCounter = 0;
const next = (): Command => ({ type: 'next', id: `cmd-${String(++cmdCounter).padStart(6, '0')}` });

const state: DeckState = {
  indexh: 1,
  indexv: 0,
  indexf: -1,
  fragments: 0,
  paused: false,
  position: 2,
  total: 5,
  isFirst: false,
  isLast: false,
  title: 'Two',
  notes: 'Mention the pager.',
  nextTitle: 'Three',
};
/** The state as a stream carries it: without the speaker notes, which the hub keeps for key holders. */
const { notes: stateNotes, ...onStream } = state;

const snapshotOf = (sink: RecordingSink): Snapshot => {
  const snap = sink.events().find((e) => e.event === 'snapshot');
  assert.ok(snap, 'no snapshot written');
  return JSON.parse(snap.data) as Snapshot;
};

/** Lets every settled promise run its continuations (the memory bus never waits on I/O). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// ------------------------------------------------------------------ channels and secrets

test('create derives the channel id from the deck key and keeps only hashes', async () => {
  const { hub } = makeHub();
  const a = await hub.create();
  const b = await hub.create();
  assert.equal(a.channel.id, channelIdFor(a.deckKey));
  assert.match(a.channel.id, ID_RE);
  assert.notEqual(a.channel.id, b.channel.id);
  assert.notEqual(a.deckKey, b.deckKey);
  // 32 characters of a 64-letter alphabet: 192 bits, well over 128.
  for (const secret of [a.deckKey, a.pairCode ?? '']) assert.match(secret, /^[A-Za-z0-9_-]{32}$/);
  assert.notEqual(a.deckKey, a.pairCode);
  assert.equal(a.channel.deckHash, hashSecret(a.deckKey));
  assert.equal(a.channel.pairCodeHash, hashSecret(a.pairCode ?? ''));
  assert.deepEqual(a.channel.controllers, []);
  assert.deepEqual(await hub.get(a.channel.id), a.channel);
  assert.equal(await hub.bus.count(), 2);
  assert.deepEqual(hub.stats(), { channels: 0, subscribers: 0 }, 'stats count open streams, not channels');
});

test('get of an unknown channel throws not_found', async () => {
  const { hub } = makeHub();
  await assert.rejects(hub.get('AAAAAAAAAAAAAAAAAAAAAA'), isHubError('not_found'));
});

// ------------------------------------------------------------------ subscribe

test('subscribe writes the retry hint, then a snapshot carrying the current id', async () => {
  const { hub } = makeHub({ retryMs: 1_234 });
  const { channel } = await hub.create();
  const sink = new RecordingSink();
  await hub.subscribe(channel, sink, '10.0.0.1', undefined);
  assert.equal(sink.chunks.length, 2);
  assert.equal(sink.chunks[0]?.toString('utf8'), 'retry: 1234\n\n');
  // Creation issued a pairing code, which published presence as event 1.
  const expected: Snapshot = {
    state: null,
    slides: null,
    presence: { controllers: 0, pairingOpen: true },
    gap: false,
    questions: { open: true, pending: 0 },
    spotlight: null,
    slideshow: false,
  };
  assert.equal(sink.chunks[1]?.toString('utf8'), `id: 1\nevent: snapshot\ndata: ${JSON.stringify(expected)}\n\n`);
  assert.deepEqual(hub.stats(), { channels: 1, subscribers: 1 });
});

test('the snapshot carries the latest state and outline', async () => {
  const { hub } = makeHub();
  const { channel } = await hub.create();
  const slides = [{ h: 0, v: 0, title: 'One' }, { h: 1, v: 0, title: 'Two' }];
  await hub.report(channel, { state, slides });
  await hub.report(channel, { state: { ...state, indexh: 2, title: 'Three' } });
  const sink = new RecordingSink();
  // A record read before the reports: the snapshot is read afresh from the bus.
  await hub.subscribe(channel, sink, 'ip', undefined);
  const snap = snapshotOf(sink);
  assert.equal(snap.state?.title, 'Three');
  // A report without an outline keeps the last one.
  assert.deepEqual(snap.slides, slides);
  assert.equal(sink.events()[0]?.id, String((await hub.get(channel.id)).seq));
  assert.equal(sink.events()[0]?.id, '3');
});

test('the stream is opened only after the limits passed and the snapshot was read', async () => {
  const { hub, bus } = makeTestHub();
  const { channel } = await hub.create();
  const held = gate();
  bus.holdNextGet = held.promise;
  let opened = 0;
  const sink = new RecordingSink();
  const joining = hub.subscribe(
    channel,
    () => {
      opened++;
      return sink;
    },
    'ip',
    undefined,
  );
  await settle();
  assert.equal(opened, 0);
  held.open();
  await joining;
  assert.equal(opened, 1);
  assert.deepEqual(sink.trail(), [['snapshot', '1']]);
});

// ------------------------------------------------------------------ publish

test('publish writes the same Buffer instance to every subscriber', async () => {
  const { hub, clock } = makeHub();
  const { channel } = await hub.create();
  const sinks = [new RecordingSink(), new RecordingSink(), new RecordingSink()];
  for (const [i, s] of sinks.entries()) await hub.subscribe(channel, s, `10.0.0.${i}`, undefined);
  const cmd = next();
  const result = await hub.command(channel, cmd);
  assert.deepEqual(result, { eventId: 2, duplicate: false, delivered: 3 });
  const frames = sinks.map((s) => s.chunks.at(-1));
  assert.equal(frames[0]?.toString('utf8'), `id: 2\nevent: command\ndata: ${JSON.stringify(cmd)}\n\n`);
  assert.equal(frames[1], frames[0]);
  assert.equal(frames[2], frames[0]);
  // The bus keeps the command for replay, with when it was appended.
  assert.deepEqual((await hub.bus.since(channel.id, 1)).events, [{ id: 2, event: 'command', data: JSON.stringify(cmd), at: clock.t }]);
});

test('event ids are monotonic per channel across every kind of event', async () => {
  const { hub } = makeHub();
  const a = await hub.create();
  const b = await hub.create();
  const ids = [
    (await hub.command(a.channel, next())).eventId,
    (await hub.report(a.channel, { state })).eventId,
    (await hub.command(a.channel, next())).eventId,
  ];
  const { controllerHash } = await hub.pair(a.channel, a.pairCode ?? '');
  ids.push((await hub.get(a.channel.id)).seq);
  await hub.issuePairCode(a.channel);
  ids.push((await hub.get(a.channel.id)).seq);
  await hub.revoke(a.channel, controllerHash);
  ids.push((await hub.get(a.channel.id)).seq);
  ids.push((await hub.command(a.channel, next())).eventId);
  assert.deepEqual(ids, [2, 3, 4, 5, 6, 7, 8]);
  // Channel b has its own counter.
  assert.equal((await hub.command(b.channel, next())).eventId, 2);
});

test('a command id seen before is acknowledged as a duplicate and not sent again', async () => {
  const { hub } = makeHub();
  const { channel } = await hub.create();
  const sink = new RecordingSink();
  await hub.subscribe(channel, sink, 'ip', undefined);
  const cmd = next();
  const first = await hub.command(channel, cmd);
  const written = sink.chunks.length;
  const again = await hub.command(channel, { type: 'prev', id: cmd.id });
  assert.deepEqual(again, { eventId: first.eventId, duplicate: true, delivered: 0 });
  assert.equal(sink.chunks.length, written);
  assert.equal((await hub.get(channel.id)).seq, first.eventId);
  assert.equal((await hub.bus.since(channel.id, 1)).events.length, 1);
});

test('on the memory bus a command is published and written within the call: no promise between the tap and the stream', async () => {
  const { hub } = makeHub();
  const { channel } = await hub.create();
  const sink = new RecordingSink();
  await hub.subscribe(channel, sink, 'ip', undefined);
  const head = hub.peek(channel.id);
  assert.ok(head, 'the memory bus answers at once');
  assert.equal(head.id, channel.id);
  assert.equal(head.deckHash, channel.deckHash);
  const cmd = next();
  // No await: the frame is on the stream when commandNow returns.
  const r = hub.commandNow(head, cmd);
  assert.deepEqual(r, { eventId: channel.seq + 1, duplicate: false, delivered: 1 });
  assert.deepEqual(sink.events().at(-1), { id: String(r.eventId), event: 'command', data: JSON.stringify(cmd) });
  // The same dedup and history as the awaited path.
  assert.deepEqual(hub.commandNow(head, { type: 'prev', id: cmd.id }), { eventId: r.eventId, duplicate: true, delivered: 0 });
  assert.deepEqual(await hub.command(channel, { type: 'prev', id: cmd.id }), { eventId: r.eventId, duplicate: true, delivered: 0 });
  assert.deepEqual((await hub.bus.since(channel.id, channel.seq)).events.map((e) => e.id), [r.eventId]);
  assert.throws(() => hub.peek('AAAAAAAAAAAAAAAAAAAAAA'), isHubError('not_found'));
});

test('a bus that must be awaited offers no at-once path', async () => {
  const { hub } = makeTestHub();
  const { channel } = await hub.create();
  assert.equal(hub.peek(channel.id), undefined);
  assert.throws(() => hub.commandNow(channel, next()), /needs a bus that answers at once/);
});

test('duplicate detection remembers the last 1024 command ids', async () => {
  const { hub } = makeHub();
  const { channel } = await hub.create();
  const remembered = next();
  await hub.command(channel, remembered);
  for (let i = 0; i < 1_023; i++) await hub.command(channel, next());
  assert.equal((await hub.command(channel, remembered)).duplicate, true);
  await hub.command(channel, next());
  assert.equal((await hub.command(channel, remembered)).duplicate, false);
});

test('presence changes are published to subscribers', async () => {
  const { hub } = makeHub();
  const { channel, pairCode } = await hub.create();
  const sink = new RecordingSink();
  await hub.subscribe(channel, sink, 'ip', undefined);
  await hub.pair(channel, pairCode ?? '');
  await hub.issuePairCode(channel);
  await hub.revoke(channel);
  const presence = sink.events().filter((e) => e.event === 'presence').map((e) => JSON.parse(e.data) as unknown);
  assert.deepEqual(presence, [
    { controllers: 1, pairingOpen: false },
    { controllers: 1, pairingOpen: true },
    { controllers: 0, pairingOpen: true },
  ]);
});

test('a state report is published with its cause and outline', async () => {
  const { hub } = makeHub();
  const { channel } = await hub.create();
  const sink = new RecordingSink();
  await hub.subscribe(channel, sink, 'ip', undefined);
  const slides = [{ h: 0, v: 0, title: 'One' }];
  const r = await hub.report(channel, { state, cause: 'cmd-abcdefgh', slides });
  assert.deepEqual(sink.events().at(-1), {
    id: String(r.eventId),
    event: 'state',
    data: JSON.stringify({ state: onStream, cause: 'cmd-abcdefgh', slides }),
  });
  const record = await hub.get(channel.id);
  assert.deepEqual(record.state, state, 'the hub keeps the notes');
  assert.deepEqual(hub.notes(record), { indexh: state.indexh, indexv: state.indexv, notes: stateNotes });
  assert.deepEqual(record.slides, slides);
  const history = await hub.bus.since(channel.id, 0);
  assert.deepEqual(history.events, [], 'state events are not kept for replay');
  assert.equal(history.last, r.eventId);
});

// ------------------------------------------------------------------ replay

test('resuming replays only the commands after lastEventId, and the snapshot then has no id', async () => {
  const { hub } = makeHub();
  const { channel } = await hub.create(); // event 1: presence
  const c2 = next();
  const c3 = next();
  const c5 = next();
  await hub.command(channel, c2);
  await hub.command(channel, c3);
  await hub.report(channel, { state }); // 4
  await hub.command(channel, c5);
  const sink = new RecordingSink();
  await hub.subscribe(channel, sink, 'ip', 2);
  const events = sink.events();
  assert.deepEqual(sink.trail(), [
    ['snapshot', undefined],
    ['command', '3'],
    ['command', '5'],
  ]);
  assert.equal(events[1]?.data, JSON.stringify(c3));
  assert.equal(events[2]?.data, JSON.stringify(c5));
  const snap = snapshotOf(sink);
  assert.equal(snap.gap, false);
  assert.deepEqual(snap.state, onStream, 'the snapshot stands in for the state event');
  assert.equal(sink.text().split('\n\n')[1]?.startsWith('event: snapshot\n'), true);
});

test('resuming from the latest id replays nothing and the snapshot carries that id', async () => {
  const { hub } = makeHub();
  const { channel } = await hub.create();
  await hub.command(channel, next());
  await hub.command(channel, next());
  const sink = new RecordingSink();
  await hub.subscribe(channel, sink, 'ip', 3);
  assert.deepEqual(sink.trail(), [['snapshot', '3']]);
  assert.equal(snapshotOf(sink).gap, false);
});

for (const [label, lastEventId] of [
  ['an unparseable', 'unknown'],
  ['a future', 99],
] as const) {
  test(`${label} lastEventId gives a gap and no replay`, async () => {
    const { hub } = makeHub();
    const { channel } = await hub.create();
    await hub.command(channel, next());
    await hub.command(channel, next());
    const sink = new RecordingSink();
    await hub.subscribe(channel, sink, 'ip', lastEventId);
    assert.deepEqual(sink.trail(), [['snapshot', '3']]);
    assert.equal(snapshotOf(sink).gap, true);
  });
}

test('history is bounded by count; the floor moves and older ids give a gap', async () => {
  const { hub } = makeHub({ historyMax: 3 });
  const { channel } = await hub.create(); // seq 1
  for (let i = 0; i < 5; i++) await hub.command(channel, next()); // ids 2..6
  const kept = await hub.bus.since(channel.id, 3);
  assert.deepEqual(
    kept.events.map((e) => e.id),
    [4, 5, 6],
  );
  assert.equal(kept.complete, true, 'the floor is 3: everything after it is kept');
  assert.equal((await hub.bus.since(channel.id, 2)).complete, false);

  const fromFloor = new RecordingSink();
  await hub.subscribe(channel, fromFloor, 'ip', 3);
  assert.deepEqual(
    fromFloor.events().map((e) => e.id),
    [undefined, '4', '5', '6'],
  );
  assert.equal(snapshotOf(fromFloor).gap, false);

  const tooOld = new RecordingSink();
  await hub.subscribe(channel, tooOld, 'ip', 2);
  assert.deepEqual(tooOld.trail(), [['snapshot', '6']]);
  assert.equal(snapshotOf(tooOld).gap, true);
});

test('history is bounded by age using the injected clock', async () => {
  const { hub, clock } = makeHub({ historyMaxAgeMs: 1_000 });
  const { channel } = await hub.create(); // seq 1
  await hub.command(channel, next()); // 2 at t0
  clock.t += 600;
  await hub.command(channel, next()); // 3 at t0+600
  clock.t += 600; // event 2 is now 1200 ms old, event 3 is 600 ms old

  const sink = new RecordingSink();
  await hub.subscribe(channel, sink, 'ip', 2);
  assert.deepEqual(
    sink.events().map((e) => e.id),
    [undefined, '3'],
  );
  assert.equal(snapshotOf(sink).gap, false);
  assert.deepEqual(
    (await hub.bus.since(channel.id, 2)).events.map((e) => e.id),
    [3],
  );

  const late = new RecordingSink();
  await hub.subscribe(channel, late, 'ip', 1);
  assert.equal(snapshotOf(late).gap, true);
  assert.equal(late.events().length, 1);
});

test('history exactly at the age limit is kept', async () => {
  const { hub, clock } = makeHub({ historyMaxAgeMs: 1_000 });
  const { channel } = await hub.create();
  await hub.command(channel, next());
  clock.t += 1_000;
  const sink = new RecordingSink();
  await hub.subscribe(channel, sink, 'ip', 1);
  assert.deepEqual(sink.trail(), [
    ['snapshot', undefined],
    ['command', '2'],
  ]);
});

test('a command older than commandReplayMaxAgeMs is not replayed, and the stream moves past it', async () => {
  const { hub, clock } = makeHub({ commandReplayMaxAgeMs: 30_000 });
  const { channel } = await hub.create(); // seq 1
  await hub.command(channel, next()); // 2, made while the slideshow was away
  clock.t += 20_000;
  await hub.command(channel, next()); // 3
  await hub.report(channel, { state }); // 4
  clock.t += 10_001; // 2 is now 30,001 ms old, 3 is 10,001 ms old

  const back = new RecordingSink();
  await hub.subscribe(channel, back, 'ip', 1);
  // Only the fresh tap; the state says where the deck is, so this is no gap.
  assert.deepEqual(back.trail(), [
    ['snapshot', undefined],
    ['command', '3'],
  ]);
  assert.equal(snapshotOf(back).gap, false);

  // The stale one alone: the snapshot carries the position, so a reconnect from it asks for nothing older.
  clock.t += 20_000;
  const later = new RecordingSink();
  await hub.subscribe(channel, later, 'ip', 1);
  assert.deepEqual(later.trail(), [['snapshot', '4']]);
  assert.equal(snapshotOf(later).gap, false);
  // The history still has them: only their replay as commands is withheld.
  assert.deepEqual(
    (await hub.bus.since(channel.id, 1)).events.map((e) => [e.id, e.at]),
    [
      [2, clock.t - 50_001],
      [3, clock.t - 30_001],
    ],
  );
});

test('a command exactly at commandReplayMaxAgeMs is still replayed', async () => {
  const { hub, clock } = makeHub({ commandReplayMaxAgeMs: 30_000 });
  const { channel } = await hub.create();
  await hub.command(channel, next());
  clock.t += 30_000;
  const sink = new RecordingSink();
  await hub.subscribe(channel, sink, 'ip', 1);
  assert.deepEqual(sink.trail(), [
    ['snapshot', undefined],
    ['command', '2'],
  ]);
});

// ------------------------------------------------------------------ joining while events flow

test('events published while a subscriber joins follow its snapshot, in order', async () => {
  const { hub, bus } = makeTestHub();
  const { channel } = await hub.create(); // seq 1
  const held = gate();
  // The snapshot is read now (at seq 1), and answered only after the events below.
  bus.holdNextGet = held.promise;
  const sink = new RecordingSink();
  const joining = hub.subscribe(channel, sink, 'ip', undefined);
  const c2 = next();
  const c4 = next();
  assert.equal((await hub.command(channel, c2)).delivered, 0, 'not yet written: the stream is not open');
  await hub.report(channel, { state }); // 3
  await hub.command(channel, c4);
  assert.equal(sink.chunks.length, 0);
  held.open();
  await joining;
  assert.deepEqual(sink.trail(), [
    ['snapshot', '1'],
    ['command', '2'],
    ['state', '3'],
    ['command', '4'],
  ]);
  assert.equal(snapshotOf(sink).state, null, 'the snapshot was read before the report');
  assert.equal(sink.events()[1]?.data, JSON.stringify(c2));
  // From here on events are written as they come.
  assert.equal((await hub.command(channel, next())).delivered, 1);
  assert.deepEqual(sink.trail().at(-1), ['command', '5']);
});

test('an event both replayed and published while joining is written once', async () => {
  const { hub, bus } = makeTestHub();
  const { channel } = await hub.create(); // seq 1
  await hub.command(channel, next()); // 2
  const held = gate();
  // The snapshot is read at seq 2; the history is read after commands 3 and 4.
  bus.holdNextSince = held.promise;
  const sink = new RecordingSink();
  const joining = hub.subscribe(channel, sink, 'ip', 2);
  await hub.command(channel, next());
  await hub.command(channel, next());
  held.open();
  await joining;
  assert.deepEqual(sink.trail(), [
    ['snapshot', undefined],
    ['command', '3'],
    ['command', '4'],
  ]);
  assert.equal(snapshotOf(sink).gap, false);
});

test(
  'a state published between the snapshot read and the history read still reaches a resuming subscriber',
  async () => {
    const { hub, bus } = makeTestHub();
    const { channel } = await hub.create(); // seq 1
    const held = gate();
    // The snapshot is read at seq 1 (no state yet); the history after the report (2) and a command (3).
    bus.holdNextSince = held.promise;
    const sink = new RecordingSink();
    const joining = hub.subscribe(channel, sink, 'ip', 1);
    await hub.report(channel, { state });
    await hub.command(channel, next());
    held.open();
    await joining;
    assert.equal(snapshotOf(sink).state, null);
    assert.deepEqual(
      sink.trail().filter(([event]) => event === 'state'),
      [['state', '2']],
      'the report follows the snapshot, which was read before it',
    );
  },
);

test('whatever the interleaving, a joining subscriber sees every later event exactly once, in order', async () => {
  for (let delay = 0; delay < 12; delay++) {
    for (const lastEventId of [undefined, 1]) {
      const label = `delay ${delay}, lastEventId ${String(lastEventId)}`;
      const { hub } = makeHub();
      const { channel } = await hub.create(); // seq 1
      const sink = new RecordingSink();
      const joining = hub.subscribe(channel, sink, 'ip', lastEventId);
      for (let i = 0; i < delay; i++) await Promise.resolve();
      const [c1, , c2] = await Promise.all([hub.command(channel, next()), hub.report(channel, { state }), hub.command(channel, next())]);
      await joining;
      const [head, ...after] = sink.trail();
      assert.equal(head?.[0], 'snapshot', label);
      const ids = after.map(([, id]) => Number(id));
      assert.deepEqual(ids, [...new Set(ids)].sort((x, y) => x - y), `${label}: once each, in order`);
      if (lastEventId === undefined) {
        const from = Number(head?.[1]);
        assert.deepEqual(ids, [2, 3, 4].filter((id) => id > from), `${label}: everything after the snapshot`);
      } else {
        const commands = after.filter(([event]) => event === 'command').map(([, id]) => Number(id));
        assert.deepEqual(commands, [c1.eventId, c2.eventId], `${label}: every command after lastEventId`);
      }
    }
  }
});

test('a broadcast while a subscriber joins is written after its snapshot', async () => {
  const { hub, bus } = makeTestHub();
  const { channel } = await hub.create();
  const held = gate();
  bus.holdNextGet = held.promise;
  const sink = new RecordingSink();
  const joining = hub.subscribe(channel, sink, 'ip', undefined);
  assert.equal(hub.broadcast('reload', '{}'), 1);
  held.open();
  await joining;
  assert.deepEqual(sink.trail(), [
    ['snapshot', '1'],
    ['reload', undefined],
  ]);
});

test('a stream with an event list gets only those, during its join and after it; broadcasts too', async () => {
  const { hub, bus } = makeTestHub();
  const { channel } = await hub.create(); // seq 1
  const held = gate();
  bus.holdNextGet = held.promise;
  const phone = new RecordingSink();
  const all = new RecordingSink();
  const joining = hub.subscribe(channel, phone, 'ip', undefined, new Set(['state']));
  await hub.command(channel, next()); // 2, while the phone joins
  await hub.report(channel, { state }); // 3, while the phone joins
  assert.equal(hub.broadcast('reload', '{}'), 0, 'the phone did not ask for reloads');
  held.open();
  await joining;
  await hub.subscribe(channel, all, 'ip', undefined);
  const c4 = next();
  assert.equal((await hub.command(channel, c4)).delivered, 1, 'only the unfiltered stream counts');
  await hub.report(channel, { state }); // 5
  assert.equal(hub.broadcast('reload', '{}'), 1);
  assert.deepEqual(phone.trail(), [
    ['snapshot', '1'],
    ['state', '3'],
    ['state', '5'],
  ]);
  assert.deepEqual(all.trail(), [
    ['snapshot', '3'],
    ['command', '4'],
    ['state', '5'],
    ['reload', undefined],
  ]);
});

// ------------------------------------------------------------------ events from other instances

test('an older state from another instance is dropped; a command is always delivered', async () => {
  const { hub, bus } = makeTestHub();
  const { channel } = await hub.create(); // seq 1
  const a = new RecordingSink();
  const b = new RecordingSink();
  await hub.subscribe(channel, a, 'a', undefined);
  await hub.subscribe(channel, b, 'b', undefined);
  const stateData = (title: string) => JSON.stringify({ state: { ...state, title } });
  bus.remote(channel.id, { id: 10, event: 'state', data: stateData('ten') });
  bus.remote(channel.id, { id: 8, event: 'state', data: stateData('eight') });
  bus.remote(channel.id, { id: 7, event: 'command', data: JSON.stringify(next()) });
  bus.remote(channel.id, { id: 11, event: 'state', data: stateData('eleven') });
  const expected = [
    ['snapshot', '1'],
    ['state', '10'],
    ['command', '7'],
    ['state', '11'],
  ];
  assert.deepEqual(a.trail(), expected);
  assert.deepEqual(b.trail(), expected);
  assert.equal(a.chunks.at(-1), b.chunks.at(-1), 'a remote event is framed once too');
  // A local state report older than one already shown is dropped the same way.
  bus.remote(channel.id, { id: 20, event: 'state', data: stateData('twenty') });
  const r = await hub.report(channel, { state });
  assert.ok(r.eventId < 20);
  assert.equal(r.delivered, 0);
  assert.deepEqual(a.trail().at(-1), ['state', '20']);
});

test('a remote event for a channel without streams here is ignored', async () => {
  const { hub, bus } = makeTestHub();
  const { channel } = await hub.create();
  bus.remote(channel.id, { id: 5, event: 'command', data: '{}' });
  bus.remote('AAAAAAAAAAAAAAAAAAAAAA', { id: 5, event: 'state', data: '{}' });
  const sink = new RecordingSink();
  await hub.subscribe(channel, sink, 'ip', undefined);
  assert.deepEqual(sink.trail(), [['snapshot', '1']]);
});

test('remote events during a join: those the snapshot covers are skipped, later ones follow it', async () => {
  const { hub, bus } = makeTestHub();
  const { channel } = await hub.create();
  await hub.command(channel, next()); // 2
  const held = gate();
  bus.holdNextGet = held.promise; // the snapshot is read at seq 2
  const sink = new RecordingSink();
  const joining = hub.subscribe(channel, sink, 'ip', undefined);
  bus.remote(channel.id, { id: 2, event: 'command', data: '{}' });
  bus.remote(channel.id, { id: 3, event: 'state', data: '{}' });
  held.open();
  await joining;
  assert.deepEqual(sink.trail(), [
    ['snapshot', '2'],
    ['state', '3'],
  ]);
});

test('remote events the snapshot covers are skipped when they arrive after the join, as the other link can run behind', async () => {
  const { hub, bus } = makeTestHub();
  const { channel } = await hub.create(); // 1
  await hub.command(channel, next()); // 2
  await hub.report(channel, { state }); // 3
  const fresh = new RecordingSink();
  await hub.subscribe(channel, fresh, 'a', undefined);
  // A stream resuming from 1: command 2 comes from the replay, the state only from its snapshot.
  const resumed = new RecordingSink();
  await hub.subscribe(channel, resumed, 'b', 1);
  // The relays of 2 and 3, late, then the next event.
  bus.remote(channel.id, { id: 2, event: 'command', data: JSON.stringify(next()) });
  bus.remote(channel.id, { id: 3, event: 'state', data: JSON.stringify({ state }) });
  bus.remote(channel.id, { id: 4, event: 'command', data: JSON.stringify(next()) });
  assert.deepEqual(fresh.trail(), [
    ['snapshot', '3'],
    ['command', '4'],
  ]);
  assert.deepEqual(resumed.trail(), [
    ['snapshot', undefined],
    ['command', '2'],
    ['command', '4'],
  ]);
});

test(
  'a presence event is not dropped because a newer state event got here first',
  async () => {
    const { hub, bus } = makeTestHub();
    const { channel } = await hub.create();
    const sink = new RecordingSink();
    await hub.subscribe(channel, sink, 'ip', undefined);
    bus.remote(channel.id, { id: 6, event: 'state', data: JSON.stringify({ state }) });
    bus.remote(channel.id, { id: 5, event: 'presence', data: JSON.stringify({ controllers: 1, pairingOpen: false }) });
    assert.deepEqual(sink.trail().slice(1), [
      ['state', '6'],
      ['presence', '5'],
    ]);
  },
);

// ------------------------------------------------------------------ the bus failing

test('a bus that cannot be reached surfaces as unavailable', async () => {
  const { hub, bus } = makeTestHub({ maxSubscribersPerIp: 1 });
  const { channel, pairCode } = await hub.create();
  bus.fail('all', new BusUnavailable('connection refused'));
  await assert.rejects(hub.get(channel.id), isHubError('unavailable'));
  await assert.rejects(hub.create(), isHubError('unavailable'));
  await assert.rejects(hub.register(channel.id, newSecret(), Register.parse({})), isHubError('unavailable'));
  await assert.rejects(hub.command(channel, next()), isHubError('unavailable'));
  await assert.rejects(hub.report(channel, { state }), isHubError('unavailable'));
  await assert.rejects(hub.pair(channel, pairCode ?? ''), isHubError('unavailable'));
  await assert.rejects(hub.issuePairCode(channel), isHubError('unavailable'));
  await assert.rejects(hub.revoke(channel), isHubError('unavailable'));
  const refused = new RecordingSink();
  await assert.rejects(hub.subscribe(channel, refused, 'ip', undefined), isHubError('unavailable'));
  assert.equal(refused.chunks.length, 0);
  assert.deepEqual(hub.stats(), { channels: 0, subscribers: 0 }, 'a failed subscribe gives its slot back');

  bus.heal();
  bus.fail('since', new BusUnavailable('timeout'));
  await assert.rejects(hub.subscribe(channel, refused, 'ip', 1), isHubError('unavailable'));
  bus.heal();
  await hub.subscribe(channel, new RecordingSink(), 'ip', undefined);
  assert.deepEqual(hub.stats(), { channels: 1, subscribers: 1 });
});

test('a bus failing while the channel cap makes room surfaces as unavailable', async () => {
  const { hub, bus } = makeTestHub({ maxChannels: 1 });
  const { channel } = await hub.create();
  await hub.subscribe(channel, new RecordingSink(), 'ip', undefined);
  // count() answers, then the sweep's touch() of the channel with a stream fails.
  bus.fail('touch', new BusUnavailable('connection reset'));
  await assert.rejects(hub.create(), isHubError('unavailable'));
});

test('an unexpected bus error is passed on as it is', async () => {
  const { hub, bus } = makeTestHub();
  const { channel } = await hub.create();
  const bug = new TypeError('bug in the bus');
  bus.fail('append', bug);
  await assert.rejects(hub.command(channel, next()), (err: unknown) => err === bug);
});

test('a channel that expired under a held record is not_found', async () => {
  const { hub, clock } = makeHub({ channelTtlMs: 1_000 });
  const { channel, pairCode } = await hub.create();
  clock.t += 1_001;
  assert.equal(await hub.sweep(), 1);
  await assert.rejects(hub.command(channel, next()), isHubError('not_found'));
  await assert.rejects(hub.report(channel, { state }), isHubError('not_found'));
  await assert.rejects(hub.pair(channel, pairCode ?? ''), isHubError('not_found'));
  await assert.rejects(hub.issuePairCode(channel), isHubError('not_found'));
  await assert.rejects(hub.revoke(channel), isHubError('not_found'));
  const sink = new RecordingSink();
  await assert.rejects(hub.subscribe(channel, sink, 'ip', undefined), isHubError('not_found'));
  assert.equal(sink.chunks.length, 0);
  assert.equal(hub.stats().subscribers, 0);
});

// ------------------------------------------------------------------ pairing and keys

test('a pairing code is exchanged once; the second use is code_spent', async () => {
  const { hub } = makeHub();
  const { channel, pairCode } = await hub.create();
  assert.ok(pairCode);
  const { controllerKey, controllerHash } = await hub.pair(channel, pairCode);
  assert.match(controllerKey, /^[A-Za-z0-9_-]{32}$/);
  assert.equal(controllerHash, hashSecret(controllerKey));
  const record = await hub.get(channel.id);
  assert.deepEqual(record.controllers, [controllerHash]);
  assert.equal(record.pairCodeHash, null);
  await assert.rejects(hub.pair(channel, pairCode), isHubError('code_spent'));
  assert.equal((await hub.get(channel.id)).controllers.length, 1);
});

test('concurrent uses of one pairing code: exactly one pairs', async () => {
  const { hub } = makeHub();
  const { channel, pairCode } = await hub.create();
  const results = await Promise.allSettled(Array.from({ length: 8 }, () => hub.pair(channel, pairCode ?? '')));
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  for (const r of results) if (r.status === 'rejected') isHubError('code_spent')(r.reason);
  assert.equal((await hub.get(channel.id)).controllers.length, 1);
});

test('a wrong pairing code is refused', async () => {
  const { hub } = makeHub();
  const { channel } = await hub.create();
  await assert.rejects(hub.pair(channel, newSecret()), isHubError('code_spent'));
  const record = await hub.get(channel.id);
  assert.equal(record.controllers.length, 0);
  assert.notEqual(record.pairCodeHash, null, 'a wrong guess does not burn the real code');
});

test('issuing a new code invalidates the old one', async () => {
  const { hub } = makeHub();
  const { channel, pairCode: old } = await hub.create();
  const fresh = await hub.issuePairCode(channel);
  assert.notEqual(fresh, old);
  await assert.rejects(hub.pair(channel, old ?? ''), isHubError('code_spent'));
  assert.equal((await hub.pair(channel, fresh)).controllerHash.length, 43);
});

test('a code from another channel does not pair', async () => {
  const { hub } = makeHub();
  const a = await hub.create();
  const b = await hub.create();
  await assert.rejects(hub.pair(b.channel, a.pairCode ?? ''), isHubError('code_spent'));
});

test('canCommand accepts controller and deck keys, and nothing else', async () => {
  const { hub } = makeHub();
  const { channel, deckKey, pairCode } = await hub.create();
  const other = await hub.create();
  const { controllerKey } = await hub.pair(channel, pairCode ?? '');
  const record = await hub.get(channel.id);
  assert.equal(hub.canCommand(channel, controllerKey), false, 'a record read before pairing does not know the key');
  assert.equal(hub.canCommand(record, controllerKey), true);
  assert.equal(hub.canCommand(record, deckKey), true);
  assert.equal(hub.canCommand(record, undefined), false);
  assert.equal(hub.canCommand(record, newSecret()), false);
  assert.equal(hub.canCommand(record, pairCode ?? ''), false, 'a spent pairing code is not a key');
  assert.equal(hub.canCommand(record, hashSecret(controllerKey)), false, 'the hash is not the key');
  assert.equal(hub.canCommand(other.channel, controllerKey), false);
  assert.equal(hub.canCommand(other.channel, deckKey), false);
  assert.equal(hub.isDeck(record, deckKey), true);
  assert.equal(hub.isDeck(record, controllerKey), false);
  assert.equal(hub.isDeck(record, undefined), false);
});

test('revoked controller keys stop working; revoking one leaves the others', async () => {
  const { hub } = makeHub();
  const { channel, deckKey, pairCode } = await hub.create();
  const a = await hub.pair(channel, pairCode ?? '');
  const b = await hub.pair(channel, await hub.issuePairCode(channel));
  assert.equal(await hub.revoke(channel, a.controllerHash), 1);
  let record = await hub.get(channel.id);
  assert.equal(hub.canCommand(record, a.controllerKey), false);
  assert.equal(hub.canCommand(record, b.controllerKey), true);
  assert.equal(await hub.revoke(channel, a.controllerHash), 0);
  assert.equal(await hub.revoke(channel), 1);
  record = await hub.get(channel.id);
  assert.equal(hub.canCommand(record, b.controllerKey), false);
  assert.equal(hub.canCommand(record, deckKey), true);
});

test('a phone revoked while its stream is still opening: the stream ends as it opens, and holds no slot', async () => {
  const { hub, bus } = makeTestHub();
  const { channel, pairCode } = await hub.create();
  const phone = await hub.pair(channel, pairCode ?? '');
  const record = await hub.get(channel.id);
  // Revoked between its token's check (the record above) and its snapshot's read.
  const held = gate();
  bus.holdNextGet = held.promise;
  const sink = new RecordingSink();
  const joining = hub.subscribe(record, () => sink, 'ip', undefined, null, { deck: false, hash: phone.controllerHash });
  await settle();
  await hub.revoke(record, phone.controllerHash);
  held.open();
  const unsubscribe = await joining;
  assert.equal(sink.ended, 1, 'ended as it opened');
  unsubscribe();
  assert.equal(hub.stats().subscribers, 0);
});

test('a phone revoked on another instance while this one had lost the bus: the catch-up ends its streams', async () => {
  const { hub, bus } = makeTestHub();
  const { channel, pairCode } = await hub.create();
  const phone = await hub.pair(channel, pairCode ?? '');
  const record = await hub.get(channel.id);
  const sink = new RecordingSink();
  await hub.subscribe(record, () => sink, 'ip', undefined, null, { deck: false, hash: phone.controllerHash });
  const deckSink = new RecordingSink();
  await hub.subscribe(record, () => deckSink, 'ip', undefined, null, { deck: true, hash: record.deckHash });
  // The other instance revokes it in the shared store; this one never hears the presence event.
  await bus.revoke(channel.id, phone.controllerHash);
  await bus.append(channel.id, 'presence', '{}', { keep: false });
  await hub.catchUp();
  assert.equal(sink.ended, 1, "the revoked phone's stream ended");
  assert.equal(deckSink.ended, 0, "the slideshow's did not");
});

// ------------------------------------------------------------------ register

test('register on a live channel with the wrong key is forbidden', async () => {
  const { hub } = makeHub();
  const { channel } = await hub.create();
  await assert.rejects(hub.register(channel.id, newSecret(), Register.parse({})), isHubError('forbidden'));
});

test('register on a live channel with its key keeps the channel and its controllers', async () => {
  const { hub } = makeHub();
  const { channel, deckKey, pairCode } = await hub.create();
  const { controllerKey } = await hub.pair(channel, pairCode ?? '');
  const before = await hub.get(channel.id);
  const again = await hub.register(channel.id, deckKey, Register.parse({ controllers: [hashSecret(newSecret())], lastEventId: 500 }));
  assert.deepEqual(again.channel, before);
  assert.equal(again.pairCode, null, 'a paired deck is not handed a new code');
  assert.equal(again.channel.controllers.length, 1, 'a live channel ignores the sent controller list');
  assert.equal(again.channel.seq, before.seq, 'a live channel keeps its own ids');
  assert.equal(hub.canCommand(again.channel, controllerKey), true);
  // A reload's report refreshes the state, and tells the phones (one state event): the deck file may have changed.
  const reloaded = await hub.register(channel.id, deckKey, Register.parse({ report: { state } }));
  assert.deepEqual(reloaded.channel.state, state);
  assert.equal(reloaded.channel.seq, before.seq + 1);
});

test('register of an unknown id that does not derive from the key is forbidden', async () => {
  const { hub } = makeHub();
  const someoneElses = channelIdFor(newSecret());
  await assert.rejects(hub.register(someoneElses, newSecret(), Register.parse({})), isHubError('forbidden'));
  assert.equal(await hub.bus.count(), 0);
});

test('register with the right key restores the channel after a restart', async () => {
  const before = makeHub().hub;
  const created = await before.create();
  const { controllerKey, controllerHash } = await before.pair(created.channel, created.pairCode ?? '');

  const { hub } = makeHub(); // a fresh process
  const body = Register.parse({ controllers: [controllerHash, controllerHash], lastEventId: 41, report: { state } });
  const restored = await hub.register(created.channel.id, created.deckKey, body);
  assert.equal(restored.channel.id, created.channel.id);
  assert.equal(restored.pairCode, null);
  assert.deepEqual(restored.channel.state, state);
  assert.equal(restored.channel.deckHash, hashSecret(created.deckKey));
  assert.deepEqual(restored.channel.controllers, [controllerHash], 'a repeated hash is stored once');
  assert.equal(hub.canCommand(restored.channel, controllerKey), true);
  assert.equal(hub.canCommand(restored.channel, created.deckKey), true);
  // Ids go on after the slideshow's last one: 42 told the phones the deck's state, 43 is the next command.
  assert.equal((await hub.command(restored.channel, next())).eventId, 43);
  assert.deepEqual(await hub.get(created.channel.id), { ...restored.channel, seq: 43 });
});

test('a restored channel without controllers gets a fresh pairing code', async () => {
  const deckKey = newSecret();
  const { hub } = makeHub();
  const restored = await hub.register(channelIdFor(deckKey), deckKey, Register.parse({ lastEventId: 7 }));
  assert.ok(restored.pairCode);
  assert.equal(restored.channel.seq, 8, 'the presence event follows the last id');
  assert.equal((await hub.pair(restored.channel, restored.pairCode)).controllerHash.length, 43);
});

// ------------------------------------------------------------------ limits

test('maxChannels refuses creation and registration beyond the cap', async () => {
  const { hub } = makeHub({ maxChannels: 2 });
  await hub.create();
  await hub.create();
  await assert.rejects(hub.create(), isHubError('too_many_channels'));
  const deckKey = newSecret();
  await assert.rejects(hub.register(channelIdFor(deckKey), deckKey, Register.parse({})), isHubError('too_many_channels'));
  assert.equal(await hub.bus.count(), 2);
});

test('at the channel cap, idle channels are swept to make room', async () => {
  const { hub, clock } = makeHub({ maxChannels: 1, channelTtlMs: 1_000 });
  const old = await hub.create();
  clock.t += 1_001;
  const fresh = await hub.create();
  await assert.rejects(hub.get(old.channel.id), isHubError('not_found'));
  assert.deepEqual(await hub.get(fresh.channel.id), fresh.channel);
});

test('maxSubscribersPerChannel refuses before writing anything; unsubscribe frees the slot', async () => {
  const { hub } = makeHub({ maxSubscribersPerChannel: 2 });
  const { channel } = await hub.create();
  const first = await hub.subscribe(channel, new RecordingSink(), 'a', undefined);
  await hub.subscribe(channel, new RecordingSink(), 'b', undefined);
  const refused = new RecordingSink();
  let opened = false;
  const open = () => {
    opened = true;
    return refused;
  };
  await assert.rejects(hub.subscribe(channel, open, 'c', undefined), isHubError('too_many_subscribers'));
  assert.equal(opened, false, 'a refusal never opens the stream, so it can still be a plain 4xx');
  assert.equal(refused.chunks.length, 0);
  first();
  await hub.subscribe(channel, new RecordingSink(), 'c', undefined);
  assert.deepEqual(hub.stats(), { channels: 1, subscribers: 2 });
});

test('maxSubscribersPerIp counts across channels; unsubscribe frees the count', async () => {
  const { hub } = makeHub({ maxSubscribersPerIp: 2 });
  const a = (await hub.create()).channel;
  const b = (await hub.create()).channel;
  const unsubscribe = await hub.subscribe(a, new RecordingSink(), '10.0.0.9', undefined);
  await hub.subscribe(b, new RecordingSink(), '10.0.0.9', undefined);
  const refused = new RecordingSink();
  await assert.rejects(hub.subscribe(b, refused, '10.0.0.9', undefined), isHubError('too_many_subscribers_ip'));
  assert.equal(refused.chunks.length, 0);
  await hub.subscribe(b, new RecordingSink(), '10.0.0.10', undefined);
  unsubscribe();
  unsubscribe(); // a second call must not free a second slot
  await hub.subscribe(a, new RecordingSink(), '10.0.0.9', undefined);
  await assert.rejects(hub.subscribe(a, new RecordingSink(), '10.0.0.9', undefined), isHubError('too_many_subscribers_ip'));
  assert.deepEqual(hub.stats(), { channels: 2, subscribers: 3 });
});

test('the per-address count holds a slot while a join is still reading its snapshot', async () => {
  const { hub, bus } = makeTestHub({ maxSubscribersPerIp: 1 });
  const { channel } = await hub.create();
  const held = gate();
  bus.holdNextGet = held.promise;
  const joining = hub.subscribe(channel, new RecordingSink(), 'ip', undefined);
  await assert.rejects(hub.subscribe(channel, new RecordingSink(), 'ip', undefined), isHubError('too_many_subscribers_ip'));
  held.open();
  (await joining)();
  await hub.subscribe(channel, new RecordingSink(), 'ip', undefined);
});

test('an unsubscribed sink receives nothing more', async () => {
  const { hub } = makeHub();
  const { channel } = await hub.create();
  const sink = new RecordingSink();
  const unsubscribe = await hub.subscribe(channel, sink, 'ip', undefined);
  unsubscribe();
  const written = sink.chunks.length;
  assert.equal((await hub.command(channel, next())).delivered, 0);
  assert.equal(hub.broadcast('reload', '{}'), 0);
  assert.equal(sink.chunks.length, written);
  assert.deepEqual(hub.stats(), { channels: 0, subscribers: 0 });
});

test("a catch-up the store cannot answer (back, but slow) ends the channel's streams: their clients resume from the history, never past a hole", async () => {
  const { hub, bus } = makeTestHub();
  const { channel } = await hub.create();
  const sink = new RecordingSink();
  await hub.subscribe(channel, sink, 'ip', undefined);
  bus.fail('since', new Error('Command timed out'));
  await assert.rejects(hub.catchUp());
  assert.equal(sink.ended, 1);
  bus.heal();
  const written = sink.chunks.length;
  await hub.command(channel, next());
  assert.equal(sink.chunks.length, written, 'nothing more is written to it');
});

test('a command whose key was revoked after it was checked is refused as it is appended, on a bus that answers later', async () => {
  const { hub, bus } = makeTestHub();
  const { channel } = await hub.create();
  const code = await hub.issuePairCode(channel);
  const { controllerHash } = await hub.pair(await hub.get(channel.id), code);
  // The tap's key was checked on the record as read; the revoke lands before its append.
  const read = await hub.get(channel.id);
  assert.ok(hub.canCommandHash(read, controllerHash));
  await hub.revoke(read, controllerHash);
  await assert.rejects(hub.command(read, next(), controllerHash), isHubError('not_author'));
  assert.deepEqual((await bus.since(channel.id, 0)).events.filter((e) => e.event === 'command'), []);
});

test('a sink with more than maxQueuedBytes queued is ended on publish, not written to', async () => {
  const { hub } = makeHub({ maxQueuedBytes: 100 });
  const { channel } = await hub.create();
  const slow = new RecordingSink();
  const fast = new RecordingSink();
  await hub.subscribe(channel, slow, 'a', undefined);
  await hub.subscribe(channel, fast, 'b', undefined);
  slow.writableLength = 100; // at the limit is still fine
  assert.equal((await hub.command(channel, next())).delivered, 2);
  assert.equal(slow.ended, 0);
  const written = slow.chunks.length;
  slow.writableLength = 101;
  const r = await hub.command(channel, next());
  assert.equal(r.delivered, 1);
  assert.equal(slow.ended, 1);
  assert.equal(slow.chunks.length, written);
  assert.equal(fast.ended, 0);
  assert.equal(fast.events().at(-1)?.id, String(r.eventId));
});

test('a slow sink that can be destroyed is destroyed rather than ended', async () => {
  const { hub } = makeHub({ maxQueuedBytes: 100 });
  const { channel } = await hub.create();
  const slow = new DestroyableSink();
  await hub.subscribe(channel, slow, 'a', undefined);
  slow.writableLength = 101;
  assert.equal((await hub.command(channel, next())).delivered, 0);
  assert.equal(slow.destroyed, 1);
  assert.equal(slow.ended, 0);
  assert.equal((await hub.command(channel, next())).delivered, 0);
  assert.equal(slow.destroyed, 1, 'removed at once: never cut twice');
});

test('a stream whose bytes stay queued through three heartbeats in a row is cut as unread; one that drains in between is not', async (t) => {
  // Queued bytes, however few, mean the kernel's buffer for that socket is full: megabytes nobody reads.
  t.mock.timers.enable({ apis: ['setInterval'] });
  const { hub } = makeHub({ heartbeatMs: 1_000 });
  const { channel } = await hub.create();
  const unread = new DestroyableSink();
  const slow = new DestroyableSink();
  await hub.subscribe(channel, unread, 'a', undefined);
  await hub.subscribe(channel, slow, 'b', undefined);
  hub.start();
  t.after(() => hub.close());
  unread.writableLength = 10;
  slow.writableLength = 10;
  t.mock.timers.tick(1_000);
  t.mock.timers.tick(1_000);
  // The slow one catches up before the third heartbeat; the other never does.
  slow.writableLength = 0;
  t.mock.timers.tick(1_000);
  assert.equal(unread.destroyed, 1);
  assert.equal(slow.destroyed, 0);
  slow.writableLength = 10;
  t.mock.timers.tick(1_000);
  t.mock.timers.tick(1_000);
  assert.equal(slow.destroyed, 0, 'two in a row since it drained');
  // Out of the channel at once: only the slow one gets the next command.
  const written = unread.chunks.length;
  assert.equal((await hub.command(channel, next())).delivered, 1);
  assert.equal(unread.chunks.length, written);
  assert.equal(slow.events().at(-1)?.event, 'command');
});

test('nothing is written to a cut-off sink afterwards: no event, heartbeat or broadcast', async (t) => {
  // On a real response a write after end() is an uncaught ERR_STREAM_WRITE_AFTER_END.
  t.mock.timers.enable({ apis: ['setInterval'] });
  const { hub } = makeHub({ maxQueuedBytes: 100, heartbeatMs: 1_000 });
  const { channel } = await hub.create();
  const slow = new RecordingSink();
  const fast = new RecordingSink();
  await hub.subscribe(channel, slow, 'a', undefined);
  await hub.subscribe(channel, fast, 'b', undefined);
  hub.start();
  slow.writableLength = 101;
  await hub.command(channel, next());
  const written = slow.chunks.length;
  await hub.command(channel, next());
  t.mock.timers.tick(1_000);
  hub.broadcast('reload', '{}');
  hub.close();
  assert.equal(slow.chunks.length, written);
  assert.equal(slow.ended, 1);
  assert.deepEqual(
    fast.events().map((e) => e.event),
    ['snapshot', 'command', 'command', 'reload'],
  );
  assert.equal(fast.chunks.at(-2)?.toString('utf8'), ':\n\n');
});

// ------------------------------------------------------------------ broadcast

test('broadcast sends one unnumbered frame to every stream on every channel, and keeps nothing', async () => {
  const { hub } = makeHub();
  const a = (await hub.create()).channel;
  const b = (await hub.create()).channel;
  const [s0, s1, s2] = [new RecordingSink(), new RecordingSink(), new RecordingSink()] as const;
  await hub.subscribe(a, s0, 'x', undefined);
  await hub.subscribe(a, s1, 'y', undefined);
  await hub.subscribe(b, s2, 'z', undefined);
  assert.equal(hub.broadcast('reload', '{"deck":"changed"}'), 3);
  for (const s of [s0, s1, s2]) {
    assert.equal(s.chunks.at(-1)?.toString('utf8'), 'event: reload\ndata: {"deck":"changed"}\n\n');
    assert.equal(s.chunks.at(-1), s0.chunks.at(-1));
  }
  assert.equal((await hub.get(a.id)).seq, 1, 'a broadcast takes no event id');
  assert.deepEqual((await hub.bus.since(a.id, 0)).events, []);
});

// ------------------------------------------------------------------ sweep, timers, close

test('sweep drops idle channels without subscribers after channelTtlMs', async () => {
  const { hub, clock } = makeHub({ channelTtlMs: 10_000 });
  const idle = (await hub.create()).channel;
  const watched = (await hub.create()).channel;
  const busy = (await hub.create()).channel;
  await hub.subscribe(watched, new RecordingSink(), 'ip', undefined);
  clock.t += 5_000;
  await hub.command(busy, next());
  clock.t += 5_000;
  assert.equal(await hub.sweep(), 0, 'exactly at the TTL is not yet idle');
  clock.t += 1;
  assert.equal(await hub.sweep(), 1);
  await assert.rejects(hub.get(idle.id), isHubError('not_found'));
  assert.equal((await hub.get(watched.id)).id, watched.id, 'a channel with a subscriber stays');
  assert.equal((await hub.get(busy.id)).id, busy.id, 'recent traffic keeps a channel');
  clock.t += 5_000;
  assert.equal(await hub.sweep(), 1);
  await assert.rejects(hub.get(busy.id), isHubError('not_found'));
  clock.t += 100_000;
  assert.equal(await hub.sweep(), 0);
  assert.equal((await hub.get(watched.id)).id, watched.id, 'an open stream keeps it however long');
});

test('the last unsubscribe starts the idle clock', async () => {
  const { hub, clock } = makeHub({ channelTtlMs: 1_000 });
  const { channel } = await hub.create();
  const unsubscribe = await hub.subscribe(channel, new RecordingSink(), 'ip', undefined);
  clock.t += 5_000;
  unsubscribe();
  clock.t += 999;
  assert.equal(await hub.sweep(), 0);
  clock.t += 2;
  assert.equal(await hub.sweep(), 1);
});

test('start sends heartbeat comments on every stream and sweeps idle channels', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval'] });
  const { hub, clock } = makeHub({ heartbeatMs: 1_000, channelTtlMs: 5_000 });
  const { channel } = await hub.create();
  const idle = (await hub.create()).channel;
  const sink = new RecordingSink();
  await hub.subscribe(channel, sink, 'ip', undefined);
  hub.start();
  const before = sink.chunks.length;
  t.mock.timers.tick(1_000);
  assert.equal(sink.chunks.length, before + 1);
  assert.equal(sink.chunks.at(-1)?.toString('utf8'), ':\n\n');
  clock.t += 5_001;
  t.mock.timers.tick(4_000); // the sweep runs every min(TTL / 2, 60 s)
  await settle();
  await assert.rejects(hub.get(idle.id), isHubError('not_found'));
  assert.equal((await hub.get(channel.id)).id, channel.id);
  hub.close();
  const after = sink.chunks.length;
  t.mock.timers.tick(10_000);
  assert.equal(sink.chunks.length, after, 'close stops the heartbeat');
});

test('a stream that names beat gets its heartbeats as beat events, the first as it opens; every other stream gets comments', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval'] });
  const { hub } = makeHub({ heartbeatMs: 1_000 });
  const { channel } = await hub.create();
  const beating = new RecordingSink();
  const commandsOnly = new RecordingSink();
  const everything = new RecordingSink();
  await hub.subscribe(channel, beating, 'a', undefined, new Set(['command', 'beat']));
  await hub.subscribe(channel, commandsOnly, 'b', undefined, new Set(['command']));
  await hub.subscribe(channel, everything, 'c', undefined);
  const BEAT = 'event: beat\ndata: {"every":1000}\n\n';
  // Opened: the retry hint, the snapshot, then the first beat, which tells the interval.
  const snapshotId = beating.trail()[0]![1];
  assert.deepEqual(beating.trail(), [['snapshot', snapshotId], ['beat', undefined]]);
  assert.equal(beating.chunks.at(-1)?.toString('utf8'), BEAT);
  for (const sink of [commandsOnly, everything]) assert.deepEqual(sink.trail(), [['snapshot', snapshotId]]);
  hub.start();
  t.mock.timers.tick(1_000);
  t.mock.timers.tick(1_000);
  assert.deepEqual(beating.chunks.slice(-2).map((c) => c.toString('utf8')), [BEAT, BEAT]);
  for (const sink of [commandsOnly, everything]) assert.deepEqual(sink.chunks.slice(-2).map((c) => c.toString('utf8')), [':\n\n', ':\n\n']);
  // A beat is never news: no command, state or broadcast carries it, and nothing numbers it.
  const { eventId } = await hub.command(channel, next());
  assert.equal(eventId, Number(snapshotId) + 1);
  assert.deepEqual(beating.trail().at(-1), ['command', String(eventId)]);
  assert.deepEqual(everything.trail().at(-1), ['command', String(eventId)]);
  hub.close();
});

test("the key holders' streams beat on their quicker beat (the slideshow's, a phone's); the room's keep the heartbeat; a busy or closed stream gets none", async (t) => {
  t.mock.timers.enable({ apis: ['setInterval'] });
  const { hub } = makeHub({ heartbeatMs: 3_000, keyHolderBeatMs: 1_000 });
  const { channel: created, pairCode } = await hub.create();
  const { controllerHash } = await hub.pair(created, pairCode ?? '');
  const channel = await hub.get(created.id);
  const beats = new Set(['command', 'beat']);
  const deck = new RecordingSink();
  const phone = new RecordingSink();
  const room = new RecordingSink();
  const quiet = new RecordingSink();
  await hub.subscribe(channel, deck, 'a', undefined, beats, { deck: true, hash: channel.deckHash });
  const closePhone = await hub.subscribe(channel, phone, 'b', undefined, beats, { deck: false, hash: controllerHash });
  await hub.subscribe(channel, room, 'c', undefined, beats);
  // A key holder whose stream does not name beat keeps its comments.
  await hub.subscribe(channel, quiet, 'd', undefined, new Set(['command']), { deck: false, hash: controllerHash });
  const QUICK = 'event: beat\ndata: {"every":1000}\n\n';
  const SLOW = 'event: beat\ndata: {"every":3000}\n\n';
  const last = (sink: RecordingSink) => sink.chunks.at(-1)?.toString('utf8');
  // The first beat, as each opens, tells each its own interval.
  assert.equal(last(deck), QUICK);
  assert.equal(last(phone), QUICK);
  assert.equal(last(room), SLOW);
  const counts = () => [deck, phone, room, quiet].map((s) => s.chunks.length);
  const [d0, p0, r0, q0] = counts() as [number, number, number, number];
  hub.start();
  t.mock.timers.tick(1_000);
  t.mock.timers.tick(1_000);
  assert.deepEqual(counts(), [d0 + 2, p0 + 2, r0, q0], 'two quick beats to each key holder, nothing to the room yet');
  // A phone's stream with bytes still queued gets no beat behind them.
  phone.writableLength = 10;
  t.mock.timers.tick(1_000);
  phone.writableLength = 0;
  // At the heartbeat: the room's beat and the other comment; the key holders get their quick beat and not the slow one as well.
  assert.deepEqual(counts(), [d0 + 3, p0 + 2, r0 + 1, q0 + 1]);
  assert.equal(last(room), SLOW);
  assert.equal(last(quiet), ':\n\n');
  assert.deepEqual(
    deck.chunks.slice(-3).map((c) => c.toString('utf8')),
    [QUICK, QUICK, QUICK],
  );
  // Closed, it is beaten no more.
  closePhone();
  t.mock.timers.tick(1_000);
  assert.deepEqual(counts(), [d0 + 4, p0 + 2, r0 + 1, q0 + 1]);
  hub.close();
  t.mock.timers.tick(3_000);
  assert.deepEqual(counts(), [d0 + 4, p0 + 2, r0 + 1, q0 + 1], 'close stops both beats');
});

test('a quicker key-holder beat that is no quicker (keyHolderBeatMs at the heartbeat) leaves one beat for everybody', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval'] });
  const { hub } = makeHub({ heartbeatMs: 1_000, keyHolderBeatMs: 1_000 });
  const { channel } = await hub.create();
  const deck = new RecordingSink();
  await hub.subscribe(channel, deck, 'a', undefined, new Set(['command', 'beat']), { deck: true, hash: channel.deckHash });
  const n = deck.chunks.length;
  hub.start();
  t.mock.timers.tick(1_000);
  assert.equal(deck.chunks.length, n + 1);
  assert.equal(deck.chunks.at(-1)?.toString('utf8'), 'event: beat\ndata: {"every":1000}\n\n');
  hub.close();
});

test('close ends every open stream on every channel', async () => {
  const { hub } = makeHub();
  const [s0, s1, s2] = [new RecordingSink(), new RecordingSink(), new RecordingSink()] as const;
  const a = (await hub.create()).channel;
  const b = (await hub.create()).channel;
  await hub.subscribe(a, s0, 'x', undefined);
  await hub.subscribe(a, s1, 'y', undefined);
  await hub.subscribe(b, s2, 'z', undefined);
  const unsubscribed = new RecordingSink();
  (await hub.subscribe(b, unsubscribed, 'z', undefined))();
  hub.close();
  assert.deepEqual(
    [s0, s1, s2].map((s) => s.ended),
    [1, 1, 1],
  );
  assert.equal(unsubscribed.ended, 0);
  const written = s0.chunks.length;
  await hub.command(a, next());
  assert.equal(s0.chunks.length, written, 'an ended stream is written to no more');
});

test('a join still reading its snapshot when the hub closes is ended, not left open', async () => {
  const { hub, bus } = makeTestHub();
  const { channel } = await hub.create();
  const held = gate();
  bus.holdNextGet = held.promise;
  const sink = new RecordingSink();
  const joining = hub.subscribe(channel, () => sink, 'ip', undefined);
  hub.close();
  held.open();
  (await joining)();
  assert.equal(sink.ended, 1);
  assert.equal(sink.chunks.length, 0);
  assert.deepEqual(hub.stats(), { channels: 0, subscribers: 0 });
});

// ------------------------------------------------------------------ the slideshow's link

/** Lets the bus calls a hub started on its own (promises on the memory bus) run to the end. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The `slideshow` events a sink got: true for connected, false for away. */
const slideshowSaid = (sink: RecordingSink): boolean[] =>
  sink
    .events()
    .filter((e) => e.event === 'slideshow')
    .map((e) => (JSON.parse(e.data) as { connected: boolean }).connected);

test("the slideshow's stream is told to the room as it opens, and its leaving only once slideshowAwayMs have passed", async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { hub } = makeHub({ slideshowAwayMs: 4_000 });
  const { channel } = await hub.create();
  const room = new RecordingSink();
  await hub.subscribe(channel, room, 'ip', undefined);
  assert.equal(snapshotOf(room).slideshow, false, 'no slideshow yet');
  const deck = new RecordingSink();
  const closeDeck = await hub.subscribe(channel, () => deck, 'ip', undefined, null, { deck: true, hash: channel.deckHash });
  await turn();
  assert.deepEqual(slideshowSaid(room), [true]);
  const late = new RecordingSink();
  await hub.subscribe(channel, late, 'ip', undefined);
  assert.equal(snapshotOf(late).slideshow, true, 'a stream opened later has it in its snapshot');
  closeDeck();
  t.mock.timers.tick(3_999);
  await turn();
  assert.deepEqual(slideshowSaid(room), [true], 'not yet: it may be reconnecting');
  t.mock.timers.tick(1);
  await turn();
  assert.deepEqual(slideshowSaid(room), [true, false]);
  assert.deepEqual(slideshowSaid(late), [false]);
});

test('a slideshow back within its grace, or with a second stream open, is never said gone', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { hub } = makeHub({ slideshowAwayMs: 4_000 });
  const { channel } = await hub.create();
  const room = new RecordingSink();
  await hub.subscribe(channel, room, 'ip', undefined);
  const deckOf = () => hub.subscribe(channel, () => new RecordingSink(), 'ip', undefined, null, { deck: true, hash: channel.deckHash });
  const first = await deckOf();
  // A second tab of the slideshow (or the drop-in beside it).
  const second = await deckOf();
  await turn();
  first();
  t.mock.timers.tick(10_000);
  await turn();
  assert.deepEqual(slideshowSaid(room), [true], 'one stream still open');
  second();
  t.mock.timers.tick(3_000);
  // A Wi-Fi hiccup: the stream is back a moment later.
  const back = await deckOf();
  t.mock.timers.tick(10_000);
  await turn();
  assert.deepEqual(slideshowSaid(room), [true]);
  back();
  t.mock.timers.tick(4_000);
  await turn();
  assert.deepEqual(slideshowSaid(room), [true, false]);
  // Only the deck's token counts: a phone's stream or the room's is no slideshow.
  const phone = await hub.pair(await hub.get(channel.id), (await hub.issuePairCode(await hub.get(channel.id))) ?? '');
  await hub.subscribe(await hub.get(channel.id), () => new RecordingSink(), 'ip', undefined, null, { deck: false, hash: phone.controllerHash });
  await hub.subscribe(channel, new RecordingSink(), 'ip', undefined);
  await turn();
  assert.deepEqual(slideshowSaid(room), [true, false]);
});

test('a word on the slideshow the bus did not take is said again on the next heartbeat', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval'] });
  const { hub, bus } = makeTestHub({ heartbeatMs: 1_000 });
  const { channel } = await hub.create();
  const room = new RecordingSink();
  await hub.subscribe(channel, room, 'ip', undefined);
  bus.fail('slideshowStreams', new BusUnavailable('down'));
  await hub.subscribe(channel, () => new RecordingSink(), 'ip', undefined, null, { deck: true, hash: channel.deckHash });
  await turn();
  assert.deepEqual(slideshowSaid(room), []);
  hub.start();
  t.after(() => hub.close());
  bus.heal();
  t.mock.timers.tick(1_000);
  await turn();
  assert.deepEqual(slideshowSaid(room), [true]);
});

test("a closing hub says nothing of the slideshow's streams it ends: the slideshow reconnects to its successor", async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { hub, bus } = makeTestHub({ slideshowAwayMs: 1_000 });
  const { channel } = await hub.create();
  const closeDeck = await hub.subscribe(channel, () => new RecordingSink(), 'ip', undefined, null, { deck: true, hash: channel.deckHash });
  await turn();
  assert.equal((await bus.get(channel.id))?.slideshow, true);
  hub.close();
  // The socket's close comes after close() ended it.
  closeDeck();
  t.mock.timers.tick(5_000);
  await turn();
  assert.equal((await bus.get(channel.id))?.slideshow, true, 'its word stands until it lapses');
});

test("a grace running when the channel's streams here are swept goes on: a heartbeat meanwhile, with a new stream open, does not say the slideshow gone early", async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  const { hub } = makeHub({ slideshowAwayMs: 4_000, heartbeatMs: 1_000 });
  hub.start();
  t.after(() => hub.close());
  const { channel } = await hub.create();
  const closeDeck = await hub.subscribe(channel, () => new RecordingSink(), 'ip', undefined, null, { deck: true, hash: channel.deckHash });
  await turn();
  closeDeck();
  // The channel has no stream here now: the sweep forgets it.
  await hub.sweep();
  const room = new RecordingSink();
  await hub.subscribe(channel, room, 'ip', undefined);
  assert.equal(snapshotOf(room).slideshow, true);
  t.mock.timers.tick(1_000);
  await turn();
  t.mock.timers.tick(1_000);
  await turn();
  assert.deepEqual(slideshowSaid(room), [], 'still in its grace');
  t.mock.timers.tick(2_000);
  await turn();
  assert.deepEqual(slideshowSaid(room), [false]);
});
