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
