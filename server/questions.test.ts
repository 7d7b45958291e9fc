// Audience questions and reactions through the HTTP API, against the real app
// on an ephemeral 127.0.0.1 port (server/testing.ts): what is validated, who
// may do what, what the public stream may and may not carry, how many
// questions are kept, the presenter's off switch and the per-follower rate
// limits. Every refusal is checked to be a JSON answer.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { QUESTION_MAX, type ChannelInfo, type PairResult, type QuestionList, type Snapshot } from '../protocol/messages';
import type { Config } from './config';
import { call, createChannel, expectError, openRawStream, pairPhone, rawRequest, startTestServer, type RawAnswer, type RawStream, type TestServer } from './testing';

/** Guards against a hang when an awaited event never comes; not a timing assertion. */
const GUARD = { timeout: 30_000 };
/** A second follower on this machine: loopback is all of 127/8, so the server sees another address. */
const OTHER_IP = '127.0.0.2';
/** Limits high enough that a test about something else never meets them. */
const ROOMY: Partial<Config> = { questionsPerMinute: 10_000, reactionsPer10s: 10_000 };

async function start(t: TestContext, overrides: Partial<Config> = ROOMY): Promise<TestServer> {
  const s = await startTestServer(overrides);
  t.after(() => s.close());
  return s;
}

/** A channel with its presenter's phone paired. */
async function talk(s: TestServer): Promise<{ ch: ChannelInfo; phone: PairResult; base: string }> {
  const ch = await createChannel(s.base);
  const phone = await pairPhone(s.base, ch);
  return { ch, phone, base: `/api/channels/${ch.id}` };
}

/** A follower's stream: no key, exactly what the follow page opens. */
async function followerStream(t: TestContext, s: TestServer, id: string): Promise<RawStream> {
  const st = await openRawStream(s.base, `/api/channels/${id}/events`);
  t.after(() => st.close());
  assert.equal(st.status, 200);
  await st.waitFor('event: snapshot');
  return st;
}

/** The stream's events, parsed. */
function events(raw: string): { event: string; data: unknown }[] {
  return raw
    .split('\n\n')
    .map((block) => {
      const lines = block.split('\n');
      const event = lines.find((l) => l.startsWith('event:'))?.slice(6).trim();
      const data = lines
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).replace(/^ /, ''))
        .join('\n');
      return event && data ? { event, data: JSON.parse(data) as unknown } : null;
    })
    .filter((e): e is { event: string; data: unknown } => e !== null);
}

/** Waits for the stream's `n`th event of this name (1-based), and returns its data. */
async function nth(st: RawStream, event: string, n: number): Promise<unknown> {
  for (;;) {
    const found = events(st.text()).filter((e) => e.event === event);
    if (found.length >= n) return found[n - 1]!.data;
    await new Promise((r) => setTimeout(r, 10));
  }
}

const ask = (s: TestServer, base: string, body: unknown, localAddress?: string) =>
  rawRequest(s.base, {
    method: 'POST',
    path: `${base}/questions`,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
    ...(localAddress ? { localAddress } : {}),
  });
const react = (s: TestServer, base: string, body: unknown, localAddress?: string) =>
  rawRequest(s.base, {
    method: 'POST',
    path: `${base}/reactions`,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
    ...(localAddress ? { localAddress } : {}),
  });
const list = async (s: TestServer, base: string, key: string): Promise<QuestionList> => {
  const res = await call(s.base, 'GET', `${base}/questions`, undefined, key);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.headers['cache-control'], 'no-store');
  return res.json as unknown as QuestionList;
};
const asked = (res: RawAnswer): string => {
  assert.equal(res.status, 201, res.text);
  const id = res.json?.id;
  assert.equal(typeof id, 'string');
  return id as string;
};

// ------------------------------------------------------------------ validation

