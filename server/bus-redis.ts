// The Redis bus: channels shared by every Clicker instance that points at the
// same Redis, so any instance can answer any request (no sticky sessions).
//
//   clicker:ch:{id}        hash    deckHash, pairCodeHash ('' = none), state, slides, spotlight (JSON), qopen ('1'/'0'),
//                                  refused (key hashes the slideshow refused under the open code, space-separated),
//                                  slideshow ('1' while a slideshow is connected, as the last slideshow event said)
//   clicker:ch:{id}:ctl    set     controller key hashes
//   clicker:ch:{id}:seq    string  last event id: INCR keeps ids monotonic across instances
//   clicker:ch:{id}:log    stream  kept events, entry id "<event id>-0", fields e, d, t
//   clicker:ch:{id}:floor  string  events after this id are all still in the log
//   clicker:ch:{id}:dd:{k} string  event id of a command id, for duplicate detection
//   clicker:ch:{id}:q      list    audience questions (JSON), newest first, the last 30
//   clicker:ch:{id}:decks  hash    instance id -> until when its word that it holds a slideshow stream stands (bus clock ms)
//   clicker:chans          zset    channel ids scored by expiry time, for count()
//   clicker:events         pub/sub every event, tagged with the instance that appended it
//
// Every key of a channel carries the channel TTL, refreshed on use, so
// abandoned channels vanish by themselves. Multi-key updates are Lua scripts,
// so they are atomic across instances.
//
// Every instance writes its own events to its streams from their pub/sub
// echo too (onOwn), not from an append's answer, so every stream on every
// instance sees the one order in which Redis numbered them.
//
// While Redis is unreachable, commands fail at once (no offline queue) and
// surface as BusUnavailable, which the HTTP layer answers with 503 and
// Retry-After; open streams stay open, and ioredis reconnects by itself.
// The hub hears when the pub/sub link drops (onOutage) and when it is back
// and subscribed with the command link up (onReconnect), to catch up.
import { createHash } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { nanoid } from 'nanoid';
import { EVENT, MAX_CONTROLLERS, slideshowData, type DeckState, type Presence, type Question, type QuestionsSummary, type SlideRef, type Spotlight } from '../protocol/messages';
import { BusUnavailable, ChannelGone, ControllersFull, MAX_REFUSED, NotAuthor, QUESTIONS_KEPT, type AppendOptions, type AppendResult, type Bus, type BusEvent, type BusLimits, type ChannelRecord, type History, type NewChannel, type SlideshowChange } from './bus';

const P = 'clicker:';
const EVENTS = `${P}events`;
const k = (id: string) => ({
  hash: `${P}ch:${id}`,
  ctl: `${P}ch:${id}:ctl`,
  seq: `${P}ch:${id}:seq`,
  log: `${P}ch:${id}:log`,
  floor: `${P}ch:${id}:floor`,
  q: `${P}ch:${id}:q`,
  decks: `${P}ch:${id}:decks`,
});
/** The keys every script refreshes the TTL of, in a fixed order. */
const channelKeys = (id: string) => {
  const x = k(id);
  return [x.hash, x.ctl, x.seq, x.log, x.floor, x.q];
};

