// Entry point: read the command line and the environment once, then present a
// deck, write a starter deck, or export a PDF. Usage errors exit with 2 and a
// single line; nothing here prints a stack trace for a user's mistake.
import { existsSync, readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import QRCode from 'qrcode';
import { EVENT } from '../protocol/wire';
import { createApp } from './app';
import { ConfigError, DeckError, parseCli, runInit, USAGE, version } from './cli';
import type { Config } from './config';
import { EDITOR_FILE, loadDeck, shadowedAssets, type Deck } from './deck';
import { exportPdf, ExportError } from './export';
import { Hub } from './hub';
import { RedisBus } from './bus-redis';
import { logger } from './log';
import { createHttpServer, makePublicBase } from './http';
import { lanHost } from './net';
import { warmUp, type WarmupResult } from './warmup';

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

function fail(message: string, code = 2): never {
  process.stderr.write(`clicker: ${message}\n`);
  process.exit(code);
}

interface Running {
  server: http.Server;
  hub: Hub;
  port: number;
  host: string | undefined;
  /** Warms the hot path up (warmup.ts); absent when turned off, and with Redis, where a throwaway copy would share its channel. */
  warmUp?: () => Promise<WarmupResult>;
}

/**
 * How long Redis may take to answer at start before the log says it does not:
 * ioredis's own connect timeout, so a Redis that is merely slow to answer is
 * not reported as down.
 */
const REDIS_START_GRACE_MS = 2_000;

/**
 * The start never waits on Redis: the port opens at once, /readyz says not
 * ready and requests that need Redis get 503 until it answers (ioredis keeps
 * trying). Waiting held the port closed for seconds, so a probe or a proxy saw
 * a dead instance instead of one that says why it is not ready. The log says
 * whether Redis answered at start, or that it does not yet and, later, when it does.
 */
function reportRedisAtStart(bus: RedisBus): void {
  let late = false;
  const grace = setTimeout(() => {
    late = true;
    logger.warn({ bus: 'redis' }, 'Redis does not answer yet; serving 503 until it does');
  }, REDIS_START_GRACE_MS);
  grace.unref();
  void bus.up().then(() => {
    clearTimeout(grace);
    // The bus reports later outages and recoveries itself (onOutage, onReconnect); this first arrival is not one.
    if (late) logger.info({ bus: 'redis' }, 'Redis is ready; serving');
    else logger.info({ bus: 'redis' }, 'connected to Redis');
  });
}

async function startServer(config: Config, deck: Deck, rootDir: string): Promise<Running> {
  const clientDir = path.join(rootDir, 'dist', 'client');
  if (!existsSync(path.join(clientDir, 'slides.js'))) fail('the browser bundles are missing; run `npm run build` (npm start does it for you)', 1);

  for (const file of shadowedAssets(deck, clientDir)) {
    logger.warn({ file }, `the deck's ${file} is never served: Clicker's own /${file} answers that URL; rename it`);
  }

  const host = config.host ?? lanHost();
  let port = config.port;
  const publicBase = makePublicBase(config, host, () => port);
  let bus: RedisBus | undefined;
  if (config.redisUrl) {
    bus = new RedisBus({ url: config.redisUrl, limits: config });
    // Operators see the outage and the recovery in the logs, not only in /readyz.
    bus.onOutage(() => logger.warn({ bus: 'redis' }, 'lost the link to Redis; answering 503 until it is back'));
    bus.onReconnect(() => logger.info({ bus: 'redis' }, 'Redis is back; streams are catching up'));
    reportRedisAtStart(bus);
  }
  const log = (line: string) => logger.error(line);
  const hub = new Hub(config, Date.now, bus);
  hub.start();
  let warming = false;
  const server = createHttpServer(config, createApp({ config, hub, clientDir, rootDir, deck, publicBase, log, warmingUp: () => warming }));

  server.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EADDRINUSE') fail(`port ${config.port} is already in use; pick another with --port <n> (or PORT=<n>)`);
    if (err.code === 'EACCES') fail(`not allowed to listen on port ${config.port}; pick another with --port <n>`);
    if (err.code === 'EADDRNOTAVAIL') fail(`cannot bind ${config.bind}; pick another address with --bind <addr>`);
    fail(err.message, 1);
  });
  await new Promise<void>((resolve) => server.listen(port, config.bind, resolve));
  const addr = server.address();
  if (addr && typeof addr === 'object') port = addr.port;
  const warm = async () => {
    warming = true;
    try {
      return await warmUp(config, { clientDir, rootDir, deck, publicBase, log }, config.warmupCommands);
    } finally {
      warming = false;
    }
  };
  return { server, hub, port, host, ...(bus || config.warmupCommands === 0 ? {} : { warmUp: warm }) };
}

