// The objects a SyncManager keeps in its server process for the typeids `Lock RLock
// Semaphore BoundedSemaphore Condition Event Barrier Queue JoinableQueue Pool` (CPython
// registers threading.Lock ..., queue.Queue and multiprocessing.pool.Pool there).
//
// The server runs on one event loop, so these are plain in-memory objects whose waits are
// Promises: a blocked `acquire()`/`get()`/`wait()` parks a waiter and the server goes on
// serving everyone else. Waiters are served first come first served, and what they wait
// for is handed to them directly (a released lock, a put item, a slot for a put), so a
// wake-up is never lost nor stolen. Owner-aware objects (RLock, Condition) take their
// owner from `callerStorage`: the calling client process and JS thread, as CPython's
// owner is the server thread serving one client thread.
//
// One file: the ten referents are small classes over the same waiter queue and owner
// bookkeeping; split by kind they would each import that machinery back.
//
// A client that goes away (`callerGone`) leaves nothing stuck: its parked waits are
// dropped, and the locks it held are released with a WARNING (as the library's own Lock
// recovers from a dead holder; CPython's manager keeps them locked for ever).
//
// One module past 800 lines on purpose: every object here parks its callers on the same
// wait lists and reports to the same per-client registry (`callerGone`), which stay private.
import { performance } from 'node:perf_hooks';
import { inspect } from 'node:util';
import { BrokenBarrierError, Empty, Full, RuntimeError, ValueError } from './errors.js';
import { warning } from './logging.js';
import { callerStorage, onCallerGone } from './managers_caller.js';
import { BaseProxy } from './managers_proxy.js';
import type { Pool } from './pool.js';
import { blockArgs, deadlineOf, secondsLeft, timeoutArg, timeoutSeconds, type BlockOptions, type Timeout } from './timeouts.js';

/** The caller of the method running now ('' outside a manager's server: a direct call). */
function caller(): string {
  return callerStorage.getStore() ?? '';
}

/** setTimeout's limit: a longer wait has no timer (it is as good as no limit). */
const MAX_TIMER_MS = 0x7fffffff;

/** Thrown into the waits of a caller that has gone; nobody receives it. */
class CallerGone extends Error {}

/** Parked waits by caller, for `callerGone`. */
const parkedBy = new Map<string, Set<Waiter<any>>>();
/** Locks held by caller, for `callerGone`. */
const heldBy = new Map<string, Set<Lock | RLock>>();

function addTo<T>(map: Map<string, Set<T>>, key: string, v: T): void {
  let s = map.get(key);
  if (!s) map.set(key, (s = new Set()));
  s.add(v);
}

function removeFrom<T>(map: Map<string, Set<T>>, key: string, v: T): void {
  const s = map.get(key);
  if (s?.delete(v) && s.size === 0) map.delete(key);
}

/** One parked call: settled by a hand-off (`give`), its timeout, or its caller going away. */
class Waiter<T> {
  readonly caller = caller();
  readonly promise: Promise<T>;
  #resolve!: (v: T) => void;
  #reject!: (e: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #list: WaitList<T>;

  constructor(list: WaitList<T>, seconds: number | null, onTimeout: () => T) {
    this.#list = list;
    this.promise = new Promise<T>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    if (seconds !== null && seconds * 1000 <= MAX_TIMER_MS) {
      const deadline = performance.now() + seconds * 1000;
      const expire = (): void => {
        // A timer counts from the event loop's cached time, which lags behind when a turn runs
        // long: it may fire early. Wait for the rest then, never less than asked.
        const left = deadline - performance.now();
        if (left > 0) {
          this.#timer = setTimeout(expire, Math.ceil(left));
          return;
        }
        this.#leave();
        try {
          this.#resolve(onTimeout());
        } catch (e) {
          this.#reject(e);
        }
      };
      this.#timer = setTimeout(expire, seconds * 1000);
    }
    addTo(parkedBy, this.caller, this);
  }

  #leave(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#list._remove(this);
    removeFrom(parkedBy, this.caller, this);
  }

  /** Settle with `v` (the caller has already been taken off the list). */
  give(v: T): void {
    this.#leave();
    this.#resolve(v);
  }

  /** Drop this wait: its caller has gone. */
  cancel(): void {
    this.#leave();
    this.#reject(new CallerGone());
  }
}

