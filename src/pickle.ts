// Python's pickle (Lib/pickle.py, Modules/_pickle.c) for exchanging objects with CPython:
// protocols 0 to 5 are read, 3 to 5 written (4 by default, as Python 3.8+ does).
//
// The mapping (../shared/API.md, "Objects to and from Python"): None <-> null, bool <->
// boolean, int <-> number when safe else bigint, float <-> number (a number that is a safe
// integer sends int; PyFloat sends float), str <-> string, bytes/bytearray <-> Buffer,
// list <-> Array, tuple <-> Tuple, dict <-> plain object (str keys) or Map, set/frozenset
// <-> Set, exceptions <-> errors named as the Python class with `args`.
//
// Reading never imports or runs anything: GLOBAL/STACK_GLOBAL names are looked up in a
// fixed allow-list (`allowed` below), and each entry says what REDUCE/NEWOBJ/BUILD do with
// it. The reader is a loop over the opcodes with no recursion; every length it reads is
// checked against the bytes that remain before anything is allocated, so a hostile or
// truncated pickle fails with UnpicklingError (or ValueError) and allocates at most a
// small multiple of its own size.
import { OSError, PickleError, PicklingError, pythonErrorClass, PythonError, RecursionError, UnpicklingError, ValueError } from './errors.js';

export { PickleError, PicklingError, UnpicklingError };

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
  constructor(readonly value: number) {
    if (typeof value !== 'number') throw new TypeError(`PyFloat takes a number, not ${typeof value}`);
  }
  valueOf(): number {
    return this.value;
  }
  toString(): string {
    return Number.isInteger(this.value) ? this.value.toFixed(1) : String(this.value);
  }
  toJSON(): number {
    return this.value;
  }
}

// --- Opcodes (pickletools' names) ---
const MARK = 0x28, STOP = 0x2e, POP = 0x30, POP_MARK = 0x31, DUP = 0x32, FLOAT = 0x46, INT = 0x49;
const BININT = 0x4a, BININT1 = 0x4b, LONG = 0x4c, BININT2 = 0x4d, NONE = 0x4e, PERSID = 0x50;
const BINPERSID = 0x51, REDUCE = 0x52, STRING = 0x53, BINSTRING = 0x54, SHORT_BINSTRING = 0x55;
const UNICODE = 0x56, BINUNICODE = 0x58, APPEND = 0x61, BUILD = 0x62, GLOBAL = 0x63, DICT = 0x64;
const EMPTY_DICT = 0x7d, APPENDS = 0x65, GET = 0x67, BINGET = 0x68, INST = 0x69, LONG_BINGET = 0x6a;
const LIST = 0x6c, EMPTY_LIST = 0x5d, OBJ = 0x6f, PUT = 0x70, BINPUT = 0x71, LONG_BINPUT = 0x72;
const SETITEM = 0x73, TUPLE = 0x74, EMPTY_TUPLE = 0x29, SETITEMS = 0x75, BINFLOAT = 0x47;
const PROTO = 0x80, NEWOBJ = 0x81, EXT1 = 0x82, EXT2 = 0x83, EXT4 = 0x84, TUPLE1 = 0x85;
const TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88, NEWFALSE = 0x89, LONG1 = 0x8a, LONG4 = 0x8b;
const BINBYTES = 0x42, SHORT_BINBYTES = 0x43, SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d;
const BINBYTES8 = 0x8e, EMPTY_SET = 0x8f, ADDITEMS = 0x90, FROZENSET = 0x91, NEWOBJ_EX = 0x92;
const STACK_GLOBAL = 0x93, MEMOIZE = 0x94, FRAME = 0x95, BYTEARRAY8 = 0x96, NEXT_BUFFER = 0x97;
const READONLY_BUFFER = 0x98;

/** Python's `pickle` frame size target (protocol 4+): data is cut into frames about this long. */
const FRAME_SIZE_TARGET = 64 * 1024;
/** A frame shorter than this is not worth its 9-byte header (Python's FRAME_SIZE_MIN). */
const FRAME_SIZE_MIN = 4;
/** Items per APPENDS/SETITEMS/ADDITEMS batch, as Python's `_BATCHSIZE`. */
const BATCHSIZE = 1000;
/** Nesting deeper than this is Python's RecursionError when pickling (its default recursion limit). */
const MAX_DEPTH = 1000;
/** CPython's limit on decimal digits in an int read from text (sys.int_info.default_max_str_digits). */
const MAX_STR_DIGITS = 4300;

// ---------------------------------------------------------------------------
// The allow-list of globals.

/** What a global that the reader accepts does. */
interface GlobalDef {
  /** REDUCE: `global(*args)`. */
  call?: (args: unknown[]) => unknown;
  /** NEWOBJ/NEWOBJ_EX: `global.__new__(global, *args)`. */
  newobj?: (args: unknown[]) => unknown;
}

/** A global on the reader's stack (what GLOBAL pushes); REDUCE/NEWOBJ consult its definition. */
class PyGlobal {
  constructor(readonly module: string, readonly name: string, readonly def: GlobalDef) {}
}

/** The Python class an error came from, so that it goes back as the same class. */
const pyClassOf = Symbol('node-multiprocessing.pickle.pyClass');
type PyErrorLike = Error & { args?: unknown[]; [pyClassOf]?: readonly [string, string] };

const allowed = new Map<string, GlobalDef>();
const allow = (module: string, name: string, def: GlobalDef): void => {
  allowed.set(`${module}\n${name}`, def);
};

function makeError(module: string, name: string, args: unknown[]): Error {
  const Cls = pythonErrorClass(name);
  const e = new Cls(...args) as PyErrorLike;
  if (!(e instanceof PythonError)) {
    // A JavaScript class of the same name (TypeError, SyntaxError): keep Python's args too.
    e.args = args;
    if (args.length > 0 && typeof args[0] === 'string') e.message = args[0];
  }
  if (e instanceof OSError && args.length >= 2 && Number.isInteger(args[0])) {
    // Python's OSError(errno, strerror[, filename]) attributes and message.
    e.errno = args[0] as number;
    (e as OSError & { strerror?: unknown }).strerror = args[1];
    e.message = `[Errno ${args[0]}] ${String(args[1])}${args.length > 2 ? `: ${String(args[2])}` : ''}`;
  }
  // Python 2's module names, as Python 3 reads them (fix_imports).
  const home = module === 'exceptions' || module === '__builtin__' ? 'builtins' : module === 'Queue' ? 'queue' : module;
  Object.defineProperty(e, pyClassOf, { value: [home, name] });
  return e;
}

function allowError(module: string, name: string): void {
  const make = (args: unknown[]): Error => makeError(module, name, args);
  allow(module, name, { call: make, newobj: make });
}

