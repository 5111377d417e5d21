// Shared ctypes objects (Python's multiprocessing.sharedctypes): Value, Array, RawValue,
// RawArray, copy, synchronized, over blocks of the shared heap. Every view is sliced
// from the one ArrayBuffer of its arena (heap.ts), so element access is native speed.
import { endianness } from 'node:os';
import { inspect } from 'node:util';
import {
  ArrayCType, bytesRepr, c_bool, c_char, c_wchar, checkIndex, coerce, fmtElem, indexable, initStruct, isStructType, layoutOf,
  SimpleCType, strRepr, structAt, Structure, toBytes, typecodeToType, typeName, type SharedTypedArray, type StructType,
} from './ctypes.js';
import { TimeoutError, ValueError } from './errors.js';
import { adoptBlock, allocBlock, bufferOf, holdUntilCollected, transferOf, type BlockId, type NativeBlock } from './heap.js';
import { isPlainObject, optionalArgs } from './options.js';
import { reduce, registerKind, type Reduced } from './reduction.js';
import { RLock, type AcquireOptions, type Held, type Timeout } from './synchronize.js';

export {
  ARRAY, ArrayCType, c_bool, c_byte, c_char, c_double, c_float, c_int, c_long, c_longlong, c_short, c_size_t, c_ubyte, c_uint,
  c_ulong, c_ulonglong, c_ushort, c_wchar, FieldArray, SimpleCType, Structure, typecodeToType, type FieldType,
  type SharedTypedArray, type StructType,
} from './ctypes.js';

if (endianness() !== 'LE') throw new Error('node-multiprocessing shared ctypes need a little-endian machine');

registerKind('ctypes-struct-copy', (s: { type: StructType; bytes: Uint8Array }) => {
  const obj = Object.create(s.type.prototype) as Structure;
  const bytes = new Uint8Array(s.bytes);
  Object.defineProperties(obj, { _dv: { value: new DataView(bytes.buffer), writable: true }, _off: { value: 0, writable: true } });
  return obj;
});

// ---- views over shared blocks -----------------------------------------------------

const dataViews = new WeakMap<ArrayBuffer, DataView>();
function dataViewOf(buf: ArrayBuffer): DataView {
  let dv = dataViews.get(buf);
  if (!dv) dataViews.set(buf, (dv = new DataView(buf)));
  return dv;
}

interface Spec {
  /** Typecode of a simple type, or absent for a structure. */
  code?: string;
  type?: StructType;
  /** Present for arrays. */
  length?: number;
}

interface SharedState extends Spec { id: BlockId }

function reduceShared(block: NativeBlock, spec: Spec): Reduced {
  const { id, fds, undo } = transferOf(block);
  return { kind: 'ctypes', state: { ...spec, id } satisfies SharedState, fds, undo };
}

/** A scalar ctypes object in shared memory: Python's `c_int(3)` from `RawValue('i', 3)`. */
export class CValue<T = any> {
  /** @internal */ readonly _type: SimpleCType;
  /** @internal */ readonly _view: SharedTypedArray;
  /** @internal */ readonly _block: NativeBlock;

  /** @internal */
  constructor(type: SimpleCType, block: NativeBlock) {
    this._type = type;
    this._block = block;
    this._view = new type._array(bufferOf(block), block.byteOffset, 1);
  }

  /**
   * Python's `value`: read the element (a number, a bigint for 64-bit integers, a boolean, a one-byte Buffer for `c_char`).
   */
  get value(): T {
    const v = this._view[0];
    switch (this._type._kind) {
      case 'char': return Buffer.from([v as number]) as T;
      case 'wchar': return String.fromCodePoint(v as number) as T;
      case 'bool': return (v !== 0) as T;
      default: return v as T;
    }
  }

  /** Write the element, converted and checked as ctypes checks it (a TypeError for a value of the wrong kind). */
  set value(v: T) {
    const k = this._type._kind;
    (this._view as any)[0] = k === 'float' && typeof v === 'number' ? v : coerce(this._type, v);
  }

  /** How this object crosses a process boundary ({@link Shareable}). @internal */
  [reduce](): Reduced {
    return reduceShared(this._block, { code: this._type._type_ });
  }

