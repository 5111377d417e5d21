// 17.2.1.4: a lock makes sure that only one process prints to standard output at a time.
import { pathToFileURL } from 'node:url';
import { Lock, Process } from 'node-multiprocessing';

export function f(l: Lock, i: number): void {
  l.acquireSync();
  try {
    console.log('hello world', i);
  } finally {
    l.release();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const lock = new Lock();
  for (let num = 0; num < 10; num++) new Process({ target: f, args: [lock, num] }).start();
}