/** Python's builtin exceptions (3.6 to 3.13), all loadable. */
const BUILTIN_EXCEPTIONS = [
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
const builtinExceptionNames = new Set(BUILTIN_EXCEPTIONS);
/** Python's modules of the library's own errors, for sending them back as the same classes. */
const errorHomes: Record<string, string> = {
  ProcessError: 'multiprocessing.context', BufferTooShort: 'multiprocessing.context',
  AuthenticationError: 'multiprocessing.context', TimeoutError: 'multiprocessing.context',
  RemoteError: 'multiprocessing.managers', Empty: 'queue', Full: 'queue',
  PickleError: 'pickle', PicklingError: 'pickle', UnpicklingError: 'pickle',
};

function iterableArg(args: unknown[], what: string): unknown[] {
  if (args.length === 0) return [];
  const a = args[0];
  if (Array.isArray(a)) return a;
  if (a instanceof Set) return [...a];
  throw new UnpicklingError(`${what}() argument must be a list, tuple or set here`);
}

function bytesArg(args: unknown[], what: string): Buffer {
  if (args.length === 0) return Buffer.alloc(0);
  const a = args[0];
  if (Buffer.isBuffer(a)) return Buffer.from(a);
  if (typeof a === 'string' && args.length === 2 && (args[1] === 'latin1' || args[1] === 'latin-1')) return Buffer.from(a, 'latin1');
  if (Array.isArray(a) && a.every((x) => Number.isInteger(x) && (x as number) >= 0 && (x as number) < 256)) return Buffer.from(a as number[]);
  throw new UnpicklingError(`${what}() arguments not understood here`);
}

for (const mod of ['builtins', '__builtin__']) {
  allow(mod, 'set', { call: (a) => new Set(iterableArg(a, 'set')), newobj: () => new Set() });
  allow(mod, 'frozenset', { call: (a) => new Set(iterableArg(a, 'frozenset')), newobj: () => new Set() });
  allow(mod, 'list', { call: (a) => [...iterableArg(a, 'list')], newobj: () => [] });
  allow(mod, 'tuple', { call: (a) => Tuple.from(iterableArg(a, 'tuple')), newobj: () => new Tuple() });
  allow(mod, 'dict', { call: (a) => { if (a.length) throw new UnpicklingError('dict() with arguments is not read'); return {}; }, newobj: () => ({}) });
  allow(mod, 'bytearray', { call: (a) => bytesArg(a, 'bytearray'), newobj: () => Buffer.alloc(0) });
  allow(mod, 'bytes', { call: (a) => bytesArg(a, 'bytes'), newobj: () => Buffer.alloc(0) });
  for (const name of BUILTIN_EXCEPTIONS) allowError('builtins', name);
}
// Python 2's names, as Python 3 reads them (fix_imports).
for (const name of BUILTIN_EXCEPTIONS) allowError('exceptions', name);
// Protocol 2 writes bytes as `_codecs.encode(latin1_str, 'latin1')`.
allow('_codecs', 'encode', { call: (a) => bytesArg(a, 'encode') });
allow('collections', 'OrderedDict', { call: (a) => { if (a.length) throw new UnpicklingError('OrderedDict() with arguments is not read'); return {}; } });
for (const [mod, names] of [
  ['multiprocessing.context', ['ProcessError', 'BufferTooShort', 'AuthenticationError', 'TimeoutError']],
  ['multiprocessing', ['ProcessError', 'BufferTooShort', 'AuthenticationError', 'TimeoutError']],
  ['multiprocessing.managers', ['RemoteError']],
  ['multiprocessing.pool', ['MaybeEncodingError']],
  ['queue', ['Empty', 'Full']], ['_queue', ['Empty']], ['Queue', ['Empty', 'Full']],
  ['pickle', ['PickleError', 'PicklingError', 'UnpicklingError']],
  ['_pickle', ['PickleError', 'PicklingError', 'UnpicklingError']],
] as const) {
  for (const name of names) allowError(mod, name);
}

/**
 * Add a global that `loads` accepts (for the library's own modules, e.g. the managers'
 * Token and proxy rebuilders; the list is fixed once those modules are loaded).
 * @internal
 */
export function _allowGlobal(module: string, name: string, def: GlobalDef): void {
  allow(module, name, def);
}

function findGlobal(module: string, name: string): PyGlobal {
  const def = allowed.get(`${module}\n${name}`);
  if (!def) {
    throw new UnpicklingError(`global '${module}.${name}' is not allowed: node-multiprocessing's pickle loads only the builtin types and exceptions it maps (it never imports or runs anything)`);
  }
  return new PyGlobal(module, name, def);
}

// ---------------------------------------------------------------------------
// Strings: Python encodes str as UTF-8 with 'surrogatepass' (lone surrogates kept).

const FFFD = '\ufffd';

/** Short ASCII strings read recently, by a hash of their bytes (dict keys repeat from message to message). */
const SHORT = 32;
const recent: string[] = new Array<string>(4096).fill('');

function decodeUtf8(buf: Buffer, start: number, end: number): string {
  const n = end - start;
  if (n > SHORT) return decodeUtf8Slow(buf, start, end);
  let h = n;
  let high = 0;
  for (let i = start; i < end; i++) {
    const c = buf[i];
    high |= c;
    h = Math.imul(h ^ c, 0x01000193);
  }
  if (high & 0x80) return decodeUtf8Slow(buf, start, end);
  // A string already made (and used as a property key) costs V8 no new internalization.
  const slot = (h ^ (h >>> 13)) & 4095;
  const known = recent[slot];
  if (known.length === n) {
    let i = 0;
    while (i < n && known.charCodeAt(i) === buf[start + i]) i++;
    if (i === n) return known;
  }
  const made = asciiString(buf, start, n);
  recent[slot] = made;
  return made;
}

/** `n` ASCII bytes as a string: flat strings made in one step for short ones. */
function asciiString(b: Buffer, p: number, n: number): string {
  switch (n) {
    case 0: return '';
    case 1: return String.fromCharCode(b[p]);
    case 2: return String.fromCharCode(b[p], b[p + 1]);
    case 3: return String.fromCharCode(b[p], b[p + 1], b[p + 2]);
    case 4: return String.fromCharCode(b[p], b[p + 1], b[p + 2], b[p + 3]);
    case 5: return String.fromCharCode(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4]);
    case 6: return String.fromCharCode(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5]);
    case 7: return String.fromCharCode(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6]);
    case 8: return String.fromCharCode(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6], b[p + 7]);
    default: return b.toString('latin1', p, p + n);
  }
}

function decodeUtf8Slow(buf: Buffer, start: number, end: number): string {
  const s = buf.toString('utf8', start, end);
  // Node replaces what is not UTF-8 (and encoded surrogates) with U+FFFD: check those.
  return s.includes(FFFD) ? decodeSurrogatePass(buf, start, end) : s;
}

function unicodeError(buf: Buffer, i: number, reason: string): Error {
  const e = makeError('builtins', 'UnicodeDecodeError', ['utf-8', Buffer.from(buf.subarray(i, i + 1)), i, i + 1, reason]);
  e.message = `'utf-8' codec can't decode byte 0x${buf[i].toString(16).padStart(2, '0')} in position ${i}: ${reason}`;
  return e;
}

