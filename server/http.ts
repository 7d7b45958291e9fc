// The node:http server around the app, and the rule for the base URL that
// goes into QR codes. The entry point and the tests both build their server
// here, so what the tests run is what a presenter runs.
import http, { type IncomingMessage, type RequestListener } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import proxyaddr from 'proxy-addr';
import type { Config } from './config';
import type { Metrics } from './metrics';
import { NodeTunnel, RawFront, type RawRoutes } from './raw-http';

/** How often node:http checks its headers and request timeouts, in ms. */
export const CONNECTIONS_CHECK_MS = 1_000;

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v)?.split(',')[0]?.trim() || undefined;

/**
 * A Host-style value (a name or address, and a port) and nothing else, as
 * the URL parser reads it; undefined otherwise. Even a trusted proxy can pass
 * on a client's junk ("a b", "evil.example/x?"), which would otherwise go
 * verbatim into the QR code's and the follow link's URLs.
 */
function hostOnly(h: string | undefined): string | undefined {
  // Nothing that could end the host part of a URL: no path, query, fragment, user or space.
  if (!h || !/^[^\s/?#@\\]+$/.test(h)) return undefined;
  try {
    const u = new URL(`http://${h}`);
    // The URL drops port 80 as http's default, but under https it is not: an explicit port is kept as given.
    const port = /:(\d+)$/.exec(h)?.[1];
    return port !== undefined && u.port === '' ? `${u.host}:${Number(port)}` : u.host;
  } catch {
    return undefined;
  }
}

/**
 * Base URL that phones should use, e.g. http://192.168.1.20:3000: the fixed
 * --public-url, else the proxy's own host (with --trust-proxy, and only from a
 * trusted proxy), else the LAN host and the listening port.
 */
export function makePublicBase(config: Config, host: string | undefined, port: () => number): (req: IncomingMessage) => string {
  const trusted = proxyaddr.compile([...config.trustedProxies]);
  return (req) => {
    if (config.publicUrl) return config.publicUrl;
    if (config.trustProxy && trusted(req.socket.remoteAddress ?? '', 0)) {
      const forwardedHost = hostOnly(first(req.headers['x-forwarded-host']));
      if (forwardedHost) return `${first(req.headers['x-forwarded-proto']) === 'https' ? 'https' : 'http'}://${forwardedHost}`;
    }
    return `http://${host ?? 'localhost'}:${port()}`;
  };
}

/** Node's own refusals (malformed HTTP, oversized headers, timeouts) as JSON too, like every other error. */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  // Only on a connection that has carried no answer yet: after one, an error
  // answer could land behind (or inside) it and corrupt what the peer reads.
  if (!socket.writable || (socket as Socket).bytesWritten > 0) {
    socket.destroy();
    return;
  }
  const [status, text] =
    err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'request headers too large'] : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'request timed out'] : [400, 'bad request'];
  const body = JSON.stringify({ error: text });
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * An `Expect` other than 100-continue (which node:http answers itself):
 * node:http's own 417 has no body. The connection closes, since a client
 * that sends its body regardless must not have it read as a request.
 */
function answerUnknownExpectation(_req: http.IncomingMessage, res: http.ServerResponse): void {
  const body = JSON.stringify({ error: 'unsupported Expect header: only 100-continue is understood' });
  res.writeHead(417, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body), Connection: 'close' });
  res.end(body);
}

/** Every method some route of Clicker's takes: a CONNECT is told them, as a 405 must (RFC 9110, 15.5.6). */
const SERVED_METHODS = 'GET, HEAD, POST, PUT, DELETE, OPTIONS';

/** How long a refused CONNECT's connection may take to send its answer out before it is cut. */
const CONNECT_LINGER_MS = 2_000;

/**
 * CONNECT, a proxy's tunnel: Clicker is no proxy. Without a listener node:http
 * drops the connection with no word; this says why, in JSON like every other
 * refusal, then closes it (nothing after a CONNECT is meant as HTTP to us).
 * node:http has let go of the socket by now (no timeout of its own applies),
 * so it is destroyed once the answer is out, or after CONNECT_LINGER_MS.
 * A CONNECT pipelined behind a request still being answered is cut off
 * unanswered, as node:http did: a 405 there would be read as that request's.
 */
