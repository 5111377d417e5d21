// Synchronization primitives shared between processes (Python's
// multiprocessing.synchronize): Lock, RLock, Semaphore, BoundedSemaphore, Condition,
// Event, Barrier. Their state lives in the shared heap (crates/core/src/sync.rs).
//
// Every blocking call has an async form (a Promise; the event loop keeps running and
// libuv's thread pool is not used: waits go through wait.ts's futex waiter) and a
// `...Sync` form that blocks the calling thread.
//
// One file, as CPython's synchronize.py: the seven classes share SemLock's fast paths, its
// wait and its shared-memory layout.
import { performance } from 'node:perf_hooks';
import { inspect } from 'node:util';
import { assertionError, BrokenBarrierError, mapNativeError, nativeCall, TimeoutError, ValueError } from './errors.js';
import { arenaBuffer, transferOf } from './heap.js';
import { native } from './native.js';
import { _currentThreadName, currentProcess } from './process.js';
import { reduce, registerKind, type Reduced } from './reduction.js';
import { debug, warning } from './logging.js';
import { blockArgs, blockFor, deadlineOf, expired, secondsLeft, timeoutArg, timeoutSeconds, type BlockOptions, type Timeout } from './timeouts.js';
import { changed, futexToken } from './wait.js';

type NSemLock = InstanceType<typeof native.NativeSemLock>;
type NCondition = InstanceType<typeof native.NativeCondition>;
type NCondWait = InstanceType<typeof native.NativeCondWait>;
type NEvent = InstanceType<typeof native.NativeEvent>;
type NBarrier = InstanceType<typeof native.NativeBarrier>;
type BlockId = ReturnType<NSemLock['retainForTransfer']>;

export type { BlockOptions, Timeout } from './timeouts.js';

/** The options form of `acquire(block, timeout)`: `lock.acquire({ timeout: 1 })`. */
export type AcquireOptions = BlockOptions;

/** Native barrier/condition calls: `[Broken]` becomes BrokenBarrierError. */
function call<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof Error && e.message.startsWith('[Broken]')) throw new BrokenBarrierError();
    throw mapNativeError(e);
  }
}

/** The options object of `new Lock()`, `new RLock()` and `new Event()`: Python's `ctx=` keyword. */
export interface ContextOptions {
  /** Python's `ctx`: accepted and ignored (there is one context). */
  ctx?: unknown;
}

/** The options form of `new Semaphore(value)` and `new BoundedSemaphore(value)`. */
export interface SemaphoreOptions extends ContextOptions {
  /** The initial count (default 1). */
  value?: number;
}

/** The options form of `new Condition(lock)`. */
export interface ConditionOptions extends ContextOptions {
  /** The Lock or RLock the condition uses (default: a new RLock). */
  lock?: Lock | RLock | null;
}

/** A scoped hold: `{ using h = await lock.hold(); ... }` releases on scope exit. */
export interface Held extends Disposable {
  /** Release what was acquired (once; later calls do nothing). `Symbol.dispose` does the same. */
  release(): void;
}

function held(release: () => void): Held {
  let done = false;
  const r = (): void => {
    if (done) return;
    done = true;
    release();
  };
  return { release: r, [Symbol.dispose]: r };
}

// ---- SemLock ------------------------------------------------------------------------

const KIND_LOCK = 1;
const KIND_RLOCK = 2;
const KIND_SEMAPHORE = 3;
const KIND_BOUNDED = 4;
/** Largest semaphore value (mp-core's SEM_VALUE_MAX). */
export const SEM_VALUE_MAX = 0x7fffffff;
const ADOPT = Symbol('adopt');

interface Pending {
  deadline: number | null;
  resolve(r: number): void;
  reject(e: unknown): void;
  timer?: NodeJS.Timeout;
}

interface SemLockState { id: BlockId; kind: number }

