// CORS for the drop-in script (dropin/clicker.ts): a page on another origin
// loads /clicker.js with a <script> tag and then calls the API from the
// browser. Only origins configured with --allow-origin get CORS headers, on
// the Express routes (app.ts) and on the hot paths (fast.ts) alike; any other
// browser origin gets neither the headers nor a write.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { call, cmdId, createChannel, openRawStream, rawRequest, sampleState, startTestServer, type RawAnswer, type TestServer } from './testing';

const ALLOWED = 'https://talk.example.org';
/** Guards against a hang if an awaited answer never comes; not a timing assertion. */
const GUARD = { timeout: 20_000 };

async function start(t: TestContext): Promise<TestServer> {
  const s = await startTestServer({ allowOrigins: [ALLOWED] });
  t.after(() => s.close());
  return s;
}

/** Origins a browser might send that must not pass: another site, a sibling port, a look-alike, an opaque origin. */
const foreignOrigins = (s: TestServer) => ['https://evil.example', `http://127.0.0.1:${s.port + 1}`, 'https://talk.example.org.evil.example', 'http://talk.example.org', 'null'];

const state = sampleState({ indexh: 1, position: 2, total: 4, isFirst: false, title: 'Second', nextTitle: 'Third' });

function preflight(s: TestServer, path: string, origin: string, method: string, headers: string): Promise<RawAnswer> {
  return rawRequest(s.base, {
    method: 'OPTIONS',
    path,
    headers: { Origin: origin, 'Access-Control-Request-Method': method, 'Access-Control-Request-Headers': headers },
  });
}

const list = (v: string | string[] | undefined) =>
  String(v ?? '')
    .split(',')
    .map((x) => x.trim().toLowerCase())
    .filter(Boolean);

function assertNoCors(res: RawAnswer, what: string): void {
  for (const name of Object.keys(res.headers)) assert.ok(!name.startsWith('access-control-'), `${what}: unexpected ${name}`);
}

function assertCors(res: RawAnswer, origin: string, what: string): void {
  assert.equal(res.headers['access-control-allow-origin'], origin, what);
  assert.ok(list(res.headers.vary).includes('origin'), `${what}: Vary: Origin`);
  // Keys travel in Authorization, never in cookies: credentials are never allowed.
  assert.equal(res.headers['access-control-allow-credentials'], undefined, what);
}

test('a preflight from an allowed origin is 204 with the methods and headers the drop-in script needs', GUARD, async (t) => {
  const s = await start(t);
  const ch = await createChannel(s.base);
  const cases: { path: string; method: string; headers: string }[] = [
    { path: '/api/channels', method: 'POST', headers: 'content-type' },
    { path: `/api/channels/${ch.id}`, method: 'PUT', headers: 'authorization,content-type' },
    { path: `/api/channels/${ch.id}/commands`, method: 'POST', headers: 'authorization,content-type' },
    { path: `/api/channels/${ch.id}/state`, method: 'PUT', headers: 'authorization,content-type' },
    { path: `/api/channels/${ch.id}/pair-codes`, method: 'POST', headers: 'authorization' },
    { path: `/api/channels/${ch.id}/events`, method: 'GET', headers: 'last-event-id' },
  ];
  for (const c of cases) {
    const what = `OPTIONS ${c.path}`;
    const res = await preflight(s, c.path, ALLOWED, c.method, c.headers);
    assert.equal(res.status, 204, `${what}: ${res.text}`);
    assert.equal(res.text, '', what);
    assertCors(res, ALLOWED, what);
    assert.ok(list(res.headers['access-control-allow-methods']).includes(c.method.toLowerCase()), `${what}: methods`);
    const allowedHeaders = list(res.headers['access-control-allow-headers']);
    for (const h of c.headers.split(',')) assert.ok(allowedHeaders.includes(h), `${what}: header ${h}`);
    assert.ok(Number(res.headers['access-control-max-age']) > 0, `${what}: max-age`);
  }
});

test('a preflight from any other origin is 403 JSON without CORS headers', GUARD, async (t) => {
  const s = await start(t);
  const ch = await createChannel(s.base);
  const paths = ['/api/channels', `/api/channels/${ch.id}/commands`, `/api/channels/${ch.id}/state`, `/api/channels/${ch.id}/events`];
  for (const origin of foreignOrigins(s)) {
    for (const path of paths) {
      const what = `OPTIONS ${path} from ${origin}`;
      const res = await preflight(s, path, origin, path.endsWith('/events') ? 'GET' : 'POST', 'content-type,authorization');
      assert.equal(res.status, 403, what);
      assert.match(String(res.headers['content-type']), /^application\/json/, what);
      assert.deepEqual(res.json, { error: 'cross-origin request refused' }, what);
      assertNoCors(res, what);
    }
  }
});

