import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Command,
  COMMAND_TYPES,
  CommandId,
  DeckState,
  ID_RE,
  PairRequest,
  MAX_REGISTERED_EVENT_ID,
  Register,
  SlideRef,
  StateReport,
  type Command as CommandT,
} from './messages';
import { canStep, fitOutline, OUTLINE_BYTES } from './wire';
import { DEFAULTS } from '../server/config';

const ID = 'cmd-0001';

const goodState: DeckState = {
  indexh: 2,
  indexv: 0,
  indexf: -1,
  fragments: 3,
  paused: false,
  position: 3,
  total: 12,
  isFirst: false,
  isLast: false,
  title: 'Why SSE',
  notes: 'Line one\n\tindented line two',
  nextTitle: 'Framing',
};

/** The message of zod's first complaint, or undefined when the input passed. */
function firstIssue(schema: { safeParse(v: unknown): { success: boolean; error?: { issues: { message: string }[] } } }, v: unknown) {
  const r = schema.safeParse(v);
  return r.success ? undefined : (r.error?.issues[0]?.message ?? 'failed without an issue');
}

// ------------------------------------------------------------------ commands

test('every command type is accepted and parses to itself', () => {
  const samples: CommandT[] = [
    { type: 'next', id: ID },
    { type: 'prev', id: ID },
    { type: 'first', id: ID },
    { type: 'last', id: ID },
    { type: 'goto', id: ID, h: 3, v: 1, f: 2 },
    { type: 'pause', id: ID, on: true },
  ];
  for (const cmd of samples) assert.deepEqual(Command.parse(cmd), cmd, cmd.type);
  assert.deepEqual(
    samples.map((c) => c.type),
    [...COMMAND_TYPES],
  );
});

test('COMMAND_TYPES lists exactly the schema variants', () => {
  const variants = Command.options.map((o) => o.shape.type.value);
  assert.deepEqual([...variants].sort(), [...COMMAND_TYPES].sort());
});

test('goto defaults v to 0 and leaves f out; pause without `on` toggles', () => {
  assert.deepEqual(Command.parse({ type: 'goto', id: ID, h: 4 }), { type: 'goto', id: ID, h: 4, v: 0 });
  assert.deepEqual(Command.parse({ type: 'pause', id: ID }), { type: 'pause', id: ID });
  assert.deepEqual(Command.parse({ type: 'goto', id: ID, h: 0, v: 0, f: -1 }), { type: 'goto', id: ID, h: 0, v: 0, f: -1 });
});

test('an unknown or missing command type is rejected', () => {
  for (const bad of [
    { type: 'reload', id: ID },
    { type: 'toggleOverview', id: ID },
    { type: 'NEXT', id: ID },
    { type: '', id: ID },
    { id: ID },
    { type: 1, id: ID },
  ]) {
    assert.equal(Command.safeParse(bad).success, false, JSON.stringify(bad));
  }
});

test('non-objects are rejected', () => {
  for (const bad of [null, undefined, 'next', 42, [], [{ type: 'next', id: ID }]]) {
    assert.equal(Command.safeParse(bad).success, false, JSON.stringify(bad));
  }
});

test('an unknown extra field is rejected on every command type', () => {
  for (const type of COMMAND_TYPES) {
    const base = type === 'goto' ? { type, id: ID, h: 1 } : { type, id: ID };
    for (const extra of [{ method: 'slide' }, { args: [1] }, { __proto__x: 1 }, { H: 1 }]) {
      const r = Command.safeParse({ ...base, ...extra });
      assert.equal(r.success, false, `${type} + ${JSON.stringify(extra)}`);
    }
  }
  assert.match(firstIssue(Command, { type: 'next', id: ID, method: 'slide' }) ?? '', /unrecognized/i);
});

