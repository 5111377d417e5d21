// Benchmark cases of node-multiprocessing; names match ../shared/anchors/py_mp_bench.py.
import { fork } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { getContext, Pipe } from '../index.js';
import { noop, pipeEcho } from './targets.js';

export interface Row {
  case: string;
  value: number;
  unit: string;
  impl?: string;
}

async function startJoinMs(n: number): Promise<number> {
  const ctx = getContext('spawn');
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    const p = new ctx.Process({ target: noop });
    p.start();
    await p.join();
  }
  return (performance.now() - t) / n;
}

export async function processStartJoin(n: number): Promise<Row[]> {
  const rows: Row[] = [{ case: 'process_start_join_spawn', value: await startJoinMs(n), unit: 'ms' }];
  const extraCa = process.env.NODE_EXTRA_CA_CERTS;
  if (extraCa !== undefined) {
    // With NODE_EXTRA_CA_CERTS set, Node 20 parses its CA bundle and that file at every
    // start, before any JavaScript runs (nodejs/node#40524). The same children without
    // it show what starting costs apart from that.
    delete process.env.NODE_EXTRA_CA_CERTS;
    try {
      rows.push({ case: 'process_start_join_spawn', impl: 'node-multiprocessing without NODE_EXTRA_CA_CERTS', value: await startJoinMs(n), unit: 'ms' });
    } finally {
      process.env.NODE_EXTRA_CA_CERTS = extraCa;
    }
  }
  return rows;
}

/** Node's own way to start a node child (child_process.fork of an empty module), same environment. */
export async function nodeForkJoin(n: number): Promise<Row[]> {
  const empty = fileURLToPath(new URL('./empty_child.js', import.meta.url));
  const t = performance.now();
  for (let i = 0; i < n; i++) await new Promise((resolve) => fork(empty).on('exit', resolve));
  return [{ case: 'process_start_join_spawn', impl: 'node child_process.fork', value: (performance.now() - t) / n, unit: 'ms' }];
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
