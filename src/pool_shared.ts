// A ThreadPool's map of plain numbers over shared memory. Threads share memory with the
// pool's thread, so such a map needs no batches: its items are packed once into a
// SharedArrayBuffer that each worker thread gets once (as one ordinary task of the pool,
// a "part"), the threads claim its chunks with Atomics.add on a cursor in it (a thread
// that starts late simply takes fewer), and write each result over its item. A part ends
// when no chunk is left; its answer lists only the chunks whose results were not all
// numbers (with their values). The map is done when all chunks are, if all their results
// were numbers (the parts' answers then bring nothing), else once every part that started
// has answered. A part rides on the pool's usual machinery: a thread that dies or is
// terminated fails it (and so the map, unless all chunks are done), a failed item fails
// it with its error.
// The pool's thread, idle meanwhile, copies the results of each claim into the map's
// array as soon as that claim is done (threads log the claims they finish, in the order
// they finish; it waits with Atomics.waitAsync, never blocking), so that little of that
// copy is left when the last part answers.
import { APPLY1, MapResult, type Callback, type ErrorCallback, type JobPool, type PendingTask } from './pool_jobs.js';
import { getHeapSpaceStatistics } from 'node:v8';
import { _libraryFunction, reduce, registerKind, type Reduced } from './reduction.js';

/** Fewer items than this go the usual way (the shared buffer and its parts cost more). */
const SHARED_MIN = 64;
/** A thread claims chunks of about this many items at once (always whole chunks). */
const CLAIM_ITEMS = 512;
/**
 * The chunks of a map whose chunksize is not given. Python's default (about four chunks
 * per worker) is for tasks that each cost a message; here a chunk costs an Atomics.add,
 * and small ones keep a thread that starts late, or is descheduled, from holding back a
 * large share of the map (which chunks a thread runs is not otherwise observable).
 */
const DEFAULT_CHUNK = 1024;

// The header, Int32 words before the items.
/** The counter of claims taken (claims are taken in its bit-reversed order: see sharedMapPart). */
const CURSOR = 0;
/** Chunks done. */
const DONE = 1;
/** Parts that have started. */
const JOINED = 2;
/** Whether the pool's thread waits on DONE (a part then notifies it). */
const WAITING = 3;
/** Claims logged as done. */
const LOGGED = 4;
/**
 * Set by a part before it counts done a chunk whose results are not all numbers, or that
 * threw: the map then needs the parts' answers (otherwise all its results are in memory).
 */
const DIRTY = 5;
/** Set by a part that warms the loop up first (a thread's first part, see sharedMapPart). */
const WARMING = 6;
/**
 * A pool keeps the buffer of a map whose parts have all answered for its next map of
 * numbers (see sharedMap), up to this size: a fresh one costs its page faults when the
 * items are written (some 0.3 ms for 100k numbers, 10-20% of a map's time once the
 * threads' code is compiled).
 */
const SPARE_MAX = 8 << 20;
/** Per pool: the buffer kept for its next map. */
const spares = new WeakMap<JobPool, SharedArrayBuffer>();
/** Bytes of the header; the log of claims done follows (1 + the claim, in the order they finish), then the items (doubles, aligned to 8). */
const HEADER_BYTES = 32;

/** Where the items start after the header and `claims` flags. */
function itemsOffset(claims: number): number {
  return (HEADER_BYTES + 4 * claims + 7) & ~7;
}

/** The map's shared state, as each part gets it. */
class SharedMap {
  readonly header: Int32Array;
  /** The claims done, as `1 + claim`, in the order they finished (0: not yet written). */
  readonly claimed: Int32Array;
  /** The items, each replaced by its result when that result is a number. */
  readonly values: Float64Array;
  readonly chunks: number;
  /** Chunks per claim (claims start at multiples of it). */
  readonly per: number;

