// Clicker's own HTTP/1.1 front for the hot routes (streams, commands and
// pointer positions). node:http costs about 0.08 ms a request on this class
// of machine (bench: one-subscriber latency 0.25 ms through node:http, 0.17 ms
// through a bare socket, nginx+nchan 0.16 ms), which is most of the gap to a
// C hub. So every connection starts here, and requests in a strict, small
// subset of HTTP/1.1 for a hot route are answered straight on the socket.
//
// Anything else goes to node:http, which owns the connection from then on:
// the first request that is not for a hot route (a page, an asset, pairing),
// and any request this parser does not fully understand or chooses not to:
// chunked bodies, Expect, Upgrade, duplicate or folded headers, a missing
// Host, bodies over the cap, bare LFs, other HTTP versions. Handing over is
// always safe because it happens on a request boundary with no answer
// pending, and the bytes already read go back to the socket first, so
// node:http sees exactly what the client sent and applies its own rules and
// refusals. The parser never has to be lenient, only strict.
import { IncomingMessage, STATUS_CODES, type ServerResponse } from 'node:http';
import { Duplex } from 'node:stream';
import type { RequestHead } from './guards';
import type { Sink } from './hub';
import type { Socket } from 'node:net';

/** Same limit as node:http's default maxHeaderSize: a longer head is node's to refuse (431). */
export const MAX_HEAD_BYTES = 16 * 1024;
/** Bytes of pipelined requests read ahead while an answer is pending, before reading pauses. */
const PIPELINE_BYTES = 256 * 1024;
/** The request line must fit here; a longer one is node's to judge. */
const MAX_REQUEST_LINE = 4 * 1024;

const REQUEST_LINE = /^([A-Z]{1,20}) (\/[!-~]*) HTTP\/1\.1$/;
/**
 * One header line, read where the last one ended (sticky): an RFC 9110 token
 * for the name, a colon, then visible ASCII, spaces, tabs and obs-text
 * (bytes 0x80-0xff, read as latin1) up to CRLF. Anything else fails it and
 * is handed over: obsolete line folding (leading whitespace), a space before
 * the colon, a control character, a bare CR or LF. Neither part can match a
 * CR, so a failed match never backtracks far: one pass per line.
 */
