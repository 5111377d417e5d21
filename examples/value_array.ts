// 17.2.1.5: sharing state between processes through shared memory.
import { pathToFileURL } from 'node:url';
import { Array, Process, Value, type Synchronized, type SynchronizedArray } from 'node-multiprocessing';

export function f(n: Synchronized<number>, a: SynchronizedArray<number>): void {
  n.value = 3.1415927;
  for (let i = 0; i < a.length; i++) a[i] = -a[i];
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const num = Value('d', 0.0);
  const arr = Array('i', [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

  const p = new Process({ target: f, args: [num, arr] });
  p.start();
  await p.join();

  console.log(num.value); // 3.1415927
  console.log(arr.toArray()); // [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]
}
