// Test harness shared by security.test.ts, fuzz.test.ts and flood.test.ts:
// the real app on an ephemeral 127.0.0.1 port, built with the same pieces as
// server/main.ts (Hub, createApp, createHttpServer, makePublicBase), plus raw
// HTTP helpers for requests that fetch refuses to send and for reading an
// event stream's bytes exactly as they go out.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChannelInfo, DeckState, PairResult } from '../protocol/messages';
import { createApp } from './app';
import { DEFAULTS, type Config } from './config';
import type { Bus } from './bus';
import { Hub } from './hub';
import { type ClickerServer, createHttpServer, makePublicBase } from './http';

const rootDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** A TEST-NET-1 address (RFC 5737): it only ever appears inside returned URLs, nothing connects to it. */
export const PUBLIC_HOST = '192.0.2.2';

export interface TestServerOptions {
  /** Hub clock, so TTL tests move time instead of sleeping. */
  now?: () => number;
  /**
   * How often Node checks headersTimeout/requestTimeout (its default is 30 s,
   * which would make a timeout test wait that long).
   */
  connectionsCheckingIntervalMs?: number;
  /** The hub's bus (a Redis one, say); the in-memory bus when left out. */
  bus?: Bus;
}

export interface TestServer {
  readonly config: Config;
  readonly hub: Hub;
  readonly server: ClickerServer;
  readonly port: number;
  /** http://127.0.0.1:<port>: where tests send traffic. */
  readonly base: string;
  /** http://192.0.2.2:<port>: what the server puts into URLs it hands out. */
  readonly publicBase: string;
  /** Every line the app logged. */
  readonly logs: string[];
  close(): Promise<void>;
}

export async function startTestServer(overrides: Partial<Config> = {}, opts: TestServerOptions = {}): Promise<TestServer> {
  // Phones pair in one step here: these servers test what comes after pairing.
  // Phone approval, on by default, has its own tests (approval.test.ts, and
  // the e2e specs, which run the real command line with its defaults).
  const config: Config = Object.freeze({ ...DEFAULTS, bind: '127.0.0.1', port: 0, host: PUBLIC_HOST, approvePhones: false, ...overrides });
  // The app serves /assets from the esbuild output; a stub folder keeps these tests independent of a build.
  const clientDir = mkdtempSync(path.join(os.tmpdir(), 'clicker-test-client-'));
  writeFileSync(path.join(clientDir, 'slides.js'), 'export {};\n');
  writeFileSync(path.join(clientDir, 'controller.js'), 'export {};\n');
  // The drop-in script is a classic script (an IIFE defining the global Clicker), not a module.
  writeFileSync(path.join(clientDir, 'clicker.js'), 'var Clicker = {};\n');

  let port = 0;
  const publicBase = makePublicBase(config, config.host, () => port);
  const hub = new Hub(config, opts.now, opts.bus);
  hub.start();
  const logs: string[] = [];
  const app = createApp({ config, hub, clientDir, rootDir, publicBase, log: (line) => logs.push(line) });
  const server = createHttpServer(
    config,
    app,
    opts.connectionsCheckingIntervalMs === undefined ? {} : { connectionsCheckingInterval: opts.connectionsCheckingIntervalMs },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;

  let closed = false;
  return {
    config,
    hub,
    server,
    port,
    base: `http://127.0.0.1:${port}`,
    publicBase: `http://${PUBLIC_HOST}:${port}`,
    logs,
    async close() {
      if (closed) return;
      closed = true;
      hub.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(clientDir, { recursive: true, force: true });
    },
  };
}

// ------------------------------------------------------------------ raw HTTP

export interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The body parsed as JSON when the answer says it is JSON, else undefined. */
  json: Record<string, unknown> | undefined;
}

export interface RawRequest {
  method: string;
  /** Path and query, sent exactly as given (no normalisation, no encoding). */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Send the body with Transfer-Encoding: chunked instead of a Content-Length. */
  chunked?: boolean;
  /** Source address on the loopback range (127.0.0.2, ...), to act as a second client. */
  localAddress?: string;
  agent?: http.Agent | false;
}

