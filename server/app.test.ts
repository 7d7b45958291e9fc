// Integration tests: the real app on an ephemeral 127.0.0.1 port, driven with
// fetch and a real EventSource client. publicBase names a TEST-NET address
// (192.0.2.2) that only ever appears inside returned URLs.
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { EventSource } from 'eventsource';
import { ID_RE, MAX_CONTROLLERS, MAX_REGISTERED_EVENT_ID, type ChannelInfo, type DeckState, type PairResult, type Snapshot } from '../protocol/messages';
import { createApp } from './app';
import { DEFAULTS, type Config } from './config';
import { Hub } from './hub';
import { THEME_DIR } from './deck';
import { rawRequest } from './testing';
import { hashSecret } from './keys';

const rootDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const clientDir = mkdtempSync(path.join(os.tmpdir(), 'clicker-client-'));
writeFileSync(path.join(clientDir, 'slides.js'), 'console.log("slides");\n');
after(() => rmSync(clientDir, { recursive: true, force: true }));

/** Guards against a hang if an awaited event never comes; not a timing assertion. */
const GUARD = { timeout: 20_000 };

// ------------------------------------------------------------------ harness

interface Received {
  type: string;
  data: unknown;
  lastEventId: string;
}

/** A real EventSource that records named events in arrival order. */
class Stream {
  readonly events: Received[] = [];
  readonly es: EventSource;
  private readonly waiters = new Set<() => boolean>();

  constructor(url: string, lastEventId?: string) {
    this.es = new EventSource(
      url,
      lastEventId === undefined
        ? {}
        : { fetch: (u, init) => fetch(u, { ...init, headers: { ...init.headers, 'Last-Event-ID': lastEventId } }) },
    );
    for (const type of ['snapshot', 'command', 'state', 'presence', 'slideshow']) {
      this.es.addEventListener(type, (e: MessageEvent) => {
        this.events.push({ type, data: JSON.parse(String(e.data)) as unknown, lastEventId: e.lastEventId });
        for (const check of this.waiters) if (check()) this.waiters.delete(check);
      });
    }
  }

  /** Resolves with the first recorded event matching `pred`, now or when it arrives. */
  waitFor(pred: (e: Received) => boolean): Promise<Received> {
    return new Promise((resolve) => {
      const check = (): boolean => {
        const hit = this.events.find(pred);
        if (hit) resolve(hit);
        return hit !== undefined;
      };
      if (!check()) this.waiters.add(check);
    });
  }

  snapshot(): Promise<Snapshot> {
    return this.waitFor((e) => e.type === 'snapshot').then((e) => e.data as Snapshot);
  }

  command(id: string): Promise<Received> {
    return this.waitFor((e) => e.type === 'command' && (e.data as { id: string }).id === id);
  }

  of(type: string): Received[] {
    return this.events.filter((e) => e.type === type);
  }
}

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

interface CallOptions {
  json?: unknown;
  /** A raw body; give its content type in `headers`. */
  raw?: string;
  key?: string;
  headers?: Record<string, string>;
}

class Server {
  private readonly streams: Stream[] = [];

  constructor(
    readonly hub: Hub,
    private readonly server: http.Server,
    readonly port: number,
    /** Lines the app logged: only unexpected (500) errors are logged. */
    readonly logs: string[],
  ) {}

  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  get publicBase(): string {
    return `http://192.0.2.2:${this.port}`;
  }

  async call(method: string, urlPath: string, opts: CallOptions = {}): Promise<Answer> {
    const headers: Record<string, string> = { ...opts.headers };
    let body: string | undefined = opts.raw;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers['Content-Type'] ??= 'application/json';
    }
    if (opts.key !== undefined) headers.Authorization = `Bearer ${opts.key}`;
    const res = await fetch(this.base + urlPath, { method, headers, body });
    const text = await res.text();
    const isJson = res.headers.get('content-type')?.startsWith('application/json') ?? false;
    return { status: res.status, headers: res.headers, body: isJson ? (JSON.parse(text) as Record<string, unknown>) : { text } };
  }

  async create(): Promise<ChannelInfo> {
    const res = await this.call('POST', '/api/channels', { json: {} });
    assert.equal(res.status, 201);
    return res.body as unknown as ChannelInfo;
  }

  async pair(ch: ChannelInfo): Promise<PairResult> {
    const res = await this.call('POST', `/api/channels/${ch.id}/pair`, { json: { code: ch.pairCode } });
    assert.equal(res.status, 201);
    return res.body as unknown as PairResult;
  }

  command(ch: ChannelInfo, key: string, cmd: Record<string, unknown>): Promise<Answer> {
    return this.call('POST', `/api/channels/${ch.id}/commands`, { json: cmd, key });
  }

  stream(id: string, opts: { lastEventId?: string; query?: string } = {}): Stream {
    const s = new Stream(`${this.base}/api/channels/${id}/events${opts.query ?? ''}`, opts.lastEventId);
    this.streams.push(s);
    return s;
  }

  async close(): Promise<void> {
    // Streams first, so no EventSource tries to reconnect to a closing server.
    for (const s of this.streams) s.es.close();
    this.hub.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

async function start(t: TestContext, overrides: Partial<Config> = {}): Promise<Server> {
  // Phones pair in one step here, as in testing.ts: approval has its own suite (approval.test.ts).
  const config: Config = { ...DEFAULTS, approvePhones: false, ...overrides };
  const hub = new Hub(config);
  let port = 0;
  const logs: string[] = [];
  const app = createApp({ config, hub, clientDir, rootDir, publicBase: () => `http://192.0.2.2:${port}`, log: (line) => logs.push(line) });
  const httpServer = http.createServer(app);
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  port = (httpServer.address() as AddressInfo).port;
  const server = new Server(hub, httpServer, port, logs);
  t.after(() => server.close());
  return server;
}

/** Every error answer is JSON with a non-empty `error` string. */
function expectError(res: Answer, status: number, message?: RegExp): Record<string, unknown> {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${JSON.stringify(res.body)}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json\b/);
  assert.equal(typeof res.body.error, 'string');
  assert.notEqual(res.body.error, '');
  if (message) assert.match(String(res.body.error), message);
  return res.body;
}

let cmdCounter = 0;
const cmdId = (): string => `cmd-${process.pid}-${String(++cmdCounter).padStart(6, '0')}`;

