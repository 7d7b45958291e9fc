// The raw HTTP/1.1 front (raw-http.ts): the parser and the answer framing as
// pure functions with exact bytes, then whole connections against the real
// app on an ephemeral port, written byte by byte on a plain socket so that
// keep-alive, pipelining and the hand-over to node:http are exactly what a
// test says they are.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fc from 'fast-check';
import type { ChannelInfo } from '../protocol/messages';
import type { Config } from './config';
import { type Exchange, frameResponse, parseHead, RawFront, type RawHead } from './raw-http';
import { call, cmdId, createChannel, openRawStream, pairPhone, sampleState, startTestServer, type TestServer } from './testing';

const GUARD = { timeout: 30_000 };
const HOT = /^\/api\/channels\/[^/?]*\/(events|commands|pointer)(\?.*)?$/;
const isHot = (_method: string, url: string) => HOT.test(url);

function head(text: string): RawHead {
  const r = parseHead(Buffer.from(text, 'latin1'), isHot);
  assert.equal(r.kind, 'head', `expected a head for ${JSON.stringify(text)}`);
  return (r as { head: RawHead }).head;
}

const kind = (text: string) => parseHead(Buffer.from(text, 'latin1'), isHot).kind;

// ------------------------------------------------------------------ parser

test('parseHead reads a hot POST: method, target, lower-cased headers, lengths and keep-alive', () => {
  const body = '{"type":"next","id":"abcdefgh"}';
  const text =
    'POST /api/channels/abc/commands HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nContent-Type: application/json\r\n' +
    `Content-Length: ${body.length}\r\nAuthorization:   Bearer k\t\r\n\r\n${body}`;
  const h = head(text);
  assert.equal(h.hot, true);
  assert.equal(h.method, 'POST');
  assert.equal(h.url, '/api/channels/abc/commands');
  assert.deepEqual({ ...h.headers }, {
    host: '127.0.0.1:3000',
    'content-type': 'application/json',
    'content-length': String(body.length),
    authorization: 'Bearer k',
  });
  assert.equal(h.headBytes, text.length - body.length);
  assert.equal(h.contentLength, body.length);
  assert.equal(h.close, false);
  assert.equal(head('GET /api/channels/abc/events HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n').close, true);
});

test('parseHead marks other routes as not hot, and waits for the rest of a head', () => {
  const page = head('GET /r/abc HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.equal(page.hot, false);
  // A non-hot request may carry a body (node:http reads it); its length is still known.
  assert.equal(head('PUT /api/channels/abc/state HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n').contentLength, 9);
  assert.equal(kind(''), 'partial');
  assert.equal(kind('POST /api/channels/abc/comm'), 'partial');
  assert.equal(kind('POST /api/channels/abc/commands HTTP/1.1\r\nHost: x\r\n'), 'partial');
});

test('parseHead hands over everything outside its strict subset', () => {
  const hotLine = 'POST /api/channels/abc/commands HTTP/1.1\r\n';
  const cases: [string, string][] = [
    ['chunked body', `${hotLine}Host: x\r\nTransfer-Encoding: chunked\r\n\r\n`],
    ['Expect', `${hotLine}Host: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n`],
    ['Upgrade', 'GET /api/channels/abc/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n'],
    ['duplicate Content-Length', `${hotLine}Host: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n`],
    ['duplicate header', `${hotLine}Host: x\r\nAuthorization: a\r\nauthorization: b\r\n\r\n`],
    ['folded header', `${hotLine}Host: x\r\nX-A: 1\r\n  continued\r\n\r\n`],
    ['space before colon', `${hotLine}Host: x\r\nX-A : 1\r\n\r\n`],
    ['control character in a value', `${hotLine}Host: x\r\nX-A: a\u0001b\r\n\r\n`],
    ['bare CR in a value', `${hotLine}Host: x\r\nX-A: a\rb\r\n\r\n`],
    ['bare LF inside the head', `${hotLine}Host: x\nX-A: 1\r\n\r\n`],
    ['head ended by bare LFs', 'POST /api/channels/abc/commands HTTP/1.1\nHost: x\n\n'],
    ['no Host', `${hotLine}Content-Length: 0\r\n\r\n`],
    ['HTTP/1.0', 'GET /api/channels/abc/events HTTP/1.0\r\nHost: x\r\n\r\n'],
    ['lower-case method', 'get /api/channels/abc/events HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['absolute target', 'GET http://x/api/channels/abc/events HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['signed length', `${hotLine}Host: x\r\nContent-Length: +2\r\n\r\n`],
    ['length with a unit', `${hotLine}Host: x\r\nContent-Length: 2e1\r\n\r\n`],
    ['empty length', `${hotLine}Host: x\r\nContent-Length:\r\n\r\n`],
    ['stream request with a body', 'GET /api/channels/abc/events HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n'],
    ['head over 16 KiB', `${hotLine}Host: x\r\nX-A: ${'a'.repeat(17 * 1024)}\r\n\r\n`],
    ['head over 16 KiB, unfinished', `${hotLine}Host: x\r\nX-A: ${'a'.repeat(17 * 1024)}`],
  ];
  for (const [what, text] of cases) assert.equal(kind(text), 'handover', what);
});

test('parseHead keeps __proto__ and constructor as plain header names', () => {
  const h = head('GET /api/channels/abc/events HTTP/1.1\r\nHost: x\r\n__proto__: a\r\nconstructor: b\r\n\r\n');
  assert.equal(h.headers['__proto__'], 'a');
  assert.equal(h.headers.constructor, 'b');
  assert.equal(Object.getPrototypeOf(h.headers), null);
});

test('parseHead never throws, and a head it reads is one node:http would read the same way', () => {
  const valid = 'POST /api/channels/abc/commands HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}';
  // Random bytes, and a valid request with bytes flipped, cut or inserted.
  const mutated = fc
    .tuple(fc.nat(valid.length), fc.nat(valid.length), fc.uint8Array({ maxLength: 8 }))
    .map(([at, cut, bytes]) => Buffer.concat([Buffer.from(valid.slice(0, at), 'latin1'), Buffer.from(bytes), Buffer.from(valid.slice(Math.min(valid.length, at + (cut % 4))), 'latin1')]));
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)), mutated), (buf) => {
      const r = parseHead(buf, isHot);
      if (r.kind !== 'head') return;
      const { head: h } = r;
      const text = buf.toString('latin1', 0, h.headBytes);
      // What it read is CRLF-framed, free of control characters, with a Host and a plain length.
      assert.ok(text.endsWith('\r\n\r\n'));
      assert.doesNotMatch(text.slice(0, -4).replace(/\r\n/g, ''), /[\0-\x08\x0a-\x1f\x7f]/);
      assert.ok(h.headers.host !== undefined);
      assert.ok(Number.isSafeInteger(h.contentLength) && h.contentLength >= 0);
    }),
    { numRuns: 3_000 },
  );
});

