// A TypeScript user's module: type-checked with --strict and without skipLibCheck against the
// installed package (moduleResolution node16 and bundler), so the shipped declarations must
// resolve everything they import.
import {
  AsyncResult, Event, Lock, Pipe, Pool, Process, Queue, TimeoutError, Value, cpuCount, currentProcess,
  getContext, type Connection, type PoolOptions,
} from 'node-multiprocessing';
import { Client, Listener, wait } from 'node-multiprocessing/connection';
import { Pool as PoolFromSubpath } from 'node-multiprocessing/pool';
import { JoinableQueue } from 'node-multiprocessing/queues';
import { RawArray, c_double } from 'node-multiprocessing/sharedctypes';
import { Semaphore } from 'node-multiprocessing/synchronize';

export function square(x: number): number {
  return x * x;
}

export function worker(conn: Connection, lock: Lock, q: Queue): void {
  lock.acquireSync();
  lock.release();
  conn.send(currentProcess().name);
  void q.put(1);
}

export async function main(): Promise<void> {
  const options: PoolOptions = { processes: Math.min(2, cpuCount()) };
  const pool = new Pool(options);
  const squares: number[] = await pool.map(square, [1, 2, 3]);
  const pending: AsyncResult<number> = pool.applyAsync(square, [4]);
  const four: number = await pending.get(10);
  for await (const r of pool.imapUnordered(square, [5, 6])) {
    const n: number = r;
    void n;
  }
  pool.close();
  await pool.join();

  const [a, b] = Pipe();
  const q = new Queue();
  const p = new Process({ target: worker, args: [b, new Lock(), q] });
  p.start();
  const name = await a.recv();
  await p.join(5);
  const code: number | null = p.exitcode;

  const v = Value('i', 0);
  v.value += 1;
  const arr = RawArray(c_double, 4);
  const ctx = getContext('spawn');
  const e: Event = ctx.Event();
  const s = new Semaphore(2);
  const jq = new JoinableQueue();
  const ready = await wait([a], 0);
  try {
    await jq.get(true, 0.01);
  } catch (err) {
    if (!(err instanceof Error)) throw err;
  }
  void [squares, four, name, code, arr, e, s, ready, TimeoutError, Listener, Client, PoolFromSubpath];
}
