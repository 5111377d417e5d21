// The loop each Pool worker runs (Python's multiprocessing.pool.worker). The worker has
// its own duplex Connection to the pool: it receives task batches, runs them, and sends
// result batches back. It blocks while waiting: it has nothing else to do.
import { inspect } from 'node:util';
import type { Connection } from './connection.js';
import { EOFError, OSError, registerErrorClass } from './errors.js';
import { dumps } from './reduction.js';

/** A result could not be sent back (Python's `multiprocessing.pool.MaybeEncodingError`). */
export class MaybeEncodingError extends Error {
  constructor(message = '') {
    super(message);
    this.name = 'MaybeEncodingError';
  }
}
registerErrorClass(MaybeEncodingError);

/** One task: [jobId, index, fnId, items, star]. A chunk of items, each a call. */
export type Task = [number, number, number, unknown[], boolean];
/** A batch from the pool: functions not sent to this worker yet, then tasks. null: stop. */
export type Batch = [Array<[number, Function]> | null, Task[]] | null;
/** One result: [jobId, index, ok, values or error]. */
export type Result = [number, number, boolean, unknown];
/** Sent once, if the initializer throws. */
export const INIT_FAILED = -1;

/** Results of slow tasks go back at once; fast ones ride together (fewer wakeups). */
const FLUSH_MS = 2;

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';
}

function sendResults(conn: Connection, out: Result[]): void {
  try {
    conn.send(out);
    return;
  } catch (e) {
    if (!(e instanceof TypeError)) throw e;
  }
  // Some result cannot be serialized: that task alone fails.
  const fixed = out.map((r): Result => {
    try {
      dumps(r);
      return r;
    } catch (e) {
      const err = new MaybeEncodingError(`Error sending result: '${inspect(r[3]).slice(0, 200)}'. Reason: '${(e as Error).message}'`);
      return [r[0], r[1], false, err];
    }
  });
  conn.send(fixed);
}

/**
 * The worker's target. `maxtasks` (null: no limit): exit after that many tasks.
 * Exits quietly when the pool goes away (EOF on the connection).
 */
export async function poolWorker(conn: Connection, initializer: Function | null, initargs: unknown[], maxtasks: number | null): Promise<void> {
  if (initializer) {
    try {
      const r = initializer(...(initargs ?? []));
      if (isThenable(r)) await r;
    } catch (e) {
      try {
        conn.send([[INIT_FAILED, 0, false, e]]);
      } catch {
        /* the pool is gone */
      }
      conn.close();
      process.exitCode = 1;
      return;
    }
  }
  const fns = new Map<number, Function>();
  let completed = 0;
  for (;;) {
    let batch: Batch;
    try {
      conn.pollSync(null);
      batch = await conn.recv();
    } catch (e) {
      if (e instanceof EOFError || e instanceof OSError) break;
      throw e;
    }
    if (batch === null) break;
    const [defs, tasks] = batch;
    if (defs) for (const [id, fn] of defs) fns.set(id, fn);
    let out: Result[] = [];
    let last = performance.now();
    for (const [job, index, fnId, items, star] of tasks) {
      const fn = fns.get(fnId)!;
      let res: Result;
      try {
        const values = new Array(items.length);
        for (let i = 0; i < items.length; i++) {
          let v = star ? fn(...(items[i] as unknown[])) : fn(items[i]);
          if (isThenable(v)) v = await v;
          values[i] = v;
        }
        res = [job, index, true, values];
      } catch (e) {
        res = [job, index, false, e];
      }
      out.push(res);
      completed++;
      const now = performance.now();
      if (now - last > FLUSH_MS) {
        sendResults(conn, out);
        out = [];
        last = now;
      }
    }
    if (out.length) sendResults(conn, out);
    if (maxtasks !== null && completed >= maxtasks) break;
  }
  conn.close();
}
