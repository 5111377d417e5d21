// Error classes with Python's names, and the one place where native error codes
// become those classes.
import { createRequire } from 'node:module';

/**
 * Python's AssertionError is node's `assert.AssertionError`. node:assert is loaded on
 * the first one made: importing it costs a child ~5 ms of start-up (it sets up stderr).
 */
export function assertionError(message: string): Error {
  const { AssertionError } = createRequire(import.meta.url)('node:assert') as typeof import('node:assert');
  return new AssertionError({ message });
}

/** Python-style exception base: keeps the constructor arguments in `args`. */
export class PythonError extends Error {
  /** The constructor's arguments, as Python's `BaseException.args`; the message is the first (as a string). */
  args: unknown[];
  constructor(...args: unknown[]) {
    super(args.length === 0 ? '' : typeof args[0] === 'string' ? args[0] : String(args[0]));
    this.args = args;
    this.name = new.target.name;
  }
}

/** Python's `multiprocessing.ProcessError`, the base of the library's own errors. */
export class ProcessError extends PythonError {}
/**
 * Python's `multiprocessing.BufferTooShort`: `Connection.recvBytesInto()` got a message longer
 * than the buffer. As in Python, `args[0]` holds the whole message (a Buffer).
 */
export class BufferTooShort extends ProcessError {}
/** Python's `multiprocessing.AuthenticationError`: the authkey handshake of a Listener/Client failed. */
export class AuthenticationError extends ProcessError {}
/**
 * Python's `multiprocessing.TimeoutError`: a call with a timeout ran out of time (`AsyncResult.get`,
 * `Listener` handshakes...). Unlike Python 3.11+, it is not the builtin `TimeoutError`, since
 * JavaScript has none; lock and queue timeouts return `false` or throw `Empty`/`Full` as in Python.
 */
export class TimeoutError extends ProcessError {}
/** Python's `multiprocessing.managers.RemoteError`: an exception raised in a manager's server process. */
export class RemoteError extends PythonError {}
/** Python's `threading.BrokenBarrierError`: a `Barrier` was reset or aborted, or a wait on it timed out. */
export class BrokenBarrierError extends PythonError {}
/** Python's `queue.Empty`. */
export class Empty extends PythonError {}
/** Python's `queue.Full`. */
export class Full extends PythonError {}
/** Python's `ValueError`: an argument of the right type and a wrong value (a closed object, a bad size...). */
export class ValueError extends PythonError {}
/** Python's `EOFError`: the other end of a Connection was closed and nothing is left to read. */
export class EOFError extends PythonError {}
/** Python's `LookupError`, the base of KeyError and IndexError. */
export class LookupError extends PythonError {}
/** Python's `KeyError`: a key not in a dict (a manager's dict proxy raises it, as Python's does). */
export class KeyError extends LookupError {}
/** Python's `IndexError`: an index out of a list's range (a manager's list proxy raises it, as Python's does). */
export class IndexError extends LookupError {}
/**
 * A manager's server process has gone (shut down, killed, crashed) or its connection broke:
 * every pending call to its proxies and every later one rejects at once with this error.
 * Python raises `EOFError` or `ConnectionRefusedError` then (or hangs); this is an EOFError.
 */
export class ManagerGoneError extends EOFError {}
/** Python's `RuntimeError`, e.g. starting a process while the main module is being imported by a child. */
export class RuntimeError extends PythonError {}
/** Python's `OSError`: a system call failed, or a handle was closed. */
export class OSError extends PythonError {
  /** The C `errno` when a system call failed (Python's `OSError.errno`). */
  errno?: number;
}
/** Python's RecursionError (a RuntimeError): nesting deeper than the pickler goes. */
export class RecursionError extends RuntimeError {}
/** Python's `pickle.PickleError`, the base of the two below. */
export class PickleError extends PythonError {}
/** Python's `pickle.PicklingError`: an object that cannot be pickled. */
export class PicklingError extends PickleError {}
/** Python's `pickle.UnpicklingError`: malformed, truncated or refused pickle data. */
export class UnpicklingError extends PickleError {}
/** A pool worker died (killed, exited, out of memory) while holding a task. */
export class WorkerLostError extends ProcessError {}
/** A pool task's result could not be sent back (Python's `multiprocessing.pool.MaybeEncodingError`). */
export class MaybeEncodingError extends Error {
  constructor(message = '') {
    super(message);
    this.name = 'MaybeEncodingError';
  }
}

