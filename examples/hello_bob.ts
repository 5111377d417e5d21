// 17.2.1.1: the trivial example.
import { pathToFileURL } from 'node:url';
import { Process } from 'node-multiprocessing';

export function f(name: string): void {
  console.log('hello', name);
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const p = new Process({ target: f, args: ['bob'] });
  p.start();
  await p.join();
}
