// Request checks shared by the Express routes and the hot paths in fast.ts.
// They read only a request's head (method, headers, socket), which node:http's
// IncomingMessage and the raw front's lighter record both have, so both
// layers apply exactly the same rules.
import type { IncomingMessage } from 'node:http';
import type { z } from 'zod';
import { HttpError } from './errors';

/** What the checks read of a request. */
export type RequestHead = Pick<IncomingMessage, 'method' | 'url' | 'headers' | 'socket'>;

const header = (req: RequestHead, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/**
 * CSRF: a browser always sends Origin on a cross-site write. The page's own
 * origin, the public base and configured origins pass; programs without an
 * Origin (curl, bridges) pass too and are held to their keys instead.
 */
export function checkOrigin(req: RequestHead, allowed: (origin: string) => boolean): void {
  if (req.method === 'GET' || req.method === 'HEAD') return;
  const origin = header(req, 'origin');
  if (origin === undefined) return;
  const scheme = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
  if (origin === `${scheme}://${header(req, 'host')}` || allowed(origin)) return;
  throw new HttpError(403, 'cross-origin request refused');
}

/**
 * Only JSON bodies: a form or text/plain post (the CSRF classics) gets 415,
 * and so does JSON in UTF-16 or UTF-32, where a stray byte decodes to nothing.
 * An empty body is fine (browsers send `Content-Length: 0` on a bodyless POST).
 */
export function checkJsonBody(req: RequestHead): void {
  const length = header(req, 'content-length');
  const chunked = header(req, 'transfer-encoding') !== undefined;
  if (!chunked && (length === undefined || length === '0')) return;
  // No client of ours compresses its tiny bodies; refusing every encoding keeps one code path for all of them.
  const encoding = header(req, 'content-encoding')?.trim().toLowerCase();
  if (encoding !== undefined && encoding !== '' && encoding !== 'identity') throw new HttpError(415, 'unsupported content encoding');
  const type = header(req, 'content-type') ?? '';
  // What every client of ours sends, settled without taking the value apart.
  if (type === 'application/json') return;
  const [mime, ...params] = type.split(';');
  if (mime!.trim().toLowerCase() !== 'application/json') throw new HttpError(415, 'send application/json');
  const charset = params.map((p) => /^\s*charset\s*=\s*"?([^";\s]+)/i.exec(p)?.[1]).find((c) => c !== undefined);
  if (charset !== undefined && charset.toLowerCase() !== 'utf-8') throw new HttpError(415, 'send application/json in UTF-8');
}

/** Turns zod's first complaint into a short sentence for the 400 answer. */
export function validate<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = issue && issue.path.length ? `${issue.path.join('.')}: ` : '';
  throw new HttpError(400, `invalid request: ${where}${issue?.message ?? 'bad input'}`);
}

/**
 * CORS for the drop-in script (clicker.js) on pages of other origins: only
 * origins configured with --allow-origin get the headers; every other browser
 * origin is left to the same-origin policy (and to checkOrigin on writes).
 * No credentials: keys travel in Authorization, never in cookies.
 */
export function corsHeaders(req: RequestHead, allowed: ReadonlySet<string>): Record<string, string> | undefined {
  const origin = header(req, 'origin');
  if (origin === undefined || !allowed.has(origin)) return undefined;
  return { 'Access-Control-Allow-Origin': origin, Vary: 'Origin', 'Access-Control-Expose-Headers': 'Retry-After' };
}

/** Answers a CORS preflight: 204 for an allowed origin, 403 JSON for any other. */
export function preflight(req: RequestHead, allowed: ReadonlySet<string>): { status: number; headers: Record<string, string>; body?: string } {
  const cors = corsHeaders(req, allowed);
  if (!cors) return { status: 403, headers: { 'Content-Type': 'application/json; charset=utf-8' }, body: JSON.stringify({ error: 'cross-origin request refused' }) };
  return {
    status: 204,
    headers: {
      ...cors,
      'Access-Control-Allow-Methods': 'GET, POST, PUT, DELETE',
      'Access-Control-Allow-Headers': 'Content-Type, Authorization, Last-Event-ID',
      'Access-Control-Max-Age': '600',
    },
  };
}
