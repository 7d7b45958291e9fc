// deploy/nginx-cluster.conf, run for real: Debian's nginx (a private child
// process, as in nginx.test.ts) in front of three built servers that share a
// private redis-server. The listen port and the three upstream addresses are
// swapped for test ones; everything else is the file as shipped.
//
// The slideshow's whole API flow goes through nginx with no sticky sessions:
// requests land on different instances (read from each instance's own
// /metrics), and commands posted through nginx reach every subscriber
// connected through nginx, whichever instance holds its stream. Then one
// instance dies: nginx sends new requests to the others, and its streams
// resume through nginx elsewhere, losing nothing.
//
// Needs nginx and redis-server (scripts/ensure-deps.mjs installs both):
// without them these tests fail on CI and are skipped, loudly, elsewhere.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EVENT, type ChannelInfo, type PairResult, type Snapshot } from '../protocol/messages';
import { ClickerInstance, ON_CI, parsePrometheus, RedisServer, redisServerOrSkip, sample, type Sample } from './redis-harness';
import { findNginx, freePorts, jsonCall, NginxProcess, pairPhone, SseConnection, summarize } from './testing-procs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NGINX = findNginx();
/** A functional deadline for any one wait: far above any real latency, so only a stuck proxy or a lost event trips it. */
const DEADLINE_MS = 5_000;
const STREAMS = 6;
const TAPS = 12;

/** The shipped file with the test's listen address and upstreams; each must match exactly as often as expected. */
function templated(appPorts: number[], listenPort: number): string {
  let conf = readFileSync(path.join(ROOT, 'deploy', 'nginx-cluster.conf'), 'utf8');
  const upstreams = conf.match(/^\s*server\s+127\.0\.0\.1:300\d;/gm) ?? [];
  assert.equal(upstreams.length, appPorts.length, `deploy/nginx-cluster.conf should list ${appPorts.length} upstream servers 127.0.0.1:300N (found ${upstreams.length})`);
  let n = 0;
  conf = conf.replace(/^(\s*)server\s+127\.0\.0\.1:300\d;/gm, (_m, indent: string) => `${indent}server 127.0.0.1:${appPorts[n++]};`);
  const listens = conf.match(/^\s*listen\s+80;/gm)?.length ?? 0;
  assert.equal(listens, 1, 'deploy/nginx-cluster.conf should have exactly one `listen 80;`');
  return conf.replace(/^(\s*)listen\s+80;/m, (_m, indent: string) => `${indent}listen 127.0.0.1:${listenPort};`);
}

async function metricsOf(inst: ClickerInstance): Promise<Sample[]> {
  const res = await jsonCall<string>(inst.base, 'GET', '/metrics');
  assert.equal(res.status, 200);
  return parsePrometheus(res.body).samples;
}

const commandIds = (conn: SseConnection): string[] => conn.named<{ id: string }>(EVENT.command).map((c) => c.id);

const redisBinary = redisServerOrSkip('server/cluster.test.ts');
if (redisBinary && !NGINX) {
  const why = 'nginx is not installed; run `node scripts/ensure-deps.mjs` (as root it apt-get installs it) or set NGINX_PATH';
  if (ON_CI) {
    test('nginx is installed for the cluster tests', () => assert.fail(why));
  } else {
    console.error(`\n${'!'.repeat(78)}\n!! SKIPPING server/cluster.test.ts: ${why}\n${'!'.repeat(78)}\n`);
    test('three instances behind nginx', { skip: why }, () => undefined);
  }
}

