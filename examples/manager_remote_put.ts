// 17.2.2.7 Using a remote manager: a client putting an item on the server's queue.
// Run: manager_remote_put.ts [host] [port] [item]
import { BaseManager, type BaseProxy } from 'node-multiprocessing/managers';

class QueueManager extends BaseManager {
  declare get_queue: () => Promise<BaseProxy & { put(item: unknown): Promise<void> }>;
}
// A client registers the typeid without a callable.
QueueManager.register('get_queue');

const [host = 'localhost', port = '50000', item = 'hello'] = process.argv.slice(2);
const m = new QueueManager([host, Number(port)], Buffer.from('abracadabra'));
await m.connect();
const queue = await m.get_queue();
await queue.put(item);
