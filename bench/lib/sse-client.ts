// A raw SSE subscriber over net.Socket: a hand-rolled HTTP/1.1 response head,
// chunked decoding and text/event-stream parsing. It costs far less per
// delivery than http.request + IncomingMessage, which matters when one bench
// process holds thousands of subscribers on the same two cores as the server:
// a heavy client would make every server look alike.
//
// Each event carries `at`, the performance.now() of the socket read that
// completed it, taken before any parsing so client work does not inflate the
// figure for the events of that read.
//
// Reads use net's `onread` with one buffer shared by every subscriber: no
// stream machinery and no Buffer allocated per read. That is safe because the
// callback parses synchronously and keeps nothing that points into the buffer
// (the head is copied, payload becomes strings).
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { StringDecoder } from 'node:string_decoder';

export interface SseMessage {
  /** Event name; "message" when the stream sent none, as EventSource does. */
  event: string;
  data: string;
  id: string | undefined;
  /** performance.now() of the read that completed this event. */
  at: number;
}

export interface SubscribeOptions {
  host: string;
  port: number;
  path: string;
  headers?: Readonly<Record<string, string>>;
  onEvent: (msg: SseMessage) => void;
  /** Called once when the stream ends after it was open (server closed it, or an error). */
  onClose?: (reason: string) => void;
  /** Time allowed for the connection and the response head. */
  timeoutMs?: number;
}

/** A refused subscription: the status line and whatever body came with it. */
export class SubscribeError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

const CRLFCRLF = Buffer.from('\r\n\r\n');
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** Parses text/event-stream text fed in arbitrary pieces. */
class EventParser {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';
  private data: string[] = [];
  private event = '';
  private id: string | undefined;
  private lastId: string | undefined;

  constructor(private readonly emit: (msg: SseMessage) => void) {}

  feed(chunk: Buffer, at: number): void {
    this.pending += this.decoder.write(chunk);
    let start = 0;
    for (;;) {
      // A line ends at CRLF, LF or a lone CR. Search for both and take the earlier.
      const lf = this.pending.indexOf('\n', start);
      const cr = this.pending.indexOf('\r', start);
      let end: number;
      let next: number;
      if (cr !== -1 && (lf === -1 || cr < lf)) {
        // A CR at the very end may be the first half of a CRLF split across reads.
        if (cr === this.pending.length - 1) break;
        end = cr;
        next = this.pending[cr + 1] === '\n' ? cr + 2 : cr + 1;
      } else if (lf !== -1) {
        end = lf;
        next = lf + 1;
      } else {
        break;
      }
      this.line(this.pending.slice(start, end), at);
      start = next;
    }
    if (start > 0) this.pending = this.pending.slice(start);
  }

  private line(line: string, at: number): void {
    if (line === '') {
      if (this.data.length) {
        this.emit({ event: this.event || 'message', data: this.data.join('\n'), id: this.id ?? this.lastId, at });
      }
      if (this.id !== undefined) this.lastId = this.id;
      this.data = [];
      this.event = '';
      this.id = undefined;
      return;
    }
    if (line.charCodeAt(0) === 58 /* ':' */) return; // comment, e.g. a heartbeat
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32 /* ' ' */) value = value.slice(1);
    switch (field) {
      case 'data':
        this.data.push(value);
        break;
      case 'event':
        this.event = value;
        break;
      case 'id':
        if (!value.includes('\0')) this.id = value;
        break;
      default:
        // `retry` and unknown fields do not concern a bench client.
        break;
    }
  }
}

/** Decodes a chunked body, handing each piece of payload to `out`. */
class ChunkedDecoder {
  private state: 'size' | 'data' | 'crlf' | 'trailer' = 'size';
  private sizeLine = '';
  private remaining = 0;
  private crlfLeft = 0;

  constructor(private readonly out: (piece: Buffer) => void) {}

