// 17.2.1.2: a context object for the 'spawn' start method, with its own Queue and Process.
import { pathToFileURL } from 'node:url';
import * as mp from 'node-multiprocessing';
import type { Queue } from 'node-multiprocessing';

export async function foo(q: Queue): Promise<void> {
  await q.put('hello');
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const ctx = mp.getContext('spawn');
  const q = ctx.Queue();
  const p = new ctx.Process({ target: foo, args: [q] });
  p.start();
  console.log(await q.get());
  await p.join();
}
