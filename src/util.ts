// Logging and exit handling, as Python's multiprocessing.util.
import { format } from 'node:util';

/** Whether the library runs from its TypeScript sources (under a loader such as tsx) rather than from dist/. */
export const fromSources = import.meta.url.endsWith('.ts');

/** The URL of the library module `name` (e.g. 'queues'), beside this one, as it runs. */
export function libraryModuleUrl(name: string): string {
  return new URL(`./${name}${fromSources ? '.ts' : '.js'}`, import.meta.url).href;
}

export const SUBDEBUG = 5;
export const DEBUG = 10;
export const INFO = 20;
export const SUBWARNING = 25;
export const WARNING = 30;
export const ERROR = 40;
export const CRITICAL = 50;

const levelNames: Record<number, string> = {
  [SUBDEBUG]: 'SUBDEBUG', [DEBUG]: 'DEBUG', [INFO]: 'INFO', [SUBWARNING]: 'SUBWARNING',
  [WARNING]: 'WARNING', [ERROR]: 'ERROR', [CRITICAL]: 'CRITICAL',
};

export interface LogRecord {
  level: number;
  levelname: string;
  processName: string;
  message: string;
}
export type Handler = (record: LogRecord) => void;

// Set by process.ts; avoids an import cycle.
let processName: () => string = () => 'MainProcess';
export function _setProcessNameSource(fn: () => string): void {
  processName = fn;
}

/** The `multiprocessing` logger (Python's `logging.getLogger('multiprocessing')`). */
export class Logger {
  readonly name = 'multiprocessing';
  level = 0;
  readonly handlers: Handler[] = [];
  propagate = false;

  setLevel(level: number | string): void {
    this.level = typeof level === 'string' ? levelOf(level) : level;
  }
  getEffectiveLevel(): number {
    return this.level || WARNING;
  }
  isEnabledFor(level: number): boolean {
    return level >= this.getEffectiveLevel();
  }
  addHandler(h: Handler): void {
    if (!this.handlers.includes(h)) this.handlers.push(h);
  }
  removeHandler(h: Handler): void {
    const i = this.handlers.indexOf(h);
    if (i >= 0) this.handlers.splice(i, 1);
  }
  log(level: number, msg: string, ...args: unknown[]): void {
    if (!this.isEnabledFor(level)) return;
    const record: LogRecord = {
      level,
      levelname: levelNames[level] ?? `Level ${level}`,
      processName: processName(),
      message: args.length ? format(msg, ...args) : msg,
    };
    if (this.handlers.length === 0) {
      // Python's "last resort" handler: WARNING and above, message only.
      if (level >= WARNING) process.stderr.write(record.message + '\n');
      return;
    }
    for (const h of this.handlers) h(record);
  }
  subdebug(msg: string, ...a: unknown[]): void { this.log(SUBDEBUG, msg, ...a); }
  debug(msg: string, ...a: unknown[]): void { this.log(DEBUG, msg, ...a); }
  info(msg: string, ...a: unknown[]): void { this.log(INFO, msg, ...a); }
  subwarning(msg: string, ...a: unknown[]): void { this.log(SUBWARNING, msg, ...a); }
  warning(msg: string, ...a: unknown[]): void { this.log(WARNING, msg, ...a); }
  error(msg: string, ...a: unknown[]): void { this.log(ERROR, msg, ...a); }
  critical(msg: string, ...a: unknown[]): void { this.log(CRITICAL, msg, ...a); }
}

function levelOf(name: string): number {
  for (const [n, v] of Object.entries(levelNames)) if (v === name.toUpperCase()) return Number(n);
  throw new TypeError(`unknown level: ${name}`);
}

const logger = new Logger();

/** Python's `multiprocessing.get_logger()`. */
export function getLogger(): Logger {
  return logger;
}

let stderrHandler: Handler | undefined;

/** Python's `multiprocessing.log_to_stderr(level)`: format `[LEVEL/ProcessName] message`. */
export function logToStderr(level?: number | string): Logger {
  if (!stderrHandler) {
    stderrHandler = (r) => process.stderr.write(`[${r.levelname}/${r.processName}] ${r.message}\n`);
    logger.addHandler(stderrHandler);
  }
  if (level !== undefined) logger.setLevel(level);
  _logLevelForChildren = logger.level;
  return logger;
}

/** Level to hand to children (Python passes `log_to_stderr` on in spawn's preparation data). */
export let _logLevelForChildren: number | undefined;

export const subDebug = (msg: string, ...a: unknown[]): void => logger.subdebug(msg, ...a);
export const debug = (msg: string, ...a: unknown[]): void => logger.debug(msg, ...a);
export const info = (msg: string, ...a: unknown[]): void => logger.info(msg, ...a);
export const subWarning = (msg: string, ...a: unknown[]): void => logger.subwarning(msg, ...a);
export const warning = (msg: string, ...a: unknown[]): void => logger.warning(msg, ...a);

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

/** Run the exit handlers once (Python's `_exit_function`). */
export function runExitHandlers(): void {
  if (exiting) return;
  exiting = true;
  info('process shutting down');
  finalizers.sort((a, b) => b.priority - a.priority || b.seq - a.seq);
  for (const f of finalizers.splice(0)) {
    try {
      f.fn();
    } catch (e) {
      process.stderr.write(`Error in exit handler: ${(e as Error)?.stack ?? e}\n`);
    }
  }
}

process.on('exit', runExitHandlers);