  /** Returns false once the terminating zero-size chunk has been seen. */
  feed(buf: Buffer): boolean {
    let i = 0;
    while (i < buf.length) {
      switch (this.state) {
        case 'size': {
          const nl = buf.indexOf(10, i);
          if (nl === -1) {
            this.sizeLine += buf.toString('latin1', i);
            return true;
          }
          this.sizeLine += buf.toString('latin1', i, nl);
          i = nl + 1;
          // Chunk extensions (";name=value") are allowed and meaningless here.
          const size = Number.parseInt(this.sizeLine.trim().split(';')[0] ?? '', 16);
          this.sizeLine = '';
          if (!Number.isFinite(size)) throw new Error('bad chunk size');
          if (size === 0) {
            this.state = 'trailer';
            return false;
          }
          this.remaining = size;
          this.state = 'data';
          break;
        }
        case 'data': {
          const take = Math.min(this.remaining, buf.length - i);
          this.out(buf.subarray(i, i + take));
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) {
            this.state = 'crlf';
            this.crlfLeft = 2;
          }
          break;
        }
        case 'crlf': {
          const take = Math.min(this.crlfLeft, buf.length - i);
          i += take;
          this.crlfLeft -= take;
          if (this.crlfLeft === 0) this.state = 'size';
          break;
        }
        case 'trailer':
          return false;
      }
    }
    return true;
  }
}

export class SseSubscriber {
  private closedReason: string | undefined;

  private constructor(
    private readonly socket: net.Socket,
    readonly status: number,
    readonly headers: ReadonlyMap<string, string>,
  ) {}

  get open(): boolean {
    return this.closedReason === undefined;
  }

  /** Closes the connection; no further events or onClose call. */
  close(): void {
    this.closedReason ??= 'closed by client';
    this.socket.destroy();
  }

  /** Opens a stream and resolves once a 200 response head has arrived. */
  static open(opts: SubscribeOptions): Promise<SseSubscriber> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({
        host: opts.host,
        port: opts.port,
        noDelay: true,
        onread: {
          buffer: READ_BUFFER,
          callback: (n: number) => {
            onData(READ_BUFFER.subarray(0, n));
            return true; // keep reading
          },
        },
      });
      let head: Buffer = Buffer.alloc(0);
      let sub: SseSubscriber | undefined;
      let body: ((buf: Buffer, at: number) => void) | undefined;

      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no response head from ${opts.path} within ${opts.timeoutMs ?? 10_000} ms`));
      }, opts.timeoutMs ?? 10_000);

      const ended = (reason: string) => {
        clearTimeout(timer);
        if (!sub) {
          reject(new Error(`connection to ${opts.path} ended before a response head: ${reason}`));
          return;
        }
        if (sub.closedReason !== undefined) return;
        sub.closedReason = reason;
        opts.onClose?.(reason);
      };

      socket.once('connect', () => {
        let req = `GET ${opts.path} HTTP/1.1\r\nHost: ${opts.host}:${opts.port}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n`;
        for (const [k, v] of Object.entries(opts.headers ?? {})) req += `${k}: ${v}\r\n`;
        socket.write(`${req}\r\n`);
      });

      const onData = (chunk: Buffer): void => {
        const at = performance.now();
        if (body) {
          feed(body, chunk, at);
          return;
        }
        // A copy: `chunk` is the shared read buffer, overwritten by the next read.
        head = Buffer.concat([head, chunk]);
        const endOfHead = head.indexOf(CRLFCRLF);
        if (endOfHead === -1) return;
        clearTimeout(timer);
        const lines = head.toString('latin1', 0, endOfHead).split('\r\n');
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
        const headers = new Map<string, string>();
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
        }
        const rest = head.subarray(endOfHead + 4);
        if (status !== 200) {
          socket.destroy();
          reject(new SubscribeError(`GET ${opts.path} answered ${status}: ${rest.toString('utf8').slice(0, 300)}`, status));
          return;
        }
        sub = new SseSubscriber(socket, status, headers);
        const parser = new EventParser(opts.onEvent);
        if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
          let at0 = at;
          const chunked = new ChunkedDecoder((piece) => parser.feed(piece, at0));
          body = (buf, t) => {
            at0 = t;
            if (!chunked.feed(buf)) socket.end();
          };
        } else {
          body = (buf, t) => parser.feed(buf, t);
        }
        resolve(sub);
        if (rest.length) feed(body, rest, at);
      };

      /** A malformed stream ends this subscriber, never the bench. */
      const feed = (into: (buf: Buffer, at: number) => void, buf: Buffer, at: number): void => {
        try {
          into(buf, at);
        } catch (err) {
          ended(`bad stream: ${(err as Error).message}`);
          socket.destroy();
        }
      };

      socket.once('error', (err) => ended(`error: ${err.message}`));
      socket.once('close', () => ended('closed by server'));
    });
  }
}
