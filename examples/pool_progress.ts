// A long Pool.imapUnordered with a progress bar, as Python users pair imap_unordered with tqdm:
//
//   for steps in tqdm(pool.imap_unordered(collatz, range(1, n), chunksize=500), total=n - 1): ...
//
// The bar is cli-progress (a dev dependency of the examples). It draws on stderr: in place on a
// terminal, one line every second otherwise (noTTYOutput), and a last line at 100%.
import { Presets, SingleBar } from 'cli-progress';
import { pathToFileURL } from 'node:url';
import { Pool } from 'node-multiprocessing';

/** [n, the number of steps the Collatz sequence from n takes to reach 1]. */
export function collatz(n: number): [number, number] {
  let steps = 0;
  for (let x = n; x !== 1; steps++) x = x % 2 === 0 ? x / 2 : 3 * x + 1;
  return [n, steps];
}

function* range(start: number, stop: number): Generator<number> {
  for (let i = start; i < stop; i++) yield i;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const n = Number(process.argv[2] ?? 100_000);
  const bar = new SingleBar(
    { format: 'Collatz |{bar}| {percentage}% | {value}/{total} | {duration}s', noTTYOutput: true, notTTYSchedule: 1000 },
    Presets.shades_classic,
  );
  await using pool = new Pool();
  bar.start(n - 1, 0);
  let best: [number, number] = [1, 0];
  // Results come in the order the workers finish them; the bar counts them as they arrive.
  for await (const [start, steps] of pool.imapUnordered(collatz, range(1, n), 500)) {
    if (steps > best[1] || (steps === best[1] && start < best[0])) best = [start, steps];
    bar.increment();
  }
  bar.stop();
  console.log(`below ${n}, the longest Collatz sequence starts at ${best[0]} (${best[1]} steps)`);
}
