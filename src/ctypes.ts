// ctypes' part of Python's shared ctypes (CPython's ctypes module as multiprocessing.sharedctypes
// uses it): the simple types, array types (`c_int * 3`, here `ARRAY(c_int, 3)`), Structure with
// its C layout and field accessors, and reading and writing one element of a type at an offset of
// a DataView. sharedctypes.ts puts these over shared memory.
import { inspect } from 'node:util';
import { ValueError } from './errors.js';
import { isPlainObject } from './options.js';
import { reduce, type Reduced } from './reduction.js';

// ---- simple types ----------------------------------------------------------------

export type TypedArrayCtor =
  | Int8ArrayConstructor | Uint8ArrayConstructor | Int16ArrayConstructor | Uint16ArrayConstructor
  | Int32ArrayConstructor | Uint32ArrayConstructor | BigInt64ArrayConstructor | BigUint64ArrayConstructor
  | Float32ArrayConstructor | Float64ArrayConstructor;
/**
 * What `RawArray` of a simple type returns: a typed array over shared memory (Python returns a
 * ctypes array); `c_long`/`c_longlong` arrays are BigInt64Arrays.
 */
export type SharedTypedArray =
  | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array
  | BigInt64Array | BigUint64Array | Float32Array | Float64Array;

export type Kind = 'int' | 'bigint' | 'float' | 'bool' | 'char' | 'wchar';

/** A ctypes simple type (`c_int`, `c_double` ...). */
export class SimpleCType {
  /** @internal */
  constructor(
    /** The ctypes name, `'c_int'`. */
    readonly __name__: string,
    /** The typecode (Python's `_type_`). */
    readonly _type_: string,
    /** Size in bytes (Python's `ctypes.sizeof`). */
    readonly size: number,
    /** @internal */ readonly _array: TypedArrayCtor,
    /** @internal */ readonly _kind: Kind,
  ) {}

  /** Alignment in bytes (Python's `ctypes.alignment`). */
  get alignment(): number {
    return this.size;
  }

