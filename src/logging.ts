// The `multiprocessing` logger and the parts of Python's `logging` module that the
// multiprocessing docs use: levels, LogRecord, Formatter, Handler, StreamHandler, and a
// Logger with setLevel / addHandler / removeHandler / log. The library's own records
// (CPython's util.sub_debug / debug / info / sub_warning) go through `subDebug`, `debug`,
// `info`, `subWarning` below; like CPython's they do nothing until the logger has been
// asked for (`getLogger()` or `logToStderr()`).
import { format, inspect } from 'node:util';
import { ValueError } from './errors.js';

/** Python's `logging.NOTSET` (0): a logger at NOTSET uses the root logger's level, WARNING. */
export const NOTSET = 0;
/** Python's `multiprocessing.SUBDEBUG` (5), below DEBUG. */
export const SUBDEBUG = 5;
/**
 * Python's `logging.DEBUG` (10). There is no `logging` module here: the levels are exported by the library.
 */
export const DEBUG = 10;
/** Python's `logging.INFO` (20). */
export const INFO = 20;
/** Python's `multiprocessing.SUBWARNING` (25), between INFO and WARNING. */
export const SUBWARNING = 25;
/** Python's `logging.WARNING` (30). */
export const WARNING = 30;
/** Python's `logging.ERROR` (40). */
export const ERROR = 40;
/** Python's `logging.CRITICAL` (50). */
export const CRITICAL = 50;

/** The format `logToStderr` uses (Python's `util.DEFAULT_LOGGING_FORMAT`). */
export const DEFAULT_LOGGING_FORMAT = '[%(levelname)s/%(processName)s] %(message)s';

// As Python's logging: multiprocessing's SUBDEBUG and SUBWARNING have no registered names,
// so their records print as 'Level 5' and 'Level 25' (CPython does the same).
const levelToName = new Map<number, string>([
  [CRITICAL, 'CRITICAL'], [ERROR, 'ERROR'], [WARNING, 'WARNING'], [INFO, 'INFO'], [DEBUG, 'DEBUG'], [NOTSET, 'NOTSET'],
]);
const nameToLevel = new Map<string, number>([
  ['CRITICAL', CRITICAL], ['FATAL', CRITICAL], ['ERROR', ERROR], ['WARN', WARNING], ['WARNING', WARNING],
  ['INFO', INFO], ['DEBUG', DEBUG], ['NOTSET', NOTSET],
]);

/** Python's `logging.getLevelName`: the name of a level, or `'Level N'`. */
export function getLevelName(level: number): string {
  return levelToName.get(level) ?? `Level ${level}`;
}

/** Python's `logging.addLevelName`. */
export function addLevelName(level: number, name: string): void {
  levelToName.set(level, name);
  nameToLevel.set(name, level);
}

/** A level given as a number or a registered name ('INFO'), as Python's `setLevel` takes. */
function checkLevel(level: number | string): number {
  if (typeof level === 'number' && Number.isInteger(level)) return level;
  if (typeof level === 'string') {
    const n = nameToLevel.get(level);
    if (n === undefined) throw new ValueError(`Unknown level: '${level}'`);
    return n;
  }
  throw new TypeError(`Level not an integer or a valid string: ${inspect(level)}`);
}

// Set by process.ts (which imports this module): the current process's name.
let processName: () => string = () => 'MainProcess';
/** @internal */
export function _setProcessNameSource(fn: () => string): void {
  processName = fn;
}

const startTime = Date.now();