const state: DeckState = {
  indexh: 1,
  indexv: 0,
  indexf: -1,
  fragments: 2,
  paused: false,
  position: 2,
  total: 4,
  isFirst: false,
  isLast: false,
  title: 'Second',
  notes: 'Say hello.\nThen move on.',
  nextTitle: 'Third',
};
/** The state as a stream carries it: the same, without the speaker notes (those are for key holders, GET .../notes). */
function onStream(s: DeckState): Omit<DeckState, 'notes'> {
  const { notes, ...rest } = s;
  void notes;
  return rest;
}

// ------------------------------------------------------------------ channels

test('a wrong method on any route the README lists is 405 naming the right ones, as on the pages; OPTIONS without an Origin lists them', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  // The README's API tables are the list: every route they give must answer a wrong method with 405 and the right Allow.
  const routes = new Map<string, Set<string>>();
  for (const m of readFileSync(path.join(rootDir, 'README.md'), 'utf8').matchAll(/^\| `(GET|POST|PUT|DELETE) (\/[^`\s]*)`/gm)) {
    // `controllers[/:hash]` is two paths, the first shared with POST `controllers`.
    for (const route of m[2]!.includes('[/:hash]') ? [m[2]!.replace('[/:hash]', ''), m[2]!.replace('[/:hash]', '/:hash')] : [m[2]!]) {
      const methods = routes.get(route) ?? new Set<string>();
      methods.add(m[1]!);
      if (m[1] === 'GET') methods.add('HEAD');
      routes.set(route, methods);
    }
  }
  assert.ok(routes.size >= 15, `the README's API tables were read: ${[...routes.keys()].join(' ')}`);
  for (const [route, allow] of routes) {
    const url = route.replace(':id', ch.id).replace(':qid', 'q'.repeat(12)).replace(':hash', 'h'.repeat(43));
    for (const wrong of ['PATCH', ...['GET', 'POST', 'PUT', 'DELETE'].filter((m) => !allow.has(m))]) {
      const res = await s.call(wrong, url);
      expectError(res, 405, /method not allowed/);
      assert.deepEqual(res.headers.get('allow')?.split(', ').sort(), [...allow].sort(), `${wrong} ${url}`);
    }
    // An OPTIONS with no Origin is no CORS preflight: it is told the methods too, not refused as cross-origin.
    const options = await s.call('OPTIONS', url);
    assert.equal(options.status, 204, `OPTIONS ${url}: ${JSON.stringify(options.body)}`);
    assert.deepEqual(options.headers.get('allow')?.split(', ').sort(), [...allow, 'OPTIONS'].sort(), `OPTIONS ${url}`);
  }
  for (const url of ['/', `/f/${ch.id}`, `/r/${ch.id}`, '/_audience.md', '/clicker.js']) {
    const res = await s.call('POST', url);
    expectError(res, 405, /method not allowed/);
    assert.equal(res.headers.get('allow'), 'GET, HEAD', url);
    const options = await s.call('OPTIONS', url);
    assert.equal(options.status, 204, url);
    assert.equal(options.headers.get('allow'), 'GET, HEAD, OPTIONS', url);
  }
  // A path that is nowhere is still a 404, whatever the method.
  expectError(await s.call('POST', '/nowhere'), 404, /not found/);
  expectError(await s.call('PATCH', '/api/nowhere'), 404, /not found/);
});

test('an error is a page for a browser navigating to it, and JSON for any program and on /api', GUARD, async (t) => {
  const s = await start(t);
  const navigation = { Accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8' };
  const page = await s.call('GET', '/nowhere', { headers: navigation });
  assert.equal(page.status, 404);
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
  assert.equal(page.headers.get('vary'), 'Accept');
  assert.match(String(page.body.text), /<title>Clicker: Not Found<\/title>[\s\S]*<h1>Not Found<\/h1><p>Not found\.<\/p>/);
  const bad = await s.call('GET', '/r/<bad>', { headers: navigation });
  assert.equal(bad.status, 404);
  assert.match(String(bad.body.text), /<p>Unknown channel\.<\/p>/);
  // fetch() asks for anything, an image for images: JSON. So does the API, even for a browser.
  for (const accept of ['*/*', 'application/json', 'image/avif,image/webp,*/*;q=0.8', 'text/event-stream']) {
    expectError(await s.call('GET', '/nowhere', { headers: { Accept: accept } }), 404, /not found/);
  }
  expectError(await s.call('GET', '/nowhere'), 404, /not found/);
  expectError(await s.call('GET', '/api/channels/nope/notes', { headers: navigation }), 404, /unknown channel/);
  expectError(await s.call('POST', '/api/channels', { headers: navigation, raw: 'x=1' }), 415);
});

test('POST /api/channels creates a channel and answers its URLs', GUARD, async (t) => {
  const s = await start(t);
  const res = await s.call('POST', '/api/channels', { json: {} });
  assert.equal(res.status, 201);
  const ch = res.body as unknown as ChannelInfo;
  assert.match(ch.id, ID_RE);
  assert.match(ch.deckKey, /^[A-Za-z0-9_-]{32}$/);
  assert.match(ch.pairCode ?? '', /^[A-Za-z0-9_-]{32}$/);
  assert.equal(ch.controllerUrl, `${s.publicBase}/r/${ch.id}#${ch.pairCode}`);
  const url = new URL(ch.controllerUrl ?? '');
  assert.equal(url.host, `192.0.2.2:${s.port}`);
  assert.equal(url.hash, `#${ch.pairCode}`);
  assert.equal(url.search, '', 'the code never goes in the query, which servers log');
  assert.equal(ch.followUrl, `${s.publicBase}/f/${ch.id}`);
  assert.deepEqual(ch.controllers, []);
  assert.equal((await s.hub.get(ch.id)).id, ch.id);
});

test('a browser fetch POST without a body (Content-Length: 0) creates a channel', GUARD, async (t) => {
  const s = await start(t);
  const res = await s.call('POST', '/api/channels');
  assert.equal(res.status, 201, JSON.stringify(res.body));
  assert.match(String(res.body.id), ID_RE);
});

test('channel creation refuses fields', GUARD, async (t) => {
  const s = await start(t);
  expectError(await s.call('POST', '/api/channels', { json: { id: 'AAAAAAAAAAAAAAAAAAAAAA' } }), 400, /no fields/);
});

// ------------------------------------------------------------------ streams

test('the event stream has SSE headers and starts with retry and a snapshot', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  const res = await fetch(`${s.base}/api/channels/${ch.id}/events`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  assert.equal(res.headers.get('cache-control'), 'no-cache, no-transform');
  assert.equal(res.headers.get('x-accel-buffering'), 'no');
  assert.ok(res.body);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!/event: snapshot\ndata: .*\n\n/.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  await reader.cancel();
  const snapshot: Snapshot = { state: null, slides: null, presence: { controllers: 0, pairingOpen: true }, gap: false, questions: { open: true, pending: 0 }, spotlight: null, slideshow: false };
  assert.equal(text, `retry: ${DEFAULTS.retryMs}\n\nid: 1\nevent: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`);
});

test('an EventSource gets the snapshot first', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  const stream = s.stream(ch.id);
  const snap = await stream.snapshot();
  assert.equal(stream.events[0]?.type, 'snapshot');
  assert.equal(stream.events[0]?.lastEventId, '1');
  assert.deepEqual(snap, { state: null, slides: null, presence: { controllers: 0, pairingOpen: true }, gap: false, questions: { open: true, pending: 0 }, spotlight: null, slideshow: false });
});

