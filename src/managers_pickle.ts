// Python's own manager protocol (`serializer: 'pickle'`), to use a CPython manager from Node
// and to serve CPython clients from a Node manager (CPython's multiprocessing/managers.py:
// dispatch, Server.handle_request, serve_client, Token, RebuildProxy). The names, Tokens and
// proxies as pickles and the client side are here; the serving is in managers_pickle_server.ts.
//
// The wire, as CPython speaks it: every message is a pickle in CPython's framing, after the
// usual authentication handshake (nothing is unpickled before it succeeds).
//   - A server method (create, incref, decref, get_methods, dummy, shutdown, debug_info,
//     number_of_objects) is ONE connection: request `(None, name, args, kwds)`, reply
//     `(kind, value)`, close.
//   - Method calls go over a connection opened by `(None, 'accept_connection', (name,), {})`
//     (a thread of the server in CPython): requests `(ident, methodname, args, kwds)`, one
//     reply `(kind, value)` each, in order. kind: '#RETURN', '#ERROR' (a pickled exception),
//     '#TRACEBACK' (a text), '#PROXY' (`(exposed, Token)`), '#UNSERIALIZABLE'.
//   - A Token pickles as `multiprocessing.managers.Token` (NEWOBJ, BUILD (typeid, address,
//     id)); a proxy as `RebuildProxy(ProxyClass, token, 'pickle', kwds)`.
// Method names are Python's on the wire and the library's in Node (getItem <-> __getitem__,
// putNowait <-> put_nowait...: TO_PY below).
//
// The client side here (PickleChannel) pipelines calls on one connection in order; calls
// that may block in the server (a Queue's get, an Event's wait...) each take a connection of
// their own (a thread of CPython's), so that a pending `get` does not hold up the `put` that
// would satisfy it.
import { networkInterfaces } from 'node:os';
import { inspect } from 'node:util';
import { threadId } from 'node:worker_threads';
import { _connectSync, Client, type Address, type Connection } from './connection.js';
import { ManagerGoneError, pythonErrorClass, UnpicklingError } from './errors.js';
import { _setChannel, callTimedOut, unwrap, withLimits, type CallOptions, type Channel, type Finish, type RawReply } from './managers_client.js';
import {
  AutoProxy, BaseProxy, DictProxy, ListProxy, NamespaceProxy, ArrayProxy, Token, typeidProxyTypes, ValueProxy,
  type ProxyOptions, type ProxyType,
} from './managers_proxy.js';
import {
  AcquirerProxy, BarrierProxy, ConditionProxy, EventProxy, IteratorProxy, PoolProxy, SemaphoreProxy,
} from './managers_sync.js';
import { dumps, loads, Tuple } from './pickle.js';
import { isPlainObject, pyReduce, pySetState, type PyReduced } from './pickle_common.js';
import { _withGlobals, globalKey, PyGlobal, type GlobalDef } from './pickle_globals.js';
import { currentProcess } from './process.js';
import { timeoutSeconds } from './timeouts.js';
import { atExit } from './util.js';
import * as reactor from './wait.js';

const MODULE = 'multiprocessing.managers';

// ---- names ----------------------------------------------------------------------------

/** The library's method names -> Python's (the others are the same in both). */
const TO_PY: Record<string, string> = {
  getItem: '__getitem__', setItem: '__setitem__', delItem: '__delitem__', contains: '__contains__', len: '__len__',
  add: '__add__', mul: '__mul__', imul: '__imul__', iadd: 'extend', reversed: '__reversed__',
  putNowait: 'put_nowait', getNowait: 'get_nowait', taskDone: 'task_done', isSet: 'is_set', notifyAll: 'notify_all',
  applyAsync: 'apply_async', mapAsync: 'map_async', starmapAsync: 'starmap_async', imapUnordered: 'imap_unordered',
  next: '__next__', return: 'close',
};
/** Python's names -> the library's (not `extend` and `close`, which are also names of their own). */
const FROM_PY: Record<string, string> = Object.fromEntries(
  Object.entries(TO_PY).filter(([ours]) => ours !== 'iadd' && ours !== 'return').map(([ours, py]) => [py, ours]),
);

