// Objects to and from Python: the remote-manager example of Python's docs (17.2.2.7) with a
// CPython client. This Node process serves a queue with `serializer: 'pickle'` (Python's own
// manager protocol); python3 connects as Python's docs show and puts a dict in it; Node gets it.
// Needs python3 on PATH.
import { spawn } from 'node:child_process';
import { Queue } from 'node-multiprocessing';
import { BaseManager } from 'node-multiprocessing/managers';

const queue = new Queue();

/** Python's `callable=lambda: queue`: every client gets the same queue. */
export function getQueue(): Queue {
  return queue;
}

class QueueManager extends BaseManager {}
QueueManager.register('get_queue', getQueue);

const m = new QueueManager({ address: ['127.0.0.1', 0], authkey: Buffer.from('abracadabra'), serializer: 'pickle' });
const server = m.getServer();
const serving = server.serveForever();
const port = (server.address as [string, number])[1];

// Python's side, as in its docs (with the port this server got).
const client = `
from multiprocessing.managers import BaseManager
class QueueManager(BaseManager): pass
QueueManager.register('get_queue')
m = QueueManager(address=('127.0.0.1', ${port}), authkey=b'abracadabra')
m.connect()
queue = m.get_queue()
queue.put({'greeting': 'hello from Python', 'n': 3})
`;
const python = spawn('python3', ['-c', client], { stdio: 'inherit' });
const code = await new Promise((resolve) => python.on('exit', resolve));
if (code !== 0) throw new Error(`python3 exited with ${code}`);

console.log(await queue.get());
server.shutdown();
await serving;
