import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newRecord, runBusContract } from './bus-contract';
import { DEDUP_WINDOW, MemoryBus, type Bus } from './bus';

runBusContract(
  'memory',
  async (limits, now) => {
    const bus = new MemoryBus(limits, now);
    return { bus, cleanup: () => bus.close() };
  },
  {
    multiInstance: false,
    expire: async (bus: Bus) => {
      if (!(bus instanceof MemoryBus)) throw new TypeError('the memory contract got another bus');
      bus.sweep();
    },
  },
);

test('the memory bus remembers the latest DEDUP_WINDOW dedup keys of a channel, and forgets the oldest first', async () => {
  const bus = new MemoryBus({ historyMax: 10, historyMaxAgeMs: 60_000, channelTtlMs: 60_000 });
  const record = newRecord();
  const id = record.id;
  assert.equal(await bus.create(record, 0), true);
  const key = (i: number) => `cmd-${String(i).padStart(8, '0')}`;
  // Twice round the window, so the ring's reused slots are exercised too.
  for (let i = 1; i <= 2 * DEDUP_WINDOW + 10; i++) assert.deepEqual(bus.appendNow(id, 'command', '{}', { dedup: key(i) }), { eventId: i, duplicate: false });
  const last = 2 * DEDUP_WINDOW + 10;
  // The newest and the oldest still in the window are duplicates; the one just before them is forgotten.
  assert.deepEqual(bus.appendNow(id, 'command', '{}', { dedup: key(last) }), { eventId: last, duplicate: true });
  assert.deepEqual(bus.appendNow(id, 'command', '{}', { dedup: key(last - DEDUP_WINDOW + 1) }), { eventId: last - DEDUP_WINDOW + 1, duplicate: true });
  assert.deepEqual(bus.appendNow(id, 'command', '{}', { dedup: key(last - DEDUP_WINDOW) }), { eventId: last + 1, duplicate: false });
  // Remembering that one again pushed the window on by one: the oldest is now forgotten.
  assert.deepEqual(bus.appendNow(id, 'command', '{}', { dedup: key(last - DEDUP_WINDOW + 1) }), { eventId: last + 2, duplicate: false });
  assert.deepEqual(bus.appendNow(id, 'command', '{}', { dedup: key(last) }), { eventId: last, duplicate: true });
});
