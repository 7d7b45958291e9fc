// "Nothing lost", proven against the built server as a child process:
//
// 1. A subscriber is cut off 1,000 times (its socket destroyed, sometimes in
//    the middle of an event) while two publishers keep posting commands with
//    unique ids, some of them twice (a phone retrying a POST whose answer it
//    never saw). Each time it resumes with Last-Event-ID or ?lastEventId=.
//    Every accepted command must arrive exactly once, in the server's order.
// 2. A proxy in front answers 502, then 503, then proxies again. A plain
//    EventSource gives up for good on the first non-200; the browser-side
//    watchdog (protocol/live.ts, run here on the `eventsource` package) must
//    recover on its own and lose nothing posted during the outage.
//    e2e/reliability.spec.ts covers the same in a real browser.
// 3. A graceful restart (SIGTERM) under a stream of taps: every command the
//    old process accepted reaches the subscriber before its stream ends, and
//    the rest are retried against the new process; nothing lost or doubled.
// 4. A subscriber too slow to keep up is cut loose by the server (which must
//    survive its own heartbeat to that stream), and resumes losing nothing.
//
// Figures are printed, never asserted against a clock: the only time limits
// are generous functional deadlines that keep a broken run from hanging.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { EventSource as NodeEventSource } from 'eventsource';
import { ClickerServer } from '../e2e/fixtures';
import { EVENT, type Snapshot } from '../protocol/messages';
import { LiveStream, type LinkState } from '../protocol/live';
import { freePorts, jsonCall, pairedChannel, prng, sleep, SseConnection, type SseMessage } from './testing-procs';

const RECONNECTS = 1_000;
/** How far the publishers may run ahead of the subscriber: well inside HISTORY_MAX (500), so a gap is a bug, not the test outrunning replay. */
const MAX_BACKLOG = 200;

/**
 * Polls `check` every 20 ms until it holds; past `ms`, fails naming `what`
 * and what `context` says of the test's state at that moment.
 */
