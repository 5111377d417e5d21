// Writing pickles (Python's Pickler, Modules/_pickle.c's save_* functions), byte for byte
// as CPython writes the same values (framing, batches, memo), except that str objects are
// not memoized. See pickle.ts for the rules.
// One file past 800 lines on purpose, as pickle_read.ts: save() and the writers it inlines
// (strings, ints, floats, frames, the memo) are one hot unit over one output buffer.
import { PicklingError, RecursionError, RuntimeError, ValueError } from './errors.js';
import {
  ADDITEMS, APPEND, APPENDS, BATCHSIZE, BINBYTES, BINBYTES8, BINFLOAT, BINGET, BININT, BININT1, BININT2, BINPUT,
  BINUNICODE, BINUNICODE8, builtinExceptionNames, DEFAULT_PROTOCOL, EMPTY_DICT, EMPTY_LIST, EMPTY_SET, EMPTY_TUPLE,
  errorHomes, FRAME, FRAME_SIZE_MIN, FRAME_SIZE_TARGET, GLOBAL, HIGHEST_PROTOCOL, isPlainObject, LONG1, LONG4,
  LONG_BINGET, LONG_BINPUT, MARK, MAX_DEPTH, MEMOIZE, NEWFALSE, NEWOBJ, NEWTRUE, NONE, POP, POP_MARK, PROTO, pyClassOf,
  PyFloat, type PyErrorLike, pyReduce, type PyReduced, REDUCE, BUILD, SETITEM, SETITEMS, SHORT_BINBYTES, SHORT_BINUNICODE, STACK_GLOBAL, STOP, Tuple,
  TUPLE, TUPLE1,
} from './pickle_common.js';

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
// dumps

/**
 * How a Buffer over part of an ArrayBuffer is made: Node's own Buffer class (what
 * `Buffer[Symbol.species]` is), without `Buffer.from`'s checks of its argument (a tenth of a
 * small dict's dumps); `Buffer.from` if that is not a Buffer class.
 */
const View: new (ab: ArrayBufferLike, offset: number, length: number) => Buffer = (() => {
  const species = (Buffer as unknown as { [Symbol.species]?: unknown })[Symbol.species];
  try {
    const C = species as new (ab: ArrayBufferLike, offset: number, length: number) => Buffer;
    const b = new C(new ArrayBuffer(8), 2, 4);
    if (Buffer.isBuffer(b) && Object.getPrototypeOf(b) === Buffer.prototype && b.byteOffset === 2 && b.length === 4) return C;
  } catch {
    /* not a constructor of Buffers */
  }
  return function View(ab: ArrayBufferLike, offset: number, length: number): Buffer {
    return Buffer.from(ab, offset, length);
  } as unknown as new (ab: ArrayBufferLike, offset: number, length: number) => Buffer;
})();

/** The writer is reused from call to call (a fresh one if dumps re-enters). */
let spare: Pickler | null = null;

/**
 * Pickles are written straight into a slab, and `dumps` returns a view of the bytes it
 * wrote (no copy, as Node's own pool does for small Buffers); the next pickle follows in
 * the same slab. A pickle that outgrows the slab moves to a buffer of its own.
 */
const SLAB = 64 * 1024;
const FIRST_SLAB = 4 * 1024;
/** Objects remembered in a short list before the memo becomes a Map (most messages hold a few). */
const MEMO_LIST = 16;
/**
 * A str of this many UTF-16 units or more is written by one call (Buffer's utf8Write: ASCII iff
 * as many bytes as units), a shorter one by a loop over its characters. Measured in dumps of
 * 1,000 dicts whose str value varies (CPU ns a dumps, Node 20): the loop costs ~1.5 ns a
 * character optimized and 30-50 unoptimized (Sparkplug, Ignition), the call ~50 more than a
 * 16-unit loop optimized (a call the compiler cannot see through) and ~120-170 unoptimized.
 * They meet optimized at ~48 units (48: 344 vs 351 ns a dumps; 32: 346 vs 322; 100: 359 vs
 * 447); unoptimized the call is cheaper from ~3 units (20 units: 120 vs 590 ns Sparkplug).
 */
