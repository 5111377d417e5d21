// Proxies (Python's multiprocessing.managers BaseProxy, AutoProxy, MakeProxyType and the
// proxy types of SyncManager's data typeids). A proxy holds one reference to its object in
// the manager's server; it gives it back when collected (batched). Sent to another process,
// it keeps its type, its manager's address and authkey; the sender's reference covers it
// until the receiver has counted its own.
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import type { Address } from './connection.js';
import { currentProcess } from './process.js';
import { reduce, registerKind, type Reduced } from './reduction.js';
import { checkKey, ARRAY_EXPOSED, DICT_EXPOSED, LIST_EXPOSED, NAMESPACE_EXPOSED, VALUE_EXPOSED } from './managers_builtins.js';
import { channelFor, unwrap, unwrapValue, type CallOptions, type Channel, type Finish } from './managers_client.js';
import type { ProxyReply, ReplyKind } from './managers_wire.js';
import { isPlainObject } from './options.js';

export type { CallOptions } from './managers_client.js';

/**
 * Python's `multiprocessing.managers.Token`: which object of which server a proxy stands for.
 * `sid` (not in Python) identifies the server process, so that proxies rebuilt there talk to it directly.
 */
export class Token {
  constructor(
    /** The typeid the object was made by. */
    public readonly typeid: string,
    /** The manager's address. */
    public readonly address: Address,
    /** The object's id in the server (a hex string, as Python's). */
    public readonly id: string,
    /** The server's own random id. @internal */
    public readonly sid: string | null = null,
  ) {}
  /** Python's repr: `Token(typeid='dict', address='/tmp/...', id='1')`. */
  toString(): string {
    return `Token(typeid=${inspect(this.typeid)}, address=${inspect(this.address)}, id=${inspect(this.id)})`;
  }
  /** What `util.inspect` shows: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

/** A proxy's state, under a symbol (a NamespaceProxy forwards its other names). */
const S = Symbol('proxy state');
/** The call options of a view made by `_withOptions` (absent on a proxy itself). */
const LIMITS = Symbol('proxy call options');
interface ProxyState {
  token: Token;
  authkey: Uint8Array;
  exposed: string[] | null;
  channel: Channel;
  manager: ManagerLike | null;
  /** A fake address for Python's repr. */
  at: string;
  /** What a reply to this proxy's call becomes (see resultOf). */
  finish: Finish;
}

/** What a proxy needs of its manager (a BaseManager): the proxy types of its registry. */
export interface ManagerLike {
  /** The proxy type registered for `typeid`, if any. @internal */
  _proxyTypeFor(typeid: string): ProxyType | undefined;
}

/** A proxy class, or Python's AutoProxy (a function making one from the exposed names). */
export type ProxyType = (new (...args: any[]) => BaseProxy) | typeof AutoProxy;

let seq = 0;
const released = new FinalizationRegistry<{ channel: Channel; ident: string }>((h) => {
  if (!h.channel.gone) h.channel.decref(h.ident);
});

/** Proxy types sent by name (the library's own); others travel as classes (export them). */
const namedProxyTypes = new Map<string, new (...args: any[]) => BaseProxy>();
/** Register a library proxy class so that proxies of it travel by name. @internal */
export function registerProxyType(cls: new (...args: any[]) => BaseProxy): void {
  namedProxyTypes.set(cls.name, cls);
}
/** typeid -> proxy type, from every `register` in this process (for proxies whose manager is elsewhere). @internal */
export const typeidProxyTypes = new Map<string, ProxyType>();

/** Options of the BaseProxy constructor after the token (Python's keyword arguments). */
export interface ProxyOptions {
  /** Python's `serializer` ('v8'). */
  serializer?: string;
  /** The manager the proxy belongs to (for the proxy types of `methodToTypeid` results). */
  manager?: ManagerLike | null;
  /** The manager's authkey (default: `currentProcess().authkey`). */
  authkey?: Uint8Array | null;
  /** The exposed method names (default: the class's `_exposed_`). */
  exposed?: string[] | null;
  /** Count a new reference in the server (default true); false adopts one already counted. @internal */
  incref?: boolean;
  /** The server id (see Token.sid). @internal */
  sid?: string | null;
}

/**
 * Python's `multiprocessing.managers.BaseProxy`: stands for an object living in a manager's
 * server. `_callmethod(name, args)` calls one of its exposed methods there and resolves with
 * the result (or a proxy, for methods in `methodToTypeid`); `_callmethodSync` blocks the thread.
 * Subclass it for a custom proxy type (static `_exposed_` and `_methodToTypeid_`, as Python's
 * `_exposed_` and `_method_to_typeid_`).
 */
export class BaseProxy {
  /** @internal */
  [S]: ProxyState;
  /** @internal */
  declare [LIMITS]?: CallOptions;
  /** Python's `_exposed_`: the method names a proxy of this class calls (default for `register`). */
  static _exposed_: string[] | null = null;
  /** Python's `_method_to_typeid_`: methods whose results come back as proxies of these typeids. */
  static _methodToTypeid_: Record<string, string> | null = null;

