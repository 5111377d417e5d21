// 17.2.1.6 with multiprocessing.dummy: using a pool of worker threads. The task functions
// come from the process example; `getpid()` gives the same pid in every thread.
import { pathToFileURL } from 'node:url';
import { TimeoutError } from 'node-multiprocessing';
import { Pool } from 'node-multiprocessing/dummy';
import { f, getpid, sleep } from './pool_workers.js';

const range = (n: number): number[] => [...Array(n).keys()];

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  {
    // start 4 worker threads
    await using pool = new Pool({ processes: 4 });

    // print "[ 0, 1, 4,..., 81 ]"
    console.log(await pool.map(f, range(10)));

    // print same numbers in arbitrary order
    for await (const i of pool.imapUnordered(f, range(10))) {
      console.log(i);
    }

    // evaluate "f(20)" asynchronously
    let res = pool.applyAsync(f, [20]); //        runs in *only* one thread
    console.log(await res.get(1)); //             prints "400"

    // evaluate "getpid()" asynchronously
    res = pool.applyAsync(getpid, []); //         runs in *only* one thread
    console.log(await res.get(1)); //             prints the PID of this process

    // launching multiple evaluations asynchronously *may* use more threads
    const multipleResults = range(4).map(() => pool.applyAsync(getpid, []));
    const pids = [];
    for (const r of multipleResults) pids.push(await r.get(1));
    console.log(pids);

    // make a single worker sleep for 10 secs
    const slow = pool.applyAsync(sleep, [10]);
    try {
      console.log(await slow.get(1));
    } catch (e) {
      if (!(e instanceof TimeoutError)) throw e;
      console.log('We lacked patience and got a multiprocessing.TimeoutError');
    }

    console.log('For the moment, the pool remains available for more work');
  }

  // leaving the 'await using' block has stopped the pool
  console.log('Now the pool is closed and no longer available');
}
