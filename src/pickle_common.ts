// What the pickle reader and writer share: the opcodes, Python's limits, Tuple and PyFloat,
// and the tables that name Python's exception classes.

/** The protocol `dumps` writes when none is given (Python 3.8+'s `pickle.DEFAULT_PROTOCOL`). */
export const DEFAULT_PROTOCOL = 4;
/** The highest protocol read and written (Python's `pickle.HIGHEST_PROTOCOL`). */
export const HIGHEST_PROTOCOL = 5;

/**
 * Python's `tuple`: an Array that pickles as a tuple, and what a Python tuple becomes.
 * `new Tuple(1, 2)` or `Tuple.from(iterable)`; methods that make new arrays (`map`,
 * `filter`, `slice`...) return plain Arrays.
 */
export class Tuple<T = unknown> extends Array<T> {
  constructor(...items: T[]) {
    super();
    for (let i = 0; i < items.length; i++) this.push(items[i]);
  }
  /** Derived arrays (`map`, `filter`, `slice`...) are plain Arrays, not Tuples. */
  static override get [Symbol.species](): ArrayConstructor {
    return Array;
  }
  static override from<U>(items: Iterable<U> | ArrayLike<U>): Tuple<U> {
    const t = new Tuple<U>();
    for (const x of Array.from(items)) t.push(x);
    return t;
  }
}

/**
 * A number that pickles as Python's `float` even when it is integral: `new PyFloat(2)`
 * sends `2.0` (a plain `2` sends the int `2`). Loading gives plain numbers, never PyFloat.
 */
export class PyFloat {
  constructor(
    /** The number. */
    readonly value: number,
  ) {
    if (typeof value !== 'number') throw new TypeError(`PyFloat takes a number, not ${typeof value}`);
  }
  /** The number, so that arithmetic and comparisons see it. */
  valueOf(): number {
    return this.value;
  }
  /** As Python prints a float: `2.0`, `0.5`. */
  toString(): string {
    return Number.isInteger(this.value) ? this.value.toFixed(1) : String(this.value);
  }
  /** The number, for `JSON.stringify`. */
  toJSON(): number {
    return this.value;
  }
}

// --- Opcodes (pickletools' names) ---
export const MARK = 0x28, STOP = 0x2e, POP = 0x30, POP_MARK = 0x31, DUP = 0x32, FLOAT = 0x46, INT = 0x49;
export const BININT = 0x4a, BININT1 = 0x4b, LONG = 0x4c, BININT2 = 0x4d, NONE = 0x4e, PERSID = 0x50;
export const BINPERSID = 0x51, REDUCE = 0x52, STRING = 0x53, BINSTRING = 0x54, SHORT_BINSTRING = 0x55;
export const UNICODE = 0x56, BINUNICODE = 0x58, APPEND = 0x61, BUILD = 0x62, GLOBAL = 0x63, DICT = 0x64;
export const EMPTY_DICT = 0x7d, APPENDS = 0x65, GET = 0x67, BINGET = 0x68, INST = 0x69, LONG_BINGET = 0x6a;
export const LIST = 0x6c, EMPTY_LIST = 0x5d, OBJ = 0x6f, PUT = 0x70, BINPUT = 0x71, LONG_BINPUT = 0x72;
export const SETITEM = 0x73, TUPLE = 0x74, EMPTY_TUPLE = 0x29, SETITEMS = 0x75, BINFLOAT = 0x47;
export const PROTO = 0x80, NEWOBJ = 0x81, EXT1 = 0x82, EXT2 = 0x83, EXT4 = 0x84, TUPLE1 = 0x85;
export const TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88, NEWFALSE = 0x89, LONG1 = 0x8a, LONG4 = 0x8b;
export const BINBYTES = 0x42, SHORT_BINBYTES = 0x43, SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d;
export const BINBYTES8 = 0x8e, EMPTY_SET = 0x8f, ADDITEMS = 0x90, FROZENSET = 0x91, NEWOBJ_EX = 0x92;
export const STACK_GLOBAL = 0x93, MEMOIZE = 0x94, FRAME = 0x95, BYTEARRAY8 = 0x96, NEXT_BUFFER = 0x97;
export const READONLY_BUFFER = 0x98;

