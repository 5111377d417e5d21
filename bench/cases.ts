// Benchmark cases of node-multiprocessing; names match ../shared/anchors/py_mp_bench.py.
import { performance } from 'node:perf_hooks';
import { getContext, Pipe } from '../index.js';
import { noop, pipeEcho } from './targets.js';

export interface Row {
  case: string;
  value: number;
  unit: string;
  impl?: string;
}

export async function processStartJoin(n: number): Promise<Row> {
  const ctx = getContext('spawn');
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    const p = new ctx.Process({ target: noop });
    p.start();
    await p.join();
  }
  return { case: 'process_start_join_spawn', value: (performance.now() - t) / n, unit: 'ms' };
}

export async function pipeRoundtrip(n: number): Promise<Row> {
  const [a, b] = Pipe();
  const p = new (getContext('spawn').Process)({ target: pipeEcho, args: [b, n + 1] });
  p.start();
  a.send(0);
  a.recvSync();
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    a.send(i);
    a.recvSync();
  }
  const dt = performance.now() - t;
  await p.join();
  return { case: 'pipe_roundtrip', value: (dt / n) * 1e3, unit: 'us' };
}
