// Harness for the tests that run real processes (reconnect.test.ts,
// nginx.test.ts): the built server as a child process (through e2e/fixtures'
// ClickerServer), an event-stream client on raw node:http that reads events
// exactly as EventSource does and can be cut at any byte, JSON calls, free
// loopback ports, a seeded PRNG for tests that draw at random, and Debian's
// nginx run as a private child process.
//
// Everything here talks to 127.0.0.1 only.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ChannelInfo, PairPending, PairResult } from '../protocol/messages';
import { hashSecret, knockTicket } from './keys';

/** A small seeded PRNG (mulberry32), so a failing run can be replayed from the seed it prints. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ------------------------------------------------------------------ SSE parsing

export interface SseMessage {
  event: string;
  data: string;
  /** The connection's last event id after this event, as EventSource would report it. */
  lastEventId: string;
  /** Whether this event carried an `id:` field itself. */
  hasId: boolean;
}

/**
 * The event-stream parser of the HTML standard, reduced to what the tests
 * need: an event is dispatched only at its blank line, so bytes cut off in the
 * middle of an event are dropped, and the id a client resumes from moves only
 * when an event is dispatched. Comments (heartbeats) are counted.
 */
export class SseParser {
  comments = 0;
  retry: number | undefined;
  private pending = '';
  private data: string[] = [];
  private event = '';
  private idBuffer: string;
  private sawId = false;
  lastEventId: string;

  constructor(lastEventId = '') {
    this.idBuffer = lastEventId;
    this.lastEventId = lastEventId;
  }

  feed(text: string): SseMessage[] {
    const out: SseMessage[] = [];
    this.pending += text;
    let nl: number;
    while ((nl = this.pending.indexOf('\n')) !== -1) {
      const line = this.pending.slice(0, nl).replace(/\r$/, '');
      this.pending = this.pending.slice(nl + 1);
      if (line === '') {
        this.lastEventId = this.idBuffer;
        if (this.data.length) {
          out.push({ event: this.event || 'message', data: this.data.join('\n'), lastEventId: this.lastEventId, hasId: this.sawId });
        }
        this.data = [];
        this.event = '';
        this.sawId = false;
        continue;
      }
      if (line.startsWith(':')) {
        this.comments++;
        continue;
      }
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') this.data.push(value);
      else if (field === 'event') this.event = value;
      else if (field === 'id' && !value.includes('\0')) {
        this.idBuffer = value;
        this.sawId = true;
      } else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
    }
    return out;
  }
}

// ------------------------------------------------------------------ SSE connection

export interface OpenStreamOptions {
  /** Resume point; sent as Last-Event-ID, or as ?lastEventId= when `via` is 'query'. */
  lastEventId?: string;
  via?: 'header' | 'query';
  headers?: Record<string, string>;
  /** Called with each event as it is dispatched (before waiters are checked). */
  onEvent?: (ev: SseMessage, conn: SseConnection) => void;
  /** How long to wait for the response headers (a buffering proxy may hold them back). */
  timeoutMs?: number;
}

/** One event-stream request on its own TCP connection, which the test may cut at any moment. */
export class SseConnection {
  readonly events: SseMessage[] = [];
  readonly parser: SseParser;
  closed = false;
  private cutAfterChars: number | undefined;
  private waiters: { check: () => boolean; resolve: () => void }[] = [];

  private constructor(
    readonly status: number,
    readonly headers: http.IncomingHttpHeaders,
    private readonly req: http.ClientRequest,
    private readonly res: http.IncomingMessage,
    lastEventId: string,
    private readonly onEvent: OpenStreamOptions['onEvent'],
  ) {
    this.parser = new SseParser(lastEventId);
  }