/** A method name as Python has it. @internal */
export function toPyName(name: string): string {
  return Object.hasOwn(TO_PY, name) ? TO_PY[name] : name;
}
/** A method name as the library has it. @internal */
export function fromPyName(name: string): string {
  return Object.hasOwn(FROM_PY, name) ? FROM_PY[name] : name;
}

function exposedFromPy(exposed: unknown): string[] | null {
  return Array.isArray(exposed) ? exposed.map((n) => fromPyName(String(n))) : null;
}

/** Options objects that become Python's keyword arguments, per method: our key -> Python's. @internal */
export const METHOD_OPTIONS: Record<string, Record<string, string>> = {
  put: { block: 'block', timeout: 'timeout' }, get: { block: 'block', timeout: 'timeout' },
  acquire: { block: 'blocking', timeout: 'timeout' }, wait: { timeout: 'timeout' }, sort: { reverse: 'reverse' },
  notify: { n: 'n' }, release: { n: 'n' },
};
/** Typeids whose `create` takes keyword arguments as an options object (`*`: any key). */
const CREATE_OPTIONS: Record<string, Record<string, string> | '*'> = {
  Namespace: '*', Queue: { maxsize: 'maxsize' }, JoinableQueue: { maxsize: 'maxsize' }, Semaphore: { value: 'value' },
  BoundedSemaphore: { value: 'value' }, Condition: { lock: 'lock' }, Barrier: { action: 'action', timeout: 'timeout' },
};
/** Typeids holding plain data: their arguments are never options. */
const DATA_TYPEIDS = new Set(['dict', 'list', 'Value', 'Array']);

/** `args` with a trailing options object turned into Python's keyword arguments (renamed by `keys`). */
function splitOptions(args: unknown[], keys: Record<string, string> | '*' | undefined): [unknown[], Record<string, unknown>] {
  const last = args[args.length - 1];
  if (keys === undefined || typeof last !== 'object' || last === null || !isPlainObject(last)) return [args, {}];
  const names = Object.keys(last);
  if (keys !== '*' && (names.length === 0 || !names.every((k) => Object.hasOwn(keys, k)))) return [args, {}];
  const kwds: Record<string, unknown> = {};
  for (const k of names) if ((last as Record<string, unknown>)[k] !== undefined) kwds[keys === '*' ? k : keys[k]] = (last as Record<string, unknown>)[k];
  return [args.slice(0, -1), kwds];
}

/** Methods that may wait in the server (they get a connection of their own), by typeid. */
const BLOCKING: Record<string, ReadonlySet<string>> = {
  Queue: new Set(['get', 'put', 'join']), JoinableQueue: new Set(['get', 'put', 'join']), Event: new Set(['wait']),
  Lock: new Set(['acquire']), Semaphore: new Set(['acquire']), BoundedSemaphore: new Set(['acquire']), Barrier: new Set(['wait']),
  Pool: new Set(['apply', 'map', 'starmap', 'join']), AsyncResult: new Set(['get', 'wait']), Iterator: new Set(['__next__']),
};

// ---- Token and proxies as pickles ------------------------------------------------------

/** An address as Python has it: a path, or a `(host, port)` tuple (compared by value there). */
function pyAddress(address: Address): string | Tuple<unknown> {
  return typeof address === 'string' ? address : new Tuple<unknown>(address[0], address[1]);
}

const LOCAL_HOSTS = new Set(['', 'localhost', '127.0.0.1', '0.0.0.0', '::1', '::']);
const WILDCARD_HOSTS = new Set(['', '0.0.0.0', '::']);

let hostAddresses: Set<string> | null = null;
/** Whether `host` names this machine: a loopback or wildcard name, or an address of one of its interfaces. */
function isThisHost(host: string): boolean {
  if (LOCAL_HOSTS.has(host) || host.startsWith('127.')) return true;
  hostAddresses ??= new Set(Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((i) => i.address)));
  return hostAddresses.has(host);
}

/**
 * Whether a Token's address is the server's own: a client may have reached it by another
 * local name, and a server on every interface by any address of this machine.
 */
function isOwnAddress(a: Address, own: Address): boolean {
  if (typeof a === 'string' || typeof own === 'string') return a === own;
  if (a[1] !== own[1]) return false;
  if (a[0] === own[0] || (LOCAL_HOSTS.has(a[0]) && LOCAL_HOSTS.has(own[0]))) return true;
  return WILDCARD_HOSTS.has(own[0]) && isThisHost(a[0]);
}