const HEADER_LINE = /([!#$%&'*+.^_`|~0-9A-Za-z-]+):([\t\x20-\x7e\x80-\xff]*)\r\n/y;
/** RFC 9110 token: a header name. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const DIGITS = /^\d{1,9}$/;
/** Headers this parser leaves to node:http, whose handling of them is complete. */
const HANDED_OVER = new Set(['transfer-encoding', 'expect', 'upgrade']);

export interface RawHead {
  /** For a hot route: the raw path serves it. Otherwise node:http does, through the connection's tunnel. */
  hot: boolean;
  /** What the routes' `matches` answered for a hot route, handed back to `serve`. */
  route: unknown;
  method: string;
  url: string;
  /** Lower-cased names, as node:http gives them. Duplicates are handed over, so each value is one string. */
  headers: Record<string, string>;
  /** Bytes of the head, the blank line included. */
  headBytes: number;
  /** The body's length; 0 without Content-Length. */
  contentLength: number;
  /** The client asked for the connection to close after this answer. */
  close: boolean;
}

export type HeadResult = { kind: 'head'; head: RawHead } | { kind: 'partial' } | { kind: 'handover' };

const PARTIAL: HeadResult = { kind: 'partial' };
const HANDOVER: HeadResult = { kind: 'handover' };

const CRLF = Buffer.from('\r\n');
const CRLFCRLF = Buffer.from('\r\n\r\n');
const LFLF = Buffer.from('\n\n');

/** The value without the optional whitespace (spaces and tabs only) around it. */
function trimOws(v: string): string {
  let start = 0;
  let end = v.length;
  while (start < end && (v.charCodeAt(start) === 32 || v.charCodeAt(start) === 9)) start++;
  while (end > start && (v.charCodeAt(end - 1) === 32 || v.charCodeAt(end - 1) === 9)) end--;
  return start === 0 && end === v.length ? v : v.slice(start, end);
}

/**
 * Reads one request head from the front of `buf`: a complete head, a partial
 * one, or `handover` for anything outside the strict subset this parser
 * reads, which node:http then gets byte for byte.
 */
export function parseHead(buf: Buffer, isHot: (method: string, url: string) => unknown): HeadResult {
  const end = buf.indexOf(CRLFCRLF);
  if (end < 0) {
    const lineEnd = buf.indexOf(CRLF);
    // A head ended by bare LFs, or a request line that is not CRLF-terminated, is node's to judge.
    if (buf.indexOf(LFLF) >= 0 || (lineEnd < 0 ? buf.indexOf(10) >= 0 || buf.length > MAX_REQUEST_LINE : false)) return HANDOVER;
    return buf.length > MAX_HEAD_BYTES ? HANDOVER : PARTIAL;
  }
  if (end + 4 > MAX_HEAD_BYTES) return HANDOVER;
  // One latin1 decode of the whole head, with the CRLF that ends its last line.
  const text = buf.toString('latin1', 0, end + 2);
  const lineEnd = text.indexOf('\r\n');
  const line = lineEnd <= MAX_REQUEST_LINE ? REQUEST_LINE.exec(text.slice(0, lineEnd)) : null;
  if (!line) return HANDOVER;
  // No prototype: a header named __proto__ or constructor is just a name.
  const headers = Object.create(null) as Record<string, string>;
  let pos = lineEnd + 2;
  while (pos < text.length) {
    HEADER_LINE.lastIndex = pos;
    const m = HEADER_LINE.exec(text);
    if (!m) return HANDOVER;
    const key = m[1]!.toLowerCase();
    if (headers[key] !== undefined || HANDED_OVER.has(key)) return HANDOVER;
    headers[key] = trimOws(m[2]!);
    pos = HEADER_LINE.lastIndex;
  }
  if (headers.host === undefined) return HANDOVER;
  let contentLength = 0;
  const declared = headers['content-length'];
  if (declared !== undefined) {
    if (!DIGITS.test(declared)) return HANDOVER;
    contentLength = Number(declared);
  }
  const route = isHot(line[1]!, line[2]!);
  const hot = Boolean(route);
  // A hot route's body comes with a POST only; a stream request with a body is unusual enough to be node's.
  if (hot && contentLength > 0 && line[1] !== 'POST') return HANDOVER;
  const connection = headers.connection;
  const close = connection !== undefined && connection !== 'keep-alive' && connection.split(',').some((t) => t.trim().toLowerCase() === 'close');
  return { kind: 'head', head: { hot, route, method: line[1]!, url: line[2]!, headers, headBytes: end + 4, contentLength, close } };
}

/** Header values the raw path writes must not break the framing, whatever a handler passes. */
const UNSAFE_VALUE = /[\r\n\0]/;

let dateSecond = -1;
let dateText = '';
/** The Date header, formatted once a second as node:http does. */
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

export interface FrameOptions {
  /** `Connection: close`; otherwise keep-alive with this idle timeout in seconds. */
  close: boolean;
  keepAliveSeconds: number;
  /** The Date header's value; the current time when left out. */
  date?: string;
}

/**
 * One answer's bytes: status line, the handler's headers, Date and the
 * connection headers node:http would add, the blank line and the body. A
 * body of `undefined` writes the head only (a stream, a HEAD or a 204).
 */
export function frameResponse(status: number, headers: Readonly<Record<string, string | number>>, body: string | undefined, opts: FrameOptions): Buffer {
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    const text = String(value);
    if (!TOKEN.test(name) || UNSAFE_VALUE.test(text)) throw new Error(`unsafe response header ${JSON.stringify(name)}`);
    if (name.toLowerCase() === 'connection') continue;
    head += `${name}: ${text}\r\n`;
  }
  head += `Date: ${opts.date ?? httpDate()}\r\n`;
  head += opts.close ? 'Connection: close\r\n\r\n' : `Connection: keep-alive\r\nKeep-Alive: timeout=${opts.keepAliveSeconds}\r\n\r\n`;
  return Buffer.from(body === undefined ? head : head + body, 'utf8');
}

/** How a hot route answers, whichever front parsed its request. */
export interface Exchange {
  /** The request head (method, url, headers, socket), all the hot checks read; the body is read with `body()`. */
  readonly head: RequestHead;
  /** The same request as node:http's IncomingMessage, for what needs one (proxy-addr); built when first asked for. */
  readonly req: IncomingMessage;
  /** The body, at most `limit` bytes, undecoded. */
  body(limit: number): Promise<Buffer>;
  /**
   * The body at once when it arrived with the head (the raw front reads
   * both before serving), so a route can answer without awaiting; undefined
   * when it must be read with `body`. Over `limit`: a RangeError.
   */
  bodyNow(limit: number): Buffer | undefined;
  /** A complete answer. `Connection: close` among the headers closes the connection after it. */
  send(status: number, headers: Readonly<Record<string, string | number>>, body?: string): void;
  /** Answers 200 with these headers and hands the connection to an endless event stream, written straight to the socket (no chunked framing). */
  openStream(headers: Readonly<Record<string, string>>): Sink;
  /** Runs once if the client goes away before the exchange ends (and for a stream, when it ends). */
  onClose(fn: () => void): void;
  /** Whether the status line has been written. */
  readonly answered: boolean;
  /** Drops the connection. */
  destroy(): void;
}

export interface RawRoutes<R = unknown> {
  /** The route of a hot method and target the raw path may serve; null (or anything falsy) for any other. */
  matches(method: string, url: string): R | null;
  /** Serves a request whose head (and body) the raw path has read; `route` is what `matches` answered. */
  serve(ex: Exchange, route: R): void;
}

export interface RawOptions {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** Largest body read here; a longer one goes to node:http, which streams it and refuses it there. */
  maxBodyBytes: number;
}

export interface RawStats {
  /** Requests answered by the raw path. */
  served: number;
  /** Requests passed to node:http whole. */
  forwarded: number;
  /** Connections that needed node:http at least once. */
  tunnels: number;
}

const EMPTY = Buffer.alloc(0);

function closingHeader(headers: Readonly<Record<string, string | number>>): boolean {
  for (const name in headers) if (name.toLowerCase() === 'connection' && String(headers[name]).toLowerCase() === 'close') return true;
  return false;
}

/**
 * node:http's view of a connection the raw path keeps: requests that are not
 * for a hot route are pushed into it whole, and what node:http writes back
 * goes out on the real socket. node:http takes any Duplex as a connection
 * (its docs say so for the 'connection' event); the address getters are what
 * Express, rate limits and proxy-addr read.
 */
export class NodeTunnel extends Duplex {
  constructor(
    readonly real: Socket,
    /** Called when node:http has written a whole answer to a forwarded request; `closing` if it ends the connection. */
    private readonly answered: (closing: boolean) => void,
  ) {
    // As http.Server's own sockets: the client ending its side does not end ours; node:http decides.
    super({ allowHalfOpen: true });
  }

  get remoteAddress(): string | undefined {
    return this.real.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.real.remotePort;
  }

  get remoteFamily(): string | undefined {
    return this.real.remoteFamily;
  }

  get localAddress(): string | undefined {
    return this.real.localAddress;
  }

  get localPort(): number | undefined {
    return this.real.localPort;
  }

  get bytesWritten(): number {
    return this.real.bytesWritten;
  }

  /** node:http began answering a request it read from this tunnel. */
  track(res: ServerResponse): void {
    let done = false;
    const end = () => {
      if (done) return;
      done = true;
      // node:http ends the connection after this answer when the request asked
      // to close or the answer says Connection: close; what was pipelined
      // after it must then never be read.
      const connection = res.getHeader('connection');
      this.answered(!res.shouldKeepAlive || (typeof connection === 'string' && connection.toLowerCase() === 'close'));
    };
    res.once('finish', end);
    res.once('close', end);
  }

  override _read(): void {
    // node:http wants more: the real socket may read again if feed() paused it.
    if (this.real.isPaused()) this.real.resume();
  }

  /** Passes client bytes to node:http; past its buffer, the real socket pauses until _read(). */
  feed(chunk: Buffer): void {
    if (!this.push(chunk)) this.real.pause();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.real.destroyed) callback();
    else this.real.write(chunk, () => callback());
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.real.end();
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.real.destroy();
    callback(err);
  }
}

