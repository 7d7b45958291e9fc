import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ID_RE, Register, type Command, type DeckState, type Snapshot } from '../protocol/messages';
import { DEFAULTS } from './config';
import { Hub, HubError, type Channel, type HubErrorKind, type HubLimits, type Sink } from './hub';
import { channelIdFor, hashSecret, newSecret } from './keys';

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
}

class Clock {
  t = 1_700_000_000_000;
  readonly now = (): number => this.t;
}

function makeHub(overrides: Partial<HubLimits> = {}) {
  const clock = new Clock();
  const hub = new Hub({ ...DEFAULTS, ...overrides }, clock.now);
  return { hub, clock };
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
  notes: '',
  nextTitle: 'Three',
};

const snapshotOf = (sink: RecordingSink): Snapshot => {
  const snap = sink.events().find((e) => e.event === 'snapshot');
  assert.ok(snap, 'no snapshot written');
  return JSON.parse(snap.data) as Snapshot;
};

// ------------------------------------------------------------------ channels and secrets

test('create derives the channel id from the deck key and keeps only hashes', () => {
  const { hub } = makeHub();
  const a = hub.create();
  const b = hub.create();
  assert.equal(a.channel.id, channelIdFor(a.deckKey));
  assert.match(a.channel.id, ID_RE);
  assert.notEqual(a.channel.id, b.channel.id);
  assert.notEqual(a.deckKey, b.deckKey);
  // 32 characters of a 64-letter alphabet: 192 bits, well over 128.
  for (const secret of [a.deckKey, a.pairCode ?? '']) assert.match(secret, /^[A-Za-z0-9_-]{32}$/);
  assert.notEqual(a.deckKey, a.pairCode);
  assert.equal(a.channel.deckHash, hashSecret(a.deckKey));
  assert.equal(a.channel.pairCodeHash, hashSecret(a.pairCode ?? ''));
  assert.equal(hub.get(a.channel.id), a.channel);
  assert.deepEqual(hub.stats(), { channels: 2, subscribers: 0 });
});

test('get of an unknown channel throws not_found', () => {
  const { hub } = makeHub();
  assert.throws(() => hub.get('AAAAAAAAAAAAAAAAAAAAAA'), isHubError('not_found'));
});

// ------------------------------------------------------------------ subscribe

test('subscribe writes the retry hint, then a snapshot carrying the current id', () => {
  const { hub } = makeHub({ retryMs: 1_234 });
  const { channel } = hub.create();
  const sink = new RecordingSink();
  hub.subscribe(channel, sink, '10.0.0.1', undefined);
  assert.equal(sink.chunks.length, 2);
  assert.equal(sink.chunks[0]?.toString('utf8'), 'retry: 1234\n\n');
  // Creation issued a pairing code, which published presence as event 1.
  const expected: Snapshot = { state: null, slides: null, presence: { controllers: 0, pairingOpen: true }, gap: false };
  assert.equal(sink.chunks[1]?.toString('utf8'), `id: 1\nevent: snapshot\ndata: ${JSON.stringify(expected)}\n\n`);
});

test('the snapshot carries the latest state and outline', () => {
  const { hub } = makeHub();
  const { channel } = hub.create();
  const slides = [{ h: 0, v: 0, title: 'One' }, { h: 1, v: 0, title: 'Two' }];
  hub.report(channel, { state, slides });
  hub.report(channel, { state: { ...state, indexh: 2, title: 'Three' } });
  const sink = new RecordingSink();
  hub.subscribe(channel, sink, 'ip', undefined);
  const snap = snapshotOf(sink);
  assert.equal(snap.state?.title, 'Three');
  // A report without an outline keeps the last one.
  assert.deepEqual(snap.slides, slides);
  assert.equal(sink.events()[0]?.id, String(channel.seq));
});

// ------------------------------------------------------------------ publish