/** Who a message is written for: a server's own Tokens carry the address this client reached it at. @internal */
export interface Writing {
  /** The server's address (what its own Tokens may say). */
  own: Address;
  /** The address the client connected to. */
  reached: Address;
}
let writing: Writing | null = null;

/** A reply of a server to one client: its own Tokens name the address that client reached it at. @internal */
export function dumpMessage(msg: unknown, w: Writing): Buffer {
  const before = writing;
  writing = w;
  try {
    return dumps(msg);
  } finally {
    writing = before;
  }
}

// Python's Token: `Token.__new__(Token)` then `__setstate__((typeid, address, id))`.
Object.defineProperty(Token.prototype, pyReduce, {
  value(this: Token): PyReduced {
    const address = writing !== null && isOwnAddress(this.address, writing.own) ? writing.reached : this.address;
    return { module: MODULE, name: 'Token', args: [], newobj: true, state: new Tuple<unknown>(this.typeid, pyAddress(address), this.id) };
  },
});
Object.defineProperty(Token.prototype, pySetState, {
  value(this: Token, state: unknown): void {
    if (!Array.isArray(state) || state.length !== 3 || typeof state[0] !== 'string' || typeof state[2] !== 'string') {
      throw new UnpicklingError('a Token state must be (typeid, address, id)');
    }
    const address = typeof state[1] === 'string' ? state[1] : Array.isArray(state[1]) && state[1].length === 2 ? [String(state[1][0]), Number(state[1][1])] as const : null;
    if (address === null) throw new UnpicklingError('a Token address must be a path or (host, port)');
    Object.assign(this, { typeid: state[0], address, id: state[2], sid: null });
  },
});

/** The library's proxy classes -> Python's proxy class names (others go as AutoProxy). */
const PY_PROXY_NAMES = new Map<Function, string>([
  [DictProxy, 'DictProxy'], [ListProxy, 'ListProxy'], [ValueProxy, 'ValueProxy'], [NamespaceProxy, 'NamespaceProxy'],
  [ArrayProxy, 'ArrayProxy'], [IteratorProxy, 'IteratorProxy'], [AcquirerProxy, 'AcquirerProxy'],
  [SemaphoreProxy, 'AcquirerProxy'], [ConditionProxy, 'ConditionProxy'], [EventProxy, 'EventProxy'],
  [BarrierProxy, 'BarrierProxy'], [PoolProxy, 'PoolProxy'],
]);
/** Python's proxy class names -> the library's classes. */
const PROXY_CLASSES: Record<string, ProxyType> = {
  DictProxy, ListProxy, BaseListProxy: ListProxy, ValueProxy, NamespaceProxy, ArrayProxy, IteratorProxy, AcquirerProxy,
  ConditionProxy, EventProxy, BarrierProxy, PoolProxy, BasePoolProxy: PoolProxy,
};

/** A global of Python's as a value (a proxy class in RebuildProxy's arguments). */
class PyRef {
  constructor(readonly name: string) {}
  [pyReduce](): PyReduced {
    return { module: MODULE, name: this.name, args: null };
  }
}

// A proxy pickles as `RebuildProxy(cls, token, 'pickle', kwds)` (BaseProxy.__reduce__).
Object.defineProperty(BaseProxy.prototype, pyReduce, {
  value(this: BaseProxy): PyReduced {
    const cls = PY_PROXY_NAMES.get(this.constructor);
    const exposed = this._exposed_;
    const kwds: Record<string, unknown> = {};
    if (!cls) kwds.exposed = Tuple.from((exposed ?? []).map(toPyName));
    return { module: MODULE, name: 'RebuildProxy', args: [new PyRef(cls ?? 'AutoProxy'), this._token, 'pickle', kwds] };
  },
});

/** Who is reading a message: the authkey its proxies use, and the local server if any. @internal */
export interface Reading {
  authkey: Uint8Array;
  server: { address: Address; sid: string } | null;
  /** The address the message came from (a client's channel). */
  from?: Address;
}
let reading: Reading | null = null;