// Uncontended fast paths run in JavaScript on the shared state itself (mp-core's
// SemState: u32 word, kind, max, depth; u64 owner, owner start, little-endian halves
// here), with the same atomic
// protocol as crates/core/src/sync.rs; anything else (a waiter to wake, an error, a wait,
// a dead holder) goes through the native object. A napi call costs more than the whole
// uncontended acquire.
const WORD = 0;
const MAX = 2;
const DEPTH = 3;
const OWNER_LO = 4;
const OWNER_HI = 5;
const START_LO = 6;
const START_HI = 7;
const WAITERS = 0x80000000;
const COUNT = 0x7fffffff;

/** This thread's owner word and process start time, as mp-core records them. */
let me: { lo: number; hi: number; startLo: number; startHi: number } | undefined;

function identity(): NonNullable<typeof me> {
  if (me) return me;
  // Let the native side record us as the holder of a private lock, and read that back.
  const probe = new native.NativeSemLock(KIND_LOCK, 1, 1);
  const buf = arenaBuffer(probe);
  const w = new Uint32Array(buf, probe.byteOffset, 8);
  probe.acquire(false, null);
  me = { lo: w[OWNER_LO], hi: w[OWNER_HI], startLo: w[START_LO], startHi: w[START_HI] };
  probe.release();
  return me;
}

/** Python's `multiprocessing.synchronize.SemLock`: the base of the lock classes. */
export class SemLock {
  /** @internal */
  readonly _n: NSemLock;
  /** Async acquirers in this object, first come first served; only the head watches. */
  #queue: Pending[] = [];
  #pumping = false;
  /** The shared state as 32-bit words. */
  readonly #w: Uint32Array;
  /** The same words, signed: the atomic operations on the lock word go through it (V8's builtins take Int32Array's a little faster). */
  readonly #wi: Int32Array;
  readonly #kind: number;
  readonly #max: number;
  readonly #me: NonNullable<typeof me>;

  /** @internal */
  constructor(kind: number, value: number, maxvalue: number, adopted?: NSemLock) {
    this._n = adopted ?? nativeCall(() => new native.NativeSemLock(kind, value, maxvalue));
    if (adopted) debug('recreated blocker with handle %s', this._n.byteOffset);
    else debug('created semlock with handle %s', this._n.byteOffset);
    const buf = arenaBuffer(this._n);
    this.#w = new Uint32Array(buf, this._n.byteOffset, 8);
    this.#wi = new Int32Array(buf, this._n.byteOffset, 8);
    this.#kind = this._n.kind;
    this.#max = this.#w[MAX];
    this.#me = identity();
  }

