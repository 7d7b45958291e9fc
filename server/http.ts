// The node:http server around the app, and the rule for the base URL that
// goes into QR codes. The entry point and the tests both build their server
// here, so what the tests run is what a presenter runs.
import http, { type IncomingMessage, type RequestListener } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import proxyaddr from 'proxy-addr';
import type { Config } from './config';

/** Proxies on this machine or the LAN, the same rule as Express's `trust proxy` in app.ts. */
export const TRUSTED_PROXIES = ['loopback', 'linklocal', 'uniquelocal'];

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v)?.split(',')[0]?.trim() || undefined;

/**
 * Base URL that phones should use, e.g. http://192.168.1.20:3000: the fixed
 * --public-url, else the proxy's own host (with --trust-proxy, and only from a
 * trusted proxy), else the LAN host and the listening port.
 */
export function makePublicBase(config: Config, host: string | undefined, port: () => number): (req: IncomingMessage) => string {
  const trusted = proxyaddr.compile(TRUSTED_PROXIES);
  return (req) => {
    if (config.publicUrl) return config.publicUrl;
    if (config.trustProxy && trusted(req.socket.remoteAddress ?? '', 0)) {
      const forwardedHost = first(req.headers['x-forwarded-host']);
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

export function createHttpServer(config: Config, listener: RequestListener, extra: http.ServerOptions = {}): http.Server {
  const server = http.createServer(
    {
      // Taps are tiny writes that must leave at once.
      noDelay: true,
      keepAlive: true,
      // Slow or partial requests are cut off...
      headersTimeout: config.headersTimeoutMs,
      requestTimeout: config.requestTimeoutMs,
      // ...but an idle phone keeps its connection, so a tap never pays for a new handshake.
      keepAliveTimeout: config.keepAliveTimeoutMs,
      ...extra,
    },
    listener,
  );
  server.on('clientError', answerClientError);
  return server;
}