test('mangled requests on the wire get a 4xx or a close, never a 5xx, and the server keeps serving', GUARD, async (t) => {
  const { s, ch, wire } = await setup(t);
  const valid = commandRequest(ch);
  await fc.assert(
    fc.asyncProperty(fc.nat(valid.length - 1), fc.uint8Array({ minLength: 1, maxLength: 4 }), async (at, bytes) => {
      const w = wire();
      w.send(Buffer.concat([Buffer.from(valid.slice(0, at), 'latin1'), Buffer.from(bytes), Buffer.from(valid.slice(at + 1), 'latin1')]));
      // A request left incomplete by the mangling is finished off by the client closing its side.
      w.socket.end();
      const a = await w.answer().catch(() => undefined);
      w.close();
      if (a) assert.ok(a.status < 500, `status ${a.status}: ${a.body}`);
    }),
    { numRuns: 150 },
  );
  const after = wire();
  after.send(commandRequest(ch));
  assert.equal((await after.answer()).status, 202);
  assert.deepEqual(s.logs, [], 'nothing was logged as an unknown error');
});

// ------------------------------------------------------------------ framing

test('frameResponse writes the exact bytes node:http would: Date, then keep-alive or close', () => {
  const date = 'Sat, 21 Nov 2026 14:00:00 GMT';
  assert.equal(
    frameResponse(202, { 'Content-Type': 'application/json', 'Content-Length': 2 }, '{}', { close: false, keepAliveSeconds: 120, date }).toString(),
    'HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 2\r\n' +
      `Date: ${date}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=120\r\n\r\n{}`,
  );
  // A handler's own Connection header is replaced by the one the connection's state decides.
  assert.equal(
    frameResponse(204, { Connection: 'close', 'Cache-Control': 'no-store' }, undefined, { close: true, keepAliveSeconds: 120, date }).toString(),
    `HTTP/1.1 204 No Content\r\nCache-Control: no-store\r\nDate: ${date}\r\nConnection: close\r\n\r\n`,
  );
  assert.equal(frameResponse(200, {}, 'é', { close: true, keepAliveSeconds: 0, date }).subarray(-2).toString('hex'), 'c3a9');
});

test('frameResponse refuses a header that would break the framing', () => {
  const opts = { close: false, keepAliveSeconds: 5 };
  assert.throws(() => frameResponse(200, { 'X-A': 'a\r\nSet-Cookie: x' }, '', opts), /unsafe response header/);
  assert.throws(() => frameResponse(200, { 'X-A': 'a\nb' }, '', opts), /unsafe response header/);
  assert.throws(() => frameResponse(200, { 'X-A': 'a\0b' }, '', opts), /unsafe response header/);
  assert.throws(() => frameResponse(200, { 'X A': 'a' }, '', opts), /unsafe response header/);
});

// ------------------------------------------------------------------ connections

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A plain socket that reads back HTTP answers delimited by Content-Length, in order. */
class Wire {
  private buf = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | undefined;
  readonly socket: net.Socket;

  constructor(port: number, localAddress?: string) {
    this.socket = net.connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
    this.socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    const end = () => {
      this.ended = true;
      this.wake?.();
    };
    this.socket.on('end', end);
    this.socket.on('close', end);
    this.socket.on('error', end);
  }

  send(text: string | Buffer): void {
    this.socket.write(text);
  }

  get closed(): boolean {
    return this.ended;
  }

  private async more(): Promise<void> {
    if (this.ended) throw new Error(`connection closed; unread: ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))}`);
    await new Promise<void>((resolve) => {
      this.wake = resolve;
    });
    this.wake = undefined;
  }