test('a question must be 1 to 280 characters of text, without control characters or extra fields', GUARD, async (t) => {
  const s = await start(t);
  const { ch, phone, base } = await talk(s);

  for (const [body, why] of [
    [{}, /text/],
    [{ text: '' }, /some text/],
    [{ text: ' \n\t ' }, /some text/],
    [{ text: 'x'.repeat(QUESTION_MAX + 1) }, /text/],
    [{ text: 'bell\u0007' }, /control characters/],
    [{ text: 'nul\u0000byte' }, /control characters/],
    [{ text: 'escape \u001b[31mred' }, /control characters/],
    [{ text: 'del\u007f' }, /control characters/],
    [{ text: 'fine', name: 'Mallory' }, /invalid request/],
    [{ text: 42 }, /text/],
    [['text'], /invalid request/],
    [null, /^the body must be a JSON object$/],
    ['text', /^the body must be a JSON object$/],
  ] as const) {
    expectError(await ask(s, base, body), 400, why);
  }
  expectError(await rawRequest(s.base, { method: 'POST', path: `${base}/questions`, headers: { 'Content-Type': 'application/json' }, body: '{"text":' }), 400, /malformed JSON/);
  // A form post, the CSRF classic, never reaches the handler.
  expectError(await rawRequest(s.base, { method: 'POST', path: `${base}/questions`, headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'text=hi' }), 415);
  assert.deepEqual((await list(s, base, phone.controllerKey)).questions, [], 'nothing refused was kept');

  // The bounds themselves pass: exactly 280 characters, and lines and tabs within a question.
  asked(await ask(s, base, { text: 'y'.repeat(QUESTION_MAX) }));
  asked(await ask(s, base, { text: '  Two lines:\n\tfirst and second?  ' }));
  const kept = (await list(s, base, ch.deckKey)).questions;
  assert.deepEqual(
    kept.map((q) => q.text),
    ['Two lines:\n\tfirst and second?', 'y'.repeat(QUESTION_MAX)],
    'kept trimmed, newest first',
  );
  assert.ok(kept.every((q) => q.status === 'pending' && /^[A-Za-z0-9_-]{12}$/.test(q.id) && Math.abs(q.at - Date.now()) < 60_000));
});

test('moderation, the switch and reactions refuse anything but their one field', GUARD, async (t) => {
  const s = await start(t);
  const { phone, base } = await talk(s);
  const id = asked(await ask(s, base, { text: 'Is this validated?' }));
  const key = phone.controllerKey;

  for (const body of [{}, { status: 'pending' }, { status: 'SHOWN' }, { status: 'shown', text: 'swapped' }, { status: true }]) {
    expectError(await call(s.base, 'POST', `${base}/questions/${id}`, body, key), 400, /invalid request/);
  }
  for (const body of [{}, { open: 'no' }, { open: 1 }, { open: false, questions: [] }]) {
    expectError(await call(s.base, 'PUT', `${base}/questions`, body, key), 400, /invalid request/);
  }
  for (const body of [{}, { kind: 'boo' }, { kind: '👍' }, { kind: 'clap', times: 100 }, { kind: ['clap'] }]) {
    expectError(await react(s, base, body), 400, /invalid request/);
  }
  // Nothing changed on the way: still pending, still open.
  const now = await list(s, base, key);
  assert.equal(now.open, true);
  assert.deepEqual(now.questions.map((q) => q.status), ['pending']);
});

// ------------------------------------------------------------------ auth

test('listing, moderating and the switch need the controller or deck key; asking and reacting are public', GUARD, async (t) => {
  const s = await start(t);
  const { ch, phone, base } = await talk(s);
  const other = await talk(s);
  const id = asked(await ask(s, base, { text: 'Who can see this?' }));
  assert.equal((await react(s, base, { kind: 'thumbs' })).status, 204);

  const wrongKeys: (string | undefined)[] = [
    undefined,
    'A'.repeat(43),
    // Another channel's keys, and this channel's spent pairing code: none is this channel's key.
    other.phone.controllerKey,
    other.ch.deckKey,
    ch.pairCode ?? 'no-code',
  ];
  for (const key of wrongKeys) {
    const refused = [
      await call(s.base, 'GET', `${base}/questions`, undefined, key),
      await call(s.base, 'PUT', `${base}/questions`, { open: false }, key),
      await call(s.base, 'POST', `${base}/questions/${id}`, { status: 'shown' }, key),
      await call(s.base, 'POST', `${base}/questions/${id}`, { status: 'dismissed' }, key),
    ];
    for (const res of refused) {
      expectError(res, 401, /controller key required/);
      assert.equal(res.headers['www-authenticate'], 'Bearer');
      assert.ok(!res.text.includes('Who can see this?'), 'a refusal never shows the text');
    }
  }
  // A key in the query string is not a key.
  expectError(await call(s.base, 'GET', `${base}/questions?key=${phone.controllerKey}`), 401);
  // Nothing the refused calls tried took effect.
  const l = await list(s, base, phone.controllerKey);
  assert.equal(l.open, true);
  assert.deepEqual(l.questions.map((q) => [q.text, q.status]), [['Who can see this?', 'pending']]);

  // The presenter's phone and the deck key's holder may do all of it.
  assert.deepEqual((await list(s, base, ch.deckKey)).questions.map((q) => q.id), [id]);
  assert.equal((await call(s.base, 'POST', `${base}/questions/${id}`, { status: 'shown' }, ch.deckKey)).status, 204);
  assert.equal((await call(s.base, 'PUT', `${base}/questions`, { open: false }, phone.controllerKey)).status, 204);
  assert.equal((await call(s.base, 'PUT', `${base}/questions`, { open: true }, ch.deckKey)).status, 204);
});

// ------------------------------------------------------------------ the public stream

