// The results of Pool calls (Python's ApplyResult, MapResult, IMapIterator): the
// bookkeeping that does not depend on how tasks reach workers, shared by Pool (worker
// processes) and ThreadPool (worker threads). A pool hands each finished task to its
// job with `_set`; a job tells its pool when it is done with `_jobDone`.
import { inspect } from 'node:util';
import { TimeoutError, ValueError } from './errors.js';
import { error as logError } from './logging.js';
import { isPlainObject, optionalArgs } from './options.js';
import { timeoutArg, timeoutSeconds, type Timeout, type TimeoutOptions } from './timeouts.js';
/** The remote stack of an error thrown in a worker (Python's `RemoteTraceback`), its `cause`. */
export class RemoteTraceback extends Error {
  constructor(tb: string) {
    super(`\n"""\n${tb}"""`);
    this.name = 'RemoteTraceback';
  }
}


/** Python's `callback`: called in the parent with the result when a task succeeds. */
export type Callback<T> = ((value: T) => void) | null | undefined;
/** Python's `error_callback`: called in the parent with the error when a task fails. */
export type ErrorCallback = ((error: unknown) => void) | null | undefined;

/**
 * Task kinds: `fn(item)`, `fn(...item)`, one call whose arguments are `src` itself, one
 * call whose one argument is `src` (applyAsync's usual case: no array kept for it), or a
 * run of `fn(item)` tasks of one item each (an imap's chunks of one: one task object for
 * many, each item still its own task to the worker, answered and failed alone; the pool
 * splits a run across batches).
 */
export const PLAIN = 0;
export const STAR = 1;
export const APPLY = 2;
export const APPLY1 = 3;
export const EACH = 4;
export type Kind = typeof PLAIN | typeof STAR | typeof APPLY | typeof APPLY1 | typeof EACH;

// --- The optional arguments of the Pool's calls (Python's positional order, or options) ---

/** Options of `apply` and `applyAsync` (Python's `args`, `kwds`, `callback`, `error_callback`). */
export interface ApplyOptions<A extends unknown[] = unknown[], R = unknown> {
  /** Python's `args`: the arguments of the call (default none). */
  args?: A | Iterable<unknown>;
  /** Python's keyword arguments: not supported (JavaScript has none); only empty or absent. */
  kwds?: Record<string, never> | null;
  /** Python's `callback`: called with the result (`applyAsync` only). */
  callback?: Callback<R>;
  /** Python's `error_callback`: called with the error (`applyAsync` only). */
  errorCallback?: ErrorCallback;
}

/** Options of `mapAsync` and `starmapAsync`. */
export interface MapOptions<R = unknown> {
  /** Python's `chunksize`: items per task sent to a worker (by default Python's: about 4 chunks per worker). */
  chunksize?: number | null;
  /** Python's `callback`: called with the list of results. */
  callback?: Callback<R>;
  /** Python's `error_callback`: called with the first error. */
  errorCallback?: ErrorCallback;
}

/** Options of `map`, `starmap`, `imap`, `imapUnordered`. */
export interface ChunkOptions {
  /** Python's `chunksize`: items per task sent to a worker (`map`: about 4 chunks per worker by default; `imap`: 1). */
  chunksize?: number | null;
}

const APPLY_NAMES = ['args', 'kwds', 'callback', 'errorCallback'] as const;
const MAP_NAMES = ['chunksize', 'callback', 'errorCallback'] as const;

function checkCallbacks(o: { callback?: unknown; errorCallback?: unknown }): void {
  if (o.callback != null && typeof o.callback !== 'function') throw new TypeError('callback must be callable');
  if (o.errorCallback != null && typeof o.errorCallback !== 'function') throw new TypeError('errorCallback must be callable');
}