async function waitUntil(check: () => boolean, ms: number, what: string, context: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}; ${context()}`);
    await sleep(20);
  }
}

interface CommandAnswer {
  eventId: number;
  duplicate: boolean;
}

let server: ClickerServer;
before(async () => {
  server = await ClickerServer.start(['--bind', '127.0.0.1']);
});
after(async () => {
  await server.stop();
});

test(`${RECONNECTS} forced reconnects with commands in flight: none lost, none doubled, order kept`, { timeout: 180_000 }, async () => {
  const seed = Number(process.env.RECONNECT_SEED) || Date.now() % 1_000_000;
  const rand = prng(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const deadline = Date.now() + 150_000;

  const { info, controllerKey } = await pairedChannel(server.base);
  const eventsUrl = `${server.base}/api/channels/${info.id}/events`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

  // ---------------------------------------------------------------- publishers
  /** Every command the server accepted (202), by id. */
  const accepted = new Map<string, { lane: number; n: number; eventId: number }>();
  let highestEventId = 0;
  let resumePoint = 0;
  let subscriberDone = false;
  const figures = { posts: 0, duplicatesSent: 0, duplicatesDropped: 0, backpressureWaits: 0 };
  const problems: string[] = [];

  const post = async (id: string): Promise<{ status: number; body: CommandAnswer }> => {
    figures.posts++;
    const res = await jsonCall<CommandAnswer>(server.base, 'POST', `/api/channels/${info.id}/commands`, {
      body: { type: 'next', id },
      key: controllerKey,
      agent,
    });
    if (res.status !== 200 && res.status !== 202) throw new Error(`command ${id} answered ${res.status}: ${JSON.stringify(res.body)}`);
    if (res.body.eventId > highestEventId) highestEventId = res.body.eventId;
    return res;
  };

  const lane = async (laneNo: number): Promise<void> => {
    const mine: string[] = [];
    for (let n = 0; !subscriberDone && Date.now() < deadline; n++) {
      while (highestEventId - resumePoint > MAX_BACKLOG && !subscriberDone && Date.now() < deadline) {
        figures.backpressureWaits++;
        await sleep(2);
      }
      const id = `lane${laneNo}-${String(n).padStart(7, '0')}`;
      // Every 16th command goes out twice at once: a phone whose first POST
      // timed out while it was still on its way retries with the same id.
      const copies = n % 16 === 5 ? 2 : 1;
      const answers = await Promise.all(Array.from({ length: copies }, () => post(id)));
      const fresh = answers.filter((a) => a.status === 202 && !a.body.duplicate);
      if (fresh.length !== 1) problems.push(`${id}: ${fresh.length} of ${copies} copies were accepted as new`);
      const first = fresh[0];
      if (!first) continue;
      accepted.set(id, { lane: laneNo, n, eventId: first.body.eventId });
      figures.duplicatesSent += copies - 1;
      figures.duplicatesDropped += answers.filter((a) => a.status === 200 && a.body.duplicate).length;
      for (const a of answers) if (a.body.eventId !== first.body.eventId) problems.push(`${id}: copies got different event ids`);
      mine.push(id);
      // Every 10th, re-send one of this lane's recent ids later on: a retry
      // whose first answer was lost, arriving after newer taps.
      if (n % 10 === 3 && mine.length > 5) {
        const old = mine[mine.length - 2 - int(Math.min(50, mine.length - 1))]!;
        const again = await post(old);
        figures.duplicatesSent++;
        if (again.status === 200 && again.body.duplicate && again.body.eventId === accepted.get(old)?.eventId) figures.duplicatesDropped++;
        else problems.push(`re-sent ${old} was not recognised as a duplicate: ${again.status} ${JSON.stringify(again.body)}`);
      }
    }
  };

  // ---------------------------------------------------------------- subscriber
  const delivered: { id: string; eventId: number }[] = [];
  const stats = { connections: 0, snapshots: 0, gaps: 0, firstNotSnapshot: 0, emptyConnections: 0, midEventCuts: 0, headerResumes: 0, queryResumes: 0, replayed: 0 };
  let resumeFrom = '';

  const connect = async (via: 'header' | 'query', onCommand: () => void): Promise<SseConnection> => {
    let first = true;
    if (resumeFrom) stats[via === 'header' ? 'headerResumes' : 'queryResumes']++;
    const conn = await SseConnection.open(eventsUrl, {
      lastEventId: resumeFrom,
      via,
      onEvent: (ev: SseMessage, c: SseConnection) => {
        if (first && ev.event !== EVENT.snapshot) stats.firstNotSnapshot++;
        first = false;
        if (ev.event === EVENT.snapshot) {
          stats.snapshots++;
          if ((JSON.parse(ev.data) as Snapshot).gap) stats.gaps++;
        } else if (ev.event === EVENT.command) {
          const cmd = JSON.parse(ev.data) as { id: string };
          delivered.push({ id: cmd.id, eventId: Number(ev.lastEventId) });
          onCommand();
        } else {
          problems.push(`unexpected ${ev.event} event`);
        }
        // EventSource resumes from the id of the last event it dispatched.
        resumeFrom = c.lastEventId;
        resumePoint = Number(resumeFrom) || 0;
      },
    });
    assert.equal(conn.status, 200, 'the event stream answers 200');
    stats.connections++;
    return conn;
  };

  let publishers: Promise<void>[] = [];
  let reconnects = 0;
  const started = Date.now();
  try {
    for (let r = 0; r <= RECONNECTS; r++) {
      if (Date.now() > deadline) throw new Error(`ran out of time after ${reconnects} reconnects`);
      let commandsHere = 0;
      const target = 1 + int(4);
      const conn = await connect(r % 2 ? 'query' : 'header', () => commandsHere++);
      if (r === 0) {
        // A new subscriber starts from "now": only once it holds a position do the taps begin.
        await conn.waitFor(() => conn.events.length > 0, 10_000, 'the first snapshot');
        publishers = [lane(1), lane(2)];
      }
      // Stay until a few commands arrived or a few milliseconds passed, whichever is first: cuts land anywhere.
      const until = Date.now() + int(9);
      while (commandsHere < target && !conn.closed && Date.now() < until) await sleep(1);
      if (conn.events.length === 0) stats.emptyConnections++;
      if (r === RECONNECTS) {
        conn.destroy();
        break;
      }
      if (r % 4 === 1) {
        // Cut inside the next chunk that arrives, possibly in the middle of an event.
        stats.midEventCuts++;
        conn.cutInsideNextChunk(1 + int(120));
        await conn.waitFor(() => conn.closed, 200, 'a chunk to cut').catch(() => conn.destroy());
      } else {
        conn.destroy();
      }
      reconnects++;
    }
  } finally {
    subscriberDone = true;
    await Promise.all(publishers);
  }
  const churnMs = Date.now() - started;

  // One last, undisturbed connection collects whatever is left.
  const final = await connect('header', () => undefined);
  await final.waitFor(() => resumePoint >= highestEventId, 15_000, `event ${highestEventId}`);
  final.destroy();
  agent.destroy();

  // ---------------------------------------------------------------- verdict
  const seen = new Map<string, number>();
  for (const d of delivered) seen.set(d.id, (seen.get(d.id) ?? 0) + 1);
  const duplicated = [...seen.values()].filter((n) => n > 1).length;
  const lost = [...accepted.keys()].filter((id) => !seen.has(id));
  const unknown = [...seen.keys()].filter((id) => !accepted.has(id));
  const expectedOrder = [...accepted.entries()].sort((a, b) => a[1].eventId - b[1].eventId).map(([id]) => id);
  let outOfOrder = 0;
  for (let i = 1; i < delivered.length; i++) if (delivered[i]!.eventId <= delivered[i - 1]!.eventId) outOfOrder++;
  const laneOrderBroken = [1, 2].filter((l) => {
    const ns = delivered.map((d) => accepted.get(d.id)).filter((a) => a?.lane === l).map((a) => a!.n);
    return ns.some((n, i) => i > 0 && n <= ns[i - 1]!);
  }).length;

  console.log(
    `[reconnect] seed=${seed} reconnects=${reconnects} connections=${stats.connections} ` +
      `(resumed via Last-Event-ID ${stats.headerResumes}, via ?lastEventId= ${stats.queryResumes}, cut mid-event ${stats.midEventCuts}, cut before any event ${stats.emptyConnections})`,
  );
  console.log(
    `[reconnect] commands: posts=${figures.posts} accepted=${accepted.size} delivered=${delivered.length} ` +
      `duplicate POSTs sent=${figures.duplicatesSent} dropped by the server=${figures.duplicatesDropped} ` +
      `lost=${lost.length} duplicated=${duplicated} out of order=${outOfOrder} snapshots=${stats.snapshots} gaps=${stats.gaps} ` +
      `backpressure waits=${figures.backpressureWaits} churn took ${churnMs} ms`,
  );

  assert.deepEqual(problems, [], 'publisher and subscriber saw no protocol problems');
  assert.equal(reconnects, RECONNECTS, 'every forced reconnect happened');
  assert.equal(stats.firstNotSnapshot, 0, 'every connection began with a snapshot');
  assert.equal(stats.gaps, 0, 'no resume fell outside the history');
  assert.ok(accepted.size >= RECONNECTS, `commands were in flight throughout (${accepted.size} accepted)`);
  assert.ok(figures.duplicatesSent > 0 && figures.duplicatesDropped === figures.duplicatesSent, 'every re-sent id was dropped by the server');
  assert.deepEqual(lost, [], 'no accepted command was lost');
  assert.equal(duplicated, 0, 'no command was delivered twice');
  assert.deepEqual(unknown, [], 'nothing but accepted commands was delivered');
  assert.equal(outOfOrder, 0, 'event ids only ever increase');
  assert.equal(laneOrderBroken, 0, "each publisher's commands arrive in the order it sent them");
  assert.deepEqual(
    delivered.map((d) => d.id),
    expectedOrder,
    "delivery order is the server's acceptance order",
  );
});

// ------------------------------------------------------------------ non-200 recovery

/** The DOM globals protocol/live.ts touches, on Node: an EventSource, and quiet document/window/navigator stand-ins. */
function installBrowserGlobals(): () => void {
  const names = ['EventSource', 'document', 'window', 'navigator'] as const;
  const saved = names.map((n) => Object.getOwnPropertyDescriptor(globalThis, n));
  const doc = Object.assign(new EventTarget(), { visibilityState: 'visible' });
  const define = (name: string, value: unknown) => Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
  define('EventSource', NodeEventSource);
  define('document', doc);
  define('window', new EventTarget());
  define('navigator', { onLine: true });
  return () =>
    names.forEach((n, i) => {
      const d = saved[i];
      if (d) Object.defineProperty(globalThis, n, d);
      else Reflect.deleteProperty(globalThis, n);
    });
}

type ProxyMode = 'proxy' | 502 | 503;

/** A tiny reverse proxy that can be switched to answer 502 or 503, counting what it served. */
async function flakyProxy(upstreamPort: number) {
  const [port] = await freePorts(1);
  let mode: ProxyMode = 'proxy';
  const served = { proxied: 0, 502: 0, 503: 0 };
  const open = new Set<http.ServerResponse>();
  /** Each proxied answer's upstream, so the path can go dead without a word. */
  const upstreamOf = new Map<http.ServerResponse, http.IncomingMessage>();
  const proxy = http.createServer((req, res) => {
    if (mode !== 'proxy') {
      served[mode]++;
      res.writeHead(mode, { 'Content-Type': 'text/html' }).end(`<h1>${mode}</h1>`);
      return;
    }
    served.proxied++;
    const up = http.request(
      { host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers, agent: false },
      (ures) => {
        res.writeHead(ures.statusCode ?? 502, ures.headers);
        upstreamOf.set(res, ures);
        ures.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    open.add(res);
    res.on('close', () => {
      open.delete(res);
      upstreamOf.delete(res);
      up.destroy();
    });
    req.pipe(up);
  });
  await new Promise<void>((resolve) => proxy.listen(port, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${port}`,
    served,
    set(m: ProxyMode) {
      mode = m;
    },
    /** Cuts every proxied stream, as a proxy does when its upstream dies. */
    cutAll() {
      for (const res of open) res.destroy();
    },
    /**
     * Every proxied answer open now goes silent, with both connections left
     * open: a Wi-Fi change or a NAT that forgot the connection, where no FIN
     * or RST ever reaches either end. New requests are proxied as before.
     */
    freezeAll() {
      for (const [res, ures] of upstreamOf) {
        ures.unpipe(res);
        ures.pause();
      }
      upstreamOf.clear();
    },
    async close() {
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    },
  };
}

