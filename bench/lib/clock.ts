// One clock for every process of the bench. Subscribers live in worker
// processes (one process may hold at most 20,000 open files), while the
// publisher stamps its send time in the parent, so a latency is a difference
// between two processes' readings.
//
// performance.now() counts from each process's own start. Node takes it from
// uv_hrtime, i.e. CLOCK_MONOTONIC, which is one machine-wide clock; so is
// process.hrtime. Shifting performance.now() by the distance between the two,
// measured once per process, puts every process on the machine's monotonic
// clock with no wall-clock reading (which NTP may slew) in between.
import { performance } from 'node:perf_hooks';

const OFFSET_MS = Number(process.hrtime.bigint()) / 1e6 - performance.now();

/** Milliseconds on the machine-wide monotonic clock, comparable across processes. */
export function monoNow(): number {
  return performance.now() + OFFSET_MS;
}

/** A performance.now() reading of this process (e.g. an SSE event's `at`) on the shared clock. */
export function toMono(performanceNow: number): number {
  return performanceNow + OFFSET_MS;
}