  /** Python's `repr()`: `c_int(3)`. */
  toString(): string {
    return `${this._type.__name__}(${fmtElem(this._type, this.value)})`;
  }

  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

/** A `c_char` array in shared memory: bytes with `value` (up to the first NUL) and `raw`. */
export class CharArray {
  /** @internal */ readonly _bytes: Uint8Array;
  /** @internal */ readonly _block: NativeBlock;

  /** @internal */
  constructor(block: NativeBlock, length: number) {
    this._block = block;
    this._bytes = new Uint8Array(bufferOf(block), block.byteOffset, length);
  }

  /** Number of bytes. */
  get length(): number {
    return this._bytes.length;
  }

  /** Python's `arr[i]`: byte `i` as a one-byte Buffer (`arr[i]` also works). */
  get(i: number): Buffer {
    return Buffer.from([this._bytes[checkIndex(i, this._bytes.length)]]);
  }

  /** Python's `arr[i] = v`: set byte `i` (a one-byte Buffer or string, or an integer). */
  set(i: number, v: unknown): void {
    this._bytes[checkIndex(i, this._bytes.length)] = coerce(c_char, v) as number;
  }

  /** The bytes up to the first NUL (a copy). */
  get value(): Buffer {
    const end = this._bytes.indexOf(0);
    return Buffer.from(this._bytes.subarray(0, end < 0 ? this._bytes.length : end));
  }

  /**
   * Write bytes from the start, NUL-terminated if there is room (Python's `arr.value = b'...'`); a string is latin1.
   */
  set value(v: Uint8Array | string) {
    const b = toBytes(v);
    if (b.length > this._bytes.length) throw new ValueError('byte string too long');
    this._bytes.set(b);
    if (b.length < this._bytes.length) this._bytes[b.length] = 0;
  }

  /** All the bytes (a copy). */
  get raw(): Buffer {
    return Buffer.from(this._bytes);
  }

  /** Write bytes from the start without a terminating NUL (Python's `arr.raw = b'...'`). */
  set raw(v: Uint8Array | string) {
    const b = toBytes(v);
    if (b.length > this._bytes.length) throw new ValueError('byte string too long');
    this._bytes.set(b);
  }

  /** The bytes, each a one-byte Buffer. */
  *[Symbol.iterator](): IterableIterator<Buffer> {
    for (let i = 0; i < this._bytes.length; i++) yield Buffer.from([this._bytes[i]]);
  }

  /** How this object crosses a process boundary ({@link Shareable}). @internal */
  [reduce](): Reduced {
    return reduceShared(this._block, { code: 'c', length: this._bytes.length });
  }

  /** Python's `repr()`: `<c_char_Array_10>`. */
  toString(): string {
    return `<c_char_Array_${this._bytes.length} ${bytesRepr(this.raw)}>`;
  }

  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }

  [index: number]: Buffer;
}

/**
 * A `c_wchar` array in shared memory (Python's `RawArray('u', ...)`): one character (code point)
 * per element; `arr[i]` is a one-character string, `value` the text up to the first NUL.
 */
export class WCharArray {
  /** @internal */ readonly _units: Uint32Array;
  /** @internal */ readonly _block: NativeBlock;

  /** @internal */
  constructor(block: NativeBlock, length: number) {
    this._block = block;
    this._units = new Uint32Array(bufferOf(block), block.byteOffset, length);
  }

  /** Number of characters it holds. */
  get length(): number {
    return this._units.length;
  }

  /** Python's `arr[i]`: character `i`, a one-character string (`arr[i]` also works). */
  get(i: number): string {
    return String.fromCodePoint(this._units[checkIndex(i, this._units.length)]);
  }

  /** Python's `arr[i] = v`: set character `i` (a one-character string). */
  set(i: number, v: unknown): void {
    this._units[checkIndex(i, this._units.length)] = coerce(c_wchar, v) as number;
  }

  /** Python's `value`: the text up to the first NUL. */
  get value(): string {
    const end = this._units.indexOf(0);
    return String.fromCodePoint(...this._units.subarray(0, end < 0 ? this._units.length : end));
  }

  /** Write text from the start, NUL-terminated if there is room; a ValueError if it is longer than the array. */
  set value(v: string) {
    if (typeof v !== 'string') throw new TypeError(`unicode string expected instead of ${typeName(v)} instance`);
    const cps = Array.from(v, (c) => c.codePointAt(0)!);
    if (cps.length > this._units.length) throw new ValueError(`string too long (${cps.length}, maximum length ${this._units.length})`);
    this._units.set(cps);
    if (cps.length < this._units.length) this._units[cps.length] = 0;
  }

