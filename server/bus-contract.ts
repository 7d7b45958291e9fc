// The contract every Bus implementation passes: one suite, run against the
// memory bus (bus-memory.test.ts) and against Redis. It checks only what the
// Bus interface promises, through that interface, so a second implementation
// cannot drift from the first without a test saying so.
//
// How to run it against a bus:
//
//   runBusContract('redis', async (limits, now) => {
//     const bus = new RedisBus({ url, limits, now });
//     await bus.connected();
//     return { bus, cleanup: () => bus.close() };
//   }, { multiInstance: true });
//
// - createBus is called once per test (twice for the cross-instance cases),
//   with the limits that test needs and a clock the test moves by hand. The
//   bus must take every time it decides on (event age, channel expiry) from
//   that `now`, not from its store's own clock.
// - Channel ids are fresh random ones in every test, so instances may share
//   one store across tests; `count()` is checked relative to its value at the
//   start of the test, so nothing else may create channels on that store
//   while the suite runs.
// - With `multiInstance`, every call must return an instance on the SAME
//   shared store, already listening for other instances' events once its
//   promise resolves.
// - Expiry is checked only when `expire` is given: it must drop every channel
//   idle for longer than the TTL by the bus's clock (the memory bus's sweep).
//   A store that expires keys on its own clock (Redis PEXPIRE) cannot be moved
//   by the test's clock; leave `expire` out and those cases are reported as skipped.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { EVENT, MAX_CONTROLLERS, slideshowData, type DeckState, type Question, type SlideRef } from '../protocol/messages';
import { ChannelGone, ControllersFull, MAX_REFUSED, NotAuthor, QUESTIONS_KEPT, type Bus, type BusEvent, type BusLimits, type ChannelRecord, type NewChannel } from './bus';
import { channelIdFor, hashSecret, newSecret } from './keys';

export interface ContractBus {
  bus: Bus;
  /** Closes the instance (and may delete what it stored). */
  cleanup(): Promise<void>;
}

export type CreateBus = (limits: BusLimits, now: () => number) => Promise<ContractBus>;

export interface BusContractOptions {
  /** createBus returns instances on one shared store: also run the cross-instance cases. */
  multiInstance?: boolean;
  /** Drops every channel idle for longer than the TTL, by the bus's clock. Without it the expiry cases are skipped. */
  expire?: (bus: Bus) => Promise<void>;
}

const LIMITS: BusLimits = { historyMax: 100, historyMaxAgeMs: 60_000, channelTtlMs: 60_000 };

/** Only as long as a broken bus would otherwise hang the run; no assertion depends on it. */
const HANG_GUARD = { timeout: 10_000 };

class Clock {
  t = 1_700_000_000_000;
  readonly now = (): number => this.t;
}

const deckState = (title: string): DeckState => ({
  indexh: 1,
  indexv: 0,
  indexf: -1,
  fragments: 0,
  paused: false,
  position: 2,
  total: 5,
  isFirst: false,
  isLast: false,
  title,
  notes: 'first line\nsecond line',
  nextTitle: 'Three',
});

const SLIDES: SlideRef[] = [
  { h: 0, v: 0, title: 'One' },
  { h: 1, v: 0, title: 'Two' },
];

/** A fresh channel as the hub makes one: the id derives from a new deck key. */
export function newRecord(overrides: Partial<Omit<NewChannel, 'id'>> = {}): NewChannel {
  const deckKey = newSecret();
  return {
    id: channelIdFor(deckKey),
    deckHash: hashSecret(deckKey),
    controllers: [],
    pairCodeHash: null,
    state: null,
    slides: null,
    questionsOpen: true,
    spotlight: null,
    ...overrides,
  };
}

let asked = 0;
const question = (text = `Question ${++asked}?`): Question => ({ id: newSecret().slice(0, 12), text, at: 1_700_000_000_000 + asked, status: 'pending' });

const newHash = (): string => hashSecret(newSecret());

/** Controllers are a set: a store need not keep their order. */
const sorted = (xs: readonly string[]): string[] => [...xs].sort();

/** The fields every bus carries; `at` is optional metadata for metrics. */
const plain = (ev: BusEvent): BusEvent => ({ id: ev.id, event: ev.event, data: ev.data });

const isGone = (id: string) => (err: unknown) => {
  assert.ok(err instanceof ChannelGone, `expected ChannelGone, got ${String(err)}`);
  assert.equal(err.id, id);
  return true;
};

/** Records what one instance hears from the others, and lets a test wait for a given event. */
class Heard {
  readonly events: { channelId: string; event: BusEvent }[] = [];
  private readonly waiting: { done: () => boolean; resolve: () => void }[] = [];

  constructor(bus: Bus) {
    bus.onRemote((channelId, event) => {
      this.events.push({ channelId, event: plain(event) });
      for (const w of [...this.waiting]) {
        if (w.done()) {
          this.waiting.splice(this.waiting.indexOf(w), 1);
          w.resolve();
        }
      }
    });
  }

  on(channelId: string): BusEvent[] {
    return this.events.filter((e) => e.channelId === channelId).map((e) => e.event);
  }

  /** Resolves once event `id` of the channel has been heard. */
  until(channelId: string, id: number): Promise<void> {
    const done = () => this.on(channelId).some((e) => e.id === id);
    if (done()) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push({ done, resolve }));
  }
}