test("a phone's stream and the room's hear the slideshow come (its stream, opened with the deck's token) and go (SLIDESHOW_AWAY_MS after it closed)", GUARD, async (t) => {
  const s = await start(t, { slideshowAwayMs: 200 });
  const ch = await s.create();
  const phone = await s.pair(ch);
  const phoneStream = s.stream(ch.id, { query: `?as=${phone.streamToken}` });
  assert.equal((await phoneStream.snapshot()).slideshow, false, 'no slideshow yet');
  const room = s.stream(ch.id);
  await room.snapshot();
  const deck = s.stream(ch.id, { query: `?as=${ch.streamToken}` });
  await deck.snapshot();
  const said = (st: Stream) => st.of('slideshow').map((e) => (e.data as { connected: boolean }).connected);
  await phoneStream.waitFor((e) => e.type === 'slideshow');
  await room.waitFor((e) => e.type === 'slideshow');
  assert.deepEqual([said(phoneStream), said(room)], [[true], [true]]);
  const late = s.stream(ch.id);
  assert.equal((await late.snapshot()).slideshow, true, 'a follower joining now sees it connected');
  // The slideshow's tab closes.
  deck.es.close();
  await phoneStream.waitFor((e) => e.type === 'slideshow' && (e.data as { connected: boolean }).connected === false);
  await room.waitFor((e) => e.type === 'slideshow' && (e.data as { connected: boolean }).connected === false);
  assert.deepEqual([said(phoneStream), said(room)], [[true, false], [true, false]]);
  // Asked for by name, it is a known event: a stream of it alone opens, with its snapshot (`?events=`).
  assert.equal((await s.stream(ch.id, { query: '?events=slideshow' }).snapshot()).slideshow, false);
});

// ------------------------------------------------------------------ pairing and commands

test('pair, then a command reaches a subscriber as a `command` event with its id', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  const stream = s.stream(ch.id);
  await stream.snapshot();

  const pairRes = await s.call('POST', `/api/channels/${ch.id}/pair`, { json: { code: ch.pairCode } });
  assert.equal(pairRes.status, 201);
  const { controllerKey, controllerHash } = pairRes.body as unknown as PairResult;
  assert.match(controllerKey, /^[A-Za-z0-9_-]{32}$/);
  assert.equal(controllerHash, hashSecret(controllerKey));
  const presence = await stream.waitFor((e) => e.type === 'presence');
  assert.deepEqual(presence.data, { controllers: 1, pairingOpen: false });

  const cmd = { type: 'goto', id: cmdId(), h: 3 };
  const res = await s.command(ch, controllerKey, cmd);
  assert.equal(res.status, 202);
  assert.deepEqual(res.body, { eventId: 3, duplicate: false, delivered: 1 });
  const got = await stream.command(cmd.id);
  // The server forwards the validated command, defaults filled in.
  assert.deepEqual(got.data, { ...cmd, v: 0 });
  assert.equal(got.lastEventId, '3');
});

test('the deck key may send commands too', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  assert.equal((await s.command(ch, ch.deckKey, { type: 'next', id: cmdId() })).status, 202);
});

test('a command without a key, or with a wrong one, is 401', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  const other = await s.create();
  const url = `/api/channels/${ch.id}/commands`;
  const cmd = { type: 'next', id: cmdId() };
  const noKey = await s.call('POST', url, { json: cmd });
  expectError(noKey, 401, /controller key required/);
  assert.equal(noKey.headers.get('www-authenticate'), 'Bearer');
  expectError(await s.command(ch, 'x'.repeat(32), cmd), 401);
  expectError(await s.command(ch, other.deckKey, cmd), 401);
  expectError(await s.command(ch, ch.pairCode ?? '', cmd), 401);
  expectError(await s.call('POST', url, { json: cmd, headers: { Authorization: `Basic ${ch.deckKey}` } }), 401);
  assert.equal((await s.hub.bus.since(ch.id, 0)).events.length, 0);
});

test('a spent pairing code is 410 with the follow URL', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  await s.pair(ch);
  const body = expectError(await s.call('POST', `/api/channels/${ch.id}/pair`, { json: { code: ch.pairCode } }), 410, /already been used/);
  assert.equal(body.followUrl, `${s.publicBase}/f/${ch.id}`);
  expectError(await s.call('POST', `/api/channels/${ch.id}/pair`, { json: { code: 'short' } }), 400);
});

test('answers that carry a key, a pairing code or the notes are never cached', GUARD, async (t) => {
  const s = await start(t);
  const created = await s.call('POST', '/api/channels');
  assert.equal(created.status, 201);
  const ch = created.body as unknown as ChannelInfo;
  const paired = await s.call('POST', `/api/channels/${ch.id}/pair`, { json: { code: ch.pairCode } });
  assert.equal(paired.status, 201);
  const answers = {
    created,
    paired,
    'new code': await s.call('POST', `/api/channels/${ch.id}/pair-codes`, { key: ch.deckKey }),
    registered: await s.call('PUT', `/api/channels/${ch.id}`, { json: {}, key: ch.deckKey }),
    refused: await s.call('POST', `/api/channels/${ch.id}/pair`, { json: { code: ch.pairCode } }),
  };
  for (const [what, res] of Object.entries(answers)) assert.equal(res.headers.get('cache-control'), 'no-store', what);
});

