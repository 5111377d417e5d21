// ThreadPool benchmark cases, mirroring ../shared/anchors/py_mp_bench.py's bench_threadpool
// (ThreadPool(2), square), and threadpool_map_1MiB: Buffers of 1 MiB in and out.
import { performance } from 'node:perf_hooks';
import { move, ThreadPool } from 'node-multiprocessing/pool';
import type { Row } from './cases.js';
import { square } from './pool.js';

/** The task of threadpool_map_1MiB: byte-swap a Buffer in place and return it. */
export function swap32(b: Buffer): Buffer {
  return b.swap32();
}

/** The same, moving the result back instead of copying it (as piscina's `Piscina.move`). */
export function swap32Moved(b: Buffer): Buffer {
  return move(b.swap32());
}

/** `[0, 1, ..., n - 1]`, made before the clock starts. */
function range(n: number): number[] {
  const a: number[] = [];
  for (let i = 0; i < n; i++) a.push(i);
  return a;
}

/** Items and size of threadpool_map_1MiB. */
export function bigItems(quick: boolean): Buffer[] {
  return Array.from({ length: quick ? 32 : 128 }, (_, i) => Buffer.alloc(1 << 20, i));
}

export async function benchThreadPool(quick: boolean): Promise<Row[]> {
  const n = 20000 * (quick ? 1 : 5);
  const rows: Row[] = [];
  const pool = new ThreadPool(2);
  try {
    await pool.map(square, range(100));
    const items = range(n);
    let t = performance.now();
    await pool.map(square, items);
    rows.push({ case: 'threadpool_map_trivial', value: n / ((performance.now() - t) / 1000), unit: 'task/s' });
    const m = n / 10;
    t = performance.now();
    const rs = [];
    for (let i = 0; i < m; i++) rs.push(pool.applyAsync(square, [i]));
    for (const r of rs) await r.get();
    rows.push({ case: 'threadpool_apply_async_trivial', value: m / ((performance.now() - t) / 1000), unit: 'task/s' });
    // Buffers moved both ways (move(), as piscina's transfer lists), then copied both ways.
    for (const moved of [true, false]) {
      const big = bigItems(quick);
      const f = moved ? swap32Moved : swap32;
      await pool.map(f, bigItems(true).slice(0, 2).map((b) => move(b)), 1);
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
}
