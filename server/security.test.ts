// Security integration tests: every limit and every refusal of the security
// model, against the real app on an ephemeral 127.0.0.1 port, built as
// server/main.ts builds it (server/testing.ts). Requests go out through
// node:http so that bodies, headers and source addresses are exactly what a
// hostile client would send; streams are read as raw bytes so that a test
// sees what a browser would parse, not what a client library made of it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChannelInfo, DeckState, PairResult, Snapshot } from '../protocol/messages';
import type { Config } from './config';
import { channelIdFor, hashSecret, newSecret } from './keys';
import {
  call,
  cmdId,
  createChannel,
  eventNames,
  openRawStream,
  pairPhone,
  rawRequest,
  startTestServer,
  type RawStream,
  type TestServer,
  type TestServerOptions,
  expectError,
  sampleState,
} from './testing';

/** Guards against a hang when an awaited event never comes; not a timing assertion. */
const GUARD = { timeout: 30_000 };

/** A second client on this machine: loopback is all of 127/8, so the server sees another address. */
const OTHER_IP = '127.0.0.2';

async function start(t: TestContext, overrides: Partial<Config> = {}, opts: TestServerOptions = {}): Promise<TestServer> {
  const s = await startTestServer(overrides, opts);
  t.after(() => s.close());
  return s;
}

/** A stream the server refuses: its answer, read whole. */
async function refusedStream(t: TestContext, s: TestServer, id: string, opts: { headers?: Record<string, string>; localAddress?: string } = {}) {
  const st = await stream(t, s, id, opts);
  assert.notEqual(st.status, 200);
  await st.ended;
  return { status: st.status, headers: st.headers, text: st.text(), json: JSON.parse(st.text()) as Record<string, unknown> };
}

async function stream(t: TestContext, s: TestServer, id: string, opts: { headers?: Record<string, string>; localAddress?: string } = {}): Promise<RawStream> {
  const st = await openRawStream(s.base, `/api/channels/${id}/events`, opts);
  t.after(() => st.close());
  if (st.status === 200) await st.waitFor('event: snapshot');
  return st;
}

const state = sampleState;

/** Waits until the server has noticed closed streams (it learns of a disconnect asynchronously). */
async function untilSubscribers(s: TestServer, n: number): Promise<void> {
  while (s.hub.stats().subscribers !== n) await sleep(5);
}

/** A paired channel with its stream open: the usual scene of a talk. */
async function scene(t: TestContext, s: TestServer): Promise<{ ch: ChannelInfo; phone: PairResult; st: RawStream }> {
  const ch = await createChannel(s.base);
  const phone = await pairPhone(s.base, ch);
  const st = await stream(t, s, ch.id);
  return { ch, phone, st };
}

/**
 * Ends a test's traffic with a command from the deck key and waits for it on
 * the raw stream: anything published before it has arrived by then, so
 * "nothing else was delivered" is a checked fact, not a hope.
 */
async function fence(s: TestServer, ch: ChannelInfo, st: RawStream): Promise<string> {
  const id = cmdId();
  assert.equal((await call(s.base, 'POST', `/api/channels/${ch.id}/commands`, { type: 'next', id }, ch.deckKey)).status, 202);
  await st.waitFor(id);
  return id;
}

// ------------------------------------------------------------------ body size

