// A Node manager serving clients in Python's own protocol (`serializer: 'pickle'`): CPython's
// Server.handle_request (one server request per connection) and serve_client (one client
// thread's calls on an `accept_connection` connection), over the library's Server
// (managers_server.ts gives its dispatch through PickleServing). The wire and the names are
// described in managers_pickle.ts.
import { inspect } from 'node:util';
import type { Address, Connection } from './connection.js';
import { UnpicklingError } from './errors.js';
import type { RawReply } from './managers_client.js';
import { asArray, dumpMessage, fromPyName, loadMessage, METHOD_OPTIONS, PySlice, toPyName, type Reading } from './managers_pickle.js';
import { pythonErrorClass } from './errors.js';
import { Token } from './managers_proxy.js';
import { native } from './native.js';
import { dumps, Tuple } from './pickle.js';
import { makeError } from './pickle_globals.js';

/** What the serving of Python's protocol needs of a Server (managers_server.ts). @internal */
export interface PickleServing {
  /** The address clients connect to (what Tokens carry). */
  readonly address: Address;
  /** The server's own id: proxies read here of its own objects talk to it directly. */
  readonly sid: string;
  /** Its authkey (the key of proxies read from its messages). */
  readonly authkey: Uint8Array;
  /** A request as the server's own dispatch takes it (the library's names); `key`: the caller. */
  request(key: string, ident: string | null, method: string, args: unknown[]): RawReply | Promise<RawReply>;
  /** The referent of `ident` (undefined: none). */
  referent(ident: string): unknown;
  /** Adopt `obj` as a managed object of `typeid` (one reference counted for the reply): its id and exposed names. */
  adopt(obj: unknown, typeid: string): [string, string[] | null];
  /** A client thread's connection closed (what it owned is released). */
  gone(key: string): void;
}

/** The server methods a client may ask for (CPython's `Server.public`). */
const PUBLIC = new Set(['shutdown', 'create', 'accept_connection', 'get_methods', 'debug_info', 'number_of_objects', 'dummy', 'incref', 'decref']);

/** Python's keyword names -> the library's option names, per method. */
const METHOD_KWDS: Record<string, Record<string, string>> = Object.fromEntries(
  Object.entries(METHOD_OPTIONS).map(([m, keys]) => [m, Object.fromEntries(Object.entries(keys).map(([ours, py]) => [py, ours]))]),
);

function traceback(e: unknown): string {
  if (e instanceof Error) return `Traceback (most recent call last):\n  (in the Node manager's process)\n${e.name}: ${e.message}\n`;
  return `${String(e)}\n`;
}

/**
 * The address a client reached the server at: the connection's own end (a server on every
 * interface, `['', port]`, is reached at one of this machine's addresses, which the Tokens
 * it sends that client name: CPython's would say '0.0.0.0', which only its own host can reach).
 */
function reachedAt(conn: Connection, own: Address): Address {
  if (typeof own === 'string') return own;
  try {
    const a = native.sockName(conn.fileno());
    return typeof a.host === 'string' && a.host !== '' ? [a.host.replace(/^::ffff:(?=\d+\.)/, ''), own[1]] : own;
  } catch {
    return own;
  }
}

/** A reply as Python's client reads it: `(kind, value)`, a `#PROXY` as `(exposed, Token)`. */
function pyReply(s: PickleServing, r: RawReply): Tuple<unknown> {
  const [kind, value] = r;
  if (kind === '#PROXY') {
    const p = value as { exposed: string[] | null; typeid: string; id: string };
    return new Tuple<unknown>('#PROXY', new Tuple<unknown>(Tuple.from((p.exposed ?? []).map(toPyName)), new Token(p.typeid, s.address, p.id)));
  }
  if (kind === '#TRACEBACK') return new Tuple<unknown>(kind, String(value));
  return new Tuple<unknown>(kind, value);
}

