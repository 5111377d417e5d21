// A duplex channel between two threads of this process: the transport of ThreadPool, with
// the surface of a Connection that a pool and its workers use (send, sendBytes, recv,
// recvBytes, their Sync twins, poll, close). Messages are the one serializer's bytes,
// handed over without a copy (postMessage with a transfer list on a MessagePort), with the
// objects that go beside them (descriptors, moved buffers), or, for values of moved buffers
// and plain data only, the value itself (see Compact); each side takes them with
// receiveMessageOnPort, so that neither needs its event loop to receive. Wake-ups go
// through a SharedArrayBuffer of counters: a reader that finds nothing waits on the
// count of messages sent to it (Atomics.wait in a worker, which may block; Atomics.waitAsync
// through wait.ts elsewhere: a main thread never blocks), and a writer notifies only when
// its reader waits, so that busy peers make no system calls.
import { isProxy } from 'node:util/types';
import { MessageChannel, receiveMessageOnPort, type MessagePort, type TransferListItem } from 'node:worker_threads';
import { EOFError, OSError } from './errors.js';
import { dumpsForThread, functionFromState, functionToState, importFunctionModule, loads, loadsAsync, Moved, reduce, reduceMoved, registerKind, type Reduced } from './reduction.js';
import { deadlineOf, secondsLeft, type Timeout } from './timeouts.js';
import { wordChanged } from './wait.js';

// Counters, per direction (0: from end A to end B, 1: from B to A).
/** Messages sent. */
const SENT = 0;
/** Whether the reader waits (the writer then notifies). */
const WAITING = 2;
/** Whether the writer has closed its end. */
const CLOSED = 4;

// Messages move their buffers (a transfer detaches them), and the first buffer a thread
// ever detaches throws away the code V8 compiled in it on the promise that none would be
// (and the compiles under way), hot loops included: a pool's first large batch or result
// would do that mid-work. One empty buffer is detached when a thread makes its first
// channel (a pool's or a thread's start, before any message), so that code compiled after
// never counts on that. Not when this module loads: every process that imports the package
// loads it (lib.js), and while no buffer was ever detached, V8's compiled code reads a
// Buffer or typed array without checking it each time (pickle's loads and dumps, 5-8% of
// their instructions).
let detachedOne = false;
function detachOne(): void {
  detachedOne = true;
  const ab = new ArrayBuffer(0);
  structuredClone(ab, { transfer: [ab] });
}

/** A message as it crosses: bytes, and what goes beside them. */
interface Wire {
  d: Uint8Array;
  f?: number[];
  t?: unknown[];
}

/**
 * A message in compact form: a value whose only objects are `move()`d whole buffers,
 * Float64Arrays, and arrays (two levels) of these and of primitives, with functions and
 * primitives a level further down, such as a ThreadPool's batches (with the definitions
 * of the functions a thread lacks) and results of tasks that move buffers. It crosses as it is,
 * cloned by postMessage (in C++) with its buffers in the transfer list: neither side
 * runs our serializer (reference table, V8's serializer driven from JavaScript, the
 * Reviver), which cost such a message some 30-40 us each way, as much as the task of a
 * 1 MiB buffer on each thread. Same values on the other side as through the serializer.
 */
export interface Compact {
  /** The value, each Moved replaced by what it wraps, each Float64Array by an array of its numbers. */
  c: unknown;
  /**
   * Where Buffers are, as pairs of positions [i, j] (i: in the value, j: in the array at
   * i; -1: none): the clone makes a Uint8Array of a Buffer. Null when there is none.
   */
  b: number[] | null;
  /** Where Float64Arrays are (pairs as `b`): they cross as arrays of their numbers. */
  f: number[] | null;
  /**
   * How many functions it holds: each crosses as the state the serializer sends it by (a
   * plain object, the only kind in a compact value), rebuilt as the serializer's reader does.
   */
  n: number;
}

/** A compact message ready to post (see compactForThread). @internal */
export interface CompactMessage {
  wire: Compact;
  /** Its buffers (moved, and the copies of its Float64Arrays). */
  transfer: ArrayBuffer[];
  /** About the bytes it takes in the channel (moved buffers count as their handles). */
  bytes: number;
}