function rebuildProxy(args: unknown[]): BaseProxy {
  const [func, token, , kwds] = args;
  const r = reading;
  if (!r) throw new UnpicklingError('a manager proxy can only be read from a manager connection');
  if (!(func instanceof PyGlobal) || !(token instanceof Token) || typeof token.id !== 'string') throw new UnpicklingError('RebuildProxy() arguments not understood here');
  const options = (kwds && typeof kwds === 'object' && !(kwds instanceof Map) ? kwds : {}) as Record<string, unknown>;
  let type: ProxyType = PROXY_CLASSES[func.name] ?? AutoProxy;
  if (func.name === 'AutoProxy') type = typeidProxyTypes.get(token.typeid) ?? AutoProxy;
  const exposed = exposedFromPy(options.exposed);
  let sid: string | null = null;
  let address = token.address;
  // A server listening on every interface names itself ('0.0.0.0', port): the address it was reached at.
  if (r.from && typeof address !== 'string' && typeof r.from !== 'string' && WILDCARD_HOSTS.has(address[0]) && address[1] === r.from[1]) address = r.from;
  if (r.server && isOwnAddress(address, r.server.address)) sid = r.server.sid;
  else learn(pickleChannel(address, r.authkey), token.id, token.typeid);
  const tok = new Token(token.typeid, address, token.id, sid);
  const opts: ProxyOptions = { authkey: r.authkey, exposed, incref: true, sid };
  return type === AutoProxy ? AutoProxy(tok, opts) : new (type as new (t: Token, o: ProxyOptions) => BaseProxy)(tok, opts);
}

/** Python's `slice(start, stop, step)` (a list proxy's `l[1:3]`), as a manager's messages carry it. @internal */
export class PySlice {
  constructor(readonly start: number | null, readonly stop: number | null, readonly step: number | null) {}
  /** Python's `slice.indices(length)`: the indices it selects in a sequence of `length` items. */
  indices(length: number): number[] {
    const step = this.step ?? 1;
    if (step === 0) throw new (pythonErrorClass('ValueError'))('slice step cannot be zero');
    const clamp = (v: number | null, dflt: number, lo: number, hi: number): number => {
      if (v === null) return dflt;
      const x = v < 0 ? v + length : v;
      return Math.min(Math.max(x, lo), hi);
    };
    const out: number[] = [];
    if (step > 0) {
      for (let i = clamp(this.start, 0, 0, length), stop = clamp(this.stop, length, 0, length); i < stop; i += step) out.push(i);
    } else {
      for (let i = clamp(this.start, length - 1, -1, length - 1), stop = clamp(this.stop, -1, -1, length - 1); i > stop; i += step) out.push(i);
    }
    return out;
  }
  [pyReduce](): PyReduced {
    return { module: 'builtins', name: 'slice', args: [this.start, this.stop, this.step] };
  }
}

function sliceArg(v: unknown): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  throw new UnpicklingError('slice indices must be integers or None here');
}

/** The globals a manager's messages may name (besides pickle's fixed list). */
const GLOBALS = new Map<string, GlobalDef>([
  [globalKey('builtins', 'slice'), { call: (a) => new PySlice(sliceArg(a[0]), sliceArg(a.length > 1 ? a[1] : null), sliceArg(a.length > 2 ? a[2] : null)) }],
  [globalKey(MODULE, 'Token'), { newobj: () => Object.create(Token.prototype) as Token }],
  [globalKey(MODULE, 'RebuildProxy'), { call: rebuildProxy }],
  [globalKey(MODULE, 'AutoProxy'), {}],
  ...Object.keys(PROXY_CLASSES).map((name): [string, GlobalDef] => [globalKey(MODULE, name), {}]),
]);

/** A message of a manager connection: a pickle that may hold Tokens and proxies. @internal */
export function loadMessage(data: Uint8Array, r: Reading): unknown {
  const before = reading;
  reading = r;
  try {
    return _withGlobals(GLOBALS, () => loads(data));
  } finally {
    reading = before;
  }
}

/** A `(kind, value)` reply or a request, as its Array. @internal */
export function asArray(msg: unknown, n: number, what: string): unknown[] {
  if (!Array.isArray(msg) || msg.length !== n) throw new UnpicklingError(`a manager ${what} must be a ${n}-tuple, not ${inspect(msg, { depth: 1 })}`);
  return msg;
}