/** Python's `pickle` frame size target (protocol 4+): data is cut into frames about this long. */
export const FRAME_SIZE_TARGET = 64 * 1024;
/** A frame shorter than this is not worth its 9-byte header (Python's FRAME_SIZE_MIN). */
export const FRAME_SIZE_MIN = 4;
/** Items per APPENDS/SETITEMS/ADDITEMS batch, as Python's `_BATCHSIZE`. */
export const BATCHSIZE = 1000;
/** Nesting deeper than this is Python's RecursionError when pickling (its default recursion limit). */
export const MAX_DEPTH = 1000;
/** CPython's limit on decimal digits in an int read from text (sys.int_info.default_max_str_digits). */
export const MAX_STR_DIGITS = 4300;

/** The Python class an error came from, so that it goes back as the same class. */
export const pyClassOf = Symbol('node-multiprocessing.pickle.pyClass');
export type PyErrorLike = Error & { args?: unknown[]; [pyClassOf]?: readonly [string, string] };

/**
 * How an object of the library's own (the managers' Token and proxies) pickles: its method
 * under this symbol says, as Python's `__reduce__` would. @internal
 */
export const pyReduce = Symbol('node-multiprocessing.pickle.reduce');
/** What a `[pyReduce]()` method returns. @internal */
export interface PyReduced {
  /** The module of the global (a class or function of Python's) that rebuilds the object. */
  module: string;
  /** The global's name in its module. */
  name: string;
  /** Its arguments (REDUCE, or NEWOBJ with `newobj`); null: the global itself is the value. */
  args: unknown[] | null;
  /** `cls.__new__(cls, *args)` (NEWOBJ) rather than `f(*args)` (REDUCE). */
  newobj?: boolean;
  /** The state BUILD sets afterwards (Python's `__setstate__`), if any. */
  state?: unknown;
}
/** BUILD on a loaded object that has a method under this symbol calls it with the state. @internal */
export const pySetState = Symbol('node-multiprocessing.pickle.setstate');

/** Python's builtin exceptions (3.6 to 3.13), all loadable. */
export const BUILTIN_EXCEPTIONS = [
  'BaseException', 'BaseExceptionGroup', 'Exception', 'ExceptionGroup', 'ArithmeticError',
  'AssertionError', 'AttributeError', 'BlockingIOError', 'BrokenPipeError', 'BufferError',
  'ChildProcessError', 'ConnectionAbortedError', 'ConnectionError', 'ConnectionRefusedError',
  'ConnectionResetError', 'EOFError', 'EnvironmentError', 'FileExistsError', 'FileNotFoundError',
  'FloatingPointError', 'GeneratorExit', 'IOError', 'ImportError', 'IndentationError', 'IndexError',
  'InterruptedError', 'IsADirectoryError', 'KeyError', 'KeyboardInterrupt', 'LookupError',
  'MemoryError', 'ModuleNotFoundError', 'NameError', 'NotADirectoryError', 'NotImplementedError',
  'OSError', 'OverflowError', 'PermissionError', 'ProcessLookupError', 'PythonFinalizationError',
  'RecursionError', 'ReferenceError', 'RuntimeError', 'StopAsyncIteration', 'StopIteration',
  'SyntaxError', 'SystemError', 'SystemExit', 'TabError', 'TimeoutError', 'TypeError',
  'UnboundLocalError', 'UnicodeDecodeError', 'UnicodeEncodeError', 'UnicodeError',
  'UnicodeTranslateError', 'ValueError', 'ZeroDivisionError', 'Warning', 'UserWarning',
  'DeprecationWarning', 'PendingDeprecationWarning', 'SyntaxWarning', 'RuntimeWarning',
  'FutureWarning', 'ImportWarning', 'UnicodeWarning', 'BytesWarning', 'ResourceWarning',
  'EncodingWarning',
];
export const builtinExceptionNames = new Set(BUILTIN_EXCEPTIONS);
/** Python's modules of the library's own errors, for sending them back as the same classes. */
export const errorHomes: Record<string, string> = {
  ProcessError: 'multiprocessing.context', BufferTooShort: 'multiprocessing.context',
  AuthenticationError: 'multiprocessing.context', TimeoutError: 'multiprocessing.context',
  RemoteError: 'multiprocessing.managers', Empty: 'queue', Full: 'queue',
  PickleError: 'pickle', PicklingError: 'pickle', UnpicklingError: 'pickle',
};

export function isPlainObject(v: object): v is Record<string, unknown> {
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}
