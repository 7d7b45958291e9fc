// Entry point: read the configuration once, build the hub and the app, listen,
// and print where to point the laptop's browser (and a QR code of it).
import { existsSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Request } from 'express';
import QRCode from 'qrcode';
import { createApp } from './app';
import { ConfigError, loadConfig, type Config } from './config';
import { Hub } from './hub';
import { lanHost } from './net';

/** The project root: the nearest folder above this file that holds package.json (works from dist/ and from sources). */
function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the project root');
    dir = up;
  }
  return dir;
}

function fail(message: string): never {
  process.stderr.write(`clicker: ${message}\n`);
  process.exit(2);
}

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
  const rootDir = findRoot();
  const clientDir = path.join(rootDir, 'dist', 'client');
  if (!existsSync(path.join(clientDir, 'slides.js'))) fail('the browser bundles are missing; run `npm run build` (npm start does it for you)');

  const host = config.host ?? lanHost();
  let port = config.port;
  const fixedBase = config.publicUrl;
  const publicBase = (req: Request): string => {
    if (fixedBase) return fixedBase;
    // Behind a trusted proxy, the proxy's Host is what phones reach.
    if (config.trustProxy && req.get('x-forwarded-host')) return `${req.protocol}://${req.get('x-forwarded-host')}`;
    return `http://${host ?? 'localhost'}:${port}`;
  };

  const hub = new Hub(config);
  hub.start();
  const app = createApp({ config, hub, clientDir, rootDir, publicBase });
  const server = http.createServer(
    {
      // Taps are tiny writes that must leave at once.
      noDelay: true,
      keepAlive: true,
      headersTimeout: config.headersTimeoutMs,
      requestTimeout: config.requestTimeoutMs,
      keepAliveTimeout: config.keepAliveTimeoutMs,
    },
    app,
  );

  server.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EADDRINUSE') fail(`port ${config.port} is already in use; pick another with --port <n> (or PORT=<n>)`);
    if (err.code === 'EACCES') fail(`not allowed to listen on port ${config.port}; pick another with --port <n>`);
    if (err.code === 'EADDRNOTAVAIL') fail(`cannot bind ${config.bind}; pick another address with --bind <addr>`);
    fail(err.message);
  });

  await new Promise<void>((resolve) => server.listen(port, config.bind, resolve));
  const addr = server.address();
  if (addr && typeof addr === 'object') port = addr.port;

  const url = `${fixedBase ?? `http://${host ?? 'localhost'}:${port}`}/`;
  const qr = await QRCode.toString(url, { type: 'terminal', small: true });
  process.stdout.write(
    `\nClicker is running.\n\n  Open the slideshow on this laptop:  ${url}\n` +
      (host || fixedBase ? '' : '  (no LAN address found: phones cannot reach localhost; pass --host <address>)\n') +
      `  Then scan the QR code on the title slide with your phone (same Wi-Fi).\n\n${qr}\n`,
  );

  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    process.stdout.write(`\n${signal}: shutting down\n`);
    server.close(() => process.exit(0));
    // Ending streams makes every EventSource reconnect at once, to whatever comes back.
    hub.close();
    server.closeIdleConnections();
    setTimeout(() => {
      server.closeAllConnections();
      process.exit(0);
    }, 2_000).unref();
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

main(process.argv.slice(2), process.env).catch((err: unknown) => {
  process.stderr.write(`clicker: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