  /** The characters, each a one-character string (Python's `arr[:]` is their concatenation: `toArray().join('')`). */
  *[Symbol.iterator](): IterableIterator<string> {
    for (let i = 0; i < this._units.length; i++) yield String.fromCodePoint(this._units[i]);
  }

  /** All characters (Python's `arr[:]`, as an array of one-character strings). */
  toArray(): string[] {
    return [...this];
  }

  /** How this object crosses a process boundary ({@link Shareable}). @internal */
  [reduce](): Reduced {
    return reduceShared(this._block, { code: 'u', length: this._units.length });
  }

  /** Python's `repr()`-like text: `<c_wchar_Array_5 'hello'>`. */
  toString(): string {
    return `<c_wchar_Array_${this._units.length} ${strRepr(this.value)}>`;
  }

  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }

  [index: number]: string;
}

/** An array of structures in shared memory. */
export class StructArray<S extends Structure = Structure> {
  /** @internal */ readonly _type: StructType;
  /** @internal */ readonly _block: NativeBlock;
  /** @internal */ readonly _dv: DataView;
  /** @internal */ readonly _off: number;
  /** @internal */ readonly _stride: number;
  /** Number of structures. */
  readonly length: number;

  /** @internal */
  constructor(type: StructType, block: NativeBlock, length: number) {
    this._type = type;
    this._block = block;
    this._dv = dataViewOf(bufferOf(block));
    this._off = block.byteOffset;
    this._stride = layoutOf(type).size;
    this.length = length;
  }

  /** Python's `arr[i]`: a view of structure `i` (writes to its fields go to shared memory). */
  get(i: number): S {
    return structAt(this._type, this._dv, this._off + checkIndex(i, this.length) * this._stride, this) as S;
  }

  /** Python's `arr[i] = v`: copy a structure, a tuple-like array or an object of fields into slot `i`. */
  set(i: number, v: unknown): void {
    initStruct(this._type, this._dv, this._off + checkIndex(i, this.length) * this._stride, v);
  }

  /** Views of the structures in order. */
  *[Symbol.iterator](): IterableIterator<S> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }

  /** Views of all structures (Python's `arr[:]`). */
  toArray(): S[] {
    return [...this];
  }

  /** How this object crosses a process boundary ({@link Shareable}). @internal */
  [reduce](): Reduced {
    return reduceShared(this._block, { type: this._type, length: this.length });
  }

  /** Python's `repr()`: `<Point_Array_4>`. */
  toString(): string {
    return `<${this._type.name}_Array_${this.length}>`;
  }

  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }

  [index: number]: S;
}

// ---- construction -----------------------------------------------------------------

/**
 * A typecode (`'i'`, `'d'`, `'c'`...) as in Python's `array` module, a simple ctypes type, or a Structure class.
 */
export type TypeOrCode = string | SimpleCType | StructType;

function resolveType(t: TypeOrCode): SimpleCType | StructType {
  if (typeof t === 'string') {
    const st = typecodeToType[t];
    if (!st) throw new TypeError(`bad typecode (must be one of ${Object.keys(typecodeToType).join(' ')}): ${inspect(t)}`);
    return st;
  }
  if (t instanceof SimpleCType || isStructType(t)) return t;
  const a = t as unknown;
  if (a instanceof ArrayCType) {
    throw new TypeError(`${a.__name__} is an array type, for Structure fields; a shared array is RawArray(type, ${a._length_}) or Array(type, ${a._length_})`);
  }
  throw new TypeError(`expected a typecode or a ctypes type, not ${inspect(t)}`);
}

/** Make the shared object of `spec` over `block` (which it keeps until collected). */
function viewOf(block: NativeBlock, spec: Spec): any {
  let obj: object;
  if (spec.length === undefined) {
    if (spec.type) {
      obj = structAt(spec.type, dataViewOf(bufferOf(block)), block.byteOffset, undefined);
      // Sent as the same memory, not as a copy of its bytes (Structure's own reduce).
      Object.defineProperty(obj, reduce, { value: () => reduceShared(block, spec) });
    } else {
      obj = new CValue(typecodeToType[spec.code!], block);
    }
  } else if (spec.type) {
    obj = indexable(new StructArray(spec.type, block, spec.length));
  } else if (spec.code === 'c') {
    obj = indexable(new CharArray(block, spec.length));
  } else if (spec.code === 'u') {
    obj = indexable(new WCharArray(block, spec.length));
  } else {
    const t = typecodeToType[spec.code!];
    const ta = new t._array(bufferOf(block), block.byteOffset, spec.length);
    Object.defineProperty(ta, reduce, { value: () => reduceShared(block, spec) });
    typedArraySpecs.set(ta, spec);
    obj = ta;
  }
  holdUntilCollected(obj, block);
  return obj;
}