/** UTF-8 with 'surrogatepass': strict, except that encoded surrogates (ED A0-BF xx) are kept. */
function decodeSurrogatePass(buf: Buffer, start: number, end: number): string {
  const units: number[] = [];
  let i = start;
  while (i < end) {
    const c = buf[i];
    let cp: number;
    let n: number;
    if (c < 0x80) {
      cp = c;
      n = 1;
    } else if (c >= 0xc2 && c < 0xe0) {
      cp = c & 0x1f;
      n = 2;
    } else if (c >= 0xe0 && c < 0xf0) {
      cp = c & 0x0f;
      n = 3;
    } else if (c >= 0xf0 && c < 0xf5) {
      cp = c & 0x07;
      n = 4;
    } else {
      throw unicodeError(buf, i, 'invalid start byte');
    }
    if (i + n > end) throw unicodeError(buf, i, 'unexpected end of data');
    for (let k = 1; k < n; k++) {
      const cc = buf[i + k];
      if ((cc & 0xc0) !== 0x80) throw unicodeError(buf, i, 'invalid continuation byte');
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((n === 3 && cp < 0x800) || (n === 4 && (cp < 0x10000 || cp > 0x10ffff))) throw unicodeError(buf, i, 'invalid continuation byte');
    if (cp >= 0x10000) units.push(0xd800 + ((cp - 0x10000) >> 10), 0xdc00 + ((cp - 0x10000) & 0x3ff));
    else units.push(cp);
    i += n;
  }
  let s = '';
  for (let k = 0; k < units.length; k += 8192) s += String.fromCharCode(...units.slice(k, k + 8192));
  return s;
}

const isWellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

/** UTF-8 with 'surrogatepass' for a string that has lone surrogates. */
function encodeSurrogatePass(s: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    let cp = s.charCodeAt(i);
    if (cp >= 0xd800 && cp < 0xdc00 && i + 1 < s.length) {
      const lo = s.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo < 0xe000) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        i++;
      }
    }
    if (cp < 0x80) out.push(cp);
    else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
    else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
    else out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  }
  return Buffer.from(out);
}

// ---------------------------------------------------------------------------
// Ints: little-endian two's complement (LONG1/LONG4), as Python's encode_long.

