// Pool cases, as py_mp_bench.py's bench_pool: Pool(2) of spawned processes, `square`; the
// input list is made inside the timed call as Python's `range(n)` is listed by map.
// `--first`: a fresh pool's first calls (pool_map_first: Pool(2) made and map of 10 items;
// then pool_apply_async_first and pool_imap_unordered_first: the first call of each).
import { performance } from 'node:perf_hooks';
import { getContext, Pool } from 'node-multiprocessing';
import { first, main, range, scale, type Row } from './main.js';

/** The task of every case. */
export function square(x: number): number {
  return x * x;
}

async function firstCalls(): Promise<Row[]> {
  let t = performance.now();
  const pool = new Pool(2, { context: getContext('spawn') });
  try {
    await pool.map(square, range(10));
    const rows: Row[] = [{ case: 'pool_map_first', value: performance.now() - t, unit: 'ms' }];
    t = performance.now();
    await pool.applyAsync(square, [3]).get();
    rows.push({ case: 'pool_apply_async_first', value: (performance.now() - t) * 1e3, unit: 'us' });
    t = performance.now();
    for await (const _ of pool.imapUnordered(square, range(10))) { /* drain */ }
    rows.push({ case: 'pool_imap_unordered_first', value: (performance.now() - t) * 1e3, unit: 'us' });
    return rows;
  } finally {
    pool.terminate();
    await pool.join();
  }
}

main(import.meta.url, async () => {
  if (first) return firstCalls();
  const n = 20000 * scale;
  const rows: Row[] = [];
  const pool = new Pool(2, { context: getContext('spawn') });
  try {
    await pool.map(square, range(100));
    let t = performance.now();
    await pool.map(square, range(n));
    rows.push({ case: 'pool_map_trivial', value: n / ((performance.now() - t) / 1000), unit: 'task/s' });
    const m = n / 10;
    t = performance.now();
    const rs = [];
    for (let i = 0; i < m; i++) rs.push(pool.applyAsync(square, [i]));
    for (const r of rs) await r.get();
    rows.push({ case: 'pool_apply_async_trivial', value: m / ((performance.now() - t) / 1000), unit: 'task/s' });
    t = performance.now();
    for await (const _ of pool.imapUnordered(square, range(m))) { /* drain */ }
    rows.push({ case: 'pool_imap_unordered_chunk1', value: m / ((performance.now() - t) / 1000), unit: 'task/s' });
  } finally {
    pool.terminate();
    await pool.join();
  }
  return rows;
});
