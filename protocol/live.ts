// Browser-side transport shared by the slideshow and the phone: a stream that
// never gives up, and a command sender that retries without duplicating.
//
// EventSource retries by itself after a dropped connection, but gives up for
// good on any non-200 answer (a proxy's 502 while the server restarts, a 404
// for a channel the restarted server does not know yet). The watchdog here
// notices that, and opens a new EventSource with jittered backoff, resuming
// from the last event id it saw. Since EventSource never says why it gave up,
// one HEAD on the same URL tells a channel the server does not know from a
// server that is away.

import { COMMAND_DEADLINE_MS, EVENT } from './wire';

/**
 * `waiting`: the server answers, but does not know the channel. The
 * slideshow has not registered it again since a server restart (it does as
 * soon as it is open), or the talk is over. Retries go on as for
 * `reconnecting`.
 */
export type LinkState = 'connecting' | 'live' | 'reconnecting' | 'waiting' | 'offline';

export interface StreamHandlers {
  /** Called for each named event with its parsed JSON data. */
  onEvent(event: string, data: unknown): void;
  onState?(state: LinkState): void;
  /**
   * Called before a new EventSource replaces one that gave up; the slideshow
   * uses it to re-register its channel after a server restart.
   */
  beforeReconnect?(): Promise<void>;
  /**
   * The stream token of a key holder (the slideshow, a paired phone), read
   * at each (re)connect: its stream then has a slot kept for the talk's own
   * links, which the room's streams cannot take.
   */
  token?(): string | undefined;
}

/**
 * A stream silent for one and a half beats and this much more is taken for
 * dead (see EVENT.beat): 24.5 s at the server's default 15 s. A beat late by
 * a busy server or a slow network is not a death; and a slideshow that
 * found out later would find the taps made meanwhile too old to apply
 * (COMMAND_DEADLINE_MS).
 */
const SILENCE_SLACK_MS = 2_000;
/** The longest beat interval taken from a server: a setTimeout holds at most 2^31 - 1 ms. */
const MAX_BEAT_MS = 600_000;

const BACKOFF_MIN_MS = 300;
const BACKOFF_MAX_MS = 8_000;
/** How long the HEAD that asks why a stream was refused may take; unanswered, the server counts as away. */
const PROBE_TIMEOUT_MS = 5_000;

/** Full jitter keeps a room of phones from reconnecting in lockstep after a restart. */
const jitter = (attempt: number) => Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);

export class LiveStream {
  private es: EventSource | null = null;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private reconnecting = false;
  /** The last probe found no such channel: retries say `waiting` until a stream opens or a probe says otherwise. */
  private channelMissing = false;
  /** How long a silence may last before the stream counts as dead; unknown until the server's first beat. */
  private silenceMs: number | null = null;
  private silenceTimer: ReturnType<typeof setTimeout> | undefined;
  /** When the current stream last carried anything (performance.now()): stamped per event, read only when the watchdog fires. */
  private heardAt = 0;

  constructor(
    private readonly url: string,
    private readonly events: readonly string[],
    private readonly handlers: StreamHandlers,
    /** Where to resume from; a reloaded slideshow passes the last id it applied. */
    private lastEventId = '',
  ) {}

  /**
   * Where the next (re)connect resumes from, when the channel was made anew
   * from that id: nothing before it exists any more, and what comes after it
   * must all be replayed.
   */
  resumeFrom(id: string): void {
    this.lastEventId = id;
  }

  /** The id of the last event received, for persisting across reloads. */
  get lastId(): string {
    return this.lastEventId;
  }