/** Python's `%`-formatting of a message with its arguments (%s %d %i %f %r %%). */
function percent(msg: string, args: unknown[]): string {
  if (args.length === 0) return msg;
  let i = 0;
  const out = msg.replace(/%[-+ 0#]*\d*(?:\.(\d+))?([sdifrx%])/g, (whole, prec: string | undefined, conv: string) => {
    if (conv === '%') return '%';
    if (i >= args.length) return whole;
    const v = args[i++];
    switch (conv) {
      case 's': return typeof v === 'string' ? v : inspect(v);
      case 'r': return inspect(v);
      case 'd':
      case 'i': return typeof v === 'bigint' ? v.toString() : String(Math.trunc(Number(v)));
      case 'f': return Number(v).toFixed(prec !== undefined ? Number(prec) : 6);
      case 'x': return Math.trunc(Number(v)).toString(16);
      default: return whole;
    }
  });
  // Arguments without a place (Node's style: `log('a', x)`) are appended, as console.log does.
  return i < args.length ? format(out, ...args.slice(i)) : out;
}

/** Python's `logging.LogRecord`: what a logging call produces, handed to each handler. */
export class LogRecord {
  /** The logger's name, `'multiprocessing'`. */
  readonly name: string;
  /** The record's level as a number. */
  readonly levelno: number;
  /** The level's name (`'INFO'`; `'Level 5'` for SUBDEBUG, as in Python). */
  readonly levelname: string;
  /** The message before its arguments are merged in. */
  readonly msg: string;
  /** The message's arguments (`%s` placeholders, or appended as `console.log` does). */
  readonly args: unknown[];
  /** The name of the process that logged (`MainProcess`, `Process-1`...). */
  readonly processName: string;
  /** Its process id. */
  readonly process: number;
  /** When, in seconds since the epoch (Python's `time.time()`). */
  readonly created: number;
  /** The milliseconds part of `created`. */
  readonly msecs: number;
  /** Milliseconds since the library was loaded. */
  readonly relativeCreated: number;
  /** The message with its arguments merged in (Python sets it when a record is formatted). */
  message: string;
  /** The formatted time, set by a Formatter whose format uses `%(asctime)s`. */
  asctime?: string;

  constructor(name: string, level: number, msg: unknown, args: unknown[]) {
    const now = Date.now();
    this.name = name;
    this.levelno = level;
    this.levelname = getLevelName(level);
    this.msg = typeof msg === 'string' ? msg : inspect(msg);
    this.args = args;
    this.processName = processName();
    this.process = process.pid;
    this.created = now / 1000;
    this.msecs = now % 1000;
    this.relativeCreated = now - startTime;
    this.message = this.getMessage();
  }

  /** The message with its arguments merged in. */
  getMessage(): string {
    return percent(this.msg, this.args);
  }

  /** The record's level (same as `levelno`). */
  get level(): number {
    return this.levelno;
  }
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/**
 * Python's `logging.Formatter(fmt, datefmt)` in its default `%` style:
 * `%(levelname)s`, `%(processName)s`, `%(message)s`, `%(name)s`, `%(process)d`,
 * `%(asctime)s`, `%(levelno)s`, `%(created)f`, `%(msecs)d`, with widths (`%(levelname)-8s`).
 */
export class Formatter {
  /** The format, in Python's `%` style (default `'%(message)s'`). */
  readonly fmt: string;
  /** The strftime format of `%(asctime)s` (`%Y %m %d %H %M %S`); null: `YYYY-mm-dd HH:MM:SS,mmm`. */
  readonly datefmt: string | null;

  constructor(fmt?: string | null, datefmt?: string | null) {
    this.fmt = fmt ?? '%(message)s';
    this.datefmt = datefmt ?? null;
  }

  /** Whether the format shows the time (Python's `usesTime`). */
  usesTime(): boolean {
    return this.fmt.includes('%(asctime)');
  }

  /** Python's `formatTime`: `datefmt` in strftime's %Y %m %d %H %M %S, else `YYYY-mm-dd HH:MM:SS,mmm`. */
  formatTime(record: LogRecord, datefmt?: string | null): string {
    const d = new Date(record.created * 1000);
    const fields: Record<string, string> = {
      Y: String(d.getFullYear()), m: pad(d.getMonth() + 1), d: pad(d.getDate()),
      H: pad(d.getHours()), M: pad(d.getMinutes()), S: pad(d.getSeconds()), '%': '%',
    };
    if (datefmt) return datefmt.replace(/%([YmdHMS%])/g, (_, c: string) => fields[c]);
    return `${fields.Y}-${fields.m}-${fields.d} ${fields.H}:${fields.M}:${fields.S},${pad(record.msecs, 3)}`;
  }