  /** Acquire if that needs no wait; false means "ask the native side". */
  #fastAcquire(): boolean {
    const w = this.#w;
    const kind = this.#kind;
    const me = this.#me;
    if (kind === KIND_RLOCK && w[OWNER_LO] === me.lo && w[OWNER_HI] === me.hi) {
      w[DEPTH]++;
      return true;
    }
    if (kind <= KIND_RLOCK) {
      // Free and unmarked is exactly 1; anything else is for the native side.
      if (Atomics.compareExchange(this.#wi, WORD, 1, 0) !== 1) return false;
      // As set_owner: the start time, then the owner. When the start time must change,
      // the pid half goes last with release order, so that a checker that sees our pid
      // sees our start time. A half-written owner reads as pid 0, never taken for dead.
      if (w[START_LO] !== me.startLo || w[START_HI] !== me.startHi) {
        w[START_LO] = me.startLo;
        w[START_HI] = me.startHi;
        w[OWNER_LO] = me.lo;
        Atomics.store(w, OWNER_HI, me.hi);
      } else {
        w[OWNER_LO] = me.lo;
        w[OWNER_HI] = me.hi;
      }
      w[DEPTH] = 1;
      return true;
    }
    const v = Atomics.load(w, WORD);
    return (v & COUNT) !== 0 && Atomics.compareExchange(w, WORD, v, v - 1) === v;
  }

  /** Release if nobody waits and nothing is wrong; false means "ask the native side". */
  #fastRelease(): boolean {
    const w = this.#w;
    // (A Lock's release is in release() itself.)
    switch (this.#kind) {
      case KIND_RLOCK: {
        const me = this.#me;
        if (w[OWNER_LO] !== me.lo || w[OWNER_HI] !== me.hi) return false;
        // A recursive release only counts down, whatever waiters marked on the word (as the
        // native release): no atomic operation, which V8 does not inline (a builtin call).
        if (w[DEPTH] > 1) {
          w[DEPTH]--;
          return true;
        }
        w[DEPTH] = 0;
        w[OWNER_HI] = 0;
        w[OWNER_LO] = 0;
        if (Atomics.compareExchange(w, WORD, 0, 1) === 0) return true;
        // A waiter marked the word meanwhile: we still hold the lock; let native finish.
        w[OWNER_LO] = me.lo;
        Atomics.store(w, OWNER_HI, me.hi);
        w[DEPTH] = 1;
        return false;
      }
      default: {
        const v = Atomics.load(w, WORD);
        if (v & WAITERS || (v & COUNT) >= this.#max) return false;
        return Atomics.compareExchange(w, WORD, v, v + 1) === v;
      }
    }
  }

  /**
   * Acquire, blocking the calling thread: true when acquired, false when not (non-blocking
   * call, or timeout; a negative timeout means zero, null no limit).
   */
  acquireSync(block?: boolean | AcquireOptions, timeout?: Timeout): boolean {
    // (Small, so that the JIT inlines the uncontended case into the caller.)
    return this.#fastAcquire() || this.#acquireSync(block, timeout);
  }

  #acquireSync(block?: boolean | AcquireOptions, timeout?: Timeout): boolean {
    let r: number;
    const [b, t] = block === undefined ? [true, null] : blockArgs(block, timeout);
    const secs = timeoutSeconds(t);
    if (b) r = blockFor(secs, (s) => nativeCall(() => this._n.acquire(true, s)), (x) => x === 0);
    else r = nativeCall(() => this._n.acquire(false, secs));
    if (r < 0) this.#recovered(-r);
    return r !== 0;
  }

  /** Acquire without blocking the event loop: resolves true when acquired, false on timeout. */
  acquire(block?: boolean | AcquireOptions, timeout?: Timeout): Promise<boolean> {
    if (this.#queue.length === 0 && this.#fastAcquire()) return Promise.resolve(true);
    let r = this.#queue.length === 0 ? this._n.tryAcquire() : 0;
    if (r === 0) {
      const [b, t] = blockArgs(block, timeout);
      if (!b) return Promise.resolve(false);
      let dl: number | null;
      try {
        dl = deadlineOf(t);
      } catch (e) {
        return Promise.reject(e);
      }
      return this.#enqueue(dl);
    }
    if (r < 0) this.#recovered(-r);
    return Promise.resolve(true);
  }

  #enqueue(deadline: number | null): Promise<boolean> {
    return new Promise<number>((resolve, reject) => {
      const p: Pending = { deadline, resolve, reject };
      this.#queue.push(p);
      if (deadline !== null && this.#queue.length > 1) {
        // Waiters behind the head time out on their own; the head's watch has its deadline.
        p.timer = setTimeout(() => {
          const i = this.#queue.indexOf(p);
          if (i > 0) {
            this.#queue.splice(i, 1);
            resolve(0);
          }
        }, Math.max(0, deadline - performance.now()));
      }
      if (!this.#pumping) void this.#pump();
    }).then((r) => {
      if (r < 0) this.#recovered(-r);
      return r !== 0;
    });
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      while (this.#queue.length > 0) {
        const p = this.#queue[0];
        let r = 0;
        let err: unknown;
        try {
          r = await this.#attempt(p.deadline);
        } catch (e) {
          err = e ?? new Error('acquire failed');
        }
        this.#queue.shift();
        if (p.timer) clearTimeout(p.timer);
        if (err !== undefined) p.reject(err);
        else p.resolve(r);
      }
    } finally {
      this.#pumping = false;
    }
  }

