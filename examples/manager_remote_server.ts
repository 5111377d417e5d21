// 17.2.2.7 Using a remote manager: a queue served on a TCP port to other machines.
// Run: manager_remote_server.ts [port] (default 50000); then manager_remote_put.ts and
// manager_remote_get.ts, from other processes (or machines, with the host's name).
import { Queue } from 'node-multiprocessing';
import { BaseManager } from 'node-multiprocessing/managers';

const queue = new Queue();

/** Python's `callable=lambda: queue`: every client gets the same queue. */
export function getQueue(): Queue {
  return queue;
}

class QueueManager extends BaseManager {}
QueueManager.register('get_queue', getQueue);

const port = Number(process.argv[2] ?? 50000);
const m = new QueueManager(['', port], Buffer.from('abracadabra'));
const s = m.getServer();
console.log(`serving on port ${(s.address as [string, number])[1]}`);
await s.serveForever();