  /** Python's `repr()`: `<class 'ctypes.c_int'>`. */
  toString(): string {
    return `<class 'ctypes.${this.__name__}'>`;
  }

  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

/** Python's `ctypes.c_bool` (typecode `'?'`): a JavaScript boolean. */
export const c_bool = new SimpleCType('c_bool', '?', 1, Uint8Array, 'bool');
/** Python's `ctypes.c_char` (`'c'`): one byte, read as a one-byte Buffer (Python's `bytes`). */
export const c_char = new SimpleCType('c_char', 'c', 1, Uint8Array, 'char');
/** Python's `ctypes.c_byte` (`'b'`): signed 8-bit integer. */
export const c_byte = new SimpleCType('c_byte', 'b', 1, Int8Array, 'int');
/** Python's `ctypes.c_ubyte` (`'B'`): unsigned 8-bit integer. */
export const c_ubyte = new SimpleCType('c_ubyte', 'B', 1, Uint8Array, 'int');
/** Python's `ctypes.c_short` (`'h'`): signed 16-bit integer. */
export const c_short = new SimpleCType('c_short', 'h', 2, Int16Array, 'int');
/** Python's `ctypes.c_ushort` (`'H'`): unsigned 16-bit integer. */
export const c_ushort = new SimpleCType('c_ushort', 'H', 2, Uint16Array, 'int');
/** Python's `ctypes.c_int` (`'i'`): signed 32-bit integer. */
export const c_int = new SimpleCType('c_int', 'i', 4, Int32Array, 'int');
/** Python's `ctypes.c_uint` (`'I'`): unsigned 32-bit integer. */
export const c_uint = new SimpleCType('c_uint', 'I', 4, Uint32Array, 'int');
/** Python's `ctypes.c_long` (`'l'`): signed 64-bit integer, a `bigint` (JavaScript numbers hold 53 bits). */
export const c_long = new SimpleCType('c_long', 'l', 8, BigInt64Array, 'bigint');
/** Python's `ctypes.c_ulong` (`'L'`): unsigned 64-bit integer, a `bigint`. */
export const c_ulong = new SimpleCType('c_ulong', 'L', 8, BigUint64Array, 'bigint');
/** Python's `ctypes.c_longlong` (`'q'`): signed 64-bit integer, a `bigint`. */
export const c_longlong = new SimpleCType('c_longlong', 'q', 8, BigInt64Array, 'bigint');
/** Python's `ctypes.c_ulonglong` (`'Q'`): unsigned 64-bit integer, a `bigint`. */
export const c_ulonglong = new SimpleCType('c_ulonglong', 'Q', 8, BigUint64Array, 'bigint');
/** Python's `ctypes.c_float` (`'f'`): 32-bit float. */
export const c_float = new SimpleCType('c_float', 'f', 4, Float32Array, 'float');
/** Python's `ctypes.c_double` (`'d'`): 64-bit float. */
export const c_double = new SimpleCType('c_double', 'd', 8, Float64Array, 'float');
/**
 * Python's `ctypes.c_wchar` (`'u'`): one character, a 32-bit code point as Linux's `wchar_t`;
 * read as a one-character string (a character outside the BMP is one element, as in Python).
 */
export const c_wchar = new SimpleCType('c_wchar', 'u', 4, Uint32Array, 'wchar');
/** On 64-bit Linux `c_size_t` is `c_ulong`. */
export const c_size_t = c_ulong;

/** Python's `typecode_to_type`. */
export const typecodeToType: Record<string, SimpleCType> = {
  c: c_char, b: c_byte, B: c_ubyte, h: c_short, H: c_ushort, i: c_int, I: c_uint,
  l: c_long, L: c_ulong, q: c_longlong, Q: c_ulonglong, f: c_float, d: c_double, '?': c_bool, u: c_wchar,
};

// ---- array types -------------------------------------------------------------------

const arrayTypes = new WeakMap<object, Map<number, ArrayCType>>();

/**
 * A ctypes array type: Python's `c_int * 3` (`ctypes.ARRAY(c_int, 3)`), made by {@link ARRAY}.
 * The type of a Structure field; arrays of arrays (`(c_double * 2) * 2`) and of structures too.
 * Reading such a field gives a view of the structure's memory: a typed array for a numeric
 * element type (as `RawArray` gives), an indexable array of views for structures and arrays;
 * a `c_char` array reads as a Buffer and a `c_wchar` array as a string, up to the first NUL,
 * as in Python.
 */
export class ArrayCType {
  /** @internal */
  constructor(
    /** Python's `_type_`: the element type. */
    readonly _type_: FieldType,
    /** Python's `_length_`: the number of elements. */
    readonly _length_: number,
  ) {}

  /** The type's name as in Python: `'c_int_Array_3'`. */
  get __name__(): string {
    const t = this._type_;
    return `${t instanceof SimpleCType || t instanceof ArrayCType ? t.__name__ : t.name}_Array_${this._length_}`;
  }

  /** Size in bytes (Python's `ctypes.sizeof`). */
  get size(): number {
    return sizeOf(this._type_) * this._length_;
  }

  /** Alignment in bytes (Python's `ctypes.alignment`): the element's. */
  get alignment(): number {
    return alignOf(this._type_);
  }

