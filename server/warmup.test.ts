// The startup warm-up (warmup.ts) against a real throwaway app on loopback:
// it must really carry commands to a stream, leave nothing listening, and
// refuse to pass when the hot path is broken.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULTS, type Config } from './config';
import { warmUp } from './warmup';

const rootDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function deps() {
  const clientDir = mkdtempSync(path.join(os.tmpdir(), 'clicker-warmup-client-'));
  writeFileSync(path.join(clientDir, 'slides.js'), 'export {};\n');
  return { clientDir, rootDir, publicBase: () => 'http://192.0.2.1:3000', log: (line: string) => assert.fail(`logged: ${line}`) };
}

const refused = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });

test('the warm-up carries every command to its stream, then closes its private server', { timeout: 30_000 }, async () => {
  const config: Config = { ...DEFAULTS, bind: '127.0.0.1', port: 0 };
  const result = await warmUp(config, deps(), 300);
  assert.equal(result.commands, 300);
  assert.ok(result.port > 0);
  assert.equal(await refused(result.port), true, 'nothing listens on the warm-up port afterwards');
});

test('a hot path that refuses commands fails the warm-up with the status it answered', { timeout: 30_000 }, async () => {
  // Bodies capped below the size of a command: every warm-up command gets 413.
  const config: Config = { ...DEFAULTS, bind: '127.0.0.1', port: 0, maxBodyBytes: 8 };
  await assert.rejects(warmUp(config, deps(), 10), /warm-up command answered HTTP\/1\.1 413 /);
});