  /** `new BaseProxy(token, serializer?, manager?, authkey?, exposed?, incref?)` or `(token, options)`, as Python's. */
  constructor(token: Token, serializer?: string | ProxyOptions, manager?: ManagerLike | null, authkey?: Uint8Array | null, exposed?: string[] | null, incref?: boolean) {
    const o: ProxyOptions = typeof serializer === 'object' && serializer !== null ? serializer : { serializer, manager, authkey, exposed, incref };
    const key = o.authkey ?? currentProcess().authkey;
    const channel = channelFor(token.address, key, o.sid ?? token.sid);
    this[S] = {
      token, authkey: key, exposed: o.exposed ?? (this.constructor as typeof BaseProxy)._exposed_ ?? null, channel,
      manager: o.manager ?? null, at: `0x7f${(0x1000000 + (++seq) * 0x40).toString(16).padStart(10, '0')}`,
      finish: (kind, value) => resultOf(this, kind, value),
    };
    if (o.incref !== false) unwrap(channel.callSync(null, 'incref', [token.id]));
    released.register(this, { channel, ident: token.id }, this);
  }

  /** Python's `_token`. */
  get _token(): Token {
    return this[S].token;
  }
  /** Python's `_id`: the object's id in the server. */
  get _id(): string {
    return this[S].token.id;
  }
  /** The exposed method names (Python's `proxy._exposed_`). */
  get _exposed_(): string[] | null {
    return this[S].exposed;
  }

  /**
   * Python's `_callmethod(methodname, args=(), kwds={})`: call the referent's method in the
   * server; resolves with its result, rejects with its error (same class name and message,
   * the remote error with its stack as `cause`). `options` (not in Python) limits the wait:
   * `{ timeout }` in seconds rejects with `TimeoutError` when the reply has not come by then,
   * `{ signal }` rejects with the signal's reason when it aborts; the call is abandoned then
   * (its reply is dropped when it comes; the connection goes on serving every other call).
   */
  _callmethod(methodname: string, args: unknown[] = [], kwds?: Record<string, unknown> | null, options?: CallOptions | null): Promise<any> {
    const s = this[S];
    if (kwds != null && hasKeys(kwds)) args = [...args, kwds];
    return s.channel.call(s.token.id, methodname, args, s.finish, options ?? this[LIMITS] ?? null);
  }

  /**
   * `_callmethod` blocking the thread until the reply (Python's blocking form); `options` as
   * `_callmethod`'s (`{ timeout }` throws `TimeoutError`; a signal counts only if already aborted).
   */
  _callmethodSync(methodname: string, args: unknown[] = [], kwds?: Record<string, unknown> | null, options?: CallOptions | null): any {
    const s = this[S];
    if (kwds != null && hasKeys(kwds)) args = [...args, kwds];
    const r = s.channel.callSync(s.token.id, methodname, args, options ?? this[LIMITS] ?? null);
    return resultOf(this, r[0], r[1]);
  }