function decodeLong(buf: Buffer, start: number, n: number): number | bigint {
  if (n === 0) return 0;
  if (n <= 6) {
    let v = 0;
    for (let i = n - 1; i >= 0; i--) v = v * 256 + buf[start + i];
    if (buf[start + n - 1] & 0x80) v -= 2 ** (8 * n);
    return v;
  }
  let hex = '';
  for (let i = n - 1; i >= 0; i--) hex += (buf[start + i] < 16 ? '0' : '') + buf[start + i].toString(16);
  let v = BigInt('0x' + hex);
  if (buf[start + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
  return toIntValue(v);
}

/** A Python int as JavaScript sees it: a number when it is a safe integer, else a bigint. */
function toIntValue(v: bigint): number | bigint {
  return v >= -0x1fffffffffffffn && v <= 0x1fffffffffffffn ? Number(v) : v;
}

function encodeLong(v: bigint): Uint8Array {
  // Python: nbytes = (x.bit_length() >> 3) + 1, then drop a redundant 0xff sign byte.
  const abs = v < 0n ? -v : v;
  const bitLength = abs === 0n ? 0 : abs.toString(2).length;
  let nbytes = (bitLength >> 3) + 1;
  const twos = v < 0n ? (1n << BigInt(nbytes * 8)) + v : v;
  let hex = twos.toString(16);
  if (hex.length < nbytes * 2) hex = hex.padStart(nbytes * 2, '0');
  const out = new Uint8Array(nbytes);
  for (let i = 0; i < nbytes; i++) out[i] = parseInt(hex.substr(hex.length - 2 * (i + 1), 2), 16);
  if (v < 0n && nbytes > 1 && out[nbytes - 1] === 0xff && (out[nbytes - 2] & 0x80) !== 0) nbytes--;
  return out.subarray(0, nbytes);
}

// ---------------------------------------------------------------------------
// loads

function toBuffer(data: unknown): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError(`a bytes-like object is required, not '${data === null ? 'null' : typeof data}'`);
}

const truncated = (): UnpicklingError => new UnpicklingError('pickle data was truncated');

function isPlainObject(v: object): v is Record<string, unknown> {
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

function setKey(obj: Record<string, unknown>, k: string, v: unknown): void {
  if (k === '__proto__') Object.defineProperty(obj, k, { value: v, writable: true, enumerable: true, configurable: true });
  else obj[k] = v;
}

/**
 * The reader's state: the value stack, the marks, the memo. A dict is read as a plain
 * object until a key that is not a str arrives; it then becomes a Map (`replaced`
 * remembers the swap so that later memo reads, and references taken before it, see the Map).
 */
class Unpickler {
  stack: unknown[] = [];
  marks: number[] = [];
  memo: unknown[] = [];
  bigMemo: Map<number, unknown> | null = null;
  replaced: Map<object, Map<unknown, unknown>> | null = null;
  /**
   * Insertion order of dicts read as plain objects that got an index-like key ('1'): such
   * an object lists those keys first, so a later change to a Map takes its order from here.
   */
  orders: Map<object, string[]> | null = null;
  memoReads = 0;
  view: DataView | null = null;
  proto = 0;

  constructor(readonly buf: Buffer) {}

  popMark(): number {
    const m = this.marks.pop();
    if (m === undefined) throw new UnpicklingError('could not find MARK');
    return m;
  }
  pop(): unknown {
    if (this.stack.length <= (this.marks.length ? this.marks[this.marks.length - 1] : 0)) throw new UnpicklingError('unpickling stack underflow');
    return this.stack.pop();
  }
  top(): unknown {
    if (this.stack.length <= (this.marks.length ? this.marks[this.marks.length - 1] : 0)) throw new UnpicklingError('unpickling stack underflow');
    return this.stack[this.stack.length - 1];
  }

  memoPut(idx: number, v: unknown): void {
    const memo = this.memo;
    if (idx === memo.length) memo.push(v);
    else if (idx < memo.length) memo[idx] = v;
    else (this.bigMemo ??= new Map()).set(idx, v);
  }
  memoGet(idx: number): unknown {
    this.memoReads++;
    let v: unknown;
    if (idx < this.memo.length) v = this.memo[idx];
    else if (this.bigMemo?.has(idx)) v = this.bigMemo.get(idx);
    else throw new UnpicklingError(`Memo value not found at index ${idx}`);
    if (this.replaced !== null && typeof v === 'object' && v !== null) v = this.replaced.get(v) ?? v;
    return v;
  }

  /** The dict at stack[at] as a Map (it had str keys only so far). */
  dictToMap(at: number): Map<unknown, unknown> {
    const obj = this.stack[at] as Record<string, unknown>;
    const order = this.orders?.get(obj);
    const m = new Map<unknown, unknown>(order ? order.map((k) => [k, obj[k]]) : Object.entries(obj));
    (this.replaced ??= new Map()).set(obj, m);
    this.stack[at] = m;
    return m;
  }

  setItems(at: number, from: number): void {
    const stack = this.stack;
    if (at < 0) throw new UnpicklingError('unpickling stack underflow');
    if ((stack.length - from) % 2 !== 0) throw new UnpicklingError('odd number of items for SETITEMS');
    let d = stack[at];
    if (d instanceof Map) {
      for (let i = from; i < stack.length; i += 2) d.set(stack[i], stack[i + 1]);
    } else if (typeof d === 'object' && d !== null && !Array.isArray(d) && isPlainObject(d)) {
      let i = from;
      const obj = d as Record<string, unknown>;
      let order = this.orders?.get(obj);
      for (; i < stack.length; i += 2) {
        const k = stack[i];
        if (typeof k !== 'string') break;
        if (order === undefined && k.length > 0 && k.charCodeAt(0) <= 0x39 && k.charCodeAt(0) >= 0x30) {
          order = Object.keys(obj);
          (this.orders ??= new Map()).set(obj, order);
        }
        if (order !== undefined && !Object.prototype.hasOwnProperty.call(obj, k)) order.push(k);
        setKey(obj, k, stack[i + 1]);
      }
      if (i < stack.length) {
        d = this.dictToMap(at);
        for (; i < stack.length; i += 2) (d as Map<unknown, unknown>).set(stack[i], stack[i + 1]);
      }
    } else {
      throw new UnpicklingError(`SETITEMS on ${describe(d)}, which is not a dict`);
    }
    stack.length = from;
  }

  global(module: unknown, name: unknown): PyGlobal {
    if (typeof module !== 'string' || typeof name !== 'string') throw new UnpicklingError('STACK_GLOBAL requires str');
    return findGlobal(module, name);
  }

  /** The position of the newline that ends a text argument starting at `p`. */
  readLine(p: number): number {
    const buf = this.buf;
    const nl = buf.indexOf(0x0a, p);
    if (nl < 0) throw truncated();
    return nl;
  }

  load(): unknown {
    const buf = this.buf;
    const end = buf.length;
    const stack = this.stack;
    let p = 0;
    for (;;) {
      if (p >= end) throw truncated();
      const op = buf[p++];
      switch (op) {
        case PROTO: {
          if (p >= end) throw truncated();
          const proto = buf[p++];
          if (proto > HIGHEST_PROTOCOL) throw new ValueError(`unsupported pickle protocol: ${proto}`);
          this.proto = proto;
          break;
        }
        case FRAME: {
          if (p + 8 > end) throw truncated();
          const n = buf.readUInt32LE(p) + buf.readUInt32LE(p + 4) * 0x100000000;
          p += 8;
          if (n > end - p) throw truncated();
          break;
        }
        case STOP: {
          if (stack.length === 0 || this.marks.length) throw new UnpicklingError(stack.length === 0 ? 'unpickling stack underflow' : 'unexpected MARK at STOP');
          const result = stack.pop();
          return this.replaced !== null && this.memoReads > 0 ? fixReplaced(result, this.replaced) : result;
        }
        case MARK:
          this.marks.push(stack.length);
          break;
        case POP:
          if (stack.length > (this.marks.length ? this.marks[this.marks.length - 1] : 0)) stack.pop();
          else if (this.marks.length) stack.length = this.popMark();
          else throw new UnpicklingError('unpickling stack underflow');
          break;
        case POP_MARK:
          stack.length = this.popMark();
          break;
        case DUP:
          stack.push(this.top());
          break;
        case NONE:
          stack.push(null);
          break;
        case NEWTRUE:
          stack.push(true);
          break;
        case NEWFALSE:
          stack.push(false);
          break;
        case BININT:
          if (p + 4 > end) throw truncated();
          stack.push(buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24));
          p += 4;
          break;
        case BININT1:
          if (p >= end) throw truncated();
          stack.push(buf[p++]);
          break;
        case BININT2:
          if (p + 2 > end) throw truncated();
          stack.push(buf[p] | (buf[p + 1] << 8));
          p += 2;
          break;
        case LONG1: {
          if (p >= end) throw truncated();
          const n = buf[p++];
          if (n > end - p) throw truncated();
          stack.push(decodeLong(buf, p, n));
          p += n;
          break;
        }
        case LONG4: {
          if (p + 4 > end) throw truncated();
          const n = buf.readInt32LE(p);
          p += 4;
          if (n < 0) throw new UnpicklingError('LONG pickle has negative byte count');
          if (n > end - p) throw truncated();
          stack.push(decodeLong(buf, p, n));
          p += n;
          break;
        }
        case BINFLOAT: {
          if (p + 8 > end) throw truncated();
          this.view ??= new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
          stack.push(this.view.getFloat64(p, false));
          p += 8;
          break;
        }
        case SHORT_BINUNICODE: {
          if (p >= end) throw truncated();
          const n = buf[p++];
          if (n > end - p) throw truncated();
          stack.push(decodeUtf8(buf, p, p + n));
          p += n;
          break;
        }
        case BINUNICODE: {
          if (p + 4 > end) throw truncated();
          const n = buf.readUInt32LE(p);
          p += 4;
          if (n > end - p) throw truncated();
          stack.push(decodeUtf8(buf, p, p + n));
          p += n;
          break;
        }
        case BINUNICODE8:
        case BINBYTES8:
        case BYTEARRAY8: {
          if (p + 8 > end) throw truncated();
          const n = buf.readUInt32LE(p) + buf.readUInt32LE(p + 4) * 0x100000000;
          p += 8;
          if (n > end - p) throw truncated();
          stack.push(op === BINUNICODE8 ? decodeUtf8(buf, p, p + n) : Buffer.from(buf.subarray(p, p + n)));
          p += n;
          break;
        }
        case SHORT_BINBYTES: {
          if (p >= end) throw truncated();
          const n = buf[p++];
          if (n > end - p) throw truncated();
          stack.push(Buffer.from(buf.subarray(p, p + n)));
          p += n;
          break;
        }
        case BINBYTES: {
          if (p + 4 > end) throw truncated();
          const n = buf.readUInt32LE(p);
          p += 4;
          if (n > end - p) throw truncated();
          stack.push(Buffer.from(buf.subarray(p, p + n)));
          p += n;
          break;
        }
        case SHORT_BINSTRING:
        case BINSTRING: {
          // Python 2 str, read as Python 3 does by default (encoding='ASCII').
          let n: number;
          if (op === SHORT_BINSTRING) {
            if (p >= end) throw truncated();
            n = buf[p++];
          } else {
            if (p + 4 > end) throw truncated();
            n = buf.readInt32LE(p);
            p += 4;
            if (n < 0) throw new UnpicklingError('BINSTRING pickle has negative byte count');
          }
          if (n > end - p) throw truncated();
          stack.push(decodeAscii(buf, p, p + n));
          p += n;
          break;
        }
        case EMPTY_LIST:
          stack.push([]);
          break;
        case EMPTY_DICT:
          stack.push({});
          break;
        case EMPTY_SET:
          stack.push(new Set());
          break;
        case EMPTY_TUPLE:
          stack.push(new Tuple());
          break;
        case TUPLE1: {
          const a = this.pop();
          const t = new Tuple();
          t.push(a);
          stack.push(t);
          break;
        }
        case TUPLE2: {
          const b = this.pop();
          const a = this.pop();
          const t = new Tuple();
          t.push(a, b);
          stack.push(t);
          break;
        }
        case TUPLE3: {
          const c = this.pop();
          const b = this.pop();
          const a = this.pop();
          const t = new Tuple();
          t.push(a, b, c);
          stack.push(t);
          break;
        }
        case TUPLE: {
          const m = this.popMark();
          const t = new Tuple();
          for (let i = m; i < stack.length; i++) t.push(stack[i]);
          stack.length = m;
          stack.push(t);
          break;
        }
        case LIST: {
          const m = this.popMark();
          const l = stack.slice(m);
          stack.length = m;
          stack.push(l);
          break;
        }
        case DICT: {
          const m = this.popMark();
          stack.splice(m, 0, {});
          this.setItems(m, m + 1);
          break;
        }
        case FROZENSET: {
          const m = this.popMark();
          const s = new Set(stack.slice(m));
          stack.length = m;
          stack.push(s);
          break;
        }
        case APPEND: {
          const v = this.pop();
          const l = this.top();
          if (!Array.isArray(l) || l instanceof Tuple) throw new UnpicklingError(`APPEND to ${describe(l)}, which is not a list`);
          l.push(v);
          break;
        }
        case APPENDS: {
          const m = this.popMark();
          const l = stack[m - 1];
          if (m === 0 || !Array.isArray(l) || l instanceof Tuple) throw new UnpicklingError(`APPENDS to ${describe(l)}, which is not a list`);
          for (let i = m; i < stack.length; i++) l.push(stack[i]);
          stack.length = m;
          break;
        }
        case SETITEM: {
          if (stack.length - 3 < (this.marks.length ? this.marks[this.marks.length - 1] : 0)) throw new UnpicklingError('unpickling stack underflow');
          this.setItems(stack.length - 3, stack.length - 2);
          break;
        }
        case SETITEMS: {
          const m = this.popMark();
          this.setItems(m - 1, m);
          break;
        }
        case ADDITEMS: {
          const m = this.popMark();
          const s = stack[m - 1];
          if (m === 0 || !(s instanceof Set)) throw new UnpicklingError(`ADDITEMS to ${describe(s)}, which is not a set`);
          for (let i = m; i < stack.length; i++) s.add(stack[i]);
          stack.length = m;
          break;
        }
        case MEMOIZE:
          this.memoPut(this.memo.length + (this.bigMemo ? this.bigMemo.size : 0), this.top());
          break;
        case BINPUT:
          if (p >= end) throw truncated();
          this.memoPut(buf[p++], this.top());
          break;
        case LONG_BINPUT:
          if (p + 4 > end) throw truncated();
          this.memoPut(buf.readUInt32LE(p), this.top());
          p += 4;
          break;
        case BINGET:
          if (p >= end) throw truncated();
          stack.push(this.memoGet(buf[p++]));
          break;
        case LONG_BINGET:
          if (p + 4 > end) throw truncated();
          stack.push(this.memoGet(buf.readUInt32LE(p)));
          p += 4;
          break;
        case GLOBAL: {
          const nl1 = this.readLine(p);
          const nl2 = this.readLine(nl1 + 1);
          const module = decodeAscii(buf, p, nl1, 'utf8');
          const name = decodeAscii(buf, nl1 + 1, nl2, 'utf8');
          p = nl2 + 1;
          stack.push(findGlobal(module, name));
          break;
        }
        case STACK_GLOBAL: {
          const name = this.pop();
          const module = this.pop();
          stack.push(this.global(module, name));
          break;
        }
        case REDUCE: {
          const args = this.pop();
          const f = this.pop();
          if (!(f instanceof PyGlobal) || !f.def.call) throw new UnpicklingError(`REDUCE on ${describe(f)}, which cannot be called here`);
          if (!Array.isArray(args)) throw new UnpicklingError('REDUCE arguments must be a tuple');
          stack.push(f.def.call(args));
          break;
        }
        case NEWOBJ: {
          const args = this.pop();
          const cls = this.pop();
          if (!(cls instanceof PyGlobal) || !cls.def.newobj) throw new UnpicklingError(`NEWOBJ on ${describe(cls)}, which cannot be created here`);
          if (!Array.isArray(args)) throw new UnpicklingError('NEWOBJ arguments must be a tuple');
          stack.push(cls.def.newobj(args));
          break;
        }
        case NEWOBJ_EX: {
          const kwargs = this.pop();
          const args = this.pop();
          const cls = this.pop();
          if (!(cls instanceof PyGlobal) || !cls.def.newobj) throw new UnpicklingError(`NEWOBJ_EX on ${describe(cls)}, which cannot be created here`);
          if (!Array.isArray(args)) throw new UnpicklingError('NEWOBJ_EX arguments must be a tuple');
          if (!(typeof kwargs === 'object' && kwargs !== null && !(kwargs instanceof Map) && Object.keys(kwargs).length === 0)) throw new UnpicklingError('NEWOBJ_EX keyword arguments are not read');
          stack.push(cls.def.newobj(args));
          break;
        }
        case BUILD: {
          const state = this.pop();
          const obj = this.top();
          build(obj, state);
          break;
        }
        case NEXT_BUFFER:
          throw new UnpicklingError('pickle stream refers to out-of-band data but no *buffers* argument was given');
        case READONLY_BUFFER:
          this.top();
          break;
        // Protocol 0 and 1 text opcodes.
        case INT: {
          const nl = this.readLine(p);
          const text = decodeAscii(buf, p, nl);
          p = nl + 1;
          stack.push(text === '00' ? false : text === '01' ? true : parseIntText(text));
          break;
        }
        case LONG: {
          const nl = this.readLine(p);
          let text = decodeAscii(buf, p, nl);
          p = nl + 1;
          if (text.endsWith('L')) text = text.slice(0, -1);
          stack.push(parseIntText(text));
          break;
        }
        case FLOAT: {
          const nl = this.readLine(p);
          const text = decodeAscii(buf, p, nl).trim();
          p = nl + 1;
          const v = /^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|nan|infinity)$/i.test(text) ? Number(text.replace(/inf(inity)?/i, 'Infinity').replace(/nan/i, 'NaN')) : NaN;
          if (Number.isNaN(v) && !/nan/i.test(text)) throw new ValueError(`could not convert string to float: '${text}'`);
          stack.push(v);
          break;
        }
        case STRING: {
          const nl = this.readLine(p);
          const text = decodeAscii(buf, p, nl);
          p = nl + 1;
          stack.push(parseStringLiteral(text));
          break;
        }
        case UNICODE: {
          const nl = this.readLine(p);
          stack.push(rawUnicodeEscape(buf.toString('latin1', p, nl)));
          p = nl + 1;
          break;
        }
        case PUT: {
          const nl = this.readLine(p);
          const idx = parseMemoIndex(decodeAscii(buf, p, nl));
          p = nl + 1;
          this.memoPut(idx, this.top());
          break;
        }
        case GET: {
          const nl = this.readLine(p);
          const idx = parseMemoIndex(decodeAscii(buf, p, nl));
          p = nl + 1;
          stack.push(this.memoGet(idx));
          break;
        }
        case PERSID:
        case BINPERSID:
          throw new UnpicklingError('A load persistent id instruction was encountered, but no persistent_load function was specified.');
        case EXT1:
        case EXT2:
        case EXT4:
          throw new UnpicklingError('copyreg extension codes are not read');
        case INST:
        case OBJ:
          throw new UnpicklingError('protocol 0/1 object instructions (INST, OBJ) are not read');
        default:
          throw new UnpicklingError(`invalid load key, '\\x${op.toString(16).padStart(2, '0')}'.`);
      }
    }
  }
}