test('requests from an allowed origin carry Access-Control-Allow-Origin, success or error', GUARD, async (t) => {
  const s = await start(t);
  const origin = { Origin: ALLOWED };

  const created = await call(s.base, 'POST', '/api/channels', undefined, undefined, origin);
  assert.equal(created.status, 201, created.text);
  assertCors(created, ALLOWED, 'create');
  // A 429 tells the page when to retry; the header must be readable cross-origin.
  assert.ok(list(created.headers['access-control-expose-headers']).includes('retry-after'));
  const ch = created.json as unknown as { id: string; deckKey: string };

  const cmd = await call(s.base, 'POST', `/api/channels/${ch.id}/commands`, { type: 'next', id: cmdId() }, ch.deckKey, origin);
  assert.equal(cmd.status, 202, cmd.text);
  assertCors(cmd, ALLOWED, 'command');

  const report = await call(s.base, 'PUT', `/api/channels/${ch.id}/state`, { state }, ch.deckKey, origin);
  assert.equal(report.status, 200, report.text);
  assertCors(report, ALLOWED, 'state');

  const register = await call(s.base, 'PUT', `/api/channels/${ch.id}`, { controllers: [] }, ch.deckKey, origin);
  assert.equal(register.status, 200, register.text);
  assertCors(register, ALLOWED, 're-register');

  // Errors too, so the page's script can read why (a missing key, a bad body).
  const noKey = await call(s.base, 'POST', `/api/channels/${ch.id}/commands`, { type: 'next', id: cmdId() }, undefined, origin);
  assert.equal(noKey.status, 401);
  assertCors(noKey, ALLOWED, 'command without key');
  const badState = await call(s.base, 'PUT', `/api/channels/${ch.id}/state`, { state: { ...state, title: 'a\nb' } }, ch.deckKey, origin);
  assert.equal(badState.status, 400);
  assertCors(badState, ALLOWED, 'bad state');

  const st = await openRawStream(s.base, `/api/channels/${ch.id}/events`, { headers: origin });
  t.after(() => st.close());
  assert.equal(st.status, 200);
  assert.match(String(st.headers['content-type']), /^text\/event-stream/);
  assert.equal(st.headers['access-control-allow-origin'], ALLOWED);
  await st.waitFor('event: snapshot');
});

test('requests from other origins get no CORS headers, and their writes are 403', GUARD, async (t) => {
  const s = await start(t);
  const ch = await createChannel(s.base);
  const channels = await s.hub.bus.count();
  for (const o of foreignOrigins(s)) {
    const origin = { Origin: o };
    const writes: [string, RawAnswer][] = [
      ['create', await call(s.base, 'POST', '/api/channels', undefined, undefined, origin)],
      ['command', await call(s.base, 'POST', `/api/channels/${ch.id}/commands`, { type: 'next', id: cmdId() }, ch.deckKey, origin)],
      ['state', await call(s.base, 'PUT', `/api/channels/${ch.id}/state`, { state }, ch.deckKey, origin)],
      ['re-register', await call(s.base, 'PUT', `/api/channels/${ch.id}`, {}, ch.deckKey, origin)],
    ];
    for (const [what, res] of writes) {
      assert.equal(res.status, 403, `${what} from ${o}: ${res.text}`);
      assert.deepEqual(res.json, { error: 'cross-origin request refused' });
      assertNoCors(res, `${what} from ${o}`);
    }
    // Reading the public stream is answered (programs read it too), but without CORS a browser hides it from the page.
    const st = await openRawStream(s.base, `/api/channels/${ch.id}/events`, { headers: origin });
    assert.equal(st.status, 200);
    assert.equal(st.headers['access-control-allow-origin'], undefined);
    st.close();
  }
  assert.equal(await s.hub.bus.count(), channels, 'no channel was created');
  assert.equal((await s.hub.get(ch.id)).state, null, 'no state was applied');

  // A program without an Origin is held to its keys, and gets no CORS headers either.
  const program = await call(s.base, 'POST', `/api/channels/${ch.id}/commands`, { type: 'next', id: cmdId() }, ch.deckKey);
  assert.equal(program.status, 202);
  assertNoCors(program, 'no Origin');
});

test('/clicker.js is a script any origin may load: cross-origin resource policy and a JavaScript type', GUARD, async (t) => {
  const s = await start(t);
  const requests: Record<string, string>[] = [{}, { Origin: 'https://evil.example', 'Sec-Fetch-Mode': 'no-cors', 'Sec-Fetch-Dest': 'script' }];
  for (const headers of requests) {
    const res = await rawRequest(s.base, { method: 'GET', path: '/clicker.js', headers });
    assert.equal(res.status, 200);
    assert.equal(res.headers['cross-origin-resource-policy'], 'cross-origin');
    assert.match(String(res.headers['content-type']), /^(text|application)\/javascript\b/);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.match(res.text, /Clicker/);
  }
  // Only the drop-in script: every other file keeps helmet's same-origin policy.
  const other = await rawRequest(s.base, { method: 'GET', path: '/assets/controller.js' });
  assert.equal(other.status, 200);
  assert.equal(other.headers['cross-origin-resource-policy'], 'same-origin');
});