// ---- the client side -------------------------------------------------------------------

interface Waiter {
  resolve(r: RawReply): void;
  reject(e: unknown): void;
  method: string;
}

/** The name CPython's server gives the thread serving a connection. */
function connectionName(): string {
  const name = currentProcess().name;
  return threadId === 0 ? name : `${name}|Thread-${threadId}`;
}

function learn(channel: Channel, ident: string, typeid: string): void {
  if (channel instanceof PickleChannel) channel.typeids.set(ident, typeid);
}

/** A method's reply, as the library's proxies expect it. */
function callReply(channel: PickleChannel, method: string, msg: unknown): RawReply {
  const [kind, value] = asArray(msg, 2, 'reply') as [string, unknown];
  if (method === 'next') {
    if (kind === '#RETURN') return ['#RETURN', { done: false, value }];
    if (kind === '#ERROR' && (value as Error)?.name === 'StopIteration') return ['#RETURN', { done: true, value: undefined }];
  }
  // Python's iterators of a dict have no close(): stopping early is then nothing to do.
  if (method === 'return') return ['#RETURN', null];
  if (kind === '#PROXY') {
    const [exposed, token] = asArray(value, 2, '#PROXY value');
    if (!(token instanceof Token) || typeof token.id !== 'string') throw new UnpicklingError('a #PROXY reply must hold a Token');
    channel.typeids.set(token.id, token.typeid);
    channel._adopted(token.id);
    return ['#PROXY', { exposed: exposedFromPy(exposed), typeid: token.typeid, id: token.id, sid: null }];
  }
  if (kind === '#UNSERIALIZABLE') return ['#TRACEBACK', `Unserializable message: ${String(value)}`];
  if (kind === '#RETURN' || kind === '#ERROR' || kind === '#TRACEBACK') return [kind, value];
  return ['#TRACEBACK', `ValueError: Unrecognized message type ${inspect(kind)}`];
}

/**
 * The channel to a manager speaking Python's protocol (CPython's, or a Node manager with
 * `serializer: 'pickle'`): what the proxies of a `serializer: 'pickle'` manager call through.
 */
class PickleChannel implements Channel {
  readonly typeids = new Map<string, string>();
  #address: Address;
  #authkey: Uint8Array;
  #gone: Error | null = null;
  #main: Connection | null = null;
  #opening: Promise<Connection> | null = null;
  #fifo: Waiter[] = [];
  #pumping = false;
  #stopPump: AbortController | null = null;
  /** The last call sent on the main connection (a call on a connection of its own waits for it). */
  #last: Promise<unknown> = Promise.resolve();
  /** Connections of their own (already accepted), free. */
  #idle: Connection[] = [];
  /** The last call of each (ident, method) on connections of their own, so that they keep their order. */
  #sideChains = new Map<string, Promise<unknown>>();
  /** References this process holds (given back at exit, as CPython's proxies' finalizers do). */
  #held = new Map<string, number>();

  constructor(address: Address, authkey: Uint8Array) {
    this.#address = address;
    this.#authkey = authkey;
    atExit(() => this.#giveBack(), 10);
  }

  #hold(ident: string, n: number): void {
    const left = (this.#held.get(ident) ?? 0) + n;
    if (left > 0) this.#held.set(ident, left);
    else this.#held.delete(ident);
  }

  /** At exit: the references still held go back to the server (one request each, as in CPython). */
  #giveBack(): void {
    for (const c of this.#idle.splice(0)) c.close();
    this.#main?.close();
    this.#main = null;
    for (const [ident, n] of [...this.#held]) {
      for (let i = 0; i < n && !this.#gone; i++) {
        try {
          this.#serverCallSync('decref', [ident]);
        } catch {
          // The server is gone: nothing to give back.
          this.#gone ??= new Error('gone');
        }
      }
    }
    this.#held.clear();
  }

  get gone(): boolean {
    return this.#gone !== null;
  }

  /** A `#PROXY` reply: the server counted a reference that the proxy made of it adopts. */
  _adopted(ident: string): void {
    this.#hold(ident, 1);
  }

  #reading(): Reading {
    return { authkey: this.#authkey, server: null, from: this.#address };
  }

  #goneError(cause: unknown): Error {
    if (cause instanceof Error && (cause.name === 'AuthenticationError' || cause instanceof ManagerGoneError)) return cause;
    const e = new ManagerGoneError(`the manager at ${inspect(this.#address)} has gone (its process ended or the connection broke)`);
    (e as Error).cause = cause;
    return e;
  }

  #send(c: Connection, msg: unknown): void {
    c.sendBytes(dumps(msg));
  }

