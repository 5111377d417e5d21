// The manager's messages (Python's multiprocessing.managers protocol, in its vocabulary).
//
// The 'v8' dialect: ONE authenticated Connection per client process (per JS thread),
// multiplexed. A message is a batch (an array) of requests or of replies:
//   request  [id, ident, methodname, args, kwds]   ident null: a method of the server itself
//                                                 (create, incref, decref, shutdown, ...)
//   reply    [id, kind, value]                      kind: '#RETURN' | '#ERROR' | '#TRACEBACK' | '#PROXY'
// Request id 0 asks for no reply (decrefs). Requests issued in the same tick go in one
// message; the server answers a batch with one message (and later ones for calls that
// settle later). Encoding and decoding of messages live here only, so that another dialect
// (Python's own protocol with `serializer: 'pickle'`, managers_pickle.ts) is served beside this one.
import type { Connection } from './connection.js';
import { checkSerializer } from './connection.js';
import { ValueError } from './errors.js';

/** Reply kinds, as CPython names them. */
export type ReplyKind = '#RETURN' | '#ERROR' | '#TRACEBACK' | '#PROXY';
/** `[id, ident, methodname, args, kwds]`. */
export type Request = [id: number, ident: string | null, methodname: string, args: unknown[], kwds: Record<string, unknown> | null];
/** `[id, kind, value]`. */
export type Reply = [id: number, kind: ReplyKind, value: unknown];

/** What a `#PROXY` reply carries (CPython's `(exposed, token)`). */
export interface ProxyReply {
  exposed: string[] | null;
  typeid: string;
  id: string;
}

/** The server's own methods (CPython's `Server.public` plus the transit ones). */
export const SERVER_METHODS = new Set([
  'create', 'incref', 'decref', 'shutdown', 'number_of_objects', 'debug_info', 'dummy', 'hello', 'transit', 'claim',
  'get_methods',
]);

/** How one dialect reads and writes batches on a connection. */
export interface Dialect {
  sendRequests(conn: Connection, reqs: Request[]): void;
  sendReplies(conn: Connection, replies: Reply[]): void;
  /** A received message as requests; throws a TypeError for anything else. */
  requests(msg: unknown): Request[];
  /** A received message as replies; throws a TypeError for anything else. */
  replies(msg: unknown): Reply[];
}

function isRequest(r: unknown): r is Request {
  return Array.isArray(r) && r.length === 5 && typeof r[0] === 'number' && (r[1] === null || typeof r[1] === 'string') &&
    typeof r[2] === 'string' && Array.isArray(r[3]);
}

function isReply(r: unknown): r is Reply {
  return Array.isArray(r) && r.length === 3 && typeof r[0] === 'number' && typeof r[1] === 'string';
}

/** Node to Node: batches through the library's serializer (reduction.ts), by `Connection.send`. */
export const v8Dialect: Dialect = {
  sendRequests(conn, reqs) {
    conn.send(reqs);
  },
  sendReplies(conn, replies) {
    conn.send(replies);
  },
  requests(msg) {
    if (!Array.isArray(msg) || !msg.every(isRequest)) throw new TypeError('a manager request must be a batch of [id, ident, methodname, args, kwds]');
    return msg;
  },
  replies(msg) {
    if (!Array.isArray(msg) || !msg.every(isReply)) throw new TypeError('a manager reply must be a batch of [id, kind, value]');
    return msg;
  },
};

/** The manager serializers: `'v8'` (default) or `'pickle'` (Python's); `'xmlrpclib'` is a ValueError. */
export type ManagerSerializer = 'v8' | 'pickle';

/** The dialect for a serializer name, checked (ValueError for an unknown one). */
export function dialectFor(serializer: unknown): Dialect {
  const s = checkSerializer(serializer);
  // Python's own protocol is not a batch dialect: a connection per request or per client thread (managers_pickle.ts).
  if (s === 'pickle') throw new ValueError("serializer 'pickle' speaks Python's own protocol (managers_pickle.ts), not a batch dialect");
  return v8Dialect;
}

// ---- The compact form of a batch (local clients' shared-memory channel) ---------------
//
// Most batches are requests and replies whose arguments and results are numbers, strings,
// booleans, null/undefined and plain arrays of those (`d.setItem(1, 2)`, `d.keys()`). Such a
// batch is written as one tag byte then its values, a type byte each (no V8 serializer,
// which costs far more than the call itself for small messages); any other batch goes through
// the library's serializer (reduction.ts) as before. This is not a general serializer: it knows
// only these few types, and anything else (an object, a Map, a proxy, an error) sends the
// whole batch the ordinary way.

