// The proxies of SyncManager's synchronization, queue and pool typeids (Python's
// AcquirerProxy, ConditionProxy, EventProxy, BarrierProxy, the AutoProxy of queue.Queue,
// PoolProxy, and the IteratorProxy and AsyncResult proxies its methods return), and the
// registry entries that give SyncManager the typeids `Queue JoinableQueue Event Lock RLock
// Semaphore BoundedSemaphore Condition Barrier Pool` (the objects themselves are in
// managers_referents.ts and live in the manager's process).
//
// Each proxy has the surface of the library's local class of the same name: every call
// returns a Promise and has a `...Sync` twin that blocks the thread (for worker code in
// Python's style); `hold()` is Python's `with lock:`; `for await` iterates `imap`.
import type { Held } from './synchronize.js';
import { TimeoutError } from './errors.js';
import { BaseProxy, registerProxyType } from './managers_proxy.js';
import {
  Barrier, BoundedSemaphore, Event, Lock, makeCondition, makePool, Queue, RLock, Semaphore,
} from './managers_referents.js';
import { deadlineOf, expired, secondsLeft, timeoutArg, type BlockOptions, type Timeout, type TimeoutOptions } from './timeouts.js';
import type { ChunkOptions } from './pool.js';

/** Arguments as given, without the trailing `undefined`s (the referent applies its defaults). */
function given(args: unknown[]): unknown[] {
  let n = args.length;
  while (n > 0 && args[n - 1] === undefined) n--;
  return n === args.length ? args : args.slice(0, n);
}

/** Give `cls` a method `name` (Promise) and `nameSync` (blocking) calling the referent's `name`. */
function forward(cls: { prototype: object }, names: readonly string[]): void {
  for (const name of names) {
    if (!Object.hasOwn(cls.prototype, name)) {
      Object.defineProperty(cls.prototype, name, {
        configurable: true, writable: true,
        value: { [name](this: BaseProxy, ...args: unknown[]) { return this._callmethod(name, given(args)); } }[name],
      });
    }
    if (!Object.hasOwn(cls.prototype, `${name}Sync`)) {
      Object.defineProperty(cls.prototype, `${name}Sync`, {
        configurable: true, writable: true,
        value: { [`${name}Sync`](this: BaseProxy, ...args: unknown[]) { return this._callmethodSync(name, given(args)); } }[`${name}Sync`],
      });
    }
  }
}

/**
 * What `hold()` of a manager lock returns: `await using h = await lock.hold()` releases it
 * (awaited) at the end of the scope; `using` (a blocking release) and `release()` do too.
 */
export interface ProxyHeld extends Held, AsyncDisposable {
  /** Release what was acquired (once; later calls do nothing): a blocking call to the manager. */
  release(): void;
  /** Release it without blocking the thread (once; later calls resolve at once). */
  releaseAsync(): Promise<void>;
}

function proxyHeld(proxy: AcquirerProxy): ProxyHeld {
  let done = false;
  const once = (): boolean => !done && (done = true);
  const release = (): void => {
    if (once()) proxy.releaseSync();
  };
  const releaseAsync = async (): Promise<void> => {
    if (once()) await proxy.release();
  };
  return { release, releaseAsync, [Symbol.dispose]: release, [Symbol.asyncDispose]: releaseAsync };
}

// ---- locks -------------------------------------------------------------------------

/**
 * Python's `multiprocessing.managers.AcquirerProxy`: a proxy of a manager's Lock, RLock,
 * Semaphore or BoundedSemaphore (Python's `threading` objects in the manager's process).
 * `await lock.acquire()` / `acquireSync()`; `await using h = await lock.hold()` is Python's
 * `with lock:`. An RLock's owner is the calling process and JS thread. Differences from the
 * library's own locks: `release()` is a remote call too (a Promise; `releaseSync()` blocks),
 * releasing an unlocked manager Lock or an RLock one does not own is Python's `RuntimeError`
 * (threading's, where the library's Lock raises ValueError and RLock AssertionError), and a
 * client that dies holding a manager lock has it released by the manager (with a WARNING).
 */
export class AcquirerProxy extends BaseProxy {
  /** Python's `_exposed_`. */
  static override _exposed_: string[] = ['acquire', 'release'];