  /** The record as text. */
  format(record: LogRecord): string {
    record.message = record.getMessage();
    if (this.usesTime()) record.asctime = this.formatTime(record, this.datefmt);
    const rec = record as unknown as Record<string, unknown>;
    return this.fmt.replace(/%\(([A-Za-z_]\w*)\)([-+ 0#]*)(\d*)(?:\.(\d+))?([sdifr])/g, (_whole, key: string, flags: string, width: string, prec: string | undefined, conv: string) => {
      if (!(key in rec)) throw new ValueError(`Formatting field not found in record: '${key}'`);
      const v = rec[key];
      let s: string;
      if (conv === 'd' || conv === 'i') s = String(Math.trunc(Number(v)));
      else if (conv === 'f') s = Number(v).toFixed(prec !== undefined ? Number(prec) : 6);
      else if (conv === 'r') s = inspect(v);
      else s = typeof v === 'string' ? v : String(v);
      const w = Number(width || 0);
      if (s.length < w) s = flags.includes('-') ? s.padEnd(w) : s.padStart(w, flags.includes('0') && conv !== 's' ? '0' : ' ');
      return s;
    }).replace(/%%/g, '%');
  }
}

const defaultFormatter = new Formatter();

/** Python's `logging.Handler`: a level and a formatter; subclasses implement `emit`. */
export class Handler {
  /** The handler's threshold: records below it are ignored (NOTSET: none are). */
  level: number;
  /** How records are turned into text; null: `%(message)s`. */
  formatter: Formatter | null = null;

  constructor(level: number | string = NOTSET) {
    this.level = checkLevel(level);
  }

  /** Python's `setLevel`: a number or a level name (`'INFO'`). */
  setLevel(level: number | string): void {
    this.level = checkLevel(level);
  }

  /** Python's `setFormatter`. */
  setFormatter(fmt: Formatter | null): void {
    this.formatter = fmt;
  }

  /** The record as text, through this handler's formatter (or `%(message)s`). */
  format(record: LogRecord): string {
    return (this.formatter ?? defaultFormatter).format(record);
  }

  /** Emit the record if its level passes this handler's. */
  handle(record: LogRecord): boolean {
    if (record.levelno < this.level) return false;
    try {
      this.emit(record);
    } catch (e) {
      this.handleError(record, e);
    }
    return true;
  }

  /** Write the record somewhere: subclasses do. */
  emit(_record: LogRecord): void {
    throw new Error('emit must be implemented by Handler subclasses');
  }

  /** As Python: report a failing handler on stderr and carry on. */
  handleError(record: LogRecord, e: unknown): void {
    process.stderr.write(`--- Logging error ---\n${(e as Error)?.stack ?? String(e)}\nMessage: ${inspect(record.msg)}\nArguments: ${inspect(record.args)}\n`);
  }

  /** Python's `flush()`: nothing to do for this handler. */
  flush(): void {}
  /** Python's `close()`: nothing to release for this handler. */
  close(): void {}
}

/** A writable stream, e.g. `process.stderr` or a file stream. */
export interface TextStream {
  /** Write text. */
  write(s: string): unknown;
}

/** Python's `logging.StreamHandler(stream)`: writes formatted records to `stream` (default stderr). */
export class StreamHandler extends Handler {
  /** Where records are written (default `process.stderr`). */
  stream: TextStream;
  /** Written after each record, as Python's `terminator`. */
  terminator = '\n';

  constructor(stream?: TextStream | null) {
    super();
    this.stream = stream ?? process.stderr;
  }

