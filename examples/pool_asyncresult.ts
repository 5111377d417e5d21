// 17.2.2.9: AsyncResult and imap with timeouts.
import { pathToFileURL } from 'node:url';
import { Pool, TimeoutError } from 'node-multiprocessing';

export function f(x: number): number {
  return x * x;
}

/** Python's `time.sleep`, without blocking the worker's event loop. */
export function sleep(seconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, seconds * 1000));
}

const range = (n: number): number[] => [...Array(n).keys()];

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  await using pool = new Pool({ processes: 4 }); // start 4 worker processes
  const result = pool.applyAsync(f, [10]); //        evaluate "f(10)" asynchronously in a single process
  // Python's workers start by fork in a few milliseconds; ours are started fresh (spawn), and
  // under tsx that takes a moment (longer on a busy machine), which this first wait
  // includes: give it 90 seconds.
  console.log(await result.get(90)); //              prints "100"

  console.log(await pool.map(f, range(10))); //      prints "[ 0, 1, 4,..., 81 ]"

  const it = pool.imap(f, range(10));
  console.log((await it.next()).value); //           prints "0"
  console.log((await it.next()).value); //           prints "1"
  console.log((await it.next(1)).value); //          prints "4" unless your computer is *very* slow

  const slow = pool.applyAsync(sleep, [10]);
  try {
    console.log(await slow.get(1)); //               throws TimeoutError
  } catch (e) {
    // Python lets the TimeoutError end the program; here it is shown and the program ends normally.
    if (!(e instanceof TimeoutError)) throw e;
    console.log(`${e.name} after 1 second, as expected`); // prints "TimeoutError after 1 second, as expected"
  }
}
