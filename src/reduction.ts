// The one serializer (Python's reduction + pickle): values are copied with V8's
// structured-clone serializer; the library's own objects travel as references to
// the same resource (their descriptors go alongside, e.g. by SCM_RIGHTS); functions
// travel by (module, export name) or, failing that, by source text; errors keep
// their class name, message and stack.
//
// Wire layout: V8 header, then a table of references, then the value, in which each
// reference is a marker object `{ __mp_ref__: index }`.
//
// One file on purpose: it is the one serializer, and the reference table, the compact
// tuple form and the function-by-source rules are parts of the same wire layout.
import { Buffer } from 'node:buffer';
import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as v8 from 'node:v8';
import { isMainThread } from 'node:worker_threads';
import { isProxy } from 'node:util/types';
import { AuthenticationError, errorClasses, nativeCall, PythonError } from './errors.js';
import { isLoaded, looksExported, moduleOf } from './locate.js';
import { native } from './native.js';
import { libraryModuleUrl } from './util.js';

/**
 * The method key by which an object says how it crosses a process boundary, Python's
 * `__reduce__`: objects of this library implement it, and so can a user's class (with
 * {@link registerKind} for the receiving side). `Symbol.for`, so that every copy of the package agrees.
 */
export const reduce = Symbol.for('node-multiprocessing.reduce');

/** What `[reduce]()` returns, Python's reduce tuple: a kind (the rebuilder) and its state. */
export interface Reduced {
  /** Which rebuilder re-creates the object (see registerKind). */
  kind: string;
  /** Any serializable value; may itself contain library objects and functions. */
  state?: unknown;
  /** Descriptors the object stands on; sent as duplicates, the sender keeps its own. */
  fds?: number[];
  /** Gives back what the reduction took for the receiver (a block's count) if the message is not sent. */
  undo?: () => void;
  /**
   * Objects that go beside the message to another thread of this process (postMessage's
   * transfer list: ArrayBuffers are moved, MessagePorts handed over, SharedArrayBuffers
   * shared). An object whose reduction has them can be sent to threads only.
   */
  transfer?: unknown[];
}

/** An object that crosses a process boundary by its own reduction (Python's `__reduce__`). */
export interface Shareable {
  /** Say how to re-create this object in the receiving process. */
  [reduce](): Reduced;
}

/**
 * Re-creates an object. `trusted`: whether the message came from the process's family
 * (its parent, children, Pool workers, the objects they share) or from a peer that
 * authenticated with an authkey; objects that receive messages themselves (a Connection,
 * a Queue) keep it.
 */
export type Rebuild = (state: any, fds: number[], trusted: boolean, transferred: unknown[]) => unknown;
const rebuilders = new Map<string, Rebuild>();

/**
 * Register how objects of `kind` are re-created from their state and descriptors, Python's
 * `copyreg.pickle`. Every process that receives such objects must have registered the kind
 * (register it at the top level of a module the child imports).
 */
export function registerKind(kind: string, rebuild: Rebuild): void {
  rebuilders.set(kind, rebuild);
}

// The modules that register the library's own kinds. A child loads only what its
// messages carry: the module of a kind is imported (or required, when decoding is
// synchronous) the first time an object of that kind arrives.
const kindModules: Record<string, string> = {
  connection: 'connection',
  queue: 'queues',
  semlock: 'synchronize',
  condition: 'synchronize',
  event: 'synchronize',
  barrier: 'synchronize',
  ctypes: 'sharedctypes',
  'ctypes-struct-copy': 'sharedctypes',
  synchronized: 'sharedctypes',
  'dummy-namespace': 'dummy',
  'thread-channel': 'thread_channel',
  'pool-shared-map': 'pool_shared',
  // managers.ts, not managers_proxy.ts: it registers the proxy types sent by name and SyncManager's typeids.
  proxy: 'managers',
};
function kindModuleUrl(kind: string): string | undefined {
  const m = kindModules[kind];
  return m && libraryModuleUrl(m);
}

export interface Dumped {
  data: Buffer;
  fds: number[];
  /** What goes beside the message to a thread (see Reduced.transfer); only from `dumpsForThread`. */
  transfer?: unknown[];
  /** Present when the message holds counts for its receiver: call it if the message is not sent. */
  undo?: () => void;
}

function undoAll(undos: Array<() => void>): void {
  for (const u of undos) {
    try {
      u();
    } catch {
      /* the object is gone already */
    }
  }
}

const MARK = '__mp_ref__';
interface RefEntry { k: string; s: unknown; n: number; t?: number }

function isLeaf(v: object): boolean {
  return ArrayBuffer.isView(v) || v instanceof ArrayBuffer || v instanceof Date || v instanceof RegExp;
}

/** Whether anything in `v` needs the slow path (library objects, functions, errors). */
function needsPrepare(v: unknown, seen: Set<object>): boolean {
  if (typeof v === 'function') return true;
  if (v === null || typeof v !== 'object') return false;
  if (seen.has(v)) return false;
  seen.add(v);
  if (reduce in v || v instanceof Error || v instanceof Moved) return true;
  if (isLeaf(v)) return false;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (needsPrepare(v[i], seen)) return true;
    return false;
  }
  if (v instanceof Map) {
    for (const [k, x] of v) if (needsPrepare(k, seen) || needsPrepare(x, seen)) return true;
    return false;
  }
  if (v instanceof Set) {
    for (const x of v) if (needsPrepare(x, seen)) return true;
    return false;
  }
  for (const k of Object.keys(v)) if (needsPrepare((v as Record<string, unknown>)[k], seen)) return true;
  return false;
}

class Preparer {
  refs: RefEntry[] = [];
  fds: number[] = [];
  undos: Array<() => void> = [];
  transfer: unknown[] = [];
  copies = new Map<object, unknown>();

  /** `toThread`: the message goes to a thread of this process (transfers allowed). */
  constructor(readonly toThread: boolean) {}