  start(): void {
    this.open();
    // A phone that slept, a tab brought back, or a network that returned:
    // try at once instead of waiting out the backoff.
    const nudge = () => {
      if (!this.stopped && this.es?.readyState !== EventSource.OPEN) this.reconnectNow();
    };
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') nudge();
    });
    window.addEventListener('pageshow', nudge);
    // Back online, always start afresh, even if the old stream still looks
    // open: it may have died with the old network without EventSource ever
    // noticing (heartbeats are comments, which it never surfaces), and the
    // 'offline' shown meanwhile would otherwise stay up. Resuming from the
    // last event id makes the extra reconnect lossless.
    window.addEventListener('online', () => {
      if (!this.stopped) this.reconnectNow();
    });
    window.addEventListener('offline', () => this.setState('offline'));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.silenceTimer);
    this.es?.close();
  }

  /**
   * Opens a new stream at once, resuming after the last event seen, for a
   * caller that has reason to doubt this one (the phone's tap went
   * unreported): a stream that died without a word is otherwise found out
   * only by its silence.
   */
  renew(): void {
    if (!this.stopped) this.reconnectNow();
  }

  /**
   * Watches `es` for silence. Past a beat and a half and the slack with
   * nothing at all, not even a beat, the connection is dead whatever
   * EventSource thinks (it never reads a dead TCP connection as closed while
   * it only receives), and a new one resumes where it stopped. Events only
   * stamp `heardAt`: the timer is set again when it fires, not per event, so
   * a command or a 60 Hz pointer stream costs no timer of its own.
   */
  private watch(es: EventSource): void {
    clearTimeout(this.silenceTimer);
    const limit = this.silenceMs;
    if (limit === null) return;
    const check = () => {
      if (this.stopped || es !== this.es) return;
      const quiet = performance.now() - this.heardAt;
      if (quiet < limit) {
        this.silenceTimer = setTimeout(check, limit - quiet);
        return;
      }
      this.setState('reconnecting');
      this.reconnectNow();
    };
    check();
  }

  private setState(s: LinkState): void {
    this.handlers.onState?.(s);
  }

  private open(): void {
    // The stream carries only the events this client listens to: the server
    // skips the rest (the phone's own commands and pointer positions, the
    // slideshow's own state reports), so nobody is woken for an event it drops.
    // Heartbeats as events, whoever the caller is: they are this class's own, and never reach onEvent.
    const events = [...new Set([...this.events, EVENT.beat])];
    const params = new URLSearchParams({ events: events.join(',') });
    if (this.lastEventId) params.set('lastEventId', this.lastEventId);
    const token = this.handlers.token?.();
    if (token) params.set('as', token);
    const url = `${this.url}?${params.toString().replace(/%2C/g, ',')}`;
    const es = new EventSource(url);
    this.es = es;
    this.setState(this.attempt === 0 ? 'connecting' : this.retrying());
    es.onopen = () => {
      this.attempt = 0;
      this.channelMissing = false;
      this.setState('live');
      this.heardAt = performance.now();
      this.watch(es);
    };
    es.addEventListener(EVENT.beat, (ev) => {
      // The data is the server's own Beat, {"every":ms}; read with a pattern, not JSON and a check: the drop-in has a byte budget.
      const every = Number(/"every":(\d+)/.exec((ev as MessageEvent<string>).data)?.[1]);
      const limit = 1.5 * every + SILENCE_SLACK_MS;
      this.heardAt = performance.now();
      if (every > 0 && every <= MAX_BEAT_MS && limit !== this.silenceMs) {
        // The first beat, or a new interval (a restarted server): the watch starts, or runs to the new limit.
        this.silenceMs = limit;
        this.watch(es);
      }
    });
    es.onerror = () => {
      if (es !== this.es) return;
      if (es.readyState === EventSource.CLOSED) {
        this.scheduleReconnect();
      } else {
        this.setState('reconnecting');
      }
    };
    for (const name of this.events) {
      if (name === EVENT.beat) continue;
      es.addEventListener(name, (ev) => {
        this.heardAt = performance.now();
        const msg = ev as MessageEvent<string>;
        if (msg.lastEventId) this.lastEventId = msg.lastEventId;
        let data: unknown;
        try {
          data = JSON.parse(msg.data);
        } catch {
          return;
        }
        this.handlers.onEvent(name, data);
      });
    }
  }

  private retrying(): LinkState {
    return this.channelMissing ? 'waiting' : 'reconnecting';
  }

  private scheduleReconnect(): void {
    // A stream known to have failed needs no watchdog: the backoff below decides when to try again.
    clearTimeout(this.silenceTimer);
    const failed = this.es;
    failed?.close();
    const offline = navigator.onLine === false;
    this.setState(offline ? 'offline' : this.retrying());
    if (!offline) void this.probe(failed);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.reconnect(), jitter(this.attempt++));
  }

  /**
   * Why the stream `failed` was refused: a 404 means the server is up and
   * does not know the channel; no answer, or any other (a proxy's 502 while
   * the server restarts), means the server is away. A HEAD opens no stream.
   * An answer that comes after a newer stream has opened is dropped.
   */
  private async probe(failed: EventSource | null): Promise<void> {
    let missing: boolean;
    // A host that stopped answering must not hold a probe for the OS's whole connect timeout.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), PROBE_TIMEOUT_MS);
    try {
      const res = await fetch(this.url, { method: 'HEAD', cache: 'no-store', signal: abort.signal });
      missing = res.status === 404;
    } catch {
      missing = false;
    } finally {
      clearTimeout(timer);
    }
    if (this.stopped || this.es !== failed) return;
    this.channelMissing = missing;
    if (navigator.onLine !== false) this.setState(this.retrying());
  }

  private reconnectNow(): void {
    clearTimeout(this.timer);
    void this.reconnect();
  }

  private async reconnect(): Promise<void> {
    if (this.stopped || this.reconnecting) return;
    this.reconnecting = true;
    this.es?.close();
    try {
      await this.handlers.beforeReconnect?.();
    } catch {
      // The server may still be down; the stream's own failure schedules the next try.
    } finally {
      this.reconnecting = false;
    }
    if (!this.stopped) this.open();
  }
}