/** Waiters in arrival order. */
class WaitList<T> {
  #items: Waiter<T>[] = [];

  get length(): number {
    return this.#items.length;
  }

  /** Park a waiter for at most `seconds` (null: no limit); at the timeout it settles with `onTimeout()`. */
  park(seconds: number | null, onTimeout: () => T): Waiter<T> {
    const w = new Waiter(this, seconds, onTimeout);
    this.#items.push(w);
    return w;
  }

  /** The first waiter, taken off the list (it must then be given something). */
  shift(): Waiter<T> | undefined {
    return this.#items.shift();
  }

  /** Settle every waiter with `v`. */
  giveAll(v: T): void {
    for (const w of this.#items.splice(0)) w.give(v);
  }

  /** @internal */
  _remove(w: Waiter<T>): void {
    const i = this.#items.indexOf(w);
    if (i >= 0) this.#items.splice(i, 1);
  }
}

/**
 * A client of the manager has gone (its connection closed): drop the waits it left parked
 * and release the locks it holds, with a WARNING naming them. The server calls it (an
 * `onCallerGone` hook) when a client's connection drops.
 * @internal
 */
export function callerGone(key: string): void {
  for (const w of [...(parkedBy.get(key) ?? [])]) w.cancel();
  parkedBy.delete(key);
  for (const l of [...(heldBy.get(key) ?? [])]) l._abandon(key);
  heldBy.delete(key);
}
onCallerGone(callerGone);

/** `(block, timeout)` of a lock's `acquire` as seconds to wait: 0 for a non-blocking call, null for no limit. */
function acquireWait(block: boolean | BlockOptions | undefined, timeout: Timeout): number | null {
  const [b, t] = blockArgs(block, timeout, 'acquire');
  return b ? timeoutSeconds(t) : 0;
}

// ---- locks -------------------------------------------------------------------------

/**
 * Python's `threading.Lock` in a manager: not owned (any client may release it). Held
 * locks are remembered by the client that acquired them, so that one that goes away
 * does not leave them locked.
 * @internal
 */
export class Lock {
  #locked = false;
  #holder = '';
  #waiters = new WaitList<boolean>();

  /** `acquire(block = true, timeout = null)`: true when acquired, false on timeout or when it would block. */
  acquire(block?: boolean | BlockOptions, timeout?: Timeout): boolean | Promise<boolean> {
    const seconds = acquireWait(block, timeout);
    if (!this.#locked) {
      this.#take(caller());
      return true;
    }
    if (seconds === 0) return false;
    return this.#waiters.park(seconds, () => false).promise;
  }

  #take(key: string): void {
    this.#locked = true;
    this.#holder = key;
    addTo(heldBy, key, this);
  }

