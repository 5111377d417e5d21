// The referents of SyncManager's data typeids (Python's dict, list, Namespace, Value and
// array.array living in the manager's process) and their method tables. A dict is a Map
// and a list an Array; their Python methods are functions of the table taking the
// referent first, so the server's objects stay plain Maps and Arrays.
import { inspect } from 'node:util';
import { IndexError, KeyError, pythonErrorClass, ValueError } from './errors.js';

/** A Python dict's key here: a string, number, bigint, boolean or null (else unhashable). */
export function checkKey(key: unknown): void {
  const t = typeof key;
  if (key === null || t === 'string' || t === 'number' || t === 'bigint' || t === 'boolean') return;
  throw new TypeError(`unhashable type: '${key === undefined ? 'undefined' : Array.isArray(key) ? 'list' : t === 'object' ? (key as object).constructor?.name ?? 'object' : t}'`);
}

/** Python's repr of a value, as the manager's `__str__`/`__repr__` give it. */
export function pyRepr(v: unknown, seen = new Set<unknown>()): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'string') return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  if (typeof v === 'number') return Number.isInteger(v) || !Number.isFinite(v) ? (Number.isNaN(v) ? 'nan' : Number.isFinite(v) ? String(v) : v > 0 ? 'inf' : '-inf') : String(v);
  if (typeof v === 'bigint') return String(v);
  if (typeof v === 'object') {
    if (seen.has(v)) return Array.isArray(v) ? '[...]' : '{...}';
    seen.add(v);
    try {
      if (v instanceof Map) return `{${[...v].map(([k, x]) => `${pyRepr(k, seen)}: ${pyRepr(x, seen)}`).join(', ')}}`;
      if (Array.isArray(v)) return `[${v.map((x) => pyRepr(x, seen)).join(', ')}]`;
      if (v instanceof Namespace) return v.toString();
      if (Object.getPrototypeOf(v) === Object.prototype) {
        return `{${Object.entries(v).map(([k, x]) => `${pyRepr(k, seen)}: ${pyRepr(x, seen)}`).join(', ')}}`;
      }
    } finally {
      seen.delete(v);
    }
  }
  return typeof (v as { toString?: unknown }).toString === 'function' && (v as object).toString !== Object.prototype.toString
    ? String(v)
    : inspect(v);
}

/** A Python index (negative counts from the end) into `length`, or IndexError. */
function index(i: unknown, length: number, what = 'list'): number {
  if (typeof i !== 'number' || !Number.isInteger(i)) throw new TypeError(`${what} indices must be integers, not ${typeof i}`);
  const j = i < 0 ? i + length : i;
  if (j < 0 || j >= length) throw new IndexError(`${what} index out of range`);
  return j;
}

function keyError(key: unknown): KeyError {
  return new KeyError(pyRepr(key));
}

/** Python's `dict(x)`: a plain object, a Map, or an iterable of pairs. */
export function makeDict(init?: unknown): Map<unknown, unknown> {
  const m = new Map<unknown, unknown>();
  if (init === undefined || init === null) return m;
  dictMethods.update(m, init);
  return m;
}

/** Python's `list(x)`. */
export function makeList(init?: Iterable<unknown> | null): unknown[] {
  if (init === undefined || init === null) return [];
  if (typeof (init as Iterable<unknown>)[Symbol.iterator] !== 'function') throw new TypeError(`'${typeof init}' object is not iterable`);
  return [...init];
}

