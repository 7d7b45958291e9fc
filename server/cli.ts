// The command line: `clicker [deck]` presents, `clicker init FILE` writes a
// starter deck, `clicker export DECK --pdf FILE` prints a handout. Parsing is
// pure (tests call it); each command's work lives in its own function.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { configFrom, ConfigError, parseCommandLine, type Config } from './config';
import { checkOptions, DeckError, THEMES, TRANSITIONS, type DeckOptions } from './deck';

export const USAGE = `Clicker: present a reveal.js talk and drive it from your phone.

usage:
  clicker [DECK] [options]            present DECK (a .md or .html file, or a folder
                                      with index.md or index.html); no DECK: the demo deck
  clicker init FILE.md                write a starter deck that shows every feature
  clicker export DECK --pdf FILE.pdf  write a PDF handout, one page per slide

deck options (override the deck's front matter):
  --theme NAME          ${THEMES.join(', ')}
  --title TEXT          page title
  --transition NAME     ${TRANSITIONS.join(', ')}

server options:
  -p, --port N          port (default 3000; 0 picks a free one; env PORT)
  --host HOST           host for the QR code (default: the best LAN address;
                        env CLICKER_HOST)
  --public-url URL      base URL for the QR code, behind a proxy or tunnel
                        (env PUBLIC_URL)
  --bind ADDR           address to listen on (default 0.0.0.0; env BIND)
  --trust-proxy         trust X-Forwarded-* from a proxy on this machine: the
                        QR host, the client's address (limits, the presenter
                        check) and https (env TRUST_PROXY=1; or name proxies
                        elsewhere: TRUST_PROXY=10.0.0.5,10.0.1.0/24)
  --presenter-anywhere  open the slideshow (with its notes) on other machines
                        too, at /?key=KEY; needs env PRESENTER_KEY=KEY (a
                        secret of 16+ letters, digits, - or _), which alone
                        does the same (env PRESENTER_ANYWHERE=1)
  --allow-origin ORIGIN allow browser calls from ORIGIN (repeatable; env
                        ALLOW_ORIGINS, comma-separated)

  -h, --help            this help
  -v, --version         the version

environment only:
  REDIS_URL             share channels between instances through Redis
  APPROVE_PHONES        1 (default): a phone that scans the pairing QR waits
                        until the slideshow allows it; 0: the first one pairs
  LOG_LEVEL             info (default), fatal, error, warn, debug, trace, silent
  CHROMIUM_PATH         the Chromium that export --pdf uses
  limits, timeouts and caps: see server/config.ts, each with its default`;

export type Cli =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'serve'; config: Config; deck: string | undefined; options: DeckOptions }
  | { kind: 'init'; file: string }
  | { kind: 'export'; config: Config; deck: string | undefined; options: DeckOptions; pdf: string };

/** Parses the command line; a ConfigError or DeckError is a usage error (exit 2). */
export function parseCli(argv: string[], env: NodeJS.ProcessEnv): Cli {
  const { values, positionals } = parseCommandLine(argv);
  if (values.help) return { kind: 'help' };
  if (values.version) return { kind: 'version' };
  const str = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
  const options: DeckOptions = { theme: str('theme'), title: str('title'), transition: str('transition') };
  checkOptions(options);

  const [first, ...rest] = positionals;
  if (first === 'init') {
    if (rest.length !== 1) throw new ConfigError('init takes one file name, e.g. clicker init talk.md');
    return { kind: 'init', file: rest[0]! };
  }
  if (first === 'export') {
    const pdf = str('pdf');
    if (!pdf) throw new ConfigError('export needs --pdf FILE.pdf, e.g. clicker export talk.md --pdf talk.pdf');
    if (rest.length > 1) throw new ConfigError(`unexpected argument "${rest[1]}" (see clicker --help)`);
    return { kind: 'export', config: configFrom(values, env), deck: rest[0], options, pdf };
  }
  if (positionals.length > 1) throw new ConfigError(`unexpected argument "${positionals[1]}" (see clicker --help)`);
  if (values.pdf !== undefined) throw new ConfigError('--pdf goes with the export command (see clicker --help)');
  return { kind: 'serve', config: configFrom(values, env), deck: first, options };
}

export function version(rootDir: string): string {
  const pkg = JSON.parse(readFileSync(path.join(rootDir, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** Writes the starter deck (and its image); refuses to overwrite anything. */
export function runInit(rootDir: string, file: string): string[] {
  const target = path.resolve(file);
  if (!/\.(md|markdown)$/i.test(target)) throw new DeckError(`${file}: the starter deck is Markdown, name it something.md`);
  const image = path.join(path.dirname(target), 'clicker-logo.svg');
  const logo = readFileSync(path.join(rootDir, 'slides', 'clicker-logo.svg'), 'utf8');
  // The logo a starter deck already put in this folder is the same file: a
  // second starter deck beside it shares it. Any other file by that name is
  // the user's, and is never overwritten.
  const sharedLogo = existsSync(image) && readFileSync(image, 'utf8') === logo;
  for (const p of sharedLogo ? [target] : [target, image]) if (existsSync(p)) throw new DeckError(`${path.relative(process.cwd(), p) || p} already exists; not overwriting it`);
  if (!existsSync(path.dirname(target))) throw new DeckError(`no such folder: ${path.dirname(file)}`);
  writeFileSync(target, readFileSync(path.join(rootDir, 'slides', 'starter.md'), 'utf8'));
  if (sharedLogo) return [target];
  writeFileSync(image, logo);
  return [target, image];
}

export { ConfigError, DeckError };