/** Files beside the deck the slideshow shows as they are: its stylesheets, its Markdown parts, its HTML, its pictures. */
const LIVE_FILES = /\.(css|md|markdown|html?|svg|png|jpe?g|gif|webp|avif)$/i;
/** Subfolders watched besides the deck's own (assets/, css/, img/ …): each costs an inotify watch. */
const MAX_WATCHED_FOLDERS = 64;

/**
 * Live reload: when the deck file changes, or a stylesheet, Markdown part or
 * picture beside it (in its folder or a folder just below), every open
 * slideshow reloads in place (the plugin keeps its channel and slide).
 * Editors often save by replacing the file, so folders are watched and
 * events are debounced. A change to the deck itself is checked first: a
 * half-typed front matter keeps the last good version on screen.
 */
function watchDeck(deck: Deck, hub: Hub): void {
  const dir = path.dirname(deck.file);
  const name = path.basename(deck.file);
  let timer: NodeJS.Timeout | undefined;
  let deckChanged = false;
  const changed = new Set<string>();
  const onChange = (rel: string | null) => {
    const base = rel === null ? null : path.basename(rel);
    if (rel !== name && base !== null && (base.startsWith('.') || EDITOR_FILE.test(base) || !LIVE_FILES.test(base))) return;
    // Unnamed (some platforms do not say which file): it may have been the deck.
    if (rel === name || rel === null) deckChanged = true;
    changed.add(rel ?? name);
    clearTimeout(timer);
    timer = setTimeout(() => {
      const what = [...changed].sort().join(', ');
      changed.clear();
      if (deckChanged) {
        deckChanged = false;
        try {
          deck.check();
        } catch (err) {
          process.stderr.write(`clicker: ${(err as Error).message}\n`);
          return;
        }
      }
      hub.broadcast(EVENT.reload, '{}');
      process.stdout.write(`reloaded ${what}\n`);
    }, 150);
  };
  // Each folder just below, once: made after the start too (a build that
  // cleans css/ and writes it again), and again after it was removed.
  const watched = new Map<string, FSWatcher>();
  const watchFolder = (folder: string) => {
    if (watched.has(folder) || watched.size >= MAX_WATCHED_FOLDERS || folder.startsWith('.') || folder === 'node_modules') return;
    try {
      if (!statSync(path.join(dir, folder)).isDirectory()) return;
      const w = watch(path.join(dir, folder), (_event, file) => onChange(file === null ? `${folder}/` : path.join(folder, file)));
      // A removed folder ends its watch (an error on some systems): never a crash mid-talk.
      w.on('error', () => w.close());
      w.on('close', () => watched.delete(folder));
      w.unref();
      watched.set(folder, w);
    } catch {
      // Unreadable, or gone already: not worth failing the talk over.
    }
  };
  const top = watch(dir, (_event, file) => {
    if (file !== null && !file.includes(path.sep)) {
      // A folder that (re)appeared: watch it, and forget one that went.
      if (existsSync(path.join(dir, file))) watchFolder(file);
      else watched.get(file)?.close();
    }
    onChange(file);
  });
  top.on('error', () => top.close());
  top.unref();
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) watchFolder(e.name);
  } catch {
    // The folder went away: the deck's own watch says what it can.
  }
}

