// Prometheus metrics, one registry per app so tests can run several side by
// side. The hub reports through the small `HubMetrics` surface; nothing on the
// per-delivery path does more than bump a number.
import { setTimeout as sleep } from 'node:timers/promises';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Hub } from './hub';
import type { RawStats } from './raw-http';

export interface HubMetrics {
  /** A command was accepted (not a duplicate). */
  command(): void;
  /** An event reached this process's streams, `seconds` after it was published (on any instance). */
  delivered(seconds: number, streams: number): void;
}

/** How long the first scrape lets prom-client's event-loop lag histogram (10 ms samples) fill. */
const FIRST_SCRAPE_SAMPLES_MS = 50;

export const NO_METRICS: HubMetrics = { command: () => undefined, delivered: () => undefined };

export class Metrics implements HubMetrics {
  readonly registry = new Registry();
  private readonly commands: Counter;
  private readonly deliveries: Counter;
  private readonly latency: Histogram;
  /** Set by the first scrape: process metrics started, and a few lag samples taken. */
  private processMetrics: Promise<void> | undefined;

  constructor() {
    this.commands = new Counter({ name: 'clicker_commands_total', help: 'Commands accepted (duplicates excluded).', registers: [this.registry] });
    this.deliveries = new Counter({ name: 'clicker_deliveries_total', help: 'Event writes to open streams in this process.', registers: [this.registry] });
    this.latency = new Histogram({
      name: 'clicker_delivery_latency_seconds',
      help: 'From publish (on any instance) to the write to this process\'s streams.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [this.registry],
    });
  }

  /**
   * The exposition text. prom-client's process metrics start with the first
   * scrape, not with the server: their event-loop lag sampling wakes the
   * process every 10 ms, which on a presenter's laptop (nobody scrapes it)
   * would keep the CPU out of its deep idle states for the whole talk. An
   * operator's scraper gets them from its first scrape on, unchanged; the lag
   * percentiles cover the time since the previous scrape anyway. That first
   * scrape waits a few samples' time, so no lag gauge reads an empty histogram
   * (NaN, or 2^63 ns for the minimum).
   */
  async scrape(): Promise<string> {
    // Every scrape waits for the first one's samples, even two arriving together.
    await (this.processMetrics ??= this.startProcessMetrics());
    return this.registry.metrics();
  }

  private startProcessMetrics(): Promise<void> {
    collectDefaultMetrics({ register: this.registry, prefix: 'clicker_process_' });
    return sleep(FIRST_SCRAPE_SAMPLES_MS);
  }

  /** Gauges read at scrape time: channels (from the bus, so shared across instances with Redis) and this process's streams. */
  watch(hub: Hub): void {
    new Gauge({
      name: 'clicker_channels',
      help: 'Channels held (by the shared store with Redis; by this process otherwise).',
      registers: [this.registry],
      async collect() {
        const n = await hub.bus.count().catch(() => Number.NaN);
        this.set(n);
      },
    });
    new Gauge({
      name: 'clicker_subscribers',
      help: 'Open streams in this process.',
      registers: [this.registry],
      collect() {
        this.set(hub.stats().subscribers);
      },
    });
    new Gauge({
      name: 'clicker_bus_ready',
      help: '1 when the channel store answers.',
      registers: [this.registry],
      async collect() {
        this.set((await hub.bus.ready()) ? 1 : 0);
      },
    });
  }

  /**
   * The raw HTTP front's counts, read at scrape time: how much of the traffic
   * the fast parser serves, and how much it passes to node:http.
   */
  watchRaw(stats: () => RawStats | undefined): void {
    const counter = (name: string, help: string, read: (s: RawStats) => number) =>
      new Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          const s = stats();
          if (!s) return;
          // The front keeps the totals; the counter mirrors them at each scrape.
          this.reset();
          this.inc(read(s));
        },
      });
    counter('clicker_http_fast_requests_total', 'Requests answered by the raw HTTP front.', (s) => s.served);
    counter('clicker_http_forwarded_requests_total', 'Requests the raw HTTP front passed to node:http.', (s) => s.forwarded);
  }

  command(): void {
    this.commands.inc();
  }

  delivered(seconds: number, streams: number): void {
    if (streams === 0) return;
    this.latency.observe(seconds);
    this.deliveries.inc(streams);
  }
}
