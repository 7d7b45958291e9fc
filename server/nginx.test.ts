// Clicker behind Debian's nginx, with real processes: the built server and
// nginx as children of this test, nginx with its own prefix in a temp folder
// and listening on 127.0.0.1 only.
//
// (a) A stock proxy block (`proxy_pass` and nothing else: buffering on,
//     HTTP/1.0 to the upstream, 60 s read timeout): taps posted through nginx
//     reach a subscriber connected through nginx at once (the app's
//     X-Accel-Buffering: no), and with proxy_read_timeout cut to 3 s a stream
//     idle far longer stays open on the app's 1 s heartbeats. A control shows
//     the same nginx does cut a stream whose heartbeats are too rare, so the
//     idle check can fail.
// (b) deploy/nginx.conf itself, with the listen port, the upstream and the
//     streams' read timeout swapped for test ones: the same checks, plus the
//     QR code's URL comes from the proxy's host when the app runs with
//     --trust-proxy (and from --public-url, the documented alternative).
//
// nginx is installed by scripts/ensure-deps.mjs (`npm test` runs it). Without
// nginx these tests fail on CI and are skipped, loudly, elsewhere.
// Latencies are printed, never asserted: the only limit is a generous
// functional deadline per tap.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EventSource } from 'eventsource';
import { ClickerServer } from '../e2e/fixtures';
import { EVENT, type ChannelInfo, type Snapshot } from '../protocol/messages';
import { findNginx, freePorts, jsonCall, NginxProcess, pairedChannel, sleep, SseConnection, summarize, waitForPort } from './testing-procs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NGINX = findNginx();
const ON_CI = process.env.CI === 'true' || process.env.CI === '1';

/** Taps timed through the proxy. */
const TAPS = 20;
/** A tap that has not arrived after this long is stuck in a buffer: far above any real latency. */
const TAP_DEADLINE_MS = 5_000;
/** The short read timeout the idle checks run under, and the app's heartbeat that must beat it. */
const READ_TIMEOUT_S = 3;
const HEARTBEAT_MS = '1000';
/** Idle for well over two read timeouts. */
const IDLE_MS = READ_TIMEOUT_S * 1000 * 2 + 1_500;

/** Starts nginx on fresh free ports; a port taken between the probe and nginx's bind is retried. */
async function startNginx(count: number, httpBlock: (ports: number[]) => string): Promise<{ nginx: NginxProcess; ports: number[] }> {
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const ports = await freePorts(count);
    try {
      return { nginx: await NginxProcess.start(NGINX!, httpBlock(ports), ports), ports };
    } catch (err) {
      last = err;
      if (!/Address already in use/.test(String(err))) throw err;
    }
  }
  throw last;
}

const app = (args: string[] = [], heartbeatMs = HEARTBEAT_MS) =>
  ClickerServer.start(['--bind', '127.0.0.1', ...args], { HEARTBEAT_MS: heartbeatMs });

