// Process pools (Python's multiprocessing.pool): Pool, AsyncResult, MapResult,
// IMapIterator. Each worker is a daemonic process with its own duplex Connection to
// the pool: the pool sends task batches and keeps a few in flight per worker; the
// worker sends result batches back, in the order of its tasks (see pool_worker.ts for
// the flat message layout). A worker's death is seen as EOF on its connection: the
// tasks it held fail with an error naming it, and a fresh worker takes its place.
import { inspect } from 'node:util';
import { Pipe, type Connection } from './connection.js';
import { DefaultContext, defaultContext, type BaseContext } from './context.js';
import { MaybeEncodingError, nativeCall, ProcessError, TimeoutError, ValueError, WorkerLostError } from './errors.js';
import { native } from './native.js';
import type { BaseProcess } from './process.js';
import { dumps } from './reduction.js';
import { getLogger } from './util.js';
import { INIT_FAILED, PACK_MIN, poolWorker, readDoubles, type Batch, type Results } from './pool_worker.js';

export { MaybeEncodingError, WorkerLostError };

/** The remote stack of an error thrown in a worker (Python's `RemoteTraceback`), its `cause`. */
export class RemoteTraceback extends Error {
  constructor(tb: string) {
    super(`\n"""\n${tb}"""`);
    this.name = 'RemoteTraceback';
  }
}


export interface PoolOptions {
  processes?: number | null;
  initializer?: Function | null;
  initargs?: unknown[];
  maxtasksperchild?: number | null;
  context?: BaseContext | null;
}

type Callback<T> = ((value: T) => void) | null | undefined;
type ErrorCallback = ((error: unknown) => void) | null | undefined;

const RUN = 0;
const CLOSE = 1;
const TERMINATE = 2;
const STATE_NAMES = ['RUN', 'CLOSE', 'TERMINATE'];

/** Batches in flight per worker (one running, the rest queued in its socket). */
const IN_FLIGHT = 3;
/** Most tasks in one batch. */
const MAX_BATCH = 256;
/**
 * Fewer pending calls than this wait for a worker to become idle rather than queue behind
 * a busy one: small batches would cost a message each for nothing (the busy worker runs
 * them no sooner), and a larger batch forms meanwhile.
 */
const MIN_QUEUED_CALLS = 32;
/**
 * The send buffer asked for on each worker's socket (the kernel grants twice this, within
 * net.core.wmem_max). Sends block when it is full; batches waiting unread in a busy
 * worker's socket are kept to a third of what was granted (the rest covers the kernel's
 * per-write overhead), so a send to a busy worker never blocks and the pool cannot wait
 * on a worker that waits on the pool to read its results. A batch beyond that budget
 * waits for an idle worker. The default buffer (208 KiB) would not even hold one chunk
 * of a large map behind the one running, leaving the worker idle between chunks.
 */
const SEND_BUFFER = 1 << 20;
/** From this many items, numbers are copied with builtins rather than item by item. */
const BULK_MIN = 64;
/**
 * Items the builtins may copy in this process. They need no compiling, which is what a
 * short run of a fresh process pays for a loop (milliseconds of a JIT thread), but cost
 * some 15 ns an item more than a compiled loop: past this many items, loops take over.
 */
let bulkLeft = 1 << 18;

function useBulk(n: number): boolean {
  if (n < BULK_MIN || bulkLeft <= 0) return false;
  bulkLeft -= n;
  return true;
}
/** Task kinds: `fn(item)`, `fn(...item)`, or one call whose arguments are `src` itself. */
const PLAIN = 0;
const STAR = 1;
const APPLY = 2;
type Kind = typeof PLAIN | typeof STAR | typeof APPLY;
/** Seconds a worker has to exit after SIGTERM before SIGKILL. */
const KILL_GRACE = 1;

let jobCounter = 0;
let fnCounter = 0;
const fnIds = new WeakMap<Function, number>();
let lastFn: Function | null = null;
let lastFnId = 0;

function fnIdOf(fn: Function): number {
  if (fn === lastFn) return lastFnId;
  let id = fnIds.get(fn);
  if (id === undefined) fnIds.set(fn, (id = ++fnCounter));
  lastFn = fn;
  lastFnId = id;
  return id;
}

function timeoutMs(timeout: number | null | undefined): number | null {
  return timeout == null ? null : Math.max(0, timeout) * 1000;
}

/**
 * An error from a worker, re-created as a real Error of the same class (name and message
 * kept) with the worker's stack under `cause`, as Python chains a RemoteTraceback.
 */
function fromWorker(e: unknown): unknown {
  if (!(e instanceof Error)) return e;
  const cls = (Object.getPrototypeOf(e)?.constructor ?? Error) as new (...a: unknown[]) => Error;
  const err = Reflect.construct(Error, [e.message], cls) as Error;
  for (const k of Object.keys(e)) (err as unknown as Record<string, unknown>)[k] = (e as unknown as Record<string, unknown>)[k];
  if (err.name !== e.name) Object.defineProperty(err, 'name', { value: e.name, writable: true, configurable: true });
  const tb = e.stack ?? `${e.name}: ${e.message}`;
  const remote = new RemoteTraceback(tb);
  const prior = (e as { cause?: unknown }).cause;
  if (prior !== undefined) Object.defineProperty(remote, 'cause', { value: prior, configurable: true, writable: true });
  Object.defineProperty(err, 'cause', { value: remote, writable: true, configurable: true });
  return err;
}

function reportCallbackError(e: unknown): void {
  getLogger().error(`error in a Pool result callback: ${(e as Error)?.stack ?? String(e)}`);
}

/** Waiters for something to change, woken all at once; nothing is allocated until one waits. */
class Signal {
  #waiters: Array<() => void> | null = null;

  fire(): void {
    const w = this.#waiters;
    if (w === null) return;
    this.#waiters = null;
    for (const f of w) f();
  }

  /** Resolves at the next `fire()`, or after `ms` milliseconds (null: no limit). */
  wait(ms: number | null): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const f = (): void => {
        if (timer) clearTimeout(timer);
        resolve();
      };
      (this.#waiters ??= []).push(f);
      if (ms !== null) {
        timer = setTimeout(() => {
          const i = this.#waiters?.indexOf(f) ?? -1;
          if (i >= 0) this.#waiters!.splice(i, 1);
          resolve();
        }, ms);
      }
    });
  }
}