  marker(r: Reduced): { [MARK]: number } {
    const index = this.refs.length;
    const entry: RefEntry = { k: r.kind, s: undefined, n: r.fds?.length ?? 0 };
    if (r.transfer?.length) {
      if (!this.toThread) throw new TypeError(`an object of kind '${r.kind}' can be sent only to a thread of this process`);
      entry.t = r.transfer.length;
      this.transfer.push(...r.transfer);
    }
    this.refs.push(entry);
    if (r.fds) this.fds.push(...r.fds);
    if (r.undo) this.undos.push(r.undo);
    entry.s = this.prepare(r.state);
    return { [MARK]: index };
  }

  prepare(v: unknown): unknown {
    if (typeof v === 'function') {
      const done = this.copies.get(v);
      if (done !== undefined) return done;
      const m = this.marker(reduceFunction(v));
      this.copies.set(v, m);
      return m;
    }
    if (v === null || typeof v !== 'object') return v;
    const done = this.copies.get(v);
    if (done !== undefined) return done;
    if (reduce in v) {
      const m = this.marker((v as Shareable)[reduce]());
      this.copies.set(v, m);
      return m;
    }
    if (v instanceof Moved) {
      // Moved to a thread when it can be; else (to a process, or not a whole buffer) copied.
      const r = this.toThread ? reduceMoved(v.value) : null;
      const m = r ? this.marker(r) : this.prepare(v.value);
      this.copies.set(v, m);
      return m;
    }
    if (v instanceof Error) {
      const m = this.marker(reduceError(v));
      this.copies.set(v, m);
      return m;
    }
    if (isLeaf(v)) return v;
    if (Array.isArray(v)) {
      const out: unknown[] = new Array(v.length);
      this.copies.set(v, out);
      for (let i = 0; i < v.length; i++) out[i] = this.prepare(v[i]);
      return out;
    }
    if (v instanceof Map) {
      const out = new Map();
      this.copies.set(v, out);
      for (const [k, x] of v) out.set(this.prepare(k), this.prepare(x));
      return out;
    }
    if (v instanceof Set) {
      const out = new Set();
      this.copies.set(v, out);
      for (const x of v) out.add(this.prepare(x));
      return out;
    }
    const out: Record<string, unknown> = {};
    this.copies.set(v, out);
    for (const k of Object.keys(v)) out[k] = this.prepare((v as Record<string, unknown>)[k]);
    return out;
  }
}

// Fast path for the commonest small messages: a one-byte tag then the value.
// V8's own stream always starts with its version tag 0xFF, so tags below it are free.
const TAG_UNDEFINED = 0;
const TAG_NULL = 1;
const TAG_TRUE = 2;
const TAG_FALSE = 3;
const TAG_NUMBER = 4;
const TAG_STRING = 5;
const TAG_BUFFER = 6;
const TAG_TUPLE = 7;
const SHORT_STRING = 256;
const NO_FDS: number[] = [];

// A short array of numbers, null, undefined, booleans and Float64Arrays (a Pool's batches
// and results: a task table and packed arguments or results) skips V8's serializer: the
// tag, the number of items, then each item as its type byte and value. A Float64Array
// is its length (u32) then its doubles, which start 8-aligned in the message so that the
// receiver can read them in place; the last one can go as a second part of the write,
// straight from its memory (see dumpsParts).
const T_NUMBER = 4;
const T_F64 = 8;
const MAX_TUPLE = 16;

/** Bytes of the compact form of `v` (see TAG_TUPLE), or -1 when it has none. */
function tupleSize(v: unknown[]): number {
  // (A Proxy is not cloneable in V8's form: it keeps its error.)
  if (v.length > MAX_TUPLE || isProxy(v) || Object.getPrototypeOf(v) !== Array.prototype) return -1;
  let n = 2;
  for (let i = 0; i < v.length; i++) {
    if (!(i in v)) return -1; // a hole: V8's form keeps it
    const x = v[i];
    if (typeof x === 'number') n += 9;
    else if (x === null || x === undefined || typeof x === 'boolean') n += 1;
    // (A Float64Array with its own reduction, a RawArray's, travels as shared memory.)
    else if (x instanceof Float64Array && !(reduce in x)) n = ((n + 5 + 7) & ~7) + x.byteLength;
    else return -1;
  }
  // Other own properties (V8's form keeps them).
  if (Object.keys(v).length !== v.length) return -1;
  return n;
}

/**
 * A double or a u32 into or out of a message by typed-array and DataView builtins and byte
 * operations, not Buffer's writeDoubleLE/writeUInt32LE/fill/readDoubleLE/readUInt32LE:
 * those are Node's JavaScript, which a fresh process runs (and compiles) for the first time
 * at its first such message, some 30-90 us each (measured, one call each in fresh processes),
 * on the way of a pool's first calls in both processes.
 */
const numView = new DataView(new ArrayBuffer(8));
const numBytes = new Uint8Array(numView.buffer);

function putDouble(b: Uint8Array, p: number, x: number): void {
  numView.setFloat64(0, x, true);
  for (let i = 0; i < 8; i++) b[p + i] = numBytes[i];
}

function getDouble(b: Uint8Array, p: number): number {
  for (let i = 0; i < 8; i++) numBytes[i] = b[p + i];
  return numView.getFloat64(0, true);
}

function putU32(b: Uint8Array, p: number, n: number): void {
  b[p] = n & 255;
  b[p + 1] = (n >>> 8) & 255;
  b[p + 2] = (n >>> 16) & 255;
  b[p + 3] = n >>> 24;
}

function getU32(b: Uint8Array, p: number): number {
  return (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16)) + b[p + 3] * 0x1000000;
}

/**
 * Write the compact form of `v` (of `size` bytes) into `b`, without the doubles of its
 * last item when `split` (they follow as a part of their own). Returns where they go.
 */
function writeTuple(v: unknown[], b: Buffer, split: boolean): number {
  b[0] = TAG_TUPLE;
  b[1] = v.length;
  let p = 2;
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (typeof x === 'number') {
      b[p] = T_NUMBER;
      putDouble(b, p + 1, x);
      p += 9;
    } else if (x === null) b[p++] = TAG_NULL;
    else if (x === undefined) b[p++] = TAG_UNDEFINED;
    else if (x === true) b[p++] = TAG_TRUE;
    else if (x === false) b[p++] = TAG_FALSE;
    else {
      const f = x as Float64Array;
      b[p] = T_F64;
      putU32(b, p + 1, f.length);
      const at = (p + 5 + 7) & ~7;
      for (let j = p + 5; j < at; j++) b[j] = 0;
      if (split && i === v.length - 1) return at;
      copyBytes(new Uint8Array(f.buffer, f.byteOffset, f.byteLength), 0, b, at, f.byteLength);
      p = at + f.byteLength;
    }
  }
  return p;
}