  /** `acquire(block = true, timeout = null)` or `acquire({ block, timeout })`: true when acquired, false on timeout. */
  acquire(block?: boolean | BlockOptions, timeout?: Timeout): Promise<boolean> {
    return this._callmethod('acquire', given([block, timeout]));
  }

  /** `acquire()` blocking the thread. */
  acquireSync(block?: boolean | BlockOptions, timeout?: Timeout): boolean {
    return this._callmethodSync('acquire', given([block, timeout]));
  }

  /** Release (a remote call): RuntimeError for an unlocked Lock or an RLock the caller does not own. */
  release(): Promise<void> {
    return this._callmethod('release');
  }

  /** `release()` blocking the thread. */
  releaseSync(): void {
    this._callmethodSync('release');
  }

  /** Acquire and return a handle that releases it at the end of an `await using` (or `using`) scope; TimeoutError if not acquired. */
  async hold(block?: boolean | BlockOptions, timeout?: Timeout): Promise<ProxyHeld> {
    if (!(await this.acquire(block, timeout))) throw new TimeoutError('could not acquire the lock');
    return proxyHeld(this);
  }

  /** `hold()` blocking the thread while it waits. */
  holdSync(block?: boolean | BlockOptions, timeout?: Timeout): ProxyHeld {
    if (!this.acquireSync(block, timeout)) throw new TimeoutError('could not acquire the lock');
    return proxyHeld(this);
  }
}
registerProxyType(AcquirerProxy);

/**
 * A proxy of a manager's Semaphore or BoundedSemaphore: {@link AcquirerProxy} with
 * `getValue()` (the local Semaphore's; not in Python's AcquirerProxy) and `release(n)`
 * (Python 3.9's `threading.Semaphore.release(n=1)`).
 */
export class SemaphoreProxy extends AcquirerProxy {
  /** Python's `_exposed_`, with `getValue`. */
  static override _exposed_: string[] = ['acquire', 'release', 'getValue'];

  /** Give `n` back (default 1); a BoundedSemaphore throws ValueError past its initial value. */
  override release(n?: number | { n?: number }): Promise<void> {
    return this._callmethod('release', given([n]));
  }

  /** `release(n)` blocking the thread. */
  override releaseSync(n?: number | { n?: number }): void {
    this._callmethodSync('release', given([n]));
  }

  /** The count now. */
  getValue(): Promise<number> {
    return this._callmethod('getValue');
  }

  /** `getValue()` blocking the thread. */
  getValueSync(): number {
    return this._callmethodSync('getValue');
  }
}
registerProxyType(SemaphoreProxy);

/**
 * Python's `ConditionProxy`: a manager's Condition (over a manager Lock or RLock, a new RLock
 * by default). `wait`, `notify` and `notifyAll` need the lock held by the caller (Python's
 * RuntimeError otherwise); `waitFor(predicate)` runs the predicate here, as Python's does.
 */
export class ConditionProxy extends AcquirerProxy {
  /** Python's `_exposed_`. */
  static override _exposed_: string[] = ['acquire', 'release', 'wait', 'notify', 'notifyAll'];

  /** Release the lock, wait until notified or `timeout` seconds pass, take the lock again; false on timeout. */
  wait(timeout?: Timeout | TimeoutOptions): Promise<boolean> {
    return this._callmethod('wait', given([timeout]));
  }

  /** `wait()` blocking the thread. */
  waitSync(timeout?: Timeout | TimeoutOptions): boolean {
    return this._callmethodSync('wait', given([timeout]));
  }

  /** Wake up to `n` waiters (default 1). */
  notify(n?: number | { n?: number }): Promise<void> {
    return this._callmethod('notify', given([n]));
  }

  /** `notify()` blocking the thread. */
  notifySync(n?: number | { n?: number }): void {
    this._callmethodSync('notify', given([n]));
  }

  /** Python's `notify_all()`. */
  notifyAll(): Promise<void> {
    return this._callmethod('notifyAll');
  }

  /** `notifyAll()` blocking the thread. */
  notifyAllSync(): void {
    this._callmethodSync('notifyAll');
  }

