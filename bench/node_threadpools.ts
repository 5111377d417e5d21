// Node's thread pools on the ThreadPool cases of bench/threadpool.ts: piscina, tinypool and
// poolifier, each with worker threads, 2 of them, otherwise their defaults.
// threadpool_apply_async_trivial: `square`, m tasks submitted one call per task all at
// once, then every result awaited (as bench/pool.ts does with applyAsync/get), after a
// first burst of 100 tasks. threadpool_map_1MiB: piscina with transfer lists both ways (the input Buffers
// are given away, the results moved back), every item submitted at once.
// The workers load the compiled files next to this one (dist/bench/*.js): run compiled.
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { FixedThreadPool } from 'poolifier';
import { Tinypool } from 'tinypool';
import { bigItems, main, quick, type Row } from './main.js';

const APPLY = 'threadpool_apply_async_trivial';
// As our pools' first map of 100 items: the workers have started before the clock starts.
const FIRST = 100;

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

function tinypool(): Subject {
  const pool = new Tinypool({ filename: file('./node_pool_task.js'), minThreads: 2, maxThreads: 2 });
  return { impl: 'tinypool', submit: (x) => pool.run(x), close: () => pool.destroy() };
}

function poolifier(): Subject {
  const pool = new FixedThreadPool<number, number>(2, file('./node_pool_poolifier.js'));
  return { impl: 'poolifier', submit: (x) => pool.execute(x), close: () => pool.destroy() };
}

async function burst(s: Subject, n: number): Promise<void> {
  const ps: PromiseLike<number>[] = [];
  for (let i = 0; i < n; i++) ps.push(s.submit(i));
  for (let i = 0; i < n; i++) {
    if ((await ps[i]) !== i * i) throw new Error(`${s.impl}: wrong result for ${i}`);
  }
}

async function piscinaBig(): Promise<Row> {
  const pool = new Piscina({ filename: file('./node_pool_swap.js'), minThreads: 2, maxThreads: 2 });
  const run = (bs: Buffer[]): Promise<Uint8Array[]> => Promise.all(bs.map((b) => pool.run(b, { transferList: [b.buffer as ArrayBuffer] }) as Promise<Uint8Array>));
  try {
    await pool.run(Buffer.alloc(8)); // as our pool's first map: the workers have started
    const items = bigItems(quick);
    const bytes = items.length * (1 << 20);
    const t = performance.now();
    const out = await run(items);
    const dt = (performance.now() - t) / 1000;
    if (out.length !== items.length || out[1][4] !== 1) throw new Error('piscina: wrong result');
    return { case: 'threadpool_map_1MiB', impl: 'piscina', value: bytes / dt / 1e6, unit: 'MB/s' };
  } finally {
    await pool.destroy();
  }
}

/** `p`, or an error after `seconds` (a pool call that never settles). */
function within<T>(p: PromiseLike<T>, seconds: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${seconds} s`)), seconds * 1000);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

async function benchNodeThreadPools(): Promise<Row[]> {
  const m = (20000 * (quick ? 1 : 5)) / 10; // bench/threadpool.ts's m
  const rows: Row[] = [];
  // A pool whose promise never settles leaves the event loop nothing to wait for: the
  // process would end there, quietly, without any row (seen with poolifier's destroy()).
  // It stays up, and a subject that does not finish in time is reported and skipped.
  const keepAlive = setInterval(() => {}, 1000);
  try {
    for (const make of [piscina, tinypool, poolifier]) {
      let s: Subject | undefined;
      try {
        s = make();
        await within(burst(s, FIRST), 60, `${s.impl} first tasks`);
        const t = performance.now();
        await within(burst(s, m), 120, `${s.impl} ${m} tasks`);
        rows.push({ case: APPLY, impl: s.impl, value: m / ((performance.now() - t) / 1000), unit: 'task/s' });
      } catch (e) {
        console.error(`${s?.impl ?? make.name} failed: ${(e as Error).stack ?? e}`);
      } finally {
        await within(s?.close() ?? Promise.resolve(), 10, `${s?.impl ?? make.name} close`).catch((e: unknown) => console.error((e as Error).message));
      }
    }
    try {
      rows.push(await within(piscinaBig(), 120, 'piscina (1 MiB)'));
    } catch (e) {
      console.error(`piscina (1 MiB) failed: ${(e as Error).stack ?? e}`);
    }
  } finally {
    clearInterval(keepAlive);
  }
  return rows;
}

main(import.meta.url, benchNodeThreadPools);
