// The synchronization and shared-memory examples of the Python documentation, run as a
// user would run them (they import the built package: `npm run build:ts` first).
import test from 'ava';
import { runTs } from './helpers.js';

test('17.2.1.4 Lock: each child prints one whole line', async (t) => {
  const r = await runTs('examples/lock.ts');
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.is(lines.length, 10);
  t.deepEqual(lines.map((l) => Number(/^hello world (\d)$/.exec(l)?.[1])).sort(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test('17.2.1.5 Value and Array', async (t) => {
  const r = await runTs('examples/value_array.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, '3.1415927\n[\n   0, -1, -2, -3, -4,\n  -5, -6, -7, -8, -9\n]\n');
});

test('17.2.2.6.1 sharedctypes with Point', async (t) => {
  const r = await runTs('examples/sharedctypes_point.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, '49\n0.1111111111111111\nHELLO WORLD\n[ [ 3.515625, 39.0625 ], [ 33.0625, 4 ], [ 5.640625, 90.25 ] ]\n');
});
