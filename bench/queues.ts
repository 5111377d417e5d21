// Queue cases, as py_mp_bench.py's bench_queue: a child producer puts n items (a payload it
// builds itself) then null; the parent counts items per second after the first one.
// `--first`: the producer waits for a signal, then puts one item; the parent times from the
// signal to the item in hand (queue_get_8B_first, queue_get_1MiB_first).
import { performance } from 'node:perf_hooks';
import { Event, getContext, Queue } from 'node-multiprocessing';
import { first, main, scale, type Row } from './main.js';

/** The child: put `n` Buffers of `size` bytes, then null. */
export async function queueProducer(q: Queue, n: number, size: number, ready?: Event, go?: Event): Promise<void> {
  const payload = Buffer.alloc(size, 'x');
  if (ready && go) {
    ready.set();
    await go.wait();
  }
  for (let i = 0; i < n; i++) q.putSync(payload);
  q.putSync(null);
}

async function run(n: number, size: number, label: string): Promise<Row[]> {
  const ctx = getContext('spawn');
  const q = new Queue();
  const p = new ctx.Process({ target: queueProducer, args: [q, n, size] });
  p.start();
  q.getSync();
  const t = performance.now();
  let got = 1;
  while (q.getSync() !== null) got++;
  const dt = (performance.now() - t) / 1000;
  await p.join();
  if (got !== n) throw new Error(`queue_throughput_${label}: got ${got} of ${n} items`);
  const rows: Row[] = [{ case: `queue_throughput_${label}`, value: (got - 1) / dt, unit: 'msg/s' }];
  if (size > 100) rows.push({ case: `queue_bandwidth_${label}`, value: ((got - 1) * size) / dt / 1e6, unit: 'MB/s' });
  return rows;
}

async function once(size: number, label: string): Promise<Row> {
  const ctx = getContext('spawn');
  const q = new Queue();
  const [ready, go] = [new Event(), new Event()];
  const p = new ctx.Process({ target: queueProducer, args: [q, 1, size, ready, go] });
  p.start();
  await ready.wait();
  const t = performance.now();
  go.set();
  const item = q.getSync() as Buffer;
  const dt = performance.now() - t;
  if (item.length !== size) throw new Error(`queue_get_${label}_first: wrong item`);
  q.getSync();
  await p.join();
  return { case: `queue_get_${label}_first`, value: dt * 1e3, unit: 'us' };
}

main(import.meta.url, async () => {
  if (first) return [await once(8, '8B'), await once(1 << 20, '1MiB')];
  const which = process.argv.includes('--1MiB') ? ['1MiB'] : process.argv.includes('--8B') ? ['8B'] : ['8B', '1MiB'];
  const rows: Row[] = [];
  if (which.includes('8B')) rows.push(...(await run(20000 * scale, 8, '8B')));
  if (which.includes('1MiB')) rows.push(...(await run(200 * scale, 1 << 20, '1MiB')));
  return rows;
});
