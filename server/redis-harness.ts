// Harness for the tests that need Redis (redis.test.ts, cluster.test.ts,
// bus-redis.test.ts): a private redis-server per test file, on a free
// loopback port, in its own temp folder, as a child process the test can
// SIGKILL and bring back on the same port, with or without its data; and
// Clicker instances (the built dist/server/main.js) pointed at it, with
// everything they write kept for the log checks.
//
// The tests never touch a Redis they did not start: a shared one (a
// developer's, a system service on 6379) may hold someone's data, and a test
// that kills or wipes its store must own it.
//
// Everything here talks to 127.0.0.1 only.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freePorts } from './testing-procs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const ON_CI = process.env.CI === 'true' || process.env.CI === '1';

/** Debian's redis-server (package redis-server), if installed; scripts/ensure-deps.mjs installs it for `npm test`. */
export function findRedisServer(): string | undefined {
  const candidates = [process.env.REDIS_SERVER_PATH, '/usr/bin/redis-server', '/usr/local/bin/redis-server'];
  const found = candidates.find((p): p is string => typeof p === 'string' && p !== '' && existsSync(p));
  if (found) return found;
  const which = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const onPath = which.stdout.trim();
  return which.status === 0 && onPath ? onPath : undefined;
}

/**
 * The redis-server binary, or undefined after registering what its absence
 * means for `file`: on CI a failing test (a missing install step must not
 * pass as green), elsewhere one skipped test and a banner nobody can miss.
 */
export function redisServerOrSkip(file: string): string | undefined {
  const binary = findRedisServer();
  if (binary) return binary;
  const why = 'redis-server is not installed; run `node scripts/ensure-deps.mjs` (as root it apt-get installs it) or set REDIS_SERVER_PATH';
  if (ON_CI) {
    test(`redis-server is installed for ${file}`, () => assert.fail(why));
  } else {
    console.error(`\n${'!'.repeat(78)}\n!! SKIPPING ${file}: ${why}\n${'!'.repeat(78)}\n`);
    test(`${file} (needs redis-server)`, { skip: why }, () => undefined);
  }
  return undefined;
}

export interface RedisServerOptions {
  /**
   * Keep every acknowledged write across a crash: append-only file, fsynced
   * before each reply (appendfsync always), in the server's temp folder. A
   * SIGKILLed server then comes back with everything it ever answered OK to.
   * Without it (--save '' --appendonly no) a restart comes back empty.
   */
  persist?: boolean;
}

/** A private redis-server, a child process of the test, on 127.0.0.1 only. */
export class RedisServer {
  private proc: ChildProcess | null = null;
  private output = '';
  private exitNote: string | undefined;

