// The loop each Pool worker runs (Python's multiprocessing.pool.worker). The worker has
// its own duplex Connection to the pool: it receives task batches, runs them, and sends
// result batches back. It blocks while waiting: it has nothing else to do.
//
// Both directions are flat arrays rather than one object per task, so that a batch of
// small tasks costs the serializer little: a worker runs its tasks in the order they came
// and answers in that order, so results need not name their tasks.
import { inspect } from 'node:util';
import type { Connection } from './connection.js';
import { EOFError, MaybeEncodingError, OSError } from './errors.js';
import { debug } from './logging.js';
import { dumps } from './reduction.js';


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

/** Whether `plainNumbers` stopped at a result that is not a number, and that result. */
let stopped = false;
let carried: unknown;

/**
 * The hot loop: `count` plain calls of `fn` on `items` from `p`, straight into the numbers
 * of `out` (which must have them) while the results are numbers. Returns how many calls
 * ran; if `stopped`, the last one returned `carried`, not stored yet.
 */
function plainNumbers(fn: Function, items: ArrayLike<unknown>, p: number, count: number, out: ResultBuffer): number {
  const nums = out.nums!;
  const shift = out.n - p;
  const end = p + count;
  let i = p;
  stopped = false;
  for (; i < end; i++) {
    const v = fn(items[i]);
    if (typeof v !== 'number') {
      carried = v;
      stopped = true;
      break;
    }
    nums[i + shift] = v;
  }
  out.n = i + shift;
  return stopped ? i + 1 - p : count;
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
 * The worker's target. `maxtasks` (null: no limit): exit after that many tasks.
 * Exits quietly when the pool goes away (EOF on the connection).
 */
export async function poolWorker(conn: Connection, initializer: Function | null, initargs: unknown[], maxtasks: number | null): Promise<void> {
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
  const fns = new Map<number, Function>();
  let completed = 0;
  for (;;) {
    let batch: Batch;
    let items: unknown[] | Float64Array;
    try {
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
    for (let k = 0; k < tasks; k++) {
      const code = meta[2 * k];
      const count = meta[2 * k + 1];
      const fn = fns.get(code >> 1)!;
      const star = (code & 1) === 1;
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
          for (let c = 0; c < count;) {
            let v: unknown;
            if (out.nums !== null && out.n + (count - c) <= out.nums.length) {
              c += plainNumbers(fn, items, p + c, count - c, out);
              if (!stopped) continue;
              v = carried;
              carried = undefined;
            } else {
              v = fn(items[p + c++]);
            }
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
      const now = performance.now();
      if (now - last > FLUSH_MS) {
        sendResults(conn, meta, from, k + 1 - from, failed, out.take());
        out = new ResultBuffer(calls);
        failed = null;
        from = k + 1;
        last = now;
      }
    }
    if (from < tasks) sendResults(conn, meta, from, tasks - from, failed, out.take());
    if (maxtasks !== null && completed >= maxtasks) break;
  }
  debug('worker exiting after %d tasks', completed);
  conn.close();
}
