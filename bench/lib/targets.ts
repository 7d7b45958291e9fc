// The servers under test, behind one small interface, so every scenario runs
// the same code against each: Clicker, the node:http relay and (lib/nchan.ts)
// nginx with nchan.
import path from 'node:path';
import { cpuSeconds, freePort, rssKiB, startChild, StartError, type Child } from './children';
import { isRecord, JsonClient, parseJson } from './http';

export const HOST = '127.0.0.1';

export type TargetName = 'clicker' | 'relay' | 'nchan';

/** One channel on a target: where to subscribe and how to publish a command on it. */
export interface BenchChannel {
  /** Path of the SSE stream, e.g. /api/channels/ID/events. */
  subscribePath: string;
  /** SSE event name that carries published commands. */
  eventName: string;
  /** Publishes {"type":"next","id":id}; resolves with the HTTP status. */
  publish(client: JsonClient, id: string): Promise<number>;
  /** Statuses a successful publish may answer with (nchan: 201 with subscribers, 202 without). */
  publishOk: readonly number[];
}

export interface Target {
  readonly name: TargetName;
  readonly host: string;
  readonly port: number;
  /** http://127.0.0.1:PORT, no trailing slash. */
  readonly baseUrl: string;
  /** The server's pid, for /proc readings. */
  readonly pid: number;
  openChannel(client: JsonClient): Promise<BenchChannel>;
  /** Streams the server says it holds, to check that a fan-out is complete or torn down. */
  subscribers(client: JsonClient): Promise<number>;
  /** Resident memory in KiB: the process, or nginx's master and workers together. */
  rssKiB(): Promise<number>;
  /** CPU seconds used so far (user + system), workers included. */
  cpuSeconds(): Promise<number>;
  /**
   * Runs a full garbage collection in the server (POST /debug/gc, there when
   * node runs with --expose-gc); false for a server with no collector (nginx).
   */
  collectGarbage(client: JsonClient): Promise<boolean>;
  stop(): Promise<void>;
}

/** Starts a fresh instance of one target, for a scenario that must begin from an untouched process. */
export type Launcher = () => Promise<Target>;

/** POST /debug/gc, which both Node servers answer with {ok: true, rss} when started with --expose-gc. */
async function debugGc(client: JsonClient, name: string): Promise<boolean> {
  const res = await client.post('/debug/gc');
  const body = parseJson(res, `${name}: POST /debug/gc`);
  if (res.status !== 200 || !isRecord(body) || body.ok !== true) {
    throw new Error(`${name}: POST /debug/gc answered ${res.status}: ${res.body.slice(0, 200)} (is node started with --expose-gc?)`);
  }
  return true;
}

export const commandBody = (id: string) => JSON.stringify({ type: 'next', id });

async function healthSubscribers(client: JsonClient): Promise<number> {
  const res = await client.get('/healthz');
  const body = parseJson(res, 'GET /healthz');
  if (!isRecord(body) || typeof body.subscribers !== 'number') throw new Error(`GET /healthz: unexpected answer ${res.body}`);
  return body.subscribers;
}

/** Open files each server may use: the machine's hard limit, above the 19,000 subscribers of the capacity run. */
export const SERVER_FD_LIMIT = 20_000;

/**
 * Clicker's per-address and per-channel stream caps, raised to the open-files
 * limit: the bench's thousands of subscribers all come from 127.0.0.1 to one
 * channel, past the defaults, which are for a room.
 */
export const BENCH_CLICKER_ENV: Readonly<Record<string, string>> = {
  MAX_SUBSCRIBERS_PER_IP: String(SERVER_FD_LIMIT),
  MAX_SUBSCRIBERS_PER_CHANNEL: String(SERVER_FD_LIMIT),
};

/** A new channel on a Clicker server: its id and the deck key that may publish to it. */
export async function createChannel(client: JsonClient): Promise<{ id: string; deckKey: string }> {
  const res = await client.post('/api/channels');
  const body = parseJson(res, 'POST /api/channels');
  if (res.status !== 201 || !isRecord(body) || typeof body.id !== 'string' || typeof body.deckKey !== 'string') {
    throw new Error(`POST /api/channels answered ${res.status}: ${res.body.slice(0, 300)}`);
  }
  return { id: body.id, deckKey: body.deckKey };
}

export interface ClickerOptions {
  rootDir: string;
  /** Extra environment, e.g. limits raised for a fan-out, or REDIS_URL (the only way it reaches the server). */
  env?: Record<string, string>;
  fdLimit?: number;
}

/**
 * Starts dist/server/main.js on loopback. `--port 0` lets the kernel choose;
 * if this server's config refuses 0, a port found free a moment earlier is
 * passed instead (retried, since another process may take it meanwhile).
 */
