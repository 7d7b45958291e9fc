#!/usr/bin/env node
// `npx clicker …`: builds the bundles on first use (a fresh checkout has no
// dist/), then hands the command line to the server's entry point.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
if (!existsSync(path.join(root, 'dist/server/main.js')) || !existsSync(path.join(root, 'dist/client/slides.js'))) {
  const built = spawnSync(process.execPath, [path.join(root, 'esbuild.config.mjs'), '--quiet'], { cwd: root, stdio: 'inherit' });
  if (built.status !== 0) process.exit(built.status ?? 1);
}
await import(path.join(root, 'dist/server/main.js'));