function readTuple(b: Buffer, owned: boolean): unknown[] {
  const count = b.length >= 2 ? b[1] : -1;
  if (count < 0 || count > MAX_TUPLE) throw notAMessage('bad tuple');
  const out: unknown[] = new Array(count);
  let p = 2;
  for (let i = 0; i < count; i++) {
    if (p >= b.length) throw notAMessage('truncated tuple');
    const t = b[p];
    if (t === T_NUMBER) {
      if (p + 9 > b.length) throw notAMessage('truncated tuple');
      out[i] = getDouble(b, p + 1);
      p += 9;
    } else if (t === TAG_NULL) {
      out[i] = null;
      p++;
    } else if (t === TAG_UNDEFINED) {
      out[i] = undefined;
      p++;
    } else if (t === TAG_TRUE || t === TAG_FALSE) {
      out[i] = t === TAG_TRUE;
      p++;
    } else if (t === T_F64) {
      if (p + 5 > b.length) throw notAMessage('truncated tuple');
      const n = getU32(b, p + 1);
      const at = (p + 5 + 7) & ~7;
      if (at + n * 8 > b.length) throw notAMessage('truncated tuple');
      const start = b.byteOffset + at;
      if (owned && start % 8 === 0) {
        out[i] = new Float64Array(b.buffer, start, n);
      } else {
        const f = new Float64Array(n);
        new Uint8Array(f.buffer).set(b.subarray(at, at + n * 8));
        out[i] = f;
      }
      p = at + n * 8;
    } else {
      throw notAMessage(`tuple item of type ${t}`);
    }
  }
  if (p !== b.length) throw notAMessage(`${b.length - p} bytes after a tuple`);
  return out;
}

/**
 * Serialize `value` in two parts to be written one after the other as one message: the
 * compact form of a tuple whose last item is a Float64Array goes without copying its
 * doubles (the second part is a view of them). Anything else: as `dumps`, one part.
 */
export function dumpsParts(value: unknown): Dumped & { tail: Uint8Array | null } {
  if (Array.isArray(value)) {
    const size = tupleSize(value);
    const last = value[value.length - 1];
    if (size >= 0 && last instanceof Float64Array) {
      const headSize = size - last.byteLength;
      const head = Buffer.allocUnsafe(headSize);
      writeTuple(value, head, true);
      return { data: head, fds: NO_FDS, tail: new Uint8Array(last.buffer, last.byteOffset, last.byteLength) };
    }
  }
  const d = dumps(value);
  return { data: d.data, fds: d.fds, undo: d.undo, tail: null };
}

/**
 * A number's message (the bytes `dumps` makes for it) written at the start of `out`; returns
 * its length. For a channel that sends from a buffer of its own: no Buffer per message, and
 * only builtins on the way (a fresh process compiles nothing for its first number). @internal
 */
export function dumpsNumberInto(value: number, out: DataView): number {
  out.setUint8(0, TAG_NUMBER);
  out.setFloat64(1, value, true);
  return 9;
}

/** The number held by the message of `length` bytes at the start of `data`; undefined if it is not a number's. @internal */
export function loadsNumber(data: DataView, length: number): number | undefined {
  return length === 9 && data.getUint8(0) === TAG_NUMBER ? data.getFloat64(1, true) : undefined;
}

function dumpsFast(value: unknown): Buffer | undefined {
  switch (typeof value) {
    case 'number': {
      const b = Buffer.allocUnsafe(9);
      b[0] = TAG_NUMBER;
      b.writeDoubleLE(value, 1);
      return b;
    }
    case 'string':
      if (value.length > SHORT_STRING) return undefined;
      return Buffer.concat([Buffer.of(TAG_STRING), Buffer.from(value, 'utf8')]);
    case 'boolean':
      return Buffer.of(value ? TAG_TRUE : TAG_FALSE);
    case 'undefined':
      return Buffer.of(TAG_UNDEFINED);
    case 'object':
      if (value === null) return Buffer.of(TAG_NULL);
      if (Buffer.isBuffer(value)) {
        // Large buffers get memory of their own rather than a slice of Node's pool.
        const b = value.length < 4096 ? Buffer.allocUnsafe(value.length + 1) : Buffer.allocUnsafeSlow(value.length + 1);
        b[0] = TAG_BUFFER;
        copyBytes(value, 0, b, 1, value.length);
        return b;
      }
      if (Array.isArray(value)) {
        const size = tupleSize(value);
        if (size < 0) return undefined;
        // Large ones get memory of their own rather than a slice of Node's pool.
        const b = size < 4096 ? Buffer.allocUnsafe(size) : Buffer.allocUnsafeSlow(size);
        writeTuple(value, b, false);
        return b;
      }
      return undefined;
    default:
      return undefined;
  }
}

/** Bytes up to this many are copied by a loop: Buffer#copy makes a view and reads `.buffer` (a runtime call) each time. */
const COPY_LOOP_MAX = 64;

function copyBytes(src: Uint8Array, from: number, dst: Uint8Array, to: number, n: number): void {
  if (n <= COPY_LOOP_MAX) {
    for (let i = 0; i < n; i++) dst[to + i] = src[from + i];
  } else {
    dst.set(src.subarray(from, from + n), to);
  }
}

function loadsFast(data: Uint8Array, owned: boolean): unknown {
  const b = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  // A fixed-size value of the wrong size is not a message (a truncated number would read
  // past the end).
  if (b[0] <= TAG_FALSE ? b.length !== 1 : b[0] === TAG_NUMBER && b.length !== 9) {
    throw notAMessage(`${b.length} bytes for a value of type tag ${b[0]}`);
  }
  switch (b[0]) {
    case TAG_UNDEFINED: return undefined;
    case TAG_NULL: return null;
    case TAG_TRUE: return true;
    case TAG_FALSE: return false;
    case TAG_NUMBER: return b.readDoubleLE(1);
    case TAG_STRING: return b.toString('utf8', 1);
    case TAG_TUPLE: return readTuple(b, owned);
    case TAG_BUFFER: {
      if (owned) return b.subarray(1);
      const out = b.length - 1 < 4096 ? Buffer.allocUnsafe(b.length - 1) : Buffer.allocUnsafeSlow(b.length - 1);
      copyBytes(b, 1, out, 0, b.length - 1);
      return out;
    }
    default: throw new TypeError(`not a serialized message (first byte ${b[0]})`);
  }
}

