// node-multiprocessing/managers (Python's multiprocessing.managers): BaseManager,
// SyncManager, Manager() and register. The server is in managers_server.ts, the proxies in
// managers_proxy.ts, the connection in managers_client.ts, the messages in managers_wire.ts.
import { inspect } from 'node:util';
import { Pipe, type Address } from './connection.js';
import { ProcessError, ValueError } from './errors.js';
import { dict, list, makeArray, makeNamespace, makeValue } from './managers_builtins.js';
import { channelFor, unwrap, type Channel } from './managers_client.js';
import {
  ArrayProxy, AutoProxy, BaseProxy, DictProxy, ListProxy, makeProxy, NamespaceProxy, Token, typeidProxyTypes, ValueProxy,
  type ManagerLike, type ProxyType,
} from './managers_proxy.js';
import { runServer, Server, type ServerRegistry } from './managers_server.js';
import {
  AcquirerProxy, BarrierProxy, ConditionProxy, EventProxy, PoolProxy, QueueProxy, SemaphoreProxy, SYNC_TYPEIDS,
} from './managers_sync.js';
import { pickleChannel } from './managers_pickle.js';
import { dialectFor, type ManagerSerializer } from './managers_wire.js';
import type { PoolOptions } from './pool.js';
import { optionalArgs } from './options.js';
import { currentProcess, type BaseProcess } from './process.js';
import { Finalize, info } from './util.js';

export { Server, type ServerRegistry, type TypeSpec } from './managers_server.js';
export {
  ArrayProxy, AutoProxy, BaseProxy, DictProxy, ListProxy, MakeProxyType, NamespaceProxy, Token, ValueProxy,
  type AutoProxyType, type CallOptions, type ManagerLike, type ProxyOptions, type ProxyType,
} from './managers_proxy.js';
export { Namespace } from './managers_builtins.js';
export {
  AcquirerProxy, AsyncResultProxy, BarrierProxy, ConditionProxy, EventProxy, IteratorProxy, PoolProxy, QueueProxy, SemaphoreProxy,
  type IteratorProxyPromise, type ProxyHeld,
} from './managers_sync.js';
export type { ManagerSerializer } from './managers_wire.js';

/** One typeid of a manager class's registry (what `register` recorded). */
export interface RegistryEntry {
  /** Makes the object in the server (null: a client of a remote manager). */
  callable: Function | null;
  /** The method names proxies may call (null: the object's public methods). */
  exposed: string[] | null;
  /** Methods whose results come back as proxies of these typeids. */
  methodToTypeid: Record<string, string> | null;
  /** The proxy class, or AutoProxy. */
  proxytype: ProxyType;
  /** Whether the manager has an async method named after the typeid. */
  createMethod: boolean;
}

/** A context (or anything with a Process class) that starts a manager's server process. */
export interface ProcessContext {
  /** The Process class that starts the server. */
  Process: ProcessClass;
}

/** A Process class (`new Process({ target, args, name })`). */
export interface ProcessClass {
  /** Make a process (not started). */
  new (options: { target: Function; args: unknown[]; name: string }): BaseProcess;
}

/** One object of a manager's server, as `debugInfo()` describes it. */
export interface ObjectInfo {
  /** Its id (Python's ident). */
  id: string;
  /** The typeid it was made by. */
  typeid: string;
  /** References held by proxies (and proxies in transit). */
  refcount: number;
  /** Python's repr of the object. */
  repr: string;
}

/** The options form of `register(typeid, callable, proxytype, exposed, methodToTypeid, createMethod)`. */
export interface RegisterOptions {
  /** Makes the object in the server: a class (called with `new`) or a function (may be async). Export it. */
  callable?: Function | null;
  /** The proxy class (default AutoProxy). */
  proxytype?: ProxyType | null;
  /** The method names the proxy may call (default: the proxy class's `_exposed_`, else the object's public methods). */
  exposed?: string[] | null;
  /** Methods whose results come back as proxies of these typeids (default: the proxy class's `_methodToTypeid_`). */
  methodToTypeid?: Record<string, string> | null;
  /** Whether the manager gets an async method named `typeid` making such an object (default true). */
  createMethod?: boolean;
}