/** Commands posted through `base` reach a stream opened through `base`, promptly and in order; a cut stream resumes through it. */
async function tapsComeThrough(base: string, label: string): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const { info, controllerKey } = await pairedChannel(base);
  const events = `${base}/api/channels/${info.id}/events`;
  const conn = await SseConnection.open(events);
  try {
    assert.equal(conn.status, 200);
    assert.match(String(conn.headers['content-type']), /^text\/event-stream/);
    await conn.waitFor(() => conn.events.length > 0, TAP_DEADLINE_MS, 'the snapshot');
    assert.equal(conn.events[0]!.event, EVENT.snapshot, 'the first event is the snapshot');

    const sent: string[] = [];
    const latency: number[] = [];
    for (let i = 0; i < TAPS; i++) {
      const id = `${label.replace(/\W/g, '')}-tap-${String(i).padStart(4, '0')}`;
      const t0 = performance.now();
      const res = await jsonCall(base, 'POST', `/api/channels/${info.id}/commands`, { body: { type: 'next', id }, key: controllerKey, agent });
      assert.equal(res.status, 202, `tap ${i}: ${JSON.stringify(res.body)}`);
      sent.push(id);
      await conn.waitFor(
        () => conn.events.some((e) => e.event === EVENT.command && e.data.includes(`"${id}"`)),
        TAP_DEADLINE_MS,
        `tap ${i} to come through ${label}`,
      );
      latency.push(performance.now() - t0);
    }
    console.log(`[nginx ${label}] tap POSTed through nginx -> event at a subscriber through nginx: ${summarize(latency)}`);
    assert.deepEqual(conn.named<{ id: string }>(EVENT.command).map((c) => c.id), sent, 'every tap once, in order');

    // A dropped stream resumes through the proxy (Last-Event-ID passes through) and misses nothing.
    conn.destroy();
    const missed: string[] = [];
    for (let i = 0; i < 3; i++) {
      const id = `${label.replace(/\W/g, '')}-missed-${i}`;
      assert.equal((await jsonCall(base, 'POST', `/api/channels/${info.id}/commands`, { body: { type: 'next', id }, key: controllerKey, agent })).status, 202);
      missed.push(id);
    }
    const again = await SseConnection.open(events, { lastEventId: conn.lastEventId });
    try {
      await again.waitFor(() => again.named(EVENT.command).length === 3, TAP_DEADLINE_MS, 'the replay through nginx');
      assert.equal(again.named<Snapshot>(EVENT.snapshot)[0]?.gap, false);
      assert.deepEqual(again.named<{ id: string }>(EVENT.command).map((c) => c.id), missed);
    } finally {
      again.destroy();
    }
  } finally {
    conn.destroy();
    agent.destroy();
  }
}

/** A stream through `base` stays up, on one connection, for longer than nginx's read timeout, and still carries taps. */
async function idleStreamStaysOpen(base: string, label: string): Promise<void> {
  const { info, controllerKey } = await pairedChannel(base);
  const url = `${base}/api/channels/${info.id}/events`;
  // EventSource reconnects by itself, so a cut would show as a second open and a second snapshot.
  const es = new EventSource(url);
  const seen = { opens: 0, errors: 0, snapshots: 0, commands: 0 };
  es.onopen = () => seen.opens++;
  es.onerror = () => seen.errors++;
  es.addEventListener(EVENT.snapshot, () => seen.snapshots++);
  es.addEventListener(EVENT.command, () => seen.commands++);
  // And a raw reader alongside, which sees the heartbeats and any close.
  const raw = await SseConnection.open(url);
  try {
    const deadline = Date.now() + TAP_DEADLINE_MS;
    while (seen.snapshots < 1 && Date.now() < deadline) await sleep(20);
    assert.equal(seen.snapshots, 1, 'the stream opened');
    await sleep(IDLE_MS);
    const id = `${label.replace(/\W/g, '')}-after-idle`;
    assert.equal((await jsonCall(base, 'POST', `/api/channels/${info.id}/commands`, { body: { type: 'next', id }, key: controllerKey })).status, 202);
    await raw.waitFor(() => raw.named(EVENT.command).length === 1, TAP_DEADLINE_MS, 'a tap after the idle time');
    const end = Date.now() + TAP_DEADLINE_MS;
    while (seen.commands < 1 && Date.now() < end) await sleep(20);
    console.log(
      `[nginx ${label}] idle ${IDLE_MS} ms behind proxy_read_timeout ${READ_TIMEOUT_S}s with ${HEARTBEAT_MS} ms heartbeats: ` +
        `EventSource connections=${seen.opens} snapshots=${seen.snapshots} errors=${seen.errors}; raw stream heartbeats=${raw.parser.comments} closed=${raw.closed}`,
    );
    assert.equal(seen.opens, 1, 'exactly one connection: no reconnect');
    assert.equal(seen.snapshots, 1, 'exactly one snapshot: no reconnect');
    assert.equal(seen.errors, 0);
    assert.equal(seen.commands, 1, 'the idle stream still carries taps');
    assert.equal(raw.closed, false, 'nginx did not close the idle stream');
    assert.ok(raw.parser.comments >= 2, 'heartbeats came through nginx');
  } finally {
    es.close();
    raw.destroy();
  }
}

