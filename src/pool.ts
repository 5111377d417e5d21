// Process pools (Python's multiprocessing.pool): Pool, AsyncResult, MapResult,
// IMapIterator. Each worker is a daemonic process with its own duplex Connection to
// the pool: the pool sends task batches and keeps a few in flight per worker; the
// worker sends result batches back. A worker's death is seen as EOF on its connection:
// the tasks it held fail with an error naming it, and a fresh worker takes its place.
import { inspect } from 'node:util';
import { Pipe, type Connection } from './connection.js';
import { DefaultContext, defaultContext, type BaseContext } from './context.js';
import { ProcessError, TimeoutError, ValueError, registerErrorClass } from './errors.js';
import type { BaseProcess } from './process.js';
import { dumps } from './reduction.js';
import { getLogger } from './util.js';
import { INIT_FAILED, MaybeEncodingError, poolWorker, type Batch, type Result, type Task } from './pool_worker.js';

export { MaybeEncodingError };

/** The remote stack of an error thrown in a worker (Python's `RemoteTraceback`), its `cause`. */
export class RemoteTraceback extends Error {
  constructor(tb: string) {
    super(`\n"""\n${tb}"""`);
    this.name = 'RemoteTraceback';
  }
}

/** A worker died (killed, exited, out of memory) while holding this task. */
export class WorkerLostError extends ProcessError {}
registerErrorClass(WorkerLostError);

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
/** A batch larger than this goes only to an idle worker (sends block; no deadlock). */
const SMALL_BATCH_BYTES = 32 * 1024;
/** Seconds a worker has to exit after SIGTERM before SIGKILL. */
const KILL_GRACE = 1;

let jobCounter = 0;
let fnCounter = 0;
const fnIds = new WeakMap<Function, number>();

function fnIdOf(fn: Function): number {
  let id = fnIds.get(fn);
  if (id === undefined) fnIds.set(fn, (id = ++fnCounter));
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

/** Waiting for a settled flag, with an optional timeout. */
class Settle {
  done = false;
  #waiters: Array<() => void> = [];
  fire(): void {
    this.done = true;
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }
  wait(timeout?: number | null): Promise<boolean> {
    if (this.done) return Promise.resolve(true);
    const ms = timeoutMs(timeout);
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const f = () => {
        if (timer) clearTimeout(timer);
        resolve(true);
      };
      this.#waiters.push(f);
      if (ms !== null) {
        timer = setTimeout(() => {
          const i = this.#waiters.indexOf(f);
          if (i >= 0) this.#waiters.splice(i, 1);
          resolve(this.done);
        }, ms);
      }
    });
  }
}

interface Job {
  /** A chunk of the job finished: values of its items, or its error. */
  _set(index: number, ok: boolean, value: unknown): void;
}

/** The result of `applyAsync` (Python's `ApplyResult`/`AsyncResult`). */
export class AsyncResult<T = unknown> implements Job {
  protected _settle = new Settle();
  protected _ok = false;
  protected _value: unknown;
  readonly _job: number;

  constructor(protected _pool: Pool | null, private _callback: Callback<T>, private _errorCallback: ErrorCallback) {
    this._job = ++jobCounter;
  }

  /** Whether the call has completed. */
  ready(): boolean {
    return this._settle.done;
  }

  /** Whether the call completed without throwing; ValueError before it is ready. */
  successful(): boolean {
    if (!this.ready()) throw new ValueError(`${this} not ready`);
    return this._ok;
  }

  /** Wait until the result is available or `timeout` seconds pass. */
  async wait(timeout?: number | null): Promise<void> {
    await this._settle.wait(timeout);
  }

  /** The result; throws the task's error; TimeoutError if not ready within `timeout` seconds. */
  async get(timeout?: number | null): Promise<T> {
    if (!this._settle.done) await this._settle.wait(timeout);
    if (!this._settle.done) throw new TimeoutError();
    if (this._ok) return this._value as T;
    throw this._value;
  }

  _set(_index: number, ok: boolean, value: unknown): void {
    this._finish(ok, ok ? (value as unknown[])[0] : value);
  }

