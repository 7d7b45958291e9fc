// The HTTP face of the hub. Route handlers parse, validate and delegate; the
// hub does the work. `createApp` never listens: the entry point does, so tests
// run this same app on an ephemeral port.
import { readFileSync } from 'node:fs';
import type { IncomingMessage, RequestListener } from 'node:http';
import path from 'node:path';
import express, { type Request, type RequestHandler } from 'express';
import helmet from 'helmet';
import proxyaddr from 'proxy-addr';
import { parseCookie } from 'cookie';
import { ipKeyGenerator, rateLimit } from 'express-rate-limit';
import {
  Ask,
  ID_RE,
  NoFields,
  Moderate,
  QuestionsSwitch,
  React,
  type QuestionList,
  AllowPhone,
  PairRequest,
  Register,
  StateReport,
  type ChannelInfo,
  type PairPending,
  type PairResult,
} from '../protocol/messages';
import type { Config } from './config';
import { answerWrongMethods, controllerKeyRequired, errorHandler, HttpError } from './errors';
import { summaryOf, type ChannelRecord } from './bus';
import { Hub, type CreatedChannel } from './hub';
import { AUDIENCE_MARKDOWN_PATH, EDITOR_FILE, loadDeck, THEME_DIR, THEMES, type Deck, type DeckView } from './deck';
import { fontFilesDir, FONTS_PATH, THEME_FONTS, withLocalFonts } from './theme-fonts';
import { createHotRoutes, type HotRoutes } from './fast';
import { Metrics } from './metrics';
import { checkJsonBody, checkOrigin, corsHeaders, preflight, validate } from './guards';
import { bearer, hashSecret, matchesHash, sameHash, streamTokenFor } from './keys';
import { deviceOf, FORWARDING_HEADERS, isFromThisMachine, isOwnHostName, ownHostNames } from './net';

export interface AppDeps {
  config: Config;
  hub: Hub;
  /** Folder holding the esbuild output for the browser (slides.js, controller.js, ...). */
  clientDir: string;
  /** Folder holding the project's sources (slides/, controller/). */
  rootDir: string;
  /** The deck to present; the built-in one when absent. */
  deck?: Deck;
  /**
   * Base URL that phones should use, e.g. http://192.168.1.20:3000. Called per
   * request because the port is known only after listen and a proxy may say otherwise.
   */
  publicBase: (req: IncomingMessage) => string;
  log?: (line: string) => void;
  /** True while the startup warm-up runs (warmup.ts): /readyz says not ready yet, so a load balancer or the bench waits for it. */
  warmingUp?: () => boolean;
  /** Prometheus metrics for /metrics; a fresh registry when absent. */
  metrics?: Metrics;
}

/**
 * The request listener (the hot paths straight on node:http, everything else
 * through Express), carrying the hot routes for the raw front in
 * raw-http.ts, which createHttpServer puts before it.
 */
export type App = RequestListener & { readonly hot: HotRoutes; readonly metrics: Metrics };

/**
 * HTTP/1.1 requires exactly one Host header (RFC 9112, section 3.2).
 * node:http's own check answers a bare 400 with no body, and lets a second
 * Host through; createHttpServer turns node's check off so that this one
 * answers, in JSON like every other error. HTTP/1.0 needs none.
 */
function hostHeaderProblem(req: IncomingMessage): string | undefined {
  if (req.httpVersion !== '1.1') return undefined;
  let hosts = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === 'host') hosts++;
  if (hosts === 1) return undefined;
  return hosts === 0 ? 'missing Host header' : 'more than one Host header';
}

/** The cookie that holds the presenter key on a machine that opened /?key=…; HttpOnly, SameSite=Strict. */
const PRESENTER_COOKIE = 'clicker_presenter';
/** How long a browser keeps it: a conference's worth of days, then the link again. */
const PRESENTER_COOKIE_MS = 7 * 24 * 60 * 60 * 1000;