test('after 502 and 503 answers a plain EventSource stays dead; the watchdog of protocol/live.ts recovers and loses nothing', { timeout: 120_000 }, async () => {
  const { info, controllerKey } = await pairedChannel(server.base);
  const proxy = await flakyProxy(server.port);
  const restore = installBrowserGlobals();
  const sent: string[] = [];
  const got: string[] = [];
  const states: LinkState[] = [];
  let snapshots = 0;
  const send = async (id: string) => {
    const res = await jsonCall(server.base, 'POST', `/api/channels/${info.id}/commands`, { body: { type: 'next', id }, key: controllerKey });
    assert.equal(res.status, 202);
    sent.push(id);
  };
  const until = (check: () => boolean, ms: number, what: string) => waitUntil(check, ms, what, () => `served ${JSON.stringify(proxy.served)}, states ${states.join(' > ')}`);

  const url = `${proxy.base}/api/channels/${info.id}/events`;
  const live = new LiveStream(url, [EVENT.snapshot, EVENT.command], {
    onEvent(name, data) {
      if (name === EVENT.snapshot) snapshots++;
      else got.push((data as { id: string }).id);
    },
    onState: (s) => states.push(s),
  });
  // The control: the same stream with nothing but EventSource's own retries.
  const plain = new NodeEventSource(url);
  let plainCommands = 0;
  plain.addEventListener(EVENT.command, () => plainCommands++);

  try {
    live.start();
    await until(() => states.at(-1) === 'live' && snapshots === 1 && plain.readyState === NodeEventSource.OPEN, 10_000, 'both streams to open');
    for (let i = 0; i < 3; i++) await send(`before-outage-${i}`);
    await until(() => got.length === 3 && plainCommands === 3, 10_000, 'the first commands');

    // The upstream "restarts": streams are cut and the proxy answers 502, then 503.
    proxy.set(502);
    proxy.cutAll();
    const outageStart = Date.now();
    // Taps keep coming while the stream is down; they must all arrive afterwards.
    for (let i = 0; i < 5; i++) await send(`during-outage-${i}`);
    await until(() => proxy.served[502] >= 3 && Date.now() - outageStart > 1_500, 20_000, 'streams to meet 502s');
    proxy.set(503);
    const phase503 = Date.now();
    await until(() => proxy.served[503] >= 2 && Date.now() - phase503 > 1_500, 20_000, 'the watchdog to retry into 503s');
    assert.equal(plain.readyState, NodeEventSource.CLOSED, 'a plain EventSource has given up for good after a non-200 answer');

    proxy.set('proxy');
    const restored = Date.now();
    await until(() => states.at(-1) === 'live' && got.length === 8, 20_000, 'the watchdog to reconnect and replay');
    const recoverMs = Date.now() - restored;
    for (let i = 0; i < 2; i++) await send(`after-outage-${i}`);
    await until(() => got.length === 10, 10_000, 'commands after recovery');
    // Give the dead EventSource every chance to show it would have recovered too.
    await sleep(1_500);

    console.log(
      `[non-200] served 502 x${proxy.served[502]}, 503 x${proxy.served[503]}, proxied x${proxy.served.proxied}; ` +
        `watchdog live again ${recoverMs} ms after the proxy recovered; link states: ${states.join(' > ')}; ` +
        `plain EventSource readyState=${plain.readyState} with ${plainCommands} commands`,
    );
    assert.deepEqual(got, sent, 'every command arrived once, in order, across the outage');
    assert.ok(states.includes('reconnecting'), 'the link showed it was reconnecting');
    assert.ok(!states.includes('waiting'), "a proxy's 502 and 503 are a server away, not a channel it does not know");
    assert.equal(plain.readyState, NodeEventSource.CLOSED, 'the plain EventSource never came back by itself');
    assert.equal(plainCommands, 3, 'the plain EventSource missed everything after the outage');
  } finally {
    live.stop();
    plain.close();
    restore();
    await proxy.close();
  }
});