function handleShutdown({ server, hub }: Running): void {
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    process.stdout.write(`\n${signal}: shutting down\n`);
    server.close(() => void hub.bus.close().finally(() => process.exit(0)));
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

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  // A terminal or log pipe that has gone (`clicker | head`, a closed log
  // reader) must not take the talk down at the next line printed.
  for (const out of [process.stdout, process.stderr]) out.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
  const rootDir = findRoot();
  let cli: ReturnType<typeof parseCli>;
  let deck: Deck | undefined;
  try {
    cli = parseCli(argv, env);
    if (cli.kind === 'serve' || cli.kind === 'export') {
      logger.level = cli.config.logLevel;
      deck = loadDeck(rootDir, cli.deck, cli.options);
    }
  } catch (err) {
    if (err instanceof ConfigError || err instanceof DeckError) fail(err.message);
    throw err;
  }

  switch (cli.kind) {
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return;
    case 'version':
      process.stdout.write(`clicker ${version(rootDir)}\n`);
      return;
    case 'init': {
      try {
        const written = runInit(rootDir, cli.file);
        process.stdout.write(`wrote ${written.map((f) => path.relative(process.cwd(), f)).join(' and ')}\npresent it with: clicker ${cli.file}\n`);
      } catch (err) {
        if (err instanceof DeckError) fail(err.message);
        throw err;
      }
      return;
    }
    case 'export': {
      // A private server on loopback, only for Chromium to print from.
      const running = await startServer({ ...cli.config, bind: '127.0.0.1', port: 0, host: '127.0.0.1' }, deck!, rootDir);
      try {
        const pages = await exportPdf(`http://127.0.0.1:${running.port}`, cli.pdf, env);
        process.stdout.write(`wrote ${cli.pdf} (${pages} pages)\n`);
      } catch (err) {
        if (err instanceof ExportError) fail(err.message, 1);
        throw err;
      } finally {
        running.hub.close();
        await running.hub.bus.close();
        running.server.closeAllConnections();
        running.server.close();
      }
      return;
    }
    case 'serve': {
      const running = await startServer(cli.config, deck!, rootDir);
      const { config } = cli;
      const url = `${config.publicUrl ?? `http://${running.host ?? 'localhost'}:${running.port}`}/`;
      const qr = await QRCode.toString(url, { type: 'terminal', small: true });
      // Before the banner: whoever reads it may stop the server straight away (a pipe's write is synchronous here).
      handleShutdown(running);
      process.stdout.write(
        `\nClicker is running${deck!.kind === 'builtin' ? '' : `, presenting ${path.relative(process.cwd(), deck!.file)}`}.\n\n` +
          `  Open the slideshow on this laptop:  ${url}\n` +
          // The key itself is never printed: this output often ends up in a log.
          (config.presenterKey === undefined ? '' : `  Or on any machine, with the presenter key:  ${url}?key=<PRESENTER_KEY>\n`) +
          (running.host || config.publicUrl ? '' : '  (no LAN address found: phones cannot reach localhost; pass --host <address>)\n') +
          `  Then scan the QR code on the title slide with your phone (same Wi-Fi)` +
          (config.approvePhones ? ',\n  and press Enter on the slideshow when it shows your phone\'s name.\n\n' : '.\n\n') +
          `${qr}\n`,
      );
      if (deck!.kind !== 'builtin') watchDeck(deck!, running.hub);
      // After the banner, not before: the presenter needs a few seconds to open the slideshow anyway.
      running.warmUp?.().then(
        (r) => logger.debug({ commands: r.commands, ms: Math.round(r.ms) }, 'warmed up the hot path'),
        (err: unknown) => logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'the startup warm-up failed; serving anyway'),
      );
      return;
    }
  }
}

main(process.argv.slice(2), process.env).catch((err: unknown) => {
  process.stderr.write(`clicker: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