  /** Python's `wait_for(predicate, timeout)`: wait until `predicate()` is truthy or `timeout` passes; its last value. */
  async waitFor<T>(predicate: () => T | Promise<T>, timeout?: Timeout | TimeoutOptions): Promise<T> {
    const deadline = deadlineOf(timeoutArg(timeout, 'waitFor'));
    let result = await predicate();
    while (!result && !expired(deadline)) {
      await this.wait(secondsLeft(deadline));
      result = await predicate();
    }
    return result;
  }

  /** `waitFor()` blocking the thread. */
  waitForSync<T>(predicate: () => T, timeout?: Timeout | TimeoutOptions): T {
    const deadline = deadlineOf(timeoutArg(timeout, 'waitFor'));
    let result = predicate();
    while (!result && !expired(deadline)) {
      this.waitSync(secondsLeft(deadline));
      result = predicate();
    }
    return result;
  }
}
registerProxyType(ConditionProxy);

/** Python's `EventProxy`: a manager's Event. */
export class EventProxy extends BaseProxy {
  /** Python's `_exposed_`. */
  static override _exposed_: string[] = ['isSet', 'set', 'clear', 'wait'];
}
/** The methods of an EventProxy, each also as a blocking `...Sync` twin. */
export interface EventProxy {
  /** Python's `is_set()`. */ isSet(): Promise<boolean>;
  /** Blocking `isSet`. */ isSetSync(): boolean;
  /** Set the flag and wake every waiter. */ set(): Promise<void>;
  /** Blocking `set`. */ setSync(): void;
  /** Reset the flag. */ clear(): Promise<void>;
  /** Blocking `clear`. */ clearSync(): void;
  /** The flag once set (true), or false when `timeout` seconds pass first. */ wait(timeout?: Timeout | TimeoutOptions): Promise<boolean>;
  /** Blocking `wait`. */ waitSync(timeout?: Timeout | TimeoutOptions): boolean;
}
forward(EventProxy, EventProxy._exposed_);
registerProxyType(EventProxy);

/**
 * Python's `BarrierProxy`: a manager's Barrier. `parties`, `nWaiting` and `broken` are
 * blocking remote reads, as in Python (and as the local Barrier's properties).
 */
export class BarrierProxy extends BaseProxy {
  /** Python's `_exposed_`. */
  static override _exposed_: string[] = ['__getattribute__', 'wait', 'abort', 'reset'];

  /** Python's `parties`. */
  get parties(): number {
    return this._callmethodSync('__getattribute__', ['parties']);
  }

  /** Python's `n_waiting`. */
  get nWaiting(): number {
    return this._callmethodSync('__getattribute__', ['nWaiting']);
  }

  /** Python's `broken`. */
  get broken(): boolean {
    return this._callmethodSync('__getattribute__', ['broken']);
  }
}
/** The methods of a BarrierProxy, each also as a blocking `...Sync` twin. */
export interface BarrierProxy {
  /**
   * Wait for all parties: this caller's index in 0..parties-1. BrokenBarrierError if the
   * barrier is or becomes broken; a timeout (this call's, else the barrier's) breaks it.
   */
  wait(timeout?: Timeout | TimeoutOptions): Promise<number>;
  /** Blocking `wait`. */ waitSync(timeout?: Timeout | TimeoutOptions): number;
  /** Break the barrier: current and later waits get BrokenBarrierError. */ abort(): Promise<void>;
  /** Blocking `abort`. */ abortSync(): void;
  /** Back to the empty state; parties waiting now get BrokenBarrierError. */ reset(): Promise<void>;
  /** Blocking `reset`. */ resetSync(): void;
}
forward(BarrierProxy, ['wait', 'abort', 'reset']);
registerProxyType(BarrierProxy);

// ---- queues ------------------------------------------------------------------------

/**
 * A proxy of a manager's Queue or JoinableQueue (Python's `queue.Queue` in the manager's
 * process, through an AutoProxy): `put`/`get` with Python's `(block, timeout)` (or one options
 * object), `Empty`/`Full`, `taskDone()`/`join()`. Unlike the library's Queue, an item is in
 * the queue when `put()` resolves, and `qsize()` is exact.
 */
