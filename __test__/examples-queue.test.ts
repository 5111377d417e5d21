// The queue examples of the Python documentation, run as a user would run them (they
// import the built package: `npm run build:ts` first).
import test from 'ava';
import { runTs } from './helpers.js';

test('17.2.1.3 Queue', async (t) => {
  const r = await runTs('examples/queue.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, "[ 42, null, 'hello' ]\n");
});

test('17.2.1.2 spawn start method with a Queue', async (t) => {
  const r = await runTs('examples/queue_start_method.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'hello\n');
});

test('17.2.1.2 a spawn context with its own Queue and Process', async (t) => {
  const r = await runTs('examples/queue_context.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'hello\n');
});

test('17.2.4 task and done queues with four workers', async (t) => {
  const r = await runTs('examples/queue_workers.ts');
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  t.is(lines[0], 'Unordered results:');
  t.is(lines.length, 31);
  const parse = (l: string) => {
    const m = /^\t (Process-[1-4]) says that (mul|plus)\((\d+), (\d+)\) = (\d+)$/.exec(l);
    t.truthy(m, `unexpected line: ${JSON.stringify(l)}`);
    return { f: m![2], a: Number(m![3]), b: Number(m![4]), r: Number(m![5]) };
  };
  const first = lines.slice(1, 21).map(parse);
  const second = lines.slice(21).map(parse);
  t.deepEqual(first.map((x) => x.a).sort((x, y) => x - y), [...Array(20).keys()]);
  t.true(first.every((x) => x.f === 'mul' && x.b === 7 && x.r === x.a * 7));
  t.deepEqual(second.map((x) => x.a).sort((x, y) => x - y), [...Array(10).keys()]);
  t.true(second.every((x) => x.f === 'plus' && x.b === 8 && x.r === x.a + 8));
});

test('JoinableQueue: workers call taskDone, join returns when all are done', async (t) => {
  const r = await runTs('examples/queue_joinable.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, '1 4 9 16 25 36 49 64 81 100\nall tasks done\n');
});