/** Buffers at least this large are sent as a tag byte plus the caller's own bytes. */
const SPLIT_BUFFER = 64 * 1024;

/**
 * Serialize `value` as a tag byte and a payload kept apart, when a Buffer of at least
 * `splitAt` bytes can go without a copy (for channels that write several parts at once;
 * a queue's ring copies parts as cheaply as one, so it splits every Buffer); else as `dumps`.
 */
export function dumpsSplit(value: unknown, splitAt = SPLIT_BUFFER): Dumped & { tag?: number } {
  if (Buffer.isBuffer(value) && value.length >= splitAt) return { tag: TAG_BUFFER, data: value, fds: NO_FDS };
  return dumps(value);
}

/**
 * Serialize `value`. Throws TypeError naming what cannot be sent. `toThread`: for a thread
 * of this process (objects may then go beside the message: see Reduced.transfer); the
 * descriptors are the sender's (see dumpsForThread).
 */
export function dumps(value: unknown, toThread = false): Dumped {
  return serialize(value, toThread);
}

function serialize(value: unknown, toThread: boolean): Dumped {
  const fast = dumpsFast(value);
  if (fast) return { data: fast, fds: NO_FDS };
  let refs: RefEntry[] | null = null;
  let fds: number[] = [];
  let undos: Array<() => void> = [];
  let transfer: unknown[] | null = null;
  let body = value;
  if (needsPrepare(value, new Set())) {
    const p = new Preparer(toThread);
    try {
      body = p.prepare(value);
    } catch (e) {
      undoAll(p.undos);
      throw e;
    }
    refs = p.refs;
    fds = p.fds;
    undos = p.undos;
    if (p.transfer.length) transfer = p.transfer;
  }
  const ser = new v8.DefaultSerializer();
  ser.writeHeader();
  try {
    ser.writeValue(refs);
    ser.writeValue(body);
  } catch (e) {
    undoAll(undos);
    throw new TypeError(`cannot serialize ${describe(value)}: ${(e as Error).message}`);
  }
  const data = ser.releaseBuffer();
  const d: Dumped = undos.length ? { data, fds, undo: () => undoAll(undos) } : { data, fds };
  if (transfer) d.transfer = transfer;
  return d;
}

/**
 * Serialize `value` for another thread of this process: as `dumps`, but the descriptors are
 * duplicates that the receiving thread owns (threads share the process's descriptors, so
 * the sender's stay its own, as after SCM_RIGHTS). `undo` also closes the duplicates.
 */
export function dumpsForThread(value: unknown): Dumped {
  const d = serialize(value, true);
  if (d.fds.length === 0) return d;
  const fds: number[] = [];
  const undo = (): void => {
    for (const fd of fds) native.closeFd(fd);
    d.undo?.();
  };
  try {
    for (const fd of d.fds) fds.push(nativeCall(() => native.dupFd(fd)));
  } catch (e) {
    undo();
    throw e;
  }
  return d.transfer ? { data: d.data, fds, undo, transfer: d.transfer } : { data: d.data, fds, undo };
}

function describe(v: unknown): string {
  if (v === null || typeof v !== 'object') return typeof v;
  return `object of type '${v.constructor?.name ?? 'Object'}'`;
}

class Reviver {
  objs: unknown[];
  fdsOf: number[][];
  building = new Set<number>();
  /** References whose rebuilding started (their rebuilder owns their descriptors). */
  started = new Set<number>();
  revived = new Map<object, unknown>();

  transferredOf: unknown[][] = [];

  constructor(public refs: RefEntry[], fds: number[], readonly trusted: boolean, transferred: unknown[]) {
    this.objs = new Array(refs.length);
    this.fdsOf = [];
    let at = 0;
    let tAt = 0;
    for (const r of refs) {
      this.fdsOf.push(fds.slice(at, at + r.n));
      at += r.n;
      const nt = r.t ?? 0;
      if (nt > transferred.length - tAt) throw notAMessage('objects it refers to did not come with it');
      this.transferredOf.push(transferred.slice(tAt, tAt + nt));
      tAt += nt;
    }
  }

  /** The descriptors of references whose rebuilding never started. */
  unclaimed(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.refs.length; i++) if (!this.started.has(i)) out.push(...this.fdsOf[i]);
    return out;
  }

  ref(i: number): unknown {
    if (i in this.objs) return this.objs[i];
    if (this.building.has(i)) throw new TypeError('cannot rebuild a reference that contains itself');
    const entry = this.refs[i];
    if (entry === undefined) throw notAMessage(`reference ${i} is not in its table`);
    this.building.add(i);
    const state = this.revive(entry.s);
    this.started.add(i);
    const obj = rebuild(entry.k, state, this.fdsOf[i], this.trusted, this.transferredOf[i]);
    this.objs[i] = obj;
    this.building.delete(i);
    return obj;
  }

  revive(v: unknown): unknown {
    if (v === null || typeof v !== 'object' || isLeaf(v)) return v;
    const done = this.revived.get(v);
    if (done !== undefined) return done;
    if (Array.isArray(v)) {
      this.revived.set(v, v);
      for (let i = 0; i < v.length; i++) v[i] = this.revive(v[i]);
      return v;
    }
    if (v instanceof Map) {
      this.revived.set(v, v);
      const entries = [...v];
      v.clear();
      for (const [k, x] of entries) v.set(this.revive(k), this.revive(x));
      return v;
    }
    if (v instanceof Set) {
      this.revived.set(v, v);
      const items = [...v];
      v.clear();
      for (const x of items) v.add(this.revive(x));
      return v;
    }
    const rec = v as Record<string, unknown>;
    if (typeof rec[MARK] === 'number' && Object.keys(rec).length === 1) {
      const obj = this.ref(rec[MARK] as number);
      this.revived.set(v, obj);
      return obj;
    }
    this.revived.set(v, v);
    for (const k of Object.keys(rec)) rec[k] = this.revive(rec[k]);
    return v;
  }
}

