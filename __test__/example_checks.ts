// Checks of the output of examples that have a twin with multiprocessing.dummy (the
// same program over threads): shared by examples-pool.test.ts and examples-dummy.test.ts.
import type { ExecutionContext } from 'ava';

const range = (n: number) => [...Array(n).keys()];

/**
 * The output of pool_using.ts (17.2.4); `workers` is how the header names them
 * ('processes', 'threads'), `worker` a pattern for a worker's name.
 */
export function checkPoolUsing(t: ExecutionContext, stdout: string, workers: string, worker: string): void {
  const lines = stdout.split('\n');
  const expected = [
    ...range(10).map((i) => `mul(${i}, 7) = ${i * 7}`),
    ...range(10).map((i) => `plus(${i}, 8) = ${i + 8}`),
  ];
  const says = new RegExp(`^${worker} says that (.*)$`);
  /** Strip "\t " and the worker's name from result lines. */
  const results = (from: number): string[] =>
    lines.slice(from, from + 20).map((l) => {
      t.true(l.startsWith('\t '), JSON.stringify(l));
      const m = says.exec(l.slice(2));
      t.truthy(m, l);
      return m ? m[1] : l;
    });
  let i = 0;
  t.is(lines[i++], `Creating pool with 4 ${workers}`);
  t.is(lines[i++], '');
  t.is(lines[i++], 'Ordered results using pool.applyAsync():');
  t.deepEqual(results(i), expected);
  i += 20;
  t.is(lines[i++], '');
  t.is(lines[i++], 'Ordered results using pool.imap():');
  t.deepEqual(results(i), expected);
  i += 20;
  t.is(lines[i++], '');
  t.is(lines[i++], 'Unordered results using pool.imapUnordered():');
  t.deepEqual(results(i).sort(), [...expected].sort());
  i += 20;
  t.is(lines[i++], '');
  t.is(lines[i++], 'Ordered results using pool.map() --- will block till complete:');
  t.deepEqual(results(i), expected);
  i += 20;
  t.is(lines[i++], '');
  t.is(lines[i++], 'Testing error handling:');
  t.is(lines[i++], '\tGot ZeroDivisionError as expected from pool.apply()');
  t.is(lines[i++], '\tGot ZeroDivisionError as expected from pool.map()');
  t.is(lines[i++], '\tGot ZeroDivisionError as expected from a for await loop over pool.imap()');
  t.is(lines[i++], '\tGot ZeroDivisionError as expected from IMapIterator.next()');
  t.is(lines[i++], '');
  // Dots: timeouts while waiting (how many depends on the random sleeps).
  t.regex(lines[i++], /^Testing ApplyResult\.get\(\) with timeout: \.*$/);
  t.regex(lines[i++], new RegExp(`^\\t${worker} says that mul\\(0, 7\\) = 0$`));
  t.is(lines[i++], '');
  t.regex(lines[i++], /^Testing IMapIterator\.next\(\) with timeout: \.*$/);
  // Each result line may end with the dots of the timeouts before the next result.
  const timed = lines.slice(i, i + 20).map((l) => l.replace(/\.+$/, ''));
  t.deepEqual(timed.map((l) => (l.startsWith('\t') ? says.exec(l.slice(1))?.[1] : l)), expected);
  i += 20;
  t.is(lines[i++], '');
  t.is(lines[i++], '');
  t.is(lines.length, i, 'nothing more');
}

/** The output of queue_workers.ts (17.2.4); `worker` a pattern for a worker's name. */
export function checkQueueWorkers(t: ExecutionContext, stdout: string, worker: string): void {
  const lines = stdout.trimEnd().split('\n');
  t.is(lines[0], 'Unordered results:');
  t.is(lines.length, 31);
  const says = new RegExp(`^\\t (${worker}) says that (mul|plus)\\((\\d+), (\\d+)\\) = (\\d+)$`);
  const parse = (l: string) => {
    const m = says.exec(l);
    t.truthy(m, `unexpected line: ${JSON.stringify(l)}`);
    return { f: m![2], a: Number(m![3]), b: Number(m![4]), r: Number(m![5]) };
  };
  const first = lines.slice(1, 21).map(parse);
  const second = lines.slice(21).map(parse);
  t.deepEqual(first.map((x) => x.a).sort((x, y) => x - y), range(20));
  t.true(first.every((x) => x.f === 'mul' && x.b === 7 && x.r === x.a * 7));
  t.deepEqual(second.map((x) => x.a).sort((x, y) => x - y), range(10));
  t.true(second.every((x) => x.f === 'plus' && x.b === 8 && x.r === x.a + 8));
}