  /** Python's `repr()`: `<class 'c_int_Array_3'>`. */
  toString(): string {
    return `<class '${this.__name__}'>`;
  }

  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * Python's `c_int * 3`, also spelled `ctypes.ARRAY(c_int, 3)`: the array type of `length` elements
 * of `type` (a simple type, a Structure class or another array type), for Structure fields:
 * `static _fields_ = [['xs', ARRAY(c_int, 3)], ['name', ARRAY(c_char, 8)]]`. The same arguments
 * give the same type object, as in Python.
 */
export function ARRAY(type: FieldType, length: number): ArrayCType {
  if (!isFieldType(type)) throw new TypeError(`ARRAY() needs a ctypes type, not ${inspect(type)}`);
  if (typeof length !== 'number' || !Number.isInteger(length)) {
    throw new TypeError(`an array length must be an integer, not ${inspect(length)}`);
  }
  if (length < 0) throw new ValueError(`Array length must be >= 0, not ${length}`);
  let byLength = arrayTypes.get(type);
  if (!byLength) arrayTypes.set(type, (byLength = new Map()));
  let t = byLength.get(length);
  if (!t) byLength.set(length, (t = new ArrayCType(type, length)));
  return t;
}

export function isFieldType(t: unknown): t is FieldType {
  return t instanceof SimpleCType || t instanceof ArrayCType || isStructType(t);
}

/** Views of array fields keep the object that holds their memory (and so its shared block) alive. */
const viewOwners = new WeakMap<object, object>();

/** Python's reading of an array field at `off` of `dv`, `owner` being the object read. */
export function arrayAt(at: ArrayCType, dv: DataView, off: number, owner: object): unknown {
  const t = at._type_;
  const n = at._length_;
  if (t === c_char || t === c_wchar) {
    const elems = t === c_char ? new Uint8Array(dv.buffer, dv.byteOffset + off, n) : new Uint32Array(dv.buffer, dv.byteOffset + off, n);
    const end = elems.indexOf(0);
    const used = elems.subarray(0, end < 0 ? n : end);
    return t === c_char ? Buffer.from(used) : codePointsToString(used as Uint32Array);
  }
  if (t instanceof SimpleCType) {
    const ta = new t._array(dv.buffer as ArrayBuffer, dv.byteOffset + off, n);
    viewOwners.set(ta, owner);
    return ta;
  }
  return indexable(new FieldArray(at, dv, off, owner));
}

function codePointsToString(cps: Uint32Array): string {
  let s = '';
  for (const c of cps) s += wcharOf(c);
  return s;
}

function wcharOf(c: number): string {
  if (c > 0x10ffff) throw new ValueError(`character U+${c.toString(16)} is not in range [U+0000; U+10ffff]`);
  return String.fromCodePoint(c);
}

/** Python's assignment to an array field (or its initializer): a sequence of at most `_length_` items, the rest zeroed. */
export function writeArray(at: ArrayCType, dv: DataView, off: number, v: unknown): void {
  const t = at._type_;
  const n = at._length_;
  if (t === c_char || t === c_wchar) {
    const units = t === c_char ? toBytes(v) : toCodePoints(v);
    if (units.length > n) throw new ValueError(`${t === c_char ? 'bytes' : 'string'} too long (${units.length}, maximum length ${n})`);
    const target = t === c_char ? new Uint8Array(dv.buffer, dv.byteOffset + off, n) : new Uint32Array(dv.buffer, dv.byteOffset + off, n);
    target.set(units);
    if (units.length < n) target[units.length] = 0;
    return;
  }
  if (v == null || typeof v === 'string' || typeof (v as Iterable<unknown>)[Symbol.iterator] !== 'function') {
    throw new TypeError(`expected ${at.__name__} instance or a sequence, got ${typeName(v)}`);
  }
  // Copied first: the source may be a view of these very bytes.
  const items = Array.from(v as Iterable<unknown>);
  if (items.length > n) throw new RangeError(`invalid index: ${items.length} items for ${at.__name__}`);
  const size = sizeOf(t);
  new Uint8Array(dv.buffer, dv.byteOffset + off, size * n).fill(0);
  items.forEach((x, i) => writeElement(t, dv, off + i * size, x));
}

function toCodePoints(v: unknown): number[] {
  if (typeof v !== 'string') throw new TypeError(`unicode string expected instead of ${typeName(v)} instance`);
  return Array.from(v, (c) => c.codePointAt(0)!);
}

/** Write one element of any field type. */
function writeElement(t: FieldType, dv: DataView, off: number, v: unknown): void {
  if (t instanceof SimpleCType) writeScalar(t, dv, off, v);
  else if (t instanceof ArrayCType) writeArray(t, dv, off, v);
  else initStruct(t, dv, off, v);
}

/** Read one element of any field type (a view for structures and arrays). */
function readElement(t: FieldType, dv: DataView, off: number, owner: object): unknown {
  if (t instanceof SimpleCType) return readScalar(t, dv, off);
  if (t instanceof ArrayCType) return arrayAt(t, dv, off, owner);
  return structAt(t, dv, off, owner);
}

/**
 * An array field whose elements are structures or arrays (Python's `Point * 2`, `(c_int * 2) * 3`):
 * `length`, `get(i)` / `arr[i]` (a view), `set(i, v)` / `arr[i] = v`, iteration and `toArray()`.
 */
export class FieldArray {
  /** @internal */ readonly _type: ArrayCType;
  /** @internal */ readonly _dv: DataView;
  /** @internal */ readonly _off: number;
  /** @internal Keeps the memory's holder alive. */ readonly _owner: object;

