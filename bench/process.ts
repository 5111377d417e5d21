// process_start_join_spawn: start and join a Process whose target does nothing, and the same
// with Node's own child_process.fork of an empty module. `--first`: one of each in this
// fresh process (process_start_join_spawn_first).
import { fork } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { getContext } from 'node-multiprocessing';
import { first, main, scale, type Row } from './main.js';

export function noop(): void {}

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

async function forkJoinMs(n: number): Promise<number> {
  const empty = fileURLToPath(new URL('./empty_child.js', import.meta.url));
  const t = performance.now();
  for (let i = 0; i < n; i++) await new Promise((resolve) => fork(empty).on('exit', resolve));
  return (performance.now() - t) / n;
}

main(import.meta.url, async () => {
  const n = first ? 1 : 5 * scale;
  const name = first ? 'process_start_join_spawn_first' : 'process_start_join_spawn';
  const rows: Row[] = [{ case: name, value: await startJoinMs(n), unit: 'ms' }];
  const extraCa = process.env.NODE_EXTRA_CA_CERTS;
  if (extraCa !== undefined && !first) {
    // With NODE_EXTRA_CA_CERTS set, Node 20 parses its CA bundle and that file at every
    // start, before any JavaScript runs (nodejs/node#40524). The same children without
    // it show what starting costs apart from that.
    delete process.env.NODE_EXTRA_CA_CERTS;
    try {
      rows.push({ case: name, impl: 'node-multiprocessing without NODE_EXTRA_CA_CERTS', value: await startJoinMs(n), unit: 'ms' });
    } finally {
      process.env.NODE_EXTRA_CA_CERTS = extraCa;
    }
  }
  rows.push({ case: name, impl: 'node child_process.fork', value: await forkJoinMs(n), unit: 'ms' });
  return rows;
});
