// 17.2.3.1: joining processes that use queues: take the items off the queue before joining.
import { pathToFileURL } from 'node:url';
import { Process, Queue } from 'node-multiprocessing';

export async function f(q: Queue): Promise<void> {
  await q.put('X'.repeat(1_000_000));
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const queue = new Queue();
  const p = new Process({ target: f, args: [queue] });
  p.start();
  // Python's deadlocking form joins first. Here puts go straight to the queue's shared memory, so
  // that form blocks only when the child puts more than the queue holds (maxsize, or 16 MiB).
  const obj = (await queue.get()) as string;
  await p.join();
  console.log(obj.length, p.exitcode);
}