function answerConnect(socket: Duplex, answering: boolean): void {
  if (answering) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify({ error: 'CONNECT is not supported: Clicker is not a proxy' });
  const cut = setTimeout(() => socket.destroy(), CONNECT_LINGER_MS);
  cut.unref();
  socket.end(
    `HTTP/1.1 405 Method Not Allowed\r\nAllow: ${SERVED_METHODS}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    () => {
      clearTimeout(cut);
      socket.destroy();
    },
  );
}

/**
 * node:http's server with Clicker's raw front (raw-http.ts) before it: every
 * connection is read by the raw path, which serves hot-route requests itself
 * and passes every other request to node:http through a tunnel.
 */
export class ClickerServer extends http.Server {
  /** Null when the raw front is off (config.rawHttp false, or no hot routes given). */
  readonly raw: RawFront | null = null;

  constructor(options: http.ServerOptions, listener: RequestListener, routes: RawRoutes | undefined, config: Config) {
    super(options, listener);
    // node:http serves a connection from its own 'connection' listener, the
    // one documented way in (the docs suggest emitting 'connection' to inject
    // a socket). The raw front takes that event and calls node's listener for
    // the connections it hands over.
    const nodeListeners = this.listeners('connection') as ((socket: Duplex) => void)[];
    if (!routes || !config.rawHttp || nodeListeners.length !== 1) return;
    const [nodeConnection] = nodeListeners;
    this.removeAllListeners('connection');
    const raw = new RawFront(routes, config, (tunnel) => nodeConnection!.call(this, tunnel));
    this.raw = raw;
    this.on('connection', (socket: Socket) => raw.accept(socket));
    // The tunnel learns when node:http has written each answer, so the next request can go.
    this.on('request', (req: IncomingMessage, res: http.ServerResponse) => {
      if (req.socket instanceof NodeTunnel) req.socket.track(res);
    });
  }

  override closeAllConnections(): void {
    super.closeAllConnections();
    this.raw?.closeAll();
  }

  override closeIdleConnections(): void {
    super.closeIdleConnections();
    this.raw?.closeIdle();
  }
}

/** The server for an app; `app.hot`, when there, is served by the raw front. */
export function createHttpServer(
  config: Config,
  app: RequestListener & { readonly hot?: RawRoutes; readonly metrics?: Metrics },
  extra: http.ServerOptions = {},
): ClickerServer {
  const server = new ClickerServer(
    {
      // Taps are tiny writes that must leave at once.
      noDelay: true,
      keepAlive: true,
      // Slow or partial requests are cut off...
      headersTimeout: config.headersTimeoutMs,
      requestTimeout: config.requestTimeoutMs,
      // ...but an idle phone keeps its connection, so a tap never pays for a new handshake.
      keepAliveTimeout: config.keepAliveTimeoutMs,
      // Node checks those two timeouts this often; its default of 30 s let a stalled request run 30 s past them.
      connectionsCheckingInterval: CONNECTIONS_CHECK_MS,
      // The app refuses a request without exactly one Host itself, in JSON (app.ts); node's own refusal has no body.
      requireHostHeader: false,
      ...extra,
    },
    app,
    app.hot,
    config,
  );
  server.on('clientError', answerClientError);
  server.on('checkExpectation', answerUnknownExpectation);
  // Answers node:http still owes on each connection, for a CONNECT that comes in behind them.
  const owed = new WeakMap<object, number>();
  server.on('request', (req: IncomingMessage, res: http.ServerResponse) => {
    const socket = req.socket;
    owed.set(socket, (owed.get(socket) ?? 0) + 1);
    res.once('close', () => owed.set(socket, (owed.get(socket) ?? 1) - 1));
  });
  server.on('connect', (req: IncomingMessage, socket: Duplex) => answerConnect(socket, (owed.get(req.socket) ?? 0) > 0));
  const raw = server.raw;
  if (raw) app.metrics?.watchRaw(() => raw.stats);
  return server;
}
