// Start methods and contexts (Python's multiprocessing.context). Only 'spawn' is
// real: a Node.js process cannot be forked safely (V8's and libuv's threads do not
// survive fork), and a fork server is not implemented.
import { availableParallelism } from 'node:os';
import { inspect } from 'node:util';
import { Pipe } from './connection.js';
import * as errors from './errors.js';
import { RuntimeError, ValueError } from './errors.js';
import { Pool, type PoolOptions } from './pool.js';
import { optionalArg, optionalArgs } from './options.js';
import { JoinableQueue, Queue, SimpleQueue } from './queues.js';
import * as sharedctypes from './sharedctypes.js';
import { Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore } from './synchronize.js';
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

/**
 * A class as a context's member: usable with `new` as the root export is, and by call as
 * Python calls it (`ctx.Queue()`); `instanceof` and subclassing work as with the class.
 */
export type CallableClass<C extends abstract new (...args: any) => any, A extends unknown[] = ConstructorParameters<C>> =
  C & ((...args: A) => InstanceType<C>);

/** `cls`, also callable without `new`; `prepare` may rewrite the arguments of both forms. */
function callable<C extends new (...args: any[]) => any, A extends unknown[] = ConstructorParameters<C>>(
  cls: C,
  prepare?: (args: unknown[]) => unknown[],
): CallableClass<C, A> {
  const proxy: C = new Proxy(cls, {
    apply: (target, _this, args: unknown[]) => Reflect.construct(target, prepare ? prepare(args) : args),
    construct: (target, args: unknown[], newTarget) =>
      Reflect.construct(target, prepare ? prepare(args) : args, newTarget === proxy ? target : newTarget),
  });
  return proxy as CallableClass<C, A>;
}

type PoolArgs = [processes?: number | null | PoolOptions, initializer?: Function | null, initargs?: unknown[], maxtasksperchild?: number | null];

/**
 * What every context offers (Python's `BaseContext`): the classes and functions of the
 * `multiprocessing` namespace, bound to the context's start method. Each member is used
 * exactly as the root export of the same name: classes with `new` (and by call, as Python
 * does), functions by call.
 */
export class BaseContext {
  /** The Process class of this context (set by each concrete context). */
  declare readonly Process: CallableClass<typeof BaseProcess>;
  readonly ProcessError = callable(errors.ProcessError);
  readonly BufferTooShort = callable(errors.BufferTooShort);
  readonly TimeoutError = callable(errors.TimeoutError);
  readonly AuthenticationError = callable(errors.AuthenticationError);

  readonly Lock = callable(Lock);
  readonly RLock = callable(RLock);
  readonly Condition = callable(Condition);
  readonly Semaphore = callable(Semaphore);
  readonly BoundedSemaphore = callable(BoundedSemaphore);
  readonly Event = callable(Event);
  readonly Barrier = callable(Barrier);
  readonly Queue = callable(Queue);
  readonly JoinableQueue = callable(JoinableQueue);
  readonly SimpleQueue = callable(SimpleQueue);
  #pool?: CallableClass<typeof Pool, PoolArgs>;
  /** A pool whose workers are started by this context (Python's `ctx.Pool(...)`). */
  get Pool(): CallableClass<typeof Pool, PoolArgs> {
    // Made on first use: pool.ts imports this module.
    return (this.#pool ??= callable<typeof Pool, PoolArgs>(Pool, (args) => {
      const o = optionalArgs<PoolOptions>('Pool', ['processes', 'initializer', 'initargs', 'maxtasksperchild'], args);
      return [{ ...o, context: this.getContext() }];
    }));
  }
  readonly Pipe = Pipe;
  readonly RawValue = sharedctypes.RawValue;
  readonly RawArray = sharedctypes.RawArray;
  readonly Value = sharedctypes.Value;
  readonly Array = sharedctypes.Array;

  /** Python's `cpu_count()`: the parallelism available to this process. */
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
  getLogger() {
    return getLogger();
  }
  logToStderr(level?: number | string | null | { level?: number | string | null }) {
    return logToStderr(optionalArg<number | string | null>('logToStderr', 'level', level));
  }
  setExecutable(path: string): void {
    setExecutable(path);
  }
  /** Windows freezing support: nothing to do here. */
  freezeSupport(): void {}

  /** Python's `get_context(method=None)`; also `getContext({ method })`. */
  getContext(method?: string | null | { method?: string | null }): BaseContext {
    const m = optionalArg<string | null>('getContext', 'method', method);
    if (m == null) return this;
    const ctx = contexts[m];
    if (!ctx) throw new ValueError(REASONS[m] ?? `cannot find context for ${inspect(m)}`);
    return ctx;
  }
  getAllStartMethods(): string[] {
    return Object.keys(contexts);
  }
  /** Python's `get_start_method(allow_none=False)`; also `getStartMethod({ allowNone })`. */
  getStartMethod(allowNone?: boolean | { allowNone?: boolean }): string | null {
    optionalArg<boolean>('getStartMethod', 'allowNone', allowNone);
    return (this as unknown as { _name: string })._name;
  }
  /** Python's `set_start_method(method, force=False)`: only the default context can. */
  setStartMethod(method: string | null | { method?: string | null; force?: boolean }, force?: boolean | { force?: boolean }): void {
    startMethodArgs(method, force);
    throw new ValueError('cannot set start method of concrete context');
  }
}