/** A random id for a command: 16 base64url characters (96 bits). */
export function commandId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_');
}

export class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(typeof body.error === 'string' ? body.error : `HTTP ${status}`);
  }
}

/** JSON request helper; throws HttpStatusError on a 4xx/5xx with the server's JSON error. */
export async function requestJson<T>(
  method: string,
  url: string,
  opts: { body?: unknown; key?: string; timeoutMs?: number } = {},
): Promise<T> {
  const headers: Record<string, string> = {};
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  if (opts.key) headers.Authorization = `Bearer ${opts.key}`;
  const res = await fetch(url, {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    signal: AbortSignal.timeout(opts.timeoutMs ?? 8_000),
    cache: 'no-store',
  });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    body = { error: text.slice(0, 200) };
  }
  if (!res.ok) throw new HttpStatusError(res.status, body);
  return body as T;
}

export { COMMAND_DEADLINE_MS };

/**
 * Sends a command, retrying with the same id until the server answers. The
 * server drops a repeated id, so a POST that timed out after it arrived can
 * be retried without advancing the deck twice. A 4xx is final.
 */
export async function sendCommand(
  url: string,
  key: string,
  cmd: { id: string; type: string } & Record<string, unknown>,
  /** When to give up (epoch ms); 30 s from now by default. A command already past it is not sent at all. */
  deadline = Date.now() + COMMAND_DEADLINE_MS,
): Promise<void> {
  if (Date.now() > deadline) throw new Error('command given up before it could be sent');
  for (let attempt = 0; ; attempt++) {
    try {
      await requestJson('POST', url, { body: cmd, key, timeoutMs: 4_000 });
      return;
    } catch (err) {
      // 404 is retried too: after a server restart the channel is back as soon as the slideshow re-registers.
      if (err instanceof HttpStatusError && err.status < 500 && ![404, 408, 429].includes(err.status)) throw err;
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, Math.min(2_000, 150 * 2 ** attempt)));
    }
  }
}