test('a new pairing code replaces the old one; bodyless POST as a browser sends it', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  const url = `/api/channels/${ch.id}/pair-codes`;
  expectError(await s.call('POST', url), 401, /deck key required/);
  const res = await s.call('POST', url, { key: ch.deckKey });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  const fresh = res.body as unknown as ChannelInfo;
  assert.notEqual(fresh.pairCode, ch.pairCode);
  assert.equal(fresh.controllerUrl, `${s.publicBase}/r/${ch.id}#${fresh.pairCode}`);
  assert.equal(fresh.deckKey, '', 'the deck key is never sent again');
  expectError(await s.call('POST', `/api/channels/${ch.id}/pair`, { json: { code: ch.pairCode } }), 410);
  await s.pair(fresh);
});

test('a slideshow pairs 16 phones at most, so it can always name them all when it re-registers; a revoke makes room', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  const phones: PairResult[] = [];
  let code = ch.pairCode;
  for (let i = 0; i < MAX_CONTROLLERS; i++) {
    phones.push(await s.pair({ ...ch, pairCode: code }));
    code = ((await s.call('POST', `/api/channels/${ch.id}/pair-codes`, { key: ch.deckKey })).body as unknown as ChannelInfo).pairCode;
  }
  expectError(await s.call('POST', `/api/channels/${ch.id}/pair`, { json: { code } }), 409, /16 remotes paired.*revoke them/);
  // The slideshow reloads and names every phone it knows: all 16 come back.
  const again = await s.call('PUT', `/api/channels/${ch.id}`, { json: { controllers: phones.map((p) => p.controllerHash), pairCode: code }, key: ch.deckKey });
  assert.equal(again.status, 200, JSON.stringify(again.body));
  assert.equal((again.body as unknown as ChannelInfo).controllers.length, MAX_CONTROLLERS);
  assert.equal((await s.call('DELETE', `/api/channels/${ch.id}/controllers/${phones[0]!.controllerHash}`, { key: ch.deckKey })).status, 200);
  await s.pair({ ...ch, pairCode: (again.body as unknown as ChannelInfo).pairCode });
});

test('revoking a controller stops its key', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  const a = await s.pair(ch);
  expectError(await s.call('DELETE', `/api/channels/${ch.id}/controllers/${a.controllerHash}`), 401);
  expectError(await s.call('DELETE', `/api/channels/${ch.id}/controllers/${a.controllerHash}`, { key: a.controllerKey }), 401);
  const res = await s.call('DELETE', `/api/channels/${ch.id}/controllers/${a.controllerHash}`, { key: ch.deckKey });
  assert.deepEqual([res.status, res.body], [200, { revoked: 1 }]);
  expectError(await s.command(ch, a.controllerKey, { type: 'next', id: cmdId() }), 401);
  const all = await s.call('DELETE', `/api/channels/${ch.id}/controllers`, { key: ch.deckKey });
  assert.deepEqual([all.status, all.body], [200, { revoked: 0 }]);
});

test('malformed JSON, JSON that is not an object, an unknown type and an unknown field are 400', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  const url = `/api/channels/${ch.id}/commands`;
  const headers = { 'Content-Type': 'application/json' };
  expectError(await s.call('POST', url, { raw: '{"type":"next",', headers, key: ch.deckKey }), 400, /^malformed JSON$/);
  expectError(await s.command(ch, ch.deckKey, { type: 'reload', id: cmdId() }), 400, /^invalid request/);
  expectError(await s.command(ch, ch.deckKey, { type: 'next', id: cmdId(), method: 'slide' }), 400, /^invalid request/);
  expectError(await s.command(ch, ch.deckKey, { type: 'goto', id: cmdId(), h: -1 }), 400, /^invalid request: h: /);
  expectError(await s.command(ch, ch.deckKey, { type: 'next', id: 'bad id!' }), 400, /^invalid request: id: /);
  expectError(await s.call('POST', url, { raw: '[]', headers, key: ch.deckKey }), 400);
  // Valid JSON, but not an object: said so, not called broken.
  for (const raw of ['null', '42', '"next"', 'true']) expectError(await s.call('POST', url, { raw, headers, key: ch.deckKey }), 400, /^the body must be a JSON object$/);
  expectError(await s.call('POST', url, { key: ch.deckKey }), 400, /^invalid request/);
  assert.equal((await s.hub.bus.since(ch.id, 0)).events.length, 0);
});

test('unknown channels are 404 for commands, events, state and pairing', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  const missing = 'AAAAAAAAAAAAAAAAAAAAAA';
  expectError(await s.call('POST', `/api/channels/${missing}/commands`, { json: { type: 'next', id: cmdId() }, key: ch.deckKey }), 404, /unknown channel/);
  expectError(await s.call('GET', `/api/channels/${missing}/events`), 404, /unknown channel/);
  expectError(await s.call('GET', '/api/channels/not-an-id/events'), 404, /unknown channel/);
  expectError(await s.call('PUT', `/api/channels/${missing}/state`, { json: { state }, key: ch.deckKey }), 404);
  expectError(await s.call('POST', `/api/channels/${missing}/pair`, { json: { code: ch.pairCode } }), 404);
  expectError(await s.call('POST', `/api/channels/${missing}/pair-codes`, { key: ch.deckKey }), 404);
  // It takes no body: fields, or anything but an object, are refused like on channel creation.
  for (const json of [{ x: 1 }, []]) expectError(await s.call('POST', `/api/channels/${ch.id}/pair-codes`, { json, key: ch.deckKey }), 400, /no fields/);
});

test('a form or text/plain body is 415', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  const url = `/api/channels/${ch.id}/commands`;
  const text = { raw: '{"type":"next","id":"cmd-00000001"}', headers: { 'Content-Type': 'text/plain' } };
  const form = { raw: 'type=next&id=cmd-00000001', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } };
  expectError(await s.call('POST', url, { ...text, key: ch.deckKey }), 415, /application\/json/);
  expectError(await s.call('POST', url, { ...form, key: ch.deckKey }), 415);
  expectError(await s.call('POST', '/api/channels', text), 415);
  expectError(await s.call('POST', '/api/channels', form), 415);
  assert.equal((await s.hub.bus.since(ch.id, 0)).events.length, 0);
  assert.equal((await s.hub.bus.count()), 1);
});