/** The dict's methods, by their names on a DictProxy (Python's dunders renamed as in API.md). */
export const dictMethods = {
  getItem(m: Map<unknown, unknown>, k: unknown): unknown {
    checkKey(k);
    if (!m.has(k)) throw keyError(k);
    return m.get(k);
  },
  setItem(m: Map<unknown, unknown>, k: unknown, v: unknown): void {
    checkKey(k);
    m.set(k, v);
  },
  delItem(m: Map<unknown, unknown>, k: unknown): void {
    checkKey(k);
    if (!m.delete(k)) throw keyError(k);
  },
  contains(m: Map<unknown, unknown>, k: unknown): boolean {
    checkKey(k);
    return m.has(k);
  },
  len(m: Map<unknown, unknown>): number {
    return m.size;
  },
  get(m: Map<unknown, unknown>, k: unknown, dflt: unknown = null): unknown {
    checkKey(k);
    return m.has(k) ? m.get(k) : dflt;
  },
  keys(m: Map<unknown, unknown>): unknown[] {
    return [...m.keys()];
  },
  values(m: Map<unknown, unknown>): unknown[] {
    return [...m.values()];
  },
  items(m: Map<unknown, unknown>): Array<[unknown, unknown]> {
    return [...m.entries()];
  },
  update(m: Map<unknown, unknown>, other?: unknown): void {
    if (other === undefined || other === null) return;
    const pairs: Iterable<unknown> = other instanceof Map ? other.entries()
      : typeof (other as Iterable<unknown>)[Symbol.iterator] === 'function' ? (other as Iterable<unknown>)
      : typeof other === 'object' ? Object.entries(other as object) : (() => { throw new TypeError(`'${typeof other}' object is not iterable`); })();
    for (const p of pairs) {
      if (!Array.isArray(p) || p.length !== 2) throw new ValueError('dictionary update sequence element has wrong length; 2 is required');
      checkKey(p[0]);
      m.set(p[0], p[1]);
    }
  },
  pop(m: Map<unknown, unknown>, ...args: unknown[]): unknown {
    const k = args[0];
    checkKey(k);
    if (m.has(k)) {
      const v = m.get(k);
      m.delete(k);
      return v;
    }
    if (args.length > 1) return args[1];
    throw keyError(k);
  },
  popitem(m: Map<unknown, unknown>): [unknown, unknown] {
    if (m.size === 0) throw new KeyError('popitem(): dictionary is empty');
    const last = [...m.keys()].pop();
    const v = m.get(last);
    m.delete(last);
    return [last, v];
  },
  setdefault(m: Map<unknown, unknown>, k: unknown, dflt: unknown = null): unknown {
    checkKey(k);
    if (!m.has(k)) m.set(k, dflt);
    return m.get(k);
  },
  clear(m: Map<unknown, unknown>): void {
    m.clear();
  },
  copy(m: Map<unknown, unknown>): Map<unknown, unknown> {
    return new Map(m);
  },
};

function compare(a: unknown, b: unknown): number {
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if ((typeof a === 'number' || typeof a === 'bigint' || typeof a === 'boolean') && (typeof b === 'number' || typeof b === 'bigint' || typeof b === 'boolean')) {
    return a < b ? -1 : a > b ? 1 : 0;
  }
  throw new TypeError(`'<' not supported between instances of '${typeof a}' and '${typeof b}'`);
}

/** Python's `==` for the list methods that look values up (index, count, remove, in). */
function eq(a: unknown, b: unknown): boolean {
  if (a === b || (typeof a === 'number' && Number.isNaN(a) && a === b)) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => eq(x, b[i]));
  return false;
}

function checkRepeat(n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n)) throw new TypeError(`can't multiply sequence by non-int of type '${typeof n}'`);
  return Math.max(0, n);
}

