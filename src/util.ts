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

// --- Exit handling (Python's util.Finalize with exitpriority and _exit_function) ---

interface Finalizer { priority: number; seq: number; fn: () => void }
const finalizers: Finalizer[] = [];
let finalizerSeq = 0;

/**
 * Run `fn` at process exit, highest priority first (same priority: last registered
 * first). Returns a function that unregisters it.
 */
export function atExit(fn: () => void, priority = 0): () => void {
  const f = { priority, seq: finalizerSeq++, fn };
  finalizers.push(f);
  return () => {
    const i = finalizers.indexOf(f);
    if (i >= 0) finalizers.splice(i, 1);
  };
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
  const run = finalizers.filter((f) => minPriority === null || f.priority >= minPriority);
  run.sort((a, b) => b.priority - a.priority || b.seq - a.seq);
  for (const f of run) {
    const i = finalizers.indexOf(f);
    if (i < 0) continue; // unregistered by an earlier handler
    finalizers.splice(i, 1);
    subDebug('calling <Finalize object, callback=%s, exitpriority=%d>', f.fn.name || 'anonymous', f.priority);
    try {
      f.fn();
    } catch (e) {
      process.stderr.write(`Error in exit handler: ${(e as Error)?.stack ?? e}\n`);
    }
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
