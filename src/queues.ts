// Queues shared between processes (Python's multiprocessing.queues): Queue,
// JoinableQueue, SimpleQueue. One file past 800 lines on purpose, as CPython's queues.py:
// the three classes share one ring handle, its fast paths, the batch of puts and the waits.
//
// An item is serialized once (reduction.dumps) and copied into a ring of shared memory
// (crates/core/src/ring.rs): there is no pipe, no feeder thread and no lock to leave
// behind. A process killed in the middle of `put` or `get` does not corrupt the queue:
// the other processes skip its unfinished message, and every completed `put` stays.
// An item larger than the ring is written beyond it, in the same shared memory, and the
// ring carries where: any item that fits in memory can be put, with the same two copies.
//
// Python's feeder thread returns from `put` at once and writes later, several items per
// write. Here, without a thread: a blocking `putSync` is written before it returns (so every
// `putSync` that returned survives its process being killed); the first `put()` of the
// running JavaScript is written at once, and the next `put()` calls without timeout of small
// items to a queue without `maxsize` join a batch of this thread's puts that one native call
// writes in one reservation, their Promises settled once it is written: when the batch
// reaches BATCH_ITEMS items or STAGE_BYTES bytes, in a microtask once the running JavaScript
// returns, before any other call on the queue, before this thread blocks in any call of the
// library (a process waiting for the answer to an item must have sent it), and at exit.
// Other puts write at once when there is room. A put that has to wait for room is
// completed by a pending Promise, or at the latest by an exit handler before the process
// exits (unless `cancelJoinThread()` was called).
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { inspect } from 'node:util';
import { isMainThread } from 'node:worker_threads';
import { assertionError, Empty, Full, mapNativeError, OSError, ValueError } from './errors.js';
import { native } from './native.js';
import { dumpsSplit, loads, reduce, registerKind, type Reduced } from './reduction.js';
import { atExit, debug } from './util.js';
import { _setBeforeBlock, blockArgs, blockFor, deadlineOf, expired, secondsLeft, timeoutSeconds, type BlockOptions, type Timeout } from './timeouts.js';
import { cancelChanged, changed, futexToken } from './wait.js';

type Handle = ReturnType<typeof native.ringCreate>;

export type { Timeout } from './timeouts.js';

/** The options form of `new Queue(maxsize)`, with `capacity`, which Python's Queue does not have. */
export interface QueueOptions {
  /** Python's `maxsize`: the most items the queue holds; `<= 0` means no limit. */
  maxsize?: number;
  /**
   * Bytes of the queue's ring (default 16 MiB): it bounds the bytes of the items waiting in
   * the ring; pages are used as items pass. An item larger than the ring does not wait in
   * it: it is written to shared memory of its own, given back once taken.
   */
  capacity?: number;
  /** Accepted for Python's `ctx` keyword; unused. */
  ctx?: unknown;
}

/** The options form of `put(obj, block, timeout)`: `q.put(x, { timeout: 1 })`. */
export type PutOptions = BlockOptions;

/** The options form of `get(block, timeout)`: `q.get({ timeout: 1 })`. */
export type GetOptions = PutOptions;

/** Default bytes of shared memory per queue. */
export const DEFAULT_CAPACITY = 16 << 20;

// Received items up to this size are copied into one buffer per thread instead of a
// new Buffer each (see crates/node/src/ring.rs). One per thread, not per copy of this
// module: the addon keeps one pointer per thread, so a second copy of the module (loaded
// from another path) must register the same buffer, not leave the first reading a stale one.
const SCRATCH_BYTES = 64 * 1024;
const SCRATCH_KEY = Symbol.for('node-multiprocessing.queues.scratch');
const scratch: Buffer<ArrayBuffer> = ((globalThis as Record<symbol, Buffer<ArrayBuffer> | undefined>)[SCRATCH_KEY] ??= Buffer.from(new ArrayBuffer(SCRATCH_BYTES)));
native.ringScratch(scratch);

const V8_FORMAT = 0xff;

/** The one-call paths of putSync/getSync/putNowait/getNowait (plain N-API callbacks). */
interface FastPaths {
  /** As native.ringPut, over a `ringRaw` handle. */
  put(raw: unknown, data: Buffer, timeout: number, tag?: number): boolean;
  /** As native.ringGet, over a `ringRaw` handle. */
  get(raw: unknown, timeout: number): number | Buffer;
  /**
   * Put the items packed in `packed`'s first `nbytes` (each a u32 LE length, then its
   * bytes), waiting for room up to `timeout` seconds (-1: no limit); the bytes put.
   */
  putBatch(raw: unknown, packed: Buffer, nbytes: number, timeout: number): number;
}
const fast = native.ringFastPaths() as FastPaths;