// KEYS: hash ctl seq log floor q chans (channelKeys, then chans); ARGV: id deckHash seq ttl now pairCodeHash state slides ctl...
// ('' = none for pairCodeHash, state and slides). One script, so no instance reads a half-made record.
const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'deckHash', ARGV[2], 'pairCodeHash', ARGV[6], 'state', ARGV[7], 'slides', ARGV[8], 'qopen', ARGV[9], 'spotlight', ARGV[10])
for i = 11, #ARGV do redis.call('SADD', KEYS[2], ARGV[i]) end
redis.call('SET', KEYS[3], ARGV[3])
redis.call('SET', KEYS[5], ARGV[3])
for i = 1, 6 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
redis.call('ZADD', KEYS[#KEYS], tonumber(ARGV[5]) + tonumber(ARGV[4]), ARGV[1])
return 1`;

// KEYS: hash ctl seq log floor q dedup(or hash again) chans; ARGV: event data keep maxlen now ttl dedupTtl instance id hasDedup author
// ('' = any author). The author is checked here, with the append: a key revoked a moment ago on another instance appends nothing.
// The channel's score in chans moves with its keys' TTL: a channel kept alive by taps alone still counts.
const APPEND = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0} end
if ARGV[11] ~= '' and redis.call('HGET', KEYS[1], 'deckHash') ~= ARGV[11] and redis.call('SISMEMBER', KEYS[2], ARGV[11]) == 0 then return {-2, 0} end
if ARGV[10] == '1' then
  local seen = redis.call('GET', KEYS[7])
  if seen then return {tonumber(seen), 1} end
end
local id = redis.call('INCR', KEYS[3])
if ARGV[3] == '1' then
  local maxlen = tonumber(ARGV[4])
  while redis.call('XLEN', KEYS[4]) >= maxlen do
    local oldest = redis.call('XRANGE', KEYS[4], '-', '+', 'COUNT', 1)
    redis.call('XDEL', KEYS[4], oldest[1][1])
    redis.call('SET', KEYS[5], string.match(oldest[1][1], '^(%d+)'))
  end
  redis.call('XADD', KEYS[4], id .. '-0', 'e', ARGV[1], 'd', ARGV[2], 't', ARGV[5])
end
if ARGV[10] == '1' then redis.call('SET', KEYS[7], id, 'PX', ARGV[7]) end
for i = 1, 6 do redis.call('PEXPIRE', KEYS[i], ARGV[6]) end
redis.call('ZADD', KEYS[8], tonumber(ARGV[5]) + tonumber(ARGV[6]), ARGV[9])
redis.call('PUBLISH', '${EVENTS}', cjson.encode({i = ARGV[8], c = ARGV[9], n = id, e = ARGV[1], d = ARGV[2], t = tonumber(ARGV[5])}))
return {id, 0}`;

// KEYS: hash seq log floor; ARGV: after now maxAge. Drops entries past the age bound first.
const SINCE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local cutoff = tonumber(ARGV[2]) - tonumber(ARGV[3])
local floor = tonumber(redis.call('GET', KEYS[4]) or '0')
local entries = redis.call('XRANGE', KEYS[3], '-', '+')
local out = {}
for _, e in ipairs(entries) do
  local f = e[2]
  local t = 0
  for j = 1, #f, 2 do if f[j] == 't' then t = tonumber(f[j + 1]) end end
  local n = tonumber(string.match(e[1], '^(%d+)'))
  if t < cutoff then
    redis.call('XDEL', KEYS[3], e[1])
    if n > floor then floor = n end
  else
    table.insert(out, e)
  end
end
redis.call('SET', KEYS[4], floor, 'KEEPTTL')
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
return {last, floor, out}`;

// KEYS: hash ctl; ARGV: expected code hash, controller hash, most controllers
const SPEND = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local open = redis.call('HGET', KEYS[1], 'pairCodeHash')
if open == '' or open ~= ARGV[1] then return -2 end
if redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 0 and redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[3]) then return -3 end
redis.call('HSET', KEYS[1], 'pairCodeHash', '', 'refused', '')
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], redis.call('PTTL', KEYS[1]))
return redis.call('SCARD', KEYS[2])`;

// KEYS: hash ctl; ARGV: code hash ('' closes pairing)
const SET_CODE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'pairCodeHash', ARGV[1], 'refused', '')
return redis.call('SCARD', KEYS[2])`;

// KEYS: hash; ARGV: expected code hash, controller hash, most kept
const REFUSE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local open = redis.call('HGET', KEYS[1], 'pairCodeHash')
if open == '' or open ~= ARGV[1] then return 0 end
local list = {}
for h in string.gmatch(redis.call('HGET', KEYS[1], 'refused') or '', '%S+') do
  if h == ARGV[2] then return 1 end
  list[#list + 1] = h
end
list[#list + 1] = ARGV[2]
local from = math.max(1, #list - tonumber(ARGV[3]) + 1)
redis.call('HSET', KEYS[1], 'refused', table.concat(list, ' ', from))
return 1`;

// KEYS: hash ctl; ARGV: controller hash ('' = all)
const REVOKE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0, 0} end
local removed
if ARGV[1] == '' then removed = redis.call('SCARD', KEYS[2]); redis.call('DEL', KEYS[2])
else removed = redis.call('SREM', KEYS[2], ARGV[1]) end
local open = redis.call('HGET', KEYS[1], 'pairCodeHash') ~= '' and 1 or 0
return {removed, redis.call('SCARD', KEYS[2]), open}`;

// KEYS: hash q; ARGV: question JSON, kept
const ADD_QUESTION = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0} end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
redis.call('PEXPIRE', KEYS[2], redis.call('PTTL', KEYS[1]))
local pending = 0
for _, raw in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  if cjson.decode(raw).status == 'pending' then pending = pending + 1 end
end
return {redis.call('HGET', KEYS[1], 'qopen') == '1' and 1 or 0, pending}`;