test('a JSON body over 4 KiB is 413 on every small-body endpoint, and changes nothing', GUARD, async (t) => {
  const s = await start(t);
  const { ch, phone, st } = await scene(t, s);
  const code = (await call(s.base, 'POST', `/api/channels/${ch.id}/pair-codes`, undefined, ch.deckKey)).json?.pairCode as string;
  await st.waitFor('event: presence');
  const seenBefore = st.text().length;
  const pad = 'x'.repeat(5_000);
  const cmdPath = `/api/channels/${ch.id}/commands`;

  expectError(await call(s.base, 'POST', cmdPath, { type: 'next', id: cmdId(), pad }, phone.controllerKey), 413, /too large/);
  // Chunked, with no Content-Length to refuse up front: the cap is counted while reading.
  expectError(
    await rawRequest(s.base, {
      method: 'POST',
      path: cmdPath,
      chunked: true,
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${phone.controllerKey}` },
      body: JSON.stringify({ type: 'next', id: cmdId(), pad }),
    }),
    413,
  );
  expectError(await call(s.base, 'POST', `/api/channels/${ch.id}/pair`, { code, pad }), 413);
  expectError(await call(s.base, 'POST', '/api/channels', { pad }), 413);
  expectError(await call(s.base, 'POST', `/api/channels/${ch.id}/pair-codes`, { pad }, ch.deckKey), 413);

  // The boundary: 4096 bytes are read (and refused by the schema), 4097 are not read at all.
  const sized = (n: number) => {
    const head = JSON.stringify({ type: 'next', id: cmdId(), p: '' });
    return `${head.slice(0, -2)}${'y'.repeat(n - head.length)}"}`;
  };
  assert.equal(sized(4_096).length, 4_096);
  const at = (body: string) =>
    rawRequest(s.base, { method: 'POST', path: cmdPath, headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${ch.deckKey}` }, body });
  expectError(await at(sized(4_096)), 400, /invalid request/);
  expectError(await at(sized(4_097)), 413);

  // The deck's state report carries notes and the outline, so its cap is 128 KiB: 5 KiB passes, 230 KiB does not.
  const notes = 'n'.repeat(5_000);
  assert.equal((await call(s.base, 'PUT', `/api/channels/${ch.id}/state`, { state: state({ notes, title: 'five-kib-report' }) }, ch.deckKey)).status, 200);
  const outline = Array.from({ length: 1_000 }, (_, i) => ({ h: i, v: 0, title: 't'.repeat(200) }));
  expectError(await call(s.base, 'PUT', `/api/channels/${ch.id}/state`, { state: state(), slides: outline }, ch.deckKey), 413);
  expectError(await call(s.base, 'PUT', `/api/channels/${ch.id}`, { report: { state: state(), slides: outline } }, ch.deckKey), 413);

  // The code survived the oversize attempt to redeem it.
  assert.equal((await call(s.base, 'POST', `/api/channels/${ch.id}/pair`, { code })).status, 201);
  await st.waitFor('five-kib-report');
  await fence(s, ch, st);
  // Only the 5 KiB report, the successful pairing's presence, and the fence were published.
  assert.deepEqual(eventNames(st.text().slice(seenBefore)), ['state', 'presence', 'command']);
});

// ------------------------------------------------------------------ schemas

test('unknown fields, unknown commands and bad values are 400, and nothing is published', GUARD, async (t) => {
  const s = await start(t);
  const { ch, phone, st } = await scene(t, s);
  const cmdPath = `/api/channels/${ch.id}/commands`;
  const bad: unknown[] = [
    { type: 'eval', id: cmdId() },
    { type: 'NEXT', id: cmdId() },
    { type: 'next', id: cmdId(), extra: 1 },
    { type: 'next', id: cmdId(), method: 'toggleOverview' },
    { type: 'next' },
    { type: 'next', id: 'short' },
    { type: 'next', id: '<script>alert(1)</script>' },
    { type: 'goto', id: cmdId(), h: -1 },
    { type: 'goto', id: cmdId(), h: 1.5 },
    { type: 'goto', id: cmdId(), h: 1, script: 'x' },
    { type: 'pause', id: cmdId(), on: 'yes' },
    { id: cmdId() },
    [],
    [{ type: 'next', id: cmdId() }],
  ];
  for (const body of bad) {
    for (const key of [phone.controllerKey, ch.deckKey]) {
      expectError(await call(s.base, 'POST', cmdPath, body, key), 400, /^invalid request/);
    }
  }
  expectError(await call(s.base, 'POST', `/api/channels/${ch.id}/pair`, { code: 'x'.repeat(32), also: 1 }), 400);
  expectError(await call(s.base, 'POST', `/api/channels/${ch.id}/pair`, { code: 'short' }), 400);
  expectError(await call(s.base, 'PUT', `/api/channels/${ch.id}/state`, { state: { ...state(), html: '<b>' } }, ch.deckKey), 400);
  expectError(await call(s.base, 'PUT', `/api/channels/${ch.id}/state`, { state: state(), extra: true }, ch.deckKey), 400);
  expectError(await call(s.base, 'PUT', `/api/channels/${ch.id}/state`, { state: state({ indexh: -1 }) }, ch.deckKey), 400);
  expectError(await call(s.base, 'PUT', `/api/channels/${ch.id}`, { controllers: [], admin: true }, ch.deckKey), 400);
  expectError(await call(s.base, 'POST', '/api/channels', { id: ch.id }), 400, /no fields/);

  await fence(s, ch, st);
  assert.deepEqual(eventNames(st.text()), ['snapshot', 'command']);
  assert.equal((await s.hub.get(ch.id)).state, null);
});

// ------------------------------------------------------------------ content types

test('text/plain, form and multipart bodies are 415 on every endpoint, even with a valid key', GUARD, async (t) => {
  const s = await start(t);
  const { ch, phone, st } = await scene(t, s);
  const code = (await call(s.base, 'POST', `/api/channels/${ch.id}/pair-codes`, undefined, ch.deckKey)).json?.pairCode as string;
  await st.waitFor('event: presence');
  const seenBefore = st.text().length;
  // A CSRF form can send any of these cross-site without a preflight; the body looks like JSON on purpose.
  const types = ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=----x', undefined];
  const targets: { method: string; path: string; body: unknown; key?: string }[] = [
    { method: 'POST', path: '/api/channels', body: {} },
    { method: 'POST', path: `/api/channels/${ch.id}/commands`, body: { type: 'next', id: cmdId() }, key: phone.controllerKey },
    { method: 'POST', path: `/api/channels/${ch.id}/pair`, body: { code } },
    { method: 'PUT', path: `/api/channels/${ch.id}/state`, body: { state: state({ title: 'form-report' }) }, key: ch.deckKey },
    { method: 'PUT', path: `/api/channels/${ch.id}`, body: {}, key: ch.deckKey },
    { method: 'POST', path: `/api/channels/${ch.id}/pair-codes`, body: {}, key: ch.deckKey },
    { method: 'DELETE', path: `/api/channels/${ch.id}/controllers`, body: {}, key: ch.deckKey },
  ];
  for (const target of targets) {
    for (const type of types) {
      const res = await rawRequest(s.base, {
        method: target.method,
        path: target.path,
        headers: { ...(type ? { 'Content-Type': type } : {}), ...(target.key ? { Authorization: `Bearer ${target.key}` } : {}) },
        body: JSON.stringify(target.body),
      });
      expectError(res, 415, /application\/json/);
    }
  }
  assert.equal((await s.hub.bus.count()), 1, 'no channel was created');
  assert.equal((await s.hub.get(ch.id)).controllers.length, 1, 'nothing was revoked or paired');
  assert.equal((await s.hub.get(ch.id)).state, null, 'no state was applied');
  // The code was neither spent nor replaced by any of the above.
  assert.equal((await call(s.base, 'POST', `/api/channels/${ch.id}/pair`, { code })).status, 201);
  await fence(s, ch, st);
  assert.deepEqual(eventNames(st.text().slice(seenBefore)), ['presence', 'command']);
});

// ------------------------------------------------------------------ origins

test('a cross-origin POST, PUT or DELETE is 403 even with a valid key; same-origin and allowed origins pass', GUARD, async (t) => {
  const s = await start(t, { allowOrigins: ['https://allowed.example'] });
  const { ch, phone, st } = await scene(t, s);
  const foreign = [
    'https://evil.example',
    'null',
    `http://127.0.0.1:${s.port + 1}`,
    `https://127.0.0.1:${s.port}`,
    `http://192.0.2.2:${s.port + 1}`,
    'https://allowed.example.evil.example',
  ];
  const targets: { method: string; path: string; body?: unknown; key?: string }[] = [
    { method: 'POST', path: '/api/channels', body: {} },
    { method: 'POST', path: `/api/channels/${ch.id}/commands`, body: { type: 'last', id: cmdId() }, key: phone.controllerKey },
    { method: 'POST', path: `/api/channels/${ch.id}/pair`, body: { code: 'x'.repeat(32) } },
    { method: 'PUT', path: `/api/channels/${ch.id}/state`, body: { state: state({ title: 'foreign-report' }) }, key: ch.deckKey },
    { method: 'PUT', path: `/api/channels/${ch.id}`, body: {}, key: ch.deckKey },
    { method: 'POST', path: `/api/channels/${ch.id}/pair-codes`, key: ch.deckKey },
    { method: 'DELETE', path: `/api/channels/${ch.id}/controllers`, key: ch.deckKey },
  ];
  for (const origin of foreign) {
    for (const target of targets) {
      expectError(await call(s.base, target.method, target.path, target.body, target.key, { Origin: origin }), 403, /cross-origin/);
    }
  }
  assert.equal((await s.hub.bus.count()), 1);
  assert.equal((await s.hub.get(ch.id)).controllers.length, 1);

  // Controls: the page's own origin, the public origin in the QR code, and a configured one.
  const passed: string[] = [];
  for (const origin of [s.base, s.publicBase, 'https://allowed.example']) {
    const id = cmdId();
    const res = await call(s.base, 'POST', `/api/channels/${ch.id}/commands`, { type: 'next', id }, phone.controllerKey, { Origin: origin });
    assert.equal(res.status, 202, `${origin}: ${res.text}`);
    passed.push(id);
  }
  // Reading is not a write: a cross-origin GET of the public stream is answered.
  const read = await stream(t, s, ch.id, { headers: { Origin: 'https://evil.example' } });
  assert.equal(read.status, 200);

  await fence(s, ch, st);
  assert.deepEqual(eventNames(st.text()), ['snapshot', 'command', 'command', 'command', 'command']);
  for (const id of passed) assert.ok(st.text().includes(id));
});

test('behind --trust-proxy, a malformed X-Forwarded-Host on a cross-origin POST is a 403, not a 500', GUARD, async (t) => {
  // Regression: the public origin was parsed with `new URL` unguarded, so "a b" or a proxy chain "a, b" threw.
  const s = await start(t, { trustProxy: true });
  const ch = await createChannel(s.base);
  for (const xfh of ['a b', 'talk.example, proxy.internal', '[::1', 'x/y?z']) {
    const res = await call(s.base, 'POST', `/api/channels/${ch.id}/commands`, { type: 'next', id: cmdId() }, ch.deckKey, {
      Origin: 'https://evil.example',
      'X-Forwarded-Host': xfh,
    });
    expectError(res, 403, /cross-origin/);
  }
  // The forwarded host that a proxy vouches for is the public origin, so the real page's POST passes.
  const ok = await call(s.base, 'POST', `/api/channels/${ch.id}/commands`, { type: 'next', id: cmdId() }, ch.deckKey, {
    Origin: 'http://talk.example',
    'X-Forwarded-Host': 'talk.example',
  });
  assert.equal(ok.status, 202, ok.text);
  assert.deepEqual(s.logs, []);
});

test('behind --trust-proxy, only a plain host from X-Forwarded-Host goes into the QR and follow URLs', GUARD, async (t) => {
  const s = await start(t, { trustProxy: true });
  const urls = async (xfh: string) => {
    const res = await call(s.base, 'POST', '/api/channels', undefined, undefined, { 'X-Forwarded-Host': xfh, 'X-Forwarded-Proto': 'https' });
    assert.equal(res.status, 201, res.text);
    const info = res.json as { controllerUrl: string; followUrl: string };
    return [new URL(info.controllerUrl).origin, new URL(info.followUrl).origin];
  };
  assert.deepEqual(await urls('talk.example:8443'), ['https://talk.example:8443', 'https://talk.example:8443']);
  assert.deepEqual(await urls('[::1]:8080'), ['https://[::1]:8080', 'https://[::1]:8080']);
  // A default port written out, and capitals, are a plain host too (the URL holds them normalised).
  assert.deepEqual(await urls('talk.example:443'), ['https://talk.example', 'https://talk.example']);
  assert.deepEqual(await urls('talk.example:80'), ['https://talk.example:80', 'https://talk.example:80']);
  assert.deepEqual(await urls('Talk.Example'), ['https://talk.example', 'https://talk.example']);
  // Anything more than a host is not trusted to name the server: the URLs fall back to the LAN address.
  for (const junk of ['a b', 'evil.example/x?', 'user:pw@evil.example', 'evil.example#frag', 'evil.example:99999']) {
    const [controller, follow] = await urls(junk);
    assert.equal(controller, s.publicBase, junk);
    assert.equal(follow, s.publicBase, junk);
  }
});

// ------------------------------------------------------------------ text on the stream

test('CR, NUL and other control characters in titles and notes are 400 and never reach a subscriber; an LF cannot forge an event', GUARD, async (t) => {
  // Each refused report is also tried as a re-registration, which shares the creation rate limit.
  const s = await start(t, { createPerMinute: 1_000 });
  const { ch, st } = await scene(t, s);
  const statePath = `/api/channels/${ch.id}/state`;
  // Each payload would, if framed raw, end the data line and forge a command event.
  const forge = (marker: string, brk: string) => `x${brk}${brk}event: command${brk}data: {"type":"next","id":"${marker}"}${brk}${brk}`;
  const refused: { name: string; report: unknown }[] = [];
  for (const [label, brk] of [['cr', '\r'], ['crlf', '\r\n'], ['nul', '\0'], ['bel', '\u0007'], ['esc', '\u001b'], ['del', '\u007f']] as const) {
    const m = `REFUSED${label}`;
    refused.push(
      { name: `title ${label}`, report: { state: state({ title: forge(`${m}title`, brk) }) } },
      { name: `notes ${label}`, report: { state: state({ notes: forge(`${m}notes`, brk) }) } },
      { name: `nextTitle ${label}`, report: { state: state({ nextTitle: forge(`${m}next`, brk) }) } },
      { name: `outline ${label}`, report: { state: state(), slides: [{ h: 0, v: 0, title: forge(`${m}outline`, brk) }] } },
    );
  }
  for (const { name, report } of refused) {
    const res = await call(s.base, 'PUT', statePath, report, ch.deckKey);
    assert.equal(res.status, 400, `${name}: ${res.text}`);
    expectError(res, 400, /control characters/);
    // The same text inside a re-registration is refused too.
    expectError(await call(s.base, 'PUT', `/api/channels/${ch.id}`, { report }, ch.deckKey), 400);
  }

  // LF is text, not a control character, to the schema (speaker notes have paragraphs). JSON escapes
  // it, so it stays inside one data line and cannot end the event or forge another.
  // Titles are single lines, so there LF is refused like any control character.
  expectError(await call(s.base, 'PUT', statePath, { state: state({ title: forge('REFUSEDtitle', '\n') }) }, ch.deckKey), 400);
  const notes = forge('ACCEPTEDnotes', '\n');
  const title = 'accepted-report';
  assert.equal((await call(s.base, 'PUT', statePath, { state: state({ notes, title }) }, ch.deckKey)).status, 200);
  await st.waitFor('accepted-report');
  await fence(s, ch, st);

  const raw = st.text();
  assert.doesNotMatch(raw, /REFUSED/, 'no refused text reached the stream');
  assert.doesNotMatch(raw, /[\r\0]/, 'no CR or NUL on the wire');
  assert.deepEqual(eventNames(raw), ['snapshot', 'state', 'command'], 'the accepted notes forged no event');
  const stateLine = raw.split('\n').find((line) => line.includes('accepted-report'));
  assert.ok(stateLine !== undefined && stateLine.startsWith('data: '), 'the state event is one data line');
  const parsed = JSON.parse(stateLine.slice('data: '.length)) as { state: DeckState };
  assert.equal(parsed.state.title, title);
  assert.ok(!('notes' in parsed.state) && !raw.includes('ACCEPTEDnotes'), 'the notes are not on the stream at all');
  const read = await call(s.base, 'GET', `/api/channels/${ch.id}/notes`, undefined, ch.deckKey);
  assert.equal(read.status, 200, read.text);
  assert.equal((read.json as { notes: string }).notes, notes, 'the notes arrive intact, line breaks included');
});

test("the presenter's slideshow, which holds the notes, opens only on this machine; the follow page opens anywhere", GUARD, async (t) => {
  // Behind a trusted proxy on loopback, X-Forwarded-For names the client: the
  // only way a test on 127.0.0.1 can be another machine.
  const s = await start(t, { trustProxy: true });
  const ch = await createChannel(s.base);
  const from = (ip: string) => ({ 'X-Forwarded-For': ip });
  const page = (urlPath: string, ip: string) => call(s.base, 'GET', urlPath, undefined, undefined, from(ip));

  const here = await page('/', '127.0.0.1');
  assert.equal(here.status, 200);
  assert.match(here.text, /<aside class="notes">/);
  // A phone on the LAN that names 127.0.0.1 itself, through a proxy here that appends the phone's (private, so
  // "trusted") address, is still elsewhere: req.ip would say 127.0.0.1.
  expectError(await page('/', '127.0.0.1, 192.168.77.50'), 403, /opens only on the presenter's computer/);
  const elsewhere = await page('/', '198.51.100.7');
  expectError(elsewhere, 403, /opens only on the presenter's computer.*scan the QR code/);
  assert.doesNotMatch(elsewhere.text, /Three steps/);
  // Somebody in the room who typed the address from the QR into a browser reads the same words on a page.
  const browser = await call(s.base, 'GET', '/', undefined, undefined, { ...from('198.51.100.7'), Accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' });
  assert.equal(browser.status, 403);
  assert.match(browser.headers['content-type'] ?? '', /^text\/html/);
  assert.match(browser.text, /<h1>Forbidden<\/h1><p>The slideshow opens only on the presenter&#39;s computer.*scan the QR code/);
  assert.doesNotMatch(browser.text, /Three steps|<script/);
  // The follow page is for the room: without the notes.
  const follow = await page(`/f/${ch.id}`, '198.51.100.7');
  assert.equal(follow.status, 200);
  assert.doesNotMatch(follow.text, /class="notes"|Three steps/);
  assert.match(follow.text, /How it works/);

});

test("a browser here that reached the server by another site's name (DNS rebinding) gets no slideshow; this machine's own names and addresses do", GUARD, async (t) => {
  const key = 'rebinding-presenter-key-0123';
  const s = await start(t, { host: 'talk-laptop.example', presenterKey: key });
  const as = (host: string, headers: Record<string, string> = {}) => call(s.base, 'GET', '/', undefined, undefined, { Host: host, ...headers });
  for (const host of ['attacker.example', `attacker.example:${s.port}`, 'localhost.attacker.example', 'rebind.127.0.0.1.nip.io']) {
    const res = await as(host);
    expectError(res, 403, /this computer's own addresses.*open http:\/\/localhost:\d+\//);
    assert.doesNotMatch(res.text, /class="notes"/);
    expectError(await call(s.base, 'GET', '/_deck.md', undefined, undefined, { Host: host }), 403);
  }
  const own = ['127.0.0.1', `127.0.0.1:${s.port}`, `[::1]:${s.port}`, '192.0.2.2', `localhost:${s.port}`, 'LOCALHOST.', 'app.localhost', os.hostname(), `${os.hostname()}.local`, 'talk-laptop.example'];
  for (const host of own) assert.equal((await as(host)).status, 200, host);
  // The presenter's cookie is bound to the real name by the browser, so it is no way in for a rebinding page; a request that has it is let in.
  const link = await call(s.base, 'GET', `/?key=${key}`);
  const token = /clicker_presenter=([^;]+)/.exec(String(link.headers['set-cookie']))?.[1];
  assert.ok(token);
  assert.equal((await as('other-name.example', { Cookie: `clicker_presenter=${token}` })).status, 200);
  // The follow page is the audience's, under any name.
  const ch = await createChannel(s.base);
  assert.equal((await call(s.base, 'GET', `/f/${ch.id}`, undefined, undefined, { Host: 'attacker.example' })).status, 200);
  // Behind --trust-proxy, a browser here that comes straight in, not through the proxy, is checked just the same.
  const proxied = await start(t, { trustProxy: true });
  expectError(await call(proxied.base, 'GET', '/', undefined, undefined, { Host: 'attacker.example' }), 403, /this computer's own addresses/);
  assert.equal((await call(proxied.base, 'GET', '/', undefined, undefined, { Host: `localhost:${proxied.port}` })).status, 200);
  // A forwarding header proves nothing (a rebinding page may add any), nor does X-Forwarded-Host: the Host itself is checked.
  for (const headers of [{ 'X-Forwarded-For': '127.0.0.1' }, { 'X-Forwarded-Proto': 'http' }, { 'X-Forwarded-Host': 'localhost' }] as Record<string, string>[]) {
    expectError(await call(proxied.base, 'GET', '/', undefined, undefined, { Host: 'attacker.example', ...headers }), 403, /this computer's own addresses/);
  }
  // The proxy's public name passes once Clicker is told it.
  const named = await start(t, { trustProxy: true, host: 'talk.example' });
  assert.equal((await call(named.base, 'GET', '/', undefined, undefined, { Host: 'talk.example:8443', 'X-Forwarded-For': '127.0.0.1' })).status, 200);
});

test("with a presenter key, the slideshow opens on another machine through /?key=…, which leaves a token in a cookie and the key off the address bar", GUARD, async (t) => {
  const key = 'the-presenters-own-key-0123';
  const s = await start(t, { trustProxy: true, presenterKey: key });
  const laptop = { 'X-Forwarded-For': '198.51.100.20' };
  const room = { 'X-Forwarded-For': '198.51.100.7' };

  // Without the key, or with a wrong one, another machine gets no notes.
  const none = await call(s.base, 'GET', '/', undefined, undefined, room);
  expectError(none, 403, /open it with the presenter link \(\/\?key=…\).*scan the QR code/);
  assert.doesNotMatch(none.text, new RegExp(key));
  for (const wrong of [`${key}x`, key.slice(0, -1), '', 'a'.repeat(200)]) {
    const res = await call(s.base, 'GET', `/?key=${encodeURIComponent(wrong)}`, undefined, undefined, room);
    expectError(res, 403, /not the one this server was started with/);
    assert.equal(res.headers['set-cookie'], undefined);
  }

  // The link: a 303 to the same address without the key (other parameters kept), and a cookie that opens the slideshow from then on.
  const link = await call(s.base, 'GET', `/?key=${key}&print-pdf`, undefined, undefined, laptop);
  assert.equal(link.status, 303);
  assert.equal(link.headers.location, '/?print-pdf=');
  assert.equal(link.headers['cache-control'], 'no-store');
  const setCookie = String(link.headers['set-cookie']);
  const token = /^clicker_presenter=([A-Za-z0-9_-]{43}); Max-Age=604800; Path=\/; Expires=[^;]+; HttpOnly; SameSite=Strict$/.exec(setCookie)?.[1];
  assert.ok(token, setCookie);
  assert.ok(!setCookie.includes(key), 'the cookie holds a token made from the key, never the key');
  const cookie = { Cookie: `other=1; clicker_presenter=${token}` };
  const slideshow = await call(s.base, 'GET', '/', undefined, undefined, { ...laptop, ...cookie });
  assert.equal(slideshow.status, 200);
  assert.match(slideshow.text, /<aside class="notes">/);
  // Neither the key itself nor a token one character off passes as the cookie.
  for (const forged of [key, `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`]) {
    expectError(await call(s.base, 'GET', '/', undefined, undefined, { ...room, Cookie: `clicker_presenter=${forged}` }), 403);
  }
  // The Markdown route passes the same check (the built-in deck has none: a 404, not a 403).
  expectError(await call(s.base, 'GET', '/_deck.md', undefined, undefined, { ...laptop, ...cookie }), 404, /not found/);
  expectError(await call(s.base, 'GET', '/_deck.md', undefined, undefined, room), 403);
  // Over https (the proxy says so), the cookie is Secure too.
  const secure = await call(s.base, 'GET', `/?key=${key}`, undefined, undefined, { ...laptop, 'X-Forwarded-Proto': 'https' });
  assert.equal(secure.headers.location, '/');
  assert.match(String(secure.headers['set-cookie']), /; Secure; SameSite=Strict$/);
  // A path that is not one, and no host ever, goes into the redirect (// made the URL parser throw: a 500).
  const odd = await call(s.base, 'GET', `//?key=${key}&x=1`, undefined, undefined, laptop);
  assert.equal(odd.status, 303);
  assert.equal(odd.headers.location, '/?x=1');
  assert.deepEqual(s.logs, [], 'nothing above was a server fault');
  // This machine needs no key, as before.
  assert.equal((await call(s.base, 'GET', '/', undefined, undefined, { 'X-Forwarded-For': '127.0.0.1' })).status, 200);
});

test("behind a proxy or tunnel on this machine, without --trust-proxy, its clients are not this machine; with --public-url https the presenter's cookie is Secure", GUARD, async (t) => {
  // nginx with --public-url, ngrok or cloudflared: every request comes from loopback, carrying the forwarding headers they add.
  const key = 'tunnel-presenter-key-0123456';
  const s = await start(t, { presenterKey: key, publicUrl: 'https://talk.example.org' });
  assert.equal((await call(s.base, 'GET', '/')).status, 200, 'a browser on this machine itself, with no forwarding header');
  const proxied: Record<string, string>[] = [{ 'X-Forwarded-For': '203.0.113.9' }, { 'X-Forwarded-For': '127.0.0.1' }, { Forwarded: 'for=203.0.113.9' }, { 'X-Real-IP': '203.0.113.9' }, { 'X-Forwarded-Host': 'talk.example.org' }];
  for (const headers of proxied) {
    expectError(await call(s.base, 'GET', '/', undefined, undefined, headers), 403, /presenter link/);
    expectError(await call(s.base, 'GET', '/_deck.md', undefined, undefined, headers), 403);
  }
  // TLS ends at the public URL's proxy: the browser is on https, so the cookie says Secure.
  const link = await call(s.base, 'GET', `/?key=${key}`, undefined, undefined, { 'X-Forwarded-For': '203.0.113.9' });
  assert.equal(link.status, 303);
  assert.match(String(link.headers['set-cookie']), /; Secure; SameSite=Strict$/);
});
test('speaker notes are never on a stream: only the paired phone and the deck read them, from GET .../notes', GUARD, async (t) => {
  const s = await start(t);
  const ch = await createChannel(s.base);
  const notesPath = `/api/channels/${ch.id}/notes`;
  expectError(await call(s.base, 'GET', notesPath, undefined, ch.deckKey), 404, /not reported a slide yet/);
  const follower = await openRawStream(s.base, `/api/channels/${ch.id}/events`);
  t.after(() => follower.close());
  await follower.waitFor('event: snapshot');
  const secret = 'Do not tell the room about the surprise on slide 9.';
  const report = { state: state({ notes: secret, title: 'Two', indexh: 1 }), slides: [{ h: 0, v: 0, title: 'One' }, { h: 1, v: 0, title: 'Two' }] };
  assert.equal((await call(s.base, 'PUT', `/api/channels/${ch.id}/state`, report, ch.deckKey)).status, 200);
  await follower.waitFor('event: state');
  // A late joiner's snapshot holds the state too, without them.
  const late = await openRawStream(s.base, `/api/channels/${ch.id}/events`);
  t.after(() => late.close());
  await late.waitFor('event: snapshot');
  await late.waitFor('"title":"Two"');
  for (const [name, text] of [['follower', follower.text()], ['late joiner', late.text()]] as const) {
    assert.ok(!text.includes('surprise') && !text.includes('"notes"'), `${name}: ${text}`);
  }

  // Without a key, or with one the channel never issued: refused.
  expectError(await call(s.base, 'GET', notesPath), 401);
  expectError(await call(s.base, 'GET', notesPath, undefined, 'x'.repeat(43)), 401);
  // The paired phone and the deck read the current slide's notes.
  const { controllerKey } = await pairPhone(s.base, ch);
  for (const key of [controllerKey, ch.deckKey]) {
    const res = await call(s.base, 'GET', notesPath, undefined, key);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { indexh: 1, indexv: 0, notes: secret });
    assert.equal(res.headers['cache-control'], 'no-store');
  }
  // A revoked phone no longer can.
  assert.equal((await call(s.base, 'DELETE', `/api/channels/${ch.id}/controllers`, undefined, ch.deckKey)).status, 200);
  expectError(await call(s.base, 'GET', notesPath, undefined, controllerKey), 401);
});

// ------------------------------------------------------------------ rate limit and caps

test('behind --trust-proxy only the proxy is believed: addresses a phone writes into X-Forwarded-For itself do not reset its limits', GUARD, async (t) => {
  // nginx here appends the phone's LAN address to whatever the phone sent; only that last address is the phone's.
  const s = await start(t, { trustProxy: true, createPerMinute: 5 });
  const viaProxy = (i: number) => ({ 'X-Forwarded-For': `10.9.0.${i + 1}, 192.168.1.50` });
  const answers: number[] = [];
  for (let i = 0; i < 8; i++) answers.push((await rawRequest(s.base, { method: 'POST', path: '/api/channels', headers: viaProxy(i) })).status);
  assert.deepEqual(answers, [201, 201, 201, 201, 201, 429, 429, 429]);
  // Another phone behind the same proxy has its own allowance.
  assert.equal((await rawRequest(s.base, { method: 'POST', path: '/api/channels', headers: { 'X-Forwarded-For': '192.168.1.51' } })).status, 201);
  // A proxy named by address is believed; one not named is not, even on loopback.
  const named = await start(t, { trustProxy: true, trustedProxies: ['10.0.0.5'], createPerMinute: 2 });
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) statuses.push((await rawRequest(named.base, { method: 'POST', path: '/api/channels', headers: { 'X-Forwarded-For': `203.0.113.${i + 1}` } })).status);
  assert.deepEqual(statuses, [201, 201, 429], 'X-Forwarded-For from an untrusted peer changes nothing');
});

test("the room's streams cannot lock the slideshow and its phones out of their channel: key holders have slots of their own", GUARD, async (t) => {
  const s = await start(t, { maxSubscribersPerChannel: 3, maxSubscribersPerIp: 2 });
  const ch = await createChannel(s.base);
  const phone = await pairPhone(s.base, ch);
  const events = (as?: string) => `/api/channels/${ch.id}/events${as === undefined ? '' : `?as=${as}`}`;
  // The room takes every stream the channel allows, from as many addresses as it likes.
  for (const localAddress of ['127.0.0.11', '127.0.0.11', '127.0.0.12']) assert.equal((await stream(t, s, ch.id, { localAddress })).status, 200);
  const refused = (urlPath: string, localAddress = '127.0.0.13') => rawRequest(s.base, { method: 'GET', path: urlPath, localAddress });
  expectError(await refused(events()), 503, /too many open streams/);
  // A made-up token, or the channel's public id, is no key holder's.
  expectError(await refused(events('A'.repeat(43))), 503);
  expectError(await refused(events(ch.id)), 503);
  // The slideshow and the phone still get their streams, and taps reach the slideshow.
  const deck = await openRawStream(s.base, events(ch.streamToken));
  t.after(() => deck.close());
  assert.equal(deck.status, 200);
  await deck.waitFor('event: snapshot');
  const remote = await openRawStream(s.base, events(phone.streamToken), { localAddress: '127.0.0.11' });
  t.after(() => remote.close());
  assert.equal(remote.status, 200, 'past the per-address cap too');
  const id = cmdId();
  assert.equal((await call(s.base, 'POST', `/api/channels/${ch.id}/commands`, { type: 'next', id }, phone.controllerKey)).status, 202);
  await deck.waitFor(id);
  // A revoked phone's token is worth nothing any more.
  assert.equal((await call(s.base, 'DELETE', `/api/channels/${ch.id}/controllers`, undefined, ch.deckKey)).status, 200);
  expectError(await refused(events(phone.streamToken), '127.0.0.14'), 503);
  // Two tokens are a 400, not a guess at which one counts.
  expectError(await refused(`${events(ch.streamToken)}&as=${ch.streamToken}`), 400, /as/);
});

test('a phone holds at most three key-holder streams (a fourth ends its oldest), a revoked phone\'s streams end at once, and the slideshow always gets its own', GUARD, async (t) => {
  const s = await start(t, { maxSubscribersPerChannel: 1 });
  const ch = await createChannel(s.base);
  const phone = await pairPhone(s.base, ch);
  const other = await pairPhone(s.base, { id: ch.id, pairCode: (await call(s.base, 'POST', `/api/channels/${ch.id}/pair-codes`, undefined, ch.deckKey)).json!.pairCode as string });
  const events = (as: string) => `/api/channels/${ch.id}/events?as=${as}`;
  const open = async (as: string) => {
    const st = await openRawStream(s.base, events(as));
    t.after(() => st.close());
    if (st.status === 200) await st.waitFor('event: snapshot');
    return st;
  };
  const oldest = await open(phone.streamToken);
  const held = [await open(phone.streamToken), await open(phone.streamToken)];
  for (const st of [oldest, ...held]) assert.equal(st.status, 200);
  // A fourth is one more than that phone's share: it opens, and the phone's oldest makes room
  // (a phone that changed networks reconnects while its dead connection still counts).
  held.push(await open(phone.streamToken));
  assert.equal(held.at(-1)!.status, 200);
  await oldest.ended;
  await untilSubscribers(s, 3);
  assert.equal((await open(other.streamToken)).status, 200, 'the other phone has its own share');
  const decks = [];
  for (let i = 0; i < 4; i++) decks.push(await open(ch.streamToken));
  for (const st of decks) assert.equal(st.status, 200, 'the slideshow is never counted against its phones');
  // Revoked: that phone's streams end at once (it reconnects as one of the room); the other's and the slideshow's stay.
  assert.equal((await call(s.base, 'DELETE', `/api/channels/${ch.id}/controllers/${phone.controllerHash}`, undefined, ch.deckKey)).status, 200);
  const late = new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error('a revoked phone\'s stream is still open')), 5_000).unref());
  await Promise.race([Promise.all(held.map((st) => st.ended)), late]);
  const id = cmdId();
  assert.equal((await call(s.base, 'POST', `/api/channels/${ch.id}/commands`, { type: 'next', id }, other.controllerKey)).status, 202);
  await decks[0]!.waitFor(id);
});

test('channel creation from one address is rate limited: 429, Retry-After, JSON; X-Forwarded-For does not reset it', GUARD, async (t) => {
  const s = await start(t, { createPerMinute: 5 });
  for (let i = 0; i < 5; i++) await createChannel(s.base);
  for (let i = 0; i < 5; i++) {
    const res = await rawRequest(s.base, { method: 'POST', path: '/api/channels', headers: { 'X-Forwarded-For': `203.0.113.${i + 1}` } });
    expectError(res, 429, /too many channels/);
    assert.match(String(res.headers['retry-after']), /^[1-9]\d*$/, 'Retry-After is a positive number of seconds');
  }
  // Re-registration creates channels too (a fresh deck key derives a fresh id), so it shares the limit.
  const key = newSecret();
  expectError(await call(s.base, 'PUT', `/api/channels/${channelIdFor(key)}`, {}, key), 429);
  assert.equal((await s.hub.bus.count()), 5);
  // The limit is per address: another client still gets a channel.
  const other = await createChannel(s.base, OTHER_IP);
  assert.equal((await s.hub.get(other.id)).id, other.id);
});

test('the channel cap answers a JSON 503 to creation and to re-registration of a new id; a live channel still re-registers', GUARD, async (t) => {
  const s = await start(t, { maxChannels: 3, createPerMinute: 1_000 });
  const made = [await createChannel(s.base), await createChannel(s.base), await createChannel(s.base)];
  expectError(await call(s.base, 'POST', '/api/channels'), 503, /as many channels/);
  const key = newSecret();
  expectError(await call(s.base, 'PUT', `/api/channels/${channelIdFor(key)}`, {}, key), 503, /as many channels/);
  assert.equal((await s.hub.bus.count()), 3);
  const again = await call(s.base, 'PUT', `/api/channels/${made[0]!.id}`, {}, made[0]!.deckKey);
  assert.equal(again.status, 200, again.text);
});

test('streams per channel and per address are capped with JSON answers, and a closed stream frees its slot', GUARD, async (t) => {
  const s = await start(t, { maxSubscribersPerChannel: 3, maxSubscribersPerIp: 3 });
  const a = await createChannel(s.base);
  const b = await createChannel(s.base);

  const a1 = await stream(t, s, a.id);
  await stream(t, s, a.id, { localAddress: OTHER_IP });
  await stream(t, s, a.id, { localAddress: OTHER_IP });
  const full = await stream(t, s, a.id, { localAddress: OTHER_IP });
  assert.equal(full.status, 503);
  assert.match(String(full.headers['content-type']), /^application\/json\b/, 'a refusal is JSON, not an event stream');
  await full.ended;
  assert.match(JSON.parse(full.text()).error as string, /too many open streams/);

  // Per address, across channels: 127.0.0.1 holds one stream on a; two more on b reach its cap of three.
  await stream(t, s, b.id);
  await stream(t, s, b.id);
  const third = await openRawStream(s.base, `/api/channels/${b.id}/events`);
  t.after(() => third.close());
  assert.equal(third.status, 429);
  await third.ended;
  assert.match(JSON.parse(third.text()).error as string, /from this address/);
  assert.equal(s.hub.stats().subscribers, 5);

  a1.close();
  await untilSubscribers(s, 4);
  const again = await stream(t, s, a.id);
  assert.equal(again.status, 200, 'the freed slot is usable');
});

test('the per-address stream cap counts an IPv6 address by its /56 and an IPv4-mapped one as IPv4, as the rate limits do', GUARD, async (t) => {
  const s = await start(t, { trustProxy: true, maxSubscribersPerIp: 2 });
  const ch = await createChannel(s.base);
  const from = (address: string) => ({ headers: { 'X-Forwarded-For': address } });
  // One phone's prefix: three addresses, one allowance.
  assert.equal((await stream(t, s, ch.id, from('2001:db8:1:1::1'))).status, 200);
  assert.equal((await stream(t, s, ch.id, from('2001:db8:1:2::ffff'))).status, 200);
  expectError(await refusedStream(t, s, ch.id, from('2001:db8:1:3::7')), 429, /from this address/);
  // Another /56 is another allowance.
  assert.equal((await stream(t, s, ch.id, from('2001:db8:2::1'))).status, 200);
  // 10.0.0.9 written as IPv6 is 10.0.0.9.
  assert.equal((await stream(t, s, ch.id, from('10.0.0.9'))).status, 200);
  assert.equal((await stream(t, s, ch.id, from('::ffff:10.0.0.9'))).status, 200);
  expectError(await refusedStream(t, s, ch.id, from('10.0.0.9')), 429, /from this address/);
});

test('an idle channel expires after the TTL; one with a stream or recent traffic stays', GUARD, async (t) => {
  let clock = 1_000_000;
  const s = await start(t, { channelTtlMs: 60_000 }, { now: () => clock });
  const idle = await createChannel(s.base);
  const busy = await createChannel(s.base);
  const watched = await createChannel(s.base);
  const watcher = await stream(t, s, watched.id);

  clock += 30_000;
  assert.equal((await call(s.base, 'POST', `/api/channels/${busy.id}/commands`, { type: 'next', id: cmdId() }, busy.deckKey)).status, 202);
  clock += 40_000;
  assert.equal(await s.hub.sweep(), 1);
  expectError(await call(s.base, 'POST', `/api/channels/${idle.id}/commands`, { type: 'next', id: cmdId() }, idle.deckKey), 404);
  expectError(await call(s.base, 'POST', `/api/channels/${idle.id}/pair`, { code: idle.pairCode }), 404);
  expectError(await rawRequest(s.base, { method: 'GET', path: `/api/channels/${idle.id}/events` }), 404);
  assert.equal((await call(s.base, 'POST', `/api/channels/${busy.id}/commands`, { type: 'next', id: cmdId() }, busy.deckKey)).status, 202);

  watcher.close();
  await untilSubscribers(s, 0);
  clock += 61_000;
  assert.equal(await s.hub.sweep(), 2);
  assert.equal((await s.hub.bus.count()), 0);
  // The deck key's holder can bring an expired channel back (a laptop that slept through the TTL).
  const back = await call(s.base, 'PUT', `/api/channels/${idle.id}`, {}, idle.deckKey);
  assert.equal(back.status, 200, back.text);
  assert.equal(back.json?.id, idle.id);
});

// ------------------------------------------------------------------ slow clients

/** Opens a raw socket, writes `first`, then `drip` every 50 ms; resolves with what came back once the server closes it. */
async function slowClient(port: number, first: string, drip: string): Promise<{ answer: string; drips: number }> {
  const sock = net.connect(port, '127.0.0.1');
  let answer = '';
  let drips = 0;
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => (answer += d));
  sock.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
  sock.write(first);
  // Bounded: 200 drips (about 10 s). A server that never cuts the client off leaves the loop with drips = 200.
  const timer = setInterval(() => {
    if (drips >= 200) {
      sock.destroy();
      return;
    }
    drips++;
    if (!sock.destroyed) sock.write(drip);
  }, 50);
  await closed;
  clearInterval(timer);
  return { answer, drips };
}

test('headersTimeout and requestTimeout cut off a client that sends slowly; an open event stream is not cut', GUARD, async (t) => {
  // Small timeouts, and a check interval to match (Node's own default is 30 s).
  const s = await start(t, { headersTimeoutMs: 300, requestTimeoutMs: 600 }, { connectionsCheckingIntervalMs: 50 });
  assert.equal(s.server.headersTimeout, 300);
  assert.equal(s.server.requestTimeout, 600);

  const headers = await slowClient(s.port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n', 'X-Slow: 1\r\n');
  assert.match(headers.answer, /^HTTP\/1\.1 408 /, 'a client still sending headers gets 408');
  assert.ok(headers.drips < 200, 'and is cut off instead of being kept forever');

  const body = await slowClient(
    s.port,
    'POST /api/channels HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n',
    ' ',
  );
  assert.match(body.answer, /^HTTP\/1\.1 408 /, 'a client still sending its body gets 408');
  assert.ok(body.drips < 200);
  assert.equal((await s.hub.bus.count()), 0);

  // A stream's request ended with its headers, so requestTimeout does not apply to the long response.
  const ch = await createChannel(s.base);
  const st = await stream(t, s, ch.id);
  await sleep(3 * 600);
  const id = cmdId();
  assert.equal((await call(s.base, 'POST', `/api/channels/${ch.id}/commands`, { type: 'next', id }, ch.deckKey)).status, 202);
  await st.waitFor(id);
});

test('a request node:http reads is cut off soon after requestTimeout with the shipped check interval, not 30 s later', GUARD, async (t) => {
  // No check interval given: the one createHttpServer ships (Node's own default is 30 s).
  const s = await start(t, { headersTimeoutMs: 300, requestTimeoutMs: 600 });
  const body = await slowClient(
    s.port,
    'POST /api/channels HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n',
    ' ',
  );
  assert.match(body.answer, /^HTTP\/1\.1 408 /, 'a client still sending its body gets 408');
  // 50 ms a drip: cut off within a few check intervals of the 600 ms limit, far from Node's 30 s.
  assert.ok(body.drips < 100, `cut off after ${body.drips} drips`);
});

// ------------------------------------------------------------------ keys and replays

test('a captured command replayed without the key, with a wrong key or with a revoked key is 401 and delivers nothing', GUARD, async (t) => {
  const s = await start(t);
  const { ch, phone, st } = await scene(t, s);
  const otherCh = await createChannel(s.base);
  const otherPhone = await pairPhone(s.base, otherCh);

  // What an eavesdropper on the venue Wi-Fi captures: the presenter's request, byte for byte.
  const origId = cmdId();
  const captured = {
    method: 'POST',
    path: `/api/channels/${ch.id}/commands`,
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${phone.controllerKey}` },
    body: JSON.stringify({ type: 'next', id: origId }),
  };
  assert.equal((await rawRequest(s.base, captured)).status, 202);
  await st.waitFor(origId);

  // The exact replay is recognised by its id and acknowledged without a second delivery.
  const dup = await rawRequest(s.base, captured);
  assert.equal(dup.status, 200);
  assert.deepEqual({ duplicate: dup.json?.duplicate, delivered: dup.json?.delivered }, { duplicate: true, delivered: 0 });

  const withAuth = (authorization: string | undefined, body = captured.body, urlPath = captured.path) => ({
    ...captured,
    path: urlPath,
    headers: { 'Content-Type': 'application/json', ...(authorization === undefined ? {} : { Authorization: authorization }) },
    body,
  });
  const fresh = () => JSON.stringify({ type: 'next', id: cmdId() });
  const refused = [
    withAuth(undefined),
    withAuth(undefined, fresh()),
    withAuth(`Bearer ${newSecret()}`, fresh()),
    withAuth(`Bearer ${phone.controllerKey.slice(0, -1)}${phone.controllerKey.endsWith('A') ? 'B' : 'A'}`, fresh()),
    withAuth(`Bearer ${otherCh.deckKey}`, fresh()),
    withAuth(`Bearer ${otherPhone.controllerKey}`, fresh()),
    withAuth(`Bearer ${hashSecret(phone.controllerKey)}`, fresh()),
    withAuth(`Basic ${phone.controllerKey}`, fresh()),
    withAuth(`bearer ${phone.controllerKey}`, fresh()),
    withAuth(`Bearer  ${phone.controllerKey}`, fresh()),
    withAuth(undefined, JSON.stringify({ type: 'next', id: cmdId(), key: phone.controllerKey })),
    withAuth(undefined, fresh(), `${captured.path}?key=${phone.controllerKey}`),
  ];
  for (const req of refused) {
    const res = await rawRequest(s.base, req);
    expectError(res, 401, /key required/);
    assert.equal(res.headers['www-authenticate'], 'Bearer');
  }

  // The presenter revokes that phone by its hash: the captured request, even with a fresh id, is dead.
  const revoked = await call(s.base, 'DELETE', `/api/channels/${ch.id}/controllers/${phone.controllerHash}`, undefined, ch.deckKey);
  assert.deepEqual(revoked.json, { revoked: 1 });
  expectError(await rawRequest(s.base, captured), 401);
  expectError(await rawRequest(s.base, { ...captured, body: fresh() }), 401);

  // Revoke-all kills a second phone paired later.
  const code = (await call(s.base, 'POST', `/api/channels/${ch.id}/pair-codes`, undefined, ch.deckKey)).json?.pairCode as string;
  const second = await pairPhone(s.base, { id: ch.id, pairCode: code });
  assert.deepEqual((await call(s.base, 'DELETE', `/api/channels/${ch.id}/controllers`, undefined, ch.deckKey)).json, { revoked: 1 });
  expectError(await call(s.base, 'POST', captured.path, { type: 'next', id: cmdId() }, second.controllerKey), 401);

  const last = await fence(s, ch, st);
  const commands = st.text().split('\n').filter((line) => line.startsWith('data: {"type"'));
  assert.equal(commands.length, 2, 'only the original and the fence were delivered');
  assert.ok(commands[0]!.includes(origId) && commands[1]!.includes(last));
});

test('a spent pairing code is a JSON 410 with the follow URL and never yields a key; a wrong guess does not burn the code', GUARD, async (t) => {
  const s = await start(t);
  const ch = await createChannel(s.base);
  const pairPath = `/api/channels/${ch.id}/pair`;
  await pairPhone(s.base, ch);

  const spent = await call(s.base, 'POST', pairPath, { code: ch.pairCode });
  const body = expectError(spent, 410, /already been used/);
  assert.equal(body.followUrl, `${s.publicBase}/f/${ch.id}`);
  assert.equal(body.controllerKey, undefined);
  assert.equal((await s.hub.get(ch.id)).controllers.length, 1);

  // A fresh code: wrong guesses are refused and leave it redeemable, once.
  const fresh = (await call(s.base, 'POST', `/api/channels/${ch.id}/pair-codes`, undefined, ch.deckKey)).json?.pairCode as string;
  for (let i = 0; i < 5; i++) expectError(await call(s.base, 'POST', pairPath, { code: newSecret() }), 410);
  expectError(await call(s.base, 'POST', pairPath, { code: fresh.toLowerCase() === fresh ? fresh.toUpperCase() : fresh.toLowerCase() }), 410);

  // Many phones scan the projected QR at once: exactly one gets a key.
  const racers = await Promise.all(Array.from({ length: 20 }, () => call(s.base, 'POST', pairPath, { code: fresh })));
  const winners = racers.filter((r) => r.status === 201);
  assert.equal(winners.length, 1);
  for (const r of racers.filter((x) => x.status !== 201)) assert.equal(expectError(r, 410).controllerKey, undefined);
  assert.equal((await s.hub.get(ch.id)).controllers.length, 2);

  // A code replaced by a newer one is dead too.
  const older = (await call(s.base, 'POST', `/api/channels/${ch.id}/pair-codes`, undefined, ch.deckKey)).json?.pairCode as string;
  const newer = (await call(s.base, 'POST', `/api/channels/${ch.id}/pair-codes`, undefined, ch.deckKey)).json?.pairCode as string;
  expectError(await call(s.base, 'POST', pairPath, { code: older }), 410);
  assert.equal((await call(s.base, 'POST', pairPath, { code: newer })).status, 201);
});

test('the follow page and the event stream are read-only: with no key, nothing can be changed', GUARD, async (t) => {
  const s = await start(t);
  const ch = await createChannel(s.base);
  const st = await stream(t, s, ch.id);
  const page = await rawRequest(s.base, { method: 'GET', path: `/f/${ch.id}` });
  assert.equal(page.status, 200);
  assert.match(String(page.headers['content-type']), /^text\/html/);

  const base = `/api/channels/${ch.id}`;
  const writes: [string, string, unknown][] = [
    ['POST', `${base}/commands`, { type: 'next', id: cmdId() }],
    ['PUT', `${base}/state`, { state: state({ title: 'follower-report' }) }],
    ['POST', `${base}/pair-codes`, undefined],
    ['DELETE', `${base}/controllers`, undefined],
    ['DELETE', `${base}/controllers/${hashSecret(newSecret())}`, undefined],
    ['PUT', base, {}],
  ];
  for (const [method, urlPath, body] of writes) {
    const res = await call(s.base, method, urlPath, body);
    expectError(res, 401, /key required/);
    assert.equal(res.headers['www-authenticate'], 'Bearer');
  }
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
    const res = await call(s.base, method, `${base}/events`, { type: 'next', id: cmdId() });
    expectError(res, 405);
    assert.equal(res.headers.allow, 'GET, HEAD');
    const page = await call(s.base, method, `/f/${ch.id}`, { type: 'next', id: cmdId() });
    expectError(page, 405);
    assert.equal(page.headers.allow, 'GET, HEAD');
  }
  expectError(await call(s.base, 'POST', `${base}/pair`, {}), 400);

  await fence(s, ch, st);
  assert.deepEqual(eventNames(st.text()), ['snapshot', 'command']);
  const channel = await s.hub.get(ch.id);
  assert.equal(channel.state, null);
  assert.equal(channel.controllers.length, 0);
  assert.notEqual(channel.pairCodeHash, null, 'the code on the title slide is still open');
  assert.equal(channel.pairCodeHash, hashSecret(ch.pairCode ?? ''), 'and is still the same code');
});

// ------------------------------------------------------------------ logs

test('no deck key, controller key or pairing code appears in any log line, whatever fails', GUARD, async (t) => {
  const s = await start(t, { createPerMinute: 4, maxSubscribersPerIp: 1 });
  // Anything the app or its middleware prints to the console counts as a log line too.
  const consoleLines: string[] = [];
  for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    t.mock.method(console, method, (...args: unknown[]) => {
      consoleLines.push(args.map((a) => (a instanceof Error ? (a.stack ?? a.message) : typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
    });
  }
  const ch = await createChannel(s.base);
  const phone = await pairPhone(s.base, ch);
  const code = (await call(s.base, 'POST', `/api/channels/${ch.id}/pair-codes`, undefined, ch.deckKey)).json?.pairCode as string;
  const other = await createChannel(s.base);
  const secrets = [ch.deckKey, ch.pairCode ?? '', phone.controllerKey, code, other.deckKey, other.pairCode ?? ''];
  const base = `/api/channels/${ch.id}`;
  const withSecrets = { deckKey: ch.deckKey, code, key: phone.controllerKey };

  // Every refusal, each carrying secrets in the header, the query and the body.
  const q = `?code=${code}&key=${phone.controllerKey}&lastEventId=${ch.deckKey}`;
  const provoke: [string, string, unknown, string | undefined, Record<string, string>?][] = [
    ['POST', `${base}/commands${q}`, { type: 'next', id: cmdId(), ...withSecrets }, phone.controllerKey],
    ['POST', `${base}/commands${q}`, { type: 'next', id: cmdId() }, other.deckKey],
    ['POST', `${base}/commands${q}`, { type: 'next', id: cmdId(), pad: 'x'.repeat(5_000), ...withSecrets }, phone.controllerKey],
    ['POST', `${base}/commands${q}`, { type: 'next', id: cmdId() }, phone.controllerKey, { Origin: 'https://evil.example' }],
    ['POST', `${base}/pair${q}`, { code: ch.pairCode }, undefined],
    ['POST', `${base}/pair${q}`, { code, extra: ch.deckKey }, undefined],
    ['PUT', `${base}/state${q}`, { state: state({ title: `\r${ch.deckKey}` }) }, ch.deckKey],
    ['PUT', `${base}/state${q}`, { state: state() }, phone.controllerKey],
    ['PUT', `${base}${q}`, { controllers: [ch.deckKey] }, ch.deckKey],
    ['PUT', `/api/channels/${other.id}${q}`, {}, ch.deckKey],
    ['POST', `${base}/pair-codes${q}`, undefined, phone.controllerKey],
    ['DELETE', `${base}/controllers/${phone.controllerKey}${q}`, undefined, phone.controllerKey],
    ['POST', `/api/channels/${ch.deckKey.slice(0, 22)}/commands${q}`, { type: 'next', id: cmdId() }, ch.deckKey],
    ['GET', `/r/${ch.deckKey}${q}`, undefined, undefined],
    ['GET', `/assets/${code}.js${q}`, undefined, undefined],
    ['GET', `/${phone.controllerKey}${q}`, undefined, undefined],
  ];
  for (let i = 0; i < 6; i++) provoke.push(['POST', `/api/channels${q}`, {}, ch.deckKey]);
  for (const [method, urlPath, body, key, headers] of provoke) {
    const res = await call(s.base, method, urlPath, body, key, headers);
    assert.ok(res.status >= 400 && res.status < 500, `${method} ${urlPath} -> ${res.status}`);
  }
  for (const [status, type, body] of [[415, 'text/plain', ch.deckKey], [400, 'application/json', `{"code":"${code}"`]] as const) {
    const res = await rawRequest(s.base, { method: 'POST', path: `${base}/pair${q}`, headers: { 'Content-Type': type, Authorization: `Bearer ${ch.deckKey}` }, body });
    expectError(res, status);
  }
  const held = await stream(t, s, ch.id);
  expectError((await rawRequest(s.base, { method: 'GET', path: `${base}/events${q}`, headers: { 'Last-Event-ID': ch.deckKey } })), 429);
  held.close();
  await untilSubscribers(s, 0);

  // Internal failures are logged with their stack: make the hub fail while a request carries every secret.
  // Both command paths: awaited (a remote bus) and at once (the memory bus this server runs on).
  for (const name of ['command', 'commandNow'] as const) {
    t.mock.method(s.hub, name, () => {
      throw new Error('hub failure (simulated)');
    });
  }
  t.mock.method(s.hub, 'subscribe', () => {
    throw new Error('hub failure (simulated)');
  });
  const boom = await call(s.base, 'POST', `${base}/commands${q}`, { type: 'next', id: cmdId() }, phone.controllerKey);
  assert.deepEqual(expectError(boom, 500), { error: 'internal error' }, 'the answer leaks nothing');
  expectError(await rawRequest(s.base, { method: 'GET', path: `${base}/events${q}`, headers: { 'Last-Event-ID': code } }), 500);

  const lines = [...s.logs, ...consoleLines];
  // The check below must have something to check: both failures were logged, by path.
  assert.ok(s.logs.some((l) => l.startsWith(`error POST ${base}/commands: `) && l.includes('hub failure')), s.logs.join('\n'));
  assert.ok(s.logs.some((l) => l.startsWith(`error GET ${base}/events: `)), s.logs.join('\n'));
  for (const line of lines) {
    for (const secret of secrets) assert.ok(!line.includes(secret), `a secret leaked into a log line: ${line.slice(0, 200)}`);
  }
});

// ------------------------------------------------------------------ CSP

/** Parses a Content-Security-Policy header into directive -> sources. */
function parseCsp(header: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const part of header.split(';')) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name) out.set(name.toLowerCase(), sources);
  }
  return out;
}

test("pages carry a CSP whose scripts are 'self' only: no inline script, no eval, no third-party host", GUARD, async (t) => {
  const s = await start(t);
  const id = 'AAAAAAAAAAAAAAAAAAAAAA';
  for (const urlPath of ['/', `/f/${id}`, `/r/${id}`, '/healthz', '/no/such/page']) {
    const res = await rawRequest(s.base, { method: 'GET', path: urlPath });
    const header = res.headers['content-security-policy'];
    assert.equal(typeof header, 'string', `${urlPath} has a CSP`);
    const csp = parseCsp(String(header));
    assert.deepEqual(csp.get('script-src'), ["'self'"], urlPath);
    assert.deepEqual(csp.get('default-src'), ["'self'"], urlPath);
    assert.deepEqual(csp.get('object-src'), ["'none'"], urlPath);
    // <base> may only point at this origin (the deck page uses <base href="/">), never elsewhere.
    assert.ok(["'none'", "'self'"].includes((csp.get('base-uri') ?? []).join(' ')), urlPath);
    for (const name of ['script-src-elem', 'script-src-attr']) assert.equal(csp.get(name), undefined, `${name} would override script-src`);
    for (const [name, sources] of csp) {
      for (const src of sources) {
        assert.notEqual(src, "'unsafe-eval'", `${name} allows eval`);
        assert.ok(!(name.startsWith('script') || name === 'default-src') || src !== "'unsafe-inline'", `${name} allows inline script`);
        // Only keywords and the data:/blob: schemes; any host (or http:, https:, *) would be a third party.
        assert.match(src, /^('[a-z-]+'|data:|blob:)$/, `${name} names a host: ${src}`);
      }
    }
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers['referrer-policy'], 'no-referrer');
    // The pages themselves must work under that policy: scripts from /assets only, no inline script or handler.
    if (/^text\/html/.test(String(res.headers['content-type']))) {
      const scripts = res.text.match(/<script\b[^>]*>/gi) ?? [];
      assert.ok(scripts.length > 0, `${urlPath} loads its script`);
      for (const tag of scripts) assert.match(tag, /\bsrc="\/assets\/[^"]+"/, `${urlPath}: ${tag}`);
      assert.doesNotMatch(res.text, /<script\b[^>]*>\s*[^<\s]/i, `${urlPath} has an inline script body`);
      assert.doesNotMatch(res.text, /<[^>]+\son[a-z]+\s*=/i, `${urlPath} has an inline event handler`);
    }
  }
});

test('a late subscriber sees only accepted state in its snapshot', GUARD, async (t) => {
  const s = await start(t);
  const ch = await createChannel(s.base);
  assert.equal((await call(s.base, 'PUT', `/api/channels/${ch.id}/state`, { state: state({ title: 'good' }) }, ch.deckKey)).status, 200);
  expectError(await call(s.base, 'PUT', `/api/channels/${ch.id}/state`, { state: state({ title: 'bad\r\n' }) }, ch.deckKey), 400);
  expectError(await call(s.base, 'PUT', `/api/channels/${ch.id}/state`, { state: state({ title: 'forged' }) }, newSecret()), 401);
  const st = await stream(t, s, ch.id);
  const line = st.text().split('\n').find((l) => l.startsWith('data: ') && l.includes('"presence"'));
  assert.ok(line);
  const snap = JSON.parse(line.slice('data: '.length)) as Snapshot;
  assert.equal(snap.state?.title, 'good');
});