if (!NGINX) {
  const why = 'nginx is not installed; run `node scripts/ensure-deps.mjs` (as root it apt-get installs it) or set NGINX_PATH';
  if (ON_CI) {
    test('nginx is installed for the reverse-proxy tests', () => assert.fail(why));
  } else {
    console.error(`\n${'!'.repeat(78)}\n!! SKIPPING server/nginx.test.ts: ${why}\n${'!'.repeat(78)}\n`);
    test('Clicker behind nginx', { skip: why }, () => undefined);
  }
} else {
  describe('behind a stock nginx proxy block (buffering on, HTTP/1.0 upstream)', { timeout: 120_000 }, () => {
    let live: ClickerServer;
    let quiet: ClickerServer;
    let nginx: NginxProcess;
    let stock: string;
    let shortTimeout: string;
    let shortTimeoutQuiet: string;

    before(async () => {
      live = await app();
      // Heartbeats far apart: the control for the read-timeout check.
      quiet = await app([], '600000');
      let ports: number[];
      ({ nginx, ports } = await startNginx(3, ([a, b, c]) =>
        [
          // Nothing but proxy_pass: every other setting is nginx's default.
          `server { listen 127.0.0.1:${a}; location / { proxy_pass http://127.0.0.1:${live.port}; } }`,
          `server { listen 127.0.0.1:${b}; location / { proxy_pass http://127.0.0.1:${live.port}; proxy_read_timeout ${READ_TIMEOUT_S}s; } }`,
          `server { listen 127.0.0.1:${c}; location / { proxy_pass http://127.0.0.1:${quiet.port}; proxy_read_timeout ${READ_TIMEOUT_S}s; } }`,
        ].join('\n'),
      ));
      [stock, shortTimeout, shortTimeoutQuiet] = ports.map((p) => `http://127.0.0.1:${p}`) as [string, string, string];
    });
    after(async () => {
      await nginx?.stop();
      await live?.stop();
      await quiet?.stop();
    });

    test('taps posted through nginx reach a subscriber through nginx at once', async () => {
      await tapsComeThrough(stock, 'stock');
    });

    test(`a stream idle past a ${READ_TIMEOUT_S}s proxy_read_timeout stays open on the app's heartbeats`, async () => {
      await idleStreamStaysOpen(shortTimeout, 'stock, short read timeout');
    });

    test('control: with heartbeats rarer than the read timeout, the same nginx does cut the stream', async () => {
      const { info } = await pairedChannel(shortTimeoutQuiet);
      const raw = await SseConnection.open(`${shortTimeoutQuiet}/api/channels/${info.id}/events`);
      const t0 = Date.now();
      await raw.waitFor(() => raw.closed, READ_TIMEOUT_S * 1000 * 4, 'nginx to cut the silent stream');
      console.log(`[nginx control] a stream with no heartbeat was cut by nginx after ${Date.now() - t0} ms (proxy_read_timeout ${READ_TIMEOUT_S}s)`);
    });
  });

  describe('behind deploy/nginx.conf', { timeout: 120_000 }, () => {
    let trusted: ClickerServer;
    let nginx: NginxProcess;
    let base: string;
    let proxyPort: number;

    /** The example config with the test's listen address, upstream and a short read timeout; each must match exactly once. */
    const templated = (appPort: number, listenPort: number): string => {
      let conf = readFileSync(path.join(ROOT, 'deploy', 'nginx.conf'), 'utf8');
      const swap = (re: RegExp, to: (indent: string) => string, what: string) => {
        const hits = conf.match(new RegExp(re.source, 'gm'))?.length ?? 0;
        assert.equal(hits, 1, `deploy/nginx.conf should have exactly one ${what} for the test to template (found ${hits})`);
        conf = conf.replace(new RegExp(re.source, 'm'), (_m, indent: string) => to(indent));
      };
      swap(/^(\s*)server\s+127\.0\.0\.1:3000;/, (i) => `${i}server 127.0.0.1:${appPort};`, 'upstream `server 127.0.0.1:3000;`');
      swap(/^(\s*)listen\s+80;/, (i) => `${i}listen 127.0.0.1:${listenPort};`, '`listen 80;`');
      swap(/^(\s*)proxy_read_timeout\s+\S+;/, (i) => `${i}proxy_read_timeout ${READ_TIMEOUT_S}s;`, '`proxy_read_timeout` (the event streams\')');
      return conf;
    };

    before(async () => {
      trusted = await app(['--trust-proxy']);
      let ports: number[];
      ({ nginx, ports } = await startNginx(1, ([p]) => templated(trusted.port, p!)));
      proxyPort = ports[0]!;
      base = `http://127.0.0.1:${proxyPort}`;
    });
    after(async () => {
      await nginx?.stop();
      await trusted?.stop();
    });

    test('taps posted through nginx reach a subscriber through nginx at once', async () => {
      await tapsComeThrough(base, 'deploy');
    });

    test(`a stream idle past its ${READ_TIMEOUT_S}s proxy_read_timeout stays open on the app's heartbeats`, async () => {
      await idleStreamStaysOpen(base, 'deploy, short read timeout');
    });

    test('pages come through, and the QR URL carries the host the phone used to reach nginx (--trust-proxy)', async () => {
      const page = await jsonCall(base, 'GET', '/');
      assert.equal(page.status, 200);
      assert.match(String(page.headers['content-type']), /^text\/html/);
      // The operator's metrics are not on the public name; the app itself still serves them.
      assert.equal((await jsonCall(base, 'GET', '/metrics')).status, 404);
      assert.equal((await jsonCall(trusted.base, 'GET', '/metrics')).status, 200);

      // A name the test never connects to: traffic still goes to 127.0.0.1, only the Host header differs.
      const host = `talk.example.org:${proxyPort}`;
      // A client's own X-Forwarded-Host is replaced by nginx, so it cannot choose what the QR says.
      const created = await jsonCall<ChannelInfo>(base, 'POST', '/api/channels', { headers: { Host: host, 'X-Forwarded-Host': 'evil.example' } });
      assert.equal(created.status, 201);
      const { id, controllerUrl, followUrl } = created.body;
      console.log(`[nginx deploy] QR URL through the proxy: ${controllerUrl?.replace(/#.*/, '#<code>')}`);
      assert.ok(controllerUrl?.startsWith(`http://${host}/r/${id}#`), `controller URL ${controllerUrl} names the proxy's host`);
      assert.equal(followUrl, `http://${host}/f/${id}`);

      // Straight to the app, the same request gets the app's own address: the host above came from nginx.
      const direct = await jsonCall<ChannelInfo>(trusted.base, 'POST', '/api/channels');
      assert.equal(direct.status, 201);
      assert.ok(!direct.body.followUrl.includes('talk.example.org'), `direct: ${direct.body.followUrl}`);
    });

    test('the documented alternative: --public-url pins the QR URL whatever the request says', async () => {
      // Started by hand: with --public-url the printed URL carries no port for ClickerServer to read.
      const [port] = await freePorts(1);
      const proc = spawn(
        process.execPath,
        [path.join(ROOT, 'dist/server/main.js'), '--port', String(port), '--bind', '127.0.0.1', '--public-url', 'https://talk.example.org/'],
        { stdio: 'ignore' },
      );
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
      try {
        await waitForPort(port!, 10_000, () => (proc.exitCode === null ? undefined : `the server exited with ${proc.exitCode}`));
        const pinnedBase = `http://127.0.0.1:${port}`;
        const created = await jsonCall<ChannelInfo>(pinnedBase, 'POST', '/api/channels', {
          headers: { Host: 'elsewhere.example:1234', 'X-Forwarded-Host': 'evil.example' },
        });
        assert.equal(created.status, 201);
        assert.ok(created.body.controllerUrl?.startsWith(`https://talk.example.org/r/${created.body.id}#`), String(created.body.controllerUrl));
        assert.equal(created.body.followUrl, `https://talk.example.org/f/${created.body.id}`);
      } finally {
        proc.kill('SIGTERM');
        await exited;
      }
    });
  });
}