  /**
   * Not in Python: a view of this proxy whose calls (every method, its `...Sync` twin,
   * `_callmethod`, `_getvalue`) take `options` (`{ timeout, signal }`, as `_callmethod`'s):
   * `await d._withOptions({ timeout: 1 }).getItem('k')`. A proxy's methods take the
   * referent's arguments only, so their limits are given here. The view shares the proxy's
   * reference (it is not a proxy of its own: pass the proxy itself to other processes).
   */
  _withOptions(options: CallOptions): this {
    if (!isPlainObject(options)) throw new TypeError('_withOptions() takes an options object ({ timeout, signal })');
    for (const k of Object.keys(options)) {
      if (k !== 'timeout' && k !== 'signal') throw new TypeError(`_withOptions() got an unexpected option '${k}' (its options are 'timeout', 'signal')`);
    }
    const view = Object.create(this) as this;
    Object.defineProperty(view, LIMITS, { value: { timeout: options.timeout, signal: options.signal ?? null } });
    return view;
  }

  /** Python's `_getvalue()`: a copy of the referent. */
  async _getvalue(): Promise<any> {
    return this._callmethod('#GETVALUE');
  }
  /** `_getvalue` blocking the thread. */
  _getvalueSync(): any {
    return this._callmethodSync('#GETVALUE');
  }

  /** Python's `str(proxy)`: the referent's text, asked of the server (blocks). */
  toString(): string {
    try {
      return String(this._callmethodSync('__str__'));
    } catch (e) {
      return `${this[inspect.custom]().slice(0, -1)}; '__str__()' failed: ${(e as Error)?.message ?? e}>`;
    }
  }

  /** Python's `repr(proxy)`: `<DictProxy object, typeid 'dict' at 0x...>` (no remote call). */
  [inspect.custom](): string {
    const s = this[S];
    const name = this.constructor.name || 'BaseProxy';
    return `<${name} object, typeid ${inspect(s.token.typeid)} at ${s.at}>`;
  }

  /** How a proxy crosses a process boundary: by its token, authkey and type; the sender holds it until the receiver counts itself. @internal */
  [reduce](): Reduced {
    const s = this[S];
    const key = randomBytes(12).toString('hex');
    s.channel.notify(null, 'transit', [s.token.id, key], true);
    const cls = this.constructor as new (...args: any[]) => BaseProxy;
    const t = s.token;
    return {
      kind: 'proxy',
      state: {
        cls: autoExposed.has(cls) ? null : namedProxyTypes.get(cls.name) === cls ? cls.name : cls,
        typeid: t.typeid, address: t.address, id: t.id, sid: t.sid, authkey: Buffer.from(s.authkey), exposed: s.exposed, key,
      },
      undo: () => {
        s.channel.notify(null, 'claim', [t.id, key], true);
        s.channel.decref(t.id);
      },
    };
  }
}

function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}

/** A reply's value; a `#PROXY` reply becomes a proxy of the registry's type for its typeid. */
function resultOf(proxy: BaseProxy, kind: ReplyKind, value: unknown): unknown {
  if (kind === '#RETURN') return value;
  const v = unwrapValue(kind, value);
  const p = v as ProxyReply & { sid: string };
  const s = proxy[S];
  const type = s.manager?._proxyTypeFor(p.typeid) ?? typeidProxyTypes.get(p.typeid) ?? AutoProxy;
  return makeProxy(type, new Token(p.typeid, s.token.address, p.id, p.sid), s.authkey, p.exposed, s.manager);
}

interface ProxyWire {
  cls: string | null | (new (...args: any[]) => BaseProxy);
  typeid: string;
  address: Address;
  id: string;
  sid: string | null;
  authkey: Uint8Array;
  exposed: string[] | null;
  key: string;
}

