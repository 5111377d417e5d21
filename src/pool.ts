// Process pools (Python's multiprocessing.pool.Pool). Each worker is a daemonic process
// with its own duplex Connection to the pool: the pool sends task batches and keeps a few
// in flight per worker; the worker sends result batches back, in the order of its tasks
// (see pool_worker.ts for the flat message layout). A worker's death is seen as EOF on
// its connection: the tasks it held fail with an error naming it, and a fresh worker
// takes its place. The results and iterators handed to callers are in pool_jobs.ts;
// how tasks are packed into batches, in pool_batch.ts. What remains here is one piece:
// the scheduler that Pool and ThreadPool share (workers, dispatch, loss and replacement).
import { inspect } from 'node:util';
import { Pipe } from './connection.js';
import { DefaultContext, defaultContext, type BaseContext } from './context.js';
import { MaybeEncodingError, nativeCall, ProcessError, ValueError, WorkerLostError } from './errors.js';
import { native } from './native.js';
import type { BaseProcess } from './process.js';
import { debug } from './logging.js';
import { optionalArg, optionalArgs } from './options.js';
import { Finalize } from './util.js';
import * as reactor from './wait.js';
import { DummyProcess } from './dummy_process.js';
import { compactForThread, threadChannelPair, type CompactMessage } from './thread_channel.js';
import { sharedMap, sharedMapPart } from './pool_shared.js';
import { dumps, dumpsParts, Moved, type Dumped } from './reduction.js';
import { callsOf, flatten, itemScratch, MAX_BATCH, metaScratch, packItems, slotsOf, warmPacking } from './pool_batch.js';
import {
  APPLY, APPLY1, applyArgs, AsyncResult, EACH, fromWorker, IMapIterator, mapArgs, MapResult, PLAIN, settledCalls, Signal, STAR, warmResultCopy,
  type ApplyOptions, type Callback, type ChunkOptions, type ErrorCallback, type Job, type MapOptions, type PendingTask,
} from './pool_jobs.js';
import { INIT_FAILED, poolWorker, type Batch, type Results } from './pool_worker.js';

export {
  ApplyResult, AsyncResult, IMapIterator, IMapUnorderedIterator, MapResult, RemoteTraceback,
  type ApplyOptions, type Callback, type ChunkOptions, type ErrorCallback, type MapOptions,
} from './pool_jobs.js';
export { MaybeEncodingError, WorkerLostError };
export { move } from './reduction.js';

/** The options object of `new Pool({...})`: Python's `Pool(processes, initializer, initargs, maxtasksperchild, context)`. */
export interface PoolOptions {
  /** Number of worker processes (default: `cpuCount()`). */
  processes?: number | null;
  /** Called as `initializer(...initargs)` in each worker when it starts (exported, or sent by source). */
  initializer?: Function | null;
  /** Arguments of `initializer`. */
  initargs?: unknown[];
  /** Tasks a worker runs before it is replaced by a fresh one (default: no limit). */
  maxtasksperchild?: number | null;
  /** The context that starts the workers (default: the default context). */
  context?: BaseContext | null;
}

const RUN = 0;
const CLOSE = 1;
const TERMINATE = 2;
const STATE_NAMES = ['RUN', 'CLOSE', 'TERMINATE'];

/** Batches in flight per worker (one running, the rest queued in its socket). */
const IN_FLIGHT = 3;
/**
 * Fewer pending calls than this wait for a worker to become idle rather than queue behind
 * a busy one: small batches would cost a message each for nothing (the busy worker runs
 * them no sooner), and a larger batch forms meanwhile.
 */
const MIN_QUEUED_CALLS = 32;
/**
 * The send buffer asked for on each worker's socket (the kernel grants twice this, within
 * net.core.wmem_max). Sends block when it is full; batches waiting unread in a busy
 * worker's socket are kept to a third of what was granted (the rest covers the kernel's
 * per-write overhead), so a send to a busy worker never blocks and the pool cannot wait
 * on a worker that waits on the pool to read its results. A batch beyond that budget
 * waits for an idle worker. The default buffer (208 KiB) would not even hold one chunk
 * of a large map behind the one running, leaving the worker idle between chunks.
 */
const SEND_BUFFER = 1 << 20;
/**
 * Bytes of batches that may wait unread behind a busy worker thread: as much as behind a
 * worker process with the socket buffer it is granted.
 */
const THREAD_BUDGET = Math.floor((2 * SEND_BUFFER) / 3);
/**
 * Bytes of `move()`d buffers in one batch to a worker thread (they are not copied, so the
 * budget above does not see them): big items go a few per batch (an item of 8 MiB or
 * more alone), and the rest wait in the pool's queue for whichever thread is free first,
 * rather than behind a thread that may be slow (a loaded machine, a longer item). Each
 * batch and its results cost both ends a message (~0.1 ms each side), which a few items
 * share, and the batches queued behind a running one keep a thread busy while the pool's
 * thread waits for a core to answer (2-3 threads on 2 cores): a map of 128 x 1 MiB was
 * ~15% faster with 4 per batch than with 1, and 7% faster again with 8 (16: no better).
 * A batch's size also follows the work left (#dispatch), so the last ones are small.
 */
const MOVED_PER_BATCH = 8 << 20;
/** Bytes moved per task from which a second batch is queued behind a busy thread however few tasks wait (see #dispatch). */
const HEAVY_MOVED = 64 << 10;
/** The bytes of a batch that goes compact (none: see Compact). */
const NO_BYTES = Buffer.alloc(0);
/** Seconds a worker has to exit after SIGTERM before SIGKILL. */
const KILL_GRACE = 1;
/**
 * Seconds a stopped worker thread has to end before it is left (a thread in a JavaScript
 * loop or a `...Sync` call stops within a tenth of a second; one inside other native code
 * cannot be stopped): long enough for a loaded machine.
 */
const THREAD_STOP_GRACE = 10;

let fnCounter = 0;
const fnIds = new WeakMap<Function, number>();
let lastFn: Function | null = null;
let lastFnId = 0;

function fnIdOf(fn: Function): number {
  if (fn === lastFn) return lastFnId;
  let id = fnIds.get(fn);
  if (id === undefined) fnIds.set(fn, (id = ++fnCounter));
  lastFn = fn;
  lastFnId = id;
  return id;
}

/**
 * What a pool needs of the process (or thread) a worker runs in: BaseProcess's surface.
 * @internal
 */
export interface PoolWorkerProcess {
  name: string;
  daemon: boolean;
  readonly exitcode: number | null;
  readonly ident: number | null;
  start(): void;
  join(timeout?: number | null): Promise<void>;
  terminate(): void;
  kill(): void;
  /** A descriptor readable once the worker has ended, if it has one (a process's pidfd). */
  readonly _waitFd?: number;
}

/**
 * What a pool needs of its end of a worker's channel: a Connection's surface (Pool), or a
 * ThreadChannel's (ThreadPool). @internal
 */
export interface PoolChannel {
  readonly closed: boolean;
  send(obj: unknown): void;
  sendBytes(buf: ArrayBufferView): void;
  recv(): Promise<unknown>;
  recvBytes(): Promise<Buffer>;
  close(): void;
  /** Send one message of two parts serialized by `dumpsParts` (a Connection has this). */
  _sendParts?(head: Uint8Array, tail: Uint8Array): void;
  /** Send bytes serialized for it, with what goes beside them (a ThreadChannel has this). */
  _sendSerialized?(data: Buffer, transfer: unknown[] | undefined): void;
  /** Send a compact message (see compactForThread; false: refused, nothing sent; a ThreadChannel has this). */
  _sendCompact?(m: CompactMessage): boolean;
  /** The worker has ended: reads end with EOF once what it sent is read (a ThreadChannel has this). */
  _peerEnded?(): void;
}