const ONE_CALL = 48;
/** Buffer's own UTF-8 writer (undocumented, in every Node version): no argument parsing. */
type Utf8Writer = { utf8Write(s: string, offset: number, maxLength: number): number };

class Pickler {
  buf: Buffer;
  view: DataView;
  /** `buf.buffer` and `buf.byteOffset`, kept (`.buffer` is a call into C++ each time). */
  ab: ArrayBufferLike;
  abOffset: number;
  /** Where this pickle starts in `buf`. */
  base = 0;
  pos = 0;
  /** Where the current frame's 9 header bytes are reserved, or -1 (protocol < 4). */
  frameStart = -1;
  memoObjs: Array<object | undefined> = [];
  memoIdxs: number[] = [];
  memoN = 0;
  memoMap: Map<object, number> | null = null;
  /** Memo entries written (objects, and what CPython memoizes that has no object here). */
  memoCount = 0;
  depth = 0;
  proto = DEFAULT_PROTOCOL;

  constructor() {
    // The first slab is small: the first few pickles fill it, and the one way to a new slab
    // (ensure() -> grow()) runs while V8 records how the code runs; a pickle that outgrows
    // its slab later then keeps the optimized code (a path first taken after optimization
    // throws the code away).
    this.buf = Buffer.allocUnsafeSlow(FIRST_SLAB);
    this.ab = this.buf.buffer;
    this.abOffset = this.buf.byteOffset;
    this.view = new DataView(this.ab, this.abOffset, this.buf.byteLength);
  }

  memoGet(v: object): number | undefined {
    if (this.memoMap !== null) return this.memoMap.get(v);
    const objs = this.memoObjs;
    for (let i = 0; i < this.memoN; i++) if (objs[i] === v) return this.memoIdxs[i];
    return undefined;
  }

  /** Move this pickle (from `base`) to a buffer of its own with room for `n` more bytes. */
  grow(n: number): void {
    const used = this.pos - this.base;
    let size = Math.max(SLAB, used * 2);
    while (size < used + n) size *= 2;
    const b = Buffer.allocUnsafeSlow(size);
    this.buf.copy(b, 0, this.base, this.pos);
    if (this.frameStart >= 0) this.frameStart -= this.base;
    this.buf = b;
    this.ab = b.buffer;
    this.abOffset = b.byteOffset;
    this.view = new DataView(this.ab, this.abOffset, b.byteLength);
    this.base = 0;
    this.pos = used;
  }

  ensure(n: number): void {
    this.pos = this.room(this.pos, n);
  }

  /** ensure() for a position kept in a local (`this.pos` stale): `p`, or where it is after a move. */
  room(p: number, n: number): number {
    if (p + n <= this.buf.length) return p;
    this.pos = p;
    this.grow(n);
    return this.pos;
  }

