// node-multiprocessing/dummy (Python's multiprocessing.dummy): the API of the package
// over threads instead of processes. A "process" here is a worker thread (DummyProcess,
// dummy_process.ts) and `Pool` is ThreadPool (pool.ts). Python's dummy module hands out
// threading's locks and queue.Queue, which threads share because they share memory; Node's
// threads do not, so these are the package's own objects, whose state is in shared memory:
// shared by threads and processes alike (a Lock passed to a thread and to a child process
// is one lock).
import { inspect } from 'node:util';
import * as self from './dummy.js';
import { ThreadPool } from './pool.js';
import { reduce, registerKind, type Reduced } from './reduction.js';
import { activeThreads, currentThread, DummyProcess, type MainThread } from './dummy_process.js';

export { DummyProcess, MainThread } from './dummy_process.js';
export { Pipe, Connection } from './connection.js';
export { ThreadPool, type ThreadPoolOptions } from './pool.js';
export { move } from './reduction.js';
export { JoinableQueue, Queue, SimpleQueue } from './queues.js';
export { Array, SharedArray, Value } from './sharedctypes.js';
export { Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore } from './synchronize.js';

/** Python's `multiprocessing.dummy.Process`: a thread (see DummyProcess). */
export const Process = DummyProcess;
/** The type of a dummy Process object. */
export type Process = DummyProcess;

/**
 * Python's `multiprocessing.dummy.Pool` (a ThreadPool): `new Pool(4)` or
 * `new Pool({ processes, initializer, initargs })`.
 */
export const Pool = ThreadPool;
/** The type of a dummy Pool. */
export type Pool = ThreadPool;

/**
 * The running thread (Python's `multiprocessing.dummy.current_process`, which is
 * `threading.current_thread`): its DummyProcess inside a thread started here, else the
 * main thread's object. (The process itself is the root module's `currentProcess()`, which
 * threads see as their process.)
 */
export function currentProcess(): DummyProcess | MainThread {
  return currentThread();
}

/** Threads started by the running thread that are still alive (Python's `active_children`). */
export function activeChildren(): DummyProcess[] {
  return activeThreads();
}

/** Python's `freeze_support`: nothing to do. */
export function freezeSupport(): void {}

/**
 * Python's `multiprocessing.dummy.Namespace`: an object whose attributes are those given;
 * `toString()` is `Namespace(a=1, b='x')` (names starting with `_` left out). Passed to a
 * thread it is copied, as every plain value is, where Python's threads would share it: to
 * share state between threads use a Value, an Array, a Queue or a Manager's Namespace.
 */
export class Namespace {
  [name: string]: unknown;

  constructor(attributes?: Record<string, unknown>) {
    if (attributes) Object.assign(this, attributes);
  }

  /** Python's repr: `Namespace(a=1, b='x')`. */
  toString(): string {
    const items = Object.keys(this)
      .filter((k) => !k.startsWith('_'))
      .sort()
      .map((k) => `${k}=${inspect(this[k])}`);
    return `${this.constructor.name}(${items.join(', ')})`;
  }

  /** The repr for `util.inspect`. */
  [inspect.custom](): string {
    return this.toString();
  }

  /** Crosses to threads and processes as a copy that is a Namespace again. @internal */
  [reduce](): Reduced {
    return { kind: 'dummy-namespace', state: { ...this } };
  }
}
registerKind('dummy-namespace', (s: Record<string, unknown>) => new Namespace(s));

/** Python's `multiprocessing.dummy.dict` (the builtin): a new Map. */
export function dict<K, V>(entries?: Iterable<readonly [K, V]> | null): Map<K, V> {
  return new Map(entries ?? undefined);
}

/** Python's `multiprocessing.dummy.list` (the builtin): a new Array. */
export function list<T>(items?: Iterable<T> | null): T[] {
  return [...(items ?? [])];
}

/**
 * Python's `multiprocessing.dummy.Manager()`: this module itself, so that code written for
 * a manager (`manager.Queue()`, `manager.Lock()`, `manager.Namespace()`...) runs with
 * threads and no server process. Its objects are the module's: its Namespace is copied
 * into threads (see Namespace).
 */
export function Manager(): typeof self {
  return self;
}

/** Python's `multiprocessing.dummy.shutdown`: nothing to shut down. */
export function shutdown(): void {}