test('the public stream carries only counts while a question waits, its text once shown, and null once dismissed', GUARD, async (t) => {
  const s = await start(t);
  const { phone, base, ch } = await talk(s);
  const st = await followerStream(t, s, ch.id);
  const secret = 'WaitingQuestionText7f3a';

  const id = asked(await ask(s, base, { text: secret }));
  assert.deepEqual(await nth(st, 'questions', 1), { open: true, pending: 1 });
  // A follower who joins now: the snapshot says one waits, and nothing more.
  const late = await followerStream(t, s, ch.id);
  const snap = (await nth(late, 'snapshot', 1)) as Snapshot;
  assert.deepEqual(snap.questions, { open: true, pending: 1 });
  assert.equal(snap.spotlight, null);
  // A reaction in between: on the stream by kind only.
  assert.equal((await react(s, base, { kind: 'clap' })).status, 204);
  assert.deepEqual(await nth(st, 'reaction', 1), { kind: 'clap' });
  assert.ok(!st.text().includes(secret) && !late.text().includes(secret), 'a waiting question never reaches the public stream');

  // Shown: the text goes out once, as the spotlight, and the count drops.
  assert.equal((await call(s.base, 'POST', `${base}/questions/${id}`, { status: 'shown' }, phone.controllerKey)).status, 204);
  assert.deepEqual(await nth(st, 'spotlight', 1), { question: { id, text: secret } });
  assert.deepEqual(await nth(st, 'questions', 2), { open: true, pending: 0 });
  // A follower joining while it is shown gets it in the snapshot.
  const later = await followerStream(t, s, ch.id);
  assert.deepEqual(((await nth(later, 'snapshot', 1)) as Snapshot).spotlight, { id, text: secret });

  // Another one waits while the first is on screen: still only a count.
  const second = 'SecondQuestionStaysPrivate';
  asked(await ask(s, base, { text: second }));
  assert.deepEqual(await nth(st, 'questions', 3), { open: true, pending: 1 });

  // Dismissed: the spotlight is cleared for everyone.
  assert.equal((await call(s.base, 'POST', `${base}/questions/${id}`, { status: 'dismissed' }, phone.controllerKey)).status, 204);
  assert.deepEqual(await nth(st, 'spotlight', 2), { question: null });
  assert.equal(((await nth(await followerStream(t, s, ch.id), 'snapshot', 1)) as Snapshot).spotlight, null);
  assert.equal(st.text().split(secret).length - 1, 1, 'the shown text went out exactly once');
  assert.ok(!st.text().includes(second), 'the second question never went out');

  // The presenter's list has both, with their fate.
  const l = await list(s, base, phone.controllerKey);
  assert.deepEqual(l.questions.map((q) => [q.text, q.status]), [[second, 'pending'], [secret, 'dismissed']]);
  assert.equal(l.pending, 1);
});

test('showing a second question replaces the first on screen; dismissing one that is not shown leaves the screen alone', GUARD, async (t) => {
  const s = await start(t);
  const { phone, base, ch } = await talk(s);
  const st = await followerStream(t, s, ch.id);
  const a = asked(await ask(s, base, { text: 'First?' }));
  const b = asked(await ask(s, base, { text: 'Second?' }));
  const key = phone.controllerKey;
  assert.equal((await call(s.base, 'POST', `${base}/questions/${a}`, { status: 'shown' }, key)).status, 204);
  assert.equal((await call(s.base, 'POST', `${base}/questions/${b}`, { status: 'shown' }, key)).status, 204);
  assert.deepEqual(await nth(st, 'spotlight', 2), { question: { id: b, text: 'Second?' } });
  assert.equal((await call(s.base, 'POST', `${base}/questions/${a}`, { status: 'dismissed' }, key)).status, 204);
  assert.deepEqual(await nth(st, 'spotlight', 3), { question: { id: b, text: 'Second?' } });
});

// ------------------------------------------------------------------ kept questions

test('the last 30 questions are kept and listed newest first; an older one is gone (404)', GUARD, async (t) => {
  const s = await start(t);
  const { phone, base } = await talk(s);
  const ids: string[] = [];
  for (let i = 1; i <= 35; i++) ids.push(asked(await ask(s, base, { text: `question ${i}` })));
  const l = await list(s, base, phone.controllerKey);
  assert.equal(l.questions.length, 30);
  assert.deepEqual(
    l.questions.map((q) => q.text),
    Array.from({ length: 30 }, (_, i) => `question ${35 - i}`),
  );
  assert.equal(l.pending, 30);
  // Question 1 fell off the end: it cannot be shown any more.
  expectError(await call(s.base, 'POST', `${base}/questions/${ids[0]}`, { status: 'shown' }, phone.controllerKey), 404, /no such question/);
  assert.equal((await call(s.base, 'POST', `${base}/questions/${ids[34]}`, { status: 'shown' }, phone.controllerKey)).status, 204);
});

