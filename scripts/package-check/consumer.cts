// A CommonJS TypeScript user's module (compiled to require()): TypeScript allows require() of
// an ES module under `module: node20` or `nodenext` (TypeScript 5.8 and newer), as Node >= 20.19 does.
import { Lock, Pool, Process, type Connection } from 'node-multiprocessing';

export function ping(conn: Connection): void {
  conn.send('pong');
}

export async function main(): Promise<number[]> {
  const lock = new Lock();
  await lock.acquire();
  lock.release();
  const p = new Process({ target: ping, args: [] });
  void p;
  const pool = new Pool(1);
  try {
    return await pool.map((x: number) => x + 1, [1, 2]);
  } finally {
    pool.terminate();
  }
}