function sendReply(conn: Connection, s: PickleServing, r: RawReply, reached: Address): void {
  let data: Buffer;
  try {
    data = dumpMessage(pyReply(s, r), { own: s.address, reached });
  } catch (e) {
    // Python's serve_client: what cannot be pickled goes back as '#UNSERIALIZABLE'.
    data = dumps(new Tuple<unknown>('#UNSERIALIZABLE', traceback(e)));
  }
  conn.sendBytes(data);
}

function stopIteration(): Error {
  return makeError('builtins', 'StopIteration', []);
}

/** What a referent iterates (Python's `iter(obj)` on the manager's objects): a snapshot. */
function iterationOf(obj: unknown): unknown[] | null {
  if (obj instanceof Map) return [...obj.keys()];
  if (Array.isArray(obj)) return [...obj];
  if (obj && typeof (obj as { toArray?: unknown }).toArray === 'function') return (obj as { toArray(): unknown[] }).toArray();
  if (obj && typeof (obj as Iterable<unknown>)[Symbol.iterator] === 'function') return [...(obj as Iterable<unknown>)];
  return null;
}

/** A method call from a Python client: Python's names and keywords in, Python's shapes out. */
async function callMethod(s: PickleServing, key: string, ident: string, pyMethod: string, args: unknown[], kwds: unknown): Promise<RawReply> {
  if (pyMethod === '__iter__') {
    const items = iterationOf(s.referent(ident));
    if (items === null) return ['#TRACEBACK', `AttributeError: the object ${ident} is not iterable`];
    const [id, exposed] = s.adopt((function* () {
      yield* items;
    })(), 'Iterator');
    return ['#PROXY', { exposed, typeid: 'Iterator', id }];
  }
  if (args[0] instanceof PySlice && (pyMethod === '__getitem__' || pyMethod === '__setitem__' || pyMethod === '__delitem__')) {
    const list = s.referent(ident);
    if (Array.isArray(list)) return sliceItems(list, pyMethod, args[0], args[1]);
  }
  const method = pyMethod === '__next__' ? 'next' : pyMethod === '__rmul__' ? 'mul' : pyMethod === '__iadd__' ? 'iadd' : fromPyName(pyMethod);
  if (pyMethod === '__getattribute__' && args[0] === 'n_waiting') args = ['nWaiting'];
  if (kwds && typeof kwds === 'object' && !(kwds instanceof Map) && Object.keys(kwds).length > 0) {
    const names = METHOD_KWDS[method] ?? {};
    const options: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(kwds)) options[Object.hasOwn(names, k) ? names[k] : k] = v;
    args = [...args, options];
  }
  const r = await s.request(key, ident, method, args);
  if (r[0] !== '#RETURN') return r;
  const v = r[1];
  if (pyMethod === '__next__' && v && typeof v === 'object' && 'done' in v) {
    const step = v as IteratorResult<unknown>;
    return step.done ? ['#ERROR', stopIteration()] : ['#RETURN', step.value];
  }
  // A dict's pairs are tuples in Python.
  if (s.referent(ident) instanceof Map) {
    if (method === 'items' && Array.isArray(v)) return ['#RETURN', v.map((p) => Tuple.from(p as unknown[]))];
    if (method === 'popitem' && Array.isArray(v)) return ['#RETURN', Tuple.from(v)];
  }
  return r;
}

/** Python's `l[a:b:c]`, `l[a:b:c] = xs` and `del l[a:b:c]` on a managed list. */
function sliceItems(list: unknown[], pyMethod: string, slice: PySlice, value: unknown): RawReply {
  try {
    const at = slice.indices(list.length);
    if (pyMethod === '__getitem__') return ['#RETURN', at.map((i) => list[i])];
    if (pyMethod === '__delitem__') {
      for (const i of [...at].sort((a, b) => b - a)) list.splice(i, 1);
      return ['#RETURN', null];
    }
    if (!Array.isArray(value)) throw new TypeError('can only assign an iterable');
    if ((slice.step ?? 1) === 1) {
      const n = list.length;
      const norm = (v: number | null, dflt: number): number => (v === null ? dflt : Math.min(Math.max(v < 0 ? v + n : v, 0), n));
      const start = norm(slice.start, 0);
      list.splice(start, Math.max(0, norm(slice.stop, n) - start), ...value);
    } else {
      if (value.length !== at.length) throw new (pythonErrorClass('ValueError'))(`attempt to assign sequence of size ${value.length} to extended slice of size ${at.length}`);
      at.forEach((i, k) => (list[i] = value[k]));
    }
    return ['#RETURN', null];
  } catch (e) {
    return ['#ERROR', e];
  }
}