/** The options form of the BaseManager constructor. */
export interface ManagerOptions {
  /** Where the server listens: a socket path or `[host, port]` (default: a fresh private socket path). */
  address?: Address | null;
  /** The key clients must prove they know (default: `currentProcess().authkey`). */
  authkey?: Uint8Array | null;
  /**
   * `'v8'` (default, Node to Node); `'pickle'`: Python's own manager protocol, to `connect()` to
   * a CPython manager or to serve CPython clients (managers_pickle.ts); `'xmlrpclib'` is a ValueError.
   */
  serializer?: ManagerSerializer;
  /** The context whose Process starts the server (default: the default context). */
  ctx?: ProcessContext | null;
  /** Seconds `shutdown()` waits for the server process before terminating it (default 1.0). */
  shutdownTimeout?: number;
}

type ManagerState = 'initial' | 'started' | 'shutdown';

/** What the exit finalizer needs (not the manager itself). */
interface Running {
  process: BaseProcess | null;
  channel: Channel;
  timeout: number;
  done: boolean;
}

/** Python's `_finalize_manager`, blocking: at exit, or when the manager is collected. */
function finalizeManager(r: Running): void {
  if (r.done) return;
  r.done = true;
  const p = r.process;
  if (!p) return;
  if (p.isAlive()) {
    info('sending shutdown message to manager');
    try {
      r.channel.callSync(null, 'shutdown', []);
    } catch {
      /* already gone */
    }
    p.joinSync(r.timeout);
    if (p.isAlive()) {
      info('manager still alive');
      p.terminate();
      p.joinSync(r.timeout);
      if (p.isAlive()) {
        p.kill();
        p.joinSync();
      }
    }
  }
}

let managerCount = 0;

/**
 * Python's `multiprocessing.managers.BaseManager`: a server process holding objects that
 * other processes use through proxies. `new BaseManager(address?, authkey?, serializer?)` (or
 * an options object); `await start()` runs the server in a child process, `await connect()`
 * uses a running one, `getServer().serveForever()` serves from this process. Each typeid
 * registered with the static `register` becomes an async method making a managed object.
 * `await using manager = ...` shuts it down (Python's `with`).
 */
export class BaseManager {
  /** typeid -> entry; each subclass gets its own copy on its first `register`. @internal */
  static _registry: Record<string, RegistryEntry> = {};

  #address: Address | null;
  #authkey: Uint8Array;
  #serializer: ManagerSerializer;
  #ctx: ManagerOptions['ctx'];
  #shutdownTimeout: number;
  #state: ManagerState = 'initial';
  #process: BaseProcess | null = null;
  #running: Running | null = null;
  #finalizer: Finalize<[Running]> | null = null;

  constructor(address?: Address | null | ManagerOptions, authkey?: Uint8Array | null | Omit<ManagerOptions, 'address'>, serializer?: ManagerSerializer | Omit<ManagerOptions, 'address' | 'authkey'>, ctx?: ManagerOptions['ctx'], shutdownTimeout?: number) {
    const args = [address, authkey, serializer, ctx, shutdownTimeout];
    // An address is an array or a string, never an options object.
    const o = optionalArgs<ManagerOptions>('BaseManager', ['address', 'authkey', 'serializer', 'ctx', 'shutdownTimeout'], args);
    this.#address = o.address ?? null;
    this.#authkey = o.authkey != null ? new Uint8Array(o.authkey) : new Uint8Array(currentProcess().authkey);
    const s = o.serializer ?? 'v8';
    if (s !== 'v8' && s !== 'pickle') dialectFor(s);
    this.#serializer = s;
    this.#ctx = o.ctx ?? null;
    this.#shutdownTimeout = o.shutdownTimeout ?? 1.0;
  }

  /** Python's `address`: where the server listens (null before `start()` when none was given). */
  get address(): Address | null {
    return this.#address;
  }

  /** The authkey (Python's `_authkey`). */
  get _authkey(): Uint8Array {
    return this.#authkey;
  }

