#!/usr/bin/env node
// Makes sure the system programs the tests drive exist: Chromium for the
// end-to-end specs (Playwright's own browser download is not reachable
// everywhere, so they use the distribution's build), nginx for the
// reverse-proxy tests (server/nginx.test.ts runs Debian's nginx in front of
// the app) and redis-server for the scale-out tests (server/redis.test.ts and
// friends run several instances on a private Redis). On a fresh
// Debian/Ubuntu machine, as root, the missing ones are installed with one
// apt-get run; anywhere else this fails with a clear message rather than
// letting the tests fail obscurely later.
//
// Only the packages are installed: their services are never used (the tests
// run nginx and redis-server as their own child processes, on private ports
// and folders). A policy-rc.d that denies every start keeps apt from starting
// them during the install (a container has no init to start them anyway).
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';

const which = (name) => {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
};

const DEPS = [
  {
    name: 'chromium',
    // fonts-dejavu-core: the slides need at least one font to render text for screenshots.
    packages: ['chromium', 'fonts-dejavu-core'],
    env: 'CHROMIUM_PATH',
    find: () => [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => p && existsSync(p)),
  },
  {
    name: 'nginx',
    packages: ['nginx'],
    env: 'NGINX_PATH',
    // /usr/sbin is not on every user's PATH, so look there explicitly.
    find: () => [process.env.NGINX_PATH, '/usr/sbin/nginx', '/usr/bin/nginx', which('nginx')].find((p) => p && existsSync(p)),
  },
  {
    name: 'redis-server',
    packages: ['redis-server'],
    env: 'REDIS_SERVER_PATH',
    find: () => [process.env.REDIS_SERVER_PATH, '/usr/bin/redis-server', '/usr/local/bin/redis-server', which('redis-server')].find((p) => p && existsSync(p)),
  },
];

let missing = DEPS.filter((d) => !d.find());
if (missing.length) {
  const names = missing.map((d) => d.name).join(' and ');
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!root || !existsSync('/usr/bin/apt-get')) {
    console.error(
      `ensure-deps: ${names} not found. Install ${missing.length > 1 ? 'them' : 'it'} ` +
        `(Debian: apt-get install ${missing.flatMap((d) => d.packages).join(' ')}) ` +
        `or point ${missing.map((d) => d.env).join(' / ')} at the binary.`,
    );
    process.exit(1);
  }
  console.log(`ensure-deps: installing ${names} with apt-get (first run only)…`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // Exit code 101 tells invoke-rc.d "not allowed": the packages' services stay stopped. Only ours is removed afterwards.
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) writeFileSync(policy, '#!/bin/sh\n# Written by clicker scripts/ensure-deps.mjs during apt-get install.\nexit 101\n', { mode: 0o755 });
  try {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '-qq', ...missing.flatMap((d) => d.packages)], { stdio: 'inherit', env });
  } finally {
    if (ownPolicy) rmSync(policy, { force: true });
  }
  missing = DEPS.filter((d) => !d.find());
  if (missing.length) {
    console.error(`ensure-deps: apt-get finished but no ${missing.map((d) => d.name).join(' or ')} binary appeared`);
    process.exit(1);
  }
}
for (const d of DEPS) console.log(`ensure-deps: ${d.name}: ${d.find()}`);