export class QueueProxy<T = any> extends BaseProxy {
  /** The exposed names (CPython's AutoProxy of queue.Queue exposes the same). */
  static override _exposed_: string[] = ['put', 'get', 'putNowait', 'getNowait', 'qsize', 'empty', 'full', 'taskDone', 'join'];

  /** Iterate by `get()` until `sentinel` comes (`for await (const x of q.iter(null))`); the sentinel is not yielded. */
  async *iter(sentinel: unknown = null): AsyncGenerator<T> {
    for (;;) {
      const x = (await this._callmethod('get')) as T;
      if (x === sentinel) return;
      yield x;
    }
  }
}
/** The methods of a QueueProxy, each also as a blocking `...Sync` twin. */
export interface QueueProxy<T = any> {
  /** `put(item, block = true, timeout = null)` or `put(item, { block, timeout })`: Full when no slot came. */
  put(item: T, block?: boolean | BlockOptions, timeout?: Timeout): Promise<void>;
  /** Blocking `put`. */ putSync(item: T, block?: boolean | BlockOptions, timeout?: Timeout): void;
  /** `get(block = true, timeout = null)` or `get({ block, timeout })`: the next item; Empty when none came. */
  get(block?: boolean | BlockOptions, timeout?: Timeout): Promise<T>;
  /** Blocking `get`. */ getSync(block?: boolean | BlockOptions, timeout?: Timeout): T;
  /** Python's `put_nowait(item)`: Full at once when full. */ putNowait(item: T): Promise<void>;
  /** Blocking `putNowait`. */ putNowaitSync(item: T): void;
  /** Python's `get_nowait()`: Empty at once when empty. */ getNowait(): Promise<T>;
  /** Blocking `getNowait`. */ getNowaitSync(): T;
  /** How many items are queued. */ qsize(): Promise<number>;
  /** Blocking `qsize`. */ qsizeSync(): number;
  /** Whether no item is queued. */ empty(): Promise<boolean>;
  /** Blocking `empty`. */ emptySync(): boolean;
  /** Whether `maxsize` items are queued. */ full(): Promise<boolean>;
  /** Blocking `full`. */ fullSync(): boolean;
  /** Python's `task_done()`: an item got is done (ValueError if more than were put). */ taskDone(): Promise<void>;
  /** Blocking `taskDone`. */ taskDoneSync(): void;
  /** Resolves once every item put has been marked done. */ join(): Promise<void>;
  /** Blocking `join`. */ joinSync(): void;
}
forward(QueueProxy, QueueProxy._exposed_);
registerProxyType(QueueProxy);

// ---- pool --------------------------------------------------------------------------

/** Python's `AsyncResult` proxy: what `applyAsync`, `mapAsync` and `starmapAsync` of a PoolProxy resolve with. */
export class AsyncResultProxy<T = any> extends BaseProxy {
  /** The exposed names (the public methods of Python's ApplyResult). */
  static override _exposed_: string[] = ['get', 'wait', 'ready', 'successful'];
}
/** The methods of an AsyncResultProxy, each also as a blocking `...Sync` twin. */
export interface AsyncResultProxy<T = any> {
  /** The result (`get(1)`, `get({ timeout: 1 })`); the task's error; TimeoutError if not ready in time. */
  get(timeout?: Timeout | TimeoutOptions): Promise<T>;
  /** Blocking `get`. */ getSync(timeout?: Timeout | TimeoutOptions): T;
  /** Wait until the result is ready or `timeout` seconds pass. */ wait(timeout?: Timeout | TimeoutOptions): Promise<void>;
  /** Blocking `wait`. */ waitSync(timeout?: Timeout | TimeoutOptions): void;
  /** Whether the call has completed. */ ready(): Promise<boolean>;
  /** Blocking `ready`. */ readySync(): boolean;
  /** Whether it completed without throwing (ValueError before it is ready). */ successful(): Promise<boolean>;
  /** Blocking `successful`. */ successfulSync(): boolean;
}
forward(AsyncResultProxy, AsyncResultProxy._exposed_);
registerProxyType(AsyncResultProxy);