test('publish writes the same Buffer instance to every subscriber', () => {
  const { hub } = makeHub();
  const { channel } = hub.create();
  const sinks = [new RecordingSink(), new RecordingSink(), new RecordingSink()];
  sinks.forEach((s, i) => hub.subscribe(channel, s, `10.0.0.${i}`, undefined));
  const cmd = next();
  const result = hub.command(channel, cmd);
  assert.deepEqual(result, { eventId: 2, duplicate: false, delivered: 3 });
  const frames = sinks.map((s) => s.chunks.at(-1));
  assert.equal(frames[0]?.toString('utf8'), `id: 2\nevent: command\ndata: ${JSON.stringify(cmd)}\n\n`);
  assert.equal(frames[1], frames[0]);
  assert.equal(frames[2], frames[0]);
  // The history keeps that same Buffer for replay.
  assert.equal(channel.history.at(-1)?.frame, frames[0]);
});

test('event ids are monotonic per channel across every kind of event', () => {
  const { hub } = makeHub();
  const a = hub.create();
  const b = hub.create();
  const ids = [
    hub.command(a.channel, next()).eventId,
    hub.report(a.channel, { state }).eventId,
    hub.command(a.channel, next()).eventId,
  ];
  const { controllerHash } = hub.pair(a.channel, a.pairCode ?? '');
  ids.push(a.channel.seq);
  hub.issuePairCode(a.channel);
  ids.push(a.channel.seq);
  hub.revoke(a.channel, controllerHash);
  ids.push(a.channel.seq);
  ids.push(hub.command(a.channel, next()).eventId);
  assert.deepEqual(ids, [2, 3, 4, 5, 6, 7, 8]);
  // Channel b has its own counter.
  assert.equal(hub.command(b.channel, next()).eventId, 2);
});

test('a command id seen before is acknowledged as a duplicate and not sent again', () => {
  const { hub } = makeHub();
  const { channel } = hub.create();
  const sink = new RecordingSink();
  hub.subscribe(channel, sink, 'ip', undefined);
  const cmd = next();
  const first = hub.command(channel, cmd);
  const written = sink.chunks.length;
  const again = hub.command(channel, { type: 'prev', id: cmd.id });
  assert.deepEqual(again, { eventId: first.eventId, duplicate: true, delivered: 0 });
  assert.equal(sink.chunks.length, written);
  assert.equal(channel.seq, first.eventId);
  assert.equal(channel.history.length, 1);
});

test('duplicate detection remembers the last 1024 command ids', () => {
  const { hub } = makeHub();
  const { channel } = hub.create();
  const remembered = next();
  hub.command(channel, remembered);
  for (let i = 0; i < 1_023; i++) hub.command(channel, next());
  assert.equal(hub.command(channel, remembered).duplicate, true);
  hub.command(channel, next());
  assert.equal(hub.command(channel, remembered).duplicate, false);
});

test('presence changes are published to subscribers', () => {
  const { hub } = makeHub();
  const { channel, pairCode } = hub.create();
  const sink = new RecordingSink();
  hub.subscribe(channel, sink, 'ip', undefined);
  hub.pair(channel, pairCode ?? '');
  hub.issuePairCode(channel);
  hub.revoke(channel);
  const presence = sink.events().filter((e) => e.event === 'presence').map((e) => JSON.parse(e.data) as unknown);
  assert.deepEqual(presence, [
    { controllers: 1, pairingOpen: false },
    { controllers: 1, pairingOpen: true },
    { controllers: 0, pairingOpen: true },
  ]);
});

test('a state report is published with its cause and outline', () => {
  const { hub } = makeHub();
  const { channel } = hub.create();
  const sink = new RecordingSink();
  hub.subscribe(channel, sink, 'ip', undefined);
  const slides = [{ h: 0, v: 0, title: 'One' }];
  const r = hub.report(channel, { state, cause: 'cmd-abcdefgh', slides });
  assert.deepEqual(sink.events().at(-1), {
    id: String(r.eventId),
    event: 'state',
    data: JSON.stringify({ state, cause: 'cmd-abcdefgh', slides }),
  });
  assert.deepEqual(channel.state, state);
  assert.equal(channel.history.length, 0, 'state events are not kept for replay');
});