  constructor(
    readonly sab: SharedArrayBuffer,
    readonly fn: Function,
    readonly length: number,
    readonly chunksize: number,
  ) {
    this.chunks = Math.ceil(length / chunksize);
    this.per = Math.max(1, Math.floor(CLAIM_ITEMS / chunksize));
    const claims = Math.ceil(this.chunks / this.per);
    this.header = new Int32Array(sab, 0, HEADER_BYTES / 4);
    this.claimed = new Int32Array(sab, HEADER_BYTES, claims);
    this.values = new Float64Array(sab, itemsOffset(claims), length);
  }

  /** The bytes of a map of `length` items in chunks of `chunksize`. */
  static bytes(length: number, chunksize: number): number {
    const chunks = Math.ceil(length / chunksize);
    const per = Math.max(1, Math.floor(CLAIM_ITEMS / chunksize));
    return itemsOffset(Math.ceil(chunks / per)) + 8 * length;
  }

  /** Goes to a thread: the same memory, shared. */
  [reduce](): Reduced {
    return { kind: 'pool-shared-map', state: { fn: this.fn, length: this.length, chunksize: this.chunksize }, transfer: [this.sab] };
  }
}

registerKind('pool-shared-map', (s: { fn: Function; length: number; chunksize: number }, _fds, _trusted, transferred) => {
  const sab = transferred[0];
  if (!(sab instanceof SharedArrayBuffer) || typeof s.fn !== 'function' || !(s.length >= 0) || !(s.chunksize >= 1) || sab.byteLength < SharedMap.bytes(s.length, s.chunksize)) {
    throw new TypeError('a shared map did not come with its memory');
  }
  return new SharedMap(sab, s.fn, s.length, s.chunksize);
});

/** The result that `runNumbers` stopped at (it was not a number). */
let carried: unknown;

/**
 * The hot loop: `values[i] = fn(values[i])` for i in [from, end) while the results are
 * numbers. Returns where it stopped: `end`, or the index whose result (in `carried`) is
 * not a number (its item is still in place, as are those after it).
 */
function runNumbers(fn: Function, values: Float64Array, from: number, end: number): number {
  for (let i = from; i < end; i++) {
    const v = fn(values[i]);
    if (typeof v !== 'number') {
      carried = v;
      return i;
    }
    values[i] = v;
  }
  return end;
}

/**
 * Functions of the warm-up: two, so that runNumbers' call is compiled as a plain call,
 * which the user's function then takes without a deopt.
 */
const warmFns = [(x: number) => x + 1, (x: number) => x * 2];
/**
 * Calls left to the warm-up: V8 marks runNumbers for compiling after some 1800 (traced)
 * and compiles it on a thread of its own; more calls would only take a core from the
 * program (on 2 cores, from what the pool's thread does next, such as making the items
 * of the next map).
 */
let warmLeft = 3072;

/**
 * Run runNumbers over made-up numbers (nothing of the user's) before a thread's first part, or while it is
 * idle, in slices of 256 calls (some 10-20 us) that end when a task arrives (`ready`),
 * until V8 has marked it for compiling. Otherwise a thread's first large share of a map
 * runs in the interpreter (2 ms for 50k calls, against 0.2 ms compiled); a pool's first
 * small map leaves it idle long before its next. @internal
 */
export function warmShared(ready: () => boolean): void {
  if (warmLeft <= 0) return;
  const f64 = new Float64Array(256);
  for (let round = 0; warmLeft > 0; round++) {
    if (ready()) return;
    runNumbers(warmFns[round & 1], f64, 0, f64.length);
    warmLeft -= f64.length;
  }
}

/**
 * Fill what is left of the young generation with short-lived garbage, so that its next
 * collection happens now, while the worker is idle, rather than in its next large batch.
 * After a pool's start and first batch it is most of the way full (~850 of 1024 KB), and a
 * map's results that are not small integers come back from the user's function as 16-byte
 * numbers: 25k of them filled it in the middle of a large map's batch (1.2-1.6 ms for a
 * batch of 25k, 0.4 ms without). Also a ThreadPool's threads, once (see sharedMapPart). @internal
 */
