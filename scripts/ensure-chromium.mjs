#!/usr/bin/env node
// Makes sure a Chromium exists for the end-to-end tests. Playwright's own
// browser download is not reachable everywhere, so the tests use the
// distribution's Chromium; on a fresh Debian/Ubuntu machine (as root) this
// installs it with apt-get. Prints the path it found.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(Boolean);
const found = () => candidates.find((p) => existsSync(p));

let path = found();
if (!path) {
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!root || !existsSync('/usr/bin/apt-get')) {
    console.error('ensure-chromium: no Chromium found. Install it (Debian: apt-get install chromium) or set CHROMIUM_PATH.');
    process.exit(1);
  }
  console.log('ensure-chromium: installing Debian chromium with apt-get (first run only)…');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', 'chromium', 'fonts-dejavu-core'], { stdio: 'inherit', env });
  path = found();
  if (!path) {
    console.error('ensure-chromium: apt-get finished but no chromium binary appeared');
    process.exit(1);
  }
}
console.log(`ensure-chromium: using ${path}`);
