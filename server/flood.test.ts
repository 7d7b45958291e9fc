// Flood tests: thousands of channel creations from one address against the
// real app (server/testing.ts). They check that the limits hold (the rate
// limit per address, the channel cap per process), that every refusal is a
// clean JSON answer, that channels already in use keep working, and that
// memory stays bounded: a refused request must leave nothing behind.
//
// Heap figures are printed, and only compared against generous bounds that a
// leak would cross (they are not performance assertions). A full GC before
// each reading makes them meaningful; it is enabled here at run time so the
// test needs no --expose-gc flag.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { channelIdFor, newSecret } from './keys';
import { call, cmdId, createChannel, pairPhone, rawRequest, startTestServer, type RawAnswer, type TestServer } from './testing';

const GUARD = { timeout: 120_000 };
const MiB = 1024 * 1024;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Heap in use after a full collection. */
function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}
const mib = (bytes: number) => `${bytes >= 0 ? '+' : ''}${(bytes / MiB).toFixed(1)} MiB`;

async function start(t: TestContext, overrides: Parameters<typeof startTestServer>[0]): Promise<TestServer> {
  const s = await startTestServer(overrides);
  t.after(() => s.close());
  return s;
}

/** Sends `n` requests, `concurrency` at a time over keep-alive connections, and tallies the answers by status. */
async function flood(
  s: TestServer,
  n: number,
  make: (i: number) => { method: string; path: string; headers?: Record<string, string>; body?: string; localAddress?: string },
  concurrency = 32,
): Promise<{ byStatus: Map<number, number>; refusals: RawAnswer[] }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const byStatus = new Map<number, number>();
  const refusals: RawAnswer[] = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const res = await rawRequest(s.base, { ...make(i), agent });
      byStatus.set(res.status, (byStatus.get(res.status) ?? 0) + 1);
      // Keep a sample of refusals to inspect, not all of them (that would be memory the test holds).
      if (res.status >= 400 && refusals.length < 50) refusals.push(res);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  return { byStatus, refusals };
}

function expectJsonRefusals(refusals: RawAnswer[], status: number, message: RegExp): void {
  assert.ok(refusals.length > 0);
  for (const res of refusals) {
    assert.equal(res.status, status);
    assert.match(String(res.headers['content-type']), /^application\/json\b/);
    assert.match(String(res.json?.error), message);
  }
}

test('a creation flood with a raised rate limit fills the channel cap and no further; refusals leave no memory behind', GUARD, async (t) => {
  const cap = 1_000;
  const total = 5_000;
  const s = await start(t, { createPerMinute: 1_000_000, maxChannels: cap });
  // A talk in progress before the flood: it must keep working throughout.
  const talk = await createChannel(s.base);
  const phone = await pairPhone(s.base, talk);

  const before = heapUsed();
  const fill = await flood(s, cap - 1, () => ({ method: 'POST', path: '/api/channels' }));
  assert.equal(fill.byStatus.get(201), cap - 1, JSON.stringify([...fill.byStatus]));
  const atCap = heapUsed();

  const rest = await flood(s, total - cap, () => ({ method: 'POST', path: '/api/channels' }));
  const afterFlood = heapUsed();
  assert.deepEqual([...rest.byStatus], [[503, total - cap]], 'every creation past the cap is refused');
  expectJsonRefusals(rest.refusals, 503, /as many channels/);
  assert.equal((await s.hub.bus.count()), cap);

  // Re-registration of a new id is channel creation too: refused at the cap.
  const key = newSecret();
  assert.equal((await call(s.base, 'PUT', `/api/channels/${channelIdFor(key)}`, {}, key)).status, 503);
  // The talk goes on.
  assert.equal((await call(s.base, 'POST', `/api/channels/${talk.id}/commands`, { type: 'next', id: cmdId() }, phone.controllerKey)).status, 202);
  const health = await call(s.base, 'GET', '/healthz');
  assert.equal(health.status, 200);
  assert.equal(health.json?.channels, cap);

  const perChannel = (atCap - before) / (cap - 1);
  const perRefusal = (afterFlood - atCap) / (total - cap);
  console.log(
    `flood (cap): ${total} requests, ${cap} channels held, ${total - cap} refused with 503; ` +
      `heap ${mib(atCap - before)} to fill the cap (${(perChannel / 1024).toFixed(1)} KiB per channel), ` +
      `${mib(afterFlood - atCap)} over ${total - cap} refusals (${perRefusal.toFixed(0)} B each)`,
  );
  // Generous bounds that a leak would cross: a channel is a few hundred bytes of
  // state; a refusal should leave nothing (a retained request or socket is tens of KiB).
  assert.ok(perChannel < 32 * 1024, `a channel costs ${perChannel.toFixed(0)} bytes of heap`);
  assert.ok(afterFlood - atCap < 16 * MiB, `refused requests left ${mib(afterFlood - atCap)} on the heap`);
});

test('a creation flood at the default rate limit gets 429 with Retry-After after 30, per address', GUARD, async (t) => {
  const s = await start(t, {});
  const perAddress = s.config.createPerMinute;
  assert.equal(perAddress, 30, 'the default limit');
  const total = 3_000;
  const before = heapUsed();
  const one = await flood(s, total, () => ({ method: 'POST', path: '/api/channels' }));
  // A second address (another loopback source, as another laptop on the LAN) has its own allowance.
  const two = await flood(s, 300, () => ({ method: 'POST', path: '/api/channels', localAddress: '127.0.0.2' }));
  const after = heapUsed();

  assert.deepEqual(
    [...one.byStatus].sort(([a], [b]) => a - b),
    [
      [201, perAddress],
      [429, total - perAddress],
    ],
  );
  expectJsonRefusals(one.refusals, 429, /too many channels/);
  for (const res of one.refusals) assert.match(String(res.headers['retry-after']), /^[1-9]\d*$/);
  assert.equal(two.byStatus.get(201), perAddress);
  assert.equal(two.byStatus.get(429), 300 - perAddress);
  assert.equal((await s.hub.bus.count()), 2 * perAddress);

  // Re-registration with a fresh key (a new id) shares the allowance, so it is refused too.
  const key = newSecret();
  const reg = await call(s.base, 'PUT', `/api/channels/${channelIdFor(key)}`, {}, key);
  assert.equal(reg.status, 429);

  console.log(
    `flood (rate limit): ${total + 300} requests from 2 addresses, ${2 * perAddress} created, ` +
      `${total + 300 - 2 * perAddress} refused with 429; heap ${mib(after - before)}`,
  );
  assert.ok(after - before < 16 * MiB, `the flood left ${mib(after - before)} on the heap`);
});

test('a re-registration flood (fresh deck keys for unknown ids) is held by the same cap', GUARD, async (t) => {
  const cap = 200;
  const total = 1_000;
  const s = await start(t, { createPerMinute: 1_000_000, maxChannels: cap });
  const before = heapUsed();
  const res = await flood(s, total, () => {
    const key = newSecret();
    return {
      method: 'PUT',
      path: `/api/channels/${channelIdFor(key)}`,
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
      body: JSON.stringify({ controllers: [], lastEventId: 0 }),
    };
  });
  const after = heapUsed();
  assert.equal(res.byStatus.get(200), cap);
  assert.equal(res.byStatus.get(503), total - cap);
  expectJsonRefusals(res.refusals, 503, /as many channels/);
  assert.equal((await s.hub.bus.count()), cap);
  console.log(`flood (re-registration): ${total} requests, ${cap} registered, ${total - cap} refused with 503; heap ${mib(after - before)}`);
  assert.ok(after - before < 16 * MiB);
});