function rebuild(kind: string, state: unknown, fds: number[], trusted: boolean, transferred: unknown[]): unknown {
  let fn = rebuilders.get(kind);
  const home = fn ? undefined : kindModuleUrl(kind);
  if (home) {
    // Node >= 20.19 loads ES modules synchronously with require().
    require(fileURLToPath(home));
    fn = rebuilders.get(kind);
  }
  if (!fn) throw new TypeError(`cannot rebuild an object of kind '${kind}': its module is not loaded`);
  return fn(state, fds, trusted, transferred);
}

/** A message that is not one: a clear error, whatever the bytes (V8's own messages say little). */
function notAMessage(why: string): TypeError {
  return new TypeError(`not a serialized message (${why})`);
}

/** Most descriptors one message can carry (the kernel's SCM_MAX_FD). */
const MAX_FDS = 253;

function decode(data: Uint8Array): { refs: RefEntry[] | null; des: v8.DefaultDeserializer } {
  const des = new v8.DefaultDeserializer(data);
  let refs: unknown;
  try {
    des.readHeader();
    refs = des.readValue();
  } catch (e) {
    throw notAMessage((e as Error).message);
  }
  if (refs === null) return { refs, des };
  if (!Array.isArray(refs)) throw notAMessage('bad reference table');
  let total = 0;
  for (const r of refs as unknown[]) {
    const e = r as RefEntry | null;
    if (e === null || typeof e !== 'object' || typeof e.k !== 'string' || !Number.isInteger(e.n) || e.n < 0 || (e.t !== undefined && !(Number.isInteger(e.t) && e.t >= 0))) {
      throw notAMessage('bad reference table');
    }
    total += e.n;
  }
  if (total > MAX_FDS) throw notAMessage(`${total} descriptors`);
  return { refs: refs as RefEntry[], des };
}

function readBody(des: v8.DefaultDeserializer): unknown {
  try {
    return des.readValue();
  } catch (e) {
    throw notAMessage((e as Error).message);
  }
}

/**
 * A message from a peer outside the family that did not authenticate must not make
 * this process run code: no function or class from source text (evaluating it runs it:
 * a class's `static {}` block, a "function" that is a statement), no module imported,
 * no Process. Functions by reference to a module this process has already loaded are
 * fine: nothing runs to find them. Checked before anything in the message is rebuilt.
 */
function checkFromStranger(refs: RefEntry[]): void {
  for (const r of refs) {
    if (r.k === 'process') throw refused('a Process object');
    if (r.k === 'function') {
      const s = functionState(r.s);
      if (!loadedExport(s)) {
        throw refused(
          s.url && isModuleUrl(s.url)
            ? `function '${s.name || '<anonymous>'}' of ${s.url}, a module this process has not loaded (importing it would run it)`
            : `function '${s.name || '<anonymous>'}' sent by its source text (rebuilding it would run that text)`,
        );
      }
    }
  }
}

function refused(what: string): AuthenticationError {
  return new AuthenticationError(
    `refused a message holding ${what}: it came from a peer that did not authenticate, and code is accepted only ` +
      'from this process\'s family (parent, children, Pool workers) or over a connection authenticated with an authkey. ' +
      'Give the Listener and Client an authkey, or pass { trustPeer: true } if the peer may run code here.',
  );
}

/**
 * Deserialize. `takeFds(n)` hands over the descriptors that arrived with the message
 * (ownership passes to the rebuilt objects). With `owned`, `data` is a buffer nobody
 * else uses, so the result may keep a view of it instead of a copy. `trusted`: the
 * message comes from the family or an authenticated peer (see checkFromStranger).
 * Bytes that are not a message give a TypeError.
 */
export function loads(data: Uint8Array, takeFds: (n: number) => number[] = noFds, owned = false, trusted: boolean, transferred: unknown[] = []): unknown {
  if (data.length === 0) throw notAMessage('empty');
  if (data[0] !== 0xff) return loadsFast(data, owned);
  return loadsDecoded(decode(data), takeFds, trusted, transferred);
}

/** The rest of `loads`, once the message's header and reference table are read. */
function loadsDecoded({ refs, des }: ReturnType<typeof decode>, takeFds: (n: number) => number[], trusted: boolean, transferred: unknown[]): unknown {
  const body = readBody(des);
  if (!refs || refs.length === 0) return body;
  const total = refs.reduce((a, r) => a + r.n, 0);
  const fds = total ? takeFds(total) : [];
  const reviver = new Reviver(refs, fds, trusted, transferred);
  try {
    if (!trusted) checkFromStranger(refs);
    return reviver.revive(body);
  } catch (e) {
    // Descriptors that no rebuilt object took are closed: nothing keeps them.
    for (const fd of reviver.unclaimed()) native.closeFd(fd);
    throw e;
  }
}

/** As `loads`, but first imports the modules that sent functions come from. */
export async function loadsAsync(data: Uint8Array, takeFds: (n: number) => number[] = noFds, owned = false, trusted: boolean, transferred: unknown[] = []): Promise<unknown> {
  if (data.length === 0 || data[0] !== 0xff) return loads(data, takeFds, owned, trusted, transferred);
  const decoded = decode(data);
  const { refs } = decoded;
  if (refs) {
    for (const r of refs) {
      const home = rebuilders.has(r.k) ? undefined : kindModuleUrl(r.k);
      if (home) await import(home);
      if (r.k === 'function') await importFunctionModule(r.s, trusted);
    }
  }
  // (The body is read after the imports: a class rebuilt from it may need them.)
  return loadsDecoded(decoded, takeFds, trusted, transferred);
}

/** Import the module of a sent function (its state `s`) if it may be, before the function is rebuilt. @internal */
export async function importFunctionModule(s: unknown, trusted: boolean): Promise<void> {
  const url = functionStateOrNull(s)?.url;
  if (!url || modules.has(url) || !isModuleUrl(url)) return;
  // Never wait for this program's main module: it may be the one awaiting this message.
  if (isMainModule(url)) {
    watchMainModule(url);
    return;
  }
  // A stranger's reference is followed only to a module that has run here already
  // (the import is then a cache hit).
  if (trusted || isLoaded(url)) await importModule(url);
}

