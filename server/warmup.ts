// Startup warm-up: as the real server starts, a throwaway copy of the app on
// a private loopback port is sent commands through the very code that will
// serve taps (the raw HTTP front, the hot routes, the hub, SSE framing,
// socket writes), with one stream listening.
//
// Why: V8 runs new code unoptimized until it has run many times, and
// optimized code belongs to the functions, not to one app instance. Measured
// on the 2-core reference machine with a warm client, the first 2,000
// commands to a fresh server had a p50 of 2.4-3.0x nchan's without the
// warm-up and 1.7x with it (about 1.3x once everything has settled; the rest
// of the difference is the machine's own settling, which nchan shows too).
// The copy has its own hub, bus and metrics, so no channel, rate limit or
// counter of the real server sees any of it.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { createApp, type AppDeps } from './app';
import type { Config } from './config';
import { createHttpServer } from './http';
import { Hub } from './hub';

export interface WarmupResult {
  commands: number;
  ms: number;
  /** The private port the copy listened on (closed again by the time this is returned). */
  port: number;
}

/** Reads HTTP answers and SSE bytes off a socket, as a test client would, with no library in the way. */
class Reader {
  private text = '';
  private waiter: (() => void) | null = null;

  constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.text += chunk;
      this.waiter?.();
    });
  }

  /** Waits until `needle` has arrived, and takes everything up to and including it. */
  async through(needle: string, timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const at = this.text.indexOf(needle);
      if (at >= 0) {
        const taken = this.text.slice(0, at + needle.length);
        this.text = this.text.slice(at + needle.length);
        return taken;
      }
      if (this.socket.destroyed) throw new Error('warm-up connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`warm-up: no ${JSON.stringify(needle)} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          this.waiter = null;
          resolve();
        };
      });
    }
  }
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.setNoDelay(true);
    socket.once('error', reject);
  });
}

/**
 * Sends `commands` commands, one at a time, to a throwaway app on loopback,
 * and waits for each to reach the stream and be answered. Throws if one does
 * not arrive: a server whose hot path fails on loopback should not start.
 */
export async function warmUp(config: Config, deps: Omit<AppDeps, 'config' | 'hub'>, commands: number): Promise<WarmupResult> {
  const started = performance.now();
  // Only what the copy needs: no Redis (a remote bus would share its channel), nothing kept.
  const local: Config = { ...config, redisUrl: undefined, trustProxy: false, createPerMinute: Number.MAX_SAFE_INTEGER };
  const hub = new Hub(local);
  const server = createHttpServer(local, createApp({ ...deps, config: local, hub }));
  const sockets: net.Socket[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('warm-up server has no port');
    const { channel, deckKey } = await hub.create();
    const stream = new Reader(await connect(address.port));
    const taps = new Reader(await connect(address.port));
    sockets.push(stream.socket, taps.socket);
    stream.socket.write(`GET /api/channels/${channel.id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
    await stream.through('event: snapshot', 5_000);
    const run = Math.random().toString(36).slice(2, 10);
    for (let i = 0; i < commands; i++) {
      const id = `warmup-${run}-${i}`;
      const body = JSON.stringify({ type: i % 2 ? 'prev' : 'next', id });
      taps.socket.write(
        `POST /api/channels/${channel.id}/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
          `Authorization: Bearer ${deckKey}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      // The answer is a head and a one-line JSON body, which ends at its first '}'.
      const answer = await taps.through('}', 5_000);
      if (!answer.startsWith('HTTP/1.1 202 ')) throw new Error(`warm-up command answered ${answer.split('\r\n')[0]}`);
      await stream.through(`"id":"${id}"}`, 5_000);
    }
    return { commands, ms: performance.now() - started, port: address.port };
  } finally {
    for (const s of sockets) s.destroy();
    hub.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
