// The Pool examples of the Python documentation, as TypeScript twins; each is run here.
import test from 'ava';
import { inspect } from 'node:util';
import { runTs } from './helpers.js';

const range = (n: number) => [...Array(n).keys()];
const squares = inspect(range(10).map((x) => x * x));

test('17.2.1 intro: Pool(5).map', async (t) => {
  const r = await runTs('examples/pool_intro.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, '[ 1, 4, 9 ]\n');
});

test('17.2.1.6 using a pool of workers', async (t) => {
  const r = await runTs('examples/pool_workers.ts');
  t.is(r.code, 0, r.stderr);
  t.true(r.stdout.startsWith(`${squares}\n`), r.stdout);
  const lines = r.stdout.slice(squares.length + 1).trimEnd().split('\n');
  t.is(lines.length, 16, r.stdout);
  // imapUnordered: the same numbers in any order.
  t.deepEqual(lines.slice(0, 10).map(Number).sort((a, b) => a - b), range(10).map((x) => x * x));
  t.is(lines[10], '400');
  const pid = Number(lines[11]);
  t.true(Number.isInteger(pid) && pid > 0, lines[11]);
  const m = /^\[ (\d+), (\d+), (\d+), (\d+) \]$/.exec(lines[12]);
  t.truthy(m, lines[12]);
  t.true(m!.slice(1).every((p) => Number(p) > 0));
  t.is(lines[13], 'We lacked patience and got a multiprocessing.TimeoutError');
  t.is(lines[14], 'For the moment, the pool remains available for more work');
  t.is(lines[15], 'Now the pool is closed and no longer available');
});

test('17.2.2.9 AsyncResult: get, map, imap next(timeout), get(1) times out', async (t) => {
  const r = await runTs('examples/pool_asyncresult.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, `100\n${squares}\n0\n1\n4\nTimeoutError after 1 second, as expected\n`);
});

test('17.2.4 using Pool', async (t) => {
  const r = await runTs('examples/pool_using.ts');
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  const expected = [
    ...range(10).map((i) => `mul(${i}, 7) = ${i * 7}`),
    ...range(10).map((i) => `plus(${i}, 8) = ${i + 8}`),
  ];
  const says = /^SpawnPoolWorker-\d+ says that (.*)$/;
  /** Strip "\t " and the worker's name from result lines. */
  const results = (from: number): string[] =>
    lines.slice(from, from + 20).map((l) => {
      t.true(l.startsWith('\t '), JSON.stringify(l));
      const m = says.exec(l.slice(2));
      t.truthy(m, l);
      return m ? m[1] : l;
    });
  let i = 0;
  t.is(lines[i++], 'Creating pool with 4 processes');
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
  t.regex(lines[i++], /^\tSpawnPoolWorker-\d+ says that mul\(0, 7\) = 0$/);
  t.is(lines[i++], '');
  t.regex(lines[i++], /^Testing IMapIterator\.next\(\) with timeout: \.*$/);
  // Each result line may end with the dots of the timeouts before the next result.
  const timed = lines.slice(i, i + 20).map((l) => l.replace(/\.+$/, ''));
  t.deepEqual(timed.map((l) => (l.startsWith('\t') ? says.exec(l.slice(1))?.[1] : l)), expected);
  i += 20;
  t.is(lines[i++], '');
  t.is(lines[i++], '');
  t.is(lines.length, i, 'nothing more');
});
