// The forkserver start method: process_start_join_forkserver (sequential start and join of
// a no-op target, the first start included), process_start_latency_forkserver (start() to
// the target's first line, read on the monotonic clock in both processes, for isolated
// starts 0.3 s apart after a first one: a latency, not a throughput) and
// pool_start_forkserver (new Pool(4) until the first result of a trivial task, the mean of
// 3, the first included). The same loops as py_bench.py's.
import { performance } from 'node:perf_hooks';
import { getContext, Pipe, type Connection } from 'node-multiprocessing';
import { main, scale, type Row } from './main.js';

export function noop(): void {}

export function sendStartTime(conn: Connection): void {
  conn.send(process.hrtime.bigint());
}

export function square(x: number): number {
  return x * x;
}

main(import.meta.url, async () => {
  const ctx = getContext('forkserver');
  const rows: Row[] = [];
  let n = 5 * scale;
  let t = performance.now();
  for (let i = 0; i < n; i++) {
    const p = new ctx.Process({ target: noop });
    p.start();
    await p.join();
  }
  rows.push({ case: 'process_start_join_forkserver', value: (performance.now() - t) / n, unit: 'ms' });

  const one = async (): Promise<number> => {
    const [a, b] = Pipe();
    const p = new ctx.Process({ target: sendStartTime, args: [b] });
    const t0 = process.hrtime.bigint();
    p.start();
    const at = (await a.recv()) as bigint;
    await p.join();
    a.close();
    b.close();
    return Number(at - t0) / 1e6;
  };
  await one();
  n = 2 * scale;
  let total = 0;
  for (let i = 0; i < n; i++) {
    await new Promise((r) => setTimeout(r, 300));
    total += await one();
  }
  rows.push({ case: 'process_start_latency_forkserver', value: total / n, unit: 'ms' });

  total = 0;
  for (let i = 0; i < 3; i++) {
    t = performance.now();
    const pool = new ctx.Pool(4);
    await pool.apply(square, [3]);
    total += performance.now() - t;
    pool.terminate();
    await pool.join();
  }
  rows.push({ case: 'pool_start_forkserver', value: total / 3, unit: 'ms' });
  return rows;
});