  /** @internal */
  constructor(type: ArrayCType, dv: DataView, off: number, owner: object) {
    this._type = type;
    this._dv = dv;
    this._off = off;
    this._owner = owner;
  }

  /** Number of elements. */
  get length(): number {
    return this._type._length_;
  }

  /** Python's `arr[i]`: a view of element `i`. */
  get(i: number): unknown {
    const t = this._type._type_;
    return readElement(t, this._dv, this._off + checkIndex(i, this.length) * sizeOf(t), this._owner);
  }

  /** Python's `arr[i] = v`: copy `v` into element `i`. */
  set(i: number, v: unknown): void {
    const t = this._type._type_;
    writeElement(t, this._dv, this._off + checkIndex(i, this.length) * sizeOf(t), v);
  }

  /** Views of the elements in order. */
  *[Symbol.iterator](): IterableIterator<unknown> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }

  /** Views of all elements (Python's `arr[:]`). */
  toArray(): unknown[] {
    return [...this];
  }

  /** `<c_double_Array_2_Array_2 [[1.5, 2.0], [3.0, 4.0]]>`. */
  toString(): string {
    return `<${this._type.__name__} ${fmtValue(this._type, this)}>`;
  }

  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }

  [index: number]: unknown;
}

/** A field's value as Python would show it in a list. */
function fmtValue(t: FieldType, v: unknown): string {
  if (t instanceof SimpleCType) return fmtElem(t, v);
  if (t instanceof ArrayCType) {
    if (t._type_ === c_char) return bytesRepr(v as Buffer);
    if (t._type_ === c_wchar) return strRepr(v as string);
    return `[${Array.from(v as Iterable<unknown>, (x) => fmtValue(t._type_, x)).join(', ')}]`;
  }
  return String(v);
}

// ---- Structure --------------------------------------------------------------------

/**
 * The type of a Structure field: a simple type, another Structure class, or an array type
 * (`ARRAY(c_int, 3)`, Python's `c_int * 3`).
 */
export type FieldType = SimpleCType | StructType | ArrayCType;
/** A Structure subclass, with its `_fields_`. */
export type StructType = (new (...args: any[]) => Structure) & {
  /** Python's `_fields_`: `[name, type]` pairs. */
  _fields_: ReadonlyArray<readonly [string, FieldType]>;
};

export interface Field { name: string; type: FieldType; offset: number }
export interface Layout { size: number; align: number; fields: Field[] }
const layouts = new WeakMap<Function, Layout>();

export function sizeOf(t: FieldType): number {
  return t instanceof SimpleCType || t instanceof ArrayCType ? t.size : layoutOf(t).size;
}

export function alignOf(t: FieldType): number {
  return t instanceof SimpleCType || t instanceof ArrayCType ? t.alignment : layoutOf(t).align;
}

export function isStructType(t: unknown): t is StructType {
  return typeof t === 'function' && t.prototype instanceof Structure;
}