interface Worker<P extends PoolWorkerProcess = PoolWorkerProcess> {
  proc: P;
  conn: PoolChannel;
  name: string;
  /** Tasks sent and not answered, oldest first from `head` (results come back in order). */
  held: PendingTask[];
  head: number;
  /** Rows of the task at `head` already answered (a run of one-item tasks, answered in parts). */
  headDone: number;
  /**
   * Rows left in each batch in flight, oldest first. A row is what the worker sees as a
   * task (a line of the task table): one per task, one per item of a run (EACH).
   */
  inflight: number[];
  /** Bytes of each batch in flight. */
  inflightBytes: number[];
  /** Bytes of batches that may wait unread in its socket (see SEND_BUFFER). */
  budget: number;
  /** Function ids this worker already has. */
  fns: Set<number>;
  /** Tasks sent to it (for maxtasksperchild). */
  assigned: number;
  reading: boolean;
  /** It has answered at least once (it has started, and loaded the module of a task). */
  answered: boolean;
  gone: boolean;
  /** A send to it failed: it gets nothing more (its reader, or the watch, replaces it). */
  broken: boolean;
  /** Stops the watch on its end. */
  unwatch: AbortController;
}

/** Tasks a worker holds. */
function heldCount(w: Worker): number {
  return w.held.length - w.head;
}

/** Rows of a task: one, or one per item of a run. */
function rowsOf(t: PendingTask): number {
  return t.kind === EACH ? t.count : 1;
}

/** Drop the first `n` items of the run `t`. */
function advanceRun(t: PendingTask, n: number): void {
  t.index += n;
  t.start += n;
  t.count -= n;
}

/** The tasks a worker holds, taken from it (a run answered in part: what is left of it). */
function takeHeld(w: Worker): PendingTask[] {
  const held = w.held.slice(w.head);
  if (w.headDone > 0 && held.length > 0) advanceRun(held[0], w.headDone);
  w.headDone = 0;
  w.held = [];
  w.head = 0;
  w.inflight.length = 0;
  w.inflightBytes.length = 0;
  return held;
}

/**
 * The finalizer of a Pool collected while its workers run (a program dropped it without
 * close() or terminate()): stop and reap them, as Python's collected Pool terminates.
 */
function stopWorkers<P extends PoolWorkerProcess>(workers: Set<Worker<P>>): void {
  for (const w of workers) {
    w.gone = true;
    w.unwatch.abort();
    w.conn.close();
    try {
      w.proc.terminate();
    } catch {
      /* closed */
    }
    void w.proc.join(KILL_GRACE).then(() => {
      if (w.proc.exitcode === null) {
        w.proc.kill();
        return w.proc.join();
      }
    }).catch(() => {});
  }
  workers.clear();
}

/** What `takeTasks` took besides the tasks: item slots, calls and rows (no object per batch). */
let takenSlots = 0;
let takenCalls = 0;
let takenRows = 0;
/** The run whose first part `takeTasks` took last (the rest stays queued), or null. */
let splitRun: PendingTask | null = null;

/**
 * The per-task loop of a batch (one small function: the JIT compiles it alone, not the
 * batch's serialization with it). Moves tasks from `queue[head..]` to `taken`, up to `n`
 * rows (see Worker.inflight), while their item slots stay within `maxSlots` (none if the
 * first does not fit) and, with moved buffers (threads), the batch within MOVED_PER_BATCH;
 * a run (EACH) longer than the room left is split, its first part taken (`splitRun`).
 * Writes the rows of the task table into metaScratch, and the definitions of the
 * functions the worker lacks (`fns`) into `defs`. Returns the new head (slots, calls and
 * rows in takenSlots, takenCalls, takenRows).
 */
function takeTasks(queue: PendingTask[], head: number, n: number, maxSlots: number, movedPerTask: number, taken: PendingTask[], fns: Set<number>, defs: Array<[number, Function]>): number {
  const meta = metaScratch;
  const cap = movedPerTask > 0 ? Math.min(n, Math.max(1, Math.floor(MOVED_PER_BATCH / movedPerTask))) : n;
  let slots = 0;
  let calls = 0;
  let knownFn: Function | null = null;
  let id = 0;
  let k = 0;
  splitRun = null;
  while (k < cap && head < queue.length) {
    let t = queue[head];
    const tslots = t.kind === PLAIN || t.kind === EACH ? t.count : t.kind === APPLY1 ? 1 : slotsOf(t);
    if (t.kind === EACH && (k + tslots > cap || slots + tslots > maxSlots)) {
      // A run longer than the room left: its first part goes (a task of its own), the rest stays queued.
      const m = Math.min(cap - k, Math.floor(maxSlots - slots));
      if (m < 1) {
        if (k > 0) break;
        takenSlots = takenCalls = takenRows = 0;
        return head;
      }
      const part: PendingTask = { job: t.job, index: t.index, fn: t.fn, src: t.src, start: t.start, count: m, kind: EACH };
      advanceRun(t, m);
      splitRun = t;
      t = part;
    } else {
      if (slots + tslots > maxSlots) {
        if (k > 0) break;
        takenSlots = takenCalls = takenRows = 0;
        return head;
      }
      queue[head++] = undefined as unknown as PendingTask;
    }
    const c = t.count;
    calls += c;
    if (t.fn !== knownFn) {
      knownFn = t.fn!;
      id = fnDef(knownFn, fns, defs);
    }
    if (t.kind === EACH) {
      // One row per item: one-item tasks to the worker.
      for (let j = 0; j < c; j++, k++) {
        meta[2 * k] = id * 2;
        meta[2 * k + 1] = 1;
      }
    } else {
      // (A call of one argument, APPLY1, is a plain call to the worker: its fast loop runs it.)
      meta[2 * k] = id * 2 + (t.kind === PLAIN || t.kind === APPLY1 ? 0 : 1);
      meta[2 * k + 1] = c;
      k++;
    }
    slots += t.kind === EACH ? c : tslots;
    taken.push(t);
    if (splitRun !== null) break;
    // A part of a shared map ends its batch: the next part is for another thread.
    if (t.fn === sharedMapPart) break;
  }
  takenSlots = slots;
  takenCalls = calls;
  takenRows = k;
  return head;
}

/** The items of the calls `takeCalls` took (a region of itemScratch). */
let takenItems: Float64Array = new Float64Array(0);

/**
 * takeTasks for a queue whose head is applyAsync(f, [x]) calls of a number each (APPLY1),
 * many small calls: one small loop that takes such calls only, up to `n` (and `maxSlots`),
 * and also packs their numbers (packItems's part) into `takenItems`. Their rows are plain
 * calls of one item each, as a map's chunks of one.
 */
function takeCalls(queue: PendingTask[], head: number, n: number, maxSlots: number, taken: PendingTask[], fns: Set<number>, defs: Array<[number, Function]>): number {
  const meta = metaScratch;
  const m = Math.min(n, Math.floor(maxSlots), queue.length - head);
  const f = itemScratch.take(m);
  let knownFn: Function | null = null;
  let id = 0;
  let k = 0;
  for (; k < m; k++) {
    const t = queue[head + k];
    const x = t.src;
    if (t.kind !== APPLY1 || typeof x !== 'number') break;
    if (t.fn !== knownFn) {
      knownFn = t.fn!;
      id = fnDef(knownFn, fns, defs);
    }
    queue[head + k] = undefined as unknown as PendingTask;
    meta[2 * k] = id * 2;
    meta[2 * k + 1] = 1;
    f[k] = x;
    taken.push(t);
  }
  splitRun = null;
  takenSlots = takenCalls = takenRows = k;
  takenItems = f.subarray(0, k);
  return head + k;
}

/** The id of `fn`, added to `defs` if the worker has not had it (`fns`). */
function fnDef(fn: Function, fns: Set<number>, defs: Array<[number, Function]>): number {
  const id = fnIdOf(fn);
  if (!fns.has(id) && !defs.some((d) => d[0] === id)) defs.push([id, fn]);
  return id;
}

/** A guess at the bytes a row of `t` moves, from its first argument (cheap: the first task of a batch). */
function movedIn(t: PendingTask | undefined): number {
  if (t === undefined) return 0;
  let x = t.kind === APPLY1 ? t.src : (t.src as unknown[])[t.kind === APPLY ? 0 : t.start];
  if (t.kind === STAR && Array.isArray(x)) x = x[0];
  if (!(x instanceof Moved)) return 0;
  const v = x.value as ArrayBufferView | ArrayBuffer;
  return v.byteLength * (t.kind === EACH ? 1 : t.count);
}