/** Longest array a compact message holds (a batch has up to MAX_BATCH rows, a star row its arguments). */
const COMPACT_MAX_ITEMS = 1024;
const NOT = Symbol('not compact');

/** Whether `v` holds a Moved (at most two levels of arrays down), the one thing worth a compact message. */
function hasMoved(v: unknown, depth: number): boolean {
  if (v instanceof Moved) return true;
  if (depth > 1 || !Array.isArray(v) || v.length > COMPACT_MAX_ITEMS) return false;
  for (let k = 0; k < v.length; k++) if (hasMoved(v[k], depth + 1)) return true;
  return false;
}

let cTransfer: ArrayBuffer[] = [];
let cBufs: number[] | null = null;
let cF64: number[] | null = null;
let cFns = 0;
let cBytes = 0;

/** `v` in compact form, found at (i, j) (see Compact.b), or NOT. */
function compactValue(v: unknown, i: number, j: number, depth: number): unknown {
  switch (typeof v) {
    case 'number':
    case 'boolean':
    case 'undefined':
    case 'bigint':
      cBytes += 9;
      return v;
    case 'string':
      cBytes += 5 + 2 * v.length;
      return v;
    case 'object':
      break;
    case 'function': {
      // (Its state's serialization would be a buffer of its own, the off-heap allocation
      // that the Float64Arrays below avoid: a batch with the definition of a function new
      // to the thread was one, and started a collection in the first map of moved buffers.)
      let st: object;
      try {
        st = functionToState(v);
      } catch {
        return NOT; // (the serializer's way gives its error)
      }
      cFns++;
      cBytes += 2 * (st as { source: string }).source.length + 64;
      return st;
    }
    default:
      return NOT;
  }
  if (v === null) {
    cBytes += 1;
    return v;
  }
  // (Buffers and Float64Arrays only where Compact.b and .f say: two levels down at most.)
  if (depth > 2) return NOT;
  if (v instanceof Moved) {
    const r = reduceMoved(v.value);
    // (Not a whole buffer of its own: it is copied, by the serializer. A buffer moved twice: its error.)
    if (r === null) return NOT;
    const ab = r.transfer![0] as ArrayBuffer;
    if (cTransfer.includes(ab)) return NOT;
    cTransfer.push(ab);
    cBytes += 16;
    if ((r.state as { type: string }).type === 'Buffer') (cBufs ??= []).push(i, j);
    return v.value;
  }
  if (v instanceof Float64Array) {
    // (A RawArray's goes as shared memory.)
    if (reduce in v || v.length > COMPACT_MAX_ITEMS) return NOT;
    // Its numbers, as an array, made a Float64Array again on the other side. The clone of
    // a typed array would take all the buffer it is part of (a pool's scratch space), and
    // a buffer of its own would be an allocation outside V8's heap, which starts a young
    // collection each time while many moved buffers are young (the main thread of a map of
    // 128 x 1 MiB: 14 such collections, 5 without). (NaN: its bits, which only the
    // serializer keeps.)
    const out: number[] = [];
    for (let k = 0; k < v.length; k++) {
      const x = v[k];
      if (x !== x) return NOT;
      out.push(x);
    }
    (cF64 ??= []).push(i, j);
    cBytes += 8 * v.length + 8;
    return out;
  }
  if (Array.isArray(v) && v.length <= COMPACT_MAX_ITEMS && !isProxy(v) && Object.getPrototypeOf(v) === Array.prototype) {
    const out: unknown[] = [];
    for (let k = 0; k < v.length; k++) {
      if (!(k in v)) return NOT; // a hole: the serializer keeps it
      const x = compactValue(v[k], depth === 0 ? k : i, depth === 0 ? -1 : k, depth + 1);
      if (x === NOT) return NOT;
      out.push(x);
    }
    cBytes += 4;
    return out;
  }
  return NOT;
}