// Views of the first n bytes of `scratch` for small n, made once: loads copies what it
// keeps, so the same view serves every item of that length.
const VIEW_LIMIT = 4096;
const views: (Buffer | undefined)[] = [];
/** As `views`, without the first byte (a Buffer item's tag). */
const payloads: (Uint8Array | undefined)[] = [];
/** reduction.ts's first byte of a Buffer serialized by itself. */
const TAG_BUFFER = 6;

/** Node's Buffer class proper: `Buffer.allocUnsafe` makes its small Buffers with it, as slices of a slab. */
const FastBuffer = (Buffer as unknown as { [Symbol.species]: new (ab: ArrayBuffer, offset: number, length: number) => Buffer })[Symbol.species];
const SLAB_BYTES = 8192;
let slab = new ArrayBuffer(SLAB_BYTES);
let slabUsed = 0;

/**
 * A small Buffer item received in `scratch` (`r` bytes with its tag): a copy in a slice of
 * a slab, as `Buffer.allocUnsafe` makes one, without its calls (they cost most of a get
 * until the optimizing compiler has run, the first thousands of gets of a fresh process).
 * `getSync()` has these lines inline, on purpose: its usual call is one function (see there).
 */
function smallBuffer(r: number): Buffer {
  const n = r - 1;
  if (slabUsed + n > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabUsed = 0;
  }
  const out = new FastBuffer(slab, slabUsed, n);
  slabUsed = (slabUsed + n + 7) & ~7;
  // A plain view (not Buffer#subarray: see `decode`).
  out.set((payloads[r] ??= new Uint8Array(scratch.buffer, scratch.byteOffset + 1, n)));
  return out;
}

/**
 * An item as received: its length in `scratch`, or a Buffer of its own. `trusted`: the
 * queue is the family's (see reduction.loads).
 */
function decode(r: number | Buffer, trusted: boolean): unknown {
  if (typeof r !== 'number') return loads(r, undefined, true, trusted);
  if (r > 1 && r <= VIEW_LIMIT && scratch[0] === TAG_BUFFER) return smallBuffer(r);
  // The V8 format may rebuild objects by importing modules, which may use a queue in
  // turn: keep the bytes out of the shared scratch buffer.
  if (scratch[0] === V8_FORMAT) return loads(Buffer.from(scratch.subarray(0, r)), undefined, false, trusted);
  if (r > VIEW_LIMIT) return loads(scratch.subarray(0, r), undefined, false, trusted);
  let v = views[r];
  // Made as Buffer#subarray would, without it: its first call costs a few hundred
  // microseconds in a fresh process (measured), on the first get.
  if (v === undefined) v = views[r] = new FastBuffer(scratch.buffer, scratch.byteOffset, r);
  return loads(v, undefined, false, trusted);
}

function call<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw mapNativeError(e);
  }
}

/** Seconds for the native blocking calls: -1 no limit, 0 don't wait. */
function nativeTimeout(block: boolean, timeout: Timeout): number {
  if (!block) return 0;
  const t = timeoutSeconds(timeout);
  return t === null ? -1 : t;
}

/** An item serialized for the ring: `tag`, when set, is a byte written before `data`. */
interface Item {
  data: Buffer;
  tag?: number;
}

// Batches of puts (see the top of the file).
/** The largest item (with its tag) that joins a batch; bigger ones are written at once. */
const BATCH_ITEM_MAX = 1024;
/** Bytes of a queue's batch buffer. */
const STAGE_BYTES = 16 * 1024;
/** A batch is written once it holds this many bytes (so that the next item always fits)... */
const STAGE_FLUSH = STAGE_BYTES - BATCH_ITEM_MAX - 4;
/** ... or this many items (a consumer sees none of them until then). */
const BATCH_ITEMS = 128;

const resolved = Promise.resolve();

/** Queues of this thread with a batch not yet written. */
const batching = new Set<BaseQueue>();

/** Write every batch of this thread (before this thread blocks). */
function flushBatches(): void {
  for (const q of [...batching]) q._flushBatch(false);
}

/** The put() calls of a batch: one Promise, settled once the batch is in the queue. */
interface BatchPromise {
  promise: Promise<void>;
  resolve(): void;
  reject(e: unknown): void;
}

