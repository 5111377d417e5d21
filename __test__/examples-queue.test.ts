// The queue examples of the Python documentation, run as a user would run them (they
// import the built package: `npm run build:ts` first).
import test from 'ava';
import { checkQueueWorkers } from './example_checks.js';
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
  checkQueueWorkers(t, r.stdout, 'Process-[1-4]');
});

test('JoinableQueue: workers call taskDone, join returns when all are done', async (t) => {
  const r = await runTs('examples/queue_joinable.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, '1 4 9 16 25 36 49 64 81 100\nall tasks done\n');
});