/**
 * `value` as a compact message to a thread (see Compact), or null when it has no moved
 * buffer or holds what only the serializer sends (functions, errors, the library's
 * objects, other objects): then `dumpsForThread`. Nothing is moved until it is posted. @internal
 */
export function compactForThread(value: unknown): CompactMessage | null {
  if (!hasMoved(value, 0)) return null;
  cTransfer = [];
  cBufs = null;
  cF64 = null;
  cFns = 0;
  cBytes = 0;
  const c = compactValue(value, -1, -1, 0);
  const transfer = cTransfer;
  cTransfer = [];
  if (c === NOT) return null;
  return { wire: { c, b: cBufs, f: cF64, n: cFns }, transfer, bytes: cBytes };
}

/** The value of a compact message (its Buffers, Float64Arrays and functions made so again). */
function fromCompact(w: Compact): unknown {
  let c = w.c;
  if (w.n > 0) c = eachState(c, 0, rebuildFn);
  if (w.b !== null) c = remake(c, w.b, asBuffer);
  if (w.f !== null) c = remake(c, w.f, toF64);
  return c;
}

function rebuildFn(s: object): unknown {
  return functionFromState(s, true);
}

/** `c` with each function's state in it (see Compact.n) replaced by `f` of it. */
function eachState(c: unknown, depth: number, f: (s: object) => unknown): unknown {
  if (typeof c !== 'object' || c === null || ArrayBuffer.isView(c) || c instanceof ArrayBuffer) return c;
  if (!Array.isArray(c)) return f(c);
  if (depth < 3) for (let k = 0; k < c.length; k++) c[k] = eachState(c[k], depth + 1, f);
  return c;
}

/** Import the modules of a compact message's functions (as loadsAsync does for the serializer's). */
async function importFns(c: unknown): Promise<void> {
  const states: object[] = [];
  eachState(c, 0, (s) => (states.push(s), s));
  for (const s of states) await importFunctionModule(s, true);
}

function toF64(a: number[]): Float64Array {
  return new Float64Array(a);
}

/** `c` with what is at each position of `at` (pairs: see Compact.b) replaced by `make` of it. */
function remake<T>(c: unknown, at: number[], make: (x: T) => unknown): unknown {
  for (let k = 0; k < at.length; k += 2) {
    const i = at[k];
    const j = at[k + 1];
    if (i < 0) return make(c as T);
    const a = (c as unknown[])[i];
    if (j < 0) (c as unknown[])[i] = make(a as T);
    else (a as unknown[])[j] = make((a as unknown[])[j] as T);
  }
  return c;
}

function isCompact(w: Wire | Compact): w is Compact {
  return (w as Wire).d === undefined;
}

/** The ArrayBuffer of `b`, when `b` spans all of it (then it can be moved rather than copied). */
function ownBuffer(b: Uint8Array): ArrayBuffer | null {
  const ab = b.buffer;
  return ab instanceof ArrayBuffer && b.byteOffset === 0 && b.byteLength === ab.byteLength ? ab : null;
}

/** One end of a ThreadChannel. @internal */
export class ThreadChannel {
  #port: MessagePort;
  readonly #ctl: Int32Array;
  /** The direction this end writes; it reads the other. */
  readonly #out: number;
  readonly #in: number;
  /** Messages taken so far. */
  #taken = 0;
  /** A message taken by a poll and not yet received. */
  #peeked: Wire | Compact | null = null;
  #closed = false;
  /** Handed to another thread: this object no longer owns the end. */
  #given = false;

  constructor(port: MessagePort, ctl: Int32Array, end: 0 | 1) {
    if (!detachedOne) detachOne();
    this.#port = port;
    this.#ctl = ctl;
    this.#out = end;
    this.#in = 1 - end;
    port.unref();
  }