/** The first byte of a compact batch (never the first byte of a serialized message). */
export const COMPACT_TAG = 0xc7;
const T_UNDEFINED = 0;
const T_NULL = 1;
const T_TRUE = 2;
const T_FALSE = 3;
const T_INT = 4;
const T_F64 = 5;
const T_ASCII = 6;
const T_UTF8 = 7;
const T_ARRAY = 8;
/** Arrays nest this deep at most (a batch, a request, its arguments, a value's elements). */
const MAX_DEPTH = 6;
/** Arrays this deep are (or may be) user values: checked for holes and named properties. */
const USER_DEPTH = 2;

let scratch = Buffer.allocUnsafeSlow(1 << 16);
let view = new DataView(scratch.buffer, scratch.byteOffset, scratch.byteLength);
let wpos = 0;

function room(n: number): void {
  if (wpos + n <= scratch.length) return;
  let size = scratch.length * 2;
  while (size < wpos + n) size *= 2;
  const b = Buffer.allocUnsafeSlow(size);
  scratch.copy(b, 0, 0, wpos);
  scratch = b;
  view = new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function putValue(v: unknown, depth: number): boolean {
  switch (typeof v) {
    case 'number':
      room(9);
      // Object.is, not `1 / v`: evaluated for every integer, its type feedback is there before
      // the optimizing compiler runs (a check reached only for 0 deoptimized this at the first 0).
      if ((v | 0) === v && !Object.is(v, -0)) {
        scratch[wpos] = T_INT;
        view.setInt32(wpos + 1, v, true);
        wpos += 5;
      } else {
        scratch[wpos] = T_F64;
        view.setFloat64(wpos + 1, v, true);
        wpos += 9;
      }
      return true;
    case 'string': {
      const n = v.length;
      room(5 + n);
      const at = wpos + 5;
      let i = 0;
      for (; i < n; i++) {
        const c = v.charCodeAt(i);
        if (c >= 0x80) break;
        scratch[at + i] = c;
      }
      if (i === n) {
        scratch[wpos] = T_ASCII;
        view.setUint32(wpos + 1, n, true);
        wpos = at + n;
        return true;
      }
      room(5 + 3 * n);
      const len = scratch.write(v, wpos + 5, 'utf8');
      scratch[wpos] = T_UTF8;
      view.setUint32(wpos + 1, len, true);
      wpos += 5 + len;
      return true;
    }
    case 'boolean':
      room(1);
      scratch[wpos++] = v ? T_TRUE : T_FALSE;
      return true;
    case 'undefined':
      room(1);
      scratch[wpos++] = T_UNDEFINED;
      return true;
    case 'object': {
      if (v === null) {
        room(1);
        scratch[wpos++] = T_NULL;
        return true;
      }
      if (!Array.isArray(v) || depth >= MAX_DEPTH || Object.getPrototypeOf(v) !== Array.prototype) return false;
      const n = v.length;
      // A user's array with holes or named properties keeps them only through the serializer.
      if (depth >= USER_DEPTH && Object.keys(v).length !== n) return false;
      room(5);
      scratch[wpos] = T_ARRAY;
      view.setUint32(wpos + 1, n, true);
      wpos += 5;
      for (let i = 0; i < n; i++) if (!putValue(v[i], depth + 1)) return false;
      return true;
    }
    default:
      return false;
  }
}

/**
 * Write `batch` (an array of requests or replies) in the compact form; its bytes are then
 * `compactScratch().subarray(0, n)` (valid until the next call). -1 when something in it
 * needs the serializer.
 */
export function encodeCompact(batch: unknown[]): number {
  wpos = 0;
  room(1);
  scratch[wpos++] = COMPACT_TAG;
  return putValue(batch, 0) ? wpos : -1;
}

/** Start a compact batch of `n` elements in the scratch buffer. */
function beginBatch(n: number): void {
  wpos = 0;
  room(6);
  scratch[0] = COMPACT_TAG;
  scratch[1] = T_ARRAY;
  view.setUint32(2, n, true);
  wpos = 6;
}

function putHeader(n: number): void {
  room(5);
  scratch[wpos] = T_ARRAY;
  view.setUint32(wpos + 1, n, true);
  wpos += 5;
}

/**
 * `encodeCompact` of the requests `flat[from, to)`, five fields each (id, ident, method, args,
 * kwds), as if they were `[id, ident, method, args, kwds]` arrays (the same bytes), without
 * making those arrays. -1 when one needs the serializer.
 */
export function encodeRequests(flat: readonly unknown[], from: number, to: number): number {
  beginBatch((to - from) / 5);
  for (let i = from; i < to; i += 5) {
    putHeader(5);
    if (!putValue(flat[i], 1) || !putValue(flat[i + 1], 1) || !putValue(flat[i + 2], 1)) return -1;
    const args = flat[i + 3] as unknown[];
    // The args array is the library's (dense); its elements are the user's values.
    if (!Array.isArray(args)) return -1;
    const n = args.length;
    putHeader(n);
    for (let j = 0; j < n; j++) if (!putValue(args[j], 3)) return -1;
    if (!putValue(flat[i + 4], 2)) return -1;
  }
  return wpos;
}

/** `encodeCompact` of the replies `flat[from, to)`, three fields each (id, kind, value), without `[id, kind, value]` arrays. */
export function encodeReplies(flat: readonly unknown[], from: number, to: number): number {
  beginBatch((to - from) / 3);
  for (let i = from; i < to; i += 3) {
    putHeader(3);
    if (!putValue(flat[i], 1) || !putValue(flat[i + 1], 1) || !putValue(flat[i + 2], 2)) return -1;
  }
  return wpos;
}

/** `[id, ...]` arrays of `width` fields from their flat form (what the serializer and the socket dialect take). */
export function unflatten(flat: readonly unknown[], from: number, to: number, width: number): unknown[][] {
  const out: unknown[][] = [];
  for (let i = from; i < to; i += width) out.push(flat.slice(i, i + width) as unknown[]);
  return out;
}

/**
 * Push the fields of each element of a decoded batch (an array of arrays of `width` fields)
 * onto `out`; TypeError for anything else.
 */
export function flattenBatch(batch: unknown, width: number, out: unknown[]): void {
  if (!Array.isArray(batch)) throw new TypeError('not a manager batch');
  for (const e of batch) {
    if (!Array.isArray(e) || e.length !== width) throw new TypeError(`not a manager batch (an element is not ${width} fields)`);
    for (let k = 0; k < width; k++) out.push(e[k]);
  }
}

/** The buffer `encodeCompact` wrote into. */
export function compactScratch(): Buffer {
  return scratch;
}

let rbuf: Buffer = scratch;
let rview: DataView = view;
let rpos = 0;
let rend = 0;

/** ASCII strings up to this long are looked up in `recent` (method names, idents, reply kinds repeat). */
const SHORT = 24;
/** The last short string of each length decoded. */
const recent: string[] = new Array(SHORT + 1).fill('');

function shortString(at: number, n: number): string {
  const r = recent[n];
  let i = 0;
  while (i < n && r.charCodeAt(i) === rbuf[at + i]) i++;
  if (i === n) return r;
  const s = rbuf.toString('latin1', at, at + n);
  recent[n] = s;
  return s;
}

function short(): TypeError {
  return new TypeError('not a manager batch (truncated compact message)');
}

function getValue(): unknown {
  if (rpos >= rend) throw short();
  const t = rbuf[rpos++];
  switch (t) {
    case T_UNDEFINED: return undefined;
    case T_NULL: return null;
    case T_TRUE: return true;
    case T_FALSE: return false;
    case T_INT: {
      if (rpos + 4 > rend) throw short();
      const x = rview.getInt32(rpos, true);
      rpos += 4;
      return x;
    }
    case T_F64: {
      if (rpos + 8 > rend) throw short();
      const x = rview.getFloat64(rpos, true);
      rpos += 8;
      return x;
    }
    case T_ASCII:
    case T_UTF8: {
      if (rpos + 4 > rend) throw short();
      const n = rview.getUint32(rpos, true);
      const at = rpos + 4;
      if (at + n > rend) throw short();
      rpos = at + n;
      if (t === T_UTF8) return rbuf.toString('utf8', at, at + n);
      if (n > SHORT) return rbuf.toString('latin1', at, at + n);
      return shortString(at, n);
    }
    case T_ARRAY: {
      if (rpos + 4 > rend) throw short();
      const n = rview.getUint32(rpos, true);
      rpos += 4;
      if (n > rend - rpos) throw short(); // every element takes a byte at least
      const a = new Array(n);
      for (let i = 0; i < n; i++) a[i] = getValue();
      return a;
    }
    default:
      throw new TypeError(`not a manager batch (type byte ${t})`);
  }
}

/**
 * Read a compact batch whose elements are arrays of `width` fields from `buf[at, end)` (as
 * `decodeCompact`), pushing the fields onto `out` without making the element arrays.
 * TypeError when it is anything else.
 */
export function decodeFlat(buf: Buffer, dv: DataView, at: number, end: number, width: number, out: unknown[]): void {
  rbuf = buf;
  rview = dv;
  rpos = at + 1;
  rend = end;
  const n = arrayHeader();
  for (let i = 0; i < n; i++) {
    if (arrayHeader() !== width) throw new TypeError(`not a manager batch (an element is not ${width} fields)`);
    for (let k = 0; k < width; k++) out.push(getValue());
  }
  if (rpos !== end) throw new TypeError('not a manager batch (bytes after its end)');
}

function arrayHeader(): number {
  if (rpos + 5 > rend || rbuf[rpos] !== T_ARRAY) throw new TypeError('not a manager batch');
  const n = rview.getUint32(rpos + 1, true);
  rpos += 5;
  if (n > rend - rpos) throw short();
  return n;
}
