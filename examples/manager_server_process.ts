// 17.2.1.4: sharing state through a server process (a manager).
import { pathToFileURL } from 'node:url';
import { Manager, Process } from 'node-multiprocessing';
import type { DictProxy, ListProxy } from 'node-multiprocessing/managers';

export function f(d: DictProxy, l: ListProxy<number>): void {
  d.setItemSync(1, '1');
  d.setItemSync('2', 2);
  d.setItemSync(0.25, null);
  l.reverseSync();
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  await using manager = await Manager();
  const d = await manager.dict();
  const l = await manager.list([...Array(10).keys()]);

  const p = new Process({ target: f, args: [d, l] });
  p.start();
  await p.join();

  console.log(String(d)); // {1: '1', '2': 2, 0.25: None}
  console.log(String(l)); // [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
}
