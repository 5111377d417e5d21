// The manager's server (Python's multiprocessing.managers.Server): the table of managed
// objects and the dispatch of their clients' requests. It runs in the manager's process
// (started by BaseManager.start) or in any process that calls getServer().serveForever().
import { randomBytes } from 'node:crypto';
import { threadId } from 'node:worker_threads';
import { inspect } from 'node:util';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { Listener, type Address, type Connection } from './connection.js';
import { RemoteError } from './errors.js';
import { dictMethods, listMethods, pyRepr, ArrayHolder, DICT_EXPOSED, LIST_EXPOSED } from './managers_builtins.js';
import { _callerGone, callerStorage } from './managers_caller.js';
import { registerLocalServer, type LocalServer, type RawReply } from './managers_client.js';
// Proxies arrive inside requests (nested objects), decoded synchronously: their kind must be registered.
import './managers_proxy.js';
import { servePickleConnection, type PickleServing } from './managers_pickle_server.js';
import { Backoff, newSegment, ShmLink } from './managers_shm.js';
import { dialectFor, unflatten, v8Dialect, type Dialect, type ManagerSerializer, type Reply, type ReplyKind } from './managers_wire.js';
import * as reactor from './wait.js';
import { debug, info } from './util.js';

/** What the server knows of a typeid (the callable side of `register`). */
export interface TypeSpec {
  /** Makes the referent: a class (called with `new`) or a function (its result, awaited). */
  callable: Function | null;
  /** The method names clients may call (null: the object's public methods). */
  exposed: string[] | null;
  /** Methods whose results are managed objects of these typeids (returned as proxies). */
  methodToTypeid: Record<string, string> | null;
}
/** typeid -> its spec (what a manager's `register` calls recorded). */
export type ServerRegistry = Record<string, TypeSpec>;

interface Entry {
  obj: unknown;
  typeid: string;
  exposed: string[] | null;
  exposedSet: Set<string> | null;
  methodToTypeid: Record<string, string> | null;
  refcount: number;
  /**
   * A dict's or list's method table (methods taking the referent first), else null. A Map: a
   * property lookup by name is specialized by the optimizing compiler to the names seen so far,
   * and deoptimized by the next method called.
   */
  table: Map<string, Function> | null;
}

/** One client connection (or this process's own proxies): the references it holds. */
interface Peer {
  key: string;
  conn: Connection | null;
  refs: Map<string, number>;
  /** Replies to send, three fields each (id, kind, value). */
  out: unknown[];
  flushQueued: boolean;
  /** When the next request is waited for by a quick poll, or through the reactor at once (see #serveClient). */
  quick: Backoff;
  /** When a wait spins first, or sleeps at once (after spins missed). */
  spins: Backoff;
  /** The shared-memory channel of a local client (see managers_shm.ts), once its hello is answered. */
  link: ShmLink | null;
  /** The channel made by hello, used once the hello reply has gone on the socket. */
  linkSoon: ShmLink | null;
}

const dictTable = new Map<string, Function>(Object.entries(dictMethods));
const listTable = new Map<string, Function>(Object.entries(listMethods));

/** Seconds the server waits on one client's connection for its next request before going back to the event loop. */
const QUICK_WAIT = 0.0001;
/** After a quick poll missed, this many requests go through the reactor before the next try. */
const QUICK_PAUSE = 8;
/** Shared-memory channel: microseconds the server spins for a client's next batch before it sleeps. */
const SHM_SPIN_US = 30;
/** Seconds the server waits (blocking) for the next batch of its only client before it sleeps through the reactor. */
const SHM_SOLE_WAIT = 0.002;
/** Batches taken without a turn of the event loop before it gets one (timers, other objects' I/O). */
const STREAK = 64;
/** Replies per batch on the shared-memory channel. */
const SHM_CHUNK = 256;

function isClass(fn: Function): boolean {
  return /^class\b/.test(Function.prototype.toString.call(fn));
}

/** The public methods of an object (Python's `public_methods`): functions not starting with `_`. */
function publicMethods(obj: unknown): string[] {
  if (obj instanceof Map) return DICT_EXPOSED;
  if (Array.isArray(obj)) return LIST_EXPOSED;
  const names = new Set<string>();
  for (let o = obj as object | null; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    for (const k of Object.getOwnPropertyNames(o)) {
      if (k === 'constructor' || k.startsWith('_')) continue;
      const d = Object.getOwnPropertyDescriptor(o, k);
      if (d && typeof d.value === 'function') names.add(k);
    }
  }
  return [...names];
}

