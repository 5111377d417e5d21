// 17.2.2.7 Using a remote manager: serving a local Queue that a local Worker process fills.
// Run: manager_remote_worker.ts [port] (default 50000); then manager_remote_get.ts prints 'local hello'.
import { pathToFileURL } from 'node:url';
import { Process, Queue } from 'node-multiprocessing';
import { BaseManager } from 'node-multiprocessing/managers';

export class Worker extends Process {
  q: Queue;
  constructor(q: Queue) {
    super();
    this.q = q;
  }
  override async run(): Promise<void> {
    await this.q.put('local hello');
  }
}

const queue = new Queue();

/** Python's `callable=lambda: queue`. */
export function getQueue(): Queue {
  return queue;
}

class QueueManager extends BaseManager {}
QueueManager.register('get_queue', getQueue);

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const w = new Worker(queue);
  w.start();
  const port = Number(process.argv[2] ?? 50000);
  const m = new QueueManager(['', port], Buffer.from('abracadabra'));
  const s = m.getServer();
  console.log(`serving on port ${(s.address as [string, number])[1]}`);
  await s.serveForever();
}
