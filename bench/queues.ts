// Queue benchmark cases, mirroring bench/py_bench.py `_queue`: a child producer puts n
// items then null; the parent counts items per second after the first one.
import { performance } from 'node:perf_hooks';
import { getContext } from '../index.js';
import { Queue } from '../src/queues.js';
import type { Row } from './cases.js';

/** The child: put `n` Buffers of `size` bytes, then null (exported: it travels by reference). */
export function queueProducer(q: Queue, n: number, size: number): void {
  const payload = Buffer.alloc(size, 'x');
  warmUp(payload);
  for (let i = 0; i < n; i++) q.putSync(payload);
  q.putSync(null);
}

/** Compile the put and get paths first, as CPython needs no warm-up (bench/sync.ts does the same). */
function warmUp(payload: Buffer): void {
  const local = new Queue();
  const rounds = payload.length > 4096 ? 20 : 20_000;
  for (let i = 0; i < rounds; i++) {
    local.putSync(payload);
    local.getSync();
  }
}

async function run(n: number, size: number, label: string): Promise<Row[]> {
  const ctx = getContext('spawn');
  warmUp(Buffer.alloc(size, 'x'));
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

export async function benchQueues(quick: boolean): Promise<Row[]> {
  const scale = quick ? 1 : 5;
  return [...(await run(20000 * scale, 8, '8B')), ...(await run(200 * scale, 1 << 20, '1MiB'))];
}