let gcFn: (() => void) | null | undefined;
/** A full collection, so that proxies the referents dropped are finalized (introspection only). */
function collect(): void {
  if (gcFn === undefined) {
    try {
      v8.setFlagsFromString('--expose-gc');
      gcFn = vm.runInNewContext('gc') as () => void;
    } catch {
      gcFn = null;
    }
  }
  gcFn?.();
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * Python's `multiprocessing.managers.Server`: serves the objects of a manager's registry to
 * authenticated clients. Made by `manager.getServer()`; `await server.serveForever()` runs
 * it until a client calls `shutdown()` (Python's `serve_forever`).
 */
export class Server {
  /** The registry it serves (typeid -> callable, exposed, methodToTypeid). @internal */
  readonly registry: ServerRegistry;
  /** A random id: proxies rebuilt in this process talk to this server directly. @internal */
  readonly sid = randomBytes(8).toString('hex');
  #listener: Listener;
  #dialect: Dialect;
  #objects = new Map<string, Entry>();
  #peers = new Set<Peer>();
  /** Proxies in transit: key -> sent (the sender's hold counted) or claimed (the receiver came first). */
  #transits = new Map<string, { ident: string; state: 'held' | 'claimed' }>();
  #nextId = 1;
  #stopped = false;
  #stop!: () => void;
  #done: Promise<void>;
  /** This process's own proxies of this server's objects (nested in managed objects). */
  #self: Peer;
  #serving = false;
  /** With `serializer: 'pickle'`: how Python's clients are served (managers_pickle.ts). */
  #pickle: PickleServing | null = null;
  /** The connections of Python's clients being served. */
  #pyConns = new Set<Connection>();

  /** `new Server(registry, address, authkey, serializer)`, as Python's; usually made by `getServer()`. */
  constructor(registry: ServerRegistry, address: Address | null, authkey: Uint8Array, serializer: ManagerSerializer = 'v8') {
    this.registry = registry;
    this.#dialect = serializer === 'pickle' ? v8Dialect : dialectFor(serializer);
    this.#listener = new Listener(address ?? null, { authkey: Buffer.from(authkey), backlog: 128, handshakeTimeout: 20 });
    this.#done = new Promise<void>((r) => (this.#stop = r));
    this.#self = { key: `${process.pid}:${threadId}`, conn: null, refs: new Map(), out: [], flushQueued: false, quick: new Backoff(QUICK_PAUSE), spins: new Backoff(QUICK_PAUSE), link: null, linkSoon: null };
    const local: LocalServer = {
      sid: this.sid,
      request: (ident, method, args) => this.#local(ident, method, args),
    };
    registerLocalServer(this.sid, local);
    if (serializer === 'pickle') this.#pickle = this.#pickleServing(authkey);
  }

  /**
   * Python's clients: references are counted for all of them together (they incref and
   * decref on connections of their own), each connection calls as its own caller.
   */
  #pickleServing(authkey: Uint8Array): PickleServing {
    const refs = new Map<string, number>();
    const peerOf = (key: string): Peer => ({ key, conn: null, refs, out: [], flushQueued: false, quick: new Backoff(QUICK_PAUSE), spins: new Backoff(QUICK_PAUSE), link: null, linkSoon: null });
    const server = this;
    return {
      get address() {
        return server.address;
      },
      sid: this.sid,
      authkey,
      request: (key, ident, method, args) => {
        try {
          const r = this.#handle(peerOf(key), ident, method, args, null);
          return r instanceof Promise ? r.catch(errorReply) : r;
        } catch (e) {
          return errorReply(e);
        }
      },
      referent: (ident) => this.#objects.get(ident)?.obj,
      adopt: (obj, typeid) => this.#adopt(peerOf('py'), obj, typeid, this.registry[typeid]),
      gone: (key) => _callerGone(key),
    };
  }

  /** The address clients connect to (for `['', port]`, the port bound). */
  get address(): Address {
    return this.#listener.address;
  }

  /**
   * Python's `serve_forever()`: accept clients and serve them until `shutdown` is called
   * (by a client, or `server.shutdown()` here); the Promise settles then.
   */
  async serveForever(): Promise<void> {
    if (!this.#serving) {
      this.#serving = true;
      void this.#acceptLoop();
    }
    return this.#done;
  }

  async #acceptLoop(): Promise<void> {
    while (!this.#stopped) {
      let conn: Connection;
      try {
        conn = await this.#listener.accept();
      } catch (e) {
        if (this.#stopped) break;
        // A failed handshake (wrong key, garbage): that client only.
        debug('manager: refused a connection: %s', (e as Error)?.message ?? e);
        continue;
      }
      if (this.#pickle) {
        // Python's protocol: one request, or one client thread's calls, per connection.
        this.#pyConns.add(conn);
        void servePickleConnection(conn, this.#pickle).finally(() => this.#pyConns.delete(conn));
        continue;
      }
      const peer: Peer = { key: `conn-${this.#peers.size}`, conn, refs: new Map(), out: [], flushQueued: false, quick: new Backoff(QUICK_PAUSE), spins: new Backoff(QUICK_PAUSE), link: null, linkSoon: null };
      this.#peers.add(peer);
      void this.#serveClient(peer);
    }
  }

  async #serveClient(peer: Peer): Promise<void> {
    const conn = peer.conn!;
    try {
      while (!this.#stopped) {
        // A client calling one method after another sends its next request soon after our
        // reply: a short blocking poll takes it without a hop through the reactor thread (after a
        // miss, the next few go through the reactor).
        let msg: unknown;
        if (conn.pollSync(0)) msg = conn.recvSync();
        else if (peer.quick.tryNow() && (conn.pollSync(QUICK_WAIT) || (peer.quick.miss(), false))) {
          peer.quick.hit();
          msg = conn.recvSync();
        } else msg = await conn.recv();
        if (!peer.conn) break;
        for (const r of this.#dialect.requests(msg)) this.#dispatch(peer, r[0], r[1], r[2], r[3], r[4]);
        this.#flush(peer);
        if (peer.linkSoon) {
          // The hello reply went on the socket: from now on, the shared-memory channel.
          peer.link = peer.linkSoon;
          peer.linkSoon = null;
          await this.#serveShm(peer, peer.link);
          break;
        }
      }
    } catch (e) {
      if (!this.#stopped && !(e instanceof Error && e.name === 'EOFError')) debug('manager: client connection failed: %s', (e as Error)?.message ?? e);
    }
    this.#drop(peer);
  }

  /**
   * Serve a local client on its shared-memory channel: take its batches in order, answer each
   * batch at once; between batches spin a little (a client calling one method after another
   * sends its next request soon after our reply), then sleep on its socket (its doorbell, or
   * its end).
   */
  async #serveShm(peer: Peer, link: ShmLink): Promise<void> {
    const conn = peer.conn!;
    let streak = 0;
    // A batch's requests, five fields each (id, ident, method, args, kwds): no array per request.
    const reqs: unknown[] = [];
    while (!this.#stopped && peer.conn) {
      let got = false;
      while (link.take(5, reqs)) {
        got = true;
        for (let i = 0; i < reqs.length; i += 5) this.#dispatch(peer, reqs[i], reqs[i + 1], reqs[i + 2], reqs[i + 3], reqs[i + 4]);
        reqs.length = 0;
        this.#flush(peer);
        if (!peer.conn) return;
      }
      if (got && ++streak < STREAK) continue;
      if (streak >= STREAK) {
        // A client calling without pause must not starve the server's other work.
        streak = 0;
        await new Promise((r) => setImmediate(r));
        continue;
      }
      if (peer.quick.tryNow()) {
        let spun = false;
        if (peer.spins.tryNow()) {
          spun = link.spin(SHM_SPIN_US);
          if (spun) peer.spins.hit();
          else peer.spins.miss();
        }
        // A sole client: wait longer (no other client's requests wait meanwhile; STREAK bounds it).
        if (!spun) link.waitSync(this.#peers.size === 1 ? SHM_SOLE_WAIT : QUICK_WAIT);
        if (link.ready()) {
          peer.quick.hit();
          continue;
        }
        peer.quick.miss();
      }
      if (link.sleepBegin()) {
        streak = 0;
        try {
          await reactor.readable(conn.fileno());
        } finally {
          link.sleepEnd();
        }
      }
      if (!peer.conn) return;
      link.drainSocket();
    }
  }

  /** A client has gone: release every reference it held (Python leaks them). */
  #drop(peer: Peer): void {
    if (!this.#peers.delete(peer)) return;
    peer.conn?.close();
    peer.conn = null;
    peer.link = peer.linkSoon = null;
    for (const [ident, n] of peer.refs) this.#release(ident, n);
    peer.refs.clear();
    _callerGone(peer.key);
  }

  #release(ident: string, n: number): void {
    const e = this.#objects.get(ident);
    if (!e) return;
    e.refcount -= n;
    if (e.refcount <= 0) {
      this.#objects.delete(ident);
      debug('disposing of obj with id %s', ident);
    }
  }

  #addRef(peer: Peer | null, ident: string, n = 1): void {
    const e = this.#objects.get(ident);
    if (!e) throw new RemoteError(`no object with id ${ident} (it was released)`);
    e.refcount += n;
    if (peer) peer.refs.set(ident, (peer.refs.get(ident) ?? 0) + n);
  }

  #dropRef(peer: Peer, ident: string): void {
    const n = peer.refs.get(ident);
    if (!n) return;
    if (n === 1) peer.refs.delete(ident);
    else peer.refs.set(ident, n - 1);
    this.#release(ident, 1);
  }

  /**
   * One request: its reply goes in `peer.out` (or later, when the method returns a Promise).
   * A dict's or list's method called without keywords is the common case, served here
   * without the general path's steps (no `[kind, value]` pair made).
   */
  #dispatch(peer: Peer, id: unknown, ident: unknown, method: unknown, args: unknown, kwds: unknown): void {
    if (typeof id !== 'number' || (ident !== null && typeof ident !== 'string') || typeof method !== 'string' || !Array.isArray(args)) {
      throw new TypeError('a manager request must be a batch of [id, ident, methodname, args, kwds]');
    }
    if (ident !== null && kwds === null) {
      const e = this.#objects.get(ident);
      if (e !== undefined && e.table !== null && e.methodToTypeid === null && (e.exposedSet === null || e.exposedSet.has(method))) {
        const fn = e.table.get(method);
        if (fn !== undefined) {
          let kind: ReplyKind = '#RETURN';
          let value: unknown;
          try {
            value = fn(e.obj, ...args);
          } catch (err) {
            [kind, value] = errorReply(err);
          }
          if (id !== 0) peer.out.push(id, kind, value);
          return;
        }
      }
    }
    let r: RawReply | Promise<RawReply>;
    try {
      r = this.#handle(peer, ident, method, args, kwds as Record<string, unknown> | null);
    } catch (e) {
      r = errorReply(e);
    }
    if (id === 0) return;
    if (r instanceof Promise) {
      r.then((x) => this.#reply(peer, id, x[0], x[1]), (e) => {
        const [kind, value] = errorReply(e);
        this.#reply(peer, id, kind, value);
      });
    } else {
      peer.out.push(id, r[0], r[1]);
    }
  }

  /** #flush as a microtask (Promise.resolve(peer).then(...): cheaper than queueMicrotask, which makes an AsyncResource). */
  readonly #flushLater = (peer: Peer): void => this.#flush(peer);

  #reply(peer: Peer, id: number, kind: ReplyKind, value: unknown): void {
    if (!peer.conn) return;
    peer.out.push(id, kind, value);
    if (!peer.flushQueued) {
      peer.flushQueued = true;
      void Promise.resolve(peer).then(this.#flushLater);
    }
  }

  #flush(peer: Peer): void {
    peer.flushQueued = false;
    const out = peer.out;
    if (out.length === 0 || !peer.conn) return;
    peer.out = [];
    if (peer.link) {
      this.#flushShm(peer, peer.link, out);
      return;
    }
    const replies = unflatten(out, 0, out.length, 3) as Reply[];
    try {
      this.#dialect.sendReplies(peer.conn, replies);
    } catch {
      // Something in a reply does not travel: send them one by one, that one as its error.
      for (const r of replies) {
        if (!peer.conn) return;
        try {
          this.#dialect.sendReplies(peer.conn, [r]);
        } catch (e) {
          if (!peer.conn || (e instanceof Error && e.name === 'OSError')) return;
          try {
            this.#dialect.sendReplies(peer.conn, [[r[0], ...errorReply(e)]]);
          } catch {
            return;
          }
        }
      }
    }
  }

  /** #flush on the shared-memory channel (a reply that does not travel goes as its error). */
  #flushShm(peer: Peer, link: ShmLink, out: unknown[]): void {
    const chunk = 3 * SHM_CHUNK;
    try {
      for (let i = 0; i < out.length; i += chunk) {
        const end = Math.min(out.length, i + chunk);
        try {
          link.sendFlat(out, i, end, 3);
        } catch (e) {
          if (!(e instanceof TypeError)) throw e;
          for (let j = i; j < end; j += 3) {
            try {
              link.sendFlat(out, j, j + 3, 3);
            } catch (err) {
              if (!(err instanceof TypeError)) throw err;
              link.send([[out[j], ...errorReply(err)]]);
            }
          }
        }
      }
      link.wake();
    } catch (e) {
      // The client's socket failed: it has gone (its loop sees the end and drops it).
      debug('manager: cannot reply to a client: %s', (e as Error)?.message ?? e);
    }
  }

  /** A request from this process's own proxies: answered at once (no connection to itself). */
  #local(ident: string | null, method: string, args: unknown[]): RawReply | Promise<RawReply> {
    try {
      return this.#handle(this.#self, ident, method, args, null);
    } catch (e) {
      return errorReply(e);
    }
  }

  #handle(peer: Peer, ident: string | null, method: string, args: unknown[], kwds: Record<string, unknown> | null): RawReply | Promise<RawReply> {
    if (ident === null) return this.#serverMethod(peer, method, args);
    const e = this.#objects.get(ident);
    if (!e) return ['#TRACEBACK', `KeyError: no object with id ${ident} in the manager (released or never made)`];
    const obj = e.obj as Record<string, unknown>;
    if (method === '#GETVALUE') return ['#RETURN', obj instanceof ArrayHolder ? obj.toArray() : obj];
    if (method === '__str__' || method === '__repr__') return ['#RETURN', pyRepr(obj)];
    if (e.exposed && !e.exposedSet!.has(method)) {
      return ['#TRACEBACK', `AttributeError: method '${method}' of ${inspect(e.typeid)} object is not in exposed=${inspect(e.exposed)}`];
    }
    const table = obj instanceof Map ? dictMethods : Array.isArray(obj) ? listMethods : null;
    const fn = table ? (table as Record<string, Function>)[method] : obj?.[method];
    if (typeof fn !== 'function') {
      return ['#TRACEBACK', `AttributeError: ${inspect(e.typeid)} object has no method '${method}'`];
    }
    if (kwds && Object.keys(kwds).length > 0) args = [...args, kwds];
    // A dict's or list's methods do not ask who calls them.
    const result = table ? fn(obj, ...args) : callerStorage.run(peer.key, () => fn.apply(obj, args));
    const typeid = e.methodToTypeid?.[method];
    if (result instanceof Promise) return result.then((v) => this.#result(peer, v, typeid));
    return this.#result(peer, result, typeid);
  }

  /** A method's result: the value, or a new managed object when `methodToTypeid` says so. */
  #result(peer: Peer, value: unknown, typeid: string | undefined): RawReply {
    if (typeid === undefined) return ['#RETURN', value];
    const spec = this.registry[typeid];
    const [id, exposed] = this.#adopt(peer, value, typeid, spec);
    return ['#PROXY', { exposed, typeid, id, sid: this.sid }];
  }

  #adopt(peer: Peer, obj: unknown, typeid: string, spec: TypeSpec | undefined): [string, string[] | null] {
    const id = (this.#nextId++).toString(16);
    const exposed = spec?.exposed ?? publicMethods(obj);
    const table = obj instanceof Map ? dictTable : Array.isArray(obj) ? listTable : null;
    this.#objects.set(id, { obj, typeid, exposed, exposedSet: exposed && new Set(exposed), methodToTypeid: spec?.methodToTypeid ?? null, refcount: 0, table });
    this.#addRef(peer, id);
    return [id, exposed];
  }

  #serverMethod(peer: Peer, method: string, args: unknown[]): RawReply | Promise<RawReply> {
    switch (method) {
      case 'hello': {
        peer.key = `${args[0]}:${args[1]}`;
        // A local client (on a Unix socket) gets a shared-memory channel, in this reply.
        if (args[2] === true && peer.conn && this.#dialect === v8Dialect && !peer.link) {
          const seg = newSegment();
          peer.linkSoon = new ShmLink(seg, 1, peer.conn);
          return ['#RETURN', [this.sid, seg]];
        }
        return ['#RETURN', this.sid];
      }
      case 'create': {
        const [typeid, ...rest] = args as [string, ...unknown[]];
        const spec = Object.hasOwn(this.registry, typeid) ? this.registry[typeid] : undefined;
        if (!spec?.callable) return ['#TRACEBACK', `KeyError: typeid ${inspect(typeid)} has no callable in this manager's registry`];
        const fn = spec.callable;
        const made = callerStorage.run(peer.key, () => (isClass(fn) ? Reflect.construct(fn, rest) : fn(...rest)));
        const done = (obj: unknown): RawReply => ['#RETURN', [...this.#adopt(peer, obj, typeid, spec), this.sid]];
        return made instanceof Promise ? made.then(done) : done(made);
      }
      case 'incref':
        this.#addRef(peer, args[0] as string);
        return ['#RETURN', null];
      case 'decref':
        for (const ident of args as string[]) this.#dropRef(peer, ident);
        return ['#RETURN', null];
      case 'transit': {
        // The sender of a proxy in a message: its hold covers the receiver until it has counted itself.
        const [ident, key] = args as [string, string];
        const t = this.#transits.get(key);
        if (t?.state === 'claimed') this.#transits.delete(key);
        else {
          this.#addRef(null, ident);
          this.#transits.set(key, { ident, state: 'held' });
        }
        return ['#RETURN', null];
      }
      case 'claim': {
        const [ident, key] = args as [string, string];
        this.#addRef(peer, ident);
        const t = this.#transits.get(key);
        if (t?.state === 'held') {
          this.#transits.delete(key);
          this.#release(ident, 1);
        } else this.#transits.set(key, { ident, state: 'claimed' });
        return ['#RETURN', null];
      }
      case 'number_of_objects':
        return this.#settled().then(() => ['#RETURN', this.#objects.size]);
      case 'debug_info':
        return this.#settled().then(() => ['#RETURN', [...this.#objects].map(([id, e]) => ({ id, typeid: e.typeid, refcount: e.refcount, repr: safeRepr(e.obj) }))]);
      case 'get_methods': {
        const e = this.#objects.get(args[0] as string);
        return ['#RETURN', e ? e.exposed : null];
      }
      case 'dummy':
        return ['#RETURN', null];
      case 'shutdown':
        debug('manager received shutdown message');
        setImmediate(() => this.shutdown());
        return ['#RETURN', null];
      default:
        return ['#TRACEBACK', `AttributeError: the manager's server has no method ${inspect(method)}`];
    }
  }

  /** Let proxies that referents dropped be finalized first (their decrefs come back here). */
  async #settled(): Promise<void> {
    for (let i = 0; i < 3; i++) {
      collect();
      await tick();
    }
  }

  /** Stop serving: close the listener and every client connection; `serveForever()` settles. */
  shutdown(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const p of this.#peers) this.#flush(p);
    this.#listener.close();
    for (const p of [...this.#peers]) this.#drop(p);
    for (const c of this.#pyConns) c.close();
    this.#objects.clear();
    this.#stop();
  }
}

function safeRepr(obj: unknown): string {
  try {
    return pyRepr(obj);
  } catch {
    return inspect(obj);
  }
}

/** An error raised by a referent or by the server, as its reply. */
function errorReply(e: unknown): RawReply {
  if (e instanceof RemoteError) return ['#TRACEBACK', e.message];
  if (e instanceof Error) return ['#ERROR', e];
  return ['#ERROR', new Error(typeof e === 'string' ? e : inspect(e))];
}

/**
 * The manager process's entry point (Python's `BaseManager._run_server`): ignore SIGINT (the
 * parent handles it), run the initializer, make the server, send its address back through
 * `writer`, serve until shutdown. Exported so that the spawned child finds it. @internal
 */
export async function runServer(
  registry: ServerRegistry, address: Address | null, authkey: Uint8Array, serializer: ManagerSerializer,
  writer: Connection, initializer: Function | null, initargs: unknown[],
): Promise<void> {
  process.on('SIGINT', () => {});
  if (initializer) await initializer(...initargs);
  const server = new Server(registry, address, authkey, serializer);
  info('manager serving at %s', inspect(server.address));
  writer.send(server.address);
  writer.close();
  await server.serveForever();
}