test('a stream that goes silent without a word (no FIN, no RST) is found out by its missing beats and replaced, losing nothing; a quiet one is left alone', { timeout: 120_000 }, async () => {
  // Beats every second, so the watchdog judges a silence after 3.5 s (a beat and a half, and its 2 s slack).
  const own = await ClickerServer.start(['--bind', '127.0.0.1'], { HEARTBEAT_MS: '1000' });
  const proxy = await flakyProxy(own.port);
  const restore = installBrowserGlobals();
  const sent: string[] = [];
  const got: string[] = [];
  const states: LinkState[] = [];
  const until = (check: () => boolean, ms: number, what: string) => waitUntil(check, ms, what, () => `served ${JSON.stringify(proxy.served)}, states ${states.join(' > ')}`);
  const { info, controllerKey } = await pairedChannel(own.base);
  const send = async (id: string) => {
    const res = await jsonCall(own.base, 'POST', `/api/channels/${info.id}/commands`, { body: { type: 'next', id }, key: controllerKey });
    assert.equal(res.status, 202);
    sent.push(id);
  };
  const url = `${proxy.base}/api/channels/${info.id}/events`;
  const live = new LiveStream(url, [EVENT.snapshot, EVENT.command], {
    onEvent(name, data) {
      if (name === EVENT.command) got.push((data as { id: string }).id);
    },
    onState: (s) => states.push(s),
  });
  // The control: EventSource on its own, with the same events.
  const plain = new NodeEventSource(`${url}?events=snapshot,command`);
  let plainCommands = 0;
  plain.addEventListener(EVENT.command, () => plainCommands++);
  try {
    live.start();
    await until(() => states.at(-1) === 'live' && plain.readyState === NodeEventSource.OPEN, 10_000, 'both streams to open');
    for (let i = 0; i < 2; i++) await send(`silent-before-${i}`);
    await until(() => got.length === 2 && plainCommands === 2, 10_000, 'the first commands');
    // Quiet for longer than the watchdog's window: the beats keep the stream, nothing reconnects.
    await sleep(6_000);
    assert.equal(proxy.served.proxied, 2, 'no new stream while the old one beats');
    assert.deepEqual(states, ['connecting', 'live']);

    proxy.freezeAll();
    const frozenAt = Date.now();
    for (let i = 0; i < 3; i++) await send(`silent-after-${i}`);
    await until(() => got.length === 5, 20_000, 'the watchdog to replace the silent stream and replay');
    const foundMs = Date.now() - frozenAt;
    // The plain EventSource has no way to know: still "open", and deaf.
    await sleep(1_000);
    console.log(`[silent] the watchdog replaced the silent stream ${foundMs} ms after it went silent; link states: ${states.join(' > ')}; plain EventSource readyState=${plain.readyState} with ${plainCommands} commands`);
    assert.deepEqual(got, sent, 'every command arrived once, in order');
    assert.ok(states.includes('reconnecting') && states.at(-1) === 'live', `states: ${states.join(' > ')}`);
    assert.equal(plain.readyState, NodeEventSource.OPEN, 'the plain EventSource still reads the dead stream as open');
    assert.equal(plainCommands, 2, 'and heard nothing after the path went silent');
  } finally {
    live.stop();
    plain.close();
    restore();
    await proxy.close();
    await own.stop();
  }
});

