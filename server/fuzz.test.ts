// Property-based fuzzing of every endpoint with fast-check, against the real
// app (server/testing.ts). Each endpoint gets hostile requests: broken JSON,
// oversize bodies, deep nesting, control characters, random bytes, wrong
// content types and encodings, missing or forged keys, random ids. The
// properties, per request:
//   - no 5xx, and no dropped connection;
//   - every 4xx is JSON with a non-empty `error` string;
//   - nothing is accepted: no 2xx for a forged or missing key or an invalid body.
// and per endpoint, after the run: the target channel did not move (its raw
// stream carried no event at all, its controllers, state and open pairing code
// are unchanged, no channel was created), and the server still works
// (/healthz, the open code pairs, a real command is delivered).
//
// A valid key is only ever sent with a body that cannot validate; the oracle
// for "cannot" is the protocol's own schemas (see `mightBeAccepted`), so a
// generated request that happens to be valid is skipped, never counted.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fc from 'fast-check';
import { Command, PairRequest, Register, StateReport, type ChannelInfo, type DeckState, type PairResult } from '../protocol/messages';
import { hashSecret } from './keys';
import { call, cmdId, createChannel, eventNames, openRawStream, pairPhone, sampleState, startTestServer, type RawStream, type TestServer } from './testing';

/** Runs per endpoint: 9 endpoints, a few thousand requests in all, a few seconds on two cores. */
const RUNS = 150;
const GUARD = { timeout: 60_000 };

// ------------------------------------------------------------------ transport

interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  chunked: boolean;
  /** True when the request must not succeed (forged or missing key, or a body that cannot validate). */
  mustRefuse: boolean;
}

interface FuzzAnswer {
  status: number;
  contentType: string;
  text: string;
}

/** Sends one request as given; an event stream is closed as soon as its headers arrive. */
function send(base: string, req: FuzzRequest): Promise<FuzzAnswer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const headers = { ...req.headers };
    if (req.body !== undefined && !req.chunked) headers['Content-Length'] = String(req.body.length);
    const r = http.request({ host: url.hostname, port: url.port, method: req.method, path: req.path, headers, agent: false }, (res) => {
      const contentType = String(res.headers['content-type'] ?? '');
      if (contentType.startsWith('text/event-stream')) {
        res.destroy();
        resolve({ status: res.statusCode ?? 0, contentType, text: '' });
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType, text: Buffer.concat(chunks).toString('utf8') }));
    });
    r.on('error', reject);
    if (req.body !== undefined) r.write(req.body);
    r.end();
  });
}

function describeRequest(req: FuzzRequest): string {
  const body = req.body === undefined ? '' : ` body(${req.body.length})=${JSON.stringify(req.body.subarray(0, 120).toString('latin1'))}`;
  return `${req.method} ${req.path.slice(0, 200)} ${JSON.stringify(req.headers).slice(0, 300)}${body}`;
}

// ------------------------------------------------------------------ generators

const printable = (maxLength: number, minLength = 0) =>
  fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength, maxLength });
const keyChars = (min: number, max: number) => fc.stringMatching(new RegExp(`^[A-Za-z0-9_-]{${min},${max}}$`));
/** Any string, control characters and astral planes included. */
const anyText = fc.string({ unit: 'binary', maxLength: 40 });

const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'Application/JSON',
  'application/json; charset=utf-16',
  'application/json; charset=latin1',
  'application/json; charset=klingon',
  'application/vnd.api+json',
  'application/x-json',
  'text/json',
  'text/plain',
  'text/plain;charset=UTF-8',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=----fuzz',
  'text/html',
  '*/*',
  '',
];
const contentTypeArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant('application/json') },
  { weight: 6, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
  { weight: 1, arbitrary: printable(40) },
  { weight: 2, arbitrary: fc.constant(undefined) },
);
const encodingArb = fc.oneof(
  { weight: 12, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'x-zstd', 'gzip, gzip', '') },
);

/** A path segment from any string; a lone surrogate cannot be percent-encoded, so it is dropped. */
function encodePart(x: string): string {
  return encodeURIComponent(x.replace(/[\uD800-\uDFFF]/g, ''));
}

const nested = (depth: number, open: string, close: string, core = '0') => open.repeat(depth) + core + close.repeat(depth);