/** The C layout of a Structure subclass; defines its field accessors on first use. */
export function layoutOf(cls: StructType): Layout {
  let l = layouts.get(cls);
  if (l) return l;
  const spec = cls._fields_;
  if (!Array.isArray(spec)) throw new TypeError(`${cls.name} must define static _fields_`);
  const fields: Field[] = [];
  let off = 0;
  let align = 1;
  for (const entry of spec) {
    const [name, type] = entry;
    if (typeof name !== 'string' || !isFieldType(type)) {
      throw new TypeError(`_fields_ must be a sequence of [name, ctypes type] pairs, not ${inspect(entry)}`);
    }
    if (entry.length > 2) {
      // Python's third item is a bit field's width, not an array length.
      const tn = type instanceof SimpleCType || type instanceof ArrayCType ? type.__name__ : type.name;
      throw new TypeError(
        `bit fields are not supported ('${name}' has a third item); for an array field write ['${name}', ARRAY(${tn}, n)] (Python's ${tn} * n)`,
      );
    }
    const a = alignOf(type);
    off = Math.ceil(off / a) * a;
    fields.push({ name, type, offset: off });
    off += sizeOf(type);
    align = Math.max(align, a);
  }
  l = { size: Math.ceil(off / align) * align || 0, align, fields };
  layouts.set(cls, l);
  for (const f of fields) {
    const { offset, type } = f;
    if (type instanceof SimpleCType) {
      Object.defineProperty(cls.prototype, f.name, {
        configurable: true,
        enumerable: true,
        get(this: Structure) {
          return readScalar(type, this._dv, this._off + offset);
        },
        set(this: Structure, v: unknown) {
          writeScalar(type, this._dv, this._off + offset, v);
        },
      });
    } else if (type instanceof ArrayCType) {
      Object.defineProperty(cls.prototype, f.name, {
        configurable: true,
        enumerable: true,
        get(this: Structure) {
          return arrayAt(type, this._dv, this._off + offset, this);
        },
        set(this: Structure, v: unknown) {
          writeArray(type, this._dv, this._off + offset, v);
        },
      });
    } else {
      Object.defineProperty(cls.prototype, f.name, {
        configurable: true,
        enumerable: true,
        get(this: Structure) {
          return structAt(type, this._dv, this._off + offset, this);
        },
        set(this: Structure, v: unknown) {
          initStruct(type, this._dv, this._off + offset, v);
        },
      });
    }
  }
  return l;
}

/**
 * Base of C structures: `class Point extends Structure { static _fields_ = [['x', c_double],
 * ['y', c_double]] }`. `new Point(1, 2)` is a private (unshared) instance;
 * `RawValue(Point, ...)`, `Value(Point, ...)` and arrays of Point live in shared memory.
 */
export class Structure {
  /** Python's `_fields_`: `[name, type]` pairs, in C layout order. */
  static _fields_: ReadonlyArray<readonly [string, FieldType]> = [];
  /** @internal */ declare _dv: DataView;
  /** @internal */ declare _off: number;
  /** @internal Keeps the shared block (or the containing object) alive. */
  declare _keep?: object;

  constructor(...args: unknown[]) {
    const cls = new.target as unknown as StructType;
    const l = layoutOf(cls);
    Object.defineProperties(this, {
      _dv: { value: new DataView(new ArrayBuffer(Math.max(l.size, 1))), writable: true },
      _off: { value: 0, writable: true },
    });
    initStruct(cls, this._dv, 0, args);
  }

  /** How this object crosses a process boundary ({@link Shareable}). @internal */
  [reduce](): Reduced {
    // A copy of the bytes (a structure in shared memory has its own reduce: sharedctypes.ts).
    const cls = this.constructor as StructType;
    const l = layoutOf(cls);
    const bytes = new Uint8Array(this._dv.buffer, this._dv.byteOffset + this._off, l.size).slice();
    return { kind: 'ctypes-struct-copy', state: { type: cls, bytes } };
  }