test("the slideshow's stream, a key holder's, is found dead on its quicker beat, long before the room's heartbeat would tell", { timeout: 60_000 }, async () => {
  // The room's heartbeat is a minute here (a silence counts after 92 s); the key holders' beat is half a second (2.75 s).
  const own = await ClickerServer.start(['--bind', '127.0.0.1'], { HEARTBEAT_MS: '60000', KEY_HOLDER_BEAT_MS: '500' });
  const proxy = await flakyProxy(own.port);
  const restore = installBrowserGlobals();
  const sent: string[] = [];
  const got = { deck: [] as string[], room: [] as string[] };
  const states = { deck: [] as LinkState[], room: [] as LinkState[] };
  const until = (check: () => boolean, ms: number, what: string) => waitUntil(check, ms, what, () => `states ${JSON.stringify(states)}`);
  const { info, controllerKey } = await pairedChannel(own.base);
  const url = `${proxy.base}/api/channels/${info.id}/events`;
  const stream = (who: 'deck' | 'room') =>
    new LiveStream(url, [EVENT.snapshot, EVENT.command], {
      onEvent(name, data) {
        if (name === EVENT.command) got[who].push((data as { id: string }).id);
      },
      onState: (s) => states[who].push(s),
      // The slideshow shows its deck key's stream token, as slides/clicker-plugin.ts does.
      token: who === 'deck' ? () => info.streamToken : undefined,
    });
  const deck = stream('deck');
  const room = stream('room');
  try {
    deck.start();
    room.start();
    await until(() => states.deck.at(-1) === 'live' && states.room.at(-1) === 'live', 10_000, 'both streams to open');
    proxy.freezeAll();
    for (let i = 0; i < 2; i++) {
      const id = `quick-beat-${i}`;
      const res = await jsonCall(own.base, 'POST', `/api/channels/${info.id}/commands`, { body: { type: 'next', id }, key: controllerKey });
      assert.equal(res.status, 202);
      sent.push(id);
    }
    await until(() => got.deck.length === 2, 20_000, "the slideshow's stream to be replaced");
    assert.deepEqual(got.deck, sent);
    assert.ok(states.deck.includes('reconnecting') && states.deck.at(-1) === 'live', `states: ${states.deck.join(' > ')}`);
    // The room's stream, on the minute-long heartbeat, is still deaf and still reads as live: a key holder's quick beat is its own.
    assert.deepEqual(states.room, ['connecting', 'live']);
    assert.deepEqual(got.room, []);
    assert.equal(proxy.served.proxied, 3, 'one new stream, the slideshow\'s');
  } finally {
    deck.stop();
    room.stop();
    restore();
    await proxy.close();
    await own.stop();
  }
});

