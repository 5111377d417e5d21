// The Pool examples of the Python documentation, as TypeScript twins; each is run here.
import test from 'ava';
import { inspect } from 'node:util';
import { checkPoolUsing } from './example_checks.js';
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
  checkPoolUsing(t, r.stdout, 'processes', 'SpawnPoolWorker-\\d+');
});