export async function startClicker(opts: ClickerOptions): Promise<Target> {
  const entry = process.env.BENCH_CLICKER_ENTRY ?? path.join(opts.rootDir, 'dist', 'server', 'main.js');
  const env: NodeJS.ProcessEnv = { ...process.env };
  // None may leak in from the caller's shell and point the server elsewhere:
  // a REDIS_URL there would turn the in-memory baseline into a Redis client
  // of somebody's Redis. Only a scenario sets it (fanout3, a private one).
  delete env.PORT;
  delete env.PUBLIC_URL;
  delete env.REDIS_URL;
  Object.assign(env, {
    // Every scenario creates channels, and the Chromium one reloads pages; the
    // per-address rate limit is for the internet, not for a bench on loopback.
    CREATE_PER_MINUTE: '100000',
    ...opts.env,
  });
  const ready = /Open the slideshow on this laptop:\s+(http:\/\/127\.0\.0\.1:(\d+))\//;

  let child: Child | undefined;
  let lastError: unknown;
  for (let attempt = 0; attempt < 4 && !child; attempt++) {
    const port = attempt === 0 ? 0 : await freePort();
    try {
      child = await startChild({
        name: 'clicker',
        command: process.execPath,
        // --expose-gc: the memory scenario reads RSS after a full collection (POST /debug/gc).
        args: ['--expose-gc', entry, '--port', String(port), '--bind', HOST, '--host', HOST],
        env,
        cwd: opts.rootDir,
        ready,
        timeoutMs: 15_000,
        fdLimit: opts.fdLimit,
      });
    } catch (err) {
      lastError = err;
      const output = err instanceof StartError ? err.output : '';
      // Only a refused port 0 or a lost race for a port is worth another try.
      if (!/--port must be|already in use/.test(output)) break;
    }
  }
  if (!child) throw lastError instanceof Error ? lastError : new Error('clicker did not start');
  const started = child;
  const port = Number(started.match?.[2]);

  const target: Target = {
    name: 'clicker',
    host: HOST,
    port,
    baseUrl: `http://${HOST}:${port}`,
    pid: started.pid,
    async openChannel(client) {
      const { id, deckKey } = await createChannel(client);
      const headers = { Authorization: `Bearer ${deckKey}` };
      return {
        subscribePath: `/api/channels/${id}/events`,
        eventName: 'command',
        publishOk: [202],
        publish: async (c, cmdId) => (await c.post(`/api/channels/${id}/commands`, commandBody(cmdId), headers)).status,
      };
    },
    subscribers: healthSubscribers,
    rssKiB: () => rssKiB(started.pid),
    cpuSeconds: () => cpuSeconds(started.pid),
    collectGarbage: (client) => debugGc(client, 'clicker'),
    stop: () => started.stop(),
  };
  // Measured from ready on: after its startup warm-up, and (with Redis) once it reaches the store.
  try {
    await waitReady(target, 15_000);
  } catch (err) {
    await started.stop();
    throw err;
  }
  return target;
}

export interface RelayOptions {
  rootDir: string;
  fdLimit?: number;
}

export async function startRelayProcess(opts: RelayOptions): Promise<Target> {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0' };
  const child = await startChild({
    name: 'relay',
    command: process.execPath,
    args: ['--expose-gc', '--import', 'tsx', path.join(opts.rootDir, 'bench', 'relay.ts')],
    env,
    cwd: opts.rootDir,
    ready: /relay listening on http:\/\/127\.0\.0\.1:(\d+)\//,
    timeoutMs: 15_000,
    fdLimit: opts.fdLimit,
  });
  const port = Number(child.match?.[1]);
  let n = 0;
  return {
    name: 'relay',
    host: HOST,
    port,
    baseUrl: `http://${HOST}:${port}`,
    pid: child.pid,
    // Channels need no creation on the relay; a fresh name per call keeps scenarios apart.
    openChannel() {
      const ch = `bench-${process.pid}-${++n}`;
      return Promise.resolve({
        subscribePath: `/sub/${ch}`,
        eventName: 'message',
        publishOk: [202],
        publish: async (c, cmdId) => (await c.post(`/pub/${ch}`, commandBody(cmdId))).status,
      });
    },
    subscribers: healthSubscribers,
    rssKiB: () => rssKiB(child.pid),
    cpuSeconds: () => cpuSeconds(child.pid),
    collectGarbage: (client) => debugGc(client, 'relay'),
    stop: () => child.stop(),
  };
}

/**
 * Polls GET /readyz until Clicker says it is ready, or `ms` passes: it answers
 * 503 while it warms its hot path up after starting, and while it cannot
 * reach its channel store (Redis).
 */
async function waitReady(target: Target, ms: number): Promise<void> {
  const client = new JsonClient(target.host, target.port);
  const until = Date.now() + ms;
  try {
    for (;;) {
      const status = await client.get('/readyz').then(
        (r) => r.status,
        () => 0,
      );
      if (status === 200) return;
      if (Date.now() > until) throw new Error(`clicker on ${target.baseUrl}: /readyz still answers ${status} after ${ms} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    client.close();
  }
}

/** Reads the command id out of an event's data; undefined for anything else. */
export function commandIdOf(data: string): string | undefined {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return undefined;
  }
  return isRecord(value) && typeof value.id === 'string' ? value.id : undefined;
}

/** A command id unique within this run: 8-64 characters of [A-Za-z0-9_-], as the protocol demands. */
export function commandIdFactory(prefix: string): () => string {
  const run = Math.random().toString(36).slice(2, 8);
  let i = 0;
  return () => `${prefix}-${run}-${(i++).toString(36).padStart(5, '0')}`;
}