function describe(v: unknown): string {
  if (v instanceof PyGlobal) return `global '${v.module}.${v.name}'`;
  if (v === null) return 'None';
  if (v instanceof Tuple) return 'a tuple';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? (v.constructor?.name ?? 'an object') : typeof v;
}

/** BUILD: an exception's `__dict__` (or `(dict, slots)`) becomes properties of the error. */
function build(obj: unknown, state: unknown): void {
  if (!(obj instanceof Error)) throw new UnpicklingError(`BUILD on ${describe(obj)} is not read`);
  let dict = state;
  if (Array.isArray(state) && state.length === 2) {
    dict = state[0];
    if (state[1] !== null && (typeof state[1] !== 'object' || state[1] instanceof Map)) throw new UnpicklingError('BUILD slot state must be a dict');
    if (state[1] !== null) for (const [k, v] of Object.entries(state[1] as object)) setErrorField(obj, k, v);
  }
  if (dict === null) return;
  if (typeof dict !== 'object' || dict instanceof Map || Array.isArray(dict)) throw new UnpicklingError('BUILD state must be a dict');
  for (const [k, v] of Object.entries(dict as object)) setErrorField(obj, k, v);
}

function setErrorField(e: Error, k: string, v: unknown): void {
  if (k === 'args' || k === 'name' || k === 'stack') return;
  Object.defineProperty(e, k, { value: v, writable: true, enumerable: true, configurable: true });
}

