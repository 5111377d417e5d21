// How a pool packs tasks into the batches it sends its workers (the layout is described
// in pool_worker.ts): the calls' arguments as a flat array, or as packed doubles when they
// are all numbers. Shared by Pool and ThreadPool.
import { APPLY, APPLY1, EACH, PLAIN, STAR, type Job, type PendingTask } from './pool_jobs.js';
import { PACK_MIN, SCRATCH_START } from './pool_worker.js';

/** Most tasks in one batch. */
export const MAX_BATCH = 256;
/** From this many items, numbers are copied with builtins rather than item by item. */
const BULK_MIN = 64;
/**
 * Items the builtins may copy in this process. They need no compiling, which is what a
 * short run of a fresh process pays for a loop (milliseconds of a JIT thread), but cost
 * some 15 ns an item more than a compiled loop: past this many items, loops take over.
 */
let bulkLeft = 1 << 18;

function useBulk(n: number): boolean {
  if (n < BULK_MIN || bulkLeft <= 0) return false;
  bulkLeft -= n;
  return true;
}
/** The number of calls in a task. */
export function callsOf(t: PendingTask): number {
  return t.count;
}

/** Append the calls of `t` to a batch's items (see pool_worker.ts for the layout). */
export function flatten(t: PendingTask, items: unknown[]): void {
  if (t.kind === APPLY1) {
    // One call of one argument: a plain call to the worker.
    items.push(t.src);
    return;
  }
  const src = t.src as unknown[];
  if (t.kind === PLAIN || t.kind === EACH) {
    for (let i = t.start, end = t.start + t.count; i < end; i++) items.push(src[i]);
  } else if (t.kind === APPLY) {
    items.push(src.length);
    for (let j = 0; j < src.length; j++) items.push(src[j]);
  } else {
    for (let i = t.start, end = t.start + t.count; i < end; i++) {
      const a = src[i] as unknown[];
      items.push(a.length);
      for (let j = 0; j < a.length; j++) items.push(a[j]);
    }
  }
}

/** The number of item slots the calls of `t` take in a batch. */
export function slotsOf(t: PendingTask): number {
  if (t.kind === PLAIN || t.kind === EACH) return t.count;
  if (t.kind === APPLY1) return 1;
  const src = t.src as unknown[];
  if (t.kind === APPLY) return 1 + src.length;
  let n = 0;
  for (let i = t.start, end = t.start + t.count; i < end; i++) n += 1 + (src[i] as unknown[]).length;
  return n;
}

/**
 * The items of one map, packed whole by builtins (see bulkLeft) when its first chunk is
 * packed, while its other chunks are: they are copied, or sent, from here, rather than each
 * sliced out of the array first (memory as large again). `whole` is null when the items are
 * not all finite numbers. Kept for that job only (a later map of the same array packs it
 * afresh, changes included); dropped once its last chunk is packed, or for another map's
 * (a chunk not found here is packed from the array item by item).
 */
const packed: { job: Job | null; src: unknown[] | null; whole: Float64Array | null } = { job: null, src: null, whole: null };

/** The items of `t`'s map packed whole (null: not all finite numbers), or undefined: not packed. */
function packedWhole(t: PendingTask): Float64Array | null | undefined {
  const src = t.src as unknown[];
  if (t.job === packed.job && src === packed.src) return packed.whole;
  if (packWarm || t.start !== 0 || t.count < BULK_MIN || !useBulk(src.length)) return undefined;
  packed.job = t.job;
  packed.src = src;
  packed.whole = null;
  // Number.isFinite does not coerce; holes, which every() skips, become NaN in the
  // Float64Array (NaN and infinities themselves fail the test and take the general path).
  if (!src.every(Number.isFinite)) return null;
  const f = new Float64Array(src.length);
  f.set(src as number[]);
  if (f.includes(NaN)) return null;
  return (packed.whole = f);
}

