// Synchronization and shared memory cases, as py_mp_bench.py's bench_lock and bench_array:
// each loop timed from its first iteration (no warm-up), raw_array_elem_rw on a fresh array
// (first touch of its pages included) beside a plain Float64Array of the same size made and
// used the same way. `--first`: each operation once, object creation included (..._first).
import { performance } from 'node:perf_hooks';
import { Lock, RawArray, Value } from 'node-multiprocessing';
import { first, main, scale, type Row } from './main.js';

/** Uncontended acquireSync + release of a Lock, per pair. */
function lockAcquireRelease(n: number): Row {
  const lock = new Lock();
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    lock.acquireSync();
    lock.release();
  }
  return { case: 'lock_acquire_release', value: ((performance.now() - t) / n) * 1e6, unit: 'ns' };
}

/** Write every element, then read every element, per access. */
function writeRead(arr: Float64Array, n: number, t: number, name: string, impl?: string): Row {
  for (let i = 0; i < n; i++) arr[i] = i;
  let s = 0;
  for (let i = 0; i < n; i++) s += arr[i];
  const dt = performance.now() - t;
  if (s !== ((n - 1) * n) / 2) throw new Error(`${name}: wrong sum`);
  return { case: name, impl, value: (dt / (2 * n)) * 1e6, unit: 'ns' };
}

/** RawArray('d', n) made (outside the clock, as Python's), then written and read once. */
function rawArrayElemRw(n: number): Row[] {
  const arr = RawArray('d', n) as Float64Array;
  const ours = writeRead(arr, n, performance.now(), 'raw_array_elem_rw');
  const plain = new Float64Array(n);
  return [ours, writeRead(plain, n, performance.now(), 'raw_array_elem_rw', 'plain Float64Array')];
}

/** `with v.get_lock(): v.value += 1` on a Value('i'), per increment. */
function lockedValueIncrement(n: number): Row {
  const v = Value('i', 0);
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    const l = v.getLock();
    l.acquireSync();
    v.value += 1;
    l.release();
  }
  const dt = performance.now() - t;
  if (v.value !== n) throw new Error('locked_value_increment: wrong count');
  return { case: 'locked_value_increment', value: (dt / n) * 1e6, unit: 'ns' };
}

function firstCalls(): Row[] {
  let t = performance.now();
  const lock = new Lock();
  lock.acquireSync();
  lock.release();
  const rows: Row[] = [{ case: 'lock_acquire_release_first', value: (performance.now() - t) * 1e3, unit: 'us' }];
  t = performance.now();
  const arr = RawArray('d', 1000) as Float64Array;
  arr[0] = 1;
  if (arr[0] !== 1) throw new Error('raw_array_elem_rw_first: wrong value');
  rows.push({ case: 'raw_array_elem_rw_first', value: (performance.now() - t) * 1e3, unit: 'us' });
  t = performance.now();
  const v = Value('i', 0);
  const l = v.getLock();
  l.acquireSync();
  v.value += 1;
  l.release();
  rows.push({ case: 'locked_value_increment_first', value: (performance.now() - t) * 1e3, unit: 'us' });
  return rows;
}

main(import.meta.url, () => {
  if (first) return firstCalls();
  const n = 200_000 * scale;
  return [lockAcquireRelease(n), ...rawArrayElemRw(n), lockedValueIncrement(n)];
});
