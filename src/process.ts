// Process objects (Python's multiprocessing.process): BaseProcess, the current and
// parent process, activeChildren. How a child is started lives in spawn.ts.
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { inspect } from 'node:util';
import { assertionError, RuntimeError, ValueError, nativeCall } from './errors.js';
import { native } from './native.js';
import { bootstrapping, reduce, registerKind, type Reduced } from './reduction.js';
import { _setChildrenAtExit, _setProcessNameSource, Finalize, info, runExitHandlers } from './util.js';
import { timeoutArg, timeoutSeconds, type Timeout, type TimeoutOptions } from './timeouts.js';
import * as wait from './wait.js';

/** What starts a child and tracks it: implemented per start method (spawn.ts). */
export interface Popen {
  readonly pid: number;
  readonly sentinel: number;
  /** A descriptor readable when the process ends, for the library's own waits (not handed out, unlike `sentinel`). */
  readonly _waitFd?: number;
  returncode: number | null;
  poll(): number | null;
  waitSync(timeout?: number | null): number | null;
  wait(timeout?: number | null): Promise<number | null>;
  terminate(): void;
  kill(): void;
  close(): void;
}

/**
 * The options object of `new Process({...})`: Python's `Process(target=, args=, name=, daemon=)`
 * keyword arguments (there is no `kwargs`: JavaScript has no keyword arguments).
 */
export interface ProcessOptions {
  /**
   * The function the child calls (`run()` calls `target(...args)`). An exported function travels by
   * its module and name; any other by its source text, which must not use outer variables.
   */
  target?: Function | null;
  /**
   * Arguments for `target`; they are copied to the child (library objects such as a Lock, a Queue or a
   * Connection travel as the same resource).
   */
  args?: unknown[];
  /** The process's name; by default `Process-N` (`Process-N:M` in a child), as in Python. */
  name?: string | null;
  /** Whether the process is daemonic; by default inherited from the creating process. */
  daemon?: boolean | null;
}

interface Config {
  authkey: Buffer;
  daemon?: boolean;
}

/** Internal state, under a symbol so that it never travels as a "field" of a subclass. */
const S = Symbol('process state');
interface State {
  target: Function | null;
  args: unknown[];
  name: string;
  identity: number[];
  config: Config;
  parentPid: number | null;
  popen: Popen | null;
  closed: boolean;
  isCurrent: boolean;
  startMethod?: string;
}

let current: BaseProcess;
let parent: ParentProcess | null = null;
const children = new Set<BaseProcess>();
/** Started threads (multiprocessing.dummy), apart from the processes. */
const threadChildren = new Set<BaseProcess>();
/**
 * How many processes (0) and threads (1) this process has made, for their names: shared
 * with its threads (Python's counters are per process, and its threads share them).
 */
let counters = new Int32Array(new SharedArrayBuffer(8));
/** Sending a Process is only allowed while starting it (Python's spawning popen check). */
let spawning: BaseProcess | null = null;

// Python's names for exit codes of killed processes: '-SIGTERM' for -15; of two names for
// one signal, the one Python picks.
const exitcodeToName = new Map<number, string>();
for (const [name, num] of Object.entries(osConstants.signals)) {
  if (!exitcodeToName.has(-num) || name === 'SIGABRT' || name === 'SIGPOLL') exitcodeToName.set(-num, `-${name}`);
}

const BOOTSTRAP_MESSAGE = `
        An attempt has been made to start a new process before the
        current process has finished its bootstrapping phase.

        This probably means that the module defining the child's target
        starts processes when it is imported, instead of only when it is
        run as the main program. Use the usual idiom in that module:

            if (import.meta.url === pathToFileURL(process.argv[1]).href) {
                ...
            }

        (or \`if (require.main === module)\` in CommonJS).`;

/** Python's positional form or one options object (Process and Thread take the same). @internal */
export function _parseProcessArgs(args: unknown[]): ProcessOptions {
  const [first] = args;
  if (args.length === 1 && first !== null && typeof first === 'object' && !Array.isArray(first)) return first as ProcessOptions;
  // Python's positional order: (group, target, name, args, kwargs, daemon).
  const [group, target, name, pargs, kwargs, daemon] = args as [unknown, Function, string, unknown[], unknown, boolean];
  if (group != null) throw assertionError('group argument must be None for now');
  if (kwargs != null && Object.keys(kwargs as object).length) throw new TypeError('kwargs are not supported in JavaScript: pass args');
  return { target, name, args: pargs, daemon };
}