/** Bodies that are wrong in shape, syntax, size or bytes, whatever the endpoint. */
const badBody: fc.Arbitrary<string | Buffer> = fc.oneof(
  // Broken JSON: a real document cut short, or with a byte replaced.
  fc.tuple(fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null'), fc.nat()).map(([s, n]) => s.slice(0, n % Math.max(1, s.length))),
  fc.constantFrom('{', '{"type":', '{"type":"next",', '[', '"', '{"a":1,}', "{'type':'next'}", '{"type":"next"}}', 'undefined', 'NaN', '\u0000', '\uFEFF{}'),
  // Valid JSON of any shape.
  fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null'),
  // Oversize: around each cap (4 KiB and 128 KiB).
  fc.integer({ min: 4_000, max: 135_000 }).map((n) => `{"notes":"${'x'.repeat(n)}"}`),
  // Deep nesting, of arrays and of objects.
  fc.integer({ min: 1, max: 30_000 }).map((d) => nested(d, '[', ']')),
  fc.integer({ min: 1, max: 12_000 }).map((d) => nested(d, '{"a":', '}')),
  // Control characters, escaped (valid JSON, invalid text) and raw (invalid JSON).
  fc.tuple(fc.constantFrom('type', 'id', 'code', 'title', 'notes'), fc.integer({ min: 0, max: 0x1f })).map(
    ([field, c]) => `{"${field}":"a${String.fromCharCode(c)}b"}`,
  ),
  fc.integer({ min: 0, max: 0x1f }).map((c) => JSON.stringify({ type: 'next', id: `abcdefgh${String.fromCharCode(c)}` })),
  // Prototype pollution attempts.
  fc.constantFrom('{"__proto__":{"polluted":"yes"}}', '{"constructor":{"prototype":{"polluted":"yes"}}}', '{"type":"next","id":"abcdefghij","__proto__":{"polluted":"yes"}}'),
  // Random bytes.
  fc.uint8Array({ minLength: 1, maxLength: 600 }).map((a) => Buffer.from(a)),
  // Form and text bodies as a CSRF page would send them.
  fc.constantFrom('type=next&id=abcdefghij', 'code=abcdefghijklmnopqrstuvwxyz012345', '------fuzz\r\nContent-Disposition: form-data; name="type"\r\n\r\nnext\r\n------fuzz--\r\n'),
);

const commandId = keyChars(8, 64);
const validCommand = fc.oneof(
  fc.record({ type: fc.constantFrom('next', 'prev', 'first', 'last'), id: commandId }),
  fc.record({ type: fc.constant('goto'), id: commandId, h: fc.integer({ min: 0, max: 100 }), v: fc.integer({ min: 0, max: 10 }) }),
  fc.record({ type: fc.constant('pause'), id: commandId, on: fc.boolean() }),
);
const deckState: DeckState = sampleState();
const validState = printable(50).map((title) => ({ state: { ...deckState, title } }));
/** A valid shape with one thing wrong: an extra field, or one field replaced by anything. */
const spoiled = <T extends Record<string, unknown>>(valid: fc.Arbitrary<T>) =>
  fc.oneof(
    fc.tuple(valid, printable(12, 1), fc.jsonValue()).map(([v, k, x]) => ({ ...v, [k]: x })),
    fc.tuple(valid, fc.nat(), fc.oneof(fc.jsonValue(), anyText)).map(([v, n, x]) => {
      const keys = Object.keys(v);
      return { ...v, [keys[n % keys.length]!]: x };
    }),
  );

interface BodySpec {
  contentType: string | undefined;
  encoding: string | undefined;
  body: Buffer | undefined;
  chunked: boolean;
}

/** A body as sent: JSON objects are serialised, strings and bytes go as they are. */
function bodySpec(shapes: fc.Arbitrary<unknown>): fc.Arbitrary<BodySpec> {
  return fc.record({
    contentType: contentTypeArb,
    encoding: encodingArb,
    body: fc.oneof(
      { weight: 1, arbitrary: fc.constant(undefined) },
      {
        weight: 12,
        arbitrary: fc.oneof(badBody, shapes).map((b) => (Buffer.isBuffer(b) ? b : Buffer.from(typeof b === 'string' ? b : JSON.stringify(b), 'utf8'))),
      },
    ),
    chunked: fc.boolean(),
  });
}

// ------------------------------------------------------------------ the oracle

/**
 * Whether the server might rightly accept this body: a JSON content type it
 * reads, no compression (nothing here is really compressed), and a document
 * the endpoint's schema takes. Anything else must be refused.
 */
function mightBeAccepted(spec: BodySpec, validate: (v: unknown) => boolean): boolean {
  // No body at all reads as undefined or {} depending on the headers; either might pass.
  if (spec.body === undefined || spec.body.length === 0) return validate(undefined) || validate({});
  // body-parser reads an empty Content-Encoding as identity.
  const encoding = (spec.encoding ?? '').trim().toLowerCase();
  if (encoding !== '' && encoding !== 'identity') return false;
  if (!/^application\/json\s*(;\s*charset=utf-8\s*)?$/i.test(spec.contentType ?? '')) return false;
  try {
    // body-parser drops a leading byte order mark, as JSON.parse does not.
    return validate(JSON.parse(spec.body.toString('utf8').replace(/^\uFEFF/, '')));
  } catch {
    return false;
  }
}
const schema = (s: { safeParse(v: unknown): { success: boolean } }) => (v: unknown) => s.safeParse(v).success;

function toRequest(method: string, path: string, auth: string | undefined, spec: BodySpec, mustRefuse: boolean, extra: Record<string, string> = {}): FuzzRequest {
  const headers: Record<string, string> = { ...extra };
  if (auth !== undefined) headers.Authorization = auth;
  if (spec.contentType !== undefined) headers['Content-Type'] = spec.contentType;
  if (spec.encoding !== undefined) headers['Content-Encoding'] = spec.encoding;
  return { method, path, headers, ...(spec.body === undefined ? {} : { body: spec.body }), chunked: spec.chunked && spec.body !== undefined, mustRefuse };
}

// ------------------------------------------------------------------ the scene

interface Scene {
  s: TestServer;
  ch: ChannelInfo;
  phone: PairResult;
  other: ChannelInfo;
  otherPhone: PairResult;
  /** The target channel's open, unspent pairing code. */
  openCode: string;
  watch: RawStream;
  /** Ids: the target's, another live channel's, unknown well-formed ones, and junk. */
  idArb: fc.Arbitrary<string>;
  /** Authorization headers that are not a key for the target channel, or no header at all. */
  forgedAuth: fc.Arbitrary<string | undefined>;
  /** Whether `auth` is a real key of the other channel and `id` is that channel: rightly accepted, so skipped. */
  realElsewhere(id: string, auth: string | undefined): boolean;
  /** One property run: send, then check the answer. */
  check(req: FuzzRequest): Promise<void>;
  /** After the run: nothing moved and everything still works. */
  finish(): Promise<void>;
}

async function scene(t: TestContext): Promise<Scene> {
  // A raised creation limit, so creation requests reach validation instead of the rate limiter.
  const s = await startTestServer({ createPerMinute: 1_000_000 });
  t.after(() => s.close());
  const ch = await createChannel(s.base);
  const phone = await pairPhone(s.base, ch);
  const openCode = (await call(s.base, 'POST', `/api/channels/${ch.id}/pair-codes`, undefined, ch.deckKey)).json?.pairCode as string;
  const other = await createChannel(s.base);
  const otherPhone = await pairPhone(s.base, other);
  const watch = await openRawStream(s.base, `/api/channels/${ch.id}/events`);
  t.after(() => watch.close());
  await watch.waitFor('event: snapshot');
  const channelsBefore = (await s.hub.bus.count());
  const stateBefore = (await s.hub.get(ch.id)).state;

  const tweak = (key: string) => key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A');
  const forgedAuth = fc.oneof(
    fc.constant(undefined),
    keyChars(16, 128).map((k) => `Bearer ${k}`),
    fc.constantFrom(
      `Bearer ${tweak(ch.deckKey)}`,
      `Bearer ${tweak(phone.controllerKey)}`,
      `Bearer ${other.deckKey}`,
      `Bearer ${otherPhone.controllerKey}`,
      `Bearer ${hashSecret(ch.deckKey)}`,
      `Bearer ${phone.controllerHash}`,
      `Bearer ${openCode}`,
      `Basic ${ch.deckKey}`,
      `bearer ${ch.deckKey}`,
      `Bearer  ${ch.deckKey}`,
      `Bearer ${ch.deckKey} x`,
      `Bearer ${ch.deckKey}${ch.deckKey}${ch.deckKey}${ch.deckKey}${ch.deckKey}`,
      'Bearer ',
      '',
    ),
    printable(80).map((v) => v.trim()),
  );
  const idArb = fc.oneof(
    { weight: 4, arbitrary: fc.constant(ch.id) },
    { weight: 1, arbitrary: fc.constant(other.id) },
    { weight: 2, arbitrary: keyChars(22, 22) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 60 }).map(encodePart) },
    { weight: 1, arbitrary: fc.constantFrom('', '..', '%2e%2e', '%00', '%E0%A4%A', '%', '%zz', `${ch.id}%00`, `${ch.id}/..`, ch.id.toLowerCase(), 'x'.repeat(1_000)) },
  );

  let answered = 0;
  return {
    s,
    ch,
    phone,
    other,
    otherPhone,
    openCode,
    watch,
    idArb,
    forgedAuth,
    realElsewhere: (id, auth) => id === other.id && (auth === `Bearer ${other.deckKey}` || auth === `Bearer ${otherPhone.controllerKey}`),
    async check(req) {
      let res: FuzzAnswer;
      try {
        res = await send(s.base, req);
      } catch (err) {
        throw new Error(`connection failed (${err instanceof Error ? err.message : String(err)}) on ${describeRequest(req)}`);
      }
      answered++;
      assert.ok(res.status >= 200 && res.status < 500, `answered ${res.status} to ${describeRequest(req)}: ${res.text.slice(0, 200)}`);
      if (req.mustRefuse) assert.ok(res.status >= 400, `accepted (${res.status}) ${describeRequest(req)}: ${res.text.slice(0, 200)}`);
      if (res.status >= 400) {
        assert.match(res.contentType, /^application\/json\b/, `${res.status} is not JSON: ${describeRequest(req)}`);
        // A HEAD answer has the headers of the JSON error, but no body to read.
        if (req.method === 'HEAD') return;
        const body: unknown = JSON.parse(res.text);
        assert.ok(typeof body === 'object' && body !== null && 'error' in body, `no error field: ${res.text.slice(0, 200)}`);
        assert.equal(typeof body.error, 'string');
        assert.notEqual(body.error, '');
      }
    },
    async finish() {
      // A command from the real phone is the fence: anything published before it has arrived by then.
      const fenceId = cmdId();
      assert.equal((await call(s.base, 'POST', `/api/channels/${ch.id}/commands`, { type: 'next', id: fenceId }, phone.controllerKey)).status, 202);
      await watch.waitFor(fenceId);
      assert.deepEqual(eventNames(watch.text()), ['snapshot', 'command'], 'the deck received nothing but the fence');
      const channel = await s.hub.get(ch.id);
      assert.equal(channel.controllers.length, 1, 'no controller was added or revoked');
      assert.deepEqual(channel.state, stateBefore, 'no state was applied');
      assert.equal(channel.pairCodeHash, hashSecret(openCode), 'the open code was neither spent nor replaced');
      assert.equal((await s.hub.get(other.id)).controllers.length, 1);
      assert.equal((await s.hub.bus.count()), channelsBefore, 'no channel was created');
      assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is clean');
      assert.deepEqual(s.logs, [], 'nothing was logged as a server fault');
      const health = await call(s.base, 'GET', '/healthz');
      assert.equal(health.status, 200);
      assert.equal(health.json?.ok, true);
      // The open code still pairs: the fuzz did not burn it.
      assert.equal((await call(s.base, 'POST', `/api/channels/${ch.id}/pair`, { code: openCode })).status, 201);
      assert.ok(answered >= RUNS, `only ${answered} requests were answered`);
    },
  };
}