function batchPromise(): BatchPromise {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Serialize an item for the ring. */
function serialize(obj: unknown): Item {
  // Any Buffer goes as its tag and its own bytes, copied once, into the ring.
  const { data, fds, tag, undo } = dumpsSplit(obj, 0);
  if (fds.length > 0) {
    undo?.();
    throw new TypeError(
      'cannot put an item that contains queues, locks, connections or shared memory on a queue: ' +
        'a queue carries bytes, not descriptors. Pass such objects as Process arguments or send them through a Pipe.',
    );
  }
  return { data, tag };
}

/** A put waiting for room, in this process. */
interface PendingPut {
  item: Item;
  deadline: number | null;
  resolve(): void;
  reject(e: unknown): void;
  timer?: NodeJS.Timeout;
}

/** Queues of this process with puts still waiting for room: flushed at exit. */
const unflushed = new Set<BaseQueue>();

// Before children are joined (priority >= 0): a child may be waiting for these items.
atExit(function flushQueues() {
  for (const q of new Set([...batching, ...unflushed])) q._flushAtExit();
}, 5);

const ADOPT = Symbol('adopt');
/** A ring received in a message; `trusted`: that message came from the family. */
type Adopted = { [ADOPT]: Handle; trusted: boolean };

function isAdopted(v: unknown): v is Adopted {
  return v !== null && typeof v === 'object' && ADOPT in v;
}

/** What Queue, JoinableQueue and SimpleQueue share. */
abstract class BaseQueue {
  /** @internal */
  readonly _h: Handle;
  /** The fast paths' handle on the same ring. */
  readonly #raw: unknown;
  /**
   * Whether items may hold code (functions by source text): true for a queue made here
   * or passed by the family, false for one that came from an unauthenticated peer.
   */
  readonly #trusted: boolean = true;
  #closed = false;
  #cancelJoin = false;
  /** Puts waiting for room, in order; only the first one watches. */
  #pending: PendingPut[] = [];
  #pumping = false;
  /** Wakes the pump early (a synchronous put took its item). */
  #kick: (() => void) | null = null;
  #pumpToken = 0;
  #drained: (() => void)[] = [];
  /** Whether puts may be batched: no `maxsize` (a batch cannot say which of its puts is Full). */
  readonly #batchable: boolean;
  /** This thread's batch of puts not yet written, packed for `fast.putBatch`; made by the first. */
  #stage: Buffer | null = null;
  /** Bytes and items in `#stage`. */
  #staged = 0;
  #stagedItems = 0;
  /**
   * A put of this thread's running JavaScript went into the queue: the next ones join a
   * batch, until a microtask ends the burst and writes the batch. (A lone put, as for a
   * request and its answer, is written at once.)
   */
  #burst = false;
  readonly #endBurst = (): void => {
    this.#burst = false;
    this._flushBatch(false);
  };
  /** The batch's put() calls, if any. */
  #batchWaiters: BatchPromise | null = null;

  constructor(maxsize: number | QueueOptions | Adopted | undefined, options?: QueueOptions) {
    if (isAdopted(maxsize)) {
      this._h = maxsize[ADOPT];
      this.#raw = native.ringRaw(this._h);
      this.#trusted = maxsize.trusted;
      this.#batchable = native.ringInfo(this._h)[0] === 0;
      return;
    }
    const opts: QueueOptions = maxsize !== null && typeof maxsize === 'object' ? { ...maxsize, ...options } : { ...options, maxsize };
    const m = opts.maxsize ?? 0;
    if (typeof m !== 'number' || !Number.isInteger(m)) throw new TypeError(`maxsize must be an integer, not ${inspect(m)}`);
    const cap = opts.capacity ?? DEFAULT_CAPACITY;
    if (typeof cap !== 'number' || !(cap >= 0) || !Number.isFinite(cap)) {
      throw new TypeError(`capacity must be a number of bytes, not ${inspect(cap)}`);
    }
    this._h = call(() => native.ringCreate(cap, m));
    this.#raw = native.ringRaw(this._h);
    this.#batchable = native.ringInfo(this._h)[0] === 0;
  }

  /** The item limit; 0 means unbounded. */
  get maxsize(): number {
    return native.ringInfo(this._h)[0];
  }

  /** Bytes of the queue's ring (see `QueueOptions.capacity`). */
  get capacity(): number {
    return native.ringInfo(this._h)[1];
  }

  /** @internal */
  protected _closedError(): Error {
    return new ValueError(`Queue ${this} is closed`);
  }

  /** @internal */
  protected get _isClosed(): boolean {
    return this.#closed;
  }

  /**
   * As `put`, blocking the calling thread (never batched: once it returns, the item is in
   * the queue); throws `Full`.
   */
  putSync(obj: unknown, block?: boolean | PutOptions, timeout?: Timeout): void {
    // The usual call (no arguments, a Buffer, on the main thread) in this one function:
    // V8 optimizes each hot function of a path on its own, inlining its callees again, so
    // the fewer functions, the less compiling (done on the cores the processes of a queue
    // need) and the fewer calls until it is done (the first thousands of puts of a process).
    if (block === undefined && timeout === undefined && obj instanceof Buffer && this.#pending.length === 0 && this.#staged === 0 && !this.#closed && isMainThread) {
      if (batching.size !== 0) flushBatches();
      try {
        fast.put(this.#raw, obj, -1, TAG_BUFFER);
      } catch (e) {
        throw mapNativeError(e);
      }
      return;
    }
    this._putSyncArgs(obj, block, timeout);
  }

  /** @internal `putSync` other than its usual call. */
  protected abstract _putSyncArgs(obj: unknown, block?: boolean | PutOptions, timeout?: Timeout): void;

  /**
   * As `get`, blocking the calling thread; throws `Empty`.
   */
  getSync(block?: boolean | GetOptions, timeout?: Timeout): unknown {
    // The usual call in this one function (see `putSync`): no arguments, on the main thread.
    if (block === undefined && timeout === undefined && this.#staged === 0 && !this.#closed && isMainThread && batching.size === 0) {
      let r: number | Buffer;
      try {
        r = fast.get(this.#raw, -1);
      } catch (e) {
        throw mapNativeError(e);
      }
      if (typeof r === 'number') {
        if (r > 1 && r <= VIEW_LIMIT && scratch[0] === TAG_BUFFER) {
          // A small Buffer item (see `smallBuffer`), made here rather than by a call.
          const n = r - 1;
          if (slabUsed + n > SLAB_BYTES) {
            slab = new ArrayBuffer(SLAB_BYTES);
            slabUsed = 0;
          }
          const out = new FastBuffer(slab, slabUsed, n);
          slabUsed = (slabUsed + n + 7) & ~7;
          out.set((payloads[r] ??= new Uint8Array(scratch.buffer, scratch.byteOffset + 1, n)));
          return out;
        }
        if (r === -1) throw new Empty();
      }
      return decode(r, this.#trusted);
    }
    return this._getSyncArgs(block, timeout);
  }

  /** @internal `getSync` other than its usual call. */
  protected abstract _getSyncArgs(block?: boolean | GetOptions, timeout?: Timeout): unknown;

  /** @internal */
  protected _putSync(obj: unknown, block: boolean, timeout: Timeout): void {
    if (this.#closed) throw this._closedError();
    let item: Item | undefined;
    // Not batched: a putSync that returned is in the queue, whatever happens to this process
    // next (a batch would be lost with it: the soak's queue scenario counts that as lost).
    if (block && timeout == null && this.#pending.length === 0) {
      if (this.#staged === 0 && isMainThread) {
        // The usual put, in one piece: each call costs until the optimizing compiler has run.
        if (batching.size !== 0) flushBatches();
        try {
          if (item === undefined && obj instanceof Buffer) fast.put(this.#raw, obj, -1, TAG_BUFFER);
          else {
            item ??= serialize(obj);
            fast.put(this.#raw, item.data, -1, item.tag);
          }
        } catch (e) {
          throw mapNativeError(e);
        }
        return;
      }
    }
    item ??= serialize(obj);
    if (this.#staged !== 0) this._flushBatch(false);
    if (this.#pending.length > 0) {
      if (!block) throw new Full();
      // Earlier puts of this process go first.
      const deadline = deadlineOf(timeout);
      this.#flushSync(deadline);
      if (this.#pending.length > 0) throw new Full();
      if (!this.#putFor(item, secondsLeft(deadline))) throw new Full();
      return;
    }
    if (!(block ? this.#putFor(item, timeoutSeconds(timeout)) : this.#put(item, 0))) throw new Full();
  }

  /** Put, blocking up to `seconds` (null: no limit; in slices in a worker thread); false if still full. */
  #putFor(item: Item, seconds: number | null): boolean {
    return blockFor(seconds, (s) => this.#put(item, s ?? -1), (ok) => !ok);
  }

  /** Put a serialized item, waiting up to `timeout` seconds (-1: no limit); false if full. */
  #put(item: Item, timeout: number): boolean {
    try {
      return fast.put(this.#raw, item.data, timeout, item.tag);
    } catch (e) {
      throw mapNativeError(e);
    }
  }

  /** Take an item, waiting up to `timeout` seconds (-1: no limit); throws Empty. */
  #get(timeout: number): unknown {
    return this.#decode(this.#take(timeout));
  }

  /** Take an item's bytes, waiting up to `timeout` seconds (-1: no limit); -1 if none came. */
  #take(timeout: number): number | Buffer {
    try {
      return fast.get(this.#raw, timeout);
    } catch (e) {
      throw mapNativeError(e);
    }
  }

  #decode(r: number | Buffer): unknown {
    if (r === -1) throw new Empty();
    return decode(r, this.#trusted);
  }

  #startBurst(): void {
    this.#burst = true;
    void resolved.then(this.#endBurst);
  }

  /** Add a serialized item (`tag`, if any, then `data`) to this thread's batch; false if it is too large for one. */
  #add(data: Uint8Array, tag: number | undefined): boolean {
    const len = tag === undefined ? data.length : data.length + 1;
    if (len > BATCH_ITEM_MAX) return false;
    const s = (this.#stage ??= Buffer.allocUnsafeSlow(STAGE_BYTES));
    let o = this.#staged;
    if (o === 0) {
      // The burst's microtask writes it at the latest.
      batching.add(this);
      _setBeforeBlock(flushBatches);
    }
    s[o] = len & 0xff;
    s[o + 1] = (len >>> 8) & 0xff;
    s[o + 2] = 0;
    s[o + 3] = 0;
    o += 4;
    if (tag !== undefined) s[o++] = tag;
    // One builtin call: a loop costs more until the optimizing compiler has run (the
    // first thousands of puts of a fresh process).
    s.set(data, o);
    this.#staged = o + data.length;
    this.#stagedItems++;
    return true;
  }

  /**
   * @internal Write this thread's batch of puts: `block`, waiting for room as long as it
   * takes; otherwise the items that do not fit now become puts waiting for room (in order,
   * before any later put).
   */
  _flushBatch(block: boolean): void {
    const n = this.#staged;
    if (n === 0) return;
    const s = this.#stage!;
    const waiters = this.#batchWaiters;
    this.#staged = 0;
    this.#stagedItems = 0;
    this.#batchWaiters = null;
    batching.delete(this);
    if (batching.size === 0) _setBeforeBlock(null);
    let done = 0;
    try {
      done = fast.putBatch(this.#raw, s, n, 0);
      if (done < n && block) {
        blockFor(
          null,
          (t) => (done += fast.putBatch(this.#raw, s.subarray(done, n), n - done, t ?? -1)),
          (d) => d < n,
        );
      }
    } catch (e) {
      const err = mapNativeError(e);
      if (waiters) waiters.reject(err);
      else throw err;
      return;
    }
    if (done >= n) {
      waiters?.resolve();
      return;
    }
    // No room now: the rest wait as single puts, the last one settling the batch's put() calls.
    let last: PendingPut | null = null;
    while (done < n) {
      const len = s[done] | (s[done + 1] << 8);
      const data = Buffer.from(s.subarray(done + 4, done + 4 + len));
      done += 4 + len;
      last = { item: { data }, deadline: null, resolve: () => {}, reject: waiters ? waiters.reject : () => {} };
      this.#pending.push(last);
    }
    if (waiters) last!.resolve = waiters.resolve;
    unflushed.add(this);
    if (!this.#pumping) void this.#pump();
  }

  /** @internal */
  protected _put(obj: unknown, block: boolean, timeout: Timeout): Promise<void> {
    let item: Item;
    let deadline: number | null;
    try {
      if (this.#closed) throw this._closedError();
      item = serialize(obj);
      if (block && timeout == null && this.#batchable && this.#pending.length === 0) {
        if (!this.#burst) this.#startBurst();
        else if (this.#add(item.data, item.tag)) {
          const w = (this.#batchWaiters ??= batchPromise());
          if (this.#stagedItems >= BATCH_ITEMS || this.#staged > STAGE_FLUSH) this._flushBatch(false);
          return w.promise;
        }
      }
      if (this.#staged !== 0) this._flushBatch(false);
      deadline = deadlineOf(timeout);
      if (this.#pending.length === 0 && this.#put(item, 0)) return Promise.resolve();
      // It waits: keep a copy, as the caller may reuse a Buffer it passed as is.
      if (item.tag !== undefined) item = { data: Buffer.from(item.data), tag: item.tag };
    } catch (e) {
      return Promise.reject(e);
    }
    if (!block || (deadline !== null && expired(deadline) && this.#pending.length === 0)) return Promise.reject(new Full());
    return new Promise<void>((resolve, reject) => {
      const p: PendingPut = { item, deadline, resolve, reject };
      this.#pending.push(p);
      unflushed.add(this);
      if (deadline !== null && this.#pending.length > 1) {
        // Puts behind the first time out on their own; the first one's watch has its deadline.
        p.timer = setTimeout(() => {
          const i = this.#pending.indexOf(p);
          if (i > 0) {
            this.#pending.splice(i, 1);
            reject(new Full());
          }
        }, Math.max(0, deadline - performance.now()));
      }
      if (!this.#pumping) void this.#pump();
    });
  }

  #settled(p: PendingPut, err?: unknown): void {
    const i = this.#pending.indexOf(p);
    if (i >= 0) this.#pending.splice(i, 1);
    if (p.timer) clearTimeout(p.timer);
    if (err === undefined) p.resolve();
    else p.reject(err);
    if (this.#pending.length === 0) {
      unflushed.delete(this);
      for (const d of this.#drained.splice(0)) d();
      if (this.#closed) native.ringReleaseFd(this._h);
    }
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      while (this.#pending.length > 0) {
        const p = this.#pending[0];
        let err: unknown;
        let done = false;
        try {
          if (expired(p.deadline)) {
            done = this.#put(p.item, 0);
            if (!done) err = new Full();
          } else {
            const token = futexToken();
            done = call(() => native.ringPutOrWatch(this._h, p.item.data, token, secondsLeft(p.deadline), p.item.tag));
            if (!done) {
              this.#pumpToken = token;
              await new Promise<void>((wake) => {
                this.#kick = wake;
                void changed(token).then(wake);
              });
              this.#kick = null;
              this.#pumpToken = 0;
              native.ringDisarm(this._h, token);
              continue;
            }
          }
        } catch (e) {
          err = e ?? new Error('put failed');
        }
        if (this.#pending[0] === p && (done || err !== undefined)) this.#settled(p, done ? undefined : err);
      }
    } finally {
      this.#pumping = false;
    }
  }

  /** Stop the pump's wait (its first item is being put synchronously). */
  #stopWatch(): void {
    if (this.#pumpToken !== 0) {
      cancelChanged(this.#pumpToken);
      native.ringDisarm(this._h, this.#pumpToken);
      this.#pumpToken = 0;
    }
    this.#kick?.();
  }

  /** Put this process's waiting items now, blocking, until `deadline`. */
  #flushSync(deadline: number | null): void {
    if (this.#pending.length === 0) return;
    this.#stopWatch();
    while (this.#pending.length > 0) {
      const p = this.#pending[0];
      const d = p.deadline === null ? deadline : deadline === null ? p.deadline : Math.min(p.deadline, deadline);
      let ok: boolean;
      try {
        ok = this.#putFor(p.item, secondsLeft(d));
      } catch (e) {
        this.#settled(p, e);
        continue;
      }
      if (ok) this.#settled(p);
      else if (p.deadline !== null && expired(p.deadline)) this.#settled(p, new Full());
      else return;
    }
  }

  /** @internal At exit: complete the puts still waiting (Python's feeder flush). */
  _flushAtExit(): void {
    // Without waiting for room after cancelJoinThread(): what does not fit is dropped.
    this._flushBatch(!this.#cancelJoin);
    unflushed.delete(this);
    if (this.#cancelJoin) return;
    this.#flushSync(null);
  }

  /** @internal Resolves when this process has no put waiting for room. */
  protected _drained(): Promise<void> {
    this._flushBatch(false);
    if (this.#pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drained.push(resolve));
  }

  /** @internal Blocking form of `_drained`: puts the waiting items now. */
  protected _drainSync(): void {
    this._flushBatch(true);
    this.#flushSync(null);
  }

  /** @internal */
  protected _getSync(block: boolean, timeout: Timeout): unknown {
    if (this.#closed) throw this._closedError();
    if (this.#staged !== 0) this._flushBatch(false);
    if (!block) return this.#get(0);
    if (timeout == null && isMainThread) {
      // The usual call, in one piece: each call matters until the optimizing compiler has
      // run (the first thousands of gets of a fresh process).
      if (batching.size !== 0) flushBatches();
      let r: number | Buffer;
      try {
        r = fast.get(this.#raw, -1);
      } catch (e) {
        throw mapNativeError(e);
      }
      if (typeof r === 'number') {
        if (r > 1 && r <= VIEW_LIMIT && scratch[0] === TAG_BUFFER) return smallBuffer(r);
        if (r === -1) throw new Empty();
      }
      return decode(r, this.#trusted);
    }
    return this.#decode(blockFor(timeoutSeconds(timeout), (s) => this.#take(s ?? -1), (r) => r === -1));
  }

  /** @internal */
  protected async _get(block: boolean, timeout: Timeout): Promise<unknown> {
    if (this.#closed) throw this._closedError();
    if (this.#staged !== 0) this._flushBatch(false);
    if (!block) return this.#get(0);
    const deadline = deadlineOf(timeout);
    for (;;) {
      if (expired(deadline)) return this.#get(0);
      const token = futexToken();
      const r = call(() => native.ringGetOrWatch(this._h, token, secondsLeft(deadline)));
      if (r !== -1) return decode(r, this.#trusted);
      await changed(token);
      native.ringDisarm(this._h, token);
    }
  }

  /** @internal Python's `get_nowait()`. */
  protected _getNowait(): unknown {
    return this._getSync(false, null);
  }

  /** Whether the queue is empty (a snapshot: other processes may change it at once). */
  empty(): boolean {
    this._flushBatch(false);
    return native.ringEmpty(this._h);
  }

  /** @internal */
  protected _close(): void {
    this._flushBatch(false);
    this.#closed = true;
    // The descriptor serves to pass the queue on, which a closed queue cannot be, and to
    // write items larger than the ring: it is released once this process's waiting puts
    // are in. The shared memory stays mapped until the object is collected (the native
    // handle's finalizer).
    if (this.#pending.length === 0) native.ringReleaseFd(this._h);
  }

  /** @internal */
  protected _cancelJoinThread(): void {
    this.#cancelJoin = true;
  }

  /** @internal */
  protected _joinThread(): Promise<void> {
    if (!this.#closed) return Promise.reject(assertionError(`Queue ${this} not closed`));
    return this._drained();
  }

  /** @internal */
  protected abstract get _kind(): string;

  /** How this object crosses a process boundary ({@link Shareable}). @internal */
  [reduce](): Reduced {
    if (this.#closed) throw this._closedError();
    this._flushBatch(false);
    return { kind: 'queue', state: { cls: this._kind }, fds: [native.ringFd(this._h)] };
  }

  /** Like Python's `repr()`: `<multiprocessing.queues.Queue object maxsize=0>`. */
  toString(): string {
    return `<multiprocessing.queues.${this._kind} object maxsize=${this.maxsize}>`;
  }

  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

/** Python's `multiprocessing.Queue`: many producers and consumers in many processes. */
export class Queue extends BaseQueue {
  /** `new Queue(maxsize = 0)`, `new Queue({ maxsize, capacity })`. */
  constructor(maxsize: number | QueueOptions = 0, options?: QueueOptions) {
    super(maxsize, options);
  }

  protected get _kind(): string {
    return 'Queue';
  }

  /** Approximate number of items in the queue. */
  qsize(): number {
    this._flushBatch(false);
    return native.ringQsize(this._h);
  }

  /** Whether the queue is at `maxsize` (or its shared memory is full). */
  full(): boolean {
    this._flushBatch(false);
    return native.ringFull(this._h);
  }

  /**
   * Put `obj`. Resolves once it is in the queue. With room it is there before `put`
   * returns, but for a small item put without `block`/`timeout` to a queue without
   * `maxsize` after another put of the running JavaScript: that joins this thread's batch
   * of puts, written in a microtask or sooner (see "Joining a process that put items on a
   * queue" in the README). `block` false or a timeout that passes: rejects with `Full`.
   */
  put(obj: unknown, block?: boolean | PutOptions, timeout?: Timeout): Promise<void> {
    const [b, t] = blockArgs(block, timeout);
    return this._put(obj, b, t);
  }

  /** @internal */
  protected _putSyncArgs(obj: unknown, block?: boolean | PutOptions, timeout?: Timeout): void {
    if (block === undefined && timeout === undefined) return this._putSync(obj, true, null);
    const [b, t] = blockArgs(block, timeout);
    this._putSync(obj, b, t);
  }

  /** `put(obj, false)`, synchronously: throws `Full`. */
  putNowait(obj: unknown): void {
    this._putSync(obj, false, null);
  }

  /** Remove and return an item. `block` false or a timeout that passes: rejects with `Empty`. */
  get(block?: boolean | GetOptions, timeout?: Timeout): Promise<unknown> {
    const [b, t] = blockArgs(block, timeout);
    return this._get(b, t);
  }

  /** @internal */
  protected _getSyncArgs(block?: boolean | GetOptions, timeout?: Timeout): unknown {
    if (block === undefined && timeout === undefined) return this._getSync(true, null);
    const [b, t] = blockArgs(block, timeout);
    return this._getSync(b, t);
  }

  /** `get(false)`, synchronously: throws `Empty`. */
  getNowait(): unknown {
    return this._getNowait();
  }

  /** No more puts or gets through this object in this process (waiting puts still complete). */
  close(): void {
    this._close();
  }

  /** After `close()`: resolves when this process's waiting puts are in the queue. */
  joinThread(): Promise<void> {
    debug('Queue.join_thread()');
    return this._joinThread();
  }

  /** Don't wait at exit for this process's puts that are still waiting for room (they are dropped). */
  cancelJoinThread(): void {
    debug('Queue.cancel_join_thread()');
    this._cancelJoinThread();
  }
}

/** Python's `multiprocessing.JoinableQueue`: a Queue with `taskDone()` and `join()`. */
export class JoinableQueue extends Queue {
  protected override get _kind(): string {
    return 'JoinableQueue';
  }

  /** One item taken from the queue has been processed. `ValueError` if called more times than items were put. */
  taskDone(): void {
    this._flushBatch(false);
    try {
      native.ringTaskDone(this._h);
    } catch (e) {
      const m = mapNativeError(e);
      if (m instanceof ValueError) throw new ValueError('task_done() called too many times');
      throw m;
    }
  }

  /** Resolves when every item put has been marked done with `taskDone()`. */
  async join(): Promise<void> {
    await this._drained();
    for (;;) {
      const token = futexToken();
      if (call(() => native.ringJoinOrWatch(this._h, token, null))) return;
      await changed(token);
      native.ringDisarm(this._h, token);
    }
  }

  /** As `join`, blocking the calling thread. */
  joinSync(): void {
    this._drainSync();
    blockFor(null, (s) => call(() => native.ringJoin(this._h, s ?? -1)), (done) => !done);
  }
}

/** Python's `multiprocessing.SimpleQueue`: put, get, empty, close. */
export class SimpleQueue extends BaseQueue {
  /** `new SimpleQueue()`; `{ capacity }` sets the bytes of shared memory. */
  constructor(options?: QueueOptions) {
    super(isAdopted(options) ? options : { capacity: options?.capacity });
  }

  protected get _kind(): string {
    return 'SimpleQueue';
  }

  protected override _closedError(): Error {
    return new OSError('handle is closed');
  }

  /** Put `obj`; resolves once it is in the queue (at once when there is room). */
  put(obj: unknown): Promise<void> {
    return this._put(obj, true, null);
  }

  /** `put` that blocks the thread while the queue is full. */
  override putSync(obj: unknown): void {
    super.putSync(obj);
  }

  /** @internal */
  protected _putSyncArgs(obj: unknown): void {
    this._putSync(obj, true, null);
  }

  /** Python's `get()`: resolves with the next item, waiting for one. */
  get(): Promise<unknown> {
    return this._get(true, null);
  }

  /** `get` that blocks the thread, as Python's does. */
  override getSync(): unknown {
    return super.getSync();
  }

  /** @internal */
  protected _getSyncArgs(): unknown {
    return this._getSync(true, null);
  }

  /** Python's `close()`: no more puts or gets through this object; later calls throw `OSError`. */
  close(): void {
    this._close();
  }
}

interface QueueState {
  cls: string;
}

registerKind('queue', (s: QueueState, fds: number[], trusted: boolean) => {
  const h = call(() => native.ringAdopt(fds[0]));
  if (s.cls !== 'SimpleQueue') debug('Queue._after_fork()');
  const adopted: Adopted = { [ADOPT]: h, trusted };
  switch (s.cls) {
    case 'JoinableQueue': return new JoinableQueue(adopted as unknown as number);
    case 'SimpleQueue': return new SimpleQueue(adopted as unknown as QueueOptions);
    default: return new Queue(adopted as unknown as number);
  }
});