  /** Opens the stream and resolves once the response headers are in. */
  static open(url: string, opts: OpenStreamOptions = {}): Promise<SseConnection> {
    const u = new URL(url);
    if (opts.lastEventId && opts.via === 'query') u.searchParams.set('lastEventId', opts.lastEventId);
    const headers: Record<string, string> = { Accept: 'text/event-stream', ...opts.headers };
    if (opts.lastEventId && opts.via !== 'query') headers['Last-Event-ID'] = opts.lastEventId;
    const timeoutMs = opts.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      // agent: false gives every stream its own socket, so cutting one never touches another.
      const req = http.get({ host: u.hostname, port: u.port, path: u.pathname + u.search, headers, agent: false }, (res) => {
        clearTimeout(timer);
        const conn = new SseConnection(res.statusCode ?? 0, res.headers, req, res, opts.lastEventId ?? '', opts.onEvent);
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => conn.receive(chunk));
        const done = () => conn.markClosed();
        res.on('end', done);
        res.on('close', done);
        res.on('error', done);
        resolve(conn);
      });
      const timer = setTimeout(() => req.destroy(new Error(`no response headers from ${u.host}${u.pathname} within ${timeoutMs} ms`)), timeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /** The id EventSource would send as Last-Event-ID if this connection dropped now. */
  get lastEventId(): string {
    return this.parser.lastEventId;
  }

  /** Stops reading, as a phone on a stalled network does: bytes pile up in the server. */
  pause(): void {
    this.res.pause();
  }

  resume(): void {
    this.res.resume();
  }

  /** Cuts the TCP connection now, as a dropped Wi-Fi would. */
  destroy(): void {
    this.req.destroy();
    this.res.destroy();
    this.markClosed();
  }

  /**
   * Cuts the connection inside the next chunk that arrives, after `chars` of
   * it (clamped to the chunk): the bytes after the cut are never seen, as
   * when a network drops in the middle of an event.
   */
  cutInsideNextChunk(chars: number): void {
    this.cutAfterChars = chars;
  }

  /** Resolves when `check` holds; rejects after `timeoutMs` with `what` in the message. */
  waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${this.events.length} events, closed=${this.closed})`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Events of one name, with their data parsed as JSON. */
  named<T>(name: string): T[] {
    return this.events.filter((e) => e.event === name).map((e) => JSON.parse(e.data) as T);
  }

  private receive(chunk: string): void {
    if (this.closed) return;
    let text = chunk;
    const cut = this.cutAfterChars;
    if (cut !== undefined) text = chunk.slice(0, Math.min(cut, chunk.length - 1));
    for (const ev of this.parser.feed(text)) {
      this.events.push(ev);
      this.onEvent?.(ev, this);
    }
    if (cut !== undefined) this.destroy();
    this.wake();
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.wake();
  }

  private wake(): void {
    const ready = this.waiters.filter((w) => w.check());
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
  }
}

// ------------------------------------------------------------------ JSON calls

export interface JsonAnswer<T> {
  status: number;
  body: T;
  headers: http.IncomingHttpHeaders;
}

/** One JSON request to 127.0.0.1 (or whatever base says, which is always loopback in these tests). */
export function jsonCall<T = Record<string, unknown>>(
  base: string,
  method: string,
  urlPath: string,
  opts: { body?: unknown; key?: string; headers?: Record<string, string>; agent?: http.Agent | false; timeoutMs?: number } = {},
): Promise<JsonAnswer<T>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const u = new URL(urlPath, base);
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  const headers: Record<string, string> = { ...opts.headers };
  if (payload !== undefined) {
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = String(Buffer.byteLength(payload));
  }
  if (opts.key) headers.Authorization = `Bearer ${opts.key}`;
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, method, path: u.pathname + u.search, headers, agent: opts.agent ?? false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = text ? JSON.parse(text) : {};
          } catch {
            // Not JSON (a proxy's HTML error page): the text is returned as is.
          }
          resolve({ status: res.statusCode ?? 0, body: body as T, headers: res.headers });
        });
      },
    );
    // Every call is bounded: a stuck proxy fails the test instead of hanging it.
    const timer = setTimeout(() => req.destroy(new Error(`${method} ${u.pathname} got no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

export interface PairedChannel {
  info: ChannelInfo;
  controllerKey: string;
  /** What the slideshow re-registers after a server restart so the phone stays paired. */
  controllerHash: string;
}

/**
 * A phone pairs as the real ones do. With phone approval (the servers'
 * default) it knocks on `base` (202), the slideshow allows its key hash with
 * the deck key through `allowOn` (any instance), and its next knock answers
 * 201. Without approval the first knock answers 201 already. Any other answer
 * of the first knock (410, 404) is returned as it is.
 */
export async function pairPhone(
  base: string,
  info: Pick<ChannelInfo, 'id' | 'deckKey' | 'pairCode'>,
  opts: { allowOn?: string; headers?: Record<string, string> } = {},
): Promise<JsonAnswer<PairResult>> {
  const pairPath = `/api/channels/${info.id}/pair`;
  const headers = opts.headers ?? {};
  const first = await jsonCall<PairResult | PairPending>(base, 'POST', pairPath, { body: { code: info.pairCode }, headers });
  if (first.status !== 202) return first as JsonAnswer<PairResult>;
  const pending = first.body as PairPending;
  // The ticket the deck's stream carries with the knock, made as the server makes it: the caller holds the deck key.
  const ticket = knockTicket(hashSecret(info.deckKey), hashSecret(info.pairCode ?? ''), pending.controllerHash);
  const allowed = await jsonCall(opts.allowOn ?? base, 'POST', `/api/channels/${info.id}/controllers`, {
    body: { code: info.pairCode, hash: pending.controllerHash, ticket },
    key: info.deckKey,
    headers,
  });
  if (allowed.status !== 201) throw new Error(`allowing the phone answered ${allowed.status}: ${JSON.stringify(allowed.body)}`);
  return jsonCall<PairResult>(base, 'POST', pairPath, { body: { code: info.pairCode, key: pending.controllerKey }, headers });
}

/** Creates a channel and pairs one controller, as the slideshow and a phone do. */
export async function pairedChannel(base: string, headers: Record<string, string> = {}): Promise<PairedChannel> {
  const created = await jsonCall<ChannelInfo>(base, 'POST', '/api/channels', { headers });
  if (created.status !== 201) throw new Error(`channel creation answered ${created.status}: ${JSON.stringify(created.body)}`);
  const info = created.body;
  const paired = await pairPhone(base, info, { headers });
  if (paired.status !== 201) throw new Error(`pairing answered ${paired.status}: ${JSON.stringify(paired.body)}`);
  return { info, controllerKey: paired.body.controllerKey, controllerHash: paired.body.controllerHash };
}

// ------------------------------------------------------------------ ports

/** Free TCP ports on 127.0.0.1, distinct from each other (all are held until every one is known). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const s = net.createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port; rejects after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs: number, isDead: () => string | undefined = () => undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const dead = isDead();
    if (dead !== undefined) throw new Error(dead);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ------------------------------------------------------------------ nginx

/** Debian's nginx, if installed (scripts/ensure-deps.mjs installs it for `npm test`). */
export function findNginx(): string | undefined {
  const candidates = [process.env.NGINX_PATH, '/usr/sbin/nginx', '/usr/bin/nginx'];
  const found = candidates.find((p): p is string => typeof p === 'string' && existsSync(p));
  if (found) return found;
  const which = spawnSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' });
  const onPath = which.stdout.trim();
  return which.status === 0 && onPath ? onPath : undefined;
}

/**
 * nginx as a child process of the test, with its own prefix folder in a temp
 * dir: no daemon, no master/worker split, pid file and temp paths inside the
 * prefix, errors to stderr (kept for the failure message). The caller gives
 * the contents of the `http { }` block; it should listen on 127.0.0.1 only.
 */
export class NginxProcess {
  private stderr = '';
  private exited: string | undefined;