// ------------------------------------------------------------------ replay

test('resuming replays only the commands after lastEventId, and the snapshot then has no id', () => {
  const { hub } = makeHub();
  const { channel } = hub.create(); // event 1: presence
  const c2 = next();
  const c3 = next();
  const c5 = next();
  hub.command(channel, c2);
  hub.command(channel, c3);
  hub.report(channel, { state }); // 4
  hub.command(channel, c5);
  const sink = new RecordingSink();
  hub.subscribe(channel, sink, 'ip', 2);
  const events = sink.events();
  assert.deepEqual(
    events.map((e) => [e.event, e.id]),
    [
      ['snapshot', undefined],
      ['command', '3'],
      ['command', '5'],
    ],
  );
  assert.equal(events[1]?.data, JSON.stringify(c3));
  assert.equal(events[2]?.data, JSON.stringify(c5));
  const snap = snapshotOf(sink);
  assert.equal(snap.gap, false);
  assert.deepEqual(snap.state, state, 'the snapshot stands in for the state event');
  assert.equal(sink.text().split('\n\n')[1]?.startsWith('event: snapshot\n'), true);
});

test('resuming from the latest id replays nothing and the snapshot carries that id', () => {
  const { hub } = makeHub();
  const { channel } = hub.create();
  hub.command(channel, next());
  hub.command(channel, next());
  const sink = new RecordingSink();
  hub.subscribe(channel, sink, 'ip', 3);
  assert.deepEqual(
    sink.events().map((e) => [e.event, e.id]),
    [['snapshot', '3']],
  );
  assert.equal(snapshotOf(sink).gap, false);
});

for (const [label, lastEventId] of [
  ['an unparseable', 'unknown'],
  ['a future', 99],
] as const) {
  test(`${label} lastEventId gives a gap and no replay`, () => {
    const { hub } = makeHub();
    const { channel } = hub.create();
    hub.command(channel, next());
    hub.command(channel, next());
    const sink = new RecordingSink();
    hub.subscribe(channel, sink, 'ip', lastEventId);
    assert.deepEqual(
      sink.events().map((e) => [e.event, e.id]),
      [['snapshot', '3']],
    );
    assert.equal(snapshotOf(sink).gap, true);
  });
}

test('history is bounded by count; the floor moves and older ids give a gap', () => {
  const { hub } = makeHub({ historyMax: 3 });
  const { channel } = hub.create(); // seq 1
  for (let i = 0; i < 5; i++) hub.command(channel, next()); // ids 2..6
  assert.deepEqual(
    channel.history.map((e) => e.id),
    [4, 5, 6],
  );
  assert.equal(channel.floor, 3);

  const fromFloor = new RecordingSink();
  hub.subscribe(channel, fromFloor, 'ip', 3);
  assert.deepEqual(
    fromFloor.events().map((e) => e.id),
    [undefined, '4', '5', '6'],
  );
  assert.equal(snapshotOf(fromFloor).gap, false);

  const tooOld = new RecordingSink();
  hub.subscribe(channel, tooOld, 'ip', 2);
  assert.deepEqual(
    tooOld.events().map((e) => [e.event, e.id]),
    [['snapshot', '6']],
  );
  assert.equal(snapshotOf(tooOld).gap, true);
});