test('a command body over 4 KiB is 413; a state report may be larger', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  const big = { type: 'next', id: cmdId(), pad: 'x'.repeat(4 * 1024) };
  expectError(await s.command(ch, ch.deckKey, big), 413, /too large/);
  const slides = Array.from({ length: 300 }, (_, h) => ({ h, v: 0, title: `Slide number ${h}` }));
  const report = { state: { ...state, notes: 'n'.repeat(8_000) }, slides };
  assert.ok(JSON.stringify(report).length > 4 * 1024);
  assert.equal((await s.call('PUT', `/api/channels/${ch.id}/state`, { json: report, key: ch.deckKey })).status, 200);
  const huge = { state, slides: Array.from({ length: 1_000 }, (_, h) => ({ h, v: 0, title: 't'.repeat(200) })) };
  expectError(await s.call('PUT', `/api/channels/${ch.id}/state`, { json: huge, key: ch.deckKey }), 413);
});

test('a cross-origin POST is 403; same origin, the public origin and allowed origins pass', GUARD, async (t) => {
  const s = await start(t, { allowOrigins: ['https://slides.example'] });
  const post = (origin: string) => s.call('POST', '/api/channels', { json: {}, headers: { Origin: origin } });
  expectError(await post('http://evil.example'), 403, /cross-origin/);
  expectError(await post('null'), 403);
  expectError(await post(`http://127.0.0.1:${s.port + 1}`), 403);
  expectError(await post(`https://127.0.0.1:${s.port}`), 403);
  assert.equal((await s.hub.bus.count()), 0);
  assert.equal((await post(s.base)).status, 201);
  assert.equal((await post(s.publicBase)).status, 201);
  assert.equal((await post('https://slides.example')).status, 201);
  assert.equal((await s.call('POST', '/api/channels', { json: {} })).status, 201, 'no Origin: a program, held to its keys');
  const ch = await s.create();
  const cmd = { json: { type: 'next', id: cmdId() }, key: ch.deckKey, headers: { Origin: 'http://evil.example' } };
  expectError(await s.call('POST', `/api/channels/${ch.id}/commands`, cmd), 403);
});

// ------------------------------------------------------------------ state

test('a state report from the deck is broadcast, and a late subscriber gets it in its snapshot', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  const early = s.stream(ch.id);
  await early.snapshot();
  const slides = [
    { h: 0, v: 0, title: 'First' },
    { h: 1, v: 0, title: 'Second' },
  ];
  const cause = cmdId();
  const res = await s.call('PUT', `/api/channels/${ch.id}/state`, { json: { state, cause, slides }, key: ch.deckKey });
  assert.deepEqual([res.status, res.body], [200, { eventId: 2 }]);
  const ev = await early.waitFor((e) => e.type === 'state');
  assert.deepEqual(ev.data, { state: onStream(state), cause, slides });
  assert.equal(ev.lastEventId, '2');

  const late = s.stream(ch.id);
  const snap = await late.snapshot();
  assert.deepEqual(snap, { state: onStream(state), slides, presence: { controllers: 0, pairingOpen: true }, gap: false, questions: { open: true, pending: 0 }, spotlight: null, slideshow: false });
  assert.equal(late.events[0]?.lastEventId, '2');
});

test('a state report needs the deck key and valid text', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  const { controllerKey } = await s.pair(ch);
  const url = `/api/channels/${ch.id}/state`;
  const noKey = await s.call('PUT', url, { json: { state } });
  expectError(noKey, 401, /deck key required/);
  assert.equal(noKey.headers.get('www-authenticate'), 'Bearer');
  expectError(await s.call('PUT', url, { json: { state }, key: controllerKey }), 401);
  expectError(await s.call('PUT', url, { json: { state: { ...state, title: 'a\u001bb' } }, key: ch.deckKey }), 400, /control characters/);
  expectError(await s.call('PUT', url, { json: { state, extra: 1 }, key: ch.deckKey }), 400);
  assert.equal((await s.hub.get(ch.id)).state, null);
});

// ------------------------------------------------------------------ dedup and replay

test('a repeated command id is 200 duplicate:true and delivered once', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  const stream = s.stream(ch.id);
  await stream.snapshot();
  const first = { type: 'next', id: cmdId() };
  const a = await s.command(ch, ch.deckKey, first);
  assert.equal(a.status, 202);
  const again = await s.command(ch, ch.deckKey, { type: 'prev', id: first.id });
  assert.deepEqual([again.status, again.body], [200, { eventId: a.body.eventId, duplicate: true, delivered: 0 }]);
  // A later command marks the end of what the stream will have seen.
  const marker = { type: 'last', id: cmdId() };
  await s.command(ch, ch.deckKey, marker);
  await stream.command(marker.id);
  assert.deepEqual(
    stream.of('command').map((e) => e.data),
    [first, marker],
  );
});

test('Last-Event-ID and ?lastEventId= replay the commands missed', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  const { controllerKey } = await s.pair(ch); // events 1-2 are presence
  const c3 = { type: 'next', id: cmdId() };
  const c4 = { type: 'pause', id: cmdId(), on: true };
  await s.command(ch, controllerKey, c3);
  await s.call('PUT', `/api/channels/${ch.id}/state`, { json: { state }, key: ch.deckKey }); // event 4
  await s.command(ch, controllerKey, c4); // event 5

  const byHeader = s.stream(ch.id, { lastEventId: '2' });
  await byHeader.command(c4.id);
  assert.deepEqual(
    byHeader.events.map((e) => e.type),
    ['snapshot', 'command', 'command'],
  );
  assert.deepEqual(
    byHeader.of('command').map((e) => [e.lastEventId, e.data]),
    [
      ['3', c3],
      ['5', c4],
    ],
  );
  const snap = await byHeader.snapshot();
  assert.equal(snap.gap, false);
  assert.deepEqual(snap.state, onStream(state));

  const byQuery = s.stream(ch.id, { query: '?lastEventId=3' });
  await byQuery.command(c4.id);
  assert.deepEqual(
    byQuery.events.map((e) => e.type),
    ['snapshot', 'command'],
  );

  // After the replay both streams are live.
  const live = { type: 'first', id: cmdId() };
  await s.command(ch, controllerKey, live);
  assert.equal((await byHeader.command(live.id)).lastEventId, '6');
  assert.equal((await byQuery.command(live.id)).lastEventId, '6');
});

