// ThreadPool cases, as py_mp_bench.py's bench_threadpool (ThreadPool(2), square), and
// threadpool_map_1MiB: Buffers of 1 MiB in and out, moved both ways (move(), as piscina's
// transfer lists), then copied both ways. `--first`: a fresh pool's first calls
// (threadpool_map_first: ThreadPool(2) made and map of 10 items; threadpool_apply_async_first).
import { performance } from 'node:perf_hooks';
import { move, ThreadPool } from 'node-multiprocessing/pool';
import 'node-multiprocessing';
import { bigItems, first, main, quick, range, scale, type Row } from './main.js';

/** The task of the trivial cases. */
export function square(x: number): number {
  return x * x;
}

/** The task of threadpool_map_1MiB: byte-swap a Buffer in place and return it. */
export function swap32(b: Buffer): Buffer {
  return b.swap32();
}

/** The same, moving the result back instead of copying it (as piscina's `Piscina.move`). */
export function swap32Moved(b: Buffer): Buffer {
  return move(b.swap32());
}

async function firstCalls(): Promise<Row[]> {
  let t = performance.now();
  const pool = new ThreadPool(2);
  try {
    await pool.map(square, range(10));
    const rows: Row[] = [{ case: 'threadpool_map_first', value: performance.now() - t, unit: 'ms' }];
    t = performance.now();
    await pool.applyAsync(square, [3]).get();
    rows.push({ case: 'threadpool_apply_async_first', value: (performance.now() - t) * 1e3, unit: 'us' });
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
  const pool = new ThreadPool(2);
  try {
    await pool.map(square, range(100));
    let t = performance.now();
    await pool.map(square, range(n));
    rows.push({ case: 'threadpool_map_trivial', value: n / ((performance.now() - t) / 1000), unit: 'task/s' });
    const m = n / 10;
    t = performance.now();
    const rs = [];
    for (let i = 0; i < m; i++) rs.push(pool.applyAsync(square, [i]));
    for (const r of rs) await r.get();
    rows.push({ case: 'threadpool_apply_async_trivial', value: m / ((performance.now() - t) / 1000), unit: 'task/s' });
    for (const moved of [true, false]) {
      const big = bigItems(quick);
      const f = moved ? swap32Moved : swap32;
      t = performance.now();
      const out = await pool.map(f, moved ? big.map((b) => move(b)) : big, 1);
      const dt = (performance.now() - t) / 1000;
      if (out.length !== big.length || out[1][4] !== 1) throw new Error('threadpool_map_1MiB: wrong result');
      const row: Row = { case: 'threadpool_map_1MiB', value: (out.length * (1 << 20)) / dt / 1e6, unit: 'MB/s' };
      if (!moved) row.impl = 'node-multiprocessing, copied both ways (no move())';
      rows.push(row);
    }
  } finally {
    pool.terminate();
    await pool.join();
  }
  return rows;
});
