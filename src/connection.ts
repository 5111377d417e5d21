// Connection objects (Python's multiprocessing.connection): framed messages over a
// stream socket. Objects go through the one serializer (reduction.ts); descriptors of
// library objects inside a message ride along by SCM_RIGHTS.
//
// One file, as CPython's connection.py: Connection, Pipe, Listener, Client and wait share
// the framing, the authentication handshake and the serializer choice below; split, each
// part would import the others' internals back.
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { isMainThread } from 'node:worker_threads';
import { AuthenticationError, BufferTooShort, mapNativeError, nativeCall, OSError, ValueError } from './errors.js';
import { native } from './native.js';
import { currentProcess } from './process.js';
import { dumpsNumberInto, dumpsParts, loads, loadsAsync, loadsNumber, reduce, registerKind, type Reduced } from './reduction.js';
import { Finalize, info, libraryModuleUrl } from './util.js';
import { optionalArg, optionalArgs } from './options.js';
import { beforeBlocking, blockFor, timeoutArg, timeoutSeconds, type Timeout, type TimeoutOptions } from './timeouts.js';
import * as reactor from './wait.js';

// Every child imports this module at startup; what only Listener/Client need is
// loaded on first use.
const lazyRequire = createRequire(import.meta.url);
const dns = (): typeof import('node:dns/promises') => lazyRequire('node:dns/promises');
const net = (): typeof import('node:net') => lazyRequire('node:net');

/**
 * The blocking receives (and polls with a finite timeout) check this many microseconds
 * before they sleep: a reply from a peer running on another core then costs no wake-up
 * (which dominates a round trip). Adaptive (mp_core::frame::Spin). A wait for ever
 * (`pollSync(null)`) does not spin: it is usually a wait for work, not for a reply.
 */
const SYNC_SPIN_US = 50;

/** A connection's native handle (owns the descriptor and the bytes read ahead). */
type Handle = unknown;

/** The plain N-API calls of a connection (crates/node/src/conn.rs). */
interface FastPaths {
  /** A handle that owns `fd` (closed when collected). */
  open(fd: number): Handle;
  /** Write `data` as one message. */
  send(raw: unknown, data: ArrayBufferView): void;
  /**
   * One message, waiting up to `timeout` s (negative: no limit; 0: do not wait), spinning
   * `spinUs` first; `maxlength` negative: no limit. Its length in `scratch`, a Buffer of
   * its own, or -1 when none came.
   */
  recv(raw: unknown, timeout: number, maxlength: number, spinUs: number): number | Buffer;
  /** Whether a message (or the end) is there, waiting up to `timeout` s (negative: no limit). */
  poll(raw: unknown, timeout: number, spinUs: number): boolean;
}
const fast = native.connFastPaths() as FastPaths;

// Received messages that fit are copied into one buffer per thread instead of a new
// Buffer each. One per thread, not per copy of this module: the addon keeps one pointer
// per thread, so a second copy of the module (loaded from another path, or in a child
// that loads the library twice) must register the same buffer, not replace it.
const SCRATCH_KEY = Symbol.for('node-multiprocessing.connection.scratch');
const scratch: Buffer = ((globalThis as Record<symbol, Buffer | undefined>)[SCRATCH_KEY] ??= Buffer.from(new ArrayBuffer(64 * 1024)));
native.connScratch(scratch);

// Views of the first n bytes of `scratch` for small n, made once (loads copies what it keeps).
const VIEW_LIMIT = 4096;
const views: (Buffer | undefined)[] = [];
function scratchView(n: number): Buffer {
  if (n > VIEW_LIMIT) return scratch.subarray(0, n);
  return (views[n] ??= scratch.subarray(0, n));
}

/** `scratch` as a plain Uint8Array: its subarray and set are V8 builtins (Buffer's copy and
 * subarray are JavaScript that a fresh process compiles on its first message). */
const scratchBytes = new Uint8Array(scratch.buffer, scratch.byteOffset, scratch.length);

const scratchData = new DataView(scratch.buffer, scratch.byteOffset, scratch.length);

/** A number's message is written here to be sent (fast.send copies it out before returning). */
const numberMsg = new Uint8Array(new ArrayBuffer(16), 0, 9);
const numberData = new DataView(numberMsg.buffer, 0, 9);

/** A received message as a Buffer of its own. */
function ownBytes(r: number | Buffer): Buffer {
  if (typeof r !== 'number') return r;
  const out = Buffer.allocUnsafe(r);
  out.set(scratchBytes.subarray(0, r));
  return out;
}

/** The V8 format (reduction.ts) may keep views of the bytes it decodes, and may rebuild
 * objects whose modules receive in turn: such messages leave the scratch buffer first. */
const V8_FORMAT = 0xff;

/**
 * How `send`/`recv` turn objects into bytes: `'v8'` (the default: V8's serializer and the
 * library's shared objects, between Node processes) or `'pickle'` (Python's pickle, to
 * exchange objects with CPython; see `node-multiprocessing/pickle`). Python's `'xmlrpclib'`
 * is not available.
 */
export type Serializer = 'v8' | 'pickle';

/** A serializer name checked (ValueError for anything else, naming it). @internal */
export function checkSerializer(serializer: unknown): Serializer {
  if (serializer === undefined || serializer === null || serializer === 'v8') return 'v8';
  if (serializer === 'pickle') return 'pickle';
  if (serializer === 'xmlrpclib') throw new ValueError("serializer 'xmlrpclib' is not supported: use 'pickle' to talk to Python, or 'v8'");
  throw new ValueError(`unknown serializer ${inspect(serializer)}: 'v8' or 'pickle'`);
}

type PickleCodec = Pick<typeof import('./pickle.js'), 'dumps' | 'loads'>;

/** The pickle module, loaded when a connection first needs it (children that never talk to Python skip it). */
async function pickleCodec(serializer: Serializer): Promise<PickleCodec | null> {
  return serializer === 'pickle' ? import('./pickle.js') : null;
}

/** Marks a Connection as one whose peer is family or authenticated (see `recv`). */
let setTrusted: (c: Connection, trusted: boolean) => Connection;

/**
 * Python's `multiprocessing.connection.Connection`: one end of a Pipe, or a Listener/Client
 * connection. `send`/`recv` carry objects (V8 structured clone, or Python's pickle with
 * `serializer: 'pickle'`); `sendBytes`/`recvBytes` carry bytes in CPython's framing. Receiving
 * returns Promises; the `...Sync` twins block the thread. `using conn = ...` closes it (Python's `with`).
 */