test('a channel the restarted server does not know yet reads as waiting, not reconnecting; registered again, the same stream is live and carries commands', { timeout: 120_000 }, async () => {
  let own = await ClickerServer.start(['--bind', '127.0.0.1']);
  const restore = installBrowserGlobals();
  const states: LinkState[] = [];
  const got: string[] = [];
  const until = (check: () => boolean, ms: number, what: string) => waitUntil(check, ms, what, () => `states ${states.join(' > ')}`);
  const { info, controllerKey, controllerHash } = await pairedChannel(own.base);
  const live = new LiveStream(`${own.base}/api/channels/${info.id}/events`, [EVENT.snapshot, EVENT.command], {
    onEvent(name, data) {
      if (name === EVENT.command) got.push((data as { id: string }).id);
    },
    onState: (s) => states.push(s),
  });
  try {
    live.start();
    await until(() => states.at(-1) === 'live', 10_000, 'the stream to open');
    // A fresh process on the same port, its in-memory hub empty: nobody has registered the channel there yet.
    own = await own.restart('SIGKILL');
    const restartedAt = states.length;
    await until(() => states.at(-1) === 'waiting', 20_000, 'the link to say it waits for the channel');
    // It keeps retrying, and keeps saying so rather than flickering back to "reconnecting".
    const firstWaiting = states.indexOf('waiting', restartedAt);
    await sleep(2_500);
    assert.deepEqual([...new Set(states.slice(firstWaiting))], ['waiting'], `states after the first "waiting": ${states.slice(firstWaiting).join(' > ')}`);

    // The slideshow comes back and registers its channel (with its phone), as it does on reopening: the same stream goes live.
    const put = await jsonCall(own.base, 'PUT', `/api/channels/${info.id}`, { body: { controllers: [controllerHash] }, key: info.deckKey });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    await until(() => states.at(-1) === 'live', 20_000, 'the stream to open again');
    const cmd = await jsonCall(own.base, 'POST', `/api/channels/${info.id}/commands`, { body: { type: 'next', id: 'after-waiting-1' }, key: controllerKey });
    assert.equal(cmd.status, 202);
    await until(() => got.includes('after-waiting-1'), 10_000, 'the command after the channel came back');
    console.log(`[waiting] link states: ${states.join(' > ')}`);
  } finally {
    live.stop();
    restore();
    await own.stop();
  }
});