export function applyArgs(call: string, given: unknown[]): ApplyOptions<unknown[], any> {
  const o = optionalArgs<ApplyOptions<unknown[], any>>(call, APPLY_NAMES, given, ['kwds']);
  const k = o.kwds;
  if (k != null && !(isPlainObject(k) && Object.keys(k).length === 0)) {
    throw new TypeError(
      typeof k === 'function'
        ? `${call}(func, args, kwds, callback, errorCallback): the third argument is Python's kwds; pass callbacks in their places or as ${call}(func, args, { callback, errorCallback })`
        : `${call}(): kwds are not supported (JavaScript has no keyword arguments); pass args`,
    );
  }
  checkCallbacks(o);
  return o;
}

export function mapArgs(call: string, given: unknown[]): MapOptions<any> {
  const o = optionalArgs<MapOptions<any>>(call, MAP_NAMES, given);
  checkCallbacks(o);
  return o;
}

let jobCounter = 0;
/** How many results the last AsyncResult._settleCalls settled. */
let settled = 0;

/** How many results the last AsyncResult._settleCalls settled. @internal */
export function settledCalls(): number {
  return settled;
}

function timeoutMs(timeout: Timeout): number | null {
  const t = timeoutSeconds(timeout);
  return t === null ? null : t * 1000;
}

/**
 * An error from a worker, re-created as a real Error of the same class (name and message
 * kept) with the worker's stack under `cause`, as Python chains a RemoteTraceback.
 */
export function fromWorker(e: unknown): unknown {
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
  logError('error in a Pool result callback: %s', (e as Error)?.stack ?? String(e));
}

/** Waiters for something to change, woken all at once; nothing is allocated until one waits. */
export class Signal {
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

/** What the pool calls on a job when a task of it finishes. @internal */
export interface Job {
  /**
   * A task of the job finished. `ok`: its values are `data[offset, offset + count)`
   * (count: the task's number of items). Otherwise `data` is its error. For a run of
   * one-item tasks (EACH), the tasks `index, index + count)`.
   */
  _set(index: number, ok: boolean, data: unknown, offset: number, count: number): void;
}

/** What a job needs of its pool. @internal */
export interface JobPool {
  _submit(t: PendingTask): void;
  _jobDone(job: Job): void;
  _running(): boolean;
  _terminated(): boolean;
}

/** Where an AsyncResult is: not done, done with a value, done with an error. */
const PENDING = 0;
const OK = 1;
const FAILED = 2;

/** The result of `applyAsync` (Python's `ApplyResult`/`AsyncResult`). */
export class AsyncResult<T = unknown> implements Job {
  // An applyAsync's result is also the pool's task for its call (a PendingTask of kind
  // APPLY or APPLY1, whose job, index, start and count come from the prototype): one object
  // per call, rather than a result, a task and an array of arguments, and few fields, as
  // thousands may be pending at once (each scavenge copies them; promoted, they bring the
  // first full collection of a fresh process sooner). The call's function and arguments
  // are dropped when it is done. Every field is set by the constructor, in one order, and
  // none by a class field initializer: V8 runs (and compiles) those as a function of their
  // own, a second call per result.
  /** @internal */
  declare fn: Function | null;
  /** @internal */
  declare src: unknown;
  /** @internal */
  declare kind: Kind;
  /** @internal */
  declare readonly index: number;
  /** @internal */
  declare readonly start: number;
  /** @internal */
  declare readonly count: number;
  static {
    Object.defineProperties(this.prototype, { index: { value: 0 }, start: { value: 0 }, count: { value: 1 } });
  }
  /** PENDING, OK or FAILED. @internal */
  declare _state: number;
  /** @internal */
  declare _signal: Signal | null;
  /** The value, or the error. */
  declare protected _value: unknown;
  /** The callbacks, if any. @internal */
  declare _callbacks: [Callback<T>, ErrorCallback] | null;
  /** @internal */
  declare readonly _job: number;
  declare protected _pool: JobPool | null;

  /** @internal */
  constructor(pool: JobPool | null, callback: Callback<T>, errorCallback: ErrorCallback, fn: Function | null = null, src: unknown = undefined, kind: Kind = APPLY) {
    this.fn = fn;
    this.src = src;
    this.kind = kind;
    this._state = PENDING;
    this._signal = null;
    this._value = undefined;
    this._callbacks = callback || errorCallback ? [callback, errorCallback] : null;
    (this as { _job: number })._job = ++jobCounter;
    this._pool = pool;
  }

