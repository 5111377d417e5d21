// 17.2.2.9 with multiprocessing.dummy: AsyncResult and imap with timeouts, on a pool of
// threads. The task functions come from the process example.
import { pathToFileURL } from 'node:url';
import { Pool } from 'node-multiprocessing/dummy';
import { TimeoutError } from 'node-multiprocessing';
import { f, sleep } from './pool_asyncresult.js';

const range = (n: number): number[] => [...Array(n).keys()];

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  await using pool = new Pool({ processes: 4 }); // start 4 worker threads
  const result = pool.applyAsync(f, [10]); //        evaluate "f(10)" asynchronously in a single thread
  console.log(await result.get(90)); //              prints "100" (the first wait includes starting the threads)

  console.log(await pool.map(f, range(10))); //      prints "[ 0, 1, 4,..., 81 ]"

  const it = pool.imap(f, range(10));
  console.log((await it.next()).value); //           prints "0"
  console.log((await it.next()).value); //           prints "1"
  console.log((await it.next(1)).value); //          prints "4" unless your computer is *very* slow

  const slow = pool.applyAsync(sleep, [10]);
  try {
    console.log(await slow.get(1)); //               throws TimeoutError
  } catch (e) {
    if (!(e instanceof TimeoutError)) throw e;
    console.log(`${e.name} after 1 second, as expected`); // prints "TimeoutError after 1 second, as expected"
  }
}