// ------------------------------------------------------------------ graceful restart

test('a graceful restart (SIGTERM) under a stream of taps loses and doubles nothing', { timeout: 120_000 }, async () => {
  const { info, controllerKey, controllerHash } = await pairedChannel(server.base);
  const deckKey = info.deckKey;
  // Phones keep their connection to the server alive between taps.
  const phoneAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const eventsUrl = () => `${server.base}/api/channels/${info.id}/events`;
  const delivered: string[] = [];
  let resumeFrom = '';
  let stopped = false;
  const outcome = { accepted: 0, duplicates: 0, retries: 0, streamEnds: 0 };

  // A phone: one tap after another, each retried with the same id until the server answers 2xx, as sendCommand does.
  const tapping = async () => {
    for (let n = 0; !stopped && n < 5_000; n++) {
      const id = `tap-${String(n).padStart(6, '0')}`;
      for (let attempt = 0; ; attempt++) {
        const res = await jsonCall<CommandAnswer>(server.base, 'POST', `/api/channels/${info.id}/commands`, {
          body: { type: 'next', id },
          key: controllerKey,
          agent: phoneAgent,
        }).catch(() => undefined);
        if (res && (res.status === 200 || res.status === 202)) {
          if (res.body.duplicate) outcome.duplicates++;
          else outcome.accepted++;
          break;
        }
        // Connection refused while the port is free, 503 while the old process drains, 404 until the deck re-registers.
        outcome.retries++;
        if (attempt > 300) throw new Error(`${id} never got through: ${res?.status}`);
        await sleep(20);
      }
    }
  };
  let phone: Promise<void> = Promise.resolve();

  // The slideshow: listens, and after the restart re-registers its channel (PUT) before resuming, as clicker-plugin.ts does.
  const listen = async (): Promise<SseConnection> => {
    const conn = await SseConnection.open(eventsUrl(), {
      lastEventId: resumeFrom,
      onEvent: (ev, c) => {
        if (ev.event === EVENT.command) delivered.push((JSON.parse(ev.data) as { id: string }).id);
        resumeFrom = c.lastEventId;
      },
    });
    return conn;
  };

  try {
    let conn = await listen();
    await conn.waitFor(() => conn.events.length > 0, 10_000, 'the first snapshot');
    phone = tapping();
    await conn.waitFor(() => delivered.length >= 50, 20_000, '50 taps before the restart');
    const old = server;
    const exitStart = Date.now();
    const exited = old.stop('SIGTERM');
    // The old process ends the stream only after everything it accepted was written to it.
    await conn.waitFor(() => conn.closed, 10_000, 'the old process to end the stream');
    outcome.streamEnds++;
    const code = await exited;
    const exitMs = Date.now() - exitStart;
    assert.equal(code, 0, 'the old process exits cleanly');
    server = await ClickerServer.start(['--bind', '127.0.0.1'], {}, old.port);
    const reg = await jsonCall(server.base, 'PUT', `/api/channels/${info.id}`, {
      key: deckKey,
      body: { controllers: [controllerHash], lastEventId: Number(resumeFrom) || 0 },
    });
    assert.equal(reg.status, 200, `re-registration: ${JSON.stringify(reg.body)}`);
    conn = await listen();
    const before = delivered.length;
    await conn.waitFor(() => delivered.length >= before + 50, 20_000, '50 taps after the restart');
    stopped = true;
    await phone;
    const expected = Array.from({ length: outcome.accepted }, (_, n) => `tap-${String(n).padStart(6, '0')}`);
    await conn
      .waitFor(() => delivered.length >= outcome.accepted, 10_000, 'the last taps')
      .catch((err: Error) => {
        const got = new Set(delivered);
        throw new Error(`${err.message}; missing: ${expected.filter((id) => !got.has(id)).join(', ')}`);
      });
    conn.destroy();
    const dup = delivered.length - new Set(delivered).size;
    console.log(
      `[graceful] old process exited in ${exitMs} ms (code ${code}); taps accepted=${outcome.accepted} delivered=${delivered.length} ` +
        `duplicated=${dup} retries=${outcome.retries} answered-as-duplicate=${outcome.duplicates}`,
    );
    assert.deepEqual(delivered, expected, 'every accepted tap arrived exactly once, in order');
  } finally {
    stopped = true;
    await phone.catch(() => undefined);
    phoneAgent.destroy();
  }
});