/**
 * One client connection. Requests are read one at a time, in order: a hot
 * one is served here, any other is passed whole to node:http through the
 * tunnel, and the next request waits until the answer ahead of it is written,
 * so answers leave in request order. Bytes of a pipelined request wait in
 * `buf`. Anything the parser does not take puts the connection in tunnel
 * mode for good: every byte from then on goes to node:http unread.
 */
class RawConnection {
  private buf: Buffer = EMPTY;
  /** The raw exchange in progress. */
  private current: RawExchange | null = null;
  /** A forwarded request's answer is still being written by node:http. */
  private nodeBusy = false;
  /** Body bytes of the forwarded request still to pass on. */
  private bodyLeft = 0;
  private tunnel: NodeTunnel | null = null;
  private mode: 'requests' | 'tunnel' | 'stream' | 'closing' = 'requests';
  /**
   * The connection's one timer, re-armed lazily: a keep-alive connection
   * starts and ends a request on every tap, and a Node timer set and cleared
   * for each of them was measurable per tap. What is armed is `timerKind`
   * until `deadline` (performance.now() ms); the pending timer, due at
   * `firesAt`, checks the deadline when it fires and waits on if it moved.
   */
  private timer: NodeJS.Timeout | undefined;
  private firesAt = 0;
  private deadline = 0;
  private timerKind: 'idle' | 'head' | 'body' | undefined;
  /** When the request being read began: its head and its whole are timed from there, as node:http times them. */
  private requestStart = 0;
  /** The head of a hot request whose body is still arriving, so it is parsed once. */
  private waiting: RawHead | null = null;
  private readonly isHot = (method: string, url: string): unknown => this.routes.matches(method, url);
  /** The client has ended its side: no request comes after the one in progress. */
  private clientEnded = false;
  /** No request has been read on this connection yet. */
  private fresh = true;
  /** pump()'s loop is running (an answer written inside it calls pump() again). */
  private pumping = false;
  /** Reading waits for the socket's answers to drain. */
  private drainWait = false;