/** Bytes of the buffers a message moves (its transfer list's ArrayBuffers). */
function movedBytes(transfer: unknown[] | undefined): number {
  let n = 0;
  if (transfer) for (const x of transfer) if (x instanceof ArrayBuffer) n += x.byteLength;
  return n;
}

/**
 * Results that keep coming are read without the event loop turning (the next message is
 * in the socket already, read at once), so while workers keep answering, the program's
 * timers and I/O would wait for the whole run. Readers let the loop turn when it has not
 * for TURN_MS: a run of reads starts a chain and schedules its end at the next turn.
 */
const TURN_MS = 5;
let chainReads = 0;
let chainStart = 0;
function endChain(): void {
  chainReads = 0;
}
function longChain(): boolean {
  if (chainReads++ === 0) {
    chainStart = performance.now();
    setImmediate(endChain);
    return false;
  }
  return performance.now() - chainStart > TURN_MS;
}

function checkFn(func: unknown): void {
  if (typeof func !== 'function') throw new TypeError(`${inspect(func)} is not callable`);
}

/**
 * A pool of worker processes: `new Pool(4)` or
 * `new Pool({ processes, initializer, initargs, maxtasksperchild, context })`.
 */
export class Pool<P extends PoolWorkerProcess = BaseProcess> {
  #state = RUN;
  #ctx: BaseContext;
  #processes: number;
  #initializer: Function | null;
  #initargs: unknown[];
  #maxtasks: number | null;
  #workers = new Set<Worker<P>>();
  /**
   * Scratch of #release/#settle: the tasks one results message answers, and for each the
   * first row answered and how many (parts of a run; otherwise 0 and 1).
   */
  #released: PendingTask[] = [];
  #releasedFrom: number[] = [];
  #releasedRows: number[] = [];
  /** Where #releaseCalls left the calls a message answers. */
  #callsHeld: PendingTask[] = [];
  #queue: PendingTask[] = [];
  #head = 0;
  /** Calls, and rows (see Worker.inflight), in the pending tasks. */
  #queuedCalls = 0;
  #queuedRows = 0;
  /** Jobs not finished; the imaps among them. */
  #jobCount = 0;
  #imaps = new Set<IMapIterator<any>>();
  #dispatchScheduled = false;
  /** Batches packed by the current dispatch, sent at its end. */
  #outbox: Array<{ w: Worker<P>; batch: Batch; tasks: number; data: Buffer; fds: number[]; transfer: unknown[] | undefined; tail: Uint8Array | null; compact: CompactMessage | null }> = [];
  #initError: unknown = null;
  /** The workers have been told to stop (after close(), once the work is done). */
  #stopping = false;
  #jobsChanged = new Signal();
  /** Serialized bytes per item of recent batches: sizes batches for busy workers. */
  #bytesPerItem = 16;
  /** Bytes of moved buffers per task of the last batch that had tasks (threads only). */
  #movedPerTask = 0;
  /** Stops the workers if the pool is collected without terminate/join (Python's `_terminate`). */
  #finalizer: Finalize<[Set<Worker<P>>]>;

  constructor(processes?: number | null, initializer?: Function | null, initargs?: unknown[], maxtasksperchild?: number | null, context?: BaseContext | null);
  constructor(options?: PoolOptions);
  constructor(processes: number | null | undefined, options: Omit<PoolOptions, 'processes'>);
  constructor(...args: unknown[]) {
    const o = optionalArgs<PoolOptions>('Pool', ['processes', 'initializer', 'initargs', 'maxtasksperchild', 'context'], args);
    let ctx = o.context ?? defaultContext;
    if (ctx instanceof DefaultContext) ctx = ctx.getContext();
    this.#ctx = ctx;
    const processes = o.processes ?? ctx.cpuCount();
    if (typeof processes !== 'number' || !Number.isInteger(processes)) throw new TypeError('processes must be an integer');
    if (processes < 1) throw new ValueError('Number of processes must be at least 1');
    const mt = o.maxtasksperchild ?? null;
    if (mt !== null && (typeof mt !== 'number' || !Number.isInteger(mt) || mt <= 0)) {
      throw new ValueError('maxtasksperchild must be a positive int or None');
    }
    if (o.initializer != null && typeof o.initializer !== 'function') throw new TypeError('initializer must be a callable');
    this.#processes = processes;
    this.#initializer = o.initializer ?? null;
    this.#initargs = [...(o.initargs ?? [])];
    this.#maxtasks = mt;
    this.#finalizer = new Finalize(this, stopWorkers, [this.#workers]);
    try {
      for (let i = 0; i < processes; i++) this.#startWorker();
    } catch (e) {
      this.terminate();
      throw e;
    }
  }

  /** Python's `_processes`: the number of workers. @internal */
  get _processes(): number {
    return this.#processes;
  }

