import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, DEFAULTS, loadConfig } from './config';

const configError = (pattern: RegExp) => (err: unknown) => {
  assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
  assert.match(err.message, pattern);
  return true;
};

test('no flags and an empty environment give the defaults', () => {
  assert.deepEqual(loadConfig([], {}), { ...DEFAULTS, publicUrl: undefined, host: undefined });
});

test('the result is frozen', () => {
  const config = loadConfig([], {});
  assert.equal(Object.isFrozen(config), true);
});

test('--port, -p and PORT set the port; the flag wins over the environment', () => {
  assert.equal(loadConfig(['--port', '8080'], {}).port, 8080);
  assert.equal(loadConfig(['--port=8081'], {}).port, 8081);
  assert.equal(loadConfig(['-p', '8082'], {}).port, 8082);
  assert.equal(loadConfig([], { PORT: '9090' }).port, 9090);
  assert.equal(loadConfig(['--port', '8080'], { PORT: '9090' }).port, 8080);
  assert.equal(loadConfig([], { PORT: '' }).port, DEFAULTS.port, 'an empty variable is unset');
});

test('a bad port names the flag and the value', () => {
  for (const bad of ['abc', '-1', '80.5', '1e3', '0x50', '123456', '65536']) {
    assert.throws(() => loadConfig([`--port=${bad}`], {}), configError(/^--port must be a port number from 0 to 65535, got "/), bad);
  }
  assert.throws(() => loadConfig([], { PORT: 'http' }), configError(/^PORT must be a port number from 0 to 65535, got "http"/));
  assert.equal(loadConfig(['--port', '65535'], {}).port, 65_535);
});

test('port 0 asks the OS for a free port', () => {
  assert.equal(loadConfig(['--port', '0'], {}).port, 0);
  assert.equal(loadConfig([], { PORT: '0' }).port, 0);
});

test('--public-url accepts http(s) URLs and drops trailing slashes', () => {
  assert.equal(loadConfig(['--public-url', 'https://talk.example.org/'], {}).publicUrl, 'https://talk.example.org');
  assert.equal(loadConfig(['--public-url', 'http://10.0.0.5:3000//'], {}).publicUrl, 'http://10.0.0.5:3000');
  assert.equal(loadConfig([], { PUBLIC_URL: 'https://x.example/clicker' }).publicUrl, 'https://x.example/clicker');
});

test('--public-url refuses relative and non-http URLs', () => {
  for (const bad of ['talk.example.org', '/clicker', 'ftp://example.org', 'javascript:alert(1)', 'file:///etc/passwd']) {
    assert.throws(() => loadConfig(['--public-url', bad], {}), configError(/^--public-url must be an absolute http\(s\) URL/), bad);
  }
  assert.throws(() => loadConfig([], { PUBLIC_URL: 'nope' }), configError(/--public-url/));
});

test('an unknown flag, a positional or a missing value is a one-line ConfigError', () => {
  assert.throws(() => loadConfig(['--prot', '3000'], {}), configError(/^Unknown option '--prot'.*\(see clicker --help\)$/));
  assert.throws(() => loadConfig(['extra'], {}), configError(/^unexpected argument "extra" \(see clicker --help\)$/));
  assert.throws(() => loadConfig(['--port'], {}), configError(/--port.*\(see clicker --help\)$/));
  for (const argv of [['--prot'], ['--port']]) {
    assert.throws(() => loadConfig(argv, {}), (err: unknown) => err instanceof ConfigError && !err.message.includes('\n'));
  }
});

test('--allow-origin may repeat and adds to ALLOW_ORIGINS', () => {
  const config = loadConfig(['--allow-origin', 'http://a.example:8080', '--allow-origin', 'https://b.example'], {
    ALLOW_ORIGINS: 'https://c.example, http://192.168.1.5:3000 ,',
  });
  assert.deepEqual(config.allowOrigins, ['http://a.example:8080', 'https://b.example', 'https://c.example', 'http://192.168.1.5:3000']);
});

test('--allow-origin refuses anything that is not a bare origin', () => {
  for (const bad of ['a.example', 'https://a.example/', 'https://a.example/path', 'ws://a.example', '*']) {
    assert.throws(() => loadConfig(['--allow-origin', bad], {}), configError(/^--allow-origin must look like http:\/\/host:port/), bad);
  }
});

test('--host is validated; CLICKER_HOST is read', () => {
  assert.equal(loadConfig(['--host', '192.168.1.20'], {}).host, '192.168.1.20');
  assert.equal(loadConfig(['--host', '[fd00::1]'], {}).host, '[fd00::1]');
  assert.equal(loadConfig([], { CLICKER_HOST: 'laptop.local' }).host, 'laptop.local');
  assert.throws(() => loadConfig(['--host', 'evil.example/path'], {}), configError(/^--host must be a host name or address/));
  assert.throws(() => loadConfig(['--host', 'a b'], {}), configError(/--host/));
});

test('--bind, --trust-proxy and numeric variables', () => {
  const config = loadConfig(['--bind', '127.0.0.1', '--trust-proxy'], { HISTORY_MAX: '50', CREATE_PER_MINUTE: '3', HEARTBEAT_MS: '5000', COMMAND_REPLAY_MAX_AGE_MS: '3000', SLIDESHOW_AWAY_MS: '9000' });
  assert.equal(config.bind, '127.0.0.1');
  assert.equal(config.trustProxy, true);
  assert.equal(config.historyMax, 50);
  assert.equal(config.createPerMinute, 3);
  assert.equal(config.heartbeatMs, 5_000);
  assert.equal(config.commandReplayMaxAgeMs, 3_000);
  assert.equal(loadConfig([], {}).commandReplayMaxAgeMs, 30_000);
  assert.equal(config.slideshowAwayMs, 9_000);
  assert.equal(loadConfig([], {}).slideshowAwayMs, 4_000);
  // The key holders' beat: 5 s, set apart, and never slower than the room's heartbeat (HEARTBEAT_MS=1000 alone brings it down with it).
  assert.equal(loadConfig([], {}).keyHolderBeatMs, 5_000);
  assert.equal(loadConfig([], { KEY_HOLDER_BEAT_MS: '2000' }).keyHolderBeatMs, 2_000);
  assert.equal(loadConfig([], { HEARTBEAT_MS: '1000' }).keyHolderBeatMs, 1_000);
  assert.equal(loadConfig([], { KEY_HOLDER_BEAT_MS: '60000' }).keyHolderBeatMs, 15_000);
  assert.equal(loadConfig([], { TRUST_PROXY: '1', BIND: '::' }).trustProxy, true);
  // On/off variables take 1/0 and the words people write for them; anything else is an error, never a silent off.
  for (const on of ['1', 'true', 'TRUE', 'yes', 'on']) assert.equal(loadConfig([], { TRUST_PROXY: on }).trustProxy, true, on);
  for (const off of ['0', 'false', 'no', 'off', '']) assert.equal(loadConfig([], { TRUST_PROXY: off }).trustProxy, false, off);
  assert.throws(() => loadConfig([], { TRUST_PROXY: 'maybe' }), (e: unknown) => e instanceof ConfigError && e.message === 'TRUST_PROXY must be 1 or 0, or the proxies\' addresses or subnets (10.0.0.5,10.0.1.0/24), got "maybe"');
  assert.throws(() => loadConfig([], { RAW_HTTP: 'maybe' }), (e: unknown) => e instanceof ConfigError && e.message === 'RAW_HTTP must be 1 or 0 (or true or false), got "maybe"');
  // The slideshow (it holds the notes) is this machine's alone unless the operator gives a key for other machines.
  const key = 'a-presenter-key-of-24-ch';
  assert.equal(loadConfig([], {}).presenterKey, undefined);
  assert.equal(loadConfig([], { PRESENTER_KEY: key }).presenterKey, key);
  assert.equal(loadConfig(['--presenter-anywhere'], { PRESENTER_KEY: key }).presenterKey, key);
  assert.equal(loadConfig([], { PRESENTER_ANYWHERE: 'yes', PRESENTER_KEY: key }).presenterKey, key);
  // Never open to everyone: asking for "anywhere" without a key is refused, and says what to do.
  for (const [argv, env] of [[['--presenter-anywhere'], {}], [[], { PRESENTER_ANYWHERE: '1' }]] as const) {
    assert.throws(() => loadConfig([...argv], { ...env }), (e: unknown) => e instanceof ConfigError && /set PRESENTER_KEY to a secret.*\/\?key=/.test(e.message));
  }
  assert.throws(() => loadConfig([], { PRESENTER_ANYWHERE: 'maybe', PRESENTER_KEY: key }), ConfigError);
  // A key that would not survive a URL, or is too short to be a secret; the message does not repeat it.
  for (const bad of ['short-key', 'has a space in it!!', `${'x'.repeat(129)}`, 'ключ-ключ-ключ-ключ']) {
    assert.throws(
      () => loadConfig([], { PRESENTER_KEY: bad }),
      (e: unknown) => e instanceof ConfigError && /^PRESENTER_KEY must be 16 to 128/.test(e.message) && !e.message.includes(bad),
    );
  }
  assert.equal(loadConfig([], {}).rawHttp, true);
  assert.equal(loadConfig([], { RAW_HTTP: 'false' }).rawHttp, false);
  assert.equal(loadConfig([], { RAW_HTTP: '0' }).rawHttp, false);
  assert.throws(() => loadConfig([], { RAW_HTTP: 'nope' }), ConfigError);
  // Phone approval: on unless turned off by name.
  assert.equal(loadConfig([], {}).approvePhones, true);
  assert.equal(loadConfig([], { APPROVE_PHONES: '0' }).approvePhones, false);
  assert.equal(loadConfig([], { APPROVE_PHONES: 'off' }).approvePhones, false);
  assert.equal(loadConfig([], { APPROVE_PHONES: 'yes' }).approvePhones, true);
  assert.throws(() => loadConfig([], { APPROVE_PHONES: 'sometimes' }), (e: unknown) => e instanceof ConfigError && /^APPROVE_PHONES must be 1 or 0/.test(e.message));
  assert.equal(loadConfig([], { KNOCKS_PER_MINUTE: '60' }).knocksPerMinute, 60);
  assert.equal(loadConfig([], {}).newPhonesPerMinute, 10);
  assert.equal(loadConfig([], { NEW_PHONES_PER_MINUTE: '3' }).newPhonesPerMinute, 3);
  assert.equal(loadConfig([], { BIND: '::' }).bind, '::');
});

test('a bad numeric variable names the variable', () => {
  assert.throws(() => loadConfig([], { MAX_CHANNELS: 'lots' }), configError(/^MAX_CHANNELS must be a positive integer, got "lots"/));
  assert.throws(() => loadConfig([], { HISTORY_MAX: '0' }), configError(/^HISTORY_MAX must be a positive integer/));
});

test('WARMUP_COMMANDS sets the startup warm-up; 0 turns it off; anything else is refused', () => {
  assert.equal(loadConfig([], {}).warmupCommands, DEFAULTS.warmupCommands);
  assert.equal(loadConfig([], { WARMUP_COMMANDS: '0' }).warmupCommands, 0);
  assert.equal(loadConfig([], { WARMUP_COMMANDS: '500' }).warmupCommands, 500);
  for (const bad of ['-1', 'lots', '1.5']) {
    assert.throws(() => loadConfig([], { WARMUP_COMMANDS: bad }), configError(/^WARMUP_COMMANDS must be a whole number, got "/), bad);
  }
  // The other numbers stay positive.
  assert.throws(() => loadConfig([], { HISTORY_MAX: '0' }), configError(/^HISTORY_MAX must be a positive integer, got "0"/));
});

test('HEADERS_TIMEOUT_MS may not exceed REQUEST_TIMEOUT_MS: a one-line ConfigError naming both, not node:http\'s range error at listen', () => {
  assert.throws(
    () => loadConfig([], { HEADERS_TIMEOUT_MS: '20000' }),
    configError(/^HEADERS_TIMEOUT_MS \(20000\) must not exceed REQUEST_TIMEOUT_MS \(15000, the default\)$/),
  );
  assert.throws(
    () => loadConfig([], { REQUEST_TIMEOUT_MS: '5000' }),
    configError(/^HEADERS_TIMEOUT_MS \(10000, the default\) must not exceed REQUEST_TIMEOUT_MS \(5000\)$/),
  );
  assert.throws(() => loadConfig([], { HEADERS_TIMEOUT_MS: '6000', REQUEST_TIMEOUT_MS: '5000' }), configError(/^HEADERS_TIMEOUT_MS \(6000\) must not exceed REQUEST_TIMEOUT_MS \(5000\)$/));
  // Equal is what node:http accepts, and lowering both together is fine.
  assert.equal(loadConfig([], { HEADERS_TIMEOUT_MS: '15000' }).headersTimeoutMs, 15_000);
  const both = loadConfig([], { HEADERS_TIMEOUT_MS: '3000', REQUEST_TIMEOUT_MS: '5000' });
  assert.deepEqual([both.headersTimeoutMs, both.requestTimeoutMs], [3_000, 5_000]);
});

test('a millisecond duration above what a timer holds (2^31-1) names the variable instead of firing every 1 ms', () => {
  const durations = ['HEARTBEAT_MS', 'KEY_HOLDER_BEAT_MS', 'SSE_RETRY_MS', 'HISTORY_MAX_AGE_MS', 'COMMAND_REPLAY_MAX_AGE_MS', 'CHANNEL_TTL_MS', 'HEADERS_TIMEOUT_MS', 'REQUEST_TIMEOUT_MS', 'SLIDESHOW_AWAY_MS'];
  for (const name of durations) {
    for (const bad of ['2147483648', '3000000000']) {
      assert.throws(() => loadConfig([], { [name]: bad }), configError(new RegExp(`^${name} must be at most 2147483647 ms \\(about 24 days\\), got "${bad}"$`)), `${name}=${bad}`);
    }
  }
  // The largest a timer holds is taken (both timeouts together, as one may not exceed the other).
  const most = loadConfig([], Object.fromEntries(durations.map((name) => [name, '2147483647'])));
  for (const key of ['heartbeatMs', 'keyHolderBeatMs', 'retryMs', 'historyMaxAgeMs', 'commandReplayMaxAgeMs', 'channelTtlMs', 'headersTimeoutMs', 'requestTimeoutMs', 'slideshowAwayMs'] as const) {
    assert.equal(most[key], 2_147_483_647, key);
  }
  // Counts are no durations: the bound is per option.
  assert.equal(loadConfig([], { MAX_CHANNELS: '3000000000' }).maxChannels, 3_000_000_000);
});

test('LOG_LEVEL sets the log level; an unknown one is a one-line ConfigError listing the valid ones', () => {
  assert.equal(loadConfig([], {}).logLevel, 'info');
  assert.equal(loadConfig([], { LOG_LEVEL: '' }).logLevel, 'info', 'an empty variable is unset');
  for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) assert.equal(loadConfig([], { LOG_LEVEL: level }).logLevel, level);
  for (const bad of ['verbose', 'INFO', 'warning', '30']) {
    assert.throws(
      () => loadConfig([], { LOG_LEVEL: bad }),
      configError(new RegExp(`^LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent; got "${bad}"$`)),
      bad,
    );
  }
});

test('TRUST_PROXY: on or off for a proxy on this machine, or the proxies named by address or subnet', () => {
  assert.deepEqual([loadConfig([], {}).trustProxy, loadConfig([], {}).trustedProxies], [false, ['loopback']]);
  const on = loadConfig([], { TRUST_PROXY: '1' });
  assert.deepEqual([on.trustProxy, on.trustedProxies], [true, ['loopback']]);
  const named = loadConfig([], { TRUST_PROXY: '10.0.0.5, 10.0.1.0/24,loopback' });
  assert.deepEqual([named.trustProxy, named.trustedProxies], [true, ['10.0.0.5', '10.0.1.0/24', 'loopback']]);
  assert.throws(() => loadConfig([], { TRUST_PROXY: 'nginx.local' }), /TRUST_PROXY must be 1 or 0, or the proxies' addresses/);
  assert.throws(() => loadConfig([], { TRUST_PROXY: '10.0.0.0/99' }), /TRUST_PROXY/);
});
