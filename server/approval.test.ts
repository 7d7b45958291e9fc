// Phone approval, on by default: the pairing QR is on the projector, so a
// phone that scans it waits, under a name, until the slideshow allows it.
// Real app on an ephemeral port, real streams read as bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_CONTROLLERS, type ChannelInfo, type Knock, type PairPending, type PairResult } from '../protocol/messages';
import { DEFAULTS } from './config';
import { hashSecret, knockTicket, labelFor, WAITING_KEY_TTL_MS } from './keys';
import { deviceOf } from './net';
import { call, cmdId, createChannel, expectError, openRawStream, startTestServer, type RawStream, type TestServer } from './testing';

const PIXEL = 'Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36';
const IPHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1';

/** The data of every `knock` event a raw stream has received. */
function knocks(stream: RawStream): Knock[] {
  return [...stream.text().matchAll(/event: knock\ndata: (.*)\n/g)].map((m) => JSON.parse(m[1]!) as Knock);
}

async function withServer(fn: (s: TestServer) => Promise<void>): Promise<void> {
  // The default, stated: startTestServer pairs in one step for the other suites.
  const s = await startTestServer({ approvePhones: DEFAULTS.approvePhones });
  try {
    await fn(s);
  } finally {
    await s.close();
  }
}

const knock = (s: TestServer, ch: ChannelInfo, body: Record<string, unknown>, ua = PIXEL) =>
  call(s.base, 'POST', `/api/channels/${ch.id}/pair`, body, undefined, { 'User-Agent': ua });
/** The ticket the deck's stream carries with each knock, made as the server makes it (the test holds the deck key). */
const ticketOf = (ch: ChannelInfo, hash: string, code = ch.pairCode) => knockTicket(hashSecret(ch.deckKey), hashSecret(code!), hash);
const allow = (s: TestServer, ch: ChannelInfo, hash: string, key = ch.deckKey, code = ch.pairCode, ticket = ticketOf(ch, hash, code)) =>
  call(s.base, 'POST', `/api/channels/${ch.id}/controllers`, { code, hash, ticket }, key);
const next = (s: TestServer, ch: ChannelInfo, key: string) => call(s.base, 'POST', `/api/channels/${ch.id}/commands`, { type: 'next', id: cmdId() }, key);

test('phone approval is on by default', () => {
  assert.equal(DEFAULTS.approvePhones, true);
});

