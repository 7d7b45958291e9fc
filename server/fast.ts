// The hot paths, without Express: opening a stream (every phone, every
// follower), posting a command (every tap) and pointer positions. Express adds
// routing, a re-prototyped request and response, and a dozen headers per
// answer: measurable per tap and, held for the life of every stream, in
// memory per follower. The routes answer through an `Exchange`, so the same
// code serves requests read by the raw front (raw-http.ts, the usual case)
// and by node:http (connections the raw front handed over). The checks are
// the same guards the Express routes use (guards.ts), and errors have the
// same JSON shape.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ipKeyGenerator } from 'express-rate-limit';
import proxyaddr from 'proxy-addr';
import { Command, EventFilter, ID_RE, Pointer } from '../protocol/messages';
import type { Config } from './config';
import { controllerKeyRequired, HttpError, NOT_AN_OBJECT, toHttpError } from './errors';
import { checkJsonBody, checkOrigin, corsHeaders, preflight, validate, type RequestHead } from './guards';
import type { ChannelHead, ChannelRecord } from './bus';
import type { Hub, KeyHolder, PublishResult, Sink } from './hub';
import type { Exchange, RawRoutes } from './raw-http';
import { bearer, hashSecret, sameHash, streamTokenFor } from './keys';
import { parseLastEventId, SSE_HEADERS } from './sse';

/** Whose stream token `token` is: the channel's deck key's, one of its controllers' keys', or nobody's (false). */
function keyHolderOf(channel: Pick<ChannelHead, 'deckHash' | 'controllers'>, token: string): KeyHolder | false {
  if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return false;
  const deck = sameHash(token, streamTokenFor(channel.deckHash));
  // Every hash compared, whichever matches: the time taken says nothing about which.
  let controller: string | undefined;
  for (const hash of channel.controllers) if (sameHash(token, streamTokenFor(hash))) controller = hash;
  return deck ? { deck: true, hash: channel.deckHash } : controller !== undefined ? { deck: false, hash: controller } : false;
}