interface Job {
  /**
   * A task of the job finished. `ok`: its values are `data[offset, offset + count)`
   * (count: the task's number of items). Otherwise `data` is its error.
   */
  _set(index: number, ok: boolean, data: unknown, offset: number, count: number): void;
}

/** The result of `applyAsync` (Python's `ApplyResult`/`AsyncResult`). */
export class AsyncResult<T = unknown> implements Job {
  #done = false;
  #signal: Signal | null = null;
  protected _ok = false;
  protected _value: unknown;
  readonly _job: number;

  constructor(protected _pool: Pool | null, private _callback: Callback<T>, private _errorCallback: ErrorCallback) {
    this._job = ++jobCounter;
  }

  /** Whether the call has completed. */
  ready(): boolean {
    return this.#done;
  }

  /** Whether the call completed without throwing; ValueError before it is ready. */
  successful(): boolean {
    if (!this.#done) throw new ValueError(`${this} not ready`);
    return this._ok;
  }

  /** Wait until the result is available or `timeout` seconds pass. */
  async wait(timeout?: number | null): Promise<void> {
    if (!this.#done) await (this.#signal ??= new Signal()).wait(timeoutMs(timeout));
  }

  /** The result; throws the task's error; TimeoutError if not ready within `timeout` seconds. */
  async get(timeout?: number | null): Promise<T> {
    if (!this.#done) await (this.#signal ??= new Signal()).wait(timeoutMs(timeout));
    if (!this.#done) throw new TimeoutError();
    if (this._ok) return this._value as T;
    throw this._value;
  }

  _set(_index: number, ok: boolean, data: unknown, offset: number, _count?: number): void {
    this._finish(ok, ok ? (data as ArrayLike<unknown>)[offset] : data);
  }

  protected _finish(ok: boolean, value: unknown): void {
    if (this.#done) return;
    this._ok = ok;
    this._value = value;
    try {
      if (ok && this._callback) this._callback(value as T);
      if (!ok && this._errorCallback) this._errorCallback(value);
    } catch (e) {
      reportCallbackError(e);
    }
    this.#done = true;
    this.#signal?.fire();
    this.#signal = null;
    this._pool?._jobDone(this);
    this._pool = null;
  }

  toString(): string {
    return `<${this.constructor.name} job=${this._job} ${this.ready() ? (this._ok ? 'successful' : 'failed') : 'pending'}>`;
  }
  [inspect.custom](): string {
    return this.toString();
  }
}

/** Python's name for the class of `applyAsync`'s result. */
export const ApplyResult = AsyncResult;

/** The result of `mapAsync`/`starmapAsync`. */
export class MapResult<T = unknown> extends AsyncResult<T[]> {
  /** The results, written in place as chunks arrive (no per-chunk arrays to join). */
  #out: T[];
  #chunksize: number;
  #left: number;

  constructor(pool: Pool, chunksize: number, length: number, callback: Callback<T[]>, errorCallback: ErrorCallback) {
    super(pool, callback, errorCallback);
    this.#out = new Array<T>(length);
    this.#chunksize = chunksize;
    this.#left = length === 0 ? 0 : Math.ceil(length / chunksize);
    if (this.#left === 0) queueMicrotask(() => this._finish(true, []));
  }

  override _set(index: number, ok: boolean, data: unknown, offset: number, count: number): void {
    if (this.ready()) return;
    if (!ok) {
      this._finish(false, data);
      return;
    }
    copyInto(this.#out, index * this.#chunksize, data as ArrayLike<T>, offset, count);
    if (--this.#left === 0) this._finish(true, this.#out);
  }
}

/** `out[at, at + count) = data[offset, offset + count)` (data: an array, or packed numbers). */
function copyInto<T>(out: T[], at: number, data: ArrayLike<T>, offset: number, count: number): void {
  for (let i = 0; i < count; i++) out[at + i] = data[offset + i];
}

/** A failed chunk in an imap's buffer: its error, and how many items it stands for. */
class Failure {
  constructor(readonly error: unknown, readonly count: number) {}
}
/** What `#take` returns when nothing is ready, and at the end. */
const NONE = Symbol('none');
const END = Symbol('end');

/**
 * The iterator of `imap` (ordered) and `imapUnordered`: an async iterable whose
 * `next(timeout)` throws TimeoutError when no result comes in time. The input is
 * consumed lazily, with a bounded number of items ahead of the consumer.
 */
export class IMapIterator<T = unknown> implements Job, AsyncIterableIterator<T> {
  readonly _job: number;
  #pool: Pool | null;
  #ordered: boolean;
  /** Ordered: chunks that came before their turn, by chunk index. */
  #early = new Map<number, ArrayLike<unknown> | Failure>();
  #nextIndex = 0;
  /** Items ready for the consumer, in the order it gets them (a failed chunk: a Failure). */
  #ready: unknown[] = [];
  #head = 0;
  #chunksSent = 0;
  #received = 0;
  #itemsSent = 0;
  #itemsTaken = 0;
  /** Most items sent ahead of the consumer; the feeder resumes at half. */
  #window = Infinity;
  #inputDone = false;
  #inputError: { e: unknown } | null = null;
  #stopped = false;
  #changed = new Signal();
  #feederWake: (() => void) | null = null;

  constructor(pool: Pool, ordered: boolean) {
    this.#pool = pool;
    this.#ordered = ordered;
    this._job = ++jobCounter;
  }

  #submit(pool: Pool, fn: Function, src: unknown[], start: number, count: number, kind: Kind): void {
    this.#itemsSent += count;
    pool._submit({ job: this, index: this.#chunksSent++, fn, src, start, count, kind });
  }

  /** Whether the feeder must wait for the consumer. */
  #full(pool: Pool): boolean {
    return this.#itemsSent - this.#itemsTaken >= this.#window && !this.#stopped && pool._running();
  }

  /** Feed the pool from `iterable`, at most `window` items ahead of the consumer. @internal */
  async _feed(iterable: Iterable<unknown> | AsyncIterable<unknown>, fn: Function, chunksize: number, star: boolean, window: number): Promise<void> {
    const pool = this.#pool!;
    this.#window = window;
    try {
      if (Array.isArray(iterable) && !star) {
        // An array is chunked in place: tasks refer to its items, nothing is copied.
        for (let i = 0; i < iterable.length;) {
          while (this.#full(pool)) await new Promise<void>((r) => (this.#feederWake = r));
          if (this.#stopped || pool._terminated()) break;
          const count = Math.min(chunksize, iterable.length - i);
          this.#submit(pool, fn, iterable, i, count, PLAIN);
          i += count;
        }
      } else {
        const asyncIt = typeof (iterable as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function';
        const it: Iterator<unknown> | AsyncIterator<unknown> = asyncIt
          ? (iterable as AsyncIterable<unknown>)[Symbol.asyncIterator]()
          : (iterable as Iterable<unknown>)[Symbol.iterator]();
        const kind = star ? STAR : PLAIN;
        let chunk: unknown[] = [];
        for (;;) {
          while (this.#full(pool)) await new Promise<void>((r) => (this.#feederWake = r));
          if (this.#stopped || pool._terminated()) {
            if (typeof it.return === 'function') await it.return();
            break;
          }
          const r = asyncIt ? await (it as AsyncIterator<unknown>).next() : (it as Iterator<unknown>).next();
          if (r.done) break;
          chunk.push(star ? [...(r.value as Iterable<unknown>)] : r.value);
          if (chunk.length >= chunksize) {
            this.#submit(pool, fn, chunk, 0, chunk.length, kind);
            chunk = [];
          }
        }
        if (chunk.length) this.#submit(pool, fn, chunk, 0, chunk.length, kind);
      }
    } catch (e) {
      this.#inputError = { e };
    }
    this.#inputDone = true;
    this.#check();
  }

  _set(index: number, ok: boolean, data: unknown, offset: number, count: number): void {
    this.#received++;
    if (!this.#ordered || index === this.#nextIndex) {
      this.#push(ok ? (data as ArrayLike<unknown>) : new Failure(data, count), offset, count);
      if (this.#ordered) {
        this.#nextIndex++;
        for (let e = this.#early.get(this.#nextIndex); e !== undefined; e = this.#early.get(this.#nextIndex)) {
          this.#early.delete(this.#nextIndex++);
          this.#push(e, 0, e instanceof Failure ? e.count : e.length);
        }
      }
    } else {
      this.#early.set(index, ok ? Array.prototype.slice.call(data as ArrayLike<unknown>, offset, offset + count) : new Failure(data, count));
    }
    this.#check();
  }

  #push(values: ArrayLike<unknown> | Failure, offset: number, count: number): void {
    const ready = this.#ready;
    if (values instanceof Failure) ready.push(values);
    else for (let i = offset, end = offset + count; i < end; i++) ready.push(values[i]);
  }

  /** Wake the feeder (the pool's state changed). @internal */
  _wake(): void {
    const wake = this.#feederWake;
    this.#feederWake = null;
    wake?.();
  }

  #check(): void {
    if (this.#inputDone && this.#received >= this.#chunksSent) this.#finish();
    this.#changed.fire();
  }

  /** The next ready item (a Failure for a failed chunk), END, or NONE when none is ready yet. */
  #take(): unknown {
    const ready = this.#ready;
    if (this.#head < ready.length) {
      const v = ready[this.#head];
      ready[this.#head++] = undefined;
      if (this.#head === ready.length) {
        ready.length = 0;
        this.#head = 0;
      } else if (this.#head >= 4096 && this.#head * 2 >= ready.length) {
        this.#ready = ready.slice(this.#head);
        this.#head = 0;
      }
      this.#itemsTaken += v instanceof Failure ? v.count : 1;
      if (this.#feederWake !== null && this.#itemsSent - this.#itemsTaken <= this.#window / 2) this._wake();
      return v;
    }
    if (this.#inputDone && this.#received >= this.#chunksSent) {
      if (this.#inputError) {
        const e = this.#inputError;
        this.#inputError = null;
        return new Failure(e.e, 0);
      }
      return END;
    }
    return NONE;
  }

  #finish(): void {
    if (this.#pool) {
      this.#pool._jobDone(this);
      this.#pool = null;
    }
  }

  /** The next result; TimeoutError if none within `timeout` seconds (null: no limit). */
  async next(timeout?: number | null): Promise<IteratorResult<T>> {
    let got = this.#take();
    if (got === NONE) {
      const deadline = timeout == null ? null : Date.now() + Math.max(0, timeout) * 1000;
      for (;;) {
        const left = deadline === null ? null : deadline - Date.now();
        if (left !== null && left <= 0) throw new TimeoutError();
        await this.#changed.wait(left);
        got = this.#take();
        if (got !== NONE) break;
      }
    }
    if (got === END) return { done: true, value: undefined };
    if (got instanceof Failure) throw got.error;
    return { done: false, value: got as T };
  }

  /** Stop early (a `break` out of `for await`): no more input is taken. */
  async return(): Promise<IteratorResult<T>> {
    this.#stopped = true;
    this._wake();
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  toString(): string {
    return `<${this.#ordered ? 'IMapIterator' : 'IMapUnorderedIterator'} job=${this._job}>`;
  }
  [inspect.custom](): string {
    return this.toString();
  }
}

/** Python's name for the iterator of `imapUnordered`. */
export const IMapUnorderedIterator = IMapIterator;

/** One task: `count` calls of `fn` on `src[start, start + count)` (APPLY: one call on `src`). */
interface PendingTask {
  job: Job;
  index: number;
  fn: Function;
  src: unknown[];
  start: number;
  count: number;
  kind: Kind;
}

interface Worker {
  proc: BaseProcess;
  conn: Connection;
  name: string;
  /** Tasks sent and not answered, oldest first from `head` (results come back in order). */
  held: PendingTask[];
  head: number;
  /** Tasks left in each batch in flight, oldest first. */
  inflight: number[];
  /** Bytes of each batch in flight. */
  inflightBytes: number[];
  /** Bytes of batches that may wait unread in its socket (see SEND_BUFFER). */
  budget: number;
  /** Function ids this worker already has. */
  fns: Set<number>;
  /** Tasks sent to it (for maxtasksperchild). */
  assigned: number;
  reading: boolean;
  gone: boolean;
}

/** Tasks a worker holds. */
function heldCount(w: Worker): number {
  return w.held.length - w.head;
}

/** The tasks a worker holds, taken from it. */
function takeHeld(w: Worker): PendingTask[] {
  const held = w.held.slice(w.head);
  w.held = [];
  w.head = 0;
  w.inflight.length = 0;
  w.inflightBytes.length = 0;
  return held;
}

/** The number of calls in a task. */
function callsOf(t: PendingTask): number {
  return t.kind === APPLY ? 1 : t.count;
}

/** Append the calls of `t` to a batch's items (see pool_worker.ts for the layout). */
function flatten(t: PendingTask, items: unknown[]): void {
  const src = t.src;
  if (t.kind === PLAIN) {
    for (let i = t.start, end = t.start + t.count; i < end; i++) items.push(src[i]);
  } else if (t.kind === APPLY) {
    items.push(src.length);
    for (let j = 0; j < src.length; j++) items.push(src[j]);
  } else {
    for (let i = t.start, end = t.start + t.count; i < end; i++) {
      const a = src[i] as unknown[];
      items.push(a.length);
      for (let j = 0; j < a.length; j++) items.push(a[j]);
    }
  }
}

/** The number of item slots the calls of `t` take in a batch. */
function slotsOf(t: PendingTask): number {
  if (t.kind === PLAIN) return t.count;
  if (t.kind === APPLY) return 1 + t.src.length;
  let n = 0;
  for (let i = t.start, end = t.start + t.count; i < end; i++) n += 1 + (t.src[i] as unknown[]).length;
  return n;
}

/**
 * Write `src[start, end)` into `f` from `p`; -1 as soon as one is not a number, else the
 * next position. (One small loop per kind of task: the JIT compiles only those that run hot.)
 */
function fillPlain(src: unknown[], start: number, end: number, f: Float64Array, p: number): number {
  const n = end - start;
  if (useBulk(n)) {
    // Builtins only (see bulkLeft). Number.isFinite does not coerce; holes, which every()
    // skips, become NaN in the Float64Array (NaN and infinities themselves fail the test
    // and take the general path).
    const s = start === 0 && end === src.length ? src : src.slice(start, end);
    if (!s.every(Number.isFinite)) return -1;
    f.set(s as number[], p);
    if (f.subarray(p, p + n).includes(NaN)) return -1;
    return p + n;
  }
  for (let i = start; i < end; i++) {
    const v = src[i];
    if (typeof v !== 'number') return -1;
    f[p++] = v;
  }
  return p;
}

/** As fillPlain, for argument lists: each as its length, then its items. */
function fillArgs(src: unknown[], start: number, end: number, f: Float64Array, p: number): number {
  for (let i = start; i < end; i++) {
    const a = src[i] as unknown[];
    f[p++] = a.length;
    for (let j = 0; j < a.length; j++) {
      const v = a[j];
      if (typeof v !== 'number') return -1;
      f[p++] = v;
    }
  }
  return p;
}

/** Write the calls of `tasks` into `f`; false as soon as an argument is not a number. */
function fillNumbers(tasks: PendingTask[], f: Float64Array): boolean {
  let p = 0;
  for (let k = 0; k < tasks.length && p >= 0; k++) {
    const t = tasks[k];
    if (t.kind === PLAIN) p = fillPlain(t.src, t.start, t.start + t.count, f, p);
    else if (t.kind === STAR) p = fillArgs(t.src, t.start, t.start + t.count, f, p);
    else {
      // One call: its arguments (few; no builtins for so few).
      const src = t.src;
      f[p++] = src.length;
      for (let j = 0; j < src.length; j++) {
        const v = src[j];
        if (typeof v !== 'number') return false;
        f[p++] = v;
      }
    }
  }
  return p >= 0;
}

/**
 * Batches' numbers are packed here, each in a region of its own until it is sent; then
 * the space is reused (fresh memory is dear: a page fault per 4 KiB written first).
 */
class BatchScratch {
  // Only the pages written to become memory: a large buffer costs nothing more, and
  // growing one would mean writing fresh pages again.
  #buf = new Float64Array(1 << 19);
  #used = 0;

  take(n: number): Float64Array {
    if (this.#used + n > this.#buf.length) {
      // Regions already taken stay on the old buffer.
      this.#buf = new Float64Array(Math.max(n, this.#buf.length * 2));
      this.#used = 0;
    }
    const region = this.#buf.subarray(this.#used, this.#used + n);
    this.#used += n;
    return region;
  }

  reset(): void {
    this.#used = 0;
  }
}

const itemScratch = new BatchScratch();
/** A batch's task table (see pool_worker.ts), as a typed array: copied, not walked, by the serializer. */
const metaScratch = new Float64Array(2 * MAX_BATCH);

/** The first argument of a task's calls (to guess whether a batch is all numbers). */
function firstArg(t: PendingTask): unknown {
  if (t.kind === PLAIN) return t.src[t.start];
  if (t.kind === APPLY) return t.src.length ? t.src[0] : 0;
  const a = t.src[t.start] as unknown[];
  return a.length ? a[0] : 0;
}

/**
 * The items of a batch: packed numbers when they all are (in scratch space: serialize
 * them before the next batch), else an array.
 */
function packItems(tasks: PendingTask[], slots: number): unknown[] | Float64Array {
  if (slots >= PACK_MIN && typeof firstArg(tasks[0]) === 'number') {
    const f = itemScratch.take(slots);
    if (fillNumbers(tasks, f)) return f;
  }
  const items: unknown[] = [];
  for (const t of tasks) flatten(t, items);
  return items;
}

function checkFn(func: unknown): void {
  if (typeof func !== 'function') throw new TypeError(`${inspect(func)} is not callable`);
}

function parseOptions(args: unknown[]): PoolOptions {
  const [first] = args;
  if (args.length === 1 && first !== null && typeof first === 'object') return first as PoolOptions;
  const [processes, initializer, initargs, maxtasksperchild, context] = args as [number, Function, unknown[], number, BaseContext];
  return { processes, initializer, initargs, maxtasksperchild, context };
}

/**
 * A pool of worker processes: `new Pool(4)` or
 * `new Pool({ processes, initializer, initargs, maxtasksperchild, context })`.
 */
export class Pool {
  #state = RUN;
  #ctx: BaseContext;
  #processes: number;
  #initializer: Function | null;
  #initargs: unknown[];
  #maxtasks: number | null;
  #workers = new Set<Worker>();
  /** Scratch of #release/#settle: the tasks one results message answers. */
  #released: PendingTask[] = [];
  #queue: PendingTask[] = [];
  #head = 0;
  /** Calls in the pending tasks. */
  #queuedCalls = 0;
  /** Jobs not finished; the imaps among them. */
  #jobCount = 0;
  #imaps = new Set<IMapIterator<any>>();
  #dispatchScheduled = false;
  /** Batches packed by the current dispatch, sent at its end. */
  #outbox: Array<{ w: Worker; batch: Batch; data: Buffer; fds: number[]; raw: Float64Array | null }> = [];
  #initError: unknown = null;
  #jobsChanged = new Signal();
  /** Serialized bytes per item of recent batches: sizes batches for busy workers. */
  #bytesPerItem = 16;

  constructor(processes?: number | null, initializer?: Function | null, initargs?: unknown[], maxtasksperchild?: number | null, context?: BaseContext | null);
  constructor(options?: PoolOptions);
  constructor(...args: unknown[]) {
    const o = parseOptions(args);
    let ctx = o.context ?? defaultContext;
    if (ctx instanceof DefaultContext) ctx = ctx.getContext();
    this.#ctx = ctx;
    const processes = o.processes ?? ctx.cpuCount();
    if (typeof processes !== 'number' || !Number.isInteger(processes)) throw new TypeError('processes must be an integer');
    if (processes < 1) throw new ValueError('Number of processes must be at least 1');
    const mt = o.maxtasksperchild ?? null;
    if (mt !== null && (typeof mt !== 'number' || !Number.isInteger(mt) || mt <= 0)) {
      throw new ValueError('maxtasksperchild must be a positive int or None');
    }
    if (o.initializer != null && typeof o.initializer !== 'function') throw new TypeError('initializer must be a callable');
    this.#processes = processes;
    this.#initializer = o.initializer ?? null;
    this.#initargs = [...(o.initargs ?? [])];
    this.#maxtasks = mt;
    try {
      for (let i = 0; i < processes; i++) this.#startWorker();
    } catch (e) {
      this.terminate();
      throw e;
    }
  }

  get _processes(): number {
    return this.#processes;
  }

  /** The worker processes (Python's `_pool`). */
  get _pool(): BaseProcess[] {
    return [...this.#workers].map((w) => w.proc);
  }

  /** @internal */
  _running(): boolean {
    return this.#state === RUN;
  }
  /** @internal */
  _terminated(): boolean {
    return this.#state === TERMINATE;
  }

  #startWorker(): Worker {
    const [mine, theirs] = Pipe(true);
    const Proc = (this.#ctx as unknown as { Process: new (o: object) => BaseProcess }).Process;
    let proc: BaseProcess;
    try {
      proc = new Proc({ target: poolWorker, args: [theirs, this.#initializer, this.#initargs, this.#maxtasks] });
      proc.name = proc.name.replace('Process', 'PoolWorker');
      proc.daemon = true;
      proc.start();
    } catch (e) {
      mine.close();
      throw e;
    } finally {
      theirs.close();
    }
    const granted = nativeCall(() => native.setSendBuffer(mine.fileno(), SEND_BUFFER));
    const w: Worker = {
      proc, conn: mine, name: proc.name, held: [], head: 0, inflight: [], inflightBytes: [], budget: Math.floor(granted / 3),
      fns: new Set(), assigned: 0, reading: false, gone: false,
    };
    this.#workers.add(w);
    return w;
  }

  #checkRunning(): void {
    if (this.#state !== RUN) throw new ValueError('Pool not running');
  }


  /** @internal */
  _submit(t: PendingTask): void {
    if (this.#initError !== null || this.#state === TERMINATE) {
      t.job._set(t.index, false, this.#initError ?? new ProcessError('the pool was terminated before this task completed'), 0, t.count);
      return;
    }
    this.#queue.push(t);
    this.#queuedCalls += t.kind === APPLY ? 1 : t.count;
    if (!this.#dispatchScheduled) {
      this.#dispatchScheduled = true;
      queueMicrotask(() => {
        this.#dispatchScheduled = false;
        this.#dispatch();
      });
    }
  }

  #addJob(job: Job): void {
    this.#jobCount++;
    if (job instanceof IMapIterator) this.#imaps.add(job);
  }

  /** @internal */
  _jobDone(job: Job): void {
    this.#jobCount--;
    if (job instanceof IMapIterator) this.#imaps.delete(job);
    this.#jobsChanged.fire();
    if (this.#state === CLOSE) this.#maybeStopWorkers();
  }

  #pending(): number {
    return this.#queue.length - this.#head;
  }

  #dispatch(): void {
    if (this.#state === TERMINATE) return;
    itemScratch.reset();
    let live = 0;
    let held = 0;
    for (const w of this.#workers) {
      if (w.gone) continue;
      live++;
      held += heldCount(w);
    }
    // Batches of an even share of all the work not done, so that the workers stay busy
    // and finish together.
    const size = Math.min(MAX_BATCH, Math.max(1, Math.ceil((this.#pending() + held) / ((live || 1) * IN_FLIGHT))));
    // Idle workers first, then a second and third batch for each. The batches of a round
    // are all packed before any is sent: a worker woken by a batch takes a core, which
    // the pool would otherwise have to share while it packs the next ones.
    for (let level = 0; level < IN_FLIGHT; level++) {
      const least = level === 0 ? 1 : MIN_QUEUED_CALLS;
      for (const w of this.#workers) {
        if (this.#pending() === 0 || this.#queuedCalls < least) break;
        if (w.gone || w.inflight.length !== level) continue;
        this.#sendBatch(w, level, size);
      }
      this.#flush();
    }
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    if (this.#state === CLOSE) this.#maybeStopWorkers();
  }

  #sendBatch(w: Worker, level: number, n: number): void {
    if (this.#maxtasks !== null) n = Math.min(n, this.#maxtasks - w.assigned);
    if (n <= 0) return;
    // A busy worker takes what fits its budget (estimated from earlier batches).
    let budget = Infinity;
    if (level > 0) {
      budget = w.budget;
      for (let i = 1; i < w.inflightBytes.length; i++) budget -= w.inflightBytes[i];
      if (budget <= 0) return;
    }
    const perItem = this.#bytesPerItem;
    const defs: Array<[number, Function]> = [];
    const meta = metaScratch;
    const taken: PendingTask[] = [];
    let estimate = 0;
    let slots = 0;
    let known = -1;
    const queue = this.#queue;
    for (let i = 0; i < n && this.#head < queue.length; i++) {
      const t = queue[this.#head];
      const apply = t.kind === APPLY;
      const tslots = apply ? t.src.length + 1 : t.kind === PLAIN ? t.count : slotsOf(t);
      estimate += tslots * perItem;
      if (estimate > budget && taken.length > 0) break;
      if (estimate > budget) return;
      queue[this.#head++] = undefined as unknown as PendingTask;
      const calls = apply ? 1 : t.count;
      this.#queuedCalls -= calls;
      const id = fnIdOf(t.fn);
      if (id !== known) {
        if (!w.fns.has(id) && !defs.some((d) => d[0] === id)) defs.push([id, t.fn]);
        known = id;
      }
      meta[2 * taken.length] = id * 2 + (t.kind === PLAIN ? 0 : 1);
      meta[2 * taken.length + 1] = calls;
      slots += tslots;
      taken.push(t);
    }
    const items = packItems(taken, slots);
    // Numbers go as a frame of raw doubles after the batch (see pool_worker.ts).
    const raw = items instanceof Float64Array ? items : null;
    // (The serializer copies meta out of its scratch space at once.)
    const batch: Batch = [defs.length ? defs : null, meta.subarray(0, 2 * taken.length), raw !== null ? raw.length : (items as unknown[])];
    let data: Buffer;
    let fds: number[];
    try {
      const d = dumps(batch);
      ({ data, fds } = d);
      // With descriptors this serialization only measures the batch: it is serialized
      // again when sent (see #flush), which takes its own counts.
      d.undo?.();
    } catch (e) {
      // Something in the tasks cannot be sent: find which, fail those, send the rest.
      const ok: PendingTask[] = [];
      for (const t of taken) {
        try {
          const its: unknown[] = [];
          flatten(t, its);
          dumps([t.fn, its]).undo?.();
          ok.push(t);
        } catch (err) {
          t.job._set(t.index, false, err, 0, t.count);
        }
      }
      if (ok.length === taken.length) {
        // Each can be sent alone but not all together: they fail rather than vanish.
        for (const t of taken) t.job._set(t.index, false, e, 0, t.count);
        return;
      }
      for (const t of ok) {
        this.#queue.push(t);
        this.#queuedCalls += callsOf(t);
      }
      return;
    }
    const bytes = data.length + (raw !== null ? raw.byteLength : 0);
    if (slots > 0) this.#bytesPerItem = (perItem + bytes / slots) / 2;
    if (bytes > budget) {
      // Only idle workers take big batches: put them back.
      this.#putBack(taken);
      return;
    }
    for (const [id] of defs) w.fns.add(id);
    for (const t of taken) w.held.push(t);
    w.assigned += taken.length;
    w.inflight.push(taken.length);
    w.inflightBytes.push(bytes);
    // With descriptors the batch is serialized again when sent: it needs its own meta.
    if (fds.length) batch[1] = batch[1].slice();
    this.#outbox.push({ w, batch, data, fds, raw });
  }

  /** Send the batches packed so far. */
  #flush(): void {
    const outbox = this.#outbox;
    if (outbox.length === 0) return;
    this.#outbox = [];
    for (const { w, batch, data, fds, raw } of outbox) {
      try {
        if (fds.length) w.conn.send(batch);
        else w.conn.sendBytes(data);
        if (raw !== null) w.conn.sendBytes(raw);
      } catch {
        // The worker is gone: its reader sees EOF and fails what it held.
      }
      if (!w.reading) void this.#read(w);
    }
    itemScratch.reset();
  }

  /** Return tasks just taken from the queue to its head. */
  #putBack(taken: PendingTask[]): void {
    this.#head -= taken.length;
    for (let i = 0; i < taken.length; i++) {
      this.#queue[this.#head + i] = taken[i];
      this.#queuedCalls += callsOf(taken[i]);
    }
  }

  /** Read results from `w` while it holds tasks. */
  async #read(w: Worker): Promise<void> {
    if (w.reading) return;
    w.reading = true;
    try {
      while (heldCount(w) > 0 && !w.gone) {
        let msg: Results;
        try {
          msg = await w.conn.recv();
          if (typeof msg[2] === 'number') msg[2] = readDoubles(await w.conn.recvBytes(), msg[2]);
        } catch (e) {
          if (!w.gone) await this.#lost(w);
          return;
        }
        const done = this.#release(w, msg);
        if (heldCount(w) === 0) {
          w.held.length = 0;
          w.head = 0;
          w.inflight.length = 0;
          w.inflightBytes.length = 0;
        }
        if (this.#maxtasks !== null && w.assigned >= this.#maxtasks && heldCount(w) === 0) this.#retire(w);
        // The worker gets its next batch before the results are handed out: it computes
        // while this process turns them into arrays and runs callbacks.
        this.#dispatch();
        this.#settle(done, msg);
      }
    } finally {
      w.reading = false;
    }
  }

  /** Hand the results of `w`'s oldest tasks to their jobs. */
  /** The tasks `msg` answers, taken off the worker's books (in `released`, reused). */
  #release(w: Worker, msg: Results): number {
    const n = msg[0];
    if (n === INIT_FAILED) {
      this.#initFailed((msg[2] as unknown[])[0]);
      return 0;
    }
    const held = w.held;
    const done = this.#released;
    let k = 0;
    for (; k < n; k++) {
      if (w.head >= held.length) break; // failed already (the pool was terminated)
      done[k] = held[w.head];
      held[w.head++] = undefined as unknown as PendingTask;
      if (w.inflight.length && --w.inflight[0] <= 0) {
        w.inflight.shift();
        w.inflightBytes.shift();
      }
    }
    if (w.head > 1024 && w.head * 2 > held.length) {
      w.held = held.slice(w.head);
      w.head = 0;
    }
    return k;
  }

  /** Hand the results of `msg` to the jobs of the `count` tasks `#release` took. */
  #settle(count: number, msg: Results): void {
    const failed = msg[1];
    const values = msg[2] as ArrayLike<unknown>;
    const done = this.#released;
    let pos = 0;
    let f = 0;
    for (let k = 0; k < count; k++) {
      const t = done[k];
      done[k] = undefined as unknown as PendingTask;
      if (failed !== null && failed[f] === k) {
        f++;
        t.job._set(t.index, false, fromWorker(values[pos++]), 0, t.count);
      } else {
        const c = t.kind === APPLY ? 1 : t.count;
        t.job._set(t.index, true, values, pos, c);
        pos += c;
      }
    }
  }


  #initFailed(err: unknown): void {
    if (this.#initError !== null) return;
    const e = new ProcessError('the pool initializer failed in a worker');
    Object.defineProperty(e, 'cause', { value: fromWorker(err), configurable: true, writable: true });
    this.#initError = e;
    this.#failAll(e);
  }

  #failAll(e: unknown): void {
    const pending = this.#queue.slice(this.#head);
    this.#queue = [];
    this.#head = 0;
    this.#queuedCalls = 0;
    for (const w of this.#workers) for (const t of takeHeld(w)) pending.push(t);
    for (const t of pending) t.job._set(t.index, false, e, 0, t.count);
    for (const job of [...this.#imaps]) job._wake();
  }

  /** A worker that reached maxtasksperchild exits by itself: replace it. */
  #retire(w: Worker): void {
    w.gone = true;
    this.#workers.delete(w);
    w.conn.close();
    void w.proc.join(KILL_GRACE).then(() => {
      if (w.proc.exitcode === null) w.proc.kill();
    });
    if (this.#state === RUN || (this.#state === CLOSE && this.#pending() > 0)) this.#startWorker();
  }

  /** EOF from a worker that was not done: fail what it held, replace it. */
  async #lost(w: Worker): Promise<void> {
    if (w.gone) return;
    w.gone = true;
    this.#workers.delete(w);
    w.conn.close();
    await w.proc.join(KILL_GRACE);
    if (w.proc.exitcode === null) {
      w.proc.kill();
      await w.proc.join(KILL_GRACE);
    }
    if (this.#initError !== null) return;
    const code = w.proc.exitcode;
    const held = takeHeld(w);
    if (held.length) {
      const err = new WorkerLostError(`worker ${w.name} (pid ${w.proc.pid}) died with exit code ${code} while running this task`);
      for (const t of held) t.job._set(t.index, false, err, 0, t.count);
    }
    if (this.#state === RUN || (this.#state === CLOSE && this.#pending() > 0)) this.#startWorker();
    this.#dispatch();
  }

  // --- Submitting work ---

  /** Call `func(...args)` in a worker and wait for its result. */
  apply<A extends unknown[], R>(func: (...a: A) => R, args: A | [] = []): Promise<Awaited<R>> {
    return this.applyAsync(func, args).get();
  }

  /** Call `func(...args)` in a worker; returns an AsyncResult. */
  applyAsync<A extends unknown[], R>(func: (...a: A) => R, args: A | [] = [], callback?: Callback<Awaited<R>>, errorCallback?: ErrorCallback): AsyncResult<Awaited<R>> {
    if (this.#state !== RUN) this.#checkRunning();
    if (typeof func !== 'function') checkFn(func);
    const a = Array.isArray(args) ? args.slice() : [...(args as Iterable<unknown>)];
    const r = new AsyncResult<Awaited<R>>(this, callback, errorCallback);
    this.#jobCount++;
    this._submit({ job: r, index: 0, fn: func, src: a, start: 0, count: 1, kind: APPLY });
    return r;
  }

  /** Python's default chunksize for `len` items. */
  #defaultChunksize(len: number): number {
    if (len === 0) return 0;
    const d = this.#workers.size * 4 || this.#processes * 4;
    return Math.floor(len / d) + (len % d ? 1 : 0);
  }

  #mapAsync(func: Function, items: unknown[], chunksize: number | null | undefined, star: boolean, callback: Callback<any>, errorCallback: ErrorCallback): MapResult<any> {
    let cs = chunksize ?? this.#defaultChunksize(items.length);
    if (chunksize != null && (!Number.isInteger(chunksize) || chunksize < 1)) throw new ValueError(`Chunksize must be 1+, not ${chunksize}`);
    if (cs < 1) cs = 1;
    // Star items become argument arrays now (a non-iterable throws here).
    const src = star && !items.every(Array.isArray) ? items.map((a) => (Array.isArray(a) ? a : [...(a as Iterable<unknown>)])) : items;
    const r = new MapResult(this, cs, src.length, callback, errorCallback);
    this.#addJob(r);
    // Chunks refer to the items in place: nothing is copied until a batch is packed, so the
    // first batch leaves before the rest are looked at.
    for (let i = 0, c = 0; i < src.length; i += cs, c++) {
      this._submit({ job: r, index: c, fn: func, src, start: i, count: Math.min(cs, src.length - i), kind: star ? STAR : PLAIN });
    }
    return r;
  }

  async #collect(iterable: Iterable<unknown> | AsyncIterable<unknown>): Promise<unknown[]> {
    if (Array.isArray(iterable)) return iterable;
    if (typeof (iterable as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
      const out: unknown[] = [];
      for await (const x of iterable as AsyncIterable<unknown>) out.push(x);
      return out;
    }
    if (iterable == null || typeof (iterable as Iterable<unknown>)[Symbol.iterator] !== 'function') {
      throw new TypeError(`${inspect(iterable)} is not iterable`);
    }
    return [...(iterable as Iterable<unknown>)];
  }

  #syncItems(iterable: Iterable<unknown>): unknown[] {
    if (Array.isArray(iterable)) return iterable;
    if (iterable == null || typeof (iterable as Iterable<unknown>)[Symbol.iterator] !== 'function') {
      throw new TypeError(`${inspect(iterable)} is not iterable (mapAsync takes a sync iterable; map also takes async ones)`);
    }
    return [...iterable];
  }

  /** A parallel `map`: resolves to all results in order; rejects with the first error. */
  async map<T, R>(func: (x: T) => R, iterable: Iterable<T> | AsyncIterable<T>, chunksize?: number | null): Promise<Awaited<R>[]> {
    this.#checkRunning();
    checkFn(func);
    const items = await this.#collect(iterable);
    return this.#mapAsync(func, items, chunksize, false, null, null).get() as Promise<Awaited<R>[]>;
  }

  /** As `map`, returning a MapResult at once. */
  mapAsync<T, R>(func: (x: T) => R, iterable: Iterable<T>, chunksize?: number | null, callback?: Callback<Awaited<R>[]>, errorCallback?: ErrorCallback): MapResult<Awaited<R>> {
    this.#checkRunning();
    checkFn(func);
    return this.#mapAsync(func, this.#syncItems(iterable), chunksize, false, callback, errorCallback);
  }

  /** `map` where each item is an iterable of arguments. */
  async starmap<A extends unknown[], R>(func: (...a: A) => R, iterable: Iterable<A> | AsyncIterable<A>, chunksize?: number | null): Promise<Awaited<R>[]> {
    this.#checkRunning();
    checkFn(func);
    const items = await this.#collect(iterable);
    return this.#mapAsync(func, items, chunksize, true, null, null).get() as Promise<Awaited<R>[]>;
  }

  starmapAsync<A extends unknown[], R>(func: (...a: A) => R, iterable: Iterable<A>, chunksize?: number | null, callback?: Callback<Awaited<R>[]>, errorCallback?: ErrorCallback): MapResult<Awaited<R>> {
    this.#checkRunning();
    checkFn(func);
    return this.#mapAsync(func, this.#syncItems(iterable), chunksize, true, callback, errorCallback);
  }

  #imap<T, R>(func: Function, iterable: Iterable<T> | AsyncIterable<T>, chunksize: number | null | undefined, ordered: boolean): IMapIterator<R> {
    this.#checkRunning();
    checkFn(func);
    const cs = chunksize ?? 1;
    if (!Number.isInteger(cs) || cs < 1) throw new ValueError(`Chunksize must be 1+, not ${cs}`);
    if (iterable == null || (typeof (iterable as Iterable<T>)[Symbol.iterator] !== 'function' && typeof (iterable as AsyncIterable<T>)[Symbol.asyncIterator] !== 'function')) {
      throw new TypeError(`${inspect(iterable)} is not iterable`);
    }
    const it = new IMapIterator<R>(this, ordered);
    this.#addJob(it);
    // Items ahead of the consumer: enough for full batches in flight to every worker,
    // and at least 64 chunks.
    const window = Math.max(64 * cs, this.#processes * IN_FLIGHT * MAX_BATCH);
    void it._feed(iterable, func, cs, false, window);
    return it;
  }

  /** A lazy `map`: an async iterator of results in order. */
  imap<T, R>(func: (x: T) => R, iterable: Iterable<T> | AsyncIterable<T>, chunksize?: number | null): IMapIterator<Awaited<R>> {
    return this.#imap(func, iterable, chunksize, true);
  }

  /** As `imap`, results in the order they finish. */
  imapUnordered<T, R>(func: (x: T) => R, iterable: Iterable<T> | AsyncIterable<T>, chunksize?: number | null): IMapIterator<Awaited<R>> {
    return this.#imap(func, iterable, chunksize, false);
  }

  // --- Lifecycle ---

  /** No more tasks; the workers exit once all submitted work is done. */
  close(): void {
    if (this.#state === RUN) {
      this.#state = CLOSE;
      // Unconsumed imaps finish feeding, as Python's task handler does.
      for (const job of [...this.#imaps]) job._wake();
      this.#maybeStopWorkers();
    }
  }

  #maybeStopWorkers(): void {
    if (this.#state !== CLOSE || this.#pending() > 0 || this.#jobCount > 0) return;
    for (const w of this.#workers) {
      if (heldCount(w) > 0) return;
    }
    for (const w of this.#workers) {
      if (w.gone) continue;
      try {
        w.conn.send(null);
      } catch {
        /* already gone */
      }
    }
  }

  /** Stop the workers at once; outstanding work fails. */
  terminate(): void {
    if (this.#state === TERMINATE) return;
    this.#state = TERMINATE;
    for (const w of this.#workers) {
      w.gone = true;
      try {
        w.proc.terminate();
      } catch {
        /* closed */
      }
    }
    this.#failAll(new ProcessError('the pool was terminated before this task completed'));
    for (const w of this.#workers) w.conn.close();
  }

  /** Wait for the workers to exit; call `close()` or `terminate()` first. */
  async join(): Promise<void> {
    if (this.#state === RUN) throw new ValueError('Pool is still running');
    if (this.#state === CLOSE) {
      // Wait for the work to finish; the last result stops the workers.
      for (const job of [...this.#imaps]) job._wake();
      while (this.#jobCount > 0 || this.#pending() > 0) await this.#jobsChanged.wait(null);
      this.#maybeStopWorkers();
    }
    for (;;) {
      const ws = [...this.#workers];
      if (ws.length === 0) break;
      await Promise.all(ws.map(async (w) => {
        await w.proc.join(this.#state === TERMINATE ? KILL_GRACE : null);
        if (w.proc.exitcode === null) {
          w.proc.kill();
          await w.proc.join();
        }
        this.#workers.delete(w);
        if (!w.conn.closed) w.conn.close();
      }));
    }
  }

  /** As Python's `__exit__`: terminate, then wait for the workers. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.terminate();
    await this.join();
  }

  toString(): string {
    return `<${this.constructor.name} state=${STATE_NAMES[this.#state]} pool_size=${this.#workers.size}>`;
  }
  [inspect.custom](): string {
    return this.toString();
  }
}