  static {
    // V8 tracks what each field has held (a number, an object of one class, null...) and
    // widens that in place when something else is stored, throwing away the code compiled
    // for the narrower kind: at an applyAsync's first result (a number where there was
    // undefined, null where there was a pool), after thousands of calls were compiled for.
    // One result made here gives the fields their wide kinds before any code runs on them.
    const r = new AsyncResult<unknown>(null, undefined, undefined, checkCallbacks, 0);
    r.src = undefined;
    r._value = 0;
    r._signal = new Signal();
    r._callbacks = [null, null];
    r._pool = {} as JobPool;
    r.fn = r._signal = r._callbacks = r._pool = null;
    r._state = OK;
    jobCounter--;
  }

  /** The task's job: itself. @internal */
  get job(): Job {
    return this;
  }

  /** Whether the call has completed. */
  ready(): boolean {
    return this._state !== PENDING;
  }

  /** Whether the call completed without throwing; ValueError before it is ready. */
  successful(): boolean {
    if (this._state === PENDING) throw new ValueError(`${this} not ready`);
    return this._state === OK;
  }

  /** Wait until the result is available or `timeout` seconds pass (`wait(1)`, `wait({ timeout: 1 })`). */
  async wait(timeout?: Timeout | TimeoutOptions): Promise<void> {
    const ms = timeoutMs(timeoutArg(timeout, 'wait'));
    if (this._state === PENDING) await (this._signal ??= new Signal()).wait(ms);
  }

  /**
   * The result (`get(1)`, `get({ timeout: 1 })`); throws the task's error; TimeoutError if
   * not ready within `timeout` seconds.
   */
  get(timeout?: Timeout | TimeoutOptions): Promise<T> {
    // A result already there, the usual case of a loop over many: no async function.
    if (this._state !== PENDING && timeout === undefined) return this._state === OK ? Promise.resolve(this._value as T) : Promise.reject(this._value);
    return this.#get(timeout);
  }

  async #get(timeout?: Timeout | TimeoutOptions): Promise<T> {
    const ms = timeoutMs(timeoutArg(timeout, 'get'));
    if (this._state === PENDING) await (this._signal ??= new Signal()).wait(ms);
    if (this._state === PENDING) throw new TimeoutError();
    if (this._state === OK) return this._value as T;
    throw this._value;
  }

  _set(_index: number, ok: boolean, data: unknown, offset: number, _count?: number): void {
    this._finish(ok, ok ? (data as ArrayLike<unknown>)[offset] : data);
  }

  /**
   * The pool's way for a worker's answers to applyAsync calls, all successful: the results
   * `calls[from + i]` get `values[i]` and leave `calls`, from `i` up to `n` or to a result
   * that someone waits on or that has a callback, whose index is returned (`n`: none) for
   * the pool to settle the general way (_settleOne). How many it settled is left in
   * `settled`: the pool counts those jobs done itself (see Pool#settleCalls). One small loop
   * for a batch, with nothing called per call: thousands of calls cost the JIT one compile,
   * not one per function of the general way; and nothing in it is met for the first time
   * after it is compiled (which would throw the code away: the way out for a waited-on
   * result is a jump, its call is the pool's).
   * @internal
   */
  static _settleCalls(calls: unknown[], from: number, i: number, n: number, values: ArrayLike<unknown>): number {
    let done = 0;
    for (; i < n; i++) {
      const r = calls[from + i] as AsyncResult;
      if (r._state === PENDING) {
        if (r._signal !== null || r._callbacks !== null) break;
        r.fn = null;
        r.src = undefined;
        r._pool = null;
        r._value = values[i];
        r._state = OK;
        done++;
      }
      calls[from + i] = undefined;
    }
    settled = done;
    return i;
  }

  /** The result `r` of a call that succeeded with `value`, the general way (see _settleCalls). @internal */
  static _settleOne(r: AsyncResult, value: unknown): void {
    r._finish(true, value);
  }