// An absolute-form target (`http://host/api/…`, which HTTP/1.1 servers must accept) routes by its path, as Express routes it.
const ROUTE = /^(?:[Hh][Tt][Tt][Pp][Ss]?:\/\/[^/?#]*)?\/api\/channels\/([^/?]*)\/(events|commands|pointer)(?:\?(.*))?$/;

/** Pointer updates per controller: a 60 Hz finger with room for bursts; more is refused with 429. */
const POINTER_RATE = { perSecond: 90, burst: 45 };

/** The CORS headers of a same-origin request, or of one from a program: none. */
const NO_CORS: Readonly<Record<string, string>> = Object.freeze({});

/** Headers on every JSON answer of the hot paths. */
const JSON_HEADERS = {
  'Content-Type': 'application/json; charset=utf-8',
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
};

/** A complete JSON answer with the hot paths' headers. */
function sendJson(ex: Exchange, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  const text = JSON.stringify(body);
  ex.send(status, { ...JSON_HEADERS, ...headers, 'Content-Length': Buffer.byteLength(text) }, text);
}

/**
 * The node:http side of an exchange, for a connection node:http owns. A
 * stream's writes still go straight to its socket: the response is delimited
 * by the connection's end (no chunked framing), so each event is one socket
 * write of the Buffer the hub framed once for everybody.
 */
function nodeExchange(req: IncomingMessage, res: ServerResponse): Exchange {
  return {
    head: req,
    req,
    body: (limit) => readBody(req, limit),
    // node:http streams the body in after the head.
    bodyNow: () => undefined,
    send(status, headers, body) {
      res.writeHead(status, headers);
      res.end(body);
    },
    openStream(headers) {
      res.useChunkedEncodingByDefault = false;
      // The body ends with the connection: say so, as the raw path does (node:http would say keep-alive).
      res.writeHead(200, { ...headers, Connection: 'close' });
      res.flushHeaders();
      const socket = res.socket;
      // No Nagle: on the socket now, or, for an answer pipelined behind another (it has no socket
      // yet, and node:http holds its writes until it has), once it comes. A connection node:http
      // got from the raw front is a tunnel (a Duplex, no Nagle to turn off: its socket has none already).
      const noDelay = (s: Socket) => {
        if (typeof s.setNoDelay === 'function') s.setNoDelay(true);
      };
      if (socket) noDelay(socket);
      else res.once('socket', noDelay);
      // Straight to the socket, unless a pipelined answer ahead of this one still holds it.
      const own = socket ?? res;
      return {
        write: socket && res.writableLength === socket.writableLength ? (chunk) => socket.write(chunk) : (chunk) => res.write(chunk),
        end: () => res.end(),
        destroy: () => own.destroy(),
        get writableLength() {
          return own.writableLength;
        },
      };
    },
    onClose(fn) {
      // A response pipelined behind another has no socket yet, and node:http
      // never closes it if the client leaves meanwhile: the connection's own
      // close says so. The listener goes with the response.
      const socket = req.socket;
      if (socket.destroyed) return void fn();
      socket.once('close', fn);
      res.once('close', () => {
        socket.off('close', fn);
        fn();
      });
    },
    get answered() {
      return res.headersSent;
    },
    destroy: () => res.destroy(),
  };
}

/** Reads a body of at most `limit` bytes from node:http; a RangeError past it. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (Number(req.headers['content-length']) > limit) {
      reject(new RangeError('body over the limit'));
      return;
    }
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new RangeError('body over the limit'));
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      parts.push(chunk);
    });
    req.on('end', () => {
      if (size <= limit) resolve(Buffer.concat(parts, size));
    });
    req.on('error', () => reject(new HttpError(400, 'request aborted')));
  });
}

/** 413 for a body over the limit; any other failure as it is. */
const bodyError = (err: unknown): unknown => (err instanceof RangeError ? new HttpError(413, 'request body too large') : err);

/** The methods the two hot routes take (OPTIONS aside): a stream's, and the commands'. */
const EVENTS_METHODS = 'GET, HEAD';
const COMMANDS_METHODS = 'POST';

/** Whether the body starts with UTF-8's byte order mark, which JSON.parse refuses and Express's body-parser drops. */
const hasBom = (bytes: Buffer): boolean => bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;

/** A JSON body's value; 400 if it is not JSON or not an object (or array), undefined when empty. A leading byte order mark is dropped, as the Express routes do. */
function parseJson(raw: Buffer): unknown {
  const bytes = hasBom(raw) ? raw.subarray(3) : raw;
  if (bytes.length === 0) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new HttpError(400, 'malformed JSON');
  }
  // As the Express routes' strict parser: an array goes on to the schema, which says what it wants.
  if (typeof value !== 'object' || value === null) throw new HttpError(400, NOT_AN_OBJECT);
  return value;
}

/** Reads a JSON body of at most `limit` bytes; 413 past it, 400 if it is not JSON. */
async function readJson(ex: Exchange, limit: number): Promise<unknown> {
  let bytes: Buffer;
  try {
    bytes = await ex.body(limit);
  } catch (err) {
    throw bodyError(err);
  }
  return parseJson(bytes);
}

/** The body at once if it came with the head (see Exchange.bodyNow); 413 past the limit. */
function bodyNow(ex: Exchange, limit: number): Buffer | undefined {
  try {
    return ex.bodyNow(limit);
  } catch (err) {
    throw bodyError(err);
  }
}

export interface HotDeps {
  config: Config;
  hub: Hub;
  /** Origins configured with --allow-origin, for CORS. */
  allowedOrigins: ReadonlySet<string>;
  /** Whether a browser origin other than the page's own may write. */
  originAllowed: (req: IncomingMessage, origin: string) => boolean;
  log: (line: string) => void;
}

/** The hot routes, for both fronts: node:http's request listener and the raw path (raw-http.ts). */
export interface HotRoutes extends RawRoutes<RegExpExecArray> {
  /** Answers a hot route on node:http and returns true, or returns false for Express to handle the request. */
  node(req: IncomingMessage, res: ServerResponse): boolean;
}

export function createHotRoutes({ config, hub, allowedOrigins, originAllowed, log }: HotDeps): HotRoutes {
  // The same trust rule as Express's `trust proxy` setting in app.ts.
  const trust = proxyaddr.compile(config.trustProxy ? [...config.trustedProxies] : []);

  const fail = (ex: Exchange, cors: Readonly<Record<string, string>>, err: unknown) => {
    const req = ex.head;
    const httpErr = toHttpError(err);
    if (!httpErr) {
      // The path only: a query string may carry a stream position, and nothing secret is ever in a path.
      log(`error ${req.method} ${(req.url ?? '').split('?')[0]}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      if (!ex.answered) sendJson(ex, 500, { error: 'internal error' }, cors);
      else ex.destroy();
      return;
    }
    if (ex.answered) {
      ex.destroy();
      return;
    }
    // A refused body may still be arriving; the connection closes rather than parse its rest as a request.
    const close: Record<string, string> = httpErr.status === 413 ? { Connection: 'close' } : {};
    sendJson(ex, httpErr.status, { error: httpErr.message, ...httpErr.extra }, { ...cors, ...httpErr.headers, ...close });
  };

  const events = async (ex: Exchange, cors: Readonly<Record<string, string>>, id: string, query: string | undefined) => {
    const req = ex.head;
    // The client may leave while the channel and its snapshot are read (a
    // remote bus answers later): the close handler is in place before the
    // first await, so a stream whose client has gone is never subscribed.
    let unsubscribe: (() => void) | undefined;
    let closed = false;
    ex.onClose(() => {
      closed = true;
      unsubscribe?.();
    });
    const channel = await hub.get(id);
    const params = query === undefined ? undefined : new URLSearchParams(query);
    const q = params?.getAll('lastEventId');
    const lastEventId = parseLastEventId(req.headers['last-event-id'] as string | undefined, q?.length === 1 ? q[0] : undefined);
    const wanted = params?.getAll('events') ?? [];
    if (wanted.length > 1) throw new HttpError(400, 'invalid request: events: give the list once, comma-separated');
    const only = wanted.length === 1 ? new Set(validate(EventFilter, wanted[0])) : null;
    // A key holder's stream (the slideshow's, a paired phone's) says so with its stream token.
    const as = params?.getAll('as') ?? [];
    if (as.length > 1) throw new HttpError(400, 'invalid request: as: give it once');
    const keyHolder = as.length === 1 && keyHolderOf(channel, as[0]!);
    if (req.method === 'HEAD') {
      // A HEAD never sees a body, so it must not hold a stream slot open waiting for one.
      ex.send(200, { ...SSE_HEADERS, ...cors });
      return;
    }
    if (closed) return;
    // Limits are checked before anything is written, so a refusal is still a clean JSON 4xx.
    // Counted per address as the rate limits count: an IPv6 address by its /56, an IPv4-mapped one as IPv4,
    // or one phone could rotate through its own prefix and open stream after stream.
    const address = ipKeyGenerator(proxyaddr(ex.req, trust));
    unsubscribe = await hub.subscribe(channel, (): Sink => ex.openStream({ ...SSE_HEADERS, ...cors }), address, lastEventId, only, keyHolder);
    if (closed) unsubscribe();
  };

  /**
   * The hash of the key a controller's write carries, if it may write to this
   * channel (a paired phone's or the deck's); 401 otherwise. The hash, not the
   * key, is what the caller keeps (the pointer's rate buckets).
   */
  const authorize = (req: RequestHead, channel: Pick<ChannelRecord, 'deckHash' | 'controllers'>): string => {
    const key = bearer(req.headers.authorization);
    if (key === undefined) throw controllerKeyRequired();
    const presented = hashSecret(key);
    if (!hub.canCommandHash(channel, presented)) throw controllerKeyRequired();
    return presented;
  };

  /**
   * A controller's write (a command, a pointer position): origin and body
   * type checked, then the body and the channel, then the key; then `write`.
   * With the in-memory bus and a body that came with its head (the raw
   * front), all of it runs within this call, and a tap reaches the
   * slideshow's stream without waiting on a single promise. Otherwise the
   * channel and the body are awaited, and the same checks follow.
   */
  const controllerWrite = (
    ex: Exchange,
    id: string,
    write: (channel: Readonly<ChannelHead>, body: unknown, keyHash: string, now: boolean) => void | Promise<void>,
  ): void | Promise<void> => {
    const req = ex.head;
    checkOrigin(req, (origin) => originAllowed(ex.req, origin));
    checkJsonBody(req);
    const bytes = bodyNow(ex, config.maxBodyBytes);
    if (bytes === undefined) {
      return Promise.all([hub.get(id), readJson(ex, config.maxBodyBytes)]).then(([channel, body]) => write(channel, body, authorize(req, channel), false));
    }
    // The body is parsed once, whichever way the channel comes.
    const body = parseJson(bytes);
    const channel = hub.peek(id);
    if (channel !== undefined) return write(channel, body, authorize(req, channel), true);
    return hub.get(id).then((awaited) => write(awaited, body, authorize(req, awaited), false));
  };

  const answerCommand = (ex: Exchange, cors: Readonly<Record<string, string>>, result: PublishResult) => sendJson(ex, result.duplicate ? 200 : 202, result, cors);

  const command = (ex: Exchange, cors: Readonly<Record<string, string>>, id: string) =>
    controllerWrite(ex, id, (channel, body, keyHash, now) => {
      const cmd = validate(Command, body);
      // In one call with the key's check: nothing can revoke the key in between.
      if (now) return answerCommand(ex, cors, hub.commandNow(channel, cmd));
      // Read, then appended later: the append checks the key again.
      return hub.command(channel, cmd, keyHash).then((result) => answerCommand(ex, cors, result));
    });

  /** Token buckets per presented key hash, so one phone cannot flood a room's streams with positions. */
  const buckets = new Map<string, { tokens: number; at: number }>();
  const takeToken = (key: string): boolean => {
    const now = Date.now();
    const b = buckets.get(key) ?? { tokens: POINTER_RATE.burst, at: now };
    b.tokens = Math.min(POINTER_RATE.burst, b.tokens + ((now - b.at) / 1000) * POINTER_RATE.perSecond);
    b.at = now;
    buckets.set(key, b);
    if (buckets.size > 10_000) buckets.delete(buckets.keys().next().value!);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  };

  const pointer = (ex: Exchange, cors: Readonly<Record<string, string>>, id: string) =>
    controllerWrite(ex, id, async (channel, body, keyHash) => {
      const p = validate(Pointer, body);
      if (!takeToken(`${id}:${keyHash}`)) throw new HttpError(429, 'too many pointer updates; slow down', {}, { 'Retry-After': '1' });
      await hub.pointer(channel, p);
      ex.send(204, { ...cors, 'Cache-Control': 'no-store' });
    });

  const serve = (ex: Exchange, route: RegExpExecArray): void => {
    const req = ex.head;
    // Indexed, not destructured: a RegExpExecArray goes through the iterator protocol, on every tap.
    const id = route[1];
    const what = route[2];
    const query = route[3];
    const isEvents = what === 'events';
    const method = req.method ?? '';
    if (method === 'OPTIONS') {
      if (req.headers.origin === undefined) {
        // No Origin, no preflight: the methods this route takes, as on every other route.
        ex.send(204, { Allow: `${isEvents ? EVENTS_METHODS : COMMANDS_METHODS}, OPTIONS` }, undefined);
      } else {
        const p = preflight(req, allowedOrigins);
        ex.send(p.status, p.body === undefined ? p.headers : { ...p.headers, 'Content-Length': Buffer.byteLength(p.body) }, p.body);
      }
      return;
    }
    const cors = corsHeaders(req, allowedOrigins) ?? NO_CORS;
    if (isEvents ? method !== 'GET' && method !== 'HEAD' : method !== 'POST') {
      fail(ex, cors, new HttpError(405, 'method not allowed', {}, { Allow: isEvents ? EVENTS_METHODS : COMMANDS_METHODS }));
      return;
    }
    try {
      if (!ID_RE.test(id!)) throw new HttpError(404, 'unknown channel');
      // A command on the in-memory bus is answered within this call (no promise comes back); the rest finish later.
      const pending = isEvents ? events(ex, cors, id!, query) : what === 'pointer' ? pointer(ex, cors, id!) : command(ex, cors, id!);
      pending?.catch((err: unknown) => fail(ex, cors, err));
    } catch (err) {
      fail(ex, cors, err);
    }
  };

  return {
    // Every method goes to `serve` (which answers 405 for the wrong one), as on node:http.
    matches: (_method, url) => ROUTE.exec(url),
    serve,
    node(req, res) {
      const route = ROUTE.exec(req.url ?? '');
      if (!route) return false;
      serve(nodeExchange(req, res), route);
      return true;
    },
  };
}