function startMethodArgs(method: unknown, force: unknown): { method: string | null; force: boolean } {
  const o = optionalArgs<{ method: string | null; force: boolean }>('setStartMethod', ['method', 'force'], [method, force]);
  if (o.method === undefined) throw new TypeError("setStartMethod() missing required argument: 'method'");
  return { method: o.method, force: Boolean(o.force) };
}

export class SpawnContext extends BaseContext {
  readonly _name = 'spawn';
  override readonly Process = callable(SpawnProcess);
}

const contexts: Record<string, BaseContext> = { spawn: new SpawnContext() };

export class DefaultContext extends BaseContext {
  override readonly Process = callable(Process);
  #actual: BaseContext | null = null;

  override getContext(method?: string | null | { method?: string | null }): BaseContext {
    const m = optionalArg<string | null>('getContext', 'method', method);
    if (m == null) {
      this.#actual ??= contexts.spawn;
      return this.#actual;
    }
    return super.getContext(m);
  }
  override getStartMethod(allowNone?: boolean | { allowNone?: boolean }): string | null {
    const none = optionalArg<boolean>('getStartMethod', 'allowNone', allowNone) ?? false;
    if (this.#actual === null) {
      if (none) return null;
      this.#actual = contexts.spawn;
    }
    return (this.#actual as SpawnContext)._name;
  }
  override setStartMethod(method: string | null | { method?: string | null; force?: boolean }, force?: boolean | { force?: boolean }): void {
    const o = startMethodArgs(method, force);
    if (this.#actual !== null && !o.force) throw new RuntimeError('context has already been set');
    if (o.method === null && o.force) {
      this.#actual = null;
      return;
    }
    this.#actual = super.getContext(o.method);
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

/** Python's `get_context(method=None)`: a context object (only 'spawn' here). */
export const getContext = (method?: string | null | { method?: string | null }): BaseContext => defaultContext.getContext(method);
/** Python's `get_start_method(allow_none=False)`. */
export const getStartMethod = (allowNone?: boolean | { allowNone?: boolean }): string | null => defaultContext.getStartMethod(allowNone);
/** Python's `set_start_method(method, force=False)`: RuntimeError if already set, unless forced. */
export const setStartMethod = (method: string | null | { method?: string | null; force?: boolean }, force?: boolean | { force?: boolean }): void =>
  defaultContext.setStartMethod(method, force);
export const getAllStartMethods = (): string[] => defaultContext.getAllStartMethods();
export const cpuCount = (): number => defaultContext.cpuCount();
export const freezeSupport = (): void => defaultContext.freezeSupport();