export class Connection {
  /** The native handle; null once closed or detached. */
  #conn: Handle | null;
  /** Its descriptor (-1 once closed or detached). */
  #fd: number;
  #readable: boolean;
  #writable: boolean;
  #pickle: PickleCodec | null = null;
  /** Whether the peer may send code (functions by source text): family or authenticated. */
  #trusted = false;
  /** Set while the pickle module of a connection rebuilt in this process is being imported. */
  #pickleLoad: Promise<unknown> | null = null;

  static {
    setTrusted = (c, trusted) => {
      c.#trusted = trusted;
      return c;
    };
  }

  /**
   * Wrap (and take ownership of) a connected stream socket descriptor: `(fd, readable,
   * writable)` or `(fd, { readable, writable })`. Its peer counts as a stranger: `recv`
   * refuses functions sent by source text (see `recv`).
   */
  constructor(fd: number, readable?: boolean | ConnectionOptions, writable?: boolean) {
    ({ readable = true, writable = true } = optionalArgs<ConnectionOptions>('Connection', ['readable', 'writable'], [readable, writable]));
    if (!readable && !writable) throw new ValueError('at least one of `readable` and `writable` must be True');
    this.#conn = nativeCall(() => fast.open(fd));
    this.#fd = fd;
    this.#readable = readable;
    this.#writable = writable;
  }

  /** Python's `closed`: whether `close()` was called. */
  get closed(): boolean {
    return this.#conn === null;
  }
  /** Python's `readable`: whether this end can receive. */
  get readable(): boolean {
    return this.#readable;
  }
  /** Python's `writable`: whether this end can send. */
  get writable(): boolean {
    return this.#writable;
  }

  #open(): Handle {
    if (this.#conn === null) throw new OSError('handle is closed');
    return this.#conn;
  }
  #forReading(): Handle {
    const c = this.#open();
    if (!this.#readable) throw new OSError('connection is write-only');
    return c;
  }
  #forWriting(): Handle {
    const c = this.#open();
    if (!this.#writable) throw new OSError('connection is read-only');
    return c;
  }

  /** Python's `fileno()`: the socket's descriptor (for `wait()`; do not close it yourself). */
  fileno(): number {
    this.#open();
    return this.#fd;
  }

  /**
   * Python's `close()`: close this end; the peer's receives then end with `EOFError`. Called again, it does nothing.
   */
  close(): void {
    const c = this.#conn;
    if (c === null) return;
    this.#conn = null;
    reactor.forget(this.#fd);
    this.#fd = -1;
    nativeCall(() => native.connClose(c));
  }

  /** `using conn = ...` closes it at the end of the block, Python's `with conn:`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * Use Python's pickle for `send`/`recv` from now on (what `serializer: 'pickle'` on a
   * Listener or Client does). @internal
   */
  _usePickle(codec: PickleCodec): void {
    this.#pickle = codec;
  }

  /**
   * Speak pickle once the module is imported (a connection rebuilt in another process);
   * `recv` waits for the import, the synchronous calls require the module if they come first.
   * @internal
   */
  _usePickleSoon(): void {
    const load = import('./pickle.js').then((m) => {
      this.#pickle ??= m;
      this.#pickleLoad = null;
    });
    // A failed import stays pending here: recv rethrows it, the synchronous calls' require too.
    load.catch(() => {});
    this.#pickleLoad = load;
  }

  /** The pickle module, for a synchronous call that comes before its import finished. */
  #pickleNow(): PickleCodec | null {
    if (this.#pickle === null && this.#pickleLoad !== null) this.#pickle = lazyRequire(fileURLToPath(libraryModuleUrl('pickle'))) as PickleCodec;
    return this.#pickle;
  }

  /** Send an object; returns once all of it is written (as Python's send). */
  send(obj: unknown): void {
    const c = this.#forWriting();
    const codec = this.#pickle ?? this.#pickleNow();
    if (codec) {
      const data = codec.dumps(obj);
      nativeCall(() => fast.send(c, data));
      return;
    }
    if (typeof obj === 'number') {
      dumpsNumberInto(obj, numberData);
      try {
        fast.send(c, numberMsg);
      } catch (e) {
        throw mapNativeError(e);
      }
      return;
    }
    const { data, fds, undo, tail } = dumpsParts(obj);
    try {
      if (tail !== null) nativeCall(() => native.connSendParts(c, data, tail));
      else if (fds.length > 0) nativeCall(() => native.connSendFds(c, data, fds));
      else nativeCall(() => fast.send(c, data));
    } catch (e) {
      undo?.();
      throw e;
    }
  }

  /** Send `buf[offset, offset + size)` as one message: `(buf, offset, size)` or `(buf, { offset, size })`. */
  sendBytes(buf: ArrayBufferView | ArrayBuffer, offset?: number, size?: number | null): void;
  sendBytes(buf: ArrayBufferView | ArrayBuffer, options: SendBytesOptions): void;
  sendBytes(buf: ArrayBufferView | ArrayBuffer, offset: number | undefined, options: Omit<SendBytesOptions, 'offset'>): void;
  sendBytes(buf: ArrayBufferView | ArrayBuffer, offset?: number | SendBytesOptions, size?: number | null | SendBytesOptions): void {
    const c = this.#forWriting();
    const raw = c;
    if (offset === undefined && size === undefined && ArrayBuffer.isView(buf)) {
      nativeCall(() => fast.send(raw, buf));
      return;
    }
    if (typeof offset === 'object' || typeof size === 'object') {
      ({ offset, size } = optionalArgs<SendBytesOptions>('sendBytes', ['offset', 'size'], [offset, size]));
    }
    offset ??= 0;
    const bytes = toBytes(buf);
    if (offset < 0) throw new ValueError('offset is negative');
    if (bytes.length < offset) throw new ValueError('buffer length < offset');
    size ??= bytes.length - offset;
    if (size < 0) throw new ValueError('size is negative');
    if (offset + size > bytes.length) throw new ValueError('buffer length < offset + size');
    nativeCall(() => fast.send(raw, bytes.subarray(offset, offset + size)));
  }

  /** Send `head` then `tail` as one message (the two parts of `dumpsParts`). @internal */
  _sendParts(head: Uint8Array, tail: Uint8Array): void {
    const c = this.#forWriting();
    nativeCall(() => native.connSendParts(c, head, tail));
  }

  /** Receive one whole message without waiting; null if none is complete yet. */
  #tryRecv(maxlength?: number | null): Buffer | null {
    const raw = this.#forReading();
    const r = nativeCall(() => fast.recv(raw, 0, maxlength ?? -1, 0));
    return r === -1 ? null : ownBytes(r);
  }

  async #recvRaw(maxlength?: number | null): Promise<Buffer> {
    for (;;) {
      const got = this.#tryRecv(maxlength);
      if (got) return got;
      this.#forReading();
      await reactor.readable(this.#fd);
    }
  }