test('a phone with the code waits under a name until the slideshow allows it; its key then works, and the code is spent', async () => {
  await withServer(async (s) => {
    const ch = await createChannel(s.base);
    const deck = await openRawStream(s.base, `/api/channels/${ch.id}/events?as=${ch.streamToken}`);
    const room = await openRawStream(s.base, `/api/channels/${ch.id}/events`);
    try {
      const first = await knock(s, ch, { code: ch.pairCode });
      assert.equal(first.status, 202, first.text);
      const pending = first.json as unknown as PairPending;
      assert.equal(pending.pending, true);
      assert.equal(pending.controllerHash, hashSecret(pending.controllerKey));
      assert.equal(pending.label, labelFor(pending.controllerHash));
      assert.match(pending.label, /^[A-Z][a-z]+ [1-9]\d$/);

      // Not a controller yet: its key moves nothing, and reads no notes.
      expectError(await next(s, ch, pending.controllerKey), 401);
      expectError(await call(s.base, 'GET', `/api/channels/${ch.id}/notes`, undefined, pending.controllerKey), 401);

      // The slideshow hears the knock, with the same name and the device it says it is.
      await deck.waitFor('event: knock');
      const heard = knocks(deck);
      assert.equal(heard.length, 1);
      assert.deepEqual({ ...heard[0]!, ticket: undefined }, { hash: pending.controllerHash, label: pending.label, device: 'Android · Chrome', ticket: undefined });
      assert.match(heard[0]!.ticket, /^[A-Za-z0-9_-]{43}$/);

      // Knocking again with the key keeps the name, and knocks again.
      const again = await knock(s, ch, { code: ch.pairCode, key: pending.controllerKey });
      assert.equal(again.status, 202);
      assert.equal((again.json as unknown as PairPending).label, pending.label);
      assert.equal((again.json as unknown as PairPending).controllerKey, pending.controllerKey);

      // The presenter allows it, with the ticket its knock carried.
      const allowed = await allow(s, ch, pending.controllerHash, ch.deckKey, ch.pairCode, heard[0]!.ticket);
      assert.equal(allowed.status, 201, allowed.text);
      assert.deepEqual((allowed.json as unknown as ChannelInfo).controllers, [pending.controllerHash]);

      // Its next knock finds it allowed: the key and its stream token.
      const done = await knock(s, ch, { code: ch.pairCode, key: pending.controllerKey });
      assert.equal(done.status, 201, done.text);
      const result = done.json as unknown as PairResult;
      assert.equal(result.controllerKey, pending.controllerKey);
      assert.equal(result.controllerHash, pending.controllerHash);
      assert.match(result.streamToken, /^[A-Za-z0-9_-]{43}$/);
      assert.equal((await next(s, ch, pending.controllerKey)).status, 202);

      // The code is spent: another phone with it is offered follow mode.
      const late = expectError(await knock(s, ch, { code: ch.pairCode }, IPHONE), 410, /already been used/);
      assert.equal(late.followUrl, `${s.publicBase}/f/${ch.id}`);

      // The room's stream never carried a knock (nor the phone's name), only that a phone paired.
      await room.waitFor('"controllers":1');
      assert.doesNotMatch(room.text(), /knock|Otter|Android/);
      assert.ok(!room.text().includes(pending.label));
    } finally {
      deck.close();
      room.close();
    }
  });
});

