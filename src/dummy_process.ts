// Threads as multiprocessing.dummy's processes (Python's multiprocessing.dummy.DummyProcess):
// a `DummyProcess` is a Node worker thread that runs its target by the same rules as a
// child process. Its Process object, target and arguments cross with the one serializer
// (values copied, the library's objects shared: their descriptors are duplicated for the
// thread), it sees the same current process (name, authkey, parent), and it runs
// TypeScript under tsx as the parent does. Its end is seen on a socket pair: the thread
// holds one end, closed by the native addon when the thread's environment is torn down
// (however it ends), and the other end is its sentinel, as a child's pidfd is.
import { readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { isMainThread, threadId, Worker, type TransferListItem } from 'node:worker_threads';
import { inspect } from 'node:util';
import { nativeCall } from './errors.js';
import { native, nativeFile } from './native.js';
import {
  _activeThreads, _parseProcessArgs, _threadPreparation, BaseProcess, registerProcessClass,
  type Popen, type ThreadPreparation,
} from './process.js';
import { dumpsForThread } from './reduction.js';
import { blockFor } from './timeouts.js';
import { alwaysReadable, closePidfd } from './spawn.js';
import { _loggingForChild } from './logging.js';
import { Finalize, libraryModuleUrl } from './util.js';
import * as wait from './wait.js';

/** What a thread's bootstrap (dummy_main.ts) receives as its `workerData`. @internal */
export interface ThreadStart {
  prep: ThreadPreparation;
  /** The parent thread's logging settings (as a spawned child gets them). */
  logging: { logToStderr: boolean; logLevel?: number };
  /** The DummyProcess, serialized, and the descriptors it carries (owned by the thread). */
  data: Uint8Array;
  fds: number[];
  /** What goes beside the message (see Reduced.transfer). */
  transfer: unknown[];
  /** The thread's end of the sentinel pair: it writes its exit code there. */
  sentinel: number;
  /**
   * Who owns `sentinel` (`claim[0]`, see `closeFdAtExit`) and the message's descriptors and
   * counts (`claim[1]`): 0 the parent, 1 the thread, 2 the parent took them back.
   */
  claim: Int32Array;
  daemon: boolean;
}

/** Exit code of a thread ended by `terminate()`/`kill()`: as a process killed by SIGTERM. */
const TERMINATED = -15;

// --- TypeScript in threads ---

interface Loader {
  esm: string;
  cjs: string;
}
let loader: Loader | null | undefined;

/**
 * tsx's registration APIs, when this process runs under tsx (its loader is in execArgv)
 * and tsx does not register itself in worker threads on this Node version (it does from
 * Node 22.22.3, 24.11.1 and 25.1: see tsx's `isFeatureSupported` table).
 */
function tsxLoader(): Loader | null {
  if (loader !== undefined) return loader;
  loader = null;
  const [major, minor, patch] = process.versions.node.split('.').map(Number);
  const selfRegisters = major >= 26 || (major === 25 && minor >= 1) || (major === 24 && (minor > 11 || (minor === 11 && patch >= 1)))
    || (major === 22 && (minor > 22 || (minor === 22 && patch >= 3)));
  if (selfRegisters) return loader;
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const m = /^(--import|--require|-r|--loader|--experimental-loader)(?:=(.*))?$/.exec(argv[i]);
    if (!m) continue;
    const value = m[2] ?? argv[++i] ?? '';
    let base: string | null = null;
    const at = value.indexOf('/tsx/dist/');
    if (at >= 0) base = value.slice(0, at + '/tsx/'.length).replace(/^file:\/\//, '');
    else if (value === 'tsx' || value.startsWith('tsx/')) {
      try {
        // Resolved as Node resolves a bare --import: from the working directory.
        const pkg = createRequire(join(process.cwd(), 'noop.js')).resolve('tsx/package.json');
        base = pkg.slice(0, pkg.length - 'package.json'.length);
      } catch {
        /* not resolvable from here */
      }
    }
    if (base !== null) {
      loader = { esm: `${base}dist/esm/api/index.mjs`, cjs: `${base}dist/cjs/api/index.cjs` };
      break;
    }
  }
  return loader;
}

/**
 * The thread's entry (CommonJS, evaluated): first the sentinel is tied to the thread's
 * end, so that nothing after it can leave the parent waiting; then TypeScript support;
 * then the bootstrap module.
 */
const ENTRY = `
const { workerData: w } = require('node:worker_threads');
if (!require(w.nativeFile).closeFdAtExit(w.start.sentinel, w.start.claim)) process.exit(1);
(async () => {
  if (w.loader) {
    (await import(w.loader.esm)).register();
    require(w.loader.cjs).register();
  }
  await import(w.main);
})().catch((e) => {
  process.stderr.write(String((e && e.stack) || e) + '\\n');
  process.exit(1);
});
`;

// --- the thread's end, seen from its parent ---

class ThreadPopen implements Popen {
  readonly pid: number;
  /** Our end of the sentinel pair, until released. */
  readonly #fd: number;
  /** Whether `sentinel` was handed out: then it lives until close() or collection. */
  #exposed = false;
  /** Releases the sentinel (at the end of the thread unless handed out, at close, or when collected). */
  readonly #finalizer: Finalize<[number]>;
  returncode: number | null = null;
  #worker: Worker;
  #code: number | null = null;
  #terminated = false;
  #closed = false;
  #daemon: boolean;

  constructor(proc: DummyProcess) {
    // Serialize first: an unsendable argument fails here, before any thread exists.
    const msg = dumpsForThread(proc);
    let pair: number[];
    try {
      pair = nativeCall(() => native.socketPair());
    } catch (e) {
      msg.undo?.();
      throw e;
    }
    const [mine, theirs] = pair;
    const claim = new Int32Array(new SharedArrayBuffer(8));
    const start: ThreadStart = {
      prep: _threadPreparation(), logging: _loggingForChild(), data: msg.data, fds: msg.fds, transfer: msg.transfer ?? [], sentinel: theirs, claim, daemon: proc.daemon,
    };
    try {
      this.#worker = new Worker(ENTRY, {
        eval: true,
        workerData: { start, nativeFile, loader: tsxLoader(), main: libraryModuleUrl('dummy_main') },
        transferList: start.transfer.filter((x) => !(x instanceof SharedArrayBuffer)) as TransferListItem[],
      });
    } catch (e) {
      native.closeFd(mine);
      native.closeFd(theirs);
      msg.undo?.();
      throw e;
    }
    // Errors the bootstrap did not catch (thrown later by the thread's own callbacks) end
    // the thread with code 1: report them as Python's threading.excepthook would.
    this.#worker.on('error', (e) => {
      process.stderr.write(`Exception in thread ${proc.name}:\n${(e as Error)?.stack ?? String(e)}\n`);
    });
    // A thread stopped before its entry took over its end (and the descriptors of its
    // message): they are the parent's again, to close.
    this.#worker.on('exit', () => {
      if (Atomics.compareExchange(claim, 0, 0, 2) === 0) native.closeFd(theirs);
      if (Atomics.compareExchange(claim, 1, 0, 2) === 0) msg.undo?.();
    });
    this.#daemon = proc.daemon;
    if (proc.daemon) this.#worker.unref();
    this.pid = this.#worker.threadId;
    this.#fd = mine;
    this.#finalizer = new Finalize(this, closePidfd, [mine]);
  }

  /** A descriptor readable once the thread has ended (usable with `wait()`). */
  get sentinel(): number {
    if (this.#finalizer.stillActive()) {
      this.#exposed = true;
      return this.#fd;
    }
    return alwaysReadable();
  }

  /** The sentinel for this object's own waits (does not hand it out). @internal */
  get _waitFd(): number {
    return this.#finalizer.stillActive() ? this.#fd : alwaysReadable();
  }

  /** Read what the thread wrote (its exit code) and whether its end is closed. */
  #drain(): boolean {
    const buf = Buffer.alloc(64);
    const fd = this.#fd;
    for (;;) {
      if (!nativeCall(() => native.waitReadable(fd, 0))) return false;
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) {
        this.returncode = this.#code ?? (this.#terminated ? TERMINATED : 1);
        // Nothing needs the sentinel any more unless it was handed out.
        if (!this.#exposed) this.#finalizer.call();
        return true;
      }
      if (n >= 4) this.#code = buf.readInt32LE(n - 4);
    }
  }

  poll(): number | null {
    if (this.returncode === null && !this.#closed && this.#finalizer.stillActive()) this.#drain();
    return this.returncode;
  }

  waitSync(timeout?: number | null): number | null {
    const deadline = timeout == null ? null : Date.now() + Math.max(0, timeout) * 1000;
    while (this.poll() === null && !this.#closed) {
      const left = deadline === null ? null : Math.max(0, deadline - Date.now()) / 1000;
      if (left === 0) break;
      blockFor(left, (s) => nativeCall(() => native.waitReadable(this._waitFd, s)), (r) => !r);
    }
    return this.returncode;
  }

  async wait(timeout?: number | null): Promise<number | null> {
    const deadline = timeout == null ? null : Date.now() + Math.max(0, timeout) * 1000;
    for (;;) {
      if (this.poll() !== null || this.#closed) return this.returncode;
      const left = deadline === null ? null : Math.max(0, deadline - Date.now()) / 1000;
      if (left === 0) return null;
      await wait.readable(this._waitFd, left);
    }
  }

  terminate(): void {
    if (this.poll() !== null) return;
    this.#terminated = true;
    void this.#worker.terminate();
    // Node's terminate() refs the worker until it exits; a daemon thread blocked in a
    // ...Sync call does not exit until that call returns, and must not keep the process.
    if (this.#daemon) this.#worker.unref();
  }

  kill(): void {
    this.terminate();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#finalizer.call();
  }
}

// --- threads as processes ---

/** The object of the thread running now (null: not a thread started by this module). */
let current: DummyProcess | null = null;

/** Set by dummy_main.ts in a new thread. @internal */
export function _setCurrentThread(p: DummyProcess): void {
  current = p;
}

/**
 * A thread with the API of `Process` (Python's `multiprocessing.dummy.DummyProcess`, a
 * `threading.Thread`): `new DummyProcess({ target, args, name, daemon })` or Python's
 * positional order, then `start()`, `await join()` / `joinSync()`, `isAlive()`, `name`,
 * `daemon`, `exitcode`, `ident` (= `threadId`).
 *
 * The thread is a Node worker thread: it has its own module instances, so its target and
 * arguments travel as they do to a child process (functions by module and export name,
 * values copied; the library's locks, queues, Values, Arrays and connections are the same
 * objects on both sides). Differences from Python's: `exitcode` is the thread's code (0,
 * 1 when `run` threw, `n` for `process.exit(n)` inside the thread, -15 after
 * `terminate()`), where Python's dummy gives 0 for any finished thread; `terminate()` and
 * `kill()` stop the thread (Python threads cannot be stopped): in JavaScript at once, in
 * the library's blocking `...Sync` calls within about a tenth of a second (in a thread
 * they wait in slices), though not inside other native code (`Barrier.waitSync`, an
 * addon), which must return first; likewise a daemon thread blocked in a `...Sync` call
 * does not keep the process from exiting; `sentinel` is a descriptor that becomes
 * readable when the thread ends.
 */
export class DummyProcess extends BaseProcess {
  static override readonly _thread: boolean = true;

  constructor(...args: unknown[]);
  constructor(options?: { target?: Function | null; args?: unknown[]; name?: string | null; daemon?: boolean | null });
  constructor(...args: unknown[]) {
    super(...args);
    // A thread is daemonic if the thread that makes it is (Python's threading rule).
    if (_parseProcessArgs(args).daemon == null) this.daemon = current?.daemon ?? false;
  }

  protected override _Popen(proc: BaseProcess): Popen {
    return new ThreadPopen(proc as DummyProcess);
  }

  /** The thread's id (`worker.threadId`; Python's `Thread.ident`); null before it starts. */
  override get ident(): number | null {
    if (this === current) return threadId;
    return super.ident;
  }

  /** Node's name for `ident`. */
  get threadId(): number | null {
    return this.ident;
  }

  /** The thread's process: this one. */
  override get pid(): number | null {
    return this.ident === null ? null : process.pid;
  }

  /** Python's `threading.excepthook` output for an error thrown by `run`. @internal */
  override async _bootstrap(): Promise<number> {
    try {
      await this.run();
      return 0;
    } catch (e) {
      process.stderr.write(`Exception in thread ${this.name}:\n${(e as Error)?.stack ?? String(e)}\n`);
      return 1;
    }
  }

  override toString(): string {
    let status: string;
    if (this === current) status = `started${this.daemon ? ' daemon' : ''} ${threadId}`;
    else if (this.ident === null) status = 'initial';
    else {
      status = this.isAlive() ? 'started' : 'stopped';
      if (this.daemon) status += ' daemon';
      status += ` ${this.ident}`;
    }
    return `<${this.constructor.name}(${this.name}, ${status})>`;
  }

  override [inspect.custom](): string {
    return this.toString();
  }
}
registerProcessClass(DummyProcess);

/**
 * The main thread (Python's `threading._MainThread`) as `currentProcess()` of the dummy
 * module gives it outside the threads it started.
 */
export class MainThread {
  /** `MainThread` (a thread not started by this module: `Dummy-<threadId>`, as Python's `_DummyThread`). */
  readonly name: string = isMainThread ? 'MainThread' : `Dummy-${threadId}`;
  /** The main thread is not daemonic. */
  readonly daemon = false;
  /** Always null: the running thread has not ended. */
  readonly exitcode = null;
  /** Python's `Thread.ident`: Node's `threadId` (0 for the main thread). */
  get ident(): number {
    return threadId;
  }
  /** Node's name for `ident`. */
  get threadId(): number {
    return threadId;
  }
  /** Always true: it is running this code. */
  isAlive(): boolean {
    return true;
  }
  /** Python's repr: `<_MainThread(MainThread, started 0)>`. */
  toString(): string {
    return `<${isMainThread ? '_MainThread' : '_DummyThread'}(${this.name}, started ${threadId})>`;
  }
  /** The repr for `util.inspect`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

let mainThread: MainThread | undefined;

/** The running thread's object (Python's `threading.current_thread()`). */
export function currentThread(): DummyProcess | MainThread {
  return current ?? (mainThread ??= new MainThread());
}

/** Live threads started by the running thread; finished ones are reaped. */
export function activeThreads(): DummyProcess[] {
  return _activeThreads() as DummyProcess[];
}