  protected _finish(ok: boolean, value: unknown): void {
    if (this._state !== PENDING) return;
    this.fn = null;
    this.src = undefined;
    this._value = value;
    if (this._callbacks !== null) this.#callback(ok, value);
    this._state = ok ? OK : FAILED;
    if (this._signal !== null) {
      this._signal.fire();
      this._signal = null;
    }
    const pool = this._pool;
    if (pool !== null) {
      this._pool = null;
      pool._jobDone(this);
    }
  }

  #callback(ok: boolean, value: unknown): void {
    const [callback, errorCallback] = this._callbacks!;
    try {
      if (ok && callback) callback(value as T);
      if (!ok && errorCallback) errorCallback(value);
    } catch (e) {
      reportCallbackError(e);
    }
  }

  /** Python's `repr()`: `<AsyncResult job=3 pending>`. */
  toString(): string {
    return `<${this.constructor.name} job=${this._job} ${this._state === OK ? 'successful' : this._state === FAILED ? 'failed' : 'pending'}>`;
  }
  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

/** Python's name for the class of `applyAsync`'s result. */
export const ApplyResult = AsyncResult;

/** The result of `mapAsync`/`starmapAsync`. */
export class MapResult<T = unknown> extends AsyncResult<T[]> {
  /** The results, written in place as chunks arrive (no per-chunk arrays to join); made by the first. */
  #out: T[] | null = null;
  /** `#out` was made ahead (see `_prepare`), as an array of doubles, and nothing is in it yet. */
  #ahead = false;
  #length: number;
  #chunksize: number;
  #left: number;