export function createApp(deps: AppDeps): App {
  const { config, hub, clientDir, rootDir } = deps;
  const log = deps.log ?? ((line: string) => console.error(line));
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', 'strong');
  app.set('trust proxy', config.trustProxy ? [...config.trustedProxies] : false);

  const deck = deps.deck ?? loadDeck(rootDir, undefined, {});
  const controllerHtml = readFileSync(path.join(rootDir, 'controller', 'index.html'), 'utf8');

  app.use(
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'self'"],
          scriptSrc: ["'self'"],
          // reveal.js injects <style> elements at run time (layout, slide
          // numbers). Inline style cannot run code; scripts stay 'self' only.
          styleSrc: ["'self'", "'unsafe-inline'"],
          imgSrc: ["'self'", 'data:', 'blob:'],
          fontSrc: ["'self'", 'data:'],
          connectSrc: ["'self'"],
          // The phone's keep-awake fallback plays a tiny inline video from a data: URL.
          mediaSrc: ["'self'", 'data:'],
          objectSrc: ["'none'"],
          // The deck page sets <base href="/"> so its relative asset paths work on /f/... too.
          baseUri: ["'self'"],
          formAction: ["'none'"],
          frameAncestors: ["'self'"],
        },
      },
      // Plain http on a LAN is the normal case; HSTS would break it.
      strictTransportSecurity: false,
      referrerPolicy: { policy: 'no-referrer' },
    }),
  );

  // ---------------------------------------------------------------- pages
  const page = (html: string): RequestHandler => (_req, res) => {
    res.type('html').set('Cache-Control', 'no-cache').send(html);
  };
  const checkId: RequestHandler = (req, _res, next) => {
    if (!ID_RE.test(String(req.params.id))) throw new HttpError(404, 'unknown channel');
    next();
  };
  // Rendered per request: an edited deck file shows on the next load (live reload reloads the page).
  // The follow page is the audience's copy: no speaker notes in it, nor in the Markdown it loads.
  const slides =
    (view: DeckView): RequestHandler =>
    (_req, res) => {
      res.type('html').set('Cache-Control', 'no-cache').send(deck.page(view));
    };
  const markdown =
    (view: DeckView): RequestHandler =>
    (_req, res) => {
      const md = deck.markdown(view);
      if (md === null) throw new HttpError(404, 'not found');
      res.type('text/markdown').set('Cache-Control', 'no-cache').send(md);
    };
  // The presenter's slideshow holds the speaker notes, and the whole room
  // knows the laptop's address from the QR: it opens only on this machine
  // (every address on the request's way; see isFromThisMachine), or with the
  // presenter key.
  const presenterKeyHash = config.presenterKey === undefined ? undefined : hashSecret(config.presenterKey);
  // The cookie holds a token derived from the key, not the key: devtools on the projector show only that.
  const presenterToken = config.presenterKey === undefined ? undefined : hashSecret(`clicker-presenter-cookie:${config.presenterKey}`);
  const isPresenterKey = (key: unknown): boolean => presenterKeyHash !== undefined && typeof key === 'string' && matchesHash(key, presenterKeyHash);
  const isPresenterToken = (token: unknown): boolean => presenterToken !== undefined && typeof token === 'string' && sameHash(token, presenterToken);
  // Over https the cookie is Secure: TLS ends here (behind --trust-proxy, the proxy says so) or at the public URL's proxy.
  const publicHttps = config.publicUrl?.startsWith('https:') ?? false;
  const ownNames = ownHostNames([config.host, config.publicUrl === undefined ? undefined : new URL(config.publicUrl).hostname]);
  const presenterOnly: RequestHandler = (req, res, next) => {
    const given = req.query.key;
    if (given !== undefined && presenterToken !== undefined) {
      if (!isPresenterKey(given)) throw new HttpError(403, 'that presenter key is not the one this server was started with');
      // Into a cookie, and off the address bar: the room reads that on the projector.
      res.cookie(PRESENTER_COOKIE, presenterToken, { httpOnly: true, sameSite: 'strict', secure: req.secure || publicHttps, path: '/', maxAge: PRESENTER_COOKIE_MS });
      // The same page without the key, other parameters kept; built from the path alone (never a host).
      const query = new URLSearchParams(req.url.slice(req.url.indexOf('?') + 1));
      query.delete('key');
      const rest = query.toString();
      res.set('Cache-Control', 'no-store').redirect(303, `/${req.path.replace(/^[/\\]+/, '')}${rest ? `?${rest}` : ''}`);
      return;
    }
    if (isPresenterToken(parseCookie(req.get('cookie') ?? '')[PRESENTER_COOKIE])) return next();
    const local = isFromThisMachine({
      chain: config.trustProxy ? proxyaddr.all(req) : [req.socket.remoteAddress ?? ''],
      forwarded: FORWARDING_HEADERS.some((h) => req.headers[h] !== undefined),
      trustProxy: config.trustProxy,
    });
    // A browser here that reached this server by another site's name (DNS
    // rebinding: that site pointed its own name at this machine) would hand
    // the notes to that site's page. Checked on the Host header itself, proxy
    // or none: that page may add any X-Forwarded-* header it likes, and on
    // loopback it cannot be told from a proxy here (behind one, the presenter
    // opens the slideshow at localhost, or names the proxy's host with
    // --public-url or --host).
    const hostName = (req.headers.host ?? '').replace(/:\d*$/, '');
    if (local && !isOwnHostName(hostName, ownNames)) {
      throw new HttpError(
        403,
        `the slideshow opens at this computer's own addresses, not by the name "${hostName}", which any site can point here: open http://localhost:${req.socket.localPort ?? config.port}/ or the address Clicker printed`,
      );
    }
    if (local) return next();
    throw new HttpError(
      403,
      presenterToken === undefined
        ? 'the slideshow opens only on the presenter\'s computer, since it holds the speaker notes; to follow along, scan the QR code on the screen'
        : 'the slideshow holds the speaker notes: open it with the presenter link (/?key=…); to follow along, scan the QR code on the screen',
    );
  };
  app.get('/', presenterOnly, slides('presenter'));
  app.get('/f/:id', checkId, slides('audience'));
  app.get('/_deck.md', presenterOnly, markdown('presenter'));
  app.get(AUDIENCE_MARKDOWN_PATH, markdown('audience'));
  app.get('/r/:id', checkId, page(controllerHtml));
  // serve-static answers any other method with a bare, bodyless 405; every error answer here is JSON.
  app.use('/assets', (req, _res, next) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'method not allowed', {}, { Allow: 'GET, HEAD' });
    next();
  });
  // The drop-in script for any web page. Loaded by <script src> from other
  // origins, so it is the one file whose resource policy is cross-origin.
  app.get('/clicker.js', (_req, res) => {
    res.set({ 'Cross-Origin-Resource-Policy': 'cross-origin', 'Cache-Control': 'no-cache' });
    res.sendFile(path.join(clientDir, 'clicker.js'));
  });
  // Every theme reveal.js ships, straight from its own folder.
  // redirect: false: a folder's own path (/assets, /assets/theme) is a JSON 404 like any other miss, not an HTML redirect to another 404.
  // A miss falls through to the deck's own files below: `assets/` is where
  // many decks keep their images, and their URLs begin with /assets too.
  // A theme that imports Google Fonts is served with Clicker's own copies of them instead (theme-fonts.ts), made once.
  const themeCss = new Map<string, string>();
  // Middleware, not a route: a miss falls through to the files below rather than meet the wrong-method answer of a route.
  app.use('/assets/theme', (req, res, next) => {
    const name = /^\/([\w-]+)\.css$/.exec(req.path)?.[1];
    if (name === undefined || !THEMES.includes(name)) return next();
    let css = themeCss.get(name);
    if (css === undefined) themeCss.set(name, (css = withLocalFonts(readFileSync(path.join(THEME_DIR, `${name}.css`), 'utf8'))));
    res.type('text/css').send(css);
  });
  app.use('/assets/theme', express.static(THEME_DIR, { index: false, redirect: false }));
  for (const slug of Object.values(THEME_FONTS)) {
    const dir = fontFilesDir(slug);
    // A font file's name says its family, script, weight and style: it never changes under one name.
    if (dir) app.use(`${FONTS_PATH}/${slug}`, express.static(dir, { index: false, redirect: false, maxAge: '7d' }));
  }
  app.use('/assets', express.static(clientDir, { index: false, redirect: false, setHeaders: (res) => res.set('Cache-Control', 'no-cache') }));
  // No favicon: answer quietly instead of logging a 404 on every page load.
  app.get('/favicon.ico', (_req, res) => {
    res.status(204).end();
  });
  const metrics = deps.metrics ?? new Metrics();
  hub.metrics = metrics;
  metrics.watch(hub);
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).set('Cache-Control', 'no-store').send(await metrics.scrape());
  });
  // Readiness: the channel store answers. A load balancer takes an instance out while Redis is away from it.
  app.get('/readyz', async (_req, res) => {
    if (deps.warmingUp?.()) res.status(503).set({ 'Retry-After': '1', 'Cache-Control': 'no-store' }).json({ error: 'warming up' });
    else if (await hub.bus.ready()) res.set('Cache-Control', 'no-store').json({ ready: true });
    else res.status(503).set({ 'Retry-After': '2', 'Cache-Control': 'no-store' }).json({ error: 'the channel store is unavailable' });
  });
  app.get('/healthz', async (_req, res) => {
    // Liveness: this process answers. Channels come from the bus and may be unknown while it is down.
    const channels = await hub.bus.count().catch(() => null);
    res.json({ ok: true, channels, subscribers: hub.stats().subscribers });
  });

  // ---------------------------------------------------------------- API guards
  const allowedOrigins = new Set(config.allowOrigins);
  /**
   * The public base may come from a client-supplied X-Forwarded-Host (behind
   * --trust-proxy); one that is not a URL ("a b", a proxy chain "a, b") must
   * be a refusal, not a 500 with a stack trace in the log for every request.
   */
  const publicOrigin = (req: IncomingMessage): string | undefined => {
    try {
      return new URL(deps.publicBase(req)).origin;
    } catch {
      return undefined;
    }
  };
  const originAllowed = (req: IncomingMessage, origin: string) => allowedOrigins.has(origin) || origin === publicOrigin(req);
  const guard: RequestHandler = (req, _res, next) => {
    checkOrigin(req, (origin) => originAllowed(req, origin));
    checkJsonBody(req);
    next();
  };
  const json = express.json({ limit: config.maxBodyBytes, strict: true, type: 'application/json' });
  const stateJson = express.json({ limit: config.maxStateBytes, strict: true, type: 'application/json' });
  /** A rate limit answering the usual JSON 429 with Retry-After; keyed by client address unless `keyGenerator` says otherwise. */
  const limiter = (limit: number, windowMs: number, message: string, keyGenerator?: (req: Request) => string, skip?: (req: Request) => boolean) =>
    rateLimit({
      windowMs,
      limit,
      standardHeaders: 'draft-7',
      legacyHeaders: false,
      ...(keyGenerator ? { keyGenerator } : {}),
      ...(skip ? { skip } : {}),
      handler: (_req, res, next, options) => {
        res.set('Retry-After', String(Math.ceil(options.windowMs / 1000)));
        next(new HttpError(429, message));
      },
    });
  const createLimit = limiter(config.createPerMinute, 60_000, 'too many channels created from this address; try again shortly');
  // Per follower address and channel: one noisy phone cannot silence the room.
  // An IPv6 address counts by its /56 (ipKeyGenerator), or one phone could
  // rotate through its own prefix's addresses and never meet the limit.
  // Only a well-formed id keys a limit: the limiter runs before the route
  // refuses a bad one, and every 15 KB id would otherwise be a key held for a window.
  const addressAndChannel = (req: Request) => {
    const id = String(req.params.id);
    return `${ipKeyGenerator(req.ip ?? '')}:${ID_RE.test(id) ? id : '-'}`;
  };
  const audienceLimit = (limit: number, windowMs: number, what: string) => limiter(limit, windowMs, `too many ${what}; try again shortly`, addressAndChannel);
  // A waiting phone knocks once a second: generous for knocks, tight for new
  // keys (a knock without one), so one address cannot flood the slideshow's
  // list, nor draw names until one matches the presenter's phone.
  const knockLimit = audienceLimit(config.knocksPerMinute, 60_000, 'pairing requests');
  const newPhoneLimit = limiter(
    config.newPhonesPerMinute,
    60_000,
    'too many new phones asked to pair from this address; try again in a minute',
    addressAndChannel,
    // Only new names are drawn here: without approval there are none, and a knock with its key draws none.
    (req) => !config.approvePhones || typeof (req.body as { key?: unknown } | undefined)?.key === 'string',
  );

  const channel = (req: Request): Promise<ChannelRecord> => {
    if (!ID_RE.test(String(req.params.id))) throw new HttpError(404, 'unknown channel');
    return hub.get(String(req.params.id));
  };
  const requireDeck = (req: Request, ch: ChannelRecord): void => {
    if (!hub.isDeck(ch, bearer(req.get('authorization')))) throw new HttpError(401, 'deck key required', {}, { 'WWW-Authenticate': 'Bearer' });
  };
  const info = (req: Request, created: CreatedChannel): ChannelInfo => {
    const base = deps.publicBase(req);
    const { channel: ch, pairCode } = created;
    return {
      id: ch.id,
      deckKey: created.deckKey,
      pairCode,
      controllerUrl: pairCode ? `${base}/r/${ch.id}#${pairCode}` : null,
      followUrl: `${base}/f/${ch.id}`,
      controllers: [...ch.controllers],
      streamToken: streamTokenFor(ch.deckHash),
      ...(created.numberedFrom === undefined ? {} : { numberedFrom: created.numberedFrom }),
    };
  };

  const api = express.Router();
  // CORS first: a preflight carries no body and must not meet the write guards.
  // An OPTIONS with no Origin is no preflight (curl, a monitor): it is told the route's methods, below.
  api.use((req, res, next) => {
    if (req.method === 'OPTIONS' && req.headers.origin !== undefined) {
      const p = preflight(req, allowedOrigins);
      res.status(p.status).set(p.headers).send(p.body);
      return;
    }
    const cors = corsHeaders(req, allowedOrigins);
    if (cors) res.set(cors);
    next();
  });
  api.use(guard);
  // Answers here carry keys, pairing codes, notes and questions: no cache, browser or shared, may keep one.
  api.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });

  /** Create a channel. Answers the deck key once; the server keeps only its hash. */
  api.post('/channels', createLimit, json, async (req, res) => {
    validate(NoFields, req.body);
    res.status(201).json(info(req, await hub.create()));
  });

  /** Re-register after a restart, or refresh on reload: needs the deck key. */
  api.put('/channels/:id', createLimit, stateJson, async (req, res) => {
    if (!ID_RE.test(String(req.params.id))) throw new HttpError(404, 'unknown channel');
    const key = bearer(req.get('authorization'));
    if (key === undefined) throw new HttpError(401, 'deck key required', {}, { 'WWW-Authenticate': 'Bearer' });
    const body = validate(Register, req.body ?? {});
    res.json(info(req, await hub.register(String(req.params.id), key, body)));
  });

  /** A fresh one-time pairing code, to add or replace a phone. */
  api.post('/channels/:id/pair-codes', json, async (req, res) => {
    validate(NoFields, req.body);
    const ch = await channel(req);
    requireDeck(req, ch);
    const pairCode = await hub.issuePairCode(ch);
    // A new code changes neither the id nor the controllers, which is all `info` reads.
    res.status(201).json(info(req, { channel: ch, deckKey: '', pairCode }));
  });

  /** Revoke every controller, or one by its hash. */
  const revoke: RequestHandler = async (req, res) => {
    const ch = await channel(req);
    requireDeck(req, ch);
    const hash = req.params.hash === undefined ? undefined : String(req.params.hash);
    res.json({ revoked: await hub.revoke(ch, hash) });
  };
  // Two paths, not `controllers{/:hash}`: a wrong method on /controllers must name POST (allowing a phone) too.
  api.delete('/channels/:id/controllers', revoke);
  api.delete('/channels/:id/controllers/:hash', revoke);

  /**
   * A phone exchanges the one-time code from the QR fragment for its
   * controller key. With phone approval (the default) the key first waits
   * for the slideshow to allow it: 202 with the phone's name, until a knock
   * with that key finds it allowed (201).
   */
  api.post('/channels/:id/pair', knockLimit, json, newPhoneLimit, async (req, res) => {
    const ch = await channel(req);
    const { code, key } = validate(PairRequest, req.body);
    try {
      if (config.approvePhones) {
        const r = await hub.knock(ch, code, key, deviceOf(req.get('user-agent')));
        if ('pending' in r) {
          res.status(202).json(r satisfies PairPending);
          return;
        }
        res.status(201).json({ ...r, streamToken: streamTokenFor(r.controllerHash) } satisfies PairResult);
        return;
      }
      const paired = await hub.pair(ch, code);
      const result: PairResult = { ...paired, streamToken: streamTokenFor(paired.controllerHash) };
      res.status(201).json(result);
    } catch (err) {
      const followUrl = `${deps.publicBase(req)}/f/${ch.id}`;
      if (err instanceof Error && 'kind' in err && err.kind === 'code_spent') {
        throw new HttpError(410, 'this QR code has already been used to pair a remote; you can follow along instead', { followUrl });
      }
      if (err instanceof Error && 'kind' in err && err.kind === 'refused') {
        throw new HttpError(410, 'the presenter did not allow this phone; you can follow along instead', { followUrl, refused: true });
      }
      throw err;
    }
  });

  /** The slideshow allows a phone that knocked (phone approval): it spends the code it shows on that phone's key. */
  api.post('/channels/:id/controllers', json, async (req, res) => {
    const ch = await channel(req);
    requireDeck(req, ch);
    const { code, hash, ticket } = validate(AllowPhone, req.body);
    try {
      await hub.allow(ch, code, hash, ticket);
    } catch (err) {
      if (err instanceof Error && 'kind' in err && err.kind === 'code_spent') {
        throw new HttpError(409, 'this pairing code was used or replaced meanwhile; ask for a new one');
      }
      throw err;
    }
    res.status(201).json(info(req, { channel: await hub.get(ch.id), deckKey: '', pairCode: null }));
  });

  /** The slideshow refuses a phone that knocked: told "not allowed", and off the card for as long as the code is open. */
  api.post('/channels/:id/refusals', json, async (req, res) => {
    const ch = await channel(req);
    requireDeck(req, ch);
    const { code, hash, ticket } = validate(AllowPhone, req.body);
    try {
      await hub.refuse(ch, code, hash, ticket);
    } catch (err) {
      if (err instanceof Error && 'kind' in err && err.kind === 'code_spent') {
        throw new HttpError(409, 'this pairing code was used or replaced meanwhile: its phones wait no more');
      }
      throw err;
    }
    res.status(201).json({ refused: hash });
  });

  // ---------------------------------------------------------------- audience
  const requireController = (req: Request, ch: ChannelRecord): void => {
    if (!hub.canCommand(ch, bearer(req.get('authorization')))) throw controllerKeyRequired();
  };

  /** A follower asks a question. Public: anyone who can follow may ask, at a bounded rate. */
  api.post('/channels/:id/questions', audienceLimit(config.questionsPerMinute, 60_000, 'questions'), json, async (req, res) => {
    const ch = await channel(req);
    const { text } = validate(Ask, req.body);
    const q = await hub.ask(ch, text);
    res.status(201).json({ id: q.id });
  });

  /**
   * The speaker notes of the slide the deck is on, for the paired phone (or
   * the deck). They are never on the streams, which anyone with the follow QR
   * may open; the phone asks here after each move to another slide.
   */
  api.get('/channels/:id/notes', async (req, res) => {
    const ch = await channel(req);
    requireController(req, ch);
    const notes = hub.notes(ch);
    if (!notes) throw new HttpError(404, 'the slideshow has not reported a slide yet');
    res.set('Cache-Control', 'no-store').json(notes);
  });

  /** The presenter's list: the last 30 questions, newest first. */
  api.get('/channels/:id/questions', async (req, res) => {
    const ch = await channel(req);
    requireController(req, ch);
    const questions = await hub.questions(ch);
    const list: QuestionList = { ...summaryOf(ch.questionsOpen, questions), questions };
    res.set('Cache-Control', 'no-store').json(list);
  });

  /** The presenter turns questions on or off. */
  api.put('/channels/:id/questions', json, async (req, res) => {
    const ch = await channel(req);
    requireController(req, ch);
    await hub.setQuestionsOpen(ch, validate(QuestionsSwitch, req.body).open);
    res.status(204).end();
  });

  /** The presenter shows a question on the slideshow, or dismisses it. */
  api.post('/channels/:id/questions/:qid', json, async (req, res) => {
    const ch = await channel(req);
    requireController(req, ch);
    if (!/^[A-Za-z0-9_-]{12}$/.test(String(req.params.qid))) throw new HttpError(404, 'no such question');
    await hub.moderate(ch, String(req.params.qid), validate(Moderate, req.body).status);
    res.status(204).end();
  });

  /** A follower's reaction: a brief burst on the slideshow. */
  api.post('/channels/:id/reactions', audienceLimit(config.reactionsPer10s, 10_000, 'reactions'), json, async (req, res) => {
    const ch = await channel(req);
    await hub.react(ch, validate(React, req.body).kind);
    res.status(204).end();
  });

  /** The slideshow reports where it is. Needs the deck key. */
  api.put('/channels/:id/state', stateJson, async (req, res) => {
    const ch = await channel(req);
    requireDeck(req, ch);
    const result = await hub.report(ch, validate(StateReport, req.body));
    res.json({ eventId: result.eventId });
  });

  answerWrongMethods(api);
  app.use('/api', api);
  // After the pages' routes too: POST / is a wrong method, not a missing page.
  answerWrongMethods(app.router);
  // Memory benchmarks read RSS after a full collection. Only there when the
  // operator started node with --expose-gc, and only from this machine; after
  // answerWrongMethods, so that any other method does not name it either.
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    app.post('/debug/gc', (req, res) => {
      if (!['127.0.0.1', '::1', '::ffff:127.0.0.1'].includes(req.socket.remoteAddress ?? '')) throw new HttpError(404, 'not found');
      gc();
      res.json({ ok: true, rss: process.memoryUsage().rss });
    });
  }
  // Files beside the deck (images, video, fonts). `send` refuses paths that
  // climb out of the folder, and dotfiles (.git, .env) are never served.
  if (deck.assetsDir) {
    // Not the deck's own source, which holds the speaker notes: the pages have it rendered.
    const source = path.resolve(deck.file);
    const sameFile = process.platform === 'darwin' || process.platform === 'win32' ? (a: string) => a.toLowerCase() === source.toLowerCase() : (a: string) => a === source;
    const assetsDir = deck.assetsDir;
    app.use((req, _res, next) => {
      let asked: string;
      try {
        asked = path.resolve(assetsDir, `.${decodeURIComponent(req.path)}`);
      } catch {
        return next();
      }
      if (sameFile(asked)) throw new HttpError(404, 'not found');
      const name = path.basename(asked);
      // An editor's copies of the deck (talk.md~, #talk.md#, talk.md.orig, .swp) hold its notes too.
      if (name.startsWith(path.basename(source)) || EDITOR_FILE.test(name)) throw new HttpError(404, 'not found');
      // Markdown an HTML deck's sections load holds their notes: the presenter's, as the slideshow is
      // (the follow page has it inline, cut).
      if (/\.(md|markdown)$/i.test(name)) return presenterOnly(req, _res, next);
      next();
    });
    app.use(express.static(assetsDir, { index: false, dotfiles: 'deny', redirect: false }));
  }
  app.use((_req, _res, next) => next(new HttpError(404, 'not found')));
  app.use(errorHandler(log));

  const hot = createHotRoutes({ config, hub, allowedOrigins, originAllowed, log });
  const listener: RequestListener = (req, res) => {
    const hostProblem = hostHeaderProblem(req);
    if (hostProblem) {
      // Refused before any route, and the connection with it: a client that gets Host wrong gets framing wrong too.
      const body = JSON.stringify({ error: hostProblem });
      res.writeHead(400, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body), Connection: 'close' });
      res.end(body);
      return;
    }
    if (!hot.node(req, res)) app(req, res);
  };
  return Object.assign(listener, { hot, metrics });
}