test('an unknown question or channel is a JSON 404', GUARD, async (t) => {
  const s = await start(t);
  const { phone, base } = await talk(s);
  const key = phone.controllerKey;
  expectError(await call(s.base, 'POST', `${base}/questions/AAAAAAAAAAAA`, { status: 'shown' }, key), 404, /no such question/);
  expectError(await call(s.base, 'POST', `${base}/questions/not-an-id`, { status: 'shown' }, key), 404, /no such question/);
  expectError(await call(s.base, 'POST', `${base}/questions/${'A'.repeat(200)}`, { status: 'dismissed' }, key), 404);
  const nowhere = `/api/channels/${'A'.repeat(22)}`;
  expectError(await ask(s, nowhere, { text: 'Anyone there?' }), 404, /unknown channel/);
  expectError(await react(s, nowhere, { kind: 'clap' }), 404, /unknown channel/);
  expectError(await ask(s, '/api/channels/short', { text: 'Anyone there?' }), 404);
  expectError(await call(s.base, 'GET', `${nowhere}/questions`, undefined, key), 404);
  // Methods the routes do not have are a JSON 405 naming those they do.
  const del = await call(s.base, 'DELETE', `${base}/questions`, undefined, key);
  expectError(del, 405);
  assert.equal(del.headers.allow, 'GET, HEAD, POST, PUT');
  const get = await call(s.base, 'GET', `${base}/reactions`);
  expectError(get, 405);
  assert.equal(get.headers.allow, 'POST');
});

// ------------------------------------------------------------------ the off switch

test('with questions off, asking is 403 and nothing is kept or announced; reactions still flow; on again, asking works', GUARD, async (t) => {
  const s = await start(t);
  const { phone, base, ch } = await talk(s);
  const st = await followerStream(t, s, ch.id);
  assert.equal((await call(s.base, 'PUT', `${base}/questions`, { open: false }, phone.controllerKey)).status, 204);
  assert.deepEqual(await nth(st, 'questions', 1), { open: false, pending: 0 });
  // Late joiners are told too.
  assert.deepEqual(((await nth(await followerStream(t, s, ch.id), 'snapshot', 1)) as Snapshot).questions, { open: false, pending: 0 });

  expectError(await ask(s, base, { text: 'Can I still ask?' }), 403, /not taking questions/);
  const l = await list(s, base, phone.controllerKey);
  assert.equal(l.open, false);
  assert.deepEqual(l.questions, []);
  assert.equal((await react(s, base, { kind: 'thumbs' })).status, 204);
  await nth(st, 'reaction', 1);
  assert.equal(events(st.text()).filter((e) => e.event === 'questions').length, 1, 'the refused question announced nothing');

  assert.equal((await call(s.base, 'PUT', `${base}/questions`, { open: true }, phone.controllerKey)).status, 204);
  assert.deepEqual(await nth(st, 'questions', 2), { open: true, pending: 0 });
  asked(await ask(s, base, { text: 'Now?' }));
  assert.deepEqual(await nth(st, 'questions', 3), { open: true, pending: 1 });
});

// ------------------------------------------------------------------ rate limits

test('one follower may ask 3 questions a minute and react 10 times in 10 s; then 429 with Retry-After, while others carry on', GUARD, async (t) => {
  const s = await start(t, {});
  assert.equal(s.config.questionsPerMinute, 3);
  assert.equal(s.config.reactionsPer10s, 10);
  const { phone, base } = await talk(s);

  for (let i = 1; i <= 3; i++) asked(await ask(s, base, { text: `q${i}` }));
  const tooMany = await ask(s, base, { text: 'q4' });
  expectError(tooMany, 429, /too many questions/);
  assert.equal(tooMany.headers['retry-after'], '60');
  // Another follower is not held back by the first one's questions.
  asked(await ask(s, base, { text: 'from another phone' }, OTHER_IP));

  for (let i = 0; i < 10; i++) assert.equal((await react(s, base, { kind: 'clap' })).status, 204);
  const flood = await react(s, base, { kind: 'clap' });
  expectError(flood, 429, /too many reactions/);
  assert.equal(flood.headers['retry-after'], '10');
  assert.equal((await react(s, base, { kind: 'clap' }, OTHER_IP)).status, 204);

  // The limits are per channel: the same follower in another talk is a new follower there.
  const other = await talk(s);
  asked(await ask(s, other.base, { text: 'elsewhere' }));
  assert.equal((await react(s, other.base, { kind: 'question' })).status, 204);

  // The presenter is not rate-limited as a follower: the list and moderation still answer.
  const l = await list(s, base, phone.controllerKey);
  assert.deepEqual(l.questions.map((q) => q.text), ['from another phone', 'q3', 'q2', 'q1']);
});