test('only the deck key allows, and only a phone that holds the shown code; a wrong or spent code is refused', async () => {
  await withServer(async (s) => {
    const ch = await createChannel(s.base);
    const a = (await knock(s, ch, { code: ch.pairCode })).json as unknown as PairPending;
    const b = (await knock(s, ch, { code: ch.pairCode }, IPHONE)).json as unknown as PairPending;
    assert.notEqual(a.controllerKey, b.controllerKey);

    // Nobody but the deck key's holder allows: not the waiting phone itself, not another channel's deck.
    expectError(await allow(s, ch, a.controllerHash, a.controllerKey), 401, /deck key/);
    expectError(await allow(s, ch, a.controllerHash, 'x'.repeat(32)), 401);
    const other = await createChannel(s.base);
    expectError(await allow(s, ch, a.controllerHash, other.deckKey), 401);
    // A code that is not the one shown.
    expectError(await allow(s, ch, a.controllerHash, ch.deckKey, other.pairCode), 409, /used or replaced/);
    // A hash that never knocked (a made-up one, or a phone's with another phone's ticket) has no ticket of its own.
    expectError(await allow(s, ch, hashSecret('never knocked'), ch.deckKey, ch.pairCode, ticketOf(ch, a.controllerHash)), 403, /no phone knocked/);
    expectError(await allow(s, ch, b.controllerHash, ch.deckKey, ch.pairCode, ticketOf(ch, a.controllerHash)), 403, /no phone knocked/);
    // Bad bodies.
    const ticket = ticketOf(ch, a.controllerHash);
    for (const body of [{}, { code: ch.pairCode }, { hash: a.controllerHash }, { code: ch.pairCode, hash: a.controllerHash }, { code: ch.pairCode, hash: 'short', ticket }, { code: ch.pairCode, hash: a.controllerHash, ticket: 'short' }, { code: ch.pairCode, hash: a.controllerHash, ticket, extra: 1 }]) {
      expectError(await call(s.base, 'POST', `/api/channels/${ch.id}/controllers`, body, ch.deckKey), 400);
    }

    assert.equal((await allow(s, ch, b.controllerHash)).status, 201);
    // One code, one phone: the other waiting phone cannot be allowed with it, and learns the code is gone.
    expectError(await allow(s, ch, a.controllerHash), 409);
    expectError(await knock(s, ch, { code: ch.pairCode, key: a.controllerKey }), 410);
    expectError(await next(s, ch, a.controllerKey), 401);
    assert.equal((await knock(s, ch, { code: ch.pairCode, key: b.controllerKey }, IPHONE)).status, 201);

    // A new code pairs a second phone the same way.
    const fresh = (await call(s.base, 'POST', `/api/channels/${ch.id}/pair-codes`, undefined, ch.deckKey)).json as unknown as ChannelInfo;
    const c = (await knock(s, ch, { code: fresh.pairCode })).json as unknown as PairPending;
    assert.equal((await allow(s, ch, c.controllerHash, ch.deckKey, fresh.pairCode)).status, 201);
    assert.equal((await next(s, ch, c.controllerKey)).status, 202);
    // Revoked, a phone's knock no longer finds it allowed, and the spent code does not let it back in.
    assert.equal((await call(s.base, 'DELETE', `/api/channels/${ch.id}/controllers/${c.controllerHash}`, undefined, ch.deckKey)).status, 200);
    expectError(await knock(s, ch, { code: fresh.pairCode, key: c.controllerKey }), 410);

    // Malformed knocks.
    expectError(await knock(s, ch, { code: 'short' }), 400);
    expectError(await knock(s, ch, { code: fresh.pairCode, key: 'bad key!' }), 400);
    expectError(await knock(s, ch, { code: fresh.pairCode, extra: true }), 400);

    // A ticket from before a new code allows nothing after it: the phone asked with a code no longer shown.
    const newer = ((await call(s.base, 'POST', `/api/channels/${ch.id}/pair-codes`, undefined, ch.deckKey)).json as unknown as ChannelInfo).pairCode!;
    const d = (await knock(s, ch, { code: newer })).json as unknown as PairPending;
    const codeAfter = ((await call(s.base, 'POST', `/api/channels/${ch.id}/pair-codes`, undefined, ch.deckKey)).json as unknown as ChannelInfo).pairCode!;
    expectError(await allow(s, ch, d.controllerHash, ch.deckKey, codeAfter, ticketOf(ch, d.controllerHash, newer)), 403, /no phone knocked/);
  });
});

test('a knock reaches only a stream that shows the deck\'s token: not a phone\'s, not a follower\'s, not one that names it in ?events=', async () => {
  await withServer(async (s) => {
    const ch = await createChannel(s.base);
    const first = (await knock(s, ch, { code: ch.pairCode })).json as unknown as PairPending;
    assert.equal((await allow(s, ch, first.controllerHash)).status, 201);
    const phoneToken = ((await knock(s, ch, { code: ch.pairCode, key: first.controllerKey })).json as unknown as PairResult).streamToken;
    const code = ((await call(s.base, 'POST', `/api/channels/${ch.id}/pair-codes`, undefined, ch.deckKey)).json as unknown as ChannelInfo).pairCode;

    const deck = await openRawStream(s.base, `/api/channels/${ch.id}/events?as=${ch.streamToken}&events=knock,presence`);
    const phone = await openRawStream(s.base, `/api/channels/${ch.id}/events?as=${phoneToken}`);
    const asker = await openRawStream(s.base, `/api/channels/${ch.id}/events?events=knock,presence`);
    const forged = await openRawStream(s.base, `/api/channels/${ch.id}/events?as=${'A'.repeat(43)}`);
    try {
      const second = (await knock(s, ch, { code }, IPHONE)).json as unknown as PairPending;
      await deck.waitFor(second.controllerHash);
      assert.equal(knocks(deck)[0]!.device, 'iPhone · Safari');
      // A later event that every stream carries, so the others have had their chance at the knock.
      await call(s.base, 'POST', `/api/channels/${ch.id}/pair-codes`, undefined, ch.deckKey);
      await Promise.all([phone, asker, forged].map((st) => st.waitFor('event: presence')));
      for (const other of [phone, asker, forged]) assert.deepEqual(knocks(other), []);
    } finally {
      for (const st of [deck, phone, asker, forged]) st.close();
    }
  });
});

