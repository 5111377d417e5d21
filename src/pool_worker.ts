// The loop each Pool worker runs (Python's multiprocessing.pool.worker). The worker has
// its own duplex Connection to the pool: it receives task batches, runs them, and sends
// result batches back. It blocks while waiting: it has nothing else to do.
//
// Both directions are flat arrays rather than one object per task, so that a batch of
// small tasks costs the serializer little: a worker runs its tasks in the order they came
// and answers in that order, so results need not name their tasks.
import { inspect } from 'node:util';
import { isMainThread } from 'node:worker_threads';
import type { Connection } from './connection.js';
import { EOFError, MaybeEncodingError, OSError } from './errors.js';
import { debug } from './logging.js';
import { _libraryFunction, dumps } from './reduction.js';
import { collectYoung, warmShared } from './pool_shared.js';


/**
 * A batch from the pool, or null: stop.
 * - `defs`: functions this worker has not been sent yet, as [id, function].
 * - `meta`: two numbers per task: `fnId * 2 + (star ? 1 : 0)`, then its number of calls
 *   (a Float64Array).
 * - `items`: the arguments of all the calls, task after task: a plain call takes one
 *   slot (its argument), a star call `1 + n` (n, then its n arguments). When they are
 *   all numbers, a Float64Array (see the serializer's compact tuples: its doubles are
 *   written from the sender's memory and read in place).
 */
export type Batch = [Array<[number, Function]> | null, Float64Array, unknown[] | Float64Array] | null;
/**
 * Results of the next `n` tasks, in the order they were sent: `[n, failed, values]`.
 * `failed` lists the positions (0..n-1) of the tasks that threw, or is null. In
 * `values`, a task that completed puts one value per call, one that threw its error.
 * When they are all numbers, a Float64Array (as a Batch's items).
 */
export type Results = [number, number[] | null, unknown[] | Float64Array];
/** In place of `n`, once, if the initializer throws: `[INIT_FAILED, null, [error]]`. */
export const INIT_FAILED = -1;

/** Results of slow tasks go back at once; fast ones ride together (fewer wakeups). */
const FLUSH_MS = 2;
/**
 * From this many items, a batch's items or results that are all numbers travel as a
 * Float64Array: the same values on the other side, serialized as raw bytes in one go
 * rather than item by item, and the message is a compact tuple (reduction.ts) that
 * skips V8's serializer: from one item, so that a few tasks' messages do too.
 */
export const PACK_MIN = 1;

/**
 * Doubles a scratch buffer of packed numbers starts with (64 KiB); it grows to what the
 * batches need. Not more: V8 counts an ArrayBuffer's whole size toward the limits that
 * start its full collections, written pages or not, and two buffers of 4 MiB made at
 * import brought a fresh process's first full collection into its first ten thousand
 * applyAsync calls (and ~30% more CPU to a map or an imap right after).
 */
export const SCRATCH_START = 1 << 13;

/**
 * Scratch space for numbers on their way to the serializer, which copies them out: reused
 * from batch to batch, as fresh memory is dear (a page fault per 4 KiB).
 */
export class NumberScratch {
  #f64 = new Float64Array(SCRATCH_START);

  /** At least `n` doubles to fill; the array is only good until the next `for`. */
  for(n: number): Float64Array {
    if (this.#f64.length < n) this.#f64 = new Float64Array(Math.max(n, this.#f64.length * 2));
    return this.#f64;
  }
}

/** The worker's results wait here (one worker loop per process; made by the first, not at import). */
let resultScratch: NumberScratch | null = null;

/** Results being collected: as numbers in scratch space while they are all numbers. */
class ResultBuffer {
  /** The numbers so far, or null once a result is not a number. */
  nums: Float64Array | null = null;
  /** The results so far, once one is not a number. */
  vals: unknown[] | null = null;
  n = 0;

  constructor(capacity: number) {
    // (Both fields hold null before what they get: V8 then compiles the hot loop for either
    // from the first buffer on, rather than for a Float64Array only, which the first
    // buffer without one, such as an empty one, would throw away.)
    if (capacity >= PACK_MIN) this.nums = (resultScratch ??= new NumberScratch()).for(capacity);
    else this.vals = [];
  }