/** One request with node:http, which sends what fetch would refuse or rewrite. */
export function rawRequest(base: string, req: RawRequest): Promise<RawAnswer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...req.headers };
    if (req.body !== undefined && !req.chunked) headers['Content-Length'] = String(Buffer.byteLength(req.body));
    const r = http.request(
      {
        host: url.hostname,
        port: url.port,
        method: req.method,
        path: req.path,
        headers,
        agent: req.agent ?? false,
        ...(req.localAddress ? { localAddress: req.localAddress } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: Record<string, unknown> | undefined;
          if (/^application\/json\b/.test(res.headers['content-type'] ?? '')) {
            const parsed: unknown = JSON.parse(text);
            json = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    r.on('error', reject);
    if (req.body !== undefined) r.write(req.body);
    r.end();
  });
}

/** JSON call with an optional bearer key. */
export function call(base: string, method: string, urlPath: string, body?: unknown, key?: string, headers: Record<string, string> = {}): Promise<RawAnswer> {
  return rawRequest(base, {
    method,
    path: urlPath,
    headers: {
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      ...(key === undefined ? {} : { Authorization: `Bearer ${key}` }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

export async function createChannel(base: string, localAddress?: string): Promise<ChannelInfo> {
  const res = await rawRequest(base, { method: 'POST', path: '/api/channels', ...(localAddress ? { localAddress } : {}) });
  if (res.status !== 201) throw new Error(`channel creation answered ${res.status}: ${res.text}`);
  return res.json as unknown as ChannelInfo;
}

export async function pairPhone(base: string, ch: { id: string; pairCode: string | null }): Promise<PairResult> {
  const res = await call(base, 'POST', `/api/channels/${ch.id}/pair`, { code: ch.pairCode });
  if (res.status !== 201) throw new Error(`pairing answered ${res.status}: ${res.text}`);
  return res.json as unknown as PairResult;
}

let counter = 0;
/** A valid, unique command id. */
export const cmdId = (): string => `t${process.pid}x${String(++counter).padStart(8, '0')}`;

// ------------------------------------------------------------------ raw event stream

/** An event stream read as raw bytes, so a test sees exactly what goes on the wire. */
export interface RawStream {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  /** Everything received so far, as text. */
  text(): string;
  /** Resolves once the received text contains `needle`; rejects if the stream ends first. */
  waitFor(needle: string): Promise<void>;
  /** Resolves when the server ends the stream. */
  readonly ended: Promise<void>;
  close(): void;
}

export function openRawStream(base: string, urlPath: string, opts: { headers?: Record<string, string>; localAddress?: string } = {}): Promise<RawStream> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.get(
      {
        host: url.hostname,
        port: url.port,
        path: urlPath,
        agent: false,
        headers: { Accept: 'text/event-stream', ...opts.headers },
        ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
      },
      (res) => {
        let received = '';
        let done = false;
        const waiters = new Set<() => void>();
        const settle = () => {
          for (const w of [...waiters]) w();
        };
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          received += chunk;
          settle();
        });
        const ended = new Promise<void>((resolveEnd) => {
          const finish = () => {
            done = true;
            settle();
            resolveEnd();
          };
          res.on('end', finish);
          res.on('close', finish);
          res.on('error', finish);
        });
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text: () => received,
          ended,
          waitFor(needle: string) {
            return new Promise<void>((ok, fail) => {
              const check = () => {
                if (received.includes(needle)) {
                  waiters.delete(check);
                  ok();
                } else if (done) {
                  waiters.delete(check);
                  fail(new Error(`stream ended without ${JSON.stringify(needle)}; got ${JSON.stringify(received.slice(0, 500))}`));
                }
              };
              waiters.add(check);
              check();
            });
          },
          close() {
            req.destroy();
          },
        });
      },
    );
    req.on('error', reject);
  });
}

/** The SSE event names in a raw stream, in order (heartbeat comments are not events). */
export function eventNames(raw: string): string[] {
  return raw
    .split('\n')
    .filter((line) => line.startsWith('event:'))
    .map((line) => line.slice('event:'.length).trim());
}

/** Every error answer is JSON with a non-empty `error` string. */
export function expectError(res: RawAnswer, status: number, message?: RegExp): Record<string, unknown> {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.text}`);
  assert.match(String(res.headers['content-type']), /^application\/json\b/);
  assert.ok(res.json, 'error body is a JSON object');
  assert.equal(typeof res.json.error, 'string');
  assert.notEqual(res.json.error, '');
  if (message) assert.match(String(res.json.error), message);
  return res.json;
}

/** A valid deck state: the first of three slides. Tests override what they look at. */
export const sampleState = (over: Partial<DeckState> = {}): DeckState => ({
  indexh: 0,
  indexv: 0,
  indexf: -1,
  fragments: 0,
  paused: false,
  position: 1,
  total: 3,
  isFirst: true,
  isLast: false,
  title: 'Title',
  notes: '',
  nextTitle: 'Next',
  ...over,
});