/** After a dict became a Map, swap every reference to the old object for the Map (no recursion). */
function fixReplaced(root: unknown, replaced: Map<object, Map<unknown, unknown>>): unknown {
  const swap = (v: unknown): unknown => (typeof v === 'object' && v !== null ? (replaced.get(v) ?? v) : v);
  const seen = new Set<object>();
  const todo: object[] = [];
  const visit = (v: unknown): void => {
    if (typeof v === 'object' && v !== null && !seen.has(v)) {
      seen.add(v);
      todo.push(v);
    }
  };
  const top = swap(root);
  visit(top);
  while (todo.length) {
    const o = todo.pop()!;
    if (Array.isArray(o)) {
      for (let i = 0; i < o.length; i++) visit((o[i] = swap(o[i])));
    } else if (o instanceof Map) {
      const entries = [...o];
      if (entries.some(([k]) => swap(k) !== k)) {
        o.clear();
        for (const [k, v] of entries) o.set(swap(k), swap(v));
      } else {
        for (const [k, v] of entries) o.set(k, swap(v));
      }
      for (const [k, v] of o) {
        visit(k);
        visit(v);
      }
    } else if (o instanceof Set) {
      const items = [...o];
      o.clear();
      for (const x of items) o.add(swap(x));
      for (const x of o) visit(x);
    } else if (!Buffer.isBuffer(o)) {
      const rec = o as Record<string, unknown>;
      for (const k of Object.keys(rec)) visit((rec[k] = swap(rec[k])));
      if (o instanceof Error && Array.isArray((o as PyErrorLike).args)) visit((o as PyErrorLike).args);
    }
  }
  return top;
}

function decodeAscii(buf: Buffer, start: number, end: number, encoding: 'ascii' | 'utf8' = 'ascii'): string {
  for (let i = start; i < end; i++) {
    if (buf[i] >= 0x80) {
      if (encoding === 'utf8') return decodeSurrogatePass(buf, start, end);
      const e = makeError('builtins', 'UnicodeDecodeError', ['ascii', Buffer.from(buf.subarray(start, end)), i - start, i - start + 1, 'ordinal not in range(128)']);
      e.message = `'ascii' codec can't decode byte 0x${buf[i].toString(16)} in position ${i - start}: ordinal not in range(128)`;
      throw e;
    }
  }
  return buf.toString('latin1', start, end);
}

function parseIntText(text: string): number | bigint {
  const t = text.trim();
  if (!/^[+-]?\d+$/.test(t)) throw new ValueError(`invalid literal for int() with base 10: '${text}'`);
  if (t.length > MAX_STR_DIGITS) throw new ValueError(`Exceeds the limit (${MAX_STR_DIGITS} digits) for integer string conversion`);
  return toIntValue(BigInt(t));
}

function parseMemoIndex(text: string): number {
  if (!/^\d{1,10}$/.test(text)) throw new UnpicklingError(`invalid memo index: '${text}'`);
  return Number(text);
}

/** Protocol 0's STRING: a quoted Python 2 repr, escapes as Python's `codecs.escape_decode`. */
function parseStringLiteral(text: string): string {
  const q = text[0];
  if (text.length < 2 || (q !== "'" && q !== '"') || text[text.length - 1] !== q) throw new UnpicklingError('the STRING opcode argument must be quoted');
  const body = text.slice(1, -1);
  return body.replace(/\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)/gs, (_, e: string) => {
    if (e[0] === 'x') return String.fromCharCode(parseInt(e.slice(1), 16));
    if (/^[0-7]/.test(e)) return String.fromCharCode(parseInt(e, 8) & 0xff);
    const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', v: '\v', '\n': '' };
    return simple[e] ?? `\\${e}`;
  });
}

/** Protocol 0's UNICODE: 'raw-unicode-escape' (only \uXXXX and \UXXXXXXXX are escapes). */
function rawUnicodeEscape(text: string): string {
  return text.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, u: string | undefined, U: string | undefined) => {
    const cp = parseInt((u ?? U)!, 16);
    if (cp > 0x10ffff) throw new ValueError('\\Uxxxxxxxx out of range');
    return String.fromCodePoint(cp);
  });
}

/**
 * Python's `pickle.loads(data)`: the object a pickle holds (protocols 0 to 5), by the
 * mapping in this module's header. Only the allow-listed globals are accepted (builtin
 * containers and exceptions); anything else is an UnpicklingError that names it.
 * Malformed or truncated data is an UnpicklingError (or ValueError, as in Python).
 */
export function loads(data: Uint8Array | ArrayBuffer): any {
  const u = new Unpickler(toBuffer(data));
  try {
    return u.load();
  } catch (e) {
    if (e instanceof PythonError || (e instanceof Error && (e as PyErrorLike)[pyClassOf])) throw e;
    // An error from the JavaScript engine (a string or array too long...): still the pickle's fault.
    const err = new UnpicklingError(`malformed pickle: ${(e as Error)?.message ?? String(e)}`);
    (err as Error).cause = e;
    throw err;
  }
}

// ---------------------------------------------------------------------------
// dumps

/** The writer's buffer is reused from call to call (a fresh one if dumps re-enters). */
let spare: Pickler | null = null;

class Pickler {
  buf: Buffer;
  view: DataView;
  pos = 0;
  /** Where the current frame's 9 header bytes are reserved, or -1 (protocol < 4). */
  frameStart = -1;
  memo = new Map<object, number>();
  /** Memo entries written (objects, and what CPython memoizes that has no object here). */
  memoCount = 0;
  depth = 0;
  proto = DEFAULT_PROTOCOL;