test('command ids: 8 to 64 characters of A-Z a-z 0-9 _ -', () => {
  for (const ok of ['abcdefgh', 'A'.repeat(64), 'a_b-c_D9', '00000000']) {
    assert.equal(CommandId.safeParse(ok).success, true, ok);
    assert.equal(Command.safeParse({ type: 'next', id: ok }).success, true, ok);
  }
  for (const bad of ['abcdefg', 'A'.repeat(65), 'has space1', 'dots.are.out', 'slash/1234', 'ünicode12', 'line\nbreak1', '']) {
    assert.equal(CommandId.safeParse(bad).success, false, JSON.stringify(bad));
    assert.equal(Command.safeParse({ type: 'next', id: bad }).success, false, JSON.stringify(bad));
  }
  assert.equal(Command.safeParse({ type: 'next', id: 12345678 }).success, false);
  assert.equal(Command.safeParse({ type: 'next' }).success, false);
});

test('goto indexes must be integers in range', () => {
  const ok = (extra: Record<string, unknown>) => Command.safeParse({ type: 'goto', id: ID, h: 0, ...extra }).success;
  assert.equal(ok({ h: 10_000, v: 10_000, f: 1_000 }), true);
  assert.equal(ok({ h: -1 }), false);
  assert.equal(ok({ h: 10_001 }), false);
  assert.equal(ok({ h: 1.5 }), false);
  assert.equal(ok({ h: '1' }), false);
  assert.equal(ok({ h: Number.NaN }), false);
  assert.equal(ok({ h: Number.POSITIVE_INFINITY }), false);
  assert.equal(ok({ v: -1 }), false);
  assert.equal(ok({ v: 10_001 }), false);
  assert.equal(ok({ f: -2 }), false);
  assert.equal(ok({ f: 1_001 }), false);
  assert.equal(ok({ f: 0.5 }), false);
  assert.equal(Command.safeParse({ type: 'goto', id: ID }).success, false, 'h is required');
});

test('pause.on must be a boolean', () => {
  assert.equal(Command.safeParse({ type: 'pause', id: ID, on: false }).success, true);
  assert.equal(Command.safeParse({ type: 'pause', id: ID, on: 'true' }).success, false);
  assert.equal(Command.safeParse({ type: 'pause', id: ID, on: 1 }).success, false);
});

// ------------------------------------------------------------------ state reports

test('a full state report is accepted unchanged', () => {
  const report = { state: goodState, cause: ID, slides: [{ h: 0, v: 0, title: 'Intro' }] };
  assert.deepEqual(StateReport.parse(report), report);
  assert.deepEqual(StateReport.parse({ state: goodState }), { state: goodState });
});