test('?events= narrows a stream to the events named, live and in the replay', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  const { controllerKey } = await s.pair(ch); // events 1-2 are presence
  const c3 = { type: 'next', id: cmdId() };
  await s.command(ch, controllerKey, c3);
  await s.call('PUT', `/api/channels/${ch.id}/state`, { json: { state }, key: ch.deckKey }); // event 4

  // A phone's stream: states only. An unfiltered one beside it sees everything.
  const phone = s.stream(ch.id, { query: '?events=state' });
  const all = s.stream(ch.id);
  const onlyCommands = s.stream(ch.id, { query: '?events=snapshot,command' });
  await Promise.all([phone.snapshot(), all.snapshot(), onlyCommands.snapshot()]);
  const c5 = { type: 'prev', id: cmdId() };
  await s.command(ch, controllerKey, c5);
  const moved = { ...state, indexh: 0, position: 1 };
  await s.call('PUT', `/api/channels/${ch.id}/state`, { json: { state: moved }, key: ch.deckKey }); // event 6
  const c7 = { type: 'first', id: cmdId() };
  await s.command(ch, controllerKey, c7);
  // Each stream is in publish order: once the last event it carries is in, anything it skipped would be too.
  await all.command(c7.id);
  await onlyCommands.command(c7.id);
  const lastState = await phone.waitFor((e) => e.type === 'state' && e.lastEventId === '6');
  assert.deepEqual((lastState.data as { state: DeckState }).state, onStream(moved));
  // The phone's stream ends at event 6, and event 7 is a command: prove it is not still on its way.
  await s.call('PUT', `/api/channels/${ch.id}/state`, { json: { state }, key: ch.deckKey }); // event 8
  await phone.waitFor((e) => e.type === 'state' && e.lastEventId === '8');
  await all.waitFor((e) => e.type === 'state' && e.lastEventId === '8');
  assert.deepEqual(
    phone.events.map((e) => [e.type, e.lastEventId]),
    [
      ['snapshot', '4'],
      ['state', '6'],
      ['state', '8'],
    ],
  );
  assert.deepEqual(
    all.events.map((e) => e.type),
    ['snapshot', 'command', 'state', 'command', 'state'],
  );
  assert.deepEqual(
    onlyCommands.events.map((e) => [e.type, e.lastEventId]),
    [
      ['snapshot', '4'],
      ['command', '5'],
      ['command', '7'],
    ],
  );

  // Resuming: the replay holds only what the list names. With no command to
  // replay the snapshot carries the id, so the stream resumes from there.
  const phoneBack = s.stream(ch.id, { query: '?events=state&lastEventId=2' });
  const snap = await phoneBack.waitFor((e) => e.type === 'snapshot');
  assert.equal(snap.lastEventId, '8');
  assert.equal((snap.data as Snapshot).gap, false);
  const commandsBack = s.stream(ch.id, { query: '?lastEventId=2&events=command' });
  await commandsBack.command(c7.id);
  assert.deepEqual(
    commandsBack.events.map((e) => [e.type, e.lastEventId]),
    [
      ['snapshot', ''],
      ['command', '3'],
      ['command', '5'],
      ['command', '7'],
    ],
  );
  await s.call('PUT', `/api/channels/${ch.id}/state`, { json: { state: moved }, key: ch.deckKey }); // event 9
  await phoneBack.waitFor((e) => e.type === 'state' && e.lastEventId === '9');
  assert.deepEqual(
    phoneBack.events.map((e) => e.type),
    ['snapshot', 'state'],
  );
});

test('a bad ?events= is a 400 naming the problem, and the server goes on streaming', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  const url = `/api/channels/${ch.id}/events`;
  expectError(await s.call('GET', `${url}?events=bogus`), 400, /unknown event name "bogus"/);
  expectError(await s.call('GET', `${url}?events=state,__proto__`), 400, /unknown event name "__proto__"/);
  expectError(await s.call('GET', `${url}?events=`), 400, /unknown event name ""/);
  expectError(await s.call('GET', `${url}?events=state,`), 400, /unknown event name ""/);
  expectError(await s.call('GET', `${url}?events=state&events=command`), 400, /give the list once/);
  expectError(await s.call('GET', `${url}?events=${'state,'.repeat(40)}state`), 400, /over 200 characters/);
  // No stream slot is held by a refused request.
  assert.equal(s.hub.stats().subscribers, 0);
  const ok = s.stream(ch.id, { query: '?events=command' });
  await ok.snapshot();
  const cmd = { type: 'next', id: cmdId() };
  await s.command(ch, ch.deckKey, cmd);
  await ok.command(cmd.id);
});

for (const [label, opts] of [
  ['an unparseable Last-Event-ID', { lastEventId: 'abc' }],
  ['a Last-Event-ID from the future', { lastEventId: '999' }],
  ['an unknown ?lastEventId=', { query: '?lastEventId=12345' }],
] as const) {
  test(`${label} gives a snapshot with gap:true and no replay`, GUARD, async (t) => {
    const s = await start(t);
    const ch = await s.create();
    await s.command(ch, ch.deckKey, { type: 'next', id: cmdId() });
    const stream = s.stream(ch.id, opts);
    const snap = await stream.snapshot();
    assert.equal(snap.gap, true);
    const live = { type: 'prev', id: cmdId() };
    await s.command(ch, ch.deckKey, live);
    await stream.command(live.id);
    assert.deepEqual(
      stream.events.map((e) => e.type),
      ['snapshot', 'command'],
    );
  });
}

// ------------------------------------------------------------------ restart