  constructor(size = 1 << 16) {
    this.buf = Buffer.allocUnsafeSlow(size);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  reset(proto: number): void {
    this.pos = 0;
    this.proto = proto;
    this.memo.clear();
    this.memoCount = 0;
    this.depth = 0;
    this.frameStart = -1;
  }

  grow(n: number): void {
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const b = Buffer.allocUnsafeSlow(size);
    this.buf.copy(b, 0, 0, this.pos);
    this.buf = b;
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  ensure(n: number): void {
    if (this.pos + n > this.buf.length) this.grow(n);
  }

  byte(b: number): void {
    if (this.pos + 1 > this.buf.length) this.grow(1);
    this.buf[this.pos++] = b;
  }

  u32(v: number): void {
    const buf = this.buf;
    buf[this.pos] = v & 0xff;
    buf[this.pos + 1] = (v >>> 8) & 0xff;
    buf[this.pos + 2] = (v >>> 16) & 0xff;
    buf[this.pos + 3] = (v >>> 24) & 0xff;
    this.pos += 4;
  }

  u64(v: number): void {
    this.u32(v >>> 0);
    this.u32(Math.floor(v / 0x100000000));
  }

  startFrame(): void {
    this.ensure(9);
    this.frameStart = this.pos;
    this.pos += 9;
  }

  /** Close the current frame: write its header, or drop it when the frame is too short. */
  commitFrame(): void {
    const start = this.frameStart;
    const len = this.pos - start - 9;
    if (len >= FRAME_SIZE_MIN) {
      const pos = this.pos;
      this.pos = start;
      this.buf[this.pos++] = FRAME;
      this.u64(len);
      this.pos = pos;
    } else {
      this.buf.copyWithin(start, start + 9, this.pos);
      this.pos -= 9;
    }
    this.frameStart = -1;
  }

  /**
   * Payload bytes after their opcode and length (the last `headerLen` bytes written). A
   * large payload goes outside frames with its header, as Python's `write_large_bytes`.
   */
  payload(b: Uint8Array, headerLen: number): void {
    if (this.frameStart >= 0 && b.length >= FRAME_SIZE_TARGET) {
      const header = Buffer.from(this.buf.subarray(this.pos - headerLen, this.pos));
      this.pos -= headerLen;
      this.commitFrame();
      this.ensure(headerLen + b.length);
      this.buf.set(header, this.pos);
      this.pos += headerLen;
      this.buf.set(b, this.pos);
      this.pos += b.length;
      this.startFrame();
      return;
    }
    this.raw(b);
  }

  /** Bytes written as they are (inside the current frame). */
  raw(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  memoize(obj: object | null): void {
    const idx = this.memoCount++;
    if (obj !== null) this.memo.set(obj, idx);
    if (this.proto >= 4) this.byte(MEMOIZE);
    else if (idx < 256) {
      this.ensure(2);
      this.buf[this.pos++] = BINPUT;
      this.buf[this.pos++] = idx;
    } else {
      this.ensure(5);
      this.buf[this.pos++] = LONG_BINPUT;
      this.u32(idx);
    }
  }

  get(idx: number): void {
    this.ensure(5);
    if (idx < 256) {
      this.buf[this.pos++] = BINGET;
      this.buf[this.pos++] = idx;
    } else {
      this.buf[this.pos++] = LONG_BINGET;
      this.u32(idx);
    }
  }

  saveInt(v: number): void {
    this.ensure(5);
    const buf = this.buf;
    if (v >= 0 && v <= 0xff) {
      buf[this.pos++] = BININT1;
      buf[this.pos++] = v;
    } else if (v >= 0 && v <= 0xffff) {
      buf[this.pos++] = BININT2;
      buf[this.pos++] = v & 0xff;
      buf[this.pos++] = v >> 8;
    } else if (v >= -0x80000000 && v <= 0x7fffffff) {
      buf[this.pos++] = BININT;
      this.u32(v);
    } else {
      this.saveLong(BigInt(v));
    }
  }

  saveLong(v: bigint): void {
    if (v >= -0x80000000n && v <= 0x7fffffffn) {
      this.saveInt(Number(v));
      return;
    }
    const bytes = encodeLong(v);
    if (bytes.length < 256) {
      this.ensure(2);
      this.buf[this.pos++] = LONG1;
      this.buf[this.pos++] = bytes.length;
    } else {
      this.ensure(5);
      this.buf[this.pos++] = LONG4;
      this.u32(bytes.length);
    }
    // Python writes ints inside frames whatever their size.
    this.raw(bytes);
  }

  saveFloat(v: number): void {
    this.ensure(9);
    this.buf[this.pos++] = BINFLOAT;
    this.view.setFloat64(this.pos, v, false);
    this.pos += 8;
  }

  saveStr(s: string): void {
    const n = s.length;
    // ASCII strings, the common case, are copied byte by byte after a guessed header.
    if (n < 256 && this.proto >= 4) {
      this.ensure(n + 2);
      const buf = this.buf;
      let p = this.pos + 2;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[p++] = c;
      }
      if (i === n) {
        buf[this.pos] = SHORT_BINUNICODE;
        buf[this.pos + 1] = n;
        this.pos = p;
        return;
      }
    }
    let bytes: Buffer;
    if (isWellFormed(s)) {
      // Write the UTF-8 in place when it fits (no intermediate Buffer).
      if (n <= 85 && this.proto >= 4) {
        this.ensure(n * 3 + 2);
        const written = this.buf.write(s, this.pos + 2, 'utf8');
        this.buf[this.pos] = SHORT_BINUNICODE;
        this.buf[this.pos + 1] = written;
        this.pos += 2 + written;
        return;
      }
      bytes = Buffer.from(s, 'utf8');
    } else {
      bytes = encodeSurrogatePass(s);
    }
    this.sized(bytes, SHORT_BINUNICODE, BINUNICODE, BINUNICODE8, 'a string');
  }

  saveBytes(b: Uint8Array): void {
    this.sized(b, SHORT_BINBYTES, BINBYTES, BINBYTES8, 'a bytes object');
  }

  /** Data behind the shortest of its three opcodes (1-, 4- or 8-byte length), as Python picks. */
  sized(b: Uint8Array, short: number, long: number, long8: number, what: string): void {
    const len = b.length;
    this.ensure(9);
    if (len < 256 && (this.proto >= 4 || short === SHORT_BINBYTES)) {
      this.buf[this.pos++] = short;
      this.buf[this.pos++] = len;
      this.payload(b, 2);
    } else if (len > 0xffffffff) {
      if (this.proto < 4) throw new PicklingError(`cannot serialize ${what} larger than 4 GiB`);
      this.buf[this.pos++] = long8;
      this.u64(len);
      this.payload(b, 9);
    } else {
      this.buf[this.pos++] = long;
      this.u32(len);
      this.payload(b, 5);
    }
  }

  /** `module.name` (STACK_GLOBAL from protocol 4, else GLOBAL). */
  saveGlobal(module: string, name: string): void {
    if (this.proto >= 4) {
      this.saveStr(module);
      this.saveStr(name);
      this.byte(STACK_GLOBAL);
    } else {
      const text = Buffer.from(`${module}\n${name}\n`, 'utf8');
      this.byte(GLOBAL);
      this.raw(text);
    }
    this.memoize(null);
  }

  save(v: unknown): void {
    switch (typeof v) {
      case 'string':
        this.saveStr(v);
        break;
      case 'number':
        if (Number.isSafeInteger(v) && !Object.is(v, -0)) this.saveInt(v);
        else this.saveFloat(v);
        break;
      case 'boolean':
        this.byte(v ? NEWTRUE : NEWFALSE);
        break;
      case 'undefined':
        this.byte(NONE);
        break;
      case 'bigint':
        this.saveLong(v);
        break;
      case 'object':
        if (v === null) this.byte(NONE);
        else this.saveObject(v);
        break;
      default:
        throw new PicklingError(`cannot pickle '${typeof v}' object`);
    }
    if (this.frameStart >= 0 && this.pos - this.frameStart >= FRAME_SIZE_TARGET) {
      this.commitFrame();
      this.startFrame();
    }
  }

  saveObject(v: object): void {
    const seen = this.memo.get(v);
    if (seen !== undefined) {
      this.get(seen);
      return;
    }
    if (++this.depth > MAX_DEPTH) throw new RecursionError('maximum recursion depth exceeded while pickling an object');
    if (Array.isArray(v)) {
      if (v instanceof Tuple) this.saveTuple(v);
      else this.saveList(v);
    } else if (v instanceof Uint8Array) {
      this.saveBytes(v);
      this.memoize(v);
    } else if (v instanceof Map) {
      this.saveMap(v);
    } else if (v instanceof Set) {
      this.saveSet(v);
    } else if (v instanceof PyFloat) {
      this.saveFloat(v.value);
    } else if (v instanceof ArrayBuffer) {
      this.saveBytes(new Uint8Array(v));
      this.memoize(v);
    } else if (v instanceof Error) {
      this.saveError(v);
    } else if (isPlainObject(v)) {
      this.saveDict(v);
    } else {
      throw new PicklingError(`cannot pickle '${v.constructor?.name ?? 'object'}' object`);
    }
    this.depth--;
  }

  saveList(l: unknown[]): void {
    this.byte(EMPTY_LIST);
    this.memoize(l);
    const n = l.length;
    if (n === 1) {
      this.save(l[0]);
      this.byte(APPEND);
      return;
    }
    for (let i = 0; i < n; ) {
      const stop = Math.min(n, i + BATCHSIZE);
      if (stop - i === 1) {
        this.save(l[i++]);
        this.byte(APPEND);
        continue;
      }
      this.byte(MARK);
      for (; i < stop; i++) this.save(l[i]);
      this.byte(APPENDS);
    }
  }

  saveTuple(t: unknown[]): void {
    const n = t.length;
    if (n === 0) {
      this.byte(EMPTY_TUPLE);
      return;
    }
    if (n <= 3) {
      for (let i = 0; i < n; i++) this.save(t[i]);
      const again = this.memo.get(t);
      if (again !== undefined) {
        // A tuple that contains itself: drop the copy built so far and use the memo's.
        for (let i = 0; i < n; i++) this.byte(POP);
        this.get(again);
        return;
      }
      this.byte(TUPLE1 + n - 1);
    } else {
      this.byte(MARK);
      for (let i = 0; i < n; i++) this.save(t[i]);
      const again = this.memo.get(t);
      if (again !== undefined) {
        this.byte(POP_MARK);
        this.get(again);
        return;
      }
      this.byte(TUPLE);
    }
    this.memoize(t);
  }

  saveDict(d: Record<string, unknown>): void {
    this.byte(EMPTY_DICT);
    this.memoize(d);
    const keys = Object.keys(d);
    const n = keys.length;
    if (n === 1) {
      this.saveStr(keys[0]);
      this.save(d[keys[0]]);
      this.byte(SETITEM);
      return;
    }
    for (let i = 0; i < n; ) {
      const stop = Math.min(n, i + BATCHSIZE);
      if (stop - i === 1) {
        this.saveStr(keys[i]);
        this.save(d[keys[i++]]);
        this.byte(SETITEM);
        continue;
      }
      this.byte(MARK);
      for (; i < stop; i++) {
        const k = keys[i];
        this.saveStr(k);
        this.save(d[k]);
      }
      this.byte(SETITEMS);
    }
  }

  saveMap(m: Map<unknown, unknown>): void {
    for (const k of m.keys()) checkHashable(k);
    this.byte(EMPTY_DICT);
    this.memoize(m);
    const entries = [...m];
    const n = entries.length;
    for (let i = 0; i < n; ) {
      const stop = Math.min(n, i + BATCHSIZE);
      if (stop - i === 1) {
        this.save(entries[i][0]);
        this.save(entries[i++][1]);
        this.byte(SETITEM);
        continue;
      }
      this.byte(MARK);
      for (; i < stop; i++) {
        this.save(entries[i][0]);
        this.save(entries[i][1]);
      }
      this.byte(SETITEMS);
    }
  }

  saveSet(s: Set<unknown>): void {
    for (const x of s) checkHashable(x);
    if (this.proto < 4) {
      // Python's save_set below protocol 4: set(list_of_items).
      this.saveGlobal('builtins', 'set');
      this.saveList([...s]);
      this.byte(TUPLE1);
      this.memoize(null);
      this.byte(REDUCE);
      this.memoize(s);
      return;
    }
    this.byte(EMPTY_SET);
    this.memoize(s);
    let batch = 0;
    let open = false;
    for (const x of s) {
      if (!open) {
        this.byte(MARK);
        open = true;
      }
      this.save(x);
      if (++batch === BATCHSIZE) {
        this.byte(ADDITEMS);
        open = false;
        batch = 0;
      }
    }
    if (open) this.byte(ADDITEMS);
  }

  /** An error goes as `cls(*args)` (BaseException.__reduce__), cls by its Python class. */
  saveError(e: PyErrorLike): void {
    const [module, name] = pythonClassOf(e);
    this.saveGlobal(module, name);
    const args = Array.isArray(e.args) ? e.args : [e.name === 'Error' || builtinExceptionNames.has(e.name) || errorHomes[e.name] ? e.message : `${e.name}: ${e.message}`];
    const t = new Tuple(...args);
    this.save(t);
    this.byte(REDUCE);
    this.memoize(e);
  }
}

/** The Python class an error is sent as. */
function pythonClassOf(e: PyErrorLike): readonly [string, string] {
  const from = e[pyClassOf];
  if (from) return from;
  const name = e.name;
  if (errorHomes[name]) return [errorHomes[name], name];
  if (builtinExceptionNames.has(name)) return ['builtins', name];
  return ['builtins', 'Exception'];
}

function typeName(v: unknown): string {
  if (v instanceof Tuple) return 'tuple';
  if (Array.isArray(v)) return 'list';
  if (v instanceof Map || (typeof v === 'object' && v !== null && isPlainObject(v))) return 'dict';
  if (v instanceof Set) return 'set';
  return typeof v === 'object' && v !== null ? (v.constructor?.name ?? 'object') : typeof v;
}

/** Python refuses unhashable set members and dict keys when loading: refuse them here, at the call. */
function checkHashable(v: unknown, depth = 0): void {
  if (v === null || typeof v !== 'object') return;
  if (v instanceof Tuple) {
    if (depth > MAX_DEPTH) throw new RecursionError('maximum recursion depth exceeded while pickling an object');
    for (const x of v) checkHashable(x, depth + 1);
    return;
  }
  if (v instanceof Uint8Array || v instanceof PyFloat || v instanceof ArrayBuffer || v instanceof Error) return;
  throw new TypeError(`unhashable type: '${typeName(v)}'`);
}

function checkProtocol(protocol: number | null | undefined): number {
  if (protocol == null) return DEFAULT_PROTOCOL;
  if (typeof protocol !== 'number' || !Number.isInteger(protocol)) throw new TypeError('protocol must be an integer');
  if (protocol < 0) return HIGHEST_PROTOCOL;
  if (protocol > HIGHEST_PROTOCOL) throw new ValueError(`pickle protocol must be <= ${HIGHEST_PROTOCOL}`);
  if (protocol < 3) throw new ValueError(`pickle protocol ${protocol} is not written here (3, 4 or 5)`);
  return protocol;
}

/** Options of `dumps` (Python's keyword form). */
export interface DumpsOptions {
  /** 3, 4 (the default) or 5; negative means the highest. */
  protocol?: number | null;
}

/**
 * Python's `pickle.dumps(obj, protocol=None)`: `obj` as pickle bytes, by the mapping in
 * this module's header. Protocol 4 by default (3 and 5 on request). Functions, symbols,
 * class instances other than those mapped are a PicklingError; a Map key or Set member that
 * Python cannot hash (an Array, object, Map, Set) is a TypeError, as Python would give.
 */
export function dumps(obj: unknown, protocol?: number | null | DumpsOptions): Buffer {
  const proto = checkProtocol(typeof protocol === 'object' && protocol !== null ? protocol.protocol : protocol);
  const w = spare ?? new Pickler();
  spare = null;
  try {
    w.reset(proto);
    w.ensure(2);
    w.buf[w.pos++] = PROTO;
    w.buf[w.pos++] = proto;
    if (proto >= 4) w.startFrame();
    w.save(obj);
    w.byte(STOP);
    if (w.frameStart >= 0) w.commitFrame();
    const out = Buffer.allocUnsafe(w.pos);
    w.buf.copy(out, 0, 0, w.pos);
    return out;
  } finally {
    w.memo.clear();
    if (w.buf.length <= 1 << 20) spare = w;
  }
}