/**
 * Python's `IteratorProxy`: a JavaScript iterator living in the manager (what `imap` and
 * `imapUnordered` of a PoolProxy return). `for await (const x of it)`; `next(timeout)` as the
 * local `IMapIterator.next`; leaving a `for await` early calls `return()` there.
 */
export class IteratorProxy<T = any> extends BaseProxy implements AsyncIterableIterator<T> {
  /** Python's `_exposed_` (`__next__`, `close` -> `next`, `return`; `throw` as a generator's). */
  static override _exposed_: string[] = ['next', 'return', 'throw'];

  /** The next result: `{ done, value }` (the local IMapIterator's `next(timeout)`). */
  next(timeout?: Timeout | TimeoutOptions): Promise<IteratorResult<T>> {
    return this._callmethod('next', given([timeout]));
  }

  /** `next()` blocking the thread. */
  nextSync(timeout?: Timeout | TimeoutOptions): IteratorResult<T> {
    return this._callmethodSync('next', given([timeout]));
  }

  /** Stop early (Python's `close()`): the iterator in the manager is told to stop. */
  async return(value?: unknown): Promise<IteratorResult<T>> {
    await this._callmethod('return', given([value]));
    return { done: true, value: undefined };
  }

  /** Python's `throw()`, for a generator living in the manager. */
  throw(e?: unknown): Promise<IteratorResult<T>> {
    return this._callmethod('throw', [e]);
  }

  /** `for await (const x of it)`. */
  [Symbol.asyncIterator](): this {
    return this;
  }
}
registerProxyType(IteratorProxy);

/**
 * What `imap` and `imapUnordered` of a PoolProxy return: a Promise of the IteratorProxy that
 * is async-iterable itself, so that `for await (const x of pool.imap(f, xs))` reads as with
 * the local Pool.
 */
export type IteratorProxyPromise<T> = Promise<IteratorProxy<T>> & AsyncIterable<T>;

function iterable<T>(p: Promise<IteratorProxy<T>>): IteratorProxyPromise<T> {
  return Object.assign(p, {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      let it: IteratorProxy<T> | undefined;
      return {
        next: async () => (it ??= await p).next(),
        return: async () => (it ??= await p).return(),
      };
    },
  });
}