  protected _finish(ok: boolean, value: unknown): void {
    if (this._settle.done) return;
    this._ok = ok;
    this._value = value;
    try {
      if (ok && this._callback) this._callback(value as T);
      if (!ok && this._errorCallback) this._errorCallback(value);
    } catch (e) {
      reportCallbackError(e);
    }
    this._settle.fire();
    this._pool?._jobDone(this._job);
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
  #values: T[];
  #chunksize: number;
  #left: number;

  constructor(pool: Pool, chunksize: number, length: number, callback: Callback<T[]>, errorCallback: ErrorCallback) {
    super(pool, callback, errorCallback);
    this.#values = new Array(length);
    this.#chunksize = chunksize;
    this.#left = length === 0 ? 0 : Math.ceil(length / chunksize);
    if (this.#left === 0) queueMicrotask(() => this._finish(true, this.#values));
  }

  override _set(index: number, ok: boolean, value: unknown): void {
    if (this._settle.done) return;
    if (!ok) {
      this._finish(false, value);
      return;
    }
    const vals = value as T[];
    const base = index * this.#chunksize;
    for (let i = 0; i < vals.length; i++) this.#values[base + i] = vals[i];
    if (--this.#left === 0) this._finish(true, this.#values);
  }
}

/** Done marker in the imap buffers. */
const END = Symbol('end');

/**
 * The iterator of `imap` (ordered) and `imapUnordered`: an async iterable whose
 * `next(timeout)` throws TimeoutError when no result comes in time. The input is
 * consumed lazily, with a bounded number of tasks in flight.
 */
export class IMapIterator<T = unknown> implements Job, AsyncIterableIterator<T> {
  readonly _job: number;
  #pool: Pool | null;
  #ordered: boolean;
  /** Ordered: chunk index -> items. Unordered: arrival order. */
  #byIndex = new Map<number, { ok: boolean; value: unknown }>();
  #queue: Array<{ ok: boolean; value: unknown }> = [];
  #nextIndex = 0;
  #items: unknown[] = [];
  #itemPos = 0;
  #chunksSent = 0;
  #chunksTaken = 0;
  #received = 0;
  #inputDone = false;
  #inputError: { e: unknown } | null = null;
  #stopped = false;
  #changed = new Settle();
  #feederWake: (() => void) | null = null;

  constructor(pool: Pool, ordered: boolean) {
    this.#pool = pool;
    this.#ordered = ordered;
    this._job = ++jobCounter;
  }

  /** Feed the pool from `iterable`, at most `window` chunks ahead of the consumer. @internal */
  async _feed(iterable: Iterable<unknown> | AsyncIterable<unknown>, fn: Function, chunksize: number, star: boolean, window: number): Promise<void> {
    const pool = this.#pool!;
    const asyncIt = typeof (iterable as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function';
    const it: Iterator<unknown> | AsyncIterator<unknown> = asyncIt
      ? (iterable as AsyncIterable<unknown>)[Symbol.asyncIterator]()
      : (iterable as Iterable<unknown>)[Symbol.iterator]();
    try {
      let chunk: unknown[] = [];
      for (;;) {
        while (this.#chunksSent - this.#chunksTaken >= window && !this.#stopped && pool._running()) {
          await new Promise<void>((r) => (this.#feederWake = r));
        }
        if (this.#stopped || pool._terminated()) {
          if (typeof it.return === 'function') await it.return();
          break;
        }
        const r = asyncIt ? await (it as AsyncIterator<unknown>).next() : (it as Iterator<unknown>).next();
        if (r.done) break;
        chunk.push(star ? [...(r.value as Iterable<unknown>)] : r.value);
        if (chunk.length >= chunksize) {
          pool._submit({ job: this, index: this.#chunksSent++, fn, items: chunk, star });
          chunk = [];
        }
      }
      if (chunk.length) pool._submit({ job: this, index: this.#chunksSent++, fn, items: chunk, star });
    } catch (e) {
      this.#inputError = { e };
    }
    this.#inputDone = true;
    this.#check();
  }

  _set(index: number, ok: boolean, value: unknown): void {
    this.#received++;
    const entry = { ok, value };
    if (this.#ordered) this.#byIndex.set(index, entry);
    else this.#queue.push(entry);
    this.#check();
  }

  /** Wake the feeder (the pool's state changed). @internal */
  _wake(): void {
    const wake = this.#feederWake;
    this.#feederWake = null;
    wake?.();
  }

  #check(): void {
    if (this.#inputDone && this.#received >= this.#chunksSent) this.#finish();
    const c = this.#changed;
    this.#changed = new Settle();
    c.fire();
  }

  /** The next ready item, or END, or undefined when none is ready yet. */
  #take(): { ok: boolean; value: unknown } | typeof END | undefined {
    if (this.#itemPos < this.#items.length) {
      const v = this.#items[this.#itemPos];
      this.#items[this.#itemPos++] = undefined;
      return { ok: true, value: v };
    }
    let entry: { ok: boolean; value: unknown } | undefined;
    if (this.#ordered) {
      entry = this.#byIndex.get(this.#nextIndex);
      if (entry) {
        this.#byIndex.delete(this.#nextIndex);
        this.#nextIndex++;
      }
    } else entry = this.#queue.shift();
    if (entry) {
      this.#chunksTaken++;
      const wake = this.#feederWake;
      this.#feederWake = null;
      wake?.();
      if (!entry.ok) return entry;
      this.#items = entry.value as unknown[];
      this.#itemPos = 0;
      return this.#take();
    }
    if (this.#inputDone && this.#chunksTaken >= this.#chunksSent) {
      if (this.#inputError) {
        const e = this.#inputError;
        this.#inputError = null;
        return { ok: false, value: e.e };
      }
      return END;
    }
    return undefined;
  }

  #finish(): void {
    if (this.#pool) {
      this.#pool._jobDone(this._job);
      this.#pool = null;
    }
  }

  /** The next result; TimeoutError if none within `timeout` seconds (null: no limit). */
  async next(timeout?: number | null): Promise<IteratorResult<T>> {
    const deadline = timeout == null ? null : Date.now() + Math.max(0, timeout) * 1000;
    for (;;) {
      const got = this.#take();
      if (got === END) return { done: true, value: undefined };
      if (got) {
        if (got.ok) return { done: false, value: got.value as T };
        throw got.value;
      }
      const left = deadline === null ? null : (deadline - Date.now()) / 1000;
      if (left !== null && left <= 0) throw new TimeoutError();
      await this.#changed.wait(left);
    }
  }

  /** Stop early (a `break` out of `for await`): no more input is taken. */
  async return(): Promise<IteratorResult<T>> {
    this.#stopped = true;
    const wake = this.#feederWake;
    this.#feederWake = null;
    wake?.();
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

interface PendingTask {
  job: Job;
  index: number;
  fn: Function;
  items: unknown[];
  star: boolean;
}

interface Worker {
  proc: BaseProcess;
  conn: Connection;
  name: string;
  /** Batches sent and not answered: each is the tasks it holds. */
  held: Map<string, PendingTask>;
  /** Tasks left in each batch in flight, oldest first (results come back in order). */
  inflight: number[];
  /** Function ids this worker already has. */
  fns: Set<number>;
  /** Tasks sent to it (for maxtasksperchild). */
  assigned: number;
  reading: boolean;
  gone: boolean;
}

function checkFn(func: unknown): void {
  if (typeof func !== 'function') throw new TypeError(`${inspect(func)} is not callable`);
}

function taskKey(job: number, index: number): string {
  return `${job}:${index}`;
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
  #queue: PendingTask[] = [];
  #head = 0;
  #jobs = new Map<number, Job>();
  #dispatchScheduled = false;
  #initError: unknown = null;
  #jobsChanged = new Settle();

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
    const w: Worker = { proc, conn: mine, name: proc.name, held: new Map(), inflight: [], fns: new Set(), assigned: 0, reading: false, gone: false };
    this.#workers.add(w);
    return w;
  }

  #checkRunning(): void {
    if (this.#state !== RUN) throw new ValueError('Pool not running');
  }


  /** @internal */
  _submit(t: PendingTask): void {
    if (this.#initError !== null || this.#state === TERMINATE) {
      t.job._set(t.index, false, this.#initError ?? new ProcessError('the pool was terminated before this task completed'));
      return;
    }
    this.#queue.push(t);
    if (!this.#dispatchScheduled) {
      this.#dispatchScheduled = true;
      queueMicrotask(() => {
        this.#dispatchScheduled = false;
        this.#dispatch();
      });
    }
  }

  /** @internal */
  _jobDone(job: number): void {
    this.#jobs.delete(job);
    const c = this.#jobsChanged;
    this.#jobsChanged = new Settle();
    c.fire();
    if (this.#state === CLOSE) this.#maybeStopWorkers();
  }

  #pending(): number {
    return this.#queue.length - this.#head;
  }

  #dispatch(): void {
    if (this.#state === TERMINATE) return;
    // Idle workers first, then a second and third batch for each.
    for (let level = 0; level < IN_FLIGHT && this.#pending() > 0; level++) {
      for (const w of this.#workers) {
        if (this.#pending() === 0) break;
        if (w.gone || w.inflight.length !== level) continue;
        this.#sendBatch(w, level);
      }
    }
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    if (this.#state === CLOSE) this.#maybeStopWorkers();
  }

  #sendBatch(w: Worker, level: number): void {
    const live = [...this.#workers].filter((x) => !x.gone).length || 1;
    let n = Math.min(MAX_BATCH, Math.max(1, Math.ceil(this.#pending() / (live * IN_FLIGHT))));
    if (this.#maxtasks !== null) n = Math.min(n, this.#maxtasks - w.assigned);
    if (n <= 0) return;
    const tasks: Task[] = [];
    const defs: Array<[number, Function]> = [];
    const taken: PendingTask[] = [];
    for (let i = 0; i < n && this.#pending() > 0; i++) {
      const t = this.#queue[this.#head];
      this.#queue[this.#head++] = undefined as unknown as PendingTask;
      const id = fnIdOf(t.fn);
      if (!w.fns.has(id)) {
        defs.push([id, t.fn]);
      }
      tasks.push([(t.job as unknown as { _job: number })._job, t.index, id, t.items, t.star]);
      taken.push(t);
    }
    const batch: Batch = [defs.length ? defs : null, tasks];
    let data: Buffer;
    let fds: number[];
    try {
      ({ data, fds } = dumps(batch));
    } catch (e) {
      // Something in the tasks cannot be sent: find which, fail those, send the rest.
      const ok: PendingTask[] = [];
      for (const t of taken) {
        try {
          dumps([t.fn, t.items]);
          ok.push(t);
        } catch (err) {
          t.job._set(t.index, false, err);
        }
      }
      if (ok.length === taken.length) throw e;
      for (const t of ok) this.#queue.push(t);
      return;
    }
    if (level > 0 && data.length > SMALL_BATCH_BYTES) {
      // Only idle workers take big batches: put them back.
      this.#head -= taken.length;
      for (let i = 0; i < taken.length; i++) this.#queue[this.#head + i] = taken[i];
      return;
    }
    for (const [id] of defs) w.fns.add(id);
    for (const t of taken) w.held.set(taskKey((t.job as unknown as { _job: number })._job, t.index), t);
    w.assigned += taken.length;
    w.inflight.push(taken.length);
    try {
      if (fds.length) w.conn.send(batch);
      else w.conn.sendBytes(data);
    } catch {
      // The worker is gone: its reader sees EOF and fails what it held.
    }
    this.#read(w);
  }

  /** Read results from `w` while it holds tasks. */
  async #read(w: Worker): Promise<void> {
    if (w.reading) return;
    w.reading = true;
    try {
      while (w.held.size > 0 && !w.gone) {
        let msg: Result[];
        try {
          msg = await w.conn.recv();
        } catch (e) {
          if (!w.gone) await this.#lost(w);
          return;
        }
        for (const [job, index, ok, value] of msg) {
          if (w.inflight.length && --w.inflight[0] <= 0) w.inflight.shift();
          if (job === INIT_FAILED) {
            this.#initFailed(value);
            continue;
          }
          const key = taskKey(job, index);
          const t = w.held.get(key);
          if (!t) continue;
          w.held.delete(key);
          t.job._set(index, ok, ok ? value : fromWorker(value));
        }
        if (w.held.size === 0) w.inflight.length = 0;
        if (this.#maxtasks !== null && w.assigned >= this.#maxtasks && w.held.size === 0) this.#retire(w);
        this.#dispatch();
      }
    } finally {
      w.reading = false;
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
    for (const w of this.#workers) {
      for (const t of w.held.values()) pending.push(t);
      w.held.clear();
      w.inflight.length = 0;
    }
    for (const t of pending) t.job._set(t.index, false, e);
    for (const job of [...this.#jobs.values()]) if (job instanceof IMapIterator) job._wake();
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
    const held = [...w.held.values()];
    w.held.clear();
    if (held.length) {
      const err = new WorkerLostError(`worker ${w.name} (pid ${w.proc.pid}) died with exit code ${code} while running this task`);
      for (const t of held) t.job._set(t.index, false, err);
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
    this.#checkRunning();
    checkFn(func);
    const r = new AsyncResult<Awaited<R>>(this, callback, errorCallback);
    this.#jobs.set(r._job, r);
    this._submit({ job: r, index: 0, fn: func, items: [[...args]], star: true });
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
    const r = new MapResult(this, cs, items.length, callback, errorCallback);
    this.#jobs.set(r._job, r);
    for (let i = 0, c = 0; i < items.length; i += cs, c++) {
      const chunk = items.slice(i, i + cs);
      this._submit({ job: r, index: c, fn: func, items: star ? chunk.map((a) => [...(a as Iterable<unknown>)]) : chunk, star });
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
    this.#jobs.set(it._job, it);
    const window = Math.max(64, this.#processes * IN_FLIGHT * 32);
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
      for (const job of this.#jobs.values()) if (job instanceof IMapIterator) job._wake();
      this.#maybeStopWorkers();
    }
  }

  #maybeStopWorkers(): void {
    if (this.#state !== CLOSE || this.#pending() > 0 || this.#jobs.size > 0) return;
    for (const w of this.#workers) {
      if (w.held.size > 0) return;
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
      for (const job of this.#jobs.values()) if (job instanceof IMapIterator) job._wake();
      while (this.#jobs.size > 0 || this.#pending() > 0) await this.#jobsChanged.wait();
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