  async #connect(): Promise<Connection> {
    try {
      return await Client(this.#address, { authkey: Buffer.from(this.#authkey) });
    } catch (e) {
      throw this.#goneError(e);
    }
  }

  #connectSync(): Connection {
    try {
      return _connectSync(this.#address, this.#authkey);
    } catch (e) {
      throw this.#goneError(e);
    }
  }

  /** A connection for method calls (Python's `BaseProxy._connect`). */
  async #accepted(): Promise<Connection> {
    const c = await this.#connect();
    try {
      this.#send(c, new Tuple<unknown>(null, 'accept_connection', new Tuple(connectionName()), {}));
      unwrap(callReply(this, 'accept_connection', loadMessage(await c.recvBytes(), this.#reading())));
    } catch (e) {
      c.close();
      throw this.#goneError(e);
    }
    return c;
  }

  #acceptedSync(): Connection {
    const c = this.#connectSync();
    try {
      this.#send(c, new Tuple<unknown>(null, 'accept_connection', new Tuple(connectionName()), {}));
      unwrap(callReply(this, 'accept_connection', loadMessage(c.recvBytesSync(), this.#reading())));
    } catch (e) {
      c.close();
      throw this.#goneError(e);
    }
    return c;
  }

  #die(cause: unknown): void {
    this.#gone = cause instanceof Error ? cause : new Error(String(cause));
    this.#main?.close();
    this.#main = null;
    this.#opening = null;
    this.#stopPump?.abort();
    const err = this.#goneError(cause);
    for (const w of this.#fifo.splice(0)) w.reject(err);
  }

  // -- the server's methods: one connection each (CPython's `dispatch`)

  #serverRequest(method: string, args: unknown[]): unknown {
    let kwds: Record<string, unknown> = {};
    if (method === 'create') {
      const typeid = String(args[0]);
      [args, kwds] = splitOptions(args, CREATE_OPTIONS[typeid]);
    } else if (method === 'get_methods') {
      const id = String(args[0]);
      args = [new Token(this.typeids.get(id) ?? '', this.#address, id)];
    }
    return new Tuple<unknown>(null, method, Tuple.from(args), kwds);
  }

  #serverReply(method: string, args: unknown[], msg: unknown): RawReply {
    const r = callReply(this, method, msg);
    if (r[0] !== '#RETURN') return r;
    if (method === 'create') {
      const [ident, exposed] = asArray(r[1], 2, 'create result') as [string, unknown];
      this.typeids.set(ident, String(args[0]));
      this.#hold(ident, 1);
      return ['#RETURN', [ident, exposedFromPy(exposed), null]];
    }
    if (method === 'get_methods') return ['#RETURN', exposedFromPy(r[1])];
    if (method === 'incref') this.#hold(String(args[0]), 1);
    else if (method === 'decref') this.#hold(String(args[0]), -1);
    return r;
  }

  async #serverCall(method: string, args: unknown[]): Promise<RawReply> {
    const req = this.#serverRequest(method, args);
    const c = await this.#connect();
    try {
      this.#send(c, req);
      const r = this.#serverReply(method, args, loadMessage(await c.recvBytes(), this.#reading()));
      this.#gone = null;
      return r;
    } catch (e) {
      if (e instanceof Error && (e.name === 'EOFError' || e.name === 'OSError')) throw this.#goneError(e);
      throw e;
    } finally {
      c.close();
    }
  }

  #serverCallSync(method: string, args: unknown[]): RawReply {
    const req = this.#serverRequest(method, args);
    const c = this.#connectSync();
    try {
      this.#send(c, req);
      return this.#serverReply(method, args, loadMessage(c.recvBytesSync(), this.#reading()));
    } catch (e) {
      if (e instanceof Error && (e.name === 'EOFError' || e.name === 'OSError')) throw this.#goneError(e);
      throw e;
    } finally {
      c.close();
    }
  }

  // -- method calls

  #request(ident: string, method: string, args: unknown[]): [msg: unknown, blocking: boolean] {
    const typeid = this.typeids.get(ident);
    const py = toPyName(method);
    let kwds: Record<string, unknown> = {};
    if (!DATA_TYPEIDS.has(typeid ?? '') || method === 'sort') [args, kwds] = splitOptions(args, METHOD_OPTIONS[method]);
    if (typeid === 'Barrier' && py === '__getattribute__' && args[0] === 'nWaiting') args = ['n_waiting'];
    const blocking = typeid !== undefined && (BLOCKING[typeid]?.has(py) ?? false);
    return [new Tuple<unknown>(ident, py, Tuple.from(args), kwds), blocking];
  }

  #openMain(): Promise<Connection> {
    // The first callback set: #main is there before the callers' own run.
    this.#opening ??= this.#accepted().then((c) => {
      this.#main = c;
      return c;
    }, (e) => {
      this.#opening = null;
      throw e;
    });
    return this.#opening;
  }

  #mainCall(msg: unknown, method: string): Promise<RawReply> {
    const p = new Promise<RawReply>((resolve, reject) => {
      const w: Waiter = { resolve, reject, method };
      const go = (c: Connection): void => {
        if (this.#main !== c) {
          reject(this.#goneError(this.#gone));
          return;
        }
        try {
          this.#send(c, msg);
        } catch (e) {
          if (e instanceof Error && (e.name === 'OSError' || e.name === 'EOFError')) {
            this.#die(e);
            reject(this.#goneError(e));
          } else reject(e);
          return;
        }
        this.#fifo.push(w);
        if (!this.#pumping) void this.#pump();
      };
      if (this.#main) go(this.#main);
      else this.#openMain().then(go, reject);
    });
    this.#last = p.catch(() => {});
    return p;
  }

  /** Read the main connection's replies while calls wait for them. */
  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#fifo.length > 0 && this.#main) {
        const c = this.#main;
        if (!c.pollSync(0)) {
          const stop = (this.#stopPump = new AbortController());
          await reactor.readable(c.fileno(), null, stop.signal);
          this.#stopPump = null;
          continue;
        }
        const msg = loadMessage(c.recvBytesSync(), this.#reading());
        const w = this.#fifo.shift()!;
        try {
          w.resolve(callReply(this, w.method, msg));
        } catch (e) {
          w.reject(e);
        }
      }
    } catch (e) {
      this.#die(e);
    } finally {
      this.#pumping = false;
    }
  }

  #mainCallSync(msg: unknown, method: string): RawReply {
    const c = this.#main ?? (this.#main = this.#acceptedSync());
    let mine: RawReply | null = null;
    let failed: { e: unknown } | null = null;
    const w: Waiter = { resolve: (r) => (mine = r), reject: (e) => (failed = { e }), method };
    try {
      this.#send(c, msg);
    } catch (e) {
      if (e instanceof Error && (e.name === 'OSError' || e.name === 'EOFError')) {
        this.#die(e);
        throw this.#goneError(e);
      }
      throw e;
    }
    this.#fifo.push(w);
    while (mine === null && failed === null) {
      let reply: unknown;
      try {
        reply = loadMessage(c.recvBytesSync(), this.#reading());
      } catch (e) {
        if (e instanceof Error && (e.name === 'OSError' || e.name === 'EOFError')) {
          this.#die(e);
          throw this.#goneError(e);
        }
        // A reply that cannot be read: that call's error; the others keep their order.
        this.#fifo.shift()!.reject(e);
        continue;
      }
      const next = this.#fifo.shift()!;
      try {
        next.resolve(callReply(this, next.method, reply));
      } catch (e) {
        next.reject(e);
      }
    }
    if (this.#fifo.length === 0) this.#stopPump?.abort();
    if (failed !== null) throw (failed as { e: unknown }).e;
    return mine!;
  }

  #release(c: Connection): void {
    if (this.#idle.length < 4) this.#idle.push(c);
    else c.close();
  }

  /** A call that may wait in the server, on a connection of its own (after the calls sent before it). */
  #sideCall(ident: string, msg: unknown, method: string): Promise<RawReply> {
    const key = `${ident}\0${method}`;
    const after = Promise.all([this.#last, this.#sideChains.get(key)]);
    const p = after.then(async () => {
      const c = this.#idle.pop() ?? (await this.#accepted());
      let ok = false;
      try {
        this.#send(c, msg);
        const r = callReply(this, method, loadMessage(await c.recvBytes(), this.#reading()));
        ok = true;
        return r;
      } catch (e) {
        if (e instanceof Error && (e.name === 'OSError' || e.name === 'EOFError')) throw this.#goneError(e);
        throw e;
      } finally {
        if (ok) this.#release(c);
        else c.close();
      }
    });
    const chained = p.catch(() => {});
    this.#sideChains.set(key, chained);
    void chained.then(() => {
      if (this.#sideChains.get(key) === chained) this.#sideChains.delete(key);
    });
    return p;
  }

  #sideCallSync(msg: unknown, method: string, seconds: number | null = null): RawReply {
    const c = this.#idle.pop() ?? this.#acceptedSync();
    let ok = false;
    try {
      this.#send(c, msg);
      if (seconds !== null && !c.pollSync(seconds)) {
        throw callTimedOut(method, seconds);
      }
      const r = callReply(this, method, loadMessage(c.recvBytesSync(), this.#reading()));
      ok = true;
      return r;
    } catch (e) {
      if (e instanceof Error && (e.name === 'OSError' || e.name === 'EOFError')) throw this.#goneError(e);
      throw e;
    } finally {
      if (ok) this.#release(c);
      else c.close();
    }
  }

  /**
   * A call; with `limits`, an abandoned call's reply still comes in its turn (Python's
   * protocol answers in order) and is dropped then.
   */
  call(ident: string | null, method: string, args: unknown[], finish: Finish | null = null, limits: CallOptions | null = null): Promise<any> {
    let p: Promise<RawReply>;
    try {
      if (limits?.signal?.aborted) throw limits.signal.reason;
      if (ident === null) p = this.#serverCall(method, args);
      else {
        const [msg, blocking] = this.#request(ident, method, args);
        p = blocking ? this.#sideCall(ident, msg, method) : this.#mainCall(msg, method);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    return withLimits(finish ? p.then((r) => finish(r[0], r[1])) : p, method, limits);
  }

  /**
   * A blocking call; with a timeout it goes on a connection of its own (a late reply on the
   * main connection would be taken for the next call's), closed when the time runs out.
   */
  callSync(ident: string | null, method: string, args: unknown[], limits: CallOptions | null = null): RawReply {
    if (limits?.signal?.aborted) throw limits.signal.reason;
    const seconds = limits === null ? null : timeoutSeconds(limits.timeout);
    if (ident === null) return this.#serverCallSync(method, args);
    const [msg, blocking] = this.#request(ident, method, args);
    // While the main connection is being opened, a blocking call cannot wait for it: one of its own.
    if (blocking || seconds !== null || (this.#main === null && this.#opening !== null)) return this.#sideCallSync(msg, method, seconds);
    return this.#mainCallSync(msg, method);
  }

  notify(ident: string | null, method: string, args: unknown[]): void {
    // The library's own bookkeeping of proxies in transit has no counterpart in Python's protocol.
    if (ident === null && (method === 'transit' || method === 'claim')) return;
    void this.call(ident, method, args).catch(() => {});
  }

  decref(ident: string): void {
    if (this.#gone) return;
    void this.#serverCall('decref', [ident]).catch(() => {});
  }
}

const channels = new Map<string, PickleChannel>();

/** The channel to the manager speaking Python's protocol at `address` (made on first use). @internal */
export function pickleChannel(address: Address, authkey: Uint8Array): Channel {
  const key = `${typeof address === 'string' ? address : `${address[0]}:${address[1]}`}\0${Buffer.from(authkey).toString('hex')}`;
  let c = channels.get(key);
  if (!c) {
    c = new PickleChannel(address, authkey);
    channels.set(key, c);
    _setChannel(address, authkey, c);
  }
  return c;
}