test('history is bounded by age using the injected clock', () => {
  const { hub, clock } = makeHub({ historyMaxAgeMs: 1_000 });
  const { channel } = hub.create(); // seq 1
  hub.command(channel, next()); // 2 at t0
  clock.t += 600;
  hub.command(channel, next()); // 3 at t0+600
  clock.t += 600; // event 2 is now 1200 ms old, event 3 is 600 ms old

  const sink = new RecordingSink();
  hub.subscribe(channel, sink, 'ip', 2);
  assert.deepEqual(
    channel.history.map((e) => e.id),
    [3],
  );
  assert.equal(channel.floor, 2);
  assert.deepEqual(
    sink.events().map((e) => e.id),
    [undefined, '3'],
  );

  const late = new RecordingSink();
  hub.subscribe(channel, late, 'ip', 1);
  assert.equal(snapshotOf(late).gap, true);
  assert.equal(late.events().length, 1);
});

test('history exactly at the age limit is kept', () => {
  const { hub, clock } = makeHub({ historyMaxAgeMs: 1_000 });
  const { channel } = hub.create();
  hub.command(channel, next());
  clock.t += 1_000;
  hub.subscribe(channel, new RecordingSink(), 'ip', 1);
  assert.equal(channel.history.length, 1);
});

// ------------------------------------------------------------------ pairing and keys

test('a pairing code is exchanged once; the second use is code_spent', () => {
  const { hub } = makeHub();
  const { channel, pairCode } = hub.create();
  assert.ok(pairCode);
  const { controllerKey, controllerHash } = hub.pair(channel, pairCode);
  assert.match(controllerKey, /^[A-Za-z0-9_-]{32}$/);
  assert.equal(controllerHash, hashSecret(controllerKey));
  assert.deepEqual([...channel.controllers], [controllerHash]);
  assert.equal(channel.pairCodeHash, null);
  assert.throws(() => hub.pair(channel, pairCode), isHubError('code_spent'));
  assert.equal(channel.controllers.size, 1);
});

test('a wrong pairing code is refused', () => {
  const { hub } = makeHub();
  const { channel } = hub.create();
  assert.throws(() => hub.pair(channel, newSecret()), isHubError('code_spent'));
  assert.equal(channel.controllers.size, 0);
  assert.notEqual(channel.pairCodeHash, null, 'a wrong guess does not burn the real code');
});

test('issuing a new code invalidates the old one', () => {
  const { hub } = makeHub();
  const { channel, pairCode: old } = hub.create();
  const fresh = hub.issuePairCode(channel);
  assert.notEqual(fresh, old);
  assert.throws(() => hub.pair(channel, old ?? ''), isHubError('code_spent'));
  assert.equal(hub.pair(channel, fresh).controllerHash.length, 43);
});

test('a code from another channel does not pair', () => {
  const { hub } = makeHub();
  const a = hub.create();
  const b = hub.create();
  assert.throws(() => hub.pair(b.channel, a.pairCode ?? ''), isHubError('code_spent'));
});

test('canCommand accepts controller and deck keys, and nothing else', () => {
  const { hub } = makeHub();
  const { channel, deckKey, pairCode } = hub.create();
  const other = hub.create();
  const { controllerKey } = hub.pair(channel, pairCode ?? '');
  assert.equal(hub.canCommand(channel, controllerKey), true);
  assert.equal(hub.canCommand(channel, deckKey), true);
  assert.equal(hub.canCommand(channel, undefined), false);
  assert.equal(hub.canCommand(channel, newSecret()), false);
  assert.equal(hub.canCommand(channel, pairCode ?? ''), false, 'a spent pairing code is not a key');
  assert.equal(hub.canCommand(channel, hashSecret(controllerKey)), false, 'the hash is not the key');
  assert.equal(hub.canCommand(other.channel, controllerKey), false);
  assert.equal(hub.canCommand(other.channel, deckKey), false);
  assert.equal(hub.isDeck(channel, deckKey), true);
  assert.equal(hub.isDeck(channel, controllerKey), false);
});

