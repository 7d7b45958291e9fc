// The laser pointer's endpoint, POST /api/channels/:id/pointer: what it
// accepts, who may use it, how fast, and that positions are news for whoever
// listens right now: never replayed on reconnect, and never queued up behind
// a stream that is not being read.
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import type { DeckState } from '../protocol/messages';
import { call, cmdId, createChannel, eventNames, openRawStream, pairPhone, rawRequest, startTestServer, type TestServer } from './testing';

interface Frame {
  id: number | undefined;
  event: string;
  data: string;
}

/** The events in a raw stream's text, with their ids (heartbeat comments and the retry hint skipped). */
function frames(raw: string): Frame[] {
  const out: Frame[] = [];
  for (const block of raw.split('\n\n')) {
    let id: number | undefined;
    let event = '';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('id:')) id = Number(line.slice(3).trim());
      else if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (event) out.push({ id, event, data: data.join('\n') });
  }
  return out;
}

async function setup(t: { after(fn: () => Promise<void>): void }, overrides: Parameters<typeof startTestServer>[0] = {}) {
  const ts = await startTestServer(overrides);
  t.after(() => ts.close());
  const ch = await createChannel(ts.base);
  const { controllerKey } = await pairPhone(ts.base, ch);
  const path = `/api/channels/${ch.id}/pointer`;
  /** Posts a pointer event with the phone's key, another key, or (null) none. */
  const point = (body: unknown, key: string | null = controllerKey) => call(ts.base, 'POST', path, body, key ?? undefined);
  return { ts, ch, key: controllerKey, path, point };
}

const command = (ts: TestServer, id: string, key: string, cmd: Record<string, unknown>) => call(ts.base, 'POST', `/api/channels/${id}/commands`, cmd, key);

test('every pointer event type is accepted; anything out of range, unknown or with extra fields is a 400', async (t) => {
  const { point } = await setup(t);
  for (const body of [
    { type: 'point', x: 0, y: 1, seq: 1 },
    { type: 'point', x: 0.25, y: 0.5, seq: 2 },
    { type: 'draw', x: 1, y: 0, seq: 3, stroke: 7 },
    { type: 'lift', seq: 4 },
    { type: 'clear', seq: 5 },
  ]) {
    const res = await point(body);
    assert.equal(res.status, 204, `${JSON.stringify(body)}: ${res.text}`);
    assert.equal(res.text, '');
  }
  for (const [what, body] of [
    ['x above 1', { type: 'point', x: 1.01, y: 0.5, seq: 1 }],
    ['x below 0', { type: 'point', x: -0.01, y: 0.5, seq: 1 }],
    ['y above 1', { type: 'point', x: 0.5, y: 1.5, seq: 1 }],
    ['y below 0 while drawing', { type: 'draw', x: 0.5, y: -1, seq: 1, stroke: 1 }],
    ['x as a string', { type: 'point', x: '0.5', y: 0.5, seq: 1 }],
    ['an unknown type', { type: 'zap', x: 0.5, y: 0.5, seq: 1 }],
    ['no type', { x: 0.5, y: 0.5, seq: 1 }],
    ['an extra field', { type: 'point', x: 0.5, y: 0.5, seq: 1, color: 'red' }],
    ['a position on a lift', { type: 'lift', seq: 1, x: 0.5 }],
    ['no seq', { type: 'point', x: 0.5, y: 0.5 }],
    ['a negative seq', { type: 'point', x: 0.5, y: 0.5, seq: -1 }],
    ['a fractional seq', { type: 'point', x: 0.5, y: 0.5, seq: 1.5 }],
    ['a stroke without its id', { type: 'draw', x: 0.5, y: 0.5, seq: 1 }],
    ['an array', [{ type: 'lift', seq: 1 }]],
    ['no body at all', undefined],
  ] as const) {
    const res = await point(body);
    assert.equal(res.status, 400, `${what}: ${res.status} ${res.text}`);
    assert.equal(typeof res.json?.error, 'string', what);
  }
});