// KEYS: hash q; ARGV: question id, status. Returns {found, spotlight JSON, open, pending}.
const MODERATE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local list = redis.call('LRANGE', KEYS[2], 0, -1)
local found = 0
local pending = 0
for i, raw in ipairs(list) do
  local q = cjson.decode(raw)
  if q.id == ARGV[1] then
    found = 1
    q.status = ARGV[2]
    redis.call('LSET', KEYS[2], i - 1, cjson.encode(q))
    if ARGV[2] == 'shown' then
      redis.call('HSET', KEYS[1], 'spotlight', cjson.encode({id = q.id, text = q.text}))
    else
      local cur = redis.call('HGET', KEYS[1], 'spotlight')
      if cur and cur ~= '' and cjson.decode(cur).id == q.id then redis.call('HSET', KEYS[1], 'spotlight', '') end
    end
  end
  if q.status == 'pending' then pending = pending + 1 end
end
return {found, redis.call('HGET', KEYS[1], 'spotlight') or '', redis.call('HGET', KEYS[1], 'qopen') == '1' and 1 or 0, pending}`;

// KEYS: hash q; ARGV: '1' or '0'
const QOPEN = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0} end
redis.call('HSET', KEYS[1], 'qopen', ARGV[1])
local pending = 0
for _, raw in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  if cjson.decode(raw).status == 'pending' then pending = pending + 1 end
end
return {tonumber(ARGV[1]), pending}`;

// KEYS: hash decks seq; ARGV: instance, until ('' = it holds none), now, ttl, id, event, data if connected, data if not.
// The sum, the change and its event are one step, so two instances' changes go out in the order they were made.
// No channel TTL is moved here: a slideshow coming or going is not use of the channel (touch and append are).
const SLIDESHOW = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0} end
if ARGV[2] == '' then redis.call('HDEL', KEYS[2], ARGV[1]) else redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end
local now = tonumber(ARGV[3])
local connected = 0
local words = redis.call('HGETALL', KEYS[2])
for i = 1, #words, 2 do
  if (tonumber(words[i + 1]) or 0) > now then connected = 1 else redis.call('HDEL', KEYS[2], words[i]) end
end
if connected == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
local was = redis.call('HGET', KEYS[1], 'slideshow') == '1' and 1 or 0
if connected == was then return {connected, 0} end
redis.call('HSET', KEYS[1], 'slideshow', connected)
local id = redis.call('INCR', KEYS[3])
local data = connected == 1 and ARGV[7] or ARGV[8]
redis.call('PUBLISH', '${EVENTS}', cjson.encode({i = ARGV[1], c = ARGV[5], n = id, e = ARGV[6], d = data, t = now}))
return {connected, id}`;

// KEYS: hash; ARGV: state, slides ('' = keep)
const SET_STATE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'slides', ARGV[2]) end
return 1`;

/** How long a catch-up waits for the command link once the subscriber link is back. */
const CATCH_UP_WAIT_MS = 5_000;

export interface RedisBusOptions {
  url: string;
  limits: BusLimits;
  now?: () => number;
  /**
   * Read Redis's clock (TIME) on each connect and stamp events on it. On by
   * default; off by default when `now` is given, a clock a test moves by hand.
   */
  syncClock?: boolean;
  /** Reconnect backoff cap, so delivery resumes within a few seconds of Redis coming back. */
  maxReconnectDelayMs?: number;
}

