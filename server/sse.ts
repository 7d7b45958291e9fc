// SSE framing as small pure functions. The hub encodes each event once per
// publish and writes the same bytes to every subscriber, so these run once per
// event, never once per delivery.
//
// `event` and `id` are single-line fields: a CR or LF in them would let a
// value end its own line and inject fields, and a NUL in `id` makes a browser
// ignore the field. They are rejected outright rather than cleaned, because
// the values come from our own code and a bad one is a bug.

export interface SseEvent {
  /** Event name; absent means the default "message". */
  event?: string;
  /** Event id, remembered by the browser and sent back as Last-Event-ID. */
  id?: string | number;
  /** Payload; each line becomes one `data:` field. */
  data: string;
  /** Reconnection delay hint in milliseconds. */
  retry?: number;
}

const LINE_BREAK_OR_NUL = /[\r\n\0]/;

export class SseFieldError extends Error {}

function checkField(name: string, value: string): string {
  if (LINE_BREAK_OR_NUL.test(value)) throw new SseFieldError(`SSE ${name} must not contain CR, LF or NUL`);
  return value;
}

/** Frames one event as `text/event-stream` text, ending with the blank line. */
export function formatEvent(ev: SseEvent): string {
  let out = '';
  if (ev.retry !== undefined) {
    if (!Number.isSafeInteger(ev.retry) || ev.retry < 0) throw new SseFieldError('SSE retry must be a non-negative integer');
    out += `retry: ${ev.retry}\n`;
  }
  // A number needs no check: its digits can hold no line break.
  if (ev.id !== undefined) out += `id: ${typeof ev.id === 'number' ? ev.id : checkField('id', ev.id)}\n`;
  if (ev.event !== undefined) out += `event: ${checkField('event', ev.event)}\n`;
  // The usual data, one line of JSON, is written as it is. Otherwise CRLF, CR
  // and LF all end a line in SSE, so each becomes its own data line, and a NUL
  // (legal for the parser but never meaningful here) becomes U+FFFD.
  if (!LINE_BREAK_OR_NUL.test(ev.data)) return `${out}data: ${ev.data}\n\n`;
  for (const line of ev.data.replace(/\0/g, '\uFFFD').split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return out + '\n';
}

/** Frames a comment line, used for heartbeats; ignored by EventSource. */
export function formatComment(text = ''): string {
  return text === '' ? ':\n\n' : `: ${checkField('comment', text)}\n\n`;
}

/** Encodes once, for writing the same Buffer to many sockets. */
export function encodeEvent(ev: SseEvent): Buffer {
  return Buffer.from(formatEvent(ev), 'utf8');
}

/**
 * Reads the id a reconnecting client resumes from: the Last-Event-ID header
 * that EventSource sends, or a query parameter for clients that cannot set
 * headers. Anything that is not a plain non-negative integer is treated as
 * unknown (the caller answers with a snapshot and a gap flag).
 */
export function parseLastEventId(header: string | undefined, query: unknown): number | 'unknown' | undefined {
  const raw = header ?? (typeof query === 'string' ? query : undefined);
  if (raw === undefined || raw === '') return undefined;
  // 15 digits stay exact as a number; a channel's ids never reach them (MAX_REGISTERED_EVENT_ID).
  if (!/^\d{1,15}$/.test(raw)) return 'unknown';
  return Number(raw);
}

/** Response headers of every stream. */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  // no-transform keeps proxies and compressors from buffering the stream.
  'Cache-Control': 'no-cache, no-transform',
  Connection: 'keep-alive',
  // nginx buffers proxied responses by default; this header turns it off per response.
  'X-Accel-Buffering': 'no',
};
