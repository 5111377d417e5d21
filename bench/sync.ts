// Benchmarks of synchronization and shared memory; names match py_bench.py's cases.
import { performance } from 'node:perf_hooks';
import { RawArray, Value } from '../src/sharedctypes.js';
import { Lock } from '../src/synchronize.js';
import type { Row } from './cases.js';

/** Uncontended acquireSync + release of a Lock, per pair. */
function lockAcquireRelease(n: number): Row {
  const lock = new Lock();
  const loop = (k: number): void => {
    for (let i = 0; i < k; i++) {
      lock.acquireSync();
      lock.release();
    }
  };
  loop(Math.min(n, 20_000)); // warm up the JIT as CPython needs none
  const t = performance.now();
  loop(n);
  return { case: 'lock_acquire_release', value: ((performance.now() - t) / n) * 1e6, unit: 'ns' };
}

/** Per element access of a RawArray('d', n): write all, then read all. */
function rawArrayElemRw(n: number): Row {
  const arr = RawArray('d', n) as Float64Array;
  const pass = (): number => {
    for (let i = 0; i < n; i++) arr[i] = i;
    let s = 0;
    for (let i = 0; i < n; i++) s += arr[i];
    return s;
  };
  pass();
  pass();
  const t = performance.now();
  const s = pass();
  const dt = performance.now() - t;
  if (s !== ((n - 1) * n) / 2) throw new Error('raw_array_elem_rw: wrong sum');
  return { case: 'raw_array_elem_rw', value: (dt / (2 * n)) * 1e6, unit: 'ns' };
}

/** `with v.get_lock(): v.value += 1` on a Value('i'), per increment. */
function lockedValueIncrement(n: number): Row {
  const v = Value('i', 0);
  const loop = (k: number): void => {
    for (let i = 0; i < k; i++) {
      const l = v.getLock();
      l.acquireSync();
      v.value += 1;
      l.release();
    }
  };
  loop(Math.min(n, 20_000));
  const t = performance.now();
  loop(n);
  const dt = performance.now() - t;
  if (v.value !== n + Math.min(n, 20_000)) throw new Error('locked_value_increment: wrong count');
  return { case: 'locked_value_increment', value: (dt / n) * 1e6, unit: 'ns' };
}

export async function benchSync(quick: boolean): Promise<Row[]> {
  const scale = quick ? 1 : 5;
  const n = 200_000 * scale;
  return [lockAcquireRelease(n), rawArrayElemRw(n), lockedValueIncrement(n)];
}