test('revoked controller keys stop working; revoking one leaves the others', () => {
  const { hub } = makeHub();
  const { channel, deckKey, pairCode } = hub.create();
  const a = hub.pair(channel, pairCode ?? '');
  const b = hub.pair(channel, hub.issuePairCode(channel));
  assert.equal(hub.revoke(channel, a.controllerHash), 1);
  assert.equal(hub.canCommand(channel, a.controllerKey), false);
  assert.equal(hub.canCommand(channel, b.controllerKey), true);
  assert.equal(hub.revoke(channel, a.controllerHash), 0);
  assert.equal(hub.revoke(channel), 1);
  assert.equal(hub.canCommand(channel, b.controllerKey), false);
  assert.equal(hub.canCommand(channel, deckKey), true);
});

// ------------------------------------------------------------------ register

test('register on a live channel with the wrong key is forbidden', () => {
  const { hub } = makeHub();
  const { channel } = hub.create();
  assert.throws(() => hub.register(channel.id, newSecret(), Register.parse({})), isHubError('forbidden'));
});

test('register on a live channel with its key keeps the channel and its controllers', () => {
  const { hub } = makeHub();
  const { channel, deckKey, pairCode } = hub.create();
  const { controllerKey } = hub.pair(channel, pairCode ?? '');
  const seq = channel.seq;
  const again = hub.register(channel.id, deckKey, Register.parse({ controllers: [hashSecret(newSecret())], lastEventId: 500 }));
  assert.equal(again.channel, channel);
  assert.equal(again.pairCode, null, 'a paired deck is not handed a new code');
  assert.equal(channel.controllers.size, 1, 'a live channel ignores the sent controller list');
  assert.equal(channel.seq, seq, 'a live channel keeps its own ids');
  assert.equal(hub.canCommand(channel, controllerKey), true);
});

test('register of an unknown id that does not derive from the key is forbidden', () => {
  const { hub } = makeHub();
  const someoneElses = channelIdFor(newSecret());
  assert.throws(() => hub.register(someoneElses, newSecret(), Register.parse({})), isHubError('forbidden'));
  assert.equal(hub.stats().channels, 0);
});

test('register with the right key restores the channel after a restart', () => {
  const before = makeHub().hub;
  const created = before.create();
  const { controllerKey, controllerHash } = before.pair(created.channel, created.pairCode ?? '');

  const { hub } = makeHub(); // a fresh process
  const body = Register.parse({ controllers: [controllerHash], lastEventId: 41, report: { state } });
  const restored = hub.register(created.channel.id, created.deckKey, body);
  assert.equal(restored.channel.id, created.channel.id);
  assert.equal(restored.pairCode, null);
  assert.deepEqual(restored.channel.state, state);
  assert.equal(restored.channel.deckHash, hashSecret(created.deckKey));
  assert.equal(hub.canCommand(restored.channel, controllerKey), true);
  assert.equal(hub.canCommand(restored.channel, created.deckKey), true);
  assert.equal(hub.command(restored.channel, next()).eventId, 42);
  assert.equal(hub.get(created.channel.id), restored.channel);
});

test('a restored channel without controllers gets a fresh pairing code', () => {
  const deckKey = newSecret();
  const { hub } = makeHub();
  const restored = hub.register(channelIdFor(deckKey), deckKey, Register.parse({ lastEventId: 7 }));
  assert.ok(restored.pairCode);
  assert.equal(restored.channel.seq, 8, 'the presence event follows the last id');
  assert.equal(hub.pair(restored.channel, restored.pairCode).controllerHash.length, 43);
});

// ------------------------------------------------------------------ limits

test('maxChannels refuses creation and registration beyond the cap', () => {
  const { hub } = makeHub({ maxChannels: 2 });
  hub.create();
  hub.create();
  assert.throws(() => hub.create(), isHubError('too_many_channels'));
  const deckKey = newSecret();
  assert.throws(() => hub.register(channelIdFor(deckKey), deckKey, Register.parse({})), isHubError('too_many_channels'));
  assert.equal(hub.stats().channels, 2);
});