/** The list's methods, by their names on a ListProxy. */
export const listMethods = {
  getItem(l: unknown[], i: unknown): unknown {
    return l[index(i, l.length)];
  },
  setItem(l: unknown[], i: unknown, v: unknown): void {
    l[index(i, l.length, 'list assignment')] = v;
  },
  delItem(l: unknown[], i: unknown): void {
    l.splice(index(i, l.length, 'list assignment'), 1);
  },
  contains(l: unknown[], v: unknown): boolean {
    return l.some((x) => eq(x, v));
  },
  len(l: unknown[]): number {
    return l.length;
  },
  append(l: unknown[], v: unknown): void {
    l.push(v);
  },
  extend(l: unknown[], it: Iterable<unknown>): void {
    for (const x of makeList(it)) l.push(x);
  },
  insert(l: unknown[], i: number, v: unknown): void {
    if (typeof i !== 'number' || !Number.isInteger(i)) throw new TypeError('insert() index must be an integer');
    const j = i < 0 ? Math.max(0, i + l.length) : Math.min(i, l.length);
    l.splice(j, 0, v);
  },
  pop(l: unknown[], i = -1): unknown {
    if (l.length === 0) throw new IndexError('pop from empty list');
    return l.splice(index(i, l.length, 'pop'), 1)[0];
  },
  remove(l: unknown[], v: unknown): void {
    const i = l.findIndex((x) => eq(x, v));
    if (i < 0) throw new ValueError('list.remove(x): x not in list');
    l.splice(i, 1);
  },
  index(l: unknown[], v: unknown, start = 0, stop = l.length): number {
    for (let i = Math.max(0, start < 0 ? start + l.length : start); i < Math.min(l.length, stop < 0 ? stop + l.length : stop); i++) {
      if (eq(l[i], v)) return i;
    }
    throw new ValueError(`${pyRepr(v)} is not in list`);
  },
  count(l: unknown[], v: unknown): number {
    return l.filter((x) => eq(x, v)).length;
  },
  reverse(l: unknown[]): void {
    l.reverse();
  },
  sort(l: unknown[], options?: { reverse?: boolean } | null): void {
    l.sort(compare);
    if (options?.reverse) l.reverse();
  },
  add(l: unknown[], other: unknown[]): unknown[] {
    if (!Array.isArray(other)) throw new TypeError(`can only concatenate list (not "${typeof other}") to list`);
    return [...l, ...other];
  },
  mul(l: unknown[], n: unknown): unknown[] {
    const out: unknown[] = [];
    for (let k = checkRepeat(n); k > 0; k--) out.push(...l);
    return out;
  },
  iadd(l: unknown[], other: Iterable<unknown>): void {
    listMethods.extend(l, other);
  },
  imul(l: unknown[], n: unknown): void {
    const copy = l.slice();
    l.length = 0;
    for (let k = checkRepeat(n); k > 0; k--) l.push(...copy);
  },
  reversed(l: unknown[]): unknown[] {
    return l.slice().reverse();
  },
};

/** The names a DictProxy exposes (CPython's DictProxy._exposed_, renamed). */
export const DICT_EXPOSED = Object.keys(dictMethods);
/** The names a ListProxy exposes (CPython's ListProxy._exposed_, renamed). */
export const LIST_EXPOSED = Object.keys(listMethods);

/**
 * Python's `multiprocessing.managers.Namespace`: attributes, shown as
 * `Namespace(a=1, b='x')` (names starting with `_` are left out of the text).
 */
export class Namespace {
  constructor(init?: Record<string, unknown> | null) {
    if (init) Object.assign(this, init);
  }
  /** @internal */
  __getattribute__(name: string): unknown {
    if (typeof name !== 'string') throw new TypeError('attribute name must be string');
    if (!Object.hasOwn(this, name)) {
      throw new (pythonErrorClass('AttributeError'))(`'Namespace' object has no attribute '${name}'`);
    }
    return (this as Record<string, unknown>)[name];
  }
  /** @internal */
  __setattr__(name: string, value: unknown): void {
    if (typeof name !== 'string') throw new TypeError('attribute name must be string');
    (this as Record<string, unknown>)[name] = value;
  }
  /** @internal */
  __delattr__(name: string): void {
    this.__getattribute__(name);
    delete (this as Record<string, unknown>)[name];
  }
  /** Python's repr: `Namespace(a=1, b='x')`. */
  toString(): string {
    const items = Object.entries(this).filter(([k]) => !k.startsWith('_')).map(([k, v]) => `${k}=${pyRepr(v)}`);
    return `Namespace(${items.sort().join(', ')})`;
  }
}

/** The names a NamespaceProxy exposes (as CPython's). */
export const NAMESPACE_EXPOSED = ['__getattribute__', '__setattr__', '__delattr__'];

