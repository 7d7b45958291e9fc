// One clock for every process of the bench. Subscribers live in worker
// processes (one process may hold at most 20,000 open files), while the
// publisher stamps its send time in the parent, so a latency is a difference
// between two processes' readings.
//
// performance.now() counts from each process's own start. Node takes it from
// uv_hrtime, i.e. CLOCK_MONOTONIC, which is one machine-wide clock; so is
// process.hrtime. Shifting performance.now() by the distance between the two,
// measured once per process (below), puts every process on the machine's monotonic
// clock with no wall-clock reading (which NTP may slew) in between.
import { performance } from 'node:perf_hooks';

/**
 * The distance between the two clocks, from the tightest of many paired
 * readings: each performance.now() is read between two hrtime readings, and
 * the pair read closest together wins. A single pair is off by however long
 * the process was descheduled between its two reads, which on the loaded
 * 2-core machine (workers start while others are busy) once shifted a worker's
 * clock by enough to stamp 2.5% of its deliveries before their publish.
 */
function measureOffset(): number {
  let best = Number.POSITIVE_INFINITY;
  let offset = 0;
  for (let i = 0; i < 200; i++) {
    const before = process.hrtime.bigint();
    const now = performance.now();
    const after = process.hrtime.bigint();
    const gap = Number(after - before);
    if (gap < best) {
      best = gap;
      offset = Number(before + (after - before) / 2n) / 1e6 - now;
    }
  }
  return offset;
}

const OFFSET_MS = measureOffset();

/** Milliseconds on the machine-wide monotonic clock, comparable across processes. */
export function monoNow(): number {
  return performance.now() + OFFSET_MS;
}

/** A performance.now() reading of this process (e.g. an SSE event's `at`) on the shared clock. */
export function toMono(performanceNow: number): number {
  return performanceNow + OFFSET_MS;
}