registerKind('proxy', (s: ProxyWire) => {
  const authkey = new Uint8Array(s.authkey);
  const channel = channelFor(s.address, authkey, s.sid);
  channel.notify(null, 'claim', [s.id, s.key], true);
  const type: ProxyType = s.cls === null ? AutoProxy : typeof s.cls === 'string' ? namedProxyTypes.get(s.cls) ?? AutoProxy : s.cls;
  return makeProxy(type, new Token(s.typeid, s.address, s.id, s.sid), authkey, s.exposed, null);
});

/** A proxy adopting the reference the server counted for it. @internal */
export function makeProxy(type: ProxyType, token: Token, authkey: Uint8Array, exposed: string[] | null, manager: ManagerLike | null): BaseProxy {
  const opts: ProxyOptions = { authkey, exposed, manager, incref: false };
  if (type === AutoProxy) return AutoProxy(token, opts);
  return new (type as new (t: Token, o: ProxyOptions) => BaseProxy)(token, opts);
}

/**
 * Give a proxy class a method `m` (Promise) and `mSync` (blocking) for each exposed name;
 * `checkFor(name)` is the check of a method's arguments at the call, if it has one.
 */
function addMethods(cls: { prototype: object }, exposed: readonly string[], checkFor?: (name: string) => ((args: unknown[]) => void) | null): void {
  for (const name of exposed) {
    if (Object.hasOwn(cls.prototype, name)) continue;
    const check = checkFor?.(name) ?? null;
    Object.defineProperty(cls.prototype, name, {
      configurable: true, writable: true,
      value: check === null
        ? function (this: BaseProxy, ...args: unknown[]) {
          return this._callmethod(name, args);
        }
        : function (this: BaseProxy, ...args: unknown[]) {
          try {
            check(args);
          } catch (e) {
            return Promise.reject(e);
          }
          return this._callmethod(name, args);
        },
    });
    Object.defineProperty(cls.prototype, `${name}Sync`, {
      configurable: true, writable: true,
      value: function (this: BaseProxy, ...args: unknown[]) {
        check?.(args);
        return this._callmethodSync(name, args);
      },
    });
  }
}

/** A class made by MakeProxyType: a BaseProxy with a method (and `...Sync` twin) per exposed name. */
export type AutoProxyType = {
  /** Make a proxy for `token` (`options` as BaseProxy's). */
  new (token: Token, options?: ProxyOptions): BaseProxy & Record<string, (...args: any[]) => any>;
};

const autoExposed = new Set<Function>();
const autoTypes = new Map<string, new (...args: any[]) => BaseProxy>();

/**
 * Python's `MakeProxyType(name, exposed)`: a BaseProxy subclass with a method (and its
 * `...Sync` twin) for each exposed name.
 */
export function MakeProxyType(name: string, exposed: readonly string[]): AutoProxyType {
  const key = `${name}\0${exposed.join('\0')}`;
  let cls = autoTypes.get(key);
  if (!cls) {
    cls = { [name]: class extends BaseProxy {} }[name];
    (cls as unknown as typeof BaseProxy)._exposed_ = [...exposed];
    addMethods(cls, exposed);
    autoExposed.add(cls);
    autoTypes.set(key, cls);
  }
  return cls as never;
}

/**
 * Python's `AutoProxy(token, ...)`: a proxy whose methods are the exposed names the server
 * reported (the default proxy type of `register`).
 */
export function AutoProxy(token: Token, options: ProxyOptions = {}): BaseProxy & Record<string, (...args: any[]) => any> {
  let exposed = options.exposed;
  if (exposed == null) {
    const key = options.authkey ?? currentProcess().authkey;
    exposed = unwrap(channelFor(token.address, key, options.sid ?? token.sid).callSync(null, 'get_methods', [token.id])) as string[] | null ?? [];
  }
  const Cls = MakeProxyType(`AutoProxy[${token.typeid}]`, exposed);
  return new Cls(token, { ...options, exposed }) as never;
}