  async #attempt(deadline: number | null): Promise<number> {
    for (;;) {
      const over = expired(deadline);
      const token = over ? 0 : futexToken();
      const r = nativeCall(() => this._n.acquireOrWatch(token, secondsLeft(deadline)));
      if (r !== 0 || over) return r;
      await changed(token);
    }
  }

  #recovered(pid: number): void {
    // 2 ** 31 (the native side's i32::MIN negated): killed between taking or releasing the
    // lock and writing its name, so no pid is known.
    const holder = pid === 2 ** 31 ? 'a process died while taking or releasing it;' : `holder process ${pid} died while holding it;`;
    warning(
      `${this.constructor.name}: ${holder} the lock was handed to process ${process.pid} (the data it protected may be inconsistent)`,
    );
  }

  /** Release (never blocks). Lock: ValueError if unlocked. RLock: AssertionError if not the owner. */
  release(): void {
    if (this.#kind === KIND_LOCK) {
      // Here rather than in #fastRelease, so that the JIT inlines it into the caller. Clear
      // the owner (pid half first), then give the count back (a full barrier). If the word
      // was not "held, unmarked" (0), the native side wakes waiters or throws.
      const w = this.#w;
      w[OWNER_HI] = 0;
      w[OWNER_LO] = 0;
      if (Atomics.compareExchange(this.#wi, WORD, 0, 1) === 0) return;
    } else if (this.#fastRelease()) return;
    try {
      this._n.release();
    } catch (e) {
      throw this.#releaseError(e);
    }
  }

  #releaseError(e: unknown): unknown {
    const m = mapNativeError(e);
    if ((m as Error)?.name === 'AssertionError') return assertionError('attempt to release recursive lock not owned by thread');
    if (m instanceof ValueError) return new ValueError('semaphore or lock released too many times');
    return m;
  }

  /** Acquire (async) and return a handle that releases on scope exit: `{ using h = await lock.hold(); ... }`, Python's `with lock:`. */
  async hold(block?: boolean | AcquireOptions, timeout?: Timeout): Promise<Held> {
    const [b, t] = blockArgs(block, timeout);
    if (!(await this.acquire(b, t))) throw new TimeoutError('could not acquire the lock');
    return held(() => this.release());
  }

  /** Acquire (blocking) and return a handle that releases on scope exit. */
  holdSync(block?: boolean | AcquireOptions, timeout?: Timeout): Held {
    const [b, t] = blockArgs(block, timeout);
    if (!this.acquireSync(b, t)) throw new TimeoutError('could not acquire the lock');
    return held(() => this.release());
  }

  /** @internal Python's `_is_mine()`. */
  _isMine(): boolean {
    return this._n.isMine();
  }

  /** @internal Python's `_count()`. */
  _count(): number {
    return this._n.count();
  }

  /** How this object crosses a process boundary ({@link Shareable}). @internal */
  [reduce](): Reduced {
    const { id, fds, undo } = transferOf(this._n);
    return { kind: 'semlock', state: { id, kind: this._n.kind } satisfies SemLockState, fds, undo };
  }

  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

function ownerName(): string {
  let name: string;
  try {
    name = currentProcess().name;
  } catch {
    name = 'MainProcess';
  }
  const thread = _currentThreadName();
  return thread === null ? name : `${name}|${thread}`;
}

/**
 * Python's `multiprocessing.Lock`: a non-recursive lock shared between processes (a futex in
 * shared memory); any process may release it. `await lock.acquire()` leaves the event loop
 * running, `acquireSync()` blocks the thread, `{ using h = await lock.hold(); ... }` is Python's
 * `with lock:`. If its holder dies, the next blocking acquirer takes it over within about
 * 100 ms and a WARNING is logged, where Python would wait for ever.
 */
export class Lock extends SemLock {
  constructor(_options?: ContextOptions, adopted?: NSemLock) {
    super(KIND_LOCK, 1, 1, adopted);
  }

  override toString(): string {
    let name: string;
    if (this._n.isMine()) name = ownerName();
    else if (this._n.value === 1) name = 'None';
    else name = this._n.ownerPid() === process.pid ? 'SomeOtherThread' : 'SomeOtherProcess';
    return `<Lock(owner=${name})>`;
  }
}

/**
 * Python's `multiprocessing.RLock`: a recursive lock, re-entrant for its owner and released only
 * by it, as many times as acquired. The owner is the process: its async tasks share the
 * ownership (Python's owner is a thread).
 */
export class RLock extends SemLock {
  constructor(_options?: ContextOptions, adopted?: NSemLock) {
    super(KIND_RLOCK, 1, 1, adopted);
  }

  override toString(): string {
    let name: string;
    let count: number | string;
    if (this._n.isMine()) {
      name = ownerName();
      count = this._n.count();
    } else if (this._n.value === 1) {
      name = 'None';
      count = 0;
    } else {
      name = this._n.ownerPid() === process.pid ? 'SomeOtherThread' : 'SomeOtherProcess';
      count = 'nonzero';
    }
    return `<RLock(${name}, ${count})>`;
  }
}

function semValue(value: number | { value?: number } | undefined): number {
  const v = value !== null && typeof value === 'object' ? value.value ?? 1 : value ?? 1;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`semaphore value must be an integer, not ${inspect(v)}`);
  if (v < 0) throw new ValueError('semaphore initial value must be >= 0');
  if (v > SEM_VALUE_MAX) throw new ValueError('semaphore initial value out of range');
  return v;
}

/**
 * Python's `multiprocessing.Semaphore`: a counter shared between processes; `acquire()` waits while
 * it is zero and takes one, `release()` gives one back.
 */
export class Semaphore extends SemLock {
  constructor(value?: number | SemaphoreOptions, adopted?: NSemLock) {
    if (adopted) super(KIND_SEMAPHORE, 0, 0, adopted);
    else super(KIND_SEMAPHORE, semValue(value), SEM_VALUE_MAX);
  }

  /** Python's `get_value()`. */
  getValue(): number {
    return this._n.value;
  }

  override toString(): string {
    return `<Semaphore(value=${this._n.value})>`;
  }
}

/**
 * Python's `multiprocessing.BoundedSemaphore`: a Semaphore whose `release()` throws `ValueError`
 * when the count would go above its initial value.
 */
export class BoundedSemaphore extends Semaphore {
  constructor(value?: number | SemaphoreOptions, adopted?: NSemLock) {
    if (adopted) {
      super(undefined, adopted);
    } else {
      const v = semValue(value);
      super(undefined, nativeCall(() => new native.NativeSemLock(KIND_BOUNDED, v, v)));
    }
  }

  override toString(): string {
    return `<BoundedSemaphore(value=${this._n.value}, maxvalue=${this._n.maxValue})>`;
  }
}

registerKind('semlock', (s: SemLockState, fds: number[]) => {
  const n = nativeCall(() => native.NativeSemLock.adopt(fds[0], s.id));
  switch (s.kind) {
    case KIND_LOCK: return new Lock(undefined, n);
    case KIND_RLOCK: return new RLock(undefined, n);
    case KIND_SEMAPHORE: return new Semaphore(undefined, n);
    case KIND_BOUNDED: return new BoundedSemaphore(undefined, n);
    default: throw new ValueError(`unknown lock kind ${s.kind}`);
  }
});

// ---- Condition ----------------------------------------------------------------------

interface ConditionState { id: BlockId; lock: Lock | RLock }

/**
 * Python's `multiprocessing.Condition`: a condition variable shared between processes, over a
 * Lock or an RLock (a new RLock by default). `wait` and `waitFor` return Promises; their
 * `...Sync` twins block the thread.
 */
export class Condition {
  /** @internal */
  readonly _n: NCondition;
  /** @internal */
  readonly _lock: Lock | RLock;

  constructor(lock?: Lock | RLock | null | ConditionOptions, adopted?: NCondition) {
    const l = lock !== null && typeof lock === 'object' && !(lock instanceof SemLock) ? lock.lock : lock;
    if (l != null && !(l instanceof Lock || l instanceof RLock)) {
      throw new TypeError('Condition needs a Lock or RLock from node-multiprocessing');
    }
    this._lock = l ?? new RLock();
    this._n = adopted ?? nativeCall(() => new native.NativeCondition(this._lock._n));
  }

  /** Acquire the underlying lock (Python's `acquire(block, timeout)`); see {@link SemLock.acquire}. */
  acquire(block?: boolean | AcquireOptions, timeout?: Timeout): Promise<boolean> {
    return this._lock.acquire(block, timeout);
  }

  /** Acquire the underlying lock, blocking the thread; see {@link SemLock.acquireSync}. */
  acquireSync(block?: boolean | AcquireOptions, timeout?: Timeout): boolean {
    return this._lock.acquireSync(block, timeout);
  }

  /** Release the underlying lock (Python's `release()`). */
  release(): void {
    this._lock.release();
  }

  /** Acquire the underlying lock for a `using` scope (Python's `with cond:`); see {@link SemLock.hold}. */
  hold(block?: boolean | AcquireOptions, timeout?: Timeout): Promise<Held> {
    return this._lock.hold(block, timeout);
  }

  /** `hold()` that blocks the thread while it waits. */
  holdSync(block?: boolean | AcquireOptions, timeout?: Timeout): Held {
    return this._lock.holdSync(block, timeout);
  }

  #begin(): NCondWait {
    if (!this._lock._n.isMine()) throw assertionError('must acquire() condition before using wait()');
    return nativeCall(() => this._n.waitBegin());
  }

  /**
   * Release the lock, wait until notified or `timeout` seconds pass, re-acquire it.
   * False if the timeout passed.
   */
  async wait(timeout?: Timeout | { timeout?: Timeout }): Promise<boolean> {
    const dl = deadlineOf(timeoutArg(timeout));
    const w = this.#begin();
    let notified = false;
    let failure: unknown;
    try {
      for (;;) {
        const over = expired(dl);
        const token = over ? 0 : futexToken();
        if (nativeCall(() => this._n.pollOrWatch(w, token, secondsLeft(dl))) === 1) {
          notified = true;
          break;
        }
        if (over) break;
        await changed(token);
      }
    } catch (e) {
      failure = e;
    }
    await this._lock.acquire();
    const r = this._n.waitFinish(w, notified);
    if (failure !== undefined) throw failure;
    return r;
  }

  /** `wait()` that blocks the thread, as Python's `Condition.wait(timeout)`. */
  waitSync(timeout?: Timeout | { timeout?: Timeout }): boolean {
    const secs = timeoutSeconds(timeoutArg(timeout));
    const w = this.#begin();
    let notified = false;
    try {
      notified = blockFor(secs, (s) => nativeCall(() => this._n.pollWait(w, s)), (n) => !n);
    } finally {
      this._lock.acquireSync();
      notified = this._n.waitFinish(w, notified);
    }
    return notified;
  }

  /** Wait until `predicate()` is truthy (or `timeout` passes); its last value. */
  async waitFor<T>(predicate: () => T | Promise<T>, timeout?: Timeout | { timeout?: Timeout }): Promise<T> {
    let result = await predicate();
    const dl = deadlineOf(timeoutArg(timeout));
    while (!result && !expired(dl)) {
      await this.wait(secondsLeft(dl));
      result = await predicate();
    }
    return result;
  }

  /** `waitFor()` that blocks the thread, as Python's `Condition.wait_for(predicate, timeout)`. */
  waitForSync<T>(predicate: () => T, timeout?: Timeout | { timeout?: Timeout }): T {
    let result = predicate();
    const dl = deadlineOf(timeoutArg(timeout));
    while (!result && !expired(dl)) {
      this.waitSync(secondsLeft(dl));
      result = predicate();
    }
    return result;
  }

  /** Wake up to `n` waiters (default 1); the lock must be held. */
  notify(n: number | { n?: number } = 1): void {
    const k = typeof n === 'object' ? n.n ?? 1 : n;
    if (!this._lock._n.isMine()) throw assertionError('lock is not owned');
    nativeCall(() => this._n.notify(k));
  }

  /** Python's `notify_all()`: wake every waiter; the lock must be held. */
  notifyAll(): void {
    this.notify(Infinity);
  }

  /** How this object crosses a process boundary ({@link Shareable}). @internal */
  [reduce](): Reduced {
    const { id, fds, undo } = transferOf(this._n);
    return { kind: 'condition', state: { id, lock: this._lock } satisfies ConditionState, fds, undo };
  }

  /** Python's `repr()`: `<Condition(<RLock(...)>, 0)>`, with the number of waiters. */
  toString(): string {
    return `<Condition(${this._lock}, ${this._n.nWaiting})>`;
  }

  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

registerKind('condition', (s: ConditionState, fds: number[]) =>
  new Condition(s.lock, nativeCall(() => native.NativeCondition.adopt(fds[0], s.id, s.lock._n))));

// ---- Event --------------------------------------------------------------------------

/** Python's `multiprocessing.Event`: a flag shared between processes; `wait()` resolves once it is set. */
export class Event {
  /** @internal */
  readonly _n: NEvent;

  constructor(_options?: ContextOptions, adopted?: NEvent) {
    this._n = adopted ?? nativeCall(() => new native.NativeEvent());
  }

  /** Python's `is_set()`. */
  isSet(): boolean {
    return this._n.isSet();
  }

  /** Python's `set()`: set the flag and wake every waiter. */
  set(): void {
    this._n.set();
  }

  /** Python's `clear()`: reset the flag. */
  clear(): void {
    this._n.clear();
  }

  /** Resolve with the flag once set, or false when `timeout` seconds pass first. */
  async wait(timeout?: Timeout | { timeout?: Timeout }): Promise<boolean> {
    if (this._n.isSet()) return true;
    const dl = deadlineOf(timeoutArg(timeout));
    for (;;) {
      const over = expired(dl);
      const token = over ? 0 : futexToken();
      if (nativeCall(() => this._n.waitOrWatch(token, secondsLeft(dl))) === 1) return true;
      if (over) return false;
      await changed(token);
    }
  }

  /** `wait()` that blocks the thread: true once the flag is set, false on timeout. */
  waitSync(timeout?: Timeout | { timeout?: Timeout }): boolean {
    const secs = timeoutSeconds(timeoutArg(timeout));
    return blockFor(secs, (s) => nativeCall(() => this._n.wait(s)), (set) => !set);
  }

  /** How this object crosses a process boundary ({@link Shareable}). @internal */
  [reduce](): Reduced {
    const { id, fds, undo } = transferOf(this._n);
    return { kind: 'event', state: { id }, fds, undo };
  }

  /** Python's `repr()`: `<Event(set)>` or `<Event(unset)>`. */
  toString(): string {
    return `<Event(${this._n.isSet() ? 'set' : 'unset'})>`;
  }

  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

registerKind('event', (s: { id: BlockId }, fds: number[]) => new Event(undefined, nativeCall(() => native.NativeEvent.adopt(fds[0], s.id))));

// ---- Barrier ------------------------------------------------------------------------

/** A Barrier's `action`: called by one of the parties (the last to arrive) each time the barrier opens. */
export type BarrierAction = () => unknown;
/** The options form of `new Barrier(parties, action, timeout)`. */
export interface BarrierOptions {
  /** Called by the last party to arrive, before the others are released. */
  action?: BarrierAction | null;
  /** The default timeout of `wait()`, in seconds. */
  timeout?: Timeout;
  /** Python's `ctx` argument: accepted and ignored (there is one context). */
  ctx?: unknown;
}
interface BarrierState { id: BlockId; action: BarrierAction | null; timeout: Timeout }
type ArrivalJs = NonNullable<ReturnType<NBarrier['arriveOrWatch']>>;

/** A barrier for `parties` processes; `action` runs in the last to arrive, once per pass. */
export class Barrier {
  /** @internal */
  readonly _n: NBarrier;
  readonly #action: BarrierAction | null;
  readonly #timeout: Timeout;

  constructor(parties: number, action?: BarrierAction | BarrierOptions | null, timeout?: Timeout, adopted?: NBarrier) {
    let act: BarrierAction | null | undefined;
    if (action !== null && typeof action === 'object') {
      act = action.action;
      timeout = action.timeout;
    } else {
      act = action;
    }
    if (act != null && typeof act !== 'function') throw new TypeError('action must be a function');
    this.#action = act ?? null;
    this.#timeout = timeout;
    this._n = adopted ?? nativeCall(() => new native.NativeBarrier(parties));
  }

  /** Python's `parties`: how many processes must call `wait()` to open the barrier. */
  get parties(): number {
    return this._n.parties;
  }

  /** Python's `n_waiting`: how many are waiting now. */
  get nWaiting(): number {
    return this._n.nWaiting;
  }

  /** Python's `broken`: true after `abort()`, a timeout or an action that threw, until `reset()`. */
  get broken(): boolean {
    return this._n.broken;
  }

  /**
   * Wait for all parties; resolves with this party's index, distinct in 0..parties-1.
   * Rejects with BrokenBarrierError if the barrier is or becomes broken (a timeout
   * breaks it, as in Python).
   */
  async wait(timeout?: Timeout | { timeout?: Timeout }): Promise<number> {
    let t = timeoutArg(timeout);
    if (t == null) t = this.#timeout;
    const dl = deadlineOf(t);
    let a: ArrivalJs | null;
    for (;;) {
      const over = expired(dl);
      const token = over ? 0 : futexToken();
      a = call(() => this._n.arriveOrWatch(token, secondsLeft(dl)));
      if (a) break;
      if (over) {
        this._n.abort();
        throw new BrokenBarrierError();
      }
      await changed(token);
    }
    if (a.last) return this.#last(a, true);
    for (;;) {
      const over = expired(dl);
      const token = over ? 0 : futexToken();
      const r = call(() => this._n.pollOrWatch(a, token, secondsLeft(dl)));
      if (r >= 0) return r;
      if (r === -1) throw new BrokenBarrierError();
      if (over) {
        const i = this._n.timedOut(a);
        if (i >= 0) return i;
        throw new BrokenBarrierError();
      }
      await changed(token);
    }
  }

  /** `wait()` that blocks the thread; returns the arrival index, as Python's. */
  waitSync(timeout?: Timeout | { timeout?: Timeout }): number {
    let t = timeoutArg(timeout);
    if (t == null) t = this.#timeout;
    const secs = timeoutSeconds(t);
    const dl = deadlineOf(t);
    const a = call(() => this._n.arrive(secs));
    if (!a) throw new BrokenBarrierError();
    if (a.last) return this.#last(a, false) as number;
    const r = call(() => this._n.pollWait(a, secondsLeft(dl)));
    if (r < 0) throw new BrokenBarrierError();
    return r;
  }

  #last(a: ArrivalJs, async: true): Promise<number>;
  #last(a: ArrivalJs, async: false): number;
  #last(a: ArrivalJs, async: boolean): number | Promise<number> {
    const pass = (): number => {
      const r = call(() => this._n.pass(a));
      if (r < 0) throw new BrokenBarrierError();
      return r;
    };
    if (!this.#action) return async ? Promise.resolve().then(pass) : pass();
    let out: unknown;
    try {
      out = this.#action();
    } catch (e) {
      this._n.abort();
      throw e;
    }
    if (async && out && typeof (out as Promise<unknown>).then === 'function') {
      return (out as Promise<unknown>).then(pass, (e) => {
        this._n.abort();
        throw e;
      });
    }
    return async ? Promise.resolve().then(pass) : pass();
  }

  /** Back to the empty state; parties waiting now get BrokenBarrierError. */
  reset(): void {
    this._n.reset();
  }

  /** Put the barrier in the broken state: current and future waits fail. */
  abort(): void {
    this._n.abort();
  }

  /** How this object crosses a process boundary ({@link Shareable}). @internal */
  [reduce](): Reduced {
    const { id, fds, undo } = transferOf(this._n);
    return { kind: 'barrier', state: { id, action: this.#action, timeout: this.#timeout } satisfies BarrierState, fds, undo };
  }

  /** Python's `repr()`: `<Barrier(parties=2, nWaiting=0, broken=False)>`. */
  toString(): string {
    return `<Barrier(parties=${this.parties}, nWaiting=${this.nWaiting}, broken=${this.broken ? 'True' : 'False'})>`;
  }

  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

registerKind('barrier', (s: BarrierState, fds: number[]) =>
  new Barrier(0, s.action, s.timeout, nativeCall(() => native.NativeBarrier.adopt(fds[0], s.id))));
