// 17.2.1 with multiprocessing.dummy: the same data parallelism with a pool of threads.
// `f` comes from the process example (exported there, so that the threads can import it).
import { pathToFileURL } from 'node:url';
import { Pool } from 'node-multiprocessing/dummy';
import { f } from './pool_intro.js';

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  await using p = new Pool(5);
  console.log(await p.map(f, [1, 2, 3])); // prints "[ 1, 4, 9 ]"
}
