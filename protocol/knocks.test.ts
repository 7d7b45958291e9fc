import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { KNOCK_FRESH_MS, KNOCKS_SHOWN, KnockQueue, SETTLE_MS } from './knocks';

const knock = (n: number, label = `Otter ${10 + n}`) => ({ hash: `h${n}`.padEnd(43, 'x'), label, device: 'Android · Chrome', ticket: `t${n}`.padEnd(43, 'x') });
const labels = (q: KnockQueue) => q.list().map((k) => `${k.slot}. ${k.label}`);

/** A queue on a clock the test moves; `later` moves it past the keys' settling time. */
function queue() {
  const clock = { now: 0 };
  let changes = 0;
  const q = new KnockQueue(() => changes++, () => clock.now);
  return { q, clock, changes: () => changes, later: () => (clock.now += SETTLE_MS + 1) };
}

test('waiting phones are listed first come first, once each however often they knock; past KNOCKS_SHOWN they wait for a place', () => {
  const { q, changes } = queue();
  q.add(knock(1));
  q.add(knock(2));
  q.add(knock(1));
  assert.deepEqual(labels(q), ['1. Otter 11', '2. Otter 12']);
  assert.equal(changes(), 2, 'a repeated knock changes nothing on screen');
  for (let i = 3; i < 10; i++) q.add(knock(i));
  assert.equal(q.list().length, KNOCKS_SHOWN);
  assert.equal(q.hidden(), 9 - KNOCKS_SHOWN);
  q.clear();
  assert.deepEqual(q.list(), []);
  assert.equal(q.hidden(), 0);
});

test('a row keeps its number while shown: one that leaves frees its number for the next in line, and the others do not move', () => {
  const { q } = queue();
  for (let i = 1; i <= 5; i++) q.add(knock(i));
  assert.deepEqual(labels(q), ['1. Otter 11', '2. Otter 12', '3. Otter 13', '4. Otter 14']);
  q.refuse(knock(1).hash);
  assert.deepEqual(labels(q), ['1. Otter 15', '2. Otter 12', '3. Otter 13', '4. Otter 14']);
  q.refuse(knock(3).hash);
  assert.deepEqual(labels(q), ['1. Otter 15', '2. Otter 12', '4. Otter 14']);
  q.clear();
});

test('anything that is not a knock is ignored', () => {
  const { q } = queue();
  for (const bad of [null, 1, 'x', {}, { hash: 'h', label: 2, device: '', ticket: '' }, { hash: 'h', label: 'L', device: 'd' }]) q.add(bad);
  assert.deepEqual(q.list(), []);
});

test('a refused phone is not shown again, however often it knocks; Esc refuses those shown, not those still waiting for a place', () => {
  const { q } = queue();
  q.add(knock(1));
  q.add(knock(2));
  q.refuse(knock(1).hash);
  q.add(knock(1));
  assert.deepEqual(labels(q), ['2. Otter 12']);
  for (let i = 3; i <= 7; i++) q.add(knock(i));
  assert.equal(q.hidden(), 2);
  q.refuseShown();
  // The two that were waiting for a place are shown now, never refused unseen.
  assert.deepEqual(labels(q), ['1. Otter 16', '2. Otter 17']);
  for (const n of [2, 3, 4, 5]) q.add(knock(n));
  assert.deepEqual(labels(q), ['1. Otter 16', '2. Otter 17'], 'the refused stay away');
  q.clear();
});

test('two waiting phones with one name: both are marked, and neither can be allowed from the keyboard', () => {
  const { q, later } = queue();
  q.add(knock(1, 'Kiwi 96'));
  q.add(knock(2, 'Kiwi 96'));
  q.add(knock(3, 'Lynx 40'));
  assert.deepEqual(
    q.list().map((k) => k.clash),
    [true, true, false],
  );
  later();
  assert.equal(q.keyAction('1', 'Digit1'), 'ignore');
  assert.equal(q.keyAction('2', 'Digit2'), 'ignore');
  assert.deepEqual(q.keyAction('3', 'Digit3'), { allow: q.list()[2] });
  q.refuse(knock(2).hash);
  later();
  assert.deepEqual(q.keyAction('1', 'Digit1'), { allow: q.list()[0] }, 'alone again with its name, it may be allowed');
  q.clear();
});