  /** The next answer; a head-only answer when `headOnly` (HEAD, or a stream's head). */
  async answer(headOnly = false): Promise<Answer> {
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        const lines = this.buf.toString('latin1', 0, end).split('\r\n');
        const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(lines[0]!)?.[1]);
        const headers: Record<string, string> = {};
        for (const l of lines.slice(1)) {
          const i = l.indexOf(':');
          headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
        }
        const length = headOnly ? 0 : Number(headers['content-length'] ?? 0);
        if (this.buf.length >= end + 4 + length) {
          const body = this.buf.toString('utf8', end + 4, end + 4 + length);
          this.buf = this.buf.subarray(end + 4 + length);
          return { status, headers, body };
        }
      }
      await this.more();
    }
  }

  /** Waits until the unread bytes contain `needle` (a stream's events). */
  async waitForText(needle: string): Promise<void> {
    while (!this.buf.toString('utf8').includes(needle)) await this.more();
  }

  /** Waits until the server has closed the connection. */
  async closedByServer(): Promise<void> {
    while (!this.ended) await this.more().catch(() => undefined);
  }

  close(): void {
    this.socket.destroy();
  }
}

async function setup(t: TestContext, overrides: Partial<Config> = {}): Promise<{ s: TestServer; ch: ChannelInfo; wire: (localAddress?: string) => Wire }> {
  const s = await startTestServer(overrides);
  t.after(() => s.close());
  const ch = await createChannel(s.base);
  const wires: Wire[] = [];
  t.after(() => wires.forEach((w) => w.close()));
  return {
    s,
    ch,
    wire: (localAddress?: string) => {
      const w = new Wire(s.port, localAddress);
      wires.push(w);
      return w;
    },
  };
}

const commandRequest = (ch: ChannelInfo, id = cmdId(), extra = '', key = ch.deckKey) => {
  const body = JSON.stringify({ type: 'next', id });
  return (
    `POST /api/channels/${ch.id}/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
    `Authorization: Bearer ${key}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`
  );
};

test('one kept-alive connection mixes raw and node:http requests, answered in order, with the raw ones on the raw path', GUARD, async (t) => {
  const { s, ch, wire } = await setup(t);
  const raw = s.server.raw!;
  assert.ok(raw, 'the raw front is on by default');
  const st = await openRawStream(s.base, `/api/channels/${ch.id}/events`);
  t.after(() => st.close());
  const before = { ...raw.stats };

  const w = wire();
  const id1 = cmdId();
  w.send(commandRequest(ch, id1));
  const a1 = await w.answer();
  assert.equal(a1.status, 202);
  assert.equal(a1.headers.connection, 'keep-alive');
  assert.equal(a1.headers['keep-alive'], 'timeout=120');
  assert.match(a1.headers.date!, /GMT$/);
  await st.waitFor(id1);

  // A page: node:http (Express) answers it through the tunnel, on the same socket.
  w.send('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  const a2 = await w.answer();
  assert.equal(a2.status, 200);
  assert.equal((JSON.parse(a2.body) as { ok: boolean }).ok, true);

  // Back on the raw path for the next command.
  const id2 = cmdId();
  w.send(commandRequest(ch, id2));
  assert.equal((await w.answer()).status, 202);
  await st.waitFor(id2);

  assert.equal(raw.stats.served - before.served, 2, 'the two commands');
  assert.equal(raw.stats.forwarded - before.forwarded, 1);
  assert.equal(raw.stats.tunnels - before.tunnels, 1);
  assert.equal(w.closed, false);
});

test('pipelined requests, raw and not, in one write are answered in the order sent', GUARD, async (t) => {
  const { ch, wire } = await setup(t);
  const w = wire();
  const [a, b] = [cmdId(), cmdId()];
  const state = JSON.stringify({ type: 'next', id: a }); // not a state: node:http answers it 400
  w.send(
    commandRequest(ch, a) +
      `PUT /api/channels/${ch.id}/state HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
      `Authorization: Bearer ${ch.deckKey}\r\nContent-Length: ${state.length}\r\n\r\n${state}` +
      commandRequest(ch, a) +
      commandRequest(ch, b),
  );
  const answers = [await w.answer(), await w.answer(), await w.answer(), await w.answer()];
  assert.deepEqual(
    answers.map((x) => x.status),
    [202, 400, 200, 202],
    'accepted, refused by Express, a duplicate, accepted',
  );
  assert.equal((JSON.parse(answers[2]!.body) as { duplicate: boolean }).duplicate, true);
});

test('requests pipelined behind a slow answer wait for it, however large, and are answered in order', GUARD, async (t) => {
  // A raw front of its own, whose route answers only when the test says so.
  const pending: Exchange[] = [];
  const routes = { matches: (_m: string, u: string) => u.startsWith('/hot'), serve: (ex: Exchange) => void pending.push(ex) };
  const front = new RawFront(routes, { headersTimeoutMs: 5_000, requestTimeoutMs: 5_000, keepAliveTimeoutMs: 5_000, maxBodyBytes: 1024 * 1024 }, () => {
    throw new Error('nothing here goes to node:http');
  });
  const server = net.createServer({ allowHalfOpen: true }, (socket) => front.accept(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    front.closeAll();
    server.close();
  });
  const w = new Wire((server.address() as net.AddressInfo).port);
  t.after(() => w.close());
  const big = 'x'.repeat(900 * 1024);
  w.send('POST /hot/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na');
  w.send(`POST /hot/2 HTTP/1.1\r\nHost: x\r\nContent-Length: ${big.length}\r\n\r\n`);
  for (let i = 0; i < big.length; i += 64 * 1024) w.send(big.slice(i, i + 64 * 1024));
  while (pending.length < 1) await new Promise((resolve) => setTimeout(resolve, 10));
  // Far more than the read-ahead bound has been sent while the first answer is pending.
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(pending.length, 1, 'the second waits for the first');
  assert.equal(w.closed, false, 'and the connection is not dropped for it');
  pending[0]!.send(200, { 'Content-Length': 3 }, 'one');
  assert.equal((await w.answer()).body, 'one');
  while (pending.length < 2) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal((await pending[1]!.body(1024 * 1024)).length, big.length);
  pending[1]!.send(200, { 'Content-Length': 3 }, 'two');
  assert.equal((await w.answer()).body, 'two');
});