test('after a restart, re-registering with the deck key restores the channel and its controller', GUARD, async (t) => {
  const first = await start(t);
  const ch = await first.create();
  const { controllerKey, controllerHash } = await first.pair(ch);
  const sent = await first.command(ch, controllerKey, { type: 'next', id: cmdId() });
  assert.equal(sent.body.eventId, 3);

  const second = await start(t); // a new process: new hub, new app, new port
  expectError(await second.command(ch, controllerKey, { type: 'next', id: cmdId() }), 404);
  const url = `/api/channels/${ch.id}`;
  const body = { controllers: [controllerHash], lastEventId: 3 };
  expectError(await second.call('PUT', url, { json: body }), 401);
  expectError(await second.call('PUT', url, { json: body, key: controllerKey }), 403, /wrong deck key/);
  const res = await second.call('PUT', url, { json: body, key: ch.deckKey });
  assert.equal(res.status, 200);
  const info = res.body as unknown as ChannelInfo;
  assert.equal(info.id, ch.id);
  assert.deepEqual(info.controllers, [controllerHash]);
  assert.equal(info.pairCode, null);
  assert.equal(info.controllerUrl, null);
  assert.equal(info.followUrl, `${second.publicBase}/f/${ch.id}`);

  assert.equal(info.numberedFrom, 3, 'made anew, from the id the deck gave');
  // Asked again, the channel is alive: nothing was made anew.
  assert.equal((await second.call('PUT', url, { json: body, key: ch.deckKey })).body.numberedFrom, undefined);
  const stream = second.stream(ch.id, { lastEventId: '3' });
  assert.equal((await stream.snapshot()).gap, false);
  const cmd = { type: 'next', id: cmdId() };
  const again = await second.command(ch, controllerKey, cmd);
  assert.deepEqual([again.status, again.body], [202, { eventId: 4, duplicate: false, delivered: 1 }]);
  assert.equal((await stream.command(cmd.id)).lastEventId, '4');
});

test('re-registering a live channel with its deck key answers it; a wrong key is 403', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  const other = await s.create();
  expectError(await s.call('PUT', `/api/channels/${ch.id}`, { json: {}, key: other.deckKey }), 403);
  const res = await s.call('PUT', `/api/channels/${ch.id}`, { json: {}, key: ch.deckKey });
  assert.equal(res.status, 200);
  assert.equal(res.body.id, ch.id);
  expectError(await s.call('PUT', `/api/channels/${ch.id}`, { json: { lastEventId: -1 }, key: ch.deckKey }), 400);
});

test('a channel registered from the highest id allowed numbers its events on, and every one of them resumes; past that id is 400', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  expectError(await s.call('PUT', `/api/channels/${ch.id}`, { json: { lastEventId: MAX_REGISTERED_EVENT_ID + 1 }, key: ch.deckKey }), 400, /lastEventId/);
  expectError(await s.call('PUT', `/api/channels/${ch.id}`, { json: { lastEventId: Number.MAX_SAFE_INTEGER - 1 }, key: ch.deckKey }), 400, /lastEventId/);
  // A new process, so the registration sets where the ids go on from.
  const second = await start(t);
  assert.equal((await second.call('PUT', `/api/channels/${ch.id}`, { json: { lastEventId: MAX_REGISTERED_EVENT_ID }, key: ch.deckKey })).status, 200);
  const ids: number[] = [];
  for (let i = 0; i < 3; i++) ids.push(Number((await second.command(ch, ch.deckKey, { type: 'next', id: cmdId() })).body.eventId));
  assert.equal(new Set(ids).size, 3, `ids repeat: ${ids.join(', ')}`);
  assert.ok(ids[0]! > MAX_REGISTERED_EVENT_ID);
  const stream = second.stream(ch.id, { lastEventId: String(ids[0]) });
  const snap = await stream.snapshot();
  assert.equal(snap.gap, false, 'the first id is resumable');
});

test('a re-registration that carries the deck\'s state tells open phones, new outline included (the deck file was edited)', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  const phone = s.stream(ch.id);
  await phone.snapshot();
  // The slideshow reloaded after its deck file gained a slide, and re-registers with what it now shows.
  const outline = [
    { h: 0, v: 0, title: 'Start' },
    { h: 1, v: 0, title: 'A new slide' },
    { h: 2, v: 0, title: 'The end' },
  ];
  const report = { state: { ...state, title: 'A new slide', position: 2, total: 3 }, slides: outline };
  const res = await s.call('PUT', `/api/channels/${ch.id}`, { json: { report }, key: ch.deckKey });
  assert.equal(res.status, 200);
  const told = await phone.waitFor((e) => e.type === 'state');
  assert.deepEqual(told.data, { state: onStream(report.state), slides: outline });
});

// ------------------------------------------------------------------ limits

test('channel creation is rate limited per address with Retry-After', GUARD, async (t) => {
  const s = await start(t, { createPerMinute: 2 });
  await s.create();
  await s.create();
  const res = await s.call('POST', '/api/channels', { json: {} });
  expectError(res, 429, /too many channels/);
  assert.equal(res.headers.get('retry-after'), '60');
  assert.equal((await s.hub.bus.count()), 2);
});

test('too many streams from one address is a JSON 429, not an event stream', GUARD, async (t) => {
  const s = await start(t, { maxSubscribersPerIp: 1 });
  const ch = await s.create();
  await s.stream(ch.id).snapshot();
  const res = await s.call('GET', `/api/channels/${ch.id}/events`);
  expectError(res, 429, /too many open streams/);
  // A program may ask again later: a slot frees when a stream closes.
  assert.equal(res.headers.get('retry-after'), '5');
});

test('a full channel is a JSON 503', GUARD, async (t) => {
  const s = await start(t, { maxSubscribersPerChannel: 1 });
  const ch = await s.create();
  await s.stream(ch.id).snapshot();
  const res = await s.call('GET', `/api/channels/${ch.id}/events`);
  expectError(res, 503);
  assert.equal(res.headers.get('retry-after'), '5');
});

test('closing an EventSource frees its subscriber slot', GUARD, async (t) => {
  const s = await start(t, { maxSubscribersPerIp: 1 });
  const ch = await s.create();
  const one = s.stream(ch.id);
  await one.snapshot();
  one.es.close();
  // The server sees the disconnect asynchronously; wait for it through /healthz.
  while ((await s.call('GET', '/healthz')).body.subscribers !== 0) await sleep(5);
  const two = s.stream(ch.id);
  assert.equal((await two.snapshot()).gap, false);
});

// ------------------------------------------------------------------ pages and robustness