const origins = (s: TestServer) =>
  fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom(s.base, 'https://evil.example', 'null') });

async function fuzz(t: TestContext, build: (f: Scene) => fc.Arbitrary<FuzzRequest>): Promise<void> {
  const f = await scene(t);
  await fc.assert(
    fc.asyncProperty(build(f), (req) => f.check(req)),
    { numRuns: RUNS },
  );
  await f.finish();
}

const withOrigin = (f: Scene) => origins(f.s).map((o): Record<string, string> => (o === undefined ? {} : { Origin: o }));

// ------------------------------------------------------------------ endpoints

test('fuzz POST /api/channels: nothing but an empty body creates a channel', GUARD, async (t) => {
  await fuzz(t, (f) =>
    fc
      .record({ spec: bodySpec(fc.dictionary(printable(10, 1), fc.jsonValue(), { minKeys: 1, maxKeys: 3 })), auth: f.forgedAuth, extra: withOrigin(f) })
      .filter(({ spec }) => !mightBeAccepted(spec, (v) => v === undefined || (typeof v === 'object' && v !== null && Object.keys(v).length === 0)))
      .map(({ spec, auth, extra }) => toRequest('POST', '/api/channels', auth, spec, true, extra)),
  );
});

test('fuzz PUT /api/channels/:id: re-registration needs the deck key and a valid body', GUARD, async (t) => {
  await fuzz(t, (f) =>
    fc.oneof(
      // Forged keys, any body, any id.
      fc
        .record({ id: f.idArb, auth: f.forgedAuth, spec: bodySpec(fc.oneof(fc.constant({}), spoiled(fc.record({ controllers: fc.constant([f.phone.controllerHash]) })))) })
        .filter(({ id, auth }) => !f.realElsewhere(id, auth))
        .map(({ id, auth, spec }) => toRequest('PUT', `/api/channels/${id}`, auth, spec, true)),
      // The real deck key, bodies that cannot validate.
      fc
        .record({ spec: bodySpec(spoiled(fc.record({ controllers: fc.constant([f.phone.controllerHash]), lastEventId: fc.nat() }))), extra: withOrigin(f) })
        .filter(({ spec }) => !mightBeAccepted(spec, schema(Register)))
        .map(({ spec, extra }) => toRequest('PUT', `/api/channels/${f.ch.id}`, `Bearer ${f.ch.deckKey}`, spec, true, extra)),
    ),
  );
});