  override emit(record: LogRecord): void {
    this.stream.write(this.format(record) + this.terminator);
  }

  /** Python's `setStream`: returns the old stream. */
  setStream(stream: TextStream): TextStream {
    const old = this.stream;
    this.stream = stream;
    return old;
  }
}

/** A handler is a Handler object, or simply a function that receives each record. */
export type HandlerLike = Handler | ((record: LogRecord) => void);

/**
 * Python's "last resort": WARNING and above, message only, to stderr, when a logger has no
 * handler. As Python's (a `_StderrHandler`), it writes to the standard error of the moment of
 * each record: importing the library does not open `process.stderr` (Node makes a stream of it
 * on first access, a socket and the stream modules when it is a pipe: 1-3 ms of every start).
 */
const lastResort = new StreamHandler({ write: (s: string) => process.stderr.write(s) });
lastResort.setLevel(WARNING);

/**
 * Python's `logging.Logger`, as `multiprocessing.get_logger()` returns it: named
 * 'multiprocessing', level NOTSET, no handlers, `propagate` false.
 */
export class Logger {
  /** Python's `name`: `'multiprocessing'`. */
  readonly name: string;
  /** Python's `level`: set with `setLevel`; NOTSET means WARNING (the root logger's). */
  level = NOTSET;
  /** Python's `handlers`. A handler may also be a plain function of the record. */
  readonly handlers: HandlerLike[] = [];
  /** Python's `propagate`: false, as multiprocessing's logger; there is no parent logger here. */
  propagate = false;
  /** Python's `disabled`: when true, nothing is logged. */
  disabled = false;

  constructor(name: string) {
    this.name = name;
  }

  /** Python's `setLevel`: a number or a level name (`'INFO'`). */
  setLevel(level: number | string): void {
    this.level = checkLevel(level);
  }

  /** The level in force: this logger's, or the root logger's (WARNING) when NOTSET. */
  getEffectiveLevel(): number {
    return this.level || WARNING;
  }

  /** Python's `isEnabledFor`: whether a record at `level` would be handled. */
  isEnabledFor(level: number): boolean {
    return !this.disabled && level >= this.getEffectiveLevel();
  }

  /** Python's `addHandler` (a handler is added once). */
  addHandler(h: HandlerLike): void {
    if (!this.handlers.includes(h)) this.handlers.push(h);
  }

  /** Python's `removeHandler`. */
  removeHandler(h: HandlerLike): void {
    const i = this.handlers.indexOf(h);
    if (i >= 0) this.handlers.splice(i, 1);
  }

  /** Python's `hasHandlers()`: whether this logger has any (there are no ancestors here). */
  hasHandlers(): boolean {
    return this.handlers.length > 0;
  }

  /** Log `msg % args` at `level`. */
  log(level: number, msg: unknown, ...args: unknown[]): void {
    if (typeof level !== 'number') throw new TypeError('level must be an integer');
    if (!this.isEnabledFor(level)) return;
    this.handle(new LogRecord(this.name, level, msg, args));
  }

  /** Hand a record to every handler (or to the last resort when there is none). */
  handle(record: LogRecord): void {
    if (this.handlers.length === 0) {
      lastResort.handle(record);
      return;
    }
    for (const h of [...this.handlers]) {
      if (typeof h === 'function') {
        try {
          h(record);
        } catch (e) {
          lastResort.handleError(record, e);
        }
      } else {
        h.handle(record);
      }
    }
  }