/** A server method asked by a Python client (one request on its own connection). */
async function serverMethod(s: PickleServing, key: string, method: string, args: unknown[], kwds: unknown): Promise<RawReply> {
  if (method === 'create' && kwds && typeof kwds === 'object' && !(kwds instanceof Map) && Object.keys(kwds).length > 0) args = [...args, kwds];
  if (method === 'get_methods') args = [args[0] instanceof Token ? args[0].id : args[0]];
  const r = await s.request(key, null, method, args);
  if (r[0] !== '#RETURN') return r;
  const v = r[1];
  switch (method) {
    case 'create': {
      const [id, exposed] = v as [string, string[] | null];
      return ['#RETURN', new Tuple<unknown>(id, Tuple.from((exposed ?? []).map(toPyName)))];
    }
    case 'get_methods':
      return ['#RETURN', Tuple.from(((v as string[] | null) ?? []).map(toPyName))];
    case 'debug_info':
      // CPython's text: one entry per object.
      return ['#RETURN', (v as Array<{ id: string; refcount: number; repr: string }>).map((o) => `  ${o.id}:       refcount=${o.refcount}\n    ${o.repr.slice(0, 75)}`).join('\n')];
    default:
      return r;
  }
}

let pickleClients = 0;

/**
 * Serve one connection of a Python client (after the handshake): a server method, or with
 * `accept_connection` the calls of one of its threads until it closes (CPython's
 * `Server.handle_request` and `serve_client`). @internal
 */
export async function servePickleConnection(conn: Connection, s: PickleServing): Promise<void> {
  const reading: Reading = { authkey: s.authkey, server: { address: s.address, sid: s.sid } };
  const key = `py-${++pickleClients}`;
  const reached = reachedAt(conn, s.address);
  try {
    let req: unknown[];
    try {
      req = asArray(loadMessage(await conn.recvBytes(), reading), 4, 'request');
      if (typeof req[1] !== 'string' || !PUBLIC.has(req[1])) throw new UnpicklingError(`${inspect(req[1])} unrecognized`);
    } catch (e) {
      if (!(e instanceof Error && e.name === 'EOFError')) sendReply(conn, s, ['#TRACEBACK', traceback(e)], reached);
      return;
    }
    const [, name, args, kwds] = req as [unknown, string, unknown, unknown];
    if (name === 'accept_connection') {
      sendReply(conn, s, ['#RETURN', null], reached);
      try {
        await serveCalls(conn, s, reading, key, reached);
      } finally {
        s.gone(key);
      }
      return;
    }
    let r: RawReply;
    try {
      r = await serverMethod(s, key, name, Array.isArray(args) ? args : [], kwds);
    } catch (e) {
      r = ['#TRACEBACK', traceback(e)];
    }
    sendReply(conn, s, r, reached);
  } catch {
    /* the client went away */
  } finally {
    conn.close();
  }
}

async function serveCalls(conn: Connection, s: PickleServing, reading: Reading, key: string, reached: Address): Promise<void> {
  for (;;) {
    let data: Buffer;
    try {
      data = await conn.recvBytes();
    } catch {
      return;
    }
    let r: RawReply;
    try {
      const [ident, method, args, kwds] = asArray(loadMessage(data, reading), 4, 'request');
      if (typeof ident !== 'string' || typeof method !== 'string' || !Array.isArray(args)) throw new UnpicklingError('a method call must be (ident, methodname, args, kwds)');
      r = await callMethod(s, key, ident, method, args, kwds);
    } catch (e) {
      r = ['#TRACEBACK', traceback(e)];
    }
    sendReply(conn, s, r, reached);
  }
}
