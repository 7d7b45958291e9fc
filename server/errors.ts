// One error type for the HTTP layer and one middleware that answers every
// error as JSON. Errors we did not anticipate are logged and answered with a
// plain 500 that leaks nothing.
import { STATUS_CODES } from 'node:http';
import type { ErrorRequestHandler } from 'express';
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
  forbidden: 403,
  code_spent: 410,
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

const PARSER_MESSAGES: Record<string, string> = {
  'entity.too.large': 'request body too large',
  'entity.parse.failed': 'malformed JSON',
  'encoding.unsupported': 'unsupported content encoding',
  'charset.unsupported': 'unsupported charset',
  'request.aborted': 'request aborted',
  'request.size.invalid': 'request size did not match content length',
};

export function toHttpError(err: unknown): HttpError | undefined {
  if (err instanceof HttpError) return err;
  if (err instanceof HubError) {
    const retry = RETRY_AFTER[err.kind];
    const headers: Record<string, string> = retry === undefined ? {} : { 'Retry-After': retry };
    return new HttpError(HUB_STATUS[err.kind], err.message, {}, headers);
  }
  if (isClientError(err) && err.status >= 400 && err.status < 500) {
    // A missing asset (serve-static) or an undecodable path (router) has no `type`; its own message may leak a file path.
    const known = typeof err.type === 'string' ? PARSER_MESSAGES[err.type] : undefined;
    return new HttpError(err.status, known ?? STATUS_CODES[err.status]?.toLowerCase() ?? 'bad request');
  }
  return undefined;
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
      // type() first: the event stream sets text/event-stream before a subscriber limit can refuse it.
      res.status(httpErr.status).set(httpErr.headers).type('json').json({ error: httpErr.message, ...httpErr.extra });
      return;
    }
    // req.path, never req.url: query strings may carry stream positions or keys.
    log(`error ${req.method} ${req.path}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    res.status(500).type('json').json({ error: 'internal error' });
  };
}
