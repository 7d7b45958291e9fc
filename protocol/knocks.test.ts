import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { KNOCK_FRESH_MS, KNOCKS_SHOWN, KnockQueue } from './knocks';

const knock = (n: number) => ({ hash: `h${n}`.padEnd(43, 'x'), label: `Otter ${10 + n}`, device: 'Android · Chrome' });

test('waiting phones are listed first come first, once each however often they knock, at most KNOCKS_SHOWN', () => {
  let changes = 0;
  const q = new KnockQueue(() => changes++);
  q.add(knock(1));
  q.add(knock(2));
  q.add(knock(1));
  assert.deepEqual(q.list().map((k) => k.label), ['Otter 11', 'Otter 12']);
  assert.equal(changes, 2, 'a repeated knock changes nothing on screen');
  for (let i = 3; i < 10; i++) q.add(knock(i));
  assert.equal(q.list().length, KNOCKS_SHOWN);
  assert.equal(q.list()[0]!.label, 'Otter 11');
  q.clear();
  assert.deepEqual(q.list(), []);
});

test('anything that is not a knock is ignored', () => {
  const q = new KnockQueue(() => undefined);
  for (const bad of [null, 1, 'x', {}, { hash: 'h', label: 2, device: '' }, { hash: 'h', label: 'L' }]) q.add(bad);
  assert.deepEqual(q.list(), []);
});

test('a refused phone is not shown again, however often it knocks; Esc refuses every phone shown', () => {
  const q = new KnockQueue(() => undefined);
  q.add(knock(1));
  q.add(knock(2));
  q.refuse(knock(1).hash);
  q.add(knock(1));
  assert.deepEqual(q.list().map((k) => k.label), ['Otter 12']);
  q.refuseAll();
  q.add(knock(2));
  q.add(knock(1));
  assert.deepEqual(q.list(), []);
  q.add(knock(3));
  assert.deepEqual(q.list().map((k) => k.label), ['Otter 13'], 'a new phone still gets through');
  q.clear();
});

test('a phone that stops knocking leaves the list', async () => {
  let now = 0;
  let changes = 0;
  const q = new KnockQueue(() => changes++, () => now);
  q.add(knock(1));
  q.add(knock(2));
  now = KNOCK_FRESH_MS - 500;
  q.add(knock(2));
  now = KNOCK_FRESH_MS + 100;
  // The sweep runs once a second.
  await sleep(1_200);
  assert.deepEqual(q.list().map((k) => k.label), ['Otter 12']);
  now = 2 * KNOCK_FRESH_MS;
  await sleep(1_200);
  assert.deepEqual(q.list(), []);
  assert.equal(changes, 4);
});

test('keys: Enter allows the one waiting phone and guesses nothing among several; a digit picks by number; Escape refuses', () => {
  const q = new KnockQueue(() => undefined);
  assert.equal(q.keyAction('Enter'), undefined, 'nothing waits: the key is not the card\'s');
  q.add(knock(1));
  assert.deepEqual(q.keyAction('Enter'), { allow: knock(1).hash });
  assert.deepEqual(q.keyAction('1'), { allow: knock(1).hash });
  assert.equal(q.keyAction('2'), 'ignore');
  q.add(knock(2));
  assert.equal(q.keyAction('Enter'), 'ignore');
  assert.deepEqual(q.keyAction('2'), { allow: knock(2).hash });
  assert.equal(q.keyAction('Escape'), 'refuse');
  assert.equal(q.keyAction('ArrowRight'), undefined, 'other keys still move the deck');
  q.clear();
});