test('only a paired controller (or the deck itself) may point: no key, a wrong key or a revoked one is a 401', async (t) => {
  const { ts, ch, point } = await setup(t);
  const lift = { type: 'lift', seq: 1 };
  const none = await point(lift, null);
  assert.equal(none.status, 401);
  assert.match(String(none.headers['www-authenticate']), /^Bearer/);
  // A follower holds only the follow URL, and a guessed key is no key.
  assert.equal((await point(lift, 'A'.repeat(43))).status, 401);
  // The pairing code is not a key either.
  assert.equal((await point(lift, ch.pairCode ?? '')).status, 401);
  // Refused before the body is even looked at: a stranger learns nothing about the schema.
  assert.equal((await point({ type: 'zap' }, null)).status, 401);
  // The deck key's holder may point too (a presenter's script).
  assert.equal((await point(lift, ch.deckKey)).status, 204);
  // Revoked: the phone's key stops working at once.
  assert.equal((await call(ts.base, 'DELETE', `/api/channels/${ch.id}/controllers`, undefined, ch.deckKey)).status, 200);
  assert.equal((await point(lift)).status, 401);
  // Neither an unknown channel nor another method is a pointer.
  assert.equal((await call(ts.base, 'POST', `/api/channels/${'x'.repeat(22)}/pointer`, lift, ch.deckKey)).status, 404);
  assert.equal((await call(ts.base, 'GET', `/api/channels/${ch.id}/pointer`)).status, 405);
});

test('a burst far above 60 a second from one key gets 429 with Retry-After, and the server keeps serving', async (t) => {
  const { ts, ch, key, path, point } = await setup(t);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  t.after(() => agent.destroy());
  const burst = 400;
  const started = Date.now();
  const answers = await Promise.all(
    Array.from({ length: burst }, (_, i) =>
      rawRequest(ts.base, {
        method: 'POST',
        path,
        agent,
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
        body: JSON.stringify({ type: 'point', x: (i % 100) / 100, y: 0.5, seq: i }),
      }),
    ),
  );
  const seconds = (Date.now() - started) / 1000;
  const ok = answers.filter((a) => a.status === 204).length;
  const limited = answers.filter((a) => a.status === 429);
  assert.equal(ok + limited.length, burst, `only 204 and 429: ${[...new Set(answers.map((a) => a.status))].join(', ')}`);
  assert.ok(limited.length > 0, `${burst} updates in ${seconds.toFixed(2)} s were all accepted`);
  // The bucket: a burst of 45, then 90 a second; never more.
  assert.ok(ok >= 45, `only ${ok} accepted`);
  assert.ok(ok <= 45 + Math.ceil(90 * seconds) + 1, `${ok} accepted in ${seconds.toFixed(2)} s`);
  for (const a of limited) {
    assert.equal(a.headers['retry-after'], '1');
    assert.match(String(a.json?.error), /slow down/);
  }

  // The limit is per key: the deck's own key, and the phone's commands, still go through at once.
  assert.equal((await point({ type: 'lift', seq: 1 }, ch.deckKey)).status, 204);
  assert.equal((await command(ts, ch.id, key, { type: 'next', id: cmdId() })).status, 202);
  // And after Retry-After the phone points again.
  await new Promise((r) => setTimeout(r, 1_100));
  assert.equal((await point({ type: 'point', x: 0.5, y: 0.5, seq: burst + 1 })).status, 204);
});

test('pointer events go out live but are never replayed on reconnect, even from a pointer event\'s own id', async (t) => {
  const { ts, ch, key, point } = await setup(t);
  const eventsPath = `/api/channels/${ch.id}/events`;
  const live = await openRawStream(ts.base, eventsPath);
  t.after(() => live.close());
  await live.waitFor('event: snapshot');

  const first = cmdId();
  const last = cmdId();
  assert.equal((await command(ts, ch.id, key, { type: 'next', id: first })).status, 202);
  assert.equal((await point({ type: 'point', x: 0.3, y: 0.4, seq: 10 })).status, 204);
  assert.equal((await point({ type: 'draw', x: 0.5, y: 0.6, seq: 11, stroke: 1 })).status, 204);
  assert.equal((await point({ type: 'lift', seq: 12 })).status, 204);
  assert.equal((await command(ts, ch.id, key, { type: 'prev', id: last })).status, 202);
  await live.waitFor(last);

  // Live, every one arrived, in order, with an id like any event.
  const seen = frames(live.text()).filter((f) => f.event === 'command' || f.event === 'pointer');
  assert.deepEqual(seen.map((f) => f.event), ['command', 'pointer', 'pointer', 'pointer', 'command']);
  assert.deepEqual(JSON.parse(seen[1]!.data), { type: 'point', x: 0.3, y: 0.4, seq: 10 });
  for (const f of seen) assert.equal(typeof f.id, 'number');
  live.close();

  // Resuming after the first command: the second comes back, the positions do not.
  for (const from of [seen[0]!.id, seen[3]!.id]) {
    const again = await openRawStream(ts.base, eventsPath, { headers: { 'Last-Event-ID': String(from) } });
    await again.waitFor(last);
    // Anything still to come would have been written with the replay, in the same turn.
    await new Promise((r) => setTimeout(r, 100));
    again.close();
    assert.deepEqual(eventNames(again.text()), ['snapshot', 'command'], `resumed from ${from}`);
    // A position on a pointer event is a known place to resume from: no gap.
    const snapshot = frames(again.text())[0]!;
    assert.equal((JSON.parse(snapshot.data) as { gap: boolean }).gap, false, `resumed from ${from}`);
  }
});