test('fuzz POST /api/channels/:id/pair-codes: only the deck key issues a code', GUARD, async (t) => {
  await fuzz(t, (f) =>
    fc
      .record({ id: f.idArb, auth: f.forgedAuth, spec: bodySpec(fc.jsonValue()), extra: withOrigin(f) })
      .filter(({ id, auth }) => !f.realElsewhere(id, auth))
      .map(({ id, auth, spec, extra }) => toRequest('POST', `/api/channels/${id}/pair-codes`, auth, spec, true, extra)),
  );
});

test('fuzz DELETE /api/channels/:id/controllers: only the deck key revokes', GUARD, async (t) => {
  await fuzz(t, (f) =>
    fc
      .record({
        id: f.idArb,
        hash: fc.oneof(fc.constant(undefined), fc.constant(f.phone.controllerHash), keyChars(43, 43), printable(60).map(encodePart)),
        auth: f.forgedAuth,
        spec: bodySpec(fc.jsonValue()),
        extra: withOrigin(f),
      })
      .filter(({ id, auth }) => !f.realElsewhere(id, auth))
      .map(({ id, hash, auth, spec, extra }) =>
        toRequest('DELETE', `/api/channels/${id}/controllers${hash === undefined ? '' : `/${hash}`}`, auth, spec, true, extra),
      ),
  );
});

