// Named defaults for every option, and the one place that reads the
// environment and the command line. `loadConfig` is called once, in the entry
// point; everything else takes a `Config` so tests can build their own.
import { parseArgs } from 'node:util';
import type { LevelWithSilent } from 'pino';
import { z } from 'zod';
import proxyaddr from 'proxy-addr';
import { COMMAND_DEADLINE_MS } from '../protocol/wire';

/**
 * The longest duration Node's timers hold (2^31-1 ms, about 24.8 days): past
 * it, setTimeout and setInterval fire after 1 ms instead, with only a
 * warning, and so do browsers' timers (an EventSource's `retry:`). Every
 * millisecond option is capped at it: most reach a timer, and for the ages
 * and the TTL anything longer is a typo, not a talk.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** pino's levels, most severe first, and 'silent'. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const satisfies readonly LevelWithSilent[];
export type LogLevel = (typeof LOG_LEVELS)[number];

export const DEFAULTS = {
  /** TCP port; 0 picks a free one. `--port` or `PORT`. */
  port: 3000,
  /** Address to bind. All interfaces, so a phone on the LAN can reach the laptop. `--bind` or `BIND`. */
  bind: '0.0.0.0',
  /** Host put into the QR code and printed URL; default: the best-ranked LAN address. `--host` or `CLICKER_HOST`. */
  host: undefined as string | undefined,
  /** Full base URL for the QR code, for a reverse proxy or tunnel (e.g. https://talk.example.org). `--public-url` or `PUBLIC_URL`. */
  publicUrl: undefined as string | undefined,
  /** Heartbeat comment interval on every stream; under any proxy's 60 s idle timeout. `HEARTBEAT_MS`. */
  heartbeatMs: 15_000,
  /**
   * Heartbeat interval on the streams of key holders, the slideshow and its
   * paired phones, never longer than `heartbeatMs`. Their pages watch for
   * silence (1.5 beats and 2 s): a connection that died without a word, as
   * a laptop's Wi-Fi can leave one, is found in 9.5 s rather than the
   * room's 24.5, well inside a tap's 30 s. A talk has a handful of such
   * streams, so the beats cost nothing. `KEY_HOLDER_BEAT_MS`.
   */
  keyHolderBeatMs: 5_000,
  /**
   * How long the slideshow's streams may all be gone before its phones and
   * followers are told it is not connected (EVENT.slideshow). A Wi-Fi
   * hiccup or a server restart cuts and reopens its stream within this, and
   * is not news. `SLIDESHOW_AWAY_MS`.
   */
  slideshowAwayMs: 4_000,
  /** `retry:` hint sent to EventSource clients. `SSE_RETRY_MS`. */
  retryMs: 1_000,
  /** Events kept per channel for replay to a reconnecting client. `HISTORY_MAX`. */
  historyMax: 500,
  /** Oldest event kept for replay. `HISTORY_MAX_AGE_MS`. */
  historyMaxAgeMs: 10 * 60_000,
  /**
   * A kept command older than this is not replayed: a tap is meant for the
   * slide in front of the presenter when it was made, and a slideshow that
   * comes back after a long absence (its tab closed, the laptop asleep) would
   * otherwise jump through every tap made meanwhile. The phone gives up an
   * unsent tap after the same 30 s (COMMAND_DEADLINE_MS). State events are
   * unaffected: the snapshot always says where the deck is. `COMMAND_REPLAY_MAX_AGE_MS`.
   */
  commandReplayMaxAgeMs: COMMAND_DEADLINE_MS,
  /** A channel with no subscribers and no traffic for this long is dropped. `CHANNEL_TTL_MS`. */
  channelTtlMs: 6 * 60 * 60_000,
  /** Channels one process will hold. `MAX_CHANNELS`. */
  maxChannels: 10_000,
  /** Open streams on one channel: a keynote's audience fits. `MAX_SUBSCRIBERS_PER_CHANNEL`. */
  maxSubscribersPerChannel: 19_500,
  /** Open streams from one client address. A venue's NAT puts a whole room behind one address, so this is generous. `MAX_SUBSCRIBERS_PER_IP`. */
  maxSubscribersPerIp: 2_000,
  /** Channels one address may create per minute. `CREATE_PER_MINUTE`. */
  createPerMinute: 30,
  /** Questions one follower address may ask per minute, per channel. `QUESTIONS_PER_MINUTE`. */
  questionsPerMinute: 3,
  /** Reactions one follower address may send per 10 s, per channel. `REACTIONS_PER_10S`. */
  reactionsPer10s: 10,
  /**
   * Pairing requests one address may make per minute, per channel. A phone
   * waiting for the slideshow to allow it asks once a second, and a venue's
   * NAT may put several phones behind one address. `KNOCKS_PER_MINUTE`.
   */
  knocksPerMinute: 180,
  /**
   * New phones (a first knock, which gets a new key and name) one address may
   * add per minute, per channel: each shows on the slideshow, and each draw
   * is a chance at a name like the presenter's phone's. `NEW_PHONES_PER_MINUTE`.
   */
  newPhonesPerMinute: 10,
  /** Cap on JSON bodies of commands and pairing requests. */
  maxBodyBytes: 4 * 1024,
  /**
   * Cap on the slideshow's state report, which carries speaker notes (up to
   * 8,000 characters) and the outline (the slideshow keeps it within 64 KiB,
   * cutting long titles of a long deck).
   */
  maxStateBytes: 128 * 1024,
  /** Bytes a slow subscriber may have queued before it is dropped (it reconnects and replays). */
  maxQueuedBytes: 1024 * 1024,
  /** Time allowed to receive request headers; at most `requestTimeoutMs`, as node:http requires. `HEADERS_TIMEOUT_MS`. */
  headersTimeoutMs: 10_000,
  /** Time allowed to receive a whole request; at least `headersTimeoutMs`. `REQUEST_TIMEOUT_MS`. */
  requestTimeoutMs: 15_000,
  /** Idle keep-alive; far above Node's 5 s so an idle phone never pays a TCP handshake per tap. */
  keepAliveTimeoutMs: 120_000,
  /**
   * Serve streams, commands and pointer updates with Clicker's own strict
   * HTTP/1.1 parser (raw-http.ts), which hands everything else to node:http.
   * On by default: it takes about a third off each command's latency. `RAW_HTTP=0` turns it off.
   */
  rawHttp: true,
  /**
   * Commands the server sends itself right after it starts, through a
   * throwaway copy of the app on a private loopback port (warmup.ts), so the
   * first real taps run optimized code. Under a second on a 2-core machine,
   * while the presenter opens the slideshow. Skipped with Redis.
   * `WARMUP_COMMANDS`; 0 turns it off.
   */
  warmupCommands: 3_000,
  /** Honour X-Forwarded-* from a reverse proxy in front. `--trust-proxy` or `TRUST_PROXY=1`. */
  trustProxy: false,
  /**
   * The peers whose X-Forwarded-* are believed when `trustProxy` is on:
   * by default a proxy on this machine (loopback) and no other, since any
   * other address on the LAN may be a phone writing the headers itself.
   * `TRUST_PROXY=10.0.0.5,10.0.1.0/24` names the proxies instead (and turns
   * trust on); `loopback` may be one of them.
   */
  trustedProxies: ['loopback'] as readonly string[],
  /**
   * The presenter's slideshow (`/`, and its Markdown at `/_deck.md`) holds
   * the speaker notes, and the room knows the server's address from the QR:
   * by default it opens only in a browser on this machine. For a server the
   * presenter reaches over the network (behind a proxy, say), this secret
   * opens it on any machine, at `/?key=<it>`: once opened, the key moves into
   * a cookie and off the address bar. 16 to 128 letters, digits, `-` or `_`.
   * Never printed or logged. `PRESENTER_KEY`; unset by default (this machine
   * only). `--presenter-anywhere` (`PRESENTER_ANYWHERE=1`) says the same
   * thing and needs it: the slideshow is never open to everyone.
   */
  presenterKey: undefined as string | undefined,
  /**
   * The pairing QR is on the projector, so anyone in the room can scan it,
   * and the first to do so used to get the remote. With approval on, a phone
   * that scans it shows a name ("Otter 27") and waits; the slideshow shows
   * the same name and the presenter allows it (Enter, or a click). Off, the
   * first phone with the code pairs at once: for a rehearsal alone.
   * `APPROVE_PHONES=0` turns it off.
   */
  approvePhones: true,
  /** Redis for several instances sharing channels, e.g. redis://10.0.0.5:6379; unset: the in-memory bus. `REDIS_URL`. */
  redisUrl: undefined as string | undefined,
  /** Extra origins allowed to call the API from a browser, besides the page's own. `--allow-origin` or `ALLOW_ORIGINS` (comma-separated). */
  allowOrigins: [] as string[],
  /** Least severe level logged (one of LOG_LEVELS). `LOG_LEVEL`. */
  logLevel: 'info' as LogLevel,
};

