// nginx with the nchan module as a third target: the C pub/sub server that
// issue 8 holds Clicker against. Its configuration is the peer config of the
// shared reference harness (../shared/bench/peers/nchan.conf), read at run
// time and copied into a private temporary folder with its port and paths
// moved there; nothing of it is kept in this project.
//
//   POST /pub/<ch>   publish (201 with subscribers, 202 without)
//   GET  /sub/<ch>   EventSource stream: "id: ..\ndata: <body>\n\n"
//   GET  /nchan_status   "subscribers: N" among other counters
//
// When nginx or the module is missing and this runs as root on Debian, the
// two packages are installed with apt-get (as scripts/ensure-deps.mjs does
// for Chromium); otherwise nchan is left out with a note saying why.
import { execFile } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { atExit, childPids, cpuSeconds, freePort, rssKiB, startChild, StartError, type Child } from './children';
import { JsonClient } from './http';
import { commandBody, HOST, type Target } from './targets';

const MODULE = '/usr/lib/nginx/modules/ngx_nchan_module.so';
const PACKAGES = ['nginx', 'libnginx-mod-nchan'];

function nginxBinary(): string | undefined {
  return [process.env.NGINX_PATH, '/usr/sbin/nginx', '/usr/bin/nginx'].find((p): p is string => p !== undefined && existsSync(p));
}

function run(command: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    // RUNLEVEL=1 keeps the packages' maintainer scripts from starting the system nginx service.
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive', RUNLEVEL: '1' };
    execFile(command, args, { env, timeout: timeoutMs, maxBuffer: 8 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(' ')}: ${err.message}\n${stderr.slice(-2000)}`));
      else resolve(stdout);
    });
  });
}

export type NchanAvailability = { ok: true; nginx: string; config: string } | { ok: false; why: string };

/** Finds nginx, the module and the peer config, installing the packages when that is possible. */
export async function ensureNchan(rootDir: string, log: (line: string) => void): Promise<NchanAvailability> {
  const config = process.env.BENCH_NCHAN_CONF ?? path.resolve(rootDir, '..', 'shared', 'bench', 'peers', 'nchan.conf');
  if (!existsSync(config)) return { ok: false, why: `no peer config at ${config} (set BENCH_NCHAN_CONF)` };
  let nginx = nginxBinary();
  if (nginx && existsSync(MODULE)) return { ok: true, nginx, config };

  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!root || !existsSync('/usr/bin/apt-get')) {
    return { ok: false, why: `nginx or ${MODULE} missing, and installing needs root and apt-get (apt-get install ${PACKAGES.join(' ')})` };
  }
  log(`nchan: installing ${PACKAGES.join(' ')} with apt-get (first run only)`);
  try {
    try {
      await run('apt-get', ['install', '-y', '-qq', ...PACKAGES], 120_000);
    } catch {
      // A fresh machine has no package lists yet.
      await run('apt-get', ['update', '-qq'], 120_000);
      await run('apt-get', ['install', '-y', '-qq', ...PACKAGES], 120_000);
    }
  } catch (err) {
    return { ok: false, why: `apt-get failed: ${(err as Error).message.split('\n').slice(0, 3).join(' ')}` };
  }
  nginx = nginxBinary();
  if (!nginx || !existsSync(MODULE)) return { ok: false, why: `apt-get finished but nginx or ${MODULE} is still missing` };
  return { ok: true, nginx, config };
}

/** The peer config with its port and its /tmp paths moved into `dir`; refuses one that would listen beyond loopback. */
export function adaptConfig(text: string, dir: string, port: number): string {
  const listens = [...text.matchAll(/^\s*listen\s+([^\s;]+)/gm)].map((m) => m[1] ?? '');
  if (listens.length === 0 || listens.some((l) => !l.startsWith('127.0.0.1:'))) {
    throw new Error(`the nchan config must listen on 127.0.0.1 only; it has: ${listens.join(', ') || 'no listen line'}`);
  }
  // Every path the config writes under its own scratch folder (pid, error log, temp paths).
  const scratch = /\/tmp\/nchan-bench\b/g;
  return text.replace(/^(\s*listen\s+)127\.0\.0\.1:\d+/gm, `$1127.0.0.1:${port}`).replace(scratch, dir);
}

async function statusSubscribers(client: JsonClient): Promise<number> {
  const res = await client.get('/nchan_status');
  const m = /^subscribers:\s*(\d+)/m.exec(res.body);
  if (res.status !== 200 || !m) throw new Error(`nchan: GET /nchan_status answered ${res.status}: ${res.body.slice(0, 200)}`);
  return Number(m[1]);
}

export interface NchanOptions {
  nginx: string;
  config: string;
  fdLimit?: number;
}

/** Starts nginx in the foreground (the config says `daemon off`), in a process group of its own with its workers. */
export async function startNchan(opts: NchanOptions): Promise<Target> {
  const template = await readFile(opts.config, 'utf8');
  let child: Child | undefined;
  let dir = '';
  let port = 0;
  let forget: () => void = () => {};
  let lastError: unknown;
  for (let attempt = 0; attempt < 4 && !child; attempt++) {
    dir = await mkdtemp(path.join(os.tmpdir(), 'clicker-bench-nchan-'));
    const scratch = dir;
    forget = atExit(() => rmSync(scratch, { recursive: true, force: true }));
    // nginx's workers run as www-data (the config's `user`) and must reach their temp paths.
    await chmod(dir, 0o755);
    port = await freePort();
    const conf = path.join(dir, 'nchan.conf');
    await writeFile(conf, adaptConfig(template, dir, port));
    const probe = new JsonClient(HOST, port);
    try {
      child = await startChild({
        name: 'nchan',
        command: opts.nginx,
        args: ['-p', `${dir}/`, '-c', conf],
        ready: async () => (await probe.get('/nchan_status')).status === 200,
        timeoutMs: 10_000,
        fdLimit: opts.fdLimit,
        processGroup: true,
      });
    } catch (err) {
      lastError = err;
      await rm(dir, { recursive: true, force: true });
      forget();
      // Only a lost race for the port is worth another try.
      const output = err instanceof StartError ? err.output : '';
      if (!/Address already in use/.test(output)) break;
    } finally {
      probe.close();
    }
  }
  if (!child) {
    if (lastError instanceof StartError) {
      throw new StartError(`${lastError.message}: ${lastError.output.trim().split('\n').slice(-3).join(' ')}`, lastError.output);
    }
    throw lastError instanceof Error ? lastError : new Error('nchan did not start');
  }
  const started = child;
  const pids = async () => [started.pid, ...(await childPids(started.pid))];
  const sum = async (read: (pid: number) => Promise<number>) => {
    let total = 0;
    for (const pid of await pids()) total += await read(pid);
    return total;
  };
  let n = 0;
  return {
    name: 'nchan',
    host: HOST,
    port,
    baseUrl: `http://${HOST}:${port}`,
    pid: started.pid,
    openChannel() {
      const ch = `bench-${process.pid}-${++n}`;
      return Promise.resolve({
        subscribePath: `/sub/${ch}`,
        eventName: 'message',
        publishOk: [201, 202],
        publish: async (c, cmdId) => (await c.post(`/pub/${ch}`, commandBody(cmdId))).status,
      });
    },
    subscribers: statusSubscribers,
    // Master and workers: the workers hold the connections, the master the shared memory's first touch.
    rssKiB: () => sum(rssKiB),
    cpuSeconds: () => sum(cpuSeconds),
    collectGarbage: () => Promise.resolve(false),
    async stop() {
      await started.stop();
      await rm(dir, { recursive: true, force: true });
      forget();
    },
  };
}