  /** A `repr()`-like text: `<Point x=1.0, y=2.0>` (ctypes has no field-wise repr). */
  toString(): string {
    const cls = this.constructor as StructType;
    const parts = layoutOf(cls).fields.map((f) => {
      return `${f.name}=${fmtValue(f.type, (this as any)[f.name])}`;
    });
    return `<${cls.name} ${parts.join(', ')}>`;
  }

  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

export function structAt(cls: StructType, dv: DataView, off: number, keep: object | undefined): Structure {
  layoutOf(cls);
  const obj = Object.create(cls.prototype) as Structure;
  Object.defineProperties(obj, {
    _dv: { value: dv, writable: true },
    _off: { value: off, writable: true },
    _keep: { value: keep, writable: true },
  });
  return obj;
}

/** Initialize a struct from positional values, an object of fields or another struct. */
export function initStruct(cls: StructType, dv: DataView, off: number, init: unknown): void {
  const { fields } = layoutOf(cls);
  if (init == null) return;
  if (init instanceof Structure) {
    if (!(init instanceof cls)) throw new TypeError(`expected ${cls.name} instance, got ${(init as Structure).constructor.name}`);
    const n = layoutOf(cls).size;
    new Uint8Array(dv.buffer, dv.byteOffset + off, n).set(new Uint8Array(init._dv.buffer, init._dv.byteOffset + init._off, n));
    return;
  }
  if (Array.isArray(init)) {
    if (init.length === 1 && (init[0] instanceof Structure || isPlainObject(init[0]))) return initStruct(cls, dv, off, init[0]);
    if (init.length > fields.length) throw new TypeError('too many initializers');
    init.forEach((v, i) => setField(fields[i], dv, off, v));
    return;
  }
  if (isPlainObject(init)) {
    for (const [k, v] of Object.entries(init)) {
      const f = fields.find((x) => x.name === k);
      if (!f) throw new TypeError(`${cls.name} has no field '${k}'`);
      setField(f, dv, off, v);
    }
    return;
  }
  throw new TypeError(`cannot initialize ${cls.name} from ${inspect(init)}`);
}

export function setField(f: Field, dv: DataView, off: number, v: unknown): void {
  writeElement(f.type, dv, off + f.offset, v);
}

// ---- scalar access ----------------------------------------------------------------

export function readScalar(t: SimpleCType, dv: DataView, off: number): any {
  switch (t._type_) {
    case 'b': return dv.getInt8(off);
    case 'B': return dv.getUint8(off);
    case 'h': return dv.getInt16(off, true);
    case 'H': return dv.getUint16(off, true);
    case 'i': return dv.getInt32(off, true);
    case 'I': return dv.getUint32(off, true);
    case 'l': case 'q': return dv.getBigInt64(off, true);
    case 'L': case 'Q': return dv.getBigUint64(off, true);
    case 'f': return dv.getFloat32(off, true);
    case 'd': return dv.getFloat64(off, true);
    case '?': return dv.getUint8(off) !== 0;
    case 'c': return Buffer.from([dv.getUint8(off)]);
    case 'u': return wcharOf(dv.getUint32(off, true));
    default: throw new TypeError(`bad typecode ${t._type_}`);
  }
}

export function writeScalar(t: SimpleCType, dv: DataView, off: number, v: unknown): void {
  const x = coerce(t, v);
  switch (t._type_) {
    case 'b': dv.setInt8(off, x as number); break;
    case 'B': case 'c': case '?': dv.setUint8(off, x as number); break;
    case 'h': dv.setInt16(off, x as number, true); break;
    case 'H': dv.setUint16(off, x as number, true); break;
    case 'i': dv.setInt32(off, x as number, true); break;
    case 'I': case 'u': dv.setUint32(off, x as number, true); break;
    case 'l': case 'q': dv.setBigInt64(off, x as bigint, true); break;
    case 'L': case 'Q': dv.setBigUint64(off, x as bigint, true); break;
    case 'f': dv.setFloat32(off, x as number, true); break;
    case 'd': dv.setFloat64(off, x as number, true); break;
  }
}

/** The element value to store for `v`, checked as ctypes checks it. */
export function coerce(t: SimpleCType, v: unknown): number | bigint {
  switch (t._kind) {
    case 'float':
      if (typeof v === 'number') return v;
      if (typeof v === 'bigint') return Number(v);
      if (typeof v === 'boolean') return Number(v);
      throw new TypeError(`must be real number, not ${typeName(v)}`);
    case 'int':
      if (typeof v === 'number' && Number.isInteger(v)) return v;
      if (typeof v === 'bigint') return Number(BigInt.asIntN(64, v));
      if (typeof v === 'boolean') return Number(v);
      throw new TypeError(`int expected instead of ${typeName(v)}`);
    case 'bigint':
      if (typeof v === 'bigint') return v;
      if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
      if (typeof v === 'boolean') return BigInt(v);
      throw new TypeError(`int expected instead of ${typeName(v)}`);
    case 'bool':
      return v ? 1 : 0;
    case 'char':
      if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 256) return v;
      if ((v instanceof Uint8Array || typeof v === 'string') && v.length === 1) {
        return typeof v === 'string' ? Buffer.from(v, 'latin1')[0] : v[0];
      }
      throw new TypeError(`one character bytes, bytearray or integer expected`);
    case 'wchar': {
      if (typeof v !== 'string') throw new TypeError(`unicode string expected instead of ${typeName(v)} instance`);
      const c = v.codePointAt(0);
      if (c === undefined || v.length !== (c > 0xffff ? 2 : 1)) throw new TypeError('one character unicode string expected');
      return c;
    }
  }
}