// Plain functions, not private methods: a Process re-created in a child (without its
// constructor) must pass them too (Python's _check_closed and join's assertions).
function checkClosed(p: BaseProcess): void {
  if (p[S].closed) throw new ValueError('process object is closed');
}

function checkJoinable(p: BaseProcess): Popen {
  checkClosed(p);
  const s = p[S];
  if (s.parentPid !== process.pid) throw assertionError('can only join a child process');
  if (!s.popen) throw assertionError('can only join a started process');
  return s.popen;
}

/**
 * Python's `multiprocessing.process.BaseProcess`: a process object, the base of {@link Process}.
 *
 * Construct it with Python's positional arguments `(group, target, name, args, kwargs, daemon)` or an
 * options object; subclass it and override `run()` as in Python (export the subclass so that a child
 * can import it; its own fields travel with it). Blocking calls return Promises (`await p.join()`),
 * with `...Sync` twins that block the thread.
 */
export class BaseProcess {
  /** @internal */
  [S]: State;

  constructor(...args: unknown[]);
  constructor(options?: ProcessOptions);
  constructor(...args: unknown[]) {
    const opts = _parseProcessArgs(args);
    if (opts.target != null && typeof opts.target !== 'function') throw new TypeError('target must be a function');
    if (opts.args != null && !Array.isArray(opts.args)) throw new TypeError('args must be an array');
    const cur = current?.[S];
    const thread = (new.target as typeof BaseProcess)._thread;
    const count = cur ? Atomics.add(counters, thread ? 1 : 0, 1) + 1 : 0;
    const identity = cur && !thread ? [...cur.identity, count] : cur ? [...cur.identity] : [];
    this[S] = {
      target: opts.target ?? null,
      args: [...(opts.args ?? [])],
      name: '',
      identity,
      config: cur ? { ...cur.config } : mainConfig(),
      parentPid: process.pid,
      popen: null,
      closed: false,
      isCurrent: false,
    };
    this[S].name = opts.name != null ? String(opts.name) : thread ? `Thread-${count}` : `${new.target.name}-${identity.join(':')}`;
    if (opts.daemon != null) this.daemon = opts.daemon;
  }

  /**
   * Whether objects of this class are threads (multiprocessing.dummy) rather than
   * processes: named `Thread-N` from the process's thread counter, listed by the dummy
   * module's `activeChildren`, and startable from a daemonic process. @internal
   */
  static readonly _thread: boolean = false;

  /** Start a child for this object: supplied by the context's Process classes. */
  protected _Popen(_proc: BaseProcess): Popen {
    throw new ValueError('this process class has no start method; use Process or a context\'s Process');
  }

  /** The child's activity: calls `target(...args)`. Subclasses override it. */
  run(): unknown {
    const s = this[S];
    if (s.target) return s.target(...s.args);
    return undefined;
  }

  /**
   * Python's `start()`: start the child (a fresh node process, the `spawn` start method), at most
   * once. Throws Python's bootstrapping `RuntimeError` when called while a child imports this module.
   */
  start(): void {
    checkClosed(this);
    const s = this[S];
    if (s.popen !== null) throw assertionError('cannot start a process twice');
    if (s.parentPid !== process.pid) throw assertionError('can only start a process object created by current process');
    const thread = (this.constructor as typeof BaseProcess)._thread;
    if (current[S].config.daemon && !thread) throw assertionError('daemonic processes are not allowed to have children');
    if (bootstrapping()) throw new RuntimeError(BOOTSTRAP_MESSAGE);
    cleanup(children);
    spawning = this;
    try {
      s.popen = this._Popen(this);
    } finally {
      spawning = null;
    }
    (thread ? threadChildren : children).add(this);
  }

  /** Python's `terminate()`: send SIGTERM. Exit handlers and finally blocks of the child do not run. */
  terminate(): void {
    checkClosed(this);
    this[S].popen?.terminate();
  }