  /** The worker processes (Python's `_pool`). */
  get _pool(): P[] {
    return [...this.#workers].map((w) => w.proc);
  }

  /** @internal */
  _running(): boolean {
    return this.#state === RUN;
  }
  /** @internal */
  _terminated(): boolean {
    return this.#state === TERMINATE;
  }

  #startWorker(): Worker<P> {
    const { mine, theirs, budget } = this._channel();
    let proc: P;
    try {
      // (A spawned worker warms up before its first batch: see poolWorker.)
      const warmFirst = this.#ctx.getStartMethod() === 'spawn';
      proc = this._makeWorker({ target: poolWorker, args: [theirs, this.#initializer, this.#initargs, this.#maxtasks, warmFirst] });
      proc.start();
    } catch (e) {
      mine.close();
      throw e;
    } finally {
      theirs.close();
    }
    const w: Worker<P> = {
      proc, conn: mine, name: proc.name, held: [], head: 0, headDone: 0, inflight: [], inflightBytes: [], budget,
      fns: new Set(), assigned: 0, reading: false, answered: false, gone: false, broken: false, unwatch: new AbortController(),
    };
    this.#workers.add(w);
    debug('added worker');
    this.#watch(w);
    return w;
  }

  /**
   * Notice at once when a worker ends, even while it is idle (bpo-22393's idle case:
   * otherwise the next task would be sent to a dead worker). The watch keeps neither the
   * program alive nor the pool from being collected.
   */
  #watch(w: Worker<P>): void {
    if (!('_waitFd' in w.proc)) return;
    const pool = new WeakRef(this);
    void reactor.readable(w.proc._waitFd!, null, w.unwatch.signal, false).then((ended) => {
      const p = ended ? pool.deref() : undefined;
      if (p) p.#ended(w);
    });
  }

  /** A worker ended: an idle one is replaced now; a busy one's reader sees EOF first. */
  #ended(w: Worker<P>): void {
    w.conn._peerEnded?.();
    if (w.gone || w.reading || heldCount(w) > 0) return;
    void this.#lost(w);
  }

  /**
   * A worker's channel: the pool's end, the worker's (an argument of its target, closed
   * here once the worker has it), and how many bytes of batches may wait unread in it.
   * A duplex Pipe here (see SEND_BUFFER); a ThreadChannel in ThreadPool. @internal
   */
  protected _channel(): { mine: PoolChannel; theirs: { close(): void }; budget: number } {
    const [mine, theirs] = Pipe(true);
    try {
      const granted = nativeCall(() => native.setSendBuffer(mine.fileno(), SEND_BUFFER));
      // The worker's end too: with the default buffer (208 KiB) a worker blocked sending a
      // large map's results (25k numbers a chunk) until this process read some, and this
      // process then read the message in pieces, a wakeup each.
      nativeCall(() => native.setSendBuffer(theirs.fileno(), SEND_BUFFER));
      return { mine, theirs, budget: Math.floor(granted / 3) };
    } catch (e) {
      mine.close();
      theirs.close();
      throw e;
    }
  }

  /**
   * Whether the pool is starting: some worker has not answered yet (a thread may still be
   * starting), and no worker holds a task nor does one wait (a task of the program's, such
   * as a long one, then holds up nothing that waits for every worker). @internal
   */
  protected _starting(): boolean {
    if (this.#pending() > 0) return false;
    let cold = false;
    for (const w of this.#workers) {
      if (w.gone) continue;
      if (heldCount(w) > 0) return false;
      if (!w.answered) cold = true;
    }
    return cold;
  }

  /** Whether batches go to threads of this process (their `move()`d buffers are moved). @internal */
  protected _toThreads(): boolean {
    return false;
  }

  /**
   * A new, not yet started, daemonic worker running `target(...args)` (Python's
   * `Pool.Process`): a process of the pool's context here, a thread in ThreadPool.
   * @internal
   */
  protected _makeWorker(options: { target: Function; args: unknown[] }): P {
    const Proc = (this.#ctx as unknown as { Process: new (o: object) => P }).Process;
    const proc = new Proc(options);
    proc.name = proc.name.replace('Process', 'PoolWorker');
    proc.daemon = true;
    return proc;
  }

  /**
   * How long to wait for a killed worker (null: until it is gone; a killed process always
   * goes). @internal
   */
  protected _afterKill(): number | null {
    return null;
  }

  /**
   * A map of `func` over `items` (in chunks of `chunksize`, null: not given) done another
   * way than in chunk tasks (ThreadPool: over shared memory, see pool_shared.ts), as its
   * result and the tasks to submit; null: the usual way. @internal
   */
  protected _sharedMap(_func: Function, _items: unknown[], _chunksize: number | null, _callback: Callback<any>, _errorCallback: ErrorCallback): { result: MapResult<any>; tasks: PendingTask[] } | null {
    return null;
  }

  /** How an error names a worker that died. @internal */
  protected _describeWorker(proc: P): string {
    return `worker ${proc.name} (pid ${proc.ident})`;
  }

  #checkRunning(): void {
    if (this.#state !== RUN) throw new ValueError('Pool not running');
  }


  /** @internal */
  _submit(t: PendingTask): void {
    if (this.#initError !== null || this.#state === TERMINATE) {
      t.job._set(t.index, false, this.#initError ?? new ProcessError('the pool was terminated before this task completed'), 0, t.count);
      return;
    }
    this.#queue.push(t);
    this.#queuedCalls += t.count;
    this.#queuedRows += rowsOf(t);
    if (!this.#dispatchScheduled) this.#scheduleDispatch();
  }

  /** Dispatch once the running code is done submitting (the calls of one synchronous run go together). */
  #scheduleDispatch(): void {
    this.#dispatchScheduled = true;
    queueMicrotask(() => {
      this.#dispatchScheduled = false;
      this.#dispatch();
    });
  }

  #addJob(job: Job): void {
    this.#jobCount++;
    if (job instanceof IMapIterator) this.#imaps.add(job);
  }

  /** @internal */
  _jobDone(job: Job): void {
    this.#jobCount--;
    if (job instanceof IMapIterator) this.#imaps.delete(job);
    this.#jobsChanged.fire();
    if (this.#state === CLOSE) this.#maybeStopWorkers();
  }

  #pending(): number {
    return this.#queue.length - this.#head;
  }

  #dispatch(): void {
    if (this.#state === TERMINATE) return;
    itemScratch.reset();
    let live = 0;
    let held = 0;
    let idle = 0;
    for (const w of this.#workers) {
      if (w.gone || w.broken) continue;
      live++;
      for (let i = 0; i < w.inflight.length; i++) held += w.inflight[i];
      if (w.inflight.length === 0) idle++;
    }
    // Batches (in rows) of an even share of all the work not done, so that the workers
    // stay busy and finish together.
    let size = Math.min(MAX_BATCH, Math.max(1, Math.ceil((this.#queuedRows + held) / ((live || 1) * IN_FLIGHT))));
    // Little work in all (a short script's map or imap): all of it goes now, evenly to the
    // idle workers. In thirds, the rest would wait a round trip each for a worker to be idle.
    if (idle > 0 && this.#queuedCalls < live * MIN_QUEUED_CALLS) size = Math.min(MAX_BATCH, Math.ceil(this.#queuedRows / idle));
    // Idle workers first, then a second and third batch for each. The batches of a round
    // are all packed before any is sent: a worker woken by a batch takes a core, which
    // the pool would otherwise have to share while it packs the next ones.
    // Tasks that move big buffers to threads are long next to a round trip and go a few
    // per batch (MOVED_PER_BATCH): a second batch waits behind a busy thread however few
    // are queued, so that the thread does not wait for the pool between its last batches.
    const heavy = this._toThreads() && movedIn(this.#queue[this.#head]) >= HEAVY_MOVED;
    for (let level = 0; level < IN_FLIGHT; level++) {
      const least = level === 0 || (level === 1 && heavy) ? 1 : MIN_QUEUED_CALLS;
      for (const w of this.#workers) {
        if (this.#pending() === 0 || this.#queuedCalls < least) break;
        if (w.gone || w.broken || w.inflight.length !== level) continue;
        this.#sendBatch(w, level, size);
      }
      this.#flush();
    }
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      // (In place: code compiled for the queue then goes on with it.)
      const queue = this.#queue;
      queue.copyWithin(0, this.#head);
      queue.length -= this.#head;
      this.#head = 0;
    }
    if (this.#state === CLOSE) this.#maybeStopWorkers();
  }

  #sendBatch(w: Worker<P>, level: number, n: number): void {
    if (this.#maxtasks !== null) n = Math.min(n, this.#maxtasks - w.assigned);
    if (n <= 0) return;
    // A busy worker takes what fits its budget (estimated from earlier batches).
    let budget = Infinity;
    if (level > 0) {
      budget = w.budget;
      for (let i = 1; i < w.inflightBytes.length; i++) budget -= w.inflightBytes[i];
      if (budget <= 0) return;
    }
    const perItem = this.#bytesPerItem;
    const defs: Array<[number, Function]> = [];
    const taken: PendingTask[] = [];
    const queue = this.#queue;
    const movedPerTask = this._toThreads() ? Math.max(this.#movedPerTask, movedIn(queue[this.#head])) : 0;
    const first = queue[this.#head];
    // (A few calls go the general way: its code is made by a program's first calls of any
    // kind, and a short script's single call does not wait for this lane's to be compiled.)
    const calls = first.kind === APPLY1 && typeof first.src === 'number' && this.#queuedCalls >= MIN_QUEUED_CALLS;
    const head = calls
      ? takeCalls(queue, this.#head, n, budget / perItem, taken, w.fns, defs)
      : takeTasks(queue, this.#head, n, budget / perItem, movedPerTask, taken, w.fns, defs);
    if (taken.length === 0) return;
    const slots = takenSlots;
    const rows = takenRows;
    this.#head = head;
    this.#queuedCalls -= takenCalls;
    this.#queuedRows -= rows;
    const items = calls ? takenItems : packItems(taken, slots);
    // (The serializer copies meta out of its scratch space at once; packed numbers, the
    // last item, go to a worker process straight from theirs: see dumpsParts.)
    const batch: Batch = [defs.length ? defs : null, metaScratch.subarray(0, 2 * rows), items];
    let data: Buffer;
    let fds: number[];
    let transfer: unknown[] | undefined;
    let tail: Uint8Array | null = null;
    let compact: CompactMessage | null = null;
    try {
      // To a thread, a batch of moved buffers goes as it is, cloned by postMessage (see Compact).
      if (this._toThreads()) compact = compactForThread(batch);
      const d: Dumped & { tail?: Uint8Array | null } =
        compact !== null ? { data: NO_BYTES, fds: [], transfer: compact.transfer } : this._toThreads() ? dumps(batch, true) : dumpsParts(batch);
      ({ data, fds, transfer } = d);
      tail = d.tail ?? null;
      // With descriptors this serialization only measures the batch: it is serialized
      // again when sent (see #flush), which takes its own counts.
      d.undo?.();
    } catch (e) {
      this.#unsendable(taken, e);
      return;
    }
    if (this._toThreads()) this.#movedPerTask = movedBytes(transfer) / rows;
    const bytes = compact !== null ? compact.bytes : data.length + (tail !== null ? tail.byteLength : 0);
    if (slots > 0) this.#bytesPerItem = (perItem + bytes / slots) / 2;
    if (bytes > budget) {
      // Only idle workers take big batches: put them back.
      this.#putBack(taken);
      return;
    }
    for (const [id] of defs) w.fns.add(id);
    const held = w.held;
    for (let i = 0; i < taken.length; i++) held.push(taken[i]);
    w.assigned += rows;
    w.inflight.push(rows);
    w.inflightBytes.push(bytes);
    // With descriptors the batch is serialized again when sent: it needs its own meta. So
    // does a compact one, in case it is refused (see #flush), kept as plain numbers until
    // then: a Float64Array of more than 8 is an off-heap allocation, which while many moved
    // buffers are young starts a young collection (a map of 2000 moved 64 KiB Buffers: 7-8
    // scavenges of 0.3-9 ms on the main thread, none without).
    if (fds.length) batch[1] = batch[1].slice();
    else if (compact !== null) batch[1] = Array.from(batch[1]) as unknown as Float64Array;
    this.#outbox.push({ w, batch, tasks: taken.length, data, fds, transfer, tail, compact });
  }

  /** Some of `taken` cannot be sent (`e`): find which, fail those, queue the rest again. */
  #unsendable(taken: PendingTask[], e: unknown): void {
    const ok: PendingTask[] = [];
    let failed = false;
    for (const t of taken) {
      // A run's items are tasks of their own: each is tried, and fails, alone.
      const each = t.kind === EACH;
      const parts = each ? Array.from({ length: t.count }, (_, j) => ({ ...t, index: t.index + j, start: t.start + j, count: 1 })) : [t];
      for (const u of parts) {
        try {
          const its: unknown[] = [];
          flatten(u, its);
          dumps([u.fn, its]).undo?.();
          ok.push(u);
        } catch (err) {
          failed = true;
          u.job._set(u.index, false, err, 0, u.count);
        }
      }
    }
    if (!failed) {
      // Each can be sent alone but not all together: they fail rather than vanish.
      for (const t of taken) t.job._set(t.index, false, e, 0, t.count);
      return;
    }
    for (const t of ok) {
      this.#queue.push(t);
      this.#queuedCalls += callsOf(t);
      this.#queuedRows += rowsOf(t);
    }
  }

  /**
   * Tasks meant one for each worker (a shared map's parts): sent at once, each to a
   * worker of its own, even to one busy with earlier tasks (a part there finds less or
   * nothing left to do), unless tasks wait in the queue: then they queue behind them.
   */
  #toEach(tasks: PendingTask[]): void {
    if (this.#state !== RUN || this.#initError !== null || this.#pending() > 0) {
      for (const t of tasks) this._submit(t);
      return;
    }
    let i = 0;
    for (const w of this.#workers) {
      if (i === tasks.length) break;
      if (w.gone || w.broken) continue;
      const t = tasks[i++];
      this.#queue.push(t);
      this.#queuedCalls += t.count;
      this.#queuedRows += rowsOf(t);
      this.#sendBatch(w, w.inflight.length, 1);
    }
    this.#flush();
    // (More tasks than workers, or a worker without room: the usual way.)
    const left = this.#queue.splice(this.#head);
    this.#queuedCalls = 0;
    this.#queuedRows = 0;
    for (; i < tasks.length; i++) left.push(tasks[i]);
    for (const t of left) this._submit(t);
  }

  /** Send the batches packed so far. */
  #flush(): void {
    const outbox = this.#outbox;
    if (outbox.length === 0) return;
    this.#outbox = [];
    for (const { w, batch, tasks, data, fds, transfer, tail, compact } of outbox) {
      let sent = false;
      try {
        if (compact !== null) {
          if (!w.conn._sendCompact!(compact)) {
            // Refused (such as a buffer that cannot be moved): the serializer's way gives its error.
            batch![1] = new Float64Array(batch![1]);
            w.conn.send(batch);
          }
        } else if (fds.length) w.conn.send(batch);
        else if (w.conn._sendSerialized) w.conn._sendSerialized(data, transfer);
        else if (tail !== null) w.conn._sendParts!(data, tail);
        else w.conn.sendBytes(data);
        sent = true;
      } catch {
        // The worker is gone. A batch it never got goes back to the queue for the
        // others; its reader sees EOF and fails what it did get.
        if (!sent) this.#unsend(w, batch!, tasks);
      }
      if (!w.reading) void this.#read(w);
    }
    itemScratch.reset();
  }

  /** Take back the last batch given to `w` (`n` tasks), which could not be sent, to the queue's head. */
  #unsend(w: Worker<P>, batch: NonNullable<Batch>, n: number): void {
    const rows = batch[1].length / 2;
    const tasks = w.held.splice(w.held.length - n, n);
    w.inflight.pop();
    w.inflightBytes.pop();
    w.assigned -= rows;
    this.#queue.splice(this.#head, 0, ...tasks);
    this.#queuedRows += rows;
    for (const t of tasks) this.#queuedCalls += callsOf(t);
    w.broken = true;
    if (!w.reading && heldCount(w) === 0) void this.#lost(w);
  }

  /** Return tasks just taken from the queue to its head (a run's part: back into the run). */
  #putBack(taken: PendingTask[]): void {
    if (splitRun !== null) {
      const part = taken.pop()!;
      advanceRun(splitRun, -part.count);
      this.#queuedCalls += part.count;
      this.#queuedRows += part.count;
      splitRun = null;
    }
    this.#head -= taken.length;
    for (let i = 0; i < taken.length; i++) {
      this.#queue[this.#head + i] = taken[i];
      this.#queuedCalls += callsOf(taken[i]);
      this.#queuedRows += rowsOf(taken[i]);
    }
  }

  /** Read results from `w` while it holds tasks. */
  async #read(w: Worker<P>): Promise<void> {
    if (w.reading) return;
    w.reading = true;
    try {
      while (heldCount(w) > 0 && !w.gone) {
        if (longChain()) {
          await new Promise(setImmediate);
          continue;
        }
        let msg: Results;
        try {
          msg = (await w.conn.recv()) as Results;
        } catch (e) {
          if (!w.gone) await this.#lost(w);
          return;
        }
        w.answered = true;
        const calls = this.#releaseCalls(w, msg);
        const done = calls < 0 ? this.#release(w, msg) : 0;
        if (heldCount(w) === 0) {
          // (A new array when the calls just answered are still in this one, for #settleCalls.)
          if (calls >= 0) w.held = [];
          else w.held.length = 0;
          w.head = 0;
          w.headDone = 0;
          w.inflight.length = 0;
          w.inflightBytes.length = 0;
        }
        if (this.#maxtasks !== null && w.assigned >= this.#maxtasks && heldCount(w) === 0) this.#retire(w);
        // The worker gets its next batch before the results are handed out: it computes
        // while this process turns them into arrays and runs callbacks.
        this.#dispatch();
        if (calls >= 0) this.#settleCalls(calls, msg);
        else this.#settle(done, msg);
      }
    } finally {
      w.reading = false;
    }
  }

  /**
   * #release for a message that answers applyAsync(f, [x]) calls only, all successful (many
   * small calls): they are taken off the worker's books, left in place in `#callsHeld` (its
   * held array of now) from the index returned, for #settleCalls. -1: another message (the
   * general way).
   */
  #releaseCalls(w: Worker<P>, msg: Results): number {
    const n = msg[0];
    const held = w.held;
    const from = w.head;
    if (msg[1] !== null || n < MIN_QUEUED_CALLS || w.headDone !== 0 || from + n > held.length) return -1;
    for (let i = from; i < from + n; i++) {
      const t = held[i];
      if (t.kind !== APPLY1 || !(t instanceof AsyncResult)) return -1;
    }
    w.head = from + n;
    for (let r = n; r > 0 && w.inflight.length > 0;) {
      const c = Math.min(r, w.inflight[0]);
      r -= c;
      if ((w.inflight[0] -= c) <= 0) {
        w.inflight.shift();
        w.inflightBytes.shift();
      }
    }
    this.#callsHeld = held;
    // (The answered calls stay in this array, which a compaction leaves as it is.)
    if (w.head > 1024 && w.head * 2 > held.length) {
      w.held = held.slice(w.head);
      w.head = 0;
    }
    return from;
  }

  /** Hand the results of `msg` to the applyAsync calls #releaseCalls took (from `from`). */
  #settleCalls(from: number, msg: Results): void {
    const held = this.#callsHeld;
    this.#callsHeld = [];
    const n = msg[0];
    const values = msg[2] as ArrayLike<unknown>;
    let done = 0;
    for (let i = 0; i < n; i++) {
      i = AsyncResult._settleCalls(held, from, i, n, values);
      done += settledCalls();
      if (i === n) break;
      // A result someone waits on, or with a callback: the general way (which tells the pool itself).
      const r = held[from + i] as AsyncResult;
      held[from + i] = undefined as unknown as PendingTask;
      AsyncResult._settleOne(r, values[i]);
    }
    if (done > 0) {
      this.#jobCount -= done;
      this.#jobsChanged.fire();
      if (this.#state === CLOSE) this.#maybeStopWorkers();
    }
  }

  /**
   * The tasks `msg` answers (its `n` rows), taken off the worker's books (in `released`,
   * reused; a run answered in part stays held, `headDone` counts its rows answered).
   */
  #release(w: Worker<P>, msg: Results): number {
    const n = msg[0];
    if (n === INIT_FAILED) {
      this.#initFailed((msg[2] as unknown[])[0]);
      return 0;
    }
    const held = w.held;
    const done = this.#released;
    const from = this.#releasedFrom;
    const rows = this.#releasedRows;
    let k = 0;
    let left = n;
    for (; left > 0; k++) {
      if (w.head >= held.length) break; // failed already (the pool was terminated)
      const t = held[w.head];
      const d = w.headDone;
      const m = t.kind === EACH ? Math.min(t.count - d, left) : 1;
      done[k] = t;
      from[k] = d;
      rows[k] = m;
      left -= m;
      if (d + m < rowsOf(t)) w.headDone = d + m;
      else {
        held[w.head++] = undefined as unknown as PendingTask;
        w.headDone = 0;
      }
    }
    for (let r = n - left; r > 0 && w.inflight.length > 0;) {
      const c = Math.min(r, w.inflight[0]);
      r -= c;
      if ((w.inflight[0] -= c) <= 0) {
        w.inflight.shift();
        w.inflightBytes.shift();
      }
    }
    if (w.head > 1024 && w.head * 2 > held.length) {
      w.held = held.slice(w.head);
      w.head = 0;
    }
    return k;
  }

  /** Hand the results of `msg` to the jobs of the `count` tasks `#release` took. */
  #settle(count: number, msg: Results): void {
    const failed = msg[1];
    const values = msg[2] as ArrayLike<unknown>;
    const done = this.#released;
    let pos = 0;
    let f = 0;
    let row = 0;
    for (let k = 0; k < count; k++) {
      const t = done[k];
      done[k] = undefined as unknown as PendingTask;
      if (t.kind === EACH) {
        // Rows of a run: its items that succeeded in a row go to the job together.
        const end = row + this.#releasedRows[k];
        let index = t.index + this.#releasedFrom[k];
        while (row < end) {
          if (failed !== null && failed[f] === row) {
            f++;
            t.job._set(index++, false, fromWorker(values[pos++]), 0, 1);
            row++;
            continue;
          }
          const stop = failed !== null && f < failed.length && failed[f] < end ? failed[f] : end;
          const c = stop - row;
          t.job._set(index, true, values, pos, c);
          index += c;
          pos += c;
          row = stop;
        }
      } else if (failed !== null && failed[f] === row++) {
        f++;
        t.job._set(t.index, false, fromWorker(values[pos++]), 0, t.count);
      } else {
        const c = t.count;
        t.job._set(t.index, true, values, pos, c);
        pos += c;
      }
    }
  }


  #initFailed(err: unknown): void {
    if (this.#initError !== null) return;
    const e = new ProcessError('the pool initializer failed in a worker');
    Object.defineProperty(e, 'cause', { value: fromWorker(err), configurable: true, writable: true });
    this.#initError = e;
    this.#failAll(e);
  }

  #failAll(e: unknown): void {
    const pending = this.#queue.slice(this.#head);
    this.#queue = [];
    this.#head = 0;
    this.#queuedCalls = 0;
    this.#queuedRows = 0;
    for (const w of this.#workers) for (const t of takeHeld(w)) pending.push(t);
    for (const t of pending) t.job._set(t.index, false, e, 0, t.count);
    for (const job of [...this.#imaps]) job._wake();
  }

  /** A worker that reached maxtasksperchild exits by itself: replace it. */
  #retire(w: Worker<P>): void {
    w.gone = true;
    w.unwatch.abort();
    this.#workers.delete(w);
    w.conn.close();
    void w.proc.join(KILL_GRACE).then(() => {
      if (w.proc.exitcode === null) w.proc.kill();
    });
    if (this.#state === RUN || (this.#state === CLOSE && this.#pending() > 0)) this.#startWorker();
  }

  /** A worker died (EOF, or its end was seen): replace it, fail what it held. */
  async #lost(w: Worker<P>): Promise<void> {
    if (w.gone) return;
    w.gone = true;
    w.unwatch.abort();
    w.conn.close();
    // The replacement starts first, and the dead worker stays listed until reaped, so
    // that a join() meanwhile waits for both.
    if (this.#initError === null && (this.#state === RUN || (this.#state === CLOSE && this.#pending() > 0))) this.#startWorker();
    await w.proc.join(KILL_GRACE);
    if (w.proc.exitcode === null) {
      w.proc.kill();
      await w.proc.join(this._afterKill());
    }
    debug('cleaning up worker %d', w.proc.ident);
    this.#workers.delete(w);
    if (this.#initError !== null) return;
    const code = w.proc.exitcode;
    const held = takeHeld(w);
    if (held.length) {
      const err = new WorkerLostError(`${this._describeWorker(w.proc)} died with exit code ${code} while running this task`);
      for (const t of held) t.job._set(t.index, false, err, 0, t.count);
    }
    this.#dispatch();
    this.#jobsChanged.fire();
  }

  // --- Submitting work ---

  /** Call `func(...args)` in a worker and wait for its result: `apply(f, [1, 2])` or `apply(f, { args: [1, 2] })`. */
  apply<A extends unknown[], R>(func: (...a: A) => R, args?: A | [], kwds?: Record<string, never> | null): Promise<Awaited<R>>;
  apply<A extends unknown[], R>(func: (...a: A) => R, options: Pick<ApplyOptions<A, Awaited<R>>, 'args' | 'kwds'>): Promise<Awaited<R>>;
  apply(func: Function, ...rest: unknown[]): Promise<unknown> {
    const o = applyArgs('apply', rest);
    if (o.callback != null || o.errorCallback != null) throw new TypeError('apply() takes no callbacks: use applyAsync');
    return this.applyAsync(func as (...a: unknown[]) => unknown, { args: o.args as unknown[] }).get();
  }

  /**
   * Call `func(...args)` in a worker; returns an AsyncResult. Python's positional order
   * `applyAsync(f, args, kwds, callback, errorCallback)` (kwds empty or null), or an
   * options object: `applyAsync(f, { args, callback, errorCallback })`,
   * `applyAsync(f, args, { callback, errorCallback })`.
   */
  applyAsync<A extends unknown[], R>(func: (...a: A) => R, args?: A | [], kwds?: Record<string, never> | null, callback?: Callback<Awaited<R>>, errorCallback?: ErrorCallback): AsyncResult<Awaited<R>>;
  applyAsync<A extends unknown[], R>(func: (...a: A) => R, options: ApplyOptions<A, Awaited<R>>): AsyncResult<Awaited<R>>;
  applyAsync<A extends unknown[], R>(func: (...a: A) => R, args: A | [], options: Omit<ApplyOptions<A, Awaited<R>>, 'args'>): AsyncResult<Awaited<R>>;
  applyAsync(func: Function, args?: unknown, kwds?: unknown, callback?: unknown, errorCallback?: unknown, extra?: unknown): AsyncResult<any> {
    if (this.#state !== RUN) this.#checkRunning();
    if (typeof func !== 'function') checkFn(func);
    // The common `applyAsync(f, [x])`: no general parsing, one object (the result, which is
    // also the task; see AsyncResult), and _submit's part done here: one small function on
    // the path of each call, for the interpreter as for the JIT.
    if (Array.isArray(args) && args.length === 1 && kwds === undefined && callback === undefined && errorCallback === undefined && extra === undefined && this.#initError === null) {
      const r = new AsyncResult<any>(this, undefined, undefined, func, args[0], APPLY1);
      this.#jobCount++;
      this.#queue.push(r as PendingTask);
      this.#queuedCalls++;
      this.#queuedRows++;
      if (!this.#dispatchScheduled) this.#scheduleDispatch();
      return r;
    }
    return this.#applyAsync(func, args, kwds, callback, errorCallback, extra);
  }

  #applyAsync(func: Function, args: unknown, kwds: unknown, callback: unknown, errorCallback: unknown, extra: unknown): AsyncResult<any> {
    let r: AsyncResult<any>;
    if (Array.isArray(args) && kwds === undefined && callback === undefined && errorCallback === undefined && extra === undefined) {
      r = args.length === 1 ? new AsyncResult<any>(this, undefined, undefined, func, args[0], APPLY1) : new AsyncResult<any>(this, undefined, undefined, func, args.slice(), APPLY);
    } else {
      const o = applyArgs('applyAsync', [args, kwds, callback, errorCallback, extra]);
      const a = o.args ?? [];
      r = new AsyncResult<any>(this, o.callback, o.errorCallback, func, Array.isArray(a) ? a.slice() : [...(a as Iterable<unknown>)], APPLY);
    }
    this.#jobCount++;
    this._submit(r as PendingTask);
    return r;
  }

  /** Python's default chunksize for `len` items. */
  #defaultChunksize(len: number): number {
    if (len === 0) return 0;
    const d = this.#workers.size * 4 || this.#processes * 4;
    return Math.floor(len / d) + (len % d ? 1 : 0);
  }

  #mapAsync(func: Function, items: unknown[], chunksize: number | null | undefined, star: boolean, callback: Callback<any>, errorCallback: ErrorCallback): MapResult<any> {
    let cs = chunksize ?? this.#defaultChunksize(items.length);
    if (chunksize != null && (!Number.isInteger(chunksize) || chunksize < 1)) throw new ValueError(`Chunksize must be 1+, not ${chunksize}`);
    if (cs < 1) cs = 1;
    // Star items become argument arrays now (a non-iterable throws here).
    const shared = star ? null : this._sharedMap(func, items, chunksize ?? null, callback, errorCallback);
    if (shared !== null) {
      this.#addJob(shared.result);
      this.#toEach(shared.tasks);
      return shared.result;
    }
    const src = star && !items.every(Array.isArray) ? items.map((a) => (Array.isArray(a) ? a : [...(a as Iterable<unknown>)])) : items;
    const r = new MapResult(this, cs, src.length, callback, errorCallback);
    this.#addJob(r);
    // Chunks refer to the items in place: nothing is copied until a batch is packed, so the
    // first batch leaves before the rest are looked at.
    for (let i = 0, c = 0; i < src.length; i += cs, c++) {
      this._submit({ job: r, index: c, fn: func, src, start: i, count: Math.min(cs, src.length - i), kind: star ? STAR : PLAIN });
    }
    // Once the first batches are sent (the dispatch queued by _submit runs first), the
    // pool has nothing to do until results come: the work of the first result is done then,
    // and (once per process) V8 is given the map's loops to compile.
    if (!star && !this._toThreads() && typeof src[0] === 'number') {
      queueMicrotask(() => {
        r._prepare();
        warmResultCopy();
        warmPacking();
      });
    }
    return r;
  }

  async #collect(iterable: Iterable<unknown> | AsyncIterable<unknown>): Promise<unknown[]> {
    if (Array.isArray(iterable)) return iterable;
    if (typeof (iterable as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
      const out: unknown[] = [];
      for await (const x of iterable as AsyncIterable<unknown>) out.push(x);
      return out;
    }
    if (iterable == null || typeof (iterable as Iterable<unknown>)[Symbol.iterator] !== 'function') {
      throw new TypeError(`${inspect(iterable)} is not iterable`);
    }
    return [...(iterable as Iterable<unknown>)];
  }

  #syncItems(iterable: Iterable<unknown>): unknown[] {
    if (Array.isArray(iterable)) return iterable;
    if (iterable == null || typeof (iterable as Iterable<unknown>)[Symbol.iterator] !== 'function') {
      throw new TypeError(`${inspect(iterable)} is not iterable (mapAsync takes a sync iterable; map also takes async ones)`);
    }
    return [...iterable];
  }

  /**
   * A parallel `map`: resolves to all results in order; rejects with the first error.
   * `map(f, xs, chunksize)` or `map(f, xs, { chunksize })`.
   */
  async map<T, R>(func: (x: T) => R, iterable: Iterable<T> | AsyncIterable<T>, chunksize?: number | null | ChunkOptions): Promise<Awaited<R>[]> {
    this.#checkRunning();
    checkFn(func);
    const cs = optionalArg<number | null>('map', 'chunksize', chunksize);
    const items = await this.#collect(iterable);
    return this.#mapAsync(func, items, cs, false, null, null).get() as Promise<Awaited<R>[]>;
  }

  /**
   * As `map`, returning a MapResult at once: `mapAsync(f, xs, chunksize, callback,
   * errorCallback)`, or an options object in place of those after the ones given.
   */
  mapAsync<T, R>(func: (x: T) => R, iterable: Iterable<T>, chunksize?: number | null, callback?: Callback<Awaited<R>[]>, errorCallback?: ErrorCallback): MapResult<Awaited<R>>;
  mapAsync<T, R>(func: (x: T) => R, iterable: Iterable<T>, options: MapOptions<Awaited<R>[]>): MapResult<Awaited<R>>;
  mapAsync<T, R>(func: (x: T) => R, iterable: Iterable<T>, chunksize: number | null | undefined, options: Omit<MapOptions<Awaited<R>[]>, 'chunksize'>): MapResult<Awaited<R>>;
  mapAsync(func: Function, iterable: Iterable<unknown>, ...rest: unknown[]): MapResult<any> {
    this.#checkRunning();
    checkFn(func);
    const o = mapArgs('mapAsync', rest);
    return this.#mapAsync(func, this.#syncItems(iterable), o.chunksize, false, o.callback, o.errorCallback);
  }

  /** `map` where each item is an iterable of arguments: `starmap(f, xs, chunksize)` or `starmap(f, xs, { chunksize })`. */
  async starmap<A extends unknown[], R>(func: (...a: A) => R, iterable: Iterable<A> | AsyncIterable<A>, chunksize?: number | null | ChunkOptions): Promise<Awaited<R>[]> {
    this.#checkRunning();
    checkFn(func);
    const cs = optionalArg<number | null>('starmap', 'chunksize', chunksize);
    const items = await this.#collect(iterable);
    return this.#mapAsync(func, items, cs, true, null, null).get() as Promise<Awaited<R>[]>;
  }

  /** As `starmap`, returning a MapResult at once; optional arguments as `mapAsync`'s. */
  starmapAsync<A extends unknown[], R>(func: (...a: A) => R, iterable: Iterable<A>, chunksize?: number | null, callback?: Callback<Awaited<R>[]>, errorCallback?: ErrorCallback): MapResult<Awaited<R>>;
  starmapAsync<A extends unknown[], R>(func: (...a: A) => R, iterable: Iterable<A>, options: MapOptions<Awaited<R>[]>): MapResult<Awaited<R>>;
  starmapAsync<A extends unknown[], R>(func: (...a: A) => R, iterable: Iterable<A>, chunksize: number | null | undefined, options: Omit<MapOptions<Awaited<R>[]>, 'chunksize'>): MapResult<Awaited<R>>;
  starmapAsync(func: Function, iterable: Iterable<unknown[]>, ...rest: unknown[]): MapResult<any> {
    this.#checkRunning();
    checkFn(func);
    const o = mapArgs('starmapAsync', rest);
    return this.#mapAsync(func, this.#syncItems(iterable), o.chunksize, true, o.callback, o.errorCallback);
  }

  #imap<T, R>(func: Function, iterable: Iterable<T> | AsyncIterable<T>, chunksize: number | null | ChunkOptions | undefined, ordered: boolean): IMapIterator<R> {
    this.#checkRunning();
    checkFn(func);
    const cs = optionalArg<number | null>(ordered ? 'imap' : 'imapUnordered', 'chunksize', chunksize) ?? 1;
    if (!Number.isInteger(cs) || cs < 1) throw new ValueError(`Chunksize must be 1+, not ${cs}`);
    if (iterable == null || (typeof (iterable as Iterable<T>)[Symbol.iterator] !== 'function' && typeof (iterable as AsyncIterable<T>)[Symbol.asyncIterator] !== 'function')) {
      throw new TypeError(`${inspect(iterable)} is not iterable`);
    }
    const it = new IMapIterator<R>(this, ordered);
    this.#addJob(it);
    // Items ahead of the consumer: enough for full batches in flight to every worker,
    // and at least 64 chunks.
    const window = Math.max(64 * cs, this.#processes * IN_FLIGHT * MAX_BATCH);
    void it._feed(iterable, func, cs, false, window);
    return it;
  }

  /**
   * A lazy `map`: an async iterator of results in order (`imap(f, xs, chunksize)` or
   * `imap(f, xs, { chunksize })`). A failed task is thrown by the `next()` that reaches it;
   * as in Python, with `chunksize` 1 the following `next()` goes on with the next item,
   * and with larger chunks the failed chunk ends the iteration (its items are not returned).
   */
  imap<T, R>(func: (x: T) => R, iterable: Iterable<T> | AsyncIterable<T>, chunksize?: number | null | ChunkOptions): IMapIterator<Awaited<R>> {
    return this.#imap(func, iterable, chunksize, true);
  }

  /** As `imap`, results in the order they finish (a failure: as `imap`, in the order it finishes). */
  imapUnordered<T, R>(func: (x: T) => R, iterable: Iterable<T> | AsyncIterable<T>, chunksize?: number | null | ChunkOptions): IMapIterator<Awaited<R>> {
    return this.#imap(func, iterable, chunksize, false);
  }

  // --- Lifecycle ---

  /** No more tasks; the workers exit once all submitted work is done. */
  close(): void {
    debug('closing pool');
    if (this.#state === RUN) {
      this.#state = CLOSE;
      // Unconsumed imaps finish feeding, as Python's task handler does.
      for (const job of [...this.#imaps]) job._wake();
      this.#maybeStopWorkers();
    }
  }

  #maybeStopWorkers(): void {
    if (this.#state !== CLOSE || this.#pending() > 0 || this.#jobCount > 0) return;
    for (const w of this.#workers) {
      if (heldCount(w) > 0) return;
    }
    if (!this.#stopping) {
      // CPython's handler threads reach their ends here.
      this.#stopping = true;
      debug('worker handler exiting');
      debug('task handler sending sentinel to workers');
      debug('task handler exiting');
      debug('result handler exiting: len(cache)=%d, thread._state=%s', this.#jobCount, STATE_NAMES[this.#state]);
    }
    for (const w of this.#workers) {
      if (w.gone) continue;
      try {
        w.conn.send(null);
      } catch {
        /* already gone */
      }
    }
  }

  /** Stop the workers at once; outstanding work fails. */
  terminate(): void {
    debug('terminating pool');
    if (this.#state === TERMINATE) return;
    this.#state = TERMINATE;
    debug('finalizing pool');
    if (this.#workers.size > 0) debug('terminating workers');
    for (const w of this.#workers) {
      w.gone = true;
      w.unwatch.abort();
      try {
        w.proc.terminate();
      } catch {
        /* closed */
      }
    }
    this.#failAll(new ProcessError('the pool was terminated before this task completed'));
    for (const w of this.#workers) w.conn.close();
  }

  /** Wait for the workers to exit; call `close()` or `terminate()` first. */
  async join(): Promise<void> {
    debug('joining pool');
    if (this.#state === RUN) throw new ValueError('Pool is still running');
    if (this.#state === CLOSE) {
      // Wait for the work to finish; the last result stops the workers.
      for (const job of [...this.#imaps]) job._wake();
      while (this.#jobCount > 0 || this.#pending() > 0) await this.#jobsChanged.wait(null);
      this.#maybeStopWorkers();
    }
    if (this.#workers.size > 0) debug('joining pool workers');
    for (;;) {
      const ws = [...this.#workers];
      if (ws.length === 0) break;
      await Promise.all(ws.map(async (w) => {
        if (w.proc.exitcode === null) debug('cleaning up worker %d', w.proc.ident);
        await w.proc.join(this.#state === TERMINATE ? KILL_GRACE : null);
        if (w.proc.exitcode === null) {
          w.proc.kill();
          await w.proc.join(this._afterKill());
        }
        this.#workers.delete(w);
        if (!w.conn.closed) w.conn.close();
      }));
    }
    this.#finalizer.cancel();
  }

  /** As Python's `__exit__`: terminate, then wait for the workers. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.terminate();
    await this.join();
  }

  /** Python's `repr()`: `<Pool state=RUN pool_size=4>`. */
  toString(): string {
    return `<${this.constructor.name} state=${STATE_NAMES[this.#state]} pool_size=${this.#workers.size}>`;
  }
  /** What `console.log` and `util.inspect` show: `toString()`. */
  [inspect.custom](): string {
    return this.toString();
  }
}

/** The options of `new ThreadPool({ ... })` (Python's `ThreadPool(processes, initializer, initargs)`). */
export interface ThreadPoolOptions {
  /** How many threads (default: `cpuCount()`). */
  processes?: number | null;
  /** Called as `initializer(...initargs)` in each thread before its first task. */
  initializer?: Function | null;
  /** The initializer's arguments. */
  initargs?: unknown[];
}

/**
 * A pool of worker threads (Python's `multiprocessing.pool.ThreadPool`, also
 * `multiprocessing.dummy.Pool`): `new ThreadPool(4)` or
 * `new ThreadPool({ processes, initializer, initargs })`, with the whole API of `Pool`.
 *
 * Each worker is a daemonic `DummyProcess` (a Node worker thread): tasks, their functions
 * and their results cross as they do to a worker process (functions by module and export
 * name, values copied, the library's objects shared), and the pool keeps Pool's
 * guarantees: a worker that throws outside a task, calls `process.exit()` or is
 * terminated fails the tasks it held with `WorkerLostError` and is replaced; `terminate()`
 * returns at once and fails what is pending. A worker in a JavaScript loop or blocked in
 * one of the library's `...Sync` calls is stopped within about a tenth of a second (those
 * calls wait in slices in threads); one inside other native code (`Barrier.waitSync`, an
 * addon) cannot be stopped until that returns: `join()` after `terminate()` waits for it
 * about ten seconds, then leaves it to end when that call returns.
 */
export class ThreadPool extends Pool<DummyProcess> {
  constructor(processes?: number | null, initializer?: Function | null, initargs?: unknown[]);
  constructor(options?: ThreadPoolOptions);
  constructor(...args: unknown[]) {
    const [first] = args;
    const o = args.length === 1 && first !== null && typeof first === 'object' ? (first as ThreadPoolOptions) : undefined;
    const [processes, initializer, initargs] = args as [number | null | undefined, Function | null | undefined, unknown[] | undefined];
    super(o ? { processes: o.processes, initializer: o.initializer, initargs: o.initargs } : { processes, initializer, initargs });
  }

  protected override _channel(): { mine: PoolChannel; theirs: { close(): void }; budget: number } {
    const [mine, theirs] = threadChannelPair();
    return { mine, theirs, budget: THREAD_BUDGET };
  }

  protected override _toThreads(): boolean {
    return true;
  }

  protected override _makeWorker(options: { target: Function; args: unknown[] }): DummyProcess {
    const thread = new DummyProcess(options);
    thread.daemon = true;
    return thread;
  }

  protected override _afterKill(): number | null {
    return THREAD_STOP_GRACE;
  }

  protected override _sharedMap(func: Function, items: unknown[], chunksize: number | null, callback: Callback<any>, errorCallback: ErrorCallback): { result: MapResult<any>; tasks: PendingTask[] } | null {
    return sharedMap(this, func, items, chunksize, this._processes, this._starting(), callback, errorCallback);
  }

  protected override _describeWorker(thread: DummyProcess): string {
    return `worker ${thread.name} (thread ${thread.ident})`;
  }
}

