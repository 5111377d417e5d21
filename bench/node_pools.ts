// Other Node pools on the case pool_apply_async_trivial of bench/pool.ts (2 workers,
// `square`, m tasks submitted one call per task all at once, then every result awaited;
// a first burst of 100 tasks as our pool's first map, so worker startup is not timed): piscina (worker threads, default
// options), workerpool (child processes) and tinypool (child processes).
// The workers load the compiled files next to this one (dist/bench/*.js): run compiled.
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { Tinypool } from 'tinypool';
import workerpool from 'workerpool';
import { main, quick, type Row } from './main.js';

const CASE = 'pool_apply_async_trivial';
// As our pools' first map of 100 items: the workers have started before the clock starts.
const FIRST = 100;

/** A pool as timed here: submit one task, and shut down. */
interface Subject {
  impl: string;
  submit: (x: number) => PromiseLike<number>;
  close: () => Promise<unknown>;
}

const file = (name: string): string => fileURLToPath(new URL(name, import.meta.url));

function piscina(): Subject {
  const pool = new Piscina({ filename: file('./node_pool_task.js'), minThreads: 2, maxThreads: 2 });
  return { impl: 'piscina', submit: (x) => pool.run(x), close: () => pool.destroy() };
}

function workerpoolProcess(): Subject {
  const pool = workerpool.pool(file('./node_pool_workerpool.js'), { workerType: 'process', minWorkers: 2, maxWorkers: 2 });
  return { impl: 'workerpool', submit: (x) => pool.exec('square', [x]), close: async () => { await pool.terminate(); } };
}

function tinypoolProcess(): Subject {
  const pool = new Tinypool({ filename: file('./node_pool_task.js'), runtime: 'child_process', minThreads: 2, maxThreads: 2 });
  return { impl: 'tinypool', submit: (x) => pool.run(x), close: () => pool.destroy() };
}

/** Submits `n` tasks at once, then awaits each result in order (as bench/pool.ts does with applyAsync/get). */
async function burst(s: Subject, n: number): Promise<void> {
  const ps: PromiseLike<number>[] = [];
  for (let i = 0; i < n; i++) ps.push(s.submit(i));
  for (let i = 0; i < n; i++) {
    if ((await ps[i]) !== i * i) throw new Error(`${s.impl}: wrong result for ${i}`);
  }
}

async function benchNodePools(): Promise<Row[]> {
  const m = (20000 * (quick ? 1 : 5)) / 10; // bench/pool.ts's m
  const rows: Row[] = [];
  for (const make of [piscina, workerpoolProcess, tinypoolProcess]) {
    let s: Subject | undefined;
    try {
      s = make();
      await burst(s, FIRST);
      const t = performance.now();
      await burst(s, m);
      rows.push({ case: CASE, impl: s.impl, value: m / ((performance.now() - t) / 1000), unit: 'task/s' });
    } catch (e) {
      console.error(`${s?.impl ?? make.name} failed: ${(e as Error).stack ?? e}`);
    } finally {
      await s?.close();
    }
  }
  return rows;
}

main(import.meta.url, benchNodePools);