  constructor(
    readonly socket: Socket,
    private readonly routes: RawRoutes,
    private readonly opts: RawOptions,
    private readonly toNode: (tunnel: NodeTunnel) => void,
    private readonly stats: RawStats,
    private readonly onDone: (conn: RawConnection) => void,
  ) {}

  start(): void {
    this.socket.setNoDelay(true);
    this.socket.on('data', this.onData);
    this.socket.on('error', this.onError);
    this.socket.once('end', this.onEnd);
    this.socket.once('close', this.onSocketClose);
    this.armTimer();
  }

  /**
   * The client finished sending. http.Server's sockets are half-open, so the
   * connection stays up until this side ends it too: at once when nothing is
   * in progress, after the answer when one is, and for a stream now (its
   * client has left).
   */
  private readonly onEnd = (): void => {
    this.clientEnded = true;
    if (this.mode === 'tunnel') {
      this.tunnel!.push(null);
      return;
    }
    // node:http's answer is on its way; nodeAnswered() ends the connection after it.
    if (this.nodeBusy) return;
    if (this.mode === 'stream') {
      this.socket.destroy();
      return;
    }
    // With nothing in progress, pump() serves whatever complete requests are left, then ends.
    if (this.current === null) this.pump();
  };

  private endConnection(): void {
    this.mode = 'closing';
    this.dropTimer();
    this.socket.end();
  }

  /** True while no request is in progress: what closeIdleConnections may cut. */
  get idle(): boolean {
    return this.mode === 'requests' && this.current === null && !this.nodeBusy && this.buf.length === 0;
  }

  private readonly onError = (): void => {
    // ECONNRESET and friends: 'close' follows and cleans up.
  };

  private readonly onSocketClose = (): void => {
    this.dropTimer();
    const ex = this.current;
    this.current = null;
    ex?.closed();
    this.tunnel?.destroy();
    this.onDone(this);
  };