test('fuzz POST /api/channels/:id/pair: no guessed or malformed code yields a key', GUARD, async (t) => {
  await fuzz(t, (f) =>
    fc
      .record({
        id: f.idArb,
        auth: fc.oneof(f.forgedAuth, fc.constant(`Bearer ${f.ch.deckKey}`), fc.constant(`Bearer ${f.phone.controllerKey}`)),
        spec: bodySpec(
          fc.oneof(
            fc.record({ code: keyChars(16, 64) }),
            fc.constant({ code: f.ch.pairCode }),
            fc.constant({ code: f.openCode.toLowerCase() }),
            spoiled(fc.record({ code: fc.constant(f.openCode) })),
          ),
        ),
        extra: withOrigin(f),
      })
      // The open code itself, well formed, would rightly pair; everything else must not.
      .filter(({ id, spec }) => !(id === f.ch.id && mightBeAccepted(spec, (v) => schema(PairRequest)(v) && (v as { code: string }).code === f.openCode)))
      .map(({ id, auth, spec, extra }) => toRequest('POST', `/api/channels/${id}/pair`, auth, spec, true, extra)),
  );
});

test('fuzz POST /api/channels/:id/commands: forged keys and invalid bodies never reach the deck', GUARD, async (t) => {
  await fuzz(t, (f) =>
    fc.oneof(
      fc
        .record({ id: f.idArb, auth: f.forgedAuth, spec: bodySpec(fc.oneof(validCommand, spoiled(validCommand))), extra: withOrigin(f) })
        .filter(({ id, auth }) => !f.realElsewhere(id, auth))
        .map(({ id, auth, spec, extra }) => toRequest('POST', `/api/channels/${id}/commands`, auth, spec, true, extra)),
      fc
        .record({ auth: fc.constantFrom(`Bearer ${f.phone.controllerKey}`, `Bearer ${f.ch.deckKey}`), spec: bodySpec(spoiled(validCommand)), extra: withOrigin(f) })
        .filter(({ spec }) => !mightBeAccepted(spec, schema(Command)))
        .map(({ auth, spec, extra }) => toRequest('POST', `/api/channels/${f.ch.id}/commands`, auth, spec, true, extra)),
    ),
  );
});

