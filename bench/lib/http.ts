// A publisher: JSON requests over one kept-alive connection, as a phone sends
// taps. One socket, so a sequential run measures the server and not the
// client's connection set-up; Nagle off, so a small POST leaves at once.
import http from 'node:http';

export interface JsonResponse {
  status: number;
  body: string;
}

export class JsonClient {
  private readonly agent: http.Agent;

  constructor(
    readonly host: string,
    readonly port: number,
    maxSockets = 1,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets, keepAliveMsecs: 10_000 });
  }

  request(
    method: string,
    path: string,
    body?: string,
    headers: Readonly<Record<string, string>> = {},
    timeoutMs = 10_000,
  ): Promise<JsonResponse> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          agent: this.agent,
          host: this.host,
          port: this.port,
          method,
          path,
          headers: {
            ...(body === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) }),
            ...headers,
          },
          timeout: timeoutMs,
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            text += chunk;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          res.on('error', reject);
        },
      );
      req.on('socket', (socket) => socket.setNoDelay(true));
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  post(path: string, body?: string, headers?: Readonly<Record<string, string>>): Promise<JsonResponse> {
    return this.request('POST', path, body, headers);
  }

  get(path: string): Promise<JsonResponse> {
    return this.request('GET', path);
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Parses a JSON body into `unknown`, naming the request on failure. */
export function parseJson(res: JsonResponse, what: string): unknown {
  try {
    return JSON.parse(res.body) as unknown;
  } catch {
    throw new Error(`${what}: answer is not JSON (status ${res.status}): ${res.body.slice(0, 200)}`);
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