test('pages and assets are served with security headers', GUARD, async (t) => {
  const s = await start(t);
  const id = 'AAAAAAAAAAAAAAAAAAAAAA';
  const controllerHtml = readFileSync(path.join(rootDir, 'controller', 'index.html'), 'utf8');
  const bodies = new Map<string, string>();
  for (const urlPath of ['/', `/f/${id}`, `/r/${id}`]) {
    const res = await fetch(s.base + urlPath);
    assert.equal(res.status, 200, urlPath);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(res.headers.get('x-powered-by'), null);
    bodies.set(urlPath, await res.text());
  }
  // The follow page is the slideshow, less the speaker notes.
  assert.equal(bodies.get(`/f/${id}`), bodies.get('/')!.replace(/<aside class="notes">[^<]*<\/aside>/g, ''));
  assert.notEqual(bodies.get(`/f/${id}`), bodies.get('/'));
  assert.equal(bodies.get(`/r/${id}`), controllerHtml);
  assert.notEqual(bodies.get('/'), controllerHtml);
  const js = await fetch(`${s.base}/assets/slides.js`);
  assert.equal(js.status, 200);
  assert.equal(await js.text(), 'console.log("slides");\n');
  expectError(await s.call('GET', '/r/short'), 404);
  expectError(await s.call('GET', '/assets/missing.js'), 404);
  expectError(await s.call('GET', '/no/such/page'), 404, /^not found$/);
  // A folder's own path is a miss like any other: a JSON 404, not an HTML redirect to one.
  for (const folder of ['/assets', '/assets/theme', '/assets/theme/']) {
    const res = await fetch(s.base + folder, { redirect: 'manual' });
    assert.equal(res.status, 404, folder);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/, folder);
    assert.equal(typeof ((await res.json()) as { error?: unknown }).error, 'string', folder);
  }
});

test('a theme that imports Google Fonts is served with Clicker\'s own copies of them, and those font files are served', GUARD, async (t) => {
  const s = await start(t);
  for (const [theme, family] of [['league', 'Lato'], ['sky', 'Quicksand'], ['sky', 'Open Sans'], ['night', 'Montserrat'], ['blood', 'Ubuntu'], ['simple', 'News Cycle']] as const) {
    const res = await fetch(`${s.base}/assets/theme/${theme}.css`);
    assert.equal(res.status, 200, theme);
    assert.match(res.headers.get('content-type') ?? '', /^text\/css/);
    const css = await res.text();
    assert.doesNotMatch(css, /googleapis|@import/, `${theme}: no import of another origin's stylesheet`);
    assert.match(css, new RegExp(`font-family: '${family}'`), `${theme} carries ${family}`);
    // The rest of the theme is as reveal.js ships it.
    assert.match(css, /\.reveal-viewport\{/);
    // Every font it names is served here, as a font.
    const urls = [...css.matchAll(/url\((\/assets\/fonts\/[\w/.-]+\.woff2)\)/g)].map((m) => m[1]!);
    assert.ok(urls.length >= 2, `${theme}: ${urls.length} woff2 files`);
    for (const url of [urls[0]!, urls.at(-1)!]) {
      const font = await fetch(s.base + url);
      assert.equal(font.status, 200, url);
      assert.equal(font.headers.get('content-type'), 'font/woff2', url);
      assert.ok((await font.arrayBuffer()).byteLength > 1_000, url);
    }
  }
  // A theme that needs no web font is reveal.js's own file, unchanged.
  const black = await fetch(`${s.base}/assets/theme/black.css`);
  assert.equal(await black.text(), readFileSync(path.join(THEME_DIR, 'black.css'), 'utf8'));
  // Nothing outside the fonts' own folders, and no theme that does not exist.
  // As sent, not as fetch() would tidy it: the climb out of the fonts' folder reaches the server.
  const climb = await rawRequest(s.base, { method: 'GET', path: '/assets/fonts/lato/../package.json' });
  assert.equal(climb.status, 404);
  assert.doesNotMatch(climb.text, /fontsource/);
  expectError(await s.call('GET', '/assets/fonts/lato/%2e%2e%2fpackage.json'), 404);
  expectError(await s.call('GET', '/assets/fonts/roboto/roboto.woff2'), 404);
  expectError(await s.call('GET', '/assets/theme/nope.css'), 404);
  expectError(await s.call('GET', '/assets/theme/..%2f..%2fpackage.json'), 404);
});

test('the server survives bad input, answers every error as JSON, and still reports health', GUARD, async (t) => {
  const s = await start(t);
  const ch = await s.create();
  const json = { 'Content-Type': 'application/json' };
  const cmdUrl = `/api/channels/${ch.id}/commands`;
  const bad: [number, Promise<Answer>][] = [
    [400, s.call('POST', cmdUrl, { raw: '{', headers: json, key: ch.deckKey })],
    [400, s.call('POST', cmdUrl, { raw: '\u0000\u0001', headers: json, key: ch.deckKey })],
    // Bodies are never compressed: every route refuses an encoding.
    [415, s.call('POST', cmdUrl, { raw: '{"type":"next"}', headers: { ...json, 'Content-Encoding': 'gzip' }, key: ch.deckKey })],
    [415, s.call('PUT', `/api/channels/${ch.id}/state`, { raw: '{"state":{}}', headers: { ...json, 'Content-Encoding': 'gzip' }, key: ch.deckKey })],
    [415, s.call('POST', cmdUrl, { raw: '{}', headers: { ...json, 'Content-Encoding': 'zstd-nonsense' }, key: ch.deckKey })],
    [415, s.call('POST', cmdUrl, { raw: '{}', headers: { 'Content-Type': 'application/json; charset=klingon' }, key: ch.deckKey })],
    [413, s.call('POST', cmdUrl, { raw: `"${'x'.repeat(10_000)}"`, headers: json, key: ch.deckKey })],
    [401, s.call('POST', cmdUrl, { json: { type: 'next', id: cmdId() }, headers: { Authorization: 'Bearer ' } })],
    [400, s.call('GET', '/f/%E0%A4%A')],
    [404, s.call('GET', '/api/channels/%E0%A4%A/events')],
    [405, s.call('GET', '/api/channels')],
    [405, s.call('PATCH', `/api/channels/${ch.id}`, { json: {} })],
    [404, s.call('GET', '/assets/../package.json')],
  ];
  for (const [status, pending] of bad) expectError(await pending, status);
  const health = await s.call('GET', '/healthz');
  assert.equal(health.status, 200);
  assert.deepEqual(health.body, { ok: true, channels: 1, subscribers: 0 });
  assert.deepEqual(s.logs, [], 'no request above was treated as a server fault');
});