test('fuzz PUT /api/channels/:id/state: only the deck key, only valid reports', GUARD, async (t) => {
  await fuzz(t, (f) =>
    fc.oneof(
      fc
        .record({
          id: f.idArb,
          auth: fc.oneof(f.forgedAuth, fc.constant(`Bearer ${f.phone.controllerKey}`)),
          spec: bodySpec(fc.oneof(validState, spoiled(validState))),
          extra: withOrigin(f),
        })
        .filter(({ id, auth }) => !f.realElsewhere(id, auth))
        .map(({ id, auth, spec, extra }) => toRequest('PUT', `/api/channels/${id}/state`, auth, spec, true, extra)),
      fc
        .record({
          spec: bodySpec(
            fc.oneof(
              spoiled(validState),
              validState.chain((v) => spoiled(fc.constant(v.state)).map((state) => ({ state }))),
              fc.tuple(printable(20), fc.integer({ min: 0, max: 0x1f })).map(([s, c]) => ({ state: { ...deckState, title: `${s}${String.fromCharCode(c === 9 || c === 10 ? 13 : c)}` } })),
            ),
          ),
          extra: withOrigin(f),
        })
        .filter(({ spec }) => !mightBeAccepted(spec, schema(StateReport)))
        .map(({ spec, extra }) => toRequest('PUT', `/api/channels/${f.ch.id}/state`, `Bearer ${f.ch.deckKey}`, spec, true, extra)),
    ),
  );
});

test('fuzz GET /api/channels/:id/events: only a live channel streams, whatever the resume id', GUARD, async (t) => {
  await fuzz(t, (f) =>
    fc
      .record({
        id: f.idArb,
        lastEventId: fc.oneof(fc.constant(undefined), fc.nat().map(String), printable(30)),
        query: fc.oneof(fc.constant(''), fc.nat().map((n) => `?lastEventId=${n}`), printable(40).map((q) => `?lastEventId=${encodeURIComponent(q)}&x=${encodeURIComponent(q)}`)),
        auth: f.forgedAuth,
      })
      .map(({ id, lastEventId, query, auth }) =>
        toRequest(
          'GET',
          `/api/channels/${id}/events${query}`,
          auth,
          { contentType: undefined, encoding: undefined, body: undefined, chunked: false },
          // Streams are public: only an unknown or malformed id must be refused.
          id !== f.ch.id && id !== f.other.id,
          lastEventId === undefined ? {} : { 'Last-Event-ID': lastEventId },
        ),
      ),
  );
});

test('fuzz GET pages and assets: random paths are answered, never with a 5xx', GUARD, async (t) => {
  await fuzz(t, (f) =>
    fc
      .record({
        route: fc.constantFrom('/', '/f/', '/r/', '/assets/', '/healthz', '/', '/api/', '/api/channels/'),
        tail: fc.oneof(f.idArb, printable(40).map((p) => p.replace(/[ #?]/g, '')), fc.constantFrom('slides.js', '../package.json', '%2e%2e/package.json', '..%2fpackage.json', '.env', 'favicon.ico')),
        method: fc.constantFrom('GET', 'GET', 'HEAD', 'OPTIONS', 'PATCH'),
      })
      .map(({ route, tail, method }) => {
        const path = route === '/healthz' ? route : `${route}${tail}`;
        return toRequest(method, path, undefined, { contentType: undefined, encoding: undefined, body: undefined, chunked: false }, false);
      }),
  );
});