  /**
   * The peer's thread has ended (its owner saw its sentinel): what it sent stays readable,
   * then reads end with EOFError. (A 'close' listener on the port would see it too, but
   * costs every message an event-loop wake-up.) @internal
   */
  _peerEnded(): void {
    Atomics.store(this.#ctl, CLOSED + this.#in, 1);
    Atomics.notify(this.#ctl, SENT + this.#in);
  }

  get closed(): boolean {
    return this.#closed;
  }

  #check(): void {
    if (this.#closed || this.#given) throw new OSError('handle is closed');
  }

  #post(w: Wire): void {
    this.#check();
    const transfer: TransferListItem[] = [];
    const own = ownBuffer(w.d);
    if (own) transfer.push(own);
    // A view of part of a buffer (Node's pool) would be cloned with all of that buffer.
    else w.d = Uint8Array.prototype.slice.call(w.d);
    if (w.t) for (const x of w.t) if (!(x instanceof SharedArrayBuffer)) transfer.push(x as TransferListItem);
    const msg = w.f?.length || w.t?.length ? w : w.d;
    try {
      this.#port.postMessage(msg, transfer);
    } catch {
      // Some buffers cannot be moved (Node's pooled ones): send a copy.
      this.#port.postMessage(msg, transfer.filter((x) => x !== own));
    }
    const ctl = this.#ctl;
    Atomics.add(ctl, SENT + this.#out, 1);
    if (Atomics.load(ctl, WAITING + this.#out) !== 0) Atomics.notify(ctl, SENT + this.#out);
  }

  /** Post a compact message (false if postMessage refused it: nothing was sent or moved). */
  #postCompact(m: CompactMessage): boolean {
    this.#check();
    try {
      this.#port.postMessage(m.wire, m.transfer);
    } catch {
      return false;
    }
    const ctl = this.#ctl;
    Atomics.add(ctl, SENT + this.#out, 1);
    if (Atomics.load(ctl, WAITING + this.#out) !== 0) Atomics.notify(ctl, SENT + this.#out);
    return true;
  }

  /** Send `obj` (the one serializer: values copied, the library's objects shared, `move()`d buffers moved). */
  send(obj: unknown): void {
    this.#check();
    const m = compactForThread(obj);
    // (Refused, such as a buffer that cannot be moved: the serializer's way gives its error.)
    if (m !== null && this.#postCompact(m)) return;
    const d = dumpsForThread(obj);
    try {
      this.#post({ d: d.data, f: d.fds, t: d.transfer });
    } catch (e) {
      d.undo?.();
      throw e;
    }
  }

  /** Send bytes already serialized for a thread (`dumps(x, true)`) with what goes beside them. @internal */
  _sendSerialized(data: Buffer, transfer: unknown[] | undefined): void {
    this.#post({ d: data, t: transfer });
  }

  /** Send a compact message (`compactForThread(value)`): false if postMessage refused it (nothing was sent or moved). @internal */
  _sendCompact(m: CompactMessage): boolean {
    return this.#postCompact(m);
  }

  /** Send a copy of the bytes of `buf`. */
  sendBytes(buf: ArrayBufferView | ArrayBuffer): void {
    const bytes = buf instanceof ArrayBuffer ? new Uint8Array(buf) : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    this.#post({ d: Uint8Array.prototype.slice.call(bytes) });
  }

  #take(): Wire | Compact | null {
    const p = this.#peeked;
    if (p !== null) {
      this.#peeked = null;
      return p;
    }
    const got = receiveMessageOnPort(this.#port);
    if (got === undefined) return null;
    this.#taken++;
    const m = got.message as Wire | Compact | Uint8Array;
    return m instanceof Uint8Array ? { d: m } : m;
  }

  /** Whether the peer has closed (and nothing is left to read). */
  #eof(): boolean {
    return Atomics.load(this.#ctl, CLOSED + this.#in) !== 0 && Atomics.load(this.#ctl, SENT + this.#in) === this.#taken;
  }

  #next(): Wire | Compact {
    const w = this.#take();
    if (w !== null) return w;
    throw new EOFError();
  }

  /** Whether a message (or the end) is there now, taking it aside. */
  #ready(): boolean {
    this.#check();
    if (this.#peeked !== null) return true;
    this.#peeked = this.#take();
    return this.#peeked !== null || this.#eof();
  }

  /** Wait (blocking this thread) until a message or the end is there, or `deadline`. */
  #waitSync(deadline: number | null): boolean {
    const ctl = this.#ctl;
    const i = SENT + this.#in;
    while (!this.#ready()) {
      const left = secondsLeft(deadline);
      if (left === 0) return false;
      const seen = Atomics.load(ctl, i);
      Atomics.store(ctl, WAITING + this.#in, 1);
      if (!this.#ready()) Atomics.wait(ctl, i, seen, left === null ? undefined : left * 1000);
      Atomics.store(ctl, WAITING + this.#in, 0);
    }
    return true;
  }

  async #wait(deadline: number | null): Promise<boolean> {
    const ctl = this.#ctl;
    const i = SENT + this.#in;
    while (!this.#ready()) {
      const left = secondsLeft(deadline);
      if (left === 0) return false;
      const seen = Atomics.load(ctl, i);
      Atomics.store(ctl, WAITING + this.#in, 1);
      try {
        if (!this.#ready()) await wordChanged(ctl, i, seen, left);
      } finally {
        Atomics.store(ctl, WAITING + this.#in, 0);
      }
    }
    return true;
  }

  #load(w: Wire | Compact): unknown {
    if (isCompact(w)) return fromCompact(w);
    return loads(w.d, takeFrom(w), true, true, w.t ?? []);
  }

  /** The next object (EOFError when the peer has closed and nothing is left). */
  async recv(): Promise<unknown> {
    await this.#wait(null);
    const w = this.#next();
    if (isCompact(w)) {
      if (w.n > 0) await importFns(w.c);
      return fromCompact(w);
    }
    return loadsAsync(w.d, takeFrom(w), true, true, w.t ?? []);
  }

  recvSync(): unknown {
    this.#waitSync(null);
    return this.#load(this.#next());
  }

  /** The next message's bytes. */
  async recvBytes(): Promise<Buffer> {
    await this.#wait(null);
    return bytesOf(this.#next());
  }

  recvBytesSync(): Buffer {
    this.#waitSync(null);
    return bytesOf(this.#next());
  }

  /** Whether a message is there within `timeout` seconds (null: wait for one). */
  async poll(timeout: Timeout = 0): Promise<boolean> {
    return this.#wait(deadlineOf(timeout));
  }

  pollSync(timeout: Timeout = 0): boolean {
    return this.#waitSync(deadlineOf(timeout));
  }

  /** Close this end: the peer's reads end with EOFError once it has read what was sent. */
  close(): void {
    if (this.#closed || this.#given) return;
    this.#closed = true;
    Atomics.store(this.#ctl, CLOSED + this.#out, 1);
    Atomics.notify(this.#ctl, SENT + this.#out);
    // Our own pending reads wake up and see the end closed (OSError).
    Atomics.notify(this.#ctl, SENT + this.#in);
  }

  /** Goes to another thread (its port moved there); not to a process. */
  [reduce](): Reduced {
    this.#check();
    this.#given = true;
    return { kind: 'thread-channel', state: { end: this.#out }, transfer: [this.#port, this.#ctl.buffer] };
  }
}

function takeFrom(w: Wire): (n: number) => number[] {
  let at = 0;
  return (n) => (w.f ?? []).slice(at, (at += n));
}

/** A message's bytes (a compact one's value serialized, its buffers copied into them). */
function bytesOf(w: Wire | Compact): Buffer {
  return isCompact(w) ? dumpsForThread(fromCompact(w)).data : asBuffer(w.d);
}

function asBuffer(d: Uint8Array): Buffer {
  return Buffer.isBuffer(d) ? d : Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

registerKind('thread-channel', (s: { end: 0 | 1 }, _fds, _trusted, transferred) =>
  new ThreadChannel(transferred[0] as MessagePort, new Int32Array(transferred[1] as SharedArrayBuffer), s.end));

/** Two connected ends. @internal */
export function threadChannelPair(): [ThreadChannel, ThreadChannel] {
  const { port1, port2 } = new MessageChannel();
  const ctl = new Int32Array(new SharedArrayBuffer(8 * 4));
  return [new ThreadChannel(port1, ctl, 0), new ThreadChannel(port2, ctl, 1)];
}