  private constructor(
    private readonly binary: string,
    readonly port: number,
    /** Its working folder: the append-only file lives here, nothing is written elsewhere. */
    readonly dir: string,
    private readonly opts: RedisServerOptions,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** What the server printed (its log), for failure messages. */
  get log(): string {
    return this.output;
  }

  get running(): boolean {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Starts one on a free port; a port taken between the probe and the bind is retried with another. */
  static async start(binary: string, opts: RedisServerOptions = {}): Promise<RedisServer> {
    let last: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const [port] = await freePorts(1);
      const dir = mkdtempSync(path.join(os.tmpdir(), 'clicker-redis-'));
      const server = new RedisServer(binary, port!, dir, opts);
      try {
        await server.spawn();
        return server;
      } catch (err) {
        last = err;
        await server.cleanup();
        if (!/Address already in use/i.test(String(err))) throw err;
      }
    }
    throw last;
  }

  /**
   * Starts one on a given port, for a test that points an instance at the
   * port first and brings Redis up later; a port taken meanwhile fails it.
   */
  static async startOn(binary: string, port: number, opts: RedisServerOptions = {}): Promise<RedisServer> {
    const server = new RedisServer(binary, port, mkdtempSync(path.join(os.tmpdir(), 'clicker-redis-')), opts);
    try {
      await server.spawn();
    } catch (err) {
      await server.cleanup();
      throw err;
    }
    return server;
  }

  private args(): string[] {
    const persistence = this.opts.persist
      ? ['--appendonly', 'yes', '--appendfsync', 'always', '--save', '']
      : ['--appendonly', 'no', '--save', ''];
    return [
      '--port', String(this.port),
      '--bind', '127.0.0.1',
      '--dir', this.dir,
      '--daemonize', 'no',
      // Log to stdout, which the harness keeps: nothing under /var/log.
      '--logfile', '',
      '--unixsocket', '',
      ...persistence,
    ];
  }

  private async spawn(): Promise<void> {
    this.output = '';
    this.exitNote = undefined;
    const proc = spawn(this.binary, this.args(), { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not get ready on port ${this.port} within 10 s:\n${this.output}`)), 10_000);
      const onData = (chunk: Buffer) => {
        this.output += chunk.toString();
        // Printed once the data (if any) is loaded and the port accepts commands.
        if (/Ready to accept connections/.test(this.output)) {
          clearTimeout(timer);
          resolve();
        }
      };
      proc.stdout!.on('data', onData);
      proc.stderr!.on('data', onData);
      proc.once('exit', (code, signal) => {
        this.exitNote = `redis-server exited (${signal ?? code})`;
        clearTimeout(timer);
        reject(new Error(`${this.exitNote}:\n${this.output}`));
      });
    });
    await ready;
  }

  /** Crashes it: SIGKILL, no shutdown of any kind; resolves once the process is gone. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /** Stops it as an operator would (SIGTERM: a clean shutdown). */
  async stop(): Promise<void> {
    await this.signal('SIGTERM');
  }

  /**
   * Brings it back on the same port. With `persist`, it reloads its
   * append-only file; `empty` deletes that first, so it comes back with
   * nothing, as a Redis without persistence (or a new one) would.
   */
  async restart(opts: { empty?: boolean } = {}): Promise<void> {
    if (this.running) throw new Error('restart() of a redis-server that is still running: kill() or stop() it first');
    if (opts.empty) {
      rmSync(this.dir, { recursive: true, force: true });
      // mkdtemp's name is kept: same folder, now empty.
      mkdirSync(this.dir);
    }
    await this.spawn();
  }

  /** Stops it if running and deletes its folder. */
  async cleanup(): Promise<void> {
    if (this.running) await this.signal('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async signal(sig: NodeJS.Signals): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(sig);
    // A clean shutdown that takes too long is finished by force: the tests must not hang on it.
    const timer = sig === 'SIGKILL' ? undefined : setTimeout(() => proc.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(timer);
  }
}

// ------------------------------------------------------------------ Clicker instances

/**
 * The server the instances run: the build, or CLICKER_SERVER_JS, so a
 * variant build (say, with a fix taken out) can be run through the same
 * tests to see them fail.
 */
const SERVER_JS = process.env.CLICKER_SERVER_JS || path.join(ROOT, 'dist/server/main.js');

/** Environment every test instance gets on top of the caller's: quick heartbeats, no creation limit in the way. */
const INSTANCE_ENV: NodeJS.ProcessEnv = {
  HEARTBEAT_MS: '500',
  CREATE_PER_MINUTE: '10000',
  LOG_LEVEL: 'info',
};

/**
 * One Clicker server process (dist/server/main.js; `npm run build` first) on
 * a free loopback port. Everything it writes is kept: stdout carries the
 * banner, stderr the pino JSON log lines the log checks read.
 */
export class ClickerInstance {
  stdout = '';
  stderr = '';
  private exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;

  private constructor(
    private readonly proc: ChildProcess,
    readonly name: string,
  ) {
    proc.stdout!.on('data', (c: Buffer) => (this.stdout += c.toString()));
    proc.stderr!.on('data', (c: Buffer) => (this.stderr += c.toString()));
    proc.once('exit', (code, signal) => (this.exited = { code, signal }));
  }

  port = 0;

  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts an instance with REDIS_URL set (or not: `redisUrl` undefined runs the in-memory bus). */
  /**
   * With `ready` (the default), returns once /readyz says 200: the port opens
   * before Redis answers (main.ts), so a request sent on the banner alone
   * could meet a 503. `ready: false` returns on the banner, for a test of that start.
   */
  static async start(name: string, redisUrl: string | undefined, opts: { env?: NodeJS.ProcessEnv; args?: string[]; ready?: boolean } = {}): Promise<ClickerInstance> {
    const env: NodeJS.ProcessEnv = { ...process.env, ...INSTANCE_ENV, ...opts.env };
    // Whatever the developer's shell says, the instance talks to the test's Redis or to none.
    delete env.REDIS_URL;
    if (redisUrl !== undefined) env.REDIS_URL = redisUrl;
    const proc = spawn(
      process.execPath,
      [SERVER_JS, '--port', '0', '--bind', '127.0.0.1', '--host', '127.0.0.1', ...(opts.args ?? [])],
      { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const inst = new ClickerInstance(proc, name);
    // Generous: on a loaded machine (a browser test suite alongside) a cold start takes seconds.
    const deadline = Date.now() + 60_000;
    // The banner names the port the OS picked.
    for (;;) {
      const m = /Open the slideshow on this laptop:\s+http:\/\/127\.0\.0\.1:(\d+)\//.exec(inst.stdout);
      if (m && inst.port === 0) inst.port = Number(m[1]);
      if (inst.port !== 0 && (opts.ready === false || (await inst.isReady()))) return inst;
      if (inst.exited) throw new Error(`${name} exited (${inst.exited.signal ?? inst.exited.code}) before listening:\n${inst.stderr}`);
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`${name} did not start within 60 s:\n${inst.stdout}\n${inst.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private async isReady(): Promise<boolean> {
    try {
      const res = await fetch(`${this.base}/readyz`);
      await res.arrayBuffer();
      return res.status === 200;
    } catch {
      return false;
    }
  }

  /** Runs the server with this environment and arguments until it exits by itself (a refused configuration); bounded. */
  static run(env: NodeJS.ProcessEnv, args: string[] = [], timeoutMs = 10_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const full: NodeJS.ProcessEnv = { ...process.env, ...env };
    if (env.REDIS_URL === undefined) delete full.REDIS_URL;
    const proc = spawn(process.execPath, [SERVER_JS, '--port', '0', '--bind', '127.0.0.1', '--host', '127.0.0.1', ...args], {
      cwd: ROOT,
      env: full,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`the server did not exit within ${timeoutMs} ms:\n${stdout}\n${stderr}`));
      }, timeoutMs);
      proc.once('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** Stops it with SIGTERM and waits for the exit. */
  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()));
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(timer);
  }

  /** Whether the process is still running (it must survive a Redis crash). */
  get alive(): boolean {
    return this.exited === null;
  }
}

// ------------------------------------------------------------------ Prometheus text

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4):
 * every line is a `# HELP`, a `# TYPE` or a sample, and every sample's
 * metric was declared by a TYPE line first. Throws on anything else, so a
 * malformed /metrics fails the test rather than being read around.
 */
export function parsePrometheus(text: string): { samples: Sample[]; types: Map<string, string> } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const sampleRe = new RegExp(`^(${NAME})(?:\\{(.*)\\})?\\s+(\\S+)(?:\\s+-?\\d+)?$`);
  const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/y;
  const base = (name: string) => name.replace(/_(bucket|sum|count|total|created)$/, '');
  for (const [i, line] of text.split('\n').entries()) {
    if (line === '') continue;
    if (line.startsWith('# HELP ')) continue;
    const type = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (line.startsWith('#')) throw new Error(`metrics line ${i + 1}: unknown comment ${JSON.stringify(line)}`);
    const m = sampleRe.exec(line);
    if (!m) throw new Error(`metrics line ${i + 1}: not a sample: ${JSON.stringify(line)}`);
    const [, name, rawLabels, rawValue] = m;
    if (!types.has(name!) && !types.has(base(name!))) throw new Error(`metrics line ${i + 1}: ${name} has no # TYPE line before it`);
    const labels: Record<string, string> = {};
    if (rawLabels) {
      labelRe.lastIndex = 0;
      while (labelRe.lastIndex < rawLabels.length) {
        const at = labelRe.lastIndex;
        const l = labelRe.exec(rawLabels);
        if (!l || labelRe.lastIndex === at) throw new Error(`metrics line ${i + 1}: bad labels ${JSON.stringify(rawLabels)}`);
        labels[l[1]!] = l[2]!;
      }
    }
    // Prometheus reads values with Go's ParseFloat, which takes NaN and Inf in any case; prom-client writes "Nan".
    const special: Record<string, number> = { nan: NaN, '+inf': Infinity, inf: Infinity, '-inf': -Infinity };
    const lower = rawValue!.toLowerCase();
    const value = lower in special ? special[lower]! : Number(rawValue);
    if (Number.isNaN(value) && lower !== 'nan') throw new Error(`metrics line ${i + 1}: bad value ${JSON.stringify(rawValue)}`);
    samples.push({ name: name!, labels, value });
  }
  return { samples, types };
}