  private readonly onData = (chunk: Buffer): void => {
    switch (this.mode) {
      case 'tunnel':
        this.tunnel!.feed(chunk);
        return;
      case 'stream':
      case 'closing':
        // A stream's request is its connection's last; nothing after it is read.
        return;
    }
    if (this.bodyLeft > 0) {
      const n = Math.min(this.bodyLeft, chunk.length);
      this.tunnel!.feed(n === chunk.length ? chunk : chunk.subarray(0, n));
      this.bodyLeft -= n;
      if (n === chunk.length) return;
      chunk = chunk.subarray(n);
    }
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.current || this.nodeBusy) {
      // A pipelined request waits for the answer ahead of it; past a bound,
      // the socket stops reading (TCP pushes back on the client) until pump() resumes it.
      if (this.buf.length > PIPELINE_BYTES) this.socket.pause();
      return;
    }
    this.pump();
  };

  /**
   * Serves the requests in `buf` one after another. A loop, not a call per
   * request: most answers are written at once, inside `serve`, and their
   * `finished` would otherwise start the next request from within the last
   * one, a stack frame deeper for every pipelined request (a thousand in one
   * packet overflowed the stack).
   */
  private pump(): void {
    // Called back from an answer written inside the loop below: the loop goes on by itself.
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.step());
    } finally {
      this.pumping = false;
    }
  }

  /** Serves or forwards the next request in `buf`, or waits for more bytes; true when it was answered at once and the next may follow. */
  private step(): boolean {
    if (this.mode !== 'requests' || this.current || this.nodeBusy || this.socket.destroyed) return false;
    // Answers the client is not reading pile up here, not in the kernel: read
    // no further request until they drain, as node:http does, so a client that
    // pipelines and never reads holds one socket's buffer, not the server's memory.
    if (this.socket.writableNeedDrain) {
      this.socket.pause();
      if (!this.drainWait) {
        this.drainWait = true;
        this.socket.once('drain', () => {
          this.drainWait = false;
          this.pump();
        });
      }
      // A client that reads nothing for a request's whole time is timed out, as one that sends nothing is.
      this.armTimer();
      return false;
    }
    if (this.socket.isPaused()) this.socket.resume();
    if (this.buf.length === 0) {
      if (this.clientEnded) this.endConnection();
      else this.armTimer();
      return false;
    }
    let head = this.waiting;
    if (!head) {
      const parsed = parseHead(this.buf, this.isHot);
      if (parsed.kind === 'handover') {
        this.tunnelForGood();
        return false;
      }
      // A request the client will never finish (it has ended its side) gets no answer.
      if (parsed.kind === 'partial') {
        if (this.clientEnded) this.endConnection();
        else this.armTimer();
        return false;
      }
      head = parsed.head;
      this.fresh = false;
      // A hot request keeps its head's timer (and start) for its body; a forwarded one is node:http's to time.
      if (!head.hot) {
        this.clearTimer();
        this.forward(head);
        return false;
      }
      // A hot body over the cap goes to node:http, which refuses it as it streams in.
      if (head.contentLength > this.opts.maxBodyBytes) {
        this.tunnelForGood();
        return false;
      }
    }
    const total = head.headBytes + head.contentLength;
    if (this.buf.length < total) {
      // Only bytes are appended until the body is complete, so the head read stays right.
      this.waiting = head;
      // A body the client will never finish (it has ended its side) gets no answer, as a partial head gets none.
      if (this.clientEnded) this.endConnection();
      else this.armTimer();
      return false;
    }
    this.waiting = null;
    this.clearTimer();
    const body = this.buf.subarray(head.headBytes, total);
    this.buf = this.buf.length === total ? EMPTY : this.buf.subarray(total);

    // A plain record, not an IncomingMessage (a whole Readable, measurable per tap): only a stream's address needs one.
    const req: RequestHead = { method: head.method, url: head.url, headers: head.headers, socket: this.socket };
    const ex = new RawExchange(this, req, body, head.close);
    this.current = ex;
    this.stats.served++;
    this.routes.serve(ex, head.route);
    // Answered already (finished() cleared it): the next request, if any, in this same loop.
    return this.current === null;
  }

  private nodeTunnel(): NodeTunnel {
    if (!this.tunnel) {
      this.tunnel = new NodeTunnel(this.socket, (closing) => this.nodeAnswered(closing));
      this.stats.tunnels++;
      this.toNode(this.tunnel);
    }
    return this.tunnel;
  }

  /** Passes one request, head and body, to node:http; the next waits for its answer. */
  private forward(head: RawHead): void {
    const tunnel = this.nodeTunnel();
    this.stats.forwarded++;
    this.nodeBusy = true;
    const available = Math.min(this.buf.length, head.headBytes + head.contentLength);
    tunnel.feed(this.buf.subarray(0, available));
    this.bodyLeft = head.headBytes + head.contentLength - available;
    this.buf = available === this.buf.length ? EMPTY : this.buf.subarray(available);
    // node:http's own headers and request timeouts watch the body from here.
  }

  private nodeAnswered(closing: boolean): void {
    this.nodeBusy = false;
    if (closing) {
      // node:http ends the connection after this answer: a request pipelined
      // behind it is dropped unread, as node:http would drop it. The answer's
      // bytes are already on the socket (the tunnel writes through at once).
      this.buf = EMPTY;
      this.bodyLeft = 0;
      return this.endConnection();
    }
    if (this.bodyLeft > 0 || this.clientEnded) {
      // node:http answered before the whole body arrived (a refusal), or the
      // client has finished sending: node:http reads the rest, and ends the
      // connection when it sees the end.
      this.tunnelForGood();
      if (this.clientEnded) this.tunnel!.push(null);
      return;
    }
    this.pump();
  }

  /** Everything from here on is node:http's to read, starting with what is buffered. */
  private tunnelForGood(): void {
    const tunnel = this.nodeTunnel();
    this.mode = 'tunnel';
    this.dropTimer();
    const rest = this.buf;
    this.buf = EMPTY;
    if (this.socket.isPaused()) this.socket.resume();
    if (rest.length) tunnel.feed(rest);
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** The answer to `ex` is written: close if asked, else go on with the next request. */
  finished(ex: RawExchange, close: boolean): void {
    if (this.current !== ex) return;
    this.current = null;
    if (close) return this.endConnection();
    this.pump();
  }

  /** The answer became an endless stream: the connection is its own from now on. */
  streaming(): void {
    this.mode = 'stream';
    this.dropTimer();
    this.buf = EMPTY;
  }

  keepAliveSeconds(): number {
    return Math.round(this.opts.keepAliveTimeoutMs / 1000);
  }

  /** Drops the connection if no request is in progress (shutdown). */
  closeIfIdle(): void {
    if (this.idle) this.socket.destroy();
  }

  private armTimer(): void {
    // Between requests the keep-alive timeout applies; once a request has
    // started, the headers timeout until its head is in, then the request
    // timeout, both counted from the request's first byte.
    const kind = this.buf.length === 0 ? 'idle' : this.waiting ? 'body' : 'head';
    // Armed already: a head or body arriving in pieces does not push its deadline back.
    if (this.timerKind === kind) return;
    const now = performance.now();
    // A request's clock starts when its first bytes are seen: when its head is
    // armed, or its body's, for a head that came whole (a body after a timed head keeps the head's start).
    if (kind !== 'idle' && this.timerKind !== 'head') this.requestStart = now;
    this.timerKind = kind;
    // A connection that has sent no request yet has the headers timeout to
    // start one, as on node:http: an idle socket opened and never used is not
    // held for the keep-alive timeout (a client could hold hundreds).
    if (kind === 'idle') this.deadline = now + (this.fresh ? this.opts.headersTimeoutMs : this.opts.keepAliveTimeoutMs);
    else this.deadline = this.requestStart + (kind === 'head' ? this.opts.headersTimeoutMs : this.opts.requestTimeoutMs);
    if (this.timer === undefined || this.deadline < this.firesAt) this.schedule(Math.max(0, this.deadline - now));
  }

  private schedule(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.firesAt = performance.now() + ms;
    this.timer = setTimeout(this.onTimer, ms);
    this.timer.unref();
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    const kind = this.timerKind;
    if (kind === undefined) return;
    const left = this.deadline - performance.now();
    if (left > 0) return this.schedule(left);
    this.timerKind = undefined;
    this.timedOut(kind);
  };

  /** Nothing is timed any more; the pending timer, if any, finds nothing armed when it fires. */
  private clearTimer(): void {
    this.timerKind = undefined;
  }

  /** The connection no longer takes requests (closing, tunnelled, streaming, closed): its timer goes. */
  private dropTimer(): void {
    this.timerKind = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private timedOut(kind: 'idle' | 'head' | 'body'): void {
    if (this.mode !== 'requests' || this.current || this.nodeBusy) return;
    this.mode = 'closing';
    // Idle, or not reading its answers (a last one would only queue behind them): cut.
    if (kind === 'idle' || this.socket.writableNeedDrain) {
      this.socket.destroy();
      return;
    }
    // The same answer node:http gives a client that is too slow with its request.
    const body = JSON.stringify({ error: 'request timed out' });
    this.socket.end(
      frameResponse(408, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) }, body, {
        close: true,
        keepAliveSeconds: 0,
      }),
    );
  }
}