/** The chunks of `t`'s map up to `end` are packed: the last one drops its items. */
function packedUpTo(t: PendingTask, end: number): void {
  if (t.job === packed.job && end === (t.src as unknown[]).length) {
    packed.job = null;
    packed.src = null;
    packed.whole = null;
  }
}

/**
 * Write the items of the plain task `t` into `f` from `p`; -1 as soon as one is not a
 * number, else the next position. (One small loop per kind of task: the JIT compiles only
 * those that run hot.)
 */
function fillPlain(t: PendingTask, f: Float64Array, p: number): number {
  const src = t.src as unknown[];
  const start = t.start;
  const end = start + t.count;
  const whole = packedWhole(t);
  if (whole !== undefined) {
    if (whole === null) return -1;
    f.set(whole.subarray(start, end), p);
    packedUpTo(t, end);
    return p + t.count;
  }
  return copyNumbers(src, start, end, f, p);
}

/** `f[p, ...) = src[start, end)`; -1 as soon as one is not a number, else the next position. */
function copyNumbers(src: unknown[], start: number, end: number, f: Float64Array, p: number): number {
  for (let i = start; i < end; i++) {
    const v = src[i];
    if (typeof v !== 'number') return -1;
    f[p++] = v;
  }
  return p;
}

/** Whether copyNumbers has been warmed up (see warmPacking). */
let packWarm = false;

/**
 * Run copyNumbers over arrays of its own (64 x 256 items), once per process, for V8 to
 * compile it; from then on a map's chunks are packed by it, batch by batch, rather than the
 * whole map at once by builtins (every(Number.isFinite), set, includes: ~0.6 ms for 100k
 * items however often they run, the compiled loop ~0.15 ms). A process pool calls this after
 * a map's first batches are sent: it waits for its workers then. @internal
 *
 * The arrays are of three of the kinds V8 keeps arrays of numbers in: small integers with
 * and without holes, doubles without. Not doubles with holes too: compiled code whose read
 * has seen an array of small integers and one of doubles with holes turns every array of
 * small integers it reads into one of doubles first (V8 "transitions" them to one kind; the
 * map's own items, such as a freshly listed range: 100k items re-made as 800 KB of doubles,
 * ~0.6-1 ms before the first batch could leave, and the user's array left converted). With
 * these three, an array of small integers only changes its kind's name (to "with holes")
 * and one of doubles is read as it is. (A map of doubles with holes has the loop compiled
 * again, once, for all four kinds: from then on it reads as it did with all four warmed.)
 */
export function warmPacking(): void {
  if (packWarm) return;
  const n = 256;
  const smis: number[] = [];
  const doubles: number[] = [0.5];
  doubles.pop();
  for (let i = 0; i < n; i++) {
    smis.push(i);
    doubles.push(i + 0.5);
  }
  const holeySmis = smis.slice();
  holeySmis.length = n + 1;
  holeySmis.pop();
  const kinds = [smis, doubles, holeySmis];
  const f = new Float64Array(n);
  for (let k = 0; k < 64; k++) copyNumbers(kinds[k % 3], 0, n, f, 0);
  packWarm = true;
}

/** As fillPlain, for argument lists: each as its length, then its items. */
function fillArgs(src: unknown[], start: number, end: number, f: Float64Array, p: number): number {
  for (let i = start; i < end; i++) {
    const a = src[i] as unknown[];
    f[p++] = a.length;
    for (let j = 0; j < a.length; j++) {
      const v = a[j];
      if (typeof v !== 'number') return -1;
      f[p++] = v;
    }
  }
  return p;
}