/** The one sample of `name` with exactly these labels (none by default); throws if absent. */
export function sample(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const want = JSON.stringify(Object.entries(labels).sort());
  const hit = samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want);
  if (!hit) throw new Error(`no sample ${name}${JSON.stringify(labels)} in /metrics`);
  return hit.value;
}

// ------------------------------------------------------------------ a TCP proxy to cut one instance off

/**
 * A loopback TCP relay in front of Redis for one instance, so a test can cut
 * that instance off (a network partition) while the others keep their Redis:
 * `block()` drops every relayed connection and refuses new ones until
 * `unblock()`. Redis itself never notices.
 */
export class TcpProxy {
  private blocked = false;
  private readonly pairs = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(targetPort: number): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined;
    const server = net.createServer((client) => {
      if (!proxy || proxy.blocked) {
        client.destroy();
        return;
      }
      const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
      const p = proxy;
      for (const s of [client, upstream]) {
        p.pairs.add(s);
        s.on('close', () => p.pairs.delete(s));
        // Either side failing ends both: the instance sees a dropped connection, as on a real network.
        s.on('error', () => undefined);
      }
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    proxy = new TcpProxy(server, (server.address() as net.AddressInfo).port);
    return proxy;
  }

  /** Cuts every relayed connection now and refuses new ones. */
  block(): void {
    this.blocked = true;
    for (const s of this.pairs) s.destroy();
  }

  unblock(): void {
    this.blocked = false;
  }

  async close(): Promise<void> {
    this.block();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