test('a key the phone made up itself is refused: nobody can search for a key whose name matches the presenter\'s phone', async () => {
  await withServer(async (s) => {
    const ch = await createChannel(s.base);
    // Someone reads "Otter 27" off the projector and searches for a key of that name.
    const target = ((await knock(s, ch, { code: ch.pairCode })).json as unknown as PairPending).label;
    let chosen = '';
    for (let i = 0; i < 100_000 && !chosen; i++) if (labelFor(hashSecret(`guess-${i}-${'x'.repeat(20)}`)) === target) chosen = `guess-${i}-${'x'.repeat(20)}`;
    assert.ok(chosen, 'a key with that name was found offline');
    expectError(await knock(s, ch, { code: ch.pairCode, key: chosen }), 403, /not issued for this slideshow/);
    // Nor a key issued for another slideshow.
    const other = await createChannel(s.base);
    const theirs = ((await knock(s, other, { code: other.pairCode })).json as unknown as PairPending).controllerKey;
    expectError(await knock(s, ch, { code: ch.pairCode, key: theirs }), 403);
    // A key this slideshow issued is fine, as often as the phone asks.
    const mine = ((await knock(s, ch, { code: ch.pairCode })).json as unknown as PairPending).controllerKey;
    assert.equal((await knock(s, ch, { code: ch.pairCode, key: mine })).status, 202);
    assert.equal((await knock(s, ch, { code: ch.pairCode, key: mine })).status, 202);
  });
});

test('a waiting key is good for the code it was made with, and for 15 minutes: a new code (Q) or an old key sends the phone back to the QR', async () => {
  let now = Date.now();
  const s = await startTestServer({ approvePhones: true }, { now: () => now });
  try {
    const ch = await createChannel(s.base);
    const first = ((await knock(s, ch, { code: ch.pairCode })).json as unknown as PairPending).controllerKey;
    // Q: a new code. The old key, brought with the new code, is refused: names drawn earlier cannot be kept for later.
    const fresh = ((await call(s.base, 'POST', `/api/channels/${ch.id}/pair-codes`, undefined, ch.deckKey)).json as unknown as ChannelInfo).pairCode!;
    expectError(await knock(s, ch, { code: fresh, key: first }), 403, /scan the QR code again/);
    const second = ((await knock(s, ch, { code: fresh })).json as unknown as PairPending).controllerKey;
    now += WAITING_KEY_TTL_MS - 60_000;
    assert.equal((await knock(s, ch, { code: fresh, key: second })).status, 202);
    now += 2 * 60_000;
    expectError(await knock(s, ch, { code: fresh, key: second }), 403, /expired/);
    // A key whose time or nonce was altered is refused like a made-up one.
    const third = ((await knock(s, ch, { code: fresh })).json as unknown as PairPending).controllerKey;
    for (const i of [0, 10, 30]) {
      const altered = third.slice(0, i) + (third[i] === 'A' ? 'B' : 'A') + third.slice(i + 1);
      expectError(await knock(s, ch, { code: fresh, key: altered }), 403);
    }
  } finally {
    await s.close();
  }
});