  /** The next message, blocking the thread: its length in `scratch` (read it before the next receive) or a Buffer of its own. */
  #recvSync(maxlength?: number | null): number | Buffer {
    const raw = this.#forReading();
    const m = maxlength ?? -1;
    // In a worker thread, wait in slices (the thread stays stoppable).
    if (!isMainThread) return blockFor(null, (s) => nativeCall(() => fast.recv(raw, s ?? -1, m, SYNC_SPIN_US)), (r) => r === -1);
    beforeBlocking();
    return nativeCall(() => fast.recv(raw, -1, m, SYNC_SPIN_US));
  }

  #recvRawSync(maxlength?: number | null): Buffer {
    return ownBytes(this.#recvSync(maxlength));
  }

  /**
   * One message of at most `maxlength` bytes, by `deadline` (a `Date.now()` time;
   * null: no limit); null when the deadline passes first. For the handshakes.
   * @internal
   */
  async _recvBytesBefore(maxlength: number, deadline: number | null): Promise<Buffer | null> {
    for (;;) {
      const got = this.#tryRecv(maxlength);
      if (got) return got;
      const left = deadline === null ? null : deadline - Date.now();
      if (left !== null && left <= 0) return null;
      this.#forReading();
      await reactor.readable(this.#fd, left === null ? null : left / 1000);
    }
  }

  #takeFds = (n: number): number[] => nativeCall(() => native.connTakeFds(this.#open(), n));

  /**
   * Receive an object sent with `send`. A function or class sent by its source text is
   * code this process would run: it is accepted only when the peer is family (a Pipe,
   * or a Connection passed by the parent, a child or a Pool worker) or authenticated
   * with an authkey (or the Listener/Client was made with `trustPeer: true`). From any
   * other peer such a message is refused with an AuthenticationError, with nothing of
   * it evaluated; the connection stays usable.
   */
  async recv(): Promise<any> {
    const data = await this.#recvRaw();
    if (this.#pickleLoad) await this.#pickleLoad;
    if (this.#pickle) return this.#pickle.loads(data);
    return loadsAsync(data, this.#takeFds, true, this.#trusted);
  }

  /** As `recv`, blocking the calling thread. */
  recvSync(): any {
    const codec = this.#pickle ?? this.#pickleNow();
    if (codec) return codec.loads(this.#recvRawSync());
    const r = this.#recvSync();
    if (typeof r !== 'number') return loads(r, this.#takeFds, true, this.#trusted);
    const n = loadsNumber(scratchData, r);
    if (n !== undefined) return n;
    if (r > 0 && scratch[0] === V8_FORMAT) return loads(ownBytes(r), this.#takeFds, true, this.#trusted);
    // The fast format copies what it keeps.
    return loads(scratchView(r), this.#takeFds, false, this.#trusted);
  }

  /**
   * Receive one message's bytes: `recvBytes(maxlength)` or `recvBytes({ maxlength })`; a
   * message longer than `maxlength` raises and leaves the connection unreadable.
   */
  async recvBytes(maxlength?: number | null | { maxlength?: number | null }): Promise<Buffer> {
    const m = checkMaxlength(optionalArg<number | null>('recvBytes', 'maxlength', maxlength));
    return this.#recvRaw(m);
  }

  /** `recvBytes` that blocks the thread, as Python's `recv_bytes(maxlength)` does. */
  recvBytesSync(maxlength?: number | null | { maxlength?: number | null }): Buffer {
    const m = checkMaxlength(optionalArg<number | null>('recvBytesSync', 'maxlength', maxlength));
    return this.#recvRawSync(m);
  }

  /**
   * Read a message into `buf` at `offset` (`(buf, offset)` or `(buf, { offset })`); returns
   * its length. BufferTooShort carries the message in `args[0]`.
   */
  async recvBytesInto(buf: ArrayBufferView | ArrayBuffer, offset?: number | { offset?: number }): Promise<number> {
    const target = toBytes(buf);
    const o = checkOffset(target, optionalArg<number>('recvBytesInto', 'offset', offset) ?? 0);
    return copyInto(await this.#recvRaw(), target, o);
  }

  /** `recvBytesInto` that blocks the thread, as Python's `recv_bytes_into(buffer, offset)` does. */
  recvBytesIntoSync(buf: ArrayBufferView | ArrayBuffer, offset?: number | { offset?: number }): number {
    const target = toBytes(buf);
    const o = checkOffset(target, optionalArg<number>('recvBytesIntoSync', 'offset', offset) ?? 0);
    const r = this.#recvSync();
    if (typeof r !== 'number') return copyInto(r, target, o);
    if (r > target.length - o) throw new BufferTooShort(ownBytes(r));
    target.set(scratchBytes.subarray(0, r), o);
    return r;
  }

  /**
   * Whether data is available. No argument: answer at once; a number: wait up to
   * that many seconds; `null`: wait for ever. Also `poll({ timeout })`.
   */
  async poll(timeout?: Timeout | TimeoutOptions): Promise<boolean> {
    const t = timeoutSeconds(pollTimeout(timeout, 'poll'));
    const c = this.#forReading();
    if (nativeCall(() => fast.poll(c, 0, 0))) return true;
    if (t === 0) return false;
    const deadline = t === null ? null : Date.now() + t * 1000;
    for (;;) {
      const left = deadline === null ? null : Math.max(0, deadline - Date.now()) / 1000;
      this.#forReading();
      const ready = await reactor.readable(this.#fd, left);
      if (ready || nativeCall(() => fast.poll(this.#forReading(), 0, 0))) return true;
      if (deadline !== null && Date.now() >= deadline) return false;
    }
  }

  /** `poll` that blocks the thread, as Python's `poll(timeout)` does. */
  pollSync(timeout?: Timeout | TimeoutOptions): boolean {
    const t = timeoutSeconds(pollTimeout(timeout, 'pollSync'));
    const raw = this.#forReading();
    const spin = t === null ? 0 : SYNC_SPIN_US;
    return blockFor(t, (s) => nativeCall(() => fast.poll(raw, s ?? -1, spin)), (ready) => !ready);
  }

  // Raw frames, for a protocol that frames its own messages (the managers' shared-memory
  // channel): bytes plus descriptors out, bytes in, decoded by `recv`'s rules on demand.

  /** Send `data` (and `fds` by SCM_RIGHTS) as one message. @internal */
  _sendFrame(data: Uint8Array, fds: number[] | null): void {
    const c = this.#forWriting();
    if (fds !== null && fds.length > 0) nativeCall(() => native.connSendFds(c, data, fds));
    else {
      const raw = c;
      nativeCall(() => fast.send(raw, data));
    }
  }

  /** The next whole message's bytes if one has come, else null (EOFError at end of stream). @internal */
  _frameNow(): Buffer | null {
    return this.#tryRecv();
  }

  /** The next message's bytes, blocking the thread. @internal */
  _frameSync(): Buffer {
    return this.#recvRawSync();
  }

  /** Decode bytes received as `recvSync` would (taking the message's descriptors). @internal */
  _decode(data: Buffer): unknown {
    return loads(data, this.#takeFds, true, this.#trusted);
  }

  /** Give up the descriptor without closing it (Python's `_detach`). */
  _detach(): number {
    const c = this.#open();
    this.#conn = null;
    reactor.forget(this.#fd);
    this.#fd = -1;
    return nativeCall(() => native.connDetach(c));
  }

  /** How this object crosses a process boundary ({@link Shareable}). @internal */
  [reduce](): Reduced {
    return { kind: 'connection', state: { r: this.#readable, w: this.#writable, p: this.#pickle !== null || this.#pickleLoad !== null }, fds: [this.fileno()] };
  }

  /** A `repr()`-like text: `<Connection fd=5 readable writable>`. */
  toString(): string {
    return `<Connection fd=${this.#conn === null ? 'closed' : this.#fd}${this.#readable ? ' readable' : ''}${this.#writable ? ' writable' : ''}>`;
  }
  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

// A connection passed by the family is family; one passed by a stranger is not. A connection
// to a CPython peer keeps speaking pickle.
registerKind('connection', (s: { r: boolean; w: boolean; p?: boolean }, fds, trusted) => {
  const c = setTrusted(new Connection(fds[0], s.r !== false, s.w !== false), trusted);
  if (s.p) c._usePickleSoon();
  return c;
});

function toBytes(buf: ArrayBufferView | ArrayBuffer): Buffer {
  if (buf instanceof ArrayBuffer) return Buffer.from(buf);
  if (ArrayBuffer.isView(buf)) return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  throw new TypeError('a bytes-like object is required');
}

function checkMaxlength(maxlength?: number | null): number | null | undefined {
  if (maxlength != null && maxlength < 0) throw new ValueError('negative maxlength');
  return maxlength;
}

function checkOffset(target: Buffer, offset: number): number {
  if (offset < 0) throw new ValueError('negative offset');
  if (offset > target.length) throw new ValueError('offset too large');
  return offset;
}

/** poll's timeout: 0 when none is given (answer at once), null waits for ever. */
function pollTimeout(timeout: Timeout | TimeoutOptions | undefined, call: string): Timeout {
  const t = timeoutArg(timeout, call);
  return t === undefined ? 0 : t;
}

/** Options of the Connection constructor. */
export interface ConnectionOptions {
  /** Whether this end receives (default true). */
  readable?: boolean;
  /** Whether this end sends (default true). */
  writable?: boolean;
}

/** Options of `sendBytes`. */
export interface SendBytesOptions {
  /** Where in `buf` the message starts (default 0). */
  offset?: number;
  /** How many bytes to send (default: to the end of `buf`). */
  size?: number | null;
}

function copyInto(msg: Buffer, target: Buffer, offset: number): number {
  if (msg.length > target.length - offset) throw new BufferTooShort(msg);
  msg.copy(target, offset);
  return msg.length;
}

/**
 * A pair of connected Connections (Python's `Pipe(duplex=True)`). Duplex by default;
 * `Pipe(false)` or `Pipe({ duplex: false })` returns `[receiveOnly, sendOnly]` as Python does.
 */
export function Pipe(duplex?: boolean | { duplex?: boolean }): [Connection, Connection] {
  duplex = optionalArg<boolean>('Pipe', 'duplex', duplex) ?? true;
  const [a, b] = nativeCall(() => native.socketPair());
  // Both ends are this process's, to keep or to pass to its family.
  if (duplex) return [setTrusted(new Connection(a), true), setTrusted(new Connection(b), true)];
  try {
    native.shutdownFd(a, 1);
    native.shutdownFd(b, 0);
  } catch (e) {
    throw mapNativeError(e);
  }
  return [setTrusted(new Connection(a, true, false), true), setTrusted(new Connection(b, false, true), true)];
}

// ---------------------------------------------------------------------------
// Listeners and Clients (Python 3.11's multiprocessing.connection), the
// authentication handshake (byte-compatible with CPython 3.11 and 3.12+) and wait().

/** `'AF_INET'` (TCP), `'AF_UNIX'` (Unix socket); `'AF_PIPE'` is Windows only. */
export type Family = 'AF_INET' | 'AF_UNIX' | 'AF_PIPE';
/** `[host, port]` for AF_INET; a path, or a name starting with NUL (Linux abstract), for AF_UNIX. */
export type Address = string | readonly [string, number];
/** An authentication key: bytes (a Buffer or any Uint8Array, or an ArrayBuffer). */
export type AuthKey = Uint8Array | ArrayBuffer;

/** The families usable here (Python's `connection.families`). */
export const families: readonly Family[] = ['AF_INET', 'AF_UNIX'];
/** The family used when neither an address nor a family is given (Python's `default_family`). */
export const defaultFamily: Family = 'AF_UNIX';
/** Seconds a peer has to complete the authentication handshake (not in Python, which waits for ever). */
export const DEFAULT_HANDSHAKE_TIMEOUT = 20;

/** The family an address belongs to (Python's `address_type`). */
export function addressType(address: unknown): Family {
  if (Array.isArray(address)) return 'AF_INET';
  if (typeof address === 'string') return address.startsWith('\\\\') ? 'AF_PIPE' : 'AF_UNIX';
  throw new ValueError(`address type of ${inspect(address)} unrecognized`);
}

function validateFamily(family: string): asserts family is Family {
  if (!(families as readonly string[]).includes(family)) throw new ValueError(`Family ${family} is not recognized.`);
}

function checkAddress(address: unknown, family: Family): Address {
  if (family === 'AF_INET') {
    const ok = Array.isArray(address) && address.length === 2 && typeof address[0] === 'string' &&
      Number.isInteger(address[1]) && address[1] >= 0 && address[1] <= 65535;
    if (!ok) throw new TypeError(`AF_INET address must be [host, port], not ${inspect(address)}`);
    return [address[0], address[1]] as const;
  }
  if (typeof address !== 'string') throw new TypeError(`AF_UNIX address must be a string, not ${inspect(address)}`);
  return address;
}

function toAddress(a: { host?: string | null; port?: number | null; path?: string | null }): Address {
  return a.path != null ? a.path : ([a.host ?? '', a.port ?? 0] as const);
}

/** An authkey as bytes; `error` makes the caller's own error (Python's messages differ). */
function toAuthKey(authkey: unknown, error: (msg: string) => Error): Buffer {
  if (authkey instanceof ArrayBuffer) return Buffer.from(authkey);
  if (authkey instanceof Uint8Array) return Buffer.from(authkey.buffer, authkey.byteOffset, authkey.byteLength);
  throw error(typeof authkey);
}

function isAuthKey(x: unknown): boolean {
  return x instanceof Uint8Array || x instanceof ArrayBuffer;
}

function handshakeDeadline(timeout: number | null | undefined): number | null {
  return timeout == null ? null : Date.now() + Math.max(0, timeout) * 1000;
}

/** What a SocketListener stands on, released by its finalizer. */
interface ListeningSocket {
  fd: number;
  /** Removes the socket file (and its private directory), if any. */
  unlink: (() => void) | null;
}

/** Close a listening socket and remove its file: at close(), exit or collection. */
function releaseListening(r: ListeningSocket): void {
  const fd = r.fd;
  r.fd = -1;
  const unlink = r.unlink;
  r.unlink = null;
  try {
    if (fd >= 0) {
      reactor.forget(fd);
      nativeCall(() => native.closeFd(fd));
    }
  } finally {
    unlink?.();
  }
}

/**
 * A bound, listening socket (Python's `SocketListener`): `accept()` waits for the
 * listening descriptor with the reactor, then takes a connection without blocking.
 * Dropped without `close()`, it is closed (and its socket file removed) when collected.
 */
export class SocketListener {
  readonly #socket: ListeningSocket;
  readonly #finalizer: Finalize<[ListeningSocket]>;
  #family: Family;
  /** @internal */
  readonly _address: Address;
  /** @internal */
  _lastAccepted: Address | null = null;

  /**
   * `removeDir` (not in Python): a private directory holding the socket, removed
   * with it on close.
   */
  constructor(address: Address, family: Family, backlog = 1, removeDir?: string) {
    validateFamily(family);
    const addr = checkAddress(address, family);
    if (!Number.isInteger(backlog)) throw new TypeError('backlog must be an integer');
    let fd: number;
    if (family === 'AF_INET') {
      const [host, port] = addr as readonly [string, number];
      const bound = nativeCall(() => native.listenTcp(host, port, backlog));
      fd = bound.fd;
      this._address = [bound.host, bound.port] as const;
    } else {
      fd = nativeCall(() => native.listenUnix(addr as string, backlog));
      this._address = addr;
    }
    this.#family = family;
    this.#socket = { fd, unlink: null };
    const path = addr as string;
    const hasFile = family === 'AF_UNIX' && (!path.startsWith('\0') || removeDir !== undefined);
    if (hasFile) {
      this.#socket.unlink = () => {
        if (!path.startsWith('\0')) rmSync(path, { force: true });
        if (removeDir) rmSync(removeDir, { recursive: true, force: true });
      };
    }
    // Python's Finalize(exitpriority=0) for the socket file: gone at exit even if never
    // closed; and, as a collected socket in Python, closed when collected.
    this.#finalizer = new Finalize(this, releaseListening, [this.#socket], hasFile ? 0 : null);
  }

  /** @internal */
  get _family(): Family {
    return this.#family;
  }

  /** The listening descriptor: readable when a connection is waiting (usable with `wait()`). */
  fileno(): number {
    if (this.#socket.fd < 0) throw new OSError('listener is closed');
    return this.#socket.fd;
  }

  /** The next connection (no authentication here; its peer counts as a stranger). */
  async accept(): Promise<Connection> {
    return (await this._accept(null))!.conn;
  }

  /** The next connection and its peer's address; null if `signal` aborts first. @internal */
  async _accept(signal: AbortSignal | null): Promise<{ conn: Connection; peer: Address } | null> {
    for (;;) {
      const fd = this.fileno();
      const got = nativeCall(() => native.tryAccept(fd));
      if (got) {
        const peer = toAddress(got.peer);
        this._lastAccepted = peer;
        return { conn: new Connection(got.fd), peer };
      }
      if (signal?.aborted) return null;
      await reactor.readable(fd, null, signal ?? undefined);
    }
  }

  /** Python's `close()`: stop listening (and remove the socket file of an AF_UNIX address). */
  close(): void {
    this.#finalizer.call();
  }
}

/**
 * The options form of `new Listener(address, family, backlog, authenticate, authkey)`, with the options Python's Listener does not have.
 */
export interface ListenerOptions {
  /**
   * Python's `address`: a socket path (AF_UNIX) or `[host, port]` (AF_INET); by default a fresh private socket path.
   */
  address?: Address | null;
  /**
   * Python's `family`: `'AF_UNIX'` or `'AF_INET'` (default: from the address); `'AF_PIPE'` is Windows-only and refused.
   */
  family?: Family | null;
  /** Python's `backlog`: connections the kernel queues before `accept()` takes them (default 1). */
  backlog?: number;
  /** Key for the handshake; null (Python's None): no authentication, unless `authenticate`. */
  authkey?: AuthKey | null;
  /** With no `authkey`: authenticate with `currentProcess().authkey` (the documented `authenticate=True`). */
  authenticate?: boolean | null;
  /** Seconds a client has to authenticate (default 20; null: no limit). */
  handshakeTimeout?: number | null;
  /** `'pickle'` to exchange objects with CPython clients (default `'v8'`, Node to Node). */
  serializer?: Serializer;
  /**
   * Treat unauthenticated clients as family: accept functions and classes they send by
   * source text, which this process then runs (not in Python, whose pickle runs whatever
   * a peer sends). Off by default; an authenticated client is trusted anyway.
   */
  trustPeer?: boolean;
}

/** Most client handshakes a Listener runs at once; more clients wait in the backlog. */
const MAX_HANDSHAKES = 64;

/** A handshake's result, waiting for an `accept()` to take it. */
type Outcome = { conn: Connection; peer: Address } | { error: unknown };

/**
 * A listening socket (Python's `multiprocessing.connection.Listener`):
 * `new Listener(address?, family?, backlog?, authenticate?, authkey?)` as the docs have it,
 * `new Listener(address?, family?, backlog?, authkey?)` as Python 3.11 has it (a key in
 * the fourth place), or an options object in place of the arguments after those given.
 */
export class Listener {
  #listener: SocketListener | null;
  #authkey: Buffer | null;
  #handshakeTimeout: number | null;
  #serializer: Serializer;
  #trustPeer: boolean;
  /** Handshakes done, in the order they finished, for the next `accept()` calls. */
  #outcomes: Outcome[] = [];
  /** `accept()` calls waiting, oldest first. */
  #takers: Array<{ resolve(c: Connection): void; reject(e: unknown): void }> = [];
  /** Connections in their handshake. */
  #handshaking = new Set<Connection>();
  /** Stops the accepting loop's wait (no taker left, or closed). */
  #stopPulling: AbortController | null = null;
  /** Wakes the accepting loop when a handshake slot frees. */
  #slotFreed: (() => void) | null = null;

  constructor(address?: Address | null, family?: Family | null, backlog?: number, authenticate?: boolean | null, authkey?: AuthKey | null);
  constructor(address: Address | null | undefined, family: Family | null | undefined, backlog: number | undefined, authkey: AuthKey | null);
  constructor(options?: ListenerOptions);
  constructor(address: Address | null | undefined, options: Omit<ListenerOptions, 'address'>);
  constructor(address: Address | null | undefined, family: Family | null | undefined, options: Omit<ListenerOptions, 'address' | 'family'>);
  constructor(address: Address | null | undefined, family: Family | null | undefined, backlog: number | undefined, options: Omit<ListenerOptions, 'address' | 'family' | 'backlog'>);
  constructor(...args: unknown[]) {
    // Python 3.11's order has the key where the docs have `authenticate`.
    if (args.length >= 4 && isAuthKey(args[3])) args.splice(3, 0, undefined);
    const o = optionalArgs<ListenerOptions>('Listener', ['address', 'family', 'backlog', 'authenticate', 'authkey'], args, [], ['handshakeTimeout', 'serializer', 'trustPeer']);
    const fam = o.family || (o.address ? addressType(o.address) : null) || defaultFamily;
    validateFamily(fam);
    this.#serializer = checkSerializer(o.serializer);
    let key: Buffer | null = null;
    if (o.authkey != null) key = toAuthKey(o.authkey, () => new TypeError('authkey should be a byte string'));
    else if (o.authenticate) key = currentProcess().authkey;
    let addr = o.address;
    let privateDir: string | undefined;
    if (!addr) {
      if (fam === 'AF_INET') addr = ['localhost', 0];
      else {
        const p = nativeCall(() => native.privateSocketPath());
        addr = p.path;
        privateDir = p.dir;
        info('created temp directory %s', p.dir);
      }
    }
    try {
      this.#listener = new SocketListener(addr, fam, o.backlog ?? 1, privateDir);
    } catch (e) {
      if (privateDir) rmSync(privateDir, { recursive: true, force: true });
      throw e;
    }
    this.#authkey = key;
    this.#handshakeTimeout = o.handshakeTimeout === undefined ? DEFAULT_HANDSHAKE_TIMEOUT : o.handshakeTimeout;
    this.#trustPeer = Boolean(o.trustPeer);
  }

  /**
   * The next connection, authenticated when the listener has a key: deliver a
   * challenge, then answer one. A failed or timed-out handshake closes that
   * connection and rejects (AuthenticationError); the listener stays usable.
   *
   * Handshakes run concurrently (up to 64 at once): a client that says nothing delays
   * no other. Connections are handed out in the order their handshakes finish.
   */
  async accept(): Promise<Connection> {
    const l = this.#listener;
    if (!l) throw new OSError('listener is closed');
    // Python: `if self._authkey:` (an empty key means no authentication).
    if (!this.#authkey || this.#authkey.length === 0) {
      const codec = await pickleCodec(this.#serializer);
      const c = setTrusted(await l.accept(), this.#trustPeer);
      if (codec) c._usePickle(codec);
      return c;
    }
    const ready = this.#outcomes.shift();
    if (ready) return this.#hand(ready);
    return new Promise<Connection>((resolve, reject) => {
      this.#takers.push({ resolve, reject });
      void this.#pull(l);
    });
  }

  /** An outcome as `accept()` gives it. */
  #hand(o: Outcome): Connection {
    if ('error' in o) throw o.error;
    if (this.#listener) this.#listener._lastAccepted = o.peer;
    return o.conn;
  }

  /** Accept connections and start their handshakes while `accept()` calls wait. */
  async #pull(l: SocketListener): Promise<void> {
    if (this.#stopPulling) return;
    let stop = (this.#stopPulling = new AbortController());
    try {
      while (this.#takers.length > 0 && this.#listener === l) {
        // Stopped when the last taker was served, and another came since.
        if (stop.signal.aborted) stop = this.#stopPulling = new AbortController();
        if (this.#handshaking.size >= MAX_HANDSHAKES) {
          await new Promise<void>((r) => (this.#slotFreed = r));
          continue;
        }
        let got: { conn: Connection; peer: Address } | null;
        try {
          got = await l._accept(stop.signal);
        } catch (e) {
          // The listener was closed (close() rejects the takers), or accept failed.
          if (this.#listener === l) this.#takers.shift()?.reject(e);
          continue;
        }
        if (got) void this.#handshake(got.conn, got.peer);
      }
    } finally {
      this.#stopPulling = null;
    }
  }

  async #handshake(c: Connection, peer: Address): Promise<void> {
    const key = this.#authkey!;
    this.#handshaking.add(c);
    let outcome: Outcome;
    try {
      const deadline = handshakeDeadline(this.#handshakeTimeout);
      await deliver(c, key, 'sha256', deadline);
      await answer(c, key, deadline);
      const codec = await pickleCodec(this.#serializer);
      if (codec) c._usePickle(codec);
      outcome = { conn: setTrusted(c, true), peer };
    } catch (e) {
      c.close();
      outcome = { error: e };
    } finally {
      this.#handshaking.delete(c);
      const wake = this.#slotFreed;
      this.#slotFreed = null;
      wake?.();
    }
    if (!this.#listener) {
      if ('conn' in outcome) outcome.conn.close();
      return;
    }
    const taker = this.#takers.shift();
    if (!taker) {
      this.#outcomes.push(outcome);
      return;
    }
    try {
      taker.resolve(this.#hand(outcome));
    } catch (e) {
      taker.reject(e);
    }
    // No one waits any more: stop accepting (the backlog keeps the rest).
    if (this.#takers.length === 0) this.#stopPulling?.abort();
  }

  /**
   * Python's `close()`: stop listening; connections still in their handshake are closed and pending `accept()` calls reject.
   */
  close(): void {
    const l = this.#listener;
    if (l) {
      this.#listener = null;
      this.#stopPulling?.abort();
      this.#slotFreed?.();
      for (const c of this.#handshaking) c.close();
      this.#handshaking.clear();
      for (const o of this.#outcomes.splice(0)) if ('conn' in o) o.conn.close();
      const closed = new OSError('listener is closed');
      for (const t of this.#takers.splice(0)) t.reject(closed);
      l.close();
    }
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#listener === null;
  }

  /** The bound address (for AF_INET with port 0, the port picked). */
  get address(): Address {
    if (!this.#listener) throw new OSError('listener is closed');
    return this.#listener._address;
  }

  /** The peer address of the last accepted connection; null before any. */
  get lastAccepted(): Address | null {
    if (!this.#listener) throw new OSError('listener is closed');
    return this.#listener._lastAccepted;
  }

  /** The underlying socket listener (Python's `_listener`). */
  get _listener(): SocketListener | null {
    return this.#listener;
  }

  /**
   * `using listener = new Listener(...)` closes it at the end of the block, Python's `with Listener(...) as l:`.
   */
  [Symbol.dispose](): void {
    this.close();
  }

  /** A `repr()`-like text: `<Listener address=...>`. */
  toString(): string {
    return this.#listener ? `<Listener address=${inspect(this.#listener._address)}>` : '<Listener closed>';
  }
  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * The options form of `Client(address, family, authenticate, authkey)`, with the options Python's Client does not have.
 */
export interface ClientOptions {
  /** Python's `address`: the Listener's socket path or `[host, port]`. */
  address?: Address | null;
  /** Python's `family` (default: from the address). */
  family?: Family | null;
  /** Key for the handshake; null (Python's None): no authentication, unless `authenticate`. */
  authkey?: AuthKey | null;
  /** With no `authkey`: authenticate with `currentProcess().authkey`. */
  authenticate?: boolean | null;
  /** Seconds the listener has to complete the handshake (default 20; null: no limit). */
  handshakeTimeout?: number | null;
  /** `'pickle'` to exchange objects with a CPython listener (default `'v8'`, Node to Node). */
  serializer?: Serializer;
  /** Without authentication, accept functions sent by source text from the listener (see ListenerOptions). */
  trustPeer?: boolean;
}

/**
 * Connect to a Listener: `Client(address, family?, authenticate?, authkey?)` as the docs
 * have it, `Client(address, family?, authkey?)` as Python 3.11 has it (a key in the third
 * place), or an options object in place of the arguments after those given. Answers then
 * delivers a challenge when there is a key.
 */
export async function Client(address: Address, family?: Family | null, authenticate?: boolean | null, authkey?: AuthKey | null): Promise<Connection>;
export async function Client(address: Address, family: Family | null | undefined, authkey: AuthKey | null): Promise<Connection>;
export async function Client(options: ClientOptions): Promise<Connection>;
export async function Client(address: Address, options: Omit<ClientOptions, 'address'>): Promise<Connection>;
export async function Client(address: Address, family: Family | null | undefined, options: Omit<ClientOptions, 'address' | 'family'>): Promise<Connection>;
export async function Client(...args: unknown[]): Promise<Connection> {
  if (args.length >= 3 && isAuthKey(args[2])) args.splice(2, 0, undefined);
  const o = optionalArgs<ClientOptions>('Client', ['address', 'family', 'authenticate', 'authkey'], args, [], ['handshakeTimeout', 'serializer', 'trustPeer']);
  if (o.address == null) throw new TypeError('Client() needs an address');
  const fam = o.family || addressType(o.address);
  validateFamily(fam);
  const addr = checkAddress(o.address, fam);
  const codec = await pickleCodec(checkSerializer(o.serializer));
  let key: Buffer | null = null;
  if (o.authkey != null) key = toAuthKey(o.authkey, () => new TypeError('authkey should be a byte string'));
  else if (o.authenticate) key = currentProcess().authkey;
  const fd = fam === 'AF_INET'
    ? await connectTcp(...(addr as readonly [string, number]))
    : await connectUnix(addr as string);
  const c = setTrusted(new Connection(fd), Boolean(o.trustPeer));
  if (codec) c._usePickle(codec);
  // Python: `if authkey is not None:` (an empty key still authenticates).
  if (key !== null) {
    const deadline = handshakeDeadline(o.handshakeTimeout === undefined ? DEFAULT_HANDSHAKE_TIMEOUT : o.handshakeTimeout);
    try {
      await answer(c, key, deadline);
      await deliver(c, key, 'sha256', deadline);
    } catch (e) {
      c.close();
      throw e;
    }
    // An empty key is no secret: it does not make the listener family.
    if (key.length > 0) setTrusted(c, true);
  }
  return c;
}

// --- The authentication handshake (CPython 3.12's protocol, which 3.11 peers speak too) ---

// The messages are built and checked in mp-core (crates/core/src/auth.rs, through the
// addon's auth* functions); the flow runs here, on the event loop.

const WELCOME = Buffer.from('#WELCOME#');
const FAILURE = Buffer.from('#FAILURE#');
/** CPython's bound on every handshake message (`recv_bytes(256)`). */
const HANDSHAKE_MAXLEN = 256;

async function recvHandshake(c: Connection, deadline: number | null): Promise<Buffer> {
  const m = await c._recvBytesBefore(HANDSHAKE_MAXLEN, deadline);
  if (m === null) throw new AuthenticationError('authentication handshake timed out');
  return m;
}

async function deliver(c: Connection, authkey: Buffer, digestName: string, deadline: number | null): Promise<void> {
  if (typeof digestName !== 'string') throw new ValueError(`unsupported digest ${String(digestName)}`);
  // `#CHALLENGE#{digest}` and 40 random bytes; ValueError for a digest Python does not allow.
  // A 3.11 peer takes the whole thing as its challenge and answers with raw HMAC-MD5.
  const challenge = nativeCall(() => native.authChallenge(digestName));
  c.sendBytes(challenge);
  const response = await recvHandshake(c, deadline);
  try {
    nativeCall(() => native.authVerify(authkey, challenge, response));
  } catch (e) {
    c.sendBytes(FAILURE);
    throw e;
  }
  c.sendBytes(WELCOME);
}

async function answer(c: Connection, authkey: Buffer, deadline: number | null): Promise<void> {
  const challenge = await recvHandshake(c, deadline);
  c.sendBytes(nativeCall(() => native.authResponse(authkey, challenge)));
  const reply = await recvHandshake(c, deadline);
  if (!reply.equals(WELCOME)) throw new AuthenticationError('digest sent was rejected');
}

/** Options of `deliverChallenge` and `answerChallenge` (the handshake a Listener and a Client run). */
export interface ChallengeOptions {
  /** Seconds the peer has to reply (null, the default: no limit, as in Python). */
  timeout?: number | null;
  /** The digest asked for (deliverChallenge only; Python 3.12's `digest_name`, default 'sha256'). */
  digestName?: string;
}

function checkKey(authkey: unknown): Buffer {
  return toAuthKey(authkey, (t) => new ValueError(`Authkey must be bytes, not ${t}`));
}

/**
 * Send a random challenge and check the reply's digest under `authkey`; answers
 * `#WELCOME#` or `#FAILURE#` (then AuthenticationError).
 */
export async function deliverChallenge(connection: Connection, authkey: AuthKey, digestName?: string | ChallengeOptions): Promise<void> {
  const o = optionalArgs<ChallengeOptions>('deliverChallenge', ['digestName'], [digestName], [], ['timeout']);
  await deliver(connection, checkKey(authkey), o.digestName ?? 'sha256', handshakeDeadline(o.timeout));
}

/** Receive a challenge, send its digest under `authkey`; AuthenticationError unless welcomed. */
export async function answerChallenge(connection: Connection, authkey: AuthKey, options?: Omit<ChallengeOptions, 'digestName'>): Promise<void> {
  const o = optionalArgs<ChallengeOptions>('answerChallenge', [], [options], [], ['timeout']);
  await answer(connection, checkKey(authkey), handshakeDeadline(o.timeout));
}

// --- wait() ---

/** What `wait()` takes: a Connection, anything with `fileno()`, or a raw descriptor. */
export type Waitable = number | {
  /** The descriptor that becomes readable when the object is ready. */
  fileno(): number;
};

function filenoOf(o: Waitable): number {
  if (typeof o === 'number') {
    if (!Number.isInteger(o) || o < 0) throw new ValueError(`invalid file descriptor: ${o}`);
    return o;
  }
  if (o && typeof (o as { fileno?: unknown }).fileno === 'function') return o.fileno();
  throw new TypeError(`argument must be an int, or have a fileno() method, not ${inspect(o)}`);
}

function readyNow(o: Waitable): boolean {
  // A Connection may hold whole messages already read from its socket.
  if (o instanceof Connection && o.readable) return o.pollSync(0);
  const fd = filenoOf(o);
  return nativeCall(() => native.waitReadable(fd, 0));
}

/**
 * Wait until some of `objectList` are ready (data to read, or the other end
 * closed; a process sentinel when the process ends) and resolve to those, in
 * list order. `timeout` (or `{ timeout }`) in seconds (negative: zero); null waits
 * for ever; on timeout the list is empty.
 */
export async function wait<T extends Waitable>(objectList: Iterable<T>, timeout?: Timeout | TimeoutOptions): Promise<T[]> {
  const objects = [...objectList];
  const t = timeoutSeconds(timeoutArg(timeout, 'wait'));
  const deadline = t === null ? null : Date.now() + t * 1000;
  for (;;) {
    const ready = objects.filter(readyNow);
    if (ready.length > 0) return ready;
    const left = deadline === null ? null : (deadline - Date.now()) / 1000;
    if (left !== null && left <= 0) return [];
    const fds = [...new Set(objects.map(filenoOf))];
    if (fds.length === 0) {
      // As select() with nothing to watch: sleep out the timeout.
      if (left === null) return new Promise<T[]>(() => {});
      await new Promise((r) => setTimeout(r, left * 1000));
      return [];
    }
    // The first ready descriptor cancels the other watches (only ours: other waiters
    // on the same descriptors are not disturbed).
    const cancel = new AbortController();
    await Promise.race(fds.map((fd) => reactor.readable(fd, left, cancel.signal)));
    cancel.abort();
  }
}

/**
 * Connect without blocking the event loop or libuv's thread pool: a non-blocking
 * connect, completed when the reactor reports the socket writable. Host names are
 * resolved first, as Node's own sockets do.
 */
async function connectTcp(host: string, port: number): Promise<number> {
  const ips = net().isIP(host)
    ? [host]
    : (await dns().lookup(host === '' ? 'localhost' : host, { all: true })).sort((a, b) => a.family - b.family).map((a) => a.address);
  let last: unknown;
  for (const ip of ips) {
    let fd = -1;
    try {
      const start = nativeCall(() => native.connectTcpStart(ip, port));
      fd = start.fd;
      if (start.pending) await reactor.writable(fd);
      nativeCall(() => native.connectFinish(fd));
      return fd;
    } catch (e) {
      if (fd >= 0) {
        reactor.forget(fd);
        native.closeFd(fd);
      }
      last = e;
    }
  }
  throw last ?? new OSError(`cannot resolve ${host}`);
}

/** While a Unix listener's backlog is full the connect cannot complete: retry shortly. */
async function connectUnix(path: string): Promise<number> {
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    const fd = nativeCall(() => native.connectUnixStart(path));
    if (fd !== null) {
      try {
        nativeCall(() => native.connectFinish(fd));
      } catch (e) {
        native.closeFd(fd);
        throw e;
      }
      return fd;
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}

// --- A blocking Client, for the managers' proxies ---

function recvHandshakeSync(c: Connection, deadline: number | null): Buffer {
  const left = deadline === null ? null : Math.max(0, deadline - Date.now()) / 1000;
  if (!c.pollSync(left)) throw new AuthenticationError('authentication handshake timed out');
  return c.recvBytesSync(HANDSHAKE_MAXLEN);
}

/**
 * `Client(address, { authkey })` blocking the calling thread (connect and handshake): what a
 * manager proxy uses when its first call in a process is synchronous (`...Sync`, a Value's
 * `value`), or when it must count a reference before a message leaves. @internal
 */
export function _connectSync(address: Address, authkey: AuthKey | null): Connection {
  const fam = addressType(address);
  validateFamily(fam);
  const addr = checkAddress(address, fam);
  let fd: number;
  if (fam === 'AF_INET') {
    const [host, port] = addr as readonly [string, number];
    fd = nativeCall(() => native.connectTcpBlocking(host === '' ? 'localhost' : host, port));
  } else {
    for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
      const got = nativeCall(() => native.connectUnixStart(addr as string));
      if (got !== null) {
        fd = got;
        break;
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, delay);
    }
    try {
      nativeCall(() => native.connectFinish(fd));
    } catch (e) {
      native.closeFd(fd);
      throw e;
    }
  }
  const c = new Connection(fd);
  if (authkey === null) return c;
  const key = toAuthKey(authkey, () => new TypeError('authkey should be a byte string'));
  const deadline = handshakeDeadline(DEFAULT_HANDSHAKE_TIMEOUT);
  try {
    const challenge = recvHandshakeSync(c, deadline);
    c.sendBytes(nativeCall(() => native.authResponse(key, challenge)));
    if (!recvHandshakeSync(c, deadline).equals(WELCOME)) throw new AuthenticationError('digest sent was rejected');
    const mine = nativeCall(() => native.authChallenge('sha256'));
    c.sendBytes(mine);
    const response = recvHandshakeSync(c, deadline);
    try {
      nativeCall(() => native.authVerify(key, mine, response));
    } catch (e) {
      c.sendBytes(FAILURE);
      throw e;
    }
    c.sendBytes(WELCOME);
  } catch (e) {
    c.close();
    throw e;
  }
  return key.length > 0 ? setTrusted(c, true) : c;
}
