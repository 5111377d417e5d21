// 17.2.2.7 Using a remote manager: another client taking the item.
// Run: manager_remote_get.ts [host] [port] [authkey]
import { BaseManager, type BaseProxy } from 'node-multiprocessing/managers';

class QueueManager extends BaseManager {
  declare get_queue: () => Promise<BaseProxy & { get(): Promise<unknown> }>;
}
QueueManager.register('get_queue');

const [host = 'localhost', port = '50000', key = 'abracadabra'] = process.argv.slice(2);
const m = new QueueManager([host, Number(port)], Buffer.from(key));
await m.connect();
const queue = await m.get_queue();
console.log(await queue.get()); // 'hello'
