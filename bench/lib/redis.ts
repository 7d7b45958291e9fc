// A private redis-server for the scale-out scenario (scenarios/fanout3.ts):
// started by the bench on a free loopback port, in a temporary folder of its
// own, with no persistence, and stopped at the end. Like every child of the
// bench it is registered the moment it is spawned and killed if the bench
// exits any other way; its folder goes with it.
//
// The bench never talks to a Redis it did not start: a shared one (a system
// service on 6379) may hold someone's data and would mix its load into the
// figures. Found the way the tests find it (server/redis-harness.ts).
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { atExit, cpuSeconds, freePort, rssKiB, startChild, StartError, type Child } from './children';

/** redis-server: REDIS_SERVER_PATH, Debian's place, /usr/local, or on PATH; undefined when there is none. */
export function findRedisServer(): string | undefined {
  const candidates = [process.env.REDIS_SERVER_PATH, '/usr/bin/redis-server', '/usr/local/bin/redis-server'];
  const runnable = (p: string) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  const found = candidates.find((p): p is string => typeof p === 'string' && p !== '' && runnable(p));
  if (found) return found;
  const which = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const onPath = which.stdout?.trim();
  return which.status === 0 && onPath ? onPath : undefined;
}

export interface BenchRedis {
  readonly port: number;
  readonly pid: number;
  /** redis://127.0.0.1:PORT, for REDIS_URL. */
  readonly url: string;
  cpuSeconds(): Promise<number>;
  rssKiB(): Promise<number>;
  /** SIGTERM (SIGKILL after a grace period), then its folder is deleted. */
  stop(): Promise<void>;
}

/** Starts redis-server on a free port of 127.0.0.1; a port taken between the probe and the bind is retried with another. */
export async function startRedis(binary: string): Promise<BenchRedis> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'clicker-bench-redis-'));
    const removeDir = () => rmSync(dir, { recursive: true, force: true });
    const forget = atExit(removeDir);
    let child: Child;
    try {
      child = await startChild({
        name: 'redis-server',
        command: binary,
        args: [
          '--port', String(port),
          '--bind', '127.0.0.1',
          // Nothing kept: a bench's channels are worth nothing after it.
          '--save', '',
          '--appendonly', 'no',
          '--dir', dir,
          '--daemonize', 'no',
          // The log on stdout, where the ready line is read: nothing under /var/log.
          '--logfile', '',
          '--unixsocket', '',
        ],
        cwd: dir,
        ready: /Ready to accept connections/,
        timeoutMs: 10_000,
      });
    } catch (err) {
      lastError = err;
      removeDir();
      forget();
      if (err instanceof StartError && /Address already in use/i.test(err.output)) continue;
      if (err instanceof StartError && err.output.trim()) {
        throw new Error(`${err.message}: ${err.output.trim().split('\n').slice(-3).join(' | ')}`);
      }
      throw err;
    }
    const started = child;
    return {
      port,
      pid: started.pid,
      url: `redis://127.0.0.1:${port}`,
      cpuSeconds: () => cpuSeconds(started.pid),
      rssKiB: () => rssKiB(started.pid),
      async stop() {
        await started.stop();
        removeDir();
        forget();
      },
    };
  }
  throw lastError instanceof Error ? lastError : new Error('redis-server did not start');
}