export function collectYoung(): void {
  const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  if (young === undefined) return;
  // (Arrays of 4096 holes: 32 KB each, made in the young generation.)
  for (let left = young.space_available_size + 1024; left > 0; left -= 4096 * 8) new Array(4096);
}

const noTask = (): boolean => false;

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * The rest of a chunk [from, end) once its result at `at` (`first`) is not a number: all
 * its results as values (promises awaited, as the pool's worker does).
 */
async function chunkValues(fn: Function, values: Float64Array, from: number, at: number, end: number, first: unknown): Promise<unknown[]> {
  const out: unknown[] = Array.from(values.subarray(from, at));
  out.push(isThenable(first) ? await first : first);
  for (let i = at + 1; i < end; i++) {
    const v = fn(values[i]);
    out.push(typeof v !== 'number' && isThenable(v) ? await v : v);
  }
  return out;
}

/** `x`'s 32 bits in reverse order (as an unsigned number). */
function reverseBits(x: number): number {
  x = ((x & 0x55555555) << 1) | ((x >>> 1) & 0x55555555);
  x = ((x & 0x33333333) << 2) | ((x >>> 2) & 0x33333333);
  x = ((x & 0x0f0f0f0f) << 4) | ((x >>> 4) & 0x0f0f0f0f);
  x = ((x & 0x00ff00ff) << 8) | ((x >>> 8) & 0x00ff00ff);
  return ((x << 16) | (x >>> 16)) >>> 0;
}

/**
 * A part of a shared map, run by a worker thread as one task: claims chunks until none is
 * left. Its result: null, or `[start, values, ...]` for the chunks whose results are not
 * all numbers. As in Python, a failed item ends its chunk and the other chunks still run;
 * the part then throws the first error it met. @internal
 */
export async function sharedMapPart(m: SharedMap): Promise<unknown[] | null> {
  const { header, claimed, values, fn, length, chunksize, chunks, per } = m;
  const first = warmLeft > 0;
  if (first) Atomics.store(header, WARMING, 1);
  Atomics.add(header, JOINED, 1);
  // A thread's first part warms the loop first (some 0.3 ms), once joined: the map then ends
  // after the warm-ups of the threads that took part, which leaves V8 time to compile the loop
  // before the next map (traced: warmed only when idle after the first part, or before joining,
  // the threads of a pool whose first map was small often ran the next map's start in the
  // interpreter: the compile ended after the program had made the next items).
  warmShared(noTask);
  let others: unknown[] | null = null;
  let failed = false;
  let error: unknown;
  let dirty = false;
  // Claims are taken in bit-reversed order of a counter (0, 1/2, 1/4, 3/4, ... of the
  // map), not front to back: a thread's first few claims then sample the whole input, so
  // the type feedback V8 has gathered when it optimizes the user's function covers it. On
  // monotone input (a range, sorted values, timestamps) front to back showed only the
  // small values first: x * x was optimized for small integers and deoptimized (int32
  // overflow) and compiled again past 46341 (traced, every run of the bench's map of
  // range(100000)). Which thread runs which chunk is not observable otherwise.
  const claims = claimed.length;
  const bits = claims > 1 ? 32 - Math.clz32(claims - 1) : 0;
  const span = 2 ** bits;
  for (;;) {
    const k = Atomics.add(header, CURSOR, 1);
    if (k >= span) break;
    // (Counter values whose reversal is past the last claim are skipped: at most half.)
    const q = bits === 0 ? 0 : reverseBits(k) >>> (32 - bits);
    if (q >= claims) continue;
    const c0 = q * per;
    const c1 = Math.min(c0 + per, chunks);
    for (let c = c0; c < c1; c++) {
      const from = c * chunksize;
      const end = Math.min(from + chunksize, length);
      try {
        const at = runNumbers(fn, values, from, end);
        if (at < end) {
          const first = carried;
          carried = undefined;
          (others ??= []).push(from, await chunkValues(fn, values, from, at, end, first));
        }
      } catch (e) {
        if (!failed) {
          failed = true;
          error = e;
        }
      }
    }
    if (!dirty && (others !== null || failed)) {
      dirty = true;
      Atomics.store(header, DIRTY, 1);
    }
    Atomics.store(claimed, Atomics.add(header, LOGGED, 1), 1 + c0 / per);
    Atomics.add(header, DONE, c1 - c0);
    if (Atomics.load(header, WAITING) !== 0) Atomics.notify(header, DONE);
  }
  // A thread's first part also empties its young generation, which the thread's start (the
  // library and the task's module imported) has left most of the way full (1.36 MB used,
  // 0.65 MB free; 0.45 MB used after): otherwise the next large map's results (numbers past
  // the small integers, 16 bytes each) fill it midway, and that scavenge (1.6-2.5 ms, traced
  // in 2 of 3 runs) copies all of the start's objects. (The map waits for this part's
  // answer anyway: WARMING.)
  // Bench's map case, 15 alternating runs (load ~1): threads' CPU in the next map of 100k
  // 3.2 -> 2.3 ms, V8's helper threads 3.1-3.5 -> 2.2-2.3 ms, time 7.9-8.1 -> 6.7-7.3 ms.
  if (first) collectYoung();
  if (failed) throw error;
  return others;
}
// (Sent as the task of each part: see _libraryFunction.)
_libraryFunction(sharedMapPart, 'pool_shared');

type WaitAsync = (i32: Int32Array, index: number, value: number) => { async: false } | { async: true; value: Promise<unknown> };

/** The MapResult of a shared map: whole when every chunk is done and every part that started has answered. */
class SharedMapResult<T> extends MapResult<T> {
  #map: SharedMap;
  #pool: JobPool;
  /** Parts that have not answered or failed yet (each counted once: `#settled`). */
  #unsettled: number;
  #settled: boolean[] = [];
  #answers = 0;
  /** Answers the map waits for, whatever else (see sharedMap's `waitAll`): 0, or all its parts. */
  #waitFor: number;
  /** Chunks whose results are not all numbers: `[start, values, ...]` per answer. */
  #others: unknown[][] = [];
  /**
   * The results (numbers copied from the shared items claim by claim, in order); made
   * once the parts are sent (100k slots take some 0.4 ms, which the threads need not wait for).
   */
  #out: unknown[] | null = null;
  /** The claims copied (the next entry of the log to read). */
  #next = 0;

  constructor(pool: JobPool, map: SharedMap, parts: number, waitFor: number, callback: Callback<T[]>, errorCallback: ErrorCallback) {
    super(pool, map.chunksize, map.length, callback, errorCallback);
    this.#map = map;
    this.#pool = pool;
    this.#unsettled = parts;
    this.#waitFor = waitFor;
  }

  /**
   * Part `index` has answered or failed. Once all have, no thread uses the map's buffer any
   * more (a map may end before its parts answer, or fail while another part still runs):
   * the pool may give it to its next map.
   */
  #settle(index: number): void {
    if (this.#settled[index]) return;
    this.#settled[index] = true;
    if (--this.#unsettled === 0 && this.#map.sab.byteLength <= SPARE_MAX) spares.set(this.#pool, this.#map.sab);
  }

  /** Start copying results as claims get done (once the parts are sent). */
  follow(): void {
    warmMain();
    void this.#follow();
  }

  async #follow(): Promise<void> {
    const { header, claimed, chunks } = this.#map;
    while (!this.ready()) {
      // (Each claim is logged before it is counted done, and DIRTY set before that.)
      const all = Atomics.load(header, DONE) === chunks;
      this.#copyDone();
      if (all) {
        // Every item has run. When all results were numbers, they are all in memory: the map
        // is done without waiting for the parts' answers (a thread the machine has not yet
        // run again since its last chunk would hold it up; a late answer is ignored, as is
        // that of a part that starts after the end). Not when a part warmed the loop up:
        // the answers then end the map, later, so that the compiling this started in the
        // threads has run its course before the program's next work (traced: without it,
        // the program's next 3 ms of work on the pool's thread took 1 ms more).
        if (Atomics.load(header, DIRTY) === 0 && Atomics.load(header, WARMING) === 0 && this.#waitFor === 0) this._finish(true, this.#results());
        return;
      }
      Atomics.store(header, WAITING, 1);
      const seen = Atomics.load(header, DONE);
      if (this.#next === claimed.length || Atomics.load(claimed, this.#next) === 0) {
        // Not held: the pool keeps the process alive while the map is pending; _finish
        // wakes it. (A thread that dies leaves its claim undone: the map fails.)
        const r = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync(header, DONE, seen);
        if (r.async) await r.value;
      }
      Atomics.store(header, WAITING, 0);
    }
  }

  /** Copy the results of the claims logged done since the last time. */
  #copyDone(): void {
    const { claimed, values, per, chunksize, length } = this.#map;
    const out = (this.#out ??= doubles(length));
    const items = per * chunksize;
    let k = this.#next;
    for (let c; k < claimed.length && (c = Atomics.load(claimed, k)) !== 0; k++) {
      copyNumbers(out, values, (c - 1) * items, Math.min(c * items, length));
    }
    this.#next = k;
  }

  protected override _finish(ok: boolean, value: unknown): void {
    super._finish(ok, value);
    // Wake #follow (it sees the map ready and ends).
    Atomics.notify(this.#map.header, DONE);
  }

  /** A part answered (`data[offset]`), or failed (`data`: its error, which fails the map). */
  override _set(index: number, ok: boolean, data: unknown, offset: number): void {
    this.#settle(index);
    if (this.ready()) return;
    const h = this.#map.header;
    const done = Atomics.load(h, DONE) === this.#map.chunks;
    if (!ok) {
      // (A part waited for only by #waitFor, lost with its thread once every result is a
      // number in memory, does not fail the map: it would have ended without that answer.)
      if (!(done && this.#waitFor > 0 && Atomics.load(h, DIRTY) === 0)) {
        this._finish(false, data);
        return;
      }
    } else {
      const others = (data as ArrayLike<unknown>)[offset] as unknown[] | null;
      if (others !== null) this.#others.push(others);
    }
    this.#answers++;
    if (done && this.#answers >= Math.max(this.#waitFor, Atomics.load(h, JOINED))) this._finish(true, this.#results());
  }

  #results(): T[] {
    this.#copyDone();
    const out = this.#out!;
    for (const others of this.#others) {
      for (let k = 0; k < others.length; k += 2) {
        const from = others[k] as number;
        const vals = others[k + 1] as unknown[];
        for (let i = 0; i < vals.length; i++) out[from + i] = vals[i];
      }
    }
    return out as T[];
  }
}

/** An array of `n` doubles to fill (of doubles from the start: see resultArray in pool_jobs.ts). */
function doubles(n: number): unknown[] {
  const out = [0.5];
  out.length = n;
  return out;
}

/** `out[from, end) = values[from, end)`. */
function copyNumbers(out: unknown[], values: Float64Array, from: number, end: number): void {
  for (let i = from; i < end; i++) out[i] = values[i];
}

/**
 * Whether all of `items` are numbers (a compiled loop checks 100k in some 0.05 ms; every()
 * with Number.isFinite, a builtin that needs no compiling, takes 0.3-0.5 ms). Two loops, so
 * that neither sees arrays of both small integers and other numbers: compiled code whose
 * element load has seen several elements kinds first converts an array to the most general
 * of them (a fresh array of 100k small integers, as from a loop of push, copied to one of
 * doubles: 0.5 ms, and the program's array changed; once an array of objects has been
 * seen, 100k doubles each boxed: 2 ms). An array of small integers starts with one, so
 * `intsFirst` sees them all; `otherFirst`, arrays of doubles that start with a fraction.
 */
function allNumbers(items: unknown[]): boolean {
  const x = items[0];
  if (typeof x !== 'number') return false;
  // (-0 is not a small integer: only an array of doubles holds it.)
  return (x | 0) === x && (x !== 0 || 1 / x > 0) ? intsFirst(items) : otherFirst(items);
}

/** allNumbers' loop for arrays whose first item is a small integer (see allNumbers). */
function intsFirst(items: unknown[]): boolean {
  for (let i = 0; i < items.length; i++) if (typeof items[i] !== 'number') return false;
  return true;
}

/** allNumbers' loop for the other arrays (the same loop, its own feedback). */
function otherFirst(items: unknown[]): boolean {
  for (let i = 0; i < items.length; i++) if (typeof items[i] !== 'number') return false;
  return true;
}

let mainWarm = false;

/**
 * Run the pool's thread's loops of a shared map (allNumbers, copyNumbers) over made-up
 * numbers once, when the first shared map has been sent (the pool's thread then waits for
 * the threads): V8 marks each for compiling after some 2-3 thousand items and compiles it
 * on a thread of its own. Otherwise a later large map runs them in the interpreter (the
 * copy of 100k results about 2 ms, against 0.3 ms compiled) on the pool's thread, which
 * the map's end waits for. allNumbers' loops see the arrays a map of numbers most often
 * gets: intsFirst of small integers (as from a loop of push), otherFirst of other numbers
 * and a map's result.
 */
function warmMain(): void {
  if (mainWarm) return;
  mainWarm = true;
  const out = doubles(256);
  const values = new Float64Array(256);
  const ints: number[] = [];
  const reals: number[] = [];
  for (let i = 0; i < 256; i++) {
    ints.push(i);
    reals.push(i + 0.5);
  }
  for (let round = 0; round < 16; round++) {
    copyNumbers(out, values, 0, 256);
    intsFirst(ints);
    otherFirst(round & 1 ? reals : out);
  }
}

/**
 * A map of `fn` over `items` in chunks of `chunksize` (null: not given) as a shared map, for a pool of
 * `parts` threads: its result and the tasks to submit (one part per thread); null when
 * the items are not all numbers (holes are not) or too few, which go the usual way.
 * `waitAll` (the pool is starting: some thread has not answered yet, none has a task): the
 * map ends once every part has answered, not as soon as its items are done. A new pool's
 * threads start in 50-100 ms each, some 5-20 ms apart on 2 cores; a first map of a few
 * hundred items was done by the first thread up, and the last one's start (its isolate,
 * the library, the module of the task) then ran beside the program's next work
 * (bench/threadpool.ts: a map of 100 items, then range(100000) listed and mapped: the
 * process's CPU in that window 13.9 -> 11.2 ms median, in the 30 ms after it 16.5 -> 11.8;
 * the first map waits ~6 ms more).
 * @internal
 */
export function sharedMap<T>(pool: JobPool, fn: Function, items: unknown[], chunksize: number | null, parts: number, waitAll: boolean, callback: Callback<T[]>, errorCallback: ErrorCallback): { result: MapResult<T>; tasks: PendingTask[] } | null {
  const n = items.length;
  if (n < SHARED_MIN) return null;
  // An object among the items (whose valueOf must not run) is refused before `set`
  // converts anything, and so is a hole (read as undefined).
  if (!allNumbers(items)) return null;
  const cs = chunksize ?? DEFAULT_CHUNK;
  const bytes = SharedMap.bytes(n, cs);
  let sab = spares.get(pool);
  if (sab !== undefined && sab.byteLength >= bytes) {
    // The last map's buffer (every part of it has answered): its header and log of claims
    // start again at zero; all its items are written below.
    spares.delete(pool);
    new Int32Array(sab, 0, (bytes - 8 * n) / 4).fill(0);
  } else {
    sab = new SharedArrayBuffer(bytes);
  }
  const map = new SharedMap(sab, fn, n, cs);
  map.values.set(items as number[]);
  const result = new SharedMapResult<T>(pool, map, parts, waitAll ? parts : 0, callback, errorCallback);
  // (Once the caller has sent the parts.)
  queueMicrotask(() => result.follow());
  const tasks: PendingTask[] = [];
  for (let i = 0; i < parts; i++) tasks.push({ job: result, index: i, fn: sharedMapPart, src: map, start: 0, count: 1, kind: APPLY1 });
  return { result, tasks };
}