test('a reload keeps the code on show while it is open (the phones waiting with it stay), and a wrong or spent one gets a fresh code', async () => {
  await withServer(async (s) => {
    const ch = await createChannel(s.base);
    const waiting = ((await knock(s, ch, { code: ch.pairCode })).json as unknown as PairPending).controllerKey;
    const again = (await call(s.base, 'PUT', `/api/channels/${ch.id}`, { pairCode: ch.pairCode }, ch.deckKey)).json as unknown as ChannelInfo;
    assert.equal(again.pairCode, ch.pairCode);
    assert.equal((await knock(s, ch, { code: ch.pairCode, key: waiting })).status, 202, 'the waiting phone is still waiting');
    // Without the code, or with one that is not open, a deck with no phone gets a fresh one.
    const other = (await call(s.base, 'PUT', `/api/channels/${ch.id}`, { pairCode: 'x'.repeat(32) }, ch.deckKey)).json as unknown as ChannelInfo;
    assert.notEqual(other.pairCode, ch.pairCode);
    expectError(await knock(s, ch, { code: ch.pairCode, key: waiting }), 410);
    expectError(await call(s.base, 'PUT', `/api/channels/${ch.id}`, { pairCode: 'bad code!' }, ch.deckKey), 400);
  });
});

test('a phone the slideshow refused is told so at its next knock, and knocks on its card no more: across a reload, until a new code', async () => {
  await withServer(async (s) => {
    const ch = await createChannel(s.base);
    const deck = await openRawStream(s.base, `/api/channels/${ch.id}/events?as=${ch.streamToken}`);
    try {
      const pending = (await knock(s, ch, { code: ch.pairCode })).json as unknown as PairPending;
      const other = (await knock(s, ch, { code: ch.pairCode }, IPHONE)).json as unknown as PairPending;
      await deck.waitFor(other.controllerHash);
      const refuse = (hash: string, key = ch.deckKey, ticket = ticketOf(ch, hash)) => call(s.base, 'POST', `/api/channels/${ch.id}/refusals`, { code: ch.pairCode, hash, ticket }, key);
      // Only the deck key refuses, and only a phone that knocked with the code on show.
      expectError(await refuse(pending.controllerHash, other.controllerKey), 401);
      expectError(await refuse(pending.controllerHash, ch.deckKey, ticketOf(ch, other.controllerHash)), 403, /no phone knocked/);
      const refused = await refuse(pending.controllerHash);
      assert.equal(refused.status, 201, refused.text);
      // Its next knock: 410, "not allowed", with the follow link; and no knock reaches the slideshow.
      const before = knocks(deck).length;
      const told = expectError(await knock(s, ch, { code: ch.pairCode, key: pending.controllerKey }), 410, /did not allow this phone/);
      assert.equal(told.refused, true);
      assert.equal(told.followUrl, `${s.publicBase}/f/${ch.id}`);
      // The slideshow reloads (a saved stylesheet), keeping its code: the phone stays refused.
      assert.equal((await call(s.base, 'PUT', `/api/channels/${ch.id}`, { pairCode: ch.pairCode }, ch.deckKey)).status, 200);
      expectError(await knock(s, ch, { code: ch.pairCode, key: pending.controllerKey }), 410, /did not allow this phone/);
      // The other phone still waits and knocks, and can be allowed.
      assert.equal((await knock(s, ch, { code: ch.pairCode, key: other.controllerKey }, IPHONE)).status, 202);
      for (const until = Date.now() + 5_000; knocks(deck).length === before && Date.now() < until; ) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.ok(knocks(deck).length > before, "the other phone's knock reached the slideshow");
      assert.ok(knocks(deck).slice(before).every((k) => k.hash === other.controllerHash), 'only the phone not refused knocks');
      // A new code: every phone starts over, with a new key and name.
      const fresh = (await call(s.base, 'POST', `/api/channels/${ch.id}/pair-codes`, undefined, ch.deckKey)).json as unknown as ChannelInfo;
      expectError(await refuse(other.controllerHash), 409, /used or replaced/);
      assert.equal((await knock(s, { ...ch, pairCode: fresh.pairCode }, { code: fresh.pairCode })).status, 202);
    } finally {
      deck.close();
    }
  });
});