  /** Python's `kill()`: send SIGKILL. */
  kill(): void {
    checkClosed(this);
    this[S].popen?.kill();
  }


  /**
   * Python's `join(timeout)`: resolve when the process ends, or after `timeout` seconds (then check
   * `exitcode`): `join(1.5)` or `join({ timeout: 1.5 })`. A Promise, so the event loop keeps
   * running; `joinSync` blocks instead.
   */
  async join(timeout?: Timeout | TimeoutOptions): Promise<void> {
    const t = timeoutArg(timeout, 'join');
    const res = await checkJoinable(this).wait(t);
    if (res !== null) forget(this);
  }

  /** As `join`, blocking the calling thread, as Python's `join` does. */
  joinSync(timeout?: Timeout | TimeoutOptions): void {
    const t = timeoutArg(timeout, 'joinSync');
    const res = checkJoinable(this).waitSync(t);
    if (res !== null) forget(this);
  }

  /** Python's `is_alive()`: started and not yet ended. */
  isAlive(): boolean {
    checkClosed(this);
    const s = this[S];
    if (s.isCurrent) return true;
    if (s.parentPid !== process.pid) throw assertionError('can only test a child process');
    if (!s.popen) return false;
    if (s.popen.poll() === null) return true;
    forget(this);
    return false;
  }

  /**
   * Python's `close()`: release the resources of a finished process (its pidfd). Throws
   * `ValueError` while it runs; most methods and properties throw `ValueError` after it.
   */
  close(): void {
    const s = this[S];
    if (s.closed) return;
    if (s.popen) {
      if (s.popen.poll() === null) {
        throw new ValueError('Cannot close a process while it is still running. You should first call join() or terminate().');
      }
      s.popen.close();
      forget(this);
    }
    s.closed = true;
  }

  /** `using p = new Process(...)` closes it at the end of the block (Python has no `with` for processes). */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Python's `name`: the process's name, used in logs and error messages; not unique. */
  get name(): string {
    return this[S].name;
  }
  /** Rename the process (a string). */
  set name(v: string) {
    if (typeof v !== 'string') throw new TypeError('name must be a string');
    this[S].name = v;
  }

  /**
   * Python's `daemon`: a daemonic process is terminated when its parent exits and cannot have children.
   * Set it before `start()`.
   */
  get daemon(): boolean {
    return this[S].config.daemon ?? false;
  }
  /** Make the process daemonic or not; only before `start()`. */
  set daemon(v: boolean) {
    if (this[S].popen !== null) throw assertionError('process has already started');
    this[S].config.daemon = Boolean(v);
  }

  /**
   * Python's `authkey`: the key of the process's Listener/Client handshakes; 32 random bytes in the
   * main process, inherited by children. A Buffer instead of Python's `bytes`.
   */
  get authkey(): Buffer {
    return this[S].config.authkey;
  }
  /** Set the process's key (copied; any bytes). */
  set authkey(v: Buffer | Uint8Array) {
    this[S].config.authkey = Buffer.from(v);
  }

  /** Python's `exitcode`: null while running, then the exit code, or minus the signal number if a signal killed it. */
  get exitcode(): number | null {
    checkClosed(this);
    const p = this[S].popen;
    return p ? p.poll() : null;
  }

  /** Python's `ident`: the same as `pid`. */
  get ident(): number | null {
    checkClosed(this);
    const s = this[S];
    if (s.isCurrent) return process.pid;
    return s.popen?.pid ?? null;
  }
  /** Python's `pid`: the child's process id, null before `start()`. */
  get pid(): number | null {
    return this.ident;
  }

  /**
   * A descriptor that becomes readable when the process ends (a pidfd). Once read, it
   * stays open until `close()` or the object is collected, as in Python; a process whose
   * sentinel was never read releases its pidfd as soon as it is joined.
   */
  get sentinel(): number {
    checkClosed(this);
    const p = this[S].popen;
    if (!p) throw new ValueError('process not started');
    return p.sentinel;
  }