/**
 * A function as plain data (the state the serializer sends it by), for a message that
 * crosses to a thread without the serializer (thread_channel.ts's compact form). @internal
 */
export function functionToState(fn: Function): object {
  return reduceFunction(fn).state as object;
}

/** The function of `functionToState`'s state, rebuilt as the serializer's reader does. @internal */
export function functionFromState(s: unknown, trusted: boolean): Function {
  return rebuild('function', s, [], trusted, []) as Function;
}

function noFds(n: number): number[] {
  throw new TypeError(`message carries ${n} descriptor(s) but the channel cannot pass descriptors`);
}

// --- Moving buffers to threads ---

/** A value wrapped by `move()`. */
export class Moved<T = unknown> {
  constructor(readonly value: T) {}
}

/**
 * Move `value` (a Buffer, typed array, DataView or ArrayBuffer) to the thread it is sent
 * to, instead of copying it: piscina's `move()`, for a dummy Process's arguments, a
 * ThreadPool's task arguments and results. The memory changes hands without a copy and
 * the sender's `value` is left detached (length 0). Only a value that spans a whole
 * ArrayBuffer of its own is moved (a small Buffer from Node's shared pool, a slice or a
 * SharedArrayBuffer is copied), and only to a thread: to a process it is copied. Python's
 * threads share objects; Node's threads copy them, and this is how to avoid the copy.
 */
export function move<T extends ArrayBufferView | ArrayBuffer>(value: T): T {
  if (!(ArrayBuffer.isView(value) || value instanceof ArrayBuffer)) {
    throw new TypeError('move() takes a Buffer, a typed array, a DataView or an ArrayBuffer');
  }
  return new Moved(value) as unknown as T;
}

const viewTypes: Record<string, new (b: ArrayBuffer, offset: number, length: number) => ArrayBufferView> = {
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array, DataView: DataView as never,
};

/** How `v` (what `move()` wrapped) is moved to a thread, or null when it is copied (see move). @internal */
export function reduceMoved(v: unknown): Reduced | null {
  if (v instanceof ArrayBuffer) return v.byteLength > 0 ? { kind: 'moved', state: { type: 'ArrayBuffer' }, transfer: [v] } : null;
  const view = v as ArrayBufferView;
  const ab = view.buffer;
  if (!(ab instanceof ArrayBuffer) || view.byteOffset !== 0 || view.byteLength !== ab.byteLength || ab.byteLength === 0) return null;
  const type = Buffer.isBuffer(view) ? 'Buffer' : view.constructor.name;
  if (type !== 'Buffer' && !(type in viewTypes)) return null;
  const length = view instanceof DataView ? view.byteLength : (view as Uint8Array).length;
  return { kind: 'moved', state: { type, length }, transfer: [ab] };
}

registerKind('moved', (s: { type: string; length?: number }, _fds, _trusted, transferred) => {
  const ab = transferred[0];
  if (!(ab instanceof ArrayBuffer)) throw new TypeError('a moved buffer did not come with its message');
  if (s.type === 'ArrayBuffer') return ab;
  if (s.type === 'Buffer') return Buffer.from(ab, 0, s.length);
  const Ctor = viewTypes[s.type];
  if (!Ctor) throw new TypeError(`cannot rebuild a moved ${s.type}`);
  return new Ctor(ab, 0, s.length!);
});

// --- Errors ---

interface ErrorState { name: string; message: string; stack?: string; cause?: unknown; props: Record<string, unknown> }

function reduceError(e: Error): Reduced {
  const props: Record<string, unknown> = {};
  for (const k of Object.keys(e)) if (k !== 'name' && k !== 'message' && k !== 'stack' && k !== 'cause') props[k] = (e as any)[k];
  const state: ErrorState = { name: e.name ?? e.constructor?.name ?? 'Error', message: e.message, stack: e.stack, props };
  if ('cause' in e) state.cause = e.cause;
  return { kind: 'error', state };
}

registerKind('error', (s: ErrorState) => {
  if (s === null || typeof s !== 'object' || typeof s.name !== 'string' || typeof s.message !== 'string') throw notAMessage('bad error state');
  const cls = Object.hasOwn(errorClasses, s.name) ? errorClasses[s.name] : Error;
  const e = Object.create(cls.prototype) as Error;
  Object.defineProperty(e, 'message', { value: s.message, writable: true, configurable: true });
  if (s.stack !== undefined) Object.defineProperty(e, 'stack', { value: s.stack, writable: true, configurable: true });
  if (e.name !== s.name) Object.defineProperty(e, 'name', { value: s.name, writable: true, configurable: true });
  if ('cause' in s) Object.defineProperty(e, 'cause', { value: s.cause, writable: true, configurable: true });
  Object.assign(e, s.props);
  if (e instanceof PythonError && !Array.isArray((e as PythonError).args)) (e as PythonError).args = [s.message];
  return e;
});

// --- Functions ---

/**
 * A function on the wire: `url` when it is exported from that module (sent by reference),
 * `base` the module it comes from otherwise (relative `import()`s in its text resolve there).
 */
interface FunctionState { url?: string; base?: string; name: string; source: string }
const functionStates = new WeakMap<Function, FunctionState>();

const functionKey = (s: FunctionState): string => `${s.url}\0${s.name}\0${s.source}`;
/** Exported functions this process has sent: one coming back is the same function. */
const sentFunctions = new Map<string, WeakRef<Function>>();
/** The modules (importable URLs) of the exported functions this process has sent. */
const sentModules = new Set<string>();

/** The modules of the functions this process has sent, as import() takes them (the fork server loads them). @internal */
export function _sentModules(): ReadonlySet<string> {
  return sentModules;
}

// --- This program's main module ---
//
// A message from a child may hold a function exported by the main module while that module
// is still running its top level (awaiting that very message): importing it then would wait
// for ever. Its namespace is taken once the top level has finished; until then such a
// function is the one this process sent if it did, or a stand-in that calls the real export
// as soon as it exists.

