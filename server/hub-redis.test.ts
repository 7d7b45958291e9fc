// The hub over the Redis bus, through the real HTTP front, in one process: a
// private redis-server the test owns, whose replies it can hold back.
//
// A stream's request reads its channel from the store before it subscribes.
// With Redis that read takes a round trip, and a client may give up during
// it (a phone locking, a follower's tab closing). Such a stream must never be
// subscribed: a subscriber whose socket is already gone was counted against
// the channel's and the address's caps for good, and kept the channel from
// expiring.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Redis } from 'ioredis';
import { RedisBus } from './bus-redis';
import { DEFAULTS } from './config';
import { RedisServer, redisServerOrSkip } from './redis-harness';
import { call, cmdId, createChannel, openRawStream, startTestServer } from './testing';

const binary = redisServerOrSkip('server/hub-redis.test.ts');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `read` until it gives `want`, for at most `ms`; the last value it read. */
async function settle<T>(read: () => T, want: T, ms: number): Promise<T> {
  const until = Date.now() + ms;
  let value = read();
  while (value !== want && Date.now() < until) {
    await sleep(50);
    value = read();
  }
  return value;
}

if (binary) {
  let redis: RedisServer | undefined;
  after(async () => {
    await redis?.cleanup();
  });

  test('a stream whose client leaves while its channel is read from Redis is never subscribed', { timeout: 30_000 }, async (t) => {
    redis = await RedisServer.start(binary);
    const bus = new RedisBus({ url: redis.url, limits: DEFAULTS });
    await bus.connected();
    const s = await startTestServer({}, { bus });
    t.after(async () => {
      await s.close();
      await bus.close();
    });
    const ch = await createChannel(s.base);

    // Redis holds every client's commands back for a while: each stream's channel read waits.
    const admin = new Redis(redis.url);
    t.after(() => admin.disconnect());
    await admin.call('CLIENT', 'PAUSE', '1500', 'ALL');

    const open = (): net.Socket => {
      const socket = net.connect(s.port, '127.0.0.1');
      socket.setEncoding('utf8');
      socket.on('error', () => undefined);
      socket.write(`GET /api/channels/${ch.id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
      return socket;
    };
    const staying = Array.from({ length: 4 }, open);
    const leaving = Array.from({ length: 6 }, open);
    t.after(() => staying.forEach((sock) => sock.destroy()));
    // The requests are in, their reads are waiting on Redis: these clients give up now.
    await sleep(300);
    for (const sock of leaving) sock.resetAndDestroy();

    // Once Redis answers, the four that stayed get their streams...
    const texts = staying.map(() => '');
    staying.forEach((sock, i) => sock.on('data', (d: string) => (texts[i] += d)));
    assert.equal(await settle(() => texts.every((x) => x.includes('event: snapshot')), true, 10_000), true, 'the clients that stayed got their snapshot');
    // ...and only they are subscribed.
    assert.equal(await settle(() => s.hub.stats().subscribers, 4, 3_000), 4);
    await sleep(500);
    assert.equal(s.hub.stats().subscribers, 4, 'no stream of a client that left was subscribed');

    for (const sock of staying) sock.destroy();
    assert.equal(await settle(() => s.hub.stats().subscribers, 0, 3_000), 0);
  });

  test("an instance whose clock runs a minute fast still replays another's fresh taps: ages are read on Redis's clock", { timeout: 30_000 }, async (t) => {
    redis ??= await RedisServer.start(binary);
    const MINUTE = 60_000;
    const onTime = new RedisBus({ url: redis.url, limits: DEFAULTS });
    // Its machine's clock is off; the bus measures how far against Redis's.
    const fast = new RedisBus({ url: redis.url, limits: DEFAULTS, now: () => Date.now() + MINUTE, syncClock: true });
    await Promise.all([onTime.connected(), fast.connected()]);
    const a = await startTestServer({}, { bus: onTime });
    const b = await startTestServer({}, { bus: fast });
    t.after(async () => {
      await Promise.all([a.close(), b.close()]);
      await Promise.all([onTime.close(), fast.close()]);
    });
    // Both agree on the time within a round trip, whatever their machines say.
    assert.ok(Math.abs(fast.clock() - onTime.clock()) < 1_000, `${fast.clock() - onTime.clock()} ms apart`);

    const ch = await createChannel(a.base);
    const tap = cmdId();
    assert.equal((await call(a.base, 'POST', `/api/channels/${ch.id}/commands`, { type: 'next', id: tap }, ch.deckKey)).status, 202);
    // A slideshow back on the fast instance, resuming from before the tap: the tap is a moment old, not a minute.
    const st = await openRawStream(b.base, `/api/channels/${ch.id}/events`, { headers: { 'Last-Event-ID': '0' } });
    t.after(() => st.close());
    await st.waitFor('event: snapshot');
    await st.waitFor(tap);
    assert.match(st.text(), /event: command\n/);
  });
  test("a slideshow on one instance is told to the room on another; an instance that dies without a word stops counting once its word lapses", { timeout: 30_000 }, async (t) => {
    redis ??= await RedisServer.start(binary);
    const busA = new RedisBus({ url: redis.url, limits: DEFAULTS });
    const busB = new RedisBus({ url: redis.url, limits: DEFAULTS });
    await Promise.all([busA.connected(), busB.connected()]);
    // Short heartbeats: an instance's word lapses after three of them (3 s: far beyond any stall of a loaded machine).
    const quick = { slideshowAwayMs: 200, heartbeatMs: 1_000 };
    const a = await startTestServer(quick, { bus: busA });
    const b = await startTestServer(quick, { bus: busB });
    t.after(async () => {
      await Promise.all([a.close(), b.close()]);
      await Promise.all([busA.close(), busB.close()]);
    });
    const ch = await createChannel(a.base);
    const room = await openRawStream(b.base, `/api/channels/${ch.id}/events`);
    t.after(() => room.close());
    await room.waitFor('event: snapshot');
    assert.match(room.text(), /"slideshow":false/);
    const said = (connected: boolean) => room.text().split(`event: slideshow\ndata: {"connected":${connected}}`).length - 1;

    const deck = await openRawStream(a.base, `/api/channels/${ch.id}/events?as=${ch.streamToken}`);
    assert.equal(await settle(() => said(true), 1, 10_000), 1, 'the slideshow on A is told on B');
    deck.close();
    assert.equal(await settle(() => said(false), 1, 10_000), 1, 'and its leaving');

    const again = await openRawStream(a.base, `/api/channels/${ch.id}/events?as=${ch.streamToken}`);
    t.after(() => again.close());
    assert.equal(await settle(() => said(true), 2, 10_000), 2);
    // A dies: its link to Redis goes first, so it can say nothing more; its streams end with it.
    await busA.close();
    await a.close();
    assert.equal(await settle(() => said(false), 2, 15_000), 2, "B's heartbeat finds A's word lapsed");
    assert.equal(said(true), 2);
  });
}
