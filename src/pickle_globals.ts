// The globals that loading a pickle accepts: a fixed allow-list (the mapped builtin types,
// Python's builtin exceptions and multiprocessing's own, the managers' Token and proxy
// rebuilders once registered). Each entry says what REDUCE and NEWOBJ make of it; nothing
// here imports or runs Python code, and a global not listed is an UnpicklingError naming it.
import { OSError, pythonErrorClass, PythonError, UnpicklingError } from './errors.js';
import { BUILTIN_EXCEPTIONS, pyClassOf, type PyErrorLike, Tuple } from './pickle_common.js';

/** What a global that the reader accepts does. */
export interface GlobalDef {
  /** REDUCE: `global(*args)`. */
  call?: (args: unknown[]) => unknown;
  /** NEWOBJ/NEWOBJ_EX: `global.__new__(global, *args)`. */
  newobj?: (args: unknown[]) => unknown;
}

/** A global on the reader's stack (what GLOBAL pushes); REDUCE/NEWOBJ consult its definition. */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string, readonly def: GlobalDef) {}
}


const allowed = new Map<string, GlobalDef>();
const allow = (module: string, name: string, def: GlobalDef): void => {
  allowed.set(`${module}\n${name}`, def);
};

export function makeError(module: string, name: string, args: unknown[]): Error {
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

/** Globals accepted only inside `_withGlobals` (the managers' pickle dialect). */
let scoped: Map<string, GlobalDef> | null = null;

/**
 * Run `fn` (a `loads`) with `extra` globals accepted besides the fixed list: the managers'
 * Token and proxy rebuilders, for their messages only (a plain `loads` refuses them). @internal
 */
export function _withGlobals<T>(extra: Map<string, GlobalDef>, fn: () => T): T {
  const before = scoped;
  scoped = extra;
  try {
    return fn();
  } finally {
    scoped = before;
  }
}

/** A key of `_withGlobals`' map. @internal */
export function globalKey(module: string, name: string): string {
  return `${module}\n${name}`;
}

export function findGlobal(module: string, name: string): PyGlobal {
  const def = allowed.get(`${module}\n${name}`) ?? scoped?.get(`${module}\n${name}`);
  if (!def) {
    throw new UnpicklingError(`global '${module}.${name}' is not allowed: node-multiprocessing's pickle loads only the builtin types and exceptions it maps (it never imports or runs anything)`);
  }
  return new PyGlobal(module, name, def);
}