  push(v: unknown): void {
    const nums = this.nums;
    if (nums !== null) {
      if (typeof v === 'number' && this.n < nums.length) {
        nums[this.n++] = v;
        return;
      }
      this.vals = Array.from(nums.subarray(0, this.n));
      this.nums = null;
    }
    this.vals!.push(v);
    this.n++;
  }

  truncate(n: number): void {
    this.n = n;
    if (this.vals !== null) this.vals.length = n;
  }

  /** The results; numbers are in scratch space, good until they are sent. */
  take(): unknown[] | Float64Array {
    return this.nums !== null ? this.nums.subarray(0, this.n) : this.vals!;
  }
}

/** Whether `runPlain` stopped at a result that is not a number, and that result. */
let stopped = false;
let carried: unknown;
/** Whether `runPlain` paused in the middle of task `runK` (see RUN_CALLS): call it again with `resume`. */
let paused = false;
/**
 * Most calls one runPlain call makes: a long batch (a map's chunks of thousands of items)
 * is run by several, so that once V8 has compiled it (on a thread of its own, while the
 * first calls run in the interpreter), the rest of the batch runs compiled; one call stays
 * in the code it started with.
 */
const RUN_CALLS = 2048;
/**
 * Where `runPlain` is (read when it returns or throws): the task it was running, where that
 * task's items start, the next item, and how many results were stored before that task.
 */
let runK = 0;
let runP0 = 0;
let runP = 0;
let runStart = 0;

/**
 * The calls of a plain task from item `p` to `stop`, their results stored into `nums` from
 * `n`, while they are numbers: returns `stop`, or the item whose result is not a number (that
 * result in `carried`). runPlain runs each task of several calls here (a map's chunks), and
 * runs of tasks of one call in runEach: small functions that V8 compiles soon and quickly
 * (~1.5 ms each on a thread of its own, where runPlain whole, loops and bookkeeping, took
 * 4-5 ms with performance.now and Node's code behind it inlined), so that runPlain itself,
 * run once per task or run of tasks, need not be compiled (see warmUp).
 */
function runCalls(fn: Function, items: ArrayLike<unknown>, p: number, stop: number, nums: Float64Array, n: number): number {
  for (; p < stop; p++) {
    const v = fn(items[p]);
    if (typeof v !== 'number') {
      carried = v;
      return p;
    }
    nums[n++] = v;
  }
  return p;
}

/** Whether runEach stopped as FLUSH_MS had passed. */
let timeUp = false;

/** The end of the tasks of one call of function `code` from task `k`, before `end` at most. */
function sameRun(meta: Float64Array, k: number, end: number, code: number): number {
  while (k < end && meta[2 * k] === code && meta[2 * k + 1] === 1) k++;
  return k;
}

/**
 * Tasks `k` to `end` of one call each (applyAsync's, imap's; task k's item is `k + d`, its
 * result goes to `k + e`): as runCalls (a result that is not a number sets `stopped`, that
 * task not done), and after each task, stops once more than FLUSH_MS have passed since
 * `since` (a Date.now() time: the cheaper clock, compiled as a plain call; `timeUp`).
 * Returns the next task; `runK` is the task that threw, if one does. Small, for V8 to
 * compile it soon and quickly (see runCalls).
 */
function runEach(fn: Function, items: ArrayLike<unknown>, k: number, end: number, d: number, nums: Float64Array, e: number, since: number): number {
  for (; k < end; k++) {
    runK = k;
    const v = fn(items[k + d]);
    if (typeof v !== 'number') {
      carried = v;
      stopped = true;
      return k;
    }
    nums[k + e] = v;
    if (Date.now() - since > FLUSH_MS) {
      timeUp = true;
      return k + 1;
    }
  }
  return k;
}

/**
 * Plain tasks (one argument a call) of the batch from task `k`, run while their results are
 * numbers, stored straight into `out`'s numbers (which must have room for every call left:
 * see ResultBuffer). Stops before a star task, after the task that ends more than FLUSH_MS
 * after `last` (performance.now()), or at a result that is not a number (`stopped`, the
 * result in `carried`, the calls of task `runK` before it stored), or after some RUN_CALLS
 * calls (`paused` in task `runK` before item `runP`: `resume` goes on with it). Returns the
 * task to go on with (`runK` when stopped or paused). A throw leaves `runK` etc. on the task
 * that threw. The calls themselves run in runCalls and runEach.
 */
function runPlain(fns: Map<number, Function>, meta: Float64Array, items: ArrayLike<unknown>, k: number, tasks: number, p: number, out: ResultBuffer, last: number, resume: boolean): number {
  const nums = out.nums!;
  let n = out.n;
  let code = -1;
  let fn: Function | undefined;
  let left = RUN_CALLS;
  stopped = false;
  paused = false;
  timeUp = false;
  // (`last` on runEach's clock.)
  const since = Date.now() - (performance.now() - last);
  while (k < tasks) {
    const c = meta[2 * k];
    if ((c & 1) === 1) break;
    if (c !== code) {
      code = c;
      fn = fns.get(c / 2);
    }
    if (!resume && left > 0 && meta[2 * k + 1] === 1) {
      // The tasks of one call of this function from here, together.
      let next: number;
      try {
        next = runEach(fn!, items, k, sameRun(meta, k, Math.min(tasks, k + left), c), p - k, nums, n - k, since);
      } catch (e) {
        runP0 = p + runK - k;
        runStart = n + runK - k;
        throw e;
      }
      const d = next - k;
      n += d;
      k = next;
      p += d;
      left -= d;
      out.n = n;
      if (stopped) {
        runK = k;
        runP0 = p;
        runStart = n;
        runP = p + 1;
        return k;
      }
      if (timeUp) break;
      continue;
    }
    if (resume) resume = false;
    else {
      runK = k;
      runP0 = p;
      runStart = n;
    }
    const end = runP0 + meta[2 * k + 1];
    const stop = Math.min(end, p + left);
    left -= stop - p;
    const q = runCalls(fn!, items, p, stop, nums, n);
    n += q - p;
    p = q;
    out.n = n;
    if (q < stop) {
      stopped = true;
      runP = q + 1;
      return k;
    }
    if (p < end) {
      paused = true;
      runP = p;
      return k;
    }
    k++;
    if (performance.now() - last > FLUSH_MS) break;
  }
  out.n = n;
  runP = p;
  return k;
}

/**
 * Functions of the warm-up: two (a call site that has seen more than one function is
 * compiled as a plain call, which a user's function later takes without a deopt).
 */
const warmFns = new Map<number, Function>([
  [0, (x: number) => x + 1],
  [1, (x: number) => (x === -1 ? '' : x * 2)],
]);
/**
 * Rounds of the warm-up, in two parts. The first runs long tasks (runCalls, what a map's
 * chunks take): V8 marks runCalls, a small function, after some 2000 calls (~0.3 ms
 * interpreted) and compiles it in ~1.5 ms on a thread of its own. The second runs tasks of
 * one call (runEach and sameRun, what applyAsync's and imap's batches take: marked after
 * some 4000 calls, ~0.8 ms, compiled in ~1.5 ms), after a later batch: the whole of the old
 * warm-up (runPlain's single loop, 4-5 ms to compile) came into a program's first large map
 * after a small one (bench/pool.ts's map case), which took it, and the first batches run
 * in the interpreter, on the same cores as the map.
 */
const WARM_ROUNDS_FIRST = 16;
const WARM_ROUNDS = 32;
/**
 * Seconds a process worker waits, idle, after a batch before each part of the warm-up (see
 * poolWorker): longer than a program takes to make its next call once it has results (a
 * worker busy with it then takes a core of a small machine from that call); the first part,
 * short and what a large map needs compiled, sooner: while a program lists a map's items.
 */
const WARM_IDLE_FIRST = 0.002;
const WARM_IDLE = 0.003;

/**
 * The made-up batch: two tasks of WARM_LONG calls, one of each function (the first part's),
 * then tasks of one call, half of each function (the second's).
 */
const WARM_LONG = 64;
const WARM_TASKS = 258;
const WARM_BATCH_CALLS = 2 * WARM_LONG + WARM_TASKS - 2;
/** Made-up batches of the warm-up (made by its first round). */
let warmBatches: { meta: Float64Array; f64: Float64Array; arr: unknown[]; stopAt: Float64Array; stopLong: Float64Array; out: ResultBuffer; nums: Float64Array | null } | null = null;
let warmRound = 0;

function makeWarmBatches(): NonNullable<typeof warmBatches> {
  const meta = new Float64Array(2 * WARM_TASKS);
  meta[1] = meta[3] = WARM_LONG;
  meta[2] = 2;
  for (let k = 2; k < WARM_TASKS; k++) {
    meta[2 * k] = k < WARM_TASKS >> 1 ? 0 : 2;
    meta[2 * k + 1] = 1;
  }
  const calls = WARM_BATCH_CALLS;
  const f64 = new Float64Array(calls);
  // Items come as packed numbers, or as an array of any values (what the serializer makes).
  const arr: unknown[] = [''];
  arr.pop();
  for (let i = 0; i < calls; i++) {
    f64[i] = i;
    arr.push(i + 0.5);
  }
  // Now and then a pass also takes the other ways out (a result that is not a number, in
  // a long task or a run of tasks of one call; the time to flush), which a batch may take:
  // code compiled without them would be thrown away at the first (V8 has no feedback for
  // what has never run).
  const stopAt = new Float64Array(f64);
  stopAt[WARM_BATCH_CALLS - 10] = -1;
  const stopLong = new Float64Array(f64);
  stopLong[WARM_LONG + 40] = -1;
  const out = new ResultBuffer(calls);
  return { meta, f64, arr, stopAt, stopLong, out, nums: out.nums };
}

/**
 * Run runCalls and runEach (through runPlain) over made-up batches (their own functions
 * and numbers, nothing of the user's), enough for V8 to compile them. Otherwise the first
 * large batch a worker gets (a map's chunks, a few hundred applyAsync calls) runs in the
 * interpreter, 10-20 times slower. In rounds of one batch, each made only while no batch
 * of the pool's waits (`waiting()`): a program's next call, made as soon as it has the
 * first results, does not wait for the warm-up, which goes on when the worker is next
 * idle. Returns whether it is done, or has ended its first part. (When: see poolWorker.)
 */
function warmUp(waiting: () => boolean): boolean {
  const w = (warmBatches ??= makeWarmBatches());
  while (warmRound < WARM_ROUNDS) {
    if (waiting()) break;
    w.out.nums = w.nums;
    w.out.n = 0;
    const odd = warmRound % 8;
    const items = odd === 5 ? (warmRound < WARM_ROUNDS_FIRST ? w.stopLong : w.stopAt) : warmRound & 1 ? w.arr : w.f64;
    // Rounds 3 (mod 8) flush at once.
    const last = odd === 3 ? -Infinity : Infinity;
    if (warmRound < WARM_ROUNDS_FIRST) runPlain(warmFns, w.meta, items, 0, 2, 0, w.out, last, false);
    else runPlain(warmFns, w.meta, items, 2, WARM_TASKS, 2 * WARM_LONG, w.out, last, false);
    warmRound++;
    if (warmRound === WARM_ROUNDS_FIRST) {
      collectYoung();
      break;
    }
  }
  carried = undefined;
  if (warmRound < WARM_ROUNDS) return false;
  warmBatches = null;
  return true;
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';
}

/** Where in `items` the task starting at `p` with `count` calls ends. */
function taskEnd(items: ArrayLike<unknown>, p: number, count: number, star: boolean): number {
  if (!star) return p + count;
  for (let c = 0; c < count; c++) p += 1 + (items[p] as number);
  return p;
}

/**
 * Send the results of the tasks `meta[2*from ..]`. If some result cannot be serialized,
 * that task alone fails with MaybeEncodingError.
 */
function encodingError(what: unknown, e: unknown): MaybeEncodingError {
  const err = new MaybeEncodingError(`Error sending result: '${inspect(what).slice(0, 200)}'. Reason: '${(e as Error).message}'`);
  debug('Possible encoding error while sending result: %s', err.message);
  return err;
}

function sendResults(conn: Connection, meta: Float64Array, from: number, n: number, failed: number[] | null, values: unknown[] | Float64Array): void {
  try {
    conn.send([n, failed, values] satisfies Results);
    return;
  } catch (e) {
    if (!(e instanceof TypeError)) throw e;
  }
  const fixedFailed: number[] = [];
  const fixedValues: unknown[] = [];
  let pos = 0;
  let f = 0;
  for (let k = 0; k < n; k++) {
    if (failed !== null && failed[f] === k) {
      f++;
      fixedFailed.push(k);
      const err = values[pos++];
      try {
        dumps(err);
        fixedValues.push(err);
      } catch (e) {
        fixedValues.push(encodingError(err, e));
      }
      continue;
    }
    const count = meta[2 * (from + k) + 1];
    const vals = Array.prototype.slice.call(values, pos, pos + count);
    pos += count;
    try {
      dumps(vals);
      for (const v of vals) fixedValues.push(v);
    } catch (e) {
      fixedFailed.push(k);
      fixedValues.push(encodingError(vals, e));
    }
  }
  conn.send([n, fixedFailed.length ? fixedFailed : null, fixedValues] satisfies Results);
}

/**
 * The rest of a plain task that runPlain left at a result `v` that is not a number: that
 * result, then its calls up to item `end` (from runP) one at a time, awaiting thenables.
 * False if it threw: its results are then its error.
 */
async function finishPlain(fn: Function, items: ArrayLike<unknown>, end: number, v: unknown, out: ResultBuffer): Promise<boolean> {
  const start = runStart;
  const from = runP;
  try {
    if (isThenable(v)) v = await v;
    out.push(v);
    for (let p = from; p < end; p++) {
      let r: unknown = fn(items[p]);
      if (typeof r !== 'number' && isThenable(r)) r = await r;
      out.push(r);
    }
    return true;
  } catch (e) {
    out.truncate(start);
    out.push(e);
    return false;
  }
}

/**
 * The worker's target. `maxtasks` (null: no limit): exit after that many tasks.
 * `warmFirst`: warm up before the first batch (see below). Exits quietly when the pool goes
 * away (EOF on the connection).
 */
export async function poolWorker(conn: Connection, initializer: Function | null, initargs: unknown[], maxtasks: number | null, warmFirst = false): Promise<void> {
  if (initializer) {
    try {
      const r = initializer(...(initargs ?? []));
      if (isThenable(r)) await r;
    } catch (e) {
      try {
        conn.send([INIT_FAILED, null, [e]] satisfies Results);
      } catch {
        /* the pool is gone */
      }
      conn.close();
      process.exitCode = 1;
      return;
    }
  }
  // Process workers warm runCalls and runEach up (process workers only: a ThreadPool's
  // threads share this process's cores and compiler). A spawned worker (`warmFirst`) does it
  // all before its first batch: its start takes ~40 ms of CPU, the warm-up ~2-3 ms more
  // (and ~3 ms of V8's compile threads), and done later it falls where the program's next
  // calls run (bench/pool.ts's map case: a map of 100 items, then range(100000) listed and
  // mapped; the warm-up ran on the cores the program's listing and its map needed: the
  // workers' CPU in the large map 10-11 -> 4-5 ms, its time 11.1 -> 7.7 ms). A forked
  // worker (fork server) starts in a few ms, which it would double (pool_start_forkserver
  // 0.41-0.44x CPython's time without a warm-up, 0.75-0.95x with an older one at the start):
  // it warms up once it has answered its first batch and has been idle a while
  // (WARM_IDLE_FIRST, WARM_IDLE), as a program's next call, made as soon as it has the first
  // results, would otherwise find both cores of a small machine taken by workers warming up
  // (bench/pool.ts --first: the first applyAsync took 0.8-7.5 ms with the warm-up at once,
  // 0.6-1.0 ms without any); in rounds that give way to a batch that waits, the rest after
  // that batch; not while idle later, as a worker busy with it when work comes has used its
  // share of a loaded machine's cores.
  let warm = !isMainThread;
  if (!warm && warmFirst) {
    warmUp(() => false);
    warm = warmUp(() => false);
  }
  const fns = new Map<number, Function>();
  let completed = 0;
  for (;;) {
    let batch: Batch;
    let items: unknown[] | Float64Array;
    try {
      if (!warm && completed > 0 && !conn.pollSync(warmRound < WARM_ROUNDS_FIRST ? WARM_IDLE_FIRST : WARM_IDLE)) warm = warmUp(() => conn.pollSync(0));
      // A ThreadPool's threads warm the loop of their maps of numbers when idle (pool_shared.ts).
      if (!isMainThread) warmShared(() => conn.pollSync(0));
      conn.pollSync(null);
      batch = await conn.recv();
      if (batch === null) {
        debug('worker got sentinel -- exiting');
        break;
      }
      items = batch[2];
    } catch (e) {
      if (e instanceof EOFError || e instanceof OSError) {
        debug('worker got EOFError or OSError -- exiting');
        break;
      }
      throw e;
    }
    const [defs, meta] = batch;
    if (defs) for (const [id, fn] of defs) fns.set(id, fn);
    const tasks = meta.length >> 1;
    let calls = 0;
    for (let k = 0; k < tasks; k++) calls += meta[2 * k + 1];
    let out = new ResultBuffer(calls);
    let failed: number[] | null = null;
    let from = 0;
    let last = performance.now();
    let p = 0;
    let resume = false;
    for (let k = 0; k < tasks;) {
      const code = meta[2 * k];
      const count = meta[2 * k + 1];
      const star = (code & 1) === 1;
      // Plain tasks whose results are numbers: many at once in runPlain.
      if (!star && out.nums !== null) {
        let next: number;
        try {
          next = runPlain(fns, meta, items, k, tasks, p, out, last, resume);
        } catch (e) {
          // Task runK threw: it fails alone, those before it are done.
          completed += runK + 1 - k;
          calls -= runP0 - p + meta[2 * runK + 1];
          out.truncate(runStart);
          out.push(e);
          (failed ??= []).push(runK - from);
          p = runP0 + meta[2 * runK + 1];
          k = runK + 1;
          next = -1;
          resume = false;
        }
        if (next >= 0) {
          completed += next - k;
          calls -= (stopped ? runP0 : runP) - p;
          k = next;
          p = runP;
          // In the middle of task k: on with it (no flush of a task in part).
          resume = paused;
          if (paused) continue;
          if (stopped) {
            // Task k stopped at a result that is not a number: it goes on below, one call at a time.
            const v = carried;
            carried = undefined;
            const n = meta[2 * k + 1];
            const end = runP0 + n;
            if (!(await finishPlain(fns.get(meta[2 * k] / 2)!, items, end, v, out))) (failed ??= []).push(k - from);
            p = end;
            calls -= n;
            completed++;
            k++;
          }
        }
      } else {
        const fn = fns.get(code >> 1)!;
        const start = out.n;
        const p0 = p;
        try {
          if (star) {
            for (let c = 0; c < count; c++) {
              let v: unknown;
              const n = items[p] as number;
              if (n === 0) v = fn();
              else if (n === 1) v = fn(items[p + 1]);
              else if (n === 2) v = fn(items[p + 1], items[p + 2]);
              else v = fn(...Array.prototype.slice.call(items, p + 1, p + 1 + n));
              p += 1 + n;
              if (typeof v !== 'number' && isThenable(v)) v = await v;
              out.push(v);
            }
          } else {
            for (let c = 0; c < count; c++) {
              let v: unknown = fn(items[p + c]);
              if (typeof v !== 'number' && isThenable(v)) v = await v;
              out.push(v);
            }
            p += count;
          }
        } catch (e) {
          out.truncate(start);
          out.push(e);
          (failed ??= []).push(k - from);
          p = taskEnd(items, p0, count, star);
        }
        completed++;
        calls -= count;
        k++;
      }
      const now = performance.now();
      if (now - last > FLUSH_MS && k < tasks) {
        sendResults(conn, meta, from, k - from, failed, out.take());
        out = new ResultBuffer(calls);
        failed = null;
        from = k;
        last = now;
      }
    }
    if (from < tasks) sendResults(conn, meta, from, tasks - from, failed, out.take());
    if (maxtasks !== null && completed >= maxtasks) break;
  }
  debug('worker exiting after %d tasks', completed);
  conn.close();
}

// (Sent to each worker a pool starts: see _libraryFunction.)
_libraryFunction(poolWorker, 'pool_worker');
