// The Bus contract (bus-contract.ts) against RedisBus, with two instances on
// one private redis-server for the cross-instance cases. Expiry is left out:
// Redis expires keys on its own clock (PEXPIRE), which the contract's hand-
// moved clock cannot move; redis.test.ts covers a channel's life end to end.
import { after } from 'node:test';
import { runBusContract } from './bus-contract';
import { RedisBus } from './bus-redis';
import { RedisServer, redisServerOrSkip } from './redis-harness';

const binary = redisServerOrSkip('server/bus-redis.test.ts');

if (binary) {
  // Started once for the whole file, on first use; every test's channels have fresh random ids.
  let server: Promise<RedisServer> | undefined;
  const redis = () => (server ??= RedisServer.start(binary));
  after(async () => {
    if (server) await (await server).cleanup();
  });

  runBusContract(
    'redis',
    async (limits, now) => {
      const bus = new RedisBus({ url: (await redis()).url, limits, now });
      await bus.connected();
      return { bus, cleanup: () => bus.close() };
    },
    { multiInstance: true },
  );
}
