// Reading pickles (Python's Unpickler, Modules/_pickle.c's load_* functions): string and int
// decoding, and the opcode loop (one function: a switch the JIT keeps in one frame). The
// globals it accepts are in pickle_globals.ts. See pickle.ts for the rules.
// One file because the opcode loop and the decoders it inlines are one unit (the writer is
// pickle_write.ts, the shared tables pickle_common.ts).
import { PythonError, UnpicklingError, ValueError } from './errors.js';
import { findGlobal, makeError, PyGlobal } from './pickle_globals.js';
import {
  BINUNICODE8, HIGHEST_PROTOCOL, isPlainObject, MAX_STR_DIGITS, pyClassOf, type PyErrorLike, pySetState, SHORT_BINSTRING, Tuple,
} from './pickle_common.js';

// ---------------------------------------------------------------------------
// Strings: Python encodes str as UTF-8 with 'surrogatepass' (lone surrogates kept).

const FFFD = '\ufffd';

/**
 * Short ASCII strings read recently, in slots picked by their length and a few of their
 * bytes: dict keys repeat from message to message, and a string already made (and used as
 * a property key) costs neither a new string nor V8 a new internalization.
 */
const SHORT = 32;
const recent: string[] = new Array<string>(8192).fill('');
const recentBytes = new Uint8Array(8192 * SHORT);

/**
 * Strings decoded before the cache is used. V8 records how code runs (its type feedback)
 * only from a function's first few calls on; the strings of the first message are all
 * misses, and code whose miss path has no feedback is thrown away (and compiled again) at
 * the first new string after it is optimized. Filling the cache from the 64th string on
 * makes the miss path run while feedback is recorded.
 */
let untilCached = 64;

function decodeUtf8(buf: Buffer, start: number, end: number): string {
  const n = end - start;
  if (n > SHORT || n === 0) return n === 0 ? '' : decodeUtf8Slow(buf, start, end);
  if (untilCached > 0) {
    untilCached--;
    return decodeUtf8Slow(buf, start, end);
  }
  // The slot: a hash of the length and four bytes, in small-integer arithmetic (cheap in
  // unoptimized code too, where each Math.imul would be a property load and a call).
  let h = (n * 59 + buf[start]) & 0xfffff;
  h = (h * 59 + buf[end - 1]) & 0xfffff;
  h = (h * 59 + buf[start + (n >> 1)]) & 0xfffff;
  h = (h * 59 + buf[end - 1 - (n >> 2)]) & 0xfffff;
  const slot = (h ^ (h >>> 13)) & 8191;
  const known = recent[slot];
  const at = slot * SHORT;
  if (known.length === n) {
    // The same bytes as the ASCII string's: that string (compared with its bytes, kept
    // beside it: a byte array is read more cheaply than a string's characters).
    let i = 0;
    while (i < n && recentBytes[at + i] === buf[start + i]) i++;
    if (i === n) return known;
  }
  for (let i = start; i < end; i++) if (buf[i] >= 0x80) return decodeUtf8Slow(buf, start, end);
  const made = asciiString(buf, start, n);
  for (let i = 0; i < n; i++) recentBytes[at + i] = buf[start + i];
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

// ---------------------------------------------------------------------------
// loads

function toBuffer(data: unknown): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError(`a bytes-like object is required, not '${data === null ? 'null' : typeof data}'`);
}

/** Drop the stack's items from `n` on (pops: setting `length` is a slow runtime call). */
function truncate(stack: unknown[], n: number): void {
  while (stack.length > n) stack.pop();
}

/** A scratch double and its bytes, to read BINFLOAT. */
const f64 = new Float64Array(1);
const f64bytes = new Uint8Array(f64.buffer);

/**
 * The big-endian IEEE 754 double at `buf[p]`: by `view` (a DataView of the pickle, made once
 * for a long pickle) when there is one, else through the scratch double (no view to make for
 * a few floats).
 */
function floatAt(buf: Uint8Array, p: number, view: DataView | null): number {
  if (view !== null) return view.getFloat64(p);
  f64bytes[7] = buf[p];
  f64bytes[6] = buf[p + 1];
  f64bytes[5] = buf[p + 2];
  f64bytes[4] = buf[p + 3];
  f64bytes[3] = buf[p + 4];
  f64bytes[2] = buf[p + 5];
  f64bytes[1] = buf[p + 6];
  f64bytes[0] = buf[p + 7];
  return f64[0];
}