let mainUrlCache: string | null | undefined;
function mainModuleUrl(): string | null {
  if (mainUrlCache !== undefined) return mainUrlCache;
  mainUrlCache = null;
  const entry = process.argv[1];
  if (entry && !process.argv.includes('--multiprocessing-fork')) {
    try {
      mainUrlCache = pathToFileURL(realpathSync(entry)).href;
    } catch {
      /* not a file: no main module to protect */
    }
  }
  return mainUrlCache;
}

/** Whether `url` (a module URL, or a CommonJS path, as a function's state holds) is the main module's. */
function isMainModule(url: string): boolean {
  const main = mainModuleUrl();
  return main !== null && (url === main || url === fileURLToPath(main));
}

let mainWatched = false;
/**
 * Take the main module's namespace once its top level has finished, without waiting here.
 * `url` is the main module as this process loaded it (so the import finds that instance).
 */
function watchMainModule(url: string): void {
  if (mainWatched) return;
  mainWatched = true;
  import(toImportable(url)).then((ns) => modules.set(url, ns as Record<string, unknown>), () => {});
}

/** Functions that the library sends to its workers, with the URL of the library module that exports each. */
const libraryFunctions = new WeakMap<Function, string>();

/**
 * Declare `fn` a function of the library's module `module` (such as 'pool_shared'), exported
 * there under its name, that the library sends to its workers. Its first send then needs
 * neither the inspector's lookup of its script nor, for the compiled library (whose modules
 * lib.js joins), a require() of lib.js to find which module exports it: Node reads and handles
 * the bundle's ~350 KB of source again for that (1.7-3.3 ms of CPU, once per process). @internal
 */
export function _libraryFunction(fn: Function, module: string): void {
  libraryFunctions.set(fn, libraryModuleUrl(module));
}

function reduceFunction(fn: Function): Reduced {
  let state = functionStates.get(fn);
  if (!state) {
    const source = Function.prototype.toString.call(fn);
    const url = libraryFunctions.get(fn) ?? libraryFileOf(fn, moduleOf(fn));
    const exported = url !== undefined && looksExported(url, fn.name);
    state = exported ? { url, name: fn.name, source } : { base: url, name: fn.name, source };
    if (/\{\s*\[native code\]\s*\}$/.test(source)) {
      throw new TypeError(
        `cannot send function '${fn.name || '<anonymous>'}': it has no source text (a built-in or bound function). ` +
          'Export a function from a module and pass that.',
      );
    }
    functionStates.set(fn, state);
    if (exported) {
      sentFunctions.set(functionKey(state), new WeakRef(fn));
      if (isModuleUrl(url)) sentModules.add(toImportable(url));
      if (isMainModule(url)) watchMainModule(url);
    }
  }
  return { kind: 'function', state };
}

/** The files that hold the compiled library's modules joined (scripts/bundle.mjs). */
const bundles = ['lib', 'lib_extra'].map((b) => new URL(`./${b}.js`, import.meta.url).href);

/**
 * The module file of `fn` as the receiver imports it: for a function of the compiled library,
 * whose modules are joined in lib.js (exported there as `<module>$<name>`), the file of its
 * module, which exports it under its own name; else `url`.
 */
function libraryFileOf(fn: Function, url: string | undefined): string | undefined {
  if (url === undefined || !bundles.includes(url)) return url;
  const ns = moduleSync(url);
  for (const key of Object.keys(ns ?? {})) {
    const at = key.indexOf('$');
    if (ns![key] === fn && at > 0 && key.slice(at + 1) === fn.name) return libraryModuleUrl(key.slice(0, at));
  }
  return url;
}

/** Imported modules by URL (filled by loadsAsync, or synchronously by require). */
const modules = new Map<string, Record<string, unknown>>();
const require = createRequire(import.meta.url);

function toImportable(url: string): string {
  return url.startsWith('/') ? pathToFileURL(url).href : url;
}

async function importModule(url: string): Promise<void> {
  if (isMainThread) {
    modules.set(url, (await import(toImportable(url))) as Record<string, unknown>);
    return;
  }
  threadImports++;
  try {
    modules.set(url, (await import(toImportable(url))) as Record<string, unknown>);
  } finally {
    threadImports--;
  }
}

/** Import a module of functions that messages will name (the fork server, for its children). @internal */
export const _importFunctionModule = importModule;

function moduleSync(url: string): Record<string, unknown> | undefined {
  let mod = modules.get(url);
  if (!mod) {
    if (!isMainThread) threadImports++;
    try {
      // Node >= 20.19 loads ES modules synchronously with require().
      mod = require(url.startsWith('file:') ? new URL(url).pathname : url) as Record<string, unknown>;
    } catch {
      return undefined;
    } finally {
      if (!isMainThread) threadImports--;
    }
    modules.set(url, mod);
  }
  return mod;
}

/** Set while the current process imports the modules of its target (Python's bootstrapping phase). */
let importingForChild = false;
export function _setImportingForChild(v: boolean): void {
  importingForChild = v;
}

/**
 * Imports under way in this thread (not the main thread) of modules that sent functions
 * come from. A thread runs such a module's top level again (Python's threads share the
 * program's modules and import nothing), so starting a process or pool from it is the
 * bootstrapping error, as in a spawned child: else a module that makes a ThreadPool when
 * imported would make one in each of its threads, and they in theirs, without end.
 */
let threadImports = 0;

/** Whether starting a process now is Python's bootstrapping error (see above). @internal */
export function bootstrapping(): boolean {
  return importingForChild || threadImports > 0;
}

/** The state of a sent function, checked: a message's bytes may be anything. */
function functionStateOrNull(s: unknown): FunctionState | null {
  const f = s as FunctionState | null;
  if (f === null || typeof f !== 'object' || typeof f.name !== 'string' || typeof f.source !== 'string') return null;
  if (f.url !== undefined && typeof f.url !== 'string') return null;
  if (f.base !== undefined && typeof f.base !== 'string') return null;
  return f;
}

function functionState(s: unknown): FunctionState {
  const f = functionStateOrNull(s);
  if (!f) throw notAMessage('bad function state');
  return f;
}