export function runBusContract(name: string, createBus: CreateBus, opts: BusContractOptions = {}): void {
  async function open(t: TestContext, limits: Partial<BusLimits> = {}, clock = new Clock()): Promise<{ bus: Bus; clock: Clock }> {
    const made = await createBus({ ...LIMITS, ...limits }, clock.now);
    t.after(() => made.cleanup());
    return { bus: made.bus, clock };
  }

  async function created(bus: Bus, overrides: Partial<Omit<NewChannel, 'id'>> = {}, seq = 0): Promise<string> {
    const record = newRecord(overrides);
    assert.equal(await bus.create(record, seq), true);
    return record.id;
  }

  describe(`Bus contract: ${name}`, () => {
    // -------------------------------------------------------------- records

    test('create stores a channel and get reads it back with its last id', async (t) => {
      const { bus } = await open(t);
      const record = newRecord();
      assert.equal(await bus.get(record.id), null);
      assert.equal(await bus.create(record, 0), true);
      assert.deepEqual(await bus.get(record.id), { ...record, seq: 0, refused: [], slideshow: false });
    });

    test('create keeps every field it is given: controllers, pairing code, state, outline, questions', async (t) => {
      const { bus } = await open(t);
      const record = newRecord({
        controllers: [newHash(), newHash()],
        pairCodeHash: newHash(),
        state: deckState('Two'),
        slides: SLIDES,
        questionsOpen: false,
        spotlight: { id: 'q-123456789a', text: 'Why?' },
      });
      assert.equal(await bus.create(record, 7), true);
      const got = await bus.get(record.id);
      assert.ok(got);
      assert.deepEqual({ ...got, controllers: sorted(got.controllers) }, { ...record, controllers: sorted(record.controllers), seq: 7, refused: [], slideshow: false });
    });

    test('a second create of a taken id is refused and changes nothing', async (t) => {
      const { bus } = await open(t);
      const first = newRecord({ controllers: [newHash()] });
      assert.equal(await bus.create(first, 3), true);
      const impostor = { ...newRecord({ controllers: [newHash(), newHash()], state: deckState('Not mine') }), id: first.id };
      assert.equal(await bus.create(impostor, 500), false);
      assert.deepEqual(await bus.get(first.id), { ...first, seq: 3, refused: [], slideshow: false });
    });

    test('a record read is a copy: changing it, or what was passed to create, changes nothing stored', async (t) => {
      const { bus } = await open(t);
      const controller = newHash();
      const record = newRecord({ controllers: [controller] });
      await bus.create(record, 0);
      record.controllers.push(newHash());
      const got = await bus.get(record.id);
      assert.ok(got);
      got.controllers.push(newHash());
      assert.deepEqual((await bus.get(record.id))?.controllers, [controller]);
    });

    test('ids continue after the seq given at creation, and nothing before it is resumable', async (t) => {
      const { bus } = await open(t);
      const id = await created(bus, {}, 41);
      assert.equal((await bus.get(id))?.seq, 41);
      assert.deepEqual(await bus.since(id, 41), { events: [], complete: true, last: 41 });
      assert.equal((await bus.since(id, 40)).complete, false, 'event 41 was never in this store');
      assert.deepEqual(await bus.append(id, 'command', 'a', { keep: true }), { eventId: 42, duplicate: false });
      assert.deepEqual(await bus.append(id, 'state', 'b'), { eventId: 43, duplicate: false });
      assert.equal((await bus.get(id))?.seq, 43);
    });

    test('an unknown channel: get is null, every other operation throws ChannelGone', async (t) => {
      const { bus } = await open(t);
      const id = newRecord().id;
      assert.equal(await bus.get(id), null);
      await assert.rejects(bus.setPairCode(id, newHash()), isGone(id));
      await assert.rejects(bus.setPairCode(id, null), isGone(id));
      await assert.rejects(bus.spendPairCode(id, newHash(), newHash()), isGone(id));
      await assert.rejects(bus.revoke(id), isGone(id));
      await assert.rejects(bus.revoke(id, newHash()), isGone(id));
      await assert.rejects(bus.setState(id, deckState('x')), isGone(id));
      await assert.rejects(bus.append(id, 'command', '{}', { keep: true, dedup: 'cmd-00000001' }), isGone(id));
      await assert.rejects(bus.since(id, 0), isGone(id));
      await assert.rejects(bus.addQuestion(id, question()), isGone(id));
      await assert.rejects(bus.questions(id), isGone(id));
      await assert.rejects(bus.moderate(id, 'q-123456789a', 'shown'), isGone(id));
      await assert.rejects(bus.setQuestionsOpen(id, false), isGone(id));
      await assert.rejects(bus.slideshowStreams(id, true, Date.now() + 60_000), isGone(id));
      await assert.rejects(bus.slideshowStreams(id, false, 0), isGone(id));
      assert.equal(await bus.get(id), null, 'none of them created it');
    });

    test('touch ignores unknown ids and does not create them', async (t) => {
      const { bus } = await open(t);
      const before = await bus.count();
      const unknown = newRecord().id;
      await bus.touch([unknown]);
      await bus.touch([]);
      assert.equal(await bus.get(unknown), null);
      assert.equal(await bus.count(), before);
    });

    // -------------------------------------------------------------- pairing

    test('setPairCode opens, replaces and closes pairing, answering the presence', async (t) => {
      const { bus } = await open(t);
      const id = await created(bus, { controllers: [newHash()] });
      const first = newHash();
      assert.deepEqual(await bus.setPairCode(id, first), { controllers: 1, pairingOpen: true });
      assert.equal((await bus.get(id))?.pairCodeHash, first);
      const second = newHash();
      assert.deepEqual(await bus.setPairCode(id, second), { controllers: 1, pairingOpen: true });
      assert.equal(await bus.spendPairCode(id, first, newHash()), null, 'a replaced code no longer pairs');
      assert.deepEqual(await bus.setPairCode(id, null), { controllers: 1, pairingOpen: false });
      assert.equal((await bus.get(id))?.pairCodeHash, null);
      assert.equal(await bus.spendPairCode(id, second, newHash()), null, 'a closed code no longer pairs');
      assert.equal((await bus.get(id))?.controllers.length, 1);
    });

    test('spendPairCode spends the open code once and adds the controller', async (t) => {
      const { bus } = await open(t);
      const id = await created(bus);
      const code = newHash();
      await bus.setPairCode(id, code);
      assert.equal(await bus.spendPairCode(id, newHash(), newHash()), null, 'a wrong code');
      const afterWrong = await bus.get(id);
      assert.equal(afterWrong?.pairCodeHash, code, 'a wrong guess does not burn the real code');
      assert.deepEqual(afterWrong?.controllers, []);
      const controller = newHash();
      assert.deepEqual(await bus.spendPairCode(id, code, controller), { controllers: 1, pairingOpen: false });
      const record = await bus.get(id);
      assert.deepEqual(record?.controllers, [controller]);
      assert.equal(record?.pairCodeHash, null);
      assert.equal(await bus.spendPairCode(id, code, newHash()), null, 'spent');
      assert.deepEqual((await bus.get(id))?.controllers, [controller]);
    });

    test('refuse keeps the waiting phones the slideshow refused while their code is open, the newest MAX_REFUSED; a new code or its use clears them', async (t) => {
      const { bus } = await open(t);
      const id = await created(bus);
      assert.deepEqual((await bus.get(id))?.refused, [], 'none at first');
      const code = newHash();
      await bus.setPairCode(id, code);
      const [a, b] = [newHash(), newHash()];
      assert.equal(await bus.refuse(id, code, a), true);
      assert.equal(await bus.refuse(id, code, a), true, 'again: no harm');
      assert.equal(await bus.refuse(id, code, b), true);
      assert.deepEqual((await bus.get(id))?.refused, [a, b]);
      assert.equal(await bus.refuse(id, newHash(), newHash()), false, 'not under another code');
      assert.deepEqual((await bus.get(id))?.refused, [a, b]);
      // Bounded: the oldest go first.
      const many = Array.from({ length: MAX_REFUSED + 5 }, () => newHash());
      for (const h of many) await bus.refuse(id, code, h);
      assert.deepEqual((await bus.get(id))?.refused, many.slice(-MAX_REFUSED));
      // A new code starts over; so does the code's use.
      const second = newHash();
      await bus.setPairCode(id, second);
      assert.deepEqual((await bus.get(id))?.refused, []);
      assert.equal(await bus.refuse(id, code, a), false, 'the old code is gone');
      assert.equal(await bus.refuse(id, second, a), true);
      await bus.spendPairCode(id, second, newHash());
      assert.deepEqual((await bus.get(id))?.refused, []);
      assert.equal(await bus.refuse(id, second, b), false, 'a spent code refuses nothing');
      await assert.rejects(bus.refuse('no-such-channel-000000', code, a), ChannelGone);
    });

    test('a channel pairs MAX_CONTROLLERS phones at most: one more is refused with ControllersFull, and the code stays open', async (t) => {
      const { bus } = await open(t);
      const paired = Array.from({ length: MAX_CONTROLLERS }, () => newHash());
      const id = await created(bus, { controllers: paired.slice(0, -1) });
      const code = newHash();
      await bus.setPairCode(id, code);
      assert.deepEqual(await bus.spendPairCode(id, code, paired.at(-1)!), { controllers: MAX_CONTROLLERS, pairingOpen: false });
      const next = newHash();
      await bus.setPairCode(id, next);
      await assert.rejects(bus.spendPairCode(id, next, newHash()), ControllersFull);
      const record = await bus.get(id);
      assert.equal(record?.pairCodeHash, next, 'not spent');
      assert.equal(record?.controllers.length, MAX_CONTROLLERS);
      // A phone already paired may spend it (nothing is added), and a revoke makes room.
      assert.deepEqual(await bus.spendPairCode(id, next, paired[0]!), { controllers: MAX_CONTROLLERS, pairingOpen: false });
      await bus.revoke(id, paired[1]);
      const third = newHash();
      await bus.setPairCode(id, third);
      assert.deepEqual(await bus.spendPairCode(id, third, newHash()), { controllers: MAX_CONTROLLERS, pairingOpen: false });
    });

    test('of many concurrent spends of one code, exactly one wins', async (t) => {
      const { bus } = await open(t);
      const id = await created(bus);
      const code = newHash();
      await bus.setPairCode(id, code);
      const controllers = Array.from({ length: 16 }, newHash);
      const results = await Promise.all(controllers.map((c) => bus.spendPairCode(id, code, c)));
      const winners = controllers.filter((_, i) => results[i] !== null);
      assert.equal(winners.length, 1);
      assert.deepEqual(results.find((r) => r !== null), { controllers: 1, pairingOpen: false });
      assert.deepEqual((await bus.get(id))?.controllers, winners);
    });

    test("an append that names its author appends only while that key is the deck's or a paired controller's", async (t) => {
      const { bus } = await open(t);
      const [a, b] = [newHash(), newHash()];
      const record = newRecord({ controllers: [a, b] });
      assert.equal(await bus.create(record, 0), true);
      const id = record.id;
      assert.equal((await bus.append(id, 'command', '{}', { keep: true, author: a })).eventId, 1);
      assert.equal((await bus.append(id, 'command', '{}', { keep: true, author: record.deckHash })).eventId, 2);
      await assert.rejects(bus.append(id, 'command', '{}', { keep: true, author: newHash() }), NotAuthor);
      await bus.revoke(id, a);
      // A retry of a tap it made before (the same dedup key) is refused as well, not answered as a duplicate.
      await assert.rejects(bus.append(id, 'command', '{}', { keep: true, author: a }), NotAuthor);
      await assert.rejects(bus.append(id, 'command', '{}', { keep: true, dedup: 'tap-0001', author: a }), NotAuthor);
      assert.equal((await bus.append(id, 'command', '{}', { keep: true, author: b })).eventId, 3);
      assert.deepEqual((await bus.since(id, 0)).events.map((e) => e.id), [1, 2, 3], 'nothing was appended for a refused author');
    });

    test('revoke removes one controller or all, answering how many and the presence', async (t) => {
      const { bus } = await open(t);
      const [a, b, c] = [newHash(), newHash(), newHash()];
      const id = await created(bus, { controllers: [a, b, c] });
      await bus.setPairCode(id, newHash());
      assert.deepEqual(await bus.revoke(id, b), { removed: 1, presence: { controllers: 2, pairingOpen: true } });
      assert.deepEqual(sorted((await bus.get(id))?.controllers ?? []), sorted([a, c]));
      assert.deepEqual(await bus.revoke(id, b), { removed: 0, presence: { controllers: 2, pairingOpen: true } });
      assert.deepEqual(await bus.revoke(id), { removed: 2, presence: { controllers: 0, pairingOpen: true } });
      assert.deepEqual((await bus.get(id))?.controllers, []);
      await bus.setPairCode(id, null);
      assert.deepEqual(await bus.revoke(id), { removed: 0, presence: { controllers: 0, pairingOpen: false } });
      // Revoking does not end the channel: a new controller can pair.
      const code = newHash();
      await bus.setPairCode(id, code);
      assert.deepEqual(await bus.spendPairCode(id, code, a), { controllers: 1, pairingOpen: false });
    });

    // -------------------------------------------------------------- state

    test('setState stores the state, and the outline only when one is given', async (t) => {
      const { bus } = await open(t);
      const id = await created(bus);
      await bus.setState(id, deckState('Two'), SLIDES);
      let record = await bus.get(id);
      assert.deepEqual(record?.state, deckState('Two'));
      assert.deepEqual(record?.slides, SLIDES);
      await bus.setState(id, deckState('Three'));
      record = await bus.get(id);
      assert.deepEqual(record?.state, deckState('Three'));
      assert.deepEqual(record?.slides, SLIDES, 'a state without an outline keeps the last one');
      await bus.setState(id, deckState('Four'), []);
      assert.deepEqual((await bus.get(id))?.slides, []);
      assert.equal((await bus.get(id))?.seq, 0, 'setState publishes nothing by itself');
    });

    // -------------------------------------------------------------- questions

    test('addQuestion keeps questions newest first and answers the summary', async (t) => {
      const { bus } = await open(t);
      const id = await created(bus);
      const first = question('Grüße — what about "quotes" / slashes? 🎉');
      const second = question();
      assert.deepEqual(await bus.addQuestion(id, first), { open: true, pending: 1 });
      assert.deepEqual(await bus.addQuestion(id, second), { open: true, pending: 2 });
      const listed = await bus.questions(id);
      assert.deepEqual(listed, [second, first]);
      const [head] = listed;
      assert.ok(head);
      head.status = 'dismissed';
      assert.deepEqual(await bus.questions(id), [second, first], 'the list read is a copy');
      assert.equal((await bus.get(id))?.seq, 0, 'asking publishes nothing by itself');
    });

    test(`only the newest ${QUESTIONS_KEPT} questions are kept`, async (t) => {
      const { bus } = await open(t);
      const id = await created(bus);
      const all = Array.from({ length: QUESTIONS_KEPT + 2 }, () => question());
      let summary = { open: false, pending: 0 };
      for (const q of all) summary = await bus.addQuestion(id, q);
      assert.deepEqual(summary, { open: true, pending: QUESTIONS_KEPT });
      assert.deepEqual(await bus.questions(id), all.slice(2).reverse());
    });

    test('moderate shows a question in the spotlight; dismissing it clears the spotlight', async (t) => {
      const { bus } = await open(t);
      const id = await created(bus);
      const [a, b] = [question(), question()];
      await bus.addQuestion(id, a);
      await bus.addQuestion(id, b);
      assert.deepEqual(await bus.moderate(id, a.id, 'shown'), { spotlight: { id: a.id, text: a.text }, summary: { open: true, pending: 1 } });
      assert.deepEqual((await bus.get(id))?.spotlight, { id: a.id, text: a.text });
      assert.deepEqual(await bus.moderate(id, b.id, 'dismissed'), { spotlight: { id: a.id, text: a.text }, summary: { open: true, pending: 0 } }, 'dismissing another question leaves the spotlight');
      assert.deepEqual(
        (await bus.questions(id)).map((q) => [q.id, q.status]),
        [
          [b.id, 'dismissed'],
          [a.id, 'shown'],
        ],
      );
      assert.deepEqual(await bus.moderate(id, a.id, 'dismissed'), { spotlight: null, summary: { open: true, pending: 0 } });
      assert.equal((await bus.get(id))?.spotlight, null);
      assert.equal(await bus.moderate(id, 'q-not-asked1', 'shown'), null);
      assert.equal((await bus.get(id))?.spotlight, null);
    });

    test('setQuestionsOpen closes and reopens asking, answering the summary', async (t) => {
      const { bus } = await open(t);
      const id = await created(bus);
      await bus.addQuestion(id, question());
      assert.deepEqual(await bus.setQuestionsOpen(id, false), { open: false, pending: 1 });
      assert.equal((await bus.get(id))?.questionsOpen, false);
      assert.deepEqual(await bus.addQuestion(id, question()), { open: false, pending: 2 }, 'the hub refuses questions; the bus only reports');
      assert.deepEqual(await bus.setQuestionsOpen(id, true), { open: true, pending: 2 });
      assert.equal((await bus.get(id))?.questionsOpen, true);
    });

    // -------------------------------------------------------------- events and history

    test('append gives consecutive ids; kept events enter the history, others only take an id', async (t) => {
      const { bus } = await open(t);
      const id = await created(bus);
      const awkward = JSON.stringify({ text: 'Grüße, "quoted", ⟨unicode⟩ 🎉', lines: 'a\nb' });
      assert.deepEqual(await bus.append(id, 'command', awkward, { keep: true }), { eventId: 1, duplicate: false });
      assert.deepEqual(await bus.append(id, 'state', '{"s":2}'), { eventId: 2, duplicate: false });
      assert.deepEqual(await bus.append(id, 'presence', '{"p":3}', { keep: false }), { eventId: 3, duplicate: false });
      assert.deepEqual(await bus.append(id, 'command', '{"c":4}', { keep: true }), { eventId: 4, duplicate: false });
      const history = await bus.since(id, 0);
      assert.equal(history.complete, true);
      assert.equal(history.last, 4);
      assert.deepEqual(history.events.map(plain), [
        { id: 1, event: 'command', data: awkward },
        { id: 4, event: 'command', data: '{"c":4}' },
      ]);
      assert.deepEqual((await bus.since(id, 1)).events.map(plain), [{ id: 4, event: 'command', data: '{"c":4}' }]);
      assert.equal((await bus.get(id))?.seq, 4);
    });

    test('each channel has its own ids', async (t) => {
      const { bus } = await open(t);
      const a = await created(bus);
      const b = await created(bus, {}, 100);
      assert.equal((await bus.append(a, 'command', '{}', { keep: true })).eventId, 1);
      assert.equal((await bus.append(b, 'command', '{}', { keep: true })).eventId, 101);
      assert.equal((await bus.append(a, 'command', '{}', { keep: true })).eventId, 2);
      assert.deepEqual(
        (await bus.since(b, 100)).events.map((e) => e.id),
        [101],
      );
    });

    test('a repeated dedup key appends nothing and answers the first id', async (t) => {
      const { bus } = await open(t);
      const id = await created(bus);
      const other = await created(bus);
      assert.deepEqual(await bus.append(id, 'command', '{"n":1}', { keep: true, dedup: 'cmd-aaaaaaaa' }), { eventId: 1, duplicate: false });
      assert.deepEqual(await bus.append(id, 'command', '{"n":2}', { keep: true }), { eventId: 2, duplicate: false });
      assert.deepEqual(await bus.append(id, 'command', '{"n":"retry"}', { keep: true, dedup: 'cmd-aaaaaaaa' }), { eventId: 1, duplicate: true });
      assert.equal((await bus.get(id))?.seq, 2, 'no id was taken');
      assert.deepEqual(
        (await bus.since(id, 0)).events.map((e) => e.data),
        ['{"n":1}', '{"n":2}'],
      );
      assert.deepEqual(await bus.append(id, 'command', '{"n":3}', { keep: true, dedup: 'cmd-bbbbbbbb' }), { eventId: 3, duplicate: false });
      assert.deepEqual(await bus.append(other, 'command', '{}', { keep: true, dedup: 'cmd-aaaaaaaa' }), { eventId: 1, duplicate: false }, 'keys are per channel');
    });

    test('the history keeps the last historyMax kept events; an id below them is not resumable', async (t) => {
      const { bus } = await open(t, { historyMax: 3 });
      const id = await created(bus);
      for (let i = 1; i <= 5; i++) assert.equal((await bus.append(id, 'command', `{"n":${i}}`, { keep: true })).eventId, i);
      const fromFloor = await bus.since(id, 2);
      assert.equal(fromFloor.complete, true);
      assert.deepEqual(
        fromFloor.events.map((e) => e.id),
        [3, 4, 5],
      );
      assert.deepEqual(await bus.since(id, 1), { events: [], complete: false, last: 5 });
      assert.deepEqual(await bus.since(id, 0), { events: [], complete: false, last: 5 });
      assert.deepEqual(await bus.since(id, 5), { events: [], complete: true, last: 5 });
    });

    test('events that are not kept do not count against historyMax', async (t) => {
      const { bus } = await open(t, { historyMax: 2 });
      const id = await created(bus);
      await bus.append(id, 'command', '{}', { keep: true }); // 1
      for (let i = 0; i < 5; i++) await bus.append(id, 'state', '{}'); // 2..6
      await bus.append(id, 'command', '{}', { keep: true }); // 7
      const history = await bus.since(id, 0);
      assert.equal(history.complete, true);
      assert.deepEqual(
        history.events.map((e) => e.id),
        [1, 7],
      );
    });

    test('an id after the last event is not resumable', async (t) => {
      const { bus } = await open(t);
      const id = await created(bus);
      await bus.append(id, 'command', '{}', { keep: true });
      assert.deepEqual(await bus.since(id, 2), { events: [], complete: false, last: 1 });
      assert.deepEqual(await bus.since(id, Number.MAX_SAFE_INTEGER), { events: [], complete: false, last: 1 });
    });

    test('events older than historyMaxAgeMs, by the clock the bus was given, leave the history', async (t) => {
      const { bus, clock } = await open(t, { historyMaxAgeMs: 1_000 });
      const id = await created(bus);
      await bus.append(id, 'command', '{"n":1}', { keep: true }); // at t0
      clock.t += 600;
      await bus.append(id, 'command', '{"n":2}', { keep: true }); // at t0 + 600
      clock.t += 600; // event 1 is 1200 ms old, event 2 is 600 ms old
      assert.deepEqual(await bus.since(id, 0), { events: [], complete: false, last: 2 });
      const recent = await bus.since(id, 1);
      assert.equal(recent.complete, true);
      // Each with when it was appended, by the same clock: a replay leaves out stale commands by it.
      assert.deepEqual(
        recent.events.map((e) => [e.id, e.at]),
        [[2, clock.t - 600]],
      );
      clock.t += 400; // event 2 is exactly 1000 ms old: still kept
      assert.deepEqual(
        (await bus.since(id, 1)).events.map((e) => e.id),
        [2],
      );
      clock.t += 1;
      assert.deepEqual(await bus.since(id, 1), { events: [], complete: false, last: 2 });
      assert.deepEqual(await bus.since(id, 2), { events: [], complete: true, last: 2 });
    });

    // -------------------------------------------------------------- the store

    test('count counts the channels held', async (t) => {
      const { bus } = await open(t);
      const before = await bus.count();
      const id = await created(bus);
      await created(bus);
      assert.equal(await bus.count(), before + 2);
      await created(bus);
      assert.equal(await bus.create({ ...newRecord(), id }, 0), false, 'a refused create adds nothing');
      assert.equal(await bus.count(), before + 3);
    });

    test('a channel kept alive by appends alone still counts, by the clock the bus was given', async (t) => {
      // Far ahead of every other test's clock, so their channels have all lapsed by it and only this one counts.
      const clock = new Clock();
      clock.t += 10 * 365 * 24 * 3600_000;
      const { bus } = await open(t, { channelTtlMs: 60_000 }, clock);
      const before = await bus.count();
      const busy = await created(bus);
      clock.t += 40_000;
      await bus.append(busy, 'command', '{}');
      clock.t += 40_000; // 80 s after it was made, 40 s after its last append
      assert.equal(await bus.count(), before + 1);
      assert.notEqual(await bus.get(busy), null);
    });

    test('ready answers true while the store answers', async (t) => {
      const { bus } = await open(t);
      assert.equal(await bus.ready(), true);
    });

    const expire = opts.expire;
    const noExpire = expire ? false : 'this bus has no expire hook: its channels expire on the store clock';

    test('a channel idle for longer than the TTL expires; touch and append keep one alive', { skip: noExpire }, async (t) => {
      assert.ok(expire);
      const { bus, clock } = await open(t, { channelTtlMs: 1_000 });
      const before = await bus.count();
      const idle = await created(bus);
      const touched = await created(bus);
      const busy = await created(bus);
      clock.t += 600;
      await bus.touch([touched]);
      await bus.append(busy, 'state', '{}');
      clock.t += 400; // idle for exactly the TTL: not yet expired
      await expire(bus);
      assert.notEqual(await bus.get(idle), null);
      clock.t += 1;
      await expire(bus);
      assert.equal(await bus.get(idle), null);
      await assert.rejects(bus.append(idle, 'command', '{}'), isGone(idle));
      assert.notEqual(await bus.get(touched), null);
      assert.notEqual(await bus.get(busy), null);
      assert.equal(await bus.count(), before + 2);
      clock.t += 600; // the other two are now idle for 1001 ms
      await expire(bus);
      assert.equal(await bus.get(touched), null);
      assert.equal(await bus.get(busy), null);
      assert.equal(await bus.count(), before);
    });

    test('an expired channel id can be created again, from its given seq', { skip: noExpire }, async (t) => {
      assert.ok(expire);
      const { bus, clock } = await open(t, { channelTtlMs: 1_000 });
      const record = newRecord();
      await bus.create(record, 0);
      await bus.append(record.id, 'command', '{}', { keep: true, dedup: 'cmd-aaaaaaaa' });
      clock.t += 1_001;
      await expire(bus);
      assert.equal(await bus.create(record, 9), true);
      assert.equal((await bus.get(record.id))?.seq, 9);
      assert.deepEqual(await bus.append(record.id, 'command', '{}', { keep: true, dedup: 'cmd-aaaaaaaa' }), { eventId: 10, duplicate: false });
    });

    // -------------------------------------------------------------- the slideshow's link

    test('slideshowStreams: a word connects the channel and one word withdraws it; each change appends one slideshow event, not kept', async (t) => {
      const { bus, clock } = await open(t);
      const id = await created(bus);
      assert.equal((await bus.get(id))?.slideshow, false, 'a new channel has no slideshow');
      assert.deepEqual(await bus.slideshowStreams(id, true, clock.t + 10_000), { connected: true, eventId: 1 });
      assert.equal((await bus.get(id))?.slideshow, true);
      assert.deepEqual(await bus.slideshowStreams(id, true, clock.t + 20_000), { connected: true, eventId: null }, 'said again: no news');
      assert.equal((await bus.get(id))?.seq, 1);
      assert.deepEqual(await bus.slideshowStreams(id, false, 0), { connected: false, eventId: 2 });
      assert.equal((await bus.get(id))?.slideshow, false);
      assert.deepEqual(await bus.slideshowStreams(id, false, 0), { connected: false, eventId: null });
      assert.deepEqual((await bus.since(id, 0)).events, [], 'never kept: a snapshot says it');
      // The numbering goes on after them, as after any event.
      assert.equal((await bus.append(id, 'command', '{}', { keep: true })).eventId, 3);
    });

    test('a word that has already lapsed by the bus clock connects nothing', async (t) => {
      const { bus, clock } = await open(t);
      const id = await created(bus);
      assert.deepEqual(await bus.slideshowStreams(id, true, clock.t - 1), { connected: false, eventId: null });
      assert.deepEqual(await bus.slideshowStreams(id, true, clock.t), { connected: false, eventId: null }, 'until is exclusive');
      assert.equal((await bus.get(id))?.slideshow, false);
    });

    // -------------------------------------------------------------- several instances on one store

    const single = opts.multiInstance ? false : 'a single-instance bus';

    describe('two instances on one store', () => {
      async function pair(t: TestContext, limits: Partial<BusLimits> = {}) {
        const clock = new Clock();
        const a = await open(t, limits, clock);
        const b = await open(t, limits, clock);
        return { a: a.bus, b: b.bus, clock, heardA: new Heard(a.bus), heardB: new Heard(b.bus) };
      }

      test('each instance has its own instanceId', { skip: single }, async (t) => {
        const { a, b } = await pair(t);
        assert.notEqual(a.instanceId, b.instanceId);
      });

      test('a channel made on one instance is read and changed on the other', { skip: single }, async (t) => {
        const { a, b } = await pair(t);
        const id = await created(a, { controllers: [newHash()] });
        assert.deepEqual(await b.get(id), await a.get(id));
        assert.equal(await b.create({ ...newRecord(), id }, 0), false, 'the id is taken for every instance');
        await b.setState(id, deckState('From B'), SLIDES);
        assert.deepEqual((await a.get(id))?.state, deckState('From B'));
        await a.append(id, 'command', '{"from":"a"}', { keep: true });
        assert.deepEqual((await b.since(id, 0)).events.map(plain), [{ id: 1, event: 'command', data: '{"from":"a"}' }]);
      });

      test("an event appended on A reaches B's listener, and not A's own", { ...HANG_GUARD, skip: single }, async (t) => {
        const { a, b, heardA, heardB } = await pair(t);
        const id = await created(a);
        await a.append(id, 'command', '{"n":1}', { keep: true });
        await a.append(id, 'state', '{"n":2}');
        await heardB.until(id, 2);
        assert.deepEqual(heardB.on(id), [
          { id: 1, event: 'command', data: '{"n":1}' },
          { id: 2, event: 'state', data: '{"n":2}' },
        ]);
        // B's event is published after A's, so once A hears it, any echo of A's own would have come first.
        await b.append(id, 'presence', '{"n":3}');
        await heardA.until(id, 3);
        assert.deepEqual(heardA.on(id), [{ id: 3, event: 'presence', data: '{"n":3}' }]);
        await a.append(id, 'command', '{"n":4}', { keep: true });
        await heardB.until(id, 4);
        assert.deepEqual(
          heardB.on(id).map((e) => e.id),
          [1, 2, 4],
        );
      });

      test('ids stay consecutive across instances, sequential or concurrent', { skip: single }, async (t) => {
        const { a, b } = await pair(t);
        const id = await created(a, {}, 10);
        const ids: number[] = [];
        for (let i = 0; i < 6; i++) ids.push((await (i % 2 ? b : a).append(id, 'command', '{}', { keep: true })).eventId);
        assert.deepEqual(ids, [11, 12, 13, 14, 15, 16]);
        const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? b : a).append(id, 'state', '{}')));
        assert.deepEqual(
          burst.map((r) => r.eventId).sort((x, y) => x - y),
          Array.from({ length: 20 }, (_, i) => 17 + i),
        );
        assert.equal((await b.get(id))?.seq, 36);
        assert.equal((await a.get(id))?.seq, 36);
      });

      test('a dedup key seen on one instance is a duplicate on the other, and is not published again', { ...HANG_GUARD, skip: single }, async (t) => {
        const { a, b, heardA } = await pair(t);
        const id = await created(a);
        assert.deepEqual(await a.append(id, 'command', '{"n":1}', { keep: true, dedup: 'cmd-aaaaaaaa' }), { eventId: 1, duplicate: false });
        assert.deepEqual(await b.append(id, 'command', '{"n":"retry"}', { keep: true, dedup: 'cmd-aaaaaaaa' }), { eventId: 1, duplicate: true });
        assert.deepEqual(
          (await b.since(id, 0)).events.map((e) => e.data),
          ['{"n":1}'],
        );
        await b.append(id, 'state', '{"marker":true}');
        await heardA.until(id, 2);
        assert.deepEqual(
          heardA.on(id).map((e) => e.id),
          [2],
          'the duplicate never reached A',
        );
      });

      test('a question asked on one instance is listed and moderated on the other', { skip: single }, async (t) => {
        const { a, b } = await pair(t);
        const id = await created(a);
        const q = question();
        assert.deepEqual(await a.addQuestion(id, q), { open: true, pending: 1 });
        assert.deepEqual(await b.questions(id), [q]);
        await b.moderate(id, q.id, 'shown');
        assert.deepEqual((await a.get(id))?.spotlight, { id: q.id, text: q.text });
        assert.deepEqual(await a.setQuestionsOpen(id, false), { open: false, pending: 0 });
        assert.equal((await b.get(id))?.questionsOpen, false);
      });

      test("the slideshow's link is summed over instances: connected while either holds a stream, and told once each way", { ...HANG_GUARD, skip: single }, async (t) => {
        const { a, b, clock, heardB } = await pair(t);
        const id = await created(a);
        const until = clock.t + 3_600_000;
        assert.deepEqual(await a.slideshowStreams(id, true, until), { connected: true, eventId: 1 });
        await heardB.until(id, 1);
        assert.deepEqual(heardB.on(id), [{ id: 1, event: EVENT.slideshow, data: slideshowData(true) }]);
        assert.deepEqual(await b.slideshowStreams(id, true, until), { connected: true, eventId: null });
        assert.deepEqual(await a.slideshowStreams(id, false, 0), { connected: true, eventId: null }, "B's stream still counts");
        assert.equal((await a.get(id))?.slideshow, true);
        assert.deepEqual(await b.slideshowStreams(id, false, 0), { connected: false, eventId: 2 });
        assert.equal((await a.get(id))?.slideshow, false);
        // Published after B's own event: once A's next one is heard, B's own would have come first had it been heard.
        await a.slideshowStreams(id, true, until);
        await heardB.until(id, 3);
        assert.deepEqual(
          heardB.on(id).map((e) => [e.id, e.data]),
          [
            [1, slideshowData(true)],
            [3, slideshowData(true)],
          ],
          'B never hears its own',
        );
      });

      test("an instance's word that is not said again lapses: the next word of any instance drops it", { skip: single }, async (t) => {
        const { a, b, clock } = await pair(t);
        const id = await created(a);
        await a.slideshowStreams(id, true, clock.t + 45_000);
        clock.t += 44_999;
        assert.deepEqual(await b.slideshowStreams(id, false, 0), { connected: true, eventId: null }, "A's word stands");
        // A says nothing more (it died), and its word runs out.
        clock.t += 1;
        assert.deepEqual(await b.slideshowStreams(id, false, 0), { connected: false, eventId: 2 }, "A's word lapsed");
        assert.equal((await b.get(id))?.slideshow, false);
      });

      test("concurrent words from two instances: the events' order is the changes' order", { skip: single }, async (t) => {
        const { a, b, clock } = await pair(t);
        const id = await created(a);
        const until = clock.t + 3_600_000;
        const words = Array.from({ length: 40 }, (_, i) => ((i >> 1) % 2 ? a : b).slideshowStreams(id, (i * 7) % 3 !== 0, until));
        const changes = (await Promise.all(words)).filter((r) => r.eventId !== null).sort((x, y) => x.eventId! - y.eventId!);
        assert.ok(changes.length > 0);
        // Each change flips the value: two events in a row saying the same would mean one was computed on a stale sum.
        changes.forEach((r, i) => assert.equal(r.connected, i % 2 === 0, `change ${i}`));
        assert.equal((await a.get(id))?.slideshow, changes.at(-1)!.connected);
      });

      test('a pairing code is spent once across instances', { skip: single }, async (t) => {
        const { a, b } = await pair(t);
        const id = await created(a);
        const code = newHash();
        await b.setPairCode(id, code);
        const controllers = Array.from({ length: 16 }, newHash);
        const results = await Promise.all(controllers.map((c, i) => (i % 2 ? b : a).spendPairCode(id, code, c)));
        const winners = controllers.filter((_, i) => results[i] !== null);
        assert.equal(winners.length, 1);
        assert.deepEqual((await a.get(id))?.controllers, winners);
        assert.deepEqual((await b.get(id))?.controllers, winners);
        assert.equal((await b.get(id))?.pairCodeHash, null);
      });
    });
  });
}