  /** The registry the server gets: the typeids that have a callable. */
  #serverRegistry(): ServerRegistry {
    const out: ServerRegistry = {};
    for (const [typeid, e] of Object.entries((this.constructor as typeof BaseManager)._registry)) {
      if (e.callable) out[typeid] = { callable: e.callable, exposed: e.exposed, methodToTypeid: e.methodToTypeid };
    }
    return out;
  }

  /** The proxy type of a typeid of this manager's registry. @internal */
  _proxyTypeFor(typeid: string): ProxyType | undefined {
    return (this.constructor as typeof BaseManager)._registry[typeid]?.proxytype;
  }

  #channel(): Channel {
    if (this.#address === null) throw new ProcessError('the manager has no address: start() or connect() it first');
    // Python's own protocol (a CPython manager, or a Node one serving CPython clients).
    if (this.#serializer === 'pickle') return pickleChannel(this.#address, this.#authkey);
    return channelFor(this.#address, this.#authkey, null);
  }

  /**
   * Python's `get_server()`: a Server for this manager's registry, listening at its address,
   * to run in this process with `await server.serveForever()`.
   */
  getServer(): Server {
    if (this.#state !== 'initial') throw new ProcessError(this.#state === 'started' ? 'Already started server' : 'Manager has shut down');
    const server = new Server(this.#serverRegistry(), this.#address, this.#authkey, this.#serializer);
    this.#address = server.address;
    return server;
  }

  /** Python's `connect()`: use the server already running at `address` (checks that it answers). */
  async connect(): Promise<void> {
    unwrap(await this.#channel().call(null, 'dummy', []));
    this.#state = 'started';
  }

  /**
   * Python's `start(initializer=None, initargs=())`: start the server process and wait until
   * it listens. `initializer(...initargs)` runs there first (an exported function).
   */
  async start(initializer?: Function | null | { initializer?: Function | null; initargs?: unknown[] }, initargs?: unknown[]): Promise<void> {
    const o = optionalArgs<{ initializer: Function | null; initargs: unknown[] }>('start', ['initializer', 'initargs'], [initializer, initargs]);
    if (this.#state !== 'initial') throw new ProcessError(this.#state === 'started' ? 'Already started server' : 'Manager has shut down');
    if (o.initializer != null && typeof o.initializer !== 'function') throw new TypeError('initializer must be a callable');
    const [reader, writer] = Pipe(false);
    const Proc = this.#ctx?.Process ?? (await import('./context.js')).Process;
    const name = `${this.constructor.name}-${++managerCount}`;
    const proc = new Proc({
      target: runServer,
      args: [this.#serverRegistry(), this.#address, this.#authkey, this.#serializer, writer, o.initializer ?? null, o.initargs ?? []],
      name,
    });
    // Not daemonic (its objects may start processes, a Pool), but gone with this process even if it is SIGKILLed.
    (proc as unknown as { _dieWithParent: boolean })._dieWithParent = true;
    try {
      proc.start();
    } finally {
      writer.close();
    }
    let address: Address;
    try {
      address = (await reader.recv()) as Address;
    } catch (e) {
      await proc.join(1);
      throw new ProcessError(`the manager's server process ${name} ended before it listened (exit code ${proc.exitcode})`, { cause: e });
    } finally {
      reader.close();
    }
    this.#address = address;
    this.#process = proc;
    this.#state = 'started';
    const running: Running = { process: proc, channel: this.#channel(), timeout: this.#shutdownTimeout, done: false };
    this.#running = running;
    this.#finalizer = new Finalize(this, finalizeManager, [running], 0);
  }

  /** The server process (Python's `_process`); null for a connected or served manager. */
  get _process(): BaseProcess | null {
    return this.#process;
  }

  /** Python's `join(timeout)`: wait for the server process to end. */
  async join(timeout?: number | null): Promise<void> {
    await this.#process?.join(timeout);
  }

  /**
   * Python's `shutdown()`: stop the server process (asks it, then terminates it after
   * `shutdownTimeout`); its proxies' calls reject with ManagerGoneError from then on. Idempotent.
   */
  async shutdown(): Promise<void> {
    const r = this.#running;
    this.#state = 'shutdown';
    if (!r || r.done) return;
    r.done = true;
    this.#finalizer?.cancel();
    const p = r.process!;
    if (p.isAlive()) {
      info('sending shutdown message to manager');
      try {
        unwrap(await r.channel.call(null, 'shutdown', []));
      } catch {
        /* already gone */
      }
      await p.join(r.timeout);
      if (p.isAlive()) {
        p.terminate();
        await p.join(r.timeout);
        if (p.isAlive()) {
          p.kill();
          await p.join();
        }
      }
    }
  }

  /** `await using manager = ...` shuts it down at the end of the block (Python's `with manager:`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }

  /**
   * How many objects the server holds (Python's `_number_of_objects()`), after letting the
   * server release the proxies its objects dropped: for tests and leak checks.
   */
  async numberOfObjects(): Promise<number> {
    return unwrap(await this.#channel().call(null, 'number_of_objects', [])) as number;
  }

  /**
   * The server's objects (Python's `_debug_info()`): id, typeid, reference count and repr of
   * each (with `serializer: 'pickle'`, the server's text, as CPython's `_debug_info()` returns it).
   */
  async debugInfo(): Promise<ObjectInfo[]> {
    return unwrap(await this.#channel().call(null, 'debug_info', [])) as never;
  }

  /** Python's `_create(typeid, *args)` followed by making its proxy: one round trip. @internal */
  async _create(typeid: string, ...args: unknown[]): Promise<BaseProxy> {
    if (this.#state !== 'started') throw new ProcessError(this.#state === 'initial' ? 'Manager has not been started' : 'Manager has shut down');
    const entry = (this.constructor as typeof BaseManager)._registry[typeid];
    if (!entry) throw new ValueError(`unknown typeid ${inspect(typeid)}`);
    const [id, exposed, sid] = unwrap(await this.#channel().call(null, 'create', [typeid, ...args])) as [string, string[] | null, string];
    return makeProxy(entry.proxytype, new Token(typeid, this.#address!, id, sid), this.#authkey, exposed, this);
  }

  /**
   * Python's classmethod `register(typeid, callable=None, proxytype=None, exposed=None,
   * method_to_typeid=None, create_method=True)`, or `(typeid, options)`. Per subclass: a
   * subclass's registry does not leak into its parent's. A client of a remote manager
   * registers the typeid without a callable.
   */
  static register(typeid: string, callable?: Function | null | RegisterOptions, proxytype?: ProxyType | null | RegisterOptions, exposed?: string[] | null | RegisterOptions, methodToTypeid?: Record<string, string> | null | RegisterOptions, createMethod?: boolean | RegisterOptions): void {
    if (typeof typeid !== 'string') throw new TypeError('typeid must be a string');
    let given = [callable, proxytype, exposed, methodToTypeid, createMethod];
    // A class or function is a callable, not an options object.
    if (typeof callable === 'function') given = [undefined, ...given.slice(1)];
    const o = optionalArgs<RegisterOptions>('register', ['callable', 'proxytype', 'exposed', 'methodToTypeid', 'createMethod'], given, ['methodToTypeid']);
    if (typeof callable === 'function') o.callable = callable;
    if (!Object.hasOwn(this, '_registry')) this._registry = { ...this._registry };
    const type = (o.proxytype ?? AutoProxy) as ProxyType;
    const proxyStatics = type as unknown as typeof BaseProxy;
    const entry: RegistryEntry = {
      callable: o.callable ?? null,
      exposed: o.exposed ?? (type === AutoProxy ? null : proxyStatics._exposed_ ?? null),
      methodToTypeid: o.methodToTypeid ?? (type === AutoProxy ? null : proxyStatics._methodToTypeid_ ?? null),
      proxytype: type,
      createMethod: o.createMethod ?? true,
    };
    this._registry[typeid] = entry;
    typeidProxyTypes.set(typeid, type);
    if (entry.createMethod) {
      Object.defineProperty(this.prototype, typeid, {
        configurable: true, writable: true,
        value: { [typeid](this: BaseManager, ...args: unknown[]) { return this._create(typeid, ...args); } }[typeid],
      });
    }
  }

  /** A `repr()`-like text. */
  toString(): string {
    return `<${this.constructor.name} address=${inspect(this.#address)} state=${this.#state}>`;
  }
  /** What `util.inspect` shows. */
  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * Python's `multiprocessing.managers.SyncManager`: a BaseManager with the typeids
 * `dict list Namespace Value Array` and the synchronization, queue and pool typeids.
 */
export class SyncManager extends BaseManager {
  /** Python's `manager.dict(...)`: a plain object, a Map or pairs; a DictProxy. */
  declare dict: <K = any, V = any>(init?: Record<string, V> | Map<K, V> | Iterable<[K, V]> | null) => Promise<DictProxy<K, V>>;
  /** Python's `manager.list(iterable)`: a ListProxy. */
  declare list: <T = any>(init?: Iterable<T> | null) => Promise<ListProxy<T>>;
  /** Python's `manager.Namespace()`: attributes shared through the manager. */
  declare Namespace: (init?: Record<string, unknown> | null) => Promise<NamespaceProxy>;
  /** Python's `manager.Value(typecode, value)`: a ValueProxy (the typecode is recorded, not enforced). */
  declare Value: <T = any>(typecode: string, value: T) => Promise<ValueProxy<T>>;
  /** Python's `manager.Array(typecode, sequence)`: an `array.array` in the server. */
  declare Array: <T = number>(typecode: string, init: Iterable<T> | number) => Promise<ArrayProxy<T>>;
  /** Python's `manager.Queue(maxsize=0)`: a FIFO queue in the manager (Python's `queue.Queue`). */
  declare Queue: <T = any>(maxsize?: number | { maxsize?: number }) => Promise<QueueProxy<T>>;
  /** Python's `manager.JoinableQueue(maxsize=0)`: the same queue (`taskDone`/`join` work on both, as in Python). */
  declare JoinableQueue: <T = any>(maxsize?: number | { maxsize?: number }) => Promise<QueueProxy<T>>;
  /** Python's `manager.Event()`: a `threading.Event` in the manager. */
  declare Event: () => Promise<EventProxy>;
  /** Python's `manager.Lock()`: a `threading.Lock` in the manager (any client may release it). */
  declare Lock: () => Promise<AcquirerProxy>;
  /** Python's `manager.RLock()`: a `threading.RLock` in the manager, owned by the calling process and JS thread. */
  declare RLock: () => Promise<AcquirerProxy>;
  /** Python's `manager.Semaphore(value=1)`. */
  declare Semaphore: (value?: number | { value?: number }) => Promise<SemaphoreProxy>;
  /** Python's `manager.BoundedSemaphore(value=1)`. */
  declare BoundedSemaphore: (value?: number | { value?: number }) => Promise<SemaphoreProxy>;
  /** Python's `manager.Condition(lock=None)`: over a Lock or RLock proxy of this manager (default: a new RLock). */
  declare Condition: (lock?: AcquirerProxy | null | { lock?: AcquirerProxy | null }) => Promise<ConditionProxy>;
  /** Python's `manager.Barrier(parties, action=None, timeout=None)`: `action` (exported) runs in the manager's process. */
  declare Barrier: (parties: number, action?: (() => unknown) | null | { action?: (() => unknown) | null; timeout?: number | null }, timeout?: number | null) => Promise<BarrierProxy>;
  /** Python's `manager.Pool(processes, initializer, initargs, maxtasksperchild)`: the library's Pool running in the manager's process. */
  declare Pool: (processes?: number | null | Omit<PoolOptions, 'context'>, initializer?: Function | null, initargs?: unknown[], maxtasksperchild?: number | null) => Promise<PoolProxy>;
}
SyncManager.register('dict', dict, DictProxy);
SyncManager.register('list', list, ListProxy);
SyncManager.register('Namespace', makeNamespace, NamespaceProxy);
SyncManager.register('Value', makeValue, ValueProxy);
SyncManager.register('Array', makeArray, ArrayProxy);
for (const [typeid, callable, options] of SYNC_TYPEIDS) SyncManager.register(typeid, callable, options);

/**
 * Python's `multiprocessing.Manager()`: a started SyncManager (`await using manager = await Manager()`
 * is Python's `with Manager() as manager:`). `ctx` chooses the context starting its process.
 */
export async function Manager(ctx?: ManagerOptions['ctx'] | { ctx?: ManagerOptions['ctx'] }): Promise<SyncManager> {
  const c = ctx && 'ctx' in ctx ? ctx.ctx : ctx;
  const m = new SyncManager({ ctx: (c as ManagerOptions['ctx']) ?? null });
  await m.start();
  return m;
}
