// One error type for the HTTP layer and one middleware that answers every
// error as JSON (or, to a browser navigating outside the API, as a short page
// with the same words). Errors we did not anticipate are logged and answered
// with a plain 500 that leaks nothing.
import { STATUS_CODES } from 'node:http';
import escapeHtml from 'escape-html';
import type { ErrorRequestHandler, Request, Router } from 'express';
import type { ErrorBody } from '../protocol/messages';
import { HubError, type HubErrorKind } from './hub';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly extra: Omit<ErrorBody, 'error'> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** 401 for a command or pointer update without a paired controller's key (or the deck key). */
export function controllerKeyRequired(): HttpError {
  return new HttpError(401, 'controller key required', {}, { 'WWW-Authenticate': 'Bearer' });
}

const HUB_STATUS: Record<HubErrorKind, number> = {
  not_found: 404,
  not_author: 401,
  forbidden: 403,
  code_spent: 410,
  refused: 410,
  too_many_controllers: 409,
  too_many_channels: 503,
  too_many_subscribers: 503,
  too_many_subscribers_ip: 429,
  unavailable: 503,
  questions_closed: 403,
};

/** Seconds a client should wait before retrying a 503 from an unreachable store: the bus reconnects within about a second. */
const RETRY_AFTER_UNAVAILABLE = '2';
/** Seconds to wait before asking again for a slot a cap refused (a stream, a channel): one frees when somebody leaves. */
const RETRY_AFTER_FULL = '5';
const RETRY_AFTER: Partial<Record<HubErrorKind, string>> = {
  unavailable: RETRY_AFTER_UNAVAILABLE,
  too_many_channels: RETRY_AFTER_FULL,
  too_many_subscribers: RETRY_AFTER_FULL,
  too_many_subscribers_ip: RETRY_AFTER_FULL,
};

/**
 * Errors raised by body-parser, serve-static and the router (http-errors style)
 * carry a `status`, and body-parser's also a `type`; a 4xx is the client's fault.
 */
interface ClientError {
  status: number;
  type?: unknown;
}
const isClientError = (err: unknown): err is ClientError =>
  typeof err === 'object' && err !== null && typeof (err as ClientError).status === 'number';

/** JSON that parses, but is not an object (`null`, a number, a string). */
export const NOT_AN_OBJECT = 'the body must be a JSON object';

const PARSER_MESSAGES: Record<string, string> = {
  'entity.too.large': 'request body too large',
  'entity.parse.failed': 'malformed JSON',
  'encoding.unsupported': 'unsupported content encoding',
  'charset.unsupported': 'unsupported charset',
  'request.aborted': 'request aborted',
  'request.size.invalid': 'request size did not match content length',
};

/**
 * body-parser's strict mode refuses `null`, `42` or `"text"` with the same
 * type as broken JSON; the text it read (its `body`) tells the two apart,
 * so a client that sent valid JSON of the wrong shape is told that instead.
 */
function parsesAsJson(text: unknown): boolean {
  if (typeof text !== 'string') return false;
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

export function toHttpError(err: unknown): HttpError | undefined {
  if (err instanceof HttpError) return err;
  if (err instanceof HubError) {
    const retry = RETRY_AFTER[err.kind];
    const headers: Record<string, string> = retry === undefined ? {} : { 'Retry-After': retry };
    if (err.kind === 'not_author') headers['WWW-Authenticate'] = 'Bearer';
    return new HttpError(HUB_STATUS[err.kind], err.message, {}, headers);
  }
  if (isClientError(err) && err.status >= 400 && err.status < 500) {
    // A missing asset (serve-static) or an undecodable path (router) has no `type`; its own message may leak a file path.
    if (err.type === 'entity.parse.failed' && parsesAsJson((err as { body?: unknown }).body)) return new HttpError(400, NOT_AN_OBJECT);
    const known = typeof err.type === 'string' ? PARSER_MESSAGES[err.type] : undefined;
    return new HttpError(err.status, known ?? STATUS_CODES[err.status]?.toLowerCase() ?? 'bad request');
  }
  return undefined;
}

/**
 * For every path `router` has routes for, one more route that answers the
 * methods none of them takes: a JSON 405 naming those it does in Allow
 * (RFC 9110, 15.5.6), where Express would fall through to a 404 saying the
 * path does not exist. It reads the routes already on the router, so call it
 * after them, and a new route needs nothing here. OPTIONS is answered
 * with the same list (the API's own CORS preflight comes before it).
 */
export function answerWrongMethods(router: Router): void {
  const allowed = new Map<string, Set<string>>();
  for (const layer of router.stack) {
    if (!layer.route) continue;
    const methods = allowed.get(layer.route.path) ?? new Set<string>();
    for (const handler of layer.route.stack) if (handler.method) methods.add(handler.method.toUpperCase());
    if (methods.has('GET')) methods.add('HEAD');
    allowed.set(layer.route.path, methods);
  }
  for (const [routePath, methods] of allowed) {
    const allow = [...methods].sort().join(', ');
    router.all(routePath, (req, res) => {
      if (req.method === 'OPTIONS') {
        res.status(204).set('Allow', `${allow}, OPTIONS`).end();
        return;
      }
      throw new HttpError(405, 'method not allowed', {}, { Allow: allow });
    });
  }
}

const isApi = (req: Request) => /^\/api(\/|$)/.test(req.path);
/**
 * A person's browser asking for a page: it ranks HTML above JSON, as a
 * navigation's Accept does. fetch() and EventSource, curl and every API
 * client ask for JSON, the event stream or anything, and get JSON.
 */
const wantsPage = (req: Request) => !isApi(req) && req.accepts(['json', 'html']) === 'html';

/** The error as a small page, for somebody who typed the address (say, the laptop's, read off the QR) into a browser. */
function errorPage(status: number, message: string): string {
  const title = escapeHtml(STATUS_CODES[status] ?? 'Error');
  const text = escapeHtml(message.charAt(0).toUpperCase() + message.slice(1));
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Clicker: ${title}</title>
<style>:root{color-scheme:light dark;font:18px/1.5 system-ui,sans-serif}body{margin:0;min-height:100vh;display:grid;place-items:center}main{max-width:32rem;padding:1.5rem}h1{font-size:1.4rem;margin:0 0 .5rem}p{margin:0}small{display:block;margin-top:1rem;opacity:.6}</style>
</head><body><main><h1>${title}</h1><p>${text}.</p><small>Clicker · ${status}</small></main></body></html>
`;
}

export function errorHandler(log: (line: string) => void): ErrorRequestHandler {
  return (err, req, res, next) => {
    if (res.headersSent) {
      // A stream that already started cannot carry an error answer.
      next(err);
      return;
    }
    const httpErr = toHttpError(err);
    if (httpErr) {
      res.status(httpErr.status).set(httpErr.headers);
      // The same words either way; a program gets them as JSON. A page's
      // answer depends on Accept, and a cache in between must know it.
      if (!isApi(req)) res.vary('Accept');
      if (wantsPage(req)) res.type('html').send(errorPage(httpErr.status, httpErr.message));
      // type() first: the event stream sets text/event-stream before a subscriber limit can refuse it.
      else res.type('json').json({ error: httpErr.message, ...httpErr.extra });
      return;
    }
    // req.path, never req.url: query strings may carry stream positions or keys.
    log(`error ${req.method} ${req.path}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    res.status(500).type('json').json({ error: 'internal error' });
  };
}