  /** Unlock, or hand the lock to the first waiter. RuntimeError when not locked. */
  release(): void {
    if (!this.#locked) throw new RuntimeError('release unlocked lock');
    this.#free();
  }

  #free(): void {
    removeFrom(heldBy, this.#holder, this);
    const next = this.#waiters.shift();
    if (next) {
      this.#take(next.caller);
      next.give(true);
    } else {
      this.#locked = false;
      this.#holder = '';
    }
  }

  /** Python's `locked()`. */
  locked(): boolean {
    return this.#locked;
  }

  /** @internal For Condition: whether the lock is held (by anyone: a Lock has no owner). */
  _isOwned(): boolean {
    return this.#locked;
  }

  /** @internal For Condition.wait: release fully; what `_acquireRestore` needs. */
  _releaseSave(): number {
    this.release();
    return 1;
  }

  /** @internal For Condition.wait: acquire again (no limit). */
  async _acquireRestore(_saved: number): Promise<void> {
    await this.acquire();
  }

  /** @internal The client `key` holding it has gone. */
  _abandon(key: string): void {
    if (!this.#locked || this.#holder !== key) return;
    warning(`manager Lock: client ${key} went away while holding it; the lock was released (the data it protected may be inconsistent)`);
    this.#free();
  }

  /** Python's repr, as `<locked Lock object>`. */
  toString(): string {
    return `<${this.#locked ? 'locked' : 'unlocked'} Lock object>`;
  }

  /** What `util.inspect` shows: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * Python's `threading.RLock` in a manager: re-entrant for its owner, the client (process
 * and JS thread) that acquired it; released only by that client, as many times as acquired.
 * @internal
 */
export class RLock {
  #owner: string | null = null;
  #count = 0;
  #waiters = new WaitList<boolean>();

  /** `acquire(block = true, timeout = null)`: true when acquired (again, for its owner), false on timeout. */
  acquire(block?: boolean | BlockOptions, timeout?: Timeout): boolean | Promise<boolean> {
    const seconds = acquireWait(block, timeout);
    const me = caller();
    if (this.#owner === me) {
      this.#count++;
      return true;
    }
    if (this.#owner === null) {
      this.#take(me, 1);
      return true;
    }
    if (seconds === 0) return false;
    return this.#waiters.park(seconds, () => false).promise;
  }

  #take(key: string, count: number): void {
    this.#owner = key;
    this.#count = count;
    addTo(heldBy, key, this);
  }

  /** Release once; the last release unlocks it. RuntimeError when the caller does not own it. */
  release(): void {
    if (this.#owner !== caller()) throw new RuntimeError('cannot release un-acquired lock');
    if (--this.#count === 0) this.#free();
  }

  #free(): void {
    if (this.#owner !== null) removeFrom(heldBy, this.#owner, this);
    const next = this.#waiters.shift();
    if (next) {
      this.#take(next.caller, 1);
      next.give(true);
    } else {
      this.#owner = null;
      this.#count = 0;
    }
  }

  /** @internal Whether the caller owns it (Python's `_is_owned`). */
  _isOwned(): boolean {
    return this.#owner === caller();
  }

  /** @internal For Condition.wait: release however many times it is held; the count to restore. */
  _releaseSave(): number {
    if (this.#owner !== caller()) throw new RuntimeError('cannot release un-acquired lock');
    const count = this.#count;
    this.#free();
    return count;
  }

  /** @internal For Condition.wait: acquire again and restore the count. */
  async _acquireRestore(count: number): Promise<void> {
    await this.acquire();
    this.#count = count;
  }

  /** @internal The client `key` owning it has gone. */
  _abandon(key: string): void {
    if (this.#owner !== key) return;
    warning(`manager RLock: client ${key} went away while holding it; the lock was released (the data it protected may be inconsistent)`);
    this.#free();
  }

  /** Python's repr, as `<locked RLock object owner='pid:thread' count=1>`. */
  toString(): string {
    return this.#owner === null
      ? '<unlocked RLock object owner=None count=0>'
      : `<locked RLock object owner='${this.#owner}' count=${this.#count}>`;
  }

  /** What `util.inspect` shows: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

function semaphoreValue(value: unknown): number {
  const v = value !== null && typeof value === 'object' ? (value as { value?: unknown }).value ?? 1 : value ?? 1;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`semaphore value must be an integer, not ${inspect(v)}`);
  if (v < 0) throw new ValueError('semaphore initial value must be >= 0');
  return v;
}

/**
 * Python's `threading.Semaphore` in a manager: `acquire()` takes one from the count
 * (waiting while it is zero), `release(n = 1)` gives back.
 * @internal
 */
export class Semaphore {
  /** @internal */
  protected _value: number;
  #waiters = new WaitList<boolean>();

  /** `new Semaphore(value = 1)` or `{ value }`; ValueError below zero. */
  constructor(value?: number | { value?: number }) {
    this._value = semaphoreValue(value);
  }

  /** `acquire(block = true, timeout = null)`: true when one was taken, false on timeout or when it would block. */
  acquire(block?: boolean | BlockOptions, timeout?: Timeout): boolean | Promise<boolean> {
    const seconds = acquireWait(block, timeout);
    if (this._value > 0) {
      this._value--;
      return true;
    }
    if (seconds === 0) return false;
    return this.#waiters.park(seconds, () => false).promise;
  }

  /** Give `n` back (default 1), to the waiters first. ValueError for `n` below 1. */
  release(n: number | { n?: number } = 1): void {
    const k = releaseCount(n);
    this._check(k);
    for (let i = 0; i < k; i++) {
      const w = this.#waiters.shift();
      if (w) w.give(true);
      else this._value++;
    }
  }

  /** @internal BoundedSemaphore's check. */
  protected _check(_n: number): void {}

  /** The count now (the local Semaphore's `getValue()`; Python's `_value`). */
  getValue(): number {
    return this._value;
  }

  /** Python's repr, as `<Semaphore object value=1>`. */
  toString(): string {
    return `<Semaphore object value=${this._value}>`;
  }

  /** What `util.inspect` shows: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

function releaseCount(n: number | { n?: number }): number {
  const k = n !== null && typeof n === 'object' ? n.n ?? 1 : n;
  if (typeof k !== 'number' || !Number.isInteger(k)) throw new TypeError(`n must be an integer, not ${inspect(k)}`);
  if (k < 1) throw new ValueError('n must be one or more');
  return k;
}

/**
 * Python's `threading.BoundedSemaphore` in a manager: `release()` throws ValueError when the
 * count would go above its initial value.
 * @internal
 */
export class BoundedSemaphore extends Semaphore {
  readonly #initial: number;

  /** `new BoundedSemaphore(value = 1)` or `{ value }`. */
  constructor(value?: number | { value?: number }) {
    super(value);
    this.#initial = this._value;
  }

  /** @internal */
  protected override _check(n: number): void {
    if (this._value + n > this.#initial) throw new ValueError('Semaphore released too many times');
  }

  /** Python's repr, as `<BoundedSemaphore object value=1/1>`. */
  override toString(): string {
    return `<BoundedSemaphore object value=${this._value}/${this.#initial}>`;
  }
}

// ---- Condition ---------------------------------------------------------------------

/**
 * Python's `threading.Condition` in a manager, over a manager Lock or RLock (a new RLock by
 * default). `wait` and `notify` need the lock held by the caller (RuntimeError otherwise).
 * @internal
 */
export class Condition {
  /** @internal */
  readonly _lock: Lock | RLock;
  #waiters = new WaitList<boolean>();

  /** `new Condition(lock = null)` or `{ lock }`. */
  constructor(lock?: Lock | RLock | null | { lock?: Lock | RLock | null }) {
    const l = lock !== null && typeof lock === 'object' && !(lock instanceof Lock || lock instanceof RLock) ? lock.lock : lock;
    if (l != null && !(l instanceof Lock || l instanceof RLock)) {
      throw new TypeError(`Condition needs a Lock or RLock of the same manager, not ${inspect(l)}`);
    }
    this._lock = l ?? new RLock();
  }

  /** Acquire the underlying lock. */
  acquire(block?: boolean | BlockOptions, timeout?: Timeout): boolean | Promise<boolean> {
    return this._lock.acquire(block, timeout);
  }

  /** Release the underlying lock. */
  release(): void {
    this._lock.release();
  }

  /**
   * Release the lock, wait until notified or `timeout` seconds pass, take the lock again;
   * false if the timeout passed.
   */
  async wait(timeout?: Timeout | { timeout?: Timeout }): Promise<boolean> {
    if (!this._lock._isOwned()) throw new RuntimeError('cannot wait on un-acquired lock');
    const seconds = timeoutSeconds(timeoutArg(timeout, 'wait'));
    const saved = this._lock._releaseSave();
    const w = this.#waiters.park(seconds, () => false);
    let notified: boolean;
    try {
      notified = await w.promise;
    } catch (e) {
      // The caller has gone: it does not take the lock back.
      if (e instanceof CallerGone) throw e;
      await this._lock._acquireRestore(saved);
      throw e;
    }
    await this._lock._acquireRestore(saved);
    return notified;
  }

  /** Wake up to `n` waiters (default 1). */
  notify(n: number | { n?: number } = 1): void {
    if (!this._lock._isOwned()) throw new RuntimeError('cannot notify on un-acquired lock');
    const k = n !== null && typeof n === 'object' ? n.n ?? 1 : n;
    if (typeof k !== 'number' || Number.isNaN(k)) throw new TypeError(`n must be a number, not ${inspect(k)}`);
    for (let i = 0; i < k; i++) {
      const w = this.#waiters.shift();
      if (!w) break;
      w.give(true);
    }
  }

  /** Python's `notify_all()`. */
  notifyAll(): void {
    this.notify(Infinity);
  }

  /** Python's repr, as `<Condition(<locked RLock ...>, 0)>` with the number of waiters. */
  toString(): string {
    return `<Condition(${this._lock}, ${this.#waiters.length})>`;
  }

  /** What `util.inspect` shows: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * SyncManager's `Condition` typeid: `Condition(lock = null)` where `lock` is a proxy of a Lock
 * or RLock of the same manager. As CPython's server turns a proxy of its own object back into
 * the object, the proxy's referent is used (a proxy rebuilt in the server's process reads
 * its referent itself through `_getvalue`); a lock of another manager is a TypeError.
 * @internal
 */
export function makeCondition(lock?: Lock | RLock | BaseProxy | null | { lock?: Lock | RLock | BaseProxy | null }): Condition {
  let l = lock !== null && typeof lock === 'object' && !(lock instanceof Lock || lock instanceof RLock || lock instanceof BaseProxy) ? lock.lock : lock;
  if (l instanceof BaseProxy) {
    const typeid = l._token.typeid;
    if (typeid !== 'Lock' && typeid !== 'RLock') throw new TypeError(`Condition needs a manager Lock or RLock, not a proxy of typeid '${typeid}'`);
    l = l._getvalueSync() as Lock | RLock;
  }
  return new Condition(l);
}

// ---- Event -------------------------------------------------------------------------

/**
 * Python's `threading.Event` in a manager: a flag; `wait()` resolves once it is set.
 * @internal
 */
export class Event {
  #flag = false;
  #waiters = new WaitList<boolean>();

  /** Python's `is_set()`. */
  isSet(): boolean {
    return this.#flag;
  }

  /** Set the flag and wake every waiter. */
  set(): void {
    this.#flag = true;
    this.#waiters.giveAll(true);
  }

  /** Reset the flag. */
  clear(): void {
    this.#flag = false;
  }

  /** The flag once set (true), or false when `timeout` seconds pass first. */
  wait(timeout?: Timeout | { timeout?: Timeout }): boolean | Promise<boolean> {
    const seconds = timeoutSeconds(timeoutArg(timeout, 'wait'));
    if (this.#flag || seconds === 0) return this.#flag;
    return this.#waiters.park(seconds, () => this.#flag).promise;
  }

  /** Python's repr, as `<Event object set=False>`. */
  toString(): string {
    return `<Event object set=${this.#flag ? 'True' : 'False'}>`;
  }

  /** What `util.inspect` shows: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

// ---- Barrier -----------------------------------------------------------------------

const FILLING = 0;
const DRAINING = 1;
const RESETTING = -1;
const BROKEN = -2;

/**
 * Python's `threading.Barrier` in a manager (its state machine): `wait()` resolves with a
 * distinct index in 0..parties-1 once `parties` callers wait; `action` runs in the manager's
 * process, called by the last to arrive (awaited when it returns a Promise). A timeout,
 * `abort()`, an action that throws, or a waiting client that goes away breaks it.
 * @internal
 */
export class Barrier {
  readonly #parties: number;
  readonly #action: (() => unknown) | null;
  readonly #timeout: Timeout;
  #state = FILLING;
  #count = 0;
  /** Python's `_cond`: every change of state wakes them all. */
  #changes = new WaitList<void>();

  /** `new Barrier(parties, action = null, timeout = null)`, or `(parties, { action, timeout })`. */
  constructor(parties: number, action?: (() => unknown) | null | { action?: (() => unknown) | null; timeout?: Timeout }, timeout?: Timeout) {
    let act: unknown = action;
    if (action !== null && typeof action === 'object') {
      act = action.action;
      timeout = action.timeout;
    }
    if (typeof parties !== 'number' || !Number.isInteger(parties)) throw new TypeError(`parties must be an integer, not ${inspect(parties)}`);
    if (parties < 1) throw new ValueError('parties must be > 0');
    if (act != null && typeof act !== 'function') throw new TypeError('action must be a function');
    timeoutSeconds(timeout);
    this.#parties = parties;
    this.#action = (act as (() => unknown) | null | undefined) ?? null;
    this.#timeout = timeout;
  }

  #notifyAll(): void {
    this.#changes.giveAll();
  }

  /** Wait for the next change of state, until `deadline` at most (false: the deadline passed). */
  async #changed(deadline: number | null): Promise<boolean> {
    const left = secondsLeft(deadline);
    if (left === 0) return false;
    let timedOut = false;
    await this.#changes.park(left, () => {
      timedOut = true;
    }).promise;
    return !timedOut;
  }

  /**
   * Wait for all parties: this caller's index. BrokenBarrierError if the barrier is or
   * becomes broken; a timeout (this call's, else the barrier's) breaks it.
   */
  async wait(timeout?: Timeout | { timeout?: Timeout }): Promise<number> {
    let t = timeoutArg(timeout, 'wait');
    if (t == null) t = this.#timeout;
    const deadline = deadlineOf(t);
    // Python's _enter: wait while the barrier drains or resets.
    while (this.#state === DRAINING || this.#state === RESETTING) await this.#changed(null);
    if (this.#state < 0) throw new BrokenBarrierError();
    const index = this.#count++;
    try {
      if (index + 1 === this.#parties) await this.#release();
      else await this.#wait(deadline);
      return index;
    } finally {
      this.#count--;
      this.#exit();
    }
  }

  async #release(): Promise<void> {
    try {
      if (this.#action) await this.#action();
      this.#state = DRAINING;
      this.#notifyAll();
    } catch (e) {
      this.#break();
      throw e;
    }
  }

  async #wait(deadline: number | null): Promise<void> {
    try {
      while (this.#state === FILLING) {
        if (!(await this.#changed(deadline))) {
          this.#break();
          throw new BrokenBarrierError();
        }
      }
    } catch (e) {
      // A party whose client went away will never arrive: the others must not wait for ever.
      if (e instanceof CallerGone) this.#break();
      throw e;
    }
    if (this.#state < 0) throw new BrokenBarrierError();
  }

  #exit(): void {
    if (this.#count === 0 && (this.#state === RESETTING || this.#state === DRAINING)) {
      this.#state = FILLING;
      this.#notifyAll();
    }
  }

  /** Back to the empty state; parties waiting now get BrokenBarrierError. */
  reset(): void {
    if (this.#count > 0) {
      if (this.#state === FILLING || this.#state === BROKEN) this.#state = RESETTING;
    } else {
      this.#state = FILLING;
    }
    this.#notifyAll();
  }

  /** Break the barrier: current and later waits get BrokenBarrierError. */
  abort(): void {
    this.#break();
  }

  #break(): void {
    this.#state = BROKEN;
    this.#notifyAll();
  }

  /** Python's `parties`. */
  get parties(): number {
    return this.#parties;
  }

  /** Python's `n_waiting`. */
  get nWaiting(): number {
    return this.#state === FILLING ? this.#count : 0;
  }

  /** Python's `broken`. */
  get broken(): boolean {
    return this.#state === BROKEN;
  }

  /** The attributes a BarrierProxy reads (CPython's BarrierProxy calls `__getattribute__` too). */
  __getattribute__(name: string): number | boolean {
    switch (name) {
      case 'parties': return this.parties;
      case 'nWaiting':
      case 'n_waiting': return this.nWaiting;
      case 'broken': return this.broken;
      default: throw new TypeError(`'Barrier' object has no readable attribute ${inspect(name)}`);
    }
  }

  /** Python's repr, as `<Barrier object waiters=0/3>` or `<Barrier object: broken>`. */
  toString(): string {
    return this.broken ? '<Barrier object: broken>' : `<Barrier object waiters=${this.nWaiting}/${this.#parties}>`;
  }

  /** What `util.inspect` shows: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

// ---- Queue -------------------------------------------------------------------------

/** A putter parked on a full queue, with its item. */
interface PendingPut {
  item: unknown;
}

/**
 * Python's `queue.Queue` in a manager (the `Queue` and `JoinableQueue` typeids, as in
 * CPython): FIFO, `maxsize` > 0 bounds it; `get`/`put` wait (first come first served) with
 * Python's `(block, timeout)` and throw `Empty`/`Full`; `taskDone()`/`join()` count the
 * items put and not yet done. The items are kept as the server received them (no copy).
 * @internal
 */
export class Queue {
  readonly #maxsize: number;
  #items: unknown[] = [];
  #head = 0;
  #getters = new WaitList<unknown>();
  #putters = new WaitList<void>();
  #putItems = new Map<Waiter<void>, PendingPut>();
  #unfinished = 0;
  #joiners = new WaitList<void>();

  /** `new Queue(maxsize = 0)` or `{ maxsize }`; 0 or less: no bound. */
  constructor(maxsize?: number | { maxsize?: number }) {
    const m = maxsize !== null && typeof maxsize === 'object' ? maxsize.maxsize ?? 0 : maxsize ?? 0;
    if (typeof m !== 'number' || Number.isNaN(m)) throw new TypeError(`maxsize must be a number, not ${inspect(m)}`);
    this.#maxsize = m;
  }

  /** Python's `maxsize`. */
  get maxsize(): number {
    return this.#maxsize;
  }

  /** How many items are queued. */
  qsize(): number {
    return this.#items.length - this.#head;
  }

  /** Whether no item is queued. */
  empty(): boolean {
    return this.qsize() === 0;
  }

  /** Whether `maxsize` items are queued. */
  full(): boolean {
    return this.#maxsize > 0 && this.qsize() >= this.#maxsize;
  }

  #push(item: unknown): void {
    this.#unfinished++;
    // The queue is empty when someone waits for an item: that one takes it now.
    const g = this.#getters.shift();
    if (g) g.give(item);
    else this.#items.push(item);
  }

  #shift(): unknown {
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    // A slot is free: the first parked putter's item goes in.
    const p = this.#putters.shift();
    if (p) {
      const pending = this.#putItems.get(p)!;
      this.#putItems.delete(p);
      this.#push(pending.item);
      p.give();
    }
    return item;
  }

  /** `put(item, block = true, timeout = null)` or `put(item, { block, timeout })`: Full when no slot came. */
  put(item: unknown, block?: boolean | BlockOptions, timeout?: Timeout): void | Promise<void> {
    const [b, t] = blockArgs(block, timeout, 'put');
    if (!this.full()) {
      this.#push(item);
      return;
    }
    const seconds = b ? timeoutSeconds(t) : 0;
    if (seconds === 0) throw new Full();
    const w = this.#putters.park(seconds, () => {
      this.#putItems.delete(w);
      throw new Full();
    });
    this.#putItems.set(w, { item });
    w.promise.catch(() => this.#putItems.delete(w));
    return w.promise;
  }

  /** `get(block = true, timeout = null)` or `get({ block, timeout })`: the first item; Empty when none came. */
  get(block?: boolean | BlockOptions, timeout?: Timeout): unknown {
    const [b, t] = blockArgs(block, timeout, 'get');
    if (this.qsize() > 0) return this.#shift();
    const seconds = b ? timeoutSeconds(t) : 0;
    if (seconds === 0) throw new Empty();
    return this.#getters.park(seconds, () => {
      throw new Empty();
    }).promise;
  }

  /** Python's `put_nowait(item)`: `put(item, false)`. */
  putNowait(item: unknown): void {
    this.put(item, false);
  }

  /** Python's `get_nowait()`: `get(false)`. */
  getNowait(): unknown {
    return this.get(false);
  }

  /** Python's `task_done()`: one item got is done; ValueError if more than were put. */
  taskDone(): void {
    if (this.#unfinished <= 0) throw new ValueError('task_done() called too many times');
    if (--this.#unfinished === 0) this.#joiners.giveAll();
  }

  /** Resolves once every item put has been marked done with `taskDone()`. */
  join(): void | Promise<void> {
    if (this.#unfinished === 0) return;
    return this.#joiners.park(null, () => {}).promise;
  }

  /** Python's repr, as `<Queue object maxsize=0 qsize=2>`. */
  toString(): string {
    return `<Queue object maxsize=${this.#maxsize} qsize=${this.qsize()}>`;
  }

  /** What `util.inspect` shows: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

// ---- Pool --------------------------------------------------------------------------

/**
 * SyncManager's `Pool` typeid: the library's own {@link Pool}, running in the manager's
 * process (its workers are the manager's children), with the same arguments. The pool
 * module is loaded on the first one.
 * @internal
 */
export async function makePool(...args: unknown[]): Promise<Pool> {
  const { Pool } = await import('./pool.js');
  return new (Pool as new (...a: unknown[]) => Pool)(...args);
}