/** Connection errors (and commands refused while disconnected) mean "unavailable", not "bug". */
function isConnectionError(err: unknown): boolean {
  const msg = err instanceof Error ? err.message : String(err);
  return /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|Connection is closed|Stream isn't writeable|enableOfflineQueue|Command timed out|max retries|LOADING|READONLY/i.test(msg);
}

/** SHA1 of each script, worked out once: scripts run on every tap and every pointer update. */
const SCRIPT_SHA = new Map<string, string>();
function scriptSha(src: string): string {
  let sha = SCRIPT_SHA.get(src);
  if (sha === undefined) {
    sha = createHash('sha1').update(src).digest('hex');
    SCRIPT_SHA.set(src, sha);
  }
  return sha;
}

export class RedisBus implements Bus {
  readonly instanceId = nanoid(12);
  private readonly cmd: Redis;
  private readonly sub: Redis;
  private readonly now: () => number;
  /**
   * Redis's clock minus this machine's, in ms, measured with TIME on every
   * (re)connect. Event times, the history's age bound and channel expiry are
   * compared across instances, so they are read on Redis's clock: one
   * instance's clock running a minute fast must not make another's fresh
   * taps look stale, or its channels look expired.
   */
  private skew = 0;
  /** Settles once the first measurement of `skew` is done (or has failed). */
  private readonly clockSynced: Promise<void>;
  private readonly limits: BusLimits;
  private remote: ((channelId: string, ev: BusEvent) => void) | null = null;
  private own: ((channelId: string, ev: BusEvent) => void) | null = null;
  private reconnectListeners: (() => void)[] = [];
  private outageListeners: (() => void)[] = [];
  /** The subscriber link is up and subscribed; false from its drop until the catch-up may start. */
  private linkUp = false;
  private subscribedOnce = false;

  constructor(opts: RedisBusOptions) {
    this.limits = opts.limits;
    this.now = opts.now ?? Date.now;
    const base: RedisOptions = {
      // Fail at once while disconnected: a request gets a 503, never a hang.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: 2_000,
      connectTimeout: 2_000,
      retryStrategy: (times) => Math.min(100 * times, opts.maxReconnectDelayMs ?? 1_000),
      lazyConnect: false,
    };
    this.cmd = new Redis(opts.url, base);
    // The subscriber queues its SUBSCRIBE until connected and resubscribes after every reconnect.
    this.sub = new Redis(opts.url, { ...base, enableOfflineQueue: true, maxRetriesPerRequest: null, commandTimeout: undefined });
    // Errors are reported through the commands that fail; an unhandled 'error' event would crash the process.
    this.cmd.on('error', () => undefined);
    this.sub.on('error', () => undefined);
    // A clock the test moves by hand is taken as given (bus-contract.ts).
    if (!(opts.syncClock ?? opts.now === undefined)) this.clockSynced = Promise.resolve();
    else {
      let synced!: () => void;
      this.clockSynced = new Promise<void>((resolve) => (synced = resolve));
      this.cmd.on('ready', () => void this.syncClock().finally(synced));
    }
    this.sub.on('message', (_channel: string, message: string) => this.onMessage(message));
    this.sub.on('ready', () => {
      // After the first connection, 'ready' means "back after an outage": the hub catches up from history.
      if (this.subscribedOnce) void this.backAfterOutage();
      else this.linkUp = true;
      this.subscribedOnce = true;
    });
    // 'close' repeats on every failed reconnect attempt; the hub hears of the outage once.
    this.sub.on('close', () => {
      if (!this.linkUp) return;
      this.linkUp = false;
      for (const l of this.outageListeners) l();
    });
    void this.sub.subscribe(EVENTS).catch(() => undefined);
  }