/** The dict methods whose first argument is a key (checked at the call: an unhashable key is a TypeError there). */
const KEYED = new Set(['getItem', 'setItem', 'delItem', 'contains', 'get', 'pop', 'setdefault']);
const checkFirstKey = (args: unknown[]): void => checkKey(args[0]);
function checkDictArgs(name: string): ((args: unknown[]) => void) | null {
  return KEYED.has(name) ? checkFirstKey : null;
}

/**
 * Python's `DictProxy`: a managed dict (a Map in the server). Keys are strings, numbers,
 * bigints, booleans or null (another key is a TypeError at the call). `for await (const k of d)`
 * iterates its keys.
 */
export class DictProxy<K = any, V = any> extends BaseProxy {
  static override _exposed_ = DICT_EXPOSED;
  /**
   * Python's `iter(d)`: the keys (a snapshot taken when iteration starts; a CPython manager's
   * dict is iterated through an iterator proxy, as Python's DictProxy does).
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<K> {
    if (this._exposed_?.includes('__iter__')) {
      yield* (await this._callmethod('__iter__')) as AsyncIterable<K>;
      return;
    }
    yield* (await this._callmethod('keys')) as K[];
  }
}
/** The methods of a DictProxy, each also as a blocking `...Sync` twin. */
export interface DictProxy<K = any, V = any> {
  /** Python's `d[k]` (KeyError if absent). */ getItem(k: K): Promise<V>;
  /** Blocking `d[k]`. */ getItemSync(k: K): V;
  /** Python's `d[k] = v`. */ setItem(k: K, v: V): Promise<void>;
  /** Blocking `d[k] = v`. */ setItemSync(k: K, v: V): void;
  /** Python's `del d[k]`. */ delItem(k: K): Promise<void>;
  /** Blocking `del d[k]`. */ delItemSync(k: K): void;
  /** Python's `k in d`. */ contains(k: K): Promise<boolean>;
  /** Blocking `k in d`. */ containsSync(k: K): boolean;
  /** Python's `len(d)`. */ len(): Promise<number>;
  /** Blocking `len(d)`. */ lenSync(): number;
  /** Python's `d.get(k, default=None)`. */ get(k: K, dflt?: V | null): Promise<V | null>;
  /** Blocking `get`. */ getSync(k: K, dflt?: V | null): V | null;
  /** Python's `list(d.keys())`. */ keys(): Promise<K[]>;
  /** Blocking `keys`. */ keysSync(): K[];
  /** Python's `list(d.values())`. */ values(): Promise<V[]>;
  /** Blocking `values`. */ valuesSync(): V[];
  /** Python's `list(d.items())`. */ items(): Promise<Array<[K, V]>>;
  /** Blocking `items`. */ itemsSync(): Array<[K, V]>;
  /** Python's `d.update(other)`: a plain object, a Map or pairs. */ update(other: Record<string, V> | Map<K, V> | Iterable<[K, V]>): Promise<void>;
  /** Blocking `update`. */ updateSync(other: Record<string, V> | Map<K, V> | Iterable<[K, V]>): void;
  /** Python's `d.pop(k[, default])`. */ pop(k: K, dflt?: V): Promise<V>;
  /** Blocking `pop`. */ popSync(k: K, dflt?: V): V;
  /** Python's `d.popitem()` (the last inserted pair). */ popitem(): Promise<[K, V]>;
  /** Blocking `popitem`. */ popitemSync(): [K, V];
  /** Python's `d.setdefault(k, default=None)`. */ setdefault(k: K, dflt?: V | null): Promise<V>;
  /** Blocking `setdefault`. */ setdefaultSync(k: K, dflt?: V | null): V;
  /** Python's `d.clear()`. */ clear(): Promise<void>;
  /** Blocking `clear`. */ clearSync(): void;
  /** Python's `d.copy()`: a Map. */ copy(): Promise<Map<K, V>>;
  /** Blocking `copy`. */ copySync(): Map<K, V>;
  /** A Map copy of the dict. */ _getvalue(): Promise<Map<K, V>>;
}
addMethods(DictProxy, DICT_EXPOSED, checkDictArgs);
registerProxyType(DictProxy);

/** Python's `ListProxy`: a managed list (an Array in the server). `for await (const x of l)` iterates a snapshot. */
export class ListProxy<T = any> extends BaseProxy {
  static override _exposed_ = LIST_EXPOSED;
  /** Python's `iter(l)` (a snapshot taken when iteration starts). */
  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    yield* (await this._getvalue()) as T[];
  }
  /** Python's `l += other`: extends the list in place; resolves with this proxy. */
  async iadd(other: Iterable<T>): Promise<this> {
    await this._callmethod('iadd', [[...other]]);
    return this;
  }
  /** Blocking `iadd`. */
  iaddSync(other: Iterable<T>): this {
    this._callmethodSync('iadd', [[...other]]);
    return this;
  }
  /** Python's `l *= n`: repeats the list in place; resolves with this proxy. */
  async imul(n: number): Promise<this> {
    await this._callmethod('imul', [n]);
    return this;
  }
  /** Blocking `imul`. */
  imulSync(n: number): this {
    this._callmethodSync('imul', [n]);
    return this;
  }
}
/** The methods of a ListProxy, each also as a blocking `...Sync` twin. */
export interface ListProxy<T = any> {
  /** Python's `l[i]` (negative from the end; IndexError out of range). */ getItem(i: number): Promise<T>;
  /** Blocking `l[i]`. */ getItemSync(i: number): T;
  /** Python's `l[i] = v`. */ setItem(i: number, v: T): Promise<void>;
  /** Blocking `l[i] = v`. */ setItemSync(i: number, v: T): void;
  /** Python's `del l[i]`. */ delItem(i: number): Promise<void>;
  /** Blocking `del l[i]`. */ delItemSync(i: number): void;
  /** Python's `v in l`. */ contains(v: T): Promise<boolean>;
  /** Blocking `v in l`. */ containsSync(v: T): boolean;
  /** Python's `len(l)`. */ len(): Promise<number>;
  /** Blocking `len(l)`. */ lenSync(): number;
  /** Python's `l.append(v)`. */ append(v: T): Promise<void>;
  /** Blocking `append`. */ appendSync(v: T): void;
  /** Python's `l.extend(xs)`. */ extend(xs: Iterable<T>): Promise<void>;
  /** Blocking `extend`. */ extendSync(xs: Iterable<T>): void;
  /** Python's `l.insert(i, v)`. */ insert(i: number, v: T): Promise<void>;
  /** Blocking `insert`. */ insertSync(i: number, v: T): void;
  /** Python's `l.pop(i=-1)`. */ pop(i?: number): Promise<T>;
  /** Blocking `pop`. */ popSync(i?: number): T;
  /** Python's `l.remove(v)` (ValueError if absent). */ remove(v: T): Promise<void>;
  /** Blocking `remove`. */ removeSync(v: T): void;
  /** Python's `l.index(v[, start[, stop]])`. */ index(v: T, start?: number, stop?: number): Promise<number>;
  /** Blocking `index`. */ indexSync(v: T, start?: number, stop?: number): number;
  /** Python's `l.count(v)`. */ count(v: T): Promise<number>;
  /** Blocking `count`. */ countSync(v: T): number;
  /** Python's `l.reverse()`. */ reverse(): Promise<void>;
  /** Blocking `reverse`. */ reverseSync(): void;
  /** Python's `l.sort(reverse=False)` (strings or numbers). */ sort(options?: { reverse?: boolean }): Promise<void>;
  /** Blocking `sort`. */ sortSync(options?: { reverse?: boolean }): void;
  /** Python's `l + other`: a new Array. */ add(other: T[]): Promise<T[]>;
  /** Blocking `add`. */ addSync(other: T[]): T[];
  /** Python's `l * n`: a new Array. */ mul(n: number): Promise<T[]>;
  /** Blocking `mul`. */ mulSync(n: number): T[];
  /** Python's `reversed(l)`: a reversed Array. */ reversed(): Promise<T[]>;
  /** Blocking `reversed`. */ reversedSync(): T[];
  /** An Array copy of the list. */ _getvalue(): Promise<T[]>;
}
addMethods(ListProxy, LIST_EXPOSED);
registerProxyType(ListProxy);