  private constructor(
    private readonly proc: ChildProcess,
    readonly prefix: string,
  ) {
    proc.stderr!.on('data', (c: Buffer) => (this.stderr += c.toString()));
    proc.on('exit', (code, signal) => (this.exited = `nginx exited (${signal ?? code}): ${this.stderr.trim()}`));
  }

  static async start(binary: string, httpBlock: string, ports: number[]): Promise<NginxProcess> {
    const prefix = mkdtempSync(path.join(os.tmpdir(), 'clicker-nginx-'));
    for (const d of ['logs', 'tmp/body', 'tmp/proxy', 'tmp/fastcgi', 'tmp/uwsgi', 'tmp/scgi']) mkdirSync(path.join(prefix, d), { recursive: true });
    // Debian builds nginx with absolute temp and log paths under /var; these keep everything in the prefix.
    const conf = [
      'events { worker_connections 256; }',
      'http {',
      `  client_body_temp_path ${prefix}/tmp/body;`,
      `  proxy_temp_path ${prefix}/tmp/proxy;`,
      `  fastcgi_temp_path ${prefix}/tmp/fastcgi;`,
      `  uwsgi_temp_path ${prefix}/tmp/uwsgi;`,
      `  scgi_temp_path ${prefix}/tmp/scgi;`,
      `  access_log ${prefix}/logs/access.log;`,
      httpBlock,
      '}',
      '',
    ].join('\n');
    const confPath = path.join(prefix, 'nginx.conf');
    writeFileSync(confPath, conf);
    const proc = spawn(
      binary,
      ['-p', prefix, '-c', confPath, '-e', 'stderr', '-g', `daemon off; master_process off; pid ${prefix}/nginx.pid; error_log stderr warn;`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const nginx = new NginxProcess(proc, prefix);
    try {
      for (const port of ports) await waitForPort(port, 10_000, () => nginx.exited);
    } catch (err) {
      await nginx.stop();
      throw new Error(`nginx did not start: ${(err as Error).message}\n--- config ---\n${conf}`);
    }
    return nginx;
  }

  /** What nginx wrote to stderr so far (its error log). */
  get log(): string {
    return this.stderr;
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const gone = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()));
      this.proc.kill('SIGTERM');
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), 3_000);
      await gone;
      clearTimeout(timer);
    }
    rmSync(this.prefix, { recursive: true, force: true });
  }
}

/** Median and friends of a list of milliseconds, for printing. */
export function summarize(ms: number[]): string {
  if (!ms.length) return 'n=0';
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  const f = (x: number) => x.toFixed(1);
  return `n=${s.length} min=${f(s[0]!)} median=${f(at(0.5))} p95=${f(at(0.95))} max=${f(s[s.length - 1]!)} ms`;
}