test('a row just arrived takes no key or click: a number pressed as it came picks nothing; the rows already settled still answer', () => {
  const { q, clock, later } = queue();
  q.add(knock(1));
  later();
  q.add(knock(2));
  assert.equal((q.keyAction('1', 'Digit1') as { allow: { hash: string } }).allow.hash, knock(1).hash, 'row 1 was there already');
  assert.equal(q.keyAction('2', 'Digit2'), 'ignore', 'row 2 has only just arrived');
  assert.equal(q.settled(knock(2).hash), false);
  assert.equal(q.keyAction('Escape'), 'ignore', 'Esc would refuse a row the presenter has not read');
  clock.now += 400;
  // A row arriving among the hidden ones (beyond KNOCKS_SHOWN) changes nothing shown: the shown rows keep answering.
  for (let i = 3; i <= 7; i++) q.add(knock(i));
  clock.now += 400;
  assert.equal((q.keyAction('2', 'Digit2') as { allow: { hash: string } }).allow.hash, knock(2).hash);
  assert.equal(q.settled(knock(7).hash), false, 'a hidden row is never chosen');
  q.clear();
});

test('keys: Enter allows the one phone shown and guesses nothing among several; a digit picks by number (by key position too); Escape refuses; nothing right after the list changed', () => {
  const { q, later } = queue();
  assert.equal(q.keyAction('Enter'), undefined, 'nothing waits: the key is not the card\'s');
  q.add(knock(1));
  assert.equal(q.keyAction('Enter'), 'ignore', 'the row has only just appeared');
  later();
  assert.equal((q.keyAction('Enter') as { allow: { hash: string } }).allow.hash, knock(1).hash);
  assert.equal((q.keyAction('1', 'Digit1') as { allow: { hash: string } }).allow.hash, knock(1).hash);
  // An AZERTY keyboard's 1 key gives "&" unshifted: its position still says 1.
  assert.equal((q.keyAction('&', 'Digit1') as { allow: { hash: string } }).allow.hash, knock(1).hash);
  assert.equal((q.keyAction('1', 'Numpad1') as { allow: { hash: string } }).allow.hash, knock(1).hash);
  // Num Lock off: the key says End, and picks nothing.
  assert.equal(q.keyAction('End', 'Numpad1'), undefined);
  assert.equal(q.keyAction('2', 'Digit2'), 'ignore');
  q.add(knock(2));
  later();
  assert.equal(q.keyAction('Enter'), 'ignore');
  assert.equal((q.keyAction('2', 'Digit2') as { allow: { hash: string } }).allow.hash, knock(2).hash);
  assert.equal(q.keyAction('Escape'), 'refuse');
  assert.equal(q.keyAction('ArrowRight', 'ArrowRight'), undefined, 'other keys still move the deck');
  q.clear();
});

test('a phone that stops knocking leaves the list', async () => {
  const { q, clock, changes } = queue();
  q.add(knock(1));
  q.add(knock(2));
  clock.now = KNOCK_FRESH_MS - 500;
  q.add(knock(2));
  clock.now = KNOCK_FRESH_MS + 100;
  // The sweep runs once a second.
  await sleep(1_200);
  assert.deepEqual(labels(q), ['2. Otter 12']);
  clock.now = 2 * KNOCK_FRESH_MS;
  await sleep(1_200);
  assert.deepEqual(q.list(), []);
  assert.equal(changes(), 4);
});

test('each refusal is told to the server with its knock; a refused phone that knocks again is told again (the server forgot it), and never shown', () => {
  const told: string[] = [];
  const q = new KnockQueue(() => undefined, () => 0, (k) => told.push(`${k.hash.slice(0, 2)}:${k.ticket.slice(0, 2)}`));
  for (let i = 1; i <= 6; i++) q.add(knock(i));
  q.refuse(knock(2).hash);
  assert.deepEqual(told, ['h2:t2']);
  // Esc: the four shown (1, 3, 4, and 5 in 2's place), not the one still waiting for a place.
  q.refuseShown();
  assert.deepEqual(told.sort(), ['h1:t1', 'h2:t2', 'h3:t3', 'h4:t4', 'h5:t5']);
  assert.deepEqual(labels(q), ['1. Otter 16']);
  told.length = 0;
  q.add(knock(3));
  assert.deepEqual(told, ['h3:t3']);
  assert.deepEqual(labels(q), ['1. Otter 16']);
  // Refusing a phone not waiting tells nobody: there is no knock to prove it knocked.
  q.refuse(knock(9).hash);
  assert.deepEqual(told, ['h3:t3']);
  q.clear();
});