/**
 * Python's `ValueProxy`: `get()`/`set(v)` and the `value` property, which is a synchronous
 * remote call (get and set), as in Python.
 */
export class ValueProxy<T = any> extends BaseProxy {
  static override _exposed_ = VALUE_EXPOSED;
  /** The value (a blocking call to the server). */
  get value(): T {
    return this._callmethodSync('get');
  }
  /** Replace the value (a blocking call to the server). */
  set value(v: T) {
    this._callmethodSync('set', [v]);
  }
}
/** The methods of a ValueProxy. */
export interface ValueProxy<T = any> {
  /** The value. */ get(): Promise<T>;
  /** Blocking `get`. */ getSync(): T;
  /** Replace the value. */ set(v: T): Promise<void>;
  /** Blocking `set`. */ setSync(v: T): void;
}
addMethods(ValueProxy, VALUE_EXPOSED);
registerProxyType(ValueProxy);

/** Python's `ArrayProxy`: a managed `array.array` (`len`, `getItem`, `setItem`; `_getvalue()` is an Array). */
export class ArrayProxy<T = number> extends BaseProxy {
  static override _exposed_ = ARRAY_EXPOSED;
  /** Iterates a snapshot of the items. */
  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    yield* (await this._getvalue()) as T[];
  }
}
/** The methods of an ArrayProxy. */
export interface ArrayProxy<T = number> {
  /** Python's `len(a)`. */ len(): Promise<number>;
  /** Blocking `len`. */ lenSync(): number;
  /** Python's `a[i]`. */ getItem(i: number): Promise<T>;
  /** Blocking `a[i]`. */ getItemSync(i: number): T;
  /** Python's `a[i] = v`. */ setItem(i: number, v: T): Promise<void>;
  /** Blocking `a[i] = v`. */ setItemSync(i: number, v: T): void;
}
addMethods(ArrayProxy, ARRAY_EXPOSED);
registerProxyType(ArrayProxy);