/** The length from which load() reads floats by a DataView of the pickle. */
const VIEW_FROM = 1024;

/** From how many bytes left of the pickle a MARK before a str tries dictItems(). */
const DICT_RUN_FROM = 256;

/** From how many stack items (keys and values) setItems adds keys to an object without its prototype. */
const BARE_FROM = 64;

const truncated = (): UnpicklingError => new UnpicklingError('pickle data was truncated');


function setKey(obj: Record<string, unknown>, k: string, v: unknown): void {
  if (k === '__proto__') Object.defineProperty(obj, k, { value: v, writable: true, enumerable: true, configurable: true });
  else obj[k] = v;
}

const EMPTY = Buffer.alloc(0);
let spareReader: Unpickler | null = null;

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
  proto = 0;
  buf: Buffer = EMPTY;

  /** Ready for the next pickle; nothing read before is kept alive. */
  reset(): void {
    truncate(this.stack, 0);
    truncate(this.marks, 0);
    truncate(this.memo, 0);
    this.bigMemo = null;
    this.replaced = null;
    this.orders = null;
    this.memoReads = 0;
    this.proto = 0;
    this.buf = EMPTY;
  }

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
      // Many keys: the object goes without a prototype while they are added. Each key a
      // store adds is first looked up along the prototype chain (a setter of that name would
      // run instead); with none, adding 1,000 keys costs some 15% less.
      const bare = stack.length - from >= BARE_FROM && Object.getPrototypeOf(obj) === Object.prototype;
      if (bare) Object.setPrototypeOf(obj, null);
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
      if (bare) Object.setPrototypeOf(obj, Object.prototype);
      if (i < stack.length) {
        d = this.dictToMap(at);
        for (; i < stack.length; i += 2) (d as Map<unknown, unknown>).set(stack[i], stack[i + 1]);
      }
    } else {
      throw new UnpicklingError(`SETITEMS on ${describe(d)}, which is not a dict`);
    }
    truncate(stack, from);
  }

  /**
   * After a MARK on a dict at `p`: items that are all a short str key (memoized or not) and a
   * float, an int of up to 4 bytes, a bool, None or a short str value, then the SETITEMS
   * that ends them, go into the dict as they are read: no stack, no opcode loop for each.
   * The whole run is checked first (anything else: -1, the usual way reads it). Keys that
   * look like indexes ('7') and '__proto__' go the usual way too (their order, their
   * definition). Returns the position after SETITEMS.
   */
  dictItems(p: number, view: DataView | null): number {
    const buf = this.buf;
    const end = buf.length;
    const memoOk = this.bigMemo === null;
    // Check the run.
    let q = p;
    let pairs = 0;
    for (;;) {
      if (q >= end) return -1;
      const op = buf[q];
      if (op === 0x75) break; // SETITEMS
      if (op !== 0x8c || q + 2 > end) return -1;
      const n = buf[q + 1];
      const c = buf[q + 2];
      if (n === 0 || (c >= 0x30 && c <= 0x39) || (n === 9 && c === 0x5f && buf[q + 3] === 0x5f)) return -1;
      q += 2 + n;
      if (q >= end) return -1;
      if (buf[q] === 0x94) {
        if (!memoOk) return -1;
        q++;
        if (q >= end) return -1;
      }
      switch (buf[q]) {
        case 0x47: q += 9; break; // BINFLOAT
        case 0x4b: q += 2; break; // BININT1
        case 0x4d: q += 3; break; // BININT2
        case 0x4a: q += 5; break; // BININT
        case 0x88: case 0x89: case 0x4e: q += 1; break; // NEWTRUE, NEWFALSE, NONE
        case 0x8c: { // SHORT_BINUNICODE
          if (q + 2 > end) return -1;
          q += 2 + buf[q + 1];
          if (q < end && buf[q] === 0x94) {
            if (!memoOk) return -1;
            q++;
          }
          break;
        }
        default: return -1;
      }
      pairs++;
    }
    // A plain object (checked after the run: a list's MARK fails there, cheaply).
    const stack = this.stack;
    const obj = stack[stack.length - 1];
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj) || Object.getPrototypeOf(obj) !== Object.prototype) return -1;
    if (this.orders?.has(obj)) return -1;
    // Store them (many keys: without the prototype meanwhile, as setItems()).
    const d = obj as Record<string, unknown>;
    const memo = this.memo;
    const bare = pairs * 2 >= BARE_FROM;
    if (bare) Object.setPrototypeOf(d, null);
    try {
      while (p < q) {
        const n = buf[p + 1];
        const k = decodeUtf8(buf, p + 2, p + 2 + n);
        p += 2 + n;
        if (buf[p] === 0x94) {
          memo.push(k);
          p++;
        }
        let v: unknown;
        switch (buf[p]) {
          case 0x47:
            v = floatAt(buf, p + 1, view);
            p += 9;
            break;
          case 0x4b:
            v = buf[p + 1];
            p += 2;
            break;
          case 0x4d:
            v = buf[p + 1] | (buf[p + 2] << 8);
            p += 3;
            break;
          case 0x4a:
            v = buf[p + 1] | (buf[p + 2] << 8) | (buf[p + 3] << 16) | (buf[p + 4] << 24);
            p += 5;
            break;
          case 0x88:
            v = true;
            p++;
            break;
          case 0x89:
            v = false;
            p++;
            break;
          case 0x4e:
            v = null;
            p++;
            break;
          default: {
            const m = buf[p + 1];
            v = decodeUtf8(buf, p + 2, p + 2 + m);
            p += 2 + m;
            if (buf[p] === 0x94) {
              memo.push(v);
              p++;
            }
          }
        }
        d[k] = v;
      }
    } finally {
      if (bare) Object.setPrototypeOf(d, Object.prototype);
    }
    return q + 1;
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
    const marks = this.marks;
    const memo = this.memo;
    const view = end >= VIEW_FROM ? new DataView(buf.buffer, buf.byteOffset, end) : null;
    let p = 0;
    for (;;) {
      if (p >= end) throw truncated();
      const op = buf[p++];
      // Literal case labels: V8 makes a jump table only of literals (imported constants
      // would be compared one after another).
      let v: unknown;
      switch (op) {
        case 0x80: { // PROTO
          if (p >= end) throw truncated();
          const proto = buf[p++];
          if (proto > HIGHEST_PROTOCOL) throw new ValueError(`unsupported pickle protocol: ${proto}`);
          this.proto = proto;
          continue;
        }
        case 0x95: { // FRAME
          if (p + 8 > end) throw truncated();
          // A frame longer than what follows is truncated data (high bytes set: 4 GiB or more).
          const n = (buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16)) + buf[p + 3] * 0x1000000;
          const high = buf[p + 4] | buf[p + 5] | buf[p + 6] | buf[p + 7];
          p += 8;
          if (high !== 0 || n > end - p) throw truncated();
          continue;
        }
        case 0x2e: { // STOP
          if (stack.length === 0 || this.marks.length) throw new UnpicklingError(stack.length === 0 ? 'unpickling stack underflow' : 'unexpected MARK at STOP');
          const result = stack.pop();
          return this.replaced !== null && this.memoReads > 0 ? fixReplaced(result, this.replaced) : result;
        }
        case 0x28: // MARK
          // A dict's items (str keys, simple values) up to their SETITEMS: stored at once,
          // when what is left of the pickle is long enough to hold many (checking the run
          // costs about what storing a few items the usual way saves).
          if (buf[p] === 0x8c && end - p >= DICT_RUN_FROM && stack.length > 0) {
            const q = this.dictItems(p, view);
            if (q > 0) {
              p = q;
              continue;
            }
          }
          marks.push(stack.length);
          continue;
        case 0x4e: // NONE
          v = null;
          break;
        case 0x88: // NEWTRUE
          v = true;
          break;
        case 0x89: // NEWFALSE
          v = false;
          break;
        case 0x4a: // BININT
          if (p + 4 > end) throw truncated();
          v = buf[p] | (buf[p + 1] << 8) | (buf[p + 2] << 16) | (buf[p + 3] << 24);
          p += 4;
          break;
        case 0x4b: // BININT1
          if (p >= end) throw truncated();
          v = buf[p++];
          break;
        case 0x4d: // BININT2
          if (p + 2 > end) throw truncated();
          v = buf[p] | (buf[p + 1] << 8);
          p += 2;
          break;
        case 0x47: { // BINFLOAT
          if (p + 8 > end) throw truncated();
          v = floatAt(buf, p, view);
          p += 8;
          break;
        }
        case 0x8c: { // SHORT_BINUNICODE
          if (p >= end) throw truncated();
          const n = buf[p++];
          if (n > end - p) throw truncated();
          v = decodeUtf8(buf, p, p + n);
          p += n;
          break;
        }
        case 0x58: { // BINUNICODE
          if (p + 4 > end) throw truncated();
          const n = buf.readUInt32LE(p);
          p += 4;
          if (n > end - p) throw truncated();
          v = decodeUtf8(buf, p, p + n);
          p += n;
          break;
        }
        case 0x43: { // SHORT_BINBYTES
          if (p >= end) throw truncated();
          const n = buf[p++];
          if (n > end - p) throw truncated();
          v = Buffer.from(buf.subarray(p, p + n));
          p += n;
          break;
        }
        case 0x42: { // BINBYTES
          if (p + 4 > end) throw truncated();
          const n = buf.readUInt32LE(p);
          p += 4;
          if (n > end - p) throw truncated();
          v = Buffer.from(buf.subarray(p, p + n));
          p += n;
          break;
        }
        case 0x5d: // EMPTY_LIST
          v = [];
          break;
        case 0x7d: // EMPTY_DICT
          v = {};
          break;
        case 0x8f: // EMPTY_SET
          v = new Set();
          break;
        case 0x29: // EMPTY_TUPLE
          v = new Tuple();
          break;
        case 0x85: { // TUPLE1
          const a = this.pop();
          const t = new Tuple();
          t.push(a);
          v = t;
          break;
        }
        case 0x86: { // TUPLE2
          const b = this.pop();
          const a = this.pop();
          const t = new Tuple();
          t.push(a, b);
          v = t;
          break;
        }
        case 0x87: { // TUPLE3
          const c = this.pop();
          const b = this.pop();
          const a = this.pop();
          const t = new Tuple();
          t.push(a, b, c);
          v = t;
          break;
        }
        case 0x74: { // TUPLE
          const m = this.popMark();
          const t = new Tuple();
          for (let i = m; i < stack.length; i++) t.push(stack[i]);
          truncate(stack, m);
          v = t;
          break;
        }
        case 0x61: { // APPEND
          const v = this.pop();
          const l = this.top();
          if (!Array.isArray(l) || l instanceof Tuple) throw new UnpicklingError(`APPEND to ${describe(l)}, which is not a list`);
          l.push(v);
          continue;
        }
        case 0x65: { // APPENDS
          const m = this.popMark();
          const l = stack[m - 1];
          if (m === 0 || !Array.isArray(l) || l instanceof Tuple) throw new UnpicklingError(`APPENDS to ${describe(l)}, which is not a list`);
          for (let i = m; i < stack.length; i++) l.push(stack[i]);
          truncate(stack, m);
          continue;
        }
        case 0x73: { // SETITEM
          if (stack.length - 3 < (this.marks.length ? this.marks[this.marks.length - 1] : 0)) throw new UnpicklingError('unpickling stack underflow');
          this.setItems(stack.length - 3, stack.length - 2);
          continue;
        }
        case 0x75: { // SETITEMS
          const m = this.popMark();
          this.setItems(m - 1, m);
          continue;
        }
        case 0x90: { // ADDITEMS
          const m = this.popMark();
          const s = stack[m - 1];
          if (m === 0 || !(s instanceof Set)) throw new UnpicklingError(`ADDITEMS to ${describe(s)}, which is not a set`);
          for (let i = m; i < stack.length; i++) s.add(stack[i]);
          truncate(stack, m);
          continue;
        }
        case 0x94: { // MEMOIZE
          const n = stack.length;
          if (n <= (marks.length === 0 ? 0 : marks[marks.length - 1])) throw new UnpicklingError('unpickling stack underflow');
          if (this.bigMemo === null) memo.push(stack[n - 1]);
          else this.memoPut(memo.length + this.bigMemo.size, stack[n - 1]);
          continue;
        }
        case 0x71: // BINPUT
          if (p >= end) throw truncated();
          this.memoPut(buf[p++], this.top());
          continue;
        case 0x72: // LONG_BINPUT
          if (p + 4 > end) throw truncated();
          this.memoPut(buf.readUInt32LE(p), this.top());
          p += 4;
          continue;
        case 0x68: // BINGET
          if (p >= end) throw truncated();
          v = this.memoGet(buf[p++]);
          break;
        case 0x6a: // LONG_BINGET
          if (p + 4 > end) throw truncated();
          v = this.memoGet(buf.readUInt32LE(p));
          p += 4;
          break;
        // The other opcodes (rare()'s) are listed too: V8 compiles a switch whose literal
        // labels cover enough of their range to one indexed jump, otherwise to a chain of
        // comparisons that unoptimized code (a fresh process's first thousands of calls)
        // walks for every opcode.
        case 0x30: case 0x31: case 0x32: case 0x8a: case 0x8b: case 0x8d: case 0x8e: case 0x96: case 0x55:
        case 0x54: case 0x6c: case 0x64: case 0x91: case 0x63: case 0x93: case 0x52: case 0x81: case 0x92:
        case 0x62: case 0x97: case 0x98: case 0x49: case 0x4c: case 0x46: case 0x53: case 0x56: case 0x70:
        case 0x67: case 0x50: case 0x51: case 0x82: case 0x83: case 0x84: case 0x69: case 0x6f:
        default:
          p = this.rare(op, p);
          continue;
      }
      stack.push(v);
    }
  }

  /**
   * The opcodes met less often, outside load()'s loop: a smaller loop is compiled (and
   * fast) sooner. Returns the position after the opcode's argument.
   */
  rare(op: number, p: number): number {
    const buf = this.buf;
    const end = buf.length;
    const stack = this.stack;
    switch (op) {
      case 0x30: // POP
        if (stack.length > (this.marks.length ? this.marks[this.marks.length - 1] : 0)) stack.pop();
        else if (this.marks.length) truncate(stack, this.popMark());
        else throw new UnpicklingError('unpickling stack underflow');
        break;
      case 0x31: // POP_MARK
        truncate(stack, this.popMark());
        break;
      case 0x32: // DUP
        // A second reference, as a memo read gives: a dict that becomes a Map later must be swapped in both.
        this.memoReads++;
        stack.push(this.top());
        break;
      case 0x8a: { // LONG1
        if (p >= end) throw truncated();
        const n = buf[p++];
        if (n > end - p) throw truncated();
        stack.push(decodeLong(buf, p, n));
        p += n;
        break;
      }
      case 0x8b: { // LONG4
        if (p + 4 > end) throw truncated();
        const n = buf.readInt32LE(p);
        p += 4;
        if (n < 0) throw new UnpicklingError('LONG pickle has negative byte count');
        if (n > end - p) throw truncated();
        stack.push(decodeLong(buf, p, n));
        p += n;
        break;
      }
      case 0x8d: // BINUNICODE8
      case 0x8e: // BINBYTES8
      case 0x96: { // BYTEARRAY8
        if (p + 8 > end) throw truncated();
        const n = buf.readUInt32LE(p) + buf.readUInt32LE(p + 4) * 0x100000000;
        p += 8;
        if (n > end - p) throw truncated();
        stack.push(op === BINUNICODE8 ? decodeUtf8(buf, p, p + n) : Buffer.from(buf.subarray(p, p + n)));
        p += n;
        break;
      }
      case 0x55: // SHORT_BINSTRING
      case 0x54: { // BINSTRING
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
      case 0x6c: { // LIST
        const m = this.popMark();
        const l = stack.slice(m);
        truncate(stack, m);
        stack.push(l);
        break;
      }
      case 0x64: { // DICT
        const m = this.popMark();
        stack.splice(m, 0, {});
        this.setItems(m, m + 1);
        break;
      }
      case 0x91: { // FROZENSET
        const m = this.popMark();
        const s = new Set(stack.slice(m));
        truncate(stack, m);
        stack.push(s);
        break;
      }
      case 0x63: { // GLOBAL
        const nl1 = this.readLine(p);
        const nl2 = this.readLine(nl1 + 1);
        const module = decodeAscii(buf, p, nl1, 'utf8');
        const name = decodeAscii(buf, nl1 + 1, nl2, 'utf8');
        p = nl2 + 1;
        stack.push(findGlobal(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = this.pop();
        const module = this.pop();
        stack.push(this.global(module, name));
        break;
      }
      case 0x52: { // REDUCE
        const args = this.pop();
        stack.push(invoke('REDUCE', this.pop(), args, 'call'));
        break;
      }
      case 0x81: { // NEWOBJ
        const args = this.pop();
        stack.push(invoke('NEWOBJ', this.pop(), args, 'newobj'));
        break;
      }
      case 0x92: { // NEWOBJ_EX
        const kwargs = this.pop();
        const args = this.pop();
        if (!(typeof kwargs === 'object' && kwargs !== null && !(kwargs instanceof Map) && Object.keys(kwargs).length === 0)) throw new UnpicklingError('NEWOBJ_EX keyword arguments are not read');
        stack.push(invoke('NEWOBJ_EX', this.pop(), args, 'newobj'));
        break;
      }
      case 0x62: { // BUILD
        const state = this.pop();
        const obj = this.top();
        build(obj, state);
        break;
      }
      case 0x97: // NEXT_BUFFER
        throw new UnpicklingError('pickle stream refers to out-of-band data but no *buffers* argument was given');
      case 0x98: // READONLY_BUFFER
        this.top();
        break;
      // Protocol 0 and 1 text opcodes.
      case 0x49: { // INT
        const nl = this.readLine(p);
        const text = decodeAscii(buf, p, nl);
        p = nl + 1;
        stack.push(text === '00' ? false : text === '01' ? true : parseIntText(text));
        break;
      }
      case 0x4c: { // LONG
        const nl = this.readLine(p);
        let text = decodeAscii(buf, p, nl);
        p = nl + 1;
        if (text.endsWith('L')) text = text.slice(0, -1);
        stack.push(parseIntText(text));
        break;
      }
      case 0x46: { // FLOAT
        const nl = this.readLine(p);
        const text = decodeAscii(buf, p, nl).trim();
        p = nl + 1;
        const v = /^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|nan|infinity)$/i.test(text) ? Number(text.replace(/inf(inity)?/i, 'Infinity').replace(/nan/i, 'NaN')) : NaN;
        if (Number.isNaN(v) && !/nan/i.test(text)) throw new ValueError(`could not convert string to float: '${text}'`);
        stack.push(v);
        break;
      }
      case 0x53: { // STRING
        const nl = this.readLine(p);
        const text = decodeAscii(buf, p, nl);
        p = nl + 1;
        stack.push(parseStringLiteral(text));
        break;
      }
      case 0x56: { // UNICODE
        const nl = this.readLine(p);
        stack.push(rawUnicodeEscape(buf.toString('latin1', p, nl)));
        p = nl + 1;
        break;
      }
      case 0x70: { // PUT
        const nl = this.readLine(p);
        const idx = parseMemoIndex(decodeAscii(buf, p, nl));
        p = nl + 1;
        this.memoPut(idx, this.top());
        break;
      }
      case 0x67: { // GET
        const nl = this.readLine(p);
        const idx = parseMemoIndex(decodeAscii(buf, p, nl));
        p = nl + 1;
        stack.push(this.memoGet(idx));
        break;
      }
      case 0x50: // PERSID
      case 0x51: // BINPERSID
        throw new UnpicklingError('A load persistent id instruction was encountered, but no persistent_load function was specified.');
      case 0x82: // EXT1
      case 0x83: // EXT2
      case 0x84: // EXT4
        throw new UnpicklingError('copyreg extension codes are not read');
      case 0x69: // INST
      case 0x6f: // OBJ
        throw new UnpicklingError('protocol 0/1 object instructions (INST, OBJ) are not read');
      default:
        throw new UnpicklingError(`invalid load key, '\\x${op.toString(16).padStart(2, '0')}'.`);
    }
    return p;
  }

}

/** REDUCE (`f(*args)`) or NEWOBJ (`cls.__new__(cls, *args)`) of an allow-listed global. */
function invoke(opname: string, f: unknown, args: unknown, how: 'call' | 'newobj'): unknown {
  const run = f instanceof PyGlobal ? f.def[how] : undefined;
  if (!run) throw new UnpicklingError(`${opname} on ${describe(f)}, which ${how === 'call' ? 'cannot be called' : 'cannot be created'} here`);
  if (!Array.isArray(args)) throw new UnpicklingError(`${opname} arguments must be a tuple`);
  return run(args);
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
  if (typeof obj === 'object' && obj !== null && typeof (obj as { [pySetState]?: unknown })[pySetState] === 'function') {
    (obj as { [pySetState](s: unknown): void })[pySetState](state);
    return;
  }
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
  const buf = toBuffer(data);
  // The reader and its arrays are reused from call to call (a fresh one if loads re-enters).
  const u = spareReader ?? new Unpickler();
  spareReader = null;
  u.buf = buf;
  try {
    return u.load();
  } catch (e) {
    if (e instanceof PythonError || (e instanceof Error && (e as PyErrorLike)[pyClassOf])) throw e;
    // An error from the JavaScript engine (a string or array too long...): still the pickle's fault.
    const err = new UnpicklingError(`malformed pickle: ${(e as Error)?.message ?? String(e)}`);
    (err as Error).cause = e;
    throw err;
  } finally {
    u.reset();
    spareReader = u;
  }
}