class RawExchange implements Exchange {
  answered = false;
  private closeFns: (() => void)[] = [];
  private incoming: IncomingMessage | undefined;

  constructor(
    private readonly conn: RawConnection,
    readonly head: RequestHead,
    private readonly bodyBytes: Buffer,
    private readonly clientClose: boolean,
  ) {}

  get req(): IncomingMessage {
    if (!this.incoming) {
      const req = new IncomingMessage(this.conn.socket);
      req.method = this.head.method;
      req.url = this.head.url;
      req.headers = this.head.headers;
      req.httpVersion = '1.1';
      req.httpVersionMajor = 1;
      req.httpVersionMinor = 1;
      req.complete = true;
      this.incoming = req;
    }
    return this.incoming;
  }

  body(limit: number): Promise<Buffer> {
    try {
      return Promise.resolve(this.bodyNow(limit));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  bodyNow(limit: number): Buffer {
    // The raw path never reads a body over its own cap, which is the routes' cap; this guards a route with a smaller one.
    if (this.bodyBytes.length > limit) throw new RangeError('body over the limit');
    return this.bodyBytes;
  }

  send(status: number, headers: Readonly<Record<string, string | number>>, body?: string): void {
    if (this.answered) return;
    this.answered = true;
    const close = this.clientClose || closingHeader(headers);
    // A HEAD answer carries the headers a GET would (its Content-Length included) and never a body:
    // on a kept-alive connection the client reads the next answer straight after the head.
    const sent = this.head.method === 'HEAD' ? undefined : body;
    this.conn.write(frameResponse(status, headers, sent, { close, keepAliveSeconds: this.conn.keepAliveSeconds() }));
    this.closeFns = [];
    this.conn.finished(this, close);
  }

  openStream(headers: Readonly<Record<string, string>>): Sink {
    this.answered = true;
    // The stream's body ends with the connection, so there is no length and no chunking: say so.
    this.conn.write(frameResponse(200, headers, undefined, { close: true, keepAliveSeconds: 0 }));
    this.conn.streaming();
    // The socket is the sink: every event is one write straight to it.
    return this.conn.socket;
  }

  onClose(fn: () => void): void {
    this.closeFns.push(fn);
  }

  /** The socket closed while this exchange was current (for a stream: whenever it ends). */
  closed(): void {
    const fns = this.closeFns;
    this.closeFns = [];
    for (const fn of fns) fn();
  }

  destroy(): void {
    this.conn.socket.destroy();
  }
}

/**
 * Accepts every connection; `toNode` gives node:http a tunnel the first time
 * a connection has a request for it. `closeAll` and `closeIdle` are the raw
 * side of a server's closeAllConnections and closeIdleConnections.
 */
export class RawFront {
  readonly stats: RawStats = { served: 0, forwarded: 0, tunnels: 0 };
  private readonly open = new Set<RawConnection>();

  constructor(
    private readonly routes: RawRoutes,
    private readonly opts: RawOptions,
    private readonly toNode: (tunnel: NodeTunnel) => void,
  ) {}

  accept(socket: Socket): void {
    const conn = new RawConnection(socket, this.routes, this.opts, this.toNode, this.stats, (c) => this.open.delete(c));
    this.open.add(conn);
    conn.start();
  }

  /** Open connections. */
  get size(): number {
    return this.open.size;
  }

  closeAll(): void {
    for (const conn of this.open) conn.socket.destroy();
  }

  closeIdle(): void {
    for (const conn of this.open) conn.closeIfIdle();
  }
}