/** Python's `multiprocessing.managers.Value`: a typecode and a value, nothing checked (as in Python). */
export class ValueHolder {
  constructor(public typecode: unknown, public value: unknown) {}
  get(): unknown {
    return this.value;
  }
  set(value: unknown): void {
    this.value = value;
  }
  toString(): string {
    return `${this.constructor.name === 'ValueHolder' ? 'Value' : this.constructor.name}(${pyRepr(this.typecode)}, ${pyRepr(this.value)})`;
  }
}
/** What a ValueProxy exposes (as CPython's). */
export const VALUE_EXPOSED = ['get', 'set'];

const arrayTypes: Record<string, (n: number) => ArrayLike<unknown> & { [i: number]: unknown }> = {
  b: (n) => new Int8Array(n), B: (n) => new Uint8Array(n), h: (n) => new Int16Array(n), H: (n) => new Uint16Array(n),
  i: (n) => new Int32Array(n), I: (n) => new Uint32Array(n), l: (n) => new BigInt64Array(n), L: (n) => new BigUint64Array(n),
  q: (n) => new BigInt64Array(n), Q: (n) => new BigUint64Array(n), f: (n) => new Float32Array(n), d: (n) => new Float64Array(n),
  u: (n) => new Array<string>(n).fill('\0'),
};

/**
 * Python's `array.array(typecode, initializer)` as SyncManager's `Array` typeid makes it: a
 * typed array of the typecode ('b B h H i I l L q Q f d u'; 'l', 'L', 'q', 'Q' hold bigints).
 */
export class ArrayHolder {
  readonly typecode: string;
  readonly items: ArrayLike<unknown> & { [i: number]: unknown };
  constructor(typecode: string, init: Iterable<unknown> | number = []) {
    const make = arrayTypes[typecode];
    if (!make) throw new ValueError('bad typecode (must be b, B, u, h, H, i, I, l, L, q, Q, f or d)');
    this.typecode = typecode;
    const values = typeof init === 'number' ? null : [...init];
    this.items = make(values ? values.length : init as number);
    values?.forEach((v, i) => this.setItem(i, v));
  }
  len(): number {
    return this.items.length;
  }
  getItem(i: unknown): unknown {
    return this.items[index(i, this.items.length, 'array')];
  }
  setItem(i: unknown, v: unknown): void {
    const j = index(i, this.items.length, 'array assignment');
    const big = this.items instanceof BigInt64Array || this.items instanceof BigUint64Array;
    if (this.typecode === 'u' ? typeof v !== 'string' || v.length !== 1 : big ? typeof v !== 'bigint' && !Number.isInteger(v) : typeof v !== 'number') {
      throw new TypeError(`array item must be ${this.typecode === 'u' ? 'a unicode character' : big ? 'an integer' : 'a number'}, not ${typeof v}`);
    }
    this.items[j] = big ? BigInt(v as number) : v;
  }
  /** The items as a plain array (what `_getvalue()` returns). */
  toArray(): unknown[] {
    return Array.from(this.items);
  }
  toString(): string {
    return `array('${this.typecode}', ${pyRepr(this.toArray())})`;
  }
}
/** What an ArrayProxy exposes (CPython's `__len__`, `__getitem__`, `__setitem__`, renamed). */
export const ARRAY_EXPOSED = ['len', 'getItem', 'setItem'];

/** SyncManager's `dict` typeid: `dict()`, `dict(obj | Map | pairs)`. */
export function dict(init?: unknown): Map<unknown, unknown> {
  return makeDict(init);
}
/** SyncManager's `list` typeid. */
export function list(init?: Iterable<unknown> | null): unknown[] {
  return makeList(init);
}
/** SyncManager's `Namespace` typeid. */
export function makeNamespace(init?: Record<string, unknown> | null): Namespace {
  return new Namespace(init);
}
/** SyncManager's `Value` typeid. */
export function makeValue(typecode: unknown, value: unknown): ValueHolder {
  return new ValueHolder(typecode, value);
}
/** SyncManager's `Array` typeid. */
export function makeArray(typecode: string, init: Iterable<unknown> | number): ArrayHolder {
  return new ArrayHolder(typecode, init);
}