const typedArraySpecs = new WeakMap<object, Spec>();

registerKind('ctypes', (s: SharedState, fds: number[]) => viewOf(adoptBlock(fds[0], s.id), s));

/**
 * A ctypes object in shared memory (Python's `RawValue(typecode_or_type, *args)`): a
 * `CValue` with `value`, or for a Structure type an instance of it.
 */
export function RawValue(typeOrCode: TypeOrCode, ...args: unknown[]): any {
  const t = resolveType(typeOrCode);
  if (t instanceof SimpleCType) {
    const v = viewOf(allocBlock(t.size), { code: t._type_ }) as CValue;
    if (args.length > 1) throw new TypeError(`${t.__name__} takes at most 1 argument`);
    if (args.length === 1 && args[0] !== undefined) v.value = args[0];
    return v;
  }
  const l = layoutOf(t);
  const block = allocBlock(l.size);
  const s = viewOf(block, { type: t });
  initStruct(t, s._dv, s._off, args);
  return s;
}

/**
 * A ctypes array in shared memory (Python's `RawArray`): for a numeric typecode a typed
 * array (`Float64Array` for 'd' ...) over the shared memory; for 'c' a `CharArray`; for
 * a Structure type a `StructArray`.
 */
export function RawArray(typeOrCode: TypeOrCode, sizeOrInit: number | Iterable<unknown> | ArrayLike<unknown>): any {
  const t = resolveType(typeOrCode);
  let init: ArrayLike<unknown> | undefined;
  let length: number;
  if (typeof sizeOrInit === 'number' || typeof sizeOrInit === 'bigint') {
    length = Number(sizeOrInit);
    if (!Number.isInteger(length) || length < 0) throw new ValueError(`array size must be a non-negative integer, not ${sizeOrInit}`);
  } else if (typeof sizeOrInit === 'string' && t === c_char) {
    init = Buffer.from(sizeOrInit, 'latin1');
    length = init.length;
  } else if (typeof sizeOrInit === 'string' && t === c_wchar) {
    init = Array.from(sizeOrInit); // characters, not UTF-16 units: one element each, as in Python
    length = init.length;
  } else if (sizeOrInit != null && (typeof (sizeOrInit as any)[Symbol.iterator] === 'function' || typeof (sizeOrInit as any).length === 'number')) {
    init = ArrayBuffer.isView(sizeOrInit) || Array.isArray(sizeOrInit) ? (sizeOrInit as ArrayLike<unknown>) : Array.from(sizeOrInit as Iterable<unknown>);
    length = init.length;
  } else {
    throw new TypeError(`size_or_initializer must be an integer or a sequence, not ${inspect(sizeOrInit)}`);
  }
  const elemSize = t instanceof SimpleCType ? t.size : layoutOf(t).size;
  const block = allocBlock(elemSize * length);
  const spec: Spec = t instanceof SimpleCType ? { code: t._type_, length } : { type: t, length };
  const obj = viewOf(block, spec);
  if (init) {
    if (t === c_wchar) {
      const target = (obj as WCharArray)._units;
      for (let i = 0; i < length; i++) target[i] = coerce(t, init[i]) as number;
    } else if (t instanceof SimpleCType && t !== c_char && t !== c_bool) {
      const ta = obj as SharedTypedArray;
      if (t._kind === 'float') {
        for (let i = 0; i < length; i++) (ta as Float64Array)[i] = coerce(t, init[i]) as number;
      } else {
        for (let i = 0; i < length; i++) (ta as any)[i] = coerce(t, init[i]);
      }
    } else if (t === c_char || t === c_bool) {
      const target = t === c_char ? (obj as CharArray)._bytes : (obj as Uint8Array);
      for (let i = 0; i < length; i++) target[i] = coerce(t, init[i]) as number;
    } else {
      for (let i = 0; i < length; i++) (obj as StructArray).set(i, init[i]);
    }
  }
  return obj;
}

