// 17.2.1.2: choosing the 'spawn' start method, then passing a Queue to a child.
import { pathToFileURL } from 'node:url';
import * as mp from 'node-multiprocessing';
import type { Queue } from 'node-multiprocessing';

export async function foo(q: Queue): Promise<void> {
  await q.put('hello');
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  mp.setStartMethod('spawn');
  const q = new mp.Queue();
  const p = new mp.Process({ target: foo, args: [q] });
  p.start();
  console.log(await q.get());
  await p.join();
}
