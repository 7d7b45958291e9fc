// The two hot paths, served straight on node:http without Express: opening
// a stream (every phone, every follower) and posting a command (every tap).
// Express adds routing, a re-prototyped request and response, and a dozen
// headers per answer: measurable per tap and, held for the life of every
// stream, in memory per follower. The checks are the same guards the Express
// routes use (guards.ts), and errors have the same JSON shape.
import type { IncomingMessage, ServerResponse } from 'node:http';
import proxyaddr from 'proxy-addr';
import { Command, ID_RE, Pointer } from '../protocol/messages';
import type { Config } from './config';
import { HttpError, toHttpError } from './errors';
import { checkJsonBody, checkOrigin, corsHeaders, preflight, validate } from './guards';
import type { Hub, Sink } from './hub';
import { bearer } from './keys';
import { parseLastEventId, SSE_HEADERS } from './sse';

const ROUTE = /^\/api\/channels\/([^/?]*)\/(events|commands|pointer)(?:\?(.*))?$/;

/** Pointer updates per controller: a 60 Hz finger with room for bursts; more is refused with 429. */
const POINTER_RATE = { perSecond: 90, burst: 45 };

/** Headers on every JSON answer of the hot paths. */
const JSON_HEADERS = {
  'Content-Type': 'application/json; charset=utf-8',
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
};

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...JSON_HEADERS, ...headers, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * A stream's writes go straight to its socket: the response is delimited by
 * the connection's end (no chunked framing), so each event is one socket
 * write of the Buffer the hub framed once for everybody.
 */
class SocketSink implements Sink {
  private readonly socket: NonNullable<ServerResponse['socket']>;
  /** False if a pipelined answer ahead of this one still holds the socket. */
  private readonly direct: boolean;

  constructor(private readonly res: ServerResponse) {
    this.socket = res.socket!;
    this.direct = res.writableLength === this.socket.writableLength;
  }

  write(chunk: Buffer): boolean {
    return this.direct ? this.socket.write(chunk) : this.res.write(chunk);
  }

  end(): void {
    this.res.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  get writableLength(): number {
    return this.socket.writableLength;
  }
}

/** Reads a JSON body of at most `limit` bytes; 413 past it, 400 if it is not JSON. */
function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (declared > limit) {
      reject(new HttpError(413, 'request body too large'));
      return;
    }
    const encoding = req.headers['content-encoding'];
    if (encoding !== undefined && encoding !== 'identity') {
      reject(new HttpError(415, 'unsupported content encoding'));
      return;
    }
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new HttpError(413, 'request body too large'));
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      parts.push(chunk);
    });
    req.on('end', () => {
      if (size > limit) return;
      if (size === 0) {
        resolve(undefined);
        return;
      }
      try {
        resolve(JSON.parse(Buffer.concat(parts, size).toString('utf8')));
      } catch {
        reject(new HttpError(400, 'malformed JSON'));
      }
    });
    req.on('error', () => reject(new HttpError(400, 'request aborted')));
  });
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