  /** As `sentinel`, for the library's own waits: does not keep the pidfd past the join. @internal */
  get _waitFd(): number {
    checkClosed(this);
    const p = this[S].popen;
    if (!p) throw new ValueError('process not started');
    return p._waitFd ?? p.sentinel;
  }

  /** Python's `_identity`. @internal */
  get _identity(): number[] {
    return this[S].identity;
  }
  /** @internal */
  get _parentPid(): number | null {
    return this[S].parentPid;
  }
  /** @internal */
  get _config(): Readonly<Config> {
    return this[S].config;
  }

  /** Python's `repr()`: `<Process name='Process-1' pid=123 parent=100 stopped exitcode=0>`. */
  toString(): string {
    const s = this[S];
    let exitcode: number | null = null;
    let status: string;
    if (s.isCurrent) status = 'started';
    else if (s.closed) status = 'closed';
    else if (s.parentPid !== process.pid) status = 'unknown';
    else if (!s.popen) status = 'initial';
    else {
      exitcode = s.popen.poll();
      status = exitcode === null ? 'started' : 'stopped';
    }
    const info = [this.constructor.name, `name='${s.name}'`];
    if (s.popen) info.push(`pid=${s.popen.pid}`);
    info.push(`parent=${s.parentPid ?? 'None'}`, status);
    if (exitcode !== null) info.push(`exitcode=${exitcodeToName.get(exitcode) ?? exitcode}`);
    if (this.daemon) info.push('daemon');
    return `<${info.join(' ')}>`;
  }

  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }

  /** @internal */
  [reduce](): Reduced {
    // Python pickles a Process only while spawning (its AuthenticationString's check): the
    // one being started, and others among its arguments. Those arrive in the child as
    // objects it did not create: start, join and isAlive there are AssertionErrors.
    if (spawning === null) {
      throw new TypeError('Process objects cannot be sent to other processes; they travel as the arguments of a process being started');
    }
    const s = this[S];
    if (spawning !== this && s.popen !== null) {
      // Python fails too (its Popen cannot be pickled): only the creator may join a started process.
      throw new TypeError(`a started Process object cannot be sent to another process: ${this}`);
    }
    const fields: Record<string, unknown> = {};
    for (const k of Object.keys(this)) fields[k] = (this as Record<string, unknown>)[k];
    const cls = this.constructor as Function;
    return {
      kind: 'process',
      state: {
        cls: builtinProcessClasses.has(cls) ? cls.name : cls,
        fields,
        target: s.target,
        args: s.args,
        name: s.name,
        identity: s.identity,
        config: s.config,
        parentPid: s.parentPid,
      },
    };
  }

  /** In a child: become the current process and run. Returns the exit code. @internal */
  async _bootstrap(): Promise<number> {
    let exitcode = 0;
    try {
      info('child process calling self.run()');
      try {
        await this.run();
      } finally {
        runExitHandlers();
      }
    } catch (e) {
      exitcode = 1;
      process.stderr.write(`Process ${this[S].name}:\n${(e as Error)?.stack ?? String(e)}\n`);
    }
    info('process exiting with exitcode %d', exitcode);
    return exitcode;
  }
}

/** Process classes of this library, re-created in the child by name. */
const builtinProcessClasses = new Map<Function | string, Function>();
export function registerProcessClass(cls: typeof BaseProcess): void {
  builtinProcessClasses.set(cls, cls);
  builtinProcessClasses.set(cls.name, cls);
}

interface ProcessStateWire {
  cls: string | (new () => BaseProcess);
  fields: Record<string, unknown>;
  target: Function | null;
  args: unknown[];
  name: string;
  identity: number[];
  config: Config;
  parentPid: number;
}

registerKind('process', (w: ProcessStateWire) => {
  const cls = (typeof w.cls === 'string' ? builtinProcessClasses.get(w.cls) : w.cls) as (new () => BaseProcess) | undefined;
  if (!cls) throw new TypeError(`unknown process class ${String(w.cls)}`);
  const obj = Object.create(cls.prototype) as BaseProcess;
  Object.assign(obj, w.fields);
  obj[S] = {
    target: w.target,
    args: w.args,
    name: w.name,
    identity: w.identity,
    config: { ...w.config, authkey: Buffer.from(w.config.authkey) },
    parentPid: w.parentPid,
    popen: null,
    closed: false,
    isCurrent: false,
  };
  return obj;
});