test('a chunked command goes to node:http and is still served; the connection stays open', GUARD, async (t) => {
  const { s, ch, wire } = await setup(t);
  const w = wire();
  const before = s.server.raw!.stats.served;
  const body = JSON.stringify({ type: 'next', id: cmdId() });
  w.send(
    `POST /api/channels/${ch.id}/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
      `Authorization: Bearer ${ch.deckKey}\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
  );
  assert.equal((await w.answer()).status, 202);
  // node:http owns the connection now, and serves the next command too.
  w.send(commandRequest(ch));
  assert.equal((await w.answer()).status, 202);
  assert.equal(s.server.raw!.stats.served, before, 'neither was served by the raw path');
});

test('a JSON body that starts with a byte order mark reads the same on the raw path, on node:http and in Express', GUARD, async (t) => {
  const { s, ch, wire } = await setup(t);
  const st = await openRawStream(s.base, `/api/channels/${ch.id}/events`);
  t.after(() => st.close());
  const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
  const withBom = (value: unknown) => Buffer.concat([BOM, Buffer.from(JSON.stringify(value))]);
  const head = (path: string, method: string, extra: string) =>
    `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAuthorization: Bearer ${ch.deckKey}\r\n${extra}\r\n`;
  const served = s.server.raw!.stats.served;

  // The raw path: a command with its body in one piece.
  const w = wire();
  const rawId = cmdId();
  const rawBody = withBom({ type: 'next', id: rawId });
  w.send(Buffer.concat([Buffer.from(head(`/api/channels/${ch.id}/commands`, 'POST', `Content-Length: ${rawBody.length}\r\n`)), rawBody]));
  assert.equal((await w.answer()).status, 202);
  await st.waitFor(rawId);
  assert.equal(s.server.raw!.stats.served, served + 1, 'served by the raw path');

  // node:http's hot route: the same command, chunked.
  const chunkedId = cmdId();
  const chunked = withBom({ type: 'next', id: chunkedId });
  const n = wire();
  n.send(Buffer.concat([Buffer.from(head(`/api/channels/${ch.id}/commands`, 'POST', 'Transfer-Encoding: chunked\r\n') + `${chunked.length.toString(16)}\r\n`), chunked, Buffer.from('\r\n0\r\n\r\n')]));
  assert.equal((await n.answer()).status, 202);
  await st.waitFor(chunkedId);

  // Express: the state report.
  const report = withBom({ state: sampleState({ title: 'After a BOM' }) });
  const e = wire();
  e.send(Buffer.concat([Buffer.from(head(`/api/channels/${ch.id}/state`, 'PUT', `Content-Length: ${report.length}\r\n`)), report]));
  assert.equal((await e.answer()).status, 200);
  await st.waitFor('After a BOM');

  // A mark and nothing else is an empty body, which no command is: a 400 on either path, and the server serves on.
  for (const extra of [`Content-Length: 3\r\n`, 'Transfer-Encoding: chunked\r\n']) {
    const b = wire();
    const body = extra.startsWith('Content') ? BOM : Buffer.concat([Buffer.from('3\r\n'), BOM, Buffer.from('\r\n0\r\n\r\n')]);
    b.send(Buffer.concat([Buffer.from(head(`/api/channels/${ch.id}/commands`, 'POST', extra)), body]));
    const a = await b.answer();
    assert.equal(a.status, 400, a.body);
    assert.match((JSON.parse(a.body) as { error: string }).error, /^invalid request/);
  }
});

test('Connection: close on a raw request closes after the answer', GUARD, async (t) => {
  const { ch, wire } = await setup(t);
  const w = wire();
  w.send(commandRequest(ch, cmdId(), 'Connection: close\r\n'));
  const a = await w.answer();
  assert.equal(a.status, 202);
  assert.equal(a.headers.connection, 'close');
  await w.closedByServer();
});

test('a client that sends two requests and ends its side gets both answers, then the connection closes', GUARD, async (t) => {
  const { ch, wire } = await setup(t);
  const w = wire();
  w.socket.end(commandRequest(ch) + commandRequest(ch));
  assert.equal((await w.answer()).status, 202);
  assert.equal((await w.answer()).status, 202);
  await w.closedByServer();
});