test('tab and newline are allowed in notes, not in titles; other control characters nowhere', () => {
  assert.equal(DeckState.safeParse({ ...goodState, notes: 'a\tb\nc' }).success, true);
  for (const ch of ['\u0000', '\u0001', '\u0008', '\u000B', '\u000C', '\r', '\u001B', '\u001F', '\u007F']) {
    for (const field of ['title', 'notes', 'nextTitle'] as const) {
      const r = DeckState.safeParse({ ...goodState, [field]: `x${ch}y` });
      assert.equal(r.success, false, `${field} with U+${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
    }
    assert.equal(SlideRef.safeParse({ h: 0, v: 0, title: `t${ch}` }).success, false);
  }
  assert.equal(firstIssue(DeckState, { ...goodState, notes: 'a\rb' }), 'control characters are not allowed');
  // A title is one line: tab and newline are refused there too.
  for (const ch of ['\t', '\n']) {
    assert.equal(DeckState.safeParse({ ...goodState, title: `a${ch}b` }).success, false);
    assert.equal(DeckState.safeParse({ ...goodState, nextTitle: `a${ch}b` }).success, false);
    assert.equal(SlideRef.safeParse({ h: 0, v: 0, title: `a${ch}b` }).success, false);
  }
  assert.equal(firstIssue(DeckState, { ...goodState, title: 'a\nb' }), 'a title is one line, without control characters');
});

test('text length caps: titles 200, notes 8000', () => {
  assert.equal(DeckState.safeParse({ ...goodState, title: 'x'.repeat(200) }).success, true);
  assert.equal(DeckState.safeParse({ ...goodState, title: 'x'.repeat(201) }).success, false);
  assert.equal(DeckState.safeParse({ ...goodState, nextTitle: 'x'.repeat(201) }).success, false);
  assert.equal(DeckState.safeParse({ ...goodState, notes: 'x'.repeat(8_000) }).success, true);
  assert.equal(DeckState.safeParse({ ...goodState, notes: 'x'.repeat(8_001) }).success, false);
});

test('deck state fields are all required, typed and ranged', () => {
  for (const key of Object.keys(goodState) as (keyof DeckState)[]) {
    const { [key]: _dropped, ...rest } = goodState;
    assert.equal(DeckState.safeParse(rest).success, false, `missing ${key}`);
  }
  const bad: Partial<Record<keyof DeckState, unknown>>[] = [
    { indexh: -1 },
    { indexv: 10_001 },
    { indexf: -2 },
    { fragments: -1 },
    { position: 0 },
    { total: 0 },
    { total: 10_001 },
    { paused: 'no' },
    { isFirst: 0 },
    { title: 5 },
  ];
  for (const b of bad) assert.equal(DeckState.safeParse({ ...goodState, ...b }).success, false, JSON.stringify(b));
  assert.equal(DeckState.safeParse({ ...goodState, extra: 1 }).success, false, 'unknown field');
});

test('state report: bad cause, unknown field, oversized outline are rejected', () => {
  assert.equal(StateReport.safeParse({ state: goodState, cause: 'short' }).success, false);
  assert.equal(StateReport.safeParse({ state: goodState, who: 'me' }).success, false);
  assert.equal(StateReport.safeParse({}).success, false);
  assert.equal(StateReport.safeParse({ state: { ...goodState, extra: true } }).success, false);
  const slide = { h: 0, v: 0, title: 's' };
  assert.equal(StateReport.safeParse({ state: goodState, slides: Array.from({ length: 1_000 }, () => slide) }).success, true);
  assert.equal(StateReport.safeParse({ state: goodState, slides: Array.from({ length: 1_001 }, () => slide) }).success, false);
  assert.equal(StateReport.safeParse({ state: goodState, slides: [{ ...slide, notes: 'x' }] }).success, false);
  assert.equal(StateReport.safeParse({ state: goodState, slides: [{ h: 0, title: 's' }] }).success, false);
});

// ------------------------------------------------------------------ pairing and registration

test('pair request: a 16-64 character code and nothing else', () => {
  assert.deepEqual(PairRequest.parse({ code: 'a'.repeat(16) }), { code: 'a'.repeat(16) });
  assert.equal(PairRequest.safeParse({ code: 'Z_-9'.repeat(16) }).success, true);
  for (const bad of [
    { code: 'a'.repeat(15) },
    { code: 'a'.repeat(65) },
    { code: 'a'.repeat(15) + '!' },
    { code: 12345678901234567 },
    {},
    { code: 'a'.repeat(32), key: 'x' },
  ]) {
    assert.equal(PairRequest.safeParse(bad).success, false, JSON.stringify(bad));
  }
});

test('register: an empty body gets defaults', () => {
  assert.deepEqual(Register.parse({}), { controllers: [], lastEventId: 0 });
});

test('register: accepts controller hashes, a last event id and a report', () => {
  const hash = 'A'.repeat(43);
  const body = { controllers: [hash, 'b_-'.repeat(14) + 'c'], lastEventId: 41, report: { state: goodState } };
  assert.deepEqual(Register.parse(body), body);
  assert.equal(Register.safeParse({ lastEventId: MAX_REGISTERED_EVENT_ID }).success, true);
  assert.equal(Register.safeParse({ lastEventId: MAX_REGISTERED_EVENT_ID + 1 }).success, false);
  assert.equal(Register.safeParse({ controllers: Array.from({ length: 16 }, () => hash) }).success, true);
});

test('register: rejects bad hashes, too many controllers, bad ids, bad reports and unknown fields', () => {
  for (const bad of [
    { controllers: ['A'.repeat(42)] },
    { controllers: ['A'.repeat(44)] },
    { controllers: ['A'.repeat(42) + '='] },
    { controllers: Array.from({ length: 17 }, () => 'A'.repeat(43)) },
    { controllers: 'A'.repeat(43) },
    { lastEventId: -1 },
    { lastEventId: 1.5 },
    { lastEventId: '3' },
    { lastEventId: Number.MAX_SAFE_INTEGER + 1 },
    { report: { state: { ...goodState, title: 'a\u0000' } } },
    { deckKey: 'x' },
  ]) {
    assert.equal(Register.safeParse(bad).success, false, JSON.stringify(bad).slice(0, 80));
  }
});

test('ID_RE: exactly 22 base64url characters', () => {
  assert.equal(ID_RE.test('abcdefghijklmnopqrstu_'), true);
  assert.equal(ID_RE.test('abcdefghijklmnopqrstu'), false);
  assert.equal(ID_RE.test('abcdefghijklmnopqrstuvw'), false);
  assert.equal(ID_RE.test('abcdefghijklmnopqrstu.'), false);
});

test('fitOutline leaves an outline that fits as it is, and cuts the longest titles of one that does not until it is within OUTLINE_BYTES', () => {
  const bytes = (refs: SlideRef[]) => new TextEncoder().encode(JSON.stringify(refs)).length;
  const short = Array.from({ length: 50 }, (_v, h) => ({ h, v: 0, title: `Slide ${h + 1}` }));
  assert.equal(fitOutline(short), short);
  // A thousand slides of 200-character titles, some in a script of three bytes a character, and one of emoji (two UTF-16 units each).
  const long = Array.from({ length: 1_000 }, (_v, h) => ({ h, v: 0, title: (h % 3 === 0 ? '漢字の題名' : h % 3 === 1 ? '🦉' : `Slide ${h + 1} `).repeat(100).slice(0, 200) }));
  assert.ok(bytes(long) > OUTLINE_BYTES);
  const fitted = fitOutline(long);
  assert.ok(bytes(fitted) <= OUTLINE_BYTES, `${bytes(fitted)} bytes`);
  assert.equal(fitted.length, long.length);
  for (const [i, r] of fitted.entries()) {
    assert.deepEqual([r.h, r.v], [long[i]!.h, long[i]!.v]);
    assert.ok(r.title.endsWith('…'));
    assert.ok(long[i]!.title.startsWith(r.title.slice(0, -1)), 'a beginning of the title');
    assert.ok(!/[\uD800-\uDFFF]/.test(r.title.replace(/\uD83E\uDD89/g, '')), 'no half of an emoji');
    assert.ok([...r.title].length >= 12);
  }
  // What the server takes: the schema holds, and a whole report with the longest notes stays under the cap.
  assert.equal(StateReport.safeParse({ state: { ...goodState, title: '漢'.repeat(200), nextTitle: '漢'.repeat(200), notes: '漢'.repeat(8_000) }, slides: fitted }).success, true);
  assert.ok(new TextEncoder().encode(JSON.stringify({ state: { ...goodState, title: '漢'.repeat(200), nextTitle: '漢'.repeat(200), notes: '漢'.repeat(8_000) }, slides: fitted })).length <= DEFAULTS.maxStateBytes);
});

test('canStep: Next and Previous stop at the ends of the deck, except during a blackout, where both bring the slide back', () => {
  const at = (isFirst: boolean, isLast: boolean, paused: boolean) => ({ isFirst, isLast, paused });
  assert.equal(canStep(at(true, false, false), 'prev'), false);
  assert.equal(canStep(at(true, false, false), 'next'), true);
  assert.equal(canStep(at(false, true, false), 'next'), false);
  assert.equal(canStep(at(false, true, false), 'prev'), true);
  assert.equal(canStep(at(true, true, true), 'next'), true);
  assert.equal(canStep(at(true, true, true), 'prev'), true);
  // Before the first report the phone does not know: it lets the tap go, and the slideshow decides.
  assert.equal(canStep(null, 'next'), true);
});