// ---- synchronized wrappers --------------------------------------------------------

/** What a synchronized wrapper locks: a Lock or RLock (anything with acquireSync/release). */
export interface LockLike {
  /** Acquire, blocking the thread. */
  acquireSync(block?: boolean | AcquireOptions, timeout?: Timeout): boolean;
  /** Release. */
  release(): void;
  /** Acquire without blocking the event loop. */
  acquire(block?: boolean | AcquireOptions, timeout?: Timeout): Promise<boolean>;
  /** Acquire for a `using` scope, if the lock offers it. */
  hold?(block?: boolean | AcquireOptions, timeout?: Timeout): Promise<Held>;
}

/** Python's `lock=` and `ctx=` keyword arguments of `Value` and `Array`: `Value('i', 0, { lock: false })`. */
export interface SharedOptions {
  /**
   * true or absent: a new RLock guards the object; false: a raw object without a lock; or the Lock/RLock to use.
   */
  lock?: boolean | LockLike | null;
  /** Python's `ctx`: accepted and ignored (there is one context). */
  ctx?: unknown;
}

/** Base of the synchronized wrappers (Python's `SynchronizedBase`). */
export class SynchronizedBase<O = any> {
  /** @internal */ readonly _obj: O;
  /** @internal */ readonly _lock: LockLike;

  constructor(obj: O, lock?: LockLike | null) {
    this._obj = obj;
    this._lock = lock ?? new RLock();
    if (typeof this._lock.acquireSync !== 'function' || typeof this._lock.release !== 'function') {
      throw new TypeError(`${inspect(lock)} has no method 'acquire'`);
    }
  }

  /** Python's `get_obj()`: the wrapped raw object (unlocked access). */
  getObj(): O {
    return this._obj;
  }

  /** Python's `get_lock()`: the lock that guards it. */
  getLock(): LockLike {
    return this._lock;
  }

  /** Acquire the wrapper's lock (Python's `acquire()`), without blocking the event loop. */
  acquire(block?: boolean | AcquireOptions, timeout?: Timeout): Promise<boolean> {
    return this._lock.acquire(block, timeout);
  }

  /** Acquire the wrapper's lock, blocking the thread. */
  acquireSync(block?: boolean | AcquireOptions, timeout?: Timeout): boolean {
    return this._lock.acquireSync(block, timeout);
  }

  /** Python's `release()` of the wrapper's lock. */
  release(): void {
    this._lock.release();
  }

  /** Scoped hold of the wrapper's lock: `{ using h = await v.hold(); ... }`. */
  async hold(block?: boolean | AcquireOptions, timeout?: Timeout): Promise<Held> {
    if (this._lock.hold) return this._lock.hold(block, timeout);
    if (!(await this._lock.acquire(block, timeout))) throw new TimeoutError('could not acquire the lock');
    let done = false;
    const release = (): void => {
      if (!done) {
        done = true;
        this._lock.release();
      }
    };
    return { release, [Symbol.dispose]: release };
  }

  /** How this object crosses a process boundary ({@link Shareable}). @internal */
  [reduce](): Reduced {
    return { kind: 'synchronized', state: { obj: this._obj, lock: this._lock } };
  }

  /** Python's `repr()`: `<Synchronized wrapper for c_int(0)>`. */
  toString(): string {
    const o = this._obj as unknown;
    const spec = ArrayBuffer.isView(o) ? typedArraySpecs.get(o) : undefined;
    const what = spec ? `<${typecodeToType[spec.code!].__name__}_Array_${spec.length}>` : String(o);
    return `<${this.constructor.name} wrapper for ${what}>`;
  }

  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

/** Synchronized scalar or structure: `value` (or the structure's fields) under the lock. */
export class Synchronized<T = any> extends SynchronizedBase<CValue<T> | Structure> {
  /**
   * Python's `value`, read under the lock (each access locks on its own: for `+=`, hold the lock across it).
   */
  get value(): T {
    const l = this._lock;
    l.acquireSync();
    try {
      return (this._obj as CValue<T>).value;
    } finally {
      l.release();
    }
  }

