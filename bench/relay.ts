// The baseline: the least a Node SSE relay can do. No framework, no auth, no
// validation beyond JSON syntax, no history. Each event is framed once into a
// Buffer and that same Buffer is written to every subscriber, as Clicker's hub
// does, so the gap between the two is what Express, auth, zod and replay cost.
//
//   GET  /sub/:ch   text/event-stream
//   POST /pub/:ch   JSON body -> one `data:` event to every subscriber of :ch
//   GET  /healthz   {"subscribers": n}
//   POST /debug/gc  full collection, then {"ok": true, "rss": bytes}; only when
//                   node runs with --expose-gc and only from loopback, like Clicker's
//   GET  /floor.html a blank page for the tap scenario's floor: with #sub/:ch it
//                   listens on /sub/:ch, with #pub/:ch a button POSTs to
//                   /pub/:ch on pointerdown (the least a remote can do)
//
// Run it alone with `PORT=0 node --import tsx bench/relay.ts`; it prints
// "relay listening on http://127.0.0.1:PORT/". It only ever binds loopback.
import http from 'node:http';
import { pathToFileURL } from 'node:url';

const CHANNEL_RE = /^\/(sub|pub)\/([A-Za-z0-9_-]{1,64})$/;
/** Same cap as Clicker's command bodies, so both refuse the same inputs. */
const MAX_BODY_BYTES = 4 * 1024;
const SSE_HEADERS = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-cache, no-transform',
  Connection: 'keep-alive',
  'X-Accel-Buffering': 'no',
} as const;
// Written on subscribe so the response head leaves at once, as Clicker's
// retry hint and snapshot make it do; otherwise a client would wait for the first event.
const HELLO = Buffer.from(':ok\n\n');
const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);
// The bench stamps its own times in these pages (scenarios/tap.ts); the page only listens or posts.
const FLOOR_PAGE = `<!doctype html><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>floor</title><button id="go" style="width:60vw;height:40vh;font-size:2rem">Next</button>
<script>
const [mode, ch] = location.hash.slice(1).split('/');
if (mode === 'sub') {
  document.getElementById('go').hidden = true;
  const es = new EventSource('/sub/' + ch);
  es.onopen = () => { document.body.dataset.open = '1'; };
  es.onmessage = () => window.dispatchEvent(new Event('floor-event'));
} else {
  let n = 0;
  document.getElementById('go').addEventListener('pointerdown', () => {
    fetch('/pub/' + ch, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ type: 'next', id: 'floor-' + ++n }) });
  });
}
</script>`;

export interface Relay {
  server: http.Server;
  port: number;
  subscribers(): number;
  close(): Promise<void>;
}

export async function startRelay(port: number, host = '127.0.0.1'): Promise<Relay> {
  const channels = new Map<string, Set<http.ServerResponse>>();
  let count = 0;
  // The memory scenario compares RSS after a full collection on both Node servers, so the relay offers the same hook.
  const gc = (globalThis as { gc?: () => void }).gc;

  const reply = (res: http.ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  };

  const server = http.createServer(
    { noDelay: true, keepAlive: true, keepAliveTimeout: 120_000, headersTimeout: 10_000, requestTimeout: 15_000 },
    (req, res) => {
      const url = req.url ?? '/';
      if (req.method === 'GET' && url === '/healthz') return reply(res, 200, { subscribers: count });
      if (req.method === 'GET' && url === '/floor.html') {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(FLOOR_PAGE) });
        return res.end(FLOOR_PAGE);
      }
      if (req.method === 'POST' && url === '/debug/gc' && gc && LOOPBACK.has(req.socket.remoteAddress ?? '')) {
        gc();
        return reply(res, 200, { ok: true, rss: process.memoryUsage().rss });
      }
      const m = CHANNEL_RE.exec(url);
      if (!m) return reply(res, 404, { error: 'not found' });
      const verb = m[1];
      const ch = m[2] ?? '';

      if (verb === 'sub' && req.method === 'GET') {
        res.writeHead(200, SSE_HEADERS);
        res.write(HELLO);
        let set = channels.get(ch);
        if (!set) channels.set(ch, (set = new Set()));
        set.add(res);
        count++;
        res.on('close', () => {
          set.delete(res);
          count--;
          if (set.size === 0 && channels.get(ch) === set) channels.delete(ch);
        });
        return;
      }

      if (verb === 'pub' && req.method === 'POST') {
        const parts: Buffer[] = [];
        let size = 0;
        let refused = false;
        req.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) {
            if (!refused) reply(res, 413, { error: 'body too large' });
            refused = true;
            return;
          }
          parts.push(chunk);
        });
        req.on('end', () => {
          if (refused) return;
          let value: unknown;
          try {
            value = JSON.parse(Buffer.concat(parts).toString('utf8'));
          } catch {
            return reply(res, 400, { error: 'invalid JSON' });
          }
          // Re-serialising guarantees one line, so one `data:` field frames it.
          const frame = Buffer.from(`data: ${JSON.stringify(value)}\n\n`);
          let delivered = 0;
          for (const sub of channels.get(ch) ?? []) {
            sub.write(frame);
            delivered++;
          }
          reply(res, 202, { delivered });
        });
        return;
      }

      reply(res, 405, { error: 'method not allowed' });
    },
  );

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const bound = addr && typeof addr === 'object' ? addr.port : port;

  return {
    server,
    port: bound,
    subscribers: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        for (const set of channels.values()) for (const res of set) res.end();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// Run as a process of its own: the bench measures it from outside, like Clicker.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.env.PORT ?? '0');
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    process.stderr.write(`relay: PORT must be an integer 0-65535, got "${process.env.PORT}"\n`);
    process.exit(2);
  }
  const relay = await startRelay(port);
  process.stdout.write(`relay listening on http://127.0.0.1:${relay.port}/\n`);
  const stop = () => {
    void relay.close().then(() => process.exit(0));
    setTimeout(() => process.exit(0), 2_000).unref();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