  /** Python's `debug(msg, *args)`. */
  debug(msg: unknown, ...args: unknown[]): void { this.log(DEBUG, msg, ...args); }
  /** Python's `info(msg, *args)`. */
  info(msg: unknown, ...args: unknown[]): void { this.log(INFO, msg, ...args); }
  /** Python's `warning(msg, *args)`. */
  warning(msg: unknown, ...args: unknown[]): void { this.log(WARNING, msg, ...args); }
  /** Python's `error(msg, *args)`. */
  error(msg: unknown, ...args: unknown[]): void { this.log(ERROR, msg, ...args); }
  /** Python's `critical(msg, *args)`. */
  critical(msg: unknown, ...args: unknown[]): void { this.log(CRITICAL, msg, ...args); }
  /** ERROR with the error's stack appended (Python's `exception`, which takes it from the except block). */
  exception(msg: unknown, error?: unknown, ...args: unknown[]): void {
    if (!this.isEnabledFor(ERROR)) return;
    const text = typeof msg === 'string' ? percent(msg, args) : inspect(msg);
    this.handle(new LogRecord(this.name, ERROR, error === undefined ? text : `${text}\n${(error as Error)?.stack ?? inspect(error)}`, []));
  }

  /** Python's `repr()`: `<Logger multiprocessing (WARNING)>`. */
  toString(): string {
    return `<Logger ${this.name} (${getLevelName(this.getEffectiveLevel())})>`;
  }
  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

const logger = new Logger('multiprocessing');
/** Whether the logger has been asked for (Python's `util._logger is not None`). */
let loggerMade = false;
let stderrHandler: StreamHandler | null = null;

/** Python's `multiprocessing.get_logger()`. */
export function getLogger(): Logger {
  loggerMade = true;
  return logger;
}

/**
 * Python's `multiprocessing.log_to_stderr(level)`: the logger, with a handler that writes
 * `[LEVEL/ProcessName] message` to stderr (added once), and its level set if one is given.
 */
export function logToStderr(level?: number | string | null): Logger {
  getLogger();
  if (!stderrHandler) {
    stderrHandler = new StreamHandler();
    stderrHandler.setFormatter(new Formatter(DEFAULT_LOGGING_FORMAT));
    logger.addHandler(stderrHandler);
  }
  if (level) logger.setLevel(level);
  return logger;
}

/** What a child needs to log as its parent does (Python's preparation data `log_to_stderr`, `log_level`). @internal */
export function _loggingForChild(): { logToStderr: boolean; logLevel?: number } {
  return loggerMade ? { logToStderr: stderrHandler !== null, logLevel: logger.getEffectiveLevel() } : { logToStderr: false };
}

/** In a child: apply the parent's logging settings. @internal */
export function _applyParentLogging(prep: { logToStderr?: boolean; logLevel?: number }): void {
  if (prep.logToStderr) logToStderr();
  if (prep.logLevel !== undefined) getLogger().setLevel(prep.logLevel);
}

// The library's own records (CPython's multiprocessing.util functions of the same names).
// Arguments are merged only if the record is emitted.

/** CPython's `util.sub_debug` (level 5). */
export function subDebug(msg: string, ...args: unknown[]): void {
  if (loggerMade) logger.log(SUBDEBUG, msg, ...args);
}
/** CPython's `util.debug`. */
export function debug(msg: string, ...args: unknown[]): void {
  if (loggerMade) logger.log(DEBUG, msg, ...args);
}
/** CPython's `util.info`. */
export function info(msg: string, ...args: unknown[]): void {
  if (loggerMade) logger.log(INFO, msg, ...args);
}
/** CPython's `util.sub_warning` (level 25). */
export function subWarning(msg: string, ...args: unknown[]): void {
  if (loggerMade) logger.log(SUBWARNING, msg, ...args);
}
/** A WARNING of the library's own (printed even with no handler, as Python's last resort does). */
export function warning(msg: string, ...args: unknown[]): void {
  logger.log(WARNING, msg, ...args);
}
/** An ERROR of the library's own (printed even with no handler). */
export function error(msg: string, ...args: unknown[]): void {
  logger.log(ERROR, msg, ...args);
}
/** Whether a record at `level` would be emitted (to skip building costly arguments). */
export function isEnabledFor(level: number): boolean {
  return loggerMade && logger.isEnabledFor(level);
}