/** Write the calls of `tasks` into `f`; false as soon as an argument is not a number. */
function fillNumbers(tasks: PendingTask[], f: Float64Array): boolean {
  let p = 0;
  for (let k = 0; k < tasks.length && p >= 0; k++) {
    const t = tasks[k];
    if (t.kind === APPLY1) {
      // applyAsync(f, [x]): no call.
      const v = t.src;
      if (typeof v !== 'number') return false;
      f[p++] = v;
    } else if (t.kind === PLAIN && t.count === 1) {
      // One item (imap's default chunks): no call.
      const v = (t.src as unknown[])[t.start];
      if (typeof v !== 'number') return false;
      f[p++] = v;
    } else if (t.kind === EACH) {
      // A run of one-item tasks (an imap's): its items in place, item by item (a lazy
      // map's input is not packed whole).
      const src = t.src as unknown[];
      for (let i = t.start, end = t.start + t.count; i < end; i++) {
        const v = src[i];
        if (typeof v !== 'number') return false;
        f[p++] = v;
      }
    } else if (t.kind === PLAIN) p = fillPlain(t, f, p);
    else if (t.kind === STAR) p = fillArgs(t.src as unknown[], t.start, t.start + t.count, f, p);
    else {
      // One call: its arguments (few; no builtins for so few).
      const src = t.src as unknown[];
      f[p++] = src.length;
      for (let j = 0; j < src.length; j++) {
        const v = src[j];
        if (typeof v !== 'number') return false;
        f[p++] = v;
      }
    }
  }
  return p >= 0;
}

/**
 * Batches' numbers are packed here, each in a region of its own until it is sent; then
 * the space is reused (fresh memory is dear: a page fault per 4 KiB written first). It
 * starts small and grows to what the batches need (see SCRATCH_START).
 */
class BatchScratch {
  #buf = new Float64Array(SCRATCH_START);
  #used = 0;

  take(n: number): Float64Array {
    if (this.#used + n > this.#buf.length) {
      // Regions already taken stay on the old buffer. Room for the next as large too: the
      // batches of a round are about as large as one another, and each buffer outgrown is
      // fresh memory written once (a page fault per 4 KiB) and dropped.
      this.#buf = new Float64Array(Math.max(2 * n, this.#buf.length * 2));
      this.#used = 0;
    }
    const region = this.#buf.subarray(this.#used, this.#used + n);
    this.#used += n;
    return region;
  }

  reset(): void {
    this.#used = 0;
  }
}

export const itemScratch = new BatchScratch();
/** A batch's task table (see pool_worker.ts), as a typed array: copied, not walked, by the serializer. */
export const metaScratch = new Float64Array(2 * MAX_BATCH);

/**
 * The items of a batch of consecutive chunks of one map whose items are packed whole (see
 * `packed`), as a view of them (the serializer copies them out), else null.
 */
function plainRun(tasks: PendingTask[]): Float64Array | null {
  const first = tasks[0];
  if (first.kind !== PLAIN || first.count < BULK_MIN) return null;
  let end = first.start;
  for (let k = 0; k < tasks.length; k++) {
    const t = tasks[k];
    if (t.kind !== PLAIN || t.job !== first.job || t.src !== first.src || t.start !== end) return null;
    end += t.count;
  }
  const whole = packedWhole(first);
  if (whole == null) return null;
  packedUpTo(first, end);
  return whole.subarray(first.start, end);
}

/** The first argument of a task's calls (to guess whether a batch is all numbers). */
function firstArg(t: PendingTask): unknown {
  if (t.kind === APPLY1) return t.src;
  const src = t.src as unknown[];
  if (t.kind === PLAIN || t.kind === EACH) return src[t.start];
  if (t.kind === APPLY) return src.length ? src[0] : 0;
  const a = src[t.start] as unknown[];
  return a.length ? a[0] : 0;
}

/**
 * The items of a batch: packed numbers when they all are (in scratch space: serialize
 * them before the next batch), else an array.
 */
export function packItems(tasks: PendingTask[], slots: number): unknown[] | Float64Array {
  const run = plainRun(tasks);
  if (run !== null) return run;
  if (slots >= PACK_MIN && typeof firstArg(tasks[0]) === 'number') {
    const f = itemScratch.take(slots);
    if (fillNumbers(tasks, f)) return f;
  }
  const items: unknown[] = [];
  for (const t of tasks) flatten(t, items);
  return items;
}
