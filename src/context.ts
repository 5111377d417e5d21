// Start methods and contexts (Python's multiprocessing.context): 'spawn' and
// 'forkserver'. 'fork' is not available: a Node.js process that runs user code cannot
// be forked safely (V8's and libuv's threads do not survive fork); the fork server is a
// node process kept quiescent for that purpose (forkserver.ts).
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
import { _inheritedStartMethod, _setStartMethodName, _setStartMethodPopen, activeChildren, BaseProcess, currentProcess, parentProcess, Process, type Popen } from './process.js';
import { setExecutable, SpawnProcess } from './spawn.js';
import { ForkServerProcess, setForkserverPreload } from './forkserver.js';
import { getLogger, logToStderr } from './util.js';

// The Process classes live beside what they need (process.ts, spawn.ts) so that a child
// does not load the whole library to re-create its Process object.
export { ForkServerProcess, Process, SpawnProcess };

const REASONS: Record<string, string> = {
  fork: "the 'fork' start method is not available: a Node.js process cannot be forked safely (V8's and libuv's threads do not survive fork); use 'spawn'",
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

/**
 * The arguments of `ctx.Pool(...)`: Python's positional `(processes, initializer, initargs, maxtasksperchild)` or one options object.
 */
export type PoolArgs = [processes?: number | null | PoolOptions, initializer?: Function | null, initargs?: unknown[], maxtasksperchild?: number | null];

/**
 * What every context offers (Python's `BaseContext`): the classes and functions of the
 * `multiprocessing` namespace, bound to the context's start method. Each member is used
 * exactly as the root export of the same name: classes with `new` (and by call, as Python
 * does), functions by call.
 */
export class BaseContext {
  /** The Process class of this context (set by each concrete context). */
  declare readonly Process: CallableClass<typeof BaseProcess>;
  /** Python's `ctx.ProcessError`: the same class as the root export {@link ProcessError}. */
  readonly ProcessError = callable(errors.ProcessError);
  /** Python's `ctx.BufferTooShort`: the same class as the root export. */
  readonly BufferTooShort = callable(errors.BufferTooShort);
  /** Python's `ctx.TimeoutError`: the same class as the root export. */
  readonly TimeoutError = callable(errors.TimeoutError);
  /** Python's `ctx.AuthenticationError`: the same class as the root export. */
  readonly AuthenticationError = callable(errors.AuthenticationError);

  /** Python's `ctx.Lock()`: {@link Lock}, also callable without `new`. */
  readonly Lock = callable(Lock);
  /** Python's `ctx.RLock()`: {@link RLock}, also callable without `new`. */
  readonly RLock = callable(RLock);
  /** Python's `ctx.Condition(lock)`: {@link Condition}, also callable without `new`. */
  readonly Condition = callable(Condition);
  /** Python's `ctx.Semaphore(value)`: {@link Semaphore}, also callable without `new`. */
  readonly Semaphore = callable(Semaphore);
  /** Python's `ctx.BoundedSemaphore(value)`: {@link BoundedSemaphore}, also callable without `new`. */
  readonly BoundedSemaphore = callable(BoundedSemaphore);
  /** Python's `ctx.Event()`: {@link Event}, also callable without `new`. */
  readonly Event = callable(Event);
  /** Python's `ctx.Barrier(parties, action, timeout)`: {@link Barrier}, also callable without `new`. */
  readonly Barrier = callable(Barrier);
  /** Python's `ctx.Queue(maxsize)`: {@link Queue}, also callable without `new`. */
  readonly Queue = callable(Queue);
  /** Python's `ctx.JoinableQueue(maxsize)`: {@link JoinableQueue}, also callable without `new`. */
  readonly JoinableQueue = callable(JoinableQueue);
  /** Python's `ctx.SimpleQueue()`: {@link SimpleQueue}, also callable without `new`. */
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
  /** Python's `ctx.Pipe(duplex)`: the root export {@link Pipe}. */
  readonly Pipe = Pipe;
  /** Python's `ctx.RawValue(typecode_or_type, *args)`: the root export {@link RawValue}. */
  readonly RawValue = sharedctypes.RawValue;
  /** Python's `ctx.RawArray(typecode_or_type, size_or_initializer)`: the root export {@link RawArray}. */
  readonly RawArray = sharedctypes.RawArray;
  /** Python's `ctx.Value(typecode_or_type, *args, lock=True)`: the root export {@link Value}. */
  readonly Value = sharedctypes.Value;
  /** Python's `ctx.Array(typecode_or_type, size_or_initializer, lock=True)`: the root export `Array`. */
  readonly Array = sharedctypes.Array;

  /**
   * Python's `ctx.Manager()`: a started `SyncManager` (node-multiprocessing/managers) whose server process this context
   * starts (`await using manager = await ctx.Manager()`).
   */
  async Manager(): Promise<import('./managers.js').SyncManager> {
    // Loaded on first use: managers.ts imports this module.
    const { Manager } = await import('./managers.js');
    return Manager(this);
  }

  /** Python's `cpu_count()`: the parallelism available to this process. */
  cpuCount(): number {
    return availableParallelism();
  }
  /** Python's `current_process()`: see {@link currentProcess}. */
  currentProcess(): BaseProcess {
    return currentProcess();
  }
  /** Python's `parent_process()`: see {@link parentProcess}. */
  parentProcess() {
    return parentProcess();
  }
  /** Python's `active_children()`: see {@link activeChildren}. */
  activeChildren(): BaseProcess[] {
    return activeChildren();
  }
  /** Python's `get_logger()`: the library's logger (see {@link getLogger}). */
  getLogger() {
    return getLogger();
  }
  /** Python's `log_to_stderr(level)`: see {@link logToStderr}. */
  logToStderr(level?: number | string | null | { level?: number | string | null }) {
    return logToStderr(optionalArg<number | string | null>('logToStderr', 'level', level));
  }
  /** Python's `set_executable(path)`: the node binary children run (see {@link setExecutable}). */
  setExecutable(path: string): void {
    setExecutable(path);
  }
  /**
   * Python's `set_forkserver_preload(module_names)`: modules the fork server loads before
   * it starts children (see {@link setForkserverPreload}).
   */
  setForkserverPreload(moduleNames: string[]): void {
    setForkserverPreload(moduleNames);
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
  /** Python's `get_all_start_methods()`: `['spawn', 'forkserver']` (`fork` is not available). */
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

/**
 * Python's `SpawnContext`, `getContext('spawn')`: children are fresh node processes that import the target's module.
 */
export class SpawnContext extends BaseContext {
  /** @internal */
  readonly _name = 'spawn';
  override readonly Process = callable(SpawnProcess);
}

/**
 * Python's `ForkServerContext`, `getContext('forkserver')`: children are made by a server
 * process that has already started Node and loaded the library and the preload modules
 * (see {@link setForkserverPreload}); otherwise they behave as spawn children.
 */
export class ForkServerContext extends BaseContext {
  /** @internal */
  readonly _name = 'forkserver';
  override readonly Process = callable(ForkServerProcess);
}

const contexts: Record<string, BaseContext> = { spawn: new SpawnContext(), forkserver: new ForkServerContext() };

/**
 * Python's `DefaultContext`: the root namespace's context ({@link defaultContext}), whose start method
 * can be set once with `setStartMethod` (`'spawn'`, the default, or `'forkserver'`).
 */
export class DefaultContext extends BaseContext {
  override readonly Process = callable(Process);
  #actual: BaseContext | null = null;

  override getContext(method?: string | null | { method?: string | null }): BaseContext {
    const m = optionalArg<string | null>('getContext', 'method', method);
    if (m == null) {
      this.#actual ??= this.#inherited();
      return this.#actual;
    }
    return super.getContext(m);
  }
  /** The parent's start method in a child (as Python's spawn preparation), else 'spawn'. */
  #inherited(): BaseContext {
    return contexts[_inheritedStartMethod() ?? 'spawn'] ?? contexts.spawn;
  }
  /** The start method set here (null if never set). @internal */
  _explicit(): string | null {
    return this.#actual === null ? null : (this.#actual as SpawnContext)._name;
  }
  override getStartMethod(allowNone?: boolean | { allowNone?: boolean }): string | null {
    const none = optionalArg<boolean>('getStartMethod', 'allowNone', allowNone) ?? false;
    if (this.#actual === null) {
      if (none) return null;
      this.#actual = this.#inherited();
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
    return ['spawn', 'forkserver'];
  }
}

/** Python's `multiprocessing._default_context`: what the root exports use. */
export const defaultContext = new DefaultContext();

_setStartMethodName(() => defaultContext._explicit());
// The default context's Process starts the way the current start method says.
_setStartMethodPopen((proc) => {
  const ctx = defaultContext.getContext(defaultContext.getStartMethod()) as SpawnContext;
  return (ctx.Process.prototype as unknown as { _Popen(p: BaseProcess): Popen })._Popen.call(proc, proc);
});

/** Python's `get_context(method=None)`: a context object ('spawn' or 'forkserver'). */
export const getContext = (method?: string | null | { method?: string | null }): BaseContext => defaultContext.getContext(method);
/** Python's `get_start_method(allow_none=False)`. */
export const getStartMethod = (allowNone?: boolean | { allowNone?: boolean }): string | null => defaultContext.getStartMethod(allowNone);
/** Python's `set_start_method(method, force=False)`: RuntimeError if already set, unless forced. */
export const setStartMethod = (method: string | null | { method?: string | null; force?: boolean }, force?: boolean | { force?: boolean }): void =>
  defaultContext.setStartMethod(method, force);
/**
 * Python's `get_all_start_methods()`: `['spawn', 'forkserver']`, the default first (`fork` cannot work in Node.js).
 */
export const getAllStartMethods = (): string[] => defaultContext.getAllStartMethods();
/**
 * Python's `cpu_count()`: `os.availableParallelism()`, the CPUs this process may use (Python 3.13's `process_cpu_count()`).
 */
export const cpuCount = (): number => defaultContext.cpuCount();
export { setForkserverPreload };
/**
 * Python's `multiprocessing.Manager()`: a started `SyncManager` (node-multiprocessing/managers) whose
 * server process the default context starts: `await using manager = await Manager();` is Python's
 * `with Manager() as manager:`. The managers module is loaded on the first call.
 */
export const Manager = (): Promise<import('./managers.js').SyncManager> => defaultContext.Manager();
/** Python's `freeze_support()`: does nothing (it is for frozen Windows executables). */
export const freezeSupport = (): void => defaultContext.freezeSupport();