  byte(b: number): void {
    this.ensure(1);
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
    this.u32(v > 0xffffffff ? Math.floor(v / 0x100000000) : 0);
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
      const b = this.buf;
      b[start] = FRAME;
      b[start + 1] = len & 0xff;
      b[start + 2] = (len >>> 8) & 0xff;
      b[start + 3] = (len >>> 16) & 0xff;
      b[start + 4] = (len >>> 24) & 0xff;
      const high = len > 0xffffffff ? Math.floor(len / 0x100000000) : 0;
      b[start + 5] = high & 0xff;
      b[start + 6] = (high >>> 8) & 0xff;
      b[start + 7] = (high >>> 16) & 0xff;
      b[start + 8] = (high >>> 24) & 0xff;
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
    if (obj !== null) {
      if (this.memoMap !== null) this.memoMap.set(obj, idx);
      else if (this.memoN < MEMO_LIST) {
        this.memoObjs[this.memoN] = obj;
        this.memoIdxs[this.memoN++] = idx;
      } else {
        this.memoMap = new Map();
        for (let i = 0; i < this.memoN; i++) this.memoMap.set(this.memoObjs[i]!, this.memoIdxs[i]);
        this.memoMap.set(obj, idx);
      }
    }
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
    const iv = v | 0;
    if (iv !== v) {
      this.saveLong(BigInt(v));
      return;
    }
    this.ensure(5);
    const buf = this.buf;
    if (iv >= 0 && iv <= 0xff) {
      buf[this.pos++] = BININT1;
      buf[this.pos++] = iv;
    } else if (iv >= 0 && iv <= 0xffff) {
      buf[this.pos++] = BININT2;
      buf[this.pos++] = iv & 0xff;
      buf[this.pos++] = iv >> 8;
    } else {
      buf[this.pos++] = BININT;
      this.u32(iv);
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
    if (n < ONE_CALL && this.proto >= 4) {
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
    this.saveStrSlow(s);
  }

  /** A str of ONE_CALL units or more, or not ASCII (or any str below protocol 4). */
  saveStrSlow(s: string): void {
    const n = s.length;
    if (n < 256 && this.proto >= 4) {
      // Its UTF-8 in place by one call (at most 3 bytes a unit): ASCII if as many bytes as
      // units; else kept if under 256 bytes and without lone surrogates ('surrogatepass').
      this.ensure(3 * n + 2);
      const p = this.pos;
      const written = (this.buf as unknown as Utf8Writer).utf8Write(s, p + 2, 3 * n);
      if (written === n || (written < 256 && isWellFormed(s))) {
        this.buf[p] = SHORT_BINUNICODE;
        this.buf[p + 1] = written;
        this.pos = p + 2 + written;
        return;
      }
    }
    const bytes = isWellFormed(s) ? Buffer.from(s, 'utf8') : encodeSurrogatePass(s);
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

  /**
   * Any value. The common ones (a short ASCII str, an int of 4 bytes, a float, a bool, None)
   * are written here without further calls: in a fresh process this runs unoptimized for
   * its first thousands of calls, where each call and each property access costs, and one
   * function is compiled (optimized) sooner than a chain of small ones. Number checks use
   * `v | 0` (no speculation on small integers: a dict's integral doubles would throw the
   * optimized code away).
   */
  save(v: unknown): void {
    switch (typeof v) {
      case 'string': {
        const n = v.length;
        if (n < ONE_CALL && this.proto >= 4) {
          if (this.pos + n + 2 > this.buf.length) this.grow(n + 2);
          const buf = this.buf;
          const p = this.pos;
          let q = p + 2;
          let i = 0;
          for (; i < n; i++) {
            const c = v.charCodeAt(i);
            if (c >= 0x80) break;
            buf[q++] = c;
          }
          if (i === n) {
            buf[p] = SHORT_BINUNICODE;
            buf[p + 1] = n;
            this.pos = q;
            break;
          }
        }
        this.saveStrSlow(v);
        break;
      }
      case 'number': {
        if (this.pos + 9 > this.buf.length) this.grow(9);
        const buf = this.buf;
        const p = this.pos;
        const iv = v | 0;
        // 1 / v is -Infinity for -0 only (among integers): a float.
        if (iv === v && 1 / v !== -Infinity) {
          // All 4 bytes are stored (there is room) and the opcode says how many count: no
          // branch with stores of its own that a size first met later would deoptimize.
          const u = iv >>> 0;
          const one = u <= 0xff;
          const two = u <= 0xffff;
          buf[p] = one ? BININT1 : two ? BININT2 : BININT;
          buf[p + 1] = u & 0xff;
          buf[p + 2] = (u >>> 8) & 0xff;
          buf[p + 3] = (u >>> 16) & 0xff;
          buf[p + 4] = u >>> 24;
          this.pos = p + (one ? 2 : two ? 3 : 5);
        } else if (iv !== v && Number.isSafeInteger(v)) {
          // An int beyond 4 bytes.
          this.saveInt(v);
        } else {
          // A fraction, -0, NaN, an infinity, an integral double past 2 ** 53.
          buf[p] = BINFLOAT;
          this.view.setFloat64(p + 1, v, false);
          this.pos = p + 9;
        }
        break;
      }
      case 'boolean':
        if (this.pos >= this.buf.length) this.grow(1);
        this.buf[this.pos++] = v ? NEWTRUE : NEWFALSE;
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
    // memoGet() written out (as the byte writes below): in a fresh process each small helper
    // called on every pickle is compiled on its own by V8 before its callers are, a queue of
    // compile jobs that the first thousands of calls wait behind.
    let seen: number | undefined;
    if (this.memoMap !== null) seen = this.memoMap.get(v);
    else {
      const objs = this.memoObjs;
      for (let i = 0; i < this.memoN; i++) {
        if (objs[i] === v) {
          seen = this.memoIdxs[i];
          break;
        }
      }
    }
    if (seen !== undefined) {
      this.get(seen);
      return;
    }
    if (++this.depth > MAX_DEPTH) throw new RecursionError('maximum recursion depth exceeded while pickling an object');
    // Plain objects and arrays first: the common cases need no prototype walks.
    const proto = Object.getPrototypeOf(v);
    if (proto === Object.prototype) {
      this.saveDict(v as Record<string, unknown>);
    } else if (proto === Array.prototype) {
      this.saveList(v as unknown[]);
    } else if (Array.isArray(v)) {
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
    } else if (typeof (v as { [pyReduce]?: unknown })[pyReduce] === 'function') {
      this.saveReduced(v, (v as { [pyReduce](): PyReduced })[pyReduce]());
    } else {
      throw new PicklingError(`cannot pickle '${v.constructor?.name ?? 'object'}' object`);
    }
    this.depth--;
  }

  saveList(l: unknown[]): void {
    // EMPTY_LIST MEMOIZE, the memo's common case written here (see saveObject()).
    if (this.memoMap === null && this.memoN < MEMO_LIST && this.proto >= 4 && this.pos + 1 < this.buf.length) {
      const b = this.buf;
      b[this.pos++] = EMPTY_LIST;
      this.memoObjs[this.memoN] = l;
      this.memoIdxs[this.memoN++] = this.memoCount++;
      b[this.pos++] = MEMOIZE;
    } else {
      this.byte(EMPTY_LIST);
      this.memoize(l);
    }
    const n = l.length;
    if (n === 1) {
      this.save(l[0]);
      this.byte(APPEND);
      return;
    }
    // Batches of BATCHSIZE, each MARK ... APPENDS, a last one of one item too (as
    // Modules/_pickle.c's batch_list_exact; only a list of one item is written by APPEND).
    for (let i = 0; i < n; ) {
      const stop = Math.min(n, i + BATCHSIZE);
      if (this.pos >= this.buf.length) this.grow(1);
      this.buf[this.pos++] = MARK;
      for (; i < stop; i++) this.save(l[i]);
      if (this.pos >= this.buf.length) this.grow(1);
      this.buf[this.pos++] = APPENDS;
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
      const again = this.memoGet(t);
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
      const again = this.memoGet(t);
      if (again !== undefined) {
        this.byte(POP_MARK);
        this.get(again);
        return;
      }
      this.byte(TUPLE);
    }
    this.memoize(t);
  }

  saveDict(d: Record<string, unknown>, keys = Object.keys(d)): void {
    // EMPTY_DICT MEMOIZE, the memo's common case written here (see saveObject()).
    if (this.memoMap === null && this.memoN < MEMO_LIST && this.proto >= 4 && this.pos + 1 < this.buf.length) {
      const b = this.buf;
      b[this.pos++] = EMPTY_DICT;
      this.memoObjs[this.memoN] = d;
      this.memoIdxs[this.memoN++] = this.memoCount++;
      b[this.pos++] = MEMOIZE;
    } else {
      this.byte(EMPTY_DICT);
      this.memoize(d);
    }
    const n = keys.length;
    if (n === 1) {
      this.saveStr(keys[0]);
      this.save(d[keys[0]]);
      this.byte(SETITEM);
      return;
    }
    // Batches as batch_dict_exact's: MARK ... SETITEMS, a last one of one item too.
    for (let i = 0; i < n; ) {
      const stop = Math.min(n, i + BATCHSIZE);
      if (this.pos >= this.buf.length) this.grow(1);
      this.buf[this.pos++] = MARK;
      this.saveItems(d, keys, i, stop);
      i = stop;
      if (this.pos >= this.buf.length) this.grow(1);
      this.buf[this.pos++] = SETITEMS;
    }
  }

  /**
   * A pickle's top-level plain object (the memo is empty), written as saveDict() writes it.
   * From protocol 4, for 2 to BATCHSIZE items: while its items are plain (a short ASCII key;
   * a value that is a 4-byte int, a float, a short ASCII str, a bool, None, or a plain Array
   * of such values not seen before) they are written by one small loop over locals: the
   * common message shape. In a fresh process this
   * runs unoptimized for its first thousands of calls, where each call and property access
   * costs, and V8 compiles one small function sooner than a chain of them. At the first item
   * that is not plain, the memo is filled in and saveItems() goes on from it. Frames are cut
   * where save() cuts them (after the value that reaches the target size).
   */
  saveTopDict(d: Record<string, unknown>): void {
    const keys = Object.keys(d);
    const n = keys.length;
    if (n < 2 || n > BATCHSIZE || this.proto < 4) {
      this.saveDict(d, keys);
      return;
    }
    // Positions from the pickle's start (room() may move the pickle): where the item being
    // written starts, and where save()'s frame check after a value cuts the current frame.
    let at = 0;
    let frameAt = this.frameStart - this.base + FRAME_SIZE_TARGET;
    // (Room for these 3 bytes: dumps(), the one caller, left 1,024 after the header.)
    let p = this.pos;
    let buf = this.buf;
    buf[p++] = EMPTY_DICT;
    buf[p++] = MEMOIZE;
    buf[p++] = MARK;
    // The memo: this dict first, then the lists written (registered below when needed).
    const objs = this.memoObjs;
    objs[0] = d;
    let lists = 0;
    // The value of the item being written, once read (a getter runs once).
    let v: unknown;
    let got = false;
    let i = 0;
    for (; i < n; i++) {
      at = p - this.base;
      if (at >= frameAt) {
        // save()'s frame check after the last value.
        this.pos = p;
        this.commitFrame();
        this.startFrame();
        p = this.pos;
        buf = this.buf;
        at = p - this.base;
        frameAt = this.frameStart - this.base + FRAME_SIZE_TARGET;
      }
      got = false;
      const k = keys[i];
      const kn = k.length;
      if (kn >= 256) break;
      // Room for the key (UTF-8: up to 3 bytes a unit) and a 9-byte number, or a short str's
      // header, or a list's.
      p = this.room(p, 3 * kn + 12);
      buf = this.buf;
      buf[p] = SHORT_BINUNICODE;
      buf[p + 1] = kn;
      let q = p + 2;
      let j = 0;
      if (kn < ONE_CALL) {
        for (; j < kn; j++) {
          const c = k.charCodeAt(j);
          if (c >= 0x80) break;
          buf[q++] = c;
        }
        if (j < kn) break;
      } else {
        if ((buf as unknown as Utf8Writer).utf8Write(k, q, 3 * kn) !== kn) break;
        q += kn;
      }
      v = d[k];
      got = true;
      if (typeof v === 'number') {
        const iv = v | 0;
        // 1 / v is -Infinity for -0 only (among integers): a float.
        if (iv === v && 1 / v !== -Infinity) {
          // All 4 bytes are stored (there is room) and the opcode says how many count. One
          // DataView store instead of 4 byte stores: fewer instructions in the slow tiers.
          const u = iv >>> 0;
          const one = u <= 0xff;
          const two = u <= 0xffff;
          buf[q] = one ? BININT1 : two ? BININT2 : BININT;
          this.view.setInt32(q + 1, iv, true);
          q += one ? 2 : two ? 3 : 5;
        } else if (iv !== v && Math.floor(v) !== v) {
          // A fraction or NaN.
          buf[q] = BINFLOAT;
          this.view.setFloat64(q + 1, v, false);
          q += 9;
        } else break;
      } else if (typeof v === 'string') {
        const m = v.length;
        if (m >= 256) break;
        q = this.room(q, 3 * m + 3);
        buf = this.buf;
        buf[q] = SHORT_BINUNICODE;
        buf[q + 1] = m;
        q += 2;
        if (m < ONE_CALL) {
          for (j = 0; j < m; j++) {
            const c = v.charCodeAt(j);
            if (c >= 0x80) break;
            buf[q++] = c;
          }
          if (j < m) break;
        } else {
          if ((buf as unknown as Utf8Writer).utf8Write(v, q, 3 * m) !== m) break;
          q += m;
        }
      } else if (typeof v === 'boolean') {
        buf[q++] = v ? NEWTRUE : NEWFALSE;
      } else if (v == null) {
        buf[q++] = NONE;
      } else if (Array.isArray(v) && Object.getPrototypeOf(v) === Array.prototype && lists < MEMO_LIST - 1 && v.length <= BATCHSIZE) {
        let x = lists;
        while (x > 0 && objs[x] !== v) x--;
        if (x > 0) break;
        const l: unknown[] = v;
        q = this.flatList(l, q);
        if (q < 0) break;
        buf = this.buf;
        objs[++lists] = l;
      } else break;
      p = q;
    }
    if (i === n && p - this.base >= frameAt) {
      // save()'s frame check after the last value.
      this.pos = p;
      this.commitFrame();
      this.startFrame();
      p = this.pos;
      buf = this.buf;
    }
    // The memo as saveDict() and saveList() leave it: this dict, then each list written.
    this.memoN = lists + 1;
    this.memoCount = lists + 1;
    if (i < n) {
      // Item i is not plain: the memo's indexes, then saveItems() from that item on.
      for (let x = 0; x <= lists; x++) this.memoIdxs[x] = x;
      this.pos = this.base + at;
      if (got) {
        // Its value as saveItems() writes it, without reading it again.
        this.saveStr(keys[i]);
        this.save(v);
        i++;
      }
      this.saveItems(d, keys, i, n);
      p = this.room(this.pos, 1);
      buf = this.buf;
    }
    buf[p++] = SETITEMS;
    this.pos = p;
  }

  /**
   * A plain Array of plain values (see saveTopDict()) written at `q` as saveList() writes it;
   * where it ends, or -1 if an item is not plain (nothing written then counts). A function of
   * its own: V8 compiles saveTopDict() sooner without this loop inside its loop. Its writers of
   * ints, floats and strs repeat saveTopDict()'s on purpose: a call per value is the cost these
   * two loops exist to avoid in a fresh process's slow tiers.
   */
  flatList(l: unknown[], q: number): number {
    let buf = this.buf;
    // save()'s frame check after each item: a list that reaches it is written by saveItems().
    let frameEnd = this.frameStart + FRAME_SIZE_TARGET;
    let j = 0;
    let x = 0;
    const m = l.length;
    buf[q++] = EMPTY_LIST;
    buf[q++] = MEMOIZE;
    if (m > 1) buf[q++] = MARK;
    for (x = 0; x < m; x++) {
      const e = l[x];
      // Room for the item, the list's end and the dict's (SETITEMS).
      const q0 = q;
      q = this.room(q, typeof e === 'string' ? 3 * e.length + 4 : 11);
      // (room() moves the pickle and its frame alike.)
      frameEnd -= q0 - q;
      buf = this.buf;
      if (typeof e === 'string') {
        const el = e.length;
        if (el >= 256) break;
        buf[q] = SHORT_BINUNICODE;
        buf[q + 1] = el;
        q += 2;
        if (el < ONE_CALL) {
          for (j = 0; j < el; j++) {
            const c = e.charCodeAt(j);
            if (c >= 0x80) break;
            buf[q++] = c;
          }
          if (j < el) break;
        } else {
          if ((buf as unknown as Utf8Writer).utf8Write(e, q, 3 * el) !== el) break;
          q += el;
        }
      } else if (typeof e === 'number') {
        const iv = e | 0;
        if (iv === e && 1 / e !== -Infinity) {
          const u = iv >>> 0;
          const one = u <= 0xff;
          const two = u <= 0xffff;
          buf[q] = one ? BININT1 : two ? BININT2 : BININT;
          this.view.setInt32(q + 1, iv, true);
          q += one ? 2 : two ? 3 : 5;
        } else if (iv !== e && Math.floor(e) !== e) {
          buf[q] = BINFLOAT;
          this.view.setFloat64(q + 1, e, false);
          q += 9;
        } else break;
      } else if (typeof e === 'boolean') {
        buf[q++] = e ? NEWTRUE : NEWFALSE;
      } else if (e == null) {
        buf[q++] = NONE;
      } else break;
      if (q >= frameEnd) break;
    }
    if (x < m) return -1;
    if (m !== 0) buf[q++] = m === 1 ? APPEND : APPENDS;
    return q;
  }

  /**
   * Keys and values of `d` from `keys[i]` to `keys[stop - 1]`: an ASCII key of a protocol
   * 4+ pickle and a number value are written here, other values go through save().
   */
  saveItems(d: Record<string, unknown>, keys: string[], i: number, stop: number): void {
    const short = this.proto >= 4;
    for (; i < stop; i++) {
      const k = keys[i];
      const n = k.length;
      // Room for the key's header and bytes and a 9-byte float (by ensure(): see dumps()).
      this.ensure(n + 11);
      const buf = this.buf;
      let p = this.pos;
      let j = 0;
      if (short && n < ONE_CALL) {
        p += 2;
        for (; j < n; j++) {
          const c = k.charCodeAt(j);
          if (c >= 0x80) break;
          buf[p++] = c;
        }
      }
      if (j === n && short && n < ONE_CALL) {
        buf[this.pos] = SHORT_BINUNICODE;
        buf[this.pos + 1] = n;
      } else {
        // A key that is not short ASCII takes up to 3 bytes a character: room again for the
        // number after it (the ensure() above counted one byte a character).
        this.saveStr(k);
        this.ensure(9);
        p = this.pos;
      }
      const v = d[k];
      if (typeof v === 'number' && this.frameStart >= 0) {
        // A number is written here (a dict of 1,000 numbers saves 1,000 calls): as save().
        const iv = v | 0;
        if (iv === v && 1 / v !== -Infinity) {
          const b = this.buf;
          const u = iv >>> 0;
          const one = u <= 0xff;
          const two = u <= 0xffff;
          b[p] = one ? BININT1 : two ? BININT2 : BININT;
          b[p + 1] = u & 0xff;
          b[p + 2] = (u >>> 8) & 0xff;
          b[p + 3] = (u >>> 16) & 0xff;
          b[p + 4] = u >>> 24;
          this.pos = p + (one ? 2 : two ? 3 : 5);
        } else if (iv !== v && Math.floor(v) !== v) {
          // A fraction or NaN: a float.
          this.buf[p] = BINFLOAT;
          this.view.setFloat64(p + 1, v, false);
          this.pos = p + 9;
        } else {
          // A larger int, -0 or an infinity.
          this.pos = p;
          this.save(v);
          continue;
        }
        if (this.pos - this.frameStart >= FRAME_SIZE_TARGET) {
          this.commitFrame();
          this.startFrame();
        }
      } else if (typeof v === 'object' && v !== null) {
        // save() of an object: saveObject(), then the frame check.
        this.pos = p;
        this.saveObject(v);
        if (this.frameStart >= 0 && this.pos - this.frameStart >= FRAME_SIZE_TARGET) {
          this.commitFrame();
          this.startFrame();
        }
      } else {
        this.pos = p;
        this.save(v);
      }
    }
  }

  saveMap(m: Map<unknown, unknown>): void {
    for (const k of m.keys()) checkHashable(k);
    this.byte(EMPTY_DICT);
    this.memoize(m);
    // One pass over the entries (no array of them first: a 1,000-entry Map 63 -> 40 us), in
    // batches as batch_dict_exact's: SETITEM for a dict of one item, else MARK ... SETITEMS.
    const n = m.size;
    let i = 0;
    let left = 0;
    for (const [k, v] of m) {
      if (left === 0) {
        left = Math.min(BATCHSIZE, n - i);
        if (n > 1) this.byte(MARK);
      }
      this.save(k);
      this.save(v);
      i++;
      if (--left === 0) this.byte(n === 1 ? SETITEM : SETITEMS);
    }
    if (i !== n || left !== 0) throw new RuntimeError('dictionary changed size during iteration');
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

  /** An object of the library's own, as its `[pyReduce]()` says (Python's save_reduce). */
  saveReduced(v: object, r: PyReduced): void {
    this.saveGlobal(r.module, r.name);
    if (r.args === null) return;
    this.save(Tuple.from(r.args));
    this.byte(r.newobj ? NEWOBJ : REDUCE);
    this.memoize(v);
    if (r.state !== undefined) {
      this.save(r.state);
      this.byte(BUILD);
    }
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
  const proto = protocol === 4 ? 4 : protocol === undefined ? DEFAULT_PROTOCOL : checkProtocol(typeof protocol === 'object' && protocol !== null ? protocol.protocol : protocol);
  // Taken while in use (a dumps from inside this one gets a writer of its own), given back
  // after a pickle written whole: one that throws leaves its writer (and the objects its memo
  // holds) to the garbage collector, so no try/finally here (less for V8 to compile per call).
  const w = spare ?? new Pickler();
  spare = null;
  // Start in the slab where the last pickle ended (a new slab after one that outgrew it),
  // with room for a small pickle. Written out here, as the end below (see saveObject()).
  if (w.buf.length > SLAB) w.pos = w.buf.length;
  w.base = w.pos;
  w.frameStart = -1;
  // By room(): its move to a new slab then runs in the first small pickles, where V8 records
  // it, and a later pickle that grows elsewhere (saveTopDict(), saveItems()) keeps its
  // optimized code. Not by ensure(), which would be one more small function run on every
  // pickle, compiled on its own in a fresh process.
  w.pos = w.room(w.pos, 1024);
  w.proto = proto;
  w.memoCount = 0;
  w.depth = 0;
  // PROTO, and from protocol 4 the 9 bytes of a frame header (room left above).
  let p = w.pos;
  w.buf[p] = PROTO;
  w.buf[p + 1] = proto;
  p += 2;
  if (proto >= 4) {
    w.frameStart = p;
    p += 9;
  }
  w.pos = p;
  if (typeof obj === 'object' && obj !== null && Object.getPrototypeOf(obj) === Object.prototype) {
    // save() of a plain object: saveObject()'s part (the memo is empty), then the frame check.
    w.depth = 1;
    w.saveTopDict(obj as Record<string, unknown>);
    if (w.frameStart >= 0 && w.pos - w.frameStart >= FRAME_SIZE_TARGET) {
      w.commitFrame();
      w.startFrame();
    }
  } else {
    w.save(obj);
  }
  if (w.pos >= w.buf.length) w.grow(1);
  w.buf[w.pos++] = STOP;
  const start = w.frameStart;
  if (start >= 0) {
    // commitFrame() for a frame under 4 GiB.
    const len = w.pos - start - 9;
    if (len >= FRAME_SIZE_MIN && len <= 0xffffffff) {
      const b = w.buf;
      b[start] = FRAME;
      // The length (8 bytes, little-endian) by two DataView stores instead of 8 byte stores.
      w.view.setUint32(start + 1, len, true);
      w.view.setUint32(start + 5, 0, true);
      w.frameStart = -1;
    } else {
      w.commitFrame();
    }
  }
  const out = new View(w.ab, w.abOffset + w.base, w.pos - w.base);
  // The next pickle starts 8-aligned after this one.
  w.pos = Math.min(w.buf.length, (w.pos + 7) & ~7);
  // Forget the objects seen (the memo must not keep them alive).
  const m = w.memoN;
  if (m !== 0) {
    const objs = w.memoObjs;
    for (let i = 0; i < m; i++) objs[i] = undefined;
    w.memoN = 0;
  }
  if (w.memoMap !== null) w.memoMap = null;
  spare = w;
  return out;
}
