import { runBusContract } from './bus-contract';
import { MemoryBus, type Bus } from './bus';

runBusContract(
  'memory',
  async (limits, now) => {
    const bus = new MemoryBus(limits, now);
    return { bus, cleanup: () => bus.close() };
  },
  {
    multiInstance: false,
    expire: async (bus: Bus) => {
      if (!(bus instanceof MemoryBus)) throw new TypeError('the memory contract got another bus');
      bus.sweep();
    },
  },
);