if (redisBinary && NGINX) {
  describe('three instances on one Redis behind deploy/nginx-cluster.conf', { timeout: 90_000 }, () => {
    let redis: RedisServer;
    let instances: ClickerInstance[];
    let nginx: NginxProcess;
    let base: string;
    const streams: SseConnection[] = [];

    before(async () => {
      redis = await RedisServer.start(redisBinary);
      instances = await Promise.all(['A', 'B', 'C'].map((n) => ClickerInstance.start(n, redis.url, { args: ['--trust-proxy'] })));
      let last: unknown;
      // A port taken between the probe and nginx's bind is retried with another.
      for (let attempt = 0; attempt < 3 && !nginx; attempt++) {
        const [port] = await freePorts(1);
        try {
          nginx = await NginxProcess.start(NGINX, templated(instances.map((i) => i.port), port!), [port!]);
          base = `http://127.0.0.1:${port}`;
        } catch (err) {
          last = err;
          if (!/Address already in use/.test(String(err))) throw err;
        }
      }
      if (!nginx) throw last;
    });
    after(async () => {
      for (const s of streams) s.destroy();
      await nginx?.stop();
      await Promise.all((instances ?? []).map((i) => i.stop()));
      await redis?.cleanup();
    });

    let info: ChannelInfo;
    let controllerKey: string;
    const sent: string[] = [];

    test('the slideshow flow through nginx: create, streams, pair, state, taps reach every stream whichever instance holds it', async () => {
      const before = await Promise.all(instances.map(metricsOf));
      const created = await jsonCall<ChannelInfo>(base, 'POST', '/api/channels');
      assert.equal(created.status, 201);
      info = created.body;
      // The QR code names the address the phone used to reach nginx (instances run with --trust-proxy).
      assert.ok(info.controllerUrl?.startsWith(`${base}/r/${info.id}#`), String(info.controllerUrl));

      // The slideshow and five followers, all through nginx.
      for (let i = 0; i < STREAMS; i++) {
        const conn = await SseConnection.open(`${base}/api/channels/${info.id}/events`, { timeoutMs: DEADLINE_MS });
        streams.push(conn);
        assert.equal(conn.status, 200);
        await conn.waitFor(() => conn.events.length > 0, DEADLINE_MS, `stream ${i}'s snapshot`);
      }
      const perInstance = (await Promise.all(instances.map(metricsOf))).map((m) => sample(m, 'clicker_subscribers'));
      console.log(`[cluster] ${STREAMS} streams opened through nginx, per instance: ${perInstance.join(' / ')}`);
      assert.equal(perInstance.reduce((a, b) => a + b, 0), STREAMS);
      assert.ok(perInstance.every((n) => n > 0), `every instance holds streams (least_conn): ${perInstance}`);

      // The phone knocks, the slideshow allows it, the phone knocks again: each request on whichever instance nginx picks.
      const paired = await pairPhone(base, info);
      assert.equal(paired.status, 201);
      controllerKey = paired.body.controllerKey;
      const spent = await jsonCall(base, 'POST', `/api/channels/${info.id}/pair`, { body: { code: info.pairCode } });
      assert.equal(spent.status, 410, 'the code is spent on every instance');

      const state = {
        indexh: 1, indexv: 0, indexf: -1, fragments: 0, paused: false, position: 2, total: 3,
        isFirst: false, isLast: false, title: 'Through the cluster', notes: '', nextTitle: 'End',
      };
      assert.equal((await jsonCall(base, 'PUT', `/api/channels/${info.id}/state`, { body: { state }, key: info.deckKey })).status, 200);

      const latency: number[] = [];
      for (let i = 0; i < TAPS; i++) {
        const id = `cluster-tap-${String(i).padStart(3, '0')}`;
        const t0 = performance.now();
        const res = await jsonCall(base, 'POST', `/api/channels/${info.id}/commands`, { body: { type: 'next', id }, key: controllerKey });
        assert.equal(res.status, 202, JSON.stringify(res.body));
        sent.push(id);
        await Promise.all(streams.map((s, j) => s.waitFor(() => commandIds(s).includes(id), DEADLINE_MS, `${id} on stream ${j}`)));
        latency.push(performance.now() - t0);
      }
      console.log(`[cluster] tap through nginx -> on all ${STREAMS} streams through nginx: ${summarize(latency)}`);
      for (const s of streams) {
        assert.deepEqual(commandIds(s), sent, 'every tap once, in order, on every stream');
        assert.equal(s.named<{ state: { title: string } }>(EVENT.state)[0]?.state.title, 'Through the cluster');
      }

      const afterM = await Promise.all(instances.map(metricsOf));
      const taps = afterM.map((m, j) => sample(m, 'clicker_commands_total') - sample(before[j]!, 'clicker_commands_total'));
      console.log(`[cluster] taps handled per instance: ${taps.join(' / ')}`);
      assert.equal(taps.reduce((a, b) => a + b, 0), TAPS);
      assert.ok(taps.filter((n) => n > 0).length >= 2, `taps landed on more than one instance: ${taps}`);

      // A late joiner, wherever nginx sends it, sees the reported state in its snapshot.
      const late = await SseConnection.open(`${base}/api/channels/${info.id}/events`, { timeoutMs: DEADLINE_MS });
      try {
        await late.waitFor(() => late.events.length > 0, DEADLINE_MS, 'the late snapshot');
        assert.equal(late.named<Snapshot>(EVENT.snapshot)[0]?.state?.title, 'Through the cluster');
      } finally {
        late.destroy();
      }

      const scraped = await jsonCall(base, 'GET', '/metrics');
      assert.equal(scraped.status, 404, 'the public name does not serve /metrics');
    });

    test('one instance dies: nginx sends requests to the others, and its streams resume elsewhere with nothing lost', async () => {
      assert.ok(info, 'needs the channel of the test before');
      const victim = instances[2]!;
      const held = sample(await metricsOf(victim), 'clicker_subscribers');
      await victim.stop();
      // The victim's streams end; each resumes through nginx from its own last id, as a phone's page does.
      const cut = streams.filter((s) => s.closed);
      assert.equal(cut.length, held, "exactly the victim's streams ended");
      const missed: string[] = [];
      for (let i = 0; i < 4; i++) {
        const id = `after-death-${i}`;
        const res = await jsonCall(base, 'POST', `/api/channels/${info.id}/commands`, { body: { type: 'next', id }, key: controllerKey });
        assert.equal(res.status, 202, `a tap after an instance died: ${JSON.stringify(res.body)}`);
        missed.push(id);
        sent.push(id);
      }
      const resumed = await Promise.all(
        cut.map((s) => SseConnection.open(`${base}/api/channels/${info.id}/events`, { lastEventId: s.lastEventId, timeoutMs: DEADLINE_MS })),
      );
      try {
        for (const r of resumed) {
          assert.equal(r.status, 200);
          await r.waitFor(() => r.named(EVENT.command).length >= missed.length, DEADLINE_MS, 'the replay after the instance died');
          assert.equal(r.named<Snapshot>(EVENT.snapshot)[0]?.gap, false);
          assert.deepEqual(commandIds(r), missed);
        }
        for (const s of streams.filter((x) => !x.closed)) {
          await s.waitFor(() => commandIds(s).length === sent.length, DEADLINE_MS, 'the taps on a surviving stream');
          assert.deepEqual(commandIds(s), sent);
        }
        console.log(`[cluster] instance ${victim.name} stopped with ${held} stream(s); they resumed through nginx on the other two, replaying ${missed.length} taps`);
      } finally {
        for (const r of resumed) r.destroy();
      }
    });
  });
}
