#!/usr/bin/env node
// Makes sure the system programs the tests drive exist: Chromium for the
// end-to-end specs (Playwright's own browser download is not reachable
// everywhere, so they use the distribution's build) and nginx for the
// reverse-proxy tests (server/nginx.test.ts runs Debian's nginx in front of
// the app). On a fresh Debian/Ubuntu machine, as root, the missing ones are
// installed with one apt-get run; anywhere else this fails with a clear
// message rather than letting the tests fail obscurely later.
//
// Only the package is installed: the Debian package's service is never used
// (the tests run nginx as their own child process with a private prefix).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

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
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', ...missing.flatMap((d) => d.packages)], { stdio: 'inherit', env });
  missing = DEPS.filter((d) => !d.find());
  if (missing.length) {
    console.error(`ensure-deps: apt-get finished but no ${missing.map((d) => d.name).join(' or ')} binary appeared`);
    process.exit(1);
  }
}
for (const d of DEPS) console.log(`ensure-deps: ${d.name}: ${d.find()}`);
