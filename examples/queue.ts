// 17.2.1.3: exchanging objects through a Queue.
import { pathToFileURL } from 'node:url';
import { Process, Queue } from 'node-multiprocessing';

export function f(q: Queue): void {
  // No await needed: there is room, so the item is in the queue when put() returns
  // (and a put still waiting for room would be completed before the child exits).
  void q.put([42, null, 'hello']);
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const q = new Queue();
  const p = new Process({ target: f, args: [q] });
  p.start();
  console.log(await q.get()); // prints "[ 42, null, 'hello' ]"
  await p.join();
}
