import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { bearer, channelIdFor, hashSecret, matchesHash, newSecret, sameHash } from './keys';

test('secrets are 32 base64url characters and do not repeat', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 1_000; i++) {
    const s = newSecret();
    assert.match(s, /^[A-Za-z0-9_-]{32}$/);
    seen.add(s);
  }
  assert.equal(seen.size, 1_000);
});

test('hashSecret is base64url SHA-256 of the UTF-8 secret', () => {
  assert.equal(hashSecret('abc'), createHash('sha256').update('abc').digest('base64url'));
  assert.equal(hashSecret('abc'), 'ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0');
  assert.equal(hashSecret('é'), createHash('sha256').update(Buffer.from('é', 'utf8')).digest('base64url'));
});

test('channelIdFor is deterministic, 22 characters, and not a prefix of the key hash', () => {
  const key = newSecret();
  assert.equal(channelIdFor(key), channelIdFor(key));
  assert.match(channelIdFor(key), /^[A-Za-z0-9_-]{22}$/);
  assert.notEqual(channelIdFor(key), channelIdFor(newSecret()));
  // Domain-separated, so the public id reveals nothing about the stored deck hash.
  assert.notEqual(channelIdFor(key), hashSecret(key).slice(0, 22));
});

test('matchesHash accepts the secret and nothing else', () => {
  const secret = newSecret();
  const stored = hashSecret(secret);
  assert.equal(matchesHash(secret, stored), true);
  assert.equal(matchesHash(newSecret(), stored), false);
  assert.equal(matchesHash(stored, stored), false);
  assert.equal(matchesHash(secret, stored.slice(0, 42)), false);
  assert.equal(matchesHash(secret, ''), false);
});

test('bearer reads only a well-formed Bearer header', () => {
  const key = 'A'.repeat(32);
  assert.equal(bearer(`Bearer ${key}`), key);
  assert.equal(bearer(`Bearer ${'a_-9'.repeat(4)}`), 'a_-9'.repeat(4));
  for (const bad of [undefined, '', key, `bearer ${key}`, `Basic ${key}`, `Bearer  ${key}`, `Bearer ${key} `, `Bearer ${'A'.repeat(15)}`, `Bearer ${'A'.repeat(129)}`, `Bearer ${'A'.repeat(31)}=`]) {
    assert.equal(bearer(bad), undefined, String(bad));
  }
  assert.equal(bearer(`Bearer ${'A'.repeat(128)}`), 'A'.repeat(128));
});

test('sameHash is true only for the same hash: a difference at any position, or any length, is false', () => {
  const h = hashSecret(newSecret());
  assert.equal(sameHash(h, `${h}`), true);
  for (let i = 0; i < h.length; i++) {
    const other = h.slice(0, i) + (h[i] === 'A' ? 'B' : 'A') + h.slice(i + 1);
    assert.equal(sameHash(h, other), false, `differs at ${i}`);
  }
  assert.equal(sameHash(h, h.slice(0, -1)), false);
  assert.equal(sameHash(h, `${h}A`), false);
  assert.equal(sameHash('', h), false);
  assert.equal(sameHash('', ''), true);
});