let startMethodPopen: ((proc: BaseProcess) => Popen) | null = null;
let startMethodName: () => string | null = () => null;
let inheritedStartMethod: string | null = null;
/** Set by the context module: the start method set explicitly in this process, if any. */
export function _setStartMethodName(fn: () => string | null): void {
  startMethodName = fn;
}
/** The start method a child should use (Python's preparation data `start_method`). @internal */
export function _startMethodForChild(): string | null {
  return startMethodName() ?? inheritedStartMethod;
}
/** In a child: the parent's start method, used by the default context unless set here. @internal */
export function _inheritStartMethod(method: string | null | undefined): void {
  inheritedStartMethod = method ?? null;
}
/** The start method inherited from the parent, if any. @internal */
export function _inheritedStartMethod(): string | null {
  return inheritedStartMethod;
}
/** Set by the context module: how the default context starts a process. */
export function _setStartMethodPopen(fn: (proc: BaseProcess) => Popen): void {
  startMethodPopen = fn;
}

/**
 * Python's `multiprocessing.Process`: a process object of the default context, started with
 * whichever start method is current (only `spawn` here: a fresh node process that imports the
 * target's module).
 *
 * ```ts
 * const p = new Process({ target: f, args: ['bob'] });
 * p.start();
 * await p.join();
 * ```
 */
export class Process extends BaseProcess {
  protected override _Popen(proc: BaseProcess): Popen {
    if (!startMethodPopen) throw new ValueError('no start method is loaded: import the library\'s context');
    return startMethodPopen(proc);
  }
}
registerProcessClass(Process);