test('at the channel cap, idle channels are swept to make room', () => {
  const { hub, clock } = makeHub({ maxChannels: 1, channelTtlMs: 1_000 });
  const old = hub.create();
  clock.t += 1_001;
  const fresh = hub.create();
  assert.throws(() => hub.get(old.channel.id), isHubError('not_found'));
  assert.equal(hub.get(fresh.channel.id), fresh.channel);
});

test('maxSubscribersPerChannel refuses before writing anything; unsubscribe frees the slot', () => {
  const { hub } = makeHub({ maxSubscribersPerChannel: 2 });
  const { channel } = hub.create();
  const first = hub.subscribe(channel, new RecordingSink(), 'a', undefined);
  hub.subscribe(channel, new RecordingSink(), 'b', undefined);
  const refused = new RecordingSink();
  assert.throws(() => hub.subscribe(channel, refused, 'c', undefined), isHubError('too_many_subscribers'));
  assert.equal(refused.chunks.length, 0);
  first();
  hub.subscribe(channel, new RecordingSink(), 'c', undefined);
  assert.equal(channel.subscribers.size, 2);
});

test('maxSubscribersPerIp counts across channels; unsubscribe frees the count', () => {
  const { hub } = makeHub({ maxSubscribersPerIp: 2 });
  const a = hub.create().channel;
  const b = hub.create().channel;
  const unsubscribe = hub.subscribe(a, new RecordingSink(), '10.0.0.9', undefined);
  hub.subscribe(b, new RecordingSink(), '10.0.0.9', undefined);
  const refused = new RecordingSink();
  assert.throws(() => hub.subscribe(b, refused, '10.0.0.9', undefined), isHubError('too_many_subscribers_ip'));
  assert.equal(refused.chunks.length, 0);
  hub.subscribe(b, new RecordingSink(), '10.0.0.10', undefined);
  unsubscribe();
  unsubscribe(); // a second call must not free a second slot
  hub.subscribe(a, new RecordingSink(), '10.0.0.9', undefined);
  assert.throws(() => hub.subscribe(a, new RecordingSink(), '10.0.0.9', undefined), isHubError('too_many_subscribers_ip'));
  assert.deepEqual(hub.stats(), { channels: 2, subscribers: 3 });
});

test('an unsubscribed sink receives nothing more', () => {
  const { hub } = makeHub();
  const { channel } = hub.create();
  const sink = new RecordingSink();
  const unsubscribe = hub.subscribe(channel, sink, 'ip', undefined);
  unsubscribe();
  const written = sink.chunks.length;
  assert.equal(hub.command(channel, next()).delivered, 0);
  assert.equal(sink.chunks.length, written);
  assert.equal(hub.stats().subscribers, 0);
});

test('a sink with more than maxQueuedBytes queued is ended on publish, not written to', () => {
  const { hub } = makeHub({ maxQueuedBytes: 100 });
  const { channel } = hub.create();
  const slow = new RecordingSink();
  const fast = new RecordingSink();
  hub.subscribe(channel, slow, 'a', undefined);
  hub.subscribe(channel, fast, 'b', undefined);
  slow.writableLength = 100; // at the limit is still fine
  assert.equal(hub.command(channel, next()).delivered, 2);
  assert.equal(slow.ended, 0);
  const written = slow.chunks.length;
  slow.writableLength = 101;
  const r = hub.command(channel, next());
  assert.equal(r.delivered, 1);
  assert.equal(slow.ended, 1);
  assert.equal(slow.chunks.length, written);
  assert.equal(fast.ended, 0);
  assert.equal(fast.events().at(-1)?.id, String(r.eventId));
});