/** Items for the manager: an Array as it is; another iterable (a generator, a Set, an async iterable) read here first. */
async function items(iterable: Iterable<unknown> | AsyncIterable<unknown>): Promise<unknown[]> {
  if (Array.isArray(iterable)) return iterable;
  if (iterable != null && typeof (iterable as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
    const out: unknown[] = [];
    for await (const x of iterable as AsyncIterable<unknown>) out.push(x);
    return out;
  }
  if (iterable != null && typeof (iterable as Iterable<unknown>)[Symbol.iterator] === 'function') return [...(iterable as Iterable<unknown>)];
  throw new TypeError(`'${typeof iterable}' object is not iterable`);
}

function itemsSync(iterable: Iterable<unknown>): unknown[] {
  if (Array.isArray(iterable)) return iterable;
  if (iterable != null && typeof iterable[Symbol.iterator] === 'function') return [...iterable];
  throw new TypeError(`'${typeof iterable}' object is not iterable (an async iterable needs the async form)`);
}

/**
 * Python's `PoolProxy`: a manager's Pool (the library's Pool running in the manager's process,
 * its workers the manager's children). The methods of the local Pool, each a remote call:
 * `applyAsync`/`mapAsync`/`starmapAsync` resolve with an {@link AsyncResultProxy}, `imap` and
 * `imapUnordered` with an {@link IteratorProxy} (and can be iterated directly). The functions
 * travel by reference (export them); callbacks run in the manager's process, as in Python.
 * `await using pool = await manager.Pool(2)` terminates it at the end of the scope (Python's
 * `with`). Iterables other than Arrays are read here first.
 */
export class PoolProxy extends BaseProxy {
  /** Python's `_exposed_`. */
  static override _exposed_: string[] = [
    'apply', 'applyAsync', 'close', 'imap', 'imapUnordered', 'join', 'map', 'mapAsync', 'starmap', 'starmapAsync', 'terminate',
  ];
  /** Python's `_method_to_typeid_`. */
  static override _methodToTypeid_: Record<string, string> = {
    applyAsync: 'AsyncResult', mapAsync: 'AsyncResult', starmapAsync: 'AsyncResult', imap: 'Iterator', imapUnordered: 'Iterator',
  };

  /** `apply(func, args = [], kwds = {})`: run `func(...args)` in a worker; its result. */
  apply<R>(func: (...a: any[]) => R, ...rest: unknown[]): Promise<Awaited<R>> {
    return this._callmethod('apply', given([func, ...rest]));
  }

  /** `apply()` blocking the thread. */
  applySync<R>(func: (...a: any[]) => R, ...rest: unknown[]): Awaited<R> {
    return this._callmethodSync('apply', given([func, ...rest]));
  }

  /** `applyAsync(func, args, kwds, callback, errorCallback)` (or options): an AsyncResultProxy. */
  applyAsync<R>(func: (...a: any[]) => R, ...rest: unknown[]): Promise<AsyncResultProxy<Awaited<R>>> {
    return this._callmethod('applyAsync', given([func, ...rest]));
  }

  /** `applyAsync()` blocking the thread. */
  applyAsyncSync<R>(func: (...a: any[]) => R, ...rest: unknown[]): AsyncResultProxy<Awaited<R>> {
    return this._callmethodSync('applyAsync', given([func, ...rest]));
  }

  /** `map(func, iterable, chunksize)`: the results in order. */
  async map<T, R>(func: (x: T) => R, iterable: Iterable<T> | AsyncIterable<T>, chunksize?: number | null | ChunkOptions): Promise<Awaited<R>[]> {
    return this._callmethod('map', given([func, await items(iterable), chunksize]));
  }

  /** `map()` blocking the thread. */
  mapSync<T, R>(func: (x: T) => R, iterable: Iterable<T>, chunksize?: number | null | ChunkOptions): Awaited<R>[] {
    return this._callmethodSync('map', given([func, itemsSync(iterable), chunksize]));
  }

  /** `mapAsync(func, iterable, chunksize, callback, errorCallback)` (or options): an AsyncResultProxy of the list. */
  async mapAsync<T, R>(func: (x: T) => R, iterable: Iterable<T> | AsyncIterable<T>, ...rest: unknown[]): Promise<AsyncResultProxy<Awaited<R>[]>> {
    return this._callmethod('mapAsync', given([func, await items(iterable), ...rest]));
  }

  /** `mapAsync()` blocking the thread. */
  mapAsyncSync<T, R>(func: (x: T) => R, iterable: Iterable<T>, ...rest: unknown[]): AsyncResultProxy<Awaited<R>[]> {
    return this._callmethodSync('mapAsync', given([func, itemsSync(iterable), ...rest]));
  }

  /** `starmap(func, iterable, chunksize)`: `func(...args)` for each args array. */
  async starmap<A extends unknown[], R>(func: (...a: A) => R, iterable: Iterable<A> | AsyncIterable<A>, chunksize?: number | null | ChunkOptions): Promise<Awaited<R>[]> {
    return this._callmethod('starmap', given([func, await items(iterable), chunksize]));
  }

  /** `starmap()` blocking the thread. */
  starmapSync<A extends unknown[], R>(func: (...a: A) => R, iterable: Iterable<A>, chunksize?: number | null | ChunkOptions): Awaited<R>[] {
    return this._callmethodSync('starmap', given([func, itemsSync(iterable), chunksize]));
  }

  /** `starmapAsync(func, iterable, chunksize, callback, errorCallback)` (or options): an AsyncResultProxy. */
  async starmapAsync<A extends unknown[], R>(func: (...a: A) => R, iterable: Iterable<A> | AsyncIterable<A>, ...rest: unknown[]): Promise<AsyncResultProxy<Awaited<R>[]>> {
    return this._callmethod('starmapAsync', given([func, await items(iterable), ...rest]));
  }

  /** `starmapAsync()` blocking the thread. */
  starmapAsyncSync<A extends unknown[], R>(func: (...a: A) => R, iterable: Iterable<A>, ...rest: unknown[]): AsyncResultProxy<Awaited<R>[]> {
    return this._callmethodSync('starmapAsync', given([func, itemsSync(iterable), ...rest]));
  }

  /** `imap(func, iterable, chunksize)`: the results in order, as they come (`for await (const r of pool.imap(f, xs))`). */
  imap<T, R>(func: (x: T) => R, iterable: Iterable<T> | AsyncIterable<T>, chunksize?: number | null | ChunkOptions): IteratorProxyPromise<Awaited<R>> {
    return iterable_(this, 'imap', func, iterable, chunksize);
  }

  /** `imap()` blocking the thread until the iterator is made (its `next` is async; `nextSync` blocks). */
  imapSync<T, R>(func: (x: T) => R, iterable: Iterable<T>, chunksize?: number | null | ChunkOptions): IteratorProxy<Awaited<R>> {
    return this._callmethodSync('imap', given([func, itemsSync(iterable), chunksize]));
  }

  /** `imapUnordered(func, iterable, chunksize)`: the results in the order they finish. */
  imapUnordered<T, R>(func: (x: T) => R, iterable: Iterable<T> | AsyncIterable<T>, chunksize?: number | null | ChunkOptions): IteratorProxyPromise<Awaited<R>> {
    return iterable_(this, 'imapUnordered', func, iterable, chunksize);
  }

  /** `imapUnordered()` blocking the thread until the iterator is made. */
  imapUnorderedSync<T, R>(func: (x: T) => R, iterable: Iterable<T>, chunksize?: number | null | ChunkOptions): IteratorProxy<Awaited<R>> {
    return this._callmethodSync('imapUnordered', given([func, itemsSync(iterable), chunksize]));
  }

  /** Terminate the pool at the end of an `await using` scope (Python's `with pool:` exits by `terminate()`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this._callmethod('terminate');
  }
}
/** The pool's lifecycle methods, each also as a blocking `...Sync` twin. */
export interface PoolProxy {
  /** No more tasks; the workers exit when the queued ones are done. */ close(): Promise<void>;
  /** Blocking `close`. */ closeSync(): void;
  /** Wait for the workers to exit (after `close()` or `terminate()`). */ join(): Promise<void>;
  /** Blocking `join`. */ joinSync(): void;
  /** Stop the workers now; pending tasks fail. */ terminate(): Promise<void>;
  /** Blocking `terminate`. */ terminateSync(): void;
}
forward(PoolProxy, ['close', 'join', 'terminate']);
registerProxyType(PoolProxy);

function iterable_<R>(pool: PoolProxy, method: string, func: Function, src: Iterable<unknown> | AsyncIterable<unknown>, chunksize: unknown): IteratorProxyPromise<R> {
  return iterable(items(src).then((xs) => pool._callmethod(method, given([func, xs, chunksize]))));
}

// ---- the registry ------------------------------------------------------------------

/** One `register` call of SyncManager: typeid, callable and the options. @internal */
export type SyncTypeid = [typeid: string, callable: Function | null, options: {
  proxytype: new (...args: any[]) => BaseProxy;
  exposed?: string[];
  createMethod?: boolean;
}];

/**
 * SyncManager's typeids for synchronization, queues and pools, as CPython registers them
 * (Queue and JoinableQueue are both queue.Queue; Iterator and AsyncResult are the types of
 * the Pool's results, with no create method). managers.ts registers them. @internal
 */
export const SYNC_TYPEIDS: SyncTypeid[] = [
  ['Queue', Queue, { proxytype: QueueProxy }],
  ['JoinableQueue', Queue, { proxytype: QueueProxy }],
  ['Event', Event, { proxytype: EventProxy }],
  ['Lock', Lock, { proxytype: AcquirerProxy }],
  ['RLock', RLock, { proxytype: AcquirerProxy }],
  ['Semaphore', Semaphore, { proxytype: SemaphoreProxy }],
  ['BoundedSemaphore', BoundedSemaphore, { proxytype: SemaphoreProxy }],
  ['Condition', makeCondition, { proxytype: ConditionProxy }],
  ['Barrier', Barrier, { proxytype: BarrierProxy }],
  ['Pool', makePool, { proxytype: PoolProxy }],
  ['Iterator', null, { proxytype: IteratorProxy, createMethod: false }],
  ['AsyncResult', null, { proxytype: AsyncResultProxy, createMethod: false }],
];