test('a command body over the cap is refused with 413 and the connection closes', GUARD, async (t) => {
  const { s, ch, wire } = await setup(t);
  const w = wire();
  const big = JSON.stringify({ type: 'next', id: cmdId(), pad: 'x'.repeat(s.config.maxBodyBytes) });
  w.send(
    `POST /api/channels/${ch.id}/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
      `Authorization: Bearer ${ch.deckKey}\r\nContent-Length: ${big.length}\r\n\r\n${big}`,
  );
  const a = await w.answer();
  assert.equal(a.status, 413);
  assert.deepEqual(JSON.parse(a.body), { error: 'request body too large' });
  await w.closedByServer();
});

test('a hot request that arrives too slowly gets 408 and is cut off, headers or body', GUARD, async (t) => {
  const { ch, wire } = await setup(t, { headersTimeoutMs: 300, requestTimeoutMs: 600 });
  const slowHead = wire();
  slowHead.send(`POST /api/channels/${ch.id}/commands HTTP/1.1\r\nHost: 127.0.0.1\r\n`);
  const drip = setInterval(() => slowHead.send('X-Slow: 1\r\n'), 50);
  t.after(() => clearInterval(drip));
  const a = await slowHead.answer();
  clearInterval(drip);
  assert.equal(a.status, 408);
  assert.deepEqual(JSON.parse(a.body), { error: 'request timed out' });
  await slowHead.closedByServer();

  const slowBody = wire();
  slowBody.send(commandRequest(ch).slice(0, -5));
  const b = await slowBody.answer();
  assert.equal(b.status, 408);
  await slowBody.closedByServer();
});

test('an idle kept-alive connection is closed after keepAliveTimeoutMs', GUARD, async (t) => {
  const { ch, wire } = await setup(t, { keepAliveTimeoutMs: 300 });
  const w = wire();
  w.send(commandRequest(ch));
  const a = await w.answer();
  assert.equal(a.headers['keep-alive'], 'timeout=0');
  const at = Date.now();
  await w.closedByServer();
  assert.ok(Date.now() - at < 5_000);
});

test('the keep-alive timeout counts from the last answer, not from the first one', GUARD, async (t) => {
  // Requests 400 ms apart on a 600 ms keep-alive: the third comes 800 ms in,
  // after the first idle deadline, and must still be served.
  const { ch, wire } = await setup(t, { keepAliveTimeoutMs: 600 });
  const w = wire();
  for (let i = 0; i < 3; i++) {
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, 400));
    w.send(commandRequest(ch));
    assert.equal((await w.answer()).status, 202, `request ${i + 1}`);
  }
  await w.closedByServer();
});

test('HEAD on a stream answers its head and keeps the connection; GET opens the stream on the raw path', GUARD, async (t) => {
  const { s, ch, wire } = await setup(t);
  const w = wire();
  w.send(`HEAD /api/channels/${ch.id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  const h = await w.answer(true);
  assert.equal(h.status, 200);
  assert.equal(h.headers['content-type'], 'text/event-stream; charset=utf-8');
  assert.equal(h.headers.connection, 'keep-alive');
  w.send(`GET /api/channels/${ch.id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  const g = await w.answer(true);
  assert.equal(g.status, 200);
  // The stream's body ends with the connection: no length, no chunking.
  assert.equal(g.headers.connection, 'close');
  assert.equal(g.headers['content-length'], undefined);
  assert.equal(g.headers['transfer-encoding'], undefined);
  assert.equal(g.headers['x-accel-buffering'], 'no');
  const id = cmdId();
  const phone = wire();
  phone.send(commandRequest(ch, id));
  assert.equal((await phone.answer()).status, 202);
  await w.waitForText(id);
  assert.ok(s.server.raw!.stats.served >= 3);
});

test('node:http sees the client address through the tunnel: the per-address creation limit tells two addresses apart', GUARD, async (t) => {
  // setup() made this address's one channel for the minute.
  const { wire } = await setup(t, { createPerMinute: 1 });
  const create = 'POST /api/channels HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}';
  const same = wire();
  same.send(create);
  const refused = await same.answer();
  assert.equal(refused.status, 429, refused.body);
  const other = wire('127.0.0.2');
  other.send(create);
  const created = await other.answer();
  assert.equal(created.status, 201, created.body);
});

test('malformed HTTP on a fresh connection gets node:http\'s JSON 400, and the server keeps serving', GUARD, async (t) => {
  const { s, ch, wire } = await setup(t);
  const w = wire();
  w.send(`POST /api/channels/${ch.id}/commands HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab`);
  const a = await w.answer();
  assert.equal(a.status, 400);
  assert.deepEqual(JSON.parse(a.body), { error: 'bad request' });
  const ok = wire();
  ok.send(commandRequest(ch));
  assert.equal((await ok.answer()).status, 202);
  assert.ok(s.server.raw!.size >= 1);
});

test('closeAllConnections drops raw connections and open raw streams', GUARD, async (t) => {
  const { s, ch, wire } = await setup(t);
  const w = wire();
  w.send(commandRequest(ch));
  await w.answer();
  const st = await openRawStream(s.base, `/api/channels/${ch.id}/events`);
  s.server.closeIdleConnections();
  await w.closedByServer();
  s.server.closeAllConnections();
  await st.ended;
});

test('/metrics counts the requests the raw front served and the ones it passed to node:http', GUARD, async (t) => {
  const { s, ch, wire } = await setup(t);
  const w = wire();
  for (let i = 0; i < 3; i++) {
    w.send(commandRequest(ch));
    assert.equal((await w.answer()).status, 202);
  }
  w.send('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  const m = await w.answer();
  assert.equal(m.status, 200);
  const value = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(m.body)?.[1]);
  const { served, forwarded } = s.server.raw!.stats;
  assert.equal(value('clicker_http_fast_requests_total'), served);
  assert.ok(served >= 3);
  // The scrape itself is node:http's, counted as it is passed on.
  assert.equal(value('clicker_http_forwarded_requests_total'), forwarded);
  assert.ok(forwarded >= 1);
});

test('with rawHttp off, node:http serves everything and the raw front does not exist', GUARD, async (t) => {
  const { s, ch, wire } = await setup(t, { rawHttp: false });
  assert.equal(s.server.raw, null);
  const w = wire();
  w.send(commandRequest(ch));
  assert.equal((await w.answer()).status, 202);
  // A stream's body ends with its connection, and its head says so, as on the raw path.
  const st = wire();
  st.send(`GET /api/channels/${ch.id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  const head = await st.answer(true);
  assert.equal(head.status, 200);
  assert.equal(head.headers.connection, 'close');
  assert.equal(head.headers['transfer-encoding'], undefined);
  await st.waitForText('event: snapshot');
});

test('on one kept-alive connection every key is judged on every request: another key, a wrong one, a revoked one', GUARD, async (t) => {
  // A phone taps on one kept-alive connection. Nothing about a key may stick
  // to the connection: each request's own key is checked, against the
  // channel's keys as they are now.
  const { s, ch, wire } = await setup(t);
  const phone = await pairPhone(s.base, ch);
  const w = wire();
  const status = async (key: string) => {
    w.send(commandRequest(ch, cmdId(), '', key));
    return (await w.answer()).status;
  };
  const last = phone.controllerKey.at(-1) === 'A' ? 'B' : 'A';
  const wrong = phone.controllerKey.slice(0, -1) + last;

  assert.equal(await status(phone.controllerKey), 202);
  assert.equal(await status(phone.controllerKey), 202, 'the same key again');
  assert.equal(await status(wrong), 401, 'one character off, right after the right key');
  assert.equal(await status(phone.controllerKey), 202, 'the right key after the wrong one');
  assert.equal(await status(ch.deckKey), 202, "the deck's key on the phone's connection");
  assert.equal(await status(phone.controllerKey), 202);

  // Revoked from elsewhere (the slideshow), while this connection stays open.
  const revoked = await call(s.base, 'DELETE', `/api/channels/${ch.id}/controllers/${phone.controllerHash}`, undefined, ch.deckKey);
  assert.equal(revoked.status, 200);
  assert.equal(await status(phone.controllerKey), 401, 'a revoked key fails at once on its own connection');
  assert.equal(await status(phone.controllerKey), 401);
  assert.equal(await status(ch.deckKey), 202);
  assert.equal(w.closed, false, 'all of it on the one connection');
});

test('HEAD gets a refusal\'s head and never its body, so the next answer on the connection reads right', GUARD, async (t) => {
  const { ch, wire } = await setup(t);
  const w = wire();
  for (const [target, status] of [
    ['/api/channels/AAAAAAAAAAAAAAAAAAAAAA/events', 404],
    [`/api/channels/${ch.id}/events?events=zzz`, 400],
    [`/api/channels/${ch.id}/commands`, 405],
  ] as const) {
    // Pipelined: a body after the HEAD answer would be read as the start of the next one.
    w.send(`HEAD ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    const head = await w.answer(true);
    assert.equal(head.status, status, target);
    assert.equal(head.headers['content-type'], 'application/json; charset=utf-8');
    // The length a GET's body would have, as HTTP asks of a HEAD answer.
    assert.ok(Number(head.headers['content-length']) > 0);
    const next = await w.answer();
    assert.equal(next.status, 200, `the answer after HEAD ${target}`);
    assert.equal((JSON.parse(next.body) as { ok: boolean }).ok, true);
  }
});

test('a client that ends its side halfway through a body is let go at once, with no answer', GUARD, async (t) => {
  // Timeouts far beyond the test's own: only the client's end can close this connection in time.
  const { ch, wire } = await setup(t, { headersTimeoutMs: 120_000, requestTimeoutMs: 120_000 });
  const w = wire();
  const whole = commandRequest(ch);
  w.send(whole.slice(0, -8));
  // The head is in; the body is not complete when the client finishes sending.
  await new Promise((resolve) => setTimeout(resolve, 100));
  w.socket.end();
  await w.closedByServer();
  await assert.rejects(w.answer(), /connection closed; unread: ""/);
});

test('a request without exactly one Host gets a JSON 400 and the connection closes; HTTP/1.0 needs none', GUARD, async (t) => {
  const { ch, wire } = await setup(t);
  for (const [what, head] of [
    ['no Host, hot route', `GET /api/channels/${ch.id}/events HTTP/1.1\r\n\r\n`],
    ['no Host, page', 'GET /healthz HTTP/1.1\r\n\r\n'],
    ['two Hosts, hot route', `GET /api/channels/${ch.id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: example.com\r\n\r\n`],
    ['two Hosts, page', 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: example.com\r\n\r\n'],
  ] as const) {
    const w = wire();
    w.send(head);
    const a = await w.answer();
    assert.equal(a.status, 400, what);
    assert.deepEqual(JSON.parse(a.body), { error: /two/.test(what) ? 'more than one Host header' : 'missing Host header' }, what);
    assert.equal(a.headers.connection, 'close', what);
    await w.closedByServer();
  }
  const old = wire();
  old.send('GET /healthz HTTP/1.0\r\n\r\n');
  assert.equal((await old.answer()).status, 200);
});

/** Until `check` holds, or fails after a few seconds (a server-side cleanup that follows a socket's close). */
async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(check(), what);
}

for (const rawHttp of [true, false]) {
  test(`a stream pipelined behind an answer node:http writes is served after it, and its slot goes when the client leaves (raw front ${rawHttp ? 'on' : 'off'})`, GUARD, async (t) => {
    const { s, ch, wire } = await setup(t, { rawHttp });
    // A chunked first request puts the raw front's connection in node:http's hands; with the front off, node:http has it anyway.
    const first = 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n';
    const stream = `GET /api/channels/${ch.id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
    const w = wire();
    w.send(first + stream);
    assert.equal((await w.answer()).status, 200);
    const head = await w.answer(true);
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-type'], 'text/event-stream; charset=utf-8');
    await w.waitForText('event: snapshot');
    assert.equal(s.hub.stats().subscribers, 1);
    w.close();
    await eventually(() => s.hub.stats().subscribers === 0, 'the stream is unsubscribed when its client leaves');

    // The client leaves before node:http has even started the stream's answer: nothing stays subscribed.
    for (let i = 0; i < 20; i++) {
      const gone = wire();
      gone.send(first + stream);
      gone.close();
    }
    await new Promise((r) => setTimeout(r, 200));
    await eventually(() => s.hub.stats().subscribers === 0, 'no stream stays subscribed after its client has gone');
    assert.deepEqual(s.logs.filter((l) => /error/i.test(l)), []);
  });
}

test('nothing pipelined after an answer that closes the connection is carried out', GUARD, async (t) => {
  const { s, ch, wire } = await setup(t);
  const before = (await s.hub.get(ch.id)).seq;
  const w = wire();
  // node:http answers the first request (not a hot route) and closes, as it asked; the command behind it must not run.
  w.send(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n${commandRequest(ch)}`);
  const a = await w.answer();
  assert.equal(a.status, 200);
  assert.equal(a.headers.connection, 'close');
  await w.closedByServer();
  await new Promise((r) => setTimeout(r, 100));
  assert.equal((await s.hub.get(ch.id)).seq, before, 'no command was published');
});

test('the body of a hot request has until the request timeout, counted from its first byte; its head only the headers timeout', GUARD, async (t) => {
  const { ch, wire } = await setup(t, { headersTimeoutMs: 300, requestTimeoutMs: 3_000 });
  const w = wire();
  const request = commandRequest(ch);
  const headEnd = request.indexOf('\r\n\r\n') + 4;
  w.send(request.slice(0, headEnd));
  // The body comes in a byte at a time, and is complete well past the headers timeout.
  let at = headEnd;
  const drip = setInterval(() => {
    if (at < request.length) w.send(request.slice(at, (at += 2)));
  }, 25);
  t.after(() => clearInterval(drip));
  const a = await w.answer();
  clearInterval(drip);
  assert.equal(a.status, 202, 'served, not timed out');
  assert.ok(request.length - headEnd > 30, 'the body took longer than the headers timeout to arrive');
});

test('an absolute-form target opens a stream and takes a command, as its path would', GUARD, async (t) => {
  const { s, ch, wire } = await setup(t);
  const w = wire();
  w.send(`GET http://127.0.0.1:${s.port}/api/channels/${ch.id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  assert.equal((await w.answer(true)).status, 200);
  await w.waitForText('event: snapshot');
  const c = wire();
  c.send(commandRequest(ch).replace(`POST /api`, `POST http://127.0.0.1:${s.port}/api`));
  assert.equal((await c.answer()).status, 202);
  await w.waitForText('event: command');
});

test('an Expect other than 100-continue gets a JSON 417 and the connection closes', GUARD, async (t) => {
  const { ch, wire } = await setup(t);
  const w = wire();
  w.send(commandRequest(ch, cmdId(), 'Expect: something-else\r\n'));
  const a = await w.answer();
  assert.equal(a.status, 417);
  assert.match(a.headers['content-type']!, /^application\/json/);
  assert.match(JSON.parse(a.body).error, /Expect/);
  await w.closedByServer();
});

test('a CONNECT (Clicker is no proxy) gets a JSON 405 naming the methods it serves, and the connection closes; the server serves on', GUARD, async (t) => {
  const { ch, wire } = await setup(t);
  const w = wire();
  w.send('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
  const a = await w.answer();
  assert.equal(a.status, 405);
  assert.equal(a.headers.allow, 'GET, HEAD, POST, PUT, DELETE, OPTIONS');
  assert.match(a.headers['content-type']!, /^application\/json/);
  assert.match(JSON.parse(a.body).error, /^CONNECT is not supported/);
  await w.closedByServer();
  const c = wire();
  c.send(commandRequest(ch));
  assert.equal((await c.answer()).status, 202);
});

test('a refused CONNECT is let go even by a client that keeps its side open; one pipelined behind a request is cut off, never answered as that request', GUARD, async (t) => {
  for (const rawHttp of [true, false]) {
    const { s } = await setup(t, { rawHttp });
    const connections = () => new Promise<number>((resolve) => s.server.getConnections((_err, n) => resolve(n)));
    // A client that reads the answer and the server's FIN, and never closes its own side.
    const halfOpen = () => {
      const socket = net.connect({ host: '127.0.0.1', port: s.port, allowHalfOpen: true });
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
      socket.on('error', () => undefined);
      t.after(() => socket.destroy());
      return { socket, text: () => text, ended: new Promise<void>((resolve) => socket.once('end', () => resolve())) };
    };
    const idle = halfOpen();
    idle.socket.write('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    await idle.ended;
    assert.match(idle.text(), /^HTTP\/1\.1 405 /, `rawHttp ${rawHttp}`);
    // The server holds nothing for it (node:http's timeouts no longer watch that socket).
    // (Polled for a few seconds, well past the answer's way out: not a measure of speed.)
    for (let i = 0; i < 250 && (await connections()) > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(await connections(), 0, `rawHttp ${rawHttp}: the refused CONNECT's connection is closed`);

    // Chunked, so node:http reads the POST (with the raw front on, too), and its answer is still owed when the CONNECT is read.
    const behind = halfOpen();
    behind.socket.write(
      'POST /api/channels HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n' +
        'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n',
    );
    await behind.ended;
    assert.doesNotMatch(behind.text(), /405/, `rawHttp ${rawHttp}: no 405 read as the POST's answer`);
  }
});

test('requests pipelined in one write are served one after another, never one inside the answer to the last', GUARD, async (t) => {
  // A route that answers at once, inside serve(): were the next request
  // started from that answer, each would run a stack frame deeper (1,200
  // such requests in one packet overflowed the stack and killed the process).
  let depth = 0;
  let deepest = 0;
  const routes = {
    matches: (_m: string, u: string) => u.startsWith('/hot'),
    serve: (ex: Exchange) => {
      depth++;
      deepest = Math.max(deepest, depth);
      ex.send(200, { 'Content-Length': 2 }, 'ok');
      depth--;
    },
  };
  const front = new RawFront(routes, { headersTimeoutMs: 5_000, requestTimeoutMs: 5_000, keepAliveTimeoutMs: 5_000, maxBodyBytes: 1024 }, () => {
    throw new Error('nothing here goes to node:http');
  });
  const server = net.createServer({ allowHalfOpen: true }, (socket) => front.accept(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    front.closeAll();
    server.close();
  });
  const w = new Wire((server.address() as net.AddressInfo).port);
  t.after(() => w.close());
  w.send('GET /hot HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(3_000));
  for (let i = 0; i < 3_000; i++) assert.equal((await w.answer()).body, 'ok');
  assert.equal(deepest, 1);
});

test('two thousand requests pipelined in one write to the app are all answered, in order, and the server keeps serving', GUARD, async (t) => {
  const { s, ch, wire } = await setup(t);
  const w = wire();
  const refused = 'POST /api/channels/a/events HTTP/1.1\r\nHost: x\r\n\r\n';
  const parts: string[] = [];
  for (let i = 0; i < 2_000; i++) parts.push(i % 4 === 3 ? commandRequest(ch) : refused);
  w.send(parts.join(''));
  const statuses: number[] = [];
  for (let i = 0; i < 2_000; i++) statuses.push((await w.answer()).status);
  assert.deepEqual(statuses, parts.map((_p, i) => (i % 4 === 3 ? 202 : 405)));
  assert.equal(w.closed, false);
  assert.equal((await call(s.base, 'GET', '/healthz')).status, 200);
});

test('a client that pipelines and never reads its answers stops being read: the server holds one buffer of them, and the rest follow once it reads', GUARD, async (t) => {
  // A raw front of its own, whose route answers every request at once with 64 KiB.
  let served = 0;
  const answer = 'y'.repeat(64 * 1024);
  const routes = {
    matches: (_m: string, u: string) => u.startsWith('/hot'),
    serve: (ex: Exchange) => {
      served++;
      ex.send(200, { 'Content-Length': answer.length }, answer);
    },
  };
  const front = new RawFront(routes, { headersTimeoutMs: 20_000, requestTimeoutMs: 20_000, keepAliveTimeoutMs: 20_000, maxBodyBytes: 1024 }, () => {
    throw new Error('nothing here goes to node:http');
  });
  const sockets: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    front.accept(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    front.closeAll();
    server.close();
  });
  const w = new Wire((server.address() as net.AddressInfo).port);
  t.after(() => w.close());
  w.socket.pause();
  const n = 1_000;
  w.send('GET /hot HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(n));
  await new Promise((resolve) => setTimeout(resolve, 500));
  // 64 MB of answers asked for: what is served is what the sockets' buffers hold, and the server's own queue stays within one answer of its high-water mark.
  assert.ok(served < n / 2, `served ${served} of ${n} while the client read nothing`);
  assert.ok(sockets[0]!.writableLength <= answer.length + sockets[0]!.writableHighWaterMark + 1024, `queued ${sockets[0]!.writableLength} bytes`);
  w.socket.resume();
  for (let i = 0; i < n; i++) assert.equal((await w.answer()).body.length, answer.length, `answer ${i + 1}`);
  assert.equal(served, n);
});

test('a connection that never sends a request is closed after the headers timeout, not held for the keep-alive timeout', GUARD, async (t) => {
  const { ch, wire } = await setup(t, { headersTimeoutMs: 300, keepAliveTimeoutMs: 60_000 });
  const idle = wire();
  const at = Date.now();
  await idle.closedByServer();
  assert.ok(Date.now() - at < 5_000, 'closed within the headers timeout');
  // One that has sent a request is kept alive between requests as before.
  const used = wire();
  used.send(commandRequest(ch));
  assert.equal((await used.answer()).status, 202);
  await new Promise((resolve) => setTimeout(resolve, 800));
  assert.equal(used.closed, false);
  used.send(commandRequest(ch));
  assert.equal((await used.answer()).status, 202);
});
