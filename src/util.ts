// Logging and exit handling, as Python's multiprocessing.util.
import { debug, info, subDebug } from './logging.js';

/** Whether the library runs from its TypeScript sources (under a loader such as tsx) rather than from dist/. */
export const fromSources = import.meta.url.endsWith('.ts');

/** The URL of the library module `name` (e.g. 'queues'), beside this one, as it runs. */
export function libraryModuleUrl(name: string): string {
  return new URL(`./${name}${fromSources ? '.ts' : '.js'}`, import.meta.url).href;
}

// The logger and the library's records live in logging.ts; re-exported here, where CPython
// has them (multiprocessing.util).
export {
  CRITICAL, DEBUG, DEFAULT_LOGGING_FORMAT, ERROR, INFO, NOTSET, SUBDEBUG, SUBWARNING, WARNING,
  Formatter, Handler, LogRecord, Logger, StreamHandler, _setProcessNameSource, debug, getLogger, info,
  isEnabledFor, logToStderr, subDebug, subWarning, warning, type HandlerLike,
} from './logging.js';

// --- Finalizers and exit handling (Python's util.Finalize and _exit_function) ---

/** Finalizers with an exit priority, run at exit (Python's `_finalizer_registry`). */
const finalizers = new Set<Finalize<any>>();
let finalizerSeq = 0;

/** Runs the finalizer of an object that was garbage-collected. */
const collected = new FinalizationRegistry<Finalize<any>>((f) => f.call());

/**
 * Python's `multiprocessing.util.Finalize`: release what `obj` stands on (a descriptor,
 * a socket file, worker processes) when `obj` is garbage-collected, when `call()` is
 * called (e.g. by its `close()`), or at exit if `exitpriority` is a number (highest
 * first; same priority: last registered first). `callback(...args)` runs at most once.
 * It must not refer to `obj` itself (through `args` or a closure), or `obj` is never
 * collected: give it the descriptors or small state objects it releases. `obj` null
 * needs an `exitpriority`. Every resource of the library that holds a descriptor as a
 * number (not inside a native object, which its napi finalizer closes) goes through here.
 */
export class Finalize<A extends unknown[] = []> {
  #callback: ((...args: A) => void) | null;
  #args: A;
  readonly exitpriority: number | null;
  readonly seq = finalizerSeq++;

  constructor(obj: object | null, callback: (...args: A) => void, args: A, exitpriority: number | null = null) {
    if (obj === null && exitpriority === null) throw new TypeError('Without object, exitpriority cannot be None');
    this.#callback = callback;
    this.#args = args;
    this.exitpriority = exitpriority;
    if (obj !== null) collected.register(obj, this, this);
    if (exitpriority !== null) finalizers.add(this);
  }

  /** Run the callback now unless it has run or been cancelled (Python's `__call__`). */
  call(): void {
    const cb = this.#callback;
    const args = this.#args;
    if (!cb) return;
    this.#forget();
    try {
      cb(...args);
    } catch (e) {
      process.stderr.write(`Error in finalizer: ${(e as Error)?.stack ?? e}\n`);
    }
  }

  /** Never run the callback. */
  cancel(): void {
    this.#forget();
  }

  /** The callback's name (for the log records). */
  get callbackName(): string {
    return this.#callback?.name || 'anonymous';
  }

  /** Whether the callback is still to run (Python's `still_active`). */
  stillActive(): boolean {
    return this.#callback !== null;
  }

  #forget(): void {
    this.#callback = null;
    this.#args = [] as unknown as A;
    collected.unregister(this);
    finalizers.delete(this);
  }
}

/**
 * Run `fn` at process exit, highest priority first (same priority: last registered
 * first). Returns a function that unregisters it. (A `Finalize` without an object.)
 */
export function atExit(fn: () => void, priority = 0): () => void {
  const f = new Finalize(null, fn, [], priority);
  return () => f.cancel();
}

let exiting = false;
/** Whether the exit handlers have started running. */
export function isExiting(): boolean {
  return exiting;
}

let childrenAtExit: (() => void) | null = null;
/** Set by process.ts: terminate daemonic children and join the others (at exit, between the two rounds of handlers). @internal */
export function _setChildrenAtExit(fn: () => void): void {
  childrenAtExit = fn;
}

function runFinalizers(minPriority: number | null): void {
  const run = [...finalizers].filter((f) => minPriority === null || f.exitpriority! >= minPriority);
  run.sort((a, b) => b.exitpriority! - a.exitpriority! || b.seq - a.seq);
  for (const f of run) {
    if (!f.stillActive()) continue; // called or cancelled by an earlier handler
    subDebug('calling <Finalize object, callback=%s, exitpriority=%d>', f.callbackName, f.exitpriority);
    f.call();
  }
}

/**
 * Run the exit handlers once (Python's `_exit_function`): those of priority >= 0, then
 * daemonic children are terminated and the others joined, then the rest.
 */
export function runExitHandlers(): void {
  if (exiting) return;
  exiting = true;
  info('process shutting down');
  debug('running all "atexit" finalizers with priority >= 0');
  runFinalizers(0);
  try {
    childrenAtExit?.();
  } catch (e) {
    process.stderr.write(`Error in exit handler: ${(e as Error)?.stack ?? e}\n`);
  }
  debug('running the remaining "atexit" finalizers');
  runFinalizers(null);
}

process.on('exit', runExitHandlers);