/** Errors re-created by name when they cross a process boundary. */
export const errorClasses: Record<string, new (...args: any[]) => Error> = {
  Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError,
  ProcessError, BufferTooShort, AuthenticationError, TimeoutError, RemoteError,
  BrokenBarrierError, Empty, Full, ValueError, EOFError, RuntimeError, OSError,
  WorkerLostError, MaybeEncodingError, RecursionError, LookupError, KeyError, IndexError, ManagerGoneError, PickleError, PicklingError, UnpicklingError,
};

const namedPythonErrors = new Map<string, new (...args: any[]) => Error>();

/**
 * The class an exception of Python's class `name` becomes here: the exported class of
 * that name when there is one, else a PythonError subclass of that name (made once),
 * so that `e.name` is Python's class name and `e.args` its arguments.
 */
export function pythonErrorClass(name: string): new (...args: any[]) => Error {
  const known = errorClasses[name];
  if (known) return known;
  let made = namedPythonErrors.get(name);
  if (!made) {
    const baseName = pythonBases[name];
    const base = baseName ? pythonErrorClass(baseName) : PythonError;
    const Parent = base.prototype instanceof PythonError || base === PythonError ? (base as typeof PythonError) : PythonError;
    made = { [name]: class extends Parent {} }[name];
    namedPythonErrors.set(name, made);
  }
  return made;
}

/** Python's builtin exception hierarchy (child: parent), so that `instanceof` works as `except` would. */
const pythonBases: Record<string, string> = {
  Exception: 'BaseException', GeneratorExit: 'BaseException', KeyboardInterrupt: 'BaseException',
  SystemExit: 'BaseException', BaseExceptionGroup: 'BaseException', ExceptionGroup: 'BaseExceptionGroup',
  ArithmeticError: 'Exception', FloatingPointError: 'ArithmeticError', OverflowError: 'ArithmeticError',
  ZeroDivisionError: 'ArithmeticError', AssertionError: 'Exception', AttributeError: 'Exception',
  BufferError: 'Exception', ImportError: 'Exception', ModuleNotFoundError: 'ImportError',
  LookupError: 'Exception', IndexError: 'LookupError', KeyError: 'LookupError', MemoryError: 'Exception',
  NameError: 'Exception', UnboundLocalError: 'NameError', BlockingIOError: 'OSError',
  ChildProcessError: 'OSError', ConnectionError: 'OSError', BrokenPipeError: 'ConnectionError',
  ConnectionAbortedError: 'ConnectionError', ConnectionRefusedError: 'ConnectionError',
  ConnectionResetError: 'ConnectionError', FileExistsError: 'OSError', FileNotFoundError: 'OSError',
  InterruptedError: 'OSError', IsADirectoryError: 'OSError', NotADirectoryError: 'OSError',
  PermissionError: 'OSError', ProcessLookupError: 'OSError', NotImplementedError: 'RuntimeError',
  PythonFinalizationError: 'RuntimeError', StopIteration: 'Exception', StopAsyncIteration: 'Exception',
  SystemError: 'Exception', UnicodeError: 'ValueError', UnicodeDecodeError: 'UnicodeError',
  UnicodeEncodeError: 'UnicodeError', UnicodeTranslateError: 'UnicodeError', Warning: 'Exception',
  UserWarning: 'Warning', DeprecationWarning: 'Warning', PendingDeprecationWarning: 'Warning',
  SyntaxWarning: 'Warning', RuntimeWarning: 'Warning', FutureWarning: 'Warning', ImportWarning: 'Warning',
  UnicodeWarning: 'Warning', BytesWarning: 'Warning', ResourceWarning: 'Warning', EncodingWarning: 'Warning',
};

const CODED = /^\[(\w+)\] ([\s\S]*)$/;

/** Turn an error thrown by the native addon into the class its code names. */
export function mapNativeError(e: unknown): unknown {
  if (!(e instanceof Error)) return e;
  const m = CODED.exec(e.message);
  if (!m) return e;
  const [, code, msg] = m;
  switch (code) {
    case 'EOF': return new EOFError(msg);
    case 'Value': return new ValueError(msg);
    case 'Timeout': return new TimeoutError(msg);
    case 'Auth': return new AuthenticationError(msg);
    case 'Assertion': return assertionError(msg);
    case 'Closed': return new OSError('handle is closed');
    case 'OS': {
      const om = /^errno=(\d+) ([\s\S]*)$/.exec(msg);
      const err = new OSError(om ? om[2] : msg);
      if (om) err.errno = Number(om[1]);
      return err;
    }
    default: return new OSError(msg);
  }
}

/** Call into the addon, mapping its errors. */
export function nativeCall<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw mapNativeError(e);
  }
}