/** Names a NamespaceProxy keeps on the local proxy object (besides those starting with `_`). */
const LOCAL_NAMES = new Set(['then', 'constructor', 'toString', 'toJSON', 'valueOf']);

/**
 * Python's `NamespaceProxy`: attribute access on it is a synchronous remote call
 * (`ns.x = 1; ns.x; delete ns.x`); names starting with `_` stay on the local proxy object.
 */
export class NamespaceProxy extends BaseProxy {
  static override _exposed_ = NAMESPACE_EXPOSED;
  [name: string]: any;
  constructor(token: Token, serializer?: string | ProxyOptions, manager?: ManagerLike | null, authkey?: Uint8Array | null, exposed?: string[] | null, incref?: boolean) {
    super(token, serializer, manager, authkey, exposed, incref);
    return new Proxy(this, {
      get(target, prop, receiver) {
        if (typeof prop === 'symbol' || prop.startsWith('_') || LOCAL_NAMES.has(prop) || prop in target) return Reflect.get(target, prop, receiver);
        return target._callmethodSync('__getattribute__', [prop]);
      },
      set(target, prop, value, receiver) {
        if (typeof prop === 'symbol' || prop.startsWith('_')) return Reflect.set(target, prop, value, receiver);
        target._callmethodSync('__setattr__', [prop, value]);
        return true;
      },
      deleteProperty(target, prop) {
        if (typeof prop === 'symbol' || prop.startsWith('_')) return Reflect.deleteProperty(target, prop);
        target._callmethodSync('__delattr__', [prop]);
        return true;
      },
    });
  }
}
registerProxyType(NamespaceProxy);