  /** Write `value` under the lock. */
  set value(v: T) {
    const l = this._lock;
    l.acquireSync();
    try {
      (this._obj as CValue<T>).value = v;
    } finally {
      l.release();
    }
  }
}

/** Synchronized array: `length`, `get`, `set`, `arr[i]`, iteration, `toArray()`. */
export class SynchronizedArray<T = any> extends SynchronizedBase<any> {
  /** Number of elements. */
  get length(): number {
    return this._obj.length;
  }

  /** Python's `arr[i]`, read under the lock (`arr[i]` also works). */
  get(i: number): T {
    const l = this._lock;
    l.acquireSync();
    try {
      return elementGet(this._obj, i);
    } finally {
      l.release();
    }
  }

  /** Python's `arr[i] = v`, under the lock. */
  set(i: number, v: T): void {
    const l = this._lock;
    l.acquireSync();
    try {
      elementSet(this._obj, i, v);
    } finally {
      l.release();
    }
  }

  /** A copy of all elements, taken under the lock (Python's `arr[:]`). */
  toArray(): T[] {
    const l = this._lock;
    l.acquireSync();
    try {
      const o = this._obj;
      if (ArrayBuffer.isView(o)) return Array.from(o as unknown as ArrayLike<T>);
      const out: T[] = [];
      for (let i = 0; i < o.length; i++) out.push(o.get(i));
      return out;
    } finally {
      l.release();
    }
  }

  /** The elements, each read under the lock. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this._obj.length; i++) yield this.get(i);
  }

  [index: number]: T;
}

function elementGet(o: any, i: number): any {
  if (ArrayBuffer.isView(o)) return (o as any)[checkIndex(i, (o as SharedTypedArray).length)];
  return o.get(i);
}

function elementSet(o: any, i: number, v: unknown): void {
  if (ArrayBuffer.isView(o)) {
    const spec = typedArraySpecs.get(o)!;
    (o as any)[checkIndex(i, (o as SharedTypedArray).length)] = coerce(typecodeToType[spec.code!], v);
  } else {
    o.set(i, v);
  }
}

/** Synchronized `c_char` array: also `value` and `raw` under the lock. */
export class SynchronizedString extends SynchronizedArray<Buffer> {
  /** Python's `value`: the bytes up to the first NUL, under the lock. */
  get value(): Buffer {
    this._lock.acquireSync();
    try {
      return (this._obj as CharArray).value;
    } finally {
      this._lock.release();
    }
  }

  /** Write `value` under the lock. */
  set value(v: Uint8Array | string) {
    this._lock.acquireSync();
    try {
      (this._obj as CharArray).value = v;
    } finally {
      this._lock.release();
    }
  }

  /** Python's `raw`: all the bytes, under the lock. */
  get raw(): Buffer {
    this._lock.acquireSync();
    try {
      return (this._obj as CharArray).raw;
    } finally {
      this._lock.release();
    }
  }