test('nothing is written to a cut-off sink afterwards: no event, heartbeat or broadcast', (t) => {
  // On a real response a write after end() is an uncaught ERR_STREAM_WRITE_AFTER_END.
  t.mock.timers.enable({ apis: ['setInterval'] });
  const { hub } = makeHub({ maxQueuedBytes: 100, heartbeatMs: 1_000 });
  const { channel } = hub.create();
  const slow = new RecordingSink();
  const fast = new RecordingSink();
  hub.subscribe(channel, slow, 'a', undefined);
  hub.subscribe(channel, fast, 'b', undefined);
  hub.start();
  slow.writableLength = 101;
  hub.command(channel, next());
  const written = slow.chunks.length;
  hub.command(channel, next());
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

// ------------------------------------------------------------------ sweep, timers, close

test('sweep drops idle channels without subscribers after channelTtlMs', () => {
  const { hub, clock } = makeHub({ channelTtlMs: 10_000 });
  const idle = hub.create().channel;
  const watched = hub.create().channel;
  const busy = hub.create().channel;
  hub.subscribe(watched, new RecordingSink(), 'ip', undefined);
  clock.t += 5_000;
  hub.command(busy, next());
  clock.t += 5_000;
  assert.equal(hub.sweep(), 0, 'exactly at the TTL is not yet idle');
  clock.t += 1;
  assert.equal(hub.sweep(), 1);
  assert.throws(() => hub.get(idle.id), isHubError('not_found'));
  assert.equal(hub.get(watched.id), watched, 'a channel with a subscriber stays');
  assert.equal(hub.get(busy.id), busy, 'recent traffic keeps a channel');
  clock.t += 5_000;
  assert.equal(hub.sweep(), 1);
  assert.throws(() => hub.get(busy.id), isHubError('not_found'));
});

test('the last unsubscribe starts the idle clock', () => {
  const { hub, clock } = makeHub({ channelTtlMs: 1_000 });
  const { channel } = hub.create();
  const unsubscribe = hub.subscribe(channel, new RecordingSink(), 'ip', undefined);
  clock.t += 5_000;
  unsubscribe();
  clock.t += 999;
  assert.equal(hub.sweep(), 0);
  clock.t += 2;
  assert.equal(hub.sweep(), 1);
});

test('start sends heartbeat comments on every stream and sweeps idle channels', (t) => {
  t.mock.timers.enable({ apis: ['setInterval'] });
  const { hub, clock } = makeHub({ heartbeatMs: 1_000, channelTtlMs: 5_000 });
  const { channel } = hub.create();
  const idle: Channel = hub.create().channel;
  const sink = new RecordingSink();
  hub.subscribe(channel, sink, 'ip', undefined);
  hub.start();
  const before = sink.chunks.length;
  t.mock.timers.tick(1_000);
  assert.equal(sink.chunks.length, before + 1);
  assert.equal(sink.chunks.at(-1)?.toString('utf8'), ':\n\n');
  clock.t += 5_001;
  t.mock.timers.tick(4_000); // the sweep runs every min(TTL, 60 s)
  assert.throws(() => hub.get(idle.id), isHubError('not_found'));
  assert.equal(hub.get(channel.id), channel);
  hub.close();
  const after = sink.chunks.length;
  t.mock.timers.tick(10_000);
  assert.equal(sink.chunks.length, after, 'close stops the heartbeat');
});

test('close ends every open stream on every channel', () => {
  const { hub } = makeHub();
  const [s0, s1, s2] = [new RecordingSink(), new RecordingSink(), new RecordingSink()] as const;
  const a = hub.create().channel;
  const b = hub.create().channel;
  hub.subscribe(a, s0, 'x', undefined);
  hub.subscribe(a, s1, 'y', undefined);
  hub.subscribe(b, s2, 'z', undefined);
  const unsubscribed = new RecordingSink();
  hub.subscribe(b, unsubscribed, 'z', undefined)();
  hub.close();
  assert.deepEqual(
    [s0, s1, s2].map((s) => s.ended),
    [1, 1, 1],
  );
  assert.equal(unsubscribed.ended, 0);
});