/** A module path or file: URL (what moduleOf reports), not a data:, node: or remote URL. */
function isModuleUrl(url: string): boolean {
  return url.startsWith('/') || url.startsWith('file:');
}

/** The module's export that `s` names (same source text), if `mod` has it. */
function exportOf(mod: Record<string, unknown>, s: FunctionState): Function | undefined {
  const byName = s.name ? mod[s.name] : undefined;
  if (typeof byName === 'function' && Function.prototype.toString.call(byName) === s.source) return byName;
  if (mod.default && typeof mod.default === 'function' && Function.prototype.toString.call(mod.default) === s.source) return mod.default as Function;
  for (const v of Object.values(mod)) {
    if (typeof v === 'function' && Function.prototype.toString.call(v) === s.source) return v;
  }
  return undefined;
}

/**
 * The function `s` refers to, looked up only in modules this process has loaded
 * already (imported by a message, or in require's cache): finding it runs nothing.
 */
function loadedExport(s: FunctionState): Function | undefined {
  if (!s.url || !isModuleUrl(s.url)) return undefined;
  let mod = modules.get(s.url);
  if (!mod) {
    const path = s.url.startsWith('file:') ? fileURLToPath(s.url) : s.url;
    mod = require.cache[path]?.exports as Record<string, unknown> | undefined;
  }
  return mod && typeof mod === 'object' ? exportOf(mod, s) : undefined;
}

/** Functions rebuilt by reference, and from source text (family only), by their state. */
const rebuiltFunctions = new Map<string, Function>();
const fromSourceFunctions = new Map<string, Function>();

registerKind('function', (st: unknown, _fds, trusted) => {
  const s = functionState(st);
  const key = functionKey(s);
  // A function this process sent comes back as itself.
  const sent = s.url ? sentFunctions.get(key)?.deref() : undefined;
  if (sent) return sent;
  if (!trusted) {
    // checkFromStranger found it already; this is the same lookup.
    const fn = rebuiltFunctions.get(key) ?? loadedExport(s);
    if (!fn) throw refused(`function '${s.name || '<anonymous>'}'`);
    return fn;
  }
  const cached = rebuiltFunctions.get(key) ?? fromSourceFunctions.get(key);
  if (cached) return cached;
  if (s.url && !modules.has(s.url) && isMainModule(s.url)) {
    // Not imported (see loadsAsync), nor required (which fails for a module that awaits).
    watchMainModule(s.url);
    return mainStandIn(s);
  }
  const mod = s.url && isModuleUrl(s.url) ? moduleSync(s.url) : undefined;
  let fn = mod ? exportOf(mod, s) : undefined;
  if (fn) {
    rebuiltFunctions.set(key, fn);
    return fn;
  }
  fn = fromSource(s);
  fromSourceFunctions.set(key, fn);
  return fn;
});

/**
 * A main-module function that arrived before the main module's top level finished: calls the
 * real export once it exists, else its source text rebuilt here.
 */
function mainStandIn(s: FunctionState): Function {
  let rebuilt: Function | undefined;
  const hint = `function '${s.name}' of the main module ${s.url} arrived while that module was still running its top level ` +
    '(an await), so it was rebuilt from its source text';
  const standIn = function (this: unknown, ...args: unknown[]) {
    const real = modules.get(s.url!)?.[s.name];
    if (typeof real === 'function') return real.apply(this, args);
    rebuilt ??= fromSource(s, hint, 'Call it after the top level has finished, or define it in another module.');
    return rebuilt.apply(this, args);
  };
  Object.defineProperty(standIn, 'name', { value: s.name });
  return standIn;
}

function exportHint(s: FunctionState): string {
  const where = s.url ? ` in ${s.url}` : '';
  return `function '${s.name || '<anonymous>'}'${where} is not exported from its module, so it was sent by its source text`;
}

/** `import('./x.js')` with a literal relative specifier, in a function's text. */
const RELATIVE_IMPORT = /\bimport\s*\(\s*(['"`])(\.\.?\/[^'"`]*)\1/g;

/**
 * Compile a function's text in the global scope. Indirect eval rather than vm.Script: its
 * code may use `import()` (vm needs an experimental flag for that). Relative specifiers
 * written as literals resolve against the function's own module, as they would there.
 */
function compileSource(s: FunctionState, code: string): unknown {
  const base = s.url ?? s.base;
  if (base !== undefined && isModuleUrl(base)) {
    const from = base.startsWith('/') ? pathToFileURL(base).href : base;
    code = code.replace(RELATIVE_IMPORT, (_m, _q: string, spec: string) => `import(${JSON.stringify(new URL(spec, from).href)}`);
  }
  return (0, eval)(`${code}\n//# sourceURL=${(s.name || 'anonymous').replace(/\s/g, '_')} (sent by source)`);
}

function fromSource(s: FunctionState, hint = exportHint(s), fix = 'Export the function from a module so that it is sent by reference.'): Function {
  let compiled: unknown;
  const attempts = [`(${s.source})`, `({ ${s.source} })[${JSON.stringify(s.name)}]`];
  for (const code of attempts) {
    try {
      compiled = compileSource(s, code);
      break;
    } catch {
      /* try the next form */
    }
  }
  if (typeof compiled !== 'function') {
    throw new TypeError(`cannot rebuild ${hint} and that text does not compile here. Export it from a module.`);
  }
  const inner = compiled as Function;
  const explain = (e: unknown): unknown => {
    if (e instanceof ReferenceError) {
      const err = new ReferenceError(
        `${e.message}: ${hint}, which loses the variables it closes over. ${fix}`,
      );
      err.stack = `${err.name}: ${err.message}\n${(e.stack ?? '').split('\n').slice(1).join('\n')}`;
      return err;
    }
    return e;
  };
  // Classes must stay constructible and keep their prototype for subclass re-creation.
  if (/^class\b/.test(s.source)) return inner;
  const wrapped = function (this: unknown, ...args: unknown[]) {
    try {
      const r = inner.apply(this, args);
      if (r && typeof (r as Promise<unknown>).then === 'function') return (r as Promise<unknown>).catch((e) => { throw explain(e); });
      return r;
    } catch (e) {
      throw explain(e);
    }
  };
  Object.defineProperty(wrapped, 'name', { value: s.name });
  return wrapped;
}
