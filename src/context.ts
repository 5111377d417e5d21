// Start methods and contexts (Python's multiprocessing.context). Only 'spawn' is
// real: a Node.js process cannot be forked safely (V8's and libuv's threads do not
// survive fork), and a fork server is not implemented.
import { availableParallelism } from 'node:os';
import { Pipe } from './connection.js';
import * as errors from './errors.js';
import { RuntimeError, ValueError } from './errors.js';
import { Pool, type PoolOptions } from './pool.js';
import { JoinableQueue, Queue, SimpleQueue, type QueueOptions } from './queues.js';
import * as sharedctypes from './sharedctypes.js';
import { Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore, type BarrierAction, type Timeout } from './synchronize.js';
import { _setStartMethodPopen, activeChildren, BaseProcess, currentProcess, parentProcess, Process, type Popen } from './process.js';
import { setExecutable, SpawnProcess } from './spawn.js';
import { getLogger, logToStderr } from './util.js';

// The Process classes live beside what they need (process.ts, spawn.ts) so that a child
// does not load the whole library to re-create its Process object.
export { Process, SpawnProcess };

const REASONS: Record<string, string> = {
  fork: "the 'fork' start method is not available: a Node.js process cannot be forked safely (V8's and libuv's threads do not survive fork); use 'spawn'",
  forkserver: "the 'forkserver' start method is not available yet; use 'spawn'",
};

export class BaseContext {
  /** The Process class of this context (set by each concrete context). */
  declare readonly Process: typeof BaseProcess;
  readonly ProcessError = errors.ProcessError;
  readonly BufferTooShort = errors.BufferTooShort;
  readonly TimeoutError = errors.TimeoutError;
  readonly AuthenticationError = errors.AuthenticationError;

  /** Python's `cpu_count()`. */
  cpuCount(): number {
    return availableParallelism();
  }
  currentProcess(): BaseProcess {
    return currentProcess();
  }
  parentProcess() {
    return parentProcess();
  }
  activeChildren(): BaseProcess[] {
    return activeChildren();
  }
  Pipe(duplex = true) {
    return Pipe(duplex);
  }
  getLogger() {
    return getLogger();
  }
  logToStderr(level?: number | string) {
    return logToStderr(level);
  }
  setExecutable(path: string): void {
    setExecutable(path);
  }
  Lock(): Lock {
    return new Lock();
  }
  RLock(): RLock {
    return new RLock();
  }
  Condition(lock?: Lock | RLock | null): Condition {
    return new Condition(lock);
  }
  Semaphore(value = 1): Semaphore {
    return new Semaphore(value);
  }
  BoundedSemaphore(value = 1): BoundedSemaphore {
    return new BoundedSemaphore(value);
  }
  Event(): Event {
    return new Event();
  }
  Barrier(parties: number, action?: BarrierAction | null, timeout?: Timeout): Barrier {
    return new Barrier(parties, action, timeout);
  }
  RawValue(typeOrCode: sharedctypes.TypeOrCode, ...args: unknown[]): any {
    return sharedctypes.RawValue(typeOrCode, ...args);
  }
  RawArray(typeOrCode: sharedctypes.TypeOrCode, sizeOrInit: number | Iterable<unknown> | ArrayLike<unknown>): any {
    return sharedctypes.RawArray(typeOrCode, sizeOrInit);
  }
  Value(typeOrCode: sharedctypes.TypeOrCode, ...args: unknown[]): any {
    return sharedctypes.Value(typeOrCode, ...args);
  }
  Array(typeOrCode: sharedctypes.TypeOrCode, sizeOrInit: number | Iterable<unknown> | ArrayLike<unknown>, opts?: sharedctypes.SharedOptions): any {
    return sharedctypes.Array(typeOrCode, sizeOrInit, opts);
  }
  Queue(maxsize: number | QueueOptions = 0): Queue {
    return new Queue(maxsize);
  }
  JoinableQueue(maxsize: number | QueueOptions = 0): JoinableQueue {
    return new JoinableQueue(maxsize);
  }
  SimpleQueue(options?: QueueOptions): SimpleQueue {
    return new SimpleQueue(options);
  }
  /** A pool of worker processes started by this context. */
  Pool(processes?: number | PoolOptions | null, initializer?: Function | null, initargs?: unknown[], maxtasksperchild?: number | null): Pool {
    const o: PoolOptions = processes !== null && typeof processes === 'object' ? processes : { processes, initializer, initargs, maxtasksperchild };
    return new Pool({ ...o, context: this });
  }
  /** Windows freezing support: nothing to do here. */
  freezeSupport(): void {}

  getContext(method?: string | null): BaseContext {
    if (method == null) return defaultContext;
    const ctx = contexts[method];
    if (!ctx) throw new ValueError(REASONS[method] ?? `cannot find context for '${method}'`);
    return ctx;
  }
  getAllStartMethods(): string[] {
    return Object.keys(contexts);
  }
  getStartMethod(_allowNone = false): string | null {
    return (this as unknown as { _name: string })._name;
  }
  setStartMethod(_method: string | null, _force = false): void {
    throw new ValueError('cannot set start method of concrete context');
  }
}

export class SpawnContext extends BaseContext {
  readonly _name = 'spawn';
  override readonly Process = SpawnProcess;
}

const contexts: Record<string, BaseContext> = { spawn: new SpawnContext() };

export class DefaultContext extends BaseContext {
  override readonly Process = Process;
  #actual: BaseContext | null = null;

  override getContext(method?: string | null): BaseContext {
    if (method == null) {
      this.#actual ??= contexts.spawn;
      return this.#actual;
    }
    return super.getContext(method);
  }
  override getStartMethod(allowNone = false): string | null {
    if (this.#actual === null) {
      if (allowNone) return null;
      this.#actual = contexts.spawn;
    }
    return (this.#actual as SpawnContext)._name;
  }
  override setStartMethod(method: string | null, force = false): void {
    if (this.#actual !== null && !force) throw new RuntimeError('context has already been set');
    if (method === null && force) {
      this.#actual = null;
      return;
    }
    this.#actual = super.getContext(method);
  }
  override getAllStartMethods(): string[] {
    return ['spawn'];
  }
}

export const defaultContext = new DefaultContext();

// The default context's Process starts the way the current start method says.
_setStartMethodPopen((proc) => {
  const ctx = defaultContext.getContext(defaultContext.getStartMethod()) as SpawnContext;
  return (ctx.Process.prototype as unknown as { _Popen(p: BaseProcess): Popen })._Popen.call(proc, proc);
});

export const getContext = (method?: string | null): BaseContext => defaultContext.getContext(method);
export const getStartMethod = (allowNone = false): string | null => defaultContext.getStartMethod(allowNone);
export const setStartMethod = (method: string | null, force = false): void => defaultContext.setStartMethod(method, force);
export const getAllStartMethods = (): string[] => defaultContext.getAllStartMethods();
export const cpuCount = (): number => defaultContext.cpuCount();
export const freezeSupport = (): void => defaultContext.freezeSupport();
