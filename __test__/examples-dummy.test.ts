// Twins of the Python docs' Pool and queue-workers examples with multiprocessing.dummy in
// place of the package (the same programs over threads), run as a user would run them
// (they import the built package: `npm run build:ts` first).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { inspect } from 'node:util';
import { checkPoolUsing, checkQueueWorkers } from './example_checks.js';
import { root, runTs } from './helpers.js';

const range = (n: number) => [...Array(n).keys()];
const squares = inspect(range(10).map((x) => x * x));

test('17.2.1 intro with threads: Pool(5).map', async (t) => {
  const r = await runTs('examples/dummy_pool_intro.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, '[ 1, 4, 9 ]\n');
});

test('17.2.1.6 using a pool of worker threads', async (t) => {
  const r = await runTs('examples/dummy_pool_workers.ts');
  t.is(r.code, 0, r.stderr);
  t.true(r.stdout.startsWith(`${squares}\n`), r.stdout);
  const lines = r.stdout.slice(squares.length + 1).trimEnd().split('\n');
  t.is(lines.length, 16, r.stdout);
  t.deepEqual(lines.slice(0, 10).map(Number).sort((a, b) => a - b), range(10).map((x) => x * x));
  t.is(lines[10], '400');
  // Threads are in the program's own process.
  const pid = Number(lines[11]);
  t.true(Number.isInteger(pid) && pid > 0, lines[11]);
  t.is(lines[12], inspect([pid, pid, pid, pid]));
  t.is(lines[13], 'We lacked patience and got a multiprocessing.TimeoutError');
  t.is(lines[14], 'For the moment, the pool remains available for more work');
  t.is(lines[15], 'Now the pool is closed and no longer available');
});

test('17.2.2.9 AsyncResult with threads: get, map, imap next(timeout), get(1) times out', async (t) => {
  const r = await runTs('examples/dummy_pool_asyncresult.ts');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, `100\n${squares}\n0\n1\n4\nTimeoutError after 1 second, as expected\n`);
});

test('17.2.4 using a pool of threads', async (t) => {
  const r = await runTs('examples/dummy_pool_using.ts');
  t.is(r.code, 0, r.stderr);
  checkPoolUsing(t, r.stdout, 'threads', 'Thread-\\d+');
});

test('17.2.4 task and done queues with four worker threads', async (t) => {
  const r = await runTs('examples/dummy_queue_workers.ts');
  t.is(r.code, 0, r.stderr);
  checkQueueWorkers(t, r.stdout, 'Thread-[1-4]');
});

test('threads under the tsx command (its loader given by path) run TypeScript too', (t) => {
  // What `tsx file.ts` runs: node with tsx's preflight and loader by absolute path.
  const tsxDist = join(root, 'node_modules', 'tsx', 'dist');
  const r = spawnSync(process.execPath, [
    '--require', join(tsxDist, 'preflight.cjs'), '--import', pathToFileURL(join(tsxDist, 'loader.mjs')).href,
    join(root, 'examples', 'dummy_pool_intro.ts'),
  ], { cwd: root, encoding: 'utf8', timeout: 110_000 });
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, '[ 1, 4, 9 ]\n');
});