// The main process's key is made when first read: a child replaces its MainProcess
// with the Process object it receives, so node:crypto stays off its start-up path.
function mainConfig(): Config {
  let key: Buffer | undefined;
  const config = {} as Config;
  Object.defineProperty(config, 'authkey', {
    get: () => (key ??= (createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto')).randomBytes(32)),
    set: (v: Buffer) => {
      key = v;
    },
    enumerable: true,
    configurable: true,
  });
  return config;
}

class MainProcess extends BaseProcess {
  constructor() {
    super();
    const s = this[S];
    s.name = 'MainProcess';
    s.parentPid = null;
    s.isCurrent = true;
  }
}

/**
 * The parent as seen from a child (Python's `_ParentProcess`), from {@link parentProcess}: it
 * can be watched (`isAlive`, `join`, `sentinel`) but not controlled.
 */
export class ParentProcess {
  readonly #pidfd: number;
  /** The parent's name (Python's `name`). */
  readonly name: string;
  /** The parent's process id (Python's `pid`). */
  readonly pid: number;
  /** @internal */
  constructor(name: string, pid: number) {
    this.name = name;
    this.pid = pid;
    this.#pidfd = nativeCall(() => native.pidfdOpen(pid));
    new Finalize(this, closeFd, [this.#pidfd]);
  }
  /** The parent's process id (Python's `ident`). */
  get ident(): number {
    return this.pid;
  }
  /** A descriptor (a pidfd) that becomes readable when the parent ends, for `wait()`. */
  get sentinel(): number {
    return this.#pidfd;
  }
  /** Whether the parent still runs. */
  isAlive(): boolean {
    return !nativeCall(() => native.waitReadable(this.#pidfd, 0));
  }
  /** Resolve when the parent ends, or after `timeout` seconds. */
  async join(timeout?: Timeout | TimeoutOptions): Promise<void> {
    await wait.readable(this.#pidfd, timeoutSeconds(timeoutArg(timeout, 'join')));
  }
  /** Block until the parent ends, or for `timeout` seconds. */
  joinSync(timeout?: Timeout | TimeoutOptions): void {
    const t = timeoutSeconds(timeoutArg(timeout, 'joinSync'));
    nativeCall(() => native.waitReadable(this.#pidfd, t));
  }
  /** Python's `repr()`: `<ParentProcess name='MainProcess' parent=100 started>`. */
  toString(): string {
    return `<ParentProcess name='${this.name}' parent=${this.pid} ${this.isAlive() ? 'started' : 'stopped'}>`;
  }
  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

function closeFd(fd: number): void {
  wait.forget(fd);
  native.closeFd(fd);
}

current = new MainProcess();
_setProcessNameSource(() => current[S].name);

/** Called by the child bootstrap: `proc` becomes the current process. */
export function _becomeChild(proc: BaseProcess, parentName: string): void {
  const s = proc[S];
  s.isCurrent = true;
  s.popen = null;
  current = proc;
  children.clear();
  counters = new Int32Array(new SharedArrayBuffer(8));
  try {
    parent = new ParentProcess(parentName, s.parentPid!);
  } catch {
    parent = null; // the parent is already gone
  }
}

/** What a new thread of this process needs to see the same current process. @internal */
export interface ThreadPreparation {
  name: string;
  identity: number[];
  authkey: Buffer;
  daemon: boolean;
  parentPid: number | null;
  parent: { name: string; pid: number } | null;
  counters: SharedArrayBuffer;
}

/** @internal */
export function _threadPreparation(): ThreadPreparation {
  const s = current[S];
  return {
    name: s.name,
    identity: s.identity,
    authkey: s.config.authkey,
    daemon: s.config.daemon ?? false,
    parentPid: s.parentPid,
    parent: parent && { name: parent.name, pid: parent.pid },
    counters: counters.buffer as SharedArrayBuffer,
  };
}

/**
 * Called by a thread's bootstrap (dummy_main.ts): this thread's current process becomes
 * the process it runs in (its name, authkey, parent and counters). @internal
 */
export function _becomeThread(p: ThreadPreparation): void {
  const s = current[S];
  s.name = p.name;
  s.identity = p.identity;
  s.config = { authkey: Buffer.from(p.authkey), daemon: p.daemon };
  s.parentPid = p.parentPid;
  counters = new Int32Array(p.counters);
  try {
    parent = p.parent ? new ParentProcess(p.parent.name, p.parent.pid) : null;
  } catch {
    parent = null;
  }
}

let thisThread: BaseProcess | null = null;

/**
 * The running thread's name when it is not the main thread (Python's lock reprs name the
 * owner `process|thread`); null in the main thread. @internal
 */
export function _currentThreadName(): string | null {
  return thisThread && thisThread[S].name;
}

/** Mark `proc` as the object of the running thread (dummy_main.ts). @internal */
export function _markCurrent(proc: BaseProcess): void {
  const s = proc[S];
  thisThread = proc;
  s.isCurrent = true;
  s.popen = null;
}

/** Python's `current_process()`: the process object of this process (`MainProcess` in the main one). */
export function currentProcess(): BaseProcess {
  return current;
}

/** Python's `parent_process()`: the parent of a child started by this library, null in the main process. */
export function parentProcess(): ParentProcess | null {
  return parent;
}

function forget(p: BaseProcess): void {
  children.delete(p);
  threadChildren.delete(p);
}

function cleanup(set: Set<BaseProcess>): void {
  for (const p of [...set]) {
    const popen = p[S].popen;
    if (popen && popen.poll() !== null) set.delete(p);
  }
}

/** Live children of the current process; finished ones are reaped. */
export function activeChildren(): BaseProcess[] {
  cleanup(children);
  return [...children];
}

/** Live threads started by this thread (multiprocessing.dummy's `active_children`). @internal */
export function _activeThreads(): BaseProcess[] {
  cleanup(threadChildren);
  return [...threadChildren];
}

// At exit, as threading's shutdown (the threads first: the others are joined, daemonic
// ones stopped and left) and then Python's _exit_function: terminate daemonic children,
// join the rest.
_setChildrenAtExit(() => {
  for (const p of _activeThreads()) {
    if (p.daemon) {
      p[S].popen?.terminate();
    } else {
      p[S].popen?.waitSync(null);
    }
    threadChildren.delete(p);
  }
  for (const p of activeChildren()) {
    if (p.daemon) {
      info('calling terminate() for daemon %s', p.name);
      p[S].popen?.terminate();
    }
  }
  for (const p of activeChildren()) {
    info('calling join() for process %s', p.name);
    p[S].popen?.waitSync(null);
    children.delete(p);
  }
});