  /** Write `raw` under the lock. */
  set raw(v: Uint8Array | string) {
    this._lock.acquireSync();
    try {
      (this._obj as CharArray).raw = v;
    } finally {
      this._lock.release();
    }
  }
}

/** Synchronized structures get one locked accessor per field, on a class per struct type. */
const structWrappers = new WeakMap<StructType, typeof Synchronized>();
function syncStructClass(type: StructType): typeof Synchronized {
  let cls = structWrappers.get(type);
  if (cls) return cls;
  cls = class extends Synchronized {};
  Object.defineProperty(cls, 'name', { value: 'Synchronized' });
  for (const f of layoutOf(type).fields) {
    Object.defineProperty(cls.prototype, f.name, {
      configurable: true,
      get(this: Synchronized) {
        this._lock.acquireSync();
        try {
          return (this._obj as any)[f.name];
        } finally {
          this._lock.release();
        }
      },
      set(this: Synchronized, v: unknown) {
        this._lock.acquireSync();
        try {
          (this._obj as any)[f.name] = v;
        } finally {
          this._lock.release();
        }
      },
    });
  }
  structWrappers.set(type, cls);
  return cls;
}

/**
 * Python's `synchronized(obj, lock=None, ctx=None)`: a process-safe wrapper using `lock`
 * (default a new RLock); also `synchronized(obj, { lock })`.
 */
export function synchronized(obj: any, lockOrOptions?: LockLike | null | SharedOptions, ctx?: unknown): any {
  let lock = lockOrOptions as LockLike | null | undefined;
  if (isPlainObject(lockOrOptions) || ctx !== undefined) {
    const l = optionalArgs<SharedOptions>('synchronized', ['lock', 'ctx'], [lockOrOptions, ctx]).lock;
    lock = l === true ? null : (l as LockLike | null | undefined);
  }
  if (obj instanceof SynchronizedBase) throw new TypeError('object is already synchronized');
  if (obj instanceof CValue) return new Synchronized(obj, lock);
  if (obj instanceof Structure) return new (syncStructClass(obj.constructor as StructType))(obj, lock);
  if (obj instanceof CharArray) return indexable(new SynchronizedString(obj, lock));
  if (obj instanceof StructArray || obj instanceof WCharArray || (ArrayBuffer.isView(obj) && typedArraySpecs.has(obj))) {
    return indexable(new SynchronizedArray(obj, lock));
  }
  throw new TypeError(`cannot synchronize ${inspect(obj)}: not a shared ctypes object`);
}

registerKind('synchronized', (s: { obj: any; lock: LockLike }) => synchronized(s.obj, s.lock));

function lockOf(opts: SharedOptions | undefined): LockLike | null | false {
  const lock = opts?.lock;
  if (lock === undefined || lock === null || lock === true) return null;
  if (lock === false) return false;
  if (typeof lock === 'object' && typeof lock.acquireSync === 'function' && typeof lock.release === 'function') return lock;
  throw new TypeError(`${inspect(lock)} has no method 'acquire'`);
}

function isOptions(v: unknown): v is SharedOptions {
  return isPlainObject(v) && 'lock' in v && Object.keys(v).every((k) => k === 'lock' || k === 'ctx');
}

/**
 * Python's `Value(typecode_or_type, *args, lock=True)`: a synchronized wrapper (with a
 * new RLock, or the given lock) around a `RawValue`; with `{ lock: false }` the raw object.
 */
export function Value(typeOrCode: TypeOrCode, ...args: unknown[]): any {
  let opts: SharedOptions | undefined;
  if (args.length > 0 && isOptions(args[args.length - 1])) opts = args.pop() as SharedOptions;
  const lock = lockOf(opts);
  const obj = RawValue(typeOrCode, ...args);
  return lock === false ? obj : synchronized(obj, lock);
}

/**
 * Python's `Array(typecode_or_type, size_or_initializer, *, lock=True)`: a synchronized
 * wrapper around a `RawArray`; with `{ lock: false }` the raw array.
 */
function SharedArray(typeOrCode: TypeOrCode, sizeOrInit: number | Iterable<unknown> | ArrayLike<unknown>, opts?: SharedOptions): any {
  const lock = lockOf(opts);
  const obj = RawArray(typeOrCode, sizeOrInit);
  return lock === false ? obj : synchronized(obj, lock);
}

// Exported as `Array` (Python's name) and `SharedArray` (which does not shadow the global).
export { SharedArray as Array, SharedArray };

/** Python's `copy(obj)`: a new shared object with the same type and contents as `obj`. */
export function copy(obj: any): any {
  if (obj instanceof SynchronizedBase) obj = obj.getObj();
  if (obj instanceof CValue) return RawValue(obj._type, obj.value);
  if (obj instanceof Structure) {
    const cls = obj.constructor as StructType;
    const r = RawValue(cls);
    initStruct(cls, r._dv, r._off, obj);
    return r;
  }
  if (obj instanceof CharArray) {
    const r = RawArray(c_char, obj.length) as CharArray;
    r.raw = obj.raw;
    return r;
  }
  if (obj instanceof WCharArray) {
    const r = RawArray(c_wchar, obj.length) as WCharArray;
    r._units.set(obj._units);
    return r;
  }
  if (obj instanceof StructArray) {
    const r = RawArray(obj._type, obj.length) as StructArray;
    for (let i = 0; i < obj.length; i++) r.set(i, obj.get(i));
    return r;
  }
  const spec = ArrayBuffer.isView(obj) ? typedArraySpecs.get(obj) : undefined;
  if (spec) {
    const r = RawArray(spec.code!, (obj as SharedTypedArray).length) as SharedTypedArray;
    r.set(obj as any);
    return r;
  }
  throw new TypeError(`cannot copy ${inspect(obj)}: not a shared ctypes object`);
}