export type Config = typeof DEFAULTS;

export class ConfigError extends Error {}

const positiveInt = z.coerce.number().int().positive();
const wholeNumber = z.coerce.number().int().min(0);

/** Every flag the command line knows, for the server and for the deck commands. */
const OPTIONS = {
  port: { type: 'string', short: 'p' },
  host: { type: 'string' },
  'public-url': { type: 'string' },
  bind: { type: 'string' },
  'trust-proxy': { type: 'boolean' },
  'presenter-anywhere': { type: 'boolean' },
  'allow-origin': { type: 'string', multiple: true },
  theme: { type: 'string' },
  title: { type: 'string' },
  transition: { type: 'string' },
  pdf: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

export type CliValues = Record<string, string | boolean | string[] | undefined>;

/** Splits argv into flags and positionals; an unknown flag or a missing value is a one-line ConfigError. */
export function parseCommandLine(argv: string[]): { values: CliValues; positionals: string[] } {
  try {
    return parseArgs({ args: argv, strict: true, allowPositionals: true, options: OPTIONS });
  } catch (err) {
    // Node's messages run over several lines with hints; the first line says it all.
    const first = (err as Error).message.split('\n')[0]!.replace(/\. To specify a positional argument.*$/, '');
    throw new ConfigError(`${first} (see clicker --help)`);
  }
}

/** Parses argv and env once, for the server alone. Throws ConfigError with a one-line message on bad input. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): Config {
  const { values, positionals } = parseCommandLine(argv);
  if (positionals.length) throw new ConfigError(`unexpected argument "${positionals[0]}" (see clicker --help)`);
  return configFrom(values, env);
}

/** The words an on/off variable takes. */
const ON = /^(1|true|yes|on)$/i;
const OFF = /^(0|false|no|off)$/i;

/** The server's configuration from parsed flags and the environment. */
export function configFrom(values: CliValues, env: NodeJS.ProcessEnv): Config {
  const pick = (flag: string, envName: string): string | undefined => {
    const v = values[flag];
    return typeof v === 'string' ? v : env[envName] || undefined;
  };
  /** A whole-number variable, at most `max` when given (`unit` follows it in the error). */
  const num = (envName: string, fallback: number, opts: { zeroAllowed?: boolean; max?: number; unit?: string } = {}): number => {
    const raw = env[envName];
    if (raw === undefined) return fallback;
    const parsed = (opts.zeroAllowed ? wholeNumber : positiveInt).safeParse(raw);
    if (!parsed.success) throw new ConfigError(`${envName} must be a ${opts.zeroAllowed ? 'whole number' : 'positive integer'}, got "${raw}"`);
    if (opts.max !== undefined && parsed.data > opts.max) throw new ConfigError(`${envName} must be at most ${opts.max}${opts.unit ?? ''}, got "${raw}"`);
    return parsed.data;
  };
  const ms = { max: MAX_TIMER_MS, unit: ' ms (about 24 days)' };
  /** An on/off variable: 1 or 0, and the words people also write (TRUST_PROXY=true was silently off). */
  const onOff = (envName: string): boolean | undefined => {
    const raw = env[envName];
    if (raw === undefined || raw === '') return undefined;
    if (ON.test(raw)) return true;
    if (OFF.test(raw)) return false;
    throw new ConfigError(`${envName} must be 1 or 0 (or true or false), got "${raw}"`);
  };

  // TRUST_PROXY as a list of proxy addresses or subnets, rather than on or off.
  const rawTrust = env.TRUST_PROXY?.trim();
  let trustedList: string[] | undefined;
  if (rawTrust && !ON.test(rawTrust) && !OFF.test(rawTrust)) {
    trustedList = rawTrust.split(',').map((a) => a.trim());
    try {
      proxyaddr.compile(trustedList);
    } catch {
      throw new ConfigError(`TRUST_PROXY must be 1 or 0, or the proxies' addresses or subnets (10.0.0.5,10.0.1.0/24), got "${rawTrust}"`);
    }
  }

  // 0 asks the OS for a free port (tests and benchmarks use it).
  const rawPort = pick('port', 'PORT');
  const port = rawPort === undefined ? DEFAULTS.port : Number(rawPort);
  if (rawPort !== undefined && (!/^\d{1,5}$/.test(rawPort) || port > 65_535)) {
    const from = typeof values.port === 'string' ? '--port' : 'PORT';
    throw new ConfigError(`${from} must be a port number from 0 to 65535, got "${rawPort}"`);
  }

  const publicUrl = pick('public-url', 'PUBLIC_URL');
  if (publicUrl !== undefined) {
    let url: URL;
    try {
      url = new URL(publicUrl);
    } catch {
      throw new ConfigError(`--public-url must be an absolute http(s) URL, got "${publicUrl}"`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ConfigError(`--public-url must be an absolute http(s) URL, got "${publicUrl}"`);
    }
  }
  const host = pick('host', 'CLICKER_HOST');
  if (host !== undefined && !/^[A-Za-z0-9.:[\]-]+$/.test(host)) throw new ConfigError(`--host must be a host name or address, got "${host}"`);

  const allowOrigins = [
    ...((values['allow-origin'] as string[] | undefined) ?? []),
    ...(env.ALLOW_ORIGINS ? env.ALLOW_ORIGINS.split(',') : []),
  ].map((o) => o.trim()).filter(Boolean);
  for (const origin of allowOrigins) {
    if (!/^https?:\/\/[^/\s]+$/.test(origin)) throw new ConfigError(`--allow-origin must look like http://host:port, got "${origin}"`);
  }

  const redisUrl = env.REDIS_URL || undefined;
  if (redisUrl !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(redisUrl);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || !url.hostname) {
      throw new ConfigError(`REDIS_URL must look like redis://host:6379 (or rediss:// for TLS), got "${redisUrl.replace(/\/\/[^@/]*@/, '//***@')}"`);
    }
  }

  const presenterKey = env.PRESENTER_KEY || undefined;
  // The key itself never goes into a message: it may be half right.
  if (presenterKey !== undefined && !/^[A-Za-z0-9_-]{16,128}$/.test(presenterKey)) {
    throw new ConfigError(`PRESENTER_KEY must be 16 to 128 letters, digits, - or _ (it goes into a link), got ${presenterKey.length} characters`);
  }
  if ((values['presenter-anywhere'] === true || onOff('PRESENTER_ANYWHERE') === true) && presenterKey === undefined) {
    throw new ConfigError(
      'the slideshow holds the speaker notes: to open it from other machines, set PRESENTER_KEY to a secret (16 or more letters, digits, - or _) and open /?key=<that secret>',
    );
  }

  const rawLevel = env.LOG_LEVEL || undefined;
  const logLevel = LOG_LEVELS.find((l) => l === rawLevel) ?? DEFAULTS.logLevel;
  if (rawLevel !== undefined && logLevel !== rawLevel) throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}; got "${rawLevel}"`);

  // node:http refuses headersTimeout > requestTimeout only when the server is
  // built, with a range error that names neither variable; raising one alone
  // (or lowering the other) trips it against the other's default.
  const heartbeatMs = num('HEARTBEAT_MS', DEFAULTS.heartbeatMs, ms);
  const headersTimeoutMs = num('HEADERS_TIMEOUT_MS', DEFAULTS.headersTimeoutMs, ms);
  const requestTimeoutMs = num('REQUEST_TIMEOUT_MS', DEFAULTS.requestTimeoutMs, ms);
  if (headersTimeoutMs > requestTimeoutMs) {
    const shown = (name: string, value: number) => `${name} (${value}${env[name] === undefined ? ', the default' : ''})`;
    throw new ConfigError(`${shown('HEADERS_TIMEOUT_MS', headersTimeoutMs)} must not exceed ${shown('REQUEST_TIMEOUT_MS', requestTimeoutMs)}`);
  }

  return Object.freeze({
    ...DEFAULTS,
    port,
    bind: pick('bind', 'BIND') ?? DEFAULTS.bind,
    host,
    publicUrl: publicUrl?.replace(/\/+$/, ''),
    heartbeatMs,
    keyHolderBeatMs: Math.min(num('KEY_HOLDER_BEAT_MS', DEFAULTS.keyHolderBeatMs, ms), heartbeatMs),
    retryMs: num('SSE_RETRY_MS', DEFAULTS.retryMs, ms),
    slideshowAwayMs: num('SLIDESHOW_AWAY_MS', DEFAULTS.slideshowAwayMs, ms),
    historyMax: num('HISTORY_MAX', DEFAULTS.historyMax),
    historyMaxAgeMs: num('HISTORY_MAX_AGE_MS', DEFAULTS.historyMaxAgeMs, ms),
    commandReplayMaxAgeMs: num('COMMAND_REPLAY_MAX_AGE_MS', DEFAULTS.commandReplayMaxAgeMs, ms),
    channelTtlMs: num('CHANNEL_TTL_MS', DEFAULTS.channelTtlMs, ms),
    maxChannels: num('MAX_CHANNELS', DEFAULTS.maxChannels),
    maxSubscribersPerChannel: num('MAX_SUBSCRIBERS_PER_CHANNEL', DEFAULTS.maxSubscribersPerChannel),
    maxSubscribersPerIp: num('MAX_SUBSCRIBERS_PER_IP', DEFAULTS.maxSubscribersPerIp),
    createPerMinute: num('CREATE_PER_MINUTE', DEFAULTS.createPerMinute),
    questionsPerMinute: num('QUESTIONS_PER_MINUTE', DEFAULTS.questionsPerMinute),
    reactionsPer10s: num('REACTIONS_PER_10S', DEFAULTS.reactionsPer10s),
    knocksPerMinute: num('KNOCKS_PER_MINUTE', DEFAULTS.knocksPerMinute),
    newPhonesPerMinute: num('NEW_PHONES_PER_MINUTE', DEFAULTS.newPhonesPerMinute),
    headersTimeoutMs,
    requestTimeoutMs,
    trustProxy: values['trust-proxy'] === true || trustedList !== undefined || onOff('TRUST_PROXY') === true,
    trustedProxies: trustedList ?? DEFAULTS.trustedProxies,
    presenterKey,
    rawHttp: onOff('RAW_HTTP') ?? DEFAULTS.rawHttp,
    approvePhones: onOff('APPROVE_PHONES') ?? DEFAULTS.approvePhones,
    warmupCommands: num('WARMUP_COMMANDS', DEFAULTS.warmupCommands, { zeroAllowed: true }),
    allowOrigins,
    redisUrl,
    logLevel,
  });
}
