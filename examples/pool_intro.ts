// 17.2.1: data parallelism with a Pool. `f` is exported so that the workers can import it.
import { pathToFileURL } from 'node:url';
import { Pool } from 'node-multiprocessing';

export function f(x: number): number {
  return x * x;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  await using p = new Pool(5);
  console.log(await p.map(f, [1, 2, 3])); // prints "[ 1, 4, 9 ]"
}