// ------------------------------------------------------------------ slow subscriber

test('a subscriber too slow to keep up is cut loose, the server survives it, and the subscriber resumes without losing a command', { timeout: 120_000 }, async () => {
  // Heartbeats every 100 ms: the first one after the cut must not write to the ended stream.
  const own = await ClickerServer.start(['--bind', '127.0.0.1'], { HEARTBEAT_MS: '100' });
  try {
    const { info, controllerKey } = await pairedChannel(own.base);
    const conn = await SseConnection.open(`${own.base}/api/channels/${info.id}/events`);
    await conn.waitFor(() => conn.events.length > 0, 10_000, 'the snapshot');
    conn.pause();

    // Big state reports (speaker notes and an outline) fill the stalled stream past the server's
    // 1 MiB queue cap, with kernel buffers on top; commands are interleaved to be replayed later.
    const slides = Array.from({ length: 200 }, (_, i) => ({ h: i, v: 0, title: `Slide ${i} `.padEnd(200, 'x') }));
    const state = {
      indexh: 0, indexv: 0, indexf: -1, fragments: 0, paused: false, position: 1, total: 200,
      isFirst: true, isLast: false, title: 'Big', notes: 'n'.repeat(8_000), nextTitle: 'Next',
    };
    const sent: string[] = [];
    let reportBytes = 0;
    for (let i = 0; i < 300; i++) {
      const report = { state: { ...state, position: 1 + (i % 200) }, slides };
      const put = await jsonCall(own.base, 'PUT', `/api/channels/${info.id}/state`, { body: report, key: info.deckKey });
      assert.equal(put.status, 200, `state report ${i}: ${JSON.stringify(put.body)}`);
      reportBytes += JSON.stringify(report).length;
      const id = `slow-${String(i).padStart(5, '0')}`;
      const cmd = await jsonCall(own.base, 'POST', `/api/channels/${info.id}/commands`, { body: { type: 'next', id }, key: controllerKey });
      assert.equal(cmd.status, 202);
      sent.push(id);
    }
    // Several heartbeats go by while the cut-off stream still holds unsent bytes.
    await sleep(600);
    const health = await jsonCall<{ ok: boolean }>(own.base, 'GET', '/healthz').catch((err: Error) => ({ status: 0, body: { ok: false }, err }));
    assert.equal(health.status, 200, 'the server is still up after cutting a slow subscriber loose');

    conn.resume();
    await conn.waitFor(() => conn.closed, 30_000, 'the server to have ended the slow stream');
    const before = conn.named<{ id: string }>(EVENT.command).map((c) => c.id);
    assert.ok(before.length < sent.length, `the slow stream was cut before the end (${before.length} of ${sent.length} commands)`);

    const again = await SseConnection.open(`${own.base}/api/channels/${info.id}/events`, { lastEventId: conn.lastEventId });
    await again.waitFor(() => before.length + again.named(EVENT.command).length >= sent.length, 10_000, 'the replay');
    again.destroy();
    const snap = again.named<Snapshot>(EVENT.snapshot);
    const replayed = again.named<{ id: string }>(EVENT.command).map((c) => c.id);
    console.log(
      `[slow] ${(reportBytes / 1e6).toFixed(1)} MB of state reports; ${before.length} commands arrived before the cut, ` +
        `${replayed.length} replayed after resuming from id ${conn.lastEventId}`,
    );
    assert.equal(snap.length, 1);
    assert.equal(snap[0]!.gap, false, 'the resume point was still in the history');
    assert.deepEqual([...before, ...replayed], sent, 'every command exactly once, in order');
  } finally {
    await own.stop();
  }
});
