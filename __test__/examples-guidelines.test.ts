// The Process-method, freeze_support, logging and programming-guideline examples of the Python
// documentation, run as a user would run them (they import the built package: `npm run build:ts` first).
import test from 'ava';
import { runTs } from './helpers.js';

test('17.2.2.1 methods of Process: isAlive, terminate, exitcode', async (t) => {
  const r = await runTs('examples/process_methods.ts');
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  t.is(lines.length, 4, r.stdout);
  const initial = /^<Process name='Process-1' parent=(\d+) initial> false$/.exec(lines[0]);
  t.truthy(initial, lines[0]);
  const parent = initial![1];
  const started = new RegExp(`^<Process name='Process-1' pid=(\\d+) parent=${parent} started> true$`).exec(lines[1]);
  t.truthy(started, lines[1]);
  t.not(started![1], parent);
  t.regex(lines[2], new RegExp(`^<Process name='Process-1' pid=${started![1]} parent=${parent} stopped exitcode=-SIGTERM> false$`));
  t.is(lines[3], 'true');
});

test('17.2.2.3 freezeSupport then a Process', async (t) => {
  const r = await runTs('examples/freeze_support.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'hello world!\n');
});

test('17.2.2.12 logToStderr at INFO: a warning, a manager logging from its process, the shutdown messages', async (t) => {
  const r = await runTs('examples/logging.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, '');
  // Python prints the same lines (the manager's temp directory and address differ).
  const lines = r.stderr.replace(/\/tmp\/[^\s']+/g, 'PATH').split('\n');
  t.deepEqual(lines, [
    '[WARNING/MainProcess] doomed',
    '[INFO/SyncManager-1] child process calling self.run()',
    '[INFO/SyncManager-1] created temp directory PATH',
    "[INFO/SyncManager-1] manager serving at 'PATH'",
    '[INFO/MainProcess] sending shutdown message to manager',
    '[INFO/SyncManager-1] process shutting down',
    '[INFO/SyncManager-1] process exiting with exitcode 0',
    '[INFO/MainProcess] process shutting down',
    '',
  ]);
});

test('17.2.3.1 joining processes that use queues: get before join', async (t) => {
  const r = await runTs('examples/queue_join.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, '1000000 0\n');
});

test('17.2.3.1 explicitly pass resources: the Lock is an argument of each child', async (t) => {
  const r = await runTs('examples/pass_resources.ts');
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  t.is(lines.length, 20, r.stdout);
  // Each child's two lines are adjacent: no other child printed while it held the lock.
  const order: number[] = [];
  for (let k = 0; k < lines.length; k += 2) {
    const m = /^process (\d) takes the lock$/.exec(lines[k]);
    t.truthy(m, lines[k]);
    t.is(lines[k + 1], `process ${m![1]} releases the lock`);
    order.push(Number(m![1]));
  }
  t.deepEqual(order.sort((a, b) => a - b), [...Array(10).keys()]);
});

test('17.2.3.2 safe importing of the main module', async (t) => {
  const r = await runTs('examples/main_guard.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'hello\n');
});
