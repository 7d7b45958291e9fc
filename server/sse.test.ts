import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeEvent, formatComment, formatEvent, parseLastEventId, SseFieldError } from './sse';

test('frames an event with id, name and data, ending in a blank line', () => {
  assert.equal(formatEvent({ id: 7, event: 'state', data: '{"a":1}' }), 'id: 7\nevent: state\ndata: {"a":1}\n\n');
});

test('puts retry first and omits absent fields', () => {
  assert.equal(formatEvent({ retry: 1500, data: 'x' }), 'retry: 1500\ndata: x\n\n');
});

test('splits CRLF, CR and LF in data into separate data lines', () => {
  assert.equal(formatEvent({ data: 'a\r\nb\rc\nd' }), 'data: a\ndata: b\ndata: c\ndata: d\n\n');
});

test('an empty payload is still one data line', () => {
  assert.equal(formatEvent({ data: '' }), 'data: \n\n');
});

test('NUL in data is replaced, never written', () => {
  assert.equal(formatEvent({ data: 'a\0b' }), 'data: a\uFFFDb\n\n');
});

for (const bad of ['a\nb', 'a\rb', 'a\0b']) {
  test(`rejects ${JSON.stringify(bad)} in event and id`, () => {
    assert.throws(() => formatEvent({ event: bad, data: '' }), SseFieldError);
    assert.throws(() => formatEvent({ id: bad, data: '' }), SseFieldError);
  });
}

test('rejects a negative or fractional retry', () => {
  assert.throws(() => formatEvent({ retry: -1, data: '' }), SseFieldError);
  assert.throws(() => formatEvent({ retry: 1.5, data: '' }), SseFieldError);
});

test('comments', () => {
  assert.equal(formatComment(), ':\n\n');
  assert.equal(formatComment('hi'), ': hi\n\n');
  assert.throws(() => formatComment('a\nb'), SseFieldError);
});

test('encodeEvent gives the UTF-8 bytes of formatEvent', () => {
  const buf = encodeEvent({ id: 1, data: 'é' });
  assert.deepEqual(buf, Buffer.from('id: 1\ndata: é\n\n', 'utf8'));
});

test('parseLastEventId prefers the header and flags junk as unknown', () => {
  assert.equal(parseLastEventId('12', '3'), 12);
  assert.equal(parseLastEventId(undefined, '3'), 3);
  assert.equal(parseLastEventId(undefined, undefined), undefined);
  assert.equal(parseLastEventId('', undefined), undefined);
  assert.equal(parseLastEventId('abc', undefined), 'unknown');
  assert.equal(parseLastEventId('-1', undefined), 'unknown');
  assert.equal(parseLastEventId(undefined, ['1', '2']), undefined);
});