/** An event stream whose reader can stop reading, so the server's queue for it grows. */
function openPausable(base: string, path: string): Promise<{ pause(): void; resume(): void; text(): string; waitFor(needle: string, ms?: number): Promise<void>; close(): void }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.get({ host: url.hostname, port: url.port, path, agent: false, headers: { Accept: 'text/event-stream' } }, (res) => {
      let received = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (received += chunk));
      resolve({
        // Paused, the response stops reading its socket: the kernel buffers fill, then Node's queue on the server.
        pause: () => res.pause(),
        resume: () => res.resume(),
        text: () => received,
        async waitFor(needle, ms = 20_000) {
          const deadline = Date.now() + ms;
          while (!received.includes(needle)) {
            if (Date.now() > deadline) throw new Error(`no ${needle} within ${ms} ms`);
            await new Promise((r) => setTimeout(r, 20));
          }
        },
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
  });
}

test('a stream that is not being read gets no backlog of old positions when it resumes, and still every command', async (t) => {
  // Room for the kernel's socket buffers and then some, so the stalled stream is not cut loose meanwhile.
  const { ts, ch, key, point } = await setup(t, { maxQueuedBytes: 256 * 1024 * 1024 });
  const eventsPath = `/api/channels/${ch.id}/events`;
  const stalled = await openPausable(ts.base, eventsPath);
  t.after(() => stalled.close());
  await stalled.waitFor('event: snapshot');
  // A second stream that keeps reading: it gets every position, so a drop is the stalled stream's alone.
  const healthy = await openRawStream(ts.base, eventsPath);
  t.after(() => healthy.close());
  await healthy.waitFor('event: snapshot');
  stalled.pause();

  // Fill the stalled stream's path with big state reports (an outline of long
  // titles: the notes never go on a stream), until the hub itself finds more than 4 KiB queued for it.
  const slides = Array.from({ length: 40 }, (_, h) => ({ h, v: 0, title: `Slide ${h} `.padEnd(200, 'x') }));
  const state: DeckState = {
    indexh: 0, indexv: 0, indexf: -1, fragments: 0, paused: false, position: 1, total: 2,
    isFirst: true, isLast: false, title: 'Filler', notes: 'n'.repeat(7_900), nextTitle: 'Next',
  };
  const record = await ts.hub.get(ch.id);
  let backlogged = false;
  for (let i = 0; i < 8_000 && !backlogged; i++) {
    const res = await call(ts.base, 'PUT', `/api/channels/${ch.id}/state`, { state, slides }, ch.deckKey);
    assert.equal(res.status, 200);
    // A probe: delivered to the healthy stream only, once the stalled one is behind.
    if (i % 8 === 7) backlogged = (await ts.hub.pointer(record, { type: 'lift', seq: 0 })).delivered === 1;
  }
  assert.ok(backlogged, 'the stalled stream never fell behind');

  // While it is stalled: positions and commands, interleaved, all through the HTTP API.
  const seqs = Array.from({ length: 20 }, (_, i) => 777_000 + i);
  const commands: string[] = [];
  for (const [i, seq] of seqs.entries()) {
    assert.equal((await point({ type: 'point', x: i / 20, y: 0.5, seq })).status, 204);
    if (i % 2 === 1) {
      const id = cmdId();
      commands.push(id);
      assert.equal((await command(ts, ch.id, key, { type: 'next', id })).status, 202);
    }
  }
  await healthy.waitFor(commands.at(-1)!);
  for (const seq of seqs) assert.ok(healthy.text().includes(`"seq":${seq}`), `the healthy stream missed ${seq}`);

  // Reading again: every command arrives, in order, and none of the stale positions.
  stalled.resume();
  await stalled.waitFor(commands.at(-1)!, 60_000);
  const got = frames(stalled.text());
  const commandIds = got.filter((f) => f.event === 'command').map((f) => (JSON.parse(f.data) as { id: string }).id);
  assert.deepEqual(commandIds, commands);
  const stale = got.filter((f) => f.event === 'pointer' && seqs.includes((JSON.parse(f.data) as { seq: number }).seq));
  assert.equal(stale.length, 0, `${stale.length} stale positions were delivered late`);

  // Drained, the stream is live again: a new position reaches it at once.
  assert.equal((await point({ type: 'point', x: 0.9, y: 0.9, seq: 888_000 })).status, 204);
  await stalled.waitFor('"seq":888000', 5_000);
});