/** Answers the hot routes and returns true, or returns false for Express to handle the request. */
export function createHotRoutes({ config, hub, allowedOrigins, originAllowed, log }: HotDeps): (req: IncomingMessage, res: ServerResponse) => boolean {
  // The same trust rule as Express's `trust proxy` setting in app.ts.
  const trust = proxyaddr.compile(config.trustProxy ? ['loopback', 'linklocal', 'uniquelocal'] : []);
  const fail = (req: IncomingMessage, res: ServerResponse, err: unknown) => {
    const httpErr = toHttpError(err);
    if (!httpErr) {
      // The path only: a query string may carry a stream position, and nothing secret is ever in a path.
      log(`error ${req.method} ${(req.url ?? '').split('?')[0]}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
      return;
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // A refused body may still be arriving; the connection closes rather than parse its rest as a request.
    const close: Record<string, string> = httpErr.status === 413 ? { Connection: 'close' } : {};
    sendJson(res, httpErr.status, { error: httpErr.message, ...httpErr.extra }, { ...httpErr.headers, ...close });
  };

  const events = async (req: IncomingMessage, res: ServerResponse, id: string, query: string | undefined) => {
    const channel = await hub.get(id);
    const q = query === undefined ? undefined : new URLSearchParams(query).getAll('lastEventId');
    const lastEventId = parseLastEventId(req.headers['last-event-id'] as string | undefined, q?.length === 1 ? q[0] : undefined);
    if (req.method === 'HEAD') {
      // A HEAD never sees a body, so it must not hold a stream slot open waiting for one.
      res.writeHead(200, SSE_HEADERS);
      res.end();
      return;
    }
    // The client may leave while the snapshot is read: the close handler is in place first.
    let unsubscribe: (() => void) | undefined;
    let closed = false;
    res.on('close', () => {
      closed = true;
      unsubscribe?.();
    });
    // Limits are checked before anything is written, so a refusal is still a clean JSON 4xx.
    unsubscribe = await hub.subscribe(channel, () => {
      // End of body = end of connection: no chunked framing around every event.
      res.useChunkedEncodingByDefault = false;
      res.writeHead(200, SSE_HEADERS);
      res.flushHeaders();
      req.socket.setNoDelay(true);
      return new SocketSink(res);
    }, proxyaddr(req, trust), lastEventId);
    if (closed) unsubscribe();
  };

  const command = async (req: IncomingMessage, res: ServerResponse, id: string) => {
    checkOrigin(req, (origin) => originAllowed(req, origin));
    checkJsonBody(req);
    const [channel, body] = await Promise.all([hub.get(id), readJson(req, config.maxBodyBytes)]);
    if (!hub.canCommand(channel, bearer(req.headers.authorization))) {
      throw new HttpError(401, 'controller key required', {}, { 'WWW-Authenticate': 'Bearer' });
    }
    const result = await hub.command(channel, validate(Command, body));
    sendJson(res, result.duplicate ? 200 : 202, result);
  };

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

  const pointer = async (req: IncomingMessage, res: ServerResponse, id: string) => {
    checkOrigin(req, (origin) => originAllowed(req, origin));
    checkJsonBody(req);
    const [channel, body] = await Promise.all([hub.get(id), readJson(req, config.maxBodyBytes)]);
    const key = bearer(req.headers.authorization);
    if (!hub.canCommand(channel, key)) throw new HttpError(401, 'controller key required', {}, { 'WWW-Authenticate': 'Bearer' });
    const p = validate(Pointer, body);
    if (!takeToken(`${id}:${key}`)) throw new HttpError(429, 'too many pointer updates; slow down', {}, { 'Retry-After': '1' });
    await hub.pointer(channel, p);
    res.writeHead(204, { 'Cache-Control': 'no-store' });
    res.end();
  };

  return (req, res) => {
    const m = ROUTE.exec(req.url ?? '');
    if (!m) return false;
    const [, id, what, query] = m;
    const isEvents = what === 'events';
    const method = req.method ?? '';
    if (method === 'OPTIONS') {
      const p = preflight(req, allowedOrigins);
      res.writeHead(p.status, p.headers);
      res.end(p.body);
      return true;
    }
    const cors = corsHeaders(req, allowedOrigins);
    if (cors) for (const [name, value] of Object.entries(cors)) res.setHeader(name, value);
    if (isEvents ? method !== 'GET' && method !== 'HEAD' : method !== 'POST') {
      fail(req, res, new HttpError(405, 'method not allowed', {}, { Allow: isEvents ? 'GET, HEAD' : 'POST' }));
      return true;
    }
    try {
      if (!ID_RE.test(id!)) throw new HttpError(404, 'unknown channel');
      (isEvents ? events(req, res, id!, query) : what === 'pointer' ? pointer(req, res, id!) : command(req, res, id!)).catch((err: unknown) => fail(req, res, err));
    } catch (err) {
      fail(req, res, err);
    }
    return true;
  };
}