export function typeName(v: unknown): string {
  return v === null ? 'null' : typeof v === 'object' ? v.constructor?.name ?? 'object' : typeof v;
}

/** Python's repr of a stored value. */
export function fmt(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) && !Object.is(v, -0) && Math.abs(v) < 1e16 ? v.toFixed(1) : String(v);
  if (typeof v === 'bigint') return String(v);
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (Buffer.isBuffer(v)) return bytesRepr(v);
  if (typeof v === 'string') return strRepr(v);
  return String(v);
}

/** Python's repr of a str (quotes as Python picks them; control characters escaped). */
export function strRepr(v: string): string {
  const q = v.includes("'") && !v.includes('"') ? '"' : "'";
  let s = q;
  for (const ch of v) {
    const c = ch.codePointAt(0)!;
    if (ch === q || ch === '\\') s += '\\' + ch;
    else if (c === 10) s += '\\n';
    else if (c === 13) s += '\\r';
    else if (c === 9) s += '\\t';
    else if (c < 0x20 || c === 0x7f) s += '\\x' + c.toString(16).padStart(2, '0');
    else s += ch;
  }
  return s + q;
}

export function fmtElem(t: SimpleCType, v: unknown): string {
  return t._kind === 'int' ? String(v) : fmt(v);
}

export function bytesRepr(b: Uint8Array): string {
  let s = "b'";
  for (const c of b) {
    if (c === 0x27 || c === 0x5c) s += '\\' + String.fromCharCode(c);
    else if (c >= 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else if (c === 10) s += '\\n';
    else if (c === 13) s += '\\r';
    else if (c === 9) s += '\\t';
    else s += '\\x' + c.toString(16).padStart(2, '0');
  }
  return s + "'";
}

export function isIndex(key: string | symbol): key is string {
  if (typeof key !== 'string') return false;
  const c = key.charCodeAt(0);
  if (c < 48 || c > 57) return false;
  const i = Number(key);
  return Number.isInteger(i) && String(i) === key;
}

export function checkIndex(i: number, length: number): number {
  if (!Number.isInteger(i)) throw new TypeError('array indices must be integers');
  if (i < 0) i += length;
  if (i < 0 || i >= length) throw new RangeError('invalid index');
  return i;
}

/** Objects with `get(i)`/`set(i, v)` and a `length` also answer `obj[i]`. */
export function indexable<T extends { length: number; get(i: number): unknown; set(i: number, v: unknown): void }>(obj: T): T {
  return new Proxy(obj, {
    get(target, key, receiver) {
      if (isIndex(key)) {
        const i = Number(key);
        return i < target.length ? target.get(i) : undefined;
      }
      return Reflect.get(target, key, receiver);
    },
    set(target, key, value, receiver) {
      if (isIndex(key)) {
        target.set(Number(key), value);
        return true;
      }
      return Reflect.set(target, key, value, receiver);
    },
    has(target, key) {
      if (isIndex(key)) return Number(key) < target.length;
      return Reflect.has(target, key);
    },
  });
}

/** Bytes of a bytes-like value or of a string (latin1), as a `c_char` array takes them. */
export function toBytes(v: unknown): Uint8Array {
  if (typeof v === 'string') return Buffer.from(v, 'latin1');
  if (v instanceof Uint8Array) return v;
  throw new TypeError(`bytes expected instead of ${typeName(v)}`);
}