  /** @internal */
  constructor(pool: JobPool, chunksize: number, length: number, callback: Callback<T[]>, errorCallback: ErrorCallback) {
    super(pool, callback, errorCallback);
    this.#length = length;
    this.#chunksize = chunksize;
    this.#left = length === 0 ? 0 : Math.ceil(length / chunksize);
    if (this.#left === 0) queueMicrotask(() => this._finish(true, []));
  }

  /**
   * Make the array of results now, while the pool waits for the first chunk (its memory
   * is written whole, some 0.4 ms for 100k items), as one of doubles: the map's items were
   * numbers, so its results most likely come packed. @internal
   */
  _prepare(): void {
    if (this.#out !== null || this.ready()) return;
    this.#out = resultArray<T>(this.#length, true);
    this.#ahead = true;
  }

  override _set(index: number, ok: boolean, data: unknown, offset: number, count: number): void {
    if (this.ready()) return;
    if (!ok) {
      this._finish(false, data);
      return;
    }
    let out = this.#out;
    if (out === null || (this.#ahead && !(data instanceof Float64Array))) {
      // (Not numbers after all: an array of doubles would turn every one into an object
      // when the first that is not a number lands.)
      out = this.#out = resultArray<T>(this.#length, data instanceof Float64Array);
    }
    this.#ahead = false;
    copyInto(out, index * this.#chunksize, data as ArrayLike<T>, offset, count);
    if (--this.#left === 0) this._finish(true, out);
  }
}

/**
 * The array of `length` results. Numbers (results that came packed) go in an array of
 * doubles from the start: one made for small integers would be copied whole (8 bytes an
 * item) by V8 when the first result that is not one lands.
 */
function resultArray<T>(length: number, doubles: boolean): T[] {
  if (!doubles) return new Array<T>(length);
  // (A literal of a double, lengthened, is an array of doubles of that length: V8 gives
  // `new Array(n)` the elements of small integers.)
  const out = [0.5];
  out.length = length;
  return out as T[];
}

/** `out[at, at + count) = data[offset, offset + count)` (data: an array, or packed numbers). */
function copyInto<T>(out: T[], at: number, data: ArrayLike<T>, offset: number, count: number): void {
  for (let i = 0; i < count; i++) out[at + i] = data[offset + i];
}

let copyWarm = false;

/**
 * Run copyInto over packed numbers of its own (16k items, ~0.3 ms in the interpreter), once
 * per process, for V8 to compile it: a large map's results are copied by it, and its first
 * run of some 10k items in the interpreter (while V8 compiles it on a thread of its own)
 * cost 1-3 ms of the parent's time between a map's results and its answer. The pool calls
 * this after a map's first batches are sent: it waits for the workers then. @internal
 */
export function warmResultCopy(): void {
  if (copyWarm) return;
  copyWarm = true;
  const n = 256;
  const data = new Float64Array(n);
  const out = resultArray<number>(n, true);
  for (let k = 0; k < 64; k++) copyInto(out, 0, data, 0, n);
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
  /** @internal */
  readonly _job: number;
  #pool: JobPool | null;
  #ordered: boolean;
  /** Ordered: chunks that came before their turn, by chunk index. */
  #early = new Map<number, ArrayLike<unknown> | Failure>();
  #nextIndex = 0;
  /** Items ready for the consumer, in the order it gets them (a failed chunk: a Failure). */
  #ready: unknown[] = [];
  #head = 0;
  /** Chunks (with chunks of one item: items) sent, and answered. */
  #chunksSent = 0;
  #received = 0;
  #itemsSent = 0;
  #itemsTaken = 0;
  /** Most items sent ahead of the consumer; the feeder resumes at half. */
  #window = Infinity;
  #inputDone = false;
  #inputError: { e: unknown } | null = null;
  #stopped = false;
  /**
   * Chunks of more than one item: a failed chunk ends the iteration, as Python's
   * `imap(..., chunksize > 1)` (a generator over chunks, closed by the exception).
   * With chunks of one item, `next()` goes on after a failed item (Python's IMapIterator).
   */
  #endOnFailure = false;
  /**
   * Chunks of one item: a task may be a run of them (EACH), and what `_set` gets for it
   * stands for `count` chunks from `index`.
   */
  #each = false;
  #ended = false;
  #changed = new Signal();
  #feederWake: (() => void) | null = null;

  /** @internal */
  constructor(pool: JobPool, ordered: boolean) {
    this.#pool = pool;
    this.#ordered = ordered;
    this._job = ++jobCounter;
  }

  #submit(pool: JobPool, fn: Function, src: unknown[], start: number, count: number, kind: Kind): void {
    this.#itemsSent += count;
    const index = this.#chunksSent;
    this.#chunksSent += kind === EACH ? count : 1;
    pool._submit({ job: this, index, fn, src, start, count, kind });
  }

  /** Whether the feeder must wait for the consumer. */
  #full(pool: JobPool): boolean {
    return this.#itemsSent - this.#itemsTaken >= this.#window && !this.#stopped && pool._running();
  }

  /** Feed the pool from `iterable`, at most `window` items ahead of the consumer. @internal */
  async _feed(iterable: Iterable<unknown> | AsyncIterable<unknown>, fn: Function, chunksize: number, star: boolean, window: number): Promise<void> {
    const pool = this.#pool!;
    this.#window = window;
    this.#endOnFailure = chunksize > 1;
    this.#each = chunksize === 1;
    try {
      if (Array.isArray(iterable) && !star) {
        // An array is chunked in place: tasks refer to its items, nothing is copied.
        for (let i = 0; i < iterable.length;) {
          while (this.#full(pool)) await new Promise<void>((r) => (this.#feederWake = r));
          if (this.#stopped || pool._terminated()) break;
          // As many chunks as the window has room for, in one go (nothing changes meanwhile);
          // chunks of one item as one run.
          let room = pool._running() ? this.#window - (this.#itemsSent - this.#itemsTaken) : Infinity;
          do {
            const count = Math.min(this.#each ? room : chunksize, iterable.length - i);
            this.#submit(pool, fn, iterable, i, count, this.#each ? EACH : PLAIN);
            i += count;
            room -= count;
          } while (room > 0 && i < iterable.length);
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
    // Chunks of one item: `count` of them from `index` (a run's part, or a one-item task).
    const span = this.#each ? count : 1;
    this.#received += span;
    if (this.#ended) {
      // The consumer is done: results still coming are dropped.
    } else if (!this.#ordered && ok) {
      // imapUnordered's usual case, without the calls below.
      const ready = this.#ready;
      const d = data as ArrayLike<unknown>;
      for (let i = offset, end = offset + count; i < end; i++) ready.push(d[i]);
    } else if (!this.#ordered || index === this.#nextIndex) {
      this.#push(ok ? (data as ArrayLike<unknown>) : new Failure(data, count), offset, count);
      if (this.#ordered) {
        this.#nextIndex += span;
        for (let e = this.#early.get(this.#nextIndex); e !== undefined; e = this.#early.get(this.#nextIndex)) {
          this.#early.delete(this.#nextIndex);
          const n = e instanceof Failure ? e.count : e.length;
          this.#nextIndex += this.#each ? n : 1;
          this.#push(e, 0, n);
        }
      }
    } else {
      this.#early.set(index, ok ? Array.prototype.slice.call(data as ArrayLike<unknown>, offset, offset + count) : new Failure(data, count));
    }
    if (this.#inputDone && this.#received >= this.#chunksSent) this.#finish();
    this.#changed.fire();
  }

  #push(values: ArrayLike<unknown> | Failure, offset: number, count: number): void {
    const ready = this.#ready;
    if (values instanceof Failure) {
      // A run of one-item chunks that failed together (its worker died): each fails alone.
      if (this.#each && values.count > 1) for (let i = 0; i < values.count; i++) ready.push(new Failure(values.error, 1));
      else ready.push(values);
    } else for (let i = offset, end = offset + count; i < end; i++) ready.push(values[i]);
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

  /** The next result; TimeoutError if none within `timeout` (or `{ timeout }`) seconds (null: no limit). */
  next(timeout?: Timeout | TimeoutOptions): Promise<IteratorResult<T>> {
    if (this.#ended) return Promise.resolve({ done: true, value: undefined });
    const got = this.#take();
    // An item already there, the usual case of a loop over many: no async function.
    if (got !== NONE && got !== END && !(got instanceof Failure) && timeout === undefined) return Promise.resolve({ done: false, value: got as T });
    return this.#next(got, timeout);
  }

  async #next(got: unknown, timeout?: Timeout | TimeoutOptions): Promise<IteratorResult<T>> {
    if (got === NONE) {
      const t = timeoutSeconds(timeoutArg(timeout, 'next'));
      const deadline = t === null ? null : Date.now() + t * 1000;
      for (;;) {
        const left = deadline === null ? null : deadline - Date.now();
        if (left !== null && left <= 0) throw new TimeoutError();
        await this.#changed.wait(left);
        got = this.#take();
        if (got !== NONE) break;
      }
    }
    if (got === END) return { done: true, value: undefined };
    if (got instanceof Failure) {
      if (this.#endOnFailure) this.#end();
      throw got.error;
    }
    return { done: false, value: got as T };
  }

  /** The iteration is over for the consumer: buffered results are dropped and no more input is taken. */
  #end(): void {
    this.#ended = true;
    this.#ready = [];
    this.#head = 0;
    this.#early.clear();
    this.#stopped = true;
    this._wake();
  }

  /** Stop early (a `break` out of `for await`): no more input is taken. */
  async return(): Promise<IteratorResult<T>> {
    this.#stopped = true;
    this._wake();
    return { done: true, value: undefined };
  }

  /** `for await (const r of pool.imap(...))`, Python's `for r in pool.imap(...)`. */
  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Python's `repr()`: `<IMapIterator job=4>`. */
  toString(): string {
    return `<${this.#ordered ? 'IMapIterator' : 'IMapUnorderedIterator'} job=${this._job}>`;
  }
  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

/** Python's name for the iterator of `imapUnordered`. */
export const IMapUnorderedIterator = IMapIterator;

/**
 * One task: `count` calls of `fn` on `src[start, start + count)` (APPLY: one call on the
 * arguments `src`; APPLY1: one call on the argument `src`; EACH: `count` tasks of one call,
 * the job's `index, index + count)`). An applyAsync's task is its AsyncResult.
 */
export interface PendingTask {
  job: Job;
  index: number;
  fn: Function | null;
  src: unknown;
  start: number;
  count: number;
  kind: Kind;
}
