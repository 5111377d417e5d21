// Pool benchmark cases, mirroring bench/py_bench.py `_pool_cases` (Pool(2), square).
import { performance } from 'node:perf_hooks';
import { getContext } from '../index.js';
import { Pool } from '../src/pool.js';
import type { Row } from './cases.js';

/** The task of every case (exported: it travels by reference). */
export function square(x: number): number {
  return x * x;
}

/** `[0, 1, ..., n - 1]`: the input, made before the clock starts (Python's `range(n)` costs nothing). */
function range(n: number): number[] {
  const a: number[] = [];
  for (let i = 0; i < n; i++) a.push(i);
  return a;
}

export async function benchPool(quick: boolean): Promise<Row[]> {
  const n = 20000 * (quick ? 1 : 5);
  const rows: Row[] = [];
  const pool = new Pool({ processes: 2, context: getContext('spawn') });
  try {
    await pool.map(square, range(100));
    const items = range(n);
    let t = performance.now();
    await pool.map(square, items);
    rows.push({ case: 'pool_map_trivial', value: n / ((performance.now() - t) / 1000), unit: 'task/s' });
    const m = n / 10;
    const some = range(m);
    t = performance.now();
    const rs = [];
    for (let i = 0; i < m; i++) rs.push(pool.applyAsync(square, [i]));
    for (const r of rs) await r.get();
    rows.push({ case: 'pool_apply_async_trivial', value: m / ((performance.now() - t) / 1000), unit: 'task/s' });
    t = performance.now();
    for await (const _ of pool.imapUnordered(square, some)) { /* drain */ }
    rows.push({ case: 'pool_imap_unordered_chunk1', value: m / ((performance.now() - t) / 1000), unit: 'task/s' });
  } finally {
    pool.terminate();
    await pool.join();
  }
  return rows;
}