test('a slideshow with all the remotes it takes tells a knocking phone so at once, before anyone allows it', async () => {
  await withServer(async (s) => {
    const ch = await createChannel(s.base);
    // 16 phones paired (the most a channel takes), straight in the store; then a new code on the slideshow.
    for (let i = 0; i < MAX_CONTROLLERS; i++) {
      const code = hashSecret(`code-${i}`);
      await s.hub.bus.setPairCode(ch.id, code);
      await s.hub.bus.spendPairCode(ch.id, code, hashSecret(`phone-${i}`));
    }
    const code = await s.hub.issuePairCode(await s.hub.get(ch.id));
    expectError(await knock(s, { ...ch, pairCode: code }, { code }), 409, /16 remotes paired.*revoke them/);
  });
});

test('new phones are limited per address far more tightly than knocks: ten a minute, while a waiting phone keeps knocking', async () => {
  const s = await startTestServer({ approvePhones: true });
  try {
    const ch = await createChannel(s.base);
    const keys: string[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await knock(s, ch, { code: ch.pairCode });
      assert.equal(res.status, 202);
      keys.push((res.json as unknown as PairPending).controllerKey);
    }
    expectError(await knock(s, ch, { code: ch.pairCode }), 429, /too many new phones/);
    // The phones already waiting keep their places.
    for (const key of keys) assert.equal((await knock(s, ch, { code: ch.pairCode, key })).status, 202);
  } finally {
    await s.close();
  }
});

test('knocks are rate limited per address and channel, with a 429 in JSON', async () => {
  const s = await startTestServer({ approvePhones: true, knocksPerMinute: 3 });
  try {
    const ch = await createChannel(s.base);
    const key = ((await knock(s, ch, { code: ch.pairCode })).json as unknown as PairPending).controllerKey;
    for (let i = 0; i < 2; i++) assert.equal((await knock(s, ch, { code: ch.pairCode, key })).status, 202);
    expectError(await knock(s, ch, { code: ch.pairCode, key }), 429, /too many pairing requests/);
    // Another channel is another count.
    const other = await createChannel(s.base);
    assert.equal((await knock(s, other, { code: other.pairCode })).status, 202);
    // Ids that are no channel's share one count: each would otherwise be a key the limiter holds for its window, 15 KB apiece.
    const bogus = (i: number) => call(s.base, 'POST', `/api/channels/${String(i).padStart(6, '0')}${'x'.repeat(8_000)}/pair`, { code: 'abc' });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await bogus(i)).status);
    assert.deepEqual(statuses, [404, 404, 404, 429]);
  } finally {
    await s.close();
  }
});

test('with APPROVE_PHONES=0 the first phone with the code pairs at once', async () => {
  const s = await startTestServer({ approvePhones: false });
  try {
    const ch = await createChannel(s.base);
    const res = await knock(s, ch, { code: ch.pairCode });
    assert.equal(res.status, 201);
    assert.equal((await next(s, ch, (res.json as unknown as PairResult).controllerKey)).status, 202);
  } finally {
    await s.close();
  }
});

test('deviceOf sums a User-Agent up in a few plain words, and never passes markup or control characters on', () => {
  assert.equal(deviceOf(PIXEL), 'Android · Chrome');
  assert.equal(deviceOf(IPHONE), 'iPhone · Safari');
  assert.equal(deviceOf(undefined), 'unknown device');
  assert.equal(deviceOf(''), 'unknown device');
  assert.equal(deviceOf('curl/8.5.0'), 'unknown device');
  const hostile = deviceOf('Mozilla/5.0 (Linux; Android 14) <img src=x onerror=alert(1)> Chrome/120.0 Mobile Safari/537.36');
  assert.doesNotMatch(hostile, /[<>"'\n\r]/);
  assert.ok(deviceOf(`Mozilla/5.0 (X11; Linux x86_64) ${'A'.repeat(5000)}`).length <= 60);
});

test('labelFor gives the same name for the same hash, and spreads hashes over many names', () => {
  const names = new Set<string>();
  for (let i = 0; i < 2000; i++) names.add(labelFor(hashSecret(`key-${i}`)));
  assert.ok(names.size > 1000, `${names.size} names for 2000 keys`);
  const h = hashSecret('same');
  assert.equal(labelFor(h), labelFor(h));
});
