// Messages between the bench and its subscriber workers (lib/pool.ts and
// lib/pool-worker.ts). Both ends are this project's code, yet every message
// is still checked on arrival: a malformed one is a bug to report, not a crash.
import { isRecord } from './http';

/** What a worker is asked to do. */
export type ToWorker =
  | {
      op: 'open';
      host: string;
      port: number;
      path: string;
      count: number;
      /** Connections this worker opens at once. */
      concurrency: number;
      /** SSE event name that carries commands. */
      eventName: string;
      /** Per connection: TCP connect plus response head. */
      timeoutMs: number;
      /** Count refused or failed connections and go on (capacity), rather than stop at the first (fan-out). */
      tolerant: boolean;
      /** Command ids whose receive times are kept; later ones are only counted. */
      maxCommands: number;
    }
  | { op: 'collect' }
  | { op: 'close' };

/** What a worker answers. Times are on the shared monotonic clock (lib/clock.ts). */
export type FromWorker =
  | { type: 'opened'; open: number; errors: number; firstErrors: string[]; seconds: number }
  /** Every live subscriber of this worker has received command `id`; `lastAt` is the latest arrival. */
  | { type: 'complete'; id: string; lastAt: number }
  | { type: 'samples'; ids: string[]; times: Float64Array[]; received: number[]; dropped: number; dropReasons: string[] }
  | { type: 'closed' }
  | { type: 'failed'; message: string };

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
const isNumberArray = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => typeof x === 'number');

export function isToWorker(m: unknown): m is ToWorker {
  if (!isRecord(m)) return false;
  if (m.op === 'collect' || m.op === 'close') return true;
  return (
    m.op === 'open' &&
    typeof m.host === 'string' &&
    typeof m.port === 'number' &&
    typeof m.path === 'string' &&
    typeof m.count === 'number' &&
    typeof m.concurrency === 'number' &&
    typeof m.eventName === 'string' &&
    typeof m.timeoutMs === 'number' &&
    typeof m.tolerant === 'boolean' &&
    typeof m.maxCommands === 'number'
  );
}

export function isFromWorker(m: unknown): m is FromWorker {
  if (!isRecord(m)) return false;
  switch (m.type) {
    case 'opened':
      return typeof m.open === 'number' && typeof m.errors === 'number' && isStringArray(m.firstErrors) && typeof m.seconds === 'number';
    case 'complete':
      return typeof m.id === 'string' && typeof m.lastAt === 'number';
    case 'samples':
      return (
        isStringArray(m.ids) &&
        Array.isArray(m.times) &&
        m.times.every((t) => t instanceof Float64Array) &&
        isNumberArray(m.received) &&
        typeof m.dropped === 'number' &&
        isStringArray(m.dropReasons)
      );
    case 'closed':
      return true;
    case 'failed':
      return typeof m.message === 'string';
    default:
      return false;
  }
}
