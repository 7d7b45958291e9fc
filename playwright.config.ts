// End-to-end tests in a real Chromium: the distribution's build, because
// Playwright's browser download is not reachable on every machine
// (scripts/ensure-deps.mjs, run by `npm test`, installs it when missing).
import { existsSync } from 'node:fs';
import { defineConfig } from '@playwright/test';

const executablePath = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find(
  (p): p is string => typeof p === 'string' && existsSync(p),
);

export default defineConfig({
  testDir: 'e2e',
  testMatch: '*.spec.ts',
  // Two cores: specs start their own servers, so they run one at a time.
  workers: 1,
  fullyParallel: false,
  timeout: 60_000,
  expect: { timeout: 10_000 },
  retries: 0,
  reporter: process.env.CI ? [['list']] : [['list']],
  outputDir: 'test-results',
  use: {
    browserName: 'chromium',
    launchOptions: {
      executablePath,
      // No sandbox as root in a container; no background traffic to hosts this machine cannot reach.
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    },
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
  },
});