  /** Resolves once both connections are up (or rejects after `timeoutMs`). */
  async connected(timeoutMs = 5_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new BusUnavailable('Redis did not answer')), timeoutMs);
    });
    try {
      await Promise.race([this.up(), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Resolves once both connections have been up, however long that takes:
   * ioredis keeps retrying, so an instance started before its Redis can say
   * when Redis arrives. Holds no timer, so it never keeps a process alive.
   */
  up(): Promise<void> {
    const wait = (r: Redis) => (r.status === 'ready' ? Promise.resolve() : new Promise<void>((resolve) => r.once('ready', () => resolve())));
    return Promise.all([wait(this.cmd), wait(this.sub)]).then(() => this.clockSynced);
  }

  /** Now, on the clock every instance sharing this Redis reads (see `skew`). */
  clock(): number {
    return this.now() + this.skew;
  }

  private async syncClock(): Promise<void> {
    try {
      const sent = this.now();
      const [sec, micro] = await this.cmd.time();
      const back = this.now();
      // Redis read its clock about halfway through the round trip.
      this.skew = Math.round(Number(sec) * 1_000 + Number(micro) / 1_000 - (sent + back) / 2);
    } catch {
      // Keep the last measurement: a failed TIME means the link is down, and the next 'ready' measures again.
    }
  }

  /**
   * Tells the hub to catch up, but only once both links can serve it: the
   * subscription is confirmed (so everything appended from now on arrives
   * live) and the command link answers (the catch-up reads the history
   * through it). On 'ready' alone, ioredis's resubscription may still be in
   * flight, and the command link is often still reconnecting: the catch-up
   * failed, was never retried, and the streams here silently missed what
   * other instances published during the outage.
   */
  private async backAfterOutage(): Promise<void> {
    try {
      // Answered after ioredis's own resubscription, sent just before on the same connection.
      await this.sub.subscribe(EVENTS);
      if (this.cmd.status !== 'ready') {
        await new Promise<void>((resolve, reject) => {
          // Not forever: the hub holds live events until its catch-up ends, even one that fails.
          const timer = setTimeout(() => done(), CATCH_UP_WAIT_MS);
          const done = (err?: Error) => {
            clearTimeout(timer);
            this.cmd.off('ready', ready);
            this.sub.off('close', gone);
            if (err) reject(err);
            else resolve();
          };
          const ready = () => done();
          // If the subscriber drops again first, its next 'ready' starts over.
          const gone = () => done(new BusUnavailable('Redis went away again'));
          this.cmd.once('ready', ready);
          this.sub.once('close', gone);
        });
      }
    } catch {
      return;
    }
    this.linkUp = true;
    for (const l of this.reconnectListeners) l();
  }

  private onMessage(message: string): void {
    let m: { i: string; c: string; n: number; e: string; d: string; t: number };
    try {
      m = JSON.parse(message) as typeof m;
    } catch {
      return;
    }
    const ev: BusEvent = { id: m.n, event: m.e, data: m.d, at: m.t };
    if (m.i === this.instanceId) this.own?.(m.c, ev);
    else this.remote?.(m.c, ev);
  }

  private async run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ChannelGone || err instanceof BusUnavailable) throw err;
      if (this.cmd.status !== 'ready' || isConnectionError(err)) throw new BusUnavailable('Redis is unavailable');
      throw err;
    }
  }

  /** Runs a script by its SHA1 (EVALSHA), loading it on first use or after a Redis restart (NOSCRIPT). */
  private async script(src: string, keys: string[], args: (string | number)[]): Promise<unknown> {
    const sha = scriptSha(src);
    const argv = [...keys, ...args.map(String)];
    return this.run(async () => {
      try {
        return await this.cmd.evalsha(sha, keys.length, ...argv);
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
        return this.cmd.eval(src, keys.length, ...argv);
      }
    });
  }

  async create(record: NewChannel, seq: number): Promise<boolean> {
    const r = await this.script(CREATE, [...channelKeys(record.id), `${P}chans`], [
      record.id,
      record.deckHash,
      seq,
      this.limits.channelTtlMs,
      this.clock(),
      record.pairCodeHash ?? '',
      record.state ? JSON.stringify(record.state) : '',
      record.slides ? JSON.stringify(record.slides) : '',
      record.questionsOpen ? '1' : '0',
      record.spotlight ? JSON.stringify(record.spotlight) : '',
      ...record.controllers,
    ]);
    return r === 1;
  }

  async get(id: string): Promise<ChannelRecord | null> {
    const x = k(id);
    const res = await this.run(() => this.cmd.multi().hgetall(x.hash).smembers(x.ctl).get(x.seq).exec());
    if (!res) throw new BusUnavailable('Redis transaction aborted');
    const [[e1, hash], [e2, ctl], [e3, seq]] = res as [[Error | null, Record<string, string>], [Error | null, string[]], [Error | null, string | null]];
    if (e1 || e2 || e3) throw e1 ?? e2 ?? e3;
    if (!hash || !hash.deckHash) return null;
    return {
      id,
      deckHash: hash.deckHash,
      controllers: ctl.sort(),
      pairCodeHash: hash.pairCodeHash || null,
      state: hash.state ? (JSON.parse(hash.state) as DeckState) : null,
      slides: hash.slides ? (JSON.parse(hash.slides) as SlideRef[]) : null,
      questionsOpen: hash.qopen !== '0',
      spotlight: hash.spotlight ? (JSON.parse(hash.spotlight) as Spotlight['question']) : null,
      seq: Number(seq ?? 0),
      refused: hash.refused ? hash.refused.split(' ') : [],
      slideshow: hash.slideshow === '1',
    };
  }

  async setPairCode(id: string, hash: string | null): Promise<Presence> {
    const x = k(id);
    const n = Number(await this.script(SET_CODE, [x.hash, x.ctl], [hash ?? '']));
    if (n < 0) throw new ChannelGone(id);
    return { controllers: n, pairingOpen: hash !== null };
  }

  async spendPairCode(id: string, hash: string, controllerHash: string): Promise<Presence | null> {
    const x = k(id);
    const n = Number(await this.script(SPEND, [x.hash, x.ctl], [hash, controllerHash, MAX_CONTROLLERS]));
    if (n === -1) throw new ChannelGone(id);
    if (n === -3) throw new ControllersFull(id);
    if (n === -2) return null;
    return { controllers: n, pairingOpen: false };
  }

  async refuse(id: string, hash: string, controllerHash: string): Promise<boolean> {
    const r = Number(await this.script(REFUSE, [k(id).hash], [hash, controllerHash, MAX_REFUSED]));
    if (r === -1) throw new ChannelGone(id);
    return r === 1;
  }

  async revoke(id: string, controllerHash?: string): Promise<{ removed: number; presence: Presence }> {
    const x = k(id);
    const [removed, left, open] = (await this.script(REVOKE, [x.hash, x.ctl], [controllerHash ?? ''])) as number[];
    if (removed === -1) throw new ChannelGone(id);
    return { removed: removed!, presence: { controllers: left!, pairingOpen: open === 1 } };
  }

  async setState(id: string, state: DeckState, slides?: SlideRef[]): Promise<void> {
    const r = await this.script(SET_STATE, [k(id).hash], [JSON.stringify(state), slides ? JSON.stringify(slides) : '']);
    if (r === -1) throw new ChannelGone(id);
  }

  async slideshowStreams(id: string, open: boolean, until: number): Promise<SlideshowChange> {
    const x = k(id);
    const [connected, eventId] = (await this.script(SLIDESHOW, [x.hash, x.decks, x.seq], [
      this.instanceId,
      open ? until : '',
      this.clock(),
      this.limits.channelTtlMs,
      id,
      EVENT.slideshow,
      slideshowData(true),
      slideshowData(false),
    ])) as number[];
    if (connected === -1) throw new ChannelGone(id);
    return { connected: connected === 1, eventId: eventId ? eventId : null };
  }

  async addQuestion(id: string, question: Question): Promise<QuestionsSummary> {
    const x = k(id);
    const [open, pending] = (await this.script(ADD_QUESTION, [x.hash, x.q], [JSON.stringify(question), QUESTIONS_KEPT])) as number[];
    if (open === -1) throw new ChannelGone(id);
    return { open: open === 1, pending: pending! };
  }

  async questions(id: string): Promise<Question[]> {
    const x = k(id);
    const res = await this.run(() => this.cmd.multi().exists(x.hash).lrange(x.q, 0, -1).exec());
    const [[, exists], [, list]] = res as [[Error | null, number], [Error | null, string[]]];
    if (!exists) throw new ChannelGone(id);
    return list.map((raw) => JSON.parse(raw) as Question);
  }

  async moderate(id: string, questionId: string, status: 'shown' | 'dismissed'): Promise<{ spotlight: Spotlight['question']; summary: QuestionsSummary } | null> {
    const x = k(id);
    const r = (await this.script(MODERATE, [x.hash, x.q], [questionId, status])) as [number, string, number, number];
    if (r[0] === -1) throw new ChannelGone(id);
    if (r[0] === 0) return null;
    return { spotlight: r[1] ? (JSON.parse(r[1]) as Spotlight['question']) : null, summary: { open: r[2] === 1, pending: r[3] } };
  }

  async setQuestionsOpen(id: string, open: boolean): Promise<QuestionsSummary> {
    const x = k(id);
    const [o, pending] = (await this.script(QOPEN, [x.hash, x.q], [open ? '1' : '0'])) as number[];
    if (o === -1) throw new ChannelGone(id);
    return { open, pending: pending! };
  }

  async append(id: string, event: string, data: string, opts: AppendOptions = {}): Promise<AppendResult> {
    const x = k(id);
    const dedupKey = opts.dedup === undefined ? x.hash : `${P}ch:${id}:dd:${opts.dedup}`;
    const [eventId, dup] = (await this.script(APPEND, [...channelKeys(id), dedupKey, `${P}chans`], [
      event,
      data,
      opts.keep ? '1' : '0',
      this.limits.historyMax,
      this.clock(),
      this.limits.channelTtlMs,
      this.limits.historyMaxAgeMs,
      this.instanceId,
      id,
      opts.dedup === undefined ? '0' : '1',
      opts.author ?? '',
    ])) as number[];
    if (eventId === -1) throw new ChannelGone(id);
    if (eventId === -2) throw new NotAuthor();
    return { eventId: eventId!, duplicate: dup === 1 };
  }

  async since(id: string, after: number): Promise<History> {
    const x = k(id);
    const r = (await this.script(SINCE, [x.hash, x.seq, x.log, x.floor], [after, this.clock(), this.limits.historyMaxAgeMs])) as [number, number, [string, string[]][]];
    if (r[0] === -1) throw new ChannelGone(id);
    const [last, floor, entries] = r;
    if (after < floor || after > last) return { events: [], complete: false, last };
    const events: BusEvent[] = [];
    for (const [entryId, fields] of entries) {
      const n = Number(entryId.split('-')[0]);
      if (n <= after) continue;
      const f: Record<string, string> = {};
      for (let i = 0; i < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
      events.push({ id: n, event: f.e!, data: f.d!, at: Number(f.t) });
    }
    return { events, complete: true, last };
  }

  onRemote(listener: (channelId: string, ev: BusEvent) => void): void {
    this.remote = listener;
  }

  /** This instance's own events, relayed back in the store's order (see Bus.onOwn). */
  onOwn(listener: (channelId: string, ev: BusEvent) => void): void {
    this.own = listener;
  }

  /** Called when the pub/sub link drops: the hub holds live events from then until its catch-up. */
  onOutage(listener: () => void): void {
    this.outageListeners.push(listener);
  }

  /** Called when the pub/sub link comes back after an outage: events meanwhile must be caught up from history. */
  onReconnect(listener: () => void): void {
    this.reconnectListeners.push(listener);
  }

  async touch(ids: Iterable<string>): Promise<void> {
    const list = [...ids];
    if (!list.length) return;
    const p = this.cmd.pipeline();
    const expires = this.clock() + this.limits.channelTtlMs;
    for (const id of list) {
      for (const key of channelKeys(id)) p.pexpire(key, this.limits.channelTtlMs);
      p.pexpire(k(id).decks, this.limits.channelTtlMs);
      p.zadd(`${P}chans`, 'XX', expires, id);
    }
    await this.run(() => p.exec());
  }

  async count(): Promise<number> {
    const res = await this.run(() => this.cmd.multi().zremrangebyscore(`${P}chans`, '-inf', this.clock()).zcard(`${P}chans`).exec());
    return Number(res?.[1]?.[1] ?? 0);
  }

  async ready(): Promise<boolean> {
    try {
      return (await this.run(() => this.cmd.ping())) === 'PONG';
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.cmd.disconnect();
    this.sub.disconnect();
  }
}
